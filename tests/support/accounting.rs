//! The request accounting every run keeps: each request sent ends once, as ok, error, timeout,
//! aborted or unacknowledged (a NON notification, done once sent), or is still in flight.

#![allow(dead_code)]

use lwm2m_swarm::client::REQUEST_KINDS;
use lwm2m_swarm::metrics::{RequestStats, Snapshot};

fn ended(r: &RequestStats) -> u64 {
    r.ok + r.error + r.timeout + r.aborted + r.unacknowledged
}

/// While a run goes on: for every request kind, no more requests ended than were sent.
pub fn assert_consistent(s: &Snapshot) {
    for (kind, r) in REQUEST_KINDS.iter().zip(&s.requests) {
        assert!(
            ended(r) <= r.sent,
            "{kind:?}: more requests ended than were sent:\n{s}"
        );
    }
}

/// After a run: for every request kind, every request sent ended once; none is in flight.
pub fn assert_accounted(s: &Snapshot) {
    for (kind, r) in REQUEST_KINDS.iter().zip(&s.requests) {
        assert_eq!(
            r.sent,
            ended(r),
            "{kind:?}: sent {} = ok {} + error {} + timeout {} + aborted {} + unacknowledged {}, \
             none in flight:\n{s}",
            r.sent,
            r.ok,
            r.error,
            r.timeout,
            r.aborted,
            r.unacknowledged
        );
    }
}
