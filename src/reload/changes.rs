//! What changes between two configurations, key by key, and whether a reload applies
//! each change or it needs a restart. Values are compared, never printed: a changed
//! database URL or secret is named by its key only.

use std::fmt::Debug;

use crate::config::Config;

/// Whether a reload applies a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// The running gateway takes it on reload.
    Live,
    /// It takes effect at the next start; until then the running value stays.
    Restart,
}

/// One key whose value differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub applies: Applies,
}

/// Collects the keys that differ.
struct Comparison<'a> {
    old: &'a Config,
    new: &'a Config,
    changes: Vec<Change>,
}

impl Comparison<'_> {
    fn key<T: Debug>(&mut self, key: &'static str, applies: Applies, pick: impl Fn(&Config) -> &T) {
        // Debug output covers every field of these plain data types.
        if format!("{:?}", pick(self.old)) != format!("{:?}", pick(self.new)) {
            self.changes.push(Change { key, applies });
        }
    }
}

/// Every key (or section) whose value differs between `old` and `new`, in file order.
pub fn changes(old: &Config, new: &Config) -> Vec<Change> {
    use Applies::{Live, Restart};
    let mut c = Comparison {
        old,
        new,
        changes: Vec::new(),
    };
    c.key("server.listen", Restart, |c| &c.server.listen);
    c.key("server.threads", Restart, |c| &c.server.threads);
    c.key("server.work_stealing", Restart, |c| &c.server.work_stealing);
    c.key("server.metrics_listen", Restart, |c| {
        &c.server.metrics_listen
    });
    c.key("server.trusted_proxies", Restart, |c| {
        &c.server.trusted_proxies
    });
    c.key("server.upstream_connect_timeout", Live, |c| {
        &c.server.upstream_connect_timeout
    });
    c.key("server.upstream_read_timeout", Live, |c| {
        &c.server.upstream_read_timeout
    });
    c.key("server.upstream_keepalive_pool_size", Restart, |c| {
        &c.server.upstream_keepalive_pool_size
    });
    c.key("server.client_timeout", Restart, |c| {
        &c.server.client_timeout
    });
    c.key("server.openapi", Restart, |c| &c.server.openapi);
    c.key("server.min_body_rate", Restart, |c| &c.server.min_body_rate);
    c.key("server.tunnel_idle_timeout", Restart, |c| {
        &c.server.tunnel_idle_timeout
    });
    c.key("server.tunnel_outlives_token", Restart, |c| {
        &c.server.tunnel_outlives_token
    });
    c.key("server.pid_file", Restart, |c| &c.server.pid_file);
    c.key("server.upgrade_socket", Restart, |c| {
        &c.server.upgrade_socket
    });
    c.key("server.drain_timeout", Restart, |c| &c.server.drain_timeout);
    c.key("server.h2c", Restart, |c| &c.server.h2c);
    c.key("server.max_connections", Restart, |c| {
        &c.server.max_connections
    });
    c.key("server.keepalive_timeout", Restart, |c| {
        &c.server.keepalive_timeout
    });
    c.key("server.read_buffer_size", Restart, |c| {
        &c.server.read_buffer_size
    });
    // The listener and the certificate files' paths; the certificates themselves are
    // reread when their files change, and on every reload.
    c.key("tls", Restart, |c| &c.tls);
    c.key("database", Restart, |c| &c.database);
    c.key("tokens", Restart, |c| &c.tokens);
    c.key("identity", Live, |c| &c.identity);
    c.key("limits", Restart, |c| &c.limits);
    c.key("rate_limits.register", Live, |c| &c.rate_limits.register);
    c.key("rate_limits.login", Live, |c| &c.rate_limits.login);
    c.key("rate_limits.refresh", Live, |c| &c.rate_limits.refresh);
    c.key("rate_limits.login_failures", Restart, |c| {
        &c.rate_limits.login_failures
    });
    c.key("rate_limits.authenticated", Live, |c| {
        &c.rate_limits.authenticated
    });
    c.key("rate_limits.public", Live, |c| &c.rate_limits.public);
    c.key("rate_limits.account", Live, |c| &c.rate_limits.account);
    c.key("log.format", Restart, |c| &c.log.format);
    c.key("log.level", Live, |c| &c.log.level);
    c.key("log.access", Restart, |c| &c.log.access);
    c.key("cors", Live, |c| &c.cors);
    c.key("forward_auth", Live, |c| &c.forward_auth);
    c.key("account", Live, |c| &c.account);
    c.key("upstreams", Live, |c| &c.upstreams);
    c.key("routes", Live, |c| &c.routes);
    c.changes
}

/// The configuration a reload runs with: `new`'s values for every key a reload applies,
/// `running`'s for every key that needs a restart.
pub fn applied(running: &Config, new: &Config) -> Config {
    let mut next = running.clone();
    next.server.upstream_connect_timeout = new.server.upstream_connect_timeout;
    next.server.upstream_read_timeout = new.server.upstream_read_timeout;
    next.identity = new.identity.clone();
    next.rate_limits = crate::config::RateLimitsConfig {
        login_failures: running.rate_limits.login_failures,
        ..new.rate_limits.clone()
    };
    next.log.level = new.log.level.clone();
    next.cors = new.cors.clone();
    next.forward_auth = new.forward_auth.clone();
    next.account = new.account.clone();
    next.upstreams = new.upstreams.clone();
    next.routes = new.routes.clone();
    next
}

/// The changes as lines a person reads: `  routes: applied by a reload`.
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes\n".to_string();
    }
    changes
        .iter()
        .map(|c| {
            let how = match c.applies {
                Applies::Live => "applied by a reload",
                Applies::Restart => "needs a restart",
            };
            format!("  {}: {how}\n", c.key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "{extra}\n[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n\
             [[routes]]\nprefix = \"/\"\nupstream = \"api\"\n"
        );
        let file = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        Config::try_from(file).unwrap()
    }

    #[test]
    fn names_each_changed_key_with_how_it_applies() {
        let old = config("[server]\nlisten = \"127.0.0.1:8080\"");
        let new = config(
            "[server]\nlisten = \"127.0.0.1:9090\"\n[rate_limits]\npublic = \"5/1m\"\n\
             [identity]\nuser_id_header = \"X-Uid\"",
        );
        assert_eq!(
            changes(&old, &new),
            vec![
                Change {
                    key: "server.listen",
                    applies: Applies::Restart
                },
                // Derived from the listening port when not set: a binary upgrade across
                // this change cannot find the running process's socket.
                Change {
                    key: "server.upgrade_socket",
                    applies: Applies::Restart
                },
                Change {
                    key: "identity",
                    applies: Applies::Live
                },
                Change {
                    key: "rate_limits.public",
                    applies: Applies::Live
                },
            ]
        );
        assert_eq!(changes(&old, &old), vec![]);
    }

    #[test]
    fn the_log_level_applies_live() {
        let old = config("[log]\nlevel = \"warn\"");
        let new = config("[log]\nlevel = \"debug\"");
        assert_eq!(
            changes(&old, &new),
            vec![Change {
                key: "log.level",
                applies: Applies::Live
            }]
        );
        assert_eq!(applied(&old, &new).log.level, "debug");
    }

    #[test]
    fn a_reload_keeps_the_running_value_of_restart_only_keys() {
        let old = config("[server]\nlisten = \"127.0.0.1:8080\"");
        let new = config("[server]\nlisten = \"127.0.0.1:9090\"\n[rate_limits]\npublic = \"5/1m\"");
        let next = applied(&old, &new);
        assert_eq!(next.server.listen, old.server.listen);
        assert_eq!(next.rate_limits.public, new.rate_limits.public);
        let still: Vec<&str> = changes(&next, &new).iter().map(|c| c.key).collect();
        assert_eq!(still, ["server.listen", "server.upgrade_socket"]);
    }
}
