//! The cni driver with the real reference plugins of Debian's
//! containernetworking-plugins (`/usr/lib/cni`): bridge with host-local,
//! macvlan on a veth parent of the test host, ptp; and with fake plugins
//! (shell scripts in the test's root) for every way a plugin can fail.
//! host-local keeps its leases under the test's root, never /var/lib/cni.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use serde_json::Value;

/// Where Debian puts the reference plugins.
const REFERENCE: &str = "/usr/lib/cni";

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// A test host whose daemon finds fake plugins first, then the reference
/// ones; `env` goes to the daemon.
fn host_with_fakes(env: &[(&str, &str)]) -> TestHost {
    assert!(
        Path::new(REFERENCE).join("bridge").exists(),
        "the CNI reference plugins are missing: apt-get install containernetworking-plugins"
    );
    let mut h = TestHost::without_daemon(berth());
    fs::create_dir_all(fakes(&h)).unwrap();
    fs::create_dir_all(h.root.join("cni")).unwrap();
    for (k, v) in env {
        h.daemon_env(k, v);
    }
    let path = format!("{}:{REFERENCE}", fakes(&h).display());
    h.start_daemon(&["--cni-path", &path]);
    h
}

fn host() -> TestHost {
    host_with_fakes(&[])
}

fn fakes(h: &TestHost) -> PathBuf {
    h.root.join("fake-cni")
}

/// Writes a fake plugin: a shell script that logs each call to
/// `<root>/calls.log` (`NAME COMMAND id=… if=… netns=…`), keeps the
/// configuration it got in `<root>/conf/NAME-COMMAND-IFNAME.json`, and
/// then runs `body`, with the configuration in `$conf`.
fn fake(h: &TestHost, name: &str, body: &str) {
    let root = h.root.display();
    let script = format!(
        r#"#!/bin/sh
conf=$(cat)
mkdir -p {root}/conf
printf '%s' "$conf" > "{root}/conf/{name}-$CNI_COMMAND-$CNI_IFNAME.json"
echo "{name} $CNI_COMMAND id=$CNI_CONTAINERID if=$CNI_IFNAME netns=$CNI_NETNS path=$CNI_PATH" >> {root}/calls.log
{body}
"#
    );
    let p = fakes(h).join(name);
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake plugin that passes its `prevResult` on (a chained plugin).
fn recorder(h: &TestHost, name: &str) {
    fake(
        h,
        name,
        r#"[ "$CNI_COMMAND" = ADD ] && printf '%s' "$conf" | jq -c .prevResult; exit 0"#,
    );
}

fn calls(h: &TestHost) -> Vec<String> {
    fs::read_to_string(h.root.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn conf(h: &TestHost, name: &str, cmd: &str, ifname: &str) -> Value {
    let p = h.root.join("conf").join(format!("{name}-{cmd}-{ifname}.json"));
    serde_json::from_str(&fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn ipam_dir(h: &TestHost) -> String {
    format!("ipam.dataDir={}/cni-ipam", h.root.display())
}

/// `network create -d cni -o cni.plugin=bridge …` on its own bridge and
/// subnet, gateway on the bridge; `extra` are more `-o` options.
fn bridge_net(h: &TestHost, name: &str, bridge: &str, subnet: &str, extra: &[&str]) {
    let mut opts = vec![
        "cni.plugin=bridge".to_owned(),
        format!("bridge={bridge}"),
        "isGateway=true".to_owned(),
        "ipam.type=host-local".to_owned(),
        format!("ipam.subnet={subnet}"),
        ipam_dir(h),
    ];
    opts.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut args = vec!["network", "create", "-d", "cni"];
    for o in &opts {
        args.push("-o");
        args.push(o);
    }
    args.push(name);
    h.ok(&args);
}

fn inspect(h: &TestHost, c: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).unwrap();
    v[0].clone()
}

fn can_ping(h: &TestHost, from: &str, to: &str) -> bool {
    h.berth(&["exec", from, "--", "ping", "-c1", "-W1", to]).code == 0
}

/// The addresses host-local has handed out on network `name` and not
/// taken back.
fn leases(h: &TestHost, name: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(h.root.join("cni-ipam").join(name))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    out.sort();
    out
}

/// Nothing of a refused container is left: no record, no sandbox, no
/// lease, no interface on `bridge`.
fn nothing_left(h: &TestHost, c: &str, bridge: Option<&str>, net: &str) {
    assert!(
        h.berth(&["inspect", "--type", "container", c]).code != 0,
        "{c} was recorded"
    );
    assert_eq!(h.ok(&["ps", "-a", "-q"]).trim(), "", "a container was recorded");
    let sandboxes: Vec<_> = fs::read_dir(h.exec_root().join("netns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "host")
        .collect();
    assert!(sandboxes.is_empty(), "sandboxes left: {sandboxes:?}");
    assert_eq!(leases(h, net), Vec::<String>::new(), "host-local leases left");
    if let Some(br) = bridge {
        let ports = h.run("ip", &["-o", "link", "show", "master", br]).stdout;
        assert!(ports.trim().is_empty(), "interfaces left on {br}: {ports}");
    }
}

#[test]
fn bridge_and_host_local_give_addresses_names_and_a_way_to_each_other() {
    let h = host();
    let before = h.kernel_state();
    bridge_net(&h, "cn", "cnibr0", "10.88.0.0/24", &[]);
    h.run_sleeper("a", "cn");
    h.run_sleeper("b", "cn");
    let (ia, ib) = (h.address("a", "cn"), h.address("b", "cn"));
    assert!(
        ia.starts_with("10.88.0.") && ib.starts_with("10.88.0.") && ia != ib,
        "{ia} {ib}"
    );
    // What inspect shows is what the plugin made.
    let v = inspect(&h, "a");
    let ep = &v["NetworkSettings"]["Networks"]["cn"];
    let link = h.ok(&["exec", "a", "--", "ip", "-o", "link", "show", "eth0"]);
    let mac = ep["MacAddress"].as_str().unwrap();
    assert!(
        mac.len() == 17 && link.contains(&format!("link/ether {mac} ")),
        "{mac} {link}"
    );
    assert_eq!(ep["Gateway"], "10.88.0.1");
    assert_eq!(ep["IPPrefixLen"], 24);
    assert_eq!(ep["InterfaceName"], "eth0");
    let addr = h.ok(&["exec", "a", "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ia}/24")), "{addr}");
    let netv: Value = serde_json::from_str(&h.ok(&["network", "inspect", "cn"])).unwrap();
    let id_a = v["Id"].as_str().unwrap().to_owned();
    assert_eq!(netv[0]["Containers"][&id_a]["IPv4Address"], format!("{ia}/24"));
    assert!(h.ok(&["ps"]).contains("cn"), "ps shows the network");
    // By address, and by name through the embedded resolver.
    assert!(can_ping(&h, "a", &ib) && can_ping(&h, "b", &ia));
    assert!(can_ping(&h, "b", "a"), "b cannot reach a by name");
    let out = h.ok(&["exec", "a", "--", "getent", "hosts", "b"]);
    assert!(out.starts_with(&format!("{ib} ")), "{out}");
    // host-local leased the address to the container by its id, on eth0.
    assert_eq!(leases(&h, "cn"), {
        let mut l = vec![ia.clone(), ib.clone()];
        l.sort();
        l
    });
    let lease = fs::read_to_string(h.root.join("cni-ipam/cn").join(&ia)).unwrap();
    assert!(lease.contains(&id_a) && lease.contains("eth0"), "{lease:?}");
    // A CNI bridge is a berth network like any other: the firewall knows it.
    let nft = h.run("nft", &["list", "set", "inet", "berth", "bridges"]).stdout;
    assert!(nft.contains("cnibr0"), "{nft}");
    h.ok(&["rm", "-f", "a", "b"]);
    assert_eq!(
        leases(&h, "cn"),
        Vec::<String>::new(),
        "DEL gave the addresses back"
    );
    h.ok(&["network", "rm", "cn"]);
    assert_eq!(h.kernel_state(), before, "network rm left something behind");
}

#[test]
fn a_list_runs_in_order_deletes_in_reverse_and_outlives_a_restart() {
    let mut h = host();
    recorder(&h, "rec1");
    recorder(&h, "rec2");
    fs::write(
        h.root.join("cni/10-chain.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"chain","plugins":[
                {{"type":"bridge","bridge":"cnibr3","isGateway":true,
                  "ipam":{{"type":"host-local","subnet":"10.89.0.0/24","dataDir":"{}/cni-ipam"}}}},
                {{"type":"rec1","colour":"blue"}},
                {{"type":"rec2"}}]}}"#,
            h.root.display()
        ),
    )
    .unwrap();
    h.ok(&[
        "network",
        "create",
        "-d",
        "cni",
        "-o",
        "cni.config=chain",
        "chainnet",
    ]);
    h.run_sleeper("c1", "chainnet");
    let v = inspect(&h, "c1");
    let id = v["Id"].as_str().unwrap().to_owned();
    let sandbox = v["NetworkSettings"]["SandboxKey"].as_str().unwrap().to_owned();
    let addr = h.address("c1", "chainnet");
    let path = format!("{}:{REFERENCE}", fakes(&h).display());
    assert_eq!(
        calls(&h),
        [
            format!("rec1 ADD id={id} if=eth0 netns={sandbox} path={path}"),
            format!("rec2 ADD id={id} if=eth0 netns={sandbox} path={path}"),
        ]
    );
    // Each plugin gets the list's name and version, its own options, and
    // the previous plugin's result.
    let c = conf(&h, "rec1", "ADD", "eth0");
    assert_eq!(
        (c["name"].as_str(), c["cniVersion"].as_str(), c["colour"].as_str()),
        (Some("chain"), Some("1.0.0"), Some("blue"))
    );
    assert_eq!(c["prevResult"]["ips"][0]["address"], format!("{addr}/24"));
    assert_eq!(conf(&h, "rec2", "ADD", "eth0")["prevResult"], c["prevResult"]);
    // A second network is eth1.
    bridge_net(&h, "second", "cnibr4", "10.90.0.0/24", &[]);
    h.ok(&["network", "connect", "second", "c1"]);
    let eth1 = h.ok(&["exec", "c1", "--", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains(&h.address("c1", "second")), "{eth1}");

    // The recorded result is in the store: a new daemon checks and
    // deletes with it, even after the configuration file is gone.
    h.kill_daemon();
    h.start_daemon(&["--cni-path", &path]);
    fs::remove_file(h.root.join("cni/10-chain.conflist")).unwrap();
    assert_eq!(h.ok(&["network", "check", "chainnet"]), "c1: OK\n");
    let checked = conf(&h, "rec2", "CHECK", "eth0");
    assert_eq!(checked["prevResult"], c["prevResult"]);
    h.ok(&["rm", "-f", "c1"]);
    let log = calls(&h);
    assert_eq!(
        log[log.len() - 2..],
        [
            format!("rec2 DEL id={id} if=eth0 netns={sandbox} path={path}"),
            format!("rec1 DEL id={id} if=eth0 netns={sandbox} path={path}"),
        ]
    );
    assert_eq!(
        conf(&h, "rec1", "DEL", "eth0")["prevResult"],
        c["prevResult"],
        "DEL gets the final result"
    );
    assert_eq!(leases(&h, "chain"), Vec::<String>::new());
    assert_eq!(leases(&h, "second"), Vec::<String>::new());
}

#[test]
fn macvlan_from_a_single_plugin_file_found_by_its_name() {
    let h = host();
    h.sh("ip link add lan0 type veth peer name lan0x && ip link set lan0 up && ip link set lan0x up");
    let before = h.kernel_state();
    // The file's name is not the network's: it is found by its "name".
    fs::write(
        h.root.join("cni/50-whatever.conf"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"lan","type":"macvlan","master":"lan0","mode":"bridge",
                "ipam":{{"type":"host-local","subnet":"10.91.0.0/24","dataDir":"{}/cni-ipam"}}}}"#,
            h.root.display()
        ),
    )
    .unwrap();
    h.ok(&["network", "create", "-d", "cni", "-o", "cni.config=lan", "lan"]);
    h.run_sleeper("a", "lan");
    h.run_sleeper("b", "lan");
    let link = h.ok(&["exec", "a", "--", "ip", "-d", "-o", "link", "show", "eth0"]);
    assert!(link.contains("macvlan mode bridge"), "{link}");
    assert!(can_ping(&h, "a", &h.address("b", "lan")));
    assert!(can_ping(&h, "b", "a"), "b cannot reach a by name");
    h.ok(&["rm", "-f", "a", "b"]);
    h.ok(&["network", "rm", "lan"]);
    assert_eq!(leases(&h, "lan"), Vec::<String>::new());
    assert_eq!(h.kernel_state(), before);
}

#[test]
fn ptp_routes_through_the_host() {
    let h = host();
    let before = h.kernel_state();
    let dir = ipam_dir(&h);
    h.ok(&[
        "network",
        "create",
        "-d",
        "cni",
        "-o",
        "cni.plugin=ptp",
        "-o",
        "ipam.type=host-local",
        "-o",
        "ipam.subnet=10.92.0.0/24",
        "-o",
        r#"ipam.routes=[{"dst":"0.0.0.0/0"}]"#,
        "-o",
        &dir,
        "p2p",
    ]);
    h.run_sleeper("a", "p2p");
    h.run_sleeper("b", "p2p");
    let ib = h.address("b", "p2p");
    let route = h.ok(&["exec", "a", "--", "ip", "route", "show", "default"]);
    assert!(route.contains("dev eth0"), "{route}");
    assert!(can_ping(&h, "a", &ib));
    assert!(can_ping(&h, "b", "a"), "b cannot reach a by name");
    h.ok(&["rm", "-f", "a", "b"]);
    h.ok(&["network", "rm", "p2p"]);
    assert_eq!(leases(&h, "p2p"), Vec::<String>::new());
    assert_eq!(h.kernel_state(), before);
}

#[test]
fn bridges_are_isolated_unless_asked_not_to_be() {
    let h = host();
    for (net, br, subnet, isolate) in [
        ("i1", "cnibr5", "10.93.1.0/24", "true"),
        ("i2", "cnibr6", "10.93.2.0/24", "true"),
        ("o1", "cnibr7", "10.94.1.0/24", "false"),
        ("o2", "cnibr8", "10.94.2.0/24", "false"),
    ] {
        bridge_net(
            &h,
            net,
            br,
            subnet,
            &["isDefaultGateway=true", &format!("cni.isolate={isolate}")],
        );
        h.run_sleeper(&format!("c-{net}"), net);
    }
    // Routed through the host between two bridges: berth's firewall drops
    // it between isolated networks, CNI's own behaviour lets it through.
    assert!(
        !can_ping(&h, "c-i1", &h.address("c-i2", "i2")),
        "isolated networks reached each other"
    );
    assert!(
        !can_ping(&h, "c-i2", &h.address("c-i1", "i1")),
        "isolated networks reached each other"
    );
    assert!(
        can_ping(&h, "c-o1", &h.address("c-o2", "o2")),
        "cni.isolate=false networks should route"
    );
    // The gateway of one's own network stays reachable.
    assert!(can_ping(&h, "c-i1", "10.93.1.1"));
    // --internal keeps a network's traffic in; the others go out.
    let outside = h.namespace("outside");
    h.wire(&outside, "up0", "198.51.100.1/24", "198.51.100.2/24");
    let dir = ipam_dir(&h);
    h.ok(&[
        "network",
        "create",
        "-d",
        "cni",
        "--internal",
        "-o",
        "cni.plugin=bridge",
        "-o",
        "bridge=cnibr13",
        "-o",
        "isDefaultGateway=true",
        "-o",
        "ipam.type=host-local",
        "-o",
        "ipam.subnet=10.93.3.0/24",
        "-o",
        &dir,
        "in",
    ]);
    h.run_sleeper("c-in", "in");
    assert!(
        can_ping(&h, "c-i1", "198.51.100.2"),
        "an isolated network cannot go out"
    );
    assert!(
        !can_ping(&h, "c-in", "198.51.100.2"),
        "an internal network went out"
    );
}

#[test]
fn bad_options_are_refused_in_one_line_and_nothing_is_made() {
    let h = host();
    fs::write(
        h.root.join("cni/10-known.conflist"),
        r#"{"cniVersion":"1.0.0","name":"known","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    fs::write(
        h.root.join("cni/20-broken.conflist"),
        "{ \"cniVersion\": \"1.0.0\", ",
    )
    .unwrap();
    fs::write(
        h.root.join("cni/30-missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"bridge"},{"type":"nosuch"}]}"#,
    )
    .unwrap();
    let fake_dir = fakes(&h).display().to_string();
    let before = (h.kernel_state(), h.ok(&["network", "ls", "-q"]));
    let dir = ipam_dir(&h);
    for (opts, want) in [
        (
            vec![],
            vec![
                "driver cni needs -o cni.config=NAME",
                "known",
                "or -o cni.plugin=TYPE",
            ],
        ),
        (
            vec!["-o", "cni.config=known", "-o", "cni.plugin=bridge"],
            vec!["exclude each other"],
        ),
        (
            vec!["-o", "cni.config=nope"],
            vec![
                "unknown CNI configuration \"nope\"",
                "found: known, missing",
                "not parsed: 20-broken.conflist",
            ],
        ),
        (
            vec!["-o", "cni.config=20-broken"],
            vec!["20-broken.conflist does not parse"],
        ),
        (
            vec!["-o", "cni.config=missing"],
            vec![
                "CNI plugin \"nosuch\" not found in",
                &fake_dir,
                REFERENCE,
                "--cni-path",
            ],
        ),
        (
            vec!["-o", "cni.plugin=nosuch"],
            vec!["CNI plugin \"nosuch\" not found in"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "-o", "ipam.type=nosuch"],
            vec!["CNI IPAM plugin \"nosuch\" (ipam.type of plugin bridge) not found"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "-o", "cni.colour=blue"],
            vec!["unknown option \"cni.colour\"", "accepted: cni.config"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "-o", "ipam=dhcp", "-o", "ipam.type=x"],
            vec!["option ipam.type clashes"],
        ),
        (
            vec!["-o", "cni.config=known", "-o", "mtu=1400"],
            vec!["option mtu does not go with cni.config=known"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "-o", "type=macvlan"],
            vec!["option type is set by berth"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "--subnet", "10.95.0.0/24"],
            vec!["does not use address management"],
        ),
        (
            vec!["-o", "cni.plugin=ptp", "--internal"],
            vec!["--internal on a cni network needs a bridge plugin"],
        ),
        (
            vec!["-o", "cni.plugin=bridge", "-o", &dir, "-o", "cni.isolate=perhaps"],
            vec!["cni.isolate", "accepted: true or false"],
        ),
    ] {
        let mut args = vec!["network", "create", "-d", "cni"];
        args.extend(opts.iter().copied());
        args.push("refused");
        let line = h.fails(&args);
        for w in &want {
            assert!(line.contains(w), "{opts:?}: {line:?} does not say {w:?}");
        }
    }
    assert_eq!((h.kernel_state(), h.ok(&["network", "ls", "-q"])), before);
    // --ip has nothing to choose from.
    bridge_net(&h, "cn", "cnibr9", "10.96.0.0/24", &[]);
    let line = h.fails(&["run", "--ip", "10.96.0.9", "--network", "cn", "--", "true"]);
    assert!(line.contains("--ip is not accepted"), "{line}");
}

#[test]
fn a_plugin_error_is_shown_and_the_chain_is_rolled_back() {
    let h = host();
    fake(
        &h,
        "failing",
        r#"[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","code":11,"msg":"failed to frobnicate the widget","details":"widget busy"}'
exit 1"#,
    );
    fake(
        &h,
        "crash",
        r#"[ "$CNI_COMMAND" = ADD ] || exit 0; echo 'panic: boom' >&2; echo 'goroutine 1' >&2; exit 2"#,
    );
    for (name, plugin) in [("fails", "failing"), ("crashes", "crash")] {
        fs::write(
            h.root.join(format!("cni/{name}.conflist")),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[
                    {{"type":"bridge","bridge":"br-{name}","ipam":{{"type":"host-local","subnet":"10.97.0.0/24","dataDir":"{}/cni-ipam"}}}},
                    {{"type":"{plugin}"}}]}}"#,
                h.root.display()
            ),
        )
        .unwrap();
        h.ok(&[
            "network",
            "create",
            "-d",
            "cni",
            "-o",
            &format!("cni.config={name}"),
            name,
        ]);
    }
    let line = h.fails(&["run", "--name", "c", "--network", "fails", "--", "true"]);
    assert_eq!(
        line,
        "berth: cni plugin failing: ADD failed: failed to frobnicate the widget: widget busy (code 11)"
    );
    nothing_left(&h, "c", Some("br-fails"), "fails");
    // The failed plugin and the one before it were deleted, in reverse order.
    let log: Vec<String> = calls(&h)
        .iter()
        .map(|l| l.split(" id=").next().unwrap().to_owned())
        .collect();
    assert_eq!(log, ["failing ADD", "failing DEL"]);

    let line = h.fails(&["run", "--name", "c", "--network", "crashes", "--", "true"]);
    assert_eq!(
        line,
        "berth: cni plugin crash: ADD failed: it exited with exit status: 2 (stderr: panic: boom | goroutine 1)"
    );
    nothing_left(&h, "c", Some("br-crashes"), "crashes");
    // The daemon is fine: the next container on the network works.
    h.ok(&["network", "rm", "fails"]);
    bridge_net(&h, "works", "cnibr10", "10.98.0.0/24", &[]);
    h.run_sleeper("ok", "works");
}

#[test]
fn garbage_silence_and_hangs_each_give_one_line_and_leave_nothing() {
    let h = host_with_fakes(&[("BERTH_PLUGIN_TIMEOUT_MS", "700")]);
    let root = h.root.display().to_string();
    fake(
        &h,
        "garbage",
        r#"[ "$CNI_COMMAND" = ADD ] && echo 'hello, world'; exit 0"#,
    );
    fake(&h, "silent", "exit 0");
    fake(
        &h,
        "liar",
        r#"[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"banana"}]}'; exit 0"#,
    );
    fake(
        &h,
        "fibber",
        r#"[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","code":7,"msg":"no bridge option"}'; exit 0"#,
    );
    fake(
        &h,
        "hang",
        &format!(r#"[ "$CNI_COMMAND" = ADD ] || exit 0; sleep 600 & echo $! > {root}/sleep.pid; wait"#),
    );
    let dir = ipam_dir(&h);
    for (plugin, want) in [
        (
            "garbage",
            "berth: cni plugin garbage: ADD printed something that is not a CNI result: not JSON",
        ),
        (
            "silent",
            "berth: cni plugin silent: ADD succeeded but printed no result",
        ),
        (
            "liar",
            "berth: cni plugin liar: ADD printed an invalid CNI result: ips[0].address \"banana\"",
        ),
        (
            "fibber",
            "berth: cni plugin fibber: ADD failed: no bridge option (code 7, though it exited with 0)",
        ),
    ] {
        h.ok(&[
            "network",
            "create",
            "-d",
            "cni",
            "-o",
            &format!("cni.plugin={plugin}"),
            "-o",
            &dir,
            plugin,
        ]);
        let line = h.fails(&["run", "--name", "c", "--network", plugin, "--", "true"]);
        assert!(line.starts_with(want), "{line}");
        nothing_left(&h, "c", None, plugin);
        assert!(
            calls(&h).iter().any(|l| l.starts_with(&format!("{plugin} DEL"))),
            "no rollback DEL for {plugin}"
        );
    }

    h.ok(&["network", "create", "-d", "cni", "-o", "cni.plugin=hang", "hang"]);
    let started = Instant::now();
    let child = h
        .berth_cmd(&["run", "--name", "c", "--network", "hang", "--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the plugin hangs, the daemon answers other requests.
    while !h.root.join("sleep.pid").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the hanging plugin never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    h.ok(&["network", "ls"]);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "the daemon stalled behind a hanging plugin"
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        stderr.trim(),
        "berth: cni plugin hang: ADD timed out after 700 ms and was killed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline was not kept: {:?}",
        started.elapsed()
    );
    // The plugin was killed with what it started, then deleted.
    let pid = fs::read_to_string(h.root.join("sleep.pid")).unwrap();
    let gone = Instant::now();
    while Path::new("/proc").join(pid.trim()).exists() {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "the hanging plugin's child {pid} lives on"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        calls(&h).iter().any(|l| l.starts_with("hang DEL")),
        "no rollback DEL for hang"
    );
    nothing_left(&h, "c", None, "hang");
}

#[test]
fn network_check_reports_each_container() {
    let h = host();
    bridge_net(&h, "cn", "cnibr11", "10.99.0.0/24", &[]);
    h.run_sleeper("a", "cn");
    h.run_sleeper("b", "cn");
    assert_eq!(h.ok(&["network", "check", "cn"]), "a: OK\nb: OK\n");
    // Take b's address away behind berth's back: CHECK notices.
    h.ok(&["exec", "b", "--", "ip", "addr", "flush", "dev", "eth0"]);
    let r = h.berth(&["network", "check", "cn"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert_eq!(lines[0], "a: OK");
    assert!(
        lines[1].starts_with("b: cni plugin bridge: CHECK failed: "),
        "{}",
        lines[1]
    );
    // Networks of other drivers cannot be checked; old CNI versions neither.
    h.ok(&["network", "create", "plain"]);
    h.run_sleeper("p", "plain");
    let line = h.fails(&["network", "check", "plain"]);
    assert!(
        line.contains("cannot check its containers: only cni networks can"),
        "{line}"
    );
    bridge_net(&h, "old", "cnibr12", "10.100.0.0/24", &["cni.version=0.3.1"]);
    h.run_sleeper("o", "old");
    let line = h.fails(&["network", "check", "old"]);
    assert!(line.contains("CHECK needs 0.4.0 or later"), "{line}");
    let line = h.fails(&["network", "check", "nope"]);
    assert!(line.contains("network nope not found"), "{line}");
}
