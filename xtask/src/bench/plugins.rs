//! `cargo xtask bench plugins`: what a driver's transport costs. The same
//! attach (a probe sandbox joins a network, gets its address and default
//! route) and detach, timed through berth's API, for a network of each
//! transport, next to the built-in bridge driver:
//!
//! - `bridge`: the built-in driver, in the daemon;
//! - `bridge-plugin`: the very same `Bridge` type built into a shared
//!   library (`examples/bridge-plugin`, `export_driver!`) and loaded from
//!   the plugin directory: identical work, only the transport differs. The
//!   issue's target: within 10% of the built-in driver;
//! - `ptp`: the example shared-library plugin (`examples/ptp`): a veth
//!   with routes and no bridge. berth has no built-in ptp, so its ratio is
//!   against the bridge, on different work;
//! - `docker`: a Docker network plugin over a unix socket, the test plugin
//!   of `berth_testkit::docker_plugin` (bridges like berth's, but it makes
//!   its veths with `ip` processes, and by Docker's protocol the engine
//!   then moves one end into the sandbox); its figure is the protocol plus
//!   that plugin's own work, not the bridge driver's;
//! - `cni`: the cni driver running the reference `bridge` + `host-local`
//!   plugins (`/usr/lib/cni`), with `ipMasq`;
//! - `berth CNI plugin`: the other way round, berth as a runtime's CNI
//!   plugin (`type: berth`, the berth binary run with `CNI_COMMAND`), its
//!   `ADD` attaching a namespace of its own to a berth bridge network
//!   through the daemon; timed from spawn to exit like the raw CNI
//!   `bridge` peer, with its target (≤ 5 ms median) in the summary;
//! - peers, measured in the same run where installed: netavark 1.4
//!   (`setup`/`teardown`) and the raw CNI `bridge` plugin (`ADD`/`DEL`),
//!   each in a host namespace of its own (see `netavark.rs`, `cni.rs`).
//!
//! All of berth's subjects live in one test host (one daemon); the probe is
//! one created container whose sandbox is on no network. The rounds are
//! interleaved (each round attaches and detaches once on every subject in
//! turn), so that noise from the rest of the machine falls on every subject
//! alike. Warm-up rounds come first, untimed; the first checks that each
//! attach did its work. Bounded in rounds and in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::TestHost;
use berth_testkit::docker_plugin::DockerPlugin;
use serde_json::Value;

use super::attacher::Subject;
use super::cni::{self, BerthCni, Cni};
use super::netavark::{self, Netavark};
use super::{Samples, Session, Verdict, http, ms};

/// Timed rounds unless `--rounds` says otherwise.
const ROUNDS: usize = 200;
/// Untimed rounds first (the first one checks the work).
const WARMUP: usize = 10;
/// Time bound of the timed rounds of one block (the in-process drivers
/// together, or one other subject) with `--full`.
const BUDGET: Duration = Duration::from_secs(600);
/// The same by default, so that the run stays within 5 minutes here: a
/// subject slower than that stops where it got to, and the report says so.
const SHORT_BUDGET: Duration = Duration::from_secs(30);
/// The issue's target: a shared-library plugin's attach within this share
/// of the built-in driver's.
const TARGET: f64 = 1.10;
/// The issue's target for berth as a CNI plugin: its `ADD`'s median.
const CNI_ADD_TARGET: Duration = Duration::from_millis(5);
/// The label of that line.
const BERTH_CNI: &str = "berth CNI plugin";
/// The Docker test plugin's name (its socket is `NAME.sock`).
const DOCKER_PLUGIN: &str = "bench-docker";
/// Lines of the daemon's log shown with an error.
const LOG_TAIL: usize = 30;

/// How a subject is reached.
enum Via {
    /// A berth network, attached through the API.
    Berth { network: &'static str },
    /// A peer run as a runtime would run it.
    Peer(Box<dyn Subject>),
}

/// One line of the table.
struct Line {
    label: &'static str,
    transport: &'static str,
    /// What it does, next to the built-in bridge.
    work: &'static str,
    /// Whether the 10% target applies (the shared-library bridge).
    target: bool,
    /// Whether it runs inside the daemon's process (no process per call).
    in_process: bool,
    /// Its rounds hit the time bound before their count.
    cut: bool,
    via: Option<Via>,
    attach: Samples,
    detach: Samples,
    trouble: Option<String>,
}

impl Line {
    fn new(label: &'static str, transport: &'static str, work: &'static str, via: Result<Via>) -> Self {
        let (via, trouble) = match via {
            Ok(v) => (Some(v), None),
            Err(e) => {
                let why = format!("{e:#}");
                eprintln!("{label}: {why}");
                (None, Some(why))
            }
        };
        Self {
            label,
            transport,
            work,
            target: false,
            in_process: false,
            cut: false,
            via,
            attach: Samples::default(),
            detach: Samples::default(),
            trouble,
        }
    }

    fn fail(&mut self, why: String) {
        eprintln!("{}: {why}", self.label);
        self.via = None;
        self.trouble = Some(why);
    }
}

struct Opts {
    rounds: usize,
    warmup: usize,
    /// Only the drivers inside the daemon (bridge, bridge-plugin, ptp).
    in_process_only: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            rounds: ROUNDS,
            warmup: WARMUP,
            in_process_only: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut count = |min: usize| -> Result<usize> {
                let v = it.next().with_context(|| format!("{a} needs a value"))?;
                v.parse()
                    .ok()
                    .filter(|n| (min..=10_000).contains(n))
                    .with_context(|| format!("{a} {v:?}: expected a count from {min} to 10000"))
            };
            match a.as_str() {
                "--rounds" => o.rounds = count(1)?,
                "--warmup" => o.warmup = count(0)?,
                "--in-process-only" => o.in_process_only = true,
                _ => bail!("unknown option {a:?} (accepted: --rounds N, --warmup N, --in-process-only)"),
            }
        }
        Ok(o)
    }
}

/// Builds the `cdylib` of `package` in release and returns its path.
fn build_library(package: &str) -> Result<PathBuf> {
    let out = crate::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(crate::root())
            .args([
                "build",
                "--quiet",
                "--release",
                "--message-format=json",
                "-p",
                package,
            ])
            .stderr(Stdio::inherit()),
    )
    .with_context(|| format!("running cargo build -p {package}"))?;
    ensure!(out.status.success(), "cargo build --release -p {package} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["reason"] == "compiler-artifact"
                && v["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|x| x == "cdylib"))
        })
        .flat_map(|v| v["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .with_context(|| format!("cargo build -p {package} made no shared library"))
}

/// berth's test host: the daemon with both libraries in its plugin
/// directory, the Docker test plugin on its socket, the CNI reference
/// plugins on its `--cni-path`, and the probe container.
struct Host {
    /// Dropped first: it stops by connecting to its socket, which goes
    /// with the test host's directory.
    _docker: DockerPlugin,
    host: TestHost,
    probe: PathBuf,
}

impl Host {
    fn new(bin: &Path, libs: &[(PathBuf, &str)]) -> Result<Self> {
        let mut host = TestHost::without_daemon(bin);
        std::fs::create_dir_all(host.plugin_dir()).context("creating the plugin directory")?;
        for (lib, name) in libs {
            std::fs::copy(lib, host.plugin_dir().join(name))
                .with_context(|| format!("installing {}", lib.display()))?;
        }
        // Before the daemon starts, which looks for plugin sockets once.
        let docker = DockerPlugin::start(&host, DOCKER_PLUGIN);
        host.start_daemon(&["--cni-path", cni::DIR]);
        let h = Self {
            probe: PathBuf::new(),
            host,
            _docker: docker,
        };
        h.create("scratch", &["--subnet", "10.86.0.0/24"])?;
        let probe = super::attach::probe(&h.host.socket)?;
        Ok(Self { probe, ..h })
    }

    /// `berth network create ARGS NAME`.
    fn create(&self, name: &str, args: &[&str]) -> Result<()> {
        let mut a = vec!["network", "create"];
        a.extend_from_slice(args);
        a.push(name);
        let r = self.host.berth(&a);
        ensure!(r.code == 0, "berth network create {name}: {}", r.stderr.trim());
        Ok(())
    }

    /// The network, made for the bench: `Ok(Via)` or why not.
    fn network(&self, network: &'static str, args: &[&str]) -> Result<Via> {
        self.create(network, args)?;
        Ok(Via::Berth { network })
    }

    fn timed(&self, network: &str, verb: &str) -> Result<Duration> {
        let t = Instant::now();
        http::post(
            &self.host.socket,
            &format!("/networks/{network}/{verb}"),
            r#"{"Container":"probe"}"#,
            200,
        )?;
        Ok(t.elapsed())
    }

    /// The end of the daemon's log, for an error.
    fn log_tail(&self) -> String {
        let log = self.host.daemon_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ")
    }
}

/// Checks once that an attach did the work: an interface with an IPv4
/// address and a default route in the probe.
fn check_attached(probe: &Path) -> Result<()> {
    let addr = berth_testkit::run_in(probe, "ip", &["-4", "-o", "addr", "show", "scope", "global"]).stdout;
    ensure!(
        addr.contains(" inet "),
        "after attach, the probe has no IPv4 address: {addr:?}"
    );
    let route = berth_testkit::run_in(probe, "ip", &["-4", "route", "show", "default"]).stdout;
    ensure!(
        route.contains("default via") || route.contains("default dev"),
        "after attach, the probe has no default route: {route:?}"
    );
    Ok(())
}

/// One attach and detach of `line`'s subject; the first timing is the
/// attach's, the second the detach's.
fn round(h: &Host, via: &mut Via, check: bool) -> Result<(Duration, Duration)> {
    match via {
        Via::Berth { network } => {
            let a = h.timed(network, "connect")?;
            if check {
                check_attached(&h.probe)?;
            }
            let d = h.timed(network, "disconnect")?;
            Ok((a, d))
        }
        Via::Peer(s) => {
            let a = s.attach()?;
            if check {
                check_attached(s.probe_ns())?;
            }
            let d = s.detach()?;
            Ok((a, d))
        }
    }
}

/// Up to `rounds` timed rounds of the lines `which`, within [`BUDGET`];
/// round `r` starts with the `r`th of them, so that the order turns.
fn timed_rounds(h: &Host, lines: &mut [Line], which: &[usize], rounds: usize, bound: Duration) {
    let deadline = Instant::now() + bound;
    for r in 0..rounds {
        if r > 0 && Instant::now() > deadline {
            for &i in which {
                lines[i].cut = true;
            }
            return;
        }
        for k in 0..which.len() {
            let l = &mut lines[which[(r + k) % which.len()]];
            let Some(via) = l.via.as_mut() else { continue };
            match round(h, via, false) {
                Ok((a, d)) => {
                    l.attach.push(a);
                    l.detach.push(d);
                }
                Err(e) => l.fail(format!("FAILED at round {}: {e:#}", r + 1)),
            }
        }
    }
}

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let opts = Opts::parse(args)?;
    let bound = if session.full { BUDGET } else { SHORT_BUDGET };
    let start = Instant::now();
    eprintln!("building berth and the plugins (release) …");
    let bin = crate::build_berth(true)?;
    let bridge_lib = build_library("berth-plugin-bridge")?;
    let ptp_lib = build_library("berth-plugin-ptp")?;
    let built = start.elapsed();
    super::warn_if_busy();

    println!(
        "attach a sandbox to a network (address, default route) through each transport, then detach; \
         {} rounds after {} warm-up, interleaved",
        opts.rounds, opts.warmup
    );
    println!("berth: {} (release build of this tree)", bin.display());
    let cni_missing = cni::PLUGINS
        .iter()
        .find(|p| !Path::new(cni::DIR).join(p).exists())
        .map(|p| format!("NOT INSTALLED ({}/{p} is missing; {})", cni::DIR, cni::INSTALL));
    let nv_missing =
        (!Path::new(netavark::BIN).exists()).then(|| format!("NOT INSTALLED ({})", netavark::INSTALL));

    let h = Host::new(&bin, &[(bridge_lib, "bridge-plugin.so"), (ptp_lib, "ptp.so")])?;
    let net = |name: &'static str, args: &[&str]| h.network(name, args);
    let mut lines = vec![
        Line {
            in_process: true,
            ..Line::new(
                "bridge",
                "built-in",
                "the reference",
                net("n-builtin", &["-d", "bridge", "--subnet", "10.87.0.0/16"]),
            )
        },
        Line {
            target: true,
            in_process: true,
            ..Line::new(
                "bridge-plugin",
                "shared library",
                "the same Bridge code",
                net("n-shared", &["-d", "bridge-plugin", "--subnet", "10.85.0.0/16"]),
            )
        },
        Line {
            in_process: true,
            ..Line::new(
                "ptp",
                "shared library",
                "veth + routes, no bridge",
                net("n-ptp", &["-d", "ptp", "--subnet", "10.84.0.0/16"]),
            )
        },
        Line::new(
            DOCKER_PLUGIN,
            "Docker plugin (unix socket)",
            "bridge; veth by `ip`, moved in by berth",
            net("n-docker", &["-d", DOCKER_PLUGIN, "--subnet", "10.83.0.0/16"]),
        ),
        Line::new(
            "cni",
            "CNI (exec)",
            "reference bridge + host-local",
            match &cni_missing {
                Some(m) => Err(anyhow::anyhow!("{m}")),
                None => {
                    let dir = format!("ipam.dataDir={}", h.host.root.join("cni-ipam").display());
                    let args = [
                        "-d",
                        "cni",
                        "-o",
                        "cni.plugin=bridge",
                        "-o",
                        "bridge=cnibr0",
                        "-o",
                        "isGateway=true",
                        "-o",
                        "ipMasq=true",
                        "-o",
                        "ipam.type=host-local",
                        "-o",
                        "ipam.subnet=10.82.0.0/16",
                        "-o",
                        r#"ipam.routes=[{"dst":"0.0.0.0/0"}]"#,
                        "-o",
                        &dir,
                    ];
                    net("n-cni", &args)
                }
            },
        ),
        Line::new(
            BERTH_CNI,
            "CNI (exec), the other way",
            "berth bridge, through the daemon",
            h.network("n-berth-cni", &["--subnet", "10.81.0.0/16"])
                .and_then(|_| BerthCni::new(&bin, &h.host, "n-berth-cni"))
                .map(|s| Via::Peer(Box::new(s))),
        ),
        Line::new(
            "netavark (peer)",
            "exec",
            "bridge, iptables",
            match nv_missing {
                Some(m) => Err(anyhow::anyhow!("{m}")),
                None => Netavark::new(&bin).map(|s| Via::Peer(Box::new(s))),
            },
        ),
        Line::new(
            "CNI bridge (peer)",
            "exec",
            "reference bridge + host-local",
            match cni_missing {
                Some(m) => Err(anyhow::anyhow!("{m}")),
                None => Cni::new(&bin).map(|s| Via::Peer(Box::new(s))),
            },
        ),
    ];
    if lines[0].via.is_none() {
        bail!(
            "the built-in bridge, the reference of every ratio, could not be set up: {}",
            lines[0].trouble.as_deref().unwrap_or_default()
        );
    }

    eprintln!("[{:>5.1} s] warming up …", start.elapsed().as_secs_f64());
    for k in 0..opts.warmup.max(1) {
        for l in &mut lines {
            let Some(via) = l.via.as_mut() else { continue };
            if let Err(e) = round(&h, via, k == 0) {
                l.fail(format!("FAILED while warming up: {e:#}"));
            }
        }
    }
    if lines[0].via.is_none() {
        bail!(
            "the built-in bridge failed: {}\n  daemon log:\n  {}",
            lines[0].trouble.as_deref().unwrap_or_default(),
            h.log_tail()
        );
    }

    // The in-process drivers together, in a turning order: each follows
    // each other equally often, so that what one leaves the kernel to do
    // (a veth being freed) lands on all alike. The rest, which run
    // processes per call, each in a block of its own after the machine
    // settled, as in `bench attach`.
    let (together, alone): (Vec<usize>, Vec<usize>) = (0..lines.len()).partition(|&i| lines[i].in_process);
    super::settle();
    eprintln!(
        "[{:>5.1} s] timing the in-process drivers, interleaved …",
        start.elapsed().as_secs_f64()
    );
    timed_rounds(&h, &mut lines, &together, opts.rounds, bound);
    for i in alone {
        if opts.in_process_only {
            lines[i].fail("not timed (--in-process-only)".into());
        }
        if lines[i].via.is_none() {
            continue;
        }
        super::settle();
        eprintln!(
            "[{:>5.1} s] timing {} …",
            start.elapsed().as_secs_f64(),
            lines[i].label
        );
        timed_rounds(&h, &mut lines, &[i], opts.rounds, bound);
    }
    let benched = start.elapsed();
    if lines.iter().any(|l| l.trouble.is_some() && l.via.is_none()) {
        eprintln!("daemon log, last lines:\n  {}", h.log_tail());
    }
    for l in &mut lines {
        l.via = None;
    }
    drop(h);

    println!();
    report(&lines, opts.rounds, bound);
    for l in lines.iter().filter(|l| l.cut) {
        session.note(format!(
            "{}: stopped at {} of {} rounds after its {} s budget",
            l.label,
            l.attach.len(),
            opts.rounds,
            bound.as_secs()
        ));
    }
    summarize(&lines, session);
    summarize_cni(&lines, session);
    println!(
        "bench took {:.0} s ({:.0} s building, {:.0} s benching, {:.1} s cleaning up)",
        start.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (benched - built).as_secs_f64(),
        (start.elapsed() - benched).as_secs_f64()
    );
    Ok(())
}

/// `a / b`, when both are there.
fn ratio(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (!b.is_zero()).then(|| a.as_secs_f64() / b.as_secs_f64())
}

fn show(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), ms)
}

fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
}

/// The verdict of a line against the 10% target, from its median ratio.
fn verdict(target: bool, x: Option<f64>) -> String {
    let within = match x {
        Some(x) if x <= TARGET => "within 10%",
        Some(_) => "over 10%",
        None => return "—".into(),
    };
    if target {
        match x {
            Some(x) if x <= TARGET => "target met".into(),
            _ => "target MISSED".into(),
        }
    } else {
        format!("{within} (no target)")
    }
}

fn report(lines: &[Line], asked: usize, bound: Duration) {
    let base = &lines[0];
    let header: Vec<String> = [
        "driver",
        "transport",
        "work",
        "n",
        "attach median",
        "attach p99",
        "÷ built-in (median / p99)",
        "detach median",
        "detach p99",
        "10% target",
    ]
    .map(String::from)
    .to_vec();
    let body: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let m = ratio(l.attach.median(), base.attach.median());
            let p = ratio(l.attach.p99(), base.attach.p99());
            vec![
                l.label.to_owned(),
                l.transport.to_owned(),
                l.work.to_owned(),
                format!("{}{}", l.attach.len(), if l.cut { "*" } else { "" }),
                show(l.attach.median()),
                show(l.attach.p99()),
                format!("{} / {}", times(m), times(p)),
                show(l.detach.median()),
                show(l.detach.p99()),
                if std::ptr::eq(l, base) {
                    "reference".into()
                } else {
                    verdict(l.target, m)
                },
            ]
        })
        .collect();
    println!(
        "attach / detach through each transport: median and p99 of n rounds ({asked} asked; \
         * cut at the {} s bound)",
        bound.as_secs()
    );
    super::print_table(&header, &body);
    println!(
        "÷ built-in: the attach time over the built-in bridge driver's (bridge, bridge-plugin and ptp \
         interleaved in the same rounds; the others each in a block of their own); the target (a shared-library plugin within 10% of a built-in driver's attach) applies to bridge-plugin"
    );
    for l in lines {
        if let Some(t) = &l.trouble {
            println!("{}: {t}", l.label);
        }
    }
    let shared = lines.iter().find(|l| l.target);
    if let Some(s) = shared {
        let x = ratio(s.attach.median(), base.attach.median());
        println!();
        println!("target (from the issue):");
        println!(
            "  shared-library plugin attach ≤ 1.10× built-in (medians): {} vs {}: {}: {}",
            show(s.attach.median()),
            show(base.attach.median()),
            times(x),
            if x.is_some_and(|x| x <= TARGET) {
                "met"
            } else {
                "MISSED"
            }
        );
        if let Some(p) = paired_ratio(&s.attach, &base.attach) {
            println!(
                "  the same, paired: median over the rounds of (its attach ÷ the built-in's in the same round): {}",
                times(Some(p))
            );
        }
    }
    if let Some(b) = lines.iter().find(|l| l.label == BERTH_CNI) {
        let peer = lines
            .iter()
            .find(|l| l.label == "CNI bridge (peer)")
            .and_then(|l| l.attach.median());
        let m = b.attach.median();
        println!(
            "  CNI ADD through berth ≤ {} (median): {} (the CNI bridge plugin: {}): {}",
            ms(CNI_ADD_TARGET),
            show(m),
            show(peer),
            if m.is_some_and(|m| m <= CNI_ADD_TARGET) {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}

/// The headline figures for the summary: the built-in bridge next to the
/// peers, the shared-library plugin against its 10% target, and each
/// other transport.
fn summarize(lines: &[Line], session: &mut Session) {
    let base = &lines[0];
    let peers: Vec<&Line> = lines.iter().filter(|l| l.label.ends_with("(peer)")).collect();
    let figures: Vec<(&str, Option<Duration>)> = peers
        .iter()
        .map(|p| (p.label.trim_end_matches(" (peer)"), p.attach.median()))
        .collect();
    let mut l = super::Line::new(
        "attach, built-in bridge driver, median",
        show(base.attach.median()),
    );
    for (label, d) in &figures {
        l = l.peer(label, show(*d));
    }
    session.add(l.ratio(super::peer_ratios(base.attach.median(), &figures)));
    for l in lines
        .iter()
        .skip(1)
        .filter(|l| !l.label.ends_with("(peer)") && l.label != BERTH_CNI)
    {
        let x = ratio(l.attach.median(), base.attach.median());
        let line = super::Line::new(
            format!("attach through {} ({}), median", l.transport, l.label),
            show(l.attach.median()),
        )
        .ratio(format!("÷ built-in: {}", times(x)));
        session.add(if l.target {
            line.target(
                format!("≤ {TARGET:.2}× built-in"),
                Verdict::of(x.map(|x| x <= TARGET)),
            )
        } else {
            line
        });
    }
}

/// The summary's line of berth as a CNI plugin: its `ADD` next to the raw
/// CNI `bridge` plugin's, against the 5 ms target.
fn summarize_cni(lines: &[Line], session: &mut Session) {
    let Some(b) = lines.iter().find(|l| l.label == BERTH_CNI) else {
        return;
    };
    let peer = lines
        .iter()
        .find(|l| l.label == "CNI bridge (peer)")
        .and_then(|l| l.attach.median());
    let median = b.attach.median();
    session.add(
        super::Line::new("CNI ADD through berth (berth CNI plugin), median", show(median))
            .peer("CNI bridge", show(peer))
            .ratio(super::peer_ratios(median, &[("CNI bridge", peer)]))
            .target(
                format!("≤ {}", ms(CNI_ADD_TARGET)),
                Verdict::of(median.map(|m| m <= CNI_ADD_TARGET)),
            ),
    );
}

/// The median of `a[i] / b[i]` over the rounds both have (interleaved
/// lines: less swayed by the machine's load drifting during the run).
fn paired_ratio(a: &Samples, b: &Samples) -> Option<f64> {
    let mut r: Vec<f64> =
        a.0.iter()
            .zip(&b.0)
            .filter(|(_, b)| !b.is_zero())
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect();
    r.sort_by(f64::total_cmp);
    let n = r.len();
    match n {
        0 => None,
        _ if n.is_multiple_of(2) => Some((r[n / 2 - 1] + r[n / 2]) / 2.0),
        _ => Some(r[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_and_parse() {
        let o = Opts::parse(&[]).unwrap();
        assert_eq!((o.rounds, o.warmup), (ROUNDS, WARMUP));
        let o = Opts::parse(&args("--rounds 20 --warmup 0")).unwrap();
        assert_eq!((o.rounds, o.warmup), (20, 0));
        for (a, want) in [
            ("--rounds 0", "--rounds"),
            ("--rounds x", "--rounds"),
            ("--warmup", "needs a value"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a)).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn paired_ratios_take_the_median_per_round() {
        let s = |v: &[u64]| Samples(v.iter().map(|m| Duration::from_millis(*m)).collect());
        assert_eq!(
            paired_ratio(&s(&[2, 3, 30]), &s(&[1, 3, 10])),
            Some(2.0 / 2.0 + 1.0)
        );
        assert_eq!(paired_ratio(&s(&[2, 4]), &s(&[2, 2])), Some(1.5));
        assert_eq!(paired_ratio(&s(&[]), &s(&[1])), None);
    }

    #[test]
    fn verdicts_follow_the_ratio() {
        assert_eq!(verdict(true, Some(1.05)), "target met");
        assert_eq!(verdict(true, Some(1.12)), "target MISSED");
        assert_eq!(verdict(true, None), "—");
        assert_eq!(verdict(false, Some(3.0)), "over 10% (no target)");
        assert_eq!(verdict(false, Some(0.9)), "within 10% (no target)");
    }
}
