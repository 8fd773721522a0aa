//! Nothing left behind, however a run ends: a test-kit process stopped by
//! SIGTERM or SIGINT removes what it made, and one killed by SIGKILL is
//! cleaned up by the next, which says what it removed and leaves a live
//! run's things alone.
//!
//! The runs are this test binary started again in a helper mode
//! (`helper_run`, `sweeper_run`), each with `TMPDIR` pointing into a
//! scratch root of this test's own: no other run ever sees their roots,
//! and they sweep nothing of anyone else's. Each helper makes a test host
//! (a namespace pinned under its root), a second namespace, a file, and a
//! `sleep` inside the host namespace.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{TestHost, cleanup, in_netns, remove_root, require_root};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const HELPER: &str = "BERTH_CLEANUP_TEST_HELPER";
const SWEEPER: &str = "BERTH_CLEANUP_TEST_SWEEPER";

/// In helper mode: a run that makes a host and waits for its standard
/// input to end. Otherwise nothing.
#[test]
fn helper_run() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    let h = TestHost::without_daemon(Path::new("/bin/false"));
    h.namespace("c1");
    fs::write(h.root.join("scratch.txt"), "left behind?").expect("writing a file");
    let mut sleep = Command::new("sleep");
    sleep
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    in_netns(&mut sleep, &h.ns).expect("entering the host namespace");
    let mut sleep = sleep.spawn().expect("starting sleep");
    println!("\nREADY {} {}", h.root.display(), sleep.id());
    std::io::stdout().flush().expect("flushing stdout");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    // Ends normally: the host's Drop removes everything, sleep included.
    drop(h);
    let _ = sleep.wait();
}

/// In sweeper mode: a run that only starts (and so sweeps). Otherwise
/// nothing.
#[test]
fn sweeper_run() {
    if std::env::var_os(SWEEPER).is_none() {
        return;
    }
    cleanup::prepare();
}

/// A root of this test's own under the real temporary directory, removed
/// at the end whatever happens; the helpers' temporary directory.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let d = cleanup::new_root();
        fs::create_dir_all(&d).expect("making the scratch root");
        Self(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_root(&self.0);
        cleanup::untrack(&self.0);
    }
}

/// A helper run: its process, its root, the pid of its `sleep`.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    root: PathBuf,
    sleep: i32,
    stderr: mpsc::Receiver<String>,
}

fn start_helper(tmp: &Path) -> Helper {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["helper_run", "--exact", "--nocapture", "--test-threads=1"])
        .env(HELPER, "1")
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the helper");
    let stdout = child.stdout.take().expect("helper stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have printed "test helper_run ... " before it.
            if let Some(at) = line.find("READY ") {
                let _ = tx.send(line[at + "READY ".len()..].to_owned());
            }
        }
    });
    let stderr = child.stderr.take().expect("helper stderr");
    let (etx, erx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        let _ = etx.send(s);
    });
    let ready = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(r) => r,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the helper never got ready ({e}): {}",
                erx.recv().unwrap_or_default()
            );
        }
    };
    let (root, sleep) = ready.rsplit_once(' ').expect("READY ROOT PID");
    Helper {
        stdin: child.stdin.take(),
        child,
        root: PathBuf::from(root),
        sleep: sleep.parse().expect("the sleep's pid"),
        stderr: erx,
    }
}

impl Helper {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (bounded) for the helper to end; its status and stderr.
    fn wait(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(st) = self.child.try_wait().expect("waiting for the helper") {
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_default();
                return (st, err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the helper did not end within 90 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|at| stat[at + 1..].trim_start().chars().next())
        .is_some_and(|s| s != 'Z' && s != 'X')
}

/// Waits (bounded) until `pid` no longer runs.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == d || p.starts_with(&format!("{d}/")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigterm_and_sigint_leave_nothing_behind() {
    require_root();
    let scratch = Scratch::new();
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut h = start_helper(&scratch.0);
        assert!(h.root.starts_with(&scratch.0), "{}", h.root.display());
        assert_eq!(mounts_under(&h.root).len(), 2, "the helper pins two namespaces");
        assert!(running(h.sleep));
        kill(Pid::from_raw(h.pid()), sig).expect("signalling the helper");
        let (st, err) = h.wait();
        assert_eq!(st.signal(), Some(sig as i32), "ends by {sig}: {st:?}\n{err}");
        assert!(err.contains(&format!("cleanup: {sig} received")), "{err}");
        assert!(
            !h.root.exists(),
            "{} is still there after {sig}\n{err}",
            h.root.display()
        );
        assert_eq!(
            mounts_under(&scratch.0),
            Vec::<String>::new(),
            "mounts left after {sig}"
        );
        assert!(gone(h.sleep), "its sleep {} still runs after {sig}", h.sleep);
        let left: Vec<_> = fs::read_dir(&scratch.0)
            .expect("reading the scratch root")
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != cleanup::OWNER_FILE)
            .collect();
        assert!(
            left.is_empty(),
            "left in the temporary directory after {sig}: {left:?}"
        );
    }
}

#[test]
fn the_next_run_removes_what_a_killed_one_left_and_says_so() {
    require_root();
    let scratch = Scratch::new();
    let mut killed = start_helper(&scratch.0);
    let mut live = start_helper(&scratch.0);
    // A root whose pid is that of a live process (this one) that is not
    // its owner: the start time recorded in it is not this process's.
    let me = std::process::id();
    let reused = scratch.0.join(format!("{}{me}-99", cleanup::ROOT_PREFIX));
    fs::create_dir_all(reused.join("data")).expect("making a root with a reused pid");
    fs::write(reused.join(cleanup::OWNER_FILE), format!("{me} 1\n")).expect("writing its owner");
    fs::write(reused.join("data/x"), "x").expect("writing a file");

    kill(Pid::from_raw(killed.pid()), Signal::SIGKILL).expect("killing the helper");
    let (st, _) = killed.wait();
    assert_eq!(st.signal(), Some(9));
    // What SIGKILL leaves: the root, its namespace mounts, its sleep.
    assert!(killed.root.exists());
    assert_eq!(mounts_under(&killed.root).len(), 2);
    assert!(running(killed.sleep));

    let out = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["sweeper_run", "--exact", "--nocapture", "--test-threads=1"])
        .env(SWEEPER, "1")
        .env("TMPDIR", &scratch.0)
        .stdin(Stdio::null())
        .output()
        .expect("running the next run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("cleanup: ")).collect();
    eprintln!("the next run said:\n{}", lines.join("\n"));
    let pid = killed.pid();
    // Its files and directories are whatever a test host holds.
    let (head, tail) = (
        "cleanup: removed 2 namespace mounts, ",
        format!(" directories and 1 process left by a killed run (pid {pid})"),
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(head) && l.ends_with(&tail) && l.contains(" files, ")),
        "no line {head}… files, …{tail} in {lines:#?}"
    );
    let want = format!("cleanup: removed 2 files and 2 directories left by a killed run (pid {me})");
    assert!(lines.contains(&want.as_str()), "no line {want:?} in {lines:#?}");
    assert_eq!(lines.len(), 2, "{lines:#?}");

    assert!(!killed.root.exists(), "the killed run's root is still there");
    assert_eq!(mounts_under(&killed.root), Vec::<String>::new());
    assert!(gone(killed.sleep), "the killed run's sleep still runs");
    assert!(!reused.exists(), "the root of a pid used again is still there");

    // The live run's things are untouched, and go when it ends.
    assert!(live.root.exists(), "the live run's root was removed");
    assert_eq!(
        mounts_under(&live.root).len(),
        2,
        "the live run's mounts were taken off"
    );
    assert!(running(live.sleep), "the live run's sleep was killed");
    drop(live.stdin.take());
    let (st, err) = live.wait();
    assert!(st.success(), "{st:?}\n{err}");
    assert!(!live.root.exists());
    assert!(gone(live.sleep));
}
