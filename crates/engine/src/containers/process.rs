//! Whether a container's process still runs, and ending it.

use std::fs;

/// The start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is the process that started at `start` and has not
/// exited (a zombie counts as exited).
pub fn alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let mut f = stat[close + 1..].split_whitespace();
    let state = f.next();
    let st = f.nth(18).and_then(|s| s.parse::<u64>().ok());
    state != Some("Z") && st == Some(start)
}

/// Sends SIGKILL to `pid` if it is still the process that started at
/// `start`.
pub fn kill(pid: u32, start: u64) {
    if alive(pid, start) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_start_time() {
        let me = std::process::id();
        let st = start_time(me).expect("our own stat");
        assert!(alive(me, st));
        assert!(!alive(me, st + 1));
        assert!(!alive(0, 0));
    }
}
