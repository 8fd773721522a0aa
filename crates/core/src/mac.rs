//! [`Mac`]: an Ethernet address, parsed once at the edge.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A MAC address, written `02:42:ac:12:00:02` as `ip link` prints it.
///
/// The all-zero address means "none" (a host or none endpoint has no
/// interface): it is what an empty string in berth's records and in
/// Docker's JSON (`"MacAddress": ""`) stands for, both ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// No address.
    pub const ZERO: Mac = Mac([0; 6]);

    /// Docker's MAC for a container's IPv4 address: `02:42:` and the
    /// address's four bytes; a random locally administered unicast one
    /// without an address.
    pub fn for_ipv4(ipv4: Option<IpAddr>) -> Self {
        match ipv4 {
            Some(IpAddr::V4(a)) => {
                let o = a.octets();
                Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
            }
            _ => {
                let mut m: [u8; 6] = rand::random();
                m[0] = (m[0] & 0xfe) | 0x02;
                Mac(m)
            }
        }
    }

    /// Whether this is the all-zero "no address".
    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// Whether it is a group (multicast or broadcast) address, which no
    /// interface may take.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The six bytes, as netlink wants them.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = Error;

    /// Six pairs of hex digits separated by `:`, either case.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid(format!("invalid MAC address {s:?}"));
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            *b = parts
                .next()
                .filter(|p| p.len() == 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(bad)?;
        }
        match parts.next() {
            None => Ok(Mac(mac)),
            Some(_) => Err(bad()),
        }
    }
}

impl From<[u8; 6]> for Mac {
    fn from(b: [u8; 6]) -> Self {
        Mac(b)
    }
}

impl Serialize for Mac {
    /// `""` for [`Mac::ZERO`], else the usual form.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_zero() {
            s.serialize_str("")
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Mac {
    /// `""` is [`Mac::ZERO`]; anything else must parse.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(Mac::ZERO);
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_bad_ones_are_named() {
        let mac = Mac([0x02, 0x42, 0xac, 0x12, 0, 2]);
        assert_eq!(mac.to_string(), "02:42:ac:12:00:02");
        assert_eq!("02:42:AC:12:00:02".parse::<Mac>().unwrap(), mac);
        for bad in [
            "",
            "02:42",
            "02:42:ac:12:00:02:03",
            "zz:42:ac:12:00:02",
            "2:42:ac:12:00:02",
            "02-42-ac-12-00-02",
        ] {
            let e = bad.parse::<Mac>().unwrap_err().to_string();
            assert_eq!(e, format!("invalid MAC address {bad:?}"));
        }
    }

    #[test]
    fn macs_follow_docker() {
        assert_eq!(
            Mac::for_ipv4(Some("172.18.0.2".parse().unwrap())).to_string(),
            "02:42:ac:12:00:02"
        );
        let r = Mac::for_ipv4(None);
        assert_eq!(r.0[0] & 0x03, 0x02, "locally administered unicast");
        assert!(!r.is_multicast());
        assert!(Mac([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
    }

    #[test]
    fn zero_is_the_empty_string_in_json() {
        assert_eq!(serde_json::to_string(&Mac::ZERO).unwrap(), "\"\"");
        assert_eq!(serde_json::from_str::<Mac>("\"\"").unwrap(), Mac::ZERO);
        let m: Mac = serde_json::from_str("\"02:42:ac:12:00:02\"").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"02:42:ac:12:00:02\"");
        assert!(serde_json::from_str::<Mac>("\"nope\"").is_err());
    }
}
