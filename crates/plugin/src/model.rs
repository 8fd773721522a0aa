//! What the engine tells a driver about a network and what a driver tells
//! the engine back: the data both sides of every transport agree on.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Mac;

/// A network as the engine hands it to its driver: the name, the options
/// (`-o k=v`) and the address plan the engine's IPAM already settled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits, unique per network.
    pub id: String,
    /// The user's name for it (`berth network create NAME`).
    pub name: String,
    /// The driver that backs it (`-d`).
    pub driver: String,
    /// Driver options from `-o KEY=VALUE`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Subnets with their gateways; empty for drivers that do their own
    /// addressing (or none at all).
    #[serde(default)]
    pub ipam: Vec<IpamConfig>,
    /// IPv6 is enabled (`--ipv6`).
    #[serde(default)]
    pub ipv6: bool,
    /// No traffic leaves the network (`--internal`).
    #[serde(default)]
    pub internal: bool,
}

impl Network {
    /// A network of `driver` with `options` and nothing else: no subnets,
    /// IPv4 only, not internal. Where tests and examples start from.
    pub fn with_options(id: &str, name: &str, driver: &str, options: &[(&str, &str)]) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            driver: driver.to_owned(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ipam: Vec::new(),
            ipv6: false,
            internal: false,
        }
    }

    /// The short form of the id that `network ls` prints.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// The gateway of the first subnet of the given family.
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.ipam
            .iter()
            .filter(|c| c.subnet.addr().is_ipv6() == v6)
            .find_map(|c| c.gateway)
    }
}

/// One subnet of a network, as `docker network inspect` shows it under
/// `IPAM.Config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// The subnet, e.g. `172.18.0.0/16`.
    pub subnet: IpNet,
    /// The gateway address inside the subnet (the bridge's address).
    pub gateway: Option<IpAddr>,
    /// The part of the subnet that containers' addresses come from.
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// Addresses reserved for other hosts (`--aux-address NAME=IP`).
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

/// Whose network namespace a container gets on a driver's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxKind {
    /// A namespace of its own, with the driver's interface in it.
    Own,
    /// The host's namespace, shared (`--network host`).
    Host,
    /// A namespace of its own with only `lo` (`--network none`).
    Isolated,
}

/// Where a driver's networks are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This host only.
    Local,
    /// Every host of a cluster (overlay).
    Global,
}

/// What `-p` can do for a container on a driver's networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ports {
    /// The engine forwards host ports to the container's address on the
    /// network (a bridge in the host's namespace), unless the network is
    /// internal.
    Forwarded,
    /// The container shares the host's ports (`--network host`).
    Shared,
    /// The container has no interface to forward to (`--network none`).
    NoInterface,
    /// Each container has its own address on the parent link's LAN; there
    /// is no host port to forward (macvlan, ipvlan).
    OwnAddress,
    /// The engine forwards host ports to the container's address on the
    /// host's gateway bridge (overlay networks, whose containers reach the
    /// host through it).
    ViaGateway,
    /// The driver does not publish ports (plugins, CNI chains).
    Unsupported,
}

/// What a driver reports after wiring an endpoint in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The host-side interface, where there is one (the veth on a bridge).
    pub host_ifname: Option<String>,
    /// Addresses the driver chose itself (drivers that do their own
    /// addressing, such as CNI chains); empty when the engine's were used.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// Gateways the driver chose itself, for `inspect`.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// The interface's MAC, when the driver chose it.
    #[serde(default)]
    pub mac: Option<Mac>,
    /// Opaque state the engine stores with the endpoint and hands back in
    /// the endpoint's `state` on detach and check, also after a restart (a
    /// CNI chain keeps its configuration and result here for DEL and CHECK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}
