//! From the raw file to a checked `Fleet`: defaults, overrides, counts and the ramp.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawBehaviour, RawClient, RawFleet, RawLoad, RawPopulation};
use super::span::{AT_LEAST_ONE, At, invalid, line_of, toml_error};
use super::{
    Behaviour, Fleet, FleetError, Group, Load, Naming, NetworkConditions, Overrides, Ramp, Stage,
    ValueOverride, parse_duration,
};
use super::{campaign, network, security, send};
use crate::client::{AcceptRequests, ClientConfig, LwM2mVersion};
use crate::coap::uri::parse_uri;
use crate::model::Path;
use crate::report::Threshold;

/// Shorter lifetimes make clients spend their time updating rather than simulating a device.
pub const MIN_LIFETIME: Duration = Duration::from_secs(10);
/// Block1 bodies past this are certainly a typo (RFC 7959 allows 1 GiB).
const MAX_BLOCK1_SIZE: u64 = 64 << 20;
/// Observations per client past this are certainly a typo.
const MAX_OBSERVATIONS: u64 = 10_000;
/// Endpoint numbers wider than this are certainly a typo.
const MAX_WIDTH: usize = 20;

fn default_prefix() -> String {
    "swarm-".to_string()
}
fn default_width() -> usize {
    6
}
fn default_start() -> u64 {
    0
}
fn default_seed() -> u64 {
    0
}

pub(super) fn fleet(text: &str, file: &str, overrides: &Overrides) -> Result<Fleet, FleetError> {
    let mut raw: RawFleet = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    apply_to_raw(&mut raw, overrides);
    let at = |span| At { file, text, span };
    let server_span = raw.server.as_ref().map(Spanned::span);
    let server = raw
        .server
        .map(|s| parse_uri(&s.get_ref().uri).map_err(|m| at(s.span()).err("uri", m)))
        .transpose()?;
    let server = overrides.server.clone().or(server);
    let security = security::security(raw.security.as_ref(), overrides, file, text)?;
    let server_err = |m: &str| match (&overrides.server, server_span.clone()) {
        (None, Some(span)) => at(span).err("uri", m),
        _ => invalid(file, 0, "server", m),
    };
    security::check_scheme(server.as_ref(), security.as_ref(), file, server_err)?;
    let tls = super::tls::tls(raw.tls.as_ref(), server.as_ref(), file, text, server_err)?;
    let tcp = server.as_ref().is_some_and(|s| s.scheme.is_tcp());
    let (client, client_span) = match raw.client {
        Some(c) => {
            let span = c.span();
            (c.into_inner(), span)
        }
        None => (RawClient::default(), 0..0),
    };
    let client_at = at(client_span);
    let base = ClientConfig {
        // LwM2M 1.1 binding T: CoAP over TCP (or TLS).
        binding: if tcp { "T".into() } else { "U".into() },
        ..ClientConfig::default()
    };
    let mut defaults = settings(&client, &base, &client_at)?;
    if tcp {
        check_tcp_binding(&defaults, &client_at)?;
    }
    let bootstrap = super::bootstrap::bootstrap(raw.bootstrap.as_ref(), tcp, file, text)?;
    defaults.bootstrap.clone_from(&bootstrap);
    let naming = Naming {
        prefix: client
            .endpoint_prefix
            .clone()
            .unwrap_or_else(default_prefix),
        width: client.width.unwrap_or_else(default_width),
        start: client.start.unwrap_or_else(default_start),
    };
    if naming.width > MAX_WIDTH {
        return Err(client_at.err("width", format!("at most {MAX_WIDTH} digits")));
    }
    let seed = client.seed.unwrap_or_else(default_seed);
    let network = network::fleet_wide(raw.network.as_ref(), file, text)?;
    if let Some(table) = &raw.network {
        network::check_datagrams(&network, tcp, &at(table.span()))?;
    }
    if raw.population.is_empty() {
        return Err(invalid(
            file,
            1,
            "population",
            "add at least one [[population]]",
        ));
    }
    let mut groups = Vec::new();
    for pop in &raw.population {
        let group = population(pop, &defaults, seed, network, &at(pop.span()), file, text)?;
        if groups.iter().any(|g: &Group| g.name == group.name) {
            return Err(at(pop.span()).err("name", format!("{:?} is used twice", group.name)));
        }
        if tcp {
            check_tcp_binding(&group.config, &at(pop.span()))?;
        }
        network::check_datagrams(&group.network, tcp, &at(pop.span()))?;
        groups.push(group);
    }
    let load_at = at(raw.load.span());
    let load = raw.load.get_ref();
    let (ramp, staged_total) = ramp(load, &load_at, text)?;
    let clients = total(load.clients, staged_total, &raw.population, &load_at)?;
    assign_counts(&mut groups, &raw.population, clients, at)?;
    let load = timing(load, ramp, &load_at, overrides)?;
    Ok(Fleet {
        file: file.to_string(),
        campaigns: campaign::campaigns(&raw.campaign, server.is_some(), file, text)?,
        server,
        security,
        bootstrap,
        tls,
        clients,
        naming,
        groups,
        load,
    })
}

/// `[load]`'s ramp, hold, stop timeout and thresholds.
fn timing(
    load: &RawLoad,
    ramp: Ramp,
    load_at: &At,
    overrides: &Overrides,
) -> Result<Load, FleetError> {
    let duration = |field: &str, value: &str| {
        parse_duration(value).map_err(|e| load_at.err(field, e.to_string()))
    };
    let stop_timeout = duration("stop_timeout", &load.stop_timeout)?;
    if stop_timeout.is_zero() {
        return Err(load_at.err("stop_timeout", "must be more than 0s"));
    }
    Ok(Load {
        ramp,
        hold: duration("hold", &load.hold)?,
        stop_timeout,
        duration: overrides.duration,
        thresholds: thresholds(&load.thresholds, load_at.file, load_at.text)?,
    })
}

/// `[load] thresholds`, each located at its own line.
fn thresholds(
    raw: &[Spanned<String>],
    file: &str,
    text: &str,
) -> Result<Vec<Threshold>, FleetError> {
    raw.iter()
        .map(|t| {
            t.get_ref()
                .parse()
                .map_err(|e: String| invalid(file, line_of(text, t.span().start), "thresholds", e))
        })
        .collect()
}

/// Command-line values replace what the file says before anything is checked, so the usual
/// checks (and the usual rounding of shares) apply to them.
fn apply_to_raw(raw: &mut RawFleet, overrides: &Overrides) {
    let load = raw.load.get_mut();
    if let Some(rate) = overrides.rate {
        // The stages' total stays the total.
        let staged = load
            .stages
            .take()
            .and_then(|s| s.last().map(|s| s.get_ref().target));
        load.clients = load.clients.or(staged);
        load.rate = Some(rate);
    }
    if let Some(clients) = overrides.clients {
        let last = load
            .stages
            .as_ref()
            .and_then(|s| s.last())
            .map(|s| s.get_ref().target);
        if let (Some(stages), Some(last)) = (load.stages.as_mut(), last.filter(|l| *l > 0)) {
            // Same shape, scaled to the new total.
            for stage in stages {
                let target = &mut stage.get_mut().target;
                *target = (u128::from(*target) * u128::from(clients) / u128::from(last)) as u64;
            }
        }
        load.clients = Some(clients);
    }
    if let Some(seed) = overrides.seed {
        match raw.client.as_mut() {
            Some(client) => client.get_mut().seed = Some(seed),
            None => {
                raw.client = Some(Spanned::new(
                    0..0,
                    RawClient {
                        seed: Some(seed),
                        ..RawClient::default()
                    },
                ));
            }
        }
        for pop in &mut raw.population {
            if let Some(client) = pop.get_mut().client.as_mut() {
                let client = client.get_mut();
                if client.seed.is_some() {
                    client.seed = Some(seed);
                }
            }
        }
    }
}

/// Over TCP a client announces binding `T`, which `LwM2M` 1.0 does not have.
fn check_tcp_binding(config: &ClientConfig, at: &At) -> Result<(), FleetError> {
    if config.version < LwM2mVersion::V1_1 {
        return Err(at.err(
            "lwm2m",
            "CoAP over TCP is LwM2M 1.1 binding T: set lwm2m = \"1.1\" or \"1.2\"",
        ));
    }
    if !config.binding.contains('T') {
        return Err(at.err(
            "binding",
            format!(
                "{:?} over a coap+tcp:// or coaps+tcp:// server: the binding must have T",
                config.binding
            ),
        ));
    }
    Ok(())
}

/// `base` with the fields `raw` gives, each checked.
fn settings(raw: &RawClient, base: &ClientConfig, at: &At) -> Result<ClientConfig, FleetError> {
    let mut c = base.clone();
    let duration = |field: &str, v: &Option<String>, into: &mut Duration| {
        if let Some(text) = v {
            *into = parse_duration(text).map_err(|e| at.err(field, e.to_string()))?;
        }
        Ok::<_, FleetError>(())
    };
    duration("lifetime", &raw.lifetime, &mut c.lifetime)?;
    duration("awake_window", &raw.awake_window, &mut c.awake_window)?;
    duration("reboot_time", &raw.reboot_time, &mut c.reboot_time)?;
    duration(
        "block1_idle_timeout",
        &raw.block1_idle_timeout,
        &mut c.block1_idle_timeout,
    )?;
    if let Some(v) = &raw.accept_requests {
        c.accept_requests = match v.as_str() {
            "server" => AcceptRequests::Server,
            "server-host" => AcceptRequests::ServerHost,
            "any" => AcceptRequests::Any,
            _ => {
                return Err(at.err(
                    "accept_requests",
                    format!("{v:?}: expected \"server\", \"server-host\" or \"any\""),
                ));
            }
        };
    }
    if let Some(size) = raw.block1_max_size {
        if !(16..=MAX_BLOCK1_SIZE).contains(&size) {
            return Err(at.err(
                "block1_max_size",
                format!("{size}: must be 16 to {MAX_BLOCK1_SIZE} bytes (64 MiB)"),
            ));
        }
        c.block1_max_body = usize::try_from(size).unwrap_or(usize::MAX);
    }
    if let Some(n) = raw.max_observations {
        if !(1..=MAX_OBSERVATIONS).contains(&n) {
            return Err(at.err(
                "max_observations",
                format!("{n}: must be 1 to {MAX_OBSERVATIONS}"),
            ));
        }
        c.max_observations = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(v) = &raw.lwm2m {
        c.version = match v.as_str() {
            "1.0" => LwM2mVersion::V1_0,
            "1.1" => LwM2mVersion::V1_1,
            "1.2" => LwM2mVersion::V1_2,
            _ => {
                return Err(at.err(
                    "lwm2m",
                    format!("{v:?}: expected \"1.0\", \"1.1\" or \"1.2\""),
                ));
            }
        };
    }
    if let Some(b) = &raw.binding {
        // Queue mode is its own setting; `Q` is derived from it for 1.0.
        if b.is_empty() || !b.chars().all(|ch| "UTSN".contains(ch)) {
            return Err(at.err("binding", format!("{b:?}: use letters of U, T, S, N")));
        }
        c.binding.clone_from(b);
    }
    c.queue_mode = raw.queue_mode.unwrap_or(c.queue_mode);
    c.update_fraction = raw.update_fraction.unwrap_or(c.update_fraction);
    c.update_jitter = raw.update_jitter.unwrap_or(c.update_jitter);
    c.confirmable_notifications = raw
        .confirmable_notifications
        .unwrap_or(c.confirmable_notifications);
    if let Some(firmware) = &raw.firmware {
        c.firmware = super::firmware::firmware(firmware, &c.firmware, at)?;
    }
    check_settings(&c, at)?;
    Ok(c)
}

fn check_settings(c: &ClientConfig, at: &At) -> Result<(), FleetError> {
    if c.lifetime < MIN_LIFETIME {
        return Err(at.err("lifetime", format!("at least {}s", MIN_LIFETIME.as_secs())));
    }
    if !(c.update_fraction > 0.0 && c.update_fraction <= 1.0) {
        return Err(at.err(
            "update_fraction",
            crate::plain::not_a_share(c.update_fraction, false),
        ));
    }
    if !(0.0..0.5).contains(&c.update_jitter) || c.update_fraction + c.update_jitter > 1.0 {
        return Err(at.err(
            "update_jitter",
            "must be from 0 to less than 0.5, with update_fraction + update_jitter at most 1",
        ));
    }
    if !(0.0..=1.0).contains(&c.confirmable_notifications) {
        return Err(at.err(
            "confirmable_notifications",
            crate::plain::not_a_share(c.confirmable_notifications, true),
        ));
    }
    if c.block1_idle_timeout.is_zero() {
        return Err(at.err("block1_idle_timeout", "must be more than 0s"));
    }
    if c.queue_mode && c.awake_window.is_zero() {
        return Err(at.err("awake_window", "must be more than 0s in queue mode"));
    }
    Ok(())
}

fn population(
    pop: &Spanned<RawPopulation>,
    defaults: &ClientConfig,
    seed: u64,
    network: NetworkConditions,
    at: &At,
    file: &str,
    text: &str,
) -> Result<Group, FleetError> {
    let raw = pop.get_ref();
    if raw.name.trim().is_empty() {
        return Err(at.err("name", "must not be empty"));
    }
    let (mut config, group_seed) = group_config(raw, defaults, seed, file, text)?;
    config.send = send::send(raw.send.as_ref(), config.version, at, file, text)?;
    let network = match &raw.network {
        Some(table) => {
            let table_at = At {
                file,
                text,
                span: table.span(),
            };
            network::conditions(table.get_ref(), network, &table_at)?
        }
        None => network,
    };
    let values = raw
        .values
        .iter()
        .map(|(path, v)| {
            let vat = At {
                file,
                text,
                span: v.span(),
            };
            let line = vat.line();
            let parsed: Path = path
                .parse()
                .ok()
                .filter(|p: &Path| p.len() == 3)
                .ok_or_else(|| {
                    invalid(
                        file,
                        line,
                        path,
                        "expected a resource path /object/instance/resource",
                    )
                })?;
            let v = v.get_ref();
            if v.value.is_some() == v.generator.is_some() {
                return Err(invalid(
                    file,
                    line,
                    path,
                    "give `value` or `generator` (one of them)",
                ));
            }
            Ok(ValueOverride {
                path: parsed,
                value: v.value.clone(),
                generator: v.generator.clone(),
                line,
            })
        })
        .collect::<Result<_, FleetError>>()?;
    Ok(Group {
        name: raw.name.clone(),
        count: 0,
        template: raw.template.clone(),
        behaviour: behaviour(raw, at)?,
        config: Arc::new(config),
        seed: group_seed,
        network,
        values,
        template_line: at.key_line("template"),
        send_line: raw
            .send
            .as_ref()
            .map_or(0, |s| line_of(text, s.span().start)),
    })
}

/// The fleet defaults with the population's `[population.client]` overrides.
fn group_config(
    raw: &RawPopulation,
    defaults: &ClientConfig,
    seed: u64,
    file: &str,
    text: &str,
) -> Result<(ClientConfig, u64), FleetError> {
    let sleepy = raw.behaviour == RawBehaviour::Sleepy;
    let Some(client) = &raw.client else {
        let mut config = defaults.clone();
        config.queue_mode |= sleepy;
        return Ok((config, seed));
    };
    let at = At {
        file,
        text,
        span: client.span(),
    };
    let c = client.get_ref();
    for (field, given) in [
        ("endpoint_prefix", c.endpoint_prefix.is_some()),
        ("width", c.width.is_some()),
        ("start", c.start.is_some()),
    ] {
        if given {
            return Err(at.err(field, "endpoint naming is fleet-wide: set it in [client]"));
        }
    }
    if sleepy && c.queue_mode == Some(false) {
        return Err(at.err("queue_mode", "a sleepy population runs in queue mode"));
    }
    let mut config = settings(c, defaults, &at)?;
    config.queue_mode |= sleepy;
    check_settings(&config, &at)?;
    Ok((config, c.seed.unwrap_or(seed)))
}

fn behaviour(raw: &RawPopulation, at: &At) -> Result<Behaviour, FleetError> {
    let duration = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|text| parse_duration(text).map_err(|e| at.err(field, e.to_string())))
            .transpose()
    };
    let every = duration("churn_every", &raw.churn_every)?;
    let jitter = duration("churn_jitter", &raw.churn_jitter)?;
    if raw.behaviour != RawBehaviour::Churn {
        if every.is_some() || jitter.is_some() {
            let field = if every.is_some() {
                "churn_every"
            } else {
                "churn_jitter"
            };
            return Err(at.err(field, "only for behaviour = \"churn\""));
        }
        return Ok(match raw.behaviour {
            RawBehaviour::Sleepy => Behaviour::Sleepy,
            _ => Behaviour::AlwaysOn,
        });
    }
    let every = every
        .filter(|e| !e.is_zero())
        .ok_or_else(|| at.err("churn_every", "a churn population needs churn_every > 0s"))?;
    let jitter = jitter.unwrap_or_default();
    if jitter >= every {
        return Err(at.err("churn_jitter", "must be less than churn_every"));
    }
    Ok(Behaviour::Churn { every, jitter })
}

/// The ramp, and the total its stages reach (if staged).
fn ramp(load: &RawLoad, at: &At, text: &str) -> Result<(Ramp, Option<u64>), FleetError> {
    match (load.rate, &load.stages) {
        (Some(_), Some(_)) => Err(at.err("stages", "give `rate` or `stages`, not both")),
        (None, None) => Err(at.err("rate", "give `rate` (clients/s) or `stages`")),
        (Some(rate), None) => {
            if rate.is_finite() && rate > 0.0 {
                Ok((Ramp::Rate(rate), None))
            } else {
                Err(at.err("rate", "must be more than 0 clients/s"))
            }
        }
        (None, Some(raw)) => {
            if raw.is_empty() {
                return Err(at.err("stages", "give at least one stage"));
            }
            let mut stages = Vec::new();
            let mut previous = 0;
            for stage in raw {
                let sat = At {
                    file: at.file,
                    text,
                    span: stage.span(),
                };
                let s = stage.get_ref();
                let over = parse_duration(&s.over).map_err(|e| sat.err("over", e.to_string()))?;
                if s.target < previous {
                    return Err(sat.err("target", "ramping down is not supported yet"));
                }
                previous = s.target;
                stages.push(Stage {
                    target: s.target,
                    over,
                });
            }
            if previous == 0 {
                return Err(at.err("stages", "the last stage must start at least one client"));
            }
            Ok((Ramp::Stages(stages), Some(previous)))
        }
    }
}

/// The total number of clients: `clients`, the last stage's target, or the sum of counts.
fn total(
    clients: Option<u64>,
    staged: Option<u64>,
    pops: &[Spanned<RawPopulation>],
    at: &At,
) -> Result<u64, FleetError> {
    let counts: Option<u64> = pops.iter().map(|p| p.get_ref().count).sum();
    match (clients, staged) {
        (Some(c), Some(s)) if c != s => Err(at.err(
            "clients",
            format!("{c} clients but the last stage's target is {s}"),
        )),
        (Some(0), _) => Err(at.err("clients", format!("{AT_LEAST_ONE}, found 0"))),
        (Some(c), _) => Ok(c),
        (None, Some(s)) => Ok(s),
        (None, None) => counts
            .filter(|n| *n > 0)
            .ok_or_else(|| at.err("clients", "give the total number of clients")),
    }
}

/// Sets each group's count: `count` as given, `share` of `clients` by largest remainder.
fn assign_counts<'t>(
    groups: &mut [Group],
    pops: &[Spanned<RawPopulation>],
    clients: u64,
    at: impl Fn(std::ops::Range<usize>) -> At<'t>,
) -> Result<(), FleetError> {
    let mut shares = Vec::new();
    for (i, pop) in pops.iter().enumerate() {
        let raw = pop.get_ref();
        match (raw.count, raw.share) {
            (Some(_), Some(_)) => {
                return Err(at(pop.span()).err("share", "give `count` or `share`, not both"));
            }
            (None, None) => return Err(at(pop.span()).err("count", "give `count` or `share`")),
            (Some(0), None) => {
                return Err(at(pop.span()).err("count", format!("{AT_LEAST_ONE}, found 0")));
            }
            (Some(n), None) => groups[i].count = n,
            (None, Some(s)) if !(s > 0.0 && s <= 1.0) => {
                return Err(at(pop.span()).err("share", crate::plain::not_a_share(s, false)));
            }
            (None, Some(s)) => shares.push((i, s)),
        }
    }
    let share_sum: f64 = shares.iter().map(|(_, s)| s).sum();
    if share_sum > 1.0 + 1e-9 {
        return Err(at(pops[0].span()).err(
            "population",
            format!(
                "the populations' shares add up to {}, more than 1: {}",
                round_share(share_sum),
                describe_parts(pops, None)
            ),
        ));
    }
    let exact: Vec<f64> = shares.iter().map(|(_, s)| s * clients as f64).collect();
    let mut floors: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let target = (share_sum * clients as f64).round() as u64;
    let mut order: Vec<usize> = (0..shares.len()).collect();
    // Largest fractional part first; ties go to the earlier population.
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
    });
    let missing = target.saturating_sub(floors.iter().sum());
    for k in order.iter().take(missing as usize) {
        floors[*k] += 1;
    }
    for ((i, _), n) in shares.iter().zip(floors) {
        if n == 0 {
            return Err(at(pops[*i].span()).err("share", format!("gives 0 of {clients} clients")));
        }
        groups[*i].count = n;
    }
    let sum: u64 = groups.iter().map(|g| g.count).sum();
    if sum != clients {
        let fix = if shares.len() == pops.len() {
            "make the shares add up to 1".to_string()
        } else {
            format!("make the counts and shares add up to the {clients} clients")
        };
        return Err(at(pops[0].span()).err(
            "population",
            format!(
                "the populations make {sum} clients, not the {clients} of [load] clients: {}; \
                 {fix}",
                describe_parts(pops, Some(groups))
            ),
        ));
    }
    Ok(())
}

/// Each population's name and count or share (and the clients a share gave): `"sensors" share
/// 0.5 (5 clients) + "meters" count 4`.
fn describe_parts(pops: &[Spanned<RawPopulation>], groups: Option<&[Group]>) -> String {
    let parts: Vec<String> = pops
        .iter()
        .enumerate()
        .map(|(i, pop)| {
            let raw = pop.get_ref();
            match (raw.count, raw.share) {
                (Some(n), _) => format!("{:?} count {n}", raw.name),
                (None, Some(s)) => {
                    let gave = groups
                        .map(|g| format!(" ({} clients)", g[i].count))
                        .unwrap_or_default();
                    format!("{:?} share {s}{gave}", raw.name)
                }
                (None, None) => format!("{:?}", raw.name),
            }
        })
        .collect();
    parts.join(" + ")
}

/// A sum of shares as written, without float noise (0.30000000000000004 is 0.3).
fn round_share(sum: f64) -> f64 {
    (sum * 1e9).round() / 1e9
}
