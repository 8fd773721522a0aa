use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::nft::NftError;
use crate::{Feature, IFNAME_MAX, SubLink};

/// The one error type every berth driver shares.
///
/// Each variant holds what went wrong (the option, the link, the parent,
/// what was being done) and, when there is one, the cause in `#[source]`
/// with its errno intact; [`Error::chain`] prints the message and every
/// cause once. [`Error::kind`] sorts the variants into the categories the
/// plugin ABI carries (`BerthKind`) and the API turns into HTTP statuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Bad input: an option, a name, an address plan. ----
    /// An `-o` option the driver does not know.
    #[error("unknown option {key:?} for driver {driver} ({})", Accepted(accepted))]
    UnknownOption {
        /// The driver's name.
        driver: String,
        /// The option given.
        key: String,
        /// The options the driver knows (none for some).
        accepted: Vec<String>,
    },
    /// An option's value is not one the option takes.
    #[error("invalid value {value:?} for option {key} (accepted: {accepted})")]
    BadOptionValue {
        /// The option.
        key: String,
        /// The value given.
        value: String,
        /// What it takes: "true or false", "68 to 65535", "l2, l3, l3s".
        accepted: &'static str,
    },
    /// The long and the short name of one option, with different values.
    #[error(
        "options {long} and {short} are the same option with different values ({first:?} and {second:?})"
    )]
    OptionGivenTwice {
        /// The long name (`com.docker.network.bridge.name`).
        long: String,
        /// The short name (`bridge.name`).
        short: String,
        /// The long name's value.
        first: String,
        /// The short name's value.
        second: String,
    },
    /// A name the kernel would refuse as an interface name.
    #[error("{0}")]
    IfName(BadIfName),
    /// An option whose value must be an interface name and is not one.
    #[error("option {key}: {name}")]
    OptionIfName {
        /// The option (`parent`, `com.docker.network.bridge.name`).
        key: String,
        /// Its value and what is wrong with it.
        name: BadIfName,
    },
    /// `-o parent=BASE.ID` with an ID that is not a VLAN ID.
    #[error("invalid VLAN ID {id} in parent {parent} (accepted: 1-4094)")]
    BadVlanId {
        /// The ID as given.
        id: String,
        /// The whole parent option.
        parent: String,
    },
    /// A network on an existing parent without the subnet of the LAN
    /// behind it.
    #[error("driver {driver} needs --subnet: the subnet of the LAN behind parent {parent}")]
    NeedsSubnet {
        /// `macvlan` or `ipvlan`.
        driver: String,
        /// The parent's name.
        parent: String,
    },
    /// `-o parent=` names an interface that does not exist.
    #[error("parent {parent} does not exist (give an existing interface, see `ip link`)")]
    NoSuchParent {
        /// The parent's name.
        parent: String,
    },
    /// `-o parent=BASE.ID` whose base interface does not exist.
    #[error("parent {parent}: its base interface {base} does not exist")]
    NoSuchVlanBase {
        /// The parent's name (`eth0.10`).
        parent: String,
        /// The base's name (`eth0`).
        base: String,
    },
    /// A parent that is itself a macvlan, ipvlan, macvtap or ipvtap link.
    #[error("parent {parent} is itself a {kind} interface (give the interface it hangs on instead)")]
    ParentIsSublink {
        /// The parent's name.
        parent: String,
        /// Its link kind.
        kind: String,
    },
    /// A parent enslaved to a bridge or another master.
    #[error(
        "parent {parent} is {master}: a port cannot carry macvlan or ipvlan interfaces (use the bridge itself)"
    )]
    ParentIsPort {
        /// The parent's name.
        parent: String,
        /// What it is enslaved to.
        master: Master,
    },
    /// A gateway that cannot be put on the bridge with its subnet's prefix
    /// length.
    #[error("gateway {gateway}")]
    BadGateway {
        /// The gateway.
        gateway: IpAddr,
        /// Why the address and prefix length do not go together.
        #[source]
        source: ipnet::PrefixLenError,
    },

    // ---- Conflicts with what exists. ----
    /// A parent that a network of the other sub-link kind uses.
    #[error("parent {parent} is used by {kind} network {network}: macvlan and ipvlan cannot share a parent")]
    ParentShared {
        /// The parent's name.
        parent: String,
        /// What the other network hangs on it.
        kind: SubLink,
        /// The other network.
        network: String,
    },
    /// A parent that an ipvlan network uses in another mode.
    #[error(
        "parent {parent} is used by ipvlan network {network} in mode {mode}: a parent has one ipvlan mode (accepted here: ipvlan_mode={mode})"
    )]
    IpvlanModeTaken {
        /// The parent's name.
        parent: String,
        /// The other network.
        network: String,
        /// Its mode, the one this parent has.
        mode: String,
    },
    /// A macvlan passthru network and another macvlan network on one
    /// parent.
    #[error("parent {parent} is used by macvlan network {network}: macvlan passthru needs its parent alone")]
    PassthruShared {
        /// The parent's name.
        parent: String,
        /// The other network.
        network: String,
    },
    /// The kernel refused a sub-interface with `EBUSY`.
    #[error(
        "creating {what}: the parent is busy (it carries interfaces of another kind, or a macvlan passthru interface, which takes a parent alone)"
    )]
    ParentBusy {
        /// The sub-interface (`macvlan eth0 on br0`).
        what: String,
    },
    /// A bridge name that an interface already has.
    #[error(
        "cannot use bridge name {name}: an interface with that name already exists{}",
        BridgeOf(network.as_deref())
    )]
    BridgeNameTaken {
        /// The bridge name.
        name: String,
        /// The id of the berth network whose bridge it is, when it is one.
        network: Option<String>,
    },
    /// A bridge that another berth network made for itself alone.
    #[error("cannot use bridge {bridge}: it is the bridge of berth network {network}")]
    BridgeOfAnotherNetwork {
        /// The bridge name.
        bridge: String,
        /// The name of the network whose bridge it is.
        network: String,
    },

    /// A number or name another network of the cluster holds.
    #[error("{what} is already used by {owner}")]
    Taken {
        /// What was asked for: `vxlan.id 4096`.
        what: String,
        /// Who holds it: `global network NAME`.
        owner: String,
    },

    // ---- Not found. ----
    /// A link a network needs is gone from the host.
    #[error("{role} {link} of network {network} is missing")]
    LinkMissing {
        /// What the link is to the network: `bridge`, `parent`.
        role: &'static str,
        /// The link's name.
        link: String,
        /// The network's name.
        network: String,
    },

    // ---- Unsupported here. ----
    /// The running kernel lacks a link kind.
    #[error(
        "this kernel has no {feature} support ({}){}",
        feature.config(),
        NeededBy(*needed_by)
    )]
    NoKernelSupport {
        /// The missing link kind.
        feature: Feature,
        /// What needs it, when that is not the driver itself ("a network
        /// without -o parent").
        needed_by: Option<&'static str>,
    },
    /// An MTU larger than the underlay carries once VXLAN's headers are
    /// added.
    #[error(
        "invalid value \"{mtu}\" for option mtu: the underlay {ifname} has MTU {underlay}, so an overlay takes at most {max} (accepted: 68 to {max})"
    )]
    MtuTooLarge {
        /// The MTU asked for.
        mtu: u32,
        /// The underlay interface.
        ifname: String,
        /// Its MTU.
        underlay: u32,
        /// The largest the overlay may have.
        max: u32,
    },
    /// A global network on a host that is in no cluster.
    #[error(
        "network create -d {driver} needs a cluster store: start berth daemon with --cluster-store etcd://HOST:PORT and --advertise-addr IP (see berth daemon --help)"
    )]
    NoCluster {
        /// The driver.
        driver: String,
    },
    /// A network whose driver cannot check its containers.
    #[error("network {network} (driver {driver}) cannot check its containers: only cni networks can")]
    CannotCheck {
        /// The network's name.
        network: String,
        /// Its driver.
        driver: String,
    },

    // ---- The kernel refused. ----
    /// A netlink request failed; `what` says what was being done. The
    /// source is the errno the kernel sent ([`netlink_io`]).
    #[error("{what}")]
    Netlink {
        /// What was being done: "creating bridge br0".
        what: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A network namespace could not be opened, made, entered, pinned or
    /// removed.
    #[error("{what}{}", SpacedPath(path.as_ref()))]
    Netns {
        /// What was being done: "opening network namespace".
        what: &'static str,
        /// The namespace's file, when there is one.
        path: Option<PathBuf>,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A sysctl could not be written.
    #[error("setting {key}={value}")]
    Sysctl {
        /// The key under `/proc/sys`, with `/`.
        key: String,
        /// The value.
        value: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An nftables batch of the firewall failed; `what` says what it was
    /// for.
    #[error("{what}")]
    Firewall {
        /// "adding firewall elements for bridge br0".
        what: String,
        /// The batch's failure, with its errno.
        #[source]
        source: NftError,
    },
    /// An nftables batch failed.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// A syscall, a file or a program failed; `what` says what was being
    /// done.
    #[error("{what}")]
    Io {
        /// What was being done: "reading CNI configuration /etc/cni/x".
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },

    // ---- Broken invariants. ----
    /// A driver was asked to attach an endpoint without a sandbox.
    #[error("{}attach without a sandbox", Prefix(*driver))]
    NoSandbox {
        /// The driver, when it names itself in the message (`cni`).
        driver: Option<&'static str>,
    },
    /// A link berth just made or found went away under it.
    #[error("{link} vanished{when}")]
    Vanished {
        /// The link: "bridge br0", "eth0".
        link: String,
        /// When.
        when: Vanish,
    },
    /// The interface an attach just made is not in the sandbox.
    #[error("{ifname} is missing in the sandbox")]
    NotInSandbox {
        /// The interface's name.
        ifname: String,
    },
    /// A sandbox's path is not UTF-8, and the plugin protocol carries it
    /// as a string.
    #[error("sandbox path {} is not UTF-8", .0.display())]
    SandboxPathNotUtf8(PathBuf),

    // ---- The serving side of the plugin ABI. ----
    /// The engine called a plugin without a method name.
    #[error("no method name")]
    NoMethod,
    /// The engine called a method the plugin does not have.
    #[error(
        "unknown method {method:?} (this plugin speaks berth_plugin_v1 version {})",
        berth_plugin::abi::ABI_VERSION
    )]
    UnknownMethod {
        /// The method.
        method: String,
    },
    /// A request that does not decode.
    #[error("{method}: the request does not decode")]
    BadRequest {
        /// The method.
        method: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A request without its `Berth` member: not from a berth engine.
    #[error("{method}: the request has no Berth member (is this a berth engine?)")]
    NoBerthMember {
        /// The method.
        method: String,
    },
    /// Something could not be encoded as JSON.
    #[error("encoding {what}")]
    Encode {
        /// "the answer", "a plugin request".
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The plugin's driver could not be made.
    #[error("the plugin did not start")]
    NotStarted,
    /// The plugin's tokio runtime could not be made.
    #[error("starting the plugin's runtime")]
    Runtime(#[source] io::Error),
    /// A task of the plugin's runtime ended without an answer.
    #[error("the plugin's task ended")]
    TaskEnded(#[source] tokio::task::JoinError),
    /// The plugin's thread that enters sandboxes is gone.
    #[error("the plugin's namespace thread ended{}", if *at_once { " at once" } else { "" })]
    NamespaceThreadEnded {
        /// It ended as soon as it was started.
        at_once: bool,
    },

    // ---- The engine's plugin transports. ----
    /// A step of the engine's work with a plugin failed: a call (its
    /// socket unreachable, its answer unusable) or the engine's own work
    /// after it (a Docker plugin's interface, moved into the sandbox and
    /// configured after its `Join`). The source is what failed, and gives
    /// the kind.
    #[error("plugin {plugin}: {step}")]
    PluginStep {
        /// The plugin.
        plugin: String,
        /// The step: "Join failed", "wiring in the interface from Join".
        step: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },

    // ---- The cluster store. ----
    /// The cluster store failed or could not be reached, in its own words
    /// (which name the store and what was being done).
    #[error(transparent)]
    Cluster(Box<dyn std::error::Error + Send + Sync>),

    // ---- From outside berth. ----
    /// A plugin's failure in its own words: what a shared-library plugin,
    /// a Docker plugin or a CNI program answered, or a third-party driver
    /// said of itself, with the words the engine puts around it to name
    /// the plugin and the call (and the rollback that followed). The text
    /// comes from outside berth, so it stays text; `kind` is the category
    /// the plugin gave or the engine judged.
    #[error("{message}")]
    Plugin {
        /// How to treat it.
        kind: Kind,
        /// The message, one line.
        message: String,
    },
}

/// `Result` with berth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a caller should treat an [`Error`]: the categories of the plugin
/// ABI's `BerthKind`, which the engine's API turns into HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The request itself is wrong: a bad option, address or name (400).
    Invalid,
    /// The named object does not exist (404).
    NotFound,
    /// The request clashes with existing state (409).
    Conflict,
    /// This kernel or driver cannot do what was asked (400).
    Unsupported,
    /// The kernel refused (500).
    Kernel,
    /// A broken invariant or an outside program that failed (500).
    Internal,
}

impl Kind {
    /// The kind as the plugin ABI's `BerthKind` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::NotFound => "not-found",
            Kind::Conflict => "conflict",
            Kind::Unsupported => "unsupported",
            Kind::Kernel => "kernel",
            Kind::Internal => "internal",
        }
    }

    /// The kind a plugin's `BerthKind` names; anything else (`kernel`
    /// too: the errno stayed in the plugin) is [`Kind::Internal`].
    pub fn from_berth_kind(kind: Option<&str>) -> Self {
        match kind {
            Some("invalid") => Kind::Invalid,
            Some("not-found") => Kind::NotFound,
            Some("conflict") => Kind::Conflict,
            Some("unsupported") => Kind::Unsupported,
            _ => Kind::Internal,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with an interface name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfNameFault {
    /// It is empty.
    Empty,
    /// It is longer than [`IFNAME_MAX`] bytes.
    TooLong(usize),
    /// It is `.` or `..`.
    PathComponent,
    /// It contains `/`, `:`, whitespace or NUL.
    Contains(char),
}

impl fmt::Display for IfNameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfNameFault::Empty => f.write_str("it is empty"),
            IfNameFault::TooLong(n) => write!(f, "it is {n} bytes long"),
            IfNameFault::PathComponent => f.write_str("it is a path component"),
            IfNameFault::Contains(c) => write!(f, "it contains {c:?}"),
        }
    }
}

/// A string that is not an interface name, and why: printed as
/// `invalid interface name "…": … (accepted: …)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadIfName {
    /// The string.
    pub name: String,
    /// What is wrong with it.
    pub fault: IfNameFault,
}

impl fmt::Display for BadIfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid interface name {:?}: {} (accepted: 1-{IFNAME_MAX} bytes without '/', ':' or spaces)",
            self.name, self.fault
        )
    }
}

/// What a parent link is enslaved to ([`Error::ParentIsPort`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Master {
    /// A bridge, by name.
    Bridge(String),
    /// Another kind of link, by name.
    Link(String),
    /// A link that could not be found.
    Unknown,
}

impl fmt::Display for Master {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Master::Bridge(b) => write!(f, "a port of bridge {b}"),
            Master::Link(l) => write!(f, "enslaved to {l}"),
            Master::Unknown => f.write_str("enslaved to another link"),
        }
    }
}

/// When a link vanished ([`Error::Vanished`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vanish {
    /// Between two steps of the work on it.
    Meanwhile,
    /// Right after berth created it.
    AfterCreate,
    /// From the sandbox it was just moved into.
    FromSandbox,
}

impl fmt::Display for Vanish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vanish::Meanwhile => "",
            Vanish::AfterCreate => " after it was created",
            Vanish::FromSandbox => " from the sandbox",
        })
    }
}

/// "accepted: a, b" or "it accepts no options".
struct Accepted<'a>(&'a [String]);

impl fmt::Display for Accepted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("it accepts no options")
        } else {
            write!(f, "accepted: {}", self.0.join(", "))
        }
    }
}

/// " (the bridge of berth network ID12)" or nothing.
struct BridgeOf<'a>(Option<&'a str>);

impl fmt::Display for BridgeOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (the bridge of berth network {})", &id[..id.len().min(12)]),
            None => Ok(()),
        }
    }
}

/// ", which NEEDER needs" or nothing.
struct NeededBy(Option<&'static str>);

impl fmt::Display for NeededBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, ", which {n} needs"),
            None => Ok(()),
        }
    }
}

/// "WORD " or nothing.
struct Prefix(Option<&'static str>);

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(w) => write!(f, "{w} "),
            None => Ok(()),
        }
    }
}

/// " PATH" or nothing.
struct SpacedPath<'a>(Option<&'a PathBuf>);

impl fmt::Display for SpacedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, " {}", p.display()),
            None => Ok(()),
        }
    }
}

impl Error {
    /// How a caller should treat it.
    pub fn kind(&self) -> Kind {
        use Error::*;
        match self {
            UnknownOption { .. }
            | BadOptionValue { .. }
            | OptionGivenTwice { .. }
            | IfName(_)
            | OptionIfName { .. }
            | BadVlanId { .. }
            | NeedsSubnet { .. }
            | NoSuchParent { .. }
            | NoSuchVlanBase { .. }
            | ParentIsSublink { .. }
            | ParentIsPort { .. }
            | BadGateway { .. }
            | MtuTooLarge { .. }
            | NoMethod
            | UnknownMethod { .. }
            | BadRequest { .. }
            | NoBerthMember { .. } => Kind::Invalid,
            ParentShared { .. }
            | IpvlanModeTaken { .. }
            | PassthruShared { .. }
            | ParentBusy { .. }
            | BridgeNameTaken { .. }
            | BridgeOfAnotherNetwork { .. }
            | Taken { .. } => Kind::Conflict,
            LinkMissing { .. } => Kind::NotFound,
            NoKernelSupport { .. } | NoCluster { .. } | CannotCheck { .. } => Kind::Unsupported,
            Netlink { .. } | Netns { .. } | Sysctl { .. } | Firewall { .. } | Nft(_) | Io { .. } => {
                Kind::Kernel
            }
            NoSandbox { .. }
            | Vanished { .. }
            | NotInSandbox { .. }
            | SandboxPathNotUtf8(_)
            | Encode { .. }
            | NotStarted
            | Runtime(_)
            | TaskEnded(_)
            | NamespaceThreadEnded { .. }
            | Cluster(_) => Kind::Internal,
            PluginStep { source, .. } => source.kind(),
            Plugin { kind, .. } => *kind,
        }
    }

    /// An [`Error::Netlink`]: an rtnetlink failure and what we were doing,
    /// keeping the errno.
    pub fn netlink(what: impl Into<String>, err: rtnetlink::Error) -> Self {
        Self::Netlink {
            what: what.into(),
            source: netlink_io(err),
        }
    }

    /// An [`Error::Io`]: an `io::Error` and what we were doing.
    pub fn io(what: impl Into<String>, err: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source: err,
        }
    }

    /// An [`Error::Netns`] without a path.
    pub fn netns(what: &'static str, err: io::Error) -> Self {
        Self::Netns {
            what,
            path: None,
            source: err,
        }
    }

    /// An [`Error::Plugin`]: a plugin's own words, of `kind`.
    pub fn plugin(kind: Kind, message: impl Into<String>) -> Self {
        Self::Plugin {
            kind,
            message: message.into(),
        }
    }

    /// The errno behind a kernel error, if there is one anywhere in its
    /// chain of causes.
    pub fn errno(&self) -> Option<i32> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(c) = cause {
            if let Some(code) = c.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
                return Some(code);
            }
            cause = c.source();
        }
        None
    }

    /// The message with every cause appended once, as `{:#}` prints it in
    /// `anyhow`: "creating bridge br0: File exists (os error 17)".
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// An error's message with every cause appended once, as `{:#}` prints
/// it in `anyhow`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Turns an rtnetlink error into an `io::Error`, keeping the errno when the
/// kernel sent one.
pub fn netlink_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// True when an rtnetlink error carries the given errno (positive, e.g.
/// `libc::ENODEV`).
pub fn is_errno(err: &rtnetlink::Error, errno: i32) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_berth_kind() {
        for k in [Kind::Invalid, Kind::NotFound, Kind::Conflict, Kind::Unsupported] {
            assert_eq!(Kind::from_berth_kind(Some(k.as_str())), k);
        }
        assert_eq!(Kind::from_berth_kind(Some("kernel")), Kind::Internal);
        assert_eq!(Kind::from_berth_kind(None), Kind::Internal);
    }

    #[test]
    fn a_netlink_error_keeps_its_errno_and_prints_it_once() {
        let e = Error::Netlink {
            what: "creating bridge br0".into(),
            source: io::Error::from_raw_os_error(libc::EEXIST),
        };
        assert_eq!(e.to_string(), "creating bridge br0");
        assert_eq!(e.chain(), "creating bridge br0: File exists (os error 17)");
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(e.kind(), Kind::Kernel);
    }

    #[test]
    fn messages_are_built_from_the_data() {
        let e = Error::UnknownOption {
            driver: "host".into(),
            key: "x".into(),
            accepted: vec![],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown option "x" for driver host (it accepts no options)"#
        );
        let e = Error::NoKernelSupport {
            feature: Feature::Dummy,
            needed_by: Some("a network without -o parent"),
        };
        assert_eq!(
            e.to_string(),
            "this kernel has no dummy link support (CONFIG_DUMMY), which a network without -o parent needs"
        );
        let e = Error::Netns {
            what: "opening network namespace",
            path: Some("/run/netns/a".into()),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(e.to_string(), "opening network namespace /run/netns/a");
        let e = Error::BridgeNameTaken {
            name: "br0".into(),
            network: Some("0123456789abcdef".into()),
        };
        assert_eq!(
            e.to_string(),
            "cannot use bridge name br0: an interface with that name already exists (the bridge of berth network 0123456789ab)"
        );
    }
}
