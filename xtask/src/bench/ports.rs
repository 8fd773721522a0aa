//! `cargo xtask bench ports`: publishing ports at scale, berth next to
//! netavark (and Docker, see below), in the same run.
//!
//! - publish 1000 single ports on one container, and 1000 ports as one range;
//! - start the 1st and the Nth container (default 1000) each with 2 ports;
//! - the size of the ruleset (`nft list ruleset | wc -l`) after each step.
//!
//! berth's figures are the daemon's own (its log line "N port bindings
//! published in µs": choosing and checking host ports, and the netlink
//! batch), next to the whole `berth run` minus a `berth run` without ports.
//! netavark's are `netavark setup` with the port mappings minus a setup
//! without. Everything runs in throwaway namespaces.
//!
//! Docker is not measured here: its port publishing writes iptables rules
//! (and starts a docker-proxy per port) in the namespace dockerd runs in,
//! which is the machine's own, and benches never touch it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::TestHost;
use serde_json::{Value, json};

use super::netavark;

struct Opts {
    containers: usize,
    peers: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Opts {
            containers: 1000,
            peers: true,
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
                other => {
                    bail!("unknown option {other:?} for bench ports (options: --containers N, --no-peers)")
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
    rules_empty: usize,
    rules_ports: usize,
    rules_one: usize,
    rules_all: usize,
    listing_all: usize,
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
    f.first = times.first().copied();
    f.last = times.last().copied();
    f.first5 = median(times.iter().take(5).copied().collect());
    f.last5 = median(times.iter().rev().take(5).copied().collect());
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

fn netavark_figures(bin: &Path, n: usize) -> Result<Figures> {
    let mut f = Figures::default();
    // 1000 single ports in a host of their own: a setup the watchdog ends
    // leaves that host half made.
    {
        let mut nv = NvHost::new(bin)?;
        nv.setup(Value::Null)?; // makes the bridge and chains
        let base = nv.setup(Value::Null)?;
        let singles: Vec<Value> = (0..1000u16).map(|i| nv_map(20000 + i, 20000 + i, 1)).collect();
        match nv.setup(json!(singles)) {
            Ok(t) => {
                f.singles = Some(t.saturating_sub(base));
                f.singles_e2e = f.singles;
                f.rules_ports = ruleset_lines(&nv.h);
            }
            // Ended by the bench's 30 s watchdog: that is the figure.
            Err(e) => println!("netavark: 1000 single ports: {e:#} (the bench ends any process after 30 s)"),
        }
        let mut nv = NvHost::new(bin)?;
        nv.setup(Value::Null)?;
        let base = nv.setup(Value::Null)?;
        let hundred: Vec<Value> = (0..101u16).map(|i| nv_map(20000 + i, 20000 + i, 1)).collect();
        let t = nv.setup(json!(hundred))?;
        println!(
            "netavark: 101 single ports (Docker's example): {}",
            super::ms(t.saturating_sub(base))
        );
    }
    let mut nv = NvHost::new(bin)?;
    nv.setup(Value::Null)?;
    let base = nv.setup(Value::Null)?;
    f.rules_empty = ruleset_lines(&nv.h);
    let t = nv.setup(json!([nv_map(30000, 30000, 1000)]))?;
    f.range = Some(t.saturating_sub(base));
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
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
    f.first = times.first().copied();
    f.last = times.last().copied();
    f.first5 = median(times.iter().take(5).copied().collect());
    f.last5 = median(times.iter().rev().take(5).copied().collect());
    Ok(f)
}

fn cell(d: Option<Duration>) -> String {
    d.map(super::us).unwrap_or_else(|| "-".into())
}

pub fn run(args: &[String]) -> Result<()> {
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
    println!(
        "Docker: NOT MEASURED: dockerd publishes ports with iptables rules and docker-proxy processes \
         in the machine's own namespace, which benches never touch (Docker's own figure: about 9 s for 101 ports)"
    );
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

    super::settle();
    let b = berth(&bin, o.containers)?;
    let nv = if nv_installed && o.peers {
        super::settle();
        match netavark_figures(&bin, o.containers) {
            Ok(f) => Some(f),
            Err(e) => {
                println!("netavark: FAILED: {e:#}");
                None
            }
        }
    } else {
        None
    };

    let n = o.containers;
    let mut header = vec!["".to_owned(), "berth".to_owned()];
    if nv.is_some() {
        header.extend(["netavark".to_owned(), "netavark / berth".to_owned()]);
    }
    type Time = fn(&Figures) -> Option<Duration>;
    let rows: Vec<(String, Time)> = vec![
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
    let mut body = Vec::new();
    for (label, get) in &rows {
        let mut r = vec![label.clone(), cell(get(&b))];
        if let Some(nv) = &nv {
            r.push(cell(get(nv)));
            r.push(match (get(nv), get(&b)) {
                (Some(x), Some(y)) if !y.is_zero() => format!("{:.1}×", x.as_secs_f64() / y.as_secs_f64()),
                _ => "-".into(),
            });
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
        body.push(r);
    }
    super::print_table(&header, &body);

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
    Ok(())
}
