//! The end-to-end harness: a whole sluice stack (NATS, DynamoDB Local,
//! gateway, processor and transformer as real processes) per test, with
//! helpers to call the API and to look at the queues and tables directly,
//! and real receivers for targets ([`receiver`]).

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;
use sluice_bus::Bus;
use sluice_config::{Env, NatsConfig, StoreConfig};
use sluice_store::Store;
use sluice_testkit::{free_port, start_service, unique_prefix, Proc, Servers};

pub use sluice_testkit::assert_eventually;

pub mod chaos;
pub mod nats_auth;
pub mod receiver;

/// The servers of a stack: NATS with the per-service users of
/// [`nats_auth`] when `SLUICE_TEST_NATS_AUTH=1`, else open to anyone.
pub async fn servers() -> Result<Servers> {
    if nats_auth::enabled() {
        Servers::start_with_users(nats_auth::users()?).await
    } else {
        Servers::start().await
    }
}

/// `env` and the NATS user `service` connects as, when the server has users.
pub fn service_env(
    servers: &Servers,
    env: &[(String, String)],
    service: &str,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "SLUICE_NATS_USER" && k != "SLUICE_NATS_PASSWORD")
        .cloned()
        .collect();
    out.extend(servers.nats.credentials(service));
    out
}

/// API key with every scope.
pub const ADMIN_KEY: &str = "test-admin-key";
/// API key that may only read events.
pub const READER_KEY: &str = "test-reader-key";
/// HS256 secret for bearer tokens.
pub const JWT_SECRET: &str = "test-jwt-secret";

/// A running stack.
pub struct Stack {
    /// NATS and DynamoDB Local.
    pub servers: Servers,
    /// The gateway process.
    pub gateway: Proc,
    /// The processor process, while running.
    pub processor: Option<Proc>,
    /// The transformer process, while running.
    pub transformer: Option<Proc>,
    /// The notifier process.
    pub notifier: Proc,
    /// The orchestrator process, when the stack runs workflows
    /// ([`Stack::start_with_workflows`]).
    pub orchestrator: Option<Proc>,
    /// Temporal's dev server, when the stack runs workflows.
    pub temporal: Option<sluice_testkit::Temporal>,
    /// The object store, when the stack runs files ([`Stack::start_with_files`]).
    pub objects: Option<sluice_testkit::ObjectStore>,
    /// file-ingest, when the stack runs files.
    pub file_ingest: Option<Proc>,
    /// file-ingest's admin port.
    pub file_ingest_port: u16,
    /// Orchestrator admin port.
    pub orchestrator_port: u16,
    /// Transformer admin port (`/metrics`, `/readyz`).
    pub transformer_port: u16,
    /// Transformer gRPC port.
    pub grpc_port: u16,
    /// Base URL of the gateway.
    pub url: String,
    /// Processor admin port.
    pub processor_port: u16,
    /// Environment of the services.
    pub env: Vec<(String, String)>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Direct JetStream access.
    pub bus: Bus,
    /// Direct store access.
    pub store: Store,
}

impl Stack {
    /// Starts everything; `extra` overrides service variables.
    pub async fn start(name: &str, extra: &[(&str, &str)]) -> Result<Self> {
        Self::start_with(name, extra, true).await
    }

    /// Starts everything, the processor only if `processor`.
    pub async fn start_with(name: &str, extra: &[(&str, &str)], processor: bool) -> Result<Self> {
        Self::start_on(servers().await?, name, extra, processor).await
    }

    /// Starts everything with Temporal's dev server and the orchestrator
    /// too (the processor only if `processor`).
    pub async fn start_with_workflows(
        name: &str,
        extra: &[(&str, &str)],
        processor: bool,
    ) -> Result<Self> {
        Self::start_workflows_on(servers().await?, name, extra, processor).await
    }

    /// [`Stack::start_with_workflows`] on `servers`.
    pub async fn start_workflows_on(
        servers: Servers,
        name: &str,
        extra: &[(&str, &str)],
        processor: bool,
    ) -> Result<Self> {
        let temporal = sluice_testkit::Temporal::start(servers.dir.path()).await?;
        let url = format!("http://{}", temporal.address());
        let mut all: Vec<(&str, &str)> = vec![("SLUICE_TEMPORAL_URL", url.as_str())];
        all.extend_from_slice(extra);
        let mut stack = Self::start_on(servers, name, &all, processor).await?;
        stack.temporal = Some(temporal);
        Ok(stack)
    }

    /// Starts everything with Temporal, the orchestrator, the object store
    /// (MinIO) and file-ingest too (the processor only if `processor`).
    pub async fn start_with_files(
        name: &str,
        extra: &[(&str, &str)],
        processor: bool,
    ) -> Result<Self> {
        Self::start_files_on(servers().await?, name, extra, processor).await
    }

    /// [`Stack::start_with_files`] on `servers`.
    pub async fn start_files_on(
        servers: Servers,
        name: &str,
        extra: &[(&str, &str)],
        processor: bool,
    ) -> Result<Self> {
        let temporal = sluice_testkit::Temporal::start(servers.dir.path()).await?;
        // The permission table names streams without a prefix.
        let prefix = if servers.nats.users.is_empty() {
            unique_prefix(name)
        } else {
            String::new()
        };
        let subject = sluice_bus::streams::Names::new(&prefix)
            .subject(&sluice_bus::subjects::files("uploads"));
        let objects = sluice_testkit::ObjectStore::start_as(
            servers.dir.path(),
            &servers.nats.url(),
            &subject,
            servers.nats.user(nats_auth::OBJECT_STORE),
        )
        .await?;
        let url = format!("http://{}", temporal.address());
        let object_env = objects.env();
        let mut all: Vec<(&str, &str)> = vec![
            ("SLUICE_TEMPORAL_URL", url.as_str()),
            ("SLUICE_NATS_STREAM_PREFIX", prefix.as_str()),
            ("SLUICE_FILES_BUCKET", "uploads"),
        ];
        all.extend(object_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        all.extend_from_slice(extra);
        let mut stack = Self::start_on(servers, name, &all, processor).await?;
        stack.temporal = Some(temporal);
        stack.objects = Some(objects);
        Ok(stack)
    }

    /// Starts the services on `servers`, the processor only if `processor`;
    /// the orchestrator too when `extra` names `SLUICE_TEMPORAL_URL`.
    pub async fn start_on(
        servers: Servers,
        name: &str,
        extra: &[(&str, &str)],
        processor: bool,
    ) -> Result<Self> {
        let prefix = extra
            .iter()
            .find(|(k, v)| *k == "SLUICE_NATS_STREAM_PREFIX" && !v.is_empty())
            .map(|(_, v)| (*v).to_string())
            .unwrap_or_else(|| unique_prefix(name));
        // With users, streams have no prefix (the permission table names
        // them without one); tables keep theirs.
        let auth = !servers.nats.users.is_empty();
        let gateway_port = free_port();
        let file_ingest_port = free_port();
        let processor_port = free_port();
        let transformer_port = free_port();
        let grpc_port = free_port();
        let notifier_port = free_port();
        let notifier_grpc_port = free_port();
        let orchestrator_port = free_port();
        let orchestrator_grpc_port = free_port();
        let mut env = servers.env(&prefix);
        env.push((
            "SLUICE_ORCHESTRATOR_LISTEN".into(),
            format!("127.0.0.1:{orchestrator_port}"),
        ));
        env.push((
            "SLUICE_ORCHESTRATOR_GRPC_LISTEN".into(),
            format!("127.0.0.1:{orchestrator_grpc_port}"),
        ));
        env.push((
            "SLUICE_ORCHESTRATOR_URL".into(),
            format!("http://127.0.0.1:{orchestrator_grpc_port}"),
        ));
        // Each stack its own task queue, so a worker never takes another
        // test's workflow.
        env.push(("SLUICE_TEMPORAL_TASK_QUEUE".into(), prefix.clone()));
        env.push((
            "SLUICE_LINK_SECRET".into(),
            "test-link-secret-of-at-least-32-characters".into(),
        ));
        env.push((
            "SLUICE_FILE_INGEST_LISTEN".into(),
            format!("127.0.0.1:{file_ingest_port}"),
        ));
        env.push((
            "SLUICE_NOTIFIER_LISTEN".into(),
            format!("127.0.0.1:{notifier_port}"),
        ));
        env.push((
            "SLUICE_NOTIFIER_GRPC_LISTEN".into(),
            format!("127.0.0.1:{notifier_grpc_port}"),
        ));
        env.push((
            "SLUICE_NOTIFIER_URL".into(),
            format!("http://127.0.0.1:{notifier_grpc_port}"),
        ));
        env.push((
            "SLUICE_TRANSFORMER_LISTEN".into(),
            format!("127.0.0.1:{transformer_port}"),
        ));
        env.push((
            "SLUICE_TRANSFORMER_GRPC_LISTEN".into(),
            format!("127.0.0.1:{grpc_port}"),
        ));
        env.push((
            "SLUICE_TRANSFORMER_URL".into(),
            format!("http://127.0.0.1:{grpc_port}"),
        ));
        env.push((
            "SLUICE_TARGETS_DENY".into(),
            format!("127.0.0.1:{gateway_port},127.0.0.1:{processor_port}"),
        ));
        env.push((
            "SLUICE_GATEWAY_LISTEN".into(),
            format!("127.0.0.1:{gateway_port}"),
        ));
        env.push((
            "SLUICE_PROCESSOR_LISTEN".into(),
            format!("127.0.0.1:{processor_port}"),
        ));
        env.push((
            "SLUICE_GATEWAY_API_KEYS".into(),
            format!(
                r#"[{{"principal":"admin","key":"{ADMIN_KEY}","scopes":["*"]}},
                    {{"principal":"reader","key":"{READER_KEY}","scopes":["events:read"]}}]"#
            ),
        ));
        env.push(("SLUICE_GATEWAY_JWT_HS256_SECRET".into(), JWT_SECRET.into()));
        env.push((
            "SLUICE_PUBLIC_URL".into(),
            format!("http://127.0.0.1:{gateway_port}"),
        ));
        env.push(("SLUICE_PROCESSOR_GAUGE_INTERVAL".into(), "1s".into()));
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).into(), (*v).into()));
        }
        if auth {
            env.retain(|(key, _)| key != "SLUICE_NATS_STREAM_PREFIX");
            env.push(("SLUICE_NATS_STREAM_PREFIX".into(), String::new()));
        }
        let log_dir = servers.dir.path().to_path_buf();
        let transformer = Some(
            start_service(
                "sluice-transformer",
                &service_env(&servers, &env, "transformer"),
                transformer_port,
                log_dir.join("transformer.log"),
            )
            .await?,
        );
        let notifier = start_service(
            "sluice-notifier",
            &service_env(&servers, &env, "notifier"),
            notifier_port,
            log_dir.join("notifier.log"),
        )
        .await?;
        let gateway = start_service(
            "sluice-gateway",
            &service_env(&servers, &env, "gateway"),
            gateway_port,
            log_dir.join("gateway.log"),
        )
        .await?;
        let orchestrator = if env.iter().any(|(k, _)| k == "SLUICE_TEMPORAL_URL") {
            Some(
                start_service(
                    "sluice-orchestrator",
                    &service_env(&servers, &env, "orchestrator"),
                    orchestrator_port,
                    log_dir.join("orchestrator.log"),
                )
                .await?,
            )
        } else {
            None
        };
        let file_ingest = if env.iter().any(|(k, _)| k == "SLUICE_S3_ENDPOINT") {
            Some(
                start_service(
                    "sluice-file-ingest",
                    &service_env(&servers, &env, "file-ingest"),
                    file_ingest_port,
                    log_dir.join("file-ingest.log"),
                )
                .await?,
            )
        } else {
            None
        };
        let processor = if processor {
            Some(
                start_service(
                    "sluice-processor",
                    &service_env(&servers, &env, "processor"),
                    processor_port,
                    log_dir.join("processor.log"),
                )
                .await?,
            )
        } else {
            None
        };
        let mut cfg_env = Env::from_pairs(env.clone());
        if auth {
            let admin = servers.nats.user(nats_auth::ADMIN).ok_or_else(|| {
                anyhow::anyhow!("the NATS server has no {} user", nats_auth::ADMIN)
            })?;
            cfg_env = cfg_env
                .with("SLUICE_NATS_USER", &admin.name)
                .with("SLUICE_NATS_PASSWORD", &admin.password);
        }
        let bus = Bus::connect(&NatsConfig::from_env(&cfg_env)?, "sluice-e2e").await?;
        let store = Store::connect(&StoreConfig::from_env(&cfg_env)?).await;
        Ok(Self {
            servers,
            gateway,
            processor,
            transformer,
            notifier,
            orchestrator,
            temporal: None,
            objects: None,
            file_ingest,
            file_ingest_port,
            orchestrator_port,
            transformer_port,
            grpc_port,
            url: format!("http://127.0.0.1:{gateway_port}"),
            processor_port,
            env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            bus,
            store,
        })
    }

    /// Starts (again) the processor.
    pub async fn start_processor(&mut self) -> Result<()> {
        let log = self.servers.dir.path().join("processor.log");
        let env = self.env_of("processor");
        self.processor =
            Some(start_service("sluice-processor", &env, self.processor_port, log).await?);
        Ok(())
    }

    /// Starts (again) the orchestrator.
    pub async fn start_orchestrator(&mut self) -> Result<()> {
        let log = self.servers.dir.path().join("orchestrator.log");
        let env = self.env_of("orchestrator");
        self.orchestrator =
            Some(start_service("sluice-orchestrator", &env, self.orchestrator_port, log).await?);
        Ok(())
    }

    /// Starts (again) file-ingest.
    pub async fn start_file_ingest(&mut self) -> Result<()> {
        let log = self.servers.dir.path().join("file-ingest.log");
        let env = self.env_of("file-ingest");
        self.file_ingest =
            Some(start_service("sluice-file-ingest", &env, self.file_ingest_port, log).await?);
        Ok(())
    }

    /// The environment of `service`: the stack's, with its NATS user when
    /// the server has users.
    pub fn env_of(&self, service: &str) -> Vec<(String, String)> {
        service_env(&self.servers, &self.env, service)
    }

    /// SIGKILLs file-ingest.
    pub async fn kill_file_ingest(&mut self) {
        if let Some(mut p) = self.file_ingest.take() {
            p.kill().await;
        }
    }

    /// Replays the history of each workflow of `runs` (label, id) against
    /// the orchestrator's workflow code as it is; with
    /// `SLUICE_RECORD_HISTORIES=<dir>` keeps each as `<dir>/<kind>-<label>.json`,
    /// a replay fixture of the orchestrator's tests.
    pub async fn replay(&self, kind: &str, runs: &[(&str, &str)]) {
        use temporalio_client::{
            Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow,
            WorkflowFetchHistoryOptions, WorkflowHistory,
        };
        let address = self
            .temporal
            .as_ref()
            .expect("a stack with workflows")
            .address();
        let connection = Connection::connect(
            ConnectionOptions::new(
                temporalio_client::Url::parse(&format!("http://{address}")).expect("a URL"),
            )
            .build(),
        )
        .await
        .expect("Temporal");
        let client =
            Client::new(connection, ClientOptions::new("default").build()).expect("a client");
        for (label, id) in runs {
            let json = client
                .get_workflow_handle::<UntypedWorkflow>(*id)
                .fetch_history(WorkflowFetchHistoryOptions::builder().build())
                .to_json()
                .await
                .expect("the history");
            sluice_orchestrator::replayer()
                .expect("a replayer")
                .replay_workflow(WorkflowHistory::from_json(&json).expect("a history"))
                .await
                .unwrap_or_else(|e| panic!("{kind} {label} does not replay: {e}"));
            if let Ok(dir) = std::env::var("SLUICE_RECORD_HISTORIES") {
                std::fs::write(format!("{dir}/{kind}-{label}.json"), &json).expect("written");
            }
        }
    }

    /// A client of the stack's object store.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let env = sluice_config::Env::from_pairs(self.env.clone());
        sluice_files::FilesConfig::from_env(&env)
            .expect("the stack's object store settings")
            .client()
    }

    /// SIGKILLs the orchestrator.
    pub async fn kill_orchestrator(&mut self) {
        if let Some(mut p) = self.orchestrator.take() {
            p.kill().await;
        }
    }

    /// The orchestrator's gRPC address.
    pub fn orchestrator_url(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "SLUICE_ORCHESTRATOR_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// SIGKILLs the processor.
    pub async fn kill_processor(&mut self) {
        if let Some(mut p) = self.processor.take() {
            p.kill().await;
        }
    }

    /// Starts (again) the transformer.
    pub async fn start_transformer(&mut self) -> Result<()> {
        let log = self.servers.dir.path().join("transformer.log");
        let env = self.env_of("transformer");
        self.transformer =
            Some(start_service("sluice-transformer", &env, self.transformer_port, log).await?);
        Ok(())
    }

    /// SIGKILLs the gateway and starts it again on its port.
    pub async fn restart_gateway(&mut self) -> Result<()> {
        self.gateway.kill().await;
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("the gateway's port")?;
        let log = self.servers.dir.path().join("gateway.log");
        self.gateway = start_service("sluice-gateway", &self.env_of("gateway"), port, log).await?;
        Ok(())
    }

    /// SIGKILLs the notifier and starts it again on its ports.
    pub async fn restart_notifier(&mut self) -> Result<()> {
        self.notifier.kill().await;
        let port: u16 = self
            .env
            .iter()
            .find(|(k, _)| k == "SLUICE_NOTIFIER_LISTEN")
            .and_then(|(_, v)| v.rsplit(':').next()?.parse().ok())
            .context("the notifier's port")?;
        let log = self.servers.dir.path().join("notifier.log");
        self.notifier =
            start_service("sluice-notifier", &self.env_of("notifier"), port, log).await?;
        Ok(())
    }

    /// SIGKILLs the transformer.
    pub async fn kill_transformer(&mut self) {
        if let Some(mut p) = self.transformer.take() {
            p.kill().await;
        }
    }

    /// Starts one more transformer replica on ports of its own; returns it
    /// and its admin port.
    pub async fn extra_transformer(&self, n: usize) -> Result<(Proc, u16)> {
        let (admin, grpc) = (free_port(), free_port());
        let mut env = self.env_of("transformer");
        env.retain(|(k, _)| {
            k != "SLUICE_TRANSFORMER_LISTEN" && k != "SLUICE_TRANSFORMER_GRPC_LISTEN"
        });
        env.push((
            "SLUICE_TRANSFORMER_LISTEN".into(),
            format!("127.0.0.1:{admin}"),
        ));
        env.push((
            "SLUICE_TRANSFORMER_GRPC_LISTEN".into(),
            format!("127.0.0.1:{grpc}"),
        ));
        let log = self.servers.dir.path().join(format!("transformer-{n}.log"));
        Ok((
            start_service("sluice-transformer", &env, admin, log).await?,
            admin,
        ))
    }

    /// Starts one more gateway on a port of its own, with `extra` variables.
    pub async fn extra_gateway(&self, extra: &[(&str, &str)]) -> Result<ExtraGateway> {
        let port = free_port();
        let mut env = self.env_of("gateway");
        env.retain(|(k, _)| k != "SLUICE_GATEWAY_LISTEN" && !extra.iter().any(|(e, _)| e == k));
        env.push(("SLUICE_GATEWAY_LISTEN".into(), format!("127.0.0.1:{port}")));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let log = self.servers.dir.path().join(format!("gateway-{port}.log"));
        Ok(ExtraGateway {
            proc: start_service("sluice-gateway", &env, port, log).await?,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A service's `/metrics` page.
    pub async fn metrics(&self, port: u16) -> String {
        match self
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Logs of the services, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = self.gateway.log_tail(30);
        s.push('\n');
        s.push_str(&self.notifier.log_tail(30));
        for p in [
            &self.processor,
            &self.transformer,
            &self.orchestrator,
            &self.file_ingest,
        ]
        .into_iter()
        .flatten()
        {
            s.push('\n');
            s.push_str(&p.log_tail(30));
        }
        s
    }

    /// A request with the admin key and a JSON body; returns status and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// PUTs JSON with the admin key; returns status and body.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    /// DELETEs with the admin key; returns the status.
    pub async fn delete(&self, path: &str) -> u16 {
        self.send(reqwest::Method::DELETE, path, None).await.0
    }

    /// A request with the admin key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .header("x-api-key", ADMIN_KEY)
    }

    /// POSTs JSON with the admin key; returns status, headers and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// GETs with the admin key; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The status of an event as the API reports it.
    pub async fn event_status(&self, id: &str) -> Option<String> {
        let (code, body) = self.get(&format!("/v1/events/{id}")).await;
        (code == 200).then(|| body["status"].as_str().unwrap_or_default().to_string())
    }

    /// Messages in a stream (`INGEST`, `DLQ`, `BUS`).
    pub async fn stream_messages(&self, stream: &str) -> u64 {
        let name = match stream {
            "INGEST" => self.bus.names().ingest(),
            "DLQ" => self.bus.names().dlq(),
            "DELIVERIES" => self.bus.names().deliveries(),
            "NOTIFY" => self.bus.names().notify(),
            "FILES" => self.bus.names().files(),
            _ => self.bus.names().bus(),
        };
        let mut s = self.bus.jetstream().get_stream(name).await.expect("stream");
        s.info().await.expect("info").state.messages
    }

    /// Events recorded as processed.
    pub async fn processed_count(&self) -> usize {
        let table = self.store.tables().events.clone();
        self.scan_filtered(&table, Some("processed")).await
    }

    /// Items in a table (a full scan); 0 while the store does not answer.
    pub async fn scan_count(&self, table: &str) -> usize {
        self.scan_filtered(table, None).await
    }

    async fn scan_filtered(&self, table: &str, status: Option<&str>) -> usize {
        let mut count = 0;
        let mut start = None;
        loop {
            let out = self
                .store
                .client()
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .set_filter_expression(status.map(|_| "#s = :s".to_string()))
                .set_expression_attribute_names(
                    status.map(|_| [("#s".to_string(), "status".to_string())].into()),
                )
                .set_expression_attribute_values(status.map(|s| {
                    [(
                        ":s".to_string(),
                        sluice_store::AttributeValue::S(s.to_string()),
                    )]
                    .into()
                }))
                .send()
                .await;
            let Ok(out) = out else { return 0 };
            count += out.items().len();
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        count
    }

    /// The ids of every message on the bus stream (to check for duplicates).
    pub async fn bus_event_ids(&self) -> Vec<String> {
        self.bus_events()
            .await
            .iter()
            .map(|v| v["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every event on the bus stream, in order.
    pub async fn bus_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let stream = self
            .bus
            .jetstream()
            .get_stream(self.bus.names().bus())
            .await
            .expect("bus");
        let subject = self.bus.names().subject("bus.>");
        let mut seq = 1;
        while let Ok(m) = stream
            .direct_get_next_for_subject(&subject, Some(seq))
            .await
        {
            seq = m.sequence + 1;
            out.push(serde_json::from_slice(&m.payload).expect("json"));
        }
        out
    }
}

/// A stack whose NATS server has users reports what the server refused
/// its services (run with `--nocapture`, or name a file in
/// `SLUICE_TEST_NATS_VIOLATIONS` to collect them across tests).
impl Drop for Stack {
    fn drop(&mut self) {
        if self.servers.nats.users.is_empty() {
            return;
        }
        let violations = self.servers.nats.violations();
        if violations.is_empty() {
            return;
        }
        let report = format!(
            "NATS permission violations ({}):\n{}\n",
            std::thread::current().name().unwrap_or("a test"),
            violations.join("\n")
        );
        eprintln!("{report}");
        if let Ok(path) = std::env::var("SLUICE_TEST_NATS_VIOLATIONS") {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(report.as_bytes());
            }
        }
    }
}

/// A gateway besides the stack's own.
#[derive(Debug)]
pub struct ExtraGateway {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
}

/// An event body.
pub fn event(n: usize) -> Value {
    serde_json::json!({"source": "e2e", "detail-type": "Tick", "detail": {"n": n}})
}
