//! Docker's swarm-mode overlay across two hosts of the bench's, the overlay
//! bench's peer (DESIGN.md, "Real Docker as a test party").
//!
//! The hosts are network namespaces joined the way testkit's `Fabric`
//! joins berth's: each has an `eth0` on 198.51.100.0/24 (host A .21, host
//! B .22), a veth whose peer is a port of the bridge `fab0` in a third
//! namespace; nothing else. A dockerd runs in each ([`Dockerd::start_in`]);
//! host A's initializes a swarm on its underlay address, host B's joins
//! it as a worker, and the manager creates an attachable overlay network
//! on which [`WATCHER`] runs on host B. No namespace here has a link to
//! the machine's, so no packet can leave them.
//!
//! Docker's overlay does not follow the underlay's MTU: its containers get
//! 1450 unless the network is made with `com.docker.network.driver.mtu`
//! (the underlay's MTU: Docker takes VXLAN's 50 bytes off it), as its
//! operator would on a jumbo-frame underlay.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_testkit::{TestHost, run_in};

use super::{Dockerd, IMAGE};
use crate::bench::two_hosts::{SLEEP, Subject, WATCHER};

/// The hosts' underlay addresses: host A, the manager, and host B.
const HOSTS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 51, 100, 21), Ipv4Addr::new(198, 51, 100, 22)];
/// The port swarm's managers listen on.
const SWARM_PORT: u16 = 2377;
/// The standard underlay MTU; any other one is given to the network.
const STANDARD_MTU: u32 = 1500;

/// A shell script run inside `ns`, which must succeed.
fn sh_in(ns: &Path, script: &str) -> Result<()> {
    let r = run_in(ns, "sh", &["-c", script]);
    ensure!(r.code == 0, "sh -c {script:?}: {}{}", r.stdout, r.stderr);
    Ok(())
}

/// Two dockerds in a swarm on an underlay of the bench's, with an overlay
/// network and [`WATCHER`] on it: see the module docs. Dropping it shuts it
/// down like [`Swarm::shut`], printing the notes.
pub struct Swarm {
    // Fields drop in order: the dockerds, then their namespaces.
    manager: Dockerd,
    worker: Dockerd,
    world: TestHost,
    hosts: [PathBuf; 2],
    /// The overlay network in use and the first three bytes of its /24.
    net: String,
    prefix: [u8; 3],
    watcher: PathBuf,
    closed: bool,
}

impl Swarm {
    /// Builds the underlay, starts both dockerds and the swarm, and the
    /// network for the standard MTU. On failure everything it made is gone
    /// again; the error comes with what the cleanup found. `berth` only
    /// names the test root's owner (no berth daemon runs here).
    pub fn start(berth: &Path) -> std::result::Result<Self, (anyhow::Error, Vec<String>)> {
        let world = TestHost::without_daemon(berth);
        let hosts = [world.namespace("a"), world.namespace("b")];
        if let Err(e) = underlay(&world, &hosts) {
            return Err((e, Vec::new()));
        }
        let manager = Dockerd::start_in(&hosts[0], "swarm-a", &SLEEP[..1])?;
        let worker = match Dockerd::start_in(&hosts[1], "swarm-b", &SLEEP[..1]) {
            Ok(w) => w,
            Err((e, mut notes)) => {
                let mut manager = manager;
                notes.extend(manager.shut());
                return Err((e, notes));
            }
        };
        let mut s = Self {
            manager,
            worker,
            world,
            hosts,
            net: String::new(),
            prefix: [0; 3],
            watcher: PathBuf::new(),
            closed: false,
        };
        match s.join().and_then(|()| s.use_mtu(STANDARD_MTU)) {
            Ok(()) => Ok(s),
            Err(e) => Err((e, s.shut())),
        }
    }

    fn join(&self) -> Result<()> {
        let [a, b] = HOSTS.map(|h| h.to_string());
        self.manager.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &a,
            "--listen-addr",
            &format!("{a}:{SWARM_PORT}"),
        ])?;
        let token = self.manager.docker(&["swarm", "join-token", "-q", "worker"])?;
        self.worker.docker(&[
            "swarm",
            "join",
            "--token",
            token.trim(),
            "--advertise-addr",
            &b,
            "--listen-addr",
            &format!("{b}:{SWARM_PORT}"),
            &format!("{a}:{SWARM_PORT}"),
        ])?;
        Ok(())
    }

    /// Moves to an underlay of `mtu` bytes: the containers of the network
    /// in use go, the hosts' `eth0` and their ports get the MTU, and a
    /// network of its own (its MTU given when it is not the standard one)
    /// gets a new [`WATCHER`] on host B.
    pub fn use_mtu(&mut self, mtu: u32) -> Result<()> {
        if !self.net.is_empty() {
            for d in [&self.manager, &self.worker] {
                let ids = d.docker(&["ps", "-aq", "--filter", &format!("network={}", self.net)])?;
                for id in ids.split_whitespace() {
                    d.docker(&["rm", "-f", id])?;
                }
            }
        }
        for (i, host) in self.hosts.iter().enumerate() {
            sh_in(host, &format!("ip link set eth0 mtu {mtu}"))?;
            sh_in(&self.world.ns, &format!("ip link set {} mtu {mtu}", port(i)))?;
        }
        // One /24 per MTU, so that a network being removed lazily on a
        // host never holds the next one's addresses.
        let third = u8::try_from(mtu / 100 % 200).unwrap_or(0);
        self.prefix = [10, 214, third];
        self.net = format!("berth-bench-ov{mtu}");
        let subnet = format!("10.214.{third}.0/24");
        let mut create = vec![
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--subnet",
            &subnet,
        ];
        let opt = format!("com.docker.network.driver.mtu={mtu}");
        if mtu != STANDARD_MTU {
            create.extend(["-o", &opt]);
        }
        create.push(&self.net);
        self.manager.docker(&create)?;
        let mut run = vec!["run", "-d", "--name", WATCHER, "--network", &self.net, IMAGE];
        run.extend(SLEEP);
        self.worker.docker(&run)?;
        self.watcher = namespace_of(&self.worker, WATCHER)?;
        Ok(())
    }

    /// The options the network in use was made with, as `docker network
    /// inspect` shows them.
    pub fn options(&self) -> Result<String> {
        let o = self
            .manager
            .docker(&["network", "inspect", "-f", "{{json .Options}}", &self.net])?;
        Ok(o.trim().to_owned())
    }

    /// Leaves the swarm, stops both dockerds and cleans up; what the
    /// cleanup found. Idempotent.
    pub fn shut(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if std::mem::replace(&mut self.closed, true) {
            return notes;
        }
        // The worker first: a manager whose workers are gone waits for them.
        for d in [&mut self.worker, &mut self.manager] {
            let _ = d.docker(&["swarm", "leave", "--force"]);
            notes.extend(d.shut());
        }
        notes
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for n in self.shut() {
            eprintln!("Docker cleanup: {n}");
        }
    }
}

/// Host `i`'s port of `fab0`.
fn port(i: usize) -> String {
    format!("fabd{}", 21 + i)
}

/// `fab0` in the world's own namespace, and each host's `eth0` on it.
fn underlay(world: &TestHost, hosts: &[PathBuf; 2]) -> Result<()> {
    sh_in(&world.ns, "ip link add fab0 type bridge && ip link set fab0 up")?;
    for (i, (host, ip)) in hosts.iter().zip(HOSTS).enumerate() {
        let port = port(i);
        sh_in(
            host,
            &format!(
                "ip link add eth0 type veth peer name {port} netns {fab} && ip addr add {ip}/24 dev eth0 && ip link set eth0 up",
                fab = world.ns.display()
            ),
        )?;
        sh_in(
            &world.ns,
            &format!("ip link set {port} master fab0 && ip link set {port} up"),
        )?;
    }
    Ok(())
}

/// The network namespace of a container of `d`, through its first
/// process: its sandbox's own path is under the tmpfs on `/run` that only
/// dockerd's mount namespace sees.
pub fn namespace_of(d: &Dockerd, name: &str) -> Result<PathBuf> {
    let pid = d.inspect(name, "{{.State.Pid}}")?;
    let pid: u32 = pid
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("{name} has no process: {pid:?}"))?;
    Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
}

impl Subject for Swarm {
    fn address(&self, n: u8) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, n)
    }

    fn run(&mut self, name: &str, ip: Option<Ipv4Addr>) -> Result<Duration> {
        let ip = ip.map(|ip| ip.to_string());
        let mut args = vec!["run", "-d", "--name", name, "--network", &self.net];
        if let Some(ip) = &ip {
            args.extend(["--ip", ip]);
        }
        args.push(IMAGE);
        args.extend(SLEEP);
        let what = format!("docker run -d --name {name}");
        Ok(crate::bench::timed(&mut self.manager.cmd(&args), "", &what)?.0)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.manager.docker(&["rm", "-f", name]).map(drop)
    }

    fn sandbox(&self, name: &str) -> Result<PathBuf> {
        namespace_of(&self.manager, name)
    }

    fn watcher(&self) -> &Path {
        &self.watcher
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_name_fits_a_link_name() {
        assert_eq!(port(1), "fabd22");
        assert!(port(1).len() <= 15);
    }
}
