//! A damaged store: refused with one line, or `--recover-store`.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use serde_json::Value;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Overwrites every byte of the store with garbage.
fn garble_store(h: &TestHost) {
    let p = h.data_root().join("berth.redb");
    let mut b = std::fs::read(&p).unwrap();
    for (i, v) in b.iter_mut().enumerate() {
        *v = (i as u8).wrapping_mul(97).wrapping_add(13);
    }
    std::fs::write(&p, b).unwrap();
}

fn network_id(h: &TestHost, name: &str) -> String {
    let v: Value = serde_json::from_str(&h.ok(&["network", "inspect", name])).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}

/// A host with network n1 (10.43.0.0/24) and container a on it, whose
/// daemon was stopped and whose store was then garbled.
fn damaged() -> (TestHost, String, String, String) {
    let mut h = TestHost::new(berth());
    h.ok(&["network", "create", "--subnet", "10.43.0.0/24", "n1"]);
    let ctr = h.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
        "--",
        "sleep",
        "600",
    ]);
    let (bridge, n1) = (network_id(&h, "bridge"), network_id(&h, "n1"));
    h.stop_daemon();
    garble_store(&h);
    (h, bridge, n1, ctr.trim().to_owned())
}

#[test]
fn a_damaged_store_is_refused_with_a_line_naming_recover_store() {
    let (h, ..) = damaged();
    let mut d = h.spawn_daemon(&[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(st) = d.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = d.kill();
            let _ = d.wait();
            panic!("the daemon started on a damaged store: {}", h.daemon_log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!st.success());
    let log = h.daemon_log();
    let line = log
        .lines()
        .find(|l| l.contains("berth.redb cannot be read"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("--recover-store"), "{line}");
    assert!(!log.contains("panicked"), "{log}");
    // Nothing was moved.
    assert!(h.data_root().join("berth.redb").exists());
    let aside = std::fs::read_dir(h.data_root())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(!aside);
}

#[test]
fn recover_store_sets_the_file_aside_rebuilds_bridges_and_says_what_was_lost() {
    let (mut h, bridge, n1, ctr) = damaged();
    h.start_daemon(&["--recover-store"]);
    let log = h.daemon_log();

    // The damaged file is kept aside; a new store is in its place.
    let aside: Vec<String> = std::fs::read_dir(h.data_root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("berth.redb.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        log.contains(&format!(
            "the damaged file is kept as {}",
            h.data_root().join(&aside[0]).display()
        )),
        "{log}"
    );

    // Rebuilt from the kernel: the default bridge network keeps its id,
    // n1 comes back under a name of its own with its subnet, internal.
    assert_eq!(network_id(&h, "bridge"), bridge);
    let name = format!("recovered-{}", &n1[..12]);
    let v: Value = serde_json::from_str(&h.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(v[0]["Id"], n1.as_str());
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.43.0.0/24", "{v:#}");
    assert_eq!(v[0]["Internal"], true, "{v:#}");
    assert!(log.contains(&format!("rebuilt network {name}")), "{log}");
    assert!(log.contains("rebuilt network bridge"), "{log}");

    // What was lost is named: the container, and its process.
    let lost = log
        .lines()
        .find(|l| l.contains(&format!("lost container {}: its record is lost", &ctr[..12])))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(lost.contains("keeps running without a network"), "{lost}");
    assert!(h.berth(&["inspect", "--type", "container", "a"]).code != 0);
    assert!(
        !h.exec_root().join("netns").join(&ctr).exists(),
        "its sandbox is swept"
    );

    // The rebuilt network works, and the new store opens without the flag.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        &name,
        "--",
        "sleep",
        "600",
    ]);
    assert!(h.address("b", &name).starts_with("10.43.0."));
    h.stop_daemon();
    h.start_daemon(&[]);
    h.ok(&["network", "inspect", &name]);
    h.ok(&["inspect", "b"]);
}
