//! A tiny blocking HTTP/1.1 client for berth's API on its unix socket: one
//! request per connection, so a timing covers connect, request and the
//! whole response.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// No single API call of a bench may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `METHOD PATH` with a JSON body and reads the response. Reads
/// exactly `Content-Length` bytes of body when the server says how many,
/// so the timing does not wait for the connection to close.
pub fn request(socket: &Path, method: &str, path: &str, body: &str) -> Result<Response> {
    let mut s = UnixStream::connect(socket).with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .with_context(|| format!("sending {method} {path}"))?;
    read_response(&mut s).with_context(|| format!("reading the answer to {method} {path}"))
}

/// Sends a POST and insists on `want` as the status; returns the body.
pub fn post(socket: &Path, path: &str, body: &str, want: u16) -> Result<String> {
    let r = request(socket, "POST", path, body)?;
    if r.status != want {
        bail!("POST {path} {body}: HTTP {} {}", r.status, r.body.trim());
    }
    Ok(r.body)
}

/// `read`, again when a signal interrupted it (a socket with a receive
/// timeout reports any signal, even a stop and continue, as EINTR).
fn read_some(s: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn read_response(s: &mut impl Read) -> Result<Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = read_some(s, &mut chunk)?;
        if n == 0 {
            bail!("the connection closed before the end of the headers");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = buf.split_off(head_end);
    match length {
        Some(len) if !chunked => {
            while body.len() < len {
                let n = read_some(s, &mut chunk)?;
                if n == 0 {
                    bail!("the connection closed after {} of {len} body bytes", body.len());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        _ => {
            s.read_to_end(&mut body)?;
            if chunked {
                body = dechunk(&body)?;
            }
        }
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring extensions and trailers.
fn dechunk(mut b: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size = std::str::from_utf8(&b[..eol]).map_err(|_| bad())?;
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(bad)?);
        b = b.get(size + 2..).ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_sized_body_without_waiting_for_close() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{\"Id\":1}\nEXTRA";
        let r = read_response(&mut &raw[..]).unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "{\"Id\":1}\n"));
    }

    #[test]
    fn reads_a_chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(&mut &raw[..]).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abcde"));
    }

    #[test]
    fn an_empty_answer_is_an_error() {
        assert!(read_response(&mut &b""[..]).is_err());
    }
}
