//! Encoding a batch into the nfnetlink messages of one transaction.

use std::ops::Range;

use super::batch::{Batch, Kind, Op, Plan};
use super::element::Element;
use super::error::NftError;
use super::netlink::{Attr, nest_end, nest_start, nfgenmsg, nlmsg_header, pad, put_attr, put_str, set_bytes};
use super::uapi::*;

/// Bytes of elements per message. The elements travel in one nested
/// attribute whose length is a `u16`, so a large operation is split into
/// several messages of the same transaction, as libnftnl does.
pub(super) const ELEMENTS_PER_MESSAGE: usize = 60 * 1024;

/// A batch on the wire.
pub(super) struct Wire {
    pub(super) buf: Vec<u8>,
    pub(super) messages: Vec<Message>,
}

/// One message of the batch: `seq` is `seq0 + 1 + index`.
#[derive(Debug)]
pub(super) struct Message {
    pub(super) op: usize,
    /// Element indexes of the op, in message order (for extack offsets).
    pub(super) ids: Vec<usize>,
    pub(super) ack: bool,
    /// Offsets of the table and set attributes, and of each element,
    /// from the start of the message.
    pub(super) table_at: Range<usize>,
    pub(super) set_at: Range<usize>,
    pub(super) element_at: Vec<Range<usize>>,
}

pub(super) fn encode(batch: &Batch, plan: &Plan, seq0: u32) -> Result<Wire, NftError> {
    let mut buf = Vec::new();
    let mut messages = Vec::new();
    let mut seq = seq0;
    let too_long = || {
        NftError::new(
            "encoding a batch",
            Some("a message is too long".into()),
            libc::EMSGSIZE,
        )
    };

    batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, seq);
    for (o, (op, part)) in batch.ops.iter().zip(&plan.ops).enumerate() {
        let op = match op {
            Op::Elements(op) => op,
            Op::Object(object) => {
                seq = seq.wrapping_add(1);
                let start = buf.len();
                let flags = NLM_F_REQUEST | NLM_F_ACK | object.flags;
                nlmsg_header(&mut buf, NFNL_SUBSYS_NFTABLES << 8 | object.ty, flags, seq);
                nfgenmsg(&mut buf, object.family.nfproto(), 0);
                for attr in &object.attrs {
                    put_attr(&mut buf, attr).ok_or_else(too_long)?;
                }
                let len = u32::try_from(buf.len() - start).map_err(|_| too_long())?;
                set_bytes(&mut buf, start, &len.to_ne_bytes());
                messages.push(Message {
                    op: o,
                    ids: Vec::new(),
                    ack: true,
                    table_at: 0..0,
                    set_at: 0..0,
                    element_at: Vec::new(),
                });
                continue;
            }
        };
        let mut next = 0;
        while next < part.elements.len() {
            // Fill a message up to ELEMENTS_PER_MESSAGE (at least one element).
            let first = next;
            let mut bytes = 0;
            while let Some(&e) = part.elements.get(next) {
                let len = op.elements.get(e).map_or(0, Element::encoded_len);
                if next > first && (part.single || bytes + len > ELEMENTS_PER_MESSAGE) {
                    break;
                }
                bytes += len;
                next += 1;
            }
            seq = seq.wrapping_add(1);
            let ids: Vec<usize> = part.elements.get(first..next).unwrap_or_default().to_vec();
            let ack = !part.single;
            let (ty, mut flags) = match op.kind {
                Kind::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE),
                Kind::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST),
            };
            if ack {
                flags |= NLM_F_ACK;
            }
            let start = buf.len();
            nlmsg_header(&mut buf, NFNL_SUBSYS_NFTABLES << 8 | ty, flags, seq);
            nfgenmsg(&mut buf, op.family.nfproto(), 0);
            let table_at =
                put_str(&mut buf, NFTA_SET_ELEM_LIST_TABLE, &op.table, start).ok_or_else(too_long)?;
            let set_at = put_str(&mut buf, NFTA_SET_ELEM_LIST_SET, &op.set, start).ok_or_else(too_long)?;
            if let Some(id) = op.set_id {
                put_attr(&mut buf, &Attr::U32(NFTA_SET_ELEM_LIST_SET_ID, id)).ok_or_else(too_long)?;
            }
            let list = nest_start(&mut buf, NFTA_SET_ELEM_LIST_ELEMENTS);
            let mut element_at = Vec::with_capacity(ids.len());
            for e in ids.iter().filter_map(|&i| op.elements.get(i)) {
                let at = buf.len() - start;
                put_element(&mut buf, e).ok_or_else(too_long)?;
                element_at.push(at..buf.len() - start);
            }
            nest_end(&mut buf, list).ok_or_else(too_long)?;
            let len = u32::try_from(buf.len() - start).map_err(|_| too_long())?;
            set_bytes(&mut buf, start, &len.to_ne_bytes());
            messages.push(Message {
                op: o,
                ids,
                ack,
                table_at,
                set_at,
                element_at,
            });
        }
    }
    batch_marker(&mut buf, NFNL_MSG_BATCH_END, seq.wrapping_add(1));
    Ok(Wire { buf, messages })
}

/// `NFNL_MSG_BATCH_BEGIN` / `_END`: `res_id` names the subsystem. Kernels
/// from 6.10 ack these too; older ones ignore the flag, so only the element
/// messages' acks are awaited.
pub(super) fn batch_marker(buf: &mut Vec<u8>, ty: u16, seq: u32) {
    let start = buf.len();
    nlmsg_header(buf, ty, NLM_F_REQUEST | NLM_F_ACK, seq);
    nfgenmsg(buf, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    let len = (buf.len() - start) as u32; // 20
    set_bytes(buf, start, &len.to_ne_bytes());
}

/// `NFTA_LIST_ELEM { KEY { VALUE }, KEY_END { VALUE }, DATA { VALUE }, FLAGS }`.
pub(super) fn put_element(buf: &mut Vec<u8>, e: &Element) -> Option<()> {
    let elem = nest_start(buf, NFTA_LIST_ELEM);
    put_value(buf, NFTA_SET_ELEM_KEY, &e.key)?;
    if let Some(end) = &e.key_end {
        put_value(buf, NFTA_SET_ELEM_KEY_END, end)?;
    }
    if let Some(data) = &e.data {
        put_value(buf, NFTA_SET_ELEM_DATA, data)?;
    }
    if e.flags != 0 {
        // NLA_U32 in nf_tables means big endian (nla_put_be32).
        buf.extend_from_slice(&8u16.to_ne_bytes());
        buf.extend_from_slice(&NFTA_SET_ELEM_FLAGS.to_ne_bytes());
        buf.extend_from_slice(&e.flags.to_be_bytes());
    }
    nest_end(buf, elem)
}

/// A nested `nft_data` holding one `NFTA_DATA_VALUE`.
pub(super) fn put_value(buf: &mut Vec<u8>, ty: u16, value: &[u8]) -> Option<()> {
    let nest = nest_start(buf, ty);
    let len = u16::try_from(4 + value.len()).ok()?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&NFTA_DATA_VALUE.to_ne_bytes());
    buf.extend_from_slice(value);
    pad(buf);
    nest_end(buf, nest)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::nft::netlink::u32_at;
    use crate::nft::{Family, key};

    #[test]
    #[cfg(target_endian = "little")]
    fn one_element_add_encodes_like_nft() {
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ifs", vec![Element::new(key::ifname("eth0"))]);
        let wire = encode(&batch, &Plan::whole(&batch), 7).unwrap();
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            // BATCH_BEGIN: len 20, type 0x10, REQUEST|ACK, seq 7, pid 0,
            // nfgenmsg AF_UNSPEC, v0, res_id htons(NFNL_SUBSYS_NFTABLES).
            &[20, 0, 0, 0, 0x10, 0, 0x05, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10][..],
            // NEWSETELEM: len 68, type 10<<8|12, REQUEST|ACK|CREATE, seq 8;
            // nfgenmsg NFPROTO_INET.
            &[68, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x04, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
            // NFTA_SET_ELEM_LIST_TABLE "t\0", padded; NFTA_SET_ELEM_LIST_SET "ifs\0".
            &[6, 0, 1, 0, b't', 0, 0, 0],
            &[8, 0, 2, 0, b'i', b'f', b's', 0],
            // From here on the bytes nft sends (strace -xx):
            // ELEMENTS (nested) { LIST_ELEM (nested) { KEY (nested) { DATA_VALUE "eth0" NUL*12 } } }
            &[32, 0, 3, 0x80, 28, 0, 1, 0x80, 24, 0, 1, 0x80, 20, 0, 1, 0],
            b"eth0",
            &[0; 12],
            // BATCH_END, seq 9.
            &[20, 0, 0, 0, 0x11, 0, 0x05, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        ]
        .concat();
        assert_eq!(wire.buf, expected);
        assert_eq!(wire.messages.len(), 1);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn interval_end_map_data_and_key_end_encode_in_order() {
        let mut buf = Vec::new();
        let e = Element::new([1, 2, 3, 4])
            .key_end([5, 6, 7, 8])
            .data([9, 10])
            .interval_end();
        put_element(&mut buf, &e).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            48, 0, 1, 0x80,
            12, 0, 1, 0x80, 8, 0, 1, 0, 1, 2, 3, 4, // KEY
            12, 0, 10, 0x80, 8, 0, 1, 0, 5, 6, 7, 8, // KEY_END
            12, 0, 2, 0x80, 6, 0, 1, 0, 9, 10, 0, 0, // DATA, value padded
            8, 0, 3, 0, 0, 0, 0, 1, // FLAGS, big endian INTERVAL_END
        ];
        assert_eq!(buf, expected);
        assert_eq!(e.encoded_len(), expected.len());
    }

    #[test]
    fn large_operations_split_into_messages_that_fit_a_u16_nest() {
        let elements: Vec<Element> = (0..10_000u32)
            .map(|i| Element::new(key::ipv4(Ipv4Addr::from(i))).data(key::ifname("br-x")))
            .collect();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "berth", "m", elements);
        let wire = encode(&batch, &Plan::whole(&batch), 0).unwrap();
        assert!(wire.messages.len() > 1);
        let covered: usize = wire.messages.iter().map(|m| m.ids.len()).sum();
        assert_eq!(covered, 10_000);
        // Walk the messages: each carries one ELEMENTS nest below 64 KiB.
        let mut rest = wire.buf.get(20..).unwrap();
        for _ in &wire.messages {
            let len = u32_at(rest, 0).unwrap() as usize;
            assert!(len < 65_536, "message of {len} bytes");
            rest = &rest[len..];
        }
        assert_eq!(rest.len(), 20); // BATCH_END
    }
}
