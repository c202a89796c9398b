use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

const TOKEN: [u8; 4] = [1, 2, 3, 4];

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

fn drain(ep: &mut Endpoint) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ep.poll_transmit()).collect()
}

/// An endpoint with one CON request sent at 0 s; returns it and the sent bytes.
fn sent_request(params: &Params) -> (Endpoint, Vec<u8>) {
    let mut ep = Endpoint::new(1000);
    ep.send_confirmable(Instant::ZERO, get_request(), params, &mut rng());
    let sent = ep.poll_transmit().unwrap();
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
        ep.send_confirmable(Instant::ZERO, get_request(), &params, &mut rng);
        let first = ep.poll_transmit().unwrap();
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
    let got = ep.handle_datagram(secs(7), &ack, &params);
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
        ep.handle_datagram(secs(8), &ack, &params),
        Incoming::Ignored
    ));
}

#[test]
fn message_ids_increment_and_wrap() {
    let params = exact_params();
    let mut ep = Endpoint::new(u16::MAX);
    ep.send_non_confirmable(get_request());
    ep.send_confirmable(Instant::ZERO, get_request(), &params, &mut rng());
    ep.send_non_confirmable(notification());
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
        ep.handle_datagram(secs(1), &ack, &params),
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
        ep.handle_datagram(secs(1), &ack, &params),
        Incoming::SeparatePending { .. }
    ));
    assert!(ep.can_send_confirmable());
}

#[test]
fn separate_response_is_acked_once_and_dedupicated() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(1), &ack, &params);
    assert!(matches!(got, Incoming::SeparatePending { token: t } if t == token()));
    assert_eq!(ep.poll_timeout(), Some(secs(94)));
    assert_eq!(ep.handle_timeout(secs(2), &params), None);
    assert!(
        drain(&mut ep).is_empty(),
        "no retransmission after the empty ACK"
    );

    let code = MessageClass::Response(ResponseType::Content);
    let response = peer(MessageType::Confirmable, code, 77, &TOKEN);
    let got = ep.handle_datagram(secs(5), &response, &params);
    assert!(matches!(got, Incoming::Response { token: t, .. } if t == token()));
    let empty_ack = vec![0x60, 0, 0, 77];
    assert_eq!(drain(&mut ep), vec![empty_ack.clone()]);
    assert_eq!(ep.poll_timeout(), None);

    let again = ep.handle_datagram(secs(6), &response, &params);
    assert!(matches!(again, Incoming::Duplicate));
    assert_eq!(drain(&mut ep), vec![empty_ack]);
}

#[test]
fn separate_response_times_out() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    ep.handle_datagram(secs(1), &ack, &params);
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
        ep.handle_datagram(secs(95), &late, &params),
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
    let got = ep.handle_datagram(secs(1), &response, &params);
    assert!(matches!(got, Incoming::Response { .. }));
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn notification_ack_and_rst() {
    let params = exact_params();
    let mut ep = Endpoint::new(10);
    ep.send_confirmable(Instant::ZERO, notification(), &params, &mut rng());
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 10, &[]);
    let got = ep.handle_datagram(secs(1), &ack, &params);
    assert!(matches!(got, Incoming::Acknowledged { token: t } if t == token()));

    ep.send_confirmable(secs(2), notification(), &params, &mut rng());
    let rst = peer(MessageType::Reset, MessageClass::Empty, 11, &[]);
    let got = ep.handle_datagram(secs(3), &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn rst_to_request_and_to_non_notification() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let rst = peer(MessageType::Reset, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(1), &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));

    ep.send_non_confirmable(notification());
    let rst = peer(MessageType::Reset, MessageClass::Empty, 1001, &[]);
    let got = ep.handle_datagram(secs(2), &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
    // Nothing left to match.
    assert!(matches!(
        ep.handle_datagram(secs(2), &rst, &params),
        Incoming::Ignored
    ));
}

#[test]
fn ping_gets_rst() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let got = ep.handle_datagram(Instant::ZERO, &[0x40, 0, 0x12, 0x34], &params);
    assert!(matches!(got, Incoming::Ignored));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0x12, 0x34]]);
}

#[test]
fn unknown_token_con_response_gets_rst_and_non_goes_up() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Response(ResponseType::Content);
    let con = peer(MessageType::Confirmable, code, 9, &[7]);
    assert!(matches!(
        ep.handle_datagram(secs(0), &con, &params),
        Incoming::Ignored
    ));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0, 9]]);
    let non = peer(MessageType::NonConfirmable, code, 10, &[7]);
    assert!(matches!(
        ep.handle_datagram(secs(0), &non, &params),
        Incoming::Response { .. }
    ));
    assert!(matches!(
        ep.handle_datagram(secs(1), &non, &params),
        Incoming::Duplicate
    ));
    assert!(drain(&mut ep).is_empty());
}

#[test]
fn ack_or_rst_matching_nothing_is_ignored() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 3, &[]);
    let rst = peer(MessageType::Reset, MessageClass::Empty, 3, &[]);
    assert!(matches!(
        ep.handle_datagram(secs(0), &ack, &params),
        Incoming::Ignored
    ));
    assert!(matches!(
        ep.handle_datagram(secs(0), &rst, &params),
        Incoming::Ignored
    ));
    assert!(drain(&mut ep).is_empty());
}

#[test]
fn duplicate_con_request_is_handled_once_and_replayed() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Request(RequestType::Post);
    let request = peer(MessageType::Confirmable, code, 400, &[5, 6]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), &request, &params) else {
        panic!("not a request")
    };
    // Retransmitted before we answered: nothing cached yet, nothing sent.
    assert!(matches!(
        ep.handle_datagram(secs(1), &request, &params),
        Incoming::Duplicate
    ));
    assert!(drain(&mut ep).is_empty());

    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Changed);
    ep.respond(secs(1), &packet, response, &params);
    let reply = drain(&mut ep);
    assert_eq!(reply.len(), 1);
    let parsed = Packet::from_bytes(&reply[0]).unwrap();
    assert_eq!(parsed.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(parsed.header.message_id, 400);
    assert_eq!(parsed.get_token(), [5, 6]);

    for at in [2, 100, 246] {
        assert!(matches!(
            ep.handle_datagram(secs(at), &request, &params),
            Incoming::Duplicate
        ));
        assert_eq!(drain(&mut ep), reply, "the cached reply, byte for byte");
    }
    assert_eq!(
        ep.poll_timeout(),
        None,
        "idle clients keep no timer for the cache"
    );
    assert!(matches!(
        ep.handle_datagram(secs(248), &request, &params),
        Incoming::Request(_)
    ));
}

#[test]
fn non_request_gets_non_reply_and_duplicates_are_dropped() {
    let params = exact_params();
    let mut ep = Endpoint::new(50);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::NonConfirmable, code, 400, &[5]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), &request, &params) else {
        panic!("not a request")
    };
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(0), &packet, response, &params);
    let reply = Packet::from_bytes(&drain(&mut ep)[0]).unwrap();
    assert_eq!(reply.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(reply.header.message_id, 50);
    assert_eq!(reply.get_token(), [5]);
    assert!(matches!(
        ep.handle_datagram(secs(144), &request, &params),
        Incoming::Duplicate
    ));
    assert!(drain(&mut ep).is_empty());
    assert!(matches!(
        ep.handle_datagram(secs(146), &request, &params),
        Incoming::Request(_)
    ));
}

#[test]
fn empty_response_to_con_is_an_empty_ack() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::Confirmable, code, 0x0102, &[5]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), &request, &params) else {
        panic!("not a request")
    };
    let mut empty = Packet::new();
    empty.header.code = MessageClass::Empty;
    ep.respond(secs(0), &packet, empty, &params);
    assert_eq!(drain(&mut ep), vec![vec![0x60, 0, 1, 2]]);
}

#[test]
fn malformed_con_gets_rst_other_malformed_are_dropped() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    // CON with TKL 9.
    let got = ep.handle_datagram(
        secs(0),
        &[0x49, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &params,
    );
    assert!(matches!(got, Incoming::Malformed));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0, 7]]);
    for bytes in [
        &[0x59, 1, 0, 7][..],
        &[0x40, 1],
        &[0x80, 1, 0, 7],
        &[0x60, 0, 0, 1, 0xff],
    ] {
        assert!(matches!(
            ep.handle_datagram(secs(0), bytes, &params),
            Incoming::Malformed
        ));
    }
    assert!(drain(&mut ep).is_empty());
    // A CON with a reserved class (1.xx).
    assert!(matches!(
        ep.handle_datagram(secs(0), &[0x40, 0x21, 0, 8], &params),
        Incoming::Malformed
    ));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0, 8]]);
}

#[test]
fn reset_forgets_everything() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::Confirmable, code, 1, &[]);
    ep.handle_datagram(secs(0), &request, &params);
    ep.reset();
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
    assert_eq!(ep.poll_transmit(), None);
    assert_eq!(ep.received.len(), 0);
    assert!(matches!(
        ep.handle_datagram(secs(0), &request, &params),
        Incoming::Request(_)
    ));
}

#[test]
fn dedup_cache_is_bounded() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Request(RequestType::Get);
    for mid in 0..1000 {
        let request = peer(MessageType::Confirmable, code, mid, &[]);
        ep.handle_datagram(secs(0), &request, &params);
    }
    assert!(ep.received.len() <= 64);
}

#[test]
fn endpoint_is_small() {
    let size = std::mem::size_of::<Endpoint>();
    println!("size_of::<Endpoint>() = {size}");
    assert!(size <= 128, "{size}");
}

#[test]
fn token_round_trips() {
    assert_eq!(Token::from_slice(&[1; 9]), None);
    assert_eq!(Token::from_slice(&[]).unwrap().as_slice(), [0u8; 0]);
    assert_eq!(token().as_slice(), TOKEN);
    let random = Token::random(&mut rng());
    assert_eq!(random.as_slice().len(), 4);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
    ) {
        let params = Params::default();
        let mut ep = Endpoint::new(0);
        ep.send_confirmable(Instant::ZERO, get_request(), &params, &mut rng());
        for (i, bytes) in datagrams.iter().enumerate() {
            let now = secs(i as u64);
            if let Incoming::Request(req) = ep.handle_datagram(now, bytes, &params) {
                ep.respond(now, &req, notification(), &params);
            }
            let _ = ep.handle_timeout(now, &params);
            while ep.poll_transmit().is_some() {}
        }
    }

    #[test]
    fn arbitrary_datagrams_with_a_valid_header_never_panic(
        first in 0x40u8..0x80, code: u8, mid: u16,
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let params = Params::default();
        let mut ep = Endpoint::new(mid);
        ep.send_confirmable(Instant::ZERO, notification(), &params, &mut rng());
        let mut bytes = vec![first, code, (mid >> 8) as u8, mid as u8];
        bytes.extend(rest);
        let _ = ep.handle_datagram(Instant::ZERO, &bytes, &params);
    }
}
