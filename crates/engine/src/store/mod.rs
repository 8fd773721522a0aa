//! The local store: one redb file under the data root (mode 0600), written
//! only by the daemon. Records are JSON values keyed by id; every change is
//! one ACID transaction, on disk when [`Store::write`] returns. The one
//! exception, [`Store::write_volatile`], is for a fact the daemon also notes
//! on its tmpfs, where a restart after a crash finds it.
//!
//! The file is checked whole when it is opened (every page's checksum, and
//! every record decoded): a damaged store refuses the start with one line,
//! before any kernel work, and [`Store::recover`] (`--recover-store`) keeps
//! what can still be read.

pub mod model;
mod recover;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::model::{ContainerRecord, NetworkRecord};
pub use self::recover::{KernelBridge, Recovery, kernel_bridges};
use crate::{Error, Result};

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const DOCKER: TableDefinition<&str, &[u8]> = TableDefinition::new("docker");

/// Which table a record lives in.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    /// Network records, by network id.
    Networks,
    /// Container records (with their endpoints), by container id.
    Containers,
    /// What `--serve-docker` keeps of dockerd's networks, endpoints and
    /// pools ([`crate::serve_docker::book`]).
    Docker,
}

impl Table {
    /// Every table.
    const ALL: [Table; 3] = [Table::Networks, Table::Containers, Table::Docker];

    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Networks => NETWORKS,
            Table::Containers => CONTAINERS,
            Table::Docker => DOCKER,
        }
    }

    /// The table's name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Table::Networks => "networks",
            Table::Containers => "containers",
            Table::Docker => "docker",
        }
    }

    /// Whether `bytes` decode as a record of this table.
    fn decode(self, id: &str, bytes: &[u8]) -> Result<()> {
        let decoded = match self {
            Table::Networks => serde_json::from_slice::<NetworkRecord>(bytes).map(drop),
            Table::Containers => serde_json::from_slice::<ContainerRecord>(bytes).map(drop),
            Table::Docker => serde_json::from_slice::<crate::serve_docker::book::Record>(bytes).map(drop),
        };
        decoded.map_err(|source| Error::DecodeRecord {
            table: self.name(),
            id: id.to_owned(),
            source,
        })
    }
}

/// Whether redb's error says the file is damaged (rather than, say, not
/// readable by this process, which no recovery should touch).
fn is_damage(e: &redb::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        redb::Error::Corrupted(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. } => true,
        redb::Error::Io(io) => matches!(io.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof),
        _ => false,
    }
}

/// Runs `f`, turning a panic into [`redb::Error::Corrupted`]: redb trusts
/// a file it closed cleanly, and reading one damaged since may panic
/// (debug builds also assert on malformed pages). The panic's message goes
/// to the debug log instead of stderr.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, redb::Error> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|info| tracing::debug!("store: {info}")));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    r.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        Err(redb::Error::Corrupted(format!("{what}: {msg}")))
    })
}

/// Makes the store file 0600, creating it empty (which redb initializes)
/// when it is missing, so that it is never readable by others, not even
/// for a moment.
fn prepare_file(path: &Path) -> Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(format!("making {} private (0600)", path.display()), e))
        }
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}

/// Opens the file with every page's checksum verified, and both tables
/// made.
fn open_checked(path: &Path) -> Result<Database, redb::Error> {
    guarded("opening", || {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)?;
        let tx = db.begin_write()?;
        for t in Table::ALL {
            tx.open_table(t.def())?;
        }
        tx.commit()?;
        Ok(db)
    })
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
    /// A [`Store::write_volatile`] waits for the disk: a flush is due.
    flush_due: Arc<AtomicBool>,
}

/// How long a [`Store::write_volatile`] waits, at most, for a durable
/// commit to take it to the disk: what a machine that goes down can lose.
/// One second; tests of a crash in that window lengthen it with
/// `BERTH_STORE_FLUSH_MS`.
fn flush_within() -> std::time::Duration {
    static WITHIN: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *WITHIN.get_or_init(|| {
        let ms = std::env::var("BERTH_STORE_FLUSH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        std::time::Duration::from_millis(ms)
    })
}

impl Store {
    /// Opens (or creates) the database at `path`, checks every page and
    /// every record, and refuses a damaged one ([`Error::StoreDamaged`],
    /// [`Error::DecodeRecord`]), pointing at `--recover-store`.
    pub fn open(path: &Path) -> Result<Self> {
        prepare_file(path)?;
        let db = open_checked(path).map_err(|e| {
            if is_damage(&e) {
                Error::StoreDamaged {
                    path: path.to_owned(),
                    source: Box::new(e),
                }
            } else {
                Error::store(format!("opening {}", path.display()), e)
            }
        })?;
        let store = Self::of(db);
        for t in Table::ALL {
            for (id, bytes) in store.raw(t)? {
                t.decode(&id, &bytes)?;
            }
        }
        Ok(store)
    }

    fn of(db: Database) -> Self {
        Self {
            db: Arc::new(db),
            flush_due: Arc::default(),
        }
    }

    /// Every record of a table, undecoded.
    fn raw(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>> {
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
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
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
                    table: table.name(),
                    id: k.value().to_owned(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Applies `ops` in one durable transaction, off the async runtime.
    pub async fn write(&self, ops: Vec<Op>) -> Result<()> {
        self.flush_due.store(false, Ordering::Relaxed);
        self.commit(ops, Durability::Immediate).await
    }

    /// Applies `ops` in one transaction that every later read sees at
    /// once, without waiting for the disk: the next [`Store::write`], a
    /// [`Store::flush`] (one is made within a second) or a clean
    /// close takes it there, and a daemon killed before then loses it.
    /// Only for what the caller also keeps where a restart finds it (a
    /// container's started note, on the exec root's tmpfs): the fsync it
    /// saves is a twentieth of a `run -d`.
    pub async fn write_volatile(&self, ops: Vec<Op>) -> Result<()> {
        self.commit(ops, Durability::None).await?;
        if !self.flush_due.swap(true, Ordering::Relaxed) {
            let store = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(flush_within()).await;
                // A durable write since has taken it already.
                if store.flush_due.load(Ordering::Relaxed)
                    && let Err(e) = store.flush().await
                {
                    tracing::warn!("taking the store to the disk: {}", e.chain());
                }
            });
        }
        Ok(())
    }

    /// Makes every earlier [`Store::write_volatile`] durable.
    pub async fn flush(&self) -> Result<()> {
        self.write(Vec::new()).await
    }

    async fn commit(&self, ops: Vec<Op>, durability: Durability) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut tx = db
                .begin_write()
                .map_err(|e| Error::store("starting a transaction", e))?;
            tx.set_durability(durability)
                .map_err(|e| Error::store("choosing the durability", e))?;
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
