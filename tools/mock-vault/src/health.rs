//! `vinit-mock-vault healthcheck [--addr URL]`: one `GET /v1/sys/health`,
//! exit 0 when it answers 200, else 1. A Docker HEALTHCHECK for an image
//! built FROM scratch (no curl there). Over https the server's certificate
//! is not verified: the check only asks "is it up", on the container's own
//! loopback.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub fn check(addr: &str) -> Result<(), String> {
    let (tls, rest) = if let Some(rest) = addr.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = addr.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("--addr {addr}: not an http:// or https:// address"));
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let target = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:{}", if tls { 443 } else { 80 })
    };
    let socket = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--addr {addr}: cannot resolve {target}"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    let request = format!("GET /v1/sys/health HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    if tls {
        let config = crate::tls::unverified_client()?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let connection =
            rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut tls_stream = rustls::StreamOwned::new(connection, stream);
        tls_stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = tls_stream.read_to_end(&mut answer);
    } else {
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = stream.read_to_end(&mut answer);
    }
    let status_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{addr}/v1/sys/health: \"{status_line}\""))
    }
}
