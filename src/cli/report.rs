//! `report FILE...`: the summary of `run --json` results merged (the shards of one test line up
//! on the wall clock), with thresholds, a plot and the merged JSON.

use super::output::{self, say};
use super::run::reports::{threshold_failure, unwritten};
use super::{Failure, bad_input};
use crate::report::{self, MergeArgs, check_thresholds, threshold_results, verdicts_text};

pub(super) fn report(args: &MergeArgs) -> Result<(), Failure> {
    let json = args.json.as_ref().filter(|p| !output::is_stdout(p));
    for path in [args.plot.as_ref(), json].into_iter().flatten() {
        report::check_writable(path).map_err(bad_input)?;
    }
    if json.is_none() && args.json.is_some() {
        output::human_on_stderr();
    }
    let merged = report::merge_files(&args.files).map_err(bad_input)?;
    for (path, r) in args.files.iter().zip(&merged.inputs) {
        let c = &r.config;
        // Older files wrote `--shards` as given, 0 for one per core: not a count.
        let threads = match c.shards {
            0 => String::new(),
            1 => ", 1 engine shard".to_string(),
            n => format!(", {n} engine shards"),
        };
        let line = format!(
            "{}: {} ({} clients against {}{threads}), {:.1}s",
            path.display(),
            c.fleet,
            c.clients,
            c.server,
            r.elapsed_s
        );
        say!("{}", output::fitted(&line));
    }
    if let Some((test, shards)) = merged.test() {
        let line = format!(
            "test {}: {}",
            test.id,
            shards_text(shards, test.shard_count)
        );
        say!("{}", output::fitted(&line));
    }
    if let Some(missing) = &merged.missing {
        eprintln!("warning: {missing}");
    }
    say!("\n{}", merged.summary);
    let verdicts = check_thresholds(&merged.thresholds(&args.thresholds), &merged.summary);
    if !verdicts.is_empty() {
        say!("{}", verdicts_text(&verdicts).trim_end());
    }
    let mut outputs = Vec::new();
    let mut printed = None;
    if let Some(path) = &args.json {
        let result = merged.report(threshold_results(&verdicts)).to_json();
        if output::is_stdout(path) {
            printed = output::write_stdout(&(result + "\n")).err().map(|source| {
                report::ReportError::Io {
                    path: "stdout".to_string(),
                    source,
                }
            });
        } else {
            outputs.push((path.as_path(), result));
        }
    }
    if let Some(path) = &args.plot {
        let svg = report::plot::svg(&merged.summary, merged.intervals());
        outputs.push((path.as_path(), svg));
    }
    let errors = printed.into_iter().chain(report::write_files(outputs));
    if let Some(failure) = unwritten(errors) {
        return Err(failure);
    }
    threshold_failure(&verdicts).map_or(Ok(()), Err)
}

/// The shards a result covers, as `--shard K/N` names them: `shard 0/1`, `shards 0-2, 5 of 8`.
fn shards_text(shards: &[u32], count: u32) -> String {
    if let [one] = shards {
        format!("shard {one}/{count}")
    } else {
        let covered = report::merge::ranges_text(&report::merge::ranges(shards));
        format!("shards {covered} of {count}")
    }
}

#[cfg(test)]
mod tests {
    use super::shards_text;

    #[test]
    fn shards_read_as_the_shard_option_gives_them() {
        // Not `shards 0 of 1`, which reads as no shard at all.
        assert_eq!(shards_text(&[0], 1), "shard 0/1");
        assert_eq!(shards_text(&[3], 4), "shard 3/4");
        assert_eq!(shards_text(&[0, 1, 2, 3], 4), "shards 0-3 of 4");
        assert_eq!(shards_text(&[0, 1, 2, 5], 8), "shards 0-2, 5 of 8");
    }
}
