//! The lines printed while a command runs without the dashboard: `run --no-tui`'s progress
//! lines and `serve`'s status lines.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::interrupts::Interrupts;
use super::output::say;
use crate::metrics::Snapshot;
use crate::tui::{self, TuiExit};

/// Prints a progress line every `every` until the engine is finished, or a second signal
/// (`interrupts` counts them) says to stop at once (`Abandoned`; the caller ends the run).
pub(super) fn progress_lines(
    engine: &impl tui::Controls,
    every: Duration,
    interrupts: &AtomicU32,
) -> TuiExit {
    let mut previous = Snapshot::default();
    let mut next_line = every;
    let mut stop_sent = false;
    while !engine.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let signals = interrupts.load(Ordering::Acquire);
        if signals > 1 {
            say!("interrupted again: stopping at once");
            return TuiExit::Abandoned;
        }
        if signals > 0 && !stop_sent {
            say!("interrupted: de-registering (Ctrl-C again to stop at once)");
            engine.stop();
            stop_sent = true;
        }
        let snapshot = engine.snapshot();
        if snapshot.elapsed >= next_line {
            say!("{}", snapshot.progress_line(&previous));
            let _ = std::io::stdout().flush();
            next_line = snapshot.elapsed + every;
            previous = snapshot;
        }
    }
    if stop_sent {
        TuiExit::Stopped
    } else {
        TuiExit::Completed
    }
}

/// Prints `status()` every `every` until Ctrl-C, `alive()` turns false or, when given,
/// `duration` has passed.
pub(super) fn status_lines(
    every: Duration,
    duration: Option<Duration>,
    status: impl Fn() -> String,
    alive: impl Fn() -> bool,
) {
    let interrupts = Interrupts::catch(None);
    let interrupted = interrupts.count();
    let started = Instant::now();
    let mut next_line = every;
    while interrupted.load(Ordering::Acquire) == 0
        && duration.is_none_or(|d| started.elapsed() < d)
        && alive()
    {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() >= next_line {
            println!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), status());
            next_line += every;
        }
    }
}
