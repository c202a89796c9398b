//! A client's DTLS session on whichever library its credential needs: dimpl, or OpenSSL for
//! PSK with AES-128-GCM (`openssl` feature). Both answer the same sans-IO calls.

use crate::clock::Instant;
#[cfg(feature = "openssl")]
use crate::security::dtls::OpensslSession;
use crate::security::dtls::{Failure, Session};

/// Sized as dimpl's session (OpenSSL's is smaller: its state is on OpenSSL's heap); the client
/// boxes it, so one without a session (waiting to retry, stopped) does not carry ~3.4 KB.
#[derive(Debug)]
#[cfg_attr(feature = "openssl", allow(clippy::large_enum_variant))]
pub(super) enum ClientSession {
    Dimpl(Session),
    #[cfg(feature = "openssl")]
    Openssl(OpensslSession),
}

/// `session.$call(args)` on either library's session.
macro_rules! each {
    ($session:expr, $s:ident => $call:expr) => {
        match $session {
            ClientSession::Dimpl($s) => $call,
            #[cfg(feature = "openssl")]
            ClientSession::Openssl($s) => $call,
        }
    };
}

impl ClientSession {
    pub(super) fn started(&self) -> Instant {
        each!(self, s => s.started())
    }

    pub(super) fn is_connected(&self) -> bool {
        each!(self, s => s.is_connected())
    }

    pub(super) fn is_closed(&self) -> bool {
        each!(self, s => s.is_closed())
    }

    pub(super) fn take_connected(&mut self) -> bool {
        each!(self, s => s.take_connected())
    }

    pub(super) fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Failure> {
        each!(self, s => s.handle_datagram(now, bytes))
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) -> Result<(), Failure> {
        each!(self, s => s.handle_timeout(now))
    }

    pub(super) fn send(&mut self, plaintext: &[u8]) -> Result<(), Failure> {
        each!(self, s => s.send(plaintext))
    }

    pub(super) fn close(&mut self) {
        each!(self, s => s.close());
    }

    pub(super) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        each!(self, s => s.poll_transmit())
    }

    pub(super) fn poll_received(&mut self) -> Option<Vec<u8>> {
        each!(self, s => s.poll_received())
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        each!(self, s => s.poll_timeout())
    }

    pub(super) fn queued_bytes(&self) -> usize {
        each!(self, s => s.queued_bytes())
    }
}
