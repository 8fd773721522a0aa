//! `cargo xtask bench [NAME] [--full] [OPTIONS]`: berth next to its peers,
//! doing the same work on the same machine in the same run.
//!
//! By default each bench is sized to finish within 5 minutes on a 2-core
//! machine (berth's release build, done once before and cached by cargo,
//! aside): a peer slower than its time budget stops where it got to and
//! the report says how far. `--full` runs the issues' sizes with no time
//! budgets, only the bounds that stop a hang. Every bench feeds its
//! headline figures to a [`Summary`], written to `target/bench/summary.md`
//! (all benches) or `summary-NAME.md` (one) and printed; `attach` and
//! `ports` also draw their curves there as SVG ([`chart`]).
//!
//! Benches report; they never fail on their targets. Each target is printed
//! with its figure and "met" or "MISSED". A peer that is not installed gets
//! a loud line saying how to install it, never a silent skip. Everything
//! runs inside throwaway namespaces (`berth_testkit::TestHost`); the
//! machine's own namespace is never touched.
//!
//! - `attach`: attach a fresh sandbox to a bridge network (address, default
//!   route, NAT) and detach it, with 1, 100 and 500 other sandboxes present;
//!   against netavark and the CNI bridge plugin.
//! - `dataplane`: iperf3 TCP, 1 and 4 streams, between two containers of
//!   a bridge network, next to a bare veth pair (the kernel's limit),
//!   netavark, the CNI bridge plugin and Docker, and berth's macvlan;
//!   `--costs` measures what the bridge path costs (see `dataplane.rs`);
//!   then ipvlan, macvlan and the bridge as shares of a bare pair in the
//!   VM's kernel (`--no-vm` leaves that out).
//! - `dns`: the embedded resolver from inside a container: sequential
//!   queries for a container name and for a forwarded name, and how soon a
//!   new container's name resolves after its `run`; against aardvark-dns
//!   (through netavark) and Docker's embedded DNS.
//! - `overlay`: an overlay network across two hosts (namespaces on an
//!   underlay, berth's cluster store in etcd): how soon a new container of
//!   host A answers one of host B, by address and by name; iperf3
//!   throughput next to the underlay and a bare VXLAN pair, on a standard
//!   and on a jumbo-frame underlay; attach to an overlay already on the
//!   host against a bridge attach; against Docker's swarm-mode overlay
//!   (two dockerds in namespaces; see `overlay.rs`).
//! - `plugins`: attach through each plugin transport next to the built-in
//!   bridge driver (see `plugins.rs`).
//! - `ports`: publish 1000 ports (single and as a range), the 1st and the
//!   1000th container with 2 ports each, and the ruleset's size; against
//!   netavark and Docker (see `ports.rs`).
//! - `teardown`: `run -d` of 100 containers, each timed end to end, then
//!   `rm -f` of all in one command; against Docker (see `teardown.rs`).

mod aardvark;
mod attach;
mod attacher;
mod chart;
mod cni;
mod dataplane;
mod dns;
mod docker;
mod http;
mod iperf;
mod netavark;
mod overlay;
mod plugins;
mod ports;
mod resolver;
mod summary;
mod teardown;
mod two_hosts;

use std::cell::Cell;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use summary::{Line, Summary, Verdict};

/// Every bench, in the order `cargo xtask bench` runs them.
const BENCHES: &[(&str, Bench)] = &[
    ("attach", attach::run),
    ("dataplane", dataplane::run),
    ("dns", dns::run),
    ("overlay", overlay::run),
    ("plugins", plugins::run),
    ("ports", ports::run),
    ("teardown", teardown::run),
];

/// A bench's entry point, given the options after its name.
type Bench = fn(&[String], &mut Session) -> Result<()>;

/// What a bench is given besides its options: whether to run at full size,
/// and where its headline figures, notes and charts go.
pub struct Session<'a> {
    /// `--full`: every size as the issue names it and no time budgets
    /// for peers (only the bounds that stop a hang).
    pub full: bool,
    /// `target/bench/`: the summary and the charts.
    pub out: PathBuf,
    bench: &'static str,
    summary: &'a mut Summary,
}

impl Session<'_> {
    /// A headline figure for the summary table.
    pub fn add(&mut self, line: Line) {
        self.summary.add(self.bench, line);
    }

    /// A sentence for the summary (and printed now): a peer cut short by
    /// its budget, say.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("{note}");
        self.summary.note(self.bench, note);
    }

    /// `default` unless `--full`, where there is no budget.
    pub fn budget(&self, default: Duration) -> Option<Duration> {
        (!self.full).then_some(default)
    }

    /// Writes `svg` to `target/bench/NAME.svg` and puts it in the summary.
    pub fn chart(&mut self, name: &str, svg: &str) -> Result<()> {
        let file = format!("{name}.svg");
        let path = self.out.join(&file);
        fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("chart: {}", path.display());
        self.summary.chart(PathBuf::from(file));
        Ok(())
    }
}

/// What `cargo xtask bench --help` would say; shown with a bad name.
const USAGE: &str = "cargo xtask bench [NAME] [--full] [the bench's options]";

pub fn run(args: &[String]) -> Result<()> {
    berth_testkit::require_root();
    let full = args.iter().any(|a| a == "--full");
    let args: Vec<String> = args.iter().filter(|a| *a != "--full").cloned().collect();
    let (names, opts): (Vec<&str>, &[String]) = match args.first() {
        Some(a) if !a.starts_with('-') => (vec![a.as_str()], &args[1..]),
        _ => (BENCHES.iter().map(|(n, _)| *n).collect(), &args),
    };
    let mut chosen = Vec::new();
    for name in &names {
        match BENCHES.iter().find(|(n, _)| n == name) {
            Some(b) => chosen.push(b),
            None => bail!(
                "no bench named {name:?} (benches: {}; usage: {USAGE})",
                BENCHES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let out = crate::target_dir().join("bench");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let machine = machine();
    println!("{machine}");
    // The release build once, up front: cargo caches it, so only the first
    // run on a tree pays for it, and no bench's time includes it.
    let t = Instant::now();
    eprintln!("building berth (release) …");
    crate::build_berth(true)?;
    let build = t.elapsed();
    println!(
        "berth's release build: {:.0} s (not counted in the benches' times; cargo caches it, so later runs skip it)",
        build.as_secs_f64()
    );
    println!(
        "{}",
        if full {
            "--full: every size as the issue names it, no time budgets for peers"
        } else {
            "default sizes and time budgets (each bench within 5 minutes here); --full for every size, no budgets"
        }
    );
    let mut summary = Summary::default();
    let mut failed = Vec::new();
    for (name, bench) in chosen {
        println!();
        println!("== bench {name} ==");
        let t = Instant::now();
        let mut session = Session {
            full,
            out: out.clone(),
            bench: name,
            summary: &mut summary,
        };
        let r = bench(opts, &mut session);
        let took = format!(
            "took {:.0} s (berth's release build not included: cargo caches it)",
            t.elapsed().as_secs_f64()
        );
        match r {
            Ok(()) => summary.note(name, took),
            Err(e) => {
                eprintln!("bench {name}: {e:#}");
                summary.note(name, format!("FAILED ({took}): {e:#}"));
                failed.push(*name);
            }
        }
    }

    let md = summary.markdown(&summary::now_utc(), &machine, &command(&names, full, opts));
    let file = out.join(summary_file(&names));
    fs::write(&file, &md).with_context(|| format!("writing {}", file.display()))?;
    println!();
    println!("{md}");
    println!("summary: {}", file.display());
    if !failed.is_empty() {
        bail!("bench {} failed (see above)", failed.join(", "));
    }
    Ok(())
}

/// The command that runs these benches again.
fn command(names: &[&str], full: bool, opts: &[String]) -> String {
    let mut words = vec!["cargo xtask bench"];
    if let [one] = names {
        words.push(one);
    }
    if full {
        words.push("--full");
    }
    words.extend(opts.iter().map(String::as_str));
    words.join(" ")
}

/// `summary-NAME.md` for one bench, `summary.md` for all.
fn summary_file(names: &[&str]) -> String {
    match names {
        [one] => format!("summary-{one}.md"),
        _ => "summary.md".into(),
    }
}

/// Removes the dockerds of bench runs that were killed, and what they
/// left; one line per thing.
pub fn sweep_docker() -> Vec<String> {
    docker::sweep()
}

/// One line describing the machine: cores, CPU model, kernel.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("machine: {cores} cores ({cpu}), kernel {}", kernel.trim())
}

/// Busy and total jiffies of all CPUs, from `/proc/stat`.
fn cpu_jiffies() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total.saturating_sub(idle), total)
}

/// Says loudly when something else keeps the machine busy: the figures
/// of a run on a busy machine are slow and noisy.
fn warn_if_busy() {
    let busy = busy_share(Duration::from_secs(1));
    if busy > 0.15 {
        println!(
            "WARNING: the machine was {:.0}% busy with other work just before timing: figures will be slow and noisy",
            busy * 100.0
        );
    }
}

/// Waits (at most 30 s) until the kernel's background work from what came
/// before (namespaces being freed, bridges forgetting hundreds of ports)
/// has died down, so that it does not land in the next subject's figures.
/// Every subject gets the same quiet start.
fn settle() {
    if let Some(busy) = settle_within(Duration::from_secs(30)) {
        println!(
            "WARNING: the machine stayed {:.0}% busy; figures will be noisy",
            busy * 100.0
        );
    }
}

/// Waits like [`settle`], at most `limit`; the busy share when the machine
/// did not get quiet in time.
fn settle_within(limit: Duration) -> Option<f64> {
    let deadline = Instant::now() + limit;
    loop {
        let busy = busy_share(Duration::from_millis(500));
        if busy < 0.10 {
            return None;
        }
        if Instant::now() > deadline {
            return Some(busy);
        }
    }
}

/// How long to wait for a quiet machine before a timing, and once it
/// stayed busy through such a wait.
const LONG_SETTLE: Duration = Duration::from_secs(30);
const SHORT_SETTLE: Duration = Duration::from_secs(2);

/// [`settle`] before each timing; but once the machine stayed busy
/// through a whole wait, later waits are short: that work is not going
/// away, and the subjects, taking turns, share it alike.
#[derive(Default)]
struct Quiet {
    gave_up: Cell<bool>,
}

impl Quiet {
    fn settle(&self) {
        let limit = if self.gave_up.get() {
            SHORT_SETTLE
        } else {
            LONG_SETTLE
        };
        if let Some(busy) = settle_within(limit)
            && !self.gave_up.replace(true)
        {
            println!(
                "WARNING: the machine stayed {:.0}% busy with other work; figures will be noisy \
                 (later waits for quiet are cut to {} s)",
                busy * 100.0,
                SHORT_SETTLE.as_secs()
            );
        }
    }
}

/// The share of CPU time spent busy over `window`, 0 to 1.
fn busy_share(window: Duration) -> f64 {
    let (b0, t0) = cpu_jiffies();
    thread::sleep(window);
    let (b1, t1) = cpu_jiffies();
    if t1 <= t0 {
        return 0.0;
    }
    (b1 - b0) as f64 / (t1 - t0) as f64
}

/// `berth ARGS` on the test host `h`: its output, or an error with the
/// command and what berth said.
fn berth_ok(h: &berth_testkit::TestHost, args: &[&str]) -> Result<String> {
    let r = h.berth(args);
    anyhow::ensure!(r.code == 0, "berth {}: {}", args.join(" "), r.stderr.trim());
    Ok(r.stdout)
}

/// The first line a command prints, or `None` when it cannot run.
fn first_line(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// The version of an installed Debian package.
fn deb_version(package: &str) -> Option<String> {
    first_line("dpkg-query", &["-W", "-f", "${Version}", package]).filter(|v| !v.is_empty())
}

/// Runs `f` on a short-lived thread inside the network namespace pinned at
/// `ns`; the caller never moves. What `f` opens (a socket) stays there.
fn within<T: Send>(ns: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> Result<T> {
    let file = fs::File::open(ns).with_context(|| format!("opening {}", ns.display()))?;
    thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
    .with_context(|| format!("inside {}", ns.display()))
}

/// No single peer process may run longer than this; it is killed then.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cmd` inside the namespace pinned at `ns` with `stdin` as its
/// input, and times it from spawn to exit, as a runtime that execs a
/// plugin sees it. Fails with what it printed when it fails. It is spawned
/// from a thread that entered `ns` ([`within`]), not by a `pre_exec` step
/// after a fork: a fork of this whole process (its threads, its memory)
/// would be timed as the command's, where a runtime's `posix_spawn` (and
/// std's without `pre_exec`) is a vfork.
fn timed_in(ns: &Path, cmd: &mut Command, stdin: &str, what: &str) -> Result<(Duration, String)> {
    berth_testkit::tie_to_root(cmd, ns);
    within(ns, || {
        timed(cmd, stdin, what).map_err(|e| io::Error::other(format!("{e:#}")))
    })
}

/// Runs `cmd` with `stdin` as its input and times it from spawn to exit.
/// Fails with what it printed when it fails.
fn timed(cmd: &mut Command, stdin: &str, what: &str) -> Result<(Duration, String)> {
    berth_testkit::cleanup::checkpoint();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    // A watchdog ends a process that hangs, so every loop stays bounded.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if wait.recv_timeout(PROCESS_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits before reading its input shows up below.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output();
    let elapsed = t.elapsed();
    let _ = done.send(());
    let _ = watchdog.join();
    let out = out.with_context(|| format!("waiting for {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((elapsed, stdout))
}

/// Timings of one operation, in the order they were taken.
#[derive(Clone, Debug, Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// The middle value, or the mean of the two middle ones.
    fn median(&self) -> Option<Duration> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n.is_multiple_of(2) => Some((v[n / 2 - 1] + v[n / 2]) / 2),
            _ => Some(v[n / 2]),
        }
    }

    /// The 90th percentile, nearest rank.
    fn p90(&self) -> Option<Duration> {
        self.percentile(90)
    }

    /// The 99th percentile, nearest rank.
    fn p99(&self) -> Option<Duration> {
        self.percentile(99)
    }

    /// The `p`th percentile (1 to 100), nearest rank.
    fn percentile(&self, p: usize) -> Option<Duration> {
        let v = self.sorted();
        let rank = (v.len() * p).div_ceil(100);
        v.get(rank.max(1) - 1).copied()
    }
}

/// Prints a table: columns padded to their widest cell, joined by ` | `.
fn print_table(header: &[String], body: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header));
    for r in body {
        println!("{}", line(r));
    }
}

/// `a / b`, when both are there.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

/// A duration in seconds, when there is one.
fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// How much slower each peer with a figure is than berth: "peer ÷ berth:
/// netavark 18.4×, CNI 14.0×"; empty when there is nothing to compare.
fn peer_ratios(berth: Option<Duration>, peers: &[(&str, Option<Duration>)]) -> String {
    let parts: Vec<String> = peers
        .iter()
        .filter_map(|(label, d)| Some(format!("{label} {}", times(Some(ratio(secs(*d), secs(berth))?)))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("peer ÷ berth: {}", parts.join(", "))
    }
}

/// A ratio as "2.5×", or "—".
fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |x| format!("{x:.1}×"))
}

/// Milliseconds with two decimals below 10 ms, one above.
fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.1} ms")
    }
}

/// Microseconds below 1 ms, else as [`ms`].
fn us(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        ms(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: &[u64]) -> Samples {
        Samples(ms.iter().map(|m| Duration::from_millis(*m)).collect())
    }

    #[test]
    fn medians_and_p90() {
        assert_eq!(samples(&[3, 1, 2]).median(), Some(Duration::from_millis(2)));
        assert_eq!(samples(&[4, 1, 2, 3]).median(), Some(Duration::from_micros(2500)));
        let s = samples(&(1..=10).collect::<Vec<_>>());
        assert_eq!(s.p90(), Some(Duration::from_millis(9)));
        let s = samples(&(1..=200).collect::<Vec<_>>());
        assert_eq!(s.p99(), Some(Duration::from_millis(198)));
        assert_eq!(samples(&[5]).p99(), Some(Duration::from_millis(5)));
        assert_eq!(Samples::default().median(), None);
    }

    #[test]
    fn ratios_name_each_peer_with_a_figure() {
        let d = |m: u64| Some(Duration::from_millis(m));
        assert_eq!(
            peer_ratios(d(2), &[("netavark", d(40)), ("CNI", None), ("Docker", d(3))]),
            "peer ÷ berth: netavark 20.0×, Docker 1.5×"
        );
        assert_eq!(peer_ratios(None, &[("netavark", d(40))]), "");
    }

    #[test]
    fn one_bench_has_a_summary_of_its_own() {
        let all: Vec<&str> = BENCHES.iter().map(|(n, _)| *n).collect();
        assert_eq!(summary_file(&all), "summary.md");
        assert_eq!(summary_file(&["ports"]), "summary-ports.md");
        assert_eq!(command(&all, true, &[]), "cargo xtask bench --full");
        let opts = ["--containers".to_owned(), "30".to_owned()];
        assert_eq!(
            command(&["ports"], false, &opts),
            "cargo xtask bench ports --containers 30"
        );
    }

    #[test]
    fn milliseconds_keep_two_figures() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(ms(Duration::from_micros(34_567)), "34.6 ms");
        assert_eq!(us(Duration::from_nanos(78_900)), "78 µs");
        assert_eq!(us(Duration::from_micros(1234)), "1.23 ms");
    }
}
