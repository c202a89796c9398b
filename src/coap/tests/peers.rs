//! Peer addresses: what the endpoint sends goes to the source of what it answers.

use coap_lite::{MessageClass, MessageType, RequestType, ResponseType};

use super::*;

#[test]
fn message_layer_replies_go_to_the_sender() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    // A ping, a CON with TKL 9, a CON response nobody awaits: each RST to its own sender.
    ep.handle_datagram(secs(0), addr(40001), &[0x40, 0, 0, 1], &params);
    let garbage = [0x49, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let got = ep.handle_datagram(secs(0), addr(40002), &garbage, &params);
    assert!(matches!(got, Incoming::Malformed));
    let code = MessageClass::Response(ResponseType::Content);
    let stray = peer(MessageType::Confirmable, code, 3, &[7]);
    ep.handle_datagram(secs(0), addr(40003), &stray, &params);
    assert_eq!(
        drain_to(&mut ep),
        vec![
            (addr(40001), vec![0x70, 0, 0, 1]),
            (addr(40002), vec![0x70, 0, 0, 2]),
            (addr(40003), vec![0x70, 0, 0, 3]),
        ]
    );
}

#[test]
fn answers_go_to_the_request_source_and_duplicates_to_theirs() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    let code = MessageClass::Request(RequestType::Get);
    let request = peer(MessageType::Confirmable, code, 400, &[5]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(0), addr(40001), &request, &params)
    else {
        panic!("not a request")
    };
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(0), addr(40001), &packet, response, &params);
    let sent = drain_to(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(40001));
    // The cached reply goes wherever the retransmission came from.
    ep.handle_datagram(secs(1), addr(40001), &request, &params);
    assert_eq!(drain_to(&mut ep), sent);

    // A NON request is answered with a NON at its source.
    let non = peer(MessageType::NonConfirmable, code, 401, &[6]);
    let Incoming::Request(packet) = ep.handle_datagram(secs(2), addr(40002), &non, &params) else {
        panic!("not a request")
    };
    let mut response = Packet::new();
    response.header.code = MessageClass::Response(ResponseType::Content);
    ep.respond(secs(2), addr(40002), &packet, response, &params);
    let sent = drain_to(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(40002));
}

#[test]
fn retransmissions_go_where_the_con_went() {
    let params = exact_params();
    let mut ep = Endpoint::new(0);
    ep.send_confirmable(secs(0), addr(40002), notification(), &params, &mut rng());
    let first = drain_to(&mut ep);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, addr(40002));
    for _ in 0..params.max_retransmit {
        let at = ep.poll_timeout().unwrap();
        assert_eq!(ep.handle_timeout(at, &params), None);
        assert_eq!(drain_to(&mut ep), first);
    }
}

#[test]
fn separate_response_is_acknowledged_at_its_source() {
    let params = exact_params();
    let (mut ep, _) = sent_request(&params);
    let ack = peer(MessageType::Acknowledgement, MessageClass::Empty, 1000, &[]);
    ep.handle_datagram(secs(1), PEER, &ack, &params);
    let code = MessageClass::Response(ResponseType::Content);
    // From another port than the request went to: not its response (RFC 7252 5.3.2), and
    // not answered.
    let response = peer(MessageType::Confirmable, code, 77, &TOKEN);
    let got = ep.handle_datagram(secs(2), addr(40004), &response, &params);
    assert!(matches!(got, Incoming::ForeignReply));
    assert_eq!(drain_to(&mut ep), vec![]);
    let got = ep.handle_datagram(secs(2), PEER, &response, &params);
    assert!(matches!(got, Incoming::Response { .. }));
    assert_eq!(drain_to(&mut ep), vec![(PEER, vec![0x60, 0, 0, 77])]);
}

#[test]
fn heap_bytes_count_queued_datagrams_with_their_addresses() {
    let mut ep = Endpoint::new(0);
    assert_eq!(ep.heap_bytes(), 0);
    ep.send_non_confirmable(addr(40001), notification());
    let queued = ep.transmit.capacity() * size_of::<(SocketAddr, Vec<u8>)>()
        + ep.transmit.iter().map(|(_, d)| d.capacity()).sum::<usize>();
    assert!(queued > 0);
    assert_eq!(ep.heap_bytes(), queued);
}
