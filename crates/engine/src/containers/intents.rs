//! Pending attaches and disconnects: what the engine is about to ask a
//! driver to wire or undo, written down before it asks and forgotten once
//! the outcome is in the store (or undone). A daemon killed between the driver's work and the
//! commit leaves the intent behind; the next start finishes it (the
//! store has the endpoint: nothing to do) or rolls it back through the
//! same driver — CNI `DEL`, a plugin's `Leave`, a macvlan interface
//! deleted in the sandbox — so no interface, lease or address outlives
//! a crash without a record. A disconnect cut short is finished: the
//! store loses the endpoint the kernel may already have lost.
//!
//! One small file per endpoint under `<exec-root>/pending/` (runtime
//! state, on a tmpfs: see `engine::runtime_tmpfs`): a crash of the daemon
//! leaves it there; a machine that goes down takes the sandboxes with it.
//! Older daemons kept them under `<data-root>/pending/`, which the start
//! still finishes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use berth_core::{Netns, Sandbox, SandboxKind};

use super::egress::Join;
use super::endpoints::driver_view;
use crate::engine::Engine;
use crate::store::model::{ContainerRecord, EndpointRecord};

/// What was under way.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
enum Doing {
    /// An attach (run, start, connect): rolled back unless committed.
    #[default]
    Attach,
    /// A disconnect: finished when the store still has the endpoint.
    Detach,
}

/// One pending attach or disconnect.
#[derive(Serialize, Deserialize)]
struct Intent {
    /// What was under way.
    #[serde(default)]
    doing: Doing,
    /// The container's id.
    container: String,
    /// Its sandbox's pin, when it has one of its own.
    sandbox: Option<PathBuf>,
    /// The endpoint as planned (its network, interface name, addresses).
    endpoint: EndpointRecord,
}

impl Engine {
    fn intents_dir(&self) -> PathBuf {
        self.cfg.intents_dir()
    }

    fn intent_path(dir: &Path, ep: &EndpointRecord) -> PathBuf {
        dir.join(format!("{}.json", ep.id))
    }

    /// Writes down the attaches about to be made for `container` in
    /// `sandbox`. A failure to write is logged: the attach goes on, as
    /// it did before intents were kept.
    pub(super) fn intend(&self, container: &str, sandbox: &Sandbox, joins: &[Join]) {
        self.write_intents(
            Doing::Attach,
            container,
            Some(sandbox),
            joins.iter().map(|(_, ep)| ep),
        );
    }

    /// Writes down the endpoints a disconnect is about to undo.
    pub(super) fn intend_detach<'a>(
        &self,
        container: &str,
        sandbox: Option<&Sandbox>,
        eps: impl Iterator<Item = &'a EndpointRecord>,
    ) {
        self.write_intents(Doing::Detach, container, sandbox, eps);
    }

    fn write_intents<'a>(
        &self,
        doing: Doing,
        container: &str,
        sandbox: Option<&Sandbox>,
        eps: impl Iterator<Item = &'a EndpointRecord>,
    ) {
        let dir = self.intents_dir();
        let own = sandbox
            .filter(|sb| sb.path != self.host_sandbox.path)
            .map(|sb| sb.path.clone());
        for ep in eps {
            let intent = Intent {
                doing,
                container: container.to_owned(),
                sandbox: own.clone(),
                endpoint: ep.clone(),
            };
            let written = serde_json::to_vec(&intent)
                .map_err(std::io::Error::other)
                .and_then(|b| {
                    fs::write(Self::intent_path(&dir, ep), &b).or_else(|e| {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            return Err(e);
                        }
                        fs::create_dir_all(&dir)?;
                        fs::write(Self::intent_path(&dir, ep), &b)
                    })
                });
            if let Err(e) = written {
                tracing::warn!(container, "writing down a pending attach: {e}");
            }
        }
    }

    /// Forgets the attaches of `joins`: they are in the store, or undone.
    pub(super) fn settled(&self, joins: &[Join]) {
        self.forget(joins.iter().map(|(_, ep)| ep));
    }

    /// Forgets the intents about these endpoints.
    pub(super) fn forget<'a>(&self, eps: impl Iterator<Item = &'a EndpointRecord>) {
        let dir = self.intents_dir();
        for ep in eps {
            let _ = fs::remove_file(Self::intent_path(&dir, ep));
        }
    }

    /// At start, before the sweep: every attach a crash cut short that the
    /// store does not have is undone through its network's driver, in
    /// the sandbox it was made in; every disconnect the store has not yet
    /// seen is finished. Returns how many were rolled back or finished.
    pub(crate) async fn finish_intents(&self, containers: &[ContainerRecord]) -> usize {
        let older = self.cfg.data_root.join("pending");
        let entries: Vec<fs::DirEntry> = [self.intents_dir(), older]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flat_map(|rd| rd.flatten())
            .collect();
        let committed: HashMap<&str, &ContainerRecord> = containers
            .iter()
            .flat_map(|c| c.endpoints.iter().map(move |e| (e.id.as_str(), c)))
            .collect();
        let mut rolled = 0;
        for entry in entries {
            let path = entry.path();
            let intent: Intent = match fs::read(&path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(i)) => i,
                Ok(Err(e)) => {
                    tracing::warn!("dropping unreadable pending attach {}: {e}", path.display());
                    let _ = fs::remove_file(&path);
                    continue;
                }
                Err(_) => continue,
            };
            let stored = committed.get(intent.endpoint.id.as_str());
            match (intent.doing, stored) {
                // Committed: the attach is done.
                (Doing::Attach, Some(_)) => {}
                (Doing::Attach, None) => {
                    self.roll_back(&intent, containers).await;
                    rolled += 1;
                }
                // The store still has it: the disconnect goes on to its end
                // (the driver's undo is idempotent).
                (Doing::Detach, Some(c)) => {
                    tracing::info!(container = %c.name, "finishing a disconnect a crash cut short");
                    if let Err(e) = self.disconnect(&intent.endpoint.network_id, &c.id, true).await {
                        tracing::warn!(container = %c.name, "finishing a disconnect: {}", e.chain());
                    }
                    rolled += 1;
                }
                (Doing::Detach, None) => {}
            }
            let _ = fs::remove_file(&path);
        }
        rolled
    }

    /// Undoes one attach the store never got.
    async fn roll_back(&self, intent: &Intent, containers: &[ContainerRecord]) {
        let ep = &intent.endpoint;
        let found = {
            let st = self.state();
            st.networks
                .get(&ep.network_id)
                .and_then(|n| Some((n.clone(), st.handles.get(&n.net.id)?.clone())))
        };
        // A network gone since: its driver's sweep took what it had.
        let Some((net, driven)) = found else { return };
        let sandbox: Option<Arc<Sandbox>> = match (&intent.sandbox, driven.caps.sandbox) {
            (_, SandboxKind::Host) => Some(self.host_sandbox.clone()),
            (Some(p), SandboxKind::Own) if p.exists() => Netns::open(p)
                .and_then(|ns| {
                    let handle = ns.connect()?;
                    Ok(Arc::new(Sandbox {
                        ns,
                        handle,
                        path: p.clone(),
                    }))
                })
                .map_err(|e| tracing::warn!(network = %net.net.name, "opening the sandbox of a pending attach: {e}"))
                .ok(),
            _ => None,
        };
        // An interface of the same name that the store gives the container
        // is not this attach's to take.
        let taken = containers
            .iter()
            .find(|c| c.id == intent.container)
            .is_some_and(|c| {
                c.endpoints
                    .iter()
                    .any(|e| e.ifname.is_some() && e.ifname == ep.ifname)
            });
        let sandbox = sandbox.filter(|_| !taken);
        tracing::info!(
            network = %net.net.name,
            container = %intent.container,
            "rolling back an attach a crash cut short"
        );
        if let Err(e) = driven
            .handle
            .detach(&self.ctx, &driver_view(ep, sandbox.as_deref(), &[]))
            .await
        {
            tracing::warn!(network = %net.net.name, "rolling back an attach: {}", e.chain());
        }
        if self.clustered(&net) {
            self.withdraw(&net, ep).await;
        }
    }
}
