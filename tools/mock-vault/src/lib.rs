//! vinit-mock-vault: a Vault/OpenBao stand-in for laptops and tests. It
//! answers the part of the Vault HTTP API that vinit uses, from one seed
//! file, with OpenBao's status codes and JSON shapes, and with fault knobs
//! and a time warp that tests drive through an admin API.
//!
//! Rooms:
//! - `cli`: arguments into a validated run plan (or the healthcheck);
//! - `seed`: the seed file's format and checks (errors name the line);
//! - `vault`: state and Vault semantics (tokens, leases, KV, wrapping,
//!   logins, policies, the clock), no HTTP;
//! - `pki`: the issue endpoint's certificate authority;
//! - `faults`: which requests a fault hits and what it does (pure);
//! - `server`: HTTP/TLS, applying faults, counts, the request log;
//! - `admin`: the admin API;
//! - `tls`: TLS configurations (server; the healthcheck's client);
//! - `health`: the `healthcheck` subcommand (a HEALTHCHECK for scratch images).
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod faults;
pub mod health;
pub mod pki;
pub mod seed;
pub mod server;
pub mod tls;
pub mod vault;

use std::sync::Arc;

/// Runs the mock until SIGTERM or SIGINT; an error is a message for the user.
pub fn run(plan: cli::Plan) -> Result<(), String> {
    let seed = seed::Seed::load(&plan.seed).map_err(|err| format!("seed {err}"))?;
    let tls = match (&plan.tls_cert, &plan.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    stop_on_signals()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))?;
    runtime.block_on(async move {
        let (listener, bound) = server::bind(&plan.listen).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("vinit-mock-vault listening on {scheme}://{bound}");
        let faults = seed.faults.clone();
        let shared = Arc::new(server::Shared::new(vault::Vault::new(&seed), faults));
        server::serve(listener, tls, shared).await;
        Ok(())
    })
}

/// As PID 1 of a container a signal with no handler is dropped: the mock
/// handles TERM and INT itself and exits 0.
fn stop_on_signals() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(|err| format!("signals: {err}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            std::process::exit(0);
        }
    });
    Ok(())
}
