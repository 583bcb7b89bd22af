//! Writes acceptance receipts in the background, batched, off the 202 path.

use std::time::Duration;

use sluice_store::receipts::{Receipt, MAX_BATCH};
use sluice_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Queue of receipts to write; `None` when receipts are turned off.
pub type Sender = Option<mpsc::Sender<Receipt>>;

/// Starts the writer; it drains what is queued when `shutdown` fires.
pub fn start(store: Store, shutdown: CancellationToken) -> (Sender, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Receipt>(16_384);
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.cancelled() => { rx.close(); rx.recv().await }
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout(Duration::from_millis(5), rx.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    _ => break,
                }
            }
            if let Err(e) = store.put_receipts(&batch).await {
                metrics::counter!("sluice.gateway.receipts.dropped").increment(batch.len() as u64);
                tracing::debug!(error = %e, "receipts not written");
            }
            batch.clear();
        }
    });
    (Some(tx), task)
}

/// Queues a receipt; drops it (counted) when the writer is behind.
pub fn note(tx: &Sender, id: &str, kind: &str) {
    let Some(tx) = tx else { return };
    let r = Receipt {
        id: id.to_string(),
        kind: kind.to_string(),
        accepted_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    if tx.try_send(r).is_err() {
        metrics::counter!("sluice.gateway.receipts.dropped").increment(1);
    }
}
