//! Drawing: a pure function of the view state, the run's facts and the snapshots.

use hdrhistogram::Histogram;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect, Size};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, LineGauge, Paragraph, Row, Table};

mod handshakes;
mod latency;
mod operations;
mod over_time;

use super::RunInfo;
use super::app::{App, View};
use super::format;
use super::history::{History, Sample};
use crate::client::{CLIENT_STATES, ClientState, REQUEST_KINDS, request_name, state_name};
use crate::metrics::{FirmwareStats, RequestStats};
use crate::transport::impairment::ImpairmentStats;

/// A terminal at least this large shows every panel at once; a smaller one shows the request
/// table and one panel chosen with `v` (besides the throughput and the errors).
const EVERY_VIEW_WIDTH: u16 = 110;
const EVERY_VIEW_HEIGHT: u16 = 40;
/// From this width the request table has its p90 and p99.9 columns and longer headings.
const WIDE_TABLE: u16 = 100;
/// Rows the panels below the table want; to keep them, the header, the table and the DTLS
/// panel give up a few of theirs.
const BOTTOM_HEIGHT: u16 = 9;

/// Whether a terminal of this size shows every panel at once.
pub fn shows_every_view(area: Size) -> bool {
    area.width >= EVERY_VIEW_WIDTH && area.height >= EVERY_VIEW_HEIGHT
}

pub fn draw(frame: &mut Frame, app: &App, info: &RunInfo, history: &History) {
    // A line more in the header for runs with an emulated link, one for firmware updates.
    let network = !history.latest().traffic.network.is_empty();
    let firmware = history.latest().firmware.any();
    let mut header_height = 7 + u16::from(network) + u16::from(firmware);
    // The table: borders, a header line and a row per request kind shown.
    let mut table_height = 3 + app.kinds as u16;
    // The DTLS panel only for runs that handshake; others keep its rows for the chart.
    let mut dtls_height = if handshakes::shown(history) {
        handshakes::HEIGHT
    } else {
        0
    };
    // Short of rows, the bottom panels keep theirs: the target moves into the header's title
    // and the header loses its bottom border; then the table loses its own; then the DTLS
    // panel keeps its counts line only.
    let mut short = (header_height + table_height + dtls_height + BOTTOM_HEIGHT + 1)
        .saturating_sub(frame.area().height);
    let compact_header = short > 0;
    if compact_header {
        header_height -= 2;
        short = short.saturating_sub(2);
    }
    let compact_table = short > 0;
    if compact_table {
        table_height -= 1;
        short -= 1;
    }
    if short > 0 {
        dtls_height = dtls_height.min(1);
    }
    let [header, table, dtls, bottom, footer] = Layout::vertical([
        Constraint::Length(header_height),
        Constraint::Length(table_height),
        Constraint::Length(dtls_height),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app, info, history, compact_header);
    draw_table(frame, table, app, history, compact_table);
    if dtls_height > 0 {
        handshakes::draw(frame, dtls, history);
    }
    if shows_every_view(frame.area().as_size()) {
        let [top, below] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        let [chart, operations] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
        let [clients, side] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(below);
        latency::draw(frame, chart, app, history);
        operations::draw(frame, operations, history);
        over_time::draw_clients(frame, clients, history);
        draw_side(frame, side, app, history);
    } else {
        let [main, side] =
            Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                .areas(bottom);
        match app.view {
            View::Latency => latency::draw(frame, main, app, history),
            View::Operations => operations::draw(frame, main, history),
            View::Clients => over_time::draw_clients(frame, main, history),
        }
        draw_side(frame, side, app, history);
    }
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame);
    }
}

/// The total throughput over time above the selected kind's errors.
fn draw_side(frame: &mut Frame, area: Rect, app: &App, history: &History) {
    // The errors list needs the rows more than the sparkline on a small terminal.
    let spark_height = if area.height < 8 {
        3
    } else {
        (area.height * 2 / 5).max(4)
    };
    let [spark, errors] =
        Layout::vertical([Constraint::Length(spark_height), Constraint::Min(0)]).areas(area);
    over_time::draw_throughput(frame, spark, history);
    draw_errors(frame, errors, app, history);
}

fn draw_header(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    info: &RunInfo,
    history: &History,
    compact: bool,
) {
    let s = history.latest();
    let block = if compact {
        let title = vec![" lwm2m-swarm ".bold(), format!("· {} ", info.target).into()];
        Block::new().borders(Borders::TOP).title(Line::from(title))
    } else {
        Block::bordered().title(" lwm2m-swarm ".bold())
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let network_stats = &s.traffic.network;
    let network = !network_stats.is_empty();
    let first = usize::from(!compact);
    let rows = Layout::vertical(vec![
        Constraint::Length(1);
        first
            + 4
            + usize::from(network)
            + usize::from(s.firmware.any())
    ])
    .split(inner);
    let [time, states, gauge, rates] = [
        rows[first],
        rows[first + 1],
        rows[first + 2],
        rows[first + 3],
    ];

    if !compact {
        let line = vec![
            "target ".dim(),
            Span::raw(info.target.clone()),
            "  fleet ".dim(),
            Span::raw(info.fleet.clone()),
        ];
        frame.render_widget(Line::from(line), rows[0]);
    }

    let mut line = vec![
        "elapsed ".dim(),
        Span::raw(format::clock(s.elapsed)),
        "  ".into(),
        Span::raw(remaining(app, info, s.elapsed)),
    ];
    if app.starts_held() {
        line.push("  ".into());
        line.push(" PAUSED ".black().on_yellow().bold());
    }
    if let Some(factor) = app.ramp_factor() {
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

    // Totals: the table has each kind's rate.
    let requests = format::rate(history.rate(|x| x.sent.iter().sum()));
    let ops = format::rate(history.rate(Sample::server_ops));
    let datagrams_in = format::rate(history.rate(|x| x.datagrams_in));
    let datagrams_out = format::rate(history.rate(|x| x.datagrams_out));
    let line = vec![
        "rates ".dim(),
        Span::raw(format!(
            "requests {requests}/s  server operations {ops}/s  "
        )),
        Span::raw(format!(
            "datagrams in {datagrams_in}/s  out {datagrams_out}/s"
        )),
    ];
    frame.render_widget(Line::from(line), rates);
    if network && let Some(area) = rows.get(first + 4) {
        frame.render_widget(Line::from(network_spans(network_stats)), *area);
    }
    if s.firmware.any()
        && let Some(area) = rows.get(first + 4 + usize::from(network))
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

fn draw_table(frame: &mut Frame, area: Rect, app: &App, history: &History, compact: bool) {
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    // A narrow terminal keeps p50, p99 and max; a wide one adds p90 and p99.9.
    let wide = area.width >= WIDE_TABLE;
    let mut headings = vec![("", 10), ("sent", 6), ("/s", 6), ("errors", 6)];
    headings.push(("timeout", 7));
    if wide {
        headings.extend([("retrans", 7), ("in flight", 9), ("p50", 5), ("p90", 5)]);
        headings.extend([("p99", 12), ("p99.9", 5), ("max", 5)]);
    } else {
        headings.extend([
            ("retx", 6),
            ("flight", 6),
            ("p50", 5),
            ("p99", 12),
            ("max", 5),
        ]);
    }
    let header = Row::new(headings.iter().enumerate().map(|(i, (h, _))| {
        if i == 0 {
            Cell::from(*h)
        } else {
            Cell::from(Line::from(*h).right_aligned())
        }
    }))
    .bold();
    let rows = REQUEST_KINDS[..app.kinds]
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let r = history.latest().request(*kind);
            let h = &r.latency;
            let mut cells = vec![
                Cell::from(request_name(*kind)),
                right(format::count(r.sent)),
                right(format::rate(history.request_rate(i))),
                right(format::count(r.error)),
                right(format::count(r.timeout)),
                right(format::count(r.retransmissions)),
                right(format::count(r.in_flight())),
                right(quantile(h, 0.5)),
            ];
            if wide {
                cells.push(right(quantile(h, 0.9)));
            }
            cells.push(right(p99_cell(r)));
            if wide {
                cells.push(right(quantile(h, 0.999)));
            }
            cells.push(right(max(h)));
            let row = Row::new(cells);
            if i == app.selected {
                row.reversed()
            } else {
                row
            }
        });
    let widths = headings.iter().map(|(_, w)| Constraint::Length(*w));
    let title = if wide {
        " requests · ms from the due time; p99 (from the send) where they differ "
    } else {
        " requests · ms from due; p99 (from send) · retx: retransmitted "
    };
    let borders = if compact {
        Borders::TOP | Borders::LEFT | Borders::RIGHT
    } else {
        Borders::ALL
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::new().borders(borders).title(title)),
        area,
    );
}

/// The largest latency in ms, `-` when nothing was measured.
fn max(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        "-".to_string()
    } else {
        format::ms(h.max())
    }
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
    let line = if let Some(why) = &app.status {
        Line::from(vec![format!(" {why}").yellow().bold(), "  · ? help".dim()])
    } else if app.quitting {
        " stopping: clients de-register, then the dashboard closes · q again leaves now"
            .dim()
            .into()
    } else {
        " q stop · Tab/←→ request · v panel · p pause starts · +/- start rate · ? help"
            .dim()
            .into()
    };
    frame.render_widget(line, area);
}

fn draw_help(frame: &mut Frame) {
    let lines = vec![
        Line::from("q, Ctrl-C    stop: clients de-register, then quit"),
        Line::from("             (again: quit at once)"),
        Line::from("Tab, arrows  select the request kind"),
        Line::from("v            next panel: latency, server operations,"),
        Line::from("             clients (all at once from 110x40)"),
        Line::from("p, space     pause / resume new client starts"),
        Line::from("+ / -        start clients faster / slower"),
        Line::from("             (p, + and - act while the ramp runs)"),
        Line::from("?, Esc       close this help"),
    ];
    let height = lines.len() as u16 + 2;
    let area = centered(frame.area(), 56, height);
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
