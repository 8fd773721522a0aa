//! The isolation matrix: who reaches whom, over IPv4 and IPv6, on bridge
//! networks (default settings, `--internal`, icc=false, and a second
//! network) and macvlan networks (default and `--internal`), with the test
//! host, an outside client beyond it and a neighbour on the macvlan LAN.
//! Every ordered pair is probed and checked against Docker's verdict; the
//! matrix is printed. Then published ports from outside.
//!
//! The world, all namespaces of this test:
//!
//! ```text
//!   outside 203.0.113.2 fd99::2 ── up0 ── host 203.0.113.1 fd99::1
//!                                          │ bridges: plain, plain2, noicc, inner
//!                                          ├ lan0 10.72.0.254 fd72::fe ─ eth0 lan 10.72.0.100 fd72::100
//!                                          └ lan1 10.73.0.254 fd73::fe ─ eth1 lan 10.73.0.100 fd73::100
//! ```
//! lan0 is the parent of the macvlan network `mv` (its gateway is the host's
//! address on lan0), lan1 of the internal macvlan network `mvi`.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{TestHost, run_in};
use serde_json::Value;

/// What a network is, for the expected verdicts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Bridge { icc: bool, internal: bool },
    Macvlan { internal: bool },
}

/// Who takes part: a container on a network, or one of the namespaces
/// around the containers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Container(&'static str, Kind),
    Host,
    Outside,
    Lan,
}

struct Party {
    name: String,
    who: Who,
    ns: PathBuf,
    v4: String,
    v6: String,
}

const NETWORKS: &[(&str, Kind, &[&str])] = &[
    (
        "plain",
        Kind::Bridge {
            icc: true,
            internal: false,
        },
        &["--subnet", "10.70.0.0/24", "--subnet", "fd70::/64"],
    ),
    (
        "plain2",
        Kind::Bridge {
            icc: true,
            internal: false,
        },
        &["--subnet", "10.71.0.0/24", "--subnet", "fd71::/64"],
    ),
    (
        "noicc",
        Kind::Bridge {
            icc: false,
            internal: false,
        },
        &[
            "--subnet",
            "10.74.0.0/24",
            "--subnet",
            "fd74::/64",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
        ],
    ),
    (
        "inner",
        Kind::Bridge {
            icc: true,
            internal: true,
        },
        &["--internal", "--subnet", "10.75.0.0/24", "--subnet", "fd75::/64"],
    ),
    (
        "mv",
        Kind::Macvlan { internal: false },
        &[
            "-d",
            "macvlan",
            "-o",
            "parent=lan0",
            "--subnet",
            "10.72.0.0/24",
            "--gateway",
            "10.72.0.254",
            "--subnet",
            "fd72::/64",
            "--gateway",
            "fd72::fe",
        ],
    ),
    (
        "mvi",
        Kind::Macvlan { internal: true },
        &[
            "-d",
            "macvlan",
            "--internal",
            "-o",
            "parent=lan1",
            "--subnet",
            "10.73.0.0/24",
            "--subnet",
            "fd73::/64",
        ],
    ),
];

/// Docker's verdict: does `from` reach `to`?
fn expected(from: Who, to: Who) -> bool {
    use Kind::*;
    use Who::*;
    // A way out of the host: a bridge network that is not internal.
    let routed_out = |k: Kind| matches!(k, Bridge { internal: false, .. });
    match (from, to) {
        (Container(a, ka), Container(b, kb)) => {
            // Same network: unless icc=false. Different networks: never.
            a == b
                && match ka {
                    Bridge { icc, .. } => icc,
                    Macvlan { .. } => true,
                }
                && ka == kb
        }
        // The host reaches its bridges' containers (internal ones too),
        // never its macvlan children through their parent.
        (Host, Container(_, k)) => matches!(k, Bridge { .. }),
        // Bridge containers reach the host and, through it, the outside
        // and the LAN; macvlan children never reach the parent's host
        // (their gateway) so nothing beyond it either; internal: no way out.
        (Container(_, k), Host | Outside) => routed_out(k),
        (Container(_, k), Lan) => routed_out(k) || matches!(k, Macvlan { .. }),
        // Nothing comes in unasked through the host; a macvlan container
        // is on the LAN, where its neighbours reach it.
        (Outside, Container(..)) => false,
        (Lan, Container(_, k)) => matches!(k, Macvlan { .. }),
        // The host routes between its own links; berth leaves that alone.
        (Host | Outside | Lan, Host | Outside | Lan) => true,
    }
}

fn inspect(h: &TestHost, name: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", name])).expect("inspect prints JSON");
    v[0].clone()
}

/// The address of `to` as seen from `from`: the LAN neighbour is asked on
/// the subnet of an `mvi` container, else on lan0's.
fn target(from: &Party, to: &Party, v6: bool) -> String {
    if to.who == Who::Lan && matches!(from.who, Who::Container(n, _) if n == "mvi") {
        return if v6 { "fd73::100" } else { "10.73.0.100" }.to_owned();
    }
    if v6 { to.v6.clone() } else { to.v4.clone() }
}

/// Pings every address of `targets` at once from inside `ns`, each at
/// most twice (1 s, then 2 s); returns which answered.
fn probe_all(ns: &Path, targets: &[String]) -> BTreeMap<String, bool> {
    let script: String = targets
        .iter()
        .map(|t| {
            format!(
                "(if ping -c1 -W1 {t} >/dev/null 2>&1 || ping -c1 -W2 {t} >/dev/null 2>&1; \
                 then echo {t} 1; else echo {t} 0; fi) & "
            )
        })
        .chain(std::iter::once("wait".to_owned()))
        .collect();
    let r = run_in(ns, "sh", &["-c", &script]);
    let seen: BTreeMap<String, bool> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(ip, ok)| (ip.to_owned(), ok == "1"))
        .collect();
    assert_eq!(
        seen.len(),
        targets.len(),
        "probes from {}: {}{}",
        ns.display(),
        r.stdout,
        r.stderr
    );
    seen
}

/// Listens on TCP `port` (IPv4 and IPv6) inside `ns` until dropped,
/// accepting and closing every connection.
struct Listener(Arc<AtomicBool>, Option<thread::JoinHandle<()>>);

impl Listener {
    fn start(ns: &Path, port: u16) -> Self {
        let f = File::open(ns).expect("opening a namespace");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let t = thread::spawn(move || {
            // SAFETY: setns on this thread only; the fd is open.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = tx.send(false);
                return;
            }
            let Ok(l) = std::net::TcpListener::bind(("::", port)) else {
                let _ = tx.send(false);
                return;
            };
            let _ = l.set_nonblocking(true);
            let _ = tx.send(true);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                if l.accept().is_err() {
                    thread::sleep(Duration::from_millis(5));
                }
            }
        });
        assert_eq!(rx.recv().ok(), Some(true), "listening in {}", ns.display());
        Self(stop, Some(t))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Whether a TCP connection from `ns` to `ip`:`port` is accepted: two
/// tries, of 2 s then 3 s (a loaded machine can lose the first SYN's
/// neighbour resolution).
fn connects(ns: &Path, ip: &str, port: u16) -> bool {
    let once = |t| format!("timeout {t} bash -c 'echo hi > /dev/tcp/{ip}/{port}' 2>/dev/null");
    let script = format!("{} || {}", once(2), once(3));
    run_in(ns, "bash", &["-c", &script]).code == 0
}

/// [`connects`] for every `(ip, port)` at once.
fn connects_all(ns: &Path, targets: &[(String, u16)]) -> Vec<bool> {
    thread::scope(|s| {
        let probes: Vec<_> = targets
            .iter()
            .map(|(ip, port)| s.spawn(move || connects(ns, ip, *port)))
            .collect();
        probes.into_iter().map(|p| p.join().expect("a probe")).collect()
    })
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// The world above, with two containers on each network.
fn world(h: &TestHost) -> Vec<Party> {
    let outside = h.namespace("outside");
    h.wire(&outside, "up0", "203.0.113.1/24", "203.0.113.2/24");
    let r = run_in(
        &outside,
        "sh",
        &[
            "-c",
            "ip -6 addr add fd99::2/64 dev eth0 nodad && ip -6 route add default via fd99::1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lan = h.namespace("lan");
    h.sh(&format!(
        "ip addr add fd99::1/64 dev up0 nodad \
         && ip link add lan0 type veth peer name eth0 netns {l} \
         && ip link add lan1 type veth peer name eth1 netns {l} \
         && ip addr add 10.72.0.254/24 dev lan0 && ip -6 addr add fd72::fe/64 dev lan0 nodad \
         && ip addr add 10.73.0.254/24 dev lan1 && ip -6 addr add fd73::fe/64 dev lan1 nodad \
         && ip link set lan0 up && ip link set lan1 up",
        l = lan.display()
    ));
    let r = run_in(
        &lan,
        "sh",
        &[
            "-c",
            "ip addr add 10.72.0.100/24 dev eth0 && ip -6 addr add fd72::100/64 dev eth0 nodad \
             && ip addr add 10.73.0.100/24 dev eth1 && ip -6 addr add fd73::100/64 dev eth1 nodad \
             && ip link set eth0 up && ip link set eth1 up \
             && ip route add default via 10.72.0.254 && ip -6 route add default via fd72::fe",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let mut parties = Vec::new();
    for (net, _, args) in NETWORKS {
        let mut full = vec!["network", "create", "--ipv6"];
        full.extend_from_slice(args);
        full.push(net);
        h.ok(&full);
    }
    // Two containers per network, started at once.
    let runs: Vec<(String, &str, Kind, std::process::Child)> = NETWORKS
        .iter()
        .flat_map(|(net, kind, _)| (1..=2).map(move |i| (format!("{net}-{i}"), *net, *kind)))
        .map(|(name, net, kind)| {
            let child = h
                .berth_cmd(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--network",
                    net,
                    "--",
                    "sleep",
                    "600",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawning berth run");
            (name, net, kind, child)
        })
        .collect();
    for (name, net, kind, child) in runs {
        let out = child.wait_with_output().expect("berth run");
        assert!(
            out.status.success(),
            "run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = inspect(h, &name);
        let n = &c["NetworkSettings"]["Networks"][net];
        parties.push(Party {
            who: Who::Container(net, kind),
            ns: PathBuf::from(c["NetworkSettings"]["SandboxKey"].as_str().expect("a sandbox")),
            v4: n["IPAddress"].as_str().expect("an IPv4 address").to_owned(),
            v6: n["GlobalIPv6Address"]
                .as_str()
                .expect("an IPv6 address")
                .to_owned(),
            name,
        });
    }
    for (name, who, ns, v4, v6) in [
        ("host", Who::Host, h.ns.clone(), "203.0.113.1", "fd99::1"),
        ("outside", Who::Outside, outside, "203.0.113.2", "fd99::2"),
        ("lan", Who::Lan, lan, "10.72.0.100", "fd72::100"),
    ] {
        parties.push(Party {
            name: name.to_owned(),
            who,
            ns,
            v4: v4.to_owned(),
            v6: v6.to_owned(),
        });
    }
    for p in &parties {
        assert!(!p.v4.is_empty() && !p.v6.is_empty(), "{} has no address", p.name);
    }
    parties
}

#[test]
fn every_pair_reaches_or_not_as_docker_says() {
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    let parties = world(&h);
    let start = Instant::now();
    // Every source probes all its targets at once, all sources in parallel.
    let results: Vec<BTreeMap<String, bool>> = thread::scope(|s| {
        let handles: Vec<_> = parties
            .iter()
            .map(|from| {
                let targets: Vec<String> = parties
                    .iter()
                    .filter(|to| to.name != from.name)
                    .flat_map(|to| [target(from, to, false), target(from, to, true)])
                    .collect();
                s.spawn(move || probe_all(&from.ns, &targets))
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("a probe thread"))
            .collect()
    });
    let took = start.elapsed();

    let width = parties.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut wrong = Vec::new();
    let mut printed = String::new();
    for (family, v6) in [("IPv4", false), ("IPv6", true)] {
        printed.push_str(&format!(
            "\n{family}: row reaches column? (✓/✗ as expected; !✓/!✗ where Docker's verdict differs)\n{:width$} ",
            ""
        ));
        for to in &parties {
            printed.push_str(&format!(" {:>8}", to.name));
        }
        printed.push('\n');
        for (from, seen) in parties.iter().zip(&results) {
            printed.push_str(&format!("{:width$} ", from.name));
            for to in &parties {
                if to.name == from.name {
                    printed.push_str(&format!(" {:>8}", "·"));
                    continue;
                }
                let addr = target(from, to, v6);
                let got = seen[&addr];
                let want = expected(from.who, to.who);
                let cell = if got == want {
                    mark(got).to_owned()
                } else {
                    wrong.push(format!(
                        "{} -> {} ({addr}): got {}, expected {}",
                        from.name,
                        to.name,
                        mark(got),
                        mark(want)
                    ));
                    format!("!{}", mark(got))
                };
                printed.push_str(&format!(" {cell:>8}"));
            }
            printed.push('\n');
        }
    }
    let n = parties.len();
    eprintln!(
        "isolation matrix: {n}×{n}, {} ordered pairs × 2 families = {} probes in {took:.2?}{printed}",
        n * (n - 1),
        2 * n * (n - 1)
    );
    assert!(
        wrong.is_empty(),
        "{} verdicts differ from Docker's:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn published_ports_answer_from_outside_on_a_bridge_and_not_on_an_internal_network() {
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    let parties = world(&h);
    let outside = &parties.iter().find(|p| p.who == Who::Outside).unwrap().ns;
    for (name, net, port) in [("web", "plain", "8080"), ("lonely", "noicc", "8081")] {
        h.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "-p",
            &format!("{port}:80"),
            "--",
            "sleep",
            "600",
        ]);
    }
    let mut table = String::new();
    let mut wrong = Vec::new();
    for (name, port) in [("web", 8080), ("lonely", 8081)] {
        let c = inspect(&h, name);
        let ns = PathBuf::from(c["NetworkSettings"]["SandboxKey"].as_str().unwrap());
        let own = c["NetworkSettings"]["Networks"]
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|n| n["IPAddress"].as_str())
            .unwrap()
            .to_owned();
        let _listening = Listener::start(&ns, 80);
        let probes = [
            ("203.0.113.1".to_owned(), port, true),
            ("fd99::1".to_owned(), port, true),
            // Only the published port, only on the host's addresses.
            (own, 80, false),
            ("203.0.113.1".to_owned(), 80, false),
        ];
        let targets: Vec<(String, u16)> = probes.iter().map(|(ip, p, _)| (ip.clone(), *p)).collect();
        for ((ip, p, want), got) in probes.iter().zip(connects_all(outside, &targets)) {
            table.push_str(&format!(
                "outside -> {ip}:{p} ({name}): {} (expected {})\n",
                mark(got),
                mark(*want)
            ));
            if got != *want {
                wrong.push(format!("outside -> {ip}:{p} ({name})"));
            }
        }
    }
    // On an internal network there is nothing to publish to: refused, as
    // the README says (Docker accepts -p there and publishes nothing).
    let line = h.fails(&[
        "run",
        "-d",
        "--name",
        "hidden",
        "--network",
        "inner",
        "-p",
        "8082:80",
        "--",
        "sleep",
        "600",
    ]);
    assert!(line.contains("network inner is --internal"), "{line}");
    let inner = parties
        .iter()
        .find(|p| p.name == "inner-1")
        .expect("a container on inner");
    let _listening = Listener::start(&inner.ns, 80);
    let targets = [
        ("203.0.113.1".to_owned(), 8082),
        (inner.v4.clone(), 80),
        (inner.v6.clone(), 80),
    ];
    for ((ip, p), got) in targets.iter().zip(connects_all(outside, &targets)) {
        table.push_str(&format!(
            "outside -> {ip}:{p} (inner-1): {} (expected ✗)\n",
            mark(got)
        ));
        if got {
            wrong.push(format!("outside -> {ip}:{p} (inner-1)"));
        }
    }
    eprintln!("published ports from outside:\n{table}");
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:?}\n{table}");
}
