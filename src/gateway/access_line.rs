//! One access line, formatted by hand into a reused buffer: the fields and layout of the
//! `access` event tracing wrote before (text: `timestamp  INFO access: request k=v ...`;
//! JSON: one object with `timestamp`, `level`, `target`, `message` and the fields), at a
//! fraction of the cost of tracing's formatting layer. Strings from the request are
//! escaped (Rust debug quoting in text, JSON escaping in JSON): a path cannot forge a line.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;

/// The fields of one access line.
pub struct AccessRecord<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_us: u64,
    pub user_id: Option<i64>,
    pub client_ip: Option<IpAddr>,
    pub upstream: Option<&'a str>,
    pub error: Option<String>,
}

impl AccessRecord<'_> {
    /// Appends the line (with its newline) to `buf`.
    pub fn write(&self, format: LogFormat, now: SystemTime, buf: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = match format {
            LogFormat::Text => self.write_text(now, buf),
            LogFormat::Json => self.write_json(now, buf),
        };
    }

    fn write_text(&self, now: SystemTime, buf: &mut Vec<u8>) -> std::io::Result<()> {
        write_timestamp(now, buf);
        buf.extend_from_slice(b"  INFO access: request method=");
        buf.extend_from_slice(self.method.as_bytes());
        buf.extend_from_slice(b" path=");
        write_quoted(self.path, buf);
        buf.extend_from_slice(b" route=");
        write_quoted(self.route, buf);
        buf.extend_from_slice(b" status=");
        buf.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
        buf.extend_from_slice(b" duration_us=");
        buf.extend_from_slice(itoa::Buffer::new().format(self.duration_us).as_bytes());
        if let Some(id) = self.user_id {
            buf.extend_from_slice(b" user_id=");
            buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        }
        if let Some(ip) = self.client_ip {
            write!(buf, " client_ip={ip}")?;
        }
        if let Some(upstream) = self.upstream {
            buf.extend_from_slice(b" upstream=");
            write_quoted(upstream, buf);
        }
        if let Some(error) = &self.error {
            buf.extend_from_slice(b" error=");
            write_quoted(error, buf);
        }
        buf.push(b'\n');
        Ok(())
    }

    fn write_json(&self, now: SystemTime, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(now, buf);
        buf.extend_from_slice(
            b"\",\"level\":\"INFO\",\"message\":\"request\",\"target\":\"access\",\"method\":",
        );
        serde_json::to_writer(&mut *buf, self.method)?;
        buf.extend_from_slice(b",\"path\":");
        serde_json::to_writer(&mut *buf, self.path)?;
        buf.extend_from_slice(b",\"route\":");
        serde_json::to_writer(&mut *buf, self.route)?;
        write!(
            buf,
            ",\"status\":{},\"duration_us\":{}",
            self.status, self.duration_us
        )?;
        if let Some(id) = self.user_id {
            write!(buf, ",\"user_id\":{id}")?;
        }
        if let Some(ip) = self.client_ip {
            write!(buf, ",\"client_ip\":\"{ip}\"")?;
        }
        if let Some(upstream) = self.upstream {
            buf.extend_from_slice(b",\"upstream\":");
            serde_json::to_writer(&mut *buf, upstream)?;
        }
        if let Some(error) = &self.error {
            buf.extend_from_slice(b",\"error\":");
            serde_json::to_writer(&mut *buf, error)?;
        }
        buf.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// `text` quoted as Rust's `{:?}` quotes it; a string of printable ASCII without `"` or
/// `\\` (nearly every path) is copied as it is.
fn write_quoted(text: &str, buf: &mut Vec<u8>) {
    if text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = write!(buf, "{text:?}");
    }
}

thread_local! {
    /// The second last written (`2023-11-14T22:13:20`), formatted once and reused by every
    /// line of that second on this thread.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `now` as RFC 3339 in UTC with microseconds (`2023-11-14T22:13:20.123456Z`), as
/// `humantime::format_rfc3339_micros` writes it.
fn write_timestamp(now: SystemTime, buf: &mut Vec<u8>) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
            second.1 = whole.to_string().trim_end_matches('Z').to_owned();
            second.0 = secs;
        }
        buf.extend_from_slice(second.1.as_bytes());
    });
    let mut micros = since.subsec_micros();
    let mut digits = *b".000000Z";
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    buf.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str) -> AccessRecord<'_> {
        AccessRecord {
            method: "GET",
            path,
            route: "/api",
            status: 200,
            duration_us: 42,
            user_id: Some(7),
            client_ip: Some("127.0.0.1".parse().unwrap()),
            upstream: Some("backend"),
            error: None,
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)
    }

    #[test]
    fn quoting_matches_rust_debug_quoting() {
        for text in [
            "/api/x",
            "",
            "a\"b",
            "a\\b",
            "tab\there",
            "nl\n",
            "é",
            "\u{7f}",
            "\u{200b}x",
            "~ !",
        ] {
            let mut buf = Vec::new();
            write_quoted(text, &mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                format!("{text:?}"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn timestamps_match_humantime_across_seconds() {
        for micros in [
            0,
            1,
            999_999,
            1_000_000,
            1_700_000_000_123_456,
            1_700_000_001_000_007,
        ] {
            let t = UNIX_EPOCH + Duration::from_micros(micros);
            let mut buf = Vec::new();
            write_timestamp(t, &mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                humantime::format_rfc3339_micros(t).to_string()
            );
        }
    }

    #[test]
    fn text_lines_keep_the_fields_and_quote_request_strings() {
        let mut buf = Vec::new();
        record("/api/x\"\n").write(LogFormat::Text, at(), &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2023-11-14T22:13:20.123456Z  INFO access: request method=GET path=\"/api/x\\\"\\n\" route=\"/api\" status=200 duration_us=42 user_id=7 client_ip=127.0.0.1 upstream=\"backend\"\n"
        );
    }

    #[test]
    fn json_lines_parse_with_the_same_fields() {
        let mut buf = Vec::new();
        let mut rec = record("/api/\"x\"");
        rec.error = Some("upstream \"down\"".into());
        rec.write(LogFormat::Json, at(), &mut buf);
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["message"], "request");
        assert_eq!(v["path"], "/api/\"x\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["user_id"], 7);
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert_eq!(v["upstream"], "backend");
        assert_eq!(v["error"], "upstream \"down\"");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
    }
}
