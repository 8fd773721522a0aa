//! What the store keeps, and the Docker-shaped views the API returns.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use berth_core::{IfName, Mac, Network, Proto, Scope};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

    fn gateway(&self, v6: bool) -> String {
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

/// Docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`, one
/// key per container port.
pub fn docker_ports(ports: &[PortBinding]) -> Value {
    let mut out = serde_json::Map::new();
    for b in ports {
        for (h, c) in b.pairs() {
            let key = format!("{c}/{}", b.proto.as_str());
            if let Some(list) = out.entry(key).or_insert_with(|| json!([])).as_array_mut() {
                list.push(json!({ "HostIp": b.host_ip.to_string(), "HostPort": h.to_string() }));
            }
        }
    }
    Value::Object(out)
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
    /// The networks it was on when it exited (for `ps -a`).
    #[serde(default)]
    pub last_networks: Vec<String>,
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
}

impl ContainerRecord {
    /// The first 12 digits of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// The endpoint on a network, by network id.
    pub fn endpoint(&self, network_id: &str) -> Option<&EndpointRecord> {
        self.endpoints.iter().find(|e| e.network_id == network_id)
    }
}

/// `docker network inspect`'s shape.
pub fn network_view(n: &NetworkRecord, containers: &[&ContainerRecord]) -> Value {
    let config: Vec<Value> = n
        .net
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({ "Subnet": c.subnet.to_string() });
            if let Some(gw) = c.gateway {
                v["Gateway"] = json!(gw.to_string());
            }
            if let Some(r) = c.ip_range {
                v["IPRange"] = json!(r.to_string());
            }
            if !c.aux_addresses.is_empty() {
                v["AuxiliaryAddresses"] = json!(c.aux_addresses);
            }
            v
        })
        .collect();
    let mut members = serde_json::Map::new();
    for c in containers {
        if let Some(ep) = c.endpoint(&n.net.id) {
            members.insert(
                c.id.clone(),
                json!({
                    "Name": c.name,
                    "EndpointID": ep.id,
                    "MacAddress": ep.mac,
                    "IPv4Address": ep.ipv4().map(|a| a.to_string()).unwrap_or_default(),
                    "IPv6Address": ep.ipv6().map(|a| a.to_string()).unwrap_or_default(),
                    "Ports": if c.ports_network == n.net.id {
                        c.ports.iter().map(PortBinding::summary).collect::<Vec<_>>()
                    } else {
                        Vec::new()
                    },
                }),
            );
        }
    }
    json!({
        "Name": n.net.name,
        "Id": n.net.id,
        "Created": n.created,
        "Scope": n.scope,
        "Driver": n.net.driver,
        "EnableIPv6": n.net.ipv6,
        "IPAM": { "Driver": "default", "Options": {}, "Config": config },
        "Internal": n.net.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": members,
        "Options": n.net.options,
        "Labels": n.labels,
    })
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
}

/// `docker inspect`'s shape, cut to what berth has. The state is the
/// record's: a process that died unreported is marked exited by the
/// engine's reaper within a second, with its exit code when the shim
/// reports it.
pub fn container_view(
    c: &ContainerRecord,
    paths: &ContainerPaths,
    networks: &BTreeMap<String, NetworkRecord>,
) -> Value {
    let mut nets = serde_json::Map::new();
    for ep in &c.endpoints {
        let Some(n) = networks.get(&ep.network_id) else {
            continue;
        };
        let v4 = ep.ipv4();
        let v6 = ep.ipv6();
        nets.insert(
            n.net.name.clone(),
            json!({
                "NetworkID": n.net.id,
                "EndpointID": ep.id,
                "Gateway": ep.gateway(false),
                "IPAddress": v4.map(|a| a.addr().to_string()).unwrap_or_default(),
                "IPPrefixLen": v4.map(|a| a.prefix_len()).unwrap_or(0),
                "IPv6Gateway": ep.gateway(true),
                "GlobalIPv6Address": v6.map(|a| a.addr().to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": v6.map(|a| a.prefix_len()).unwrap_or(0),
                "MacAddress": ep.mac,
                "InterfaceName": ep.ifname.as_ref().map(|i| i.to_string()).unwrap_or_default(),
                "Aliases": ep.aliases,
                "IPAMConfig": if ep.static_ip.is_empty() { Value::Null } else {
                    json!({ "IPv4Address": ep.static_ip.iter().find(|a| a.is_ipv4()).map(|a| a.to_string()).unwrap_or_default(),
                            "IPv6Address": ep.static_ip.iter().find(|a| a.is_ipv6()).map(|a| a.to_string()).unwrap_or_default() })
                },
            }),
        );
    }
    let status = match c.status {
        Status::Running => "running",
        Status::Exited => "exited",
        Status::Created => "created",
    };
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Created": c.created,
        "Path": c.cmd.first().cloned().unwrap_or_default(),
        "Args": c.cmd.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": status == "running",
            "Pid": if status == "running" { c.pid } else { 0 },
            "ExitCode": c.exit_code,
            "StartedAt": c.started_at,
            "FinishedAt": c.finished_at,
        },
        "HostnamePath": paths.hostname,
        "HostsPath": paths.hosts,
        "ResolvConfPath": paths.resolv_conf,
        "LogPath": paths.log,
        "Config": {
            "Hostname": c.hostname,
            "Domainname": c.domainname,
            "Cmd": c.cmd,
            "ExposedPorts": c.exposed.iter().map(|e| (e.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
        },
        "HostConfig": {
            "NetworkMode": c.network_mode,
            "AutoRemove": c.auto_remove,
            "Dns": c.dns.servers,
            "DnsSearch": c.dns.search,
            "DnsOptions": c.dns.options,
            "ExtraHosts": c.dns.extra_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect::<Vec<_>>(),
            "Links": c.dns.links.iter().map(|l| format!("/{}:/{}/{}", l.name, c.name, l.alias)).collect::<Vec<_>>(),
            "PortBindings": docker_ports(&c.ports),
        },
        "NetworkSettings": {
            "SandboxKey": c.sandbox.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "Networks": nets,
            "Ports": docker_ports(&c.ports),
            "PortSummary": c.ports.iter().map(PortBinding::summary).collect::<Vec<_>>(),
        },
    })
}
