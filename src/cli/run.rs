//! `run`: start the fleet's clients against its server (or the embedded one), show progress,
//! de-register them, print the summary and write the reports.

pub(super) mod output;
pub(super) mod reports;

use super::output::say;
use std::cell::RefCell;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use clap::Args;

use super::args::{EngineArgs, FleetArgs, LoadArgs, TimingArgs};
use super::embedded::Embedded;
use super::interrupts::Interrupts;
use super::parse::parse_positive_duration;
use super::preflight::preflight;
use super::progress::progress_lines;
use super::setup::{
    EMBEDDED_SERVER, Loaded, describe_layout, engine_config, host_reach, load, log_set_up, resolve,
    start_engine, tls_config,
};
use super::{Failure, bad_input, exit, failed};
use crate::engine::Engine;
use crate::fleet::{Fleet, format_duration};
use crate::metrics::Snapshot;
use crate::report::Threshold;
use crate::tui::{self, TuiExit};
use reports::Reports;

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Load the embedded server puts on clients (when the fleet has no server); without any of
    /// these flags, `LoadArgs::or_demo`'s (said in the help).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print progress lines instead of the live dashboard (the default when stdout is not a
    /// terminal).
    #[arg(long, help_heading = "Output")]
    pub no_tui: bool,
    /// Time between progress lines (with --no-tui).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_positive_duration,
          help_heading = "Output")]
    pub progress_every: Duration,
    /// Start the load at this time, RFC 3339 (2026-12-06T22:30:00Z) or Unix seconds, so the
    /// ramps of all shards line up; the sockets open first. Past it: start at once.
    #[arg(long, value_name = "TIME", value_parser = crate::engine::parse_start_at,
          help_heading = "Load")]
    pub start_at: Option<std::time::SystemTime>,
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    #[command(flatten)]
    pub output: output::OutputArgs,
    /// Keep serving --prometheus this long after the run, so the last scrape sees its end
    /// (Ctrl-C ends it sooner).
    #[arg(long, value_name = "DURATION", requires = "prometheus", value_parser = parse_positive_duration,
          help_heading = "Output")]
    pub prometheus_linger: Option<Duration>,
}

impl RunArgs {
    /// The fleet's thresholds and the command line's.
    fn thresholds<'a>(&'a self, fleet: &'a Fleet) -> impl Iterator<Item = &'a Threshold> {
        fleet.load.thresholds.iter().chain(&self.report.thresholds)
    }
}

pub(super) fn run(args: &RunArgs) -> Result<(), Failure> {
    let Loaded {
        fleet,
        templates,
        credentials,
    } = load(&args.fleet, &args.timing)?;
    let (plan, remote) = checked_plan(args, &fleet)?;
    let (server, embedded) = match remote {
        Some(server) => (server, Embedded::None),
        None => Embedded::start(&plan, &args.load, credentials.as_deref())?,
    };
    let target = plan
        .server
        .as_ref()
        .map_or_else(|| embedded.to_string(), ToString::to_string);
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    log_set_up(&plan, &config);
    config.credentials = credentials.map(|c| c as Arc<dyn crate::security::CredentialSource>);
    config.tls = tls_config(&fleet, plan.server.as_ref())?;
    config.start_at = args.start_at;
    let total = plan.total_duration();
    let (stop_at, stop_timeout) = (plan.stop_at(), plan.stop_timeout);
    let clients = plan.slice_clients();
    let file = plan.file.clone();
    let trace = output::Tracing::start(&args.output, &plan, &templates, &mut config)?;
    let mut reports = Reports::start(args, &fleet, &plan, &target)?;
    if let Some(slice) = plan.describe_slice() {
        say!("shard {slice}");
    }
    if let Some(at) = args.start_at {
        say!(
            "{}",
            crate::engine::describe_wait(at, std::time::SystemTime::now())
        );
    }
    let engine = start_engine(plan, templates, &config)?;
    // The shards hold the trace's only senders now: it ends when they do.
    config.trace = None;
    reports.engine_shards(engine.layout().shards());
    if let Some(moved) = engine.moved_ports() {
        say!("{moved}");
    }
    let header = format!(
        "{file}: {clients} clients against {target}; {}; at most {}",
        describe_layout(engine.layout(), &config),
        format_duration(total)
    );
    say!("{}", super::output::fitted(&header));
    // A third signal exits at once: by then even the stop at once is taking too long.
    let interrupts = Interrupts::catch(Some(3));
    let observed = Observed {
        engine: &engine,
        embedded: &embedded,
        reports: RefCell::new(&mut reports),
    };
    let quiet = args.output.quiet;
    let terminals = Terminals {
        stdin: std::io::stdin().is_terminal(),
        stdout: std::io::stdout().is_terminal(),
    };
    let ending = if terminals.show_dashboard(args.no_tui, args.output.leaves_terminal()) {
        let info = tui::RunInfo {
            target,
            fleet: file,
            clients,
            stop_at,
            stop_timeout,
        };
        dashboard(&observed, &info, interrupts.count(), args.progress_every)
    } else {
        // Quiet: no line is ever due.
        let every = if quiet {
            Duration::MAX
        } else {
            args.progress_every
        };
        progress_lines(&observed, every, interrupts.count())
    };
    if ending == TuiExit::Abandoned {
        engine.abort();
    }
    let started = engine.started();
    let (summary, ended) = engine.finish();
    if let Some(trace) = trace {
        trace.finish(&args.output);
    }
    say!("\n{summary}");
    say!("{}", crate::engine::describe_start(&started, args.start_at));
    reports.campaign = embedded.campaign_report();
    let embedded_ended = embedded.stop();
    let thresholds = reports.finish(&summary, &started, interrupts.count());
    ended.map_err(|e| failed(format!("the run stopped early: {e}")))?;
    let thresholds = embedded_ended.and(thresholds)?;
    if summary.server_tried() && !summary.server_answered() {
        return Err(never_answered(server, &summary));
    }
    if ending != TuiExit::Completed {
        return Err(interrupted(ending, &interrupts));
    }
    thresholds.map_or(Ok(()), Err)
}

/// The fleet's plan (this shard's slice) and the resolved server under test (none: the embedded
/// one), refused before anything starts for what the run would only find out later.
fn checked_plan(
    args: &RunArgs,
    fleet: &crate::fleet::Fleet,
) -> Result<(crate::fleet::Plan, Option<SocketAddr>), Failure> {
    let plan = fleet
        .plan()
        .with_slice(args.fleet.shard)
        .map_err(bad_input)?;
    // Refused before anything starts (as by `check`), the embedded server included.
    preflight(&plan, args.thresholds(fleet), &args.load).apply()?;
    let remote = plan.server.as_ref().map(resolve).transpose()?;
    let early = engine_config(
        remote.unwrap_or(EMBEDDED_SERVER),
        &args.engine,
        plan.server.as_ref(),
    );
    host_reach(&plan, &early, None)?
        .check()
        .map_err(bad_input)?;
    reports::check_outputs(&args.report)?;
    Ok((plan, remote))
}

/// Exit 130 (Ctrl-C, or the dashboard's `q`), 143 (SIGTERM) or 129 (SIGHUP): a run that did
/// not complete.
fn interrupted(ending: TuiExit, interrupts: &Interrupts) -> Failure {
    let how = if ending == TuiExit::Abandoned {
        "stopped at once: what was still in flight is counted as aborted, and registered \
         clients did not de-register"
    } else {
        "every client was stopped"
    };
    let by = match interrupts.exit_code() {
        Some(_) => interrupts.last_name(),
        None => "the dashboard",
    };
    Failure {
        code: interrupts.exit_code().unwrap_or(exit::INTERRUPTED),
        message: format!("interrupted by {by}: the run did not complete ({how})"),
    }
}

/// Exit 3: what was tried toward a server that never answered.
fn never_answered(server: SocketAddr, summary: &Snapshot) -> Failure {
    let sent: u64 = summary.requests.iter().map(|r| r.sent).sum();
    let connections = summary.connections.total();
    let tried = if connections > 0 {
        format!("{connections} connections begun")
    } else {
        format!("{} handshakes begun", summary.handshakes.total())
    };
    Failure {
        code: exit::UNREACHABLE,
        message: format!(
            "the server at {server} never answered ({sent} requests sent, {tried}): is it \
             running, is the address right (and the key or certificate)?"
        ),
    }
}

/// The live dashboard until the run ends, or the user stops it (`Abandoned`: asked twice).
/// Which of stdin and stdout are terminals.
struct Terminals {
    stdin: bool,
    stdout: bool,
}

impl Terminals {
    /// The dashboard draws on stdout and reads its keys from stdin: with stdin not a terminal
    /// (a pipe, a file, at its end), whatever it holds is no key, so progress lines it is.
    fn show_dashboard(&self, no_tui: bool, leaves_terminal: bool) -> bool {
        !no_tui && leaves_terminal && self.stdin && self.stdout
    }
}

fn dashboard(
    observed: &Observed<'_>,
    info: &tui::RunInfo,
    interrupts: &AtomicU32,
    every: Duration,
) -> TuiExit {
    match tui::run(observed, info, interrupts) {
        Ok(ending) => ending,
        Err(e) => {
            // The run is not the dashboard's to end: go on with progress lines.
            tracing::warn!("the dashboard failed ({e}): progress lines instead");
            progress_lines(observed, every, interrupts)
        }
    }
}

/// The engine as the live views see it: every snapshot they take also feeds the reports
/// (which keep one per second).
struct Observed<'a> {
    engine: &'a Engine,
    embedded: &'a Embedded,
    reports: RefCell<&'a mut Reports>,
}

impl tui::Controls for Observed<'_> {
    fn snapshot(&self) -> Snapshot {
        let snapshot = self.engine.snapshot();
        let mut reports = self.reports.borrow_mut();
        reports.tick(&snapshot);
        if let Some(campaign) = self.embedded.campaign_stats() {
            reports.campaign_progress(&campaign);
        }
        snapshot
    }
    fn stop(&self) {
        self.engine.stop();
    }
    fn pause_starts(&self, paused: bool) {
        self.engine.pause_starts(paused);
    }
    fn is_finished(&self) -> bool {
        self.engine.is_finished()
    }
    fn set_start_rate(&self, factor: f64) {
        self.engine.set_start_rate(factor);
    }
}

#[cfg(test)]
mod tests {
    use super::Terminals;

    #[test]
    fn the_dashboard_needs_stdin_and_stdout_on_a_terminal() {
        let both = Terminals {
            stdin: true,
            stdout: true,
        };
        assert!(both.show_dashboard(false, true));
        assert!(!both.show_dashboard(true, true), "--no-tui");
        assert!(
            !both.show_dashboard(false, false),
            "--quiet or a message log"
        );
        // `script -qc ... </dev/null`, `run ... < file`: keys would be whatever stdin holds.
        let no_keys = Terminals {
            stdin: false,
            stdout: true,
        };
        assert!(!no_keys.show_dashboard(false, true));
        let piped = Terminals {
            stdin: true,
            stdout: false,
        };
        assert!(!piped.show_dashboard(false, true));
    }
}
