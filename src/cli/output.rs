//! What the commands print on stdout, and where their human-readable lines go.
//!
//! A reader that stops early (`check | head -1`) closes the pipe: the rest of the output is
//! dropped quietly, and the command still finishes its work (a run still de-registers its
//! clients and writes its reports) and exits with its own code. Once stdout carries a JSON
//! result (`--json -`), human-readable lines go to stderr, so that a pipe reads only the JSON.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static HUMAN_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// Writes `text` (and a newline when `newline`) to stdout, unless the reader has gone.
pub(crate) fn write(text: std::fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(text).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        CLOSED.store(true, Ordering::Relaxed);
        if !is_closed_pipe(&e) {
            eprintln!("lwm2m-swarm: cannot write to stdout ({e}): the rest is not printed");
        }
    }
}

/// A write failed because the reader closed the pipe: the quiet end of the output.
pub(crate) fn is_closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::BrokenPipe
}

/// From now on, [`say!`] writes to stderr.
pub(super) fn human_on_stderr() {
    HUMAN_ON_STDERR.store(true, Ordering::Relaxed);
}

pub(super) fn is_human_on_stderr() -> bool {
    HUMAN_ON_STDERR.load(Ordering::Relaxed)
}

/// `println!` for human-readable lines: to stderr when stdout is the JSON's.
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::cli::output::is_human_on_stderr() {
            eprintln!($($arg)*);
        } else {
            $crate::cli::output::write(format_args!($($arg)*), true);
        }
    };
}
pub(super) use say;

/// `line` broken to fit the summary's width, as the summary's own lines are.
pub(super) fn fitted(line: &str) -> String {
    crate::report::fit(line, crate::report::SUMMARY_WIDTH)
}

/// Whether `path` means stdout (`-`).
pub(super) fn is_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `text` to stdout whole (the `--json -` result): a closed pipe is an error to report,
/// not a panic.
pub(super) fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
