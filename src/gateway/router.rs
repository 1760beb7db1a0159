//! Which handler a normalised path goes to: one of the gateway's own endpoints, which take
//! precedence over every route, or the route with the longest matching prefix.

use std::sync::Arc;

use crate::config::{AccountConfig, AuthMode, RouteConfig};

/// Where the OpenAPI document is served when `[server] openapi = true`.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The gateway's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Register,
    Login,
    Logout,
    LogoutAll,
    Refresh,
    /// The forward-auth check for other proxies (`[forward_auth] path`).
    Verify,
    /// The OpenAPI document (`[server] openapi = true`).
    OpenApi,
    /// `GET`/`DELETE` of the caller's own account (`[account] me_path`).
    Me,
    /// `POST`: the caller changes their password (`[account] password_path`).
    Password,
    /// `/.well-known/jwks.json`: the public signing keys.
    Jwks,
    /// `/.well-known/oauth-authorization-server`: RFC 8414 metadata.
    AuthorizationServerMetadata,
}

impl Endpoint {
    /// Every endpoint, in discriminant order.
    pub const ALL: [Endpoint; 11] = [
        Endpoint::Register,
        Endpoint::Login,
        Endpoint::Logout,
        Endpoint::LogoutAll,
        Endpoint::Refresh,
        Endpoint::Verify,
        Endpoint::OpenApi,
        Endpoint::Me,
        Endpoint::Password,
        Endpoint::Jwks,
        Endpoint::AuthorizationServerMetadata,
    ];

    fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/register" => Endpoint::Register,
            "/login" => Endpoint::Login,
            "/logout" => Endpoint::Logout,
            "/logout/all" => Endpoint::LogoutAll,
            "/refresh" => Endpoint::Refresh,
            "/.well-known/jwks.json" => Endpoint::Jwks,
            "/.well-known/oauth-authorization-server" => Endpoint::AuthorizationServerMetadata,
            _ => return None,
        })
    }

    /// Its name as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Login => "login",
            Endpoint::Logout => "logout",
            Endpoint::LogoutAll => "logout_all",
            Endpoint::Refresh => "refresh",
            Endpoint::Verify => "verify",
            Endpoint::OpenApi => "openapi",
            Endpoint::Me => "me",
            Endpoint::Password => "password",
            Endpoint::Jwks => "jwks",
            Endpoint::AuthorizationServerMetadata => "oauth_metadata",
        }
    }
}

/// A route, resolved at start-up: its index doubles as the upstream's index.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub auth: AuthMode,
    pub upstream: usize,
    /// Any one of these roles lets a request through; empty: any valid token.
    pub roles: Vec<String>,
    /// Position in the config, used to find per-route state (rate limits, metrics).
    pub index: usize,
    /// The route's own upstream read timeout, if it sets one.
    pub upstream_read_timeout: Option<std::time::Duration>,
}

impl Route {
    /// Matches on whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
    fn matches(&self, path: &str) -> bool {
        self.prefix == "/"
            || (path.starts_with(&self.prefix)
                && matches!(path.as_bytes().get(self.prefix.len()), None | Some(b'/')))
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Target {
    Endpoint(Endpoint),
    Route(Arc<Route>),
    NotFound,
}

/// The route table, longest prefix first.
pub struct Router {
    routes: Vec<Arc<Route>>,
    verify_path: Option<String>,
    /// Whether `/openapi.json` is the gateway's own (else it is routed like any path).
    openapi: bool,
    /// The self-service endpoints' paths (`[account]`), each `None` when off.
    account_paths: [(Option<String>, Endpoint); 2],
}

impl Router {
    /// `upstream_index` resolves an upstream name (validated to exist) to its position.
    pub fn new(
        routes: &[RouteConfig],
        verify_path: Option<String>,
        upstream_index: impl Fn(&str) -> usize,
    ) -> Self {
        let mut routes: Vec<Arc<Route>> = routes
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Arc::new(Route {
                    prefix: r.prefix.clone(),
                    auth: r.auth,
                    upstream: upstream_index(&r.upstream),
                    roles: r.roles.clone(),
                    index,
                    upstream_read_timeout: r.upstream_read_timeout,
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self {
            routes,
            verify_path,
            openapi: false,
            account_paths: [(None, Endpoint::Me), (None, Endpoint::Password)],
        }
    }

    /// Serves `/openapi.json` itself when `enabled`.
    pub fn with_openapi(mut self, enabled: bool) -> Self {
        self.openapi = enabled;
        self
    }

    /// Serves the self-service endpoints at the paths `[account]` gives.
    pub fn with_account_paths(mut self, account: &AccountConfig) -> Self {
        self.account_paths = [
            (account.me_path.clone(), Endpoint::Me),
            (account.password_path.clone(), Endpoint::Password),
        ];
        self
    }

    pub fn resolve(&self, path: &str) -> Target {
        if let Some(endpoint) = Endpoint::from_path(path) {
            return Target::Endpoint(endpoint);
        }
        if self.verify_path.as_deref() == Some(path) {
            return Target::Endpoint(Endpoint::Verify);
        }
        if self.openapi && path == OPENAPI_PATH {
            return Target::Endpoint(Endpoint::OpenApi);
        }
        if let Some((_, endpoint)) = self
            .account_paths
            .iter()
            .find(|(p, _)| p.as_deref() == Some(path))
        {
            return Target::Endpoint(*endpoint);
        }
        self.routes
            .iter()
            .find(|r| r.matches(path))
            .map_or(Target::NotFound, |r| Target::Route(r.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let route = |prefix: &str, auth| RouteConfig {
            prefix: prefix.into(),
            upstream: "u".into(),
            auth,
            rate_limit: None,
            roles: Vec::new(),
            upstream_read_timeout: None,
        };
        Router::new(
            &[
                route("/", AuthMode::Required),
                route("/public", AuthMode::Public),
                route("/public/admin", AuthMode::Required),
            ],
            Some("/auth/verify".into()),
            |_| 0,
        )
        .with_account_paths(&AccountConfig {
            me_path: Some("/me".into()),
            password_path: None,
        })
    }

    fn prefix(t: Target) -> String {
        match t {
            Target::Route(r) => r.prefix.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router();
        assert_eq!(prefix(r.resolve("/public/x")), "/public");
        assert_eq!(prefix(r.resolve("/public")), "/public");
        assert_eq!(prefix(r.resolve("/publicity")), "/");
        assert_eq!(prefix(r.resolve("/public/admin/users")), "/public/admin");
    }

    #[test]
    fn endpoint_list_is_in_discriminant_order() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
    }

    #[test]
    fn own_endpoints_win_over_a_catch_all() {
        assert!(matches!(
            router().resolve("/login"),
            Target::Endpoint(Endpoint::Login)
        ));
        assert!(matches!(router().resolve("/login/x"), Target::Route(_)));
        assert!(matches!(
            router().resolve("/logout/all"),
            Target::Endpoint(Endpoint::LogoutAll)
        ));
        assert!(matches!(
            router().resolve("/auth/verify"),
            Target::Endpoint(Endpoint::Verify)
        ));
        assert!(matches!(
            router().resolve("/me"),
            Target::Endpoint(Endpoint::Me)
        ));
        // Turned off: the path belongs to the routes again.
        assert!(matches!(router().resolve("/password"), Target::Route(_)));
    }
}
