//! Following the cluster store: global networks come and go on this host,
//! and the other hosts' containers become peers of the networks' drivers,
//! addresses taken in the networks' pools, and names for the resolver.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Weak;

use berth_cluster::Change;
use berth_core::Scope;
use tokio::sync::mpsc::UnboundedReceiver;

use super::member::Remote;
use crate::dns;
use crate::engine::{Driven, Engine};
use crate::networks::ipam::Pool;
use crate::store::model::NetworkRecord;
use crate::store::{Op, Table};

impl Engine {
    /// Applies the store's changes for as long as the engine lives.
    pub(crate) async fn follow_cluster(engine: Weak<Self>, mut changes: UnboundedReceiver<Change>) {
        while let Some(change) = changes.recv().await {
            let Some(engine) = engine.upgrade() else { return };
            engine.apply(change).await;
        }
    }

    async fn apply(&self, change: Change) {
        let Some(m) = self.cluster.clone() else { return };
        let me = m.store.host().id.clone();
        match change {
            Change::Reset(snap) => {
                let known: Vec<String> = {
                    let st = self.state();
                    st.networks
                        .values()
                        .filter(|n| n.scope == Scope::Global)
                        .map(|n| n.net.id.clone())
                        .collect()
                };
                for (id, record) in &snap.networks {
                    if !known.contains(id) {
                        self.adopt_global(id, record).await;
                    }
                }
                for id in known.iter().filter(|id| !snap.networks.contains_key(*id)) {
                    self.drop_global(id).await;
                }
                *m.hosts() = snap.hosts;
                let mut remote: Remote = BTreeMap::new();
                for ((net, id), ep) in snap.endpoints {
                    if ep.host != me {
                        remote.entry(net).or_default().insert(id, ep);
                    }
                }
                let old = std::mem::replace(&mut *m.remote(), remote);
                // Every global network is told its peers, also one that has
                // none now (a restarted daemon's devices may hold stale ones).
                let global: Vec<String> = {
                    let st = self.state();
                    st.networks
                        .values()
                        .filter(|n| n.scope == Scope::Global)
                        .map(|n| n.net.id.clone())
                        .collect()
                };
                let nets: BTreeSet<String> = old
                    .keys()
                    .chain(m.remote().keys())
                    .cloned()
                    .chain(global)
                    .collect();
                let containers: BTreeSet<String> = old
                    .values()
                    .chain(m.remote().values())
                    .flat_map(|eps| eps.values().map(|e| e.container.clone()))
                    .collect();
                for net in &nets {
                    self.refresh(net, &old).await;
                }
                for c in &containers {
                    self.publish_remote(c);
                }
                // What this host has on global networks is announced again:
                // its records may have gone with a lease that expired.
                self.announce_all().await;
            }
            Change::Network { id, record: Some(r) } => {
                let known = self.state().networks.contains_key(&id);
                if !known {
                    self.adopt_global(&id, &r).await;
                }
            }
            Change::Network { id, record: None } => self.drop_global(&id).await,
            Change::Endpoint {
                network,
                id,
                endpoint,
            } => {
                if endpoint.as_ref().is_some_and(|e| e.host == me) {
                    return;
                }
                let old = m.remote().clone();
                let container = {
                    let mut remote = m.remote();
                    match endpoint {
                        Some(e) => {
                            let c = e.container.clone();
                            remote.entry(network.clone()).or_default().insert(id, e);
                            Some(c)
                        }
                        None => {
                            let gone = remote.get_mut(&network).and_then(|eps| eps.remove(&id));
                            if remote.get(&network).is_some_and(BTreeMap::is_empty) {
                                remote.remove(&network);
                            }
                            gone.map(|e| e.container)
                        }
                    }
                };
                self.refresh(&network, &old).await;
                if let Some(c) = container {
                    self.publish_remote(&c);
                }
            }
            Change::Host { id, host } => {
                let mut hosts = m.hosts();
                match host {
                    Some(h) => {
                        hosts.insert(id, h);
                    }
                    None => {
                        hosts.remove(&id);
                    }
                }
            }
        }
    }

    /// Brings network `net` in line with the other hosts' containers on it
    /// (`old` is what was known before): its driver's peers, and the
    /// addresses taken in its pools.
    async fn refresh(&self, net: &str, old: &Remote) {
        let Some(m) = &self.cluster else { return };
        let addresses = |r: &Remote| -> BTreeSet<IpAddr> {
            r.get(net)
                .into_iter()
                .flat_map(|eps| eps.values())
                .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
                .collect()
        };
        let (before, now) = (addresses(old), addresses(&m.remote()));
        let handle = {
            let mut st = self.state();
            if let Some(pools) = st.pools.get_mut(net) {
                for ip in before.difference(&now) {
                    if let Some(p) = pools.iter_mut().find(|p| p.contains(*ip)) {
                        p.release(*ip);
                    }
                }
                for ip in now.difference(&before) {
                    if let Some(p) = pools.iter_mut().find(|p| p.contains(*ip)) {
                        p.mark_remote(*ip);
                    }
                }
            }
            st.handles.get(net).map(|d| d.handle.clone())
        };
        if let Some(h) = handle
            && let Err(e) = h.peers(&self.ctx, &m.peers(net)).await
        {
            tracing::warn!(network = %net, "programming the other hosts' containers: {}", e.chain());
        }
    }

    /// Tells the resolver what a container of another host now is: its
    /// names on the global networks it is on, or nothing.
    fn publish_remote(&self, container: &str) {
        let Some(m) = &self.cluster else { return };
        let eps: Vec<berth_cluster::Endpoint> = m
            .remote()
            .values()
            .flat_map(|eps| eps.values())
            .filter(|e| e.container == container)
            .cloned()
            .collect();
        let Some(first) = eps.first() else {
            self.dns.remove(container);
            return;
        };
        let networks = {
            let st = self.state();
            eps.iter()
                .filter_map(|e| {
                    let n = st.networks.get(&e.network)?;
                    Some((
                        n.net.id.clone(),
                        n.net.name.clone(),
                        e.addresses.iter().map(|a| a.addr()).collect(),
                        e.aliases.clone(),
                    ))
                })
                .collect()
        };
        let mut names = vec![first.name.clone()];
        if first.hostname != first.name {
            names.push(first.hostname.clone());
        }
        names.push(first.container[..first.container.len().min(12)].to_owned());
        self.dns.set(
            &dns::Entry {
                id: first.container.clone(),
                names,
                ptr_name: first.name.clone(),
                networks,
                client: None,
                upstreams: Vec::new(),
            },
            None,
        );
    }

    /// Makes a global network created on another host known here: opened
    /// by its driver (which makes nothing yet), cached in this host's own
    /// store.
    async fn adopt_global(&self, id: &str, record: &[u8]) {
        let rec: NetworkRecord = match serde_json::from_slice(record) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("global network {id}: its record in the cluster store does not decode: {e}");
                return;
            }
        };
        {
            let st = self.state();
            // Being created here (the store told this host of its own
            // network before it was done), or known already.
            if st.networks.contains_key(id) || st.reserved_names.contains(&rec.net.name) {
                return;
            }
            if let Some(local) = st.networks.values().find(|n| n.net.name == rec.net.name) {
                tracing::error!(
                    network = %rec.net.name,
                    "a global network of the cluster has the name of network {} of this host: it is not usable here until that one is removed",
                    local.net.id
                );
                return;
            }
        }
        let adopted = async {
            let driver = self.driver(&rec.net.driver)?;
            let handle = driver.open(&rec.net).await?;
            handle.create(&self.ctx).await?;
            self.store
                .write(vec![Op::put(Table::Networks, &rec.net.id, &rec)?])
                .await?;
            let mut st = self.state();
            st.pools
                .insert(rec.net.id.clone(), rec.net.ipam.iter().map(Pool::new).collect());
            st.networks.insert(rec.net.id.clone(), rec.clone());
            st.handles.insert(
                rec.net.id.clone(),
                Driven {
                    handle,
                    caps: driver.capabilities(),
                },
            );
            Ok::<_, crate::Error>(())
        };
        match adopted.await {
            Ok(()) => tracing::info!(network = %rec.net.name, "global network known here"),
            Err(e) => tracing::warn!(network = %rec.net.name, "global network: {}", e.chain()),
        }
        self.sync_networks();
    }

    /// Forgets a global network removed on another host (it has no
    /// containers anywhere, or the store would not have let it go).
    async fn drop_global(&self, id: &str) {
        let (rec, handle, attached) = {
            let st = self.state();
            let Some(rec) = st.networks.get(id).cloned() else {
                return;
            };
            let attached: Vec<String> = st
                .containers
                .values()
                .filter(|c| c.endpoint(id).is_some())
                .map(|c| c.name.clone())
                .collect();
            (rec, st.handles.get(id).map(|d| d.handle.clone()), attached)
        };
        if !attached.is_empty() {
            tracing::error!(
                network = %rec.net.name,
                "the network was removed from the cluster while containers {} of this host are on it (this host was away); keeping it here",
                attached.join(", ")
            );
            return;
        }
        if let Some(h) = handle
            && let Err(e) = h.delete(&self.ctx).await
        {
            tracing::warn!(network = %rec.net.name, "removing what this host had of it: {}", e.chain());
        }
        if let Err(e) = self
            .store
            .write(vec![Op::Delete(Table::Networks, id.to_owned())])
            .await
        {
            tracing::warn!(network = %rec.net.name, "forgetting it: {}", e.chain());
        }
        {
            let mut st = self.state();
            st.networks.remove(id);
            st.handles.remove(id);
            st.pools.remove(id);
        }
        self.sync_networks();
        tracing::info!(network = %rec.net.name, "global network removed");
    }
}
