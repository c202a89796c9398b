//! Network impairment, sans-IO: what an emulated link does to each datagram (loss, delay with
//! jitter, duplication, reordering), decided from a seed, and the delay line that holds the
//! datagrams in flight until they are due. The engine applies it in its shards, both ways; it
//! needs no kernel support (netem), so it runs anywhere, under a simulated clock too.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::clock::Instant;

/// How much longer than its delay a reordered datagram is held back: the datagrams sent
/// within this time after it overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(20);

/// What the emulated link between a client and the server does (`[network]` in a fleet file).
/// Probabilities apply to each datagram, each direction, independently.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NetworkConditions {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    /// The delay varies uniformly by up to this much either way (never below zero).
    pub jitter: Duration,
    /// Probability a datagram arrives twice (the copy with its own delay).
    pub duplicate: f64,
    /// Probability a datagram is held back [`REORDER_HOLD`] longer, so later ones overtake it.
    pub reorder: f64,
    /// The client's source address (or port) changes this often, as behind a NAT that
    /// forgets its mapping: the server sees the next datagram come from a new address.
    pub rebind_every: Option<Duration>,
}

impl NetworkConditions {
    /// Whether datagrams are touched at all (rebinding aside).
    pub fn impairs_datagrams(&self) -> bool {
        self.loss > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
            || self.duplicate > 0.0
            || self.reorder > 0.0
    }

    /// Whether anything is emulated.
    pub fn is_clear(&self) -> bool {
        !self.impairs_datagrams() && self.rebind_every.is_none()
    }
}

/// `loss 20%, delay 100ms ± 20ms, rebind every 10m`: what is emulated, for `check`.
impl std::fmt::Display for NetworkConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| match d.as_millis() {
            n if n % 60_000 == 0 && n > 0 => format!("{}m", n / 60_000),
            n if n % 1000 == 0 && n > 0 => format!("{}s", n / 1000),
            n => format!("{n}ms"),
        };
        let mut parts = Vec::new();
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if p > 0.0 {
                parts.push(format!("{name} {}%", p * 100.0));
            }
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            parts.push(format!("delay {} ± {}", ms(self.delay), ms(self.jitter)));
        }
        if let Some(every) = self.rebind_every {
            parts.push(format!("rebind every {}", ms(every)));
        }
        if parts.is_empty() {
            return f.write_str("clear");
        }
        f.write_str(&parts.join(", "))
    }
}

/// What becomes of one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Lost,
    Deliver {
        at: Instant,
        /// A duplicate arrives then too.
        copy: Option<Instant>,
        /// Held back so later datagrams overtake it.
        reordered: bool,
    },
}

/// Decides each datagram's fate from `conditions` and a seed: the same seed and the same
/// sequence of calls give the same fates.
#[derive(Debug)]
pub struct Impairment {
    conditions: NetworkConditions,
    rng: SmallRng,
}

impl Impairment {
    /// `conditions` must be checked: probabilities in 0..=1 (the fleet file checks them).
    pub fn new(conditions: NetworkConditions, seed: u64) -> Self {
        Impairment {
            conditions,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The fate of a datagram sent (or received) at `now`.
    pub fn decide(&mut self, now: Instant) -> Fate {
        let c = self.conditions;
        if self.chance(c.loss) {
            return Fate::Lost;
        }
        let reordered = self.chance(c.reorder);
        let hold = if reordered {
            REORDER_HOLD
        } else {
            Duration::ZERO
        };
        let at = now + self.latency() + hold;
        let copy = self.chance(c.duplicate).then(|| now + self.latency());
        Fate::Deliver {
            at,
            copy,
            reordered,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// The delay, varied by the jitter.
    fn latency(&mut self) -> Duration {
        let c = &self.conditions;
        if c.jitter.is_zero() {
            return c.delay;
        }
        let j = c.jitter.as_secs_f64();
        let offset = self.rng.random_range(-j..=j);
        Duration::from_secs_f64((c.delay.as_secs_f64() + offset).max(0.0))
    }
}

/// What the emulation did, counted (the `network` object of the JSON report's `traffic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImpairmentStats {
    /// Lost on the emulated link (both directions).
    pub dropped: u64,
    /// Held back by a delay (or jitter) above zero.
    pub delayed: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Held back so later datagrams overtook them.
    pub reordered: u64,
    /// Source-address changes (NAT rebindings).
    pub rebound: u64,
    /// Sent by the server to a client's address from before a rebinding: dropped, as a NAT
    /// that forgot the mapping does.
    pub to_old_address: u64,
}

impl ImpairmentStats {
    /// Counts a fate decided at `now`.
    pub fn count(&mut self, now: Instant, fate: &Fate) {
        match *fate {
            Fate::Lost => self.dropped += 1,
            Fate::Deliver {
                at,
                copy,
                reordered,
            } => {
                self.delayed += u64::from(at > now);
                self.duplicated += u64::from(copy.is_some());
                self.reordered += u64::from(reordered);
            }
        }
    }

    pub fn merge(&mut self, other: &ImpairmentStats) {
        self.dropped += other.dropped;
        self.delayed += other.delayed;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.rebound += other.rebound;
        self.to_old_address += other.to_old_address;
    }

    pub fn is_empty(&self) -> bool {
        *self == ImpairmentStats::default()
    }
}

/// The summary line: `network (emulated): dropped 412, delayed 1630, ...`.
impl std::fmt::Display for ImpairmentStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network (emulated): dropped {}, delayed {}, duplicated {}, reordered {}, rebound {}, \
             dropped to an old address {}",
            self.dropped,
            self.delayed,
            self.duplicated,
            self.reordered,
            self.rebound,
            self.to_old_address
        )
    }
}

/// Datagrams in flight on the emulated link, released when due; those due at the same time
/// leave in the order they came. Holds nothing (and allocates nothing) while no datagram is
/// delayed.
#[derive(Debug)]
pub struct DelayLine<T> {
    heap: BinaryHeap<Held<T>>,
    next_seq: u64,
}

impl<T> Default for DelayLine<T> {
    fn default() -> Self {
        DelayLine {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<T> DelayLine<T> {
    pub fn push(&mut self, due: Instant, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Held {
            due: due.as_micros(),
            seq,
            item,
        });
    }

    /// The next item due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.due > now.as_micros() {
            return None;
        }
        self.heap.pop().map(|h| h.item)
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|h| Instant::from_micros(h.due))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[derive(Debug)]
struct Held<T> {
    due: u64,
    seq: u64,
    item: T,
}

// Ordered by (due, seq) reversed: the max-heap's top is the earliest.
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl<T> Eq for Held<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn conditions() -> NetworkConditions {
        NetworkConditions {
            loss: 0.2,
            delay: 100 * MS,
            jitter: 20 * MS,
            duplicate: 0.01,
            reorder: 0.05,
            rebind_every: None,
        }
    }

    /// Runs `n` datagrams, one per millisecond of simulated time, through `impairment`.
    fn run(impairment: &mut Impairment, n: u64) -> (Vec<Fate>, ImpairmentStats) {
        let mut stats = ImpairmentStats::default();
        let fates = (0..n)
            .map(|i| {
                let now = Instant::ZERO + Duration::from_millis(i);
                let fate = impairment.decide(now);
                stats.count(now, &fate);
                fate
            })
            .collect();
        (fates, stats)
    }

    /// Within 5 standard deviations of `n * p` (a fixed seed, so this is no flaky bound).
    fn near(count: u64, n: u64, p: f64) -> bool {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (count as f64 - mean).abs() <= 5.0 * sd
    }

    #[test]
    fn counts_match_the_probabilities() {
        let n = 100_000;
        let (fates, stats) = run(&mut Impairment::new(conditions(), 7), n);
        assert!(near(stats.dropped, n, 0.2), "dropped {}", stats.dropped);
        let delivered = n - stats.dropped;
        assert_eq!(stats.delayed, delivered);
        assert!(
            near(stats.duplicated, delivered, 0.01),
            "duplicated {}",
            stats.duplicated
        );
        assert!(
            near(stats.reordered, delivered, 0.05),
            "reordered {}",
            stats.reordered
        );
        // Every delivery within delay ± jitter (+ the reorder hold), after it was sent.
        for (i, fate) in fates.iter().enumerate() {
            let sent = Instant::ZERO + Duration::from_millis(i as u64);
            if let Fate::Deliver {
                at,
                copy,
                reordered,
            } = *fate
            {
                let hold = if reordered {
                    REORDER_HOLD
                } else {
                    Duration::ZERO
                };
                let took = at.saturating_since(sent).saturating_sub(hold);
                assert!((80 * MS..=120 * MS).contains(&took), "{took:?}");
                if let Some(copy) = copy {
                    assert!((80 * MS..=120 * MS).contains(&copy.saturating_since(sent)));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_fates_and_another_seed_others() {
        let (a, _) = run(&mut Impairment::new(conditions(), 42), 1000);
        let (b, _) = run(&mut Impairment::new(conditions(), 42), 1000);
        let (c, _) = run(&mut Impairment::new(conditions(), 43), 1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn clear_conditions_deliver_everything_at_once() {
        let mut clear = Impairment::new(NetworkConditions::default(), 1);
        let (fates, stats) = run(&mut clear, 1000);
        assert!(stats.is_empty());
        for (i, fate) in fates.iter().enumerate() {
            let now = Instant::ZERO + Duration::from_millis(i as u64);
            assert_eq!(
                *fate,
                Fate::Deliver {
                    at: now,
                    copy: None,
                    reordered: false
                }
            );
        }
        assert!(NetworkConditions::default().is_clear());
        assert_eq!(NetworkConditions::default().to_string(), "clear");
        assert_eq!(
            conditions().to_string(),
            "loss 20%, duplicate 1%, reorder 5%, delay 100ms ± 20ms"
        );
        let rebinding = NetworkConditions {
            rebind_every: Some(MS),
            ..NetworkConditions::default()
        };
        assert!(!rebinding.impairs_datagrams() && !rebinding.is_clear());
    }

    #[test]
    fn certain_loss_drops_everything() {
        let all = NetworkConditions {
            loss: 1.0,
            ..conditions()
        };
        let (_, stats) = run(&mut Impairment::new(all, 3), 500);
        assert_eq!(stats.dropped, 500);
    }

    #[test]
    fn the_delay_line_releases_in_due_order_and_fifo_at_equal_times() {
        let mut line = DelayLine::default();
        let t = |ms| Instant::ZERO + Duration::from_millis(ms);
        line.push(t(30), "c");
        line.push(t(10), "a1");
        line.push(t(20), "b");
        line.push(t(10), "a2");
        assert_eq!(line.len(), 4);
        assert_eq!(line.next_due(), Some(t(10)));
        assert_eq!(line.pop_due(t(9)), None);
        assert_eq!(line.pop_due(t(25)), Some("a1"));
        assert_eq!(line.pop_due(t(25)), Some("a2"));
        assert_eq!(line.pop_due(t(25)), Some("b"));
        assert_eq!(line.pop_due(t(25)), None);
        assert_eq!(line.pop_due(t(30)), Some("c"));
        assert!(line.is_empty() && line.next_due().is_none());
    }

    #[test]
    fn reordered_datagrams_are_overtaken_by_later_ones() {
        // No jitter: only the reorder hold changes the order.
        let only_reorder = NetworkConditions {
            delay: 50 * MS,
            reorder: 0.1,
            ..NetworkConditions::default()
        };
        let mut impairment = Impairment::new(only_reorder, 11);
        let mut line = DelayLine::default();
        let mut held = Vec::new();
        for i in 0..1000u64 {
            let now = Instant::ZERO + Duration::from_millis(i);
            if let Fate::Deliver { at, reordered, .. } = impairment.decide(now) {
                line.push(at, i);
                if reordered {
                    held.push(i);
                }
            }
        }
        let order: Vec<u64> =
            std::iter::from_fn(|| line.pop_due(Instant::ZERO + 10_000 * MS)).collect();
        assert_eq!(order.len(), 1000);
        assert!(!held.is_empty());
        // Those held near the end have fewer datagrams after them to be overtaken by.
        for i in held.iter().filter(|i| **i < 1000 - 20) {
            let pos = order.iter().position(|x| x == i).unwrap();
            // Every datagram sent in the hold after it (and not itself held) arrives first.
            let overtaken = order[..pos].iter().filter(|x| **x > *i).count();
            assert!(overtaken >= 10, "{i} overtaken by {overtaken}");
        }
        // The others keep their order.
        let unheld: Vec<u64> = order
            .iter()
            .copied()
            .filter(|x| !held.contains(x))
            .collect();
        assert!(unheld.windows(2).all(|w| w[0] < w[1]));
    }
}
