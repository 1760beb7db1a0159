//! Open tunnels (exchanges upgraded by a `101`), counted in a gauge while they live.

use prometheus::IntGauge;

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
