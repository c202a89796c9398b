//! What the server asked the clients: per operation kind, how many the clients handled, how
//! many they answered with an error, and how long a client took to handle one.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};

use super::super::format;
use super::super::history::History;
use super::quantile;
use crate::client::{OPERATION_KINDS, OperationKind, operation_name};

/// Below this width the names are shortened (`cancel-obs`), so the figures keep their columns.
const FULL_NAMES: u16 = 54;

pub fn draw(frame: &mut Frame, area: Rect, history: &History) {
    let block = Block::bordered().title(" server operations · ms to handle ");
    let s = history.latest();
    let asked: Vec<usize> = (0..OPERATION_KINDS.len())
        .filter(|i| s.operations[*i].total > 0)
        .collect();
    if asked.is_empty() {
        frame.render_widget(
            Paragraph::new("none yet: the server asked nothing".dim())
                .alignment(Alignment::Center)
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let full = area.width >= FULL_NAMES;
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let header = Row::new(
        ["", "handled", "/s", "errors", "p50", "p99"]
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
    let rows = asked.into_iter().map(|i| {
        let (kind, o) = (OPERATION_KINDS[i], &s.operations[i]);
        let name = if full {
            operation_name(kind)
        } else {
            short_name(kind)
        };
        Row::new(vec![
            Cell::from(name),
            right(format::count(o.total)),
            right(format::rate(history.rate(|x| x.operations[i]))),
            right(format::count(o.error)),
            right(quantile(&o.handling, 0.5)),
            right(quantile(&o.handling, 0.99)),
        ])
    });
    let name_width = if full { 18 } else { 12 };
    let widths = [
        Constraint::Length(name_width),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

/// The operation's name in at most 12 characters.
fn short_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::WriteAttributes => "write-attr",
        OperationKind::CancelObservation => "cancel-obs",
        OperationKind::ReadComposite => "read-comp",
        OperationKind::WriteComposite => "write-comp",
        OperationKind::ObserveComposite => "observe-comp",
        OperationKind::BootstrapFinish => "bs-finish",
        other => operation_name(other),
    }
}
