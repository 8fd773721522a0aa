//! `cargo xtask test`: every test, the root-only ones included, then a
//! check that nothing berth made was left behind ([`leaks`]: each thing
//! found is one line, and fails the run), then the tests that need
//! kernel features this machine lacks, in a VM (`cargo xtask vmtest`).
//! `--no-vm` skips the VM, and says so.

use std::path::Path;
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

/// Entries of `tmp` whose names start with `berth`.
fn temp_entries(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("berth"))
        .collect()
}

/// Programs berth's tests and benches start beside berth's own: etcd for
/// the cluster, a bench's dockerd and containerd, iperf3 servers,
/// aardvark-dns through netavark.
const PEERS: &[&str] = &["etcd", "dockerd", "containerd", "iperf3", "aardvark-dns"];

/// What the machine had before the tests: to tell what they left.
pub(crate) struct Before {
    links: Vec<String>,
    temp: Vec<String>,
    /// Pids of [`PEERS`] already running.
    peers: Vec<u32>,
}

impl Before {
    pub(crate) fn take(tmp: &Path) -> Self {
        Self {
            links: machine_links(),
            temp: temp_entries(tmp),
            peers: peers().into_iter().map(|(pid, _, _)| pid).collect(),
        }
    }
}

/// Running processes of [`PEERS`]: pid, program, command line.
fn peers() -> Vec<(u32, String, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let comm = comm.trim();
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ").trim().to_owned();
            // comm is cut at 15 bytes: aardvark-dns fits.
            PEERS.contains(&comm).then(|| (pid, comm.to_owned(), cmd))
        })
        .collect()
}

/// Whether `text` names a test root under `tmp` whose owner still runs
/// (another run's, beside this one).
fn names_live_root(text: &str, tmp: &Path) -> bool {
    let prefix = format!("{}/{}", tmp.display(), berth_testkit::ROOT_PREFIX);
    text.match_indices(&prefix).any(|(at, _)| {
        let pid: String = text[at + prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        !pid.is_empty() && Path::new("/proc").join(&pid).exists()
    })
}

/// What berth's tests left in the machine, one line each: test roots of
/// runs that are gone with their processes and namespace mounts (removed
/// now, by [`berth_testkit::cleanup::sweep_in`]), mounts that could not be
/// taken off, [`PEERS`] started meanwhile and tied to no running test,
/// links in the machine's namespace, files in `tmp`, and nftables tables
/// and rules of berth's in the machine's namespace.
pub(crate) fn leaks(before: &Before, tmp: &Path) -> Vec<String> {
    let mut out: Vec<String> = berth_testkit::cleanup::sweep_in(tmp)
        .iter()
        .map(|s| format!("{s} (left by the tests)"))
        .collect();
    // What the sweep could not take off.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/{}", tmp.display(), berth_testkit::ROOT_PREFIX);
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if point.starts_with(&prefix) && !names_live_root(point, tmp) {
            out.push(format!("mount {point} of a run that is gone"));
        }
    }
    for (pid, comm, cmd) in peers() {
        if !before.peers.contains(&pid) && !names_live_root(&cmd, tmp) {
            out.push(format!(
                "{comm} process {pid}, started during the tests and tied to no running test: {cmd}"
            ));
        }
    }
    for l in machine_links() {
        if !before.links.contains(&l) {
            out.push(format!("link {l} in the machine's namespace"));
        }
    }
    for t in temp_entries(tmp) {
        if !before.temp.contains(&t) && !t.starts_with(berth_testkit::ROOT_PREFIX) {
            out.push(format!("{} in the temporary directory", tmp.join(t).display()));
        }
    }
    let ruleset = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for l in ruleset.lines().map(str::trim) {
        if l.starts_with("table ") && l.contains("berth") {
            out.push(format!(
                "nftables {} in the machine's namespace",
                l.trim_end_matches('{').trim()
            ));
        } else if l.contains("comment \"berth\"") {
            out.push(format!("nftables rule in the machine's namespace: {l}"));
        }
    }
    out
}

pub fn run(args: &[String]) -> Result<()> {
    berth_testkit::require_root();
    crate::needs::ensure(crate::needs::TESTS, "the tests")?;
    let no_vm = args.iter().any(|a| a == "--no-vm");
    let args: Vec<String> = args.iter().filter(|a| *a != "--no-vm").cloned().collect();
    let tmp = std::env::temp_dir();
    let before = Before::take(&tmp);
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
    let status = crate::status(&mut cmd).context("running the tests")?;
    let leaked = leaks(&before, &tmp);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The leak check finds the namespace mounts and files a killed run
    /// left in the temporary directory (and removes them), and files of
    /// berth's there that no root holds.
    #[test]
    fn the_leak_check_finds_namespace_mounts_and_files_left_in_the_temporary_directory() {
        berth_testkit::require_root();
        // A temporary directory of this test's own (a live root of this
        // process: no other run's sweep touches it).
        let tmp = berth_testkit::cleanup::new_root();
        let before = Before::take(&tmp);
        let mut done = Command::new("true").spawn().expect("starting true");
        let dead = done.id();
        done.wait().expect("waiting for true");
        let left = tmp.join(format!("{}{dead}-0", berth_testkit::ROOT_PREFIX));
        std::fs::create_dir_all(left.join("netns")).expect("making a root");
        berth_testkit::make_netns(&left.join("netns").join("host")).expect("pinning a namespace");
        std::fs::write(left.join("data"), "x").expect("writing a file");
        std::fs::write(tmp.join("berth-stray.sock"), "").expect("writing a stray file");

        let ours = |all: Vec<String>| -> Vec<String> {
            let t = tmp.display().to_string();
            all.into_iter().filter(|l| l.contains(&t)).collect()
        };
        let found = ours(leaks(&before, &tmp));
        berth_testkit::remove_root(&tmp);
        berth_testkit::cleanup::untrack(&tmp);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with(&format!("test root {}", left.display()))
                && found[0].contains("1 namespace mount(s)")
                && found[0].contains("2 file(s)"),
            "{found:#?}"
        );
        assert_eq!(
            found[1],
            format!(
                "{} in the temporary directory",
                tmp.join("berth-stray.sock").display()
            )
        );
    }
}
