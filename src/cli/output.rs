//! Where a command's human-readable lines go: stdout, or stderr once stdout carries a JSON
//! result (`--json -`), so that a pipe reads nothing but the JSON.

use std::sync::atomic::{AtomicBool, Ordering};

static HUMAN_ON_STDERR: AtomicBool = AtomicBool::new(false);

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
            println!($($arg)*);
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

/// Writes `text` to stdout; a closed pipe is an error to report, not a panic.
pub(super) fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
