//! The netlink framing nfnetlink messages are made of: the message and
//! `nfgenmsg` headers, attributes (the [`Attr`] tree, strings, nests) and
//! their 4-byte alignment, written and read.

use std::ops::Range;

use super::uapi::*;

/// `struct nlmsghdr`, its length filled in later; the port id is 0 (the
/// kernel's).
pub(super) fn nlmsg_header(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

/// `struct nfgenmsg`: family, `NFNETLINK_V0`, `res_id` in network order.
pub(super) fn nfgenmsg(buf: &mut Vec<u8>, family: u8, res_id: u16) {
    buf.push(family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&res_id.to_be_bytes());
}

/// A NUL-terminated string attribute; returns where it sits relative to
/// `base`.
pub(super) fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str, base: usize) -> Option<Range<usize>> {
    let at = buf.len();
    let len = u16::try_from(4 + s.len() + 1).ok()?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    pad(buf);
    Some(at - base..buf.len() - base)
}

/// A netlink attribute of a table, chain, set or rule message, or of an
/// expression: integers go big endian (`nla_put_be32`), as nf_tables
/// reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attr {
    U32(u16, u32),
    U64(u16, u64),
    /// NUL-terminated.
    Str(u16, String),
    Bytes(u16, Vec<u8>),
    Nest(u16, Vec<Attr>),
}

impl Attr {
    /// `nft_data` holding a value: `NEST { NFTA_DATA_VALUE }`.
    pub(super) fn value(ty: u16, value: impl Into<Vec<u8>>) -> Self {
        Self::Nest(ty, vec![Self::Bytes(NFTA_DATA_VALUE, value.into())])
    }
}

/// Appends `attr`, padded; `None` when a length does not fit its `u16`.
pub(super) fn put_attr(buf: &mut Vec<u8>, attr: &Attr) -> Option<()> {
    let raw = |buf: &mut Vec<u8>, ty: u16, value: &[u8]| {
        let len = u16::try_from(4 + value.len()).ok()?;
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(value);
        pad(buf);
        Some(())
    };
    match attr {
        Attr::U32(ty, v) => raw(buf, *ty, &v.to_be_bytes()),
        Attr::U64(ty, v) => raw(buf, *ty, &v.to_be_bytes()),
        Attr::Bytes(ty, v) => raw(buf, *ty, v),
        Attr::Str(ty, s) => {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            raw(buf, *ty, &v)
        }
        Attr::Nest(ty, attrs) => {
            let at = nest_start(buf, *ty);
            for a in attrs {
                put_attr(buf, a)?;
            }
            nest_end(buf, at)
        }
    }
}

/// Opens a nested attribute; returns where it starts, for [`nest_end`].
pub(super) fn nest_start(buf: &mut Vec<u8>, ty: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

/// Closes the nest opened at `at` by filling in its length; `None` when it
/// does not fit the `u16`.
pub(super) fn nest_end(buf: &mut [u8], at: usize) -> Option<()> {
    let len = u16::try_from(buf.len() - at).ok()?;
    set_bytes(buf, at, &len.to_ne_bytes());
    Some(())
}

/// Overwrites `bytes` at `at` (a length filled in later); out of range,
/// it writes nothing.
pub(super) fn set_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Pads `buf` with zeros to the next 4-byte boundary.
pub(super) fn pad(buf: &mut Vec<u8>) {
    buf.resize(align4(buf.len()), 0);
}

/// `NLMSG_ALIGN` and `NLA_ALIGN`: `len` rounded up to a multiple of 4.
pub(super) fn align4(len: usize) -> usize {
    len.next_multiple_of(4)
}

/// The attributes in `data` as (type without flags, value); stops at the
/// first malformed one. nf_tables dumps do not flag their nests
/// (`nla_nest_start_noflag`): the caller knows which values are nests.
pub(super) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(data, 0)? as usize;
        let ty = u16_at(data, 2)? & NLA_TYPE_MASK;
        let value = data.get(4..len.max(4)).filter(|_| len >= 4)?;
        data = data.get(align4(len)..).unwrap_or_default();
        Some((ty, value))
    })
}

/// The `u16` at `at` in host order, if `b` is long enough.
pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The `u32` at `at` in host order, if `b` is long enough.
pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
