//! The PostgreSQL store's own tokio runtime, on a thread of its own. The pool's connections
//! and the LISTEN connection are tasks of this runtime, so they neither depend on whichever
//! runtime happened to open the store (the start-up loader is dropped right after) nor run
//! on the proxy's event loops; callers on any runtime await a spawned task.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// The runtime thread; dropping this stops it and closes every connection it drives.
pub(super) struct DbRuntime {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl DbRuntime {
    pub fn start() -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Task(format!("cannot build the database runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("authgate-db".into())
            .spawn(move || {
                // Drives every spawned task until the store is dropped.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_background();
            })
            .map_err(|e| StoreError::Task(format!("cannot start the database thread: {e}")))?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `work` on the database runtime and waits for it from the caller's.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}
