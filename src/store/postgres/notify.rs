//! LISTEN/NOTIFY: a dedicated connection listens on the revocation channel and raises the
//! store's wake signal for every notification, so the revocation cache syncs within
//! milliseconds of another gateway's commit. When the connection drops it is re-opened with
//! a capped backoff, and the signal is raised once more after every (re)connect: whatever
//! was committed while nobody listened is picked up by that sync (and, failing even that,
//! by the periodic one).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::schema::CHANNEL;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Keeps a listening connection open for as long as the runtime it is spawned on runs.
pub(super) async fn listen_forever(
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
    wake: Arc<Notify>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        match listen_once(&config, &connector, &wake).await {
            Ok(()) => {
                tracing::warn!("revocation listener: the database closed the connection");
                retry = FIRST_RETRY;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?retry, "revocation listener: cannot listen");
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Connects, listens, and forwards notifications until the connection ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    connector: &MakeRustlsConnect,
    wake: &Arc<Notify>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(connector.clone()).await?;
    let forward = wake.clone();
    // The connection delivers notifications only to whoever polls it, so it is driven
    // here rather than left to a plain spawn.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => forward.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::info!("revocation listener: listening");
    // Catch up on anything committed while this connection was not listening.
    wake.notify_one();
    let ended = driver.await;
    drop(client);
    match ended {
        Ok(result) => result,
        // The driver only ends by returning, unless the runtime is going away.
        Err(_) => Ok(()),
    }
}
