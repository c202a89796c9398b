use proptest::prelude::*;

use super::*;

fn bv(num: u32, more: bool, szx: u8) -> BlockValue {
    BlockValue { num, more, szx }
}

#[test]
fn option_value_round_trips() {
    // RFC 7959 2.2: NUM 1, M 1, SZX 6 is one byte 0x1E.
    assert_eq!(bv(1, true, 6).encode(), [0x1E]);
    assert_eq!(bv(0, false, 0).encode(), Vec::<u8>::new());
    for szx in 0..=6 {
        for num in [0, 1, 15, 16, 4095, 4096, BlockValue::MAX_NUM] {
            for more in [false, true] {
                let value = bv(num, more, szx);
                let bytes = value.encode();
                assert!(bytes.len() <= 3);
                assert_eq!(BlockValue::parse(&bytes), Ok(value));
            }
        }
    }
    assert_eq!(BlockValue::parse(&[0x0F]), Err(BlockError::Bert));
    assert_eq!(
        BlockValue::parse(&[1, 2, 3, 4]),
        Err(BlockError::TooLong(4))
    );
    assert_eq!(BlockValue::parse(&[]), Ok(bv(0, false, 0)));
}

#[test]
fn sizes() {
    assert_eq!(szx_for(16), Ok(0));
    assert_eq!(szx_for(1024), Ok(6));
    for bad in [0, 8, 17, 2048] {
        assert_eq!(szx_for(bad), Err(BlockError::BadSize(bad)));
    }
    let value = BlockValue::new(3, true, 256).unwrap();
    assert_eq!((value.szx, value.size(), value.offset()), (4, 256, 768));
    assert!(BlockValue::new(1 << 20, false, 16).is_err());
}

#[test]
fn packet_options_round_trip() {
    let mut packet = Packet::new();
    set_block1(&mut packet, bv(2, true, 5));
    set_block2(&mut packet, bv(7, false, 6));
    set_size1(&mut packet, 70_000);
    set_size2(&mut packet, 5);
    let parsed = Packet::from_bytes(&packet.to_bytes().unwrap()).unwrap();
    assert_eq!(block1(&parsed), Ok(Some(bv(2, true, 5))));
    assert_eq!(block2(&parsed), Ok(Some(bv(7, false, 6))));
    assert_eq!(size1(&parsed), Ok(Some(70_000)));
    assert_eq!(size2(&parsed), Ok(Some(5)));
    assert_eq!(block1(&Packet::new()), Ok(None));
}

#[test]
fn small_body_without_request_is_not_sliced() {
    let body = [7u8; 100];
    let slice = slice_block2(&body, None, 1024).unwrap();
    assert_eq!(
        slice,
        Block2Slice {
            payload: &body,
            block2: None,
            size2: None
        }
    );
}

#[test]
fn large_body_without_request_starts_at_block_zero() {
    let body = vec![1u8; 1500];
    let slice = slice_block2(&body, None, 1024).unwrap();
    assert_eq!(slice.payload.len(), 1024);
    assert_eq!(slice.block2, Some(bv(0, true, 6)));
    assert_eq!(slice.size2, Some(1500));
}

#[test]
fn larger_requested_block_is_lowered_and_renumbered() {
    let body: Vec<u8> = (0..=255).cycle().take(3000).collect();
    // Block 1 of 1024 bytes, served in 256-byte blocks: block 4 at the same offset.
    let slice = slice_block2(&body, Some(bv(1, false, 6)), 256).unwrap();
    assert_eq!(slice.block2, Some(bv(4, true, 4)));
    assert_eq!(slice.payload, &body[1024..1280]);
    assert_eq!(slice.size2, None);
}

#[test]
fn block_beyond_the_end_is_an_error() {
    let body = [0u8; 32];
    assert!(slice_block2(&body, Some(bv(2, false, 0)), 1024).is_err());
    // Block 0 of an empty body is the empty body.
    let empty = slice_block2(&[], Some(bv(0, false, 0)), 1024).unwrap();
    assert_eq!(empty.block2, Some(bv(0, false, 0)));
    assert_eq!(empty.size2, Some(0));
}

#[test]
fn apply_block2_sets_payload_and_options() {
    let body = vec![3u8; 40];
    let mut response = Packet::new();
    apply_block2(&mut response, &body, Some(bv(1, false, 0)), 1024).unwrap();
    assert_eq!(response.payload, &body[16..32]);
    assert_eq!(block2(&response), Ok(Some(bv(1, true, 0))));
    assert_eq!(size2(&response), Ok(None));
}

/// Sends `body` in blocks of `size` through a receiver, following its size negotiation.
fn send_blocks(rx: &mut Block1Receiver, body: &[u8], size: u16) -> Block1Outcome {
    let mut value = BlockValue::new(0, false, size).unwrap();
    loop {
        let end = body.len().min(value.offset() + value.size());
        value.more = end < body.len();
        let total = u32::try_from(body.len()).ok();
        match rx.receive(
            Instant::ZERO,
            value,
            &body[value.offset()..end],
            total.filter(|_| value.num == 0),
        ) {
            Block1Outcome::Continue(echo) => {
                assert_eq!(echo.num, value.num);
                assert!(echo.more);
                // Next block in the size the receiver asked for.
                let next = end / echo.size();
                value = bv(next as u32, false, echo.szx);
            }
            other => return other,
        }
    }
}

#[test]
fn block1_assembles_and_negotiates_size() {
    let body: Vec<u8> = (0..=255).cycle().take(2500).collect();
    let mut rx = Block1Receiver::new(4096, 256, Instant::ZERO).unwrap();
    let Block1Outcome::Complete { body: got, block1 } = send_blocks(&mut rx, &body, 1024) else {
        panic!("not complete")
    };
    assert_eq!(got, body);
    assert!(!block1.more);
    assert!(!rx.in_progress());
}

#[test]
fn block1_gap_is_incomplete() {
    let mut rx = Block1Receiver::new(4096, 1024, Instant::ZERO).unwrap();
    assert!(matches!(
        rx.receive(Instant::ZERO, bv(0, true, 0), &[0; 16], None),
        Block1Outcome::Continue(_)
    ));
    assert_eq!(
        rx.receive(Instant::ZERO, bv(2, true, 0), &[0; 16], None),
        Block1Outcome::Error {
            code: ResponseType::RequestEntityIncomplete,
            block1: None
        }
    );
    assert!(!rx.in_progress());
    // A block without its start.
    assert!(matches!(
        rx.receive(Instant::ZERO, bv(1, false, 0), &[0; 16], None),
        Block1Outcome::Error {
            code: ResponseType::RequestEntityIncomplete,
            ..
        }
    ));
}

#[test]
fn block1_too_large() {
    let mut rx = Block1Receiver::new(40, 1024, Instant::ZERO).unwrap();
    let announced = rx.receive(Instant::ZERO, bv(0, true, 0), &[0; 16], Some(41));
    assert_eq!(
        announced,
        Block1Outcome::Error {
            code: ResponseType::RequestEntityTooLarge,
            block1: Some(bv(0, true, 0))
        }
    );
    let body = [9u8; 48];
    assert_eq!(
        send_blocks(&mut rx, &body[..], 16),
        Block1Outcome::Error {
            code: ResponseType::RequestEntityTooLarge,
            block1: Some(bv(0, true, 0))
        }
    );
    let mut rx = Block1Receiver::new(40, 1024, Instant::ZERO).unwrap();
    rx.receive(Instant::ZERO, bv(0, true, 0), &[0; 16], None);
    rx.receive(Instant::ZERO, bv(1, true, 0), &[0; 16], None);
    assert_eq!(
        rx.receive(Instant::ZERO, bv(2, false, 0), &[0; 16], None),
        Block1Outcome::Error {
            code: ResponseType::RequestEntityTooLarge,
            block1: Some(bv(2, false, 0))
        }
    );
}

#[test]
fn block1_short_middle_block_is_bad_request() {
    let mut rx = Block1Receiver::new(4096, 1024, Instant::ZERO).unwrap();
    assert!(matches!(
        rx.receive(Instant::ZERO, bv(0, true, 1), &[0; 20], None),
        Block1Outcome::Error {
            code: ResponseType::BadRequest,
            ..
        }
    ));
}

proptest! {
    #[test]
    fn block2_slices_reassemble(len in 0usize..5000, szx in 0u8..=6, max_szx in 0u8..=6) {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let max = 16u16 << max_szx;
        let mut joined = Vec::new();
        let mut requested = bv(0, false, szx);
        loop {
            let slice = slice_block2(&body, Some(requested), max).unwrap();
            let got = slice.block2.unwrap();
            prop_assert_eq!(got.szx, szx.min(max_szx));
            prop_assert_eq!(slice.size2.is_some(), got.num == 0);
            if got.more {
                prop_assert_eq!(slice.payload.len(), got.size());
            }
            joined.extend_from_slice(slice.payload);
            if !got.more {
                break;
            }
            requested = bv(got.num + 1, false, got.szx);
        }
        prop_assert_eq!(joined, body);
    }

    #[test]
    fn block1_reassembles(len in 1usize..5000, szx in 0u8..=6, max_szx in 0u8..=6) {
        let body: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut rx = Block1Receiver::new(5000, 16 << max_szx, Instant::ZERO).unwrap();
        let outcome = send_blocks(&mut rx, &body, 16 << szx);
        let Block1Outcome::Complete { body: got, .. } = outcome else {
            return Err(TestCaseError::fail(format!("{outcome:?}")));
        };
        prop_assert_eq!(got, body);
    }

    #[test]
    fn block_option_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5)) {
        if let Ok(value) = BlockValue::parse(&bytes) {
            prop_assert_eq!(BlockValue::parse(&value.encode()), Ok(value));
        }
    }
}
