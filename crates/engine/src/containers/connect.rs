//! `network connect` and `network disconnect`: one more network for a
//! running container, or one less.

use berth_core::SandboxKind;

use super::dnsopts::{self};
use super::endpoints::parse_static;
use super::{failpoint, find_container};
use crate::engine::Engine;
use crate::networks::find_network;
use crate::store::model::{EndpointRecord, NetworkRecord};
use crate::{Error, Result};

impl Engine {
    /// Connects a container to one more network (`eth1`, `eth2`, …).
    pub async fn connect(
        &self,
        net_key: &str,
        key: &str,
        ipv4: &str,
        ipv6: &str,
        aliases: &[String],
        mac: &str,
    ) -> Result<()> {
        let wanted = parse_static(ipv4, ipv6)?;
        let mac = super::endpoints::parse_mac(mac)?;
        let aliases: Vec<String> = aliases.iter().map(|a| dnsopts::alias(a)).collect::<Result<_>>()?;
        let id = self.find_container(key)?.id;
        self.await_unlinked(net_key, &wanted).await;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let (mut c, net, mut joins) = {
            let mut st = self.state();
            let c = find_container(&st, &id)?.clone();
            super::control::refuse_external(&c)?;
            let net = find_network(&st, net_key)?.clone();
            let caps = self.driven(&st, &net)?.caps;
            if !caps.multi_network {
                return Err(Error::ConnectOnlyAtRun {
                    network: net.net.name.clone(),
                });
            }
            if let Some(first) = c.endpoints.first().and_then(|e| st.networks.get(&e.network_id))
                && let Some(d) = st.handles.get(&first.net.id)
                && !d.caps.multi_network
            {
                return Err(Error::NetworkNotShared {
                    container: c.name.clone(),
                    network: first.net.name.clone(),
                });
            }
            if c.endpoint(&net.net.id).is_some() {
                return Err(Error::AlreadyConnected {
                    container: c.name.clone(),
                    network: net.net.name.clone(),
                });
            }
            if c.sandbox.is_none() {
                return Err(Error::NotRunning {
                    container: c.name.clone(),
                });
            }
            if !aliases.is_empty() && net.builtin {
                return Err(Error::AliasOnPredefined {
                    network: net.net.name.clone(),
                });
            }
            let mut ep = self.plan_endpoint(&mut st, &net, &c.endpoints, &wanted, mac)?;
            ep.aliases = aliases;
            let mut joins = vec![(net.clone(), ep)];
            let mut all = c.endpoints.clone();
            all.push(joins[0].1.clone());
            match self.plan_egress(&mut st, &net, &all) {
                Ok(gw) => joins.extend(gw),
                Err(e) => {
                    Self::settle_all(&mut st, &joins, false);
                    return Err(e);
                }
            }
            (c, net, joins)
        };
        let made = async {
            let sb = self.sandbox(&c)?;
            self.wire(&sb, &c, &mut joins).await?;
            c.endpoints.extend(joins.iter().map(|(_, ep)| ep.clone()));
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
                c.endpoints.truncate(c.endpoints.len() - joins.len());
                if starts_resolver {
                    self.dns.remove(&c.id);
                    c.dns.embedded = false;
                    let _ = self.write_resolv(&mut c, SandboxKind::Own);
                }
                self.unwire(Some(&sb), &joins).await;
                let _ = self.write_hosts(&mut c, SandboxKind::Own);
                return Err(e);
            }
            Ok(())
        }
        .await;
        self.settled(&joins);
        {
            let mut st = self.state();
            Self::settle_all(&mut st, &joins, made.is_ok());
            made?;
            st.containers.insert(c.id.clone(), c.clone());
        }
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
        // Its runtime detaches it (CNI DEL); a disconnect cut short by a
        // crash is finished whoever it was for.
        if c.is_external() && !force {
            return Err(Error::ExternalContainer { container: c.name });
        }
        let Some(pos) = c.endpoints.iter().position(|e| e.network_id == net.net.id) else {
            return Err(Error::NotConnected {
                container: c.name.clone(),
                network: net.net.name.clone(),
            });
        };
        if !self.driven(&self.state(), &net)?.caps.multi_network {
            return Err(Error::DisconnectRefused {
                network: net.net.name.clone(),
            });
        }
        let sb = self.sandbox(&c).ok();
        let mut gone = vec![c.endpoints.remove(pos)];
        // Its way out goes with the last network that needed it.
        if let Some(gw) = self.egress_unneeded(&c) {
            gone.push(c.endpoints.remove(gw));
        }
        for ep in &gone {
            if c.ports_network == ep.network_id {
                // The ports led to this network's address: they go with it.
                self.ctx.firewall.remove_ports(&c.id)?;
                self.state().ports.remove(&c.name, &c.ports);
                c.ports.clear();
                c.ports_network.clear();
            }
        }
        // The endpoints that go are undone at once (an overlay's and its
        // gateway bridge's do not wait for each other).
        let leaving: Vec<(NetworkRecord, &EndpointRecord)> = {
            let st = self.state();
            gone.iter()
                .filter_map(|ep| Some((st.networks.get(&ep.network_id)?.clone(), ep)))
                .collect()
        };
        self.intend_detach(&c.id, sb.as_deref(), gone.iter());
        let undone = futures_util::future::join_all(leaving.iter().map(|(n, ep)| {
            let (c, sb) = (&c, sb.as_deref());
            async move {
                if self.clustered(n) {
                    self.detach_and_leave(n, sb, c, ep, force).await
                } else {
                    match self.detach(n, sb, ep).await {
                        Err(e) if !force => Err(e),
                        _ => Ok(()),
                    }
                }
            }
        }))
        .await;
        if let Err(e) = undone.into_iter().collect::<Result<Vec<()>>>() {
            // Refused: the container stays connected, nothing to finish.
            self.forget(gone.iter());
            return Err(e);
        }
        if gone.iter().any(|e| e.default_route)
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
        // A container that started on the default bridge got the embedded
        // resolver with its first user-defined network; without any left,
        // it gets its resolv.conf of the default bridge back.
        let stops_resolver = c.dns.embedded && {
            let st = self.state();
            let started_builtin = st
                .networks
                .values()
                .any(|n| n.builtin && n.net.name == c.network_mode);
            started_builtin
                && !c
                    .endpoints
                    .iter()
                    .any(|e| st.networks.get(&e.network_id).is_some_and(|n| !n.builtin))
        };
        if stops_resolver {
            self.dns.remove(&c.id);
            c.dns.embedded = false;
            if let Err(e) = self.write_resolv(&mut c, SandboxKind::Own) {
                tracing::warn!(container = %c.name, "writing resolv.conf: {}", e.chain());
            }
        }
        let _ = self.write_hosts(&mut c, SandboxKind::Own);
        failpoint("disconnect-after-detach");
        self.save_container(&c).await?;
        self.forget(gone.iter());
        let mut st = self.state();
        for ep in &gone {
            self.release_detached(&mut st, ep);
        }
        st.containers.insert(c.id.clone(), c.clone());
        drop(st);
        self.publish(&c);
        Ok(())
    }
}
