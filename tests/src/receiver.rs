//! A real HTTP endpoint for targets to deliver to: records every request,
//! answers with the status the test sets, can hold requests until the
//! test releases them, and serves an OAuth token endpoint at `/token`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::watch;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// Body as text.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug)]
struct Inner {
    requests: Mutex<Vec<Request>>,
    tokens: Mutex<Vec<Request>>,
    status: Mutex<u16>,
    hold: watch::Sender<bool>,
    /// `(sluice-delivery-id, sluice-event-id)` of each request answered 2xx.
    taken: Mutex<Vec<(String, String)>>,
}

/// The endpoint; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Request {
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
    };
    if uri.path() == "/token" {
        let n = {
            let mut t = inner.tokens.lock().unwrap();
            t.push(req);
            t.len()
        };
        return axum::Json(
            json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
        .into_response();
    }
    inner.requests.lock().unwrap().push(req);
    let mut hold = inner.hold.subscribe();
    while *hold.borrow_and_update() {
        if hold.changed().await.is_err() {
            break;
        }
    }
    let status = *inner.status.lock().unwrap();
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code.is_success() {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        inner
            .taken
            .lock()
            .unwrap()
            .push((h("sluice-delivery-id"), h("sluice-event-id")));
    }
    (code, format!("receiver says {status}")).into_response()
}

/// A private certificate authority, made for one test.
pub struct TestCa {
    /// Its certificate, PEM: what a client must trust.
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, and its key (DER).
    fn server(
        &self,
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }
}

/// Accepts TLS connections for `axum::serve`; a failed handshake (a
/// client that does not trust the certificate) is skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            if let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), self.tls.accept(stream))
                    .await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Receiver {
    fn inner() -> Arc<Inner> {
        Arc::new(Inner {
            requests: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
            status: Mutex::new(200),
            hold: watch::channel(false).0,
            taken: Mutex::new(Vec::new()),
        })
    }

    /// Starts an endpoint answering 200.
    pub async fn start() -> Self {
        let inner = Self::inner();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    /// Starts an https endpoint answering 200, with a certificate for
    /// 127.0.0.1 issued by `ca`.
    pub async fn start_tls(ca: &TestCa) -> Self {
        let (cert, key) = ca.server();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        let inner = Self::inner();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", tcp.local_addr().expect("addr"));
        let listener = TlsListener {
            tcp,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    /// Answers `status` from now on.
    pub fn set_status(&self, status: u16) {
        *self.inner.status.lock().unwrap() = status;
    }

    /// Holds every request (after recording it) until [`Receiver::release`].
    pub fn hold(&self) {
        self.inner.hold.send_replace(true);
    }

    /// Lets held and future requests answer.
    pub fn release(&self) {
        self.inner.hold.send_replace(false);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests to the token endpoint so far.
    pub fn token_requests(&self) -> Vec<Request> {
        self.inner.tokens.lock().unwrap().clone()
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        self.inner.requests.lock().unwrap().len()
    }

    /// `(delivery id, event id)` of every request answered 2xx, in order.
    pub fn taken(&self) -> Vec<(String, String)> {
        self.inner.taken.lock().unwrap().clone()
    }

    /// Forgets the requests recorded so far (what was taken stays).
    pub fn forget_requests(&self) {
        self.inner.requests.lock().unwrap().clear();
    }

    /// The distinct `sluice-delivery-id`s received.
    pub fn delivery_ids(&self) -> HashSet<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.header("sluice-delivery-id").map(str::to_string))
            .collect()
    }
}
