//! Firmware campaigns (`LwM2M` 1.1 §E.6 from the server's side): pick registered devices that have
//! object 5, observe their State (`/5/0/3`) and Update Result (`/5/0/5`), hand them the image
//! (pull: Write the Package URI `/5/0/1`; push: Block1 Write of `/5/0/0`) with at most
//! `max_concurrent` downloads at once, Execute Update (`/5/0/2`) once Downloaded, and after the
//! device registers again read its Update Result and firmware version (`/3/0/3`).
//!
//! Each device's progress is one [`Device`]; its requests go through the registration's NSTART
//! slot as [`Op::Campaign`]. One stall timer per device: no progress for the campaign's
//! `timeout` fails it as `timeout`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, Packet, RequestType};
use rand::Rng;
use rand::seq::SliceRandom;

use super::firmware::Firmware;
use super::stats::OperationStats;
use super::timers::TimerKind;
use super::{Op, Server};
use crate::clock::Instant;
use crate::coap::block::{self, BlockValue};
use crate::coap::{Token, message};
use crate::content::{self, ContentFormat};
use crate::model::{Path, ResourceSpec, ResourceType, Schema, Value};

/// How the image reaches the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CampaignMode {
    /// Write the Package URI (`/5/0/1`); the device downloads it with Block2 GETs.
    Pull,
    /// Write the image into Package (`/5/0/0`) block by block (Block1).
    Push,
}

/// One campaign, as the fleet file's `[[campaign]]` or `serve`'s flags give it.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignConfig {
    /// Share of the registered devices with object 5 that take part (0..=1).
    pub share: f64,
    /// When it starts, after the server's first datagram or timer.
    pub start: Duration,
    pub mode: CampaignMode,
    /// Devices downloading at once at most (0: no limit).
    pub max_concurrent: usize,
    pub firmware: Firmware,
    /// What `/3/0/3` must read after the update; `None`: any version, with Update Result 1.
    pub version: Option<Box<str>>,
    /// No progress for this long fails the device as `timeout`.
    pub timeout: Duration,
    /// Block size of a push (16..=1024).
    pub block_size: u16,
}

/// Why a device failed: Update Result 2..=9, or what the server saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    NotEnoughFlash = 0,
    OutOfRam,
    ConnectionLost,
    IntegrityCheck,
    UnsupportedPackage,
    InvalidUri,
    UpdateFailed,
    UnsupportedProtocol,
    /// No progress within the campaign's timeout (or a request of ours timed out).
    Timeout,
    /// A request of ours was answered with an error.
    Rejected,
    /// Update Result 1 but `/3/0/3` is not the campaign's version.
    WrongVersion,
}

impl FailureReason {
    pub const ALL: [FailureReason; 11] = [
        FailureReason::NotEnoughFlash,
        FailureReason::OutOfRam,
        FailureReason::ConnectionLost,
        FailureReason::IntegrityCheck,
        FailureReason::UnsupportedPackage,
        FailureReason::InvalidUri,
        FailureReason::UpdateFailed,
        FailureReason::UnsupportedProtocol,
        FailureReason::Timeout,
        FailureReason::Rejected,
        FailureReason::WrongVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailureReason::NotEnoughFlash => "not-enough-flash",
            FailureReason::OutOfRam => "out-of-ram",
            FailureReason::ConnectionLost => "connection-lost",
            FailureReason::IntegrityCheck => "integrity-check",
            FailureReason::UnsupportedPackage => "unsupported-package",
            FailureReason::InvalidUri => "invalid-uri",
            FailureReason::UpdateFailed => "update-failed",
            FailureReason::UnsupportedProtocol => "unsupported-protocol",
            FailureReason::Timeout => "timeout",
            FailureReason::Rejected => "rejected",
            FailureReason::WrongVersion => "wrong-version",
        }
    }

    /// The failure an Update Result names (2..=9); any other value after an update is
    /// `update-failed`.
    fn from_result(result: i64) -> FailureReason {
        match result {
            2 => FailureReason::NotEnoughFlash,
            3 => FailureReason::OutOfRam,
            4 => FailureReason::ConnectionLost,
            5 => FailureReason::IntegrityCheck,
            6 => FailureReason::UnsupportedPackage,
            7 => FailureReason::InvalidUri,
            9 => FailureReason::UnsupportedProtocol,
            _ => FailureReason::UpdateFailed,
        }
    }
}

/// Count, sum and maximum of durations (µs): the counts stay `Copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durations {
    pub count: u64,
    pub total_us: u64,
    pub max_us: u64,
}

impl Durations {
    fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_us = self.total_us.saturating_add(micros);
        self.max_us = self.max_us.max(micros);
    }

    pub fn mean_us(&self) -> u64 {
        self.total_us.checked_div(self.count).unwrap_or(0)
    }
}

/// What the campaigns counted. Every targeted device is waiting, in progress, updated or failed
/// once: `targeted = waiting + started`, `started = in progress + updated + failed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CampaignStats {
    /// Devices picked for a campaign.
    pub targeted: u64,
    /// Picked, waiting for a download slot (now).
    pub waiting: u64,
    /// Given a download slot: observations, then the URI or the image.
    pub started: u64,
    /// Started and not yet Downloaded or failed (now).
    pub downloading: u64,
    /// Reported State 2 (Downloaded).
    pub downloaded: u64,
    /// Registered again with Update Result 1 and the new version.
    pub updated: u64,
    pub failed: u64,
    /// `failed` by [`FailureReason`] (indexed by its discriminant).
    pub failures: [u64; 11],
    /// From the start to State 2.
    pub download_time: Durations,
    /// From the Execute's answer to the check of the new version.
    pub update_time: Durations,
    /// Block2 GETs of a served image answered, and their payload bytes.
    pub blocks_served: u64,
    pub bytes_served: u64,
    /// The campaign's requests (Observe, Write, Execute, Read): the usual invariant.
    pub requests: OperationStats,
}

impl CampaignStats {
    pub fn failures(&self) -> impl Iterator<Item = (FailureReason, u64)> + '_ {
        FailureReason::ALL
            .into_iter()
            .map(|r| (r, self.failures[r as usize]))
            .filter(|(_, n)| *n > 0)
    }

    pub fn in_progress(&self) -> u64 {
        self.started - self.updated - self.failed
    }
}

impl std::fmt::Display for CampaignStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "campaign targeted {} waiting {} downloading {} downloaded {} updated {} failed {}",
            self.targeted,
            self.waiting,
            self.downloading,
            self.downloaded,
            self.updated,
            self.failed
        )?;
        let mut first = true;
        for (reason, n) in self.failures() {
            let sep = if first { " (" } else { " " };
            first = false;
            write!(f, "{sep}{} {n}", reason.name())?;
        }
        if !first {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    ObserveState,
    ObserveResult,
    /// Pull: the Write of the URI; push: the Block1 writes.
    Deliver,
    /// Waiting for State 2.
    Downloading,
    /// No progress for the timeout while downloading: a Read of State, once (a notification of
    /// State 2 may have been lost; a NON is not repeated).
    CheckState,
    Execute,
    /// Executed: waiting for the device to register again.
    Rebooting,
    ReadResult,
    ReadVersion,
    Updated,
    Failed,
}

impl Phase {
    fn sends(self) -> bool {
        matches!(
            self,
            Phase::ObserveState
                | Phase::ObserveResult
                | Phase::Deliver
                | Phase::CheckState
                | Phase::Execute
                | Phase::ReadResult
                | Phase::ReadVersion
        )
    }

    fn is_over(self) -> bool {
        matches!(self, Phase::Updated | Phase::Failed)
    }
}

#[derive(Debug)]
struct Device {
    campaign: u8,
    phase: Phase,
    /// Its registration now (a new one after the update's Register).
    registration: u32,
    state_token: u64,
    result_token: u64,
    started_at: Instant,
    executed_at: Instant,
    progress_at: Instant,
    /// Push: the next Block1 number.
    next_block: u32,
    holds_slot: bool,
    /// The phase whose request is in flight: an answer to an earlier step is not this one's.
    asked: Phase,
    /// The last State it reported: a notification repeating it is no progress.
    state: i64,
}

#[derive(Debug, Default)]
struct Running {
    started: bool,
    active: usize,
    waiting: VecDeque<u32>,
}

/// The campaigns' state in the server.
#[derive(Debug, Default)]
pub(super) struct Campaigns {
    /// One per configured campaign once the start timers are set (at the first datagram or
    /// timer); empty before.
    running: Vec<Running>,
    devices: Vec<Device>,
    by_endpoint: HashMap<Arc<str>, u32>,
    /// `coap://host:port` or `coaps://...`: where the server is, for the Package URI.
    pub base_uri: Option<String>,
}

impl Campaigns {
    /// Heap bytes: a device record and an index entry per picked device, the waiting queues.
    pub(super) fn heap_bytes(&self) -> usize {
        self.devices.capacity() * size_of::<Device>()
            + super::table_bytes::<(Arc<str>, u32)>(self.by_endpoint.capacity())
            + self
                .running
                .iter()
                .map(|r| r.waiting.capacity() * size_of::<u32>())
                .sum::<usize>()
    }
}

/// `/5/0/x`, `/3/0/3`.
const FIRMWARE: &str = "5";
const TEXT: u16 = 0;
const STATE_DOWNLOADED: i64 = 2;
const OCTET_STREAM: u16 = 42;

/// The types of the resources a campaign reads, for the decoders that need them (TLV, text).
struct FirmwareResources;

impl Schema for FirmwareResources {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec> {
        let kind = match (object, resource) {
            (5, 3 | 5) => ResourceType::Integer,
            (3, 3) => ResourceType::String,
            _ => return None,
        };
        Some(ResourceSpec {
            kind,
            multiple: false,
        })
    }
}

/// The value an answer or notification carries for `path`, in the format it names (text,
/// TLV, `SenML` JSON or CBOR, LWM2M CBOR...; text when it names none).
fn value_at(packet: &Packet, path: Path) -> Option<Value> {
    let format = match message::content_format(packet).ok()? {
        None => ContentFormat::Text,
        Some(code) => ContentFormat::from_code(code)?,
    };
    content::decode(format, &path, &packet.payload, &FirmwareResources)
        .ok()?
        .into_iter()
        .find(|record| record.path == path)
        .map(|record| record.value)
}

/// The integer (State, Update Result) a packet carries for `path`.
fn integer(packet: &Packet, path: Path) -> Option<i64> {
    match value_at(packet, path)? {
        Value::Integer(n) => Some(n),
        Value::UnsignedInteger(n) => i64::try_from(n).ok(),
        // SenML JSON numbers of resources a decoder does not type.
        Value::Float(f) if f.fract() == 0.0 => Some(f as i64),
        _ => None,
    }
}

impl Server {
    /// Sets the campaigns' start timers, once.
    pub(super) fn arm_campaigns(&mut self, now: Instant) {
        if !self.campaigns.running.is_empty() {
            return;
        }
        for (index, campaign) in self.config.campaigns.iter().enumerate() {
            self.campaigns.running.push(Running::default());
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            self.timers
                .push(now + campaign.start, index, TimerKind::CampaignStart);
        }
    }

    /// A campaign's start: a share of the registered devices with object 5, picked at random.
    pub(super) fn on_campaign_start(&mut self, now: Instant, index: u32) {
        let i = index as usize;
        let Some(campaign) = self.config.campaigns.get(i) else {
            return;
        };
        let share = campaign.share;
        let mut eligible: Vec<(Arc<str>, u32)> = self
            .registrations
            .values()
            .filter(|r| {
                has_firmware_object(r) && !self.campaigns.by_endpoint.contains_key(&r.endpoint)
            })
            .map(|r| (Arc::clone(&r.endpoint), r.id))
            .collect();
        // The map's order differs between runs; the seed's shuffle should not.
        eligible.sort_unstable();
        eligible.shuffle(&mut self.rng);
        let take = (share * eligible.len() as f64).round() as usize;
        tracing::debug!(
            "firmware campaign {i} started: {take} of {} registered devices with object 5",
            eligible.len()
        );
        self.campaigns.running[i].started = true;
        for (endpoint, id) in eligible.into_iter().take(take) {
            self.enrol(now, i, endpoint, id);
        }
        self.fill_slots(now, i, None);
    }

    /// A Register: a device back from its update, or a newcomer a running campaign may pick.
    pub(super) fn campaign_registered(&mut self, now: Instant, id: u32) {
        let Some(registration) = self.registrations.get(&id) else {
            return;
        };
        let endpoint = Arc::clone(&registration.endpoint);
        if let Some(&d) = self.campaigns.by_endpoint.get(&endpoint) {
            let device = &mut self.campaigns.devices[d as usize];
            device.registration = id;
            // Registered again while the Execute's answer was awaited: it was lost, and the
            // device has updated (or failed to) meanwhile; its Update Result tells.
            let executed = device.phase == Phase::Execute && device.asked == Phase::Execute;
            if device.phase == Phase::Rebooting || executed {
                device.phase = Phase::ReadResult;
                device.progress_at = now;
            }
            if device.phase.sends() {
                self.want_campaign_request(id);
            }
            return;
        }
        if !has_firmware_object(registration) {
            return;
        }
        let late = self
            .campaigns
            .running
            .iter()
            .position(|r| r.started)
            .filter(|&i| {
                self.rng
                    .random_bool(self.config.campaigns[i].share.clamp(0.0, 1.0))
            });
        if let Some(i) = late {
            self.enrol(now, i, endpoint, id);
            // Its Register's answer goes first, then its requests (the answer flushes them).
            self.fill_slots(now, i, Some(id));
        }
    }

    fn enrol(&mut self, now: Instant, campaign: usize, endpoint: Arc<str>, id: u32) {
        let d = u32::try_from(self.campaigns.devices.len()).unwrap_or(u32::MAX);
        self.campaigns.devices.push(Device {
            campaign: u8::try_from(campaign).unwrap_or(u8::MAX),
            phase: Phase::Waiting,
            registration: id,
            state_token: 0,
            result_token: 0,
            started_at: now,
            executed_at: now,
            progress_at: now,
            next_block: 0,
            holds_slot: false,
            asked: Phase::Waiting,
            state: -1,
        });
        self.campaigns.by_endpoint.insert(endpoint, d);
        self.campaigns.running[campaign].waiting.push_back(d);
        self.stats.campaign.targeted += 1;
        self.stats.campaign.waiting += 1;
    }

    /// Starts waiting devices while the campaign has download slots free, and sends their
    /// first requests (but not yet to `registering`, whose Register is being answered).
    fn fill_slots(&mut self, now: Instant, campaign: usize, registering: Option<u32>) {
        let max = self.config.campaigns[campaign].max_concurrent;
        let timeout = self.config.campaigns[campaign].timeout;
        loop {
            let running = &mut self.campaigns.running[campaign];
            if max > 0 && running.active >= max {
                return;
            }
            let Some(d) = running.waiting.pop_front() else {
                return;
            };
            running.active += 1;
            let device = &mut self.campaigns.devices[d as usize];
            device.phase = Phase::ObserveState;
            device.holds_slot = true;
            device.started_at = now;
            device.progress_at = now;
            let id = device.registration;
            let stats = &mut self.stats.campaign;
            stats.waiting -= 1;
            stats.started += 1;
            stats.downloading += 1;
            self.timers.push(now + timeout, d, TimerKind::CampaignStall);
            self.want_campaign_request(id);
            if registering != Some(id) {
                self.flush(now, id);
            }
        }
    }

    fn want_campaign_request(&mut self, id: u32) {
        if let Some(registration) = self.registrations.get_mut(&id) {
            registration.pending |= Op::Campaign.bit();
        }
    }

    fn device_of(&self, id: u32) -> Option<u32> {
        let registration = self.registrations.get(&id)?;
        self.campaigns
            .by_endpoint
            .get(&registration.endpoint)
            .copied()
            .filter(|&d| self.campaigns.devices[d as usize].registration == id)
    }

    /// The request the device's phase calls for, or `None` when it needs none now.
    pub(super) fn campaign_request(
        &self,
        id: u32,
        root: Option<&str>,
        token: u64,
    ) -> Option<Packet> {
        let d = self.device_of(id)?;
        let device = &self.campaigns.devices[d as usize];
        let campaign = &self.config.campaigns[usize::from(device.campaign)];
        let (method, path, accept, observe) = match device.phase {
            Phase::ObserveState => (RequestType::Get, ["5", "0", "3"], true, true),
            Phase::ObserveResult => (RequestType::Get, ["5", "0", "5"], true, true),
            Phase::Deliver if campaign.mode == CampaignMode::Pull => {
                (RequestType::Put, ["5", "0", "1"], false, false)
            }
            Phase::Deliver => (RequestType::Put, ["5", "0", "0"], false, false),
            Phase::Execute => (RequestType::Post, ["5", "0", "2"], false, false),
            Phase::CheckState => (RequestType::Get, ["5", "0", "3"], true, false),
            Phase::ReadResult => (RequestType::Get, ["5", "0", "5"], true, false),
            Phase::ReadVersion => (RequestType::Get, ["3", "0", "3"], true, false),
            _ => return None,
        };
        debug_assert_eq!(FIRMWARE, "5");
        let segments: Vec<&str> = root
            .into_iter()
            .flat_map(|r| r.split('/'))
            .chain(path)
            .collect();
        let token = Token::from_slice(&token.to_be_bytes()).unwrap_or_default();
        let mut packet = message::request(method, &segments, &[], None, Vec::new(), token);
        if accept {
            message::set_accept(&mut packet, TEXT);
        }
        if observe {
            message::set_observe(&mut packet, 0);
        }
        if device.phase == Phase::Deliver {
            match campaign.mode {
                CampaignMode::Pull => {
                    let base = self
                        .campaigns
                        .base_uri
                        .as_deref()
                        .unwrap_or("coap://localhost");
                    let uri = format!("{base}/fw/{}", campaign.firmware.name());
                    message::set_content_format(&mut packet, TEXT);
                    packet.payload = uri.into_bytes();
                }
                CampaignMode::Push => {
                    let image = campaign.firmware.image();
                    let size = usize::from(campaign.block_size);
                    let offset = device.next_block as usize * size;
                    let end = image.len().min(offset + size);
                    let more = end < image.len();
                    let value =
                        BlockValue::new(device.next_block, more, campaign.block_size).ok()?;
                    message::set_content_format(&mut packet, OCTET_STREAM);
                    block::set_block1(&mut packet, value);
                    if device.next_block == 0 {
                        block::set_size1(
                            &mut packet,
                            u32::try_from(image.len()).unwrap_or(u32::MAX),
                        );
                    }
                    packet.payload = image.get(offset..end)?.to_vec();
                }
            }
        }
        Some(packet)
    }

    /// The request [`Server::campaign_request`] built went out.
    pub(super) fn campaign_sent(&mut self, id: u32) {
        if let Some(d) = self.device_of(id) {
            let device = &mut self.campaigns.devices[d as usize];
            device.asked = device.phase;
        }
    }

    /// The answer to a campaign request (`None`: it timed out, was reset or aborted).
    pub(super) fn campaign_answered(
        &mut self,
        now: Instant,
        id: u32,
        token: u64,
        answer: Option<&Packet>,
    ) {
        let Some(d) = self.device_of(id) else {
            return;
        };
        let device = &self.campaigns.devices[d as usize];
        if device.asked != device.phase {
            // A notification moved the device on meanwhile (State 2 before the last block's
            // answer): this answer is stale.
            if device.phase.sends() {
                self.want_campaign_request(id);
            }
            return;
        }
        let ok = answer.is_some_and(|p| u8::from(p.header.code) >> 5 == 2);
        let code = answer.map_or(0, |p| u8::from(p.header.code));
        let Some(answer) = answer.filter(|_| ok) else {
            self.campaign_unanswered(now, d, code);
            return;
        };
        let index = d as usize;
        let campaign = usize::from(self.campaigns.devices[index].campaign);
        let observed = answer.get_first_option(CoapOption::Observe).is_some();
        let value = match self.campaigns.devices[index].phase {
            Phase::ObserveState | Phase::CheckState => integer(answer, Path::resource(5, 0, 3)),
            Phase::ObserveResult | Phase::ReadResult => integer(answer, Path::resource(5, 0, 5)),
            _ => None,
        };
        let device = &mut self.campaigns.devices[index];
        device.progress_at = now;
        match device.phase {
            Phase::ObserveState => {
                device.state_token = if observed { token } else { 0 };
                device.state = value.unwrap_or(-1);
                device.phase = Phase::ObserveResult;
            }
            Phase::ObserveResult => {
                device.result_token = if observed { token } else { 0 };
                device.phase = Phase::Deliver;
            }
            Phase::Deliver => {
                let config = &self.config.campaigns[campaign];
                let pushing_more = config.mode == CampaignMode::Push
                    && block::block1(answer).ok().flatten().is_some_and(|b| b.more)
                    && code == 0x5F; // 2.31 Continue
                if pushing_more {
                    device.next_block += 1;
                } else {
                    device.phase = Phase::Downloading;
                }
            }
            Phase::CheckState => {
                if value == Some(STATE_DOWNLOADED) {
                    self.downloaded(now, d);
                } else {
                    self.fail(now, d, FailureReason::Timeout);
                }
                return;
            }
            Phase::Execute => {
                device.phase = Phase::Rebooting;
                device.executed_at = now;
            }
            Phase::ReadResult => match value {
                Some(1) => device.phase = Phase::ReadVersion,
                other => {
                    let reason = FailureReason::from_result(other.unwrap_or(0));
                    self.fail(now, d, reason);
                    return;
                }
            },
            Phase::ReadVersion => {
                let version = match value_at(answer, Path::resource(3, 0, 3)) {
                    Some(Value::String(version)) => version,
                    _ => String::new(),
                };
                let version = version.trim();
                let expected = self.config.campaigns[campaign].version.as_deref();
                if expected.is_none_or(|expected| version == expected) {
                    device.phase = Phase::Updated;
                    let took = now.saturating_since(device.executed_at);
                    self.stats.campaign.updated += 1;
                    self.stats.campaign.update_time.record(took);
                } else {
                    self.fail(now, d, FailureReason::WrongVersion);
                }
                return;
            }
            _ => return,
        }
        if self.campaigns.devices[index].phase.sends() {
            self.want_campaign_request(id);
        }
    }

    /// A campaign request timed out or was reset (`code` 0), or was answered with an error.
    fn campaign_unanswered(&mut self, now: Instant, d: u32, code: u8) {
        let device = &mut self.campaigns.devices[d as usize];
        if code == 0 && device.phase == Phase::Execute {
            // The answer was lost, or the device went offline to update before a retransmission
            // reached it: wait for its Register (the stall timer bounds the wait).
            device.phase = Phase::Rebooting;
            device.executed_at = now;
            device.progress_at = now;
            return;
        }
        let reason = if code == 0 {
            FailureReason::Timeout
        } else {
            FailureReason::Rejected
        };
        self.fail(now, d, reason);
    }

    /// Whether `token` is one of the device's observations of ours.
    pub(super) fn is_campaign_notification(&self, id: u32, packet: &Packet) -> bool {
        let Some(d) = self.device_of(id) else {
            return false;
        };
        let device = &self.campaigns.devices[d as usize];
        [device.state_token, device.result_token]
            .into_iter()
            .any(|t| t != 0 && packet.get_token() == t.to_be_bytes())
    }

    /// A notification of State or Update Result.
    pub(super) fn campaign_notified(&mut self, now: Instant, id: u32, packet: &Packet) {
        let Some(d) = self.device_of(id) else {
            return;
        };
        let index = d as usize;
        let device = &mut self.campaigns.devices[index];
        if device.phase.is_over() {
            return;
        }
        let is_state = packet.get_token() == device.state_token.to_be_bytes();
        let path = Path::resource(5, 0, if is_state { 3 } else { 5 });
        let Some(value) = integer(packet, path) else {
            return;
        };
        if is_state && value != device.state {
            device.state = value;
            device.progress_at = now;
        }
        if !is_state {
            if (2..=9).contains(&value) {
                self.fail(now, d, FailureReason::from_result(value));
            }
            return;
        }
        let downloading = matches!(
            device.phase,
            Phase::Deliver | Phase::Downloading | Phase::CheckState
        );
        if value == STATE_DOWNLOADED && downloading {
            self.downloaded(now, d);
        }
    }

    /// State 2, Downloaded: the slot goes to the next device; Execute Update.
    fn downloaded(&mut self, now: Instant, d: u32) {
        let device = &mut self.campaigns.devices[d as usize];
        let took = now.saturating_since(device.started_at);
        device.phase = Phase::Execute;
        device.progress_at = now;
        let id = device.registration;
        self.stats.campaign.downloaded += 1;
        self.stats.campaign.download_time.record(took);
        self.release_slot(now, d);
        self.want_campaign_request(id);
    }

    /// The device's stall timer: failed as `timeout` unless it moved since.
    pub(super) fn on_campaign_stall(&mut self, now: Instant, at: Instant, d: u32) {
        let Some(device) = self.campaigns.devices.get(d as usize) else {
            return;
        };
        if device.phase.is_over() {
            return;
        }
        let timeout = self.config.campaigns[usize::from(device.campaign)].timeout;
        let due = device.progress_at + timeout;
        if due > at {
            self.timers.push(due, d, TimerKind::CampaignStall);
        } else if device.phase == Phase::Downloading {
            let id = device.registration;
            self.campaigns.devices[d as usize].phase = Phase::CheckState;
            self.timers.push(now + timeout, d, TimerKind::CampaignStall);
            self.want_campaign_request(id);
            self.flush(now, id);
        } else {
            self.fail(now, d, FailureReason::Timeout);
        }
    }

    /// A Block2 GET of a served image from this peer: progress for its device.
    pub(super) fn campaign_download_progress(&mut self, now: Instant, id: u32) {
        if let Some(d) = self.device_of(id) {
            self.campaigns.devices[d as usize].progress_at = now;
        }
    }

    fn fail(&mut self, now: Instant, d: u32, reason: FailureReason) {
        let device = &mut self.campaigns.devices[d as usize];
        if device.phase.is_over() {
            return;
        }
        device.phase = Phase::Failed;
        let holds_slot = device.holds_slot;
        self.stats.campaign.failed += 1;
        self.stats.campaign.failures[reason as usize] += 1;
        if holds_slot {
            self.release_slot(now, d);
        }
    }

    fn release_slot(&mut self, now: Instant, d: u32) {
        let device = &mut self.campaigns.devices[d as usize];
        if !device.holds_slot {
            return;
        }
        device.holds_slot = false;
        let campaign = usize::from(device.campaign);
        self.stats.campaign.downloading -= 1;
        self.campaigns.running[campaign].active -= 1;
        self.fill_slots(now, campaign, None);
    }
}

fn has_firmware_object(registration: &super::Registration) -> bool {
    registration
        .links
        .links
        .iter()
        .any(|l| l.path.ids().first() == Some(&5))
}

#[cfg(test)]
mod tests;
