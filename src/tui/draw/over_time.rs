//! The run over time, one value per second: clients by state, and the datagrams per second the
//! clients sent and received together (the total throughput, whatever the request kind).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Sparkline};

use super::super::format;
use super::super::history::{History, Sample};
use crate::client::{CLIENT_STATES, ClientState, state_name};

pub fn draw_clients(frame: &mut Frame, area: Rect, history: &History) {
    // Braille: two points per column.
    let width = usize::from(area.width.saturating_sub(8)) * 2;
    let samples: Vec<_> = history.last_samples(width.max(2)).collect();
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        frame.render_widget(
            Paragraph::new("no clients yet".dim())
                .alignment(Alignment::Center)
                .block(Block::bordered().title(" clients by state ")),
            area,
        );
        return;
    };
    let start = first.elapsed.as_secs_f64();
    // A state appears if it had clients at any moment shown.
    let shown: Vec<usize> = (0..CLIENT_STATES.len())
        .filter(|i| samples.iter().any(|s| s.states[*i] > 0))
        .collect();
    let series: Vec<Vec<(f64, f64)>> = shown
        .iter()
        .map(|i| {
            samples
                .iter()
                .map(|s| (s.elapsed.as_secs_f64(), s.states[*i] as f64))
                .collect()
        })
        .collect();
    let peak = samples
        .iter()
        .flat_map(|s| shown.iter().map(|i| s.states[*i]))
        .max()
        .unwrap_or(0)
        .max(1);
    let datasets = shown
        .iter()
        .zip(&series)
        .map(|(i, data)| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .fg(state_color(CLIENT_STATES[*i]))
                .data(data)
        })
        .collect();
    // The legend on the border: each state in its colour, with its count now.
    let mut legend: Vec<Span> = Vec::new();
    for i in &shown {
        let state = CLIENT_STATES[*i];
        let text = format!(" {} {}", state_name(state), format::count(last.states[*i]));
        legend.push(text.fg(state_color(state)));
    }
    legend.push(" ".into());
    let end = last.elapsed.as_secs_f64().max(start + 1.0);
    let block = Block::bordered()
        .title(" clients by state ")
        .title_bottom(Line::from(legend).right_aligned());
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([start, end])
                .labels([
                    format::clock(first.elapsed),
                    format::clock(Duration::from_secs_f64(end)),
                ])
                .dark_gray(),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, peak as f64])
                .labels(["0".to_string(), format::count(peak)])
                .dark_gray(),
        );
    frame.render_widget(chart, area);
}

fn state_color(state: ClientState) -> Color {
    match state {
        ClientState::Starting => Color::White,
        ClientState::Bootstrapping => Color::Cyan,
        ClientState::Registering => Color::Yellow,
        ClientState::Registered => Color::Green,
        ClientState::Sleeping => Color::Blue,
        ClientState::Rebooting => Color::Magenta,
        ClientState::Deregistering => Color::Gray,
        ClientState::Stopped => Color::DarkGray,
        ClientState::Failed => Color::Red,
    }
}

/// Datagrams in and out per second, all clients: the sparkline of the run's throughput.
pub fn draw_throughput(frame: &mut Frame, area: Rect, history: &History) {
    let width = usize::from(area.width.saturating_sub(2));
    let series = history.rate_series(width, Sample::datagrams);
    let now = series.last().copied().unwrap_or(0);
    let peak = series.iter().copied().max().unwrap_or(0);
    let title = format!(
        " datagrams/s {} · max {} ",
        format::count(now),
        format::count(peak)
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(&series)
            .green(),
        area,
    );
}
