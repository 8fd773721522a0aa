//! `cargo xtask fuzz [TARGET] [--seconds N]`: coverage-guided fuzzing of
//! the parsers that take bytes from containers, plugins, API clients and
//! the command line, with cargo-fuzz (libFuzzer), each target for N
//! seconds (60 by default; CI runs them all). Targets live in
//! `fuzz/fuzz_targets/`. cargo-fuzz is installed when missing
//! (`cargo install cargo-fuzz --locked`); the stable toolchain takes the
//! sanitizer flags with `RUSTC_BOOTSTRAP=1`. Each run prints libFuzzer's
//! execution count.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const TARGETS: &[&str] = &[
    "dns_answer",
    "cni_result",
    "docker_response",
    "plugin_answer",
    "api_request",
    "cli_args",
];

/// Whether `cargo fuzz` runs.
fn have_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                seconds = v
                    .parse()
                    .with_context(|| format!("--seconds {v:?}: expected a number"))?;
            }
            t if TARGETS.contains(&t) => {
                targets.push(TARGETS[TARGETS.iter().position(|x| *x == t).unwrap_or(0)])
            }
            other => bail!(
                "unknown fuzz target or option {other:?} (targets: {}; option: --seconds N)",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    if !have_cargo_fuzz() {
        println!("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
        let st = crate::status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
            .context("running cargo install cargo-fuzz")?;
        if !st.success() || !have_cargo_fuzz() {
            bail!("could not install cargo-fuzz (cargo install cargo-fuzz --locked)");
        }
    }
    let mut done = Vec::new();
    for t in targets {
        println!("fuzzing {t} for {seconds} s");
        let runs = fuzz(t, seconds)?;
        done.push(format!("{t}: {runs} executions in {seconds} s, no finding"));
    }
    for d in done {
        println!("{d}");
    }
    Ok(())
}

/// Runs one target for `seconds`, passing its output on; the number of
/// executions libFuzzer reports at the end ("Done N runs in S second(s)").
fn fuzz(target: &str, seconds: u64) -> Result<String> {
    // libFuzzer needs nightly-only compiler flags; RUSTC_BOOTSTRAP lets
    // the stable toolchain of these machines accept them.
    let mut child = Command::new("cargo")
        .current_dir(crate::root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", target, "--", &format!("-max_total_time={seconds}")])
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz")?;
    let _forwarded = berth_testkit::cleanup::forward(child.id());
    let mut runs = String::from("?");
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(n) = line.strip_prefix("Done ").and_then(|r| r.split(' ').next()) {
                n.clone_into(&mut runs);
            }
        }
    }
    let st = child.wait().context("waiting for cargo fuzz")?;
    if !st.success() {
        bail!("fuzz target {target} found a failure (see fuzz/artifacts/{target})");
    }
    Ok(runs)
}
