//! Every driver this machine's kernel has passes every conformance check
//! (ipvlan's row runs in the VM: `cargo xtask vmtest`).

use std::path::Path;

use berth_testkit::conformance::{CHECKS, Case, Outcome, run};

fn check(label: &str) {
    let case = Case::builtin_rows()
        .into_iter()
        .find(|c| c.label == label)
        .expect("a built-in row");
    check_case(&case);
}

fn check_case(case: &Case) {
    let outcomes = run(Path::new(env!("CARGO_BIN_EXE_berth")), case);
    let failures: Vec<String> = CHECKS
        .iter()
        .zip(&outcomes)
        .filter_map(|(c, o)| match o {
            Outcome::Fail(why) => Some(format!("{c}: {why}")),
            _ => None,
        })
        .collect();
    assert!(failures.is_empty(), "{}:\n{}", case.label, failures.join("\n"));
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

#[test]
fn overlay_conforms() {
    // Two hosts of a cluster with a real etcd; conf-b runs on the second.
    check_case(&Case::overlay());
}

#[test]
fn macvlan_conforms() {
    check_case(&Case::sublink("macvlan", &[]));
}

#[test]
fn docker_plugin_conforms() {
    check_case(&Case::docker_plugin("testplug"));
}

#[test]
fn ptp_conforms() {
    // The example shared-library plugin (examples/ptp), built here.
    let lib = berth_testkit::plugin_library("berth-plugin-ptp");
    check_case(&Case::plugin("ptp", lib));
}

#[test]
fn cni_bridge_conforms() {
    // Debian's reference plugins: bridge with host-local IPAM.
    check_case(&Case::cni_bridge());
}
