//! `--costs`: what berth's bridge path costs next to the bare veth pair.
//! Each [`Variant`] changes one thing, inside the bench's namespaces only
//! (berth's test host and its two containers; never the machine's), for
//! its turn, and puts it back after: br_netfilter's hooks for bridged
//! traffic, conntrack for traffic that stays on the bridge, GRO, TSO and
//! checksum offloads, and the veths' queue count. Rounds take turns as
//! in the main run, with the bare pair measured in each round as the
//! reference. berth itself is not changed: a setting that helps is
//! reported with its figures.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use berth_testkit::{TestHost, run_in};

use super::report::median;
use super::subjects::Pair;
use super::{Opts, turn};
use crate::bench::iperf::{self, Lane};
use crate::bench::{Line, Quiet, Session, print_table};

/// A shell loop over the bridge ports of every bridge in the host: `$d`.
const PORTS: &str = "for br in $(ip -o link show type bridge | cut -d: -f2); do \
     for d in $(ip -o link show master $br | cut -d: -f2 | cut -d@ -f1); do";

/// One change, made by scripts run in the host namespace and in each of
/// the two containers, undone by the same after its turn.
struct Variant {
    label: &'static str,
    host: (&'static str, &'static str),
    ends: (&'static str, &'static str),
}

fn variants() -> Vec<Variant> {
    vec![
        Variant {
            label: "as berth sets it up",
            host: ("", ""),
            ends: ("", ""),
        },
        Variant {
            label: "bridge-nf-call-iptables=0 in the host (br_netfilter hooks off)",
            host: (
                "sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
                 net.bridge.bridge-nf-call-arptables=0",
                "sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 \
                 net.bridge.bridge-nf-call-arptables=1",
            ),
            ends: ("", ""),
        },
        Variant {
            label: "no conntrack for traffic within the bridge's subnet (notrack)",
            host: (
                "nft add table inet dpcost && nft add chain inet dpcost pre '{ type filter hook prerouting \
                 priority -300; }' && nft add rule inet dpcost pre ip saddr 10.218.0.0/24 ip daddr \
                 10.218.0.0/24 notrack",
                "nft delete table inet dpcost",
            ),
            ends: ("", ""),
        },
        Variant {
            label: "GRO on, every veth (containers' eth0 and the bridge ports)",
            host: (
                "for br in $(ip -o link show type bridge | cut -d: -f2); do \
                 for d in $(ip -o link show master $br | cut -d: -f2 | cut -d@ -f1); do \
                 ethtool -K $d gro on || exit 1; done; done",
                "for br in $(ip -o link show type bridge | cut -d: -f2); do \
                 for d in $(ip -o link show master $br | cut -d: -f2 | cut -d@ -f1); do \
                 ethtool -K $d gro off; done; done",
            ),
            ends: ("ethtool -K eth0 gro on", "ethtool -K eth0 gro off"),
        },
        Variant {
            label: "TSO and tx checksum offload off in the containers",
            host: ("", ""),
            ends: ("ethtool -K eth0 tso off tx off", "ethtool -K eth0 tx on tso on"),
        },
        Variant {
            label: "2 rx and 2 tx queues per veth (containers' eth0)",
            host: ("", ""),
            ends: ("ethtool -L eth0 rx 2 tx 2", "ethtool -L eth0 rx 1 tx 1"),
        },
    ]
}

/// Runs `script` (if any) in the host and in both ends.
fn apply(host: &TestHost, pair: &Pair, scripts: (&str, &str)) -> Result<()> {
    let (h, e) = scripts;
    let mut places: Vec<(&Path, &str)> = Vec::new();
    if !h.is_empty() {
        places.push((&host.ns, h));
    }
    if !e.is_empty() {
        places.push((&pair.server, e));
        places.push((&pair.client, e));
    }
    for (ns, script) in places {
        let r = run_in(ns, "sh", &["-c", script]);
        ensure!(
            r.code == 0,
            "sh -c {script:?} in {}: {}{}",
            ns.display(),
            r.stdout.trim(),
            r.stderr.trim()
        );
    }
    Ok(())
}

/// What the host's path looks like before the variants: the sysctls,
/// the veths' offloads and queues, the size of berth's ruleset.
fn describe(host: &TestHost, pair: &Pair) -> String {
    let r = host.run(
        "sh",
        &[
            "-c",
            &format!(
                "sysctl net.bridge.bridge-nf-call-iptables; echo \"nft ruleset lines: $(nft list ruleset | wc -l)\"; \
                 {PORTS} echo \"port $d: $(ethtool -k $d | grep -E '^(generic-receive-offload|tcp-segmentation-offload|tx-checksumming):' | tr '\\n' ' ')\"; done; done"
            ),
        ],
    );
    let e = run_in(
        &pair.client,
        "sh",
        &[
            "-c",
            "echo \"container eth0: $(ethtool -k eth0 | grep -E '^(generic-receive-offload|tcp-segmentation-offload|tx-checksumming):' | tr '\\n' ' ')\"; \
             echo \"container eth0 queues: $(ethtool -l eth0 2>&1 | grep -A4 'Current' | tr -s ' \\n\\t' ' ')\"",
        ],
    );
    format!("{}{}{}", r.stdout, e.stdout, e.stderr)
}

pub fn explore(
    host: &TestHost,
    pair: &Pair,
    bare: &Pair,
    opts: &Opts,
    quiet: &Quiet,
    progress: &dyn Fn(&str),
    session: &mut Session,
) {
    println!("--costs: berth's bridge path, one change at a time (inside the bench's namespaces only)");
    print!("{}", describe(host, pair));
    let variants = variants();
    let bare_lane: Lane = bare.lane("bare veth pair");
    let lane = pair.lane("berth bridge");
    // Per variant (and the bare pair last): tests per stream count, or why not.
    let mut figs: Vec<Result<[Vec<f64>; 2], String>> = (0..=variants.len())
        .map(|_| Ok([Vec::new(), Vec::new()]))
        .collect();
    for round in 0..opts.rounds {
        for (k, fig) in figs.iter_mut().enumerate() {
            let Ok(got) = fig else { continue };
            let (label, lane, variant) = match variants.get(k) {
                Some(v) => (v.label, &lane, Some(v)),
                None => ("bare veth pair", &bare_lane, None),
            };
            if let Some(v) = variant
                && let Err(e) = apply(host, pair, (v.host.0, v.ends.0))
            {
                *fig = Err(format!("could not apply: {e:#}"));
                let _ = apply(host, pair, (v.host.1, v.ends.1));
                progress(&format!("costs: {label}: could not apply: {e:#}"));
                continue;
            }
            quiet.settle();
            let mut failed = turn(lane, opts.seconds, got, |streams, bps| {
                progress(&format!(
                    "costs round {}/{}: {label}, {streams} stream(s): {:.2} Gbit/s",
                    round + 1,
                    opts.rounds,
                    bps / 1e9
                ));
            })
            .err()
            .map(|e| format!("FAILED: {e}"));
            if let Some(v) = variant
                && let Err(e) = apply(host, pair, (v.host.1, v.ends.1))
            {
                failed = Some(format!("could not undo: {e:#}"));
            }
            if let Some(why) = failed {
                *fig = Err(why);
            }
        }
    }
    let bare_m = match figs.last() {
        Some(Ok(v)) => [median(&v[0]), median(&v[1])],
        _ => [None, None],
    };
    let base_m = match figs.first() {
        Some(Ok(v)) => [median(&v[0]), median(&v[1])],
        _ => [None, None],
    };
    let header: Vec<String> = [
        "berth bridge with",
        "1 stream",
        "4 streams",
        "% of bare (1 / 4)",
        "vs as set up (1 / 4)",
    ]
    .map(String::from)
    .to_vec();
    let mut body = Vec::new();
    let pct = |x: Option<f64>| x.map_or_else(|| "—".into(), |x| format!("{:.0}%", x * 100.0));
    let delta = |x: Option<f64>| x.map_or_else(|| "—".into(), |x| format!("{:+.1}%", (x - 1.0) * 100.0));
    for (k, fig) in figs.iter().enumerate() {
        let label = variants.get(k).map_or("(bare veth pair)", |v| v.label);
        let row = match fig {
            Ok(v) => {
                let m = [median(&v[0]), median(&v[1])];
                let g = |x: Option<f64>| x.map_or_else(|| "—".into(), |b| format!("{:.2}", b / 1e9));
                let r = |i: usize, base: &[Option<f64>; 2]| crate::bench::ratio(m[i], base[i]);
                let line = Line::new(
                    format!("bridge path cost: {label}, Gbit/s (1 / 4 streams)"),
                    format!("{} / {}", g(m[0]), g(m[1])),
                )
                .ratio(format!("{} / {} of bare", pct(r(0, &bare_m)), pct(r(1, &bare_m))));
                if k < variants.len() {
                    session.add(line);
                }
                vec![
                    label.to_owned(),
                    g(m[0]),
                    g(m[1]),
                    format!("{} / {}", pct(r(0, &bare_m)), pct(r(1, &bare_m))),
                    format!("{} / {}", delta(r(0, &base_m)), delta(r(1, &base_m))),
                ]
            }
            Err(why) => vec![
                label.to_owned(),
                why.clone(),
                String::new(),
                String::new(),
                String::new(),
            ],
        };
        body.push(row);
    }
    println!(
        "median Gbit/s of {} rounds of {} s, variants and the bare pair in turn:",
        opts.rounds, opts.seconds
    );
    print_table(&header, &body);
    profiles(&host.root, &bare_lane, &lane, opts.seconds, quiet);
}

/// Where a kernel symbol's time goes, by its name: the bridge, netfilter
/// (hooks, conntrack, nftables and iptables), or elsewhere.
fn category(sym: &str) -> &'static str {
    const NETFILTER: [&str; 9] = [
        "nf_",
        "nft_",
        "ipt_",
        "ip6t_",
        "ebt_",
        "br_nf_",
        "__nf_",
        "ipv4_conntrack",
        "iptable_",
    ];
    if NETFILTER.iter().any(|p| sym.starts_with(p)) || sym.contains("conntrack") {
        "netfilter"
    } else if sym.starts_with("br_") || sym.starts_with("__br_") {
        "bridge"
    } else {
        "other"
    }
}

/// Each category's share of the samples, and the top symbols' lines.
type Profile = (Vec<(&'static str, f64)>, Vec<String>);

/// The share of samples per [`category`] in `perf report --stdio --sort
/// sym` output (lines like `  12.34%  [k] br_handle_frame`), and its top
/// lines.
fn shares(report: &str, top: usize) -> Profile {
    let mut sums: Vec<(&'static str, f64)> = vec![("bridge", 0.0), ("netfilter", 0.0)];
    let mut lines = Vec::new();
    for l in report.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (Some(pct), Some(sym)) = (w.first().and_then(|p| p.strip_suffix('%')), w.last()) else {
            continue;
        };
        let Ok(pct) = pct.parse::<f64>() else { continue };
        if let Some(s) = sums.iter_mut().find(|(c, _)| *c == category(sym)) {
            s.1 += pct;
        }
        if lines.len() < top {
            lines.push(format!("{pct:>6.2}% {sym}"));
        }
    }
    (sums, lines)
}

/// `perf record -a -g` (system wide; then only iperf3's samples, which
/// hold the softirq work a veth's transmit does in the sender's context)
/// during one 1-stream test over `lane`; the report's shares and top
/// symbols. `dir` holds perf's data, and goes with the test host.
fn profile(dir: &Path, lane: &Lane, seconds: u32) -> Result<Profile> {
    let data = dir.join(format!("perf-{}.data", lane.label.replace(' ', "-")));
    let mut rec = std::process::Command::new(PERF);
    rec.arg("record")
        .args(["-a", "-F", "499", "-o"])
        .arg(&data)
        .args(["--", "sleep"])
        .arg((seconds + 1).to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = rec.spawn().context("starting perf record")?;
    let test = iperf::test(lane, seconds, 1);
    let st = child.wait().context("waiting for perf record")?;
    test?;
    ensure!(st.success(), "perf record failed ({st})");
    let out = std::process::Command::new(PERF)
        .arg("report")
        .arg("-i")
        .arg(&data)
        .args([
            "--stdio",
            "--no-children",
            "--sort",
            "sym",
            "--comms",
            "iperf3",
            // Shares of iperf3's samples, not of the whole machine's.
            "--percentage",
            "relative",
            "--percent-limit",
            "0.1",
        ])
        .output()
        .context("running perf report")?;
    ensure!(
        out.status.success(),
        "perf report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(shares(&String::from_utf8_lossy(&out.stdout), 12))
}

/// Debian's perf (linux-perf).
const PERF: &str = "/usr/bin/perf";

/// Profiles the bare pair and berth's bridge, one 1-stream test each, and
/// prints where their time goes.
fn profiles(dir: &Path, bare: &Lane, berth: &Lane, seconds: u32, quiet: &Quiet) {
    if !Path::new(PERF).exists() {
        println!("profile: perf NOT INSTALLED (apt-get install linux-perf): no profile");
        return;
    }
    println!(
        "profile: perf record -a during one 1-stream test each; shares of iperf3's samples (the sender's \
         softirq included). In a VM without a PMU perf samples on a timer: time spent with interrupts off \
         lands on the symbol that turns them back on (_raw_spin_unlock_irqrestore, handle_softirqs)"
    );
    for lane in [bare, berth] {
        quiet.settle();
        match profile(dir, lane, seconds) {
            Ok((sums, top)) => {
                let sums: Vec<String> = sums.iter().map(|(c, p)| format!("{c} {p:.1}%")).collect();
                println!("  {}: {}; top symbols:", lane.label, sums.join(", "));
                for l in top {
                    println!("    {l}");
                }
            }
            Err(e) => println!("  {}: profile FAILED: {e:#}", lane.label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_fall_into_bridge_netfilter_or_other() {
        assert_eq!(category("br_handle_frame"), "bridge");
        assert_eq!(category("br_nf_pre_routing"), "netfilter");
        assert_eq!(category("nf_conntrack_in"), "netfilter");
        assert_eq!(category("nft_do_chain"), "netfilter");
        assert_eq!(category("ipv4_conntrack_local"), "netfilter");
        assert_eq!(category("copy_user_generic"), "other");
    }

    #[test]
    fn a_perf_report_gives_shares_and_top_lines() {
        let r = "# Samples: 10K\n#\n    20.00%  [k] copy_user_generic\n     5.50%  [k] br_handle_frame\n     \
                 3.25%  [k] nf_hook_slow\n     1.25%  [k] nft_do_chain\n\n#\n";
        let (sums, top) = shares(r, 2);
        assert_eq!(sums, [("bridge", 5.5), ("netfilter", 4.5)]);
        assert_eq!(top, [" 20.00% copy_user_generic", "  5.50% br_handle_frame"]);
    }
}
