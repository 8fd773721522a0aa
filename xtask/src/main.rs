//! `cargo xtask`: the project's own commands.
//!
//! - `test`: every test, the root-only ones included, then a leak check.
//! - `test-drivers`: the driver conformance suite, printed as a table.
//! - `demo`: the Docker walkthrough of `../shared/seed`, played by berth
//!   inside a throwaway host namespace.
//! - `bench [attach|dns|overlay|plugins|ports] [--full]`: berth next to its peers,
//!   measured in the same run; a summary and charts in `target/bench/`.
//! - `vmtest [--timeout SECS] [FILTER]`: the tests that need ipvlan, 802.1q
//!   and dummy links, in a stock Debian kernel under qemu.
//! - `fuzz [TARGET] [--seconds N]`: libFuzzer on berth's decoders.
//!
//! Every command cleans up on SIGINT and SIGTERM: the programs it runs get
//! the signal and are waited for, and whatever it made (test roots, a
//! bench's dockerd, a VM's scratch files) is removed before it ends by that
//! signal. Each first removes what an earlier run killed outright left,
//! saying so in one line per killed run ([`sweep`]).

mod bench;
mod demo;
mod drivers;
mod fuzz;
mod needs;
mod test;
mod vmtest;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Output, Stdio};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    berth_testkit::cleanup::install();
    sweep();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("test-drivers") => drivers::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("vmtest") => vmtest::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test | test-drivers | demo [overlay] | bench [attach|dns|overlay|plugins|ports] [--full] | vmtest [--timeout SECS] [FILTER] | fuzz [TARGET] [--seconds N]"
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

/// Removes what earlier runs killed outright (SIGKILL) left: a bench's
/// dockerd first (stopped through its own API while it still answers),
/// then every test root whose owner is gone with its processes, then a
/// VM run's scratch files and qemu. One line per run (or thing) on stderr. Needs
/// root; does nothing without it.
fn sweep() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let mut lines = bench::sweep_docker();
    lines.extend(berth_testkit::cleanup::summary(&berth_testkit::cleanup::sweep()));
    lines.extend(vmtest::sweep());
    for l in lines {
        eprintln!("cleanup: {l}");
    }
}

/// Runs `cmd` to its end like [`Command::status`]; a SIGINT or SIGTERM
/// that arrives meanwhile is passed on to it, and waited for, before this
/// process cleans up.
pub fn status(cmd: &mut Command) -> io::Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    let _forwarded = berth_testkit::cleanup::forward(child.id());
    child.wait()
}

/// Like [`status`], keeping what `cmd` prints on stdout (stdin is null;
/// stderr goes where `cmd` says, by default to this process's).
pub fn output(cmd: &mut Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let child = cmd.spawn()?;
    let _forwarded = berth_testkit::cleanup::forward(child.id());
    child.wait_with_output()
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` of the
/// workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Builds the berth binary (`release` or debug) and returns its path.
pub fn build_berth(release: bool) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).args(["build", "--quiet", "-p", "berth"]);
    if release {
        cmd.arg("--release");
    }
    let st = status(&mut cmd).context("running cargo build")?;
    if !st.success() {
        bail!("cargo build failed");
    }
    Ok(target_dir()
        .join(if release { "release" } else { "debug" })
        .join("berth"))
}
