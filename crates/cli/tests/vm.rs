//! Tests that need link kinds this project's machines lack (ipvlan, 802.1q
//! VLAN, dummy, geneve). They are ignored here; `cargo xtask vmtest` runs
//! them with `--ignored` as root of a stock Debian kernel under qemu.

use std::path::Path;

use berth_testkit::TestHost;
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// `ip -d -o link show dev NAME` in the host namespace.
fn link(h: &TestHost, name: &str) -> String {
    h.sh(&format!("ip -d -o link show dev {name}"))
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn the_kernel_has_dummy_vlan_ipvlan_and_geneve_links() {
    let h = TestHost::without_daemon(berth());
    h.sh("ip link add d0 type dummy && ip link set d0 up");
    assert!(link(&h, "d0").contains(" dummy "), "{}", link(&h, "d0"));
    h.sh("ip link add link d0 name d0.10 type vlan id 10");
    let vlan = link(&h, "d0.10");
    assert!(vlan.contains("vlan protocol 802.1Q id 10"), "{vlan}");
    h.sh("ip link add link d0 name ipvl0 type ipvlan mode l2");
    let ipvl = link(&h, "ipvl0");
    assert!(ipvl.contains("ipvlan  mode l2"), "{ipvl}");
    // A parent holds either ipvlans or macvlans (EBUSY), so macvlan gets its own.
    h.sh("ip link add d1 type dummy && ip link add link d1 name mv0 type macvlan mode bridge");
    assert!(
        link(&h, "mv0").contains("macvlan mode bridge"),
        "{}",
        link(&h, "mv0")
    );
    h.sh("ip link add gnv0 type geneve id 42 remote 10.254.0.1");
    assert!(link(&h, "gnv0").contains("geneve id 42"), "{}", link(&h, "gnv0"));
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn the_daemon_starts_and_lists_the_builtin_networks() {
    let h = TestHost::new(berth());
    let ls = h.ok(&["network", "ls"]);
    for n in ["bridge", "host", "none"] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{n} missing: {ls}"
        );
    }
    // The firewall skeleton is in place, so nf_tables and NAT work here.
    let nft = h.sh("nft list table inet berth");
    assert!(nft.contains("masquerade"), "{nft}");
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn two_containers_on_a_bridge_network_ping_each_other_by_name() {
    let h = TestHost::new(berth());
    h.ok(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.60.0.0/24",
        "my-net",
    ]);
    for c in ["c1", "c2"] {
        h.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "my-net",
            "--",
            "sleep",
            "600",
        ]);
    }
    let ip = |c: &str| {
        let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).expect("inspect prints JSON");
        v[0]["NetworkSettings"]["Networks"]["my-net"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for (from, to) in [("c1", "c2"), ("c2", "c1")] {
        let out = h.ok(&["exec", from, "--", "ping", "-c1", "-W2", to]);
        assert!(out.contains(&format!("({})", ip(to))), "{out}");
    }
}

const VM: &str = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest";

/// A test host with two veth parents, `lan0` and `lan1`.
fn lan_host() -> TestHost {
    let h = TestHost::new(berth());
    h.add_lan_parents(&["lan0", "lan1"]);
    h
}

/// Two containers on `net` reach each other by address and by name.
fn pair_talks(h: &TestHost, net: &str) {
    h.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{net}-a"),
        "--network",
        net,
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        &format!("{net}-b"),
        "--network",
        net,
        "--",
        "sleep",
        "600",
    ]);
    let b = h.address(&format!("{net}-b"), net);
    h.ok(&["exec", &format!("{net}-a"), "--", "ping", "-c1", "-W2", &b]);
    h.ok(&[
        "exec",
        &format!("{net}-b"),
        "--",
        "ping",
        "-c1",
        "-W2",
        &format!("{net}-a"),
    ]);
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn macvlan_on_a_vlan_that_berth_makes_and_removes() {
    let h = lan_host();
    let before = h.kernel_state();
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.40.10.0/24",
        "-o",
        "parent=lan0.10",
        "v10",
    ]);
    assert!(
        link(&h, "lan0.10").contains("vlan protocol 802.1Q id 10"),
        "{}",
        link(&h, "lan0.10")
    );
    pair_talks(&h, "v10");
    // A second network may share the VLAN parent; it inherits it.
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.40.11.0/24",
        "-o",
        "parent=lan0.10",
        "v10b",
    ]);
    h.ok(&["rm", "-f", "v10-a", "v10-b"]);
    h.ok(&["network", "rm", "v10"]);
    assert!(
        h.run("ip", &["link", "show", "lan0.10"]).code == 0,
        "removed while v10b uses it"
    );
    h.ok(&["network", "rm", "v10b"]);
    assert!(
        h.run("ip", &["link", "show", "lan0.10"]).code != 0,
        "berth's VLAN link outlived its networks"
    );
    assert_eq!(h.kernel_state(), before);
    // A VLAN link that was there before is used, and left alone.
    h.sh("ip link add link lan1 name lan1.20 type vlan id 20 && ip link set lan1.20 up");
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.40.20.0/24",
        "-o",
        "parent=lan1.20",
        "v20",
    ]);
    h.ok(&["network", "rm", "v20"]);
    h.sh("ip link show lan1.20");
    for (parent, want) in [
        ("lan0.0", "invalid VLAN ID 0"),
        ("lan0.4095", "accepted: 1-4094"),
        ("nope.5", "base interface nope does not exist"),
    ] {
        let line = h.fails(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "10.40.30.0/24",
            "-o",
            &format!("parent={parent}"),
            "bad",
        ]);
        assert!(line.contains(want), "{parent}: {line}");
    }
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn ipvlan_l2_l3_and_l3s() {
    let h = lan_host();
    // One parent has one ipvlan mode: l2 on lan0, l3 and l3s on two VLANs.
    h.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.41.0.0/24",
        "-o",
        "parent=lan0",
        "l2",
    ]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.42.0.0/24",
        "-o",
        "parent=lan1.30",
        "-o",
        "ipvlan_mode=l3",
        "l3",
    ]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.43.0.0/24",
        "-o",
        "parent=lan1.31",
        "-o",
        "ipvlan_mode=l3s",
        "l3s",
    ]);
    for net in ["l2", "l3", "l3s"] {
        pair_talks(&h, net);
    }
    let l2 = h.ok(&["exec", "l2-a", "--", "ip", "-d", "-o", "link", "show", "eth0"]);
    assert!(l2.contains("ipvlan  mode l2 bridge"), "{l2}");
    let r = h.ok(&["exec", "l2-a", "--", "ip", "route", "show", "default"]);
    assert!(r.contains("via 10.41.0.1 dev eth0"), "{r}");
    for net in ["l3", "l3s"] {
        let l = h.ok(&[
            "exec",
            &format!("{net}-a"),
            "--",
            "ip",
            "-d",
            "-o",
            "link",
            "show",
            "eth0",
        ]);
        assert!(l.contains(&format!("ipvlan  mode {net} ")), "{l}");
        let r = h.ok(&[
            "exec",
            &format!("{net}-a"),
            "--",
            "ip",
            "route",
            "show",
            "default",
        ]);
        assert!(r.starts_with("default dev eth0"), "{net}: {r}");
    }
    // The parent's mode and kind are the parent's: refused up front.
    let line = h.fails(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.44.0.0/24",
        "-o",
        "parent=lan0",
        "-o",
        "ipvlan_mode=l3",
        "x",
    ]);
    assert!(line.contains("used by ipvlan network l2 in mode l2"), "{line}");
    let line = h.fails(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.44.0.0/24",
        "-o",
        "parent=lan0",
        "x",
    ]);
    assert!(
        line.contains("macvlan and ipvlan cannot share a parent"),
        "{line}"
    );
    let line = h.fails(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.44.0.0/24",
        "-o",
        "parent=lan0",
        "-o",
        "ipvlan_mode=l4",
        "x",
    ]);
    assert!(line.contains("accepted: l2, l3, l3s"), "{line}");
    let line = h.fails(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.44.0.0/24",
        "-o",
        "parent=lan0",
        "-o",
        "ipvlan_flag=open",
        "x",
    ]);
    assert!(line.contains("accepted: bridge, private, vepa"), "{line}");
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn no_parent_means_an_internal_network_on_a_dummy_of_its_own() {
    let h = lan_host();
    let before = h.kernel_state();
    for driver in ["macvlan", "ipvlan"] {
        let id = h
            .ok(&["network", "create", "-d", driver, &format!("{driver}-alone")])
            .trim()
            .to_owned();
        let dm = format!("dm-{}", &id[..12]);
        assert!(link(&h, &dm).contains(" dummy "), "{}", link(&h, &dm));
        let v: Value =
            serde_json::from_str(&h.ok(&["network", "inspect", &format!("{driver}-alone")])).unwrap();
        assert_eq!(v[0]["Internal"], true);
        pair_talks(&h, &format!("{driver}-alone"));
        let r = h.ok(&[
            "exec",
            &format!("{driver}-alone-a"),
            "--",
            "ip",
            "route",
            "show",
            "default",
        ]);
        assert!(
            r.trim().is_empty(),
            "an internal network has a default route: {r}"
        );
        h.ok(&[
            "rm",
            "-f",
            &format!("{driver}-alone-a"),
            &format!("{driver}-alone-b"),
        ]);
        h.ok(&["network", "rm", &format!("{driver}-alone")]);
        assert!(
            h.run("ip", &["link", "show", &dm]).code != 0,
            "{dm} outlived its network"
        );
    }
    assert_eq!(h.kernel_state(), before);
}

#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn ipvlan_conforms() {
    use berth_testkit::conformance::{CHECKS, Case, Outcome, run};
    let outcomes = run(berth(), &Case::sublink("ipvlan", &[]));
    // One line that `cargo xtask test-drivers` reads from the console.
    report(&format!(
        "CONFORMANCE ipvlan {}",
        outcomes
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    let failures: Vec<String> = CHECKS
        .iter()
        .zip(&outcomes)
        .filter_map(|(c, o)| match o {
            Outcome::Fail(why) => Some(format!("{c}: {why}")),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "ipvlan:\n{}", failures.join("\n"));
    let _ = VM;
}

/// Leaves a line for the host: the VM's /init prints this file after the
/// tests, and `cargo xtask` reads it from the console.
fn report(line: &str) {
    use std::io::Write;
    let mut reports = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/vmtest-reports")
        .expect("the reports file");
    writeln!(reports, "{line}").expect("writing a report");
}

/// Bits per second of one iperf3 TCP test (1 s of slow start left out)
/// from the namespace `client` to `addr`, served from the namespace
/// `server`; panics with iperf3's words when the test fails.
fn iperf(server: &Path, client: &Path, addr: &str, seconds: u32) -> f64 {
    // Bounded (busybox's timeout): one test, then the server ends.
    let mut s = std::process::Command::new("timeout");
    s.args(["60", "iperf3", "-s", "-1", "-B", addr])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    berth_testkit::in_netns(&mut s, server).expect("entering the server's namespace");
    let mut s = s.spawn().expect("starting iperf3 -s");
    // The server listens within a moment; the client retries until then
    // (bounded: 50 tries, 100 ms apart).
    let mut last = String::new();
    eprintln!("iperf3 to {addr} …");
    for _ in 0..50 {
        let r = berth_testkit::run_in(
            client,
            "timeout",
            &[
                "30",
                "iperf3",
                "-c",
                addr,
                "-t",
                &seconds.to_string(),
                "-O",
                "1",
                "-J",
                "--connect-timeout",
                "1000",
            ],
        );
        // iperf3 -J says what went wrong in its JSON ("error"), and
        // busybox's timeout does not always hand its exit status on.
        let v: Option<Value> = serde_json::from_str(&r.stdout).ok();
        if let Some(bps) = v
            .as_ref()
            .filter(|v| v["error"].is_null())
            .and_then(|v| v["end"]["sum_received"]["bits_per_second"].as_f64())
        {
            let _ = s.wait();
            return bps;
        }
        last = format!("{}{}", r.stdout, r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = s.kill();
    let _ = s.wait();
    panic!("iperf3 to {addr} never ran: {last}");
}

/// A container's namespace and its address on `net`.
fn end_of(h: &TestHost, name: &str, net: &str) -> (std::path::PathBuf, String) {
    let v: Value =
        serde_json::from_str(&h.ok(&["inspect", "--type", "container", name])).expect("inspect JSON");
    let key = v[0]["NetworkSettings"]["SandboxKey"]
        .as_str()
        .expect("a SandboxKey")
        .to_owned();
    (key.into(), h.address(name, net))
}

/// The data path of ipvlan (l2), macvlan (bridge mode) and the bridge
/// driver next to a bare veth pair, in this VM's kernel: TCP flows on each
/// (that is the test), and each figure is printed as a `DATAPATH` line,
/// which `cargo xtask bench dataplane` reports as shares of the bare pair
/// (software emulation makes the absolute figures meaningless here).
#[test]
#[ignore = "needs ipvlan, 802.1q and dummy links: runs in cargo xtask vmtest"]
fn data_path_of_ipvlan_macvlan_and_bridge_next_to_a_bare_veth_pair() {
    let h = lan_host();
    let (a, b) = (h.namespace("a"), h.namespace("b"));
    let r = berth_testkit::run_in(
        &a,
        "sh",
        &[
            "-c",
            &format!(
                "ip link set lo up && ip link add eth0 type veth peer name eth0 netns {} && \
                 ip addr add 10.47.0.1/24 dev eth0 && ip link set eth0 up",
                b.display()
            ),
        ],
    );
    assert_eq!(r.code, 0, "the bare pair: {}", r.stderr);
    let r = berth_testkit::run_in(
        &b,
        "sh",
        &[
            "-c",
            "ip link set lo up && ip addr add 10.47.0.2/24 dev eth0 && ip link set eth0 up",
        ],
    );
    assert_eq!(r.code, 0, "the bare pair: {}", r.stderr);
    h.ok(&["network", "create", "--subnet", "10.44.0.0/24", "br"]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.45.0.0/24",
        "-o",
        "parent=lan0",
        "mv",
    ]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "10.46.0.0/24",
        "-o",
        "parent=lan1",
        "iv",
    ]);
    let mut figures = vec![("bare veth pair", iperf(&a, &b, "10.47.0.1", 2))];
    for (label, net) in [
        ("berth bridge", "br"),
        ("berth macvlan", "mv"),
        ("berth ipvlan l2", "iv"),
    ] {
        for end in ["s", "c"] {
            h.ok(&[
                "run",
                "-d",
                "--name",
                &format!("{net}-{end}"),
                "--network",
                net,
                "--",
                "sleep",
                "600",
            ]);
        }
        eprintln!("{label}: containers up");
        let (server, addr) = end_of(&h, &format!("{net}-s"), net);
        let (client, _) = end_of(&h, &format!("{net}-c"), net);
        figures.push((label, iperf(&server, &client, &addr, 2)));
    }
    for (label, bps) in &figures {
        assert!(*bps > 0.0, "{label}: no data went through");
        report(&format!("DATAPATH {label}={bps:.0}"));
    }
}
