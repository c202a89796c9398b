//! A fleet expanded into who starts when: computed per client on demand, so a plan for a million
//! clients is a few groups and a formula.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Behaviour, Fleet, Naming, NetworkConditions, Ramp, ServerUri, Slice, format_duration};
use crate::client::{ClientBootstrapConfig, ClientConfig};

/// One population's share of the plan: clients `first..first + count`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPlan {
    pub name: String,
    pub template: String,
    pub behaviour: Behaviour,
    pub first: u64,
    pub count: u64,
    pub config: Arc<ClientConfig>,
    pub seed: u64,
    /// The emulated link of this population's clients.
    pub network: NetworkConditions,
}

impl GroupPlan {
    pub fn range(&self) -> std::ops::Range<u64> {
        self.first..self.first + self.count
    }
}

/// One client of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedClient {
    pub endpoint: String,
    pub group: usize,
    /// When it starts, from the beginning of the run.
    pub start: Duration,
}

/// The expanded fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub file: String,
    pub server: Option<ServerUri>,
    /// Clients bootstrap first: `server` is a bootstrap server.
    pub bootstrap: Option<ClientBootstrapConfig>,
    pub clients: u64,
    pub naming: Naming,
    pub groups: Vec<GroupPlan>,
    pub ramp: Ramp,
    pub hold: Duration,
    pub stop_timeout: Duration,
    /// From the command line: when to stop, replacing ramp + hold.
    pub duration: Option<Duration>,
    /// The clients this process runs (`--shard K/N`); the rest of the plan is the whole fleet's.
    pub slice: Slice,
    /// Firmware campaigns of the embedded server.
    pub campaigns: Vec<crate::server::CampaignConfig>,
}

/// What one stage of the ramp starts (a rate ramp is one stage), and this shard's part of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageShare {
    /// Start slots `from..to` of the fleet.
    pub from: u64,
    pub to: u64,
    pub over: Duration,
    /// Of the clients starting in this stage, how many are the slice's.
    pub mine: u64,
}

impl StageShare {
    /// Clients per second the slice starts in this stage (infinite for an instant stage).
    pub fn rate(&self) -> f64 {
        self.mine as f64 / self.over.as_secs_f64()
    }
}

/// `--shard K/N` leaves this process nothing to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--shard {slice}: a fleet of {clients} clients has no client for shard {index}: \
     run at most {clients} shards",
    index = slice.index()
)]
pub struct EmptySlice {
    pub slice: Slice,
    pub clients: u64,
}

impl Plan {
    pub(super) fn new(fleet: &Fleet) -> Plan {
        let mut first = 0;
        let groups = fleet
            .groups
            .iter()
            .map(|g| {
                let plan = GroupPlan {
                    name: g.name.clone(),
                    template: g.template.clone(),
                    behaviour: g.behaviour,
                    first,
                    count: g.count,
                    config: Arc::clone(&g.config),
                    seed: g.seed,
                    network: g.network,
                };
                first += g.count;
                plan
            })
            .collect();
        Plan {
            file: fleet.file.clone(),
            server: fleet.server.clone(),
            bootstrap: fleet.bootstrap.clone(),
            clients: fleet.clients,
            naming: fleet.naming.clone(),
            groups,
            ramp: fleet.load.ramp.clone(),
            hold: fleet.load.hold,
            stop_timeout: fleet.load.stop_timeout,
            duration: fleet.load.duration,
            slice: Slice::WHOLE,
            campaigns: fleet.campaigns.clone(),
        }
    }

    /// The same plan with this process running `slice` of it.
    pub fn with_slice(self, slice: Slice) -> Result<Plan, EmptySlice> {
        if slice.len(self.clients) == 0 {
            return Err(EmptySlice {
                slice,
                clients: self.clients,
            });
        }
        Ok(Plan { slice, ..self })
    }

    /// Clients this process runs.
    pub fn slice_clients(&self) -> u64 {
        self.slice.len(self.clients)
    }

    /// What defines the load, as text: the same for every shard of one test (the slice and the
    /// fleet file's name are not part of it), different when a count, seed, rate, template
    /// setting or the server differs.
    pub fn load_definition(&self) -> String {
        let whole = Plan {
            file: String::new(),
            slice: Slice::WHOLE,
            ..self.clone()
        };
        format!("{whole:?}")
    }

    /// Each stage of the ramp (a rate ramp is one) with the slice's part of it.
    pub fn stage_shares(&self) -> Vec<StageShare> {
        let share = |from: u64, to: u64, over| StageShare {
            from,
            to,
            over,
            mine: self.slice_starts(from, to),
        };
        match &self.ramp {
            Ramp::Rate(_) => vec![share(0, self.clients, self.ramp_duration())],
            Ramp::Stages(stages) => {
                let mut from = 0;
                stages
                    .iter()
                    .map(|stage| {
                        let to = stage.target.clamp(from, self.clients);
                        let s = share(from, to, stage.over);
                        from = to;
                        s
                    })
                    .collect()
            }
        }
    }

    /// How many of the slice's clients have a start slot in `from..to`.
    fn slice_starts(&self, from: u64, to: u64) -> u64 {
        (0..self.groups.len())
            .map(|g| {
                let first = self.groups[g].first;
                let (a, b) = (self.started_before(g, from), self.started_before(g, to));
                self.slice.count_in(first + a..first + b)
            })
            .sum()
    }

    /// How many clients of group `g` have a start slot below `slot` (slots grow with the index
    /// within a group).
    fn started_before(&self, g: usize, slot: u64) -> u64 {
        let group = &self.groups[g];
        let (mut low, mut high) = (0, group.count);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.start_slot(group.first + mid).unwrap_or(u64::MAX) < slot {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Client `index` (0-based): its endpoint, group and start time; `None` past the end.
    pub fn client(&self, index: u64) -> Option<PlannedClient> {
        let group = self.group_of(index)?;
        let slot = self.start_slot(index)?;
        Some(PlannedClient {
            endpoint: self.naming.endpoint(index),
            group,
            start: self.start_offset(slot),
        })
    }

    /// The group index holding client `index`.
    pub fn group_of(&self, index: u64) -> Option<usize> {
        self.groups.iter().position(|g| g.range().contains(&index))
    }

    pub fn config(&self, index: u64) -> Option<&Arc<ClientConfig>> {
        self.group_of(index).map(|g| &self.groups[g].config)
    }

    /// The position of client `index` in the start order. Groups are interleaved by weight
    /// (client j of a group of n sits at (j + ½)/n, ties to the earlier group) so every stage of
    /// the ramp starts the same mix of devices.
    pub fn start_slot(&self, index: u64) -> Option<u64> {
        let g = self.group_of(index)?;
        let own = &self.groups[g];
        let j = index - own.first;
        let c_g = u128::from(own.count);
        let mut slot = j;
        for (h, other) in self.groups.iter().enumerate() {
            if h == g {
                continue;
            }
            let c_h = u128::from(other.count);
            let x = (2 * u128::from(j) + 1) * c_h;
            let q = if h < g { x / c_g } else { (x - 1) / c_g };
            let before = if q == 0 { 0 } else { (q - 1) / 2 + 1 };
            slot += before.min(c_h) as u64;
        }
        Some(slot)
    }

    /// When the `slot`-th client (0-based, in start order) starts.
    pub fn start_offset(&self, slot: u64) -> Duration {
        match &self.ramp {
            Ramp::Rate(rate) => Duration::from_secs_f64(slot as f64 / rate),
            Ramp::Stages(stages) => {
                let mut previous = 0;
                let mut t = Duration::ZERO;
                for stage in stages {
                    if slot < stage.target {
                        // Linear within the stage: slot `previous` at its start.
                        let done = u128::from(slot - previous);
                        let span = u128::from(stage.target - previous);
                        let nanos = stage.over.as_nanos() * done / span;
                        return t + Duration::from_nanos(nanos as u64);
                    }
                    previous = stage.target;
                    t += stage.over;
                }
                t
            }
        }
    }

    /// Time from the first start to the end of the ramp.
    pub fn ramp_duration(&self) -> Duration {
        match &self.ramp {
            Ramp::Rate(rate) => Duration::from_secs_f64(self.clients as f64 / rate),
            Ramp::Stages(stages) => stages.iter().map(|s| s.over).sum(),
        }
    }

    /// Clients told to stop per second: the ramp's fastest rate, but fast enough to be done
    /// in half the stop timeout.
    pub fn stop_rate(&self) -> f64 {
        let ramp = match &self.ramp {
            Ramp::Rate(rate) => *rate,
            Ramp::Stages(stages) => {
                let mut previous = 0;
                let mut fastest: f64 = 0.0;
                for s in stages {
                    let started = s.target.saturating_sub(previous) as f64;
                    previous = s.target;
                    fastest = fastest.max(if s.over.is_zero() {
                        f64::INFINITY
                    } else {
                        started / s.over.as_secs_f64()
                    });
                }
                fastest
            }
        };
        let needed = self.clients as f64 / (self.stop_timeout.as_secs_f64() / 2.0).max(1e-3);
        ramp.max(needed)
    }

    /// When clients are told to stop, from the first start: after ramp and hold, or at the
    /// command line's `--duration`.
    pub fn stop_at(&self) -> Duration {
        self.duration
            .unwrap_or_else(|| self.ramp_duration() + self.hold)
    }

    /// Until the stop, plus the longest the stop may take.
    pub fn total_duration(&self) -> Duration {
        self.stop_at() + self.stop_timeout
    }
}

impl Plan {
    /// `K/N: C clients (first .. last, every N from client K)`; `None` for the whole fleet.
    pub fn describe_slice(&self) -> Option<String> {
        if self.slice.is_whole() {
            return None;
        }
        let count = self.slice_clients();
        let first = self.slice.client(0);
        let last = self.slice.client(count.saturating_sub(1));
        Some(format!(
            "{}: {count} clients ({} .. {}, every {} from client {})",
            self.slice,
            self.naming.endpoint(first),
            self.naming.endpoint(last),
            self.slice.count(),
            self.slice.index()
        ))
    }

    /// The shard's clients, and the ramp with the shard's part of each stage.
    fn fmt_ramp(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(slice) = self.describe_slice() {
            writeln!(f, "  shard     {slice}")?;
        }
        let shares = self.stage_shares();
        let share = |i: usize| match shares.get(i) {
            Some(s) if !self.slice.is_whole() => {
                format!("; this shard {} at {:.1}/s", s.mine, s.rate())
            }
            _ => String::new(),
        };
        match &self.ramp {
            Ramp::Rate(rate) => writeln!(
                f,
                "  ramp      {rate} clients/s over {}{}",
                format_duration(self.ramp_duration()),
                share(0)
            )?,
            Ramp::Stages(stages) => {
                let mut from = 0;
                for (i, s) in stages.iter().enumerate() {
                    writeln!(
                        f,
                        "  stage     {from} -> {} over {}{}",
                        s.target,
                        format_duration(s.over),
                        share(i)
                    )?;
                    from = s.target;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fleet {}", self.file)?;
        match (&self.server, &self.bootstrap) {
            (Some(uri), None) => writeln!(f, "  server    {uri}")?,
            (None, None) => writeln!(f, "  server    embedded")?,
            (Some(uri), Some(_)) => writeln!(f, "  server    {uri} (a bootstrap server)")?,
            (None, Some(_)) => writeln!(
                f,
                "  server    embedded (a bootstrap server, and the LWM2M server it sends clients to)"
            )?,
        }
        if let Some(b) = &self.bootstrap {
            writeln!(f, "  bootstrap {}", super::bootstrap::describe(b))?;
        }
        let last = self.clients.saturating_sub(1);
        writeln!(
            f,
            "  clients   {} ({} .. {})",
            self.clients,
            self.naming.endpoint(0),
            self.naming.endpoint(last)
        )?;
        for g in &self.groups {
            let c = &g.config;
            let end = g.first + g.count - 1;
            writeln!(
                f,
                "  group {:?}: {} x {} ({}), clients {}..={} ({} .. {})",
                g.name,
                g.count,
                g.template,
                g.behaviour,
                g.first,
                end,
                self.naming.endpoint(g.first),
                self.naming.endpoint(end)
            )?;
            writeln!(
                f,
                "    lwm2m {}, lifetime {}, binding {}{}, CON notifications {:.0}%, seed {}",
                c.version.as_str(),
                format_duration(c.lifetime),
                c.binding,
                if c.queue_mode {
                    format!(", queue mode (awake {})", format_duration(c.awake_window))
                } else {
                    String::new()
                },
                c.confirmable_notifications * 100.0,
                g.seed
            )?;
            if let Some(send) = &c.send {
                writeln!(f, "    {}", super::send::describe(send))?;
            }
            if !g.network.is_clear() {
                writeln!(f, "    network: {}", g.network)?;
            }
        }
        self.fmt_ramp(f)?;
        match self.duration {
            Some(d) => writeln!(
                f,
                "  duration  {} (from the command line)",
                format_duration(d)
            )?,
            None => writeln!(f, "  hold      {}", format_duration(self.hold))?,
        }
        writeln!(
            f,
            "  stop      at {}, de-registered within {}; total at most {}",
            format_duration(self.stop_at()),
            format_duration(self.stop_timeout),
            format_duration(self.total_duration())
        )
    }
}
