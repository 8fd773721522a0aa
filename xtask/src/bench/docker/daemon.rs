//! A dockerd of the bench's own ([`Dockerd::start_in`]), never in the
//! machine's network namespace: inside a network namespace of the bench's,
//! in a mount namespace of its own (`unshare -m --propagation private`)
//! with a tmpfs on `/run` and on `/var/lib/docker`, so that what it writes
//! there whatever its roots say (`/run/docker`, `/run/containerd`, swarm
//! mode's `/var/lib/docker/network/files`) never lands in the machine, and
//! it cannot reach the machine's D-Bus. Its iptables rules, forwarding and
//! bridges stay in its namespace, so it runs with Docker's defaults there
//! (but no default bridge). The DNS, ports, teardown and dataplane benches
//! run one; the overlay bench runs two as a swarm (`swarm.rs`).
//!
//! Its data, exec root, socket and pid file are in a test root
//! of its own, and busybox-static is imported as its one image. Before it
//! starts, it notes what the machine has (`machine.rs`); [`Dockerd::shut`]
//! removes the containers, the network and the image, stops dockerd by its
//! pid, and puts back what was not there before, saying so. A bench that
//! is interrupted or killed does the same through `leftovers.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::leftovers;
use super::machine::{Machine, SWARM_FILES, hold_swarm_files, processes_with, proxies, release_swarm_files};
use super::{BUSYBOX, DOCKER, DOCKERD};

/// Its image.
pub const IMAGE: &str = "berth-bench-busybox:latest";

/// How long dockerd gets to answer, and to stop.
const START_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(20);
/// Lines of dockerd's log shown when it fails.
const LOG_TAIL: usize = 15;

/// The one network the bench's dockerd gets: a /24 nothing here uses.
pub struct Net {
    pub name: &'static str,
    /// Its bridge's link name (at most 15 bytes).
    pub bridge: &'static str,
    /// `A.B.C.0/24`.
    pub subnet: &'static str,
    pub gateway: &'static str,
}

impl Net {
    /// `A.B.C.`: what every address of the /24 starts with.
    fn prefix(&self) -> &str {
        let net = self.subnet.split('/').next().unwrap_or_default();
        net.rsplit_once('.').map_or(net, |(p, _)| &net[..p.len() + 1])
    }
}

/// A running dockerd of the bench's with its image. Dropping it shuts it down like [`Dockerd::shut`],
/// printing the notes.
pub struct Dockerd {
    dir: PathBuf,
    daemon: Child,
    before: Machine,
    net: Option<Net>,
    /// It runs in a namespace and holds a use of [`SWARM_FILES`].
    in_netns: bool,
    closed: bool,
    /// Tears it down if the bench gets SIGINT or SIGTERM
    /// ([`leftovers::teardown`]); dropped when it shuts down normally.
    on_signal: Option<berth_testkit::cleanup::Hook>,
}

/// What starting a dockerd gives: it, or why not with what the cleanup
/// found.
type Started = std::result::Result<Dockerd, (anyhow::Error, Vec<String>)>;

impl Dockerd {
    /// Starts dockerd inside the network namespace pinned at `ns` (see the
    /// module docs) and imports the image (busybox with `applets`); `name`
    /// names its test root. On failure everything it made is gone again;
    /// the error comes with what the cleanup found.
    pub fn start_in(ns: &Path, name: &str, applets: &[&str]) -> Started {
        Self::start_in_with(ns, name, applets, &[])
    }

    /// As [`Dockerd::start_in`], with more arguments for dockerd (the
    /// ports bench: `--iptables=false`, so that ports go through
    /// docker-proxy alone, as it measured them before).
    pub fn start_in_with(ns: &Path, name: &str, applets: &[&str], args: &[&str]) -> Started {
        let made = match hold_swarm_files() {
            Ok(made) => made,
            Err(e) => return Err((e, Vec::new())),
        };
        // After the mount point exists: it is not dockerd's to remove.
        let before = Machine::snapshot();
        let dir = Self::dir(name);
        let daemon = match spawn(&dir, Place::Netns(ns), args) {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                let mut notes = Vec::new();
                release_swarm_files(&mut notes);
                return Err((e, notes));
            }
        };
        leftovers::record(&dir, None, &before.absent(), made);
        Self::ready(dir, daemon, before, None, true, applets)
    }

    /// The test root of the dockerd called `name`.
    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "{}{}-docker-{name}",
            berth_testkit::ROOT_PREFIX,
            std::process::id(),
        ))
    }

    /// Waits for a dockerd just spawned and sets it up.
    fn ready(
        dir: PathBuf,
        daemon: Child,
        before: Machine,
        net: Option<Net>,
        in_netns: bool,
        applets: &[&str],
    ) -> Started {
        let on_signal = {
            let (dir, before) = (dir.clone(), before.clone());
            let bridge = net.as_ref().map(|n| n.bridge);
            berth_testkit::cleanup::on_interrupt(move || {
                let mut notes = leftovers::teardown(&dir, "the bench was interrupted");
                before.restore(bridge, &mut notes);
                if in_netns {
                    release_swarm_files(&mut notes);
                }
                for n in notes {
                    eprintln!("cleanup: {n}");
                }
            })
        };
        let mut d = Self {
            dir,
            daemon,
            before,
            net,
            in_netns,
            closed: false,
            on_signal: Some(on_signal),
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
        if let Some(net) = &self.net {
            self.docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--subnet",
                net.subnet,
                "--gateway",
                net.gateway,
                "-o",
                &format!("com.docker.network.bridge.name={}", net.bridge),
                net.name,
            ])?;
        }
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
        self.on_signal = None;
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
            let net = self.net.as_ref().map(|n| ["network", "rm", n.name]);
            for args in net.into_iter().chain([["image", "rm", IMAGE]]) {
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
        if let Some(net) = &self.net {
            let ours = format!("-container-ip {}", net.prefix());
            for (pid, cmd) in proxies() {
                if !self.before.proxies.contains(&pid) && cmd.contains(&ours) {
                    notes.push(format!("LEFT RUNNING, killed: pid {pid} {cmd}"));
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
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
        self.before
            .restore(self.net.as_ref().map(|n| n.bridge), &mut notes);
        if self.in_netns {
            release_swarm_files(&mut notes);
        }
        notes
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        for n in self.shut() {
            eprintln!("Docker cleanup: {n}");
        }
    }
}

/// Where a dockerd runs: the network namespace pinned at this path,
/// under mounts of its own (see the module docs), with Docker's defaults.
enum Place<'a> {
    Netns(&'a Path),
}

/// Starts dockerd at `place` with everything of its own under `dir`.
fn spawn(dir: &Path, place: Place<'_>, args: &[&str]) -> Result<Child> {
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
    let mut cmd = match place {
        Place::Netns(ns) => {
            // `unshare` execs the shell, which execs dockerd: one pid.
            let mounts =
                format!("mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs {SWARM_FILES} && exec \"$@\"");
            let mut c = Command::new("unshare");
            c.args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &mounts,
                "dockerd",
                DOCKERD,
            ]);
            berth_testkit::in_netns(&mut c, ns).context("opening dockerd's namespace")?;
            c
        }
    };
    cmd.arg("--config-file")
        .arg(&conf)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .arg("--bridge=none")
        .args(args);
    // Ties it and what it starts to its root, for every cleanup.
    cmd.env(berth_testkit::ROOT_ENV, dir)
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
        };
        assert_eq!(net.prefix(), "10.213.0.");
    }
}
