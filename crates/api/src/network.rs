//! Networks: Docker's shapes for create, inspect and list, connect and
//! disconnect, prune; and berth's check result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::de::nullable;

fn is_false(b: &bool) -> bool {
    !*b
}

/// `POST /networks/create`: `docker network create`'s flags. Fields berth
/// has no use for (`CheckDuplicate`: berth always refuses a second network
/// of one name) are read and ignored; those asking for what berth cannot
/// do (`Ingress`, `ConfigOnly`, `ConfigFrom`, `EnableIPv4: false`, a
/// `swarm` scope) are refused by the daemon, naming them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    /// The network's name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `-d`; `bridge` when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    /// `--scope`: empty, or the driver's own (`local`, `global` for
    /// overlay); berth has no swarm.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub scope: String,
    /// `--internal`: no route out.
    #[serde(default, deserialize_with = "nullable")]
    pub internal: bool,
    /// `--attachable`.
    #[serde(default, deserialize_with = "nullable")]
    pub attachable: bool,
    /// `--ingress` (swarm's routing mesh): refused.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub ingress: bool,
    /// `--config-only`: refused.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub config_only: bool,
    /// `--config-from`: refused when it names a network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_from: Option<ConfigReference>,
    /// `--ipv4=false` (Docker 28): refused; berth networks always have IPv4.
    #[serde(rename = "EnableIPv4", default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6", default, deserialize_with = "nullable")]
    pub enable_ipv6: bool,
    /// `--subnet`, `--gateway`, `--ip-range`, `--aux-address`.
    #[serde(rename = "IPAM", default, deserialize_with = "nullable")]
    pub ipam: Ipam,
    /// `-o KEY=VALUE`: the driver's options.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// `--label KEY=VALUE`.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Old clients' request to refuse a duplicate name; berth always does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_duplicate: Option<bool>,
}

/// The answer to a create: the new network's id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    /// 64 hex digits.
    pub id: String,
    /// Always empty.
    pub warning: String,
}

/// A network's address plan, in a create request and in `inspect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// Only `default` (or empty) is known.
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    /// The IPAM driver's options (always empty in answers).
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// One entry per subnet.
    #[serde(default, deserialize_with = "nullable")]
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network, as strings: in a request they are still to be
/// checked; in an answer, what is not set is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// CIDR, `172.18.0.0/16`.
    #[serde(default, deserialize_with = "nullable")]
    pub subnet: String,
    /// `--gateway`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway: String,
    /// `--ip-range`: where container addresses come from.
    #[serde(
        rename = "IPRange",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub ip_range: String,
    /// `--aux-address NAME=IP`: addresses never handed out.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// Swarm's config networks; always `{"Network": ""}` in berth's answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    /// The network the configuration comes from.
    #[serde(default, deserialize_with = "nullable")]
    pub network: String,
}

/// A network as `docker network inspect` and `docker network ls` see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// `local` or `global` (overlay).
    pub scope: String,
    /// The driver (`null` for the `none` network, as Docker calls it).
    pub driver: String,
    /// `--ipv6`.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Its subnets and gateways.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// Always false: berth has no swarm.
    pub ingress: bool,
    /// Always `{"Network": ""}`.
    pub config_from: ConfigReference,
    /// Always false.
    pub config_only: bool,
    /// The containers on it, by container id.
    pub containers: BTreeMap<String, NetworkContainer>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// A global network's hosts that have containers on it, as Docker
    /// lists an overlay's peers; absent for local networks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<NetworkPeer>>,
}

/// One host of a global network, in [`Network::peers`].
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPeer {
    /// The host's name.
    pub name: String,
    /// Its tunnel endpoint.
    #[serde(rename = "IP")]
    pub ip: String,
}

/// One container on a network, in [`Network::containers`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    /// The container's name.
    pub name: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// `aa:bb:cc:dd:ee:ff`; empty where there is no interface.
    pub mac_address: String,
    /// With its prefix length, `172.18.0.2/16`; empty when none.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// With its prefix length; empty when none.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    /// berth: the container's published ports that lead to this network,
    /// as `docker ps` prints them (`0.0.0.0:8080->80/tcp`).
    pub ports: Vec<String>,
}

/// `POST /networks/{id}/connect`: `docker network connect [--ip] [--ip6]
/// [--alias]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    /// The container, by name, id or id prefix.
    #[serde(default, deserialize_with = "nullable")]
    pub container: String,
    /// Addresses and aliases asked for.
    #[serde(default, deserialize_with = "nullable")]
    pub endpoint_config: EndpointSettings,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    /// The container, by name, id or id prefix.
    #[serde(default, deserialize_with = "nullable")]
    pub container: String,
    /// `-f`: go on when the driver fails to undo its work.
    #[serde(default, deserialize_with = "nullable")]
    pub force: bool,
}

/// A container's membership in one network: what it asked for
/// (`IPAMConfig`, `Aliases`, in a connect request) and what it got (in
/// `inspect` and `docker ps`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// The network's id.
    #[serde(rename = "NetworkID", default, deserialize_with = "nullable")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID", default, deserialize_with = "nullable")]
    pub endpoint_id: String,
    /// The IPv4 gateway; empty when none.
    #[serde(default, deserialize_with = "nullable")]
    pub gateway: String,
    /// The IPv4 address, without its prefix length.
    #[serde(rename = "IPAddress", default, deserialize_with = "nullable")]
    pub ip_address: String,
    /// The IPv4 prefix length (0 when none).
    #[serde(rename = "IPPrefixLen", default, deserialize_with = "nullable")]
    pub ip_prefix_len: u8,
    /// The IPv6 gateway; empty when none.
    #[serde(rename = "IPv6Gateway", default, deserialize_with = "nullable")]
    pub ipv6_gateway: String,
    /// The IPv6 address, without its prefix length.
    #[serde(rename = "GlobalIPv6Address", default, deserialize_with = "nullable")]
    pub global_ipv6_address: String,
    /// The IPv6 prefix length (0 when none).
    #[serde(rename = "GlobalIPv6PrefixLen", default, deserialize_with = "nullable")]
    pub global_ipv6_prefix_len: u8,
    /// The interface's MAC: in a connect request, the one to use (berth
    /// derives one from the address when empty).
    #[serde(default, deserialize_with = "nullable")]
    pub mac_address: String,
    /// berth: the interface inside the container (`eth1`).
    #[serde(default, deserialize_with = "nullable")]
    pub interface_name: String,
    /// Extra names on this network (`--alias`).
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// The addresses asked for (`--ip`, `--ip6`); `null` when none.
    #[serde(rename = "IPAMConfig", default)]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// `--link` on connect: refused (berth's links are given at `run`).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `--driver-opt`: refused.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub driver_opts: BTreeMap<String, String>,
}

/// The addresses a container asked for on one network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    /// `--ip`; empty for any.
    #[serde(rename = "IPv4Address", default, deserialize_with = "nullable")]
    pub ipv4_address: String,
    /// `--ip6`; empty for any.
    #[serde(rename = "IPv6Address", default, deserialize_with = "nullable")]
    pub ipv6_address: String,
    /// `--link-local-ip`: refused.
    #[serde(
        rename = "LinkLocalIPs",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link_local_ips: Vec<String>,
}

/// The answer to `POST /networks/prune`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    /// Names of the networks removed.
    #[serde(default, deserialize_with = "nullable")]
    pub networks_deleted: Vec<String>,
}

/// berth: one container's result in `POST /networks/{id}/check` (CNI's
/// CHECK), by container name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCheck {
    /// The container's name.
    pub container: String,
    /// Its id.
    pub id: String,
    /// The driver found it as it left it.
    pub ok: bool,
    /// Why not; empty when `ok`.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clients_nulls_are_absent_values() {
        // What the docker CLI 20.10 sends for `docker network create x`.
        let body = r#"{"Name":"x","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":false,
            "IPAM":{"Driver":"default","Options":null,"Config":null},"Internal":false,"Attachable":false,
            "Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":null}"#;
        let r: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.name, "x");
        assert!(r.ipam.config.is_empty() && r.options.is_empty() && r.config_from.is_none());
        // docker-py's IPAMPool leaves what it was not given as None.
        let body = r#"{"Name":"p","Driver":null,"Options":null,"IPAM":{"Driver":"default","Config":
            [{"Subnet":"10.9.0.0/16","IPRange":null,"Gateway":"10.9.0.1","AuxiliaryAddresses":null}],"Options":null}}"#;
        let r: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.ipam.config[0].gateway, "10.9.0.1");
        assert_eq!(r.ipam.config[0].ip_range, "");
    }

    #[test]
    fn an_inspect_answer_round_trips_unchanged() {
        let n = Network {
            name: "n".into(),
            ipam: Ipam {
                driver: "default".into(),
                config: vec![IpamConfig {
                    subnet: "10.1.0.0/16".into(),
                    gateway: "10.1.0.1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let s = serde_json::to_string(&n).unwrap();
        assert!(s.contains(r#""IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/16","Gateway":"10.1.0.1"}]}"#), "{s}");
        assert!(s.contains(r#""ConfigFrom":{"Network":""}"#), "{s}");
        assert_eq!(serde_json::from_str::<Network>(&s).unwrap(), n);
        let e = EndpointSettings::default();
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.ends_with(r#""Aliases":[],"IPAMConfig":null}"#), "{s}");
        assert_eq!(serde_json::from_str::<EndpointSettings>(&s).unwrap(), e);
    }
}
