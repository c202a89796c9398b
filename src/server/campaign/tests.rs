//! Campaigns against scripted devices under a simulated clock: each device answers the server's
//! Observe, Write, Execute and Read per `LwM2M` 1.1 §E.6, downloads with Block2 GETs (pull) or
//! takes Block1 writes (push), hashes the image as it arrives, and can be told to fail. The
//! devices take turns answering in text, TLV, `SenML` JSON and CBOR, and LWM2M CBOR.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use sha2::{Digest, Sha256};

use super::super::{Served, Server, ServerConfig};
use super::*;
use crate::coap::block::{self, BlockValue};
use crate::coap::{Token, message};
use crate::model::Record;

const SERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5683);
/// One way, every datagram.
const LATENCY: Duration = Duration::from_millis(20);
const UPDATE_TIME: Duration = Duration::from_secs(5);
const TICK_US: u64 = 10_000_000;
/// The formats the devices answer and notify in, in turn.
const FORMATS: [ContentFormat; 5] = [
    ContentFormat::Text,
    ContentFormat::Tlv,
    ContentFormat::SenmlJson,
    ContentFormat::SenmlCbor,
    ContentFormat::LwM2mCbor,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Update Result 2 as soon as the URI or the first block arrives.
    OutOfStorage,
    /// The image hashes wrong: Update Result 5.
    Integrity,
    /// Half-way through the download: Update Result 4.
    ConnectionLost,
    /// Registers again after the update with the old version and Update Result 8.
    UpdateFailed,
    /// Goes quiet after the Write: the server's stall timeout.
    Silent,
    /// Says Downloading, and again every 10 s, but downloads nothing: a stall all the same.
    Stuck,
}

struct Device {
    endpoint: String,
    addr: SocketAddr,
    fault: Option<Fault>,
    state: i64,
    result: i64,
    version: String,
    state_token: Option<Vec<u8>>,
    result_token: Option<Vec<u8>>,
    next_mid: u16,
    observe_seq: u32,
    /// Pull: the path and block size, the next block, bytes so far.
    download: Option<(Vec<String>, u16, u32)>,
    received: usize,
    hasher: Sha256,
    reboot_at: Option<Instant>,
    silent: bool,
    block_size: u16,
    /// Its Register was answered: no request of the server may come before.
    registered: bool,
    /// How it encodes its answers and notifications (the devices take turns).
    format: ContentFormat,
}

/// A datagram on its way: (due, sequence, to, from, bytes).
type InFlight = (Instant, u64, SocketAddr, SocketAddr, Vec<u8>);

struct World {
    server: Server,
    devices: Vec<Device>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Datagrams in flight: (due, sequence, to, from, bytes).
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    now: Instant,
    image_hash: Vec<u8>,
    image_len: usize,
    downloading_now: usize,
    downloading_max: usize,
    /// Every change of `downloading_now`: (when, devices in State 1 from then on).
    downloading_series: Vec<(Instant, usize)>,
    /// When the last waiting device got its slot.
    last_start: Option<Instant>,
    /// Devices updating: (back at, device).
    reboots: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Device {
    fn mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn register(&mut self) -> Vec<u8> {
        let mid = self.mid();
        let query = [format!("ep={}", self.endpoint), "lt=3600".to_string()];
        let query: Vec<&str> = query.iter().map(String::as_str).collect();
        let token = Token::from_slice(&mid.to_be_bytes()).unwrap();
        let mut p = message::request(
            RequestType::Post,
            &["rd"],
            &query,
            Some(40),
            b"</1/0>,</3/0>,</5/0>".to_vec(),
            token,
        );
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = mid;
        p.to_bytes().unwrap()
    }

    /// `value` at `path` in this device's content format, and the format's number.
    fn encode(&self, path: Path, value: Value) -> (u16, Vec<u8>) {
        let records = [Record { path, value }];
        let bytes = content::encode(self.format, &path, &records, &FirmwareResources).unwrap();
        (self.format.code(), bytes)
    }

    fn notify(&mut self, token: &[u8], path: Path, value: i64) -> Vec<u8> {
        self.observe_seq += 1;
        let mut p = message::response(ResponseType::Content);
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = self.mid();
        p.set_token(token.to_vec());
        message::set_observe(&mut p, self.observe_seq);
        let (format, payload) = self.encode(path, Value::Integer(value));
        message::set_content_format(&mut p, format);
        p.payload = payload;
        p.to_bytes().unwrap()
    }

    fn set_state(&mut self, state: i64, out: &mut Vec<Vec<u8>>) {
        self.state = state;
        if let Some(token) = self.state_token.clone() {
            out.push(self.notify(&token, Path::resource(5, 0, 3), state));
        }
    }

    /// Update Result first, then State: as the spec orders a failed download.
    fn fail_download(&mut self, result: i64, out: &mut Vec<Vec<u8>>) {
        self.result = result;
        self.download = None;
        if let Some(token) = self.result_token.clone() {
            out.push(self.notify(&token, Path::resource(5, 0, 5), result));
        }
        self.set_state(0, out);
    }

    fn block_get(&mut self) -> Vec<u8> {
        let (path, size, num) = self.download.clone().unwrap();
        let mid = self.mid();
        let token = Token::from_slice(&[0xB2, 0, 0, 1]).unwrap();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut p = message::request(RequestType::Get, &path, &[], None, Vec::new(), token);
        block::set_block2(&mut p, BlockValue::new(num, false, size).unwrap());
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = mid;
        p.to_bytes().unwrap()
    }

    /// The image is complete: Downloaded, or an integrity failure.
    fn downloaded(&mut self, world_hash: &[u8], len: usize, out: &mut Vec<Vec<u8>>) {
        let hash = std::mem::take(&mut self.hasher).finalize();
        self.download = None;
        let intact = hash.as_slice() == world_hash && self.received == len;
        if intact && self.fault != Some(Fault::Integrity) {
            self.set_state(2, out);
        } else {
            self.fail_download(5, out);
        }
    }

    fn handle(&mut self, now: Instant, bytes: &[u8], hash: &[u8], len: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.silent || self.reboot_at.is_some() {
            return out;
        }
        let p = Packet::from_bytes(bytes).unwrap();
        let MessageClass::Request(method) = p.header.code else {
            if p.header.code == MessageClass::Response(ResponseType::Created) {
                self.registered = true;
            }
            self.on_response(&p, hash, len, &mut out);
            return out;
        };
        assert!(
            self.registered,
            "{}: a request before the Register's answer",
            self.endpoint
        );
        let path = message::uri_path(&p).unwrap().join("/");
        let observe = message::observe(&p).unwrap() == Some(0);
        let mut reply = message::response(ResponseType::Changed);
        let mut after = Vec::new();
        match (method, path.as_str()) {
            (RequestType::Get, "5/0/3" | "5/0/5" | "3/0/3") => {
                reply = message::response(ResponseType::Content);
                let (format, payload) = match path.as_str() {
                    "5/0/3" => self.encode(Path::resource(5, 0, 3), Value::Integer(self.state)),
                    "5/0/5" => self.encode(Path::resource(5, 0, 5), Value::Integer(self.result)),
                    _ => self.encode(Path::resource(3, 0, 3), Value::String(self.version.clone())),
                };
                message::set_content_format(&mut reply, format);
                if observe {
                    let token = Some(p.get_token().to_vec());
                    if path == "5/0/3" {
                        self.state_token = token;
                    } else {
                        self.result_token = token;
                    }
                    message::set_observe(&mut reply, self.observe_seq);
                }
                reply.payload = payload;
            }
            (RequestType::Put, "5/0/1") => {
                let uri = String::from_utf8(p.payload.clone()).unwrap();
                let rest = uri
                    .strip_prefix(&format!("coap://{SERVER}/"))
                    .expect("our URI");
                match self.fault {
                    Some(Fault::OutOfStorage) => self.fail_download(2, &mut after),
                    Some(Fault::Silent) => self.silent = true,
                    Some(Fault::Stuck) => self.set_state(1, &mut after),
                    _ => {
                        self.set_state(1, &mut after);
                        let path = rest.split('/').map(String::from).collect();
                        self.download = Some((path, self.block_size, 0));
                        after.push(self.block_get());
                    }
                }
            }
            (RequestType::Put, "5/0/0") => {
                if matches!(self.fault, Some(Fault::Silent | Fault::Stuck)) {
                    // Quiet from the first block: the server's request times out.
                    self.silent = true;
                    if self.fault == Some(Fault::Stuck) {
                        self.set_state(1, &mut out);
                    }
                    return out;
                }
                reply = self.push_block(&p, hash, len, &mut after);
            }
            (RequestType::Post, "5/0/2") => {
                assert_eq!(self.state, 2, "Update executed only once Downloaded");
                self.set_state(3, &mut after);
                self.reboot_at = Some(now + UPDATE_TIME);
            }
            other => panic!("unexpected request {other:?}"),
        }
        reply.header.set_type(MessageType::Acknowledgement);
        reply.header.message_id = p.header.message_id;
        reply.set_token(p.get_token().to_vec());
        // Notifications first: a failure's Update Result reaches the server before an error
        // answer would.
        out.extend(after);
        out.push(reply.to_bytes().unwrap());
        out
    }

    /// A Block1 write of `/5/0/0`: the answer.
    fn push_block(
        &mut self,
        p: &Packet,
        hash: &[u8],
        len: usize,
        after: &mut Vec<Vec<u8>>,
    ) -> Packet {
        let b = block::block1(p).unwrap().unwrap();
        let mut reply = message::response(ResponseType::Changed);
        if b.num == 0 {
            if self.fault == Some(Fault::OutOfStorage) {
                self.fail_download(2, after);
                return message::response(ResponseType::RequestEntityTooLarge);
            }
            self.hasher = Sha256::new();
            self.received = 0;
            self.set_state(1, after);
        }
        if self.state != 1 {
            return reply;
        }
        assert_eq!(b.offset(), self.received, "blocks in order");
        self.hasher.update(&p.payload);
        self.received += p.payload.len();
        block::set_block1(&mut reply, b);
        if self.fault == Some(Fault::ConnectionLost) && self.received * 2 >= len {
            self.fail_download(4, after);
            reply = message::response(ResponseType::InternalServerError);
        } else if b.more {
            reply = message::response(ResponseType::Continue);
            block::set_block1(&mut reply, b);
        } else {
            self.downloaded(hash, len, after);
        }
        reply
    }

    fn on_response(&mut self, p: &Packet, hash: &[u8], len: usize, out: &mut Vec<Vec<u8>>) {
        if p.get_token() != [0xB2, 0, 0, 1] || self.download.is_none() {
            return;
        }
        assert_eq!(p.header.code, MessageClass::Response(ResponseType::Content));
        let b = block::block2(p).unwrap().unwrap();
        assert_eq!(b.offset(), self.received);
        self.hasher.update(&p.payload);
        self.received += p.payload.len();
        if self.fault == Some(Fault::ConnectionLost) && self.received * 2 >= len {
            self.fail_download(4, out);
        } else if b.more {
            if let Some(d) = self.download.as_mut() {
                d.2 += 1;
            }
            out.push(self.block_get());
        } else {
            self.downloaded(hash, len, out);
        }
    }

    /// Back from the update: a new registration, with the new version unless it failed.
    fn reboot(&mut self, new_version: &str) -> Vec<u8> {
        self.reboot_at = None;
        self.registered = false;
        self.state_token = None;
        self.result_token = None;
        self.state = 0;
        if self.fault == Some(Fault::UpdateFailed) {
            self.result = 8;
        } else {
            self.result = 1;
            self.version = new_version.to_string();
        }
        self.register()
    }
}

impl World {
    fn new(config: ServerConfig, devices: usize, faulty_every: usize, block_size: u16) -> World {
        let firmware = config.campaigns[0].firmware.clone();
        let mut server = Server::new(config, 7);
        Served::bound(&mut server, SERVER, false);
        let faults = [
            Fault::OutOfStorage,
            Fault::Integrity,
            Fault::ConnectionLost,
            Fault::UpdateFailed,
            Fault::Silent,
            Fault::Stuck,
        ];
        let devices: Vec<Device> = (0..devices)
            .map(|i| Device {
                endpoint: format!("dev-{i}"),
                addr: SocketAddr::from(([127, 0, 0, 2], 10_000 + i as u16)),
                fault: (i % faulty_every == 0).then(|| faults[(i / faulty_every) % faults.len()]),
                state: 0,
                result: 0,
                version: "1.0".into(),
                state_token: None,
                result_token: None,
                next_mid: i as u16,
                observe_seq: 0,
                download: None,
                received: 0,
                hasher: Sha256::new(),
                reboot_at: None,
                silent: false,
                // Every block size a client may ask, 16..=1024.
                block_size: if block_size == 0 {
                    16 << (i % 7)
                } else {
                    block_size
                },
                registered: false,
                format: FORMATS[i % FORMATS.len()],
            })
            .collect();
        let by_addr = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.addr, i))
            .collect();
        World {
            server,
            devices,
            by_addr,
            wire: BinaryHeap::new(),
            seq: 0,
            now: Instant::from_micros(0),
            image_hash: Sha256::digest(firmware.image()).to_vec(),
            image_len: firmware.image().len(),
            downloading_now: 0,
            downloading_max: 0,
            downloading_series: Vec::new(),
            last_start: None,
            reboots: BinaryHeap::new(),
        }
    }

    fn put(&mut self, to: SocketAddr, from: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.wire
            .push(Reverse((self.now + LATENCY, self.seq, to, from, bytes)));
    }

    fn register_all(&mut self) {
        for i in 0..self.devices.len() {
            // Spread over the first 10 s.
            self.now = Instant::from_micros(i as u64 * 10_000_000 / self.devices.len() as u64);
            let bytes = self.devices[i].register();
            let from = self.devices[i].addr;
            self.put(SERVER, from, bytes);
        }
        self.now = Instant::from_micros(0);
    }

    fn repeat_states(&mut self) {
        for i in 0..self.devices.len() {
            let device = &mut self.devices[i];
            if device.fault != Some(Fault::Stuck) || device.silent {
                continue;
            }
            let mut out = Vec::new();
            let state = device.state;
            device.set_state(state, &mut out);
            let from = device.addr;
            for bytes in out {
                self.put(SERVER, from, bytes);
            }
        }
    }

    /// Runs until nothing is left to happen or `limit` passes.
    fn run(&mut self, limit: Instant, new_version: &str) {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 50_000_000, "bounded");
            while let Some((to, bytes)) = self.server.poll_transmit() {
                self.put(to, SERVER, bytes);
            }
            let wire = self.wire.peek().map(|Reverse(d)| d.0);
            let reboot = self.reboots.peek().map(|Reverse(r)| r.0);
            let timer = self.server.poll_timeout();
            let Some(next) = [wire, reboot, timer].into_iter().flatten().min() else {
                return;
            };
            if next > limit {
                return;
            }
            // Every 10 s the stuck devices repeat their State.
            let tick = next.as_micros() / TICK_US;
            if tick > self.now.as_micros() / TICK_US {
                self.now = Instant::from_micros(tick * TICK_US);
                self.repeat_states();
            }
            self.now = next;
            let campaign = self.server.stats().campaign;
            if self.last_start.is_none() && campaign.started > 0 && campaign.waiting == 0 {
                self.last_start = Some(self.now);
            }
            if timer == Some(next) {
                self.server.handle_timeout(next);
            } else if reboot == Some(next) {
                let Some(Reverse((_, i))) = self.reboots.pop() else {
                    unreachable!("a reboot was due");
                };
                let bytes = self.devices[i].reboot(new_version);
                let from = self.devices[i].addr;
                self.put(SERVER, from, bytes);
            } else if let Some(Reverse((_, _, to, from, bytes))) = self.wire.pop() {
                if to == SERVER {
                    self.server.handle_datagram(next, from, &bytes);
                } else {
                    let i = self.by_addr[&to];
                    let (hash, len) = (self.image_hash.clone(), self.image_len);
                    let before = self.devices[i].state;
                    let was = before == 1;
                    let out = self.devices[i].handle(next, &bytes, &hash, len);
                    let is = self.devices[i].state == 1;
                    if is && !was {
                        self.downloading_now += 1;
                        self.downloading_max = self.downloading_max.max(self.downloading_now);
                    } else if was && !is {
                        self.downloading_now -= 1;
                    }
                    if is != was {
                        self.downloading_series.push((next, self.downloading_now));
                    }
                    // Executed just now: back after its update time.
                    if let Some(at) = self.devices[i].reboot_at.filter(|_| before != 3) {
                        self.reboots.push(Reverse((at, i)));
                    }
                    for bytes in out {
                        self.put(SERVER, to, bytes);
                    }
                }
            }
        }
    }
}

fn campaign(mode: CampaignMode, max_concurrent: usize, image: usize) -> CampaignConfig {
    CampaignConfig {
        share: 1.0,
        start: Duration::from_secs(30),
        mode,
        max_concurrent,
        firmware: Firmware::generated("fw-2.0", image),
        version: Some("2.0".into()),
        timeout: Duration::from_secs(120),
        block_size: 512,
    }
}

fn config(campaign: CampaignConfig) -> ServerConfig {
    ServerConfig {
        campaigns: vec![campaign],
        ..ServerConfig::default()
    }
}

/// Every device ends updated or failed by its reason; counts add up; the accounting holds.
fn check_outcome(world: &World, devices: usize, faulty_every: usize) {
    let stats = world.server.stats().campaign;
    let faulty = devices.div_ceil(faulty_every);
    assert_eq!(stats.targeted, devices as u64);
    assert_eq!(stats.started, devices as u64);
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.downloading, 0);
    assert_eq!(stats.in_progress(), 0, "{stats}");
    assert_eq!(stats.updated + stats.failed, devices as u64, "{stats}");
    assert_eq!(stats.failed, faulty as u64, "{stats}");
    assert_eq!(stats.failures.iter().sum::<u64>(), stats.failed);
    // Faults rotate over the faulty devices: OutOfStorage, Integrity...
    let expect = |k: usize| (0..faulty).filter(|n| n % 6 == k).count() as u64;
    let f = |r: FailureReason| stats.failures[r as usize];
    assert_eq!(f(FailureReason::NotEnoughFlash), expect(0), "{stats}");
    assert_eq!(f(FailureReason::IntegrityCheck), expect(1), "{stats}");
    assert_eq!(f(FailureReason::ConnectionLost), expect(2), "{stats}");
    assert_eq!(f(FailureReason::UpdateFailed), expect(3), "{stats}");
    assert_eq!(f(FailureReason::Timeout), expect(4) + expect(5), "{stats}");
    // Every device that reached Downloaded was executed, and updated or failed its update.
    assert_eq!(stats.downloaded, stats.updated + expect(3), "{stats}");
    assert_eq!(stats.download_time.count, stats.downloaded);
    assert_eq!(stats.update_time.count, stats.updated);
    assert!(stats.update_time.mean_us() >= UPDATE_TIME.as_micros() as u64);
    let r = stats.requests;
    assert_eq!(
        r.sent,
        r.ok + r.client_error + r.server_error + r.timeout + r.reset + r.aborted
    );
    for d in &world.devices {
        let updated = d.version == "2.0";
        assert_eq!(updated, d.fault.is_none(), "{} {:?}", d.endpoint, d.fault);
    }
}

#[test]
fn a_pull_campaign_of_1000_devices_with_5_percent_failures_ends_every_device() {
    let (devices, faulty_every, max) = (1000, 20, 50);
    let mut world = World::new(
        config(campaign(CampaignMode::Pull, max, 4096)),
        devices,
        faulty_every,
        0,
    );
    world.register_all();
    world.run(Instant::from_micros(3_600_000_000), "2.0");
    check_outcome(&world, devices, faulty_every);
    let stats = world.server.stats().campaign;
    assert!(
        world.downloading_max <= max,
        "{} at once",
        world.downloading_max
    );
    assert!(
        world.downloading_max > max / 2,
        "the slots were used: {}",
        world.downloading_max
    );
    // Each completed download took image / block size GETs; served from the one image.
    assert!(stats.bytes_served >= stats.downloaded * 4096, "{stats:?}");
}

/// A slot freed by a device's State 2 goes to the next waiting device at once: from the first
/// fill to the last start, the devices downloading stay near the limit (no waves that drain
/// before the next starts).
#[test]
fn the_download_slots_stay_full_until_no_device_waits() {
    let (devices, max) = (1000, 50);
    let mut world = World::new(
        config(campaign(CampaignMode::Pull, max, 4096)),
        devices,
        usize::MAX,
        0,
    );
    world.register_all();
    world.run(Instant::from_micros(3_600_000_000), "2.0");
    let last_start = world.last_start.expect("every device started");
    let series = &world.downloading_series;
    let first_full = series
        .iter()
        .position(|&(_, n)| n == max)
        .expect("the slots filled");
    // Devices in State 1, weighted by time, from the first fill to the last start.
    let mut area = 0u128;
    let mut least = max;
    for pair in series[first_full..].windows(2) {
        let ((from, n), (to, _)) = (pair[0], pair[1]);
        if from >= last_start {
            break;
        }
        let to = to.min(last_start);
        area += u128::from(to.saturating_since(from).as_micros() as u64) * n as u128;
        least = least.min(n);
    }
    let span = last_start
        .saturating_since(series[first_full].0)
        .as_micros();
    let mean = area as f64 / span as f64;
    // Between two downloads a slot spends two round trips (Observe State, Observe Result) and
    // a half (the URI's Write) setting the next device up: 120 ms against ~3 s of download.
    assert!(
        mean >= 0.9 * max as f64,
        "mean {mean:.1} of {max}, least {least}"
    );
    assert!(world.downloading_max <= max);
    // Device 0 is the one faulty device (out of storage).
    let stats = world.server.stats().campaign;
    assert_eq!(stats.updated, devices as u64 - 1, "{stats}");
}

#[test]
fn a_push_campaign_writes_the_image_in_blocks_within_its_limit() {
    let (devices, faulty_every, max) = (100, 10, 8);
    let mut world = World::new(
        config(campaign(CampaignMode::Push, max, 3000)),
        devices,
        faulty_every,
        512,
    );
    world.register_all();
    world.run(Instant::from_micros(3_600_000_000), "2.0");
    check_outcome(&world, devices, faulty_every);
    assert!(world.downloading_max <= max);
    assert_eq!(world.server.stats().campaign.blocks_served, 0);
}

#[test]
fn a_share_of_the_devices_with_object_5_takes_part() {
    let mut c = campaign(CampaignMode::Pull, 0, 100);
    c.share = 0.25;
    // No version asked: Update Result 1 is enough, whatever /3/0/3 reads.
    c.version = None;
    let mut world = World::new(config(c), 40, 1000, 64);
    // Device 0 is faulty by the rotation (every 1000th): clear it.
    world.devices[0].fault = None;
    world.register_all();
    world.run(Instant::from_micros(3_600_000_000), "fw-1a2b3c4d");
    let stats = world.server.stats().campaign;
    assert_eq!(stats.targeted, 10);
    assert_eq!(stats.updated, 10, "{stats}");
    let updated = world
        .devices
        .iter()
        .filter(|d| d.version == "fw-1a2b3c4d")
        .count();
    assert_eq!(updated, 10);
}

#[test]
fn devices_registering_after_the_start_join_after_their_register_is_answered() {
    let mut c = campaign(CampaignMode::Pull, 5, 300);
    c.start = Duration::ZERO;
    let mut world = World::new(config(c), 50, 1000, 256);
    world.devices[0].fault = None;
    world.register_all();
    world.run(Instant::from_micros(3_600_000_000), "2.0");
    let stats = world.server.stats().campaign;
    assert_eq!((stats.targeted, stats.updated), (50, 50), "{stats}");
}

#[test]
fn a_picked_device_costs_the_server_under_200_bytes() {
    assert!(
        size_of::<super::Device>() <= 80,
        "{}",
        size_of::<super::Device>()
    );
    let mut world = World::new(
        config(campaign(CampaignMode::Pull, 10, 100)),
        1000,
        10_000,
        64,
    );
    world.devices[0].fault = None;
    world.register_all();
    // Registered, the campaign not started yet.
    world.run(Instant::from_micros(29_000_000), "2.0");
    assert_eq!(world.server.registration_count(), 1000);
    let before = world.server.heap_bytes();
    world.run(Instant::from_micros(3_600_000_000), "2.0");
    assert_eq!(world.server.stats().campaign.updated, 1000);
    let per_device = (world.server.heap_bytes() - before) / 1000;
    assert!(per_device <= 200, "{per_device} bytes per device");
}

#[test]
fn the_campaign_shows_in_the_status_line() {
    let mut stats = crate::server::ServerStats::default();
    stats.campaign.targeted = 3;
    stats.campaign.updated = 1;
    stats.campaign.failed = 2;
    stats.campaign.failures[FailureReason::Timeout as usize] = 2;
    let line = stats.to_string();
    assert!(line.contains("campaign targeted 3"), "{line}");
    assert!(line.contains("updated 1 failed 2 (timeout 2)"), "{line}");
}

#[test]
fn the_package_uri_names_the_bound_address() {
    let mut server = Server::new(config(campaign(CampaignMode::Pull, 0, 10)), 1);
    Served::bound(&mut server, SERVER, false);
    assert_eq!(
        server.campaigns.base_uri.as_deref(),
        Some("coap://127.0.0.1:5683")
    );
}

#[test]
fn over_dtls_the_package_uri_is_coaps() {
    use crate::security::dtls::ServerKeys;
    use crate::server::{DtlsServerConfig, SecureServer};
    let server = Server::new(config(campaign(CampaignMode::Pull, 0, 10)), 1);
    let dtls = DtlsServerConfig::new(ServerKeys::shared(vec![1; 16]));
    let mut secure = SecureServer::new(server, &dtls);
    Served::bound(&mut secure, SERVER, false);
    assert_eq!(
        secure.server().campaigns.base_uri.as_deref(),
        Some("coaps://127.0.0.1:5683")
    );
}
