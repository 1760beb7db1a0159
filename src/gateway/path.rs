//! Request path normalisation, done once before routing so that what is matched is what is
//! forwarded. Unreserved percent-escapes are decoded, raw non-ASCII bytes percent-encoded,
//! repeated slashes merged and dot segments resolved (RFC 3986 5.2.4). Anything a backend
//! might read differently is refused instead: encoded `/` or `\`, backslashes, NUL and
//! control bytes, invalid escapes, and dot segments with `;` parameters (`..;` or
//! `..%3B`, which Tomcat treats as `..`).

use std::borrow::Cow;

/// Why a path was refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("invalid percent-encoding in path")]
    BadEscape,
    #[error("encoded slash or backslash in path")]
    EncodedSeparator,
    #[error("backslash, NUL or control character in path")]
    ForbiddenByte,
    #[error("dot segment with parameters in path")]
    DotSegmentParams,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved escapes, keeps the others (upper-cased), refuses the dangerous ones.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|&h| hex(h)),
                bytes.get(i + 2).and_then(|&l| hex(l)),
            ) else {
                return Err(PathError::BadEscape);
            };
            let decoded = hi << 4 | lo;
            match decoded {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::ForbiddenByte),
                d if is_unreserved(d) => out.push(d as char),
                d => {
                    out.push('%');
                    out.push_str(&format!("{d:02X}"));
                }
            }
            i += 3;
        } else if b == b'\\' || b < 0x20 || b == 0x7f {
            return Err(PathError::ForbiddenByte);
        } else if !b.is_ascii() {
            // Raw UTF-8 (allowed by the HTTP parser) is written as the escapes it stands
            // for, byte by byte: pushed as chars it would become mojibake, and `/café`
            // and `/caf%C3%A9` must come out the same.
            out.push_str(&format!("%{b:02X}"));
            i += 1;
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    Ok(out)
}

/// True when `raw` is already in normal form: plain path characters only (no escapes,
/// backslashes or control bytes), no empty segment and no segment starting with a dot.
/// The usual request costs this one scan and no allocation.
fn already_normal(raw: &str) -> bool {
    let plain = |c: &u8| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'/' | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')'
            )
            || matches!(c, b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
    };
    raw.starts_with('/')
        && raw.as_bytes().iter().all(plain)
        && !raw.contains("//")
        && !raw.contains("/.")
}

/// Normalises the path part of a request target (no query string). Borrowed when the
/// path was already normal, so only unusual paths allocate.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if already_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_slow(raw).map(Cow::Owned)
}

fn normalize_slow(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => {
                // `;` starts parameters, raw or (for a backend that decodes first) as the
                // escape `%3B`, which decoding above has upper-cased.
                let params = [s.find(';'), s.find("%3B")].into_iter().flatten().min();
                if params.is_some_and(|at| matches!(&s[..at], "." | "..")) {
                    return Err(PathError::DotSegmentParams);
                }
                segments.push(s);
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed_and_unusual_ones_rewritten() {
        for p in ["/", "/api/v1/users/42", "/a.b/c-d_e~f", "/x;y=1", "/a/"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
        for p in ["//a", "/a/./b", "/.well-known", "/a%41", "/caf\u{e9}"] {
            assert!(matches!(normalize(p), Ok(Cow::Owned(_))), "{p}");
        }
    }

    #[test]
    fn resolves_dots_and_slashes() {
        assert_eq!(normalize("/a//b/./c/../d").unwrap(), "/a/b/d");
        assert_eq!(normalize("/public/../admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/public/.%2e/admin").unwrap(), "/admin");
        assert_eq!(normalize("/../../etc").unwrap(), "/etc");
        assert_eq!(normalize("/a/").unwrap(), "/a/");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/%7Euser/%41").unwrap(), "/~user/A");
        assert_eq!(normalize("/a%20b%c3%a9").unwrap(), "/a%20b%C3%A9");
        assert_eq!(normalize("/a%20bé").unwrap(), "/a%20b%C3%A9");
    }

    #[test]
    fn refuses_what_backends_read_differently() {
        assert_eq!(
            normalize("/public/..%2fadmin"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(
            normalize("/public%2F..%2Fadmin"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(normalize("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(normalize("/a\\b"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/a%00b"), Err(PathError::ForbiddenByte));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%4"), Err(PathError::BadEscape));
        assert_eq!(
            normalize("/public/..;/admin"),
            Err(PathError::DotSegmentParams)
        );
        for p in ["/public/..%3B/admin", "/public/..%3bx/admin", "/a/.%3B"] {
            assert_eq!(normalize(p), Err(PathError::DotSegmentParams), "{p}");
        }
        assert_eq!(normalize("/a/b%3B..").unwrap(), "/a/b%3B..");
        assert_eq!(normalize("admin"), Err(PathError::NotAbsolute));
    }
}
