//! Idle upstream connections kept for reuse, without a task per connection. pingora-core's
//! own pool spawns a task to watch every connection it is given back (one spawn per
//! proxied request); here a returned connection is simply stored, and one that closed
//! while idle is found out when it is checked out (a non-blocking read that must find
//! nothing to read). At most `capacity` connections wait in all; a timer closes those
//! idle longer than `idle_timeout`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::io::{AsyncRead, ReadBuf};

struct Idle {
    stream: Stream,
    since: Instant,
}

/// The idle connections of every upstream server, by the peer's reuse hash.
pub struct UpstreamPool {
    idle: Mutex<HashMap<u64, Vec<Idle>>>,
    count: AtomicUsize,
    capacity: usize,
    idle_timeout: Duration,
}

impl UpstreamPool {
    pub fn new(capacity: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            count: AtomicUsize::new(0),
            capacity,
            idle_timeout,
        }
    }

    /// The most recently returned connection to `key` that is still open, if any.
    pub fn checkout(&self, key: u64) -> Option<Stream> {
        loop {
            let mut idle = {
                let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                map.get_mut(&key)?.pop()?
            };
            self.count.fetch_sub(1, Ordering::Relaxed);
            if idle.since.elapsed() < self.idle_timeout && quiet(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keeps `stream` for the next request to `key`, unless the pool is full.
    pub fn release(&self, key: u64, stream: Stream) {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let idle = Idle {
            stream,
            since: Instant::now(),
        };
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().push(idle);
    }

    /// Closes the connections idle for longer than the idle timeout.
    pub fn close_expired(&self) {
        let mut closed = Vec::new();
        {
            let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            for conns in map.values_mut() {
                let keep = conns
                    .iter()
                    .position(|c| c.since.elapsed() < self.idle_timeout)
                    .unwrap_or(conns.len());
                closed.extend(conns.drain(..keep));
            }
            map.retain(|_, conns| !conns.is_empty());
        }
        self.count.fetch_sub(closed.len(), Ordering::Relaxed);
        // Dropped outside the lock: closing sockets is a system call each.
        drop(closed);
    }

    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// True when an idle connection has nothing to say: not closed by the server, and no
/// stray bytes (which would be taken for the next response).
fn quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

/// Runs [`UpstreamPool::close_expired`] every second.
pub struct PoolTimer(pub Arc<UpstreamPool>);

#[async_trait]
impl BackgroundService for PoolTimer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticker.tick() => self.0.close_expired(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn connect(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn boxed(client: TcpStream) -> Stream {
        let stream: pingora::protocols::l4::stream::Stream = client.into();
        Box::new(stream)
    }

    #[tokio::test]
    async fn a_connection_closed_or_chatty_while_idle_is_not_handed_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = UpstreamPool::new(8, Duration::from_secs(60));
        let (open, _open_server) = connect(&listener).await;
        let (closed, closed_server) = connect(&listener).await;
        let (chatty, mut chatty_server) = connect(&listener).await;
        drop(closed_server);
        chatty_server
            .write_all(b"HTTP/1.1 200 OK\r\n")
            .await
            .unwrap();
        // Wait until the close and the bytes have reached the client sockets.
        closed.readable().await.unwrap();
        chatty.readable().await.unwrap();
        pool.release(1, boxed(open));
        pool.release(1, boxed(closed));
        pool.release(1, boxed(chatty));
        assert_eq!(pool.len(), 3);
        assert!(pool.checkout(1).is_some(), "the open connection");
        assert!(pool.checkout(1).is_none());
        assert!(pool.is_empty());
    }

    #[tokio::test]
    async fn the_pool_is_bounded_and_expired_connections_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = UpstreamPool::new(2, Duration::ZERO);
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (conn, server) = connect(&listener).await;
            servers.push(server);
            pool.release(7, boxed(conn));
        }
        assert_eq!(pool.len(), 2);
        pool.close_expired();
        assert!(pool.is_empty());
        assert!(pool.checkout(7).is_none());
    }
}
