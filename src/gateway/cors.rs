//! CORS for browser clients: preflight `OPTIONS` requests are answered by the gateway on
//! every route (they carry no credentials, so they never reach auth or an upstream), and
//! responses to an allowed `Origin` carry `Access-Control-Allow-Origin`. With no allowed
//! origins configured the gateway sends no CORS headers at all.

use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use serde_json::Value;

use super::respond::JsonResponse;
use crate::config::CorsConfig;

/// The configured CORS policy, with header values rendered once.
pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    allow_methods: String,
    allow_headers: String,
    allowed_headers_lower: Vec<String>,
    max_age: String,
    allow_credentials: bool,
}

impl Cors {
    pub fn new(config: &CorsConfig) -> Self {
        Self {
            any_origin: config.allowed_origins.iter().any(|o| o == "*"),
            origins: config.allowed_origins.clone(),
            allow_methods: config.allowed_methods.join(", "),
            allow_headers: config.allowed_headers.join(", "),
            allowed_headers_lower: config
                .allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_age: config.max_age.as_secs().to_string(),
            allow_credentials: config.allow_credentials,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The request's `Origin` when it is allowed.
    pub fn allowed_origin(&self, req: &RequestHeader) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        let origin = req.headers.get(ORIGIN)?.to_str().ok()?;
        (self.any_origin || self.origins.iter().any(|o| o == origin)).then(|| origin.to_string())
    }

    fn allow_origin_value(&self, origin: &str) -> String {
        if self.any_origin && !self.allow_credentials {
            "*".to_string()
        } else {
            origin.to_string()
        }
    }

    /// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`):
    /// 204 with the policy for an allowed origin and request, 403 otherwise.
    pub fn preflight(&self, req: &RequestHeader) -> Option<JsonResponse> {
        if !self.enabled()
            || req.method != Method::OPTIONS
            || !req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        req.headers.get(ORIGIN)?;
        let refused = || {
            Some(JsonResponse::error(
                StatusCode::FORBIDDEN,
                "CORS request not allowed",
            ))
        };
        let Some(origin) = self.allowed_origin(req) else {
            return refused();
        };
        let headers_ok = req
            .headers
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .all(|h| self.allowed_headers_lower.contains(&h.to_ascii_lowercase()))
            })
            .unwrap_or(true);
        if !headers_ok {
            return refused();
        }
        let mut resp = JsonResponse::new(StatusCode::NO_CONTENT, Value::Null)
            .header(
                "Access-Control-Allow-Origin",
                self.allow_origin_value(&origin),
            )
            .header("Access-Control-Allow-Methods", self.allow_methods.clone())
            .header("Access-Control-Allow-Headers", self.allow_headers.clone())
            .header("Access-Control-Max-Age", self.max_age.clone())
            .header("Vary", "Origin");
        if self.allow_credentials {
            resp = resp.header("Access-Control-Allow-Credentials", "true");
        }
        resp.empty_body = true;
        Some(resp)
    }

    /// Adds the CORS headers to a response of the gateway's own.
    pub fn decorate(&self, resp: JsonResponse, origin: Option<&str>) -> JsonResponse {
        let Some(origin) = origin else { return resp };
        let resp = resp
            .header(
                "Access-Control-Allow-Origin",
                self.allow_origin_value(origin),
            )
            .header("Vary", "Origin");
        if self.allow_credentials {
            resp.header("Access-Control-Allow-Credentials", "true")
        } else {
            resp
        }
    }

    /// Adds the CORS headers to a proxied response.
    pub fn decorate_upstream(
        &self,
        resp: &mut ResponseHeader,
        origin: Option<&str>,
    ) -> pingora::Result<()> {
        let Some(origin) = origin else { return Ok(()) };
        resp.insert_header(
            "Access-Control-Allow-Origin",
            self.allow_origin_value(origin),
        )?;
        resp.append_header("Vary", "Origin")?;
        if self.allow_credentials {
            resp.insert_header("Access-Control-Allow-Credentials", "true")?;
        }
        Ok(())
    }
}
