//! The command line and its environment twins, as a user meets them:
//! `--help`, `--version`, usage errors (64) naming the flag or variable,
//! 126/127 naming the command, quiet success and JSON logs.

mod util;

use std::os::unix::fs::PermissionsExt;

use util::{Report, Scratch, Vinit};

#[test]
fn help_fits_a_screen_and_shows_a_dockerfile_line() {
    let finished = Vinit::subreaper().arg("--help").run();
    finished.expect_code(0);
    let help = finished.stdout_text();
    assert!(help.contains(r#"ENTRYPOINT ["/sbin/vinit", "--"]"#), "{help}");
    assert!(
        help.lines().count() <= 24,
        "help is {} lines",
        help.lines().count()
    );
    for option in [
        "--exec",
        "--pgroup",
        "--rewrite",
        "--grace",
        "VINIT_GRACE",
        "VINIT_LOG",
    ] {
        assert!(help.contains(option), "help lacks {option}");
    }
    assert!(finished.stderr.is_empty());
}

#[test]
fn version_names_the_release() {
    let finished = Vinit::subreaper().arg("--version").run();
    finished.expect_code(0);
    assert_eq!(
        finished.stdout_text().trim(),
        format!("vinit {}", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs vinit expecting a usage error; returns stderr.
fn usage_error(vinit: Vinit) -> String {
    let finished = vinit.run();
    finished.expect_code(64);
    assert!(finished.stderr.starts_with("vinit: "), "{}", finished.stderr);
    finished.stderr
}

#[test]
fn malformed_flags_are_usage_errors_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus", "true"], "--bogus"),
        (&["-x", "true"], "-x"),
        (&["--grace", "soon", "true"], "--grace"),
        (&["--grace"], "--grace"),
        (&["--rewrite", "TERM", "true"], "--rewrite"),
        (&["--rewrite", "TERM:NOPE", "true"], "NOPE"),
        (&["--exec=yes", "true"], "--exec"),
        (&[], "COMMAND"),
    ];
    for (args, named) in cases {
        let stderr = usage_error(Vinit::subreaper().args(args.iter().copied()));
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn malformed_variables_are_usage_errors_naming_the_variable() {
    let cases = [
        ("VINIT_GRACE", "forever"),
        ("VINIT_EXEC", "yes"),
        ("VINIT_PGROUP", "maybe"),
        ("VINIT_REWRITE", "TERM"),
        ("VINIT_LOG", "loud"),
        ("VINIT_LOG_FORMAT", "xml"),
        ("VINIT_GRCAE", "1s"),
    ];
    for (name, value) in cases {
        let stderr = usage_error(Vinit::subreaper().env(name, value).arg("true"));
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_typo_in_a_variable_name_suggests_the_right_one() {
    let stderr = usage_error(Vinit::subreaper().env("VINIT_GRCAE", "1s").arg("true"));
    assert!(stderr.contains("did you mean VINIT_GRACE?"), "{stderr}");
}

#[test]
fn command_not_found_is_127_as_pid1_and_not() {
    for vinit in [Vinit::pid1(), Vinit::subreaper()] {
        let finished = vinit.args(["--", "no-such-command-anywhere"]).run();
        finished.expect_code(127);
        assert!(
            finished
                .stderr
                .contains("no-such-command-anywhere: command not found"),
            "{}",
            finished.stderr
        );
    }
    let finished = Vinit::subreaper().args(["--", "/nonexistent/app"]).run();
    finished.expect_code(127);
    assert!(
        finished
            .stderr
            .contains("/nonexistent/app: command not found: No such file or directory"),
        "{}",
        finished.stderr
    );
}

#[test]
fn command_not_executable_is_126() {
    let scratch = Scratch::new();
    let data = scratch.path("data.txt");
    std::fs::write(&data, "not a program").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    let finished = Vinit::pid1().arg(&data).run();
    finished.expect_code(126);
    assert!(
        finished.stderr.contains(&data.display().to_string()),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains("not executable"), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("Permission denied"),
        "{}",
        finished.stderr
    );

    let finished = Vinit::subreaper().arg(scratch.dir()).run();
    finished.expect_code(126);
    assert!(finished.stderr.contains("Is a directory"), "{}", finished.stderr);

    // Executable bit set but the kernel refuses it: ENOEXEC at exec time.
    let garbage = scratch.path("garbage");
    std::fs::write(&garbage, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let finished = Vinit::subreaper().arg(&garbage).run();
    finished.expect_code(126);
    assert!(
        finished.stderr.contains("Exec format error"),
        "{}",
        finished.stderr
    );
}

#[test]
fn missing_interpreter_is_127_and_exec_mode_reports_too() {
    let scratch = Scratch::new();
    let script = scratch.path("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let finished = Vinit::subreaper().arg(&script).run();
    finished.expect_code(127);
    assert!(finished.stderr.contains("interpreter"), "{}", finished.stderr);
    let finished = Vinit::subreaper().arg("--exec").arg(&script).run();
    finished.expect_code(127);
}

#[test]
fn silent_when_all_is_well() {
    let finished = Vinit::pid1().probe(["out=hello"]).run();
    finished.expect_code(0);
    assert_eq!(finished.stdout, b"hello");
    assert_eq!(finished.stderr, "", "vinit said something on a clean run");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let finished = Vinit::pid1()
        .env("VINIT_LOG", "debug")
        .env("VINIT_LOG_FORMAT", "json")
        .probe(["exit=0"])
        .run();
    finished.expect_code(0);
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert!(!lines.is_empty(), "no debug lines");
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(object.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert!(finished.stderr.contains("started"), "{}", finished.stderr);
}

#[test]
fn text_debug_logs_name_each_step() {
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let running = Vinit::pid1()
        .env("VINIT_LOG", "debug")
        .probe([format!("ready={}", ready.display()), "sleep=60000".into()])
        .start();
    util::wait_for_file(&ready);
    running.signal(libc::SIGUSR1);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(128 + libc::SIGUSR1);
    assert!(
        finished.stderr.contains("vinit: debug: started"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains("forwarded SIGUSR1"),
        "{}",
        finished.stderr
    );
}

#[test]
fn child_environment_drops_vinit_settings_and_keeps_order() {
    let scratch = Scratch::new();
    let report_path = scratch.path("report");
    // `env -i` sets the variables in exactly this order (std's Command sorts).
    let finished = Vinit::subreaper_with_exact_env(&[
        "ZED=1",
        "VINIT_GRACE=2s",
        "ALPHA=2",
        "VAULT_TOKEN=s.secret",
        "BAO_TOKEN=s.secret2",
        "VAULT_ADDR=http://127.0.0.1:1",
        "VINIT_KEEP_ME=yes",
        "VINIT_PASSTHROUGH=VINIT_KEEP_ME",
        "MIDDLE=3",
    ])
    .probe([format!("report={}", report_path.display())])
    .run();
    finished.expect_code(0);
    let env: Vec<String> = Report::read(&report_path)
        .env
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    assert_eq!(
        env,
        [
            "ZED=1",
            "ALPHA=2",
            "VAULT_ADDR=http://127.0.0.1:1",
            "VINIT_KEEP_ME=yes",
            "MIDDLE=3"
        ]
    );
}
