//! `vinit-bakery check IMAGE`: see lib.rs.

use std::process::ExitCode;

fn main() -> ExitCode {
    match vinit_bakery::run(std::env::args_os().skip(1)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vinit-bakery: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
