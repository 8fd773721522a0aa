//! What the store keeps, and under which keys.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A host of the cluster: `hosts/<id>`, under its lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its id (stable across restarts: kept in its data root).
    pub id: String,
    /// Its name (`hostname`).
    pub name: String,
    /// Its tunnel endpoint: `--advertise-addr`.
    pub address: IpAddr,
    /// When it (re)joined, seconds since the Unix epoch.
    pub since: u64,
}

/// A container's membership in a global network, as every host sees it:
/// `endpoints/<network id>/<endpoint id>`, under its host's lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The endpoint's id.
    pub id: String,
    /// The network's id.
    pub network: String,
    /// The container's id.
    pub container: String,
    /// The container's name.
    pub name: String,
    /// The container's hostname.
    pub hostname: String,
    /// Its other names on the network (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The interface's MAC (`02:42:…`).
    pub mac: String,
    /// Its addresses with their prefix lengths.
    pub addresses: Vec<IpNet>,
    /// The host's id.
    pub host: String,
    /// The host's tunnel endpoint.
    pub vtep: IpAddr,
}

/// The keys, under the prefix.
pub(crate) struct Keys<'a>(pub &'a str);

impl Keys<'_> {
    pub fn host(&self, id: &str) -> String {
        format!("{}hosts/{id}", self.0)
    }
    pub fn hosts(&self) -> String {
        format!("{}hosts/", self.0)
    }
    pub fn network(&self, id: &str) -> String {
        format!("{}networks/{id}", self.0)
    }
    pub fn name(&self, name: &str) -> String {
        format!("{}names/{name}", self.0)
    }
    pub fn subnet(&self, subnet: &IpNet) -> String {
        format!("{}subnets/{subnet}", self.0)
    }
    pub fn subnets(&self) -> String {
        format!("{}subnets/", self.0)
    }
    pub fn number(&self, pool: &str, n: u32) -> String {
        format!("{}numbers/{pool}/{n}", self.0)
    }
    pub fn numbers(&self, pool: &str) -> String {
        format!("{}numbers/{pool}/", self.0)
    }
    pub fn address(&self, net: &str, ip: IpAddr) -> String {
        format!("{}addresses/{net}/{ip}", self.0)
    }
    pub fn addresses(&self, net: &str) -> String {
        format!("{}addresses/{net}/", self.0)
    }
    pub fn endpoint(&self, net: &str, id: &str) -> String {
        format!("{}endpoints/{net}/{id}", self.0)
    }
    pub fn endpoints_of(&self, net: &str) -> String {
        format!("{}endpoints/{net}/", self.0)
    }
    pub fn endpoints(&self) -> String {
        format!("{}endpoints/", self.0)
    }
}

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    Host(&'a str),
    Network(&'a str),
    Endpoint { network: &'a str, id: &'a str },
    Other,
}

/// Reads a key (without the prefix).
pub(crate) fn kind(rest: &str) -> Kind<'_> {
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("hosts"), Some(id), None) => Kind::Host(id),
        (Some("networks"), Some(id), None) => Kind::Network(id),
        (Some("endpoints"), Some(network), Some(id)) => Kind::Endpoint { network, id },
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back() {
        let k = Keys("/berth/v1/");
        assert_eq!(k.endpoint("n", "e"), "/berth/v1/endpoints/n/e");
        assert_eq!(
            kind("endpoints/n/e"),
            Kind::Endpoint {
                network: "n",
                id: "e"
            }
        );
        assert_eq!(kind("hosts/h"), Kind::Host("h"));
        assert_eq!(kind("networks/x"), Kind::Network("x"));
        assert_eq!(kind("subnets/10.0.0.0/24"), Kind::Other);
        assert_eq!(
            k.subnet(&"10.0.1.0/24".parse().unwrap()),
            "/berth/v1/subnets/10.0.1.0/24"
        );
    }
}
