//! Logs through `tracing`: warnings and notes on stderr as `warning: ...`, `note: ...`; `RUST_LOG`
//! picks what is shown (`RUST_LOG=debug`, `RUST_LOG=lwm2m_swarm::engine=debug`), and `run
//! --quiet` only errors.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Without `RUST_LOG`: our notes and warnings, other crates' errors (rustls warns of every
/// fatal alert it sends: a line per client when a server's certificate is refused).
const DEFAULT_FILTER: &str = "error,lwm2m_swarm=info";

/// Sends logs to stderr from now on (once per process; later calls change nothing).
pub(super) fn init(quiet: bool) {
    let filter = if quiet {
        EnvFilter::new("error")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Plain)
        .try_init();
}

/// `warning: text`, as the tool always wrote; debug and trace lines name their module.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        match *metadata.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => write!(writer, "note: ")?,
            Level::DEBUG => write!(writer, "debug {}: ", metadata.target())?,
            Level::TRACE => write!(writer, "trace {}: ", metadata.target())?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
