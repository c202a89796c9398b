//! Register, Update and De-register, and the 1.1 registration procedure on failures.

use std::time::Duration;

use coap_lite::{CoapOption, Packet, RequestType};
use rand::Rng;

use super::{Client, ClientState, LwM2mVersion, Outgoing, RequestKind};
use crate::clock::Instant;
use crate::coap::message;
use crate::content::ContentFormat;
use crate::content::link::{Link, format_links};
use crate::model::{Path, Value};

const CREATED: u8 = 0x41;
const CHANGED: u8 = 0x44;
const NOT_FOUND: u8 = 0x84;
/// RFC 7252 `MAX_TRANSMIT_WAIT`: an Update sent later than this before expiry may not land in time.
const MAX_TRANSMIT_WAIT: Duration = Duration::from_secs(93);

impl Client {
    pub(super) fn enqueue_register(&mut self, intended: Instant) {
        if !self.queue.iter().any(|q| q.what == Outgoing::Register) {
            self.set_state(ClientState::Registering);
            self.enqueue(Outgoing::Register, intended);
        }
    }

    /// Queues an Update unless one is already waiting; in queue mode it goes first.
    pub(super) fn enqueue_update(&mut self, intended: Instant) {
        if self.location.is_none() || self.queue.iter().any(|q| q.what == Outgoing::Update) {
            return;
        }
        self.update_at = None;
        self.queue.push_front(super::Queued {
            what: Outgoing::Update,
            intended,
        });
    }

    pub(super) fn send_register(&mut self, now: Instant, intended: Instant) {
        let mut packet = request(RequestType::Post, &["rd"]);
        let mut query = vec![
            format!("ep={}", self.endpoint_name),
            format!("lt={}", self.lifetime.as_secs()),
            format!("lwm2m={}", self.config.version.as_str()),
            format!("b={}", self.binding()),
        ];
        if self.config.queue_mode && self.config.version >= LwM2mVersion::V1_1 {
            query.push("Q".to_string());
        }
        for item in query {
            packet.add_option(CoapOption::UriQuery, item.into_bytes());
        }
        self.add_object_links(&mut packet);
        self.send_objects = false;
        self.send_lifetime = false;
        self.send_request(now, RequestKind::Register, intended, packet);
    }

    pub(super) fn send_update(&mut self, now: Instant, intended: Instant) {
        let Some(location) = self.location.clone() else {
            self.record_unsent(RequestKind::Update, intended, now);
            return;
        };
        let segments: Vec<&str> = location.split('/').collect();
        let mut packet = request(RequestType::Post, &segments);
        if self.send_lifetime {
            let lt = format!("lt={}", self.lifetime.as_secs());
            packet.add_option(CoapOption::UriQuery, lt.into_bytes());
            self.send_lifetime = false;
        }
        if self.send_objects {
            self.add_object_links(&mut packet);
            self.send_objects = false;
        }
        self.send_request(now, RequestKind::Update, intended, packet);
    }

    pub(super) fn send_deregister(&mut self, now: Instant, intended: Instant) {
        let Some(location) = self.location.clone() else {
            self.record_unsent(RequestKind::Deregister, intended, now);
            self.set_state(ClientState::Stopped);
            return;
        };
        let segments: Vec<&str> = location.split('/').collect();
        let packet = request(RequestType::Delete, &segments);
        self.send_request(now, RequestKind::Deregister, intended, packet);
    }

    pub(super) fn on_register_answer(
        &mut self,
        now: Instant,
        code: u8,
        packet: &coap_lite::Packet,
    ) {
        if code != CREATED {
            self.on_register_failed(now);
            return;
        }
        let location = message::location_path(packet).unwrap_or_default();
        if location.is_empty() {
            self.on_register_failed(now);
            return;
        }
        self.location = Some(location.join("/").into_boxed_str());
        self.register_failures = 0;
        // A new registration ends the observations of the old one.
        self.clear_observations();
        self.set_state(ClientState::Registered);
        self.schedule_update(now);
        self.schedule_first_send(now);
        self.firmware_registered(now);
    }

    pub(super) fn on_update_answer(&mut self, now: Instant, code: u8) {
        // Stopping or disabling: the answer no longer steers anything.
        if self.state != ClientState::Registered {
            return;
        }
        match code {
            CHANGED => self.schedule_update(now),
            NOT_FOUND => self.register_again(now),
            _ => self.on_update_failed(now),
        }
    }

    /// An Update that fails leaves the client unsure it is registered: register again.
    pub(super) fn on_update_failed(&mut self, now: Instant) {
        if self.state == ClientState::Registered {
            self.register_again(now);
        }
    }

    pub(super) fn register_again(&mut self, now: Instant) {
        self.location = None;
        self.update_at = None;
        self.clear_observations();
        self.enqueue_register(now);
    }

    pub(super) fn on_deregister_answer(&mut self, now: Instant) {
        self.location = None;
        self.clear_observations();
        if self.state == ClientState::Deregistering {
            // A Disable keeps a Reboot deferred: the client comes back after the timeout.
            let disabled = self.deferred.is_some();
            self.end_session(now, true);
            self.set_state(if disabled {
                ClientState::Rebooting
            } else {
                ClientState::Stopped
            });
        }
    }

    pub(super) fn on_register_failed(&mut self, now: Instant) {
        if self.state != ClientState::Registering {
            return;
        }
        self.register_failures += 1;
        if let Some(delay) = self.config.retry.delay_after(self.register_failures) {
            self.register_at = Some(now + delay);
        } else if !(self.bootstrap_on_registration_failure(now) && self.bootstrap_again(now)) {
            self.end_session(now, true);
            self.set_state(ClientState::Failed);
        }
    }

    /// Next Update at the configured fraction of the lifetime, jittered, and never later than
    /// `MAX_TRANSMIT_WAIT` before expiry (half the lifetime when it is that short), as wakaama does.
    pub(super) fn schedule_update(&mut self, now: Instant) {
        let jitter = self.config.update_jitter;
        let fraction = if jitter > 0.0 {
            self.config.update_fraction + self.rng.random_range(-jitter..=jitter)
        } else {
            self.config.update_fraction
        };
        self.update_at = Some(now + update_delay(self.lifetime, fraction));
    }

    /// `/1/x/5` Disable Timeout, default 86400 s.
    pub(super) fn disable_timeout(&mut self) -> Duration {
        let path = Path::resource(1, 0, 5);
        match self
            .device
            .read(&path, Instant::ZERO)
            .ok()
            .and_then(|r| r.into_iter().next())
        {
            Some(record) => match record.value {
                Value::Integer(secs) => Duration::from_secs(secs.max(0) as u64),
                Value::UnsignedInteger(secs) => Duration::from_secs(secs),
                _ => Duration::from_secs(86_400),
            },
            None => Duration::from_secs(86_400),
        }
    }

    /// `b=`: the binding the bootstrap server wrote, else the configured one.
    fn binding(&self) -> String {
        let binding = self.written_binding().unwrap_or(&self.config.binding);
        if self.config.queue_mode
            && self.config.version == LwM2mVersion::V1_0
            && !binding.contains('Q')
        {
            format!("{binding}Q")
        } else {
            binding.to_string()
        }
    }

    /// The Register/Update payload: every object and instance but Security. A 1.2 client leads
    /// with the root link announcing the value formats it takes beyond the mandatory text and
    /// opaque (`ct`), LWM2M CBOR among them.
    fn add_object_links(&self, packet: &mut Packet) {
        let root = (self.config.version >= LwM2mVersion::V1_2).then(|| Link {
            target: "/".to_string(),
            attributes: vec![
                ("rt".to_string(), Some("oma.lwm2m".to_string())),
                ("ct".to_string(), Some(announced_formats())),
            ],
        });
        let links: Vec<Link> = root
            .into_iter()
            .chain(
                self.device
                    .registration_paths()
                    .into_iter()
                    .map(|(path, version)| Link {
                        target: path.to_string(),
                        attributes: version
                            .map(|v| vec![("ver".to_string(), Some(v.to_string()))])
                            .unwrap_or_default(),
                    }),
            )
            .collect();
        message::set_content_format(packet, ContentFormat::LinkFormat.code());
        packet.payload = format_links(&links).into_bytes();
    }
}

/// The `ct` of a 1.2 client's root link: the structured formats it reads and writes.
fn announced_formats() -> String {
    [
        ContentFormat::SenmlJson,
        ContentFormat::SenmlCbor,
        ContentFormat::Tlv,
        ContentFormat::OmaJson,
        ContentFormat::LwM2mCbor,
    ]
    .map(|f| f.code().to_string())
    .join(" ")
}

/// A request without token: `send_request` gives it one.
fn request(method: RequestType, path: &[&str]) -> Packet {
    message::request(
        method,
        path,
        &[],
        None,
        Vec::new(),
        crate::coap::Token::default(),
    )
}

/// How long after a registration of `lifetime` its Update is due, at `fraction` of it.
pub fn update_delay(lifetime: Duration, fraction: f64) -> Duration {
    let latest = lifetime
        .checked_sub(MAX_TRANSMIT_WAIT)
        .filter(|margin| !margin.is_zero())
        .unwrap_or(lifetime / 2);
    lifetime.mul_f64(fraction.clamp(0.05, 1.0)).min(latest)
}
