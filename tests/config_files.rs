//! Every shipped config file loads; bad configs are refused with the key named.

use std::path::Path;

use authgate::config::{self, AuthMode, DatabaseBackend, DatabaseUrl};

#[test]
fn every_file_in_config_loads() {
    let mut seen = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
            config::Config::try_from(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn shipped_default_config_has_the_documented_values() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/authgate.toml");
    let c = config::Config::try_from(
        config::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(c.server.listen.unwrap().to_string(), "127.0.0.1:5000");
    assert!(c.tls.is_none(), "TLS is opt-in");
    assert_eq!(
        c.database.backend,
        DatabaseBackend::Sqlite("data/authgate.db".into())
    );
    assert_eq!(c.tokens.access_ttl.as_secs(), 3600);
    assert_eq!(c.tokens.refresh_ttl.as_secs(), 30 * 86400);
    assert_eq!(c.tokens.leeway.as_secs(), 5);
    assert!(c.tokens.secret.is_none());
    assert_eq!(c.identity.user_id_header, "X-User-Id");
    assert_eq!(c.identity.roles_header, "X-User-Roles");
    assert_eq!(c.account.me_path.as_deref(), Some("/me"));
    assert_eq!(c.account.password_path.as_deref(), Some("/password"));
    assert_eq!(c.rate_limits.account.count, 60);
    assert!(c.routes[0].roles.is_empty());
    assert_eq!(c.rate_limits.register.count, 10);
    assert_eq!(c.rate_limits.register.period.as_secs(), 300);
    assert_eq!(c.routes[0].prefix, "/protected");
    assert_eq!(c.routes[0].auth, AuthMode::Required);
}

fn refused(toml: &str) -> String {
    let file = match config::parse(Path::new("test.toml"), toml) {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    match config::Config::try_from(file) {
        Ok(_) => panic!("config accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

const UPSTREAM: &str = "[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n";

#[test]
fn bad_configs_name_the_key() {
    let cases = [
        (
            "[server]\nlisten = \"127.0.0.1:5000\"\nlisten_typo = 1\n",
            "listen_typo",
        ),
        ("[tokens]\naccess_ttl = \"soon\"\n", "tokens.access_ttl"),
        ("[tokens]\nsecret = \"too-short\"\n", "tokens.secret"),
        ("[server]\nthreads = 0\n", "server.threads"),
        (
            "[server]\nupstream_keepalive_pool_size = 0\n",
            "server.upstream_keepalive_pool_size",
        ),
        ("[limits]\nhash_nice = 20\n", "limits.hash_nice"),
        ("[limits]\nhash_nice = -5\n", "limits.hash_nice"),
        ("[rate_limits]\nlogin = \"lots\"\n", "rate_limits.login"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        (
            "[server]\ntrusted_proxies = [\"not-a-net\"]\n",
            "server.trusted_proxies",
        ),
        (
            "[identity]\nroles_header = \"x_user_id\"\n",
            "identity.roles_header",
        ),
        ("[rate_limits]\naccount = \"0/1m\"\n", "rate_limits.account"),
        ("[account]\nme_path = \"/login\"\n", "account.me_path"),
        (
            "[account]\npassword_path = \"pw\"\n",
            "account.password_path",
        ),
    ];
    for (toml, key) in cases {
        let msg = refused(toml);
        assert!(
            msg.contains(key),
            "{toml:?} refused without naming {key}: {msg}"
        );
    }
}

#[test]
fn routes_and_upstreams_are_cross_checked() {
    let missing = format!("{UPSTREAM}[[routes]]\nprefix = \"/a\"\nupstream = \"nope\"\n");
    let msg = refused(&missing);
    assert!(
        msg.contains("routes[0].upstream") && msg.contains("nope"),
        "{msg}"
    );
    let duplicate = format!("{UPSTREAM}[[routes]]\nprefix = \"/a\"\nupstream = \"api\"\n[[routes]]\nprefix = \"/a/\"\nupstream = \"api\"\n");
    assert!(refused(&duplicate).contains("routes[1].prefix"));
    let bad_auth =
        format!("{UPSTREAM}[[routes]]\nprefix = \"/a\"\nupstream = \"api\"\nauth = \"maybe\"\n");
    assert!(refused(&bad_auth).contains("routes[0].auth"));
    let dots = format!("{UPSTREAM}[[routes]]\nprefix = \"/a/../b\"\nupstream = \"api\"\n");
    assert!(refused(&dots).contains("routes[0].prefix"));
    let two = format!("{UPSTREAM}{UPSTREAM}");
    assert!(refused(&two).contains("upstreams[1].name"));
}

#[test]
fn database_urls_in_every_accepted_form() {
    let sqlite = |p: &str| DatabaseUrl::Sqlite(p.into());
    for (url, expected) in [
        ("sqlite:///data/a.db", sqlite("data/a.db")),
        ("sqlite:////var/lib/a.db", sqlite("/var/lib/a.db")),
        ("/tmp/a.db", sqlite("/tmp/a.db")),
        (
            "postgres://user:pw@db:5432/x",
            DatabaseUrl::Postgres("postgres://user:pw@db:5432/x".into()),
        ),
        (
            "postgresql://db/x",
            DatabaseUrl::Postgres("postgresql://db/x".into()),
        ),
    ] {
        assert_eq!(config::parse_database_url(url).unwrap(), expected, "{url}");
    }
    let err = config::parse_database_url("mysql://user:hunter2@db/x")
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("hunter2"),
        "password leaked into the error: {err}"
    );
    let err = config::parse_database_url("postgres://user:hunter2@db:notaport/x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database.url") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn postgres_settings_are_read_and_the_password_never_printed() {
    let toml = "[database]\nurl = \"postgres://gw:hunter2@db.internal:5432/authgate\"\n\
                pool_size = 8\nconnect_timeout = \"2s\"\nquery_timeout = \"3s\"\n\
                [tokens]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
    let c = config::Config::try_from(config::parse(Path::new("pg.toml"), toml).unwrap()).unwrap();
    let DatabaseBackend::Postgres(pg) = &c.database.backend else {
        panic!("not PostgreSQL: {:?}", c.database.backend);
    };
    assert_eq!(pg.pool_size, 8);
    assert_eq!(pg.connect_timeout.as_secs(), 2);
    assert_eq!(pg.query_timeout.as_secs(), 3);
    for shown in [format!("{c:?}"), c.database.backend.to_string()] {
        assert!(!shown.contains("hunter2"), "password printed: {shown}");
        assert!(shown.contains("db.internal:5432/authgate"), "{shown}");
    }
}

#[test]
fn postgres_needs_a_configured_secret_and_a_pool() {
    let msg = refused("[database]\nurl = \"postgres://gw:pw@db/authgate\"\n");
    assert!(
        msg.contains("tokens.secret") && msg.contains("PostgreSQL"),
        "{msg}"
    );
    let msg = refused(
        "[database]\nurl = \"postgres://gw:pw@db/authgate\"\npool_size = 0\n\
         [tokens]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    );
    assert!(msg.contains("database.pool_size"), "{msg}");
    assert!(refused("[database]\nconnect_timeout = \"0s\"\n").contains("database.connect_timeout"));
}

#[test]
fn check_command_validates_and_names_the_key() {
    let bin = env!("CARGO_BIN_EXE_authgate");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/authgate.toml");
    let ok = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&shipped)
        .env_remove("JWT_SECRET_KEY")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[tokens]\nleeway = \"forever\"\n").unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens.leeway"));
}

#[test]
fn check_diff_names_what_a_reload_applies_and_what_needs_a_restart() {
    let bin = env!("CARGO_BIN_EXE_authgate");
    let dir = tempfile::tempdir().unwrap();
    let base = "[[upstreams]]\nname = \"api\"\nservers = [\"127.0.0.1:8000\"]\n\
                [[routes]]\nprefix = \"/api\"\nupstream = \"api\"\n";
    let old = dir.path().join("old.toml");
    let new = dir.path().join("new.toml");
    std::fs::write(
        &old,
        format!("[server]\nlisten = \"127.0.0.1:5000\"\n{base}"),
    )
    .unwrap();
    std::fs::write(
        &new,
        format!(
            "[server]\nlisten = \"127.0.0.1:6000\"\n{base}\
             [[routes]]\nprefix = \"/more\"\nupstream = \"api\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&new)
        .arg("--diff")
        .arg(&old)
        .env_remove("JWT_SECRET_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changes: Vec<&str> = stdout.lines().skip(2).collect();
    assert_eq!(
        changes,
        [
            "  server.listen: needs a restart",
            // Derived from the listening port (no pid_file, none set).
            "  server.upgrade_socket: needs a restart",
            "  routes: applied by a reload"
        ],
        "{stdout}"
    );
}

#[test]
fn signing_key_settings_are_checked() {
    let kek = "key_encryption_secret = \"0123456789abcdef0123456789abcdef\"";
    let cases = [
        (
            "[tokens]\nalgorithm = \"RS256\"\n".to_string(),
            "tokens.algorithm",
        ),
        (
            "[tokens]\nalgorithm = \"none\"\n".to_string(),
            "tokens.algorithm",
        ),
        // An asymmetric algorithm needs the secret that seals its private keys.
        (
            "[tokens]\nalgorithm = \"EdDSA\"\n".to_string(),
            "tokens.key_encryption_secret",
        ),
        (
            "[tokens]\nalgorithm = \"ES256\"\nkey_encryption_secret = \"short\"\n".to_string(),
            "tokens.key_encryption_secret",
        ),
        (
            format!("[tokens]\nalgorithm = \"EdDSA\"\n{kek}\nkey_rotation = \"5m\"\n"),
            "tokens.key_rotation",
        ),
        (
            format!("[tokens]\nalgorithm = \"EdDSA\"\n{kek}\nkey_publish_delay = \"later\"\n"),
            "tokens.key_publish_delay",
        ),
    ];
    for (toml, key) in cases {
        let msg = refused(&toml);
        assert!(
            msg.contains(key),
            "{toml:?} refused without naming {key}: {msg}"
        );
    }
    let text = format!("[tokens]\nalgorithm = \"ES256\"\n{kek}\nkey_rotation = \"90d\"\n");
    let c = config::Config::try_from(config::parse(Path::new("t.toml"), &text).unwrap()).unwrap();
    assert_eq!(c.tokens.algorithm_name(), "ES256");
    assert_eq!(c.tokens.key_rotation.map(|d| d.as_secs()), Some(90 * 86400));
    assert_eq!(c.tokens.key_publish_delay.as_secs(), 600);
    let default =
        config::Config::try_from(config::parse(Path::new("t.toml"), "").unwrap()).unwrap();
    assert_eq!(
        default.tokens.algorithm_name(),
        "HS256",
        "HS256 stays the default"
    );
}
