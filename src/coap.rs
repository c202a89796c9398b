//! The CoAP message layer toward one peer, sans-IO: message IDs, tokens, CON retransmission
//! (RFC 7252 4.2), duplicate detection, separate responses, RST handling, block-wise helpers
//! (RFC 7959) and observe sequence numbers (RFC 7641). Messages are coap-lite `Packet`s.

use std::time::Duration;

use coap_lite::Packet;
use rand::Rng;

use crate::clock::Instant;

pub use coap_lite;

/// RFC 7252 transmission parameters; every one configurable.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub ack_timeout: Duration,
    pub ack_random_factor: f64,
    pub max_retransmit: u8,
    /// How long a received CON is remembered for deduplication (EXCHANGE_LIFETIME, 247 s).
    pub exchange_lifetime: Duration,
    /// How long a received NON is remembered (NON_LIFETIME, 145 s).
    pub non_lifetime: Duration,
    /// How long to wait for a separate response after its empty ACK (MAX_TRANSMIT_WAIT, 93 s).
    pub separate_response_timeout: Duration,
    /// Largest block we send or accept (16..=1024).
    pub block_size: u16,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            exchange_lifetime: Duration::from_secs(247),
            non_lifetime: Duration::from_secs(145),
            separate_response_timeout: Duration::from_secs(93),
            block_size: 1024,
        }
    }
}

/// A CoAP token (0 to 8 bytes), stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Token {
    len: u8,
    bytes: [u8; 8],
}

impl Token {
    /// `None` when longer than 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Token> {
        let _ = bytes;
        todo!()
    }
    pub fn as_slice(&self) -> &[u8] {
        todo!()
    }
    /// A random 4-byte token.
    pub fn random(rng: &mut impl Rng) -> Token {
        let _ = rng;
        todo!()
    }
}

/// What an incoming datagram turned out to be, after the message layer handled its part
/// (ACKs to CON responses, RSTs to what cannot be matched, cached replies to duplicates).
#[derive(Debug)]
pub enum Incoming {
    /// A response to our request with this token (piggybacked, or separate: a CON one is ACKed).
    Response { token: Token, packet: Packet },
    /// The peer ACKed our CON that carried no request (a CON notification).
    Acknowledged { token: Token },
    /// The peer sent RST for our CON with this token (for a notification: cancel the observation).
    Reset { token: Token },
    /// A new request (CON or NON); answer it with [`Endpoint::respond`].
    Request(Packet),
    /// A retransmitted request: the cached reply was queued again and nothing else happens.
    Duplicate,
    /// The peer ACKed a request of ours with an empty ACK: the response comes later.
    SeparatePending { token: Token },
    /// Nothing to act on (a ping answered by RST, an ACK or RST that matches nothing).
    Ignored,
    /// Could not be parsed; a CON with a readable header was answered with RST.
    Malformed,
}

/// An exchange of ours that ended without an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// No ACK after the last retransmission.
    Timeout { token: Token },
    /// An empty ACK came but no separate response within `separate_response_timeout`.
    SeparateTimeout { token: Token },
}

/// Message-layer state of one endpoint toward one peer. Small: an idle endpoint holds a few
/// integers and an empty cache.
#[derive(Debug)]
pub struct Endpoint {}

impl Endpoint {
    /// `first_message_id` should be random per client (some servers drop equal IDs across clients).
    pub fn new(first_message_id: u16) -> Self {
        let _ = first_message_id;
        todo!()
    }

    /// NSTART 1: true when no CON of ours awaits its ACK.
    pub fn can_send_confirmable(&self) -> bool {
        todo!()
    }

    /// Sends `packet` as CON with a fresh message ID, retransmitting until ACKed or expired.
    /// The caller sets the token. Panics in debug builds if a CON is already outstanding.
    pub fn send_confirmable(
        &mut self,
        now: Instant,
        packet: Packet,
        params: &Params,
        rng: &mut impl Rng,
    ) {
        let _ = (now, packet, params, rng);
        todo!()
    }

    /// Sends `packet` as NON with a fresh message ID.
    pub fn send_non_confirmable(&mut self, packet: Packet) {
        let _ = packet;
        todo!()
    }

    /// Handles one datagram from the peer.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8], params: &Params) -> Incoming {
        let _ = (now, bytes, params);
        todo!()
    }

    /// Answers `request` (as returned in [`Incoming::Request`]): piggybacked in an ACK for a CON,
    /// as NON for a NON. The reply is cached for duplicates of the request.
    pub fn respond(&mut self, now: Instant, request: &Packet, response: Packet, params: &Params) {
        let _ = (now, request, response, params);
        todo!()
    }

    /// Retransmits what is due and reports exchanges that gave up; also expires the dedup cache.
    pub fn handle_timeout(&mut self, now: Instant, params: &Params) -> Option<Expired> {
        let _ = (now, params);
        todo!()
    }

    /// The next instant `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// The next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        todo!()
    }

    /// Retransmissions sent since the endpoint was made.
    pub fn retransmissions(&self) -> u64 {
        todo!()
    }

    /// Forgets every exchange and cached reply (reboot, re-register after a lost session).
    pub fn reset(&mut self) {
        todo!()
    }
}
