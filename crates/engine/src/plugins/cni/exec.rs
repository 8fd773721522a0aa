//! Running one CNI plugin: the `CNI_*` environment, the configuration on
//! stdin, the result or error object on stdout, a deadline.
//!
//! Plugins run with `tokio::process` in a process group of their own, so
//! that a plugin that hangs is killed with everything it started, and the
//! daemon's other requests go on meanwhile.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::{Error, Kind, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::result::decode_error;

/// The most of a plugin's stdout or stderr that is kept; the rest is read
/// and dropped, so a chatty plugin can finish.
const OUTPUT_LIMIT: usize = 1 << 20;

/// What to run a plugin for (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ADD`.
    Add,
    /// `DEL`.
    Del,
    /// `CHECK`.
    Check,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
        })
    }
}

/// The parameters every plugin of one call gets.
pub struct Call<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`; empty when the namespace is gone (a `DEL` may still
    /// release what the plugin holds).
    pub netns: Option<&'a Path>,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_PATH`, where plugins find their IPAM plugins.
    pub cni_path: &'a [PathBuf],
    /// How long one plugin may run.
    pub timeout: Duration,
}

/// The program for plugin type `kind`: the first executable file of that
/// name in `cni_path`, or an error that lists where it looked.
pub fn find(kind: &str, cni_path: &[PathBuf], what: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    cni_path
        .iter()
        .map(|d| d.join(kind))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            Error::plugin(
                Kind::Invalid,
                format!(
                    "CNI {what} not found in {} (--cni-path)",
                    if cni_path.is_empty() {
                        "an empty path".to_owned()
                    } else {
                        cni_path
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )
        })
}

/// A one-line excerpt of what a plugin printed: control characters
/// become spaces, and only the end of a long text is kept.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line: String = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let n = one_line.chars().count();
    if n <= max {
        one_line
    } else {
        format!("…{}", one_line.chars().skip(n - max).collect::<String>())
    }
}

/// Reads `r` to its end, keeping at most [`OUTPUT_LIMIT`] bytes in `buf`.
async fn read_capped(r: Option<impl AsyncRead + Unpin>, buf: &mut Vec<u8>) {
    let Some(mut r) = r else { return };
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// Runs plugin `kind` (the program `prog`) for `op` with `conf` on stdin,
/// and returns its stdout when it exits with 0. Every failure is one line
/// that names the plugin and the operation: the plugin's error object
/// (`msg: details (code N)`), or its exit status with the end of its
/// stderr, or the deadline it missed (the plugin and everything it started
/// are killed then).
pub async fn run(prog: &Path, kind: &str, op: Op, call: &Call<'_>, conf: &[u8]) -> Result<Vec<u8>> {
    let mut cmd = Command::new(prog);
    cmd.env_remove("CNI_ARGS")
        .env("CNI_COMMAND", op.to_string())
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns.map(|p| p.as_os_str()).unwrap_or_default())
        .env("CNI_IFNAME", call.ifname)
        .env(
            "CNI_PATH",
            std::env::join_paths(call.cni_path).unwrap_or_default(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        Error::io(
            format!("cni plugin {kind}: {op} failed: cannot run {}", prog.display()),
            e,
        )
    })?;
    let pid = child.id();
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let done = tokio::time::timeout(call.timeout, async {
        let write = async {
            if let Some(mut s) = stdin {
                // A plugin may exit without reading: a broken pipe is its business.
                let _ = s.write_all(conf).await;
            }
        };
        tokio::join!(
            write,
            read_capped(stdout, &mut out),
            read_capped(stderr, &mut err)
        );
        child.wait().await
    })
    .await;
    let status = match done {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(Error::io(
                format!("cni plugin {kind}: {op} failed: waiting for it"),
                e,
            ));
        }
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // The group: a plugin that runs a shell also runs its children.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            return Err(Error::plugin(
                Kind::Internal,
                format!(
                    "cni plugin {kind}: {op} timed out after {} ms and was killed{}",
                    call.timeout.as_millis(),
                    stderr_tail(&err)
                ),
            ));
        }
    };
    if status.success() {
        return Ok(out);
    }
    // The spec puts the error object on stdout; some plugins use stderr.
    let msg = match decode_error(&out).or_else(|| decode_error(&err)) {
        Some(e) => {
            let mut m = excerpt(e.msg.as_bytes(), 400);
            if m.is_empty() {
                m = "no message".into();
            }
            if !e.details.is_empty() {
                m.push_str(": ");
                m.push_str(&excerpt(e.details.as_bytes(), 400));
            }
            format!("{m} (code {})", e.code)
        }
        None => {
            let mut m = format!("it exited with {status}");
            if !out.is_empty() {
                m.push_str(&format!(" and printed {:?}", excerpt(&out, 200)));
            }
            m.push_str(&stderr_tail(&err));
            m
        }
    };
    Err(Error::plugin(
        Kind::Internal,
        format!("cni plugin {kind}: {op} failed: {msg}"),
    ))
}

fn stderr_tail(err: &[u8]) -> String {
    let tail = excerpt(err, 200);
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {tail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(b"a\nb\r\n\n c\x07", 100), "a | b | c ");
        assert_eq!(excerpt(b"0123456789", 4), "…6789");
        assert_eq!(excerpt(b"", 4), "");
    }

    #[test]
    fn missing_plugins_name_the_path() {
        let e = find(
            "no-such-plugin",
            &[PathBuf::from("/nonexistent/a"), PathBuf::from("/nonexistent/b")],
            "plugin \"x\"",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "CNI plugin \"x\" not found in /nonexistent/a, /nonexistent/b (--cni-path)"
        );
    }
}
