//! The slowest a request body may arrive. Each silence is bounded by `client_timeout`
//! elsewhere; this bounds the average, so a body dribbled a byte at a time (a slow-body
//! attack that never goes silent) is cut, while an upload that keeps moving may take as
//! long as it needs.

use std::time::{Duration, Instant};

use pingora::{Error, ErrorType, Result};

/// Bytes received since the body started, checked against a minimum average rate once
/// the body has taken longer than the grace period.
pub struct BodyPace {
    started: Instant,
    received: u64,
    /// Bytes per second; 0 turns the check off.
    min_rate: u64,
    grace: Duration,
}

impl BodyPace {
    pub fn new(min_rate: u64, grace: Duration) -> Self {
        Self {
            started: Instant::now(),
            received: 0,
            min_rate,
            grace,
        }
    }

    /// Counts `n` more bytes; an error (a downstream read timeout: 408) when the body is
    /// past its grace period and slower on average than the minimum.
    pub fn record(&mut self, n: usize) -> Result<()> {
        self.received += n as u64;
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<()> {
        let elapsed = now.saturating_duration_since(self.started);
        if self.min_rate == 0 || elapsed <= self.grace {
            return Ok(());
        }
        let required = self.min_rate as f64 * elapsed.as_secs_f64();
        if (self.received as f64) < required {
            return Err(Error::explain(
                ErrorType::ReadTimedout,
                "request body slower than min_body_rate",
            )
            .into_down());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_body_is_allowed_its_grace_period_then_cut() {
        let mut pace = BodyPace::new(1024, Duration::from_secs(1));
        pace.received = 10;
        let start = pace.started;
        assert!(pace.check_at(start + Duration::from_millis(900)).is_ok());
        assert!(pace.check_at(start + Duration::from_millis(1100)).is_err());
    }

    #[test]
    fn a_body_at_the_minimum_rate_runs_as_long_as_it_needs() {
        let mut pace = BodyPace::new(1024, Duration::from_secs(1));
        pace.received = 1024 * 60;
        assert!(pace
            .check_at(pace.started + Duration::from_secs(59))
            .is_ok());
        assert!(BodyPace::new(0, Duration::ZERO)
            .check_at(Instant::now())
            .is_ok());
    }
}
