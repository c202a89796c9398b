//! `report FILE...`: the summary of `run --json` results merged (the shards of one test line up
//! on the wall clock), with thresholds, a plot and the merged JSON.

use super::run::reports::{threshold_failure, unwritten};
use super::{Failure, bad_input};
use crate::report::{self, MergeArgs, check_thresholds, threshold_results, verdicts_text};

pub(super) fn report(args: &MergeArgs) -> Result<(), Failure> {
    for path in [&args.plot, &args.json].into_iter().flatten() {
        report::check_writable(path).map_err(bad_input)?;
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
    let mut outputs = Vec::new();
    if let Some(path) = &args.json {
        let result = merged.report(threshold_results(&verdicts));
        outputs.push((path.as_path(), result.to_json()));
    }
    if let Some(path) = &args.plot {
        outputs.push((path.as_path(), report::plot::svg(&merged.summary)));
    }
    if let Some(failure) = unwritten(report::write_files(outputs)) {
        return Err(failure);
    }
    threshold_failure(&verdicts).map_or(Ok(()), Err)
}
