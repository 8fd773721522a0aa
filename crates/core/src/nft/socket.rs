//! [`Socket`]: one `NETLINK_NETFILTER` socket that sends batches and reads
//! their acknowledgements, with [`Socket::apply_idempotent`] for teardown.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket as NlSocket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::{TimeVal, TimeValLike};

use super::batch::{Batch, Kind, Op, Plan, validate};
use super::element::Family;
use super::error::NftError;
use super::netlink::{Attr, nfgenmsg, nlmsg_header, put_attr, set_bytes};
use super::reject::{Failure, Reject, describe};
use super::reply::{Acks, messages, parse_replies};
use super::uapi::{NFNL_SUBSYS_NFTABLES, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR};
use super::wire::encode;

/// Receive buffer room per reply: an ack is one small skb, but the kernel
/// charges the socket the skb's true size.
pub(super) const REPLY_ROOM: usize = 1024;
pub(super) const RX_LEN: usize = 128 * 1024;
/// How long to wait for acknowledgements still missing once the queue is
/// drained. The kernel answers inside `sendmsg`, so this only bounds a wait
/// that should never happen.
pub(super) const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A `NETLINK_NETFILTER` socket in the network namespace where it was
/// opened. It can be used from any thread; one batch is on the wire at a
/// time.
#[derive(Debug)]
pub struct Socket {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    sock: NlSocket,
    seq: u32,
    sndbuf: usize,
    rcvbuf: usize,
    rx: Vec<u8>,
}

impl Socket {
    /// Sends a get or dump request (not a transaction) and returns the
    /// attributes of each message of the answer: see [`super::dump`].
    pub(super) fn query(
        &self,
        what: &str,
        ty: u16,
        flags: u16,
        family: Family,
        attrs: &[Attr],
    ) -> Result<Vec<Vec<u8>>, NftError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.query(what, ty, flags, family, attrs)
    }

    /// Opens a socket in the calling thread's network namespace (to reach
    /// another namespace, open it on a thread inside it, as `Netns::run`
    /// does). Changing nftables needs `CAP_NET_ADMIN` there.
    pub fn open() -> io::Result<Self> {
        let mut sock = NlSocket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Both only shape the replies and the parser handles either shape:
        // CAP_ACK stops the kernel echoing a whole failed message (up to
        // 64 KiB) in its error, EXT_ACK adds which attribute it refused.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::milliseconds(500)).map_err(io::Error::from)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                sock,
                seq: 1,
                sndbuf: 0,
                rcvbuf: 0,
                rx: Vec::with_capacity(RX_LEN),
            }),
        })
    }

    /// Sends the batch as one transaction (`NFNL_MSG_BATCH_BEGIN`, the
    /// batch's messages, `NFNL_MSG_BATCH_END`, each with `NLM_F_ACK`) and
    /// reads every reply. All or nothing: on error the kernel applied none
    /// of it, and the error names the first operation the kernel refused.
    /// An empty batch sends nothing.
    pub fn apply(&self, batch: &Batch) -> Result<(), NftError> {
        let plan = Plan::whole(batch);
        match self.transact(batch, &plan) {
            Ok(()) => Ok(()),
            Err(Failure::Io(e)) => Err(e),
            Err(Failure::Rejected(rejects)) => Err(rejects.first().map_or_else(
                || NftError::new("applying a batch", None, libc::EIO),
                |r| describe(batch, r),
            )),
        }
    }

    /// Like [`apply`](Self::apply), but a deletion of an element that is not
    /// there is not an error, so teardown can run twice. What is there is
    /// still changed in one transaction. A missing table or set counts as a
    /// missing element for deletions; for additions it is an error.
    ///
    /// Kernels from 6.3 have `NFT_MSG_DESTROYSETELEM` for this; berth also
    /// runs on 6.1, so when a deletion fails with `ENOENT` the batch is sent
    /// again with those deletions one element per message (the kernel keeps
    /// checking after an error and reports each missing element), then a
    /// last time without the missing ones.
    pub fn apply_idempotent(&self, batch: &Batch) -> Result<(), NftError> {
        let mut plan = Plan::whole(batch);
        let mut last = None;
        // Each round either commits, fails for good, or learns which
        // deletions name missing elements; more than a few rounds means
        // someone else is changing the same sets meanwhile.
        for _ in 0..6 {
            let rejects = match self.transact(batch, &plan) {
                Ok(()) => return Ok(()),
                Err(Failure::Io(e)) => return Err(e),
                Err(Failure::Rejected(rejects)) => rejects,
            };
            let missing = |r: &Reject| {
                r.errno == libc::ENOENT
                    && r.op
                        .and_then(|op| batch.ops.get(op))
                        .is_some_and(|op| matches!(op, Op::Elements(op) if op.kind == Kind::Delete))
            };
            if let Some(fatal) = rejects.iter().find(|r| !missing(r)) {
                return Err(describe(batch, fatal));
            }
            // A message of one element that failed names a missing element:
            // leave it out. A longer one stopped at its first missing element
            // and says nothing of the rest: send that op one element per
            // message next time.
            let mut progress = false;
            let mut split = false;
            for r in &rejects {
                let Some(part) = r.op.and_then(|op| plan.ops.get_mut(op)) else {
                    continue;
                };
                match r.element {
                    Some(element) if r.alone => {
                        if let Some(i) = part.elements.iter().position(|&e| e == element) {
                            part.elements.remove(i);
                            progress = true;
                        }
                    }
                    _ if !part.single => {
                        part.single = true;
                        progress = true;
                        split = true;
                    }
                    _ => {}
                }
            }
            if !split {
                // The missing elements are out: back to full messages.
                for part in &mut plan.ops {
                    part.single = false;
                }
            }
            last = rejects.into_iter().next();
            if !progress {
                break;
            }
        }
        match last {
            Some(r) => Err(describe(batch, &r)),
            None => Ok(()),
        }
    }

    fn transact(&self, batch: &Batch, plan: &Plan) -> Result<(), Failure> {
        if plan.ops.iter().all(|p| p.elements.is_empty()) {
            return Ok(());
        }
        validate(batch)?;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let seq0 = inner.seq;
        let wire = encode(batch, plan, seq0)?;
        inner.seq = seq0.wrapping_add(wire.messages.len() as u32).wrapping_add(2);
        inner.reserve(wire.buf.len(), wire.messages.len() + 2);

        let what = || format!("sending a batch of {} bytes", wire.buf.len());
        inner
            .sock
            .send_to(&wire.buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| Failure::Io(NftError::io(what(), e)))?;

        let mut acks = Acks::new(seq0, &wire.messages);
        inner.read_replies(&mut acks, false)?;
        if acks.rejects.is_empty() && !acks.overrun && !acks.complete() {
            // Not expected: the kernel answers before sendmsg returns.
            inner.read_replies(&mut acks, true)?;
        }
        if !acks.rejects.is_empty() {
            let mut rejects = acks.rejects;
            rejects.sort_by_key(|r| r.order);
            return Err(Failure::Rejected(rejects.into_iter().map(|r| r.reject).collect()));
        }
        if acks.overrun {
            return Err(Failure::Io(NftError::new(
                "reading acknowledgements: some were dropped, the batch may or may not have been applied",
                None,
                libc::ENOBUFS,
            )));
        }
        if !acks.complete() {
            return Err(Failure::Io(NftError::new(
                "waiting for acknowledgements",
                None,
                libc::ETIMEDOUT,
            )));
        }
        Ok(())
    }
}

impl Inner {
    /// Sends one request outside a batch and collects its answer: the
    /// attributes (after `struct nfgenmsg`) of every nf_tables message with
    /// its sequence number, until `NLMSG_DONE` or an acknowledgement.
    fn query(
        &mut self,
        what: &str,
        ty: u16,
        flags: u16,
        family: Family,
        attrs: &[Attr],
    ) -> Result<Vec<Vec<u8>>, NftError> {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        let mut buf = Vec::new();
        nlmsg_header(
            &mut buf,
            NFNL_SUBSYS_NFTABLES << 8 | ty,
            NLM_F_REQUEST | flags,
            seq,
        );
        nfgenmsg(&mut buf, family.nfproto(), 0);
        for attr in attrs {
            put_attr(&mut buf, attr)
                .ok_or_else(|| NftError::new(what, Some("a message is too long".into()), libc::EMSGSIZE))?;
        }
        let len = buf.len() as u32;
        set_bytes(&mut buf, 0, &len.to_ne_bytes());
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| NftError::io(what, e))?;

        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            self.rx.clear();
            self.rx.reserve(RX_LEN);
            let len = match self.sock.recv(&mut self.rx, libc::MSG_TRUNC) {
                Ok(len) => len,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => continue,
                Err(e) => return Err(NftError::io(what, e)),
            };
            if len > self.rx.len() {
                let detail = format!("a reply of {len} bytes was truncated");
                return Err(NftError::new(what, Some(detail), libc::EMSGSIZE));
            }
            let malformed = |e| NftError::io(what, e);
            for m in messages(&self.rx).map_err(malformed)? {
                if m.seq != seq {
                    continue; // a late reply to an earlier request
                }
                match m.ty {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let mut failed = None;
                        if m.ty == NLMSG_ERROR {
                            parse_replies(&self.rx, |r| {
                                if r.seq == seq && r.error != 0 {
                                    failed = Some(r);
                                }
                            })
                            .map_err(malformed)?;
                        }
                        let error = m
                            .payload
                            .get(..4)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, i32::from_ne_bytes);
                        return match (error, failed) {
                            (0, _) => Ok(out),
                            (e, r) => Err(NftError::new(
                                what,
                                r.and_then(|r| r.msg),
                                e.checked_abs().unwrap_or(libc::EIO),
                            )),
                        };
                    }
                    _ => out.push(m.payload.get(4..).unwrap_or_default().to_vec()),
                }
            }
        }
        Err(NftError::new(what, Some("no answer".into()), libc::ETIMEDOUT))
    }

    /// Makes room for the batch in the send buffer (netlink refuses a
    /// message larger than `SO_SNDBUF`) and for every reply in the receive
    /// buffer (the kernel drops replies that do not fit). The `FORCE`
    /// variants pass `net.core.[wr]mem_max` and need `CAP_NET_ADMIN`.
    fn reserve(&mut self, bytes: usize, replies: usize) {
        let snd = bytes + 64 * 1024;
        if snd > self.sndbuf {
            if setsockopt(&self.sock, sockopt::SndBufForce, &snd).is_err() {
                let _ = setsockopt(&self.sock, sockopt::SndBuf, &snd);
            }
            self.sndbuf = snd;
        }
        let rcv = replies * REPLY_ROOM + 2 * RX_LEN;
        if rcv > self.rcvbuf {
            if setsockopt(&self.sock, sockopt::RcvBufForce, &rcv).is_err() {
                let _ = setsockopt(&self.sock, sockopt::RcvBuf, &rcv);
            }
            self.rcvbuf = rcv;
        }
    }

    /// Reads replies into `acks`: without `wait`, whatever is queued; with
    /// it, until every acknowledgement is in or [`ACK_TIMEOUT`] passes.
    fn read_replies(&mut self, acks: &mut Acks<'_>, wait: bool) -> Result<(), Failure> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        loop {
            if wait && (acks.complete() || !acks.rejects.is_empty() || Instant::now() > deadline) {
                return Ok(());
            }
            self.rx.clear();
            self.rx.reserve(RX_LEN);
            let len = match self.sock.recv(&mut self.rx, flags) {
                Ok(len) => len,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) if wait => continue,
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::ENOBUFS) => {
                        acks.overrun = true;
                        continue;
                    }
                    _ => return Err(Failure::Io(NftError::io("reading acknowledgements", e))),
                },
            };
            if len > self.rx.len() {
                return Err(Failure::Io(NftError::new(
                    format!("reading acknowledgements: a reply of {len} bytes was truncated"),
                    None,
                    libc::EMSGSIZE,
                )));
            }
            parse_replies(&self.rx, |reply| acks.record(reply))
                .map_err(|e| Failure::Io(NftError::io("reading acknowledgements", e)))?;
        }
    }
}
