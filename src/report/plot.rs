//! `--plot`: a latency-by-percentile chart per request kind, as a self-contained SVG. The x axis is
//! the "nines" scale HDR histogram plots use (0, 90, 99, 99.9, 99.99%: each step is ten times
//! rarer), the y axis milliseconds from when requests were due.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::client::{REQUEST_KINDS, request_name};
use crate::metrics::Snapshot;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Up to 99.99%.
const NINES: f64 = 4.0;
/// Points per decade of rarity.
const STEPS: u32 = 40;
const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// A request kind's name, colour and points (nines, ms).
type Curve = (&'static str, &'static str, Vec<(f64, f64)>);

/// The chart; a request kind with no measured latency gets no curve (and says so in the legend).
pub fn svg(snapshot: &Snapshot) -> String {
    let curves: Vec<Curve> = REQUEST_KINDS
        .iter()
        .zip(COLOURS)
        .map(|(k, colour)| {
            (
                request_name(*k),
                colour,
                points(&snapshot.request(*k).latency),
            )
        })
        .collect();
    let top = nice_ceiling(
        curves
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|(_, ms)| *ms))
            .fold(0.0, f64::max),
    );
    let x = |nines: f64| LEFT + nines / NINES * (WIDTH - LEFT - RIGHT);
    let y = |ms: f64| HEIGHT - BOTTOM - ms / top * (HEIGHT - TOP - BOTTOM);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"15\">Latency by percentile (from the due time)</text>\n"
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%"].iter().enumerate() {
        let px = x(i as f64);
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 18.0
        );
    }
    for i in 0..=5 {
        let ms = top * f64::from(i) / 5.0;
        let py = y(ms);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            trim_number(ms)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>\
         <text x=\"18\" y=\"{:.1}\" transform=\"rotate(-90 18 {:.1})\" text-anchor=\"middle\">ms</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    for (i, (name, colour, pts)) in curves.iter().enumerate() {
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = WIDTH - RIGHT + 12.0;
        let label = if pts.is_empty() {
            format!("{name} (no data)")
        } else {
            (*name).to_string()
        };
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            lx + 20.0,
            lx + 26.0,
            ly + 4.0
        );
        if pts.is_empty() {
            continue;
        }
        let coords: Vec<String> = pts
            .iter()
            .map(|(n, ms)| format!("{:.1},{:.1}", x(*n), y(*ms)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"curve\" data-op=\"{name}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2\" points=\"{}\"/>",
            coords.join(" ")
        );
    }
    out.push_str("</svg>\n");
    out
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

    #[test]
    fn one_curve_per_request_kind_with_data_and_valid_xml() {
        let mut s = Snapshot::default();
        for ms in 1..=1000 {
            s.requests[0].latency.record(ms * 90).unwrap();
            s.requests[3].latency.record(ms * 7).unwrap();
        }
        let svg = svg(&s);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let curves: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("curve"))
            .collect();
        let ops: Vec<&str> = curves
            .iter()
            .filter_map(|n| n.attribute("data-op"))
            .collect();
        assert_eq!(ops, ["register", "notify"]);
        let register = curves[0].attribute("points").unwrap();
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
        assert!(svg.contains("update (no data)") && svg.contains("99.99%"));
        // The y axis reaches just past the slowest register (90 ms): 100 is its top label.
        assert!(svg.contains(">100</text>"), "{svg}");
    }

    #[test]
    fn axis_tops_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(nice_ceiling(0.0), 1.0));
        assert!(close(nice_ceiling(3.2), 5.0));
        assert!(close(nice_ceiling(100.05), 200.0));
        assert!((nice_ceiling(0.07) - 0.1).abs() < 1e-12);
    }
}
