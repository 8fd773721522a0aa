//! `cargo xtask bench attach`: attach a fresh sandbox to a bridge network
//! (an address, a default route via the gateway, NAT out), then detach it;
//! again and again while 1, 100 and 500 other sandboxes are attached.
//!
//! Subjects, each in a throwaway host namespace of its own:
//! - berth through its API (connect/disconnect of a created container whose
//!   sandbox is on no network) and through its CLI (`berth network
//!   connect`, the whole process timed);
//! - netavark 1.4 (`setup`/`teardown`, iptables);
//! - the CNI `bridge` plugin with `host-local` (`ADD`/`DEL`).
//!
//! The others are brought up in parallel (untimed); the timed loops then
//! run one subject at a time. Every loop is bounded in count and in time,
//! and unless `--full`, each peer's filling and timing together get
//! [`PEER_BUDGET`]: a peer that runs out stops where it got to, and the
//! report says how far. The medians are also drawn, against the number of
//! others, in `target/bench/attach.svg` (and detach in `attach-detach.svg`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::TestHost;
use serde_json::{Value, json};

use super::attacher::Subject;
use super::chart::{Chart, Series};
use super::cni::{self, Cni};
use super::netavark::{self, Netavark};
use super::{Line, Quiet, Samples, Session, Verdict, http, ms};

const LEVELS: [usize; 3] = [1, 100, 500];
const ITERATIONS: usize = 50;
/// Untimed attach/detach rounds before the timed ones (the first one also
/// checks that the attach did its work).
const WARMUP: usize = 5;
const PEER_WARMUP: usize = 3;
/// Time bound of one subject's timed loop at one level.
const LOOP_BUDGET: Duration = Duration::from_secs(20);
/// Time bound of bringing one subject's others up to the next level.
const FILL_BUDGET: Duration = Duration::from_secs(90);
/// Unless `--full`, all of one peer's filling and timing: a peer slower
/// than that stops where it got to (the default run stays within 5
/// minutes here).
const PEER_BUDGET: Duration = Duration::from_secs(90);

/// Lines of the daemon's log shown with a berth error.
const LOG_TAIL: usize = 30;

/// The issue's targets.
const API_ATTACH_TARGET: Duration = Duration::from_millis(3);
const CLI_CONNECT_TARGET: Duration = Duration::from_millis(10);
/// Issue 16's: a detach as fast as an attach.
const API_DETACH_TARGET: Duration = Duration::from_millis(3);
const SCALING_TARGET: f64 = 1.3;

/// berth in a [`TestHost`], with networks `bench` (the one measured) and
/// `scratch` (which gave the probe its sandbox).
struct Berth {
    host: TestHost,
    probe: PathBuf,
}

impl Berth {
    fn new(bin: &Path) -> Result<Self> {
        let host = TestHost::new(bin);
        for (name, subnet) in [("bench", "10.87.0.0/16"), ("scratch", "10.86.0.0/24")] {
            let r = host.berth(&["network", "create", "--subnet", subnet, name]);
            ensure!(r.code == 0, "berth network create {name}: {}", r.stderr.trim());
        }
        let probe = probe(&host.socket)?;
        Ok(Self { host, probe })
    }

    /// Prints the end of the daemon's log when `r` is an error: the log
    /// goes with the test host.
    fn explain<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            let log = self.host.daemon_log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("berth daemon's log, last {LOG_TAIL} lines:");
            for l in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                eprintln!("  {l}");
            }
        }
        r
    }

    /// `berth network connect bench probe`, the whole process timed.
    fn cli_connect(&self) -> Result<Duration> {
        let mut cmd = self.host.client_cmd(&["network", "connect", "bench", "probe"]);
        cmd.stdin(Stdio::null());
        Ok(super::timed(&mut cmd, "", "berth network connect bench probe")?.0)
    }
}

pub(super) fn timed_post(socket: &Path, path: &str, body: &str) -> Result<Duration> {
    let t = Instant::now();
    http::post(socket, path, body, 200)?;
    Ok(t.elapsed())
}

impl Subject for Berth {
    fn add_other(&mut self, i: usize) -> Result<()> {
        let body = json!({ "Name": format!("o{i}"), "Cmd": ["sleep", "1"], "Network": "bench" });
        http::post(&self.host.socket, "/containers/create", &body.to_string(), 201).map(drop)
    }

    fn attach(&mut self) -> Result<Duration> {
        timed_post(
            &self.host.socket,
            "/networks/bench/connect",
            r#"{"Container":"probe"}"#,
        )
    }

    fn detach(&mut self) -> Result<Duration> {
        timed_post(
            &self.host.socket,
            "/networks/bench/disconnect",
            r#"{"Container":"probe"}"#,
        )
    }

    fn host_ns(&self) -> &Path {
        &self.host.ns
    }

    fn probe_ns(&self) -> &Path {
        &self.probe
    }
}

/// berth driven by its CLI: connect with `berth network connect` (timed),
/// disconnect through the API.
struct BerthCli<'a>(&'a mut Berth);

impl Subject for BerthCli<'_> {
    fn add_other(&mut self, i: usize) -> Result<()> {
        self.0.add_other(i)
    }

    fn attach(&mut self) -> Result<Duration> {
        self.0.cli_connect()
    }

    fn detach(&mut self) -> Result<Duration> {
        self.0.detach()
    }

    fn host_ns(&self) -> &Path {
        self.0.host_ns()
    }

    fn probe_ns(&self) -> &Path {
        self.0.probe_ns()
    }
}

/// A peer and what became of it.
struct Peer {
    /// Its name in the table.
    label: &'static str,
    /// Its words for attach and detach.
    verbs: [&'static str; 2],
    subject: Option<Box<dyn Subject>>,
    /// How many others it has attached.
    others: usize,
    /// Why it has no figures, or no more.
    trouble: Option<String>,
    /// What is left of its budget; `None` without one (`--full`).
    left: Option<Duration>,
    /// The whole budget, for the report.
    budget: Duration,
    /// How far it got when its budget ran out ("52 of 100 others").
    stopped_at: Option<String>,
}

impl Peer {
    fn new(
        label: &'static str,
        verbs: [&'static str; 2],
        missing: Option<String>,
        make: impl FnOnce() -> Result<Box<dyn Subject>>,
    ) -> Self {
        let (subject, trouble) = match missing {
            Some(why) => (None, Some(why)),
            None => match make() {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("FAILED to set up: {e:#}"))),
            },
        };
        if let Some(t) = &trouble {
            eprintln!("{label}: {t}");
        }
        Self {
            label,
            verbs,
            subject,
            others: 0,
            trouble,
            left: None,
            budget: PEER_BUDGET,
            stopped_at: None,
        }
    }

    /// `bound`, or what is left of the budget when that is less.
    fn bound(&self, bound: Duration) -> Duration {
        self.left.map_or(bound, |l| l.min(bound))
    }

    /// Takes `spent` off the budget.
    fn spend(&mut self, spent: Duration) {
        if let Some(l) = &mut self.left {
            *l = l.saturating_sub(spent);
        }
    }

    /// Whether the budget, not the bench's own bound, was the limit.
    fn out_of_budget(&self) -> bool {
        self.left.is_some_and(|l| l <= FILL_BUDGET)
    }

    /// Stops this peer where it got to, for want of budget; says so in
    /// the summary.
    fn stop(&mut self, how_far: String, session: &mut Session) {
        let why = format!(
            "stopped at {how_far} after its {} s budget",
            self.budget.as_secs()
        );
        session.note(format!("{}: {why}", self.label));
        self.stopped_at = Some(how_far);
        self.subject = None;
        self.trouble = Some(why);
    }

    /// Gives up on this peer, loudly; its namespaces go now.
    fn fail(&mut self, why: String) {
        eprintln!("{}: {why}", self.label);
        self.subject = None;
        self.trouble = Some(why);
    }
}

/// Timings of one subject at one level.
#[derive(Default)]
pub(super) struct Cell {
    pub(super) attach: Samples,
    pub(super) detach: Samples,
    /// The loop hit its time bound before its count.
    pub(super) cut: bool,
}

struct Row {
    others: usize,
    api: Cell,
    cli: Cell,
    peers: Vec<Option<Cell>>,
}

struct Opts {
    iterations: usize,
    levels: Vec<usize>,
    /// Each peer's budget instead of [`PEER_BUDGET`].
    peer_seconds: Option<u64>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            iterations: ITERATIONS,
            levels: LEVELS.to_vec(),
            peer_seconds: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--iterations" => {
                    let v = value()?;
                    o.iterations = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--iterations {v:?}: expected a count above 0"))?;
                }
                "--levels" => {
                    let v = value()?;
                    o.levels = v
                        .split(',')
                        .map(|l| l.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .ok()
                        .filter(|l: &Vec<usize>| !l.is_empty() && l.iter().all(|n| *n <= 1000))
                        .with_context(|| {
                            format!("--levels {v:?}: expected counts up to 1000, e.g. 1,100,500")
                        })?;
                    o.levels.sort_unstable();
                    o.levels.dedup();
                }
                "--peer-seconds" => {
                    let v = value()?;
                    o.peer_seconds = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=3600).contains(n))
                            .with_context(|| format!("--peer-seconds {v:?}: expected 1 to 3600"))?,
                    );
                }
                _ => bail!(
                    "unknown option {a:?} (accepted: --iterations N, --levels 1,100,500, --peer-seconds N)"
                ),
            }
        }
        Ok(o)
    }
}

/// Checks once that an attach did the work: eth0 with an IPv4 address and
/// a default route in the probe, a masquerade rule in the host.
fn check_attached(s: &dyn Subject) -> Result<()> {
    let run = |ns: &Path, args: &[&str]| berth_testkit::run_in(ns, args[0], &args[1..]).stdout;
    let addr = run(s.probe_ns(), &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    ensure!(
        addr.contains(" inet "),
        "after attach, eth0 in the probe has no IPv4 address: {addr:?}"
    );
    let route = run(s.probe_ns(), &["ip", "-4", "route", "show", "default"]);
    ensure!(
        route.contains("default via"),
        "after attach, the probe has no default route: {route:?}"
    );
    let rules = run(s.host_ns(), &["nft", "list", "ruleset"]);
    ensure!(
        rules.to_lowercase().contains("masquerade"),
        "after attach, the host has no masquerade rule"
    );
    Ok(())
}

/// Attaches others `from + 1 ..= to`, within `bound`; how many others
/// there are then (less than `to` when the time ran out).
fn fill(s: &mut dyn Subject, from: usize, to: usize, bound: Duration) -> Result<usize> {
    let deadline = Instant::now() + bound;
    for i in from + 1..=to {
        if Instant::now() > deadline {
            return Ok(i - 1);
        }
        s.add_other(i)
            .with_context(|| format!("attaching other sandbox #{i}"))?;
    }
    Ok(to)
}

/// Warm-up rounds (the first checked when `check`), then up to `n` timed
/// attach/detach rounds within [`LOOP_BUDGET`].
pub(super) fn measure(s: &mut dyn Subject, warmup: usize, n: usize, check: bool) -> Result<Cell> {
    measure_within(s, warmup, n, check, LOOP_BUDGET)
}

/// Like [`measure`], the timed rounds within `bound` (at least one).
fn measure_within(
    s: &mut dyn Subject,
    warmup: usize,
    n: usize,
    check: bool,
    bound: Duration,
) -> Result<Cell> {
    for k in 0..warmup.max(1) {
        s.attach()?;
        if k == 0 && check {
            check_attached(s)?;
        }
        s.detach()?;
    }
    let deadline = Instant::now() + bound;
    let mut c = Cell::default();
    while c.attach.len() < n {
        if c.attach.len() > 0 && Instant::now() > deadline {
            c.cut = true;
            break;
        }
        c.attach.push(s.attach()?);
        c.detach.push(s.detach()?);
    }
    Ok(c)
}

fn join<T>(h: thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn progress(start: Instant, what: &str, c: &Cell) {
    let f = |s: &Samples| s.median().map_or("—".into(), ms);
    eprintln!(
        "[{:>5.1} s]   {what}: {} / {} (medians of {})",
        start.elapsed().as_secs_f64(),
        f(&c.attach),
        f(&c.detach),
        c.attach.len()
    );
}

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let opts = Opts::parse(args)?;
    let start = Instant::now();
    eprintln!("building berth (release) …");
    let bin = crate::build_berth(true)?;
    let built = start.elapsed();
    super::warn_if_busy();

    println!(
        "attach a fresh sandbox to a bridge network (address, default route, NAT), then detach; \
         with {} other sandboxes attached",
        opts.levels
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("berth: {} (release build of this tree)", bin.display());
    let nv_missing = (!Path::new(netavark::BIN).exists()).then(|| {
        format!(
            "NOT INSTALLED ({}): no netavark figures in this run",
            netavark::INSTALL
        )
    });
    let cni_missing = cni::PLUGINS
        .iter()
        .find(|p| !Path::new(cni::DIR).join(p).exists())
        .map(|p| {
            format!(
                "NOT INSTALLED ({}/{p} is missing; {}): no CNI figures in this run",
                cni::DIR,
                cni::INSTALL
            )
        });
    match &nv_missing {
        Some(m) => println!("netavark: {m}"),
        None => println!(
            "netavark: {} at {}, NETAVARK_FW=iptables, static addresses",
            super::first_line(netavark::BIN, &["--version"]).unwrap_or_else(|| "unknown version".into()),
            netavark::BIN
        ),
    }
    match &cni_missing {
        Some(m) => println!("CNI: {m}"),
        None => println!(
            "CNI: bridge + host-local from containernetworking-plugins {} at {}, ipMasq, isGateway",
            super::deb_version("containernetworking-plugins").unwrap_or_else(|| "(version unknown)".into()),
            cni::DIR
        ),
    }

    let mut berth = Berth::new(&bin)?;
    let mut peers = vec![
        Peer::new("netavark", ["setup", "teardown"], nv_missing, || {
            Ok(Box::new(Netavark::new(&bin)?))
        }),
        Peer::new("CNI", ["ADD", "DEL"], cni_missing, || {
            Ok(Box::new(Cni::new(&bin)?))
        }),
    ];
    let budget = opts.peer_seconds.map_or(PEER_BUDGET, Duration::from_secs);
    for p in &mut peers {
        p.left = session.budget(budget);
        p.budget = budget;
    }
    if !session.full {
        println!(
            "each peer's filling and timing get {} s in all (--full: no budget); one that runs out stops where it got to",
            budget.as_secs()
        );
    }
    let quiet = Quiet::default();
    let mut rows: Vec<Row> = Vec::new();
    let mut others = 0;
    for &level in &opts.levels {
        eprintln!(
            "[{:>5.1} s] attaching others up to {level} (untimed, in parallel) …",
            start.elapsed().as_secs_f64()
        );
        let (berth_filled, peers_filled) = thread::scope(|s| {
            let b = s.spawn(|| fill(&mut berth, others, level, FILL_BUDGET));
            let hs: Vec<_> = peers
                .iter_mut()
                .map(|p| {
                    let (from, bound) = (p.others, p.bound(FILL_BUDGET));
                    p.subject.as_mut().map(|sub| {
                        s.spawn(move || {
                            let t = Instant::now();
                            (fill(sub.as_mut(), from, level, bound), t.elapsed())
                        })
                    })
                })
                .collect();
            (join(b), hs.into_iter().map(|h| h.map(join)).collect::<Vec<_>>())
        });
        let reached = berth
            .explain(berth_filled)
            .context("berth: attaching the other sandboxes")?;
        ensure!(
            reached == level,
            "berth: only {reached} of {level} other sandboxes attached within the {} s bound",
            FILL_BUDGET.as_secs()
        );
        others = level;
        for (p, filled) in peers.iter_mut().zip(peers_filled) {
            let Some((filled, took)) = filled else { continue };
            let out_of_budget = p.out_of_budget();
            p.spend(took);
            match filled {
                Ok(n) if n == level => p.others = level,
                Ok(n) if out_of_budget => {
                    p.stop(format!("{n} of {level} others"), session);
                }
                Ok(n) => p.fail(format!(
                    "FAILED at {level} others: only {n} attached within the {} s bound",
                    FILL_BUDGET.as_secs()
                )),
                Err(e) => p.fail(format!("FAILED at {level} others: {e:#}")),
            }
        }

        let check = rows.is_empty();
        eprintln!(
            "[{:>5.1} s] {level} others: timing (attach / detach) …",
            start.elapsed().as_secs_f64()
        );
        quiet.settle();
        let api = measure(&mut berth, WARMUP, opts.iterations, check);
        let api = berth.explain(api).context("berth through the API")?;
        progress(start, "berth API", &api);
        quiet.settle();
        let cli = measure(&mut BerthCli(&mut berth), WARMUP, opts.iterations, false);
        let cli = berth.explain(cli).context("berth through the CLI")?;
        progress(start, "berth CLI connect / API disconnect", &cli);
        let mut cells = Vec::new();
        for p in &mut peers {
            let bound = p.bound(LOOP_BUDGET);
            let Some(sub) = p.subject.as_mut() else {
                cells.push(None);
                continue;
            };
            quiet.settle();
            let t = Instant::now();
            let measured = measure_within(sub.as_mut(), PEER_WARMUP, opts.iterations, check, bound);
            p.spend(t.elapsed());
            match measured {
                Ok(c) => {
                    progress(start, p.label, &c);
                    cells.push(Some(c));
                    if p.left.is_some_and(|l| l.is_zero()) && Some(&level) != opts.levels.last() {
                        p.stop(format!("{level} others"), session);
                    }
                }
                Err(e) => {
                    p.fail(format!("FAILED at {level} others: {e:#}"));
                    cells.push(None);
                }
            }
        }
        rows.push(Row {
            others: level,
            api,
            cli,
            peers: cells,
        });
    }
    let benched = start.elapsed();
    // Tear everything down before reporting, and time that too.
    for p in &mut peers {
        p.subject = None;
    }
    drop(berth);

    println!();
    report(&rows, &peers, opts.iterations);
    summarize(&rows, &peers, session);
    draw(&rows, &peers, session)?;
    println!(
        "bench took {:.0} s ({:.0} s building berth, {:.0} s benching, {:.1} s cleaning up)",
        start.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (benched - built).as_secs_f64(),
        (start.elapsed() - benched).as_secs_f64()
    );
    Ok(())
}

fn median(s: &Samples) -> String {
    s.median().map_or_else(|| "—".into(), ms)
}

fn p90(s: &Samples) -> String {
    s.p90().map_or_else(|| "—".into(), ms)
}

/// `a / b` as a ratio, when both are there.
fn ratio(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (!b.is_zero()).then(|| a.as_secs_f64() / b.as_secs_f64())
}

fn report(rows: &[Row], peers: &[Peer], n: usize) {
    let mut header: Vec<String> = [
        "others",
        "berth API attach",
        "berth API detach",
        "berth CLI connect",
    ]
    .map(String::from)
    .to_vec();
    for p in peers {
        header.push(format!("{} {}", p.label, p.verbs[0]));
        header.push(format!("{} {}", p.label, p.verbs[1]));
    }
    let mut cut = false;
    let mark = |c: &Cell, s: String, cut: &mut bool| {
        if c.cut {
            *cut = true;
            format!("{s}*")
        } else {
            s
        }
    };
    let timings = |stat: fn(&Samples) -> String, cut: &mut bool| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| {
                let mut v = vec![
                    r.others.to_string(),
                    mark(&r.api, stat(&r.api.attach), cut),
                    mark(&r.api, stat(&r.api.detach), cut),
                    mark(&r.cli, stat(&r.cli.attach), cut),
                ];
                for c in &r.peers {
                    match c {
                        Some(c) => {
                            v.push(mark(c, stat(&c.attach), cut));
                            v.push(mark(c, stat(&c.detach), cut));
                        }
                        None => v.extend(["—".to_owned(), "—".to_owned()]),
                    }
                }
                v
            })
            .collect()
    };

    println!(
        "attach a fresh sandbox to a bridge network (address, default route, NAT), then detach; medians of {n}"
    );
    let mut body = timings(median, &mut cut);
    let mut mheader = header.clone();
    for p in peers {
        mheader.push(format!("{}/berth", p.label));
    }
    for (r, line) in rows.iter().zip(&mut body) {
        for c in &r.peers {
            let cell = c.as_ref().map(|c| {
                let a = ratio(c.attach.median(), r.api.attach.median());
                let d = ratio(c.detach.median(), r.api.detach.median());
                let f = |x: Option<f64>| x.map_or("—".into(), |x| format!("{x:.1}×"));
                format!("{} / {}", f(a), f(d))
            });
            line.push(cell.unwrap_or_else(|| "—".into()));
        }
    }
    super::print_table(&mheader, &body);
    println!(
        "peer/berth: the peer's attach ÷ berth's API attach / the peer's detach ÷ berth's API detach \
         (times slower than berth)"
    );
    println!();
    println!("p90 of the same runs");
    super::print_table(&header, &timings(p90, &mut cut));
    if cut {
        println!(
            "* the loop hit its {} s time bound before {n} rounds; see the progress lines for the count",
            LOOP_BUDGET.as_secs()
        );
    }
    for p in peers {
        if let Some(t) = &p.trouble {
            println!("{}: {t}", p.label);
        }
    }

    println!();
    println!("targets (from the issue):");
    let levels = rows
        .iter()
        .map(|r| r.others.to_string())
        .collect::<Vec<_>>()
        .join(" / ");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let at_every_level = |what: &str, target: Duration, pick: fn(&Row) -> Option<Duration>| {
        let figures: Vec<Option<Duration>> = rows.iter().map(pick).collect();
        let ok = figures.iter().all(|f| f.is_some_and(|d| d <= target));
        println!(
            "  {what} ≤ {}: {} at {levels} others: {}",
            ms(target),
            figures
                .iter()
                .map(|f| f.map_or("—".into(), ms))
                .collect::<Vec<_>>()
                .join(" / "),
            verdict(ok)
        );
    };
    at_every_level("median attach through the API", API_ATTACH_TARGET, |r| {
        r.api.attach.median()
    });
    at_every_level(
        "median `berth network connect` end to end",
        CLI_CONNECT_TARGET,
        |r| r.cli.attach.median(),
    );
    match (rows.first(), rows.last()) {
        (Some(lo), Some(hi)) if rows.len() > 1 => {
            let x = ratio(hi.api.attach.median(), lo.api.attach.median());
            println!(
                "  attach with {} others ≤ {SCALING_TARGET}× attach with {}: {}: {}",
                hi.others,
                lo.others,
                x.map_or("—".into(), |x| format!("{x:.2}×")),
                verdict(x.is_some_and(|x| x <= SCALING_TARGET))
            );
        }
        _ => println!("  attach scaling ≤ {SCALING_TARGET}×: not measured (needs two levels)"),
    }
}

/// The headline figures for the summary: attach and detach through the
/// API at each level next to the peers, `berth network connect`, and how
/// attach grows from the fewest to the most others.
fn summarize(rows: &[Row], peers: &[Peer], session: &mut Session) {
    let opt = |d: Option<Duration>| d.map_or_else(|| "—".into(), ms);
    type Pick = fn(&Cell) -> &Samples;
    let ops: [(&str, Pick, Duration, &str); 2] = [
        ("attach", |c| &c.attach, API_ATTACH_TARGET, ""),
        // Issue 16's target, on the same runs.
        ("detach", |c| &c.detach, API_DETACH_TARGET, " (issue 16)"),
    ];
    for r in rows {
        for (what, pick, target, whose) in ops {
            let berth = pick(&r.api).median();
            let figures: Vec<(&str, Option<Duration>)> = peers
                .iter()
                .zip(&r.peers)
                .map(|(p, c)| (p.label, c.as_ref().and_then(|c| pick(c).median())))
                .collect();
            let mut line = Line::new(
                format!("{what} through the API, {}, median", others(r.others)),
                opt(berth),
            );
            for ((label, d), p) in figures.iter().zip(peers) {
                line = line.peer(label, peer_cell(p, r.others, opt(*d)));
            }
            session.add(line.ratio(super::peer_ratios(berth, &figures)).target(
                format!("≤ {}{whose}", ms(target)),
                Verdict::of(berth.map(|m| m <= target)),
            ));
        }
        let cli = r.cli.attach.median();
        session.add(
            Line::new(
                format!("`berth network connect` end to end, {}, median", others(r.others)),
                opt(cli),
            )
            .target(
                format!("≤ {}", ms(CLI_CONNECT_TARGET)),
                Verdict::of(cli.map(|m| m <= CLI_CONNECT_TARGET)),
            ),
        );
    }
    if let (Some(lo), Some(hi)) = (rows.first(), rows.last())
        && rows.len() > 1
    {
        let x = |a: Option<Duration>, b: Option<Duration>| {
            ratio(a, b).map_or("—".into(), |x| format!("{x:.2}×"))
        };
        let b = ratio(hi.api.attach.median(), lo.api.attach.median());
        let mut line = Line::new(
            format!("attach with {} ÷ with {}", others(hi.others), others(lo.others)),
            x(hi.api.attach.median(), lo.api.attach.median()),
        );
        for (i, p) in peers.iter().enumerate() {
            let m = |r: &Row| r.peers[i].as_ref().and_then(|c| c.attach.median());
            line = line.peer(p.label, peer_cell(p, hi.others, x(m(hi), m(lo))));
        }
        session.add(line.target(
            format!("≤ {SCALING_TARGET}×"),
            Verdict::of(b.map(|b| b <= SCALING_TARGET)),
        ));
    }
}

/// A peer's figure at `others`, or where it stopped when its budget ran
/// out before.
fn peer_cell(p: &Peer, others: usize, figure: String) -> String {
    match &p.stopped_at {
        Some(at) if others > p.others => format!("stopped at {at}"),
        _ => figure,
    }
}

/// "1 other", "500 others".
fn others(n: usize) -> String {
    if n == 1 {
        "1 other".into()
    } else {
        format!("{n} others")
    }
}

/// Draws the medians against the number of others: attach in
/// `attach.svg`, detach in `attach-detach.svg`; berth and every peer.
fn draw(rows: &[Row], peers: &[Peer], session: &mut Session) -> Result<()> {
    type Pick = fn(&Cell) -> &Samples;
    let charts: [(&str, &str, Pick, usize); 2] = [
        ("attach", "attach", |c| &c.attach, 0),
        ("attach-detach", "detach", |c| &c.detach, 1),
    ];
    let n = rows.iter().map(|r| r.api.attach.len()).max().unwrap_or(0);
    for (file, what, pick, verb) in charts {
        let curve = |cell: &dyn Fn(&Row) -> Option<&Cell>| -> Vec<(f64, f64)> {
            rows.iter()
                .filter_map(|r| {
                    let m = pick(cell(r)?).median()?;
                    Some((r.others as f64, m.as_secs_f64() * 1e3))
                })
                .collect()
        };
        let mut series = vec![Series {
            label: format!("berth, API {what}"),
            points: curve(&|r| Some(&r.api)),
        }];
        if verb == 0 {
            series.push(Series {
                label: "berth, CLI connect".into(),
                points: curve(&|r| Some(&r.cli)),
            });
        }
        for (i, p) in peers.iter().enumerate() {
            let stopped = p
                .stopped_at
                .as_ref()
                .map_or_else(String::new, |at| format!(", stopped at {at}"));
            series.push(Series {
                label: format!("{} {}{stopped}", p.label, p.verbs[verb]),
                points: curve(&|r| r.peers[i].as_ref()),
            });
        }
        series.retain(|s| !s.points.is_empty());
        let chart = Chart {
            title: format!("{what} on a bridge network (median of up to {n})"),
            x_label: "sandboxes already attached to the network".into(),
            y_label: format!("median {what} (ms)"),
            series,
        };
        session.chart(file, &chart.svg())?;
    }
    Ok(())
}

/// Creates the container `probe` on the network `scratch` and takes it off
/// again: a created container keeps its sandbox, so it is then a sandbox on
/// no network, ready to be attached again and again. Returns its path.
pub(super) fn probe(socket: &Path) -> Result<PathBuf> {
    let created = http::post(
        socket,
        "/containers/create",
        &json!({ "Name": "probe", "Cmd": ["sleep", "1"], "Network": "scratch" }).to_string(),
        201,
    )?;
    let created: Value = serde_json::from_str(&created).context("parsing /containers/create")?;
    let probe = PathBuf::from(
        created["SandboxKey"]
            .as_str()
            .with_context(|| format!("no SandboxKey in {created}"))?,
    );
    http::post(
        socket,
        "/networks/scratch/disconnect",
        &json!({ "Container": "probe" }).to_string(),
        200,
    )?;
    Ok(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_the_issue() {
        let o = Opts::parse(&[]).unwrap();
        assert_eq!((o.iterations, o.levels), (50, vec![1, 100, 500]));
    }

    #[test]
    fn options_parse_and_sort_levels() {
        let o = Opts::parse(&args("--levels 100,1,100 --iterations 5")).unwrap();
        assert_eq!((o.iterations, o.levels), (5, vec![1, 100]));
        let o = Opts::parse(&args("--peer-seconds 3")).unwrap();
        assert_eq!(o.peer_seconds, Some(3));
    }

    #[test]
    fn a_peer_budget_bounds_each_step_and_runs_out() {
        let mut p = Peer::new("netavark", ["setup", "teardown"], Some("absent".into()), || {
            bail!("not made")
        });
        assert_eq!(
            p.bound(LOOP_BUDGET),
            LOOP_BUDGET,
            "no budget: the bench's own bound"
        );
        p.left = Some(PEER_BUDGET);
        assert_eq!(p.bound(FILL_BUDGET), FILL_BUDGET);
        assert!(
            p.out_of_budget(),
            "the budget is no more than the fill's own bound"
        );
        p.left = Some(PEER_BUDGET + FILL_BUDGET);
        assert!(!p.out_of_budget());
        p.left = Some(PEER_BUDGET);
        p.spend(Duration::from_secs(80));
        assert_eq!(p.bound(FILL_BUDGET), Duration::from_secs(10));
        assert!(p.out_of_budget());
        p.spend(Duration::from_secs(80));
        assert_eq!(p.left, Some(Duration::ZERO));
    }

    #[test]
    fn a_stopped_peer_says_where_beyond_what_it_reached() {
        let mut p = Peer::new("CNI", ["ADD", "DEL"], Some("absent".into()), || bail!("not made"));
        p.others = 100;
        assert_eq!(peer_cell(&p, 500, "—".into()), "—");
        p.stopped_at = Some("340 of 500 others".into());
        assert_eq!(peer_cell(&p, 100, "40.0 ms".into()), "40.0 ms");
        assert_eq!(peer_cell(&p, 500, "—".into()), "stopped at 340 of 500 others");
    }

    #[test]
    fn one_other_is_singular() {
        assert_eq!((others(1), others(500)), ("1 other".into(), "500 others".into()));
    }

    #[test]
    fn bad_options_are_named() {
        for (a, want) in [
            ("--iterations 0", "--iterations"),
            ("--levels x", "--levels"),
            ("--levels", "needs a value"),
            ("--peer-seconds 0", "--peer-seconds"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a)).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }
}
