//! `run`'s reports (JSON, interval log, plot, thresholds, Prometheus) and the `report` command:
//! the glue between the CLI and `crate::report`, kept apart so `run` stays short.

use std::path::Path as FsPath;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Failure, LoadArgs, RunArgs, TransportArg, bad_input, exit, failed};
use crate::fleet::{Fleet, Plan, Ramp, format_duration};
use crate::metrics::Snapshot;
use crate::report::{
    self, Collector, MergeArgs, Report, ReportArgs, RunConfig, Threshold, check_thresholds,
    schema::Population, threshold_results, verdicts_text,
};

/// The reports one run writes.
pub(super) struct Reports {
    args: ReportArgs,
    collector: Collector,
    config: RunConfig,
    thresholds: Vec<Threshold>,
}

impl Reports {
    /// Before the engine starts: checks where files go, opens the interval log, binds the
    /// Prometheus endpoint, so a typo fails now rather than after an hour of load.
    pub(super) fn start(
        args: &RunArgs,
        fleet: &Fleet,
        plan: &Plan,
        target: &str,
    ) -> Result<Reports, Failure> {
        let report = &args.report;
        for path in [&report.json, &report.plot].into_iter().flatten() {
            check_writable(path)?;
        }
        let started = SystemTime::now();
        let collector = Collector::new(started, report).map_err(|e| match e {
            report::ReportError::Prometheus { .. } => failed(e),
            _ => bad_input(e),
        })?;
        if let Some(addr) = collector.prometheus_addr() {
            println!("Prometheus metrics on http://{addr}/metrics");
        }
        let mut thresholds = fleet.load.thresholds.clone();
        thresholds.extend(report.thresholds.iter().cloned());
        Ok(Reports {
            args: report.clone(),
            collector,
            config: run_config(args, fleet, plan, target, started),
            thresholds,
        })
    }

    /// Call with every snapshot taken; keeps one interval per second of run time.
    pub(super) fn tick(&mut self, snapshot: &Snapshot) {
        self.collector.tick(snapshot);
    }

    /// After the run: prints the thresholds' verdicts and writes the files. `Ok(None)` when
    /// every threshold passed, `Ok(Some(failure))` when one failed (the run's other exit
    /// conditions come first), `Err` when a report could not be written.
    pub(super) fn finish(self, summary: &Snapshot) -> Result<Option<Failure>, Failure> {
        let (intervals, log_error) = self.collector.finish(summary);
        let verdicts = check_thresholds(&self.thresholds, summary);
        if !verdicts.is_empty() {
            print!("{}", verdicts_text(&verdicts));
        }
        if let Some(path) = &self.args.json {
            let report = Report::new(
                self.config,
                summary,
                intervals,
                threshold_results(&verdicts),
            );
            report::write_file(path, &report.to_json()).map_err(failed)?;
        }
        if let Some(path) = &self.args.plot {
            report::write_file(path, &report::plot::svg(summary)).map_err(failed)?;
        }
        if let Some(e) = log_error {
            return Err(failed(e));
        }
        Ok(threshold_failure(&verdicts))
    }
}

fn threshold_failure(verdicts: &[report::Verdict]) -> Option<Failure> {
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

/// A file can be created there, found before the run rather than after it: not a directory,
/// and it opens for writing (an empty file stays until the report replaces it).
fn check_writable(path: &FsPath) -> Result<(), Failure> {
    if path.is_dir() {
        return Err(bad_input(format!("{}: is a directory", path.display())));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir.filter(|d| !d.is_dir()) {
        return Err(bad_input(format!(
            "{}: directory {} does not exist",
            path.display(),
            d.display()
        )));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| bad_input(format!("{}: cannot write: {e}", path.display())))
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
    let embedded_load = plan.server.is_none().then(|| {
        if args.load.is_empty() {
            LoadArgs::demo().describe()
        } else {
            args.load.describe()
        }
    });
    RunConfig {
        command: redacted(std::env::args_os().map(|a| a.to_string_lossy().into_owned())),
        started_at_unix_s: started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
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

/// `report FILE...`: the merged summary, thresholds, plot and JSON.
pub(super) fn merge(args: &MergeArgs) -> Result<(), Failure> {
    for path in [&args.plot, &args.json].into_iter().flatten() {
        check_writable(path)?;
    }
    let merged = report::merge_files(&args.files).map_err(bad_input)?;
    for (path, r) in args.files.iter().zip(&merged.inputs) {
        let c = &r.config;
        println!(
            "{}: {} ({} clients against {}), {:.1}s",
            path.display(),
            c.fleet,
            c.clients,
            c.server,
            r.elapsed_s
        );
    }
    if let Some((test, shards)) = merged.test() {
        let covered = report::merge::ranges_text(&report::merge::ranges(shards));
        println!("test {}: shards {covered} of {}", test.id, test.shard_count);
    }
    if let Some(missing) = &merged.missing {
        eprintln!("warning: {missing}");
    }
    println!("\n{}", merged.summary);
    let verdicts = check_thresholds(&merged.thresholds(&args.thresholds), &merged.summary);
    if !verdicts.is_empty() {
        print!("{}", verdicts_text(&verdicts));
    }
    if let Some(path) = &args.json {
        let result = merged.report(threshold_results(&verdicts));
        report::write_file(path, &result.to_json()).map_err(failed)?;
    }
    if let Some(path) = &args.plot {
        report::write_file(path, &report::plot::svg(&merged.summary)).map_err(failed)?;
    }
    threshold_failure(&verdicts).map_or(Ok(()), Err)
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
