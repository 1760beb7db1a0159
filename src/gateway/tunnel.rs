//! Tunnels (exchanges upgraded by a `101`): counted in a gauge while they live, and
//! bound to the login session of the token that opened them. A session ended anywhere
//! (logout, logout everywhere, refresh-token reuse, deactivation; on this gateway or
//! another sharing the database) reaches the revocation cache within its sync time, and
//! the tunnel is closed at its next check. A reload that removes its route, or makes the
//! route refuse its identity, closes it too (`tunnel_route`), and so does the end of a
//! drain (`[server] drain_timeout` after a stop or upgrade began).

use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use prometheus::IntGauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tunnel_route::RouteWatch;
use crate::auth::revocation::{now_ms, RevocationCache};
use crate::auth::VerifiedToken;

/// Counts one open tunnel until dropped.
pub struct TunnelGuard {
    gauge: IntGauge,
}

impl TunnelGuard {
    pub fn open(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The session a tunnel belongs to.
pub struct SessionWatch<'a> {
    pub revocations: &'a RevocationCache,
    pub token: &'a VerifiedToken,
    /// false: the tunnel is also closed when the access token expires.
    pub outlives_token: bool,
}

/// What may close a tunnel besides its two sides.
pub struct TunnelChecks<'a, D> {
    /// Closed when silent either way for this long.
    pub idle: Duration,
    /// How often the session and the route are checked.
    pub every: Duration,
    /// The login session (routes that required a token).
    pub session: Option<SessionWatch<'a>>,
    /// The route under the live configuration.
    pub route: RouteWatch<'a>,
    /// Resolves when the drain's time for tunnels is up.
    pub drain_over: D,
}

impl SessionWatch<'_> {
    /// Whether the tunnel may stay open. Fails closed: a revocation state too stale to
    /// trust closes it, as it would refuse a new request.
    pub fn may_stay_open(&self) -> bool {
        let expired = !self.outlives_token && self.token.exp <= now_ms() / 1000;
        self.revocations.is_current() && !self.revocations.is_revoked(self.token) && !expired
    }
}

/// Carries bytes both ways between the client's and the upstream's streams until either
/// side closes, or one of `checks` closes the tunnel. Two small buffers, allocated when
/// the tunnel opens: an idle tunnel holds no large read buffer, and the future every
/// request builds (and moves into its box) stays small.
pub async fn splice<D: std::future::Future<Output = ()>>(
    mut client: Stream,
    mut upstream: Stream,
    checks: TunnelChecks<'_, D>,
) {
    // What the sessions wrote last (the 101, bytes passed on) may still be buffered.
    if client.flush().await.is_err() || upstream.flush().await.is_err() {
        return;
    }
    let TunnelChecks {
        idle,
        every,
        session,
        mut route,
        drain_over,
    } = checks;
    tokio::pin!(drain_over);
    let mut buffers = vec![0u8; 2 * SPLICE_BUFFER];
    let (to_upstream, to_client) = buffers.split_at_mut(SPLICE_BUFFER);
    let mut last_traffic = Instant::now();
    let mut next_check = Instant::now() + every;
    loop {
        tokio::select! {
            read = client.read(to_upstream) => {
                let Ok(n @ 1..) = read else { return };
                if upstream.write_all(&to_upstream[..n]).await.is_err() || upstream.flush().await.is_err() {
                    return;
                }
                last_traffic = Instant::now();
            }
            read = upstream.read(to_client) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&to_client[..n]).await.is_err() || client.flush().await.is_err() {
                    return;
                }
                last_traffic = Instant::now();
            }
            () = tokio::time::sleep_until((last_traffic + idle).into()) => {
                tracing::debug!("tunnel idle; closing");
                return;
            }
            () = &mut drain_over => {
                tracing::info!("drain timeout reached; closing a tunnel");
                return;
            }
            () = tokio::time::sleep_until(next_check.into()) => {
                if let Some(watch) = &session {
                    if !watch.may_stay_open() {
                        tracing::info!(target: "audit", event = "tunnel_closed_session_ended", user_id = watch.token.user_id);
                        return;
                    }
                }
                if !route.may_stay_open() {
                    tracing::info!(path = %route.path, "tunnel closed: a reload removed its route or its route refuses it now");
                    return;
                }
                next_check = Instant::now() + every;
            }
        }
    }
}

/// Bytes read at a time in each direction of a tunnel.
const SPLICE_BUFFER: usize = 4096;
