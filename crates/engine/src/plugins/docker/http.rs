//! A small HTTP/1.1 client for Docker plugin sockets: one `POST` per
//! connection (`Connection: close`), the whole exchange bounded by a
//! timeout, the answer read up to [`MAX_RESPONSE`] bytes. Plugins are
//! usually Go's `net/http` servers, which answer with `Content-Length` or,
//! for long bodies, `Transfer-Encoding: chunked`; both are read, and so is
//! a body that simply runs to the end of the connection.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The media type of Docker's plugin protocol, version 1.2.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The longest answer berth reads from a plugin.
pub const MAX_RESPONSE: usize = 4 << 20;

/// How a call went wrong before the plugin gave an answer to decode.
#[derive(Debug)]
pub enum Transport {
    /// The socket could not be connected to: the request never left.
    Unreachable(io::Error),
    /// The plugin did not answer in time.
    Timeout(Duration),
    /// The connection broke after the request was (perhaps) sent.
    Broken(io::Error),
    /// What came back is not an HTTP/1.x response.
    Malformed(&'static str),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(e) | Self::Broken(e) => write!(f, "{e}"),
            Self::Timeout(d) => write!(f, "no answer within {}", crate::plugins::show_duration(*d)),
            Self::Malformed(why) => write!(f, "the plugin's answer is not HTTP: {why}"),
        }
    }
}

/// An HTTP answer: the status code and the (de-chunked) body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// `200`, `404`, …
    pub status: u16,
    /// The body, without transfer encoding.
    pub body: Vec<u8>,
}

/// Sends `body` to `POST path` on the unix socket `socket` and reads the
/// answer, all within `timeout`.
pub async fn post(socket: &Path, path: &str, body: &[u8], timeout: Duration) -> Result<Response, Transport> {
    match tokio::time::timeout(timeout, exchange(socket, path, body)).await {
        Ok(r) => r,
        Err(_) => Err(Transport::Timeout(timeout)),
    }
}

async fn exchange(socket: &Path, path: &str, body: &[u8]) -> Result<Response, Transport> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(Transport::Unreachable)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nUser-Agent: berth\r\nAccept: {MEDIA_TYPE}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).await.map_err(Transport::Broken)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.map_err(Transport::Broken)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(resp) = parse_response(&buf, n == 0)? {
            return Ok(resp);
        }
        if n == 0 {
            return Err(Transport::Broken(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                if buf.is_empty() {
                    "the plugin closed the connection without answering"
                } else {
                    "the plugin closed the connection in the middle of its answer"
                },
            )));
        }
        if buf.len() > MAX_RESPONSE {
            return Err(Transport::Malformed("the answer is longer than 4 MiB"));
        }
    }
}

/// Parses an HTTP/1.x response from `buf`: `Ok(None)` while it is still
/// incomplete (with `eof`, the connection has ended and what is there is
/// all there will be). Bytes from a plugin: it must never panic.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, Transport> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 << 10 {
            return Err(Transport::Malformed("the header is longer than 64 KiB"));
        }
        return if eof && !buf.is_empty() {
            Err(Transport::Malformed("the header never ends"))
        } else {
            Ok(None)
        };
    };
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| Transport::Malformed("the header is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split(' ');
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(Transport::Malformed("no HTTP/1.x status line"));
    }
    let status: u16 = words
        .next()
        .and_then(|s| (s.len() == 3).then_some(s))
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(Transport::Malformed("no status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(Transport::Malformed("a header line without ':'"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            let n = v
                .parse()
                .map_err(|_| Transport::Malformed("a bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Transport::Malformed("two different Content-Lengths"));
            }
            length = Some(n);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().split(',').any(|e| e.trim() == "chunked");
        }
    }
    let rest = &buf[end + 4..];
    let body = if chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None if eof => return Err(Transport::Malformed("the chunked body ends early")),
            None => return Ok(None),
        }
    } else if let Some(n) = length {
        if n > MAX_RESPONSE {
            return Err(Transport::Malformed("the answer is longer than 4 MiB"));
        }
        match rest.get(..n) {
            Some(b) => b.to_vec(),
            None if eof => {
                return Err(Transport::Malformed(
                    "the body is shorter than its Content-Length",
                ));
            }
            None => return Ok(None),
        }
    } else if status == 204 || status == 304 || status < 200 {
        Vec::new()
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

/// Decodes a chunked body: `Ok(None)` while incomplete.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, Transport> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line =
            std::str::from_utf8(&b[..eol]).map_err(|_| Transport::Malformed("a bad chunk size"))?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size_hex, 16).map_err(|_| Transport::Malformed("a bad chunk size"))?;
        if size > MAX_RESPONSE || out.len() + size > MAX_RESPONSE {
            return Err(Transport::Malformed("the answer is longer than 4 MiB"));
        }
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line; the body is whole.
            return Ok(Some(out));
        }
        let Some(data) = b.get(..size) else {
            return Ok(None);
        };
        out.extend_from_slice(data);
        b = &b[size..];
        match b.get(..2) {
            Some(b"\r\n") => b = &b[2..],
            Some(_) => return Err(Transport::Malformed("a chunk without its CRLF")),
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Response {
        parse_response(s.as_bytes(), false).unwrap().unwrap()
    }

    #[test]
    fn content_length_and_chunked_bodies_are_read() {
        let r = parsed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((r.status, &r.body[..]), (200, &b"{}"[..]));
        let r = parsed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n",
        );
        assert_eq!(r.body, b"{\"a\":1}");
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n404 page not found\n", true)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"404 page not found\n"[..]));
    }

    #[test]
    fn incomplete_answers_wait_and_broken_ones_fail() {
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false)
                .unwrap()
                .is_none()
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true).is_err());
        assert!(parse_response(b"HTTP/1.1 200", false).unwrap().is_none());
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 99999 OK\r\n\r\n", true).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                true
            )
            .is_err()
        );
        assert!(parse_response(b"", true).unwrap().is_none());
    }
}
