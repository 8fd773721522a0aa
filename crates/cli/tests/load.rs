//! Load: a hundred `berth run -d` at once on one network, fifty `network
//! create` without `--subnet` at once, a thousand containers removed with
//! `rm -f`. Every client is a separate `berth` process, as a script's would
//! be; every wait is bounded. Nothing leaves the test's namespaces.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::dns::ask;
use berth_testkit::hickory_proto::rr::RecordType;
use berth_testkit::{Run, TestHost};
use ipnet::IpNet;
use serde_json::Value;

const RESOLVER: &str = "127.0.0.11:53";

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// Runs `cmd` to its end, or kills it at `deadline` (code -1, "timed out"
/// on stderr). Output is read after the exit: these commands print little.
fn run_until(mut cmd: Command, deadline: Instant) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning berth");
    // Drain both pipes on their own threads so a chatty command never
    // blocks on a full pipe while we poll.
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let code = loop {
        match child.try_wait().expect("waiting for berth") {
            Some(st) => break st.code().unwrap_or(-1),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break -2;
            }
            None => thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut stderr = err.join().unwrap_or_default();
    if code == -2 {
        stderr.push_str("timed out");
    }
    Run {
        code,
        stdout: out.join().unwrap_or_default(),
        stderr,
    }
}

/// Runs one `berth` process per argument list, at most `width` at a time,
/// each bounded by `limit`; returns what each printed, in order.
fn berth_many(h: &TestHost, jobs: &[Vec<String>], width: usize, limit: Duration) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Run>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let deadline = Instant::now() + limit;
    thread::scope(|s| {
        for _ in 0..width.min(jobs.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(args) = jobs.get(i) else { break };
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let r = run_until(h.berth_cmd(&args), deadline);
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

fn run_args(name: &str, net: &str, cmd: &[&str]) -> Vec<String> {
    ["run", "-d", "--name", name, "--network", net, "--"]
        .iter()
        .chain(cmd)
        .map(|s| s.to_string())
        .collect()
}

fn assert_all_ok(what: &str, jobs: &[Vec<String>], runs: &[Run]) {
    let failed: Vec<String> = jobs
        .iter()
        .zip(runs)
        .filter(|(_, r)| r.code != 0)
        .map(|(a, r)| format!("berth {}: {}", a.join(" "), r.stderr.trim()))
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} failed:\n{}",
        failed.len(),
        jobs.len(),
        failed.join("\n")
    );
}

/// Every container's address on `net` and its sandbox, from one `inspect`.
fn addresses(h: &TestHost, names: &[String], net: &str) -> Vec<(IpAddr, PathBuf)> {
    let mut args = vec!["inspect"];
    args.extend(names.iter().map(String::as_str));
    let all: Value = serde_json::from_str(&h.ok(&args)).expect("inspect prints JSON");
    let all = all.as_array().expect("inspect prints a list");
    assert_eq!(all.len(), names.len());
    all.iter()
        .zip(names)
        .map(|(c, n)| {
            let ip = c["NetworkSettings"]["Networks"][net]["IPAddress"]
                .as_str()
                .unwrap_or_else(|| panic!("{n} has no address on {net}: {c:#}"));
            let sandbox = c["NetworkSettings"]["SandboxKey"]
                .as_str()
                .unwrap_or_else(|| panic!("{n} has no sandbox: {c:#}"));
            (
                ip.parse().unwrap_or_else(|_| panic!("{n}: bad address {ip}")),
                PathBuf::from(sandbox),
            )
        })
        .collect()
}

/// A shell script that pings every address at once (each at most twice,
/// one second each) and prints the ones that never answered.
fn ping_all(ips: &[IpAddr]) -> String {
    let list: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    format!(
        "for ip in {}; do (ping -c1 -W1 $ip >/dev/null 2>&1 || ping -c1 -W2 $ip >/dev/null 2>&1 \
         || echo unreachable $ip) & done; wait",
        list.join(" ")
    )
}

#[test]
fn a_hundred_runs_at_once_get_distinct_reachable_resolvable_addresses() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.60.0.0/24", "crowd"]);
    let names: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    let jobs: Vec<Vec<String>> = names
        .iter()
        .map(|n| run_args(n, "crowd", &["sleep", "600"]))
        .collect();
    let start = Instant::now();
    let runs = berth_many(&h, &jobs, 100, Duration::from_secs(90));
    let took = start.elapsed();
    eprintln!("100 concurrent `berth run -d`: {took:.2?}");
    assert_all_ok("100 concurrent runs", &jobs, &runs);

    let found = addresses(&h, &names, "crowd");
    let ips: Vec<IpAddr> = found.iter().map(|(ip, _)| *ip).collect();
    let distinct: BTreeSet<&IpAddr> = ips.iter().collect();
    assert_eq!(distinct.len(), 100, "addresses are not distinct: {ips:?}");
    let subnet: IpNet = "10.60.0.0/24".parse().unwrap();
    assert!(ips.iter().all(|ip| subnet.contains(ip)), "{ips:?}");
    let ps = h.ok(&["ps", "-q"]);
    assert_eq!(ps.lines().count(), 100, "ps -q: {ps}");

    // Reachable from the host, and from a container (over the bridge).
    let start = Instant::now();
    let r = h.run("sh", &["-c", &ping_all(&ips)]);
    assert!(
        r.code == 0 && r.stdout.trim().is_empty(),
        "from the host: {}",
        r.stdout
    );
    let r = h.berth(&["exec", "c000", "--", "sh", "-c", &ping_all(&ips)]);
    assert!(
        r.code == 0 && r.stdout.trim().is_empty(),
        "from c000: {}{}",
        r.stdout,
        r.stderr
    );
    eprintln!("200 pings: {:.2?}", start.elapsed());

    // Every name resolves, through the embedded resolver of a container on
    // the network, to that container's address.
    let resolver: SocketAddr = RESOLVER.parse().unwrap();
    let asker = &found[0].1;
    let wrong: Vec<String> = names
        .iter()
        .zip(&ips)
        .filter_map(|(n, ip)| {
            let a = ask(asker, resolver, n, RecordType::A, false);
            match a {
                Some(a) if a.records == [ip.to_string()] => None,
                a => Some(format!("{n} ({ip}): {a:?}")),
            }
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "names that did not resolve:\n{}",
        wrong.join("\n")
    );
}

/// Docker's default local pools less the default bridge's 172.17.0.0/16:
/// 172.18–31.0.0/16 and the sixteen 192.168.0.0/20s.
const FREE_DEFAULT_POOLS: usize = 14 + 16;

/// Runs `network create NAME` for 50 names at once; returns the names
/// of the networks made and the error lines of the refused ones.
fn create_fifty(h: &TestHost) -> (Vec<String>, Vec<String>) {
    let names: Vec<String> = (0..50).map(|i| format!("n{i:02}")).collect();
    let jobs: Vec<Vec<String>> = names
        .iter()
        .map(|n| ["network", "create", n].map(String::from).to_vec())
        .collect();
    let start = Instant::now();
    let runs = berth_many(h, &jobs, 50, Duration::from_secs(60));
    eprintln!("50 concurrent `network create`: {:.2?}", start.elapsed());
    let made = names
        .iter()
        .zip(&runs)
        .filter(|(_, r)| r.code == 0)
        .map(|(n, _)| n.clone())
        .collect();
    let refused = runs
        .iter()
        .filter(|r| r.code != 0)
        .map(|r| r.stderr.trim().to_owned())
        .collect();
    (made, refused)
}

/// Checks that the networks `made`, and the default bridge, have subnets
/// that do not overlap, all inside `within`, and a bridge each; returns
/// the subnets.
fn assert_disjoint(h: &TestHost, made: &[String], within: &[&str]) -> Vec<IpNet> {
    let mut args = vec!["network", "inspect", "bridge"];
    args.extend(made.iter().map(String::as_str));
    let nets: Value = serde_json::from_str(&h.ok(&args)).expect("inspect prints JSON");
    let subnets: Vec<(IpNet, String)> = nets
        .as_array()
        .expect("a list")
        .iter()
        .flat_map(|n| {
            let name = n["Name"].as_str().unwrap_or_default().to_owned();
            n["IPAM"]["Config"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| {
                    let s = c["Subnet"].as_str().expect("a subnet");
                    (s.parse().expect("a CIDR"), name.clone())
                })
        })
        .collect();
    assert_eq!(subnets.len(), made.len() + 1, "{subnets:?}");
    let within: Vec<IpNet> = within.iter().map(|w| w.parse().unwrap()).collect();
    for (i, (a, an)) in subnets.iter().enumerate() {
        assert!(
            within.iter().any(|w| w.contains(a)),
            "{an} ({a}) is outside {within:?}"
        );
        for (b, bn) in &subnets[i + 1..] {
            assert!(
                !(a.contains(&b.network()) || b.contains(&a.network())),
                "{an} ({a}) overlaps {bn} ({b})"
            );
        }
    }
    // Each network has its bridge; the refused ones left none.
    let bridges = h.sh("ip -o link show type bridge");
    assert_eq!(bridges.matches(" br-").count(), made.len(), "{bridges}");
    let ls = h.ok(&["network", "ls", "-q"]);
    assert_eq!(ls.lines().count(), made.len() + 3, "{ls}");
    subnets.into_iter().map(|(s, _)| s).collect()
}

#[test]
fn fifty_creates_at_once_share_the_default_pools_without_overlap() {
    let h = host();
    let (made, refused) = create_fifty(&h);
    // As with Docker, the default pools hold 30 more networks: the first
    // 30 to ask get one each, the other 20 are told to give --subnet.
    assert_eq!(
        made.len(),
        FREE_DEFAULT_POOLS,
        "made {} networks; refusals:\n{}",
        made.len(),
        refused.join("\n")
    );
    for line in &refused {
        assert!(
            line.starts_with("berth: all of the default address pools") && line.ends_with("give --subnet"),
            "{line}"
        );
    }
    assert_disjoint(&h, &made, &["172.16.0.0/12", "192.168.0.0/16"]);
}

#[test]
fn fifty_creates_at_once_with_a_default_address_pool_get_fifty_subnets() {
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    for (bad, want) in [
        (
            "base=10.128.0.0/16,size=8",
            "size must be between the base's prefix length (16) and 30",
        ),
        ("base=fd00::/48,size=64", "base must be an IPv4 CIDR"),
        ("10.128.0.0/16", "accepted: base=CIDR,size=N"),
        ("base=10.128.0.0/16", "accepted: base=CIDR,size=N"),
    ] {
        let status = h
            .spawn_daemon(&["--default-address-pool", bad])
            .expect("spawning the daemon")
            .wait()
            .expect("waiting for the daemon");
        assert!(!status.success(), "{bad} was accepted");
        let log = h.daemon_log();
        assert!(
            log.contains(&format!("invalid --default-address-pool {bad:?}: {want}")),
            "{bad}: {log}"
        );
    }
    h.start_daemon(&["--default-address-pool", "base=10.128.0.0/16,size=24"]);
    let (made, refused) = create_fifty(&h);
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    let subnets = assert_disjoint(&h, &made, &["10.128.0.0/16"]);
    // The default bridge took the pool's first subnet, the others the next fifty.
    let mut got: Vec<String> = subnets.iter().map(IpNet::to_string).collect();
    got.sort_by_key(|s| s.split('.').nth(2).and_then(|o| o.parse::<u8>().ok()));
    let want: Vec<String> = (0..=50).map(|i| format!("10.128.{i}.0/24")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_thousand_containers_removed_with_rm_f_leave_nothing() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.61.0.0/22", "big"]);
    let before = h.kernel_state();
    let names: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();
    let jobs: Vec<Vec<String>> = names
        .iter()
        .map(|n| run_args(n, "big", &["sleep", "86399"]))
        .collect();
    let start = Instant::now();
    let runs = berth_many(&h, &jobs, 8, Duration::from_secs(150));
    let created = start.elapsed();
    assert_all_ok("1000 runs", &jobs, &runs);
    assert_eq!(h.ok(&["ps", "-q"]).lines().count(), 1000);
    let veths = h.sh("ip -o link show type veth | wc -l");
    assert_eq!(veths.trim(), "1000");

    // rm -f of all, in batches of 50 names, four batches at a time.
    let jobs: Vec<Vec<String>> = names
        .chunks(50)
        .map(|c| {
            ["rm", "-f"]
                .iter()
                .map(|s| s.to_string())
                .chain(c.iter().cloned())
                .collect()
        })
        .collect();
    let start = Instant::now();
    let runs = berth_many(&h, &jobs, 4, Duration::from_secs(120));
    let removed = start.elapsed();
    eprintln!("1000 `berth run -d` (8 at a time): {created:.2?}; `rm -f` of all: {removed:.2?}");
    assert_all_ok("rm -f of 1000", &jobs, &runs);

    assert_eq!(h.ok(&["ps", "-a", "-q"]).trim(), "", "ps -a is not empty");
    let net: Value = serde_json::from_str(&h.ok(&["network", "inspect", "big"])).unwrap();
    assert_eq!(net[0]["Containers"], serde_json::json!({}));
    // No veth, address, firewall element or pinned sandbox is left.
    assert_eq!(
        h.kernel_state(),
        before,
        "rm -f of 1000 containers left something"
    );
    // No container process is left either.
    let left = std::fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0086399\x00"))
        .count();
    assert_eq!(left, 0, "processes of removed containers are still running");
    // Every address was given back: the first, a middle and the last
    // one the thousand held can be asked for again.
    for (name, ip) in [
        ("first", "10.61.0.2"),
        ("middle", "10.61.2.0"),
        ("last", "10.61.3.233"),
    ] {
        h.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "big",
            "--ip",
            ip,
            "--",
            "sleep",
            "600",
        ]);
        assert_eq!(h.address(name, "big"), ip);
    }
}
