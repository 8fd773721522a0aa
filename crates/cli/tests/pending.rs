//! Attaches a crash cuts short between the driver's work and the commit,
//! with drivers whose work berth cannot find by itself afterwards: a CNI
//! chain (bridge with host-local, whose lease lives in a file) and a
//! shared-library plugin (ptp: a veth and a host route the plugin made).
//! The intent written before the driver call is rolled back through the
//! driver at the next start: the lease is released, the interfaces and
//! routes are gone, and the address goes to the next container once.

use std::fs;
use std::path::{Path, PathBuf};

use berth_testkit::{TestHost, plugin_library};
use serde_json::Value;

/// Where Debian puts the reference CNI plugins.
const REFERENCE: &str = "/usr/lib/cni";

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn cni_host() -> TestHost {
    assert!(
        Path::new(REFERENCE).join("bridge").exists(),
        "the CNI reference plugins are missing: apt-get install containernetworking-plugins"
    );
    let mut h = TestHost::without_daemon(berth());
    h.start_daemon(&["--cni-path", REFERENCE]);
    h
}

/// `-d cni` over the bridge plugin on `bridge`, host-local keeping its
/// leases under the test's root.
fn cni_net(h: &TestHost, name: &str, bridge: &str, subnet: &str) {
    let opts = [
        "cni.plugin=bridge".to_owned(),
        format!("bridge={bridge}"),
        "isGateway=true".to_owned(),
        "ipam.type=host-local".to_owned(),
        format!("ipam.subnet={subnet}"),
        format!("ipam.dataDir={}", h.root.join("cni-ipam").display()),
    ];
    let mut args = vec!["network", "create", "-d", "cni"];
    for o in &opts {
        args.extend(["-o", o]);
    }
    args.push(name);
    h.ok(&args);
}

/// The addresses host-local holds on network `name`.
fn leases(h: &TestHost, name: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(h.root.join("cni-ipam").join(name))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}

fn bridge_ports(h: &TestHost, bridge: &str) -> usize {
    h.run("ip", &["-o", "link", "show", "master", bridge])
        .stdout
        .lines()
        .count()
}

fn sandbox_links(h: &TestHost, c: &str) -> String {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).unwrap();
    let sb = PathBuf::from(v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap());
    let out = h.run(
        "nsenter",
        &[&format!("--net={}", sb.display()), "ip", "-o", "link", "show"],
    );
    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default())
        .collect();
    names.sort();
    names.join(" ")
}

/// Starts the daemon with the failpoint `at`, has `args` die on it, and
/// starts the daemon again without it.
fn crash_at(h: &mut TestHost, at: &str, args: &[&str], extra: &[&str]) {
    h.kill_daemon();
    h.daemon_env("BERTH_FAILPOINT", at);
    h.start_daemon(extra);
    let r = h.berth(args);
    assert_ne!(r.code, 0, "the daemon should have died at {at}: {r:?}");
    assert!(h.wait_daemon().is_some_and(|s| !s.success()));
    h.clear_daemon_env();
    h.start_daemon(extra);
}

#[test]
fn a_crash_mid_connect_to_a_cni_network_releases_the_lease() {
    let mut h = cni_host();
    h.ok(&["network", "create", "--subnet", "10.38.0.0/24", "n1"]);
    cni_net(&h, "cn", "cnibr21", "10.39.0.0/24");
    h.run_sleeper("a", "cn");
    h.run_sleeper("c", "n1");
    let held = leases(&h, "cn");
    assert_eq!(held, ["10.39.0.2"]);
    let links = sandbox_links(&h, "c");
    let ports_before = bridge_ports(&h, "cnibr21");
    crash_at(
        &mut h,
        "connect-after-attach",
        &["network", "connect", "cn", "c"],
        &["--cni-path", REFERENCE],
    );
    // The plugin's DEL ran: no lease, no eth1 in c, no port on the bridge.
    assert_eq!(
        leases(&h, "cn"),
        held,
        "host-local still holds the cut-short attach's lease"
    );
    assert_eq!(
        sandbox_links(&h, "c"),
        links,
        "the cut-short attach's interface stayed"
    );
    assert_eq!(
        bridge_ports(&h, "cnibr21"),
        ports_before,
        "the cut-short attach's veth stayed on the bridge"
    );
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    assert!(v[0]["NetworkSettings"]["Networks"]["cn"].is_null());
    // Connecting again works; the addresses are distinct and each held once.
    h.ok(&["network", "connect", "cn", "c"]);
    h.run_sleeper("b", "cn");
    // (host-local hands out the address after the last it gave, so the
    // released one may wait its turn: what matters is one lease each.)
    let mut held: Vec<String> = ["a", "b", "c"].iter().map(|c| h.address(c, "cn")).collect();
    held.sort();
    assert_eq!(leases(&h, "cn"), held);
    h.ok(&["exec", "c", "--", "ping", "-c1", "-W2", &h.address("a", "cn")]);
    h.ok(&["exec", "b", "--", "ping", "-c1", "-W2", &h.address("c", "cn")]);
}

#[test]
fn a_crash_mid_run_on_a_cni_network_releases_the_lease() {
    let mut h = cni_host();
    cni_net(&h, "cn", "cnibr22", "10.40.0.0/24");
    h.run_sleeper("a", "cn");
    let held = leases(&h, "cn");
    crash_at(
        &mut h,
        "create-after-attach",
        &[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "cn",
            "--",
            "sleep",
            "600",
        ],
        &["--cni-path", REFERENCE],
    );
    assert_eq!(
        leases(&h, "cn"),
        held,
        "host-local still holds the cut-short run's lease"
    );
    assert!(
        h.berth(&["inspect", "--type", "container", "x"]).code != 0,
        "x was recorded"
    );
    let ports = h.run("ip", &["-o", "link", "show", "master", "cnibr22"]).stdout;
    assert_eq!(
        ports.lines().count(),
        1,
        "only a's veth is on the bridge: {ports}"
    );
    h.run_sleeper("x", "cn");
    let mut held: Vec<String> = ["a", "x"].iter().map(|c| h.address(c, "cn")).collect();
    held.sort();
    assert_eq!(leases(&h, "cn"), held);
}

#[test]
fn a_crash_mid_attach_on_a_plugin_network_leaves_nothing_of_it() {
    let lib = plugin_library("berth-plugin-ptp");
    let mut h = TestHost::without_daemon(berth());
    fs::create_dir_all(h.plugin_dir()).unwrap();
    fs::copy(&lib, h.plugin_dir().join("ptp.so")).unwrap();
    h.start_daemon(&[]);
    h.ok(&["network", "create", "--subnet", "10.41.0.0/24", "n1"]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "ptp",
        "--subnet",
        "10.42.0.0/24",
        "p2p",
    ]);
    h.run_sleeper("a", "p2p");
    h.run_sleeper("c", "n1");
    // A restart puts berth's table back after the plugin's: the snapshot
    // is taken after one, so that only what the crash left differs.
    h.kill_daemon();
    h.start_daemon(&[]);
    let before = h.kernel_state();
    crash_at(
        &mut h,
        "connect-after-attach",
        &["network", "connect", "p2p", "c"],
        &[],
    );
    assert_eq!(
        h.kernel_state(),
        before,
        "the plugin's veth or route stayed after a crash mid-connect"
    );
    crash_at(
        &mut h,
        "create-after-attach",
        &[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "p2p",
            "--",
            "sleep",
            "600",
        ],
        &[],
    );
    assert_eq!(
        h.kernel_state(),
        before,
        "the plugin's veth or route stayed after a crash mid-run"
    );
    // The addresses the cut-short attaches had are handed out once each.
    h.ok(&["network", "connect", "p2p", "c"]);
    h.run_sleeper("x", "p2p");
    let (a, c, x) = (
        h.address("a", "p2p"),
        h.address("c", "p2p"),
        h.address("x", "p2p"),
    );
    assert!(a != c && c != x && a != x, "{a} {c} {x}");
    h.ok(&["exec", "x", "--", "ping", "-c1", "-W2", &c]);
    h.ok(&["exec", "c", "--", "ping", "-c1", "-W2", &a]);
}

/// A disconnect the daemon died in, after CNI's DEL and before the commit,
/// is finished at the next start: the store loses the endpoint the kernel
/// lost, host-local holds nothing for it, and connecting again works.
#[test]
fn a_crash_mid_disconnect_from_a_cni_network_is_finished() {
    let mut h = cni_host();
    h.ok(&["network", "create", "--subnet", "10.43.0.0/24", "n1"]);
    cni_net(&h, "cn", "cnibr23", "10.44.0.0/24");
    h.run_sleeper("c", "n1");
    let links = sandbox_links(&h, "c");
    h.ok(&["network", "connect", "cn", "c"]);
    assert_eq!(leases(&h, "cn").len(), 1);
    crash_at(
        &mut h,
        "disconnect-after-detach",
        &["network", "disconnect", "cn", "c"],
        &["--cni-path", REFERENCE],
    );
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    assert!(
        v[0]["NetworkSettings"]["Networks"]["cn"].is_null(),
        "the store still has the endpoint the kernel lost"
    );
    assert_eq!(sandbox_links(&h, "c"), links);
    assert_eq!(leases(&h, "cn"), Vec::<String>::new());
    assert_eq!(bridge_ports(&h, "cnibr23"), 0);
    h.ok(&["network", "connect", "cn", "c"]);
    assert_eq!(leases(&h, "cn"), [h.address("c", "cn")]);
}
