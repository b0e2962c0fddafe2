//! vinit: a tiny PID 1 for containers.
//!
//! `run` is a straight line of named steps: read the environment and
//! logging settings, parse the command line, the config file and the
//! environment into a validated [`options::Plan`], resolve COMMAND, fetch
//! and render secrets (login, the reads in parallel, two at a time over
//! https, files), then either replace vinit with COMMAND (`--exec`) or
//! spawn it and supervise it as PID 1 until it exits: on the event loop
//! when Vault or `--redact` needs one, otherwise blocking in
//! `sigtimedwait`. `--check` stops after listing what would be read.
//!
//! Module map:
//! - [`cli`]: the command line as typed, `--help`, `--version`;
//! - [`options`]: flags + `VINIT_*` twins + config file into one validated
//!   plan; the child's scrubbed environment;
//! - [`settings`]: the leaf: environment snapshot, booleans, durations, lists;
//! - [`config_file`]: the TOML schema; [`reference`]: `vault:PATH#KEY` parsing;
//! - [`secrets`]: the secrets core (what to read, rendering) and its
//!   start-up pipeline (login, parallel reads, files);
//! - [`running`]: running life: renewal, re-reads, re-rendering, change
//!   actions, revocation at exit;
//! - [`descriptors`]: inherited descriptors, closed after the spawn;
//! - [`vault`]: the only code that speaks HTTP/TLS (settings, auth, retries);
//! - [`render`]: pure rendering of env values and templates; [`output`]:
//!   atomic file writes on tmpfs; [`secret`]: zeroizing secret types;
//! - [`logging`]: vinit's own stderr lines (text or JSON);
//! - [`signals`]: signal names, `--rewrite`, the start-up signalfd;
//! - [`forwarder`]: the event loop's signal thread (forwards at once, reports
//!   to the loop);
//! - [`privileges`]: pure: who the child runs as, which capabilities it
//!   and vinit keep; /etc/passwd and /etc/group parsing;
//! - [`spawn`]: command resolution (126/127) and starting the child;
//! - [`supervise`]: the event loop: reaping, running life's actions
//!   (signals, restarts), clean-up; the plain supervisor (forwarding too);
//! - [`redact`]: `--redact`'s pure streaming matcher; [`pump`]: the app's
//!   stdout and stderr through it (pipes, copying);
//! - [`reaper`]: the one owner of `waitpid`; leftover processes;
//! - [`sys`]: the only module with `unsafe` (clone/exec, masks, waitpid, kill,
//!   hardening, the child's privilege changes);
//! - [`error`]: failures and the exit-code table.

pub mod cli;
pub mod config_file;
pub mod descriptors;
pub mod error;
pub mod forwarder;
pub mod logging;
pub mod options;
pub mod output;
pub mod privileges;
pub mod pump;
pub mod reaper;
pub mod redact;
pub mod reference;
pub mod render;
pub mod running;
pub mod secret;
pub mod secrets;
pub mod settings;
pub mod signals;
pub mod spawn;
pub mod supervise;
pub mod sys;
pub mod vault;

use std::ffi::OsString;
use std::future::Future;

use descriptors::Inherited;
use error::Error;
use forwarder::SignalThread;
use logging::LogSettings;
use options::{Check, Mode, Plan};
use running::{EnvOnChange, RunningLife};
use settings::Environment;
use signals::SignalSource;
use spawn::PreparedCommand;
use supervise::{Forwarding, Supervision};
use sys::InheritedSignals;

/// Variables whose values vinit blanks in its own environment block at start.
pub const CREDENTIAL_VARIABLES: &[&str] = &["VAULT_TOKEN", "BAO_TOKEN", "VINIT_SECRET_ID", "VINIT_ROLE_ID"];

/// Runs vinit with `argv` (including `argv[0]`); returns the process exit
/// code. `inherited` is the signal state captured before anything else ran.
pub fn run(argv: Vec<OsString>, inherited: InheritedSignals) -> i32 {
    let descriptors = Inherited::capture();
    let env = Environment::capture();
    // vinit has its copy: /proc/PID/environ no longer shows the values.
    sys::blank_environ_values(CREDENTIAL_VARIABLES);
    let log_settings = LogSettings::from_env(&env);
    logging::init(log_settings.as_ref().copied().unwrap_or_default());
    tracing::debug!("{} starting", cli::VERSION);
    let outcome = log_settings.and_then(move |log| {
        let args = cli::parse(argv.into_iter().skip(1))?;
        if args.help {
            print!("{}", cli::HELP);
            return Ok(0);
        }
        if args.version {
            println!("{}", cli::VERSION);
            return Ok(0);
        }
        let plan = options::plan(args, &env, log)?;
        // The plan holds what it needs (credentials as zeroizing secrets);
        // the snapshot's copies of the values are overwritten now.
        drop(env);
        run_plan(plan, inherited, descriptors)
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err}");
            err.exit_code()
        }
    }
}

fn run_plan(plan: Plan, inherited: InheritedSignals, descriptors: Inherited) -> Result<i32, Error> {
    if plan.secrets.needs_vault() || plan.redact {
        run_with_event_loop(plan, inherited, descriptors)
    } else {
        run_plain(plan, inherited, descriptors)
    }
}

/// No Vault and no `--redact`: nothing to wait for but signals and
/// children, so no event loop. Building tokio's runtime would cost a plain
/// start 0.15-0.2 ms and every forwarded signal an epoll round
/// (bench/results/FINDINGS.md); vinit waits in `sigtimedwait`, as tini does.
fn run_plain(plan: Plan, inherited: InheritedSignals, descriptors: Inherited) -> Result<i32, Error> {
    if std::process::id() != 1 {
        become_subreaper();
    }
    let program = spawn::resolve_command(&plan.command, &plan.child_env)?;
    if plan.check.is_some() {
        describe_plan(&plan);
        return Ok(0);
    }
    let env = plan.secrets.prepare_without_vault(&plan.child_env)?;
    let command = PreparedCommand::new(program, &plan.command, &env)?;
    secret::scrub_env(env);
    match plan.mode {
        Mode::Exec => {
            let pending = signals::take_pending().map_err(|err| Error::system("cannot read signals", err))?;
            handle_startup_signals(pending)?;
            tracing::debug!("exec {}", spawn::display_command(&plan.command));
            Err(command.exec(&inherited, &plan.privileges))
        }
        Mode::Supervise => {
            let app = command.spawn(inherited, &plan.privileges, None)?;
            tracing::debug!("started {} as pid {app}", spawn::display_command(&plan.command));
            drop(command);
            settle_after_spawn(&plan, descriptors, false);
            let forwarding = Forwarding {
                to_group: plan.signal_group,
                rewrites: plan.rewrites,
            };
            Ok(supervise::supervise_plain(app, &forwarding, plan.grace))
        }
    }
}

/// Vault or `--redact`: start-up and supervision on one current-thread
/// tokio loop (parallel reads, running life, the output pump).
fn run_with_event_loop(
    plan: Plan,
    inherited: InheritedSignals,
    descriptors: Inherited,
) -> Result<i32, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Blocking-pool threads (name resolution) take vinit's reduced
        // capabilities when they start, and idle ones soon exit with theirs.
        .on_thread_start(sys::limit_new_thread)
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
        .map_err(|err| Error::system("cannot start the event loop", err))?;
    runtime.block_on(async move {
        let mut signals =
            SignalSource::new().map_err(|err| Error::system("cannot create a signalfd", err))?;
        if std::process::id() != 1 {
            become_subreaper();
        }
        let program = spawn::resolve_command(&plan.command, &plan.child_env)?;
        if let Some(check) = plan.check {
            return check_mode(&mut signals, &plan, check).await;
        }
        let mut prepared = during_startup(
            &mut signals,
            plan.secrets.prepare(&plan.child_env, plan.timeout, false),
        )
        .await?;
        let command = PreparedCommand::new(program.clone(), &plan.command, &prepared.env)?;
        match plan.mode {
            Mode::Exec => {
                secret::scrub_env(std::mem::take(&mut prepared.env));
                abort_on_pending_stop_signal(&mut signals)?;
                // No vinit stays behind to renew or revoke it later.
                if let Some(vaulted) = &prepared.vaulted {
                    if plan.life.revoke && vaulted.login.logged_in && !plan.secrets.hands_token_to_app() {
                        let limit = running::REVOKE_LIMIT;
                        secrets::startup::revoke_token(&vaulted.vault, &vaulted.login.token, limit).await;
                    }
                }
                tracing::debug!("exec {}", spawn::display_command(&plan.command));
                Err(command.exec(&inherited, &plan.privileges))
            }
            Mode::Supervise => {
                // On failure, dropping `prepared.files` removes the files.
                let redaction = match plan.redact {
                    true => {
                        let fetched = prepared.vaulted.as_ref().map(|vaulted| &vaulted.fetched);
                        let placed = fetched.map(|f| plan.secrets.placed_values(f)).unwrap_or_default();
                        Some(pump::Redaction::prepare(&placed)?)
                    }
                    false => None,
                };
                let output = redaction.as_ref().map(pump::Redaction::child_ends);
                let forwarding = Forwarding {
                    to_group: plan.signal_group,
                    rewrites: plan.rewrites.clone(),
                };
                let signal_thread = SignalThread::prepare(forwarding.clone())
                    .map_err(|err| Error::system("cannot start the signal thread", err))?;
                let app = command.spawn(inherited, &plan.privileges, output)?;
                prepared.files.keep();
                tracing::debug!("started {} as pid {app}", spawn::display_command(&plan.command));
                drop(command);
                let may_restart =
                    plan.secrets.may_restart() || plan.life.env_on_change == EnvOnChange::Restart;
                settle_after_spawn(&plan, descriptors, may_restart);
                // From here on the thread takes the signals, not the signalfd.
                drop(signals);
                let mut signals = signal_thread.release(app);
                let Plan {
                    command: argv,
                    grace,
                    child_env,
                    life,
                    secrets,
                    privileges,
                    ..
                } = plan;
                let env = std::mem::take(&mut prepared.env);
                let mut life = match prepared.vaulted {
                    Some(vaulted) => RunningLife::new(secrets, vaulted, child_env, env, life),
                    None => {
                        secret::scrub_env(env);
                        None
                    }
                };
                if let (Some(life), Some(redaction)) = (life.as_mut(), redaction.as_ref()) {
                    life.hide_new_values_with(redaction.redactor());
                }
                let mut respawn = |env: &[(OsString, OsString)]| {
                    let command = PreparedCommand::new(program.clone(), &argv, env)?;
                    command.spawn(inherited, &privileges, output)
                };
                let supervision = Supervision {
                    forwarding,
                    grace,
                    life,
                    respawn: &mut respawn,
                };
                let supervised = supervise::supervise(&mut signals, app, supervision);
                // A restart hands the next app the same pipes.
                Ok(match redaction.map(|r| r.start(may_restart)) {
                    Some(pump) => pump.alongside(supervised, pump::DRAIN_LIMIT).await,
                    None => supervised.await,
                })
            }
        }
    })
}

/// `--check`: everything was validated while planning and COMMAND is
/// resolved; print what would be read. `--online` also logs in and reads
/// (issues are listed, not performed; nothing is written).
async fn check_mode(signals: &mut SignalSource, plan: &Plan, check: Check) -> Result<i32, Error> {
    describe_plan(plan);
    if check == Check::Online && plan.secrets.needs_vault() {
        during_startup(signals, plan.secrets.prepare(&plan.child_env, plan.timeout, true)).await?;
        println!("online: logged in and read every secret");
    }
    Ok(0)
}

fn describe_plan(plan: &Plan) {
    for line in plan.secrets.describe() {
        println!("{line}");
    }
}

/// Once the app runs: vinit holds nothing the app could trip over (an
/// unmountable cwd, a pipe it closes), unless a restart needs it again, and
/// keeps only the capabilities its running life needs.
fn settle_after_spawn(plan: &Plan, descriptors: Inherited, may_restart: bool) {
    if let Err(err) = std::env::set_current_dir("/") {
        tracing::debug!("cannot change directory to /: {err}");
    }
    if !may_restart {
        descriptors.close();
    }
    if !plan.privileges.is_noop() {
        let respawns = may_restart.then_some(&plan.privileges);
        keep_only_running_life_caps(plan.secrets.renders_files(), respawns);
    }
}

/// Runs start-up `work` while watching signals: a stop signal (TERM, INT,
/// HUP, QUIT) aborts it at once with 128+N; SIGCHLD reaps strays (a `docker
/// exec` orphan, say); other signals are dropped, there is no app to get them.
async fn during_startup<T>(
    signals: &mut SignalSource,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            received = signals.recv() => {
                let signal = received.map_err(|err| Error::system("cannot read signals", err))?;
                handle_startup_signals(vec![signal])?;
            }
        }
    }
}

fn handle_startup_signals(batch: Vec<signals::SignalNumber>) -> Result<(), Error> {
    for signal in batch {
        if signals::STOP_SIGNALS.contains(&signal) {
            return Err(Error::Interrupted(signal));
        }
        if signal == libc::SIGCHLD {
            while let Ok(sys::Reaped::Child { .. }) = sys::reap_one() {}
        } else {
            tracing::debug!("ignored {} during start-up (no app yet)", signals::name(signal));
        }
    }
    Ok(())
}

/// In exec mode, signals still pending would hit their default action the
/// moment the mask is restored; a stop signal aborts, the rest are dropped.
fn abort_on_pending_stop_signal(signals: &mut SignalSource) -> Result<(), Error> {
    let pending = signals
        .pending()
        .map_err(|err| Error::system("cannot read signals", err))?;
    handle_startup_signals(pending)
}

/// Once the app runs with fewer privileges, vinit keeps only what its
/// running life needs (SECURITY.md names the set). Never fatal.
fn keep_only_running_life_caps(renders_files: bool, respawns: Option<&privileges::ChildPrivileges>) {
    let held = match sys::holder() {
        Ok(holder) => holder.permitted,
        Err(err) => {
            tracing::warn!("cannot read vinit's capabilities ({err}); it keeps them");
            return;
        }
    };
    let keep = privileges::running_life_caps(renders_files, respawns, held);
    match sys::limit_own_capabilities(keep) {
        Ok(()) => tracing::debug!("vinit keeps only {}", keep.names()),
        Err(err) => tracing::warn!("cannot drop vinit's capabilities ({err}); it keeps them"),
    }
}

/// When vinit is not PID 1 (`docker run --init`, a shell, a test), orphans
/// of the app are re-parented to it rather than to the real PID 1.
fn become_subreaper() {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become a child subreaper ({err}): orphans of the app will not be reaped by vinit"
        );
    }
}
