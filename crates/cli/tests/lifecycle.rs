//! Containers' lifecycle as Docker's: stop, start, restart, kill, wait,
//! `container ls`, rm of a running container, and logs (-f, --tail, -t,
//! and a foreground container's output).

use std::path::Path;

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

fn inspect(h: &TestHost, c: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).expect("inspect prints JSON");
    v[0].clone()
}

#[test]
fn stop_start_restart_kill_wait() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.77.0.0/24", "life"]);
    let before = h.kernel_state();
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "life",
        "--ip",
        "10.77.0.9",
        "--",
        "sleep",
        "1000",
    ]);
    // rm without -f refuses, as Docker does, and leaves it running.
    let r = h.berth(&["rm", "c1"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "berth: cannot remove container c1: container is running: stop the container before removing or force remove\n"
    );
    assert_eq!(inspect(&h, "c1")["State"]["Status"], "running");
    // `container ls` is `ps`.
    assert_eq!(h.ok(&["container", "ls"]), h.ok(&["ps"]));
    // stop: sleep dies of SIGTERM at once (143); its network goes.
    assert_eq!(h.ok(&["stop", "-t", "5", "c1"]), "c1\n");
    let c = inspect(&h, "c1");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 143);
    assert_eq!(h.kernel_state(), before, "stop leaves no interface or address");
    // start: same command, same static address.
    assert_eq!(h.ok(&["start", "c1"]), "c1\n");
    let c = inspect(&h, "c1");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["NetworkSettings"]["Networks"]["life"]["IPAddress"], "10.77.0.9");
    // A process that ignores SIGTERM is killed after -t.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 1000 & wait",
    ]);
    let t = std::time::Instant::now();
    assert_eq!(h.ok(&["stop", "-t", "1", "stubborn"]), "stubborn\n");
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(inspect(&h, "stubborn")["State"]["ExitCode"], 137);
    // restart keeps the address too.
    assert_eq!(h.ok(&["restart", "-t", "1", "c1"]), "c1\n");
    let c = inspect(&h, "c1");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["NetworkSettings"]["Networks"]["life"]["IPAddress"], "10.77.0.9");
    // kill with a name without SIG, and wait prints the code.
    assert_eq!(h.ok(&["kill", "-s", "TERM", "c1"]), "c1\n");
    assert_eq!(h.ok(&["wait", "c1"]), "143\n");
    h.ok(&["start", "c1"]);
    assert_eq!(h.ok(&["kill", "-s", "9", "c1"]), "c1\n");
    assert_eq!(h.ok(&["container", "wait", "c1"]), "137\n");
    let r = h.berth(&["kill", "-s", "NOPE", "c1"]);
    assert_eq!((r.code, r.stderr.as_str()), (1, "berth: invalid signal: NOPE\n"));
    let r = h.berth(&["kill", "c1"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "berth: container c1 is not running\n")
    );
    h.ok(&["rm", "c1", "stubborn"]);
    assert_eq!(h.kernel_state(), before, "nothing leaked after start and stop");
    h.ok(&["network", "rm", "life"]);
}

#[test]
fn logs_tail_timestamps_follow_and_foreground() {
    let h = host();
    // A foreground container's output is shown and logged; its code kept
    // (stdout and stderr are read from two pipes: the sleep orders them).
    let r = h.berth(&[
        "run",
        "--name",
        "fg",
        "--",
        "sh",
        "-c",
        "echo one; sleep 0.1; echo two >&2; exit 4",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (4, "one\n", "two\n")
    );
    assert_eq!(h.ok(&["logs", "fg"]), "one\ntwo\n");
    assert_eq!(h.ok(&["logs", "--tail", "1", "fg"]), "two\n");
    let t = h.ok(&["logs", "-t", "fg"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2, "{t}");
    for (l, want) in lines.iter().zip(["one", "two"]) {
        let (time, text) = l.split_once(' ').unwrap();
        assert_eq!(text, want);
        // 2024-01-02T03:04:05.123456789Z
        assert_eq!(time.len(), 30, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    }
    // -f follows a detached container until it stops.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.3; done",
    ]);
    let r = h.berth(&["logs", "-f", "bg"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "1\n2\n3\n"));
    let r = h.berth(&["logs", "--tail", "x", "bg"]);
    assert_eq!(r.code, 1);
    h.ok(&["rm", "fg", "bg"]);
}

/// `rm`, `stop` and `kill` of many containers work on them at once (as
/// Docker's CLI does), yet print the names that succeeded, and one error
/// line for each that failed, in the order given; exit 1 when any failed.
#[test]
fn many_at_once_keep_their_order() {
    let h = host();
    let names: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    for n in &names {
        h.ok(&["run", "-d", "--name", n, "--", "sleep", "600"]);
    }
    let mut args: Vec<&str> = vec!["kill", "-s", "TERM"];
    args.extend(names.iter().map(String::as_str));
    assert_eq!(h.ok(&args), names.join("\n") + "\n");
    let mut args: Vec<&str> = vec!["rm", "-f", "nosuch1"];
    args.extend(names.iter().map(String::as_str));
    args.push("nosuch2");
    let r = h.berth(&args);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, names.join("\n") + "\n");
    assert_eq!(
        r.stderr,
        "berth: no such container: nosuch1\nberth: no such container: nosuch2\n"
    );
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
}
