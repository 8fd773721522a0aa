//! Nothing left behind, however a run ends.
//!
//! What berth's tests, demo and benches make lives in *test roots*,
//! `$TMPDIR/berth-test-<owner pid>-<n>`: namespaces pinned by bind mounts,
//! daemons' data and exec roots, etcd's data, a bench's dockerd. A process
//! belongs to a root when something certain ties it to it:
//! - its network namespace is pinned under the root;
//! - an argument names the root (etcd's `--data-dir`, a dockerd's and its
//!   containerd's roots, `berth -H unix://ROOT/berth.sock`);
//! - its environment says [`ROOT_ENV`]`=ROOT` ([`crate::in_netns`] sets it
//!   on everything started in a root's namespace; children inherit it);
//! - or it descends from one of those (a container of such a dockerd).
//!
//! | how a run ends | who cleans up | how |
//! |---|---|---|
//! | normally, or a test fails | the owner's `Drop` | [`remove_root`] |
//! | SIGINT, SIGTERM | the owner's cleanup thread ([`install`]) | children told and waited for, hooks, then [`remove_root`] on every tracked root |
//! | SIGKILL | the next run: the first test host of a process, every `cargo xtask` command, the leak check | [`sweep`]: every root whose owner is gone, and every process tied to one |
//!
//! [`remove_root`] ends the root's processes (SIGKILL), unmounts what is
//! mounted under it and deletes it; the kernel then frees its namespaces
//! with their links and nftables tables. What a sweep removes is said in
//! one line per killed run ([`summary`]: "removed 3 namespace mounts, 4
//! files, 2 directories and 1 process left by a killed run (pid 1234)");
//! [`Swept`] has the details, one per root and per process. A root whose
//! owner still runs is never touched: it may be another run's, beside this
//! one. The owner is the pid in the root's name, and [`OWNER_FILE`] in the
//! root records its start time, so a pid that a new process got since
//! does not keep a dead run's root.

mod interrupt;
mod procs;

pub use interrupt::{
    CHILD_WAIT, Forwarded, Hook, checkpoint, forward, install, interrupted, on_interrupt, track, untrack,
};

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use procs::{names_root, with_descendants};

/// Prefix of every test root under the temporary directory.
pub const ROOT_PREFIX: &str = "berth-test-";

/// The environment variable that ties a process to its test root.
pub const ROOT_ENV: &str = "BERTH_TEST_ROOT";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty test root of this process, `$TMPDIR/berth-test-PID-N`,
/// tracked for removal on SIGINT or SIGTERM. Before the first one, the
/// handlers are installed and what killed runs left is swept (and said,
/// on stderr).
pub fn new_root() -> PathBuf {
    prepare();
    let root = std::env::temp_dir().join(format!(
        "{ROOT_PREFIX}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    track(&root);
    let _ = fs::remove_dir_all(&root);
    if fs::create_dir_all(&root).is_ok() {
        claim(&root);
    }
    root
}

/// The file in a root that names its owner: `PID START`, the pid and the
/// start time of the process (in clock ticks since boot, field 22 of
/// `/proc/PID/stat`), so that a pid used again by another process does
/// not pass for the owner.
pub const OWNER_FILE: &str = "owner";

/// Records this process as the owner of `root` ([`OWNER_FILE`]).
pub fn claim(root: &Path) {
    let pid = std::process::id() as i32;
    if let Some(start) = start_time(pid) {
        let _ = fs::write(root.join(OWNER_FILE), format!("{pid} {start}\n"));
    }
}

/// When process `pid` started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; fields 3.. follow the ')' that ends COMM.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether the owner of `root`, named `pid` in its name, is gone: no live
/// process has that pid, or the one that has it started at another time
/// than the one [`OWNER_FILE`] records.
fn owner_gone(root: &Path, pid: i32) -> bool {
    if !alive(pid) {
        return true;
    }
    let recorded = fs::read_to_string(root.join(OWNER_FILE)).unwrap_or_default();
    let mut f = recorded.split_whitespace();
    let (Some(p), Some(start)) = (f.next(), f.next()) else {
        // No record (yet): the live pid is taken for the owner.
        return false;
    };
    match (p.parse::<i32>(), start.parse::<u64>(), start_time(pid)) {
        (Ok(p), Ok(start), Some(now)) => p == pid && start != now,
        _ => false,
    }
}

/// Installs the signal handlers and sweeps, once per process.
pub fn prepare() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install();
        for line in summary(&sweep()) {
            eprintln!("cleanup: {line}");
        }
    });
}

/// The innermost test root `path` lies in (or is).
pub fn root_of(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|a| {
            a.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| owner(n).is_some())
        })
        .map(Path::to_path_buf)
}

/// The pid in a root's name (`berth-test-PID-…`).
fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(ROOT_PREFIX)?;
    let digits = rest.split('-').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|at| stat[at + 1..].trim_start().chars().next())
        .is_some_and(|s| s != 'Z' && s != 'X')
}

/// Test roots directly under the temporary directory left by runs that
/// ended before their cleanup (the process named in the root's name is
/// gone). Roots of processes still running, such as a bench beside the
/// tests, are theirs, not stale.
pub fn stale_roots() -> Vec<PathBuf> {
    stale_roots_in(&std::env::temp_dir())
}

/// [`stale_roots`] under `tmp`.
pub fn stale_roots_in(tmp: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(owner)
                .is_some_and(|pid| owner_gone(&e.path(), pid))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Mount points under `root` (deepest first), with the namespace inode of
/// those that pin a network namespace.
fn mounts_under(root: &Path) -> Vec<(PathBuf, Option<u64>)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = root.to_string_lossy();
    let under = format!("{root}/");
    let mut out: Vec<(PathBuf, Option<u64>)> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = *f.get(4)?;
            if point != root && !point.starts_with(&under) {
                return None;
            }
            // "net:[4026532174]" as the mount's root, for an nsfs bind mount.
            let ns = f
                .get(3)
                .and_then(|r| r.strip_prefix("net:["))
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse().ok());
            Some((PathBuf::from(point), ns))
        })
        .collect();
    out.sort();
    out.dedup();
    out.reverse();
    out
}

/// What [`remove_root`] did.
#[derive(Debug, Default)]
pub struct Removal {
    /// The root.
    pub root: PathBuf,
    /// The processes it ended: pid and command line.
    pub killed: Vec<(i32, String)>,
    /// How many of the mounts it took off pinned a network namespace.
    pub namespaces: usize,
    /// How many mounts it took off, those included.
    pub mounts: usize,
    /// How many files it deleted (the root's own directories not counted).
    pub files: usize,
    /// How many directories it deleted, the root included.
    pub dirs: usize,
    /// Whether the root was there.
    pub existed: bool,
    /// Why it could not be deleted, if it could not.
    pub failed: Option<String>,
}

impl Removal {
    /// One line per thing removed, `why` saying why it had to go: its
    /// processes, then the root.
    pub fn report(&self, why: &str) -> Vec<Swept> {
        let mut out: Vec<Swept> = self
            .killed
            .iter()
            .map(|(pid, command)| Swept::Process {
                pid: *pid,
                command: command.clone(),
                root: self.root.clone(),
            })
            .collect();
        if self.existed || self.mounts > 0 {
            out.push(Swept::Root {
                root: self.root.clone(),
                why: why.to_owned(),
                namespaces: self.namespaces,
                mounts: self.mounts,
                files: self.files,
                dirs: self.dirs,
                failed: self.failed.clone(),
            });
        }
        out
    }
}

/// Removes a test root: ends the processes tied to it (see the module
/// docs) and their descendants, takes off every mount under it (deepest
/// first) and deletes it. Idempotent.
pub fn remove_root(root: &Path) -> Removal {
    let mounts = mounts_under(root);
    let mut inodes: Vec<u64> = mounts.iter().filter_map(|(_, ns)| *ns).collect();
    inodes.sort_unstable();
    inodes.dedup();
    let name = root.to_string_lossy().into_owned();
    let mut out = Removal {
        root: root.to_owned(),
        existed: root.exists(),
        ..Removal::default()
    };
    // Rounds, for what a process started while the previous one was ended.
    for _ in 0..3 {
        let all = procs::all();
        let ours = with_descendants(&all, |p| {
            p.netns.is_some_and(|n| inodes.contains(&n))
                || p.names(&name)
                || p.marker.as_deref().is_some_and(|m| names_root(m, &name))
        });
        if ours.is_empty() {
            break;
        }
        for p in &ours {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            if !out.killed.iter().any(|(pid, _)| *pid == p.pid) {
                out.killed.push((p.pid, p.command()));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while ours.iter().any(|p| alive(p.pid)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
    for (point, ns) in &mounts {
        if umount2(point, MntFlags::MNT_DETACH).is_ok() {
            out.mounts += 1;
            out.namespaces += usize::from(ns.is_some());
        }
    }
    (out.files, out.dirs) = count(root);
    if let Err(e) = fs::remove_dir_all(root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        out.failed = Some(e.to_string());
    }
    out
}

/// Files and directories under `dir` (itself included), not following
/// symbolic links nor crossing into other filesystems' mounts (all are
/// off by now). Bounded by a count, in case of a loop.
fn count(dir: &Path) -> (usize, usize) {
    let (mut files, mut dirs) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if files + dirs > 1_000_000 {
            break;
        }
        let Ok(rd) = fs::read_dir(&d) else { continue };
        dirs += 1;
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                _ => files += 1,
            }
        }
    }
    (files, dirs)
}

/// One thing a sweep removed, printed as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swept {
    /// A test root, removed.
    Root {
        /// Where it was.
        root: PathBuf,
        /// Why it had to go ("its run, pid 123, is gone").
        why: String,
        /// Network namespaces that were pinned under it.
        namespaces: usize,
        /// Mounts taken off.
        mounts: usize,
        /// Files deleted.
        files: usize,
        /// Directories deleted, the root included.
        dirs: usize,
        /// Why it could not be deleted, if it could not.
        failed: Option<String>,
    },
    /// A process of a test root, ended with SIGKILL.
    Process {
        /// Its pid.
        pid: i32,
        /// Its command line.
        command: String,
        /// The root it belonged to.
        root: PathBuf,
    },
}

impl fmt::Display for Swept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root {
                root,
                why,
                namespaces,
                mounts,
                files,
                dirs,
                failed,
            } => {
                write!(
                    f,
                    "test root {} ({why}): {namespaces} namespace mount(s) and {} other mount(s) taken off, \
                     {files} file(s) and {dirs} director(ies) ",
                    root.display(),
                    mounts - namespaces,
                )?;
                match failed {
                    None => write!(f, "removed"),
                    Some(e) => write!(f, "not all removed: {e}"),
                }
            }
            Self::Process { pid, command, root } => {
                write!(f, "process {pid} of {} ended: {command}", root.display())
            }
        }
    }
}

/// What a sweep removed, one line per run it was left by: "removed 3
/// namespace mounts, 5 files, 2 directories and 1 process left by a
/// killed run (pid 1234)".
pub fn summary(items: &[Swept]) -> Vec<String> {
    // Per owner pid: namespace mounts, other mounts, files, directories,
    // processes, and what could not be removed.
    let mut runs: Vec<(i32, [usize; 5], Vec<String>)> = Vec::new();
    for item in items {
        let root = match item {
            Swept::Root { root, .. } | Swept::Process { root, .. } => root,
        };
        let pid = root
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(owner)
            .unwrap_or_default();
        let at = match runs.iter().position(|r| r.0 == pid) {
            Some(at) => at,
            None => {
                runs.push((pid, [0; 5], Vec::new()));
                runs.len() - 1
            }
        };
        let run = &mut runs[at];
        match item {
            Swept::Root {
                root,
                namespaces,
                mounts,
                files,
                dirs,
                failed,
                ..
            } => {
                run.1[0] += namespaces;
                run.1[1] += mounts - namespaces;
                run.1[2] += files;
                run.1[3] += dirs;
                if let Some(e) = failed {
                    run.2.push(format!("{}: {e}", root.display()));
                }
            }
            Swept::Process { .. } => run.1[4] += 1,
        }
    }
    runs.iter()
        .map(|(pid, n, failed)| {
            let kinds: Vec<String> = [
                ("namespace mount", "namespace mounts"),
                ("other mount", "other mounts"),
                ("file", "files"),
                ("directory", "directories"),
                ("process", "processes"),
            ]
            .iter()
            .zip(n)
            .filter(|(_, n)| **n > 0)
            .map(|((one, many), n)| format!("{n} {}", if *n == 1 { one } else { many }))
            .collect();
            let what = match kinds.split_last() {
                None => "nothing".to_owned(),
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            };
            let mut line = format!("removed {what} left by a killed run (pid {pid})");
            if !failed.is_empty() {
                line.push_str(&format!("; could not remove {}", failed.join(", ")));
            }
            line
        })
        .collect()
}

/// Removes what runs killed outright left (see the module docs), in the
/// temporary directory: every stale root, and every process still tied to
/// a root of a dead owner even after that root is gone.
pub fn sweep() -> Vec<Swept> {
    sweep_in(&std::env::temp_dir())
}

/// [`sweep`] in `tmp`. Only roots directly under it count: a root inside
/// another is its owner's business (a test that runs runs of its own).
pub fn sweep_in(tmp: &Path) -> Vec<Swept> {
    let mut out = Vec::new();
    for root in stale_roots_in(tmp) {
        let pid = root
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(owner)
            .unwrap_or_default();
        out.extend(remove_root(&root).report(&format!("its run, pid {pid}, is gone")));
    }
    // Processes whose root is gone, found by its name.
    let all = procs::all();
    let dead_root = |text: &str| -> Option<PathBuf> {
        let prefix = format!("{}/{ROOT_PREFIX}", tmp.display());
        text.match_indices(&prefix).find_map(|(at, _)| {
            let name: String = text[at + prefix.len() - ROOT_PREFIX.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect();
            owner(&name).filter(|pid| !alive(*pid)).map(|_| tmp.join(&name))
        })
    };
    let stray = with_descendants(&all, |p| {
        p.marker.as_deref().and_then(dead_root).is_some() || p.args.iter().any(|a| dead_root(a).is_some())
    });
    for p in stray {
        let root = p
            .marker
            .as_deref()
            .and_then(dead_root)
            .or_else(|| p.args.iter().find_map(|a| dead_root(a)))
            .unwrap_or_default();
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        out.push(Swept::Process {
            pid: p.pid,
            command: p.command(),
            root,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_names_its_owner() {
        assert_eq!(owner("berth-test-123-4"), Some(123));
        assert_eq!(owner("berth-test-123-docker-dns"), Some(123));
        assert_eq!(owner("berth-test--4"), None);
        assert_eq!(owner("berth-tests"), None);
        assert_eq!(
            root_of(Path::new("/tmp/berth-test-1-2/netns/host")),
            Some(PathBuf::from("/tmp/berth-test-1-2"))
        );
        assert_eq!(
            root_of(Path::new("/tmp/berth-test-1-2/berth-test-3-0/netns/host")),
            Some(PathBuf::from("/tmp/berth-test-1-2/berth-test-3-0"))
        );
        assert_eq!(root_of(Path::new("/proc/1/ns/net")), None);
    }

    #[test]
    fn lines_say_what_went() {
        let r = Removal {
            root: "/tmp/berth-test-9-0".into(),
            killed: vec![(42, "etcd --data-dir /tmp/berth-test-9-0/etcd1".into())],
            namespaces: 3,
            mounts: 4,
            files: 5,
            dirs: 2,
            existed: true,
            failed: None,
        };
        let lines: Vec<String> = r
            .report("its run, pid 9, is gone")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "process 42 of /tmp/berth-test-9-0 ended: etcd --data-dir /tmp/berth-test-9-0/etcd1",
                "test root /tmp/berth-test-9-0 (its run, pid 9, is gone): 3 namespace mount(s) and 1 other mount(s) \
                 taken off, 5 file(s) and 2 director(ies) removed",
            ]
        );
        assert_eq!(
            summary(&r.report("x")),
            [
                "removed 3 namespace mounts, 1 other mount, 5 files, 2 directories and 1 process \
              left by a killed run (pid 9)"
            ]
        );
        assert!(Removal::default().report("x").is_empty());
    }
}
