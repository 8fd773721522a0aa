//! What a dockerd of the bench's may change in the machine, noted before
//! it starts ([`Machine::snapshot`]: links, `DOCKER*` iptables chains,
//! docker-proxy processes, a few sysctls and directories) and put back
//! after it stopped ([`Machine::restore`]); and the mount point a dockerd
//! in a namespace needs in the machine ([`SWARM_FILES`]).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};

/// docker-proxy, dockerd's userland proxy (Debian's path).
pub(super) const PROXY: &str = "/usr/sbin/docker-proxy";

/// Sysctls dockerd may change in the machine.
const SYSCTLS: [&str; 3] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];
/// Where swarm mode writes whatever `--data-root` says; a dockerd in a
/// namespace gets a tmpfs there. The mount point must exist in the
/// machine: the bench makes it when it is absent and removes it when the
/// last of its dockerds that use it is gone.
pub(super) const SWARM_FILES: &str = "/var/lib/docker";
/// How many of the bench's dockerds use [`SWARM_FILES`], and whether the
/// bench made it.
static SWARM_FILES_USE: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Counts one more dockerd using [`SWARM_FILES`], making it when absent;
/// whether the bench made it.
pub(super) fn hold_swarm_files() -> Result<bool> {
    let mut used = SWARM_FILES_USE.lock().unwrap_or_else(PoisonError::into_inner);
    if used.0 == 0 && !Path::new(SWARM_FILES).exists() {
        fs::create_dir(SWARM_FILES).with_context(|| format!("making the mount point {SWARM_FILES}"))?;
        used.1 = true;
    }
    used.0 += 1;
    Ok(used.1)
}

/// Counts one dockerd less using [`SWARM_FILES`]; the last one removes it
/// when the bench made it (empty in the machine: its tmpfs were in the
/// dockerds' own mount namespaces).
pub(super) fn release_swarm_files(notes: &mut Vec<String>) {
    let mut used = SWARM_FILES_USE.lock().unwrap_or_else(PoisonError::into_inner);
    used.0 = used.0.saturating_sub(1);
    if used.0 == 0 && used.1 {
        used.1 = false;
        if let Err(e) = fs::remove_dir(SWARM_FILES) {
            notes.push(format!(
                "LEFT BEHIND: {SWARM_FILES}, the mount point the bench made ({e})"
            ));
        }
    }
}

/// Directories dockerd and containerd make whatever their roots.
pub(super) const DIRS: [&str; 5] = [
    "/etc/docker",
    "/run/docker",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
];

/// What the machine had before dockerd started.
#[derive(Clone)]
pub(super) struct Machine {
    pub(super) links: Vec<String>,
    /// `(table, chain)` for every chain named DOCKER*.
    chains: Vec<(&'static str, String)>,
    pub(super) proxies: Vec<i32>,
    sysctls: Vec<(&'static str, String)>,
    dirs: Vec<(&'static str, bool)>,
    /// Another dockerd or containerd was running: directories they share
    /// are theirs.
    others: bool,
}

/// `iptables -t TABLE -S`, or nothing when iptables cannot say.
fn iptables_rules(table: &str) -> String {
    Command::new("iptables")
        .args(["-t", table, "-S"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Every `DOCKER*` chain of the machine's filter and nat tables.
fn docker_chains() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for table in ["filter", "nat"] {
        for l in iptables_rules(table).lines() {
            if let Some(c) = l.strip_prefix("-N ")
                && c.starts_with("DOCKER")
            {
                out.push((table, c.to_owned()));
            }
        }
    }
    out
}

/// Processes whose command line contains `needle`, except ourselves.
pub(super) fn processes_with(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let c = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains(needle).then(|| (pid, c.trim().to_owned()))
        })
        .collect()
}

/// Every docker-proxy process of the machine: pid and command line.
pub(super) fn proxies() -> Vec<(i32, String)> {
    processes_with(PROXY)
        .into_iter()
        .filter(|(_, c)| c.starts_with(PROXY))
        .collect()
}

/// Whether a process runs the program `name` (its first word's file name).
pub(super) fn running(name: &str) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        fs::read(e.path().join("cmdline")).is_ok_and(|c| {
            let first = c.split(|b| *b == 0).next().unwrap_or_default();
            Path::new(&*String::from_utf8_lossy(first))
                .file_name()
                .is_some_and(|f| f == name)
        })
    })
}

impl Machine {
    pub(super) fn snapshot() -> Self {
        Self {
            links: crate::test::machine_links(),
            chains: docker_chains(),
            proxies: proxies().into_iter().map(|(p, _)| p).collect(),
            sysctls: SYSCTLS
                .iter()
                .map(|p| (*p, fs::read_to_string(p).unwrap_or_default()))
                .collect(),
            dirs: DIRS.iter().map(|d| (*d, Path::new(d).exists())).collect(),
            others: running("dockerd") || running("containerd"),
        }
    }

    /// The directories of [`DIRS`] the machine did not have.
    pub(super) fn absent(&self) -> Vec<&'static str> {
        self.dirs
            .iter()
            .filter(|(_, was)| !was)
            .map(|(d, _)| *d)
            .collect()
    }

    /// Puts the machine back as it was, as far as dockerd could have
    /// changed it: new links (`bridge` being the network's), `DOCKER*`
    /// chains, sysctls, directories. Says what it found and did.
    pub(super) fn restore(&self, bridge: Option<&str>, notes: &mut Vec<String>) {
        self.clean_links(bridge, notes);
        self.clean_chains(notes);
        for (path, was) in &self.sysctls {
            let now = fs::read_to_string(path).unwrap_or_default();
            if &now != was {
                let restored = fs::write(path, was.trim()).is_ok();
                notes.push(format!(
                    "dockerd changed {path} from {} to {}: {}",
                    was.trim(),
                    now.trim(),
                    if restored { "restored" } else { "COULD NOT RESTORE" }
                ));
            }
        }
        for (d, was) in &self.dirs {
            if *was || !Path::new(d).exists() {
                continue;
            }
            if self.others {
                notes.push(format!(
                    "{d} appeared but another dockerd or containerd runs here: left alone"
                ));
            } else if fs::remove_dir_all(d).is_ok() {
                notes.push(format!("removed {d}, which dockerd or containerd made"));
            } else {
                notes.push(format!("LEFT BEHIND: {d} (could not remove it)"));
            }
        }
    }

    /// Deletes bridges (`bridge`, Docker's `br-*`) and veths that appeared
    /// while dockerd ran; reports any other new link without touching it.
    fn clean_links(&self, bridge: Option<&str>, notes: &mut Vec<String>) {
        for l in crate::test::machine_links() {
            if self.links.contains(&l) {
                continue;
            }
            if bridge == Some(l.as_str()) || l.starts_with("br-") || l.starts_with("veth") {
                let ok = Command::new("ip")
                    .args(["link", "del", &l])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                notes.push(format!(
                    "link {l} was left in the machine's namespace: {}",
                    if ok { "deleted" } else { "COULD NOT DELETE" }
                ));
            } else {
                notes.push(format!(
                    "LEFT BEHIND?: link {l} appeared in the machine's namespace while dockerd ran (not touched)"
                ));
            }
        }
    }

    /// Removes `DOCKER*` iptables chains that were not there before, and
    /// the rules that jump to them.
    fn clean_chains(&self, notes: &mut Vec<String>) {
        let new: Vec<(&str, String)> = docker_chains()
            .into_iter()
            .filter(|c| !self.chains.contains(c))
            .collect();
        if new.is_empty() {
            if !self.chains.is_empty() {
                notes.push(format!(
                    "iptables chains {} were there before the bench: left alone",
                    self.chains
                        .iter()
                        .map(|(t, c)| format!("{t}/{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            return;
        }
        for table in ["filter", "nat"] {
            let ours: Vec<&str> = new
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, c)| c.as_str())
                .collect();
            if ours.is_empty() {
                continue;
            }
            for rule in iptables_rules(table).lines() {
                let Some(spec) = rule.strip_prefix("-A ") else {
                    continue;
                };
                let jumps = spec
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .windows(2)
                    .any(|w| (w[0] == "-j" || w[0] == "-g") && ours.contains(&w[1]));
                let chain = spec.split_whitespace().next().unwrap_or_default();
                if jumps && !ours.contains(&chain) {
                    let mut args = vec!["-t", table, "-D"];
                    args.extend(spec.split_whitespace());
                    let _ = Command::new("iptables").args(&args).status();
                }
            }
            for c in &ours {
                let _ = Command::new("iptables").args(["-t", table, "-F", c]).status();
            }
            for c in &ours {
                let _ = Command::new("iptables").args(["-t", table, "-X", c]).status();
            }
        }
        let left: Vec<String> = docker_chains()
            .into_iter()
            .filter(|c| !self.chains.contains(c))
            .map(|(t, c)| format!("{t}/{c}"))
            .collect();
        notes.push(format!(
            "dockerd left iptables chains {}: {}",
            new.iter()
                .map(|(t, c)| format!("{t}/{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            if left.is_empty() {
                "flushed and deleted, with the rules jumping to them".to_owned()
            } else {
                format!("COULD NOT DELETE {}", left.join(", "))
            }
        ));
    }
}
