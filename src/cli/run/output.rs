//! `run`'s `--trace`, `--trace-file` and `--quiet`: one device under the microscope, or silence.

use clap::Args;

use std::sync::Arc;

use super::super::{Failure, failed};
use crate::engine::{EngineConfig, TransportKind};
use crate::fleet::Plan;
use crate::model::DeviceTemplate;
use crate::trace::{EndpointPattern, Schemas, TraceSink, TraceWriter};

#[derive(Args, Debug)]
pub(crate) struct OutputArgs {
    /// Trace the clients whose endpoint name matches this pattern (`*` any characters, `?` one,
    /// `[0-4]` one of a set), e.g. 'demo-00000?': every datagram they send and receive goes to
    /// --trace-file.
    #[arg(long, value_name = "PATTERN", help_heading = "Output")]
    pub trace: Option<EndpointPattern>,
    /// Where --trace writes: a pcap file (Wireshark, tshark) or `-` for a readable message log on
    /// stderr (with progress lines instead of the dashboard).
    #[arg(
        long,
        value_name = "PATH|-",
        default_value = "-",
        requires = "trace",
        help_heading = "Output"
    )]
    pub trace_file: TraceSink,
    /// Print no progress lines (no dashboard either) and only error logs; the summary and the
    /// reports are written as usual. `RUST_LOG=debug` shows more logs instead.
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
}

impl OutputArgs {
    /// The dashboard may draw: not quiet, and no message log coming on stderr to tear it.
    pub(super) fn leaves_terminal(&self) -> bool {
        let message_log = self.trace.is_some() && self.trace_file == TraceSink::Log;
        !self.quiet && !message_log
    }
}

/// The trace being written, while the run lasts.
pub(super) struct Tracing {
    writer: TraceWriter,
    /// For the warning when the pattern matched nothing.
    first_endpoint: String,
    /// tshark's `-d` for a server off the standard ports (which tshark decodes by itself).
    decode_as: Option<String>,
}

/// The `-d` option tshark needs to decode the trace, when the server is not on its protocol's
/// standard port (5683 for CoAP, 5684 for DTLS and TLS).
fn decode_as(config: &EngineConfig) -> Option<String> {
    let layer = match config.transport {
        TransportKind::Tcp => "tcp",
        _ => "udp",
    };
    let (protocol, standard) = if config.tls.is_some() {
        ("tls", 5684)
    } else if config.credentials.is_some() {
        ("dtls", 5684)
    } else {
        ("coap", 5683)
    };
    let port = config.server.port();
    (port != standard).then(|| format!("-d {layer}.port=={port},{protocol}"))
}

impl Tracing {
    /// Starts the trace writer if `--trace` asks for one, and gives the engine its tap.
    pub(super) fn start(
        args: &OutputArgs,
        plan: &Plan,
        templates: &[Arc<DeviceTemplate>],
        config: &mut EngineConfig,
    ) -> Result<Option<Tracing>, Failure> {
        let Some(pattern) = &args.trace else {
            return Ok(None);
        };
        let schemas = Schemas(templates.iter().map(|t| Arc::clone(t) as _).collect());
        let (writer, tap) = TraceWriter::start(pattern.clone(), &args.trace_file, schemas)
            .map_err(|e| failed(format!("--trace-file: {e}")))?;
        config.trace = Some(tap);
        Ok(Some(Tracing {
            writer,
            first_endpoint: plan.naming.endpoint(0),
            decode_as: decode_as(config),
        }))
    }

    /// Waits for the trace's last datagrams (the engine finished) and says what was written: a
    /// warning when no client matched, as a pattern that names no endpoint is a likely typo.
    pub(super) fn finish(self, args: &OutputArgs) {
        let pattern = args.trace.as_ref().map_or("", EndpointPattern::as_str);
        let first = &self.first_endpoint;
        let to = match &args.trace_file {
            TraceSink::Pcap(path) => path.display().to_string(),
            TraceSink::Log => "stderr".to_string(),
        };
        match self.writer.finish() {
            Ok(totals) if totals.clients == 0 => tracing::warn!(
                "--trace {pattern:?} matched no client (this fleet's endpoints are like {first:?})"
            ),
            Ok(totals) => {
                let clients = match totals.clients {
                    1 => "1 client".to_string(),
                    n => format!("{n} clients"),
                };
                tracing::info!(
                    "trace: {} packets of {clients} matching {pattern:?} written to {to}",
                    totals.written
                );
                if let (TraceSink::Pcap(path), Some(decode_as)) =
                    (&args.trace_file, &self.decode_as)
                {
                    tracing::info!(
                        "trace: read it with: tshark -r {} {decode_as}",
                        path.display()
                    );
                }
                if totals.dropped > 0 {
                    tracing::warn!(
                        "trace: {} packets dropped: the writer fell behind (trace fewer clients)",
                        totals.dropped
                    );
                }
            }
            Err(e) => tracing::error!("trace: writing {to} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::error::ErrorKind;

    use super::super::super::{Cli, Command};
    use crate::trace::TraceSink;

    fn run(line: &str) -> Result<super::super::RunArgs, clap::Error> {
        let args = std::iter::once("lwm2m-swarm").chain(line.split_whitespace());
        match Cli::parse_args(args)?.command {
            Command::Run(args) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trace_writes_the_message_log_unless_given_a_file() {
        let args = run("run f.toml --trace demo-000?").unwrap().output;
        assert_eq!(args.trace.unwrap().as_str(), "demo-000?");
        assert_eq!(args.trace_file, TraceSink::Log);
        assert!(!args.quiet);
        let args = run("run f.toml --trace d* --trace-file t.pcap -q")
            .unwrap()
            .output;
        assert_eq!(args.trace_file, TraceSink::Pcap(PathBuf::from("t.pcap")));
        assert!(args.quiet);
    }

    #[test]
    fn a_trace_file_without_a_pattern_or_a_broken_pattern_is_refused() {
        let e = run("run f.toml --trace-file t.pcap").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument, "{e}");
        let e = run("run f.toml --trace demo-[0-").unwrap_err().to_string();
        assert!(e.contains("\"demo-[0-\" is not an endpoint pattern"), "{e}");
    }

    #[test]
    fn tshark_is_told_how_to_decode_a_server_off_the_standard_port() {
        use crate::engine::{EngineConfig, TransportKind};
        let mut config = EngineConfig::new("127.0.0.1:5683".parse().unwrap());
        assert_eq!(super::decode_as(&config), None);
        config.server.set_port(54163);
        assert_eq!(
            super::decode_as(&config).as_deref(),
            Some("-d udp.port==54163,coap")
        );
        config.transport = TransportKind::Tcp;
        assert_eq!(
            super::decode_as(&config).as_deref(),
            Some("-d tcp.port==54163,coap")
        );
    }
}
