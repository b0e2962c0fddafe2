//! vinit as real PID 1 (a fresh PID namespace) and as a subreaper: signal
//! forwarding, process groups, rewrites, exit statuses, reaping, clean-up of
//! leftovers, and what the app inherits.

mod util;

use std::time::{Duration, Instant};

use util::{mask_bit, recorded, wait_for_file, wait_for_signal, Report, Scratch, Vinit};

/// Every signal a process can catch, minus SIGCHLD (vinit's own) and
/// SIGTERM (sent last to end the probe), plus realtime ones.
fn forwardable_signals() -> Vec<i32> {
    let mut signals: Vec<i32> = (1..=31)
        .filter(|s| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD, libc::SIGTERM].contains(s))
        .collect();
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    signals.extend([min, min + 5, max]);
    signals
}

/// vinit picks its supervisor by the plan: with neither Vault nor
/// `--redact` it blocks in sigtimedwait (no event loop); `--redact` alone
/// brings the event loop. Forwarding and clean-up are tested with both.
const SUPERVISORS: [&[&str]; 2] = [&[], &["--redact"]];

#[test]
fn forwards_every_catchable_signal_as_pid1() {
    for supervisor in SUPERVISORS {
        let scratch = Scratch::new();
        let (running, record) = util::start_recorder(Vinit::pid1().args(supervisor), &scratch, "TERM");
        for signal in forwardable_signals() {
            running.signal(signal);
            wait_for_signal(&record, signal);
        }
        running.signal(libc::SIGTERM);
        running.wait().expect_code(0);
        let mut expected = forwardable_signals();
        expected.push(libc::SIGTERM);
        assert_eq!(recorded(&record), expected, "vinit {supervisor:?}");
    }
}

#[test]
fn exit_codes_pass_through() {
    Vinit::pid1().probe(["exit=0"]).run().expect_code(0);
    Vinit::pid1().probe(["exit=3"]).run().expect_code(3);
    Vinit::pid1().probe(["exit=255"]).run().expect_code(255);
    Vinit::pid1()
        .probe(["raise=TERM"])
        .run()
        .expect_code(128 + libc::SIGTERM);
    Vinit::pid1()
        .probe(["raise=KILL"])
        .run()
        .expect_code(128 + libc::SIGKILL);
    let realtime = libc::SIGRTMIN() + 2;
    Vinit::pid1()
        .probe([format!("raise={realtime}")])
        .run()
        .expect_code(128 + realtime);
}

#[test]
fn sigterm_to_pid1_reaches_an_app_that_relies_on_the_default_action() {
    // The app does not handle SIGTERM: its default action must still kill it
    // (the mask is restored in the child), so vinit exits 143 at once.
    let scratch = Scratch::new();
    let ready = scratch.path("ready");
    let running = Vinit::pid1()
        .probe([format!("ready={}", ready.display()), "sleep=60000".into()])
        .start();
    wait_for_file(&ready);
    running.signal(libc::SIGTERM);
    let finished = running.wait();
    finished.expect_code(143);
    assert!(
        finished.elapsed < Duration::from_secs(10),
        "{:?}",
        finished.elapsed
    );
}

#[test]
fn pgroup_forwards_to_the_whole_group_and_default_only_to_the_app() {
    for to_group in [true, false] {
        let scratch = Scratch::new();
        let (record, member, ready) = (scratch.path("app"), scratch.path("member"), scratch.path("ready"));
        let mut vinit = Vinit::pid1();
        if to_group {
            vinit = vinit.arg("--pgroup");
        }
        let running = vinit
            .probe([
                format!("record={}", record.display()),
                format!("member={}", member.display()),
                format!("ready={}", ready.display()),
                "await=TERM".into(),
            ])
            .start();
        wait_for_file(&ready);
        running.signal(libc::SIGUSR1);
        wait_for_signal(&record, libc::SIGUSR1);
        if to_group {
            wait_for_signal(&member, libc::SIGUSR1);
        } else {
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                !recorded(&member).contains(&libc::SIGUSR1),
                "member got USR1 without --pgroup"
            );
        }
        running.signal(libc::SIGTERM);
        running.wait().expect_code(0);
        // Either forwarded (--pgroup) or sent by the clean-up: the member got TERM.
        assert!(recorded(&member).contains(&libc::SIGTERM), "to_group={to_group}");
    }
}

#[test]
fn rewrite_maps_and_drops_signals() {
    let scratch = Scratch::new();
    let (running, record) = util::start_recorder(
        Vinit::pid1().args(["--rewrite", "TERM:QUIT", "--rewrite", "USR1:0"]),
        &scratch,
        "QUIT",
    );
    running.signal(libc::SIGUSR1);
    running.signal(libc::SIGUSR2);
    wait_for_signal(&record, libc::SIGUSR2);
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    assert_eq!(recorded(&record), [libc::SIGUSR2, libc::SIGQUIT]);
}

#[test]
fn rewrite_from_environment_twin() {
    let scratch = Scratch::new();
    let (running, record) =
        util::start_recorder(Vinit::pid1().env("VINIT_REWRITE", "TERM:INT"), &scratch, "INT");
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    assert_eq!(recorded(&record), [libc::SIGINT]);
}

/// Waits until `vinit` has no child but the app, and no zombie child.
fn wait_for_orphans_reaped(vinit: i32) -> Duration {
    let started = Instant::now();
    util::wait_until("every orphan to be reaped", || {
        let children = util::children_of(vinit);
        (children.len() == 1 && children.iter().all(|(_, state)| *state != 'Z')).then_some(())
    });
    started.elapsed()
}

fn reaps_2000_orphans(vinit: Vinit) {
    let scratch = Scratch::new();
    let (ready, record) = (scratch.path("ready"), scratch.path("signals"));
    let running = vinit
        .probe([
            "orphans=2000".to_string(),
            format!("record={}", record.display()),
            format!("ready={}", ready.display()),
            "await=TERM".into(),
        ])
        .start();
    wait_for_file(&ready);
    let took = wait_for_orphans_reaped(running.pid());
    assert!(
        took < Duration::from_secs(5),
        "reaping 2000 orphans took {took:?}"
    );
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn reaps_2000_orphans_as_pid1() {
    reaps_2000_orphans(Vinit::pid1());
}

#[test]
fn reaps_2000_orphans_as_subreaper() {
    reaps_2000_orphans(Vinit::subreaper());
}

#[test]
fn leftovers_get_sigterm_and_vinit_does_not_wait_needlessly() {
    let scratch = Scratch::new();
    let linger = scratch.path("linger");
    let finished = Vinit::pid1()
        .args(["--grace", "10s"])
        .probe([format!("linger={}", linger.display()), "exit=7".into()])
        .run();
    finished.expect_code(7);
    assert!(
        finished.elapsed < Duration::from_secs(5),
        "took {:?}",
        finished.elapsed
    );
    let term = std::fs::read_to_string(scratch.path("linger.term")).unwrap_or_default();
    assert_eq!(term, "TERM\n", "the leftover never saw vinit's SIGTERM");
}

#[test]
fn stubborn_leftovers_are_killed_after_grace() {
    for supervisor in SUPERVISORS {
        let scratch = Scratch::new();
        let linger = scratch.path("linger");
        let finished = Vinit::pid1()
            .args(supervisor)
            .env("VINIT_GRACE", "1500ms")
            .probe([format!("linger={}:stubborn", linger.display()), "exit=7".into()])
            .run();
        finished.expect_code(7);
        assert!(
            finished.elapsed >= Duration::from_millis(1500),
            "vinit {supervisor:?} did not wait for grace: {:?}",
            finished.elapsed
        );
        assert!(
            finished.elapsed < Duration::from_secs(6),
            "vinit {supervisor:?} took {:?}",
            finished.elapsed
        );
        assert!(finished.stderr.contains("sending SIGKILL"), "{}", finished.stderr);
        let term = std::fs::read_to_string(scratch.path("linger.term")).unwrap_or_default();
        assert_eq!(term, "TERM ignored\n", "vinit {supervisor:?}");
    }
}

#[test]
fn subreaper_kills_its_own_leftovers_and_nothing_else() {
    let scratch = Scratch::new();
    let linger = scratch.path("linger");
    let mut bystander = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let finished = Vinit::subreaper()
        .args(["--grace", "1s"])
        .probe([format!("linger={}:stubborn", linger.display()), "exit=5".into()])
        .run();
    finished.expect_code(5);
    let leftover: i32 = std::fs::read_to_string(&linger).unwrap().trim().parse().unwrap();
    util::wait_until("the leftover to be gone", || {
        (!util::alive(leftover)).then_some(())
    });
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "vinit killed a process outside its tree"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn survives_a_storm_of_1000_signals() {
    let scratch = Scratch::new();
    let (running, record) = util::start_recorder(Vinit::pid1(), &scratch, "TERM");
    for i in 0..1000 {
        running.signal(if i % 2 == 0 { libc::SIGUSR1 } else { libc::SIGWINCH });
    }
    wait_for_signal(&record, libc::SIGUSR1);
    wait_for_signal(&record, libc::SIGWINCH);
    assert!(util::alive(running.pid()));
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
    assert_eq!(recorded(&record).last(), Some(&libc::SIGTERM));
}

#[test]
fn stdout_and_stderr_keep_bytes_and_order() {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut vinit = Vinit::pid1().probe(["out=o1\\n", "err=e1\\n", "out=o2", "err=e2", "outhex=00ff0a"]);
    vinit.command().stdout(writer.try_clone().unwrap()).stderr(writer);
    let running = vinit.start();
    let finished = running.wait();
    finished.expect_code(0);
    let mut combined = Vec::new();
    use std::io::Read;
    let mut reader = reader;
    reader.read_to_end(&mut combined).unwrap();
    assert_eq!(combined, b"o1\ne1\no2e2\x00\xff\n");
}

#[test]
fn stdin_passes_through() {
    let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut vinit = Vinit::pid1().probe(["cat"]);
    vinit.command().stdin(std::process::Stdio::piped());
    let mut running = vinit.start();
    let mut stdin = running.stdin();
    let to_write = input.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&to_write).unwrap();
    });
    let finished = running.wait();
    writer.join().unwrap();
    finished.expect_code(0);
    assert_eq!(finished.stdout, input);
}

#[test]
fn argv_is_preserved_byte_for_byte() {
    use std::os::unix::ffi::OsStringExt;
    let scratch = Scratch::new();
    let report = scratch.path("report");
    let tricky: Vec<Vec<u8>> = vec![
        b"with spaces  inside".to_vec(),
        b"quotes \" ' ` $HOME \\".to_vec(),
        Vec::new(),
        vec![0xff, 0xfe, b'x', 0x80],
        b"--help".to_vec(),
    ];
    let mut vinit = Vinit::pid1().probe([format!("report={}", report.display()), "--".into()]);
    for arg in &tricky {
        vinit = vinit.arg(std::ffi::OsString::from_vec(arg.clone()));
    }
    vinit.run().expect_code(0);
    let report = Report::read(&report);
    assert_eq!(&report.args[3..], &tricky[..], "args after the probe's --");
    assert_eq!(report.args[0], util::PROBE.as_bytes());
}

/// The app must see exactly the signal state it would have had with no
/// init at all: same blocked mask, same ignored signals.
fn inherits_signal_state(blocked: &'static [i32], ignored: &'static [i32]) -> (Report, Report) {
    let scratch = Scratch::new();
    let report_path = scratch.path("report");
    let mut vinit = Vinit::pid1().probe([format!("report={}", report_path.display())]);
    util::with_signal_state(vinit.command(), blocked, ignored);
    vinit.run().expect_code(0);
    let under_vinit = Report::read(&report_path);
    let baseline = util::baseline_report(blocked, ignored);
    assert_eq!(
        under_vinit.get("sigblk"),
        baseline.get("sigblk"),
        "blocked mask differs from no-init"
    );
    assert_eq!(
        under_vinit.get("sigign"),
        baseline.get("sigign"),
        "ignored signals differ from no-init"
    );
    (under_vinit, baseline)
}

#[test]
fn app_inherits_the_mask_and_ignored_signals_vinit_was_started_with() {
    let (report, _) = inherits_signal_state(&[libc::SIGUSR2], &[libc::SIGHUP, libc::SIGPIPE]);
    assert_eq!(report.mask("sigblk"), mask_bit(libc::SIGUSR2));
    let ignored = report.mask("sigign");
    assert_eq!(ignored & mask_bit(libc::SIGHUP), mask_bit(libc::SIGHUP));
    assert_eq!(ignored & mask_bit(libc::SIGPIPE), mask_bit(libc::SIGPIPE));
}

#[test]
fn app_gets_a_clean_signal_state_when_vinit_got_one() {
    let (report, _) = inherits_signal_state(&[], &[]);
    assert_eq!(report.mask("sigblk"), 0, "vinit leaked its blocked mask");
    // Rust's runtime ignores SIGPIPE; vinit must not pass that on.
    assert_eq!(
        report.mask("sigign") & mask_bit(libc::SIGPIPE),
        0,
        "vinit leaked SIGPIPE ignored"
    );
}

#[test]
fn app_leads_its_own_process_group_with_no_extra_descriptors() {
    let scratch = Scratch::new();
    let report_path = scratch.path("report");
    Vinit::pid1()
        .current_dir(scratch.dir())
        .probe([format!("report={}", report_path.display())])
        .run()
        .expect_code(0);
    let report = Report::read(&report_path);
    assert_eq!(report.int("ppid"), 1, "the app's parent is PID 1");
    assert_eq!(
        report.int("pgid"),
        report.int("pid"),
        "the app leads its own process group"
    );
    assert_eq!(report.get("fds"), "0,1,2", "descriptors leaked into the app");
    assert_eq!(report.get("cwd"), scratch.dir().display().to_string());
}

#[test]
fn vinit_leaves_the_working_directory_and_stays_idle() {
    let scratch = Scratch::new();
    let (running, _record) = util::start_recorder(Vinit::pid1().current_dir(scratch.dir()), &scratch, "TERM");
    // vinit moves to / right after the spawn, which may be a moment after
    // the app says it is ready.
    util::wait_until("vinit to move to /", || {
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", running.pid())).ok()?;
        (cwd == std::path::Path::new("/")).then_some(())
    });
    util::assert_idle(running.pid(), Duration::from_millis(1500));
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn exec_mode_replaces_vinit() {
    let scratch = Scratch::new();
    let report_path = scratch.path("report");
    let running = Vinit::subreaper()
        .arg("--exec")
        .probe([format!("report={}", report_path.display())])
        .start();
    let vinit_pid = running.pid();
    running.wait().expect_code(0);
    let report = Report::read(&report_path);
    assert_eq!(
        report.int("pid"),
        vinit_pid,
        "the probe did not take vinit's place"
    );
    assert_eq!(report.int("ppid"), std::process::id() as i32);
    assert_eq!(report.mask("sigblk"), 0, "exec mode leaked vinit's mask");
    assert_eq!(report.get("fds"), "0,1,2", "exec mode leaked descriptors");
}

#[test]
fn exec_mode_from_environment_twin() {
    let scratch = Scratch::new();
    let report_path = scratch.path("report");
    let running = Vinit::subreaper()
        .env("VINIT_EXEC", "true")
        .probe([format!("report={}", report_path.display())])
        .start();
    let vinit_pid = running.pid();
    running.wait().expect_code(0);
    assert_eq!(Report::read(&report_path).int("pid"), vinit_pid);
}
