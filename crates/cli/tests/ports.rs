//! Published ports (`-p`, `-P`, `--expose`, `berth port`): reachable from an
//! outside client, from the host by its address and by 127.0.0.1, from a
//! container on the same network (hairpin); conflicts; ranges as one map
//! element; cleanup on rm and --rm; bad input; the firewall put back after a
//! flush (reconcile, SIGHUP, restart); an iptables FORWARD DROP policy;
//! IPv6. The outside client is a namespace wired to the test host;
//! nothing leaves the test's namespaces.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{TestHost, run_in};
use serde_json::Value;

const HOST_IP: &str = "203.0.113.1";
const CLIENT_IP: &str = "203.0.113.2";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// A host with an outside client at 203.0.113.2 that reaches the host at
/// 203.0.113.1 (and at fd99::1 / fd99::2 over IPv6).
fn world_of(h: &TestHost) -> PathBuf {
    let client = h.namespace("client");
    h.wire(&client, "up0", "203.0.113.1/24", "203.0.113.2/24");
    h.sh("ip -6 addr add fd99::1/64 dev up0 nodad");
    let r = run_in(
        &client,
        "sh",
        &[
            "-c",
            "ip -6 addr add fd99::2/64 dev eth0 nodad && ip -6 route add default via fd99::1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    client
}

fn world() -> (TestHost, PathBuf) {
    let h = TestHost::new(bin());
    let client = world_of(&h);
    (h, client)
}

fn inspect(h: &TestHost, name: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", name])).expect("inspect prints JSON");
    v[0].clone()
}

fn sandbox(h: &TestHost, name: &str) -> PathBuf {
    PathBuf::from(
        inspect(h, name)["NetworkSettings"]["SandboxKey"]
            .as_str()
            .expect("a sandbox key"),
    )
}

/// Listens on TCP `port` on every address (IPv4 and IPv6) inside the
/// namespace at `ns`; yields the first peer's address, or `None` after 5 s.
fn listen(ns: &Path, port: u16) -> thread::JoinHandle<Option<IpAddr>> {
    let f = File::open(ns).expect("opening a namespace");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is open.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let _ = tx.send(false);
            return None;
        }
        let Ok(listener) = std::net::TcpListener::bind(("::", port)) else {
            let _ = tx.send(false);
            return None;
        };
        listener.set_nonblocking(true).ok()?;
        let _ = tx.send(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((_, peer)) => return Some(peer.ip().to_canonical()),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        None
    });
    assert_eq!(rx.recv().ok(), Some(true), "listening in {}", ns.display());
    handle
}

fn tcp_script(ip: &str, port: u16) -> String {
    format!("timeout 3 bash -c 'echo hi > /dev/tcp/{ip}/{port}'")
}

/// Connects from the namespace `from` to `ip:port` while the container's
/// namespace listens on `ctr_port`; returns the source the container saw.
fn seen_from_ns(server: &Path, ctr_port: u16, from: &Path, ip: &str, port: u16) -> Option<IpAddr> {
    let seen = listen(server, ctr_port);
    let _ = run_in(from, "bash", &["-c", &tcp_script(ip, port)]);
    seen.join().expect("listener thread")
}

/// The same, connecting from inside container `from`.
fn seen_from_ctr(
    h: &TestHost,
    server: &Path,
    ctr_port: u16,
    from: &str,
    ip: &str,
    port: u16,
) -> Option<IpAddr> {
    let seen = listen(server, ctr_port);
    let _ = h.berth(&["exec", from, "--", "bash", "-c", &tcp_script(ip, port)]);
    seen.join().expect("listener thread")
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("an address"))
}

/// The elements of a map of berth's table, listed inside the test host.
fn map(h: &TestHost, name: &str) -> Vec<Value> {
    let out = h.sh(&format!("nft -j list map inet berth {name}"));
    let v: Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|o| o["map"]["elem"].as_array().cloned())
        .unwrap_or_default()
}

/// Every element of berth's port maps.
fn all_port_elements(h: &TestHost) -> usize {
    [
        "dnat4",
        "dnat4_keep",
        "dnat4_any",
        "dnat4_any_keep",
        "dnat6",
        "dnat6_keep",
        "dnat6_any",
        "dnat6_any_keep",
    ]
    .iter()
    .map(|m| map(h, m).len())
    .sum()
}

fn run_d(h: &TestHost, name: &str, net: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", net];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sleep", "600"]);
    h.ok(&args);
}

#[test]
fn a_published_port_is_reachable_from_outside_the_host_localhost_and_a_neighbour() {
    let (h, client) = world();
    h.ok(&["network", "create", "--subnet", "10.50.0.0/24", "web"]);
    run_d(&h, "srv", "web", &["-p", "8080:80"]);
    run_d(&h, "nb", "web", &[]);
    let srv = sandbox(&h, "srv");
    let ctr_ip = inspect(&h, "srv")["NetworkSettings"]["Networks"]["web"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();

    // An outside client: the container sees the client itself.
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        ip(CLIENT_IP),
        "outside client through the host's address"
    );
    // The host itself, by its address: no masquerade needed.
    assert_eq!(seen_from_ns(&srv, 80, &h.ns, HOST_IP, 8080), ip(HOST_IP));
    // The host by 127.0.0.1: masqueraded to the bridge's address.
    assert_eq!(
        seen_from_ns(&srv, 80, &h.ns, "127.0.0.1", 8080),
        ip("10.50.0.1"),
        "localhost"
    );
    // A neighbour on the same network through the host's address
    // (hairpin), and the container itself: masqueraded.
    assert_eq!(
        seen_from_ctr(&h, &srv, 80, "nb", HOST_IP, 8080),
        ip("10.50.0.1"),
        "hairpin"
    );
    // The container port itself is not open from outside.
    assert_eq!(seen_from_ns(&srv, 80, &client, HOST_IP, 80), None);
    // Only published ports go in; the container's own address is not
    // routed to from the client (no route) — and the map holds one element.
    let elems = map(&h, "dnat4_any");
    assert_eq!(elems.len(), 1, "{elems:?}");
    assert_eq!(elems[0][1]["concat"][0], Value::from(ctr_ip.as_str()));

    // berth port, inspect, network inspect.
    assert_eq!(h.ok(&["port", "srv"]).trim(), "80/tcp -> 0.0.0.0:8080");
    assert_eq!(h.ok(&["port", "srv", "80"]).trim(), "0.0.0.0:8080");
    let ps = h.ok(&["ps"]);
    assert!(
        ps.starts_with("CONTAINER ID")
            && ps
                .lines()
                .any(|l| l.contains("srv") && l.contains("0.0.0.0:8080->80/tcp")),
        "berth ps shows no PORTS for srv:\n{ps}"
    );
    let v = inspect(&h, "srv");
    assert_eq!(
        v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        Value::from("8080")
    );
    // What was asked (no address given: empty, as Docker keeps it).
    assert_eq!(
        v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"],
        Value::from("")
    );
    let n: Value = serde_json::from_str(&h.ok(&["network", "inspect", "web"])).unwrap();
    let members = n[0]["Containers"].as_object().unwrap();
    let srv_member = members.values().find(|m| m["Name"] == "srv").unwrap();
    assert_eq!(srv_member["Ports"], serde_json::json!(["0.0.0.0:8080->80/tcp"]));
}

#[test]
fn a_range_is_one_element_and_a_shifted_range_or_host_ip_works() {
    let (h, client) = world();
    h.ok(&["network", "create", "--subnet", "10.52.0.0/24", "r"]);
    run_d(
        &h,
        "rng",
        "r",
        &[
            "-p",
            "7000-7999:7000-7999",
            "-p",
            "9000-9099:9000-9099/udp",
            "-p",
            "8100-8102:81-83",
            "-p",
            &format!("{HOST_IP}:6000:6001"),
        ],
    );
    let keep = map(&h, "dnat4_any_keep");
    assert_eq!(keep.len(), 2, "one element per range: {keep:?}");
    let ranges: Vec<&Value> = keep.iter().map(|e| &e[0]["concat"][1]["range"]).collect();
    assert!(ranges.contains(&&serde_json::json!([7000, 7999])), "{keep:?}");
    assert!(ranges.contains(&&serde_json::json!([9000, 9099])), "{keep:?}");
    assert_eq!(
        map(&h, "dnat4_any").len(),
        3,
        "a shifted range is one element per port: {}",
        h.sh("nft list map inet berth dnat4_any")
    );
    let on_ip = map(&h, "dnat4");
    assert_eq!(on_ip.len(), 1, "{on_ip:?}");
    assert_eq!(on_ip[0][0]["concat"][0], Value::from(HOST_IP));

    let srv = sandbox(&h, "rng");
    assert_eq!(seen_from_ns(&srv, 7500, &client, HOST_IP, 7500), ip(CLIENT_IP));
    assert_eq!(seen_from_ns(&srv, 82, &client, HOST_IP, 8101), ip(CLIENT_IP));
    assert_eq!(seen_from_ns(&srv, 6001, &client, HOST_IP, 6000), ip(CLIENT_IP));
    // 6000 is published on 203.0.113.1 only, not on the host's other addresses.
    assert_eq!(seen_from_ns(&srv, 6001, &h.ns, "127.0.0.1", 6000), None);
    let ports = h.ok(&["port", "rng"]);
    assert!(ports.contains("7999/tcp -> 0.0.0.0:7999"), "{ports}");
    assert!(ports.contains("82/tcp -> 0.0.0.0:8101"), "{ports}");
    assert!(ports.contains("9050/udp -> 0.0.0.0:9050"), "{ports}");
}

#[test]
fn ephemeral_ports_and_publish_all() {
    let (h, client) = world();
    h.sh("echo '41000 41999' > /proc/sys/net/ipv4/ip_local_port_range");
    h.ok(&["network", "create", "--subnet", "10.53.0.0/24", "e"]);
    run_d(&h, "eph", "e", &["-p", "80", "-p", "127.0.0.1::81"]);
    let port: u16 = h
        .ok(&["port", "eph", "80/tcp"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((41000..=41999).contains(&port), "{port}");
    let local = h.ok(&["port", "eph", "81"]);
    assert!(local.starts_with("127.0.0.1:41"), "{local}");
    assert_eq!(
        inspect(&h, "eph")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        Value::from(port.to_string())
    );
    let srv = sandbox(&h, "eph");
    assert_eq!(seen_from_ns(&srv, 80, &client, HOST_IP, port), ip(CLIENT_IP));

    run_d(
        &h,
        "all",
        "e",
        &["-P", "--expose", "80", "--expose", "53/udp", "--expose", "90-91"],
    );
    let out = h.ok(&["port", "all"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for want in ["53/udp -> 0.0.0.0:41", "80/tcp -> 0.0.0.0:41", "90/tcp", "91/tcp"] {
        assert!(out.contains(want), "{want} in {out}");
    }
    assert_ne!(h.ok(&["port", "all", "80"]).trim(), format!("0.0.0.0:{port}"));
    assert!(inspect(&h, "all")["Config"]["ExposedPorts"]["53/udp"].is_object());
}

#[test]
fn two_containers_cannot_publish_the_same_port_nor_a_port_a_process_holds() {
    let (h, _client) = world();
    h.ok(&["network", "create", "--subnet", "10.54.0.0/24", "c"]);
    run_d(&h, "first", "c", &["-p", "8080:80", "-p", "9000-9010:9000-9010"]);
    let before = h.kernel_state();
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "c",
        "-p",
        "8080:81",
        "--",
        "sleep",
        "9",
    ]);
    assert!(e.contains("already published by container first"), "{e}");
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "c",
        "-p",
        &format!("{HOST_IP}:9005:80"),
        "--",
        "sleep",
        "9",
    ]);
    assert!(e.contains("already published by container first"), "{e}");
    // Another protocol on the same port is fine.
    run_d(&h, "udp", "c", &["-p", "8080:80/udp"]);
    h.ok(&["rm", "-f", "udp"]);

    // A process on the host holds 8181.
    let f = File::open(&h.ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is open.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = std::net::TcpListener::bind(("0.0.0.0", 8181)).unwrap();
        tx.send(()).unwrap();
        let _ = stop_rx.recv_timeout(Duration::from_secs(30));
        drop(l);
    });
    rx.recv().unwrap();
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "c",
        "-p",
        "8181:80",
        "--",
        "sleep",
        "9",
    ]);
    assert!(e.contains("in use by a process on the host"), "{e}");
    assert!(
        e.contains(&format!("pid {}", std::process::id())),
        "names the process: {e}"
    );
    stop_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(before, h.kernel_state(), "refusals leave nothing");
    assert_ne!(
        h.berth(&["inspect", "--type", "container", "second"]).code,
        0,
        "no container was made"
    );
}

#[test]
fn bad_input_gets_one_line_each_and_creates_nothing() {
    let h = TestHost::new(bin());
    h.ok(&["network", "create", "--subnet", "10.55.0.0/24", "b"]);
    h.sh("ip link add par0 type bridge && ip link set par0 up");
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=par0",
        "--subnet",
        "10.56.0.0/24",
        "mv",
    ]);
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.57.0.0/24",
        "inner",
    ]);
    let before = h.kernel_state();
    for (net, spec, want) in [
        ("b", "0:80", "port 0 is out of range"),
        ("b", "8080:70000", "port 70000 is out of range"),
        ("b", "90-80:90-80", "port range 90-80 is reversed"),
        (
            "b",
            "8000-8005:80-90",
            "host range 8000-8005 has 6 ports but the container range 80-90 has 11",
        ),
        ("b", "80/icmp", "unknown protocol \"icmp\""),
        (
            "b",
            "10.99.99.99:8080:80",
            "host address 10.99.99.99 is not an address of this host",
        ),
        ("b", "[fd00::1]:8080:80", "network b has no IPv6"),
        (
            "host",
            "80",
            "with --network host the container shares the host's ports",
        ),
        ("none", "80", "with --network none the container has no interface"),
        (
            "mv",
            "80",
            "(driver macvlan) have their own address on the parent link",
        ),
        ("inner", "80", "network inner is --internal"),
    ] {
        let e = h.fails(&[
            "run",
            "-d",
            "--name",
            "bad",
            "--network",
            net,
            "-p",
            spec,
            "--",
            "sleep",
            "9",
        ]);
        assert!(e.contains(want), "-p {spec} on {net}: {e}");
    }
    let e = h.fails(&[
        "run", "-d", "--name", "bad", "-P", "--expose", "99999", "--", "sleep", "9",
    ]);
    assert!(e.contains("invalid --expose \"99999\""), "{e}");
    assert_eq!(before, h.kernel_state(), "nothing was created");
    assert_eq!(h.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn rm_and_an_exit_with_rm_unpublish() {
    let (h, client) = world();
    h.ok(&["network", "create", "--subnet", "10.58.0.0/24", "g"]);
    // Publishing and unpublishing change elements only, never rules.
    let rules = h.sh("nft -t list table inet berth");
    run_d(&h, "gone", "g", &["-p", "8080:80", "-p", "7000-7099:7000-7099"]);
    assert_eq!(all_port_elements(&h), 2);
    assert_eq!(h.sh("nft -t list table inet berth"), rules);
    h.ok(&["rm", "-f", "gone"]);
    assert_eq!(all_port_elements(&h), 0);
    assert_eq!(h.sh("nft -t list table inet berth"), rules);
    // The port is free again.
    run_d(&h, "again", "g", &["-p", "8080:80"]);
    h.ok(&["rm", "-f", "again"]);

    // A --rm container publishes while it runs and unpublishes when it ends.
    h.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "brief",
        "--network",
        "g",
        "-p",
        "8090:80",
        "--",
        "sleep",
        "1",
    ]);
    assert_eq!(all_port_elements(&h), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.ok(&["ps", "-a"]).contains("brief") {
        assert!(Instant::now() < deadline, "the --rm container was not removed");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(all_port_elements(&h), 0);
    // A foreground --rm container too.
    h.ok(&[
        "run",
        "--rm",
        "--name",
        "fg",
        "--network",
        "g",
        "-p",
        "8090:80",
        "--",
        "true",
    ]);
    assert_eq!(all_port_elements(&h), 0);
    // An exit without --rm unpublishes (the record stays).
    h.ok(&[
        "run",
        "--name",
        "done",
        "--network",
        "g",
        "-p",
        "8091:80",
        "--",
        "true",
    ]);
    assert_eq!(all_port_elements(&h), 0);
    assert_eq!(h.ok(&["port", "done"]).trim(), "");
    let srv = h.namespace("probe");
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8091),
        None,
        "nothing answers"
    );
}

#[test]
fn the_firewall_comes_back_after_a_flush_by_reconcile_sighup_and_restart() {
    let (mut h, client) = world();
    h.ok(&["network", "create", "--subnet", "10.59.0.0/24", "f"]);
    run_d(
        &h,
        "keep",
        "f",
        &["-p", "8080:80", "-p", "7000-7009:7000-7009/udp"],
    );
    let srv = sandbox(&h, "keep");
    let full = h.sh("nft list table inet berth");
    // Someone flushes everything, iptables tables and all.
    h.sh("nft add table ip other && nft flush ruleset && nft add table ip other");
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        None,
        "gone after the flush"
    );
    h.ok(&["system", "reconcile"]);
    assert_eq!(
        h.sh("nft list table inet berth"),
        full,
        "reconcile puts back the same table"
    );
    assert!(
        h.sh("nft list tables").contains("table ip other"),
        "other tables untouched"
    );
    assert_eq!(seen_from_ns(&srv, 80, &client, HOST_IP, 8080), ip(CLIENT_IP));

    // SIGHUP does the same.
    h.sh("nft delete table inet berth");
    let pid = std::fs::read_to_string(h.data_root().join("berth.lock")).unwrap();
    h.sh(&format!("kill -HUP {}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.run("nft", &["list", "table", "inet", "berth"]).code != 0 {
        assert!(Instant::now() < deadline, "SIGHUP did not re-install the table");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(all_port_elements(&h), 2);

    // A crash, a flush, a restart: the bindings come back from the store.
    h.kill_daemon();
    h.sh("nft delete table inet berth");
    h.start_daemon(&[]);
    assert_eq!(h.sh("nft list table inet berth"), full);
    assert!(h.ok(&["port", "keep"]).contains("80/tcp -> 0.0.0.0:8080"));
    assert_eq!(seen_from_ns(&srv, 80, &client, HOST_IP, 8080), ip(CLIENT_IP));
    // And the restored bindings still hold their ports.
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "dup",
        "--network",
        "f",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "9",
    ]);
    assert!(e.contains("already published by container keep"), "{e}");
}

#[test]
fn an_iptables_forward_drop_policy_does_not_stop_berth() {
    let mut h = TestHost::without_daemon(bin());
    let client = world_of(&h);
    // What Docker does to the host: iptables(-nft) filter FORWARD policy DROP.
    h.sh("iptables -P FORWARD DROP && ip6tables -P FORWARD DROP");
    h.start_daemon(&[]);
    h.ok(&["network", "create", "--subnet", "10.60.0.0/24", "d"]);
    run_d(&h, "behind", "d", &["-p", "8080:80"]);
    let srv = sandbox(&h, "behind");
    assert!(
        h.sh("iptables -S FORWARD").contains("berth"),
        "berth's accept rule is in FORWARD"
    );
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        ip(CLIENT_IP),
        "published port"
    );
    // Out of the container to the client: masqueraded, not dropped.
    assert_eq!(
        seen_from_ctr(&h, &client, 9999, "behind", CLIENT_IP, 9999),
        ip(HOST_IP),
        "outbound"
    );
    // Without berth's rule, the policy drops it: that is what the rule is for.
    let rule = h
        .sh("iptables -S FORWARD | grep berth")
        .trim()
        .replacen("-A", "-D", 1);
    h.sh(&format!("iptables {rule}"));
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        None,
        "dropped by FORWARD"
    );
    h.ok(&["system", "reconcile"]);
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        ip(CLIENT_IP),
        "back after reconcile"
    );

    // With Docker's DOCKER-USER chain, the rule goes there.
    let rule = h
        .sh("iptables -S FORWARD | grep berth")
        .trim()
        .replacen("-A", "-D", 1);
    h.sh(&format!(
        "iptables {rule} && iptables -N DOCKER-USER && iptables -I FORWARD -j DOCKER-USER"
    ));
    h.ok(&["system", "reconcile"]);
    assert!(h.sh("iptables -S DOCKER-USER").contains("berth"));
    assert!(!h.sh("iptables -S FORWARD").contains("berth"));
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        ip(CLIENT_IP),
        "via DOCKER-USER"
    );
}

#[test]
fn ipv6_networks_publish_on_both_families() {
    let (h, client) = world();
    h.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.61.0.0/24",
        "--subnet",
        "fd61::/64",
        "six",
    ]);
    run_d(&h, "v6", "six", &["-p", "8080:80", "-p", "[fd99::1]:8081:81"]);
    let srv = sandbox(&h, "v6");
    let out = h.ok(&["port", "v6"]);
    assert!(out.contains("80/tcp -> 0.0.0.0:8080"), "{out}");
    assert!(out.contains("80/tcp -> [::]:8080"), "{out}");
    assert!(out.contains("81/tcp -> [fd99::1]:8081"), "{out}");
    assert_eq!(map(&h, "dnat6_any").len(), 1);
    assert_eq!(map(&h, "dnat6").len(), 1);
    assert_eq!(
        seen_from_ns(&srv, 80, &client, "fd99::1", 8080),
        ip("fd99::2"),
        "IPv6"
    );
    assert_eq!(
        seen_from_ns(&srv, 81, &client, "fd99::1", 8081),
        ip("fd99::2"),
        "IPv6 host address"
    );
    assert_eq!(
        seen_from_ns(&srv, 80, &client, HOST_IP, 8080),
        ip(CLIENT_IP),
        "IPv4 too"
    );
}

/// A port held by an IPv4-only listener (busybox `nc -l` binds 0.0.0.0)
/// is refused naming that process too, though berth's probe binds `[::]`.
#[test]
fn a_port_held_by_an_ipv4_listener_names_it() {
    let h = TestHost::new(bin());
    let mut cmd = std::process::Command::new("busybox");
    cmd.args(["nc", "-l", "-p", "8200"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    berth_testkit::in_netns(&mut cmd, &h.ns).unwrap();
    let mut nc = cmd.spawn().unwrap();
    // Listening once ss shows it (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !h.run("ss", &["-Hltn", "sport = :8200"]).stdout.contains("8200") {
        assert!(std::time::Instant::now() < deadline, "busybox nc never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = h.fails(&["run", "-d", "--name", "x", "-p", "8200:80", "--", "sleep", "9"]);
    let _ = nc.kill();
    let _ = nc.wait();
    assert!(
        e.contains(&format!(": pid {} (busybox)", nc.id())) || e.contains(&format!(": pid {} (nc)", nc.id())),
        "names the process: {e}"
    );
}

/// `HostConfig.PortBindings` holds what `-p` asked, `NetworkSettings.Ports`
/// what was assigned, in Docker's shapes.
#[test]
fn port_bindings_are_what_was_asked_and_ports_what_was_assigned() {
    let h = TestHost::new(bin());
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "-p",
        "80",
        "-p",
        "127.0.0.1:8080:81",
        "-p",
        "9000-9001:90-91",
        "-p",
        "7000-7002:70/udp",
        "--",
        "sleep",
        "600",
    ]);
    let v = inspect(&h, "c");
    let asked = &v["HostConfig"]["PortBindings"];
    let one = |ip: &str, port: &str| serde_json::json!([{"HostIp": ip, "HostPort": port}]);
    assert_eq!(asked["80/tcp"], one("", ""));
    assert_eq!(asked["81/tcp"], one("127.0.0.1", "8080"));
    assert_eq!(asked["90/tcp"], one("", "9000"));
    assert_eq!(asked["91/tcp"], one("", "9001"));
    assert_eq!(asked["70/udp"], one("", "7000-7002"));
    let got = &v["NetworkSettings"]["Ports"];
    let port80: u16 = got["80/tcp"][0]["HostPort"].as_str().unwrap().parse().unwrap();
    assert!(port80 >= 1024, "an ephemeral host port: {port80}");
    assert_eq!(got["81/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(got["81/tcp"][0]["HostPort"], "8080");
    assert_eq!(got["90/tcp"][0]["HostPort"], "9000");
    let udp: u16 = got["70/udp"][0]["HostPort"].as_str().unwrap().parse().unwrap();
    assert!((7000..=7002).contains(&udp), "one of the range: {udp}");
}
