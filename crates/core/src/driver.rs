use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::link::Link;
use crate::netns::Netns;
use crate::{
    Attachment, Error, Features, Firewall, IfName, Lingering, Mac, Network, Ports, Result, SandboxKind, Scope,
};

/// What a driver does and what the engine must do for it: the engine asks
/// these, never the driver's name.
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
    /// (`network connect`); a driver without it has one network only.
    pub multi_network: bool,
    /// What `-p` does on its networks.
    pub ports: Ports,
    /// Containers on its user-defined networks ask berth's embedded
    /// resolver (127.0.0.11) for each other's names.
    pub dns: bool,
    /// Its interfaces hang on a parent link (`-o parent=`), which several
    /// networks may share.
    pub parent: bool,
    /// Other names `-d` accepts for it (`none` for Docker's `null`).
    pub aliases: &'static [&'static str],
    /// Its networks give their containers no way out of their own: the
    /// engine connects each of them to the host's gateway bridge too (a
    /// second interface, masqueraded, as Docker's `docker_gwbridge`), and
    /// gives them no gateway on the network itself.
    pub egress: bool,
}

impl Capabilities {
    /// What a driver whose containers get a namespace of their own with
    /// its interface in it usually has: local scope, the engine's IPAM,
    /// several networks per container, the embedded resolver, no port
    /// publishing, no parent, no options.
    pub fn own_sandbox() -> Self {
        Self {
            scope: Scope::Local,
            sandbox: SandboxKind::Own,
            ipam: true,
            options: &[],
            multi_network: true,
            ports: Ports::Unsupported,
            dns: true,
            parent: false,
            aliases: &[],
            egress: false,
        }
    }
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
    /// Link deletions that answered early and still run in the kernel
    /// ([`crate::linger::delete`]): what their links held is given out
    /// again only once [`Lingering::settled`] says they are done.
    pub lingering: Arc<Lingering>,
    /// The link kinds the running kernel has.
    pub features: Features,
    /// Every network the engine has, kept current by the engine.
    pub networks: Networks,
    /// The cluster this host is in, when the daemon joined one
    /// (`--cluster-store`): what drivers of global networks need.
    pub cluster: Option<ClusterContext>,
    /// A directory of the daemon's run-time state where drivers may keep
    /// files and namespace pins of their own, under their name.
    pub run_dir: PathBuf,
}

/// What a driver of global networks gets of the cluster.
#[derive(Clone)]
pub struct ClusterContext {
    /// Numbers claimed cluster-wide (an overlay's VNI).
    pub numbers: Arc<dyn Numbers>,
    /// This host's side of the underlay.
    pub underlay: Underlay,
}

/// This host's tunnel endpoint on the underlay (`--advertise-addr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    /// Its address.
    pub address: IpAddr,
    /// The interface that has it.
    pub ifname: String,
    /// That interface's MTU.
    pub mtu: u32,
}

/// Numbers that must be unique in the whole cluster, each claimed in one
/// compare-and-swap transaction of the cluster store.
#[async_trait]
pub trait Numbers: Send + Sync {
    /// Claims `wanted`, or else the lowest free number in `range`, of
    /// `pool` for the network `owner`. `what` names the number in errors
    /// (`vxlan.id`): one taken by another network is
    /// [`Error::Taken`], naming it.
    async fn claim(
        &self,
        pool: &str,
        what: &str,
        range: (u32, u32),
        wanted: Option<u32>,
        owner: &str,
    ) -> Result<u32>;

    /// Gives a number back, if `owner` holds it. Idempotent.
    async fn release(&self, pool: &str, n: u32, owner: &str) -> Result<()>;
}

/// A container of a global network on another host, as the cluster store
/// says: what reaches it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// Its endpoint's id.
    pub endpoint: String,
    /// Its interface's MAC.
    pub mac: Mac,
    /// Its addresses on the network.
    pub addresses: Vec<IpNet>,
    /// Its host's tunnel endpoint.
    pub vtep: IpAddr,
}

/// The engine's networks, as drivers see them: the handle of each, a
/// snapshot that the engine replaces whenever a network comes or goes.
#[derive(Clone, Default)]
pub struct Networks(Arc<RwLock<Snapshot>>);

/// The networks at one moment.
type Snapshot = Arc<Vec<Arc<dyn NetworkHandle>>>;

impl Networks {
    /// The current networks.
    pub fn get(&self) -> Snapshot {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the snapshot.
    pub fn set(&self, nets: Vec<Arc<dyn NetworkHandle>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(nets);
    }

    /// Whether the engine has the network with this id.
    pub fn contains(&self, id: &str) -> bool {
        self.get().iter().any(|n| n.network().id == id)
    }

    /// The other network (not `id`) that made the host link `name` for
    /// itself alone ([`NetworkHandle::own_links`]), if any.
    pub fn owner(&self, id: &str, name: &str) -> Option<Arc<dyn NetworkHandle>> {
        self.get()
            .iter()
            .find(|n| n.network().id != id && n.own_links().iter().any(|l| l == name))
            .cloned()
    }

    /// The other networks (not `id`) that use the host link `name`
    /// ([`NetworkHandle::shared_links`]).
    pub fn sharing(&self, id: &str, name: &str) -> Vec<Arc<dyn NetworkHandle>> {
        self.get()
            .iter()
            .filter(|n| n.network().id != id && n.shared_links().iter().any(|l| l == name))
            .cloned()
            .collect()
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
    /// The interface's MAC address ([`Mac::ZERO`] where there is no
    /// interface).
    pub mac: Mac,
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

/// Where the engine found a link it asks drivers about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The host's namespace.
    Host,
    /// A container's sandbox.
    Sandbox,
}

/// What a driver says a link is, when it made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Made for the network with this id (a bridge, a VLAN or dummy
    /// parent): a stray when the engine has no such network.
    Network(String),
    /// Made for an endpoint whose id starts with this (a bridge port
    /// named after it): a stray when no endpoint's id does.
    Endpoint(String),
    /// An endpoint's interface inside a sandbox, named as the engine
    /// named it (`eth1`): a stray when the container has no endpoint by
    /// that name.
    Interface,
}

/// What a network hangs on its parent link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubLink {
    /// macvlan interfaces.
    Macvlan,
    /// ipvlan interfaces.
    Ipvlan,
}

impl SubLink {
    /// `macvlan` or `ipvlan`, as `ip -d link` prints the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SubLink::Macvlan => "macvlan",
            SubLink::Ipvlan => "ipvlan",
        }
    }
}

impl std::fmt::Display for SubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a network uses a parent link ([`NetworkHandle::parent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentUse {
    /// The network's name.
    pub network: String,
    /// What it hangs on the parent.
    pub kind: SubLink,
    /// The parent's interface name.
    pub parent: String,
    /// `macvlan_mode` or `ipvlan_mode`, defaults filled in.
    pub mode: String,
}

/// A network mode: what `-d NAME` selects.
///
/// A driver turns each network's spec into a [`NetworkHandle`] once, in
/// [`open`](Self::open): its options are parsed and checked there, and
/// the engine keeps the handle beside the network's record for as long
/// as the network exists. What differs between drivers is declared in
/// [`Capabilities`]; crash recovery asks [`claim`](Self::claim) what in
/// the kernel is the driver's own.
#[async_trait]
pub trait NetworkDriver: Send + Sync {
    /// The name used with `-d`, e.g. `"bridge"`.
    fn name(&self) -> &str;

    /// What the driver does and needs.
    fn capabilities(&self) -> Capabilities;

    /// Whether the running kernel can do what this driver needs; the error
    /// names what is missing, usually an [`Error::NoKernelSupport`] ("this
    /// kernel has no ipvlan support (CONFIG_IPVLAN)"), see
    /// [`Features::require`].
    fn supported(&self, _features: &Features) -> Result<()> {
        Ok(())
    }

    /// Checks a network's options and address plan and returns the handle
    /// that makes, wires and removes it. Touches nothing in the kernel; a
    /// bad option is an error naming the option and the accepted values.
    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>>;

    /// Completes a new network's spec with what the driver allocates for
    /// it before it is opened and made (an overlay's VNI, claimed in the
    /// cluster, as the option `vxlan.id`). The default allocates nothing.
    async fn allocate(&self, _ctx: &Context, _net: &mut Network) -> Result<()> {
        Ok(())
    }

    /// Gives back what [`allocate`](Self::allocate) took, once the network
    /// is removed for good (or its creation failed). Idempotent.
    async fn release(&self, _ctx: &Context, _net: &Network) -> Result<()> {
        Ok(())
    }

    /// Removes what the driver keeps of its own (under
    /// [`Context::run_dir`]) for networks the engine no longer has: left
    /// by a crash, found when the daemon starts. `known` are the ids of
    /// the driver's networks. The default keeps nothing, so removes
    /// nothing.
    async fn sweep(&self, _ctx: &Context, _known: &[String]) -> Result<()> {
        Ok(())
    }

    /// Which of `links` (all the links of one namespace) this driver made,
    /// and for what: the engine removes those whose network or endpoint it
    /// no longer knows (a crash between the kernel work and the commit).
    /// The default claims nothing.
    fn claim(&self, _place: Place, _links: &[Link]) -> Vec<(u32, Claim)> {
        Vec::new()
    }
}

/// One network of a driver, opened: its options parsed, ready to be made,
/// wired and removed. Every handle keeps these rules:
/// - [`attach`](Self::attach) either completes or leaves nothing behind.
/// - [`detach`](Self::detach) and [`delete`](Self::delete) are
///   idempotent: "already gone" is success.
/// - [`create`](Self::create) is idempotent for its own network, so the
///   engine can call it again after a restart to put back whatever is
///   missing (including the network's firewall elements).
#[async_trait]
pub trait NetworkHandle: Send + Sync {
    /// The network it was opened for.
    fn network(&self) -> &Network;

    /// Whether the network is internal whatever the user asked (a macvlan
    /// network without a parent has no way out).
    fn forces_internal(&self) -> bool {
        false
    }

    /// How it uses a parent link, when it hangs its interfaces on one:
    /// the creation of another network on the same parent is checked
    /// against it.
    fn parent(&self) -> Option<ParentUse> {
        None
    }

    /// Host links it uses that other networks may use too (a parent link,
    /// a CNI chain's bridge): the last network that uses one removes it.
    fn shared_links(&self) -> Vec<String> {
        Vec::new()
    }

    /// Host links it made for itself alone (a bridge network's bridge): no
    /// other network may use them, nor change or remove them.
    fn own_links(&self) -> Vec<String> {
        Vec::new()
    }

    /// Makes exactly `peers` reachable, the network's containers on other
    /// hosts (global networks): the engine calls it whenever they change,
    /// with all of them. The default does nothing.
    async fn peers(&self, _ctx: &Context, _peers: &[Peer]) -> Result<()> {
        Ok(())
    }

    /// Makes the network exist in the kernel (bridge, firewall elements).
    async fn create(&self, ctx: &Context) -> Result<()>;

    /// Removes what `create` made. Idempotent.
    async fn delete(&self, ctx: &Context) -> Result<()>;

    /// Wires `ep` into its sandbox. On error, leaves nothing behind.
    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment>;

    /// Undoes `attach`. Succeeds when there is nothing left to undo.
    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()>;

    /// Puts an attached endpoint back as `attach` left it, where something
    /// else changed it (its bridge deleted and made again, its host side
    /// set down, an address or the default route removed in the sandbox):
    /// only what differs is made again, and an endpoint whose links are
    /// gone is attached again. Called at start and on `berth system
    /// reconcile`, after the network's `create`. The default repairs
    /// nothing (a driver that cannot tell what changed).
    async fn repair(&self, _ctx: &Context, _ep: &Endpoint<'_>) -> Result<()> {
        Ok(())
    }

    /// Checks that an attached endpoint is still wired as `attach` left it
    /// (`berth network check`, CNI's `CHECK`); touches nothing. Networks
    /// that cannot tell answer [`Error::CannotCheck`].
    async fn check(&self, _ctx: &Context, _ep: &Endpoint<'_>) -> Result<()> {
        let net = self.network();
        Err(Error::CannotCheck {
            network: net.name.clone(),
            driver: net.driver.clone(),
        })
    }
}

/// The value of the option known by `long` (Docker's name) or `short`
/// (berth's), with the name it was given under; both given with different
/// values is an error.
pub fn option_pair<'a>(
    options: &'a BTreeMap<String, String>,
    long: &'a str,
    short: &'a str,
) -> Result<Option<(&'a str, &'a str)>> {
    match (options.get(long), options.get(short)) {
        (Some(a), Some(b)) if a != b => Err(Error::OptionGivenTwice {
            long: long.to_owned(),
            short: short.to_owned(),
            first: a.clone(),
            second: b.clone(),
        }),
        (Some(v), _) => Ok(Some((long, v))),
        (None, Some(v)) => Ok(Some((short, v))),
        (None, None) => Ok(None),
    }
}

/// Parses an MTU option: 68 (IPv4's minimum) to 65535.
pub fn parse_mtu(key: &str, value: &str) -> Result<u32> {
    value
        .parse::<u32>()
        .ok()
        .filter(|m| (68..=65535).contains(m))
        .ok_or_else(|| Error::BadOptionValue {
            key: key.to_owned(),
            value: value.to_owned(),
            accepted: "68 to 65535",
        })
}

/// Parses option values the way Docker does (Go's `strconv.ParseBool`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::BadOptionValue {
            key: key.to_owned(),
            value: value.to_owned(),
            accepted: "true or false",
        }),
    }
}

/// Rejects options that are not in `accepted`, naming the accepted ones.
pub fn check_options(driver: &str, options: &BTreeMap<String, String>, accepted: &[&str]) -> Result<()> {
    match options.keys().find(|k| !accepted.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(Error::UnknownOption {
            driver: driver.to_owned(),
            key: k.clone(),
            accepted: accepted.iter().map(|a| (*a).to_owned()).collect(),
        }),
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
