//! What the commands print on stdout. A reader that stops early (`check | head -1`) closes the
//! pipe: the rest of the output is dropped quietly, and the command still finishes its work (a
//! run still de-registers its clients and writes its reports) and exits with its own code.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

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
