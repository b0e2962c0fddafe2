//! A scripted HTTP server on loopback that plays a misbehaving Vault: each
//! request gets the next scripted answer (the last one repeats). Counts the
//! requests it served.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A KV v2 read answer holding `data` (a JSON object).
    pub fn kv2(data: &str) -> Reply {
        Reply::json(
            200,
            &format!(
                r#"{{"lease_id":"","renewable":false,"lease_duration":0,"data":{{"data":{data},"metadata":{{"version":1}}}}}}"#
            ),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

pub struct FaultServer {
    pub addr: String,
    served: Arc<AtomicUsize>,
}

impl FaultServer {
    /// Serves `script` on a free port.
    pub fn start(script: Vec<Reply>) -> FaultServer {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// Serves `script` on `port` (to come up where a client already knocks).
    pub fn start_on_port(port: u16, script: Vec<Reply>) -> FaultServer {
        Self::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), script)
    }

    fn start_on(listener: TcpListener, script: Vec<Reply>) -> FaultServer {
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let served = super::accept_counted(listener, move |stream, n| {
            let reply = script[n.min(script.len() - 1)].clone();
            std::thread::spawn(move || answer(stream, reply));
        });
        FaultServer { addr, served }
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

fn answer(mut stream: TcpStream, reply: Reply) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the head and any body announced by Content-Length.
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&request, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    std::thread::sleep(reply.delay);
    let mut response = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&reply.body);
    let _ = stream.write_all(response.as_bytes());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
