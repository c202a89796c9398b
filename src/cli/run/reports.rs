//! `run`'s reports (JSON, interval log, plot, thresholds, Prometheus): the glue between the CLI
//! and `crate::report`, kept apart so `run` stays short. The threshold verdicts and the early
//! check that a file can be written serve the `report` command too.

use crate::cli::output::{self, say};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::RunArgs;
use crate::cli::args::TransportArg;
use crate::cli::{Failure, bad_input, exit, failed};
use crate::engine::Started;
use crate::fleet::{Fleet, Plan, Ramp, format_duration};
use crate::metrics::Snapshot;
use crate::report::{
    self, Collector, Identity, Report, ReportArgs, RunConfig, TestIdentity, Threshold,
    check_thresholds, schema::Population, threshold_results, verdicts_text,
};

/// The reports one run writes.
pub(super) struct Reports {
    args: ReportArgs,
    collector: Collector,
    config: RunConfig,
    thresholds: Vec<Threshold>,
    /// How long Prometheus goes on serving after the run.
    linger: Duration,
    /// The test (its id the same for every `--shard`) and this shard of it, as Prometheus
    /// labels it and `--json` records it.
    identity: Identity,
    /// The embedded server's firmware campaigns, for `--json`.
    pub campaign: Option<report::FirmwareCampaign>,
}

impl Reports {
    /// Before the engine starts (`run` has checked where the files go, before the embedded
    /// server): opens the interval log and binds the Prometheus endpoint, so a typo fails now
    /// rather than after an hour of load.
    pub(super) fn start(
        args: &RunArgs,
        fleet: &Fleet,
        plan: &Plan,
        target: &str,
    ) -> Result<Reports, Failure> {
        let report = &args.report;
        // The engine starts at `--start-at` when that is still ahead.
        let now = SystemTime::now();
        let started = args.start_at.map_or(now, |at| at.max(now));
        let config = run_config(args, fleet, plan, target, started);
        let identity = Identity {
            shard: plan.slice.index(),
            shards: plan.slice.count(),
            test_hash: TestIdentity::id_of(&[
                &plan.load_definition(),
                config.embedded_load.as_deref().unwrap_or(""),
                config.security.as_deref().unwrap_or(""),
            ]),
        };
        let collector = Collector::new(started, report, &identity).map_err(|e| match e {
            report::ReportError::Prometheus { .. } => failed(e),
            _ => bad_input(e),
        })?;
        if let Some(addr) = collector.prometheus_addr() {
            say!("Prometheus metrics on http://{addr}/metrics");
        }
        Ok(Reports {
            args: report.clone(),
            collector,
            config,
            thresholds: args.thresholds(fleet).cloned().collect(),
            linger: args.prometheus_linger.unwrap_or_default(),
            identity,
            campaign: None,
        })
    }

    /// Once the engine has started: the shard count it resolved (`--shards 0` is one per core).
    pub(super) fn engine_shards(&mut self, shards: u64) {
        self.config.shards = usize::try_from(shards).unwrap_or(usize::MAX);
    }

    /// Call with every snapshot taken; keeps one interval per second of run time.
    pub(super) fn tick(&mut self, snapshot: &Snapshot) {
        self.collector.tick(snapshot);
    }

    /// The embedded server's campaign counts now, for Prometheus.
    pub(super) fn campaign_progress(&self, stats: &crate::server::CampaignStats) {
        self.collector.campaign(crate::cli::campaign::report(stats));
    }

    /// After the run: prints the thresholds' verdicts, writes the files, then serves Prometheus
    /// for `--prometheus-linger` (a Ctrl-C from now on ends that). `Ok(None)` when every
    /// threshold passed, `Ok(Some(failure))` when one failed (the run's other exit conditions
    /// come first), `Err` when a report could not be written.
    pub(super) fn finish(
        mut self,
        summary: &Snapshot,
        started: &Started,
        interrupts: &AtomicU32,
    ) -> Result<Option<Failure>, Failure> {
        let interrupted_before = interrupts.load(Ordering::Acquire);
        let (intervals, log_error) = self.collector.finish(summary);
        if let Some(campaign) = &self.campaign {
            self.collector.campaign(campaign.clone());
        }
        let outcome = self.write(summary, started, intervals, log_error);
        if let Some(addr) = self
            .collector
            .prometheus_addr()
            .filter(|_| !self.linger.is_zero())
        {
            say!(
                "Prometheus metrics stay on http://{addr}/metrics for {} (Ctrl-C ends this)",
                format_duration(self.linger)
            );
        }
        self.collector.linger(self.linger, || {
            interrupts.load(Ordering::Acquire) > interrupted_before
        });
        outcome
    }

    fn write(
        &mut self,
        summary: &Snapshot,
        started: &Started,
        mut intervals: Vec<report::Interval>,
        log_error: Option<report::ReportError>,
    ) -> Result<Option<Failure>, Failure> {
        let verdicts = check_thresholds(&self.thresholds, summary);
        if !verdicts.is_empty() {
            say!("{}", verdicts_text(&verdicts).trim_end());
        }
        let mut outputs = Vec::new();
        let mut to_stdout = None;
        if let Some(path) = &self.args.json {
            self.config.started_at_unix_s = unix_s(started.at);
            let mut report = Report::new(
                std::mem::take(&mut self.config),
                summary,
                std::mem::take(&mut intervals),
                threshold_results(&verdicts),
            );
            report.test = Some(TestIdentity {
                id: self.identity.test_hash.clone(),
                shard_index: self.identity.shard,
                shard_count: self.identity.shards,
                started_unix_ms: started.unix_ms(),
                late_start_ms: u64::try_from(started.late.as_millis()).unwrap_or(u64::MAX),
            });
            report.campaign = self.campaign.take();
            if output::is_stdout(path) {
                to_stdout = Some(report.to_json() + "\n");
            } else {
                outputs.push((path.as_path(), report.to_json()));
            }
            intervals = report.intervals;
        }
        if let Some(path) = &self.args.plot {
            outputs.push((path.as_path(), report::plot::svg(summary, &intervals)));
        }
        if let Some(path) = &self.args.intervals {
            outputs.push((path.as_path(), report::intervals::write(path, &intervals)));
        }
        let printed = to_stdout.and_then(|json| {
            output::write_stdout(&json)
                .err()
                .map(|source| report::ReportError::Io {
                    path: "stdout".to_string(),
                    source,
                })
        });
        let paths: Vec<String> = outputs
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        let errors = log_error
            .into_iter()
            .chain(printed)
            .chain(report::write_files(outputs));
        if let Some(failure) = unwritten(errors) {
            return Err(failure);
        }
        for path in paths {
            tracing::debug!("report written: {path}");
        }
        Ok(threshold_failure(&verdicts))
    }
}

/// Exit 1 naming every report that could not be written, if any.
pub(in crate::cli) fn unwritten(
    errors: impl IntoIterator<Item = report::ReportError>,
) -> Option<Failure> {
    let errors: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
    match errors.len() {
        0 => None,
        1 => Some(failed(format!(
            "a report could not be written: {}",
            errors[0]
        ))),
        n => Some(failed(format!(
            "{n} reports could not be written: {}",
            errors.join("; ")
        ))),
    }
}

/// Every file the reports go to can be written (checked before anything starts); with the
/// JSON on stdout, the lines for people go to stderr from now on.
pub(super) fn check_outputs(args: &ReportArgs) -> Result<(), Failure> {
    if args.json.as_deref().is_some_and(output::is_stdout) {
        output::human_on_stderr();
    }
    let json = args.json.as_ref().filter(|p| !output::is_stdout(p));
    for path in [
        json,
        args.plot.as_ref(),
        args.hdr_log.as_ref(),
        args.intervals.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        report::check_writable(path).map_err(bad_input)?;
    }
    Ok(())
}

pub(in crate::cli) fn threshold_failure(verdicts: &[report::Verdict]) -> Option<Failure> {
    let failing: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.threshold.text.as_str())
        .collect();
    (!failing.is_empty()).then(|| Failure {
        code: exit::THRESHOLD_FAILED,
        message: format!(
            "{} of {} thresholds failed: {}",
            failing.len(),
            verdicts.len(),
            failing.join(", ")
        ),
    })
}

fn run_config(
    args: &RunArgs,
    fleet: &Fleet,
    plan: &Plan,
    target: &str,
    started: SystemTime,
) -> RunConfig {
    let ramp = match &plan.ramp {
        Ramp::Rate(rate) => format!("{rate} clients/s"),
        Ramp::Stages(stages) => {
            let mut from = 0;
            let parts: Vec<String> = stages
                .iter()
                .map(|s| {
                    let part = format!("{from} -> {} over {}", s.target, format_duration(s.over));
                    from = s.target;
                    part
                })
                .collect();
            parts.join(", ")
        }
    };
    let embedded_load = plan
        .server
        .is_none()
        .then(|| args.load.or_demo().describe());
    RunConfig {
        command: redacted(std::env::args_os().map(|a| a.to_string_lossy().into_owned())),
        started_at_unix_s: unix_s(started),
        fleet: plan.file.clone(),
        server: target.to_string(),
        embedded_load,
        clients: plan.clients,
        ramp,
        hold: format_duration(plan.hold),
        duration: plan.duration.map(format_duration),
        stop_timeout: format_duration(plan.stop_timeout),
        populations: plan
            .groups
            .iter()
            .map(|g| Population {
                name: g.name.clone(),
                template: g.template.clone(),
                behaviour: g.behaviour.to_string(),
                count: g.count,
                seed: g.seed,
            })
            .collect(),
        transport: match args.engine.transport {
            _ if plan.server.as_ref().is_some_and(|s| s.scheme.is_tcp()) => "tcp",
            TransportArg::Shared => "shared",
            TransportArg::PerClient => "per-client",
        }
        .to_string(),
        shards: args.engine.shards,
        bind: args.engine.bind.as_ref().map(|b| format!("{b:?}")),
        ports: args
            .engine
            .ports
            .map(|p| format!("{}-{}", p.first(), p.last())),
        security: fleet.security.as_ref().map(ToString::to_string),
    }
}

fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The command line with `--psk-key`'s value hidden: reports are shared, keys are not.
fn redacted(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut hide_next = false;
    args.map(|arg| {
        if std::mem::take(&mut hide_next) {
            return "<hidden>".to_string();
        }
        if arg == "--psk-key" {
            hide_next = true;
        } else if arg.starts_with("--psk-key=") {
            return "--psk-key=<hidden>".to_string();
        }
        arg
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn the_command_line_in_reports_hides_the_psk_key() {
        let args = [
            "lwm2m-swarm",
            "run",
            "f.toml",
            "--psk-key",
            "00112233",
            "--seed",
            "1",
        ];
        let shown = redacted(args.iter().map(ToString::to_string));
        assert_eq!(shown[3..], ["--psk-key", "<hidden>", "--seed", "1"]);
        let shown = redacted(
            ["run", "--psk-key=00112233"]
                .iter()
                .map(ToString::to_string),
        );
        assert_eq!(shown, ["run", "--psk-key=<hidden>"]);
    }
}
