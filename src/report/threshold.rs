//! Pass/fail criteria on a run's result: `register.p99<500ms`, `update.error_rate<1%`,
//! `notify.timeout>=10`. Parsed from the command line and from the fleet file's
//! `[load] thresholds`, checked against the final snapshot.

use std::fmt;
use std::str::FromStr;

use crate::client::{REQUEST_KINDS, RequestKind, request_name};
use crate::metrics::{RequestStats, Snapshot};

/// One criterion, e.g. `register.p99<500ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As written, trimmed.
    pub text: String,
    pub kind: RequestKind,
    pub metric: Metric,
    pub cmp: Cmp,
    /// In the metric's base unit: µs, a fraction (0.01 for 1%), or a count.
    pub limit: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A latency from the due time, at this quantile (1.0 is the maximum).
    Quantile(f64),
    Mean,
    ErrorRate,
    TimeoutRate,
    Count(Count),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Sent,
    Ok,
    Error,
    Timeout,
    Aborted,
    InFlight,
    Retransmissions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// How a threshold fared.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub threshold: Threshold,
    /// In the threshold's display unit (ms, %, count); `None` when there was nothing to measure.
    pub value: Option<f64>,
    pub passed: bool,
}

const LATENCIES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p999", 0.999),
    ("max", 1.0),
];

const COUNTS: [(&str, Count); 7] = [
    ("sent", Count::Sent),
    ("ok", Count::Ok),
    ("error", Count::Error),
    ("timeout", Count::Timeout),
    ("aborted", Count::Aborted),
    ("in_flight", Count::InFlight),
    ("retransmissions", Count::Retransmissions),
];

const SYNTAX: &str = "expected REQUEST.METRIC OP VALUE, e.g. register.p99<500ms or \
    update.error_rate<1% (requests: register, update, deregister, notify; metrics: p50, p90, \
    p99, p999, max, mean (with us, ms or s), error_rate, timeout_rate (with %), sent, ok, error, \
    timeout, aborted, in_flight, retransmissions; operators: < <= > >=)";

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Threshold, String> {
        let text = s.trim();
        let bad = |why: &str| format!("threshold {text:?}: {why}");
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| bad(&format!("no comparison; {SYNTAX}")))?;
        let (left, rest) = text.split_at(at);
        let (cmp, right) = match (rest.as_bytes()[0], rest.as_bytes().get(1)) {
            (b'<', Some(b'=')) => (Cmp::Le, &rest[2..]),
            (b'>', Some(b'=')) => (Cmp::Ge, &rest[2..]),
            (b'<', _) => (Cmp::Lt, &rest[1..]),
            _ => (Cmp::Gt, &rest[1..]),
        };
        let (op, metric) = left
            .trim()
            .split_once('.')
            .ok_or_else(|| bad(&format!("no REQUEST.METRIC; {SYNTAX}")))?;
        let kind = REQUEST_KINDS
            .iter()
            .copied()
            .find(|k| request_name(*k) == op)
            .ok_or_else(|| {
                let names = REQUEST_KINDS.map(request_name);
                let guess = crate::plain::did_you_mean(op, names)
                    .map(|g| format!(": {g}"))
                    .unwrap_or_default();
                bad(&format!(
                    "unknown request {op:?}{guess} ({})",
                    names.join(", ")
                ))
            })?;
        let metric = parse_metric(metric).ok_or_else(|| {
            let names = LATENCIES
                .iter()
                .map(|(n, _)| *n)
                .chain(COUNTS.iter().map(|(n, _)| *n));
            let names = names.chain(["mean", "error_rate", "timeout_rate"]);
            match crate::plain::did_you_mean(metric, names) {
                Some(guess) => bad(&format!("unknown metric {metric:?}: {guess}")),
                None => bad(&format!("unknown metric {metric:?}; {SYNTAX}")),
            }
        })?;
        let limit = parse_limit(metric, right.trim()).map_err(|why| bad(&why))?;
        Ok(Threshold {
            text: text.to_string(),
            kind,
            metric,
            cmp,
            limit,
        })
    }
}

fn parse_metric(name: &str) -> Option<Metric> {
    if let Some((_, q)) = LATENCIES.iter().find(|(n, _)| *n == name) {
        return Some(Metric::Quantile(*q));
    }
    if let Some((_, c)) = COUNTS.iter().find(|(n, _)| *n == name) {
        return Some(Metric::Count(*c));
    }
    match name {
        "mean" => Some(Metric::Mean),
        "error_rate" => Some(Metric::ErrorRate),
        "timeout_rate" => Some(Metric::TimeoutRate),
        _ => None,
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{text:?} is not a number >= 0"))
}

fn parse_limit(metric: Metric, value: &str) -> Result<f64, String> {
    match metric {
        Metric::Quantile(_) | Metric::Mean => {
            let bad = || format!("{value:?} is not a number >= 0 with its unit: 500ms, 2s, 800us");
            // Longest suffix first: "ms" and "us" end in "s".
            let (n, scale) = [("ms", 1e3), ("us", 1.0), ("µs", 1.0), ("s", 1e6)]
                .iter()
                .find_map(|(unit, scale)| value.strip_suffix(unit).map(|n| (n, *scale)))
                .ok_or_else(bad)?;
            Ok(number(n).map_err(|_| bad())? * scale)
        }
        Metric::ErrorRate | Metric::TimeoutRate => {
            let n = value
                .strip_suffix('%')
                .ok_or_else(|| format!("{value:?}: give a percentage: 1%, 0.5%"))?;
            let pct = number(n)?;
            if pct > 100.0 {
                return Err(format!("{value:?}: a rate is at most 100%"));
            }
            Ok(pct / 100.0)
        }
        Metric::Count(_) => value
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("{value:?}: give a whole number")),
    }
}

impl Threshold {
    /// Checks the threshold against a run's (cumulative) snapshot. A latency with no answered
    /// request, or a rate with nothing sent, has no value and fails: a limit nobody measured is
    /// not met.
    pub fn check(&self, snapshot: &Snapshot) -> Verdict {
        let value = measure(self.metric, snapshot.request(self.kind));
        let passed = value.is_some_and(|v| match self.cmp {
            Cmp::Lt => v < self.limit,
            Cmp::Le => v <= self.limit,
            Cmp::Gt => v > self.limit,
            Cmp::Ge => v >= self.limit,
        });
        Verdict {
            threshold: self.clone(),
            value: value.map(|v| self.display_scale() * v),
            passed,
        }
    }

    /// From the base unit to what a person reads: µs to ms, fractions to %.
    fn display_scale(&self) -> f64 {
        match self.metric {
            Metric::Quantile(_) | Metric::Mean => 1e-3,
            Metric::ErrorRate | Metric::TimeoutRate => 100.0,
            Metric::Count(_) => 1.0,
        }
    }

    fn unit(&self) -> &'static str {
        match self.metric {
            Metric::Quantile(_) | Metric::Mean => " ms",
            Metric::ErrorRate | Metric::TimeoutRate => "%",
            Metric::Count(_) => "",
        }
    }
}

/// In base units; `None` when there is nothing to measure.
fn measure(metric: Metric, r: &RequestStats) -> Option<f64> {
    let h = &r.latency;
    // Of the requests that ended on the server's account (answered or timed out): neither
    // those still in flight nor those the clients gave up on count, and a timeout is a failure.
    let ended = r.ok + r.error + r.timeout;
    let rate = |n: u64| (ended > 0).then(|| n as f64 / ended as f64);
    match metric {
        Metric::Quantile(_) | Metric::Mean if h.is_empty() => None,
        Metric::Quantile(q) if q >= 1.0 => Some(h.max() as f64),
        Metric::Quantile(q) => Some(h.value_at_quantile(q) as f64),
        Metric::Mean => Some(h.mean()),
        Metric::ErrorRate => rate(r.error + r.timeout),
        Metric::TimeoutRate => rate(r.timeout),
        Metric::Count(c) => Some(match c {
            Count::Sent => r.sent,
            Count::Ok => r.ok,
            Count::Error => r.error,
            Count::Timeout => r.timeout,
            Count::Aborted => r.aborted,
            Count::InFlight => r.in_flight(),
            Count::Retransmissions => r.retransmissions,
        } as f64),
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.threshold;
        let verdict = if self.passed { "passed" } else { "FAILED" };
        match self.value {
            Some(v) => write!(f, "{verdict:<6}  {}  (measured {v:.2}{})", t.text, t.unit()),
            None => write!(f, "{verdict:<6}  {}  (nothing measured)", t.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestStats;

    fn snapshot_with(register: RequestStats) -> Snapshot {
        let mut s = Snapshot::default();
        s.requests[0] = register;
        s
    }

    #[test]
    fn parses_metrics_units_and_operators() {
        let t: Threshold = " register.p99 < 500ms ".parse().unwrap();
        assert_eq!(t.kind, RequestKind::Register);
        let send: Threshold = "send.p99<1s".parse().unwrap();
        assert_eq!(send.kind, RequestKind::Send);
        assert_eq!(t.metric, Metric::Quantile(0.99));
        assert_eq!((t.cmp, t.limit), (Cmp::Lt, 500_000.0));
        assert_eq!(t.text, "register.p99 < 500ms");
        let t: Threshold = "update.error_rate<=1.5%".parse().unwrap();
        assert_eq!((t.metric, t.cmp), (Metric::ErrorRate, Cmp::Le));
        assert!((t.limit - 0.015).abs() < 1e-12);
        let t: Threshold = "notify.max>=2s".parse().unwrap();
        assert_eq!((t.cmp, t.limit), (Cmp::Ge, 2e6));
        let t: Threshold = "deregister.mean>800us".parse().unwrap();
        assert_eq!((t.metric, t.cmp, t.limit), (Metric::Mean, Cmp::Gt, 800.0));
        let t: Threshold = "update.timeout<=3".parse().unwrap();
        assert_eq!((t.metric, t.limit), (Metric::Count(Count::Timeout), 3.0));
    }

    #[test]
    fn bad_syntax_says_what_is_wrong() {
        for (text, says) in [
            ("register.p99", "no comparison"),
            ("p99<5ms", "no REQUEST.METRIC"),
            ("reboot.p99<5ms", "unknown request \"reboot\""),
            ("register.p98<5ms", "unknown metric \"p98\""),
            ("register.p99<500", "with its unit"),
            ("register.p99<5 minutes", "with its unit"),
            ("register.error_rate<0.01", "percentage"),
            ("register.error_rate<101%", "at most 100%"),
            ("register.sent>1.5", "whole number"),
            ("register.p99<-1ms", "not a number"),
            (
                "regster.p99<5ms",
                "unknown request \"regster\": did you mean \"register\"?",
            ),
            ("notfy.sent>1", "did you mean \"notify\"?"),
            (
                "update.eror_rate<1%",
                "unknown metric \"eror_rate\": did you mean \"error_rate\"?",
            ),
        ] {
            let err = text.parse::<Threshold>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains(&format!("{:?}", text.trim())), "{err}");
        }
    }

    #[test]
    fn checks_against_a_snapshot_and_fails_when_nothing_was_measured() {
        let mut r = RequestStats {
            sent: 200,
            ok: 196,
            error: 4,
            ..RequestStats::default()
        };
        for us in 1..=100 {
            r.latency.record(us * 1000).unwrap();
        }
        let s = snapshot_with(r);
        let check = |t: &str| t.parse::<Threshold>().unwrap().check(&s);
        assert!(check("register.p99<100ms").passed);
        assert!(!check("register.p99<98ms").passed);
        assert!(check("register.max<=101ms").passed);
        let v = check("register.error_rate<2%");
        assert!(!v.passed, "4 of 200 is 2%");
        assert_eq!(v.value, Some(2.0));
        assert!(check("register.error_rate<=2%").passed);
        assert!(check("register.sent>=200").passed);
        assert!(check("register.mean<51ms").passed && !check("register.mean<50ms").passed);
        let none = check("update.p50<1s");
        assert_eq!((none.passed, none.value), (false, None));
        assert!(!check("update.error_rate<50%").passed);
        assert!(check("update.sent<1").passed);
        assert!(
            check("register.p99<100ms")
                .to_string()
                .starts_with("passed")
        );
        assert!(none.to_string().contains("FAILED"), "{none}");
    }
}
