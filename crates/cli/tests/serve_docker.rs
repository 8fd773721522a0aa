//! `berth daemon --serve-docker`: berth's drivers and IPAM as Docker
//! plugins. First every call of every socket over HTTP, as dockerd would
//! make it; then a real dockerd (Debian's docker.io) in the test host,
//! with berth's networks (`berth_testkit::dockerd`).

use std::path::{Path, PathBuf};

use berth_testkit::TestHost;
use berth_testkit::dockerd::{Dockerd, IMAGE, post};
use serde_json::{Value, json};

const NET_ID: &str = "d0c4e70000000000000000000000000000000000000000000000000000000001";
const EP_ID: &str = "e9d0000000000000000000000000000000000000000000000000000000000001";

/// A test host whose daemon serves dockerd in `ROOT/plugins-served`.
fn host() -> (TestHost, PathBuf) {
    let mut h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    let dir = h.root.join("plugins-served");
    h.start_daemon(&[&format!("--serve-docker={}", dir.display())]);
    (h, dir)
}

/// One call; insists on a 200 and returns the answer.
fn call(dir: &Path, sock: &str, method: &str, body: Value) -> Value {
    let (status, v) = post(&dir.join(sock), &format!("/{method}"), &body.to_string());
    assert_eq!(status, 200, "{sock} {method}: {v}");
    assert!(v.get("Err").is_none_or(|e| e == ""), "{sock} {method}: {v}");
    v
}

/// One call that berth must refuse in Docker's shape; returns the message.
fn refused(dir: &Path, sock: &str, method: &str, body: &str, status: u16) -> String {
    let (got, v) = post(&dir.join(sock), &format!("/{method}"), body);
    assert_eq!(got, status, "{sock} {method}: {v}");
    let err = v["Err"].as_str().unwrap_or_else(|| panic!("no Err in {v}"));
    assert!(!err.is_empty() && !err.contains('\n'), "{err:?}");
    err.to_owned()
}

#[test]
fn every_call_of_every_socket_is_answered() {
    let (h, dir) = host();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "berth.sock",
        "berth-bridge.sock",
        "berth-macvlan.sock",
        "berth-ipvlan.sock",
        "berth-overlay.sock",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n == "berth-host.sock" || n == "berth-none.sock"),
        "{names:?}"
    );
    // berth does not load its own sockets as plugins.
    let plugins = h.ok(&["plugin", "ls"]);
    assert!(!plugins.contains("berth-bridge"), "{plugins}");

    // Activation and capabilities.
    assert_eq!(
        call(&dir, "berth.sock", "Plugin.Activate", json!({}))["Implements"],
        json!(["IpamDriver"])
    );
    for d in ["bridge", "macvlan", "ipvlan", "overlay"] {
        let sock = format!("berth-{d}.sock");
        let a = call(&dir, &sock, "Plugin.Activate", json!({}));
        assert_eq!(a["Implements"], json!(["NetworkDriver"]));
        let c = call(&dir, &sock, "NetworkDriver.GetCapabilities", json!({}));
        assert_eq!(c["Scope"], "local", "{d}: {c}");
        let conn = if d == "overlay" { "global" } else { "local" };
        assert_eq!(c["ConnectivityScope"], conn, "{d}: {c}");
    }
    let ipam = "berth.sock";
    let c = call(&dir, ipam, "IpamDriver.GetCapabilities", json!({}));
    assert_eq!(c["RequiresMACAddress"], false);
    let s = call(&dir, ipam, "IpamDriver.GetDefaultAddressSpaces", json!({}));
    assert_eq!(s["LocalDefaultAddressSpace"], "berth-local");

    // A pool of berth's choice, its gateway and two addresses.
    let p = call(
        &dir,
        ipam,
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "berth-local", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
    );
    let pool_id = p["PoolID"].as_str().unwrap().to_owned();
    let subnet = p["Pool"].as_str().unwrap().to_owned();
    assert!(subnet.starts_with("172."), "{p}");
    let prefix = subnet
        .rsplit_once('.')
        .unwrap()
        .0
        .rsplit_once('.')
        .unwrap()
        .0
        .to_owned();
    let gw = call(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], format!("{prefix}.0.1/16"));
    let a = call(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": {}}),
    );
    assert_eq!(a["Address"], format!("{prefix}.0.2/16"));
    let b = call(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool_id, "Address": "", "Options": {}}),
    );
    assert_eq!(b["Address"], format!("{prefix}.0.3/16"));
    let taken = refused(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        &json!({"PoolID": pool_id, "Address": format!("{prefix}.0.2"), "Options": {}}).to_string(),
        500,
    );
    assert!(taken.contains(&format!("{prefix}.0.2")), "{taken}");
    let again = refused(
        &dir,
        ipam,
        "IpamDriver.RequestPool",
        &json!({"Pool": subnet}).to_string(),
        500,
    );
    assert!(again.contains("overlaps"), "{again}");
    call(
        &dir,
        ipam,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool_id, "Address": format!("{prefix}.0.3")}),
    );

    // A network, an endpoint, a join: berth's bridge makes the interface
    // and leaves it in the host for dockerd.
    let br = "berth-bridge.sock";
    call(
        &dir,
        br,
        "NetworkDriver.CreateNetwork",
        json!({
            "NetworkID": NET_ID,
            "Options": {"com.docker.network.generic": {}, "com.docker.network.enable_ipv6": false},
            "IPv4Data": [{"AddressSpace": "berth-local", "Pool": subnet, "Gateway": format!("{prefix}.0.1/16"), "AuxAddresses": {}}],
            "IPv6Data": []
        }),
    );
    let ls = h.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.contains(&format!("{NET_ID} bridge")), "{ls}");
    let inspect: Value = serde_json::from_str(&h.ok(&["network", "inspect", NET_ID])).unwrap();
    assert_eq!(
        inspect[0]["IPAM"]["Config"][0]["Subnet"],
        subnet.as_str(),
        "{inspect}"
    );
    let addr = format!("{prefix}.0.2/16");
    let e = call(
        &dir,
        br,
        "NetworkDriver.CreateEndpoint",
        json!({
            "NetworkID": NET_ID, "EndpointID": EP_ID,
            "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""}, "Options": {}
        }),
    );
    let mac = e["Interface"]["MacAddress"].as_str().unwrap().to_owned();
    assert!(mac.starts_with("02:42:ac:"), "{e}");
    // berth's own containers do not get Docker's address.
    let c = h.run_sleeper("c1", NET_ID);
    assert!(!c.is_empty());
    assert_eq!(
        h.address("c1", NET_ID),
        format!("{prefix}.0.3"),
        "the next free one"
    );
    let info = call(
        &dir,
        br,
        "NetworkDriver.EndpointOperInfo",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    assert_eq!(info["Value"]["berth.network"], NET_ID);
    let j = call(
        &dir,
        br,
        "NetworkDriver.Join",
        json!({
            "NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/var/run/docker/netns/x", "Options": {}
        }),
    );
    assert_eq!(j["InterfaceName"]["SrcName"], "bde9d000000000");
    assert_eq!(j["InterfaceName"]["DstPrefix"], "eth");
    assert_eq!(j["Gateway"], format!("{prefix}.0.1"));
    let link = h.sh("ip -d -o link show bde9d000000000");
    assert!(link.contains("veth"), "{link}");
    // Joining again changes nothing.
    call(
        &dir,
        br,
        "NetworkDriver.Join",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "", "Options": {}}),
    );
    for m in ["ProgramExternalConnectivity", "RevokeExternalConnectivity"] {
        call(
            &dir,
            br,
            &format!("NetworkDriver.{m}"),
            json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Options": {}}),
        );
    }
    for m in ["DiscoverNew", "DiscoverDelete"] {
        call(
            &dir,
            br,
            &format!("NetworkDriver.{m}"),
            json!({"DiscoveryType": 1, "DiscoveryData": {}}),
        );
    }
    let al = call(
        &dir,
        br,
        "NetworkDriver.AllocateNetwork",
        json!({"NetworkID": "x", "Options": {}, "IPv4Data": [], "IPv6Data": []}),
    );
    assert_eq!(al["Options"], json!({}));
    call(&dir, br, "NetworkDriver.FreeNetwork", json!({"NetworkID": "x"}));
    // The network cannot go while it has endpoints.
    let busy = refused(
        &dir,
        br,
        "NetworkDriver.DeleteNetwork",
        &json!({"NetworkID": NET_ID}).to_string(),
        500,
    );
    assert!(busy.contains("endpoints"), "{busy}");

    // Leave and delete: the interface is gone, twice is fine.
    call(
        &dir,
        br,
        "NetworkDriver.Leave",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    let r = h.run("ip", &["link", "show", "bde9d000000000"]);
    assert_ne!(r.code, 0, "the interface is still there: {}", r.stdout);
    call(
        &dir,
        br,
        "NetworkDriver.Leave",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    call(
        &dir,
        br,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    call(
        &dir,
        br,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    h.ok(&["rm", "-f", "c1"]);
    call(
        &dir,
        br,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET_ID}),
    );
    let ls = h.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains(NET_ID), "{ls}");
    call(
        &dir,
        br,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET_ID}),
    );
    call(&dir, ipam, "IpamDriver.ReleasePool", json!({"PoolID": pool_id}));

    // An existing berth network for Docker: its subnet from the IPAM
    // option, the network kept when Docker's goes.
    h.ok(&["network", "create", "--subnet", "10.77.0.0/24", "bnet"]);
    let p = call(
        &dir,
        ipam,
        "IpamDriver.RequestPool",
        json!({"Options": {"berth.network": "bnet"}}),
    );
    assert_eq!(p["Pool"], "10.77.0.0/24");
    assert_eq!(p["Data"]["com.docker.network.gateway"], "10.77.0.1/24");
    let gw = call(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "10.77.0.0/24", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(gw["Address"], "10.77.0.1/24");
    h.run_sleeper("c2", "bnet");
    let a = call(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "10.77.0.0/24"}),
    );
    assert_eq!(a["Address"], "10.77.0.3/24", "berth's c2 holds .2");
    let opts = json!({"com.docker.network.generic": {"berth.network": "bnet"}});
    call(
        &dir,
        br,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": NET_ID, "Options": opts, "IPv4Data": [{"Pool": "10.77.0.0/24", "Gateway": "10.77.0.1/24"}]}),
    );
    call(
        &dir,
        br,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "10.77.0.3/24"}}),
    );
    let busy = h.fails(&["network", "rm", "bnet"]);
    assert!(busy.contains("docker endpoint"), "{busy}");
    call(
        &dir,
        br,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    );
    call(
        &dir,
        br,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET_ID}),
    );
    call(
        &dir,
        ipam,
        "IpamDriver.ReleasePool",
        json!({"PoolID": "10.77.0.0/24"}),
    );
    h.ok(&["rm", "-f", "c2"]);
    h.ok(&["network", "rm", "bnet"]);

    // Refusals: Docker's shape, one line each.
    refused(&dir, br, "NetworkDriver.NoSuchCall", "{}", 404);
    refused(&dir, br, "IpamDriver.RequestPool", "{}", 404);
    refused(&dir, ipam, "NetworkDriver.CreateNetwork", "{}", 404);
    let bad = refused(&dir, br, "NetworkDriver.CreateNetwork", "{not json", 400);
    assert!(bad.contains("CreateNetwork"), "{bad}");
    let none = refused(
        &dir,
        br,
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": "nope", "EndpointID": EP_ID}).to_string(),
        500,
    );
    assert!(none.contains("no network"), "{none}");
    let short = refused(
        &dir,
        br,
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": NET_ID, "EndpointID": "../x"}).to_string(),
        500,
    );
    assert!(short.contains("64 hex digits"), "{short}");
    let missing = refused(
        &dir,
        br,
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": NET_ID, "Options": {"com.docker.network.generic": {"berth.network": "nosuch"}}})
            .to_string(),
        500,
    );
    assert!(missing.contains("nosuch"), "{missing}");
    let badopt = refused(
        &dir,
        "berth-macvlan.sock",
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": NET_ID, "Options": {"com.docker.network.generic": {"parent": "no/such"}}})
            .to_string(),
        500,
    );
    assert!(badopt.contains("parent"), "{badopt}");
    let ls = h.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains(NET_ID), "a refused create left a network: {ls}");
    let v6 = refused(
        &dir,
        ipam,
        "IpamDriver.RequestPool",
        &json!({"V6": true}).to_string(),
        500,
    );
    assert!(v6.contains("IPv6"), "{v6}");
    let nopool = refused(
        &dir,
        ipam,
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.9.9.0/24"}).to_string(),
        500,
    );
    assert!(nopool.contains("no pool"), "{nopool}");

    // The sockets go away with the daemon.
    let mut h = h;
    h.stop_daemon();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "sockets left: {left:?}");
    // An interface handed to dockerd for an endpoint berth does not know
    // is a stray at the next start.
    h.sh("ip link add bd0123456789ab type veth peer name bdpeer");
    h.start_daemon(&[&format!("--serve-docker={}", dir.display())]);
    let r = h.run("ip", &["link", "show", "bd0123456789ab"]);
    assert_ne!(r.code, 0, "the stray is still there: {}", r.stdout);
}

/// A container's IPv4 address on a Docker network, as `docker inspect` says.
fn docker_ip(d: &Dockerd, container: &str, net: &str) -> String {
    let ip = d.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        container,
    ]);
    assert!(!ip.is_empty(), "{container} has no address on {net}");
    ip
}

fn pings(d: &Dockerd, from: &str, ip: &str) {
    d.ok(&["exec", from, "ping", "-c", "1", "-W", "3", ip]);
}

fn run(d: &Dockerd, name: &str, net: &str) {
    d.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        net,
        IMAGE,
        "sleep",
        "600",
    ]);
}

#[test]
fn a_real_dockerd_runs_containers_on_berths_networks() {
    let (mut h, dir) = host();
    let serve = format!("--serve-docker={}", dir.display());
    h.add_lan_parents(&["lan0"]);
    let mut d = Dockerd::start(&h, &dir);

    // A bridge network: berth's network, berth's addresses.
    d.ok(&[
        "network",
        "create",
        "-d",
        "berth-bridge",
        "--ipam-driver",
        "berth",
        "dnet",
    ]);
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "dnet"]);
    let docker_subnet = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "dnet",
    ]);
    let theirs: Value = serde_json::from_str(&h.ok(&["network", "inspect", &id])).unwrap();
    assert_eq!(theirs[0]["Driver"], "bridge");
    assert_eq!(
        theirs[0]["IPAM"]["Config"][0]["Subnet"],
        docker_subnet.as_str(),
        "{theirs}"
    );
    run(&d, "da", "dnet");
    run(&d, "db", "dnet");
    let (ip_a, ip_b) = (docker_ip(&d, "da", "dnet"), docker_ip(&d, "db", "dnet"));
    let net: ipnet::IpNet = docker_subnet.parse().unwrap();
    assert!(
        net.contains(&ip_a.parse::<std::net::IpAddr>().unwrap()),
        "{ip_a} not in {net}"
    );
    pings(&d, "da", &ip_b);
    pings(&d, "db", &ip_a);
    let eth0 = d.ok(&["exec", "da", "ip", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains(&format!("{ip_a}/")), "{eth0}");
    // Docker's inspect shows the addresses berth's IPAM gave.
    let shown = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv4Address}} {{end}}",
        "dnet",
    ]);
    assert!(shown.contains(&ip_a) && shown.contains(&ip_b), "{shown}");
    // A berth container on the same network reaches Docker's.
    h.run_sleeper("bc", &id);
    let ip_bc = h.address("bc", &id);
    assert!(
        ip_bc != ip_a && ip_bc != ip_b,
        "berth gave Docker's address {ip_bc} again"
    );
    h.ok(&["exec", "bc", "ping", "-c", "1", "-W", "3", &ip_a]);
    pings(&d, "da", &ip_bc);

    // connect and disconnect.
    d.ok(&[
        "network",
        "create",
        "-d",
        "berth-bridge",
        "--ipam-driver",
        "berth",
        "dnet2",
    ]);
    d.ok(&["network", "connect", "dnet2", "da"]);
    run(&d, "dc", "dnet2");
    let ip_a2 = docker_ip(&d, "da", "dnet2");
    d.ok(&["exec", "da", "ip", "link", "show", "eth1"]);
    pings(&d, "dc", &ip_a2);
    d.ok(&["network", "disconnect", "dnet2", "da"]);
    let gone = d.docker(&["exec", "da", "ip", "link", "show", "eth1"]);
    assert_ne!(gone.code, 0, "eth1 is still in a: {}", gone.stdout);

    // macvlan on the test host's LAN.
    d.ok(&[
        "network",
        "create",
        "-d",
        "berth-macvlan",
        "--ipam-driver",
        "berth",
        "-o",
        "parent=lan0",
        "mnet",
    ]);
    run(&d, "m1", "mnet");
    run(&d, "m2", "mnet");
    pings(&d, "m1", &docker_ip(&d, "m2", "mnet"));
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "m1"]);
    let link = berth_testkit::run_in(
        Path::new(&format!("/proc/{pid}/ns/net")),
        "ip",
        &["-d", "link", "show", "eth0"],
    );
    assert!(link.stdout.contains("macvlan"), "{link:?}");

    // berth restarts: what runs keeps running, Docker's calls work again.
    h.stop_daemon();
    h.start_daemon(&[&serve]);
    pings(&d, "da", &ip_b);
    run(&d, "de", "dnet");
    pings(&d, "de", &ip_a);
    d.ok(&["rm", "-f", "de"]);

    // dockerd restarts: its containers stop and start again on the same networks.
    d.restart();
    d.ok(&["start", "da", "db", "m1", "m2"]);
    pings(&d, "da", &docker_ip(&d, "db", "dnet"));
    pings(&d, "m2", &docker_ip(&d, "m1", "mnet"));

    // Both restart (dockerd waits for its plugins at start: berth first).
    d.stop();
    h.stop_daemon();
    h.start_daemon(&[&serve]);
    d.restart();
    d.ok(&["start", "da", "db"]);
    pings(&d, "db", &docker_ip(&d, "da", "dnet"));
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for want in ["dnet berth-bridge", "dnet2 berth-bridge", "mnet berth-macvlan"] {
        assert!(ls.contains(want), "{want} missing in {ls}");
    }

    // Removing Docker's networks removes berth's.
    h.ok(&["rm", "-f", "bc"]);
    for c in ["da", "db", "dc", "m1", "m2"] {
        d.ok(&["rm", "-f", c]);
    }
    for n in ["dnet", "dnet2", "mnet"] {
        d.ok(&["network", "rm", n]);
    }
    let left = h.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(left.split_whitespace().count(), 3, "berth still has: {left}");
    let links = h.sh("ip -o link show");
    assert!(
        !links.contains(": bd"),
        "staging interfaces left in the host:\n{links}"
    );
}

#[test]
fn an_empty_serve_docker_directory_is_refused_in_one_line() {
    let h = TestHost::without_daemon(Path::new(env!("CARGO_BIN_EXE_berth")));
    let st = h.spawn_daemon(&["--serve-docker="]).unwrap().wait().unwrap();
    assert!(!st.success());
    let log = h.daemon_log();
    let first = log.lines().next().unwrap_or_else(|| panic!("no error: {log}"));
    assert!(first.contains("--serve-docker"), "{log}");
    assert!(!h.root.join("berth.sock").exists());
}
