//! The identity headers: removed from every client request in every spelling (any case,
//! `_` for `-`, and named in `Connection`), then set from the verified token on required
//! routes. A backend behind authgate can trust them. The `_` spellings of the headers that
//! frame a message go too: a backend that folds `_` into `-` must not frame a body
//! differently from the gateway.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION};
use pingora::http::RequestHeader;
use pingora::Result;

use crate::auth::VerifiedToken;
use crate::config::IdentityConfig;

/// Headers that frame a message (the ones with a `-` that `_` could stand for). CGI-style
/// backends read `Transfer_Encoding` as `Transfer-Encoding`; forwarded next to the real
/// framing, it would be a request smuggling vector.
const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
];

fn is_framing_alias(name: &str) -> bool {
    name.contains('_')
        && FRAMING
            .iter()
            .any(|f| same_header(name.as_bytes(), f.as_bytes()))
}

/// The configured identity header names, as configured (`X-User-Id`): the spelling sent
/// upstream. Given as bytes, pingora keeps a name as it is; given a `HeaderName`, it
/// copies the lower-cased name on every request.
pub struct IdentityHeaders {
    user_id: Bytes,
    username: Bytes,
    roles: Bytes,
}

/// Header names compare equal ignoring case and `_` versus `-`, as several servers
/// (and CGI-style frameworks) treat them.
fn same_header(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(&x, &y)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(x) == fold(y)
        })
}

impl IdentityHeaders {
    /// `config`'s names were validated as header names (ASCII) when it was loaded.
    pub fn new(config: &IdentityConfig) -> Self {
        Self {
            user_id: Bytes::from(config.user_id_header.clone()),
            username: Bytes::from(config.username_header.clone()),
            roles: Bytes::from(config.roles_header.clone()),
        }
    }

    pub fn roles_name(&self) -> &str {
        std::str::from_utf8(&self.roles).unwrap_or_default()
    }

    /// The roles header's value (`admin,ops`), `None` when the token carries no role.
    pub fn roles_value(token: &VerifiedToken) -> Option<String> {
        (!token.roles.is_empty()).then(|| token.roles.join(","))
    }

    pub fn user_id_name(&self) -> &str {
        std::str::from_utf8(&self.user_id).unwrap_or_default()
    }

    pub fn username_name(&self) -> &str {
        std::str::from_utf8(&self.username).unwrap_or_default()
    }

    fn is_identity(&self, name: &str) -> bool {
        same_header(name.as_bytes(), &self.user_id)
            || same_header(name.as_bytes(), &self.username)
            || same_header(name.as_bytes(), &self.roles)
    }

    /// Removes every client-supplied spelling of the identity headers, and the `_`
    /// spellings of the framing headers.
    pub fn strip(&self, req: &mut RequestHeader) {
        let spoofed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|n| self.is_identity(n.as_str()) || is_framing_alias(n.as_str()))
            .cloned()
            .collect();
        for name in spoofed {
            req.remove_header(&name);
        }
        self.strip_from_connection(req);
    }

    /// `Connection: X-User-Id` would ask a hop to drop the header the gateway sets.
    fn strip_from_connection(&self, req: &mut RequestHeader) {
        let Some(value) = req.headers.get(CONNECTION).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if !value.split(',').any(|t| self.is_identity(t.trim())) {
            return;
        }
        let kept: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !self.is_identity(t))
            .collect();
        let kept = kept.join(", ");
        if kept.is_empty() {
            req.remove_header(&CONNECTION);
        } else if let Ok(v) = HeaderValue::from_str(&kept) {
            let _ = req.insert_header(CONNECTION, v);
        }
    }

    /// Sets the verified identity.
    pub fn inject(&self, req: &mut RequestHeader, token: &VerifiedToken) -> Result<()> {
        req.insert_header(self.user_id.clone(), HeaderValue::from(token.user_id))?;
        // Usernames are validated to `[A-Za-z0-9_]`, always a valid header value.
        req.insert_header(self.username.clone(), token.username.as_str())?;
        // Role names are checked to `[a-z0-9_-]` when a token is verified.
        if let Some(roles) = Self::roles_value(token) {
            req.insert_header(self.roles.clone(), roles)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> IdentityHeaders {
        IdentityHeaders::new(&IdentityConfig {
            user_id_header: "X-User-Id".into(),
            username_header: "X-User-Name".into(),
            roles_header: "X-User-Roles".into(),
        })
    }

    #[test]
    fn strips_every_spelling() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for name in [
            "X-User-Id",
            "x-user-id",
            "X_User_Id",
            "X-USER-NAME",
            "x_user_name",
            "X-User-Roles",
            "x_user_roles",
        ] {
            req.append_header(name.to_string(), "1").unwrap();
        }
        req.append_header("X-Other", "keep").unwrap();
        req.append_header("Transfer_Encoding", "chunked").unwrap();
        req.append_header("content_length", "5").unwrap();
        req.append_header("X_Other_Thing", "keep").unwrap();
        req.append_header("Connection", "keep-alive, X-User-Id")
            .unwrap();
        headers().strip(&mut req);
        let mut names: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["connection", "x-other", "x_other_thing"]);
        assert_eq!(req.headers.get("connection").unwrap(), "keep-alive");
    }

    #[test]
    fn inject_sends_the_verified_identity_in_the_configured_spelling() {
        let token = VerifiedToken {
            user_id: 42,
            username: "alice".into(),
            token_type: crate::auth::TokenType::Access,
            jti: uuid::Uuid::new_v4(),
            sid: uuid::Uuid::new_v4(),
            iat: 0,
            exp: 0,
            roles: Vec::new(),
            kid: None,
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("x-user-id", "999").unwrap();
        headers().inject(&mut req, &token).unwrap();
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert_eq!(wire, "X-User-Id: 42\r\nX-User-Name: alice\r\n");

        let token = VerifiedToken {
            roles: vec!["admin".into(), "ops".into()],
            ..token
        };
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        headers().inject(&mut req, &token).unwrap();
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "X-User-Id: 42\r\nX-User-Name: alice\r\nX-User-Roles: admin,ops\r\n"
        );
    }
}
