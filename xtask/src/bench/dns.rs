//! `cargo xtask bench dns`: the embedded resolver as a container sees it.
//!
//! For each subject, from inside a container's network namespace (a
//! socket opened there by a short-lived thread):
//! - **local name**: sequential UDP queries (send, wait for the answer,
//!   next) for another container's name; queries per second, median and
//!   p99 latency; then the same from [`PARALLEL_CLIENTS`] threads at once;
//! - **forwarded name**: the same for a name only the bench's own upstream
//!   server knows ([`Upstream`], run inside the subject's namespaces; no
//!   query ever leaves them);
//! - **run → resolvable**: from the start of the command that creates a
//!   container until its name answers, polled every 250 µs by a thread
//!   that started before the command. Before the container exists its name
//!   is unknown and may go upstream (aardvark-dns answers single-label
//!   names itself), so this runs only where forwarding was seen to reach
//!   the bench's upstream.
//!
//! No query leaves the test's namespaces: berth and aardvark-dns forward
//! from host namespaces of their own, which have no route out, to an
//! upstream there; Docker's asking container has no default route, and
//! its `--dns` is the bench's upstream on its own network. Each subject
//! checks this ([`Subject::forwarding`]) before any unknown name is sent.
//!
//! Subjects, all set up first, then asked in turn (each loop split into
//! rounds that the subjects take one after the other, so that other work
//! on the machine lands on all of them alike): berth (release build, in a
//! [`TestHost`]), aardvark-dns started by netavark 1.4 (`aardvark.rs`),
//! Docker's embedded DNS (`docker.rs`, a dockerd of the bench's own in a
//! network namespace of its own).

mod query;
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::TestHost;
use berth_testkit::dns::Upstream;
use serde_json::Value;

use self::query::{Resolvable, Sequential, parallel, resolvable, sequential};
use super::aardvark::{self, Aardvark};
use super::docker::{self, Docker};
use super::netavark;
use super::resolver::{CLIENT, FORWARDED, FORWARDED_IP, Subject, TARGET, socket_in, upstream};
use super::{Quiet, Session, us};

/// Rounds of each sequential phase, and untimed queries at the start of
/// every round after the first.
const ROUNDS: usize = 5;
const REWARM: usize = 100;
/// Timed sequential queries for the local name (the forwarded name gets a
/// quarter of them).
const QUERIES: usize = 20_000;
/// Untimed queries before the timed ones.
const WARMUP: usize = 1_000;
/// Containers created for the run → resolvable figure.
const RUNS: usize = 20;
/// Client threads of the parallel figure, and how long they ask.
const PARALLEL_CLIENTS: usize = 4;
const PARALLEL_TIME: Duration = Duration::from_secs(2);
/// Time bound of one sequential loop.
const LOOP_BUDGET: Duration = Duration::from_secs(20);
/// Unless `--full`: the same, short enough that the default run stays
/// within 5 minutes here however slow a subject is.
const SHORT_LOOP_BUDGET: Duration = Duration::from_secs(6);
/// Time bound of all the runs of one subject.
const RUNS_BUDGET: Duration = Duration::from_secs(60);
/// Unless `--full`: the same, for the default run.
const SHORT_RUNS_BUDGET: Duration = Duration::from_secs(30);
/// How long one query may go unanswered before it counts as lost.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a poll waits for a name to appear.
const RESOLVABLE_WAIT: Duration = Duration::from_secs(5);
/// A run slower than this gets a progress line of its own.
const SLOW: Duration = Duration::from_secs(1);

/// The issue's targets.
const LOCAL_MEDIAN_TARGET: Duration = Duration::from_micros(100);
const RATE_TARGET: f64 = 5.0;
/// Issue 16: a new container's name resolvable within 3 ms of the start
/// of `run` (it was 5 ms before).
const RESOLVABLE_TARGET: Duration = Duration::from_millis(3);

/// Lines of the daemon's log shown with a berth error.
const LOG_TAIL: usize = 30;

/// What one subject gave; an `Err` says why a figure is missing.
struct Figures {
    local: Result<Sequential, String>,
    parallel: Result<f64, String>,
    forwarded: Result<Sequential, String>,
    resolvable: Result<Resolvable, String>,
}

impl Figures {
    fn none(why: &str) -> Self {
        Self {
            local: Err(why.into()),
            parallel: Err(why.into()),
            forwarded: Err(why.into()),
            resolvable: Err(why.into()),
        }
    }
}

/// A row of the report: a subject and what became of it.
struct Row {
    label: String,
    /// What its "run" is.
    run_is: &'static str,
    figures: Figures,
    /// Why it has no figures at all (not installed, failed to start).
    trouble: Option<String>,
    /// What its cleanup found, for the report.
    notes: Vec<String>,
}

/// A subject in this run: its row, and the subject while it is up.
struct Entry {
    row: Row,
    subject: Option<Box<dyn Subject>>,
}

impl Entry {
    fn up(label: &str, run_is: &'static str, s: Box<dyn Subject>) -> Self {
        Self {
            row: Row {
                label: label.to_owned(),
                run_is,
                figures: Figures::none("not measured"),
                trouble: None,
                notes: Vec::new(),
            },
            subject: Some(s),
        }
    }

    fn absent(label: &str, run_is: &'static str, why: String) -> Self {
        eprintln!("{label}: {why}");
        Self {
            row: Row {
                label: label.to_owned(),
                run_is,
                figures: Figures::none(&why),
                trouble: Some(why),
                notes: Vec::new(),
            },
            subject: None,
        }
    }

    /// Whether it can be asked, or why not.
    fn ready(&self) -> Result<(), String> {
        match (&self.subject, &self.row.trouble) {
            (Some(_), _) => Ok(()),
            (None, Some(t)) => Err(t.clone()),
            (None, None) => Err("not set up".into()),
        }
    }
}

/// How many queries [`interleaved`] asks, after how many untimed ones,
/// and the time bound of one subject's round.
#[derive(Clone, Copy)]
struct Size {
    n: usize,
    warmup: usize,
    bound: Duration,
}

/// `n` sequential queries for `name` from every subject that is `ready`,
/// split into [`ROUNDS`] rounds taken in turn, each after [`Quiet::settle`],
/// so that other work on the machine lands on every subject alike.
fn interleaved(
    quiet: &Quiet,
    entries: &[Entry],
    ready: Vec<Result<(), String>>,
    name: &str,
    want: &dyn Fn(&dyn Subject) -> IpAddr,
    size: Size,
) -> Vec<Result<Sequential, String>> {
    let Size { n, warmup, bound } = size;
    let mut out: Vec<Result<Sequential, String>> = ready
        .into_iter()
        .map(|r| r.map(|()| Sequential::default()))
        .collect();
    let mut socks: Vec<Option<UdpSocket>> = entries.iter().map(|_| None).collect();
    for round in 0..ROUNDS {
        let count = n / ROUNDS + usize::from(round < n % ROUNDS);
        for (i, e) in entries.iter().enumerate() {
            let Some(s) = e.subject.as_deref() else { continue };
            if out[i].is_err() {
                continue;
            }
            quiet.settle();
            let sock = match socks[i].take() {
                Some(sock) => Ok(sock),
                None => socket_in(s.client_ns(), s.server(), QUERY_TIMEOUT),
            };
            let warm = if round == 0 { warmup } else { REWARM };
            let got = sock.and_then(|sock| {
                let r = sequential(&sock, name, want(s), warm, count, bound);
                socks[i] = Some(sock);
                r
            });
            match (got, &mut out[i]) {
                (Ok(seq), Ok(acc)) => acc.merge(seq),
                (Err(err), _) => out[i] = Err(format!("FAILED: {err:#}")),
                _ => {}
            }
        }
    }
    out
}

fn seq_line(what: &str, s: &Sequential) -> String {
    format!(
        "{what}: {:.0} q/s, median {}, p99 {} ({} queries)",
        s.rate(),
        opt(s.samples.median(), us),
        opt(s.samples.p99(), us),
        s.samples.len()
    )
}

/// Every phase, for every subject that is up.
fn measure(entries: &mut [Entry], opts: &Opts, start: Instant) {
    let progress = |label: &str, what: &str| {
        eprintln!("[{:>5.1} s]   {label}: {what}", start.elapsed().as_secs_f64());
    };
    let quiet = Quiet::default();
    eprintln!(
        "[{:>5.1} s] local name, {ROUNDS} rounds taken in turn …",
        start.elapsed().as_secs_f64()
    );
    let ready = entries.iter().map(Entry::ready).collect();
    let local = interleaved(
        &quiet,
        entries,
        ready,
        TARGET,
        &|s| s.target_ip(),
        Size {
            n: opts.queries,
            warmup: WARMUP,
            bound: opts.loop_budget,
        },
    );
    for (e, l) in entries.iter_mut().zip(local) {
        if let Ok(l) = &l {
            progress(&e.row.label, &seq_line("local name", l));
        }
        e.row.figures.local = l;
    }

    for e in entries.iter_mut() {
        let Some(s) = e.subject.as_deref() else { continue };
        quiet.settle();
        let p = parallel(s.client_ns(), s.server(), TARGET).map_err(|err| format!("FAILED: {err:#}"));
        if let Ok(p) = &p {
            progress(
                &e.row.label,
                &format!("local name, {PARALLEL_CLIENTS} clients: {p:.0} q/s"),
            );
        }
        e.row.figures.parallel = p;
    }

    eprintln!(
        "[{:>5.1} s] forwarded name, {ROUNDS} rounds taken in turn …",
        start.elapsed().as_secs_f64()
    );
    let ready: Vec<Result<(), String>> = entries
        .iter()
        .map(|e| match e.subject.as_deref() {
            Some(s) => s.forwarding().map_err(|why| format!("n/a ({why})")),
            None => e.ready(),
        })
        .collect();
    let seen: Vec<usize> = entries
        .iter()
        .map(|e| e.subject.as_deref().map_or(0, |s| s.upstream_seen()))
        .collect();
    let n = (opts.queries / 4).max(100);
    let forwarded = interleaved(
        &quiet,
        entries,
        ready,
        FORWARDED,
        &|_| IpAddr::V4(FORWARDED_IP),
        Size {
            n,
            warmup: WARMUP / 10,
            bound: opts.loop_budget,
        },
    );
    for ((e, f), seen) in entries.iter_mut().zip(forwarded).zip(seen) {
        // Every answer must have come from the bench's upstream.
        let f = f.and_then(|f| {
            let upstream = e.subject.as_deref().map_or(0, |s| s.upstream_seen()) - seen;
            if upstream < f.samples.len() {
                return Err(format!(
                    "FAILED: {} answers but the bench's upstream saw only {upstream} queries",
                    f.samples.len()
                ));
            }
            Ok(f)
        });
        if let Ok(f) = &f {
            progress(&e.row.label, &seq_line("forwarded name", f));
        }
        e.row.figures.forwarded = f;
    }

    for e in entries.iter_mut() {
        let label = e.row.label.clone();
        let r = match (&e.row.figures.forwarded, e.subject.as_deref_mut()) {
            (_, None) => e.ready().map(|()| Resolvable::default()),
            (Err(why), _) => Err(format!(
                "n/a (a fresh name is unknown until it exists and would go upstream; forwarding: {why})"
            )),
            (Ok(_), Some(_)) if opts.runs == 0 => Err("n/a (--runs 0)".into()),
            (Ok(_), Some(s)) => {
                quiet.settle();
                resolvable(s, opts.runs, opts.runs_budget, &|what| progress(&label, what))
                    .map_err(|err| format!("FAILED: {err:#}"))
            }
        };
        e.row.figures.resolvable = r;
    }
}

fn opt(d: Option<Duration>, f: fn(Duration) -> String) -> String {
    d.map_or_else(|| "—".into(), f)
}

/// berth in a [`TestHost`] whose daemon forwards to the bench's upstream
/// at 127.0.0.53 in the host namespace; network `bench` with [`CLIENT`]
/// and [`TARGET`] on it.
struct Berth {
    // Fields drop in order: the upstream's thread before the namespace.
    upstream: Upstream,
    host: TestHost,
    client: PathBuf,
    target: IpAddr,
}

impl Berth {
    fn new(bin: &Path) -> Result<Self> {
        let mut host = TestHost::without_daemon(bin);
        let conf = host.root.join("host-resolv.conf");
        std::fs::write(&conf, "nameserver 127.0.0.53\n").context("writing the daemon's resolv.conf")?;
        let upstream = upstream(&host.ns, SocketAddr::from(([127, 0, 0, 53], 53)));
        host.start_daemon(&["--resolv-conf", &conf.to_string_lossy()]);
        let mut b = Self {
            upstream,
            host,
            client: PathBuf::new(),
            target: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let r = b.setup();
        b.explain(r)?;
        Ok(b)
    }

    fn setup(&mut self) -> Result<()> {
        self.berth(&["network", "create", "bench"])?;
        for name in [CLIENT, TARGET] {
            self.berth(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "bench",
                "--",
                "sleep",
                "3600",
            ])?;
        }
        let client = self.inspect(CLIENT)?;
        self.client = PathBuf::from(
            client["NetworkSettings"]["SandboxKey"]
                .as_str()
                .filter(|k| !k.is_empty())
                .with_context(|| format!("no SandboxKey in {client}"))?,
        );
        let target = self.inspect(TARGET)?;
        let ip = target["NetworkSettings"]["Networks"]["bench"]["IPAddress"]
            .as_str()
            .unwrap_or_default();
        self.target = ip
            .parse()
            .with_context(|| format!("{TARGET}'s address on bench: {ip:?}"))?;
        Ok(())
    }

    fn berth(&self, args: &[&str]) -> Result<String> {
        super::berth_ok(&self.host, args)
    }

    fn inspect(&self, name: &str) -> Result<Value> {
        let out = self.berth(&["inspect", name])?;
        let v: Value = serde_json::from_str(&out).with_context(|| format!("parsing berth inspect {name}"))?;
        Ok(v[0].clone())
    }

    /// Adds the end of the daemon's log to an error.
    fn explain<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| {
            let log = self.host.daemon_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ");
            e.context(format!("berth daemon's log, last {LOG_TAIL} lines:\n  {tail}"))
        })
    }
}

impl Subject for Berth {
    fn client_ns(&self) -> &Path {
        &self.client
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 11], 53))
    }

    fn target_ip(&self) -> IpAddr {
        self.target
    }

    fn forwarding(&self) -> Result<(), String> {
        // The daemon reads only the resolv.conf the bench wrote.
        Ok(())
    }

    fn upstream_seen(&self) -> usize {
        self.upstream.seen()
    }

    fn run(&mut self, name: &str) -> Result<Duration> {
        let mut cmd = self.host.client_cmd(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "bench",
            "--",
            "sleep",
            "3600",
        ]);
        let r = super::timed(&mut cmd, "", &format!("berth run -d --name {name}"));
        Ok(self.explain(r)?.0)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.berth(&["rm", "-f", name]).map(drop)
    }
}

struct Opts {
    queries: usize,
    runs: usize,
    subjects: Vec<String>,
    /// Bound of one subject's queries in one round.
    loop_budget: Duration,
    /// Bound of one subject's runs.
    runs_budget: Duration,
}

const SUBJECTS: [&str; 3] = ["berth", "aardvark", "docker"];

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            queries: QUERIES,
            runs: RUNS,
            subjects: SUBJECTS.map(String::from).to_vec(),
            loop_budget: SHORT_LOOP_BUDGET,
            runs_budget: SHORT_RUNS_BUDGET,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--queries" => {
                    let v = value()?;
                    o.queries = v
                        .parse()
                        .ok()
                        .filter(|n| (100..=1_000_000).contains(n))
                        .with_context(|| format!("--queries {v:?}: expected a count from 100 to 1000000"))?;
                }
                "--runs" => {
                    let v = value()?;
                    o.runs = v
                        .parse()
                        .ok()
                        .filter(|n| *n <= 200)
                        .with_context(|| format!("--runs {v:?}: expected a count up to 200"))?;
                }
                "--subjects" => {
                    let v = value()?;
                    o.subjects = v.split(',').map(|s| s.trim().to_owned()).collect();
                    ensure!(
                        o.subjects.iter().all(|s| SUBJECTS.contains(&s.as_str())),
                        "--subjects {v:?}: expected a list of {}",
                        SUBJECTS.join(", ")
                    );
                }
                _ => bail!(
                    "unknown option {a:?} (accepted: --queries N, --runs N, --subjects berth,aardvark,docker)"
                ),
            }
        }
        Ok(o)
    }

    fn wants(&self, subject: &str) -> bool {
        self.subjects.iter().any(|s| s == subject)
    }
}

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let mut opts = Opts::parse(args)?;
    if session.full {
        (opts.loop_budget, opts.runs_budget) = (LOOP_BUDGET, RUNS_BUDGET);
    }
    let start = Instant::now();
    eprintln!("building berth (release) …");
    let bin = crate::build_berth(true)?;
    let built = start.elapsed();
    super::warn_if_busy();

    println!(
        "DNS from inside a container: {} sequential UDP queries for a container name ({} for a forwarded \
         name) in {ROUNDS} rounds per subject, the subjects taking turns; {PARALLEL_CLIENTS} clients for {} s; \
         {} fresh containers timed from the start of their run until their name answers",
        opts.queries,
        (opts.queries / 4).max(100),
        PARALLEL_TIME.as_secs(),
        opts.runs
    );
    println!(
        "berth: {} (release build of this tree), 127.0.0.11:53",
        bin.display()
    );
    let aardvark_missing = [netavark::BIN, aardvark::BIN]
        .into_iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("NOT INSTALLED ({p} is missing; {})", aardvark::INSTALL));
    match &aardvark_missing {
        Some(m) => println!("aardvark-dns: {m}"),
        None => println!(
            "aardvark-dns: {} started by {}, at the network's gateway port 53",
            super::first_line(aardvark::BIN, &["--version"]).unwrap_or_else(|| "unknown version".into()),
            super::first_line(netavark::BIN, &["--version"]).unwrap_or_else(|| "netavark".into()),
        ),
    }
    let docker_missing = docker::missing();
    match &docker_missing {
        Some(m) => println!("Docker: {m}"),
        None => println!(
            "Docker: {}, its own dockerd in a network namespace of its own, 127.0.0.11:53",
            super::first_line(docker::DOCKERD, &["--version"]).unwrap_or_else(|| "unknown version".into())
        ),
    }

    let progress = |what: &str| eprintln!("[{:>5.1} s] {what}", start.elapsed().as_secs_f64());
    let skipped = || "skipped (--subjects)".to_owned();
    let mut entries = Vec::new();
    let (label, run_is) = ("berth", "berth run -d");
    if opts.wants("berth") {
        progress("berth: setting up");
        let b = Berth::new(&bin).context("berth: setting up")?;
        entries.push(Entry::up(label, run_is, Box::new(b)));
    } else {
        entries.push(Entry::absent(label, run_is, skipped()));
    }
    let (label, run_is) = ("aardvark-dns", "netavark setup");
    if !opts.wants("aardvark") {
        entries.push(Entry::absent(label, run_is, skipped()));
    } else if let Some(why) = aardvark_missing {
        entries.push(Entry::absent(label, run_is, why));
    } else {
        progress("aardvark-dns: setting up");
        entries.push(match Aardvark::new(&bin) {
            Ok(a) => Entry::up(label, run_is, Box::new(a)),
            Err(e) => Entry::absent(label, run_is, format!("FAILED to set up: {e:#}")),
        });
    }
    let (label, run_is) = ("Docker", "docker run -d");
    if !opts.wants("docker") {
        entries.push(Entry::absent(label, run_is, skipped()));
    } else if let Some(why) = docker_missing {
        entries.push(Entry::absent(label, run_is, why));
    } else {
        progress("Docker: starting dockerd and setting up");
        entries.push(match Docker::start(&bin) {
            Ok(d) => Entry::up(label, run_is, Box::new(d)),
            Err((e, notes)) => {
                let mut entry = Entry::absent(label, run_is, format!("could not start ({e:#})"));
                entry.row.notes = notes;
                entry
            }
        });
    }
    let ready = start.elapsed();

    measure(&mut entries, &opts, start);
    let benched = start.elapsed();
    // Tear everything down (dockerd first) before reporting.
    progress("tearing down");
    for e in entries.iter_mut().rev() {
        if let Some(s) = e.subject.take() {
            e.row.notes.extend(s.close());
        }
    }
    let rows: Vec<Row> = entries.into_iter().map(|e| e.row).collect();

    println!();
    report::report(&rows, &opts, session);
    println!(
        "bench took {:.0} s ({:.0} s building berth, {:.0} s setting up, {:.0} s benching, {:.0} s tearing down)",
        start.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (ready - built).as_secs_f64(),
        (benched - ready).as_secs_f64(),
        (start.elapsed() - benched).as_secs_f64(),
    );
    Ok(())
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
        assert_eq!((o.queries, o.runs), (20_000, 20));
        assert!(SUBJECTS.iter().all(|s| o.wants(s)));
    }

    #[test]
    fn options_parse() {
        let o = Opts::parse(&args("--queries 500 --runs 3 --subjects berth,docker")).unwrap();
        assert_eq!((o.queries, o.runs), (500, 3));
        assert!(o.wants("docker") && !o.wants("aardvark"));
    }

    #[test]
    fn bad_options_are_named() {
        for (a, want) in [
            ("--queries 5", "--queries"),
            ("--runs x", "--runs"),
            ("--subjects podman", "--subjects"),
            ("--runs", "needs a value"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a)).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }
}
