//! Requests the server sends to its clients: the periodic load, NSTART 1 per client, CON
//! retransmission with the RFC 7252 back-off, queue mode, and the answers and notifications.

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType};
use rand::Rng;

use super::timers::TimerKind;
use super::{Op, Server};
use crate::clock::Instant;
use crate::coap::wire::{self, RawHeader};
use crate::coap::{Token, initial_timeout, message};
use crate::content::ContentFormat;
use crate::model::Path;

/// One request of ours awaiting its answer (at most one per client: NSTART 1).
#[derive(Debug)]
pub(crate) struct Exchange {
    pub op: Op,
    pub message_id: u16,
    pub token: u64,
    /// The datagram, for retransmissions.
    pub bytes: Box<[u8]>,
    /// When the next retransmission (or the give-up) is due.
    pub deadline: Instant,
    pub timeout: Duration,
    pub retransmitted: u8,
    /// An empty ACK came: the answer follows as a separate response.
    pub acknowledged: bool,
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Answered(u8),
    Timeout,
    Reset,
}

/// `application/link-format` (RFC 6690).
const LINK_FORMAT: u16 = 40;

fn token_bytes(token: u64) -> [u8; 8] {
    token.to_be_bytes()
}

fn matches_token(token: u64, packet: &Packet) -> bool {
    token != 0 && packet.get_token() == token_bytes(token)
}

impl Server {
    /// A new registration: periodic requests start at a random offset within their period, so
    /// clients registering together do not all get their requests at once.
    pub(super) fn start_load(&mut self, now: Instant, id: u32) {
        let composite = self
            .registrations
            .get(&id)
            .is_some_and(|r| r.version > super::Version::V1_0);
        let periodic = [
            (Op::Read, self.config.read.as_ref().map(|(_, every)| *every)),
            (Op::ReadComposite, self.load_period(Op::ReadComposite)),
            (Op::WriteComposite, self.load_period(Op::WriteComposite)),
            (Op::Write, self.config.write.as_ref().map(|w| w.every)),
            (
                Op::Execute,
                self.config.execute.as_ref().map(|(_, every)| *every),
            ),
            (
                Op::Discover,
                self.config.discover.as_ref().map(|(_, every)| *every),
            ),
        ];
        for (op, every) in periodic {
            let Some(every) = every.filter(|e| !e.is_zero()) else {
                continue;
            };
            if op.is_composite() && !composite {
                continue;
            }
            let period = u64::try_from(every.as_micros()).unwrap_or(u64::MAX);
            let offset = Duration::from_micros(self.rng.random_range(0..period));
            self.timers.push(now + offset, id, TimerKind::Load(op));
        }
        if let Some(observe) = &self.config.observe {
            let mut pending = Op::Observe.bit();
            if observe.pmin.is_some() || observe.pmax.is_some() {
                pending |= Op::WriteAttributes.bit();
            }
            if let Some(registration) = self.registrations.get_mut(&id) {
                registration.pending |= pending;
            }
        }
        if composite
            && self.config.observe_composite.is_some()
            && let Some(registration) = self.registrations.get_mut(&id)
        {
            registration.pending |= Op::ObserveComposite.bit();
        }
    }

    /// A periodic request came due: it waits for the client's NSTART slot (or its wake-up).
    pub(super) fn on_load_timer(&mut self, now: Instant, at: Instant, id: u32, op: Op) {
        let every = match op {
            Op::Read => self.config.read.as_ref().map(|(_, every)| *every),
            Op::Write => self.config.write.as_ref().map(|w| w.every),
            Op::Execute => self.config.execute.as_ref().map(|(_, every)| *every),
            Op::Discover => self.config.discover.as_ref().map(|(_, every)| *every),
            Op::ReadComposite | Op::WriteComposite => self.load_period(op),
            Op::WriteAttributes | Op::Observe | Op::ObserveComposite | Op::Campaign => None,
        };
        let unresponsive_after = self.config.unresponsive_after;
        let Some(registration) = self.registrations.get_mut(&id) else {
            return;
        };
        if let Some(every) = every {
            // From the due time, not from now: a late wake-up does not shift the schedule.
            self.timers.push(at + every, id, TimerKind::Load(op));
        }
        if registration.is_unresponsive(unresponsive_after) {
            self.stats.limits.withheld += 1;
            return;
        }
        let already = registration.pending & op.bit() != 0;
        registration.pending |= op.bit();
        if already {
            self.op_stats(op).skipped += 1;
        } else {
            self.flush(now, id);
        }
    }

    /// Sends the registration's next waiting request if its NSTART slot is free and, in queue
    /// mode, the client is awake; otherwise the waiting requests are held.
    pub(super) fn flush(&mut self, now: Instant, id: u32) {
        let unresponsive_after = self.config.unresponsive_after;
        let Some(registration) = self.registrations.get_mut(&id) else {
            return;
        };
        if registration.exchange.is_some() || registration.is_unresponsive(unresponsive_after) {
            return;
        }
        let Some(op) = Op::first_in(registration.pending) else {
            return;
        };
        if registration.queue_mode && now >= registration.awake_until {
            let newly_held = registration.pending & !registration.held;
            registration.held |= newly_held;
            self.stats.queue.held += u64::from(newly_held.count_ones());
            return;
        }
        registration.pending &= !op.bit();
        if registration.held & op.bit() != 0 {
            registration.held &= !op.bit();
            let delay = now.saturating_since(registration.last_update);
            self.stats.queue.record_delivery(delay);
        }
        self.send_request(now, id, op);
    }

    /// `lwm2m_cbor`: the client speaks LWM2M 1.2, so Reads and Observes may ask for 11544.
    fn build_request(
        &self,
        id: u32,
        op: Op,
        root: Option<&str>,
        lwm2m_cbor: bool,
        token: u64,
    ) -> Option<Packet> {
        let (method, path, query, format, payload) = match op {
            Op::Campaign => return self.campaign_request(id, root, token),
            Op::Read => {
                let path = self.config.read.as_ref().map(|(p, _)| *p);
                (RequestType::Get, path, Vec::new(), None, Vec::new())
            }
            Op::Observe => {
                let path = self.config.observe.as_ref().map(|o| o.path);
                (RequestType::Get, path, Vec::new(), None, Vec::new())
            }
            Op::WriteAttributes => {
                let observe = self.config.observe.as_ref();
                let mut query = Vec::new();
                if let Some(pmin) = observe.and_then(|o| o.pmin) {
                    query.push(format!("pmin={pmin}"));
                }
                if let Some(pmax) = observe.and_then(|o| o.pmax) {
                    query.push(format!("pmax={pmax}"));
                }
                let path = observe.map(|o| o.path);
                (RequestType::Put, path, query, None, Vec::new())
            }
            Op::Write => {
                let write = self.config.write.as_ref();
                let payload = write
                    .map(|w| w.value.as_bytes().to_vec())
                    .unwrap_or_default();
                (
                    RequestType::Put,
                    write.map(|w| w.path),
                    Vec::new(),
                    Some(0),
                    payload,
                )
            }
            Op::Execute => {
                let path = self.config.execute.as_ref().map(|(p, _)| *p);
                (RequestType::Post, path, Vec::new(), None, Vec::new())
            }
            Op::Discover => {
                let path = self.config.discover.as_ref().map(|(p, _)| *p);
                (RequestType::Get, path, Vec::new(), None, Vec::new())
            }
            Op::ReadComposite | Op::ObserveComposite | Op::WriteComposite => {
                let (method, payload) = self.composite_request(op);
                let format = Some(super::composite::FORMAT.code());
                (method, Some(Path::ROOT), Vec::new(), format, payload)
            }
        };
        let ids: Vec<String> = path
            .unwrap_or(Path::ROOT)
            .ids()
            .iter()
            .map(ToString::to_string)
            .collect();
        let segments: Vec<&str> = root
            .into_iter()
            .flat_map(|r| r.split('/'))
            .chain(ids.iter().map(String::as_str))
            .collect();
        let query: Vec<&str> = query.iter().map(String::as_str).collect();
        let token = Token::from_slice(&token_bytes(token)).unwrap_or_default();
        let mut packet = message::request(method, &segments, &query, format, payload, token);
        match op {
            Op::Observe | Op::ObserveComposite => message::set_observe(&mut packet, 0),
            // A GET that asks for link-format is a Discover.
            Op::Discover => message::set_accept(&mut packet, LINK_FORMAT),
            _ => {}
        }
        if matches!(op, Op::Read | Op::Observe) && self.config.lwm2m_cbor && lwm2m_cbor {
            message::set_accept(&mut packet, ContentFormat::LwM2mCbor.code());
        }
        Some(packet)
    }

    fn send_request(&mut self, now: Instant, id: u32, op: Op) {
        let token = self.fresh_token();
        let Some(registration) = self.registrations.get(&id) else {
            return;
        };
        let Some(mut packet) = self.build_request(
            id,
            op,
            registration.links.root.as_deref(),
            registration.speaks_lwm2m_cbor(),
            token,
        ) else {
            // Nothing to ask after all (a campaign device between steps): the next op's turn.
            self.flush(now, id);
            return;
        };
        let timeout = initial_timeout(&self.config.coap, &mut self.rng);
        let Some(registration) = self.registrations.get_mut(&id) else {
            return;
        };
        let message_id = registration.fresh_message_id();
        packet.header.message_id = message_id;
        wire::set_type(&mut packet, wire::CON);
        let bytes = wire::encode(&packet);
        let deadline = now + timeout;
        let peer = registration.peer;
        registration.exchange = Some(Box::new(super::exchange::Exchange {
            op,
            message_id,
            token,
            bytes: bytes.clone().into_boxed_slice(),
            deadline,
            timeout,
            retransmitted: 0,
            acknowledged: false,
        }));
        self.timers
            .push(deadline, id, TimerKind::Exchange(message_id));
        self.op_stats(op).sent += 1;
        if op == Op::Campaign {
            self.campaign_sent(id);
        }
        self.send(peer, bytes);
    }

    /// Retransmits, or gives up after the last retransmission (or the separate response wait).
    pub(super) fn on_exchange_timer(&mut self, now: Instant, at: Instant, id: u32, mid: u16) {
        let max_retransmit = self.config.coap.max_retransmit;
        let Some(registration) = self.registrations.get_mut(&id) else {
            return;
        };
        let peer = registration.peer;
        let Some(exchange) = registration
            .exchange
            .as_mut()
            .filter(|e| e.message_id == mid && e.deadline == at)
        else {
            return;
        };
        if exchange.acknowledged || exchange.retransmitted >= max_retransmit {
            self.complete(now, id, Outcome::Timeout, None);
            return;
        }
        exchange.retransmitted += 1;
        exchange.timeout = exchange.timeout.saturating_mul(2);
        exchange.deadline = now + exchange.timeout;
        let (deadline, bytes) = (exchange.deadline, exchange.bytes.to_vec());
        self.timers.push(deadline, id, TimerKind::Exchange(mid));
        self.stats.retransmissions += 1;
        self.send(peer, bytes);
    }

    /// An ACK or RST from a client: the answer to our request in flight, if it matches.
    pub(super) fn on_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        packet: &Packet,
    ) {
        let wait = self.config.coap.separate_response_timeout;
        let Some(&id) = self.by_peer.get(&from) else {
            self.stats.unmatched += 1;
            return;
        };
        let Some(registration) = self.registrations.get_mut(&id) else {
            self.stats.unmatched += 1;
            return;
        };
        let empty = packet.header.code == MessageClass::Empty;
        let Some(exchange) = registration.exchange.as_mut().filter(|e| {
            // A piggybacked response must echo the request's token (RFC 7252 5.3.2).
            e.message_id == header.message_id
                && !e.acknowledged
                && (empty || matches_token(e.token, packet))
        }) else {
            self.stats.unmatched += 1;
            return;
        };
        if header.kind == wire::RST {
            self.complete(now, id, Outcome::Reset, None);
        } else if empty {
            exchange.acknowledged = true;
            exchange.deadline = now + wait;
            let (deadline, mid) = (exchange.deadline, exchange.message_id);
            self.timers.push(deadline, id, TimerKind::Exchange(mid));
        } else {
            let code = u8::from(packet.header.code);
            self.observe_answered(id, packet);
            self.complete(now, id, Outcome::Answered(code), Some(packet));
        }
    }

    /// A CON or NON response from a client: a notification of our observation or a separate
    /// response; anything else gets RST.
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: RawHeader,
        packet: &Packet,
    ) {
        let confirmable = header.kind == wire::CON;
        if let super::Seen::Duplicate(reply) = self.recent.check(from, header.message_id, now) {
            self.stats.duplicates += 1;
            if let Some(reply) = reply.filter(|_| confirmable) {
                let reply = reply.to_vec();
                self.send(from, reply);
            }
            return;
        }
        let campaign = self
            .by_peer
            .get(&from)
            .is_some_and(|&id| self.is_campaign_notification(id, packet));
        let registration = self
            .by_peer
            .get(&from)
            .and_then(|id| self.registrations.get_mut(id));
        let separate = registration.as_ref().is_some_and(|r| {
            r.exchange
                .as_ref()
                .is_some_and(|e| e.acknowledged && matches_token(e.token, packet))
        });
        let notification = campaign
            || registration.as_ref().is_some_and(|r| {
                matches_token(r.observe_token, packet) || matches_token(r.composite_token, packet)
            });
        let Some(registration) = registration.filter(|_| separate || notification) else {
            self.stats.notifications_rejected += 1;
            self.send(from, wire::empty(wire::RST, header.message_id));
            return;
        };
        let id = registration.id;
        let code = u8::from(packet.header.code);
        if separate {
            self.observe_answered(id, packet);
            self.complete(now, id, Outcome::Answered(code), Some(packet));
        } else {
            self.stats.notifications += 1;
            if campaign {
                self.campaign_notified(now, id, packet);
            } else if code >> 5 != 2 || packet.get_first_option(CoapOption::Observe).is_none() {
                // An error, or a final response without Observe, ends the observation (RFC 7641).
                if matches_token(registration.observe_token, packet) {
                    registration.observe_token = 0;
                } else {
                    registration.composite_token = 0;
                }
            }
        }
        if confirmable {
            let ack = wire::empty(wire::ACK, header.message_id);
            let expires = now + self.config.coap.exchange_lifetime;
            let cached = super::CachedReply::new(&ack);
            self.recent.insert(from, header.message_id, expires, cached);
            self.send(from, ack);
        } else {
            let expires = now + self.config.coap.non_lifetime;
            self.recent.insert(from, header.message_id, expires, None);
        }
        if campaign {
            self.flush(now, id);
        }
    }

    /// The answer to our Observe (or Observe-Composite): a 2.xx with an Observe option
    /// establishes the observation.
    fn observe_answered(&mut self, id: u32, packet: &Packet) {
        let Some(registration) = self.registrations.get_mut(&id) else {
            return;
        };
        let Some(exchange) = registration
            .exchange
            .as_ref()
            .filter(|e| matches!(e.op, Op::Observe | Op::ObserveComposite))
        else {
            return;
        };
        let established = u8::from(packet.header.code) >> 5 == 2
            && packet.get_first_option(CoapOption::Observe).is_some();
        let token = if established { exchange.token } else { 0 };
        if exchange.op == Op::Observe {
            registration.observe_token = token;
        } else {
            registration.composite_token = token;
        }
    }

    /// Ends the exchange in flight, counts it, and frees the NSTART slot for the next request.
    fn complete(&mut self, now: Instant, id: u32, outcome: Outcome, answer: Option<&Packet>) {
        let Some(exchange) = self
            .registrations
            .get_mut(&id)
            .and_then(|r| r.exchange.take())
        else {
            return;
        };
        let stats = self.op_stats(exchange.op);
        match outcome {
            Outcome::Answered(code) => stats.answered(code),
            Outcome::Timeout => stats.timeout += 1,
            Outcome::Reset => stats.reset += 1,
        }
        if exchange.op == Op::Campaign {
            self.campaign_answered(now, id, exchange.token, answer);
        }
        let unresponsive_after = self.config.unresponsive_after;
        if let Some(registration) = self.registrations.get_mut(&id) {
            if matches!(outcome, Outcome::Timeout) {
                registration.timeouts_in_row = registration.timeouts_in_row.saturating_add(1);
                if registration.timeouts_in_row == unresponsive_after {
                    // Maybe not a device at all: a spoofed Register naming someone else.
                    self.stats.limits.unresponsive += 1;
                }
            } else {
                registration.timeouts_in_row = 0;
            }
        }
        self.flush(now, id);
    }
}
