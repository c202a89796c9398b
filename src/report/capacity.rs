//! The capacity search, sans-IO: given how each step went, which load to offer next and when to
//! stop. It steps the load up by a factor from a start until a step fails (or the maximum held),
//! then bisects between the last step that held and the first that failed, for a bounded number
//! of steps or until the gap is within the precision asked. `capacity` runs the steps.

use std::fmt;

use super::threshold::{Metric, Verdict};

/// How the search goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchConfig {
    /// The first step's load (> 0).
    pub start: f64,
    /// Each step up offers this many times the last (> 1).
    pub factor: f64,
    /// No step offers more (>= `start`).
    pub max: f64,
    /// Bisection steps at most, once a step failed.
    pub refine: u32,
    /// Bisecting stops once the gap between held and failed is at most this fraction of the
    /// load that held (0.05: within 5%).
    pub precision: f64,
    /// Loads are whole numbers (clients): bisecting stops when no whole number is left between.
    pub whole: bool,
}

impl SearchConfig {
    /// Steps at most: the climb from `start` to `max`, then the bisection.
    pub fn max_steps(&self) -> usize {
        let mut climb = ((self.max / self.start).ln() / self.factor.ln())
            .ceil()
            .max(0.0);
        if self.whole {
            // Below 1 / (factor - 1), a whole load climbs by one.
            climb += (1.0 / (self.factor - 1.0)).min(self.max).ceil();
        }
        climb as usize + 1 + self.refine as usize
    }
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// Run a step at this load.
    Step(f64),
    /// The search is over.
    Done(Outcome),
}

/// Where the search ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// `held` held and `failed`, the lowest load that failed above it, did not.
    Between { held: f64, failed: f64 },
    /// Every step held, up to `held`, the maximum.
    HeldToMax { held: f64 },
    /// The first step, at `failed`, failed already.
    FailedAtStart { failed: f64 },
}

impl Outcome {
    /// The highest load that held, if any did.
    pub fn capacity(&self) -> Option<f64> {
        match *self {
            Outcome::Between { held, .. } | Outcome::HeldToMax { held } => Some(held),
            Outcome::FailedAtStart { .. } => None,
        }
    }

    /// The lowest load that failed, if any did.
    pub fn failed(&self) -> Option<f64> {
        match *self {
            Outcome::Between { failed, .. } | Outcome::FailedAtStart { failed } => Some(failed),
            Outcome::HeldToMax { .. } => None,
        }
    }
}

/// The search's state: the highest load that held and the lowest that failed so far.
#[derive(Clone, Debug)]
pub struct Planner {
    config: SearchConfig,
    held: Option<f64>,
    failed: Option<f64>,
    steps: usize,
    bisections: u32,
}

impl Planner {
    pub fn new(config: SearchConfig) -> Planner {
        Planner {
            config,
            held: None,
            failed: None,
            steps: 0,
            bisections: 0,
        }
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The next load to offer, or where the search ended.
    pub fn next(&self) -> Next {
        let c = &self.config;
        match (self.held, self.failed) {
            (None, None) => Next::Step(self.round(c.start)),
            (None, Some(failed)) => Next::Done(Outcome::FailedAtStart { failed }),
            (Some(held), None) if held >= c.max => Next::Done(Outcome::HeldToMax { held }),
            (Some(held), None) => {
                let up = self.round(held * c.factor).min(c.max);
                // Whole loads climb by one at least: 1 x 1.5 rounds back to 1.
                Next::Step(if up <= held {
                    (held + 1.0).min(c.max)
                } else {
                    up
                })
            }
            (Some(held), Some(failed)) => {
                let done = Next::Done(Outcome::Between { held, failed });
                if self.bisections >= c.refine || failed - held <= c.precision * held {
                    return done;
                }
                let mid = self.round(held + (failed - held) / 2.0);
                if mid <= held || mid >= failed {
                    return done;
                }
                Next::Step(mid)
            }
        }
    }

    /// How the step at `load` went. A load at or above one that failed, or at or below one
    /// that held, narrows nothing; a step that held above a failed one (noise) moves the
    /// failure up, so the interval stays ordered.
    pub fn record(&mut self, load: f64, passed: bool) {
        if self.held.is_some() && self.failed.is_some() {
            self.bisections += 1;
        }
        self.steps += 1;
        if passed {
            self.held = Some(self.held.map_or(load, |h| h.max(load)));
            if self.failed.is_some_and(|f| f <= load) {
                self.failed = None;
            }
        } else {
            self.failed = Some(self.failed.map_or(load, |f| f.min(load)));
        }
    }

    fn round(&self, load: f64) -> f64 {
        if self.config.whole {
            load.round().max(1.0)
        } else {
            // Three significant digits: 22.5/s, not 22.499999/s.
            let scale = 10f64.powi(2 - load.abs().log10().floor() as i32);
            (load * scale).round() / scale
        }
    }
}

/// A failed verdict as the capacity line names it: `register.p99 = 2.1 s`,
/// `register.error_rate = 12.5%`, `update.p99: nothing measured`.
pub struct Measured<'a>(pub &'a Verdict);

impl fmt::Display for Measured<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0.threshold;
        let name = t.text[..t.text.find(['<', '>']).unwrap_or(t.text.len())].trim();
        let Some(value) = self.0.value else {
            return write!(f, "{name}: nothing measured");
        };
        match t.metric {
            Metric::Quantile(_) | Metric::Mean if value >= 1000.0 => {
                write!(f, "{name} = {} s", significant(value / 1000.0))
            }
            Metric::Quantile(_) | Metric::Mean => write!(f, "{name} = {} ms", significant(value)),
            Metric::ErrorRate | Metric::TimeoutRate => {
                write!(f, "{name} = {}%", significant(value))
            }
            Metric::Count(_) => write!(f, "{name} = {value}"),
        }
    }
}

/// `capacity --json`: the search and every step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CapacityReport {
    /// What was stepped up: `rate` (registrations per second) or `clients` (held at once).
    pub by: &'static str,
    /// The unit of `load`, `capacity` and `failed_at`: `registrations/s` or `clients`.
    pub unit: &'static str,
    pub target: String,
    pub thresholds: Vec<String>,
    /// The highest load that held; `null` when the first step failed.
    pub capacity: Option<f64>,
    /// The lowest load above it that failed; `null` when every step held up to the maximum.
    pub failed_at: Option<f64>,
    /// The search did not end: interrupted, or a step could not run.
    pub incomplete: bool,
    pub steps: Vec<StepRecord>,
}

/// One step of the search.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepRecord {
    /// From 1.
    pub step: usize,
    pub load: f64,
    pub clients: u64,
    pub first_endpoint: String,
    pub last_endpoint: String,
    /// From its first start to its last client stopped.
    pub elapsed_s: f64,
    pub passed: bool,
    /// Request kinds the step sent, with what became of them.
    pub requests: Vec<StepRequest>,
    pub thresholds: Vec<super::ThresholdResult>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct StepRequest {
    pub kind: &'static str,
    pub sent: u64,
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub aborted: u64,
    /// `null` when nothing was answered.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl StepRequest {
    /// Every kind the snapshot saw sent.
    pub fn all(snapshot: &crate::metrics::Snapshot) -> Vec<StepRequest> {
        crate::client::REQUEST_KINDS
            .iter()
            .map(|k| (crate::client::request_name(*k), snapshot.request(*k)))
            .filter(|(_, r)| r.sent > 0)
            .map(|(kind, r)| {
                let ms = |q: f64| {
                    (!r.latency.is_empty()).then(|| r.latency.value_at_quantile(q) as f64 / 1e3)
                };
                StepRequest {
                    kind,
                    sent: r.sent,
                    ok: r.ok,
                    error: r.error,
                    timeout: r.timeout,
                    aborted: r.aborted,
                    p50_ms: ms(0.5),
                    p99_ms: ms(0.99),
                }
            })
            .collect()
    }
}

/// A load as people read it: `22.5`, `150`, `4500`.
pub fn format_load(load: f64) -> String {
    significant(load)
}

/// At most three significant digits after the point, no trailing zeros.
fn significant(v: f64) -> String {
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
// Loads are rounded to three digits: the ones compared are exactly the ones handed out.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn config() -> SearchConfig {
        SearchConfig {
            start: 10.0,
            factor: 1.5,
            max: 1000.0,
            refine: 4,
            precision: 0.0,
            whole: false,
        }
    }

    /// Runs the search against `holds` (does this load hold?); the loads offered and the end.
    fn search(config: SearchConfig, mut holds: impl FnMut(f64) -> bool) -> (Vec<f64>, Outcome) {
        let mut planner = Planner::new(config);
        let mut loads = Vec::new();
        loop {
            assert!(loads.len() <= config.max_steps(), "{loads:?}");
            match planner.next() {
                Next::Step(load) => {
                    loads.push(load);
                    planner.record(load, holds(load));
                }
                Next::Done(outcome) => {
                    assert_eq!(planner.steps(), loads.len());
                    return (loads, outcome);
                }
            }
        }
    }

    #[test]
    fn a_monotone_server_is_climbed_then_bisected_to_its_limit() {
        let (loads, outcome) = search(config(), |load| load <= 40.0);
        // 10, 15, 22.5, 33.8, 50.7 (failed), then four bisections between 33.8 and 50.7.
        assert_eq!(loads[..5], [10.0, 15.0, 22.5, 33.8, 50.7]);
        assert_eq!(loads.len(), 5 + 4);
        let Outcome::Between { held, failed } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(held <= 40.0 && failed > 40.0, "{outcome:?}");
        assert!(failed - held < (50.7 - 33.8) / 8.0, "{outcome:?}");
        assert_eq!(outcome.capacity(), Some(held));
        // Every load offered after the first failure lies between what held and what failed.
        assert!(
            loads[5..].iter().all(|l| *l > 33.8 && *l < 50.7),
            "{loads:?}"
        );
    }

    #[test]
    fn precision_ends_the_bisection_early() {
        let precise = SearchConfig {
            precision: 0.2,
            ..config()
        };
        let (loads, outcome) = search(precise, |load| load <= 40.0);
        // 33.8 .. 50.7 is 50% apart, 42.3 fails, 33.8 .. 42.3 is 25%, 38.1 holds: within 20%.
        assert_eq!(loads[5..], [42.3, 38.1]);
        assert_eq!(
            outcome,
            Outcome::Between {
                held: 38.1,
                failed: 42.3
            }
        );
    }

    #[test]
    fn a_failing_first_step_ends_the_search_at_once() {
        let (loads, outcome) = search(config(), |_| false);
        assert_eq!(loads, [10.0]);
        assert_eq!(outcome, Outcome::FailedAtStart { failed: 10.0 });
        assert_eq!((outcome.capacity(), outcome.failed()), (None, Some(10.0)));
    }

    #[test]
    fn a_server_that_never_fails_is_climbed_to_the_maximum_and_no_further() {
        let (loads, outcome) = search(config(), |_| true);
        assert_eq!(*loads.last().unwrap(), 1000.0);
        assert!(loads.windows(2).all(|w| w[1] > w[0]), "{loads:?}");
        assert_eq!(loads.len(), 13, "{loads:?}");
        assert_eq!(outcome, Outcome::HeldToMax { held: 1000.0 });
        assert_eq!(outcome.failed(), None);
    }

    #[test]
    fn noisy_results_still_end_within_bounds_with_held_below_failed() {
        // A server that holds below 40 but fails one step in three at random-looking loads.
        for seed in 0..50u64 {
            let mut n = seed;
            let (loads, outcome) = search(config(), |load| {
                n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                load <= 40.0 && (n >> 33) % 3 != 0
            });
            assert!(loads.len() <= config().max_steps(), "{loads:?}");
            match outcome {
                Outcome::Between { held, failed } => {
                    assert!(held < failed, "{outcome:?}");
                    assert!(loads.contains(&held) && loads.contains(&failed));
                }
                Outcome::FailedAtStart { failed } => assert_eq!(failed, 10.0),
                Outcome::HeldToMax { .. } => panic!("nothing above 40 holds: {loads:?}"),
            }
        }
        // A pass above a failure (noise the other way) moves the failure up: still ordered.
        let mut planner = Planner::new(config());
        planner.record(10.0, true);
        planner.record(15.0, false);
        planner.record(12.5, true);
        planner.record(13.8, true);
        planner.record(14.4, false);
        planner.record(20.0, true);
        let Next::Step(next) = planner.next() else {
            panic!("climbing again")
        };
        assert_eq!(next, 30.0);
    }

    #[test]
    fn whole_loads_climb_by_one_at_least_and_stop_at_adjacent_counts() {
        let whole = SearchConfig {
            start: 1.0,
            factor: 1.5,
            max: 100.0,
            refine: 10,
            precision: 0.0,
            whole: true,
        };
        let (loads, outcome) = search(whole, |clients| clients <= 7.0);
        assert_eq!(loads[..4], [1.0, 2.0, 3.0, 5.0]);
        assert!(loads.iter().all(|l| l.fract() == 0.0), "{loads:?}");
        assert_eq!(
            outcome,
            Outcome::Between {
                held: 7.0,
                failed: 8.0
            }
        );
    }

    #[test]
    fn failures_read_as_name_and_value() {
        use crate::metrics::{RequestStats, Snapshot};
        let mut register = RequestStats {
            sent: 8,
            ok: 6,
            error: 2,
            ..RequestStats::default()
        };
        register.latency.record(2_100_000).unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.requests[0] = register;
        let verdict = |t: &str| {
            t.parse::<crate::report::Threshold>()
                .unwrap()
                .check(&snapshot)
        };
        let p99 = verdict("register.p99 < 500ms");
        assert!(!p99.passed);
        assert_eq!(Measured(&p99).to_string(), "register.p99 = 2.1 s");
        let errors = verdict("register.error_rate<1%");
        assert_eq!(Measured(&errors).to_string(), "register.error_rate = 25%");
        let none = verdict("update.p99<1s");
        assert_eq!(Measured(&none).to_string(), "update.p99: nothing measured");
        assert_eq!(format_load(22.5), "22.5");
        assert_eq!(format_load(150.0), "150");
        assert_eq!(format_load(3.375), "3.38");
    }
}
