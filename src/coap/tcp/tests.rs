use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use proptest::prelude::*;

use super::frame::{self, Decoder, FrameError};
use super::signal::{self, Signal, SignalError};
use super::{Closed, Connection, TcpEvent};

/// libcoap 4.3.1's CSM as `coap-client-openssl -v 7` logged it (7 bytes): Max-Message-Size
/// 8388864 (0x800100), Block-Wise-Transfer.
const LIBCOAP_CSM: [u8; 7] = [0x50, 0xE1, 0x23, 0x80, 0x01, 0x00, 0x20];

/// libcoap's resource directory answering a Register over TCP (12 bytes, logged the same way):
/// 2.01, token 0x01, Location-Path "rd", "0-5ca".
const LIBCOAP_CREATED: [u8; 12] = [
    0x91, 0x41, 0x01, 0x82, b'r', b'd', 0x05, b'0', b'-', b'5', b'c', b'a',
];

#[test]
fn libcoap_csm_decodes_and_encodes_to_the_same_bytes() {
    let message = frame::parse(&LIBCOAP_CSM).unwrap();
    assert_eq!((message.code, message.token), (signal::CSM, &[][..]));
    let csm = signal::parse(&message).unwrap();
    assert_eq!(
        csm,
        Signal::Csm {
            max_message_size: Some(8_388_864),
            block_wise: true
        }
    );
    assert_eq!(signal::encode(&csm, &[]), LIBCOAP_CSM);
}

#[test]
fn libcoap_register_answer_is_a_coap_lite_packet() {
    let message = frame::parse(&LIBCOAP_CREATED).unwrap();
    let packet = frame::to_packet(&message).unwrap();
    assert_eq!(
        packet.header.code,
        MessageClass::Response(ResponseType::Created)
    );
    assert_eq!(packet.get_token(), [0x01]);
    let location: Vec<&[u8]> = packet
        .get_option(CoapOption::LocationPath)
        .unwrap()
        .iter()
        .map(Vec::as_slice)
        .collect();
    assert_eq!(location, [&b"rd"[..], &b"0-5ca"[..]]);
    assert_eq!(frame::encode_packet(&packet), LIBCOAP_CREATED);
}

#[test]
fn extended_lengths_switch_at_the_rfc_8323_boundaries() {
    // §3.2: Len 0-12 as is; 13: one byte, length - 13; 14: two bytes, length - 269;
    // 15: four bytes, length - 65805.
    let cases: [(usize, &[u8]); 7] = [
        (12, &[0xC1]),
        (13, &[0xD1, 0x00]),
        (268, &[0xD1, 0xFF]),
        (269, &[0xE1, 0x00, 0x00]),
        (65_804, &[0xE1, 0xFF, 0xFF]),
        (65_805, &[0xF1, 0x00, 0x00, 0x00, 0x00]),
        (70_000, &[0xF1, 0x00, 0x00, 0x10, 0x63]),
    ];
    for (len, prefix) in cases {
        let body = vec![0xAB; len];
        let bytes = frame::encode(0x45, &[7], &body);
        assert_eq!(&bytes[..prefix.len()], prefix, "length {len}");
        assert_eq!(bytes[prefix.len()], 0x45, "code after the length, {len}");
        assert_eq!(bytes[prefix.len() + 1], 7, "then the token, {len}");
        let parsed = frame::parse(&bytes).unwrap();
        assert_eq!(
            (parsed.code, parsed.token, parsed.body.len()),
            (0x45, &[7][..], len)
        );
    }
}

#[test]
fn bad_framing_is_an_error_not_a_panic() {
    for tkl in 9..=15u8 {
        assert_eq!(
            frame::parse(&[tkl, 0x45]),
            Err(FrameError::TokenLength(tkl))
        );
    }
    assert_eq!(
        frame::parse(&[0x31, 0x45, 1, 0xFF]),
        Err(FrameError::Truncated { missing: 2 })
    );
    assert_eq!(frame::parse(&[0x00, 0x45, 9]), Err(FrameError::Trailing(1)));
    assert!(matches!(
        frame::parse(&[]),
        Err(FrameError::Truncated { .. })
    ));
    // A payload marker with nothing after it (RFC 7252 §3).
    let marker_only = frame::encode(signal::ABORT, &[], &[0xFF]);
    assert!(matches!(
        signal::parse(&frame::parse(&marker_only).unwrap()),
        Err(SignalError::Frame(FrameError::Options(_)))
    ));
}

#[test]
fn the_decoder_splits_several_messages_and_joins_partial_ones() {
    let request = request_frame(&[1, 2], "rd");
    let mut stream = LIBCOAP_CSM.to_vec();
    stream.extend_from_slice(&request);
    stream.extend_from_slice(&LIBCOAP_CREATED);
    let mut decoder = Decoder::new(2048);
    decoder.push(&stream[..3]);
    assert_eq!(decoder.next_frame(), Ok(None));
    decoder.push(&stream[3..]);
    let mut frames = Vec::new();
    while let Some(f) = decoder.next_frame().unwrap() {
        frames.push(f);
    }
    assert_eq!(
        frames,
        [LIBCOAP_CSM.to_vec(), request, LIBCOAP_CREATED.to_vec()]
    );
    assert_eq!(decoder.heap_bytes(), 0, "an empty decoder holds no buffer");
}

#[test]
fn a_message_over_the_maximum_is_refused_from_its_header() {
    let mut decoder = Decoder::new(100);
    // Only the header of a 996-byte message (4 + 0x02D3 + 269): refused before the rest is
    // buffered.
    decoder.push(&[0xE0, 0x02, 0xD3, 0x45]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::TooLarge {
            size: 996,
            max: 100
        })
    );
}

#[test]
fn options_round_trip_with_extended_deltas_and_lengths() {
    let long = vec![b'x'; 300];
    let options: Vec<(u16, &[u8])> =
        vec![(2, b"ab"), (2, b""), (15, b"q"), (300, &long), (2000, b"z")];
    let body = frame::encode_options(&options, b"payload");
    let (parsed, payload) = frame::options(&body).unwrap();
    assert_eq!(parsed, options);
    assert_eq!(payload, b"payload");
}

#[test]
fn signals_round_trip() {
    let signals = [
        Signal::Csm {
            max_message_size: Some(2048),
            block_wise: false,
        },
        Signal::Csm {
            max_message_size: None,
            block_wise: true,
        },
        Signal::Ping { custody: true },
        Signal::Pong { custody: false },
        Signal::Release {
            alternative_addresses: vec!["coap+tcp://h:5683".into()],
            hold_off: Some(30),
        },
        Signal::Abort {
            bad_csm_option: Some(3),
            diagnostic: "no".into(),
        },
    ];
    for s in signals {
        let bytes = signal::encode(&s, &[9]);
        let message = frame::parse(&bytes).unwrap();
        assert_eq!(message.token, [9]);
        assert_eq!(signal::parse(&message).unwrap(), s);
    }
}

#[test]
fn unknown_options_elective_ignored_critical_rejected() {
    let elective = frame::encode(signal::PING, &[], &frame::encode_options(&[(6, b"")], &[]));
    assert_eq!(
        signal::parse(&frame::parse(&elective).unwrap()),
        Ok(Signal::Ping { custody: false })
    );
    let critical = frame::encode(signal::CSM, &[], &frame::encode_options(&[(7, b"")], &[]));
    assert_eq!(
        signal::parse(&frame::parse(&critical).unwrap()),
        Err(SignalError::UnknownCritical {
            code: signal::CSM,
            option: 7
        })
    );
}

#[test]
fn a_connection_waits_for_the_csm_then_passes_messages() {
    let mut c = Connection::default();
    assert!(!c.is_ready());
    assert_eq!(c.peer_max_message_size(), 1152);
    let request = request_frame(&[4], "3");
    let mut bytes = LIBCOAP_CSM.to_vec();
    bytes.extend_from_slice(&request);
    c.receive(&bytes);
    assert_eq!(
        c.poll_event(),
        Some(TcpEvent::Ready {
            max_message_size: 8_388_864
        })
    );
    assert_eq!(c.poll_event(), Some(TcpEvent::Message(request)));
    assert_eq!(c.poll_event(), None);
    assert!(c.is_ready());
    // Our own CSM announces what we accept, without BERT.
    let ours = c.csm();
    assert_eq!(
        signal::parse(&frame::parse(&ours).unwrap()).unwrap(),
        Signal::Csm {
            max_message_size: Some(super::OUR_MAX_MESSAGE_SIZE),
            block_wise: false
        }
    );
}

#[test]
fn a_ping_is_answered_with_a_pong_echoing_its_token() {
    let mut c = ready();
    c.receive(&signal::encode(
        &Signal::Ping { custody: true },
        &[0xAA, 0xBB],
    ));
    let Some(TcpEvent::Reply(pong)) = c.poll_event() else {
        panic!("a pong");
    };
    let message = frame::parse(&pong).unwrap();
    assert_eq!(message.token, [0xAA, 0xBB]);
    assert_eq!(
        signal::parse(&message).unwrap(),
        Signal::Pong { custody: true }
    );
}

#[test]
fn release_and_abort_close_the_connection() {
    for (signal, why) in [
        (
            Signal::Release {
                alternative_addresses: vec![],
                hold_off: None,
            },
            Closed::Released,
        ),
        (
            Signal::Abort {
                bad_csm_option: None,
                diagnostic: "bye".into(),
            },
            Closed::Aborted,
        ),
    ] {
        let mut c = ready();
        let mut bytes = signal::encode(&signal, &[]);
        // Whatever follows is not looked at.
        bytes.extend_from_slice(&request_frame(&[1], "3"));
        c.receive(&bytes);
        assert_eq!(c.poll_event(), Some(TcpEvent::Closed(why)));
        assert_eq!(c.poll_event(), None);
        assert!(c.is_closed());
        c.receive(&LIBCOAP_CSM);
        assert_eq!(c.poll_event(), None, "nothing after the close");
    }
}

#[test]
fn protocol_errors_send_abort_then_close() {
    let cases: [(&str, Vec<u8>); 3] = [
        ("a request before the CSM", request_frame(&[1], "3")),
        (
            "an unknown critical CSM option",
            frame::encode(signal::CSM, &[], &frame::encode_options(&[(9, b"")], &[])),
        ),
        ("a token length of 9", vec![0x09, 0x45]),
    ];
    for (case, bytes) in cases {
        let mut c = Connection::default();
        c.receive(&bytes);
        let Some(TcpEvent::Reply(abort)) = c.poll_event() else {
            panic!("{case}: an Abort");
        };
        let abort = signal::parse(&frame::parse(&abort).unwrap()).unwrap();
        assert!(matches!(abort, Signal::Abort { .. }), "{case}: {abort:?}");
        assert_eq!(
            c.poll_event(),
            Some(TcpEvent::Closed(Closed::ProtocolError)),
            "{case}"
        );
    }
    let mut c = Connection::default();
    c.receive(&frame::encode(
        signal::CSM,
        &[],
        &frame::encode_options(&[(9, b"")], &[]),
    ));
    let Some(TcpEvent::Reply(abort)) = c.poll_event() else {
        panic!("an Abort");
    };
    assert!(matches!(
        signal::parse(&frame::parse(&abort).unwrap()).unwrap(),
        Signal::Abort {
            bad_csm_option: Some(9),
            ..
        }
    ));
}

#[test]
fn a_message_over_our_maximum_aborts() {
    let mut c = ready();
    let big = frame::encode(0x45, &[1], &vec![0xFF; 5000]);
    c.receive(&big[..10]);
    assert!(matches!(c.poll_event(), Some(TcpEvent::Reply(_))));
    assert_eq!(
        c.poll_event(),
        Some(TcpEvent::Closed(Closed::ProtocolError))
    );
}

fn ready() -> Connection {
    let mut c = Connection::default();
    c.receive(&LIBCOAP_CSM);
    assert!(matches!(c.poll_event(), Some(TcpEvent::Ready { .. })));
    c
}

fn request_frame(token: &[u8], path: &str) -> Vec<u8> {
    let mut packet = Packet::new();
    packet.header.code = MessageClass::Request(RequestType::Get);
    packet.set_token(token.to_vec());
    packet.add_option(CoapOption::UriPath, path.as_bytes().to_vec());
    frame::encode_packet(&packet)
}

/// Several messages, each a random request or signal, framed back to back.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
    let one = (
        prop::sample::select(vec![0x01u8, 0x02, 0x45, 0x84, signal::PING, signal::PONG]),
        prop::collection::vec(any::<u8>(), 0..=8),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(code, token, payload)| {
            let body = if payload.is_empty() {
                Vec::new()
            } else {
                frame::encode_options(&[], &payload)
            };
            frame::encode(code, &token, &body)
        });
    prop::collection::vec(one, 1..6).prop_map(|frames| (frames.concat(), frames))
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(
        code in any::<u8>(),
        token in prop::collection::vec(any::<u8>(), 0..=8),
        body in prop::collection::vec(any::<u8>(), 0..70_000),
    ) {
        let bytes = frame::encode(code, &token, &body);
        let m = frame::parse(&bytes).unwrap();
        prop_assert_eq!((m.code, m.token, m.body), (code, &token[..], &body[..]));
    }

    #[test]
    fn a_stream_split_anywhere_decodes_to_the_same_messages(
        (bytes, frames) in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut decoder = Decoder::new(1 << 20);
        let mut got = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            decoder.push(&bytes[at..cut]);
            at = cut;
            while let Some(f) = decoder.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn every_single_byte_boundary_gives_the_same_messages((bytes, frames) in stream()) {
        for split in 0..=bytes.len() {
            let mut decoder = Decoder::new(1 << 20);
            let mut got = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.push(part);
                while let Some(f) = decoder.next_frame().unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(&got, &frames);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let mut c = Connection::new(512);
        let mut decoder = Decoder::new(512);
        for chunk in &chunks {
            let _ = frame::parse(chunk);
            let _ = frame::options(chunk);
            decoder.push(chunk);
            while let Ok(Some(f)) = decoder.next_frame() {
                let m = frame::parse(&f).unwrap();
                let _ = frame::to_packet(&m);
                let _ = signal::parse(&m);
            }
            c.receive(chunk);
            while c.poll_event().is_some() {}
        }
        // After the CSM the same bytes are looked at as messages too.
        let mut c = ready();
        for chunk in &chunks {
            c.receive(chunk);
            while let Some(event) = c.poll_event() {
                if let TcpEvent::Message(m) = event {
                    let _ = frame::to_packet(&frame::parse(&m).unwrap());
                }
            }
        }
    }
}
