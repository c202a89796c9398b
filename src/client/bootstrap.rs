//! Client-initiated bootstrap (the LWM2M 1.1 Bootstrap interface; 1.0 where it differs): the
//! Bootstrap-Request, the bootstrap server's Write, Delete, Discover and Read, the
//! Bootstrap-Finish, then the switch to the LWM2M server the written Security instance names,
//! over DTLS with the written PSK when its mode says so. A failed bootstrap is retried on the
//! registration retry procedure's schedule; a registration procedure that fails for good
//! bootstraps again when the Server object says so (`/1/x/16`, default true).
//!
//! Only bootstrapping clients hold this state (one box); the others pay one null pointer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use super::operations::{Answer, has_unknown_critical, operation_kind};
use super::secure::Secure;
use super::{Client, ClientState, Deferred, Event, OperationKind, Outgoing, RequestKind, Version};
use crate::clock::Instant;
use crate::coap::message;
use crate::content::ContentFormat;
use crate::content::link::{Link, format_links};
use crate::model::{Path, Record, Value};
use crate::security::Psk;

const CHANGED: u8 = 0x44;
/// Security mode (`/0/x/2`) values this client can use.
const MODE_PSK: i64 = 0;
const MODE_NO_SEC: i64 = 3;

/// Why a bootstrap failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootstrapFailure {
    /// The Bootstrap-Request was answered with this error code.
    Rejected(u8),
    /// The Bootstrap-Request timed out, was reset, or lost its DTLS session.
    RequestFailed,
    /// No Bootstrap-Finish within the finish timeout.
    FinishTimeout,
    /// The Finish came, but the configuration cannot be used (answered 4.06).
    Unusable,
    /// The DTLS handshake with the bootstrap server failed.
    Handshake,
}

impl BootstrapFailure {
    /// A short stable name for reports.
    pub fn name(self) -> &'static str {
        match self {
            BootstrapFailure::Rejected(_) => "rejected",
            BootstrapFailure::RequestFailed => "request-failed",
            BootstrapFailure::FinishTimeout => "finish-timeout",
            BootstrapFailure::Unusable => "unusable-configuration",
            BootstrapFailure::Handshake => "handshake-failed",
        }
    }
}

/// How one bootstrap attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootstrapOutcome {
    /// Bootstrap-Finish came and the configuration is usable.
    Finished,
    Failed(BootstrapFailure),
    /// The client stopped first.
    Aborted,
}

/// One bootstrap attempt, from when its Bootstrap-Request was due to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootstrapRecord {
    pub started: Instant,
    pub completed: Instant,
    pub outcome: BootstrapOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No attempt under way: bootstrapped, or waiting for `retry_at`.
    Idle,
    /// The Bootstrap-Request is queued or in flight.
    Requesting,
    /// The bootstrap server accepted the request: its writes come, then the Finish, by then.
    Provisioning { deadline: Instant },
}

/// The LWM2M server a Bootstrap-Finish found configured.
#[derive(Debug)]
struct Account {
    server: SocketAddr,
    psk: Option<Psk>,
    lifetime: Option<Duration>,
    binding: Option<Box<str>>,
}

#[derive(Debug)]
pub(super) struct Bootstrap {
    phase: Phase,
    /// When the current attempt's Bootstrap-Request was due.
    started: Instant,
    /// Failed attempts in a row.
    failures: u32,
    retry_at: Option<Instant>,
    /// Found at the Finish, applied once its answer is out.
    pending: Option<Box<Account>>,
    /// The LWM2M server once bootstrapped; `None`: the bootstrap server (`config.server`).
    server: Option<SocketAddr>,
    /// `/1/x/7` as written, for `b=`.
    binding: Option<Box<str>>,
    /// The bootstrap server's PSK, kept while the client talks to its LWM2M server with the
    /// written one.
    credentials: Option<Psk>,
    /// DTLS records still to go to a server the client just left (its `close_notify`).
    parting: Vec<(SocketAddr, Vec<u8>)>,
}

impl Bootstrap {
    fn new(started: Instant) -> Self {
        Bootstrap {
            phase: Phase::Idle,
            started,
            failures: 0,
            retry_at: None,
            pending: None,
            server: None,
            binding: None,
            credentials: None,
            parting: Vec::new(),
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        let psk = |p: &Psk| p.identity.capacity() + p.key.capacity();
        size_of::<Bootstrap>()
            + self.pending.as_ref().map_or(0, |a| {
                size_of::<Account>()
                    + a.psk.as_ref().map_or(0, psk)
                    + a.binding.as_ref().map_or(0, |b| b.len())
            })
            + self.binding.as_ref().map_or(0, |b| b.len())
            + self.credentials.as_ref().map_or(0, psk)
            + self.parting.capacity() * size_of::<(SocketAddr, Vec<u8>)>()
            + self
                .parting
                .iter()
                .map(|(_, r)| r.capacity())
                .sum::<usize>()
    }
}

impl Client {
    /// Where requests go now: the bootstrapped LWM2M server, or the configured one (the
    /// bootstrap server while bootstrapping).
    pub fn server(&self) -> SocketAddr {
        self.bootstrap
            .as_ref()
            .and_then(|b| b.server)
            .unwrap_or(self.config.server)
    }

    /// The binding the bootstrap server wrote (`/1/x/7`), if any.
    pub(super) fn written_binding(&self) -> Option<&str> {
        self.bootstrap.as_ref()?.binding.as_deref()
    }

    /// First start of a bootstrapping client: its Security and Server objects hold only the
    /// bootstrap account, as a device fresh from the factory, and a Bootstrap-Request is due.
    pub(super) fn begin_bootstrap(&mut self, due: Instant) {
        self.bootstrap = Some(Box::new(Bootstrap::new(due)));
        self.provision_bootstrap_account();
        self.enqueue_bootstrap(due);
    }

    fn provision_bootstrap_account(&mut self) {
        // The template's first Security instance becomes the account; the rest goes.
        let account = self.device.instances(0).first().copied().unwrap_or(0);
        for object in [0, 1] {
            for instance in self.device.instances(object) {
                if (object, instance) != (0, account) {
                    self.device.remove_instance(object, instance);
                }
            }
        }
        let scheme = if self.secure.is_some() {
            "coaps"
        } else {
            "coap"
        };
        let mode = if self.secure.is_some() {
            MODE_PSK
        } else {
            MODE_NO_SEC
        };
        let records = [
            (
                0,
                Value::String(format!("{scheme}://{}", self.config.server)),
            ),
            (1, Value::Boolean(true)),
            (2, Value::Integer(mode)),
        ]
        .map(|(resource, value)| Record {
            path: Path::resource(0, account, resource),
            value,
        });
        // Its other resources stay the template's, at no cost.
        for record in records {
            // A template without a Security object has nowhere to keep the account: the
            // client still knows its bootstrap server from its configuration.
            if self.device.provision(record.clone()).is_err() {
                let _ = self
                    .device
                    .bootstrap_write(&Path::instance(0, account), &[record]);
            }
        }
    }

    fn enqueue_bootstrap(&mut self, intended: Instant) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        b.phase = Phase::Requesting;
        b.started = intended;
        b.retry_at = None;
        self.set_state(ClientState::Bootstrapping);
        self.enqueue(Outgoing::Bootstrap, intended);
    }

    /// `POST /bs?ep=NAME` (and `pct=` from 1.1 on, when a format is preferred).
    pub(super) fn send_bootstrap_request(&mut self, now: Instant, intended: Instant) {
        let mut packet = message::request(
            RequestType::Post,
            &["bs"],
            &[],
            None,
            Vec::new(),
            crate::coap::Token::default(),
        );
        let ep = format!("ep={}", self.endpoint_name);
        packet.add_option(CoapOption::UriQuery, ep.into_bytes());
        let preferred = self
            .config
            .bootstrap
            .as_ref()
            .and_then(|c| c.preferred_format)
            .filter(|_| self.config.version >= Version::V1_1);
        if let Some(format) = preferred {
            let pct = format!("pct={}", format.code());
            packet.add_option(CoapOption::UriQuery, pct.into_bytes());
        }
        self.send_request(now, RequestKind::Bootstrap, intended, packet);
    }

    /// The Bootstrap-Request's answer: 2.04 opens the wait for the Finish.
    pub(super) fn on_bootstrap_answer(&mut self, now: Instant, code: u8) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        // A Finish that overtook the answer has settled this attempt already.
        if b.phase != Phase::Requesting {
            return;
        }
        if code == CHANGED {
            let timeout = self
                .config
                .bootstrap
                .as_ref()
                .map_or(Duration::from_secs(93), |c| c.finish_timeout);
            b.phase = Phase::Provisioning {
                deadline: now + timeout,
            };
        } else {
            self.bootstrap_failed(now, BootstrapFailure::Rejected(code));
        }
    }

    /// The Bootstrap-Request timed out, was reset or its session was lost.
    pub(super) fn on_bootstrap_request_failed(&mut self, now: Instant) {
        if self
            .bootstrap
            .as_ref()
            .is_some_and(|b| b.phase == Phase::Requesting)
        {
            self.bootstrap_failed(now, BootstrapFailure::RequestFailed);
        }
    }

    /// The DTLS handshake with the bootstrap server failed (queued requests are already
    /// counted unsent).
    pub(super) fn on_bootstrap_handshake_failed(&mut self, now: Instant) {
        if self
            .bootstrap
            .as_ref()
            .is_some_and(|b| b.phase != Phase::Idle)
        {
            self.bootstrap_failed(now, BootstrapFailure::Handshake);
        }
    }

    /// Ends the attempt as failed; the next one follows the retry procedure, or the client
    /// gives up.
    fn bootstrap_failed(&mut self, now: Instant, failure: BootstrapFailure) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        let started = b.started;
        b.phase = Phase::Idle;
        b.pending = None;
        b.failures += 1;
        let delay = self.config.retry.delay_after(b.failures);
        b.retry_at = delay.map(|d| now + d);
        self.record_bootstrap(started, now, BootstrapOutcome::Failed(failure));
        if delay.is_none() {
            self.abort_queued(now);
            self.end_session(now, true);
            self.set_state(ClientState::Failed);
        }
    }

    fn record_bootstrap(&mut self, started: Instant, now: Instant, outcome: BootstrapOutcome) {
        self.events.push_back(Event::Bootstrap(BootstrapRecord {
            started,
            completed: now,
            outcome,
        }));
    }

    /// A client going offline mid-bootstrap: the attempt ends aborted.
    pub(super) fn abort_bootstrap(&mut self, now: Instant) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        b.retry_at = None;
        b.pending = None;
        if b.phase != Phase::Idle {
            b.phase = Phase::Idle;
            let started = b.started;
            self.record_bootstrap(started, now, BootstrapOutcome::Aborted);
        }
    }

    /// The next bootstrap deadline: a retry, or the end of the wait for the Finish.
    pub(super) fn bootstrap_deadline(&self) -> Option<Instant> {
        let b = self.bootstrap.as_deref()?;
        match b.phase {
            Phase::Provisioning { deadline } => Some(deadline),
            _ => b.retry_at,
        }
    }

    pub(super) fn bootstrap_timeout(&mut self, now: Instant) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if let Phase::Provisioning { deadline } = b.phase
            && deadline <= now
        {
            self.bootstrap_failed(now, BootstrapFailure::FinishTimeout);
            return;
        }
        if let Some(at) = b.retry_at.take_if(|at| *at <= now) {
            self.enqueue_bootstrap(at);
        }
    }

    /// DTLS records for a server the client left, before anything else.
    pub(super) fn poll_parting(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let b = self.bootstrap.as_deref_mut()?;
        if b.parting.is_empty() {
            return None;
        }
        let record = b.parting.remove(0);
        if b.parting.is_empty() {
            b.parting = Vec::new();
        }
        Some(record)
    }

    /// A request from the bootstrap server (the client is `Bootstrapping`).
    pub(super) fn bootstrap_request(
        &mut self,
        now: Instant,
        request: &Packet,
    ) -> (OperationKind, Path, Answer) {
        let MessageClass::Request(method) = request.header.code else {
            return (OperationKind::Other, Path::ROOT, refuse());
        };
        let segments = message::uri_path(request).unwrap_or_else(|_| vec!["?"]);
        if segments == ["bs"] {
            return match method {
                RequestType::Post => (OperationKind::BootstrapFinish, Path::ROOT, self.finish(now)),
                _ => (OperationKind::Other, Path::ROOT, refuse()),
            };
        }
        let Ok(path) = Path::from_segments(&segments) else {
            return (
                OperationKind::Other,
                Path::ROOT,
                Answer::code(ResponseType::NotFound),
            );
        };
        if has_unknown_critical(request) {
            return (
                OperationKind::Other,
                path,
                Answer::code(ResponseType::BadOption),
            );
        }
        let kind = operation_kind(method, &path, request);
        let answer = match kind {
            OperationKind::Discover => self.bootstrap_discover(now, &path),
            OperationKind::Read => self.bootstrap_read(now, &path, request),
            OperationKind::Write if method == RequestType::Put => {
                self.bootstrap_write(&path, request)
            }
            OperationKind::Delete => self.bootstrap_delete(now, &path),
            // Execute, Create, Observe, Write-Attributes, partial writes: not bootstrap operations.
            _ => refuse(),
        };
        (kind, path, answer)
    }

    /// Bootstrap-Write: any resource, instances created as needed.
    fn bootstrap_write(&mut self, path: &Path, request: &Packet) -> Answer {
        if path.is_root() || path.len() > 3 {
            return refuse();
        }
        let records = match self.decode_payload(path, request) {
            Ok(records) => records,
            Err(answer) => return answer,
        };
        match self.device.bootstrap_write(path, &records) {
            Ok(()) => Answer::code(ResponseType::Changed),
            Err(error) => error.into(),
        }
    }

    /// Bootstrap-Delete of `/`, `/o` or `/o/i`: everything there but the bootstrap account
    /// and the Device instance, which are kept (named directly: 4.00).
    fn bootstrap_delete(&mut self, now: Instant, path: &Path) -> Answer {
        let objects: Vec<u16> = match path.object_id() {
            None => self
                .device
                .template()
                .objects()
                .iter()
                .map(|o| o.def.id)
                .collect(),
            Some(object) if self.device.object_def(object).is_some() => vec![object],
            Some(_) => return Answer::code(ResponseType::NotFound),
        };
        if path.len() > 2 {
            return Answer::code(ResponseType::BadRequest);
        }
        if let Some(instance) = path.instance_id() {
            let object = objects[0];
            if !self.device.instances(object).contains(&instance) {
                return Answer::code(ResponseType::NotFound);
            }
            if self.is_protected(now, object, instance) {
                return Answer::code(ResponseType::BadRequest);
            }
            self.device.remove_instance(object, instance);
            return Answer::code(ResponseType::Deleted);
        }
        for object in objects {
            for instance in self.device.instances(object) {
                if !self.is_protected(now, object, instance) {
                    self.device.remove_instance(object, instance);
                }
            }
        }
        Answer::code(ResponseType::Deleted)
    }

    fn is_protected(&mut self, now: Instant, object: u16, instance: u16) -> bool {
        (object == 3 && instance == 0) || (object == 0 && self.is_bootstrap_account(now, instance))
    }

    fn is_bootstrap_account(&mut self, now: Instant, instance: u16) -> bool {
        matches!(
            self.value_at(now, Path::resource(0, instance, 1)),
            Some(Value::Boolean(true))
        )
    }

    fn value_at(&mut self, now: Instant, path: Path) -> Option<Value> {
        self.device.value(&path, now)
    }

    fn integer_at(&mut self, now: Instant, path: Path) -> Option<i64> {
        match self.value_at(now, path)? {
            Value::Integer(v) => Some(v),
            Value::UnsignedInteger(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Bootstrap-Discover of `/` or `/o`: the enabler version, then objects and instances, the
    /// Security and Server instances with their short server id and the Security ones with
    /// their server URI (the bootstrap account shows neither).
    fn bootstrap_discover(&mut self, now: Instant, path: &Path) -> Answer {
        if path.len() > 1 {
            return refuse();
        }
        if let Some(object) = path.object_id()
            && self.device.object_def(object).is_none()
        {
            return Answer::code(ResponseType::NotFound);
        }
        let found: Vec<(Path, Option<String>)> = self
            .device
            .bootstrap_paths()
            .into_iter()
            .filter(|(p, _)| path.is_root() || p.object_id() == path.object_id())
            .map(|(p, version)| (p, version.map(str::to_string)))
            .collect();
        let mut links = vec![Link {
            target: "/".to_string(),
            attributes: vec![(
                "lwm2m".to_string(),
                Some(self.config.version.as_str().to_string()),
            )],
        }];
        for (target, version) in found {
            let mut attributes = Vec::new();
            if let Some(version) = version {
                attributes.push(("ver".to_string(), Some(version)));
            }
            if let (Some(object), Some(instance)) = (target.object_id(), target.instance_id()) {
                self.account_attributes(now, object, instance, &mut attributes);
            }
            links.push(Link {
                target: target.to_string(),
                attributes,
            });
        }
        Answer::content(ContentFormat::LinkFormat, format_links(&links).into_bytes())
    }

    fn account_attributes(
        &mut self,
        now: Instant,
        object: u16,
        instance: u16,
        out: &mut Vec<(String, Option<String>)>,
    ) {
        let ssid_resource = match object {
            0 if !self.is_bootstrap_account(now, instance) => 10,
            1 => 0,
            _ => return,
        };
        if let Some(ssid) = self.integer_at(now, Path::resource(object, instance, ssid_resource)) {
            out.push(("ssid".to_string(), Some(ssid.to_string())));
        }
        if object == 0
            && let Some(Value::String(uri)) = self.value_at(now, Path::resource(0, instance, 0))
        {
            out.push(("uri".to_string(), Some(uri)));
        }
    }

    /// Bootstrap-Read (1.1 on): the Server and Access Control objects only.
    fn bootstrap_read(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        if self.config.version == Version::V1_0 || !matches!(path.object_id(), Some(1 | 2)) {
            return refuse();
        }
        self.read(now, path, request)
    }

    /// Bootstrap-Finish: 2.04 when a usable LWM2M server account is configured (the switch
    /// to it follows the answer), 4.06 when not (the attempt fails and is retried).
    fn finish(&mut self, now: Instant) -> Answer {
        let attempt = self.bootstrap.as_ref().map(|b| (b.phase, b.started));
        let Some((_, started)) = attempt.filter(|(p, _)| *p != Phase::Idle) else {
            // Not waiting for one (a late Finish after the attempt failed).
            return Answer::code(ResponseType::NotAcceptable);
        };
        let Some(account) = self.configured_account(now) else {
            self.bootstrap_failed(now, BootstrapFailure::Unusable);
            return Answer::code(ResponseType::NotAcceptable);
        };
        if let Some(b) = self.bootstrap.as_deref_mut() {
            b.phase = Phase::Idle;
            b.failures = 0;
            b.pending = Some(Box::new(account));
        }
        self.record_bootstrap(started, now, BootstrapOutcome::Finished);
        self.deferred = Some((Deferred::Bootstrapped, now));
        Answer::code(ResponseType::Changed)
    }

    /// The first Security instance that is no bootstrap account, has a Server instance with
    /// its short server id, a URI this client can reach (an IP address or `localhost`) and a
    /// mode it speaks (PSK over `coaps://`, `NoSec` over `coap://`).
    fn configured_account(&mut self, now: Instant) -> Option<Account> {
        let servers: Vec<(u16, i64)> = self
            .device
            .instances(1)
            .into_iter()
            .filter_map(|i| Some((i, self.integer_at(now, Path::resource(1, i, 0))?)))
            .collect();
        for instance in self.device.instances(0) {
            if self.is_bootstrap_account(now, instance) {
                continue;
            }
            let Some(ssid) = self.integer_at(now, Path::resource(0, instance, 10)) else {
                continue;
            };
            let Some(&(server_instance, _)) = servers.iter().find(|(_, s)| *s == ssid) else {
                continue;
            };
            if let Some(account) = self.account(now, instance, server_instance) {
                return Some(account);
            }
        }
        None
    }

    fn account(&mut self, now: Instant, security: u16, server: u16) -> Option<Account> {
        let Some(Value::String(uri)) = self.value_at(now, Path::resource(0, security, 0)) else {
            return None;
        };
        let uri = crate::fleet::parse_uri(&uri).ok()?;
        let ip = match uri.host.as_str() {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            host => host.parse().ok()?,
        };
        let opaque = |value: Option<Value>| match value {
            Some(Value::Opaque(bytes)) => Some(bytes),
            Some(Value::String(text)) => Some(text.into_bytes()),
            _ => None,
        };
        let psk = match (
            uri.scheme,
            self.integer_at(now, Path::resource(0, security, 2))?,
        ) {
            (crate::fleet::Scheme::Coap, MODE_NO_SEC) => None,
            (crate::fleet::Scheme::Coaps, MODE_PSK) => {
                let identity = opaque(self.value_at(now, Path::resource(0, security, 3)))?;
                let key = opaque(self.value_at(now, Path::resource(0, security, 5)))?;
                if identity.is_empty() || key.is_empty() {
                    return None;
                }
                Some(Psk { identity, key })
            }
            // Certificates, raw public keys, EST, or a mode that does not fit the scheme.
            _ => return None,
        };
        let lifetime = self
            .integer_at(now, Path::resource(1, server, 1))
            .filter(|secs| *secs > 0)
            .map(|secs| Duration::from_secs(secs.unsigned_abs()));
        let binding = match self.value_at(now, Path::resource(1, server, 7)) {
            Some(Value::String(b)) if !b.is_empty() => Some(b.into_boxed_str()),
            _ => None,
        };
        Some(Account {
            server: SocketAddr::new(ip, uri.port),
            psk,
            lifetime,
            binding,
        })
    }

    /// After the Finish's answer is out: leave the bootstrap server (saying goodbye over
    /// DTLS) and register with the configured server, with the written credentials.
    pub(super) fn apply_bootstrap(&mut self, now: Instant) {
        let bootstrap_server = self.config.server;
        let Some(account) = self.bootstrap.as_deref_mut().and_then(|b| b.pending.take()) else {
            return;
        };
        let leaving = self.secure.take().map(|s| s.close_into_parts());
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if let Some((psk, records)) = leaving {
            b.credentials = Some(psk);
            b.parting
                .extend(records.into_iter().map(|r| (bootstrap_server, r)));
        }
        b.server = Some(account.server);
        b.binding = account.binding;
        self.secure = account.psk.map(|psk| Box::new(Secure::new(psk)));
        if let Some(lifetime) = account.lifetime {
            self.lifetime = lifetime;
        }
        self.device.shrink_to_fit();
        self.register_failures = 0;
        self.enqueue_register(now);
    }

    /// Bootstraps again (the registration procedure failed for good, a Bootstrap-Request
    /// Trigger): the LWM2M server is left, and after the bootstrap account's hold-off time a
    /// Bootstrap-Request goes out. Returns false when the client does not bootstrap.
    pub(super) fn bootstrap_again(&mut self, now: Instant) -> bool {
        if self.bootstrap.is_none() {
            return false;
        }
        self.return_to_bootstrap_server(now);
        self.abort_queued(now);
        self.location = None;
        self.update_at = None;
        self.register_at = None;
        self.register_failures = 0;
        self.observations.clear();
        self.attributes.clear();
        let hold_off = self.hold_off(now);
        if hold_off.is_zero() {
            self.enqueue_bootstrap(now);
        } else {
            self.set_state(ClientState::Bootstrapping);
            if let Some(b) = self.bootstrap.as_deref_mut() {
                b.retry_at = Some(now + hold_off);
            }
        }
        true
    }

    /// A factory reset of a bootstrapping client (already offline): back to the bootstrap
    /// account alone, and a bootstrap once the reboot is over.
    pub(super) fn factory_bootstrap(&mut self, now: Instant) -> bool {
        if self.bootstrap.is_none() {
            return false;
        }
        self.return_to_bootstrap_server(now);
        self.provision_bootstrap_account();
        let reboot = self.config.reboot_time;
        if let Some(b) = self.bootstrap.as_deref_mut() {
            b.retry_at = Some(now + reboot);
        }
        true
    }

    /// Leaves the LWM2M server (a `close_notify` over DTLS) and takes the bootstrap server's
    /// credentials back.
    fn return_to_bootstrap_server(&mut self, now: Instant) {
        let left = self.server();
        self.end_session(now, true);
        let leaving = self.secure.take().map(|s| s.close_into_parts());
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if let Some((_, records)) = leaving {
            b.parting.extend(records.into_iter().map(|r| (left, r)));
        }
        b.server = None;
        b.binding = None;
        b.failures = 0;
        self.secure = b.credentials.clone().map(|psk| Box::new(Secure::new(psk)));
    }

    /// Client Hold Off Time of the bootstrap account (`/0/x/11`): the wait before a fallback
    /// bootstrap.
    fn hold_off(&mut self, now: Instant) -> Duration {
        let account = self
            .device
            .instances(0)
            .into_iter()
            .find(|i| self.is_bootstrap_account(now, *i));
        account
            .and_then(|i| self.integer_at(now, Path::resource(0, i, 11)))
            .map_or(Duration::ZERO, |secs| {
                Duration::from_secs(secs.unsigned_abs())
            })
    }

    /// Whether a registration procedure that failed for good should bootstrap again
    /// (`/1/x/16` Bootstrap on Registration Failure, true when absent).
    pub(super) fn bootstrap_on_registration_failure(&mut self, now: Instant) -> bool {
        if self.bootstrap.is_none() {
            return false;
        }
        let instance = self.device.instances(1).first().copied().unwrap_or(0);
        !matches!(
            self.value_at(now, Path::resource(1, instance, 16)),
            Some(Value::Boolean(false))
        )
    }
}

/// An operation the Bootstrap interface does not have, or a target it does not allow.
fn refuse() -> Answer {
    Answer::code(ResponseType::MethodNotAllowed)
}
