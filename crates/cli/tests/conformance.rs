//! Every built-in driver passes every conformance check.

use std::path::Path;

use berth_testkit::conformance::{CHECKS, Case, Outcome, run};

fn check(label: &str) {
    let case = Case::builtin_rows()
        .into_iter()
        .find(|c| c.label == label)
        .expect("a built-in row");
    let outcomes = run(Path::new(env!("CARGO_BIN_EXE_berth")), &case);
    let failures: Vec<String> = CHECKS
        .iter()
        .zip(&outcomes)
        .filter_map(|(c, o)| match o {
            Outcome::Fail(why) => Some(format!("{c}: {why}")),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "{label}:\n{}", failures.join("\n"));
    assert_eq!(outcomes.len(), CHECKS.len());
}

#[test]
fn bridge_conforms() {
    check("bridge");
}

#[test]
fn host_conforms() {
    check("host");
}

#[test]
fn none_conforms() {
    check("none");
}
