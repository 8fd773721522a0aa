//! Kernel tests of the firewall: each runs in a fresh network namespace of
//! its own, and uses the `nft` and `iptables` programs (tests only: the
//! daemon runs no program) to read back what berth wrote over netlink.

use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use super::*;

/// The skeleton as nft text, as berth loaded it with `nft -f` before it
/// wrote it over netlink: what [`skeleton::add`] must be equal to.
const SKELETON: &str = r#"table inet berth {
	comment "managed by berth: changes are overwritten"
	set bridges { type ifname; }
	set internal { type ifname; }
	set icc { type ifname . ifname; }
	set masq4 { type ipv4_addr; flags interval; }
	set masq6 { type ipv6_addr; flags interval; }
	map dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
	map dnat4_keep { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval; }
	map dnat4_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
	map dnat4_any_keep { type inet_proto . inet_service : ipv4_addr; flags interval; }
	map dnat6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
	map dnat6_keep { type ipv6_addr . inet_proto . inet_service : ipv6_addr; flags interval; }
	map dnat6_any { type inet_proto . inet_service : ipv6_addr . inet_service; }
	map dnat6_any_keep { type inet_proto . inet_service : ipv6_addr; flags interval; }
	chain published {
		meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @dnat4
		dnat ip to ip daddr . meta l4proto . th dport map @dnat4_keep
		meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @dnat4_any
		dnat ip to meta l4proto . th dport map @dnat4_any_keep
		meta l4proto { tcp, udp, sctp } dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6
		dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6_keep
		meta l4proto { tcp, udp, sctp } dnat ip6 to meta l4proto . th dport map @dnat6_any
		dnat ip6 to meta l4proto . th dport map @dnat6_any_keep
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump published
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump published
	}
	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		ct state established,related meta mark set meta mark | 0x01000000 accept
		ct status dnat iifname @bridges oifname @bridges meta mark set meta mark | 0x02000000
		iifname . oifname @icc meta mark set meta mark | 0x01000000 accept
		iifname @internal drop
		oifname @internal drop
		oifname @bridges ct status dnat meta mark set meta mark | 0x01000000 accept
		iifname @bridges oifname @bridges drop
		iifname @bridges meta mark set meta mark | 0x01000000 accept
		oifname @bridges drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x02000000 == 0x02000000 masquerade
		oifname @bridges ip saddr 127.0.0.0/8 masquerade
		oifname @bridges return
		ip saddr @masq4 masquerade
		ip6 saddr @masq6 masquerade
	}
}
"#;

/// A fresh namespace (gone when the last fd closes) and a firewall in it.
fn host() -> (Arc<Netns>, Firewall) {
    let ns = Netns::run_in_new(|| Ok(()))
        .unwrap_or_else(|e| panic!("{}: these tests need root (CAP_SYS_ADMIN)", e.chain()));
    let ns = Arc::new(ns);
    let fw = Firewall::new(ns.clone()).unwrap();
    (ns, fw)
}

/// Runs a program inside `ns`, `script` on its standard input.
fn run(ns: &Netns, prog: &str, args: &[&str], script: &str) -> Output {
    ns.run(|| {
        use std::io::Write;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .map(|mut i| i.write_all(script.as_bytes()))
            .transpose()?;
        child.wait_with_output()
    })
    .unwrap_or_else(|e| panic!("running {prog}: {}", e.chain()))
}

/// stdout of a program that must succeed.
fn ok(ns: &Netns, prog: &str, args: &[&str], script: &str) -> String {
    let out = run(ns, prog, args, script);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn listing(ns: &Netns) -> String {
    ok(ns, "nft", &["list", "table", "inet", "berth"], "")
}

/// The listing of the same table loaded from text by `nft -f`, in another
/// fresh namespace, with `extra` nft commands after it.
fn listing_of_text(extra: &str) -> String {
    let (ns, _fw) = host();
    ok(&ns, "nft", &["-f", "-"], &format!("{SKELETON}{extra}"));
    listing(&ns)
}

#[test]
fn the_netlink_skeleton_lists_like_the_nft_text() {
    let (ns, fw) = host();
    fw.install().unwrap();
    let ours = listing(&ns);
    let text = listing_of_text("");
    assert_eq!(ours, text, "netlink:\n{ours}\nnft -f:\n{text}");
    // Same for the terse listing nft prints without set contents.
    let terse = |ns: &Netns| ok(ns, "nft", &["-t", "list", "table", "inet", "berth"], "");
    let (text_ns, _fw) = host();
    ok(&text_ns, "nft", &["-f", "-"], SKELETON);
    assert_eq!(terse(&ns), terse(&text_ns));
}

#[test]
fn install_writes_the_registry_in_the_same_batch_and_replaces_the_table() {
    let (ns, fw) = host();
    fw.stage();
    let net = FwNetwork {
        bridge: "br-a".parse().unwrap(),
        masquerade: vec!["10.7.0.0/24".parse().unwrap(), "fd07::/64".parse().unwrap()],
        internal: true,
        icc: true,
    };
    fw.add_network(&net).unwrap();
    let port = |host_ip: &str, host_port, host_end, addr: &str, port| FwPort {
        host_ip: host_ip.parse::<IpAddr>().unwrap(),
        proto: Proto::Tcp,
        host_port,
        host_end,
        addr: addr.parse().unwrap(),
        port,
    };
    let ports = [
        port("0.0.0.0", 8080, 8080, "10.7.0.2", 80),
        port("10.1.1.1", 9000, 9001, "10.7.0.2", 90),
        port("::", 7000, 7009, "fd07::2", 7000),
    ];
    fw.add_ports("c1", &ports).unwrap();
    // Something left over in the old table goes.
    ok(
        &ns,
        "nft",
        &["-f", "-"],
        "table inet berth { set stale { type ifname; }; }",
    );
    fw.install().unwrap();
    let elements = r#"
add element inet berth bridges { "br-a" }
add element inet berth internal { "br-a" }
add element inet berth icc { "br-a" . "br-a" }
add element inet berth masq4 { 10.7.0.0/24 }
add element inet berth masq6 { fd07::/64 }
add element inet berth dnat4_any { tcp . 8080 : 10.7.0.2 . 80 }
add element inet berth dnat4 { 10.1.1.1 . tcp . 9000 : 10.7.0.2 . 90, 10.1.1.1 . tcp . 9001 : 10.7.0.2 . 91 }
add element inet berth dnat6_any_keep { tcp . 7000-7009 : fd07::2 }
"#;
    assert_eq!(listing(&ns), listing_of_text(elements));
    // Installing again (reconcile) gives the same table, not a second copy.
    fw.install().unwrap();
    assert_eq!(listing(&ns), listing_of_text(elements));
}

#[test]
fn remove_deletes_the_table_and_is_idempotent() {
    let (ns, fw) = host();
    fw.remove().unwrap();
    fw.install().unwrap();
    ok(&ns, "nft", &["add", "table", "inet", "other"], "");
    fw.remove().unwrap();
    fw.remove().unwrap();
    let tables = ok(&ns, "nft", &["list", "tables"], "");
    assert_eq!(tables.trim(), "table inet other");
}

/// The rule as iptables prints it with `-S`.
const IPTABLES_RULE: &str = "-m mark --mark 0x1000000/0x1000000 -m comment --comment berth -j ACCEPT";

/// `iptables -C CHAIN RULE` succeeds.
fn iptables_has(ns: &Netns, prog: &str, chain: &str) -> bool {
    let mut args = vec!["-w", "-C", chain];
    args.extend(IPTABLES_RULE.split(' '));
    run(ns, prog, &args, "").status.success()
}

#[test]
fn the_iptables_rule_is_what_iptables_writes_and_goes_in_once() {
    let (ns, fw) = host();
    // No iptables table: nothing to do, and no error.
    fw.install().unwrap();
    assert!(!ok(&ns, "nft", &["list", "tables"], "").contains("filter"));

    // Docker's FORWARD policy, in both families.
    for prog in ["iptables", "ip6tables"] {
        ok(&ns, prog, &["-w", "-P", "FORWARD", "DROP"], "");
        ok(&ns, prog, &["-w", "-A", "FORWARD", "-j", "ACCEPT"], "");
    }
    fw.install().unwrap();
    fw.install().unwrap(); // once, not twice
    for prog in ["iptables", "ip6tables"] {
        let rules = ok(&ns, prog, &["-w", "-S", "FORWARD"], "");
        let expected = format!("-P FORWARD DROP\n-A FORWARD {IPTABLES_RULE}\n-A FORWARD -j ACCEPT\n");
        assert_eq!(rules, expected, "{prog}");
        assert!(iptables_has(&ns, prog, "FORWARD"), "{prog} -C");
        // iptables deletes it by its spec, as the CLI tests do.
        let mut args = vec!["-w", "-D", "FORWARD"];
        args.extend(IPTABLES_RULE.split(' '));
        ok(&ns, prog, &args, "");
        assert!(!iptables_has(&ns, prog, "FORWARD"), "{prog} -D");
    }

    // With Docker's DOCKER-USER chain, the rule goes there, at the top.
    for prog in ["iptables", "ip6tables"] {
        ok(&ns, prog, &["-w", "-N", "DOCKER-USER"], "");
        ok(&ns, prog, &["-w", "-A", "DOCKER-USER", "-j", "RETURN"], "");
    }
    fw.install().unwrap();
    fw.install().unwrap();
    for prog in ["iptables", "ip6tables"] {
        let rules = ok(&ns, prog, &["-w", "-S", "DOCKER-USER"], "");
        let expected = format!("-N DOCKER-USER\n-A DOCKER-USER {IPTABLES_RULE}\n-A DOCKER-USER -j RETURN\n");
        assert_eq!(rules, expected, "{prog}");
        assert!(iptables_has(&ns, prog, "DOCKER-USER"), "{prog} -C");
        assert!(!iptables_has(&ns, prog, "FORWARD"), "{prog}: not in FORWARD");
    }
}

#[test]
fn a_rule_written_by_iptables_is_recognised() {
    let (ns, fw) = host();
    let mut args = vec!["-w", "-I", "FORWARD"];
    args.extend(IPTABLES_RULE.split(' '));
    ok(&ns, "iptables", &args, "");
    fw.install().unwrap();
    let rules = ok(&ns, "iptables", &["-w", "-S", "FORWARD"], "");
    assert_eq!(rules.matches("berth").count(), 1, "{rules}");
}
