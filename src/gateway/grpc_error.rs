//! The gateway's own errors as gRPC clients read them. A gRPC client looks for the call's
//! outcome in `grpc-status` and `grpc-message`, not in the HTTP status or a JSON body, so a
//! request whose `content-type` starts with `application/grpc` is refused with a
//! "trailers-only" response: HTTP 200, `content-type: application/grpc`, and the gRPC
//! status in a header block that ends the stream (the HTTP status it stands for decides
//! the gRPC code; the message is the same text the JSON error carries).

use http::header::CONTENT_TYPE;
use http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::Result;

/// The gRPC status codes the gateway answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GrpcCode {
    Unknown = 2,
    InvalidArgument = 3,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The gRPC code a gateway error of HTTP `status` stands for.
    pub fn for_http_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::InvalidArgument,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::Unimplemented,
            429 => Self::ResourceExhausted,
            502..=504 => Self::Unavailable,
            _ => Self::Unknown,
        }
    }
}

/// Whether `req` is a gRPC call (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc_request(req: &RequestHeader) -> bool {
    req.headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= GRPC_CONTENT_TYPE.len()
            && v[..GRPC_CONTENT_TYPE.len()].eq_ignore_ascii_case(GRPC_CONTENT_TYPE.as_bytes())
    })
}

const GRPC_CONTENT_TYPE: &str = "application/grpc";

/// `msg` as `grpc-message` carries it: every byte outside printable ASCII, and `%`
/// itself, percent-encoded (UTF-8 bytes, upper-case hex), the rest as is.
pub fn percent_encode_message(msg: &str) -> String {
    utf8_percent_encode(msg, GRPC_MESSAGE_ESCAPED).to_string()
}

/// What `grpc-message` escapes besides non-ASCII bytes: controls and `%`.
const GRPC_MESSAGE_ESCAPED: &AsciiSet = &CONTROLS.add(b'%');

/// The header block of a trailers-only answer to a gRPC call that the gateway refuses
/// with HTTP `status` and `msg`. The caller adds its own further headers and writes it
/// with END_STREAM.
pub fn trailers_only(status: StatusCode, msg: &str) -> Result<ResponseHeader> {
    let code = GrpcCode::for_http_status(status) as u8;
    let mut resp = ResponseHeader::build(StatusCode::OK, Some(12))?;
    resp.insert_header(CONTENT_TYPE, GRPC_CONTENT_TYPE)?;
    resp.insert_header("grpc-status", code.to_string())?;
    resp.insert_header("grpc-message", percent_encode_message(msg))?;
    // No body: an HTTP/1.1 client needs the framing said.
    resp.insert_header("Content-Length", "0")?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_grpc_codes_clients_expect() {
        for (http, grpc) in [
            (400, 3),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 8),
            (502, 14),
            (503, 14),
            (504, 14),
            (405, 2),
            (408, 2),
            (413, 2),
            (500, 2),
        ] {
            let status = StatusCode::from_u16(http).unwrap();
            assert_eq!(GrpcCode::for_http_status(status) as u8, grpc, "HTTP {http}");
        }
    }

    #[test]
    fn the_message_is_percent_encoded_as_grpc_requires() {
        assert_eq!(
            percent_encode_message("Unauthorized: Missing Authorization Header"),
            "Unauthorized: Missing Authorization Header"
        );
        assert_eq!(percent_encode_message("100% sûr\n"), "100%25 s%C3%BBr%0A");
        assert_eq!(percent_encode_message("'Bearer' ~"), "'Bearer' ~");
    }

    #[test]
    fn only_grpc_content_types_count() {
        let with = |ct: Option<&str>| {
            let mut req = RequestHeader::build("POST", b"/svc/Method", None).unwrap();
            if let Some(ct) = ct {
                req.insert_header("content-type", ct).unwrap();
            }
            is_grpc_request(&req)
        };
        assert!(with(Some("application/grpc")));
        assert!(with(Some("application/grpc+proto")));
        assert!(with(Some("Application/GRPC")));
        assert!(!with(Some("application/json")));
        assert!(!with(Some("application/grp")));
        assert!(!with(None));
    }

    #[test]
    fn a_refusal_is_a_200_with_the_status_in_the_header_block() {
        let resp = trailers_only(StatusCode::UNAUTHORIZED, "Token has expired").unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        let get = |name: &str| resp.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(get("content-type"), "application/grpc");
        assert_eq!(get("grpc-status"), "16");
        assert_eq!(get("grpc-message"), "Token has expired");
        assert_eq!(get("content-length"), "0");
    }
}
