//! The bootstrap server alone, fed datagrams by hand.

use std::net::SocketAddr;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};

use super::*;

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000))
}

fn server() -> BootstrapServer {
    BootstrapServer::new(
        BootstrapServerConfig::new(Provisioning::new("coap://127.0.0.1:5683")),
        3,
    )
}

fn request(method: RequestType, path: &[&str], query: &[&str], mid: u16) -> Vec<u8> {
    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(method);
    packet.header.message_id = mid;
    packet.set_token(vec![1, 2]);
    for s in path {
        packet.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        packet.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    packet.to_bytes().unwrap()
}

fn sent(server: &mut BootstrapServer) -> Vec<Packet> {
    std::iter::from_fn(|| server.poll_transmit())
        .map(|(to, bytes)| {
            assert_eq!(to, peer());
            Packet::from_bytes(&bytes).unwrap()
        })
        .collect()
}

fn at(secs: u64) -> Instant {
    Instant::from_micros(secs * 1_000_000)
}

#[test]
fn a_request_is_accepted_and_the_sequence_starts_with_a_discover() {
    let mut s = server();
    s.handle_datagram(
        at(1),
        peer(),
        &request(RequestType::Post, &["bs"], &["ep=dev-1"], 7),
    );
    let out = sent(&mut s);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    assert_eq!(out[0].header.message_id, 7);
    assert_eq!(out[1].header.code, MessageClass::Request(RequestType::Get));
    assert_eq!(message::uri_path(&out[1]).unwrap(), ["0"]);
    assert_eq!(message::accept(&out[1]).unwrap(), Some(40));
    let b = s.stats().bootstrap;
    assert_eq!((b.accepted, b.in_progress, b.discover.sent), (1, 1, 1));
}

#[test]
fn bad_requests_are_refused_and_leave_nothing_behind() {
    let mut s = server();
    let cases: [(&[&str], &[&str], ResponseType); 4] = [
        (&["bs"], &[], ResponseType::BadRequest),
        (
            &["bs"],
            &["ep=dev-1", "pct=60"],
            ResponseType::UnsupportedContentFormat,
        ),
        (&["rd"], &["ep=dev-1"], ResponseType::NotFound),
        (&["bs", "x"], &["ep=dev-1"], ResponseType::NotFound),
    ];
    for (i, (path, query, code)) in cases.into_iter().enumerate() {
        s.handle_datagram(
            at(1),
            peer(),
            &request(RequestType::Post, path, query, i as u16),
        );
        let out = sent(&mut s);
        assert_eq!(out.len(), 1, "{path:?} {query:?}: {out:?}");
        assert_eq!(
            out[0].header.code,
            MessageClass::Response(code),
            "{path:?} {query:?}"
        );
    }
    assert!(s.sessions.is_empty());
    assert_eq!(s.poll_timeout(), None);
    let b = s.stats().bootstrap;
    assert_eq!((b.accepted, b.rejected), (0, 2));
}

#[test]
fn a_silent_client_is_given_up_after_the_retransmissions() {
    let mut s = server();
    s.handle_datagram(
        at(1),
        peer(),
        &request(RequestType::Post, &["bs"], &["ep=dev-1"], 7),
    );
    sent(&mut s);
    let mut discovers = 0;
    while let Some(next) = s.poll_timeout() {
        assert!(next < at(200), "bounded");
        s.handle_timeout(next);
        discovers += sent(&mut s).len();
    }
    assert_eq!(discovers, 4, "four retransmissions");
    let b = s.stats().bootstrap;
    assert_eq!((b.failed, b.in_progress, b.discover.timeout), (1, 0, 1));
    assert!(s.sessions.is_empty());
}

#[test]
fn a_client_starting_over_ends_the_sequence_under_way() {
    let mut s = server();
    s.handle_datagram(
        at(1),
        peer(),
        &request(RequestType::Post, &["bs"], &["ep=dev-1"], 7),
    );
    // A retransmission of the same request is a duplicate: answered again, nothing restarts.
    s.handle_datagram(
        at(2),
        peer(),
        &request(RequestType::Post, &["bs"], &["ep=dev-1"], 7),
    );
    sent(&mut s);
    assert_eq!(s.stats().bootstrap.accepted, 1);
    assert_eq!(s.stats().duplicates, 1);
    // A new one (new message ID): the old sequence failed, a new one starts.
    s.handle_datagram(
        at(3),
        peer(),
        &request(RequestType::Post, &["bs"], &["ep=dev-1", "pct=112"], 8),
    );
    let out = sent(&mut s);
    assert_eq!(
        out[0].header.code,
        MessageClass::Response(ResponseType::Changed)
    );
    let b = s.stats().bootstrap;
    assert_eq!((b.accepted, b.failed, b.in_progress), (2, 1, 1));
    assert_eq!(s.sessions[&peer()].format, ContentFormat::SenmlCbor);
}

#[test]
fn the_security_instance_avoids_the_bootstrap_account() {
    assert_eq!(
        free_security_instance(b"</>;lwm2m=1.1,</0/0>,</0/1>;ssid=101"),
        1
    );
    assert_eq!(
        free_security_instance(b"</>;lwm2m=1.1,</0/1>,</0/0>;ssid=9"),
        0
    );
    assert_eq!(free_security_instance(b"</>;lwm2m=1.0"), 0);
    assert_eq!(free_security_instance(b"not links"), 0);
}

#[test]
fn provisioned_keys_are_per_client_and_the_server_can_work_them_out() {
    let provisioning = Provisioning {
        psk_master: Some(b"bootstrap master key".to_vec()),
        ..Provisioning::new("coaps://127.0.0.1:5684")
    };
    let a = provisioning.psk("dev-1").unwrap();
    let b = provisioning.psk("dev-2").unwrap();
    assert_eq!(a.identity, b"dev-1");
    assert_eq!(a.key.len(), 16);
    assert_ne!(a.key, b.key);
    let keys = provisioning.server_keys().unwrap();
    assert_eq!(keys.key(b"dev-2"), Some(b.key));
    let shown = format!("{provisioning:?}");
    assert!(
        !crate::security::x509::tests::shows_secret(&shown, b"bootstrap master key"),
        "{shown}"
    );
    assert!(Provisioning::new("coap://h").server_keys().is_none());
}

#[test]
fn bootstrap_requests_beyond_the_session_cap_get_service_unavailable() {
    let mut s = BootstrapServer::new(
        BootstrapServerConfig {
            max_sessions: 1,
            ..BootstrapServerConfig::new(Provisioning::new("coap://127.0.0.1:5683"))
        },
        3,
    );
    let other = SocketAddr::from(([127, 0, 0, 1], 40_001));
    let bs = |mid| request(RequestType::Post, &["bs"], &["ep=dev-1"], mid);
    s.handle_datagram(at(1), peer(), &bs(1));
    assert_eq!(sent(&mut s).len(), 2);
    s.handle_datagram(at(1), other, &bs(2));
    let (to, bytes) = s.poll_transmit().expect("an answer");
    assert_eq!(to, other);
    let answer = Packet::from_bytes(&bytes).unwrap();
    assert_eq!(
        answer.header.code,
        MessageClass::Response(ResponseType::ServiceUnavailable)
    );
    assert_eq!(s.stats().bootstrap.full, 1);
    assert_eq!(s.stats().bootstrap.accepted, 1);
    assert!(s.stats().to_string().contains("bootstrap-full 1"));
}
