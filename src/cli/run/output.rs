//! `run`'s `--trace`, `--trace-file` and `--quiet`: one device under the microscope, or silence.

use clap::Args;

use crate::trace::{EndpointPattern, Schemas, TraceSink, TraceTap, TraceWriter};

#[derive(Args, Debug)]
pub(crate) struct OutputArgs {
    /// Trace the clients whose endpoint name matches this pattern (`*` any characters, `?` one,
    /// `[0-4]` one of a set), e.g. 'demo-00000?': every datagram they send and receive goes to
    /// --trace-file.
    #[arg(long, value_name = "PATTERN", help_heading = "Output")]
    pub trace: Option<EndpointPattern>,
    /// Where --trace writes: a pcap file (Wireshark, tshark) or `-` for a readable message log on
    /// stderr.
    #[arg(
        long,
        value_name = "PATH|-",
        default_value = "-",
        requires = "trace",
        help_heading = "Output"
    )]
    pub trace_file: TraceSink,
    /// Print no progress lines (no dashboard either) and only error logs; the summary and the
    /// reports are written as usual. RUST_LOG=debug shows more logs instead.
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
}

impl OutputArgs {
    /// Starts the trace writer, if `--trace` asks for one.
    pub(crate) fn start_trace(
        &self,
        schemas: Schemas,
    ) -> std::io::Result<Option<(TraceWriter, TraceTap)>> {
        let Some(pattern) = &self.trace else {
            return Ok(None);
        };
        TraceWriter::start(pattern.clone(), &self.trace_file, schemas).map(Some)
    }
}

/// Waits for the trace's last datagrams and says what was written (a warning when no client
/// matched: a pattern that names no endpoint is a likely typo).
pub(super) fn trace_written(writer: TraceWriter, args: &OutputArgs, first_endpoint: &str) {
    let pattern = args.trace.as_ref().map_or("", EndpointPattern::as_str);
    let to = match &args.trace_file {
        TraceSink::Pcap(path) => path.display().to_string(),
        TraceSink::Log => "stderr".to_string(),
    };
    match writer.finish() {
        Ok(totals) if totals.clients == 0 => tracing::warn!(
            "--trace {pattern:?} matched no client (this fleet's endpoints are like {first_endpoint:?})"
        ),
        Ok(totals) => {
            tracing::info!(
                "trace: {} datagrams of {} clients matching {pattern:?} written to {to}",
                totals.written,
                totals.clients
            );
            if totals.dropped > 0 {
                tracing::warn!(
                    "trace: {} datagrams dropped: the writer fell behind (trace fewer clients)",
                    totals.dropped
                );
            }
        }
        Err(e) => tracing::error!("trace: writing {to} failed: {e}"),
    }
}
