//! A resolver as the DNS bench (`dns.rs`) measures it: the [`Subject`]
//! its peers (`aardvark.rs`, `docker.rs`) and berth implement, the
//! containers every subject has ([`CLIENT`], [`TARGET`]), the bench's
//! [`upstream`], and one query asked from inside a container.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_testkit::dns::{Upstream, query_bytes};
use berth_testkit::hickory_proto::rr::RecordType;

/// The container every query comes from.
pub const CLIENT: &str = "client";
/// The container whose name is asked for.
pub const TARGET: &str = "target";
/// A name only the bench's upstream knows.
pub const FORWARDED: &str = "forwarded.bench.test";
/// The upstream's answer for [`FORWARDED`]: a documentation address, only
/// ever data in an answer, never contacted.
pub const FORWARDED_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// How long a poll waits for one answer before it asks again (a resolver
/// that restarts its socket loses queries).
pub const POLL_TIMEOUT: Duration = Duration::from_millis(2);

/// One resolver with its containers, driven a step at a time.
pub trait Subject {
    /// The namespace of [`CLIENT`], where every query comes from.
    fn client_ns(&self) -> &Path;
    /// Where [`CLIENT`] asks.
    fn server(&self) -> SocketAddr;
    /// [`TARGET`]'s address, the expected answer.
    fn target_ip(&self) -> IpAddr;
    /// Checks, before any unknown name is sent, that the resolver forwards
    /// only to the bench's upstream; says why not otherwise.
    fn forwarding(&self) -> Result<(), String>;
    /// How many queries the bench's upstream has answered.
    fn upstream_seen(&self) -> usize;
    /// Untimed work before [`Subject::run`] (a namespace to attach).
    fn prepare(&mut self, _name: &str) -> Result<()> {
        Ok(())
    }
    /// Creates container `name` on the network, as a user would; the
    /// command's own duration.
    fn run(&mut self, name: &str) -> Result<Duration>;
    /// Removes container `name`, untimed.
    fn remove(&mut self, name: &str) -> Result<()>;
    /// Removes everything, saying what it found beyond the plan.
    fn close(self: Box<Self>) -> Vec<String> {
        Vec::new()
    }
}

/// The bench's upstream server inside `ns`, knowing only [`FORWARDED`].
pub fn upstream(ns: &Path, addr: SocketAddr) -> Upstream {
    Upstream::start(ns, addr, &[(FORWARDED, IpAddr::V4(FORWARDED_IP))])
}

/// A UDP socket inside the namespace at `ns`, connected to `server`. Only
/// a short-lived thread enters the namespace; the socket stays there.
pub fn socket_in(ns: &Path, server: SocketAddr, timeout: Duration) -> Result<UdpSocket> {
    super::within(ns, || {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        sock.connect(server)?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(sock)
    })
    .with_context(|| format!("opening a UDP socket to {server}"))
}

/// Sends `q` with `id` and waits for the answer with that id (skipping
/// late answers to earlier queries); `None` when it did not come in time.
pub fn exchange(s: &UdpSocket, q: &mut [u8], id: u16, buf: &mut [u8]) -> io::Result<Option<usize>> {
    q[..2].copy_from_slice(&id.to_be_bytes());
    s.send(q)?;
    loop {
        match s.recv(buf) {
            Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 => return Ok(Some(n)),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// RCODE and answer count from an answer's header.
pub fn header(buf: &[u8]) -> (u8, u16) {
    (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]]))
}

/// Whether `name` answers with an address from inside `ns`, asked again
/// and again for at most `within`.
pub fn resolves(ns: &Path, server: SocketAddr, name: &str, within: Duration) -> Result<bool> {
    let sock = socket_in(ns, server, POLL_TIMEOUT)?;
    let mut q = query_bytes(0, name, RecordType::A);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    let mut id = 0u16;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        match exchange(&sock, &mut q, id, &mut buf) {
            Ok(Some(n)) if header(&buf[..n]).0 == 0 && header(&buf[..n]).1 > 0 => return Ok(true),
            Ok(_) => {}
            // Nothing listens yet (ICMP port unreachable).
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_skips_stale_answers() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let t = thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            let mut stale = buf[..n].to_vec();
            stale[0] ^= 0xff;
            stale[2] |= 0x80;
            server.send_to(&stale, peer).unwrap();
            let mut good = buf[..n].to_vec();
            good[2] |= 0x80;
            server.send_to(&good, peer).unwrap();
            server
        });
        let mut q = query_bytes(0, TARGET, RecordType::A);
        let mut buf = [0u8; 512];
        let n = exchange(&client, &mut q, 0x0102, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..2], &[1, 2]);
        assert!(n >= 12);
        // The server is still there but answers nothing more: lost, not an error.
        let _server = t.join().unwrap();
        assert_eq!(exchange(&client, &mut q, 9, &mut buf).unwrap(), None);
    }
}
