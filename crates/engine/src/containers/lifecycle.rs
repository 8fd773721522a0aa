//! A container's life after its creation: the process started or ended,
//! its network taken down, the container removed, the dead ones reaped.

use berth_core::SandboxKind;

use super::process;
use crate::engine::Engine;
use crate::store::model::{ContainerRecord, LastEndpoint, StartedNote, Status};
use crate::store::{Op, Table};
use crate::{Error, Result, util};

impl Engine {
    /// Records that the client started the container's process.
    pub async fn container_started(&self, key: &str, pid: u32) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = self.find_container(&id)?;
        super::control::refuse_external(&c)?;
        if c.status != Status::Created {
            return Err(Error::AlreadyStarted { container: c.name });
        }
        if c.sandbox.is_none() {
            return Err(Error::LostBeforeStart { container: c.name });
        }
        let start = process::start_time(pid).ok_or(Error::NoProcess { pid })?;
        c.status = Status::Running;
        c.pid = pid;
        c.pid_start = start;
        c.started_at = util::now();
        let put = vec![Op::put(Table::Containers, &c.id, &c)?];
        // Noted on the tmpfs, the commit need not wait for the disk: a
        // restart after a crash that lost it finds the note (`adopt`).
        if self.note_started(&c) {
            self.store.write_volatile(put).await?;
        } else {
            self.store.write(put).await?;
        }
        self.state().containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// Notes on the exec root that `c`'s process started; whether it did.
    fn note_started(&self, c: &ContainerRecord) -> bool {
        let note = StartedNote {
            pid: c.pid,
            pid_start: c.pid_start,
            started_at: c.started_at.clone(),
        };
        let path = self.cfg.paths(&c.id).started;
        let written = serde_json::to_vec(&note)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&path, b));
        if let Err(e) = &written {
            tracing::warn!(container = %c.name, "noting the start in {}: {e}; committing it to disk instead", path.display());
        }
        written.is_ok()
    }

    /// At restart, for a container the store has as created: the started
    /// note of a process that a crash kept out of the store, taken in
    /// durably (the caller goes on with the container as running, alive
    /// or not). `c` as it was when there is no note.
    pub(crate) async fn adopt(&self, mut c: ContainerRecord) -> ContainerRecord {
        let path = self.cfg.paths(&c.id).started;
        let Some(note) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StartedNote>(&b).ok())
        else {
            return c;
        };
        tracing::info!(container = %c.name, pid = note.pid, "taking in a start the store lost to a crash");
        c.status = Status::Running;
        c.pid = note.pid;
        c.pid_start = note.pid_start;
        c.started_at = note.started_at;
        match self.save_container(&c).await {
            Ok(()) => {
                self.state().containers.insert(c.id.clone(), c.clone());
                c
            }
            Err(e) => {
                tracing::warn!(container = %c.name, "taking in a lost start: {}", e.chain());
                c
            }
        }
    }

    /// Records that the container's process ended: takes its network down
    /// (addresses go back to their pools) and, with `--rm`, removes it.
    pub async fn container_exited(&self, key: &str, code: i32) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = self.find_container(&id)?;
        super::control::refuse_external(&c)?;
        if c.status == Status::Exited {
            if c.exit_code == -1 && code != -1 {
                c.exit_code = code;
                self.save_container(&c).await?;
                self.state().containers.insert(c.id.clone(), c);
            }
            return Ok(());
        }
        if c.auto_remove {
            drop(_g);
            return self.remove_container(&id, true).await.map(drop);
        }
        self.teardown(&mut c).await;
        c.status = Status::Exited;
        c.exit_code = code;
        c.pid = 0;
        c.finished_at = util::now();
        self.save_container(&c).await?;
        let _ = std::fs::remove_file(self.cfg.paths(&c.id).started);
        self.state().containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// Takes down the network of a container that was created but never
    /// started when the daemon stopped (its addresses go back, its sandbox
    /// goes), and keeps it as created; one made with `--rm` is removed.
    pub(crate) async fn abandon(&self, key: &str) -> Result<()> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = self.find_container(&id)?;
        // Not created, or taken down by an earlier start already.
        let down = c.endpoints.is_empty() && c.sandbox.is_none() && !c.auto_remove;
        if c.status != Status::Created || down {
            return Ok(());
        }
        tracing::info!(container = %c.name, "created but never started when the daemon stopped: taking its network down");
        if c.auto_remove {
            drop(_g);
            return self.remove_container(&id, true).await.map(drop);
        }
        self.teardown(&mut c).await;
        self.save_container(&c).await?;
        self.state().containers.insert(c.id.clone(), c);
        Ok(())
    }

    /// Takes a container's network down: detaches every endpoint (keeping
    /// on after errors, which are logged), gives the addresses back, and
    /// unpins the sandbox.
    pub(crate) async fn teardown(&self, c: &mut ContainerRecord) {
        self.dns.remove(&c.id);
        if let Err(e) = self.ctx.firewall.remove_ports(&c.id) {
            tracing::warn!(container = %c.name, "unpublishing ports: {}", e.chain());
        }
        self.state().ports.remove(&c.name, &c.ports);
        c.ports.clear();
        c.ports_network.clear();
        let kind = self.kind_of(c).unwrap_or(SandboxKind::Own);
        let sb = self.sandbox(c).ok();
        // Every endpoint at once: none waits for another.
        let nets: Vec<(
            crate::store::model::NetworkRecord,
            &crate::store::model::EndpointRecord,
        )> = {
            let st = self.state();
            c.endpoints
                .iter()
                .filter_map(|ep| Some((st.networks.get(&ep.network_id)?.clone(), ep)))
                .collect()
        };
        let record: &ContainerRecord = c;
        futures_util::future::join_all(nets.iter().map(|(net, ep)| {
            let sb = sb.as_deref();
            async move {
                if self.clustered(net) {
                    // Forced: logs what fails and goes on.
                    let _ = self.detach_and_leave(net, sb, record, ep, true).await;
                } else if let Err(e) = self.detach(net, sb, ep).await {
                    tracing::warn!(container = %record.name, network = %net.net.name, "detach: {}", e.chain());
                }
            }
        }))
        .await;
        {
            let mut st = self.state();
            c.last_networks = c
                .endpoints
                .iter()
                .filter_map(|e| st.networks.get(&e.network_id).map(|n| n.net.name.clone()))
                .collect();
            c.last_endpoints = c
                .endpoints
                .iter()
                .filter_map(|e| {
                    Some(LastEndpoint {
                        network: st.networks.get(&e.network_id)?.net.name.clone(),
                        static_ip: e.static_ip.clone(),
                        aliases: e.aliases.clone(),
                        mac: e.mac_asked.then_some(e.mac),
                    })
                })
                .collect();
            for ep in &c.endpoints {
                self.release_detached(&mut st, ep);
            }
        }
        c.endpoints.clear();
        if let Err(e) = self.drop_sandbox_of(&c.id, kind) {
            tracing::warn!(container = %c.name, "unpinning sandbox: {}", e.chain());
        }
        c.sandbox = None;
    }

    /// Removes a container. A running one needs `force`, which kills it.
    pub async fn remove_container(&self, key: &str, force: bool) -> Result<String> {
        let id = self.find_container(key)?.id;
        let lock = self.container_lock(&id);
        let _g = lock.lock().await;
        let mut c = match self.find_container(&id) {
            Ok(c) => c,
            Err(Error::ContainerNotFound { .. }) => return Ok(key.to_owned()), // removed while we waited
            Err(e) => return Err(e),
        };
        if Self::running(&c) {
            if !force {
                return Err(Error::ContainerRunning { container: c.name });
            }
            process::kill(c.pid, c.pid_start);
        }
        self.teardown(&mut c).await;
        self.store
            .write(vec![Op::Delete(Table::Containers, c.id.clone())])
            .await?;
        self.remove_files(&c.id);
        self.state().containers.remove(&c.id);
        self.forget_lock(&c.id);
        Ok(c.name)
    }

    /// Marks containers whose process died without anyone saying so as
    /// exited (their shim was killed, or the machine rebooted).
    pub async fn reap(&self) {
        let dead: Vec<String> = self
            .state()
            .containers
            .values()
            .filter(|c| {
                c.status == Status::Running && !c.is_external() && !process::alive(c.pid, c.pid_start)
            })
            .map(|c| c.id.clone())
            .collect();
        for id in dead {
            match self.container_exited(&id, -1).await {
                // Removed meanwhile (a --rm container whose shim reported
                // first): nothing to reap.
                Ok(_) | Err(Error::ContainerNotFound { .. }) => {}
                Err(e) => tracing::warn!(container = %id, "reaping: {}", e.chain()),
            }
        }
    }
}
