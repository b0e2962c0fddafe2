//! How many connections a start opens to Vault, counted by a relay between
//! vinit and a real OpenBao (TCP accepts, as the benchmark counts them):
//! over https at most two (each new one is a TLS handshake the server pays
//! for), over plain http one per read, all in parallel.

mod util;

use util::openbao::OpenBao;
use util::proxy::CountingProxy;
use util::{Report, Scratch, Vinit};

/// The paths a start reads, as in the benchmark's fleet and TLS sections.
const PATHS: [&str; 5] = ["one", "two", "three", "four", "five"];

/// AppRole and a value at each of [`PATHS`]; returns (role_id, secret_id).
fn seed(bao: &OpenBao) -> (String, String) {
    let rules: Vec<String> = PATHS.iter().map(|p| format!("secret/data/{p}")).collect();
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    bao.policy("app", &rules);
    for path in PATHS {
        bao.bao(&[
            "kv",
            "put",
            &format!("secret/{path}"),
            &format!("a={path}-a"),
            "b=2",
        ]);
    }
    bao.approle("app")
}

/// Runs vinit once through a fresh relay to `bao` (AppRole login, two keys
/// of each path); checks the values and returns the connections it opened.
fn connections_per_start(bao: &OpenBao, (role_id, secret_id): &(String, String)) -> usize {
    let proxy = CountingProxy::start(&bao.addr);
    let scratch = Scratch::new();
    let report = scratch.path("report");
    let mut vinit = Vinit::subreaper()
        .env("VAULT_ADDR", &proxy.addr)
        .env("VINIT_AUTH_METHOD", "approle")
        .env("VINIT_ROLE_ID", role_id)
        .env("VINIT_SECRET_ID", secret_id)
        .env("VINIT_REVOKE", "false");
    if let Some(ca) = &bao.ca_cert {
        vinit = vinit.env("VAULT_CACERT", ca);
    }
    for path in PATHS {
        let name = path.to_uppercase();
        vinit = vinit
            .env(&format!("{name}_A"), format!("vault:secret/data/{path}#a"))
            .env(&format!("{name}_B"), format!("vault:secret/data/{path}#b"));
    }
    vinit
        .probe([format!("report={}", report.display())])
        .run()
        .expect_code(0);
    let report = Report::read(&report);
    for path in PATHS {
        assert_eq!(
            report.env_var(&format!("{}_A", path.to_uppercase())),
            Some(format!("{path}-a"))
        );
    }
    proxy.accepted()
}

#[test]
fn https_start_opens_at_most_two_connections() {
    let bao = OpenBao::start_tls();
    let ids = seed(&bao);
    // Several starts: a race in the connection pool shows as a third
    // connection now and then, not every time.
    let counts: Vec<usize> = (0..10).map(|_| connections_per_start(&bao, &ids)).collect();
    assert!(
        counts.iter().all(|&n| (1..=2).contains(&n)),
        "connections per start (login + {} reads over https): {counts:?}; at most 2 expected",
        PATHS.len()
    );
}

#[test]
fn http_start_reads_in_parallel() {
    let bao = OpenBao::start();
    let ids = seed(&bao);
    // The reads start together: the login's connection serves one of them,
    // each of the others opens its own.
    let connections = connections_per_start(&bao, &ids);
    assert!(
        connections > 2,
        "login + {} reads over plain http opened {connections} connections: not in parallel",
        PATHS.len()
    );
}
