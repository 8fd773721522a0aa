//! `NetworkDriver.*` for dockerd, through berth's driver of one socket.

use std::net::IpAddr;
use std::sync::Arc;

use berth_core::{IfName, Mac, Netns, Sandbox, Scope, link};
use berth_plugin::protocol::{
    CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteNetworkRequest,
    EndpointInterface, EndpointRequest, GENERIC_OPTIONS, InterfaceName, JoinRequest, JoinResponse,
};
use ipnet::IpNet;
use serde_json::{Value, json};

use super::book::{EpRecord, NetRecord, Record};
use super::cluster;
use super::{Answer, Refusal, decode};
use crate::engine::Engine;
use crate::networks::{IpamRequest, NetworkCreate};
use crate::store::model::{EndpointRecord, NetworkRecord};

/// `-o berth.network=NAME`: join this existing berth network.
pub(super) const NETWORK_OPTION: &str = "berth.network";

/// What `Join` names the interface's prefix in the container.
const DST_PREFIX: &str = "eth";

/// Answers `NetworkDriver.METHOD` for berth's driver `driver`.
pub(super) async fn call(engine: &Arc<Engine>, driver: &str, method: &str, body: &[u8]) -> Answer {
    let call = format!("NetworkDriver.{method}");
    match method {
        "GetCapabilities" => {
            let caps = engine.driver(driver)?.capabilities();
            let connectivity = match caps.scope {
                Scope::Global => "global",
                Scope::Local => "local",
            };
            Ok(json!({ "Scope": "local", "ConnectivityScope": connectivity }))
        }
        "CreateNetwork" => create_network(engine, driver, decode(&call, body)?).await,
        "DeleteNetwork" => delete_network(engine, decode(&call, body)?).await,
        "CreateEndpoint" => create_endpoint(engine, decode(&call, body)?).await,
        "EndpointOperInfo" => {
            let req: EndpointRequest = decode(&call, body)?;
            let ep = endpoint(engine, &req.endpoint_id)?;
            let net = engine.find_network(&ep.endpoint.network_id)?;
            Ok(json!({ "Value": {
                "berth.network": net.net.name,
                "berth.interface": ep.endpoint.ifname.as_ref().map(|i| i.as_str().to_owned()),
                "berth.host_interface": ep.endpoint.host_ifname,
            }}))
        }
        "DeleteEndpoint" => delete_endpoint(engine, decode(&call, body)?).await,
        "Join" => join(engine, decode(&call, body)?).await,
        "Leave" => {
            let req: EndpointRequest = decode(&call, body)?;
            leave(engine, &req.endpoint_id).await?;
            Ok(json!({}))
        }
        // Docker's swarm and its cluster discovery: berth has neither, and
        // finds its overlay peers through etcd.
        "DiscoverNew" | "DiscoverDelete" | "FreeNetwork" => {
            let _: Value = decode(&call, body)?;
            Ok(json!({}))
        }
        "AllocateNetwork" => {
            let _: Value = decode(&call, body)?;
            Ok(json!({ "Options": {} }))
        }
        // berth's drivers give the network its way out (and publish
        // ports) when they make it; Docker's `-p` is not berth's.
        "ProgramExternalConnectivity" | "RevokeExternalConnectivity" => {
            let req: EndpointRequest = decode(&call, body)?;
            endpoint(engine, &req.endpoint_id)?;
            Ok(json!({}))
        }
        _ => Err(super::unknown(&call)),
    }
}

fn endpoint(engine: &Engine, id: &str) -> Result<EpRecord, Refusal> {
    engine
        .book()
        .endpoints
        .get(id)
        .cloned()
        .ok_or_else(|| Refusal::new(format!("no endpoint {id}")))
}

/// The `-o` options Docker hands over, as strings.
fn generic_options(req: &CreateNetworkRequest) -> Result<Vec<(String, String)>, Refusal> {
    let Some(generic) = req.options.get(GENERIC_OPTIONS) else {
        return Ok(Vec::new());
    };
    let Some(map) = generic.as_object() else {
        return Err(Refusal::new(format!("{GENERIC_OPTIONS}: not an object")));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Bool(_) | Value::Number(_) => Ok((k.clone(), v.to_string())),
            _ => Err(Refusal::new(format!("option {k}: not a string"))),
        })
        .collect()
}

/// `172.18.0.1/16` (Docker's gateway) as an address.
fn gateway(s: &str) -> Result<Option<IpAddr>, Refusal> {
    if s.is_empty() {
        return Ok(None);
    }
    let addr = s.split('/').next().unwrap_or(s);
    addr.parse()
        .map(Some)
        .map_err(|_| Refusal::new(format!("gateway {s:?}: not an address")))
}

async fn create_network(engine: &Arc<Engine>, driver: &str, req: CreateNetworkRequest) -> Answer {
    if engine.book().networks.contains_key(&req.network_id) {
        return Ok(json!({}));
    }
    let options = generic_options(&req)?;
    let pools: Vec<(IpNet, Option<IpAddr>)> = req
        .ipv4_data
        .iter()
        .chain(&req.ipv6_data)
        .map(|d| {
            let subnet: IpNet = d
                .pool
                .parse()
                .map_err(|_| Refusal::new(format!("pool {:?}: not a subnet", d.pool)))?;
            Ok((subnet, gateway(&d.gateway)?))
        })
        .collect::<Result<_, Refusal>>()?;
    let existing = options
        .iter()
        .find(|(k, _)| k == NETWORK_OPTION)
        .map(|(_, v)| v.clone());
    let record = if let Some(name) = existing {
        let net = engine.find_network(&name)?;
        if net.net.driver != driver {
            return Err(Refusal::new(format!(
                "berth network {name} has driver {}, not {driver}: create it with -d berth-{}",
                net.net.driver, net.net.driver
            )));
        }
        for (subnet, _) in &pools {
            if !net.net.ipam.iter().any(|c| c.subnet == *subnet) {
                let theirs: Vec<String> = net.net.ipam.iter().map(|c| c.subnet.to_string()).collect();
                return Err(Refusal::new(format!(
                    "berth network {name} has subnet(s) {}, not {subnet}: use --ipam-driver berth \
                     --ipam-opt {NETWORK_OPTION}={name}, or --subnet with its subnet",
                    theirs.join(", ")
                )));
            }
        }
        NetRecord {
            docker_id: req.network_id.clone(),
            network_id: net.net.id,
            owned: false,
        }
    } else {
        let config = pools
            .iter()
            .map(|(subnet, gw)| berth_api::IpamConfig {
                subnet: subnet.to_string(),
                gateway: gw.map(|g| g.to_string()).unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let ipv6 = req
            .options
            .get("com.docker.network.enable_ipv6")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let create = NetworkCreate {
            name: req.network_id.clone(),
            driver: driver.to_owned(),
            enable_ipv6: ipv6,
            ipam: IpamRequest {
                config,
                ..Default::default()
            },
            options: options.into_iter().collect(),
            labels: [("berth.docker".to_owned(), "true".to_owned())].into(),
            ..Default::default()
        };
        let net: NetworkRecord = engine.create_network(create).await?;
        NetRecord {
            docker_id: req.network_id.clone(),
            network_id: net.net.id,
            owned: true,
        }
    };
    let owned = record.owned;
    let id = record.network_id.clone();
    if let Err(e) = engine.keep(Record::Network(record)).await {
        if owned {
            let _ = engine.remove_network(&id).await;
        }
        return Err(e.into());
    }
    Ok(json!({}))
}

async fn delete_network(engine: &Arc<Engine>, req: DeleteNetworkRequest) -> Answer {
    let Some(rec) = engine.book().networks.get(&req.network_id).cloned() else {
        return Ok(json!({})); // already gone
    };
    if engine
        .book()
        .endpoints
        .values()
        .any(|e| e.docker_network == req.network_id)
    {
        return Err(Refusal::new("the network still has endpoints"));
    }
    if rec.owned {
        match engine.remove_network(&rec.network_id).await {
            Ok(_) | Err(crate::Error::NetworkNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    engine.drop_record(&Record::Network(rec)).await?;
    Ok(json!({}))
}

/// `bd` and 12 hex digits of the endpoint id: the interface's name in the
/// host until Docker moves it.
fn staging_name(endpoint_id: &str) -> Result<IfName, Refusal> {
    let short: String = endpoint_id.chars().take(12).collect();
    if short.len() < 12 || !short.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::new(format!(
            "endpoint id {endpoint_id:?}: not 64 hex digits"
        )));
    }
    IfName::new(&format!("bd{short}")).map_err(|e| Refusal::new(e.to_string()))
}

fn address(what: &str, s: &str) -> Result<Option<IpNet>, Refusal> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Refusal::new(format!("{what} {s:?}: not an address with a prefix length")))
}

async fn create_endpoint(engine: &Arc<Engine>, req: CreateEndpointRequest) -> Answer {
    let ifname = staging_name(&req.endpoint_id)?;
    let net_rec = engine
        .book()
        .networks
        .get(&req.network_id)
        .cloned()
        .ok_or_else(|| Refusal::new(format!("no network {}", req.network_id)))?;
    if let Some(ep) = engine.book().endpoints.get(&req.endpoint_id) {
        return Ok(json!({ "Interface": { "MacAddress": ep.endpoint.mac.to_string() } }));
    }
    let net = engine.find_network(&net_rec.network_id)?;
    let iface = req.interface.clone().unwrap_or_default();
    let addresses: Vec<IpNet> = [
        address("Address", &iface.address)?,
        address("AddressIPv6", &iface.address_ipv6)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    if addresses.is_empty() && !net.net.ipam.is_empty() {
        return Err(Refusal::new(
            "the endpoint has no address: berth's networks take theirs from an IPAM driver",
        ));
    }
    // A global network's addresses are claimed in the cluster store (done
    // already when berth's IPAM gave them).
    if engine.clustered(&net) {
        let gateways = [net.net.gateway(false), net.net.gateway(true)];
        for a in addresses.iter().map(IpNet::addr) {
            if !gateways.contains(&Some(a)) && !cluster::claim(engine, &net.net.id, a).await? {
                return Err(Refusal::new(format!(
                    "address {a} is in use by a container of another host"
                )));
            }
        }
    }
    let asked_mac = !iface.mac_address.is_empty();
    let mac = if asked_mac {
        iface
            .mac_address
            .parse::<Mac>()
            .map_err(|_| Refusal::new(format!("MacAddress {:?}: not a MAC", iface.mac_address)))?
    } else {
        Mac::for_ipv4(addresses.iter().map(IpNet::addr).find(IpAddr::is_ipv4))
    };
    let gateways: Vec<IpAddr> = [net.net.gateway(false), net.net.gateway(true)]
        .into_iter()
        .flatten()
        .collect();
    let ep = EndpointRecord {
        id: req.endpoint_id.clone(),
        network_id: net.net.id.clone(),
        ifname: Some(ifname),
        mac,
        addresses: addresses.clone(),
        gateways,
        default_route: false,
        host_ifname: None,
        static_ip: addresses.iter().map(IpNet::addr).collect(),
        mac_asked: asked_mac,
        aliases: Vec::new(),
        driver_state: None,
    };
    {
        let mut st = engine.state();
        if let Some(pools) = st.pools.get_mut(&net.net.id) {
            for a in &addresses {
                if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                    p.mark(a.addr());
                }
            }
        }
    }
    let rec = EpRecord {
        docker_network: req.network_id.clone(),
        endpoint: ep.clone(),
        joined: false,
    };
    if let Err(e) = engine.keep(Record::Endpoint(Box::new(rec))).await {
        Engine::release(&mut engine.state(), &ep);
        return Err(e.into());
    }
    let answer = CreateEndpointResponse {
        interface: (!asked_mac).then(|| EndpointInterface {
            mac_address: mac.to_string(),
            ..Default::default()
        }),
    };
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

async fn delete_endpoint(engine: &Arc<Engine>, req: EndpointRequest) -> Answer {
    let Some(rec) = engine.book().endpoints.get(&req.endpoint_id).cloned() else {
        return Ok(json!({})); // already gone
    };
    if rec.joined {
        leave(engine, &req.endpoint_id).await?;
    }
    // Docker sends `Leave` before it moves the interface out of the
    // container (under its staging name), and `DeleteEndpoint` after: a
    // macvlan or ipvlan interface is back in the host only now.
    if let Some(name) = &rec.endpoint.ifname {
        link::del_by_name(&engine.ctx.handle, name.as_str())
            .await
            .map_err(|e| Refusal::new(berth_core::chain(&e)))?;
    }
    engine
        .drop_record(&Record::Endpoint(Box::new(rec.clone())))
        .await?;
    Engine::release(&mut engine.state(), &rec.endpoint);
    // Addresses of a global network that another IPAM gave: berth's IPAM
    // gives its own back on `ReleaseAddress`.
    let net = engine.state().networks.get(&rec.endpoint.network_id).cloned();
    if let Some(net) = net.filter(|n| engine.clustered(n)) {
        let ours: Vec<IpAddr> = engine
            .book()
            .pools
            .values()
            .flat_map(|p| p.addresses.iter().copied())
            .collect();
        for a in rec.endpoint.addresses.iter().map(IpNet::addr) {
            if !ours.contains(&a) {
                cluster::release(engine, &net.net.id, a).await;
            }
        }
    }
    Ok(json!({}))
}

async fn join(engine: &Arc<Engine>, req: JoinRequest) -> Answer {
    let lock = engine.container_lock(&req.endpoint_id);
    let _g = lock.lock().await;
    let mut rec = endpoint(engine, &req.endpoint_id)?;
    let net = engine.find_network(&rec.endpoint.network_id)?;
    let ifname = rec
        .endpoint
        .ifname
        .clone()
        .ok_or_else(|| Refusal::new("the endpoint has no interface"))?;
    if !rec.joined {
        wire(engine, &net, &mut rec.endpoint).await?;
        rec.joined = true;
        let kept = match cluster::announce(engine, &net, &rec.endpoint).await {
            Ok(()) => engine.keep(Record::Endpoint(Box::new(rec.clone()))).await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            let _ = unwire(engine, &net, &rec.endpoint).await;
            return Err(e.into());
        }
    }
    let caps = engine.driven(&engine.state(), &net)?.caps;
    let gw = |v6| {
        if net.net.internal || caps.egress {
            String::new()
        } else {
            net.net.gateway(v6).map(|g| g.to_string()).unwrap_or_default()
        }
    };
    let answer = JoinResponse {
        interface_name: Some(InterfaceName {
            src_name: ifname.as_str().to_owned(),
            dst_prefix: DST_PREFIX.to_owned(),
        }),
        gateway: gw(false),
        gateway_ipv6: gw(true),
        ..Default::default()
    };
    Ok(serde_json::to_value(answer).unwrap_or_default())
}

/// Has the network's driver make the endpoint's interface in a staging
/// namespace, then moves it into the host's under the same name. On
/// error, nothing is left.
async fn wire(engine: &Engine, net: &NetworkRecord, ep: &mut EndpointRecord) -> Result<(), Refusal> {
    let ifname = ep.ifname.clone().ok_or_else(|| Refusal::new("no interface"))?;
    let pin = engine.cfg.exec_root.join("docker-staging");
    std::fs::create_dir_all(&pin).map_err(|e| Refusal::new(format!("creating {}: {e}", pin.display())))?;
    let pin = pin.join(&ep.id);
    let ns = Netns::create_pinned(&pin).map_err(|e| Refusal::new(berth_core::chain(&e)))?;
    let unpin = || {
        if let Err(e) = Netns::unpin(&pin) {
            tracing::warn!(
                "removing the staging namespace {}: {}",
                pin.display(),
                berth_core::chain(&e)
            );
        }
    };
    let handle = match ns.connect() {
        Ok(h) => h,
        Err(e) => {
            unpin();
            return Err(Refusal::new(berth_core::chain(&e)));
        }
    };
    let sb = Sandbox {
        ns,
        handle,
        path: pin.clone(),
    };
    if let Err(e) = engine.attach(net, &sb, ep).await {
        unpin();
        return Err(e.into());
    }
    let moved = link::move_link(&sb.handle, ifname.as_str(), &engine.host_sandbox.ns, &ifname).await;
    if let Err(e) = moved {
        let _ = engine.detach(net, Some(&sb), ep).await;
        unpin();
        return Err(Refusal::new(berth_core::chain(&e)));
    }
    unpin();
    Ok(())
}

/// Has the driver undo the attach and deletes the interface where Docker
/// left it (the host, under its staging name). Idempotent.
async fn unwire(engine: &Engine, net: &NetworkRecord, ep: &EndpointRecord) -> Result<(), Refusal> {
    cluster::withdraw(engine, net, ep).await;
    engine.detach(net, None, ep).await?;
    if let Some(name) = &ep.ifname {
        link::del_by_name(&engine.ctx.handle, name.as_str())
            .await
            .map_err(|e| Refusal::new(berth_core::chain(&e)))?;
    }
    Ok(())
}

async fn leave(engine: &Arc<Engine>, endpoint_id: &str) -> Result<(), Refusal> {
    let lock = engine.container_lock(endpoint_id);
    let _g = lock.lock().await;
    let mut rec = endpoint(engine, endpoint_id)?;
    if !rec.joined {
        return Ok(());
    }
    let net = engine.find_network(&rec.endpoint.network_id)?;
    unwire(engine, &net, &rec.endpoint).await?;
    rec.joined = false;
    engine.keep(Record::Endpoint(Box::new(rec))).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_fit_a_link_name() {
        let n = staging_name(&"0123456789abcdef".repeat(4)).unwrap();
        assert_eq!(n.as_str(), "bd0123456789ab");
        assert!(staging_name("xyz").is_err());
        assert!(staging_name("../../etc/passwd0000").is_err());
    }
}
