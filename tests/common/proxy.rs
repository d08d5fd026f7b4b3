//! A Unix-socket proxy between the exporter and a real engine: it writes down every request
//! line it carries and, when told to, answers some requests itself the way a broken engine
//! would.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with requests whose path contains [`Proxy::target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Pass them through.
    Pass,
    /// Answer 500 with a JSON error body.
    ServerError,
    /// Promise a longer body than is sent, then close.
    Truncated,
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Never answer.
    Hang,
    /// Pass them through after a delay.
    Slow(Duration),
}

pub struct Proxy {
    /// `unix://...` for `--docker.host`.
    pub address: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub tamper: Arc<Mutex<Tamper>>,
    pub target: &'static str,
}

impl Proxy {
    /// Listens on `dir/proxy.sock` and forwards to the engine socket at `engine`.
    pub fn start(dir: &Path, engine: String) -> Proxy {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let proxy = Proxy {
            address: format!("unix://{}", path.display()),
            requests: Arc::new(Mutex::new(Vec::new())),
            tamper: Arc::new(Mutex::new(Tamper::Pass)),
            target: "/containers/json",
        };
        let (requests, tamper, target) =
            (proxy.requests.clone(), proxy.tamper.clone(), proxy.target);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = UnixStream::connect(&engine) else { continue };
                let (requests, tamper) = (requests.clone(), tamper.clone());
                std::thread::spawn(move || relay(client, upstream, requests, tamper, target));
            }
        });
        proxy
    }

    pub fn set(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Carries one connection: answers flow back untouched; requests are read head by head (the
/// exporter's requests have no bodies) and passed on or answered here.
fn relay(
    client: UnixStream,
    upstream: UnixStream,
    requests: Arc<Mutex<Vec<String>>>,
    tamper: Arc<Mutex<Tamper>>,
    target: &str,
) {
    let (mut from_engine, mut to_client) =
        (upstream.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_engine, &mut to_client);
    });
    let (mut from_client, mut to_engine, mut answer) =
        (client.try_clone().unwrap(), upstream, client);

    let mut pending = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = from_client.read(&mut buffer) {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buffer[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
            requests.lock().unwrap().push(line.clone());
            let mode = if line.contains(target) { *tamper.lock().unwrap() } else { Tamper::Pass };
            let canned: &[u8] = match mode {
                Tamper::Pass => b"",
                Tamper::Slow(delay) => {
                    std::thread::sleep(delay);
                    b""
                }
                Tamper::ServerError => {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                      Content-Length: 26\r\n\r\n{\"message\":\"broken disk\"}\n"
                }
                Tamper::Truncated => {
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                      Content-Length: 500\r\n\r\n[{\"Id\":\"abc\",\"Ima"
                }
                Tamper::Malformed => {
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                      Content-Length: 12\r\n\r\n<html></html"
                }
                Tamper::Hang => {
                    std::thread::sleep(Duration::from_secs(600));
                    return;
                }
            };
            if canned.is_empty() {
                if to_engine.write_all(&head).is_err() {
                    return;
                }
                continue;
            }
            let _ = answer.write_all(canned);
            let _ = answer.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}
