//! Feeds arbitrary bytes to the embedded resolver's query handling, as a
//! container could send them to 127.0.0.11: it must never panic, and what
//! it sends back must be a DNS message. Whatever the hand-written fast
//! path answers, the full (hickory) path must answer the same (records
//! compared as sets: round-robin shuffles them).
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use berth_engine::dns::{Action, Client, Target, View, Zone, answer, answer_fast, answer_full};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

static VIEW: LazyLock<View> = LazyLock::new(|| {
    let mut zone = Zone {
        name: "my-net".into(),
        ..Default::default()
    };
    let target = Target {
        container: "b".into(),
        addrs: vec!["172.18.0.3".parse().unwrap(), "fd00::3".parse().unwrap()],
    };
    zone.names.insert("centos02".into(), vec![target.clone()]);
    zone.names.insert(
        "web".into(),
        vec![
            target.clone(),
            Target {
                container: "c".into(),
                addrs: vec!["172.18.0.4".parse().unwrap()],
            },
        ],
    );
    zone.names.insert("a.b".into(), vec![target.clone()]);
    let many = (0..40).map(|i| Target {
        container: format!("m{i}"),
        addrs: vec![
            format!("10.1.0.{}", i + 2).parse().unwrap(),
            format!("fd01::{}", i + 2).parse().unwrap(),
        ],
    });
    zone.names.insert("many".into(), many.collect());
    zone.reverse
        .insert("172.18.0.3".parse().unwrap(), "centos02".into());
    zone.reverse.insert("fd00::3".parse().unwrap(), "centos02".into());
    zone.reverse
        .insert("172.18.0.4".parse().unwrap(), "bad name".into());
    let mut view = View::default();
    view.zones.insert("n".into(), zone);
    view.clients.insert(
        "a".into(),
        Client {
            networks: vec!["n".into()],
            links: HashMap::from([("db".into(), "b".into())]),
            forward: true,
        },
    );
    view.clients.insert(
        "i".into(),
        Client {
            networks: vec!["n".into()],
            links: HashMap::new(),
            forward: false,
        },
    );
    view
});

fn canonical(bytes: &[u8]) -> Message {
    let mut m = Message::from_vec(bytes).expect("an answer that does not parse");
    m.answers.sort_by_key(|r| r.data.to_string());
    m
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    for client in ["a", "i"] {
        for udp in [true, false] {
            if let Action::Reply(out) = answer(&VIEW, client, data, udp) {
                assert!(out.len() >= 12, "a reply shorter than a DNS header");
                assert_eq!(out[..2], data[..2], "a reply with another id");
                assert!(out[2] & 0x80 != 0, "a reply without the response bit");
            }
            if answer_fast(&VIEW, client, data, udp, &mut out) {
                let Action::Reply(full) = answer_full(&VIEW, client, data, udp) else {
                    panic!("the fast path answered, the full path did not");
                };
                assert_eq!(canonical(&out), canonical(&full), "fast and full answers differ");
                assert_eq!(out.len(), full.len(), "fast and full answers differ in size");
            }
        }
    }
});
