//! vinit with a controlling terminal (`script` gives it a pseudo-terminal, as
//! `docker run -it` does): the app takes the terminal's foreground, so the
//! keys Ctrl-C and Ctrl-Z reach it.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};

use util::{recorded, wait_for_file, wait_for_signal, Report, Scratch, PROBE, VINIT};

#[test]
fn app_holds_the_terminal_foreground_and_gets_ctrl_c_and_ctrl_z() {
    let scratch = Scratch::new();
    let (report, record, ready) = (
        scratch.path("report"),
        scratch.path("signals"),
        scratch.path("ready"),
    );
    let command = format!(
        "{VINIT} -- {PROBE} report={} record={} ready={} await=INT",
        report.display(),
        record.display(),
        ready.display()
    );
    let mut script = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is needed for this test");
    let mut keyboard = script.stdin.take().unwrap();
    wait_for_file(&ready);

    let report = Report::read(&report);
    assert_eq!(
        report.int("pgid"),
        report.int("pid"),
        "the app leads its own group"
    );
    assert_eq!(
        report.int("tpgid"),
        report.int("pgid"),
        "the app's group is not the terminal's foreground"
    );

    keyboard.write_all(b"\x1a").unwrap(); // Ctrl-Z
    keyboard.flush().unwrap();
    wait_for_signal(&record, libc::SIGTSTP);
    keyboard.write_all(b"\x03").unwrap(); // Ctrl-C
    keyboard.flush().unwrap();
    wait_for_signal(&record, libc::SIGINT);

    let status = script.wait().unwrap();
    assert!(status.success(), "script/vinit exited with {status}");
    // Each key reached the app once: from the terminal, not also via vinit.
    assert_eq!(recorded(&record), [libc::SIGTSTP, libc::SIGINT]);
}
