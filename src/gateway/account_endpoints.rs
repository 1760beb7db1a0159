//! Serves the self-service endpoints (`[account]`): `GET`/`DELETE` on `me_path`, `POST` on
//! `password_path`. Method and rate-limit checks and a capped body read, then the auth
//! service.

use std::net::IpAddr;

use http::header::AUTHORIZATION;
use http::{Method, StatusCode};
use pingora::protocols::http::ServerSession;

use super::endpoints::{check_content_type, per_ip_limit, read_body, refused, reply};
use super::live::LiveConfig;
use super::respond::JsonResponse;
use super::router::Endpoint;
use super::Gateway;

/// The methods each endpoint answers, as an `Allow` header says them.
fn allowed(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Me => "GET, HEAD, DELETE",
        _ => "POST",
    }
}

/// Answers one request to `/me` or `/password` (`endpoint` is one of the two).
pub async fn serve(
    gw: &Gateway,
    live: &LiveConfig,
    session: &mut ServerSession,
    endpoint: Endpoint,
    client_ip: Option<IpAddr>,
) -> JsonResponse {
    handle(gw, live, session, endpoint, client_ip)
        .await
        .unwrap_or_else(|e| e)
}

async fn handle(
    gw: &Gateway,
    live: &LiveConfig,
    session: &mut ServerSession,
    endpoint: Endpoint,
    client_ip: Option<IpAddr>,
) -> Result<JsonResponse, JsonResponse> {
    let method = session.req_header().method.clone();
    let known = match endpoint {
        Endpoint::Me => [Method::GET, Method::HEAD, Method::DELETE].contains(&method),
        _ => method == Method::POST,
    };
    if !known {
        return Err(
            JsonResponse::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .header("Allow", allowed(endpoint)),
        );
    }
    if let Some(ip) = client_ip {
        per_ip_limit(gw, &live.limits.account, ip, endpoint)?;
    }
    let body = read_body(session, gw.max_body_bytes, gw.client_timeout).await?;
    let auth = &gw.auth;
    let authorization = session.req_header().headers.get_all(AUTHORIZATION);
    let authorization = authorization.iter().map(|v| v.as_bytes());
    let result = if method == Method::GET || method == Method::HEAD {
        auth.me(authorization).await
    } else {
        check_content_type(session)?;
        if endpoint == Endpoint::Me {
            auth.delete_account(authorization, &body, client_ip).await
        } else {
            auth.change_password(authorization, &body, client_ip).await
        }
    };
    result.map(reply).map_err(|e| refused(gw, &e))
}
