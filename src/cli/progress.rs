//! The lines printed while a command runs without the dashboard: `run --no-tui`'s progress
//! lines and `serve`'s status lines.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::Snapshot;
use crate::tui;

/// Prints a progress line every `every` until the engine is finished; returns whether it was
/// stopped by Ctrl-C.
pub(super) fn progress_lines(
    engine: &impl tui::Controls,
    every: Duration,
    interrupts: &AtomicU32,
) -> bool {
    let mut previous = Snapshot::default();
    let mut next_line = every;
    let mut stop_sent = false;
    while !engine.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if interrupts.load(Ordering::Acquire) > 0 && !stop_sent {
            println!("interrupted: de-registering (Ctrl-C again to quit at once)");
            engine.stop();
            stop_sent = true;
        }
        let snapshot = engine.snapshot();
        if snapshot.elapsed >= next_line {
            println!("{}", snapshot.progress_line(&previous));
            let _ = std::io::stdout().flush();
            next_line = snapshot.elapsed + every;
            previous = snapshot;
        }
    }
    stop_sent
}

/// Prints `status()` every `every` until Ctrl-C or, when given, `duration` has passed.
pub(super) fn status_lines(
    every: Duration,
    duration: Option<Duration>,
    status: impl Fn() -> String,
) {
    let interrupted = Arc::new(AtomicU32::new(0));
    {
        let interrupted = Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || {
            interrupted.fetch_add(1, Ordering::AcqRel);
        });
    }
    let started = Instant::now();
    let mut next_line = every;
    while interrupted.load(Ordering::Acquire) == 0 && duration.is_none_or(|d| started.elapsed() < d)
    {
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() >= next_line {
            println!("[{:>6.1}s] {}", started.elapsed().as_secs_f64(), status());
            next_line += every;
        }
    }
}
