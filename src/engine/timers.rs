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

/// The heap is compacted (stale entries dropped) when it reaches twice its size after the last
/// compaction, and at least this many entries.
const COMPACT_AT_LEAST: usize = 4096;

#[derive(Debug, Default)]
pub struct ClientTimers {
    heap: BinaryHeap<Reverse<(u64, u32, ClientTimerKind)>>,
    /// The one valid client deadline per client (µs), `u64::MAX` when none.
    armed: Vec<u64>,
    /// Heap length that triggers a compaction. Without it, a deadline moved before it fired
    /// stays until its time: a retransmission timer per Block2 GET answered, kept 2 to 3 s, is
    /// a stale entry per exchange (hundreds of thousands in a firmware campaign's download).
    compact_at: usize,
}

impl ClientTimers {
    pub fn new(clients: usize) -> Self {
        ClientTimers {
            heap: BinaryHeap::new(),
            armed: vec![u64::MAX; clients],
            compact_at: COMPACT_AT_LEAST,
        }
    }

    /// Drops stale entries once the heap doubled since the last time (amortized O(1) a push).
    fn compact_if_grown(&mut self) {
        if self.heap.len() < self.compact_at {
            return;
        }
        let armed = &self.armed;
        self.heap.retain(|&Reverse((at, local, kind))| {
            kind != ClientTimerKind::Client || armed[local as usize] == at
        });
        self.heap.shrink_to(self.heap.len() * 2);
        self.compact_at = (self.heap.len() * 2).max(COMPACT_AT_LEAST);
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
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
                self.compact_if_grown();
            }
        }
    }

    /// A one-off timer (churn, restart, rebind): never stale.
    pub fn schedule(&mut self, local: u32, at: u64, kind: ClientTimerKind) {
        self.heap.push(Reverse((at, local, kind)));
        self.compact_if_grown();
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

    #[test]
    fn deadlines_moved_before_they_fire_do_not_pile_up() {
        let clients = 1_000u32;
        let mut t = ClientTimers::new(clients as usize);
        // Each exchange: a retransmission deadline 2.5 s ahead, moved to "now" by the answer
        // 50 ms later; 1,000 clients, 200 exchanges each. Uncompacted, 50 stale entries per
        // client would wait for their time.
        for step in 0..200u64 {
            let now = step * 50_000;
            for c in 0..clients {
                t.arm(c, Some(now + 2_500_000));
                t.arm(c, Some(now + 1));
            }
            while t.pop_due(now + 1).is_some() {}
        }
        assert!(
            t.len() <= COMPACT_AT_LEAST,
            "{} entries for {clients} clients",
            t.len()
        );
        // The live deadlines survive compaction and fire.
        for c in 0..clients {
            t.arm(c, Some(u64::from(c) + 200_000_000));
        }
        t.schedule(3, 150_000_000, ClientTimerKind::Rebind);
        let mut fired = Vec::new();
        while let Some(timer) = t.pop_due(u64::MAX - 1) {
            fired.push(timer);
        }
        assert_eq!(fired.len(), clients as usize + 1);
        assert_eq!(fired[0], (3, ClientTimerKind::Rebind));
    }
}
