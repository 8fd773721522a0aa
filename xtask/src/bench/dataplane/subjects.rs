//! The dataplane bench's subjects, each two namespaces that reach each
//! other, built in throwaway namespaces of the bench's:
//!
//! | subject | host namespace | the two ends |
//! |---|---|---|
//! | bare veth pair | a [`TestHost`] with no daemon | namespaces `a` and `b`, one veth pair between them, 10.217.0.0/24 |
//! | berth bridge | a [`TestHost`] with berth's daemon | containers on bridge network `dp`, 10.218.0.0/24 |
//! | berth macvlan | the same host | containers on macvlan network `mv` over veth parent `lan0`, 10.219.0.0/24 |
//! | netavark | a [`TestHost`] with no daemon | two namespaces set up on netavark's `bench` network (iptables), 10.89.0.0/16 |
//! | CNI bridge | a [`TestHost`] with no daemon | two namespaces ADDed to CNI's `bench` bridge (host-local), 10.88.0.0/16 |
//! | Docker | a [`TestHost`] with a dockerd inside ([`Dockerd::start_in`]) | containers on user bridge network `dp`, 10.220.0.0/24 |
//!
//! Dropping a subject removes what it made: the dockerd first, then the
//! host (its namespaces and every link and rule in them).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use berth_testkit::{TestHost, run_in};
use serde_json::Value;

use crate::bench::docker::{self, Dockerd, IMAGE};
use crate::bench::iperf::Lane;
use crate::bench::{cni, netavark};

/// What every container of the bench runs.
const SLEEP: [&str; 2] = ["sleep", "3600"];

/// The two ends of one subject: the server's namespace and the client's,
/// and the server's address.
pub struct Pair {
    pub server: PathBuf,
    pub client: PathBuf,
    pub address: Ipv4Addr,
}

impl Pair {
    /// The way from the client to the server, labelled.
    pub fn lane(&self, label: &str) -> Lane {
        Lane {
            label: label.to_owned(),
            client: self.client.clone(),
            server: self.address,
        }
    }
}

/// A bare veth pair between two namespaces: no bridge, no firewall.
pub fn bare(bin: &Path) -> Result<(TestHost, Pair)> {
    let host = TestHost::without_daemon(bin);
    let (a, b) = (host.namespace("a"), host.namespace("b"));
    let r = run_in(
        &a,
        "sh",
        &[
            "-c",
            &format!(
                "ip link add eth0 type veth peer name eth0 netns {} && ip addr add 10.217.0.1/24 dev eth0 && ip link set eth0 up",
                b.display()
            ),
        ],
    );
    ensure!(r.code == 0, "making the bare veth pair: {}", r.stderr.trim());
    let r = run_in(
        &b,
        "sh",
        &["-c", "ip addr add 10.217.0.2/24 dev eth0 && ip link set eth0 up"],
    );
    ensure!(
        r.code == 0,
        "configuring the bare pair's far end: {}",
        r.stderr.trim()
    );
    let pair = Pair {
        server: a,
        client: b,
        address: Ipv4Addr::new(10, 217, 0, 1),
    };
    Ok((host, pair))
}

/// berth's daemon in a host of its own, with a bridge network and a
/// macvlan network (on a veth parent inside the host), two containers on
/// each; each network's pair, or why it has none.
pub struct Berth {
    pub host: TestHost,
    pub bridge: Result<Pair, String>,
    pub macvlan: Result<Pair, String>,
}

/// berth's networks (and Docker's); their containers are NAME-server and
/// NAME-client.
pub const BRIDGE: &str = "dp";
const MACVLAN: &str = "mv";
/// The macvlan network's parent, a veth in the test host.
const PARENT: &str = "lan0";

impl Berth {
    pub fn new(bin: &Path) -> Self {
        let host = TestHost::new(bin);
        let bridge = berth_pair(&host, BRIDGE, &["--subnet", "10.218.0.0/24"]).map_err(failed);
        host.add_lan_parents(&[PARENT]);
        let parent = format!("parent={PARENT}");
        let macvlan = berth_pair(
            &host,
            MACVLAN,
            &["-d", "macvlan", "-o", &parent, "--subnet", "10.219.0.0/24"],
        )
        .map_err(failed);
        Self {
            host,
            bridge,
            macvlan,
        }
    }
}

fn failed(e: anyhow::Error) -> String {
    format!("FAILED: {e:#}")
}

/// Network `net` made with `opts`, and two containers on it.
fn berth_pair(host: &TestHost, net: &str, opts: &[&str]) -> Result<Pair> {
    let mut args = vec!["network", "create"];
    args.extend(opts);
    args.push(net);
    crate::bench::berth_ok(host, &args)?;
    let mut ends = Vec::new();
    for end in ["server", "client"] {
        let name = format!("{net}-{end}");
        let mut run = vec!["run", "-d", "--name", &name, "--network", net, "--"];
        run.extend(SLEEP);
        let r = host.berth(&run);
        ensure!(r.code == 0, "berth {}: {}", run.join(" "), r.stderr.trim());
        let r = host.berth(&["inspect", &name]);
        ensure!(r.code == 0, "berth inspect {name}: {}", r.stderr.trim());
        let v: Value = serde_json::from_str(&r.stdout).context("parsing berth inspect")?;
        let key = v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap_or_default();
        let ip = v[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
            .as_str()
            .unwrap_or_default();
        ensure!(!key.is_empty(), "{name} has no SandboxKey: {v}");
        let ip: Ipv4Addr = ip.parse().with_context(|| format!("{name}'s address: {ip:?}"))?;
        ends.push((PathBuf::from(key), ip));
    }
    let (client, _) = ends.pop().context("no client")?;
    let (server, address) = ends.pop().context("no server")?;
    Ok(Pair {
        server,
        client,
        address,
    })
}

/// Why netavark cannot be a subject, if it cannot.
pub fn netavark_missing() -> Option<String> {
    (!Path::new(netavark::BIN).exists()).then(|| format!("NOT INSTALLED ({})", netavark::INSTALL))
}

/// Two namespaces set up on netavark's `bench` network, as podman would
/// with static addresses.
pub fn netavark(bin: &Path) -> Result<(TestHost, Pair)> {
    let host = TestHost::without_daemon(bin);
    let config = host.root.join("netavark");
    fs::create_dir_all(&config).context("creating netavark's config directory")?;
    let mut ends = Vec::new();
    for (i, end) in [(1, "server"), (2, "client")] {
        let ns = host.namespace(end);
        let ip = netavark::other_ip(i);
        let mut cmd = netavark::command(&config, None, "setup", &ns);
        crate::bench::timed_in(
            &host.ns,
            &mut cmd,
            &netavark::options(i as u64, end, ip),
            &format!("netavark setup {end}"),
        )?;
        ends.push((ns, ip));
    }
    let (client, _) = ends.pop().context("no client")?;
    let (server, address) = ends.pop().context("no server")?;
    Ok((
        host,
        Pair {
            server,
            client,
            address,
        },
    ))
}

/// Why the CNI bridge plugin cannot be a subject, if it cannot.
pub fn cni_missing() -> Option<String> {
    let absent = cni::PLUGINS.iter().any(|p| !Path::new(cni::DIR).join(p).exists());
    absent.then(|| format!("NOT INSTALLED ({})", cni::INSTALL))
}

/// Two namespaces ADDed to the CNI `bench` bridge network.
pub fn cni(bin: &Path) -> Result<(TestHost, Pair)> {
    let host = TestHost::without_daemon(bin);
    let data = host.root.join("cni");
    fs::create_dir_all(&data).context("creating host-local's data directory")?;
    let conf = cni::conf(&data).to_string();
    let mut ends = Vec::new();
    for end in ["server", "client"] {
        let ns = host.namespace(end);
        let mut cmd = Command::new(Path::new(cni::DIR).join("bridge"));
        cmd.env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", end)
            .env("CNI_NETNS", &ns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cni::DIR);
        let (_, out) = crate::bench::timed_in(&host.ns, &mut cmd, &conf, &format!("CNI bridge ADD {end}"))?;
        ends.push((ns, cni_address(&out)?));
    }
    let (client, _) = ends.pop().context("no client")?;
    let (server, address) = ends.pop().context("no server")?;
    Ok((
        host,
        Pair {
            server,
            client,
            address,
        },
    ))
}

/// The first IPv4 address of a CNI ADD result (`ips[].address`, a CIDR).
fn cni_address(result: &str) -> Result<Ipv4Addr> {
    let v: Value = serde_json::from_str(result).with_context(|| format!("CNI ADD printed {result:?}"))?;
    v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .next()
        .with_context(|| format!("no IPv4 address in CNI's result {v}"))
}

/// Why Docker cannot be a subject, if it cannot.
pub fn docker_missing() -> Option<String> {
    docker::missing().map(|why| {
        if why.starts_with("not installed") {
            format!("NOT INSTALLED ({})", docker::INSTALL)
        } else {
            why
        }
    })
}

/// A dockerd inside a host namespace of the bench's, with Docker's
/// defaults there (iptables rules, br_netfilter on), and two containers
/// on a user bridge network. Fields drop in order: dockerd, then the host.
pub struct Docker {
    pub d: Dockerd,
    pub pair: Pair,
    _host: TestHost,
}

impl Docker {
    /// Starts it; on failure everything is gone again, and the error comes
    /// with what the cleanup found.
    pub fn start(bin: &Path) -> std::result::Result<Self, (anyhow::Error, Vec<String>)> {
        let host = TestHost::without_daemon(bin);
        let mut d = Dockerd::start_in(&host.ns, "dataplane", &SLEEP[..1])?;
        match docker_pair(&d) {
            Ok(pair) => Ok(Self { d, pair, _host: host }),
            Err(e) => {
                let notes = d.shut();
                Err((e, notes))
            }
        }
    }
}

fn docker_pair(d: &Dockerd) -> Result<Pair> {
    d.docker(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet",
        "10.220.0.0/24",
        "-o",
        "com.docker.network.bridge.name=dpbr0",
        BRIDGE,
    ])?;
    let mut ends = Vec::new();
    for end in ["server", "client"] {
        let name = format!("{BRIDGE}-{end}");
        d.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            BRIDGE,
            IMAGE,
            SLEEP[0],
            SLEEP[1],
        ])?;
        let ip = d.inspect(
            &name,
            &format!("{{{{(index .NetworkSettings.Networks \"{BRIDGE}\").IPAddress}}}}"),
        )?;
        let ip: Ipv4Addr = ip.parse().with_context(|| format!("{name}'s address: {ip:?}"))?;
        ends.push((docker::namespace_of(d, &name)?, ip));
    }
    let (client, _) = ends.pop().context("no client")?;
    let (server, address) = ends.pop().context("no server")?;
    Ok(Pair {
        server,
        client,
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cni_result_gives_its_ipv4_address() {
        let r = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cnibr0"}],
            "ips":[{"address":"fd00::2/64"},{"address":"10.88.0.2/16","gateway":"10.88.0.1","interface":2}]}"#;
        assert_eq!(cni_address(r).unwrap(), Ipv4Addr::new(10, 88, 0, 2));
        assert!(cni_address(r#"{"ips":[]}"#).is_err());
        assert!(cni_address("oops").is_err());
    }

    #[test]
    fn link_names_fit() {
        // The parent's peer is PARENT and an `x`.
        assert!(PARENT.len() < 15);
        assert!("dpbr0".len() <= 15);
    }
}
