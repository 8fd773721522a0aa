//! This host in its cluster: how it joins (its underlay, its id, the
//! store), and what it knows of the others.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_core::{ClusterContext, Numbers, Peer, Underlay, async_trait, link};

use crate::{Error, Result, util};

/// How the daemon joins a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The store and its options (`--cluster-store`,
    /// `--cluster-store-opt`).
    pub options: berth_cluster::Options,
    /// `--advertise-addr`: an address of this host, or an interface that
    /// has one.
    pub advertise: String,
}

/// Containers of other hosts on global networks: network id → endpoint id
/// → endpoint.
pub(crate) type Remote = BTreeMap<String, BTreeMap<String, berth_cluster::Endpoint>>;

/// This host in its cluster.
pub(crate) struct Member {
    pub store: Arc<berth_cluster::Cluster>,
    pub underlay: Underlay,
    remote: Mutex<Remote>,
    hosts: Mutex<BTreeMap<String, berth_cluster::Host>>,
}

impl Member {
    pub fn remote(&self) -> MutexGuard<'_, Remote> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosts of the cluster this host knows, by id.
    pub fn hosts(&self) -> MutexGuard<'_, BTreeMap<String, berth_cluster::Host>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The containers of other hosts on network `id`, as its driver wants
    /// them.
    pub fn peers(&self, id: &str) -> Vec<Peer> {
        self.remote()
            .get(id)
            .into_iter()
            .flat_map(|eps| eps.values())
            .filter_map(|e| {
                Some(Peer {
                    endpoint: e.id.clone(),
                    mac: e.mac.parse().ok()?,
                    addresses: e.addresses.clone(),
                    vtep: e.vtep,
                })
            })
            .collect()
    }
}

/// Numbers claimed in the cluster store, for the drivers.
struct StoreNumbers(Arc<berth_cluster::Cluster>);

/// The store's error as the driver contract's.
fn core_error(e: berth_cluster::Error) -> berth_core::Error {
    match e {
        berth_cluster::Error::Taken { what, owner } => berth_core::Error::Taken { what, owner },
        e => berth_core::Error::Cluster(Box::new(e)),
    }
}

#[async_trait]
impl Numbers for StoreNumbers {
    async fn claim(
        &self,
        pool: &str,
        what: &str,
        range: (u32, u32),
        wanted: Option<u32>,
        owner: &str,
    ) -> berth_core::Result<u32> {
        self.0
            .claim_number(pool, what, range, wanted, owner)
            .await
            .map_err(core_error)
    }

    async fn release(&self, pool: &str, n: u32, owner: &str) -> berth_core::Result<()> {
        self.0.release_number(pool, n, owner).await.map_err(core_error)
    }
}

/// The underlay: `advertise` is an address of this host, or an interface
/// that has one (its first IPv4 address, else its first IPv6 one).
async fn underlay(handle: &berth_core::rtnetlink::Handle, advertise: &str) -> Result<Underlay> {
    let bad = || Error::BadAdvertise {
        given: advertise.to_owned(),
    };
    let links = link::list(handle).await?;
    let addresses = link::addresses(handle).await?;
    let (index, address) = match advertise.parse::<IpAddr>() {
        Ok(ip) => addresses
            .iter()
            .find(|(_, a)| a.addr() == ip)
            .map(|(i, a)| (*i, a.addr()))
            .ok_or_else(bad)?,
        Err(_) => {
            let l = links.iter().find(|l| l.name == advertise).ok_or_else(bad)?;
            let mut of: Vec<IpAddr> = addresses
                .iter()
                .filter(|(i, _)| *i == l.index)
                .map(|(_, a)| a.addr())
                .filter(|a| !a.is_loopback())
                .collect();
            of.sort_by_key(IpAddr::is_ipv6);
            (l.index, *of.first().ok_or_else(bad)?)
        }
    };
    let l = links.iter().find(|l| l.index == index).ok_or_else(bad)?;
    Ok(Underlay {
        address,
        ifname: l.name.clone(),
        mtu: if l.mtu == 0 { 1500 } else { l.mtu },
    })
}

/// This host's id in the cluster: made once, kept in the data root, so
/// that a restarted daemon is the same host.
fn host_id(data_root: &std::path::Path) -> Result<String> {
    let path = data_root.join("cluster-host-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let id = util::new_id()[..16].to_owned();
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(id)
}

/// Joins the cluster: finds the underlay, opens the store (which never
/// waits for etcd: it may be down now). Fails only on what cannot work
/// (an `--advertise-addr` not of this host, an unreadable TLS file).
pub(crate) async fn join(
    cfg: &ClusterConfig,
    handle: &berth_core::rtnetlink::Handle,
    data_root: &std::path::Path,
) -> Result<(Arc<Member>, ClusterContext)> {
    let underlay = underlay(handle, &cfg.advertise).await?;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = berth_cluster::Host {
        id: host_id(data_root)?,
        name,
        address: underlay.address,
        since: util::unix_now().max(0) as u64,
    };
    let store = berth_cluster::Cluster::open(cfg.options.clone(), host).await?;
    tracing::info!(
        store = %store.store(),
        "joining the cluster as host {} with tunnel endpoint {} on {} (MTU {})",
        store.host().id,
        underlay.address,
        underlay.ifname,
        underlay.mtu
    );
    let ctx = ClusterContext {
        numbers: Arc::new(StoreNumbers(store.clone())),
        underlay: underlay.clone(),
    };
    let member = Arc::new(Member {
        store,
        underlay,
        remote: Mutex::new(BTreeMap::new()),
        hosts: Mutex::new(BTreeMap::new()),
    });
    Ok((member, ctx))
}
