//! Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, so they are removed
//! from a message before it is passed on, in both directions, together with every header
//! the message's `Connection` field nominates. The one exception is a WebSocket upgrade,
//! whose `Connection: Upgrade` and `Upgrade: websocket` must reach the upstream.

use http::header::{self, HeaderMap, HeaderName};

/// The standard hop-by-hop fields. `Transfer-Encoding` is not listed: pingora decodes the
/// body, and the framing of the next hop is decided by the caller.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// The header names a `Connection` field nominates, lower-cased; `close`, `keep-alive`
/// and `upgrade` included (removing them is harmless).
fn nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Whether `name` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The hop-by-hop and `Connection`-nominated headers present in `headers`, to be removed
/// through pingora's `remove_header` (which keeps its header-case map in step). One pass
/// over the names, without hashing or allocating when there are none.
pub fn present(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    if names.contains(&header::CONNECTION) {
        for name in nominated(headers) {
            if !names.contains(&name) && headers.contains_key(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Whether an HTTP/1.1 request asks for a WebSocket upgrade (`Upgrade: websocket` and
/// `Connection: upgrade`).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
    upgrade
        && nominated(headers)
            .iter()
            .any(|n| n.as_str() == header::UPGRADE.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_standard_and_nominated_headers_and_keeps_the_rest() {
        let h = map(&[
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("X-Secret-Hop", "1"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic x"),
            ("Accept", "*/*"),
            ("Content-Length", "3"),
        ]);
        let removed = present(&h);
        let mut kept: Vec<&str> = h
            .keys()
            .filter(|n| !removed.contains(n))
            .map(|n| n.as_str())
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, vec!["accept", "content-length"]);
        assert!(present(&map(&[("Accept", "*/*")])).is_empty());
    }

    #[test]
    fn recognises_a_websocket_upgrade() {
        let h = map(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
        ]);
        assert!(is_websocket_upgrade(&h));
        let h = map(&[("Upgrade", "websocket")]);
        assert!(!is_websocket_upgrade(&h));
        let h = map(&[("Connection", "upgrade"), ("Upgrade", "h2c")]);
        assert!(!is_websocket_upgrade(&h));
    }
}
