//! Tests of what the peer sends us: requests, pings, junk.

use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use proptest::prelude::*;

use super::*;
#[test]
fn ping_gets_rst() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let got = ep.handle_datagram(Instant::ZERO, PEER, &[0x40, 0, 0x12, 0x34], &params);
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
        ep.handle_datagram(secs(0), PEER, &con, &params),
        Incoming::Ignored
    ));
    assert_eq!(drain(&mut ep), vec![vec![0x70, 0, 0, 9]]);
    let non = peer(MessageType::NonConfirmable, code, 10, &[7]);
    assert!(matches!(
        ep.handle_datagram(secs(0), PEER, &non, &params),
        Incoming::Response { .. }
    ));
    assert!(matches!(
        ep.handle_datagram(secs(1), PEER, &non, &params),
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
        ep.handle_datagram(secs(0), PEER, &ack, &params),
        Incoming::Ignored
    ));
    assert!(matches!(
        ep.handle_datagram(secs(0), PEER, &rst, &params),
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
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), PEER, &request, &params) else {
        panic!("not a request")
    };
    // Retransmitted before we answered: nothing cached yet, nothing sent.
    assert!(matches!(
        ep.handle_datagram(secs(1), PEER, &request, &params),
        Incoming::Duplicate
    ));
    assert!(drain(&mut ep).is_empty());

    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Changed);
    ep.respond(secs(1), PEER, &packet, response, &params);
    let reply = drain(&mut ep);
    assert_eq!(reply.len(), 1);
    let parsed = Packet::from_bytes(&reply[0]).unwrap();
    assert_eq!(parsed.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(parsed.header.message_id, 400);
    assert_eq!(parsed.get_token(), [5, 6]);

    for at in [2, 100, 246] {
        assert!(matches!(
            ep.handle_datagram(secs(at), PEER, &request, &params),
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
        ep.handle_datagram(secs(248), PEER, &request, &params),
        Incoming::Request(_)
    ));
}

/// Some servers pick message IDs at random per request: a new request that reuses a recent ID
/// with another token is new, not a retransmission of the old one.
#[test]
fn a_reused_message_id_with_a_new_token_is_a_new_request() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let get = MessageClass::Request(RequestType::Get);
    let read = peer(MessageType::Confirmable, get, 700, &[1, 1]);
    let Incoming::Request(first) = ep.handle_datagram(secs(0), PEER, &read, &params) else {
        panic!("not a request")
    };
    let mut answer = Packet::new();
    answer.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(0), PEER, &first, answer, &params);
    drain(&mut ep);

    let observe = peer(MessageType::Confirmable, get, 700, &[2, 2]);
    let Incoming::Request(second) = ep.handle_datagram(secs(5), PEER, &observe, &params) else {
        panic!("taken for a duplicate of the earlier request")
    };
    assert_eq!(second.get_token(), [2, 2]);
    let mut answer = Packet::new();
    answer.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(5), PEER, &second, answer, &params);
    drain(&mut ep);
    // Its own retransmission is still a duplicate, answered with its own reply.
    assert!(matches!(
        ep.handle_datagram(secs(6), PEER, &observe, &params),
        Incoming::Duplicate
    ));
    let replayed = Packet::from_bytes(&drain(&mut ep)[0]).unwrap();
    assert_eq!(replayed.get_token(), [2, 2]);
}

#[test]
fn non_request_gets_non_reply_and_duplicates_are_dropped() {
    let params = exact_params();
    let mut ep = Endpoint::new(50);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::NonConfirmable, code, 400, &[5]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), PEER, &request, &params) else {
        panic!("not a request")
    };
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(0), PEER, &packet, response, &params);
    let reply = Packet::from_bytes(&drain(&mut ep)[0]).unwrap();
    assert_eq!(reply.header.get_type(), MessageType::NonConfirmable);
    assert_eq!(reply.header.message_id, 50);
    assert_eq!(reply.get_token(), [5]);
    assert!(matches!(
        ep.handle_datagram(secs(144), PEER, &request, &params),
        Incoming::Duplicate
    ));
    assert!(drain(&mut ep).is_empty());
    assert!(matches!(
        ep.handle_datagram(secs(146), PEER, &request, &params),
        Incoming::Request(_)
    ));
}

#[test]
fn empty_response_to_con_is_an_empty_ack() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::Confirmable, code, 0x0102, &[5]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), PEER, &request, &params) else {
        panic!("not a request")
    };
    let mut empty = Packet::new();
    empty.header.code = MessageClass::Empty;
    ep.respond(secs(0), PEER, &packet, empty, &params);
    assert_eq!(drain(&mut ep), vec![vec![0x60, 0, 1, 2]]);
}

#[test]
fn malformed_con_gets_rst_other_malformed_are_dropped() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    // CON with TKL 9.
    let got = ep.handle_datagram(
        secs(0),
        PEER,
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
            ep.handle_datagram(secs(0), PEER, bytes, &params),
            Incoming::Malformed
        ));
    }
    assert!(drain(&mut ep).is_empty());
    // A CON with a reserved class (1.xx).
    assert!(matches!(
        ep.handle_datagram(secs(0), PEER, &[0x40, 0x21, 0, 8], &params),
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
    ep.handle_datagram(secs(0), PEER, &request, &params);
    ep.reset();
    assert!(ep.can_send_confirmable());
    assert_eq!(ep.poll_timeout(), None);
    assert_eq!(ep.poll_transmit(), None);
    assert_eq!(ep.received.len(), 0);
    assert!(matches!(
        ep.handle_datagram(secs(0), PEER, &request, &params),
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
        ep.handle_datagram(secs(0), PEER, &request, &params);
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
        ep.send_confirmable(Instant::ZERO, PEER, get_request(), &params, &mut rng());
        for (i, bytes) in datagrams.iter().enumerate() {
            let now = secs(i as u64);
            if let Incoming::Request(req) = ep.handle_datagram(now,PEER, bytes, &params) {
                ep.respond(now, PEER, &req, notification(), &params);
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
        ep.send_confirmable(Instant::ZERO, PEER, notification(), &params, &mut rng());
        let mut bytes = vec![first, code, (mid >> 8) as u8, mid as u8];
        bytes.extend(rest);
        let _ = ep.handle_datagram(Instant::ZERO,PEER, &bytes, &params);
    }
}
