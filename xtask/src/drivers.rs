//! `cargo xtask test-drivers`: one conformance suite, the same checks for
//! every driver, printed as a table (driver by check).

use anyhow::{Result, bail};
use berth_testkit::conformance::{self, CHECKS, Case, Outcome};

pub fn run(_args: &[String]) -> Result<()> {
    berth_testkit::require_root();
    let berth = crate::build_berth(false)?;
    let mut rows = Case::builtin_rows();
    rows.push(Case::sublink("macvlan", &[]));
    let mut results = Vec::new();
    for case in &rows {
        eprintln!("testing driver {} …", case.label);
        results.push((case, conformance::run(&berth, case)));
    }
    let w0 = rows.iter().map(|c| c.label.len()).max().unwrap_or(6).max(6);
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
