//! Starting a container's detached shim as a program of its own: `berth
//! --host unix://SOCKET __shim SPEC -- ARGV…`, in a new session, with the
//! container's log as its output and a status pipe as its fd 3, on which
//! it says `ok` once the command runs (or why it does not). The daemon
//! starts shims this way (`berth start`, restarts), and so does the CLI's
//! `run -d` when it cannot fork itself.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The shim's command: `exe` (the berth binary) as a client of `socket`,
/// the spec that `POST /containers/create` answered (as JSON), the
/// container's command `argv`; stdout and stderr to `log`, `status` (the
/// write end of a pipe) as fd 3, a session of its own.
pub fn shim_command(
    exe: &Path,
    socket: &Path,
    spec_json: &str,
    argv: &[String],
    log: &File,
    status: &OwnedFd,
) -> io::Result<Command> {
    let mut cmd = Command::new(exe);
    cmd.arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("__shim")
        .arg(spec_json)
        .arg("--")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    let fd = status.as_raw_fd();
    // SAFETY: dup2 and setsid are async-signal-safe; the caller keeps
    // `status` open until after the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::setsid();
            Ok(())
        });
    }
    Ok(cmd)
}

/// What a shim said on its status pipe (`read`, the pipe's read end, once
/// every write end but the shim's is closed): `Ok` for `ok`, else its
/// words, or that it ended without a word before starting `program`.
pub fn shim_answer(read: OwnedFd, program: &str) -> Result<(), String> {
    let mut answer = String::new();
    let _ = File::from(read).read_to_string(&mut answer);
    match answer.trim() {
        "ok" => Ok(()),
        "" => Err(format!("the container's shim ended before starting {program:?}")),
        msg => Err(msg.to_owned()),
    }
}
