//! Key and data encoders that match nft's datatypes byte for byte, as
//! `nft --debug=netlink add element ...` prints them.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::netlink::align4;

/// `ifname`: the name NUL-padded to `IFNAMSIZ` (16) bytes. A name longer
/// than 16 bytes is kept whole, so the kernel refuses it (`EINVAL`, wrong
/// key length) instead of matching a truncated name.
pub fn ifname(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    if key.len() < libc::IFNAMSIZ {
        key.resize(libc::IFNAMSIZ, 0);
    }
    key
}

/// `ipv4_addr`: 4 bytes in network order.
pub fn ipv4(a: Ipv4Addr) -> Vec<u8> {
    a.octets().to_vec()
}

/// `ipv6_addr`: 16 bytes in network order.
pub fn ipv6(a: Ipv6Addr) -> Vec<u8> {
    a.octets().to_vec()
}

/// `inet_service` (a port): 2 bytes, big endian.
pub fn inet_service(port: u16) -> Vec<u8> {
    port.to_be_bytes().to_vec()
}

/// `inet_proto` (`tcp` is 6, `udp` 17): 1 byte.
pub fn inet_proto(p: u8) -> Vec<u8> {
    vec![p]
}

/// `mark` (`meta mark`, `ct mark`): 4 bytes in host order, since nft's
/// mark type is host-endian.
pub fn mark(m: u32) -> Vec<u8> {
    m.to_ne_bytes().to_vec()
}

/// A concatenation (`a . b . c`): the parts in order, each zero-padded to
/// a multiple of 4 bytes (one 32-bit register per part or more, as nft
/// lays them out).
pub fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| align4(p.len())).sum());
    for part in parts {
        key.extend_from_slice(part);
        key.resize(align4(key.len()), 0);
    }
    key
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::nft::key;

    #[test]
    fn key_encoders_match_nft() {
        // As `nft --debug=netlink add element` prints them (u32 words in
        // host order): "eth0" is 30687465 00000000 00000000 00000000.
        let mut eth0 = b"eth0".to_vec();
        eth0.resize(16, 0);
        assert_eq!(key::ifname("eth0"), eth0);
        assert_eq!(key::ifname("fifteen-chars-x").len(), 16);
        assert_eq!(key::ifname("much-too-long-for-a-link").len(), 24);
        assert_eq!(key::ipv4(Ipv4Addr::new(10, 0, 0, 1)), [10, 0, 0, 1]);
        assert_eq!(
            key::ipv6("fd00::1".parse().unwrap()),
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(key::inet_service(8080), [0x1f, 0x90]);
        assert_eq!(key::inet_proto(6), [6]);
        assert_eq!(key::mark(0x12345678), 0x12345678u32.to_ne_bytes());
    }

    #[test]
    fn concat_pads_each_part_to_4_bytes() {
        // nft: 10.0.0.1 . tcp . 8080 is 0100000a 00000006 0000901f.
        let k = key::concat(&[
            &key::ipv4(Ipv4Addr::new(10, 0, 0, 1)),
            &key::inet_proto(6),
            &key::inet_service(8080),
        ]);
        assert_eq!(k, [10, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(key::concat(&[&key::ifname("a"), &key::ifname("b")]).len(), 32);
        assert_eq!(key::concat(&[&[1, 2, 3, 4, 5]]), [1, 2, 3, 4, 5, 0, 0, 0]);
        assert!(key::concat(&[]).is_empty());
    }
}
