//! The endpoint over a reliable transport (RFC 8323): same calls, TCP framing, no message layer.

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};

use super::{PEER, exact_params, get_request, notification, rng, secs, token};
use crate::clock::Instant;
use crate::coap::tcp::frame;
use crate::coap::{Endpoint, Expired, Incoming};

fn response(code: ResponseType, token: &[u8]) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p.set_token(token.to_vec());
    frame::encode_packet(&p)
}

#[test]
fn a_request_goes_out_once_framed_and_matches_its_response_by_token() {
    let params = exact_params();
    let mut ep = Endpoint::reliable();
    ep.send_confirmable(secs(0), PEER, get_request(), &params, &mut rng());
    let (to, bytes) = ep.poll_transmit().expect("sent");
    assert_eq!(to, PEER);
    let m = frame::parse(&bytes).expect("TCP framing");
    assert_eq!((m.code, m.token), (0x02, token().as_slice()));
    assert!(!ep.can_send_confirmable(), "NSTART 1 still holds");
    // No retransmission at the UDP instants.
    assert_eq!(ep.handle_timeout(secs(10), &params), None);
    assert!(ep.poll_transmit().is_none());
    // A response with another token is not ours.
    let other = response(ResponseType::Created, &[9, 9]);
    assert!(matches!(
        ep.handle_datagram(secs(1), PEER, &other, &params),
        Incoming::Ignored
    ));
    let created = response(ResponseType::Created, token().as_slice());
    match ep.handle_datagram(secs(1), PEER, &created, &params) {
        Incoming::Response { token: t, packet } => {
            assert_eq!(t, token());
            assert_eq!(
                packet.header.code,
                MessageClass::Response(ResponseType::Created)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(ep.can_send_confirmable());
    assert!(ep.poll_transmit().is_none(), "no ACK over TCP");
    assert_eq!(ep.retransmissions(), 0);
}

#[test]
fn an_unanswered_request_times_out_at_the_exchange_bound() {
    let params = exact_params();
    let mut ep = Endpoint::reliable();
    ep.send_confirmable(secs(0), PEER, get_request(), &params, &mut rng());
    let bound = secs(0) + params.separate_response_timeout;
    assert_eq!(ep.poll_timeout(), Some(bound));
    let just_before = Instant::from_micros(bound.as_micros() - 1);
    assert_eq!(ep.handle_timeout(just_before, &params), None);
    assert_eq!(
        ep.handle_timeout(bound, &params),
        Some(Expired::Timeout { token: token() })
    );
    assert_eq!(
        ep.poll_transmit().map(|(_, b)| b.len()),
        Some(frame::encode_packet(&get_request()).len())
    );
    assert!(ep.poll_transmit().is_none(), "sent once, never again");
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn requests_are_answered_without_ack_or_dedup_and_notifications_are_not_tracked() {
    let params = exact_params();
    let mut ep = Endpoint::reliable();
    let mut read = Packet::new();
    read.header.code = MessageClass::Request(RequestType::Get);
    read.set_token(vec![5]);
    let bytes = frame::encode_packet(&read);
    for _ in 0..2 {
        // The same bytes twice are two requests: TCP does not duplicate.
        let Incoming::Request(request) = ep.handle_datagram(secs(0), PEER, &bytes, &params) else {
            panic!("a request");
        };
        let mut content = Packet::new();
        content.header.code = MessageClass::Response(ResponseType::Content);
        content.payload = b"42".to_vec();
        ep.respond(secs(0), PEER, &request, content, &params);
        let (_, answer) = ep.poll_transmit().expect("answered");
        let m = frame::parse(&answer).unwrap();
        assert_eq!((m.code, m.token), (0x45, &[5][..]));
    }
    ep.send_non_confirmable(PEER, notification());
    let (_, sent) = ep.poll_transmit().unwrap();
    assert_eq!(frame::parse(&sent).unwrap().code, 0x45);
    assert!(ep.can_send_confirmable() && ep.poll_timeout().is_none());
}

#[test]
fn empty_and_garbage_frames() {
    let params = exact_params();
    let mut ep = Endpoint::reliable();
    assert!(matches!(
        ep.handle_datagram(secs(0), PEER, &frame::encode(0, &[], &[]), &params),
        Incoming::Ignored
    ));
    for garbage in [&[0x0F, 1][..], &[0x10, 0x45][..], &[0x01, 0x45, 1, 2][..]] {
        assert!(matches!(
            ep.handle_datagram(secs(0), PEER, garbage, &params),
            Incoming::Malformed
        ));
    }
}
