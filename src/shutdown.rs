//! Which signal stops the gateway how. pingora's default watcher treats SIGINT (Ctrl-C) as
//! a "fast shutdown" that tears the runtimes down under the listeners' accept loops, which
//! then spin on "Accept() failed ... being shutdown" and write that line without end.
//! Here SIGINT and SIGTERM both stop gracefully (new connections refused, then the drain
//! of `crate::drain`, bounded by `[server] drain_timeout`) and SIGQUIT keeps its meaning,
//! the hand-over of the listening sockets to a new process (`authgate --upgrade`), followed
//! by the same drain.

use async_trait::async_trait;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
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

/// Runs `server` until its drain is over (the last client connection closed after a stop
/// or upgrade signal, or `drain_timeout` passed) or it has stopped by itself. pingora
/// sleeps a fixed grace period after the signal; the caller returns, and the process
/// exits, as soon as nothing is left to serve.
pub fn run_until_drained(server: Server, drained: Option<crate::drain::Drained>) {
    let Some(drained) = drained else {
        server.run(run_args());
        return;
    };
    let stopped = drained.stopped_notifier();
    let runner = std::thread::Builder::new()
        .name("authgate-server".into())
        .spawn(move || {
            server.run(run_args());
            let _ = stopped.send(());
        });
    match runner {
        Ok(_) => drained.wait(),
        Err(e) => tracing::error!(error = %e, "cannot start the server thread"),
    }
}
