//! A monotonic instant that protocol code is handed, never reads.
//!
//! Microseconds since an origin chosen by whoever drives the clients (the engine or a test), so
//! that a simulated hour costs nothing and one instant costs 8 bytes per stored deadline.

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time since `earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

/// A clock that moves only when told to, shared by whoever drives and whoever reads it (a
/// simulated network advances it; the engine reads it), so hours of a fleet's life run in
/// seconds and the same seed gives the same run.
#[derive(Clone, Debug, Default)]
pub struct SimulatedClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl SimulatedClock {
    pub fn starting_at(at: Instant) -> Self {
        SimulatedClock(std::sync::Arc::new(at.0.into()))
    }

    pub fn now(&self) -> Instant {
        Instant(self.0.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Moves the clock to `at`; never backwards.
    pub fn advance_to(&self, at: Instant) {
        self.0.fetch_max(at.0, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_is_shared_and_never_goes_back() {
        let clock = SimulatedClock::starting_at(Instant::from_micros(5));
        let reader = clock.clone();
        clock.advance_to(Instant::from_micros(9));
        clock.advance_to(Instant::from_micros(7));
        assert_eq!(reader.now(), Instant::from_micros(9));
    }
}
