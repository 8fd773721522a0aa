//! Stored records into the API's types: what `inspect`, `ls`, `ps`,
//! `version` and `info` show. Nothing here changes state.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_api::{
    API_VERSION, ComponentVersion, ContainerConfig, ContainerInspect, ContainerState, ContainerSummary,
    DriverInfo, Empty, EndpointIpamConfig, EndpointSettings, HostConfig, InfoPlugins, Ipam, IpamConfig,
    MIN_API_VERSION, Network, NetworkContainer, NetworkSettings, Platform, Port,
    PortBinding as ApiPortBinding, PortMap, SummaryHostConfig, SummaryNetworkSettings, SwarmInfo, SystemInfo,
    SystemVersion,
};
use berth_core::{Mac, Scope};

use crate::engine::Engine;
use crate::store::model::{
    ContainerPaths, ContainerRecord, EndpointRecord, NetworkRecord, PortBinding, Status,
};
use crate::util;

/// `local` or `global`, as the store writes a scope.
pub(crate) fn scope_name(s: Scope) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One driver as `GET /info` lists it.
pub(crate) fn driver_info(
    name: String,
    caps: &berth_core::Capabilities,
    supported: berth_core::Result<()>,
) -> DriverInfo {
    DriverInfo {
        name,
        scope: scope_name(caps.scope),
        options: caps.options.iter().map(|o| (*o).to_owned()).collect(),
        aliases: caps.aliases.iter().map(|a| (*a).to_owned()).collect(),
        one_network: !caps.multi_network,
        supported: supported.is_ok(),
        unsupported: supported.err().map(|e| e.chain()).unwrap_or_default(),
    }
}

/// `02:42:ac:12:00:02`, or empty where there is no interface.
fn mac(m: Mac) -> String {
    if m.is_zero() { String::new() } else { m.to_string() }
}

/// `docker network inspect`'s shape.
pub(crate) fn network(n: &NetworkRecord, containers: &[&ContainerRecord]) -> Network {
    let config = n
        .net
        .ipam
        .iter()
        .map(|c| IpamConfig {
            subnet: c.subnet.to_string(),
            gateway: c.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ip_range: c.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            auxiliary_addresses: c
                .aux_addresses
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        })
        .collect();
    let members = containers
        .iter()
        .filter_map(|c| {
            let ep = c.endpoint(&n.net.id)?;
            let member = NetworkContainer {
                name: c.name.clone(),
                endpoint_id: ep.id.clone(),
                mac_address: mac(ep.mac),
                ipv4_address: ep.ipv4().map(|a| a.to_string()).unwrap_or_default(),
                ipv6_address: ep.ipv6().map(|a| a.to_string()).unwrap_or_default(),
                ports: if c.ports_network == n.net.id {
                    c.ports.iter().map(PortBinding::summary).collect()
                } else {
                    Vec::new()
                },
            };
            Some((c.id.clone(), member))
        })
        .collect();
    Network {
        name: n.net.name.clone(),
        id: n.net.id.clone(),
        created: n.created.clone(),
        scope: scope_name(n.scope),
        driver: n.net.driver.clone(),
        enable_ipv6: n.net.ipv6,
        ipam: Ipam {
            driver: "default".into(),
            options: BTreeMap::new(),
            config,
        },
        internal: n.net.internal,
        attachable: n.attachable,
        ingress: false,
        config_from: Default::default(),
        config_only: false,
        containers: members,
        options: n.net.options.clone(),
        labels: n.labels.clone(),
        peers: None,
    }
}

/// Docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`, one
/// key per container port.
pub(crate) fn port_map(ports: &[PortBinding]) -> PortMap {
    let mut out = PortMap::new();
    for b in ports {
        for (h, c) in b.pairs() {
            out.entry_or_default(&format!("{c}/{}", b.proto.as_str()))
                .push(ApiPortBinding {
                    host_ip: b.host_ip.to_string(),
                    host_port: h.to_string(),
                });
        }
    }
    out
}

/// `HostConfig.PortBindings` as Docker keeps it: what `-p` asked, an
/// empty host port (or address) where none was given, a host range kept
/// whole when it goes to one container port. Records from before the
/// specs were kept show what was assigned.
pub(crate) fn asked_port_map(c: &ContainerRecord) -> PortMap {
    if c.port_specs.is_empty() {
        return port_map(&c.ports);
    }
    let mut out = PortMap::new();
    for spec in &c.port_specs {
        let Ok(p) = crate::firewall::ports::parse(spec) else {
            continue;
        };
        let host_ip = p.host_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let (first, last) = p.container;
        for (i, port) in (first..=last).enumerate() {
            let host_port = match p.host {
                None => String::new(),
                Some((a, b)) if first == last && a != b => format!("{a}-{b}"),
                Some((a, _)) => (u32::from(a) + i as u32).to_string(),
            };
            out.entry_or_default(&format!("{port}/{}", p.proto.as_str()))
                .push(ApiPortBinding {
                    host_ip: host_ip.clone(),
                    host_port,
                });
        }
    }
    out
}

fn endpoint(ep: &EndpointRecord, n: &NetworkRecord) -> EndpointSettings {
    let v4 = ep.ipv4();
    let v6 = ep.ipv6();
    let static_ip = |v6: bool| {
        ep.static_ip
            .iter()
            .find(|a| a.is_ipv6() == v6)
            .map(IpAddr::to_string)
            .unwrap_or_default()
    };
    EndpointSettings {
        network_id: n.net.id.clone(),
        endpoint_id: ep.id.clone(),
        gateway: ep.gateway(false),
        ip_address: v4.map(|a| a.addr().to_string()).unwrap_or_default(),
        ip_prefix_len: v4.map(|a| a.prefix_len()).unwrap_or(0),
        ipv6_gateway: ep.gateway(true),
        global_ipv6_address: v6.map(|a| a.addr().to_string()).unwrap_or_default(),
        global_ipv6_prefix_len: v6.map(|a| a.prefix_len()).unwrap_or(0),
        mac_address: mac(ep.mac),
        interface_name: ep.ifname.as_ref().map(|i| i.to_string()).unwrap_or_default(),
        aliases: ep.aliases.clone(),
        ipam_config: (!ep.static_ip.is_empty()).then(|| EndpointIpamConfig {
            ipv4_address: static_ip(false),
            ipv6_address: static_ip(true),
            link_local_ips: Vec::new(),
        }),
        links: Vec::new(),
        driver_opts: BTreeMap::new(),
    }
}

/// A container's networks by name, in the order it joined them.
fn endpoints(
    c: &ContainerRecord,
    networks: &BTreeMap<String, NetworkRecord>,
) -> berth_api::OrderedMap<EndpointSettings> {
    c.endpoints
        .iter()
        .filter_map(|ep| {
            let n = networks.get(&ep.network_id)?;
            Some((n.net.name.clone(), endpoint(ep, n)))
        })
        .collect()
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Exited => "exited",
        Status::Created => "created",
    }
}

/// `docker inspect`'s shape, cut to what berth has. The state is the
/// record's: a process that died unreported is marked exited by the
/// engine's reaper within a second, with its exit code when the shim
/// reports it.
pub(crate) fn container(
    c: &ContainerRecord,
    paths: &ContainerPaths,
    networks: &BTreeMap<String, NetworkRecord>,
) -> ContainerInspect {
    let running = c.status == Status::Running;
    ContainerInspect {
        id: c.id.clone(),
        name: format!("/{}", c.name),
        created: c.created.clone(),
        path: c.cmd.first().cloned().unwrap_or_default(),
        args: c.cmd.iter().skip(1).cloned().collect(),
        state: ContainerState {
            status: status_word(c.status).into(),
            running,
            pid: if running { c.pid } else { 0 },
            exit_code: c.exit_code,
            started_at: c.started_at.clone(),
            finished_at: c.finished_at.clone(),
        },
        hostname_path: paths.hostname.display().to_string(),
        hosts_path: paths.hosts.display().to_string(),
        resolv_conf_path: paths.resolv_conf.display().to_string(),
        log_path: paths.log.display().to_string(),
        config: ContainerConfig {
            hostname: c.hostname.clone(),
            domainname: c.domainname.clone(),
            cmd: c.cmd.clone(),
            exposed_ports: c.exposed.iter().map(|e| (e.clone(), Empty {})).collect(),
        },
        host_config: HostConfig {
            network_mode: c.network_mode.clone(),
            auto_remove: c.auto_remove,
            dns: c.dns.servers.iter().map(IpAddr::to_string).collect(),
            dns_search: c.dns.search.clone(),
            dns_options: c.dns.options.clone(),
            extra_hosts: c
                .dns
                .extra_hosts
                .iter()
                .map(|(n, ip)| format!("{n}:{ip}"))
                .collect(),
            links: c
                .dns
                .links
                .iter()
                .map(|l| format!("/{}:/{}/{}", l.name, c.name, l.alias))
                .collect(),
            port_bindings: asked_port_map(c),
        },
        network_settings: NetworkSettings {
            sandbox_key: c
                .sandbox
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            networks: endpoints(c, networks),
            ports: port_map(&c.ports),
            port_summary: c.ports.iter().map(PortBinding::summary).collect(),
        },
    }
}

/// Docker's summary of a container, as `docker ps` reads it, at Unix time
/// `now`.
pub(crate) fn container_summary(
    c: &ContainerRecord,
    networks: &BTreeMap<String, NetworkRecord>,
    now: i64,
) -> ContainerSummary {
    let ago = |ts: &str| {
        util::unix_time(ts)
            .map(|t| berth_api::human_duration(now - t))
            .unwrap_or_default()
    };
    let status = match c.status {
        Status::Running => format!("Up {}", ago(&c.started_at)),
        Status::Exited => format!("Exited ({}) {} ago", c.exit_code, ago(&c.finished_at)),
        Status::Created => "Created".into(),
    };
    let mut nets = endpoints(c, networks);
    if c.endpoints.is_empty() {
        // Docker keeps an exited container's networks; berth keeps their names.
        for name in &c.last_networks {
            let id = networks
                .values()
                .find(|n| &n.net.name == name)
                .map(|n| n.net.id.clone())
                .unwrap_or_default();
            nets.insert(
                name.clone(),
                EndpointSettings {
                    network_id: id,
                    ..Default::default()
                },
            );
        }
    }
    let mut ports: Vec<Port> = Vec::new();
    for b in &c.ports {
        for (h, p) in b.pairs() {
            ports.push(Port {
                ip: b.host_ip.to_string(),
                private_port: p,
                public_port: h,
                kind: b.proto.as_str().into(),
            });
        }
    }
    for e in &c.exposed {
        let Some((range, proto)) = e.split_once('/') else {
            continue;
        };
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            continue;
        };
        for p in lo..=hi {
            if !ports.iter().any(|x| x.private_port == p && x.kind == proto) {
                ports.push(Port {
                    private_port: p,
                    kind: proto.into(),
                    ..Default::default()
                });
            }
        }
    }
    ContainerSummary {
        id: c.id.clone(),
        names: vec![format!("/{}", c.name)],
        image: "host".into(),
        image_id: String::new(),
        command: c.cmd.join(" "),
        created: util::unix_time(&c.created).unwrap_or_default(),
        ports,
        labels: BTreeMap::new(),
        state: status_word(c.status).into(),
        status,
        host_config: SummaryHostConfig {
            network_mode: c.network_mode.clone(),
        },
        network_settings: SummaryNetworkSettings { networks: nets },
        mounts: Vec::new(),
        port_summary: c.ports.iter().map(PortBinding::summary).collect(),
    }
}

/// What the machine is, for `/version` and `/info`.
struct Machine {
    kernel: String,
    /// Go's name of the architecture (`amd64`), as `docker version` prints it.
    go_arch: &'static str,
    /// The kernel's name (`x86_64`), as `docker info` prints it.
    uname_arch: &'static str,
}

fn machine() -> Machine {
    let uname_arch = std::env::consts::ARCH;
    Machine {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        go_arch: berth_api::go_arch(uname_arch),
        uname_arch,
    }
}

/// `GET /version`: berth as Docker's "Engine" component.
pub(crate) fn version() -> SystemVersion {
    let m = machine();
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let details: BTreeMap<String, String> = [
        ("ApiVersion", API_VERSION.to_string()),
        ("MinAPIVersion", MIN_API_VERSION.to_string()),
        ("Os", "linux".into()),
        ("Arch", m.go_arch.into()),
        ("KernelVersion", m.kernel.clone()),
        ("Experimental", "false".into()),
        ("GitCommit", String::new()),
        ("GoVersion", String::new()),
        ("BuildTime", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    SystemVersion {
        platform: Platform { name: "berth".into() },
        components: vec![ComponentVersion {
            name: "Engine".into(),
            version: version.clone(),
            details,
        }],
        version,
        api_version: API_VERSION,
        min_api_version: MIN_API_VERSION,
        git_commit: String::new(),
        go_version: String::new(),
        os: "linux".into(),
        arch: m.go_arch.into(),
        kernel_version: m.kernel,
    }
}

/// The `PRETTY_NAME` of `/etc/os-release`.
fn operating_system() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".into())
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `GET /info`: Docker's shape, what berth does not have left empty, plus
/// berth's roots and drivers.
pub(crate) fn info(e: &Engine) -> SystemInfo {
    let m = machine();
    let drivers = e.drivers();
    let cfg = e.config();
    let cluster = e.cluster_info();
    let (containers, running) = {
        let st = e.state();
        let running = st
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .count();
        (st.containers.len() as u64, running as u64)
    };
    SystemInfo {
        containers,
        containers_running: running,
        containers_stopped: containers - running,
        plugins: InfoPlugins {
            network: drivers.iter().map(|(name, ..)| name.clone()).collect(),
            ..Default::default()
        },
        kernel_version: m.kernel,
        operating_system: operating_system(),
        os_type: "linux".into(),
        architecture: m.uname_arch.into(),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        mem_total: mem_total(),
        docker_root_dir: cfg.data_root.display().to_string(),
        name: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        server_version: env!("CARGO_PKG_VERSION").into(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
        },
        warnings: vec![
            "WARNING: this daemon is berth, not Docker: its containers are host commands in network namespaces, with no images, volumes or resource limits".into(),
        ],
        data_root: cfg.data_root.display().to_string(),
        exec_root: cfg.exec_root.display().to_string(),
        resolv_conf: cfg.resolv_conf.display().to_string(),
        drivers: drivers
            .into_iter()
            .map(|(name, caps, supported)| driver_info(name, &caps, supported))
            .collect(),
        cluster_store: cluster.as_ref().map(|c| c.store.clone()).unwrap_or_default(),
        cluster_advertise: cluster.as_ref().map(|c| c.advertise.clone()).unwrap_or_default(),
        cluster,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_keyed_by_container_port() {
        let b = PortBinding {
            proto: berth_core::Proto::Udp,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 9000,
            host_end: 9001,
            container_port: 80,
        };
        let m = serde_json::to_string(&port_map(&[b])).unwrap();
        assert_eq!(
            m,
            r#"{"80/udp":[{"HostIp":"0.0.0.0","HostPort":"9000"}],"81/udp":[{"HostIp":"0.0.0.0","HostPort":"9001"}]}"#
        );
    }
}
