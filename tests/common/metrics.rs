//! Reading the gateway's Prometheus scrape from its operations listener.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::http::send;

/// The whole scrape.
pub fn scrape(ops: SocketAddr) -> String {
    send(ops, "GET", "/metrics", &[], None).text()
}

/// The value of one series (`name` or `name{labels}`), as scraped.
pub fn metric(ops: SocketAddr, series: &str) -> Option<f64> {
    scrape(ops)
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls the scrape, for at most `within`, until `line` is one of its lines.
pub fn wait_for_metric(ops: SocketAddr, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(ops);
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
