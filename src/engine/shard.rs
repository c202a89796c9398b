//! One shard: a thread's loop over its clients, its timer queue and its sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::emulation::{Emulation, InFlight, Passage};
use super::timers::{ClientTimerKind, ClientTimers};
use super::{Control, Layout, MAX_IDLE, mix};
use crate::client::{Client, ClientConfig, ClientState, Event, LinkClosed, LinkCommand};
use crate::clock::{Instant, SimulatedClock};
use crate::fleet::{Behaviour, Plan};
use crate::metrics::{Recorder, Snapshot};
use crate::model::{Device, DeviceTemplate};
use crate::security::CredentialSource;
use crate::trace::{Direction, ShardTrace, TraceTap};
use crate::transport::{LinkEnded, OutgoingDatagram, RecvBuffers, Transport, TransportError};

/// Datagrams per receive or send batch.
const BATCH: usize = 64;
/// Largest datagram accepted; longer ones are counted as truncated and dropped.
const MAX_DATAGRAM: usize = 2048;
/// Work done between two looks at the sockets, so a burst of starts or timers cannot starve
/// the receive path (and the server's answers wait in the socket buffer meanwhile).
const STARTS_PER_ROUND: usize = 512;
const TIMERS_PER_ROUND: usize = 4096;
const STOPS_PER_ROUND: usize = 512;
/// How often a shard copies its counters out (the only lock it takes).
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// While a churned client's De-register is still out, look again this much later.
const RESTART_RETRY: Duration = Duration::from_secs(1);

/// What a shard is given at start.
pub(super) struct Setup {
    pub index: u64,
    pub plan: Arc<Plan>,
    pub templates: Arc<[Arc<DeviceTemplate>]>,
    /// Each group's client settings, with the server address filled in.
    pub configs: Arc<[Arc<ClientConfig>]>,
    pub layout: Arc<Layout>,
    pub control: Arc<Control>,
    pub published: Arc<Mutex<Snapshot>>,
    pub clock: Timebase,
    pub unix_origin: i64,
    /// The server is on loopback: datagrams from other hosts are dropped (shared sockets are
    /// bound to the wildcard address, so they could arrive).
    pub loopback_only: bool,
    pub credentials: Option<Arc<dyn CredentialSource>>,
    pub trace: Option<TraceTap>,
}

impl Setup {
    /// The plan group (population) of this thread's client `local`.
    fn group_of(&self, local: usize) -> usize {
        let k = self.layout.client_index(self.index, local as u64);
        self.plan.group_of(k).unwrap_or_default()
    }
}

/// Where a shard's time comes from.
pub(super) enum Timebase {
    /// The wall clock, since the run's origin.
    Real(std::time::Instant),
    /// A clock the caller moves (a simulated network does, as the shard waits on it).
    Simulated(SimulatedClock),
}

impl Timebase {
    fn now(&self) -> Instant {
        match self {
            Timebase::Real(origin) => Instant::ZERO + origin.elapsed(),
            Timebase::Simulated(clock) => clock.now(),
        }
    }

    /// How often the shard copies its counters out. A simulation's caller reads them only when
    /// `run_until` returns, which publishes: copying the histograms five times a simulated
    /// second would be most of its work.
    fn publish_every(&self) -> Duration {
        match self {
            Timebase::Real(_) => PUBLISH_EVERY,
            Timebase::Simulated(_) => Duration::MAX,
        }
    }
}

struct Stopping {
    began: Instant,
    deadline: Instant,
    /// Clients told to stop per second on this shard.
    rate: f64,
    /// Clients before this local index were told to stop.
    cursor: usize,
}

pub(super) struct Shard {
    setup: Setup,
    clients: Vec<Option<Client>>,
    /// Each client's state as last counted, so a change is counted once.
    states: Vec<Option<ClientState>>,
    /// How many times each client was restarted after churning (varies its seed).
    incarnations: Vec<u16>,
    /// (start time µs, local index), in start order.
    starts: Vec<(u64, u32)>,
    next_start: usize,
    timers: ClientTimers,
    recorder: Recorder,
    /// Datagrams to send: (from, to, bytes).
    outbox: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Stream clients' connection commands, in order: (client endpoint, command).
    links: Vec<(SocketAddr, LinkCommand)>,
    stopping: Option<Stopping>,
    /// Where the start schedule is: real time scaled by the start speed.
    schedule: Instant,
    schedule_synced: Instant,
    /// The socket buffer was full this round.
    send_blocked: bool,
    /// How long the client being handled took with its datagram.
    handling: Option<Duration>,
    /// Queue mode: clients awake since (until the server's first request or the next sleep).
    woke: HashMap<u32, Instant>,
    rng: SmallRng,
    /// The emulated link (`[network]`); `None` when every population's is clear.
    emulation: Option<Box<Emulation>>,
    /// `--trace`: which clients are traced and their datagrams since the last hand-over;
    /// `None` without `--trace`, so untraced runs pay one test per datagram.
    trace: Option<Box<ShardTrace>>,
}

impl Shard {
    pub(super) fn new(setup: Setup) -> Shard {
        let count = setup.layout.shard_clients(setup.index) as usize;
        let mut starts: Vec<(u64, u32)> = (0..count as u64)
            .map(|local| {
                let k = setup.layout.client_index(setup.index, local);
                let slot = setup.plan.start_slot(k).unwrap_or(k);
                let at = setup.plan.start_offset(slot);
                ((Instant::ZERO + at).as_micros(), local as u32)
            })
            .collect();
        starts.sort_unstable();
        let rng = SmallRng::seed_from_u64(mix(setup.index, 0x5eed));
        Shard {
            clients: (0..count).map(|_| None).collect(),
            states: vec![None; count],
            incarnations: vec![0; count],
            starts,
            next_start: 0,
            timers: ClientTimers::new(count),
            recorder: Recorder::new(),
            outbox: Vec::new(),
            links: Vec::new(),
            stopping: None,
            schedule: Instant::ZERO,
            schedule_synced: Instant::ZERO,
            send_blocked: false,
            handling: None,
            woke: HashMap::new(),
            rng,
            emulation: Emulation::new(&setup.plan, setup.index).map(Box::new),
            trace: setup
                .trace
                .clone()
                .map(|tap| Box::new(ShardTrace::new(tap))),
            setup,
        }
    }

    fn now(&self) -> Instant {
        self.setup.clock.now()
    }

    /// Runs the fleet's schedule to its end: ramp, hold, stop. On a socket error the shard
    /// ends what its clients still had out as aborted (nothing more can be sent or received),
    /// publishes what it counted, then returns the error.
    pub(super) fn run<T: Transport>(mut self, mut transport: T) -> Result<(), TransportError> {
        self.run_until(&mut transport, None).map(|_| ())
    }

    /// Runs the schedule until its end (`Ok(true)`) or until the clock reaches `until`
    /// (`Ok(false)`), then publishes what it counted.
    pub(super) fn run_until<T: Transport>(
        &mut self,
        transport: &mut T,
        until: Option<Instant>,
    ) -> Result<bool, TransportError> {
        let result = self.run_rounds(transport, until);
        let now = self.now();
        if result.is_err() {
            self.abandon_all(now);
        } else {
            let _ = self.flush(transport);
        }
        self.publish(now, transport);
        result
    }

    /// Every client gives up at once: what is in flight ends as aborted, so it is accounted for.
    fn abandon_all(&mut self, now: Instant) {
        for local in 0..self.clients.len() {
            if let Some(client) = self.clients[local].as_mut() {
                client.abandon(now);
                self.after(local);
            }
        }
    }

    fn run_rounds<T: Transport>(
        &mut self,
        transport: &mut T,
        until: Option<Instant>,
    ) -> Result<bool, TransportError> {
        let mut bufs = RecvBuffers::new(BATCH, MAX_DATAGRAM);
        let stop_at = Instant::ZERO + self.setup.plan.stop_at();
        let mut next_publish = Instant::ZERO;
        loop {
            let now = self.now();
            if until.is_some_and(|until| now >= until) {
                return Ok(false);
            }
            self.send_blocked = false;
            if self.setup.control.abort.load(Ordering::Acquire) {
                // Stop now (a second interrupt): no De-registers, nothing left unaccounted.
                tracing::debug!("shard {}: aborted", self.setup.index);
                self.abandon_all(now);
                return Ok(true);
            }
            if self.stopping.is_none()
                && (now >= stop_at || self.setup.control.stop.load(Ordering::Acquire))
            {
                // The fleet's stop rate, shared by this process's shards and the other
                // `--shard` processes.
                let layout = &self.setup.layout;
                let shards = layout.shards() as f64 * f64::from(layout.slice().count());
                tracing::debug!(
                    "shard {}: stopping: {} clients up, de-registration wait at most {:?}",
                    self.setup.index,
                    self.recorder.live_clients(),
                    self.setup.plan.stop_timeout
                );
                self.stopping = Some(Stopping {
                    began: now,
                    deadline: now + self.setup.plan.stop_timeout,
                    rate: self.setup.plan.stop_rate() / shards,
                    cursor: 0,
                });
            }
            let mut busy = if self.stopping.is_some() {
                match self.stop_some(now) {
                    Some(told) => told > 0,
                    None => return Ok(true),
                }
            } else {
                self.start_due(now)
            };
            for _ in 0..BATCH {
                bufs.clear();
                if transport.recv_batch(&mut bufs)? == 0 {
                    break;
                }
                busy = true;
                // Stamped as they are handled, so a long round does not shorten latencies.
                let now = self.now();
                self.deliver(now, &bufs);
                self.flush(transport)?;
                self.deliver_link_ends(now, transport)?;
            }
            if self.release_due() {
                busy = true;
                self.flush(transport)?;
            }
            let mut now = self.now();
            for fired in 0..TIMERS_PER_ROUND {
                if fired % BATCH == BATCH - 1 {
                    now = self.now();
                }
                let Some((local, kind)) = self.timers.pop_due(now.as_micros()) else {
                    break;
                };
                busy = true;
                self.fire(now, local as usize, kind, transport);
                if self.outbox.len() >= BATCH {
                    self.flush(transport)?;
                }
            }
            self.flush(transport)?;
            busy |= self.deliver_link_ends(now, transport)?;
            if now >= next_publish {
                self.publish(now, transport);
                next_publish = now + self.setup.clock.publish_every();
            }
            if !busy {
                let wake_by = until.map_or(next_publish, |until| next_publish.min(until));
                self.idle(transport, stop_at, wake_by)?;
            }
        }
    }

    /// Sleeps until the next deadline, a datagram, `wake_by` (the next publication) or
    /// `MAX_IDLE`.
    fn idle<T: Transport>(
        &mut self,
        transport: &mut T,
        stop_at: Instant,
        wake_by: Instant,
    ) -> Result<(), TransportError> {
        let mut next = self.timers.next_deadline().unwrap_or(u64::MAX);
        next = next.min(wake_by.as_micros());
        if let Some(due) = self.emulation.as_ref().and_then(|e| e.next_due()) {
            next = next.min(due.as_micros());
        }
        match &self.stopping {
            None => {
                next = next.min(stop_at.as_micros());
                let speed = self.setup.control.start_speed();
                if speed > 0.0
                    && let Some((at, _)) = self.starts.get(self.next_start)
                {
                    // Real time until the schedule clock reaches the next start.
                    let ahead = at.saturating_sub(self.schedule.as_micros()) as f64 / speed;
                    next = next.min(self.now().as_micros().saturating_add(ahead as u64));
                }
            }
            Some(stopping) => {
                next = next.min(stopping.deadline.as_micros());
                if stopping.cursor < self.clients.len() {
                    // The next client's turn to stop.
                    let after = Duration::from_secs_f64(stopping.cursor as f64 / stopping.rate);
                    next = next.min((stopping.began + after).as_micros());
                }
            }
        }
        let mut wait = Duration::from_micros(next.saturating_sub(self.now().as_micros()));
        if !self.outbox.is_empty() {
            // The socket buffer was full: try again soon.
            wait = wait.min(Duration::from_millis(1));
        }
        let mut wait = wait.min(MAX_IDLE);
        if let Timebase::Simulated(_) = self.setup.clock {
            // A simulated clock moves only while the shard waits: never spin at one instant.
            wait = wait.max(Duration::from_micros(1));
        }
        if !wait.is_zero() {
            transport.wait(wait)?;
        }
        Ok(())
    }

    /// Starts the clients whose time has come on the schedule clock; returns whether any did.
    fn start_due(&mut self, now: Instant) -> bool {
        // The schedule clock runs at the start speed (0 while paused, faster after `+`).
        let real = now.saturating_since(self.schedule_synced);
        self.schedule_synced = now;
        let speed = self.setup.control.start_speed();
        self.schedule += real.mul_f64(speed);
        let mut started = 0;
        while let Some(&(at, local)) = self.starts.get(self.next_start) {
            if at > self.schedule.as_micros() || started == STARTS_PER_ROUND {
                break;
            }
            self.next_start += 1;
            started += 1;
            // How far behind its schedule this start is, in real time.
            let behind = (self.schedule.as_micros() - at) as f64 / speed.max(1e-9);
            let due = Instant::from_micros(now.as_micros().saturating_sub(behind as u64));
            self.start_client(now, due, local as usize);
        }
        if self.next_start == self.starts.len() && !self.starts.is_empty() {
            // The ramp is over: 16 bytes per client back.
            self.starts = Vec::new();
            self.next_start = 0;
        }
        started > 0
    }

    /// Starts client `local`, whose start was due at `due`: its Register's latency counts from
    /// then, so a shard that fell behind its schedule cannot hide it.
    fn start_client(&mut self, now: Instant, due: Instant, local: usize) {
        let s = &self.setup;
        let k = s.layout.client_index(s.index, local as u64);
        let Some(g) = s.plan.group_of(k) else {
            return;
        };
        let group = &s.plan.groups[g];
        let incarnation = u64::from(self.incarnations[local]);
        let device = Device::new(
            Arc::clone(&s.templates[g]),
            mix(group.seed, k),
            s.unix_origin,
        );
        let endpoint = s.plan.naming.endpoint(k);
        let mut client = Client::new(
            Arc::clone(&s.configs[g]),
            &endpoint,
            device,
            mix(group.seed ^ 0x00C1_1E17, k | (incarnation << 48)),
        );
        if let Some(source) = &s.credentials {
            client = client.with_credential(source.credential(k, &endpoint));
        }
        if let Some(trace) = self.trace.as_deref_mut() {
            trace.client_started(local as u32, &endpoint);
        }
        client.start_due(now, due);
        let rebind_every = group.network.rebind_every;
        let churn = match group.behaviour {
            Behaviour::Churn { every, jitter } => Some(self.jittered(every, jitter)),
            Behaviour::AlwaysOn | Behaviour::Sleepy => None,
        };
        // The NAT mapping outlives a restart: one rebinding schedule per client.
        if let Some(every) = rebind_every
            && incarnation == 0
        {
            let at = (now + every).as_micros();
            self.timers
                .schedule(local as u32, at, ClientTimerKind::Rebind);
        }
        self.clients[local] = Some(client);
        self.recorder.started();
        self.after(local);
        if let Some(after) = churn {
            self.timers.schedule(
                local as u32,
                (now + after).as_micros(),
                ClientTimerKind::Churn,
            );
        }
    }

    fn jittered(&mut self, every: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return every;
        }
        let j = jitter.as_secs_f64();
        let offset = self.rng.random_range(-j..=j);
        Duration::from_secs_f64((every.as_secs_f64() + offset).max(0.0))
    }

    fn deliver(&mut self, now: Instant, bufs: &RecvBuffers) {
        for (d, bytes) in bufs.iter() {
            let traffic = self.recorder.traffic();
            traffic.datagrams_in += 1;
            traffic.bytes_in += d.len as u64;
            if d.truncated {
                traffic.truncated += 1;
                continue;
            }
            if self.setup.loopback_only && !d.peer.ip().is_loopback() {
                traffic.foreign += 1;
                continue;
            }
            let mut local = self.setup.layout.local_for(self.setup.index, d.client);
            if let Some(emulation) = &self.emulation {
                match emulation.owner(d.client, local) {
                    Ok(moved) => local = Some(u64::from(moved)),
                    Err(stale) => {
                        // A client's home, or a spare address a client has since left.
                        if stale || (local.is_none() && self.setup.layout.is_spare(d.client)) {
                            self.recorder.traffic().network.to_old_address += 1;
                            continue;
                        }
                    }
                }
            }
            let Some(local) = local.map(|l| l as usize) else {
                self.recorder.traffic().unmatched += 1;
                continue;
            };
            if let Some(emulation) = self.emulation.as_mut() {
                let group = self.setup.group_of(local);
                let passage =
                    emulation.pass(now, group, &mut self.recorder.traffic().network, || {
                        InFlight::In {
                            local: local as u32,
                            peer: d.peer,
                            bytes: bytes.to_vec(),
                        }
                    });
                if passage != Passage::Now {
                    continue;
                }
            }
            self.hand_to(now, local, d.peer, bytes);
        }
    }

    /// Gives client `local` a datagram from `peer`.
    fn hand_to(&mut self, now: Instant, local: usize, peer: SocketAddr, bytes: &[u8]) {
        let Some(client) = self.clients[local].as_mut() else {
            self.recorder.traffic().unmatched += 1;
            return;
        };
        if let Some(trace) = self.trace.as_deref_mut()
            && trace.is_traced(local as u32)
        {
            let s = &self.setup;
            let home = s.layout.endpoint(s.index, local as u64);
            let at = self
                .emulation
                .as_ref()
                .map_or(home, |e| e.source(local as u32, home));
            if let Some(at) = at {
                let stream = client.is_stream();
                trace.capture(
                    now,
                    local as u32,
                    Direction::Received,
                    at,
                    peer,
                    stream,
                    bytes,
                );
            }
        }
        let handling = std::time::Instant::now();
        client.handle_datagram(now, peer, bytes);
        // The client's own handling time, recorded if the datagram was a server request.
        self.handling = Some(handling.elapsed());
        self.after(local);
        self.handling = None;
    }

    /// Sends and hands over what the emulated link delayed until now; returns whether any.
    fn release_due(&mut self) -> bool {
        let mut any = false;
        loop {
            let now = self.now();
            let Some(datagram) = self.emulation.as_mut().and_then(|e| e.pop_due(now)) else {
                return any;
            };
            any = true;
            match datagram {
                InFlight::Out { local, to, bytes } => {
                    let s = &self.setup;
                    let home = s.layout.endpoint(s.index, u64::from(local));
                    let from = self.emulation.as_ref().and_then(|e| e.source(local, home));
                    if let Some(from) = from {
                        if let Some(trace) = self.trace.as_deref_mut()
                            && trace.is_traced(local)
                        {
                            trace.capture(now, local, Direction::Sent, from, to, false, &bytes);
                        }
                        self.outbox.push((from, to, bytes));
                    }
                }
                InFlight::In { local, peer, bytes } => {
                    self.hand_to(now, local as usize, peer, &bytes);
                }
            }
        }
    }

    /// Client `local`'s NAT mapping changes: it sends from a new address from now on, and what
    /// the server sends to the old one is dropped.
    fn rebind<T: Transport>(&mut self, now: Instant, local: usize, transport: &mut T) {
        let s = &self.setup;
        let (Some(emulation), Some(home)) = (
            self.emulation.as_mut(),
            s.layout.endpoint(s.index, local as u64),
        ) else {
            return;
        };
        let current = emulation.source(local as u32, Some(home)).unwrap_or(home);
        let n = emulation.rebindings(local as u32) + 1;
        let spare = s.layout.rebound_endpoint(s.index, local as u64, n);
        if let Some(to) = transport.rebind(current, spare) {
            tracing::trace!(
                "shard {}: client {local} rebound {current} -> {to}",
                s.index
            );
            emulation.moved_to(local as u32, to);
            self.recorder.traffic().network.rebound += 1;
        } else {
            tracing::trace!(
                "shard {}: client {local} kept {current}: no rebinding",
                s.index
            );
        }
        let every = s.plan.groups[s.group_of(local)].network.rebind_every;
        if let Some(every) = every {
            self.timers.schedule(
                local as u32,
                (now + every).as_micros(),
                ClientTimerKind::Rebind,
            );
        }
    }

    fn fire<T: Transport>(
        &mut self,
        now: Instant,
        local: usize,
        kind: ClientTimerKind,
        transport: &mut T,
    ) {
        let stopping = self.stopping.is_some();
        match kind {
            ClientTimerKind::Client => {
                if let Some(client) = self.clients[local].as_mut() {
                    client.handle_timeout(now);
                    self.after(local);
                }
            }
            ClientTimerKind::Churn if !stopping => {
                let Some(client) = self.clients[local].as_mut() else {
                    return;
                };
                let offline = client.config().reboot_time;
                client.stop(now);
                self.after(local);
                self.timers.schedule(
                    local as u32,
                    (now + offline).as_micros(),
                    ClientTimerKind::Restart,
                );
            }
            ClientTimerKind::Restart if !stopping => {
                let down = matches!(
                    self.states[local],
                    Some(ClientState::Stopped | ClientState::Failed) | None
                );
                if down {
                    // Whatever the old incarnation still had out ends here, counted.
                    if let Some(old) = self.clients[local].as_mut() {
                        old.abandon(now);
                        self.after(local);
                    }
                    self.incarnations[local] = self.incarnations[local].wrapping_add(1);
                    self.start_client(now, now, local);
                } else {
                    let later = (now + RESTART_RETRY).as_micros();
                    self.timers
                        .schedule(local as u32, later, ClientTimerKind::Restart);
                }
            }
            ClientTimerKind::Rebind if !stopping => self.rebind(now, local, transport),
            ClientTimerKind::Churn | ClientTimerKind::Restart | ClientTimerKind::Rebind => {}
        }
    }

    /// Collects what client `local` wants sent, what happened to it, and its next deadline.
    fn after(&mut self, local: usize) {
        let Some(client) = self.clients[local].as_mut() else {
            return;
        };
        let home = self.setup.layout.endpoint(self.setup.index, local as u64);
        let from = match &self.emulation {
            Some(emulation) => emulation.source(local as u32, home),
            None => home,
        };
        if client.is_stream() {
            while let Some(command) = client.poll_link() {
                if let Some(from) = from {
                    if let (Some(trace), LinkCommand::Send(bytes)) =
                        (self.trace.as_deref_mut(), &command)
                        && trace.is_traced(local as u32)
                    {
                        let (now, to) = (self.setup.clock.now(), client.config().server);
                        trace.capture(now, local as u32, Direction::Sent, from, to, true, bytes);
                    }
                    self.links.push((from, command));
                }
            }
        }
        // The emulated link's view of this client, once for all it sends now.
        let link = self
            .emulation
            .as_ref()
            .map(|_| (self.setup.clock.now(), self.setup.group_of(local)));
        while let Some((to, bytes)) = client.poll_transmit() {
            let Some(from) = from else {
                continue;
            };
            if let (Some(emulation), Some((now, group))) = (self.emulation.as_mut(), link) {
                let stats = &mut self.recorder.traffic().network;
                let passage = emulation.pass(now, group, stats, || InFlight::Out {
                    local: local as u32,
                    to,
                    bytes: bytes.clone(),
                });
                if passage != Passage::Now {
                    continue;
                }
            }
            if let Some(trace) = self.trace.as_deref_mut()
                && trace.is_traced(local as u32)
            {
                let now = self.setup.clock.now();
                trace.capture(now, local as u32, Direction::Sent, from, to, false, &bytes);
            }
            self.outbox.push((from, to, bytes));
        }
        while let Some(event) = client.poll_event() {
            self.recorder.event(&event);
            match event {
                Event::Operation(op) => {
                    if let Some(took) = self.handling {
                        self.recorder.handled(op.kind, took);
                    }
                    if let Some(woke) = self.woke.remove(&(local as u32)) {
                        self.recorder
                            .woke_to_request(op.received.saturating_since(woke));
                    }
                }
                Event::Woke => {
                    let now = self.setup.clock.now();
                    self.woke.insert(local as u32, now);
                }
                Event::State(ClientState::Registered) => {}
                Event::State(_) => {
                    // Asleep or offline again before the server asked anything.
                    self.woke.remove(&(local as u32));
                }
                _ => {}
            }
        }
        let state = Some(client.state());
        if state != self.states[local] {
            if tracing::enabled!(tracing::Level::TRACE) {
                tracing::trace!(
                    "shard {}: client {local} ({}) {:?} -> {:?}",
                    self.setup.index,
                    client.endpoint_name(),
                    self.states[local].map_or("new".to_string(), |s| format!("{s:?}")),
                    client.state()
                );
            }
            self.recorder.state_change(self.states[local], state);
            self.states[local] = state;
        }
        let deadline = client.poll_timeout().map(Instant::as_micros);
        self.timers.arm(local as u32, deadline);
    }

    /// Tells the next clients to stop; returns how many, or `None` when the shard is done
    /// (every client down, or the stop timeout passed).
    fn stop_some(&mut self, now: Instant) -> Option<usize> {
        let Some(stopping) = self.stopping.as_mut() else {
            return Some(0);
        };
        let from = stopping.cursor;
        // Paced like the ramp, so the stop does not flood the server's socket at once.
        let due = now.saturating_since(stopping.began).as_secs_f64() * stopping.rate;
        let due = (due as usize).saturating_add(1);
        let to = due.min(from + STOPS_PER_ROUND).min(self.clients.len());
        stopping.cursor = to;
        let deadline = stopping.deadline;
        for local in from..to {
            if let Some(client) = self.clients[local].as_mut() {
                client.stop(now);
                self.after(local);
            }
        }
        let all_told = to == self.clients.len();
        if all_told && self.recorder.live_clients() == 0 && self.recorder.in_flight() == 0 {
            return None;
        }
        if now < deadline {
            return Some(to - from);
        }
        // Out of time: what is still out ends as aborted, so every request is accounted for.
        tracing::debug!(
            "shard {}: stop timeout passed with {} clients up, {} requests in flight: aborted",
            self.setup.index,
            self.recorder.live_clients(),
            self.recorder.in_flight()
        );
        self.abandon_all(now);
        None
    }

    /// Sends the outbox. A datagram the kernel refuses is counted and dropped (CoAP
    /// retransmits CON); a full socket buffer blocks sending until the next round.
    fn flush<T: Transport>(&mut self, transport: &mut T) -> Result<(), TransportError> {
        self.flush_links(transport);
        while !self.outbox.is_empty() && !self.send_blocked {
            let n = self.outbox.len().min(BATCH);
            let batch: Vec<OutgoingDatagram<'_>> = self.outbox[..n]
                .iter()
                .map(|(from, to, bytes)| OutgoingDatagram {
                    from: *from,
                    to: *to,
                    payload: bytes,
                })
                .collect();
            let (done, failed) = match transport.send_batch(&batch) {
                Ok(sent) => {
                    self.send_blocked = sent < n;
                    (sent, 0)
                }
                Err(
                    TransportError::Send { index, .. }
                    | TransportError::UnknownSource { index, .. },
                ) => (index, 1),
                Err(e) => return Err(e),
            };
            drop(batch);
            let traffic = self.recorder.traffic();
            traffic.datagrams_out += done as u64;
            traffic.bytes_out += self.outbox[..done]
                .iter()
                .map(|(_, _, b)| b.len() as u64)
                .sum::<u64>();
            traffic.send_errors += failed;
            self.outbox.drain(..done + failed as usize);
        }
        Ok(())
    }

    /// Applies the stream clients' connection commands in order; writes count like datagrams.
    fn flush_links<T: Transport>(&mut self, transport: &mut T) {
        for (client, command) in self.links.drain(..) {
            match command {
                LinkCommand::Open(to) => transport.open_link(client, to),
                LinkCommand::Send(bytes) => {
                    let traffic = self.recorder.traffic();
                    if transport.send_link(client, &bytes) {
                        traffic.datagrams_out += 1;
                        traffic.bytes_out += bytes.len() as u64;
                    } else {
                        traffic.send_errors += 1;
                    }
                }
                LinkCommand::Close => transport.close_link(client),
            }
        }
    }

    /// Tells stream clients their connection ended; returns whether any did.
    fn deliver_link_ends<T: Transport>(
        &mut self,
        now: Instant,
        transport: &mut T,
    ) -> Result<bool, TransportError> {
        let mut any = false;
        while let Some(LinkEnded { client, error }) = transport.poll_link_ended() {
            any = true;
            let local = self.setup.layout.local_for(self.setup.index, client);
            let Some(local) = local.map(|l| l as usize) else {
                continue;
            };
            if let Some(c) = self.clients[local].as_mut() {
                c.handle_link_closed(now, link_closed(error));
                self.after(local);
            }
            // A reconnect goes out in the same round.
            self.flush(transport)?;
        }
        Ok(any)
    }

    fn publish<T: Transport>(&mut self, now: Instant, transport: &T) {
        if let Some(trace) = self.trace.as_deref_mut() {
            trace.flush(now);
        }
        self.recorder.traffic().kernel_drops = transport.kernel_drops();
        let elapsed = now.saturating_since(Instant::ZERO);
        let mut published = self
            .setup
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.recorder.publish(elapsed, &mut published);
    }
}

/// How the transport saw a connection end, as the client counts it.
fn link_closed(error: Option<std::io::ErrorKind>) -> LinkClosed {
    use std::io::ErrorKind;
    match error {
        None => LinkClosed::PeerClosed,
        Some(ErrorKind::ConnectionRefused) => LinkClosed::Refused,
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe) => {
            LinkClosed::Reset
        }
        Some(ErrorKind::TimedOut) => LinkClosed::TimedOut,
        Some(_) => LinkClosed::Error,
    }
}
