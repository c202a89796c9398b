//! `--shard K/N`: one process's part of a fleet run by N processes (hosts, Kubernetes pods).
//!
//! Shard K runs the clients whose fleet-wide index is K modulo N, each with the name,
//! credentials, seeds and start time it has in a single-process run: the N shards together run
//! the whole fleet once, on the same schedule. Every-Nth rather than contiguous blocks because
//! a population is a contiguous block of indices and the ramp interleaves populations by
//! weight: every-Nth gives each shard ⌊c/N⌋ or ⌈c/N⌉ of every population of c clients, and of
//! the clients any ramp stage starts within one per population of the stage's count over N,
//! so each shard offers its share of every stage's rate (the shares sum to the stage exactly,
//! since each client is in one shard). Contiguous blocks would give a shard whole populations
//! and, within a stage, none of its clients.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Shard `index` of `count` (`0 <= index < count`); [`Slice::WHOLE`] is the single-process run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slice {
    index: u32,
    count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    #[error("{0:?}: expected K/N, shard K of N counted from 0 (0/4 .. 3/4)")]
    Syntax(String),
    #[error("{0:?}: the shard count N must be at least 1")]
    NoShards(String),
    #[error("{text:?}: shard {index} does not exist: shards of {count} are 0 to {}", count - 1)]
    OutOfRange {
        text: String,
        index: u32,
        count: u32,
    },
}

impl Slice {
    pub const WHOLE: Slice = Slice { index: 0, count: 1 };

    /// `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Slice> {
        (index < count).then_some(Slice { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    pub fn contains(self, client: u64) -> bool {
        client % u64::from(self.count) == u64::from(self.index)
    }

    /// How many of the clients `range` (fleet-wide indices) are this shard's.
    pub fn count_in(self, range: Range<u64>) -> u64 {
        self.len(range.end) - self.len(range.start.min(range.end))
    }

    /// How many of the fleet's first `clients` are this shard's.
    pub fn len(self, clients: u64) -> u64 {
        clients
            .saturating_sub(u64::from(self.index))
            .div_ceil(u64::from(self.count))
    }

    /// The fleet-wide index of this shard's `position`-th client.
    pub fn client(self, position: u64) -> u64 {
        position * u64::from(self.count) + u64::from(self.index)
    }

    /// Where fleet-wide client `client` is in this shard's order; `None`: another shard's.
    pub fn position(self, client: u64) -> Option<u64> {
        self.contains(client)
            .then(|| client / u64::from(self.count))
    }

    /// This shard's clients among the fleet's first `clients`, in order.
    pub fn clients(self, clients: u64) -> impl Iterator<Item = u64> {
        (0..self.len(clients)).map(move |p| self.client(p))
    }
}

impl Default for Slice {
    fn default() -> Self {
        Slice::WHOLE
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Slice {
    type Err = SliceError;

    fn from_str(text: &str) -> Result<Slice, SliceError> {
        let syntax = || SliceError::Syntax(text.to_string());
        let (k, n) = text.trim().split_once('/').ok_or_else(syntax)?;
        let number = |s: &str| {
            let s = s.trim();
            // `u32::from_str` takes a leading `+`: not a shard number.
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            s.parse::<u32>().map_err(|_| syntax())
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err(SliceError::NoShards(text.to_string()));
        }
        Slice::new(index, count).ok_or(SliceError::OutOfRange {
            text: text.to_string(),
            index,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest_in_plain_words() {
        assert_eq!("0/1".parse(), Ok(Slice::WHOLE));
        assert_eq!("3/4".parse(), Ok(Slice::new(3, 4).unwrap()));
        assert_eq!(" 2 / 8 ".parse(), Ok(Slice::new(2, 8).unwrap()));
        assert_eq!(Slice::new(3, 4).unwrap().to_string(), "3/4");
        for junk in [
            "", "3", "3/", "/4", "a/4", "1/b", "-1/4", "+1/4", "1/4/2", "1.5/4",
        ] {
            assert_eq!(
                junk.parse::<Slice>(),
                Err(SliceError::Syntax(junk.to_string())),
                "{junk:?}"
            );
        }
        let e = "4/4".parse::<Slice>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"4/4\": shard 4 does not exist: shards of 4 are 0 to 3"
        );
        let e = "0/0".parse::<Slice>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"0/0\": the shard count N must be at least 1"
        );
        assert!(
            "x".parse::<Slice>()
                .unwrap_err()
                .to_string()
                .contains("expected K/N")
        );
    }

    #[test]
    fn the_shards_partition_the_fleet_keeping_each_clients_index() {
        for clients in [0, 1, 5, 7, 100, 1001] {
            for count in 1..=9 {
                let mut seen = vec![0u32; clients as usize];
                let mut total = 0;
                for index in 0..count {
                    let slice = Slice::new(index, count).unwrap();
                    let mine: Vec<u64> = slice.clients(clients).collect();
                    assert_eq!(mine.len() as u64, slice.len(clients));
                    total += slice.len(clients);
                    for (p, &k) in mine.iter().enumerate() {
                        assert!(slice.contains(k));
                        assert_eq!(slice.position(k), Some(p as u64));
                        seen[k as usize] += 1;
                    }
                    for other in (0..count).filter(|o| *o != index) {
                        let other = Slice::new(other, count).unwrap();
                        assert!(mine.iter().all(|k| other.position(*k).is_none()));
                    }
                    // Every shard within one client of an even share.
                    assert!(slice.len(clients).abs_diff(clients / u64::from(count)) <= 1);
                }
                assert_eq!(total, clients);
                assert!(
                    seen.iter().all(|n| *n == 1),
                    "{clients} clients, {count} shards"
                );
            }
        }
    }

    #[test]
    fn counts_in_a_range_sum_to_the_range() {
        for count in 1..=5 {
            for start in 0..12 {
                for end in start..20 {
                    let total: u64 = (0..count)
                        .map(|i| Slice::new(i, count).unwrap().count_in(start..end))
                        .sum();
                    assert_eq!(total, end - start);
                    let slice = Slice::new(count - 1, count).unwrap();
                    let direct = (start..end).filter(|k| slice.contains(*k)).count() as u64;
                    assert_eq!(slice.count_in(start..end), direct);
                }
            }
        }
    }
}
