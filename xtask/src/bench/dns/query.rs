//! The DNS bench's query loops, run from inside a container: sequential
//! and parallel, and the poll that times how soon a new container's name
//! answers.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use berth_testkit::dns::query_bytes;
use berth_testkit::hickory_proto::op::Message;
use berth_testkit::hickory_proto::rr::{RData, RecordType};

use super::{PARALLEL_CLIENTS, PARALLEL_TIME, QUERY_TIMEOUT, RESOLVABLE_WAIT, SLOW};
use crate::bench::resolver::{POLL_TIMEOUT, Subject, exchange, header, socket_in};
use crate::bench::{Samples, ms};

/// Checks that an answer gives `want` for `name`.
fn check_answer(buf: &[u8], name: &str, want: IpAddr) -> Result<()> {
    let m = Message::from_vec(buf).with_context(|| format!("the answer for {name} does not parse"))?;
    let got: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    ensure!(
        got.contains(&want),
        "{name} answered {} {got:?}, expected {want}",
        m.metadata.response_code
    );
    Ok(())
}

/// Whether `name` stops answering with an address inside `ns` (asked
/// again and again for at most `within`). Only for a name the resolver
/// forwards once it is gone.
fn gone(ns: &Path, server: SocketAddr, name: &str, within: Duration) -> Result<bool> {
    let sock = socket_in(ns, server, POLL_TIMEOUT)?;
    let mut q = query_bytes(0, name, RecordType::A);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    let mut id = 0u16;
    while Instant::now() < deadline {
        id = id.wrapping_add(1);
        if let Some(n) = exchange(&sock, &mut q, id, &mut buf)? {
            let (rcode, answers) = header(&buf[..n]);
            if rcode != 0 || answers == 0 {
                return Ok(true);
            }
        }
        // Not timed: gently, so as not to slow what it waits for.
        thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}

/// Sequential queries for one name.
#[derive(Default)]
pub(super) struct Sequential {
    pub(super) samples: Samples,
    /// Wall time of the timed loop.
    pub(super) elapsed: Duration,
    /// Queries that got no answer within [`QUERY_TIMEOUT`].
    pub(super) lost: usize,
    /// The loop hit its time bound before its count.
    pub(super) cut: bool,
}

impl Sequential {
    /// Adds another round's figures.
    pub(super) fn merge(&mut self, other: Sequential) {
        self.samples.0.extend(other.samples.0);
        self.elapsed += other.elapsed;
        self.lost += other.lost;
        self.cut |= other.cut;
    }

    pub(super) fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `warmup` untimed queries (the first answer checked to give `want`),
/// then up to `n` timed ones within `bound`, one at a time. An
/// answer that is not NOERROR with records is an error.
pub(super) fn sequential(
    sock: &UdpSocket,
    name: &str,
    want: IpAddr,
    warmup: usize,
    n: usize,
    bound: Duration,
) -> Result<Sequential> {
    let mut q = query_bytes(0, name, RecordType::A);
    let mut buf = [0u8; 4096];
    let mut id = 0u16;
    let mut ask = |buf: &mut [u8]| -> Result<Option<(usize, Duration)>> {
        id = id.wrapping_add(1);
        let t = Instant::now();
        let got = exchange(sock, &mut q, id, buf).with_context(|| format!("asking for {name}"))?;
        let took = t.elapsed();
        let Some(len) = got else { return Ok(None) };
        let (rcode, answers) = header(&buf[..len]);
        ensure!(
            rcode == 0 && answers > 0,
            "{name}: answer with RCODE {rcode} and {answers} records"
        );
        Ok(Some((len, took)))
    };
    let mut checked = false;
    let mut lost_warm = 0;
    for _ in 0..warmup.max(1) {
        match ask(&mut buf)? {
            Some((len, _)) if !checked => {
                check_answer(&buf[..len], name, want)?;
                checked = true;
            }
            Some(_) => {}
            None => lost_warm += 1,
        }
        ensure!(
            lost_warm < 3 || checked,
            "no answer for {name} ({lost_warm} tries)"
        );
    }
    ensure!(checked, "no answer for {name}");
    let mut out = Sequential::default();
    let start = Instant::now();
    let deadline = start + bound;
    while out.samples.len() + out.lost < n {
        if Instant::now() > deadline {
            out.cut = true;
            break;
        }
        match ask(&mut buf)? {
            Some((_, took)) => out.samples.push(took),
            None => out.lost += 1,
        }
    }
    out.elapsed = start.elapsed();
    ensure!(out.samples.len() > 0, "no answer for {name} in the timed loop");
    Ok(out)
}

/// Answers per second for `name` from [`PARALLEL_CLIENTS`] threads asking
/// one query at a time each, for [`PARALLEL_TIME`].
pub(super) fn parallel(ns: &Path, server: SocketAddr, name: &str) -> Result<f64> {
    let socks = (0..PARALLEL_CLIENTS)
        .map(|_| socket_in(ns, server, QUERY_TIMEOUT))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let deadline = start + PARALLEL_TIME;
    let counts = thread::scope(|s| {
        let hs: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(k, sock)| {
                s.spawn(move || -> Result<usize> {
                    let mut q = query_bytes(0, name, RecordType::A);
                    let mut buf = [0u8; 4096];
                    let mut id = (k as u16) << 12;
                    let mut answered = 0;
                    while Instant::now() < deadline {
                        id = id.wrapping_add(1);
                        if let Some(n) = exchange(sock, &mut q, id, &mut buf)? {
                            let (rcode, answers) = header(&buf[..n]);
                            ensure!(rcode == 0 && answers > 0, "{name}: answer with RCODE {rcode}");
                            answered += 1;
                        }
                    }
                    Ok(answered)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<usize>>>()
    })?;
    Ok(counts.iter().sum::<usize>() as f64 / start.elapsed().as_secs_f64())
}

/// How soon new containers' names resolve.
#[derive(Default)]
pub(super) struct Resolvable {
    /// From the start of the command to the first answer.
    pub(super) after_run: Samples,
    /// The command itself, start to exit.
    pub(super) run: Samples,
    /// Runs whose name answered before the command had exited.
    pub(super) before_exit: usize,
    /// Runs whose name did not answer within [`RESOLVABLE_WAIT`] (counted
    /// in `after_run` as that long).
    pub(super) unresolved: usize,
    /// Removed names that still answered [`RESOLVABLE_WAIT`] later.
    pub(super) unforgotten: usize,
    /// The runs bound hit before the count.
    pub(super) cut: bool,
}

/// How often the run → resolvable poller asks (the figure's resolution).
const POLL_EVERY: Duration = Duration::from_micros(250);

/// Asks for `name` every [`POLL_EVERY`] until it answers with an address,
/// `stop` is set or [`RESOLVABLE_WAIT`] has passed; says when it answered.
fn poll(sock: &UdpSocket, name: &str, stop: &AtomicBool, ready: mpsc::Sender<()>) -> Option<Instant> {
    let mut q = query_bytes(0, name, RecordType::A);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + RESOLVABLE_WAIT;
    let mut id = 0u16;
    let _ = ready.send(());
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        id = id.wrapping_add(1);
        let sent = Instant::now();
        match exchange(sock, &mut q, id, &mut buf) {
            Ok(Some(n)) => {
                let (rcode, answers) = header(&buf[..n]);
                if rcode == 0 && answers > 0 {
                    return Some(Instant::now());
                }
            }
            Ok(None) => {}
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
        // Paced, the same for every subject: back-to-back forwarded
        // queries would keep a core of this 2-core machine busy and slow
        // the very `run` being timed.
        thread::sleep(POLL_EVERY.saturating_sub(sent.elapsed()));
    }
    None
}

/// `runs` times: a poller starts asking for a fresh name, the subject
/// creates the container (timed from just before the command starts),
/// the poller reports when the name answered; the container goes again.
/// The runs stop (after the first) once `bound` has passed.
pub(super) fn resolvable(
    s: &mut dyn Subject,
    runs: usize,
    bound: Duration,
    progress: &dyn Fn(&str),
) -> Result<Resolvable> {
    let mut out = Resolvable::default();
    let deadline = Instant::now() + bound;
    for i in 1..=runs {
        if i > 1 && Instant::now() > deadline {
            out.cut = true;
            break;
        }
        let name = format!("fresh-{i}");
        s.prepare(&name)?;
        let sock = socket_in(s.client_ns(), s.server(), POLL_TIMEOUT)?;
        let stop = AtomicBool::new(false);
        let (ran, t0, found) = thread::scope(|sc| {
            let (ready, wait) = mpsc::channel();
            let poller = sc.spawn(|| poll(&sock, &name, &stop, ready));
            let _ = wait.recv();
            let t0 = Instant::now();
            let ran = s.run(&name);
            if ran.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            let found = poller.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (ran, t0, found)
        });
        let removed = s.remove(&name);
        let ran = ran.with_context(|| format!("creating {name}"))?;
        removed.with_context(|| format!("removing {name}"))?;
        let after = match found {
            Some(at) => at - t0,
            None => {
                out.unresolved += 1;
                RESOLVABLE_WAIT
            }
        };
        out.after_run.push(after);
        out.run.push(ran);
        if after < ran {
            out.before_exit += 1;
        }
        if i == 1 || i % 5 == 0 || after > SLOW {
            progress(&format!(
                "run {i}/{runs}: resolvable after {}{}, command took {}",
                if found.is_some() { "" } else { "more than " },
                ms(after),
                ms(ran)
            ));
        }
        // The next run starts once this name is forgotten.
        let t = Instant::now();
        if !gone(s.client_ns(), s.server(), &name, RESOLVABLE_WAIT)? {
            out.unforgotten += 1;
        }
        if t.elapsed() > SLOW {
            progress(&format!(
                "{name} was forgotten {} after its removal",
                ms(t.elapsed())
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::bench::resolver::TARGET;

    #[test]
    fn headers_and_answers_are_read() {
        let mut q = query_bytes(7, TARGET, RecordType::A);
        assert_eq!(header(&q), (0, 0));
        q[3] |= 3; // NXDOMAIN
        assert_eq!(header(&q).0, 3);
        let mut m = Message::from_vec(&query_bytes(7, TARGET, RecordType::A)).unwrap();
        m.add_answer(berth_testkit::hickory_proto::rr::Record::from_rdata(
            berth_testkit::hickory_proto::rr::Name::from_ascii(TARGET).unwrap(),
            60,
            RData::A(berth_testkit::hickory_proto::rr::rdata::A(Ipv4Addr::new(
                10, 0, 0, 3,
            ))),
        ));
        let b = m.to_vec().unwrap();
        assert_eq!(header(&b).1, 1);
        check_answer(&b, TARGET, "10.0.0.3".parse().unwrap()).unwrap();
        assert!(check_answer(&b, TARGET, "10.0.0.4".parse().unwrap()).is_err());
    }
}
