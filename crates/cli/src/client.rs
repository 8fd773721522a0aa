//! A small blocking HTTP/1.1 client over the daemon's unix socket. The CLI
//! makes one or two requests per run, so it needs no async runtime: that
//! keeps `berth network connect` a few milliseconds end to end.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use berth_api::ErrorResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::socket_path;

/// The exec root unless told otherwise: `$BERTH_EXEC_ROOT`, else
/// `/run/berth`. The default socket and an auto-started daemon's log live
/// there.
pub fn default_exec_root() -> PathBuf {
    std::env::var_os("BERTH_EXEC_ROOT").map_or_else(|| PathBuf::from("/run/berth"), PathBuf::from)
}

/// The data root unless told otherwise: `$BERTH_DATA_ROOT`, else
/// `/var/lib/berth`.
pub fn default_data_root() -> PathBuf {
    std::env::var_os("BERTH_DATA_ROOT").map_or_else(|| PathBuf::from("/var/lib/berth"), PathBuf::from)
}

/// Where the daemon listens unless told otherwise:
/// `unix://<exec root>/berth.sock`.
pub fn default_host() -> String {
    format!("unix://{}", default_exec_root().join("berth.sock").display())
}

/// No request body.
pub const NO_BODY: Option<&()> = None;

/// A client of one daemon.
pub struct Client {
    socket: PathBuf,
    /// Start a daemon when none answers (the default socket only).
    autostart: bool,
}

/// An error answer of the daemon: its message.
#[derive(Debug)]
pub struct ApiError {
    /// The daemon's `message`.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl Client {
    /// A client of the daemon at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            autostart: false,
        }
    }

    /// Connects to the daemon, starting one first when it is the default
    /// daemon and nothing listens. No round trip is spent checking: the
    /// first request finds out.
    fn stream(&self) -> std::io::Result<UnixStream> {
        match UnixStream::connect(&self.socket) {
            Err(e)
                if self.autostart
                    && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) =>
            {
                start_daemon(self).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                UnixStream::connect(&self.socket)
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                Err(std::io::Error::new(
                    e.kind(),
                    format!("is `berth daemon -H unix://{}` running?", self.socket.display()),
                ))
            }
            r => r,
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request and returns the status and body.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = self.stream()?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        parse_response(&buf)
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "malformed HTTP response"))
    }

    /// Sends one request with `body` as JSON and returns the body of a
    /// 2xx answer; another answer becomes an [`ApiError`] with the
    /// daemon's message.
    pub fn send<B: Serialize + ?Sized>(&self, method: &str, path: &str, body: Option<&B>) -> Result<Vec<u8>> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .with_context(|| format!("encoding the request {method} {path}"))?;
        let (status, answer) = self
            .raw(method, path, body.as_deref())
            .with_context(|| format!("cannot reach the berth daemon at {}", self.socket.display()))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ErrorResponse>(&answer)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&answer).trim().to_owned());
            return Err(ApiError { message }.into());
        }
        Ok(answer)
    }

    /// Sends one request whose answer carries nothing berth reads.
    pub fn call<B: Serialize + ?Sized>(&self, method: &str, path: &str, body: Option<&B>) -> Result<()> {
        self.send(method, path, body).map(drop)
    }

    /// Sends one request and decodes its answer as `T`.
    pub fn fetch<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let answer = self.send(method, path, body)?;
        serde_json::from_slice(&answer)
            .with_context(|| format!("decoding the daemon's answer to {method} {path}"))
    }

    /// `GET path`, decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.fetch("GET", path, NO_BODY)
    }

    /// GET that returns the raw body.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        self.send("GET", path, NO_BODY)
    }

    /// True when the daemon answers `/_ping` (never starts one).
    pub fn ping(&self) -> bool {
        let quiet = Client::new(self.socket.clone());
        matches!(quiet.raw("GET", "/_ping", None), Ok((200, _)))
    }
}

fn parse_response(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = buf[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A client of the daemon at `host`, else of the default daemon, which the
/// first request starts (logging to the exec root) when nothing listens.
/// No round trip is spent checking: `berth run` reaches the daemon in one.
pub fn connect(host: Option<&str>) -> Result<Client> {
    Ok(Client {
        socket: socket_path(host.unwrap_or(&default_host()))?,
        autostart: host.is_none(),
    })
}

fn start_daemon(client: &Client) -> Result<()> {
    let exec_root = default_exec_root();
    std::fs::create_dir_all(&exec_root).with_context(|| format!("creating {}", exec_root.display()))?;
    let log_path = exec_root.join("berth.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    detach_session(&mut cmd);
    let mut child = cmd.spawn().context("starting the berth daemon")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if client.ping() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(anyhow!(
                "the berth daemon exited ({status}) right after starting; its log {} ends with: {last}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!(
        "started the berth daemon but it did not answer on {} within 15 s; see {}",
        client.socket.display(),
        log_path.display()
    )
}

/// Starts `cmd` in a new session, detached from the terminal.
fn detach_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((404, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
