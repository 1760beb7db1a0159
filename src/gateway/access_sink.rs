//! Where access lines go (`[log] access`): stderr, a file, or nowhere. A request formats
//! its line into a buffer of its thread and appends it to a shared batch under a short
//! lock; a writer thread takes the whole batch every [`FLUSH_EVERY`] (or as soon as it
//! holds [`BATCH_BYTES`]) and writes it with one `write(2)`, so a line costs the request
//! no system call, no wake-up of another thread and no allocation (as nginx's
//! `access_log ... buffer= flush=`). A file is reopened (for logrotate) when
//! [`AccessSink::reopen`] is called, on SIGUSR1.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::config::AccessLogTarget;

/// A batch larger than this wakes the writer at once rather than at its next tick.
const BATCH_BYTES: usize = 64 * 1024;

/// How often the writer takes the batch: the longest a line waits to be written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// The shared batch and the writer's wake-up.
struct Shared {
    batch: Mutex<Vec<u8>>,
    ready: Condvar,
    reopen: AtomicBool,
    /// Locked by whoever writes a batch: the writer thread, or [`AccessSink::flush`].
    destination: Mutex<Destination>,
}

/// The access log's destination; cheap to clone.
#[derive(Clone)]
pub struct AccessSink {
    shared: Option<Arc<Shared>>,
}

enum Destination {
    Stderr,
    File(PathBuf, File),
}

impl Destination {
    fn write_all(&mut self, bytes: &[u8]) {
        let result = match self {
            Destination::Stderr => std::io::stderr().lock().write_all(bytes),
            Destination::File(_, file) => file.write_all(bytes),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write the access log");
        }
    }

    fn reopen(&mut self) {
        if let Destination::File(path, file) = self {
            match open(path) {
                Ok(reopened) => *file = reopened,
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "cannot reopen the access log")
                }
            }
        }
    }
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Default for AccessSink {
    fn default() -> Self {
        Self::off()
    }
}

impl AccessSink {
    /// A sink that drops every line.
    pub fn off() -> Self {
        Self { shared: None }
    }

    /// Opens `target` and starts its writer thread.
    pub fn start(target: &AccessLogTarget) -> std::io::Result<Self> {
        let destination = match target {
            AccessLogTarget::Off => return Ok(Self::off()),
            AccessLogTarget::Stderr => Destination::Stderr,
            AccessLogTarget::File(path) => Destination::File(path.clone(), open(path)?),
        };
        let shared = Arc::new(Shared {
            batch: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
            ready: Condvar::new(),
            reopen: AtomicBool::new(false),
            destination: Mutex::new(destination),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("authgate-access".into())
            .spawn(move || write_batches(&writer))?;
        Ok(Self {
            shared: Some(shared),
        })
    }

    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Queues one formatted line (with its newline).
    pub fn push(&self, line: &[u8]) {
        let Some(shared) = &self.shared else { return };
        let mut batch = shared.batch.lock().unwrap_or_else(|e| e.into_inner());
        batch.extend_from_slice(line);
        let full = batch.len() >= BATCH_BYTES;
        drop(batch);
        if full {
            shared.ready.notify_one();
        }
    }

    /// Writes the lines queued so far, now (at shutdown, so none is left behind).
    pub fn flush(&self) {
        let Some(shared) = &self.shared else { return };
        let mut destination = shared.destination.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *shared.batch.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            destination.write_all(&batch);
        }
    }

    /// Asks the writer to reopen its file before the next write.
    pub fn reopen(&self) {
        if let Some(shared) = &self.shared {
            shared.reopen.store(true, Ordering::Release);
            shared.ready.notify_one();
        }
    }
}

/// The access log's housekeeping: reopens a file on SIGUSR1 (what logrotate sends after
/// moving it) and writes out the queued lines when the server shuts down.
pub struct AccessLogService(pub AccessSink);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for AccessLogService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = signal(SignalKind::user_defined1())
            .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGUSR1; the access log is not reopened"))
            .ok();
        loop {
            let reopen = async {
                match usr1.as_mut() {
                    Some(usr1) => usr1.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = reopen => {
                    tracing::info!("SIGUSR1: reopening the access log");
                    self.0.reopen();
                }
                _ = shutdown.changed() => {
                    self.0.flush();
                    return;
                }
            }
        }
    }
}

/// The writer thread: every tick (or when woken by a full batch or a reopen), swaps the
/// batch out and writes it in one call.
fn write_batches(shared: &Shared) {
    let mut spare = Vec::with_capacity(BATCH_BYTES);
    loop {
        {
            let mut batch = shared.batch.lock().unwrap_or_else(|e| e.into_inner());
            if batch.len() < BATCH_BYTES && !shared.reopen.load(Ordering::Acquire) {
                batch = shared
                    .ready
                    .wait_timeout(batch, FLUSH_EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut *batch, &mut spare);
        }
        let mut destination = shared.destination.lock().unwrap_or_else(|e| e.into_inner());
        if shared.reopen.swap(false, Ordering::AcqRel) {
            destination.reopen();
        }
        if !spare.is_empty() {
            destination.write_all(&spare);
            spare.clear();
            if spare.capacity() > 16 * BATCH_BYTES {
                spare.shrink_to(BATCH_BYTES);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_a_reopen_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let sink = AccessSink::start(&AccessLogTarget::File(path.clone())).unwrap();
        sink.push(b"one\n");
        wait_for(&path, "one\n");
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // The writer takes a pending reopen before it writes the next batch.
        sink.reopen();
        sink.push(b"two\n");
        wait_for(&path, "two\n");
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\n");
    }

    fn wait_for(path: &std::path::Path, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(path).unwrap_or_default() != want {
            assert!(std::time::Instant::now() < deadline, "{want:?} not written");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
