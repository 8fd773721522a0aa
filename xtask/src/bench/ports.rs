//! `cargo xtask bench ports`: publishing ports at scale, berth next to
//! netavark and Docker, in the same run.
//!
//! - publish 1000 single ports on one container, and 1000 ports as one range;
//! - start the 1st and the Nth container (default 1000) each with 2 ports;
//! - the size of the ruleset (`nft list ruleset | wc -l`) after each step.
//!
//! berth's figures are the daemon's own (its log line "N port bindings
//! published in µs": choosing and checking host ports, and the netlink
//! batch), next to the whole `berth run` minus a `berth run` without ports.
//! netavark's are `netavark setup` with the port mappings minus a setup
//! without. Everything runs in throwaway namespaces but Docker.
//!
//! Docker's are `docker run -d` with the ports minus a plain `docker run
//! -d`, from a dockerd of the bench's own (`docker/daemon.rs`), the one
//! thing a bench runs in the machine's namespace. Its iptables are off, so
//! it publishes through docker-proxy, one process a port: only on
//! 127.0.0.1 and on ports below the ephemeral range that nothing listens
//! on, so nothing reachable from outside the machine changes. Its ruleset
//! is not measured (it writes none); the docker-proxy processes are what
//! grow. 100 containers, not 1000: a `docker run` costs ~0.3 s.
//!
//! Unless `--full`, netavark and Docker each get [`PEER_BUDGET`] in all: a
//! peer still starting containers when it runs out stops there, and the
//! report and the summary say how far it got (netavark's setup slows as
//! its iptables rules grow; its 1000 containers took over 10 minutes).
//! Each subject's port setup per container is drawn against the number
//! of containers before it in `target/bench/ports.svg`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::TestHost;
use serde_json::{Value, json};

use super::chart::{self, Chart, Series};
use super::docker::{self, Dockerd, IMAGE, Net};
use super::{Line, Quiet, Session, Verdict, netavark};

/// Docker's containers with 2 ports each (at most `--containers`).
const DOCKER_CONTAINERS: usize = 100;
/// Unless `--full`, all of one peer's work: a peer still starting
/// containers when it runs out stops there (the default run stays within
/// 5 minutes here).
const PEER_BUDGET: Duration = Duration::from_secs(75);
/// A figure this long means the bench's watchdog ended the process.
const OVER: Duration = super::PROCESS_TIMEOUT;
/// Docker's host ports, on 127.0.0.1 of the machine: 1000 single ports
/// (the first 101 for Docker's example), a 1000-port range, and 2 per
/// container. All below the ephemeral range (32768-60999).
const DOCKER_SINGLES: u16 = 21000;
const DOCKER_RANGE: u16 = 23000;
const DOCKER_PAIRS: u16 = 25000;
/// Docker's network: a /24 nothing here uses (checked before dockerd starts).
const DOCKER_NET: Net = Net {
    name: "berth-bench-ports",
    bridge: "berthports0",
    subnet: "10.214.0.0/24",
    gateway: "10.214.0.1",
};

struct Opts {
    containers: usize,
    peers: bool,
    /// Each peer's budget instead of [`PEER_BUDGET`].
    peer_seconds: Option<u64>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Opts {
            containers: 1000,
            peers: true,
            peer_seconds: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--containers" => {
                    o.containers = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| (2..=5000).contains(n))
                        .context("--containers takes a number from 2 to 5000")?
                }
                "--no-peers" => o.peers = false,
                "--peer-seconds" => {
                    o.peer_seconds = Some(
                        it.next()
                            .and_then(|v| v.parse().ok())
                            .filter(|n| (1..=3600).contains(n))
                            .context("--peer-seconds takes a number from 1 to 3600")?,
                    )
                }
                other => {
                    bail!(
                        "unknown option {other:?} for bench ports (options: --containers N, --no-peers, \
                         --peer-seconds N)"
                    )
                }
            }
        }
        Ok(o)
    }
}

/// What one subject measured.
#[derive(Default)]
struct Figures {
    singles: Option<Duration>,
    singles_e2e: Option<Duration>,
    range: Option<Duration>,
    first: Option<Duration>,
    last: Option<Duration>,
    first5: Option<Duration>,
    last5: Option<Duration>,
    /// 101 single ports, Docker's own example.
    singles101: Option<Duration>,
    /// The [`DOCKER_CONTAINERS`]th container, 2 ports.
    hundredth: Option<Duration>,
    rules_empty: usize,
    rules_ports: usize,
    rules_one: usize,
    rules_all: usize,
    listing_all: usize,
    /// Each container's port setup, in order.
    times: Vec<Duration>,
    /// How many containers it was asked for.
    asked: usize,
}

impl Figures {
    /// Fills the per-container figures from `times`, of `asked`
    /// containers; the last ones only when it got to the end.
    fn containers(&mut self, times: Vec<Duration>, asked: usize) {
        let all = times.len() == asked;
        self.first = times.first().copied();
        self.last = times.last().copied().filter(|_| all);
        self.hundredth = times.get(DOCKER_CONTAINERS.min(asked) - 1).copied();
        self.first5 = median(times.iter().take(5).copied().collect());
        self.last5 = median(times.iter().rev().take(5).copied().collect()).filter(|_| all);
        self.times = times;
        self.asked = asked;
    }

    /// "stopped at 400 of 1000 containers", when it did not get to the end.
    fn stopped(&self) -> Option<String> {
        (self.times.len() < self.asked)
            .then(|| format!("stopped at {} of {} containers", self.times.len(), self.asked))
    }
}

/// Lines of the ruleset without set and map contents (`nft -t`): the rules
/// and declarations, which must not grow with containers and ports.
fn ruleset_lines(h: &TestHost) -> usize {
    h.run("nft", &["-t", "list", "ruleset"]).stdout.lines().count()
}

/// Lines of the whole listing, elements included (`nft list ruleset | wc -l`).
fn listing_lines(h: &TestHost) -> usize {
    h.run("nft", &["list", "ruleset"]).stdout.lines().count()
}

/// The last "N port bindings published in X µs" of the daemon's log.
fn published(h: &TestHost) -> Option<Duration> {
    h.daemon_log()
        .lines()
        .rev()
        .find_map(|l| {
            let (_, rest) = l.split_once("port bindings published in ")?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .map(Duration::from_micros)
}

fn timed_ok(h: &TestHost, args: &[&str]) -> Result<Duration> {
    let t = Instant::now();
    let r = h.berth(args);
    let took = t.elapsed();
    if r.code != 0 {
        bail!(
            "berth {} failed: {}",
            args.first().unwrap_or(&""),
            r.stderr.trim()
        );
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

fn berth(bin: &Path, n: usize) -> Result<Figures> {
    let h = TestHost::new(bin);
    let mut f = Figures::default();
    h.ok(&["network", "create", "--subnet", "10.70.0.0/16", "pb"]);
    f.rules_empty = ruleset_lines(&h);
    let base = timed_ok(
        &h,
        &[
            "run",
            "-d",
            "--name",
            "base",
            "--network",
            "pb",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    let specs: Vec<String> = (0..1000)
        .map(|i| format!("{}:{}", 20000 + i, 20000 + i))
        .collect();
    let mut args = vec!["run", "-d", "--name", "singles", "--network", "pb"];
    for s in &specs {
        args.extend(["-p", s.as_str()]);
    }
    args.extend(["--", "sleep", "3600"]);
    let e2e = timed_ok(&h, &args)?;
    f.singles = published(&h);
    f.singles_e2e = Some(e2e.saturating_sub(base));
    f.rules_ports = ruleset_lines(&h);
    timed_ok(
        &h,
        &[
            "run",
            "-d",
            "--name",
            "range",
            "--network",
            "pb",
            "-p",
            "30000-30999:30000-30999",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    f.range = published(&h);
    h.ok(&["rm", "-f", "singles", "range", "base"]);

    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (format!("{}:80", 40000 + 2 * i), format!("{}:81", 40001 + 2 * i));
        let name = format!("c{i}");
        timed_ok(
            &h,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "pb",
                "-p",
                &a,
                "-p",
                &b,
                "--",
                "sleep",
                "3600",
            ],
        )?;
        times.push(published(&h).context("the daemon logged no port timing")?);
        let log = h.daemon_log();
        if (i == 0 || i + 1 == n)
            && let Some(l) = log.lines().rev().find(|l| l.contains("port bindings published"))
        {
            // "2 port bindings published in 100 µs (choosing …, firewall …)"
            let at = l.find(" port bindings published").unwrap_or(0);
            let from = l[..at].rfind(' ').map_or(0, |s| s + 1);
            let to = l[at..].find(')').map_or(l.len(), |e| at + e + 1);
            println!("berth: container {}: {}", i + 1, &l[from..to]);
        }
        if i == 0 {
            f.rules_one = ruleset_lines(&h);
        }
        if (i + 1) % 100 == 0 {
            eprintln!("berth: {} containers", i + 1);
        }
    }
    f.rules_all = ruleset_lines(&h);
    f.listing_all = listing_lines(&h);
    f.containers(times, n);
    Ok(f)
}

/// netavark's options for container `i` on network `ports` with `maps`.
fn nv_options(i: usize, maps: Value) -> String {
    let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 71, 0, 2)) + i as u32);
    json!({
        "container_id": format!("{i:064x}"),
        "container_name": format!("c{i}"),
        "port_mappings": maps,
        "networks": { "ports": { "interface_name": "eth0", "static_ips": [ip.to_string()] } },
        "network_info": {
            "ports": {
                "name": "ports",
                "id": "c".repeat(64),
                "driver": "bridge",
                "network_interface": "nvports0",
                "subnets": [{ "subnet": "10.71.0.0/16", "gateway": "10.71.0.1" }],
                "ipv6_enabled": false,
                "internal": false,
                "dns_enabled": false,
                "ipam_options": { "driver": "host-local" }
            }
        }
    })
    .to_string()
}

fn nv_map(host: u16, ctr: u16, range: u16) -> Value {
    json!({ "host_ip": "", "container_port": ctr, "host_port": host, "range": range, "protocol": "tcp" })
}

/// A netavark host: a namespace of its own and netavark's config directory;
/// `setup` makes the next container namespace and times `netavark setup`.
struct NvHost {
    h: TestHost,
    config: PathBuf,
    next: usize,
}

impl NvHost {
    fn new(bin: &Path) -> Result<Self> {
        let h = TestHost::without_daemon(bin);
        let config = h.root.join("netavark");
        std::fs::create_dir_all(&config)?;
        Ok(Self { h, config, next: 0 })
    }

    fn setup(&mut self, maps: Value) -> Result<Duration> {
        let ns: PathBuf = self.h.root.join("netns").join(format!("n{}", self.next));
        berth_testkit::make_netns(&ns)?;
        let mut cmd = netavark::command(&self.config, None, "setup", &ns);
        let took = super::timed_in(
            &self.h.ns,
            &mut cmd,
            &nv_options(self.next, maps),
            "netavark setup",
        )?
        .0;
        self.next += 1;
        Ok(took)
    }
}

/// netavark's figures; its containers stop at `deadline`, if there is one.
fn netavark_figures(bin: &Path, n: usize, deadline: Option<Instant>) -> Result<Figures> {
    let mut f = Figures::default();
    // 1000 single ports in a host of their own: a setup the watchdog ends
    // leaves that host half made.
    {
        let mut nv = NvHost::new(bin)?;
        nv.setup(Value::Null)?; // makes the bridge and chains
        let base = nv.setup(Value::Null)?;
        let singles: Vec<Value> = (0..1000u16).map(|i| nv_map(20000 + i, 20000 + i, 1)).collect();
        let t = Instant::now();
        match nv.setup(json!(singles)) {
            Ok(t) => {
                f.singles = Some(t.saturating_sub(base));
                f.singles_e2e = f.singles;
                f.rules_ports = ruleset_lines(&nv.h);
            }
            // Ended by the bench's 30 s watchdog: that is the figure.
            Err(_) if t.elapsed() >= OVER => {
                f.singles = Some(OVER);
                f.singles_e2e = f.singles;
            }
            Err(e) => println!("netavark: 1000 single ports: {e:#}"),
        }
        let mut nv = NvHost::new(bin)?;
        nv.setup(Value::Null)?;
        let base = nv.setup(Value::Null)?;
        let hundred: Vec<Value> = (0..101u16).map(|i| nv_map(20000 + i, 20000 + i, 1)).collect();
        let t = nv.setup(json!(hundred))?;
        f.singles101 = Some(t.saturating_sub(base));
    }
    let mut nv = NvHost::new(bin)?;
    nv.setup(Value::Null)?;
    let base = nv.setup(Value::Null)?;
    f.rules_empty = ruleset_lines(&nv.h);
    let t = nv.setup(json!([nv_map(30000, 30000, 1000)]))?;
    f.range = Some(t.saturating_sub(base));
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let p = 40000 + 2 * i as u16;
        let t = nv.setup(json!([nv_map(p, 80, 1), nv_map(p + 1, 81, 1)]))?;
        times.push(t.saturating_sub(base));
        if i == 0 {
            f.rules_one = ruleset_lines(&nv.h);
        }
        if (i + 1) % 100 == 0 {
            eprintln!("netavark: {} containers", i + 1);
        }
    }
    f.rules_all = ruleset_lines(&nv.h);
    f.listing_all = listing_lines(&nv.h);
    f.containers(times, n);
    Ok(f)
}

/// `-p 127.0.0.1:P:P` for each host port `P` of `ports`.
fn published_on_lo(ports: impl Iterator<Item = (u16, u16)>) -> Vec<String> {
    ports
        .flat_map(|(h, c)| ["-p".to_owned(), format!("127.0.0.1:{h}:{c}")])
        .collect()
}

/// Times `docker run -d --name NAME … PORTS IMAGE sleep 3600`; [`OVER`]
/// when the watchdog ended it.
fn docker_run(d: &Dockerd, name: &str, ports: &[String]) -> Result<Duration> {
    let mut args = vec!["run", "-d", "--name", name, "--network", DOCKER_NET.name];
    args.extend(ports.iter().map(String::as_str));
    args.extend([IMAGE, "sleep", "3600"]);
    let t = Instant::now();
    match super::timed(&mut d.cmd(&args), "", &format!("docker run -d --name {name}")) {
        Ok((took, _)) => Ok(took),
        Err(_) if t.elapsed() >= OVER => Ok(OVER),
        Err(e) => Err(e),
    }
}

/// `docker rm -f NAME`, again while a start the watchdog cut short still
/// holds the container (bounded: a few tries of at most 30 s each).
fn docker_rm(d: &Dockerd, name: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..6 {
        match d.docker(&["rm", "-f", name]) {
            Ok(_) => return Ok(()),
            Err(e) if format!("{e:#}").contains("No such container") => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("docker rm -f {name}"),
        |e| e.context("removing it"),
    ))
}

/// A figure minus the plain run's, unless the watchdog ended it.
fn minus(t: Duration, base: Duration) -> Duration {
    if t >= OVER { OVER } else { t.saturating_sub(base) }
}

/// Docker's figures, and how many docker-proxy processes ran with 1000
/// ports, with 1 container, with all.
fn docker_measure(d: &Dockerd, n: usize, deadline: Option<Instant>) -> Result<(Figures, [usize; 3])> {
    let mut f = Figures::default();
    let mut plain = Vec::new();
    for i in 0..5 {
        let name = format!("plain{i}");
        plain.push(docker_run(d, &name, &[])?);
        docker_rm(d, &name)?;
    }
    plain.sort();
    let (lo, hi) = (plain[0], plain[plain.len() - 1]);
    let base = median(plain).context("no plain run")?;
    // Figures within that spread are noise.
    println!(
        "Docker: a plain `docker run -d` takes {} (median of 5, from {} to {})",
        super::ms(base),
        super::ms(lo),
        super::ms(hi)
    );
    let t = docker_run(
        d,
        "singles101",
        &published_on_lo((0..101).map(|i| (DOCKER_SINGLES + i, DOCKER_SINGLES + i))),
    )?;
    f.singles101 = Some(minus(t, base));
    docker_rm(d, "singles101")?;
    let t = docker_run(
        d,
        "singles",
        &published_on_lo((0..1000).map(|i| (DOCKER_SINGLES + i, DOCKER_SINGLES + i))),
    )?;
    f.singles_e2e = Some(minus(t, base));
    let proxies_ports = d.proxies();
    docker_rm(d, "singles")?;
    let range = format!(
        "127.0.0.1:{}-{}:{}-{}",
        DOCKER_RANGE,
        DOCKER_RANGE + 999,
        DOCKER_RANGE,
        DOCKER_RANGE + 999
    );
    let t = docker_run(d, "range", &["-p".to_owned(), range])?;
    f.range = Some(minus(t, base));
    docker_rm(d, "range")?;
    let m = DOCKER_CONTAINERS.min(n);
    let mut times = Vec::with_capacity(m);
    let mut proxies_one = 0;
    for i in 0..m {
        if i > 0 && deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let p = DOCKER_PAIRS + 2 * i as u16;
        let t = docker_run(
            d,
            &format!("c{i}"),
            &published_on_lo([(p, 80), (p + 1, 81)].into_iter()),
        )?;
        times.push(minus(t, base));
        if i == 0 {
            proxies_one = d.proxies();
        }
        if (i + 1) % 25 == 0 {
            eprintln!("Docker: {} containers", i + 1);
        }
    }
    f.containers(times, m);
    // Docker's last is its 100th, shown in that row.
    f.last = None;
    f.last5 = None;
    Ok((f, [proxies_ports, proxies_one, d.proxies()]))
}

/// Starts the bench's dockerd, measures, and shuts it down; prints what
/// the cleanup found.
fn docker_figures(bin: &Path, n: usize, budget: Option<Duration>) -> Option<(Figures, [usize; 3])> {
    // dockerd in a network namespace of its own, never the machine's: its
    // bridge, its rules, its docker-proxy listeners are there.
    let world = TestHost::without_daemon(bin);
    let ns = world.namespace("docker");
    let mut d = match Dockerd::start_in_with(
        &ns,
        "ports",
        &["sleep"],
        &["--iptables=false", "--ip6tables=false"],
    ) {
        Ok(d) => d,
        Err((e, notes)) => {
            println!("Docker: FAILED to start: {e:#}");
            notes.iter().for_each(|n| println!("Docker cleanup: {n}"));
            return None;
        }
    };
    let net = d.docker(&[
        "network",
        "create",
        "--subnet",
        DOCKER_NET.subnet,
        "--gateway",
        DOCKER_NET.gateway,
        "-o",
        &format!("com.docker.network.bridge.name={}", DOCKER_NET.bridge),
        DOCKER_NET.name,
    ]);
    let got = net.and_then(|_| docker_measure(&d, n, budget.map(|b| Instant::now() + b)));
    let notes = d.shut();
    notes.iter().for_each(|n| println!("Docker cleanup: {n}"));
    match got {
        Ok(f) => Some(f),
        Err(e) => {
            println!("Docker: FAILED: {e:#}");
            None
        }
    }
}

fn cell(d: Option<Duration>) -> String {
    match d {
        Some(d) if d >= OVER => format!("over {} s", OVER.as_secs()),
        Some(d) => super::us(d),
        None => "-".into(),
    }
}

/// `x / y` as "2.0×" (">2.0×" when `x` was cut short).
fn ratio(x: Option<Duration>, y: Option<Duration>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if !y.is_zero() => {
            let over = if x >= OVER { ">" } else { "" };
            format!("{over}{:.1}×", x.as_secs_f64() / y.as_secs_f64())
        }
        _ => "-".into(),
    }
}

pub fn run(args: &[String], session: &mut Session) -> Result<()> {
    let o = Opts::parse(args)?;
    eprintln!("building berth (release) …");
    let bin = crate::build_berth(true)?;
    super::warn_if_busy();
    println!(
        "publish 1000 single ports and a 1000-port range on one container; then {} containers with 2 ports each",
        o.containers
    );
    println!(
        "berth: {} (release build of this tree); figures from the daemon's log",
        bin.display()
    );
    let m = DOCKER_CONTAINERS.min(o.containers);
    let docker_missing = docker::missing();
    match &docker_missing {
        Some(why) => println!("Docker: {why}: no Docker figures in this run"),
        None => println!(
            "Docker: {}, its own dockerd in a network namespace of its own (--iptables=false, so ports go \
             through docker-proxy, on 127.0.0.1 only); figures are `docker run -d` with ports minus a plain one; \
             {m} containers, not {}: a docker run costs ~0.3 s",
            super::first_line(docker::DOCKERD, &["--version"]).unwrap_or_else(|| "unknown version".into()),
            o.containers
        ),
    }
    let nv_installed = Path::new(netavark::BIN).exists();
    if !nv_installed {
        println!(
            "netavark: NOT INSTALLED ({}): no netavark figures in this run",
            netavark::INSTALL
        );
    } else {
        println!(
            "netavark: {} with NETAVARK_FW=iptables; figures are `netavark setup` with ports minus without",
            netavark::BIN
        );
    }

    let budget = session.budget(o.peer_seconds.map_or(PEER_BUDGET, Duration::from_secs));
    if let Some(b) = budget.filter(|_| o.peers) {
        println!(
            "netavark and Docker get {} s each (--full: no budget); one still starting containers then stops there",
            b.as_secs()
        );
    }
    let quiet = Quiet::default();
    quiet.settle();
    let b = berth(&bin, o.containers)?;
    let nv = if nv_installed && o.peers {
        quiet.settle();
        match netavark_figures(&bin, o.containers, budget.map(|b| Instant::now() + b)) {
            Ok(f) => Some(f),
            Err(e) => {
                println!("netavark: FAILED: {e:#}");
                None
            }
        }
    } else {
        None
    };

    let dk = if docker_missing.is_none() && o.peers {
        quiet.settle();
        docker_figures(&bin, o.containers, budget)
    } else {
        None
    };
    for (label, f) in [("netavark", nv.as_ref()), ("Docker", dk.as_ref().map(|(f, _)| f))] {
        if let (Some(why), Some(b)) = (f.and_then(Figures::stopped), budget) {
            session.note(format!("{label}: {why} after its {} s budget", b.as_secs()));
        }
    }

    let n = o.containers;
    let mut header = vec!["".to_owned(), "berth".to_owned()];
    if nv.is_some() {
        header.extend(["netavark".to_owned(), "netavark / berth".to_owned()]);
    }
    if dk.is_some() {
        header.extend(["Docker".to_owned(), "Docker / berth".to_owned()]);
    }
    type Time = fn(&Figures) -> Option<Duration>;
    let mut rows: Vec<(String, Time)> = vec![
        ("101 single ports (Docker's example)".into(), |f| f.singles101),
        ("1000 single ports (port work)".into(), |f| f.singles),
        ("1000 single ports (whole run - plain run)".into(), |f| {
            f.singles_e2e
        }),
        ("1000-port range".into(), |f| f.range),
        ("1st container, 2 ports".into(), |f| f.first),
        (format!("{n}th container, 2 ports"), |f| f.last),
        ("first 5 containers, median".into(), |f| f.first5),
        ("last 5 containers, median".into(), |f| f.last5),
    ];
    if m != n {
        rows.insert(5, (format!("{m}th container, 2 ports"), |f| f.hundredth));
    }
    let mut body = Vec::new();
    let stopped = |f: &Figures, label: &str| {
        f.stopped()
            .filter(|_| label.contains("th container") || label.starts_with("last 5"))
            .map(|_| format!("stopped at {}", f.times.len()))
    };
    for (label, get) in &rows {
        let mut r = vec![label.clone(), cell(get(&b))];
        for f in nv.iter().chain(dk.as_ref().map(|(f, _)| f)) {
            r.push(
                stopped(f, label)
                    .filter(|_| get(f).is_none())
                    .unwrap_or_else(|| cell(get(f))),
            );
            r.push(ratio(get(f), get(&b)));
        }
        body.push(r);
    }
    type Lines = fn(&Figures) -> usize;
    let lines: [(&str, Lines); 5] = [
        ("nft -t list ruleset lines, network only", |f| f.rules_empty),
        ("nft -t list ruleset lines, + 1000 ports", |f| f.rules_ports),
        ("nft -t list ruleset lines, 1 container", |f| f.rules_one),
        ("nft -t list ruleset lines, all containers", |f| f.rules_all),
        ("nft list ruleset lines (elements too), all", |f| f.listing_all),
    ];
    for (label, get) in lines {
        let mut r = vec![label.to_owned(), get(&b).to_string()];
        if let Some(nv) = &nv {
            r.push(get(nv).to_string());
            r.push(String::new());
        }
        if dk.is_some() {
            r.extend(["not measured".to_owned(), String::new()]);
        }
        body.push(r);
    }
    super::print_table(&header, &body);
    if dk.is_some() {
        println!(
            "Docker's times are a whole `docker run -d` minus a plain one (dockerd does not log its port work): \
             compare them with berth's \"whole run\" row; berth's other rows are its port work alone"
        );
    }
    if let Some((f, [ports, one, all])) = &dk {
        let cut = if f.singles_e2e >= Some(OVER) {
            " (so far: that run was ended at 30 s)"
        } else {
            ""
        };
        println!(
            "Docker's ruleset is not measured: the bench runs dockerd with --iptables=false, so it writes no rules; \
             what grows is its docker-proxy processes, one a published port: {ports} with 1000 single ports{cut}, \
             {one} with 1 container, {all} with {m} containers"
        );
    }

    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    if let Some(s) = b.singles {
        println!(
            "target: 1000 single ports published in under 100 ms: {} ({})",
            super::ms(s),
            verdict(s < Duration::from_millis(100))
        );
    }
    if let (Some(a), Some(z)) = (b.first, b.last) {
        let ratio = z.as_secs_f64() / a.as_secs_f64().max(1e-9);
        println!(
            "target: the {n}th container's port setup within 1.3× of the 1st: {} vs {} = {ratio:.2}× ({})",
            super::us(z),
            super::us(a),
            verdict(ratio <= 1.3)
        );
    }
    if let (Some(a), Some(z)) = (b.first5, b.last5) {
        println!(
            "  (medians of the first and last 5: {} vs {} = {:.2}×)",
            super::us(a),
            super::us(z),
            z.as_secs_f64() / a.as_secs_f64().max(1e-9)
        );
    }
    let same = b.rules_empty == b.rules_ports && b.rules_one == b.rules_all && b.rules_empty == b.rules_one;
    println!(
        "target: ruleset size independent of containers and ports: {} / {} / {} / {} lines ({})",
        b.rules_empty,
        b.rules_ports,
        b.rules_one,
        b.rules_all,
        verdict(same)
    );
    let peers: Vec<(&str, &Figures)> = [("netavark", nv.as_ref()), ("Docker", dk.as_ref().map(|(f, _)| f))]
        .into_iter()
        .filter_map(|(l, f)| Some((l, f?)))
        .collect();
    summarize(&b, &peers, n, session);
    draw(&b, &peers, session)
}

/// The headline figures for the summary.
fn summarize(b: &Figures, peers: &[(&str, &Figures)], n: usize, session: &mut Session) {
    type Time = fn(&Figures) -> Option<Duration>;
    // `at`: the container a row is about; a peer that stopped before it
    // says where it stopped.
    let line = |work: String, get: Time, at: Option<usize>| {
        let mut l = Line::new(work, cell(get(b)));
        let mut figures = Vec::new();
        for (label, f) in peers {
            let d = get(f).filter(|d| *d < OVER);
            let short = at.is_some_and(|at| f.times.len() < at.min(f.asked)) && f.stopped().is_some();
            l = match get(f) {
                None if short => l.peer(label, format!("stopped at {} of {}", f.times.len(), f.asked)),
                got => l.peer(label, cell(got)),
            };
            figures.push((*label, d));
        }
        l.ratio(super::peer_ratios(get(b), &figures))
    };
    let singles = b.singles;
    session.add(
        line(
            "1000 single ports on one container (port work)".into(),
            |f| f.singles,
            None,
        )
        .target(
            "< 100 ms",
            Verdict::of(singles.map(|s| s < Duration::from_millis(100))),
        ),
    );
    session.add(line(
        "1000 single ports (whole run − plain run)".into(),
        |f| f.singles_e2e,
        None,
    ));
    session.add(line("1000-port range".into(), |f| f.range, None));
    session.add(line("1st container, 2 ports".into(), |f| f.first, Some(1)));
    let m = DOCKER_CONTAINERS.min(n);
    if m != n {
        session.add(line(
            format!("{m}th container, 2 ports"),
            |f| f.hundredth,
            Some(m),
        ));
    }
    session.add(line(format!("{n}th container, 2 ports"), |f| f.last, Some(n)));
    // A peer that stopped: its last container against its first, said so.
    let growth = |f: &Figures| -> String {
        let last = f.times.last().copied();
        match (f.first, last) {
            (Some(a), Some(z)) if !a.is_zero() => {
                let x = z.as_secs_f64() / a.as_secs_f64();
                match f.stopped() {
                    Some(_) => format!("{x:.2}× (container {} ÷ container 1)", f.times.len()),
                    None => format!("{x:.2}×"),
                }
            }
            _ => "—".into(),
        }
    };
    let x = match (b.first, b.last) {
        (Some(a), Some(z)) if !a.is_zero() => Some(z.as_secs_f64() / a.as_secs_f64()),
        _ => None,
    };
    let mut l = Line::new(format!("{n}th container's port setup ÷ the 1st's"), growth(b));
    for (label, f) in peers {
        if f.asked == n {
            l = l.peer(label, growth(f));
        }
    }
    session.add(l.target("≤ 1.3×", Verdict::of(x.map(|x| x <= 1.3))));
    let same = b.rules_empty == b.rules_ports && b.rules_one == b.rules_all && b.rules_empty == b.rules_one;
    let mut l = Line::new(
        "nft -t ruleset lines: network / +1000 ports / 1 container / all",
        format!(
            "{} / {} / {} / {}",
            b.rules_empty, b.rules_ports, b.rules_one, b.rules_all
        ),
    );
    if let Some((label, f)) = peers.iter().find(|(l, _)| *l == "netavark") {
        l = l.peer(
            label,
            format!(
                "{} / {} / {} / {}",
                f.rules_empty, f.rules_ports, f.rules_one, f.rules_all
            ),
        );
    }
    session.add(l.target("independent of containers and ports", Verdict::of(Some(same))));
}

/// Draws each subject's port setup per container against the containers
/// before it (medians of buckets, about 50 points a curve), in `ports.svg`.
fn draw(b: &Figures, peers: &[(&str, &Figures)], session: &mut Session) -> Result<()> {
    let width = (b.times.len() / 50).max(1);
    let curve = |f: &Figures| {
        let ms: Vec<f64> = f.times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        chart::bucket_medians(&ms, width)
    };
    let mut series = vec![Series {
        label: "berth (port work)".into(),
        points: curve(b),
    }];
    for (label, f) in peers {
        let label = match *label {
            "Docker" => "Docker (run − plain run)".to_owned(),
            "netavark" => "netavark (setup − plain)".to_owned(),
            other => other.to_owned(),
        };
        let label = match f.stopped() {
            Some(_) => format!("{label}, stopped at {}", f.times.len()),
            None => label,
        };
        series.push(Series {
            label,
            points: curve(f),
        });
    }
    series.retain(|s| !s.points.is_empty());
    let title = if width > 1 {
        format!("port setup of a new container with 2 ports (medians of {width})")
    } else {
        "port setup of a new container with 2 ports".into()
    };
    let chart = Chart {
        title,
        x_label: "containers with ports already running".into(),
        y_label: "port setup (ms)".into(),
        series,
    };
    session.chart("ports", &chart.svg())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        let o = Opts::parse(&[]).unwrap();
        assert_eq!((o.containers, o.peers, o.peer_seconds), (1000, true, None));
        let o = Opts::parse(&args("--containers 20 --peer-seconds 5 --no-peers")).unwrap();
        assert_eq!((o.containers, o.peers, o.peer_seconds), (20, false, Some(5)));
        for (a, want) in [
            ("--containers 1", "--containers"),
            ("--peer-seconds 0", "--peer-seconds"),
            ("--fast", "unknown option"),
        ] {
            let e = format!("{:#}", Opts::parse(&args(a)).err().unwrap());
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn the_summary_says_where_a_peer_stopped() {
        let ms = Duration::from_millis;
        let mut b = Figures {
            singles: Some(ms(10)),
            ..Figures::default()
        };
        b.containers(vec![ms(1); 10], 10);
        let mut nv = Figures::default();
        nv.containers(vec![ms(5), ms(50)], 10);
        let mut summary = crate::bench::Summary::default();
        let mut s = Session {
            full: false,
            out: PathBuf::new(),
            bench: "ports",
            summary: &mut summary,
        };
        summarize(&b, &[("netavark", &nv)], 10, &mut s);
        let md = summary.markdown("date", "machine", "command");
        for want in [
            "| ports | 10th container, 2 ports | 1.00 ms | stopped at 2 of 10 |",
            "| ports | 1st container, 2 ports | 1.00 ms | 5.00 ms | peer ÷ berth: netavark 5.0× |",
            "| 1.00× | 10.00× (container 2 ÷ container 1) |  | ≤ 1.3× | met |",
            "| 10.0 ms | - |  | < 100 ms | met |",
            "| 1000-port range | - | - |",
        ] {
            assert!(md.contains(want), "{want:?} not in\n{md}");
        }
    }

    #[test]
    fn a_peer_that_stopped_says_how_far_it_got() {
        let ms = |n: u64| Duration::from_millis(n);
        let mut f = Figures::default();
        f.containers(vec![ms(1), ms(2), ms(3)], 10);
        assert_eq!(f.stopped().as_deref(), Some("stopped at 3 of 10 containers"));
        assert_eq!((f.first, f.last, f.last5), (Some(ms(1)), None, None));
        let mut f = Figures::default();
        f.containers(vec![ms(1), ms(2), ms(3)], 3);
        assert_eq!((f.stopped(), f.last), (None, Some(ms(3))));
    }
}
