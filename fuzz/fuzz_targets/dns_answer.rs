//! Feeds arbitrary bytes to the embedded resolver's query handling, as a
//! container could send them to 127.0.0.11: it must never panic, and what
//! it sends back must be a DNS message.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use berth_engine::dns::{Action, Client, Target, View, Zone, answer};
use libfuzzer_sys::fuzz_target;

static VIEW: LazyLock<View> = LazyLock::new(|| {
    let mut zone = Zone { name: "my-net".into(), ..Default::default() };
    let target = Target { container: "b".into(), addrs: vec!["172.18.0.3".parse().unwrap(), "fd00::3".parse().unwrap()] };
    zone.names.insert("centos02".into(), vec![target.clone()]);
    zone.names.insert("web".into(), vec![target.clone(), Target { container: "c".into(), addrs: vec!["172.18.0.4".parse().unwrap()] }]);
    zone.reverse.insert("172.18.0.3".parse().unwrap(), "centos02".into());
    let mut view = View::default();
    view.zones.insert("n".into(), zone);
    view.clients.insert("a".into(), Client { networks: vec!["n".into()], links: HashMap::from([("db".into(), "b".into())]), forward: true });
    view
});

fuzz_target!(|data: &[u8]| {
    for udp in [true, false] {
        if let Action::Reply(out) = answer(&VIEW, "a", data, udp) {
            assert!(out.len() >= 12, "a reply shorter than a DNS header");
            assert_eq!(out[..2], data[..2], "a reply with another id");
            assert!(out[2] & 0x80 != 0, "a reply without the response bit");
        }
    }
});
