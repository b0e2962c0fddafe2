//! Parity: the same vinit scenarios against vinit-mock-vault and a real
//! OpenBao 2.7.2, set up alike (the mock from a seed, OpenBao through its
//! CLI and API): every auth method, KV versions (v1, v2, a version, a
//! deleted one), a missing key and path, a denied path, a wrapped secret_id
//! used twice, a template file, revocation at exit, 429 and sealed. Each
//! must give the same exit code, environment and files on both. A second
//! part sends the raw API requests vinit makes (and their failures) to
//! both and compares status codes and the JSON shapes. Each test prints
//! its table (scenario, OpenBao, mock), so the mock cannot drift from the
//! real API unnoticed.

#![allow(clippy::unwrap_used)]

mod util;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use util::fault::{FaultServer, Reply};
use util::mock::Mock;
use util::openbao::OpenBao;
use util::{keys, Report, Scratch, Vinit};

const ROLE_ID: &str = "parity-role-id";
const SECRET_ID: &str = "parity-secret-id";

/// The identities both servers accept, made by the test.
struct Identities {
    jwt_public_pem: String,
    jwt_file: PathBuf,
    k8s_file: PathBuf,
    client_cert: (PathBuf, PathBuf),
    client_ca: PathBuf,
    client_fingerprint: String,
}

impl Identities {
    fn new(scratch: &Scratch) -> Identities {
        let (key, jwt_public_pem) = keys::signing_key(scratch.dir());
        let now = keys::now();
        let jwt = keys::jwt(
            &key,
            &json!({"sub": "app", "aud": "vinit", "iat": now, "exp": now + 600}),
        );
        let k8s = keys::jwt(
            &key,
            &json!({
                "iss": "kubernetes/serviceaccount",
                "sub": "system:serviceaccount:default:app",
                "kubernetes.io/serviceaccount/namespace": "default",
                "kubernetes.io/serviceaccount/service-account.name": "app",
                "kubernetes.io/serviceaccount/service-account.uid": "1234-uid",
            }),
        );
        let (jwt_file, k8s_file) = (scratch.path("jwt"), scratch.path("k8s-token"));
        std::fs::write(&jwt_file, jwt).unwrap();
        std::fs::write(&k8s_file, k8s).unwrap();
        let ca = keys::certificate_authority(scratch.dir(), "client-ca");
        let client_cert = keys::client_certificate(scratch.dir(), &ca, "app");
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&client_cert.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let client_fingerprint = text.trim().rsplit('=').next().unwrap().to_string();
        Identities {
            jwt_public_pem,
            jwt_file,
            k8s_file,
            client_cert,
            client_ca: ca.0,
            client_fingerprint,
        }
    }
}

/// The mock's seed: the same state `seed_openbao` makes.
fn mock_seed(ids: &Identities) -> String {
    format!(
        r#"
policies:
  app: [secret/data/app, secret/data/nothing, kv/legacy, kv/nothing]
tokens:
  - {{id: root, policies: [root]}}
  - {{id: app-token, policies: [app], ttl: 1h}}
kv:
  secret:
    secrets:
      app:
        versions:
          - data: {{db_password: old}}
          - data: {{db_password: gone}}
            deleted: true
          - data: {{db_password: pw, api_key: k}}
      other: {{x: y}}
  kv:
    version: 1
    secrets:
      legacy: {{user: admin}}
pki:
  pki/issue/web: {{ttl: 1h, max_ttl: 72h}}
auth:
  approle:
    type: approle
    roles:
      app: {{role_id: {ROLE_ID}, secret_ids: [{SECRET_ID}], policies: [app]}}
      short: {{role_id: short-role-id, secret_ids: [{SECRET_ID}], policies: [app], ttl: 3s, max_ttl: 1h}}
  jwt:
    type: jwt
    roles:
      app: {{subjects: [app], policies: [app]}}
  k8s:
    type: kubernetes
    roles:
      app: {{subjects: ["system:serviceaccount:default:app"], policies: [app]}}
  cert:
    type: cert
    roles:
      app: {{fingerprints: ["{fingerprint}"], policies: [app]}}
"#,
        fingerprint = ids.client_fingerprint
    )
}

/// Makes in OpenBao what `mock_seed` declares.
fn seed_openbao(bao: &OpenBao, ids: &Identities, review: &FaultServer) {
    for version in ["db_password=old", "db_password=gone", "db_password=pw"] {
        bao.bao(&["kv", "put", "secret/app", version]);
    }
    bao.bao(&["kv", "patch", "secret/app", "api_key=k"]);
    bao.bao(&["kv", "delete", "-versions=2", "secret/app"]);
    bao.bao(&["kv", "put", "secret/other", "x=y"]);
    bao.bao(&["secrets", "enable", "-version=1", "-path=kv", "kv"]);
    bao.bao(&["kv", "put", "kv/legacy", "user=admin"]);
    bao.policy(
        "app",
        &[
            "secret/data/app",
            "secret/data/nothing",
            "kv/legacy",
            "kv/nothing",
        ],
    );
    bao.bao(&["token", "create", "-id=app-token", "-policy=app", "-ttl=1h"]);
    bao.bao(&["secrets", "enable", "pki"]);
    bao.bao(&[
        "write",
        "pki/root/generate/internal",
        "common_name=parity-ca",
        "ttl=72h",
    ]);
    bao.bao(&[
        "write",
        "pki/roles/web",
        "allowed_domains=internal",
        "allow_subdomains=true",
        "max_ttl=72h",
    ]);
    bao.bao(&["auth", "enable", "approle"]);
    bao.bao(&[
        "write",
        "auth/approle/role/app",
        "token_policies=app",
        "token_ttl=1h",
    ]);
    bao.bao(&[
        "write",
        "auth/approle/role/app/role-id",
        &format!("role_id={ROLE_ID}"),
    ]);
    bao.bao(&[
        "write",
        "auth/approle/role/app/custom-secret-id",
        &format!("secret_id={SECRET_ID}"),
    ]);
    bao.bao(&[
        "write",
        "auth/approle/role/short",
        "token_policies=app",
        "token_ttl=3s",
        "token_max_ttl=1h",
    ]);
    bao.bao(&[
        "write",
        "auth/approle/role/short/role-id",
        "role_id=short-role-id",
    ]);
    bao.bao(&[
        "write",
        "auth/approle/role/short/custom-secret-id",
        &format!("secret_id={SECRET_ID}"),
    ]);
    bao.bao(&["auth", "enable", "jwt"]);
    bao.bao(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys={}", ids.jwt_public_pem),
    ]);
    bao.bao(&[
        "write",
        "auth/jwt/role/app",
        "role_type=jwt",
        "user_claim=sub",
        "bound_subject=app",
        "bound_audiences=vinit",
        "token_policies=app",
    ]);
    bao.kubernetes_auth(&review.addr, &ids.client_ca);
    bao.bao(&["auth", "enable", "cert"]);
    bao.bao(&[
        "write",
        "auth/cert/certs/app",
        "token_policies=app",
        &format!("certificate=@{}", ids.client_ca.display()),
    ]);
}

fn token_review() -> FaultServer {
    FaultServer::start(vec![Reply::json(
        201,
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,
            "user":{"username":"system:serviceaccount:default:app","uid":"1234-uid",
            "groups":["system:serviceaccounts"]}}}"#,
    )])
}

/// One server under test.
struct Backend {
    addr: String,
    ca: Option<PathBuf>,
}

impl Backend {
    /// `curl` against the raw API: (status, JSON body or null).
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        wrap: bool,
    ) -> (u16, Value) {
        let mut command = Command::new("curl");
        command.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
        if let Some(ca) = &self.ca {
            command.arg("--cacert").arg(ca);
        }
        if let Some(token) = token {
            command.args(["-H", &format!("X-Vault-Token: {token}")]);
        }
        if wrap {
            command.args(["-H", "X-Vault-Wrap-TTL: 5m"]);
        }
        if let Some(body) = body {
            command.args(["-d", &body.to_string()]);
        }
        command.arg(format!("{}/v1/{path}", self.addr));
        let output = command.output().expect("curl");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    fn vinit(&self) -> Vinit {
        let mut vinit = Vinit::subreaper()
            .env("VAULT_ADDR", &self.addr)
            .env("VINIT_TIMEOUT", "2s");
        if let Some(ca) = &self.ca {
            vinit = vinit.env("VAULT_CACERT", ca);
        }
        vinit
    }

    /// A response-wrapped secret_id for the approle role, made as an
    /// operator would (root, `X-Vault-Wrap-TTL`).
    fn wrapped_secret_id(&self) -> String {
        let (status, body) = self.call(
            "POST",
            "auth/approle/role/app/secret-id",
            Some("root"),
            Some(&json!({})),
            true,
        );
        assert_eq!(status, 200, "{body}");
        body["wrap_info"]["token"].as_str().unwrap().to_string()
    }
}

/// What vinit did in one scenario: exit code, the app's variables, the file.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    vars: Vec<(String, Option<String>)>,
    file: Option<(String, u32)>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.code)?;
        for (name, value) in &self.vars {
            if let Some(value) = value {
                write!(f, ", {name}={value}")?;
            }
        }
        if let Some((text, mode)) = &self.file {
            write!(f, ", file {mode:04o} {text:?}")?;
        }
        Ok(())
    }
}

/// A scenario: variables for vinit, the app variables to compare, and
/// optionally a template.
struct Scenario<'a> {
    name: &'a str,
    env: Vec<(&'a str, String)>,
    show: &'a [&'a str],
    template: Option<&'a str>,
}

fn run(backend: &Backend, scenario: &Scenario) -> (Outcome, String) {
    let scratch = Scratch::new();
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let destination = out.path().join("file");
    let report = scratch.path("report");
    let mut vinit = backend.vinit();
    for (name, value) in &scenario.env {
        vinit = vinit.env(name, value);
    }
    if let Some(template) = scenario.template {
        let config = scratch.path("vinit.toml");
        std::fs::write(
            &config,
            format!(
                "[[template]]\ncontents = {template:?}\ndestination = \"{}\"\n",
                destination.display()
            ),
        )
        .unwrap();
        vinit = vinit.arg("--config").arg(&config);
    }
    let finished = vinit.probe([format!("report={}", report.display())]).run();
    let vars = if report.exists() {
        let seen = Report::read(&report);
        scenario
            .show
            .iter()
            .map(|name| (name.to_string(), seen.env_var(name)))
            .collect()
    } else {
        scenario
            .show
            .iter()
            .map(|name| (name.to_string(), None))
            .collect()
    };
    let file = std::fs::read_to_string(&destination).ok().map(|text| {
        let mode = std::fs::metadata(&destination).unwrap().permissions().mode() & 0o7777;
        (text, mode)
    });
    let stderr = finished.stderr.replace(&backend.addr, "ADDR");
    (
        Outcome {
            code: finished.code,
            vars,
            file,
        },
        stderr,
    )
}

/// Runs each scenario on both, prints the table, fails on any difference.
fn compare(bao: &Backend, mock: &Backend, scenarios: &[Scenario], expected: &[i32]) {
    let mut table = String::from("| scenario | OpenBao 2.7.2 | vinit-mock-vault |\n| --- | --- | --- |\n");
    let mut differences = Vec::new();
    for (scenario, want) in scenarios.iter().zip(expected) {
        let (real, real_err) = run(bao, scenario);
        let (mocked, mock_err) = run(mock, scenario);
        table.push_str(&format!("| {} | {real} | {mocked} |\n", scenario.name));
        if real != mocked {
            differences.push(format!(
                "{}:\n  OpenBao: {real}\n{real_err}\n  mock: {mocked}\n{mock_err}",
                scenario.name
            ));
        }
        if real.code != *want {
            differences.push(format!(
                "{}: OpenBao exit {} (the scenario expects {want})\n{real_err}",
                scenario.name, real.code
            ));
        }
    }
    eprintln!("{table}");
    assert!(
        differences.is_empty(),
        "the mock and OpenBao differ:\n{}",
        differences.join("\n")
    );
}

fn scenario<'a>(name: &'a str, env: &[(&'a str, &str)], show: &'a [&'a str]) -> Scenario<'a> {
    Scenario {
        name,
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        show,
        template: None,
    }
}

#[test]
fn vinit_gets_the_same_from_the_mock_and_openbao() {
    let scratch = Scratch::new();
    let ids = Identities::new(&scratch);
    let review = token_review();
    let real = OpenBao::start();
    seed_openbao(&real, &ids, &review);
    let mocked = Mock::start(&mock_seed(&ids));
    let bao = Backend {
        addr: real.addr.clone(),
        ca: None,
    };
    let mock = Backend {
        addr: mocked.addr.clone(),
        ca: None,
    };
    let approle = [
        ("VINIT_AUTH_METHOD", "approle"),
        ("VINIT_ROLE_ID", ROLE_ID),
        ("VINIT_SECRET_ID", SECRET_ID),
    ];
    let with_approle = |more: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        approle.iter().chain(more).copied().collect()
    };
    let jwt = ids.jwt_file.display().to_string();
    let k8s = ids.k8s_file.display().to_string();
    let db = ("DB_PASSWORD", "vault:secret/data/app#db_password");
    let mut scenarios = vec![
        scenario(
            "token: KV v2 latest",
            &[("VAULT_TOKEN", "app-token"), db],
            &["DB_PASSWORD", "VAULT_TOKEN"],
        ),
        scenario("approle login", &with_approle(&[db]), &["DB_PASSWORD"]),
        scenario(
            "jwt login",
            &[
                ("VINIT_AUTH_METHOD", "jwt"),
                ("VINIT_ROLE", "app"),
                ("VINIT_JWT_FILE", &jwt),
                db,
            ],
            &["DB_PASSWORD"],
        ),
        scenario(
            "kubernetes login",
            &[
                ("VINIT_AUTH_METHOD", "kubernetes"),
                ("VINIT_AUTH_MOUNT", "k8s"),
                ("VINIT_ROLE", "app"),
                ("VINIT_JWT_FILE", &k8s),
                db,
            ],
            &["DB_PASSWORD"],
        ),
        scenario(
            "KV v2 version 1, inline, KV v1",
            &with_approle(&[
                ("OLD", "vault:secret/data/app#db_password#1"),
                ("URL", "https://x/?k=${vault:secret/data/app#api_key}"),
                ("USER", "vault:kv/legacy#user"),
            ]),
            &["OLD", "URL", "USER"],
        ),
        scenario(
            "KV v2 deleted version",
            &with_approle(&[("GONE", "vault:secret/data/app#db_password#2")]),
            &["GONE"],
        ),
        scenario(
            "KV v2 missing version",
            &with_approle(&[("NOPE", "vault:secret/data/app#db_password#9")]),
            &["NOPE"],
        ),
        scenario(
            "missing key",
            &with_approle(&[("NOPE", "vault:secret/data/app#nope")]),
            &["NOPE"],
        ),
        scenario(
            "missing path",
            &with_approle(&[("NOPE", "vault:secret/data/nothing#x")]),
            &["NOPE"],
        ),
        scenario(
            "missing KV v1 path",
            &with_approle(&[("NOPE", "vault:kv/nothing#x")]),
            &["NOPE"],
        ),
        scenario(
            "denied path",
            &with_approle(&[("X", "vault:secret/data/other#x")]),
            &["X"],
        ),
        scenario(
            "KV v2 path without data/",
            &[("VAULT_TOKEN", "root"), ("P", "vault:secret/app#db_password")],
            &["P"],
        ),
        scenario(
            "bad secret_id",
            &[
                ("VINIT_AUTH_METHOD", "approle"),
                ("VINIT_ROLE_ID", ROLE_ID),
                ("VINIT_SECRET_ID", "wrong"),
                db,
            ],
            &[],
        ),
        scenario("bad token", &[("VAULT_TOKEN", "nope"), db], &["DB_PASSWORD"]),
        scenario(
            "unknown auth mount",
            &[("VINIT_AUTH_MOUNT", "nowhere"), db]
                .iter()
                .chain(&approle)
                .copied()
                .collect::<Vec<_>>(),
            &[],
        ),
        scenario(
            "vault:login hands the token",
            &with_approle(&[("T", "vault:login")]),
            &[],
        ),
    ];
    scenarios.push(Scenario {
        name: "template to tmpfs",
        template: Some("pw={{ secret('secret/data/app').db_password }} v1={{ secret('secret/data/app', version=1).db_password }}"),
        ..scenario("", &with_approle(&[]), &[])
    });
    let expected = [0, 0, 0, 0, 0, 65, 65, 65, 65, 65, 77, 65, 77, 77, 77, 0, 0];
    compare(&bao, &mock, &scenarios, &expected);

    // A wrapped secret_id works once; the second use is refused (77) on both.
    let mut table = String::from("| wrapped secret_id | OpenBao | mock |\n| --- | --- | --- |\n");
    let (first_bao, first_mock) = (bao.wrapped_secret_id(), mock.wrapped_secret_id());
    for attempt in ["first use", "reuse"] {
        let outcome = |backend: &Backend, wrapping: &str| {
            run(
                backend,
                &scenario(
                    attempt,
                    &[
                        ("VINIT_AUTH_METHOD", "approle"),
                        ("VINIT_ROLE_ID", ROLE_ID),
                        ("VINIT_SECRET_ID", wrapping),
                        ("VINIT_SECRET_ID_WRAPPED", "true"),
                        db,
                    ],
                    &["DB_PASSWORD"],
                ),
            )
        };
        let ((real, real_err), (mocked, mock_err)) = (outcome(&bao, &first_bao), outcome(&mock, &first_mock));
        table.push_str(&format!("| {attempt} | {real} | {mocked} |\n"));
        assert_eq!(
            real, mocked,
            "wrapped secret_id, {attempt}:\n{real_err}\n{mock_err}"
        );
        assert_eq!(real.code, if attempt == "reuse" { 77 } else { 0 }, "{real_err}");
    }
    eprintln!("{table}");

    // Revocation: in exec mode vinit revokes the token it logged in with
    // just before the exec (VINIT_REVOKE=false keeps it): the number of live
    // tokens is back where it was on both.
    let mut table =
        String::from("| live tokens after an exec-mode login | OpenBao | mock |\n| --- | --- | --- |\n");
    for revoke in ["true", "false"] {
        let mut added = Vec::new();
        for backend in [&bao, &mock] {
            let live = || {
                backend
                    .call("LIST", "auth/token/accessors", Some("root"), None, false)
                    .1["data"]["keys"]
                    .as_array()
                    .map_or(0, Vec::len)
            };
            let before = live();
            backend
                .vinit()
                .arg("--exec")
                .env("VINIT_AUTH_METHOD", "approle")
                .env("VINIT_ROLE_ID", ROLE_ID)
                .env("VINIT_SECRET_ID", SECRET_ID)
                .env("VINIT_REVOKE", revoke)
                .env("DB_PASSWORD", "vault:secret/data/app#db_password")
                .probe(["exit=0"])
                .run()
                .expect_code(0);
            added.push(live() as i64 - before as i64);
        }
        table.push_str(&format!(
            "| VINIT_REVOKE={revoke} | {:+} | {:+} |\n",
            added[0], added[1]
        ));
        assert_eq!(
            added[0], added[1],
            "VINIT_REVOKE={revoke}: OpenBao and the mock differ"
        );
        assert_eq!(added[0], if revoke == "true" { 0 } else { 1 });
    }
    eprintln!("{table}");

    running_life_matches(&bao, &mock);
    api_answers_match(&bao, &mock);

    // Transient failures until the deadline: 429, then sealed (last: a
    // sealed dev server stays sealed). The same exit code (69) on both.
    real.bao(&[
        "write",
        "sys/quotas/rate-limit/parity",
        "path=secret/data/app",
        "rate=1",
        "interval=1m",
    ]);
    let _ = bao.call("GET", "secret/data/app", Some("app-token"), None, false);
    mocked.add_fault(json!({"path": "secret/data/app", "rate_limited": "1s"}));
    let busy = [scenario(
        "429 until the deadline",
        &[("VAULT_TOKEN", "app-token"), db],
        &["DB_PASSWORD"],
    )];
    compare(&bao, &mock, &busy, &[69]);
    let statuses = (
        bao.call("GET", "secret/data/app", Some("app-token"), None, false)
            .0,
        mock.call("GET", "secret/data/app", Some("app-token"), None, false)
            .0,
    );
    assert_eq!(statuses, (429, 429));
    mocked.clear_faults();
    real.bao(&["delete", "sys/quotas/rate-limit/parity"]);

    real.bao(&["operator", "seal"]);
    mocked.add_fault(json!({"sealed": true}));
    let sealed = [scenario(
        "sealed",
        &[("VAULT_TOKEN", "app-token"), db],
        &["DB_PASSWORD"],
    )];
    compare(&bao, &mock, &sealed, &[69]);
    for path in ["secret/data/app", "sys/health"] {
        let real = bao.call("GET", path, Some("app-token"), None, false);
        let mocked = mock.call("GET", path, Some("app-token"), None, false);
        assert_eq!(
            (real.0, shape(&real.1)),
            (mocked.0, shape(&mocked.1)),
            "sealed {path}"
        );
        assert_eq!(real.0, 503);
    }
    let log = mocked.log();
    assert!(log.contains("GET /v1/secret/data/app 503"), "{log}");
    assert!(
        !log.contains("correct") && !log.contains(SECRET_ID),
        "the log shows a value:\n{log}"
    );
}

/// Running life (supervise mode): a token with a 3 s TTL is renewed while
/// the app runs (it outlives its first TTL, and lookup-self shows the
/// renewal), and revoked when vinit exits unless VINIT_REVOKE=false.
fn running_life_matches(bao: &Backend, mock: &Backend) {
    let mut table =
        String::from("| running life (supervise, token TTL 3s) | OpenBao | mock |\n| --- | --- | --- |\n");
    for revoke in ["false", "true"] {
        let mut seen = Vec::new();
        for backend in [bao, mock] {
            let scratch = Scratch::new();
            let report = scratch.path("report");
            backend
                .vinit()
                .env("VINIT_AUTH_METHOD", "approle")
                .env("VINIT_ROLE_ID", "short-role-id")
                .env("VINIT_SECRET_ID", SECRET_ID)
                .env("VINIT_REVOKE", revoke)
                .env("T", "vault:login")
                .probe([format!("report={}", report.display()), "sleep=4500".into()])
                .run()
                .expect_code(0);
            let token = Report::read(&report).env_var("T").unwrap();
            let (status, body) = backend.call("GET", "auth/token/lookup-self", Some(&token), None, false);
            seen.push((status, body["data"]["last_renewal_time"].is_u64()));
        }
        let row = |(status, renewed): (u16, bool)| format!("lookup-self {status}, renewed: {renewed}");
        table.push_str(&format!(
            "| VINIT_REVOKE={revoke}, app ran 4.5s | {} | {} |\n",
            row(seen[0]),
            row(seen[1])
        ));
        assert_eq!(
            seen[0], seen[1],
            "running life, VINIT_REVOKE={revoke}: OpenBao and the mock differ"
        );
        let expected = if revoke == "true" {
            (403, false)
        } else {
            (200, true)
        };
        assert_eq!(seen[0], expected, "VINIT_REVOKE={revoke}");
    }
    eprintln!("{table}");
}

/// The key structure of a JSON answer (objects' keys, recursively through
/// `auth`, `wrap_info`, `data` and KV `metadata`), without values.
fn shape(value: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Value::Object(map) = value {
        for (key, inner) in map {
            keys.insert(key.clone());
            if matches!(key.as_str(), "auth" | "wrap_info")
                || (key == "data" && inner.get("metadata").is_some())
            {
                for sub in shape(inner) {
                    keys.insert(format!("{key}.{sub}"));
                }
            }
        }
    }
    keys.remove("cluster_name");
    keys.remove("cluster_id");
    keys
}

/// The raw requests vinit makes, and their failures: same status and shape.
fn api_answers_match(bao: &Backend, mock: &Backend) {
    let login = json!({"role_id": ROLE_ID, "secret_id": SECRET_ID});
    let (_, answer) = bao.call("POST", "auth/approle/login", None, Some(&login), false);
    let bao_token = answer["auth"]["client_token"].as_str().unwrap().to_string();
    let (_, answer) = mock.call("POST", "auth/approle/login", None, Some(&login), false);
    let mock_token = answer["auth"]["client_token"].as_str().unwrap().to_string();
    #[allow(clippy::type_complexity)]
    let requests: &[(&str, &str, &str, Option<Value>)] = &[
        ("GET", "sys/health", "", None),
        ("POST", "auth/approle/login", "", Some(login.clone())),
        (
            "POST",
            "auth/approle/login",
            "",
            Some(json!({"role_id": ROLE_ID, "secret_id": "wrong"})),
        ),
        ("POST", "auth/nowhere/login", "", Some(json!({}))),
        ("GET", "secret/data/app", "login", None),
        ("GET", "secret/data/app?version=1", "login", None),
        ("GET", "secret/data/app?version=2", "login", None),
        ("GET", "secret/data/app?version=9", "login", None),
        ("GET", "secret/data/nothing", "login", None),
        ("GET", "secret/data/other", "login", None),
        ("GET", "secret/app", "root", None),
        ("GET", "kv/legacy", "login", None),
        ("GET", "kv/nothing", "login", None),
        ("GET", "secret/data/app", "bogus", None),
        ("GET", "nomount/x", "root", None),
        (
            "POST",
            "pki/issue/web",
            "root",
            Some(json!({"common_name": "web.internal", "ttl": "1h"})),
        ),
        ("GET", "auth/token/lookup-self", "login", None),
        (
            "POST",
            "auth/token/renew-self",
            "login",
            Some(json!({"increment": "30m"})),
        ),
        ("POST", "auth/token/renew-self", "login", None),
        ("POST", "auth/token/renew-self", "root", Some(json!({}))),
        ("POST", "sys/wrapping/unwrap", "bogus", Some(json!({}))),
        (
            "PUT",
            "sys/leases/renew",
            "root",
            Some(json!({"lease_id": "database/creds/x/abc", "increment": 60})),
        ),
        (
            "PUT",
            "sys/leases/revoke",
            "root",
            Some(json!({"lease_id": "database/creds/x/abc"})),
        ),
        ("POST", "auth/token/revoke-self", "login", None),
        ("GET", "auth/token/lookup-self", "login", None),
    ];
    let mut table = String::from("| request | OpenBao | mock |\n| --- | --- | --- |\n");
    let mut differences = Vec::new();
    for (method, path, token, body) in requests {
        let token_for = |backend_token: &str| match *token {
            "" => None,
            "login" => Some(backend_token.to_string()),
            other => Some(other.to_string()),
        };
        let real = bao.call(
            method,
            path,
            token_for(&bao_token).as_deref(),
            body.as_ref(),
            false,
        );
        let mocked = mock.call(
            method,
            path,
            token_for(&mock_token).as_deref(),
            body.as_ref(),
            false,
        );
        let row = format!(
            "{method} {path} ({})",
            if token.is_empty() { "no token" } else { token }
        );
        table.push_str(&format!("| {row} | {} | {} |\n", real.0, mocked.0));
        if real.0 != mocked.0 || shape(&real.1) != shape(&mocked.1) {
            differences.push(format!(
                "{row}:\n  OpenBao {} {}\n  mock    {} {}",
                real.0, real.1, mocked.0, mocked.1
            ));
        }
        let (real_errors, mock_errors) = (&real.1["errors"], &mocked.1["errors"]);
        if real_errors != mock_errors {
            differences.push(format!("{row}: errors {real_errors} vs {mock_errors}"));
        }
    }
    eprintln!("{table}");
    assert!(
        differences.is_empty(),
        "API answers differ:\n{}",
        differences.join("\n")
    );
}

#[test]
fn cert_login_over_tls_matches() {
    let scratch = Scratch::new();
    let ids = Identities::new(&scratch);
    let review = token_review();
    let real = OpenBao::start_tls();
    seed_openbao(&real, &ids, &review);
    let ca = real.ca_cert.clone().unwrap();
    let server_dir: &Path = ca.parent().unwrap();
    let mocked = Mock::start_tls(
        &mock_seed(&ids),
        &server_dir.join("vault-cert.pem"),
        &server_dir.join("vault-key.pem"),
    );
    let bao = Backend {
        addr: real.addr.clone(),
        ca: Some(ca.clone()),
    };
    let mock = Backend {
        addr: mocked.addr.clone(),
        ca: Some(ca),
    };
    let cert = ids.client_cert.0.display().to_string();
    let key = ids.client_cert.1.display().to_string();
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = keys::certificate_authority(other_dir.path(), "other-ca");
    let (other_cert, other_key) = keys::client_certificate(other_dir.path(), &other_ca, "stranger");
    let (other_cert, other_key) = (other_cert.display().to_string(), other_key.display().to_string());
    let db = ("DB_PASSWORD", "vault:secret/data/app#db_password");
    let scenarios = [
        scenario(
            "cert login",
            &[
                ("VINIT_AUTH_METHOD", "cert"),
                ("VINIT_ROLE", "app"),
                ("VAULT_CLIENT_CERT", &cert),
                ("VAULT_CLIENT_KEY", &key),
                db,
            ],
            &["DB_PASSWORD"],
        ),
        scenario(
            "cert login, no role named",
            &[
                ("VINIT_AUTH_METHOD", "cert"),
                ("VAULT_CLIENT_CERT", &cert),
                ("VAULT_CLIENT_KEY", &key),
                db,
            ],
            &["DB_PASSWORD"],
        ),
        scenario(
            "cert login, unknown certificate",
            &[
                ("VINIT_AUTH_METHOD", "cert"),
                ("VAULT_CLIENT_CERT", &other_cert),
                ("VAULT_CLIENT_KEY", &other_key),
                db,
            ],
            &["DB_PASSWORD"],
        ),
        scenario(
            "cert login, no certificate",
            &[("VINIT_AUTH_METHOD", "cert"), db],
            &["DB_PASSWORD"],
        ),
        scenario(
            "token over TLS",
            &[("VAULT_TOKEN", "app-token"), db],
            &["DB_PASSWORD"],
        ),
    ];
    compare(&bao, &mock, &scenarios, &[0, 0, 77, 77, 0]);
}
