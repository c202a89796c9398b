//! Firmware Update (object 5) against a scripted server on a simulated clock: push with Block1,
//! pull with Block2, Execute and the Register with the new version, each injected failure and
//! its Update Result, a pull under loss.

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/shipped.rs"]
mod shipped;
#[path = "support/sim.rs"]
mod sim;

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use lwm2m_swarm::client::{
    Client, ClientConfig, ClientState, Delivery, Event, FirmwareConfig, FirmwareFailure,
    FirmwareFailures, FirmwareStep, LwM2mVersion, RequestKind,
};
use lwm2m_swarm::coap::block::{self as blocks, BlockValue};
use lwm2m_swarm::metrics::Recorder;
use lwm2m_swarm::model::Device;
use lwm2m_swarm::report::schema::{Report, RunConfig};
use sha2::{Digest, Sha256};
use sim::{Sim, uint_option, uri_path};

const SECOND: Duration = Duration::from_secs(1);
const IMAGE_PATH: &str = "/fw/image.bin";

fn meter(seed: u64) -> Device {
    let template = shipped::templates()
        .device("smart-meter")
        .expect("shipped template");
    Device::new(template, seed, 1_700_000_000)
}

fn config(firmware: FirmwareConfig) -> ClientConfig {
    ClientConfig {
        lifetime: Duration::from_secs(3600),
        update_jitter: 0.0,
        firmware,
        ..ClientConfig::default()
    }
}

fn registered(config: ClientConfig, seed: u64) -> Sim {
    let client = Client::new(Arc::new(config), "fw-0001", meter(seed), seed);
    let mut sim = Sim::new(client);
    sim.client.start(sim.now);
    sim.run_for(SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    sim
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

fn code(packet: &Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(code) => code,
        other => panic!("not a response: {other:?}"),
    }
}

fn read_int(sim: &mut Sim, path: &str) -> i64 {
    read(sim, path)
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads one resource as the server would (text/plain).
fn read(sim: &mut Sim, path: &str) -> String {
    let mut request = sim.server.request(RequestType::Get, path);
    request.add_option(CoapOption::Accept, vec![0]);
    let token = sim.send_to_client(&request);
    sim.run_for(Duration::from_millis(20));
    let answer = &sim.server.reply_to(&token).expect("answered").packet;
    assert_eq!(code(answer), ResponseType::Content, "{path}");
    String::from_utf8(answer.payload.clone()).expect("text")
}

/// Pushes `body` to `/5/0/0` in 1024-byte Block1 blocks; the answer codes, one per block sent
/// (the push stops at the first answer that is neither 2.31 nor the final 2.04).
fn push(sim: &mut Sim, body: &[u8]) -> Vec<ResponseType> {
    let mut codes = Vec::new();
    let chunks: Vec<&[u8]> = body.chunks(1024).collect();
    for (num, chunk) in chunks.iter().enumerate() {
        let more = num + 1 < chunks.len();
        let mut request = sim.server.request(RequestType::Put, "/5/0/0");
        request.set_content_format(coap_lite::ContentFormat::ApplicationOctetStream);
        blocks::set_block1(
            &mut request,
            BlockValue::new(num as u32, more, 1024).unwrap(),
        );
        if num == 0 {
            blocks::set_size1(&mut request, body.len() as u32);
        }
        request.payload = chunk.to_vec();
        let token = sim.send_to_client(&request);
        sim.run_for(Duration::from_millis(50));
        let answer = code(&sim.server.reply_to(&token).expect("answered").packet);
        codes.push(answer);
        if answer
            != (if more {
                ResponseType::Continue
            } else {
                ResponseType::Changed
            })
        {
            break;
        }
    }
    codes
}

fn write_uri(sim: &mut Sim, uri: &str) -> ResponseType {
    let mut request = sim.server.request(RequestType::Put, "/5/0/1");
    request.set_content_format(coap_lite::ContentFormat::TextPlain);
    request.payload = uri.as_bytes().to_vec();
    let token = sim.send_to_client(&request);
    sim.run_for(Duration::from_millis(50));
    code(&sim.server.reply_to(&token).expect("answered").packet)
}

fn execute_update(sim: &mut Sim) -> ResponseType {
    let token = sim.send_request(RequestType::Post, "/5/0/2");
    sim.run_for(Duration::from_millis(50));
    code(&sim.server.reply_to(&token).expect("answered").packet)
}

fn firmware_steps(sim: &Sim) -> Vec<FirmwareStep> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Firmware(f) => Some(f.step),
            _ => None,
        })
        .collect()
}

/// The State values notified to an observer of `/5/0/3` (text payloads), in order.
fn notified_states(sim: &Sim, token: &[u8]) -> Vec<String> {
    sim.server
        .notifications_for(token)
        .iter()
        .map(|(_, p)| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

fn expected_version(body: &[u8]) -> String {
    format!("fw-{}", hex::encode(&Sha256::digest(body)[..4]))
}

#[test]
fn push_then_execute_registers_with_the_new_version() {
    let update_time = Duration::from_secs(45);
    let mut sim = registered(
        config(FirmwareConfig {
            update_time,
            ..FirmwareConfig::default()
        }),
        1,
    );
    let observe = sim.observe("/5/0/3");
    sim.run_for(SECOND);
    let body = image(10_000);

    let codes = push(&mut sim, &body);
    assert_eq!(codes.len(), 10);
    assert!(codes[..9].iter().all(|c| *c == ResponseType::Continue));
    assert_eq!(codes[9], ResponseType::Changed);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 0);
    sim.run_for(SECOND);

    assert_eq!(execute_update(&mut sim), ResponseType::Changed);
    let executed = sim.now;
    sim.run_for(SECOND);
    assert_eq!(notified_states(&sim, &observe), ["1", "2", "3"]);
    assert_eq!(sim.client.state(), ClientState::Rebooting);
    let registers_before = sim.server.requests_named(RequestType::Post, "/rd").len();

    sim.run_for(update_time + SECOND);
    assert_eq!(sim.client.state(), ClientState::Registered);
    let registers: Vec<_> = sim
        .server
        .requests_named(RequestType::Post, "/rd")
        .into_iter()
        .filter(|(_, p)| uri_path(p) == "/rd")
        .collect();
    assert_eq!(registers.len(), 2, "{registers_before} before");
    assert!(registers[1].0 >= executed + update_time);
    let version = expected_version(&body);
    assert_eq!(read(&mut sim, "/3/0/3"), version.clone());
    assert_eq!(read(&mut sim, "/5/0/7"), version);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 1);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Push),
            FirmwareStep::Downloaded { bytes: 10_000 },
            FirmwareStep::Updated
        ]
    );
    let updated = sim
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Firmware(f) if f.step == FirmwareStep::Updated => Some(*f),
            _ => None,
        })
        .unwrap();
    assert!(updated.at.saturating_since(updated.started) >= update_time);
}

#[test]
fn execute_without_a_package_is_refused() {
    let mut sim = registered(config(FirmwareConfig::default()), 2);
    assert_eq!(execute_update(&mut sim), ResponseType::MethodNotAllowed);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert!(firmware_steps(&sim).is_empty());
}

#[test]
fn a_push_out_of_order_or_too_large_fails_with_its_result() {
    let mut sim = registered(
        config(FirmwareConfig {
            package_limit: 4096,
            ..FirmwareConfig::default()
        }),
        3,
    );
    // Size1 announces more than the device has room for: 4.13 at once, Result 2.
    let codes = push(&mut sim, &image(8192));
    assert_eq!(codes, [ResponseType::RequestEntityTooLarge]);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 2);

    // Block 2 after block 0: incomplete, connection lost (Result 4).
    let mut first = sim.server.request(RequestType::Put, "/5/0/0");
    blocks::set_block1(&mut first, BlockValue::new(0, true, 1024).unwrap());
    first.payload = vec![1; 1024];
    sim.send_to_client(&first);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    let mut third = sim.server.request(RequestType::Put, "/5/0/0");
    blocks::set_block1(&mut third, BlockValue::new(2, true, 1024).unwrap());
    third.payload = vec![1; 1024];
    let token = sim.send_to_client(&third);
    sim.run_for(Duration::from_millis(50));
    let answer = &sim.server.reply_to(&token).unwrap().packet;
    assert_eq!(code(answer), ResponseType::RequestEntityIncomplete);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 4);

    // A push that stops: dropped after the Block1 idle timeout, Result 4 again.
    let mut again = sim.server.request(RequestType::Put, "/5/0/0");
    blocks::set_block1(&mut again, BlockValue::new(0, true, 1024).unwrap());
    again.payload = vec![1; 1024];
    sim.send_to_client(&again);
    sim.run_for(Duration::from_millis(50));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    sim.run_for(Duration::from_secs(100));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 4);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Push),
            FirmwareStep::Failed(FirmwareFailure::OutOfStorage),
            FirmwareStep::Started(Delivery::Push),
            FirmwareStep::Failed(FirmwareFailure::ConnectionLost),
            FirmwareStep::Started(Delivery::Push),
            FirmwareStep::Failed(FirmwareFailure::ConnectionLost),
        ]
    );
}

#[test]
fn pull_downloads_with_block2_paced_to_the_rate() {
    let rate = 2048;
    let mut sim = registered(
        config(FirmwareConfig {
            download_rate: Some(rate),
            ..FirmwareConfig::default()
        }),
        4,
    );
    let body = image(20_000);
    sim.server.files.push((IMAGE_PATH.into(), body.clone()));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    let started = sim.now;
    assert_eq!(write_uri(&mut sim, &uri), ResponseType::Changed);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    sim.run_for(Duration::from_secs(30));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);

    let gets = sim.server.requests_named(RequestType::Get, IMAGE_PATH);
    let nums: Vec<u32> = gets
        .iter()
        .map(|(_, p)| uint_option(p, CoapOption::Block2).unwrap() >> 4)
        .collect();
    assert_eq!(nums, (0..20).collect::<Vec<_>>());
    // 19 blocks of 1024 bytes before the last GET at 2048 B/s: 9.5 s at least.
    let last = gets.last().unwrap().0;
    assert!(last.saturating_since(started) >= Duration::from_millis(9_400));
    assert!(last.saturating_since(started) <= Duration::from_millis(10_500));
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Downloaded { bytes: 20_000 }
        ]
    );
    let records = sim.request_records();
    let downloads: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RequestKind::Download)
        .collect();
    assert_eq!(downloads.len(), 20);
    assert!(downloads.iter().all(|r| r.outcome.is_success()));

    assert_eq!(execute_update(&mut sim), ResponseType::Changed);
    sim.run_for(Duration::from_secs(40));
    assert_eq!(read(&mut sim, "/3/0/3"), expected_version(&body));
    assert_eq!(read_int(&mut sim, "/5/0/5"), 1);
}

#[test]
fn pull_from_a_second_endpoint_keeps_a_queue_mode_client_awake() {
    let mut sim = registered(
        ClientConfig {
            queue_mode: true,
            awake_window: Duration::from_secs(5),
            ..config(FirmwareConfig {
                download_rate: Some(100),
                ..FirmwareConfig::default()
            })
        },
        9,
    );
    let file_server = sim::addr(5690);
    sim.server.sockets.push(file_server);
    sim.server.files.push((IMAGE_PATH.into(), image(4 * 1024)));
    let uri = format!("coap://{file_server}{IMAGE_PATH}");
    assert_eq!(write_uri(&mut sim, &uri), ResponseType::Changed);
    // 10 s between GETs at 100 B/s, twice the awake window.
    sim.run_for(Duration::from_secs(40));
    let gets = sim.server.requests_named(RequestType::Get, IMAGE_PATH);
    assert_eq!(gets.len(), 4);
    let reached: Vec<_> = sim
        .server
        .requests
        .iter()
        .filter(|r| r.path == IMAGE_PATH)
        .map(|r| r.to)
        .collect();
    assert_eq!(reached, vec![file_server; 4]);
    assert_eq!(
        firmware_steps(&sim).last(),
        Some(&FirmwareStep::Downloaded { bytes: 4 * 1024 })
    );
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.client.state(),
        ClientState::Sleeping,
        "asleep once done"
    );
}

#[test]
fn a_stop_mid_download_ends_it_aborted_and_the_client_deregisters() {
    let mut sim = registered(
        config(FirmwareConfig {
            download_rate: Some(1024),
            ..FirmwareConfig::default()
        }),
        10,
    );
    sim.server.files.push((IMAGE_PATH.into(), image(64 * 1024)));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    write_uri(&mut sim, &uri);
    sim.run_for(Duration::from_millis(5_500));
    let now = sim.now;
    sim.client.stop(now);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.client.state(), ClientState::Stopped);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Failed(FirmwareFailure::Aborted)
        ]
    );
    let gets = sim
        .server
        .requests_named(RequestType::Get, IMAGE_PATH)
        .len();
    assert!((5..=7).contains(&gets), "{gets} GETs in 5.5 s at 1024 B/s");
    let mut recorder = Recorder::new();
    for (_, event) in &sim.events {
        recorder.event(event);
    }
    accounting::assert_accounted(&recorder.snapshot(Duration::from_secs(20)));
    assert_eq!(
        sim.server.requests_named(RequestType::Delete, "/rd").len(),
        1,
        "de-registered"
    );
}

#[test]
fn pull_completes_under_twenty_percent_loss() {
    let mut sim = registered(config(FirmwareConfig::default()), 5);
    let body = image(64 * 1024);
    sim.server.files.push((IMAGE_PATH.into(), body.clone()));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    // The scripted server does not retransmit its own requests: the loss starts after the Write.
    assert_eq!(write_uri(&mut sim, &uri), ResponseType::Changed);
    sim.drop_rate = 0.2;
    sim.run_for(Duration::from_secs(1200));
    sim.drop_rate = 0.0;
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Downloaded { bytes: 64 * 1024 }
        ]
    );
    let records = sim.request_records();
    let sent = sim
        .events
        .iter()
        .filter(|(_, e)| *e == Event::Sent(RequestKind::Download))
        .count();
    let ended = records
        .iter()
        .filter(|r| r.kind == RequestKind::Download)
        .count();
    assert!(ended >= 64, "{ended} downloads ended");
    assert_eq!(sent, ended, "every Block2 GET sent ends once");
    let mut recorder = Recorder::new();
    for (_, event) in &sim.events {
        recorder.event(event);
    }
    let snapshot = recorder.snapshot(Duration::from_secs(1200));
    accounting::assert_accounted(&snapshot);
    assert_eq!(snapshot.firmware.started, 1);
    assert_eq!(snapshot.firmware.downloaded, 1);
    assert_eq!(snapshot.firmware.download_time.len(), 1);

    // The summary, the JSON report and back.
    let summary = snapshot.to_string();
    assert!(
        summary.contains("firmware: started 1, downloaded 1, updated 0, failed 0;")
            && summary.contains("download p50"),
        "{summary}"
    );
    let report = Report::new(RunConfig::default(), &snapshot, Vec::new(), Vec::new());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["firmware"]["started"], 1);
    assert_eq!(json["firmware"]["downloaded"], 1);
    assert_eq!(json["firmware"]["download_time_us"]["count"], 1);
    assert_eq!(json["requests"]["download"]["sent"], sent as u64);
    let back = Report::from_json(&report.to_json())
        .unwrap()
        .to_snapshot()
        .unwrap();
    assert_eq!(back.firmware.downloaded, 1);
    assert_eq!(
        back.firmware.download_time.max(),
        snapshot.firmware.download_time.max()
    );
    assert!(
        records
            .iter()
            .any(|r| r.kind == RequestKind::Download && r.retransmissions > 0),
        "loss was felt"
    );
}

/// Runs one attempt with every attempt failing `share` of the way; the failures seen.
fn fails_with(failures: FirmwareFailures, pull: bool) -> (Sim, Vec<FirmwareStep>) {
    let mut sim = registered(
        config(FirmwareConfig {
            failures,
            ..FirmwareConfig::default()
        }),
        6,
    );
    let body = image(300 * 1024);
    if pull {
        sim.server.files.push((IMAGE_PATH.into(), body));
        let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
        write_uri(&mut sim, &uri);
        sim.run_for(Duration::from_secs(60));
    } else {
        push(&mut sim, &body);
    }
    if read_int(&mut sim, "/5/0/3") == 2 {
        execute_update(&mut sim);
        sim.run_for(Duration::from_secs(60));
    }
    let steps = firmware_steps(&sim);
    (sim, steps)
}

#[test]
fn each_injected_failure_ends_in_its_update_result() {
    let cases = [
        (
            FirmwareFailures {
                integrity: 1.0,
                ..Default::default()
            },
            FirmwareFailure::Integrity,
            0,
        ),
        (
            FirmwareFailures {
                storage: 1.0,
                ..Default::default()
            },
            FirmwareFailure::OutOfStorage,
            0,
        ),
        (
            FirmwareFailures {
                connection: 1.0,
                ..Default::default()
            },
            FirmwareFailure::ConnectionLost,
            0,
        ),
        (
            FirmwareFailures {
                update: 1.0,
                ..Default::default()
            },
            FirmwareFailure::UpdateFailed,
            2,
        ),
    ];
    for pull in [false, true] {
        for (failures, failure, state) in cases {
            let (mut sim, steps) = fails_with(failures, pull);
            let result = failure.update_result();
            assert_eq!(
                steps.last(),
                Some(&FirmwareStep::Failed(failure)),
                "{failure:?} pull={pull}: {steps:?}"
            );
            assert_eq!(
                read_int(&mut sim, "/5/0/5"),
                result,
                "{failure:?} pull={pull}"
            );
            assert_eq!(
                read_int(&mut sim, "/5/0/3"),
                state,
                "{failure:?} pull={pull}"
            );
            assert_eq!(sim.client.state(), ClientState::Registered);
            assert_ne!(
                read(&mut sim, "/3/0/3"),
                expected_version(&image(300 * 1024))
            );
        }
    }
}

#[test]
fn unusable_package_uris_end_with_results_7_and_9() {
    let mut sim = registered(config(FirmwareConfig::default()), 7);
    for (uri, result) in [
        ("http://127.0.0.1/fw.bin", 9),
        ("coap://firmware.example.com/fw.bin", 7),
        ("coap://127.0.0.1:5683", 7),
        ("coaps://127.0.0.1:5684/fw.bin", 9),
    ] {
        assert_eq!(write_uri(&mut sim, uri), ResponseType::Changed, "{uri}");
        assert_eq!(read_int(&mut sim, "/5/0/3"), 0, "{uri}");
        assert_eq!(read_int(&mut sim, "/5/0/5"), result, "{uri}");
    }
    // A new URI while a download is under way breaks the first one off.
    sim.server.files.push((IMAGE_PATH.into(), image(8 * 1024)));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    write_uri(&mut sim, &uri);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    write_uri(&mut sim, &uri);
    sim.run_for(SECOND);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);
    let steps = firmware_steps(&sim);
    assert_eq!(
        steps[steps.len() - 4..],
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Failed(FirmwareFailure::ConnectionLost),
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Downloaded { bytes: 8 * 1024 },
        ]
    );
    // A URI naming nothing on the server: 4.04, Result 7.
    let uri = format!("coap://{}/fw/missing.bin", sim.server.address);
    write_uri(&mut sim, &uri);
    sim.run_for(SECOND);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 7);
    // An empty URI resets to Idle, Result 0.
    write_uri(&mut sim, "");
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 0);
}

#[test]
fn a_downloading_client_holds_little_more_than_an_idle_one() {
    let mut sim = registered(config(FirmwareConfig::default()), 8);
    sim.run_for(SECOND);
    let idle = sim.client.heap_bytes();
    sim.server
        .files
        .push((IMAGE_PATH.into(), image(256 * 1024)));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    write_uri(&mut sim, &uri);
    sim.run_for(Duration::from_millis(200));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    let downloading = sim.client.heap_bytes();
    assert!(
        downloading.saturating_sub(idle) <= 4096,
        "idle {idle} B, downloading {downloading} B"
    );
}

/// Sends `request` with a `SenML` JSON payload setting the Package URI to `uri`; its answer.
fn write_uri_as(sim: &mut Sim, mut request: Packet, uri: &str) -> ResponseType {
    request.add_option(CoapOption::ContentFormat, vec![110]);
    request.payload = format!(r#"[{{"n":"/5/0/1","vs":"{uri}"}}]"#).into_bytes();
    let token = sim.send_to_client(&request);
    sim.run_for(Duration::from_millis(50));
    code(&sim.server.reply_to(&token).expect("answered").packet)
}

#[test]
fn a_write_composite_or_instance_write_of_the_package_uri_starts_the_pull() {
    let body = image(5_000);
    let ways = [(RequestType::IPatch, "/"), (RequestType::Post, "/5/0")];
    for (seed, (method, path)) in (20..).zip(ways) {
        // Paced, so that State 1 can be read before the last block.
        let paced = FirmwareConfig {
            download_rate: Some(1024),
            ..FirmwareConfig::default()
        };
        let mut sim = registered(config(paced), seed);
        sim.server.files.push((IMAGE_PATH.into(), body.clone()));
        let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
        let request = sim.server.request(method, path);
        assert_eq!(
            write_uri_as(&mut sim, request, &uri),
            ResponseType::Changed,
            "{method:?} {path}"
        );
        assert_eq!(read_int(&mut sim, "/5/0/3"), 1, "{method:?} {path}");
        sim.run_for(Duration::from_secs(10));
        assert_eq!(read_int(&mut sim, "/5/0/3"), 2, "{method:?} {path}");
        assert_eq!(
            sim.server
                .requests_named(RequestType::Get, IMAGE_PATH)
                .len(),
            5
        );

        assert_eq!(execute_update(&mut sim), ResponseType::Changed);
        sim.run_for(Duration::from_secs(40));
        assert_eq!(read(&mut sim, "/3/0/3"), expected_version(&body));
        assert_eq!(read_int(&mut sim, "/5/0/5"), 1);
        assert_eq!(
            firmware_steps(&sim),
            [
                FirmwareStep::Started(Delivery::Pull),
                FirmwareStep::Downloaded { bytes: 5_000 },
                FirmwareStep::Updated
            ],
            "{method:?} {path}"
        );
        assert_accounted(&sim);
    }
}

/// Every request the client sent so far ended once (the Sim's server answers all of them).
fn assert_accounted(sim: &Sim) {
    let mut recorder = Recorder::new();
    for (_, event) in &sim.events {
        recorder.event(event);
    }
    accounting::assert_accounted(&recorder.snapshot(Duration::from_secs(1)));
}

fn execute_cancel(sim: &mut Sim) -> ResponseType {
    let token = sim.send_request(RequestType::Post, "/5/0/10");
    sim.run_for(Duration::from_millis(50));
    code(&sim.server.reply_to(&token).expect("answered").packet)
}

#[test]
fn cancel_stops_a_download_or_drops_a_package_with_result_10() {
    let v1_2 = || ClientConfig {
        version: LwM2mVersion::V1_2,
        ..config(FirmwareConfig {
            download_rate: Some(1024),
            ..FirmwareConfig::default()
        })
    };
    let body = image(20_000);

    // Mid-pull: the GETs stop, State 0, Result 10.
    let mut sim = registered(v1_2(), 30);
    sim.server.files.push((IMAGE_PATH.into(), body.clone()));
    let uri = format!("coap://{}{IMAGE_PATH}", sim.server.address);
    assert_eq!(write_uri(&mut sim, &uri), ResponseType::Changed);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(read_int(&mut sim, "/5/0/3"), 1);
    assert_eq!(execute_cancel(&mut sim), ResponseType::Changed);
    let gets = sim
        .server
        .requests_named(RequestType::Get, IMAGE_PATH)
        .len();
    assert!((3..20).contains(&gets), "{gets} GETs before the cancel");
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        sim.server
            .requests_named(RequestType::Get, IMAGE_PATH)
            .len(),
        gets
    );
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 10);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Pull),
            FirmwareStep::Failed(FirmwareFailure::Cancelled)
        ]
    );
    assert_accounted(&sim);
    // Nothing left to cancel, and no package to update with.
    assert_eq!(execute_cancel(&mut sim), ResponseType::MethodNotAllowed);
    assert_eq!(execute_update(&mut sim), ResponseType::MethodNotAllowed);

    // Downloaded (pushed): the package is dropped.
    let mut sim = registered(v1_2(), 31);
    push(&mut sim, &body[..3000]);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);
    assert_eq!(execute_cancel(&mut sim), ResponseType::Changed);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 0);
    assert_eq!(read_int(&mut sim, "/5/0/5"), 10);
    assert_eq!(execute_update(&mut sim), ResponseType::MethodNotAllowed);
    assert_eq!(
        firmware_steps(&sim),
        [
            FirmwareStep::Started(Delivery::Push),
            FirmwareStep::Downloaded { bytes: 3000 },
            FirmwareStep::Failed(FirmwareFailure::Cancelled)
        ]
    );

    // A 1.1 client has no Cancel: 4.04, the package stays.
    let mut sim = registered(config(FirmwareConfig::default()), 32);
    push(&mut sim, &body[..3000]);
    assert_eq!(execute_cancel(&mut sim), ResponseType::NotFound);
    assert_eq!(read_int(&mut sim, "/5/0/3"), 2);
}
