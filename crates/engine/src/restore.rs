//! Start-up: put the kernel back in line with the store.
//!
//! The store is the truth. Every network is made again where it is missing
//! (bridges, addresses, firewall elements, the table itself); every running
//! container's links are checked and re-made; containers whose process died
//! while the daemon was away are taken down; and whatever berth made but no
//! longer knows (a sandbox, veth or bridge left by a crash between the
//! kernel work and the commit) is removed. So an attach that was under way
//! when the daemon died is either committed, hence fully attached, or
//! unknown, hence removed.

use std::collections::HashSet;
use std::fs;

use berth_core::{Result, SandboxKind, link};

use crate::engine::Engine;
use crate::ipam::Pool;
use crate::model::{ContainerRecord, NetworkRecord, Status};
use crate::process;
use crate::store::Table;

impl Engine {
    pub(crate) async fn restore(&self) -> Result<()> {
        let nets: Vec<NetworkRecord> = self.store.load(Table::Networks)?;
        let containers: Vec<ContainerRecord> = self.store.load(Table::Containers)?;

        // Networks first, with the firewall staged so that the table and
        // all its elements go in as one transaction.
        self.ctx
            .networks
            .set(nets.iter().map(|n| n.net.clone()).collect());
        self.ctx.firewall.stage();
        for n in &nets {
            match self.driver(&n.net.driver) {
                Ok(d) => {
                    if let Err(e) = d.create_network(&self.ctx, &n.net).await {
                        tracing::error!(network = %n.net.name, "restoring network: {}", e.chain());
                    }
                }
                Err(e) => tracing::error!(network = %n.net.name, "{}", e.chain()),
            }
        }
        // Published ports of containers that may still run go in with the
        // table; those found dead below are taken out again.
        for c in containers
            .iter()
            .filter(|c| c.status != Status::Exited && !c.ports.is_empty())
        {
            if let Err(e) = self.ctx.firewall.add_ports(&c.id, &crate::ports::fw_ports(c)) {
                tracing::error!(container = %c.name, "restoring published ports: {}", e.chain());
            }
        }
        self.ctx.firewall.install()?;

        {
            let mut st = self.state();
            for n in nets {
                st.pools
                    .insert(n.net.id.clone(), n.net.ipam.iter().map(Pool::new).collect());
                st.networks.insert(n.net.id.clone(), n);
            }
            for c in &containers {
                for ep in &c.endpoints {
                    if let Some(pools) = st.pools.get_mut(&ep.network_id) {
                        for a in &ep.addresses {
                            if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                                p.mark(a.addr());
                            }
                        }
                    }
                }
                if c.status != Status::Exited {
                    st.ports.add(&c.name, &c.ports);
                }
                st.containers.insert(c.id.clone(), c.clone());
            }
        }
        self.ensure_builtin().await?;

        for c in containers {
            let alive = process::alive(c.pid, c.pid_start);
            let pinned = c.sandbox.as_ref().is_some_and(|p| p.exists());
            match c.status {
                Status::Running if !alive => {
                    if let Err(e) = self.container_exited(&c.id, -1).await {
                        tracing::warn!(container = %c.name, "taking down a dead container: {}", e.chain());
                    }
                }
                Status::Running | Status::Created
                    if !pinned && self.kind_of(&c) != Some(SandboxKind::Host) =>
                {
                    // The namespace is gone (a reboot): nothing runs there.
                    if let Err(e) = self.container_exited(&c.id, -1).await {
                        tracing::warn!(container = %c.name, "taking down a lost container: {}", e.chain());
                    }
                }
                Status::Running | Status::Created => {
                    self.repair(&c).await;
                    // The old daemon's resolver sockets died with it.
                    if c.dns.embedded {
                        match self.sandbox(&c) {
                            Ok(sb) => {
                                if let Err(e) = self.dns.listen(&c.id, &sb.ns) {
                                    tracing::warn!(container = %c.name, "resolver: {}", e.chain());
                                }
                            }
                            Err(e) => tracing::warn!(container = %c.name, "resolver: {}", e.chain()),
                        }
                    }
                    self.publish(&c);
                }
                Status::Exited => {}
            }
        }
        self.sweep().await
    }

    /// Puts the firewall back: the `inet berth` table with every network's
    /// and every published port's elements, as at start, without touching
    /// other tables (`berth system reconcile`, SIGHUP).
    pub async fn reconcile(&self) -> Result<()> {
        let fw = self.ctx.firewall.clone();
        tokio::task::spawn_blocking(move || fw.install())
            .await
            .map_err(|e| berth_core::Error::Internal(format!("reconciling the firewall: {e}")))?
    }

    /// Re-makes a live container's links that have gone missing.
    async fn repair(&self, c: &ContainerRecord) {
        for ep in &c.endpoints {
            let Some(host_if) = &ep.host_ifname else { continue };
            match link::get(&self.ctx.handle, host_if).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(container = %c.name, "checking {host_if}: {}", e.chain());
                    continue;
                }
            }
            let net = self.state().networks.get(&ep.network_id).cloned();
            let (Some(net), Ok(sb)) = (net, self.sandbox(c)) else {
                continue;
            };
            let mut ep = ep.clone();
            match self.attach(&net, &sb, &mut ep).await {
                Ok(()) => {
                    tracing::info!(container = %c.name, network = %net.net.name, "re-made missing {host_if}")
                }
                Err(e) => tracing::warn!(container = %c.name, "re-making {host_if}: {}", e.chain()),
            }
        }
    }

    /// Removes what berth made but no longer knows: sandbox pins, generated
    /// files, veths on berth bridges, berth bridges of unknown networks.
    async fn sweep(&self) -> Result<()> {
        let (known_ids, known_veths, known_nets) = {
            let st = self.state();
            let ids: HashSet<String> = st.containers.keys().cloned().collect();
            let veths: HashSet<String> = st
                .containers
                .values()
                .flat_map(|c| c.endpoints.iter().filter_map(|e| e.host_ifname.clone()))
                .collect();
            let nets: HashSet<String> = st.networks.keys().cloned().collect();
            (ids, veths, nets)
        };
        let netns_dir = self.cfg.netns_dir();
        if let Ok(rd) = fs::read_dir(&netns_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != "host" && !known_ids.contains(&name) {
                    tracing::info!("removing stray sandbox {name}");
                    berth_core::Netns::unpin(&e.path())?;
                }
            }
        }
        for dir in [
            self.cfg.exec_root.join("containers"),
            self.cfg.data_root.join("containers"),
        ] {
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if !known_ids.contains(&*e.file_name().to_string_lossy()) {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let links = link::list(&self.ctx.handle).await?;
        let ours = |alias: &Option<String>| {
            alias
                .as_deref()
                .and_then(|a| a.strip_prefix("berth:"))
                .map(str::to_owned)
        };
        let berth_bridges: HashSet<u32> = links
            .iter()
            .filter(|l| l.kind.as_deref() == Some("bridge") && ours(&l.alias).is_some())
            .map(|l| l.index)
            .collect();
        for l in &links {
            let stray_port = l.master.is_some_and(|m| berth_bridges.contains(&m))
                && l.name.starts_with("veth")
                && !known_veths.contains(&l.name);
            // Bridges, VLAN and dummy parents berth made for a network it
            // no longer knows (a crash between making them and recording
            // the network).
            let stray_own = matches!(l.kind.as_deref(), Some("bridge" | "vlan" | "dummy"))
                && ours(&l.alias).is_some_and(|id| !known_nets.contains(&id));
            if stray_port || stray_own {
                tracing::info!("removing stray link {}", l.name);
                link::del(&self.ctx.handle, l.index).await?;
            }
        }
        Ok(())
    }
}
