//! SIGINT (Ctrl-C), SIGTERM and SIGHUP while a command runs. For `run`: the first begins the
//! stop (clients de-register), the second ends the run at once (what was measured is still
//! reported), a third exits without writing anything. The exit code is 128 plus the number of
//! the last signal: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
//!
//! signal-hook rather than ctrlc: ctrlc's "termination" feature calls one handler for all three,
//! and the exit code must say which came.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::exit;
use crate::tui;

/// Signals received so far, counted on a thread of their own.
pub(super) struct Interrupts {
    count: Arc<AtomicU32>,
    last: Arc<AtomicI32>,
}

impl Interrupts {
    /// Catches the signals from now on; `exit_after` of them exit the process at once, with the
    /// terminal restored (`None`: never, the caller watches [`Interrupts::count`]).
    pub(super) fn catch(exit_after: Option<u32>) -> Interrupts {
        let interrupts = Interrupts {
            count: Arc::new(AtomicU32::new(0)),
            last: Arc::new(AtomicI32::new(0)),
        };
        let (count, last) = (Arc::clone(&interrupts.count), Arc::clone(&interrupts.last));
        let caught = Signals::new([SIGINT, SIGTERM, SIGHUP]).and_then(|mut signals| {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        last.store(signal, Ordering::Release);
                        let seen = count.fetch_add(1, Ordering::AcqRel) + 1;
                        if exit_after.is_some_and(|n| seen >= n) {
                            tui::restore_terminal();
                            std::process::exit(i32::from(exit_code(signal)));
                        }
                    }
                })
        });
        if let Err(e) = caught {
            tracing::warn!("Ctrl-C and SIGTERM will not stop clients gracefully: {e}");
        }
        interrupts
    }

    /// How many signals came.
    pub(super) fn count(&self) -> &AtomicU32 {
        &self.count
    }

    /// The last signal's exit code; `None` before any came.
    pub(super) fn exit_code(&self) -> Option<u8> {
        match self.last.load(Ordering::Acquire) {
            0 => None,
            signal => Some(exit_code(signal)),
        }
    }

    /// The last signal's name, for messages.
    pub(super) fn last_name(&self) -> &'static str {
        match self.last.load(Ordering::Acquire) {
            SIGTERM => "SIGTERM",
            SIGHUP => "SIGHUP",
            _ => "Ctrl-C",
        }
    }
}

/// 128 plus the signal's number, as a shell reports a process the signal ended.
fn exit_code(signal: i32) -> u8 {
    match signal {
        SIGTERM => exit::TERMINATED,
        SIGHUP => exit::HANGUP,
        _ => exit::INTERRUPTED,
    }
}
