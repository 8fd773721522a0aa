//! `cargo xtask bench overlay`: an overlay network across two hosts, berth
//! next to Docker's swarm-mode overlay, in the same run.
//!
//! The hosts are network namespaces with an `eth0` on an underlay bridge
//! in a namespace of its own (198.51.100.0/24): berth's are testkit's
//! `Fabric` (etcd in the fabric's namespace, a daemon per host in the
//! cluster: `overlay/berth.rs`), Docker's two dockerds of the bench's in a
//! swarm (`docker/swarm.rs`). Host A is where containers come and go;
//! host B runs the watcher. No namespace here has a link to the machine's.
//!
//! - **reach**: from the start of `run -d` of a container on host A (the
//!   network's first there, so the run brings the network up on host A)
//!   until the watcher on host B gets an echo reply from it, by address
//!   and by name (`overlay/reach.rs` says how it is probed); the subjects
//!   take turns run by run, each run on a quiet machine.
//! - **throughput**: iperf3 TCP from host B to host A, in rounds taken in
//!   turn: the underlay itself, a bare VXLAN pair between the same two
//!   hosts (the kernel's limit for any VXLAN overlay), berth's overlay and
//!   Docker's, container to container (`bench/iperf.rs`, `overlay/vxlan.rs`); then all of it
//!   again on a jumbo-frame underlay (a new fabric whose daemons read the
//!   MTU when they start; Docker's network made with the matching MTU).
//! - **attach**: berth only: attach and detach of a sandbox on host A
//!   through the API, to the overlay (up on host A already) and to a
//!   bridge network, in rounds taken in turn.
//!
//! Every loop is bounded in count and in time; everything runs in
//! namespaces the bench makes and removes, also when it fails.

mod berth;
mod reach;
mod report;
mod vxlan;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use self::berth::Berth;
use self::reach::{By, MAX_RUNS, Reach};
use self::vxlan::BarePair;
use super::attach::Cell;
use super::docker::{self, Swarm};
use super::iperf::{self, Lane, Server};
use super::two_hosts::{SERVER, Subject};
use super::{Quiet, Session};

const RUNS: usize = 20;
const ROUNDS: usize = 3;
const SECONDS: u32 = 5;
/// Unless `--full` (or asked): fewer and shorter iperf3 rounds, so that
/// the default run stays within 5 minutes here.
const SHORT_ROUNDS: usize = 2;
const SHORT_SECONDS: u32 = 3;
const ITERATIONS: usize = 50;
/// Rounds of the attach figure.
const ATTACH_ROUNDS: usize = 5;
/// The underlays: standard, then jumbo frames.
const STANDARD_MTU: u32 = 1500;
const JUMBO_MTU: u32 = 9000;
/// The server's address on each overlay.
const SERVER_HOST: u8 = 10;
/// Time bound of one subject's reach runs with `--full`.
const RUNS_BUDGET: Duration = Duration::from_secs(420);
/// The same by default: a subject slower than that stops where it got
/// to, and the report says how far.
const SHORT_RUNS_BUDGET: Duration = Duration::from_secs(60);
/// A run slower than this gets a progress line of its own.
const SLOW: Duration = Duration::from_secs(2);
/// Where Debian's etcd-server puts etcd.
const ETCD: &str = "/usr/bin/etcd";

/// The issue's targets.
const REACH_TARGET: Duration = Duration::from_millis(50);
const BARE_SHARE_TARGET: f64 = 0.95;
const ATTACH_RATIO_TARGET: f64 = 2.0;

const SUBJECTS: [&str; 2] = ["berth", "docker"];

struct Opts {
    runs: usize,
    rounds: usize,
    seconds: u32,
    iterations: usize,
    docker: bool,
}

impl Opts {
    /// The options in `args`; where they say nothing, the issue's sizes
    /// when `full`, else the default run's.
    fn parse(args: &[String], full: bool) -> Result<Self> {
        let mut o = Self {
            runs: RUNS,
            rounds: if full { ROUNDS } else { SHORT_ROUNDS },
            seconds: if full { SECONDS } else { SHORT_SECONDS },
            iterations: ITERATIONS,
            docker: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            let count = |v: &str, max: usize| v.parse::<usize>().ok().filter(|n| (1..=max).contains(n));
            match a.as_str() {
                "--runs" => {
                    let v = value()?;
                    o.runs = count(v, MAX_RUNS)
                        .with_context(|| format!("--runs {v:?}: expected 1 to {MAX_RUNS}"))?;
                }
                "--rounds" => {
                    let v = value()?;
                    o.rounds = count(v, 20).with_context(|| format!("--rounds {v:?}: expected 1 to 20"))?;
                }
                "--seconds" => {
                    let v = value()?;
                    // iperf3's client must end within the bench's process bound.
                    o.seconds = count(v, 20)
                        .and_then(|n| u32::try_from(n).ok())
                        .with_context(|| format!("--seconds {v:?}: expected 1 to 20"))?;
                }
                "--iterations" => {
                    let v = value()?;
                    o.iterations =
                        count(v, 1000).with_context(|| format!("--iterations {v:?}: expected 1 to 1000"))?;
                }
                "--subjects" => {
                    let v = value()?;
                    let list: Vec<&str> = v.split(',').map(str::trim).collect();
                    ensure!(
                        list.contains(&"berth") && list.iter().all(|s| SUBJECTS.contains(s)),
                        "--subjects {v:?}: expected berth or berth,docker"
                    );
                    o.docker = list.contains(&"docker");
                }
                _ => bail!(
                    "unknown option {a:?} (accepted: --runs N, --rounds N, --seconds N, --iterations N, \
                     --subjects berth,docker)"
                ),
            }
        }
        Ok(o)
    }
}

/// Docker's swarm and what became of it.
struct Peer {
    swarm: Option<Swarm>,
    /// Why it has no figures, or no more.
    trouble: Option<String>,
    /// What its cleanup found.
    notes: Vec<String>,
}

impl Peer {
    fn absent(why: String) -> Self {
        Self {
            swarm: None,
            trouble: Some(why),
            notes: Vec::new(),
        }
    }

    /// Gives up on Docker, loudly; its dockerds go now.
    fn fail(&mut self, why: String) {
        eprintln!("Docker: {why}");
        if let Some(mut s) = self.swarm.take() {
            self.notes.extend(s.shut());
        }
        self.trouble = Some(why);
    }

    /// Why it cannot take part in what comes next, if it cannot.
    fn why_not(&self) -> String {
        self.trouble.clone().unwrap_or_else(|| "not set up".into())
    }
}

/// Reach figures of one subject: by address, then by name.
type ReachFigures = [Result<Reach, String>; 2];

/// The throughput figures of one underlay.
pub struct Throughput {
    underlay_mtu: u32,
    /// Each lane's label and its bits per second, round by round.
    lanes: Vec<(String, Result<Vec<f64>, String>)>,
    /// The MTU inside each lane: its label and the figure.
    mtus: Vec<(String, Result<u32, String>)>,
    /// Docker's network options, as it shows them.
    docker_options: Option<String>,
}

/// Everything the report prints.
pub struct Figures {
    runs: usize,
    rounds: usize,
    seconds: u32,
    iterations: usize,
    reach: [ReachFigures; 2],
    attach: Result<[Cell; 3], String>,
    throughput: Vec<Throughput>,
    docker_trouble: Option<String>,
    docker_notes: Vec<String>,
}

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let opts = Opts::parse(args, session.full)?;
    let runs_budget = if session.full {
        RUNS_BUDGET
    } else {
        SHORT_RUNS_BUDGET
    };
    let start = Instant::now();
    eprintln!("building berth (release) …");
    let bin = crate::build_berth(true)?;
    let built = start.elapsed();
    super::warn_if_busy();
    ensure!(
        Path::new(ETCD).exists(),
        "{ETCD} is missing (apt-get install etcd-server etcd-client): berth's overlay needs its cluster store"
    );
    ensure!(
        Path::new(iperf::IPERF3).exists(),
        "{} is missing ({}): the throughput figures need it",
        iperf::IPERF3,
        iperf::INSTALL
    );
    println!(
        "an overlay network across two hosts (network namespaces on an underlay bridge, 198.51.100.0/24): \
         {} reach runs each by address and by name; iperf3 TCP, {} rounds of {} s per lane, underlay MTU \
         {STANDARD_MTU} then {JUMBO_MTU}; {} attaches each to an overlay and a bridge",
        opts.runs, opts.rounds, opts.seconds, opts.iterations
    );
    println!(
        "berth: {} (release build of this tree), cluster store {} in the fabric's namespace",
        bin.display(),
        super::first_line(ETCD, &["--version"]).unwrap_or_else(|| "etcd".into())
    );
    println!(
        "iperf3: {}",
        super::first_line(iperf::IPERF3, &["--version"]).unwrap_or_else(|| "unknown version".into())
    );
    let progress = |what: &str| eprintln!("[{:>5.1} s] {what}", start.elapsed().as_secs_f64());

    let mut docker = if !opts.docker {
        Peer::absent("skipped (--subjects)".into())
    } else if let Some(why) = docker::missing() {
        Peer::absent(why)
    } else {
        progress("Docker: two dockerds in namespaces, a swarm, an attachable overlay");
        match Swarm::start(&bin) {
            Ok(s) => Peer {
                swarm: Some(s),
                trouble: None,
                notes: Vec::new(),
            },
            Err((e, notes)) => {
                let mut p = Peer::absent(format!("could not start ({e:#})"));
                p.notes = notes;
                p
            }
        }
    };
    match &docker.trouble {
        Some(why) => println!("Docker: {why}"),
        None => println!(
            "Docker: {}, two dockerds in namespaces of the bench's in a swarm (manager on host A, \
             worker on host B), an attachable overlay",
            super::first_line(docker::DOCKERD, &["--version"]).unwrap_or_else(|| "unknown version".into())
        ),
    }
    progress("berth: a fabric of two hosts, the overlay, the watcher");
    let mut berth = Berth::new(&bin, None).context("berth: setting up")?;
    let ready = start.elapsed();

    let quiet = Quiet::default();
    quiet.settle();
    progress(&format!(
        "reach, {} runs by address then by name, taking turns",
        opts.runs
    ));
    let (reach, stopped) = reach_runs(&mut berth, &mut docker, opts.runs, runs_budget, &quiet, &progress);

    progress("servers on host A");
    berth.run(SERVER, Some(berth.address(SERVER_HOST)))?;
    start_docker_server(&mut docker, None);
    progress(&format!("attach, {ATTACH_ROUNDS} rounds taken in turn"));
    let indent = |w: &str| progress(&format!("  {w}"));
    let attach = berth.attach(opts.iterations, ATTACH_ROUNDS, &quiet, &indent);
    let attach = berth.explain(attach).map_err(|e| format!("FAILED: {e:#}"));

    let mut throughput = vec![measure_throughput(
        &berth,
        &docker,
        STANDARD_MTU,
        &opts,
        &quiet,
        &progress,
    )];
    progress(&format!("a new fabric on a {JUMBO_MTU}-byte underlay"));
    drop(berth);
    let mut berth = Berth::new(&bin, Some(JUMBO_MTU)).context("berth: setting up on jumbo frames")?;
    berth.run(SERVER, Some(berth.address(SERVER_HOST)))?;
    start_docker_server(&mut docker, Some(JUMBO_MTU));
    throughput.push(measure_throughput(
        &berth, &docker, JUMBO_MTU, &opts, &quiet, &progress,
    ));
    let benched = start.elapsed();

    progress("tearing down");
    drop(berth);
    if let Some(mut s) = docker.swarm.take() {
        docker.notes.extend(s.shut());
    }
    let figures = Figures {
        runs: opts.runs,
        rounds: opts.rounds,
        seconds: opts.seconds,
        iterations: opts.iterations,
        reach,
        attach,
        throughput,
        docker_trouble: docker.trouble,
        docker_notes: docker.notes,
    };
    println!();
    report::report(&figures, session);
    for note in stopped {
        session.note(note);
    }
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

/// Moves Docker to the network of an underlay of `mtu` bytes, if given,
/// and starts its server container on host A.
fn start_docker_server(docker: &mut Peer, mtu: Option<u32>) {
    let Some(s) = docker.swarm.as_mut() else { return };
    let started = mtu
        .map_or(Ok(()), |m| s.use_mtu(m))
        .and_then(|()| s.run(SERVER, Some(s.address(SERVER_HOST))).map(drop));
    if let Err(e) = started {
        docker.fail(format!("FAILED to set up its server: {e:#}"));
    }
}

/// The reach runs: for each run, by address then by name, each subject in
/// turn. Each starts on a quiet machine: what a subject does after its
/// container is removed (dockerd's cleanup takes a while) must not land in
/// the next one's figure.
fn reach_runs(
    berth: &mut Berth,
    docker: &mut Peer,
    runs: usize,
    budget: Duration,
    quiet: &Quiet,
    progress: &dyn Fn(&str),
) -> ([ReachFigures; 2], Vec<String>) {
    let ready = |up: bool| match up {
        true => Ok(Reach::default()),
        false => Err(docker.why_not()),
    };
    let mut out: [ReachFigures; 2] = [
        [Ok(Reach::default()), Ok(Reach::default())],
        [ready(docker.swarm.is_some()), ready(docker.swarm.is_some())],
    ];
    let mut subjects: Vec<(&str, Option<&mut dyn Subject>)> = vec![
        ("berth", Some(berth)),
        ("Docker", docker.swarm.as_mut().map(|s| s as &mut dyn Subject)),
    ];
    // Each subject's time in its runs; past the budget it stops, keeping
    // what it measured.
    let mut spent = [Duration::ZERO; 2];
    let mut stopped = Vec::new();
    for i in 1..=runs {
        for (k, by) in [By::Address, By::Name].into_iter().enumerate() {
            for (j, ((label, s), figs)) in subjects.iter_mut().zip(&mut out).enumerate() {
                let (Some(subject), Ok(fig)) = (s.as_deref_mut(), &mut figs[k]) else {
                    continue;
                };
                if spent[j] > budget {
                    stopped.push(format!(
                        "{label}: reach runs stopped at {} of {runs} after its {} s budget",
                        fig.run.len(),
                        budget.as_secs()
                    ));
                    *s = None;
                    continue;
                }
                quiet.settle();
                let t = Instant::now();
                let once = reach::once(subject, by, i);
                spent[j] += t.elapsed();
                match once {
                    Ok(r) => {
                        fig.add(r);
                        if i == 1 || i % 5 == 0 || r.0.is_none_or(|d| d > SLOW) {
                            progress(&format!("  {label} by {}: {}", by.word(), fig.line(i)));
                        }
                    }
                    Err(e) => {
                        let why = format!("FAILED at run {i}: {e:#}");
                        progress(&format!("  {label} by {}: {why}", by.word()));
                        figs[k] = Err(why);
                    }
                }
            }
        }
    }
    (out, stopped)
}

/// The lanes of one underlay, from host B to host A, ready to measure;
/// what keeps them up (servers, the bare pair) goes when it is dropped.
struct Lanes {
    /// Each lane's label and the lane, or why it has none.
    lanes: Vec<(String, Result<Lane, String>)>,
    /// The MTU inside each lane: its label and the figure.
    mtus: Vec<(String, Result<u32, String>)>,
    _servers: Vec<Server>,
    _bare: Result<BarePair, String>,
}

fn failed(e: anyhow::Error) -> String {
    format!("FAILED: {e:#}")
}

impl Lanes {
    /// The underlay, the bare pair and each subject's overlay: a server
    /// on host A (the host's own one takes the underlay's tests and the
    /// bare pair's; a subject's is its [`SERVER`] container) and the
    /// client's namespace on host B.
    fn new(berth: &Berth, docker: &Peer) -> Self {
        let (a, b) = (berth.host(0), berth.host(1));
        let host = Server::start(&a.ns).map_err(failed);
        let bare = BarePair::new([(&a.ns, Berth::underlay(0)), (&b.ns, Berth::underlay(1))]).map_err(failed);
        let from_b = |label: &str, to| Lane {
            label: label.into(),
            client: b.ns.clone(),
            server: to,
        };
        let bare_lane = match (&host, &bare) {
            (Ok(_), Ok(_)) => Ok(from_b("bare VXLAN pair", BarePair::address(0))),
            (Err(why), _) | (_, Err(why)) => Err(why.clone()),
        };
        let mut out = Self {
            lanes: vec![
                (
                    "underlay".into(),
                    host.as_ref()
                        .map(|_| from_b("underlay", Berth::underlay(0)))
                        .map_err(Clone::clone),
                ),
                ("bare VXLAN pair".into(), bare_lane),
            ],
            mtus: vec![
                ("underlay".into(), iperf::mtu(&a.ns, "eth0").map_err(failed)),
                (
                    "bare VXLAN pair".into(),
                    bare.as_ref()
                        .map_err(Clone::clone)
                        .and_then(|p| p.mtu().map_err(failed)),
                ),
            ],
            _servers: host.into_iter().collect(),
            _bare: bare,
        };
        let docker = docker
            .swarm
            .as_ref()
            .map(|s| s as &dyn Subject)
            .ok_or_else(|| docker.why_not());
        for (label, s) in [
            ("berth overlay", Ok(berth as &dyn Subject)),
            ("Docker overlay", docker),
        ] {
            let lane = s.and_then(|s| out.overlay(label, s).map_err(failed));
            out.lanes.push((label.into(), lane));
        }
        out
    }

    /// A subject's lane: its server started in [`SERVER`], its MTU noted.
    fn overlay(&mut self, label: &str, s: &dyn Subject) -> Result<Lane> {
        self._servers.push(Server::start(&s.sandbox(SERVER)?)?);
        self.mtus
            .push((label.to_owned(), iperf::mtu(s.watcher(), "eth0").map_err(failed)));
        Ok(Lane {
            label: label.into(),
            client: s.watcher().to_owned(),
            server: s.address(SERVER_HOST),
        })
    }
}

/// Throughput on an underlay of `mtu` bytes: every lane, `opts.rounds`
/// rounds taken in turn.
fn measure_throughput(
    berth: &Berth,
    docker: &Peer,
    mtu: u32,
    opts: &Opts,
    quiet: &Quiet,
    progress: &dyn Fn(&str),
) -> Throughput {
    progress(&format!("throughput on a {mtu}-byte underlay"));
    let lanes = Lanes::new(berth, docker);
    let docker_options = docker.swarm.as_ref().and_then(|s| s.options().ok());
    let mut figures: Vec<Result<Vec<f64>, String>> = lanes
        .lanes
        .iter()
        .map(|(_, l)| l.as_ref().map(|_| Vec::new()).map_err(Clone::clone))
        .collect();
    for round in 1..=opts.rounds {
        for ((_, lane), fig) in lanes.lanes.iter().zip(&mut figures) {
            let (Ok(lane), Ok(got)) = (lane, fig.as_mut()) else {
                continue;
            };
            quiet.settle();
            match iperf::test(lane, opts.seconds, 1) {
                Ok(bps) => {
                    got.push(bps);
                    progress(&format!(
                        "  round {round}/{}: {}: {:.2} Gbit/s",
                        opts.rounds,
                        lane.label,
                        bps / 1e9
                    ));
                }
                Err(e) => *fig = Err(format!("FAILED in round {round}: {e:#}")),
            }
        }
    }
    Throughput {
        underlay_mtu: mtu,
        lanes: lanes.lanes.into_iter().map(|(l, _)| l).zip(figures).collect(),
        mtus: lanes.mtus,
        docker_options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_the_issue() {
        let o = Opts::parse(&[], true).unwrap();
        assert_eq!(
            (o.runs, o.rounds, o.seconds, o.iterations, o.docker),
            (20, 3, 5, 50, true)
        );
        let o = Opts::parse(&[], false).unwrap();
        assert_eq!((o.rounds, o.seconds), (2, 3));
    }

    #[test]
    fn options_parse() {
        let o = Opts::parse(
            &args("--runs 3 --rounds 1 --seconds 2 --iterations 10 --subjects berth"),
            false,
        )
        .unwrap();
        assert_eq!(
            (o.runs, o.rounds, o.seconds, o.iterations, o.docker),
            (3, 1, 2, 10, false)
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (a, want) in [
            ("--runs 0", "--runs"),
            ("--runs 151", "--runs"),
            ("--seconds 30", "--seconds"),
            ("--subjects docker", "--subjects"),
            ("--rounds", "needs a value"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a), false).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }
}
