//! The connection to etcd: calls that fail fast and are retried on
//! another member, this host's lease and the records it keeps alive.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
};
use tokio::task::JoinHandle;

use crate::options::Options;
use crate::records::{Host, Keys};
use crate::{Error, Result};

/// How the store answered lately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not reached yet.
    Connecting,
    /// Answering; this host's lease is alive.
    Healthy,
    /// Not answering: why.
    Unreachable(String),
}

/// Each unary call is tried for at most this long on one member before
/// another attempt (tonic's balancer may pick a dead member).
const ATTEMPT: Duration = Duration::from_millis(600);

/// A call gives up after this long in all.
const DEADLINE: Duration = Duration::from_secs(2);

/// The connection to the cluster store, this host's lease, and the
/// records this host keeps alive under it.
pub struct Cluster {
    pub(crate) opts: Options,
    pub(crate) client: Client,
    pub(crate) host: Host,
    lease: AtomicI64,
    health: Mutex<(Health, Instant)>,
    /// This host's leased records (key → value), put again under every
    /// new lease: after etcd lost the old one, or after an outage longer
    /// than the lease.
    mine: Mutex<BTreeMap<String, Vec<u8>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            t.abort();
        }
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        path: path.to_owned(),
        source,
    })
}

impl Cluster {
    /// Makes the client (which connects lazily: etcd may be down now) and
    /// starts keeping this host's lease, in the background, for as long as
    /// the store lives. Fails only on options that cannot work (a TLS file
    /// that cannot be read).
    pub async fn open(opts: Options, host: Host) -> Result<Arc<Self>> {
        let mut co = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(DEADLINE)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(true);
        if let Some(t) = &opts.tls {
            co = co.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(read(&t.ca)?))
                    .identity(Identity::from_pem(read(&t.cert)?, read(&t.key)?)),
            );
        }
        let client = Client::connect(opts.urls(), Some(co))
            .await
            .map_err(|source| Error::Unreachable {
                store: opts.store(),
                what: "connecting".into(),
                source,
            })?;
        let store = Arc::new(Self {
            opts,
            client,
            host,
            lease: AtomicI64::new(0),
            health: Mutex::new((Health::Connecting, Instant::now())),
            mine: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let keeper = tokio::spawn(keep(Arc::downgrade(&store)));
        store.spawned(keeper);
        Ok(store)
    }

    pub(crate) fn spawned(&self, t: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(t);
    }

    pub(crate) fn keys(&self) -> Keys<'_> {
        Keys(&self.opts.prefix)
    }

    /// How the store answered lately, and since when.
    pub fn health(&self) -> (Health, Duration) {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        (h.0.clone(), h.1.elapsed())
    }

    fn set_health(&self, health: Health) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.0 != health {
            match &health {
                Health::Healthy => tracing::info!(store = %self.opts.store(), "cluster store reachable"),
                Health::Unreachable(why) => {
                    tracing::warn!(store = %self.opts.store(), "cluster store unreachable: {why}")
                }
                Health::Connecting => {}
            }
            *h = (health, Instant::now());
        }
    }

    /// This host's lease, or an error saying the store is not reached.
    pub(crate) fn lease(&self, what: &str) -> Result<i64> {
        match self.lease.load(Ordering::SeqCst) {
            0 => Err(self.unreachable(
                what,
                etcd_client::Error::LeaseKeepAliveError("no lease yet: etcd was not reached".into()),
            )),
            id => Ok(id),
        }
    }

    pub(crate) fn unreachable(&self, what: &str, source: etcd_client::Error) -> Error {
        Error::Unreachable {
            store: self.opts.store(),
            what: what.to_owned(),
            source,
        }
    }

    /// Runs a unary call with the deadline, in attempts on possibly other
    /// members; `what` names it in the error. Only for calls that are safe
    /// to repeat.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let last = left <= ATTEMPT;
            let err = match tokio::time::timeout(left.min(ATTEMPT), f(self.client.clone())).await {
                Ok(Ok(v)) => {
                    if self.lease.load(Ordering::SeqCst) != 0 {
                        self.set_health(Health::Healthy);
                    }
                    return Ok(v);
                }
                Ok(Err(e)) if !away(&e) => return Err(self.unreachable(what, e)),
                Ok(Err(e)) => e,
                Err(_) => etcd_client::Error::GRpcStatus(tonic::Status::deadline_exceeded(
                    "no answer within the attempt's time",
                )),
            };
            if last {
                self.set_health(Health::Unreachable(err.to_string()));
                return Err(self.unreachable(what, err));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records a leased key of this host's, to be put again under a new
    /// lease.
    pub(crate) fn keep_mine(&self, key: String, value: Vec<u8>) {
        self.mine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, value);
    }

    /// Forgets a leased key of this host's.
    pub(crate) fn forget_mine(&self, key: &str) {
        self.mine.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Grants a lease, then puts the host record and every record of this
    /// host's under it: the host record always, the others only where they
    /// are absent or still this host's (an address another host took while
    /// this one was away stays theirs). Returns the lease.
    async fn register(&self) -> Result<i64> {
        let ttl = self.opts.lease_ttl.as_secs() as i64;
        let lease = self
            .call("granting this host's lease", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?
            .id();
        // The host record is this host's alone: put under the new lease
        // whatever an earlier run of this daemon left there (its lease may
        // still run, and would take the record with it).
        let host_key = self.keys().host(&self.host.id);
        let host = serde_json::to_vec(&self.host).unwrap_or_default();
        let put = PutOptions::new().with_lease(lease);
        self.call("putting this host's record", |mut c| {
            let (key, host, put) = (host_key.clone(), host.clone(), put.clone());
            async move { c.put(key, host, Some(put)).await }
        })
        .await?;
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        records.extend(
            self.mine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        for (key, value) in records {
            let opts = PutOptions::new().with_lease(lease);
            let txn = Txn::new()
                .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), value.clone(), Some(opts.clone()))])
                .or_else([TxnOp::txn(
                    Txn::new()
                        .when([Compare::value(key.clone(), CompareOp::Equal, value.clone())])
                        .and_then([TxnOp::put(key.clone(), value.clone(), Some(opts))]),
                )]);
            self.call("putting this host's records", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        }
        self.lease.store(lease, Ordering::SeqCst);
        self.set_health(Health::Healthy);
        Ok(lease)
    }
}

/// Whether an error says etcd is away (down, unreachable, without a
/// leader), as opposed to refusing a request it understood.
fn away(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Keeps this host's lease alive for as long as the store lives: grants
/// one and registers (again) when there is none, keeps it alive every
/// third of its TTL, and starts over when etcd says it is gone.
async fn keep(store: std::sync::Weak<Cluster>) {
    loop {
        let Some(s) = store.upgrade() else { return };
        let ttl = s.opts.lease_ttl;
        let lease = match s.register().await {
            Ok(l) => l,
            Err(e) => {
                s.set_health(Health::Unreachable(format!("{e}")));
                drop(s);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut last_ok = Instant::now();
        drop(s);
        // Keep it alive until etcd says it is gone, or nothing was heard
        // for longer than its TTL (then it is gone too).
        'stream: loop {
            let Some(s) = store.upgrade() else { return };
            let mut client = s.client.clone();
            drop(s);
            let opened = tokio::time::timeout(ATTEMPT, client.lease_keep_alive(lease)).await;
            let (mut keeper, mut answers) = match opened {
                Ok(Ok(k)) => k,
                _ => {
                    if let Some(s) = store.upgrade() {
                        s.set_health(Health::Unreachable("the lease cannot be kept alive".into()));
                    }
                    if last_ok.elapsed() > ttl {
                        break 'stream;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'stream;
                }
            };
            loop {
                if keeper.keep_alive().await.is_err() {
                    continue 'stream;
                }
                match tokio::time::timeout(ATTEMPT, answers.message()).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {
                        last_ok = Instant::now();
                        if let Some(s) = store.upgrade() {
                            s.set_health(Health::Healthy);
                        }
                    }
                    // etcd says the lease is gone: register again.
                    Ok(Ok(Some(_))) => break 'stream,
                    _ => {
                        if let Some(s) = store.upgrade() {
                            s.set_health(Health::Unreachable("the lease's keep-alive got no answer".into()));
                        }
                        if last_ok.elapsed() > ttl {
                            break 'stream;
                        }
                        continue 'stream;
                    }
                }
                tokio::time::sleep(ttl / 3).await;
            }
        }
        if let Some(s) = store.upgrade() {
            s.lease.store(0, Ordering::SeqCst);
            tracing::warn!("this host's lease in the cluster store is gone; registering again");
        }
    }
}
