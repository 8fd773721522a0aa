//! Kill -9 anywhere, 100 times. A seeded loop has containers created
//! (some publishing a port), connected, disconnected and removed on four
//! networks at once — bridge, macvlan, a CNI chain (bridge plugin with
//! host-local) and a shared-library plugin (ptp) — kills the daemon at a
//! random moment amid that work, starts it again, and checks after every
//! restart that the kernel and the store agree:
//!
//! 1. no address is held twice on a network, and a container that does not
//!    run holds none;
//! 2. every endpoint of a running container has its interface in the
//!    sandbox with its address, and the sandbox has no other interface;
//! 3. nothing is left without a record: bridge ports, CNI bridge ports,
//!    the plugin's host-side veths, host-local leases, published-port
//!    elements, pinned sandboxes — each counted against the records;
//! 4. every running container answers on every address it is recorded
//!    with.
//!
//! The seed is printed first; `BERTH_CHAOS_SEED=<seed>` replays a run.
//! Bounded: 100 iterations, and the loop stops (failing) after 170 s.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{TestHost, plugin_library, run_in};
use serde_json::Value;

const REFERENCE: &str = "/usr/lib/cni";
const ITERATIONS: usize = 100;
const BUDGET: Duration = Duration::from_secs(170);

/// The networks: name, and the subnet whose addresses berth hands out.
const NETS: [&str; 4] = ["nb", "nm", "nc", "np"];

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// xorshift64*: enough to pick operations reproducibly from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn world() -> TestHost {
    assert!(
        Path::new(REFERENCE).join("bridge").exists(),
        "the CNI reference plugins are missing: apt-get install containernetworking-plugins"
    );
    let mut h = TestHost::without_daemon(berth());
    fs::create_dir_all(h.plugin_dir()).unwrap();
    fs::copy(plugin_library("berth-plugin-ptp"), h.plugin_dir().join("ptp.so")).unwrap();
    h.start_daemon(&["--cni-path", REFERENCE]);
    h.add_lan_parents(&["lan0"]);
    // The far end of the macvlan parent stands for the LAN's router: the
    // host reaches macvlan containers through it.
    h.sh("ip addr add 10.51.0.254/24 dev lan0x");
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.50.0.0/24",
        "-o",
        "bridge.name=brch",
        "nb",
    ]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.51.0.0/24",
        "--ip-range",
        "10.51.0.0/25",
        "--gateway",
        "10.51.0.254",
        "-o",
        "parent=lan0",
        "nm",
    ]);
    let ipam_dir = format!("ipam.dataDir={}", h.root.join("cni-ipam").display());
    h.ok(&[
        "network",
        "create",
        "-d",
        "cni",
        "-o",
        "cni.plugin=bridge",
        "-o",
        "bridge=cnibrch",
        "-o",
        "isGateway=true",
        "-o",
        "ipam.type=host-local",
        "-o",
        "ipam.subnet=10.52.0.0/24",
        "-o",
        &ipam_dir,
        "nc",
    ]);
    h.ok(&["network", "create", "-d", "ptp", "--subnet", "10.53.0.0/24", "np"]);
    h
}

/// What the store says after a restart: per container, its status, its
/// sandbox, its endpoints (network → (interface, address)), its published
/// host ports.
struct Record {
    name: String,
    running: bool,
    sandbox: String,
    endpoints: BTreeMap<String, (String, String)>,
    ports: usize,
}

fn records(h: &TestHost) -> Vec<Record> {
    let ids: Vec<String> = h.ok(&["ps", "-a", "-q"]).lines().map(str::to_owned).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    let v: Value = serde_json::from_str(&h.ok(&args)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let nets = c["NetworkSettings"]["Networks"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            Record {
                name: c["Name"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                running: c["State"]["Status"] == "running",
                sandbox: c["NetworkSettings"]["SandboxKey"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                endpoints: nets
                    .iter()
                    .map(|(n, e)| {
                        (
                            n.clone(),
                            (
                                e["InterfaceName"].as_str().unwrap_or_default().to_owned(),
                                e["IPAddress"].as_str().unwrap_or_default().to_owned(),
                            ),
                        )
                    })
                    .collect(),
                ports: c["NetworkSettings"]["Ports"]
                    .as_object()
                    .map_or(0, |m| m.values().filter(|v| v.is_array()).count()),
            }
        })
        .collect()
}

/// The host's links as `(name, master)`.
fn host_links(h: &TestHost) -> Vec<(String, String)> {
    h.run("ip", &["-o", "link", "show"])
        .stdout
        .lines()
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim().split('@').next()?.to_owned();
            let master = l
                .split_whitespace()
                .skip_while(|w| *w != "master")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            Some((name, master))
        })
        .collect()
}

/// A sandbox's interfaces other than `lo`, with their IPv4 addresses.
fn sandbox_addrs(sandbox: &str) -> BTreeMap<String, BTreeSet<String>> {
    let ns = Path::new(sandbox);
    let links = run_in(ns, "ip", &["-o", "link", "show"]);
    let mut out: BTreeMap<String, BTreeSet<String>> = links
        .stdout
        .lines()
        .filter_map(|l| Some(l.split(':').nth(1)?.trim().split('@').next()?.to_owned()))
        .filter(|n| n != "lo")
        .map(|n| (n, BTreeSet::new()))
        .collect();
    let addrs = run_in(ns, "ip", &["-o", "-4", "addr", "show"]);
    for l in addrs.stdout.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let (Some(dev), Some(a)) = (w.get(1), w.get(3))
            && let Some(set) = out.get_mut(*dev)
        {
            set.insert(a.split('/').next().unwrap_or_default().to_owned());
        }
    }
    out
}

fn leases(h: &TestHost) -> BTreeSet<String> {
    fs::read_dir(h.root.join("cni-ipam").join("nc"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// Container addresses the published-port maps lead to, one per element.
fn port_targets(h: &TestHost) -> Vec<String> {
    let out = h.sh("nft -j list map inet berth dnat4_any");
    let v: Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["map"]["elem"].as_array().cloned())
        .flatten()
        .filter_map(|e| e[1]["concat"][0].as_str().map(str::to_owned))
        .collect()
}

/// The invariants; the number of checks made, or what broke.
fn check(h: &TestHost) -> Result<usize, String> {
    let recs = records(h);
    let mut checks = 0;
    // 1. One holder per address; none for a container that does not run.
    let mut held: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &recs {
        for (net, (_, ip)) in &r.endpoints {
            checks += 1;
            if !r.running {
                if !ip.is_empty() {
                    return Err(format!("{} does not run but holds {ip} on {net}", r.name));
                }
                continue;
            }
            if ip.is_empty() {
                return Err(format!("{} runs on {net} without an address", r.name));
            }
            if !held.entry(net).or_default().insert(ip) {
                return Err(format!("{ip} is held twice on {net}"));
            }
        }
    }
    // 2. Each running container's sandbox has exactly its endpoints.
    let running: Vec<&Record> = recs.iter().filter(|r| r.running).collect();
    for r in &running {
        let have = sandbox_addrs(&r.sandbox);
        let want: BTreeSet<&str> = r.endpoints.values().map(|(i, _)| i.as_str()).collect();
        let got: BTreeSet<&str> = have.keys().map(String::as_str).collect();
        checks += 1;
        if want != got {
            return Err(format!(
                "{}: interfaces {got:?}, recorded {:?}",
                r.name, r.endpoints
            ));
        }
        for (net, (ifname, ip)) in &r.endpoints {
            checks += 1;
            if !have[ifname].contains(ip) {
                return Err(format!(
                    "{}: {ifname} lacks {ip} of {net}: {:?}",
                    r.name, have[ifname]
                ));
            }
        }
    }
    // 3. Nothing without a record.
    let on = |net: &str| running.iter().filter(|r| r.endpoints.contains_key(net)).count();
    let links = host_links(h);
    let ports_of = |br: &str| links.iter().filter(|(_, m)| m == br).count();
    for (what, got, want) in [
        ("ports on the bridge of nb", ports_of("brch"), on("nb")),
        ("ports on the CNI bridge of nc", ports_of("cnibrch"), on("nc")),
        (
            "host-side veths of the ptp plugin",
            links.iter().filter(|(n, _)| n.starts_with("ptp")).count(),
            on("np"),
        ),
        ("host-local leases on nc", leases(h).len(), on("nc")),
    ] {
        checks += 1;
        if got != want {
            return Err(format!("{what}: {got}, records say {want}"));
        }
    }
    checks += 1;
    let leased = leases(h);
    let nc: BTreeSet<String> = held
        .get("nc")
        .into_iter()
        .flatten()
        .map(|s| (*s).to_owned())
        .collect();
    if leased != nc {
        return Err(format!("host-local leases {leased:?}, records {nc:?}"));
    }
    let mut targets = port_targets(h);
    targets.sort();
    let mut published: Vec<String> = running
        .iter()
        .filter(|r| r.ports > 0)
        .filter_map(|r| r.endpoints.get("nb").map(|(_, ip)| ip.clone()))
        .collect();
    published.sort();
    checks += 1;
    if targets != published {
        return Err(format!(
            "published-port elements lead to {targets:?}, records say {published:?}"
        ));
    }
    let mut pinned: BTreeSet<String> = fs::read_dir(h.exec_root().join("netns"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| !p.ends_with("/host"))
        .collect();
    checks += 1;
    for r in &running {
        pinned.remove(&r.sandbox);
    }
    if !pinned.is_empty() {
        return Err(format!("sandboxes without a running container: {pinned:?}"));
    }
    // 4. Every running container answers on every recorded address.
    let addrs: Vec<&str> = running
        .iter()
        .flat_map(|r| r.endpoints.values().map(|(_, ip)| ip.as_str()))
        .collect();
    if !addrs.is_empty() {
        let script: String = addrs
            .iter()
            .map(|ip| format!("(ping -c1 -W2 {ip} >/dev/null 2>&1 || echo {ip}) & "))
            .collect::<String>()
            + "wait";
        let silent = h.sh(&script);
        checks += addrs.len();
        if !silent.trim().is_empty() {
            return Err(format!(
                "no answer from {}",
                silent.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    Ok(checks)
}

#[test]
fn kill_9_at_random_moments_never_breaks_the_invariants() {
    let seed: u64 = std::env::var("BERTH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos seed {seed} (BERTH_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut h = world();
    let start = Instant::now();
    let mut next = 0usize;
    let mut checks = 0usize;
    let mut ops = 0usize;
    // Running containers summed over the iterations' starts.
    let mut seen = 0usize;
    // Time spent restarting and checking.
    let mut phases = [Duration::ZERO; 3];
    let iterations: usize = std::env::var("BERTH_CHAOS_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERATIONS);
    for i in 0..iterations {
        assert!(
            start.elapsed() < BUDGET,
            "seed {seed}: {i} iterations took {:?}, over the {BUDGET:?} budget (restarts {:?}, checks {:?})",
            start.elapsed(),
            phases[0],
            phases[1]
        );
        let names: Vec<String> = records(&h)
            .into_iter()
            .filter(|r| r.running)
            .map(|r| r.name)
            .collect();
        seen += names.len();
        let mut kids: Vec<Child> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let net = NETS[rng.below(NETS.len())];
            let choice = if names.is_empty() { 0 } else { rng.below(10) };
            let mut args: Vec<String> = match choice {
                0..=4 if names.len() < 12 => {
                    next += 1;
                    let mut a = vec!["run".into(), "-d".into(), "--name".into(), format!("k{next}")];
                    a.extend(["--network".into(), net.into()]);
                    if net == "nb" && rng.below(2) == 0 {
                        a.extend(["-p".into(), format!("{}:80", 20000 + next)]);
                    }
                    a
                }
                5 | 6 if !names.is_empty() => {
                    vec![
                        "network".into(),
                        "connect".into(),
                        net.into(),
                        names[rng.below(names.len())].clone(),
                    ]
                }
                7 if !names.is_empty() => {
                    vec![
                        "network".into(),
                        "disconnect".into(),
                        net.into(),
                        names[rng.below(names.len())].clone(),
                    ]
                }
                _ if !names.is_empty() => {
                    vec!["rm".into(), "-f".into(), names[rng.below(names.len())].clone()]
                }
                _ => continue,
            };
            if args[0] == "run" {
                args.extend(["--".into(), "sleep".into(), "900".into()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = h.berth_cmd(&argv);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            kids.push(cmd.spawn().unwrap());
            ops += 1;
        }
        // Mostly amid the work; one time in three once it is done, so that
        // containers pile up for the next kills to cut into.
        if rng.below(3) == 0 {
            for k in &mut kids {
                let _ = k.wait();
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(120) as u64));
        }
        h.kill_daemon();
        let t = Instant::now();
        h.start_daemon(&["--cni-path", REFERENCE]);
        phases[0] += t.elapsed();
        // Clients cut off report to the new daemon what became of their
        // containers.
        let t = Instant::now();
        for mut k in kids {
            let _ = k.wait();
        }
        phases[2] += t.elapsed();
        let t = Instant::now();
        match check(&h) {
            Ok(n) => checks += n,
            Err(e) => panic!("seed {seed}, iteration {i}: {e}\n{}", h.daemon_log()),
        }
        phases[1] += t.elapsed();
    }
    let left = records(&h).iter().filter(|r| r.running).count();
    eprintln!(
        "seed {seed}: {iterations} kill -9 survived in {:?} (restarts {:?}, checks {:?}, clients {:?}), {ops} operations cut into, {checks} invariant checks, {:.1} containers running on average, {left} at the end",
        start.elapsed(),
        phases[0],
        phases[1],
        phases[2],
        seen as f64 / iterations as f64
    );
    assert!(
        ops >= iterations,
        "seed {seed}: only {ops} operations for {iterations} kills"
    );
}
