//! The report: the figures side by side, berth against each peer, and
//! the targets.

use super::query::Sequential;
use super::{
    LOCAL_MEDIAN_TARGET, Opts, PARALLEL_CLIENTS, QUERY_TIMEOUT, RATE_TARGET, RESOLVABLE_TARGET,
    RESOLVABLE_WAIT, Row, opt,
};
use crate::bench::{Line, Session, Verdict, ms, peer_ratios, ratio, secs, times, us};

pub(super) fn report(rows: &[Row], opts: &Opts, session: &mut Session) {
    let mut notes: Vec<String> = Vec::new();
    let mut cell = |r: &Row, what: &str, c: Result<String, &String>| -> String {
        match c {
            Ok(s) => s,
            Err(why) => {
                if r.trouble.is_none() {
                    let line = format!("{} {what}: {why}", r.label);
                    if !notes.contains(&line) {
                        notes.push(line);
                    }
                }
                if why.starts_with("n/a") { "n/a" } else { "—" }.into()
            }
        }
    };
    let star = |cut: bool| if cut { "*" } else { "" };
    let header: Vec<String> = [
        "subject",
        "local q/s",
        "local median",
        "local p99",
        "fwd q/s",
        "fwd median",
        "fwd p99",
        "run→resolvable median",
        &format!("local q/s, {PARALLEL_CLIENTS} clients"),
    ]
    .map(String::from)
    .to_vec();
    let mut any_cut = false;
    let mut body = Vec::new();
    for r in rows {
        let f = &r.figures;
        let seq = |s: &Sequential| {
            (
                format!("{:.0}{}", s.rate(), star(s.cut)),
                opt(s.samples.median(), us),
                opt(s.samples.p99(), us),
            )
        };
        let (lq, lm, lp) = match &f.local {
            Ok(s) => {
                any_cut |= s.cut;
                let (a, b, c) = seq(s);
                (Ok(a), Ok(b), Ok(c))
            }
            Err(e) => (Err(e), Err(e), Err(e)),
        };
        let (fq, fm, fp) = match &f.forwarded {
            Ok(s) => {
                any_cut |= s.cut;
                let (a, b, c) = seq(s);
                (Ok(a), Ok(b), Ok(c))
            }
            Err(e) => (Err(e), Err(e), Err(e)),
        };
        let res = f.resolvable.as_ref().map(|x| {
            any_cut |= x.cut;
            format!("{}{}", opt(x.after_run.median(), ms), star(x.cut))
        });
        let par = f.parallel.as_ref().map(|p| format!("{p:.0}"));
        body.push(vec![
            r.label.clone(),
            cell(r, "local name", lq),
            cell(r, "local name", lm),
            cell(r, "local name", lp),
            cell(r, "forwarded name", fq),
            cell(r, "forwarded name", fm),
            cell(r, "forwarded name", fp),
            cell(r, "run → resolvable", res),
            cell(r, &format!("{PARALLEL_CLIENTS} clients"), par),
        ]);
    }
    println!("DNS from inside a container, sequential UDP queries (median and p99 latency per query)");
    crate::bench::print_table(&header, &body);
    if any_cut {
        println!(
            "* a loop hit its time bound before its count; the figure is from the queries that were made"
        );
    }
    for r in rows {
        if let Some(t) = &r.trouble {
            println!("{}: {t}", r.label);
        }
    }
    for n in &notes {
        println!("{n}");
    }
    for r in rows {
        if let Ok(s) = &r.figures.local
            && s.lost > 0
        {
            println!(
                "{}: {} local queries got no answer within {} s",
                r.label,
                s.lost,
                QUERY_TIMEOUT.as_secs()
            );
        }
        if let Ok(s) = &r.figures.forwarded
            && s.lost > 0
        {
            println!(
                "{}: {} forwarded queries got no answer within {} s",
                r.label,
                s.lost,
                QUERY_TIMEOUT.as_secs()
            );
        }
    }

    println!();
    println!(
        "time to resolvable: from the start of the command that creates a container until another container on \
         its network gets its address (asked back to back), {} runs",
        opts.runs
    );
    let header: Vec<String> = [
        "subject",
        "command",
        "run→resolvable median",
        "p90",
        "slowest",
        "command itself median",
        "resolvable before the command exited",
    ]
    .map(String::from)
    .to_vec();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| match &r.figures.resolvable {
            Ok(x) => vec![
                r.label.clone(),
                r.run_is.into(),
                opt(x.after_run.median(), ms),
                opt(x.after_run.p90(), ms),
                opt(x.after_run.sorted().last().copied(), ms),
                opt(x.run.median(), ms),
                format!("{} of {}", x.before_exit, x.after_run.len()),
            ],
            Err(e) => {
                let na = if e.starts_with("n/a") { "n/a" } else { "—" };
                let mut v = vec![r.label.clone(), r.run_is.into()];
                v.extend([na; 5].map(String::from));
                v
            }
        })
        .collect();
    crate::bench::print_table(&header, &body);
    for r in rows {
        let Ok(x) = &r.figures.resolvable else { continue };
        if x.unresolved > 0 {
            println!(
                "{}: {} of {} names did not resolve within {} s of their run (counted as {} s)",
                r.label,
                x.unresolved,
                x.after_run.len(),
                RESOLVABLE_WAIT.as_secs(),
                RESOLVABLE_WAIT.as_secs()
            );
        }
        if x.unforgotten > 0 {
            println!(
                "{}: {} removed names still resolved {} s after their removal",
                r.label,
                x.unforgotten,
                RESOLVABLE_WAIT.as_secs()
            );
        }
        if x.cut {
            session.note(format!(
                "{}: stopped at {} of {} runs after its {} s budget",
                r.label,
                x.after_run.len(),
                opts.runs,
                opts.runs_budget.as_secs()
            ));
        }
    }

    let berth = rows.iter().find(|r| r.label == "berth");
    let local_rate = |r: &Row| r.figures.local.as_ref().ok().map(Sequential::rate);
    let local_median = |r: &Row| secs(r.figures.local.as_ref().ok().and_then(|s| s.samples.median()));
    let fwd_median = |r: &Row| secs(r.figures.forwarded.as_ref().ok().and_then(|s| s.samples.median()));
    let res_median = |r: &Row| {
        secs(
            r.figures
                .resolvable
                .as_ref()
                .ok()
                .and_then(|x| x.after_run.median()),
        )
    };
    let par_rate = |r: &Row| r.figures.parallel.as_ref().ok().copied();
    if let Some(b) = berth {
        println!();
        println!("berth against each peer (× = how many times berth is faster)");
        let header: Vec<String> = [
            "peer",
            "local q/s",
            "local median",
            "fwd median",
            "run→resolvable",
            &format!("local q/s, {PARALLEL_CLIENTS} clients"),
        ]
        .map(String::from)
        .to_vec();
        let body: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r.label != "berth")
            .map(|r| {
                vec![
                    r.label.clone(),
                    times(ratio(local_rate(b), local_rate(r))),
                    times(ratio(local_median(r), local_median(b))),
                    times(ratio(fwd_median(r), fwd_median(b))),
                    times(ratio(res_median(r), res_median(b))),
                    times(ratio(par_rate(b), par_rate(r))),
                ]
            })
            .collect();
        crate::bench::print_table(&header, &body);
    }

    println!();
    println!("targets (from the issue):");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let bm = berth
        .and_then(|b| b.figures.local.as_ref().ok())
        .and_then(|s| s.samples.median());
    println!(
        "  median local-name latency ≤ {}: {}: {}",
        us(LOCAL_MEDIAN_TARGET),
        opt(bm, us),
        if bm.is_some() {
            verdict(bm.is_some_and(|m| m <= LOCAL_MEDIAN_TARGET))
        } else {
            "not measured"
        }
    );
    let aard = rows.iter().find(|r| r.label == "aardvark-dns");
    match (berth.and_then(local_rate), aard.and_then(local_rate)) {
        (Some(b), Some(a)) => {
            let x = b / a;
            println!(
                "  sequential local rate ≥ {RATE_TARGET}× aardvark-dns's: {b:.0} q/s against {a:.0} q/s = {x:.2}×: {}",
                verdict(x >= RATE_TARGET)
            );
        }
        (b, _) => println!(
            "  sequential local rate ≥ {RATE_TARGET}× aardvark-dns's: not measured ({})",
            match (b, aard.and_then(|r| r.figures.local.as_ref().err())) {
                (None, _) => "no berth figure".to_owned(),
                (_, Some(why)) => format!("aardvark-dns: {why}"),
                _ => "aardvark-dns not in this run".to_owned(),
            }
        ),
    }
    let br = berth
        .and_then(|b| b.figures.resolvable.as_ref().ok())
        .and_then(|x| x.after_run.median());
    println!(
        "  resolvable ≤ {} after run: median {}: {}",
        ms(RESOLVABLE_TARGET),
        opt(br, ms),
        if br.is_some() {
            verdict(br.is_some_and(|m| m <= RESOLVABLE_TARGET))
        } else {
            "not measured"
        }
    );

    for r in rows {
        for n in &r.notes {
            println!("{} cleanup: {n}", r.label);
        }
    }
    summarize(rows, session);
}

/// The headline figures for the summary: local-name latency and rate,
/// forwarded latency, run to resolvable; berth next to each peer.
fn summarize(rows: &[Row], session: &mut Session) {
    let Some(berth) = rows.iter().find(|r| r.label == "berth") else {
        return;
    };
    let peers: Vec<&Row> = rows.iter().filter(|r| r.label != "berth").collect();
    let local = |r: &Row| r.figures.local.as_ref().ok().and_then(|s| s.samples.median());
    let fwd = |r: &Row| r.figures.forwarded.as_ref().ok().and_then(|s| s.samples.median());
    let res = |r: &Row| {
        r.figures
            .resolvable
            .as_ref()
            .ok()
            .and_then(|x| x.after_run.median())
    };
    let rate = |r: &Row| r.figures.local.as_ref().ok().map(Sequential::rate);
    type Median<'a> = &'a dyn Fn(&Row) -> Option<std::time::Duration>;
    let timed = |work: &str, get: Median, show: fn(std::time::Duration) -> String| {
        let mut l = Line::new(work, opt(get(berth), show));
        let figures: Vec<(&str, Option<std::time::Duration>)> =
            peers.iter().map(|p| (p.label.as_str(), get(p))).collect();
        for (label, d) in &figures {
            l = l.peer(label, opt(*d, show));
        }
        l.ratio(peer_ratios(get(berth), &figures))
    };
    let bm = local(berth);
    session.add(timed("local name from a container, median", &local, us).target(
        format!("≤ {}", us(LOCAL_MEDIAN_TARGET)),
        Verdict::of(bm.map(|m| m <= LOCAL_MEDIAN_TARGET)),
    ));
    let q = |x: Option<f64>| x.map_or_else(|| "—".into(), |x| format!("{x:.0} q/s"));
    let mut l = Line::new("local name, sequential rate", q(rate(berth)));
    for p in &peers {
        l = l.peer(&p.label, q(rate(p)));
    }
    let aard = peers
        .iter()
        .find(|r| r.label == "aardvark-dns")
        .and_then(|a| rate(a));
    let x = rate(berth).zip(aard).map(|(b, a)| b / a);
    session.add(
        l.ratio(x.map_or_else(String::new, |x| format!("berth ÷ aardvark-dns: {x:.1}×")))
            .target(
                format!("≥ {RATE_TARGET}× aardvark-dns"),
                Verdict::of(x.map(|x| x >= RATE_TARGET)),
            ),
    );
    session.add(timed("forwarded name, median", &fwd, us));
    let br = res(berth);
    session.add(timed("run → name resolvable, median", &res, ms).target(
        format!("≤ {}", ms(RESOLVABLE_TARGET)),
        Verdict::of(br.map(|m| m <= RESOLVABLE_TARGET)),
    ));
}
