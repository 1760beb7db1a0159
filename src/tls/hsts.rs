//! `Strict-Transport-Security` on every response the HTTPS listener sends, the gateway's
//! own and the upstreams' alike (`[tls] hsts`; empty: not sent). A response that already
//! carries the header (an upstream that sets its own policy) keeps it.

use std::any::Any;

use async_trait::async_trait;
use http::header::STRICT_TRANSPORT_SECURITY;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::Result;

/// The configured policy, parsed once.
#[derive(Debug, Clone)]
pub struct StrictTransportSecurity {
    value: HeaderValue,
}

impl StrictTransportSecurity {
    /// `None` when `value` is empty or not a header value (refused by config validation).
    pub fn new(value: &str) -> Option<Self> {
        (!value.is_empty())
            .then(|| HeaderValue::from_str(value).ok())
            .flatten()
            .map(|value| Self { value })
    }

    /// The policy as sent.
    pub fn value(&self) -> &str {
        self.value.to_str().unwrap_or_default()
    }

    /// Adds the header unless the response has one.
    pub fn apply(&self, resp: &mut ResponseHeader) -> Result<()> {
        if !resp.headers.contains_key(STRICT_TRANSPORT_SECURITY) {
            resp.insert_header(STRICT_TRANSPORT_SECURITY, self.value.clone())?;
        }
        Ok(())
    }
}

/// Adds the policy to every response written on a session, whoever wrote it.
struct HstsModule(StrictTransportSecurity);

#[async_trait]
impl HttpModule for HstsModule {
    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        self.0.apply(resp)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl HttpModuleBuilder for StrictTransportSecurity {
    fn init(&self) -> Module {
        Box::new(HstsModule(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_policy_but_keeps_an_upstreams_own() {
        let hsts = StrictTransportSecurity::new("max-age=63072000").unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        hsts.apply(&mut resp).unwrap();
        assert_eq!(
            resp.headers["strict-transport-security"],
            "max-age=63072000"
        );

        let mut own = ResponseHeader::build(200, None).unwrap();
        own.insert_header("Strict-Transport-Security", "max-age=60")
            .unwrap();
        hsts.apply(&mut own).unwrap();
        assert_eq!(own.headers["strict-transport-security"], "max-age=60");
        assert!(StrictTransportSecurity::new("").is_none());
    }
}
