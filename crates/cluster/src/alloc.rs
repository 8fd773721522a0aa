//! Everything the hosts of a cluster must agree on, each claimed in one
//! compare-and-swap transaction: global networks with their names and
//! subnets, numbers from pools (VNIs), addresses, and endpoints.

use std::collections::BTreeSet;
use std::net::IpAddr;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use ipnet::IpNet;

use crate::cluster::Cluster;
use crate::records::{Endpoint, Host};
use crate::{Error, Result};

/// The value of the first key of a range answer, as text.
fn first_value(r: Option<&TxnOpResponse>) -> Option<String> {
    match r? {
        TxnOpResponse::Get(g) => g
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
        _ => None,
    }
}

impl Cluster {
    /// The host record of this host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `etcd://…` as given.
    pub fn store(&self) -> String {
        self.opts.store()
    }

    /// Every host of the cluster, with how many seconds its lease has left.
    pub async fn hosts(&self) -> Result<Vec<(Host, i64)>> {
        let prefix = self.keys().hosts();
        let got = self
            .call("listing the hosts", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in got.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let host: Host =
                serde_json::from_slice(kv.value()).map_err(|source| Error::Decode { key, source })?;
            let lease = kv.lease();
            let ttl = self
                .call("reading a host's lease", |mut c| async move {
                    c.lease_time_to_live(lease, None).await
                })
                .await
                .map(|r| r.ttl())
                .unwrap_or(-1);
            out.push((host, ttl));
        }
        Ok(out)
    }

    /// Subnets of every global network.
    pub async fn taken_subnets(&self) -> Result<Vec<IpNet>> {
        let prefix = self.keys().subnets();
        let got = self
            .call("listing the global networks' subnets", |mut c| {
                let prefix = prefix.clone();
                async move {
                    c.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only()))
                        .await
                }
            })
            .await?;
        let skip = prefix.len();
        Ok(got
            .kvs()
            .iter()
            .filter_map(|kv| String::from_utf8_lossy(&kv.key()[skip..]).parse().ok())
            .collect())
    }

    /// Creates a global network in one transaction: its record, its name
    /// and each of its subnets, none of which may exist yet. A name or
    /// subnet another network holds is [`Error::Taken`] (naming the
    /// holder), and nothing is written.
    pub async fn create_network(&self, id: &str, name: &str, record: &[u8], subnets: &[IpNet]) -> Result<()> {
        let k = self.keys();
        let mut when = vec![
            Compare::version(k.network(id), CompareOp::Equal, 0),
            Compare::version(k.name(name), CompareOp::Equal, 0),
        ];
        let mut then = vec![
            TxnOp::put(k.network(id), record.to_vec(), None),
            TxnOp::put(k.name(name), id, None),
        ];
        let mut els = vec![TxnOp::get(k.name(name), None)];
        for s in subnets {
            when.push(Compare::version(k.subnet(s), CompareOp::Equal, 0));
            then.push(TxnOp::put(k.subnet(s), id, None));
            els.push(TxnOp::get(k.subnet(s), None));
        }
        let txn = Txn::new().when(when).and_then(then).or_else(els);
        let r = self
            .call("creating a global network", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(());
        }
        let answers = r.op_responses();
        // A retried transaction that did go through the first time finds
        // its own network there.
        if first_value(answers.first()).as_deref() == Some(id) {
            return Ok(());
        }
        if let Some(owner) = first_value(answers.first()) {
            return Err(Error::Taken {
                what: format!("network name {name}"),
                owner: format!("global network {owner}"),
            });
        }
        for (s, a) in subnets.iter().zip(answers.iter().skip(1)) {
            if let Some(owner) = first_value(Some(a)) {
                return Err(Error::Taken {
                    what: format!("subnet {s}"),
                    owner: format!("global network {owner}"),
                });
            }
        }
        Err(Error::Taken {
            what: format!("network id {id}"),
            owner: "another network".into(),
        })
    }

    /// Removes a global network, its name and subnets, in one transaction
    /// that holds only while no container on any host is attached to it;
    /// otherwise [`Error::InUse`] names them and their hosts.
    pub async fn remove_network(&self, id: &str, name: &str, subnets: &[IpNet]) -> Result<()> {
        let k = self.keys();
        let mut then = vec![
            TxnOp::delete(k.network(id), None),
            TxnOp::delete(k.name(name), None),
        ];
        for s in subnets {
            then.push(TxnOp::delete(k.subnet(s), None));
        }
        let txn = Txn::new()
            .when([Compare::version(k.endpoints_of(id), CompareOp::Equal, 0).with_prefix()])
            .and_then(then)
            .or_else([TxnOp::get(
                k.endpoints_of(id),
                Some(GetOptions::new().with_prefix()),
            )]);
        let r = self
            .call("removing a global network", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(());
        }
        let mut attached = Vec::new();
        if let Some(TxnOpResponse::Get(g)) = r.op_responses().first() {
            let hosts: Vec<Host> = self
                .hosts()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            for kv in g.kvs() {
                if let Ok(ep) = serde_json::from_slice::<Endpoint>(kv.value()) {
                    let host = hosts
                        .iter()
                        .find(|h| h.id == ep.host)
                        .map_or_else(|| ep.vtep.to_string(), |h| format!("{} ({})", h.name, h.address));
                    attached.push(format!("{} on {host}", ep.name));
                }
            }
        }
        attached.sort();
        Err(Error::InUse {
            network: name.to_owned(),
            attached,
        })
    }

    /// Claims a number of `pool` in `first..=last` for `owner`: `wanted`
    /// or else the lowest free one, each try one create-if-absent
    /// transaction (another host may win a number first). `what` names the
    /// number in errors (`vxlan.id`).
    pub async fn claim_number(
        &self,
        pool: &str,
        what: &str,
        (first, last): (u32, u32),
        wanted: Option<u32>,
        owner: &str,
    ) -> Result<u32> {
        let k = self.keys();
        if let Some(n) = wanted {
            return match self
                .create_if_absent(&k.number(pool, n), owner.as_bytes(), None)
                .await?
            {
                None => Ok(n),
                Some(other) => Err(Error::Taken {
                    what: format!("{what} {n}"),
                    owner: format!("global network {other}"),
                }),
            };
        }
        for _ in 0..64 {
            let prefix = k.numbers(pool);
            let got = self
                .call("listing the numbers in use", |mut c| {
                    let prefix = prefix.clone();
                    async move {
                        c.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only()))
                            .await
                    }
                })
                .await?;
            let used: BTreeSet<u32> = got
                .kvs()
                .iter()
                .filter_map(|kv| String::from_utf8_lossy(&kv.key()[prefix.len()..]).parse().ok())
                .collect();
            let n = (first..=last)
                .find(|n| !used.contains(n))
                .ok_or_else(|| Error::Exhausted {
                    what: what.to_owned(),
                })?;
            if self
                .create_if_absent(&k.number(pool, n), owner.as_bytes(), None)
                .await?
                .is_none()
            {
                return Ok(n);
            }
        }
        Err(Error::Exhausted {
            what: what.to_owned(),
        })
    }

    /// Gives a number back, if `owner` holds it.
    pub async fn release_number(&self, pool: &str, n: u32, owner: &str) -> Result<()> {
        self.delete_if(&self.keys().number(pool, n), owner.as_bytes())
            .await
    }

    /// Claims `ip` of network `net` for `endpoint` (an endpoint's id, or
    /// another holder's name), under this host's lease (it is free again
    /// when the host is gone); when `endpoint` holds it already (an
    /// earlier run of this daemon), it is put again under this lease.
    /// `false` when another holds it.
    pub async fn claim_address(&self, net: &str, ip: IpAddr, endpoint: &str) -> Result<bool> {
        let lease = self.lease("claiming an address")?;
        let key = self.keys().address(net, ip);
        let value = endpoint.as_bytes().to_vec();
        let put = PutOptions::new().with_lease(lease);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value.clone(), Some(put.clone()))])
            .or_else([TxnOp::txn(
                Txn::new()
                    .when([Compare::value(key.clone(), CompareOp::Equal, value.clone())])
                    .and_then([TxnOp::put(key.clone(), value.clone(), Some(put))]),
            )]);
        let r = self
            .call("claiming an address", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let mine =
            r.succeeded() || matches!(r.op_responses().first(), Some(TxnOpResponse::Txn(t)) if t.succeeded());
        if mine {
            self.keep_mine(key, value);
        }
        Ok(mine)
    }

    /// Gives an address back, if `endpoint` holds it.
    pub async fn release_address(&self, net: &str, ip: IpAddr, endpoint: &str) -> Result<()> {
        let key = self.keys().address(net, ip);
        self.forget_mine(&key);
        self.delete_if(&key, endpoint.as_bytes()).await
    }

    /// Every address of network `net` that an endpoint holds.
    pub async fn taken_addresses(&self, net: &str) -> Result<Vec<IpAddr>> {
        let prefix = self.keys().addresses(net);
        let got = self
            .call("listing a network's addresses", |mut c| {
                let prefix = prefix.clone();
                async move {
                    c.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only()))
                        .await
                }
            })
            .await?;
        Ok(got
            .kvs()
            .iter()
            .filter_map(|kv| String::from_utf8_lossy(&kv.key()[prefix.len()..]).parse().ok())
            .collect())
    }

    /// Announces an endpoint of this host's, under its lease; refused
    /// when its network is gone from the cluster.
    pub async fn put_endpoint(&self, ep: &Endpoint) -> Result<()> {
        let lease = self.lease("announcing a container")?;
        let k = self.keys();
        let key = k.endpoint(&ep.network, &ep.id);
        let value = serde_json::to_vec(ep).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::version(k.network(&ep.network), CompareOp::Greater, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let r = self
            .call("announcing a container", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if !r.succeeded() {
            return Err(Error::NoNetwork(ep.network.clone()));
        }
        self.keep_mine(key, value);
        Ok(())
    }

    /// Announces an endpoint of this host's and claims its addresses, in
    /// one transaction under this host's lease: `Ok(None)` when done,
    /// `Ok(Some(ip))` when another endpoint holds `ip` (nothing is
    /// written), refused when its network is gone from the cluster.
    pub async fn join_endpoint(&self, ep: &Endpoint) -> Result<Option<IpAddr>> {
        let lease = self.lease("announcing a container")?;
        let k = self.keys();
        let put = PutOptions::new().with_lease(lease);
        let id = ep.id.as_bytes().to_vec();
        let key = k.endpoint(&ep.network, &ep.id);
        let value = serde_json::to_vec(ep).unwrap_or_default();
        let addresses: Vec<(IpAddr, String)> = ep
            .addresses
            .iter()
            .map(|a| (a.addr(), k.address(&ep.network, a.addr())))
            .collect();
        let mut when = vec![Compare::version(k.network(&ep.network), CompareOp::Greater, 0)];
        let mut then = vec![TxnOp::put(key.clone(), value.clone(), Some(put.clone()))];
        let mut els = vec![TxnOp::get(
            k.network(&ep.network),
            Some(GetOptions::new().with_keys_only()),
        )];
        for (_, a) in &addresses {
            // Absent, or already this endpoint's (a retried transaction).
            when.push(Compare::version(a.clone(), CompareOp::Equal, 0));
            then.push(TxnOp::put(a.clone(), id.clone(), Some(put.clone())));
            els.push(TxnOp::get(a.clone(), None));
        }
        let txn = Txn::new().when(when).and_then(then).or_else(els);
        let r = self
            .call("announcing a container", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let answers = r.op_responses();
        if !r.succeeded() {
            let network_there = matches!(answers.first(), Some(TxnOpResponse::Get(g)) if !g.kvs().is_empty());
            if !network_there {
                return Err(Error::NoNetwork(ep.network.clone()));
            }
            let held: Vec<(IpAddr, Option<String>)> = addresses
                .iter()
                .zip(answers.iter().skip(1))
                .map(|((ip, _), a)| (*ip, first_value(Some(a))))
                .collect();
            if let Some((ip, _)) = held.iter().find(|(_, v)| v.as_ref().is_some_and(|v| v != &ep.id)) {
                return Ok(Some(*ip));
            }
            // Every address is this endpoint's already: a transaction
            // retried after it went through (which put the endpoint too),
            // or a part left by a crash; the endpoint is put again.
            self.put_endpoint(ep).await?;
        }
        self.keep_mine(key, value);
        for (_, a) in addresses {
            self.keep_mine(a, id.clone());
        }
        Ok(None)
    }

    /// Stops keeping an endpoint's records alive: a new lease will not
    /// carry them (see [`Cluster::leave_endpoint`], which also deletes
    /// them).
    pub fn forget_endpoint(&self, ep: &Endpoint) {
        let k = self.keys();
        self.forget_mine(&k.endpoint(&ep.network, &ep.id));
        for a in &ep.addresses {
            self.forget_mine(&k.address(&ep.network, a.addr()));
        }
    }

    /// Withdraws an endpoint and gives back the addresses it holds, in one
    /// transaction. Idempotent.
    pub async fn leave_endpoint(&self, ep: &Endpoint) -> Result<()> {
        self.forget_endpoint(ep);
        let k = self.keys();
        let key = k.endpoint(&ep.network, &ep.id);
        let mut then = vec![TxnOp::delete(key, None)];
        for a in &ep.addresses {
            let a = k.address(&ep.network, a.addr());
            then.push(TxnOp::txn(
                Txn::new()
                    .when([Compare::value(
                        a.clone(),
                        CompareOp::Equal,
                        ep.id.as_bytes().to_vec(),
                    )])
                    .and_then([TxnOp::delete(a, None)]),
            ));
        }
        let txn = Txn::new().and_then(then);
        self.call("withdrawing a container", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
        .map(drop)
    }

    /// Withdraws an endpoint. Idempotent.
    pub async fn delete_endpoint(&self, net: &str, id: &str) -> Result<()> {
        let key = self.keys().endpoint(net, id);
        self.forget_mine(&key);
        self.call("withdrawing a container", |mut c| {
            let key = key.clone();
            async move { c.delete(key, None).await }
        })
        .await
        .map(drop)
    }

    /// Withdraws every endpoint (and its addresses) this host announced
    /// that `keep` does not name: what a crash left behind.
    pub async fn forget_others(&self, keep: &BTreeSet<String>) -> Result<()> {
        let prefix = self.keys().endpoints();
        let got = self
            .call("listing the containers announced", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        for kv in got.kvs() {
            let Ok(ep) = serde_json::from_slice::<Endpoint>(kv.value()) else {
                continue;
            };
            if ep.host == self.host.id && !keep.contains(&ep.id) {
                tracing::info!(network = %ep.network, "withdrawing container {} (left by a crash)", ep.name);
                self.leave_endpoint(&ep).await?;
            }
        }
        Ok(())
    }

    /// Puts `value` at `key` (under `lease`) unless the key exists; `None`
    /// when it was put (or already held `value`: a retried put that went
    /// through the first time), else the value found.
    async fn create_if_absent(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<Option<String>> {
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), opts)])
            .or_else([TxnOp::get(key, None)]);
        let r = self
            .call("claiming a key", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(None);
        }
        let found = first_value(r.op_responses().first()).unwrap_or_default();
        if found.as_bytes() == value {
            return Ok(None);
        }
        Ok(Some(found))
    }

    /// Deletes `key` if it holds `value`. Idempotent.
    async fn delete_if(&self, key: &str, value: &[u8]) -> Result<()> {
        let txn = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, value.to_vec())])
            .and_then([TxnOp::delete(key, Some(DeleteOptions::new()))]);
        self.call("giving a key back", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
        .map(drop)
    }
}
