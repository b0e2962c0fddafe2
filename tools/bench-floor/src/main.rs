//! `vinit-bench-floor`: the floor that bench/run measures vinit against.
//!
//! Usage: `vinit-bench-floor ADDR ROLE_ID_FILE SECRET_ID_FILE PATH... -- COMMAND [ARG...]`
//!
//! Does the least any client must do before an app can start with its
//! secrets, the way vinit does it: one AppRole login, then every PATH read
//! in parallel (one thread each), each request on a fresh HTTP/1.1
//! connection to a plain-HTTP `ADDR` (`http://HOST:PORT`), then `exec`s
//! COMMAND. No TLS, no retries, no parsing beyond finding the token: what
//! is left between this and vinit is vinit's own cost. A failed request
//! exits 1 with the status line; it is a benchmark instrument, not a client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (setup, command) = (&args[..split], args.get(split + 1..).unwrap_or_default());
    if setup.len() < 4 || command.is_empty() {
        fail("usage: vinit-bench-floor ADDR ROLE_ID_FILE SECRET_ID_FILE PATH... -- COMMAND [ARG...]");
    }
    let host = setup[0]
        .strip_prefix("http://")
        .unwrap_or(&setup[0])
        .trim_end_matches('/');
    let role_id = read_trimmed(&setup[1]);
    let secret_id = read_trimmed(&setup[2]);
    let body = format!("{{\"role_id\":\"{role_id}\",\"secret_id\":\"{secret_id}\"}}");
    let login = request(host, "POST", "/v1/auth/approle/login", "", &body);
    let token = field(&login, "\"client_token\":\"").unwrap_or_else(|| fail("login: no client_token"));
    let header = format!("X-Vault-Token: {token}\r\n");
    std::thread::scope(|scope| {
        for path in &setup[3..] {
            let header = &header;
            scope.spawn(move || request(host, "GET", &format!("/v1/{path}"), header, ""));
        }
    });
    let error = Command::new(&command[0]).args(&command[1..]).exec();
    fail(&format!("{}: {error}", command[0]));
}

/// One request on a fresh connection (`Connection: close`); the response
/// text, or exit 1 when the status is not 200.
fn request(host: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| fail(&format!("{host}: {e}")));
    stream.set_nodelay(true).ok();
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    if !response.starts_with("HTTP/1.1 200") {
        fail(&format!(
            "{path}: {}",
            response.lines().next().unwrap_or("no answer")
        ));
    }
    response
}

fn field<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    text[start..].split('"').next()
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")))
}

fn fail(message: &str) -> ! {
    eprintln!("vinit-bench-floor: {message}");
    exit(1)
}
