//! Kernel tests: each runs in a fresh network namespace of its own, with a
//! table loaded by `nft -f` (the program is used by tests only).

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use nix::sched::{CloneFlags, unshare};
use serde_json::{Value, json};

use super::*;

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("a valid prefix")
}

// Kernel tests: each runs in a fresh network namespace of its own.

/// Runs `f` on a thread in a new network namespace holding table
/// `inet t` loaded from `ruleset`; the namespace goes with the thread.
fn in_netns<T: Send + 'static>(ruleset: &'static str, f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| {
            panic!("unshare(CLONE_NEWNET) failed ({e}): these tests need root (CAP_SYS_ADMIN)")
        });
        nft_f(ruleset);
        f()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// `nft -f -`: children of this thread inherit its namespace.
fn nft_f(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("running nft");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft -f - failed on:\n{script}");
}

/// The `elem` list of `nft -j list set|map inet t NAME` (empty when none).
fn elems(kind: &str, name: &str) -> Value {
    let out = Command::new("nft")
        .args(["-j", "list", kind, "inet", "t", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"][1][kind]["elem"].clone()
}

fn set_elems(name: &str) -> Value {
    let e = elems("set", name);
    if e.is_null() { json!([]) } else { e }
}

const TABLE: &str = "table inet t {
    set ifs { type ifname; }
    set pairs { type ifname . ifname; }
    set v4 { type ipv4_addr; flags interval; }
    set v6 { type ipv6_addr; flags interval; }
    set marks { type mark; }
    map ports {
        type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;
        flags interval;
    }
    map peers { type ipv4_addr : ifname; }
}";

fn ifs(names: &[&str]) -> Vec<Element> {
    names.iter().map(|n| Element::new(key::ifname(n))).collect()
}

#[test]
fn adds_to_an_ifname_set() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ifs", ifs(&["br-1", "veth0"]));
        batch.add(Family::Inet, "t", "marks", vec![Element::new(key::mark(0x1234))]);
        nft.apply(&batch).unwrap();
        assert_eq!(set_elems("ifs"), json!(["br-1", "veth0"]));
        assert_eq!(set_elems("marks"), json!([4660]));
        // Adding what is there is fine (add, not create).
        nft.apply(&batch).unwrap();
        assert_eq!(set_elems("ifs"), json!(["br-1", "veth0"]));
    });
}

#[test]
fn adds_to_an_ifname_pair_set() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let pair = key::concat(&[&key::ifname("br-abc"), &key::ifname("veth1")]);
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "pairs", vec![Element::new(pair)]);
        nft.apply(&batch).unwrap();
        assert_eq!(set_elems("pairs"), json!([{"concat": ["br-abc", "veth1"]}]));
    });
}

#[test]
fn deleting_one_of_two_adjacent_prefixes_keeps_the_other() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        for p in ["10.0.0.0/24", "10.0.1.0/24"] {
            batch.add(Family::Inet, "t", "v4", prefix_elements(net(p)));
        }
        for p in ["fd00::/64", "fd00:0:0:1::/64"] {
            batch.add(Family::Inet, "t", "v6", prefix_elements(net(p)));
        }
        nft.apply(&batch).unwrap();
        let prefix = |a: &str, l: u8| json!({"prefix": {"addr": a, "len": l}});
        assert_eq!(
            set_elems("v4"),
            json!([prefix("10.0.0.0", 24), prefix("10.0.1.0", 24)])
        );
        assert_eq!(
            set_elems("v6"),
            json!([prefix("fd00::", 64), prefix("fd00:0:0:1::", 64)])
        );

        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "v4", prefix_elements(net("10.0.0.0/24")));
        batch.delete(Family::Inet, "t", "v6", prefix_elements(net("fd00:0:0:1::/64")));
        nft.apply(&batch).unwrap();
        assert_eq!(set_elems("v4"), json!([prefix("10.0.1.0", 24)]));
        assert_eq!(set_elems("v6"), json!([prefix("fd00::", 64)]));
    });
}

#[test]
fn a_prefix_at_the_top_of_the_space_goes_in_and_out() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "v4", prefix_elements(net("255.255.255.0/24")));
        nft.apply(&batch).unwrap();
        let listed = set_elems("v4");
        println!("255.255.255.0/24 without an end element lists as {listed}");
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "v4", prefix_elements(net("255.255.255.0/24")));
        nft.apply(&batch).unwrap();
        assert_eq!(set_elems("v4"), json!([]));
    });
}

#[test]
fn maps_a_concatenated_port_range() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let ip = |s: &str| key::ipv4(s.parse().unwrap());
        let tcp = key::inet_proto(libc::IPPROTO_TCP as u8);
        let element = Element::new(key::concat(&[&ip("10.0.0.1"), &tcp, &key::inet_service(8080)]))
            .key_end(key::concat(&[&ip("10.0.0.1"), &tcp, &key::inet_service(8090)]))
            .data(key::concat(&[&ip("172.18.0.2"), &key::inet_service(80)]));
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ports", vec![element.clone()]);
        nft.apply(&batch).unwrap();
        assert_eq!(
            elems("map", "ports"),
            json!([[
                {"concat": ["10.0.0.1", "tcp", {"range": [8080, 8090]}]},
                {"concat": ["172.18.0.2", 80]}
            ]])
        );
        // Without a key_end an element covers its key alone.
        let single = Element::new(key::concat(&[&ip("10.0.0.2"), &tcp, &key::inet_service(53)]))
            .data(key::concat(&[&ip("172.18.0.3"), &key::inet_service(5353)]));
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ports", vec![single.clone()]);
        nft.apply(&batch).unwrap();
        assert_eq!(elems("map", "ports").as_array().map(Vec::len), Some(2));
        assert_eq!(
            elems("map", "ports")[1],
            json!([{"concat": ["10.0.0.2", "tcp", 53]}, {"concat": ["172.18.0.3", 5353]}])
        );

        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "ports", vec![element, single]);
        nft.apply(&batch).unwrap();
        assert!(elems("map", "ports").is_null());
    });
}

#[test]
fn changing_a_map_value_is_a_delete_and_an_add() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let k = key::ipv4(Ipv4Addr::new(192, 168, 0, 2));
        let mut batch = Batch::new();
        batch.add(
            Family::Inet,
            "t",
            "peers",
            vec![Element::new(k.clone()).data(key::ifname("vx0"))],
        );
        nft.apply(&batch).unwrap();

        let mut batch = Batch::new();
        batch.add(
            Family::Inet,
            "t",
            "peers",
            vec![Element::new(k.clone()).data(key::ifname("vx1"))],
        );
        let err = nft.apply(&batch).unwrap_err();
        println!(
            "re-adding a map key with other data: {err}: {}",
            io::Error::from_raw_os_error(err.errno())
        );
        assert_eq!(err.errno(), libc::EEXIST, "{err}");

        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "peers", vec![Element::new(k.clone())]);
        batch.add(
            Family::Inet,
            "t",
            "peers",
            vec![Element::new(k).data(key::ifname("vx1"))],
        );
        nft.apply(&batch).unwrap();
        assert_eq!(elems("map", "peers"), json!([["192.168.0.2", "vx1"]]));
    });
}

#[test]
fn a_missing_set_fails_with_enoent_and_names_the_set() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ifs", ifs(&["br-1"]));
        batch.add(Family::Inet, "t", "nosuch", ifs(&["br-1", "br-2"]));
        let err = nft.apply(&batch).unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT);
        let source = std::error::Error::source(&err).unwrap().to_string();
        let full = format!("{err}: {source}");
        println!("{full}");
        assert!(
            full.starts_with("nftables: adding 2 elements to set inet t nosuch"),
            "{full}"
        );
        assert!(full.contains("set name"), "{full}");
        assert!(full.ends_with("No such file or directory (os error 2)"), "{full}");
        // All or nothing: the good op was not applied either.
        assert_eq!(set_elems("ifs"), json!([]));

        let chained = crate::Error::from(err);
        assert_eq!(chained.errno(), Some(libc::ENOENT));
        assert_eq!(chained.chain(), full);
    });
}

#[test]
fn a_missing_table_and_a_bad_key_are_reported_precisely() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.delete(Family::Ip, "t", "ifs", ifs(&["br-1"]));
        let err = nft.apply(&batch).unwrap_err();
        println!("{err}");
        assert_eq!(err.errno(), libc::ENOENT);
        assert!(
            err.to_string().contains("from set ip t ifs (at the table name"),
            "{err}"
        );

        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ifs", ifs(&["br-1", "br-2"]));
        batch.add(
            Family::Inet,
            "t",
            "ifs",
            vec![Element::new(key::ipv4(Ipv4Addr::LOCALHOST))],
        );
        let err = nft.apply(&batch).unwrap_err();
        println!("{err}");
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(
            err.to_string().contains("at element 1 of 1, key 7f000001"),
            "{err}"
        );

        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "ifs", ifs(&["br-1"]));
        let err = nft.apply(&batch).unwrap_err();
        println!("{err}");
        assert_eq!(err.errno(), libc::ENOENT);
        assert!(err.to_string().contains("at element 1 of 1"), "{err}");
    });
}

#[test]
fn apply_idempotent_skips_missing_deletions_only() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let present: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let mut batch = Batch::new();
        batch.add(
            Family::Inet,
            "t",
            "ifs",
            present.iter().map(|n| Element::new(key::ifname(n))).collect(),
        );
        nft.apply(&batch).unwrap();

        // Present and missing interleaved, plus a missing set, plus an add.
        let mut doomed = Vec::new();
        for (i, name) in present.iter().enumerate().take(40) {
            doomed.push(Element::new(key::ifname(name)));
            doomed.push(Element::new(key::ifname(&format!("gone{i}"))));
        }
        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "ifs", doomed);
        batch.delete(Family::Inet, "t", "nosuch", ifs(&["x"]));
        batch.add(
            Family::Inet,
            "t",
            "pairs",
            vec![Element::new(key::concat(&[&key::ifname("a"), &key::ifname("b")]))],
        );
        assert!(nft.apply(&batch).is_err());
        nft.apply_idempotent(&batch).unwrap();
        let left: Vec<String> = present[40..].to_vec();
        assert_eq!(set_elems("ifs"), json!(left));
        assert_eq!(set_elems("pairs"), json!([{"concat": ["a", "b"]}]));
        // Twice is fine.
        nft.apply_idempotent(&batch).unwrap();

        // An addition to a missing set is still an error.
        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "ifs", ifs(&["gone"]));
        batch.add(Family::Inet, "t", "nosuch", ifs(&["x"]));
        let err = nft.apply_idempotent(&batch).unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT);
        assert!(
            err.to_string().contains("adding 1 element to set inet t nosuch"),
            "{err}"
        );
    });
}

#[test]
fn five_thousand_elements_in_one_batch() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let elements: Vec<Element> = (0..5_000u32)
            .map(|i| {
                let ip = Ipv4Addr::from(0x0a00_0000 + i);
                Element::new(key::ipv4(ip)).data(key::ifname(&format!("vx{}", i % 100)))
            })
            .collect();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "peers", elements.clone());
        let started = Instant::now();
        nft.apply(&batch).unwrap();
        let took = started.elapsed();
        println!("5,000-element map batch applied in {took:?}");
        assert_eq!(elems("map", "peers").as_array().map(Vec::len), Some(5_000));

        let mut single = Batch::new();
        single.add(
            Family::Inet,
            "t",
            "peers",
            vec![Element::new(key::ipv4(Ipv4Addr::new(10, 9, 9, 9))).data(key::ifname("vx0"))],
        );
        let started = Instant::now();
        nft.apply(&single).unwrap();
        println!("one element into a 5,000-element map in {:?}", started.elapsed());

        let mut batch = Batch::new();
        batch.delete(Family::Inet, "t", "peers", elements);
        let started = Instant::now();
        nft.apply(&batch).unwrap();
        println!("5,000 deletions in {:?}", started.elapsed());
        assert_eq!(elems("map", "peers").as_array().map(Vec::len), Some(1));
    });
}

#[test]
fn ten_thousand_concatenated_ranges_in_one_batch() {
    // About 900 KB of messages: far more than the default socket buffer.
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let tcp = key::inet_proto(6);
        let elements: Vec<Element> = (0..10_000u32)
            .map(|i| {
                let ip = key::ipv4(Ipv4Addr::from(0x0a01_0000 + i));
                Element::new(key::concat(&[&ip, &tcp, &key::inet_service(1000)]))
                    .key_end(key::concat(&[&ip, &tcp, &key::inet_service(2000)]))
                    .data(key::concat(&[&ip, &key::inet_service(80)]))
            })
            .collect();
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "ports", elements);
        let started = Instant::now();
        nft.apply(&batch).unwrap();
        println!("10,000 concatenated ranges applied in {:?}", started.elapsed());
        assert_eq!(elems("map", "ports").as_array().map(Vec::len), Some(10_000));
    });
}

#[test]
fn the_socket_is_send_and_sync_and_works_from_other_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Socket>();
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        thread::scope(|s| {
            for t in 0..4 {
                let nft = &nft;
                s.spawn(move || {
                    for i in 0..25 {
                        let mut batch = Batch::new();
                        batch.add(Family::Inet, "t", "ifs", ifs(&[&format!("t{t}i{i}")]));
                        nft.apply(&batch).unwrap();
                    }
                });
            }
        });
        assert_eq!(set_elems("ifs").as_array().map(Vec::len), Some(100));
    });
}

#[test]
fn chains_and_rules_are_created_and_read_back() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let accept_5 = Rule::new(Family::Inet, "t", "c")
            .expr(Expr::meta(Meta::Mark, Reg::R1))
            .expr(Expr::cmp_eq(Reg::R1, key::mark(5)))
            .expr(Expr::counter())
            .expr(Expr::verdict(Verdict::Accept));
        let drop = Rule::new(Family::Inet, "t", "c").expr(Expr::verdict(Verdict::Drop));
        let mut batch = Batch::new();
        batch.add_chain(&Chain::new(Family::Inet, "t", "c"));
        batch.add_rule(&accept_5).add_rule(&drop);
        nft.apply(&batch).unwrap();

        assert!(nft.has_chain(Family::Inet, "t", "c").unwrap());
        assert!(!nft.has_chain(Family::Inet, "t", "nosuch").unwrap());
        assert!(!nft.has_chain(Family::Ip, "t", "c").unwrap(), "no table ip t");
        let rules = nft.rules(Family::Inet, "t", "c").unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules[0].is(&accept_5) && !rules[0].is(&drop));
        assert!(rules[1].is(&drop) && !rules[1].is(&accept_5));
        assert_ne!(rules[0].handle(), rules[1].handle());
        let err = nft.rules(Family::Inet, "t", "nosuch").unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT, "{err}");

        // A counter that counted, or a rule written by nft, is the same rule.
        nft_f("flush chain inet t c\nadd rule inet t c meta mark 5 counter packets 7 bytes 700 accept");
        let rules = nft.rules(Family::Inet, "t", "c").unwrap();
        assert!(rules.len() == 1 && rules[0].is(&accept_5));
        // Inserted rules go first.
        let mut batch = Batch::new();
        batch.insert_rule(&drop);
        nft.apply(&batch).unwrap();
        let rules = nft.rules(Family::Inet, "t", "c").unwrap();
        assert!(rules.len() == 2 && rules[0].is(&drop) && rules[1].is(&accept_5));

        // A refused object names itself.
        let mut batch = Batch::new();
        batch.add_rule(&Rule::new(Family::Inet, "t", "nosuch").expr(Expr::verdict(Verdict::Drop)));
        let err = nft.apply(&batch).unwrap_err();
        assert_eq!(err.errno(), libc::ENOENT);
        assert!(
            err.to_string()
                .starts_with("nftables: adding rule 1 to chain inet t nosuch"),
            "{err}"
        );
    });
}

#[test]
fn an_anonymous_set_serves_the_rule_that_looks_it_up() {
    in_netns(TABLE, || {
        let nft = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.add_chain(&Chain::new(Family::Inet, "t", "c"));
        let protos = [6u8, 17].map(|p| Element::new(key::inet_proto(p))).to_vec();
        let set = batch.add_set(&Set::anonymous(Family::Inet, "t", Meta::L4proto, protos));
        let rule = Rule::new(Family::Inet, "t", "c")
            .expr(Expr::meta(Meta::L4proto, Reg::R1))
            .expr(Expr::lookup(Reg::R1, &set, None))
            .expr(Expr::verdict(Verdict::Accept));
        batch.add_rule(&rule);
        nft.apply(&batch).unwrap();
        let out = Command::new("nft")
            .args(["list", "chain", "inet", "t", "c"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("meta l4proto { tcp, udp } accept"), "{listing}");
    });
}
