//! Names: the embedded resolver, /etc/hosts, resolv.conf, hostnames,
//! aliases, legacy links. Every upstream DNS server here is one the test
//! runs inside its own namespaces.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use berth_testkit::dns::{Answer, Upstream, ask, flood, try_ask};
use berth_testkit::hickory_proto::op::ResponseCode;
use berth_testkit::hickory_proto::rr::RecordType;
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

const RESOLVER: &str = "127.0.0.11:53";

/// A host whose daemon reads a resolv.conf naming an upstream at
/// 127.0.0.53 inside the host's namespace, which the test runs.
fn host_with_upstream(records: &[(&str, &str)]) -> (TestHost, Upstream) {
    let mut h = TestHost::without_daemon(berth());
    let conf = h.root.join("host-resolv.conf");
    std::fs::write(
        &conf,
        "search corp.example\nnameserver 127.0.0.53\noptions edns0\n",
    )
    .unwrap();
    let recs: Vec<(&str, std::net::IpAddr)> =
        records.iter().map(|(n, ip)| (*n, ip.parse().unwrap())).collect();
    let up = Upstream::start(&h.ns, "127.0.0.53:53".parse().unwrap(), &recs);
    h.start_daemon(&["--resolv-conf", conf.to_str().unwrap()]);
    (h, up)
}

fn inspect(h: &TestHost, c: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).unwrap();
    v[0].clone()
}

fn sandbox(h: &TestHost, c: &str) -> PathBuf {
    PathBuf::from(inspect(h, c)["NetworkSettings"]["SandboxKey"].as_str().unwrap())
}

fn q(h: &TestHost, from: &str, name: &str, t: RecordType) -> Answer {
    ask(&sandbox(h, from), RESOLVER.parse().unwrap(), name, t, false)
        .unwrap_or_else(|| panic!("no answer from the resolver of {from} for {name}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_seed_walkthrough_by_name() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "-d", "bridge", "my-net"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "centos01",
        "--network",
        "my-net",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "centos02",
        "--network",
        "my-net",
        "--",
        "sleep",
        "600",
    ]);
    let out = h.ok(&["exec", "centos01", "--", "ping", "-c1", "-W2", "centos02"]);
    assert!(
        out.contains(&format!("({})", h.address("centos02", "my-net"))),
        "{out}"
    );
    let out = h.ok(&["exec", "centos02", "--", "ping", "-c1", "-W2", "centos01"]);
    assert!(
        out.contains(&format!("({})", h.address("centos01", "my-net"))),
        "{out}"
    );
    let id = inspect(&h, "centos02")["Id"].as_str().unwrap()[..12].to_owned();
    let hosts = h.ok(&["exec", "centos02", "--", "cat", "/etc/hosts"]);
    let want = [
        "127.0.0.1\tlocalhost".to_string(),
        "::1\tlocalhost ip6-localhost ip6-loopback".into(),
        "fe00::0\tip6-localnet".into(),
        "ff00::0\tip6-mcastprefix".into(),
        "ff02::1\tip6-allnodes".into(),
        "ff02::2\tip6-allrouters".into(),
        format!("{}\t{id}", h.address("centos02", "my-net")),
    ];
    assert_eq!(hosts.lines().collect::<Vec<_>>(), want);
    let resolv = h.ok(&["exec", "centos02", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv.lines().collect::<Vec<_>>(),
        [
            "search corp.example",
            "nameserver 127.0.0.11",
            "options ndots:0 edns0"
        ]
    );
    // On the default bridge: no embedded resolver, the host's servers minus loopback.
    let resolv = h.ok(&["run", "--rm", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        "search corp.example\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
    // ... and nothing answers at 127.0.0.11 there: a TCP connect is
    // refused at once. (Asking the default servers instead would send a
    // query towards 8.8.8.8, which the test must not do.)
    h.ok(&["run", "-d", "--name", "plain", "--", "sleep", "600"]);
    let r = try_ask(
        &sandbox(&h, "plain"),
        RESOLVER.parse().unwrap(),
        "centos01",
        RecordType::A,
        true,
    );
    assert!(
        matches!(&r, Err(e) if e.to_string().contains("refused")),
        "the default bridge must have no embedded resolver: {r:?}"
    );
}

#[test]
fn names_hostnames_ids_aliases_and_ptr() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.60.0.0/24",
        "--subnet",
        "fd00:60::/64",
        "n",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web1",
        "-h",
        "www",
        "--network-alias",
        "web",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--network-alias",
        "web",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    let w1 = h.address("web1", "n");
    let w2 = h.address("web2", "n");
    assert_eq!(
        q(&h, "client", "web1", RecordType::A).records,
        std::slice::from_ref(&w1)
    );
    assert_eq!(
        q(&h, "client", "WWW", RecordType::A).records,
        std::slice::from_ref(&w1)
    );
    assert_eq!(
        q(&h, "client", "web1.n", RecordType::A).records,
        std::slice::from_ref(&w1)
    );
    let short = inspect(&h, "web2")["Id"].as_str().unwrap()[..12].to_owned();
    assert_eq!(
        q(&h, "client", &short, RecordType::A).records,
        std::slice::from_ref(&w2)
    );
    assert_eq!(q(&h, "client", "web1", RecordType::AAAA).records, ["fd00:60::2"]);
    // A shared alias answers both, in turning order.
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let a = q(&h, "client", "web", RecordType::A);
        assert_eq!(sorted(a.records.clone()), sorted(vec![w1.clone(), w2.clone()]));
        firsts.insert(a.records[0].clone());
    }
    assert_eq!(firsts.len(), 2, "round-robin never changed the order");
    // PTR.
    let rev: Vec<String> = w1.split('.').rev().map(str::to_owned).collect();
    let a = q(
        &h,
        "client",
        &format!("{}.in-addr.arpa", rev.join(".")),
        RecordType::PTR,
    );
    assert_eq!(a.records, ["web1.n."]);
    // connect --alias adds a name on that network only.
    h.ok(&["network", "create", "--subnet", "10.61.0.0/24", "m"]);
    h.ok(&["network", "connect", "--alias", "db", "m", "web2"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "m",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(
        q(&h, "other", "db", RecordType::A).records,
        [h.address("web2", "m")]
    );
    assert_eq!(q(&h, "client", "db", RecordType::A).rcode, ResponseCode::NXDomain);
    // TCP works too.
    let a = ask(
        &sandbox(&h, "client"),
        RESOLVER.parse().unwrap(),
        "web1",
        RecordType::A,
        true,
    )
    .unwrap();
    assert_eq!(a.records, [w1]);
}

#[test]
fn names_are_scoped_to_shared_networks() {
    let (h, up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "--subnet", "10.62.0.0/24", "a"]);
    h.ok(&["network", "create", "--subnet", "10.63.0.0/24", "b"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "ina",
        "--network",
        "a",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "inb",
        "--network",
        "b",
        "--",
        "sleep",
        "600",
    ]);
    let before = up.seen();
    let a = q(&h, "inb", "ina", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
    assert!(up.seen() > before, "an unknown name goes upstream");
    // Once they share a network, they see each other.
    h.ok(&["network", "connect", "a", "inb"]);
    assert_eq!(
        q(&h, "inb", "ina", RecordType::A).records,
        [h.address("ina", "a")]
    );
    h.ok(&["network", "disconnect", "a", "inb"]);
    assert_eq!(q(&h, "inb", "ina", RecordType::A).rcode, ResponseCode::NXDomain);
}

#[test]
fn changes_are_live() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "watcher",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    let sb = sandbox(&h, "watcher");
    let started = Instant::now();
    h.ok(&[
        "run",
        "-d",
        "--name",
        "newcomer",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    let a = ask(&sb, RESOLVER.parse().unwrap(), "newcomer", RecordType::A, false).unwrap();
    assert_eq!(
        a.rcode,
        ResponseCode::NoError,
        "not resolvable right after run ({:?})",
        started.elapsed()
    );
    assert_eq!(a.records.len(), 1);
    h.ok(&["rm", "-f", "newcomer"]);
    let a = ask(&sb, RESOLVER.parse().unwrap(), "newcomer", RecordType::A, false).unwrap();
    assert_eq!(a.rcode, ResponseCode::NXDomain);
    // A container whose command ends is gone from the answers too.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "--network",
        "n",
        "--",
        "sleep",
        "0.3",
    ]);
    assert_eq!(
        ask(&sb, RESOLVER.parse().unwrap(), "brief", RecordType::A, false)
            .unwrap()
            .records
            .len(),
        1
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = ask(&sb, RESOLVER.parse().unwrap(), "brief", RecordType::A, false).unwrap();
        if a.rcode == ResponseCode::NXDomain {
            break;
        }
        assert!(Instant::now() < deadline, "an exited container still resolves");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A restart of the daemon keeps every answer.
    let mut h = h;
    h.kill_daemon();
    let conf = h.root.join("host-resolv.conf");
    h.start_daemon(&["--resolv-conf", conf.to_str().unwrap()]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(q(&h, "watcher", "late", RecordType::A).records.len(), 1);
    assert_eq!(q(&h, "late", "watcher", RecordType::A).records.len(), 1);
}

#[test]
fn forwarding_goes_to_dns_servers_or_the_hosts() {
    let (h, up) = host_with_upstream(&[("upstream.test", "198.51.100.7")]);
    let inet = h.namespace("internet");
    h.wire(&inet, "up0", "203.0.113.1/24", "203.0.113.2/24");
    let theirs = Upstream::start(
        &inet,
        "203.0.113.2:53".parse().unwrap(),
        &[("their.test", "198.51.100.9".parse().unwrap())],
    );
    h.ok(&["network", "create", "n"]);
    h.ok(&["network", "create", "--internal", "vault"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "custom",
        "--dns",
        "203.0.113.2",
        "--dns-search",
        "x.example",
        "--dns-option",
        "attempts:1",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "inside",
        "--network",
        "vault",
        "--",
        "sleep",
        "600",
    ]);
    // The host's upstream (a stub on the host's loopback) for plain containers.
    assert_eq!(
        q(&h, "plain", "upstream.test", RecordType::A).records,
        ["198.51.100.7"]
    );
    assert!(up.seen() > 0);
    // --dns servers for the container that has them, asked from its namespace.
    assert_eq!(
        q(&h, "custom", "their.test", RecordType::A).records,
        ["198.51.100.9"]
    );
    assert_eq!(
        q(&h, "custom", "upstream.test", RecordType::A).rcode,
        ResponseCode::NXDomain
    );
    assert!(theirs.seen() > 0);
    // Local names still come from berth.
    assert_eq!(
        q(&h, "custom", "plain", RecordType::A).records,
        [h.address("plain", "n")]
    );
    assert_eq!(
        h.ok(&["exec", "custom", "--", "cat", "/etc/resolv.conf"]),
        "search x.example\nnameserver 127.0.0.11\noptions ndots:0 attempts:1\n"
    );
    // Internal networks do not forward: SERVFAIL, at once.
    let before = up.seen();
    let a = q(&h, "inside", "upstream.test", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::ServFail);
    assert!(a.took < Duration::from_millis(500), "{:?}", a.took);
    assert_eq!(up.seen(), before);
    // And through the libc resolver of a real program.
    let out = h.ok(&["exec", "plain", "--", "getent", "hosts", "upstream.test"]);
    assert!(out.starts_with("198.51.100.7"), "{out}");
}

#[test]
fn dns_options_on_the_default_bridge() {
    let (h, _up) = host_with_upstream(&[]);
    let r = h.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.9.9.9",
        "--dns",
        "10.9.9.8",
        "--dns-search",
        "a.example",
        "--dns-option",
        "ndots:2",
        "--",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        r,
        "search a.example\nnameserver 10.9.9.9\nnameserver 10.9.9.8\noptions ndots:2\n"
    );
    // Docker's order whatever the flags: search, nameserver, options.
    let r = h.ok(&[
        "run",
        "--rm",
        "--dns",
        "198.51.100.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "timeout:2",
        "--",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        r,
        "search example.test\nnameserver 198.51.100.53\noptions timeout:2\n"
    );
    let hosts = h.ok(&[
        "run",
        "--rm",
        "-h",
        "web",
        "--domainname",
        "example.com",
        "--add-host",
        "db:10.1.1.1",
        "--add-host",
        "gw:host-gateway",
        "--",
        "cat",
        "/etc/hosts",
    ]);
    let lines: Vec<&str> = hosts.lines().collect();
    assert_eq!(lines[6], "10.1.1.1\tdb");
    assert_eq!(lines[7], "172.17.0.1\tgw");
    assert!(lines[8].ends_with("\tweb.example.com web"), "{hosts}");
    assert_eq!(h.ok(&["run", "--rm", "-h", "web", "--", "hostname"]), "web\n");
}

#[test]
fn legacy_links_both_kinds() {
    let (h, _up) = host_with_upstream(&[]);
    // Default bridge: /etc/hosts, as in the seed.
    h.ok(&["run", "-d", "--name", "centos01", "--", "sleep", "600"]);
    let c1 = inspect(&h, "centos01");
    let c1_ip = c1["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    let c1_id = c1["Id"].as_str().unwrap()[..12].to_owned();
    h.ok(&[
        "run", "-d", "--name", "centos02", "--link", "centos01", "--", "sleep", "600",
    ]);
    let hosts = h.ok(&["exec", "centos02", "--", "cat", "/etc/hosts"]);
    let lines: Vec<&str> = hosts.lines().collect();
    assert_eq!(lines[6], format!("{c1_ip}\tcentos01 {c1_id}"), "{hosts}");
    h.ok(&["exec", "centos02", "--", "ping", "-c1", "-W2", "centos01"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "centos03",
        "--link",
        "centos01:db",
        "--",
        "sleep",
        "600",
    ]);
    let hosts = h.ok(&["exec", "centos03", "--", "cat", "/etc/hosts"]);
    assert_eq!(
        hosts.lines().nth(6).unwrap(),
        format!("{c1_ip}\tdb {c1_id} centos01")
    );
    // centos01's own file is untouched.
    assert!(
        !h.ok(&["exec", "centos01", "--", "cat", "/etc/hosts"])
            .contains("centos02")
    );
    // User-defined network: the alias lives in the resolver, for the linker only.
    h.ok(&["network", "create", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "linker",
        "--link",
        "target:alias1",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "bystander",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    assert_eq!(
        q(&h, "linker", "alias1", RecordType::A).records,
        [h.address("target", "n")]
    );
    assert_eq!(
        q(&h, "bystander", "alias1", RecordType::A).rcode,
        ResponseCode::NXDomain
    );
    assert!(
        !h.ok(&["exec", "linker", "--", "cat", "/etc/hosts"])
            .contains("alias1")
    );
}

#[test]
fn connecting_to_a_user_defined_network_brings_the_resolver() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&["run", "-d", "--name", "late", "--", "sleep", "600"]);
    assert!(
        !h.ok(&["exec", "late", "--", "cat", "/etc/resolv.conf"])
            .contains("127.0.0.11")
    );
    h.ok(&["network", "connect", "n", "late"]);
    assert_eq!(
        h.ok(&["exec", "late", "--", "cat", "/etc/resolv.conf"]),
        "search corp.example\nnameserver 127.0.0.11\noptions ndots:0 edns0\n"
    );
    let out = h.ok(&["exec", "late", "--", "getent", "hosts", "peer"]);
    assert!(out.starts_with(&h.address("peer", "n")), "{out}");
    // And the other way round.
    let out = h.ok(&["exec", "peer", "--", "getent", "hosts", "late"]);
    assert!(out.starts_with(&h.address("late", "n")), "{out}");
}

#[test]
fn edited_files_are_left_alone() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "a"]);
    h.ok(&["network", "create", "b"]);
    h.ok(&["run", "-d", "--name", "c", "--network", "a", "--", "sleep", "600"]);
    h.ok(&[
        "exec",
        "c",
        "--",
        "sh",
        "-c",
        "echo '10.9.9.9 mine' >> /etc/hosts",
    ]);
    h.ok(&["network", "connect", "b", "c"]);
    let hosts = h.ok(&["exec", "c", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("10.9.9.9 mine"),
        "berth overwrote an edited /etc/hosts: {hosts}"
    );
    // Not edited: rewritten with the new address.
    h.ok(&["run", "-d", "--name", "d", "--network", "a", "--", "sleep", "600"]);
    h.ok(&["network", "connect", "b", "d"]);
    let hosts = h.ok(&["exec", "d", "--", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&h.address("d", "b")), "{hosts}");
    // An edited resolv.conf survives the switch to the embedded resolver.
    h.ok(&["run", "-d", "--name", "e", "--", "sleep", "600"]);
    h.ok(&[
        "exec",
        "e",
        "--",
        "sh",
        "-c",
        "echo 'nameserver 10.7.7.7' > /etc/resolv.conf",
    ]);
    h.ok(&["network", "connect", "a", "e"]);
    assert_eq!(
        h.ok(&["exec", "e", "--", "cat", "/etc/resolv.conf"]),
        "nameserver 10.7.7.7\n"
    );
}

#[test]
fn bad_name_options_are_refused_cleanly() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "n"]);
    h.ok(&["network", "create", "m"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "onm",
        "--network",
        "m",
        "--",
        "sleep",
        "600",
    ]);
    let before = h.kernel_state();
    for (args, want) in [
        (vec!["--dns", "10.0.0"], "invalid --dns address"),
        (vec!["--add-host", "nocolon"], "invalid --add-host"),
        (vec!["--add-host", "db:notanip"], "not an IP address"),
        (vec!["--link", "ghost"], "--link ghost: no such container"),
        (vec!["--network", "n", "--link", "onm"], "is not on network n"),
        (vec!["-h", &"a".repeat(64)], "1 to 63 bytes"),
        (vec!["-h", "bad_host"], "invalid hostname"),
        (vec!["--network-alias", "web"], "user-defined networks only"),
        (vec!["--dns-search", "a b"], "invalid --dns-search"),
    ] {
        let mut full = vec!["run"];
        full.extend(args.iter().copied());
        full.extend(["--", "true"]);
        let line = h.fails(&full);
        assert!(line.contains(want), "{full:?}: {line}");
    }
    assert_eq!(h.kernel_state(), before);
    assert_eq!(h.ok(&["ps", "-a", "-q"]).lines().count(), 1);
    let line = h.fails(&["network", "connect", "--alias", "x", "bridge", "onm"]);
    assert!(line.contains("user-defined networks only"), "{line}");
}

#[test]
fn garbage_and_floods_never_stall_the_resolver() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "n"]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "bystander",
        "--network",
        "n",
        "--",
        "sleep",
        "600",
    ]);
    let resolver: SocketAddr = RESOLVER.parse().unwrap();
    let victim = sandbox(&h, "victim");
    // A bounded flood: 200k datagrams (one in three garbage) within 5 s,
    // while the bystander keeps resolving.
    let flooder = {
        let victim = victim.clone();
        std::thread::spawn(move || flood(&victim, resolver, "bystander", 200_000, 3, Duration::from_secs(5)))
    };
    let by = sandbox(&h, "bystander");
    let mut slow = 0;
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let a = ask(&by, resolver, "victim", RecordType::A, false)
            .expect("the bystander got no answer during the flood");
        assert_eq!(a.rcode, ResponseCode::NoError);
        worst = worst.max(a.took);
        if a.took > Duration::from_millis(100) {
            slow += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = flooder.join().unwrap();
    assert!(sent > 1000, "the flood did not happen ({sent} sent)");
    assert!(
        slow < 5,
        "{slow} of 50 answers took over 100 ms (worst {worst:?}) during the flood"
    );
    // After the flood the victim's own resolver still answers, UDP and TCP.
    // A query that reaches the victim's socket while the flood's backlog
    // still fills it is dropped by the kernel, as any UDP datagram is; so
    // the victim asks as a stub resolver does, three times at most.
    for tcp in [false, true] {
        let mut tries = Vec::new();
        let a = loop {
            match try_ask(&victim, resolver, "bystander", RecordType::A, tcp) {
                Ok(a) => break a,
                Err(e) if tries.len() < 2 => tries.push(e),
                Err(e) => panic!("no answer after the flood (tcp: {tcp}): {tries:?}, {e}"),
            }
        };
        assert_eq!(a.rcode, ResponseCode::NoError);
    }
}

/// A default-bridge container connected to a user network asks the
/// embedded resolver; disconnected again, it gets its default-bridge
/// resolv.conf back (as Docker does).
#[test]
fn a_default_bridge_container_gets_its_resolv_conf_back_after_a_disconnect() {
    let (h, _up) = host_with_upstream(&[]);
    h.ok(&["network", "create", "user"]);
    h.ok(&["run", "-d", "--name", "c", "--", "sleep", "600"]);
    let original = h.ok(&["exec", "c", "--", "cat", "/etc/resolv.conf"]);
    assert!(!original.contains("127.0.0.11"), "{original}");
    h.ok(&["network", "connect", "user", "c"]);
    let connected = h.ok(&["exec", "c", "--", "cat", "/etc/resolv.conf"]);
    assert!(connected.contains("nameserver 127.0.0.11"), "{connected}");
    h.ok(&["network", "disconnect", "user", "c"]);
    assert_eq!(h.ok(&["exec", "c", "--", "cat", "/etc/resolv.conf"]), original);
    // Connected again, the resolver is back.
    h.ok(&["network", "connect", "user", "c"]);
    assert_eq!(h.ok(&["exec", "c", "--", "cat", "/etc/resolv.conf"]), connected);
}
