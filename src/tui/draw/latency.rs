//! The selected request kind's latency by percentile, on a log scale: one slow request (a 12 s
//! retransmission) must not flatten the milliseconds of all the others.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Stylize;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::super::app::App;
use super::super::history::History;
use crate::client::{RequestKind, request_name};

/// The percentile curve runs from p0 to p99.99: x is the number of nines, `-log10(1 - q)`.
const NINES: f64 = 4.0;
const CURVE_POINTS: u32 = 80;
const PERCENT_LABELS: [&str; 5] = ["0%", "90%", "99%", "99.9%", "99.99%"];

pub fn draw(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    let kind = app.selected_kind();
    let r = history.latest().request(kind);
    let title = format!(" {} latency by percentile (log) ", request_name(kind));
    // The legend goes on the border: ratatui's boxed legend hides on small charts.
    let legend = Line::from(vec![
        " from due".cyan(),
        " · ".into(),
        "from send ".yellow(),
    ]);
    let block = Block::bordered()
        .title(title)
        .title_bottom(legend.right_aligned());
    if r.latency.is_empty() {
        frame.render_widget(
            Paragraph::new(no_latency(kind).dim())
                .alignment(Alignment::Center)
                .block(block),
            area,
        );
        return;
    }
    let due = curve(&r.latency);
    let sent = curve(&r.service);
    let low = r.latency.min().min(r.service.min());
    let high = r.latency.max().max(r.service.max());
    let (bottom, top) = decades(low, high);
    // Rows for labels: the chart's inside, less the x axis and its labels.
    let rows = area.height.saturating_sub(4);
    let datasets = vec![
        Dataset::default()
            .name("from due")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .cyan()
            .data(&due),
        Dataset::default()
            .name("from send")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .yellow()
            .data(&sent),
    ];
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([0.0, NINES])
                .labels(PERCENT_LABELS)
                .dark_gray(),
        )
        .y_axis(
            Axis::default()
                .bounds([f64::from(bottom), f64::from(top)])
                .labels(decade_labels(bottom, top, rows))
                .dark_gray(),
        );
    frame.render_widget(chart, area);
}

fn no_latency(kind: RequestKind) -> &'static str {
    if kind == RequestKind::Notify {
        "no answers yet (NON notifications get none)"
    } else {
        "no answers yet"
    }
}

/// (nines, log10 ms) points from p0 to p99.99.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=CURVE_POINTS)
        .map(|i| {
            let x = NINES * f64::from(i) / f64::from(CURVE_POINTS);
            let q = 1.0 - 10f64.powf(-x);
            (x, log_ms(h.value_at_quantile(q)))
        })
        .collect()
}

/// Where a latency in µs goes on the y axis: the decimal log of its milliseconds.
pub fn log_ms(us: u64) -> f64 {
    (us.max(1) as f64 / 1000.0).log10()
}

/// The whole decades of milliseconds (as powers of ten) the axis spans to hold `low..=high`
/// µs: at least one decade.
pub fn decades(low_us: u64, high_us: u64) -> (i32, i32) {
    let bottom = log_ms(low_us).floor() as i32;
    let top = (log_ms(high_us).ceil() as i32).max(bottom + 1);
    (bottom, top)
}

/// A label per decade, or the two ends when there are more decades than `rows`.
fn decade_labels(bottom: i32, top: i32, rows: u16) -> Vec<String> {
    if top - bottom < i32::from(rows) {
        (bottom..=top).map(decade_label).collect()
    } else {
        vec![decade_label(bottom), decade_label(top)]
    }
}

/// 10^`power` ms in words that fit the axis: `1µs`, `100µs`, `1ms`, `10ms`, `1s`, `100s`.
/// (Below 1 µs, where histograms do not go, it says `1µs`.)
pub fn decade_label(power: i32) -> String {
    let (unit, offset) = match power {
        ..=-1 => ("µs", 3),
        0..=2 => ("ms", 0),
        _ => ("s", -3),
    };
    // Histograms start at 1 µs: no decade below it.
    let scaled = (power + offset).max(0).unsigned_abs();
    format!("{}{unit}", 10u64.pow(scaled))
}
