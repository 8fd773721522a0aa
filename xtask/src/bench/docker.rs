//! Docker as a bench peer: a dockerd of the bench's own ([`Dockerd`], in
//! `docker/daemon.rs`: how it is kept harmless and cleaned up), Docker's
//! embedded DNS as a DNS bench subject, and two dockerds in a swarm as the
//! overlay bench's subject ([`Swarm`], in `docker/swarm.rs`).
//!
//! For the DNS bench the dockerd runs inside a network namespace of its
//! own ([`Dockerd::start_in`]), with its bridge network there; its DNS
//! redirects 127.0.0.11:53 with rules inside each container's namespace. The bench's upstream runs
//! inside a container of its network, and the containers are given it with
//! `--dns`; the container that asks has no default route, so whatever its
//! resolver forwards cannot leave the network.

mod daemon;
mod leftovers;
mod machine;
mod swarm;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use berth_testkit::dns::Upstream;

pub use daemon::{Dockerd, IMAGE, Net};
pub use leftovers::sweep;
pub use swarm::{Swarm, namespace_of};

use super::resolver::{self, CLIENT, Subject, TARGET};

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
/// The bench's upstream, in a container of its own on the network.
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 250);
const UPSTREAM_NAME: &str = "bench-upstream";

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

/// A running dockerd of the bench's, with [`CLIENT`], [`TARGET`] and the
/// upstream's container on network [`NETWORK`].
pub struct Docker {
    // Dropped before the daemon, which shuts down when dropped.
    upstream: Option<Upstream>,
    d: Dockerd,
    /// The namespace dockerd runs in (its bridge and containers there),
    /// dropped after it.
    _world: berth_testkit::TestHost,
    client: PathBuf,
    target: IpAddr,
}

impl Docker {
    /// Starts dockerd and sets up the containers. On failure everything it
    /// made is gone again; the error comes with what the cleanup found.
    pub fn start(bin: &Path) -> std::result::Result<Self, (anyhow::Error, Vec<String>)> {
        // dockerd in a namespace of its own, never the machine's: its
        // bridge, its rules and its containers are there.
        let world = berth_testkit::TestHost::without_daemon(bin);
        let ns = world.namespace("docker");
        let d = Dockerd::start_in(&ns, "dns", &["sh", "sleep"])?;
        let mut d = Self {
            upstream: None,
            d,
            _world: world,
            client: PathBuf::new(),
            target: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        match d.setup() {
            Ok(()) => Ok(d),
            Err(e) => {
                let notes = d.shut();
                Err((e, notes))
            }
        }
    }

    fn setup(&mut self) -> Result<()> {
        self.d.docker(&[
            "network",
            "create",
            "--subnet",
            "10.213.0.0/24",
            "--gateway",
            "10.213.0.1",
            "-o",
            &format!("com.docker.network.bridge.name={BRIDGE}"),
            NETWORK,
        ])?;
        let up = UPSTREAM.to_string();
        self.d.docker(&[
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
        let up_ns = namespace_of(&self.d, UPSTREAM_NAME)?;
        self.upstream = Some(resolver::upstream(&up_ns, SocketAddr::from((UPSTREAM, 53))));
        for name in [CLIENT, TARGET] {
            self.run(name)?;
        }
        self.client = namespace_of(&self.d, CLIENT)?;
        // Its upstream is on its own network: no other route is needed.
        let r = berth_testkit::run_in(&self.client, "ip", &["-4", "route", "del", "default"]);
        ensure!(
            r.code == 0,
            "removing {CLIENT}'s default route: {}",
            r.stderr.trim()
        );
        let ip = self.d.inspect(
            TARGET,
            &format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}"),
        )?;
        self.target = ip
            .parse()
            .with_context(|| format!("{TARGET}'s address: {ip:?}"))?;
        Ok(())
    }

    /// Stops the upstream, then dockerd, and cleans up. Idempotent.
    fn shut(&mut self) -> Vec<String> {
        self.upstream = None;
        self.d.shut()
    }
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
            .d
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
        Ok(super::timed(&mut self.d.cmd(&args), "", &what)?.0)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.d.docker(&["rm", "-f", name]).map(drop)
    }

    fn close(mut self: Box<Self>) -> Vec<String> {
        self.shut()
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
