//! The overlay bench's tables and targets.

use std::time::Duration;

use super::reach::{POLL_EVERY, REACH_WAIT, Reach};
use super::{
    ATTACH_RATIO_TARGET, ATTACH_ROUNDS, BARE_SHARE_TARGET, Figures, REACH_TARGET, ReachFigures, Throughput,
};
use crate::bench::attach::Cell;
use crate::bench::{Line, Samples, Session, Verdict, ms, print_table, ratio, secs, times};

/// Milliseconds below a second, else seconds with two decimals.
fn dur(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        ms(d)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), dur)
}

/// "median (p90 …)" of `s`.
fn median_p90(s: &Samples) -> String {
    format!("{} (p90 {})", opt(s.median()), opt(s.p90()))
}

/// The median of bits per second, in Gbit/s.
fn gbits(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n.is_multiple_of(2) => Some((v[n / 2 - 1] + v[n / 2]) / 2e9),
        _ => Some(v[n / 2] / 1e9),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn reach_cell(r: &Result<Reach, String>) -> String {
    match r {
        Ok(r) => {
            let mut s = median_p90(&r.after_run);
            if r.unreached > 0 {
                s.push_str(&format!(", {} unreached", r.unreached));
            }
            s
        }
        Err(why) => why.clone(),
    }
}

fn reach_median(r: &Result<Reach, String>) -> Option<Duration> {
    r.as_ref().ok()?.after_run.median()
}

fn report_reach(f: &Figures) {
    println!(
        "reach: from the start of `run -d` of a container on host A (the network's first there) until the \
         watcher on host B gets an echo reply from it; median and p90 of {} runs each",
        f.runs
    );
    let [berth, docker]: &[ReachFigures; 2] = &f.reach;
    let header = ["by", "berth", "Docker", "Docker/berth"]
        .map(String::from)
        .to_vec();
    let body: Vec<Vec<String>> = ["address", "name"]
        .iter()
        .enumerate()
        .map(|(k, by)| {
            vec![
                (*by).to_owned(),
                reach_cell(&berth[k]),
                reach_cell(&docker[k]),
                times(ratio(
                    secs(reach_median(&docker[k])),
                    secs(reach_median(&berth[k])),
                )),
            ]
        })
        .collect();
    print_table(&header, &body);
    let command = |r: &Result<Reach, String>| r.as_ref().ok().and_then(|r| r.run.median());
    println!(
        "the `run -d` command alone (by address): berth {}, Docker {}; answered before its command exited: \
         berth {}, Docker {} of the runs by address",
        opt(command(&berth[0])),
        opt(command(&docker[0])),
        berth[0].as_ref().map_or(0, |r| r.before_exit),
        docker[0].as_ref().map_or(0, |r| r.before_exit),
    );
    println!(
        "probe: from inside the watcher, an echo request and an ARP request for the target every {} (raw and \
         packet sockets); by name, the name asked at 127.0.0.11 every {} first; unreached runs count as {}",
        dur(POLL_EVERY),
        dur(POLL_EVERY),
        dur(REACH_WAIT)
    );
}

fn report_throughput(f: &Figures) {
    println!(
        "throughput: iperf3 TCP, one stream, host B to host A, {} s after 1 s of slow start; median of {} rounds \
         taken in turn, Gbit/s",
        f.seconds, f.rounds
    );
    let Some(first) = f.throughput.first() else { return };
    let mut header = vec!["underlay MTU".to_owned()];
    header.extend(first.lanes.iter().map(|(l, _)| l.clone()));
    header.extend(["berth/bare pair", "berth/Docker"].map(String::from));
    let body: Vec<Vec<String>> = f
        .throughput
        .iter()
        .map(|t| {
            let mut row = vec![t.underlay_mtu.to_string()];
            row.extend(t.lanes.iter().map(|(_, r)| match r {
                Ok(v) => gbits(v).map_or_else(|| "—".into(), |g| format!("{g:.2}")),
                Err(why) => why.clone(),
            }));
            let (berth, bare, docker) = (lane(t, "berth"), lane(t, "bare"), lane(t, "Docker"));
            row.push(ratio(berth, bare).map_or_else(|| "—".into(), |x| format!("{:.0}%", x * 100.0)));
            row.push(ratio(berth, docker).map_or_else(|| "—".into(), |x| format!("{x:.2}×")));
            row
        })
        .collect();
    print_table(&header, &body);
    for t in &f.throughput {
        let mtus: Vec<String> = t
            .mtus
            .iter()
            .map(|(l, m)| match m {
                Ok(m) => format!("{l} {m}"),
                Err(why) => format!("{l} {why}"),
            })
            .collect();
        println!(
            "  underlay MTU {}: MTU inside: {}; Docker's network options {}",
            t.underlay_mtu,
            mtus.join(", "),
            t.docker_options.as_deref().unwrap_or("—")
        );
    }
}

/// The median Gbit/s of the lane whose label starts with `prefix`.
fn lane(t: &Throughput, prefix: &str) -> Option<f64> {
    t.lanes
        .iter()
        .find(|(l, _)| l.starts_with(prefix))
        .and_then(|(_, r)| gbits(r.as_ref().ok()?))
}

fn report_attach(f: &Figures) {
    println!(
        "attach of a sandbox on host A through the API, then detach: to a bridge network, and to the overlay (up \
         on host A already), which also gives the sandbox its way out on the gateway bridge (two endpoints), or \
         not when the sandbox is on another bridge network already (the overlay's endpoint alone); median and p90 \
         of {} each, in {ATTACH_ROUNDS} rounds taken in turn",
        f.iterations
    );
    let header = ["network", "attach", "detach"].map(String::from).to_vec();
    match &f.attach {
        Ok([bridge, overlay, alone]) => {
            let row = |name: &str, c: &Cell| {
                let cut = if c.cut { " (cut by the time bound)" } else { "" };
                vec![
                    format!("{name}{cut}"),
                    median_p90(&c.attach),
                    median_p90(&c.detach),
                ]
            };
            let r = |o: &Cell, pick: fn(&Cell) -> &Samples| {
                times(ratio(secs(pick(o).median()), secs(pick(bridge).median())))
            };
            let body = vec![
                row("bridge", bridge),
                row("overlay (and its way out)", overlay),
                row("overlay alone", alone),
                vec![
                    "overlay/bridge".into(),
                    r(overlay, |c| &c.attach),
                    r(overlay, |c| &c.detach),
                ],
                vec![
                    "overlay alone/bridge".into(),
                    r(alone, |c| &c.attach),
                    r(alone, |c| &c.detach),
                ],
            ];
            print_table(&header, &body);
        }
        Err(why) => println!("berth: {why}"),
    }
}

/// The headline figures for the summary: reach by address and by name,
/// throughput at each underlay MTU, overlay attach against a bridge attach.
fn summarize(f: &Figures, session: &mut Session) {
    for (k, by) in ["address", "name"].iter().enumerate() {
        let (b, d) = (reach_median(&f.reach[0][k]), reach_median(&f.reach[1][k]));
        session.add(
            Line::new(format!("reach across hosts by {by} after run, median"), opt(b))
                .peer("Docker", opt(d))
                .ratio(crate::bench::peer_ratios(b, &[("Docker", d)]))
                .target(
                    format!("≤ {}", dur(REACH_TARGET)),
                    Verdict::of(b.map(|m| m <= REACH_TARGET)),
                ),
        );
    }
    let g = |x: Option<f64>| x.map_or_else(|| "—".into(), |x| format!("{x:.2} Gbit/s"));
    for t in &f.throughput {
        let (berth, bare, docker) = (lane(t, "berth"), lane(t, "bare"), lane(t, "Docker"));
        let share = ratio(berth, bare);
        session.add(
            Line::new(
                format!("iperf3 TCP across hosts, underlay MTU {}", t.underlay_mtu),
                g(berth),
            )
            .peer("bare VXLAN pair", g(bare))
            .peer("Docker", g(docker))
            .peer("underlay", g(lane(t, "underlay")))
            .ratio(share.map_or_else(String::new, |x| format!("berth ÷ bare pair: {:.0}%", x * 100.0)))
            .target(
                format!("≥ {:.0}% of the bare VXLAN pair", BARE_SHARE_TARGET * 100.0),
                Verdict::of(share.map(|x| x >= BARE_SHARE_TARGET)),
            ),
        );
    }
    for t in &f.throughput {
        let x = ratio(lane(t, "berth"), lane(t, "Docker"));
        session.add(
            Line::new(
                format!(
                    "iperf3 across hosts, berth ÷ Docker, underlay MTU {}",
                    t.underlay_mtu
                ),
                x.map_or_else(|| "—".into(), |x| format!("{x:.2}×")),
            )
            .target("ahead of Docker's overlay", Verdict::of(x.map(|x| x > 1.0))),
        );
    }
    let medians = f
        .attach
        .as_ref()
        .ok()
        .map(|[bridge, overlay, _]| (overlay.attach.median(), bridge.attach.median()));
    let x = medians.and_then(|(o, b)| ratio(secs(o), secs(b)));
    session.add(
        Line::new(
            "attach to an overlay already on the host, median",
            opt(medians.and_then(|m| m.0)),
        )
        .ratio(x.map_or_else(String::new, |x| format!("÷ bridge attach: {x:.2}×")))
        .target(
            format!("≤ {ATTACH_RATIO_TARGET}× a bridge attach"),
            Verdict::of(x.map(|x| x <= ATTACH_RATIO_TARGET)),
        ),
    );
}

fn report_targets(f: &Figures) {
    println!("targets (from the issue):");
    for (k, by) in ["address", "name"].iter().enumerate() {
        let m = reach_median(&f.reach[0][k]);
        println!(
            "  median reach by {by} ≤ {}: {}: {}",
            dur(REACH_TARGET),
            opt(m),
            verdict(m.is_some_and(|m| m <= REACH_TARGET))
        );
    }
    for t in &f.throughput {
        let (berth, bare, docker) = (lane(t, "berth"), lane(t, "bare"), lane(t, "Docker"));
        let share = ratio(berth, bare);
        println!(
            "  berth's overlay ≥ {:.0}% of the bare VXLAN pair, underlay MTU {}: {}: {}",
            BARE_SHARE_TARGET * 100.0,
            t.underlay_mtu,
            share.map_or_else(|| "—".into(), |x| format!("{:.0}%", x * 100.0)),
            verdict(share.is_some_and(|x| x >= BARE_SHARE_TARGET))
        );
        match ratio(berth, docker) {
            Some(x) => println!(
                "  berth's overlay ahead of Docker's, underlay MTU {}: {x:.2}×: {}",
                t.underlay_mtu,
                verdict(x > 1.0)
            ),
            None => println!(
                "  berth's overlay ahead of Docker's, underlay MTU {}: not measured (Docker: {})",
                t.underlay_mtu,
                f.docker_trouble.as_deref().unwrap_or("no figure")
            ),
        }
    }
    let x =
        f.attach.as_ref().ok().and_then(|[bridge, overlay, _]| {
            ratio(secs(overlay.attach.median()), secs(bridge.attach.median()))
        });
    println!(
        "  attach to an overlay already on the host ≤ {ATTACH_RATIO_TARGET}× a bridge attach (medians): {}: {}",
        x.map_or_else(|| "—".into(), |x| format!("{x:.2}×")),
        verdict(x.is_some_and(|x| x <= ATTACH_RATIO_TARGET))
    );
}

pub fn report(f: &Figures, session: &mut Session) {
    report_reach(f);
    println!();
    report_throughput(f);
    println!();
    report_attach(f);
    if let Some(why) = &f.docker_trouble {
        println!("Docker: {why}");
    }
    for n in &f.docker_notes {
        println!("Docker cleanup: {n}");
    }
    println!();
    report_targets(f);
    summarize(f, session);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_rates_are_in_gigabits() {
        assert_eq!(gbits(&[3e9, 1e9, 2e9]), Some(2.0));
        assert_eq!(gbits(&[1e9, 2e9]), Some(1.5));
        assert_eq!(gbits(&[]), None);
    }

    #[test]
    fn durations_switch_to_seconds_at_one() {
        assert_eq!(dur(Duration::from_micros(21_300)), "21.3 ms");
        assert_eq!(dur(Duration::from_millis(1050)), "1.05 s");
    }
}
