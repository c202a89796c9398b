//! Firmware Update (object 5, `LwM2M` 1.1 §E.6): State `/5/0/3` and Update Result `/5/0/5`,
//! push (Block1 Write of `/5/0/0`), pull (Block2 GETs of the Package URI `/5/0/1`), Execute
//! `/5/0/2`, and the failures a population injects. The package is counted and hashed as it
//! arrives, never held: a transfer costs one [`Transfer`] (a SHA-256 state and counters).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::operations::Answer;
use super::{Client, ClientState, Deferred, Event, LwM2mVersion, Outgoing};
use crate::clock::Instant;
use crate::coap::block::{self, BlockValue};
use crate::coap::{Token, message};
use crate::model::{Path, Record, Value};

const STATE_IDLE: i64 = 0;
const STATE_DOWNLOADING: i64 = 1;
const STATE_DOWNLOADED: i64 = 2;
const STATE_UPDATING: i64 = 3;

const RESULT_INITIAL: i64 = 0;
const RESULT_SUCCESS: i64 = 1;

/// A Block2 GET that timed out is asked again this many times before the download is lost.
const DOWNLOAD_RETRIES: u8 = 4;

/// Where a package of unannounced size (no Size1 or Size2) fails part-way.
const UNANNOUNCED_SIZE: u64 = 256 * 1024;

/// Between the 2.04 to Execute and going offline: time for the Updating notification to leave.
const UPDATE_NOTIFY_GRACE: Duration = Duration::from_secs(1);

/// A population's firmware behaviour (part of [`super::ClientConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareConfig {
    /// Offline between Execute `/5/0/2` and the Register with the new version.
    pub update_time: Duration,
    /// Largest package the device has room for; a larger one ends with Update Result 2.
    pub package_limit: u64,
    /// Pull downloads are paced to at most this many bytes per second (`None`: no limit).
    pub download_rate: Option<u64>,
    /// The version `/3/0/3` reports after an update; `None`: `fw-` and the first 8 hex digits
    /// of the package's SHA-256.
    pub version: Option<String>,
    pub failures: FirmwareFailures,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig {
            update_time: Duration::from_secs(30),
            package_limit: 4 * 1024 * 1024,
            download_rate: None,
            version: None,
            failures: FirmwareFailures::default(),
        }
    }
}

/// Shares of firmware attempts that fail, each drawn once per download from the client's seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FirmwareFailures {
    /// The package fails its integrity check once downloaded (Update Result 5).
    pub integrity: f64,
    /// The device runs out of storage part-way (Update Result 2).
    pub storage: f64,
    /// The connection is lost part-way through the download (Update Result 4).
    pub connection: f64,
    /// Applying the package fails after Execute (Update Result 8).
    pub update: f64,
}

/// Why a firmware download or update failed, with its Update Result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FirmwareFailure {
    /// 2: not enough flash for the package.
    OutOfStorage,
    /// 4: the download broke off (timeouts, a transfer out of order, the client went offline).
    ConnectionLost,
    /// 5: the package failed its integrity check.
    Integrity,
    /// 7: the Package URI could not be used (not a literal address, no path, refused).
    InvalidUri,
    /// 8: applying the package failed.
    UpdateFailed,
    /// 9: a scheme this client does not download over (see docs/fleet-reference.md).
    UnsupportedProtocol,
    /// The client stopped mid-download (the run ended): Update Result 4, counted apart.
    Aborted,
    /// 10: the server executed Cancel (`/5/0/10`) while downloading or downloaded.
    Cancelled,
}

/// Every failure reason, in listing order.
pub const FIRMWARE_FAILURES: [FirmwareFailure; 8] = [
    FirmwareFailure::OutOfStorage,
    FirmwareFailure::ConnectionLost,
    FirmwareFailure::Integrity,
    FirmwareFailure::InvalidUri,
    FirmwareFailure::UpdateFailed,
    FirmwareFailure::UnsupportedProtocol,
    FirmwareFailure::Aborted,
    FirmwareFailure::Cancelled,
];

impl FirmwareFailure {
    /// The Update Result (`/5/0/5`) it sets.
    pub fn update_result(self) -> i64 {
        match self {
            FirmwareFailure::OutOfStorage => 2,
            FirmwareFailure::ConnectionLost | FirmwareFailure::Aborted => 4,
            FirmwareFailure::Integrity => 5,
            FirmwareFailure::InvalidUri => 7,
            FirmwareFailure::UpdateFailed => 8,
            FirmwareFailure::UnsupportedProtocol => 9,
            FirmwareFailure::Cancelled => 10,
        }
    }

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FirmwareFailure::OutOfStorage => "out-of-storage",
            FirmwareFailure::ConnectionLost => "connection-lost",
            FirmwareFailure::Integrity => "integrity",
            FirmwareFailure::InvalidUri => "invalid-uri",
            FirmwareFailure::UpdateFailed => "update-failed",
            FirmwareFailure::UnsupportedProtocol => "unsupported-protocol",
            FirmwareFailure::Aborted => "aborted",
            FirmwareFailure::Cancelled => "cancelled",
        }
    }
}

/// How a package reaches the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Block1 Writes of `/5/0/0`.
    Push,
    /// Block2 GETs of the Package URI.
    Pull,
}

/// A step of a firmware update, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareStep {
    /// A download began.
    Started(Delivery),
    /// A download ended in State 2 (`bytes` counted); `started` is when it began.
    Downloaded { bytes: u64 },
    /// The device registered again with the new version; `started` is the Execute.
    Updated,
    /// A download or an update failed.
    Failed(FirmwareFailure),
}

/// One firmware step: `started` is when the download began (or the Execute, for an update's
/// end), `at` when this step happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirmwareRecord {
    pub step: FirmwareStep,
    pub started: Instant,
    pub at: Instant,
}

/// What the seed decided for one attempt, drawn when its download starts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Succeeds,
    /// Fails once this share of the package has arrived (of its announced size, or of
    /// [`UNANNOUNCED_SIZE`]; at its end at the latest), or at the end for an integrity failure.
    FailsDownload {
        failure: FirmwareFailure,
        part: f64,
    },
    UpdateFails,
}

/// Where a pull download fetches from.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    to: SocketAddr,
    /// Uri-Path segments, joined by `/`.
    path: Box<str>,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// Receiving Block1 Writes; the next block number expected.
    Push { next: u32, last_block_at: Instant },
    /// Fetching with Block2: the next block, its size, when it may be asked for, retries used.
    Pull {
        source: Source,
        next: u32,
        szx: u8,
        due: Option<Instant>,
        retries: u8,
        token: Option<Token>,
    },
    /// The package is complete: Execute may apply it.
    Downloaded { version: Box<str> },
    /// Offline, applying; registers again with `version` (or, failed, stays Downloaded).
    Updating { version: Box<str>, since: Instant },
}

/// A firmware attempt under way: the per-client state beyond an idle client.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    phase: Phase,
    started: Instant,
    bytes: u64,
    /// The size Size1 or Size2 announced.
    size: Option<u64>,
    hasher: Sha256,
    fate: Fate,
}

impl Transfer {
    pub(super) fn heap_bytes(&self) -> usize {
        size_of::<Transfer>()
            + match &self.phase {
                Phase::Pull { source, .. } => source.path.len(),
                Phase::Downloaded { version } | Phase::Updating { version, .. } => version.len(),
                Phase::Push { .. } => 0,
            }
    }
}

fn is_package(path: &Path) -> bool {
    *path == Path::resource(5, 0, 0)
}

impl Client {
    /// Whether `request` is a Write of the firmware package (`/5/0/0`) this client streams.
    pub(super) fn is_package_write(&self, request: &Packet) -> bool {
        let writes = matches!(
            request.header.code,
            MessageClass::Request(RequestType::Put | RequestType::Post)
        );
        // Cheap tests first: most devices have no object 5, most requests are no Write.
        writes
            && self.state != ClientState::Bootstrapping
            && self.device.resource_def(5, 0).is_some()
            && message::uri_path(request)
                .ok()
                .and_then(|segments| Path::from_segments(&segments).ok())
                .is_some_and(|path| is_package(&path))
    }

    /// A package in one message (or the empty package that resets to Idle): counted and
    /// hashed, never kept. The code the Write is answered with.
    pub(super) fn package_whole(&mut self, now: Instant, payload: &[u8]) -> ResponseType {
        if payload.is_empty() || payload == b"\0" {
            self.firmware_reset(now);
            return ResponseType::Changed;
        }
        self.begin_download(
            now,
            Phase::Push {
                next: 1,
                last_block_at: now,
            },
            Delivery::Push,
        );
        if let Err(failure) = self.take_bytes(payload, Some(payload.len() as u64)) {
            return self.fail_push(now, failure);
        }
        self.finish_download(now);
        ResponseType::Changed
    }

    /// One Block1 block of the package, counted and hashed; the code it is answered with, or
    /// `None` while more are expected (2.31 Continue).
    pub(super) fn package_block(
        &mut self,
        now: Instant,
        value: BlockValue,
        request: &Packet,
    ) -> Option<ResponseType> {
        let (payload, size1) = (&request.payload, block::size1(request).ok().flatten());
        if value.num == 0 {
            self.begin_download(
                now,
                Phase::Push {
                    next: 0,
                    last_block_at: now,
                },
                Delivery::Push,
            );
        }
        let expected = match self.firmware.as_deref() {
            Some(Transfer {
                phase: Phase::Push { next, .. },
                ..
            }) => Some(*next),
            _ => None,
        };
        if expected != Some(value.num) || (value.more && payload.len() != value.size()) {
            // A block out of order or a transfer not begun: the package is incomplete.
            if expected.is_some() {
                self.fail_download(now, FirmwareFailure::ConnectionLost);
            }
            return Some(ResponseType::RequestEntityIncomplete);
        }
        if let Some(Transfer {
            phase: Phase::Push {
                next,
                last_block_at,
            },
            ..
        }) = self.firmware.as_deref_mut()
        {
            *next += 1;
            *last_block_at = now;
        }
        let announced = size1.map(u64::from);
        if let Err(failure) = self.take_bytes(payload, announced) {
            return Some(self.fail_push(now, failure));
        }
        if value.more {
            return None;
        }
        self.finish_download(now);
        Some(ResponseType::Changed)
    }

    /// Ends a push with `failure`; the code the Write is answered with.
    fn fail_push(&mut self, now: Instant, failure: FirmwareFailure) -> ResponseType {
        self.fail_download(now, failure);
        match failure {
            FirmwareFailure::OutOfStorage => ResponseType::RequestEntityTooLarge,
            _ => ResponseType::RequestEntityIncomplete,
        }
    }

    /// A Write of the Package URI: an empty one resets, any other starts a pull download.
    pub(super) fn on_package_uri(&mut self, now: Instant) {
        let uri = match self.device.read(&Path::resource(5, 0, 1), now) {
            Ok(records) => match records.first().map(|r| &r.value) {
                Some(Value::String(uri)) => uri.clone(),
                _ => String::new(),
            },
            Err(_) => return,
        };
        if uri.is_empty() {
            self.firmware_reset(now);
            return;
        }
        let source = match self.package_source(&uri) {
            Ok(source) => source,
            Err(failure) => {
                self.begin_download(
                    now,
                    Phase::Push {
                        next: 0,
                        last_block_at: now,
                    },
                    Delivery::Pull,
                );
                self.fail_download(now, failure);
                return;
            }
        };
        let szx = block::szx_for(self.config.coap.block_size).unwrap_or(6);
        let phase = Phase::Pull {
            source,
            next: 0,
            szx,
            due: Some(now),
            retries: 0,
            token: None,
        };
        self.begin_download(now, phase, Delivery::Pull);
    }

    /// Where a Package URI points, if this client can download from there: `coap://` over
    /// plain UDP to any literal address, `coaps://` over the client's own DTLS session to its
    /// server only.
    fn package_source(&self, uri: &str) -> Result<Source, FirmwareFailure> {
        let (scheme, rest) = uri.split_once("://").ok_or(FirmwareFailure::InvalidUri)?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.split(['?', '#']).next().unwrap_or("");
        let default_port = match scheme {
            "coap" => 5683,
            "coaps" => 5684,
            _ => return Err(FirmwareFailure::UnsupportedProtocol),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or(FirmwareFailure::InvalidUri)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let ip: IpAddr = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            host => host.parse().map_err(|_| FirmwareFailure::InvalidUri)?,
        };
        let port = match port {
            Some(port) => port.parse().map_err(|_| FirmwareFailure::InvalidUri)?,
            None => default_port,
        };
        if path.is_empty() {
            return Err(FirmwareFailure::InvalidUri);
        }
        let to = SocketAddr::new(ip, port);
        let plain = self.secure.is_none() && self.stream.is_none();
        let over_session = self.secure.is_some() && self.stream.is_none() && to == self.server();
        match scheme {
            "coap" if plain => {}
            "coaps" if over_session => {}
            _ => return Err(FirmwareFailure::UnsupportedProtocol),
        }
        Ok(Source {
            to,
            path: path.into(),
        })
    }

    /// Starts an attempt: State 1, Result 0, the seed's fate drawn.
    /// A download under way is broken off first (a new package or URI replaces it), so every
    /// download started ends once.
    fn begin_download(&mut self, now: Instant, phase: Phase, delivery: Delivery) {
        self.firmware_offline(now, false);
        let fate = self.draw_fate();
        self.firmware = Some(Box::new(Transfer {
            phase,
            started: now,
            bytes: 0,
            size: None,
            hasher: Sha256::new(),
            fate,
        }));
        self.set_firmware(now, STATE_DOWNLOADING, RESULT_INITIAL);
        self.events.push_back(Event::Firmware(FirmwareRecord {
            step: FirmwareStep::Started(delivery),
            started: now,
            at: now,
        }));
    }

    fn draw_fate(&mut self) -> Fate {
        let shares = self.config.firmware.failures;
        let roll: f64 = self.rng.random();
        let part: f64 = self.rng.random();
        let mut bound = shares.integrity;
        if roll < bound {
            return Fate::FailsDownload {
                failure: FirmwareFailure::Integrity,
                part: 1.0,
            };
        }
        bound += shares.storage;
        if roll < bound {
            return Fate::FailsDownload {
                failure: FirmwareFailure::OutOfStorage,
                part,
            };
        }
        bound += shares.connection;
        if roll < bound {
            return Fate::FailsDownload {
                failure: FirmwareFailure::ConnectionLost,
                part,
            };
        }
        bound += shares.update;
        if roll < bound {
            return Fate::UpdateFails;
        }
        Fate::Succeeds
    }

    /// Counts and hashes arriving bytes; the failure they cause, if any.
    fn take_bytes(&mut self, bytes: &[u8], announced: Option<u64>) -> Result<(), FirmwareFailure> {
        let limit = self.config.firmware.package_limit;
        let Some(transfer) = self.firmware.as_deref_mut() else {
            return Err(FirmwareFailure::ConnectionLost);
        };
        transfer.bytes += bytes.len() as u64;
        transfer.hasher.update(bytes);
        transfer.size = transfer.size.or(announced);
        if transfer.bytes > limit || transfer.size.is_some_and(|size| size > limit) {
            return Err(FirmwareFailure::OutOfStorage);
        }
        match transfer.fate {
            Fate::FailsDownload { failure, part }
                if failure != FirmwareFailure::Integrity
                    && transfer.bytes as f64
                        > part * transfer.size.unwrap_or(UNANNOUNCED_SIZE) as f64 =>
            {
                Err(failure)
            }
            _ => Ok(()),
        }
    }

    /// The last byte arrived: State 2, or the integrity check fails (State 0, Result 5), or a
    /// failure meant for past the end of a package shorter than foreseen happens now.
    fn finish_download(&mut self, now: Instant) {
        let Some(transfer) = self.firmware.as_deref_mut() else {
            return;
        };
        if let Fate::FailsDownload { failure, .. } = transfer.fate {
            self.fail_download(now, failure);
            return;
        }
        let digest = std::mem::take(&mut transfer.hasher).finalize();
        let version: Box<str> = match &self.config.firmware.version {
            Some(version) => version.as_str().into(),
            None => format!("fw-{}", hex::encode(&digest[..4])).into(),
        };
        transfer.phase = Phase::Downloaded { version };
        let (started, bytes) = (transfer.started, transfer.bytes);
        self.set_firmware(now, STATE_DOWNLOADED, RESULT_INITIAL);
        self.events.push_back(Event::Firmware(FirmwareRecord {
            step: FirmwareStep::Downloaded { bytes },
            started,
            at: now,
        }));
    }

    /// A download ended without the package (or, cancelled, a package downloaded is dropped):
    /// State 0 and the failure's Update Result.
    fn fail_download(&mut self, now: Instant, failure: FirmwareFailure) {
        let Some(transfer) = self.firmware.take() else {
            return;
        };
        if let Phase::Pull {
            token: Some(token), ..
        } = transfer.phase
        {
            self.coap.give_up(token);
            self.complete(now, token, super::RequestOutcome::Aborted);
        }
        self.set_firmware(now, STATE_IDLE, failure.update_result());
        self.events.push_back(Event::Firmware(FirmwareRecord {
            step: FirmwareStep::Failed(failure),
            started: transfer.started,
            at: now,
        }));
    }

    /// An empty package or URI: back to Idle, Result 0, whatever was under way forgotten.
    fn firmware_reset(&mut self, now: Instant) {
        if self
            .firmware
            .as_deref()
            .is_some_and(|t| matches!(t.phase, Phase::Push { .. } | Phase::Pull { .. }))
        {
            self.fail_download(now, FirmwareFailure::ConnectionLost);
        }
        self.firmware = None;
        self.set_firmware(now, STATE_IDLE, RESULT_INITIAL);
    }

    /// Execute `/5/0/2`: only with a package downloaded (else 4.05). State 3; offline shortly.
    pub(super) fn execute_firmware_update(&mut self, now: Instant) -> Answer {
        let Some(transfer) = self.firmware.as_deref_mut() else {
            return Answer::code(ResponseType::MethodNotAllowed);
        };
        let Phase::Downloaded { version } = &mut transfer.phase else {
            return Answer::code(ResponseType::MethodNotAllowed);
        };
        let version = std::mem::take(version);
        transfer.phase = Phase::Updating {
            version,
            since: now,
        };
        self.set_firmware(now, STATE_UPDATING, RESULT_INITIAL);
        self.deferred = Some((Deferred::FirmwareUpdate, now + UPDATE_NOTIFY_GRACE));
        Answer::code(ResponseType::Changed)
    }

    /// Execute `/5/0/10` Cancel (object 5 version 1.1, which LWM2M 1.2 clients carry; older
    /// ones have no such resource: 4.04). A download under way or a package downloaded is
    /// dropped: State 0, Update Result 10. Nothing to cancel, or an update under way: 4.05.
    pub(super) fn execute_firmware_cancel(&mut self, now: Instant) -> Answer {
        if self.config.version < LwM2mVersion::V1_2 {
            return Answer::code(ResponseType::NotFound);
        }
        let cancellable = self.firmware.as_deref().is_some_and(|t| {
            matches!(
                t.phase,
                Phase::Push { .. } | Phase::Pull { .. } | Phase::Downloaded { .. }
            )
        });
        if !cancellable {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        self.fail_download(now, FirmwareFailure::Cancelled);
        Answer::code(ResponseType::Changed)
    }

    /// Goes offline for the update time; the outcome is set now (nobody can read it offline)
    /// and reported when the client has registered again.
    pub(super) fn apply_firmware(&mut self, now: Instant) {
        let fails = self
            .firmware
            .as_deref()
            .is_some_and(|t| t.fate == Fate::UpdateFails);
        let version = match self.firmware.as_deref() {
            Some(Transfer {
                phase: Phase::Updating { version, .. },
                ..
            }) => version.to_string(),
            _ => return,
        };
        self.go_offline(now, ClientState::Rebooting);
        self.register_failures = 0;
        self.register_at = Some(now + self.config.firmware.update_time);
        if fails {
            self.set_firmware(
                now,
                STATE_DOWNLOADED,
                FirmwareFailure::UpdateFailed.update_result(),
            );
        } else {
            let _ = self.device.provision(Record {
                path: Path::resource(3, 0, 3),
                value: Value::String(version.clone()),
            });
            let _ = self.device.provision(Record {
                path: Path::resource(5, 0, 7),
                value: Value::String(version),
            });
            self.set_firmware(now, STATE_IDLE, RESULT_SUCCESS);
        }
    }

    /// Registered again: an update under way ends (updated, or failed and Downloaded again).
    pub(super) fn firmware_registered(&mut self, now: Instant) {
        let Some(Transfer {
            phase: Phase::Updating { version, since },
            fate,
            started,
            ..
        }) = self.firmware.as_deref_mut()
        else {
            return;
        };
        let (since, failed) = (*since, *fate == Fate::UpdateFails);
        let step = if failed {
            // The package is still there: a new Execute may try again (and succeed).
            let version = std::mem::take(version);
            *fate = Fate::Succeeds;
            *started = since;
            self.firmware.as_deref_mut().expect("checked").phase = Phase::Downloaded { version };
            FirmwareStep::Failed(FirmwareFailure::UpdateFailed)
        } else {
            self.firmware = None;
            FirmwareStep::Updated
        };
        self.events.push_back(Event::Firmware(FirmwareRecord {
            step,
            started: since,
            at: now,
        }));
    }

    /// Whether a pull download is under way (it keeps a queue-mode client awake).
    pub(super) fn firmware_downloading(&self) -> bool {
        self.firmware
            .as_deref()
            .is_some_and(|t| matches!(t.phase, Phase::Pull { .. }))
    }

    /// Going offline other than to update: a download under way is lost (Result 4), counted
    /// as `aborted` when the client stops.
    pub(super) fn firmware_offline(&mut self, now: Instant, stopping: bool) {
        if self
            .firmware
            .as_deref()
            .is_some_and(|t| matches!(t.phase, Phase::Push { .. } | Phase::Pull { .. }))
        {
            let failure = if stopping {
                FirmwareFailure::Aborted
            } else {
                FirmwareFailure::ConnectionLost
            };
            self.fail_download(now, failure);
        }
    }

    /// Sets State and Update Result and lets observers of object 5 know.
    fn set_firmware(&mut self, now: Instant, state: i64, result: i64) {
        for (resource, value) in [(3, state), (5, result)] {
            let _ = self.device.provision(Record {
                path: Path::resource(5, 0, resource),
                value: Value::Integer(value),
            });
        }
        self.reschedule_observations(now, &Path::instance(5, 0));
    }

    /// When the firmware transfer next needs the clock: the next Block2 GET, or a push that
    /// went quiet for `block1_idle_timeout`.
    pub(super) fn firmware_deadline(&self) -> Option<Instant> {
        match &self.firmware.as_deref()?.phase {
            Phase::Pull { due, .. } => *due,
            Phase::Push { last_block_at, .. } => {
                Some(*last_block_at + self.config.block1_idle_timeout)
            }
            _ => None,
        }
    }

    pub(super) fn firmware_timeout(&mut self, now: Instant) {
        let Some(transfer) = self.firmware.as_deref_mut() else {
            return;
        };
        match &mut transfer.phase {
            Phase::Pull { due, .. } if due.is_some_and(|at| at <= now) => {
                let intended = due.take().expect("checked");
                self.enqueue(Outgoing::Download, intended);
            }
            Phase::Push { last_block_at, .. }
                if *last_block_at + self.config.block1_idle_timeout <= now =>
            {
                self.fail_download(now, FirmwareFailure::ConnectionLost);
            }
            _ => {}
        }
    }

    /// Sends the next Block2 GET (its turn came in the queue).
    pub(super) fn send_download(&mut self, now: Instant, intended: Instant) {
        let Some(Transfer {
            phase:
                Phase::Pull {
                    source,
                    next,
                    szx,
                    token,
                    ..
                },
            ..
        }) = self.firmware.as_deref_mut()
        else {
            // The download ended while the GET waited its turn.
            self.record_unsent(super::RequestKind::Download, intended, now);
            return;
        };
        let fresh = Token::random(&mut self.rng);
        *token = Some(fresh);
        let segments: Vec<&str> = source.path.split('/').filter(|s| !s.is_empty()).collect();
        let mut packet =
            message::request(RequestType::Get, &segments, &[], None, Vec::new(), fresh);
        block::set_block2(
            &mut packet,
            BlockValue {
                num: *next,
                more: false,
                szx: *szx,
            },
        );
        let to = source.to;
        self.send_tracked(
            now,
            to,
            super::RequestKind::Download,
            intended,
            fresh,
            packet,
        );
    }

    /// The answer to a Block2 GET.
    pub(super) fn on_download_answer(&mut self, now: Instant, code: u8, packet: &Packet) {
        let Some(Transfer {
            phase: Phase::Pull {
                next, szx, token, ..
            },
            ..
        }) = self.firmware.as_deref_mut()
        else {
            return;
        };
        *token = None;
        let expected = *next;
        if code >> 5 != 2 {
            let failure = if code >> 5 == 4 {
                FirmwareFailure::InvalidUri
            } else {
                FirmwareFailure::ConnectionLost
            };
            self.fail_download(now, failure);
            return;
        }
        let value = match block::block2(packet) {
            Ok(Some(value)) => value,
            // No Block2: the whole package in one answer.
            Ok(None) => BlockValue {
                num: expected,
                more: false,
                szx: *szx,
            },
            Err(_) => {
                self.fail_download(now, FirmwareFailure::ConnectionLost);
                return;
            }
        };
        if value.num != expected {
            self.fail_download(now, FirmwareFailure::ConnectionLost);
            return;
        }
        *next += 1;
        *szx = value.szx;
        let size = block::size2(packet).ok().flatten().map(u64::from);
        if let Err(failure) = self.take_bytes(&packet.payload, size) {
            self.fail_download(now, failure);
            return;
        }
        if !value.more {
            self.finish_download(now);
            return;
        }
        let rate = self.config.firmware.download_rate;
        if let Some(Transfer {
            phase: Phase::Pull { due, retries, .. },
            started,
            bytes,
            ..
        }) = self.firmware.as_deref_mut()
        {
            *retries = 0;
            // Paced so that the average since the start stays within the rate.
            let paced = rate.filter(|r| *r > 0).map(|rate| {
                *started + Duration::from_micros(bytes.saturating_mul(1_000_000) / rate)
            });
            *due = Some(paced.map_or(now, |at| at.max(now)));
        }
    }

    /// A Block2 GET timed out or was reset: asked again a few times, then the download is lost.
    pub(super) fn on_download_failed(&mut self, now: Instant) {
        let Some(Transfer {
            phase:
                Phase::Pull {
                    due,
                    retries,
                    token,
                    ..
                },
            ..
        }) = self.firmware.as_deref_mut()
        else {
            return;
        };
        *token = None;
        if *retries < DOWNLOAD_RETRIES {
            *retries += 1;
            *due = Some(now);
        } else {
            self.fail_download(now, FirmwareFailure::ConnectionLost);
        }
    }
}
