//! netavark (podman's network stack) as a bench peer: `netavark setup` and
//! `teardown` of pinned namespaces on one bridge network, with the
//! iptables firewall (the only one 1.4 has), run inside a host namespace of
//! its own so its rules never mix with another peer's. The DNS bench uses
//! the same network with `dns_enabled` (see `aardvark.rs`).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::TestHost;
use serde_json::json;

use super::attacher::Subject;

/// Where Debian's `netavark` package puts the binary.
pub const BIN: &str = "/usr/lib/podman/netavark";
/// How to get it.
pub const INSTALL: &str = "apt-get install netavark";

const SUBNET: &str = "10.89.0.0/16";
/// The `bench` network's gateway (where aardvark-dns answers, with DNS on).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
/// The probe's address, away from the others' (10.89.0.2 upwards).
const PROBE_IP: Ipv4Addr = Ipv4Addr::new(10, 89, 200, 1);
const PROBE_ID: u64 = 0xffff_ffff;

/// A netavark host: a namespace with the `bench` network's bridge and
/// iptables rules, and the probe's namespace.
pub struct Netavark {
    host: TestHost,
    config: PathBuf,
    probe: PathBuf,
    probe_opts: String,
}

impl Netavark {
    /// A fresh host namespace (no berth daemon in it) and probe namespace.
    pub fn new(berth: &Path) -> Result<Self> {
        let host = TestHost::without_daemon(berth);
        let config = host.root.join("netavark");
        fs::create_dir_all(&config).context("creating netavark's config directory")?;
        let probe = host.root.join("netns").join("probe");
        berth_testkit::make_netns(&probe).context("creating the probe namespace")?;
        Ok(Self {
            probe_opts: options(PROBE_ID, "probe", PROBE_IP),
            host,
            config,
            probe,
        })
    }

    /// `netavark --config DIR VERB NS < opts`, timed.
    fn exec(&self, verb: &str, ns: &Path, opts: &str) -> Result<Duration> {
        let mut cmd = command(&self.config, None, verb, ns);
        let what = format!("netavark {verb} {}", ns.display());
        Ok(super::timed_in(&self.host.ns, &mut cmd, opts, &what)?.0)
    }
}

/// `netavark --config CONFIG [-a AARDVARK] VERB NS` with the iptables
/// firewall; the options go to its stdin.
pub fn command(config: &Path, aardvark: Option<&Path>, verb: &str, ns: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("NETAVARK_FW", "iptables").arg("--config").arg(config);
    if let Some(a) = aardvark {
        cmd.arg("-a").arg(a);
    }
    cmd.arg(verb).arg(ns);
    cmd
}

/// The options podman would send for container `id` with a static address
/// on the `bench` network (podman does its own IPAM and always passes the
/// address).
pub fn options(id: u64, name: &str, ip: Ipv4Addr) -> String {
    options_with(id, name, ip, false)
}

/// [`options`] on the `bench` network with aardvark-dns answering for it.
pub fn dns_options(id: u64, name: &str, ip: Ipv4Addr) -> String {
    options_with(id, name, ip, true)
}

fn options_with(id: u64, name: &str, ip: Ipv4Addr, dns: bool) -> String {
    json!({
        "container_id": format!("{id:064x}"),
        "container_name": name,
        "port_mappings": null,
        "networks": {
            "bench": { "interface_name": "eth0", "static_ips": [ip.to_string()] }
        },
        "network_info": {
            "bench": {
                "name": "bench",
                "id": "b".repeat(64),
                "driver": "bridge",
                "network_interface": "nvbr0",
                "subnets": [{ "subnet": SUBNET, "gateway": GATEWAY.to_string() }],
                "ipv6_enabled": false,
                "internal": false,
                "dns_enabled": dns,
                "ipam_options": { "driver": "host-local" }
            }
        }
    })
    .to_string()
}

/// The address of the `i`th other container: 10.89.0.2, .3, …
pub fn other_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(GATEWAY) + i as u32)
}

impl Subject for Netavark {
    fn add_other(&mut self, i: usize) -> Result<()> {
        let ns = self.host.root.join("netns").join(format!("o{i}"));
        berth_testkit::make_netns(&ns).with_context(|| format!("creating {}", ns.display()))?;
        self.exec("setup", &ns, &options(i as u64, &format!("o{i}"), other_ip(i)))
            .map(drop)
    }

    fn attach(&mut self) -> Result<Duration> {
        self.exec("setup", &self.probe, &self.probe_opts)
    }

    fn detach(&mut self) -> Result<Duration> {
        self.exec("teardown", &self.probe, &self.probe_opts)
    }

    fn host_ns(&self) -> &Path {
        &self.host.ns
    }

    fn probe_ns(&self) -> &Path {
        &self.probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_get_distinct_addresses_clear_of_the_probe() {
        assert_eq!(other_ip(1), Ipv4Addr::new(10, 89, 0, 2));
        assert_eq!(other_ip(500), Ipv4Addr::new(10, 89, 1, 245));
        assert!(u32::from(other_ip(1000)) < u32::from(PROBE_IP));
    }

    #[test]
    fn options_carry_a_64_hex_id() {
        let v: serde_json::Value = serde_json::from_str(&options(7, "o7", other_ip(7))).unwrap();
        let id = v["container_id"].as_str().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.ends_with("07"));
        assert_eq!(v["networks"]["bench"]["static_ips"][0], "10.89.0.8");
        assert_eq!(v["network_info"]["bench"]["dns_enabled"], false);
        let v: serde_json::Value = serde_json::from_str(&dns_options(7, "o7", other_ip(7))).unwrap();
        assert_eq!(v["network_info"]["bench"]["dns_enabled"], true);
    }
}
