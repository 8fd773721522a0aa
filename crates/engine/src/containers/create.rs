//! `berth run`'s first half: checking the request, making the sandbox on
//! the first network, the generated files, and the record. The client then
//! starts the process.

use std::fs;

use berth_core::SandboxKind;

use super::dnsopts::{self, check_hostname};
use super::endpoints::{parse_static, publishable};
use super::{ContainerCreate, Created, failpoint, names};
use crate::engine::Engine;
use crate::firewall::ports;
use crate::networks::find_network;
use crate::store::model::{ContainerRecord, DnsConfig, Status};
use crate::{Error, Object, Result, util};

/// The host's name, for containers in host mode.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

impl Engine {
    /// Creates a container: a sandbox on its first network, with its files.
    /// The process is started by the client, which then calls
    /// [`Engine::container_started`]. Nothing is left behind on failure.
    pub async fn create_container(&self, req: ContainerCreate) -> Result<Created> {
        if req.cmd.is_empty() {
            return Err(Error::NoCommand);
        }
        if !req.name.is_empty() {
            util::check_name(Object::Container, &req.name)?;
        }
        if !req.hostname.is_empty() {
            check_hostname(&req.hostname)?;
        }
        let wanted = parse_static(&req.ipv4, &req.ipv6)?;
        let mac = super::endpoints::parse_mac(&req.mac_address)?;
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
        self.await_unlinked(net_key, &wanted).await;
        let (net, mut joins, name, bindings, port_time, kind) = {
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
                return Err(Error::ContainerNameInUse {
                    name,
                    holder: c.short_id().to_owned(),
                });
            }
            if st.reserved_names.contains(&name) {
                return Err(Error::ContainerNameReserved { name });
            }
            let net = find_network(&st, net_key)?.clone();
            let caps = self.driven(&st, &net)?.caps;
            let user_defined = !net.builtin && caps.dns;
            if !aliases.is_empty() && !user_defined {
                return Err(Error::AliasOnPredefined {
                    network: net.net.name.clone(),
                });
            }
            dns.links = self.resolve_links(&st, &links, &net, user_defined)?;
            dns.embedded = user_defined;
            let gateway = net.net.gateway(false).or_else(|| net.net.gateway(true));
            for (host, target) in &extra_hosts {
                let ip = match target {
                    dnsopts::HostTarget::Ip(ip) => *ip,
                    dnsopts::HostTarget::Gateway => gateway.ok_or_else(|| Error::NoHostGateway {
                        host: host.clone(),
                        network: net.net.name.clone(),
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
                    return Err(Error::PublishWithoutIpv6 {
                        ip,
                        network: net.net.name.clone(),
                    });
                }
                ports::allocate(&port_specs, net.net.ipv6, &st.ports)?
            };
            let mut ep = self.plan_endpoint(&mut st, &net, &[], &wanted, mac)?;
            ep.aliases = aliases;
            let mut joins = vec![(net.clone(), ep)];
            match self.plan_egress(&mut st, &net, std::slice::from_ref(&joins[0].1)) {
                Ok(gw) => joins.extend(gw),
                Err(e) => {
                    Self::settle_all(&mut st, &joins, false);
                    return Err(e);
                }
            }
            st.reserved_names.insert(name.clone());
            st.ports.add(&name, &bindings);
            (net, joins, name, bindings, port_clock.elapsed(), caps.sandbox)
        };
        // Ports lead to the address on the network that is the way out.
        let ports_network = joins.last().map(|(n, _)| n.net.id.clone()).unwrap_or_default();
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
                ports_network
            },
            ports: bindings,
            port_specs: req.ports.clone(),
            process: req.process.clone(),
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
            last_endpoints: Vec::new(),
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            exit_code: 0,
            started_at: String::new(),
            finished_at: String::new(),
            external: None,
        };
        // The log on the data root's disk, made while the network is wired
        // (before write_files, which leaves it to its caller).
        let log = self.cfg.paths(&id).log;
        let spare = self.cfg.spare_log_dir();
        let mut log_made = Some(tokio::task::spawn_blocking(move || {
            super::files::take_spare_log(&log, &spare)
        }));
        let made = async {
            let sb = match kind {
                SandboxKind::Host => self.host_sandbox.clone(),
                _ => self.new_sandbox(&id, rec.dns.embedded).await?,
            };
            rec.sandbox = Some(sb.path.clone());
            if let Err(e) = self.wire(&sb, &rec, &mut joins).await {
                let _ = self.drop_sandbox_of(&id, kind);
                return Err(e);
            }
            rec.endpoints.extend(joins.iter().map(|(_, ep)| ep.clone()));
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
                // The log is made (or its directory renamed from the spare)
                // before write_files looks for it: making the directory
                // itself meanwhile would race the rename.
                if let Some(task) = log_made.take() {
                    task.await.map_err(|source| Error::Task {
                        what: "making the container's log",
                        source,
                    })??;
                }
                self.write_files(&mut rec, kind)?;
                failpoint("create-after-attach");
                self.save_container(&rec).await
            }
            .await;
            if let Err(e) = saved {
                self.dns.remove(&id);
                let _ = self.ctx.firewall.remove_ports(&id);
                self.unwire(Some(&sb), &joins).await;
                let _ = self.drop_sandbox_of(&id, kind);
                return Err(e);
            }
            Ok(())
        }
        .await;
        // A failed create takes the files it made (the log's, and
        // write_files' own), once the log's thread is done.
        if let Some(task) = log_made.take() {
            let _ = task.await;
        }
        if made.is_err() {
            self.remove_files(&id);
        }
        // The next container's log directory, made after this answer.
        self.make_spare_log();
        self.conclude_create(&name, &rec, &joins, made)?;
        Ok(self.spec_of(&rec))
    }

    /// The end of a create, made or not: the planned endpoints settle
    /// (their addresses kept or given back), the name's and the ports'
    /// reservations go, and a made container joins the state.
    pub(super) fn conclude_create(
        &self,
        name: &str,
        rec: &ContainerRecord,
        joins: &[super::egress::Join],
        made: Result<()>,
    ) -> Result<()> {
        self.settled(joins);
        let mut st = self.state();
        st.reserved_names.remove(name);
        if made.is_err() {
            st.ports.remove(name, &rec.ports);
        }
        Self::settle_all(&mut st, joins, made.is_ok());
        made?;
        st.containers.insert(rec.id.clone(), rec.clone());
        Ok(())
    }

    pub(super) fn drop_sandbox_of(&self, id: &str, kind: SandboxKind) -> Result<()> {
        if kind == SandboxKind::Host {
            return Ok(());
        }
        self.drop_sandbox(id)
    }
}
