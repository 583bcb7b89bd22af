//! How many transformer replicas are running, so per-target limits that
//! apply across replicas (concurrency, rate) can be split among them.
//!
//! Every replica says it is alive on `control.presence.transformer` every
//! two seconds (core NATS, nothing stored) and counts the distinct replicas
//! heard from in the last six. A starting replica listens for one round
//! before it takes a share. A replica that stops is forgotten within six
//! seconds; until then the others run below their share. Shares are rounded
//! down, so together they stay within a target's limit (unless the limit is
//! below the number of replicas: each delivers at least one at a time).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sluice_bus::Bus;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(2);
const FORGET_AFTER: Duration = Duration::from_secs(6);

/// This replica's view of its peers.
#[derive(Debug)]
pub struct Presence {
    id: String,
    count: watch::Sender<usize>,
}

impl Presence {
    /// A replica with a fresh id, counting only itself so far.
    pub fn new() -> Self {
        Self {
            id: sluice_model::ids::new_id(),
            count: watch::channel(1).0,
        }
    }

    /// Replicas alive, this one included (at least 1).
    pub fn replicas(&self) -> usize {
        *self.count.borrow()
    }

    /// Told whenever the count changes.
    pub fn subscribe(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Announces this replica and listens for the others until `shutdown`.
    pub async fn run(&self, bus: &Bus, shutdown: CancellationToken) {
        let subject = bus.names().subject(sluice_bus::subjects::CONTROL_PRESENCE);
        let mut sub = match bus.client().subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to presence; assuming one replica");
                return;
            }
        };
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let _ = bus.client().publish(subject.clone(), self.id.clone().into()).await;
                }
                m = sub.next() => {
                    let Some(m) = m else { return };
                    if let Ok(id) = std::str::from_utf8(&m.payload) {
                        seen.insert(id.to_string(), Instant::now());
                    }
                }
            }
            seen.retain(|_, at| at.elapsed() < FORGET_AFTER);
            let n = seen.len().max(1);
            self.count.send_if_modified(|c| {
                let changed = *c != n;
                *c = n;
                changed
            });
        }
    }
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

/// This replica's share of a limit that applies across `replicas`: rounded
/// down, so the replicas together never exceed it, but at least one (so
/// with more replicas than the limit, each still delivers one at a time).
pub fn share(limit: u32, replicas: usize) -> u32 {
    let r = u32::try_from(replicas.max(1)).unwrap_or(u32::MAX);
    (limit / r).max(1)
}

/// How long a starting replica listens before taking a share, so it hears
/// the replicas already running (they announce every two seconds).
pub const SETTLE: Duration = Duration::from_millis(2500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_at_most_the_limit_and_never_reach_zero() {
        assert_eq!(share(16, 1), 16);
        assert_eq!(share(16, 3), 5);
        assert_eq!(share(1, 4), 1);
        assert_eq!(share(10, 0), 10);
    }
}
