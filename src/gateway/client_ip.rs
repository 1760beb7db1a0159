//! The client's address: the socket peer, unless the peer is a trusted proxy, in which case
//! the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. A header from
//! anyone else changes nothing.

use std::net::IpAddr;

use ipnet::IpNet;
use pingora::http::RequestHeader;

/// Resolves the client address from the peer and, for trusted peers, `X-Forwarded-For`.
pub fn client_ip(peer: Option<IpAddr>, req: &RequestHeader, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    // Walk from the nearest hop outwards; stop at the first address we do not trust.
    let hops = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    for hop in hops.iter().rev().flat_map(|v| v.rsplit(',')) {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(xff: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("X-Forwarded-For", xff).unwrap();
        r
    }

    #[test]
    fn header_ignored_from_untrusted_peers() {
        let peer = "203.0.113.9".parse().ok();
        assert_eq!(client_ip(peer, &req("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn trusted_proxy_chain_is_walked_right_to_left() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = "10.0.0.1".parse().ok();
        assert_eq!(
            client_ip(peer, &req("6.6.6.6, 1.2.3.4, 10.0.0.2"), &trusted),
            "1.2.3.4".parse().ok()
        );
    }
}
