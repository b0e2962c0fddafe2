//! Least privilege (SPEC "Least privilege"), seen from inside: the child's
//! /proc/self/status under `--user`, `--drop-caps`, `--keep-caps` and
//! `--no-new-privs` (users from a private /etc in a mount namespace of its
//! own, never the host's), a port below 1024 really bound, a set-uid copy of
//! `id` that gains nothing, and vinit's own /proc entries (credential values
//! blanked in its environ, not dumpable, core limit 0).
//!
//! Needs root (it is the case vinit drops privileges from).
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail the test on error too

mod util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use util::openbao::OpenBao;
use util::{Report, Scratch, Vinit};

/// A scratch directory every user may write (the child runs as another user).
fn shared_scratch() -> Scratch {
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.dir(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    scratch
}

/// The status fields the issue asks for, as one table row.
fn status_row(mode: &str, report: &Report) -> String {
    let fields = [
        "uid",
        "gid",
        "groups",
        "capinh",
        "capprm",
        "capeff",
        "capbnd",
        "capamb",
        "nonewprivs",
    ];
    let cells: Vec<String> = fields.iter().map(|f| report.get(f).replace('\t', " ")).collect();
    format!("| {mode} | {} |", cells.join(" | "))
}

/// Runs the probe under `vinit` with `options`, returns its report.
fn report_under(vinit: Vinit, options: &[&str], scratch: &Scratch, name: &str) -> Report {
    let path = scratch.path(name);
    let finished = vinit
        .args(options)
        .probe([format!("report={}", path.display())])
        .run();
    finished.expect_code(0);
    Report::read(&path)
}

/// A capability set of this test process (root), as /proc shows it.
fn own_caps(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .trim()
        .to_string()
}

const NONE: &str = "0000000000000000";

/// vinit in a mount namespace where /etc/passwd and /etc/group are `passwd`
/// and `group` (bind mounts private to that namespace).
fn with_private_etc(scratch: &Scratch, passwd: &str, group: &str) -> Vinit {
    std::fs::write(scratch.path("passwd"), passwd).unwrap();
    std::fs::write(scratch.path("group"), group).unwrap();
    let (passwd, group) = (scratch.file("passwd"), scratch.file("group"));
    Vinit::launched_by(&[
        "unshare",
        "--mount",
        "sh",
        "-c",
        r#"mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@""#,
        "sh",
        &passwd,
        &group,
    ])
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\naudio:x:29:pulse,app\nvideo:x:44:app\nweb:x:2000:\n";

#[test]
fn the_childs_ids_and_capabilities_in_each_mode() {
    let scratch = shared_scratch();
    let mut table = vec![
        "| mode | Uid | Gid | Groups | CapInh | CapPrm | CapEff | CapBnd | CapAmb | NoNewPrivs |".to_string(),
    ];
    let mut check = |mode: &str, report: &Report, ids: (&str, &str, &str), caps: [&str; 5], nnp: &str| {
        table.push(status_row(mode, report));
        let (uid, gid, groups) = ids;
        assert_eq!(
            report.get("uid"),
            format!("{uid}\t{uid}\t{uid}\t{uid}"),
            "{mode}: Uid"
        );
        assert_eq!(
            report.get("gid"),
            format!("{gid}\t{gid}\t{gid}\t{gid}"),
            "{mode}: Gid"
        );
        assert_eq!(report.get("groups"), groups, "{mode}: Groups");
        let seen = ["capinh", "capprm", "capeff", "capbnd", "capamb"].map(|f| report.get(f).to_string());
        assert_eq!(seen, caps, "{mode}: CapInh/Prm/Eff/Bnd/Amb");
        assert_eq!(report.get("nonewprivs"), nnp, "{mode}: NoNewPrivs");
    };
    let (all, bounding) = (own_caps("CapEff:"), own_caps("CapBnd:"));

    let plain = report_under(Vinit::subreaper(), &[], &scratch, "plain");
    check(
        "(none, as root)",
        &plain,
        ("0", "0", ""),
        [NONE, &all, &all, &bounding, NONE],
        "0",
    );

    let nobody = report_under(Vinit::subreaper(), &["--user", "nobody"], &scratch, "nobody");
    let nobody_group = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .gid
        .to_string();
    check(
        "--user nobody",
        &nobody,
        ("65534", &nobody_group, &nobody_group),
        [NONE; 5],
        "1",
    );

    let numeric = report_under(
        Vinit::subreaper(),
        &["--user", "65534:65534"],
        &scratch,
        "numeric",
    );
    check(
        "--user 65534:65534",
        &numeric,
        ("65534", "65534", "65534"),
        [NONE; 5],
        "1",
    );

    let named = report_under(
        with_private_etc(&scratch, PASSWD, GROUP),
        &["--user", "app:web"],
        &scratch,
        "named",
    );
    check("--user app:web", &named, ("1000", "2000", "2000"), [NONE; 5], "1");

    let member = report_under(
        with_private_etc(&scratch, PASSWD, GROUP),
        &["--user", "app"],
        &scratch,
        "member",
    );
    check(
        "--user app (in audio, video)",
        &member,
        ("1000", "1000", "29 44 1000"), // the kernel sorts them
        [NONE; 5],
        "1",
    );

    let exec = report_under(
        Vinit::subreaper(),
        &["--exec", "--user", "nobody"],
        &scratch,
        "exec",
    );
    check(
        "--exec --user nobody",
        &exec,
        ("65534", &nobody_group, &nobody_group),
        [NONE; 5],
        "1",
    );

    let dropped = report_under(Vinit::subreaper(), &["--drop-caps"], &scratch, "dropped");
    check("--drop-caps (root)", &dropped, ("0", "0", ""), [NONE; 5], "1");

    let kept = report_under(
        Vinit::subreaper(),
        &["--user", "65534:65534", "--keep-caps", "cap_net_bind_service"],
        &scratch,
        "kept",
    );
    let bind = "0000000000000400";
    check(
        "--user 65534:65534 --keep-caps NET_BIND_SERVICE",
        &kept,
        ("65534", "65534", "65534"),
        [bind; 5],
        "1",
    );

    let unrestricted_user = report_under(
        Vinit::subreaper()
            .env("VINIT_DROP_CAPS", "false")
            .env("VINIT_NO_NEW_PRIVS", "0"),
        &["--user", "65534:65534"],
        &scratch,
        "opted-out",
    );
    check(
        "--user 65534:65534, VINIT_DROP_CAPS=false VINIT_NO_NEW_PRIVS=0",
        &unrestricted_user,
        ("65534", "65534", "65534"),
        [NONE, NONE, NONE, &bounding, NONE],
        "0",
    );
    eprintln!("{}", table.join("\n"));
}

#[test]
fn a_kept_net_bind_service_really_binds_port_80_as_non_root() {
    // A fresh network namespace: port 80 is free there whatever the host runs.
    let bind = |options: &[&str]| {
        let finished = Vinit::launched_by(&["unshare", "--net"])
            .args(["--user", "nobody"])
            .args(options)
            .probe(["bind=80"])
            .run();
        finished.expect_code(0);
        finished.stdout_text()
    };
    assert_eq!(bind(&["--keep-caps", "NET_BIND_SERVICE"]), "bound\n");
    let refused = bind(&[]);
    assert!(
        refused.contains("Permission denied"),
        "nobody bound port 80 without the capability: {refused}"
    );
}

#[test]
fn a_set_uid_copy_of_id_gains_nothing() {
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = scratch.path("id");
    std::fs::copy(which("id"), &id).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let effective_uid = |vinit: Vinit| {
        let finished = vinit.args(["--user", "nobody", "--"]).arg(&id).arg("-u").run();
        finished.expect_code(0);
        finished.stdout_text().trim().to_string()
    };
    assert_eq!(
        effective_uid(Vinit::subreaper()),
        "65534",
        "the set-uid bit gave root"
    );
    // The copy does work: with both protections turned off it becomes root.
    let unprotected = Vinit::subreaper()
        .env("VINIT_DROP_CAPS", "false")
        .env("VINIT_NO_NEW_PRIVS", "false");
    assert_eq!(effective_uid(unprotected), "0", "the set-uid copy is not set-uid");
}

fn which(program: &str) -> std::path::PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("no {program}"))
}

const TOKEN: &str = "hvs.token-5e1f0c2a";
const BAO_TOKEN: &str = "bao-token-77d2e9";
const SECRET_ID: &str = "secret-id-0b8c41f3";
const ROLE_ID: &str = "role-id-9a6d2b7e";

/// Runs what follows as uid/gid 65534 with no supplementary group.
const AS_NOBODY: [&str; 4] = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

/// Runs `program ARGS` as uid/gid 65534; true when it succeeded.
fn as_nobody(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn vinit_own_proc_entries_show_no_credential_and_no_core() {
    let scratch = shared_scratch();
    // vinit runs as nobody with an inherited core limit: the same user as the
    // reader below, so only "not dumpable" keeps its environ and memory closed.
    let vinit = Vinit::launched_by(&[&AS_NOBODY[..], &["prlimit", "--core=4096:8192", "--"]].concat())
        .env("VAULT_TOKEN", TOKEN)
        .env("BAO_TOKEN", BAO_TOKEN)
        .env("VINIT_SECRET_ID", SECRET_ID)
        .env("VINIT_ROLE_ID", ROLE_ID);
    let report = scratch.path("report");
    let vinit = vinit.probe([
        format!("report={}", report.display()),
        format!("record={}", scratch.file("signals")),
        format!("ready={}", scratch.file("ready")),
        "await=TERM".to_string(),
    ]);
    let running = vinit.start();
    util::wait_for_file(&scratch.path("ready"));
    let pid = running.pid();
    let app = Report::read(&report).int("pid");

    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for name in ["VAULT_TOKEN=", "BAO_TOKEN=", "VINIT_SECRET_ID=", "VINIT_ROLE_ID="] {
        assert!(
            environ.contains(name),
            "{name} is gone from environ: the check below proves nothing"
        );
    }
    for value in [TOKEN, BAO_TOKEN, SECRET_ID, ROLE_ID] {
        assert!(
            !environ.contains(value),
            "root reads {value} in /proc/{pid}/environ"
        );
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    for value in [TOKEN, BAO_TOKEN, SECRET_ID, ROLE_ID] {
        assert!(!String::from_utf8_lossy(&cmdline).contains(value));
    }

    let vinit_environ = format!("/proc/{pid}/environ");
    let vinit_mem = format!("/proc/{pid}/mem");
    assert!(
        !as_nobody("cat", &[&vinit_environ]),
        "another process of vinit's user reads its environ"
    );
    assert!(
        !as_nobody("head", &["-c1", &vinit_mem]),
        "another process of vinit's user reads its memory"
    );
    // The same reader does read a dumpable process of that user: the app.
    assert!(
        as_nobody("cat", &[&format!("/proc/{app}/environ")]),
        "the check cannot see a difference"
    );

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let core: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(core[4..6], ["0", "8192"], "vinit's core limit (soft, hard)");
    assert_eq!(
        Report::read(&report).get("core"),
        "4096:8192",
        "the app gets the original limit"
    );

    util::send(pid, libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn unknown_users_groups_and_capabilities_are_78_before_vault() {
    // VAULT_ADDR points nowhere: reaching Vault would be 69, not 78.
    let attempt = |options: &[&str]| {
        Vinit::subreaper()
            .env("VAULT_ADDR", "http://127.0.0.1:9")
            .env("VAULT_TOKEN", "t")
            .env("DB_PASSWORD", "vault:secret/data/app#pw")
            .args(options)
            .args(["--", "true"])
            .run()
    };
    for (options, named) in [
        (&["--user", "no-such-user"][..], "no-such-user"),
        (&["--user", "nobody:no-such-group"][..], "no-such-group"),
        (&["--keep-caps", "NET_BIND"][..], "NET_BIND"),
    ] {
        let finished = attempt(options);
        finished.expect_code(78);
        assert!(
            finished.stderr.contains(named),
            "{options:?}: {}",
            finished.stderr
        );
    }
    let finished = Vinit::subreaper()
        .env("VINIT_USER", "no-such-user")
        .args(["--", "true"])
        .run();
    finished.expect_code(78);
    assert!(finished.stderr.contains("VINIT_USER"), "{}", finished.stderr);
}

/// Whether every thread of `pid` (the event loop's, the signal thread,
/// name resolution's) has the effective capabilities `expected`.
fn every_thread_at(pid: i32, expected: &str) -> bool {
    let caps = thread_caps(pid);
    !caps.is_empty() && caps.iter().all(|caps| caps == expected)
}

/// CapEff of every thread of `pid`.
fn thread_caps(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        // A thread may end between the listing and the read.
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn vinit_keeps_only_what_its_running_life_needs_and_still_signals_the_app() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "pw=x"]);
    let out = tempfile::tempdir_in("/dev/shm").unwrap();
    let scratch = shared_scratch();
    let config = scratch.path("vinit.toml");
    let template = format!(
        "[[template]]\ncontents = \"{{{{ secret('secret/data/app').pw }}}}\"\ndestination = \"{}/file\"\n",
        out.path().display()
    );
    std::fs::write(&config, template).unwrap();
    // (options, vinit's capabilities once the app runs)
    let kill = "0000000000000020";
    let rerender = "000000000000002b"; // KILL, CHOWN, DAC_OVERRIDE, FOWNER
    for (options, expected) in [
        (vec!["--user", "nobody"], kill.to_string()),
        (vec!["--drop-caps"], kill.to_string()),
        (
            vec!["--user", "4242", "--config", config.to_str().unwrap()],
            rerender.to_string(),
        ),
        (vec![], own_caps("CapEff:")),
    ] {
        let vinit = Vinit::subreaper()
            .env("VAULT_ADDR", bao.addr.replace("127.0.0.1", "localhost"))
            .env("VAULT_TOKEN", "root")
            .args(&options);
        let (running, record) = util::start_recorder(vinit, &scratch, "TERM");
        // Name resolution ran on a thread of tokio's blocking pool that
        // started with every capability: it exits after 1 s idle.
        util::wait_until(
            &format!("{options:?}: every thread of vinit at {expected}"),
            || every_thread_at(running.pid(), &expected).then_some(()),
        );
        if options.contains(&"--config") {
            let meta = std::fs::metadata(out.path().join("file")).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (4242, 4242),
                "files default to the --user"
            );
        }
        running.signal(libc::SIGTERM);
        running.wait().expect_code(0);
        assert!(
            util::recorded(&record).contains(&libc::SIGTERM),
            "{options:?}: TERM not forwarded"
        );
        std::fs::remove_file(scratch.path("ready")).unwrap();
        std::fs::remove_file(&record).unwrap();
    }
}

#[test]
fn a_restarted_app_gets_the_same_privileges_and_vinit_keeps_what_a_restart_needs() {
    let bao = OpenBao::start();
    bao.bao(&["kv", "put", "secret/app", "token=first"]);
    let scratch = shared_scratch();
    let report = scratch.path("report");
    let running = Vinit::subreaper()
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", "root")
        .env("VINIT_ENV_ON_CHANGE", "restart")
        .env("APP_TOKEN", "vault:secret/data/app#token")
        .args(["--user", "65534:65534", "--keep-caps", "NET_BIND_SERVICE"])
        .args(["--refresh", "1s", "--debounce", "200ms", "--grace", "2s"])
        .probe([
            format!("report={}", report.display()),
            format!("record={}", scratch.file("record")),
            "await=TERM".into(),
        ])
        .start();
    let first = Report::read(&report);
    // KILL, SETGID, SETUID, SETPCAP and the kept NET_BIND_SERVICE: a restart
    // starts the app as 65534 with that capability again.
    util::wait_until("vinit to keep only what a restart needs", || {
        every_thread_at(running.pid(), "00000000000005e0").then_some(())
    });
    std::fs::remove_file(&report).unwrap();
    bao.bao(&["kv", "put", "secret/app", "token=second"]);
    let second = Report::read(&report);
    assert_eq!(second.env_var("APP_TOKEN").as_deref(), Some("second"));
    assert_ne!(first.int("pid"), second.int("pid"), "the app was not restarted");
    for field in ["uid", "gid", "capprm", "capeff", "capamb", "capbnd", "nonewprivs"] {
        assert_eq!(first.get(field), second.get(field), "{field} after the restart");
    }
    assert_eq!(second.get("capamb"), "0000000000000400");
    running.signal(libc::SIGTERM);
    running.wait().expect_code(0);
}

#[test]
fn a_non_root_vinit_drops_what_it_can_and_says_what_it_cannot() {
    let scratch = shared_scratch();
    let report = scratch.path("report");
    let finished = Vinit::launched_by(&AS_NOBODY)
        .arg("--drop-caps")
        .probe([format!("report={}", report.display())])
        .run();
    finished.expect_code(0);
    assert!(
        finished.stderr.contains("lacks CAP_SETPCAP"),
        "{}",
        finished.stderr
    );
    let seen = Report::read(&report);
    assert_eq!(
        seen.get("capbnd"),
        own_caps("CapBnd:"),
        "the bounding set cannot shrink"
    );
    assert_eq!(seen.get("nonewprivs"), "1");
    let finished = Vinit::launched_by(&AS_NOBODY)
        .args(["--user", "root", "--", "true"])
        .run();
    finished.expect_code(78);
    assert!(finished.stderr.contains("CAP_SETUID"), "{}", finished.stderr);
}
