//! Message IDs received from the peer, remembered for deduplication (RFC 7252 4.5).
//!
//! One endpoint per simulated client, 100,000 clients: a plain Vec, pruned lazily on the next
//! activity (so an idle client has no timer for it) and capped so a burst cannot grow it forever.

use super::Token;
use crate::clock::Instant;

/// Beyond this many remembered messages the oldest is forgotten: a peer sending faster than
/// `CAP / EXCHANGE_LIFETIME` (one every ~4 s) to a single device is not a case worth the memory.
const CAP: usize = 64;

#[derive(Debug)]
struct Entry {
    message_id: u16,
    /// A retransmission repeats the token too; a new message that reuses an ID (some servers
    /// pick IDs at random per request) does not, and is not a duplicate.
    token: Token,
    expires: Instant,
    /// The reply to resend on a duplicate CON; `None` for NONs and unanswered CONs.
    reply: Option<Box<[u8]>>,
}

#[derive(Debug, Default)]
pub(super) struct DedupCache {
    entries: Vec<Entry>,
}

/// Whether a message ID was seen, and what to resend if so.
pub(super) enum Seen<'a> {
    New,
    Duplicate(Option<&'a [u8]>),
}

impl DedupCache {
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>()
            + self
                .entries
                .iter()
                .filter_map(|e| e.reply.as_ref())
                .map(|r| r.len())
                .sum::<usize>()
    }

    pub fn prune(&mut self, now: Instant) {
        self.entries.retain(|e| e.expires > now);
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            // Give the allocation back: most clients are idle most of the time.
            self.entries = Vec::new();
        }
    }

    pub fn check(&self, message_id: u16, token: Token) -> Seen<'_> {
        let same = |e: &&Entry| e.message_id == message_id && e.token == token;
        match self.entries.iter().find(same) {
            Some(e) => Seen::Duplicate(e.reply.as_deref()),
            None => Seen::New,
        }
    }

    /// Remembers `message_id` with `token` until `expires`, with the reply if one is given; an
    /// existing entry keeps its expiry and takes the reply. A new token for a remembered ID
    /// replaces the old message.
    pub fn insert(
        &mut self,
        message_id: u16,
        token: Token,
        expires: Instant,
        reply: Option<Box<[u8]>>,
    ) {
        if let Some(i) = self.entries.iter().position(|e| e.message_id == message_id) {
            let e = &mut self.entries[i];
            if e.token == token {
                if reply.is_some() {
                    e.reply = reply;
                }
                return;
            }
            self.entries.remove(i);
        }
        if self.entries.len() >= CAP {
            // Entries are pushed in arrival order; lifetimes differ (CON/NON) but the first is
            // close enough to the oldest.
            self.entries.remove(0);
        }
        self.entries.push(Entry {
            message_id,
            token,
            expires,
            reply,
        });
    }

    pub fn clear(&mut self) {
        self.entries = Vec::new();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
