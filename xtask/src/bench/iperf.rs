//! iperf3 TCP throughput over a [`Lane`]: a client in one namespace, a
//! [`Server`] in another, `-P N` streams, the received rate from its JSON
//! report. The overlay bench and the dataplane bench measure with it.

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

/// One way between two namespaces: a client's namespace, and the address
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

/// One test of `secs` seconds (after [`OMIT`]) with `streams` parallel
/// TCP streams (`-P`) over `lane`: bits per second received, all streams
/// together.
pub fn test(lane: &Lane, secs: u32, streams: u32) -> Result<f64> {
    let mut cmd = Command::new(IPERF3);
    cmd.args(["-c", &lane.server.to_string(), "-p", PORT, "-O", OMIT, "-J", "-t"])
        .arg(secs.to_string())
        .arg("-P")
        .arg(streams.to_string());
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
        assert!(received("iperf3: error").is_err());
    }
}
