//! The `overlay` driver: one network across the hosts of a cluster, over
//! VXLAN, as `docker network create -d overlay` makes in a swarm — but on
//! the cluster store (etcd) the daemons share instead of a swarm.
//!
//! The network is global: the engine keeps it, its subnets, its VNI and
//! its containers' addresses in the cluster store, so it is the same
//! network on every host. On a host, the network exists only while a
//! container of that host is on it, in a namespace of its own (pinned
//! under the daemon's run directory, `overlay/<network id>`):
//!
//! ```text
//! host namespace: the underlay (--advertise-addr), UDP 4789
//!   overlay/<id>: br0 (fixed MAC, no address)
//!                 vxlan0 (VNI, local = --advertise-addr, nolearning, proxy), port of br0
//!                 ve<endpoint>: one veth per container, port of br0
//!     container: eth0 (its address on the overlay, MTU = underlay − 50)
//! ```
//!
//! The host has no address on the overlay, so it cannot reach an overlay
//! subnet, two overlays cannot reach each other, and an overlay subnet may
//! overlap a route of the host. The VXLAN device learns nothing: each
//! container on another host is two entries, its IP→MAC neighbour entry
//! (answered locally: `proxy`) and its MAC→tunnel-endpoint forwarding
//! entry, programmed from the cluster store's watch
//! ([`NetworkHandle::peers`](berth_core::NetworkHandle::peers)) and removed
//! when it goes. Containers reach the outside through a second interface
//! on the host's gateway bridge, which the engine gives them (the
//! driver's networks declare `egress`); `-p` publishes on that address.
//!
//! # Options
//!
//! - `-o vxlan.id=N` (1 to 16777215; Docker's
//!   `com.docker.network.driver.overlay.vxlanid_list`): the VNI. Without
//!   it the cluster gives the lowest free one from 4096 up. Either way it
//!   is claimed in the cluster store in one transaction.
//! - `-o mtu=N` (Docker's `com.docker.network.driver.mtu`): the MTU of the
//!   network's devices; by default the underlay interface's MTU minus 50
//!   (VXLAN's headers), never more.
#![deny(missing_docs)]

mod config;
mod net;

use std::sync::Arc;

use berth_core::{
    Capabilities, Context, Error, Feature, Features, Network, NetworkDriver, NetworkHandle, Ports, Result,
    SandboxKind, Scope, async_trait, vxlan,
};

pub use config::{Config, OPTIONS, VNI_POOL, VNI_RANGE};
pub use net::OverlayNet;

/// The `overlay` network mode.
#[derive(Debug, Default)]
pub struct Overlay;

/// The pool of VNIs in the cluster store.
const VNIS: &str = "vni";

#[async_trait]
impl NetworkDriver for Overlay {
    fn name(&self) -> &str {
        "overlay"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scope: Scope::Global,
            sandbox: SandboxKind::Own,
            ipam: true,
            options: OPTIONS,
            multi_network: true,
            ports: Ports::ViaGateway,
            dns: true,
            parent: false,
            aliases: &[],
            egress: true,
        }
    }

    fn supported(&self, f: &Features) -> Result<()> {
        f.require(Feature::Vxlan)
    }

    /// Claims the network's VNI in the cluster (the one asked for, or the
    /// lowest free one from 4096) and records it as `vxlan.id`; checks the
    /// MTU against the underlay's.
    async fn allocate(&self, ctx: &Context, net: &mut Network) -> Result<()> {
        let cluster = ctx.cluster.as_ref().ok_or_else(|| Error::NoCluster {
            driver: self.name().into(),
        })?;
        let cfg = Config::parse(net)?;
        let underlay = &cluster.underlay;
        let max = underlay.mtu.saturating_sub(vxlan::OVERHEAD);
        if let Some(mtu) = cfg.mtu
            && mtu > max
        {
            return Err(Error::MtuTooLarge {
                mtu,
                ifname: underlay.ifname.clone(),
                underlay: underlay.mtu,
                max,
            });
        }
        let vni = cluster
            .numbers
            .claim(VNIS, "vxlan.id", VNI_POOL, cfg.vni, &net.id)
            .await?;
        // The number is now the network's, whichever name the user gave.
        net.options
            .remove("com.docker.network.driver.overlay.vxlanid_list");
        net.options.insert("vxlan.id".into(), vni.to_string());
        Ok(())
    }

    async fn release(&self, ctx: &Context, net: &Network) -> Result<()> {
        let (Some(cluster), Ok(Config { vni: Some(vni), .. })) = (&ctx.cluster, Config::parse(net)) else {
            return Ok(());
        };
        cluster.numbers.release(VNIS, vni, &net.id).await
    }

    /// Removes the namespaces of networks the engine no longer has.
    async fn sweep(&self, ctx: &Context, known: &[String]) -> Result<()> {
        let dir = ctx.run_dir.join("overlay");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&id) {
                OverlayNet::remove_namespace(&e.path()).await?;
            }
        }
        Ok(())
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(OverlayNet::new(net, Config::parse(net)?)))
    }
}
