//! `cargo xtask vmtest [--timeout SECS] [FILTER…]`: the tests of
//! `crates/cli/tests/vm.rs`, which need link kinds this project's machines
//! lack (ipvlan, 802.1q, dummy, geneve), run as root of a stock Debian
//! kernel under qemu. Software emulation: KVM does not work here.
//!
//! 1. builds the test binary and berth (debug);
//! 2. fetches the kernel package `linux-image-amd64` depends on, once,
//!    into `target/vmtest/`, and unpacks its image to an ELF vmlinux;
//! 3. writes an initramfs holding everything the tests run ([`initramfs`]);
//! 4. boots it with no network device; `/init` runs the tests with
//!    `--ignored --test-threads=1` and hands their result to qemu through
//!    isa-debug-exit, which becomes qemu's exit code.
//!
//! Every line of the VM's console is printed as it comes. A failed test, a
//! kernel panic, a timeout (default 600 s, or `BERTH_VMTEST_TIMEOUT`) or a
//! run where no test ran is an error.

mod cpio;
mod initramfs;
mod kernel;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The integration test file (`crates/cli/tests/vm.rs`) that runs in the VM.
const TEST: &str = "vm";

pub fn run(args: &[String]) -> Result<()> {
    reports(args).map(drop)
}

/// Runs the VM tests like [`run`] and returns the `CONFORMANCE …` and
/// `DATAPATH …` lines they printed (the conformance rows of drivers that
/// only the VM has, the data path figures of `bench dataplane`).
pub fn reports(args: &[String]) -> Result<Vec<String>> {
    crate::needs::ensure(crate::needs::VM, "the VM tests")?;
    let started = Instant::now();
    let mut timeout = std::env::var("BERTH_VMTEST_TIMEOUT")
        .ok()
        .map(|s| s.parse::<u64>().context("BERTH_VMTEST_TIMEOUT: seconds"))
        .transpose()?
        .unwrap_or(600);
    let mut test_args = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--timeout" => {
                timeout = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--timeout takes a number of seconds")?;
            }
            "-h" | "--help" => {
                println!("usage: cargo xtask vmtest [--timeout SECS] [FILTER|TEST-ARGS…]");
                return Ok(Vec::new());
            }
            _ => test_args.push(a.clone()),
        }
    }

    let built_test = build_test()?;
    let berth = crate::build_berth(false)?;
    // The tests run berth from the absolute path cargo compiled into them;
    // the VM has it at that same path.
    let berth = match built_test.berth {
        Some(b) => b,
        None => std::path::absolute(&berth)?,
    };
    let built = started.elapsed();

    let dir = target_dir()?.join("vmtest");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel = kernel::fetch(&dir)?;
    let fetched = started.elapsed();

    // Per run, so that two runs side by side do not share them; those of
    // runs that were killed went when this one started ([`sweep`]).
    let scratch = dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let gone = scratch.clone();
    let _on_signal = berth_testkit::cleanup::on_interrupt(move || {
        let _ = std::fs::remove_dir_all(&gone);
    });
    let image = scratch.join("initramfs.cpio");
    let payload = initramfs::Payload {
        test: &built_test.test,
        test_cwd: &built_test.cwd,
        berth: &berth,
        test_args: &test_args,
    };
    initramfs::build(&image, &scratch, &kernel, &payload).context("building the initramfs")?;
    let packed = started.elapsed();
    let size = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "vmtest: booting {} ({}) with a {} MiB initramfs; timeout {timeout} s",
        kernel.release,
        kernel.image.file_name().unwrap_or_default().to_string_lossy(),
        size >> 20
    );

    let run = boot(&kernel.image, &image, Duration::from_secs(timeout));
    let _ = std::fs::remove_dir_all(&scratch);
    let run = run?;
    let total = started.elapsed();

    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    println!();
    println!("vmtest summary ({}):", kernel.release);
    for (name, outcome) in &run.tests {
        println!("  {outcome:7} {name}");
    }
    let count = |o: &str| run.tests.iter().filter(|(_, x)| x == o).count();
    let (passed, failed) = (count("ok"), count("FAILED"));
    println!(
        "  {passed} passed, {failed} failed; build {}, kernel {}, initramfs {}, boot {}, tests {}, total {}",
        secs(built),
        secs(fetched - built),
        secs(packed - fetched),
        run.boot.map_or_else(|| "-".into(), secs),
        run.boot.map_or_else(|| "-".into(), |b| secs(run.vm - b)),
        secs(total),
    );
    match run.end {
        End::TimedOut => bail!("the VM did not finish within {timeout} s"),
        End::Exit(initramfs::FAILED) if failed == 0 => {
            bail!("the VM failed before the tests reported a result: see its console above")
        }
        End::Exit(initramfs::FAILED) => bail!("{failed} VM test(s) failed"),
        End::Exit(initramfs::PASSED) if passed == 0 => {
            bail!("no test ran in the VM: does the filter match a test of crates/cli/tests/{TEST}.rs?")
        }
        End::Exit(initramfs::PASSED) if failed > 0 => bail!("{failed} VM test(s) failed"),
        End::Exit(initramfs::PASSED) => Ok(run.reports),
        End::Exit(code) => bail!(
            "the VM ended without a test result (qemu exit code {code}): a kernel panic or a broken /init, see the console above"
        ),
    }
}

/// Removes the `run-PID` scratch directories of runs whose process is
/// gone, and ends the qemu such a run left booting (its command line names
/// the directory); one line per thing.
pub fn sweep() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = target_dir().map(|d| d.join("vmtest")) else {
        return out;
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("run-") else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let path = e.path();
        let needle = format!("{}/", path.display());
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(qemu) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with("qemu-system") && cmd.contains(&needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(qemu),
                    nix::sys::signal::Signal::SIGKILL,
                );
                out.push(format!(
                    "qemu {qemu} of a VM test run that is gone (pid {pid}) ended"
                ));
            }
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => out.push(format!(
                "{} (a VM test run's scratch files, pid {pid} is gone): removed",
                path.display()
            )),
            Err(e) => out.push(format!("{}: COULD NOT REMOVE: {e}", path.display())),
        }
    }
    out
}

fn target_dir() -> Result<PathBuf> {
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| crate::root().join("target"), PathBuf::from);
    Ok(std::path::absolute(dir)?)
}

/// What `cargo test -p berth --test vm --no-run` built.
struct Built {
    /// The test executable.
    test: PathBuf,
    /// Its package directory, where cargo runs it.
    cwd: PathBuf,
    /// The berth binary as cargo named it to the test
    /// (`CARGO_BIN_EXE_berth`), when cargo reported it.
    berth: Option<PathBuf>,
}

fn build_test() -> Result<Built> {
    let out = crate::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(crate::root())
            .args([
                "test",
                "-p",
                "berth",
                "--test",
                TEST,
                "--no-run",
                "--message-format=json",
            ])
            .stderr(Stdio::inherit()),
    )
    .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the VM tests failed");
    }
    let (mut test, mut berth) = (None, None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kind = |k: &str| {
            v["target"]["kind"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|x| x == k))
        };
        let (Some(exe), Some(manifest)) = (v["executable"].as_str(), v["manifest_path"].as_str()) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        if v["target"]["name"] == TEST && kind("test") {
            test = Some((
                PathBuf::from(exe),
                Path::new(manifest).parent().unwrap_or(Path::new("/")).to_owned(),
            ));
        } else if v["target"]["name"] == "berth" && kind("bin") {
            berth = Some(PathBuf::from(exe));
        }
    }
    let (test, cwd) =
        test.with_context(|| format!("cargo test --no-run named no executable for --test {TEST}"))?;
    Ok(Built { test, cwd, berth })
}

/// How the VM ended.
enum End {
    /// qemu's exit code.
    Exit(i32),
    /// Killed after the timeout.
    TimedOut,
}

/// What one boot printed and how it ended.
struct Boot {
    end: End,
    /// `(test name, "ok" | "FAILED" | "ignored")`, in order.
    tests: Vec<(String, String)>,
    /// `CONFORMANCE …` and `DATAPATH …` lines the tests printed.
    reports: Vec<String>,
    /// From qemu's start to /init's ready line.
    boot: Option<Duration>,
    /// From qemu's start to its end.
    vm: Duration,
}

fn boot(kernel: &Path, initrd: &Path, timeout: Duration) -> Result<Boot> {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-nic",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 quiet panic=-1 oops=panic",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let _forwarded = berth_testkit::cleanup::forward(child.id());
    let started = Instant::now();
    let stdout = child.stdout.take().context("qemu's stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            if tx.send(line).is_err() {
                break;
            }
            buf.clear();
        }
    });

    let deadline = started + timeout;
    let mut run = Boot {
        end: End::TimedOut,
        tests: Vec::new(),
        reports: Vec::new(),
        boot: None,
        vm: Duration::ZERO,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = plain(&line);
                println!("{line}");
                if run.boot.is_none() && line.contains(initramfs::READY) {
                    run.boot = Some(started.elapsed());
                }
                if let Some(t) = result_line(&line) {
                    run.tests.push(t);
                }
                if line.starts_with("CONFORMANCE ") || line.starts_with("DATAPATH ") {
                    run.reports.push(line.clone());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!("vmtest: no result after {} s: stopping the VM", timeout.as_secs());
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                run.vm = started.elapsed();
                return Ok(run);
            }
        }
    }
    let st = child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    run.vm = started.elapsed();
    run.end = End::Exit(st.code().unwrap_or(-1));
    Ok(run)
}

/// `line` without terminal escape sequences (SeaBIOS clears the screen).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
        } else if chars.next_if_eq(&'[').is_some() {
            // CSI: parameters, then one final byte in @..~
            while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
        } else {
            chars.next(); // ESC c and other two-byte sequences
        }
    }
    out
}

/// `("name", "ok")` from libtest's `test name ... ok`.
fn result_line(line: &str) -> Option<(String, String)> {
    let (name, outcome) = line.strip_prefix("test ")?.rsplit_once(" ... ")?;
    let outcome = outcome.split([' ', ',']).next()?;
    ["ok", "FAILED", "ignored"]
        .contains(&outcome)
        .then(|| (name.to_owned(), outcome.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_result_lines_are_read() {
        assert_eq!(
            result_line("test the_kernel_has_links ... ok"),
            Some(("the_kernel_has_links".into(), "ok".into()))
        );
        assert_eq!(
            result_line("test a ... ignored, needs ipvlan"),
            Some(("a".into(), "ignored".into()))
        );
        assert_eq!(result_line("test result: ok. 3 passed"), None);
    }

    #[test]
    fn escape_sequences_are_dropped() {
        assert_eq!(plain("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS"), "SeaBIOS");
    }
}
