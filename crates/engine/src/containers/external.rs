//! Namespaces of other runtimes on berth's networks: what `berth` does as
//! a CNI plugin for Podman, containerd or Kubernetes.
//!
//! An attachment is a container record like `berth run`'s, with its
//! `external` key (the runtime's container id and interface name) and its
//! sandbox the runtime's namespace path. Its endpoint is planned, wired,
//! published to the resolver and firewalled as any other — the pending
//! intent written before the driver works rolls a crash back the same
//! way — but berth runs no process there and never pins or removes the
//! namespace: a detach takes the endpoint out and forgets the record.
//!
//! | operation | CNI | what |
//! |---|---|---|
//! | [`Engine::attach_sandbox`] | `ADD` | checks, plans, wires, records |
//! | [`Engine::detach_sandbox`] | `DEL` | tears down and forgets; nothing to do is success |
//! | [`Engine::check_sandbox`] | `CHECK` | the namespace is there and the driver finds its work |
//! | [`Engine::prune_sandboxes`] | `GC` | detaches what the runtime no longer lists |
//!
//! On restart an attachment whose namespace is still there is repaired
//! and kept; one whose namespace is gone (the runtime removed it without a
//! `DEL`) is taken down and forgotten (`restore.rs`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::{
    SandboxAttachRequest, SandboxAttachResponse, SandboxDetachRequest, SandboxKey, SandboxPruneRequest,
    SandboxPruneResponse,
};
use berth_core::{IfName, Netns, Sandbox, SandboxKind, link};

use super::dnsopts;
use super::endpoints::publishable;
use crate::engine::Engine;
use crate::firewall::ports;
use crate::networks::find_network;
use crate::store::model::{ContainerRecord, DnsConfig, ExternalSandbox, Status};
use crate::store::{Op, Table};
use crate::{Error, Object, Result, util};

/// The resolver berth's sandboxes on user-defined networks ask.
const EMBEDDED_DNS: &str = "127.0.0.11";

/// Checks a runtime's container id the way CNI defines it: not empty,
/// an alphanumeric first, then alphanumerics, `_`, `.` and `-`.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadFlag {
            flag: "container id",
            value: id.to_owned(),
            accepted: "an alphanumeric character, then alphanumerics, '_', '.' and '-'",
        })
    }
}

fn check_key(key: &SandboxKey) -> Result<IfName> {
    check_id(&key.id)?;
    IfName::new(&key.if_name).map_err(|_| Error::BadFlag {
        flag: "interface name",
        value: key.if_name.clone(),
        accepted: "1 to 15 bytes, no '/', ':' or white space",
    })
}

/// The record of attachment `key` on network `net_id`, if berth has it.
fn find<'a>(
    containers: impl Iterator<Item = &'a ContainerRecord>,
    key: &SandboxKey,
    net_id: Option<&str>,
) -> Option<&'a ContainerRecord> {
    containers
        .filter(|c| {
            c.external
                .as_ref()
                .is_some_and(|x| x.id == key.id && x.ifname == key.if_name)
        })
        .find(|c| net_id.is_none_or(|n| c.endpoints.first().is_some_and(|e| e.network_id == n)))
}

/// Refuses a path that is no network namespace, or the daemon's own.
fn check_netns(path: &Path, network: &str) -> Result<(Netns, u64)> {
    let refuse = |reason| Error::SandboxRefused {
        netns: path.to_owned(),
        network: network.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(refuse("the path is not absolute"));
    }
    if !path.exists() {
        return Err(refuse("there is nothing at this path"));
    }
    let ns = Netns::open(path)?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    // A namespace file lives on nsfs; its device is the one of our own.
    let own =
        std::fs::metadata("/proc/self/ns/net").map_err(|e| Error::io("reading /proc/self/ns/net", e))?;
    if meta.dev() != own.dev() {
        return Err(refuse("it is not a network namespace"));
    }
    if meta.ino() == own.ino() {
        return Err(refuse("it is the daemon's own namespace"));
    }
    Ok((ns, meta.ino()))
}

impl Engine {
    /// Attaches another runtime's namespace to a network (CNI `ADD`): makes
    /// interface `IfName` there, addresses it, publishes the ports and the
    /// names, and records it. Nothing is left behind on failure.
    pub async fn attach_sandbox(&self, req: SandboxAttachRequest) -> Result<SandboxAttachResponse> {
        let ifname = check_key(&req.key)?;
        let name = if req.name.is_empty() {
            format!("cni-{}", &req.key.id[..req.key.id.len().min(12)])
        } else {
            req.name.clone()
        };
        util::check_name(Object::Container, &name)?;
        let aliases: Vec<String> = req
            .aliases
            .iter()
            .map(|a| dnsopts::alias(a))
            .collect::<Result<_>>()?;
        let port_specs: Vec<ports::PortSpec> =
            req.ports.iter().map(|p| ports::parse(p)).collect::<Result<_>>()?;
        let netns = PathBuf::from(&req.netns);
        if !netns.is_absolute() {
            return Err(Error::SandboxRefused {
                netns,
                network: req.network.clone(),
                reason: "the path is not absolute",
            });
        }
        let via = if req.netns_via.is_empty() {
            netns.clone()
        } else {
            PathBuf::from(&req.netns_via)
        };
        let (ns, ino) = check_netns(&via, &req.network)?;
        let id = util::new_id();
        let (net, mut joins, bindings, embedded) = {
            let mut st = self.state();
            if let Some(c) = find(st.containers.values(), &req.key, None) {
                return Err(Error::SandboxAttached {
                    id: req.key.id.clone(),
                    ifname: req.key.if_name.clone(),
                    container: c.name.clone(),
                });
            }
            if let Some(c) = st.containers.values().find(|c| c.name == name) {
                return Err(Error::ContainerNameInUse {
                    name,
                    holder: c.short_id().to_owned(),
                });
            }
            if st.reserved_names.contains(&name) {
                return Err(Error::ContainerNameReserved { name });
            }
            let net = find_network(&st, &req.network)?.clone();
            let caps = self.driven(&st, &net)?.caps;
            if caps.sandbox != SandboxKind::Own {
                return Err(Error::SandboxRefused {
                    netns,
                    network: net.net.name.clone(),
                    reason: "its containers get no interface of their own",
                });
            }
            let user_defined = !net.builtin && caps.dns;
            if !aliases.is_empty() && !user_defined {
                return Err(Error::AliasOnPredefined {
                    network: net.net.name.clone(),
                });
            }
            let bindings = if port_specs.is_empty() {
                Vec::new()
            } else {
                publishable(&net, caps.ports)?;
                ports::allocate(&port_specs, net.net.ipv6, &st.ports)?
            };
            let mut ep = self.plan_endpoint(&mut st, &net, &[], &[], None)?;
            ep.ifname = Some(ifname.clone());
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
            (net, joins, bindings, user_defined)
        };
        let ports_network = joins.last().map(|(n, _)| n.net.id.clone()).unwrap_or_default();
        let now = util::now();
        let mut rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: now.clone(),
            hostname: name.clone(),
            domainname: String::new(),
            dns: DnsConfig {
                embedded,
                ..Default::default()
            },
            cmd: Vec::new(),
            auto_remove: false,
            network_mode: net.net.name.clone(),
            endpoints: Vec::new(),
            sandbox: Some(netns.clone()),
            ports_network: if bindings.is_empty() {
                String::new()
            } else {
                ports_network
            },
            ports: bindings,
            port_specs: req.ports.clone(),
            process: Default::default(),
            exposed: Vec::new(),
            last_networks: Vec::new(),
            last_endpoints: Vec::new(),
            status: Status::Running,
            pid: 0,
            pid_start: 0,
            exit_code: 0,
            started_at: now,
            finished_at: String::new(),
            external: Some(ExternalSandbox {
                id: req.key.id.clone(),
                ifname: req.key.if_name.clone(),
                netns: netns.clone(),
                ino,
            }),
        };
        // One resolver per namespace: the first attachment's (a second one
        // there could not bind 127.0.0.11:53 again).
        let listen = embedded
            && !self
                .state()
                .containers
                .values()
                .any(|c| c.dns.embedded && c.external.as_ref().is_some_and(|x| x.ino == ino));
        let made = async {
            // One short thread inside the namespace does all that needs
            // to be there: is the interface name free, `lo` up for the
            // resolver, its sockets, the netlink socket.
            let rt = tokio::runtime::Handle::current();
            let (conn, handle, sockets) = ns
                .run(|| {
                    let _rt = rt.enter(); // register the netlink socket with the runtime
                    let name = std::ffi::CString::new(ifname.as_str()).map_err(std::io::Error::other)?;
                    // SAFETY: `name` is NUL-terminated and outlives the call.
                    if unsafe { libc::if_nametoindex(name.as_ptr()) } != 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
                    }
                    let sockets = if listen {
                        link::loopback_up_here()?;
                        Some(crate::dns::bind()?)
                    } else {
                        None
                    };
                    let (conn, handle, _) = berth_core::rtnetlink::new_connection()?;
                    Ok((conn, handle, sockets))
                })
                .map_err(|e| match &e {
                    berth_core::Error::Netns { source, .. }
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Error::InterfaceExists {
                            netns: netns.clone(),
                            ifname: ifname.as_str().to_owned(),
                        }
                    }
                    _ => Error::from(e),
                })?;
            rt.spawn(conn);
            let sb = Arc::new(Sandbox {
                ns,
                handle,
                path: netns.clone(),
            });
            self.sandboxes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), sb.clone());
            if let Err(e) = self.wire(&sb, &rec, &mut joins).await {
                self.forget_sandbox(&id);
                return Err(e);
            }
            rec.endpoints.extend(joins.iter().map(|(_, ep)| ep.clone()));
            let saved = async {
                if let Some(sockets) = sockets {
                    self.dns.serve(&id, sockets)?;
                }
                if !rec.ports.is_empty() {
                    self.ctx.firewall.add_ports(&id, &ports::fw_ports(&rec))?;
                }
                self.publish(&rec);
                super::failpoint("attach-sandbox-after-attach");
                self.save_container(&rec).await
            }
            .await;
            if let Err(e) = saved {
                self.dns.remove(&id);
                let _ = self.ctx.firewall.remove_ports(&id);
                self.unwire(Some(&sb), &joins).await;
                self.forget_sandbox(&id);
                return Err(e);
            }
            Ok(())
        }
        .await;
        self.conclude_create(&name, &rec, &joins, made)?;
        let ep = &rec.endpoints[0];
        Ok(SandboxAttachResponse {
            id,
            name,
            if_name: ifname.as_str().to_owned(),
            mac_address: ep.mac.to_string(),
            addresses: ep.addresses.iter().map(ToString::to_string).collect(),
            gateways: rec
                .endpoints
                .iter()
                .filter(|e| e.default_route)
                .flat_map(|e| e.gateways.iter().map(ToString::to_string))
                .collect(),
            nameservers: if embedded {
                vec![EMBEDDED_DNS.to_owned()]
            } else {
                Vec::new()
            },
        })
    }

    /// Forgets the handle of an external sandbox; the namespace is the
    /// runtime's and stays.
    fn forget_sandbox(&self, id: &str) {
        self.dns.remove(id);
        self.sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Detaches another runtime's namespace from a network (CNI `DEL`) and
    /// forgets the attachment. An attachment berth does not have (never
    /// made, detached already, or its network gone) is success.
    pub async fn detach_sandbox(&self, req: &SandboxDetachRequest) -> Result<()> {
        check_key(&req.key)?;
        let found = {
            let st = self.state();
            let net = find_network(&st, &req.network).ok().map(|n| n.net.id.clone());
            find(st.containers.values(), &req.key, net.as_deref()).map(|c| c.id.clone())
        };
        let Some(id) = found else { return Ok(()) };
        match self.remove_container(&id, true).await {
            Ok(_) | Err(Error::ContainerNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Checks an attachment (CNI `CHECK`): its namespace is there, and the
    /// driver finds its interface and addresses as it left them.
    pub async fn check_sandbox(&self, req: &SandboxDetachRequest) -> Result<()> {
        check_key(&req.key)?;
        let c = {
            let st = self.state();
            let net = find_network(&st, &req.network)?;
            find(st.containers.values(), &req.key, Some(&net.net.id))
                .cloned()
                .ok_or_else(|| Error::ContainerNotFound {
                    key: format!("{}/{} on network {}", req.key.id, req.key.if_name, net.net.name),
                })?
        };
        let broken = |what: String| Error::SandboxBroken {
            container: c.name.clone(),
            what,
        };
        // The handle opened at the attach, or the namespace at its path.
        let sb = self
            .sandbox(&c)
            .map_err(|e| broken(format!("its namespace is gone: {}", e.chain())))?;
        let links = link::list(&sb.handle).await?;
        let addresses = link::addresses(&sb.handle).await?;
        for ep in &c.endpoints {
            let Some(ifname) = &ep.ifname else { continue };
            let l = links
                .iter()
                .find(|l| l.name == ifname.as_str())
                .ok_or_else(|| broken(format!("its interface {ifname} is gone")))?;
            if !l.up {
                return Err(broken(format!("its interface {ifname} is down")));
            }
            if l.mac.is_some_and(|m| m != ep.mac) {
                return Err(broken(format!("its interface {ifname} has another MAC address")));
            }
            if let Some(a) = ep.addresses.iter().find(|a| !addresses.contains(&(l.index, **a))) {
                return Err(broken(format!("its interface {ifname} lost its address {a}")));
            }
            let n = match self.state().networks.get(&ep.network_id) {
                Some(n) => n.clone(),
                None => return Err(broken(format!("the network of its interface {ifname} is gone"))),
            };
            // Drivers that check their own work (cni) do; the others
            // made only what is checked above.
            match self.check(&n, Some(&sb), ep).await {
                Ok(()) | Err(Error::Driver(berth_core::Error::CannotCheck { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Detaches the attachments of other runtimes on a network that the
    /// runtime no longer lists (CNI `GC`); goes on after failures and
    /// reports the first.
    pub async fn prune_sandboxes(&self, req: &SandboxPruneRequest) -> Result<SandboxPruneResponse> {
        let stale: Vec<(String, SandboxKey)> = {
            let st = self.state();
            let net = find_network(&st, &req.network)?.net.id.clone();
            st.containers
                .values()
                .filter(|c| c.endpoints.first().is_some_and(|e| e.network_id == net))
                .filter_map(|c| {
                    let x = c.external.as_ref()?;
                    let key = SandboxKey {
                        id: x.id.clone(),
                        if_name: x.ifname.clone(),
                    };
                    (!req.keep.contains(&key)).then(|| (c.id.clone(), key))
                })
                .collect()
        };
        let mut removed = Vec::new();
        let mut first = None;
        for (id, key) in stale {
            match self.remove_container(&id, true).await {
                Ok(_) | Err(Error::ContainerNotFound { .. }) => removed.push(key),
                Err(e) => {
                    tracing::warn!(container = %id, "pruning an attachment: {}", e.chain());
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(SandboxPruneResponse { removed }),
        }
    }

    /// At start: an attachment whose namespace is gone (its runtime
    /// removed it without a `DEL`) is taken down and forgotten.
    pub(crate) async fn drop_lost_sandbox(&self, c: &ContainerRecord) {
        tracing::info!(container = %c.name, "the namespace of another runtime it was in is gone: forgetting it");
        let mut c = c.clone();
        self.teardown(&mut c).await;
        if let Err(e) = self
            .store
            .write(vec![Op::Delete(Table::Containers, c.id.clone())])
            .await
        {
            tracing::warn!(container = %c.name, "forgetting it: {}", e.chain());
            return;
        }
        self.state().containers.remove(&c.id);
        self.forget_lock(&c.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_follow_cni() {
        for ok in ["a", "0abc", "pod_1.x-y", &"f".repeat(64)] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "a;b", &"f".repeat(257)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_need_an_interface_name() {
        let key = |ifname: &str| SandboxKey {
            id: "c1".into(),
            if_name: ifname.into(),
        };
        assert!(check_key(&key("eth0")).is_ok());
        for bad in ["", "a/b", "sixteen-bytes-xx"] {
            let e = check_key(&key(bad)).unwrap_err().to_string();
            assert!(e.contains("interface name"), "{bad}: {e}");
        }
    }
}
