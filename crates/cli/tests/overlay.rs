//! Overlay networks across hosts: berth daemons in test hosts on one
//! underlay, sharing a real etcd (testkit's `Fabric`). Containers of
//! different hosts reach each other by address and by name; the VXLAN
//! devices hold exactly what the store says; a host that dies is forgotten
//! within its lease; etcd going away stops what needs it with one line and
//! nothing else; a host cut off through a compaction catches up; overlays
//! are isolated from their hosts and from each other; containers reach out
//! through the gateway bridge.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::fabric::Fabric;
use berth_testkit::{TestHost, accept_one, run_in};
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn inspect(h: &TestHost, what: &[&str]) -> Value {
    let mut args = what.to_vec();
    args.insert(args.len() - 1, "inspect");
    let v: Value = serde_json::from_str(&h.ok(&args)).expect("inspect prints JSON");
    v[0].clone()
}

fn net_id(h: &TestHost, net: &str) -> String {
    inspect(h, &["network", net])["Id"].as_str().unwrap().to_owned()
}

/// Runs `sleep 1000` as container `name` on `net`, detached.
fn run_d(h: &TestHost, name: &str, net: &str) {
    h.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        net,
        "--",
        "sleep",
        "1000",
    ]);
}

fn pings(h: &TestHost, container: &str, target: &str) -> bool {
    h.berth(&["exec", container, "--", "ping", "-c1", "-W2", target])
        .code
        == 0
}

fn sandbox(h: &TestHost, c: &str) -> PathBuf {
    PathBuf::from(
        inspect(h, &[c])["NetworkSettings"]["SandboxKey"]
            .as_str()
            .unwrap(),
    )
}

/// The namespace of overlay network `id` on host `h`.
fn overlay_ns(h: &TestHost, id: &str) -> PathBuf {
    h.exec_root().join("overlay").join(id)
}

/// Waits up to `secs` for `f`, polling; panics naming `what`.
fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The network's remote entries in `h`'s VXLAN device: (IP, MAC) neighbour
/// entries and (MAC, tunnel endpoint) forwarding entries.
fn programmed(h: &TestHost, id: &str) -> BTreeSet<(String, String, String)> {
    let ns = overlay_ns(h, id);
    let neigh = run_in(&ns, "ip", &["neigh", "show", "dev", "vxlan0"]).stdout;
    let fdb = run_in(&ns, "bridge", &["fdb", "show", "dev", "vxlan0"]).stdout;
    let mut out = BTreeSet::new();
    for l in neigh.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let (Some(ip), Some(pos)) = (w.first(), w.iter().position(|x| *x == "lladdr")) {
            let mac = w[pos + 1];
            let vtep = fdb
                .lines()
                .find(|f| f.starts_with(mac) && f.contains(" dst "))
                .and_then(|f| f.split(" dst ").nth(1))
                .and_then(|d| d.split_whitespace().next())
                .unwrap_or("no fdb entry");
            out.insert(((*ip).to_owned(), mac.to_owned(), vtep.to_owned()));
        }
    }
    out
}

/// What the cluster store says host `h` should have programmed for the
/// network: the endpoints of every other host.
fn expected(f: &Fabric, host: usize, id: &str) -> BTreeSet<(String, String, String)> {
    let me = Fabric::address(host);
    let out = f.etcdctl(&[
        "get",
        "--prefix",
        "--print-value-only",
        &format!("/berth/v1/endpoints/{id}/"),
    ]);
    assert_eq!(out.code, 0, "etcdctl: {}", out.stderr);
    out.stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["vtep"].as_str() != Some(&me))
        .flat_map(|e| {
            let (mac, vtep) = (
                e["mac"].as_str().unwrap().to_owned(),
                e["vtep"].as_str().unwrap().to_owned(),
            );
            e["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let ip = a.as_str().unwrap().split('/').next().unwrap().to_owned();
                    (ip, mac.clone(), vtep.clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn etcd_keys(f: &Fabric, prefix: &str) -> Vec<String> {
    let out = f.etcdctl(&["get", "--prefix", "--keys-only", &format!("/berth/v1/{prefix}")]);
    assert_eq!(out.code, 0, "etcdctl: {}", out.stderr);
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn containers_of_different_hosts_reach_each_other_by_address_and_name() {
    let mut f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    let before = h0.kernel_state();
    let id = h0
        .ok(&["network", "create", "-d", "overlay", "ov"])
        .trim()
        .to_owned();
    let n = inspect(h0, &["network", "ov"]);
    assert_eq!(n["Scope"], "global");
    assert_eq!(n["Driver"], "overlay");
    assert_eq!(
        n["IPAM"]["Config"][0]["Subnet"], "10.0.0.0/24",
        "Docker's global pool: {n:#}"
    );
    assert_eq!(n["Options"]["vxlan.id"], "4096", "the lowest free VNI: {n:#}");
    // The other host knows it at once, by the same id.
    wait_until("host 1 knows the network", 5, || {
        h1.berth(&["network", "inspect", "ov"]).code == 0
    });
    assert_eq!(net_id(h1, "ov"), id);

    run_d(h0, "c1", "ov");
    run_d(h1, "c2", "ov");
    let (a1, a2) = (h0.address("c1", "ov"), h1.address("c2", "ov"));
    assert_ne!(a1, a2);
    for (h, c, name, ip) in [(h0, "c1", "c2", &a2), (h1, "c2", "c1", &a1)] {
        wait_until(&format!("{c} pings {name} by address"), 5, || pings(h, c, ip));
        assert!(pings(h, c, name), "{c} cannot ping {name} by name");
    }
    // --rm on the other host: a new container resolves and reaches c1.
    h1.ok(&["run", "--rm", "--network", "ov", "--", "ping", "-c1", "-W2", "c1"]);
    // The overlay's MTU leaves room for VXLAN's 50 bytes.
    let mtu = |ns: &Path| {
        let l = run_in(ns, "ip", &["-o", "link", "show", "eth0"]).stdout;
        let w: Vec<&str> = l.split_whitespace().collect();
        let at = w.iter().position(|x| *x == "mtu").expect("ip link shows the MTU");
        w[at + 1].parse::<u32>().unwrap()
    };
    assert_eq!(mtu(&sandbox(h0, "c1")), mtu(&h0.ns) - 50);
    // The way out is a second interface on the gateway bridge, with the
    // default route; the overlay has no gateway.
    let routes = run_in(&sandbox(h0, "c1"), "ip", &["route"]).stdout;
    assert!(
        routes.contains("default via 172.") && routes.contains("dev eth1"),
        "{routes}"
    );
    assert_eq!(
        inspect(h0, &["network", "ov"])["IPAM"]["Config"][0]["Gateway"],
        "10.0.0.1"
    );

    // A third host joins: it sees the network and both containers.
    let i = f.add_host();
    let h2 = f.host(i);
    wait_until("host 2 knows the network", 5, || {
        h2.berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(h2, "c3", "ov");
    for target in ["c1", "c2"] {
        wait_until(&format!("c3 pings {target}"), 5, || pings(h2, "c3", target));
    }
    let (h0, h1) = (f.host(0), f.host(1));
    let a3 = h2.address("c3", "ov");
    assert!(pings(h0, "c1", "c3") && pings(h1, "c2", &a3));
    // The inspect of the network lists its peers: the three hosts.
    let peers = inspect(h0, &["network", "ov"])["Peers"].as_array().unwrap().len();
    assert_eq!(peers, 3);

    // Everything goes: nothing of berth's stays in the host, nor in etcd.
    for (h, c) in [(h0, "c1"), (h1, "c2"), (h2, "c3")] {
        h.ok(&["rm", "-f", c]);
    }
    h1.ok(&["network", "rm", "ov"]);
    wait_until("host 0 forgets the network", 5, || {
        h0.berth(&["network", "inspect", "ov"]).code != 0
    });
    assert_eq!(h0.kernel_state(), before);
    for prefix in [
        "networks/",
        "endpoints/",
        "addresses/",
        "numbers/",
        "subnets/",
        "names/",
    ] {
        assert_eq!(etcd_keys(&f, prefix), Vec::<String>::new(), "{prefix}");
    }
}

#[test]
fn vxlan_entries_are_exactly_what_the_store_says() {
    let f = Fabric::new(berth(), 3);
    let h = |i| f.host(i);
    h(0).ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.9.0.0/24",
        "ov",
    ]);
    let id = net_id(h(0), "ov");
    for i in 0..3 {
        wait_until("the network is known", 5, || {
            h(i).berth(&["network", "inspect", "ov"]).code == 0
        });
        for k in 0..2 {
            run_d(h(i), &format!("c{i}{k}"), "ov");
        }
    }
    // The device: VXLAN on UDP 4789 from this host's tunnel endpoint,
    // learning nothing and asking nobody (no l2miss/l3miss).
    let dev = run_in(&overlay_ns(h(0), &id), "ip", &["-d", "link", "show", "vxlan0"]).stdout;
    for want in [
        format!("vxlan id 4096 local {} ", Fabric::address(0)),
        "dstport 4789".to_owned(),
        "nolearning".to_owned(),
        "proxy".to_owned(),
    ] {
        assert!(dev.contains(&want), "{want:?} missing: {dev}");
    }
    assert!(!dev.contains("l2miss") && !dev.contains("l3miss"), "{dev}");
    for i in 0..3 {
        wait_until(&format!("host {i} holds the others' 4 containers"), 5, || {
            let got = programmed(h(i), &id);
            got.len() == 4 && got == expected(&f, i, &id)
        });
    }
    // A container goes on host 1: its two entries go on hosts 0 and 2.
    h(1).ok(&["rm", "-f", "c10"]);
    for i in [0, 2] {
        wait_until(&format!("host {i} drops c10"), 5, || {
            let got = programmed(h(i), &id);
            got.len() == 3 && got == expected(&f, i, &id)
        });
    }
    // Host 1's last container goes: so does its namespace of the network.
    h(1).ok(&["rm", "-f", "c11"]);
    assert!(!overlay_ns(h(1), &id).exists());
    wait_until("host 0 drops c11", 5, || {
        programmed(h(0), &id) == expected(&f, 0, &id)
    });
    assert_eq!(programmed(h(0), &id).len(), 2);
}

#[test]
fn a_host_that_dies_is_forgotten_within_its_lease_and_comes_back() {
    let mut f = Fabric::new(berth(), 2);
    // A short lease for host 1: its records go 2 s after it stops renewing.
    f.host_mut(1).stop_daemon();
    f.start_daemon(1, &["--cluster-store-opt", "lease-ttl=2"]);
    f.host(0).ok(&["network", "create", "-d", "overlay", "ov"]);
    let id = net_id(f.host(0), "ov");
    wait_until("host 1 knows the network", 5, || {
        f.host(1).berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(f.host(0), "c0", "ov");
    run_d(f.host(0), "gone", "ov");
    run_d(f.host(1), "c1", "ov");
    wait_until("c0 reaches c1", 5, || pings(f.host(0), "c0", "c1"));
    wait_until("host 1 knows gone", 5, || programmed(f.host(1), &id).len() == 2);

    f.host_mut(1).kill_daemon();
    let killed = Instant::now();
    wait_until("host 0 forgets c1", 8, || programmed(f.host(0), &id).is_empty());
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "took {:?}",
        killed.elapsed()
    );
    assert!(!pings(f.host(0), "c0", "c1"), "c1 still resolves");
    wait_until("host 0 lists itself alone", 3, || {
        f.host(0).ok(&["info"]).contains("Cluster hosts: 1\n")
    });

    // Meanwhile a container of host 0 goes, another comes.
    f.host(0).ok(&["rm", "-f", "gone"]);
    run_d(f.host(0), "new", "ov");

    // The daemon comes back: its container, still running, is announced
    // again and reachable; its kernel entries are the store's again, the
    // one of the container that went away removed.
    f.start_daemon(1, &["--cluster-store-opt", "lease-ttl=2"]);
    wait_until("c0 reaches c1 again", 8, || pings(f.host(0), "c0", "c1"));
    assert_eq!(programmed(f.host(0), &id), expected(&f, 0, &id));
    wait_until("host 1's entries are the store's", 5, || {
        programmed(f.host(1), &id) == expected(&f, 1, &id)
    });
    assert_eq!(programmed(f.host(1), &id).len(), 2);
    assert!(pings(f.host(1), "c1", "new"));
}

#[test]
fn without_etcd_what_needs_it_fails_with_one_line_and_the_rest_goes_on() {
    let mut f = Fabric::new(berth(), 2);
    f.host(0).ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_until("host 1 knows the network", 5, || {
        f.host(1).berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(f.host(0), "c0", "ov");
    run_d(f.host(1), "c1", "ov");
    run_d(f.host(1), "goes", "ov");
    f.host(0).ok(&["network", "create", "-d", "overlay", "spare"]);
    wait_until("c0 reaches c1", 5, || pings(f.host(0), "c0", "c1"));
    let id = net_id(f.host(0), "ov");
    wait_until("host 0 holds goes", 5, || programmed(f.host(0), &id).len() == 2);
    wait_until("host 1 knows spare", 5, || {
        f.host(1).berth(&["network", "inspect", "spare"]).code == 0
    });
    f.stop_member(0);
    // A container removed meanwhile goes at once here, and from the store
    // once it answers.
    f.host(1).ok(&["rm", "-f", "goes"]);
    let before: Vec<String> = (0..2).map(|i| f.host(i).kernel_state()).collect();
    // What is wired keeps working: the data plane needs no store.
    assert!(pings(f.host(0), "c0", "c1") && pings(f.host(1), "c1", "c0"));
    // What needs the store says so in one line, quickly, and leaves
    // nothing behind.
    let t = Instant::now();
    let e = f.host(0).fails(&["network", "create", "-d", "overlay", "ov2"]);
    assert!(
        e.contains("cluster store etcd://198.51.100.1:2379 cannot be reached"),
        "{e}"
    );
    let e = f.host(0).fails(&["run", "--rm", "--network", "ov", "--", "true"]);
    assert!(e.contains("cannot be reached"), "{e}");
    f.host(0)
        .ok(&["run", "-d", "--name", "local", "--", "sleep", "1000"]);
    let e = f.host(0).fails(&["network", "connect", "ov", "local"]);
    assert!(e.contains("cannot be reached"), "{e}");
    f.host(0).ok(&["rm", "-f", "local"]);
    let e = f.host(1).fails(&["network", "rm", "spare"]);
    assert!(e.contains("cannot be reached"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&f.host(i).kernel_state(), before, "host {i}");
    }
    // Local networks do not need it.
    f.host(0).ok(&["run", "--rm", "--", "true"]);
    assert!(f.host(0).ok(&["info"]).contains("unreachable"));

    f.start_member(0);
    wait_until("the store is back", 10, || {
        f.host(0).ok(&["info"]).contains("(healthy)")
    });
    run_d(f.host(0), "c2", "ov");
    wait_until("c1 reaches the new c2", 5, || pings(f.host(1), "c1", "c2"));
    wait_until("goes is gone from the store and from host 0", 10, || {
        programmed(f.host(0), &id) == expected(&f, 0, &id) && programmed(f.host(0), &id).len() == 1
    });
}

#[test]
fn three_etcd_members_with_one_down_and_tls() {
    let mut f = Fabric::build(berth(), 2, 3, true);
    f.stop_member(0);
    f.host(0).ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_until("host 1 knows the network", 8, || {
        f.host(1).berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(f.host(0), "c0", "ov");
    run_d(f.host(1), "c1", "ov");
    wait_until("c1 reaches c0", 8, || pings(f.host(1), "c1", "c0"));
    assert!(
        f.host(0)
            .ok(&["info"])
            .contains("Cluster store: etcd://198.51.100.1:2379,198.51.100.2:2379,198.51.100.3:2379")
    );
}

#[test]
fn concurrent_creates_and_runs_on_three_hosts_get_unique_subnets_vnis_and_addresses() {
    let f = Fabric::new(berth(), 3);
    let names: Vec<Vec<String>> = (0..3)
        .map(|i| (0..4).map(|k| format!("n{i}{k}")).collect())
        .collect();
    thread::scope(|s| {
        for i in 0..3 {
            let (h, names) = (f.host(i), &names[i]);
            s.spawn(move || {
                for n in names {
                    h.ok(&["network", "create", "-d", "overlay", n]);
                }
            });
        }
    });
    let all: Vec<Value> = (0..3)
        .flat_map(|i| names[i].iter().map(move |n| (i, n)))
        .map(|(i, n)| inspect(f.host(i), &["network", n]))
        .collect();
    let subnets: BTreeSet<&str> = all
        .iter()
        .map(|n| n["IPAM"]["Config"][0]["Subnet"].as_str().unwrap())
        .collect();
    let vnis: BTreeSet<&str> = all
        .iter()
        .map(|n| n["Options"]["vxlan.id"].as_str().unwrap())
        .collect();
    assert_eq!((subnets.len(), vnis.len()), (12, 12), "{subnets:?} {vnis:?}");

    // Every host starts containers on one network at once.
    for i in 1..3 {
        wait_until("n00 is known everywhere", 5, || {
            f.host(i).berth(&["network", "inspect", "n00"]).code == 0
        });
    }
    thread::scope(|s| {
        for i in 0..3 {
            let h = f.host(i);
            s.spawn(move || {
                for k in 0..5 {
                    run_d(h, &format!("c{i}{k}"), "n00");
                }
            });
        }
    });
    let f = &f;
    let addresses: BTreeSet<String> = (0..3)
        .flat_map(|i| (0..5).map(move |k| f.host(i).address(&format!("c{i}{k}"), "n00")))
        .collect();
    assert_eq!(addresses.len(), 15, "{addresses:?}");
    // A container's MAC goes with its address (02:42 and the IPv4
    // address), so they are unique too.
    let macs: BTreeSet<String> = (0..3)
        .flat_map(|i| {
            (0..5).map(move |k| {
                inspect(f.host(i), &[&format!("c{i}{k}")])["NetworkSettings"]["Networks"]["n00"]["MacAddress"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    assert_eq!(macs.len(), 15, "{macs:?}");
    wait_until("c00 reaches c24", 5, || pings(f.host(0), "c00", "c24"));
}

#[test]
fn overlays_are_isolated_from_their_hosts_and_from_each_other() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&["network", "create", "-d", "overlay", "a"]);
    h0.ok(&["network", "create", "-d", "overlay", "b"]);
    wait_until("host 1 knows b", 5, || {
        h1.berth(&["network", "inspect", "-f", "{{.Name}}", "b"])
            .stdout
            .trim()
            == "b"
    });
    run_d(h0, "a0", "a");
    run_d(h1, "a1", "a");
    run_d(h1, "b1", "b");
    let (ip_a1, ip_b1) = (h1.address("a1", "a"), h1.address("b1", "b"));
    wait_until("a0 reaches a1", 5, || pings(h0, "a0", &ip_a1));
    // Another overlay's container, on the same host as a1: unreachable.
    assert!(!pings(h0, "a0", &ip_b1), "a0 reached b1 on another overlay");
    assert!(
        h0.berth(&["exec", "a0", "--", "getent", "hosts", "b1"]).code != 0,
        "b1 resolves on a"
    );
    // The hosts themselves have no address on the overlays.
    for (h, ip) in [(h0, &ip_a1), (h1, &ip_a1), (h1, &ip_b1)] {
        assert_ne!(h.run("ping", &["-c1", "-W1", ip]).code, 0, "a host reached {ip}");
    }
    // Containers on the gateway bridge cannot reach each other there.
    let gw_b1 = h1.address("b1", "berth_gwbridge");
    h1.ok(&[
        "run",
        "-d",
        "--name",
        "a1b",
        "--network",
        "a",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(
        !pings(h1, "a1b", &gw_b1),
        "containers reached each other over the gateway bridge"
    );
}

#[test]
fn containers_reach_out_and_publish_ports_through_the_gateway_bridge() {
    let f = Fabric::new(berth(), 1);
    let h = f.host(0);
    let inet = h.namespace("internet");
    h.wire(&inet, "up0", "203.0.113.1/24", "203.0.113.2/24");
    h.ok(&["network", "create", "-d", "overlay", "ov"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "ov",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "1000",
    ]);
    // Out: masqueraded behind the host's address.
    let seen = accept_one(&inet, 7000, Duration::from_secs(3));
    h.berth(&[
        "exec",
        "web",
        "--",
        "timeout",
        "3",
        "bash",
        "-c",
        "echo hi > /dev/tcp/203.0.113.2/7000",
    ]);
    assert_eq!(
        seen.join().unwrap().map(|a| a.ip().to_string()).as_deref(),
        Some("203.0.113.1")
    );
    // In: the published port leads to the container's gateway bridge side.
    let seen = accept_one(&sandbox(h, "web"), 80, Duration::from_secs(3));
    run_in(
        &inet,
        "timeout",
        &["3", "bash", "-c", "echo hi > /dev/tcp/203.0.113.1/8080"],
    );
    assert!(
        seen.join().unwrap().is_some(),
        "the published port did not lead to the container"
    );
    assert!(h.ok(&["port", "web"]).contains("80/tcp -> 0.0.0.0:8080"));
    // An internal overlay has no way out, and no ports.
    h.ok(&["network", "create", "-d", "overlay", "--internal", "in"]);
    let e = h.fails(&["run", "--rm", "--network", "in", "-p", "8081:80", "--", "true"]);
    assert!(e.contains("internal"), "{e}");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "inside",
        "--network",
        "in",
        "--",
        "sleep",
        "1000",
    ]);
    let routes = run_in(&sandbox(h, "inside"), "ip", &["route"]).stdout;
    assert!(!routes.contains("default"), "{routes}");
}

#[test]
fn a_network_in_use_on_another_host_is_not_removed() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_until("host 1 knows the network", 5, || {
        h1.berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(h1, "far", "ov");
    let e = h0.fails(&["network", "rm", "ov"]);
    assert!(
        e.contains("network ov has active endpoints") && e.contains("far on ") && e.contains("198.51.100.12"),
        "{e}"
    );
    // Still whole on both hosts.
    h0.ok(&["network", "inspect", "ov"]);
    run_d(h0, "near", "ov");
    wait_until("near reaches far", 5, || pings(h0, "near", "far"));
    h0.ok(&["rm", "-f", "near"]);
    h1.ok(&["rm", "-f", "far"]);
    h0.ok(&["network", "rm", "ov"]);
    wait_until("host 1 forgets it", 5, || {
        h1.berth(&["network", "inspect", "ov"]).code != 0
    });
}

#[test]
fn bad_overlay_input_gets_one_line_and_changes_nothing() {
    // Without a cluster, an overlay cannot be made.
    let alone = TestHost::new(berth());
    let e = alone.fails(&["network", "create", "-d", "overlay", "ov"]);
    assert!(e.contains("--cluster-store"), "{e}");
    assert_eq!(alone.ok(&["network", "ls", "-q"]).lines().count(), 3);
    // Daemon flags.
    let mut bad = TestHost::without_daemon(berth());
    for (args, want) in [
        (
            vec![
                "--cluster-store",
                "http://198.51.100.1:2379",
                "--advertise-addr",
                "lo",
            ],
            "the scheme must be etcd://",
        ),
        (
            vec!["--cluster-store", "etcd://198.51.100.1", "--advertise-addr", "lo"],
            "has no :PORT",
        ),
        (
            vec!["--cluster-store", "etcd://198.51.100.1:2379"],
            "needs --advertise-addr",
        ),
        (vec!["--advertise-addr", "lo"], "need --cluster-store"),
        (
            vec![
                "--cluster-store",
                "etcd://198.51.100.1:2379",
                "--advertise-addr",
                "198.51.100.77",
            ],
            "not an address or interface of this host",
        ),
        (
            vec![
                "--cluster-store",
                "etcd://198.51.100.1:2379",
                "--advertise-addr",
                "lo",
                "--cluster-store-opt",
                "lease-ttl=0",
            ],
            "lease-ttl=0",
        ),
        (
            vec![
                "--cluster-store",
                "etcd://198.51.100.1:2379",
                "--advertise-addr",
                "lo",
                "--cluster-store-opt",
                "cacert=/x",
            ],
            "TLS needs all three",
        ),
    ] {
        let mut child = bad.spawn_daemon(&args).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{args:?} started");
        let log = bad.daemon_log();
        assert!(log.contains(want), "{args:?}: {log}");
        assert!(!log.contains("panicked"), "{log}");
    }
    bad.clear_daemon_env();

    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "vxlan.id=5000",
        "--subnet",
        "10.7.0.0/24",
        "ov",
    ]);
    wait_until("host 1 knows ov", 5, || {
        h1.berth(&["network", "inspect", "ov"]).code == 0
    });
    let before: Vec<String> = (0..2).map(|i| f.host(i).kernel_state()).collect();
    let keys = etcd_keys(&f, "");
    for (args, want) in [
        (vec!["-o", "vxlan.id=0"], "accepted: 1 to 16777215"),
        (vec!["-o", "vxlan.id=abc"], "accepted: 1 to 16777215"),
        (vec!["-o", "vxlan.id=5000"], "vxlan.id 5000 is already used by"),
        (vec!["-o", "mtu=1500"], "at most 1450"),
        (vec!["-o", "mtu=9"], "accepted: 68 to 65535"),
        (vec!["-o", "color=red"], "color"),
        (vec!["--subnet", "10.7.0.0/25"], "10.7.0.0/24"),
    ] {
        let mut a = vec!["network", "create", "-d", "overlay"];
        a.extend(args.iter().copied());
        a.push("ov2");
        let e = h1.fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // The name is the cluster's: another host cannot take it.
    let e = h1.fails(&["network", "create", "-d", "overlay", "ov"]);
    assert!(e.contains("ov"), "{e}");
    // A static address another host's container has.
    run_d(h0, "c0", "ov");
    let ip = h0.address("c0", "ov");
    let e = h1.fails(&["run", "--rm", "--network", "ov", "--ip", &ip, "--", "true"]);
    assert!(e.contains(&ip) && e.contains("in use"), "{e}");
    h0.ok(&["rm", "-f", "c0"]);
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&f.host(i).kernel_state(), before, "host {i}");
    }
    assert_eq!(etcd_keys(&f, ""), keys);
}

#[test]
fn a_host_cut_off_through_a_compaction_catches_up() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&["network", "create", "-d", "overlay", "ov"]);
    wait_until("host 1 knows ov", 5, || {
        h1.berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(h1, "c1", "ov");
    // Host 1 is cut off the underlay: its watch stops.
    h1.sh("ip link set eth0 down");
    run_d(h0, "c0", "ov");
    h0.ok(&["network", "create", "-d", "overlay", "late"]);
    run_d(h0, "l0", "late");
    // etcd forgets the history host 1 would resume from.
    let rev = f.etcdctl(&["endpoint", "status", "-w", "json"]).stdout;
    let rev: Value = serde_json::from_str(&rev).unwrap();
    let rev = rev[0]["Status"]["header"]["revision"]
        .as_u64()
        .unwrap()
        .to_string();
    let c = f.etcdctl(&["compact", &rev]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    // Host 1's connections to etcd break meanwhile: its watch must start
    // again, from a revision that is gone.
    h1.sh("ss -K dst 198.51.100.1 >/dev/null");
    h1.sh("ip link set eth0 up");
    // It reads everything again: the new network and containers are there.
    wait_until("host 1 knows late", 15, || {
        h1.berth(&["network", "inspect", "late"]).code == 0
    });
    wait_until("c1 reaches c0", 10, || pings(h1, "c1", "c0"));
    run_d(h1, "l1", "late");
    wait_until("l1 reaches l0", 5, || pings(h1, "l1", "l0"));
    let log = h1.daemon_log();
    assert!(log.contains("was compacted; reading everything again"), "{log}");
}

#[test]
fn a_daemon_restart_keeps_the_overlay_and_leaks_nothing() {
    let mut f = Fabric::new(berth(), 2);
    let short = ["--cluster-store-opt", "lease-ttl=2"];
    f.host_mut(0).stop_daemon();
    f.start_daemon(0, &short);
    let before = f.host(0).kernel_state();
    f.host(0).ok(&["network", "create", "-d", "overlay", "ov"]);
    let id = net_id(f.host(0), "ov");
    wait_until("host 1 knows ov", 5, || {
        f.host(1).berth(&["network", "inspect", "ov"]).code == 0
    });
    run_d(f.host(0), "c0", "ov");
    run_d(f.host(1), "c1", "ov");
    wait_until("c0 reaches c1", 5, || pings(f.host(0), "c0", "c1"));
    f.host_mut(0).stop_daemon();
    f.start_daemon(0, &short);
    assert!(pings(f.host(0), "c0", "c1"));
    // Past the lease of the daemon that stopped, host 0 is still a host of
    // the cluster, and its containers are still reachable.
    thread::sleep(Duration::from_secs(3));
    assert!(f.host(1).ok(&["info"]).contains("Cluster hosts: 2\n"));
    assert!(pings(f.host(1), "c1", "c0"));
    run_d(f.host(0), "c2", "ov");
    wait_until("c1 reaches c2", 5, || pings(f.host(1), "c1", "c2"));
    assert_eq!(programmed(f.host(0), &id), expected(&f, 0, &id));
    // Host 1's daemon dies; host 0's containers all go meanwhile. When it
    // comes back, its device holds no entry of them: it has no peer left.
    wait_until("host 1 holds c0 and c2", 5, || {
        programmed(f.host(1), &id).len() == 2
    });
    f.host_mut(1).kill_daemon();
    for c in ["c0", "c2"] {
        f.host(0).ok(&["rm", "-f", c]);
    }
    f.start_daemon(1, &[]);
    wait_until("host 1 drops the entries of c0 and c2", 5, || {
        programmed(f.host(1), &id).is_empty()
    });
    f.host(1).ok(&["rm", "-f", "c1"]);
    f.host(0).ok(&["network", "rm", "ov"]);
    assert_eq!(f.host(0).kernel_state(), before);
}

#[test]
fn flags_labels_names_aliases_and_ptr_work_across_hosts() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.20.0.0/16",
        "--gateway",
        "10.20.0.254",
        "--ip-range",
        "10.20.5.0/24",
        "--attachable",
        "--label",
        "team=blue",
        "ov",
    ]);
    h0.ok(&["network", "create", "-d", "overlay", "other"]);
    wait_until("host 1 knows both", 5, || {
        h1.berth(&["network", "inspect", "other"]).code == 0
    });
    for h in [h0, h1] {
        let n = inspect(h, &["network", "ov"]);
        assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.20.0.0/16");
        assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.20.0.254");
        assert_eq!(n["IPAM"]["Config"][0]["IPRange"], "10.20.5.0/24");
        assert_eq!(
            (n["Attachable"].as_bool(), n["Labels"]["team"].as_str()),
            (Some(true), Some("blue"))
        );
        let ls = h.ok(&["network", "ls"]);
        let row: Vec<&str> = ls
            .lines()
            .find(|l| l.contains(" ov "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(&row[1..], ["ov", "overlay", "global"], "{ls}");
    }
    h0.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "ov",
        "--network-alias",
        "web",
        "--",
        "sleep",
        "1000",
    ]);
    run_d(h1, "c2", "ov");
    run_d(h1, "stranger", "other");
    let ip1 = h0.address("c1", "ov");
    assert!(ip1.starts_with("10.20.5."), "{ip1} is outside the ip-range");
    let resolve = |c: &str, what: &str| {
        let r = h1.berth(&["exec", c, "--", "getent", "hosts", what]);
        (r.code == 0).then_some(r.stdout)
    };
    wait_until("c2 resolves c1", 5, || resolve("c2", "c1").is_some());
    assert!(resolve("c2", "web").is_some_and(|o| o.starts_with(&format!("{ip1} "))));
    assert!(
        resolve("c2", &ip1).is_some_and(|o| o.contains("c1.ov")),
        "{:?}",
        resolve("c2", &ip1)
    );
    assert!(pings(h1, "c2", "web"));
    // Nothing of a network the asking container is not on.
    for what in ["c1", "web", &ip1] {
        assert_eq!(resolve("stranger", what), None, "stranger resolved {what}");
    }
}

#[test]
fn a_daemon_starts_without_its_store_and_joins_when_it_answers() {
    let mut f = Fabric::new(berth(), 1);
    f.host_mut(0).stop_daemon();
    f.stop_member(0);
    let t = Instant::now();
    f.start_daemon(0, &[]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "start took {:?}",
        t.elapsed()
    );
    let h = f.host(0);
    // Local networks work.
    h.ok(&["network", "create", "loc"]);
    h.ok(&["run", "--rm", "--network", "loc", "--", "true"]);
    let e = h.fails(&["network", "create", "-d", "overlay", "ov"]);
    assert!(e.contains("cannot be reached"), "{e}");
    assert!(
        h.ok(&["info"])
            .contains("Cluster store: etcd://198.51.100.1:2379 (unreachable")
    );
    f.start_member(0);
    let h = f.host(0);
    wait_until("the store answers", 10, || h.ok(&["info"]).contains("(healthy)"));
    h.ok(&["network", "create", "-d", "overlay", "ov"]);
    h.ok(&["run", "--rm", "--network", "ov", "--", "true"]);
    let info = h.ok(&["info"]);
    assert!(
        info.contains("Cluster hosts: 1\n") && info.contains("joined ") && info.contains("s left"),
        "{info}"
    );
}

#[test]
fn connect_and_disconnect_bring_and_take_the_way_out() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    h0.ok(&["network", "create", "-d", "overlay", "a"]);
    h0.ok(&["network", "create", "-d", "overlay", "b"]);
    wait_until("host 1 knows b", 5, || {
        h1.berth(&["network", "inspect", "-f", "{{.Name}}", "b"])
            .stdout
            .trim()
            == "b"
    });
    run_d(h1, "far", "b");
    let links = |c: &str| -> Vec<String> {
        let out = h0.ok(&["exec", c, "--", "ip", "-o", "-4", "addr", "show"]);
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
            .collect();
        v.retain(|n| n != "lo");
        // Listed in ifindex order, which follows the order the kernel
        // made the links in: the endpoints of one run are wired at once.
        v.sort();
        v
    };
    // On a bridge network first: it has a way out, so no gateway bridge.
    h0.ok(&["network", "create", "br"]);
    run_d(h0, "c", "br");
    h0.ok(&["network", "connect", "a", "c"]);
    assert_eq!(links("c"), ["eth0", "eth1"]);
    assert!(inspect(h0, &["c"])["NetworkSettings"]["Networks"]["berth_gwbridge"].is_null());
    // Started on an overlay: eth1 is on the gateway bridge.
    run_d(h0, "d", "a");
    assert!(!inspect(h0, &["d"])["NetworkSettings"]["Networks"]["berth_gwbridge"].is_null());
    h0.ok(&["network", "connect", "b", "d"]);
    assert_eq!(links("d"), ["eth0", "eth1", "eth2"]);
    wait_until("d reaches far on b", 5, || pings(h0, "d", "far"));
    // The gateway bridge stays while an overlay needs it, and goes with the last.
    h0.ok(&["network", "disconnect", "a", "d"]);
    assert!(!inspect(h0, &["d"])["NetworkSettings"]["Networks"]["berth_gwbridge"].is_null());
    assert!(pings(h0, "d", "far"));
    h0.ok(&["network", "disconnect", "b", "d"]);
    assert!(inspect(h0, &["d"])["NetworkSettings"]["Networks"]["berth_gwbridge"].is_null());
    assert_eq!(links("d"), Vec::<String>::new());
    // Its endpoints left the cluster with it: far's host no longer holds d.
    let id = net_id(h1, "b");
    wait_until("host 1 forgets d", 5, || programmed(h1, &id).is_empty());
}

#[test]
fn overlay_subnets_skip_host_routes_and_may_overlap_them() {
    let f = Fabric::new(berth(), 2);
    let (h0, h1) = (f.host(0), f.host(1));
    // Host 0 has a route to 10.0.0.0/24 (a link of its own there).
    h0.sh("ip link add lan0 type veth peer name lan0p && ip addr add 10.0.0.1/24 dev lan0 && ip link set lan0 up");
    h0.ok(&["network", "create", "-d", "overlay", "auto"]);
    let auto = inspect(h0, &["network", "auto"]);
    assert_eq!(auto["IPAM"]["Config"][0]["Subnet"], "10.0.1.0/24", "{auto:#}");
    // Asked for, an overlay may take the host route's subnet: the host has
    // no address on it, and its containers reach each other across hosts.
    h0.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.0.0.0/24",
        "shadow",
    ]);
    wait_until("host 1 knows shadow", 5, || {
        h1.berth(&["network", "inspect", "shadow"]).code == 0
    });
    run_d(h0, "s0", "shadow");
    run_d(h1, "s1", "shadow");
    let ip1 = h1.address("s1", "shadow");
    wait_until("s0 reaches s1", 5, || pings(h0, "s0", &ip1));
    assert!(h0.sh("ip route show 10.0.0.0/24").contains("dev lan0"));
}

#[test]
fn a_prefix_keeps_two_clusters_apart_on_one_etcd() {
    let mut f = Fabric::new(berth(), 2);
    f.host_mut(1).stop_daemon();
    f.start_daemon(1, &["--cluster-store-opt", "prefix=/team-b"]);
    f.host(0).ok(&["network", "create", "-d", "overlay", "ov"]);
    f.host(1).ok(&["network", "create", "-d", "overlay", "ov"]);
    thread::sleep(Duration::from_millis(300));
    // Each cluster has its own ov, its own subnet pool and VNI pool.
    let (n0, n1) = (
        inspect(f.host(0), &["network", "ov"]),
        inspect(f.host(1), &["network", "ov"]),
    );
    assert_ne!(n0["Id"], n1["Id"]);
    assert_eq!(
        (
            n0["Options"]["vxlan.id"].as_str(),
            n1["Options"]["vxlan.id"].as_str()
        ),
        (Some("4096"), Some("4096"))
    );
    assert!(f.host(1).ok(&["info"]).contains("Cluster hosts: 1\n"));
    let b = f.etcdctl(&["get", "--prefix", "--keys-only", "/team-b/"]).stdout;
    assert!(
        b.contains("/team-b/networks/") && b.contains("/team-b/hosts/"),
        "{b}"
    );
    assert!(!etcd_keys(&f, "networks/").is_empty());
}

#[test]
fn an_address_claimed_elsewhere_first_is_passed_over() {
    let f = Fabric::new(berth(), 1);
    let h = f.host(0);
    h.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.60.0.0/24",
        "ov",
    ]);
    let id = net_id(h, "ov");
    // A claim this host's pools cannot know of: as if another host had
    // taken 10.60.0.2 a moment ago.
    let put = f.etcdctl(&["put", &format!("/berth/v1/addresses/{id}/10.60.0.2"), "elsewhere"]);
    assert_eq!(put.code, 0, "{}", put.stderr);
    let before = h.kernel_state();
    let e = h.fails(&[
        "run",
        "--rm",
        "--network",
        "ov",
        "--ip",
        "10.60.0.2",
        "--",
        "true",
    ]);
    assert!(e.contains("address 10.60.0.2 is already in use"), "{e}");
    assert_eq!(h.kernel_state(), before);
    run_d(h, "c", "ov");
    assert_eq!(h.address("c", "ov"), "10.60.0.3");
    let mac = inspect(h, &["c"])["NetworkSettings"]["Networks"]["ov"]["MacAddress"].clone();
    assert_eq!(mac, "02:42:0a:3c:00:03");
    let inside = run_in(&sandbox(h, "c"), "ip", &["-o", "addr", "show", "eth0"]).stdout;
    assert!(
        inside.contains("10.60.0.3/24") && !inside.contains("10.60.0.2/"),
        "{inside}"
    );
    let link = run_in(&sandbox(h, "c"), "ip", &["-o", "link", "show", "eth0"]).stdout;
    assert!(link.contains("02:42:0a:3c:00:03"), "{link}");
    // Its claim is the store's too, under its own endpoint.
    let owner = f.etcdctl(&[
        "get",
        "--print-value-only",
        &format!("/berth/v1/addresses/{id}/10.60.0.3"),
    ]);
    let ep = inspect(h, &["c"])["NetworkSettings"]["Networks"]["ov"]["EndpointID"].clone();
    assert_eq!(owner.stdout.trim(), ep.as_str().unwrap());
}
