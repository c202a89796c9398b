use std::time::Duration;

use super::*;
use crate::client::{ClientState, Event, RequestKind, RequestOutcome, RequestRecord, state_index};
use crate::clock::Instant;

fn record(
    kind: RequestKind,
    outcome: RequestOutcome,
    intended_ms: u64,
    sent_ms: u64,
    done_ms: u64,
) -> Event {
    let at = |ms| Instant::ZERO + Duration::from_millis(ms);
    Event::Request(RequestRecord {
        kind,
        intended: at(intended_ms),
        sent: at(sent_ms),
        completed: at(done_ms),
        outcome,
        retransmissions: 1,
    })
}

#[test]
fn a_non_notification_ends_unacknowledged_not_ok_and_has_no_latency() {
    let mut rec = Recorder::new();
    for _ in 0..3 {
        rec.event(&Event::Sent(RequestKind::Notify));
    }
    rec.event(&record(
        RequestKind::Notify,
        RequestOutcome::Unconfirmed,
        0,
        0,
        0,
    ));
    rec.event(&record(
        RequestKind::Notify,
        RequestOutcome::Unconfirmed,
        0,
        0,
        0,
    ));
    rec.event(&record(
        RequestKind::Notify,
        RequestOutcome::Response(0),
        0,
        0,
        4,
    ));
    let s = rec.snapshot(Duration::from_secs(1));
    let r = s.request(RequestKind::Notify);
    assert_eq!(
        (r.sent, r.ok, r.unacknowledged, r.in_flight()),
        (3, 1, 2, 0)
    );
    // Only the acknowledged one has a latency.
    assert_eq!(r.latency.len(), 1);
}

#[test]
fn every_sent_request_is_accounted_for_and_latency_counts_from_the_due_time() {
    let mut rec = Recorder::new();
    for _ in 0..5 {
        rec.event(&Event::Sent(RequestKind::Register));
    }
    rec.event(&record(
        RequestKind::Register,
        RequestOutcome::Response(0x41),
        0,
        100,
        110,
    ));
    rec.event(&record(
        RequestKind::Register,
        RequestOutcome::Response(0xA0),
        0,
        0,
        20,
    ));
    rec.event(&record(
        RequestKind::Register,
        RequestOutcome::Timeout,
        0,
        0,
        93_000,
    ));
    rec.event(&record(
        RequestKind::Register,
        RequestOutcome::Reset,
        0,
        0,
        5,
    ));
    rec.event(&record(
        RequestKind::Register,
        RequestOutcome::Unsent,
        0,
        0,
        0,
    ));
    let s = rec.snapshot(Duration::from_secs(1));
    let r = s.request(RequestKind::Register);
    assert_eq!(
        (r.sent, r.ok, r.error, r.timeout, r.unsent),
        (5, 1, 2, 1, 1)
    );
    assert_eq!(r.in_flight(), 1);
    assert_eq!(
        r.sent,
        r.ok + r.error + r.timeout + r.aborted + r.unacknowledged + r.in_flight()
    );
    assert_eq!(r.retransmissions, 4);
    // The 2.01 was due at 0 and answered at 110 ms, though sent at 100 ms; the 5.00 and
    // RST (20 ms and 5 ms) were sent when due, so p99 differs: 110 ms from the due time, 20
    // ms from the send.
    assert!(r.omission_gap().is_some());
    assert_eq!(r.latency.max(), r.latency.highest_equivalent(110_000));
    assert_eq!(
        r.service.value_at_quantile(1.0),
        r.service.highest_equivalent(20_000)
    );
    assert!(r.codes.contains(&(Some(0xA0), 1)) && r.codes.contains(&(None, 1)));
}

#[test]
fn merge_adds_shards_and_states_track_changes() {
    let mut a = Recorder::new();
    let mut b = Recorder::new();
    a.state_change(None, Some(ClientState::Registering));
    a.state_change(
        Some(ClientState::Registering),
        Some(ClientState::Registered),
    );
    b.state_change(None, Some(ClientState::Registering));
    a.event(&Event::Sent(RequestKind::Update));
    b.event(&Event::Sent(RequestKind::Update));
    b.event(&record(
        RequestKind::Update,
        RequestOutcome::Response(0x44),
        0,
        0,
        3,
    ));
    let mut total = a.snapshot(Duration::from_secs(2));
    total.merge(&b.snapshot(Duration::from_secs(1)));
    assert_eq!(total.elapsed, Duration::from_secs(2));
    assert_eq!(total.state(ClientState::Registered), 1);
    assert_eq!(total.state(ClientState::Registering), 1);
    assert_eq!(total.peak_states[state_index(ClientState::Registering)], 2);
    let u = total.request(RequestKind::Update);
    assert_eq!((u.sent, u.ok, u.in_flight()), (2, 1, 1));
    assert_eq!(u.latency.len(), 1);
    assert_eq!(u.omission_gap(), None, "sent when due: nothing to correct");
    assert!(total.server_answered());
    assert!(!Snapshot::default().server_answered());
}
