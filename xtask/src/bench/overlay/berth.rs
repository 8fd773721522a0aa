//! berth's side of the overlay bench: hosts A and B of testkit's `Fabric`
//! (its hosts 0 and 1, etcd in the fabric's namespace), the overlay
//! network [`NETWORK`] with [`WATCHER`] on host B; and the attach figure on
//! host A, where the network is already up.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::TestHost;
use berth_testkit::fabric::Fabric;
use serde_json::{Value, json};

use crate::bench::attach::{self, Cell, timed_post};
use crate::bench::attacher::Subject as Attacher;
use crate::bench::two_hosts::{SLEEP, Subject, WATCHER};
use crate::bench::{Quiet, ms};

/// The overlay network, and the first three bytes of its /24.
pub const NETWORK: &str = "ov";
const PREFIX: [u8; 3] = [10, 216, 0];
/// The bridge network the overlay's attach is held against, and the one
/// that gives the probe its sandbox.
const BRIDGE: (&str, &str) = ("br", "10.87.0.0/16");
const SCRATCH: (&str, &str) = ("scratch", "10.86.0.0/24");
/// Untimed attach/detach rounds before each round's timed ones.
const WARMUP: usize = 2;
/// How long host B may take to learn of a new network.
const LEARN_WAIT: Duration = Duration::from_secs(5);
/// Lines of each daemon's log shown with a berth error.
const LOG_TAIL: usize = 20;

/// berth on two hosts of a fabric: see the module docs.
pub struct Berth {
    fabric: Fabric,
    watcher: PathBuf,
}

impl Berth {
    /// A fabric of two hosts, with an underlay of `mtu` bytes when given
    /// (set before the daemons start, so that they read it), the network
    /// and the watcher.
    pub fn new(bin: &Path, mtu: Option<u32>) -> Result<Self> {
        let mut fabric = Fabric::build(bin, 0, 1, false);
        if let Some(mtu) = mtu {
            fabric.set_underlay_mtu(mtu);
        }
        fabric.add_host();
        fabric.add_host();
        let mut b = Self {
            fabric,
            watcher: PathBuf::new(),
        };
        let r = b.setup();
        b.explain(r)?;
        Ok(b)
    }

    fn setup(&mut self) -> Result<()> {
        let [a, b, c] = PREFIX;
        let subnet = format!("{a}.{b}.{c}.0/24");
        self.berth(
            0,
            &["network", "create", "-d", "overlay", "--subnet", &subnet, NETWORK],
        )?;
        let deadline = Instant::now() + LEARN_WAIT;
        while self.host(1).berth(&["network", "inspect", NETWORK]).code != 0 {
            ensure!(
                Instant::now() < deadline,
                "host B did not learn of {NETWORK} within {} s",
                LEARN_WAIT.as_secs()
            );
            thread::sleep(Duration::from_millis(20));
        }
        let mut run = vec!["run", "-d", "--name", WATCHER, "--network", NETWORK, "--"];
        run.extend(SLEEP);
        self.berth(1, &run)?;
        self.watcher = self.sandbox_on(1, WATCHER)?;
        Ok(())
    }

    /// Host `i`: A is 0, B is 1.
    pub fn host(&self, i: usize) -> &TestHost {
        self.fabric.host(i)
    }

    /// Host `i`'s underlay address.
    pub fn underlay(i: usize) -> Ipv4Addr {
        Fabric::address(i).parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn berth(&self, host: usize, args: &[&str]) -> Result<String> {
        crate::bench::berth_ok(self.host(host), args)
    }

    fn sandbox_on(&self, host: usize, name: &str) -> Result<PathBuf> {
        let out = self.berth(host, &["inspect", name])?;
        let v: Value = serde_json::from_str(&out).with_context(|| format!("parsing berth inspect {name}"))?;
        let key = v[0]["NetworkSettings"]["SandboxKey"].as_str().unwrap_or_default();
        ensure!(!key.is_empty(), "{name} has no SandboxKey: {v}");
        Ok(PathBuf::from(key))
    }

    /// Adds the end of both daemons' logs to an error.
    pub fn explain<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| {
            let mut tails = String::new();
            for (i, h) in ["A", "B"].iter().enumerate() {
                let log = self.host(i).daemon_log();
                let lines: Vec<&str> = log.lines().collect();
                tails.push_str(&format!(
                    "\nhost {h}'s berth daemon, last {LOG_TAIL} lines of its log:\n  {}",
                    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ")
                ));
            }
            e.context(tails)
        })
    }

    /// Attach and detach of a probe sandbox on host A, through the API as
    /// the attach bench times them: to the bridge network, to the overlay
    /// (up on host A already: the bench's server runs there), which brings
    /// the probe's way out on the gateway bridge too, and to the overlay
    /// while the probe is on another bridge network already (its way out:
    /// the overlay's endpoint alone), `n` of each in `rounds` rounds taken
    /// in turn. Returns the figures in that order.
    pub fn attach(
        &self,
        n: usize,
        rounds: usize,
        quiet: &Quiet,
        progress: &dyn Fn(&str),
    ) -> Result<[Cell; 3]> {
        let a = self.host(0);
        for (name, subnet) in [BRIDGE, SCRATCH] {
            self.berth(0, &["network", "create", "--subnet", subnet, name])?;
        }
        let probe = attach::probe(&a.socket)?;
        let mut subjects = [BRIDGE.0, NETWORK, NETWORK].map(|network| Connector {
            socket: &a.socket,
            network,
            host: &a.ns,
            probe: &probe,
        });
        // Once, untimed: the overlay's attach gives the probe an address
        // on the overlay.
        subjects[1].attach()?;
        let addr = berth_testkit::run_in(&probe, "ip", &["-4", "-o", "addr", "show"]).stdout;
        let [p0, p1, p2] = PREFIX;
        ensure!(
            addr.contains(&format!(" {p0}.{p1}.{p2}.")),
            "after attaching to {NETWORK}, the probe has no address on it: {addr:?}"
        );
        subjects[1].detach()?;
        // The third subject's probe holds the scratch network meanwhile.
        let scratch = Connector {
            network: SCRATCH.0,
            ..subjects[0]
        };
        let mut out = [Cell::default(), Cell::default(), Cell::default()];
        for round in 0..rounds {
            let count = n / rounds + usize::from(round < n % rounds);
            for (k, (s, total)) in subjects.iter_mut().zip(&mut out).enumerate() {
                if k == 2 {
                    scratch.post("connect")?;
                }
                quiet.settle();
                let c = attach::measure(s, WARMUP, count, false);
                if k == 2 {
                    scratch.post("disconnect")?;
                }
                let c = c?;
                total.attach.0.extend(c.attach.0);
                total.detach.0.extend(c.detach.0);
                total.cut |= c.cut;
            }
            let m = |c: &Cell| c.attach.median().map_or_else(|| "—".into(), ms);
            progress(&format!(
                "round {}/{rounds}: attach to the bridge {}, to the overlay {} (on a bridge already: {}) (medians so far)",
                round + 1,
                m(&out[0]),
                m(&out[1]),
                m(&out[2])
            ));
        }
        Ok(out)
    }
}

/// Connects the probe to one network and disconnects it, through the API.
struct Connector<'a> {
    socket: &'a Path,
    network: &'a str,
    host: &'a Path,
    probe: &'a Path,
}

impl Connector<'_> {
    /// `POST /networks/NETWORK/VERB` for the probe, timed.
    fn post(&self, verb: &str) -> Result<Duration> {
        let body = json!({ "Container": "probe" }).to_string();
        timed_post(self.socket, &format!("/networks/{}/{verb}", self.network), &body)
    }
}

impl Attacher for Connector<'_> {
    fn add_other(&mut self, _: usize) -> Result<()> {
        bail!("the overlay bench attaches no other sandboxes")
    }

    fn attach(&mut self) -> Result<Duration> {
        self.post("connect")
    }

    fn detach(&mut self) -> Result<Duration> {
        self.post("disconnect")
    }

    fn host_ns(&self) -> &Path {
        self.host
    }

    fn probe_ns(&self) -> &Path {
        self.probe
    }
}

impl Subject for Berth {
    fn address(&self, n: u8) -> Ipv4Addr {
        let [a, b, c] = PREFIX;
        Ipv4Addr::new(a, b, c, n)
    }

    fn run(&mut self, name: &str, ip: Option<Ipv4Addr>) -> Result<Duration> {
        let ip = ip.map(|ip| ip.to_string());
        let mut args = vec!["run", "-d", "--name", name, "--network", NETWORK];
        if let Some(ip) = &ip {
            args.extend(["--ip", ip]);
        }
        args.push("--");
        args.extend(SLEEP);
        let mut cmd = self.host(0).client_cmd(&args);
        let r = crate::bench::timed(&mut cmd, "", &format!("berth run -d --name {name}"));
        Ok(self.explain(r)?.0)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let r = self.berth(0, &["rm", "-f", name]);
        self.explain(r).map(drop)
    }

    fn sandbox(&self, name: &str) -> Result<PathBuf> {
        self.sandbox_on(0, name)
    }

    fn watcher(&self) -> &Path {
        &self.watcher
    }
}
