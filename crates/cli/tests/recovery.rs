//! Restarts, crashes and one daemon per data root.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// What a restart must keep: networks, containers with their addresses,
/// links, addresses, the firewall table and its elements.
fn snapshot(h: &TestHost) -> String {
    let containers: Value = serde_json::from_str(&h.ok(&["inspect", "a", "b", "c"])).unwrap();
    let mut nets = Vec::new();
    for c in containers.as_array().unwrap() {
        nets.push(format!(
            "{} {} {}",
            c["Name"], c["State"]["Status"], c["NetworkSettings"]["Networks"]
        ));
    }
    format!(
        "{}\n{}\n{}",
        h.ok(&["network", "ls", "--no-trunc"]),
        nets.join("\n"),
        h.kernel_state()
    )
}

#[test]
fn kill_9_and_restart_keeps_everything() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.30.0.0/24", "n1"]);
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.31.0.0/24",
        "-o",
        "icc=false",
        "n2",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
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
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "n2",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&["network", "connect", "n2", "a"]);
    let before = snapshot(&h);
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(snapshot(&h), before);
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W1", "10.30.0.3"]);
    // New addresses do not collide with restored ones.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "d",
        "--network",
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    let d: Value = serde_json::from_str(&h.ok(&["inspect", "d"])).unwrap();
    assert_eq!(
        d[0]["NetworkSettings"]["Networks"]["n1"]["IPAddress"],
        "10.30.0.4"
    );
    // A plain restart (SIGTERM) keeps everything as well.
    h.stop_daemon();
    h.start_daemon(&[]);
    h.ok(&["exec", "d", "--", "ping", "-c1", "-W1", "10.30.0.2"]);
}

/// A started report's commit does not wait for the disk; the daemon notes
/// the start on its tmpfs, and a restart after a crash takes the note in.
#[test]
fn a_crash_right_after_a_start_keeps_the_container_running() {
    let mut h = TestHost::new(berth());
    // The store's own flush (within a second) must not come first.
    h.kill_daemon();
    h.daemon_env("BERTH_STORE_FLUSH_MS", "600000");
    h.start_daemon(&[]);
    h.ok(&["network", "create", "--subnet", "10.33.0.0/24", "n"]);
    h.ok(&["run", "-d", "--name", "x", "--network", "n", "--", "sleep", "600"]);
    let state = |h: &TestHost| -> (Value, Value) {
        let x: Value = serde_json::from_str(&h.ok(&["inspect", "x"])).unwrap();
        (
            x[0]["State"].clone(),
            x[0]["NetworkSettings"]["Networks"]["n"]["IPAddress"].clone(),
        )
    };
    let (before, ip) = state(&h);
    assert_eq!(before["Status"], "running", "{before}");
    assert_eq!(ip, "10.33.0.2");
    let adopted = "taking in a start the store lost to a crash";
    // Nothing was written to the disk since the start: the crash loses it.
    h.kill_daemon();
    h.start_daemon(&[]);
    assert!(h.daemon_log().contains(adopted), "{}", h.daemon_log());
    let (after, ip_after) = state(&h);
    assert_eq!(after["Status"], "running", "{after}");
    assert_eq!(after["Pid"], before["Pid"]);
    assert_eq!(after["StartedAt"], before["StartedAt"]);
    assert_eq!(ip_after, ip);
    h.ok(&["exec", "x", "--", "ip", "-4", "-o", "addr", "show", "eth0"]);
    // The store's flush takes a start to the disk within a second.
    h.clear_daemon_env();
    h.kill_daemon();
    h.start_daemon(&[]);
    h.ok(&["run", "-d", "--name", "z", "--network", "n", "--", "sleep", "600"]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(h.daemon_log().matches(adopted).count(), 1, "{}", h.daemon_log());
    let z: Value = serde_json::from_str(&h.ok(&["inspect", "z"])).unwrap();
    assert_eq!(z[0]["State"]["Status"], "running", "{z}");
    // A clean stop takes the store to the disk first: nothing to take in.
    // (The log goes on across restarts: the one take-in above is in it.)
    h.ok(&["run", "-d", "--name", "y", "--network", "n", "--", "sleep", "600"]);
    h.stop_daemon();
    h.start_daemon(&[]);
    let y: Value = serde_json::from_str(&h.ok(&["inspect", "y"])).unwrap();
    assert_eq!(y[0]["State"]["Status"], "running", "{y}");
    assert_eq!(h.daemon_log().matches(adopted).count(), 1, "{}", h.daemon_log());
    // The container's end takes the note away with it.
    h.ok(&["rm", "-f", "x", "y", "z"]);
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn a_crash_mid_create_leaves_nothing() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.32.0.0/24", "n"]);
    let before = h.kernel_state();
    h.kill_daemon();
    h.daemon_env("BERTH_FAILPOINT", "create-after-attach");
    h.start_daemon(&[]);
    let r = h.berth(&["run", "-d", "--name", "x", "--network", "n", "--", "sleep", "600"]);
    assert_ne!(r.code, 0, "the daemon should have died mid-create");
    assert!(h.wait_daemon().is_some_and(|s| !s.success()));
    // The kernel holds a half-made container now; a restart removes it.
    assert_ne!(
        h.kernel_state(),
        before,
        "the failpoint fired before the kernel work"
    );
    h.clear_daemon_env();
    h.start_daemon(&[]);
    assert_eq!(h.kernel_state(), before);
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
    // And the name and address are free again.
    h.ok(&["run", "-d", "--name", "x", "--network", "n", "--", "sleep", "600"]);
    let x: Value = serde_json::from_str(&h.ok(&["inspect", "x"])).unwrap();
    assert_eq!(x[0]["NetworkSettings"]["Networks"]["n"]["IPAddress"], "10.32.0.2");
}

#[test]
fn a_crash_mid_connect_leaves_the_container_as_it_was() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.33.0.0/24", "n1"]);
    h.ok(&["network", "create", "--subnet", "10.34.0.0/24", "n2"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    let before = h.kernel_state();
    let c: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    let sandbox = std::path::PathBuf::from(c[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap());
    // Read the sandbox directly: exec needs a daemon, and it is dead below.
    let links = || {
        berth_testkit::run_in(&sandbox, "ip", &["-o", "link", "show"])
            .stdout
            .lines()
            .count()
    };
    let links_before = links();
    h.kill_daemon();
    h.daemon_env("BERTH_FAILPOINT", "connect-after-attach");
    h.start_daemon(&[]);
    assert_ne!(h.berth(&["network", "connect", "n2", "c"]).code, 0);
    assert!(h.wait_daemon().is_some());
    assert_eq!(
        links(),
        links_before + 1,
        "the failpoint fired before the kernel work"
    );
    h.clear_daemon_env();
    h.start_daemon(&[]);
    assert_eq!(h.kernel_state(), before);
    assert_eq!(links(), links_before);
    let c: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    assert!(c[0]["NetworkSettings"]["Networks"]["n2"].is_null());
    // Connecting again works and gets the first address.
    h.ok(&["network", "connect", "n2", "c"]);
    let c: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    assert_eq!(
        c[0]["NetworkSettings"]["Networks"]["n2"]["IPAddress"],
        "10.34.0.2"
    );
}

/// A macvlan interface lives in the sandbox only, with no host side to
/// find it by: the restart asks the driver what it made there.
#[test]
fn a_crash_mid_connect_to_macvlan_leaves_no_interface_in_the_sandbox() {
    let mut h = TestHost::new(berth());
    h.add_lan_parents(&["lan0"]);
    h.ok(&["network", "create", "--subnet", "10.37.0.0/24", "n1"]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.38.0.0/24",
        "-o",
        "parent=lan0",
        "mv",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    let c: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    let sandbox = std::path::PathBuf::from(c[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap());
    let links = || berth_testkit::run_in(&sandbox, "ip", &["-o", "link", "show"]).stdout;
    let links_before = links();
    h.kill_daemon();
    h.daemon_env("BERTH_FAILPOINT", "connect-after-attach");
    h.start_daemon(&[]);
    assert_ne!(h.berth(&["network", "connect", "mv", "c"]).code, 0);
    assert!(h.wait_daemon().is_some());
    let crashed = links();
    assert_eq!(
        crashed.lines().count(),
        links_before.lines().count() + 1,
        "the failpoint fired before the kernel work: {crashed}"
    );
    assert!(crashed.contains(" eth1"), "{crashed}");
    h.clear_daemon_env();
    h.start_daemon(&[]);
    assert_eq!(links(), links_before, "the stray macvlan interface is gone");
    // Its address is free again: connecting again gets the first one.
    h.ok(&["network", "connect", "mv", "c"]);
    assert_eq!(h.address("c", "mv"), "10.38.0.2");
    h.ok(&["exec", "c", "--", "ip", "link", "show", "eth1"]);
}

#[test]
fn restart_repairs_what_was_removed_from_outside() {
    let mut h = TestHost::new(berth());
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.35.0.0/24",
        "-o",
        "bridge.name=br-fix",
        "n",
    ]);
    h.ok(&["run", "-d", "--name", "a", "--network", "n", "--", "sleep", "600"]);
    h.ok(&["run", "-d", "--name", "b", "--network", "n", "--", "sleep", "600"]);
    let before = h.kernel_state();
    // Someone flushes the firewall and deletes a container's veth.
    h.sh("nft flush ruleset");
    let veth = h.sh("ip -o link show master br-fix | head -1 | cut -d: -f2 | cut -d@ -f1");
    h.sh(&format!("ip link del {}", veth.trim()));
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(h.kernel_state(), before);
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", "10.35.0.3"]);
    // Other tables are not touched by berth.
    h.sh("nft add table inet other");
    h.kill_daemon();
    h.start_daemon(&[]);
    h.sh("nft list table inet other");
}

#[test]
fn one_daemon_per_data_root() {
    let h = TestHost::new(berth());
    let mut second = h.spawn_daemon(&[]).expect("spawning a second daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the second daemon did not refuse to start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let log = h.daemon_log();
    assert!(
        log.contains("a berth daemon is already listening on")
            || log.contains("another berth daemon is already running"),
        "{log}"
    );
    // The first one still serves.
    h.ok(&["network", "ls"]);
}

#[test]
fn the_cli_starts_the_daemon_when_none_answers() {
    let h = TestHost::without_daemon(berth());
    let exec_root = h.root.join("auto-run");
    let data_root = h.root.join("auto-data");
    let mut cmd = std::process::Command::new(berth());
    cmd.args(["network", "ls", "-q"])
        .env_remove("BERTH_HOST")
        .env("BERTH_EXEC_ROOT", &exec_root)
        .env("BERTH_DATA_ROOT", &data_root);
    berth_testkit::in_netns(&mut cmd, &h.ns).unwrap();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert!(
        exec_root.join("berth.log").exists(),
        "the auto-started daemon logs in the exec root"
    );
    assert!(data_root.join("berth.redb").exists());
    // The daemon it started lives in the test host's namespace; the test
    // host's Drop ends it with everything else there.
}

/// Kills the daemon while four `run -d` and one `rm -f` are in flight, ten
/// times; afterwards every container is running with its interface, or is
/// what it is (created, exited) without an address, or is gone.
#[test]
fn a_crash_amid_runs_and_removals_leaves_no_ghosts() {
    use std::process::Stdio;
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.36.0.0/24", "n"]);
    let mut k = 0;
    for round in 0..10u64 {
        let mut kids = Vec::new();
        for _ in 0..4 {
            k += 1;
            let name = format!("c{k}");
            let mut cmd = h.berth_cmd(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "n",
                "--",
                "sleep",
                "600",
            ]);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            kids.push(cmd.spawn().unwrap());
        }
        if k > 4 {
            let mut cmd = h.berth_cmd(&["rm", "-f", &format!("c{}", k - 5)]);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            kids.push(cmd.spawn().unwrap());
        }
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 30));
        h.kill_daemon();
        for mut c in kids {
            let _ = c.wait();
        }
        h.start_daemon(&[]);
    }
    let names: Vec<String> = h.ok(&["ps", "-a", "-q"]).lines().map(str::to_owned).collect();
    let mut addresses = Vec::new();
    for name in &names {
        let c: Value = serde_json::from_str::<Value>(&h.ok(&["inspect", name])).unwrap()[0].clone();
        let status = c["State"]["Status"].as_str().unwrap().to_owned();
        let ip = c["NetworkSettings"]["Networks"]["n"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match status.as_str() {
            "running" => {
                let inside = h.ok(&["exec", name, "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
                assert!(
                    !ip.is_empty() && inside.contains(&format!(" {ip}/")),
                    "{name}: {ip} / {inside}"
                );
                addresses.push(ip);
            }
            other => assert!(ip.is_empty(), "{name} is {other} but holds {ip}"),
        }
    }
    let n = addresses.len();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), n, "an address is held twice");
    // The network lists exactly the running ones.
    let net: Value = serde_json::from_str::<Value>(&h.ok(&["network", "inspect", "n"])).unwrap()[0].clone();
    assert_eq!(net["Containers"].as_object().map_or(0, |m| m.len()), n);
}

/// The mounts under `dir`, as `/proc/self/mountinfo` lists them.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn runtime_files_are_on_a_tmpfs_that_restarts_keep() {
    use nix::sys::statfs::{TMPFS_MAGIC, statfs};
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.36.0.0/24", "n"]);
    h.ok(&["run", "-d", "--name", "c", "--network", "n", "--", "sleep", "600"]);
    let exec = h.exec_root();
    // Namespace pins, generated files and pending attaches are runtime
    // state: on a tmpfs, a mount of berth's own where the exec root is on
    // a disk (as /run is on the machines of DESIGN.md).
    let exec_on_tmpfs = statfs(&exec).unwrap().filesystem_type() == TMPFS_MAGIC;
    for dir in ["netns", "containers", "pending"] {
        let d = exec.join(dir);
        assert_eq!(
            statfs(&d).unwrap().filesystem_type(),
            TMPFS_MAGIC,
            "{} is not on a tmpfs",
            d.display()
        );
        assert!(
            exec_on_tmpfs || mounts_under(&exec).contains(&d.display().to_string()),
            "{} is not a mount of its own",
            d.display()
        );
    }
    // Pending attaches are the daemon's alone, as the data root is.
    use std::os::unix::fs::PermissionsExt;
    let pending = std::fs::metadata(exec.join("pending"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(pending, 0o700);
    let before = mounts_under(&exec);
    // A restart mounts nothing more and finds the container as it was.
    h.kill_daemon();
    h.start_daemon(&[]);
    assert_eq!(mounts_under(&exec), before);
    let hosts = h.ok(&["exec", "c", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.36.0.2"), "{hosts}");
    h.ok(&["run", "--rm", "--network", "n", "--", "ping", "-c1", "-W2", "c"]);
}
