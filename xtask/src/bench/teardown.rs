//! `teardown`: how fast containers come and go, end to end, as a user
//! types it: `berth run -d` of N containers one after the other (each
//! timed, from the command's start to its exit), then `berth rm -f` of all
//! N in one command; next to `docker run -d` and `docker rm -f` of the same
//! N on a dockerd of the bench's own, inside a namespace of its own (its
//! bridge network there), from a busybox image.
//!
//! berth runs in a test host namespace with its daemon (release build), on
//! a bridge network of its own. Nothing leaves either namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::TestHost;

use super::docker::{self, Dockerd, IMAGE};
use super::{Line, Samples, Session, Verdict, berth_ok, ms};

/// Containers run and then removed, by default (the issue's figure).
const CONTAINERS: usize = 100;
/// Runs before the timed ones, each removed at once.
const WARMUP: usize = 5;
/// The issue's targets.
const RUN_TARGET: Duration = Duration::from_millis(8);
const RM_TARGET: Duration = Duration::from_millis(500);
/// Docker's runs stop after this long by default (they take ~0.4 s each
/// here); `--full` runs all N.
const DOCKER_BUDGET: Duration = Duration::from_secs(90);

struct Opts {
    containers: usize,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            containers: CONTAINERS,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--containers" => {
                    let v = it.next().with_context(|| format!("{a} needs a value"))?;
                    o.containers = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=500).contains(n))
                        .with_context(|| format!("--containers {v:?}: expected a count from 1 to 500"))?;
                }
                _ => bail!("unknown option {a:?} (accepted: --containers N)"),
            }
        }
        Ok(o)
    }
}

/// Timings of one subject.
#[derive(Default)]
struct Figures {
    runs: Samples,
    /// `rm -f` of every container that ran, in one command.
    rm: Option<Duration>,
}

pub fn run(args: &[String], s: &mut Session) -> Result<()> {
    let opts = Opts::parse(args)?;
    let bin = crate::build_berth(true)?;
    let n = opts.containers;
    println!(
        "`run -d` of {n} containers one after the other (each timed end to end), then `rm -f` of all {n} in one command"
    );
    super::settle();
    let berth = berth_figures(&bin, n)?;
    let docker = match docker::missing() {
        Some(why) => {
            s.note(format!("Docker: {why}: no Docker figures in this run"));
            None
        }
        None => {
            super::settle();
            match docker_figures(&bin, n, s.budget(DOCKER_BUDGET)) {
                Ok(f) => Some(f),
                Err(e) => {
                    s.note(format!("Docker: FAILED: {e:#}"));
                    None
                }
            }
        }
    };
    if let Some(d) = &docker
        && d.runs.len() < n
    {
        s.note(format!(
            "Docker: stopped at {} of {n} containers after its {} s budget; its rm -f removed those",
            d.runs.len(),
            DOCKER_BUDGET.as_secs()
        ));
    }
    report(s, &berth, docker.as_ref(), n);
    Ok(())
}

fn berth_figures(bin: &Path, n: usize) -> Result<Figures> {
    let h = TestHost::new(bin);
    let net = "teardown";
    berth_ok(&h, &["network", "create", "--subnet", "10.219.0.0/23", net])?;
    let run = |name: &str| -> Result<Duration> {
        let args = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--",
            "sleep",
            "3600",
        ];
        Ok(super::timed(
            &mut h.client_cmd(&args),
            "",
            &format!("berth run -d --name {name}"),
        )?
        .0)
    };
    for i in 0..WARMUP {
        let name = format!("w{i}");
        run(&name)?;
        berth_ok(&h, &["rm", "-f", &name])?;
    }
    let mut f = Figures::default();
    let names: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    for name in &names {
        f.runs.push(run(name)?);
    }
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    let t = Instant::now();
    berth_ok(&h, &rm)?;
    f.rm = Some(t.elapsed());
    let left = h.berth(&["ps", "-a", "-q"]).stdout;
    ensure!(
        left.trim().is_empty(),
        "berth: containers left after rm -f: {left}"
    );
    println!(
        "berth: run -d median {}, rm -f of {n}: {}",
        f.runs.median().map_or("—".into(), ms),
        f.rm.map_or("—".into(), ms)
    );
    Ok(f)
}

fn docker_figures(bin: &Path, n: usize, budget: Option<Duration>) -> Result<Figures> {
    let world = TestHost::without_daemon(bin);
    let ns = world.namespace("docker");
    let mut d = match Dockerd::start_in(&ns, "teardown", &["sleep"]) {
        Ok(d) => d,
        Err((e, notes)) => {
            for n in notes {
                println!("Docker: {n}");
            }
            return Err(e);
        }
    };
    let r = docker_measure(&d, n, budget);
    for note in d.shut() {
        println!("Docker: {note}");
    }
    r
}

fn docker_measure(d: &Dockerd, n: usize, budget: Option<Duration>) -> Result<Figures> {
    let net = "teardown";
    d.docker(&["network", "create", "--subnet", "10.221.0.0/23", net])?;
    let run = |name: &str| -> Result<Duration> {
        let args = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            IMAGE,
            "sleep",
            "3600",
        ];
        Ok(super::timed(&mut d.cmd(&args), "", &format!("docker run -d --name {name}"))?.0)
    };
    for i in 0..WARMUP.min(2) {
        let name = format!("w{i}");
        run(&name)?;
        d.docker(&["rm", "-f", &name])?;
    }
    let deadline = budget.map(|b| Instant::now() + b);
    let mut f = Figures::default();
    let mut names = Vec::new();
    for i in 0..n {
        if i > 0 && deadline.is_some_and(|t| Instant::now() > t) {
            break;
        }
        let name = format!("t{i:03}");
        f.runs.push(run(&name)?);
        names.push(name);
        if (i + 1) % 25 == 0 {
            eprintln!("Docker: {} containers", i + 1);
        }
    }
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    let t = Instant::now();
    d.docker(&rm)?;
    f.rm = Some(t.elapsed());
    println!(
        "Docker: run -d median {}, rm -f of {}: {}",
        f.runs.median().map_or("—".into(), ms),
        names.len(),
        f.rm.map_or("—".into(), ms)
    );
    Ok(f)
}

/// "12.3× faster than Docker", when both figures are there.
fn faster(berth: Option<Duration>, docker: Option<Duration>) -> String {
    match (berth, docker) {
        (Some(b), Some(d)) if !b.is_zero() => {
            format!("{:.1}× faster than Docker", d.as_secs_f64() / b.as_secs_f64())
        }
        _ => String::new(),
    }
}

fn report(s: &mut Session, berth: &Figures, docker: Option<&Figures>, n: usize) {
    let opt = |d: Option<Duration>| d.map_or_else(|| "—".into(), ms);
    let run_b = berth.runs.median();
    let run_d = docker.and_then(|d| d.runs.median());
    println!();
    println!("targets (from the issue):");
    println!(
        "  median `berth run -d` end to end ≤ {}: {} (p90 {}): {}",
        ms(RUN_TARGET),
        opt(run_b),
        opt(berth.runs.p90()),
        Verdict::of(run_b.map(|m| m <= RUN_TARGET)).word()
    );
    let rm_ok = (n == CONTAINERS)
        .then(|| berth.rm.map(|r| r <= RM_TARGET))
        .flatten();
    println!(
        "  `berth rm -f` of {CONTAINERS} ≤ {}: {}{}",
        ms(RM_TARGET),
        opt(berth.rm),
        if n == CONTAINERS {
            format!(": {}", Verdict::of(rm_ok).word())
        } else {
            format!(" (of {n}: not the target's size)")
        }
    );
    let mut line = Line::new(format!("`run -d` end to end, median of {n}"), opt(run_b))
        .ratio(faster(run_b, run_d))
        .target(
            format!("≤ {}", ms(RUN_TARGET)),
            Verdict::of(run_b.map(|m| m <= RUN_TARGET)),
        );
    if let Some(d) = docker {
        line = line.peer("Docker", format!("{} (median of {})", opt(run_d), d.runs.len()));
    }
    s.add(line);
    let rm_d = docker.and_then(|d| d.rm);
    let mut line = Line::new(format!("`rm -f` of {n} containers in one command"), opt(berth.rm));
    if let Some(d) = docker {
        line = line
            .peer("Docker", format!("{} (of {})", opt(rm_d), d.runs.len()))
            .ratio(if d.runs.len() == n {
                faster(berth.rm, rm_d)
            } else {
                String::new()
            });
    }
    line = if n == CONTAINERS {
        line.target(format!("≤ {}", ms(RM_TARGET)), Verdict::of(rm_ok))
    } else {
        line
    };
    s.add(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_default_to_the_issue_and_bad_ones_are_named() {
        assert_eq!(Opts::parse(&[]).unwrap().containers, 100);
        assert_eq!(Opts::parse(&args("--containers 20")).unwrap().containers, 20);
        for (bad, says) in [
            ("--containers 0", "from 1 to 500"),
            ("--containers 501", "from 1 to 500"),
            ("--containers", "needs a value"),
            ("--fast", "unknown option"),
        ] {
            let e = Opts::parse(&args(bad)).err().unwrap().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn ratios_say_how_much_faster() {
        let ms = Duration::from_millis;
        assert_eq!(faster(Some(ms(10)), Some(ms(400))), "40.0× faster than Docker");
        assert_eq!(faster(None, Some(ms(400))), "");
        assert_eq!(faster(Some(ms(10)), None), "");
    }
}
