//! Drawing: a pure function of the view state, the run's facts and the snapshots.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Cell, Chart, Clear, Dataset, GraphType, LineGauge, Paragraph, Row, Sparkline,
    Table,
};

mod handshakes;

use super::RunInfo;
use super::app::App;
use super::format;
use super::history::History;
use crate::client::{
    CLIENT_STATES, ClientState, REQUEST_KINDS, RequestKind, request_name, state_name,
};
use crate::metrics::{FirmwareStats, RequestStats};
use crate::transport::impairment::ImpairmentStats;

/// The percentile curve runs from p0 to p99.99: x is the number of nines, `-log10(1 - q)`.
const NINES: f64 = 4.0;
const CURVE_POINTS: u32 = 80;

pub fn draw(frame: &mut Frame, app: &App, info: &RunInfo, history: &History) {
    // The table: borders, a header line and a row per request kind shown.
    let table_height = 3 + app.kinds as u16;
    // The DTLS panel only for runs that handshake; others keep its rows for the chart.
    let dtls_height = if handshakes::shown(history) {
        handshakes::HEIGHT
    } else {
        0
    };
    // A line more in the header for runs with an emulated link, one for firmware updates.
    let network = !history.latest().traffic.network.is_empty();
    let firmware = history.latest().firmware.any();
    let [header, table, dtls, bottom, footer] = Layout::vertical([
        Constraint::Length(7 + u16::from(network) + u16::from(firmware)),
        Constraint::Length(table_height),
        Constraint::Length(dtls_height),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [chart, side] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    // The errors list needs the rows more than the sparkline on a small terminal.
    let spark_height = (side.height * 2 / 5).max(4);
    let [spark, errors] =
        Layout::vertical([Constraint::Length(spark_height), Constraint::Min(0)]).areas(side);
    draw_header(frame, header, app, info, history);
    draw_table(frame, table, app, history);
    if dtls_height > 0 {
        handshakes::draw(frame, dtls, history);
    }
    draw_chart(frame, chart, app, history);
    draw_sparkline(frame, spark, app, history);
    draw_errors(frame, errors, app, history);
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame);
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, info: &RunInfo, history: &History) {
    let s = history.latest();
    let block = Block::bordered().title(" lwm2m-swarm ".bold());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let network_stats = &s.traffic.network;
    let network = !network_stats.is_empty();
    let rows = Layout::vertical(vec![
        Constraint::Length(1);
        5 + usize::from(network) + usize::from(s.firmware.any())
    ])
    .split(inner);
    let [run, time, states, gauge, rates] = [rows[0], rows[1], rows[2], rows[3], rows[4]];

    let line = vec![
        "target ".dim(),
        Span::raw(info.target.clone()),
        "  fleet ".dim(),
        Span::raw(info.fleet.clone()),
    ];
    frame.render_widget(Line::from(line), run);

    let mut line = vec![
        "elapsed ".dim(),
        Span::raw(format::clock(s.elapsed)),
        "  ".into(),
        Span::raw(remaining(app, info, s.elapsed)),
    ];
    if app.paused && !app.quitting {
        line.push("  ".into());
        line.push(" PAUSED ".black().on_yellow().bold());
    }
    let factor = app.rate_factor();
    if (factor - 1.0).abs() > f64::EPSILON && !app.quitting {
        line.push(format!("  start rate ×{factor}").bold());
    }
    frame.render_widget(Line::from(line), time);

    let mut by_state = vec!["clients ".dim()];
    for state in CLIENT_STATES {
        let n = s.state(state);
        if n > 0 {
            by_state.push(Span::raw(format!(
                "{} {}  ",
                state_name(state),
                format::count(n)
            )));
        }
    }
    if by_state.len() == 1 {
        by_state.push("none yet".into());
    }
    frame.render_widget(Line::from(by_state), states);

    // Sleeping clients (queue mode) are registered too: they count toward the target.
    let registered = s.state(ClientState::Registered) + s.state(ClientState::Sleeping);
    let ratio = if info.clients == 0 {
        0.0
    } else {
        (registered as f64 / info.clients as f64).min(1.0)
    };
    frame.render_widget(
        LineGauge::default()
            .ratio(ratio)
            .label(format!("{registered} / {} registered", info.clients))
            .filled_style(Style::new().fg(Color::Green))
            .unfilled_style(Style::new().fg(Color::DarkGray)),
        gauge,
    );

    let mut line = vec!["rates ".dim()];
    for (i, kind) in REQUEST_KINDS.iter().enumerate() {
        // De-registrations have their row in the table; the header keeps to the steady load
        // (and bootstraps to runs that have them).
        if *kind != RequestKind::Deregister && i < app.kinds {
            let rate = format::rate(history.request_rate(i));
            line.push(Span::raw(format!("{} {rate}/s  ", request_name(*kind))));
        }
    }
    let ops = format::rate(history.rate(|x| x.server_ops));
    line.push(Span::raw(format!("server requests {ops}/s")));
    frame.render_widget(Line::from(line), rates);
    if network && let Some(area) = rows.get(5) {
        frame.render_widget(Line::from(network_spans(network_stats)), *area);
    }
    if s.firmware.any()
        && let Some(area) = rows.get(5 + usize::from(network))
    {
        frame.render_widget(Line::from(firmware_spans(&s.firmware)), *area);
    }
}

/// Firmware downloads and updates, for runs that have them.
fn firmware_spans(f: &FirmwareStats) -> Vec<Span<'static>> {
    let mut spans = vec!["firmware".dim()];
    for (name, count) in [
        ("started", f.started),
        ("downloaded", f.downloaded),
        ("updated", f.updated),
        ("failed", f.failed_total()),
    ] {
        spans.push(Span::raw(format!(" {name} {} ", format::count(count))));
    }
    if !f.download_time.is_empty() {
        let p50 = std::time::Duration::from_micros(f.download_time.value_at_quantile(0.5));
        spans.push(Span::raw(format!(" download p50 {} ", format::clock(p50))));
    }
    spans
}

/// What the emulated link did, for runs with `[network]`.
fn network_spans(n: &ImpairmentStats) -> Vec<Span<'static>> {
    let mut spans = vec!["network".dim()];
    for (name, count) in [
        ("dropped", n.dropped),
        ("delayed", n.delayed),
        ("duplicated", n.duplicated),
        ("reordered", n.reordered),
        ("rebound", n.rebound),
    ] {
        spans.push(Span::raw(format!(" {name} {} ", format::count(count))));
    }
    spans
}

/// How long until the stop, or that the stop is under way.
fn remaining(app: &App, info: &RunInfo, elapsed: std::time::Duration) -> String {
    if app.quitting {
        return "stopping: clients de-registering".to_string();
    }
    match info.stop_at.checked_sub(elapsed) {
        Some(left) => format!("stop in {}", format::clock(left)),
        None => format!(
            "stopping (at most {} more)",
            format::clock((info.stop_at + info.stop_timeout).saturating_sub(elapsed))
        ),
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let header = Row::new(
        [
            "", "sent", "/s", "errors", "timeout", "p50", "p90", "p99", "p99.9", "max",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                Cell::from(h)
            } else {
                Cell::from(Line::from(h).right_aligned())
            }
        }),
    )
    .bold();
    let rows = REQUEST_KINDS[..app.kinds]
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let r = history.latest().request(*kind);
            let mut cells = vec![
                Cell::from(request_name(*kind)),
                right(format::count(r.sent)),
                right(format::rate(history.request_rate(i))),
                right(format::count(r.error)),
                right(format::count(r.timeout)),
            ];
            let h = &r.latency;
            for q in [0.5, 0.9] {
                cells.push(right(quantile(h, q)));
            }
            cells.push(right(p99_cell(r)));
            cells.push(right(quantile(h, 0.999)));
            cells.push(right(if h.is_empty() {
                "-".into()
            } else {
                format::ms(h.max())
            }));
            let row = Row::new(cells);
            if i == app.selected {
                row.reversed()
            } else {
                row
            }
        });
    let widths = [
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    let title = " requests · ms from the due time; p99 (from the send) where they differ ";
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title)),
        area,
    );
}

fn quantile(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".to_string()
    } else {
        format::ms(h.value_at_quantile(q))
    }
}

/// The corrected p99, with the uncorrected one beside it when the two tell different stories:
/// a gap means requests waited in the simulator (or its schedule slipped) before being sent.
fn p99_cell(r: &RequestStats) -> String {
    let corrected = quantile(&r.latency, 0.99);
    if r.latency.is_empty() || r.service.is_empty() {
        return corrected;
    }
    let due = r.latency.value_at_quantile(0.99);
    let sent = r.service.value_at_quantile(0.99);
    // Material: at least 20% and 1 ms apart, so rounding noise does not show.
    if due as f64 > sent as f64 * 1.2 && due.saturating_sub(sent) >= 1000 {
        format!("{corrected} ({})", format::ms(sent))
    } else {
        corrected
    }
}

fn draw_chart(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    let kind = app.selected_kind();
    let r = history.latest().request(kind);
    let title = format!(" {} latency by percentile (ms) ", request_name(kind));
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
    let top = due
        .iter()
        .chain(&sent)
        .map(|(_, y)| *y)
        .fold(0.001, f64::max);
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
    let y_label = |ms: f64| format::ms((ms * 1000.0) as u64);
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([0.0, NINES])
                .labels(["0", "90", "99", "99.9", "99.99"])
                .dark_gray(),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels([y_label(0.0), y_label(top / 2.0), y_label(top)])
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

/// (nines, ms) points from p0 to p99.99.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=CURVE_POINTS)
        .map(|i| {
            let x = NINES * f64::from(i) / f64::from(CURVE_POINTS);
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

fn draw_sparkline(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    let width = area.width.saturating_sub(2) as usize;
    let series = history.request_series(app.selected, width);
    let peak = series.iter().copied().max().unwrap_or(0);
    let title = format!(
        " {} sent/s · last {} · max {peak} ",
        request_name(app.selected_kind()),
        format::clock(std::time::Duration::from_secs(series.len() as u64))
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(&series)
            .green(),
        area,
    );
}

fn draw_errors(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    let kind = app.selected_kind();
    let r = history.latest().request(kind);
    let mut codes: Vec<(Option<u8>, u64)> = r
        .codes
        .iter()
        .copied()
        .filter(|(c, _)| c.is_none_or(|c| c >> 5 > 2))
        .collect();
    // Most frequent first; ties in code order so the panel does not flicker.
    codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut lines: Vec<Line> = Vec::new();
    if r.timeout > 0 {
        lines.push(error_line("timeout".to_string(), r.timeout).red());
    }
    for (c, n) in codes {
        lines.push(error_line(format::code(c), n));
    }
    if lines.is_empty() {
        lines.push("none".dim().into());
    }
    let title = format!(" {} errors ", request_name(kind));
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn error_line(what: String, n: u64) -> Line<'static> {
    Line::from(vec![
        Span::raw(format!("{:>7} ", format::count(n))),
        Span::raw(what),
    ])
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let text = if app.quitting {
        " stopping: clients de-register, then the dashboard closes · q again leaves now"
    } else {
        " q stop · Tab/←→ request · p pause starts · +/- start rate · ? help"
    };
    frame.render_widget(Line::from(text.dim()), area);
}

fn draw_help(frame: &mut Frame) {
    let lines = vec![
        Line::from("q, Ctrl-C    stop: clients de-register, then quit"),
        Line::from("             (again: quit at once)"),
        Line::from("Tab, arrows  select the request kind"),
        Line::from("p, space     pause / resume new client starts"),
        Line::from("+ / -        start clients faster / slower"),
        Line::from("?, Esc       close this help"),
    ];
    let height = lines.len() as u16 + 2;
    let area = centered(frame.area(), 52, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" help ".bold())),
        area,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(row);
    cell
}

#[cfg(test)]
mod tests;
