//! `--redact`: the app's stdout and stderr pass through vinit with every
//! secret value replaced by `[redacted]`, wherever the writes split it; all
//! other bytes, the exit code and signals are unchanged. Values come from a
//! scripted Vault (the fault server).

mod util;

use util::fault::{FaultServer, Reply};
use util::{Scratch, Vinit};

const PASSWORD: &str = "hunter2-s3cret-value";
const API_KEY: &str = "ak_live_0123456789";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn vault() -> FaultServer {
    FaultServer::start(vec![Reply::kv2(&format!(
        r#"{{"db_password":"{PASSWORD}","api_key":"{API_KEY}","pin":"123"}}"#
    ))])
}

/// vinit `--redact` with DB_PASSWORD and API_KEY from `server`.
fn redacting(server: &FaultServer) -> Vinit {
    Vinit::subreaper()
        .arg("--redact")
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", "t")
        .env("VINIT_TIMEOUT", "5s")
        .env("DB_PASSWORD", "vault:secret/data/app#db_password")
        .env("API_KEY", "vault:secret/data/app#api_key")
}

/// The probe step writing `text` to `stream` in writes of `sizes`.
fn chunks(stream: &str, sizes: &str, pause_ms: u64, text: &str) -> String {
    format!("chunks={stream}:{sizes}:{pause_ms}:{}", hex(text.as_bytes()))
}

#[test]
fn a_value_mid_line_is_replaced_on_stdout_and_stderr() {
    let server = vault();
    let line = format!("connecting with password={PASSWORD} key={API_KEY}; ok\n");
    let finished = redacting(&server)
        .probe([chunks("out", "4096", 0, &line), chunks("err", "4096", 0, &line)])
        .run();
    finished.expect_code(0);
    let expected = "connecting with password=[redacted] key=[redacted]; ok\n";
    assert_eq!(finished.stdout_text(), expected);
    assert!(finished.stderr.contains(expected), "{}", finished.stderr);
    assert!(!finished.stderr.contains(PASSWORD), "{}", finished.stderr);
}

#[test]
fn a_value_split_across_two_writes_with_a_pause_is_caught() {
    let server = vault();
    let line = format!("before {PASSWORD} after\n");
    // The first write ends in the middle of the value; 300 ms pass.
    let first = "before ".len() + PASSWORD.len() / 2;
    let finished = redacting(&server)
        .probe([chunks("out", &format!("{first},4096"), 300, &line)])
        .run();
    finished.expect_code(0);
    assert_eq!(finished.stdout_text(), "before [redacted] after\n");
}

#[test]
fn a_value_written_one_byte_at_a_time_on_stderr_is_caught() {
    let server = vault();
    let line = format!("key: {API_KEY} and a near miss: {}\n", &API_KEY[..10]);
    let finished = redacting(&server).probe([chunks("err", "1", 2, &line)]).run();
    finished.expect_code(0);
    let expected = format!("key: [redacted] and a near miss: {}\n", &API_KEY[..10]);
    assert!(finished.stderr.contains(&expected), "{}", finished.stderr);
    assert!(!finished.stderr.contains(API_KEY), "{}", finished.stderr);
}

#[test]
fn a_short_value_is_left_alone_with_a_warning_naming_the_variable() {
    let server = vault();
    let finished = redacting(&server)
        .env("PIN", "vault:secret/data/app#pin")
        .probe([chunks(
            "out",
            "4096",
            0,
            "pin 123, password hunter2-s3cret-value\n",
        )])
        .run();
    finished.expect_code(0);
    assert_eq!(finished.stdout_text(), "pin 123, password [redacted]\n");
    assert!(
        finished
            .stderr
            .contains("PIN: a value shorter than 4 bytes is not redacted"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("DB_PASSWORD"), "{}", finished.stderr);
}

#[test]
fn ten_megabytes_of_binary_output_pass_unchanged() {
    let server = vault();
    let scratch = Scratch::new();
    // xorshift: every byte value, no secret in it.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(scratch.path("data"), &data).unwrap();
    let finished = redacting(&server)
        .probe([format!("outfile={}", scratch.file("data"))])
        .run();
    finished.expect_code(0);
    assert!(
        finished.stdout == data,
        "{} bytes came out of 10 MiB, not the same",
        finished.stdout.len()
    );
}

#[test]
fn template_values_and_the_login_token_are_redacted_too() {
    let token = "s.the-login-token-1234";
    let server = FaultServer::start(vec![Reply::kv2(r#"{"cert_key":"-----KEY-material-----"}"#)]);
    let scratch = Scratch::new();
    let config = scratch.path("vinit.toml");
    std::fs::write(
        &config,
        format!(
            "[[template]]\ncontents = '{{{{ secret(\"secret/data/tls\").cert_key }}}}'\n\
             destination = \"{}\"\nallow_persistent = true\n",
            scratch.file("key.pem")
        ),
    )
    .unwrap();
    let finished = Vinit::subreaper()
        .arg("--redact")
        .arg("--config")
        .arg(&config)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", token)
        .env("APP_TOKEN", "vault:login")
        .probe([chunks(
            "out",
            "7",
            1,
            &format!("key -----KEY-material----- token {token}\n"),
        )])
        .run();
    finished.expect_code(0);
    assert_eq!(finished.stdout_text(), "key [redacted] token [redacted]\n");
}

#[test]
fn exit_code_and_death_by_signal_are_unchanged() {
    let server = vault();
    redacting(&server)
        .probe([chunks("out", "64", 0, "bye\n"), "exit=7".into()])
        .run()
        .expect_code(7);
    let finished = redacting(&server)
        .probe([chunks("err", "64", 0, "dying\n"), "raise=TERM".into()])
        .run();
    finished.expect_code(128 + libc::SIGTERM);
    assert!(finished.stderr.contains("dying\n"), "{}", finished.stderr);
}

#[test]
fn signals_are_forwarded_as_without_redact() {
    let server = vault();
    let scratch = Scratch::new();
    let (running, record) = util::start_recorder(redacting(&server), &scratch, "TERM");
    running.signal(libc::SIGUSR1);
    util::wait_for_signal(&record, libc::SIGUSR1);
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    assert_eq!(util::recorded(&record), [libc::SIGUSR1, libc::SIGTERM]);
}

#[test]
fn redact_with_exec_is_a_usage_error() {
    let finished = Vinit::subreaper()
        .args(["--redact", "--exec"])
        .probe(["exit=0"])
        .run();
    finished.expect_code(64);
    assert!(finished.stderr.contains("--redact"), "{}", finished.stderr);
    let finished = Vinit::subreaper()
        .env("VINIT_REDACT", "true")
        .env("VINIT_EXEC", "true")
        .probe(["exit=0"])
        .run();
    finished.expect_code(64);
}

#[test]
fn the_app_gets_only_its_three_standard_descriptors() {
    let server = vault();
    let scratch = Scratch::new();
    let report = scratch.path("report");
    redacting(&server)
        .probe([format!("report={}", report.display())])
        .run()
        .expect_code(0);
    assert_eq!(
        util::Report::read(&report).get("fds"),
        "0,1,2",
        "a pipe end leaked into the app"
    );
}

/// A restart hands the next app the same pipes: its output is redacted too,
/// and vinit still ends cleanly (its copies of the pipes closed at the end).
#[test]
fn a_restarted_app_writes_through_the_same_redaction_and_new_values_are_hidden() {
    let bao = util::openbao::OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "token=first-value"]);
    let scratch = Scratch::new();
    let report = scratch.path("report");
    // The app prints the value it got, whichever it is: the rotated one must
    // be hidden as well as the one start-up fetched. `record` comes before
    // `report`: once the report exists, SIGTERM is blocked and awaited, not
    // fatal (the test sends it as soon as it sees the report).
    let app = format!(
        "echo \"app says $APP_TOKEN\"; exec {} record={} report={} await=TERM",
        util::PROBE,
        scratch.path("record").display(),
        report.display()
    );
    let running = Vinit::subreaper()
        .arg("--redact")
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", "root")
        .env("VINIT_ENV_ON_CHANGE", "restart")
        .env("APP_TOKEN", "vault:secret/data/app#token")
        .args(["--refresh", "1s", "--debounce", "200ms", "--grace", "2s"])
        .args(["--", "sh", "-c", &app])
        .start();
    util::wait_for_file(&report);
    std::fs::remove_file(&report).unwrap();
    bao.bao(&["kv", "put", "secret/app", "token=second-value"]);
    util::wait_for_file(&report);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(0);
    assert_eq!(finished.stdout_text(), "app says [redacted]\n".repeat(2));
}
