//! Client-initiated bootstrap (the LWM2M 1.1 Bootstrap interface; 1.0 where it differs): the
//! Bootstrap-Request, the bootstrap server's Write, Delete, Discover and Read, the
//! Bootstrap-Finish, then the switch to the LWM2M server the written Security instance names,
//! over DTLS with the written PSK when its mode says so. A failed bootstrap is retried on the
//! registration retry procedure's schedule; a registration procedure that fails for good
//! bootstraps again when the Server object says so (`/1/x/16`, default true).
//!
//! Only bootstrapping clients hold this state (one box); the others pay one null pointer.

mod interface;

use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, RequestType};

use super::secure::Secure;
use super::{
    Client, ClientState, Event, InFlight, LwM2mVersion, Outgoing, RequestKind, RequestOutcome,
};
use crate::clock::Instant;
use crate::coap::message;
use crate::model::{Path, Record, Value};
use crate::security::{Credential, Psk};

const CHANGED: u8 = 0x44;
/// Security mode (`/0/x/2`) values this client can use.
const MODE_PSK: i64 = 0;
const MODE_CERTIFICATE: i64 = 2;
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

/// The bootstrap server's DTLS session, kept open a while after the switch: should the
/// answer to the Finish be lost, the retransmitted Finish is answered again (from the CoAP
/// dedup cache) on it.
#[derive(Debug)]
struct Lingering {
    server: SocketAddr,
    secure: Box<Secure>,
    /// The bootstrap server's `MAX_TRANSMIT_WAIT` after the Finish: it has given up by then.
    until: Instant,
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
    /// The bootstrap server's credentials, kept while the client talks to its LWM2M server with
    /// the written ones.
    credentials: Option<Credential>,
    /// DTLS records still to go to a server the client just left (its `close_notify`).
    parting: Vec<(SocketAddr, Vec<u8>)>,
    lingering: Option<Box<Lingering>>,
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
            lingering: None,
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
            + self.credentials.as_ref().map_or(0, Credential::heap_bytes)
            + self.parting.capacity() * size_of::<(SocketAddr, Vec<u8>)>()
            + self
                .parting
                .iter()
                .map(|(_, r)| r.capacity())
                .sum::<usize>()
            + self
                .lingering
                .as_ref()
                .map_or(0, |l| size_of::<Lingering>() + l.secure.heap_bytes())
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
        self.provision_bootstrap_account(due);
        self.enqueue_bootstrap(due);
    }

    fn provision_bootstrap_account(&mut self, now: Instant) {
        // The bootstrap account keeps its id (a bootstrap server may have moved it); fresh
        // from the factory, the template's first Security instance becomes it. The rest goes.
        let account = self
            .bootstrap_account(now)
            .or_else(|| self.device.instances(0).first().copied())
            .unwrap_or(0);
        for object in [0, 1] {
            for instance in self.device.instances(object) {
                if (object, instance) != (0, account) {
                    self.device.remove_instance(object, instance);
                }
            }
        }
        let (scheme, mode) = match self.secure.as_deref().map(Secure::credential) {
            None => ("coap", MODE_NO_SEC),
            Some(Credential::Psk(_)) => ("coaps", MODE_PSK),
            #[cfg(feature = "openssl")]
            Some(Credential::OpensslPsk(..)) => ("coaps", MODE_PSK),
            Some(Credential::Certificate(_)) => ("coaps", MODE_CERTIFICATE),
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
            .filter(|_| self.config.version >= LwM2mVersion::V1_1);
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
        // A Bootstrap-Request still out (a Finish overtook its answer) ends with its attempt:
        // left out, its timeout would fail the next attempt, whose request it holds back.
        self.give_up_in_flight(now, |f| f.kind == RequestKind::Bootstrap);
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        let delay = self.config.retry.delay_after(b.failures);
        b.retry_at = delay.map(|d| now + d);
        self.record_bootstrap(started, now, BootstrapOutcome::Failed(failure));
        if delay.is_none() {
            self.abort_queued(now);
            self.end_session(now, true);
            self.set_state(ClientState::Failed);
        }
    }

    /// Ends the requests in flight that `which` picks as aborted (their exchanges dropped):
    /// they belong to an attempt or a server the client is done with, and would hold the
    /// NSTART slot until their retransmissions run out.
    fn give_up_in_flight(&mut self, now: Instant, which: impl Fn(&InFlight) -> bool) {
        let (stale, others): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(which);
        self.in_flight = others;
        for request in stale {
            self.coap.give_up(request.token);
            self.record_end(&request, now, RequestOutcome::Aborted);
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
        self.end_lingering();
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

    /// The next bootstrap deadline: a retry, the end of the wait for the Finish, or the end of
    /// the bootstrap server's lingering session.
    pub(super) fn bootstrap_deadline(&self) -> Option<Instant> {
        let b = self.bootstrap.as_deref()?;
        let attempt = match b.phase {
            Phase::Provisioning { deadline } => Some(deadline),
            _ => b.retry_at,
        };
        let lingering = b.lingering.as_ref().map(|l| l.until);
        attempt.into_iter().chain(lingering).min()
    }

    pub(super) fn bootstrap_timeout(&mut self, now: Instant) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if b.lingering.as_ref().is_some_and(|l| l.until <= now) {
            self.end_lingering();
        }
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

    /// Closes the bootstrap server's lingering session (`close_notify`).
    pub(super) fn end_lingering(&mut self) {
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if let Some(lingering) = b.lingering.take() {
            let (_, records) = lingering.secure.close_into_parts();
            b.parting
                .extend(records.into_iter().map(|r| (lingering.server, r)));
        }
    }

    /// A DTLS record from the bootstrap server after the switch, while its session lingers:
    /// its CoAP goes through the usual path (a retransmitted Finish meets the dedup cache).
    /// Returns false when no session lingers for `from`.
    pub(super) fn handle_lingering_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        let Some(lingering) = self
            .bootstrap
            .as_deref_mut()
            .and_then(|b| b.lingering.as_deref_mut())
            .filter(|l| l.server == from)
        else {
            return false;
        };
        let plaintexts = lingering.secure.receive(now, bytes);
        for plaintext in plaintexts {
            self.handle_coap(now, from, &plaintext, true);
        }
        true
    }

    /// The lingering session's records, and CoAP datagrams for the bootstrap server
    /// encrypted in it.
    pub(super) fn poll_lingering(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        let lingering = self.bootstrap.as_deref_mut()?.lingering.as_deref_mut()?;
        let to_it = self.coap.next_transmit_to() == Some(lingering.server);
        let plaintext = to_it.then(|| self.coap.poll_transmit()).flatten();
        let record = lingering.secure.seal(plaintext.map(|(_, p)| p))?;
        Some((lingering.server, record))
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

    /// After the Finish's answer is out: leave the bootstrap server (its DTLS session lingers
    /// for a retransmitted Finish) and register with the configured server, with the written
    /// credentials.
    pub(super) fn apply_bootstrap(&mut self, now: Instant) {
        let bootstrap_server = self.config.server;
        let Some(account) = self.bootstrap.as_deref_mut().and_then(|b| b.pending.take()) else {
            return;
        };
        // A Bootstrap-Request still out (the Finish overtook its answer) is given up: its
        // answer would come on the session being closed.
        self.give_up_in_flight(now, |f| f.kind == RequestKind::Bootstrap);
        let leaving = self.secure.take();
        let until = now + self.config.coap.max_transmit_wait();
        let Some(b) = self.bootstrap.as_deref_mut() else {
            return;
        };
        if let Some(secure) = leaving {
            b.credentials = Some(secure.credential().clone());
            b.lingering = Some(Box::new(Lingering {
                server: bootstrap_server,
                secure,
                until,
            }));
        }
        b.server = Some(account.server);
        b.binding = account.binding;
        self.secure = account
            .psk
            .map(|psk| Box::new(Secure::new(Credential::Psk(psk))));
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
        self.clear_observations();
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
        self.provision_bootstrap_account(now);
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
        // Updates and notifications for the server left: over DTLS they would be resent on
        // the bootstrap server's session.
        self.give_up_in_flight(now, |_| true);
        self.end_session(now, true);
        self.end_lingering();
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
        self.secure = b.credentials.clone().map(|c| Box::new(Secure::new(c)));
    }

    /// Client Hold Off Time of the bootstrap account (`/0/x/11`): the wait before a fallback
    /// bootstrap.
    fn hold_off(&mut self, now: Instant) -> Duration {
        self.bootstrap_account(now)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::client::{ClientBootstrapConfig, ClientConfig};
    use crate::security::x509::tests::authority;
    use crate::security::x509::{DeviceCertificates, DeviceSource, PeerVerifier};

    fn device() -> crate::model::Device {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
        let set = crate::model::TemplateSet::load_dir(std::path::Path::new(dir)).unwrap();
        crate::model::Device::new(set.device("environment-sensor").unwrap(), 1, 1_700_000_000)
    }

    /// The Security Mode (`/0/x/2`) of the bootstrap account a client starts with.
    fn account_mode(credential: Option<Credential>) -> Option<Value> {
        let config = ClientConfig {
            bootstrap: Some(ClientBootstrapConfig::default()),
            ..ClientConfig::default()
        };
        let mut client = Client::new(Arc::new(config), "dev-1", device(), 1);
        if let Some(credential) = credential {
            client = client.with_credential(credential);
        }
        let now = Instant::ZERO;
        client.start(now);
        let account = client.device.instances(0)[0];
        client.value_at(now, Path::resource(0, account, 2))
    }

    #[test]
    fn the_bootstrap_account_names_the_security_mode_in_use() {
        let psk = Credential::Psk(Psk {
            identity: b"dev-1".to_vec(),
            key: vec![7; 16],
        });
        let certificates = DeviceCertificates::new(
            DeviceSource::Issued {
                authority: Box::new(authority("Fleet CA")),
                master: b"m".to_vec(),
            },
            PeerVerifier::AcceptAny,
        );
        let certificate = Credential::Certificate(Arc::new(certificates));
        assert_eq!(account_mode(None), Some(Value::Integer(MODE_NO_SEC)));
        assert_eq!(account_mode(Some(psk)), Some(Value::Integer(MODE_PSK)));
        assert_eq!(
            account_mode(Some(certificate)),
            Some(Value::Integer(MODE_CERTIFICATE))
        );
    }
}
