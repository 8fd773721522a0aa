//! Line charts as SVG, written by hand: each subject's curve (one colour
//! each, berth's first) over a shared x axis, with axis labels, units,
//! ticks and a legend. The y axis turns logarithmic when the figures span
//! more than [`LOG_SPREAD`]×, so that berth's curve is not flattened
//! against the axis by a peer ten times slower.

use std::fmt::Write as _;

/// Width and height of the picture, in pixels (wider when a legend label
/// needs it).
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
/// The plot area's margins: room for tick labels, axis labels, the legend.
const LEFT: f64 = 78.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 58.0;
/// A larger max/min ratio of the y values than this makes y logarithmic.
const LOG_SPREAD: f64 = 20.0;
/// About the width of a character of the legend, in pixels.
const CHAR_WIDTH: f64 = 7.0;
/// Each subject's colour, the same in every chart: a label starting with
/// the name gets it (the first that matches). berth's is the strongest.
const COLOURS: [(&str, &str); 5] = [
    ("berth, CLI", "#d62728"),
    ("berth", "#1f5fbf"),
    ("netavark", "#2ca02c"),
    ("CNI", "#9467bd"),
    ("Docker", "#ff7f0e"),
];
/// Colours of other labels, in turn.
const OTHERS: [&str; 3] = ["#8c564b", "#7f7f7f", "#17becf"];

/// One curve: its legend label and its points (x, y), y above 0.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart of several series on shared axes.
pub struct Chart {
    pub title: String,
    /// With the unit, e.g. "containers already attached".
    pub x_label: String,
    /// With the unit, e.g. "median attach (ms)".
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Maps a value to a pixel on one axis.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    /// The pixels of `lo` and `hi`.
    from: f64,
    to: f64,
}

impl Axis {
    fn px(&self, v: f64) -> f64 {
        let (lo, hi, v) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(f64::MIN_POSITIVE).log10())
        } else {
            (self.lo, self.hi, v)
        };
        let share = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.from + share * (self.to - self.from)
    }
}

impl Chart {
    /// The whole SVG document.
    pub fn svg(&self) -> String {
        let points = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let ys: Vec<f64> = points().map(|p| p.1).filter(|y| *y > 0.0).collect();
        let xs: Vec<f64> = points().map(|p| p.0).collect();
        let log = needs_log(&ys);
        let (x_lo, x_hi) = bounds(&xs).unwrap_or((0.0, 1.0));
        let (y_lo, y_hi) = bounds(&ys).unwrap_or((0.1, 1.0));
        let x_ticks = nice_ticks(x_lo.min(0.0), x_hi);
        let y_ticks = if log {
            log_ticks(y_lo, y_hi)
        } else {
            nice_ticks(0.0, y_hi)
        };
        let x = Axis {
            lo: x_ticks[0],
            hi: x_ticks[x_ticks.len() - 1],
            log: false,
            from: LEFT,
            to: WIDTH - RIGHT,
        };
        let y = Axis {
            lo: y_ticks[0],
            hi: y_ticks[y_ticks.len() - 1],
            log,
            from: HEIGHT - BOTTOM,
            to: TOP,
        };

        let longest = self
            .series
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0);
        let width = WIDTH
            .max(WIDTH - RIGHT + 56.0 + CHAR_WIDTH * longest as f64)
            .ceil();
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{width}" height="{HEIGHT}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            escape(&self.title)
        );
        // Grid and ticks.
        for t in &y_ticks {
            let py = y.px(*t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                number(*t)
            );
        }
        for t in &x_ticks {
            let px = x.px(*t);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                HEIGHT - BOTTOM,
                HEIGHT - BOTTOM + 18.0,
                number(*t)
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
            WIDTH - RIGHT - LEFT,
            HEIGHT - BOTTOM - TOP
        );
        // Axis labels.
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label)
        );
        let y_label = if log {
            format!("{}, log scale", self.y_label)
        } else {
            self.y_label.clone()
        };
        let (ly, lx) = ((TOP + HEIGHT - BOTTOM) / 2.0, 20.0);
        let _ = writeln!(
            s,
            r#"<text x="{lx}" y="{ly:.1}" text-anchor="middle" transform="rotate(-90 {lx} {ly:.1})">{}</text>"#,
            escape(&y_label)
        );
        // Curves and legend.
        for (i, series) in self.series.iter().enumerate() {
            let colour = colour(&series.label, i);
            let pts: Vec<String> = series
                .points
                .iter()
                .filter(|p| p.1 > 0.0 || !log)
                .map(|&(px, py)| format!("{:.1},{:.1}", x.px(px), y.px(py)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            if series.points.len() <= 30 {
                for p in &pts {
                    let (cx, cy) = p.split_once(',').unwrap_or_default();
                    let _ = writeln!(s, r#"<circle cx="{cx}" cy="{cy}" r="3.5" fill="{colour}"/>"#);
                }
            }
            let ly = TOP + 14.0 + 22.0 * i as f64;
            let lx = WIDTH - RIGHT + 14.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 22.0,
                lx + 28.0,
                ly + 4.0,
                escape(&series.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The colour of the series labelled `label`, the `i`th.
fn colour(label: &str, i: usize) -> &'static str {
    COLOURS
        .iter()
        .find(|(name, _)| label.starts_with(name))
        .map_or(OTHERS[i % OTHERS.len()], |(_, c)| c)
}

/// Whether `ys` span more than [`LOG_SPREAD`]×.
fn needs_log(ys: &[f64]) -> bool {
    bounds(ys).is_some_and(|(lo, hi)| lo > 0.0 && hi / lo > LOG_SPREAD)
}

fn bounds(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Ticks at 1, 2 or 5 × a power of ten, from at or below `lo` to at or
/// above `hi`, about five of them.
fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    // Printed and read back at the step's decimals: 3 × 0.2 is 0.6, not
    // 0.6000000000000001.
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (first..=last)
        .map(|k| format!("{:.*}", decimals, k as f64 * step).parse().unwrap_or(0.0))
        .collect()
}

/// Ticks of a log axis: the powers of ten around `lo`..`hi`, with 2 and
/// 5 between them when it spans few decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let b = b.max(a + 1);
    let steps: &[f64] = if b - a <= 3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let mut t: Vec<f64> = (a..b)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .collect();
    t.push(10f64.powi(b));
    t
}

/// A tick label: no trailing zeros, no more digits than it needs.
fn number(v: f64) -> String {
    let s = if v.abs() >= 1.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Text for SVG: `&`, `<` and `>` escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Medians of `ys` over consecutive buckets of `width` values: the point
/// of each is (the bucket's middle index, its median). For per-container
/// figures, too many and too noisy to draw one by one.
pub fn bucket_medians(ys: &[f64], width: usize) -> Vec<(f64, f64)> {
    let width = width.max(1);
    ys.chunks(width)
        .enumerate()
        .map(|(k, c)| {
            let mut c = c.to_vec();
            c.sort_by(f64::total_cmp);
            let n = c.len();
            let m = if n % 2 == 0 {
                (c[n / 2 - 1] + c[n / 2]) / 2.0
            } else {
                c[n / 2]
            };
            ((k * width) as f64 + (n as f64 - 1.0) / 2.0, m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<(&str, Vec<(f64, f64)>)>) -> Chart {
        Chart {
            title: "attach <bridge>".into(),
            x_label: "containers already attached".into(),
            y_label: "median attach (ms)".into(),
            series: series
                .into_iter()
                .map(|(l, p)| Series {
                    label: l.into(),
                    points: p,
                })
                .collect(),
        }
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 500.0),
            vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        );
        assert_eq!(nice_ticks(0.0, 2.35), vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(nice_ticks(0.0, 43.2), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(nice_ticks(0.0, 0.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    }

    #[test]
    fn log_ticks_span_whole_decades() {
        assert_eq!(
            log_ticks(2.35, 95.2),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(
            log_ticks(0.05, 2000.0),
            vec![0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]
        );
        assert_eq!(log_ticks(3.0, 3.0), vec![1.0, 2.0, 5.0, 10.0]);
    }

    #[test]
    fn y_turns_logarithmic_past_twenty_times() {
        assert!(!needs_log(&[2.35, 43.2]));
        assert!(needs_log(&[0.1, 43.2]));
        assert!(!needs_log(&[]));
    }

    #[test]
    fn a_subject_keeps_its_colour_in_every_chart() {
        assert_eq!(colour("berth, API attach", 0), colour("berth (port work)", 3));
        assert_eq!(colour("netavark setup", 2), colour("netavark teardown", 1));
        assert_ne!(colour("berth, CLI connect", 1), colour("berth, API attach", 0));
        assert_ne!(colour("CNI ADD", 3), colour("Docker (run − plain run)", 2));
        assert_eq!(colour("bare pair", 0), OTHERS[0]);
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(number(500.0), "500");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(0.01), "0.01");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn buckets_take_medians() {
        let ys: Vec<f64> = (1..=7).map(f64::from).collect();
        assert_eq!(bucket_medians(&ys, 3), vec![(1.0, 2.0), (4.0, 5.0), (6.0, 7.0)]);
        assert_eq!(bucket_medians(&[4.0, 1.0], 2), vec![(0.5, 2.5)]);
    }

    #[test]
    fn the_svg_has_labels_a_legend_and_a_curve_per_series() {
        let svg = chart(vec![
            ("berth", vec![(1.0, 2.3), (100.0, 2.4), (500.0, 2.5)]),
            ("netavark", vec![(1.0, 43.2), (100.0, 45.0)]),
        ])
        .svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        for text in [
            ">berth<",
            ">netavark<",
            ">containers already attached<",
            ">median attach (ms)<",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(svg.contains("attach &lt;bridge&gt;"));
        assert!(svg.contains(r#"width="760""#), "short labels keep the width");
        assert!(!svg.contains("log scale"));
    }

    #[test]
    fn a_long_legend_label_widens_the_picture() {
        let label = "netavark (setup − plain), stopped at 226";
        let svg = chart(vec![(label, vec![(0.0, 1.0)])]).svg();
        let width: f64 = svg
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(width >= WIDTH - RIGHT + 14.0 + 28.0 + CHAR_WIDTH * label.chars().count() as f64);
    }

    #[test]
    fn a_wide_spread_is_drawn_on_a_log_axis_inside_the_plot() {
        let svg = chart(vec![
            ("berth", vec![(0.0, 0.2), (1000.0, 0.25)]),
            ("netavark", vec![(0.0, 40.0), (400.0, 900.0)]),
        ])
        .svg();
        assert!(svg.contains("median attach (ms), log scale"));
        for line in svg.lines().filter(|l| l.starts_with("<polyline")) {
            let pts = line.split("points=\"").nth(1).unwrap().trim_end_matches("\"/>");
            for p in pts.split(' ') {
                let (x, y) = p.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=WIDTH - RIGHT).contains(&x), "x {x}");
                assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "y {y}");
            }
        }
    }
}
