//! HTTP(S) serving: accepts connections (TLS when given a certificate,
//! asking for an optional client certificate for cert logins), turns each
//! `/v1/` request into a [`Request`], applies the fault knobs, asks the
//! [`Vault`], counts and logs the request (method, path, status; never a
//! value, header or body), and sends the answer. `/admin/` goes to the
//! admin API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::{self, Fault, Outcome};
use crate::vault::{self, Request, Response, Vault};

/// Everything the connections share.
pub struct Shared {
    pub vault: Mutex<Vault>,
    pub faults: Mutex<Vec<Fault>>,
    /// `"METHOD path"` -> requests seen.
    pub counts: Mutex<BTreeMap<String, u64>>,
    random: Mutex<u64>,
}

impl Shared {
    pub fn new(vault: Vault, faults: Vec<Fault>) -> Self {
        let seed = vault::random_bytes(8)
            .iter()
            .fold(1u64, |acc, b| acc << 8 | u64::from(*b))
            | 1;
        Shared {
            vault: Mutex::new(vault),
            faults: Mutex::new(faults),
            counts: Mutex::new(BTreeMap::new()),
            random: Mutex::new(seed),
        }
    }

    /// A uniform number in [0, 1) (xorshift: spread, not secrecy).
    fn random(&self) -> f64 {
        let mut state = lock(&self.random);
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Locks a mutex even if a panicking thread poisoned it (the mock's state
/// stays usable; a test sees the panic elsewhere).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves connections until the process ends.
pub async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("vinit-mock-vault: accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let fingerprint = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|cert| hex(ring::digest::digest(&ring::digest::SHA256, cert).as_ref()));
                        connection(stream, fingerprint, shared).await;
                    }
                    Err(err) => eprintln!("vinit-mock-vault: TLS handshake: {err}"),
                },
                None => connection(stream, None, shared).await,
            }
        });
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A socket that can be closed with a TCP reset.
trait Linger {
    fn reset_on_close(&self);
}

impl Linger for TcpStream {
    fn reset_on_close(&self) {
        #[allow(deprecated)]
        let _ = self.set_linger(Some(Duration::ZERO));
    }
}

impl Linger for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

/// A connection's stream; when the `reset` fault fired, dropping it sends
/// an RST instead of a FIN.
struct Resettable<S: Linger> {
    inner: S,
    reset: Arc<AtomicBool>,
}

impl<S: Linger> Drop for Resettable<S> {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            self.inner.reset_on_close();
        }
    }
}

impl<S: Linger + AsyncRead + Unpin> AsyncRead for Resettable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Linger + AsyncWrite + Unpin> AsyncWrite for Resettable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.reset.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error that makes hyper drop a connection without an answer.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by a fault knob")
    }
}

impl std::error::Error for ResetConnection {}

async fn connection<S>(stream: S, fingerprint: Option<String>, shared: Arc<Shared>)
where
    S: Linger + AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Resettable {
        inner: stream,
        reset: reset.clone(),
    });
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        let fingerprint = fingerprint.clone();
        let reset = reset.clone();
        async move {
            let started = Instant::now();
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let answer = answer(request, fingerprint, &shared).await;
            let status = match &answer {
                Some(response) => response.status.to_string(),
                None => "reset".to_string(),
            };
            println!(
                "{method} {path} {status} {:.1}ms",
                started.elapsed().as_secs_f64() * 1000.0
            );
            match answer {
                Some(response) => Ok(to_http(response)),
                None => {
                    reset.store(true, Ordering::SeqCst);
                    Err(ResetConnection)
                }
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

fn to_http(response: Response) -> hyper::Response<Full<Bytes>> {
    let body = match &response.body {
        Some(value) => {
            let mut text = value.to_string();
            text.push('\n');
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    let mut builder = hyper::Response::builder().status(response.status);
    if response.body.is_some() {
        builder = builder.header("Content-Type", "application/json");
    }
    builder = builder.header("Cache-Control", "no-store");
    for (name, value) in &response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// The answer to one request; `None` resets the connection.
async fn answer(
    request: hyper::Request<Incoming>,
    fingerprint: Option<String>,
    shared: &Shared,
) -> Option<Response> {
    let method = request.method().to_string();
    let uri_path = request.uri().path().to_string();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let token = header("X-Vault-Token")
        .or_else(|| header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string)));
    let wrap_ttl = header("X-Vault-Wrap-TTL");
    let bytes = request.into_body().collect().await.ok()?.to_bytes();
    let body: Map<String, Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) | Err(_) => return Some(Response::errors(400, &["failed to parse JSON input"])),
        }
    };
    if let Some(rest) = uri_path.strip_prefix("/admin/") {
        return Some(crate::admin::handle(
            shared,
            &method,
            rest.trim_end_matches('/'),
            &body,
        ));
    }
    let Some(path) = uri_path
        .strip_prefix("/v1/")
        .map(|p| p.trim_end_matches('/').to_string())
    else {
        return Some(Response::errors(404, &[]));
    };
    *lock(&shared.counts)
        .entry(format!("{method} {path}"))
        .or_insert(0) += 1;
    let decision = {
        let mut faults = lock(&shared.faults);
        faults::decide(&mut faults, &method, &path, &mut || shared.random())
    };
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.outcome {
        Outcome::Serve => {}
        Outcome::Sealed => return Some(sealed(&path)),
        Outcome::RateLimited { retry_after_secs } => {
            let mut response = Response::errors(
                429,
                &[&format!("request path \"{path}\": rate limit quota exceeded")],
            );
            response
                .headers
                .push(("Retry-After".into(), retry_after_secs.to_string()));
            return Some(response);
        }
        Outcome::Error { status } => {
            return Some(Response::errors(status, &["vinit-mock-vault: injected fault"]))
        }
        Outcome::Hang => std::future::pending::<()>().await,
        Outcome::Reset => return None,
    }
    let wrap_ttl = match wrap_ttl.map(|t| crate::seed::parse_duration(&t)) {
        None => None,
        Some(Ok(ttl)) => Some(ttl),
        Some(Err(err)) => return Some(Response::errors(400, &[&format!("X-Vault-Wrap-TTL: {err}")])),
    };
    let request = Request {
        method,
        path,
        query,
        token,
        wrap_ttl,
        body,
        client_cert_sha256: fingerprint,
    };
    let response = lock(&shared.vault).handle(&request);
    Some(response)
}

/// How OpenBao answers while sealed.
fn sealed(path: &str) -> Response {
    match path {
        "sys/health" => Response::json(503, vault::health(true)),
        "sys/seal-status" => Response::json(200, vault::seal_status(true)),
        _ => Response::errors(503, &["Vault is sealed"]),
    }
}

/// Binds `addr`; the address actually bound (port 0 picks a free one).
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| format!("--listen {addr}: {err}"))?;
    let bound = listener.local_addr().map_err(|err| err.to_string())?;
    Ok((listener, bound))
}

/// The JSON of the admin API's answers.
pub fn ok(body: Value) -> Response {
    Response::json(200, body)
}

/// Used by the admin API: the counts as a JSON object.
pub fn counts(shared: &Shared) -> Value {
    json!(*lock(&shared.counts))
}
