//! DNS from the test's side: ask a resolver from inside a namespace, and
//! run a small upstream server inside one, so no test ever sends a query
//! outside its own namespaces.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::Error;

/// A resolver's answer, as a test wants to look at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, SERVFAIL, …
    pub rcode: ResponseCode,
    /// The answer records' data, in the order given.
    pub records: Vec<String>,
    /// How long the round trip took.
    pub took: Duration,
}

fn enter(ns: &Path) -> std::io::Result<()> {
    let f = File::open(ns)?;
    // SAFETY: setns on the calling (short-lived, test-owned) thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A query for `name` of type `qtype` with id `id`.
pub fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a valid name"), qtype));
    m.to_vec().expect("encoding a query")
}

fn parse(bytes: &[u8], took: Duration) -> Result<Answer, Error> {
    let m = Message::from_vec(bytes).map_err(Error::Answer)?;
    Ok(Answer {
        rcode: m.metadata.response_code,
        records: m.answers.iter().map(|r| r.data.to_string()).collect(),
        took,
    })
}

/// Asks `server` (UDP, or TCP when `tcp`) from inside the namespace at
/// `ns`; `None` when nothing came back within 3 s.
pub fn ask(ns: &Path, server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Option<Answer> {
    try_ask(ns, server, name, qtype, tcp).ok()
}

/// [`ask`], with the reason when no answer came back within 3 s.
pub fn try_ask(
    ns: &Path,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    tcp: bool,
) -> Result<Answer, Error> {
    let ns = ns.to_owned();
    let name = name.to_owned();
    thread::spawn(move || -> Result<Answer, Error> {
        enter(&ns).map_err(|error| Error::Enter {
            path: ns.clone(),
            error,
        })?;
        let q = query_bytes(0x4242, &name, qtype);
        let start = Instant::now();
        let io = |call: &'static str| move |error: std::io::Error| Error::Socket { call, error };
        if tcp {
            let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(3)).map_err(io("connect"))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(io("timeout"))?;
            s.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat())
                .map_err(io("write"))?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).map_err(io("read"))?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).map_err(io("read"))?;
            parse(&buf, start.elapsed())
        } else {
            let s = UdpSocket::bind(("0.0.0.0", 0)).map_err(io("bind"))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(io("timeout"))?;
            s.send_to(&q, server).map_err(io("send"))?;
            let mut buf = [0u8; 4096];
            let n = s.recv(&mut buf).map_err(io("recv"))?;
            parse(&buf[..n], start.elapsed())
        }
    })
    .join()
    .map_err(|_| Error::Panicked)?
}

/// Sends `count` datagrams (every `garbage_every`th one random bytes, the
/// rest valid queries for `name`) to `server` from inside `ns` as fast as
/// it can, without waiting for answers; bounded by `limit` in time.
/// Returns how many it sent.
pub fn flood(
    ns: &Path,
    server: SocketAddr,
    name: &str,
    count: usize,
    garbage_every: usize,
    limit: Duration,
) -> usize {
    let ns = ns.to_owned();
    let name = name.to_owned();
    thread::spawn(move || {
        if enter(&ns).is_err() {
            return 0;
        }
        let Ok(s) = UdpSocket::bind(("0.0.0.0", 0)) else {
            return 0;
        };
        let _ = s.set_nonblocking(true);
        let q = query_bytes(1, &name, RecordType::A);
        let deadline = Instant::now() + limit;
        let mut sent = 0;
        let mut junk = 0x1234_5678u32;
        let mut buf = [0u8; 512];
        for i in 0..count {
            if Instant::now() > deadline {
                break;
            }
            let packet: &[u8] = if garbage_every > 0 && i % garbage_every == 0 {
                junk = junk.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = (junk % 300) as usize;
                for (j, b) in buf[..len].iter_mut().enumerate() {
                    *b = (junk >> (j % 24)) as u8;
                }
                &buf[..len]
            } else {
                &q
            };
            if s.send_to(packet, server).is_ok() {
                sent += 1;
            }
            // Drain answers now and then so the socket's buffer never blocks us.
            if i % 64 == 0 {
                let mut sink = [0u8; 1024];
                while s.recv(&mut sink).is_ok() {}
            }
        }
        sent
    })
    .join()
    .unwrap_or(0)
}

/// A small authoritative-for-everything DNS server inside a test
/// namespace: it answers the names it was given and NXDOMAIN for the rest,
/// over UDP, and counts the queries it saw. Stops when dropped.
pub struct Upstream {
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Upstream {
    /// Starts it on `addr` inside the namespace at `ns`.
    pub fn start(ns: &Path, addr: SocketAddr, records: &[(&str, IpAddr)]) -> Self {
        let ns = ns.to_owned();
        let records: Vec<(String, IpAddr)> = records
            .iter()
            .map(|(n, ip)| (n.trim_end_matches('.').to_lowercase(), *ip))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let sock = enter(&ns).and_then(|()| UdpSocket::bind(addr));
            let sock = match sock {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                seen2.fetch_add(1, Ordering::Relaxed);
                let mut m = Message::response(q.metadata.id, OpCode::Query);
                m.metadata.recursion_desired = q.metadata.recursion_desired;
                m.metadata.recursion_available = true;
                m.add_queries(q.queries.iter().cloned());
                let mut found = false;
                if let Some(question) = q.queries.first() {
                    let name = question.name().to_lowercase().to_ascii();
                    let name = name.trim_end_matches('.');
                    for (n, ip) in &records {
                        if n == name {
                            found = true;
                            let rdata = match (question.query_type(), ip) {
                                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
                                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                                _ => continue,
                            };
                            m.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
                        }
                    }
                }
                if !found {
                    m.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(out) = m.to_vec() {
                    let _ = sock.send_to(&out, peer);
                }
            }
        });
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("starting the test upstream on {addr}: {e}"),
            Err(_) => panic!("the test upstream thread died"),
        }
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// How many queries it answered.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
