//! The published half of the signing keys: `GET /.well-known/jwks.json`, the JWK Set of
//! every key that may verify a live token, and `GET /.well-known/oauth-authorization-server`,
//! the RFC 8414 metadata that points consumers at it (served only when `[tokens] issuer` is
//! an https URL, as RFC 8414 requires of an issuer). Both may be cached for less than the
//! publish delay, so a consumer has a new key before any token is signed with it.

use http::{Method, StatusCode};
use pingora::protocols::http::ServerSession;
use serde_json::json;

use super::respond::JsonResponse;
use super::router::Endpoint;
use super::Gateway;
use crate::auth::service::now_secs;

/// Answers `endpoint` when it is one of the published ones; `None` for any other.
pub fn serve(gw: &Gateway, session: &ServerSession, endpoint: Endpoint) -> Option<JsonResponse> {
    if !matches!(
        endpoint,
        Endpoint::Jwks | Endpoint::AuthorizationServerMetadata
    ) {
        return None;
    }
    let method = &session.req_header().method;
    if method != Method::GET && method != Method::HEAD {
        return Some(
            JsonResponse::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .header("Allow", "GET, HEAD"),
        );
    }
    let tokens = &gw.auth.tokens;
    let cache = format!("public, max-age={}", tokens.keys().jwks_max_age());
    Some(match endpoint {
        Endpoint::Jwks => JsonResponse::new(StatusCode::OK, tokens.keys().load().jwks(now_secs()))
            .header("Cache-Control", cache),
        _ => match metadata_base(tokens.issuer()) {
            Some(base) => JsonResponse::new(
                StatusCode::OK,
                json!({
                    "issuer": tokens.issuer(),
                    "jwks_uri": format!("{base}/.well-known/jwks.json"),
                }),
            )
            .header("Cache-Control", cache),
            None => JsonResponse::error(StatusCode::NOT_FOUND, "Resource not found"),
        },
    })
}

/// The issuer without a trailing slash, when it is an https URL with no query or fragment.
fn metadata_base(issuer: &str) -> Option<&str> {
    let uri: http::Uri = issuer.parse().ok()?;
    let https = uri.scheme_str() == Some("https") && uri.host().is_some_and(|h| !h.is_empty());
    (https && uri.query().is_none() && !issuer.contains('#')).then(|| issuer.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_only_for_an_https_issuer() {
        assert_eq!(
            metadata_base("https://auth.example.com/"),
            Some("https://auth.example.com")
        );
        assert_eq!(metadata_base("authgate"), None);
        assert_eq!(metadata_base("http://auth.example.com"), None);
        assert_eq!(metadata_base("https://auth.example.com/?x=1"), None);
        assert_eq!(metadata_base("https://auth.example.com/#f"), None);
    }
}
