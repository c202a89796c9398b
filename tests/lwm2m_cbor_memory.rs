//! Decoding LWM2M CBOR never allocates beyond a small multiple of the payload: length fields
//! are not trusted up front. Measured by this binary's allocator (its only test, so nothing
//! else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use lwm2m_swarm::content::decode_lwm2m_cbor;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

struct Peak;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// The crate denies unsafe code; a measuring allocator needs it, in this test binary only.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

/// The most the heap grew while decoding `payload`.
fn heap_growth(payload: &[u8]) -> usize {
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    drop(decode_lwm2m_cbor(payload));
    PEAK.load(Ordering::Relaxed) - before
}

/// A few kilobytes of bookkeeping plus a bounded cost per payload byte (a CBOR item of one
/// byte becomes a ~48-byte tree node, doubled while its vector grows, then a record).
fn budget(payload: &[u8]) -> usize {
    16 * 1024 + 400 * payload.len()
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn decoding_allocates_in_proportion_to_the_payload() {
    // The measure sees a real decode: {[3, 0]: {0: "Acme", 9: 87}}.
    let device = hex("A1 82 03 00 A2 00 64 41636D65 09 18 57");
    assert_eq!(decode_lwm2m_cbor(&device).map(|r| r.len()), Ok(2));
    let growth = heap_growth(&device);
    assert!(growth > 0 && growth <= budget(&device), "{growth}");

    // Items that claim 2^63 bytes or elements, at the root and under a valid path.
    let mut largest = 0;
    for claim in [
        "5B 7FFFFFFFFFFFFFFF 00",
        "7B 7FFFFFFFFFFFFFFF 61",
        "9B 7FFFFFFFFFFFFFFF 00",
        "BB 7FFFFFFFFFFFFFFF 00 00",
        "A1 83 03 00 05 5B 7FFFFFFFFFFFFFFF 00",
        "A1 83 03 00 00 7B 00000000FFFFFFFF 61",
        "A1 9B 7FFFFFFFFFFFFFFF 03",
        "BF 83 03 00 05 5F 5B 7FFFFFFFFFFFFFFF",
    ] {
        let payload = hex(claim);
        assert!(decode_lwm2m_cbor(&payload).is_err(), "{claim}");
        let growth = heap_growth(&payload);
        assert!(growth <= budget(&payload), "{claim}: {growth} bytes");
        largest = largest.max(growth);
    }
    eprintln!("largest heap growth for a lying length field: {largest} bytes");

    let payloads = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        // Behind a map header, so that decoding gets past the first byte.
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|tail| [&[0xBF][..], &tail].concat()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    runner
        .run(&payloads, |payload| {
            let growth = heap_growth(&payload);
            prop_assert!(
                growth <= budget(&payload),
                "{} bytes of payload grew the heap by {growth}",
                payload.len()
            );
            Ok(())
        })
        .unwrap();
}
