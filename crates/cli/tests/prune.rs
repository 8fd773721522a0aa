//! `berth network prune` asks first, as Docker does.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use berth_testkit::{Run, TestHost};

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

const QUESTION: &str = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ";

/// `berth network prune ARGS…` with `input` on its standard input (none:
/// a standard input that is closed at once, as `</dev/null` gives).
fn prune(h: &TestHost, args: &[&str], input: Option<&[u8]>) -> Run {
    let mut cmd = h.berth_cmd(&[&["network", "prune"], args].concat());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
    }
    child.wait_with_output().unwrap().into()
}

fn networks(h: &TestHost) -> String {
    h.ok(&["network", "ls"])
}

#[test]
fn prune_asks_and_only_y_removes() {
    let h = TestHost::new(berth());
    for n in ["p1", "p2"] {
        h.ok(&["network", "create", n]);
    }
    // End of input, a no, a "yes" (Docker takes only y), bytes that are not text.
    for input in [
        None,
        Some(&b""[..]),
        Some(b"n\n"),
        Some(b"yes\n"),
        Some(b"\xff\xfe\n"),
    ] {
        let r = prune(&h, &[], input);
        assert_eq!(r.code, 0, "{input:?}: {r:?}");
        assert!(r.stdout.starts_with(QUESTION), "{input:?}: {r:?}");
        assert!(!r.stdout.contains("Deleted"), "{input:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{input:?}: {r:?}");
        let ls = networks(&h);
        assert!(
            ls.contains("p1") && ls.contains("p2"),
            "{input:?} removed networks: {ls}"
        );
    }
    // y removes.
    let r = prune(&h, &[], Some(b"y\n"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with(QUESTION), "{r:?}");
    assert!(
        r.stdout.contains("Deleted Networks:\n") && r.stdout.contains("p1\n") && r.stdout.contains("p2\n"),
        "{r:?}"
    );
    assert!(!networks(&h).contains("p1"));
}

#[test]
fn prune_force_does_not_ask() {
    let h = TestHost::new(berth());
    h.ok(&["network", "create", "p3"]);
    let r = prune(&h, &["-f"], None);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("Are you sure"), "{r:?}");
    assert!(r.stdout.contains("p3"), "{r:?}");
    h.ok(&["network", "create", "p4"]);
    let r = prune(&h, &["--force"], None);
    assert!(r.stdout.contains("p4") && !r.stdout.contains("WARNING"), "{r:?}");
    assert!(!networks(&h).contains("p4"));
}
