//! Following the store: a snapshot of everything, then every change from
//! the revision after it, resumed where it broke off; a full snapshot
//! again when the watch cannot resume (the revision was compacted, or
//! the store was away).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::records::{Endpoint, Host, Kind, kind};

/// Everything under the prefix at one revision.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Global networks' records, by id, as the engine stored them.
    pub networks: BTreeMap<String, Vec<u8>>,
    /// Endpoints, by network id and endpoint id.
    pub endpoints: BTreeMap<(String, String), Endpoint>,
    /// Hosts, by id.
    pub hosts: BTreeMap<String, Host>,
}

/// One change of the store, as [`Cluster::watch`] reports them.
#[derive(Clone, Debug)]
pub enum Change {
    /// Everything, read at once: at the start, and whenever the watch
    /// had to start over. What the receiver knew and this does not hold
    /// is gone.
    Reset(Snapshot),
    /// A global network was created (`Some`) or removed (`None`).
    Network {
        /// Its id.
        id: String,
        /// Its record.
        record: Option<Vec<u8>>,
    },
    /// An endpoint was announced (`Some`) or withdrawn (`None`), also by
    /// its host's lease expiring.
    Endpoint {
        /// Its network's id.
        network: String,
        /// Its id.
        id: String,
        /// What it is.
        endpoint: Option<Endpoint>,
    },
    /// A host joined (`Some`) or its lease expired (`None`).
    Host {
        /// Its id.
        id: String,
        /// What it is.
        host: Option<Host>,
    },
}

impl Cluster {
    /// Starts following the store: the receiver gets a [`Change::Reset`]
    /// first (as soon as the store answers), then every change. The task
    /// ends when the receiver is dropped or the cluster is.
    pub fn watch(self: &Arc<Self>) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(follow(Arc::downgrade(self), tx));
        self.spawned(task);
        rx
    }

    /// Everything under the prefix, and the revision it was read at.
    async fn snapshot(&self) -> crate::Result<(Snapshot, i64)> {
        let prefix = self.opts.prefix.clone();
        let got = self
            .call("reading the cluster's state", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let rev = got.header().map_or(0, |h| h.revision());
        let mut snap = Snapshot::default();
        for kv in got.kvs() {
            if let Some(change) = self.decode(kv.key(), Some(kv.value())) {
                match change {
                    Change::Network { id, record: Some(r) } => {
                        snap.networks.insert(id, r);
                    }
                    Change::Endpoint {
                        network,
                        id,
                        endpoint: Some(e),
                    } => {
                        snap.endpoints.insert((network, id), e);
                    }
                    Change::Host { id, host: Some(h) } => {
                        snap.hosts.insert(id, h);
                    }
                    _ => {}
                }
            }
        }
        Ok((snap, rev))
    }

    /// What a key and its value (`None`: deleted) mean; `None` for keys
    /// the watchers need not see (names, subnets, numbers, addresses) and
    /// values that do not decode (logged).
    fn decode(&self, key: &[u8], value: Option<&[u8]>) -> Option<Change> {
        let key = String::from_utf8_lossy(key);
        let rest = key.strip_prefix(self.opts.prefix.as_str())?;
        // A value that does not decode is left out, loudly: one bad record
        // must not stop a host from following the others.
        fn read<T: serde::de::DeserializeOwned>(key: &str, v: Option<&[u8]>) -> Result<Option<T>, ()> {
            match v.map(serde_json::from_slice::<T>) {
                None => Ok(None),
                Some(Ok(t)) => Ok(Some(t)),
                Some(Err(e)) => {
                    tracing::warn!("cluster store: record {key} does not decode ({e}); ignored");
                    Err(())
                }
            }
        }
        Some(match kind(rest) {
            Kind::Network(id) => Change::Network {
                id: id.to_owned(),
                record: value.map(<[u8]>::to_vec),
            },
            Kind::Endpoint { network, id } => Change::Endpoint {
                network: network.to_owned(),
                id: id.to_owned(),
                endpoint: read(&key, value).ok()?,
            },
            Kind::Host(id) => Change::Host {
                id: id.to_owned(),
                host: read(&key, value).ok()?,
            },
            Kind::Other => return None,
        })
    }
}

/// The watcher: snapshot, watch from the revision after it, resume after
/// a broken stream from the last revision seen, start over with a
/// snapshot when that is impossible.
async fn follow(cluster: Weak<Cluster>, tx: mpsc::UnboundedSender<Change>) {
    'snapshot: loop {
        let Some(c) = cluster.upgrade() else { return };
        let (snap, rev) = match c.snapshot().await {
            Ok(s) => s,
            Err(_) => {
                drop(c);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'snapshot;
            }
        };
        if tx.send(Change::Reset(snap)).is_err() {
            return;
        }
        let mut next = rev + 1;
        let prefix = c.opts.prefix.clone();
        let mut client = c.client.clone();
        drop(c);
        loop {
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(next)
                .with_progress_notify();
            let mut stream =
                match tokio::time::timeout(Duration::from_secs(2), client.watch(prefix.clone(), Some(opts)))
                    .await
                {
                    Ok(Ok(s)) => s,
                    _ => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        // Away too long to trust a resume? The revision tells.
                        continue;
                    }
                };
            loop {
                let msg = match stream.message().await {
                    Ok(Some(m)) => m,
                    // The stream broke (a member died): resume from `next`.
                    _ => break,
                };
                if msg.canceled() {
                    if msg.compact_revision() > 0 {
                        tracing::info!(
                            "cluster store: revision {next} was compacted; reading everything again"
                        );
                        continue 'snapshot;
                    }
                    break;
                }
                let Some(c) = cluster.upgrade() else { return };
                for ev in msg.events() {
                    let Some(kv) = ev.kv() else { continue };
                    next = next.max(kv.mod_revision() + 1);
                    let value = match ev.event_type() {
                        EventType::Put => Some(kv.value()),
                        EventType::Delete => None,
                    };
                    if let Some(change) = c.decode(kv.key(), value)
                        && tx.send(change).is_err()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
