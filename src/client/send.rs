//! Send (LWM2M 1.1 Information Reporting): the client POSTs the values of configured paths to
//! `/dp` as `SenML`, every `every` give or take `jitter`, while registered and not muted.

use std::time::Duration;

use coap_lite::RequestType;
use rand::Rng;

use super::{Client, ClientState, Outgoing, RequestKind};
use crate::clock::Instant;
use crate::coap::{Token, message};
use crate::content::{self, ContentFormat};
use crate::model::{Path, Record, Value};

/// `/1/x/23` Mute Send.
const MUTE_SEND: u16 = 23;

/// What a population sends, and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct SendConfig {
    /// Paths whose values go in each Send (objects, instances, resources).
    pub paths: Vec<Path>,
    /// Time between Sends, measured from when the previous one was due (no drift).
    pub every: Duration,
    /// Each interval is drawn from `every - jitter ..= every + jitter`; less than `every`.
    pub jitter: Duration,
    /// `SenmlCbor` (112) or `SenmlJson` (110): the only formats Send allows.
    pub format: ContentFormat,
}

impl Client {
    /// Plans the first Send after a Register, unless one is planned already.
    pub(super) fn schedule_first_send(&mut self, now: Instant) {
        if self.send_at.is_none() {
            self.send_at = self.next_send_after(now);
        }
    }

    fn next_send_after(&mut self, due: Instant) -> Option<Instant> {
        let config = self.config.send.as_ref()?;
        let (every, jitter) = (config.every, config.jitter);
        let interval = if jitter.is_zero() {
            every
        } else {
            self.rng
                .random_range(every.saturating_sub(jitter)..=every + jitter)
        };
        Some(due + interval)
    }

    /// A Send came due at `due`: queued unless the client is not registered, Send is muted, or
    /// the previous one still waits its turn. The next one is planned either way.
    pub(super) fn send_due(&mut self, due: Instant) {
        self.send_at = self.next_send_after(due);
        let registered = matches!(self.state, ClientState::Registered | ClientState::Sleeping);
        if !registered || self.send_muted() || self.queue.iter().any(|q| q.what == Outgoing::Send) {
            return;
        }
        // Queue mode: the wake-up queues its Update first; the Send goes behind it.
        self.wake_for(due);
        self.enqueue(Outgoing::Send, due);
    }

    /// Mute Send (`/1/x/23` of the Server instance): true, or absent, means the client must not
    /// Send (LWM2M 1.1 E.2).
    fn send_muted(&mut self) -> bool {
        // A bootstrap server may have written the Server instance under another id than 0.
        let instance = self.device.instances(1).first().copied().unwrap_or(0);
        let path = Path::resource(1, instance, MUTE_SEND);
        let value = self
            .device
            .read(&path, Instant::ZERO)
            .ok()
            .and_then(|records| records.into_iter().next())
            .map(|record| record.value);
        !matches!(value, Some(Value::Boolean(false)))
    }

    /// Sends the configured paths' values now (paths the device lacks are left out).
    pub(super) fn send_data(&mut self, now: Instant, intended: Instant) {
        let Some(config) = self.config.send.clone() else {
            self.record_unsent(RequestKind::Send, intended, now);
            return;
        };
        let mut records: Vec<Record> = Vec::new();
        for path in &config.paths {
            if let Ok(found) = self.device.read(path, now) {
                records.extend(found);
            }
        }
        let Ok(payload) = content::encode(config.format, &Path::ROOT, &records, &self.device)
        else {
            self.record_unsent(RequestKind::Send, intended, now);
            return;
        };
        let packet = message::request(
            RequestType::Post,
            &["dp"],
            &[],
            Some(config.format.code()),
            payload,
            Token::default(),
        );
        self.send_request(now, RequestKind::Send, intended, packet);
    }
}
