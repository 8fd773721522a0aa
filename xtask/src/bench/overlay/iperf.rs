//! iperf3 TCP throughput from host B to host A, one stream, over each
//! [`Lane`] in turn: the underlay itself, a bare VXLAN pair ([`BarePair`]),
//! and each subject's overlay, container to container.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::{in_netns, run_in};
use serde_json::Value;

/// Debian's iperf3, and how to get it.
pub const IPERF3: &str = "/usr/bin/iperf3";
pub const INSTALL: &str = "apt-get install iperf3";
/// Its port, in each server's own namespace.
const PORT: &str = "5201";
/// How long a server gets to say that it listens.
const LISTEN_WAIT: Duration = Duration::from_secs(5);
/// Seconds of each test left out of its figure: TCP's slow start.
const OMIT: &str = "1";

/// The bare pair's device, VNI, port and addresses (`.1` on host A).
const BARE_DEV: &str = "vxbare";
const BARE_VNI: u32 = 4242;
const VXLAN_PORT: u16 = 4789;
const BARE_PREFIX: &str = "10.215.0";
/// VXLAN's headers, which a device's MTU leaves room for.
pub const VXLAN_OVERHEAD: u32 = 50;

/// One way from host B to host A: a client's namespace, and the address
/// of a server in another namespace.
pub struct Lane {
    pub label: String,
    pub client: PathBuf,
    pub server: Ipv4Addr,
}

/// An iperf3 server inside a namespace; ended by its pid when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts it inside `ns` and waits until it listens.
    pub fn start(ns: &Path) -> Result<Self> {
        let mut cmd = Command::new(IPERF3);
        // Its lines reach the pipe as they are printed.
        cmd.args(["-s", "-p", PORT, "--forceflush"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        in_netns(&mut cmd, ns).context("opening the server's namespace")?;
        let mut child = cmd.spawn().context("starting iperf3 -s")?;
        let out = child.stdout.take().context("iperf3's stdout")?;
        let (tx, rx) = mpsc::channel();
        // Reads to the end, so that the server never waits on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = tx.send(());
                }
            }
        });
        let server = Self { child };
        ensure!(
            rx.recv_timeout(LISTEN_WAIT).is_ok(),
            "iperf3 -s did not listen within {} s in {}",
            LISTEN_WAIT.as_secs(),
            ns.display()
        );
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test of `secs` seconds (after [`OMIT`]) over `lane`: bits per
/// second received.
pub fn test(lane: &Lane, secs: u32) -> Result<f64> {
    let mut cmd = Command::new(IPERF3);
    cmd.args(["-c", &lane.server.to_string(), "-p", PORT, "-O", OMIT, "-J", "-t"])
        .arg(secs.to_string());
    let what = format!("iperf3 -c {} ({})", lane.server, lane.label);
    let (_, out) = crate::bench::timed_in(&lane.client, &mut cmd, "", &what)?;
    received(&out).with_context(|| format!("reading {what}'s report"))
}

/// `end.sum_received.bits_per_second` of an iperf3 JSON report.
fn received(report: &str) -> Result<f64> {
    let v: Value = serde_json::from_str(report).context("not JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .filter(|b| *b > 0.0)
        .with_context(|| format!("no received rate in {}", v["end"]))
}

/// The MTU of `eth0` (or `dev`) inside `ns`, as `ip link` shows it.
pub fn mtu(ns: &Path, dev: &str) -> Result<u32> {
    let r = run_in(ns, "ip", &["-o", "link", "show", "dev", dev]);
    let w: Vec<&str> = r.stdout.split_whitespace().collect();
    w.iter()
        .position(|x| *x == "mtu")
        .and_then(|at| w.get(at + 1)?.parse().ok())
        .with_context(|| format!("the MTU of {dev} in {}: {}{}", ns.display(), r.stdout, r.stderr))
}

/// A VXLAN device in each of two host namespaces, with an address on it
/// and the other host as its remote: no bridge, no container, nothing
/// learned. What any VXLAN overlay between the two can carry at most.
pub struct BarePair {
    hosts: [PathBuf; 2],
}

impl BarePair {
    /// Makes it between `hosts` (namespace, underlay address), with the
    /// MTU of the underlay's `eth0` minus [`VXLAN_OVERHEAD`].
    pub fn new(hosts: [(&Path, Ipv4Addr); 2]) -> Result<Self> {
        let pair = Self {
            hosts: hosts.map(|(ns, _)| ns.to_owned()),
        };
        for (i, (ns, local)) in hosts.iter().enumerate() {
            let remote = hosts[1 - i].1;
            let mtu = mtu(ns, "eth0")? - VXLAN_OVERHEAD;
            let script = format!(
                "ip link add {BARE_DEV} mtu {mtu} type vxlan id {BARE_VNI} local {local} remote {remote} \
                 dstport {VXLAN_PORT} dev eth0 && ip addr add {}/24 dev {BARE_DEV} && ip link set {BARE_DEV} up",
                Self::address(i)
            );
            let r = run_in(ns, "sh", &["-c", &script]);
            ensure!(r.code == 0, "making the bare VXLAN pair: {}", r.stderr.trim());
        }
        Ok(pair)
    }

    /// The address of host `i`'s end.
    pub fn address(i: usize) -> Ipv4Addr {
        format!("{BARE_PREFIX}.{}", i + 1)
            .parse()
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The MTU of its devices.
    pub fn mtu(&self) -> Result<u32> {
        mtu(&self.hosts[0], BARE_DEV)
    }
}

impl Drop for BarePair {
    fn drop(&mut self) {
        for ns in &self.hosts {
            // Gone with its namespace anyway; "not found" is fine.
            let _ = run_in(ns, "ip", &["link", "del", BARE_DEV]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_the_received_rate() {
        let r = r#"{"end":{"sum_sent":{"bits_per_second":2e10},"sum_received":{"bits_per_second":1.5e10}}}"#;
        assert_eq!(received(r).unwrap(), 1.5e10);
        let e = format!("{:#}", received(r#"{"error":"unable to connect"}"#).unwrap_err());
        assert!(e.contains("unable to connect"), "{e}");
        assert!(received(r#"{"end":{}}"#).is_err());
    }

    #[test]
    fn the_pair_has_an_address_per_host() {
        assert_eq!(BarePair::address(0), Ipv4Addr::new(10, 215, 0, 1));
        assert_eq!(BarePair::address(1), Ipv4Addr::new(10, 215, 0, 2));
        assert!(BARE_DEV.len() <= 15);
    }
}
