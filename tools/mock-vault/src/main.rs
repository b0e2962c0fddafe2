//! `vinit-mock-vault`: parse, run, map the error to an exit code
//! (64 usage, 78 seed or TLS files, 69 cannot listen, 1 unhealthy).

use std::process::ExitCode;

use vinit_mock_vault::cli::{self, Command};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args, |name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("vinit-mock-vault {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Healthcheck { addr }) => match vinit_mock_vault::health::check(&addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("vinit-mock-vault healthcheck: {err}");
                ExitCode::from(1)
            }
        },
        Ok(Command::Serve(plan)) => match vinit_mock_vault::run(plan) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("vinit-mock-vault: {err}");
                ExitCode::from(if err.starts_with("--listen") { 69 } else { 78 })
            }
        },
        Err(err) => {
            eprintln!("vinit-mock-vault: {err}\n{}", cli::USAGE);
            ExitCode::from(64)
        }
    }
}
