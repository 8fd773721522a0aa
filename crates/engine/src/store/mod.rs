//! The local store: one redb file under the data root, written only by the
//! daemon. Records are JSON values keyed by id; every change is one ACID
//! transaction that is on disk when `write` returns.

pub mod model;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// Which table a record lives in.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    /// Network records, by network id.
    Networks,
    /// Container records (with their endpoints), by container id.
    Containers,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Networks => NETWORKS,
            Table::Containers => CONTAINERS,
        }
    }
}

/// One change in a transaction.
#[derive(Debug)]
pub enum Op {
    /// Insert or replace a record.
    Put(Table, String, Vec<u8>),
    /// Remove a record; a missing one is fine.
    Delete(Table, String),
}

impl Op {
    /// A put of `value` serialized as JSON.
    pub fn put(table: Table, id: &str, value: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::EncodeRecord {
            id: id.to_owned(),
            source,
        })?;
        Ok(Op::Put(table, id.to_owned(), bytes))
    }
}

/// The redb database.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db =
            Database::create(path).map_err(|e| Error::store(format!("opening {}", path.display()), e))?;
        let tx = db
            .begin_write()
            .map_err(|e| Error::store("starting a transaction", e))?;
        for t in [NETWORKS, CONTAINERS] {
            tx.open_table(t).map_err(|e| Error::store("creating tables", e))?;
        }
        tx.commit().map_err(|e| Error::store("creating tables", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Every record of a table, decoded. A record that does not decode is
    /// an error naming it: the daemon must not start on a state it cannot
    /// read.
    pub fn load<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| Error::store("starting a read", e))?;
        let t = tx
            .open_table(table.def())
            .map_err(|e| Error::store("opening a table", e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| Error::store("reading", e))? {
            let (k, v) = row.map_err(|e| Error::store("reading", e))?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|source| Error::DecodeRecord {
                    id: k.value().to_owned(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Applies `ops` in one durable transaction, off the async runtime.
    pub async fn write(&self, ops: Vec<Op>) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db
                .begin_write()
                .map_err(|e| Error::store("starting a transaction", e))?;
            for op in &ops {
                match op {
                    Op::Put(t, k, v) => {
                        let mut table = tx
                            .open_table(t.def())
                            .map_err(|e| Error::store("opening a table", e))?;
                        table
                            .insert(k.as_str(), v.as_slice())
                            .map_err(|e| Error::store("writing", e))?;
                    }
                    Op::Delete(t, k) => {
                        let mut table = tx
                            .open_table(t.def())
                            .map_err(|e| Error::store("opening a table", e))?;
                        table
                            .remove(k.as_str())
                            .map_err(|e| Error::store("deleting", e))?;
                    }
                }
            }
            tx.commit().map_err(|e| Error::store("committing", e))
        })
        .await
        .map_err(|source| Error::Task {
            what: "store: writer task",
            source,
        })?
    }
}
