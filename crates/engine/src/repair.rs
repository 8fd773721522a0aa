//! Putting the kernel back as the store says, for what exists: every
//! network's objects (its bridge up with its address and MAC, its sysctls,
//! its firewall elements) and every live container's endpoints (back on
//! their bridge and up, their addresses and default route in the sandbox,
//! re-made where they are gone). At start, after the restore, and on
//! `berth system reconcile` (or SIGHUP) for a machine someone changed
//! under berth: a deleted bridge, a link set down, a flushed ruleset.

use berth_core::SandboxKind;
use berth_core::link;

use crate::Result;
use crate::containers::endpoints::driver_view;
use crate::engine::{Driven, Engine};
use crate::store::model::{ContainerRecord, NetworkRecord, Status};

impl Engine {
    /// Puts every network and every running container's endpoints back as
    /// the store says; the firewall table goes back in one transaction.
    /// What cannot be repaired is logged and the rest goes on; the
    /// firewall's failure is the error.
    pub async fn reconcile(&self) -> Result<()> {
        let nets: Vec<(NetworkRecord, Driven)> = {
            let st = self.state();
            st.networks
                .values()
                .filter_map(|n| Some((n.clone(), st.handles.get(&n.net.id)?.clone())))
                .collect()
        };
        // The networks' elements are staged and go in with the table.
        self.ctx.firewall.stage();
        for (n, d) in &nets {
            if let Err(e) = d.handle.create(&self.ctx).await {
                tracing::warn!(network = %n.net.name, "repairing the network: {}", e.chain());
            }
        }
        let installed = self.reinstall_firewall().await;
        let live: Vec<ContainerRecord> = self
            .state()
            .containers
            .values()
            .filter(|c| c.status == Status::Running && Self::running(c))
            .cloned()
            .collect();
        for c in &live {
            self.repair(c).await;
        }
        installed
    }

    /// Has each endpoint's driver put it back as it left it.
    pub(crate) async fn repair(&self, c: &ContainerRecord) {
        let Ok(sb) = self.sandbox(c) else { return };
        let own = self.kind_of(c) == Some(SandboxKind::Own);
        for ep in &c.endpoints {
            let Some(net) = self.state().networks.get(&ep.network_id).cloned() else {
                continue;
            };
            let Ok(driven) = self.driven(&self.state(), &net) else {
                continue;
            };
            let gateways = if ep.default_route { &ep.gateways[..] } else { &[] };
            let sandbox = own.then_some(&*sb);
            if let Err(e) = driven
                .handle
                .repair(&self.ctx, &driver_view(ep, sandbox, gateways))
                .await
            {
                tracing::warn!(container = %c.name, network = %net.net.name, "repairing: {}", e.chain());
            }
            // A driver that repairs nothing itself (a plugin) has its
            // endpoint made again when the host side it reported is gone.
            let Some(host_if) = &ep.host_ifname else { continue };
            match link::get(&self.ctx.handle, host_if).await {
                Ok(None) => {
                    let mut again = ep.clone();
                    match self.attach(&net, &sb, &mut again).await {
                        Ok(()) => {
                            tracing::info!(container = %c.name, network = %net.net.name, "re-made missing {host_if}")
                        }
                        Err(e) => tracing::warn!(container = %c.name, "re-making {host_if}: {}", e.chain()),
                    }
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(container = %c.name, "checking {host_if}: {}", e.chain()),
            }
        }
    }
}
