//! `--intervals`: the run's seconds (the intervals the JSON result holds) as a CSV table or as
//! JSON Lines, one row per second, for spreadsheets and plotting tools.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::schema::Interval;

/// The file's text: CSV when `path` ends in `.csv` (any case), else JSON Lines.
pub fn write(path: &Path, intervals: &[Interval]) -> String {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        csv(intervals)
    } else {
        json_lines(intervals)
    }
}

/// One JSON object per line, each an interval as `--json` writes it.
pub fn json_lines(intervals: &[Interval]) -> String {
    let mut out = String::new();
    for interval in intervals {
        out.push_str(&serde_json::to_string(interval).expect("an interval always serialises"));
        out.push('\n');
    }
    out
}

/// A header row, then one row per interval: `elapsed_s`, `length_s`, `clients_<state>` for
/// every state, `<kind>_sent`, `_ok`, `_error`, `_timeout`, `_non`, `_p50_us`, `_p99_us` for
/// every request kind (a latency cell empty when nothing was answered), `datagrams_in`,
/// `datagrams_out`. Names are ours (no commas or quotes), so no cell needs quoting.
pub fn csv(intervals: &[Interval]) -> String {
    let states: BTreeSet<&String> = intervals.iter().flat_map(|i| i.clients.keys()).collect();
    let kinds: BTreeSet<&String> = intervals.iter().flat_map(|i| i.requests.keys()).collect();
    let mut header = vec!["elapsed_s".to_string(), "length_s".to_string()];
    header.extend(states.iter().map(|s| format!("clients_{s}")));
    for kind in &kinds {
        for field in ["sent", "ok", "error", "timeout", "non", "p50_us", "p99_us"] {
            header.push(format!("{kind}_{field}"));
        }
    }
    header.extend(["datagrams_in".to_string(), "datagrams_out".to_string()]);
    let mut out = header.join(",");
    out.push('\n');
    for interval in intervals {
        let mut row = vec![
            format!("{:.3}", interval.elapsed_s),
            format!("{:.3}", interval.length_s),
        ];
        row.extend(
            states
                .iter()
                .map(|s| interval.clients.get(*s).copied().unwrap_or(0).to_string()),
        );
        for kind in &kinds {
            let r = interval.requests.get(*kind).copied().unwrap_or_default();
            let latency = |us: Option<u64>| us.map(|v| v.to_string()).unwrap_or_default();
            row.extend([
                r.sent.to_string(),
                r.ok.to_string(),
                r.error.to_string(),
                r.timeout.to_string(),
                r.unacknowledged.to_string(),
                latency(r.p50_us),
                latency(r.p99_us),
            ]);
        }
        row.push(interval.datagrams_in.to_string());
        row.push(interval.datagrams_out.to_string());
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::IntervalRequest;

    fn second(n: u64) -> Interval {
        let mut i = Interval {
            elapsed_s: n as f64,
            length_s: 1.0,
            datagrams_in: 10 * n,
            datagrams_out: 11 * n,
            ..Interval::default()
        };
        i.clients.insert("registered".into(), n);
        let answered = IntervalRequest {
            sent: n,
            ok: n,
            p50_us: Some(250),
            p99_us: Some(900),
            ..IntervalRequest::default()
        };
        i.requests.insert("register".into(), answered);
        let non = IntervalRequest {
            sent: 3,
            unacknowledged: 3,
            ..IntervalRequest::default()
        };
        i.requests.insert("notify".into(), non);
        i
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_second_with_empty_latency_when_unanswered() {
        let text = csv(&[second(1), second(2)]);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        let cell = |row: usize, name: &str| {
            let column = lines[0].iter().position(|h| *h == name).unwrap();
            lines[row][column]
        };
        assert_eq!(cell(2, "elapsed_s"), "2.000");
        assert_eq!(cell(2, "clients_registered"), "2");
        assert_eq!(cell(2, "register_sent"), "2");
        assert_eq!(cell(2, "register_p99_us"), "900");
        assert_eq!(cell(1, "notify_non"), "3");
        assert_eq!(cell(1, "notify_ok"), "0");
        assert_eq!(cell(1, "notify_p50_us"), "");
        assert_eq!(cell(2, "datagrams_out"), "22");
    }

    #[test]
    fn json_lines_read_back_as_the_intervals() {
        let intervals = [second(1), second(2)];
        let text = write(Path::new("run.jsonl"), &intervals);
        let back: Vec<Interval> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, intervals);
        assert!(write(Path::new("RUN.CSV"), &intervals).starts_with("elapsed_s,"));
    }
}
