//! Shared-library plugins (`berth_plugin_v1`): the example ptp driver
//! loaded from the plugin directory and used with `-d ptp`, and the
//! faults of `examples/faulty` (bad answers, panics, hangs, libraries that
//! must be refused), each one line of error with nothing left behind and
//! the daemon still serving.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use berth_testkit::{TestHost, plugin_library};
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn ptp() -> PathBuf {
    plugin_library("berth-plugin-ptp")
}

fn faulty() -> PathBuf {
    plugin_library("berth-plugin-faulty")
}

/// Copies `lib` into the host's plugin directory as `name`.
fn install(h: &TestHost, lib: &Path, name: &str) {
    std::fs::create_dir_all(h.plugin_dir()).unwrap();
    std::fs::copy(lib, h.plugin_dir().join(name)).unwrap();
}

/// A test host whose daemon starts with these libraries installed, with
/// `env` in its environment.
fn host(libs: &[(&Path, &str)], env: &[(&str, &str)]) -> TestHost {
    let mut h = TestHost::without_daemon(berth());
    for (lib, name) in libs {
        install(&h, lib, name);
    }
    for (k, v) in env {
        h.daemon_env(k, v);
    }
    h.start_daemon(&[]);
    h
}

fn plugins(h: &TestHost) -> Vec<Value> {
    h.ok(&["plugin", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn plugin(h: &TestHost, name: &str) -> Value {
    plugins(h)
        .into_iter()
        .find(|p| p["Name"] == name)
        .unwrap_or_else(|| panic!("plugin ls has no {name}: {:?}", plugins(h)))
}

#[test]
fn plugin_ls_shows_the_ptp_plugin_loaded() {
    let h = host(&[(&ptp(), "ptp.so")], &[]);
    let p = plugin(&h, "ptp");
    assert_eq!(p["Transport"], "shared-library");
    assert_eq!(p["Path"], h.plugin_dir().join("ptp.so").display().to_string());
    // export_driver! makes version 2 tables (with call_async).
    assert_eq!(p["Abi"], 2);
    assert_eq!(p["Status"], "loaded");
    let table = h.ok(&["plugin", "ls"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains("ptp") && l.contains("shared-library") && l.contains("loaded")),
        "{table}"
    );
    // `network create --help` lists it among the drivers, with its options.
    let help = h.ok(&["network", "create", "--help"]);
    assert!(
        help.lines()
            .any(|l| l.starts_with("  ptp ") && l.ends_with(" mtu")),
        "{help}"
    );
}

#[test]
fn ptp_containers_reach_each_other_through_the_host() {
    let h = host(&[(&ptp(), "ptp.so")], &[]);
    let before = h.kernel_state();
    h.ok(&[
        "network",
        "create",
        "-d",
        "ptp",
        "--subnet",
        "10.44.0.0/24",
        "p2p",
    ]);
    h.run_sleeper("a", "p2p");
    h.run_sleeper("b", "p2p");
    let (a, b) = (h.address("a", "p2p"), h.address("b", "p2p"));
    // A /32 in the container, the gateway on-link, everything else via it.
    let addr = h.ok(&["exec", "a", "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{a}/32")), "{addr}");
    let routes = h.ok(&["exec", "a", "--", "ip", "route", "show"]);
    assert!(routes.contains("default via 10.44.0.1 dev eth0"), "{routes}");
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("10.44.0.1 dev eth0") && l.contains("scope link")),
        "{routes}"
    );
    assert!(routes.contains("10.44.0.0/24 via 10.44.0.1 dev eth0"), "{routes}");
    // No bridge: the host routes to each container's host end.
    let host_routes = h.run("ip", &["route", "show"]).stdout;
    assert!(host_routes.contains(&format!("{b} dev ptp")), "{host_routes}");
    assert!(
        !h.run("ip", &["-o", "link", "show", "type", "bridge"])
            .stdout
            .contains("ptp")
    );
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", &b]);
    h.ok(&["exec", "b", "--", "ping", "-c1", "-W2", &a]);
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", "b"]);
    let name = h.ok(&["exec", "b", "--", "getent", "hosts", "a"]);
    assert!(name.starts_with(&format!("{a} ")), "{name}");
    h.ok(&["rm", "-f", "a", "b"]);
    h.ok(&["network", "rm", "p2p"]);
    assert_eq!(h.kernel_state(), before, "ptp left something behind");
}

/// The processes' fds that are the namespace `(st_dev, st_ino)`.
fn holders(ns: (u64, u64)) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // stat follows the fd to what it is, however it was opened.
            if std::fs::metadata(fd.path()).is_ok_and(|m| (m.dev(), m.ino()) == ns) {
                out.push(fd.path().display().to_string());
            }
        }
    }
    out
}

/// The plugin keeps a sandbox open between a container's attaches (the
/// same container joining again reuses its socket), and lets go of it once
/// the container is removed: nothing holds the namespace a few seconds on.
#[test]
fn a_removed_containers_namespace_is_let_go() {
    use std::os::unix::fs::MetadataExt;
    let h = host(&[(&ptp(), "ptp.so")], &[]);
    h.ok(&[
        "network",
        "create",
        "-d",
        "ptp",
        "--subnet",
        "10.45.0.0/24",
        "p2p",
    ]);
    h.run_sleeper("c", "p2p");
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "c"])).unwrap();
    let key = v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap().to_owned();
    let m = std::fs::metadata(&key).unwrap();
    let ns = (m.dev(), m.ino());
    for _ in 0..3 {
        h.ok(&["network", "disconnect", "p2p", "c"]);
        h.ok(&["network", "connect", "p2p", "c"]);
        let addr = h.ok(&["exec", "c", "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
        assert!(addr.contains(&format!("{}/32", h.address("c", "p2p"))), "{addr}");
        h.ok(&["exec", "c", "--", "ping", "-c1", "-W2", "10.45.0.1"]);
    }
    assert!(
        !holders(ns).is_empty(),
        "nothing holds a running container's namespace"
    );
    h.ok(&["rm", "-f", "c"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !holders(ns).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the namespace of a removed container is still held: {:?}",
            holders(ns)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn libraries_that_cannot_be_used_are_listed_with_the_reason() {
    let f = faulty();
    let h = TestHost::without_daemon(berth());
    install(&h, &f, "faulty.so");
    install(&h, &f, "faulty-abi9.so");
    install(&h, &f, "nullentry.so");
    std::fs::write(h.plugin_dir().join("notelf.so"), "this is not a library\n").unwrap();
    let st = Command::new("cc")
        .args(["-shared", "-o"])
        .arg(h.plugin_dir().join("nosym.so"))
        .args(["-x", "c", "/dev/null"])
        .stderr(Stdio::inherit())
        .status()
        .expect("running cc to make a library without the entry point");
    assert!(st.success());
    let mut h = h;
    h.start_daemon(&[]);
    let status = |name: &str| plugin(&h, name)["Status"].as_str().unwrap().to_owned();
    assert_eq!(status("faulty"), "loaded");
    assert_eq!(
        status("faulty-abi9"),
        "refused: ABI version 9, this berth speaks 1 to 2"
    );
    assert_eq!(plugin(&h, "faulty-abi9")["Abi"], 9);
    assert_eq!(status("nosym"), "refused: no berth_plugin_v1 symbol");
    assert!(
        status("notelf").starts_with("refused: cannot load it: "),
        "{}",
        status("notelf")
    );
    assert!(
        status("nullentry").contains("returned no table"),
        "{}",
        status("nullentry")
    );
    // The daemon serves, and the plugin that loaded works.
    h.ok(&["network", "create", "-d", "faulty", "fine"]);
    h.run_sleeper("c", "fine");
    h.ok(&["exec", "c", "--", "ip", "link", "show", "eth0"]);
    let e = h.fails(&["network", "create", "-d", "faulty-abi9", "nope"]);
    assert!(e.contains("unknown driver \"faulty-abi9\""), "{e}");
}

#[test]
fn a_plugin_named_like_a_builtin_driver_is_refused() {
    let h = host(&[(&faulty(), "bridge.so")], &[]);
    let p = plugin(&h, "bridge");
    assert_eq!(p["Status"], "refused: \"bridge\" is a built-in driver");
    // The built-in one is still the one that answers.
    h.ok(&["network", "create", "-d", "bridge", "br"]);
    h.run_sleeper("x", "br");
    let links = h.run("ip", &["-o", "link", "show"]).stdout;
    assert!(links.contains("veth") && !links.contains("flt"), "{links}");
}

#[test]
fn reload_picks_up_a_plugin_copied_in_later() {
    let h = host(&[], &[]);
    let e = h.fails(&["network", "create", "-d", "ptp", "late"]);
    assert!(e.contains("unknown driver \"ptp\""), "{e}");
    install(&h, &ptp(), "ptp.so");
    let out = h.ok(&["plugin", "reload"]);
    assert!(out.contains("ptp") && out.contains("loaded"), "{out}");
    h.ok(&["network", "create", "-d", "ptp", "late"]);
    h.run_sleeper("l", "late");
    // A second reload keeps the same library loaded and its networks working.
    h.ok(&["plugin", "reload"]);
    h.ok(&["exec", "l", "--", "ip", "link", "show", "eth0"]);
    h.ok(&["rm", "-f", "l"]);
    h.ok(&["network", "rm", "late"]);
}

/// Each bad answer of an attach fails `berth run` with one line naming the
/// plugin and the method, leaves the kernel as it was, and the daemon goes
/// on serving.
#[test]
fn bad_answers_fail_in_one_line_and_leave_nothing() {
    let h = host(&[(&faulty(), "faulty.so")], &[]);
    let cases: &[(&str, &str, &str)] = &[
        (
            "garbage",
            "Join",
            "plugin faulty: Join answered with something that is not JSON: ",
        ),
        (
            "garbage",
            "CreateEndpoint",
            "plugin faulty: CreateEndpoint answered with something that is not JSON: ",
        ),
        ("error", "Join", "plugin faulty: Join failed: injected failure"),
        ("null", "Join", "plugin faulty: Join answered nothing"),
        (
            "empty",
            "CreateEndpoint",
            "plugin faulty: CreateEndpoint answered nothing",
        ),
        (
            "shape",
            "Join",
            "plugin faulty: Join answered JSON that is not a Join answer",
        ),
        (
            "panic",
            "Join",
            "plugin faulty: Join failed: panic inside the plugin: injected panic in Join",
        ),
    ];
    for (i, (kind, method, want)) in cases.iter().enumerate() {
        let net = format!("f{i}");
        h.ok(&[
            "network",
            "create",
            "-d",
            "faulty",
            "-o",
            &format!("fault={kind}@{method}"),
            &net,
        ]);
        let before = h.kernel_state();
        let e = h.fails(&[
            "run",
            "-d",
            "--name",
            "victim",
            "--network",
            &net,
            "--",
            "sleep",
            "600",
        ]);
        assert!(e.contains(want), "{kind}@{method}: {e}");
        assert!(e.contains("rolled back"), "{kind}@{method}: {e}");
        assert_eq!(h.kernel_state(), before, "{kind}@{method} left something behind");
        let r = h.berth(&["inspect", "--type", "container", "victim"]);
        assert_ne!(r.code, 0, "{kind}@{method}: the container stayed: {}", r.stdout);
        h.ok(&["network", "rm", &net]);
    }
    // Creating a network: a bad answer is one line, and nothing is recorded.
    let before = h.kernel_state();
    for (kind, want) in [
        (
            "garbage",
            "plugin faulty: CreateNetwork answered with something that is not JSON",
        ),
        (
            "panic",
            "plugin faulty: CreateNetwork failed: panic inside the plugin",
        ),
        ("null", "plugin faulty: CreateNetwork answered nothing"),
    ] {
        let spec = format!("fault={kind}@CreateNetwork");
        let e = h.fails(&["network", "create", "-d", "faulty", "-o", &spec, "bad"]);
        assert!(e.contains(want), "{kind}: {e}");
        assert!(
            h.ok(&["network", "ls", "-q", "--filter", "name=bad"])
                .trim()
                .is_empty()
        );
    }
    let e = h.fails(&[
        "network",
        "create",
        "-d",
        "faulty",
        "-o",
        "fault=panic@Validate",
        "bad",
    ]);
    assert!(
        e.contains("plugin faulty: Validate failed: panic inside the plugin: injected panic in Validate"),
        "{e}"
    );
    let e = h.fails(&["network", "create", "-d", "faulty", "-o", "colour=blue", "bad"]);
    assert_eq!(
        e,
        "berth: unknown option \"colour\" for driver faulty (accepted: fault)"
    );
    assert_eq!(h.kernel_state(), before);
    // Still serving, and the same plugin still works.
    h.ok(&["network", "create", "-d", "faulty", "good"]);
    h.run_sleeper("ok", "good");
    h.ok(&["exec", "ok", "--", "ip", "link", "show", "eth0"]);
}

/// A Join that never answers is cut off at the timeout and rolled back,
/// while the daemon answers other requests; one that answers late is
/// rolled back again when it does.
#[test]
fn a_hung_plugin_is_cut_off_and_the_attach_rolled_back() {
    hung_plugin_is_cut_off("faulty");
}

/// The same through version 2's `call_async`: the engine waits for the
/// answer without a blocking thread, and the bound and the rollbacks hold.
#[test]
fn a_hung_async_call_is_cut_off_and_the_attach_rolled_back() {
    hung_plugin_is_cut_off("faulty-v2");
}

fn hung_plugin_is_cut_off(name: &str) {
    let h = host(
        &[(&faulty(), &format!("{name}.so"))],
        &[("BERTH_PLUGIN_TIMEOUT_MS", "1500")],
    );
    assert_eq!(plugin(&h, name)["Abi"], if name.contains("v2") { 2 } else { 1 });
    h.ok(&["network", "create", "-d", name, "-o", "fault=hang@Join", "hung"]);
    let before = h.kernel_state();
    let started = Instant::now();
    let run = h
        .berth_cmd(&[
            "run",
            "-d",
            "--name",
            "stuck",
            "--network",
            "hung",
            "--",
            "sleep",
            "600",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile the daemon answers.
    thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    h.ok(&["network", "ls"]);
    h.ok(&["plugin", "ls"]);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the daemon stalled behind a hung plugin"
    );
    let out = run.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("plugin {name}: Join did not answer within 1500 ms")),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(h.kernel_state(), before);

    // A slow Join (2 s, past the 1.5 s timeout) answers after the engine
    // gave up and rolled back: the rollback runs again then.
    h.ok(&["network", "create", "-d", name, "-o", "fault=slow@Join", "slow"]);
    let before = h.kernel_state();
    let e = h.fails(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "slow",
        "--",
        "sleep",
        "600",
    ]);
    assert!(e.contains("did not answer within 1500 ms"), "{e}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.kernel_state() != before {
        assert!(
            Instant::now() < deadline,
            "the late Join's work stayed:\n{}",
            h.kernel_state()
        );
        thread::sleep(Duration::from_millis(100));
    }
    while !h.daemon_log().contains("answered late") {
        assert!(Instant::now() < deadline, "no late rollback:\n{}", h.daemon_log());
        thread::sleep(Duration::from_millis(100));
    }
    // The hung call still holds a thread; everything else works.
    h.ok(&["network", "create", "-d", name, "fine"]);
    h.run_sleeper("fine", "fine");
}
