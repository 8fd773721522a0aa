//! One container cannot stall the daemon: its `--dns` server is black-holed
//! (a namespace of the test that drops every packet it gets), its resolver
//! is flooded with TCP queries that must go there, and meanwhile the API
//! and another container's resolver answer as fast as they did before.
//! Nothing here leaves the test's namespaces.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::dns::{Upstream, query_bytes, try_ask};
use berth_testkit::hickory_proto::op::{Message, ResponseCode};
use berth_testkit::hickory_proto::rr::RecordType;
use berth_testkit::{TestHost, run_in};
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

const RESOLVER: &str = "127.0.0.11:53";
/// The resolver's bound on TCP connections per container.
const CONNECTIONS: usize = 32;

fn sandbox(h: &TestHost, c: &str) -> PathBuf {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).unwrap();
    PathBuf::from(v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap())
}

/// Keeps [`CONNECTIONS`] TCP connections to the resolver of the container
/// whose namespace is `ns` busy with queries for `name` until `stop` (or
/// `limit` passed): each sends a query, waits for its answer, sends the
/// next. Returns the threads and the count of answers they got.
fn tcp_flood(
    ns: &Path,
    name: &str,
    stop: &Arc<AtomicBool>,
    limit: Duration,
) -> (Vec<thread::JoinHandle<()>>, Arc<AtomicUsize>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let server: SocketAddr = RESOLVER.parse().unwrap();
    let deadline = Instant::now() + limit;
    let threads = (0..CONNECTIONS)
        .map(|i| {
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let (stop, answered) = (stop.clone(), answered.clone());
            thread::spawn(move || {
                let f = File::open(&ns).expect("opening the container's namespace");
                // SAFETY: setns on this test-owned thread only; the fd is open.
                assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
                let q = query_bytes(i as u16, &name, RecordType::A);
                let frame = [&(q.len() as u16).to_be_bytes()[..], &q].concat();
                // Bounded: by `stop`, by the deadline, and by a count.
                for _ in 0..1000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return;
                    }
                    let Ok(mut s) = TcpStream::connect_timeout(&server, Duration::from_secs(1)) else {
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    'queries: for _ in 0..100 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            return;
                        }
                        if s.write_all(&frame).is_err() {
                            break;
                        }
                        let mut len = [0u8; 2];
                        // The answer takes as long as the resolver waits for
                        // the black hole; poll so that `stop` is heard.
                        loop {
                            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                                return;
                            }
                            match s.read_exact(&mut len) {
                                Ok(()) => break,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                                Err(_) => break 'queries,
                            }
                        }
                        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                        if s.read_exact(&mut buf).is_err() {
                            break;
                        }
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        if Message::from_vec(&buf).is_ok() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    (threads, answered)
}

/// How long each probe takes, once: `berth network ls`, `berth ps`, the
/// bystander's resolver for a local name (UDP and TCP) and for a name it
/// forwards to the host's upstream. A probe that fails says why (a query
/// gets no answer within 3 s).
fn probe(h: &TestHost, bystander: &Path) -> Vec<(&'static str, Result<Duration, String>)> {
    let timed = |what: &'static str, f: &dyn Fn() -> Result<(), String>| {
        let start = Instant::now();
        (what, f().map(|()| start.elapsed()))
    };
    let server: SocketAddr = RESOLVER.parse().unwrap();
    let ask = |name: &str, tcp: bool, want: ResponseCode| {
        let a = try_ask(bystander, server, name, RecordType::A, tcp).map_err(|e| e.to_string())?;
        if a.rcode == want {
            Ok(())
        } else {
            Err(format!("{name}: {:?}, expected {want:?}", a.rcode))
        }
    };
    let api = |args: &[&str]| {
        let r = h.berth(args);
        if r.code == 0 { Ok(()) } else { Err(r.stderr) }
    };
    vec![
        timed("berth network ls", &|| api(&["network", "ls"])),
        timed("berth ps", &|| api(&["ps"])),
        timed("local name over UDP", &|| {
            ask("victim", false, ResponseCode::NoError)
        }),
        timed("local name over TCP", &|| {
            ask("victim", true, ResponseCode::NoError)
        }),
        timed("forwarded name", &|| {
            ask("upstream.test", false, ResponseCode::NoError)
        }),
    ]
}

#[test]
fn a_black_holed_dns_server_stalls_neither_the_api_nor_other_resolvers() {
    let mut h = TestHost::without_daemon(berth());
    // The host's resolver: a test upstream on the host's loopback.
    let conf = h.root.join("host-resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.53\n").unwrap();
    let _up = Upstream::start(
        &h.ns,
        "127.0.0.53:53".parse().unwrap(),
        &[("upstream.test", "198.51.100.7".parse().unwrap())],
    );
    h.start_daemon(&["--resolv-conf", conf.to_str().unwrap()]);
    // The black hole: a namespace behind the host that drops every IPv4
    // packet it gets (a TCP SYN to port 53 included), and counts them.
    let void = h.namespace("void");
    h.wire(&void, "void0", "203.0.113.1/24", "203.0.113.2/24");
    let r = run_in(
        &void,
        "nft",
        &[
            "add table ip void; add chain ip void in { type filter hook input priority 0; }; add rule ip void in tcp dport 53 counter drop; add rule ip void in counter drop",
        ],
    );
    assert_eq!(r.code, 0, "nft in the void namespace: {}", r.stderr);

    h.ok(&["network", "create", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--dns",
        "203.0.113.2",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "bystander",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    let (victim, bystander) = (sandbox(&h, "victim"), sandbox(&h, "bystander"));

    // Baseline: the slowest of five rounds of every probe, quiet machine.
    let mut baseline = Duration::ZERO;
    for _ in 0..5 {
        for (what, took) in probe(&h, &bystander) {
            let took = took.unwrap_or_else(|e| panic!("{what}, before the flood: {e}"));
            baseline = baseline.max(took);
        }
    }
    // Generous: a loaded machine must not fail this, a stall must.
    let bound = (baseline * 10).max(Duration::from_millis(1500));

    let stop = Arc::new(AtomicBool::new(false));
    let (threads, answered) = tcp_flood(&victim, "far.away.test", &stop, Duration::from_secs(30));
    // Let the flood fill the resolver's connections and forwards.
    thread::sleep(Duration::from_millis(500));
    let mut slow = Vec::new();
    let start = Instant::now();
    // Past two upstream timeouts (1.5 s each), bounded in rounds too.
    for round in 0..50 {
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
        for (what, took) in probe(&h, &bystander) {
            match took {
                Ok(took) if took <= bound => {}
                Ok(took) => slow.push(format!("round {round}: {what} took {took:?}")),
                Err(e) => slow.push(format!("round {round}: {what}: {e}")),
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    let flood_lasted = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        slow.is_empty(),
        "with the baseline at {baseline:?} (bound {bound:?}), during the flood:\n{}",
        slow.join("\n")
    );
    // The flood was real: it lasted past the upstream timeout, the
    // resolver answered it (SERVFAIL, the server being unreachable), and
    // the queries went to the black hole.
    assert!(flood_lasted > Duration::from_secs(3), "{flood_lasted:?}");
    assert!(answered.load(Ordering::Relaxed) > 0, "the flood got no answers");
    let counters = run_in(&void, "nft", &["list", "chain", "ip", "void", "in"]).stdout;
    let dropped: u64 = counters
        .lines()
        .find(|l| l.contains("dport 53"))
        .and_then(|l| l.split("packets ").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "no query reached the black hole:\n{counters}");
    // The daemon is still whole afterwards.
    let a = try_ask(
        &bystander,
        RESOLVER.parse().unwrap(),
        "victim",
        RecordType::A,
        false,
    )
    .unwrap();
    assert_eq!(a.records, [h.address("victim", "n")]);
}
