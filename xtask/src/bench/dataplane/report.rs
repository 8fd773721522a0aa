//! The dataplane bench's report: a table of every subject's median Gbit/s
//! (1 and 4 streams, with each test's spread), berth's bridge as a share
//! of the bare veth pair and against each peer; and the summary's lines
//! with the targets.

use super::{Figures, STREAMS, Who};
use crate::bench::{Line, Session, Verdict, print_table};

/// The target: berth's bridge carries at least this share of
/// what the bare veth pair carries.
pub const BARE_SHARE_TARGET: f64 = 0.95;

/// The middle value, or the mean of the two middle ones.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n.is_multiple_of(2) => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        _ => Some(v[n / 2]),
    }
}

/// berth's share of the bare pair, and whether it meets
/// [`BARE_SHARE_TARGET`].
pub fn share_verdict(berth: Option<f64>, bare: Option<f64>) -> (Option<f64>, Verdict) {
    let share = crate::bench::ratio(berth, bare);
    (share, Verdict::of(share.map(|s| s >= BARE_SHARE_TARGET)))
}

/// Whether berth is ahead of every peer: missed when any peer measured
/// as much or more; not measured when berth or a peer has no figure
/// (a peer not installed cannot be judged), unless already missed.
pub fn ahead_verdict(berth: Option<f64>, peers: &[Option<f64>]) -> Verdict {
    let Some(b) = berth else {
        return Verdict::NotMeasured;
    };
    if peers.iter().flatten().any(|p| *p >= b) {
        Verdict::Missed
    } else if peers.iter().any(Option::is_none) || peers.is_empty() {
        Verdict::NotMeasured
    } else {
        Verdict::Met
    }
}

/// Gbit/s with two decimals, or "—".
fn gbit(bps: Option<f64>) -> String {
    bps.map_or_else(|| "—".into(), |b| format!("{:.2}", b / 1e9))
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |x| format!("{:.0}%", x * 100.0))
}

fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
}

/// Each subject's medians, per stream count.
fn medians(figures: &[(Who, Figures)], who: Who) -> [Option<f64>; 2] {
    let f = figures.iter().find(|(w, _)| *w == who).map(|(_, f)| f);
    match f {
        Some(Ok(v)) => [median(&v[0]), median(&v[1])],
        _ => [None, None],
    }
}

pub fn report(figures: &[(Who, Figures)], rounds: usize, seconds: u32, session: &mut Session) {
    println!(
        "iperf3 TCP, client to server between two containers of one network: median Gbit/s of {rounds} \
         rounds of {seconds} s (after 1 s of slow start), each round's subjects in turn; min–max in brackets"
    );
    let bare = medians(figures, Who::Bare);
    let berth = medians(figures, Who::BerthBridge);
    let mut header = vec!["subject".to_owned()];
    for s in STREAMS {
        header.push(format!("{s} stream{}", if s == 1 { "" } else { "s" }));
    }
    header.extend(["% of bare (1 / 4)".into(), "berth bridge ÷ it (1 / 4)".into()]);
    let mut body = Vec::new();
    for (who, fig) in figures {
        let m = medians(figures, *who);
        let mut row = vec![who.label().to_owned()];
        match fig {
            Ok(v) => {
                for (i, runs) in v.iter().enumerate() {
                    let lo = runs.iter().copied().reduce(f64::min);
                    let hi = runs.iter().copied().reduce(f64::max);
                    row.push(format!("{} [{}–{}]", gbit(m[i]), gbit(lo), gbit(hi)));
                }
                row.push(format!(
                    "{} / {}",
                    percent(crate::bench::ratio(m[0], bare[0])),
                    percent(crate::bench::ratio(m[1], bare[1]))
                ));
                row.push(if *who == Who::BerthBridge {
                    String::new()
                } else {
                    format!(
                        "{} / {}",
                        times(crate::bench::ratio(berth[0], m[0])),
                        times(crate::bench::ratio(berth[1], m[1]))
                    )
                });
            }
            Err(why) => {
                row.push(why.clone());
                row.extend([String::new(), String::new(), String::new()]);
            }
        }
        body.push(row);
    }
    print_table(&header, &body);

    let peers: Vec<Who> = Who::ALL.iter().copied().filter(|w| w.peer().is_some()).collect();
    let macvlan = medians(figures, Who::BerthMacvlan);
    println!();
    println!("targets:");
    for (i, streams) in STREAMS.iter().enumerate() {
        let work = format!(
            "iperf3 TCP, {streams} stream{}",
            if *streams == 1 { "" } else { "s" }
        );
        let (share, verdict) = share_verdict(berth[i], bare[i]);
        let target = format!("berth ≥ {:.0}% of the bare veth pair", BARE_SHARE_TARGET * 100.0);
        println!(
            "  {work}: berth bridge {} Gbit/s is {} of the bare veth pair's {} (target ≥ {:.0}%): {}",
            gbit(berth[i]),
            percent(share),
            gbit(bare[i]),
            BARE_SHARE_TARGET * 100.0,
            word(verdict)
        );
        session.add(
            Line::new(
                format!(
                    "bridge data path, {work}, % of a bare veth pair ({} Gbit/s)",
                    gbit(bare[i])
                ),
                format!("{} ({} Gbit/s)", percent(share), gbit(berth[i])),
            )
            .target(target, verdict),
        );
        let pm: Vec<Option<f64>> = peers.iter().map(|p| medians(figures, *p)[i]).collect();
        let verdict = ahead_verdict(berth[i], &pm);
        let ratios: Vec<String> = peers
            .iter()
            .zip(&pm)
            .map(|(p, m)| {
                format!(
                    "{} {}",
                    p.peer().unwrap_or_default(),
                    times(crate::bench::ratio(berth[i], *m))
                )
            })
            .collect();
        println!(
            "  {work}: berth bridge ÷ peer: {} (target: ahead of every peer): {}",
            ratios.join(", "),
            word(verdict)
        );
        let mut line = Line::new(format!("bridge data path, {work}, Gbit/s"), gbit(berth[i]));
        for (p, m) in peers.iter().zip(&pm) {
            let figure = match m {
                Some(_) => gbit(*m),
                None => figures
                    .iter()
                    .find(|(w, _)| w == p)
                    .and_then(|(_, f)| f.as_ref().err())
                    .map_or_else(
                        || "—".into(),
                        |why| why.split(" (").next().unwrap_or(why).to_owned(),
                    ),
            };
            line = line.peer(p.peer().unwrap_or_default(), figure);
        }
        session.add(
            line.ratio(format!("berth ÷ peer: {}", ratios.join(", ")))
                .target("ahead of every peer", verdict),
        );
        session.add(Line::new(
            format!("macvlan data path, {work}, Gbit/s"),
            format!(
                "{} ({} of the bare pair, {} of berth's bridge)",
                gbit(macvlan[i]),
                percent(crate::bench::ratio(macvlan[i], bare[i])),
                percent(crate::bench::ratio(macvlan[i], berth[i]))
            ),
        ));
    }
}

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Missed => "MISSED",
        Verdict::NotMeasured => "not measured",
        Verdict::None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_rates() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_share_target_is_95_percent_of_the_bare_pair() {
        assert_eq!(share_verdict(Some(19.0), Some(20.0)).1, Verdict::Met);
        let (share, v) = share_verdict(Some(17.4), Some(20.0));
        assert_eq!(v, Verdict::Missed);
        assert!((share.unwrap() - 0.87).abs() < 1e-9);
        assert_eq!(share_verdict(None, Some(20.0)).1, Verdict::NotMeasured);
        assert_eq!(share_verdict(Some(19.0), None).1, Verdict::NotMeasured);
    }

    #[test]
    fn ahead_means_ahead_of_every_peer_measured_and_none_missing() {
        assert_eq!(ahead_verdict(Some(18.0), &[Some(17.0), Some(17.5)]), Verdict::Met);
        assert_eq!(
            ahead_verdict(Some(18.0), &[Some(17.0), Some(18.0)]),
            Verdict::Missed
        );
        // A peer that beat berth is a miss whatever else is missing.
        assert_eq!(ahead_verdict(Some(18.0), &[None, Some(19.0)]), Verdict::Missed);
        // A peer not installed cannot be judged.
        assert_eq!(
            ahead_verdict(Some(18.0), &[None, Some(17.0)]),
            Verdict::NotMeasured
        );
        assert_eq!(ahead_verdict(None, &[Some(17.0)]), Verdict::NotMeasured);
        assert_eq!(ahead_verdict(Some(18.0), &[]), Verdict::NotMeasured);
    }
}
