//! `berth` as a CNI plugin (`"type": "berth"`): the berth binary run as a
//! runtime runs plugins (`CNI_*` in the environment, the configuration on
//! stdin, in the host's namespace) attaches namespaces that berth did not
//! make to a berth network through the daemon. Every test runs in a test
//! host; the "pods" are namespaces pinned under its root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::{Run, TestHost, accept_one, in_netns, run_in};
use serde_json::{Value, json};

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// The CNI network's name in the configurations below.
const CNI_NAME: &str = "podnet";

/// A configuration for berth network `network` on the test host's daemon,
/// with `extra` merged in (`runtimeConfig`, `cniVersion`, …).
fn conf(h: &TestHost, network: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0",
        "name": CNI_NAME,
        "type": "berth",
        "network": network,
        "host": format!("unix://{}", h.socket.display()),
    });
    if let (Some(o), Value::Object(x)) = (c.as_object_mut(), extra) {
        o.extend(x);
    }
    c
}

/// Runs the berth binary as a runtime runs a CNI plugin, in the test host's
/// namespace: `env` are the `CNI_*` variables (and only those).
fn cni(h: &TestHost, env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(berth());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_PATH", "/opt/cni/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    in_netns(&mut cmd, &h.ns).unwrap();
    let mut child = cmd.spawn().expect("running berth as a CNI plugin");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let r: Run = out.into();
    assert!(!r.stderr.contains("panicked"), "berth panicked: {}", r.stderr);
    r
}

/// One call for container `id`, interface `eth0`, namespace `netns`.
fn call(h: &TestHost, cmd: &str, id: &str, netns: &Path, args: &str, conf: &Value) -> Run {
    let ns = netns.display().to_string();
    cni(
        h,
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", &ns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args),
        ],
        conf.to_string().as_bytes(),
    )
}

/// The result of a call that must succeed (stdout as JSON, `null` when
/// empty).
fn ok(r: Run) -> Value {
    assert_eq!(r.code, 0, "the plugin failed: {}{}", r.stdout, r.stderr);
    if r.stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
    }
}

/// The CNI error object of a call that must fail, checked for its shape.
fn error(r: Run) -> Value {
    assert_ne!(r.code, 0, "the plugin should have failed: {}", r.stdout);
    let e: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|err| panic!("the error is not a JSON object on stdout ({err}): {r:?}"));
    assert!(e["code"].is_u64(), "{e}");
    assert!(e["cniVersion"].is_string(), "{e}");
    assert!(!e["msg"].as_str().unwrap_or_default().is_empty(), "{e}");
    assert!(e["details"].is_string(), "{e}");
    e
}

fn code(r: Run) -> u64 {
    error(r)["code"].as_u64().unwrap()
}

/// Links in the namespace `ns`, by name.
fn links(ns: &Path) -> Vec<String> {
    let out = run_in(ns, "ip", &["-o", "link", "show"]).stdout;
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .collect()
}

fn ping_from(ns: &Path, ip: &str) -> bool {
    run_in(ns, "ping", &["-c1", "-W1", ip]).code == 0
}

/// A pod: a namespace under the host's root, `lo` up, as a runtime makes.
fn pod(h: &TestHost, name: &str) -> PathBuf {
    h.namespace(name)
}

#[test]
fn add_check_and_del_attach_a_foreign_namespace_with_addresses_routes_and_names() {
    let h = TestHost::new(berth());
    let before = h.kernel_state();
    h.ok(&["network", "create", "--subnet", "10.71.0.0/24", "cnet"]);
    h.run_sleeper("b1", "cnet");
    let b1 = h.address("b1", "cnet");
    let p = pod(&h, "pod1");
    let c = conf(
        &h,
        "cnet",
        json!({"runtimeConfig": {"aliases": {CNI_NAME: ["webalias"], "other": ["nothere"]}}}),
    );
    let id = "0123456789abcdef0123";
    let r = ok(call(&h, "ADD", id, &p, "IgnoreUnknown=1;K8S_POD_NAME=web", &c));

    // The result: one interface in the pod, its address, default route and
    // berth's resolver.
    assert_eq!(r["cniVersion"], "1.0.0");
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 1, "{r}");
    assert_eq!(ifs[0]["name"], "eth0");
    assert_eq!(ifs[0]["sandbox"], p.display().to_string());
    let mac = ifs[0]["mac"].as_str().unwrap();
    let link = run_in(&p, "ip", &["-o", "link", "show", "eth0"]).stdout;
    assert!(link.contains(&format!("link/ether {mac} ")), "{mac}: {link}");
    let ips = r["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "{r}");
    let addr = ips[0]["address"].as_str().unwrap();
    assert!(addr.starts_with("10.71.0.") && addr.ends_with("/24"), "{r}");
    assert_eq!(ips[0]["gateway"], "10.71.0.1");
    assert_eq!(ips[0]["interface"], 0);
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.71.0.1"}]));
    assert_eq!(r["dns"]["nameservers"], json!(["127.0.0.11"]));
    let ip = addr.split('/').next().unwrap();
    let shown = run_in(&p, "ip", &["-o", "-4", "addr", "show", "eth0"]).stdout;
    assert!(shown.contains(addr), "{shown}");
    let routes = run_in(&p, "ip", &["route", "show", "default"]).stdout;
    assert!(routes.contains("via 10.71.0.1 dev eth0"), "{routes}");

    // Both ways by address; by name and alias from berth's container, and
    // berth's container by name from the pod through 127.0.0.11.
    assert!(ping_from(&p, &b1), "the pod cannot reach b1");
    assert_eq!(h.berth(&["exec", "b1", "--", "ping", "-c1", "-W1", ip]).code, 0);
    let seen = h.ok(&["exec", "b1", "--", "getent", "hosts", "web"]);
    assert!(seen.starts_with(&format!("{ip} ")), "web: {seen}");
    let seen = h.ok(&["exec", "b1", "--", "getent", "hosts", "webalias"]);
    assert!(seen.starts_with(&format!("{ip} ")), "webalias: {seen}");
    assert_ne!(
        h.berth(&["exec", "b1", "--", "getent", "hosts", "nothere"]).code,
        0
    );
    assert_eq!(
        h.berth(&["exec", "b1", "--", "ping", "-c1", "-W1", "web"]).code,
        0
    );
    let dig = run_in(&p, "dig", &["+short", "+time=1", "+tries=2", "@127.0.0.11", "b1"]).stdout;
    assert_eq!(dig.trim(), b1, "the pod's lookup of b1");

    // berth shows it as a container on the network.
    let ps = h.ok(&["ps", "--format", "{{.Names}} {{.Networks}}"]);
    assert!(ps.lines().any(|l| l == "web cnet"), "{ps}");
    assert_eq!(h.address("web", "cnet"), ip);

    // CHECK, an ADD of the same attachment again, a start of it.
    assert_eq!(ok(call(&h, "CHECK", id, &p, "", &c)), Value::Null);
    assert_eq!(code(call(&h, "ADD", id, &p, "K8S_POD_NAME=web", &c)), 100);
    for args in [
        &["start", "web"][..],
        &["stop", "web"],
        &["network", "disconnect", "cnet", "web"],
        &["network", "connect", "bridge", "web"],
    ] {
        let e = h.fails(args);
        assert!(e.contains("another runtime"), "{args:?}: {e}");
    }

    // DEL: the interface goes, the namespace stays; twice is fine; CHECK
    // then says the container is unknown.
    assert_eq!(ok(call(&h, "DEL", id, &p, "", &c)), Value::Null);
    assert_eq!(links(&p), ["lo"], "the pod keeps only its loopback");
    assert!(p.exists());
    assert_eq!(ok(call(&h, "DEL", id, &p, "", &c)), Value::Null);
    assert_eq!(code(call(&h, "CHECK", id, &p, "", &c)), 3);
    assert!(!h.ok(&["ps", "-a"]).contains("web"));
    assert_ne!(h.berth(&["exec", "b1", "--", "getent", "hosts", "web"]).code, 0);
    // A DEL of a pod whose namespace is gone, for a network that is gone.
    let gone = conf(&h, "no-such-net", json!({}));
    assert_eq!(
        ok(call(
            &h,
            "DEL",
            "never-added",
            Path::new("/nonexistent"),
            "",
            &gone
        )),
        Value::Null
    );

    h.ok(&["rm", "-f", "b1"]);
    h.ok(&["network", "rm", "cnet"]);
    assert_eq!(h.kernel_state(), before, "something was left behind");
}

#[test]
fn bad_input_gets_the_specs_error_codes_and_leaves_nothing() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.72.0.0/24", "cnet"]);
    let before = h.kernel_state();
    let p = pod(&h, "pod1");
    let c = conf(&h, "cnet", json!({}));
    let body = c.to_string();
    let ns = p.display().to_string();
    // Missing variables are named.
    let e = error(cni(
        &h,
        &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "x")],
        body.as_bytes(),
    ));
    assert_eq!(e["code"], 4);
    assert!(
        e["msg"].as_str().unwrap().contains("CNI_NETNS, CNI_IFNAME"),
        "{e}"
    );
    // Not JSON, a version berth does not speak, no network, unknown network.
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &json!("{"))), 6);
    let r = cni(
        &h,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_NETNS", &ns),
            ("CNI_IFNAME", "eth0"),
        ],
        b"{not json",
    );
    assert_eq!(code(r), 6);
    assert_eq!(
        code(call(
            &h,
            "ADD",
            "x",
            &p,
            "",
            &conf(&h, "cnet", json!({"cniVersion": "2.0.0"}))
        )),
        1
    );
    let mut nonet = c.clone();
    nonet.as_object_mut().unwrap().remove("network");
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &nonet)), 7);
    let e = error(call(&h, "ADD", "x", &p, "", &conf(&h, "nope", json!({}))));
    assert_eq!(e["code"], 7);
    assert!(e["msg"].as_str().unwrap().contains("nope"), "{e}");
    // A bad id, a bad interface name, a port that is no port, an alias
    // that is no name.
    assert_eq!(code(call(&h, "ADD", "-bad", &p, "", &c)), 7);
    let r = cni(
        &h,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_NETNS", &ns),
            ("CNI_IFNAME", "a/b"),
        ],
        body.as_bytes(),
    );
    assert_eq!(code(r), 7);
    let ports = conf(
        &h,
        "cnet",
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
    );
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &ports)), 7);
    let alias = conf(
        &h,
        "cnet",
        json!({"runtimeConfig": {"aliases": {CNI_NAME: ["bad name!"]}}}),
    );
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &alias)), 7);
    // A namespace that is no namespace, or the host's own.
    let file = h.root.join("not-a-netns");
    std::fs::write(&file, "").unwrap();
    assert_eq!(code(call(&h, "ADD", "x", &file, "", &c)), 7);
    assert_eq!(
        code(call(&h, "ADD", "x", Path::new("/nonexistent/ns"), "", &c)),
        7
    );
    let e = error(call(&h, "ADD", "x", &h.ns, "", &c));
    assert!(
        e["msg"].as_str().unwrap().contains("daemon's own namespace"),
        "{e}"
    );
    // An interface name the pod has already.
    run_in(
        &p,
        "ip",
        &["link", "add", "eth0", "type", "veth", "peer", "name", "x0"],
    );
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &c)), 100);
    run_in(&p, "ip", &["link", "del", "eth0"]);
    // No daemon at the socket: try again later.
    let away = conf(
        &h,
        "cnet",
        json!({"host": format!("unix://{}/none.sock", h.root.display())}),
    );
    assert_eq!(code(call(&h, "ADD", "x", &p, "", &away)), 11);
    // An unknown command.
    assert_eq!(code(call(&h, "FROB", "x", &p, "", &c)), 4);
    assert_eq!(links(&p), ["lo"], "a refused ADD left an interface in the pod");
    assert_eq!(h.ok(&["ps", "-a", "-q"]).trim(), "", "a refused ADD was recorded");
    assert_eq!(h.kernel_state(), before, "a refused ADD left something behind");
}

#[test]
fn version_status_and_gc() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.73.0.0/24", "cnet"]);
    let v = ok(cni(
        &h,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.1.0"}"#,
    ));
    assert_eq!(v["cniVersion"], "1.1.0");
    let supported: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(supported.contains(&"1.0.0") && supported.contains(&"1.1.0") && supported.contains(&"0.4.0"));
    let v11 = conf(&h, "cnet", json!({"cniVersion": "1.1.0"}));
    assert_eq!(
        ok(cni(&h, &[("CNI_COMMAND", "STATUS")], v11.to_string().as_bytes())),
        Value::Null
    );
    // STATUS says 50 when the network or the daemon is missing, and is
    // 1.1's only.
    let missing = conf(&h, "nope", json!({"cniVersion": "1.1.0"}));
    assert_eq!(
        code(cni(
            &h,
            &[("CNI_COMMAND", "STATUS")],
            missing.to_string().as_bytes()
        )),
        50
    );
    let away = conf(
        &h,
        "cnet",
        json!({"cniVersion": "1.1.0", "host": format!("unix://{}/none.sock", h.root.display())}),
    );
    assert_eq!(
        code(cni(&h, &[("CNI_COMMAND", "STATUS")], away.to_string().as_bytes())),
        50
    );
    let v10 = conf(&h, "cnet", json!({}));
    assert_eq!(
        code(cni(&h, &[("CNI_COMMAND", "STATUS")], v10.to_string().as_bytes())),
        1
    );

    // GC keeps the attachments listed and detaches the others.
    let (p1, p2) = (pod(&h, "pod1"), pod(&h, "pod2"));
    let a1 = ok(call(&h, "ADD", "keep-me", &p1, "K8S_POD_NAME=one", &v11));
    assert_eq!(a1["cniVersion"], "1.1.0");
    ok(call(&h, "ADD", "drop-me", &p2, "K8S_POD_NAME=two", &v11));
    let mut gc = v11.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep-me", "ifname": "eth0"}]);
    assert_eq!(
        ok(cni(&h, &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes())),
        Value::Null
    );
    assert_eq!(links(&p2), ["lo"], "GC left the stale attachment");
    assert!(
        links(&p1).contains(&"eth0".to_owned()),
        "GC took a valid attachment"
    );
    let ps = h.ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "one");
    // An old version's result gives each address its version.
    let old = conf(&h, "cnet", json!({"cniVersion": "0.4.0"}));
    let p3 = pod(&h, "pod3");
    let r = ok(call(&h, "ADD", "old", &p3, "", &old));
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    // Named from the id when the runtime gives no name.
    assert!(h.ok(&["ps", "--format", "{{.Names}}"]).contains("cni-old"));
}

#[test]
fn port_mappings_are_published_through_berths_port_maps() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.74.0.0/24", "cnet"]);
    let p = pod(&h, "pod1");
    let client = h.namespace("client");
    h.wire(&client, "vcl", "10.75.0.1/24", "10.75.0.2/24");
    let c = conf(
        &h,
        "cnet",
        json!({"capabilities": {"portMappings": true},
               "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]}}),
    );
    ok(call(&h, "ADD", "srv", &p, "K8S_POD_NAME=srv", &c));
    let ports = h.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ports.contains("8080->80/tcp"), "{ports}");
    let seen = accept_one(&p, 80, Duration::from_secs(5));
    let r = run_in(
        &client,
        "bash",
        &["-c", "timeout 3 bash -c 'echo hi > /dev/tcp/10.75.0.1/8080'"],
    );
    assert_eq!(r.code, 0, "connecting to the published port: {}", r.stderr);
    let peer = seen.join().unwrap().expect("the pod saw no connection");
    assert_eq!(peer.ip().to_string(), "10.75.0.2", "the pod saw {peer}");
    // DEL takes the port back: another attachment can have it.
    ok(call(&h, "DEL", "srv", &p, "", &c));
    let p2 = pod(&h, "pod2");
    ok(call(&h, "ADD", "srv2", &p2, "", &c));
    ok(call(&h, "DEL", "srv2", &p2, "", &c));
    let nft = h.run("nft", &["list", "table", "inet", "berth"]).stdout;
    assert!(!nft.contains("8080"), "the port is still mapped: {nft}");
}

#[test]
fn attachments_outlive_a_daemon_restart_and_go_with_their_namespace() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.76.0.0/24", "cnet"]);
    h.run_sleeper("b1", "cnet");
    let b1 = h.address("b1", "cnet");
    let (p1, p2) = (pod(&h, "pod1"), pod(&h, "pod2"));
    let c = conf(&h, "cnet", json!({}));
    ok(call(&h, "ADD", "stays", &p1, "K8S_POD_NAME=stays", &c));
    ok(call(&h, "ADD", "goes", &p2, "K8S_POD_NAME=goes", &c));
    let (ip1, ip2) = (h.address("stays", "cnet"), h.address("goes", "cnet"));
    h.kill_daemon();
    // The runtime removes pod2 while berth is away, without a DEL.
    // (The syscall: umount(8) would lock /run/mount/utab on the machine.)
    nix::mount::umount2(&p2, nix::mount::MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_file(&p2).unwrap();
    h.start_daemon(&[]);
    // pod1 is kept as it was: reachable, named, checked.
    assert!(ping_from(&p1, &b1), "pod1 lost its way to b1 over the restart");
    assert_eq!(
        h.berth(&["exec", "b1", "--", "ping", "-c1", "-W1", "stays"]).code,
        0
    );
    let dig = run_in(
        &p1,
        "dig",
        &["+short", "+time=1", "+tries=2", "@127.0.0.11", "b1"],
    )
    .stdout;
    assert_eq!(dig.trim(), b1, "pod1's resolver after the restart");
    assert_eq!(ok(call(&h, "CHECK", "stays", &p1, "", &c)), Value::Null);
    assert_eq!(h.address("stays", "cnet"), ip1);
    // pod2's attachment is forgotten and its address free again; its DEL,
    // when the runtime sends it, succeeds.
    let ps = h.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.contains("goes"), "{ps}");
    assert_eq!(ok(call(&h, "DEL", "goes", &p2, "", &c)), Value::Null);
    let veths = h
        .run("ip", &["-o", "link", "show", "type", "veth"])
        .stdout
        .lines()
        .count();
    assert_eq!(veths, 2, "b1's and pod1's veths only");
    // Its address went back to the pool: the next attachment gets it.
    let p3 = pod(&h, "pod3");
    let r = ok(call(&h, "ADD", "again", &p3, "", &c));
    assert_eq!(r["ips"][0]["address"], format!("{ip2}/24"));
}

#[test]
fn an_add_cut_short_by_a_crash_is_rolled_back() {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.77.0.0/24", "cnet"]);
    let before = h.kernel_state();
    let p = pod(&h, "pod1");
    let c = conf(&h, "cnet", json!({}));
    h.kill_daemon();
    h.daemon_env("BERTH_FAILPOINT", "attach-sandbox-after-attach");
    h.start_daemon(&[]);
    assert_eq!(
        code(call(&h, "ADD", "x", &p, "", &c)),
        11,
        "the daemon should have died"
    );
    assert!(h.wait_daemon().is_some_and(|s| !s.success()));
    h.clear_daemon_env();
    h.start_daemon(&[]);
    assert_eq!(
        links(&p),
        ["lo"],
        "the interface of the cut-short ADD is still in the pod"
    );
    assert_eq!(h.ok(&["ps", "-a", "-q"]).trim(), "");
    assert_eq!(h.kernel_state(), before);
    // The runtime retries: it works, with the first address.
    let r = ok(call(&h, "ADD", "x", &p, "", &c));
    assert_eq!(r["ips"][0]["address"], "10.77.0.2/24");
}

#[test]
fn one_namespace_joins_two_networks_with_two_adds() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.79.0.0/24", "n1"]);
    h.ok(&["network", "create", "--subnet", "10.80.0.0/24", "n2"]);
    h.run_sleeper("on2", "n2");
    let on2 = h.address("on2", "n2");
    let p = pod(&h, "pod1");
    let ns = p.display().to_string();
    let add = |ifname: &str, net: &str, name: &str| {
        let args = format!("K8S_POD_NAME={name}");
        cni(
            &h,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "two"),
                ("CNI_NETNS", &ns),
                ("CNI_IFNAME", ifname),
                ("CNI_ARGS", &args),
            ],
            conf(&h, net, json!({})).to_string().as_bytes(),
        )
    };
    let r1 = ok(add("eth0", "n1", "two-a"));
    let r2 = ok(add("eth1", "n2", "two-b"));
    assert_eq!(r1["interfaces"][0]["name"], "eth0");
    assert_eq!(r2["interfaces"][0]["name"], "eth1");
    assert!(
        r2["ips"][0]["address"].as_str().unwrap().starts_with("10.80.0."),
        "{r2}"
    );
    let mut got = links(&p);
    got.sort();
    assert_eq!(got, ["eth0", "eth1", "lo"]);
    assert!(ping_from(&p, &on2), "the pod cannot reach n2 through eth1");
    assert_eq!(
        h.berth(&["exec", "on2", "--", "ping", "-c1", "-W1", "two-b"])
            .code,
        0
    );
    // DEL of one leaves the other.
    let del = |ifname: &str, net: &str| {
        cni(
            &h,
            &[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "two"),
                ("CNI_NETNS", &ns),
                ("CNI_IFNAME", ifname),
            ],
            conf(&h, net, json!({})).to_string().as_bytes(),
        )
    };
    ok(del("eth0", "n1"));
    assert_eq!(
        links(&p)
            .iter()
            .filter(|l| l.starts_with("eth"))
            .collect::<Vec<_>>(),
        ["eth1"]
    );
    assert!(ping_from(&p, &on2));
    ok(del("eth1", "n2"));
    assert_eq!(links(&p), ["lo"]);
}
