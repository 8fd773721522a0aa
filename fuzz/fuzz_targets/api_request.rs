//! Feeds arbitrary requests to the daemon's reading of them
//! (`berth_engine::api::decode::read`): the version prefix, the route, the
//! path's `{id}`, the query with `filters` in both of Docker's encodings,
//! and the JSON body with the checks that need no engine. The input is
//! `METHOD TARGET\n` then the body. Nothing may panic, and what the daemon
//! answers itself is a client's error (4xx) in one line.
#![no_main]

use berth_engine::api::decode::read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (method, target) = head.split_once(' ').unwrap_or(("GET", &head));
    if let Err(r) = read(method.as_bytes(), target, body) {
        assert!((400..500).contains(&r.status), "{r:?}");
        assert!(
            !r.message.contains('\n') && !r.message.contains('\r'),
            "a multi-line answer: {r:?}"
        );
    }
});
