//! `--plot`: a self-contained SVG of four charts, one above the other. First, latency by
//! percentile per request kind: the x axis is the "nines" scale HDR histogram plots use (0, 90,
//! 99, 99.9, 99.99%: each step is ten times rarer), the y axis milliseconds from when requests
//! were due, logarithmic so one slow tail does not flatten the rest. Then, over the run's
//! seconds: clients by state, requests sent per second by kind, and each kind's p99 (log axis).
//! A legend lists only the series drawn, in a margin as wide as its longest name.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::schema::Interval;
use crate::client::{CLIENT_STATES, REQUEST_KINDS, request_name, state_name};
use crate::metrics::Snapshot;

const WIDTH: f64 = 860.0;
const PANEL_HEIGHT: f64 = 330.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Up to 99.99%.
const NINES: f64 = 4.0;
/// Points per decade of rarity.
const STEPS: u32 = 40;
const COLOURS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
/// Average width of a 12 px sans-serif character, generous, for sizing the legend's margin.
const CHAR_WIDTH: f64 = 7.5;

/// One line of a chart: its name, colour, and runs of points (a gap where it has no value).
struct Series {
    name: String,
    colour: &'static str,
    runs: Vec<Vec<(f64, f64)>>,
}

impl Series {
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.runs.iter().flatten().map(|(_, y)| *y)
    }
}

/// How a chart's axes map values to the page.
struct Chart<'a> {
    /// The chart's `class`: `percentiles`, `clients`, `rate`, `p99`.
    id: &'a str,
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    /// Tick positions and labels along x.
    x_ticks: Vec<(f64, String)>,
    x_max: f64,
    log_y: bool,
}

/// The four charts; those with nothing to draw say so instead of drawing empty axes.
pub fn svg(snapshot: &Snapshot, intervals: &[Interval]) -> String {
    let percentiles: Vec<Series> = REQUEST_KINDS
        .iter()
        .zip(COLOURS)
        .filter_map(|(k, colour)| {
            let pts = points(&snapshot.request(*k).latency);
            (!pts.is_empty()).then(|| Series {
                name: request_name(*k).to_string(),
                colour,
                runs: vec![pts],
            })
        })
        .collect();
    let charts = [
        (
            Chart {
                id: "percentiles",
                title: "Latency by percentile (from the due time)",
                x_label: "percentile",
                y_label: "ms",
                x_ticks: ["0%", "90%", "99%", "99.9%", "99.99%"]
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i as f64, (*l).to_string()))
                    .collect(),
                x_max: NINES,
                log_y: true,
            },
            percentiles,
        ),
        over_time(
            "clients",
            "Clients by state",
            "clients",
            false,
            intervals,
            clients_by_state(intervals),
        ),
        over_time(
            "rate",
            "Requests sent per second",
            "requests/s",
            false,
            intervals,
            per_kind(intervals, |i, r| Some(r.sent as f64 / i.length_s.max(1e-3))),
        ),
        over_time(
            "p99",
            "p99 latency per second (from the due time)",
            "ms",
            true,
            intervals,
            per_kind(intervals, |_, r| r.p99_us.map(|us| us as f64 / 1000.0)),
        ),
    ];
    let height = PANEL_HEIGHT * charts.len() as f64;
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, (chart, series)) in charts.iter().enumerate() {
        draw(&mut out, PANEL_HEIGHT * i as f64, chart, series);
    }
    out.push_str("</svg>\n");
    out
}

/// A chart over the run's seconds.
fn over_time<'a>(
    id: &'a str,
    title: &'a str,
    y_label: &'a str,
    log_y: bool,
    intervals: &[Interval],
    series: Vec<Series>,
) -> (Chart<'a>, Vec<Series>) {
    let x_max = intervals.last().map_or(1.0, |i| i.elapsed_s).max(1.0);
    let step = nice_ceiling(x_max / 8.0).max(1.0);
    let last = (x_max / step + 1e-9).floor() as u32;
    let x_ticks = (0..=last)
        .map(|i| f64::from(i) * step)
        .map(|x| (x, trim_number(x)))
        .collect();
    let chart = Chart {
        id,
        title,
        x_label: "seconds",
        y_label,
        x_ticks,
        x_max,
        log_y,
    };
    (chart, series)
}

/// One series per state some client was in.
fn clients_by_state(intervals: &[Interval]) -> Vec<Series> {
    CLIENT_STATES
        .iter()
        .zip(COLOURS)
        .filter_map(|(state, colour)| {
            let name = state_name(*state);
            let pts: Vec<(f64, f64)> = intervals
                .iter()
                .map(|i| {
                    (
                        i.elapsed_s,
                        i.clients.get(name).copied().unwrap_or(0) as f64,
                    )
                })
                .collect();
            pts.iter().any(|(_, n)| *n > 0.0).then(|| Series {
                name: name.to_string(),
                colour,
                runs: vec![pts],
            })
        })
        .collect()
}

/// One series per request kind with a nonzero value somewhere; `value` of `None` leaves a gap.
fn per_kind(
    intervals: &[Interval],
    value: impl Fn(&Interval, &super::IntervalRequest) -> Option<f64>,
) -> Vec<Series> {
    REQUEST_KINDS
        .iter()
        .zip(COLOURS)
        .filter_map(|(kind, colour)| {
            let name = request_name(*kind);
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for i in intervals {
                match i.requests.get(name).and_then(|r| value(i, r)) {
                    Some(v) => runs.last_mut().expect("never empty").push((i.elapsed_s, v)),
                    None if runs.last().is_some_and(Vec::is_empty) => {}
                    None => runs.push(Vec::new()),
                }
            }
            runs.retain(|r| !r.is_empty());
            let series = Series {
                name: name.to_string(),
                colour,
                runs,
            };
            let drawn = series.values().any(|v| v > 0.0);
            drawn.then_some(series)
        })
        .collect()
}

fn draw(out: &mut String, top: f64, chart: &Chart<'_>, series: &[Series]) {
    let longest = series.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let right = 40.0 + CHAR_WIDTH * longest as f64;
    let (plot_top, plot_bottom) = (top + TOP, top + PANEL_HEIGHT - BOTTOM);
    let plot_right = WIDTH - right;
    let _ = writeln!(
        out,
        "<g class=\"{}\"><text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"15\">{}</text>",
        chart.id,
        top + 24.0,
        chart.title
    );
    if series.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">nothing \
             measured</text></g>",
            f64::midpoint(LEFT, plot_right),
            f64::midpoint(plot_top, plot_bottom)
        );
        return;
    }
    let y_axis = YAxis::fit(series.iter().flat_map(Series::values), chart.log_y);
    let x = |v: f64| LEFT + v / chart.x_max * (plot_right - LEFT);
    let y = |v: f64| plot_bottom - y_axis.fraction(v) * (plot_bottom - plot_top);
    for (at, label) in &chart.x_ticks {
        let px = x(*at);
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{plot_top:.1}\" x2=\"{px:.1}\" y2=\"{plot_bottom:.1}\" \
             stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            plot_bottom + 18.0
        );
    }
    for value in y_axis.ticks() {
        let py = y(value);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{plot_right:.1}\" y2=\"{py:.1}\" \
             stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py + 4.0,
            trim_number(value)
        );
    }
    let middle = f64::midpoint(plot_top, plot_bottom);
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"18\" y=\"{middle:.1}\" transform=\"rotate(-90 18 {middle:.1})\" \
         text-anchor=\"middle\">{}{}</text>",
        f64::midpoint(LEFT, plot_right),
        top + PANEL_HEIGHT - 10.0,
        chart.x_label,
        chart.y_label,
        if chart.log_y { " (log)" } else { "" }
    );
    for (i, s) in series.iter().enumerate() {
        let ly = plot_top + 10.0 + 20.0 * i as f64;
        let lx = plot_right + 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" \
             stroke-width=\"2\"/><text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 20.0,
            s.colour,
            lx + 26.0,
            ly + 4.0,
            s.name
        );
        for run in &s.runs {
            let coords: Vec<String> = run
                .iter()
                .map(|(vx, vy)| format!("{:.1},{:.1}", x(*vx), y(*vy)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline class=\"curve\" data-op=\"{}\" fill=\"none\" stroke=\"{}\" \
                 stroke-width=\"2\" points=\"{}\"/>",
                s.name,
                s.colour,
                coords.join(" ")
            );
        }
    }
    out.push_str("</g>\n");
}

/// A y axis from 0 to a round top, or, logarithmic, from a power of ten to a power of ten.
struct YAxis {
    log: bool,
    low: f64,
    high: f64,
}

impl YAxis {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> YAxis {
        let (mut min, mut max) = (f64::INFINITY, 0.0f64);
        for v in values.filter(|v| *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if !log {
            return YAxis {
                log,
                low: 0.0,
                high: nice_ceiling(max),
            };
        }
        if !min.is_finite() {
            (min, max) = (1.0, 1.0);
        }
        let low = 10f64.powf(min.log10().floor());
        let high = 10f64.powf(max.log10().ceil()).max(low * 10.0);
        YAxis { log, low, high }
    }

    /// Where `v` is, from 0 (bottom) to 1 (top); a log axis puts 0 and less at the bottom.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            let v = v.max(self.low);
            (v / self.low).log10() / (self.high / self.low).log10()
        } else {
            v / self.high
        }
    }

    /// Every power of ten on a log axis, six even steps on a linear one.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.high / self.low).log10().round() as i32;
            (0..=decades).map(|i| self.low * 10f64.powi(i)).collect()
        } else {
            (0..=5).map(|i| self.high * f64::from(i) / 5.0).collect()
        }
    }
}

/// (nines, ms) from 0% to 99.99%; empty for an empty histogram.
fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=STEPS * NINES as u32)
        .map(|i| {
            let nines = f64::from(i) / f64::from(STEPS);
            let quantile = 1.0 - 10f64.powf(-nines);
            (nines, h.value_at_quantile(quantile) as f64 / 1000.0)
        })
        .collect()
}

/// 1, 2 or 5 times a power of ten, at least `v` (and more than 0).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::IntervalRequest;

    fn chart<'a>(doc: &'a roxmltree::Document<'a>, class: &str) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.tag_name().name() == "g" && n.attribute("class") == Some(class))
            .unwrap_or_else(|| panic!("no {class} chart"))
    }

    fn curves<'a>(chart: roxmltree::Node<'a, 'a>) -> Vec<&'a str> {
        chart
            .descendants()
            .filter(|n| n.attribute("class") == Some("curve"))
            .filter_map(|n| n.attribute("data-op"))
            .collect()
    }

    fn legend<'a>(chart: roxmltree::Node<'a, 'a>) -> Vec<&'a str> {
        chart
            .descendants()
            .filter(|n| n.attribute("class") == Some("legend"))
            .filter_map(|n| n.text())
            .collect()
    }

    fn seconds() -> Vec<Interval> {
        (1..=10u32)
            .map(|n| {
                let mut i = Interval {
                    elapsed_s: f64::from(n),
                    length_s: 1.0,
                    ..Interval::default()
                };
                i.clients.insert("registered".into(), u64::from(n) * 10);
                i.clients.insert("failed".into(), 0);
                let register = IntervalRequest {
                    sent: 10,
                    ok: 10,
                    // No answer in the fifth second: a gap in the p99 line.
                    p99_us: (n != 5).then_some(u64::from(n) * 1000),
                    ..IntervalRequest::default()
                };
                i.requests.insert("register".into(), register);
                i.requests
                    .insert("update".into(), IntervalRequest::default());
                i
            })
            .collect()
    }

    #[test]
    fn four_charts_with_only_the_series_that_have_data_in_their_legends() {
        let mut s = Snapshot::default();
        for ms in 1..=1000 {
            s.requests[0].latency.record(ms * 90).unwrap();
            s.requests[3].latency.record(ms * 7).unwrap();
        }
        let svg = svg(&s, &seconds());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let percentiles = chart(&doc, "percentiles");
        assert_eq!(curves(percentiles), ["register", "notify"]);
        assert_eq!(legend(percentiles), ["register", "notify"]);
        let register = percentiles
            .descendants()
            .find(|n| n.attribute("data-op") == Some("register"))
            .unwrap()
            .attribute("points")
            .unwrap();
        let pts: Vec<(f64, f64)> = register
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(pts.len(), 161);
        // Latency never falls as the percentile rises (SVG y grows downwards).
        assert!(pts.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 <= w[0].1));
        assert!(svg.contains("99.99%") && svg.contains("ms (log)"));
        // A log axis from 0.001 ms (7 µs rounds down a decade) to 100 ms: every decade labelled.
        for label in [">0.001<", ">0.01<", ">1<", ">10<", ">100<"] {
            assert!(svg.contains(label), "{label}: {svg}");
        }
        // Failed clients never happened, updates were never sent: not in any legend.
        assert_eq!(legend(chart(&doc, "clients")), ["registered"]);
        assert_eq!(legend(chart(&doc, "rate")), ["register"]);
        // The p99 line breaks where a second had no answer.
        assert_eq!(curves(chart(&doc, "p99")), ["register", "register"]);
    }

    #[test]
    fn the_legend_margin_fits_the_longest_name_and_empty_charts_say_so() {
        let svg = svg(&Snapshot::default(), &seconds());
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert!(
            chart(&doc, "percentiles")
                .descendants()
                .any(|n| n.text() == Some("nothing measured"))
        );
        for text in doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("legend"))
        {
            let x: f64 = text.attribute("x").unwrap().parse().unwrap();
            let end = x + CHAR_WIDTH * text.text().unwrap().len() as f64;
            assert!(end <= WIDTH, "{:?} ends at {end}", text.text());
        }
    }

    #[test]
    fn axis_tops_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(nice_ceiling(0.0), 1.0));
        assert!(close(nice_ceiling(3.2), 5.0));
        assert!(close(nice_ceiling(100.05), 200.0));
        assert!((nice_ceiling(0.07) - 0.1).abs() < 1e-12);
        let log = YAxis::fit([0.3, 42.0].into_iter(), true);
        assert_eq!(log.ticks(), [0.1, 1.0, 10.0, 100.0]);
        assert!(close(log.fraction(0.1), 0.0) && close(log.fraction(100.0), 1.0));
    }
}
