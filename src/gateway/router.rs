//! Which handler a normalised path goes to: one of the gateway's own endpoints, which take
//! precedence over every route, or the route with the longest matching prefix.

use std::sync::Arc;

use crate::config::{AuthMode, RouteConfig};

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
}

impl Endpoint {
    /// Every endpoint, in discriminant order.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Register,
        Endpoint::Login,
        Endpoint::Logout,
        Endpoint::LogoutAll,
        Endpoint::Refresh,
        Endpoint::Verify,
    ];

    fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/register" => Endpoint::Register,
            "/login" => Endpoint::Login,
            "/logout" => Endpoint::Logout,
            "/logout/all" => Endpoint::LogoutAll,
            "/refresh" => Endpoint::Refresh,
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
        }
    }
}

/// A route, resolved at start-up: its index doubles as the upstream's index.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub auth: AuthMode,
    pub upstream: usize,
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
                    index,
                    upstream_read_timeout: r.upstream_read_timeout,
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self {
            routes,
            verify_path,
        }
    }

    pub fn resolve(&self, path: &str) -> Target {
        if let Some(endpoint) = Endpoint::from_path(path) {
            return Target::Endpoint(endpoint);
        }
        if self.verify_path.as_deref() == Some(path) {
            return Target::Endpoint(Endpoint::Verify);
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
    }
}
