//! Temporal, as the orchestrator and file-ingest reach it.

use anyhow::Context as _;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};

/// A connected client (namespace set).
#[derive(Clone)]
pub struct Temporal {
    /// The client.
    pub client: Client,
    namespace: String,
}

impl std::fmt::Debug for Temporal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Temporal")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Temporal {
    /// Connects once (the caller retries); `service` names the worker.
    pub async fn connect(url: &str, namespace: &str, service: &str) -> anyhow::Result<Self> {
        let url = Url::parse(url).context("SLUICE_TEMPORAL_URL")?;
        let connection = Connection::connect(
            ConnectionOptions::new(url)
                .identity(format!("sluice-{service}@{}", std::process::id()))
                .build(),
        )
        .await
        .context("connecting to Temporal")?;
        let client = Client::new(
            connection,
            ClientOptions::new(namespace.to_string()).build(),
        )
        .context("a Temporal client")?;
        Ok(Self {
            client,
            namespace: namespace.to_string(),
        })
    }

    /// [`Temporal::connect`], retried every second until it succeeds or
    /// `stop` fires (`None`).
    pub async fn connect_retrying(
        url: &str,
        namespace: &str,
        service: &str,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<Self> {
        loop {
            match Self::connect(url, namespace, service).await {
                Ok(t) => return Some(t),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), %url, "Temporal does not answer yet; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => return None,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    /// Whether Temporal answers for the namespace.
    pub async fn describe_namespace(&self) -> Result<(), String> {
        self.client
            .count_workflows("", Default::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
