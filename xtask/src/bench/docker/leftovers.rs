//! A bench's dockerd when the bench does not end normally: interrupted
//! (SIGINT, SIGTERM: [`teardown`] from the hook [`Dockerd`] registers), or
//! killed outright (SIGKILL: [`sweep`], when the next `cargo xtask`
//! command starts).
//!
//! While the dockerd still answers on its socket, its containers and
//! networks are removed through its API and it is stopped by SIGTERM, so
//! that it takes its own links, mounts and rules with it. Then its test
//! root goes like any other ([`berth_testkit::remove_root`]: containerd,
//! the shims and their containers are tied to it by their command lines
//! and by descent). What the root alone cannot say, it holds in files
//! written when the dockerd started ([`record`]): `bridge` (its
//! network's bridge in the machine's namespace), `absent` (directories of
//! the machine's that did not exist before it), `swarm-files` (the bench
//! made the mount point [`SWARM_FILES`] for it); [`sweep`] puts those
//! back.
//!
//! [`Dockerd`]: super::Dockerd

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::machine::{DIRS, SWARM_FILES, running};
use super::{DOCKER, IMAGE};

/// How long a dockerd gets to stop.
const STOP_WAIT: Duration = Duration::from_secs(20);

/// Writes what [`sweep`] needs to know into the dockerd's root `dir`.
pub(super) fn record(dir: &Path, bridge: Option<&str>, absent: &[&str], made_swarm_files: bool) {
    if let Some(b) = bridge {
        let _ = fs::write(dir.join("bridge"), b);
    }
    let _ = fs::write(dir.join("absent"), absent.join("\n"));
    if made_swarm_files {
        let _ = fs::write(dir.join("swarm-files"), SWARM_FILES);
    }
}

/// `docker -H unix://DIR/docker.sock ARGS`, bounded in time; its stdout.
fn docker(dir: &Path, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new(DOCKER);
    cmd.arg("-H")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .args(args)
        .env("DOCKER_CONFIG", dir.join("client"));
    let what = format!("docker {}", args.join(" "));
    crate::bench::timed(&mut cmd, "", &what).ok().map(|(_, out)| out)
}

/// The pid of the dockerd of `dir`, when it runs: from its pid file, and
/// only if its command line names `dir` (a pid file can outlive its
/// process, and the pid be another's by now).
fn dockerd_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join("dockerd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = format!("{}/", dir.display());
    String::from_utf8_lossy(&cmd).contains(&needle).then_some(pid)
}

/// Stops the dockerd of `dir` through its API while it answers (its
/// containers, networks and image removed, then SIGTERM), then removes
/// its root with whatever is still tied to it. One line per thing done;
/// `why` says why it had to go.
pub(super) fn teardown(dir: &Path, why: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(pid) = dockerd_pid(dir) {
        let ids = docker(dir, &["ps", "-aq"]).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        for id in &ids {
            let _ = docker(dir, &["rm", "-f", id]);
        }
        let nets = docker(dir, &["network", "ls", "-q", "--filter", "type=custom"]).unwrap_or_default();
        let nets: Vec<&str> = nets.split_whitespace().collect();
        for n in &nets {
            let _ = docker(dir, &["network", "rm", n]);
        }
        let _ = docker(dir, &["image", "rm", "-f", IMAGE]);
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WAIT;
        while dockerd_pid(dir).is_some() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let stopped = if dockerd_pid(dir).is_some() {
            format!("did not stop within {} s of SIGTERM", STOP_WAIT.as_secs())
        } else {
            "stopped".to_owned()
        };
        out.push(format!(
            "dockerd {pid} of {} ({why}): {} container(s) and {} network(s) removed through its API, {stopped}",
            dir.display(),
            ids.len(),
            nets.len()
        ));
    }
    out.extend(
        berth_testkit::remove_root(dir)
            .report(why)
            .iter()
            .map(ToString::to_string),
    );
    out
}

/// Puts back what the files of a dockerd's root say (read before the root
/// went): its bridge in the machine's namespace, directories it made, the
/// mount point the bench made. Directories only while no other dockerd or
/// containerd runs: then they may be theirs.
fn restore(bridge: Option<String>, absent: &[String], swarm_files: bool, out: &mut Vec<String>) {
    let links = crate::test::machine_links();
    if let Some(b) = bridge.filter(|b| links.contains(b)) {
        let ok = Command::new("ip")
            .args(["link", "del", &b])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        out.push(format!(
            "link {b}, a bench dockerd's bridge, in the machine's namespace: {}",
            if ok { "deleted" } else { "COULD NOT DELETE" }
        ));
    }
    let others = running("dockerd") || running("containerd");
    for d in absent.iter().filter(|d| DIRS.contains(&d.as_str())) {
        if !Path::new(d).exists() {
            continue;
        }
        if others {
            out.push(format!(
                "{d}, made by a bench's dockerd, left alone: another dockerd or containerd runs"
            ));
        } else if fs::remove_dir_all(d).is_ok() {
            out.push(format!("{d}, made by a bench's dockerd: removed"));
        }
    }
    if swarm_files && !others && Path::new(SWARM_FILES).exists() {
        // Empty unless something else uses it: then remove_dir refuses.
        if fs::remove_dir(SWARM_FILES).is_ok() {
            out.push(format!("{SWARM_FILES}, the mount point a bench made: removed"));
        }
    }
}

/// Removes the dockerds of runs that are gone, and what they left (see
/// the module docs); one line per thing.
pub fn sweep() -> Vec<String> {
    let mut out = Vec::new();
    for dir in berth_testkit::stale_roots() {
        let is_docker = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("-docker-"));
        if !is_docker {
            continue;
        }
        let bridge = fs::read_to_string(dir.join("bridge")).ok();
        let absent: Vec<String> = fs::read_to_string(dir.join("absent"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let swarm_files = dir.join("swarm-files").exists();
        out.extend(teardown(&dir, "its run is gone"));
        restore(bridge, &absent, swarm_files, &mut out);
    }
    out
}
