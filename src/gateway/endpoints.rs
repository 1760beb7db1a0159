//! Serves the gateway's own endpoints (`/register`, `/login`, `/logout`, `/refresh`, and
//! the forward-auth check; the self-service ones are in `account_endpoints`): method and
//! rate-limit checks, a capped body read, then the auth service. The published keys and
//! metadata (`/.well-known/...`) are answered by `jwks_endpoint`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, StatusCode};
use pingora::protocols::http::ServerSession;

use super::live::LiveConfig;
use super::respond::JsonResponse;
use super::router::Endpoint;
use super::Gateway;
use crate::auth::{AuthError, Reply};
use crate::limits::{KeyedLimit, Limited};

/// What a client sees when a rate limit refuses it.
pub fn rate_limited(limited: Limited) -> JsonResponse {
    JsonResponse::error(
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded. Try again later.",
    )
    .header("Retry-After", limited.retry_after_secs.to_string())
    .header("RateLimit-Policy", limited.policy)
    .header("RateLimit", limited.state)
}

/// An endpoint's per-IP rate limit: counted, audited and answered 429 when exceeded.
pub(super) fn per_ip_limit(
    gw: &Gateway,
    limit: &KeyedLimit<IpAddr>,
    ip: IpAddr,
    endpoint: Endpoint,
) -> Result<(), JsonResponse> {
    let Err(limited) = limit.check(&ip) else {
        return Ok(());
    };
    gw.metrics
        .rate_limited_total
        .with_label_values(&[endpoint.name()])
        .inc();
    tracing::info!(target: "audit", event = "rate_limited", scope = endpoint.name());
    Err(rate_limited(limited))
}

/// The JSON answer for an auth failure.
pub fn auth_error(e: &AuthError) -> JsonResponse {
    let resp = JsonResponse::error(e.status(), e);
    match e {
        AuthError::Busy | AuthError::StoreUnavailable | AuthError::NoSigningKey => {
            resp.header("Retry-After", "1")
        }
        AuthError::TooManyFailures { retry_after_secs } => {
            resp.header("Retry-After", retry_after_secs.to_string())
        }
        _ => resp,
    }
}

pub(super) fn reply(r: Reply) -> JsonResponse {
    let mut resp = JsonResponse::new(r.status, r.body);
    resp.no_store = r.carries_token;
    resp
}

/// Reads the request body, refusing (413) past `max` bytes without reading further, and
/// (408) when the whole body takes longer than `deadline`: a client dribbling bytes must
/// not hold a worker.
pub(super) async fn read_body(
    session: &mut ServerSession,
    max: usize,
    deadline: Duration,
) -> Result<BytesMut, JsonResponse> {
    let declared = session
        .req_header()
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        session.set_keepalive(None);
        return Err(JsonResponse::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            AuthError::BodyTooLarge,
        ));
    }
    match tokio::time::timeout(deadline, read_capped(session, max)).await {
        Ok(result) => result,
        Err(_) => {
            session.set_keepalive(None);
            Err(JsonResponse::error(
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout: the body took too long to arrive",
            ))
        }
    }
}

/// The body, chunk by chunk, up to `max` bytes.
async fn read_capped(session: &mut ServerSession, max: usize) -> Result<BytesMut, JsonResponse> {
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    session.set_keepalive(None);
                    return Err(JsonResponse::error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        AuthError::BodyTooLarge,
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                session.set_keepalive(None);
                tracing::debug!(error = %e, "cannot read request body");
                return Err(JsonResponse::error(
                    StatusCode::BAD_REQUEST,
                    "Invalid request body",
                ));
            }
        }
    }
}

/// JSON bodies only; a missing Content-Type is given the benefit of the doubt. Any other
/// type gets the contract's 400 `Missing JSON in request`, as the original service answered
/// (its `request.get_json()` saw no JSON), so a client checking for 400 keeps working.
pub(super) fn check_content_type(session: &ServerSession) -> Result<(), JsonResponse> {
    let Some(value) = session.req_header().headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(auth_error(&AuthError::MissingJson))
    }
}

async fn handle(
    gw: &Gateway,
    live: &LiveConfig,
    session: &mut ServerSession,
    endpoint: Endpoint,
    client_ip: Option<IpAddr>,
) -> Result<JsonResponse, JsonResponse> {
    if session.req_header().method != Method::POST {
        return Err(
            JsonResponse::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .header("Allow", "POST"),
        );
    }
    if let Some(ip) = client_ip {
        let limit = match endpoint {
            Endpoint::Register => Some(&live.limits.register),
            Endpoint::Login => Some(&live.limits.login),
            Endpoint::Refresh => Some(&live.limits.refresh),
            Endpoint::Logout
            | Endpoint::LogoutAll
            | Endpoint::Verify
            | Endpoint::Me
            | Endpoint::Password
            | Endpoint::OpenApi
            | Endpoint::Jwks
            | Endpoint::AuthorizationServerMetadata => None,
        };
        if let Some(limit) = limit {
            per_ip_limit(gw, limit, ip, endpoint)?;
        }
    }
    let body = read_body(session, gw.max_body_bytes, gw.client_timeout).await?;
    let auth = &gw.auth;
    let authorization = session.req_header().headers.get_all(AUTHORIZATION);
    let result = match endpoint {
        Endpoint::Register => {
            check_content_type(session)?;
            auth.register(&body).await
        }
        Endpoint::Login => {
            check_content_type(session)?;
            auth.login(&body, client_ip).await
        }
        Endpoint::LogoutAll => {
            auth.logout_all(authorization.iter().map(|v| v.as_bytes()))
                .await
        }
        Endpoint::Verify
        | Endpoint::Me
        | Endpoint::Password
        | Endpoint::OpenApi
        | Endpoint::Jwks
        | Endpoint::AuthorizationServerMetadata => {
            unreachable!("answered before the body is read")
        }
        Endpoint::Logout => {
            auth.logout(authorization.iter().map(|v| v.as_bytes()))
                .await
        }
        Endpoint::Refresh => {
            auth.refresh(authorization.iter().map(|v| v.as_bytes()))
                .await
        }
    };
    result.map(reply).map_err(|e| refused(gw, &e))
}

/// The `reason` label of a valid token refused by a route's roles.
pub const FORBIDDEN_REASON: &str = "forbidden";

/// The answer to a failed auth check, counted by reason when a token was refused.
pub fn refused(gw: &Gateway, e: &AuthError) -> JsonResponse {
    let reason = match e {
        AuthError::Token(t) => Some(t.reason()),
        AuthError::Forbidden => Some(FORBIDDEN_REASON),
        _ => None,
    };
    if let Some(reason) = reason {
        gw.metrics
            .auth_failures_total
            .with_label_values(&[reason])
            .inc();
    }
    auth_error(e)
}

/// The forward-auth check: 204 with the identity headers for a valid access token holding
/// one of the roles the URL's `?roles=` asks for (if any), else the contract's 401 or
/// 403 `Forbidden: insufficient role`. Any method, so the calling proxy may pass the
/// original one on.
fn verify(gw: &Gateway, live: &LiveConfig, session: &ServerSession) -> JsonResponse {
    let required = match super::policy::roles_from_query(session.req_header().uri.query()) {
        Ok(roles) => roles,
        Err(e) => return JsonResponse::error(StatusCode::BAD_REQUEST, format!("Bad request: {e}")),
    };
    let authorization = session.req_header().headers.get_all(AUTHORIZATION);
    let verified = gw
        .auth
        .verify_access(authorization.iter().map(|v| v.as_bytes()))
        .and_then(|token| super::policy::require_roles(&required, token));
    match verified {
        Ok(token) => {
            let mut resp = JsonResponse::new(StatusCode::NO_CONTENT, serde_json::Value::Null)
                .header(live.identity.user_id_name(), token.user_id.to_string())
                .header(live.identity.username_name(), token.username.as_str());
            if let Some(roles) = super::identity::IdentityHeaders::roles_value(&token) {
                resp = resp.header(live.identity.roles_name(), roles);
            }
            resp.empty_body = true;
            resp
        }
        Err(e) => refused(gw, &e),
    }
}

/// The OpenAPI document, to GET and HEAD.
fn openapi(gw: &Gateway, session: &ServerSession) -> JsonResponse {
    let method = &session.req_header().method;
    match &gw.openapi {
        Some(doc) if method == Method::GET || method == Method::HEAD => {
            JsonResponse::new(StatusCode::OK, doc.clone())
        }
        Some(_) => JsonResponse::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            .header("Allow", "GET, HEAD"),
        None => JsonResponse::error(StatusCode::NOT_FOUND, "Resource not found"),
    }
}

/// Answers one request to a built-in endpoint.
/// `client_ip` is the one the request phase resolved.
pub async fn serve(
    gw: &Gateway,
    live: &LiveConfig,
    session: &mut ServerSession,
    endpoint: Endpoint,
    client_ip: Option<IpAddr>,
) -> JsonResponse {
    if endpoint == Endpoint::Verify {
        return verify(gw, live, session);
    }
    if let Some(resp) = super::jwks_endpoint::serve(gw, session, endpoint) {
        return resp;
    }
    if endpoint == Endpoint::OpenApi {
        return openapi(gw, session);
    }
    if matches!(endpoint, Endpoint::Me | Endpoint::Password) {
        return super::account_endpoints::serve(gw, live, session, endpoint, client_ip).await;
    }
    handle(gw, live, session, endpoint, client_ip)
        .await
        .unwrap_or_else(|e| e)
}
