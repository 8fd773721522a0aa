//! Docker network plugins: discovered as Docker finds them, driven over
//! their unix sockets with Docker's remote driver protocol, usable with
//! `-d NAME`. The plugin is berth's test plugin (`berth_testkit::
//! docker_plugin`), a threaded HTTP server on a real unix socket that makes
//! its bridges and veths inside the test host; its faults check that every
//! failure is one clear line, leaves nothing behind and leaves the daemon
//! serving.

use std::path::Path;
use std::time::Duration;

use berth_testkit::TestHost;
use berth_testkit::docker_plugin::{DockerPlugin, Fault};
use serde_json::Value;

/// The plugin timeout the fault tests give the daemon.
const TIMEOUT_MS: &str = "700";

fn bare_host() -> TestHost {
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    h.daemon_env("BERTH_PLUGIN_TIMEOUT_MS", TIMEOUT_MS);
    h
}

/// A test host whose daemon found the plugin `testplug` at start.
fn host() -> (TestHost, DockerPlugin) {
    let mut h = bare_host();
    let p = DockerPlugin::start(&h, "testplug");
    h.start_daemon(&[]);
    (h, p)
}

fn plugins(h: &TestHost) -> Vec<Value> {
    h.ok(&["plugin", "ls", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn plugin<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|p| p["Name"] == name)
        .unwrap_or_else(|| panic!("plugin {name} is not listed: {list:?}"))
}

#[test]
fn plugin_ls_shows_a_socket_plugin() {
    let (h, p) = host();
    let list = plugins(&h);
    let me = plugin(&list, "testplug");
    assert_eq!(me["Transport"], "docker");
    assert_eq!(me["Status"], "loaded");
    assert_eq!(me["Path"], p.socket().display().to_string());
    assert_eq!(p.calls()[..2], ["Plugin.Activate", "GetCapabilities"]);
    let table = h.ok(&["plugin", "ls"]);
    assert!(table.contains("testplug") && table.contains("docker"), "{table}");
}

#[test]
fn sockets_in_their_own_directory_and_spec_and_json_files_are_found() {
    let mut h = bare_host();
    // NAME/NAME.sock, as a plugin in a container would mount it.
    let nested = h.root.join("docker-plugins").join("nested").join("nested.sock");
    let _nested = DockerPlugin::serve(&h.ns, &nested, "nested", &["NetworkDriver"]);
    // Sockets elsewhere, named by spec files.
    let elsewhere = h.root.join("elsewhere");
    let spec_sock = elsewhere.join("a.sock");
    let json_sock = elsewhere.join("b.sock");
    let _spec = DockerPlugin::serve(&h.ns, &spec_sock, "specplug", &["NetworkDriver"]);
    let _json = DockerPlugin::serve(&h.ns, &json_sock, "jsonplug", &["NetworkDriver"]);
    let specs = h.root.join("docker-plugin-specs");
    std::fs::create_dir_all(specs.join("jsonplug")).unwrap();
    std::fs::write(
        specs.join("specplug.spec"),
        format!("unix://{}\n", spec_sock.display()),
    )
    .unwrap();
    std::fs::write(
        specs.join("jsonplug").join("jsonplug.json"),
        format!(
            r#"{{"Name": "jsonplug", "Addr": "unix://{}"}}"#,
            json_sock.display()
        ),
    )
    .unwrap();
    std::fs::write(specs.join("remote.spec"), "tcp://127.0.0.1:9\n").unwrap();
    std::fs::write(specs.join("broken.json"), "{not json").unwrap();
    h.start_daemon(&[]);

    let list = plugins(&h);
    assert_eq!(plugin(&list, "nested")["Status"], "loaded", "{list:?}");
    assert_eq!(plugin(&list, "nested")["Path"], nested.display().to_string());
    let spec = plugin(&list, "specplug");
    assert_eq!(spec["Status"], "loaded", "{list:?}");
    assert_eq!(spec["Path"], specs.join("specplug.spec").display().to_string());
    assert_eq!(plugin(&list, "jsonplug")["Status"], "loaded", "{list:?}");
    let remote = plugin(&list, "remote")["Status"].as_str().unwrap().to_owned();
    assert!(
        remote.starts_with("refused") && remote.contains("unix sockets only"),
        "{remote}"
    );
    let broken = plugin(&list, "broken")["Status"].as_str().unwrap().to_owned();
    assert!(broken.contains("not a plugin spec"), "{broken}");

    for (d, subnet) in [
        ("nested", "10.47.1.0/24"),
        ("specplug", "10.47.2.0/24"),
        ("jsonplug", "10.47.3.0/24"),
    ] {
        h.ok(&[
            "network",
            "create",
            "-d",
            d,
            "--subnet",
            subnet,
            &format!("n-{d}"),
        ]);
        h.run_sleeper(&format!("c-{d}"), &format!("n-{d}"));
        let link = h.ok(&[
            "exec",
            &format!("c-{d}"),
            "--",
            "ip",
            "-o",
            "addr",
            "show",
            "eth0",
        ]);
        assert!(link.contains(&subnet.replace(".0/24", ".2/24")), "{link}");
    }
    let line = h.fails(&["network", "create", "-d", "remote", "r"]);
    assert!(line.contains("unknown driver \"remote\""), "{line}");
}

#[test]
fn two_containers_on_a_plugin_network_reach_each_other_by_ip_and_name() {
    let (h, p) = host();
    let before = h.kernel_state();
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.46.0.0/24",
        "-o",
        "static_route=10.99.0.0/24",
        "pnet",
    ]);
    let v: Value = serde_json::from_str(&h.ok(&["network", "inspect", "pnet"])).unwrap();
    assert_eq!(v[0]["Driver"], "testplug");
    h.run_sleeper("a", "pnet");
    h.run_sleeper("b", "pnet");
    let link = h.ok(&["exec", "a", "--", "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:0a:2e:00:02"), "{link}");
    assert!(link.contains("state UP"), "{link}");
    let routes = h.ok(&["exec", "a", "--", "ip", "route", "show"]);
    assert!(routes.contains("default via 10.46.0.1 dev eth0"), "{routes}");
    assert!(
        routes
            .lines()
            .any(|r| r.starts_with("10.99.0.0/24 dev eth0 ") && r.contains("scope link")),
        "{routes}"
    );
    // The plugin's end of the pair sits on its bridge in the host.
    let ports = h.run("ip", &["-o", "link", "show", "type", "veth"]).stdout;
    assert_eq!(
        ports.lines().filter(|l| l.contains("master pb")).count(),
        2,
        "{ports}"
    );
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", &h.address("b", "pnet")]);
    h.ok(&["exec", "b", "--", "ping", "-c1", "-W2", &h.address("a", "pnet")]);
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", "b"]);
    h.ok(&["exec", "b", "--", "ping", "-c1", "-W2", "a"]);
    // The host reaches them through the plugin's bridge.
    assert_eq!(h.run("ping", &["-c1", "-W2", &h.address("a", "pnet")]).code, 0);

    // A second network of the plugin, joined as eth1.
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.46.1.0/24",
        "pnet2",
    ]);
    h.ok(&["network", "connect", "pnet2", "a"]);
    let eth1 = h.ok(&["exec", "a", "--", "ip", "-o", "addr", "show", "eth1"]);
    assert!(eth1.contains("10.46.1.2/24"), "{eth1}");
    h.ok(&["network", "disconnect", "pnet2", "a"]);
    assert_ne!(
        h.berth(&["exec", "a", "--", "ip", "link", "show", "eth1"]).code,
        0
    );
    h.ok(&["network", "rm", "pnet2"]);

    h.ok(&["rm", "-f", "a", "b"]);
    h.ok(&["network", "rm", "pnet"]);
    assert_eq!(h.kernel_state(), before, "teardown left something behind");
    let calls = p.calls();
    for m in [
        "CreateNetwork",
        "CreateEndpoint",
        "Join",
        "ProgramExternalConnectivity",
        "RevokeExternalConnectivity",
        "Leave",
        "DeleteEndpoint",
        "DeleteNetwork",
    ] {
        assert!(calls.iter().any(|c| c == m), "{m} was never called: {calls:?}");
    }
}

#[test]
fn a_plugin_that_is_not_a_network_driver_is_listed_with_the_reason() {
    let mut h = bare_host();
    let sock = h.root.join("docker-plugins").join("volplug.sock");
    let _vol = DockerPlugin::serve(&h.ns, &sock, "volplug", &["VolumeDriver"]);
    let bad = DockerPlugin::start(&h, "badscope");
    bad.fault("GetCapabilities", Fault::Garbage);
    let slow = DockerPlugin::start(&h, "slowplug");
    slow.fault("Plugin.Activate", Fault::Hang(Duration::from_secs(5)));
    h.start_daemon(&[]);
    let list = plugins(&h);
    let vol = plugin(&list, "volplug")["Status"].as_str().unwrap().to_owned();
    assert_eq!(vol, "not a network driver: it implements VolumeDriver");
    let caps = plugin(&list, "badscope")["Status"].as_str().unwrap().to_owned();
    assert!(
        caps.starts_with("not loaded: plugin badscope: GetCapabilities failed"),
        "{caps}"
    );
    let slow = plugin(&list, "slowplug")["Status"].as_str().unwrap().to_owned();
    assert!(slow.contains("no answer within 700 ms"), "{slow}");
    let line = h.fails(&["network", "create", "-d", "volplug", "v"]);
    assert!(line.contains("unknown driver \"volplug\""), "{line}");
}

#[test]
fn plugin_reload_finds_a_plugin_that_came_later_and_forgets_a_gone_one() {
    let mut h = bare_host();
    h.start_daemon(&[]);
    assert!(plugins(&h).is_empty());
    let p = DockerPlugin::start(&h, "lateplug");
    let out = h.ok(&["plugin", "reload"]);
    assert!(out.contains("lateplug") && out.contains("loaded"), "{out}");
    h.ok(&["network", "create", "-d", "lateplug", "late"]);
    h.ok(&["network", "rm", "late"]);
    drop(p);
    h.ok(&["plugin", "reload"]);
    assert!(plugins(&h).is_empty());
}

/// A fault during `berth run` on a plugin network: the run fails with one
/// line containing `want`, the kernel is as before, the daemon answers at
/// once, and the network works again when the plugin behaves.
fn attach_fails(method: &str, fault: Fault, want: &[&str]) -> (TestHost, DockerPlugin) {
    let (h, p) = host();
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.48.0.0/24",
        "fnet",
    ]);
    let before = h.kernel_state();
    p.fault(method, fault);
    let line = h.fails(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "fnet",
        "--",
        "sleep",
        "600",
    ]);
    assert!(line.starts_with("berth: plugin testplug: "), "{line}");
    for w in want {
        assert!(line.contains(w), "{line:?} should say {w:?}");
    }
    assert_eq!(
        h.kernel_state(),
        before,
        "the failed attach left something behind"
    );
    h.ok(&["network", "ls"]);
    assert!(
        !h.ok(&["ps", "-a"]).contains(" x"),
        "the failed container was recorded"
    );
    p.clear_faults();
    (h, p)
}

/// The daemon still drives the plugin after the fault.
fn works_again(h: &TestHost) {
    h.run_sleeper("y", "fnet");
    h.ok(&["rm", "-f", "y"]);
}

#[test]
fn an_err_answer_is_one_line_and_undone() {
    let (h, p) = attach_fails(
        "Join",
        Fault::Err("no\nbridge for you".into()),
        &["Join failed: the plugin said: no bridge for you"],
    );
    let calls = p.calls();
    let join = calls.iter().rposition(|c| c == "Join").unwrap();
    assert!(calls[join..].contains(&"DeleteEndpoint".to_owned()), "{calls:?}");
    works_again(&h);
}

#[test]
fn a_404_on_a_required_method_is_an_error() {
    let (h, _p) = attach_fails(
        "CreateEndpoint",
        Fault::NotFound,
        &["CreateEndpoint failed: the plugin does not implement it (HTTP 404)"],
    );
    works_again(&h);
}

#[test]
fn garbage_is_one_line_and_undone() {
    let (h, p) = attach_fails(
        "Join",
        Fault::Garbage,
        &["Join failed: the plugin's answer is not valid"],
    );
    let calls = p.calls();
    let join = calls.iter().rposition(|c| c == "Join").unwrap();
    assert_eq!(calls[join + 1..], ["Leave", "DeleteEndpoint"], "{calls:?}");
    works_again(&h);
}

#[test]
fn an_empty_answer_is_one_line() {
    let (h, _p) = attach_fails(
        "CreateEndpoint",
        Fault::Empty,
        &["CreateEndpoint failed: the plugin's answer is empty"],
    );
    works_again(&h);
}

#[test]
fn a_hanging_plugin_times_out_and_the_attach_is_rolled_back() {
    let started = std::time::Instant::now();
    let (h, p) = attach_fails(
        "Join",
        Fault::Hang(Duration::from_secs(10)),
        &["Join failed: no answer within 700 ms", "BERTH_PLUGIN_TIMEOUT_MS"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the timeout did not bound the attach"
    );
    let calls = p.calls();
    let join = calls.iter().rposition(|c| c == "Join").unwrap();
    assert_eq!(calls[join + 1..], ["Leave", "DeleteEndpoint"], "{calls:?}");
    works_again(&h);
}

#[test]
fn a_plugin_gone_after_activation_is_named_with_its_socket() {
    let (h, mut p) = host();
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.48.0.0/24",
        "fnet",
    ]);
    let before = h.kernel_state();
    p.stop();
    let line = h.fails(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "fnet",
        "--",
        "sleep",
        "600",
    ]);
    let want = format!(
        "berth: plugin testplug: CreateEndpoint failed: no route to the plugin's socket {}: Connection refused",
        p.socket().display()
    );
    assert!(line.starts_with(&want), "{line:?}\nshould start with {want:?}");
    assert_eq!(h.kernel_state(), before);
    h.ok(&["network", "ls"]);
}

#[test]
fn a_plugin_vanishing_mid_join_is_one_line_and_undone() {
    let (h, _p) = attach_fails(
        "Join",
        Fault::Vanish,
        &[
            "Join failed: the connection to the plugin's socket",
            "closed the connection without answering",
        ],
    );
    // The plugin is gone: the network cannot be used, the daemon still answers.
    let line = h.fails(&[
        "run",
        "-d",
        "--name",
        "y",
        "--network",
        "fnet",
        "--",
        "sleep",
        "600",
    ]);
    assert!(
        line.contains("CreateEndpoint failed: no route to the plugin's socket"),
        "{line}"
    );
    h.ok(&["network", "ls"]);
}

#[test]
fn a_plugin_vanishing_after_join_leaves_no_interface_behind() {
    // The plugin made its veth pair and answered Join, then went away:
    // berth moved the interface in, ProgramExternalConnectivity finds no
    // one, and the attach is undone down to the plugin's veth.
    let (h, _p) = attach_fails(
        "Join",
        Fault::VanishAfter,
        &[
            "ProgramExternalConnectivity failed: no route to the plugin's socket",
            "Connection refused",
        ],
    );
    h.ok(&["network", "ls"]);
}

#[test]
fn an_optional_method_refusing_undoes_the_kernel_work() {
    let (h, p) = attach_fails(
        "ProgramExternalConnectivity",
        Fault::Err("no way out".into()),
        &["ProgramExternalConnectivity failed: the plugin said: no way out"],
    );
    let calls = p.calls();
    let prog = calls
        .iter()
        .rposition(|c| c == "ProgramExternalConnectivity")
        .unwrap();
    assert_eq!(calls[prog + 1..], ["Leave", "DeleteEndpoint"], "{calls:?}");
    works_again(&h);
}

#[test]
fn a_bad_option_is_refused_by_the_plugin_in_one_line() {
    let (h, _p) = host();
    let before = h.kernel_state();
    let line = h.fails(&["network", "create", "-d", "testplug", "-o", "colour=blue", "bad"]);
    assert!(
        line.contains("CreateNetwork failed: the plugin said: unknown option \"colour\""),
        "{line}"
    );
    assert_eq!(h.kernel_state(), before);
    assert!(
        h.ok(&["network", "ls", "-q", "--filter", "name=bad"])
            .trim()
            .is_empty()
    );
}

#[test]
fn containers_are_removed_even_when_the_plugin_is_gone() {
    let (h, mut p) = host();
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.49.0.0/24",
        "gnet",
    ]);
    h.run_sleeper("a", "gnet");
    p.stop();
    // Leave and DeleteEndpoint cannot reach it: logged, as Docker does, and
    // the container and its interface still go.
    h.ok(&["rm", "-f", "a"]);
    let veths = h.run("ip", &["-o", "link", "show", "type", "veth"]).stdout;
    assert!(veths.trim().is_empty(), "{veths}");
    h.ok(&["network", "rm", "gnet"]);
    assert!(h.daemon_log().contains("Leave failed"), "{}", h.daemon_log());
}

#[test]
fn a_restarted_daemon_keeps_plugin_networks_working() {
    let (mut h, p) = host();
    let before = h.kernel_state();
    h.ok(&[
        "network",
        "create",
        "-d",
        "testplug",
        "--subnet",
        "10.50.0.0/24",
        "rnet",
    ]);
    h.run_sleeper("a", "rnet");
    h.run_sleeper("b", "rnet");
    h.stop_daemon();
    h.start_daemon(&[]);
    // Activated again, and asked to put back what the network needs.
    let calls = p.calls();
    let again = calls.iter().rposition(|c| c == "Plugin.Activate").unwrap();
    assert!(calls[again..].contains(&"CreateNetwork".to_owned()), "{calls:?}");
    h.ok(&["exec", "a", "--", "ping", "-c1", "-W2", "b"]);
    h.run_sleeper("c", "rnet");
    h.ok(&["exec", "c", "--", "ping", "-c1", "-W2", "a"]);
    h.ok(&["rm", "-f", "a", "b", "c"]);
    h.ok(&["network", "rm", "rnet"]);
    assert_eq!(h.kernel_state(), before);
}

#[test]
fn a_join_naming_no_interface_is_undone() {
    let (h, _p) = attach_fails(
        "Join",
        Fault::Answer(r#"{"InterfaceName":{"SrcName":"nosuch0","DstPrefix":"eth"}}"#.into()),
        &[
            "wiring in the interface from Join: moving nosuch0 into the sandbox as eth0",
            "No such device",
        ],
    );
    works_again(&h);
}

#[test]
fn a_join_with_a_bad_gateway_is_undone() {
    let (h, p) = attach_fails(
        "Join",
        Fault::Answer(
            r#"{"InterfaceName":{"SrcName":"x0","DstPrefix":"eth"},"Gateway":"10.48.0.1/24"}"#.into(),
        ),
        &["Join failed: unable to parse Gateway \"10.48.0.1/24\""],
    );
    let calls = p.calls();
    let join = calls.iter().rposition(|c| c == "Join").unwrap();
    assert_eq!(calls[join + 1..], ["Leave", "DeleteEndpoint"], "{calls:?}");
    works_again(&h);
}
