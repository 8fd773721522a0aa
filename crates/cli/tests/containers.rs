//! Containers: run (foreground and detached), exec, ps, inspect, logs, rm;
//! their hostname and generated files; host and none modes; connect and
//! disconnect.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

fn inspect(h: &TestHost, c: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).expect("inspect prints JSON");
    v[0].clone()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn foreground_run_passes_output_and_exit_code() {
    let h = host();
    let r = h.berth(&[
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 7",
    ]);
    assert_eq!(r.code, 7);
    assert_eq!(r.stdout, "hello\n");
    assert_eq!(r.stderr, "oops\n");
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "", "--rm leaves no container");
    // Not --rm: it stays, exited, with its code, and its address goes back.
    let r = h.berth(&["run", "--name", "kept", "--", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3);
    let c = inspect(&h, "kept");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 3);
    assert_eq!(c["NetworkSettings"]["Networks"], serde_json::json!({}));
    let ps = h.ok(&["ps", "-a"]);
    assert!(
        ps.contains("Exited (3)") && ps.contains("kept") && ps.contains("bridge"),
        "{ps}"
    );
    assert!(
        !h.ok(&["ps"]).contains("kept"),
        "ps without -a shows running containers only"
    );
    let bridge: Value = serde_json::from_str(&h.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(bridge[0]["Containers"], serde_json::json!({}));
    h.ok(&["rm", "kept"]);
    // A command that does not exist: 127 and one line.
    let r = h.berth(&["run", "--rm", "--", "no-such-command-here"]);
    assert_eq!(r.code, 127);
    assert!(
        r.stderr.contains("cannot run \"no-such-command-here\""),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn detached_run_logs_ps_exec_rm() {
    let h = host();
    h.ok(&["network", "create", "my-net"]);
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "my-net",
        "--",
        "sh",
        "-c",
        "echo started; sleep 600",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    wait_until("c1 logs", || h.ok(&["logs", "c1"]) == "started\n");
    let c = inspect(&h, "c1");
    assert_eq!(c["Id"], id);
    assert_eq!(c["Name"], "/c1");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Running"], true);
    assert!(c["State"]["Pid"].as_u64().unwrap() > 1);
    assert_eq!(c["HostConfig"]["NetworkMode"], "my-net");
    let net = &c["NetworkSettings"]["Networks"]["my-net"];
    assert_eq!(net["IPAddress"], "172.18.0.2");
    assert_eq!(net["IPPrefixLen"], 16);
    assert_eq!(net["Gateway"], "172.18.0.1");
    assert_eq!(net["MacAddress"], "02:42:ac:12:00:02");
    assert_eq!(net["InterfaceName"], "eth0");
    assert!(c["NetworkSettings"]["SandboxKey"].as_str().unwrap().ends_with(id));
    let ps = h.ok(&["ps"]);
    let line = ps.lines().find(|l| l.contains("c1")).expect("c1 in ps");
    assert!(
        line.starts_with(&id[..12]) && line.contains("Up ") && line.contains("my-net"),
        "{ps}"
    );
    // exec joins its namespaces.
    let addr = h.ok(&["exec", "c1", "--", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains("172.18.0.2/16"), "{addr}");
    let route = h.ok(&["exec", "c1", "--", "ip", "route", "show", "default"]);
    assert!(route.starts_with("default via 172.18.0.1 dev eth0"), "{route}");
    assert_eq!(h.ok(&["exec", "c1", "--", "hostname"]).trim(), &id[..12]);
    assert_eq!(h.berth(&["exec", "c1", "--", "sh", "-c", "exit 5"]).code, 5);
    // The container's mount namespace holds no other sandbox.
    let netns_dir = h.exec_root().join("netns");
    let mounts = h.ok(&["exec", "c1", "--", "cat", "/proc/self/mountinfo"]);
    assert!(
        !mounts.contains(&*netns_dir.to_string_lossy()),
        "sandbox pins leak into containers: {mounts}"
    );
    // rm -f kills it and takes everything down.
    let pid = c["State"]["Pid"].as_u64().unwrap();
    h.ok(&["rm", "-f", "c1"]);
    wait_until("c1's process is gone", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(
        h.fails(&["inspect", "--type", "container", "c1"])
            .contains("no such container")
    );
    assert!(!netns_dir.join(id).exists(), "sandbox pin left behind");
}

#[test]
fn detached_exit_is_noticed_and_rm_flag_removes() {
    let h = host();
    h.ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        "--",
        "sh",
        "-c",
        "echo bye; exit 4",
    ]);
    wait_until("quick exited", || {
        inspect(&h, "quick")["State"]["Status"] == "exited"
    });
    let c = inspect(&h, "quick");
    assert_eq!(c["State"]["ExitCode"], 4);
    assert_eq!(h.ok(&["logs", "quick"]), "bye\n");
    h.ok(&["run", "-d", "--rm", "--name", "gone", "--", "true"]);
    wait_until("gone removed", || {
        h.berth(&["inspect", "--type", "container", "gone"]).code != 0
    });
    // A container whose shim is killed is noticed as exited too.
    h.ok(&["run", "-d", "--name", "orphan", "--", "sleep", "600"]);
    let pid = inspect(&h, "orphan")["State"]["Pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_until("orphan exited", || {
        inspect(&h, "orphan")["State"]["Status"] == "exited"
    });
}

#[test]
fn hostname_hosts_and_resolv_conf() {
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    let resolv = h.root.join("host-resolv.conf");
    std::fs::write(
        &resolv,
        "search corp.example\nnameserver 127.0.0.53\nnameserver 10.1.2.3\noptions edns0\n",
    )
    .unwrap();
    h.start_daemon(&["--resolv-conf", resolv.to_str().unwrap()]);
    h.ok(&["network", "create", "--subnet", "10.40.0.0/24", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-h",
        "web1",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(h.ok(&["exec", "web", "--", "hostname"]), "web1\n");
    assert_eq!(h.ok(&["exec", "web", "--", "cat", "/etc/hostname"]), "web1\n");
    assert_eq!(
        h.ok(&["exec", "web", "--", "cat", "/etc/hosts"]),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n10.40.0.2\tweb1\n"
    );
    // On a user-defined network: the embedded resolver, with the host's
    // search domains and options.
    assert_eq!(
        h.ok(&["exec", "web", "--", "cat", "/etc/resolv.conf"]),
        "search corp.example\nnameserver 127.0.0.11\noptions ndots:0 edns0\n"
    );
    // On the default bridge: the host's file without its loopback servers.
    assert_eq!(
        h.ok(&["run", "--rm", "--", "cat", "/etc/resolv.conf"]),
        "search corp.example\nnameserver 10.1.2.3\noptions edns0\n"
    );
    assert_eq!(inspect(&h, "web")["Config"]["Hostname"], "web1");
    // The host's own files are untouched.
    assert!(!std::fs::read_to_string("/etc/hosts").unwrap().contains("web1"));
    // Only loopback servers on the host: Docker's public fallback.
    std::fs::write(&resolv, "nameserver 127.0.0.53\n").unwrap();
    let r = h.ok(&["run", "--rm", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

#[test]
fn host_and_none_modes() {
    let h = host();
    let host_ino = std::fs::metadata(&h.ns)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let ns = h.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(ns.trim(), format!("net:[{host_ino}]"));
    let links = h.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--",
        "ip",
        "-o",
        "link",
        "show",
    ]);
    assert!(
        links.contains("berth0"),
        "host mode sees the host's links: {links}"
    );
    let links = h.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--",
        "ip",
        "-o",
        "link",
        "show",
    ]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let net: Value = serde_json::from_str(&h.ok(&["network", "inspect", "none"])).unwrap();
    assert_eq!(net[0]["Driver"], "null");
    h.ok(&[
        "run",
        "-d",
        "--name",
        "z",
        "--network",
        "none",
        "--",
        "sleep",
        "600",
    ]);
    let net: Value = serde_json::from_str(&h.ok(&["network", "inspect", "none"])).unwrap();
    assert_eq!(net[0]["Containers"].as_object().unwrap().len(), 1);
}

#[test]
fn connect_adds_eth1_and_disconnect_moves_the_default_route() {
    let h = host();
    h.ok(&["network", "create", "--subnet", "10.41.0.0/24", "front"]);
    h.ok(&["network", "create", "--subnet", "10.42.0.0/24", "back"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "front",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "back",
        "--",
        "sleep",
        "600",
    ]);
    assert!(
        h.berth(&["exec", "app", "--", "ping", "-c1", "-W1", "10.42.0.2"])
            .code
            != 0
    );
    h.ok(&["network", "connect", "--ip", "10.42.0.50", "back", "app"]);
    let a = h.ok(&["exec", "app", "--", "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(a.contains("10.42.0.50/24"), "{a}");
    h.ok(&["exec", "app", "--", "ping", "-c1", "-W2", "10.42.0.2"]);
    let hosts = h.ok(&["exec", "app", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("10.41.0.2\t") && hosts.contains("10.42.0.50\t"),
        "{hosts}"
    );
    let c = inspect(&h, "app");
    assert_eq!(c["NetworkSettings"]["Networks"]["back"]["InterfaceName"], "eth1");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["back"]["IPAMConfig"]["IPv4Address"],
        "10.42.0.50"
    );
    // The first network keeps the default route.
    let r = h.ok(&["exec", "app", "--", "ip", "route", "show", "default"]);
    assert!(r.contains("via 10.41.0.1 dev eth0"), "{r}");
    h.ok(&["network", "disconnect", "front", "app"]);
    let r = h.ok(&["exec", "app", "--", "ip", "route", "show", "default"]);
    assert!(
        r.contains("via 10.42.0.1 dev eth1"),
        "default route did not move: {r}"
    );
    assert!(
        h.run("ip", &["-o", "link"]).stdout.matches("veth").count() == 2,
        "one veth per endpoint"
    );
    // Connecting again gets the lowest free name.
    h.ok(&["network", "connect", "front", "app"]);
    let links = h.ok(&["exec", "app", "--", "ip", "-o", "link", "show"]);
    assert!(links.contains(" eth0@") && links.contains(" eth1@"), "{links}");
    // Disconnect from everything, then connect: eth0 with a default route.
    h.ok(&["network", "disconnect", "front", "app"]);
    h.ok(&["network", "disconnect", "back", "app"]);
    assert_eq!(
        h.ok(&["exec", "app", "--", "ip", "-o", "link", "show"])
            .lines()
            .count(),
        1
    );
    h.ok(&["network", "connect", "back", "app"]);
    let r = h.ok(&["exec", "app", "--", "ip", "route", "show", "default"]);
    assert!(r.contains("via 10.42.0.1 dev eth0"), "{r}");
}

/// The daemon's log, written to a file, has no terminal colour codes, and
/// `--rm` containers ending while the reaper runs leave no warning there.
#[test]
fn the_daemon_log_is_plain_text_without_reaping_warnings() {
    let h = host();
    for i in 0..20 {
        h.ok(&["run", "--rm", "--name", &format!("r{i}"), "--", "true"]);
    }
    h.ok(&["run", "-d", "--rm", "--name", "d", "--", "sleep", "0.2"]);
    wait_until("d is removed", || {
        h.berth(&["inspect", "--type", "container", "d"]).code != 0
    });
    let log = h.daemon_log();
    assert!(log.contains("berth daemon ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log file:\n{log}");
    assert!(
        !log.contains("reaping"),
        "a removed --rm container was reaped:\n{log}"
    );
}

/// A client in another mount namespace than the daemon's does not see the
/// pinned sandboxes: `run` says so in one line and leaves no container
/// running (Linux says only "Invalid argument" to the setns).
#[test]
fn a_client_that_cannot_see_the_pins_says_so() {
    let h = host();
    let sock = h.exec_root().parent().unwrap().join("berth.sock");
    // A mount namespace of its own, made before the container's pin (as
    // `ip netns exec` makes one): the pins directory is a private mount,
    // so the pin never shows up in it.
    let script = format!(
        "exec {} -H unix://{} run --name far -- true",
        env!("CARGO_BIN_EXE_berth"),
        sock.display()
    );
    let r = h.run(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &script],
    );
    assert_eq!(r.code, 127, "{r:?}");
    assert!(
        r.stderr
            .starts_with("berth: cannot run \"true\" in container far: ")
            && r.stderr.contains(
                "is not a network namespace where berth runs: the daemon pinned it in another mount namespace"
            )
            && r.stderr.lines().count() == 1,
        "{}",
        r.stderr
    );
    let ps = h.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps, "far exited\n");
}
