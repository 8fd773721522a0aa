//! What the store keeps. The API's views of it are in [`crate::api`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use berth_core::{IfName, Mac, Network, Proto, Scope};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A network as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// What its driver sees.
    #[serde(flatten)]
    pub net: Network,
    /// RFC 3339 creation time.
    pub created: String,
    /// Local or global.
    pub scope: Scope,
    /// `--attachable`.
    #[serde(default)]
    pub attachable: bool,
    /// `--label KEY=VALUE`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `bridge`, `host` and `none`: made at first start, never removed.
    #[serde(default)]
    pub builtin: bool,
}

/// One container's membership in one network, as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// 64 hex digits.
    pub id: String,
    /// The network's id.
    pub network_id: String,
    /// The interface inside the sandbox (`eth0`); none for host and none.
    pub ifname: Option<IfName>,
    /// Its MAC; [`Mac::ZERO`] (stored as `""`) where there is no
    /// interface.
    #[serde(default)]
    pub mac: Mac,
    /// Addresses with prefix lengths.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
    /// The network's gateways, as `inspect` shows them.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
    /// This endpoint carries the sandbox's default routes.
    #[serde(default)]
    pub default_route: bool,
    /// The host side of the link, where there is one.
    #[serde(default)]
    pub host_ifname: Option<String>,
    /// The address was asked for with `--ip`.
    #[serde(default)]
    pub static_ip: Vec<IpAddr>,
    /// The MAC was asked for with `--mac-address`.
    #[serde(default)]
    pub mac_asked: bool,
    /// Extra names on this network (`--network-alias`, `connect --alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What the driver asked to keep ([`berth_core::Attachment::state`]),
    /// handed back to it on detach and check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_state: Option<Value>,
}

impl EndpointRecord {
    /// The IPv4 address, if any.
    pub fn ipv4(&self) -> Option<IpNet> {
        self.addresses.iter().copied().find(|a| a.addr().is_ipv4())
    }

    /// The IPv6 address, if any.
    pub fn ipv6(&self) -> Option<IpNet> {
        self.addresses.iter().copied().find(|a| a.addr().is_ipv6())
    }

    /// The gateway of one family, as `inspect` shows it; empty when none.
    pub(crate) fn gateway(&self, v6: bool) -> String {
        self.gateways
            .iter()
            .find(|g| g.is_ipv6() == v6)
            .map(|g| g.to_string())
            .unwrap_or_default()
    }
}

/// One published port or range, with the host port chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// The protocol.
    pub proto: Proto,
    /// The host address; `0.0.0.0` or `::` for every address.
    pub host_ip: IpAddr,
    /// First host port.
    pub host_port: u16,
    /// Last host port (the same for one port).
    pub host_end: u16,
    /// The container port `host_port` goes to; the range continues from it.
    pub container_port: u16,
}

impl PortBinding {
    /// Each host port with its container port.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (self.host_port..=self.host_end).zip(self.container_port..)
    }

    /// `0.0.0.0:8080-8089->80-89/tcp`, as `docker ps` prints bindings.
    pub fn summary(&self) -> String {
        let host = match self.host_ip {
            IpAddr::V6(a) => format!("[{a}]"),
            a => a.to_string(),
        };
        let n = self.host_end - self.host_port;
        if n == 0 {
            format!(
                "{host}:{}->{}/{}",
                self.host_port,
                self.container_port,
                self.proto.as_str()
            )
        } else {
            format!(
                "{host}:{}-{}->{}-{}/{}",
                self.host_port,
                self.host_end,
                self.container_port,
                self.container_port + n,
                self.proto.as_str()
            )
        }
    }
}

/// Where a container's process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its network is set up; its process has not started yet.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended; its network was taken down.
    Exited,
}

/// A legacy link (`--link NAME[:ALIAS]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The linked container's id.
    pub target: String,
    /// Its name when the link was made.
    pub name: String,
    /// The alias (the name itself when none was given).
    pub alias: String,
}

/// How a container resolves names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `--dns`.
    #[serde(default)]
    pub servers: Vec<IpAddr>,
    /// `--dns-search`.
    #[serde(default)]
    pub search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub options: Vec<String>,
    /// `--add-host`, with `host-gateway` already resolved.
    #[serde(default)]
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// `--link`.
    #[serde(default)]
    pub links: Vec<LinkRecord>,
    /// It asks the embedded resolver at 127.0.0.11 (it started on a
    /// user-defined network).
    #[serde(default)]
    pub embedded: bool,
    /// Hashes of the `/etc/hosts` and `/etc/resolv.conf` berth last wrote:
    /// a file that no longer matches was edited inside the container and is
    /// left alone, as Docker does.
    #[serde(default)]
    pub hosts_hash: Option<u64>,
    /// See `hosts_hash`.
    #[serde(default)]
    pub resolv_hash: Option<u64>,
}

/// One network a stopped container was on, as `berth start` joins it again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LastEndpoint {
    /// The network's name.
    pub network: String,
    /// The addresses asked for with `--ip`/`--ip6`, kept on a restart.
    #[serde(default)]
    pub static_ip: Vec<IpAddr>,
    /// Extra names on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The MAC asked for with `--mac-address`, kept on a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
}

/// A container as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// The hostname inside (`-h`), the short id by default.
    pub hostname: String,
    /// `--domainname`.
    #[serde(default)]
    pub domainname: String,
    /// Name resolution settings.
    #[serde(default)]
    pub dns: DnsConfig,
    /// The command.
    pub cmd: Vec<String>,
    /// `--rm`.
    #[serde(default)]
    pub auto_remove: bool,
    /// The network it was started on (`--network`).
    pub network_mode: String,
    /// Its memberships, in the order they were made.
    #[serde(default)]
    pub endpoints: Vec<EndpointRecord>,
    /// The pinned network namespace while the network is up.
    #[serde(default)]
    pub sandbox: Option<PathBuf>,
    /// Published ports (`-p`, `-P`), while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBinding>,
    /// The network whose address the published ports lead to (its id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ports_network: String,
    /// `--expose`, as `PORT/PROTO` (ranges as `A-B/PROTO`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<String>,
    /// The `-p` specs as they were asked (`HostConfig.PortBindings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_specs: Vec<String>,
    /// The process's environment, directory and identity, for `start`.
    #[serde(default)]
    pub process: berth_api::ContainerProcess,
    /// The networks it was on when it exited (for `ps -a`).
    #[serde(default)]
    pub last_networks: Vec<String>,
    /// Its memberships when it exited, for `berth start`: each network by
    /// name, with the addresses asked with `--ip` and the aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_endpoints: Vec<LastEndpoint>,
    /// Status.
    pub status: Status,
    /// The process (while running).
    #[serde(default)]
    pub pid: u32,
    /// The process's start time in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`), which tells a reused PID apart.
    #[serde(default)]
    pub pid_start: u64,
    /// The exit code, once exited.
    #[serde(default)]
    pub exit_code: i32,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: String,
    /// RFC 3339.
    #[serde(default)]
    pub finished_at: String,
    /// Set when the sandbox is another runtime's namespace (a CNI `ADD`):
    /// berth wires its endpoint but never made, runs or removes anything
    /// else there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSandbox>,
}

/// A namespace of another runtime that berth attached to one of its
/// networks (`berth` run as a CNI plugin): the runtime's key for the
/// attachment and the namespace's path. berth never pins, enters for a
/// process, or removes that namespace; `sandbox` holds the same path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSandbox {
    /// The runtime's id of its container (`CNI_CONTAINERID`).
    pub id: String,
    /// The interface berth made there (`CNI_IFNAME`).
    pub ifname: String,
    /// The namespace (`CNI_NETNS`: `/run/netns/NAME`, `/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// The namespace's inode when it was attached: a path that now leads
    /// to another namespace (a PID reused) is not this one.
    #[serde(default)]
    pub ino: u64,
}

impl ExternalSandbox {
    /// Whether the namespace it was attached in is still at its path.
    pub fn is_there(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.netns).is_ok_and(|m| self.ino == 0 || m.ino() == self.ino)
    }
}

impl ContainerRecord {
    /// Whether its sandbox is another runtime's namespace.
    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }

    /// The first 12 digits of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// The endpoint on a network, by network id.
    pub fn endpoint(&self, network_id: &str) -> Option<&EndpointRecord> {
        self.endpoints.iter().find(|e| e.network_id == network_id)
    }
}

/// Paths of a container's generated files and log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerPaths {
    /// Generated `/etc/hosts`.
    pub hosts: PathBuf,
    /// Generated `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Generated `/etc/hostname`.
    pub hostname: PathBuf,
    /// Output of a detached container.
    pub log: PathBuf,
    /// The note that its process started ([`StartedNote`]), kept on the
    /// exec root's tmpfs until the container ends.
    pub started: PathBuf,
}

/// What a started report said, noted on the exec root's tmpfs: the store
/// commits it without waiting for the disk, and a restart after a crash
/// that lost the commit finds it here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StartedNote {
    /// The process's pid.
    pub pid: u32,
    /// Its start time (`/proc/PID/stat`), which tells it from a later
    /// process with the same pid.
    pub pid_start: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
}
