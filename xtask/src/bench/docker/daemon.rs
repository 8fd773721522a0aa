//! A dockerd of the bench's own, as harmless as a daemon in the machine's
//! namespace can be: its data, exec root, socket and pid file in a test
//! root of its own; no default bridge (`--bridge none`); no iptables rules,
//! no IP forwarding, no masquerading in the machine; one user-defined
//! network on a subnet nothing here uses, with a bridge name of its own;
//! busybox-static imported as its one image.
//!
//! Before it starts, [`Dockerd::start`] notes what the machine has (links,
//! `DOCKER*` iptables chains, docker-proxy processes, a few sysctls and
//! directories); [`Dockerd::shut`] removes the containers, the network and
//! the image, stops dockerd by its pid, and removes what was not there
//! before, saying so. The DNS bench and the ports bench both use it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{BUSYBOX, DOCKER, DOCKERD};

/// Its image.
pub const IMAGE: &str = "berth-bench-busybox:latest";
/// docker-proxy, dockerd's userland proxy (Debian's path).
const PROXY: &str = "/usr/sbin/docker-proxy";

/// How long dockerd gets to answer, and to stop.
const START_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Lines of dockerd's log shown when it fails.
const LOG_TAIL: usize = 15;

/// Sysctls dockerd may change in the machine.
const SYSCTLS: [&str; 3] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
];
/// Directories dockerd and containerd make whatever their roots.
const DIRS: [&str; 5] = [
    "/etc/docker",
    "/run/docker",
    "/run/containerd",
    "/var/lib/docker",
    "/var/lib/containerd",
];

/// The one network the bench's dockerd gets: a /24 nothing here uses.
pub struct Net {
    pub name: &'static str,
    /// Its bridge's link name (at most 15 bytes).
    pub bridge: &'static str,
    /// `A.B.C.0/24`.
    pub subnet: &'static str,
    pub gateway: &'static str,
    /// Whether ports are published through docker-proxy processes (with
    /// iptables off, the only way dockerd publishes them).
    pub proxy: bool,
}

impl Net {
    /// `A.B.C.`: what every address of the /24 starts with.
    fn prefix(&self) -> &str {
        let net = self.subnet.split('/').next().unwrap_or_default();
        net.rsplit_once('.').map_or(net, |(p, _)| &net[..p.len() + 1])
    }
}

/// What the machine had before dockerd started.
struct Machine {
    links: Vec<String>,
    /// `(table, chain)` for every chain named DOCKER*.
    chains: Vec<(&'static str, String)>,
    proxies: Vec<i32>,
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
fn processes_with(needle: &str) -> Vec<(i32, String)> {
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
fn proxies() -> Vec<(i32, String)> {
    processes_with(PROXY)
        .into_iter()
        .filter(|(_, c)| c.starts_with(PROXY))
        .collect()
}

/// Whether a process runs the program `name` (its first word's file name).
fn running(name: &str) -> bool {
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
    fn snapshot() -> Self {
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
}

/// A running dockerd of the bench's with its network and image. Dropping
/// it shuts it down like [`Dockerd::shut`], printing the notes.
pub struct Dockerd {
    dir: PathBuf,
    daemon: Child,
    before: Machine,
    net: Net,
    closed: bool,
}

impl Dockerd {
    /// Starts dockerd, imports the image (busybox with `applets`) and
    /// creates `net`. On failure everything it made is gone again; the
    /// error comes with what the cleanup found.
    pub fn start(net: Net, applets: &[&str]) -> std::result::Result<Self, (anyhow::Error, Vec<String>)> {
        let before = Machine::snapshot();
        let routes = Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if let Some(r) = routes.lines().find(|l| l.contains(net.prefix())) {
            return Err((
                anyhow!("the machine already routes {}: {r}", net.subnet),
                Vec::new(),
            ));
        }
        if before.links.iter().any(|l| l == net.bridge) {
            return Err((
                anyhow!("the machine already has a link {}", net.bridge),
                Vec::new(),
            ));
        }
        let dir = std::env::temp_dir().join(format!(
            "{}{}-docker-{}",
            berth_testkit::ROOT_PREFIX,
            std::process::id(),
            net.name
        ));
        let daemon = match spawn(&dir, net.proxy) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err((e, Vec::new()));
            }
        };
        let mut d = Self {
            dir,
            daemon,
            before,
            net,
            closed: false,
        };
        match d.setup(applets) {
            Ok(()) => Ok(d),
            Err(e) => {
                let notes = d.shut();
                Err((e, notes))
            }
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.contains("module=grpc")).collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ")
    }

    /// A `docker -H unix://… ARGS` command, the client's config kept in the
    /// test root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("client"));
        c
    }

    /// Runs `docker ARGS` (bounded in time); its stdout.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        let what = format!("docker {}", args.join(" "));
        Ok(super::super::timed(&mut self.cmd(args), "", &what)?.1)
    }

    pub fn inspect(&self, name: &str, format: &str) -> Result<String> {
        Ok(self.docker(&["inspect", "-f", format, name])?.trim().to_owned())
    }

    /// The docker-proxy processes this dockerd started.
    pub fn proxies(&self) -> usize {
        let ppid = format!("PPid:\t{}", self.daemon.id());
        proxies()
            .into_iter()
            .filter(|(p, _)| {
                fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| s.lines().any(|l| l == ppid))
            })
            .count()
    }

    fn setup(&mut self, applets: &[&str]) -> Result<()> {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(st)) = self.daemon.try_wait() {
                bail!("dockerd exited ({st}); its log:\n  {}", self.log_tail());
            }
            let ok = self
                .cmd(&["version", "--format", "{{.Server.Version}}"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer within {} s; its log:\n  {}",
                    START_WAIT.as_secs(),
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        let img = self.dir.join("image");
        fs::create_dir_all(img.join("bin")).context("making the image's tree")?;
        fs::copy(BUSYBOX, img.join("bin/busybox")).context("copying busybox into the image")?;
        for applet in applets {
            std::os::unix::fs::symlink("busybox", img.join("bin").join(applet))
                .context("linking a busybox applet")?;
        }
        let tar = self.dir.join("image.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&img)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .context("running tar")?;
        ensure!(st.success(), "tar of the image failed");
        self.docker(&["import", &tar.to_string_lossy(), IMAGE])?;
        self.docker(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            self.net.subnet,
            "--gateway",
            self.net.gateway,
            "-o",
            &format!("com.docker.network.bridge.name={}", self.net.bridge),
            self.net.name,
        ])?;
        Ok(())
    }

    /// Removes what the bench made and stops dockerd; says what it found
    /// and did beyond the plan. Idempotent.
    pub fn shut(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.closed {
            return notes;
        }
        self.closed = true;
        let mut pids: Vec<i32> = Vec::new();
        if matches!(self.daemon.try_wait(), Ok(None)) {
            let ids = self.docker(&["ps", "-aq"]).unwrap_or_default();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            for id in &ids {
                if let Ok(p) = self.inspect(id, "{{.State.Pid}}") {
                    pids.extend(p.parse::<i32>().ok().filter(|p| *p > 0));
                }
            }
            // One at a time: each is bounded in time on its own.
            for id in &ids {
                if let Err(e) = self.docker(&["rm", "-f", id]) {
                    notes.push(format!("docker rm -f {id} FAILED: {e:#}"));
                }
            }
            for args in [["network", "rm", self.net.name], ["image", "rm", IMAGE]] {
                if let Err(e) = self.docker(&args) {
                    let e = format!("{e:#}");
                    if !e.contains("No such") && !e.contains("not found") {
                        notes.push(format!("docker {} FAILED: {e}", args.join(" ")));
                    }
                }
            }
            let pid = Pid::from_raw(self.daemon.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_WAIT;
            while matches!(self.daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if matches!(self.daemon.try_wait(), Ok(None)) {
                notes.push(format!(
                    "dockerd (pid {pid}) did not stop within {} s of SIGTERM: killed",
                    STOP_WAIT.as_secs()
                ));
                let _ = self.daemon.kill();
                let _ = self.daemon.wait();
            }
        }
        // containerd and its shims name the test root on their command line.
        let dir = self.dir.to_string_lossy().into_owned();
        for (pid, cmd) in processes_with(&dir) {
            notes.push(format!("LEFT RUNNING, killed: pid {pid} {cmd}"));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // docker-proxy names the container's address, one of the network's.
        let ours = format!("-container-ip {}", self.net.prefix());
        for (pid, cmd) in proxies() {
            if !self.before.proxies.contains(&pid) && cmd.contains(&ours) {
                notes.push(format!("LEFT RUNNING, killed: pid {pid} {cmd}"));
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for pid in pids {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmd.starts_with(b"sleep\x003600") {
                notes.push(format!("LEFT RUNNING, killed: a container's process, pid {pid}"));
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        thread::sleep(Duration::from_millis(50));
        berth_testkit::remove_root(&self.dir);
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let left = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .count();
        if left > 0 || self.dir.exists() {
            notes.push(format!(
                "LEFT BEHIND: {} ({left} mounts under it)",
                self.dir.display()
            ));
        }
        self.clean_links(&mut notes);
        self.clean_chains(&mut notes);
        for (path, was) in &self.before.sysctls {
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
        for (d, was) in &self.before.dirs {
            if *was || !Path::new(d).exists() {
                continue;
            }
            if self.before.others {
                notes.push(format!(
                    "{d} appeared but another dockerd or containerd runs here: left alone"
                ));
            } else if fs::remove_dir_all(d).is_ok() {
                notes.push(format!("removed {d}, which dockerd or containerd made"));
            } else {
                notes.push(format!("LEFT BEHIND: {d} (could not remove it)"));
            }
        }
        notes
    }

    /// Deletes bridges and veths that appeared while dockerd ran; reports
    /// any other new link without touching it.
    fn clean_links(&self, notes: &mut Vec<String>) {
        for l in crate::test::machine_links() {
            if self.before.links.contains(&l) {
                continue;
            }
            if l == self.net.bridge || l.starts_with("br-") || l.starts_with("veth") {
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
            .filter(|c| !self.before.chains.contains(c))
            .collect();
        if new.is_empty() {
            if !self.before.chains.is_empty() {
                notes.push(format!(
                    "iptables chains {} were there before the bench: left alone",
                    self.before
                        .chains
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
            .filter(|c| !self.before.chains.contains(c))
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

impl Drop for Dockerd {
    fn drop(&mut self) {
        for n in self.shut() {
            eprintln!("Docker cleanup: {n}");
        }
    }
}

/// Starts dockerd with everything of its own under `dir`; with `proxy`,
/// published ports go through docker-proxy (iptables stays off either way).
fn spawn(dir: &Path, proxy: bool) -> Result<Child> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("client")).with_context(|| format!("creating {}", dir.display()))?;
    // Its trust key would go to /etc/docker/key.json.
    let conf = dir.join("daemon.json");
    fs::write(
        &conf,
        serde_json::json!({ "deprecated-key-path": dir.join("key.json") }).to_string(),
    )
    .context("writing daemon.json")?;
    let log = fs::File::create(dir.join("dockerd.log")).context("creating dockerd's log")?;
    Command::new(DOCKERD)
        .arg("--config-file")
        .arg(&conf)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
        ])
        .arg(format!("--userland-proxy={proxy}"))
        .arg(format!("--userland-proxy-path={PROXY}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_gives_its_prefix() {
        let net = Net {
            name: "n",
            bridge: "b",
            subnet: "10.213.0.0/24",
            gateway: "10.213.0.1",
            proxy: false,
        };
        assert_eq!(net.prefix(), "10.213.0.");
    }
}
