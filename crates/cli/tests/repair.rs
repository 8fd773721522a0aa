//! What someone changes under berth is put back, at the next start and on
//! `berth system reconcile`: a deleted or downed bridge, its address or
//! MAC, a container's veth taken off its bridge or set down, the address,
//! link or default route inside a container, the forwarding sysctls, the
//! firewall ruleset. After each, containers reach each other, the way out
//! and their published port again.

use std::path::Path;
use std::time::Duration;

use berth_testkit::{TestHost, accept_one, run_in};
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// A host with network `n` on bridge `br77`, containers `a` and `b`, `b`
/// publishing 8080 → 80, and a fake internet at 203.0.113.2.
fn world() -> (TestHost, std::path::PathBuf) {
    let h = TestHost::new(berth());
    let inet = h.namespace("internet");
    h.wire(&inet, "up0", "203.0.113.1/24", "203.0.113.2/24");
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "-o",
        "bridge.name=br77",
        "n",
    ]);
    h.ok(&["run", "-d", "--name", "a", "--network", "n", "--", "sleep", "600"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "n",
        "-p",
        "8080:80",
        "--",
        "sleep",
        "600",
    ]);
    (h, inet)
}

fn inspect(h: &TestHost, c: &str) -> Value {
    serde_json::from_str::<Value>(&h.ok(&["inspect", c])).unwrap()[0].clone()
}

fn veth_of(h: &TestHost, c: &str) -> String {
    let ep = inspect(h, c)["NetworkSettings"]["Networks"]["n"]["EndpointID"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("veth{}", &ep[..11])
}

/// Everything that must work: a and b reach each other, a reaches the
/// internet, and b's published port answers on the host (127.0.0.1 and its
/// uplink address).
fn works(h: &TestHost, inet: &Path) -> Result<(), String> {
    for (from, to) in [("a", "10.77.0.3"), ("b", "10.77.0.2")] {
        if h.berth(&["exec", from, "--", "ping", "-c1", "-W2", to]).code != 0 {
            return Err(format!("{from} cannot reach {to}"));
        }
    }
    if h.berth(&["exec", "a", "--", "ping", "-c1", "-W2", "203.0.113.2"])
        .code
        != 0
    {
        return Err("a cannot reach the internet".into());
    }
    let sb = inspect(h, "b")["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .to_owned();
    for (ns, addr) in [(h.ns.clone(), "127.0.0.1"), (inet.to_owned(), "203.0.113.1")] {
        let seen = accept_one(Path::new(&sb), 80, Duration::from_secs(3));
        run_in(
            &ns,
            "timeout",
            &["3", "bash", "-c", &format!("echo hi > /dev/tcp/{addr}/8080")],
        );
        if seen.join().unwrap().is_none() {
            return Err(format!("the published port on {addr} did not lead to b"));
        }
    }
    Ok(())
}

/// Each fault, made with the daemon stopped (`restart`) or running.
const FAULTS: &[(&str, &str)] = &[
    ("bridge deleted", "ip link del br77"),
    ("bridge down", "ip link set br77 down"),
    ("bridge address removed", "ip addr flush dev br77"),
    ("bridge MAC changed", "ip link set br77 address 02:00:00:00:00:77"),
    ("a's veth off its bridge", "ip link set VETH_A nomaster"),
    ("a's veth down", "ip link set VETH_A down"),
    ("forwarding off", "sysctl -qw net.ipv4.ip_forward=0"),
    (
        "route_localnet off",
        "sysctl -qw net.ipv4.conf.br77.route_localnet=0",
    ),
    ("ruleset flushed", "nft flush ruleset"),
    ("a's address removed", "IN_A ip addr flush dev eth0"),
    ("a's eth0 down", "IN_A ip link set eth0 down"),
    ("a's default route removed", "IN_A ip route del default"),
];

/// a's host-side veth and sandbox, for faults made while the daemon is
/// down.
struct A {
    veth: String,
    sandbox: String,
}

impl A {
    fn of(h: &TestHost) -> Self {
        A {
            veth: veth_of(h, "a"),
            sandbox: inspect(h, "a")["NetworkSettings"]["SandboxKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }
}

fn inflict(h: &TestHost, a: &A, fault: &str) {
    let cmd = fault.replace("VETH_A", &a.veth);
    if let Some(inside) = cmd.strip_prefix("IN_A ") {
        let r = run_in(Path::new(&a.sandbox), "sh", &["-c", inside]);
        assert_eq!(r.code, 0, "{inside}: {}", r.stderr);
    } else {
        h.sh(&cmd);
    }
}

#[test]
fn restart_puts_back_what_was_changed_under_berth() {
    let (mut h, inet) = world();
    works(&h, &inet).expect("the world works before any fault");
    let before = h.kernel_state();
    let a = A::of(&h);
    for (what, fault) in FAULTS {
        h.kill_daemon();
        inflict(&h, &a, fault);
        assert!(
            works(&h, &inet).is_err() || fault.contains("MAC"),
            "{what}: nothing was broken"
        );
        h.start_daemon(&[]);
        if let Err(e) = works(&h, &inet) {
            panic!("after a restart, {what}: {e}");
        }
        assert_eq!(h.kernel_state(), before, "after a restart, {what}");
    }
}

#[test]
fn system_reconcile_puts_back_what_was_changed_under_berth() {
    let (h, inet) = world();
    works(&h, &inet).expect("the world works before any fault");
    let before = h.kernel_state();
    let a = A::of(&h);
    for (what, fault) in FAULTS {
        inflict(&h, &a, fault);
        h.ok(&["system", "reconcile"]);
        if let Err(e) = works(&h, &inet) {
            panic!("after berth system reconcile, {what}: {e}");
        }
        assert_eq!(h.kernel_state(), before, "after berth system reconcile, {what}");
    }
}

/// Replies `ping` got, from its summary line.
fn received(out: &str) -> u32 {
    out.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" packets transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary in {out:?}"))
}

/// The firewall goes back in as one transaction: while `system reconcile`
/// reinstalls the table 50 times, containers keep knocking every 5 ms
/// on a network they are isolated from, one of them from an internal
/// network; not one packet gets through, while a path that is allowed
/// keeps answering.
#[test]
fn reloading_the_firewall_never_opens_a_forbidden_path() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.78.0.0/24", "n1"]);
    h.ok(&["network", "create", "--subnet", "10.79.0.0/24", "n2"]);
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.80.0.0/24",
        "int",
    ]);
    for (c, net) in [("a", "n1"), ("a2", "n1"), ("b", "n2"), ("i", "int")] {
        h.ok(&["run", "-d", "--name", c, "--network", net, "--", "sleep", "600"]);
    }
    let (a2, b) = (h.address("a2", "n1"), h.address("b", "n2"));
    // An internal network has no way out by routing either: give i one,
    // so that only the firewall stands between it and the rest.
    h.ok(&[
        "exec",
        "i",
        "--",
        "ip",
        "route",
        "add",
        "default",
        "via",
        "10.80.0.1",
    ]);
    // Probes: a → b across networks, i → b out of an internal network,
    // and a → a2 (allowed: the control). For 5 s, longer than the reloads.
    let probe = |from: &str, to: &str| {
        let mut cmd = h.berth_cmd(&[
            "exec", from, "--", "ping", "-n", "-q", "-i", "0.005", "-w", "5", to,
        ]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let forbidden = [probe("a", &b), probe("i", &b)];
    let allowed = probe("a", &a2);
    let t = std::time::Instant::now();
    for _ in 0..50 {
        h.ok(&["system", "reconcile"]);
    }
    let reloads = t.elapsed();
    let out = |c: std::process::Child| {
        let o = c.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let allowed = out(allowed);
    assert!(
        received(&allowed) > 0,
        "the control path does not answer: {allowed}"
    );
    for (what, c) in ["n1 → n2", "internal → n2"].into_iter().zip(forbidden) {
        let o = out(c);
        assert_eq!(
            received(&o),
            0,
            "{what} got through during 50 reloads ({reloads:?}): {o}"
        );
    }
    eprintln!("50 reloads in {reloads:?}, probed every 5 ms on 2 forbidden paths");
}
