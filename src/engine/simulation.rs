//! The engine on the caller's thread under a simulated clock, over a transport the caller
//! provides (a simulated network): the same shard loop as a real run (the ramp, churn and its
//! restarts, queue mode, the stop), with time that moves only as the shard waits on the
//! transport. For soak tests: a day of a fleet's life in minutes, the same on every run.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::shard::{Setup, Shard, Timebase};
use super::{Control, EngineConfig, EngineError, Layout, client_configs, plan_layout};
use crate::clock::{Instant, SimulatedClock};
use crate::fleet::Plan;
use crate::metrics::Snapshot;
use crate::model::DeviceTemplate;
use crate::transport::{Transport, TransportError};

/// Device clocks (the Current Time resource) start at this Unix time, so runs repeat exactly.
const UNIX_ORIGIN: i64 = 1_700_000_000;

/// One shard running a whole plan on the caller's thread.
pub struct Simulation<T: Transport> {
    shard: Shard,
    transport: T,
    control: Arc<Control>,
    published: Arc<Mutex<Snapshot>>,
    layout: Arc<Layout>,
    finished: bool,
}

impl<T: Transport> Simulation<T> {
    /// Every client of `plan` on one shard, from the addresses and ports `config` names (no
    /// socket is opened: `transport` carries the datagrams), on `clock`, which `transport` is
    /// expected to advance when the shard waits on it. The ramp starts at `Instant::ZERO`.
    pub fn new(
        plan: Plan,
        templates: Vec<Arc<DeviceTemplate>>,
        config: &EngineConfig,
        clock: SimulatedClock,
        transport: T,
    ) -> Result<Self, EngineError> {
        if templates.len() != plan.groups.len() {
            return Err(EngineError::Templates {
                groups: plan.groups.len(),
                templates: templates.len(),
            });
        }
        let one_shard = EngineConfig {
            shards: 1,
            ..config.clone()
        };
        let layout = Arc::new(plan_layout(&plan, &one_shard)?);
        let control = Arc::new(Control::default());
        let published = Arc::new(Mutex::new(Snapshot::default()));
        let configs = client_configs(&plan, config);
        if let Some(tap) = &config.trace {
            let origin = UNIX_ORIGIN.unsigned_abs();
            tap.set_origin(std::time::UNIX_EPOCH + std::time::Duration::from_secs(origin));
        }
        let shard = Shard::new(Setup {
            index: 0,
            plan: Arc::new(plan),
            templates: templates.into(),
            configs,
            layout: Arc::clone(&layout),
            control: Arc::clone(&control),
            published: Arc::clone(&published),
            clock: Timebase::Simulated(clock),
            unix_origin: UNIX_ORIGIN,
            loopback_only: config.server.ip().is_loopback(),
            credentials: config.credentials.clone(),
            trace: config.trace.clone(),
        });
        Ok(Simulation {
            shard,
            transport,
            control,
            published,
            layout,
            finished: false,
        })
    }

    /// Runs until the clock reaches `until` or the schedule ends; returns whether it has ended
    /// (every client stopped, or the stop timeout passed). The counts are published on return.
    pub fn run_until(&mut self, until: Instant) -> Result<bool, TransportError> {
        if !self.finished {
            self.finished = self.shard.run_until(&mut self.transport, Some(until))?;
        }
        Ok(self.finished)
    }

    /// Everything counted up to the last return of [`Simulation::run_until`].
    pub fn snapshot(&self) -> Snapshot {
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Begins the stop at the next round, as Ctrl-C does in a real run.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Release);
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}
