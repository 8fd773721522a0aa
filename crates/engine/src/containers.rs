//! Container operations: create (sandbox + first network), start and exit
//! bookkeeping, connect, disconnect, remove, list, inspect.

use std::fs;
use std::net::IpAddr;

use berth_api::{ContainerInspect, ContainerSummary, Filters};
use berth_core::{Endpoint, Error, IfName, Mac, Netns, Ports, Result, Sandbox, SandboxKind};

use crate::api::{ContainerFilter, views};
use crate::dnsopts::check_hostname;
use crate::engine::{Engine, State};
use crate::files;
use crate::model::{ContainerRecord, DnsConfig, EndpointRecord, LinkRecord, NetworkRecord, Status};
use crate::networks::{find_network, parse_ip};
use crate::process;
use crate::store::{Op, Table};
use crate::{dns, dnsopts, names, ports, util};

// The request and answer of a create are the API's (`berth_api`), under
// the names this module has always used for them.
pub use berth_api::{ContainerCreateRequest as ContainerCreate, ContainerCreateResponse as Created};

/// Checks that ports can be published on `net`, whose driver says what
/// `-p` can do there.
fn publishable(net: &NetworkRecord, ports: Ports) -> Result<()> {
    let name = &net.net.name;
    let why = match ports {
        Ports::Forwarded if net.net.internal => format!(
            "network {name} is --internal: nothing outside it may reach its containers"
        ),
        Ports::Forwarded => return Ok(()),
        Ports::Shared => "with --network host the container shares the host's ports: a process listening in it is reachable as it is".to_owned(),
        Ports::NoInterface => "with --network none the container has no interface to forward ports to".to_owned(),
        Ports::OwnAddress => format!(
            "containers on network {name} (driver {}) have their own address on the parent link: reach them there, there is no host port to forward",
            net.net.driver
        ),
        Ports::Unsupported => format!(
            "network {name} uses driver {}; ports can be published on bridge networks only",
            net.net.driver
        ),
    };
    Err(Error::invalid(format!("cannot publish ports (-p/-P): {why}")))
}

/// Finds a container by name, full id or unique id prefix.
pub(crate) fn find_container<'a>(st: &'a State, key: &str) -> Result<&'a ContainerRecord> {
    if let Some(c) = st.containers.get(key) {
        return Ok(c);
    }
    if let Some(c) = st.containers.values().find(|c| c.name == key) {
        return Ok(c);
    }
    let mut by_prefix = st
        .containers
        .values()
        .filter(|c| !key.is_empty() && c.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(c), None) => Ok(c),
        (Some(_), Some(_)) => Err(Error::invalid(format!("container id prefix {key} is ambiguous"))),
        _ => Err(Error::NotFound(format!("no such container: {key}"))),
    }
}

/// The host's name, for containers in host mode.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Every address of a container, in endpoint order.
fn addresses(c: &ContainerRecord) -> Vec<IpAddr> {
    c.endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
        .collect()
}

/// Optional addresses from the request strings.
fn parse_static(v4: &str, v6: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    if !v4.is_empty() {
        let ip = parse_ip("--ip address", v4)?;
        if !ip.is_ipv4() {
            return Err(Error::invalid(format!(
                "--ip {ip} is not an IPv4 address (use --ip6)"
            )));
        }
        out.push(ip);
    }
    if !v6.is_empty() {
        let ip = parse_ip("--ip6 address", v6)?;
        if !ip.is_ipv6() {
            return Err(Error::invalid(format!(
                "--ip6 {ip} is not an IPv6 address (use --ip)"
            )));
        }
        out.push(ip);
    }
    Ok(out)
}

impl Engine {
    /// Plans one endpoint under the state lock: interface name, addresses
    /// (static or from the pools), MAC, whether it carries the default
    /// route. Counts it as pending on the network until
    /// [`Engine::settle`].
    fn plan_endpoint(
        &self,
        st: &mut State,
        net: &NetworkRecord,
        existing: &[EndpointRecord],
        wanted: &[IpAddr],
    ) -> Result<EndpointRecord> {
        if st.removing.contains(&net.net.id) {
            return Err(Error::NotFound(format!(
                "network {} is being removed",
                net.net.name
            )));
        }
        let caps = self.driven(st, net)?.caps;
        if !wanted.is_empty() && net.builtin && caps.ipam {
            return Err(Error::invalid(format!(
                "a static address (--ip) works on user-defined networks only, not on the default {} network",
                net.net.name
            )));
        }
        if !wanted.is_empty() && !caps.ipam {
            return Err(Error::invalid(format!(
                "network {} (driver {}) has no addresses to choose from: --ip is not accepted",
                net.net.name, net.net.driver
            )));
        }
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| {
                !existing
                    .iter()
                    .any(|e| e.ifname.as_ref().is_some_and(|i| i.as_str() == n))
            })
            .and_then(|n| IfName::new(&n).ok());
        let mut addresses = Vec::new();
        if caps.ipam {
            let State {
                pools, containers, ..
            } = st;
            let pools = pools.entry(net.net.id.clone()).or_default();
            let owner = |ip: IpAddr| {
                containers
                    .values()
                    .find(|c| {
                        c.endpoint(&net.net.id)
                            .is_some_and(|e| e.addresses.iter().any(|a| a.addr() == ip))
                    })
                    .map(|c| c.name.clone())
            };
            let planned = (|| -> Result<()> {
                for v6 in [false, true] {
                    let want = wanted.iter().find(|a| a.is_ipv6() == v6);
                    if v6 && !net.net.ipv6 {
                        if let Some(ip) = want {
                            return Err(Error::invalid(format!(
                                "--ip6 {ip}: network {} does not have IPv6 (create it with --ipv6)",
                                net.net.name
                            )));
                        }
                        continue;
                    }
                    let mut fam = pools
                        .iter_mut()
                        .filter(|p| p.subnet.addr().is_ipv6() == v6)
                        .peekable();
                    if let Some(ip) = want {
                        let pool = fam.find(|p| p.contains(*ip)).ok_or_else(|| {
                            Error::invalid(format!(
                                "address {ip} is not in any subnet of network {} ({})",
                                net.net.name,
                                net.net
                                    .ipam
                                    .iter()
                                    .map(|c| c.subnet.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })?;
                        addresses.push(pool.take(*ip, owner)?);
                    } else if fam.peek().is_some() {
                        let mut last = None;
                        for pool in fam {
                            match pool.allocate() {
                                Ok(a) => {
                                    addresses.push(a);
                                    last = None;
                                    break;
                                }
                                Err(e) => last = Some(e),
                            }
                        }
                        if let Some(e) = last {
                            return Err(e);
                        }
                    }
                }
                Ok(())
            })();
            if let Err(e) = planned {
                for a in &addresses {
                    if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                        p.release(a.addr());
                    }
                }
                return Err(e);
            }
        }
        let gateways: Vec<IpAddr> = if caps.ipam {
            [false, true]
                .iter()
                .filter_map(|v6| net.net.gateway(*v6))
                .filter(|g| net.net.ipv6 || g.is_ipv4())
                .collect()
        } else {
            Vec::new()
        };
        let default_route = caps.sandbox == SandboxKind::Own
            && !net.net.internal
            && !gateways.is_empty()
            && !existing.iter().any(|e| e.default_route);
        *st.pending.entry(net.net.id.clone()).or_default() += 1;
        Ok(EndpointRecord {
            id: util::new_id(),
            network_id: net.net.id.clone(),
            mac: if caps.sandbox == SandboxKind::Own {
                Mac::for_ipv4(addresses.iter().map(|a| a.addr()).find(IpAddr::is_ipv4))
            } else {
                Mac::ZERO
            },
            ifname: if caps.sandbox == SandboxKind::Own {
                ifname
            } else {
                None
            },
            addresses,
            gateways,
            default_route,
            host_ifname: None,
            static_ip: wanted.to_vec(),
            aliases: Vec::new(),
            driver_state: None,
        })
    }

    /// Ends a planned endpoint's pending state; on failure gives its
    /// addresses back.
    fn settle(st: &mut State, ep: &EndpointRecord, ok: bool) {
        if let Some(n) = st.pending.get_mut(&ep.network_id) {
            *n = n.saturating_sub(1);
        }
        if !ok {
            Self::release(st, ep);
        }
    }

    /// Gives an endpoint's addresses back to their pools.
    pub(crate) fn release(st: &mut State, ep: &EndpointRecord) {
        if let Some(pools) = st.pools.get_mut(&ep.network_id) {
            for a in &ep.addresses {
                if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                    p.release(a.addr());
                }
            }
        }
    }

    /// Has the network's driver wire `ep` into `sb`; records the host-side
    /// interface it made.
    pub(crate) async fn attach(
        &self,
        net: &NetworkRecord,
        sb: &Sandbox,
        ep: &mut EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        let gateways = if ep.default_route { &ep.gateways[..] } else { &[] };
        let att = handle
            .attach(&self.ctx, &driver_view(ep, Some(sb), gateways))
            .await?;
        ep.host_ifname = att.host_ifname;
        ep.driver_state = att.state;
        // Drivers that address their interfaces themselves (CNI) say how.
        if !att.addresses.is_empty() {
            ep.addresses = att.addresses;
        }
        if !att.gateways.is_empty() {
            ep.gateways = att.gateways;
        }
        if let Some(mac) = att.mac {
            ep.mac = mac;
        }
        Ok(())
    }

    /// Has the driver undo `attach`. Idempotent.
    pub(crate) async fn detach(
        &self,
        net: &NetworkRecord,
        sb: Option<&Sandbox>,
        ep: &EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        handle.detach(&self.ctx, &driver_view(ep, sb, &[])).await
    }

    /// Has the driver check that `ep` is still wired as it left it.
    pub(crate) async fn check(
        &self,
        net: &NetworkRecord,
        sb: Option<&Sandbox>,
        ep: &EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        handle.check(&self.ctx, &driver_view(ep, sb, &ep.gateways)).await
    }

    /// Writes `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for a
    /// new container, and remembers what it wrote.
    pub(crate) fn write_files(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let paths = self.cfg.paths(&c.id);
        for dir in [paths.hosts.parent(), paths.log.parent()].into_iter().flatten() {
            fs::create_dir_all(dir).map_err(|e| Error::kernel(format!("creating {}", dir.display()), e))?;
        }
        self.write_resolv(c, kind)?;
        files::write_in_place(&paths.hostname, format!("{}\n", c.hostname).as_bytes())?;
        self.write_hosts(c, kind)
    }

    /// Writes a container's `/etc/resolv.conf`, unless someone edited it
    /// inside the container since berth last wrote it.
    pub(crate) fn write_resolv(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let path = self.cfg.paths(&c.id).resolv_conf;
        if let Some(h) = c.dns.resolv_hash
            && fs::read(&path).is_ok_and(|now| files::hash(&now) != h)
        {
            tracing::info!(container = %c.name, "/etc/resolv.conf was edited inside the container; leaving it as it is");
            return Ok(());
        }
        let host_conf = self.host_resolv_conf();
        let r = files::Resolv {
            servers: &c.dns.servers,
            search: &c.dns.search,
            options: &c.dns.options,
        };
        let resolv = match kind {
            _ if c.dns.embedded => files::resolv_conf_embedded(&host_conf, &r),
            SandboxKind::Host if r.servers.is_empty() && r.search.is_empty() && r.options.is_empty() => {
                host_conf
            }
            SandboxKind::Host => files::resolv_conf(&host_conf, &r, true),
            _ => files::resolv_conf(&host_conf, &r, addresses(c).iter().any(IpAddr::is_ipv6)),
        };
        files::write_in_place(&path, resolv.as_bytes())?;
        c.dns.resolv_hash = Some(files::hash(resolv.as_bytes()));
        Ok(())
    }

    /// Rewrites a container's `/etc/hosts` (after its addresses changed),
    /// unless someone edited it inside the container since berth last
    /// wrote it: then it is left alone, as Docker does.
    pub(crate) fn write_hosts(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let path = self.cfg.paths(&c.id).hosts;
        if let Some(h) = c.dns.hosts_hash
            && fs::read(&path).is_ok_and(|now| files::hash(&now) != h)
        {
            tracing::info!(container = %c.name, "/etc/hosts was edited inside the container; leaving it as it is");
            return Ok(());
        }
        let hosts = match kind {
            SandboxKind::Host => {
                let mut h = fs::read_to_string("/etc/hosts").unwrap_or_default();
                for (name, ip) in &c.dns.extra_hosts {
                    h.push_str(&format!("{ip}\t{name}\n"));
                }
                h
            }
            _ => {
                let links = self.link_lines(c);
                files::hosts(&files::Hosts {
                    hostname: &c.hostname,
                    domainname: &c.domainname,
                    addresses: &addresses(c),
                    // Every berth sandbox has IPv6 on its loopback.
                    ipv6: true,
                    extra: &c.dns.extra_hosts,
                    links: &links,
                })
            }
        };
        files::write_in_place(&path, hosts.as_bytes())?;
        c.dns.hosts_hash = Some(files::hash(hosts.as_bytes()));
        Ok(())
    }

    /// `/etc/hosts` lines of legacy links on the default bridge: the linked
    /// container's address there, with `ALIAS HOSTNAME [NAME]`.
    fn link_lines(&self, c: &ContainerRecord) -> Vec<(IpAddr, String)> {
        if c.dns.embedded {
            return Vec::new(); // on user-defined networks links live in the resolver
        }
        let st = self.state();
        let Some(bridge) = st.networks.values().find(|n| n.builtin && n.net.name == "bridge") else {
            return Vec::new();
        };
        c.dns
            .links
            .iter()
            .filter_map(|l| {
                let t = st.containers.get(&l.target)?;
                let ip = t.endpoint(&bridge.net.id)?.ipv4()?.addr();
                let mut names = format!("{} {}", l.alias, t.hostname);
                if l.alias != t.name {
                    names.push(' ');
                    names.push_str(&t.name);
                }
                Some((ip, names))
            })
            .collect()
    }

    /// Checks `--link` targets: they exist, run, and share the network the
    /// new container starts on (the default bridge, or a user-defined one).
    fn resolve_links(
        &self,
        st: &State,
        links: &[(String, String)],
        net: &NetworkRecord,
        user_defined: bool,
    ) -> Result<Vec<LinkRecord>> {
        let mut out = Vec::new();
        for (name, alias) in links {
            let t = find_container(st, name)
                .map_err(|_| Error::NotFound(format!("--link {name}: no such container")))?;
            let default_bridge = net.builtin && net.net.name == "bridge";
            if !user_defined && !default_bridge {
                return Err(Error::invalid(format!(
                    "--link works on bridge networks only, not on the {} network",
                    net.net.name
                )));
            }
            if t.endpoint(&net.net.id).is_none() {
                return Err(Error::invalid(format!(
                    "--link {name}: container {} is not on network {} (links join containers of one network)",
                    t.name, net.net.name
                )));
            }
            out.push(LinkRecord {
                target: t.id.clone(),
                name: t.name.clone(),
                alias: alias.clone(),
            });
        }
        Ok(out)
    }

    /// What the resolver should know of a container: its names on its
    /// user-defined networks and, if it asks the resolver, its view.
    pub(crate) fn dns_entry(&self, c: &ContainerRecord) -> dns::Entry {
        let st = self.state();
        let mut names = vec![c.name.clone()];
        if c.hostname != c.name {
            names.push(c.hostname.clone());
        }
        names.push(c.short_id().to_owned());
        let mut networks = Vec::new();
        let mut forward = false;
        for ep in &c.endpoints {
            let Some(n) = st.networks.get(&ep.network_id) else {
                continue;
            };
            if n.builtin {
                continue;
            }
            forward |= !n.net.internal;
            networks.push((
                n.net.id.clone(),
                n.net.name.clone(),
                ep.addresses.iter().map(|a| a.addr()).collect(),
                ep.aliases.clone(),
            ));
        }
        let client = c.dns.embedded.then(|| dns::Client {
            networks: networks.iter().map(|n| n.0.clone()).collect(),
            links: c
                .dns
                .links
                .iter()
                .map(|l| (l.alias.to_lowercase(), l.target.clone()))
                .collect(),
            forward,
        });
        dns::Entry {
            id: c.id.clone(),
            names,
            ptr_name: c.name.clone(),
            networks,
            client,
            upstreams: c.dns.servers.clone(),
        }
    }

    /// Tells the resolver what a container now is.
    pub(crate) fn publish(&self, c: &ContainerRecord) {
        let ns = if c.dns.servers.is_empty() {
            None
        } else {
            self.sandbox(c)
                .ok()
                .and_then(|sb| Netns::open(&sb.path).ok())
                .map(std::sync::Arc::new)
        };
        self.dns.set(&self.dns_entry(c), ns);
    }

    fn remove_files(&self, id: &str) {
        let paths = self.cfg.paths(id);
        for p in [paths.hosts.parent(), paths.log.parent()].into_iter().flatten() {
            let _ = fs::remove_dir_all(p);
        }
    }

    /// Creates a container: a sandbox on its first network, with its files.
    /// The process is started by the client, which then calls
    /// [`Engine::container_started`]. Nothing is left behind on failure.
    pub async fn create_container(&self, req: ContainerCreate) -> Result<Created> {
        if req.cmd.is_empty() {
            return Err(Error::invalid(
                "no command given (usage: berth run [OPTIONS] -- CMD [ARG...])",
            ));
        }
        if !req.name.is_empty() {
            util::check_name("container", &req.name)?;
        }
        if !req.hostname.is_empty() {
            check_hostname(&req.hostname)?;
        }
        let wanted = parse_static(&req.ipv4, &req.ipv6)?;
        let domainname = dnsopts::domainname(&req.domainname)?;
        let mut dns = DnsConfig {
            servers: dnsopts::servers(&req.dns)?,
            search: dnsopts::search(&req.dns_search)?,
            options: dnsopts::options(&req.dns_options)?,
            ..Default::default()
        };
        let extra_hosts: Vec<(String, dnsopts::HostTarget)> = req
            .extra_hosts
            .iter()
            .map(|h| dnsopts::extra_host(h))
            .collect::<Result<_>>()?;
        let links: Vec<(String, String)> = req
            .links
            .iter()
            .map(|l| dnsopts::link(l))
            .collect::<Result<_>>()?;
        let aliases: Vec<String> = req
            .aliases
            .iter()
            .map(|a| dnsopts::alias(a))
            .collect::<Result<_>>()?;
        let mut port_specs: Vec<ports::PortSpec> =
            req.ports.iter().map(|p| ports::parse(p)).collect::<Result<_>>()?;
        let exposed: Vec<((u16, u16), berth_core::Proto)> = req
            .expose
            .iter()
            .map(|e| ports::parse_expose(e))
            .collect::<Result<_>>()?;
        if req.publish_all {
            ports::publish_all(&exposed, &mut port_specs);
        }
        let id = util::new_id();
        let net_key = if req.network.is_empty() {
            "bridge"
        } else {
            req.network.as_str()
        };
        let (net, mut ep, name, bindings, port_time, kind) = {
            let mut st = self.state();
            let name = if req.name.is_empty() {
                (0..100)
                    .map(|i| {
                        if i < 50 {
                            names::random()
                        } else {
                            format!("{}_{i}", names::random())
                        }
                    })
                    .find(|n| !st.containers.values().any(|c| &c.name == n) && !st.reserved_names.contains(n))
                    .unwrap_or_else(|| id[..12].to_owned())
            } else {
                req.name.clone()
            };
            if let Some(c) = st.containers.values().find(|c| c.name == name) {
                return Err(Error::Conflict(format!(
                    "container name {name:?} is already in use by container {}",
                    c.short_id()
                )));
            }
            if st.reserved_names.contains(&name) {
                return Err(Error::Conflict(format!(
                    "container name {name:?} is already being used"
                )));
            }
            let net = find_network(&st, net_key)?.clone();
            let caps = self.driven(&st, &net)?.caps;
            let user_defined = !net.builtin && caps.dns;
            if !aliases.is_empty() && !user_defined {
                return Err(Error::invalid(format!(
                    "network aliases work on user-defined networks only, not on the {} network",
                    net.net.name
                )));
            }
            dns.links = self.resolve_links(&st, &links, &net, user_defined)?;
            dns.embedded = user_defined;
            let gateway = net.net.gateway(false).or_else(|| net.net.gateway(true));
            for (host, target) in &extra_hosts {
                let ip = match target {
                    dnsopts::HostTarget::Ip(ip) => *ip,
                    dnsopts::HostTarget::Gateway => gateway.ok_or_else(|| {
                        Error::invalid(format!(
                            "--add-host {host}:host-gateway: network {} has no gateway to point at",
                            net.net.name
                        ))
                    })?,
                };
                dns.extra_hosts.push((host.clone(), ip));
            }
            let port_clock = std::time::Instant::now();
            let bindings = if port_specs.is_empty() {
                Vec::new()
            } else {
                publishable(&net, caps.ports)?;
                if let Some(ip) = port_specs
                    .iter()
                    .filter_map(|s| s.host_ip)
                    .find(|ip| ip.is_ipv6())
                    && !net.net.ipv6
                {
                    return Err(Error::invalid(format!(
                        "-p [{ip}]:…: network {} has no IPv6 (create it with --ipv6)",
                        net.net.name
                    )));
                }
                ports::allocate(&port_specs, net.net.ipv6, &st.ports)?
            };
            let mut ep = self.plan_endpoint(&mut st, &net, &[], &wanted)?;
            ep.aliases = aliases;
            st.reserved_names.insert(name.clone());
            st.ports.add(&name, &bindings);
            (net, ep, name, bindings, port_clock.elapsed(), caps.sandbox)
        };
        let mut rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: util::now(),
            hostname: match (req.hostname.is_empty(), kind) {
                (false, _) => req.hostname.clone(),
                // Host mode keeps the host's name, as Docker does.
                (true, SandboxKind::Host) => host_name(),
                (true, _) => id[..12].to_owned(),
            },
            domainname,
            dns,
            cmd: req.cmd.clone(),
            auto_remove: req.auto_remove,
            network_mode: net.net.name.clone(),
            endpoints: Vec::new(),
            sandbox: None,
            ports_network: if bindings.is_empty() {
                String::new()
            } else {
                net.net.id.clone()
            },
            ports: bindings,
            exposed: exposed
                .iter()
                .map(|((a, b), p)| {
                    if a == b {
                        format!("{a}/{}", p.as_str())
                    } else {
                        format!("{a}-{b}/{}", p.as_str())
                    }
                })
                .collect(),
            last_networks: Vec::new(),
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            exit_code: 0,
            started_at: String::new(),
            finished_at: String::new(),
        };
        let made = async {
            let sb = match kind {
                SandboxKind::Host => self.host_sandbox.clone(),
                _ => self.new_sandbox(&id, rec.dns.embedded).await?,
            };
            rec.sandbox = Some(sb.path.clone());
            if let Err(e) = self.attach(&net, &sb, &mut ep).await {
                let _ = self.drop_sandbox_of(&id, kind);
                return Err(e);
            }
            rec.endpoints.push(ep.clone());
            let saved = async {
                if !rec.ports.is_empty() {
                    let t = std::time::Instant::now();
                    self.ctx.firewall.add_ports(&id, &ports::fw_ports(&rec))?;
                    // The benches read this line.
                    let fw = t.elapsed();
                    tracing::info!(
                        container = %rec.name,
                        "{} port bindings published in {} µs (choosing {} µs, firewall {} µs)",
                        rec.ports.len(),
                        (port_time + fw).as_micros(),
                        port_time.as_micros(),
                        fw.as_micros()
                    );
                }
                // Resolvable now: the files and the commit that follow take
                // a millisecond or two, and a failure takes the name back.
                self.publish(&rec);
                // The next container's namespace, made while this one's
                // files and commit finish.
                self.make_spare();
                self.write_files(&mut rec, kind)?;
                failpoint("create-after-attach");
                self.save_container(&rec).await
            }
            .await;
            if let Err(e) = saved {
                self.dns.remove(&id);
                let _ = self.ctx.firewall.remove_ports(&id);
                let _ = self.detach(&net, Some(&sb), &ep).await;
                let _ = self.drop_sandbox_of(&id, kind);
                self.remove_files(&id);
                return Err(e);
            }
            Ok(())
        }
        .await;
        let mut st = self.state();
        st.reserved_names.remove(&name);
        if made.is_err() {
            st.ports.remove(&name, &rec.ports);
        }
        Self::settle(&mut st, &ep, made.is_ok());
        made?;
        st.containers.insert(id.clone(), rec.clone());
        drop(st);
        let paths = self.cfg.paths(&id);
        Ok(Created {
            id,
            name,
            hostname: rec.hostname,
            sandbox_key: rec.sandbox.map(|p| p.display().to_string()).unwrap_or_default(),
            netns_dir: self.cfg.netns_dir().display().to_string(),
            hosts_path: paths.hosts.display().to_string(),
            resolv_conf_path: paths.resolv_conf.display().to_string(),
            hostname_path: paths.hostname.display().to_string(),
            log_path: paths.log.display().to_string(),
        })
    }

    fn drop_sandbox_of(&self, id: &str, kind: SandboxKind) -> Result<()> {
        if kind == SandboxKind::Host {
            return Ok(());
        }
        self.drop_sandbox(id)
    }

    /// Records that the client started the container's process.
    pub async fn container_started(&self, key: &str, pid: u32) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = self.find_container(&id)?;
        if c.status != Status::Created {
            return Err(Error::Conflict(format!(
                "container {} was already started",
                c.name
            )));
        }
        let start = process::start_time(pid)
            .ok_or_else(|| Error::invalid(format!("process {pid} does not exist")))?;
        c.status = Status::Running;
        c.pid = pid;
        c.pid_start = start;
        c.started_at = util::now();
        self.save_container(&c).await?;
        self.state().containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// Records that the container's process ended: takes its network down
    /// (addresses go back to their pools) and, with `--rm`, removes it.
    pub async fn container_exited(&self, key: &str, code: i32) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = self.find_container(&id)?;
        if c.status == Status::Exited {
            if c.exit_code == -1 && code != -1 {
                c.exit_code = code;
                self.save_container(&c).await?;
                self.state().containers.insert(c.id.clone(), c);
            }
            return Ok(());
        }
        if c.auto_remove {
            drop(_g);
            return self.remove_container(&id, true).await.map(drop);
        }
        self.teardown(&mut c).await;
        c.status = Status::Exited;
        c.exit_code = code;
        c.pid = 0;
        c.finished_at = util::now();
        self.save_container(&c).await?;
        self.state().containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// Takes a container's network down: detaches every endpoint (keeping
    /// on after errors, which are logged), gives the addresses back, and
    /// unpins the sandbox.
    pub(crate) async fn teardown(&self, c: &mut ContainerRecord) {
        self.dns.remove(&c.id);
        if let Err(e) = self.ctx.firewall.remove_ports(&c.id) {
            tracing::warn!(container = %c.name, "unpublishing ports: {}", e.chain());
        }
        self.state().ports.remove(&c.name, &c.ports);
        c.ports.clear();
        c.ports_network.clear();
        let kind = self.kind_of(c).unwrap_or(SandboxKind::Own);
        let sb = self.sandbox(c).ok();
        for ep in c.endpoints.iter().rev() {
            let net = self.state().networks.get(&ep.network_id).cloned();
            if let Some(net) = net
                && let Err(e) = self.detach(&net, sb.as_deref(), ep).await
            {
                tracing::warn!(container = %c.name, network = %net.net.name, "detach: {}", e.chain());
            }
        }
        {
            let mut st = self.state();
            c.last_networks = c
                .endpoints
                .iter()
                .filter_map(|e| st.networks.get(&e.network_id).map(|n| n.net.name.clone()))
                .collect();
            for ep in &c.endpoints {
                Self::release(&mut st, ep);
            }
        }
        c.endpoints.clear();
        if let Err(e) = self.drop_sandbox_of(&c.id, kind) {
            tracing::warn!(container = %c.name, "unpinning sandbox: {}", e.chain());
        }
        c.sandbox = None;
    }

    /// Removes a container. A running one needs `force`, which kills it.
    pub async fn remove_container(&self, key: &str, force: bool) -> Result<String> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = match self.find_container(&id) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(key.to_owned()), // removed while we waited
            Err(e) => return Err(e),
        };
        if Self::running(&c) {
            if !force {
                return Err(Error::Conflict(format!(
                    "container {} is running: stop it first or remove it with rm -f",
                    c.name
                )));
            }
            process::kill(c.pid, c.pid_start);
        }
        self.teardown(&mut c).await;
        self.store
            .write(vec![Op::Delete(Table::Containers, c.id.clone())])
            .await?;
        self.remove_files(&c.id);
        self.state().containers.remove(&c.id);
        self.forget_lock(&c.id);
        Ok(c.name)
    }

    /// Connects a container to one more network (`eth1`, `eth2`, …).
    pub async fn connect(
        &self,
        net_key: &str,
        key: &str,
        ipv4: &str,
        ipv6: &str,
        aliases: &[String],
    ) -> Result<()> {
        let wanted = parse_static(ipv4, ipv6)?;
        let aliases: Vec<String> = aliases.iter().map(|a| dnsopts::alias(a)).collect::<Result<_>>()?;
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let (mut c, net, mut ep) = {
            let mut st = self.state();
            let c = find_container(&st, &id)?.clone();
            let net = find_network(&st, net_key)?.clone();
            let caps = self.driven(&st, &net)?.caps;
            if !caps.multi_network {
                return Err(Error::invalid(format!(
                    "a container cannot be connected to the {} network: it is chosen with --network at run",
                    net.net.name
                )));
            }
            if let Some(first) = c.endpoints.first().and_then(|e| st.networks.get(&e.network_id))
                && let Some(d) = st.handles.get(&first.net.id)
                && !d.caps.multi_network
            {
                return Err(Error::invalid(format!(
                    "container {} is on the {} network, which it cannot share with another network",
                    c.name, first.net.name
                )));
            }
            if c.endpoint(&net.net.id).is_some() {
                return Err(Error::Conflict(format!(
                    "container {} is already connected to network {}",
                    c.name, net.net.name
                )));
            }
            if c.sandbox.is_none() {
                return Err(Error::Conflict(format!("container {} is not running", c.name)));
            }
            if !aliases.is_empty() && net.builtin {
                return Err(Error::invalid(format!(
                    "network aliases work on user-defined networks only, not on the {} network",
                    net.net.name
                )));
            }
            let mut ep = self.plan_endpoint(&mut st, &net, &c.endpoints, &wanted)?;
            ep.aliases = aliases;
            (c, net, ep)
        };
        let made = async {
            let sb = self.sandbox(&c)?;
            self.attach(&net, &sb, &mut ep).await?;
            c.endpoints.push(ep.clone());
            // The first user-defined network brings the embedded resolver,
            // as Docker's does for a container that started on the default
            // bridge.
            let starts_resolver = !c.dns.embedded && !net.builtin;
            let saved = async {
                if starts_resolver {
                    self.dns.listen(&c.id, &sb.ns)?;
                    c.dns.embedded = true;
                    self.write_resolv(&mut c, SandboxKind::Own)?;
                }
                self.write_hosts(&mut c, SandboxKind::Own)?;
                failpoint("connect-after-attach");
                self.save_container(&c).await
            }
            .await;
            if let Err(e) = saved {
                c.endpoints.pop();
                if starts_resolver {
                    self.dns.remove(&c.id);
                    c.dns.embedded = false;
                    let _ = self.write_resolv(&mut c, SandboxKind::Own);
                }
                let _ = self.detach(&net, Some(&sb), &ep).await;
                let _ = self.write_hosts(&mut c, SandboxKind::Own);
                return Err(e);
            }
            Ok(())
        }
        .await;
        let mut st = self.state();
        Self::settle(&mut st, &ep, made.is_ok());
        made?;
        st.containers.insert(c.id.clone(), c.clone());
        drop(st);
        self.publish(&c);
        Ok(())
    }

    /// Disconnects a container from a network. When that network carried
    /// the default route, the next network with a gateway takes it over.
    /// `force` goes on when the driver fails to undo its work.
    pub async fn disconnect(&self, net_key: &str, key: &str, force: bool) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let (mut c, net) = {
            let st = self.state();
            let c = find_container(&st, &id)?.clone();
            let net = find_network(&st, net_key)?.clone();
            (c, net)
        };
        let Some(pos) = c.endpoints.iter().position(|e| e.network_id == net.net.id) else {
            return Err(Error::NotFound(format!(
                "container {} is not connected to network {}",
                c.name, net.net.name
            )));
        };
        if !self.driven(&self.state(), &net)?.caps.multi_network {
            return Err(Error::invalid(format!(
                "a container cannot be disconnected from the {} network: remove the container instead",
                net.net.name
            )));
        }
        let sb = self.sandbox(&c).ok();
        let ep = c.endpoints.remove(pos);
        if c.ports_network == net.net.id {
            // The ports led to this network's address: they go with it.
            self.ctx.firewall.remove_ports(&c.id)?;
            self.state().ports.remove(&c.name, &c.ports);
            c.ports.clear();
            c.ports_network.clear();
        }
        if let Err(e) = self.detach(&net, sb.as_deref(), &ep).await
            && !force
        {
            return Err(e);
        }
        if ep.default_route
            && let Some(sb) = &sb
            && let Some(next) = c.endpoints.iter_mut().find(|e| {
                !e.gateways.is_empty()
                    && self
                        .state()
                        .networks
                        .get(&e.network_id)
                        .is_some_and(|n| !n.net.internal)
            })
        {
            for gw in &next.gateways {
                if let Err(e) = berth_core::link::add_default_route(&sb.handle, *gw).await {
                    tracing::warn!(container = %c.name, "moving the default route: {}", e.chain());
                }
            }
            next.default_route = true;
        }
        let _ = self.write_hosts(&mut c, SandboxKind::Own);
        self.save_container(&c).await?;
        let mut st = self.state();
        Self::release(&mut st, &ep);
        st.containers.insert(c.id.clone(), c.clone());
        drop(st);
        self.publish(&c);
        Ok(())
    }

    /// A container record, by name, id or id prefix.
    pub fn find_container(&self, key: &str) -> Result<ContainerRecord> {
        find_container(&self.state(), key).cloned()
    }

    /// A container in `docker inspect`'s shape.
    pub fn inspect_container(&self, key: &str) -> Result<ContainerInspect> {
        let st = self.state();
        let c = find_container(&st, key)?;
        Ok(views::container(c, &self.cfg.paths(&c.id), &st.networks))
    }

    /// Containers in Docker's summary shape (`docker ps`), newest first,
    /// that pass `filters`; running and created ones only unless `all`.
    pub fn list_containers(&self, all: bool, filters: &Filters) -> Result<Vec<ContainerSummary>> {
        let keep = ContainerFilter::new(filters)?;
        let all = all || keep.implies_all();
        let now = util::unix_now();
        let st = self.state();
        let mut cs: Vec<&ContainerRecord> = st
            .containers
            .values()
            .filter(|c| all || c.status != Status::Exited)
            .filter(|c| keep.matches(c, &st.networks))
            .collect();
        cs.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(cs
            .iter()
            .map(|c| views::container_summary(c, &st.networks, now))
            .collect())
    }

    /// Marks containers whose process died without anyone saying so as
    /// exited (their shim was killed, or the machine rebooted).
    pub async fn reap(&self) {
        let dead: Vec<String> = self
            .state()
            .containers
            .values()
            .filter(|c| c.status == Status::Running && !process::alive(c.pid, c.pid_start))
            .map(|c| c.id.clone())
            .collect();
        for id in dead {
            if let Err(e) = self.container_exited(&id, -1).await {
                tracing::warn!(container = %id, "reaping: {}", e.chain());
            }
        }
    }

    /// Reads a detached container's output.
    pub fn logs(&self, key: &str) -> Result<Vec<u8>> {
        let c = self.find_container(key)?;
        let p = self.cfg.paths(&c.id).log;
        match fs::read(&p) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::kernel(format!("reading {}", p.display()), e)),
        }
    }
}

/// A crash point for tests of recovery: when `BERTH_FAILPOINT` names this
/// point, the daemon dies here as `kill -9` would make it.
fn failpoint(name: &str) {
    if std::env::var("BERTH_FAILPOINT").is_ok_and(|v| v == name) {
        tracing::error!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// The driver's view of an endpoint record. An endpoint planned before its
/// interface name was chosen is `eth0`.
fn driver_view<'a>(ep: &'a EndpointRecord, sb: Option<&'a Sandbox>, gateways: &'a [IpAddr]) -> Endpoint<'a> {
    static ETH0: std::sync::LazyLock<IfName> =
        std::sync::LazyLock::new(|| IfName::new("eth0").expect("eth0 is a valid interface name"));
    Endpoint {
        id: &ep.id,
        sandbox: sb,
        ifname: ep.ifname.as_ref().unwrap_or(&ETH0),
        mac: ep.mac,
        addresses: &ep.addresses,
        gateways,
        state: ep.driver_state.as_ref(),
    }
}
