//! The live dashboard: reads merged snapshots, draws them, turns keys into engine controls.
//!
//! State ([`App`]), drawing ([`App::draw`], a pure function of the state and the snapshots) and
//! the loop ([`run`]) are apart, so the first two are tested without a terminal or an engine.
//! The loop runs on the caller's thread; the engine has its own, and the dashboard only takes
//! snapshots (a short lock per shard), so a slow terminal cannot slow the clients.

mod app;
mod draw;
mod format;
mod history;

use std::cell::Cell;
use std::io::{self, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::{Frame, Terminal};

pub use app::{Action, App, View};
pub use history::{History, Sample};

use crate::client::request_index;
use crate::metrics::Snapshot;

/// Redraw at least this often: 5 frames a second.
const TICK: Duration = Duration::from_millis(200);

/// What the dashboard says about the run besides the snapshots.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// The server under test, as the user knows it.
    pub target: String,
    /// The fleet file.
    pub fleet: String,
    /// Clients the fleet starts.
    pub clients: u64,
    /// When the stop begins, from the first start.
    pub stop_at: Duration,
    /// The longest the stop may take.
    pub stop_timeout: Duration,
}

/// How the dashboard ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuiExit {
    /// The run ended on its own.
    Completed,
    /// The user stopped it; clients de-registered before the dashboard closed.
    Stopped,
    /// The user asked twice: the dashboard left without waiting for the engine.
    Abandoned,
}

/// What the dashboard needs of a running fleet: the engine, or a fake in tests.
pub trait Controls {
    fn snapshot(&self) -> Snapshot;
    fn stop(&self);
    fn pause_starts(&self, paused: bool);
    fn is_finished(&self) -> bool;
    /// Runs the rest of the start schedule `factor` times as fast.
    fn set_start_rate(&self, factor: f64);
}

impl App {
    /// Draws the whole dashboard for `history`'s latest snapshot.
    pub fn draw(&self, frame: &mut Frame, info: &RunInfo, history: &History) {
        draw::draw(frame, self, info, history);
    }
}

/// Takes over the terminal, shows the run until the engine is finished (or the user leaves),
/// and gives the terminal back. `interrupts` counts the signals (SIGINT, SIGTERM, SIGHUP) the
/// caller saw: each acts like `q`.
pub fn run(engine: &impl Controls, info: &RunInfo, interrupts: &AtomicU32) -> io::Result<TuiExit> {
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
    terminal.clear()?;
    drive(&mut terminal, engine, info, interrupts, |timeout| {
        if event::poll(timeout)? {
            event::read().map(Some)
        } else {
            Ok(None)
        }
    })
}

/// The loop, on any backend and event source: snapshot, draw, wait for a key or the next tick.
pub fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    fleet: &impl Controls,
    info: &RunInfo,
    interrupts: &AtomicU32,
    mut next_event: impl FnMut(Duration) -> io::Result<Option<Event>>,
) -> io::Result<TuiExit> {
    let mut app = App::new();
    let mut history = History::default();
    let mut interrupts_seen = interrupts.load(Ordering::Acquire);
    let mut next_draw = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_draw {
            history.push(fleet.snapshot());
            // The table shows a prefix of the kinds: up to the last one the run used.
            let used = history.latest().kinds_used().map(|k| request_index(k) + 1);
            app.show_kinds(used.max().unwrap_or(app::STEADY_KINDS));
            // A client that started once always has a state (churn restarts it in place).
            let started: u64 = history.latest().states.iter().sum();
            app.set_ramp_finished(started >= info.clients);
            app.set_stopping(history.latest().elapsed >= info.stop_at);
            let size = terminal.size()?;
            app.set_every_view_shown(draw::shows_every_view(size));
            terminal.draw(|frame| app.draw(frame, info, &history))?;
            next_draw = now + TICK;
        }
        if fleet.is_finished() {
            return Ok(if app.quitting {
                TuiExit::Stopped
            } else {
                TuiExit::Completed
            });
        }
        let mut action = None;
        let interrupted = interrupts.load(Ordering::Acquire);
        if interrupted == interrupts_seen {
            match next_event(next_draw.saturating_duration_since(Instant::now()))? {
                Some(Event::Key(key)) => {
                    action = app.on_key(key);
                    // Show what the key did at once, not at the next tick.
                    next_draw = Instant::now();
                }
                Some(Event::Resize(..)) => next_draw = Instant::now(),
                _ => {}
            }
        } else {
            interrupts_seen = interrupted;
            action = Some(app.quit());
        }
        match action {
            None => {}
            Some(Action::Quit) => fleet.stop(),
            Some(Action::Abandon) => return Ok(TuiExit::Abandoned),
            Some(Action::Pause(paused)) => fleet.pause_starts(paused),
            Some(Action::RateFactor(factor)) => fleet.set_start_rate(factor),
        }
    }
}

/// Whether the dashboard has the terminal (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on the thread drawing the dashboard: a panic elsewhere (a shard) is handled by the
    /// engine, and must not pull the terminal from under a dashboard that goes on drawing.
    static DRAWING: Cell<bool> = const { Cell::new(false) };
}

/// Restores the terminal when dropped, on every way out of [`run`].
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |panic| {
                // Restore first, so the message lands on the normal screen.
                if DRAWING.with(Cell::get) {
                    restore_terminal();
                }
                previous(panic);
            }));
        });
        ACTIVE.store(true, Ordering::Release);
        DRAWING.with(|d| d.set(true));
        // Made before the first change, so a failure half-way still restores.
        let guard = TerminalGuard;
        enable_raw_mode()?;
        execute!(stdout(), EnterAlternateScreen, Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        DRAWING.with(|d| d.set(false));
        restore_terminal();
    }
}

/// Leaves raw mode and the alternate screen if the dashboard entered them. Safe from any
/// thread, any number of times: the CLI calls it before exiting on a second Ctrl-C.
pub fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::AcqRel) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    }
}

#[cfg(test)]
mod tests;
