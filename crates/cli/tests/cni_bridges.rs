//! A cni network's bridge with the real reference plugins of Debian's
//! containernetworking-plugins (`/usr/lib/cni`): berth removes only a bridge
//! the chain's `bridge` plugin made during a berth network's life, never
//! one that was there before (`docker0`, `cni0`, …), and a cni network
//! cannot take the bridge of another berth network (whose firewall entry,
//! masquerade included, it would otherwise replace and then delete).
//! host-local keeps its leases under the test's root, never /var/lib/cni.

use std::path::Path;

use berth_testkit::TestHost;

/// Where Debian puts the reference plugins.
const REFERENCE: &str = "/usr/lib/cni";

fn host() -> TestHost {
    assert!(
        Path::new(REFERENCE).join("bridge").exists(),
        "the CNI reference plugins are missing: apt-get install containernetworking-plugins"
    );
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    h.start_daemon(&["--cni-path", REFERENCE]);
    h
}

/// The arguments of `network create -d cni -o cni.plugin=bridge …` on
/// `bridge` with `subnet`, gateway on the bridge; `extra` are more `-o`
/// options.
fn create_args(h: &TestHost, name: &str, bridge: &str, subnet: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["network", "create", "-d", "cni"].map(str::to_owned).to_vec();
    for o in [
        "cni.plugin=bridge".to_owned(),
        format!("bridge={bridge}"),
        "isGateway=true".to_owned(),
        "ipam.type=host-local".to_owned(),
        format!("ipam.subnet={subnet}"),
        format!("ipam.dataDir={}/cni-ipam", h.root.display()),
    ]
    .into_iter()
    .chain(extra.iter().map(|s| (*s).to_owned()))
    {
        args.push("-o".to_owned());
        args.push(o);
    }
    args.push(name.to_owned());
    args
}

fn create(h: &TestHost, name: &str, bridge: &str, subnet: &str) {
    create_with(h, name, bridge, subnet, &[]);
}

fn create_with(h: &TestHost, name: &str, bridge: &str, subnet: &str, extra: &[&str]) {
    let args = create_args(h, name, bridge, subnet, extra);
    h.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

fn has_link(h: &TestHost, name: &str) -> bool {
    h.run("ip", &["link", "show", name]).code == 0
}

/// A container on `net` and gone again: the `bridge` plugin ran (and made
/// its bridge if missing), and DEL ran, so the bridge has no port left.
fn one_container(h: &TestHost, net: &str) {
    h.ok(&["run", "--rm", "--network", net, "--", "true"]);
}

#[test]
fn network_rm_leaves_a_bridge_that_was_there_before() {
    let h = host();
    // Bridges berth did not make and that have no ports: another
    // runtime's, idle.
    for br in ["cni0", "docker0"] {
        h.sh(&format!("ip link add {br} type bridge && ip link set {br} up"));
    }
    create(&h, "on-cni0", "cni0", "10.60.1.0/24");
    create(&h, "on-docker0", "docker0", "10.60.2.0/24");
    // And one whose bridge the plugin makes: that one berth removes.
    create(&h, "own", "cnibr60", "10.60.3.0/24");
    for net in ["on-cni0", "on-docker0", "own"] {
        one_container(&h, net);
    }
    assert!(has_link(&h, "cnibr60"), "the bridge plugin made no cnibr60");
    h.ok(&["network", "rm", "on-cni0", "on-docker0", "own"]);
    assert!(
        has_link(&h, "cni0"),
        "network rm deleted cni0, which berth did not make"
    );
    assert!(
        has_link(&h, "docker0"),
        "network rm deleted docker0, which berth did not make"
    );
    assert!(
        !has_link(&h, "cnibr60"),
        "network rm left cnibr60, which the bridge plugin made for it"
    );

    // Made by the plugin, but for a network berth restarted in between:
    // still berth's after a restart.
    let mut h = h;
    create(&h, "again", "cnibr61", "10.60.4.0/24");
    one_container(&h, "again");
    h.kill_daemon();
    h.start_daemon(&["--cni-path", REFERENCE]);
    h.ok(&["network", "rm", "again"]);
    assert!(
        !has_link(&h, "cnibr61"),
        "network rm left cnibr61 after a restart"
    );
}

#[test]
fn a_cni_network_cannot_take_the_bridge_of_another_berth_network() {
    let h = host();
    h.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=br77",
        "mine",
    ]);
    let before = h.kernel_state();
    for (bridge, owner) in [("berth0", "bridge"), ("br77", "mine")] {
        let args = create_args(&h, "thief", bridge, "10.61.0.0/24", &[]);
        let err = h.fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(bridge) && err.contains(&format!("network {owner}")),
            "the error should name the bridge and its network: {err}"
        );
        assert!(
            h.berth(&["network", "inspect", "thief"]).code != 0,
            "the refused network was recorded"
        );
    }
    // Nothing changed: the bridges, and the default network's masquerade
    // and isolation in the firewall.
    assert_eq!(h.kernel_state(), before);

    // Two cni networks may still share a bridge the plugin made (one
    // subnet and gateway, each its own range), and the last one removed
    // takes it away.
    let subnet = "10.62.0.0/24";
    create_with(
        &h,
        "s1",
        "cnibr62",
        subnet,
        &["ipam.rangeStart=10.62.0.10", "ipam.rangeEnd=10.62.0.19"],
    );
    create_with(
        &h,
        "s2",
        "cnibr62",
        subnet,
        &["ipam.rangeStart=10.62.0.20", "ipam.rangeEnd=10.62.0.29"],
    );
    one_container(&h, "s1");
    one_container(&h, "s2");
    h.ok(&["network", "rm", "s1"]);
    assert!(has_link(&h, "cnibr62"), "removed while s2 still uses it");
    one_container(&h, "s2");
    h.ok(&["network", "rm", "s2"]);
    assert!(!has_link(&h, "cnibr62"), "the last network using cnibr62 left it");
}
