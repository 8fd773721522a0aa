//! `berth daemon --serve-docker` across hosts: two test hosts on one
//! underlay with a real etcd (testkit's `Fabric`), each with a berth daemon
//! in the cluster serving dockerd and a real dockerd (Debian's docker.io)
//! using those sockets. One berth overlay network is a Docker network on
//! both hosts (`-d berth-overlay --ipam-driver berth -o berth.network=NAME
//! --ipam-opt berth.network=NAME`); Docker's containers of both hosts and
//! berth's reach each other across the hosts, their addresses claimed
//! cluster-wide in etcd; a berth restart and a dockerd restart on one host
//! lose nothing; removing everything leaves nothing in the kernels (but
//! Docker's own `docker_gwbridge` and iptables tables) or in etcd.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use berth_testkit::dockerd::{Dockerd, IMAGE, post};
use berth_testkit::fabric::Fabric;
use serde_json::json;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Waits up to `secs` for `f`, polling; panics naming `what`.
fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Where host `h`'s daemon serves dockerd.
fn served(h: &TestHost) -> PathBuf {
    h.root.join("plugins-served")
}

/// Restarts host `i`'s daemon in the cluster, serving dockerd.
fn serve(f: &mut Fabric, i: usize) {
    let arg = format!("--serve-docker={}", served(f.host(i)).display());
    f.host_mut(i).stop_daemon();
    f.start_daemon(i, &[&arg]);
}

/// A container's IPv4 address on a Docker network, as `docker inspect` says.
fn docker_ip(d: &Dockerd, container: &str, net: &str) -> String {
    let ip = d.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        container,
    ]);
    assert!(!ip.is_empty(), "{container} has no address on {net}");
    ip
}

fn docker_pings(d: &Dockerd, from: &str, ip: &str) -> bool {
    d.docker(&["exec", from, "ping", "-c", "1", "-W", "2", ip]).code == 0
}

/// The test host's kernel state without Docker's own iptables tables
/// (`ip nat`, `ip filter` and their IPv6 twins, through iptables-nft),
/// whose order, rules and counters dockerd's restarts and traffic change.
fn kernel(h: &TestHost) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in h.kernel_state().lines() {
        if line.starts_with("table ip nat ")
            || line.starts_with("table ip filter ")
            || line.starts_with("table ip6 nat ")
            || line.starts_with("table ip6 filter ")
        {
            skipping = true;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
        if skipping && line == "}" {
            skipping = false;
        }
    }
    out
}

/// Whether berth's accept rule is in Docker's `DOCKER-USER` chain.
fn berth_accepts_in_docker_user(h: &TestHost) -> bool {
    let chain = h
        .run("nft", &["list", "chain", "ip", "filter", "DOCKER-USER"])
        .stdout;
    chain.contains("meta mark & 0x01000000 == 0x01000000")
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
fn docker_containers_of_two_hosts_share_one_berth_overlay() {
    let mut f = Fabric::new(berth(), 2);
    serve(&mut f, 0);
    serve(&mut f, 1);
    let d0 = Dockerd::start(f.host(0), &served(f.host(0)));
    let mut d1 = Dockerd::start(f.host(1), &served(f.host(1)));
    // A container whose only network is an overlay gets its way out
    // through Docker's `docker_gwbridge`, which Docker makes with the first
    // one and keeps: made here first, as Docker's documentation says to do
    // to choose its options, so that the snapshot has it.
    for d in [&d0, &d1] {
        d.ok(&[
            "network",
            "create",
            "-d",
            "bridge",
            "-o",
            "com.docker.network.bridge.name=docker_gwbridge",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "docker_gwbridge",
        ]);
    }
    // berth puts its accept rule into Docker's DOCKER-USER chain when it
    // starts beside a dockerd: restarted here, as on a machine where
    // dockerd started first (the rule is checked at the end).
    serve(&mut f, 0);
    serve(&mut f, 1);
    let before: Vec<String> = (0..2).map(|i| kernel(f.host(i))).collect();
    let (h0, h1) = (f.host(0), f.host(1));

    // The berth overlay network, made once; the other host has it through etcd.
    let id = h0
        .ok(&["network", "create", "-d", "overlay", "ov"])
        .trim()
        .to_owned();
    wait_until("host 1 knows the network", 10, || {
        h1.berth(&["network", "inspect", "ov"]).code == 0
    });
    let subnet = h0
        .ok(&[
            "network",
            "inspect",
            "--format",
            "{{(index .IPAM.Config 0).Subnet}}",
            "ov",
        ])
        .trim()
        .to_owned();
    assert!(subnet.starts_with("10."), "berth's global pool: {subnet}");

    // The same Docker network on both hosts: it is berth's network `ov`.
    for d in [&d0, &d1] {
        d.ok(&[
            "network",
            "create",
            "-d",
            "berth-overlay",
            "--ipam-driver",
            "berth",
            "-o",
            "berth.network=ov",
            "--ipam-opt",
            "berth.network=ov",
            "dov",
        ]);
        let shown = d.ok(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}} {{.Driver}}",
            "dov",
        ]);
        assert_eq!(shown, format!("{subnet} berth-overlay"));
    }
    // berth still has one overlay network, no second one per Docker network.
    for h in [h0, h1] {
        let ls = h.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
        assert_eq!(ls.lines().filter(|l| l.ends_with(" overlay")).count(), 1, "{ls}");
    }

    for (d, name) in [(&d0, "da"), (&d1, "db")] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "dov",
            IMAGE,
            "sleep",
            "600",
        ]);
    }
    let (ip_a, ip_b) = (docker_ip(&d0, "da", "dov"), docker_ip(&d1, "db", "dov"));
    assert_ne!(ip_a, ip_b, "both hosts gave the same address");
    let net: ipnet::IpNet = subnet.parse().unwrap();
    for ip in [&ip_a, &ip_b] {
        assert!(net.contains(&ip.parse::<IpAddr>().unwrap()), "{ip} not in {net}");
    }
    // Docker's addresses are claimed in the cluster store.
    let claimed = etcd_keys(&f, &format!("addresses/{id}/"));
    for ip in [&ip_a, &ip_b] {
        assert!(
            claimed.iter().any(|k| k.ends_with(&format!("/{ip}"))),
            "{ip} is not claimed in etcd: {claimed:?}"
        );
    }
    // Host 1's berth gives none of host 0's addresses, asked through its
    // IPAM or through an endpoint with another IPAM's address.
    let dir1 = served(h1);
    let (status, v) = post(
        &dir1.join("berth.sock"),
        "/IpamDriver.RequestAddress",
        &json!({"PoolID": subnet, "Address": ip_a, "Options": {}}).to_string(),
    );
    assert_eq!(status, 500, "{v}");
    assert!(v["Err"].as_str().unwrap().contains("another host"), "{v}");
    let dov1 = d1.ok(&["network", "inspect", "-f", "{{.Id}}", "dov"]);
    let (status, v) = post(
        &dir1.join("berth-overlay.sock"),
        "/NetworkDriver.CreateEndpoint",
        &json!({
            "NetworkID": dov1,
            "EndpointID": "e9d0000000000000000000000000000000000000000000000000000000000002",
            "Interface": {"Address": format!("{ip_a}/{}", net.prefix_len())},
        })
        .to_string(),
    );
    assert_eq!(status, 500, "{v}");
    assert!(v["Err"].as_str().unwrap().contains("another host"), "{v}");
    wait_until("da pings db across the hosts", 10, || {
        docker_pings(&d0, "da", &ip_b)
    });
    wait_until("db pings da across the hosts", 10, || {
        docker_pings(&d1, "db", &ip_a)
    });

    // A berth container on host 0 and Docker's on host 1.
    h0.run_sleeper("bc", "ov");
    let ip_bc = h0.address("bc", "ov");
    assert!(
        ip_bc != ip_a && ip_bc != ip_b,
        "berth gave Docker's address {ip_bc}"
    );
    wait_until("bc pings db across the hosts", 10, || {
        h0.berth(&["exec", "bc", "--", "ping", "-c1", "-W2", &ip_b]).code == 0
    });
    wait_until("db pings bc across the hosts", 10, || {
        docker_pings(&d1, "db", &ip_bc)
    });
    // berth's resolver names Docker's endpoint by its id's first 12 digits.
    let ep = d1.ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"dov\").EndpointID}}",
        "db",
    ]);
    let short = &ep[..12];
    h0.ok(&["exec", "bc", "--", "ping", "-c1", "-W2", short]);

    // Docker's endpoints are announced like berth's: three on the network.
    let announced = etcd_keys(&f, &format!("endpoints/{id}/"));
    assert_eq!(announced.len(), 3, "{announced:?}");

    // berth restarts on host 1 (a new lease): Docker's address there is
    // claimed again and its endpoint announced again, and both hosts'
    // containers still reach it.
    serve(&mut f, 1);
    let (h0, h1) = (f.host(0), f.host(1));
    wait_until("db is announced again", 15, || {
        etcd_keys(&f, &format!("endpoints/{id}/")).len() == 3
    });
    // Longer than the lease (10 s) of the daemon that stopped.
    thread::sleep(Duration::from_secs(11));
    let claimed = etcd_keys(&f, &format!("addresses/{id}/"));
    for ip in [&ip_a, &ip_b, &ip_bc] {
        assert!(
            claimed.iter().any(|k| k.ends_with(&format!("/{ip}"))),
            "{ip} is no longer claimed after the restart: {claimed:?}\nhost 1's log:\n{}",
            f.host(1).daemon_log()
        );
    }
    assert_eq!(etcd_keys(&f, &format!("endpoints/{id}/")).len(), 3);
    wait_until("da pings db after the restart", 10, || {
        docker_pings(&d0, "da", &ip_b)
    });
    wait_until("db pings bc after the restart", 10, || {
        docker_pings(&d1, "db", &ip_bc)
    });
    // A new container on host 1 gets none of the others' addresses.
    d1.ok(&[
        "run",
        "-d",
        "--name",
        "dc",
        "--network",
        "dov",
        IMAGE,
        "sleep",
        "600",
    ]);
    let ip_c = docker_ip(&d1, "dc", "dov");
    assert!(![&ip_a, &ip_b, &ip_bc].contains(&&ip_c), "{ip_c} given twice");
    wait_until("dc pings da across the hosts", 10, || {
        docker_pings(&d1, "dc", &ip_a)
    });
    d1.ok(&["rm", "-f", "dc"]);

    // dockerd restarts on host 1: db stops, starts again on the network,
    // and the cluster holds exactly the addresses in use.
    d1.restart();
    d1.ok(&["start", "db"]);
    let ip_b = docker_ip(&d1, "db", "dov");
    assert!(![&ip_a, &ip_bc].contains(&&ip_b), "{ip_b} given twice");
    wait_until("db pings da after dockerd's restart", 10, || {
        docker_pings(&d1, "db", &ip_a)
    });
    wait_until("da pings db after dockerd's restart", 10, || {
        docker_pings(&d0, "da", &ip_b)
    });
    let mut claimed: Vec<String> = etcd_keys(&f, &format!("addresses/{id}/"))
        .iter()
        .map(|k| k.rsplit('/').next().unwrap().to_owned())
        .collect();
    claimed.sort();
    let mut want = vec![ip_a.clone(), ip_b.clone(), ip_bc.clone()];
    want.sort();
    assert_eq!(claimed, want, "the addresses claimed in etcd");
    assert_eq!(etcd_keys(&f, &format!("endpoints/{id}/")).len(), 3);

    // Everything goes; nothing is left in the kernels or the store.
    h0.ok(&["rm", "-f", "bc"]);
    d0.ok(&["rm", "-f", "da"]);
    d1.ok(&["rm", "-f", "db"]);
    d0.ok(&["network", "rm", "dov"]);
    d1.ok(&["network", "rm", "dov"]);
    h0.ok(&["network", "rm", "ov"]);
    wait_until("host 1 forgets the network", 10, || {
        h1.berth(&["network", "inspect", "ov"]).code != 0
    });
    for prefix in ["endpoints/", "addresses/", "networks/"] {
        let left = etcd_keys(&f, prefix);
        assert!(left.is_empty(), "left in etcd: {left:?}");
    }
    for (i, before) in before.iter().enumerate() {
        assert_eq!(&kernel(f.host(i)), before, "host {i}");
        assert!(berth_accepts_in_docker_user(f.host(i)), "host {i}");
    }
}
