//! `/sys` inside a container is a sysfs of the container's own network
//! namespace, as in Docker: `/sys/class/net` lists the container's
//! interfaces, never the machine's; on `--network host`, the host's (here
//! the test host namespace's). Through `berth run` and `berth exec` alike.

use std::path::Path;

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// The names `ls` printed, sorted.
fn names(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    v.sort();
    v
}

/// The test host namespace's links, sorted, as `ip` lists them.
fn host_links(h: &TestHost) -> Vec<String> {
    let mut v: Vec<String> = h
        .sh("ip -o link show")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_bridge_container_sees_only_its_own_interfaces_in_sys() {
    let h = host();
    h.ok(&["network", "create", "n"]);
    h.ok(&["network", "create", "m"]);
    // Foreground, on the default bridge and on a user-defined network.
    assert_eq!(
        names(&h.ok(&["run", "--rm", "--", "ls", "/sys/class/net"])),
        ["eth0", "lo"]
    );
    assert_eq!(
        names(&h.ok(&["run", "--rm", "--network", "n", "--", "ls", "/sys/class/net"])),
        ["eth0", "lo"]
    );
    // Detached, then exec: the same sysfs, and it follows the namespace
    // (a network connected later shows up as eth1).
    h.ok(&["run", "-d", "--name", "c", "--network", "n", "--", "sleep", "600"]);
    assert_eq!(
        names(&h.ok(&["exec", "c", "--", "ls", "/sys/class/net"])),
        ["eth0", "lo"]
    );
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    let mac = v[0]["NetworkSettings"]["Networks"]["n"]["MacAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.ok(&["exec", "c", "--", "cat", "/sys/class/net/eth0/address"])
            .trim(),
        mac,
        "eth0 in /sys is the container's own"
    );
    h.ok(&["network", "connect", "m", "c"]);
    assert_eq!(
        names(&h.ok(&["exec", "c", "--", "ls", "/sys/class/net"])),
        ["eth0", "eth1", "lo"]
    );
    // Read-only, as Docker's.
    let r = h.berth(&[
        "exec",
        "c",
        "--",
        "sh",
        "-c",
        "echo 1400 > /sys/class/net/eth0/mtu",
    ]);
    assert_ne!(r.code, 0, "/sys must be read-only: {r:?}");
    // The cgroup tree under it is still there.
    assert!(
        !h.ok(&["exec", "c", "--", "ls", "/sys/fs/cgroup"])
            .trim()
            .is_empty(),
        "/sys/fs/cgroup is empty in the container"
    );
}

#[test]
fn a_none_container_sees_only_lo_in_sys() {
    let h = host();
    assert_eq!(
        names(&h.ok(&["run", "--rm", "--network", "none", "--", "ls", "/sys/class/net"])),
        ["lo"]
    );
    h.ok(&[
        "run",
        "-d",
        "--name",
        "alone",
        "--network",
        "none",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(
        names(&h.ok(&["exec", "alone", "--", "ls", "/sys/class/net"])),
        ["lo"]
    );
}

#[test]
fn a_host_container_sees_the_hosts_interfaces_in_sys() {
    let h = host();
    // A link only the test host has, so a view of the machine's sysfs
    // could not pass for it.
    h.sh("ip link add sysA type veth peer name sysB");
    let want = host_links(&h);
    assert!(want.contains(&"sysA".to_owned()), "{want:?}");
    assert_eq!(
        names(&h.ok(&["run", "--rm", "--network", "host", "--", "ls", "/sys/class/net"])),
        want
    );
    h.ok(&[
        "run",
        "-d",
        "--name",
        "hosty",
        "--network",
        "host",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(
        names(&h.ok(&["exec", "hosty", "--", "ls", "/sys/class/net"])),
        host_links(&h)
    );
}
