//! Docker's endpoints on berth's global networks (an overlay in a
//! cluster): their addresses claimed in the cluster store, so that no host
//! gives one twice, and the endpoints announced there once joined, so that
//! every other host programs its tunnel to them.
//!
//! An address Docker asked berth's IPAM for is held in the store by
//! `docker:<host id>` (not by an endpoint: `RequestAddress` comes before
//! the endpoint exists, and `ReleaseAddress` after it is gone), under this
//! host's lease, from `RequestAddress` (or `CreateEndpoint`, when another
//! IPAM gave it) until `ReleaseAddress` (or `DeleteEndpoint`). The
//! endpoint's record (`endpoints/<network>/<endpoint>`) is there from
//! `Join` until `Leave`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::engine::Engine;
use crate::store::model::{EndpointRecord, NetworkRecord};
use crate::{Error, Result};

/// What holds Docker's addresses of this host in the cluster store.
fn holder(engine: &Engine) -> Option<String> {
    let m = engine.cluster.as_ref()?;
    Some(format!("docker:{}", m.store.host().id))
}

/// The id of the global network in the cluster whose subnet is `subnet`.
pub(super) fn network_of(engine: &Engine, subnet: &IpNet) -> Option<String> {
    engine
        .state()
        .networks
        .values()
        .find(|n| engine.clustered(n) && n.net.ipam.iter().any(|c| c.subnet == *subnet))
        .map(|n| n.net.id.clone())
}

/// Whether a container of another host has `ip` on global network `net`.
pub(super) fn held_remotely(engine: &Engine, net: &str, ip: IpAddr) -> bool {
    engine.cluster.as_ref().is_some_and(|m| {
        m.remote()
            .get(net)
            .is_some_and(|eps| eps.values().any(|e| e.addresses.iter().any(|a| a.addr() == ip)))
    })
}

/// Claims `ip` of global network `net` for this host's dockerd: false when
/// an endpoint of any host holds it.
pub(super) async fn claim(engine: &Engine, net: &str, ip: IpAddr) -> Result<bool> {
    let (Some(m), Some(holder)) = (engine.cluster.as_ref(), holder(engine)) else {
        return Ok(true);
    };
    Ok(m.store.claim_address(net, ip, &holder).await?)
}

/// Gives `ip` of global network `net` back, if this host's dockerd holds
/// it. Failures are logged (the lease frees it when this host goes).
pub(super) async fn release(engine: &Engine, net: &str, ip: IpAddr) {
    let (Some(m), Some(holder)) = (engine.cluster.as_ref(), holder(engine)) else {
        return;
    };
    if let Err(e) = m.store.release_address(net, ip, &holder).await {
        tracing::warn!(network = net, "giving back {ip} in the cluster store: {e}");
    }
}

/// The cluster's record of a Docker endpoint: Docker does not tell its
/// plugins the container's name, so its names are the endpoint id's first
/// 12 digits.
fn record(engine: &Engine, ep: &EndpointRecord) -> Option<berth_cluster::Endpoint> {
    let m = engine.cluster.as_ref()?;
    let short: String = ep.id.chars().take(12).collect();
    Some(berth_cluster::Endpoint {
        id: ep.id.clone(),
        network: ep.network_id.clone(),
        container: ep.id.clone(),
        name: short.clone(),
        hostname: short,
        aliases: Vec::new(),
        mac: ep.mac.to_string(),
        addresses: ep.addresses.clone(),
        host: m.store.host().id.clone(),
        vtep: m.underlay.address,
    })
}

/// Announces a joined Docker endpoint of a global network to the other
/// hosts (its addresses are claimed already).
pub(super) async fn announce(engine: &Engine, net: &NetworkRecord, ep: &EndpointRecord) -> Result<()> {
    if !engine.clustered(net) {
        return Ok(());
    }
    let (Some(m), Some(rec)) = (engine.cluster.as_ref(), record(engine, ep)) else {
        return Ok(());
    };
    m.store.put_endpoint(&rec).await.map_err(Error::Cluster)
}

/// Withdraws a Docker endpoint of a global network. Idempotent; failures
/// are logged (the lease ends it when this host goes).
pub(super) async fn withdraw(engine: &Engine, net: &NetworkRecord, ep: &EndpointRecord) {
    if !engine.clustered(net) {
        return;
    }
    let Some(m) = engine.cluster.as_ref() else { return };
    if let Err(e) = m.store.delete_endpoint(&net.net.id, &ep.id).await {
        tracing::warn!(network = %net.net.name, "withdrawing Docker's endpoint {}: {e}", ep.id);
    }
}

impl Engine {
    /// Claims again, under this host's current lease, the addresses of
    /// global networks berth's IPAM gave dockerd, and announces again
    /// dockerd's joined endpoints on them (after this daemon started, or
    /// got a new lease). Returns the ids of those endpoints, which the
    /// caller keeps in the store. Failures are logged.
    pub(crate) async fn announce_docker(&self) -> Vec<String> {
        let (pools, endpoints) = {
            let b = self.book();
            let pools: Vec<(IpNet, Vec<IpAddr>)> = b
                .pools
                .values()
                .map(|p| (p.subnet, p.addresses.iter().copied().collect()))
                .collect();
            let eps: Vec<EndpointRecord> = b
                .endpoints
                .values()
                .filter(|e| e.joined)
                .map(|e| e.endpoint.clone())
                .collect();
            (pools, eps)
        };
        for (subnet, addresses) in pools {
            let Some(net) = network_of(self, &subnet) else {
                continue;
            };
            let gw = self
                .state()
                .networks
                .get(&net)
                .and_then(|n| n.net.gateway(subnet.addr().is_ipv6()));
            for ip in addresses.into_iter().filter(|a| Some(*a) != gw) {
                match claim(self, &net, ip).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(
                        network = net,
                        "address {ip} of a Docker endpoint was given to another host's container while this one was away"
                    ),
                    Err(e) => tracing::warn!(network = net, "claiming {ip} again: {}", e.chain()),
                }
            }
        }
        let mut kept = Vec::new();
        for ep in endpoints {
            let Some(net) = self.state().networks.get(&ep.network_id).cloned() else {
                continue;
            };
            if !self.clustered(&net) {
                continue;
            }
            kept.push(ep.id.clone());
            if let Err(e) = announce(self, &net, &ep).await {
                tracing::warn!(network = %net.net.name, "announcing Docker's endpoint {} again: {}", ep.id, e.chain());
            }
        }
        kept
    }
}
