//! nftables set and map elements over nfnetlink, in one atomic batch.
//!
//! berth loads the skeleton of its `inet berth` table (chains, rules, set and
//! map declarations) with `nft -f -`; after that, every per-network and
//! per-container change is an element added to or deleted from a set or map.
//! This module sends those changes straight to the kernel as one nfnetlink
//! transaction, with the element messages `nft add element` and
//! `nft delete element` send, without starting a process per change.
//!
//! ```no_run
//! use berth_core::nft::{Batch, Element, Family, Socket, key};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let nft = Socket::open()?; // in the namespace that holds the table
//! let mut batch = Batch::new();
//! batch.add(Family::Inet, "berth", "bridges", vec![Element::new(key::ifname("br-1a2b3c"))]);
//! nft.apply(&batch)?; // nft add element inet berth bridges { "br-1a2b3c" }
//! # Ok(())
//! # }
//! ```
//!
//! A batch is all or nothing: the kernel checks every message, and commits
//! only if none failed. Replies arrive while `sendmsg` runs (the kernel
//! handles a netlink message to itself in the sender's context), so reading
//! them never waits on the kernel.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket as NlSocket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::{TimeVal, TimeValLike};

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const AF_UNSPEC: u8 = 0;

// <linux/netfilter/nfnetlink.h>
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END: u16 = 0x11;

// <linux/netfilter/nf_tables.h>
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
const NFT_DATA_VALUE_MAXLEN: usize = 64;
const NFT_NAME_MAXLEN: usize = 256; // including the NUL

/// Bytes of elements per message. The elements travel in one nested
/// attribute whose length is a `u16`, so a large operation is split into
/// several messages of the same transaction, as libnftnl does.
const ELEMENTS_PER_MESSAGE: usize = 60 * 1024;
/// Receive buffer room per reply: an ack is one small skb, but the kernel
/// charges the socket the skb's true size.
const REPLY_ROOM: usize = 1024;
const RX_LEN: usize = 128 * 1024;
/// How long to wait for acknowledgements still missing once the queue is
/// drained. The kernel answers inside `sendmsg`, so this only bounds a wait
/// that should never happen.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

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
    fn nfproto(self) -> u8 {
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
    key: Vec<u8>,
    key_end: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    flags: u32,
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
    fn encoded_len(&self) -> usize {
        let value = |v: &[u8]| 4 + 4 + align4(v.len());
        4 + value(&self.key)
            + self.key_end.as_deref().map_or(0, value)
            + self.data.as_deref().map_or(0, value)
            + if self.flags != 0 { 8 } else { 0 }
    }
}

/// Key and data encoders that match nft's datatypes byte for byte, as
/// `nft --debug=netlink add element ...` prints them.
pub mod key {
    use std::net::{Ipv4Addr, Ipv6Addr};

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
        let mut key = Vec::with_capacity(parts.iter().map(|p| super::align4(p.len())).sum());
        for part in parts {
            key.extend_from_slice(part);
            key.resize(super::align4(key.len()), 0);
        }
        key
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

/// One transaction: element additions and deletions on named sets and maps
/// of one or more tables, applied in order by [`Socket::apply`].
#[derive(Debug, Clone, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    family: Family,
    table: String,
    set: String,
    elements: Vec<Element>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Delete,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds elements to a set or map, like `nft add element` (not `create`):
    /// adding an element that is already there, with the same data, is not
    /// an error. Changing a map element's data takes a delete and an add in
    /// the same batch. An empty `elements` adds nothing.
    pub fn add(&mut self, family: Family, table: &str, set: &str, elements: Vec<Element>) -> &mut Self {
        self.push(Kind::Add, family, table, set, elements)
    }

    /// Deletes elements from a set or map, like `nft delete element`: an
    /// element that is not there fails the batch with `ENOENT`, unless it is
    /// applied with [`Socket::apply_idempotent`]. Map elements are matched by
    /// key alone; data may be left out. An empty `elements` deletes nothing.
    pub fn delete(&mut self, family: Family, table: &str, set: &str, elements: Vec<Element>) -> &mut Self {
        self.push(Kind::Delete, family, table, set, elements)
    }

    /// True when the batch holds no element to add or delete.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(
        &mut self,
        kind: Kind,
        family: Family,
        table: &str,
        set: &str,
        elements: Vec<Element>,
    ) -> &mut Self {
        if !elements.is_empty() {
            self.ops.push(Op {
                kind,
                family,
                table: table.to_owned(),
                set: set.to_owned(),
                elements,
            });
        }
        self
    }
}

/// Why a batch failed: what was being done (the operation, its set and
/// table, and where the kernel can tell, which element or name it refused),
/// and the errno, kept as the [`source`](std::error::Error::source) and by
/// [`errno`](NftError::errno).
///
/// Printed with its cause (`{:#}` in anyhow, [`crate::Error::chain`]):
/// `nftables: adding 2 elements to set inet berth bridges (at the set name):
/// No such file or directory (os error 2)`.
#[derive(Debug)]
pub struct NftError {
    what: String,
    detail: Option<String>,
    source: io::Error,
}

impl NftError {
    fn new(what: impl Into<String>, detail: Option<String>, errno: i32) -> Self {
        Self {
            what: what.into(),
            detail,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self {
            what: what.into(),
            detail: None,
            source,
        }
    }

    /// The errno the kernel (or the socket) reported, e.g. `libc::ENOENT`
    /// when the table, set or element to delete does not exist, `libc::EEXIST`
    /// when a map key is already mapped to other data, `libc::EINVAL` for a
    /// key of the wrong length.
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(libc::EIO)
    }
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nftables: {}", self.what)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NftError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<NftError> for io::Error {
    /// An `io::Error` of the same kind that wraps the `NftError`: it prints
    /// the same and its `source()` is the errno, but its own
    /// `raw_os_error()` is `None` (an `io::Error` holds an errno or a
    /// message, not both). Get the errno back by walking `source()` or by
    /// downcasting `get_ref()` to `NftError`.
    fn from(err: NftError) -> Self {
        io::Error::new(err.source.kind(), err)
    }
}

impl From<NftError> for crate::Error {
    /// An [`crate::Error::Kernel`] with the same message and errno.
    fn from(err: NftError) -> Self {
        let what = err.to_string();
        crate::Error::kernel(what, err.source)
    }
}

/// A `NETLINK_NETFILTER` socket in the network namespace where it was
/// opened. It can be used from any thread; one batch is on the wire at a
/// time.
#[derive(Debug)]
pub struct Socket {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    sock: NlSocket,
    seq: u32,
    sndbuf: usize,
    rcvbuf: usize,
    rx: Vec<u8>,
}

impl Socket {
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
    /// element messages, `NFNL_MSG_BATCH_END`, each with `NLM_F_ACK`) and
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
                        .is_some_and(|op| op.kind == Kind::Delete)
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

/// Which elements of each op go on the wire, and how.
struct Plan {
    ops: Vec<PlanOp>,
}

struct PlanOp {
    /// Indexes into the op's elements.
    elements: Vec<usize>,
    /// One element per message, without `NLM_F_ACK`: the kernel reports
    /// each failing element on its own.
    single: bool,
}

impl Plan {
    fn whole(batch: &Batch) -> Self {
        Self {
            ops: batch
                .ops
                .iter()
                .map(|op| PlanOp {
                    elements: (0..op.elements.len()).collect(),
                    single: false,
                })
                .collect(),
        }
    }
}

enum Failure {
    /// The kernel refused some messages (sorted by position in the batch).
    Rejected(Vec<Reject>),
    /// The batch could not be built, sent or answered.
    Io(NftError),
}

impl From<NftError> for Failure {
    fn from(e: NftError) -> Self {
        Self::Io(e)
    }
}

/// One message the kernel refused.
#[derive(Debug)]
struct Reject {
    /// The op, or `None` for the batch as a whole (a failed commit).
    op: Option<usize>,
    /// The op's element the kernel refused, when it says so.
    element: Option<usize>,
    /// The refused message carried this one element only.
    alone: bool,
    at: Option<Spot>,
    errno: i32,
    msg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spot {
    Table,
    Set,
}

/// Builds the error for a refused message.
fn describe(batch: &Batch, r: &Reject) -> NftError {
    let Some(op) = r.op.and_then(|i| batch.ops.get(i)) else {
        let what = format!("committing a batch of {} operations", batch.ops.len());
        return NftError::new(what, r.msg.clone(), r.errno);
    };
    let mut detail = match (r.at, r.element) {
        (Some(Spot::Table), _) => Some("at the table name".to_owned()),
        (Some(Spot::Set), _) => Some("at the set name".to_owned()),
        (None, Some(i)) => op.elements.get(i).map(|e| {
            format!(
                "at element {} of {}, key {}",
                i + 1,
                op.elements.len(),
                hex(&e.key)
            )
        }),
        (None, None) => None,
    };
    if let Some(msg) = &r.msg {
        detail = Some(match detail {
            Some(d) => format!("{d}: {msg}"),
            None => msg.clone(),
        });
    }
    NftError::new(op.describe(), detail, r.errno)
}

impl Op {
    fn describe(&self) -> String {
        let n = self.elements.len();
        let s = if n == 1 { "" } else { "s" };
        let (verb, prep) = match self.kind {
            Kind::Add => ("adding", "to"),
            Kind::Delete => ("deleting", "from"),
        };
        format!(
            "{verb} {n} element{s} {prep} set {} {} {}",
            self.family, self.table, self.set
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses, before anything is sent, what the kernel would refuse or what
/// could not be encoded: empty or over-long names, names with a NUL, keys
/// and data that are empty or longer than `NFT_DATA_VALUE_MAXLEN`.
fn validate(batch: &Batch) -> Result<(), NftError> {
    for op in &batch.ops {
        let fail = |detail: String| Err(NftError::new(op.describe(), Some(detail), libc::EINVAL));
        for (kind, name) in [("table", &op.table), ("set", &op.set)] {
            if name.is_empty() || name.len() >= NFT_NAME_MAXLEN || name.contains('\0') {
                return fail(format!(
                    "{kind} name {name:?} must be 1 to {} bytes without NUL",
                    NFT_NAME_MAXLEN - 1
                ));
            }
        }
        for (i, e) in op.elements.iter().enumerate() {
            let values = [
                ("key", Some(&e.key)),
                ("key end", e.key_end.as_ref()),
                ("data", e.data.as_ref()),
            ];
            for (kind, value) in values {
                if let Some(v) = value
                    && (v.is_empty() || v.len() > NFT_DATA_VALUE_MAXLEN)
                {
                    return fail(format!(
                        "element {}: the {kind} is {} bytes, not 1 to {NFT_DATA_VALUE_MAXLEN}",
                        i + 1,
                        v.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A batch on the wire.
struct Wire {
    buf: Vec<u8>,
    messages: Vec<Message>,
}

/// One element message of the batch: `seq` is `seq0 + 1 + index`.
#[derive(Debug)]
struct Message {
    op: usize,
    /// Element indexes of the op, in message order (for extack offsets).
    ids: Vec<usize>,
    ack: bool,
    /// Offsets of the table and set attributes, and of each element,
    /// from the start of the message.
    table_at: Range<usize>,
    set_at: Range<usize>,
    element_at: Vec<Range<usize>>,
}

fn encode(batch: &Batch, plan: &Plan, seq0: u32) -> Result<Wire, NftError> {
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
fn batch_marker(buf: &mut Vec<u8>, ty: u16, seq: u32) {
    let start = buf.len();
    nlmsg_header(buf, ty, NLM_F_REQUEST | NLM_F_ACK, seq);
    nfgenmsg(buf, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
    let len = (buf.len() - start) as u32; // 20
    set_bytes(buf, start, &len.to_ne_bytes());
}

/// `struct nlmsghdr`, its length filled in later; the port id is 0 (the
/// kernel's).
fn nlmsg_header(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

/// `struct nfgenmsg`: family, `NFNETLINK_V0`, `res_id` in network order.
fn nfgenmsg(buf: &mut Vec<u8>, family: u8, res_id: u16) {
    buf.push(family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&res_id.to_be_bytes());
}

/// A NUL-terminated string attribute; returns where it sits relative to
/// `base`.
fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str, base: usize) -> Option<Range<usize>> {
    let at = buf.len();
    let len = u16::try_from(4 + s.len() + 1).ok()?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    pad(buf);
    Some(at - base..buf.len() - base)
}

/// `NFTA_LIST_ELEM { KEY { VALUE }, KEY_END { VALUE }, DATA { VALUE }, FLAGS }`.
fn put_element(buf: &mut Vec<u8>, e: &Element) -> Option<()> {
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
fn put_value(buf: &mut Vec<u8>, ty: u16, value: &[u8]) -> Option<()> {
    let nest = nest_start(buf, ty);
    let len = u16::try_from(4 + value.len()).ok()?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&NFTA_DATA_VALUE.to_ne_bytes());
    buf.extend_from_slice(value);
    pad(buf);
    nest_end(buf, nest)
}

fn nest_start(buf: &mut Vec<u8>, ty: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    at
}

fn nest_end(buf: &mut [u8], at: usize) -> Option<()> {
    let len = u16::try_from(buf.len() - at).ok()?;
    set_bytes(buf, at, &len.to_ne_bytes());
    Some(())
}

fn set_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(align4(buf.len()), 0);
}

fn align4(len: usize) -> usize {
    len.next_multiple_of(4)
}

/// The replies to one batch, matched by sequence number.
struct Acks<'a> {
    seq0: u32,
    messages: &'a [Message],
    acked: Vec<bool>,
    missing: usize,
    rejects: Vec<Ordered>,
    overrun: bool,
}

struct Ordered {
    order: usize,
    reject: Reject,
}

/// One `NLMSG_ERROR` reply: an ack when `error` is 0.
#[derive(Debug, Default, PartialEq, Eq)]
struct Reply {
    seq: u32,
    error: i32,
    msg: Option<String>,
    offset: Option<u32>,
}

impl<'a> Acks<'a> {
    fn new(seq0: u32, messages: &'a [Message]) -> Self {
        Self {
            seq0,
            messages,
            acked: vec![false; messages.len()],
            missing: messages.iter().filter(|m| m.ack).count(),
            rejects: Vec::new(),
            overrun: false,
        }
    }

    fn complete(&self) -> bool {
        self.missing == 0
    }

    fn record(&mut self, reply: Reply) {
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
fn locate(m: &Message, offset: Option<u32>) -> (Option<Spot>, Option<usize>) {
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
fn parse_replies(mut data: &[u8], mut f: impl FnMut(Reply)) -> io::Result<()> {
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

fn parse_extack(mut tlvs: &[u8], reply: &mut Reply) {
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

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::thread;

    use nix::sched::{CloneFlags, unshare};
    use serde_json::{Value, json};

    use super::*;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().expect("a valid prefix")
    }

    fn keys(elements: &[Element]) -> Vec<(Vec<u8>, u32)> {
        elements.iter().map(|e| (e.key.clone(), e.flags)).collect()
    }

    #[test]
    fn constants_match_the_uapi_headers() {
        assert_eq!(NFNL_SUBSYS_NFTABLES as i32, libc::NFNL_SUBSYS_NFTABLES);
        assert_eq!(NFNL_MSG_BATCH_BEGIN as i32, libc::NFNL_MSG_BATCH_BEGIN);
        assert_eq!(NFNL_MSG_BATCH_END as i32, libc::NFNL_MSG_BATCH_END);
        assert_eq!(NFT_MSG_NEWSETELEM as i32, libc::NFT_MSG_NEWSETELEM);
        assert_eq!(NFT_MSG_DELSETELEM as i32, libc::NFT_MSG_DELSETELEM);
        assert_eq!(NFT_SET_ELEM_INTERVAL_END as i32, libc::NFT_SET_ELEM_INTERVAL_END);
        assert_eq!(NFT_DATA_VALUE_MAXLEN as i32, libc::NFT_DATA_VALUE_MAXLEN);
        assert_eq!(NLM_F_CAPPED as i32, libc::NLM_F_CAPPED);
        assert_eq!(NLM_F_ACK_TLVS as i32, libc::NLM_F_ACK_TLVS);
        assert_eq!(NLA_F_NESTED as i32, libc::NLA_F_NESTED);
        assert_eq!(NLA_TYPE_MASK, libc::NLA_TYPE_MASK as u16);
        assert_eq!(Family::Inet.nfproto() as i32, libc::NFPROTO_INET);
        assert_eq!(Family::Ip.nfproto() as i32, libc::NFPROTO_IPV4);
        assert_eq!(Family::Ip6.nfproto() as i32, libc::NFPROTO_IPV6);
        assert_eq!(Family::Bridge.nfproto() as i32, libc::NFPROTO_BRIDGE);
    }

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

    #[test]
    fn bad_elements_and_names_are_refused_before_sending() {
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "s", vec![Element::new(vec![0; 65])]);
        let err = validate(&batch).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(
            err.to_string().contains("element 1: the key is 65 bytes"),
            "{err}"
        );

        for (table, set) in [("", "s"), ("t", "a\0b"), ("t", &*"x".repeat(256))] {
            let mut batch = Batch::new();
            batch.delete(Family::Ip, table, set, vec![Element::new([1])]);
            assert_eq!(validate(&batch).unwrap_err().errno(), libc::EINVAL);
        }
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "s", Vec::new());
        assert!(batch.is_empty());
    }

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

    // Kernel tests: each runs in a fresh network namespace of its own.

    /// Runs `f` on a thread in a new network namespace holding table
    /// `inet t` loaded from `ruleset`; the namespace goes with the thread.
    fn in_netns<T: Send + 'static>(ruleset: &'static str, f: impl FnOnce() -> T + Send + 'static) -> T {
        thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| {
                panic!("unshare(CLONE_NEWNET) failed ({e}): these tests need root (CAP_SYS_ADMIN)")
            });
            nft_f(ruleset);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// `nft -f -`: children of this thread inherit its namespace.
    fn nft_f(script: &str) {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("running nft");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "nft -f - failed on:\n{script}");
    }

    /// The `elem` list of `nft -j list set|map inet t NAME` (empty when none).
    fn elems(kind: &str, name: &str) -> Value {
        let out = Command::new("nft")
            .args(["-j", "list", kind, "inet", "t", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nftables"][1][kind]["elem"].clone()
    }

    fn set_elems(name: &str) -> Value {
        let e = elems("set", name);
        if e.is_null() { json!([]) } else { e }
    }

    const TABLE: &str = "table inet t {
        set ifs { type ifname; }
        set pairs { type ifname . ifname; }
        set v4 { type ipv4_addr; flags interval; }
        set v6 { type ipv6_addr; flags interval; }
        set marks { type mark; }
        map ports {
            type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;
            flags interval;
        }
        map peers { type ipv4_addr : ifname; }
    }";

    fn ifs(names: &[&str]) -> Vec<Element> {
        names.iter().map(|n| Element::new(key::ifname(n))).collect()
    }

    #[test]
    fn adds_to_an_ifname_set() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ifs", ifs(&["br-1", "veth0"]));
            batch.add(Family::Inet, "t", "marks", vec![Element::new(key::mark(0x1234))]);
            nft.apply(&batch).unwrap();
            assert_eq!(set_elems("ifs"), json!(["br-1", "veth0"]));
            assert_eq!(set_elems("marks"), json!([4660]));
            // Adding what is there is fine (add, not create).
            nft.apply(&batch).unwrap();
            assert_eq!(set_elems("ifs"), json!(["br-1", "veth0"]));
        });
    }

    #[test]
    fn adds_to_an_ifname_pair_set() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let pair = key::concat(&[&key::ifname("br-abc"), &key::ifname("veth1")]);
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "pairs", vec![Element::new(pair)]);
            nft.apply(&batch).unwrap();
            assert_eq!(set_elems("pairs"), json!([{"concat": ["br-abc", "veth1"]}]));
        });
    }

    #[test]
    fn deleting_one_of_two_adjacent_prefixes_keeps_the_other() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let mut batch = Batch::new();
            for p in ["10.0.0.0/24", "10.0.1.0/24"] {
                batch.add(Family::Inet, "t", "v4", prefix_elements(net(p)));
            }
            for p in ["fd00::/64", "fd00:0:0:1::/64"] {
                batch.add(Family::Inet, "t", "v6", prefix_elements(net(p)));
            }
            nft.apply(&batch).unwrap();
            let prefix = |a: &str, l: u8| json!({"prefix": {"addr": a, "len": l}});
            assert_eq!(
                set_elems("v4"),
                json!([prefix("10.0.0.0", 24), prefix("10.0.1.0", 24)])
            );
            assert_eq!(
                set_elems("v6"),
                json!([prefix("fd00::", 64), prefix("fd00:0:0:1::", 64)])
            );

            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "v4", prefix_elements(net("10.0.0.0/24")));
            batch.delete(Family::Inet, "t", "v6", prefix_elements(net("fd00:0:0:1::/64")));
            nft.apply(&batch).unwrap();
            assert_eq!(set_elems("v4"), json!([prefix("10.0.1.0", 24)]));
            assert_eq!(set_elems("v6"), json!([prefix("fd00::", 64)]));
        });
    }

    #[test]
    fn a_prefix_at_the_top_of_the_space_goes_in_and_out() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "v4", prefix_elements(net("255.255.255.0/24")));
            nft.apply(&batch).unwrap();
            let listed = set_elems("v4");
            println!("255.255.255.0/24 without an end element lists as {listed}");
            assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "v4", prefix_elements(net("255.255.255.0/24")));
            nft.apply(&batch).unwrap();
            assert_eq!(set_elems("v4"), json!([]));
        });
    }

    #[test]
    fn maps_a_concatenated_port_range() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let ip = |s: &str| key::ipv4(s.parse().unwrap());
            let tcp = key::inet_proto(libc::IPPROTO_TCP as u8);
            let element = Element::new(key::concat(&[&ip("10.0.0.1"), &tcp, &key::inet_service(8080)]))
                .key_end(key::concat(&[&ip("10.0.0.1"), &tcp, &key::inet_service(8090)]))
                .data(key::concat(&[&ip("172.18.0.2"), &key::inet_service(80)]));
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ports", vec![element.clone()]);
            nft.apply(&batch).unwrap();
            assert_eq!(
                elems("map", "ports"),
                json!([[
                    {"concat": ["10.0.0.1", "tcp", {"range": [8080, 8090]}]},
                    {"concat": ["172.18.0.2", 80]}
                ]])
            );
            // Without a key_end an element covers its key alone.
            let single = Element::new(key::concat(&[&ip("10.0.0.2"), &tcp, &key::inet_service(53)]))
                .data(key::concat(&[&ip("172.18.0.3"), &key::inet_service(5353)]));
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ports", vec![single.clone()]);
            nft.apply(&batch).unwrap();
            assert_eq!(elems("map", "ports").as_array().map(Vec::len), Some(2));
            assert_eq!(
                elems("map", "ports")[1],
                json!([{"concat": ["10.0.0.2", "tcp", 53]}, {"concat": ["172.18.0.3", 5353]}])
            );

            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "ports", vec![element, single]);
            nft.apply(&batch).unwrap();
            assert!(elems("map", "ports").is_null());
        });
    }

    #[test]
    fn changing_a_map_value_is_a_delete_and_an_add() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let k = key::ipv4(Ipv4Addr::new(192, 168, 0, 2));
            let mut batch = Batch::new();
            batch.add(
                Family::Inet,
                "t",
                "peers",
                vec![Element::new(k.clone()).data(key::ifname("vx0"))],
            );
            nft.apply(&batch).unwrap();

            let mut batch = Batch::new();
            batch.add(
                Family::Inet,
                "t",
                "peers",
                vec![Element::new(k.clone()).data(key::ifname("vx1"))],
            );
            let err = nft.apply(&batch).unwrap_err();
            println!(
                "re-adding a map key with other data: {err}: {}",
                io::Error::from_raw_os_error(err.errno())
            );
            assert_eq!(err.errno(), libc::EEXIST, "{err}");

            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "peers", vec![Element::new(k.clone())]);
            batch.add(
                Family::Inet,
                "t",
                "peers",
                vec![Element::new(k).data(key::ifname("vx1"))],
            );
            nft.apply(&batch).unwrap();
            assert_eq!(elems("map", "peers"), json!([["192.168.0.2", "vx1"]]));
        });
    }

    #[test]
    fn a_missing_set_fails_with_enoent_and_names_the_set() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ifs", ifs(&["br-1"]));
            batch.add(Family::Inet, "t", "nosuch", ifs(&["br-1", "br-2"]));
            let err = nft.apply(&batch).unwrap_err();
            assert_eq!(err.errno(), libc::ENOENT);
            let source = std::error::Error::source(&err).unwrap().to_string();
            let full = format!("{err}: {source}");
            println!("{full}");
            assert!(
                full.starts_with("nftables: adding 2 elements to set inet t nosuch"),
                "{full}"
            );
            assert!(full.contains("set name"), "{full}");
            assert!(full.ends_with("No such file or directory (os error 2)"), "{full}");
            // All or nothing: the good op was not applied either.
            assert_eq!(set_elems("ifs"), json!([]));

            let chained = crate::Error::from(err);
            assert_eq!(chained.errno(), Some(libc::ENOENT));
            assert_eq!(chained.chain(), full);
        });
    }

    #[test]
    fn an_nft_error_as_an_io_error_keeps_kind_message_and_errno() {
        let err = NftError::new("deleting 1 element from set inet berth icc", None, libc::ENOENT);
        let text = err.to_string();
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
        assert_eq!(io_err.to_string(), text);
        let inner = io_err
            .get_ref()
            .and_then(|e| e.downcast_ref::<NftError>())
            .unwrap();
        assert_eq!(inner.errno(), libc::ENOENT);
        let source = std::error::Error::source(&io_err).unwrap();
        assert_eq!(
            source
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error),
            Some(libc::ENOENT)
        );
        let wrapped = crate::Error::kernel("removing firewall elements for bridge br0", io_err);
        assert_eq!(
            wrapped.chain(),
            format!(
                "removing firewall elements for bridge br0: {text}: No such file or directory (os error 2)"
            )
        );
    }
    #[test]
    fn a_missing_table_and_a_bad_key_are_reported_precisely() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let mut batch = Batch::new();
            batch.delete(Family::Ip, "t", "ifs", ifs(&["br-1"]));
            let err = nft.apply(&batch).unwrap_err();
            println!("{err}");
            assert_eq!(err.errno(), libc::ENOENT);
            assert!(
                err.to_string().contains("from set ip t ifs (at the table name"),
                "{err}"
            );

            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ifs", ifs(&["br-1", "br-2"]));
            batch.add(
                Family::Inet,
                "t",
                "ifs",
                vec![Element::new(key::ipv4(Ipv4Addr::LOCALHOST))],
            );
            let err = nft.apply(&batch).unwrap_err();
            println!("{err}");
            assert_eq!(err.errno(), libc::EINVAL);
            assert!(
                err.to_string().contains("at element 1 of 1, key 7f000001"),
                "{err}"
            );

            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "ifs", ifs(&["br-1"]));
            let err = nft.apply(&batch).unwrap_err();
            println!("{err}");
            assert_eq!(err.errno(), libc::ENOENT);
            assert!(err.to_string().contains("at element 1 of 1"), "{err}");
        });
    }

    #[test]
    fn apply_idempotent_skips_missing_deletions_only() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let present: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
            let mut batch = Batch::new();
            batch.add(
                Family::Inet,
                "t",
                "ifs",
                present.iter().map(|n| Element::new(key::ifname(n))).collect(),
            );
            nft.apply(&batch).unwrap();

            // Present and missing interleaved, plus a missing set, plus an add.
            let mut doomed = Vec::new();
            for (i, name) in present.iter().enumerate().take(40) {
                doomed.push(Element::new(key::ifname(name)));
                doomed.push(Element::new(key::ifname(&format!("gone{i}"))));
            }
            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "ifs", doomed);
            batch.delete(Family::Inet, "t", "nosuch", ifs(&["x"]));
            batch.add(
                Family::Inet,
                "t",
                "pairs",
                vec![Element::new(key::concat(&[&key::ifname("a"), &key::ifname("b")]))],
            );
            assert!(nft.apply(&batch).is_err());
            nft.apply_idempotent(&batch).unwrap();
            let left: Vec<String> = present[40..].to_vec();
            assert_eq!(set_elems("ifs"), json!(left));
            assert_eq!(set_elems("pairs"), json!([{"concat": ["a", "b"]}]));
            // Twice is fine.
            nft.apply_idempotent(&batch).unwrap();

            // An addition to a missing set is still an error.
            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "ifs", ifs(&["gone"]));
            batch.add(Family::Inet, "t", "nosuch", ifs(&["x"]));
            let err = nft.apply_idempotent(&batch).unwrap_err();
            assert_eq!(err.errno(), libc::ENOENT);
            assert!(
                err.to_string().contains("adding 1 element to set inet t nosuch"),
                "{err}"
            );
        });
    }

    #[test]
    fn five_thousand_elements_in_one_batch() {
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let elements: Vec<Element> = (0..5_000u32)
                .map(|i| {
                    let ip = Ipv4Addr::from(0x0a00_0000 + i);
                    Element::new(key::ipv4(ip)).data(key::ifname(&format!("vx{}", i % 100)))
                })
                .collect();
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "peers", elements.clone());
            let started = Instant::now();
            nft.apply(&batch).unwrap();
            let took = started.elapsed();
            println!("5,000-element map batch applied in {took:?}");
            assert_eq!(elems("map", "peers").as_array().map(Vec::len), Some(5_000));

            let mut single = Batch::new();
            single.add(
                Family::Inet,
                "t",
                "peers",
                vec![Element::new(key::ipv4(Ipv4Addr::new(10, 9, 9, 9))).data(key::ifname("vx0"))],
            );
            let started = Instant::now();
            nft.apply(&single).unwrap();
            println!("one element into a 5,000-element map in {:?}", started.elapsed());

            let mut batch = Batch::new();
            batch.delete(Family::Inet, "t", "peers", elements);
            let started = Instant::now();
            nft.apply(&batch).unwrap();
            println!("5,000 deletions in {:?}", started.elapsed());
            assert_eq!(elems("map", "peers").as_array().map(Vec::len), Some(1));
        });
    }

    #[test]
    fn ten_thousand_concatenated_ranges_in_one_batch() {
        // About 900 KB of messages: far more than the default socket buffer.
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            let tcp = key::inet_proto(6);
            let elements: Vec<Element> = (0..10_000u32)
                .map(|i| {
                    let ip = key::ipv4(Ipv4Addr::from(0x0a01_0000 + i));
                    Element::new(key::concat(&[&ip, &tcp, &key::inet_service(1000)]))
                        .key_end(key::concat(&[&ip, &tcp, &key::inet_service(2000)]))
                        .data(key::concat(&[&ip, &key::inet_service(80)]))
                })
                .collect();
            let mut batch = Batch::new();
            batch.add(Family::Inet, "t", "ports", elements);
            let started = Instant::now();
            nft.apply(&batch).unwrap();
            println!("10,000 concatenated ranges applied in {:?}", started.elapsed());
            assert_eq!(elems("map", "ports").as_array().map(Vec::len), Some(10_000));
        });
    }

    #[test]
    fn the_socket_is_send_and_sync_and_works_from_other_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Socket>();
        in_netns(TABLE, || {
            let nft = Socket::open().unwrap();
            thread::scope(|s| {
                for t in 0..4 {
                    let nft = &nft;
                    s.spawn(move || {
                        for i in 0..25 {
                            let mut batch = Batch::new();
                            batch.add(Family::Inet, "t", "ifs", ifs(&[&format!("t{t}i{i}")]));
                            nft.apply(&batch).unwrap();
                        }
                    });
                }
            });
            assert_eq!(set_elems("ifs").as_array().map(Vec::len), Some(100));
        });
    }
}
