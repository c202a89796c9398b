//! One binary heap of deadlines for every registration, invalidated lazily: an entry carries the
//! registration id (never reused) and what it is for, and whoever pops it checks it still applies.
//! Pushing and popping are O(log n); nothing scans the registrations.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Op;
use crate::clock::Instant;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// The registration's lifetime may have run out (an Update since moves it later).
    Expiry,
    /// A periodic request of this kind is due.
    Load(Op),
    /// The exchange with this message ID retransmits or gives up.
    Exchange(u16),
    /// The campaign with this index (in the timer's id) starts.
    CampaignStart,
    /// The campaign device with this index (in the timer's id) may have stalled.
    CampaignStall,
}

/// 16 bytes: a few per registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub at: Instant,
    pub id: u32,
    pub kind: TimerKind,
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, id: u32, kind: TimerKind) {
        self.heap.push(Reverse(Timer { at, id, kind }));
    }

    /// The earliest deadline, stale or not (a stale one costs one empty wake-up).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// The earliest timer due at `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let Reverse(next) = self.heap.peek()?;
        if next.at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(t)| t)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap.capacity() * size_of::<Timer>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_micros(secs * 1_000_000)
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut timers = Timers::default();
        timers.push(at(30), 1, TimerKind::Expiry);
        timers.push(at(10), 2, TimerKind::Load(Op::Read));
        timers.push(at(20), 3, TimerKind::Exchange(7));
        assert_eq!(timers.next(), Some(at(10)));
        assert_eq!(timers.pop_due(at(5)), None);
        let due: Vec<u32> = std::iter::from_fn(|| timers.pop_due(at(25)))
            .map(|t| t.id)
            .collect();
        assert_eq!(due, [2, 3]);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next(), Some(at(30)));
        assert_eq!(size_of::<Timer>(), 16);
    }
}
