//! br_netfilter's sysctls in the daemon's namespace (`berth daemon
//! --bridge-nf-call`): with them on, frames a bridge forwards between two
//! containers also go through conntrack and the IP forward hooks, which
//! cost the bridge about 7% of its throughput here. berth turns them off
//! where nothing else may need them (auto), or always (off), or never
//! (keep); icc off holds either way (bridge port isolation).

use std::path::Path;

use berth_testkit::TestHost;

const SYSCTLS: &str = "cat /proc/sys/net/bridge/bridge-nf-call-iptables \
     /proc/sys/net/bridge/bridge-nf-call-ip6tables /proc/sys/net/bridge/bridge-nf-call-arptables";

fn host() -> TestHost {
    TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// The three sysctls in the host namespace, as "1 1 1".
fn sysctls(h: &TestHost) -> String {
    h.sh(SYSCTLS).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// This kernel has br_netfilter, so each fresh namespace starts with its
/// hooks on; without that the tests below would prove nothing.
fn hooks_on_at_first(h: &TestHost) {
    assert_eq!(
        sysctls(h),
        "1 1 1",
        "a fresh namespace should have br_netfilter on"
    );
}

#[test]
fn auto_turns_the_hooks_off_and_icc_off_still_keeps_containers_apart() {
    let mut h = host();
    hooks_on_at_first(&h);
    h.start_daemon(&[]);
    assert_eq!(sysctls(&h), "0 0 0");
    assert!(h.daemon_log().contains("br_netfilter off"), "{}", h.daemon_log());
    h.ok(&["network", "create", "--subnet", "10.61.0.0/24", "talk"]);
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.62.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "quiet",
    ]);
    for (name, net) in [("t1", "talk"), ("t2", "talk"), ("q1", "quiet"), ("q2", "quiet")] {
        h.run_sleeper(name, net);
    }
    let ping = |from: &str, to: &str| h.berth(&["exec", from, "ping", "-c1", "-W1", to]).code;
    assert_eq!(
        ping("t1", "t2"),
        0,
        "containers of an icc network reach each other"
    );
    assert_ne!(
        ping("q1", "q2"),
        0,
        "icc off: q1 must not reach q2 with the hooks off"
    );
    assert_ne!(
        ping("q2", "q1"),
        0,
        "icc off: q2 must not reach q1 with the hooks off"
    );
    assert_eq!(ping("q1", "10.62.0.1"), 0, "icc off still reaches its gateway");
    // Reconcile does it again, after someone turned them back on.
    h.sh("echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables");
    h.ok(&["system", "reconcile"]);
    assert_eq!(sysctls(&h), "0 0 0");
}

#[test]
fn auto_leaves_them_on_beside_a_bridge_that_is_not_berths() {
    let mut h = host();
    hooks_on_at_first(&h);
    h.sh("ip link add docker0 type bridge");
    h.start_daemon(&[]);
    assert_eq!(sysctls(&h), "1 1 1");
    assert!(
        h.daemon_log().contains("bridge docker0 is not berth's"),
        "{}",
        h.daemon_log()
    );
    // berth's own bridges do not count.
    h.ok(&["network", "create", "n"]);
    h.stop_daemon();
    h.sh("ip link del docker0");
    h.start_daemon(&[]);
    assert_eq!(sysctls(&h), "0 0 0");
}

#[test]
fn off_turns_them_off_anyway_and_keep_leaves_them() {
    let mut h = host();
    hooks_on_at_first(&h);
    h.sh("ip link add docker0 type bridge");
    h.start_daemon(&["--bridge-nf-call", "keep"]);
    assert_eq!(sysctls(&h), "1 1 1");
    h.stop_daemon();
    h.start_daemon(&["--bridge-nf-call", "off"]);
    assert_eq!(sysctls(&h), "0 0 0");
    h.sh("ip link del docker0");
}

#[test]
fn a_bad_value_is_one_line_naming_the_accepted_ones() {
    let h = host();
    let r = h.berth(&["daemon", "--bridge-nf-call", "maybe"]);
    assert_ne!(r.code, 0);
    let err = r.stderr.trim();
    assert!(
        err.contains("--bridge-nf-call") && err.contains("auto, off, keep"),
        "{err}"
    );
}
