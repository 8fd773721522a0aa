//! `cargo xtask bench dataplane`: iperf3 TCP between two containers of one
//! network, berth next to the kernel's limit and its peers, in the same run.
//!
//! The subjects (`dataplane/subjects.rs` says how each is built): a bare
//! veth pair between two namespaces (no bridge, no firewall: what any
//! container network of veths can carry at most here), berth's bridge
//! network, berth's macvlan network (over a veth parent inside the test
//! host), netavark's bridge (iptables), the CNI bridge plugin, and Docker's
//! user bridge network (a dockerd of the bench's inside a namespace). Each
//! gets an iperf3 server in one end and runs the client in the other.
//!
//! Rounds take turns: in each round every subject runs one test with 1
//! stream and one with 4 (`-P 4`), the subjects' order rotating from round
//! to round, each test on a quiet machine. The report gives each subject's
//! median Gbit/s, berth's bridge as a share of the bare pair, and berth ÷
//! each peer; the summary gets the targets ("berth ≥ 95% of the bare veth
//! pair", "ahead of every peer"). `--costs` then measures what the bridge
//! path costs (`dataplane/costs.rs`). Last, unless `--no-vm`, the same
//! kinds of network and ipvlan, which this machine's kernel lacks, in a
//! stock Debian kernel under qemu (`dataplane/vm.rs`).

mod costs;
mod report;
mod subjects;
mod vm;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use super::docker;
use super::iperf::{self, Lane, Server};
use super::{Quiet, Session};
use subjects::{Berth, Docker};

/// Rounds and seconds per test: the default run's (within 5 minutes
/// here), and `--full`'s.
const ROUNDS: usize = 3;
const SECONDS: u32 = 4;
const FULL_ROUNDS: usize = 5;
const FULL_SECONDS: u32 = 10;
/// The stream counts of each round.
pub const STREAMS: [u32; 2] = [1, 4];

struct Opts {
    rounds: usize,
    seconds: u32,
    costs: bool,
    /// Also the VM's figures (ipvlan, which this machine's kernel lacks).
    vm: bool,
}

impl Opts {
    fn parse(args: &[String], full: bool) -> Result<Self> {
        let mut o = Self {
            rounds: if full { FULL_ROUNDS } else { ROUNDS },
            seconds: if full { FULL_SECONDS } else { SECONDS },
            costs: false,
            vm: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            let count = |v: &str| v.parse::<usize>().ok().filter(|n| (1..=20).contains(n));
            match a.as_str() {
                "--rounds" => {
                    let v = value()?;
                    o.rounds = count(v).with_context(|| format!("--rounds {v:?}: expected 1 to 20"))?;
                }
                "--seconds" => {
                    let v = value()?;
                    // iperf3's client must end within the bench's process bound.
                    o.seconds = count(v)
                        .and_then(|n| u32::try_from(n).ok())
                        .with_context(|| format!("--seconds {v:?}: expected 1 to 20"))?;
                }
                "--costs" => o.costs = true,
                "--no-vm" => o.vm = false,
                _ => bail!("unknown option {a:?} (accepted: --rounds N, --seconds N, --costs, --no-vm)"),
            }
        }
        Ok(o)
    }
}

/// Who a subject is: its label in the report, and its column in the
/// summary (a peer's name), if it is a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Bare,
    BerthBridge,
    BerthMacvlan,
    Netavark,
    Cni,
    Docker,
}

impl Who {
    pub const ALL: [Self; 6] = [
        Self::Bare,
        Self::BerthBridge,
        Self::BerthMacvlan,
        Self::Netavark,
        Self::Cni,
        Self::Docker,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Bare => "bare veth pair",
            Self::BerthBridge => "berth bridge",
            Self::BerthMacvlan => "berth macvlan",
            Self::Netavark => "netavark bridge",
            Self::Cni => "CNI bridge",
            Self::Docker => "Docker bridge",
        }
    }

    /// The summary's column of a peer.
    pub fn peer(self) -> Option<&'static str> {
        match self {
            Self::Netavark => Some("netavark"),
            Self::Cni => Some("CNI"),
            Self::Docker => Some("Docker"),
            _ => None,
        }
    }
}

/// One subject's figures: bits per second of each test, per stream count
/// (in [`STREAMS`]' order); or why it has none.
pub type Figures = Result<[Vec<f64>; 2], String>;

/// A subject's lane, and the namespace its server runs in.
type Ends<'a> = (Lane, &'a Path);

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let opts = Opts::parse(args, session.full)?;
    let start = Instant::now();
    let bin = crate::build_berth(true)?;
    super::warn_if_busy();
    ensure!(
        Path::new(iperf::IPERF3).exists(),
        "{} is missing ({}): every figure of this bench needs it",
        iperf::IPERF3,
        iperf::INSTALL
    );
    println!(
        "iperf3 TCP between two containers of one network, client to server: {} rounds, each a {} s test \
         (after 1 s of slow start) with 1 stream and one with 4 (-P 4) per subject, subjects taking turns",
        opts.rounds, opts.seconds
    );
    println!(
        "iperf3: {}",
        super::first_line(iperf::IPERF3, &["--version"]).unwrap_or_else(|| "unknown version".into())
    );
    let progress = |what: &str| eprintln!("[{:>5.1} s] {what}", start.elapsed().as_secs_f64());

    progress("setting up: the bare pair, berth, netavark, CNI, Docker");
    let bare = subjects::bare(&bin);
    let berth = Berth::new(&bin);
    let peer = |missing: Option<String>, make: &dyn Fn() -> Result<_>| match missing {
        Some(why) => Err(why),
        None => make().map_err(|e: anyhow::Error| format!("FAILED: {e:#}")),
    };
    let netavark = peer(subjects::netavark_missing(), &|| subjects::netavark(&bin));
    let cni = peer(subjects::cni_missing(), &|| subjects::cni(&bin));
    let mut notes = Vec::new();
    let mut docker = match subjects::docker_missing() {
        Some(why) => Err(why),
        None => Docker::start(&bin).map_err(|(e, n)| {
            notes.extend(n);
            format!("FAILED: {e:#}")
        }),
    };
    if docker.is_ok() {
        println!(
            "Docker: {}, a dockerd of the bench's inside a namespace (Docker's defaults there: iptables, br_netfilter)",
            super::first_line(docker::DOCKERD, &["--version"]).unwrap_or_else(|| "unknown version".into())
        );
    }
    for (who, versions) in [
        (Who::Netavark, super::deb_version("netavark")),
        (Who::Cni, super::deb_version("containernetworking-plugins")),
    ] {
        if let Some(v) = versions {
            println!("{}: {v}", who.label());
        }
    }

    // Each subject's lane, or why it has none.
    let lanes: Vec<(Who, Result<Ends, String>)> = Who::ALL
        .iter()
        .map(|&who| {
            let pair = match who {
                Who::Bare => bare
                    .as_ref()
                    .map(|(_, p)| p)
                    .map_err(|e| format!("FAILED: {e:#}")),
                Who::BerthBridge => berth.bridge.as_ref().map_err(Clone::clone),
                Who::BerthMacvlan => berth.macvlan.as_ref().map_err(Clone::clone),
                Who::Netavark => netavark.as_ref().map(|(_, p)| p).map_err(Clone::clone),
                Who::Cni => cni.as_ref().map(|(_, p)| p).map_err(Clone::clone),
                Who::Docker => docker.as_ref().map(|d| &d.pair).map_err(Clone::clone),
            };
            (who, pair.map(|p| (p.lane(who.label()), p.server.as_path())))
        })
        .collect();
    for (who, lane) in &lanes {
        if let Err(why) = lane {
            let line = format!("{}: {why}", who.label());
            eprintln!("{line}");
            session.note(line);
        }
    }
    // A server in each lane's server end, kept until the end.
    let mut servers = Vec::new();
    let mut figures: Vec<(Who, Figures)> = Vec::new();
    for (who, lane) in &lanes {
        let fig = match lane {
            Ok((_, server)) => match Server::start(server) {
                Ok(s) => {
                    servers.push(s);
                    Ok([Vec::new(), Vec::new()])
                }
                Err(e) => Err(format!("FAILED: {e:#}")),
            },
            Err(why) => Err(why.clone()),
        };
        figures.push((*who, fig));
    }
    let ready = start.elapsed();

    let quiet = Quiet::default();
    quiet.settle();
    for round in 0..opts.rounds {
        // Rotate who goes first, so that no subject always follows the same one.
        let n = lanes.len();
        for k in 0..n {
            let i = (round + k) % n;
            let (Ok((lane, _)), (_, Ok(got))) = (&lanes[i].1, &mut figures[i]) else {
                continue;
            };
            // Once per turn: iperf3 leaves no work behind between its tests.
            quiet.settle();
            let turn = turn(lane, opts.seconds, got, |streams, bps| {
                progress(&format!(
                    "round {}/{}: {}, {streams} stream{}: {:.2} Gbit/s",
                    round + 1,
                    opts.rounds,
                    lane.label,
                    if streams == 1 { "" } else { "s" },
                    bps / 1e9
                ));
            });
            if let Err(e) = turn {
                let why = format!("FAILED in round {}: {e}", round + 1);
                progress(&format!("{}: {why}", lane.label));
                figures[i].1 = Err(why);
            }
        }
    }
    let benched = start.elapsed();
    println!();
    report::report(&figures, opts.rounds, opts.seconds, session);

    if opts.costs {
        println!();
        match (&berth.bridge, &bare) {
            (Ok(pair), Ok((_, bare))) => {
                costs::explore(&berth.host, pair, bare, &opts, &quiet, &progress, session)
            }
            _ => session.note("--costs: needs the bare pair and berth's bridge, and one of them FAILED"),
        }
    }

    if opts.vm {
        println!();
        progress(
            "the VM's data path figures (ipvlan, macvlan, bridge, a bare pair): cargo xtask vmtest data_path",
        );
        vm::report(crate::vmtest::reports(&["data_path".into()]), session);
    }

    progress("tearing down");
    drop(servers);
    if let Ok(d) = docker.as_mut() {
        notes.extend(d.d.shut());
    }
    drop((docker, cni, netavark, berth, bare));
    for n in notes {
        session.note(format!("Docker cleanup: {n}"));
    }
    println!(
        "bench took {:.0} s ({:.0} s setting up, {:.0} s benching, {:.0} s after)",
        start.elapsed().as_secs_f64(),
        ready.as_secs_f64(),
        (benched - ready).as_secs_f64(),
        (start.elapsed() - benched).as_secs_f64(),
    );
    Ok(())
}

/// One subject's turn: an iperf3 test at each of [`STREAMS`], each figure
/// added to `got` (a list per stream count) and told to `said` (the
/// stream count, bit/s); the first failure ends the turn.
pub fn turn(lane: &Lane, seconds: u32, got: &mut [Vec<f64>], said: impl Fn(u32, f64)) -> Result<(), String> {
    for (s, streams) in STREAMS.iter().enumerate() {
        let bps = iperf::test(lane, seconds, *streams).map_err(|e| format!("{e:#}"))?;
        got[s].push(bps);
        said(*streams, bps);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_a_five_minute_run() {
        let o = Opts::parse(&[], false).unwrap();
        assert_eq!((o.rounds, o.seconds, o.costs), (3, 4, false));
        let o = Opts::parse(&[], true).unwrap();
        assert_eq!((o.rounds, o.seconds), (5, 10));
        let o = Opts::parse(&args("--rounds 1 --seconds 2 --costs"), false).unwrap();
        assert_eq!((o.rounds, o.seconds, o.costs), (1, 2, true));
    }

    #[test]
    fn bad_options_are_named() {
        for (a, want) in [
            ("--rounds 0", "--rounds"),
            ("--seconds 21", "--seconds"),
            ("--rounds", "needs a value"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a), false).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn every_peer_has_a_summary_column() {
        let peers: Vec<_> = Who::ALL.iter().filter_map(|w| w.peer()).collect();
        assert_eq!(peers, ["netavark", "CNI", "Docker"]);
    }
}
