//! The JSON protocol of third-party drivers, in the shapes of Docker's
//! remote network-driver API (`/NetworkDriver.*`), which berth speaks to
//! Docker network plugins over a unix socket and to shared-library plugins
//! through `berth_plugin_v1`.
//!
//! Docker's shapes carry what Docker's engine tells its drivers. berth's
//! drivers wire the sandbox themselves, and a shared-library plugin opens
//! each network from its whole spec, whenever it has not opened it yet
//! (after a restart of either side too), so requests to shared-library
//! plugins also carry a `Berth` member ([`BerthNetwork`],
//! [`BerthEndpoint`]); Docker plugins ignore it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Attachment, Mac, Network, Ports};

/// The methods, as `/NetworkDriver.<method>` names them.
pub mod method {
    /// `GetCapabilities`.
    pub const GET_CAPABILITIES: &str = "GetCapabilities";
    /// `CreateNetwork`.
    pub const CREATE_NETWORK: &str = "CreateNetwork";
    /// `DeleteNetwork`.
    pub const DELETE_NETWORK: &str = "DeleteNetwork";
    /// `CreateEndpoint`.
    pub const CREATE_ENDPOINT: &str = "CreateEndpoint";
    /// `EndpointOperInfo`.
    pub const ENDPOINT_OPER_INFO: &str = "EndpointOperInfo";
    /// `DeleteEndpoint`.
    pub const DELETE_ENDPOINT: &str = "DeleteEndpoint";
    /// `Join`.
    pub const JOIN: &str = "Join";
    /// `Leave`.
    pub const LEAVE: &str = "Leave";
    /// berth only, for shared-library plugins: check a network's options
    /// and address plan before anything is made (Docker has no such step).
    /// The request is a [`CreateNetworkRequest`](super::CreateNetworkRequest)
    /// with its `Berth` member; the answer `{}` or `{"Err": "..."}`.
    pub const VALIDATE: &str = "Validate";
}

/// Docker's option key for `-o KEY=VALUE` options of a network.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";

/// Reads a `null` (Go's nil map or slice) as the default value.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{"Err": "..."}`: how a driver says no.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
}

/// `GetCapabilities` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapabilitiesResponse {
    /// `local` or `global`.
    #[serde(default)]
    pub scope: String,
    /// `local` or `global`.
    #[serde(default)]
    pub connectivity_scope: String,
    /// berth's own capabilities (shared-library plugins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<BerthCapabilities>,
}

/// What a shared-library plugin says of itself beyond Docker's fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BerthCapabilities {
    /// `own`, `host` or `isolated`.
    pub sandbox: String,
    /// The engine's IPAM assigns addresses.
    pub ipam: bool,
    /// Options `-o` accepts.
    pub options: Vec<String>,
    /// A container on it may join others.
    pub multi_network: bool,
    /// What `-p` does on its networks; absent: it publishes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Ports>,
    /// Its containers ask the embedded resolver; absent: they do when they
    /// get a namespace of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
    /// Its interfaces hang on a parent link.
    #[serde(default)]
    pub parent: bool,
}

/// One subnet as Docker hands it to drivers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    /// Always `""` here.
    #[serde(default)]
    pub address_space: String,
    /// The subnet, CIDR.
    pub pool: String,
    /// The gateway with the subnet's prefix length (`172.18.0.1/16`).
    #[serde(default)]
    pub gateway: String,
    /// Reserved addresses.
    #[serde(default, deserialize_with = "nullable")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// `CreateNetwork` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `{"com.docker.network.generic": {"-o" options}, "com.docker.network.enable_ipv6": bool}`.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
    /// IPv4 subnets.
    #[serde(rename = "IPv4Data", default, deserialize_with = "nullable")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 subnets.
    #[serde(rename = "IPv6Data", default, deserialize_with = "nullable")]
    pub ipv6_data: Vec<IpamData>,
    /// The whole network (berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<BerthNetwork>,
}

/// `DeleteNetwork` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteNetworkRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The whole network (berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<BerthNetwork>,
}

/// The interface of an endpoint, as Docker describes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    /// IPv4 address with prefix length (`172.18.0.2/16`).
    #[serde(default)]
    pub address: String,
    /// IPv6 address with prefix length.
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    /// `02:42:ac:12:00:02`.
    #[serde(default)]
    pub mac_address: String,
}

/// `CreateEndpoint` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What the engine's IPAM chose.
    #[serde(default)]
    pub interface: Option<EndpointInterface>,
    /// Endpoint options.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
}

/// `CreateEndpoint` answer: the driver may choose the interface's values
/// itself, only where the request left them empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointResponse {
    /// What the driver chose.
    #[serde(default)]
    pub interface: Option<EndpointInterface>,
}

/// `Join` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's network namespace (a path to open).
    pub sandbox_key: String,
    /// Join options.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, Value>,
    /// The network and the endpoint (berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<BerthEndpoint>,
}

/// The interface a Docker plugin made in the host's namespace for the
/// engine to move into the sandbox and rename `DstPrefix` + N.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    /// Its name in the host's namespace.
    pub src_name: String,
    /// `eth`: the sandbox name becomes `eth0`, `eth1`, …
    pub dst_prefix: String,
}

/// A route the driver wants in the sandbox.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StaticRoute {
    /// CIDR.
    pub destination: String,
    /// 0: via `NextHop`; 1: connected (on-link).
    #[serde(default)]
    pub route_type: u8,
    /// The next hop.
    #[serde(default)]
    pub next_hop: String,
}

/// `Join` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    /// The interface to move into the sandbox (Docker plugins).
    #[serde(default)]
    pub interface_name: Option<InterfaceName>,
    /// The gateway to route through, if the driver has one.
    #[serde(default)]
    pub gateway: String,
    /// IPv6 gateway.
    #[serde(rename = "GatewayIPv6", default)]
    pub gateway_ipv6: String,
    /// Extra routes.
    #[serde(default, deserialize_with = "nullable")]
    pub static_routes: Vec<StaticRoute>,
    /// Do not give the sandbox a way out through the gateway.
    #[serde(default)]
    pub disable_gateway_service: bool,
    /// What a shared-library plugin did (berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<Attachment>,
}

/// `Leave`, `DeleteEndpoint` and `EndpointOperInfo` requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointRequest {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network and the endpoint (berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub berth: Option<BerthEndpoint>,
}

/// The berth member of network requests: the whole network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BerthNetwork {
    /// The network as its driver sees it.
    pub network: Network,
}

/// The berth member of endpoint requests: the network and the endpoint
/// the engine planned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BerthEndpoint {
    /// The network as its driver sees it.
    pub network: Network,
    /// The sandbox's namespace path, or `None` on a detach after it went.
    pub sandbox_key: Option<String>,
    /// `eth0`, `eth1`, …
    pub ifname: String,
    /// `02:42:ac:12:00:02`; `""` where there is no interface.
    pub mac: Mac,
    /// Addresses with prefix lengths.
    pub addresses: Vec<ipnet::IpNet>,
    /// Default routes to install through these.
    pub gateways: Vec<std::net::IpAddr>,
    /// What the driver asked the engine to keep at attach
    /// ([`Attachment::state`](crate::Attachment::state)), handed back on
    /// `Leave`; absent on `Join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

/// The JSON of a `Validate` or `CreateNetwork` request for `net`, with
/// its `Berth` member.
pub fn network_request(net: &Network) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: net.id.clone(),
        options: network_options(net),
        ipv4_data: ipam_data(net, false),
        ipv6_data: ipam_data(net, true),
        berth: Some(BerthNetwork { network: net.clone() }),
    }
}

/// Docker's `IPv4Data`/`IPv6Data` of a network.
pub fn ipam_data(net: &Network, v6: bool) -> Vec<IpamData> {
    net.ipam
        .iter()
        .filter(|c| c.subnet.addr().is_ipv6() == v6)
        .map(|c| IpamData {
            address_space: String::new(),
            pool: c.subnet.to_string(),
            gateway: c
                .gateway
                .map(|g| format!("{g}/{}", c.subnet.prefix_len()))
                .unwrap_or_default(),
            aux_addresses: c
                .aux_addresses
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        })
        .collect()
}

/// Docker's `Options` of a network: the `-o` options under
/// `com.docker.network.generic`, and `com.docker.network.enable_ipv6`.
pub fn network_options(net: &Network) -> BTreeMap<String, Value> {
    let generic: serde_json::Map<String, Value> = net
        .options
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    BTreeMap::from([
        (GENERIC_OPTIONS.to_owned(), Value::Object(generic)),
        ("com.docker.network.enable_ipv6".to_owned(), Value::Bool(net.ipv6)),
    ])
}

/// Docker's remote IPAM protocol (`/IpamDriver.*`), which berth serves
/// to dockerd (`berth daemon --serve-docker`).
pub mod ipam {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::nullable;

    /// `RequestPool` request.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct RequestPoolRequest {
        /// The address space (`GetDefaultAddressSpaces`).
        #[serde(default)]
        pub address_space: String,
        /// `--subnet`, or `""` for the driver's choice.
        #[serde(default)]
        pub pool: String,
        /// `--ip-range`.
        #[serde(default)]
        pub sub_pool: String,
        /// `--ipam-opt KEY=VALUE`.
        #[serde(default, deserialize_with = "nullable")]
        pub options: BTreeMap<String, String>,
        /// An IPv6 pool.
        #[serde(rename = "V6", default)]
        pub v6: bool,
    }

    /// `RequestPool` answer.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct RequestPoolResponse {
        /// The id later requests name the pool by.
        #[serde(rename = "PoolID")]
        pub pool_id: String,
        /// The subnet, CIDR.
        pub pool: String,
        /// Extra data (`com.docker.network.gateway`: a gateway with its
        /// prefix length).
        #[serde(default, deserialize_with = "nullable")]
        pub data: BTreeMap<String, String>,
    }

    /// `ReleasePool` request.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct ReleasePoolRequest {
        /// The pool.
        #[serde(rename = "PoolID")]
        pub pool_id: String,
    }

    /// `RequestAddress` request.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct RequestAddressRequest {
        /// The pool.
        #[serde(rename = "PoolID")]
        pub pool_id: String,
        /// The address asked for (`--ip`, `--gateway`), or `""`.
        #[serde(default)]
        pub address: String,
        /// `RequestAddressType`: `com.docker.network.gateway` for a
        /// network's gateway.
        #[serde(default, deserialize_with = "nullable")]
        pub options: BTreeMap<String, String>,
    }

    /// `RequestAddress` answer.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct RequestAddressResponse {
        /// The address with the pool's prefix length.
        pub address: String,
        /// Extra data.
        #[serde(default, deserialize_with = "nullable")]
        pub data: BTreeMap<String, String>,
    }

    /// `ReleaseAddress` request.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct ReleaseAddressRequest {
        /// The pool.
        #[serde(rename = "PoolID")]
        pub pool_id: String,
        /// The address, without a prefix length.
        pub address: String,
    }

    /// The option of `RequestAddress` that says what the address is for.
    pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
    /// Its value for a network's gateway.
    pub const GATEWAY: &str = "com.docker.network.gateway";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_dockers_names() {
        let j = serde_json::to_value(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "veth1".into(),
                dst_prefix: "eth".into(),
            }),
            gateway: "10.0.0.1".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(j["InterfaceName"]["SrcName"], "veth1");
        assert_eq!(j["InterfaceName"]["DstPrefix"], "eth");
        assert_eq!(j["GatewayIPv6"], "");
        assert!(j.get("Berth").is_none());
        let r: CreateEndpointRequest = serde_json::from_str(
            r#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.0.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{}}"#,
        )
        .unwrap();
        assert_eq!(r.interface.unwrap().address, "10.0.0.2/24");
        let e: ErrorResponse = serde_json::from_str(r#"{"Err":"no"}"#).unwrap();
        assert_eq!(e.err, "no");
        // Go sends nil maps and slices as null.
        let n: CreateNetworkRequest =
            serde_json::from_str(r#"{"NetworkID":"n","Options":null,"IPv4Data":null,"IPv6Data":null}"#)
                .unwrap();
        assert!(n.options.is_empty() && n.ipv4_data.is_empty());
        let a: ipam::RequestAddressRequest =
            serde_json::from_str(r#"{"PoolID":"p","Address":"","Options":null}"#).unwrap();
        assert!(a.options.is_empty());
        let ok: ErrorResponse = serde_json::from_str("{}").unwrap();
        assert!(ok.err.is_empty());
    }
}
