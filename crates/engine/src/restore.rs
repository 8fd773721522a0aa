//! Start-up: put the kernel back in line with the store.
//!
//! The store is the truth. Every network is made again where it is missing
//! (bridges, addresses, firewall elements, the table itself); every running
//! container's links are checked and re-made; containers whose process died
//! while the daemon was away are taken down; and whatever berth made but no
//! longer knows (a sandbox, or a link that a driver says it made, in the
//! host or in a sandbox, left by a crash between the kernel work and the
//! commit) is removed. So an attach that was under way when the daemon
//! died is either committed, hence fully attached, or unknown, hence
//! removed: by its driver, from the intent written before it (CNI `DEL`,
//! a plugin's `Leave`), and by the sweeps of what drivers claim.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::sync::Arc;

use berth_core::link::{self, Link};
use berth_core::{Claim, NetworkDriver, Place, SandboxKind};

use crate::Result;
use crate::containers::process;
use crate::engine::{Driven, Engine};
use crate::networks::ipam::Pool;
use crate::store::Table;
use crate::store::model::{ContainerRecord, NetworkRecord, Status};

impl Engine {
    pub(crate) async fn restore(&self) -> Result<()> {
        let nets: Vec<NetworkRecord> = self.store.load(Table::Networks)?;
        let containers: Vec<ContainerRecord> = self.store.load(Table::Containers)?;
        *self.book() = crate::serve_docker::Book::load(self.store.load(Table::Docker)?);

        // Networks first, each opened by its driver, with the firewall
        // staged so that the table and all its elements go in as one
        // transaction.
        let mut opened: Vec<(&NetworkRecord, Driven)> = Vec::new();
        for n in &nets {
            let driver = match self.driver(&n.net.driver) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(network = %n.net.name, "{}", e.chain());
                    continue;
                }
            };
            match driver.open(&n.net).await {
                Ok(handle) => opened.push((
                    n,
                    Driven {
                        handle,
                        caps: driver.capabilities(),
                    },
                )),
                Err(e) => tracing::error!(network = %n.net.name, "restoring network: {}", e.chain()),
            }
        }
        self.ctx
            .networks
            .set(opened.iter().map(|(_, d)| d.handle.clone()).collect());
        self.ctx.firewall.stage();
        for (n, d) in &opened {
            if let Err(e) = d.handle.create(&self.ctx).await {
                tracing::error!(network = %n.net.name, "restoring network: {}", e.chain());
            }
        }
        // Published ports of containers that may still run go in with the
        // table; those found dead below are taken out again.
        for c in containers
            .iter()
            .filter(|c| c.status != Status::Exited && !c.ports.is_empty())
        {
            if let Err(e) = self
                .ctx
                .firewall
                .add_ports(&c.id, &crate::firewall::ports::fw_ports(c))
            {
                tracing::error!(container = %c.name, "restoring published ports: {}", e.chain());
            }
        }
        self.ctx.firewall.install()?;
        self.settle_bridge_nf_call().await;
        // What drivers keep of networks gone while the daemon was away.
        let drivers: Vec<Arc<dyn NetworkDriver>> = self
            .drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for d in drivers {
            let known: Vec<String> = nets
                .iter()
                .filter(|n| n.net.driver == d.name())
                .map(|n| n.net.id.clone())
                .collect();
            if let Err(e) = d.sweep(&self.ctx, &known).await {
                tracing::warn!(driver = %d.name(), "removing what networks gone left: {}", e.chain());
            }
        }

        {
            let mut st = self.state();
            for (n, d) in opened {
                st.handles.insert(n.net.id.clone(), d);
            }
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
            // dockerd's endpoints (`--serve-docker`) hold their addresses.
            let book = self.book();
            for e in book.endpoints.values() {
                if let Some(pools) = st.pools.get_mut(&e.endpoint.network_id) {
                    for a in &e.endpoint.addresses {
                        if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                            p.mark(a.addr());
                        }
                    }
                }
            }
        }
        self.ensure_builtin().await?;
        // Attaches a crash cut short before their commit, undone through
        // their drivers while the sandboxes they were made in still exist.
        let rolled = self.finish_intents(&containers).await;
        if rolled > 0 {
            tracing::info!("rolled back or finished {rolled} attach(es) or disconnect(s) a crash cut short");
        }
        // As the store has them now (a finished disconnect changed some).
        let containers: Vec<ContainerRecord> = {
            let st = self.state();
            containers
                .iter()
                .filter_map(|c| st.containers.get(&c.id).cloned())
                .collect()
        };

        for c in containers {
            if c.is_external() {
                self.restore_external(&c).await;
                continue;
            }
            // A start the store lost to a crash, from its note.
            let c = if c.status == Status::Created {
                self.adopt(c).await
            } else {
                c
            };
            let alive = process::alive(c.pid, c.pid_start);
            let pinned = c.sandbox.as_ref().is_some_and(|p| p.exists());
            match c.status {
                Status::Running if !alive => {
                    if let Err(e) = self.container_exited(&c.id, -1).await {
                        tracing::warn!(container = %c.name, "taking down a dead container: {}", e.chain());
                    }
                }
                Status::Running if !pinned && self.kind_of(&c) != Some(SandboxKind::Host) => {
                    // The namespace is gone (a reboot): nothing runs there.
                    if let Err(e) = self.container_exited(&c.id, -1).await {
                        tracing::warn!(container = %c.name, "taking down a lost container: {}", e.chain());
                    }
                }
                Status::Created => {
                    // Created but never started: its client lost the daemon
                    // between the create and the start, and killed what it
                    // had started. Nothing will start it now.
                    if let Err(e) = self.abandon(&c.id).await {
                        tracing::warn!(container = %c.name, "taking down a container that never started: {}", e.chain());
                    }
                }
                Status::Running => {
                    self.repair(&c).await;
                    self.sweep_sandbox(&c).await;
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

    /// An attachment of another runtime's namespace: repaired and kept
    /// while the namespace is there (its stray interfaces are the
    /// runtime's business, not swept), forgotten once it is gone.
    async fn restore_external(&self, c: &ContainerRecord) {
        if !c.external.as_ref().is_some_and(|x| x.is_there()) {
            self.drop_lost_sandbox(c).await;
            return;
        }
        self.repair(c).await;
        if c.dns.embedded {
            match self.sandbox(c) {
                Ok(sb) => {
                    if let Err(e) = self.dns.listen(&c.id, &sb.ns) {
                        tracing::warn!(container = %c.name, "resolver: {}", e.chain());
                    }
                }
                Err(e) => tracing::warn!(container = %c.name, "resolver: {}", e.chain()),
            }
        }
        self.publish(c);
    }

    /// What every driver claims of `links`, one claim per link.
    fn claims(&self, place: Place, links: &[Link]) -> BTreeMap<u32, Claim> {
        let drivers: Vec<Arc<dyn NetworkDriver>> = self
            .drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out = BTreeMap::new();
        for d in drivers {
            for (index, claim) in d.claim(place, links) {
                out.entry(index).or_insert(claim);
            }
        }
        out
    }

    /// Removes the interfaces a driver made in a live container's sandbox
    /// that none of its endpoints names (an attach cut short by a crash).
    async fn sweep_sandbox(&self, c: &ContainerRecord) {
        if self.kind_of(c) != Some(SandboxKind::Own) {
            return;
        }
        let Ok(sb) = self.sandbox(c) else { return };
        let links = match link::list(&sb.handle).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(container = %c.name, "listing its interfaces: {}", e.chain());
                return;
            }
        };
        for (index, claim) in self.claims(Place::Sandbox, &links) {
            let Some(l) = links.iter().find(|l| l.index == index) else {
                continue;
            };
            let named = c
                .endpoints
                .iter()
                .any(|e| e.ifname.as_ref().is_some_and(|i| i.as_str() == l.name));
            if claim == Claim::Interface && !named {
                tracing::info!(container = %c.name, "removing stray interface {}", l.name);
                if let Err(e) = link::del(&sb.handle, index).await {
                    tracing::warn!(container = %c.name, "removing {}: {}", l.name, e.chain());
                }
            }
        }
    }

    /// Removes what berth made but no longer knows: sandbox pins, generated
    /// files, veths on berth bridges, berth bridges of unknown networks.
    async fn sweep(&self) -> Result<()> {
        let (known_ids, known_endpoints, known_nets) = {
            let st = self.state();
            let ids: HashSet<String> = st.containers.keys().cloned().collect();
            let mut endpoints: Vec<String> = st
                .containers
                .values()
                .flat_map(|c| c.endpoints.iter().map(|e| e.id.clone()))
                .collect();
            endpoints.extend(self.book().endpoints.keys().cloned());
            let nets: HashSet<String> = st.networks.keys().cloned().collect();
            (ids, endpoints, nets)
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
        // `--serve-docker`: staging namespaces an attach cut short left,
        // and interfaces handed to dockerd whose endpoint berth no longer
        // knows (`bd` and 12 hex digits of its id).
        if let Ok(rd) = fs::read_dir(self.cfg.exec_root.join("docker-staging")) {
            for e in rd.flatten() {
                tracing::info!("removing stray staging namespace {}", e.path().display());
                berth_core::Netns::unpin(&e.path())?;
            }
        }
        let handed: Vec<String> = self
            .book()
            .endpoints
            .keys()
            .map(|id| format!("bd{}", &id[..12.min(id.len())]))
            .collect();
        for l in link::list(&self.ctx.handle).await? {
            let staged = l.name.len() == 14
                && l.name.starts_with("bd")
                && l.name[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if staged && !handed.contains(&l.name) {
                tracing::info!("removing stray link {}", l.name);
                link::del(&self.ctx.handle, l.index).await?;
            }
        }
        // What the drivers say they made in the host: a link made for a
        // network or an endpoint berth no longer knows is a stray (a
        // crash between the kernel work and the commit).
        let links = link::list(&self.ctx.handle).await?;
        for (index, claim) in self.claims(Place::Host, &links) {
            let stray = match &claim {
                Claim::Network(id) => !known_nets.contains(id),
                Claim::Endpoint(prefix) => !known_endpoints.iter().any(|e| e.starts_with(prefix.as_str())),
                Claim::Interface => false,
            };
            if stray && let Some(l) = links.iter().find(|l| l.index == index) {
                tracing::info!("removing stray link {}", l.name);
                link::del(&self.ctx.handle, l.index).await?;
            }
        }
        Ok(())
    }
}
