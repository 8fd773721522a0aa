//! macvlan on this machine's kernel (it has macvlan; ipvlan, 802.1q and
//! dummy parents are tested in the VM: `cargo xtask vmtest`). Parents are
//! veths inside the test host, never the machine's own links.

use std::path::Path;

use berth_testkit::TestHost;

fn host() -> TestHost {
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    h.add_lan_parents(&["lan0", "lan1"]);
    h
}

#[test]
fn two_containers_on_one_parent_reach_each_other() {
    let h = host();
    let before = h.kernel_state();
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.31.0.0/24",
        "--gateway",
        "10.31.0.254",
        "-o",
        "parent=lan0",
        "lan",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "lan",
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
        "lan",
        "--",
        "sleep",
        "600",
    ]);
    // Only lo and eth0: nothing the daemon made ahead of a container (its
    // spare namespace comes with lo only) is left in it.
    for c in ["a", "b"] {
        let links = h.ok(&["exec", c, "--", "ip", "-o", "link"]);
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default())
            .collect();
        assert_eq!(names, ["lo", "eth0"], "{c}: {links}");
    }
    let link = h.ok(&["exec", "a", "--", "ip", "-d", "-o", "link", "show", "eth0"]);
    assert!(link.contains("macvlan mode bridge"), "{link}");
    assert!(link.contains("link/ether 02:42:0a:1f:00:01"), "{link}");
    let route = h.ok(&["exec", "a", "--", "ip", "route", "show", "default"]);
    assert!(route.contains("via 10.31.0.254 dev eth0"), "{route}");
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", &h.address("b", "lan")]);
    h.ok(&["exec", "b", "--", "ping", "-c1", "-W2", "a"]);
    // Nothing on the host's side: the interfaces live in the containers.
    assert!(!h.run("ip", &["-o", "link"]).stdout.contains("macvlan"));
    h.ok(&["rm", "-f", "a", "b"]);
    h.ok(&["network", "rm", "lan"]);
    assert_eq!(
        h.kernel_state(),
        before,
        "teardown left something, or removed a link berth did not make"
    );
}

#[test]
fn networks_on_two_parents_are_isolated_and_modes_apply() {
    let h = host();
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.32.0.0/24",
        "-o",
        "parent=lan0",
        "m0",
    ]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.33.0.0/24",
        "-o",
        "parent=lan1",
        "-o",
        "macvlan_mode=private",
        "m1",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "m0",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "y",
        "--network",
        "m1",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "z",
        "--network",
        "m1",
        "--",
        "sleep",
        "600",
    ]);
    assert_ne!(
        h.berth(&["exec", "x", "--", "ping", "-c1", "-W1", &h.address("y", "m1")])
            .code,
        0
    );
    // private: children of one parent cannot talk to each other.
    let link = h.ok(&["exec", "y", "--", "ip", "-d", "-o", "link", "show", "eth0"]);
    assert!(link.contains("macvlan mode private"), "{link}");
    assert_ne!(
        h.berth(&["exec", "y", "--", "ping", "-c1", "-W1", &h.address("z", "m1")])
            .code,
        0
    );
    // A container joins a second macvlan network as eth1.
    h.ok(&["network", "connect", "m0", "y"]);
    h.ok(&["exec", "y", "--", "ping", "-c1", "-W2", &h.address("x", "m0")]);
}

#[test]
fn parents_and_modes_are_checked_up_front() {
    let h = host();
    h.sh("ip link add br9 type bridge && ip link set lan1 master br9");
    h.sh("ip link add mvx link lan0 type macvlan mode bridge");
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.34.0.0/24",
        "-o",
        "parent=lan0",
        "taken",
    ]);
    let before = h.kernel_state();
    for (args, want) in [
        (
            vec!["-o", "parent=nope0", "--subnet", "10.35.0.0/24"],
            "parent nope0 does not exist",
        ),
        (
            vec!["-o", "parent=lan1", "--subnet", "10.35.0.0/24"],
            "is a port of bridge br9",
        ),
        (
            vec!["-o", "parent=mvx", "--subnet", "10.35.0.0/24"],
            "is itself a macvlan interface",
        ),
        (
            vec![
                "-o",
                "parent=lan0",
                "-o",
                "macvlan_mode=wide",
                "--subnet",
                "10.35.0.0/24",
            ],
            "accepted: bridge, private, vepa, passthru",
        ),
        (
            vec!["-o", "parent=lan0.0", "--subnet", "10.35.0.0/24"],
            "invalid VLAN ID 0",
        ),
        (
            vec!["-o", "parent=lan0.4095", "--subnet", "10.35.0.0/24"],
            "accepted: 1-4094",
        ),
        (vec!["-o", "parent=lan0"], "needs --subnet"),
        (
            vec![
                "-o",
                "parent=lan0",
                "-o",
                "macvlan_mode=passthru",
                "--subnet",
                "10.35.0.0/24",
            ],
            "passthru needs its parent alone",
        ),
        (
            vec![
                "-o",
                "parent=lan0",
                "-o",
                "ipvlan_mode=l2",
                "--subnet",
                "10.35.0.0/24",
            ],
            "unknown option \"ipvlan_mode\"",
        ),
    ] {
        let mut full = vec!["network", "create", "-d", "macvlan"];
        full.extend(args.iter().copied());
        full.push("x");
        let line = h.fails(&full);
        assert!(line.contains(want), "{full:?}: {line}");
    }
    assert_eq!(h.kernel_state(), before);
    // The links berth did not make are still there.
    h.sh("ip link show mvx && ip link show br9");
}

#[test]
fn what_this_kernel_lacks_is_said_in_one_line() {
    let h = host();
    let info = h.ok(&["info"]);
    assert!(info.contains("macvlan (local scope)"), "{info}");
    for (driver, has) in [(
        "ipvlan",
        h.sh("ip link add t0 link lan0 type ipvlan 2>/dev/null && echo yes || echo no"),
    )] {
        if has.trim() == "no" {
            assert!(
                info.contains(&format!(
                    "{driver} (not supported here: this kernel has no ipvlan support (CONFIG_IPVLAN))"
                )),
                "{info}"
            );
            let line = h.fails(&[
                "network",
                "create",
                "-d",
                driver,
                "--subnet",
                "10.36.0.0/24",
                "-o",
                "parent=lan0",
                "x",
            ]);
            assert_eq!(line, "berth: this kernel has no ipvlan support (CONFIG_IPVLAN)");
        } else {
            h.sh("ip link del t0");
            eprintln!("this kernel has ipvlan: its refusal is not testable here (the VM tests cover ipvlan)");
        }
    }
    let vlan = h.sh("ip link add link lan0 name lan0.7 type vlan id 7 2>/dev/null && echo yes || echo no");
    if vlan.trim() == "no" {
        let line = h.fails(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "10.36.0.0/24",
            "-o",
            "parent=lan0.10",
            "x",
        ]);
        assert_eq!(
            line,
            "berth: this kernel has no 802.1q VLAN support (CONFIG_VLAN_8021Q)"
        );
    } else {
        h.sh("ip link del lan0.7");
    }
}
