//! Traffic: masquerading out to a fake internet, isolation, icc=false,
//! internal networks, inbound drops. The "internet" is a namespace wired to
//! the test host; nothing leaves the test's namespaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_testkit::{TestHost, accept_one, run_in};

/// A host with a fake internet at 203.0.113.2, reached through the host's
/// 203.0.113.1.
fn world() -> (TestHost, PathBuf) {
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    let inet = h.namespace("internet");
    h.wire(&inet, "up0", "203.0.113.1/24", "203.0.113.2/24");
    (h, inet)
}

/// Connects from `container` to the internet's port and returns the source
/// address the internet saw, if the connection got through.
fn source_seen(h: &TestHost, inet: &Path, container: &str, port: u16) -> Option<String> {
    let seen = accept_one(inet, port, Duration::from_secs(3));
    let _ = h.berth(&[
        "exec",
        container,
        "--",
        "timeout",
        "3",
        "bash",
        "-c",
        &format!("echo hi > /dev/tcp/203.0.113.2/{port}"),
    ]);
    seen.join().expect("listener thread").map(|a| a.ip().to_string())
}

#[test]
fn outbound_traffic_is_masqueraded() {
    let (h, inet) = world();
    h.ok(&["network", "create", "--subnet", "10.43.0.0/24", "out"]);
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.44.0.0/24",
        "-o",
        "masquerade=false",
        "plain",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "--network",
        "out",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "p",
        "--network",
        "plain",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(h.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    h.ok(&["exec", "m", "--", "ping", "-c1", "-W2", "203.0.113.2"]);
    assert_eq!(
        source_seen(&h, &inet, "m", 8081).as_deref(),
        Some("203.0.113.1"),
        "masqueraded to the host's address"
    );
    // Without masquerading the internet sees the container itself (it
    // has a route back through the host here).
    run_in(
        &inet,
        "ip",
        &["route", "add", "10.44.0.0/24", "via", "203.0.113.1"],
    );
    assert_eq!(source_seen(&h, &inet, "p", 8082).as_deref(), Some("10.44.0.2"));
    // The default bridge masquerades too.
    h.ok(&["run", "-d", "--name", "d", "--", "sleep", "600"]);
    assert_eq!(source_seen(&h, &inet, "d", 8083).as_deref(), Some("203.0.113.1"));
}

#[test]
fn nothing_comes_in_unasked() {
    let (h, inet) = world();
    h.ok(&["network", "create", "--subnet", "10.45.0.0/24", "n"]);
    h.ok(&["run", "-d", "--name", "c", "--network", "n", "--", "sleep", "600"]);
    run_in(
        &inet,
        "ip",
        &["route", "add", "10.45.0.0/24", "via", "203.0.113.1"],
    );
    let r = run_in(&inet, "ping", &["-c1", "-W1", "10.45.0.2"]);
    assert_ne!(
        r.code, 0,
        "the internet reached a container directly: {}",
        r.stdout
    );
    // The host itself reaches its containers.
    h.sh("ping -c1 -W1 10.45.0.2");
}

#[test]
fn networks_are_isolated_from_each_other() {
    let (h, _inet) = world();
    h.ok(&["network", "create", "--subnet", "10.46.0.0/24", "a"]);
    h.ok(&["network", "create", "--subnet", "10.47.0.0/24", "b"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "a",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a2",
        "--network",
        "a",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "b1",
        "--network",
        "b",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&["run", "-d", "--name", "d1", "--", "sleep", "600"]);
    h.ok(&["exec", "a1", "--", "ping", "-c1", "-W1", "10.46.0.3"]);
    for (from, to) in [
        ("a1", "10.47.0.2"),
        ("b1", "10.46.0.2"),
        ("d1", "10.46.0.2"),
        ("a1", "172.17.0.2"),
    ] {
        let r = h.berth(&["exec", from, "--", "ping", "-c1", "-W1", to]);
        assert_ne!(r.code, 0, "{from} reached {to} on another network");
    }
}

#[test]
fn icc_false_blocks_containers_but_not_the_way_out() {
    let (h, inet) = world();
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.48.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "lonely",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "lonely",
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
        "lonely",
        "--",
        "sleep",
        "600",
    ]);
    assert_ne!(
        h.berth(&["exec", "x", "--", "ping", "-c1", "-W1", "10.48.0.3"])
            .code,
        0,
        "icc=false let x reach y"
    );
    assert_ne!(
        h.berth(&["exec", "y", "--", "ping", "-c1", "-W1", "10.48.0.2"])
            .code,
        0,
        "icc=false let y reach x"
    );
    h.ok(&["exec", "x", "--", "ping", "-c1", "-W1", "10.48.0.1"]);
    assert_eq!(source_seen(&h, &inet, "x", 8084).as_deref(), Some("203.0.113.1"));
}

#[test]
fn internal_networks_have_no_way_out() {
    let (h, inet) = world();
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.49.0.0/24",
        "vault",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "vault",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "s2",
        "--network",
        "vault",
        "--",
        "sleep",
        "600",
    ]);
    let routes = h.ok(&["exec", "s1", "--", "ip", "route", "show", "default"]);
    assert!(
        routes.trim().is_empty(),
        "internal container has a default route: {routes}"
    );
    h.ok(&["exec", "s1", "--", "ping", "-c1", "-W1", "10.49.0.3"]);
    assert_ne!(
        h.berth(&["exec", "s1", "--", "ping", "-c1", "-W1", "203.0.113.2"])
            .code,
        0
    );
    // Even with a route added by hand inside, nothing is forwarded out.
    h.ok(&[
        "exec",
        "s1",
        "--",
        "ip",
        "route",
        "add",
        "default",
        "via",
        "10.49.0.1",
    ]);
    assert_eq!(
        source_seen(&h, &inet, "s1", 8085),
        None,
        "internal traffic left the host"
    );
}
