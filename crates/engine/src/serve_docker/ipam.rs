//! `IpamDriver.*` for dockerd (`--ipam-driver berth`): subnets that
//! overlap none of berth's networks, pools already given out, or the
//! host's routes, and addresses that no berth container holds.
//!
//! A pool's id is its subnet. Addresses of a pool whose subnet is a berth
//! network's (after `CreateNetwork`, or at once with `--ipam-opt
//! berth.network=NAME`) are taken in that network's own pool too, so that
//! berth's containers and Docker's never get the same one.

use std::net::IpAddr;
use std::sync::Arc;

use berth_plugin::protocol::ipam::{
    GATEWAY, REQUEST_ADDRESS_TYPE, ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest,
    RequestAddressResponse, RequestPoolRequest, RequestPoolResponse,
};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::book::{PoolRecord, Record};
use super::cluster;
use super::network::NETWORK_OPTION;
use super::{Answer, Refusal, decode};
use crate::engine::Engine;
use crate::networks::ipam::{self, Pool};

/// Answers `IpamDriver.METHOD`.
pub(super) async fn call(engine: &Arc<Engine>, method: &str, body: &[u8]) -> Answer {
    let call = format!("IpamDriver.{method}");
    match method {
        "GetCapabilities" => {
            let _: Value = decode(&call, body)?;
            Ok(json!({ "RequiresMACAddress": false, "RequiresRequestReplay": false }))
        }
        "GetDefaultAddressSpaces" => {
            let _: Value = decode(&call, body)?;
            Ok(json!({
                "LocalDefaultAddressSpace": "berth-local",
                "GlobalDefaultAddressSpace": "berth-global",
            }))
        }
        "RequestPool" => request_pool(engine, decode(&call, body)?).await,
        "ReleasePool" => {
            let req: ReleasePoolRequest = decode(&call, body)?;
            let rec = engine.book().pools.get(&req.pool_id).cloned();
            if let Some(rec) = rec {
                engine.drop_record(&Record::Pool(rec)).await?;
            }
            Ok(json!({}))
        }
        "RequestAddress" => request_address(engine, decode(&call, body)?).await,
        "ReleaseAddress" => release_address(engine, decode(&call, body)?).await,
        _ => Err(super::unknown(&call)),
    }
}

/// Subnets in use: berth's networks', the pools', the host's routes.
async fn taken(engine: &Engine) -> Vec<IpNet> {
    let mut taken: Vec<IpNet> = engine
        .state()
        .networks
        .values()
        .flat_map(|n| n.net.ipam.iter().map(|c| c.subnet))
        .collect();
    taken.extend(engine.book().pools.values().map(|p| p.subnet));
    match berth_core::link::routes(&engine.ctx.handle).await {
        Ok(routes) => taken.extend(routes.into_iter().filter(|r| r.prefix_len() > 0)),
        Err(e) => tracing::warn!("listing the host's routes: {}", e.chain()),
    }
    taken
}

async fn request_pool(engine: &Arc<Engine>, req: RequestPoolRequest) -> Answer {
    if !req.sub_pool.is_empty() {
        return Err(Refusal::new("berth's IPAM takes no --ip-range"));
    }
    let (subnet, gateway) = if let Some(name) = req.options.get(NETWORK_OPTION) {
        let net = engine.find_network(name)?;
        let cfg = net
            .net
            .ipam
            .iter()
            .find(|c| c.subnet.addr().is_ipv6() == req.v6)
            .ok_or_else(|| {
                Refusal::new(format!(
                    "berth network {name} has no IPv{} subnet",
                    if req.v6 { 6 } else { 4 }
                ))
            })?;
        if !req.pool.is_empty() && req.pool != cfg.subnet.to_string() {
            return Err(Refusal::new(format!(
                "berth network {name} has subnet {}, not {}",
                cfg.subnet, req.pool
            )));
        }
        (cfg.subnet, cfg.gateway)
    } else if !req.pool.is_empty() {
        let subnet: IpNet = req
            .pool
            .parse()
            .map_err(|_| Refusal::new(format!("subnet {:?}: not a CIDR subnet", req.pool)))?;
        if subnet.addr().is_ipv6() != req.v6 {
            return Err(Refusal::new(format!(
                "subnet {subnet}: not of the family asked for"
            )));
        }
        let subnet = subnet.trunc();
        if let Some(p) = engine
            .book()
            .pools
            .values()
            .find(|p| ipam::overlaps(&p.subnet, &subnet))
        {
            return Err(Refusal::new(format!(
                "subnet {subnet} overlaps pool {}",
                p.subnet
            )));
        }
        (subnet, None)
    } else if req.v6 {
        return Err(Refusal::new("berth's IPAM needs --subnet for IPv6"));
    } else {
        let taken = taken(engine).await;
        (ipam::pick_subnet(&taken, &engine.cfg.address_pools)?, None)
    };
    let id = subnet.to_string();
    if engine.book().pools.contains_key(&id) {
        return Err(Refusal::new(format!("pool {id} is already in use")));
    }
    engine
        .keep(Record::Pool(PoolRecord {
            id: id.clone(),
            subnet,
            gateway,
            addresses: gateway.into_iter().collect(),
        }))
        .await?;
    let mut data = std::collections::BTreeMap::new();
    if let Some(g) = gateway {
        data.insert(GATEWAY.to_owned(), format!("{g}/{}", subnet.prefix_len()));
    }
    Ok(serde_json::to_value(RequestPoolResponse {
        pool_id: id,
        pool: subnet.to_string(),
        data,
    })
    .unwrap_or_default())
}

fn pool(engine: &Engine, id: &str) -> Result<PoolRecord, Refusal> {
    engine
        .book()
        .pools
        .get(id)
        .cloned()
        .ok_or_else(|| Refusal::new(format!("no pool {id}")))
}

/// Takes `ip` in the pool of a berth network with this subnet, if there is
/// one: false when a berth container holds it.
fn take_in_network(engine: &Engine, subnet: IpNet, ip: IpAddr) -> bool {
    let mut st = engine.state();
    let Some(net) = st
        .networks
        .values()
        .find(|n| n.net.ipam.iter().any(|c| c.subnet == subnet))
        .map(|n| n.net.id.clone())
    else {
        return true;
    };
    if net_gateway(&st, &net) == Some(ip) {
        return true;
    }
    let Some(p) = st
        .pools
        .get_mut(&net)
        .and_then(|ps| ps.iter_mut().find(|p| p.subnet == subnet))
    else {
        return true;
    };
    p.take(ip, |_| None).is_ok()
}

fn net_gateway(st: &crate::engine::State, net: &str) -> Option<IpAddr> {
    let n = st.networks.get(net)?;
    n.net.gateway(false).into_iter().chain(n.net.gateway(true)).next()
}

async fn request_address(engine: &Arc<Engine>, req: RequestAddressRequest) -> Answer {
    let mut rec = pool(engine, &req.pool_id)?;
    let gateway = req.options.get(REQUEST_ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY);
    let asked: Option<IpAddr> = if req.address.is_empty() {
        None
    } else {
        let a = req.address.split('/').next().unwrap_or_default();
        Some(
            a.parse()
                .map_err(|_| Refusal::new(format!("address {:?}: not an address", req.address)))?,
        )
    };
    if let Some(a) = asked
        && !rec.subnet.contains(&a)
    {
        return Err(Refusal::new(format!("address {a} is not in pool {}", rec.subnet)));
    }
    let ip = if gateway && let Some(g) = rec.gateway {
        if asked.is_some_and(|a| a != g) {
            return Err(Refusal::new(format!("pool {} has gateway {g}", rec.subnet)));
        }
        g
    } else {
        let mut mine = Pool::new(&berth_core::IpamConfig {
            subnet: rec.subnet,
            gateway: None,
            ip_range: None,
            aux_addresses: Default::default(),
        });
        for a in &rec.addresses {
            mine.mark(*a);
        }
        // A global network's addresses are the cluster's: each one is
        // claimed in its store too.
        let global = cluster::network_of(engine, &rec.subnet);
        match asked {
            Some(a) => {
                mine.take(a, |_| Some("another endpoint".to_owned()))?;
                if !take_in_network(engine, rec.subnet, a) {
                    let whose = match &global {
                        Some(net) if cluster::held_remotely(engine, net, a) => "a container of another host",
                        _ => "a berth container",
                    };
                    return Err(Refusal::new(format!("address {a} is in use by {whose}")));
                }
                if let Some(net) = &global
                    && !cluster::claim(engine, net, a).await?
                {
                    return Err(Refusal::new(format!(
                        "address {a} is in use by a container of another host"
                    )));
                }
                a
            }
            None => {
                let mut found = None;
                // Bounded: each try takes one more address of the pool.
                for _ in 0..65_536 {
                    let a = mine.allocate()?.addr();
                    if !take_in_network(engine, rec.subnet, a) {
                        continue;
                    }
                    match &global {
                        Some(net) if !cluster::claim(engine, net, a).await? => continue,
                        _ => {
                            found = Some(a);
                            break;
                        }
                    }
                }
                found.ok_or_else(|| Refusal::new(format!("pool {} is full", rec.subnet)))?
            }
        }
    };
    rec.addresses.insert(ip);
    if gateway {
        rec.gateway = Some(ip);
    }
    engine.keep(Record::Pool(rec.clone())).await?;
    Ok(serde_json::to_value(RequestAddressResponse {
        address: format!("{ip}/{}", rec.subnet.prefix_len()),
        data: Default::default(),
    })
    .unwrap_or_default())
}

async fn release_address(engine: &Arc<Engine>, req: ReleaseAddressRequest) -> Answer {
    let Ok(mut rec) = pool(engine, &req.pool_id) else {
        return Ok(json!({})); // already gone
    };
    let a = req.address.split('/').next().unwrap_or_default();
    let ip: IpAddr = a
        .parse()
        .map_err(|_| Refusal::new(format!("address {:?}: not an address", req.address)))?;
    if rec.addresses.remove(&ip) {
        if rec.gateway == Some(ip) {
            rec.gateway = None;
        }
        engine.keep(Record::Pool(rec.clone())).await?;
        if let Some(net) = cluster::network_of(engine, &rec.subnet) {
            cluster::release(engine, &net, ip).await;
        }
        let mut st = engine.state();
        let gw: Vec<IpAddr> = st
            .networks
            .values()
            .filter_map(|n| n.net.gateway(ip.is_ipv6()))
            .collect();
        if !gw.contains(&ip) {
            for ps in st.pools.values_mut() {
                for p in ps.iter_mut().filter(|p| p.subnet == rec.subnet) {
                    p.release(ip);
                }
            }
        }
    }
    Ok(json!({}))
}
