//! The `inet berth` nftables table.
//!
//! Its rules are fixed; everything that varies per network, container or
//! published port lives in sets and maps, so creating a network, starting a
//! container or publishing a port changes elements, never rules.
//! [`Firewall::install`] writes the whole table (the rule skeleton of
//! `firewall/skeleton.rs` and every element berth knows of) as one
//! nfnetlink transaction that also deletes the old table, so there is no
//! moment without rules: when the daemon starts, on SIGHUP and on `berth
//! system reconcile`. After that every change is a netlink batch of element
//! additions or deletions (microseconds), never a listing of the table.
//!
//! Everything here goes over netlink ([`crate::nft`]): the daemon runs no
//! `nft` or `iptables` program and needs neither installed.
//!
//! | set or map | type | holds |
//! |---|---|---|
//! | `bridges` | ifname | every berth bridge |
//! | `internal` | ifname | bridges of `--internal` networks |
//! | `icc` | ifname . ifname | `(br, br)` for networks whose containers may talk to each other |
//! | `masq4`, `masq6` | interval | subnets whose outbound traffic is masqueraded |
//! | `dnat4`, `dnat6` | addr . proto . port → addr . port | single published ports on one host address (hash maps) |
//! | `dnat4_keep`, `dnat6_keep` | addr . proto . port range → addr | published ranges on one host address that keep their ports (interval maps) |
//! | `dnat4_any`, `dnat6_any`, `dnat4_any_keep`, `dnat6_any_keep` | the same without the address | ports published on every host address (`0.0.0.0`, `::`) |
//!
//! A range whose host and container ports are equal (`-p 8000-8999:8000-8999`)
//! is one interval element of a `_keep` map: DNAT rewrites the address and
//! leaves the port. A shifted range (`-p 9000-9009:80-89`) is one element per
//! port in a hash map: the kernel's NAT port offset
//! (`NF_NAT_RANGE_PROTO_OFFSET`) is not expressible through nft 1.0.6, the
//! version these machines carry. Single ports live in hash maps rather than
//! interval ones because a concatenated interval set (pipapo) rebuilds its
//! lookup tables on every commit: its updates grow with its size, a hash
//! map's do not.
//!
//! Localhost: the output chain DNATs `127.0.0.1:PORT` too; the bridge needs
//! `route_localnet` (set by the bridge driver) for a packet from 127.0.0.1 to
//! leave through it, and postrouting masquerades it to the bridge's address.
//!
//! Docker coexistence: a drop in any base chain is final, and Docker sets
//! the `filter FORWARD` policy of iptables to DROP. berth's forward chain runs
//! first (priority `filter - 1`) and marks what it accepts with
//! [`FORWARD_MARK`]; [`Firewall::install`] adds one rule to iptables'
//! `DOCKER-USER` chain (or `FORWARD`, where there is no `DOCKER-USER`) that
//! accepts packets carrying that mark, for IPv4 and IPv6, when such a
//! `filter` table exists (`ip filter`, `ip6 filter`: iptables-nft keeps
//! its rules in nftables). It finds the chains and looks for the rule over
//! netlink, and inserts it at the top encoded as iptables-nft 1.8.9 encodes
//! `-m mark --mark 0x1000000/0x1000000 -m comment --comment berth -j ACCEPT`
//! (`firewall/iptables.rs`), so `iptables -S` and `iptables -C` see exactly
//! that rule. Nothing else in other tables is touched.

mod iptables;
mod skeleton;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;

use crate::netns::Netns;
use crate::nft::{self, Batch, Element, Family, Table};
use crate::{Error, IfName, Result};

/// The table's name, in family `inet`.
pub const TABLE: &str = "berth";

/// The packet mark bit berth's forward chain sets on what it accepts, so
/// that one fixed iptables rule can accept the same packets where an
/// iptables `FORWARD` policy would drop them.
pub const FORWARD_MARK: u32 = 0x0100_0000;

/// The packet mark bit berth's forward chain sets on a published (DNAT'ed)
/// connection that comes from a berth bridge (hairpin: a container reaching
/// a published port through the host's address), so that postrouting
/// masquerades it and the reply comes back the way it went. The nat
/// postrouting hook cannot see the input interface itself.
pub const HAIRPIN_MARK: u32 = 0x0200_0000;

/// What the firewall knows of one bridge network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNetwork {
    /// The bridge.
    pub bridge: IfName,
    /// Subnets to masquerade when leaving the host (empty: none).
    pub masquerade: Vec<IpNet>,
    /// `--internal`: no traffic in or out.
    pub internal: bool,
    /// Containers on this network may reach each other.
    pub icc: bool,
}

impl FwNetwork {
    fn elements(&self) -> Vec<(&'static str, Vec<Element>)> {
        let br = nft::key::ifname(self.bridge.as_str());
        let pair = nft::key::concat(&[&br, &br]);
        let mut sets = vec![("bridges", vec![Element::new(br.clone())])];
        if self.internal {
            sets.push(("internal", vec![Element::new(br.clone())]));
        }
        if self.icc {
            sets.push(("icc", vec![Element::new(pair)]));
        }
        for (set, v6) in [("masq4", false), ("masq6", true)] {
            let elems: Vec<Element> = self
                .masquerade
                .iter()
                .filter(|n| n.addr().is_ipv6() == v6)
                .flat_map(|n| nft::prefix_elements(n.trunc()))
                .collect();
            if !elems.is_empty() {
                sets.push((set, elems));
            }
        }
        sets
    }
}

/// A transport protocol a port can be published for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// `tcp`, `udp` or `sctp`, as nft and `docker port` print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One published port or port range: traffic for `host_ip` (unspecified:
/// every address of the host) on `host_ports` goes to `addr` on the same
/// number of ports from `port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FwPort {
    /// The host address; `0.0.0.0` or `::` for all of the family's.
    pub host_ip: IpAddr,
    /// The protocol.
    pub proto: Proto,
    /// First host port.
    pub host_port: u16,
    /// Last host port (equal to `host_port` for one port).
    pub host_end: u16,
    /// The container's address, of the same family as `host_ip`.
    pub addr: IpAddr,
    /// The container port that `host_port` maps to.
    pub port: u16,
}

impl FwPort {
    /// The map and its elements: one interval element when the ports are
    /// kept, else one element per port.
    fn elements(&self) -> (&'static str, Vec<Element>) {
        let v6 = self.addr.is_ipv6();
        let any = self.host_ip.is_unspecified();
        // Ranges that keep their ports are intervals (a pipapo set, whose
        // updates cost more as it grows); single ports go to hash maps,
        // whose updates cost the same at any size.
        let keep = self.host_port == self.port && self.host_end != self.host_port;
        let name = match (v6, any, keep) {
            (false, false, false) => "dnat4",
            (false, false, true) => "dnat4_keep",
            (false, true, false) => "dnat4_any",
            (false, true, true) => "dnat4_any_keep",
            (true, false, false) => "dnat6",
            (true, false, true) => "dnat6_keep",
            (true, true, false) => "dnat6_any",
            (true, true, true) => "dnat6_any_keep",
        };
        let ip = |a: IpAddr| match a {
            IpAddr::V4(a) => nft::key::ipv4(a),
            IpAddr::V6(a) => nft::key::ipv6(a),
        };
        let proto = nft::key::inet_proto(self.proto.number());
        let daddr = ip(self.host_ip);
        let key = |port: u16| {
            let port = nft::key::inet_service(port);
            if any {
                nft::key::concat(&[&proto, &port])
            } else {
                nft::key::concat(&[&daddr, &proto, &port])
            }
        };
        let to = ip(self.addr);
        let elements = if keep {
            vec![
                Element::new(key(self.host_port))
                    .key_end(key(self.host_end))
                    .data(to),
            ]
        } else {
            (self.host_port..=self.host_end)
                .zip(self.port..)
                .map(|(h, c)| Element::new(key(h)).data(nft::key::concat(&[&to, &nft::key::inet_service(c)])))
                .collect()
        };
        (name, elements)
    }
}

/// What is in the table besides the skeleton, so that it can be put back.
#[derive(Default)]
struct Registry {
    /// While the daemon restores its state, changes are recorded here only
    /// and written by [`Firewall::install`] in one go.
    staging: bool,
    networks: BTreeMap<String, FwNetwork>,
    /// Published ports by owner (a container id).
    ports: BTreeMap<String, Vec<FwPort>>,
}

impl Registry {
    /// Adds every network's and every published port's elements to `batch`.
    fn add_to(&self, batch: &mut Batch) {
        for n in self.networks.values() {
            for (set, elems) in n.elements() {
                batch.add(Family::Inet, TABLE, set, elems);
            }
        }
        for p in self.ports.values().flatten() {
            let (map, elems) = p.elements();
            batch.add(Family::Inet, TABLE, map, elems);
        }
    }
}

/// An [`Error::Firewall`]: a batch that failed, and what it was for.
fn firewall(what: impl Into<String>, source: nft::NftError) -> Error {
    Error::Firewall {
        what: what.into(),
        source,
    }
}

/// The `inet berth` table in the host namespace.
pub struct Firewall {
    socket: nft::Socket,
    registry: Mutex<Registry>,
}

impl Firewall {
    /// Opens an nfnetlink socket in `host`; everything the firewall does
    /// goes through it. Checks nothing else yet.
    pub fn new(host: Arc<Netns>) -> Result<Self> {
        let socket = host.run(nft::Socket::open)?;
        Ok(Self {
            socket,
            registry: Mutex::new(Registry::default()),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording networks and ports instead of writing them, until
    /// [`Firewall::install`].
    pub fn stage(&self) {
        self.registry().staging = true;
    }

    /// Replaces the table with the skeleton and every network's and every
    /// published port's elements, in one netlink transaction (the old table
    /// goes in the same commit, so there is no moment without rules), and
    /// makes sure an iptables `FORWARD` policy cannot drop berth's traffic
    /// (see the module docs). Other tables are not touched. Used at start
    /// (after [`Firewall::stage`]) and to repair the table after someone
    /// flushed it (`berth system reconcile`, SIGHUP).
    pub fn install(&self) -> Result<()> {
        let mut reg = self.registry();
        reg.staging = false;
        let mut batch = Batch::new();
        // `table inet berth {}; delete table inet berth`: gone whether or
        // not it was there.
        batch.add_table(&Table::new(Family::Inet, TABLE));
        batch.delete_table(Family::Inet, TABLE);
        skeleton::add(&mut batch);
        reg.add_to(&mut batch);
        self.socket
            .apply(&batch)
            .map_err(|e| firewall("installing the firewall table", e))?;
        drop(reg);
        iptables::coexist(&self.socket);
        Ok(())
    }

    /// Removes the whole table (used when the last berth daemon of a test
    /// host goes away for good). Idempotent.
    pub fn remove(&self) -> Result<()> {
        let mut batch = Batch::new();
        batch.add_table(&Table::new(Family::Inet, TABLE));
        batch.delete_table(Family::Inet, TABLE);
        self.socket
            .apply(&batch)
            .map_err(|e| firewall("removing the firewall table", e))
    }

    /// Adds a network's elements in one netlink batch (or stages them).
    pub fn add_network(&self, net: &FwNetwork) -> Result<()> {
        let mut reg = self.registry();
        if let Some(old) = reg.networks.get(net.bridge.as_str())
            && old != net
            && !reg.staging
        {
            // Same bridge, other settings: out with the old elements first.
            let mut batch = Batch::new();
            for (set, elems) in old.elements() {
                batch.delete(Family::Inet, TABLE, set, elems);
            }
            let _ = self.socket.apply_idempotent(&batch);
        }
        reg.networks.insert(net.bridge.to_string(), net.clone());
        if reg.staging {
            return Ok(());
        }
        let mut batch = Batch::new();
        for (set, elems) in net.elements() {
            batch.add(Family::Inet, TABLE, set, elems);
        }
        self.socket
            .apply(&batch)
            .map_err(|e| firewall(format!("adding firewall elements for bridge {}", net.bridge), e))
    }

    /// Removes a network's elements. Idempotent: missing elements are fine.
    pub fn remove_network(&self, net: &FwNetwork) -> Result<()> {
        let mut reg = self.registry();
        reg.networks.remove(net.bridge.as_str());
        if reg.staging {
            return Ok(());
        }
        let mut batch = Batch::new();
        for (set, elems) in net.elements() {
            batch.delete(Family::Inet, TABLE, set, elems);
        }
        self.socket
            .apply_idempotent(&batch)
            .map_err(|e| firewall(format!("removing firewall elements for bridge {}", net.bridge), e))
    }

    /// Publishes `owner`'s ports (replacing any it had) in one netlink
    /// batch, or stages them. All or nothing.
    pub fn add_ports(&self, owner: &str, ports: &[FwPort]) -> Result<()> {
        let mut reg = self.registry();
        let old = reg.ports.get(owner).cloned().unwrap_or_default();
        if !reg.staging {
            let mut batch = Batch::new();
            for p in old.iter().filter(|p| !ports.contains(p)) {
                let (map, elems) = p.elements();
                batch.delete(Family::Inet, TABLE, map, elems);
            }
            if !batch.is_empty() {
                let _ = self.socket.apply_idempotent(&batch);
            }
            let mut batch = Batch::new();
            for p in ports {
                let (map, elems) = p.elements();
                batch.add(Family::Inet, TABLE, map, elems);
            }
            self.socket
                .apply(&batch)
                .map_err(|e| firewall(format!("publishing {} port bindings", ports.len()), e))?;
        }
        if ports.is_empty() {
            reg.ports.remove(owner);
        } else {
            reg.ports.insert(owner.to_owned(), ports.to_vec());
        }
        Ok(())
    }

    /// Unpublishes `owner`'s ports in one batch. Idempotent.
    pub fn remove_ports(&self, owner: &str) -> Result<()> {
        let mut reg = self.registry();
        let Some(old) = reg.ports.remove(owner) else {
            return Ok(());
        };
        if reg.staging {
            return Ok(());
        }
        let mut batch = Batch::new();
        for p in &old {
            let (map, elems) = p.elements();
            batch.delete(Family::Inet, TABLE, map, elems);
        }
        self.socket
            .apply_idempotent(&batch)
            .map_err(|e| firewall(format!("unpublishing {} port bindings", old.len()), e))
    }
}
