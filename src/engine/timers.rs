//! A shard's timer queue: one binary heap for every client deadline, with lazy invalidation so
//! that moving a deadline costs one push and nothing is searched.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientTimerKind {
    /// The client's own next deadline (`poll_timeout`).
    Client,
    /// A churning client goes offline now.
    Churn,
    /// A churned client comes back now.
    Restart,
    /// The client's NAT mapping changes now (`rebind_every`).
    Rebind,
}

#[derive(Debug, Default)]
pub struct ClientTimers {
    heap: BinaryHeap<Reverse<(u64, u32, ClientTimerKind)>>,
    /// The one valid client deadline per client (µs), `u64::MAX` when none.
    armed: Vec<u64>,
}

impl ClientTimers {
    pub fn new(clients: usize) -> Self {
        ClientTimers {
            heap: BinaryHeap::new(),
            armed: vec![u64::MAX; clients],
        }
    }

    /// Sets client `local`'s deadline; an earlier entry for it becomes stale.
    pub fn arm(&mut self, local: u32, at: Option<u64>) {
        let at = at.unwrap_or(u64::MAX);
        let slot = &mut self.armed[local as usize];
        if *slot != at {
            *slot = at;
            if at != u64::MAX {
                self.heap
                    .push(Reverse((at, local, ClientTimerKind::Client)));
            }
        }
    }

    /// A one-off timer (churn, restart, rebind): never stale.
    pub fn schedule(&mut self, local: u32, at: u64, kind: ClientTimerKind) {
        self.heap.push(Reverse((at, local, kind)));
    }

    /// The next timer due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u32, ClientTimerKind)> {
        while let Some(&Reverse((at, local, kind))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if kind != ClientTimerKind::Client {
                return Some((local, kind));
            }
            let slot = &mut self.armed[local as usize];
            if *slot == at {
                *slot = u64::MAX;
                return Some((local, kind));
            }
        }
        None
    }

    /// The earliest live deadline, dropping stale entries on top.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((at, local, kind))) = self.heap.peek() {
            if kind != ClientTimerKind::Client || self.armed[local as usize] == at {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_deadlines_fire_once_at_their_latest_time() {
        let mut t = ClientTimers::new(3);
        t.arm(0, Some(100));
        t.arm(0, Some(50));
        t.arm(0, Some(70)); // The 50 and 100 entries are stale now.
        t.arm(1, Some(60));
        t.arm(2, Some(10));
        t.arm(2, None);
        t.schedule(2, 65, ClientTimerKind::Restart);
        assert_eq!(t.next_deadline(), Some(60));
        assert_eq!(t.pop_due(59), None);
        assert_eq!(t.pop_due(80), Some((1, ClientTimerKind::Client)));
        assert_eq!(t.pop_due(80), Some((2, ClientTimerKind::Restart)));
        assert_eq!(t.pop_due(80), Some((0, ClientTimerKind::Client)));
        assert_eq!(t.pop_due(1000), None);
        assert_eq!(t.next_deadline(), None);
        // Re-arming the same deadline after it fired is a new timer.
        t.arm(0, Some(70));
        assert_eq!(t.pop_due(70), Some((0, ClientTimerKind::Client)));
    }
}
