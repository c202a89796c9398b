use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

mod endpoints;
mod incoming;
mod peers;
mod reliable;

const TOKEN: [u8; 4] = [1, 2, 3, 4];

/// The peer of the single-peer tests.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5683);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn secs(s: u64) -> Instant {
    Instant::ZERO + Duration::from_secs(s)
}

fn exact_params() -> Params {
    Params {
        ack_random_factor: 1.0,
        ..Params::default()
    }
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

fn token() -> Token {
    Token::from_slice(&TOKEN).unwrap()
}

fn get_request() -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Request(RequestType::Post);
    p.set_token(TOKEN.to_vec());
    p
}

fn notification() -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(ResponseType::Content);
    p.set_token(TOKEN.to_vec());
    p.set_observe_value(5);
    p
}

/// A message from the peer.
fn peer(kind: MessageType, code: MessageClass, mid: u16, token: &[u8]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.code = code;
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    if code != MessageClass::Empty {
        p.payload = b"x".to_vec();
    }
    p.to_bytes().unwrap()
}

fn mid_of(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[2], bytes[3]])
}

/// What the endpoint sends, each datagram with its destination.
fn drain_to(ep: &mut Endpoint) -> Vec<(SocketAddr, Vec<u8>)> {
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

/// What the endpoint sends, all of it to `PEER`.
fn drain(ep: &mut Endpoint) -> Vec<Vec<u8>> {
    drain_to(ep)
        .into_iter()
        .map(|(to, bytes)| {
            assert_eq!(to, PEER, "sent to the single peer");
            bytes
        })
        .collect()
}

/// An endpoint with one CON request sent at 0 s; returns it and the sent bytes.
fn sent_request(params: &Params) -> (Endpoint, Vec<u8>) {
    let mut ep = Endpoint::new(1000);
    ep.send_confirmable(Instant::ZERO, PEER, get_request(), params, &mut rng());
    let sent = drain(&mut ep).remove(0);
    (ep, sent)
}

/// Drives timeouts until the exchange expires; returns the instants of the retransmissions and
/// of the expiry.
fn run_until_expired(ep: &mut Endpoint, params: &Params, first: &[u8]) -> (Vec<Instant>, Instant) {
    let mut sends = Vec::new();
    loop {
        let at = ep.poll_timeout().expect("a timer while outstanding");
        if let Some(expired) = ep.handle_timeout(at, params) {
            assert_eq!(expired, Expired::Timeout { token: token() });
            return (sends, at);
        }
        assert_eq!(
            drain(ep),
            vec![first.to_vec()],
            "retransmission is identical"
        );
        sends.push(at);
    }
}

#[test]
fn retransmission_instants_match_rfc_7252() {
    let params = exact_params();
    let (mut ep, first) = sent_request(&params);
    assert_eq!(mid_of(&first), 1000);
    let (sends, expired) = run_until_expired(&mut ep, &params, &first);
    assert_eq!(sends, [secs(2), secs(6), secs(14), secs(30)]);
    assert_eq!(expired, secs(62));
    assert_eq!(ep.retransmissions(), 4);
    assert_eq!(ep.poll_timeout(), None);
    assert!(ep.can_send_confirmable());
}

#[test]
fn retransmission_instants_stay_within_random_bounds() {
    let params = Params::default();
    for seed in 0..200 {
        let mut ep = Endpoint::new(0);
        let mut rng = SmallRng::seed_from_u64(seed);
        ep.send_confirmable(Instant::ZERO, PEER, get_request(), &params, &mut rng);
        let first = drain(&mut ep).remove(0);
        let t = ep.poll_timeout().unwrap().as_micros();
        assert!(
            (2_000_000..=3_000_000).contains(&t),
            "initial timeout {t} µs"
        );
        let (sends, expired) = run_until_expired(&mut ep, &params, &first);
        let expect: Vec<u64> = [1, 3, 7, 15].iter().map(|k| k * t).collect();
        let got: Vec<u64> = sends.iter().map(|i| i.as_micros()).collect();
        assert_eq!(got, expect);
        assert_eq!(expired.as_micros(), 31 * t);
        assert!(expired <= secs(93));
    }
}

#[test]
fn late_ack_stops_retransmissions() {
    let params = exact_params();
    let (mut ep, first) = sent_request(&params);
    for at in [2, 6] {
        assert_eq!(ep.handle_timeout(secs(at), &params), None);
        assert_eq!(drain(&mut ep), vec![first.clone()]);
    }
    let ack = peer(
        MessageType::Acknowledgement,
        MessageClass::Response(ResponseType::Changed),
        1000,
        &TOKEN,
    );
    let got = ep.handle_datagram(secs(7), PEER, &ack, &params);
    let Incoming::Response { token: t, packet } = got else {
        panic!("{got:?}")
    };
    assert_eq!(t, token());
    assert_eq!(packet.payload, b"x");
    assert_eq!(ep.poll_timeout(), None);
    assert_eq!(ep.handle_timeout(secs(14), &params), None);
    assert!(drain(&mut ep).is_empty());
    assert_eq!(ep.retransmissions(), 2);
    // The same ACK again (the peer answered a retransmission) matches nothing.
    assert!(matches!(
        ep.handle_datagram(secs(8), PEER, &ack, &params),
        Incoming::Ignored
    ));
}

#[test]
fn message_ids_increment_and_wrap() {
    let params = exact_params();
    let mut ep = Endpoint::new(u16::MAX);
    ep.send_non_confirmable(PEER, get_request());
    ep.send_confirmable(Instant::ZERO, PEER, get_request(), &params, &mut rng());
    ep.send_non_confirmable(PEER, notification());
    let mids: Vec<u16> = drain(&mut ep).iter().map(|b| mid_of(b)).collect();
    assert_eq!(mids, [u16::MAX, 0, 1]);
}

#[test]
fn piggybacked_response_with_wrong_token_is_ignored() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let code = MessageClass::Response(ResponseType::Created);
    let ack = peer(MessageType::Acknowledgement, code, 1000, &[9, 9]);
    assert!(matches!(
        ep.handle_datagram(secs(1), PEER, &ack, &params),
        Incoming::Ignored
    ));
    assert!(!ep.can_send_confirmable());
}

#[test]
fn nstart_one() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    assert!(!ep.can_send_confirmable());
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    assert!(matches!(
        ep.handle_datagram(secs(1), PEER, &ack, &params),
        Incoming::SeparatePending { .. }
    ));
    assert!(ep.can_send_confirmable());
}

#[test]
fn separate_response_is_acked_once_and_dedupicated() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(1), PEER, &ack, &params);
    assert!(matches!(got, Incoming::SeparatePending { token: t } if t == token()));
    assert_eq!(ep.poll_timeout(), Some(secs(94)));
    assert_eq!(ep.handle_timeout(secs(2), &params), None);
    assert!(
        drain(&mut ep).is_empty(),
        "no retransmission after the empty ACK"
    );

    let code = MessageClass::Response(ResponseType::Content);
    let response = peer(MessageType::Confirmable, code, 77, &TOKEN);
    let got = ep.handle_datagram(secs(5), PEER, &response, &params);
    assert!(matches!(got, Incoming::Response { token: t, .. } if t == token()));
    let empty_ack = vec![0x60, 0, 0, 77];
    assert_eq!(drain(&mut ep), vec![empty_ack.clone()]);
    assert_eq!(ep.poll_timeout(), None);

    let again = ep.handle_datagram(secs(6), PEER, &response, &params);
    assert!(matches!(again, Incoming::Duplicate));
    assert_eq!(drain(&mut ep), vec![empty_ack]);
}

#[test]
fn separate_response_times_out() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    ep.handle_datagram(secs(1), PEER, &ack, &params);
    assert_eq!(ep.handle_timeout(secs(93), &params), None);
    assert_eq!(
        ep.handle_timeout(secs(94), &params),
        Some(Expired::SeparateTimeout { token: token() })
    );
    assert_eq!(ep.poll_timeout(), None);
    // Now the token is unknown: a late CON response gets RST.
    let code = MessageClass::Response(ResponseType::Content);
    let late = peer(MessageType::Confirmable, code, 78, &TOKEN);
    assert!(matches!(
        ep.handle_datagram(secs(95), PEER, &late, &params),
        Incoming::Ignored
    ));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0, 78]]);
}

#[test]
fn separate_response_overtaking_the_empty_ack_ends_the_exchange() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let code = MessageClass::Response(ResponseType::Content);
    let response = peer(MessageType::Confirmable, code, 5, &TOKEN);
    let got = ep.handle_datagram(secs(1), PEER, &response, &params);
    assert!(matches!(got, Incoming::Response { .. }));
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn notification_ack_and_rst() {
    let params = exact_params();
    let mut ep = Endpoint::new(10);
    ep.send_confirmable(Instant::ZERO, PEER, notification(), &params, &mut rng());
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 10, &[]);
    let got = ep.handle_datagram(secs(1), PEER, &ack, &params);
    assert!(matches!(got, Incoming::Acknowledged { token: t } if t == token()));

    ep.send_confirmable(secs(2), PEER, notification(), &params, &mut rng());
    let rst = peer(MessageType::Reset, MessageClass::Empty, 11, &[]);
    let got = ep.handle_datagram(secs(3), PEER, &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn rst_to_request_and_to_non_notification() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let rst = peer(MessageType::Reset, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(1), PEER, &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));

    ep.send_non_confirmable(PEER, notification());
    let rst = peer(MessageType::Reset, MessageClass::Empty, 1001, &[]);
    let got = ep.handle_datagram(secs(2), PEER, &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
    // Nothing left to match.
    assert!(matches!(
        ep.handle_datagram(secs(2), PEER, &rst, &params),
        Incoming::Ignored
    ));
}

#[test]
fn max_transmit_wait_follows_the_transmission_parameters() {
    // RFC 7252 4.8.2: ACK_TIMEOUT * (2 ** (MAX_RETRANSMIT + 1) - 1) * ACK_RANDOM_FACTOR.
    assert_eq!(
        Params::default().max_transmit_wait(),
        Duration::from_secs(93)
    );
    let quick = Params {
        ack_timeout: Duration::from_secs(1),
        ack_random_factor: 1.0,
        max_retransmit: 2,
        ..Params::default()
    };
    assert_eq!(quick.max_transmit_wait(), Duration::from_secs(7));
}
