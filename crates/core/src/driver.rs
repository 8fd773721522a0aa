use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::netns::Netns;
use crate::{Error, Features, Firewall, IfName, Result};

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

/// What a driver does and what the engine must do for it.
#[derive(Clone, Debug)]
pub struct Capabilities {
    /// Where its networks live.
    pub scope: Scope,
    /// What kind of namespace its containers get.
    pub sandbox: SandboxKind,
    /// The engine's IPAM assigns subnets, gateways and addresses.
    pub ipam: bool,
    /// The options `-o` accepts, for error messages and `berth info`.
    pub options: &'static [&'static str],
    /// A container on one of its networks may join others too
    /// (`network connect`).
    pub multi_network: bool,
}

/// The host side of the world a driver works in: the host's namespace
/// (where bridges live), an rtnetlink handle opened there, the firewall,
/// what the kernel can do, and the other networks (for drivers whose
/// networks share kernel objects, such as a parent link).
pub struct Context {
    /// The namespace that plays the host: the daemon's own.
    pub host: Arc<Netns>,
    /// An rtnetlink handle whose socket lives in `host`.
    pub handle: rtnetlink::Handle,
    /// The `inet berth` nftables table.
    pub firewall: Arc<Firewall>,
    /// The link kinds the running kernel has.
    pub features: Features,
    /// Every network the engine has, kept current by the engine.
    pub networks: Networks,
}

/// The engine's networks, as drivers see them: a snapshot that the engine
/// replaces whenever a network comes or goes.
#[derive(Clone, Default)]
pub struct Networks(Arc<RwLock<Arc<Vec<Network>>>>);

impl Networks {
    /// The current networks.
    pub fn get(&self) -> Arc<Vec<Network>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the snapshot.
    pub fn set(&self, nets: Vec<Network>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(nets);
    }
}

/// A container's network stack: a namespace and a netlink handle inside it.
pub struct Sandbox {
    /// The namespace (for the host driver: the host's).
    pub ns: Netns,
    /// An rtnetlink handle whose socket lives in `ns`.
    pub handle: rtnetlink::Handle,
    /// The nsfs bind mount that keeps it alive (`SandboxKey`).
    pub path: PathBuf,
}

/// One sandbox's membership in one network, as the engine planned it.
pub struct Endpoint<'a> {
    /// 64 hex digits, unique per endpoint; drivers derive host-side names
    /// from it so that the engine can find strays after a crash.
    pub id: &'a str,
    /// The sandbox to wire in. `None` only on detach, when the sandbox is
    /// already gone (with every link inside it).
    pub sandbox: Option<&'a Sandbox>,
    /// The interface name inside the sandbox: `eth0`, `eth1`, …
    pub ifname: &'a IfName,
    /// The interface's MAC address.
    pub mac: [u8; 6],
    /// Addresses with their prefix lengths, from the engine's IPAM.
    pub addresses: &'a [IpNet],
    /// Default routes to install through these gateways (empty when another
    /// network provides the default route, or the network is internal).
    pub gateways: &'a [IpAddr],
    /// What the driver asked the engine to keep at attach
    /// ([`Attachment::state`]), handed back on detach and check; `None` on
    /// a first attach and for drivers that keep nothing.
    pub state: Option<&'a serde_json::Value>,
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
    pub mac: Option<String>,
    /// Opaque state the engine stores with the endpoint and hands back in
    /// [`Endpoint::state`] on detach and check, also after a restart (a
    /// CNI chain keeps its configuration and result here for DEL and CHECK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// A network mode: what `-d NAME` selects.
///
/// The engine calls it with the whole [`Network`] each time, as Docker's
/// remote driver protocol does, so a driver holds no per-network state of
/// its own. Every driver keeps these rules:
/// - [`validate`](Self::validate) checks every option before anything
///   touches the kernel; a bad one is an error naming the option and the
///   accepted values.
/// - [`attach`](Self::attach) either completes or leaves nothing behind.
/// - [`detach`](Self::detach) and [`delete_network`](Self::delete_network)
///   are idempotent: "already gone" is success.
/// - [`create_network`](Self::create_network) is idempotent for its own
///   network, so the engine can call it again after a restart to put back
///   whatever is missing (including the network's firewall elements).
#[async_trait]
pub trait NetworkDriver: Send + Sync {
    /// The name used with `-d`, e.g. `"bridge"`.
    fn name(&self) -> &str;

    /// What the driver does and needs.
    fn capabilities(&self) -> Capabilities;

    /// Checks the network's options and address plan; touches nothing.
    fn validate(&self, net: &Network) -> Result<()>;

    /// Whether the running kernel can do what this driver needs; the error
    /// is one line naming what is missing, e.g. "this kernel has no ipvlan
    /// support (CONFIG_IPVLAN)".
    fn supported(&self, _features: &Features) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Whether a network is internal whatever the user asked (a macvlan
    /// network without a parent has no way out).
    fn forces_internal(&self, _net: &Network) -> bool {
        false
    }

    /// Makes the network exist in the kernel (bridge, firewall elements).
    async fn create_network(&self, ctx: &Context, net: &Network) -> Result<()>;

    /// Removes what `create_network` made. Idempotent.
    async fn delete_network(&self, ctx: &Context, net: &Network) -> Result<()>;

    /// Wires `ep` into its sandbox. On error, leaves nothing behind.
    async fn attach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<Attachment>;

    /// Undoes `attach`. Succeeds when there is nothing left to undo.
    async fn detach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<()>;

    /// Checks that an attached endpoint is still wired as `attach` left it
    /// (`berth network check`, CNI's `CHECK`); touches nothing. Drivers
    /// that cannot tell answer [`Error::Unsupported`].
    async fn check(&self, _ctx: &Context, net: &Network, _ep: &Endpoint<'_>) -> Result<()> {
        Err(Error::Unsupported(format!(
            "network {} (driver {}) cannot check its containers: only cni networks can",
            net.name,
            self.name()
        )))
    }
}

/// Parses option values the way Docker does (Go's `strconv.ParseBool`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::invalid(format!(
            "invalid value {value:?} for option {key} (accepted: true or false)"
        ))),
    }
}

/// Rejects options that are not in `accepted`, naming the accepted ones.
pub fn check_options(driver: &str, options: &BTreeMap<String, String>, accepted: &[&str]) -> Result<()> {
    match options.keys().find(|k| !accepted.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) if accepted.is_empty() => Err(Error::invalid(format!(
            "unknown option {k:?} for driver {driver} (it accepts no options)"
        ))),
        Some(k) => Err(Error::invalid(format!(
            "unknown option {k:?} for driver {driver} (accepted: {})",
            accepted.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_parse_as_go_does() {
        assert!(parse_bool("icc", "True").unwrap());
        assert!(!parse_bool("icc", "0").unwrap());
        let err = parse_bool("icc", "yes").unwrap_err().to_string();
        assert!(
            err.contains("icc") && err.contains("accepted: true or false"),
            "{err}"
        );
    }

    #[test]
    fn unknown_options_list_the_accepted_ones() {
        let opts = BTreeMap::from([("colour".to_owned(), "blue".to_owned())]);
        let err = check_options("bridge", &opts, &["mtu", "icc"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"unknown option "colour" for driver bridge (accepted: mtu, icc)"#
        );
        let err = check_options("host", &opts, &[]).unwrap_err().to_string();
        assert!(err.contains("accepts no options"), "{err}");
    }
}
