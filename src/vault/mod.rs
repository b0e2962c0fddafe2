//! The only code that speaks HTTP and TLS: finds Vault (the standard
//! `VAULT_*` variables, their `BAO_*` twins and the config file), logs in,
//! reads and writes paths, classifies every failure (transient or
//! permanent) and retries transient ones with jittered backoff until a
//! deadline (a pause Vault asks one request for holds off all of that
//! client's requests). Over https, start-up requests take turns on two
//! connections ([`TLS_STARTUP_CONNECTIONS`]).
//!
//! Built directly on reqwest (the HTTP stack vaultrs itself uses) because
//! vinit reads raw API paths as vault-env does (`secret/data/app` with a
//! `version` parameter, `database/creds/app`, any mount), needs the status
//! and `Retry-After` of every answer, and must not let a client library
//! read `VAULT_*` on its own (the `BAO_*` twins and the conflict rule are
//! vinit's). Nothing here logs a value: paths, keys and status codes only.

pub mod auth;
pub mod tls;

use std::future::Future;
use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use zeroize::Zeroize;

use crate::config_file::VaultSection;
use crate::error::Error;
use crate::secret::{SecretData, SecretString};
use crate::settings::Environment;
use tls::TlsSettings;

/// Where Vault is and how to talk to it.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub address: reqwest::Url,
    pub namespace: Option<String>,
    pub tls: TlsSettings,
    pub tls_server_name: Option<String>,
}

/// The value of `VAULT_<name>` or its `BAO_<name>` twin; both set and
/// different is a configuration error naming both.
pub fn twin(env: &Environment, name: &str) -> Result<Option<String>, Error> {
    let vault_name = format!("VAULT_{name}");
    let bao_name = format!("BAO_{name}");
    let vault = env
        .text(&vault_name)
        .map_err(to_config)?
        .filter(|v| !v.is_empty());
    let bao = env.text(&bao_name).map_err(to_config)?.filter(|v| !v.is_empty());
    match (vault, bao) {
        (Some(a), Some(b)) if a != b => Err(Error::config(format!(
            "{vault_name} and {bao_name} are both set and differ; set one of them"
        ))),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value.to_string())),
        (None, None) => Ok(None),
    }
}

/// A non-UTF-8 Vault setting is a configuration error (78), not a usage one.
fn to_config(err: crate::settings::NotText) -> Error {
    Error::config(err)
}

impl VaultSettings {
    /// Environment first, then the config file's `[vault]`.
    pub fn resolve(env: &Environment, file: &VaultSection) -> Result<Self, Error> {
        let address = twin(env, "ADDR")?
            .or_else(|| file.address.clone())
            .ok_or_else(|| {
                Error::config(
                    "no Vault address: set VAULT_ADDR (or BAO_ADDR, or address in the config's [vault])",
                )
            })?;
        let address = reqwest::Url::parse(&address)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
            .ok_or_else(|| {
                Error::config(format!(
                    "VAULT_ADDR: \"{address}\" is not an http:// or https:// address"
                ))
            })?;
        let path_setting = |name: &str, fallback: &Option<std::path::PathBuf>| -> Result<_, Error> {
            Ok(twin(env, name)?
                .map(std::path::PathBuf::from)
                .or_else(|| fallback.clone()))
        };
        let skip_verify = match twin(env, "SKIP_VERIFY")? {
            Some(text) => crate::settings::parse_bool(&text)
                .map_err(|e| Error::config(format!("VAULT_SKIP_VERIFY: {e}")))?,
            None => file.skip_verify.unwrap_or(false),
        };
        Ok(VaultSettings {
            address,
            namespace: twin(env, "NAMESPACE")?.or_else(|| file.namespace.clone()),
            tls_server_name: twin(env, "TLS_SERVER_NAME")?.or_else(|| file.tls_server_name.clone()),
            tls: TlsSettings {
                ca_cert: path_setting("CACERT", &file.ca_cert)?,
                ca_path: path_setting("CAPATH", &file.ca_path)?,
                client_cert: path_setting("CLIENT_CERT", &file.client_cert)?,
                client_key: path_setting("CLIENT_KEY", &file.client_key)?,
                skip_verify,
            },
        })
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// No answer: refused, reset, timed out, DNS. Transient.
    Unreachable(String),
    /// The TLS handshake failed (a certificate that does not verify...).
    Tls(String),
    /// Vault answered with an error status.
    Status {
        code: u16,
        errors: String,
        retry_after: Option<Duration>,
        kv2_hint: bool,
    },
    /// The answer is not the JSON Vault sends.
    Malformed(String),
}

impl Failure {
    /// Worth trying again: no answer, 5xx (sealed is 503), 429, 412
    /// (Vault's "not yet consistent").
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            Failure::Status { code, .. } => *code >= 500 || *code == 429 || *code == 412,
            Failure::Tls(_) | Failure::Malformed(_) => false,
        }
    }

    /// Vault asked the client to slow down: 429 (a rate limit quota), or
    /// a transient status with `Retry-After` (503 while sealed or in
    /// maintenance).
    pub fn asks_for_a_pause(&self) -> bool {
        match self {
            Failure::Status { code: 429, .. } => true,
            Failure::Status {
                retry_after: Some(_), ..
            } => self.is_transient(),
            _ => false,
        }
    }

    /// A status failure with no error text: the tests' shorthand.
    #[cfg(test)]
    pub(crate) fn status(code: u16, retry_after_secs: Option<u64>) -> Failure {
        Failure::Status {
            code,
            errors: String::new(),
            retry_after: retry_after_secs.map(Duration::from_secs),
            kv2_hint: false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short description without the request path.
    pub fn describe(&self) -> String {
        match self {
            Failure::Unreachable(why) => why.clone(),
            Failure::Tls(why) => format!("TLS: {why}"),
            Failure::Status { code, errors, .. } if errors.is_empty() => format!("HTTP {code}"),
            Failure::Status { code, errors, .. } => format!("HTTP {code}: {errors}"),
            Failure::Malformed(why) => format!("not a Vault answer: {why}"),
        }
    }
}

/// One answer from Vault, secret parts wrapped.
#[derive(Debug, Default)]
pub struct Answer {
    /// `data` (`data.data` for KV v2 reads).
    pub data: SecretData,
    pub lease_id: Option<String>,
    pub lease_duration: u64,
    pub renewable: bool,
    /// The token of a login answer.
    pub client_token: Option<SecretString>,
    pub kv2: bool,
}

/// A Vault client bound to one server. Clones share its connections, its
/// lanes and its hold-off.
#[derive(Clone)]
pub struct Vault {
    http: reqwest::Client,
    base: reqwest::Url,
    namespace: Option<String>,
    /// Over https at start-up: the clients requests take turns on, one
    /// connection each. `None`: every request uses `http`, no limit.
    lanes: Option<Arc<Lanes>>,
    /// When a pause Vault asked for ends (see [`Vault::with_retries`]).
    hold_off: HoldOff,
}

/// The start-up clients over https: [`TLS_STARTUP_CONNECTIONS`] of them,
/// each lent to one request at a time, so that a start opens at most one
/// connection per client. A request limit on one client would not be
/// enough: hyper's pool has a request that finds no idle connection start
/// a new one, and keep it when another connection frees up first.
struct Lanes {
    free: Mutex<Vec<reqwest::Client>>,
    turns: Semaphore,
}

impl Lanes {
    fn new(free: Vec<reqwest::Client>) -> Lanes {
        Lanes {
            turns: Semaphore::new(free.len()),
            free: Mutex::new(free),
        }
    }

    /// Waits for a free client. `None` only if the clients ran out, which
    /// the semaphore rules out; the caller then uses its own client.
    async fn lend(&self) -> Option<Lent<'_>> {
        let turn = self.turns.acquire().await.ok()?;
        let client = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
        Some(Lent {
            lanes: self,
            client: Some(client),
            _turn: turn,
        })
    }
}

/// A client lent to one request. It goes back when dropped, the request
/// done or abandoned (a deadline), before the turn is released.
struct Lent<'a> {
    lanes: &'a Lanes,
    client: Option<reqwest::Client>,
    _turn: SemaphorePermit<'a>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.lanes
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(client);
        }
    }
}

/// How a client keeps its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// Start-up: reuse connections between the login and the reads (over
    /// https, one per lane).
    KeepIdle,
    /// Running life: a connection lives for one request; none stays open
    /// between renewals (and each request gives up after 30 s).
    NoIdle,
}

/// How long a running-life request may take before it counts as failed.
pub const RUNNING_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Start-up requests in flight at once over https, each on a client (and
/// connection) of its own: the login's kept-alive connection plus one
/// more. The trade (bench/results/FINDINGS.md, 4): a read beyond the
/// second waits for one of the two connections, one round trip per extra
/// read on a real network (nothing on loopback), where a connection of its
/// own would cost a TCP and a TLS handshake (two round trips) and the
/// handshake's CPU on both sides; for a fleet against one Vault the
/// server's CPU is the scarce part (login + 5 reads: 5 handshakes per
/// start without the limit, 2 with it). Plain http (a sidecar on
/// loopback) has no handshake to save and keeps every read in parallel;
/// running life, one request now and then, keeps no connection at all.
pub const TLS_STARTUP_CONNECTIONS: usize = 2;

impl Vault {
    /// The start-up client (warns when TLS verification is off).
    pub fn new(settings: &VaultSettings) -> Result<Self, Error> {
        if settings.tls.skip_verify {
            tracing::warn!("VAULT_SKIP_VERIFY is true: Vault's TLS certificate is not verified");
        }
        Self::build(settings, Pooling::KeepIdle)
    }

    /// The running-life client: no idle connection is kept.
    pub fn for_running_life(settings: &VaultSettings) -> Result<Self, Error> {
        Self::build(settings, Pooling::NoIdle)
    }

    fn build(settings: &VaultSettings, pooling: Pooling) -> Result<Self, Error> {
        // reqwest asks for a process-wide provider even for http:// (an
        // error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut base = settings.address.clone();
        let https = base.scheme() == "https";
        let mut resolve = None;
        let tls_config = if https {
            if let Some(name) = &settings.tls_server_name {
                // Talk to the address's host, but name (SNI) and verify the
                // server as `name`, as Vault's own client does.
                let port = base.port_or_known_default().unwrap_or(443);
                let host = base.host_str().unwrap_or_default().to_string();
                let target = (host.as_str(), port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        Error::Unavailable(format!(
                            "VAULT_ADDR: cannot resolve {host} (for VAULT_TLS_SERVER_NAME)"
                        ))
                    })?;
                base.set_host(Some(name)).map_err(|_| {
                    Error::config(format!("VAULT_TLS_SERVER_NAME: \"{name}\" is not a host name"))
                })?;
                resolve = Some((name.as_str(), target));
            }
            tls::client_config(&settings.tls)?
        } else {
            tls::unused_config()?
        };
        let lanes = https && pooling == Pooling::KeepIdle;
        // Clones of one TLS configuration share its session cache: a
        // second lane's connection resumes the login's session.
        let client = || {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .no_proxy()
                .http1_only()
                .user_agent(concat!("vinit/", env!("CARGO_PKG_VERSION")))
                .tls_backend_preconfigured(tls_config.clone());
            if pooling == Pooling::NoIdle {
                builder = builder.pool_max_idle_per_host(0).timeout(RUNNING_REQUEST_TIMEOUT);
            }
            if lanes {
                builder = builder.pool_max_idle_per_host(1);
            }
            if let Some((name, target)) = resolve {
                builder = builder.resolve(name, target);
            }
            builder.build().map_err(|err| {
                Error::config(format!(
                    "cannot set up the HTTP client for {}: {err}",
                    settings.address
                ))
            })
        };
        let http = client()?;
        let lanes = if lanes {
            // Popped from the end: the first request after the login gets
            // the login's client, and with it the kept-alive connection.
            let mut free = (1..TLS_STARTUP_CONNECTIONS)
                .map(|_| client())
                .collect::<Result<Vec<_>, _>>()?;
            free.push(http.clone());
            Some(Arc::new(Lanes::new(free)))
        } else {
            None
        };
        Ok(Vault {
            http,
            base,
            namespace: settings.namespace.clone(),
            lanes,
            hold_off: HoldOff::default(),
        })
    }

    /// `GET /v1/PATH[?version=N]`.
    pub async fn read(
        &self,
        token: &SecretString,
        path: &str,
        version: Option<u64>,
    ) -> Result<Answer, Failure> {
        let query = version.map(|v| ("version", v.to_string()));
        self.call(reqwest::Method::GET, path, Some(token), None, query)
            .await
    }

    /// `POST /v1/PATH` with a JSON body (a PKI issuance, a login).
    pub async fn write(
        &self,
        token: Option<&SecretString>,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, Failure> {
        self.call(reqwest::Method::POST, path, token, Some(body), None)
            .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
        query: Option<(&str, String)>,
    ) -> Result<Answer, Failure> {
        let mut url = self.base.clone();
        url.set_path(&format!("/v1/{}", path.trim_start_matches('/')));
        if let Some((name, value)) = &query {
            url.query_pairs_mut().append_pair(name, value);
        }
        // Held until the answer is read: its connection is then free for
        // the next request that takes this client.
        let lent = match &self.lanes {
            Some(lanes) => lanes.lend().await,
            None => None,
        };
        let http = lent
            .as_ref()
            .and_then(|l| l.client.as_ref())
            .unwrap_or(&self.http);
        let mut request = http.request(method, url).header("X-Vault-Request", "true");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            let mut bytes = serde_json::to_vec(body).map_err(|e| Failure::Malformed(e.to_string()))?;
            request = request
                .header("Content-Type", "application/json")
                .body(bytes.clone());
            bytes.zeroize();
        }
        let response = request.send().await.map_err(transport_failure)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = response.bytes().await.map_err(transport_failure)?.to_vec();
        let answer = answer_from_response(status.as_u16(), retry_after, &bytes);
        bytes.zeroize();
        answer
    }
}

/// What a response means to vinit: the answer of a success (2xx), or the
/// failure that its status and `errors` describe. Pure, so that it can be
/// fuzzed (fuzz/fuzz_targets/vault_answer.rs).
pub fn answer_from_response(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Answer, Failure> {
    let parsed: Result<serde_json::Value, _> = if body.is_empty() {
        Ok(serde_json::Value::Null)
    } else {
        serde_json::from_slice(body)
    };
    if !(200..300).contains(&status) {
        let body = parsed.unwrap_or(serde_json::Value::Null);
        let list = |field: &str| -> Vec<String> {
            body.get(field)
                .and_then(|v| v.as_array())
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let errors = list("errors").join("; ");
        let kv2_hint = list("warnings")
            .iter()
            .chain(list("errors").iter())
            .any(|w| w.contains("versioned K/V"));
        return Err(Failure::Status {
            code: status,
            errors,
            retry_after,
            kv2_hint,
        });
    }
    let mut value = parsed.map_err(|err| Failure::Malformed(format!("invalid JSON ({err})")))?;
    let answer = answer_from(&mut value);
    crate::secret::scrub(&mut value);
    answer
}

/// Picks the parts vinit uses out of a successful answer.
fn answer_from(value: &mut serde_json::Value) -> Result<Answer, Failure> {
    if value.is_null() {
        return Ok(Answer::default()); // 204: a write with no answer
    }
    let object = value
        .as_object_mut()
        .ok_or_else(|| Failure::Malformed("the answer is not a JSON object".into()))?;
    let mut answer = Answer {
        lease_id: object
            .get("lease_id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(String::from),
        lease_duration: object.get("lease_duration").and_then(|v| v.as_u64()).unwrap_or(0),
        renewable: object.get("renewable").and_then(|v| v.as_bool()).unwrap_or(false),
        ..Answer::default()
    };
    if let Some(serde_json::Value::Object(auth)) = object.get_mut("auth") {
        if let Some(serde_json::Value::String(token)) = auth.get_mut("client_token") {
            answer.client_token = Some(SecretString::new(std::mem::take(token)));
        }
        answer.lease_duration = auth.get("lease_duration").and_then(|v| v.as_u64()).unwrap_or(0);
        answer.renewable = auth.get("renewable").and_then(|v| v.as_bool()).unwrap_or(false);
    }
    match object.get_mut("data").map(serde_json::Value::take) {
        Some(serde_json::Value::Object(mut data)) => {
            let is_kv2 = data.len() == 2
                && data.get("metadata").is_some_and(|m| m.is_object())
                && data.get("data").is_some_and(|d| d.is_object() || d.is_null());
            if is_kv2 {
                answer.kv2 = true;
                if let Some(serde_json::Value::Object(inner)) = data.remove("data") {
                    answer.data = SecretData::new(inner);
                }
                let mut rest = serde_json::Value::Object(data);
                crate::secret::scrub(&mut rest);
            } else {
                answer.data = SecretData::new(data);
            }
        }
        Some(serde_json::Value::Null) | None => {}
        Some(mut other) => {
            crate::secret::scrub(&mut other);
            return Err(Failure::Malformed("\"data\" is not an object".into()));
        }
    }
    Ok(answer)
}

/// Describes a failure with no answer, naming a TLS problem when there is one.
fn transport_failure(err: reqwest::Error) -> Failure {
    if let Some(tls) = find_tls_error(&err) {
        return Failure::Tls(tls.to_string());
    }
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(current) = source {
        chain.push(current.to_string());
        source = current.source();
    }
    let detail = chain.last().cloned().unwrap_or_else(|| err.to_string());
    if err.is_timeout() {
        Failure::Unreachable(format!("timed out ({detail})"))
    } else {
        Failure::Unreachable(detail)
    }
}

/// The rustls error behind a transport error, if any. It may sit inside
/// nested `io::Error`s, whose `source()` skips the error they carry, so
/// each one is also opened with `get_ref()`.
fn find_tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        if let Some(tls) = find_tls_error(inner) {
            return Some(tls);
        }
    }
    err.source().and_then(find_tls_error)
}

impl Vault {
    /// Runs `attempt` until it succeeds, fails permanently, or `deadline`
    /// passes; transient failures are retried with full-jitter exponential
    /// backoff (50 ms doubling, capped at 2 s during start-up). A
    /// `Retry-After` is a floor added under the jittered wait, never the
    /// wait itself: OpenBao answers `Retry-After: 0` when its quota headers
    /// are on, and taking that literally retries at once, in a tight loop.
    ///
    /// When Vault asks for a pause (429, or `Retry-After`), the wait is
    /// also this Vault's hold-off: every request that goes through here,
    /// this one's retry and the first try of the others, waits until it
    /// ends, rather than each meeting the quota on its own. A hold-off that
    /// ends after `deadline` fails the request at once.
    pub async fn with_retries<T, F, Fut>(
        &self,
        deadline: Instant,
        what: &str,
        mut attempt: F,
    ) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries: u32 = 0;
        loop {
            // Checked again after a wait: another request may have been
            // asked for a longer pause meanwhile.
            let mut scout = None;
            loop {
                match self.hold_off.before_sending(Instant::now(), deadline) {
                    BeforeSending::Now => break,
                    BeforeSending::Scout => {
                        tracing::debug!("{what}: the pause is over; trying alone first");
                        scout = Some(Scout(&self.hold_off));
                        break;
                    }
                    BeforeSending::WaitUntil(until) => {
                        tracing::debug!("{what}: Vault asked for a pause; waiting with it");
                        tokio::time::sleep_until(until).await;
                    }
                    BeforeSending::WaitForScout if Instant::now() >= deadline => {
                        return Err(Failure::Unreachable(
                            "no answer before the start-up deadline".into(),
                        ))
                    }
                    BeforeSending::WaitForScout => {
                        tokio::time::sleep_until((Instant::now() + SCOUT_POLL).min(deadline)).await;
                    }
                    BeforeSending::PastDeadline => return Err(Failure::Unreachable(
                        "Vault asked for a pause (429 or Retry-After) that ends after the start-up deadline"
                            .into(),
                    )),
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, attempt()).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(Failure::Unreachable(
                        "no answer before the start-up deadline".into(),
                    ))
                }
            };
            let failure = match result {
                Ok(value) => {
                    Scout::answered(scout, false);
                    return Ok(value);
                }
                Err(failure) => failure,
            };
            // A retry when the failure is transient and its wait ends
            // before the deadline.
            let retry = if failure.is_transient() {
                let ceiling = Duration::from_millis(50u64.saturating_mul(1 << tries.min(10)))
                    .min(Duration::from_secs(2));
                let wait = backoff_wait(&failure, ceiling);
                Instant::now()
                    .checked_add(wait)
                    .filter(|until| *until < deadline)
                    .map(|until| (until, wait))
            } else {
                None
            };
            if failure.asks_for_a_pause() {
                // With no retry (past the deadline), the instance's other
                // requests give up with this one.
                self.hold_off.extend(retry.map_or(deadline, |(until, _)| until));
            }
            Scout::answered(scout, failure.asks_for_a_pause());
            let Some((until, wait)) = retry else {
                return Err(failure);
            };
            tracing::debug!(
                "{what}: {}; retrying in {}ms",
                failure.describe(),
                wait.as_millis()
            );
            tokio::time::sleep_until(until).await;
            tries += 1;
        }
    }
}

/// How often a request waiting for the scout looks again.
const SCOUT_POLL: Duration = Duration::from_millis(25);

/// The pause state shared by the clones of a [`Vault`].
#[derive(Clone, Default)]
struct HoldOff(Arc<Mutex<PauseState>>);

/// When Vault asks for a pause (a 429 or `Retry-After`), every request
/// waits until it ends; then one request goes alone (the scout) and the
/// others wait for its answer: if it is asked to pause again, so are they,
/// and they are not all refused together (bench/results/FINDINGS.md, 3.4).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PauseState {
    /// The end of the latest pause Vault asked any request for.
    until: Option<Instant>,
    /// A pause was asked for, and no request has been answered without one since.
    paused: bool,
    /// The scout is out and has not been answered.
    scout_out: bool,
}

impl HoldOff {
    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn until(&self) -> Option<Instant> {
        self.lock().until
    }

    fn before_sending(&self, now: Instant, deadline: Instant) -> BeforeSending {
        before_sending(now, &mut self.lock(), deadline)
    }

    /// Moves the end to `until` unless it is later already.
    fn extend(&self, until: Instant) {
        let mut state = self.lock();
        state.until = Some(later(state.until, until));
        state.paused = true;
    }
}

/// The request that goes alone after a pause. Dropped unanswered (its
/// start-up was abandoned), it lets another request be the scout.
struct Scout<'a>(&'a HoldOff);

impl Scout<'_> {
    /// Vault answered the scout (if this request was one): asked for
    /// another pause, or not, which releases the waiting requests.
    fn answered(scout: Option<Scout<'_>>, asked_for_a_pause: bool) {
        if let Some(scout) = scout {
            scout.0.lock().paused &= asked_for_a_pause;
        } // dropped: the scout is back
    }
}

impl Drop for Scout<'_> {
    fn drop(&mut self) {
        self.0.lock().scout_out = false;
    }
}

/// The later of a hold-off already set (if any) and a new one.
fn later(current: Option<Instant>, new: Instant) -> Instant {
    current.map_or(new, |current| current.max(new))
}

/// What a request does before it is sent, given its Vault's pause state.
#[derive(Debug, PartialEq, Eq)]
enum BeforeSending {
    Now,
    /// Send, alone: the first request after a pause.
    Scout,
    WaitUntil(Instant),
    /// The scout is out: wait for its answer.
    WaitForScout,
    /// The hold-off ends at or after the deadline: waiting is pointless.
    PastDeadline,
}

fn before_sending(now: Instant, state: &mut PauseState, deadline: Instant) -> BeforeSending {
    match state.until {
        Some(until) if until > now && until >= deadline => return BeforeSending::PastDeadline,
        Some(until) if until > now => return BeforeSending::WaitUntil(until),
        _ => {}
    }
    if !state.paused {
        BeforeSending::Now
    } else if state.scout_out {
        BeforeSending::WaitForScout
    } else {
        state.scout_out = true;
        BeforeSending::Scout
    }
}

/// The wait before retrying after `failure`: a random time up to `ceiling`,
/// on top of the server's `Retry-After` when it sent one.
pub fn backoff_wait(failure: &Failure, ceiling: Duration) -> Duration {
    // Saturating: `Retry-After` is any number the server sends.
    failure
        .retry_after()
        .unwrap_or_default()
        .saturating_add(jitter(ceiling))
}

/// A uniformly random duration up to `ceiling` (full jitter), from a cheap
/// generator seeded by the clock and pid: jitter needs spread, not secrecy.
pub fn jitter(ceiling: Duration) -> Duration {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            (nanos ^ (u64::from(std::process::id()) << 32)) | 1
        });
    }
    let random = STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(if millis == 0 { 0 } else { random % (millis + 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs)
    }

    #[test]
    fn twins_agree_or_conflict() {
        assert_eq!(
            twin(&env(&[("BAO_ADDR", "http://b")]), "ADDR")
                .unwrap()
                .as_deref(),
            Some("http://b")
        );
        assert_eq!(
            twin(
                &env(&[("VAULT_ADDR", "http://a"), ("BAO_ADDR", "http://a")]),
                "ADDR"
            )
            .unwrap()
            .as_deref(),
            Some("http://a")
        );
        let err = twin(
            &env(&[("VAULT_ADDR", "http://a"), ("BAO_ADDR", "http://b")]),
            "ADDR",
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("VAULT_ADDR and BAO_ADDR"), "{err}");
    }

    #[test]
    fn settings_need_a_valid_address() {
        let none = VaultSettings::resolve(&env(&[]), &VaultSection::default()).unwrap_err();
        assert!(none.to_string().contains("VAULT_ADDR"), "{none}");
        let bad = VaultSettings::resolve(&env(&[("VAULT_ADDR", "vault:8200")]), &VaultSection::default());
        assert_eq!(bad.unwrap_err().exit_code(), 78);
        let skip = VaultSettings::resolve(
            &env(&[("VAULT_ADDR", "https://v:8200"), ("VAULT_SKIP_VERIFY", "maybe")]),
            &VaultSection::default(),
        );
        assert!(skip.unwrap_err().to_string().contains("VAULT_SKIP_VERIFY"));
    }

    #[test]
    fn kv2_answers_are_unwrapped() {
        let mut value = serde_json::json!({
            "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"data": {"k": "v"}, "metadata": {"version": 2}}
        });
        let answer = answer_from(&mut value).unwrap();
        assert!(answer.kv2);
        assert_eq!(answer.data.field("k").unwrap().expose(), "v");
        let mut value = serde_json::json!({"lease_id": "db/creds/x/1", "lease_duration": 60, "renewable": true,
            "data": {"username": "u", "password": "p"}});
        let answer = answer_from(&mut value).unwrap();
        assert!(!answer.kv2);
        assert_eq!(answer.lease_id.as_deref(), Some("db/creds/x/1"));
        assert_eq!(answer.data.keys(), ["password", "username"]);
    }

    #[test]
    fn transient_classes() {
        let status = |code| Failure::status(code, None);
        for code in [500, 502, 503, 429, 412] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 403, 404] {
            assert!(!status(code).is_transient(), "{code}");
        }
        assert!(Failure::Unreachable("x".into()).is_transient());
        assert!(!Failure::Tls("x".into()).is_transient());
    }

    #[test]
    fn tls_errors_are_found_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        let found = find_tls_error(&outer).expect("the rustls error");
        assert!(found.to_string().contains("UnknownIssuer"), "{found}");
        assert!(find_tls_error(&std::io::Error::other("plain")).is_none());
    }

    fn settings(address: &str) -> VaultSettings {
        let pairs = [("VAULT_ADDR", address), ("VAULT_SKIP_VERIFY", "true")];
        VaultSettings::resolve(&env(&pairs), &VaultSection::default()).unwrap()
    }

    #[test]
    fn only_the_https_start_up_client_takes_turns() {
        let lanes = |vault: Vault| vault.lanes.map(|l| l.turns.available_permits());
        let https = settings("https://127.0.0.1:8200");
        let http = settings("http://127.0.0.1:8200");
        assert_eq!(lanes(Vault::new(&https).unwrap()), Some(TLS_STARTUP_CONNECTIONS));
        assert_eq!(lanes(Vault::new(&http).unwrap()), None);
        assert_eq!(lanes(Vault::for_running_life(&https).unwrap()), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_third_request_waits_for_a_lent_client_to_come_back() {
        let vault = Vault::new(&settings("https://127.0.0.1:8200")).unwrap();
        let lanes = vault.lanes.as_ref().unwrap();
        let first = lanes.lend().await.unwrap();
        let second = lanes.lend().await.unwrap();
        let wait = Duration::from_millis(20);
        assert!(tokio::time::timeout(wait, lanes.lend()).await.is_err());
        drop(first);
        let third = tokio::time::timeout(wait, lanes.lend()).await.unwrap().unwrap();
        drop((second, third));
        assert_eq!(lanes.free.lock().unwrap().len(), TLS_STARTUP_CONNECTIONS);
    }

    #[test]
    fn pauses_are_429_or_a_transient_retry_after() {
        assert!(Failure::status(429, None).asks_for_a_pause());
        assert!(Failure::status(429, Some(0)).asks_for_a_pause());
        assert!(Failure::status(503, Some(1)).asks_for_a_pause());
        assert!(!Failure::status(503, None).asks_for_a_pause());
        assert!(!Failure::status(404, Some(1)).asks_for_a_pause());
        assert!(!Failure::Unreachable("refused".into()).asks_for_a_pause());
    }

    #[test]
    fn the_hold_off_is_the_later_of_two_and_never_passes_the_deadline() {
        let now = Instant::now();
        let (soon, later_on, deadline) = (
            now + Duration::from_secs(1),
            now + Duration::from_secs(2),
            now + Duration::from_secs(5),
        );
        assert_eq!(later(None, soon), soon);
        assert_eq!(later(Some(soon), later_on), later_on);
        assert_eq!(later(Some(later_on), soon), later_on);

        let paused_until = |until| PauseState {
            until: Some(until),
            paused: true,
            scout_out: false,
        };
        let mut calm = PauseState::default();
        assert_eq!(before_sending(now, &mut calm, deadline), BeforeSending::Now);
        assert_eq!(
            before_sending(now, &mut paused_until(soon), deadline),
            BeforeSending::WaitUntil(soon)
        );
        assert_eq!(
            before_sending(now, &mut paused_until(deadline), deadline),
            BeforeSending::PastDeadline
        );
        let after = deadline + Duration::from_millis(1);
        assert_eq!(
            before_sending(now, &mut paused_until(after), deadline),
            BeforeSending::PastDeadline
        );

        let shared = HoldOff::default();
        let clone = shared.clone();
        clone.extend(later_on);
        shared.extend(soon);
        assert_eq!(
            shared.until(),
            Some(later_on),
            "a shorter pause does not shorten a longer one"
        );
    }

    #[test]
    fn after_a_pause_one_request_goes_alone_until_vault_answers_it() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let shared = HoldOff::default();
        shared.extend(now + Duration::from_secs(1));
        let after_pause = now + Duration::from_secs(2);
        assert_eq!(shared.before_sending(after_pause, deadline), BeforeSending::Scout);
        assert_eq!(
            shared.before_sending(after_pause, deadline),
            BeforeSending::WaitForScout
        );
        // Asked to pause again: everyone waits, then a new scout goes.
        let again = now + Duration::from_secs(3);
        shared.extend(again);
        Scout::answered(Some(Scout(&shared)), true);
        assert_eq!(
            shared.before_sending(after_pause, deadline),
            BeforeSending::WaitUntil(again)
        );
        let after_again = again + Duration::from_millis(1);
        assert_eq!(shared.before_sending(after_again, deadline), BeforeSending::Scout);
        // Answered without a pause: everyone goes.
        Scout::answered(Some(Scout(&shared)), false);
        assert_eq!(shared.before_sending(after_again, deadline), BeforeSending::Now);
        assert_eq!(shared.before_sending(after_again, deadline), BeforeSending::Now);
        // A scout dropped unanswered (its start-up abandoned) lets another go.
        shared.extend(after_again);
        let later_still = after_again + Duration::from_millis(1);
        assert_eq!(shared.before_sending(later_still, deadline), BeforeSending::Scout);
        drop(Scout(&shared));
        assert_eq!(shared.before_sending(later_still, deadline), BeforeSending::Scout);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_a_429_the_others_wait_for_the_first_answer() {
        let vault = Vault::new(&settings("http://127.0.0.1:8200")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let started = Instant::now();
        vault.hold_off.extend(started + Duration::from_millis(100));
        // Three requests after the pause: each answer takes 150 ms; the
        // first answer is another 429 with a 100 ms pause.
        let answers = std::cell::Cell::new(0);
        let request = || {
            vault.with_retries(deadline, "scouted", || {
                let n = answers.get();
                answers.set(n + 1);
                let sent = Instant::now();
                async move {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    if n == 0 {
                        Err(Failure::status(429, Some(0)))
                    } else {
                        Ok(sent)
                    }
                }
            })
        };
        let (a, b, c) = tokio::join!(request(), request(), request());
        let mut sent: Vec<Instant> = [a, b, c].into_iter().map(|r| r.unwrap()).collect();
        sent.sort();
        // The scout's 429 came at 250 ms at the earliest: nothing else went
        // before it, and a second scout went alone before the others.
        assert!(
            sent[0] >= started + Duration::from_millis(250),
            "{:?}",
            sent[0] - started
        );
        assert!(
            sent[1] >= sent[0] + Duration::from_millis(150),
            "{:?}",
            sent[1] - sent[0]
        );
        assert_eq!(answers.get(), 4, "one 429, then three answers");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_429_holds_off_the_other_requests_of_the_same_vault() {
        let vault = Vault::new(&settings("http://127.0.0.1:8200")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let pause = Duration::from_millis(300);
        let started = Instant::now();
        let mut told = false;
        // One request is answered 429 with a 300 ms pause, then succeeds.
        let limited = vault.with_retries(deadline, "limited", || {
            let first = !std::mem::replace(&mut told, true);
            async move {
                if first {
                    Err(Failure::Status {
                        code: 429,
                        errors: String::new(),
                        retry_after: Some(pause),
                        kv2_hint: false,
                    })
                } else {
                    Ok(Instant::now())
                }
            }
        });
        // Another starts just after it: its first try waits for the pause.
        let other = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            vault
                .with_retries(deadline, "other", || async { Ok::<_, Failure>(Instant::now()) })
                .await
        };
        let (limited, other) = tokio::join!(limited, other);
        assert!(limited.unwrap() >= started + pause);
        assert!(
            other.unwrap() >= started + pause,
            "the other request did not wait for the pause"
        );

        // A pause that ends after the deadline: fail at once, no try.
        let fresh = Vault::new(&settings("http://127.0.0.1:8200")).unwrap();
        fresh.hold_off.extend(Instant::now() + Duration::from_secs(60));
        let mut tried = false;
        let at_once = Instant::now();
        let result = fresh
            .with_retries(deadline, "late", || {
                tried = true;
                async { Ok::<_, Failure>(()) }
            })
            .await;
        assert!(matches!(result, Err(Failure::Unreachable(_))));
        // Waiting would take the 10 s to the deadline; 2 s leaves room for
        // a loaded machine without letting a wait pass.
        assert!(!tried && at_once.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_huge_retry_after_does_not_overflow() {
        let huge = Failure::Status {
            code: 429,
            errors: String::new(),
            retry_after: Some(Duration::MAX),
            kv2_hint: false,
        };
        assert_eq!(backoff_wait(&huge, Duration::from_secs(3600)), Duration::MAX);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pause_past_the_deadline_fails_at_once() {
        let vault = Vault::new(&settings("http://127.0.0.1:8200")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let at_once = Instant::now();
        let result: Result<(), _> = vault
            .with_retries(deadline, "huge", || async {
                Err(Failure::status(429, Some(u64::MAX)))
            })
            .await;
        assert!(matches!(result, Err(Failure::Status { code: 429, .. })));
        assert_eq!(vault.hold_off.until(), Some(deadline));
        assert!(at_once.elapsed() < Duration::from_secs(2), "waited for the pause");
    }

    #[test]
    fn jitter_stays_below_the_ceiling_and_spreads() {
        let samples: Vec<_> = (0..200).map(|_| jitter(Duration::from_millis(100))).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(100)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 20, "jitter barely varies: {}", distinct.len());
    }
}
