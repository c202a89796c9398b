//! `report FILE...`: the summary of `run --json` results, merged, with thresholds and a plot.

use super::run::reports::{check_writable, threshold_failure};
use super::{Failure, bad_input, failed};
use crate::report::{self, MergeArgs, check_thresholds, verdicts_text};

pub(super) fn report(args: &MergeArgs) -> Result<(), Failure> {
    if let Some(path) = &args.plot {
        check_writable(path)?;
    }
    let (total, reports) = report::merge_files(&args.files).map_err(bad_input)?;
    for (path, r) in args.files.iter().zip(&reports) {
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
    println!("\n{total}");
    let verdicts = check_thresholds(&args.thresholds, &total);
    if !verdicts.is_empty() {
        print!("{}", verdicts_text(&verdicts));
    }
    if let Some(path) = &args.plot {
        report::write_file(path, &report::plot::svg(&total)).map_err(failed)?;
    }
    threshold_failure(&verdicts).map_or(Ok(()), Err)
}
