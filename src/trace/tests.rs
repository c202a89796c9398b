use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::message_log::{code_name, describe_packet, describe_payload, line};
use super::pcap::{tcp_packet, udp_packet};
use super::*;

struct NoSchema;

impl Schema for NoSchema {
    fn resource(&self, _object: u16, _resource: u16) -> Option<ResourceSpec> {
        None
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn the_pattern_matches_whole_endpoint_names() {
    let pattern = EndpointPattern::new("demo-000*").unwrap();
    assert!(pattern.matches("demo-000"));
    assert!(pattern.matches("demo-0001"));
    assert!(!pattern.matches("demo-0010"));
    assert!(!pattern.matches("xdemo-0001"), "anchored at the start");
    let one = EndpointPattern::new("demo-000?").unwrap();
    assert!(one.matches("demo-0007"));
    assert!(!one.matches("demo-00071"), "? is exactly one character");
    assert!(!one.matches("demo-000"));
    let set = EndpointPattern::new("meter-[0-1]?").unwrap();
    assert!(set.matches("meter-17") && !set.matches("meter-27"));
    let exact = EndpointPattern::new("demo-0001").unwrap();
    assert!(exact.matches("demo-0001") && !exact.matches("demo-00011"));
}

#[test]
fn a_broken_pattern_says_where() {
    let e = EndpointPattern::new("demo-[0-").unwrap_err();
    assert!(e.contains("\"demo-[0-\" is not an endpoint pattern"), "{e}");
    assert!(e.contains("at character"), "{e}");
}

#[test]
fn a_register_and_its_answer_read_as_log_lines() {
    let mut register = Packet::new();
    register.header.set_type(MessageType::Confirmable);
    register.header.code = MessageClass::Request(RequestType::Post);
    register.header.message_id = 41;
    register.set_token(vec![0x5f, 0x0c]);
    register.add_option(CoapOption::UriPath, b"rd".to_vec());
    register.add_option(CoapOption::UriQuery, b"ep=demo-0001".to_vec());
    register.add_option(CoapOption::UriQuery, b"lt=300".to_vec());
    register.add_option(CoapOption::ContentFormat, vec![40]);
    register.payload = b"</1/0>,</3/0>".to_vec();
    let what = describe_packet(&register, false, None, &NoSchema);
    assert_eq!(
        line(
            Duration::from_millis(12),
            "demo-0001",
            Direction::Sent,
            addr("127.0.0.1:5683"),
            &what
        ),
        "    0.012s demo-0001 -> 127.0.0.1:5683 CON 0.02 POST mid=41 token=5f0c \
         /rd?ep=demo-0001&lt=300 cf=link-format | </1/0>,</3/0>"
    );
    let mut created = Packet::new();
    created.header.set_type(MessageType::Acknowledgement);
    created.header.code = MessageClass::Response(ResponseType::Created);
    created.header.message_id = 41;
    created.set_token(vec![0x5f, 0x0c]);
    created.add_option(CoapOption::LocationPath, b"rd".to_vec());
    created.add_option(CoapOption::LocationPath, b"0".to_vec());
    let what = describe_packet(&created, false, None, &NoSchema);
    assert_eq!(
        line(
            Duration::from_micros(13_400),
            "demo-0001",
            Direction::Received,
            addr("127.0.0.1:5683"),
            &what
        ),
        "    0.013s demo-0001 <- 127.0.0.1:5683 ACK 2.01 Created mid=41 token=5f0c loc=/rd/0"
    );
}

#[test]
fn observe_and_block_options_are_spelt_out() {
    let mut notify = Packet::new();
    notify.header.set_type(MessageType::NonConfirmable);
    notify.header.code = MessageClass::Response(ResponseType::Content);
    notify.add_option(CoapOption::Observe, vec![3]);
    // Block 2, more to come, 1024 bytes (SZX 6).
    notify.add_option(CoapOption::Block2, vec![0x2E]);
    let what = describe_packet(&notify, false, None, &NoSchema);
    assert_eq!(what, "NON 2.05 Content mid=0 obs=3 block2=2/1/1024");
    let tcp = describe_packet(&notify, true, None, &NoSchema);
    assert_eq!(tcp, "TCP 2.05 Content obs=3 block2=2/1/1024");
}

#[test]
fn codes_have_their_names() {
    assert_eq!(code_name(0x45), "2.05 Content");
    assert_eq!(code_name(0x84), "4.04 Not Found");
    assert_eq!(code_name(0xE1), "7.01 CSM");
    assert_eq!(code_name(0x9F), "4.31", "an unknown code is its number");
}

#[test]
fn payloads_are_decoded_where_they_can_be_and_cut() {
    // SenML JSON needs no object definitions.
    let senml = br#"[{"n":"/3/0/9","v":87}]"#;
    assert_eq!(
        describe_payload(senml, Some(110), None, &NoSchema),
        "/3/0/9=87"
    );
    // TLV without the object's definition: its bytes, saying why.
    let tlv = describe_payload(&[0xC1, 0x09, 0x57], Some(11542), None, &NoSchema);
    assert!(tlv.starts_with("tlv undecoded ("), "{tlv}");
    assert!(tlv.ends_with("c10957"), "{tlv}");
    assert_eq!(
        describe_payload(&[0, 1, 0xFF], None, None, &NoSchema),
        "0001ff"
    );
    assert_eq!(describe_payload(b"22.5", Some(0), None, &NoSchema), "22.5");
    let long = describe_payload(&[b'a'; 500], Some(0), None, &NoSchema);
    assert_eq!(long.chars().count(), message_log::PAYLOAD_CHARS + 1);
    assert!(long.ends_with('…'));
}

/// The ones' complement sum of `bytes` folded: 0xFFFF when a checksum inside them is right.
fn verify(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn udp_in_ipv4_carries_the_real_addresses_and_right_checksums() {
    let packet = udp_packet(addr("127.0.0.3:20001"), addr("127.0.0.1:5683"), b"hello");
    assert_eq!(packet.len(), 20 + 8 + 5);
    assert_eq!(packet[0], 0x45);
    assert_eq!(packet[9], 17);
    assert_eq!(&packet[12..16], &[127, 0, 0, 3]);
    assert_eq!(&packet[16..20], &[127, 0, 0, 1]);
    assert_eq!(verify(&packet[..20]), 0xFFFF, "IPv4 header checksum");
    assert_eq!(u16::from_be_bytes([packet[20], packet[21]]), 20001);
    assert_eq!(u16::from_be_bytes([packet[22], packet[23]]), 5683);
    // The UDP checksum over the pseudo-header: source, destination, protocol, length.
    let mut pseudo = packet[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 17, 0, 13]);
    pseudo.extend_from_slice(&packet[20..]);
    assert_eq!(verify(&pseudo), 0xFFFF, "UDP checksum");
}

#[test]
fn ipv6_and_tcp_get_their_own_headers() {
    let packet = udp_packet(
        addr("[2001:db8::2]:20001"),
        addr("[2001:db8::1]:5683"),
        b"hi",
    );
    assert_eq!(packet[0] >> 4, 6);
    assert_eq!(u16::from_be_bytes([packet[4], packet[5]]), 8 + 2);
    assert_eq!(packet[6], 17);
    let mut pseudo = packet[8..40].to_vec();
    pseudo.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 17]);
    pseudo.extend_from_slice(&packet[40..]);
    assert_eq!(verify(&pseudo), 0xFFFF, "UDP over IPv6 checksum");

    let segment = tcp_packet(
        addr("127.0.0.2:20001"),
        addr("127.0.0.1:5683"),
        7,
        9,
        b"abc",
    );
    assert_eq!(segment[9], 6);
    assert_eq!(&segment[24..28], &7u32.to_be_bytes(), "sequence number");
    assert_eq!(&segment[28..32], &9u32.to_be_bytes(), "acknowledgement");
    let mut pseudo = segment[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 6, 0, 23]);
    pseudo.extend_from_slice(&segment[20..]);
    assert_eq!(verify(&pseudo), 0xFFFF, "TCP checksum");
}

#[test]
fn a_shard_captures_only_its_matching_clients_and_hands_them_over() {
    let (writer, tap) = TraceWriter::start(
        EndpointPattern::new("a-1*").unwrap(),
        &TraceSink::Pcap(
            std::env::temp_dir().join(format!("lwm2m-swarm-trace-{}.pcap", std::process::id())),
        ),
        Schemas(Vec::new()),
    )
    .unwrap();
    let mut shard = ShardTrace::new(tap);
    shard.client_started(0, "a-10");
    shard.client_started(1, "a-20");
    shard.client_started(0, "a-10"); // a restart: still one client
    assert!(shard.is_traced(0) && !shard.is_traced(1));
    let (client, server) = (addr("127.0.0.2:20000"), addr("127.0.0.1:5683"));
    for local in [0, 1] {
        let at = Instant::from_micros(5);
        shard.capture(at, local, Direction::Sent, client, server, false, b"x");
    }
    drop(shard);
    let totals = writer.finish().unwrap();
    assert_eq!(
        totals,
        TraceTotals {
            clients: 1,
            written: 1,
            dropped: 0
        }
    );
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("lwm2m-swarm-trace-{}.pcap", std::process::id())),
    );
}

fn captured(ms: u64, endpoint: &str) -> Captured {
    Captured {
        at: Instant::from_micros(ms * 1000),
        endpoint: endpoint.into(),
        direction: Direction::Sent,
        client: addr("127.0.0.1:20000"),
        peer: addr("127.0.0.1:5683"),
        stream: false,
        bytes: Vec::new(),
    }
}

fn batch(shard: u32, upto_ms: u64, times_ms: &[u64], last: bool) -> Batch {
    Batch {
        shard,
        upto: Instant::from_micros(upto_ms * 1000),
        captured: times_ms
            .iter()
            .map(|&ms| captured(ms, &format!("s{shard}")))
            .collect(),
        last,
    }
}

fn ready_ms(merger: &mut Merger) -> Vec<u64> {
    std::iter::from_fn(|| merger.next_ready())
        .map(|c| c.at.as_micros() / 1000)
        .collect()
}

#[test]
fn batches_of_several_shards_come_out_in_time_order() {
    let mut merger = Merger::new(1000);
    // Shard 1 hands 200 ms of datagrams before shard 0 and 2 hand theirs.
    merger.accept(batch(1, 200, &[10, 90, 190], false), 3);
    assert_eq!(
        ready_ms(&mut merger),
        Vec::<u64>::new(),
        "shards 0, 2 unheard"
    );
    merger.accept(batch(0, 150, &[5, 80, 140], false), 3);
    assert_eq!(ready_ms(&mut merger), Vec::<u64>::new(), "shard 2 unheard");
    merger.accept(batch(2, 120, &[50, 100], false), 3);
    // Safe up to 120 ms: shard 2's upto.
    assert_eq!(ready_ms(&mut merger), vec![5, 10, 50, 80, 90, 100]);
    merger.accept(batch(2, 400, &[130, 300], false), 3);
    assert_eq!(ready_ms(&mut merger), vec![130, 140]);
    merger.accept(batch(0, 400, &[160], true), 3);
    assert_eq!(
        ready_ms(&mut merger),
        vec![160, 190],
        "up to shard 1's 200 ms"
    );
    merger.accept(batch(1, 500, &[250, 450], true), 3);
    assert_eq!(
        ready_ms(&mut merger),
        vec![250, 300],
        "up to shard 2's 400 ms"
    );
    merger.accept(batch(2, 500, &[], true), 3);
    assert_eq!(ready_ms(&mut merger), vec![450], "every shard ended");
    assert!(merger.next_held().is_none());
}

#[test]
fn a_shard_heard_of_late_holds_the_others_and_the_limit_bounds_what_is_held() {
    let mut merger = Merger::new(3);
    merger.accept(batch(0, 100, &[10, 20], false), 1);
    assert_eq!(ready_ms(&mut merger), vec![10, 20]);
    // A second shard exists but has handed nothing yet.
    merger.accept(batch(0, 200, &[110, 120, 130], false), 2);
    assert_eq!(ready_ms(&mut merger), Vec::<u64>::new());
    // Past the limit the oldest go out even though shard 1 is silent.
    merger.accept(batch(0, 300, &[210], false), 2);
    assert_eq!(ready_ms(&mut merger), vec![110]);
    merger.accept(batch(1, 300, &[115], true), 2);
    assert_eq!(ready_ms(&mut merger), vec![115, 120, 130, 210]);
}
