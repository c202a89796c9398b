//! The DTLS panel: handshake outcomes, rate, duration and failure reasons, for runs that
//! handshake (a run without security never shows it).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Padding, Paragraph};

use super::super::format;
use super::super::history::History;
use super::{max, quantile};
use crate::metrics::HandshakeStats;

/// Rows the panel takes: its title border and two lines (given fewer, the counts line alone).
pub const HEIGHT: u16 = 3;

/// Whether the run speaks DTLS: a handshake began, or reports one (read back without starts).
pub fn shown(history: &History) -> bool {
    let h = &history.latest().handshakes;
    h.started > 0 || h.total() > 0
}

pub fn draw(frame: &mut Frame, area: Rect, history: &History) {
    let h = &history.latest().handshakes;
    let rate = format::rate(history.rate(|s| s.handshakes_ok));
    let mut counts = vec![
        "ok ".dim(),
        Span::raw(format!("{} ({rate}/s)  ", format::count(h.ok))),
        "failed ".dim(),
        Span::raw(format!("{}  ", format::count(h.failed))),
        "in progress ".dim(),
        Span::raw(format!("{}  ", format::count(h.in_progress()))),
    ];
    if h.aborted > 0 {
        counts.push("aborted ".dim());
        counts.push(Span::raw(format!("{}  ", format::count(h.aborted))));
    }
    for (name, q) in [("p50 ", 0.5), ("p99 ", 0.99)] {
        counts.push(name.dim());
        counts.push(Span::raw(format!("{}  ", quantile(&h.latency, q))));
    }
    counts.push("max ".dim());
    counts.push(Span::raw(max(&h.latency)));
    if area.height < HEIGHT {
        // A short terminal: the counts alone, named.
        counts.insert(0, " dtls ".bold());
        frame.render_widget(Line::from(counts), area);
        return;
    }
    let lines = vec![Line::from(counts), reasons_line(h)];
    // A title rule instead of a box: two rows for the numbers, one for the title.
    let block = Block::new()
        .borders(Borders::TOP)
        .padding(Padding::left(1))
        .title(" dtls handshakes · ms from the first ClientHello ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Failures by reason, most frequent first, then sessions lost after their handshake.
fn reasons_line(h: &HandshakeStats) -> Line<'static> {
    let by_count = |counts: &[(String, u64)]| {
        let mut sorted = counts.to_vec();
        // Ties by name, so the line does not flicker.
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let shown: Vec<String> = sorted
            .iter()
            .map(|(reason, n)| format!("{reason} {}", format::count(*n)))
            .collect();
        shown.join(", ")
    };
    let mut line = vec!["failures ".dim()];
    if h.failures.is_empty() {
        line.push("none".dim());
    } else {
        line.push(by_count(&h.failures).red());
    }
    if !h.lost.is_empty() {
        line.push("  sessions lost ".dim());
        line.push(Span::raw(by_count(&h.lost)));
    }
    Line::from(line)
}
