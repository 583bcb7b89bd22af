//! The shared test harness: real servers (NATS with JetStream, DynamoDB
//! Local) and sluice's own binaries started as child processes on free
//! ports, with their data in a temp dir, stopped on drop.
//!
//! Servers come from `.deps/` (installed by `make deps`); binaries from the
//! cargo target directory (built by `make test` before the suites run).
//! [`assert_eventually!`] waits for a condition with a patience that
//! `SLUICE_TEST_PATIENCE` (a multiplier) stretches on slow machines.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

/// Waits until `$cond` (an async expression returning bool) holds, polling;
/// panics with `$msg` after the patience (default 60 s × `SLUICE_TEST_PATIENCE`).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $crate::patience(std::time::Duration::from_secs(60));
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!($($msg)+);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}

/// `base` stretched by `SLUICE_TEST_PATIENCE` (default 1).
pub fn patience(base: Duration) -> Duration {
    let factor: f64 = std::env::var("SLUICE_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    base.mul_f64(factor.max(0.1))
}

/// A free TCP port on loopback, for a server a test starts.
///
/// Taken at random below the kernel's ephemeral range (32768 and up on
/// Linux), where a port the kernel picks for an outgoing connection cannot
/// take it between now and the server binding it; never the same one twice
/// in a process.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for attempt in 0u64..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    // Crowded: let the kernel choose.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The repository root (where `.deps/` lives).
pub fn repo_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join(".deps").exists() && !dir.join("Makefile").exists() {
        if !dir.pop() {
            break;
        }
    }
    dir
}

fn deps_dir() -> PathBuf {
    std::env::var_os("SLUICE_DEPS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".deps"))
}

/// The cargo target directory of the running binary: `target/debug` for
/// a test (`target/debug/deps/<test>`), `target/release` for a program
/// (`target/release/sluice-chaos`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with its output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {name} (did `make deps` and `cargo build` run?)"))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Kills with SIGKILL and waits.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(timeout, c.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = c.kill().await;
                None
            }
        }
    }

    /// The tail of the process's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!("--- {} log ---\n{}", self.name, all[start..].join("\n"))
    }
}

async fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("{what} did not listen on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// JetStream's file store in tests: far more than any test writes, and the
/// same on every machine.
pub const DEFAULT_MAX_STORE: u64 = 1 << 40;

/// A user of the NATS server's `authorization` block: name, password and
/// the subjects it may (and, deny winning over allow, may not) publish
/// and subscribe to: one entry of the Helm chart's `nats.auth.users`.
#[derive(Debug, Clone, Default)]
pub struct NatsUser {
    /// User name (a service's name, for the services).
    pub name: String,
    /// Its password.
    pub password: String,
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to, even if `publish` allows them.
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Subjects it may not subscribe to, even if `subscribe` allows them.
    pub subscribe_deny: Vec<String>,
}

impl NatsUser {
    /// A user allowed everything (a test's own connection).
    pub fn admin(name: &str, password: &str) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            publish: vec![">".into()],
            subscribe: vec![">".into()],
            ..Self::default()
        }
    }
}

/// The `authorization` block of a server with `users` (empty: none), as
/// the chart writes it. Subjects are quoted, so `$JS...` is never read as
/// a variable.
pub fn authorization_block(users: &[NatsUser]) -> Result<String> {
    if users.is_empty() {
        return Ok(String::new());
    }
    let quoted = |items: &[String]| -> Result<String> {
        let mut out = Vec::with_capacity(items.len());
        for s in items {
            if s.is_empty() || s.contains(['"', '\\']) || s.chars().any(char::is_whitespace) {
                bail!("not a subject: {s:?}");
            }
            out.push(format!("\"{s}\""));
        }
        Ok(out.join(", "))
    };
    let rule = |allow: &[String], deny: &[String]| -> Result<String> {
        let mut r = format!("allow: [{}]", quoted(allow)?);
        if !deny.is_empty() {
            r.push_str(&format!(", deny: [{}]", quoted(deny)?));
        }
        Ok(r)
    };
    let mut block = String::from("authorization {\n  users = [\n");
    for u in users {
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("not a user name: {:?}", u.name);
        }
        if !u
            .password
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("use a password of letters, digits, - and _ ({})", u.name);
        }
        block.push_str(&format!(
            "    {{\n      user: \"{}\"\n      password: \"{}\"\n      permissions: {{\n        publish: {{ {} }}\n        subscribe: {{ {} }}\n      }}\n    }}\n",
            u.name,
            u.password,
            rule(&u.publish, &u.publish_deny)?,
            rule(&u.subscribe, &u.subscribe_deny)?,
        ));
    }
    block.push_str("  ]\n}\n");
    Ok(block)
}

/// A NATS server with JetStream, data in a temp dir.
#[derive(Debug)]
pub struct Nats {
    /// The process.
    pub proc: Proc,
    /// Client port.
    pub port: u16,
    /// Its users; empty when it takes anyone.
    pub users: Vec<NatsUser>,
    /// Its log (`Permissions Violation` lines land there).
    pub log: PathBuf,
    conf: PathBuf,
}

impl Nats {
    /// Starts a server in `dir` (JetStream syncing on the server's default interval).
    pub async fn start(dir: &Path) -> Result<Self> {
        Self::start_with(dir, false).await
    }

    /// Starts a server in `dir`; `fsync_always` makes JetStream fsync every write.
    pub async fn start_with(dir: &Path, fsync_always: bool) -> Result<Self> {
        Self::start_opts(dir, fsync_always, DEFAULT_MAX_STORE).await
    }

    /// Starts a server in `dir` whose JetStream file store holds `max_store`
    /// bytes. Tests pass a size rather than take JetStream's default (three
    /// quarters of the free disk), so what fits does not depend on the machine.
    pub async fn start_opts(dir: &Path, fsync_always: bool, max_store: u64) -> Result<Self> {
        Self::start_users(dir, fsync_always, max_store, Vec::new()).await
    }

    /// [`Nats::start_opts`] with an `authorization` block of `users` (none:
    /// anyone may connect and do anything).
    ///
    /// With users the server also traces the protocol (payloads cut
    /// short): its error log leaves some violations out (it limits how
    /// often it logs them), while the trace has every `-ERR 'Permissions
    /// Violation ...'` it sends a client (see [`Nats::violations`]).
    pub async fn start_users(
        dir: &Path,
        fsync_always: bool,
        max_store: u64,
        users: Vec<NatsUser>,
    ) -> Result<Self> {
        let port = free_port();
        let data = dir.join("nats");
        std::fs::create_dir_all(&data)?;
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n  max_file_store: {max_store}\n  {}\n}}\n{}",
                data.display().to_string(),
                if fsync_always {
                    "sync_interval: always"
                } else {
                    ""
                },
                if users.is_empty() {
                    String::new()
                } else {
                    format!(
                        "trace: true\nmax_traced_msg_len: 16\n{}",
                        authorization_block(&users)?
                    )
                },
            ),
        )?;
        let mut cmd = Command::new(deps_dir().join("bin/nats-server"));
        cmd.arg("-c").arg(&conf);
        let log = dir.join("nats.log");
        let proc = Proc::spawn("nats", cmd, log.clone())?;
        wait_for_port(port, "nats-server").await?;
        Ok(Self {
            proc,
            port,
            users,
            log,
            conf,
        })
    }

    /// SIGKILLs the server and starts it again on the same port with the
    /// same store (what JetStream had written survives).
    pub async fn kill_and_restart(&mut self) -> Result<()> {
        self.proc.kill().await;
        let mut cmd = Command::new(deps_dir().join("bin/nats-server"));
        cmd.arg("-c").arg(&self.conf);
        self.proc = Proc::spawn("nats", cmd, self.log.clone())?;
        wait_for_port(self.port, "nats-server").await
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The user `name` of the server's `authorization` block, if it has one.
    pub fn user(&self, name: &str) -> Option<&NatsUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// `SLUICE_NATS_USER` and `SLUICE_NATS_PASSWORD` of user `name` when
    /// the server has users (none otherwise). Panics if it has users but
    /// not this one.
    pub fn credentials(&self, name: &str) -> Vec<(String, String)> {
        if self.users.is_empty() {
            return Vec::new();
        }
        let user = self
            .user(name)
            .unwrap_or_else(|| panic!("the NATS server has no user {name:?}"));
        vec![
            ("SLUICE_NATS_USER".into(), user.name.clone()),
            ("SLUICE_NATS_PASSWORD".into(), user.password.clone()),
        ]
    }

    /// The lines of the server's log that tell a client was refused
    /// something: the `-ERR 'Permissions Violation for Publish to ...'`
    /// (or `Subscription to`) it was sent (traced when the server has
    /// users), the server's own `Publish Violation` and `Subscription
    /// Violation` errors, and failed logins.
    pub fn violations(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("Permissions Violation")
                    || l.contains("Publish Violation")
                    || l.contains("Subscription Violation")
                    || l.contains("Authorization Violation")
                    || l.contains("Authentication Timeout")
                    || l.contains("authentication error")
            })
            .map(str::to_string)
            .collect()
    }
}

/// DynamoDB Local, data in a temp dir (so it survives a stop/start).
#[derive(Debug)]
pub struct Dynamo {
    /// The process (None while stopped).
    pub proc: Option<Proc>,
    /// Port.
    pub port: u16,
    dir: PathBuf,
}

impl Dynamo {
    /// Starts DynamoDB Local with its database in `dir`.
    pub async fn start(dir: &Path) -> Result<Self> {
        let mut d = Self {
            proc: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        d.resume().await?;
        Ok(d)
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the data stays on disk).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }

    /// Starts it again on the same port with the same data.
    pub async fn resume(&mut self) -> Result<()> {
        let lib = deps_dir().join("dynamodb-local/lib");
        let data = self.dir.join("dynamodb");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new("java");
        cmd.arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-Xmx512m")
            .arg("-cp")
            .arg(format!("{}/*", lib.display()))
            .arg("com.amazonaws.services.dynamodbv2.local.main.ServerRunner")
            .args(["-sharedDb", "-port", &self.port.to_string(), "-dbPath"])
            .arg(&data)
            // It writes a metadata file into its working directory.
            .current_dir(&data);
        self.proc = Some(Proc::spawn("dynamodb", cmd, self.dir.join("dynamodb.log"))?);
        wait_for_port(self.port, "DynamoDB Local").await
    }
}

/// Apache Kafka, one node in KRaft mode (broker and controller), its log
/// in a temp dir (so it survives a stop/start).
#[derive(Debug)]
pub struct Kafka {
    /// The process (None while stopped).
    pub proc: Option<Proc>,
    /// The broker's port.
    pub port: u16,
    controller_port: u16,
    dir: PathBuf,
}

impl Kafka {
    /// Formats a log directory in `dir` and starts the broker.
    pub async fn start(dir: &Path) -> Result<Self> {
        let k = Self {
            proc: None,
            port: free_port(),
            controller_port: free_port(),
            dir: dir.join("kafka"),
        };
        std::fs::create_dir_all(&k.dir)?;
        let props = k.dir.join("server.properties");
        std::fs::write(
            &props,
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.bootstrap.servers=127.0.0.1:{c}\n\
                 listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{p}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={logs}\n\
                 num.partitions=3\n\
                 offsets.topic.replication.factor=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 auto.create.topics.enable=false\n",
                p = k.port,
                c = k.controller_port,
                logs = k.dir.join("logs").display(),
            ),
        )?;
        // Kafka's cluster ids are 16 random bytes in URL-safe base64.
        use base64::Engine as _;
        let cluster = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        let out = Command::new("java")
            .arg("-cp")
            .arg(format!("{}/*", kafka_libs().display()))
            .arg("kafka.tools.StorageTool")
            .args(["format", "--standalone", "-t", &cluster, "-c"])
            .arg(&props)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "formatting Kafka's log failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut k = k;
        k.resume().await?;
        Ok(k)
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (its log stays on disk).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }

    /// Starts it again on the same ports with the same log.
    pub async fn resume(&mut self) -> Result<()> {
        let mut cmd = Command::new("java");
        cmd.args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"])
            .arg("-cp")
            .arg(format!("{}/*", kafka_libs().display()))
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"));
        self.proc = Some(Proc::spawn("kafka", cmd, self.dir.join("kafka.log"))?);
        wait_for_port(self.port, "Kafka").await
    }
}

fn kafka_libs() -> PathBuf {
    deps_dir().join("kafka/libs")
}

/// Temporal's development server (the CLI's `server start-dev`), its
/// history in SQLite in a temp dir.
#[derive(Debug)]
pub struct Temporal {
    /// The process (None while stopped).
    pub proc: Option<Proc>,
    /// The frontend's gRPC port.
    pub port: u16,
    dir: PathBuf,
}

impl Temporal {
    /// Starts a dev server with its database in `dir`.
    pub async fn start(dir: &Path) -> Result<Self> {
        let mut t = Self {
            proc: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        t.resume().await?;
        Ok(t)
    }

    /// The frontend's address, `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (the history stays on disk).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }

    /// Starts it again on the same port with the same history; returns
    /// once the `default` namespace answers.
    pub async fn resume(&mut self) -> Result<()> {
        let bin = deps_dir().join("bin/temporal");
        let mut cmd = Command::new(&bin);
        cmd.args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .arg("--db-filename")
            .arg(self.dir.join("temporal.db"))
            .args(["--log-level", "warn"]);
        self.proc = Some(Proc::spawn("temporal", cmd, self.dir.join("temporal.log"))?);
        wait_for_port(self.port, "Temporal").await?;
        let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
        loop {
            let ok = Command::new(&bin)
                .args(["operator", "namespace", "describe", "-n", "default"])
                .args(["--address", &self.address()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "Temporal's default namespace did not answer on port {}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Jaeger (v2, memory storage): OTLP in, the query API out; services
/// started with [`Jaeger::env`] send it their spans.
#[derive(Debug)]
pub struct Jaeger {
    /// The process.
    pub proc: Proc,
    /// The query API's port (`/api/traces/<id>`).
    pub query_port: u16,
    /// The OTLP/HTTP receiver's port.
    pub otlp_http_port: u16,
}

impl Jaeger {
    /// Starts Jaeger with its log in `dir`; returns once the query API answers.
    pub async fn start(dir: &Path) -> Result<Self> {
        let (query_port, otlp_http_port) = (free_port(), free_port());
        let mut cmd = Command::new(deps_dir().join("bin/jaeger"));
        cmd.arg("--config").arg(format!(
            "file:{}",
            repo_root().join("deploy/deps/jaeger/config.yaml").display()
        ));
        for (k, port) in [
            ("SLUICE_JAEGER_QUERY", query_port),
            ("SLUICE_JAEGER_QUERY_GRPC", free_port()),
            ("SLUICE_JAEGER_OTLP_GRPC", free_port()),
            ("SLUICE_JAEGER_OTLP_HTTP", otlp_http_port),
        ] {
            cmd.env(k, format!("127.0.0.1:{port}"));
        }
        let proc = Proc::spawn("jaeger", cmd, dir.join("jaeger.log"))?;
        wait_for_port(query_port, "Jaeger's query API").await?;
        wait_for_port(otlp_http_port, "Jaeger's OTLP receiver").await?;
        Ok(Self {
            proc,
            query_port,
            otlp_http_port,
        })
    }

    /// The query API's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.query_port)
    }

    /// What a service needs to send its spans here.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "SLUICE_OTLP_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{}", self.otlp_http_port),
        )]
    }

    /// The trace `trace_id` as Jaeger's query API answers it (`data[0]`:
    /// `spans` and `processes`), or `None` while Jaeger has none of it.
    pub async fn trace(&self, trace_id: &str) -> Result<Option<serde_json::Value>> {
        let resp = reqwest::get(format!("{}/api/traces/{trace_id}", self.url())).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: serde_json::Value = resp.error_for_status()?.json().await?;
        Ok(body["data"].get(0).cloned())
    }
}

/// MinIO, the object store, with its bucket notifications published to
/// JetStream (one NATS target, `SLUICE`, on `<prefix>.files.<bucket>`).
#[derive(Debug)]
pub struct ObjectStore {
    /// The process (None while stopped).
    pub proc: Option<Proc>,
    /// The S3 API's port.
    pub port: u16,
    /// Access key.
    pub user: String,
    /// Secret key.
    pub password: String,
}

impl ObjectStore {
    /// Starts MinIO with its data in `dir`, notifying created objects of
    /// bucket `bucket` to `subject` on the NATS server at `nats`.
    pub async fn start(dir: &Path, nats: &str, subject: &str) -> Result<Self> {
        Self::start_as(dir, nats, subject, None).await
    }

    /// [`ObjectStore::start`], connecting to NATS as `user` (name and
    /// password) when given.
    pub async fn start_as(
        dir: &Path,
        nats: &str,
        subject: &str,
        user: Option<&NatsUser>,
    ) -> Result<Self> {
        let port = free_port();
        let data = dir.join("minio");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new(deps_dir().join("bin/minio"));
        cmd.arg("server")
            .arg(&data)
            .args(["--address", &format!("127.0.0.1:{port}")])
            .args(["--console-address", &format!("127.0.0.1:{}", free_port())])
            .arg("--quiet")
            .env("MINIO_ROOT_USER", "sluice-test")
            .env("MINIO_ROOT_PASSWORD", "sluice-test-secret")
            .env("MINIO_BROWSER", "off")
            .env("MINIO_NOTIFY_NATS_ENABLE_SLUICE", "on")
            .env(
                "MINIO_NOTIFY_NATS_ADDRESS_SLUICE",
                nats.trim_start_matches("nats://"),
            )
            .env("MINIO_NOTIFY_NATS_SUBJECT_SLUICE", subject)
            .env("MINIO_NOTIFY_NATS_JETSTREAM_SLUICE", "on")
            .env(
                "MINIO_NOTIFY_NATS_QUEUE_DIR_SLUICE",
                dir.join("minio-events"),
            );
        if let Some(u) = user {
            cmd.env("MINIO_NOTIFY_NATS_USERNAME_SLUICE", &u.name)
                .env("MINIO_NOTIFY_NATS_PASSWORD_SLUICE", &u.password);
        }
        let proc = Proc::spawn("minio", cmd, dir.join("minio.log"))?;
        wait_for_port(port, "MinIO").await?;
        // The port opens before the API serves.
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + patience(Duration::from_secs(30));
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/minio/health/ready"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("MinIO did not become ready on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            proc: Some(proc),
            port,
            user: "sluice-test".into(),
            password: "sluice-test-secret".into(),
        })
    }

    /// The S3 endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The services' variables for this store.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SLUICE_S3_ENDPOINT".into(), self.url()),
            ("SLUICE_S3_ACCESS_KEY_ID".into(), self.user.clone()),
            ("SLUICE_S3_SECRET_ACCESS_KEY".into(), self.password.clone()),
            (
                "SLUICE_FILES_NOTIFY_ARN".into(),
                "arn:minio:sqs::SLUICE:nats".into(),
            ),
        ]
    }
}

/// The servers a sluice test needs, in one temp dir.
#[derive(Debug)]
pub struct Servers {
    /// NATS.
    pub nats: Nats,
    /// The DynamoDB-API store.
    pub dynamo: Dynamo,
    /// Their temp dir (deleted on drop).
    pub dir: tempfile::TempDir,
}

impl Servers {
    /// Starts NATS and DynamoDB Local.
    pub async fn start() -> Result<Self> {
        Self::start_with(false).await
    }

    /// Starts NATS (fsync on every write if `fsync_always`) and DynamoDB Local.
    pub async fn start_with(fsync_always: bool) -> Result<Self> {
        Self::start_opts(fsync_always, DEFAULT_MAX_STORE).await
    }

    /// [`Servers::start_with`], JetStream's file store holding `max_store` bytes.
    pub async fn start_opts(fsync_always: bool, max_store: u64) -> Result<Self> {
        Self::start_users(fsync_always, max_store, Vec::new()).await
    }

    /// Starts NATS with `users` in its `authorization` block (every client
    /// must then be one of them) and DynamoDB Local.
    pub async fn start_with_users(users: Vec<NatsUser>) -> Result<Self> {
        Self::start_users(false, DEFAULT_MAX_STORE, users).await
    }

    async fn start_users(fsync_always: bool, max_store: u64, users: Vec<NatsUser>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("sluice-test-").tempdir()?;
        let (nats, dynamo) = tokio::try_join!(
            Nats::start_users(dir.path(), fsync_always, max_store, users),
            Dynamo::start(dir.path())
        )?;
        Ok(Self { nats, dynamo, dir })
    }

    /// The environment a sluice service needs to use these servers, with a
    /// random stream and table prefix so tests never see each other's data.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("SLUICE_NATS_URL".into(), self.nats.url()),
            ("SLUICE_NATS_STREAM_PREFIX".into(), prefix.into()),
            ("SLUICE_STORE_ENDPOINT_URL".into(), self.dynamo.url()),
            ("SLUICE_STORE_TABLE_PREFIX".into(), format!("{prefix}_")),
            ("SLUICE_LOG".into(), "info".into()),
        ]
    }
}

/// A random prefix for streams and tables.
pub fn unique_prefix(name: &str) -> String {
    let n: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0));
    format!("t{name}{n:x}")
}

/// Starts one of sluice's service binaries with `env`, waiting until its
/// `/readyz` on `admin_port` answers 200.
pub async fn start_service(
    binary: &str,
    env: &[(String, String)],
    admin_port: u16,
    log: PathBuf,
) -> Result<Proc> {
    start_service_from(&bin_dir(), binary, env, admin_port, log).await
}

/// [`start_service`] with the binary taken from `dir`.
pub async fn start_service_from(
    dir: &Path,
    binary: &str,
    env: &[(String, String)],
    admin_port: u16,
    log: PathBuf,
) -> Result<Proc> {
    let path = dir.join(binary);
    let mut cmd = Command::new(&path);
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let proc = Proc::spawn(binary, cmd, log)?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{admin_port}/readyz");
    let deadline = std::time::Instant::now() + patience(Duration::from_secs(60));
    loop {
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return Ok(proc);
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("{binary} not ready at {url}\n{}", proc.log_tail(40));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SMTP user of test mailboxes.
pub const SMTP_USER: &str = "sluice";
/// The SMTP password of test mailboxes.
pub const SMTP_PASSWORD: &str = "test-password";

/// The mailbox (`scripts/mailbox.py`): a real SMTP server with STARTTLS,
/// implicit TLS and AUTH that keeps what it receives (in its directory,
/// across restarts) and serves it as JSON.
#[derive(Debug)]
pub struct Mailbox {
    /// The process (None while stopped).
    pub proc: Option<Proc>,
    /// SMTP with STARTTLS.
    pub smtp_port: u16,
    /// SMTP over TLS.
    pub smtps_port: u16,
    /// The JSON API.
    pub http_port: u16,
    dir: tempfile::TempDir,
}

impl Mailbox {
    /// Starts a mailbox with its own directory and ports.
    pub async fn start() -> Result<Self> {
        let mut m = Self {
            proc: None,
            smtp_port: free_port(),
            smtps_port: free_port(),
            http_port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("sluice-mailbox-")
                .tempdir()?,
        };
        m.resume().await?;
        Ok(m)
    }

    /// Starts it again on the same ports, keeping what it received.
    pub async fn resume(&mut self) -> Result<()> {
        let mut cmd = Command::new(deps_dir().join("mailbox-venv/bin/python"));
        cmd.arg(repo_root().join("scripts/mailbox.py"))
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--smtp-port", &self.smtp_port.to_string()])
            .args(["--smtps-port", &self.smtps_port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        self.proc = Some(Proc::spawn(
            "mailbox",
            cmd,
            self.dir.path().join("mailbox.log"),
        )?);
        wait_for_port(self.http_port, "mailbox").await?;
        wait_for_port(self.smtp_port, "mailbox SMTP").await?;
        wait_for_port(self.smtps_port, "mailbox SMTPS").await
    }

    /// Stops it (an SMTP outage); what it received stays.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }

    /// `SLUICE_SMTP_URL` for STARTTLS with AUTH.
    pub fn starttls_url(&self) -> String {
        format!(
            "smtp://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}",
            self.smtp_port
        )
    }

    /// `SLUICE_SMTP_URL` for implicit TLS with AUTH.
    pub fn smtps_url(&self) -> String {
        format!(
            "smtps://{SMTP_USER}:{SMTP_PASSWORD}@localhost:{}",
            self.smtps_port
        )
    }

    /// `SLUICE_SMTP_CA_FILE`: the CA that issued the server's certificate.
    pub fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// The emails received for `to` (all if `None`), oldest first.
    pub async fn messages(&self, to: Option<&str>) -> Result<Vec<serde_json::Value>> {
        let mut url = format!("http://127.0.0.1:{}/api/messages", self.http_port);
        if let Some(to) = to {
            url.push_str(&format!("?to={to}"));
        }
        Ok(reqwest::get(&url).await?.error_for_status()?.json().await?)
    }

    /// Waits until `to` has received at least `n` emails; returns them.
    pub async fn wait_for(
        &self,
        to: &str,
        n: usize,
        within: Duration,
    ) -> Result<Vec<serde_json::Value>> {
        let deadline = std::time::Instant::now() + patience(within);
        loop {
            let got = self.messages(Some(to)).await.unwrap_or_default();
            if got.len() >= n {
                return Ok(got);
            }
            if std::time::Instant::now() > deadline {
                bail!("{to} received {} emails, not {n}: {got:?}", got.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
