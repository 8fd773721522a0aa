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
    h.sh("ip link add gnv0 type geneve id 42 remote 192.0.2.1");
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
