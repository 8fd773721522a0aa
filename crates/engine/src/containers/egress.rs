//! Joining and leaving networks as a whole: an endpoint on a global
//! network is announced to the other hosts, its addresses claimed, in one
//! transaction of the cluster store before it is wired; a container on a
//! network with no way out of its own (overlay: its driver declares
//! `egress`) gets a second endpoint on the host's gateway bridge,
//! `berth_gwbridge`, as Docker's containers get one on `docker_gwbridge`:
//! masqueraded, containers unable to reach each other there, carrying the
//! default route and the published ports.

use berth_core::Sandbox;

use crate::engine::{Engine, State};
use crate::store::model::{ContainerRecord, EndpointRecord, NetworkRecord};
use crate::{Error, Result};

/// The host's gateway bridge network, made at start when the daemon is in
/// a cluster.
pub(crate) const GATEWAY_NETWORK: &str = "berth_gwbridge";

/// A network a container joins, with its planned endpoint.
pub(super) type Join = (NetworkRecord, EndpointRecord);

impl Engine {
    /// Whether network `id`'s driver gives it no way out of its own.
    fn is_egress(st: &State, id: &str) -> bool {
        st.handles.get(id).is_some_and(|d| d.caps.egress)
    }

    /// Plans, under the state lock, the gateway bridge endpoint a
    /// container with `endpoints` needs on joining `net`: when `net` has
    /// no way out of its own, is not internal, and none of the
    /// container's networks gives it a default route yet.
    pub(super) fn plan_egress(
        &self,
        st: &mut State,
        net: &NetworkRecord,
        endpoints: &[EndpointRecord],
    ) -> Result<Option<Join>> {
        if !Self::is_egress(st, &net.net.id) || net.net.internal || endpoints.iter().any(|e| e.default_route)
        {
            return Ok(None);
        }
        let gw = st
            .networks
            .values()
            .find(|n| n.builtin && n.net.name == GATEWAY_NETWORK)
            .cloned()
            .ok_or_else(|| Error::NetworkNotFound {
                key: GATEWAY_NETWORK.to_owned(),
            })?;
        if endpoints.iter().any(|e| e.network_id == gw.net.id) {
            return Ok(None);
        }
        let ep = self.plan_endpoint(st, &gw, endpoints, &[], None)?;
        Ok(Some((gw, ep)))
    }

    /// The gateway bridge endpoint a container keeps for nothing once it
    /// is on no network without a way out of its own.
    pub(super) fn egress_unneeded(&self, c: &ContainerRecord) -> Option<usize> {
        let st = self.state();
        if c.endpoints.iter().any(|e| Self::is_egress(&st, &e.network_id)) {
            return None;
        }
        c.endpoints.iter().position(|e| {
            st.networks
                .get(&e.network_id)
                .is_some_and(|n| n.builtin && n.net.name == GATEWAY_NETWORK)
        })
    }

    /// Wires planned endpoints of container `c` into its sandbox, all at
    /// once (an overlay's and the gateway bridge's are independent); an
    /// endpoint of a global network is announced to the cluster at the
    /// same time, its addresses claimed there. On failure what was done is
    /// undone.
    pub(super) async fn wire(&self, sb: &Sandbox, c: &ContainerRecord, joins: &mut [Join]) -> Result<()> {
        self.intend(&c.id, sb, joins);
        let done = futures_util::future::join_all(joins.iter_mut().map(|(net, ep)| async move {
            if self.clustered(net) {
                self.join_and_attach(net, sb, c, ep).await
            } else {
                self.attach(net, sb, ep).await
            }
        }))
        .await;
        if done.iter().all(Result::is_ok) {
            return Ok(());
        }
        let (wired, failed): (Vec<_>, Vec<_>) = joins.iter().cloned().zip(done).partition(|(_, r)| r.is_ok());
        let wired: Vec<Join> = wired.into_iter().map(|(j, _)| j).collect();
        self.unwire(Some(sb), &wired).await;
        match failed.into_iter().next() {
            Some((_, Err(e))) => Err(e),
            _ => Ok(()),
        }
    }

    /// Undoes [`Engine::wire`]: detaches each endpoint and withdraws those
    /// of global networks from the cluster. Failures are logged.
    pub(super) async fn unwire(&self, sb: Option<&Sandbox>, joins: &[Join]) {
        for (net, ep) in joins.iter().rev() {
            if let Err(e) = self.detach(net, sb, ep).await {
                tracing::warn!(network = %net.net.name, "undoing an attach: {}", e.chain());
            }
            if self.clustered(net) {
                self.withdraw(net, ep).await;
            }
        }
        // The caller gives the addresses back at once: the links that
        // held them must be gone by then.
        self.ctx.lingering.settled().await;
    }

    /// Ends the planned endpoints' pending state; on failure gives their
    /// addresses back.
    pub(super) fn settle_all(st: &mut State, joins: &[Join], ok: bool) {
        for (_, ep) in joins {
            Self::settle(st, ep, ok);
        }
    }
}
