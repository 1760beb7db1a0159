//! Property tests of the parsers that stand between a client and everything else: the path
//! normaliser, the Bearer parser and the strict JSON body with registration rules.

use authgate::auth::bearer::{bearer_token, MAX_TOKEN_BYTES};
use authgate::auth::json_body::parse_object;
use authgate::auth::validation::{registration, MAX_PASSWORD_CHARS};
use authgate::gateway::path::normalize;
use proptest::prelude::*;
use serde_json::{json, Value};

/// `cases` random cases; failures are reported (with the shrunk input), not persisted.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Paths

/// Path pieces that exercise every rule: dots in all spellings, separators, escapes valid
/// and not, parameters, non-ASCII. Separators and dots are the most frequent, so that
/// generated paths are mostly made of segments that matter.
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just("/"),
        4 => prop::sample::select(vec![".", "..", "%2e", "%2E", ";", "%3B", "%3b"]),
        2 => prop::sample::select(vec!["a", "B", "=", "~", "%41", "%7e", "%25"]),
        1 => prop::sample::select(vec![
            "%2F", "%2f", "%5C", "%5c", "%zz", "%", "%c3%a9", "é", "\\", "\0", "\t", "?",
        ]),
    ]
}

fn path_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(path_piece(), 0..16).prop_map(|v| format!("/{}", v.concat()))
}

/// Percent-decodes once, as a backend reading the forwarded path would.
fn decode_once(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// What a reader that decodes once then resolves dot segments makes of a path.
fn resolve(decoded: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in decoded.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s.to_vec()),
        }
    }
    out
}

fn segments(path: &str) -> Vec<Vec<u8>> {
    decode_once(path)
        .split(|b| *b == b'/')
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn normalize_never_panics(s in any::<String>(), t in path_like()) {
        let _ = normalize(&s);
        let _ = normalize(&t);
    }

    #[test]
    fn normalize_is_idempotent(p in path_like()) {
        if let Ok(n) = normalize(&p) {
            prop_assert_eq!(normalize(&n), Ok(n.clone()), "from {:?}", p);
        }
    }

    /// The output is one unambiguous ASCII path: no empty or dot segments, no separator
    /// or control byte hidden in an escape, no `.`/`..` before a `;` parameter either raw
    /// or once decoded.
    #[test]
    fn normalized_paths_are_unambiguous(p in path_like()) {
        if let Ok(n) = normalize(&p) {
            prop_assert!(n.starts_with('/') && n.is_ascii(), "{:?} -> {:?}", p, n);
            prop_assert!(!n.contains("//"), "{:?} -> {:?}", p, n);
            let decoded = decode_once(&n);
            prop_assert_eq!(
                decoded.iter().filter(|b| **b == b'/').count(),
                n.matches('/').count(),
                "an escape in {:?} decodes to a separator", n
            );
            prop_assert!(!decoded.iter().any(|b| *b == b'\\' || *b < 0x20 || *b == 0x7f), "{:?}", n);
            for seg in decoded.split(|b| *b == b'/') {
                let name = seg.split(|b| *b == b';').next().unwrap_or_default();
                prop_assert!(
                    !(seg.contains(&b';') && (name == b"." || name == b"..")),
                    "{:?} -> {:?} has a dot segment with parameters", p, n
                );
                prop_assert!(seg != b"." && seg != b"..", "{:?} -> {:?}", p, n);
            }
        }
    }

    /// Whatever the gateway routed on is what a backend decoding the original request once
    /// would have resolved: same segments, so the same prefix.
    #[test]
    fn normalized_path_means_what_the_request_meant(p in path_like()) {
        if let Ok(n) = normalize(&p) {
            prop_assert_eq!(segments(&n), resolve(&decode_once(&p)), "{:?} -> {:?}", p, n);
        }
    }
}

/// A segment below `/public`, with what it means.
#[derive(Debug, Clone)]
enum Seg {
    Name(&'static str, &'static str),
    Dot(&'static str),
    DotDot(&'static str),
}

fn seg() -> impl Strategy<Value = Seg> {
    prop_oneof![
        prop::sample::select(vec![
            ("a", "a"),
            ("x.y", "x.y"),
            ("...", "..."),
            ("%41", "A"),
            ("%7Eme", "~me"),
            (".a", ".a"),
            ("a..", "a.."),
        ])
        .prop_map(|(raw, name)| Seg::Name(raw, name)),
        prop::sample::select(vec![".", "%2e", "%2E", ""]).prop_map(Seg::Dot),
        prop::sample::select(vec!["..", "%2e%2e", ".%2E", "%2E.", "%2e%2E"]).prop_map(Seg::DotDot),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// `/public/` followed by generated segments stays under `/public` exactly when the
    /// dot segments never climb above it, and lands on the segments a resolver would.
    #[test]
    fn nothing_leaves_the_prefix_unless_the_dots_climb_out(segs in proptest::collection::vec(seg(), 0..12)) {
        let raw = format!("/public/{}", segs.iter().map(|s| match s {
            Seg::Name(r, _) | Seg::Dot(r) | Seg::DotDot(r) => *r,
        }).collect::<Vec<_>>().join("/"));
        let mut stack = vec!["public"];
        let mut climbed_out = false;
        for s in &segs {
            match s {
                Seg::Name(_, name) => stack.push(name),
                Seg::Dot(_) => {}
                Seg::DotDot(_) => {
                    stack.pop();
                    climbed_out |= stack.is_empty();
                }
            }
        }
        let n = normalize(&raw).map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
        let under = n == "/public" || n.starts_with("/public/");
        prop_assert_eq!(under, !climbed_out, "{:?} -> {:?}", raw, n);
        let got: Vec<&str> = n.split('/').filter(|s| !s.is_empty()).collect();
        prop_assert_eq!(got, stack, "{:?}", raw);
    }
}

// ---------------------------------------------------------------------------------------
// Bearer tokens

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn bearer_parser_never_panics_and_returns_a_clean_token(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
        text in "[ \\tBbEeAaRr]{0,8}[ -~]{0,40}",
    ) {
        let _ = bearer_token(values.iter().map(Vec::as_slice));
        if let Ok(token) = bearer_token(std::iter::once(text.as_bytes())) {
            prop_assert!(!token.is_empty() && !token.contains(' '), "{:?} -> {:?}", text, token);
            prop_assert!(token.len() <= MAX_TOKEN_BYTES);
            let trimmed = text.trim();
            prop_assert!(trimmed[..6].eq_ignore_ascii_case("bearer"), "{:?}", text);
            prop_assert!(trimmed.ends_with(token), "{:?} -> {:?}", text, token);
        }
    }

    #[test]
    fn bearer_in_any_case_yields_the_token(
        scheme in "[bB][eE][aA][rR][eE][rR]",
        token in "[A-Za-z0-9_.=-]{1,300}",
        pad in "[ ]{0,3}",
    ) {
        let value = format!("{pad}{scheme} {token}{pad}");
        prop_assert_eq!(bearer_token(std::iter::once(value.as_bytes())), Ok(token.as_str()));
    }

    #[test]
    fn several_authorization_values_are_always_refused(
        values in proptest::collection::vec("Bearer [a-z.]{1,20}", 2..5),
    ) {
        prop_assert!(bearer_token(values.iter().map(|v| v.as_bytes())).is_err());
    }

    #[test]
    fn tokens_over_the_limit_are_refused(extra in 1usize..2048) {
        let value = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + extra));
        prop_assert!(bearer_token(std::iter::once(value.as_bytes())).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// JSON bodies and registration

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~é日\\x00]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Registration-shaped bodies: the right keys, with values of any type or shape.
fn registration_like() -> impl Strategy<Value = Value> {
    let field = prop_oneof![
        "[A-Za-z0-9_]{0,70}".prop_map(Value::from),
        "[ -~é]{0,140}".prop_map(Value::from),
        "[a-z.+%'-]{1,20}@[a-z.-]{1,20}\\.[a-z]{1,4}".prop_map(Value::from),
        json_value(),
    ];
    (field.clone(), field.clone(), field)
        .prop_map(|(u, e, p)| json!({"username": u, "email": e, "password": p}))
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(map) = parse_object(&body) {
            let _ = registration(&map);
        }
    }

    #[test]
    fn any_json_object_parses_and_anything_else_is_refused(v in json_value()) {
        let parsed = parse_object(v.to_string().as_bytes());
        prop_assert_eq!(parsed.is_ok(), v.is_object());
        if let Ok(map) = parsed {
            prop_assert_eq!(Value::Object(map), v);
        }
    }

    /// Whatever `registration` accepts obeys the contract's rules.
    #[test]
    fn accepted_registrations_follow_the_rules(v in registration_like()) {
        let map = parse_object(v.to_string().as_bytes()).unwrap();
        if let Ok(r) = registration(&map) {
            prop_assert!(!r.username.is_empty() && r.username.len() <= 64);
            prop_assert!(r.username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            let (local, domain) = r.email.split_once('@').unwrap();
            prop_assert!(!local.is_empty() && domain.contains('.') && r.email.len() <= 254);
            prop_assert!(!r.email.contains(char::is_whitespace));
            let chars = r.password.chars().count();
            prop_assert!((8..=MAX_PASSWORD_CHARS).contains(&chars));
            prop_assert!(r.password.chars().any(char::is_alphabetic));
            prop_assert!(r.password.chars().any(char::is_numeric));
            prop_assert!(!r.password.chars().any(char::is_control));
            // Nothing is truncated or rewritten on the way.
            prop_assert_eq!(Some(r.password.as_str()), v["password"].as_str());
            prop_assert_eq!(Some(r.username.as_str()), v["username"].as_str());
        }
    }

    /// A key twice in one object, at any depth, refuses the whole body.
    #[test]
    fn duplicate_keys_at_any_depth_are_refused(
        key in "[a-z]{1,4}",
        first in json_value(),
        second in json_value(),
        depth in 0usize..5,
        in_array in any::<bool>(),
    ) {
        let mut text = format!("{{\"{key}\": {first}, \"{key}\": {second}}}");
        for level in 0..depth {
            text = if in_array && level % 2 == 0 {
                format!("{{\"wrap\": [1, {text}]}}")
            } else {
                format!("{{\"other\": 1, \"wrap\": {text}}}")
            };
        }
        prop_assert!(parse_object(text.as_bytes()).is_err(), "{}", text);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing(depth in 1usize..20_000, arrays in any::<bool>()) {
        let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
        let text = format!("{{\"x\": {}1{}}}", open.repeat(depth), close.repeat(depth));
        let parsed = parse_object(text.as_bytes());
        if depth > 200 {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused(
        v in registration_like(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(vec![0x80u8, 0xC3, 0xFF, 0xFE, 0xED]),
    ) {
        let mut body = v.to_string().into_bytes();
        let positions: Vec<usize> = body.iter().enumerate().filter(|(_, b)| **b == b'"').map(|(i, _)| i).collect();
        // Right after an opening quote: inside a key or a string value.
        let i = positions[at.index(positions.len())] + 1;
        body.insert(i, byte);
        prop_assert!(std::str::from_utf8(&body).is_err());
        prop_assert!(parse_object(&body).is_err());
    }
}
