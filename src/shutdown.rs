//! Which signal stops the gateway how. pingora's default watcher treats SIGINT (Ctrl-C) as
//! a "fast shutdown" that tears the runtimes down under the listeners' accept loops, which
//! then spin on "Accept() failed ... being shutdown" and write that line without end.
//! Here SIGINT and SIGTERM both stop gracefully (new connections refused, in-flight
//! requests finished, within the configured grace period) and SIGQUIT keeps its meaning,
//! the hand-over of the listening sockets to a new process.

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// SIGTERM or SIGINT: stop gracefully; SIGQUIT: graceful upgrade.
pub struct GatewaySignals;

#[async_trait]
impl ShutdownSignalWatch for GatewaySignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop the gateway with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = terminate.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupt.recv() => {
                tracing::info!("SIGINT received, stopping gracefully");
                ShutdownSignal::GracefulTerminate
            }
        }
    }
}

/// How the binary and the demo run the server.
pub fn run_args() -> RunArgs {
    RunArgs {
        shutdown_signal: Box::new(GatewaySignals),
    }
}
