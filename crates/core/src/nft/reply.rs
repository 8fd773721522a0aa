//! Reading the kernel's replies: acknowledgements and errors matched to the
//! messages of a batch, with the extended-ack details that say where a
//! message was refused.

use std::io;

use super::netlink::{align4, u16_at, u32_at};
use super::reject::{Reject, Spot};
use super::uapi::*;
use super::wire::Message;

/// The replies to one batch, matched by sequence number.
pub(super) struct Acks<'a> {
    pub(super) seq0: u32,
    pub(super) messages: &'a [Message],
    pub(super) acked: Vec<bool>,
    pub(super) missing: usize,
    pub(super) rejects: Vec<Ordered>,
    pub(super) overrun: bool,
}

pub(super) struct Ordered {
    pub(super) order: usize,
    pub(super) reject: Reject,
}

/// One `NLMSG_ERROR` reply: an ack when `error` is 0.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reply {
    pub(super) seq: u32,
    pub(super) error: i32,
    pub(super) msg: Option<String>,
    pub(super) offset: Option<u32>,
}

impl<'a> Acks<'a> {
    pub(super) fn new(seq0: u32, messages: &'a [Message]) -> Self {
        Self {
            seq0,
            messages,
            acked: vec![false; messages.len()],
            missing: messages.iter().filter(|m| m.ack).count(),
            rejects: Vec::new(),
            overrun: false,
        }
    }

    pub(super) fn complete(&self) -> bool {
        self.missing == 0
    }

    pub(super) fn record(&mut self, reply: Reply) {
        // Position in the batch: 0 is BATCH_BEGIN, messages.len() + 1 END.
        let order = reply.seq.wrapping_sub(self.seq0) as usize;
        if order > self.messages.len() + 1 {
            return; // a reply to an earlier batch that timed out
        }
        let message = order
            .checked_sub(1)
            .and_then(|i| self.messages.get(i).map(|m| (i, m)));
        if reply.error == 0 {
            if let Some((i, m)) = message
                && m.ack
                && let Some(acked) = self.acked.get_mut(i)
                && !*acked
            {
                *acked = true;
                self.missing -= 1;
            }
            return;
        }
        let errno = reply.error.checked_abs().unwrap_or(libc::EIO);
        let reject = match message {
            // An error on BATCH_BEGIN is the batch's: a failed commit.
            None => Reject {
                op: None,
                element: None,
                alone: false,
                at: None,
                errno,
                msg: reply.msg,
            },
            Some((_, m)) => {
                let (at, element) = locate(m, reply.offset);
                Reject {
                    op: Some(m.op),
                    element,
                    alone: m.ids.len() == 1,
                    at,
                    errno,
                    msg: reply.msg,
                }
            }
        };
        self.rejects.push(Ordered { order, reject });
    }
}

/// Maps an extack offset to what it points at in the message; a message
/// with one element is about that element.
pub(super) fn locate(m: &Message, offset: Option<u32>) -> (Option<Spot>, Option<usize>) {
    let single = || match m.ids.as_slice() {
        &[only] => Some(only),
        _ => None,
    };
    let Some(offset) = offset.map(|o| o as usize) else {
        return (None, single());
    };
    if m.table_at.contains(&offset) {
        return (Some(Spot::Table), single());
    }
    if m.set_at.contains(&offset) {
        return (Some(Spot::Set), single());
    }
    let element = m
        .element_at
        .iter()
        .position(|r| r.contains(&offset))
        .and_then(|i| m.ids.get(i).copied());
    (None, element.or_else(single))
}

/// Walks the netlink messages in one datagram and hands every
/// `NLMSG_ERROR` (acks included) to `f`.
pub(super) fn parse_replies(mut data: &[u8], mut f: impl FnMut(Reply)) -> io::Result<()> {
    let malformed = || io::Error::from_raw_os_error(libc::EPROTO);
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0).ok_or_else(malformed)? as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(malformed());
        }
        let ty = u16_at(data, 4).ok_or_else(malformed)?;
        let flags = u16_at(data, 6).ok_or_else(malformed)?;
        let seq = u32_at(data, 8).ok_or_else(malformed)?;
        if ty == NLMSG_ERROR {
            let payload = data.get(NLMSG_HDRLEN..len).ok_or_else(malformed)?;
            let error = u32_at(payload, 0).ok_or_else(malformed)? as i32;
            let mut reply = Reply {
                seq,
                error,
                ..Reply::default()
            };
            if flags & NLM_F_ACK_TLVS != 0 {
                // struct nlmsgerr, then the request: its header alone when
                // capped, else all of it; then the extack attributes.
                let request = if flags & NLM_F_CAPPED != 0 {
                    NLMSG_HDRLEN
                } else {
                    align4(u32_at(payload, 4).ok_or_else(malformed)? as usize)
                };
                let tlvs = payload.get(4 + request..).unwrap_or_default();
                parse_extack(tlvs, &mut reply);
            }
            f(reply);
        }
        data = data.get(align4(len)..).unwrap_or_default();
    }
    Ok(())
}

/// One netlink message of a datagram: its type, flags, sequence number and
/// what follows the header.
pub(super) struct Msg<'a> {
    pub(super) ty: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

/// Splits a datagram into its netlink messages.
pub(super) fn messages(mut data: &[u8]) -> io::Result<Vec<Msg<'_>>> {
    let malformed = || io::Error::from_raw_os_error(libc::EPROTO);
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0).ok_or_else(malformed)? as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(malformed());
        }
        out.push(Msg {
            ty: u16_at(data, 4).ok_or_else(malformed)?,
            seq: u32_at(data, 8).ok_or_else(malformed)?,
            payload: data.get(NLMSG_HDRLEN..len).ok_or_else(malformed)?,
        });
        data = data.get(align4(len)..).unwrap_or_default();
    }
    Ok(out)
}

pub(super) fn parse_extack(mut tlvs: &[u8], reply: &mut Reply) {
    while let (Some(len), Some(ty)) = (u16_at(tlvs, 0), u16_at(tlvs, 2)) {
        let len = len as usize;
        let Some(value) = tlvs.get(4..len.max(4)) else {
            return;
        };
        if len < 4 {
            return;
        }
        match ty & NLA_TYPE_MASK {
            NLMSGERR_ATTR_MSG => {
                let text = value.split(|&b| b == 0).next().unwrap_or_default();
                reply.msg = Some(String::from_utf8_lossy(text).into_owned());
            }
            NLMSGERR_ATTR_OFFS => reply.offset = u32_at(value, 0),
            _ => {}
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn replies_are_parsed_capped_or_not() {
        // A capped error with extack: nlmsgerr (error, request header),
        // then NLMSGERR_ATTR_MSG "bad" and NLMSGERR_ATTR_OFFS 44.
        #[rustfmt::skip]
        let capped: Vec<u8> = [
            &[52, 0, 0, 0, 2, 0, 0x00, 0x03, 5, 0, 0, 0, 0, 0, 0, 0][..],
            &(-libc::ENOENT).to_ne_bytes(),
            &[68, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x04, 5, 0, 0, 0, 0, 0, 0, 0],
            &[8, 0, 1, 0, b'b', b'a', b'd', 0],
            &[8, 0, 2, 0, 44, 0, 0, 0],
            // An ack for seq 6 in the same datagram.
            &[36, 0, 0, 0, 2, 0, 0x00, 0x01, 6, 0, 0, 0, 0, 0, 0, 0],
            &[0; 4],
            &[20, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x04, 6, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        let mut replies = Vec::new();
        parse_replies(&capped, |r| replies.push(r)).unwrap();
        assert_eq!(
            replies,
            [
                Reply {
                    seq: 5,
                    error: -libc::ENOENT,
                    msg: Some("bad".into()),
                    offset: Some(44)
                },
                Reply {
                    seq: 6,
                    ..Reply::default()
                },
            ]
        );
        // Not capped: the whole request (here 24 bytes) sits before the TLVs.
        #[rustfmt::skip]
        let full: Vec<u8> = [
            &[52, 0, 0, 0, 2, 0, 0x00, 0x02, 9, 0, 0, 0, 0, 0, 0, 0][..],
            &(-libc::EINVAL).to_ne_bytes(),
            &[24, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x04, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4],
            &[8, 0, 2, 0, 20, 0, 0, 0],
        ]
        .concat();
        replies.clear();
        parse_replies(&full, |r| replies.push(r)).unwrap();
        assert_eq!(
            replies,
            [Reply {
                seq: 9,
                error: -libc::EINVAL,
                msg: None,
                offset: Some(20)
            }]
        );
        // Garbage never panics.
        for cut in 0..capped.len() {
            let _ = parse_replies(&capped[..cut], |_| {});
            let _ = parse_replies(&capped[cut..], |_| {});
        }
    }
}
