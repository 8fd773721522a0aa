//! What berth keeps of dockerd's networks, endpoints and IPAM pools: one
//! record each in the store's `docker` table (keys `net/ID`, `ep/ID`,
//! `pool/ID`), loaded at start, so that a restart of berth or of dockerd
//! loses none of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::engine::Engine;
use crate::store::model::EndpointRecord;
use crate::store::{Op, Table};

/// A Docker network and the berth network it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetRecord {
    /// Docker's network id.
    pub docker_id: String,
    /// The berth network's id.
    pub network_id: String,
    /// berth made the network for it (and removes it with it); false for
    /// `-o berth.network=NAME`.
    pub owned: bool,
}

/// A Docker endpoint and the berth endpoint it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpRecord {
    /// Docker's network id.
    pub docker_network: String,
    /// The berth endpoint (its id is Docker's endpoint id; its `ifname`
    /// the name the interface has in the host before Docker moves it).
    pub endpoint: EndpointRecord,
    /// Joined: its interface is made.
    pub joined: bool,
}

/// An address pool given out by berth's IPAM plugin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolRecord {
    /// `PoolID`: the subnet as text.
    pub id: String,
    /// The subnet.
    pub subnet: IpNet,
    /// The gateway handed out, if one was.
    pub gateway: Option<IpAddr>,
    /// The addresses handed out (the gateway too).
    pub addresses: BTreeSet<IpAddr>,
}

/// One record of the `docker` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// `net/ID`.
    Network(NetRecord),
    /// `ep/ID`.
    Endpoint(Box<EpRecord>),
    /// `pool/ID`.
    Pool(PoolRecord),
}

/// Everything berth keeps for dockerd, in memory (the store has it too).
#[derive(Debug, Default)]
pub struct Book {
    /// By Docker's network id.
    pub networks: BTreeMap<String, NetRecord>,
    /// By Docker's endpoint id.
    pub endpoints: BTreeMap<String, EpRecord>,
    /// By pool id.
    pub pools: BTreeMap<String, PoolRecord>,
}

impl Book {
    /// The book as the store has it.
    pub(crate) fn load(records: Vec<Record>) -> Self {
        let mut b = Self::default();
        for r in records {
            match r {
                Record::Network(n) => {
                    b.networks.insert(n.docker_id.clone(), n);
                }
                Record::Endpoint(e) => {
                    b.endpoints.insert(e.endpoint.id.clone(), *e);
                }
                Record::Pool(p) => {
                    b.pools.insert(p.id.clone(), p);
                }
            }
        }
        b
    }
}

/// The store's key of a record.
fn key(r: &Record) -> String {
    match r {
        Record::Network(n) => format!("net/{}", n.docker_id),
        Record::Endpoint(e) => format!("ep/{}", e.endpoint.id),
        Record::Pool(p) => format!("pool/{}", p.id),
    }
}

impl Engine {
    /// The book, locked. No `.await` while it is held.
    pub(crate) fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.docker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `r` to the store and the book.
    pub(crate) async fn keep(&self, r: Record) -> Result<()> {
        self.store
            .write(vec![Op::put(Table::Docker, &key(&r), &r)?])
            .await?;
        let mut b = self.book();
        match r {
            Record::Network(n) => {
                b.networks.insert(n.docker_id.clone(), n);
            }
            Record::Endpoint(e) => {
                b.endpoints.insert(e.endpoint.id.clone(), *e);
            }
            Record::Pool(p) => {
                b.pools.insert(p.id.clone(), p);
            }
        }
        Ok(())
    }

    /// Removes `r` from the store and the book.
    pub(crate) async fn drop_record(&self, r: &Record) -> Result<()> {
        self.store.write(vec![Op::Delete(Table::Docker, key(r))]).await?;
        let mut b = self.book();
        match r {
            Record::Network(n) => {
                b.networks.remove(&n.docker_id);
            }
            Record::Endpoint(e) => {
                b.endpoints.remove(&e.endpoint.id);
            }
            Record::Pool(p) => {
                b.pools.remove(&p.id);
            }
        }
        Ok(())
    }
}
