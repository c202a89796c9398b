//! Observe sequence numbers (RFC 7641 3.4, 4.4): a 24-bit counter per observation.

/// Observe values wrap at 2^24 (the option carries at most 3 bytes).
pub const MODULUS: u32 = 1 << 24;

/// The sequence of Observe values for the notifications of one observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObserveSeq(u32);

impl ObserveSeq {
    /// Starts at `start` (taken modulo 2^24). Some servers ignore a first notification with
    /// Observe 0, so start at 1 or more.
    pub fn new(start: u32) -> Self {
        ObserveSeq(start % MODULUS)
    }

    /// The value the next notification carries, without advancing.
    pub fn peek(&self) -> u32 {
        self.0
    }

    /// The value for the next notification; advances, wrapping at 2^24.
    #[allow(
        clippy::should_implement_trait,
        reason = "never ends, so an Iterator would only add unwraps"
    )]
    pub fn next(&mut self) -> u32 {
        let value = self.0;
        self.0 = (value + 1) % MODULUS;
        value
    }
}

impl Default for ObserveSeq {
    fn default() -> Self {
        ObserveSeq::new(1)
    }
}

/// Whether notification `v2` is newer than `v1` by sequence number alone (RFC 7641 3.4; the
/// 128-second rule is the caller's, who knows the arrival times).
pub fn is_newer(v1: u32, v2: u32) -> bool {
    const HALF: u32 = 1 << 23;
    let (v1, v2) = (v1 % MODULUS, v2 % MODULUS);
    (v1 < v2 && v2 - v1 < HALF) || (v1 > v2 && v1 - v2 > HALF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_and_wraps_at_24_bits() {
        let mut seq = ObserveSeq::new(1);
        assert_eq!([seq.next(), seq.next(), seq.next()], [1, 2, 3]);
        let mut seq = ObserveSeq::new(MODULUS - 2);
        assert_eq!(
            [seq.next(), seq.next(), seq.next()],
            [MODULUS - 2, MODULUS - 1, 0]
        );
        assert_eq!(ObserveSeq::new(MODULUS + 5).peek(), 5);
        assert_eq!(ObserveSeq::default().peek(), 1);
    }

    #[test]
    fn every_next_value_is_newer_than_the_previous() {
        let mut seq = ObserveSeq::new(MODULUS - 3);
        let mut last = seq.next();
        for _ in 0..6 {
            let value = seq.next();
            assert!(is_newer(last, value), "{last} -> {value}");
            assert!(!is_newer(value, last));
            last = value;
        }
        assert!(!is_newer(7, 7));
    }
}
