//! How soon a new container of host A answers [`WATCHER`] on host B: from
//! the start of its `run -d` until the first echo reply, by address (given
//! to the run with `--ip`) or by name (asked at 127.0.0.11, then pinged).
//!
//! The probe is ping's work without ping: a raw ICMP socket inside the
//! watcher sends an echo request every [`POLL_EVERY`] and takes any reply
//! from the target, instead of a `ping -c1 -W1` process per try that
//! costs a fork and exec each time and waits a whole second for a reply
//! that is lost. The poller starts before the command, like the DNS
//! bench's.
//!
//! The watcher's kernel finds the target's MAC with ARP, which the overlay's
//! VXLAN device answers itself (`proxy`) once it holds the target's entry;
//! until then the request is dropped, and the kernel asks again only after
//! `retrans_time_ms`: 1 s by default, never less than HZ/100. A poll would
//! see the path up to that late, whoever programmed it. So with each echo
//! request the probe also sends an ARP request for the target itself, on a
//! packet socket on the watcher's `eth0` ([`Arp`]); the kernel takes the
//! answer into its pending neighbour entry, and the echo requests queued
//! there go out. Nothing of the containers is changed. After each run the
//! watcher's neighbour entries are flushed, so that every run resolves
//! afresh.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::dns::query_bytes;
use berth_testkit::hickory_proto::op::Message;
use berth_testkit::hickory_proto::rr::{RData, RecordType};
use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrLike,
    sockopt,
};
use nix::sys::time::TimeVal;

use crate::bench::resolver::{POLL_TIMEOUT, exchange, header, socket_in};
use crate::bench::two_hosts::Subject;
use crate::bench::{Samples, ms};

/// How often the poller asks (an echo and an ARP request, or a DNS query).
pub const POLL_EVERY: Duration = Duration::from_millis(1);
/// How long one run waits for a reply.
pub const REACH_WAIT: Duration = Duration::from_secs(10);
/// The first address that runs by address give their containers.
const FIRST_HOST: u8 = 100;
/// At most this many runs: their addresses must fit the /24.
pub const MAX_RUNS: usize = 150;
/// Where containers ask names.
const RESOLVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53));

/// How the watcher finds the new container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Address,
    Name,
}

impl By {
    pub fn word(self) -> &'static str {
        match self {
            By::Address => "address",
            By::Name => "name",
        }
    }
}

/// The figures of one subject's runs by one means.
#[derive(Default)]
pub struct Reach {
    /// From the start of `run -d` to the first echo reply (runs that got
    /// none count as [`REACH_WAIT`]).
    pub after_run: Samples,
    /// The command alone, start to exit.
    pub run: Samples,
    /// Runs that got no reply within [`REACH_WAIT`].
    pub unreached: usize,
    /// Runs whose container answered before its command had exited.
    pub before_exit: usize,
}

/// One run of `s` by `by`, its `i`th (from 1): the container `<by>-<i>`
/// is created on host A while the watcher polls for it, then removed.
/// Returns when it answered (after the start of its run), if it did,
/// and how long the command took.
pub fn once(s: &mut dyn Subject, by: By, i: usize) -> Result<(Option<Duration>, Duration)> {
    let name = format!("{}-{i}", by.word());
    let ip = match by {
        By::Address => {
            let n = u8::try_from(usize::from(FIRST_HOST) + i).context("too many runs for the /24")?;
            Some(s.address(n))
        }
        By::Name => None,
    };
    let watcher = s.watcher().to_owned();
    let icmp = Icmp::open(&watcher)?;
    let arp = Arp::open(&watcher)?;
    let dns = match by {
        By::Name => Some(socket_in(&watcher, RESOLVER, POLL_TIMEOUT)?),
        By::Address => None,
    };
    let stop = AtomicBool::new(false);
    let (ran, t0, found) = thread::scope(|sc| {
        let (ready, wait) = mpsc::channel();
        let poller = sc.spawn(|| watch(&icmp, &arp, dns.as_ref(), &name, ip, &stop, ready));
        let _ = wait.recv();
        let t0 = Instant::now();
        let ran = s.run(&name, ip);
        if ran.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let found = poller.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (ran, t0, found)
    });
    let removed = s.remove(&name);
    let flushed = berth_testkit::run_in(&watcher, "ip", &["neigh", "flush", "dev", "eth0"]);
    let ran = ran.with_context(|| format!("creating {name}"))?;
    let found = found.with_context(|| format!("watching for {name}"))?;
    removed.with_context(|| format!("removing {name}"))?;
    if flushed.code != 0 {
        bail!("flushing the watcher's neighbours: {}", flushed.stderr.trim());
    }
    Ok((found.map(|at| at - t0), ran))
}

impl Reach {
    /// Adds one run's outcome.
    pub fn add(&mut self, (after, ran): (Option<Duration>, Duration)) {
        match after {
            Some(a) => {
                self.after_run.push(a);
                if a < ran {
                    self.before_exit += 1;
                }
            }
            None => {
                self.after_run.push(REACH_WAIT);
                self.unreached += 1;
            }
        }
        self.run.push(ran);
    }

    /// A progress line for run `i`.
    pub fn line(&self, i: usize) -> String {
        let last = |s: &Samples| s.0.last().copied().map_or_else(|| "—".into(), ms);
        format!(
            "run {i}: reached after {}, command took {}",
            last(&self.after_run),
            last(&self.run)
        )
    }
}

/// The poller: resolves `name` first when it has no `ip`, then pings
/// until a reply comes, `stop` is set or [`REACH_WAIT`] has passed; when
/// the reply came.
fn watch(
    icmp: &Icmp,
    arp: &Arp,
    dns: Option<&UdpSocket>,
    name: &str,
    ip: Option<Ipv4Addr>,
    stop: &AtomicBool,
    ready: mpsc::Sender<()>,
) -> Result<Option<Instant>> {
    let deadline = Instant::now() + REACH_WAIT;
    let _ = ready.send(());
    let ip = match (ip, dns) {
        (Some(ip), _) => ip,
        (None, Some(sock)) => match resolve(sock, name, stop, deadline) {
            Some(ip) => ip,
            None => return Ok(None),
        },
        (None, None) => bail!("nothing to watch for {name}: no address and no resolver"),
    };
    icmp.connect(ip)?;
    let mut seq = 0u16;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        let sent = Instant::now();
        icmp.echo(seq)?;
        arp.ask(ip);
        if icmp.replied(sent + POLL_EVERY)? {
            return Ok(Some(Instant::now()));
        }
    }
    Ok(None)
}

/// Asks the watcher's resolver for `name` every [`POLL_EVERY`] until it
/// answers with an address, `stop` is set or `deadline` has passed.
fn resolve(sock: &UdpSocket, name: &str, stop: &AtomicBool, deadline: Instant) -> Option<Ipv4Addr> {
    let mut q = query_bytes(0, name, RecordType::A);
    let mut buf = [0u8; 4096];
    let mut id = 0u16;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        id = id.wrapping_add(1);
        let sent = Instant::now();
        // An error is an ICMP error for an earlier query: ask again.
        if let Ok(Some(n)) = exchange(sock, &mut q, id, &mut buf)
            && header(&buf[..n]).0 == 0
            && let Some(ip) = first_a(&buf[..n])
        {
            return Some(ip);
        }
        thread::sleep(POLL_EVERY.saturating_sub(sent.elapsed()));
    }
    None
}

/// The first IPv4 address of an answer.
fn first_a(answer: &[u8]) -> Option<Ipv4Addr> {
    Message::from_vec(answer)
        .ok()?
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
}

/// A raw ICMP socket inside a namespace: ping's, without its process.
struct Icmp {
    fd: OwnedFd,
    /// The echo identifier of this socket's requests.
    id: u16,
}

/// Gives each socket its own echo identifier.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

impl Icmp {
    /// Opens it inside the namespace at `ns`; a receive waits at most
    /// [`POLL_EVERY`].
    fn open(ns: &Path) -> Result<Self> {
        let fd = crate::bench::within(ns, || {
            let fd = socket::socket(
                AddressFamily::Inet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::Icmp,
            )?;
            let us = i64::try_from(POLL_EVERY.as_micros()).unwrap_or(1000);
            socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, us))?;
            Ok(fd)
        })
        .context("opening a raw ICMP socket")?;
        let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(1, Ordering::Relaxed).rotate_left(8);
        Ok(Self { fd, id })
    }

    /// From now on, sends to `ip` and receives only what comes from it.
    fn connect(&self, ip: Ipv4Addr) -> Result<()> {
        socket::connect(self.fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)))
            .with_context(|| format!("connecting a raw ICMP socket to {ip}"))
    }

    /// Sends echo request `seq`. A refusal from the kernel (no route or
    /// no neighbour yet) is not an error: the path is not there yet.
    fn echo(&self, seq: u16) -> Result<()> {
        match socket::send(
            self.fd.as_raw_fd(),
            &echo_request(self.id, seq),
            MsgFlags::empty(),
        ) {
            Ok(_) => Ok(()),
            Err(e) if not_yet(e) => Ok(()),
            Err(e) => Err(io::Error::from(e)).context("sending an echo request"),
        }
    }

    /// Whether an echo reply of this socket's came before `until`.
    fn replied(&self, until: Instant) -> Result<bool> {
        let mut buf = [0u8; 1500];
        while Instant::now() < until {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) if is_reply(&buf[..n], self.id) => return Ok(true),
                Ok(_) => {}
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) if not_yet(e) => {}
                Err(e) => return Err(io::Error::from(e)).context("receiving echo replies"),
            }
        }
        Ok(false)
    }
}

/// ARP requests sent from a namespace's `eth0` on a packet socket, as its
/// kernel would send them (see the module docs).
struct Arp {
    fd: OwnedFd,
    /// `eth0`, with the broadcast address as the frame's destination.
    to: LinkAddr,
    mac: [u8; 6],
    ip: Ipv4Addr,
}

impl Arp {
    /// Opens it inside the namespace at `ns`, whose `eth0` has an address.
    fn open(ns: &Path) -> Result<Self> {
        let (index, mac, ip) = eth0(ns)?;
        // Protocol 0: it sends, and receives nothing.
        let fd = crate::bench::within(ns, || {
            Ok(socket::socket(
                AddressFamily::Packet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?)
        })
        .context("opening a packet socket")?;
        let ll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: (libc::ETH_P_ARP as u16).to_be(),
            sll_ifindex: index,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
        };
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the pointer is to a whole, initialized sockaddr_ll of
        // that length, which from_raw copies.
        let to = unsafe { LinkAddr::from_raw(ptr::from_ref(&ll).cast(), Some(len)) }
            .context("making eth0's link-layer address")?;
        Ok(Self { fd, to, mac, ip })
    }

    /// Broadcasts a request for `target`'s MAC; a refusal is not an error.
    fn ask(&self, target: Ipv4Addr) {
        let _ = socket::sendto(
            self.fd.as_raw_fd(),
            &arp_request(self.mac, self.ip, target),
            &self.to,
            MsgFlags::empty(),
        );
    }
}

/// `eth0`'s index, MAC and IPv4 address inside `ns`, as `ip` shows them.
fn eth0(ns: &Path) -> Result<(i32, [u8; 6], Ipv4Addr)> {
    let link = berth_testkit::run_in(ns, "ip", &["-o", "link", "show", "dev", "eth0"]).stdout;
    let addr = berth_testkit::run_in(ns, "ip", &["-4", "-o", "addr", "show", "dev", "eth0"]).stdout;
    let parsed = || -> Option<(i32, [u8; 6], Ipv4Addr)> {
        let index = link.split(':').next()?.trim().parse().ok()?;
        let w: Vec<&str> = link.split_whitespace().collect();
        let mac = w.get(w.iter().position(|x| *x == "link/ether")? + 1)?;
        let mut bytes = [0u8; 6];
        for (b, h) in bytes.iter_mut().zip(mac.split(':')) {
            *b = u8::from_str_radix(h, 16).ok()?;
        }
        let w: Vec<&str> = addr.split_whitespace().collect();
        let ip = w
            .get(w.iter().position(|x| *x == "inet")? + 1)?
            .split('/')
            .next()?;
        Some((index, bytes, ip.parse().ok()?))
    };
    parsed().with_context(|| format!("reading eth0 in {}: {link:?} {addr:?}", ns.display()))
}

/// An ARP request (RFC 826) from `mac`/`ip` for `target`, over Ethernet.
fn arp_request(mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    p[24..].copy_from_slice(&target.octets());
    p
}

/// The errors that say the path is not there yet: the neighbour failed,
/// or an ICMP error came back for an earlier request.
fn not_yet(e: Errno) -> bool {
    matches!(
        e,
        Errno::EHOSTUNREACH | Errno::ENETUNREACH | Errno::ECONNREFUSED | Errno::EAGAIN
    )
}

/// The ones' complement of the ones' complement sum of 16-bit words
/// (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request (type 8) with an 8-byte payload.
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..].copy_from_slice(b"berth-ov");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Whether `packet` (an IPv4 header, then ICMP, as a raw socket gets it)
/// is an echo reply (type 0) with identifier `id`.
fn is_reply(packet: &[u8], id: u16) -> bool {
    let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    match packet.get(ihl..ihl + 8) {
        Some(icmp) => icmp[0] == 0 && icmp[4..6] == id.to_be_bytes(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_sums_to_zero() {
        let p = echo_request(0x1234, 7);
        assert_eq!((p[0], &p[4..8]), (8, &[0x12, 0x34, 0, 7][..]));
        assert_eq!(checksum(&p), 0);
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }

    #[test]
    fn an_arp_request_asks_for_the_target() {
        let p = arp_request(
            [2, 0x42, 10, 0, 0, 2],
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 9),
        );
        assert_eq!(&p[..8], &[0, 1, 8, 0, 6, 4, 0, 1], "Ethernet, IPv4, request");
        assert_eq!(&p[14..18], &[10, 0, 0, 2]);
        assert_eq!(&p[18..24], &[0; 6], "the MAC asked for");
        assert_eq!(&p[24..], &[10, 0, 0, 9]);
    }

    #[test]
    fn replies_are_told_by_type_and_identifier() {
        let mut packet = vec![0x45u8];
        packet.extend([0u8; 19]);
        let mut icmp = echo_request(0x1234, 1);
        icmp[0] = 0;
        packet.extend(icmp);
        assert!(is_reply(&packet, 0x1234));
        assert!(!is_reply(&packet, 0x1235));
        packet[20] = 8;
        assert!(!is_reply(&packet, 0x1234), "a request is no reply");
        assert!(!is_reply(&packet[..24], 0x1234), "too short");
    }
}
