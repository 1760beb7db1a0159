//! Between two requests on an HTTP/1 keep-alive connection: wait for the first bytes of the
//! next request holding no buffer, then hand them to pingora with the connection.
//!
//! pingora reads a request header into a 4 KiB buffer allocated before its first read, so
//! a connection idle between requests would hold that buffer, and a new session, for the
//! whole idle gap. Here the connection waits with nothing but the stream: each poll reads
//! into a buffer on the stack of that poll, kept by nothing when no bytes are there yet.
//! Once bytes arrive they go to the next session as its first header bytes (pingora's
//! pipelined prefix, public in `HttpPersistentSettings`), so the request is read exactly as
//! before, with no extra read.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, ReusedHttpStream};
use pingora::protocols::http::ReusableHttpStream;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, ReadBuf};

use crate::drain;

/// The most read at once while waiting: pingora's own first read of a request header
/// (`INIT_HEADER_BUF_SIZE`), so a header that fits its first read still does.
const FIRST_READ: usize = 4096;

/// The connection, ready for its next request: its first bytes arrived within `idle`.
/// `None` when the client closed it, it failed, or it stayed idle for `idle` (closed quietly,
/// like pingora's own keep-alive timeout), or a drain began and the request did not come
/// within `drain::IDLE_CLOSE_GRACE`.
pub async fn wait(
    reusable: ReusableHttpStream,
    mut settings: HttpPersistentSettings,
    idle: Duration,
    shutdown: &ShutdownWatch,
) -> Option<ReusedHttpStream> {
    let (mut stream, pipelined) = reusable.into_parts();
    let start = match pipelined {
        Some(bytes) => bytes,
        None => tokio::select! {
            first = tokio::time::timeout(idle, first_bytes(&mut stream)) => first.ok()??,
            () = drain::begun_since(shutdown, drain::IDLE_CLOSE_GRACE) => {
                tracing::debug!("idle keep-alive connection closed by the drain");
                return None;
            }
        },
    };
    settings.set_pipelined_prefix(start);
    Some(ReusedHttpStream::new(stream, Some(settings)))
}

/// The first bytes the client sends, or `None` at end of stream or on an error.
async fn first_bytes(stream: &mut Stream) -> Option<BytesMut> {
    poll_fn(|cx| {
        // Lives for this poll only: a pending read keeps no buffer.
        let mut room = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut read = ReadBuf::uninit(&mut room);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let mut bytes = BytesMut::with_capacity(FIRST_READ);
                bytes.extend_from_slice(read.filled());
                Poll::Ready(Some(bytes))
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "keep-alive connection failed while idle");
                Poll::Ready(None)
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the server side as pingora's `Stream`, and the client.
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let server: pingora::protocols::l4::stream::Stream = server.into();
        (Box::new(server), client)
    }

    #[tokio::test]
    async fn the_first_bytes_are_returned_as_they_arrive() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let bytes = first_bytes(&mut server).await.expect("bytes");
        assert_eq!(&bytes[..], b"GET / HTTP/1.1\r\n");
        assert!(bytes.capacity() >= FIRST_READ);
    }

    #[tokio::test]
    async fn a_closed_connection_gives_none() {
        let (mut server, client) = pair().await;
        drop(client);
        assert!(first_bytes(&mut server).await.is_none());
    }

    #[tokio::test]
    async fn a_pending_wait_is_small() {
        let (mut server, _client) = pair().await;
        let waiting = first_bytes(&mut server);
        assert!(
            std::mem::size_of_val(&waiting) < 64,
            "{} bytes",
            std::mem::size_of_val(&waiting)
        );
    }
}
