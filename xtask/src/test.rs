//! `cargo xtask test`: every test, the root-only ones included, then a
//! check that nothing berth made was left behind, then the tests that need
//! kernel features this machine lacks, in a VM (`cargo xtask vmtest`).
//! `--no-vm` skips the VM, and says so.

use std::process::Command;

use anyhow::{Context, Result, bail};

pub(crate) fn machine_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .collect()
}

/// Entries of the temporary directory whose names start with `berth`.
fn temp_entries() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("berth"))
        .collect()
}

/// What berth's tests may have leaked into the machine: stale test roots,
/// mounts, links, nftables tables and scratch files in the temporary
/// directory.
fn leaks(links_before: &[String], temp_before: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for r in berth_testkit::stale_roots() {
        out.push(format!("test root {} (removed now)", r.display()));
        berth_testkit::remove_root(&r);
    }
    // Mounts under a stale root are gone with it; what remains belongs to
    // runs still going (a bench beside the tests), unless its owner died.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        let Some((_, rest)) = point.split_once(berth_testkit::ROOT_PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().unwrap_or_default();
        if !std::path::Path::new("/proc").join(owner).exists() {
            out.push(format!("mount {point}"));
        }
    }
    for l in machine_links() {
        if !links_before.contains(&l) {
            out.push(format!("link {l} in the machine's namespace"));
        }
    }
    for t in temp_entries() {
        if !temp_before.contains(&t) && !t.starts_with(berth_testkit::ROOT_PREFIX) {
            out.push(format!(
                "{} in the temporary directory",
                std::env::temp_dir().join(t).display()
            ));
        }
    }
    // The multi-host tests run etcd: none may outlive them.
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "etcd" {
            out.push(format!(
                "an etcd process (pid {})",
                e.file_name().to_string_lossy()
            ));
        }
    }
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    if String::from_utf8_lossy(&tables).contains("berth") {
        out.push("an nftables table named berth in the machine's namespace".into());
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    berth_testkit::require_root();
    crate::needs::ensure(crate::needs::TESTS, "the tests")?;
    let no_vm = args.iter().any(|a| a == "--no-vm");
    let args: Vec<String> = args.iter().filter(|a| *a != "--no-vm").cloned().collect();
    let links_before = machine_links();
    let temp_before = temp_entries();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(crate::root());
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("cargo-nextest is not installed: running cargo test instead");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(&args);
    let status = cmd.status().context("running the tests")?;
    let leaked = leaks(&links_before, &temp_before);
    for l in &leaked {
        eprintln!("LEAK: {l}");
    }
    let vm = if no_vm {
        eprintln!("NOT RUN: the VM tests (ipvlan, 802.1q, dummy parents) were skipped with --no-vm");
        Ok(())
    } else {
        crate::vmtest::run(&[])
    };
    if !status.success() {
        bail!("tests failed");
    }
    if !leaked.is_empty() {
        bail!("the tests left {} thing(s) behind", leaked.len());
    }
    vm.context("the VM tests failed")?;
    if no_vm {
        println!("all tests passed on this kernel (the VM tests were not run); nothing was left behind");
    } else {
        println!("all tests passed, on this kernel and in the VM; nothing was left behind");
    }
    Ok(())
}
