//! Detach answers before the kernel has finished deleting a veth (the
//! slow part waits for RCU grace periods), and nothing observable lags:
//! once `network disconnect` returns, the container has no interface on
//! that network and its address is gone from the sandbox; the address is
//! handed out again only once the old interface is gone from the kernel;
//! and a daemon killed while deletions are still under way leaves nothing
//! behind at its next start.

use std::path::{Path, PathBuf};

use berth_testkit::TestHost;
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn sandbox(h: &TestHost, c: &str) -> PathBuf {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).unwrap();
    PathBuf::from(v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap())
}

/// `ip -o LINK_OR_ADDR show` inside the container's sandbox.
fn in_sandbox(h: &TestHost, sb: &Path, what: &str) -> String {
    h.run(
        "nsenter",
        &[&format!("--net={}", sb.display()), "ip", "-o", what, "show"],
    )
    .stdout
}

/// The host's veths.
fn host_veths(h: &TestHost) -> usize {
    h.run("ip", &["-o", "link", "show", "type", "veth"])
        .stdout
        .lines()
        .count()
}

#[test]
fn after_disconnect_nothing_of_the_endpoint_is_left_and_its_address_comes_back() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.47.0.0/24", "n2"]);
    disconnect_rounds(&h, "n2", true);
}

/// The same for macvlan, whose interface lives only in the sandbox.
#[test]
fn a_macvlan_endpoint_is_gone_at_once_and_its_address_comes_back() {
    let h = TestHost::new(berth());
    h.add_lan_parents(&["lan0"]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "-o",
        "parent=lan0",
        "--subnet",
        "10.53.0.0/24",
        "mv",
    ]);
    disconnect_rounds(&h, "mv", false);
}

/// Ten rounds of connect, disconnect (checked right after its answer),
/// connect with the same `--ip` at once (on exactly one interface), and
/// disconnect, of a container on a bridge network to `net`.
fn disconnect_rounds(h: &TestHost, net: &str, veths_in_host: bool) {
    h.ok(&["network", "create", "--subnet", "10.46.0.0/24", "n1"]);
    h.run_sleeper("c", "n1");
    let sb = sandbox(h, "c");
    let veths = host_veths(h);
    for round in 0..10 {
        h.ok(&["network", "connect", net, "c"]);
        let addr = h.address("c", net);
        assert!(in_sandbox(h, &sb, "link").contains("eth1"), "round {round}");
        h.ok(&["network", "disconnect", net, "c"]);
        // Right after the answer, before the kernel has finished.
        assert!(
            !in_sandbox(h, &sb, "link").contains("eth1"),
            "round {round}: eth1 is still in the sandbox"
        );
        assert!(
            !in_sandbox(h, &sb, "addr").contains(&format!("{addr}/")),
            "round {round}: {addr} is still in the sandbox"
        );
        if veths_in_host {
            assert_eq!(host_veths(h), veths, "round {round}: the host still has the veth");
        }
        // The same address at once: given only when the old link is gone.
        h.ok(&["network", "connect", "--ip", &addr, net, "c"]);
        assert_eq!(h.address("c", net), addr);
        let with_addr = in_sandbox(h, &sb, "addr")
            .lines()
            .filter(|l| l.contains(&format!(" {addr}/")))
            .count();
        assert_eq!(with_addr, 1, "round {round}: {addr} on more than one interface");
        h.ok(&["network", "disconnect", net, "c"]);
    }
}

#[test]
fn a_daemon_killed_while_deletions_linger_leaves_nothing_at_its_next_start() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.48.0.0/24", "n1"]);
    h.ok(&["network", "create", "--subnet", "10.49.0.0/24", "n2"]);
    h.run_sleeper("c", "n1");
    let sb = sandbox(&h, "c");
    for i in 0..5 {
        h.run_sleeper(&format!("r{i}"), "n2");
    }
    h.ok(&["network", "connect", "n2", "c"]);
    let addr = h.address("c", "n2");
    let veths = host_veths(&h);
    let names: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    h.ok(&rm);
    h.ok(&["network", "disconnect", "n2", "c"]);
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(host_veths(&h), veths - 6, "veths left behind");
    assert!(!in_sandbox(&h, &sb, "link").contains("eth1"));
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    assert!(v[0]["NetworkSettings"]["Networks"]["n2"].is_null());
    h.ok(&["network", "connect", "--ip", &addr, "n2", "c"]);
    h.ok(&["network", "disconnect", "n2", "c"]);
    h.ok(&["network", "rm", "n2"]);
    assert!(!h.daemon_log().contains("panicked"));
}

#[test]
fn a_full_subnet_gets_its_last_address_back_right_after_a_disconnect() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.51.0.0/24", "n1"]);
    // Five addresses besides the gateway.
    h.ok(&["network", "create", "--subnet", "10.52.0.0/29", "small"]);
    h.run_sleeper("c", "n1");
    for i in 0..4 {
        h.run_sleeper(&format!("s{i}"), "small");
    }
    for round in 0..5 {
        h.ok(&["network", "connect", "small", "c"]);
        let addr = h.address("c", "small");
        h.ok(&["network", "disconnect", "small", "c"]);
        // The only free address is the one just given back.
        h.ok(&["network", "connect", "small", "c"]);
        assert_eq!(h.address("c", "small"), addr, "round {round}");
        h.ok(&["network", "disconnect", "small", "c"]);
    }
}

/// `network rm` right after `rm -f` of its 500 containers (in one
/// command, which removes 32 at a time) leaves nothing: no veth, address,
/// firewall element or sandbox, while deletions may still linger in the
/// kernel when it starts.
#[test]
fn a_network_removed_right_after_its_500_containers_leaves_nothing() {
    let h = TestHost::new(berth());
    let pristine = h.kernel_state();
    h.ok(&["network", "create", "--subnet", "10.54.0.0/23", "crowd"]);
    let names: Vec<String> = (0..500).map(|i| format!("p{i:03}")).collect();
    for n in &names {
        h.run_sleeper(n, "crowd");
    }
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    let start = std::time::Instant::now();
    assert_eq!(h.ok(&rm).lines().count(), 500);
    let removed = start.elapsed();
    h.ok(&["network", "rm", "crowd"]);
    eprintln!(
        "rm -f of 500: {removed:.2?}; then network rm: {:.2?}",
        start.elapsed() - removed
    );
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
    assert_eq!(
        h.kernel_state(),
        pristine,
        "something of the 500 or their network is left"
    );
}
