//! Replies match only from the endpoint their exchange went to (RFC 7252 4.4, 5.3.2), and a
//! screened endpoint leaves requests from unwelcome sources unanswered and unremembered.

use coap_lite::{MessageClass, MessageType, RequestType, ResponseType};

use super::*;

/// Another port on the server's host, and another host.
fn strangers() -> [SocketAddr; 2] {
    [addr(40999), SocketAddr::from(([127, 9, 9, 9], 5683))]
}

#[test]
fn rst_and_ack_from_another_endpoint_end_nothing() {
    let params = exact_params();
    let (mut ep, sent) = sent_request(&params);
    for stranger in strangers() {
        for kind in [MessageType::Reset, MessageType::Acknowledgement] {
            let forged = peer(kind, MessageClass::Empty, 1000, &[]);
            let got = ep.handle_datagram(secs(1), stranger, &forged, &params);
            assert!(
                matches!(got, Incoming::ForeignReply),
                "{kind:?} from {stranger}"
            );
        }
        let piggybacked = peer(
            MessageType::Acknowledgement,
            MessageClass::Response(ResponseType::Created),
            1000,
            &TOKEN,
        );
        let got = ep.handle_datagram(secs(1), stranger, &piggybacked, &params);
        assert!(matches!(got, Incoming::ForeignReply));
    }
    assert_eq!(
        drain(&mut ep),
        Vec::<Vec<u8>>::new(),
        "strangers get no answer"
    );
    // Still outstanding: retransmitted on time, then ended by the real peer's RST.
    assert!(!ep.can_send_confirmable());
    assert_eq!(ep.handle_timeout(secs(2), &params), None);
    assert_eq!(drain(&mut ep), vec![sent]);
    let rst = peer(MessageType::Reset, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(3), PEER, &rst, &params);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
}

#[test]
fn a_sweep_of_forged_rsts_over_every_message_id_fails_nothing() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    for mid in 0..=u16::MAX {
        let rst = peer(MessageType::Reset, MessageClass::Empty, mid, &[]);
        let got = ep.handle_datagram(secs(1), addr(40999), &rst, &params);
        // The one with our message ID is foreign; the rest match nothing from a welcome host.
        assert!(matches!(got, Incoming::ForeignReply | Incoming::Ignored));
    }
    assert!(
        !ep.can_send_confirmable(),
        "the request is still outstanding"
    );
    let ack = peer(
        MessageType::Acknowledgement,
        MessageClass::Response(ResponseType::Created),
        1000,
        &TOKEN,
    );
    let got = ep.handle_datagram(secs(1), PEER, &ack, &params);
    assert!(matches!(got, Incoming::Response { token: t, .. } if t == token()));
}

#[test]
fn unwelcome_sources_replies_are_all_foreign() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let far = strangers()[1];
    for mid in [999, 1000, 1001] {
        let rst = peer(MessageType::Reset, MessageClass::Empty, mid, &[]);
        let got = ep.handle_datagram_screened(secs(1), far, &rst, &params, false);
        assert!(matches!(got, Incoming::ForeignReply), "mid {mid}");
    }
    assert!(!ep.can_send_confirmable());
}

#[test]
fn separate_response_only_from_where_the_request_went() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let empty_ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    let got = ep.handle_datagram(secs(1), PEER, &empty_ack, &params);
    assert!(matches!(got, Incoming::SeparatePending { .. }));
    let code = MessageClass::Response(ResponseType::Changed);
    for (kind, mid) in [
        (MessageType::Confirmable, 50),
        (MessageType::NonConfirmable, 51),
    ] {
        for stranger in strangers() {
            let response = peer(kind, code, mid, &TOKEN);
            let got = ep.handle_datagram(secs(2), stranger, &response, &params);
            assert!(
                matches!(got, Incoming::ForeignReply),
                "{kind:?} from {stranger}"
            );
        }
    }
    assert_eq!(drain_to(&mut ep), vec![], "no ACK or RST to strangers");
    let response = peer(MessageType::NonConfirmable, code, 52, &TOKEN);
    let got = ep.handle_datagram(secs(2), PEER, &response, &params);
    assert!(matches!(got, Incoming::Response { token: t, .. } if t == token()));
    assert_eq!(ep.poll_timeout(), None, "nothing left waiting");
}

/// A NON's destination is not kept: an RST to it counts from a welcome source only (the caller
/// then checks it against the observer).
#[test]
fn rst_to_a_non_notification_counts_only_from_a_welcome_source() {
    let params = exact_params();
    let mut ep = Endpoint::new(7);
    ep.send_non_confirmable(addr(40001), notification());
    drain_to(&mut ep);
    let rst = peer(MessageType::Reset, MessageClass::Empty, 7, &[]);
    let far = strangers()[1];
    let got = ep.handle_datagram_screened(secs(1), far, &rst, &params, false);
    assert!(matches!(got, Incoming::ForeignReply));
    let got = ep.handle_datagram_screened(secs(1), addr(40001), &rst, &params, true);
    assert!(matches!(got, Incoming::Reset { token: t } if t == token()));
}

#[test]
fn ack_to_a_con_notification_counts_only_from_its_destination() {
    let params = exact_params();
    let mut ep = Endpoint::new(7);
    ep.send_confirmable(secs(0), addr(40001), notification(), &params, &mut rng());
    drain_to(&mut ep);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 7, &[]);
    let got = ep.handle_datagram(secs(1), addr(40002), &ack, &params);
    assert!(matches!(got, Incoming::ForeignReply));
    assert!(!ep.can_send_confirmable());
    let got = ep.handle_datagram(secs(1), addr(40001), &ack, &params);
    assert!(matches!(got, Incoming::Acknowledged { token: t } if t == token()));
}

#[test]
fn unwelcome_requests_pings_and_garbage_get_no_answer_and_leave_no_trace() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let far = strangers()[1];
    let get = MessageClass::Request(RequestType::Get);
    for kind in [MessageType::Confirmable, MessageType::NonConfirmable] {
        let request = peer(kind, get, 300, &[9]);
        let got = ep.handle_datagram_screened(secs(0), far, &request, &params, false);
        assert!(matches!(got, Incoming::ForeignRequest), "{kind:?}");
    }
    let ping = [0x40, 0, 0, 1];
    let got = ep.handle_datagram_screened(secs(0), far, &ping, &params, false);
    assert!(matches!(got, Incoming::ForeignRequest));
    let garbage = [0x49, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let got = ep.handle_datagram_screened(secs(0), far, &garbage, &params, false);
    assert!(matches!(got, Incoming::Malformed));
    assert_eq!(drain_to(&mut ep), vec![], "nothing answered");
    assert_eq!(ep.received.len(), 0, "nothing remembered");
    // The server's request with the same message ID and token is new, not a duplicate.
    let request = peer(MessageType::Confirmable, get, 300, &[9]);
    let got = ep.handle_datagram_screened(secs(0), PEER, &request, &params, true);
    assert!(matches!(got, Incoming::Request(_)));
}
