//! Network operations: create, remove, prune, list, inspect.

pub mod ipam;

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::StatusCode;
use berth_api::{Filters, Network as NetworkView, NetworkCheck};
use berth_core::{IpamConfig, Kind, Network, NetworkHandle, Scope, link};
use ipnet::IpNet;

use self::ipam::{Pool, overlaps};
use crate::api::{NetworkFilter, views};
use crate::containers::egress::GATEWAY_NETWORK;
use crate::engine::{Driven, Engine, State};
use crate::error::AddressRole;
use crate::store::model::NetworkRecord;
use crate::store::{Op, Table};
use crate::{Error, Object, Result, util};

// The request types are the API's (`berth_api`), under the names this
// module has always used for them.
#[cfg(test)]
use berth_api::IpamConfig as IpamConfigRequest;
pub(crate) use berth_api::{Ipam as IpamRequest, NetworkCreateRequest as NetworkCreate};

/// Parses a CIDR that must be a network prefix.
pub fn parse_subnet(what: &str, s: &str) -> Result<IpNet> {
    let net: IpNet = s.trim().parse().map_err(|_| Error::BadPrefix {
        what: what.to_owned(),
        value: s.to_owned(),
    })?;
    if net.trunc() != net {
        return Err(Error::HostBitsSet {
            what: what.to_owned(),
            value: s.to_owned(),
            prefix: net,
        });
    }
    Ok(net)
}

/// Parses an IP address.
pub fn parse_ip(what: &str, s: &str) -> Result<IpAddr> {
    s.trim().parse().map_err(|_| Error::BadAddress {
        what: what.to_owned(),
        value: s.to_owned(),
    })
}

/// Turns the strings of a create request into checked subnets. A gateway,
/// range or aux address belongs to the subnet that contains it.
fn plan_ipam(req: &IpamRequest) -> Result<Vec<IpamConfig>> {
    if !req.driver.is_empty() && req.driver != "default" {
        return Err(Error::UnknownIpamDriver {
            driver: req.driver.clone(),
        });
    }
    let mut out: Vec<IpamConfig> = Vec::new();
    for c in &req.config {
        if c.subnet.is_empty() {
            continue; // a gateway or range given without its subnet: matched below
        }
        let subnet = parse_subnet("subnet", &c.subnet)?;
        if let Some(o) = out.iter().find(|o| overlaps(&o.subnet, &subnet)) {
            return Err(Error::SubnetsOverlap {
                subnet,
                other: o.subnet,
            });
        }
        out.push(IpamConfig {
            subnet,
            gateway: None,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
        });
    }
    let subnets: Vec<IpNet> = out.iter().map(|c| c.subnet).collect();
    let owner = |out: &mut Vec<IpamConfig>, ip: IpAddr, what: &str| -> Result<usize> {
        out.iter()
            .position(|c| c.subnet.contains(&ip))
            .ok_or_else(|| Error::OutsideSubnets {
                what: what.to_owned(),
                ip,
                subnets: subnets.clone(),
            })
    };
    for c in &req.config {
        if !c.gateway.is_empty() {
            let gw = parse_ip("gateway", &c.gateway)?;
            let i = owner(&mut out, gw, "gateway")?;
            let sub = out[i].subnet;
            if gw == sub.network() && sub.prefix_len() < sub.max_prefix_len() - 1 {
                return Err(Error::SpecialAddress {
                    what: "gateway",
                    ip: gw,
                    role: AddressRole::Network,
                    subnet: sub,
                });
            }
            if gw.is_ipv4() && gw == sub.broadcast() && sub.prefix_len() < 31 {
                return Err(Error::SpecialAddress {
                    what: "gateway",
                    ip: gw,
                    role: AddressRole::Broadcast,
                    subnet: sub,
                });
            }
            if let Some(old) = out[i].gateway.replace(gw) {
                return Err(Error::TwoGateways {
                    subnet: sub,
                    first: old,
                    second: gw,
                });
            }
        }
        if !c.ip_range.is_empty() {
            let range = parse_subnet("ip-range", &c.ip_range)?;
            let i = owner(&mut out, range.network(), "ip-range").map_err(|_| Error::RangeOutsideSubnets {
                range,
                subnets: subnets.clone(),
            })?;
            if !out[i].subnet.contains(&range) {
                return Err(Error::RangeOutsideSubnet {
                    range,
                    subnet: out[i].subnet,
                });
            }
            if out[i].ip_range.replace(range).is_some() {
                return Err(Error::TwoRanges {
                    subnet: out[i].subnet,
                });
            }
        }
        for (name, ip) in &c.auxiliary_addresses {
            let ip = parse_ip(&format!("aux-address {name}"), ip)?;
            let i = owner(&mut out, ip, &format!("aux-address {name}="))?;
            out[i].aux_addresses.insert(name.clone(), ip);
        }
    }
    // IPv4 subnets first, then IPv6, each in the order given, as Docker
    // keeps and shows them (its clients send them in no set order).
    out.sort_by_key(|c| c.subnet.addr().is_ipv6());
    Ok(out)
}

impl Engine {
    /// Creates a network: checks everything, settles the address plan,
    /// has the driver make it, then records it. Nothing is left behind on
    /// failure.
    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkRecord> {
        self.add_network(req, false).await
    }

    async fn add_network(&self, req: NetworkCreate, builtin: bool) -> Result<NetworkRecord> {
        // A subnet chosen here for a global network may be chosen by
        // another host at the same moment: the cluster store takes one, and
        // the other host chooses again.
        let mut lost = Vec::new();
        loop {
            match self.add_network_once(req.clone(), builtin, &lost).await {
                Err(Error::Cluster(berth_cluster::Error::Taken { what, owner }))
                    if lost.len() < 8 && what.starts_with("subnet ") =>
                {
                    match what["subnet ".len()..].parse::<IpNet>() {
                        Ok(s) if !req.ipam.config.iter().any(|c| c.subnet == s.to_string()) => lost.push(s),
                        _ => return Err(Error::Cluster(berth_cluster::Error::Taken { what, owner })),
                    }
                }
                Err(Error::Cluster(berth_cluster::Error::Taken { what, .. }))
                    if what.starts_with("network name ") =>
                {
                    return Err(Error::NetworkExists { name: req.name });
                }
                done => return done,
            }
        }
    }

    async fn add_network_once(
        &self,
        req: NetworkCreate,
        builtin: bool,
        lost: &[IpNet],
    ) -> Result<NetworkRecord> {
        util::check_name(Object::Network, &req.name)?;
        let driver_name = if req.driver.is_empty() {
            "bridge"
        } else {
            req.driver.as_str()
        };
        let driver = self.driver(driver_name)?;
        let caps = driver.capabilities();
        let mut ipam = plan_ipam(&req.ipam)?;
        if !caps.ipam && !ipam.is_empty() {
            return Err(Error::NoAddressManagement {
                driver: driver.name().to_owned(),
            });
        }
        if let Some(v6) = ipam.iter().find(|c| c.subnet.addr().is_ipv6())
            && !req.enable_ipv6
        {
            return Err(Error::Ipv6SubnetWithoutFlag { subnet: v6.subnet });
        }
        if req.enable_ipv6 && !caps.ipam {
            return Err(Error::Ipv6NotTaken {
                driver: driver.name().to_owned(),
            });
        }
        driver.supported(&self.ctx.features)?;
        let global = caps.scope == Scope::Global && self.cluster.is_some();
        let scope = views::scope_name(caps.scope);
        if !req.scope.is_empty() && req.scope != scope {
            return Err(Error::WrongScope {
                scope: req.scope.clone(),
                driver: driver.name().to_owned(),
                its: scope,
            });
        }
        let id = util::new_id();
        // Options first: a bad option is the user's first problem to fix.
        let checked = driver
            .open(&Network {
                id: id.clone(),
                name: req.name.clone(),
                driver: driver.name().to_owned(),
                options: req.options.clone(),
                ipam: ipam.clone(),
                ipv6: req.enable_ipv6,
                internal: req.internal,
            })
            .await?;
        // Routes of the host, so that a new subnet does not shadow one.
        let mut routes: Vec<IpNet> = if caps.ipam && !ipam.iter().any(|c| c.subnet.addr().is_ipv4()) {
            link::routes(&self.ctx.handle)
                .await?
                .into_iter()
                .filter(|r| r.prefix_len() > 0)
                .collect()
        } else {
            Vec::new()
        };
        // A global network's subnets are the cluster's: none may overlap
        // another global network's, whichever host made it.
        if global {
            let theirs = self.member(driver.name())?.store.taken_subnets().await?;
            for c in &ipam {
                if let Some(t) = theirs.iter().find(|t| overlaps(t, &c.subnet)) {
                    return Err(Error::Cluster(berth_cluster::Error::Taken {
                        what: format!("subnet {}", c.subnet),
                        owner: format!("global network with subnet {t}"),
                    }));
                }
            }
            routes.extend(theirs);
            routes.extend(lost.iter().copied());
        }

        let net = {
            let mut st = self.state();
            if st.networks.values().any(|n| n.net.name == req.name) || st.reserved_names.contains(&req.name) {
                return Err(Error::NetworkExists {
                    name: req.name.clone(),
                });
            }
            if !caps.multi_network
                && let Some(n) = st.networks.values().find(|n| n.net.driver == driver.name())
            {
                return Err(Error::OnlyOneNetwork {
                    driver: driver.name().to_owned(),
                    existing: n.net.name.clone(),
                });
            }
            let taken = taken_subnets(&st);
            for c in &ipam {
                if let Some((t, owner)) = taken.iter().find(|(t, _)| overlaps(t, &c.subnet)) {
                    return Err(Error::SubnetTaken {
                        subnet: c.subnet,
                        taken: *t,
                        network: owner.clone(),
                    });
                }
            }
            if caps.ipam && !ipam.iter().any(|c| c.subnet.addr().is_ipv4()) {
                let mut avoid: Vec<IpNet> = taken.iter().map(|(t, _)| *t).collect();
                avoid.extend(routes.iter().copied());
                ipam.insert(
                    0,
                    IpamConfig {
                        subnet: if global {
                            ipam::pick_global_subnet(&avoid)?
                        } else {
                            ipam::pick_subnet(&avoid, &self.cfg.address_pools)?
                        },
                        gateway: None,
                        ip_range: None,
                        aux_addresses: BTreeMap::new(),
                    },
                );
            }
            if req.enable_ipv6 && !ipam.iter().any(|c| c.subnet.addr().is_ipv6()) {
                ipam.push(IpamConfig {
                    subnet: ipam::ula_for(&id),
                    gateway: None,
                    ip_range: None,
                    aux_addresses: BTreeMap::new(),
                });
            }
            for c in &mut ipam {
                if c.gateway.is_none() {
                    c.gateway = first_host(&c.subnet);
                }
            }
            let mut net = Network {
                id: id.clone(),
                name: req.name.clone(),
                driver: driver.name().to_owned(),
                options: req.options.clone(),
                ipam,
                ipv6: req.enable_ipv6,
                internal: req.internal,
            };
            net.internal |= checked.forces_internal();
            st.reserved_names.insert(req.name.clone());
            for c in &net.ipam {
                st.reserved_subnets.push((c.subnet, req.name.clone()));
            }
            net
        };
        let mut rec = NetworkRecord {
            net,
            created: util::now(),
            scope: caps.scope,
            attachable: req.attachable,
            labels: req.labels,
            builtin,
        };
        let made = async {
            // What the driver claims for the network (an overlay's VNI)
            // completes its spec.
            driver.allocate(&self.ctx, &mut rec.net).await?;
            let made = async {
                // The address plan is settled now: the handle the network
                // keeps is opened on it.
                let handle = driver.open(&rec.net).await?;
                if global {
                    self.publish_network(&rec).await?;
                }
                if let Err(e) = self.make_network(&rec, handle.as_ref()).await {
                    if global {
                        self.unpublish_network(&rec).await;
                    }
                    return Err(e);
                }
                Ok::<_, Error>(handle)
            }
            .await;
            if made.is_err()
                && let Err(e) = driver.release(&self.ctx, &rec.net).await
            {
                tracing::warn!(network = %rec.net.name, "giving back what the driver claimed: {}", e.chain());
            }
            made
        }
        .await;
        let mut st = self.state();
        st.reserved_names.remove(&rec.net.name);
        st.reserved_subnets.retain(|(_, n)| n != &rec.net.name);
        let handle = made?;
        st.pools
            .insert(rec.net.id.clone(), rec.net.ipam.iter().map(Pool::new).collect());
        st.networks.insert(rec.net.id.clone(), rec.clone());
        st.handles.insert(rec.net.id.clone(), Driven { handle, caps });
        drop(st);
        self.sync_networks();
        Ok(rec)
    }

    /// Has the driver make the network, then stores it; undoes the driver's
    /// work when the store refuses.
    async fn make_network(&self, rec: &NetworkRecord, handle: &dyn NetworkHandle) -> Result<()> {
        handle.create(&self.ctx).await?;
        if let Err(e) = self
            .store
            .write(vec![Op::put(Table::Networks, &rec.net.id, rec)?])
            .await
        {
            let _ = handle.delete(&self.ctx).await;
            return Err(e);
        }
        Ok(())
    }

    /// Makes the networks every host has: `bridge` (on `berth0`), `host`
    /// and `none`, and in a cluster the gateway bridge
    /// (`berth_gwbridge`: the way out of overlay networks, masqueraded,
    /// its containers unable to reach each other), if the store does not
    /// have them yet.
    pub(crate) async fn ensure_builtin(&self) -> Result<()> {
        let mut builtin = vec![
            (
                "bridge",
                "bridge",
                vec![("com.docker.network.bridge.name", "berth0")],
            ),
            ("host", "host", vec![]),
            ("none", "null", vec![]),
        ];
        if self.cluster.is_some() {
            builtin.push((
                GATEWAY_NETWORK,
                "bridge",
                vec![
                    ("com.docker.network.bridge.name", GATEWAY_NETWORK),
                    ("com.docker.network.bridge.enable_icc", "false"),
                    ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ],
            ));
        }
        for (name, driver, options) in builtin {
            if self.state().networks.values().any(|n| n.net.name == name) {
                continue;
            }
            let req = NetworkCreate {
                name: name.into(),
                driver: driver.into(),
                options: options
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ..Default::default()
            };
            self.add_network(req, true).await?;
        }
        Ok(())
    }

    /// Finds a network by name, full id or unique id prefix.
    pub fn find_network(&self, key: &str) -> Result<NetworkRecord> {
        find_network(&self.state(), key).cloned()
    }

    /// Removes a network. Refuses the built-in ones and networks that still
    /// have containers, naming them.
    pub async fn remove_network(&self, key: &str) -> Result<String> {
        let rec = {
            let mut st = self.state();
            let rec = find_network(&st, key)?.clone();
            if rec.builtin {
                return Err(Error::PredefinedNetwork {
                    network: rec.net.name.clone(),
                });
            }
            let mut users: Vec<String> = st
                .containers
                .values()
                .filter(|c| c.endpoint(&rec.net.id).is_some())
                .map(|c| c.name.clone())
                .collect();
            // dockerd's endpoints (`--serve-docker`), named by Docker's id.
            users.extend(
                self.book()
                    .endpoints
                    .values()
                    .filter(|e| e.endpoint.network_id == rec.net.id)
                    .map(|e| {
                        format!(
                            "docker endpoint {}",
                            &e.endpoint.id[..12.min(e.endpoint.id.len())]
                        )
                    }),
            );
            if !users.is_empty() {
                return Err(Error::NetworkInUse {
                    network: rec.net.name.clone(),
                    containers: users,
                });
            }
            if st.pending.get(&rec.net.id).copied().unwrap_or(0) > 0 {
                return Err(Error::NetworkAttaching {
                    network: rec.net.name.clone(),
                });
            }
            if !st.removing.insert(rec.net.id.clone()) {
                return Err(Error::NetworkAlreadyRemoving {
                    network: rec.net.name.clone(),
                });
            }
            rec
        };
        let done = async {
            let driven = self.driven(&self.state(), &rec)?;
            let global = self.clustered(&rec);
            if global {
                // Refused while a container of any host is on it.
                self.remove_global(&rec).await?;
            }
            driven.handle.delete(&self.ctx).await?;
            if global
                && let Ok(driver) = self.driver(&rec.net.driver)
                && let Err(e) = driver.release(&self.ctx, &rec.net).await
            {
                tracing::warn!(network = %rec.net.name, "giving back what the driver claimed: {}", e.chain());
            }
            self.store
                .write(vec![Op::Delete(Table::Networks, rec.net.id.clone())])
                .await
        }
        .await;
        let mut st = self.state();
        st.removing.remove(&rec.net.id);
        done?;
        st.networks.remove(&rec.net.id);
        st.handles.remove(&rec.net.id);
        st.pools.remove(&rec.net.id);
        drop(st);
        self.sync_networks();
        Ok(rec.net.name)
    }

    /// Checks every container on a network with its driver (CNI's
    /// `CHECK`), one container at a time under its lock, and reports each:
    /// by container name. A driver that cannot check fails the whole
    /// request.
    pub async fn check_network(&self, key: &str) -> Result<Vec<NetworkCheck>> {
        let net = self.find_network(key)?;
        let mut members: Vec<(String, String)> = self
            .state()
            .containers
            .values()
            .filter(|c| c.endpoint(&net.net.id).is_some())
            .map(|c| (c.name.clone(), c.id.clone()))
            .collect();
        members.sort();
        let mut out = Vec::new();
        for (_, id) in members {
            let lock = self.container_lock(&id);
            let _g = lock.lock().await;
            let Ok(c) = self.find_container(&id) else {
                continue; // removed meanwhile
            };
            let Some(ep) = c.endpoint(&net.net.id) else {
                continue; // disconnected meanwhile
            };
            let sb = self.sandbox(&c).ok();
            let error = match self.check(&net, sb.as_deref(), ep).await {
                Ok(()) => String::new(),
                Err(Error::Driver(d)) if d.kind() == Kind::Unsupported => return Err(d.into()),
                Err(e) => e.chain(),
            };
            out.push(NetworkCheck {
                container: c.name,
                id: c.id,
                ok: error.is_empty(),
                error,
            });
        }
        Ok(out)
    }

    /// Removes every network that is not built in, has no containers and
    /// passes `filters` (`label`, `label!`). Returns their names.
    pub async fn prune_networks(&self, filters: &Filters) -> Result<Vec<String>> {
        let keep = NetworkFilter::prune(filters)?;
        let unused: Vec<String> = {
            let st = self.state();
            st.networks
                .values()
                .filter(|n| !n.builtin && !st.containers.values().any(|c| c.endpoint(&n.net.id).is_some()))
                .filter(|n| keep.matches(n, 0))
                .map(|n| n.net.id.clone())
                .collect()
        };
        let mut removed = Vec::new();
        for id in unused {
            match self.remove_network(&id).await {
                Ok(name) => removed.push(name),
                // In use again, or gone meanwhile.
                Err(e) if matches!(e.status(), StatusCode::CONFLICT | StatusCode::NOT_FOUND) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Every network that passes `filters`, in `docker network inspect`'s
    /// shape, by name (the filters are in [`crate::api`]'s `filters`).
    pub fn list_networks(&self, filters: &Filters) -> Result<Vec<NetworkView>> {
        // `-d` names a driver by an alias too (`none` for `null`).
        let keep = NetworkFilter::list(filters)?
            .with_driver_names(|v| self.driver(v).ok().map(|d| d.name().to_owned()));
        let st = self.state();
        let containers: Vec<_> = st.containers.values().collect();
        let mut out: Vec<NetworkView> = st
            .networks
            .values()
            .filter(|n| {
                let users = containers
                    .iter()
                    .filter(|c| c.endpoint(&n.net.id).is_some())
                    .count();
                keep.matches(n, users)
            })
            .map(|n| self.with_peers(n, views::network(n, &containers)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One network in `docker network inspect`'s shape.
    pub fn inspect_network(&self, key: &str) -> Result<NetworkView> {
        let st = self.state();
        let n = find_network(&st, key)?;
        let containers: Vec<_> = st.containers.values().collect();
        Ok(self.with_peers(n, views::network(n, &containers)))
    }
}

/// The first usable address of a subnet: the default gateway.
fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    if subnet.prefix_len() >= subnet.max_prefix_len() - 1 {
        return None;
    }
    match subnet.network() {
        IpAddr::V4(a) => Some(IpAddr::V4((u32::from(a) + 1).into())),
        IpAddr::V6(a) => Some(IpAddr::V6((u128::from(a) + 1).into())),
    }
}

/// Subnets of existing networks and of networks being created, with the
/// name of the network that holds each.
fn taken_subnets(st: &State) -> Vec<(IpNet, String)> {
    st.networks
        .values()
        .flat_map(|n| n.net.ipam.iter().map(|c| (c.subnet, n.net.name.clone())))
        .chain(st.reserved_subnets.iter().cloned())
        .collect()
}

/// Finds a network by name, full id or unique id prefix.
pub(crate) fn find_network<'a>(st: &'a State, key: &str) -> Result<&'a NetworkRecord> {
    if let Some(n) = st.networks.get(key) {
        return Ok(n);
    }
    if let Some(n) = st.networks.values().find(|n| n.net.name == key) {
        return Ok(n);
    }
    let mut by_prefix = st
        .networks
        .values()
        .filter(|n| !key.is_empty() && n.net.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(n), None) => Ok(n),
        (Some(_), Some(_)) => Err(Error::AmbiguousPrefix {
            kind: Object::Network,
            key: key.to_owned(),
        }),
        _ => Err(Error::NetworkNotFound { key: key.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnets: &[&str], gws: &[&str], ranges: &[&str]) -> IpamRequest {
        let mut config: Vec<IpamConfigRequest> = subnets
            .iter()
            .map(|s| IpamConfigRequest {
                subnet: s.to_string(),
                ..Default::default()
            })
            .collect();
        for (i, g) in gws.iter().enumerate() {
            if i >= config.len() {
                config.push(Default::default());
            }
            config[i].gateway = g.to_string();
        }
        for (i, r) in ranges.iter().enumerate() {
            if i >= config.len() {
                config.push(Default::default());
            }
            config[i].ip_range = r.to_string();
        }
        IpamRequest {
            config,
            ..Default::default()
        }
    }

    #[test]
    fn ipv4_subnets_come_first_whatever_the_order_given() {
        let plan = plan_ipam(&req(&["fd00:1::/64", "10.1.0.0/16", "10.2.0.0/16"], &[], &[])).unwrap();
        let got: Vec<String> = plan.iter().map(|c| c.subnet.to_string()).collect();
        assert_eq!(got, ["10.1.0.0/16", "10.2.0.0/16", "fd00:1::/64"]);
    }

    #[test]
    fn gateways_and_ranges_join_the_subnet_that_holds_them() {
        let plan = plan_ipam(&req(
            &["10.1.0.0/16", "fd00:1::/64"],
            &["fd00:1::fe", "10.1.255.254"],
            &[],
        ))
        .unwrap();
        assert_eq!(plan[0].gateway, Some("10.1.255.254".parse().unwrap()));
        assert_eq!(plan[1].gateway, Some("fd00:1::fe".parse().unwrap()));
    }

    #[test]
    fn bad_plans_are_named() {
        for (r, want) in [
            (
                req(&["10.1.0/16"], &[], &[]),
                "not an address prefix (accepted: CIDR notation",
            ),
            (
                req(&["10.1.0.5/16"], &[], &[]),
                "host bits are set (did you mean 10.1.0.0/16?)",
            ),
            (
                req(&["10.1.0.0/16"], &["10.2.0.1"], &[]),
                "gateway 10.2.0.1 is not in any --subnet (10.1.0.0/16)",
            ),
            (req(&["10.1.0.0/16"], &["10.1.0.0"], &[]), "network address"),
            (
                req(&["10.1.0.0/16"], &["bogus"], &[]),
                "invalid gateway \"bogus\": not an IP address",
            ),
            (
                req(&["10.1.0.0/16"], &[], &["10.2.0.0/24"]),
                "ip-range 10.2.0.0/24 is not in any --subnet",
            ),
            (
                req(&["10.1.0.0/16", "10.1.2.0/24"], &[], &[]),
                "overlaps subnet 10.1.0.0/16 of the same network",
            ),
            (
                req(&[], &["10.1.0.1"], &[]),
                "is not in any subnet: give --subnet too",
            ),
        ] {
            let e = plan_ipam(&r).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn first_host_is_the_default_gateway() {
        assert_eq!(
            first_host(&"172.18.0.0/16".parse().unwrap()),
            Some("172.18.0.1".parse().unwrap())
        );
        assert_eq!(
            first_host(&"fd00::/64".parse().unwrap()),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(first_host(&"10.0.0.0/31".parse().unwrap()), None);
    }
}
