//! Observations, notification attributes (pmin, pmax, gt, lt, st) and notifications.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, ResponseType};
use rand::Rng;

use super::{Client, ClientState, Outgoing, RequestOutcome};
use crate::clock::Instant;
use crate::coap::observe::ObserveSeq;
use crate::coap::{Token, block, message};
use crate::content::{self, ContentFormat};
use crate::model::{Path, Record};

/// A CON notification at least this often, whatever the CON share (RFC 7641 4.5).
const MAX_NON_RUN: Duration = Duration::from_secs(24 * 3600);

/// Write-Attributes values at one path; unset means inherit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Attributes {
    pub pmin: Option<u32>,
    pub pmax: Option<u32>,
    pub gt: Option<f64>,
    pub lt: Option<f64>,
    pub st: Option<f64>,
}

impl Attributes {
    /// `self` with every unset value taken from `outer` (resource over instance over object).
    fn or(self, outer: Attributes) -> Attributes {
        Attributes {
            pmin: self.pmin.or(outer.pmin),
            pmax: self.pmax.or(outer.pmax),
            gt: self.gt.or(outer.gt),
            lt: self.lt.or(outer.lt),
            st: self.st.or(outer.st),
        }
    }

    /// Applies a Write-Attributes query (`pmin=10`, `pmax`, `gt=20.5`...); a name without a
    /// value unsets it.
    pub fn apply_query(&mut self, query: &[&str]) -> Result<(), String> {
        for item in query {
            let (name, value) = match item.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (*item, None),
            };
            match name {
                "pmin" => self.pmin = parse(name, value)?,
                "pmax" => self.pmax = parse(name, value)?,
                "gt" => self.gt = parse(name, value)?,
                "lt" => self.lt = parse(name, value)?,
                "st" => self.st = parse(name, value)?,
                // Evaluation periods bound sampling; the simulator samples on its own interval.
                "epmin" | "epmax" => {
                    parse::<u32>(name, value)?;
                }
                _ => return Err(format!("unknown attribute {name:?}")),
            }
        }
        if let (Some(lt), Some(gt)) = (self.lt, self.gt) {
            if lt >= gt {
                return Err("lt must be below gt".into());
            }
            if self.st.is_some_and(|st| lt + 2.0 * st >= gt) {
                return Err("lt + 2*st must be below gt".into());
            }
        }
        if self.st.is_some_and(|st| st < 0.0) {
            return Err("st must not be negative".into());
        }
        Ok(())
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>, String> {
    value
        .map(|v| v.parse().map_err(|_| format!("bad value {v:?} for {name}")))
        .transpose()
}

/// One observation of a path by the server; at the root, of a composite's paths.
#[derive(Clone, Copy, Debug)]
pub(super) struct Observation {
    pub token: Token,
    /// Where the Observe came from: every notification goes there (RFC 7641 4.2: to the
    /// observer), which need not be the address the client registered with.
    pub observer: SocketAddr,
    pub path: Path,
    pub format: ContentFormat,
    pub sequence: ObserveSeq,
    pub last_notified: Instant,
    /// When the next evaluation is due (pmin end, a re-sample, or pmax).
    pub next_check: Instant,
    /// The value last sent, when the path holds one number (for gt, lt, st).
    pub last_number: Option<f64>,
    /// A hash of the payload last sent, for change detection.
    pub last_hash: u64,
    /// A notification is queued or in flight.
    pub queued: bool,
}

impl Client {
    /// Pmin, pmax, gt, lt and st in force for `path`, with pmin/pmax defaults from the Server object.
    pub(super) fn effective_attributes(&mut self, path: &Path) -> Attributes {
        let mut effective = Attributes::default();
        let mut level = *path;
        loop {
            if let Some((_, attrs)) = self.attributes.iter().find(|(p, _)| *p == level) {
                effective = effective.or(*attrs);
            }
            if level.len() <= 1 {
                break;
            }
            level = level.parent();
        }
        let defaults = Attributes {
            pmin: self.server_period(2),
            pmax: self.server_period(3),
            ..Attributes::default()
        };
        effective.or(defaults)
    }

    /// `/1/0/2` Default Minimum Period or `/1/0/3` Default Maximum Period.
    fn server_period(&mut self, resource: u16) -> Option<u32> {
        let records = self
            .device
            .read(&Path::resource(1, 0, resource), Instant::ZERO)
            .ok()?;
        let seconds = records.first()?.value.as_f64()?;
        (seconds > 0.0).then_some(seconds as u32)
    }

    /// Starts (or refreshes) an observation and returns the records of its first answer.
    pub(super) fn observe(
        &mut self,
        now: Instant,
        observer: SocketAddr,
        token: Token,
        path: Path,
        format: ContentFormat,
        records: &[Record],
    ) -> u32 {
        let existing = self.observations.iter().position(|o| o.token == token);
        // A refresh keeps its sequence (so it stays newer) and any notification under way.
        // A new one starts at random, never 0: some servers ignore a first Observe of 0.
        let (mut sequence, queued) = match existing {
            Some(i) => (self.observations[i].sequence, self.observations[i].queued),
            None => (
                ObserveSeq::new(1 + (self.rng.random::<u32>() & 0xFFFF)),
                false,
            ),
        };
        let first = sequence.next();
        let observation = Observation {
            token,
            observer,
            path,
            format,
            sequence,
            last_notified: now,
            next_check: now,
            last_number: single_number(records),
            last_hash: hash(records),
            queued,
        };
        let index = if let Some(i) = existing {
            self.observations[i] = observation;
            i
        } else {
            self.observations.reserve_exact(1);
            self.observations.push(observation);
            self.observations.len() - 1
        };
        self.schedule_check(index, now);
        first
    }

    pub(super) fn cancel_observation(&mut self, token: Token) {
        self.observations.retain(|o| o.token != token);
        self.composite_paths.remove(token);
    }

    /// Next evaluation: at pmin if it is not over yet, else after the check interval, never past pmax.
    fn schedule_check(&mut self, index: usize, now: Instant) {
        let path = self.observations[index].path;
        let attrs = self.effective_attributes(&path);
        self.schedule_check_with(index, now, &attrs);
    }

    fn schedule_check_with(&mut self, index: usize, now: Instant, attrs: &Attributes) {
        let observation = &mut self.observations[index];
        let pmin_end = observation.last_notified + secs(attrs.pmin.unwrap_or(0));
        let mut next = pmin_end.max(now + self.config.notify_check_interval);
        if let Some(pmax) = attrs.pmax {
            let pmax_end = observation.last_notified + secs(pmax);
            if pmax_end > pmin_end {
                next = next.min(pmax_end);
            }
        }
        observation.next_check = next;
    }

    /// Evaluates every observation whose check is due; queues the notifications that are.
    pub(super) fn check_observations(&mut self, now: Instant) {
        if !matches!(self.state, ClientState::Registered | ClientState::Sleeping) {
            return;
        }
        for index in 0..self.observations.len() {
            let observation = self.observations[index];
            if observation.queued || observation.next_check > now {
                continue;
            }
            // Resolved once per check: each resolution reads the Server object's defaults.
            let attrs = self.effective_attributes(&observation.path);
            if self.notification_due(&observation, &attrs, now) {
                let intended = observation.next_check;
                self.observations[index].queued = true;
                self.wake_for(intended);
                self.enqueue(Outgoing::Notify(observation.token), intended);
            } else {
                self.schedule_check_with(index, now, &attrs);
            }
        }
    }

    fn notification_due(
        &mut self,
        observation: &Observation,
        attrs: &Attributes,
        now: Instant,
    ) -> bool {
        let since = now.saturating_since(observation.last_notified);
        if since < secs(attrs.pmin.unwrap_or(0)) {
            return false;
        }
        let pmin = attrs.pmin.unwrap_or(0);
        if attrs
            .pmax
            .is_some_and(|pmax| pmax > pmin && since >= secs(pmax))
        {
            return true;
        }
        let Ok(records) = self.observed_records(observation.token, &observation.path, now) else {
            return true; // the path is gone: the notification carries the error
        };
        let number = single_number(&records);
        match (number, observation.last_number) {
            (Some(value), Some(last))
                if attrs.gt.is_some() || attrs.lt.is_some() || attrs.st.is_some() =>
            {
                let crossed =
                    |threshold: Option<f64>| threshold.is_some_and(|t| (last > t) != (value > t));
                crossed(attrs.gt)
                    || crossed(attrs.lt)
                    || attrs.st.is_some_and(|st| (value - last).abs() >= st)
            }
            _ => hash(&records) != observation.last_hash,
        }
    }

    /// Sends the notification of the observation with `token` (it may have been cancelled since).
    pub(super) fn send_notification(&mut self, now: Instant, token: Token, intended: Instant) {
        let Some(index) = self.observations.iter().position(|o| o.token == token) else {
            // Cancelled while it waited: it still ends, once.
            self.record_unsent(super::RequestKind::Notify, intended, now);
            return;
        };
        let observation = self.observations[index];
        let mut packet = Packet::new();
        packet.set_token(token.as_slice().to_vec());
        let mut ended = false;
        let rendered = self
            .observed_records(token, &observation.path, now)
            // The observed path is gone: an error code without Observe ends the observation.
            .map_err(|_| ResponseType::NotFound)
            .and_then(|records| {
                content::encode(
                    observation.format,
                    &observation.path,
                    &records,
                    &self.device,
                )
                .map(|payload| (records, payload))
                .map_err(|_| ResponseType::InternalServerError)
            });
        match rendered {
            Ok((records, payload)) => {
                let stored = &mut self.observations[index];
                let sequence = stored.sequence.next();
                stored.last_number = single_number(&records);
                stored.last_hash = hash(&records);
                packet.header.code = MessageClass::Response(ResponseType::Content);
                message::set_observe(&mut packet, sequence);
                message::set_content_format(&mut packet, observation.format.code());
                // A large value goes out as its first block; the server fetches the rest.
                let block_size = self.config.coap.block_size;
                if block::apply_block2(&mut packet, &payload, None, block_size).is_err() {
                    packet.payload = payload;
                }
            }
            Err(code) => {
                packet.header.code = MessageClass::Response(code);
                ended = true;
            }
        }
        let stored = &mut self.observations[index];
        stored.last_notified = now;
        stored.queued = true;
        // Over TCP nothing is acknowledged: every notification is sent like a NON.
        let confirmable =
            !self.coap.is_reliable() && (self.notification_is_confirmable(now) || ended);
        if confirmable {
            self.last_con_notification = now;
            let kind = super::RequestKind::Notify;
            self.send_tracked(now, observation.observer, kind, intended, token, packet);
        } else {
            packet.header.set_type(MessageType::NonConfirmable);
            self.coap.send_non_confirmable(observation.observer, packet);
            self.events
                .push_back(super::Event::Sent(super::RequestKind::Notify));
            self.events
                .push_back(super::Event::Request(super::RequestRecord {
                    kind: super::RequestKind::Notify,
                    intended,
                    sent: now,
                    completed: now,
                    outcome: RequestOutcome::Unconfirmed,
                    retransmissions: 0,
                }));
            self.on_notification_done(token, RequestOutcome::Unconfirmed);
        }
        if ended {
            self.cancel_observation(token);
        }
    }

    fn notification_is_confirmable(&mut self, now: Instant) -> bool {
        let share = self.config.confirmable_notifications;
        now.saturating_since(self.last_con_notification) >= MAX_NON_RUN
            || (share > 0.0 && self.rng.random::<f64>() < share)
    }

    /// A notification ended: schedule the next check, or drop the observer if it failed.
    pub(super) fn on_notification_done(&mut self, token: Token, outcome: RequestOutcome) {
        if matches!(outcome, RequestOutcome::Timeout | RequestOutcome::Reset) {
            self.cancel_observation(token);
            return;
        }
        if let Some(index) = self.observations.iter().position(|o| o.token == token) {
            self.observations[index].queued = false;
            let from = self.observations[index].last_notified;
            self.schedule_check(index, from);
        }
    }
}

fn secs(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds))
}

fn single_number(records: &[Record]) -> Option<f64> {
    match records {
        [record] => record.value.as_f64(),
        _ => None,
    }
}

/// A hash of the values, to tell whether they changed without encoding them.
fn hash(records: &[Record]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    records.hash(&mut hasher);
    hasher.finish()
}
