//! Tunnels (exchanges upgraded by a `101`): counted in a gauge while they live, and
//! bound to the login session of the token that opened them. A session ended anywhere
//! (logout, logout everywhere, refresh-token reuse, deactivation; on this gateway or
//! another sharing the database) reaches the revocation cache within its sync time, and
//! the tunnel is closed at its next check.

use std::time::Duration;

use prometheus::IntGauge;

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

/// The session a tunnel belongs to, checked every `every`.
pub struct SessionWatch<'a> {
    pub revocations: &'a RevocationCache,
    pub token: &'a VerifiedToken,
    /// false: the tunnel is also closed when the access token expires.
    pub outlives_token: bool,
    pub every: Duration,
}

impl SessionWatch<'_> {
    /// Whether the tunnel may stay open. Fails closed: a revocation state too stale to
    /// trust closes it, as it would refuse a new request.
    pub fn may_stay_open(&self) -> bool {
        let expired = !self.outlives_token && self.token.exp <= now_ms() / 1000;
        self.revocations.is_current() && !self.revocations.is_revoked(self.token) && !expired
    }
}
