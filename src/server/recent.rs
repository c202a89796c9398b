//! Requests received lately, by (peer, message ID), with the reply to resend on a duplicate
//! (RFC 7252 4.5). One ring for the whole server: its memory is fixed by its capacity however
//! many clients there are, and the oldest entry goes first when it is full.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::clock::Instant;

/// Our replies to client requests are small (2.01 with a Location-Path and an 8-byte token is
/// about 26 bytes): kept inline, so caching one allocates nothing.
const INLINE: usize = 40;

#[derive(Clone, Copy, Debug)]
pub(super) struct CachedReply {
    len: u8,
    bytes: [u8; INLINE],
}

impl CachedReply {
    /// `None` when the reply does not fit (it is then not resent: the peer retransmits and times out).
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let mut reply = CachedReply {
            len: u8::try_from(bytes.len())
                .ok()
                .filter(|&n| usize::from(n) <= INLINE)?,
            bytes: [0; INLINE],
        };
        reply.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(reply)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

type Key = (SocketAddr, u16);

#[derive(Debug)]
struct Entry {
    key: Key,
    expires: Instant,
    reply: Option<CachedReply>,
}

#[derive(Debug)]
pub(super) struct Recent {
    capacity: usize,
    index: HashMap<Key, u32>,
    ring: Vec<Entry>,
    /// The slot the next entry goes to once the ring is full.
    next: usize,
}

/// Whether a message was seen, and the reply to resend if one was cached.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen<'a> {
    New,
    Duplicate(Option<&'a [u8]>),
}

impl Recent {
    /// Allocated once, at its capacity (pages are touched only as it fills). Once full, each
    /// insert removes a key seen once, which can leave a tombstone in the index; a table more
    /// than half full of entries clears them by doubling, hours into a run, so the index has
    /// room for twice the ring and rehashes in place instead.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Recent {
            capacity,
            index: HashMap::with_capacity(2 * capacity),
            ring: Vec::with_capacity(capacity),
            next: 0,
        }
    }

    pub fn check(&self, peer: SocketAddr, message_id: u16, now: Instant) -> Seen<'_> {
        match self.index.get(&(peer, message_id)) {
            Some(&slot) => {
                let entry = &self.ring[slot as usize];
                if entry.expires > now {
                    Seen::Duplicate(entry.reply.as_ref().map(CachedReply::as_slice))
                } else {
                    Seen::New
                }
            }
            None => Seen::New,
        }
    }

    /// Remembers a message until `expires`, replacing any entry for the same key.
    pub fn insert(
        &mut self,
        peer: SocketAddr,
        message_id: u16,
        expires: Instant,
        reply: Option<CachedReply>,
    ) {
        let key = (peer, message_id);
        let entry = Entry {
            key,
            expires,
            reply,
        };
        if let Some(&slot) = self.index.get(&key) {
            self.ring[slot as usize] = entry;
            return;
        }
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(entry);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            self.next = (slot + 1) % self.capacity;
            let old = std::mem::replace(&mut self.ring[slot], entry);
            self.index.remove(&old.key);
            slot
        };
        self.index.insert(key, slot as u32);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.capacity() * size_of::<Entry>()
            + super::table_bytes::<(Key, u32)>(self.index.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn duplicates_within_the_lifetime_get_the_cached_reply() {
        let mut recent = Recent::new(8);
        let reply = CachedReply::new(&[0x64, 0x44, 0, 1]).unwrap();
        recent.insert(peer(1), 1, Instant::from_micros(100), Some(reply));
        recent.insert(peer(1), 2, Instant::from_micros(100), None);
        let at = Instant::from_micros(50);
        assert_eq!(
            recent.check(peer(1), 1, at),
            Seen::Duplicate(Some(&[0x64, 0x44, 0, 1][..]))
        );
        assert_eq!(recent.check(peer(1), 2, at), Seen::Duplicate(None));
        assert_eq!(recent.check(peer(2), 1, at), Seen::New);
        assert_eq!(
            recent.check(peer(1), 1, Instant::from_micros(100)),
            Seen::New
        );
    }

    #[test]
    fn a_full_ring_forgets_the_oldest() {
        let mut recent = Recent::new(3);
        let later = Instant::from_micros(1_000);
        for mid in 0..5 {
            recent.insert(peer(1), mid, later, None);
        }
        assert_eq!(recent.len(), 3);
        let now = Instant::ZERO;
        assert_eq!(recent.check(peer(1), 0, now), Seen::New);
        assert_eq!(recent.check(peer(1), 1, now), Seen::New);
        for mid in 2..5 {
            assert_eq!(recent.check(peer(1), mid, now), Seen::Duplicate(None));
        }
    }

    #[test]
    fn the_cache_keeps_its_memory_however_many_messages_pass() {
        let mut recent = Recent::new(1000);
        let later = Instant::from_micros(1_000);
        let full = recent.heap_bytes();
        for n in 0..200_000u32 {
            recent.insert(peer((n >> 16) as u16), n as u16, later, None);
        }
        assert_eq!(recent.len(), 1000);
        assert_eq!(recent.heap_bytes(), full);
    }

    #[test]
    fn replies_too_long_are_not_cached() {
        assert!(CachedReply::new(&[0; INLINE]).is_some());
        assert!(CachedReply::new(&[0; INLINE + 1]).is_none());
    }
}
