use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use proptest::prelude::*;

use super::*;
use crate::coap::{Token, message};

const SECOND: Duration = Duration::from_secs(1);

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn at(secs: u64) -> Instant {
    Instant::from_micros(secs * 1_000_000)
}

fn request(
    kind: MessageType,
    mid: u16,
    method: RequestType,
    path: &[&str],
    query: &[&str],
    payload: &str,
) -> Vec<u8> {
    let format = (!payload.is_empty()).then_some(40);
    let token = Token::from_slice(&mid.to_be_bytes()).unwrap();
    let mut packet = message::request(method, path, query, format, payload.into(), token);
    packet.header.set_type(kind);
    packet.header.message_id = mid;
    packet.to_bytes().unwrap()
}

fn register(mid: u16, query: &[&str], payload: &str) -> Vec<u8> {
    request(
        MessageType::Confirmable,
        mid,
        RequestType::Post,
        &["rd"],
        query,
        payload,
    )
}

/// Every datagram the server wants to send, decoded.
fn sent(server: &mut Server) -> Vec<(SocketAddr, Packet)> {
    std::iter::from_fn(|| server.poll_transmit())
        .map(|(to, bytes)| (to, Packet::from_bytes(&bytes).unwrap()))
        .collect()
}

fn code(packet: &Packet) -> ResponseType {
    match packet.header.code {
        MessageClass::Response(code) => code,
        other => panic!("not a response: {other:?}"),
    }
}

/// Message IDs for `registered`: the same one from the same peer would be a duplicate.
static MID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1000);

/// Registers `ep` from `from` and returns its location.
fn registered(server: &mut Server, now: Instant, from: SocketAddr, ep: &str, lt: u32) -> String {
    let query = [format!("ep={ep}"), format!("lt={lt}")];
    let query: Vec<&str> = query.iter().map(String::as_str).collect();
    let mid = MID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    server.handle_datagram(now, from, &register(mid, &query, "</1/0>,</3/0>"));
    let replies = sent(server);
    assert_eq!(code(&replies[0].1), ResponseType::Created);
    message::location_path(&replies[0].1).unwrap().join("/")
}

#[test]
fn register_creates_a_registration_with_its_parameters() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let query = ["ep=dev-1", "lt=300", "lwm2m=1.1", "b=U", "Q"];
    let payload = r#"</>;rt="oma.lwm2m";ct=110,</1/0>,</3>;ver=1.2,</3/0>"#;
    server.handle_datagram(at(5), peer(9), &register(7, &query, payload));
    let replies = sent(&mut server);
    assert_eq!(replies.len(), 1);
    let (to, reply) = &replies[0];
    assert_eq!(*to, peer(9));
    assert_eq!(reply.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(reply.header.message_id, 7);
    assert_eq!(reply.get_token(), 7u16.to_be_bytes());
    assert_eq!(code(reply), ResponseType::Created);
    let location = message::location_path(reply).unwrap();
    assert_eq!(location[0], "rd");

    let registration = server.registration("dev-1").unwrap();
    assert_eq!(registration.location(), location.join("/"));
    assert_eq!(registration.lifetime(), 300 * SECOND);
    assert_eq!(registration.version().to_string(), "1.1");
    assert_eq!(registration.binding().to_string(), "U");
    assert!(registration.queue_mode());
    assert_eq!(registration.peer(), peer(9));
    assert_eq!(registration.last_update(), at(5));
    assert_eq!(registration.expires(), at(305));
    let links: Vec<String> = registration
        .object_links()
        .links
        .iter()
        .map(|l| l.path.to_string())
        .collect();
    assert_eq!(links, ["/1/0", "/3", "/3/0"]);
    assert_eq!(
        registration.object_links().links[1].version.as_deref(),
        Some("1.2")
    );
    assert_eq!(server.stats().registers, 1);
    assert_eq!(server.stats().registered, 1);
}

#[test]
fn lwm2m_1_0_queue_mode_is_in_the_binding_and_defaults_apply() {
    let mut server = Server::new(ServerConfig::default(), 1);
    server.handle_datagram(at(0), peer(1), &register(1, &["ep=a", "b=UQ"], ""));
    server.handle_datagram(at(0), peer(2), &register(1, &["ep=b"], ""));
    let a = server.registration("a").unwrap();
    assert!(a.queue_mode());
    assert_eq!(a.binding().to_string(), "UQ");
    let b = server.registration("b").unwrap();
    assert!(!b.queue_mode());
    assert_eq!(b.lifetime(), Duration::from_secs(86_400));
    assert_eq!(b.version(), Version::V1_0);
    assert!(b.object_links().links.is_empty());
}

#[test]
fn bad_registers_are_refused_and_counted() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let cases: [(&[&str], &str, ResponseType); 7] = [
        (&["lt=300"], "", ResponseType::BadRequest),
        (&["ep="], "", ResponseType::BadRequest),
        (&["ep=x", "lt=abc"], "", ResponseType::BadRequest),
        (&["ep=x", "lt=0"], "", ResponseType::BadRequest),
        (&["ep=x", "b=UX"], "", ResponseType::BadRequest),
        (&["ep=x", "lwm2m=2.0"], "", ResponseType::PreconditionFailed),
        (&["ep=x"], "</3/0", ResponseType::BadRequest),
    ];
    for (mid, (query, payload, expected)) in cases.into_iter().enumerate() {
        server.handle_datagram(at(0), peer(1), &register(mid as u16, query, payload));
        let replies = sent(&mut server);
        assert_eq!(code(&replies[0].1), expected, "{query:?} {payload:?}");
    }
    // A payload that is not link-format by its Content-Format.
    let mut packet = Packet::from_bytes(&register(99, &["ep=x"], "</3/0>")).unwrap();
    message::set_content_format(&mut packet, 0);
    server.handle_datagram(at(0), peer(1), &packet.to_bytes().unwrap());
    assert_eq!(
        code(&sent(&mut server)[0].1),
        ResponseType::UnsupportedContentFormat
    );
    assert_eq!(server.registration_count(), 0);
    assert_eq!(server.stats().bad_requests, 8);
    assert_eq!(server.stats().registers, 0);
}

#[test]
fn update_deregister_and_unknown_ids() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let location = registered(&mut server, at(0), peer(1), "dev", 60);
    let path: Vec<&str> = location.split('/').collect();
    let post = |mid, query: &[&str], payload| {
        request(
            MessageType::Confirmable,
            mid,
            RequestType::Post,
            &path,
            query,
            payload,
        )
    };
    // Update from a new port, with a new lifetime and object list.
    server.handle_datagram(at(10), peer(2), &post(2, &["lt=120"], "</3/0>,</3303/0>"));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::Changed);
    let registration = server.registration("dev").unwrap();
    assert_eq!(registration.lifetime(), 120 * SECOND);
    assert_eq!(registration.last_update(), at(10));
    assert_eq!(registration.expires(), at(130));
    assert_eq!(registration.peer(), peer(2));
    assert_eq!(registration.object_links().links.len(), 2);
    // An empty Update keeps the object list.
    server.handle_datagram(at(20), peer(2), &post(3, &[], ""));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::Changed);
    assert_eq!(
        server
            .registration("dev")
            .unwrap()
            .object_links()
            .links
            .len(),
        2
    );
    // A bad lifetime in an Update.
    server.handle_datagram(at(21), peer(2), &post(4, &["lt=-1"], ""));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::BadRequest);

    let unknown = ["rd", "00000000"];
    let unknown = request(
        MessageType::Confirmable,
        5,
        RequestType::Post,
        &unknown,
        &[],
        "",
    );
    server.handle_datagram(at(22), peer(2), &unknown);
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::NotFound);

    let delete = |mid| {
        request(
            MessageType::Confirmable,
            mid,
            RequestType::Delete,
            &path,
            &[],
            "",
        )
    };
    server.handle_datagram(at(30), peer(2), &delete(6));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::Deleted);
    server.handle_datagram(at(31), peer(2), &delete(7));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::NotFound);
    server.handle_datagram(at(32), peer(2), &post(8, &[], ""));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::NotFound);

    let stats = server.stats();
    assert_eq!((stats.updates, stats.deregisters), (2, 1));
    assert_eq!((stats.not_found, stats.bad_requests), (3, 1));
    assert_eq!(server.registration_count(), 0);
    assert!(server.link_sets.is_empty(), "object lists are released");
}

#[test]
fn a_new_register_of_a_known_endpoint_replaces_it() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let first = registered(&mut server, at(0), peer(1), "dev", 60);
    let second = registered(&mut server, at(1), peer(1), "dev", 60);
    assert_ne!(first, second);
    assert_eq!(server.registration_count(), 1);
    assert_eq!(server.registration("dev").unwrap().location(), second);
    assert_eq!(server.stats().replaced, 1);
    let path: Vec<&str> = first.split('/').collect();
    let update = update_request(&path, 9);
    server.handle_datagram(at(2), peer(1), &update);
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::NotFound);
}

#[test]
fn retransmitted_requests_are_answered_from_the_cache() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let bytes = register(0x1234, &["ep=dev"], "</3/0>");
    server.handle_datagram(at(0), peer(1), &bytes);
    server.handle_datagram(at(3), peer(1), &bytes);
    let replies: Vec<Vec<u8>> = std::iter::from_fn(|| server.poll_transmit())
        .map(|(_, b)| b)
        .collect();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], replies[1]);
    assert_eq!(server.registration_count(), 1);
    assert_eq!(server.stats().registers, 1);
    assert_eq!(server.stats().duplicates, 1);
    // The same message ID from another peer is another request.
    server.handle_datagram(at(4), peer(2), &bytes);
    assert_eq!(server.stats().registers, 2);
    assert_eq!(server.stats().replaced, 1);
    // After EXCHANGE_LIFETIME the message ID is new again.
    sent(&mut server);
    server.handle_datagram(at(300), peer(2), &bytes);
    assert_eq!(server.stats().registers, 3);
}

#[test]
fn non_requests_get_non_answers_and_duplicates_are_dropped() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let bytes = request(
        MessageType::NonConfirmable,
        5,
        RequestType::Post,
        &["rd"],
        &["ep=n"],
        "",
    );
    server.handle_datagram(at(0), peer(1), &bytes);
    server.handle_datagram(at(1), peer(1), &bytes);
    let replies = sent(&mut server);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(code(&replies[0].1), ResponseType::Created);
    assert_eq!(server.stats().duplicates, 1);
}

/// A bare Update (no parameters) to `rd/<id>` as CON with message ID `mid`.
fn update_request(location: &[&str], mid: u16) -> Vec<u8> {
    request(
        MessageType::Confirmable,
        mid,
        RequestType::Post,
        location,
        &[],
        "",
    )
}

#[test]
fn lifetime_expiry_removes_registrations_updates_postpone_it() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let kept = registered(&mut server, at(0), peer(1), "kept", 60);
    registered(&mut server, at(0), peer(2), "silent", 60);
    let path: Vec<&str> = kept.split('/').collect();
    let update = update_request(&path, 2);
    server.handle_datagram(at(50), peer(1), &update);
    assert_eq!(server.poll_timeout(), Some(at(60)));
    server.handle_timeout(at(59));
    assert_eq!(server.registration_count(), 2);
    server.handle_timeout(at(60));
    assert!(server.registration("silent").is_none());
    assert!(server.registration("kept").is_some());
    assert_eq!(
        server.poll_timeout(),
        Some(at(110)),
        "re-armed at the new expiry"
    );
    server.handle_timeout(at(110));
    assert_eq!(server.registration_count(), 0);
    assert_eq!(server.stats().expired, 2);
    assert_eq!(server.stats().registered, 0);
}

fn read_config(every: Duration) -> ServerConfig {
    ServerConfig {
        read: Some((Path::resource(3303, 0, 5700), every)),
        ..ServerConfig::default()
    }
}

#[test]
fn requests_retransmit_with_backoff_then_time_out() {
    let mut server = Server::new(read_config(100 * SECOND), 3);
    registered(&mut server, at(0), peer(1), "mute", 3600);
    let first = server.poll_timeout().unwrap();
    assert!(first < at(100), "first Read within one period: {first:?}");
    let mut sends = Vec::new();
    while server.stats().read.timeout == 0 {
        let now = server.poll_timeout().unwrap();
        server.handle_timeout(now);
        for (to, packet) in sent(&mut server) {
            assert_eq!(to, peer(1));
            assert_eq!(message::uri_path(&packet).unwrap(), ["3303", "0", "5700"]);
            sends.push((now, packet.header.message_id));
        }
    }
    assert_eq!(sends.len(), 5, "one send and MAX_RETRANSMIT 4: {sends:?}");
    assert!(sends.iter().all(|(_, mid)| *mid == sends[0].1));
    let gaps: Vec<u64> = sends
        .windows(2)
        .map(|w| w[1].0.saturating_since(w[0].0).as_micros() as u64)
        .collect();
    let initial = gaps[0];
    assert!((2_000_000..=3_000_000).contains(&initial), "{initial}");
    assert_eq!(gaps, [initial, 2 * initial, 4 * initial, 8 * initial]);
    let read = server.stats().read;
    assert_eq!((read.sent, read.timeout), (1, 1));
    assert_eq!(server.stats().retransmissions, 4);
}

#[test]
fn unknown_notifications_get_rst_and_pings_too() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let mut notification = message::response(ResponseType::Content);
    notification.header.set_type(MessageType::Confirmable);
    notification.header.message_id = 77;
    notification.set_token(vec![1, 2, 3, 4]);
    message::set_observe(&mut notification, 5);
    server.handle_datagram(at(0), peer(1), &notification.to_bytes().unwrap());
    server.handle_datagram(at(0), peer(1), &[0x40, 0x00, 0x12, 0x34]);
    let replies = sent(&mut server);
    assert_eq!(replies.len(), 2);
    for ((_, reply), mid) in replies.iter().zip([77, 0x1234]) {
        assert_eq!(reply.header.get_type(), MessageType::Reset);
        assert_eq!(reply.header.message_id, mid);
    }
    assert_eq!(server.stats().notifications_rejected, 1);
    assert_eq!(server.stats().pings, 1);
}

#[test]
fn malformed_datagrams_are_counted_and_con_ones_reset() {
    let mut server = Server::new(ServerConfig::default(), 1);
    // Too short, version 2, token length 9, a reserved code class (7.xx).
    let garbage: [&[u8]; 4] = [
        &[0x40],
        &[0x80, 0x01, 0, 1],
        &[0x49, 0x01, 0, 2],
        &[0x40, 0xE0, 0, 3],
    ];
    for bytes in garbage {
        server.handle_datagram(at(0), peer(1), bytes);
    }
    let replies = sent(&mut server);
    let reset: Vec<u16> = replies.iter().map(|(_, p)| p.header.message_id).collect();
    assert_eq!(reset, [2, 3]);
    assert_eq!(server.stats().malformed, 4);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..16)) {
        let mut server = Server::new(read_config(SECOND), 1);
        registered(&mut server, at(0), peer(1), "dev", 60);
        for (i, bytes) in datagrams.iter().enumerate() {
            server.handle_datagram(at(i as u64), peer(1), bytes);
            server.handle_timeout(at(i as u64));
            while server.poll_transmit().is_some() {}
        }
        let stats = *server.stats();
        prop_assert_eq!(stats.datagrams_received, datagrams.len() as u64 + 1);
    }
}

#[test]
fn object_lists_are_parsed_under_an_alternate_root_and_shared() {
    let links =
        ObjectLinks::parse(br#"</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>"#).unwrap();
    assert_eq!(links.root.as_deref(), Some("lwm2m"));
    assert_eq!(links.links[1].path, Path::instance(3, 0));
    assert!(ObjectLinks::parse(br#"</lwm2m>;rt="oma.lwm2m",</3/0>"#).is_none());
    assert!(ObjectLinks::parse(b"</3/x>").is_none());

    let mut server = Server::new(ServerConfig::default(), 1);
    for port in 1..=3 {
        registered(&mut server, at(0), peer(port), &format!("d{port}"), 60);
    }
    assert_eq!(server.link_sets.len(), 1);
}

#[test]
fn requests_go_under_the_alternate_root() {
    let mut server = Server::new(read_config(10 * SECOND), 1);
    let payload = r#"</lwm2m>;rt="oma.lwm2m",</lwm2m/3303/0>"#;
    server.handle_datagram(at(0), peer(1), &register(1, &["ep=alt"], payload));
    sent(&mut server);
    server.handle_timeout(at(10));
    let (_, read) = &sent(&mut server)[0];
    assert_eq!(
        message::uri_path(read).unwrap(),
        ["lwm2m", "3303", "0", "5700"]
    );
    assert_eq!(read.get_first_option(CoapOption::Observe), None);
}

#[test]
fn location_ids_round_trip() {
    for (tag, id) in [(0, 0), (1, 2), (0xdead_beef, 7), (u32::MAX, u32::MAX)] {
        let text = String::from_utf8(registry::location_id(tag, id).to_vec()).unwrap();
        assert_eq!(text.len(), 16);
        assert_eq!(registry::parse_location_id(&text), Some((tag, id)));
    }
    assert_eq!(registry::parse_location_id("123"), None);
    assert_eq!(registry::parse_location_id("xxxxxxxxxxxxxxxx"), None);
    assert_eq!(registry::parse_location_id("+00000000000000f"), None);
}

/// Two servers with the same seed (a restart) hand out different locations, and one's are
/// unknown to the other: a stale Update gets 4.04, so its client registers again.
#[test]
fn locations_differ_across_restarts_and_stale_ones_get_not_found() {
    let mut first = Server::new(ServerConfig::default(), 7);
    let mut second = Server::new(ServerConfig::default(), 7);
    let old: Vec<String> = (0..50)
        .map(|i| registered(&mut first, at(0), peer(i), &format!("ep-{i}"), 60))
        .collect();
    let new: Vec<String> = (0..50)
        .map(|i| registered(&mut second, at(0), peer(i), &format!("ep-{i}"), 60))
        .collect();
    for (mid, location) in old.iter().enumerate() {
        assert!(!new.contains(location), "{location} handed out twice");
        let path: Vec<&str> = location.split('/').collect();
        second.handle_datagram(at(1), peer(999), &update_request(&path, mid as u16));
        let reply = sent(&mut second);
        assert_eq!(code(&reply[0].1), ResponseType::NotFound, "{location}");
    }
    assert_eq!(second.stats().not_found, 50);
    assert_eq!(second.stats().updates, 0);
    // A location with a known id but another tag is no location of ours either.
    let real = &new[0];
    let forged = format!("rd/{}{}", "00000000", &real[11..]);
    assert_ne!(&forged, real);
    let path: Vec<&str> = forged.split('/').collect();
    second.handle_datagram(at(1), peer(0), &update_request(&path, 10));
    assert_eq!(code(&sent(&mut second)[0].1), ResponseType::NotFound);
}

/// NAT rebinding: an Update to a known location from a new address moves the registration.
#[test]
fn an_update_from_a_new_address_moves_the_registration() {
    let mut server = Server::new(ServerConfig::default(), 1);
    let location = registered(&mut server, at(0), peer(1), "dev", 60);
    let path: Vec<&str> = location.split('/').collect();
    server.handle_datagram(at(1), peer(2), &update_request(&path, 5));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::Changed);
    assert_eq!(server.registration("dev").unwrap().peer(), peer(2));
}

#[test]
fn registrations_beyond_the_cap_get_service_unavailable() {
    let config = ServerConfig {
        max_registrations: 2,
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, 1);
    registered(&mut server, at(0), peer(1), "a", 60);
    registered(&mut server, at(0), peer(2), "b", 60);
    server.handle_datagram(at(0), peer(3), &register(1, &["ep=c", "lt=60"], ""));
    assert_eq!(
        code(&sent(&mut server)[0].1),
        ResponseType::ServiceUnavailable
    );
    // A known endpoint registering again replaces its registration: not refused.
    registered(&mut server, at(1), peer(4), "a", 60);
    assert_eq!(server.registration_count(), 2);
    assert_eq!(server.stats().limits.registrations_full, 1);
    assert!(server.stats().to_string().contains("registrations-full 1"));
}

#[test]
fn lifetimes_beyond_the_cap_are_refused() {
    let config = ServerConfig {
        max_lifetime: 3600,
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, 1);
    server.handle_datagram(at(0), peer(1), &register(1, &["ep=a", "lt=3601"], ""));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::BadRequest);
    // No `lt` means 86,400 s: over this cap too.
    server.handle_datagram(at(0), peer(1), &register(2, &["ep=a"], ""));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::BadRequest);
    let location = registered(&mut server, at(0), peer(1), "a", 3600);
    let path: Vec<&str> = location.split('/').collect();
    let update = request(
        MessageType::Confirmable,
        3,
        RequestType::Post,
        &path,
        &["lt=7200"],
        "",
    );
    server.handle_datagram(at(1), peer(1), &update);
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::BadRequest);
    assert_eq!(server.registration("a").unwrap().lifetime(), 3600 * SECOND);
    assert_eq!(server.stats().limits.lifetime_too_long, 3);
}

/// A registration that never answers (a spoofed Register naming a bystander) draws three
/// Reads, then nothing until it sends an Update.
#[test]
fn a_registration_whose_requests_time_out_stops_drawing_load() {
    let mut server = Server::new(read_config(100 * SECOND), 3);
    let location = registered(&mut server, at(0), peer(1), "mute", 86_400);
    let mut now = at(0);
    while now < at(3600) {
        now = server.poll_timeout().unwrap();
        server.handle_timeout(now);
        sent(&mut server);
    }
    let read = server.stats().read;
    assert_eq!((read.sent, read.timeout), (3, 3), "{read:?}");
    assert_eq!(server.stats().limits.unresponsive, 1);
    assert!(server.stats().limits.withheld > 20);
    // An Update: it is heard from again, and the next Read goes out.
    let path: Vec<&str> = location.split('/').collect();
    server.handle_datagram(now, peer(1), &update_request(&path, 4));
    assert_eq!(code(&sent(&mut server)[0].1), ResponseType::Changed);
    let next = server.poll_timeout().unwrap();
    server.handle_timeout(next);
    let reads = sent(&mut server);
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(server.stats().read.sent, 4);
}

/// The memory budget: a few hundred bytes per registration with the load timers armed, beyond
/// the duplicate cache, which is allocated at its capacity.
#[test]
fn registrations_stay_small() {
    let config = ServerConfig {
        read: Some((Path::resource(3303, 0, 5700), 60 * SECOND)),
        execute: Some((Path::resource(3304, 0, 5605), 60 * SECOND)),
        ..ServerConfig::default()
    };
    let mut server = Server::new(config, 1);
    let empty = server.heap_bytes();
    let count: u16 = 20_000;
    let payload =
        r#"</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</4/0>,</6/0>,</3303/0>,</3304/0>,</3301/0>"#;
    for i in 0..count {
        let ep = format!("ep=sim-{i:06}");
        let from = SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 5683));
        server.handle_datagram(at(0), from, &register(i, &[&ep, "lt=300"], payload));
        while server.poll_transmit().is_some() {}
    }
    assert_eq!(server.registration_count(), usize::from(count));
    let per_registration = (server.heap_bytes() - empty) / usize::from(count);
    eprintln!(
        "Registration {} B inline; {per_registration} B per registration in all (maps, \
         timers, names), beside the duplicate cache's {empty} B",
        size_of::<Registration>()
    );
    assert!(size_of::<Registration>() <= 160);
    assert!(
        per_registration < 700,
        "{per_registration} B per registration"
    );
}

#[test]
fn write_composite_values_go_as_their_text_reads() {
    use crate::model::Value;
    assert_eq!(super::composite::typed("60"), Value::Integer(60));
    assert_eq!(super::composite::typed("-2.5"), Value::Float(-2.5));
    assert_eq!(super::composite::typed("true"), Value::Boolean(true));
    assert_eq!(
        super::composite::typed("+01:00"),
        Value::String("+01:00".into())
    );
    assert_eq!(super::composite::typed("NaN"), Value::String("NaN".into()));
}
