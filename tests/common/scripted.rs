//! A scripted upstream: a real TCP server on an ephemeral port that hands each connection
//! (one that sent at least one byte: the gateway's TCP health checks send nothing) to the
//! test's own function, for answers the recording upstream cannot give (streams,
//! bodyless statuses, early answers, dropped connections). Its guard stops it on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The running scripted upstream.
pub struct Scripted {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// One connection as the script sees it: `n` is its number (0 for the first).
pub type Script = dyn Fn(usize, BufReader<TcpStream>) + Send + Sync;

impl Scripted {
    pub fn start(script: impl Fn(usize, BufReader<TcpStream>) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (c, s) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (c, script) = (c.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut first = [0u8; 1];
                    if !matches!(stream.peek(&mut first), Ok(1)) {
                        return;
                    }
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    script(n, BufReader::new(stream));
                });
            }
        });
        Self {
            addr,
            connections,
            stop,
        }
    }

    /// Connections that sent at least one byte so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request header (up to the blank line); `None` when the connection ends first.
pub fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

/// Reads `n` body bytes; `None` when the connection ends first.
pub fn read_exactly(reader: &mut BufReader<TcpStream>, n: usize) -> Option<Vec<u8>> {
    let mut body = vec![0; n];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// The value of header `name` in a raw head, matched case-insensitively.
pub fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
