//! [`Error`]: what the engine refuses or fails at, each variant with its
//! data, and the HTTP status the API answers it with ([`Error::status`]).
//!
//! The engine decides most of these itself (names, addresses, ports,
//! flags, the state of networks and containers); what a driver, the
//! kernel or berth-core reports comes wrapped in [`Error::Driver`], whose
//! category ([`berth_core::Kind`]) gives the status.

mod parts;
mod status;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

pub use self::parts::{
    AddHostFault, AddressRole, HostPort, HostnameFault, NoPublish, Object, PortFault, Process, Unsupported,
};
use self::parts::{AnySubnet, Attached, By, Field, Holder, Joined, Pid, WrongFamily};

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Not found (404). ----
    /// No network has this name, id or id prefix.
    #[error("network {key} not found")]
    NetworkNotFound {
        /// What was asked for.
        key: String,
    },
    /// No container has this name, id or id prefix.
    #[error("no such container: {key}")]
    ContainerNotFound {
        /// What was asked for.
        key: String,
    },
    /// `--link NAME` names no container.
    #[error("--link {name}: no such container")]
    LinkTargetNotFound {
        /// The name given.
        name: String,
    },
    /// A container is not on the network it is to leave.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// A network that is being removed gets no new containers.
    #[error("network {network} is being removed")]
    NetworkBeingRemoved {
        /// The network's name.
        network: String,
    },
    /// No route of the API has this path.
    #[error("no such endpoint: {path}")]
    NoSuchRoute {
        /// The request's path.
        path: String,
    },

    // ---- Conflicts with what exists (409). ----
    /// A network name that is taken (or being created).
    #[error("network with name {name} already exists")]
    NetworkExists {
        /// The name.
        name: String,
    },
    /// A second network of a driver that has one only (`host`, `null`).
    #[error("only one instance of the {driver:?} network is allowed (it is {existing:?})")]
    OnlyOneNetwork {
        /// The driver.
        driver: String,
        /// Its network.
        existing: String,
    },
    /// A subnet that overlaps another network's.
    #[error("subnet {subnet} overlaps subnet {taken} of network {network}")]
    SubnetTaken {
        /// The subnet asked for.
        subnet: IpNet,
        /// The subnet it overlaps.
        taken: IpNet,
        /// The network that has it.
        network: String,
    },
    /// Every default pool overlaps a network or a route.
    #[error("all of the default address pools ({pools}) overlap existing networks or routes: give --subnet")]
    PoolsExhausted {
        /// The pools, e.g. `172.17-31.0.0/16, 192.168.0-240.0/20`.
        pools: String,
    },
    /// A subnet without a free address.
    #[error("no free addresses left in subnet {subnet} (all {size} are in use or reserved)")]
    SubnetFull {
        /// The subnet.
        subnet: IpNet,
        /// How many addresses it hands out.
        size: u128,
    },
    /// `--ip` asks for the gateway or an aux address.
    #[error("address {ip} is reserved (gateway or aux address)")]
    AddressReserved {
        /// The address.
        ip: IpAddr,
    },
    /// `--ip` asks for an address a container has.
    #[error("address {ip} is already in use{}", By(container.as_deref()))]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// The container that has it, when it is known.
        container: Option<String>,
    },
    /// A network to remove still has containers.
    #[error(
        "network {network} has active endpoints: {} (disconnect or remove {} first)",
        Attached(containers),
        if containers.len() == 1 { "it" } else { "them" }
    )]
    NetworkInUse {
        /// The network's name.
        network: String,
        /// The names of its containers.
        containers: Vec<String>,
    },
    /// A network to remove is getting containers right now.
    #[error("network {network} has containers being attached right now")]
    NetworkAttaching {
        /// The network's name.
        network: String,
    },
    /// A network to remove is being removed already.
    #[error("network {network} is already being removed")]
    NetworkAlreadyRemoving {
        /// The network's name.
        network: String,
    },
    /// A container is on the network already.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// The operation needs a running container.
    #[error("container {container} is not running")]
    NotRunning {
        /// The container's name.
        container: String,
    },
    /// `berth start` could not run the container's command again.
    #[error("starting container {container}: {message}")]
    StartFailed {
        /// The container's name.
        container: String,
        /// What the shim said.
        message: String,
    },
    /// A signal name or number that Linux does not have.
    #[error("invalid signal: {0}")]
    BadSignal(String),
    /// The container's process was reported started before.
    #[error("container {container} was already started")]
    AlreadyStarted {
        /// The container's name.
        container: String,
    },
    /// A container whose network was taken down by a daemon restart
    /// between its create and its start.
    #[error(
        "container {container} lost its network: the daemon restarted before it started (remove it and run it again)"
    )]
    LostBeforeStart {
        /// The container's name.
        container: String,
    },
    /// A running container to remove without `force`.
    #[error(
        "cannot remove container {container}: container is running: stop the container before removing or force remove"
    )]
    ContainerRunning {
        /// The container's name.
        container: String,
    },
    /// A container name that another container has.
    #[error("container name {name:?} is already in use by container {holder}")]
    ContainerNameInUse {
        /// The name.
        name: String,
        /// The short id of the container that has it.
        holder: String,
    },
    /// A container name that a container being created has.
    #[error("container name {name:?} is already being used")]
    ContainerNameReserved {
        /// The name.
        name: String,
    },
    /// A namespace of another runtime already has this attachment
    /// (the same container id and interface name).
    #[error(
        "container {id} of another runtime already has interface {ifname} on a berth network (berth's container {container})"
    )]
    SandboxAttached {
        /// The runtime's container id.
        id: String,
        /// The interface name.
        ifname: String,
        /// berth's name of the attachment.
        container: String,
    },
    /// The interface to make in another runtime's namespace is there
    /// already.
    #[error("the namespace {} already has an interface {ifname}", .netns.display())]
    InterfaceExists {
        /// The namespace.
        netns: PathBuf,
        /// The interface name.
        ifname: String,
    },
    /// A check found an attachment of another runtime's namespace not as
    /// berth left it.
    #[error("container {container}: {what}")]
    SandboxBroken {
        /// The container's name.
        container: String,
        /// What is wrong.
        what: String,
    },
    /// A container in another runtime's namespace is started and stopped
    /// by that runtime.
    #[error("container {container} is in a namespace of another runtime, which starts and stops it")]
    ExternalContainer {
        /// The container's name.
        container: String,
    },
    /// Another daemon holds the data root's lock.
    #[error(
        "another berth daemon is already running with data root {}{}",
        .data_root.display(),
        Pid(pid.as_deref())
    )]
    DaemonRunning {
        /// The data root.
        data_root: PathBuf,
        /// The pid the lock file names, when it names one.
        pid: Option<String>,
    },
    /// Another daemon holds the exec root's lock: its sandboxes live
    /// there, and this one's restart sweep would remove them.
    #[error(
        "another berth daemon is already running with exec root {}{} (give each daemon its own --exec-root)",
        .exec_root.display(),
        Pid(pid.as_deref())
    )]
    ExecRootInUse {
        /// The exec root.
        exec_root: PathBuf,
        /// The pid the lock file names, when it names one.
        pid: Option<String>,
    },
    /// A host port another container publishes.
    #[error("host port {port} is already published by container {container}")]
    PortPublished {
        /// The port.
        port: HostPort,
        /// The container that publishes it.
        container: String,
    },
    /// A host port the same container publishes twice.
    #[error("host port {port} is published twice by this container")]
    PortPublishedTwice {
        /// The port.
        port: HostPort,
    },
    /// A host port a process on the host holds.
    #[error("host port {port} is already in use by a process on the host{}", Holder(holder.as_ref()))]
    PortHeld {
        /// The port.
        port: HostPort,
        /// The process that holds it, when it could be found.
        holder: Option<Process>,
    },
    /// No block of free host ports in the ephemeral range.
    #[error("no {count} free consecutive host ports left in the ephemeral range {first}-{last}")]
    NoEphemeralPorts {
        /// How many ports the block needs.
        count: u16,
        /// The range's first port.
        first: u16,
        /// Its last port.
        last: u16,
    },
    /// No free host port in the range `-p` gives.
    #[error("no free host port in {first}-{last}")]
    NoFreePort {
        /// The range's first port.
        first: u16,
        /// Its last port.
        last: u16,
        /// Why the last port tried was not free.
        #[source]
        last_refusal: Option<Box<Error>>,
    },

    // ---- Forbidden (403). ----
    /// A pre-defined network (`bridge`, `host`, `none`) cannot be removed.
    #[error("{network} is a pre-defined network and cannot be removed")]
    PredefinedNetwork {
        /// The network's name.
        network: String,
    },

    // ---- Bad input (400): names. ----
    /// A network or container id prefix that matches several.
    #[error("{kind} id prefix {key} is ambiguous")]
    AmbiguousPrefix {
        /// A network's or a container's.
        kind: Object,
        /// The prefix.
        key: String,
    },
    /// A network or container name Docker would refuse.
    #[error(
        "invalid {kind} name {name:?} (accepted: 1-128 characters from [a-zA-Z0-9_.-], starting with a letter or digit)"
    )]
    BadName {
        /// A network's or a container's.
        kind: Object,
        /// The name.
        name: String,
    },
    /// A hostname that is not one (RFC 1123).
    #[error(
        "invalid hostname {name:?}: {fault} (accepted: labels of 1-63 letters, digits or '-', separated by '.', not starting or ending with '-')"
    )]
    BadHostname {
        /// The hostname.
        name: String,
        /// What is wrong with it.
        fault: HostnameFault,
    },
    /// `-d NAME` names no driver.
    #[error("unknown driver {name:?} (known: {})", .known.join(", "))]
    UnknownDriver {
        /// The name.
        name: String,
        /// The drivers and aliases there are.
        known: Vec<String>,
    },

    // ---- Bad input (400): the name-resolution flags of `berth run`. ----
    /// A flag's value that is not what the flag takes: `--dns`,
    /// `--dns-search`, `--dns-option`, `--link`, `--network-alias`,
    /// `--domainname`.
    #[error("invalid {flag} {value:?} (accepted: {accepted})")]
    BadFlag {
        /// The flag, as the message names it ("--dns address").
        flag: &'static str,
        /// The value.
        value: String,
        /// What the flag takes.
        accepted: &'static str,
    },
    /// A namespace of another runtime that berth cannot attach: not a
    /// network namespace, the daemon's own, or on a network whose
    /// containers get no interface of their own.
    #[error("cannot attach the namespace {} to network {network}: {reason}", .netns.display())]
    SandboxRefused {
        /// The namespace's path.
        netns: PathBuf,
        /// The network's name.
        network: String,
        /// Why.
        reason: &'static str,
    },
    /// `--mac-address` on a network whose containers have no interface
    /// of their own (host, none).
    #[error("--mac-address: network {network} gives containers no interface of their own")]
    MacWithoutInterface {
        /// The network's name.
        network: String,
    },
    /// An `--add-host` that is not `NAME:IP`.
    #[error("invalid --add-host {value:?}: {fault} (accepted: NAME:IP, NAME=IP or NAME:host-gateway)")]
    BadAddHost {
        /// The value.
        value: String,
        /// What is wrong with it.
        fault: AddHostFault,
    },
    /// `--add-host NAME:host-gateway` on a network without a gateway.
    #[error("--add-host {host}:host-gateway: network {network} has no gateway to point at")]
    NoHostGateway {
        /// The name.
        host: String,
        /// The network's name.
        network: String,
    },
    /// `--link` on a network that has no links.
    #[error("--link works on bridge networks only, not on the {network} network")]
    LinkOffBridge {
        /// The network's name.
        network: String,
    },
    /// `--link` to a container on another network.
    #[error(
        "--link {name}: container {container} is not on network {network} (links join containers of one network)"
    )]
    LinkAcrossNetworks {
        /// The name given.
        name: String,
        /// The container's name.
        container: String,
        /// The network the new container starts on.
        network: String,
    },
    /// Network aliases on a pre-defined network.
    #[error("network aliases work on user-defined networks only, not on the {network} network")]
    AliasOnPredefined {
        /// The network's name.
        network: String,
    },

    // ---- Bad input (400): subnets and addresses. ----
    /// A subnet, ip-range or address that is not an address prefix.
    #[error(
        "invalid {what} {value:?}: not an address prefix (accepted: CIDR notation such as 172.28.0.0/16 or fd00:28::/64)"
    )]
    BadPrefix {
        /// What it is: `subnet`, `ip-range`.
        what: String,
        /// The value.
        value: String,
    },
    /// A prefix with host bits set.
    #[error("invalid {what} {value}: host bits are set (did you mean {}?)", .prefix.trunc())]
    HostBitsSet {
        /// What it is: `subnet`, `ip-range`.
        what: String,
        /// The value as given.
        value: String,
        /// The value read.
        prefix: IpNet,
    },
    /// An address that is not one.
    #[error(
        "invalid {what} {value:?}: not an IP address (accepted: an address such as 172.28.5.2 or fd00:28::2)"
    )]
    BadAddress {
        /// What it is: `gateway`, `--ip address`, `aux-address NAME`.
        what: String,
        /// The value.
        value: String,
    },
    /// An IPAM driver other than the default one.
    #[error("unknown IPAM driver {driver:?} (accepted: default)")]
    UnknownIpamDriver {
        /// The driver asked for.
        driver: String,
    },
    /// Two subnets of one network overlap.
    #[error("subnet {subnet} overlaps subnet {other} of the same network")]
    SubnetsOverlap {
        /// The later subnet.
        subnet: IpNet,
        /// The earlier one.
        other: IpNet,
    },
    /// A gateway, range or aux address outside every subnet given.
    #[error("{what} {ip} is not in {}", AnySubnet(subnets))]
    OutsideSubnets {
        /// What it is: `gateway`, `ip-range`, `aux-address NAME=`.
        what: String,
        /// The address.
        ip: IpAddr,
        /// The subnets given.
        subnets: Vec<IpNet>,
    },
    /// A gateway or `--ip` that is a subnet's network or broadcast
    /// address.
    #[error("{what} {ip} is the {role} address of {subnet}")]
    SpecialAddress {
        /// `gateway` or `address`.
        what: &'static str,
        /// The address.
        ip: IpAddr,
        /// Which address of the subnet it is.
        role: AddressRole,
        /// The subnet.
        subnet: IpNet,
    },
    /// Two gateways for one subnet.
    #[error("subnet {subnet} has two gateways ({first} and {second})")]
    TwoGateways {
        /// The subnet.
        subnet: IpNet,
        /// The first gateway.
        first: IpAddr,
        /// The second.
        second: IpAddr,
    },
    /// An ip-range in none of the subnets given.
    #[error("ip-range {range} is not in {}", AnySubnet(subnets))]
    RangeOutsideSubnets {
        /// The range, with its prefix length.
        range: IpNet,
        /// The subnets given.
        subnets: Vec<IpNet>,
    },
    /// An ip-range that is not inside its subnet.
    #[error("ip-range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        /// The range.
        range: IpNet,
        /// The subnet.
        subnet: IpNet,
    },
    /// Two ip-ranges for one subnet.
    #[error("subnet {subnet} has two ip-ranges")]
    TwoRanges {
        /// The subnet.
        subnet: IpNet,
    },
    /// An address plan for a driver without address management.
    #[error(
        "driver {driver} does not use address management: --subnet, --gateway and --ip-range are not accepted"
    )]
    NoAddressManagement {
        /// The driver.
        driver: String,
    },
    /// An IPv6 subnet without `--ipv6`.
    #[error("IPv6 subnet {subnet} needs --ipv6")]
    Ipv6SubnetWithoutFlag {
        /// The subnet.
        subnet: IpNet,
    },
    /// `--ipv6` for a driver without address management.
    #[error("driver {driver} does not take --ipv6")]
    Ipv6NotTaken {
        /// The driver.
        driver: String,
    },
    /// `--ip` outside the pool's subnet.
    #[error("address {ip} is not in subnet {subnet}")]
    AddressOutsideSubnet {
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// `--ip` with an IPv6 address or `--ip6` with an IPv4 one.
    #[error("{}", WrongFamily(*ip))]
    WrongFamily {
        /// The address given (IPv6 for `--ip`, IPv4 for `--ip6`).
        ip: IpAddr,
    },
    /// `--ip` on the default network.
    #[error(
        "a static address (--ip) works on user-defined networks only, not on the default {network} network"
    )]
    StaticOnPredefined {
        /// The network's name.
        network: String,
    },
    /// `--ip` on a network without addresses of berth's.
    #[error("network {network} (driver {driver}) has no addresses to choose from: --ip is not accepted")]
    StaticWithoutAddresses {
        /// The network's name.
        network: String,
        /// Its driver.
        driver: String,
    },
    /// `--ip6` on a network without IPv6.
    #[error("--ip6 {ip}: network {network} does not have IPv6 (create it with --ipv6)")]
    NoIpv6 {
        /// The address.
        ip: IpAddr,
        /// The network's name.
        network: String,
    },
    /// `--ip` outside every subnet of the network.
    #[error(
        "address {ip} is not in any subnet of network {network} ({})",
        Joined(subnets)
    )]
    OutsideNetwork {
        /// The address.
        ip: IpAddr,
        /// The network's name.
        network: String,
        /// Its subnets.
        subnets: Vec<IpNet>,
    },

    // ---- Bad input (400): networks a container is on. ----
    /// `network connect` to a network that a container gets at `run` only.
    #[error("a container cannot be connected to the {network} network: it is chosen with --network at run")]
    ConnectOnlyAtRun {
        /// The network's name.
        network: String,
    },
    /// `network connect` for a container on a network it cannot share.
    #[error("container {container} is on the {network} network, which it cannot share with another network")]
    NetworkNotShared {
        /// The container's name.
        container: String,
        /// The network's name.
        network: String,
    },
    /// `network disconnect` from a network a container has alone.
    #[error("a container cannot be disconnected from the {network} network: remove the container instead")]
    DisconnectRefused {
        /// The network's name.
        network: String,
    },

    // ---- Bad input (400): containers. ----
    /// `berth run` without a command.
    #[error("no command given (usage: berth run [OPTIONS] -- CMD [ARG...])")]
    NoCommand,
    /// The process reported started does not exist.
    #[error("process {pid} does not exist")]
    NoProcess {
        /// Its pid.
        pid: u32,
    },
    /// A connect or disconnect request without a container.
    #[error("no container given (\"Container\" is empty)")]
    NoContainerGiven,

    // ---- Bad input (400): published ports. ----
    /// A `-p` that does not parse.
    #[error(
        "invalid -p {spec:?}: {fault} (accepted: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp])"
    )]
    BadPublish {
        /// The `-p` value.
        spec: String,
        /// What is wrong with it.
        fault: PortFault,
    },
    /// An `--expose` that does not parse.
    #[error("invalid --expose {spec:?}: {fault} (accepted: PORT[-END][/tcp|udp|sctp])")]
    BadExpose {
        /// The `--expose` value.
        spec: String,
        /// What is wrong with it.
        fault: PortFault,
    },
    /// `-p` on a network where ports cannot be published.
    #[error("cannot publish ports (-p/-P): {0}")]
    CannotPublish(NoPublish),
    /// `-p [IPv6]:…` on a network without IPv6.
    #[error("-p [{ip}]:…: network {network} has no IPv6 (create it with --ipv6)")]
    PublishWithoutIpv6 {
        /// The host address.
        ip: IpAddr,
        /// The network's name.
        network: String,
    },
    /// A host address that is not the host's.
    #[error("host address {ip} is not an address of this host (see `ip addr`)")]
    NotAHostAddress {
        /// The address.
        ip: IpAddr,
    },

    // ---- Bad input (400): filters. ----
    /// `filters` that are not JSON of the filters' shape.
    #[error(
        "invalid filters {value:?}: {error} (accepted: a JSON object such as {{\"name\":[\"web\"]}} or {{\"name\":{{\"web\":true}}}})"
    )]
    BadFilters {
        /// The parameter.
        value: String,
        /// What the JSON parser said.
        error: serde_json::Error,
    },
    /// A filter this list does not have.
    #[error("invalid filter {key:?} (accepted: {})", .accepted.join(", "))]
    UnknownFilter {
        /// The filter.
        key: String,
        /// The filters it has.
        accepted: &'static [&'static str],
    },
    /// A filter's value that the filter does not take.
    #[error("invalid filter {key}={value:?} (accepted: {})", .accepted.join(", "))]
    BadFilterValue {
        /// The filter.
        key: String,
        /// The value.
        value: String,
        /// What it takes.
        accepted: Vec<&'static str>,
    },
    /// `until` on a prune.
    #[error(
        "filter \"until\" is not supported: berth does not prune networks by age (accepted: {})",
        .accepted.join(", ")
    )]
    UntilFilter {
        /// The filters a prune has.
        accepted: &'static [&'static str],
    },

    // ---- Bad input (400): requests as such. ----
    /// The body could not be read.
    #[error("reading the request body: {reason}")]
    UnreadableBody {
        /// What the HTTP layer said.
        reason: String,
    },
    /// A body longer than the daemon accepts (413).
    #[error("request body too large: the daemon accepts at most {limit} bytes (BERTH_API_MAX_BODY)")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A body that did not arrive in time (408).
    #[error("request body not received within {ms} ms")]
    BodyTimeout {
        /// How long the daemon waited.
        ms: u128,
    },
    /// An empty body where a JSON object is needed.
    #[error("invalid request body: it is empty (expected a JSON object)")]
    EmptyBody,
    /// A body that does not decode, and where.
    #[error("invalid request body: {}{error}", Field(field.as_deref()))]
    BadBody {
        /// The field that is wrong (`IPAM.Config[0].Subnet`), when serde
        /// could name one.
        field: Option<String>,
        /// What the decoder said.
        error: serde_json::Error,
    },
    /// A query string that does not decode.
    #[error("invalid query {query:?}: {reason}")]
    BadQuery {
        /// The query string.
        query: String,
        /// What the HTTP layer said.
        reason: String,
    },
    /// A path parameter that does not decode.
    #[error("invalid path {path}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What the HTTP layer said.
        reason: String,
    },
    /// An API version that is not one, or that berth does not serve.
    #[error(transparent)]
    Api(#[from] berth_api::Error),
    /// Something a Docker client may ask for and berth does not do.
    #[error("{0}")]
    Unsupported(Unsupported),

    // ---- Internal (500). ----
    /// A stored network whose driver is there but could not open it.
    #[error("network {network} could not be opened by its driver {driver} (see the daemon's log)")]
    NotOpened {
        /// The network's name.
        network: String,
        /// Its driver.
        driver: String,
    },
    /// A task of the engine's ended without an answer.
    #[error("{what}")]
    Task {
        /// What the task was for: "the operation's task failed",
        /// "reconciling the firewall".
        what: &'static str,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The store refused.
    #[error("store: {what}")]
    Store {
        /// What was being done: "committing", "opening /var/lib/berth/berth.redb".
        what: String,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// A store file that cannot be opened or read as a whole.
    #[error(
        "store {} cannot be read: {source} (start the daemon once with --recover-store to keep what can still be read and set the file aside)",
        .path.display()
    )]
    StoreDamaged {
        /// The file.
        path: PathBuf,
        /// redb's error (boxed: it is large, and rare).
        source: Box<redb::Error>,
    },
    /// A stored record that does not decode.
    #[error(
        "store: record {id} of table {table} does not decode: {source} (start the daemon once with --recover-store to drop it)"
    )]
    DecodeRecord {
        /// The table.
        table: &'static str,
        /// The record's id.
        id: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A record that does not encode.
    #[error("encoding record {id}")]
    EncodeRecord {
        /// The record's id.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file, mount or socket of the engine's own failed; `what` says
    /// what was being done.
    #[error("{what}")]
    Io {
        /// "writing /run/berth/containers/ID/hosts".
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// `--scope` other than the driver's.
    #[error("invalid scope {scope:?} for driver {driver}: its networks are {its} (leave --scope out)")]
    WrongScope {
        /// What was given.
        scope: String,
        /// The driver.
        driver: String,
        /// Its scope.
        its: String,
    },

    // ---- The cluster. ----
    /// `--advertise-addr` names neither an address nor an interface of
    /// this host.
    #[error(
        "--advertise-addr {given}: not an address or interface of this host (accepted: an IPv4 or IPv6 address of this host, or an interface that has one)"
    )]
    BadAdvertise {
        /// What was given.
        given: String,
    },
    /// What the cluster store said or could not say: a name, subnet,
    /// number or address taken, a network still in use on some host, or
    /// the store unreachable.
    #[error(transparent)]
    Cluster(#[from] berth_cluster::Error),

    // ---- From below. ----
    /// What a driver, the kernel plumbing or berth-core reported; its
    /// [`berth_core::Kind`] gives the status.
    #[error(transparent)]
    Driver(#[from] berth_core::Error),
}
