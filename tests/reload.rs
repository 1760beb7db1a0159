//! Configuration reload of the real binary on SIGHUP, under a client loop that keeps
//! hitting a required route: valid changes (a new route, an upstream moved to another
//! server, a changed rate limit) are served right after their reload, broken files change
//! nothing and are counted, and the loop sees no failed or non-2xx request throughout.
//! Each gateway here runs on its own SQLite file whatever the harness backend; `.ci/run`
//! runs this file once.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{free_addr, wait_for_port};
use common::metrics::metric;
use common::*;
use serde_json::json;

/// What a valid configuration of this test varies.
#[derive(Clone)]
struct Variant {
    /// Extra public routes `/added-N` to the steady upstream.
    added_routes: Vec<usize>,
    /// The one server of upstream `moving`.
    moving_server: SocketAddr,
    /// `/limited` allows this many requests per hour and client.
    limited_per_hour: u32,
}

struct Setup {
    dir: tempfile::TempDir,
    listen: SocketAddr,
    ops: SocketAddr,
    steady: SocketAddr,
}

impl Setup {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("authgate.toml")
    }

    fn render(&self, v: &Variant) -> String {
        let mut out = format!(
            "[server]\nlisten = \"{}\"\nmetrics_listen = \"{}\"\nthreads = 1\n\
             upstream_read_timeout = \"5s\"\n\n\
             [database]\nurl = \"{}\"\nsync_interval = \"200ms\"\n\n\
             [tokens]\nsecret = \"{SECRET}\"\n\n[limits]\nhash_threads = 1\n\n\
             [rate_limits]\nregister = \"10000/1m\"\nauthenticated = \"1000000/1m\"\n\n\
             [log]\nlevel = \"info\"\n\n\
             [[upstreams]]\nname = \"steady\"\nservers = [\"{}\"]\nhealth_check_interval = \"200ms\"\n\n\
             [[upstreams]]\nname = \"moving\"\nservers = [\"{}\"]\nhealth_check_interval = \"200ms\"\n\n\
             [[routes]]\nprefix = \"/protected\"\nupstream = \"steady\"\nauth = \"required\"\n\n\
             [[routes]]\nprefix = \"/moving\"\nupstream = \"moving\"\nauth = \"public\"\n\n\
             [[routes]]\nprefix = \"/limited\"\nupstream = \"steady\"\nauth = \"public\"\n\
             rate_limit = \"{}/1h\"\n\n",
            self.listen,
            self.ops,
            self.dir.path().join("authgate.db").display(),
            self.steady,
            v.moving_server,
            v.limited_per_hour,
        );
        for n in &v.added_routes {
            out.push_str(&format!(
                "[[routes]]\nprefix = \"/added-{n}\"\nupstream = \"steady\"\nauth = \"public\"\n\n"
            ));
        }
        out
    }

    fn write(&self, text: &str) {
        // Written whole then renamed, as an operator's deploy tool would: a reload never
        // reads half a file.
        let tmp = self.dir.path().join("authgate.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("authgate.log")).unwrap_or_default()
    }
}

/// The gateway process; killed on drop.
struct Gateway(Child);

impl Gateway {
    fn start(setup: &Setup) -> Self {
        let log = std::fs::File::create(setup.dir.path().join("authgate.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .arg("--config")
            .arg(setup.config_path())
            .env_remove("RUST_LOG")
            .env_remove("JWT_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start authgate");
        wait_for_port(setup.listen);
        wait_for_port(setup.ops);
        Self(child)
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a new connection: its status, or why there was none. Never panics, so
/// the client loop counts every failure.
fn status_of(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&answer);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))
}

/// Polls `check` until it holds, for at most 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Broken files, each refused for a key `authgate check` names.
fn broken(valid: &str, n: usize) -> (String, &'static str) {
    match n % 4 {
        0 => (
            valid.replace("rate_limit = \"", "rate_limit = \"often"),
            "routes[2].rate_limit",
        ),
        1 => (
            valid.replace("upstream = \"moving\"", "upstream = \"nowhere\""),
            "routes[1].upstream",
        ),
        2 => (
            format!("{valid}\n[server]\nlisten = \"x\"\n"),
            "duplicate key `server`",
        ),
        _ => (
            valid.replace("threads = 1", "threads = 0"),
            "server.threads",
        ),
    }
}

#[test]
fn twenty_reloads_under_load_apply_valid_files_refuse_broken_ones_and_drop_nothing() {
    let steady = Upstream::start();
    let first = Upstream::start();
    let second = Upstream::start();
    let setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        listen: free_addr(),
        ops: free_addr(),
        steady: steady.addr,
    };
    let mut variant = Variant {
        added_routes: Vec::new(),
        moving_server: first.addr,
        limited_per_hour: 1000,
    };
    let mut current = setup.render(&variant);
    setup.write(&current);
    let gw = Gateway::start(&setup);
    assert_eq!(
        metric(setup.ops, "authgate_config_last_reload_successful"),
        Some(1.0)
    );
    for result in ["success", "failure"] {
        let series = format!("authgate_config_reloads_total{{result=\"{result}\"}}");
        assert_eq!(metric(setup.ops, &series), Some(0.0), "{series}");
    }
    let registered = post_json(
        setup.listen,
        "/register",
        &json!({"username": "loop", "email": "loop@example.com", "password": "Password123"}),
    );
    assert_eq!(registered.status, 201, "{}", registered.text());
    let token = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The client loop: bounded by a stop flag and by a 5-minute ceiling.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
        let addr = setup.listen;
        std::thread::spawn(move || {
            let ceiling = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::Relaxed) && Instant::now() < ceiling {
                match status_of(addr, "/protected/loop", Some(&token)) {
                    Ok(200..=299) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.lock().unwrap().push(format!("{other:?}")),
                }
            }
        })
    };
    eventually("the loop is served", || served.load(Ordering::Relaxed) > 0);

    let failed_reloads = "authgate_config_reloads_total{result=\"failure\"}";
    let applied_reloads = "authgate_config_reloads_total{result=\"success\"}";
    for step in 0..20 {
        let valid_before = step / 2;
        if step % 2 == 1 {
            // A broken file: refused, counted, logged with its key; nothing changes.
            let (text, key) = broken(&current, step / 2);
            setup.write(&text);
            gw.hangup();
            let expected = (step / 2 + 1) as f64;
            eventually("the failure is counted", || {
                metric(setup.ops, failed_reloads) == Some(expected)
            });
            assert_eq!(
                metric(setup.ops, "authgate_config_last_reload_successful"),
                Some(0.0)
            );
            // The counter goes up just before the line is queued for the log writer.
            eventually(&format!("a refusal naming {key} in the log"), || {
                setup
                    .log()
                    .lines()
                    .any(|l| l.contains("configuration reload refused") && l.contains(key))
            });
            // The previous behaviour stays: the last valid change is still served.
            assert_eq!(
                status_of(setup.listen, "/moving/x", None),
                Ok(200),
                "after broken file {step}"
            );
            if let Some(n) = variant.added_routes.last() {
                assert_eq!(
                    status_of(setup.listen, &format!("/added-{n}"), None),
                    Ok(200)
                );
            }
            continue;
        }
        match valid_before % 3 {
            0 => variant.added_routes.push(step),
            1 => {
                variant.moving_server = if variant.moving_server == first.addr {
                    second.addr
                } else {
                    first.addr
                }
            }
            _ => variant.limited_per_hour = 2 + step as u32,
        }
        current = setup.render(&variant);
        setup.write(&current);
        gw.hangup();
        let expected = (valid_before + 1) as f64;
        eventually("the reload is counted", || {
            metric(setup.ops, applied_reloads) == Some(expected)
        });
        assert_eq!(
            metric(setup.ops, "authgate_config_last_reload_successful"),
            Some(1.0)
        );
        match valid_before % 3 {
            0 => {
                let path = format!("/added-{step}");
                assert_eq!(status_of(setup.listen, &path, None), Ok(200), "{path}");
                assert!(
                    steady.requests().iter().any(|r| r.target == path),
                    "the steady upstream got {path}"
                );
            }
            1 => {
                let (to, from) = if variant.moving_server == first.addr {
                    (&first, &second)
                } else {
                    (&second, &first)
                };
                let (to_before, from_before) = (to.count(), from.count());
                assert_eq!(status_of(setup.listen, "/moving/x", None), Ok(200));
                assert_eq!(to.count(), to_before + 1, "the new server got the request");
                assert_eq!(from.count(), from_before, "the old server got nothing");
            }
            _ => {
                // A changed limit starts with a full allowance of the new size.
                let limit = variant.limited_per_hour;
                for i in 0..limit {
                    assert_eq!(status_of(setup.listen, "/limited", None), Ok(200), "#{i}");
                }
                assert_eq!(status_of(setup.listen, "/limited", None), Ok(429));
            }
        }
    }

    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of the loop's requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        served.load(Ordering::Relaxed) >= 20,
        "the loop ran throughout"
    );
    assert_eq!(metric(setup.ops, applied_reloads), Some(10.0));
    assert_eq!(metric(setup.ops, failed_reloads), Some(10.0));
    drop(gw);
}

#[test]
fn authgate_reload_signals_the_gateway_named_by_its_pid_file() {
    let steady = Upstream::start();
    let setup = Setup {
        dir: tempfile::tempdir().unwrap(),
        listen: free_addr(),
        ops: free_addr(),
        steady: steady.addr,
    };
    let pid_file = setup.dir.path().join("authgate.pid");
    let with_pid_file = |text: String| {
        text.replacen(
            "threads = 1\n",
            &format!("threads = 1\npid_file = \"{}\"\n", pid_file.display()),
            1,
        )
    };
    let mut variant = Variant {
        added_routes: Vec::new(),
        moving_server: steady.addr,
        limited_per_hour: 1000,
    };
    setup.write(&with_pid_file(setup.render(&variant)));
    let mut gw = Gateway::start(&setup);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        gw.0.id().to_string()
    );
    assert_eq!(status_of(setup.listen, "/added-7", None), Ok(404));

    variant.added_routes.push(7);
    setup.write(&with_pid_file(setup.render(&variant)));
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(setup.config_path())
        .arg("reload")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sent SIGHUP to authgate (process {})", gw.0.id())
    );
    eventually("the new route is served", || {
        status_of(setup.listen, "/added-7", None) == Ok(200)
    });

    // `authgate reload` validates the file first: a broken one is not signalled at all.
    let good = with_pid_file(setup.render(&variant));
    setup.write(&good.replace("threads = 1", "threads = 0"));
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(setup.config_path())
        .arg("reload")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.threads"), "{stderr}");
    assert_eq!(
        metric(
            setup.ops,
            "authgate_config_reloads_total{result=\"failure\"}"
        ),
        Some(0.0)
    );
    setup.write(&good);

    // A graceful stop removes the pid file; `reload` then says nothing runs.
    let stopped = Command::new("kill")
        .args(["-TERM", &gw.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = gw.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!pid_file.exists(), "the pid file is removed at exit");
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("--config")
        .arg(setup.config_path())
        .arg("reload")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the pid file"), "{stderr}");
}
