//! What a run would find wrong only after it started, found before: refusals (exit 2, the run
//! would fail or could not pass) and warnings (stderr; the run goes on). `check` and `run` both
//! apply them; `check` also prints the traffic the plan makes at full fleet.

use std::time::Duration;

use super::args::LoadArgs;
use super::{Failure, bad_input};
use crate::client::{RequestKind, request_name, update_delay};
use crate::fleet::{Plan, Ramp, format_duration};
use crate::model::Path;
use crate::report::Threshold;
use crate::report::threshold::Metric;
use crate::server::CampaignMode;

/// What is wrong with a plan, worst first.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Findings {
    /// Each refuses the run.
    pub refusals: Vec<String>,
    pub warnings: Vec<String>,
}

impl Findings {
    /// Prints the warnings on stderr; the refusals, if any, as one failure.
    pub fn apply(self) -> Result<(), Failure> {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
        if self.refusals.is_empty() {
            Ok(())
        } else {
            Err(bad_input(self.refusals.join("\nlwm2m-swarm: ")))
        }
    }
}

/// The plan, its thresholds and the embedded server's load flags as given (ignored, and
/// refused, when the fleet names a server).
pub(super) fn preflight<'t>(
    plan: &Plan,
    thresholds: impl IntoIterator<Item = &'t Threshold>,
    load: &LoadArgs,
) -> Findings {
    let mut found = Findings::default();
    if let Some(server) = &plan.server {
        let flags = load_flags(load);
        if !flags.is_empty() {
            let (given, apply, drop) = match flags.as_slice() {
                [one] => (one.to_string(), "applies", one.to_string()),
                [init @ .., last] => (
                    format!("{} and {last}", init.join(", ")),
                    "apply",
                    "them".into(),
                ),
                [] => unreachable!("not empty"),
            };
            found.refusals.push(format!(
                "{given} {apply} to the embedded server only, and this run targets {server}, \
                 which decides what it asks of the clients: drop {drop}, or drop the server \
                 (the fleet's `server`, --server) to test against the embedded one"
            ));
        }
    }
    if let Some(duration) = plan.duration {
        let ramp = plan.ramp_duration();
        if duration < ramp {
            found.warnings.push(format!(
                "--duration {} stops before the ramp ends ({}): about {} of the {} clients \
                 start",
                format_duration(duration),
                format_duration(ramp),
                started_by(plan, duration),
                plan.clients
            ));
        }
    }
    let embedded = plan.server.is_none().then(|| load.or_demo());
    for t in thresholds {
        let Some(why) = never_happens(t.kind, plan, embedded.as_ref()) else {
            continue;
        };
        let name = request_name(t.kind);
        // A server under test may still ask for an Update (Execute /1/x/8): not certain.
        let external_update = t.kind == RequestKind::Update && plan.server.is_some();
        if external_update {
            found.warnings.push(format!(
                "threshold {}: no {name} request is due in this run ({why}) unless the server \
                 asks for one (Execute /1/0/8)",
                t.text
            ));
        } else if matches!(t.metric, Metric::Count(_)) {
            found.warnings.push(format!(
                "threshold {}: no {name} request happens in this run ({why}), so it counts 0",
                t.text
            ));
        } else {
            found.refusals.push(format!(
                "threshold {} cannot pass: no {name} request happens in this run, so there is \
                 nothing to measure ({why})",
                t.text
            ));
        }
    }
    found
}

/// The embedded server's load flags given on the command line.
fn load_flags(load: &LoadArgs) -> Vec<&'static str> {
    [
        ("--read", load.read.is_some()),
        ("--observe", load.observe.is_some()),
        ("--write", load.write.is_some()),
        ("--execute", load.execute.is_some()),
        ("--discover", load.discover.is_some()),
        ("--lwm2m-cbor", load.lwm2m_cbor),
        ("--read-composite", load.read_composite.is_some()),
        ("--observe-composite", !load.observe_composite.is_empty()),
        ("--write-composite", load.write_composite.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// Clients whose start comes before `at` (start offsets grow with the slot).
fn started_by(plan: &Plan, at: Duration) -> u64 {
    let (mut low, mut high) = (0, plan.clients);
    while low < high {
        let mid = low + (high - low) / 2;
        if plan.start_offset(mid) < at {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

/// Why no request of `kind` can happen before the stop; `None` when one can (or when it is up
/// to a server this tool does not run). `embedded`: the embedded server's load, when it runs.
fn never_happens(kind: RequestKind, plan: &Plan, embedded: Option<&LoadArgs>) -> Option<String> {
    let stop = plan.stop_at();
    let before_stop = format!("before the stop at {}", format_duration(stop));
    match kind {
        RequestKind::Register | RequestKind::Deregister => None,
        RequestKind::Bootstrap => plan
            .bootstrap
            .is_none()
            .then(|| "the fleet has no [bootstrap]: clients register directly".to_string()),
        RequestKind::Update => {
            // The embedded server's Execute of /1/x/8 (Registration Update Trigger) asks for one.
            let triggered = embedded
                .and_then(|load| load.execute)
                .is_some_and(|(path, every)| is_update_trigger(path) && every < stop);
            if triggered {
                return None;
            }
            let first = plan
                .groups
                .iter()
                .map(|g| {
                    let c = &g.config;
                    let fraction = c.update_fraction - c.update_jitter;
                    (update_delay(c.lifetime, fraction), c.lifetime)
                })
                .min_by_key(|(at, _)| *at)?;
            let (at, lifetime) = first;
            (at >= stop).then(|| {
                format!(
                    "with a lifetime of {}, the first Update is due {} after registering, not \
                     {before_stop}: run at least {}, or shorten `lifetime`",
                    format_duration(lifetime),
                    format_duration(at),
                    format_duration(at + Duration::from_secs(5)),
                )
            })
        }
        RequestKind::Notify => {
            let load = embedded?;
            (load.observe.is_none() && load.observe_composite.is_empty()).then(|| {
                "the embedded server observes nothing: give --observe or --observe-composite"
                    .to_string()
            })
        }
        RequestKind::Send => {
            let first = plan
                .groups
                .iter()
                .filter_map(|g| g.config.send.as_ref())
                .map(|s| s.every.saturating_sub(s.jitter))
                .min();
            match first {
                None => Some("no population has `send`".to_string()),
                Some(at) if at >= stop => Some(format!(
                    "the first Send is due {} after registering, not {before_stop}",
                    format_duration(at)
                )),
                Some(_) => None,
            }
        }
        RequestKind::Download => {
            embedded?;
            let pull = plan
                .campaigns
                .iter()
                .filter(|c| c.mode == CampaignMode::Pull)
                .map(|c| c.start)
                .min();
            match pull {
                None if plan.campaigns.is_empty() => {
                    Some("the fleet has no [[campaign]] for the embedded server".to_string())
                }
                None => Some(
                    "the campaigns push the image (Block1 writes): devices download nothing"
                        .to_string(),
                ),
                Some(start) if start >= stop => Some(format!(
                    "the campaign starts {} in, not {before_stop}",
                    format_duration(start)
                )),
                Some(_) => None,
            }
        }
    }
}

/// `/1/x/8`: the Registration Update Trigger, whose Execute makes the client send an Update.
fn is_update_trigger(path: Path) -> bool {
    let ids = path.ids();
    ids.len() == 3 && ids[0] == 1 && ids[2] == 8
}

/// The traffic of the whole fleet once every client runs, one line per kind of message:
/// registrations during the ramp, then the steady state.
pub(super) fn rates(plan: &Plan, embedded: Option<&LoadArgs>) -> Vec<String> {
    let mut lines = vec![format!(
        "Register       {} during the ramp",
        ramp_rates(plan)
    )];
    let per_client = |every: Duration, count: u64| count as f64 / every.as_secs_f64();
    let churn: f64 = plan
        .groups
        .iter()
        .filter_map(|g| match g.behaviour {
            crate::fleet::Behaviour::Churn { every, .. } => Some(per_client(every, g.count)),
            _ => None,
        })
        .sum();
    if churn > 0.0 {
        lines.push(format!("Register again {} (churn)", per_second(churn)));
    }
    let mut updates: f64 = plan
        .groups
        .iter()
        .map(|g| {
            let c = &g.config;
            per_client(update_delay(c.lifetime, c.update_fraction), g.count)
        })
        .sum();
    if let Some((path, every)) = embedded.and_then(|l| l.execute)
        && is_update_trigger(path)
    {
        updates += per_client(every, plan.clients);
    }
    lines.push(format!("Update         {}", per_second(updates)));
    let sends: f64 = plan
        .groups
        .iter()
        .filter_map(|g| g.config.send.as_ref().map(|s| per_client(s.every, g.count)))
        .sum();
    if sends > 0.0 {
        lines.push(format!("Send           {}", per_second(sends)));
    }
    let Some(load) = embedded else {
        lines.push("notifications  as the server under test observes".to_string());
        return lines;
    };
    let clients = plan.clients;
    if let Some(path) = load.observe {
        let most = load.pmin.filter(|s| *s > 0).map_or_else(
            || "as often as the value changes".to_string(),
            |s| per_second(per_client(Duration::from_secs(s.into()), clients)),
        );
        let least = load.pmax.filter(|s| *s > 0).map_or_else(
            || "0/s".to_string(),
            |s| per_second(per_client(Duration::from_secs(s.into()), clients)),
        );
        lines.push(format!(
            "notifications  {least} to {most} ({path}: one per pmax at least, one per pmin at \
             most)"
        ));
    }
    if !load.observe_composite.is_empty() {
        lines.push(
            "notifications  of the composite observation, as often as its values change"
                .to_string(),
        );
    }
    let operations = [
        ("Read", load.read.map(|(_, every)| every)),
        ("Write", load.write.as_ref().map(|(_, _, every)| *every)),
        ("Execute", load.execute.map(|(_, every)| every)),
        ("Discover", load.discover.map(|(_, every)| every)),
        (
            "Read-Composite",
            load.read_composite.as_ref().map(|(_, every)| *every),
        ),
        (
            "Write-Composite",
            load.write_composite.as_ref().map(|(_, every)| *every),
        ),
    ];
    for (name, every) in operations {
        if let Some(every) = every {
            let rate = per_second(per_client(every, clients));
            lines.push(format!("{name:<14} {rate} from the server"));
        }
    }
    lines
}

/// Registrations per second in each stage of the ramp: `50/s` or `40/s, then 80/s`.
fn ramp_rates(plan: &Plan) -> String {
    match &plan.ramp {
        Ramp::Rate(rate) => per_second(*rate),
        Ramp::Stages(stages) => {
            let mut from = 0;
            let rates: Vec<String> = stages
                .iter()
                .map(|s| {
                    let started = s.target.saturating_sub(from) as f64;
                    from = s.target;
                    if s.over.is_zero() {
                        format!("{started:.0} at once")
                    } else {
                        per_second(started / s.over.as_secs_f64())
                    }
                })
                .collect();
            rates.join(", then ")
        }
    }
}

/// `120/s`, `16.7/s`, `4.83/s`, `0.017/s`: three significant digits at most, no trailing zeros.
fn per_second(rate: f64) -> String {
    let decimals = match rate {
        r if r >= 100.0 => 0,
        r if r >= 10.0 => 1,
        r if r >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{rate:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}/s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fleet;

    /// A plan of 100 clients at 10/s with this `[client]` body, holding `hold` after the ramp.
    fn plan(client: &str, hold: &str) -> Plan {
        let text = format!(
            "[client]\n{client}\n[[population]]\nname = \"s\"\nshare = 1.0\n\
             template = \"environment-sensor\"\n[load]\nclients = 100\nrate = 10\nhold = \"{hold}\"\n"
        );
        Fleet::from_toml(&text, "f.toml").unwrap().plan()
    }

    fn thresholds(texts: &[&str]) -> Vec<Threshold> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn an_update_threshold_needs_an_update_due_before_the_stop() {
        let update = thresholds(&["update.error_rate<1%"]);
        // 5 min lifetime: the first Update comes 207 s in (MAX_TRANSMIT_WAIT before expiry).
        let short = preflight(
            &plan("lifetime = \"5m\"", "15s"),
            &update,
            &LoadArgs::default(),
        );
        assert_eq!(short.refusals.len(), 1, "{short:?}");
        assert!(short.refusals[0].contains("the first Update is due 3m27s after registering"));
        let long = preflight(
            &plan("lifetime = \"5m\"", "4m"),
            &update,
            &LoadArgs::default(),
        );
        assert_eq!(long, Findings::default());
        // A short lifetime brings it within the run.
        let quick = plan("lifetime = \"30s\"\nupdate_jitter = 0.0", "15s");
        assert_eq!(
            preflight(&quick, &update, &LoadArgs::default()),
            Findings::default()
        );
        // So does the embedded server's Registration Update Trigger.
        let trigger = LoadArgs {
            execute: Some((Path::resource(1, 0, 8), Duration::from_secs(10))),
            ..LoadArgs::default()
        };
        let short = plan("lifetime = \"5m\"", "15s");
        assert_eq!(preflight(&short, &update, &trigger), Findings::default());
    }

    #[test]
    fn kinds_without_their_cause_cannot_be_measured() {
        let plan = plan("lifetime = \"5m\"", "4m");
        let texts = [
            "send.p99<1s",
            "bootstrap.p99<1s",
            "download.error_rate<1%",
            "notify.sent>10",
        ];
        let quiet = LoadArgs {
            read: Some((Path::resource(3, 0, 0), Duration::from_secs(60))),
            ..LoadArgs::default()
        };
        let found = preflight(&plan, &thresholds(&texts), &quiet);
        let says = [
            "no population has `send`",
            "the fleet has no [bootstrap]",
            "the fleet has no [[campaign]]",
        ];
        assert_eq!(found.refusals.len(), 3, "{found:?}");
        for (refusal, why) in found.refusals.iter().zip(says) {
            assert!(refusal.contains(why), "{refusal}");
        }
        // A count is only a warning; the demo load (no flags) observes, so notify happens then.
        assert_eq!(found.warnings.len(), 1, "{found:?}");
        assert!(found.warnings[0].contains("the embedded server observes nothing"));
        let demo = preflight(
            &plan,
            &thresholds(&["notify.sent>10"]),
            &LoadArgs::default(),
        );
        assert_eq!(demo, Findings::default());
    }

    #[test]
    fn an_external_server_refuses_the_embedded_load_and_leaves_notify_to_the_server() {
        let mut plan = plan("lifetime = \"5m\"", "4m");
        plan.server = Some(crate::fleet::parse_uri("coap://192.0.2.1:5683").unwrap());
        let read = LoadArgs {
            read: Some((Path::resource(3, 0, 0), Duration::from_secs(60))),
            ..LoadArgs::default()
        };
        let found = preflight(&plan, &thresholds(&["notify.p99<1s"]), &read);
        assert_eq!(found.refusals.len(), 1, "{found:?}");
        assert_eq!(
            found.refusals[0],
            "--read applies to the embedded server only, and this run targets \
             coap://192.0.2.1:5683, which decides what it asks of the clients: drop --read, or \
             drop the server (the fleet's `server`, --server) to test against the embedded one"
        );
        let two = LoadArgs {
            observe: Some(Path::resource(3, 0, 13)),
            ..read.clone()
        };
        let found = preflight(&plan, &[], &two);
        assert!(
            found.refusals[0].starts_with(
                "--read and --observe apply to the embedded server only, and this run targets"
            ),
            "{found:?}"
        );
        assert!(found.refusals[0].contains(": drop them, or drop the server"));
        let nothing = preflight(&plan, &[], &LoadArgs::default());
        assert_eq!(nothing, Findings::default());
        // An Update the server may still trigger is a warning.
        plan.hold = Duration::from_secs(5);
        let update = thresholds(&["update.p99<1s"]);
        let found = preflight(&plan, &update, &LoadArgs::default());
        assert!(found.refusals.is_empty(), "{found:?}");
        assert!(
            found.warnings[0].contains("unless the server asks for one"),
            "{found:?}"
        );
    }

    #[test]
    fn a_duration_shorter_than_the_ramp_says_how_many_start() {
        let mut plan = plan("lifetime = \"5m\"", "1m");
        plan.duration = Some(Duration::from_millis(2500));
        let found = preflight(&plan, &[], &LoadArgs::default());
        assert_eq!(
            found.warnings,
            [
                "--duration 2s500ms stops before the ramp ends (10s): about 25 of the 100 clients start"
            ]
        );
        assert!(found.refusals.is_empty());
    }

    #[test]
    fn the_traffic_at_full_fleet() {
        let plan = plan("lifetime = \"5m\"\nupdate_fraction = 0.5", "1m");
        let lines = rates(&plan, Some(&LoadArgs::default().or_demo()));
        assert_eq!(
            lines,
            [
                "Register       10/s during the ramp",
                // 100 clients, each every 150 s.
                "Update         0.667/s",
                "notifications  1.67/s to 10/s (/3/0/13: one per pmax at least, one per pmin at most)",
                "Read           1.67/s from the server",
            ]
        );
        let external = rates(&plan, None);
        assert_eq!(
            external[2],
            "notifications  as the server under test observes"
        );
        assert_eq!(per_second(120.4), "120/s");
        assert_eq!(per_second(40.0), "40/s");
        assert_eq!(per_second(0.0167), "0.017/s");
    }
}
