//! Docker's embedded DNS as a DNS bench peer: a dockerd of the bench's own.
//!
//! dockerd cannot live in a throwaway namespace, so this one runs in the
//! machine's, made as harmless as it goes: its data, exec root, socket and
//! pid file in a test root of its own; no default bridge (`--bridge
//! none`); no iptables rules, no IP forwarding, no masquerading in the
//! machine (its DNS still works: it redirects 127.0.0.11:53 with rules
//! inside each container's namespace); one user-defined network on a
//! subnet nothing here uses, with a bridge name of its own. Its image is
//! busybox-static, imported. The bench's upstream runs inside a container
//! of that network, and the containers are given it with `--dns`; the
//! container that asks has no default route, so whatever its resolver
//! forwards cannot leave the network.
//!
//! Before it starts, the bench notes what the machine has (links,
//! `DOCKER*` iptables chains, a few sysctls and directories); at the end it
//! removes the containers, the network and the image, stops dockerd by its
//! pid, and removes what was not there before, saying so.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use berth_testkit::dns::Upstream;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::dns::{self, CLIENT, Subject, TARGET};

/// Where Debian's `docker.io` package puts the daemon and its client (not
/// /usr/local/bin/docker, which may be another one).
pub const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
/// How to get it.
pub const INSTALL: &str = "apt-get install docker.io";
/// The image's one binary.
const BUSYBOX: &str = "/bin/busybox";

const NETWORK: &str = "berth-bench-dns";
const BRIDGE: &str = "berthdns0";
const SUBNET: &str = "10.213.0.0/24";
const GATEWAY: &str = "10.213.0.1";
/// The bench's upstream, in a container of its own on the network.
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 250);
const UPSTREAM_NAME: &str = "bench-upstream";
const IMAGE: &str = "berth-bench-busybox:latest";

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

/// Why Docker cannot be a subject here, if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new(DOCKERD).exists() || !Path::new(DOCKER).exists() {
        return Some(format!("not installed ({INSTALL})"));
    }
    if super::deb_version("busybox-static").is_none() || !Path::new(BUSYBOX).exists() {
        return Some(
            "not benched: its image is made from busybox-static, which is not installed \
             (apt-get install busybox-static)"
                .into(),
        );
    }
    None
}

/// What the machine had before dockerd started.
struct Machine {
    links: Vec<String>,
    /// `(table, chain)` for every chain named DOCKER*.
    chains: Vec<(&'static str, String)>,
    sysctls: Vec<(&'static str, String)>,
    dirs: Vec<(&'static str, bool)>,
    /// Another dockerd or containerd was running: directories they share
    /// are theirs.
    others: bool,
}

fn machine_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .collect()
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
            links: machine_links(),
            chains: docker_chains(),
            sysctls: SYSCTLS
                .iter()
                .map(|p| (*p, fs::read_to_string(p).unwrap_or_default()))
                .collect(),
            dirs: DIRS.iter().map(|d| (*d, Path::new(d).exists())).collect(),
            others: running("dockerd") || running("containerd"),
        }
    }
}

/// A running dockerd of the bench's, with [`CLIENT`], [`TARGET`] and the
/// upstream's container on network [`NETWORK`].
pub struct Docker {
    dir: PathBuf,
    daemon: Child,
    before: Machine,
    upstream: Option<Upstream>,
    client: PathBuf,
    target: IpAddr,
    closed: bool,
}

impl Docker {
    /// Starts dockerd and sets up the containers. On failure everything it
    /// made is gone again; the error comes with what the cleanup found.
    pub fn start() -> std::result::Result<Self, (anyhow::Error, Vec<String>)> {
        let before = Machine::snapshot();
        let routes = Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if let Some(r) = routes.lines().find(|l| l.contains("10.213.")) {
            return Err((anyhow!("the machine already routes 10.213.x: {r}"), Vec::new()));
        }
        if before.links.iter().any(|l| l == BRIDGE) {
            return Err((anyhow!("the machine already has a link {BRIDGE}"), Vec::new()));
        }
        let dir = std::env::temp_dir().join(format!(
            "{}{}-docker",
            berth_testkit::ROOT_PREFIX,
            std::process::id()
        ));
        let daemon = match spawn_dockerd(&dir) {
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
            upstream: None,
            client: PathBuf::new(),
            target: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            closed: false,
        };
        match d.setup() {
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
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("client"));
        c
    }

    /// Runs `docker ARGS` (bounded in time); its stdout.
    fn docker(&self, args: &[&str]) -> Result<String> {
        let what = format!("docker {}", args.join(" "));
        Ok(super::timed(&mut self.cmd(args), "", &what)?.1)
    }

    fn inspect(&self, name: &str, format: &str) -> Result<String> {
        Ok(self.docker(&["inspect", "-f", format, name])?.trim().to_owned())
    }

    fn setup(&mut self) -> Result<()> {
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
        // The image: busybox and the two applets the bench runs.
        let img = self.dir.join("image");
        fs::create_dir_all(img.join("bin")).context("making the image's tree")?;
        fs::copy(BUSYBOX, img.join("bin/busybox")).context("copying busybox into the image")?;
        for applet in ["sh", "sleep"] {
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
            SUBNET,
            "--gateway",
            GATEWAY,
            "-o",
            &format!("com.docker.network.bridge.name={BRIDGE}"),
            NETWORK,
        ])?;
        let up = UPSTREAM.to_string();
        self.docker(&[
            "run",
            "-d",
            "--name",
            UPSTREAM_NAME,
            "--network",
            NETWORK,
            "--ip",
            &up,
            IMAGE,
            "sleep",
            "3600",
        ])?;
        let up_ns = PathBuf::from(self.inspect(UPSTREAM_NAME, "{{.NetworkSettings.SandboxKey}}")?);
        self.upstream = Some(dns::upstream(&up_ns, SocketAddr::from((UPSTREAM, 53))));
        for name in [CLIENT, TARGET] {
            self.run(name)?;
        }
        let client = self.inspect(CLIENT, "{{.NetworkSettings.SandboxKey}}")?;
        ensure!(!client.is_empty(), "{CLIENT} has no SandboxKey");
        self.client = PathBuf::from(client);
        // Its upstream is on its own network: no other route is needed.
        let r = berth_testkit::run_in(&self.client, "ip", &["-4", "route", "del", "default"]);
        ensure!(
            r.code == 0,
            "removing {CLIENT}'s default route: {}",
            r.stderr.trim()
        );
        let ip = self.inspect(
            TARGET,
            &format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}"),
        )?;
        self.target = ip
            .parse()
            .with_context(|| format!("{TARGET}'s address: {ip:?}"))?;
        Ok(())
    }

    /// Removes what the bench made and stops dockerd; says what it found
    /// and did beyond the plan. Idempotent.
    fn shut(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.closed {
            return notes;
        }
        self.closed = true;
        self.upstream = None;
        let mut pids: Vec<i32> = Vec::new();
        if matches!(self.daemon.try_wait(), Ok(None)) {
            let ids = self.docker(&["ps", "-aq"]).unwrap_or_default();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            for id in &ids {
                if let Ok(p) = self.inspect(id, "{{.State.Pid}}") {
                    pids.extend(p.parse::<i32>().ok().filter(|p| *p > 0));
                }
            }
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(&ids);
                if let Err(e) = self.docker(&args) {
                    notes.push(format!("docker rm -f FAILED: {e:#}"));
                }
            }
            for args in [["network", "rm", NETWORK], ["image", "rm", IMAGE]] {
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
        for l in machine_links() {
            if self.before.links.contains(&l) {
                continue;
            }
            if l == BRIDGE || l.starts_with("br-") || l.starts_with("veth") {
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

/// Starts dockerd with everything of its own under `dir`.
fn spawn_dockerd(dir: &Path) -> Result<Child> {
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
            "--userland-proxy=false",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting dockerd")
}

impl Subject for Docker {
    fn client_ns(&self) -> &Path {
        &self.client
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 11], 53))
    }

    fn target_ip(&self) -> IpAddr {
        self.target
    }

    fn forwarding(&self) -> Result<(), String> {
        // Docker forwards to a container's --dns servers, from the
        // container's namespace; without a default route there, nothing
        // can leave the network even if it chose another server.
        let dns = self
            .inspect(CLIENT, "{{json .HostConfig.Dns}}")
            .map_err(|e| format!("{e:#}"))?;
        if dns != format!("[\"{UPSTREAM}\"]") {
            return Err(format!(
                "{CLIENT}'s --dns servers are {dns}, not only the bench's upstream"
            ));
        }
        for family in ["-4", "-6"] {
            let r = berth_testkit::run_in(&self.client, "ip", &[family, "route", "show", "default"]);
            if r.code != 0 || !r.stdout.trim().is_empty() {
                return Err(format!(
                    "{CLIENT} has a default route ({}{})",
                    r.stdout.trim(),
                    r.stderr.trim()
                ));
            }
        }
        Ok(())
    }

    fn upstream_seen(&self) -> usize {
        self.upstream.as_ref().map_or(0, Upstream::seen)
    }

    fn run(&mut self, name: &str) -> Result<Duration> {
        let up = UPSTREAM.to_string();
        let args = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            NETWORK,
            "--dns",
            &up,
            IMAGE,
            "sleep",
            "3600",
        ];
        let what = format!("docker run -d --name {name}");
        Ok(super::timed(&mut self.cmd(&args), "", &what)?.0)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.docker(&["rm", "-f", name]).map(drop)
    }

    fn close(mut self: Box<Self>) -> Vec<String> {
        self.shut()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for n in self.shut() {
            eprintln!("Docker cleanup: {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_name_fits_a_link_name() {
        assert!(BRIDGE.len() <= 15);
    }
}
