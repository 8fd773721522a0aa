//! The engine in a cluster (`--cluster-store`): global networks kept in
//! the cluster store, their addresses claimed there, this host's
//! containers on them announced, and the other hosts' containers followed
//! (forwarding entries for the networks' drivers, names for the
//! resolver). See `berth_cluster` for the store itself and its layout.
//!
//! A host keeps serving what it has when the store is away: its global
//! networks are cached in its own store, and their drivers keep the
//! entries of the peers they last knew; what needs the store (creating or
//! removing a global network, a container joining one) fails with one line
//! saying the store cannot be reached, and a container that leaves is
//! withdrawn once the store answers. When it answers again the watch
//! resumes from the last revision it saw (or reads everything again when
//! that revision was compacted), and if this host's lease ran out
//! meanwhile its containers are announced again under a new one.
//!
//! - `member`: joining (the underlay, this host's id, the store) and what
//!   this host knows of the others;
//! - `follow`: the store's changes applied to networks, drivers and the
//!   resolver;
//! - here: the engine's work in the cluster (global networks published
//!   and removed, endpoints announced and withdrawn, `GET /info`'s part).

mod follow;
pub(crate) mod member;

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_core::Mac;

pub use self::member::ClusterConfig;
use self::member::Member;
use crate::engine::Engine;
use crate::store::model::{ContainerRecord, EndpointRecord, NetworkRecord};
use crate::{Error, Result, util};

/// A host of the cluster as `GET /info` shows it.
fn host_view(h: &berth_cluster::Host, lease_left: i64) -> berth_api::ClusterHost {
    berth_api::ClusterHost {
        id: h.id.clone(),
        name: h.name.clone(),
        address: h.address.to_string(),
        since: h.since,
        age_seconds: (util::unix_now().max(0) as u64).saturating_sub(h.since),
        lease_seconds_left: lease_left,
    }
}

impl Engine {
    /// Whether `net` lives in the cluster store: a global network, on a
    /// daemon in a cluster. (Without one, a plugin's global networks are
    /// this host's alone, and an overlay cannot be made.)
    pub(crate) fn clustered(&self, net: &NetworkRecord) -> bool {
        self.cluster.is_some() && net.scope == berth_core::Scope::Global
    }

    /// This host's membership, for a driver of global networks; without
    /// one, the error that says what is missing.
    pub(crate) fn member(&self, driver: &str) -> Result<&Arc<Member>> {
        self.cluster.as_ref().ok_or_else(|| {
            Error::Driver(berth_core::Error::NoCluster {
                driver: driver.to_owned(),
            })
        })
    }

    /// Puts a new global network in the cluster store: its record, name
    /// and subnets, in one transaction that fails when another network
    /// holds any of them.
    pub(crate) async fn publish_network(&self, rec: &NetworkRecord) -> Result<()> {
        let m = self.member(&rec.net.driver)?;
        let record = serde_json::to_vec(rec).map_err(|e| Error::EncodeRecord {
            id: rec.net.id.clone(),
            source: e,
        })?;
        let subnets: Vec<_> = rec.net.ipam.iter().map(|c| c.subnet).collect();
        m.store
            .create_network(&rec.net.id, &rec.net.name, &record, &subnets)
            .await?;
        Ok(())
    }

    /// Takes back a global network whose creation failed here after it was
    /// published. Failures are logged.
    pub(crate) async fn unpublish_network(&self, rec: &NetworkRecord) {
        if let Err(e) = self.remove_global(rec).await {
            tracing::warn!(network = %rec.net.name, "taking the network back from the cluster store: {}", e.chain());
        }
    }

    /// Removes a global network from the cluster store, refused while a
    /// container of any host is on it.
    pub(crate) async fn remove_global(&self, rec: &NetworkRecord) -> Result<()> {
        let m = self.member(&rec.net.driver)?;
        let subnets: Vec<_> = rec.net.ipam.iter().map(|c| c.subnet).collect();
        m.store
            .remove_network(&rec.net.id, &rec.net.name, &subnets)
            .await?;
        Ok(())
    }

    /// Adds a global network's peers to its view: the hosts with
    /// containers on it, this one included when it has some.
    pub(crate) fn with_peers(&self, n: &NetworkRecord, mut view: berth_api::Network) -> berth_api::Network {
        let Some(m) = &self.cluster else { return view };
        if n.scope != berth_core::Scope::Global {
            return view;
        }
        let hosts = m.hosts();
        let mut peers: BTreeSet<berth_api::NetworkPeer> = m
            .remote()
            .get(&n.net.id)
            .into_iter()
            .flat_map(|eps| eps.values())
            .map(|e| berth_api::NetworkPeer {
                name: hosts.get(&e.host).map(|h| h.name.clone()).unwrap_or_default(),
                ip: e.vtep.to_string(),
            })
            .collect();
        if !view.containers.is_empty() {
            peers.insert(berth_api::NetworkPeer {
                name: m.store.host().name.clone(),
                ip: m.underlay.address.to_string(),
            });
        }
        view.peers = Some(peers.into_iter().collect());
        view
    }

    /// What `GET /info` says of the cluster.
    pub(crate) fn cluster_info(&self) -> Option<berth_api::ClusterInfo> {
        let m = self.cluster.as_ref()?;
        let (health, since) = m.store.health();
        let health = match health {
            berth_cluster::Health::Connecting => "connecting".to_owned(),
            berth_cluster::Health::Healthy => "healthy".to_owned(),
            berth_cluster::Health::Unreachable(why) => format!("unreachable: {why}"),
        };
        Some(berth_api::ClusterInfo {
            store: m.store.store(),
            health,
            health_since_seconds: since.as_secs(),
            host_id: m.store.host().id.clone(),
            advertise: m.underlay.address.to_string(),
            interface: m.underlay.ifname.clone(),
            mtu: m.underlay.mtu,
            hosts: m.hosts().values().map(|h| host_view(h, -1)).collect(),
        })
    }

    /// Fills `info`'s hosts from the store, with their leases: what the
    /// watch last said when the store does not answer.
    pub(crate) async fn cluster_hosts(&self, info: &mut berth_api::ClusterInfo) {
        let Some(m) = &self.cluster else { return };
        if let Ok(hosts) = m.store.hosts().await {
            info.hosts = hosts.iter().map(|(h, ttl)| host_view(h, *ttl)).collect();
        }
    }

    /// The cluster-side record of a container's endpoint.
    fn endpoint_record(
        &self,
        m: &Member,
        c: &ContainerRecord,
        ep: &EndpointRecord,
    ) -> berth_cluster::Endpoint {
        berth_cluster::Endpoint {
            id: ep.id.clone(),
            network: ep.network_id.clone(),
            container: c.id.clone(),
            name: c.name.clone(),
            hostname: c.hostname.clone(),
            aliases: ep.aliases.clone(),
            mac: ep.mac.to_string(),
            addresses: ep.addresses.clone(),
            host: m.store.host().id.clone(),
            vtep: m.underlay.address,
        }
    }

    /// Announces a planned endpoint to the other hosts and claims its
    /// addresses, in one transaction. An address another host's endpoint
    /// took first is marked taken here and the next free one is tried,
    /// with the MAC that goes with it (a static one `--ip` asked for is
    /// refused instead, naming its holder).
    pub(crate) async fn join_cluster(
        &self,
        net: &NetworkRecord,
        c: &ContainerRecord,
        ep: &mut EndpointRecord,
    ) -> Result<()> {
        let m = self.member(&net.net.driver)?;
        for _ in 0..64 {
            let Some(ip) = m.store.join_endpoint(&self.endpoint_record(m, c, ep)).await? else {
                return Ok(());
            };
            if ep.static_ip.contains(&ip) {
                let holder = m
                    .remote()
                    .get(&net.net.id)
                    .and_then(|eps| eps.values().find(|e| e.addresses.iter().any(|a| a.addr() == ip)))
                    .map(|e| e.name.clone());
                return Err(Error::AddressInUse {
                    ip,
                    container: holder,
                });
            }
            let Some(i) = ep.addresses.iter().position(|a| a.addr() == ip) else {
                break;
            };
            let next = {
                let mut st = self.state();
                Self::replan(&mut st, &net.net.id, ep.addresses[i])?
            };
            ep.addresses[i] = next;
            if next.addr().is_ipv4() {
                ep.mac = Mac::for_ipv4(Some(next.addr()));
            }
        }
        Err(Error::Cluster(berth_cluster::Error::Exhausted {
            what: format!("address of network {} after 64 tries", net.net.name),
        }))
    }

    /// Wires an endpoint of a global network: it is announced to the
    /// cluster (its addresses claimed) while its driver wires it, both at
    /// once. When another host took one of its addresses first (rare: this
    /// host's pools know the others' addresses), the wiring is undone and
    /// both are done again in turn, with another address.
    pub(crate) async fn join_and_attach(
        &self,
        net: &NetworkRecord,
        sb: &berth_core::Sandbox,
        c: &ContainerRecord,
        ep: &mut EndpointRecord,
    ) -> Result<()> {
        let m = self.member(&net.net.driver)?;
        let rec = self.endpoint_record(m, c, ep);
        let (claimed, attached) = tokio::join!(m.store.join_endpoint(&rec), self.attach(net, sb, ep));
        match (claimed, attached) {
            (Ok(None), Ok(())) => return Ok(()),
            (Ok(None), Err(e)) => {
                self.withdraw(net, ep).await;
                return Err(e);
            }
            (claimed, attached) => {
                if attached.is_ok()
                    && let Err(e) = self.detach(net, Some(sb), ep).await
                {
                    tracing::warn!(network = %net.net.name, "undoing an attach: {}", e.chain());
                }
                claimed?;
            }
        }
        self.join_cluster(net, c, ep).await?;
        if let Err(e) = self.attach(net, sb, ep).await {
            self.withdraw(net, ep).await;
            return Err(e);
        }
        Ok(())
    }

    /// Has the driver undo an endpoint of a global network while it is
    /// withdrawn from the cluster, both at once. When the driver fails and
    /// `force` is off, the endpoint stays, and is announced again.
    pub(crate) async fn detach_and_leave(
        &self,
        net: &NetworkRecord,
        sb: Option<&berth_core::Sandbox>,
        c: &ContainerRecord,
        ep: &EndpointRecord,
        force: bool,
    ) -> Result<()> {
        let (detached, ()) = tokio::join!(self.detach(net, sb, ep), self.withdraw(net, ep));
        match detached {
            Err(e) if !force => {
                if let Some(m) = &self.cluster
                    && let Err(again) = m.store.join_endpoint(&self.endpoint_record(m, c, ep)).await
                {
                    tracing::warn!(network = %net.net.name, "announcing endpoint {} again: {again}", ep.id);
                }
                Err(e)
            }
            Err(e) => {
                tracing::warn!(network = %net.net.name, "detach: {}", e.chain());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Withdraws an endpoint from the cluster and gives its addresses
    /// back; failures are logged. While the store does not answer it does
    /// not wait: the records are no longer kept alive, and go in the
    /// background once the store answers (or with the next full read,
    /// which withdraws what this host no longer has).
    pub(crate) async fn withdraw(&self, net: &NetworkRecord, ep: &EndpointRecord) {
        let Some(m) = &self.cluster else { return };
        let rec = berth_cluster::Endpoint {
            id: ep.id.clone(),
            network: net.net.id.clone(),
            container: String::new(),
            name: String::new(),
            hostname: String::new(),
            aliases: Vec::new(),
            mac: String::new(),
            addresses: ep.addresses.clone(),
            host: m.store.host().id.clone(),
            vtep: m.underlay.address,
        };
        if m.store.health().0 == berth_cluster::Health::Healthy {
            match m.store.leave_endpoint(&rec).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(network = %net.net.name, "withdrawing endpoint {}: {e}", ep.id),
            }
        }
        // The store does not answer now: this host stops keeping the
        // records alive at once, and deletes them in the background once it
        // answers (for a minute at most; after that, the next full read).
        m.store.forget_endpoint(&rec);
        tracing::info!(network = %net.net.name, "endpoint {} is withdrawn once the store answers", ep.id);
        let store = m.store.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                if store.health().0 == berth_cluster::Health::Healthy
                    && store.leave_endpoint(&rec).await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }

    /// Announces every endpoint of this host's running containers on
    /// global networks again (after the store was away, or this daemon
    /// restarted), and withdraws what this host announced but no longer
    /// has.
    pub(crate) async fn announce_all(&self) {
        let Some(m) = &self.cluster else { return };
        // The watch's first snapshot comes as soon as the store answers,
        // which may be before this host's lease is granted (after a start,
        // or an outage): what is announced needs it. Bounded: 5 s, then
        // the calls below say what failed.
        for _ in 0..50 {
            if m.store.health().0 == berth_cluster::Health::Healthy {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mine: Vec<(NetworkRecord, ContainerRecord, EndpointRecord)> = {
            let st = self.state();
            st.containers
                .values()
                .flat_map(|c| {
                    c.endpoints.iter().filter_map(|ep| {
                        let net = st.networks.get(&ep.network_id)?;
                        self.clustered(net).then(|| (net.clone(), c.clone(), ep.clone()))
                    })
                })
                .collect()
        };
        let mut keep: BTreeSet<String> = mine.iter().map(|(_, _, ep)| ep.id.clone()).collect();
        // dockerd's endpoints (`--serve-docker`) are this host's too.
        keep.extend(self.announce_docker().await);
        if let Err(e) = m.store.forget_others(&keep).await {
            tracing::warn!("withdrawing what a crash left in the cluster store: {e}");
        }
        for (net, c, ep) in mine {
            match m.store.join_endpoint(&self.endpoint_record(m, &c, &ep)).await {
                Ok(None) => {}
                Ok(Some(ip)) => tracing::error!(
                    container = %c.name, network = %net.net.name,
                    "address {ip} was given to a container of another host while this one was away: not announced"
                ),
                Err(e) => {
                    tracing::warn!(container = %c.name, network = %net.net.name, "announcing again: {e}")
                }
            }
        }
    }
}
