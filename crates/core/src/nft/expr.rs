//! Rule expressions: the steps `nft --debug=netlink` prints between square
//! brackets (`[ meta load mark => reg 1 ]`), each built with the attributes
//! nft sends for it, and what they name: the [`Datatype`] a `meta` key
//! loads, the [`SetRef`] a `lookup` asks.

use super::element::Family;
use super::netlink::Attr;
use super::uapi::*;

/// A register (`enum nft_registers`), numbered as `nft --debug=netlink`
/// prints it: 0 is the verdict, 1 to 4 the 16-byte registers, 8 to 23 the
/// 4-byte ones. A 16-byte register `n` overlaps the 4-byte ones
/// `8 + 4(n-1)` to `11 + 4(n-1)`, so `reg 9` is the second word of `reg 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u32);

impl Reg {
    /// `NFT_REG_VERDICT`.
    pub const VERDICT: Self = Self(0);
    /// `NFT_REG_1`, where nft puts the first value of a rule.
    pub const R1: Self = Self(1);
}

/// A `meta` key (`enum nft_meta_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// `meta mark`: the packet mark, 4 bytes in host order.
    Mark = 3,
    /// `iifname`: the input interface's name, 16 bytes.
    Iifname = 6,
    /// `oifname`: the output interface's name, 16 bytes.
    Oifname = 7,
    /// `meta nfproto`: `NFPROTO_IPV4` or `NFPROTO_IPV6`, 1 byte.
    Nfproto = 15,
    /// `meta l4proto`: the transport protocol number, 1 byte.
    L4proto = 16,
}

impl Meta {
    pub(super) fn datatype(self) -> Datatype {
        match self {
            Self::Mark => Datatype::MARK,
            Self::Iifname | Self::Oifname => Datatype::IFNAME,
            Self::Nfproto => Datatype::NFPROTO,
            Self::L4proto => Datatype::INET_PROTO,
        }
    }
}

/// A conntrack key (`enum nft_ct_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct {
    /// `ct state`: a bit per state (`NF_CT_STATE_BIT`), 4 bytes.
    State = 0,
    /// `ct status`: the `IPS_*` bits, 4 bytes.
    Status = 2,
}

/// Where a `payload` load starts (`enum nft_payload_bases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `network header`: the IPv4 or IPv6 header.
    Network = 1,
    /// `transport header`: TCP, UDP, SCTP (`th` in nft).
    Transport = 2,
}

/// What a rule decides (`immediate reg 0 …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
}

/// An nft datatype a set key or map value is made of: its number (as
/// `nft describe` would name it), its length and its byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datatype {
    pub(super) id: u32,
    pub(super) len: u32,
    /// nft's `enum byteorder`: 1 host, 2 big endian.
    pub(super) byteorder: u32,
}

impl Datatype {
    /// `nf_proto` (`ipv4`, `ipv6`).
    pub const NFPROTO: Self = Self::new(2, 1, 1);
    /// `ipv4_addr`.
    pub const IPV4_ADDR: Self = Self::new(7, 4, 2);
    /// `ipv6_addr`.
    pub const IPV6_ADDR: Self = Self::new(8, 16, 2);
    /// `inet_proto`.
    pub const INET_PROTO: Self = Self::new(12, 1, 1);
    /// `inet_service`.
    pub const INET_SERVICE: Self = Self::new(13, 2, 2);
    /// `mark`.
    pub const MARK: Self = Self::new(19, 4, 1);
    /// `ifname`.
    pub const IFNAME: Self = Self::new(41, 16, 1);

    const fn new(id: u32, len: u32, byteorder: u32) -> Self {
        Self { id, len, byteorder }
    }
}

/// A set as a rule's `lookup` names it, returned by
/// [`Batch::add_set`](super::Batch::add_set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRef {
    pub(super) name: String,
    pub(super) id: Option<u32>,
}

impl SetRef {
    /// A set that exists already, by name (`@name` in nft).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            id: None,
        }
    }
}

/// One expression of a rule. Build it with the constructors; each says
/// what `nft --debug=netlink` prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub(super) name: &'static str,
    pub(super) data: Vec<Attr>,
}

impl Expr {
    fn new(name: &'static str, data: Vec<Attr>) -> Self {
        Self { name, data }
    }

    /// `[ meta load KEY => reg DREG ]`.
    pub fn meta(key: Meta, dreg: Reg) -> Self {
        Self::new(
            "meta",
            vec![
                Attr::U32(NFTA_META_KEY, key as u32),
                Attr::U32(NFTA_META_DREG, dreg.0),
            ],
        )
    }

    /// `[ meta set KEY with reg SREG ]`.
    pub fn meta_set(key: Meta, sreg: Reg) -> Self {
        Self::new(
            "meta",
            vec![
                Attr::U32(NFTA_META_KEY, key as u32),
                Attr::U32(NFTA_META_SREG, sreg.0),
            ],
        )
    }

    /// `[ payload load LENb @ HEADER header + OFFSET => reg DREG ]`.
    pub fn payload(header: Header, offset: u32, len: u32, dreg: Reg) -> Self {
        Self::new(
            "payload",
            vec![
                Attr::U32(NFTA_PAYLOAD_DREG, dreg.0),
                Attr::U32(NFTA_PAYLOAD_BASE, header as u32),
                Attr::U32(NFTA_PAYLOAD_OFFSET, offset),
                Attr::U32(NFTA_PAYLOAD_LEN, len),
            ],
        )
    }

    /// `[ ct load KEY => reg DREG ]`.
    pub fn ct(key: Ct, dreg: Reg) -> Self {
        Self::new(
            "ct",
            vec![
                Attr::U32(NFTA_CT_KEY, key as u32),
                Attr::U32(NFTA_CT_DREG, dreg.0),
            ],
        )
    }

    /// `[ fib daddr type => reg DREG ]`: the route type of the destination
    /// address (`RTN_LOCAL` is 2), 4 bytes in host order.
    pub fn fib_daddr_type(dreg: Reg) -> Self {
        Self::new(
            "fib",
            vec![
                Attr::U32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR),
                Attr::U32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE),
                Attr::U32(NFTA_FIB_DREG, dreg.0),
            ],
        )
    }

    /// `[ cmp eq reg SREG DATA ]`.
    pub fn cmp_eq(sreg: Reg, data: impl Into<Vec<u8>>) -> Self {
        Self::cmp(sreg, 0, data.into())
    }

    /// `[ cmp neq reg SREG DATA ]`.
    pub fn cmp_neq(sreg: Reg, data: impl Into<Vec<u8>>) -> Self {
        Self::cmp(sreg, 1, data.into())
    }

    fn cmp(sreg: Reg, op: u32, data: Vec<u8>) -> Self {
        Self::new(
            "cmp",
            vec![
                Attr::U32(NFTA_CMP_SREG, sreg.0),
                Attr::U32(NFTA_CMP_OP, op),
                Attr::value(NFTA_CMP_DATA, data),
            ],
        )
    }

    /// `[ bitwise reg DREG = ( reg SREG & MASK ) ^ XOR ]`, on as many bytes
    /// as `mask` has (`xor` must be as long).
    pub fn bitwise(sreg: Reg, dreg: Reg, mask: impl Into<Vec<u8>>, xor: impl Into<Vec<u8>>) -> Self {
        let mask = mask.into();
        Self::new(
            "bitwise",
            vec![
                Attr::U32(NFTA_BITWISE_SREG, sreg.0),
                Attr::U32(NFTA_BITWISE_DREG, dreg.0),
                Attr::U32(NFTA_BITWISE_LEN, mask.len() as u32),
                Attr::value(NFTA_BITWISE_MASK, mask),
                Attr::value(NFTA_BITWISE_XOR, xor),
            ],
        )
    }

    /// `[ byteorder reg DREG = hton(reg SREG, SIZE, LEN) ]`: nft puts one
    /// before a concatenated interval lookup, on the `meta l4proto` part.
    pub fn hton(sreg: Reg, dreg: Reg, size: u32, len: u32) -> Self {
        Self::new(
            "byteorder",
            vec![
                Attr::U32(NFTA_BYTEORDER_SREG, sreg.0),
                Attr::U32(NFTA_BYTEORDER_DREG, dreg.0),
                Attr::U32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON),
                Attr::U32(NFTA_BYTEORDER_LEN, len),
                Attr::U32(NFTA_BYTEORDER_SIZE, size),
            ],
        )
    }

    /// `[ lookup reg SREG set SET ]`, or with `dreg` a map lookup that puts
    /// the value in `dreg` (`[ lookup reg SREG set SET dreg DREG ]`). A
    /// miss ends the rule.
    pub fn lookup(sreg: Reg, set: &SetRef, dreg: Option<Reg>) -> Self {
        let mut data = vec![Attr::U32(NFTA_LOOKUP_SREG, sreg.0)];
        if let Some(dreg) = dreg {
            data.push(Attr::U32(NFTA_LOOKUP_DREG, dreg.0));
        }
        data.push(Attr::Str(NFTA_LOOKUP_SET, set.name.clone()));
        if let Some(id) = set.id {
            data.push(Attr::U32(NFTA_LOOKUP_SET_ID, id));
        }
        Self::new("lookup", data)
    }

    /// `[ immediate reg 0 VERDICT ]`.
    pub fn verdict(verdict: Verdict) -> Self {
        let (code, chain) = match verdict {
            Verdict::Accept => (libc::NF_ACCEPT, None),
            Verdict::Drop => (libc::NF_DROP, None),
            Verdict::Return => (NFT_RETURN, None),
            Verdict::Jump(chain) => (NFT_JUMP, Some(chain)),
        };
        let mut v = vec![Attr::U32(NFTA_VERDICT_CODE, code as u32)];
        v.extend(chain.map(|c| Attr::Str(NFTA_VERDICT_CHAIN, c)));
        Self::new(
            "immediate",
            vec![
                Attr::U32(NFTA_IMMEDIATE_DREG, Reg::VERDICT.0),
                Attr::Nest(NFTA_IMMEDIATE_DATA, vec![Attr::Nest(NFTA_DATA_VERDICT, v)]),
            ],
        )
    }

    /// `[ masq ]`: source NAT to the output interface's address.
    pub fn masquerade() -> Self {
        Self::new("masq", Vec::new())
    }

    /// `[ nat dnat FAMILY addr_min reg ADDR [proto_min reg PORT] ]`:
    /// destination NAT to the address in `addr` and, when given, the port
    /// in `port` (2 bytes, network order).
    pub fn dnat(family: Family, addr: Reg, port: Option<Reg>) -> Self {
        let mut data = vec![
            Attr::U32(NFTA_NAT_TYPE, NFT_NAT_DNAT),
            Attr::U32(NFTA_NAT_FAMILY, u32::from(family.nfproto())),
            Attr::U32(NFTA_NAT_REG_ADDR_MIN, addr.0),
        ];
        data.extend(port.map(|p| Attr::U32(NFTA_NAT_REG_PROTO_MIN, p.0)));
        Self::new("nat", data)
    }

    /// `[ counter pkts 0 bytes 0 ]`.
    pub fn counter() -> Self {
        Self::new(
            "counter",
            vec![
                Attr::U64(NFTA_COUNTER_BYTES, 0),
                Attr::U64(NFTA_COUNTER_PACKETS, 0),
            ],
        )
    }

    /// `[ match name NAME rev REV ]`: an xtables match run through
    /// `nft_compat`, with its `info` struct as the xtables module defines
    /// it (iptables-nft writes `-m comment` this way).
    pub fn xt_match(name: &str, rev: u32, info: impl Into<Vec<u8>>) -> Self {
        Self::new(
            "match",
            vec![
                Attr::Str(NFTA_MATCH_NAME, name.to_owned()),
                Attr::U32(NFTA_MATCH_REV, rev),
                Attr::Bytes(NFTA_MATCH_INFO, info.into()),
            ],
        )
    }

    /// `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }`.
    pub(super) fn attr(&self) -> Attr {
        Attr::Nest(
            NFTA_LIST_ELEM,
            vec![
                Attr::Str(NFTA_EXPR_NAME, self.name.to_owned()),
                Attr::Nest(NFTA_EXPR_DATA, self.data.clone()),
            ],
        )
    }
}
