//! Register, Update, De-register and expiry: the registration store and its indexes.

use std::net::SocketAddr;
use std::sync::Arc;

use coap_lite::{Packet, ResponseType};
use rand::Rng;

use super::registry::{Refusal, location_id, parse_register, parse_update};
use super::timers::TimerKind;
use super::{Answer, ObjectLinks, Registration, Server};
use crate::clock::Instant;
use crate::coap::message;

impl Server {
    /// The link-format payload of a Register or Update; `Ok(None)` when there is none.
    fn links(&mut self, request: &Packet) -> Result<Option<Arc<ObjectLinks>>, Answer> {
        if request.payload.is_empty() {
            return Ok(None);
        }
        match message::content_format(request) {
            Ok(None | Some(40)) => {}
            _ => return Err(Answer::code(ResponseType::UnsupportedContentFormat)),
        }
        let links = ObjectLinks::parse(&request.payload)
            .ok_or_else(|| Answer::code(ResponseType::BadRequest))?;
        Ok(Some(self.intern(links)))
    }

    fn intern(&mut self, links: ObjectLinks) -> Arc<ObjectLinks> {
        if let Some(shared) = self.link_sets.get(&links) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(links);
        self.link_sets.insert(Arc::clone(&shared));
        shared
    }

    /// Drops a shared object list nobody uses any more (the set holds one reference).
    fn release(&mut self, links: &Arc<ObjectLinks>) {
        if Arc::strong_count(links) == 2 {
            self.link_sets.remove(&**links);
        }
    }

    pub(super) fn register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        query: &[(&str, Option<&str>)],
        request: &Packet,
    ) -> Answer {
        let params = match parse_register(query) {
            Ok(params) => params,
            Err(Refusal::BadRequest) => return Answer::code(ResponseType::BadRequest),
            Err(Refusal::Unsupported) => return Answer::code(ResponseType::PreconditionFailed),
        };
        if params.lifetime > self.config.max_lifetime {
            self.stats.limits.lifetime_too_long += 1;
            return Answer::code(ResponseType::BadRequest);
        }
        let known = self.by_endpoint.get(params.endpoint).copied();
        if known.is_none() && self.registrations.len() >= self.config.max_registrations {
            self.stats.limits.registrations_full += 1;
            return Answer::code(ResponseType::ServiceUnavailable);
        }
        let links = match self.links(request) {
            Ok(links) => links.unwrap_or_else(|| self.intern(ObjectLinks::default())),
            Err(answer) => return answer,
        };
        if let Some(old) = known {
            self.stats.replaced += 1;
            self.remove(old);
        }
        let id = self.fresh_id();
        let tag = self.ids.random();
        let endpoint: Arc<str> = Arc::from(params.endpoint);
        let mut registration = Registration {
            id,
            tag,
            endpoint: Arc::clone(&endpoint),
            peer: from,
            links,
            registered_at: now,
            last_update: now,
            expires: now,
            awake_until: now,
            lifetime: params.lifetime,
            next_message_id: self.rng.random(),
            version: params.version,
            binding: params.binding,
            queue_mode: params.queue_mode,
            pending: 0,
            held: 0,
            observe_token: 0,
            composite_token: 0,
            timeouts_in_row: 0,
            exchange: None,
        };
        registration.refresh(now, self.config.awake_window);
        self.timers
            .push(registration.expires, id, TimerKind::Expiry);
        self.registrations.insert(id, registration);
        self.by_endpoint.insert(endpoint, id);
        self.by_peer.insert(from, id);
        self.stats.registers += 1;
        self.stats.registered = self.registrations.len() as u64;
        self.start_load(now, id);
        self.campaign_registered(now, id);
        Answer {
            created: Some(location_id(tag, id)),
            flush: Some(id),
            ..Answer::code(ResponseType::Created)
        }
    }

    pub(super) fn update(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: u32,
        query: &[(&str, Option<&str>)],
        request: &Packet,
    ) -> Answer {
        if !self.registrations.contains_key(&id) {
            return Answer::code(ResponseType::NotFound);
        }
        let Ok(update) = parse_update(query) else {
            return Answer::code(ResponseType::BadRequest);
        };
        if update
            .lifetime
            .is_some_and(|lt| lt > self.config.max_lifetime)
        {
            self.stats.limits.lifetime_too_long += 1;
            return Answer::code(ResponseType::BadRequest);
        }
        let links = match self.links(request) {
            Ok(links) => links,
            Err(answer) => return answer,
        };
        let window = self.config.awake_window;
        let Some(registration) = self.registrations.get_mut(&id) else {
            return Answer::code(ResponseType::NotFound);
        };
        registration.apply(&update);
        registration.refresh(now, window);
        // Heard from again: its requests go out once more.
        registration.timeouts_in_row = 0;
        let old_links = links.map(|links| std::mem::replace(&mut registration.links, links));
        // The client may come back from another address (NAT rebinding, a new port).
        let old_peer = std::mem::replace(&mut registration.peer, from);
        if old_peer != from {
            if self.by_peer.get(&old_peer) == Some(&id) {
                self.by_peer.remove(&old_peer);
            }
            self.by_peer.insert(from, id);
        }
        if let Some(old) = old_links {
            self.release(&old);
        }
        self.stats.updates += 1;
        Answer {
            flush: Some(id),
            ..Answer::code(ResponseType::Changed)
        }
    }

    fn fresh_id(&mut self) -> u32 {
        // Ids are never reused while alive: stale timers recognise their registration by id.
        while self.registrations.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = id.wrapping_add(1);
        id
    }

    /// Ends a registration: its exchange in flight is aborted, its held requests discarded.
    pub(super) fn remove(&mut self, id: u32) {
        let Some(registration) = self.registrations.remove(&id) else {
            return;
        };
        if self.by_endpoint.get(&registration.endpoint) == Some(&id) {
            self.by_endpoint.remove(&registration.endpoint);
        }
        if self.by_peer.get(&registration.peer) == Some(&id) {
            self.by_peer.remove(&registration.peer);
        }
        if let Some(exchange) = &registration.exchange {
            self.op_stats(exchange.op).aborted += 1;
        }
        self.stats.queue.discarded += u64::from(registration.held.count_ones());
        self.stats.registered = self.registrations.len() as u64;
        self.release(&registration.links);
    }

    /// An expiry timer: the registration goes unless an Update moved its expiry later.
    pub(super) fn check_expiry(&mut self, at: Instant, id: u32) {
        let Some(registration) = self.registrations.get(&id) else {
            return;
        };
        if registration.expires > at {
            self.timers
                .push(registration.expires, id, TimerKind::Expiry);
        } else {
            self.stats.expired += 1;
            self.remove(id);
        }
    }
}
