//! What a batch changes: the table [`Family`] and the set or map
//! [`Element`]s, with [`prefix_elements`] for interval sets.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::key;
use super::netlink::align4;
use super::uapi::NFT_SET_ELEM_INTERVAL_END;

/// The address family of an nftables table (`nft list tables` prints it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `inet`: IPv4 and IPv6 (`NFPROTO_INET`).
    Inet,
    /// `ip`: IPv4 (`NFPROTO_IPV4`).
    Ip,
    /// `ip6`: IPv6 (`NFPROTO_IPV6`).
    Ip6,
    /// `bridge`: frames crossing a Linux bridge (`NFPROTO_BRIDGE`).
    Bridge,
}

impl Family {
    pub(super) fn nfproto(self) -> u8 {
        match self {
            Self::Inet => 1,
            Self::Ip => 2,
            Self::Bridge => 7,
            Self::Ip6 => 10,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Inet => "inet",
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
            Self::Bridge => "bridge",
        })
    }
}

/// One set or map element: a key, and for concatenated interval sets
/// ("pipapo") the range's last key, for maps the data, and for plain
/// interval sets the interval-end flag. Build keys with [`key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element {
    pub(super) key: Vec<u8>,
    pub(super) key_end: Option<Vec<u8>>,
    pub(super) data: Option<Vec<u8>>,
    pub(super) flags: u32,
}

impl Element {
    /// An element with this key (`NFTA_SET_ELEM_KEY`).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            key_end: None,
            data: None,
            flags: 0,
        }
    }

    /// Sets the last key of a range in a concatenated `flags interval` set
    /// (`NFTA_SET_ELEM_KEY_END`): `10.0.0.1 . tcp . 8080-8090` is key
    /// `10.0.0.1 . tcp . 8080` with key_end `10.0.0.1 . tcp . 8090`. Without
    /// one, such an element covers its key alone. Delete it with the same
    /// key and key_end.
    pub fn key_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.key_end = Some(end.into());
        self
    }

    /// Sets the value a map element maps its key to (`NFTA_SET_ELEM_DATA`).
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Marks the element as the first key after an interval in a plain
    /// (non-concatenated) `flags interval` set (`NFT_SET_ELEM_INTERVAL_END`).
    /// [`prefix_elements`] builds these pairs.
    pub fn interval_end(mut self) -> Self {
        self.flags |= NFT_SET_ELEM_INTERVAL_END;
        self
    }

    /// Encoded size inside the elements list: `NFTA_LIST_ELEM` holding key,
    /// key_end, data and flags.
    pub(super) fn encoded_len(&self) -> usize {
        let value = |v: &[u8]| 4 + 4 + align4(v.len());
        4 + value(&self.key)
            + self.key_end.as_deref().map_or(0, value)
            + self.data.as_deref().map_or(0, value)
            + if self.flags != 0 { 8 } else { 0 }
    }
}

/// The elements for one prefix in a plain (non-concatenated) `flags interval`
/// set, which the kernel keeps in an rbtree: the first address, and the first
/// address after the prefix flagged as interval end, as
/// `nft --debug=netlink add element inet t s { 10.0.0.0/24 }` sends them
/// (10.0.0.0, then 10.0.1.0 with flag 1). A prefix that runs to the top of
/// the address space (`0.0.0.0/0`, `255.255.255.0/24`) has no end element.
/// Host bits are cleared first: `10.0.0.7/24` gives the elements of
/// `10.0.0.0/24`. Delete a prefix by deleting the same elements.
pub fn prefix_elements(net: ipnet::IpNet) -> Vec<Element> {
    let (start, end) = match net.trunc() {
        ipnet::IpNet::V4(n) => (
            key::ipv4(n.network()),
            u32::from(n.broadcast())
                .checked_add(1)
                .map(|a| key::ipv4(Ipv4Addr::from(a))),
        ),
        ipnet::IpNet::V6(n) => (
            key::ipv6(n.network()),
            u128::from(n.broadcast())
                .checked_add(1)
                .map(|a| key::ipv6(Ipv6Addr::from(a))),
        ),
    };
    let mut elements = vec![Element::new(start)];
    elements.extend(end.map(|e| Element::new(e).interval_end()));
    elements
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().expect("a valid prefix")
    }

    fn keys(elements: &[Element]) -> Vec<(Vec<u8>, u32)> {
        elements.iter().map(|e| (e.key.clone(), e.flags)).collect()
    }

    #[test]
    fn prefix_elements_for_a_v4_slash_24() {
        assert_eq!(
            keys(&prefix_elements(net("10.0.0.0/24"))),
            [(vec![10, 0, 0, 0], 0), (vec![10, 0, 1, 0], 1)]
        );
    }

    #[test]
    fn prefix_elements_for_a_v4_slash_16_clear_host_bits() {
        let expected = [(vec![172, 18, 0, 0], 0), (vec![172, 19, 0, 0], 1)];
        assert_eq!(keys(&prefix_elements(net("172.18.0.0/16"))), expected);
        assert_eq!(keys(&prefix_elements(net("172.18.3.4/16"))), expected);
    }

    #[test]
    fn prefix_elements_for_a_v6_slash_64() {
        let start = key::ipv6("fd00::".parse().unwrap());
        let end = key::ipv6("fd00:0:0:1::".parse().unwrap());
        assert_eq!(keys(&prefix_elements(net("fd00::/64"))), [(start, 0), (end, 1)]);
    }

    #[test]
    fn prefix_elements_at_the_top_of_the_space_have_no_end() {
        assert_eq!(
            keys(&prefix_elements(net("255.255.255.0/24"))),
            [(vec![255, 255, 255, 0], 0)]
        );
        assert_eq!(keys(&prefix_elements(net("0.0.0.0/0"))), [(vec![0; 4], 0)]);
        assert_eq!(keys(&prefix_elements(net("::/0"))), [(vec![0; 16], 0)]);
        assert_eq!(
            keys(&prefix_elements(net("ffff::/16"))),
            [(key::ipv6("ffff::".parse().unwrap()), 0)]
        );
        // One address short of the top still has an end.
        assert_eq!(
            keys(&prefix_elements(net("255.255.255.254/32"))),
            [(vec![255, 255, 255, 254], 0), (vec![255, 255, 255, 255], 1)]
        );
    }
}
