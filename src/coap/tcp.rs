//! CoAP over reliable transports (RFC 8323, `LwM2M` 1.1 binding `T`), sans-IO: the message
//! framing (§3.2), a stream decoder, and the signaling messages (§5: CSM, Ping, Pong, Release,
//! Abort) with the reactions a connection owes its peer. Bytes in, events and bytes out; no
//! socket, no clock. TLS, when there is one, sits below: it hands plaintext in and out.
//!
//! A message: `Len|TKL` (one byte), 0/1/2/4 bytes of extended length, the code, the token,
//! then options and payload exactly as over UDP. `Len` counts options and payload only.

pub mod frame;
pub mod signal;

use std::collections::VecDeque;

pub use frame::{Decoder, FrameError, Message};
pub use signal::{Signal, SignalError};

/// What the peer may send us at most, announced in our CSM: a 1024-byte block with room for
/// its options, and small enough that a stalled peer cannot make us buffer much.
pub const OUR_MAX_MESSAGE_SIZE: u32 = 2048;

/// Why a connection ended at the CoAP level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Closed {
    /// The peer sent Release (7.04): it closes the connection gracefully.
    Released,
    /// The peer sent Abort (7.05).
    Aborted,
    /// The peer broke the protocol (a bad frame, a bad CSM, a message before its CSM): we
    /// sent Abort.
    ProtocolError,
}

impl Closed {
    pub fn name(self) -> &'static str {
        match self {
            Closed::Released => "release",
            Closed::Aborted => "abort",
            Closed::ProtocolError => "protocol_error",
        }
    }
}

/// What one connection received, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// The peer's CSM arrived (its first message): requests may go out now.
    Ready { max_message_size: u32 },
    /// A request or response, one whole frame: hand it to [`crate::coap::Endpoint`].
    Message(Vec<u8>),
    /// Bytes we owe the peer (a Pong, an Abort before closing): send them.
    Reply(Vec<u8>),
    /// The connection is over; close it after sending any reply before this.
    Closed(Closed),
}

/// The CoAP side of one connection: framing, CSM state and signaling replies.
#[derive(Debug)]
pub struct Connection {
    decoder: Decoder,
    /// The peer's Max-Message-Size once its CSM came (RFC 8323 §5.3.1: 1152 until then).
    peer_max_message_size: Option<u32>,
    events: VecDeque<TcpEvent>,
    closed: bool,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new(OUR_MAX_MESSAGE_SIZE)
    }
}

impl Connection {
    /// A connection that accepts messages up to `max_message_size` bytes.
    pub fn new(max_message_size: u32) -> Self {
        Connection {
            decoder: Decoder::new(max_message_size as usize),
            peer_max_message_size: None,
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Our CSM, the first message we must send (RFC 8323 §5.3). No BERT: Block-Wise-Transfer
    /// is not announced.
    pub fn csm(&self) -> Vec<u8> {
        signal::encode(
            &Signal::Csm {
                max_message_size: Some(self.decoder.max_message_size() as u32),
                block_wise: false,
            },
            &[],
        )
    }

    /// Whether the peer's CSM arrived.
    pub fn is_ready(&self) -> bool {
        self.peer_max_message_size.is_some()
    }

    /// The largest message the peer accepts (1152, the base value, until its CSM says).
    pub fn peer_max_message_size(&self) -> u32 {
        self.peer_max_message_size
            .unwrap_or(signal::BASE_MAX_MESSAGE_SIZE)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Takes bytes read from the connection (any split: part of a message, several messages).
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.decoder.push(bytes);
        while !self.closed {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => break,
                Err(e) => self.abort(&e.to_string(), None),
            }
        }
    }

    /// The next thing that happened, in the order it happened.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        let event = self.events.pop_front();
        if self.events.is_empty() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
        }
        event
    }

    /// Heap bytes held: a partial message and undelivered events.
    pub fn heap_bytes(&self) -> usize {
        self.decoder.heap_bytes() + self.events.capacity() * size_of::<TcpEvent>()
    }

    fn on_frame(&mut self, frame: Vec<u8>) {
        let message = match frame::parse(&frame) {
            Ok(m) => m,
            Err(e) => return self.abort(&e.to_string(), None),
        };
        if !signal::is_signal(message.code) {
            if self.is_ready() {
                self.events.push_back(TcpEvent::Message(frame));
            } else {
                self.abort("CSM expected first", None);
            }
            return;
        }
        let parsed = signal::parse(&message);
        let token = message.token.to_vec();
        match parsed {
            Ok(Signal::Csm {
                max_message_size, ..
            }) => {
                let first = self.peer_max_message_size.is_none();
                let size = max_message_size.unwrap_or(signal::BASE_MAX_MESSAGE_SIZE);
                self.peer_max_message_size = Some(size);
                if first {
                    let max_message_size = size;
                    self.events.push_back(TcpEvent::Ready { max_message_size });
                }
            }
            Ok(_) if !self.is_ready() => self.abort("CSM expected first", None),
            Ok(Signal::Ping { custody }) => {
                let pong = signal::encode(&Signal::Pong { custody }, &token);
                self.events.push_back(TcpEvent::Reply(pong));
            }
            Ok(Signal::Pong { .. }) => {}
            Ok(Signal::Release { .. }) => self.close(Closed::Released),
            Ok(Signal::Abort { .. }) => self.close(Closed::Aborted),
            Err(SignalError::UnknownCritical { code, option }) if code == signal::CSM => {
                self.abort("unknown critical CSM option", Some(option));
            }
            Err(e) => self.abort(&e.to_string(), None),
        }
    }

    /// Sends Abort with a diagnostic, then closes (RFC 8323 §5.6).
    fn abort(&mut self, diagnostic: &str, bad_csm_option: Option<u16>) {
        let abort = Signal::Abort {
            bad_csm_option,
            diagnostic: diagnostic.to_string(),
        };
        self.events
            .push_back(TcpEvent::Reply(signal::encode(&abort, &[])));
        self.close(Closed::ProtocolError);
    }

    fn close(&mut self, why: Closed) {
        self.closed = true;
        self.decoder = Decoder::new(self.decoder.max_message_size());
        self.events.push_back(TcpEvent::Closed(why));
    }
}

#[cfg(test)]
mod tests;
