//! HTTP/2 downgrade smuggling: requests an HTTP/2 client can frame but an HTTP/1.1 upstream
//! would read differently. Each is refused (the stream reset, the connection ended, or a
//! JSON 400) and no complete request reaches the upstream, which records every byte it
//! gets: header cases leave no byte there at all; a body that turns out longer or shorter
//! than its `content-length` after forwarding began leaves an incomplete request on an
//! upstream connection that the gateway then closes. Sent with Python's `h2` library
//! (its checks off), over h2c and over TLS.

mod common;

use std::time::Duration;

use common::gateway::{free_addr, wait_for_port};
use common::h2_client::{send_cases, Frame, H2Case, H2Outcome, H2Target};
use common::raw_upstream::{RawConnection, RawUpstream};
use common::tls::TestCa;
use common::GatewayBuilder;

const H2C: &str = "threads = 1\nupstream_read_timeout = \"5s\"\nh2c = true";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The upstream connections that carry any byte of `case`.
fn carrying<'a>(conns: &'a [RawConnection], case: &H2Case) -> Vec<&'a RawConnection> {
    conns
        .iter()
        .filter(|c| contains(&c.bytes, &case.marker()))
        .collect()
}

/// Before a frame that follows a look: waits until the upstream has the case's header
/// (at most 1 s: a gateway that holds it back never sends it), then gives a gateway that
/// would relay the frames already sent 200 ms to do so.
fn look(up: &RawUpstream) -> impl FnMut(&H2Case) + '_ {
    move |case| {
        up.wait_until(Duration::from_secs(1), |c| !carrying(c, case).is_empty());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the client saw a refusal: the stream reset, the connection ended with an
/// error, or a JSON 400.
fn check_refused(case: &H2Case, outcome: &H2Outcome) -> Vec<String> {
    if outcome.refused_by_protocol() || outcome.is_json_400() {
        return Vec::new();
    }
    vec![format!("{}: not refused: {outcome:?}", case.name)]
}

/// Nothing of a refused header case reached the upstream.
fn check_nothing_forwarded(up: &RawUpstream, case: &H2Case) -> Vec<String> {
    let conns = up.connections();
    carrying(&conns, case)
        .iter()
        .map(|c| {
            let text = String::from_utf8_lossy(&c.bytes);
            format!("{}: bytes reached the upstream: {text:?}", case.name)
        })
        .collect()
}

/// What reached the upstream of a refused body case is no complete request, and its
/// connection was closed, never finished or handed back to the pool.
fn check_aborted_upstream(up: &RawUpstream, case: &H2Case) -> Vec<String> {
    let conns = up.wait_until(Duration::from_secs(5), |c| {
        carrying(c, case).iter().all(|c| c.closed)
    });
    let mut failures = Vec::new();
    for conn in carrying(&conns, case) {
        let text = String::from_utf8_lossy(&conn.bytes);
        if !conn.closed {
            failures.push(format!(
                "{}: upstream connection left open: {text:?}",
                case.name
            ));
        }
        let whole = conn.requests().0.iter().any(|r| {
            contains(r.head.as_bytes(), &case.marker()) || r.target().contains("smuggled")
        });
        if whole {
            failures.push(format!(
                "{}: a complete request reached the upstream: {text:?}",
                case.name
            ));
        }
    }
    failures
}

fn base(name: &str) -> H2Case {
    H2Case::new(name, "POST", &format!("/public/{name}"))
}

/// Header blocks the h2 crate, pingora or the gateway must refuse before anything is
/// forwarded.
fn header_cases() -> Vec<H2Case> {
    let get = |name: &str| H2Case::new(name, "GET", &format!("/public/{name}"));
    let pseudo = |name: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![(":method", "GET"), (":scheme", "http")];
        headers.extend_from_slice(extra);
        headers.push(("x-case", name));
        H2Case::raw(name, &headers)
    };
    vec![
        base("te-chunked")
            .header("transfer-encoding", "chunked")
            .frame(Frame::last("5\r\nhello\r\n0\r\n\r\n")),
        base("te-and-length")
            .header("content-length", "5")
            .header("transfer-encoding", "chunked")
            .frame(Frame::last("0\r\n\r\n")),
        get("connection-keep-alive").header("connection", "keep-alive"),
        get("connection-names-identity").header("connection", "x-user-id"),
        get("keep-alive").header("keep-alive", "timeout=5"),
        get("proxy-connection").header("proxy-connection", "keep-alive"),
        get("upgrade").header("upgrade", "websocket"),
        get("te-gzip").header("te", "gzip"),
        get("uppercase-name").header("X-User-Id", "1"),
        get("uppercase-transfer-encoding").header("Transfer-Encoding", "chunked"),
        get("name-with-crlf").header("x-a\r\nx-user-id", "1"),
        get("name-with-nul").header("x-a\u{0}b", "1"),
        get("value-with-crlf").header("x-note", "a\r\nx-user-id: 1"),
        get("value-with-lf").header("x-note", "a\nx-user-id: 1"),
        get("value-with-cr").header("x-note", "a\rx-user-id: 1"),
        get("value-with-nul").header("x-note", "a\u{0}b"),
        pseudo(
            "path-with-crlf",
            &[
                (":authority", "localhost"),
                (
                    ":path",
                    "/public/a HTTP/1.1\r\nx-user-id: 1\r\n\r\nGET /public/smuggled",
                ),
            ],
        ),
        pseudo(
            "path-with-space",
            &[(":authority", "localhost"), (":path", "/public/a HTTP/1.1")],
        ),
        pseudo(
            "authority-with-crlf",
            &[
                (":authority", "localhost\r\nx-user-id: 1"),
                (":path", "/public/a"),
            ],
        ),
        H2Case::raw(
            "method-with-crlf",
            &[
                (":method", "GET /public/smuggled HTTP/1.1\r\n"),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/public/a"),
                ("x-case", "method-with-crlf"),
            ],
        ),
        pseudo(
            "duplicate-path",
            &[
                (":authority", "localhost"),
                (":path", "/public/a"),
                (":path", "/protected/b"),
            ],
        ),
        pseudo(
            "duplicate-authority",
            &[
                (":authority", "localhost"),
                (":authority", "evil.example"),
                (":path", "/public/a"),
            ],
        ),
        H2Case::raw(
            "duplicate-method",
            &[
                (":method", "GET"),
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/public/a"),
                ("x-case", "duplicate-method"),
            ],
        ),
        pseudo(
            "unknown-pseudo",
            &[
                (":authority", "localhost"),
                (":path", "/public/a"),
                (":foo", "bar"),
            ],
        ),
        pseudo(
            "status-in-request",
            &[
                (":authority", "localhost"),
                (":path", "/public/a"),
                (":status", "200"),
            ],
        ),
        H2Case::raw(
            "pseudo-after-regular",
            &[
                (":method", "GET"),
                (":scheme", "http"),
                ("x-case", "pseudo-after-regular"),
                (":authority", "localhost"),
                (":path", "/public/a"),
            ],
        ),
        H2Case::raw(
            "missing-method",
            &[
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/public/a"),
                ("x-case", "missing-method"),
            ],
        ),
        pseudo("missing-path", &[(":authority", "localhost")]),
        pseudo("missing-path-with-host", &[("host", "localhost")]),
        pseudo("empty-path", &[(":authority", "localhost"), (":path", "")]),
        H2Case::raw(
            "missing-scheme",
            &[
                (":method", "GET"),
                (":authority", "localhost"),
                (":path", "/public/a"),
                ("x-case", "missing-scheme"),
            ],
        ),
        base("conflicting-lengths")
            .header("content-length", "5")
            .header("content-length", "6")
            .frame(Frame::last("hello")),
        base("length-not-a-number")
            .header("content-length", "5x")
            .frame(Frame::last("hello")),
    ]
}

/// Bodies whose DATA frames disagree with their `content-length`.
fn body_cases() -> Vec<H2Case> {
    let smuggled = "GET /public/smuggled HTTP/1.1\r\nhost: localhost\r\n\r\n";
    vec![
        base("fewer-bytes")
            .header("content-length", "10")
            .frame(Frame::last("hello")),
        base("more-bytes")
            .header("content-length", "5")
            .frame(Frame::last(&format!("hello{smuggled}"))),
        // The declared length is reached by a frame that does not end the stream; the
        // excess, a whole request, follows.
        base("more-bytes-in-a-later-frame")
            .header("content-length", "5")
            .frame(Frame::data("hello"))
            .frame(Frame::last(smuggled).after_look()),
        base("zero-length-then-data")
            .header("content-length", "0")
            .frame(Frame::last(smuggled).after_look()),
        base("fewer-bytes-across-frames")
            .header("content-length", "10")
            .frame(Frame::data("hello"))
            .frame(Frame::last("").after_look()),
    ]
}

/// Requests that are fine, framed the same ways: they reach the upstream whole.
fn valid_cases() -> Vec<H2Case> {
    vec![
        base("valid-length")
            .header("content-length", "5")
            .frame(Frame::last("hello")),
        base("valid-length-split")
            .header("content-length", "10")
            .frame(Frame::data("hello"))
            .frame(Frame::data("world").after_look())
            .frame(Frame::last("").after_look()),
        base("valid-zero-length").header("content-length", "0"),
        base("valid-no-length")
            .frame(Frame::data("hello"))
            .frame(Frame::last("world").after_look()),
    ]
}

/// A valid case got its 200 through the upstream, which holds it whole `times` times with
/// the body sent.
fn assert_forwarded_whole(up: &RawUpstream, case: &H2Case, outcome: &H2Outcome, times: usize) {
    assert_eq!(outcome.status, Some(200), "{}: {outcome:?}", case.name);
    assert_eq!(outcome.json()["upstream"], true, "{}", case.name);
    let requests = up.complete_requests();
    let seen: Vec<_> = requests
        .iter()
        .filter(|r| contains(r.head.as_bytes(), &case.marker()))
        .collect();
    assert_eq!(seen.len(), times, "{}: {seen:?}", case.name);
    let body: String = case.frames.iter().map(|f| f.data.as_str()).collect();
    for request in seen {
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            body,
            "{}",
            case.name
        );
    }
}

/// Runs the valid cases, every attack, and the valid cases again at `target`, and checks
/// what the client and the upstream saw: the attacks refused and never complete
/// upstream, the same valid requests forwarded whole before and after them.
fn run_suite(target: &H2Target, up: &RawUpstream) {
    let headers = header_cases();
    let bodies = body_cases();
    let valid = valid_cases();
    let all: Vec<H2Case> = valid
        .iter()
        .chain(&headers)
        .chain(&bodies)
        .chain(&valid)
        .cloned()
        .collect();
    let outcomes = send_cases(target, &all, look(up));
    let mut failures = Vec::new();
    for (case, outcome) in all.iter().zip(&outcomes) {
        eprintln!(
            "{}: status {:?}, reset {:?}, goaway {:?}",
            case.name, outcome.status, outcome.reset, outcome.goaway
        );
        if valid.iter().any(|v| v.name == case.name) {
            assert_forwarded_whole(up, case, outcome, 2);
            continue;
        }
        failures.extend(check_refused(case, outcome));
        if headers.iter().any(|h| h.name == case.name) {
            failures.extend(check_nothing_forwarded(up, case));
        } else {
            failures.extend(check_aborted_upstream(up, case));
        }
    }
    // Once more for the body cases, now that every exchange is over: a gateway still
    // writing one when its check ran cannot have hidden it.
    for case in &bodies {
        failures.extend(check_aborted_upstream(up, case));
    }
    for request in up.complete_requests() {
        if request.target().contains("smuggled") {
            failures.push(format!("smuggled through: {request:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smuggling_requests_over_h2c_are_refused_and_never_reach_the_upstream_whole() {
    let up = RawUpstream::start();
    let gw = GatewayBuilder::new(up.addr)
        .section("server", H2C)
        .route("/public", "public")
        .route("/protected", "required")
        .start();
    run_suite(&H2Target::Cleartext(gw.addr), &up);
}

#[test]
fn smuggling_requests_over_tls_are_refused_and_never_reach_the_upstream_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let files = ca.issue_files(dir.path(), "server", &["localhost"], 1);
    let tls_addr = free_addr();
    let up = RawUpstream::start();
    let _gw = GatewayBuilder::new(up.addr)
        .route("/public", "public")
        .route("/protected", "required")
        .section("tls", &format!("listen = \"{tls_addr}\"\n{}", files.toml()))
        .start();
    wait_for_port(tls_addr);
    let target = H2Target::Tls {
        addr: tls_addr,
        ca: &ca.pem_path,
        server_name: "localhost",
    };
    run_suite(&target, &up);
}
