//! The remaining auth methods against a real OpenBao, and TLS: Kubernetes
//! (OpenBao asks a fake TokenReview endpoint served by the test), JWT (a key
//! pair the test makes), TLS certificates (a CA the test makes, OpenBao on
//! https), custom mounts, CA files, a certificate that does not verify,
//! skip-verify, and the TLS server name.

mod util;

use serde_json::json;
use util::fault::{FaultServer, Reply};
use util::openbao::OpenBao;
use util::{keys, Report, Scratch, Vinit};

fn seed(bao: &OpenBao) {
    bao.bao(&["kv", "put", "secret/app", "db_password=pw"]);
    bao.policy("app", &["secret/data/app"]);
}

fn expect_password(report: &std::path::Path) {
    assert_eq!(Report::read(report).env_var("DB_PASSWORD").as_deref(), Some("pw"));
}

#[test]
fn kubernetes_login_with_a_token_review_and_a_rotating_token_file() {
    let bao = OpenBao::start();
    seed(&bao);
    let review = FaultServer::start(vec![Reply::json(
        201,
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,
            "user":{"username":"system:serviceaccount:default:app","uid":"1234-uid",
            "groups":["system:serviceaccounts"]}}}"#,
    )]);
    // Unused over http, but the config requires a cluster CA.
    let ca_dir = tempfile::tempdir().unwrap();
    let cluster_ca = keys::certificate_authority(ca_dir.path(), "cluster-ca");
    bao.kubernetes_auth(&review.addr, &cluster_ca.0);
    let scratch = Scratch::new();
    let (key, _) = keys::signing_key(scratch.dir());
    let service_account_token = keys::jwt(
        &key,
        &json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:default:app",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "app",
            "kubernetes.io/serviceaccount/service-account.uid": "1234-uid",
        }),
    );
    let token_file = scratch.path("token");
    std::fs::write(&token_file, format!("{service_account_token}\n")).unwrap();
    let report = scratch.path("report");
    let vinit = || {
        Vinit::subreaper()
            .env("VAULT_ADDR", &bao.addr)
            .env("VINIT_AUTH_METHOD", "kubernetes")
            .env("VINIT_AUTH_MOUNT", "k8s")
            .env("VINIT_ROLE", "app")
            .env("VINIT_JWT_FILE", &token_file)
            .env("DB_PASSWORD", "vault:secret/data/app#db_password")
            .probe([format!("report={}", report.display())])
    };
    vinit().run().expect_code(0);
    expect_password(&report);
    assert!(
        review.served() >= 1,
        "OpenBao never asked the TokenReview endpoint"
    );

    // The file is read at each login: a rotated (here: emptied) token is seen.
    std::fs::write(&token_file, "\n").unwrap();
    let finished = vinit().run();
    finished.expect_code(78);
    assert!(finished.stderr.contains("VINIT_JWT_FILE"), "{}", finished.stderr);
}

#[test]
fn jwt_login_with_a_key_pair_the_test_made() {
    let bao = OpenBao::start();
    seed(&bao);
    let scratch = Scratch::new();
    let (key, public_pem) = keys::signing_key(scratch.dir());
    bao.bao(&["auth", "enable", "jwt"]);
    bao.bao(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys={public_pem}"),
    ]);
    bao.bao(&[
        "write",
        "auth/jwt/role/app",
        "role_type=jwt",
        "user_claim=sub",
        "bound_audiences=vinit",
        "token_policies=app",
    ]);
    let now = keys::now();
    let good = keys::jwt(
        &key,
        &json!({"sub": "app", "aud": "vinit", "iat": now, "exp": now + 600}),
    );
    let jwt_file = scratch.path("jwt");
    std::fs::write(&jwt_file, &good).unwrap();
    let report = scratch.path("report");
    let run = || {
        Vinit::subreaper()
            .env("VAULT_ADDR", &bao.addr)
            .env("VINIT_AUTH_METHOD", "jwt")
            .env("VINIT_ROLE", "app")
            .env("VINIT_JWT_FILE", &jwt_file)
            .env("DB_PASSWORD", "vault:secret/data/app#db_password")
            .probe([format!("report={}", report.display())])
            .run()
    };
    run().expect_code(0);
    expect_password(&report);

    // A token for another audience is refused: 77, and the JWT is not shown.
    let wrong = keys::jwt(
        &key,
        &json!({"sub": "app", "aud": "other", "iat": now, "exp": now + 600}),
    );
    std::fs::write(&jwt_file, &wrong).unwrap();
    let finished = run();
    finished.expect_code(77);
    assert!(finished.stderr.contains("auth/jwt/login"), "{}", finished.stderr);
    assert!(!finished.stderr.contains(&wrong[..40]), "the JWT leaked");
}

#[test]
fn cert_login_over_tls_with_a_ca_the_test_made() {
    let bao = OpenBao::start_tls();
    seed(&bao);
    let scratch = Scratch::new();
    let ca = keys::certificate_authority(scratch.dir(), "client-ca");
    let (cert, key) = keys::client_certificate(scratch.dir(), &ca, "app");
    bao.bao(&["auth", "enable", "cert"]);
    bao.bao(&[
        "write",
        "auth/cert/certs/app",
        "token_policies=app",
        &format!("certificate=@{}", ca.0.display()),
    ]);
    let report = scratch.path("report");
    Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_CACERT", bao.ca_cert.as_ref().unwrap())
        .env("VAULT_CLIENT_CERT", &cert)
        .env("VAULT_CLIENT_KEY", &key)
        .env("VINIT_AUTH_METHOD", "cert")
        .env("VINIT_ROLE", "app")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .probe([format!("report={}", report.display())])
        .run()
        .expect_code(0);
    expect_password(&report);
    let seen = Report::read(&report);
    assert!(
        seen.env_var("VAULT_CACERT").is_some(),
        "the CA setting stays for the app"
    );
}

#[test]
fn tls_verification_failures_skip_verify_and_server_name() {
    let bao = OpenBao::start_tls();
    seed(&bao);
    let base = || {
        Vinit::subreaper()
            .env("VAULT_TOKEN", "root")
            .env("VINIT_TIMEOUT", "5s")
            .env("DB_PASSWORD", "vault:secret/data/app#db_password")
            .probe(["exit=0"])
    };

    // No CA given: the system roots do not know the dev CA. 69 at once.
    let finished = base().env("VAULT_ADDR", &bao.addr).run();
    finished.expect_code(69);
    assert!(finished.stderr.contains("TLS"), "{}", finished.stderr);
    assert!(
        finished.stderr.to_lowercase().contains("certificate"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.elapsed < std::time::Duration::from_secs(3),
        "a TLS failure was retried"
    );

    // Skip verification: works, with a warning naming the variable.
    let finished = base()
        .env("VAULT_ADDR", &bao.addr)
        .env("BAO_SKIP_VERIFY", "true")
        .run();
    finished.expect_code(0);
    assert!(
        finished.stderr.contains("VAULT_SKIP_VERIFY"),
        "{}",
        finished.stderr
    );
    let finished = base()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_SKIP_VERIFY", "false")
        .run();
    finished.expect_code(69);

    // The TLS server name: the certificate names localhost, not this name.
    let ca = bao.ca_cert.as_ref().unwrap();
    let finished = base()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_CACERT", ca)
        .env("VAULT_TLS_SERVER_NAME", "localhost")
        .run();
    finished.expect_code(0);
    let finished = base()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_CACERT", ca)
        .env("VAULT_TLS_SERVER_NAME", "vault.example.internal")
        .run();
    finished.expect_code(69);
    assert!(finished.stderr.contains("TLS"), "{}", finished.stderr);

    // A CA directory works like a CA file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(ca, dir.path().join("ca.pem")).unwrap();
    base()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_CAPATH", dir.path())
        .run()
        .expect_code(0);

    // An unreadable CA file is a configuration error naming the variable.
    let finished = base()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_CACERT", "/nonexistent/ca.pem")
        .run();
    finished.expect_code(78);
    assert!(finished.stderr.contains("VAULT_CACERT"), "{}", finished.stderr);
}
