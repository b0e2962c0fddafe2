//! A TCP relay on loopback that counts the connections it accepts: put it
//! between vinit and a server to count what the benchmark counts (TCP
//! accepts, one TLS handshake each over https), without sharing a counter
//! with the other tests of the run. Bytes pass through unchanged, so TLS
//! still verifies (the dev certificate names 127.0.0.1, not a port).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct CountingProxy {
    /// `scheme://127.0.0.1:port`, the scheme of the target.
    pub addr: String,
    accepted: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// Relays to `target` (`http(s)://host:port`).
    pub fn start(target: &str) -> CountingProxy {
        let (scheme, authority) = target.split_once("://").expect("scheme://host:port");
        let upstream = authority.trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("{scheme}://{}", listener.local_addr().unwrap());
        let accepted = super::accept_counted(listener, move |client, _| {
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            std::thread::spawn(move || pipe(client, server));
            std::thread::spawn(move || pipe(server2, client2));
        });
        CountingProxy { addr, accepted }
    }

    /// Connections accepted so far. Waits until the count has stayed the
    /// same for 200 ms, so a connection the kernel completed just before
    /// the client exited is counted too.
    pub fn accepted(&self) -> usize {
        let mut last = self.accepted.load(Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.accepted.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

/// Copies `from` into `to` until `from` ends, then passes the end on.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
