//! The mock's Vault: state (tokens, leases, KV versions, wrapped responses,
//! the clock with its warp) and the answers to each API request, with the
//! status codes and JSON shapes OpenBao 2.7 gives (checked by vinit's
//! parity suite). No HTTP here: a [`Request`] in, a [`Response`] out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::pki::Authority;
use crate::seed::{self, AuthKind, Capability, Rule, Seed};

/// KV v1 answers carry Vault's default lease of 32 days.
const KV1_LEASE: u64 = 2_764_800;
/// Paths Vault's `default` policy grants every token.
const DEFAULT_POLICY_PATHS: &[&str] = &[
    "auth/token/lookup-self",
    "auth/token/renew-self",
    "auth/token/revoke-self",
    "sys/leases/renew",
    "sys/leases/lookup",
    "sys/renew",
    "sys/capabilities-self",
];
const KV2_WRONG_PATH: &str = "Invalid path for a versioned K/V secrets engine. See the API docs for the \
    appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv get' for this operation.";

/// One API request, `/v1/` stripped from its path.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub token: Option<String>,
    pub wrap_ttl: Option<Duration>,
    pub body: Map<String, Value>,
    /// SHA-256 (lowercase hex) of the TLS client certificate, if one was sent.
    pub client_cert_sha256: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Self {
        Response {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn errors(status: u16, errors: &[&str]) -> Self {
        Self::json(status, json!({ "errors": errors }))
    }

    pub fn no_content() -> Self {
        Response {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }

    fn denied() -> Self {
        Self::errors(403, &["permission denied"])
    }
}

struct Token {
    accessor: String,
    policies: Vec<String>,
    issued: f64,
    creation_ttl: u64,
    /// The TTL a renewal without `increment` asks for.
    period: u64,
    expires: Option<f64>,
    max_expires: Option<f64>,
    renewable: bool,
    path: String,
    display_name: String,
    meta: Value,
    from_login: bool,
    last_renewal: Option<f64>,
}

struct Lease {
    ttl: u64,
    expires: f64,
    max_expires: Option<f64>,
    renewable: bool,
    token: String,
}

struct Wrap {
    response: Value,
    expires: f64,
}

struct KvVersion {
    data: Map<String, Value>,
    created: f64,
    deleted: Option<f64>,
    destroyed: bool,
}

struct KvMount {
    version: u8,
    secrets: BTreeMap<String, Vec<KvVersion>>,
}

pub struct Vault {
    policies: BTreeMap<String, Vec<Rule>>,
    kv: BTreeMap<String, KvMount>,
    auth: BTreeMap<String, seed::AuthMount>,
    dynamic: BTreeMap<String, seed::DynamicSecret>,
    pki: BTreeMap<String, seed::PkiRole>,
    authorities: HashMap<String, Authority>,
    tokens: HashMap<String, Token>,
    leases: HashMap<String, Lease>,
    wraps: HashMap<String, Wrap>,
    /// Time warp: added to the real clock.
    offset: Duration,
}

impl Vault {
    pub fn new(seed: &Seed) -> Self {
        let mut vault = Vault {
            policies: seed.policies.clone(),
            kv: BTreeMap::new(),
            auth: seed.auth.clone(),
            dynamic: seed.dynamic.clone(),
            pki: seed.pki.clone(),
            authorities: HashMap::new(),
            tokens: HashMap::new(),
            leases: HashMap::new(),
            wraps: HashMap::new(),
            offset: Duration::ZERO,
        };
        let now = vault.now();
        for (mount, kv) in &seed.kv {
            let secrets = kv
                .secrets
                .iter()
                .map(|(name, secret)| {
                    let versions = secret
                        .versions()
                        .into_iter()
                        .map(|v| KvVersion {
                            data: v.data,
                            created: now,
                            deleted: v.deleted.then_some(now),
                            destroyed: v.destroyed,
                        })
                        .collect();
                    (name.trim_matches('/').to_string(), versions)
                })
                .collect();
            vault.kv.insert(
                mount.trim_matches('/').to_string(),
                KvMount {
                    version: kv.version,
                    secrets,
                },
            );
        }
        for token in &seed.tokens {
            let ttl = token.ttl.secs();
            let max = token.max_ttl.secs();
            vault.tokens.insert(
                token.id.clone(),
                Token {
                    accessor: random_id(24),
                    policies: token.policies.clone(),
                    issued: now,
                    creation_ttl: ttl,
                    period: ttl,
                    expires: after(now, ttl),
                    max_expires: after(now, max),
                    renewable: ttl > 0,
                    path: "auth/token/create".into(),
                    display_name: "token".into(),
                    meta: Value::Null,
                    from_login: false,
                    last_renewal: None,
                },
            );
        }
        for wrapped in &seed.wrapped {
            let response = envelope(Value::Object(wrapped.data.clone()));
            vault.wraps.insert(
                wrapped.token.clone(),
                Wrap {
                    response,
                    expires: now + wrapped.ttl.0.as_secs_f64(),
                },
            );
        }
        vault
    }

    /// The mock's clock: real time plus the warp, in Unix seconds.
    pub fn now(&self) -> f64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (real + self.offset).as_secs_f64()
    }

    /// Time warp: moves the clock forward; returns the total offset.
    pub fn advance(&mut self, by: Duration) -> Duration {
        self.offset += by;
        self.offset
    }

    /// Revokes now, as an operator would: a token (and its leases), a
    /// lease, every lease under a prefix, or every token made by a login.
    /// Returns how many tokens and leases went.
    pub fn revoke(&mut self, what: &Map<String, Value>) -> usize {
        let text = |k: &str| what.get(k).and_then(Value::as_str).map(str::to_string);
        let mut count = 0;
        if let Some(token) = text("token") {
            count += self.revoke_token(&token);
        }
        if let Some(lease) = text("lease_id") {
            count += usize::from(self.leases.remove(&lease).is_some());
        }
        if let Some(prefix) = text("prefix") {
            let before = self.leases.len();
            self.leases.retain(|id, _| !id.starts_with(&prefix));
            count += before - self.leases.len();
        }
        if what.get("logins").and_then(Value::as_bool) == Some(true) {
            let ids: Vec<String> = self
                .tokens
                .iter()
                .filter(|(_, t)| t.from_login)
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                count += self.revoke_token(&id);
            }
        }
        count
    }

    fn revoke_token(&mut self, id: &str) -> usize {
        if self.tokens.remove(id).is_none() {
            return 0;
        }
        let before = self.leases.len();
        self.leases.retain(|_, lease| lease.token != id);
        1 + before - self.leases.len()
    }

    /// Answers one request as OpenBao would.
    pub fn handle(&mut self, request: &Request) -> Response {
        let mut response = self.route(request);
        if let Some(ttl) = request.wrap_ttl {
            if response.status == 200 {
                if let Some(body) = response.body.take() {
                    response.body = Some(self.wrap(body, ttl, &request.path));
                }
            }
        }
        response
    }

    fn route(&mut self, request: &Request) -> Response {
        let path = request.path.trim_matches('/');
        let method = request.method.as_str();
        match path {
            "sys/health" => return Response::json(200, health(false)),
            "sys/seal-status" => return Response::json(200, seal_status(false)),
            "sys/wrapping/unwrap" if is_write(method) => return self.unwrap(request),
            _ => {}
        }
        if let Some(mount) = path.strip_prefix("auth/").and_then(|p| p.strip_suffix("/login")) {
            if is_write(method) {
                return self.login(mount, request);
            }
        }
        let token_id = match request.token.as_deref() {
            Some(t) if self.token_alive(t) => t.to_string(),
            _ => return Response::denied(),
        };
        if !self.allowed(&token_id, method, path) {
            // A valid token without the capability: OpenBao's multi-error text.
            return Response::errors(403, &["1 error occurred:\n\t* permission denied\n\n"]);
        }
        match (method, path) {
            ("GET" | "POST", "auth/token/lookup-self") => return self.lookup_self(&token_id),
            ("POST" | "PUT", "auth/token/renew-self") => return self.renew_self(&token_id, &request.body),
            ("POST" | "PUT", "auth/token/revoke-self") => {
                self.revoke_token(&token_id);
                return Response::no_content();
            }
            ("POST" | "PUT", "sys/leases/renew" | "sys/renew") => return self.renew_lease(&request.body),
            ("LIST", "auth/token/accessors") => return self.accessors(),
            ("GET", "auth/token/accessors") if is_list(request) => return self.accessors(),
            ("POST" | "PUT", "sys/leases/revoke" | "sys/revoke") => {
                if let Some(id) = request.body.get("lease_id").and_then(Value::as_str) {
                    self.leases.remove(id);
                }
                return Response::no_content();
            }
            _ => {}
        }
        if self.dynamic.contains_key(path) && method == "GET" {
            return self.read_dynamic(path, &token_id);
        }
        if self.pki.contains_key(path) && is_write(method) {
            return self.issue(path, &request.body);
        }
        if let Some(response) = self.approle_admin(method, path) {
            return response;
        }
        if let Some((mount, rest)) = self.kv_mount(path) {
            return self.kv(&mount, &rest, request);
        }
        Response::errors(
            404,
            &[&format!(
                "no handler for route \"{path}\". route entry not found."
            )],
        )
    }

    fn token_alive(&self, id: &str) -> bool {
        let now = self.now();
        self.tokens
            .get(id)
            .is_some_and(|t| t.expires.map_or(true, |e| now < e))
    }

    fn allowed(&self, token: &str, method: &str, path: &str) -> bool {
        let Some(token) = self.tokens.get(token) else {
            return false;
        };
        if token.policies.iter().any(|p| p == "root") || DEFAULT_POLICY_PATHS.contains(&path) {
            return true;
        }
        let wanted: &[Capability] = match method {
            "GET" | "HEAD" if path.ends_with("/") => &[Capability::List],
            "GET" | "HEAD" => &[Capability::Read],
            "POST" | "PUT" => &[Capability::Create, Capability::Update],
            "DELETE" => &[Capability::Delete],
            "LIST" => &[Capability::List],
            _ => &[],
        };
        let rules: Vec<&Rule> = token
            .policies
            .iter()
            .filter_map(|p| self.policies.get(p))
            .flatten()
            .filter(|rule| crate::faults::glob_matches(rule.path(), path))
            .collect();
        let capabilities: Vec<Capability> = rules.iter().flat_map(|r| r.capabilities()).collect();
        !capabilities.contains(&Capability::Deny) && wanted.iter().any(|w| capabilities.contains(w))
    }

    fn kv_mount(&self, path: &str) -> Option<(String, String)> {
        self.kv
            .keys()
            .filter(|mount| path == mount.as_str() || path.starts_with(&format!("{mount}/")))
            .max_by_key(|mount| mount.len())
            .map(|mount| {
                (
                    mount.clone(),
                    path[mount.len()..].trim_start_matches('/').to_string(),
                )
            })
    }

    fn kv(&mut self, mount: &str, rest: &str, request: &Request) -> Response {
        let now = self.now();
        let Some(kv) = self.kv.get_mut(mount) else {
            return Response::errors(404, &[]);
        };
        if kv.version == 1 {
            return match (request.method.as_str(), kv.secrets.get(rest)) {
                ("GET", Some(versions)) => match versions.last() {
                    Some(v) => Response::json(
                        200,
                        with_lease(envelope(Value::Object(v.data.clone())), "", KV1_LEASE, false),
                    ),
                    None => Response::errors(404, &[]),
                },
                ("GET", None) => Response::errors(404, &[]),
                ("POST" | "PUT", _) => {
                    kv.secrets.insert(
                        rest.to_string(),
                        vec![KvVersion {
                            data: request.body.clone(),
                            created: now,
                            deleted: None,
                            destroyed: false,
                        }],
                    );
                    Response::no_content()
                }
                _ => Response::errors(405, &[]),
            };
        }
        let wrong_path = || {
            let mut body = envelope(Value::Null);
            body["warnings"] = json!([KV2_WRONG_PATH]);
            Response::json(404, body)
        };
        if let Some(name) = rest.strip_prefix("data/") {
            match request.method.as_str() {
                "GET" => {
                    let wanted = request
                        .query
                        .iter()
                        .find(|(k, _)| k == "version")
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let Some(versions) = kv.secrets.get(name) else {
                        return Response::errors(404, &[]);
                    };
                    let index = if wanted == 0 { versions.len() } else { wanted };
                    let Some(version) = index.checked_sub(1).and_then(|i| versions.get(i)) else {
                        return Response::errors(404, &[]);
                    };
                    let gone = version.deleted.is_some() || version.destroyed;
                    let data = if gone {
                        Value::Null
                    } else {
                        Value::Object(version.data.clone())
                    };
                    let body =
                        envelope(json!({ "data": data, "metadata": version_metadata(version, index) }));
                    Response::json(if gone { 404 } else { 200 }, body)
                }
                "POST" | "PUT" => {
                    let data = match request.body.get("data") {
                        Some(Value::Object(data)) => data.clone(),
                        _ => return Response::errors(400, &["no data provided"]),
                    };
                    let versions = kv.secrets.entry(name.to_string()).or_default();
                    versions.push(KvVersion {
                        data,
                        created: now,
                        deleted: None,
                        destroyed: false,
                    });
                    let index = versions.len();
                    let metadata = versions
                        .last()
                        .map(|v| version_metadata(v, index))
                        .unwrap_or_default();
                    Response::json(200, envelope(metadata))
                }
                _ => Response::errors(405, &[]),
            }
        } else if let Some(name) = rest.strip_prefix("metadata/") {
            let Some(versions) = kv.secrets.get(name).filter(|_| request.method == "GET") else {
                return Response::errors(404, &[]);
            };
            let all: Map<String, Value> = versions
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut m = version_metadata(v, i + 1);
                    if let Some(o) = m.as_object_mut() {
                        o.remove("version");
                        o.remove("custom_metadata");
                    }
                    ((i + 1).to_string(), m)
                })
                .collect();
            let first = versions.first().map(|v| v.created).unwrap_or(now);
            let last = versions.last().map(|v| v.created).unwrap_or(now);
            Response::json(
                200,
                envelope(json!({
                    "cas_required": false,
                    "created_time": rfc3339(first),
                    "current_version": versions.len(),
                    "custom_metadata": null,
                    "delete_version_after": "0s",
                    "max_versions": 0,
                    "oldest_version": 0,
                    "updated_time": rfc3339(last),
                    "versions": all,
                })),
            )
        } else {
            wrong_path()
        }
    }

    fn login(&mut self, mount: &str, request: &Request) -> Response {
        let Some(auth) = self.auth.get(mount).cloned() else {
            return Response::denied();
        };
        let body = &request.body;
        let text = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let now = self.now();
        let (role_name, role) = match auth.kind {
            AuthKind::Approle => {
                let (Some(role_id), Some(secret_id)) = (text("role_id"), text("secret_id")) else {
                    return Response::errors(400, &["missing role_id"]);
                };
                match auth
                    .roles
                    .iter()
                    .find(|(_, r)| r.role_id.as_deref() == Some(role_id))
                {
                    Some((name, role)) if role.secret_ids.iter().any(|s| s == secret_id) => {
                        (name.clone(), role.clone())
                    }
                    _ => return Response::errors(400, &["invalid role or secret ID"]),
                }
            }
            AuthKind::Kubernetes | AuthKind::Jwt => {
                let name = match text("role").map(str::to_string).or(auth.default_role.clone()) {
                    Some(name) => name,
                    None if auth.kind == AuthKind::Kubernetes => {
                        return Response::errors(400, &["missing role"])
                    }
                    None => return Response::errors(400, &["missing role"]),
                };
                let Some(role) = auth.roles.get(&name) else {
                    return Response::errors(400, &[&format!("role \"{name}\" could not be found")]);
                };
                let Some(jwt) = text("jwt") else {
                    return Response::errors(400, &["missing jwt"]);
                };
                let claims = match jwt_claims(jwt) {
                    Some(claims) => claims,
                    None => return Response::errors(400, &["error validating token: malformed JWT"]),
                };
                if claims
                    .get("exp")
                    .and_then(Value::as_f64)
                    .is_some_and(|exp| exp < now)
                {
                    return Response::errors(400, &["error validating token: token is expired (exp)"]);
                }
                let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
                if !role.subjects.iter().any(|s| s == subject) {
                    let why = if auth.kind == AuthKind::Kubernetes {
                        "service account name not authorized"
                    } else {
                        "error validating claims: claim \"sub\" does not match any associated bound claim values"
                    };
                    return Response::errors(403, &[why]);
                }
                (name, role.clone())
            }
            AuthKind::Cert => {
                let fingerprint = request.client_cert_sha256.clone().unwrap_or_default();
                let wanted = text("name");
                let found = auth.roles.iter().find(|(name, role)| {
                    wanted.map_or(true, |w| w == name.as_str())
                        && !fingerprint.is_empty()
                        && role
                            .fingerprints
                            .iter()
                            .any(|f| normalise_fingerprint(f) == fingerprint)
                });
                match found {
                    Some((name, role)) => (name.clone(), role.clone()),
                    None => {
                        return Response::errors(
                            400,
                            &["invalid certificate or no client certificate supplied"],
                        )
                    }
                }
            }
        };
        let mut policies = role.policies.clone();
        policies.push("default".into());
        policies.sort();
        policies.dedup();
        let ttl = role.ttl.secs();
        let max = role.max_ttl.secs();
        let id = format!("s.{}", random_id(24));
        let token = Token {
            accessor: random_id(24),
            policies,
            issued: now,
            creation_ttl: ttl,
            period: ttl,
            expires: after(now, ttl),
            max_expires: after(now, max),
            renewable: role.renewable && ttl > 0,
            path: format!("auth/{mount}/login"),
            display_name: mount.to_string(),
            meta: json!({ "role_name": role_name }),
            from_login: true,
            last_renewal: None,
        };
        let auth_block = auth_block(&id, &token, ttl);
        self.tokens.insert(id, token);
        let mut body = envelope(Value::Null);
        body["auth"] = auth_block;
        Response::json(200, body)
    }

    /// `LIST auth/token/accessors`: the accessors of the live tokens.
    fn accessors(&self) -> Response {
        let now = self.now();
        let keys: Vec<&str> = self
            .tokens
            .values()
            .filter(|t| t.expires.map_or(true, |e| now < e))
            .map(|t| t.accessor.as_str())
            .collect();
        Response::json(200, envelope(json!({ "keys": keys })))
    }

    fn lookup_self(&self, id: &str) -> Response {
        let Some(token) = self.tokens.get(id) else {
            return Response::denied();
        };
        let now = self.now();
        let ttl = token.expires.map_or(0, |e| (e - now).max(0.0) as u64);
        let mut data = json!({
                "creation_time": token.issued as u64,
                "creation_ttl": token.creation_ttl,
                "display_name": token.display_name,
                "entity_id": "",
                "expire_time": token.expires.map(rfc3339),
                "explicit_max_ttl": 0,
                "id": id,
                "issue_time": rfc3339(token.issued),
                "meta": token.meta,
                "num_uses": 0,
                "orphan": true,
                "path": token.path,
                "policies": token.policies,
                "renewable": token.renewable,
                "ttl": ttl,
                "type": "service",
        });
        if let Some(renewed) = token.last_renewal {
            data["last_renewal"] = json!(rfc3339(renewed));
            data["last_renewal_time"] = json!(renewed as u64);
        }
        Response::json(200, envelope(data))
    }

    fn renew_self(&mut self, id: &str, body: &Map<String, Value>) -> Response {
        let now = self.now();
        let Some(token) = self.tokens.get_mut(id) else {
            return Response::denied();
        };
        if !token.renewable {
            return Response::errors(400, &["lease is not renewable"]);
        }
        let asked = match increment(body) {
            Ok(asked) => asked.unwrap_or(token.period),
            Err(err) => return Response::errors(400, &[&err]),
        };
        let (ttl, warning) = capped(asked, now, token.max_expires);
        token.expires = Some(now + ttl as f64);
        token.last_renewal = Some(now);
        let mut response = envelope(Value::Null);
        response["auth"] = auth_block(id, token, ttl);
        if let Some(warning) = warning {
            response["warnings"] = json!([warning]);
        }
        Response::json(200, response)
    }

    fn renew_lease(&mut self, body: &Map<String, Value>) -> Response {
        let now = self.now();
        let id = body
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            return Response::errors(400, &["lease_id must be specified"]);
        }
        let asked = match increment(body) {
            Ok(asked) => asked,
            Err(err) => return Response::errors(400, &[&err]),
        };
        let token_alive = self.leases.get(&id).map(|l| self.token_alive(&l.token));
        let Some(lease) = self
            .leases
            .get_mut(&id)
            .filter(|l| now < l.expires && token_alive == Some(true))
        else {
            return Response::errors(400, &["lease not found"]);
        };
        if !lease.renewable {
            return Response::errors(400, &["lease is not renewable"]);
        }
        let (ttl, warning) = capped(asked.unwrap_or(lease.ttl), now, lease.max_expires);
        lease.expires = now + ttl as f64;
        let mut response = with_lease(envelope(Value::Null), &id, ttl, true);
        if let Some(warning) = warning {
            response["warnings"] = json!([warning]);
        }
        Response::json(200, response)
    }

    fn read_dynamic(&mut self, path: &str, token: &str) -> Response {
        let Some(secret) = self.dynamic.get(path) else {
            return Response::errors(404, &[]);
        };
        let now = self.now();
        let data: Map<String, Value> = secret
            .fields
            .iter()
            .map(|field| {
                let value = if field == "username" {
                    format!("v-mock-{}", random_id(12).to_lowercase())
                } else {
                    random_id(24)
                };
                (field.clone(), Value::String(value))
            })
            .collect();
        let ttl = secret.ttl.secs();
        let max = secret.max_ttl.secs();
        let lease_id = format!("{path}/{}", random_id(24));
        self.leases.insert(
            lease_id.clone(),
            Lease {
                ttl,
                expires: now + ttl as f64,
                max_expires: after(now, max),
                renewable: secret.renewable,
                token: token.to_string(),
            },
        );
        Response::json(
            200,
            with_lease(envelope(Value::Object(data)), &lease_id, ttl, secret.renewable),
        )
    }

    fn issue(&mut self, path: &str, body: &Map<String, Value>) -> Response {
        let Some(role) = self.pki.get(path).cloned() else {
            return Response::errors(404, &[]);
        };
        let asked = match increment_field(body, "ttl") {
            Ok(asked) => asked.unwrap_or(role.ttl.secs()),
            Err(err) => return Response::errors(400, &[&err]),
        };
        let max = role.max_ttl.secs();
        let ttl = if max > 0 { asked.min(max) } else { asked };
        let now = self.now() as u64;
        if !self.authorities.contains_key(path) {
            match Authority::new(path) {
                Ok(ca) => {
                    self.authorities.insert(path.to_string(), ca);
                }
                Err(err) => return Response::errors(500, &[&err]),
            }
        }
        let Some(ca) = self.authorities.get(path) else {
            return Response::errors(500, &["no CA"]);
        };
        match ca.issue(body, now, ttl) {
            Ok(data) => Response::json(200, envelope(data)),
            Err(err) => Response::errors(400, &[&err]),
        }
    }

    /// `auth/APPROLE/role/NAME/role-id` (GET) and `.../secret-id` (POST,
    /// a new secret_id for the role; wrap it with `X-Vault-Wrap-TTL`).
    fn approle_admin(&mut self, method: &str, path: &str) -> Option<Response> {
        let rest = path.strip_prefix("auth/")?;
        let (mount, rest) = rest.split_once("/role/")?;
        let (name, action) = rest.split_once('/')?;
        let auth = self.auth.get_mut(mount).filter(|a| a.kind == AuthKind::Approle)?;
        let role = auth.roles.get_mut(name)?;
        match (method, action) {
            ("GET", "role-id") => Some(Response::json(200, envelope(json!({ "role_id": role.role_id })))),
            ("POST" | "PUT", "secret-id") => {
                let secret_id = uuid();
                role.secret_ids.push(secret_id.clone());
                Some(Response::json(
                    200,
                    envelope(json!({
                        "secret_id": secret_id,
                        "secret_id_accessor": uuid(),
                        "secret_id_num_uses": 0,
                        "secret_id_ttl": 0,
                    })),
                ))
            }
            _ => None,
        }
    }

    fn wrap(&mut self, response: Value, ttl: Duration, path: &str) -> Value {
        let now = self.now();
        let token = format!("s.{}", random_id(24));
        self.wraps.insert(
            token.clone(),
            Wrap {
                response,
                expires: now + ttl.as_secs_f64(),
            },
        );
        let mut body = envelope(Value::Null);
        body["wrap_info"] = json!({
            "token": token,
            "accessor": random_id(24),
            "ttl": ttl.as_secs(),
            "creation_time": rfc3339(now),
            "creation_path": path,
        });
        body
    }

    fn unwrap(&mut self, request: &Request) -> Response {
        let token = request
            .body
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| request.token.clone())
            .unwrap_or_default();
        let now = self.now();
        match self.wraps.remove(&token) {
            Some(wrap) if now < wrap.expires => Response::json(200, wrap.response),
            _ => Response::errors(400, &["wrapping token is not valid or does not exist"]),
        }
    }
}

/// The moment `secs` after `now`; none for 0 (no expiry).
fn after(now: f64, secs: u64) -> Option<f64> {
    (secs > 0).then_some(now + secs as f64)
}

/// `GET ...?list=true`, the other spelling of `LIST`.
fn is_list(request: &Request) -> bool {
    request.query.iter().any(|(k, v)| k == "list" && v == "true")
}

fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PUT")
}

/// The envelope of every successful answer.
pub fn envelope(data: Value) -> Value {
    json!({
        "request_id": uuid(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    })
}

fn with_lease(mut body: Value, lease_id: &str, duration: u64, renewable: bool) -> Value {
    body["lease_id"] = json!(lease_id);
    body["lease_duration"] = json!(duration);
    body["renewable"] = json!(renewable);
    body
}

fn auth_block(id: &str, token: &Token, ttl: u64) -> Value {
    json!({
        "client_token": id,
        "accessor": token.accessor,
        "policies": token.policies,
        "token_policies": token.policies,
        "metadata": token.meta,
        "lease_duration": ttl,
        "renewable": token.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": true,
        "mfa_requirement": null,
        "num_uses": 0,
    })
}

fn version_metadata(version: &KvVersion, index: usize) -> Value {
    json!({
        "created_time": rfc3339(version.created),
        "custom_metadata": null,
        "deletion_time": version.deleted.map(rfc3339).unwrap_or_default(),
        "destroyed": version.destroyed,
        "version": index,
    })
}

pub fn health(sealed: bool) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    json!({
        "initialized": true,
        "sealed": sealed,
        "standby": sealed,
        "replication_performance_mode": if sealed { "unknown" } else { "disabled" },
        "replication_dr_mode": if sealed { "unknown" } else { "disabled" },
        "server_time_utc": now,
        "version": "2.7.2",
        "cluster_name": "vinit-mock-vault",
        "cluster_id": "00000000-0000-0000-0000-000000000000",
    })
}

pub fn seal_status(sealed: bool) -> Value {
    json!({
        "type": "shamir", "initialized": true, "sealed": sealed, "t": 1, "n": 1, "progress": 0,
        "nonce": "", "recovery_seal": false, "version": "2.7.2", "migration": false,
        "storage_type": "inmem",
    })
}

/// `increment` of a renewal: seconds, or a duration string.
fn increment(body: &Map<String, Value>) -> Result<Option<u64>, String> {
    increment_field(body, "increment")
}

fn increment_field(body: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_u64()),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => seed::parse_duration(s)
            .map(|d| Some(d.as_secs()))
            .map_err(|e| format!("{field}: {e}")),
        Some(_) => Err(format!("{field}: not a duration")),
    }
}

/// A TTL capped by the max TTL, with Vault's warning when it was.
fn capped(asked: u64, now: f64, max_expires: Option<f64>) -> (u64, Option<String>) {
    match max_expires {
        Some(max) if now + asked as f64 > max => {
            let left = (max - now).max(0.0) as u64;
            (
                left,
                Some(format!(
                    "TTL of \"{asked}s\" exceeded the effective max_ttl of \"{left}s\"; TTL value is capped accordingly"
                )),
            )
        }
        _ => (asked, None),
    }
}

/// The claims of a JWT, signature unchecked (the mock has no issuer).
fn jwt_claims(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

pub fn normalise_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_lowercase()
}

/// Random bytes from the system generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Unreachable on Linux; a clock-seeded fallback keeps the mock up.
        let mut x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
            | 1;
        for b in &mut bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    bytes
}

/// A random alphanumeric identifier.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(len)
        .into_iter()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

fn uuid() -> String {
    let hex: String = random_bytes(16).iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Unix seconds as RFC 3339 UTC with nanoseconds, as Vault writes times.
pub fn rfc3339(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let nanos = ((unix - unix.floor()) * 1e9) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(yaml: &str) -> Vault {
        Vault::new(&Seed::parse(yaml).unwrap())
    }

    fn request(method: &str, path: &str, token: Option<&str>, body: Value) -> Request {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (
                p,
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            None => (path, Vec::new()),
        };
        Request {
            method: method.into(),
            path: path.into(),
            query,
            token: token.map(str::to_string),
            body: body.as_object().cloned().unwrap_or_default(),
            ..Request::default()
        }
    }

    const SEED: &str = r#"
policies:
  app: ["secret/data/app", {path: "database/creds/*", capabilities: [read]}]
tokens:
  - {id: root, policies: [root]}
  - {id: app, policies: [app], ttl: 1h, max_ttl: 2h}
kv:
  secret:
    secrets:
      app:
        versions:
          - data: {pw: one}
            deleted: true
          - data: {pw: two}
  old: {version: 1, secrets: {legacy: {user: u}}}
auth:
  approle:
    type: approle
    roles:
      app: {role_id: r1, secret_ids: [s1], policies: [app], ttl: 10m, max_ttl: 30m}
dynamic:
  database/creds/app: {ttl: 1m, max_ttl: 3m}
"#;

    #[test]
    fn kv2_versions_deleted_and_missing() {
        let mut v = vault(SEED);
        let latest = v.handle(&request("GET", "secret/data/app", Some("app"), Value::Null));
        assert_eq!(latest.status, 200);
        let body = latest.body.unwrap();
        assert_eq!(body["data"]["data"]["pw"], "two");
        assert_eq!(body["data"]["metadata"]["version"], 2);
        let deleted = v.handle(&request(
            "GET",
            "secret/data/app?version=1",
            Some("app"),
            Value::Null,
        ));
        assert_eq!(deleted.status, 404);
        assert!(deleted.body.unwrap()["data"]["data"].is_null());
        let missing = v.handle(&request(
            "GET",
            "secret/data/app?version=7",
            Some("app"),
            Value::Null,
        ));
        assert_eq!(missing, Response::errors(404, &[]));
        let wrong = v.handle(&request("GET", "secret/app", Some("root"), Value::Null));
        assert_eq!(wrong.status, 404);
        assert!(wrong.body.unwrap()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("versioned K/V"));
        let v1 = v.handle(&request("GET", "old/legacy", Some("root"), Value::Null));
        assert_eq!(v1.body.unwrap()["lease_duration"], KV1_LEASE);
    }

    #[test]
    fn policies_deny_other_paths_and_bad_tokens() {
        let mut v = vault(SEED);
        let denied = v.handle(&request("GET", "old/legacy", Some("app"), Value::Null));
        assert_eq!(denied.status, 403);
        let bogus = v.handle(&request("GET", "secret/data/app", Some("nope"), Value::Null));
        assert_eq!(bogus, Response::denied());
        let unknown = v.handle(&request("GET", "nomount/x", Some("root"), Value::Null));
        assert_eq!(unknown.status, 404);
    }

    #[test]
    fn approle_login_renew_to_max_and_revoke() {
        let mut v = vault(SEED);
        let bad = v.handle(&request(
            "POST",
            "auth/approle/login",
            None,
            json!({"role_id": "r1", "secret_id": "x"}),
        ));
        assert_eq!(bad, Response::errors(400, &["invalid role or secret ID"]));
        let ok = v.handle(&request(
            "POST",
            "auth/approle/login",
            None,
            json!({"role_id": "r1", "secret_id": "s1"}),
        ));
        let auth = ok.body.unwrap()["auth"].clone();
        assert_eq!(auth["lease_duration"], 600);
        assert_eq!(auth["policies"], json!(["app", "default"]));
        let token = auth["client_token"].as_str().unwrap().to_string();
        let renew = |v: &mut Vault| {
            v.advance(Duration::from_secs(9 * 60));
            v.handle(&request("POST", "auth/token/renew-self", Some(&token), json!({})))
                .body
                .unwrap()
        };
        assert_eq!(renew(&mut v)["auth"]["lease_duration"], 600);
        assert_eq!(renew(&mut v)["auth"]["lease_duration"], 600);
        let body = renew(&mut v);
        let left = body["auth"]["lease_duration"].as_u64().unwrap();
        assert!((178..=180).contains(&left), "{left}");
        assert!(body["warnings"][0].as_str().unwrap().contains("max_ttl"));
        v.advance(Duration::from_secs(181));
        let expired = v.handle(&request(
            "GET",
            "auth/token/lookup-self",
            Some(&token),
            Value::Null,
        ));
        assert_eq!(expired, Response::denied());
        let no_mount = v.handle(&request("POST", "auth/nope/login", None, json!({})));
        assert_eq!(no_mount, Response::denied());
    }

    #[test]
    fn time_warp_expires_tokens_unless_renewed() {
        let mut v = vault(SEED);
        v.advance(Duration::from_secs(3599));
        let renewed = v.handle(&request(
            "POST",
            "auth/token/renew-self",
            Some("app"),
            json!({"increment": "1h"}),
        ));
        assert_eq!(renewed.status, 200);
        v.advance(Duration::from_secs(3000));
        assert_eq!(
            v.handle(&request("GET", "secret/data/app", Some("app"), Value::Null))
                .status,
            200
        );
        v.advance(Duration::from_secs(700));
        assert_eq!(
            v.handle(&request("GET", "secret/data/app", Some("app"), Value::Null)),
            Response::denied()
        );
        let root = v.handle(&request("POST", "auth/token/renew-self", Some("root"), json!({})));
        assert_eq!(root, Response::errors(400, &["lease is not renewable"]));
    }

    #[test]
    fn dynamic_secrets_rotate_and_leases_renew_expire_and_revoke() {
        let mut v = vault(SEED);
        let read = |v: &mut Vault| {
            v.handle(&request("GET", "database/creds/app", Some("app"), Value::Null))
                .body
                .unwrap()
        };
        let first = read(&mut v);
        let second = read(&mut v);
        assert_ne!(first["data"]["password"], second["data"]["password"]);
        assert_eq!(first["lease_duration"], 60);
        let lease = first["lease_id"].as_str().unwrap().to_string();
        assert!(lease.starts_with("database/creds/app/"));
        let renew = |v: &mut Vault, lease: &str| {
            v.handle(&request(
                "PUT",
                "sys/leases/renew",
                Some("app"),
                json!({"lease_id": lease, "increment": 60}),
            ))
        };
        assert_eq!(renew(&mut v, &lease).body.unwrap()["lease_duration"], 60);
        v.advance(Duration::from_secs(61));
        assert_eq!(renew(&mut v, &lease), Response::errors(400, &["lease not found"]));
        let other = second["lease_id"].as_str().unwrap().to_string();
        let mut what = Map::new();
        what.insert("lease_id".into(), json!(other));
        assert_eq!(v.revoke(&what), 1);
        assert_eq!(renew(&mut v, &other), Response::errors(400, &["lease not found"]));
    }

    #[test]
    fn wrapped_responses_unwrap_once() {
        let mut v = vault(SEED);
        let mut req = request("POST", "auth/approle/role/app/secret-id", Some("root"), json!({}));
        req.wrap_ttl = Some(Duration::from_secs(60));
        let wrapped = v.handle(&req).body.unwrap();
        let wrapping = wrapped["wrap_info"]["token"].as_str().unwrap().to_string();
        let unwrap = |v: &mut Vault| {
            v.handle(&request(
                "POST",
                "sys/wrapping/unwrap",
                Some(&wrapping),
                json!({}),
            ))
        };
        let first = unwrap(&mut v);
        let secret_id = first.body.unwrap()["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            unwrap(&mut v),
            Response::errors(400, &["wrapping token is not valid or does not exist"])
        );
        let login = v.handle(&request(
            "POST",
            "auth/approle/login",
            None,
            json!({"role_id": "r1", "secret_id": secret_id}),
        ));
        assert_eq!(login.status, 200);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_796_158_722.5), "2026-12-01T20:58:42.500000000Z");
    }
}
