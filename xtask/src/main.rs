//! `cargo xtask`: the project's own commands.
//!
//! - `test`: every test, the root-only ones included, then a leak check.
//! - `test-drivers`: the driver conformance suite, printed as a table.
//! - `demo`: the Docker walkthrough of `../shared/seed`, played by berth
//!   inside a throwaway host namespace.
//! - `bench [attach|dns|overlay|plugins|ports]`: berth next to its peers, measured in the same run.
//! - `vmtest [--timeout SECS] [FILTER]`: the tests that need ipvlan, 802.1q
//!   and dummy links, in a stock Debian kernel under qemu.

mod bench;
mod demo;
mod drivers;
mod fuzz;
mod needs;
mod test;
mod vmtest;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("test-drivers") => drivers::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("vmtest") => vmtest::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test | test-drivers | demo [overlay] | bench [attach|dns|overlay|plugins|ports] | vmtest [--timeout SECS] [FILTER] | fuzz [TARGET] [--seconds N]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the berth binary (`release` or debug) and returns its path.
pub fn build_berth(release: bool) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args(["build", "--quiet", "-p", "berth"]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().context("running cargo build")?;
    if !st.success() {
        bail!("cargo build failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    Ok(target
        .join(if release { "release" } else { "debug" })
        .join("berth"))
}
