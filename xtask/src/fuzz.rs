//! `cargo xtask fuzz [TARGET] [--seconds N]`: coverage-guided fuzzing of
//! the parsers that take bytes from containers or plugins, with cargo-fuzz
//! (libFuzzer). Targets live in `fuzz/fuzz_targets/`.

use std::process::Command;

use anyhow::{Context, Result, bail};

const TARGETS: &[&str] = &["dns_answer", "cni_result", "docker_response", "plugin_answer"];

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
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        bail!("cargo-fuzz is not installed: cargo install cargo-fuzz");
    }
    for t in targets {
        println!("fuzzing {t} for {seconds} s");
        // libFuzzer needs nightly-only compiler flags; RUSTC_BOOTSTRAP lets
        // the stable toolchain of these machines accept them.
        let st = Command::new("cargo")
            .current_dir(crate::root().join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", t, "--", &format!("-max_total_time={seconds}")])
            .status()
            .context("running cargo fuzz")?;
        if !st.success() {
            bail!("fuzz target {t} found a failure (see fuzz/artifacts/{t})");
        }
    }
    Ok(())
}
