//! The summary every bench feeds at its "targets" report: one line per
//! headline figure (the work, berth's figure, each peer's, the ratio, the
//! target and whether it was met), written as a Markdown table to
//! `target/bench/summary.md` (all benches) or `summary-NAME.md` (one), with
//! the date, the machine and the command that reproduces it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether a line's target was met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The target applies, but the figure is missing.
    NotMeasured,
    /// A figure shown for comparison, with no target of its own.
    None,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`; `NotMeasured` without a figure.
    pub fn of(ok: Option<bool>) -> Self {
        match ok {
            Some(true) => Self::Met,
            Some(false) => Self::Missed,
            None => Self::NotMeasured,
        }
    }

    /// `met`, `MISSED`, `not measured`, or nothing.
    pub fn word(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::NotMeasured => "not measured",
            Self::None => "",
        }
    }
}

/// One headline figure of a bench.
#[derive(Clone, Debug)]
pub struct Line {
    work: String,
    berth: String,
    /// Each peer's name and figure, in the bench's order.
    peers: Vec<(String, String)>,
    ratio: String,
    target: String,
    verdict: Verdict,
}

impl Line {
    /// `work` as a reader would say it ("attach, 500 others, median"), and
    /// berth's figure with its unit.
    pub fn new(work: impl Into<String>, berth: impl Into<String>) -> Self {
        Self {
            work: work.into(),
            berth: berth.into(),
            peers: Vec::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::None,
        }
    }

    /// A peer's figure for the same work.
    pub fn peer(mut self, name: &str, figure: impl Into<String>) -> Self {
        self.peers.push((name.to_owned(), figure.into()));
        self
    }

    /// How berth compares, e.g. "14.2× faster than CNI".
    pub fn ratio(mut self, ratio: impl Into<String>) -> Self {
        self.ratio = ratio.into();
        self
    }

    /// The target for this figure, and whether it was met.
    pub fn target(mut self, target: impl Into<String>, verdict: Verdict) -> Self {
        self.target = target.into();
        self.verdict = verdict;
        self
    }
}

/// What a whole `cargo xtask bench` run collected.
#[derive(Default)]
pub struct Summary {
    /// Each bench's name and line.
    lines: Vec<(&'static str, Line)>,
    /// Each bench's name and a sentence: a peer cut short by its budget, a
    /// bench that failed, how long each took.
    notes: Vec<(&'static str, String)>,
    /// Charts written, as paths relative to the summary.
    charts: Vec<PathBuf>,
}

impl Summary {
    pub fn add(&mut self, bench: &'static str, line: Line) {
        self.lines.push((bench, line));
    }

    pub fn note(&mut self, bench: &'static str, note: impl Into<String>) {
        self.notes.push((bench, note.into()));
    }

    pub fn chart(&mut self, file: PathBuf) {
        self.charts.push(file);
    }

    /// The Markdown page: a heading, the date and machine, how to
    /// reproduce it, the table, then notes and charts.
    pub fn markdown(&self, date: &str, machine: &str, command: &str) -> String {
        let mut peers: Vec<&str> = Vec::new();
        for (_, l) in &self.lines {
            for (p, _) in &l.peers {
                if !peers.contains(&p.as_str()) {
                    peers.push(p);
                }
            }
        }
        let mut header = vec!["bench", "work", "berth"];
        header.extend(&peers);
        header.extend(["ratio", "target", "met"]);
        let mut out = String::from("# berth benches\n\n");
        let _ = writeln!(out, "{date} · {machine}  ");
        let _ = writeln!(out, "reproduce: `{command}`\n");
        let row = |cells: &[&str]| {
            let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        out.push_str(&row(&header));
        out.push_str(&row(&vec!["---"; header.len()]));
        for (bench, l) in &self.lines {
            let mut cells = vec![*bench, l.work.as_str(), l.berth.as_str()];
            for p in &peers {
                let figure = l.peers.iter().find(|(n, _)| n == p);
                cells.push(figure.map_or("", |(_, f)| f.as_str()));
            }
            cells.extend([l.ratio.as_str(), l.target.as_str(), l.verdict.word()]);
            out.push_str(&row(&cells));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for (bench, n) in &self.notes {
                let _ = writeln!(out, "- {bench}: {n}");
            }
        }
        if !self.charts.is_empty() {
            out.push('\n');
            for c in &self.charts {
                let _ = writeln!(out, "![{0}]({0})", c.display());
            }
        }
        out
    }
}

/// A table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The date and time now, in UTC, as "2026-12-07 12:40 UTC".
pub fn now_utc() -> String {
    date(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// `since_epoch` as a UTC date and time.
fn date(since_epoch: Duration) -> String {
    let t = berth_api::Utc::from_unix(since_epoch.as_secs() as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(date(Duration::ZERO), "1970-01-01 00:00 UTC");
        assert_eq!(date(Duration::from_secs(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(date(Duration::from_secs(1_796_646_000)), "2026-12-07 12:20 UTC");
    }

    #[test]
    fn the_table_has_a_column_for_every_peer_of_any_bench() {
        let mut s = Summary::default();
        s.add(
            "attach",
            Line::new("attach, median", "2.35 ms")
                .peer("netavark", "43.2 ms")
                .peer("CNI", "32.8 ms")
                .ratio("14.0× faster than CNI")
                .target("≤ 3 ms", Verdict::Met),
        );
        s.add(
            "dns",
            Line::new("local name | median", "80 µs")
                .peer("Docker", "300 µs")
                .target("≤ 100 µs", Verdict::of(Some(false))),
        );
        s.add("dns", Line::new("q/s", "12000"));
        s.note(
            "ports",
            "netavark: stopped at 400 of 1000 containers after its 60 s budget",
        );
        s.chart(PathBuf::from("attach.svg"));
        let md = s.markdown("2026-12-07 12:40 UTC", "machine: 2 cores", "cargo xtask bench");
        let lines: Vec<&str> = md.lines().collect();
        let head = lines.iter().position(|l| l.starts_with("| bench")).unwrap();
        assert_eq!(
            lines[head],
            "| bench | work | berth | netavark | CNI | Docker | ratio | target | met |"
        );
        assert_eq!(
            lines[head + 1],
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        assert_eq!(
            lines[head + 2],
            "| attach | attach, median | 2.35 ms | 43.2 ms | 32.8 ms |  | 14.0× faster than CNI | ≤ 3 ms | met |"
        );
        assert_eq!(
            lines[head + 3],
            "| dns | local name \\| median | 80 µs |  |  | 300 µs |  | ≤ 100 µs | MISSED |"
        );
        assert_eq!(lines[head + 4], "| dns | q/s | 12000 |  |  |  |  |  |  |");
        assert!(md.contains("- ports: netavark: stopped at 400 of 1000 containers after its 60 s budget"));
        assert!(md.contains("![attach.svg](attach.svg)"));
        assert!(md.contains("reproduce: `cargo xtask bench`"));
    }
}
