//! Networks: the built-in ones, create/ls/inspect/rm/prune, IPAM choices.

use std::path::Path;

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

fn inspect(h: &TestHost, net: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["network", "inspect", net])).expect("inspect prints JSON");
    v[0].clone()
}

#[test]
fn builtin_networks_exist_and_cannot_be_removed() {
    let h = host();
    let ls = h.ok(&["network", "ls"]);
    let rows: Vec<Vec<&str>> = ls
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let named = |n: &str| {
        rows.iter()
            .find(|r| r[1] == n)
            .unwrap_or_else(|| panic!("{n} missing: {ls}"))
            .clone()
    };
    assert_eq!(&named("bridge")[2..], ["bridge", "local"]);
    assert_eq!(&named("host")[2..], ["host", "local"]);
    assert_eq!(&named("none")[2..], ["null", "local"]);
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    // The default bridge is berth0, with Docker's first pool.
    let br = inspect(&h, "bridge");
    assert_eq!(br["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(br["IPAM"]["Config"][0]["Gateway"], "172.17.0.1");
    assert!(h.sh("ip -br addr show berth0").contains("172.17.0.1/16"));
    for n in ["bridge", "host", "none"] {
        let e = h.fails(&["network", "rm", n]);
        assert!(e.contains("pre-defined network and cannot be removed"), "{e}");
    }
    // Still there after the refusals.
    assert_eq!(h.ok(&["network", "ls", "-q"]).lines().count(), 3);
}

#[test]
fn create_inspect_ls_rm() {
    let h = host();
    let id = h.ok(&[
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "10.50.0.0/16",
        "--gateway",
        "10.50.0.254",
        "--ip-range",
        "10.50.7.0/24",
        "--aux-address",
        "printer=10.50.7.1",
        "--label",
        "team=net",
        "--attachable",
        "-o",
        "com.docker.network.bridge.name=br-test",
        "-o",
        "mtu=1400",
        "my-net",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let n = inspect(&h, "my-net");
    assert_eq!(n["Name"], "my-net");
    assert_eq!(n["Id"], id);
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Scope"], "local");
    assert_eq!(n["EnableIPv6"], false);
    assert_eq!(n["Internal"], false);
    assert_eq!(n["Attachable"], true);
    assert_eq!(n["Labels"]["team"], "net");
    assert_eq!(n["Options"]["mtu"], "1400");
    let cfg = &n["IPAM"]["Config"][0];
    assert_eq!(cfg["Subnet"], "10.50.0.0/16");
    assert_eq!(cfg["Gateway"], "10.50.0.254");
    assert_eq!(cfg["IPRange"], "10.50.7.0/24");
    assert_eq!(cfg["AuxiliaryAddresses"]["printer"], "10.50.7.1");
    assert!(n["Created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(n["Containers"], serde_json::json!({}));
    // The bridge exists with the gateway address and MTU.
    let link = h.sh("ip -d link show br-test");
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(h.sh("ip -br addr show br-test").contains("10.50.0.254/16"));
    // By id prefix too.
    assert_eq!(inspect(&h, &id[..8])["Name"], "my-net");
    // ls filters.
    let by_driver = h.ok(&["network", "ls", "--filter", "driver=bridge", "--format", "json"]);
    assert_eq!(by_driver.lines().count(), 2, "{by_driver}");
    let by_name = h.ok(&["network", "ls", "-q", "--filter", "name=my-"]);
    assert_eq!(by_name.trim(), &id[..12]);
    assert_eq!(
        h.ok(&["network", "ls", "-q", "--no-trunc", "--filter", "name=my-net"])
            .trim(),
        id
    );
    // Containers show up in inspect, addresses come from the ip-range and skip the aux address.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "my-net",
        "--",
        "sleep",
        "600",
    ]);
    let n = inspect(&h, "my-net");
    let (cid, c) = n["Containers"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(cid.len(), 64);
    assert_eq!(c["Name"], "c1");
    assert_eq!(c["IPv4Address"], "10.50.7.0/16");
    assert_eq!(c["MacAddress"], "02:42:0a:32:07:00");
    assert_eq!(c["EndpointID"].as_str().unwrap().len(), 64);
    // rm refuses while attached and names the container.
    let e = h.fails(&["network", "rm", "my-net"]);
    assert!(e.contains("active endpoints") && e.contains("c1"), "{e}");
    h.ok(&["rm", "-f", "c1"]);
    assert_eq!(h.ok(&["network", "rm", "my-net"]).trim(), "my-net");
    assert!(
        h.run("ip", &["link", "show", "br-test"]).code != 0,
        "bridge left behind"
    );
    let e = h.fails(&["network", "inspect", "my-net"]);
    assert!(e.contains("not found"), "{e}");
}

#[test]
fn firewall_elements_follow_networks() {
    let h = host();
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.60.0.0/24",
        "-o",
        "icc=false",
        "a",
    ]);
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.61.0.0/24",
        "--internal",
        "-o",
        "bridge.name=br-int",
        "b",
    ]);
    let a = inspect(&h, "a");
    let br_a = format!("br-{}", &a["Id"].as_str().unwrap()[..12]);
    let set = |s: &str| h.sh(&format!("nft list set inet berth {s}"));
    assert!(set("bridges").contains(&br_a) && set("bridges").contains("br-int"));
    assert!(set("internal").contains("br-int") && !set("internal").contains(&br_a));
    assert!(
        !set("icc").contains(&br_a),
        "icc=false network must not be in icc: {}",
        set("icc")
    );
    assert!(set("icc").contains("\"berth0\" . \"berth0\""));
    assert!(set("masq4").contains("10.60.0.0/24"));
    assert!(
        !set("masq4").contains("10.61.0.0/24"),
        "internal networks do not masquerade"
    );
    // The rules never change: only elements do.
    let rules = |h: &TestHost| {
        h.sh("nft list table inet berth")
            .lines()
            .filter(|l| !l.contains("elements") && !l.trim_start().starts_with('"') && !l.contains("/"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = rules(&h);
    h.ok(&["network", "rm", "a", "b"]);
    assert!(!set("bridges").contains(&br_a) && !set("masq4").contains("10.60.0.0"));
    assert_eq!(rules(&h), before);
}

#[test]
fn subnets_come_from_dockers_pools_skipping_routes_and_networks() {
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    // Docker's docker0 on 172.17.0.0/16 and a route to 172.19.0.0/16.
    h.sh(
        "ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0 && ip link set docker0 up",
    );
    h.sh("ip route add blackhole 172.19.0.0/16");
    h.start_daemon(&[]);
    assert_eq!(
        inspect(&h, "bridge")["IPAM"]["Config"][0]["Subnet"],
        "172.18.0.0/16"
    );
    h.ok(&["network", "create", "n1"]);
    assert_eq!(inspect(&h, "n1")["IPAM"]["Config"][0]["Subnet"], "172.20.0.0/16");
    assert_eq!(inspect(&h, "n1")["IPAM"]["Config"][0]["Gateway"], "172.20.0.1");
    // A user subnet inside a later pool pushes the picker past it.
    h.ok(&["network", "create", "--subnet", "172.21.5.0/24", "n2"]);
    h.ok(&["network", "create", "n3"]);
    assert_eq!(inspect(&h, "n3")["IPAM"]["Config"][0]["Subnet"], "172.22.0.0/16");
}

#[test]
fn ipv6_dual_stack() {
    let h = host();
    h.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.70.0.0/24",
        "--subnet",
        "fd00:70::/64",
        "v6net",
    ]);
    let n = inspect(&h, "v6net");
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(n["IPAM"]["Config"][1]["Subnet"], "fd00:70::/64");
    assert_eq!(n["IPAM"]["Config"][1]["Gateway"], "fd00:70::1");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "v6net",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "v6net",
        "--",
        "sleep",
        "600",
    ]);
    let c: Value = serde_json::from_str(&h.ok(&["inspect", "b"])).unwrap();
    let net = &c[0]["NetworkSettings"]["Networks"]["v6net"];
    assert_eq!(net["GlobalIPv6Address"], "fd00:70::3");
    assert_eq!(net["IPv6Gateway"], "fd00:70::1");
    let r6 = h.ok(&["exec", "a", "--", "ip", "-6", "route", "show", "default"]);
    assert!(r6.contains("via fd00:70::1"), "{r6}");
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", "fd00:70::3"]);
    // Both have eth0 with its link-local address, as Docker's containers
    // do (berth turns IPv6 addresses off only where a network has none).
    for c in ["a", "b"] {
        let a6 = h.ok(&["exec", c, "--", "ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
        assert!(a6.contains("inet6 fe80::"), "{c}: {a6}");
    }
    // An auto-picked unique-local /64 when only --ipv6 is given.
    h.ok(&["network", "create", "--ipv6", "auto6"]);
    let n = inspect(&h, "auto6");
    assert!(
        n["IPAM"]["Config"][1]["Subnet"]
            .as_str()
            .unwrap()
            .starts_with("fd"),
        "{n}"
    );
    let fwd = h.sh("cat /proc/sys/net/ipv6/conf/all/forwarding");
    assert_eq!(fwd.trim(), "1");
}

#[test]
fn prune_removes_only_unused_user_networks() {
    let h = host();
    for n in ["p1", "p2", "p3"] {
        h.ok(&["network", "create", n]);
    }
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "p2",
        "--",
        "sleep",
        "600",
    ]);
    let out = h.ok(&["network", "prune", "-f"]);
    assert!(out.starts_with("Deleted Networks:"), "{out}");
    assert!(
        out.contains("p1") && out.contains("p3") && !out.contains("p2"),
        "{out}"
    );
    let ls = h.ok(&["network", "ls"]);
    assert!(
        ls.contains("p2") && !ls.contains("p1") && ls.contains("bridge"),
        "{ls}"
    );
}
