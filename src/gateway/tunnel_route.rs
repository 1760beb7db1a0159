//! A tunnel's route, re-checked after a reload: the tunnel stays open only while its path
//! still leads to a route of the live configuration whose policy (auth required, roles)
//! would let the tunnel's identity open it today.

use std::sync::Arc;

use super::live::{LiveConfig, SharedLiveConfig};
use super::router::Target;
use crate::auth::VerifiedToken;
use crate::config::AuthMode;

/// What a tunnel was opened with, and the configuration it was last checked against.
pub struct RouteWatch<'a> {
    pub live: &'a SharedLiveConfig,
    /// The (normalised) path the tunnel was opened on.
    pub path: String,
    /// The verified token, on a route that required one.
    pub identity: Option<&'a VerifiedToken>,
    /// The configuration of the last check: nothing to do until a reload swaps it.
    pub checked: Arc<LiveConfig>,
}

impl RouteWatch<'_> {
    /// Whether the tunnel may stay open under the current configuration; checked again
    /// only when a reload has swapped it.
    pub fn may_stay_open(&mut self) -> bool {
        let current = self.live.load_full();
        if Arc::ptr_eq(&current, &self.checked) {
            return true;
        }
        self.checked = current;
        allowed(&self.checked, &self.path, self.identity)
    }
}

/// Whether `path` leads to a route of `live` that lets `identity` through.
pub fn allowed(live: &LiveConfig, path: &str, identity: Option<&VerifiedToken>) -> bool {
    let Target::Route(route) = live.router.resolve(path) else {
        return false;
    };
    match (route.auth, identity) {
        (AuthMode::Required, Some(token)) => {
            crate::auth::roles::has_any(&token.roles, &route.roles)
        }
        (AuthMode::Required, None) => false,
        (AuthMode::Public, _) => true,
    }
}
