//! `cargo xtask test-drivers`: one conformance suite, the same checks for
//! every driver, printed as a table (driver by check).

use anyhow::{Result, bail};
use berth_testkit::conformance::{self, CHECKS, Case, Outcome};

pub fn run(_args: &[String]) -> Result<()> {
    berth_testkit::require_root();
    crate::needs::ensure(crate::needs::TESTS, "the driver conformance tests")?;
    let berth = crate::build_berth(false)?;
    let mut rows = Case::builtin_rows();
    rows.push(Case::sublink("macvlan", &[]));
    // Two hosts of a cluster, with etcd: the sandboxes on different hosts.
    rows.push(Case::overlay());
    rows.push(Case::cni_bridge());
    // A Docker network plugin: berth's test plugin over a unix socket.
    rows.push(Case::docker_plugin("testplug"));
    // A shared-library plugin: the example ptp driver (examples/ptp).
    let ptp = berth_testkit::plugin_library("berth-plugin-ptp");
    rows.push(Case::plugin("ptp", ptp));
    let mut results = Vec::new();
    for case in &rows {
        eprintln!("testing driver {} …", case.label);
        results.push((case, conformance::run(&berth, case)));
    }
    // ipvlan needs a kernel this machine lacks: its row comes from the VM,
    // where crates/cli/tests/vm.rs runs the same suite and prints it.
    eprintln!("testing driver ipvlan in the VM (cargo xtask vmtest ipvlan_conforms) …");
    let ipvlan = Case::sublink("ipvlan", &[]);
    let vm_row: Vec<Outcome> = match crate::vmtest::reports(&["ipvlan_conforms".into()]) {
        Ok(lines) => match lines.iter().find_map(|l| l.strip_prefix("CONFORMANCE ipvlan ")) {
            Some(row) => row
                .split(',')
                .map(|o| match o.trim() {
                    "ok" => Outcome::Pass,
                    "n/a" => Outcome::NotApplicable("not applicable (see the VM's output)"),
                    _ => Outcome::Fail("failed in the VM (see its output above)".into()),
                })
                .collect(),
            None => vec![Outcome::Fail("the VM printed no conformance row".into()); CHECKS.len()],
        },
        Err(e) => vec![Outcome::Fail(format!("the VM run failed: {e:#}")); CHECKS.len()],
    };
    results.push((&ipvlan, vm_row));
    let w0 = results
        .iter()
        .map(|(c, _)| c.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    print!("{:w0$}", "driver");
    for c in CHECKS {
        print!(" | {c}");
    }
    println!();
    let mut failed = Vec::new();
    let mut notes = Vec::new();
    for (case, outcomes) in &results {
        print!("{:w0$}", case.label);
        for (c, o) in CHECKS.iter().zip(outcomes) {
            print!(" | {:^w$}", o.to_string(), w = c.len());
            match o {
                Outcome::Fail(why) => failed.push(format!("{} / {c}: {why}", case.label)),
                Outcome::NotApplicable(why) => notes.push(format!("{} / {c}: n/a, {why}", case.label)),
                Outcome::Pass => {}
            }
        }
        println!();
    }
    for n in &notes {
        println!("  {n}");
    }
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("FAIL {f}");
        }
        bail!("{} conformance check(s) failed", failed.len());
    }
    Ok(())
}
