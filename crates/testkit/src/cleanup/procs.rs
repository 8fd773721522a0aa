//! The machine's processes as `/proc` shows them, and which of them belong
//! to a test root (see the module docs of [`crate::cleanup`]).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::ROOT_ENV;

/// One process, read from `/proc/PID`.
#[derive(Clone, Debug)]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    /// `Z` for a zombie (dead, not yet reaped).
    pub(crate) state: char,
    /// The inode of its network namespace.
    pub(crate) netns: Option<u64>,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// The value of [`ROOT_ENV`] in its environment.
    pub(crate) marker: Option<String>,
}

impl Proc {
    fn read(pid: i32) -> Option<Self> {
        let dir = Path::new("/proc").join(pid.to_string());
        let stat = fs::read_to_string(dir.join("stat")).ok()?;
        // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let mut f = after.split_whitespace();
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        let args = fs::read(dir.join("cmdline"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let prefix = format!("{ROOT_ENV}=");
        let marker = fs::read(dir.join("environ"))
            .unwrap_or_default()
            .split(|b| *b == 0)
            .find_map(|v| {
                String::from_utf8_lossy(v)
                    .strip_prefix(&prefix)
                    .map(str::to_owned)
            });
        Some(Self {
            pid,
            ppid,
            state,
            netns: fs::metadata(dir.join("ns/net")).ok().map(|m| m.ino()),
            args,
            marker,
        })
    }

    /// Whether it has exited (a zombie waits only to be reaped).
    pub(crate) fn dead(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }

    /// Its command line, shortened for a report.
    pub(crate) fn command(&self) -> String {
        let c = self.args.join(" ");
        if c.chars().count() > 160 {
            format!("{}…", c.chars().take(160).collect::<String>())
        } else if c.is_empty() {
            fs::read_to_string(format!("/proc/{}/comm", self.pid))
                .map(|s| format!("[{}]", s.trim()))
                .unwrap_or_default()
        } else {
            c
        }
    }

    /// Whether an argument names `root`: the root itself or a path under it
    /// (`--data-dir=ROOT/etcd1`, `unix://ROOT/berth.sock`), never another
    /// root that only starts like it (`ROOT0`).
    pub(crate) fn names(&self, root: &str) -> bool {
        self.args.iter().any(|a| names_root(a, root))
    }
}

/// Whether `text` names `root` as a path: an occurrence not followed by a
/// character that would make it a longer name.
pub(crate) fn names_root(text: &str, root: &str) -> bool {
    text.match_indices(root).any(|(at, _)| {
        text[at + root.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
    })
}

/// Every process of the machine (those that vanish while being read are
/// left out).
pub(crate) fn all() -> Vec<Proc> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Proc::read)
        .collect()
}

/// This process and its ancestors: never ended by a cleanup, whatever
/// they name.
fn me_and_ancestors(procs: &[Proc]) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let mut pid = std::process::id() as i32;
    // Bounded: a chain of parents is never longer than the table.
    for _ in 0..=procs.len() {
        if pid <= 1 || !out.insert(pid) {
            break;
        }
        match procs.iter().find(|p| p.pid == pid) {
            Some(p) => pid = p.ppid,
            None => break,
        }
    }
    out
}

/// The live processes for which `chosen` says yes, and every descendant of
/// theirs, except this process and its ancestors.
pub(crate) fn with_descendants(procs: &[Proc], chosen: impl Fn(&Proc) -> bool) -> Vec<Proc> {
    let spared = me_and_ancestors(procs);
    let mut set: BTreeSet<i32> = procs
        .iter()
        .filter(|p| !spared.contains(&p.pid) && chosen(p))
        .map(|p| p.pid)
        .collect();
    // Bounded: each round adds at least one process or stops.
    for _ in 0..procs.len() {
        let more: Vec<i32> = procs
            .iter()
            .filter(|p| set.contains(&p.ppid) && !set.contains(&p.pid) && !spared.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if more.is_empty() {
            break;
        }
        set.extend(more);
    }
    procs
        .iter()
        .filter(|p| set.contains(&p.pid) && !p.dead())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_is_named_only_as_itself() {
        let root = "/tmp/berth-test-12-1";
        assert!(names_root("/tmp/berth-test-12-1", root));
        assert!(names_root("--data-dir=/tmp/berth-test-12-1/etcd1", root));
        assert!(names_root("unix:///tmp/berth-test-12-1/berth.sock", root));
        assert!(names_root("a=/tmp/berth-test-12-1,b", root));
        assert!(!names_root("/tmp/berth-test-12-10/etcd1", root));
        assert!(!names_root("/tmp/berth-test-12-1-docker-x", root));
        assert!(!names_root("/tmp/berth-test-12-1.old", root));
    }

    #[test]
    fn this_process_reads_as_itself_and_is_spared() {
        let procs = all();
        let me = procs
            .iter()
            .find(|p| p.pid == std::process::id() as i32)
            .expect("this process is in /proc");
        assert!(!me.dead());
        assert!(me.netns.is_some());
        let chosen = with_descendants(&procs, |p| p.pid == me.pid || p.pid == me.ppid);
        assert!(chosen.is_empty(), "{chosen:?}");
    }
}
