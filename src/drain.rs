//! Draining after a graceful stop (SIGTERM, SIGINT) or a binary upgrade (SIGQUIT). pingora
//! flips the `ShutdownWatch` when its listeners stop accepting (for an upgrade, 5 s after
//! the listening sockets went to the new process); from then on:
//! - a request in flight finishes, and its response says `Connection: close`;
//! - a keep-alive connection waiting for its next request gets [`IDLE_CLOSE_GRACE`] for it
//!   to start (a client that was about to send it is still served), then is closed;
//! - a tunnel or a slow request may go on for `[server] drain_timeout`, then is cut.
//!
//! pingora itself only sleeps a fixed grace period before it stops its runtimes (which
//! cancels whatever still runs), so [`DrainWatch`] tells the binary when the last client
//! connection has closed, or `drain_timeout` has passed: the process exits then, not later.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::connections::ConnectionSlots;

/// How long a keep-alive connection waiting for its next request is kept once the drain
/// has begun. A client that reused the connection a moment before still gets its answer
/// (with `Connection: close`); one that sends nothing is closed.
pub const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often the drain looks at the number of open connections.
const POLL: Duration = Duration::from_millis(50);

/// Resolves once the drain has begun (never, if the server is dropped first).
pub async fn started(shutdown: &ShutdownWatch) {
    let mut shutdown = shutdown.clone();
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves `after` the drain has begun: the end of a tunnel's or an idle wait's grace.
pub async fn begun_since(shutdown: &ShutdownWatch, after: Duration) {
    started(shutdown).await;
    tokio::time::sleep(after).await;
}

/// Sends once when the drain is over: every client connection closed, or `drain_timeout`
/// (and a little for the tunnels to close themselves) passed.
pub struct DrainWatch {
    slots: ConnectionSlots,
    drain_timeout: Duration,
    done: Mutex<mpsc::Sender<()>>,
}

/// The binary's end of the drain: [`Drained::wait`] returns when the drain is over or the
/// server has stopped by itself.
pub struct Drained {
    sender: mpsc::Sender<()>,
    receiver: mpsc::Receiver<()>,
}

impl Drained {
    /// The drain's watch over `slots`, and the binary's end of it.
    pub fn watch(slots: ConnectionSlots, drain_timeout: Duration) -> (DrainWatch, Self) {
        let (sender, receiver) = mpsc::channel();
        let watch = DrainWatch {
            slots,
            drain_timeout,
            done: Mutex::new(sender.clone()),
        };
        (watch, Self { sender, receiver })
    }

    /// For the thread that runs the server: send when `Server::run` has returned.
    pub fn stopped_notifier(&self) -> mpsc::Sender<()> {
        self.sender.clone()
    }

    /// Blocks until the drain is over or the server has stopped.
    pub fn wait(&self) {
        let _ = self.receiver.recv();
    }
}

/// The margin past `drain_timeout` for tunnels cut at `drain_timeout` to close.
const CUT_MARGIN: Duration = Duration::from_millis(500);

#[async_trait]
impl BackgroundService for DrainWatch {
    async fn start(&self, shutdown: ShutdownWatch) {
        started(&shutdown).await;
        let deadline = tokio::time::Instant::now() + self.drain_timeout + CUT_MARGIN;
        loop {
            let open = self.slots.open_now();
            if open == 0 {
                tracing::info!("drain complete: no client connection is open");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    open,
                    drain_timeout = ?self.drain_timeout,
                    "drain timeout reached; cutting the connections still open"
                );
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let _ = done.send(());
    }
}
