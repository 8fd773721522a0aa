//! Bad input: one clear line naming what is wrong and what is accepted, a
//! non-zero exit, and nothing created or leaked.

use std::path::Path;

use berth_testkit::TestHost;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// Everything a refused command could have touched.
fn world(h: &TestHost) -> String {
    format!(
        "{}\nnetworks:\n{}\ncontainers:\n{}",
        h.kernel_state(),
        h.ok(&["network", "ls", "--no-trunc"]),
        h.ok(&["ps", "-a", "-q"])
    )
}

/// Runs a command that must be refused with a line containing every
/// `want`, and checks that the world did not change.
fn refused(h: &TestHost, args: &[&str], want: &[&str]) {
    let before = world(h);
    let line = h.fails(args);
    for w in want {
        assert!(line.contains(w), "berth {args:?}: {line:?} does not say {w:?}");
    }
    assert!(line.starts_with("berth: "), "{line}");
    assert_eq!(world(h), before, "berth {args:?} changed the world");
}

#[test]
fn network_create_refusals() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.80.0.0/16", "taken"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "taken",
        "--",
        "sleep",
        "600",
    ]);
    for (args, want) in [
        (
            vec!["--subnet", "10.1.0/16", "x"],
            vec!["10.1.0/16", "accepted: CIDR notation"],
        ),
        (
            vec!["--subnet", "10.1.0.0/33", "x"],
            vec!["10.1.0.0/33", "accepted"],
        ),
        (vec!["--subnet", "banana", "x"], vec!["banana", "accepted"]),
        (
            vec!["--subnet", "10.1.0.0/16", "--gateway", "10.2.0.1", "x"],
            vec!["gateway 10.2.0.1 is not in any --subnet (10.1.0.0/16)"],
        ),
        (
            vec!["--subnet", "10.1.0.0/16", "--gateway", "10.1.255.255", "x"],
            vec!["broadcast"],
        ),
        (
            vec!["--subnet", "10.80.5.0/24", "x"],
            vec!["subnet 10.80.5.0/24 overlaps subnet 10.80.0.0/16 of network taken"],
        ),
        (
            vec!["--subnet", "10.0.0.0/8", "x"],
            vec!["overlaps subnet 10.80.0.0/16 of network taken"],
        ),
        (vec!["taken"], vec!["network with name taken already exists"]),
        (
            vec!["-d", "warp", "x"],
            vec![
                "unknown driver \"warp\"",
                "known: bridge, cni, host, ipvlan, macvlan, null, overlay, none",
            ],
        ),
        (
            vec!["-o", "colour=red", "x"],
            vec![
                "unknown option \"colour\" for driver bridge",
                "accepted: com.docker.network.bridge.name",
            ],
        ),
        (
            vec!["-o", "colour", "x"],
            vec!["invalid option \"colour\"", "KEY=VALUE"],
        ),
        (
            vec!["-o", "com.docker.network.bridge.name=0123456789abcdef", "x"],
            vec!["16 bytes", "accepted: 1-15 bytes"],
        ),
        (vec!["-o", "bridge.name=br/x", "x"], vec!["'/'", "accepted"]),
        (vec!["-o", "bridge.name=br:x", "x"], vec!["':'", "accepted"]),
        (vec!["-o", "bridge.name=br x", "x"], vec!["' '", "accepted"]),
        (vec!["-o", "mtu=9", "x"], vec!["mtu", "accepted: 68 to 65535"]),
        (
            vec!["-o", "icc=perhaps", "x"],
            vec!["icc", "accepted: true or false"],
        ),
        (
            vec![
                "--ipv6",
                "--subnet",
                "fd00::/64",
                "--subnet",
                "10.9.0.0/24",
                "--gateway",
                "fd01::1",
                "x",
            ],
            vec!["fd01::1 is not in any --subnet"],
        ),
        (vec!["--subnet", "fd00:1::/64", "x"], vec!["needs --ipv6"]),
        (vec!["-d", "host", "x"], vec!["only one instance"]),
        (vec!["-d", "none", "x"], vec!["only one instance"]),
        (
            vec!["--subnet", "10.1.0.0/16", "bad name"],
            vec!["invalid network name", "accepted"],
        ),
    ] {
        let mut full = vec!["network", "create"];
        full.extend(args);
        refused(&h, &full, &want);
    }
    // A bridge name another berth network already uses.
    h.ok(&["network", "create", "-o", "bridge.name=br-mine", "mine"]);
    refused(
        &h,
        &["network", "create", "-o", "bridge.name=br-mine", "x"],
        &["br-mine", "already exists"],
    );
    // An interface berth does not own.
    h.sh("ip link add foreign0 type bridge");
    refused(
        &h,
        &["network", "create", "-o", "bridge.name=foreign0", "x"],
        &["foreign0", "already exists"],
    );
    assert!(
        h.run("ip", &["link", "show", "foreign0"]).code == 0,
        "berth must not touch links it does not own"
    );
}

#[test]
fn container_refusals() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.81.0.0/24", "n1"]);
    h.ok(&["network", "create", "--subnet", "10.82.0.0/30", "tiny"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "n1",
        "--ip",
        "10.81.0.5",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "h1",
        "--network",
        "host",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "z1",
        "--network",
        "none",
        "--",
        "sleep",
        "600",
    ]);
    // The /30 holds one container besides its gateway.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "t1",
        "--network",
        "tiny",
        "--",
        "sleep",
        "600",
    ]);
    for (args, want) in [
        (
            vec!["run", "--name", "c1", "--network", "n1", "--", "true"],
            vec!["container name \"c1\" is already in use"],
        ),
        (
            vec!["run", "--network", "n1", "--ip", "10.99.0.5", "--", "true"],
            vec!["address 10.99.0.5 is not in any subnet of network n1 (10.81.0.0/24)"],
        ),
        (
            vec!["run", "--network", "n1", "--ip", "10.81.0.5", "--", "true"],
            vec!["address 10.81.0.5 is already in use by container c1"],
        ),
        (
            vec!["run", "--network", "n1", "--ip", "10.81.0.1", "--", "true"],
            vec!["10.81.0.1 is reserved"],
        ),
        (
            vec!["run", "--network", "n1", "--ip", "nonsense", "--", "true"],
            vec!["invalid --ip address \"nonsense\""],
        ),
        (
            vec!["run", "--ip", "172.17.0.9", "--", "true"],
            vec!["user-defined networks only"],
        ),
        (
            vec!["run", "--network", "tiny", "--", "true"],
            vec!["no free addresses left in subnet 10.82.0.0/30"],
        ),
        (
            vec!["run", "--network", "nowhere", "--", "true"],
            vec!["network nowhere not found"],
        ),
        (
            vec!["run", "--name", "bad/name", "--", "true"],
            vec!["invalid container name"],
        ),
        (
            vec!["run", "-h", "under_score", "--", "true"],
            vec!["invalid hostname", "accepted"],
        ),
        (
            vec!["network", "connect", "n1", "c1"],
            vec!["container c1 is already connected to network n1"],
        ),
        (
            vec!["network", "connect", "n1", "h1"],
            vec!["h1 is on the host network"],
        ),
        (
            vec!["network", "connect", "n1", "z1"],
            vec!["z1 is on the none network"],
        ),
        (
            vec!["network", "connect", "host", "c1"],
            vec!["cannot be connected to the host network"],
        ),
        (
            vec!["network", "connect", "n1", "ghost"],
            vec!["no such container: ghost"],
        ),
        (
            vec!["network", "connect", "--ip", "10.81.0.5", "bridge", "t1"],
            vec!["user-defined networks only"],
        ),
        (
            vec!["network", "disconnect", "n1", "t1"],
            vec!["t1 is not connected to network n1"],
        ),
        (
            vec!["network", "disconnect", "host", "h1"],
            vec!["cannot be disconnected from the host network"],
        ),
        (
            vec!["rm", "c1"],
            vec![
                "cannot remove container c1: container is running: stop the container before removing or force remove",
            ],
        ),
        (
            vec!["exec", "ghost", "--", "true"],
            vec!["no such container: ghost"],
        ),
    ] {
        refused(&h, &args, &want);
    }
}

#[test]
fn bad_hosts_and_missing_daemons_are_one_line() {
    let h = host();
    let berth = env!("CARGO_BIN_EXE_berth");
    for (host, want) in [
        ("tcp://1.2.3.4:2375", "unix sockets only"),
        (
            "unix:///nonexistent/berth.sock",
            "cannot reach the berth daemon at /nonexistent/berth.sock",
        ),
    ] {
        let r = h.run(berth, &["-H", host, "network", "ls"]);
        assert_ne!(r.code, 0);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
}
