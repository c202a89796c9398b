//! DTLS for one client: every CoAP datagram to and from the server rides in a session the
//! client owns (PSK, or certificates). The session is opened before the first request that
//! needs it; a failed handshake ends like a failed Register attempt; a lost session is opened
//! again.

mod session;

use std::net::SocketAddr;

use rand::Rng;

use session::ClientSession;

use super::{Client, ClientState, Dropped, Event, InFlight};
use crate::clock::Instant;
use crate::coap::Endpoint;
use crate::security::dtls::{self, Failure, PeerCheck, Session};
use crate::security::{Credential, Psk};

/// How a handshake ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeOutcome {
    Connected,
    Failed(Failure),
    /// The client stopped or went offline first.
    Aborted,
}

/// One DTLS handshake, from the first `ClientHello` to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeRecord {
    pub started: Instant,
    pub completed: Instant,
    pub outcome: HandshakeOutcome,
}

/// A client's credentials and its current session (boxed in the client: plain-CoAP clients pay one
/// null pointer). A certificate client holds a pointer to the fleet's certificates: its own is
/// made when a handshake starts and lives in that session only. The session is boxed too: it is
/// ~3.4 KB inline, which a client without one (waiting to retry a failed handshake, stopped)
/// should not carry.
#[derive(Debug)]
pub(super) struct Secure {
    credential: Credential,
    session: Option<Box<ClientSession>>,
    /// Records a failed session still had to send (the alert refusing the server's certificate).
    farewell: Vec<Vec<u8>>,
}

impl Secure {
    pub(super) fn new(credential: Credential) -> Self {
        Secure {
            credential,
            session: None,
            farewell: Vec::new(),
        }
    }

    pub(super) fn credential(&self) -> &Credential {
        &self.credential
    }

    fn is_connected(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_connected())
    }

    fn is_handshaking(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.is_connected() && !s.is_closed())
    }

    /// Records for the server first; then, once connected, CoAP datagrams encrypted.
    pub(super) fn poll_transmit(
        &mut self,
        coap: &mut Endpoint,
        server: SocketAddr,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        if let Some(record) = self.farewell.pop() {
            return Some((server, record));
        }
        let session = self.session.as_mut()?;
        loop {
            if let Some(record) = session.poll_transmit() {
                return Some((server, record));
            }
            if !session.is_connected() {
                return None;
            }
            let (_, plaintext) = coap.poll_transmit()?;
            // Only a closed session refuses data, and is_connected said it is open: should it
            // happen, the datagram is lost like on the wire and CoAP retransmits.
            let _ = session.send(&plaintext);
        }
    }

    /// Decrypts a record of an open session: the plaintexts it carried (none when it failed:
    /// a session being left is not worth recovering).
    pub(super) fn receive(&mut self, now: Instant, bytes: &[u8]) -> Vec<Vec<u8>> {
        let Some(session) = self.session.as_mut() else {
            return Vec::new();
        };
        let _ = session.handle_datagram(now, bytes);
        std::iter::from_fn(|| session.poll_received()).collect()
    }

    /// Encrypts `plaintext` if given, then returns the session's next record.
    pub(super) fn seal(&mut self, plaintext: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let session = self.session.as_mut()?;
        if let Some(plaintext) = plaintext {
            // Lost like on the wire if the session closed meanwhile.
            let _ = session.send(&plaintext);
        }
        session.poll_transmit()
    }

    /// Ends the session with `close_notify` and gives back the credentials and the records
    /// still to send (a client leaving its bootstrap server, or its LWM2M server).
    pub(super) fn close_into_parts(mut self) -> (Credential, Vec<Vec<u8>>) {
        let mut records = Vec::new();
        if let Some(session) = self.session.as_mut() {
            session.close();
            records.extend(std::iter::from_fn(|| session.poll_transmit()));
        }
        (self.credential, records)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        size_of::<Secure>()
            + self.credential.heap_bytes()
            + self
                .session
                .as_ref()
                .map_or(0, |s| size_of::<ClientSession>() + s.queued_bytes())
    }
}

impl Client {
    /// This client speaks DTLS with a pre-shared key to its server (`coaps://`).
    #[must_use]
    pub fn with_psk(self, psk: Psk) -> Self {
        self.with_credential(Credential::Psk(psk))
    }

    /// This client speaks DTLS to its server (`coaps://`) with these credentials.
    #[must_use]
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.secure = Some(Box::new(Secure::new(credential)));
        self
    }

    /// Whether the client uses DTLS.
    pub fn is_secure(&self) -> bool {
        self.secure.is_some()
    }

    /// DTLS: whether requests may go out now; if not, a handshake is started when none runs.
    pub(super) fn ready_to_send(&mut self, now: Instant) -> bool {
        let Some(secure) = self.secure.as_deref_mut() else {
            return true;
        };
        if secure.is_connected() {
            return true;
        }
        if !secure.is_handshaking() {
            self.events.push_back(Event::HandshakeStarted);
            let session = match &secure.credential {
                Credential::Psk(psk) => {
                    let config = dtls::client_config(psk, &self.config.dtls, self.rng.random());
                    Session::connect(config, now).map(ClientSession::Dimpl)
                }
                #[cfg(feature = "openssl")]
                Credential::OpensslPsk(psk, cipher) => {
                    dtls::OpensslSession::connect(psk, *cipher, &self.config.dtls, now)
                        .map(ClientSession::Openssl)
                }
                Credential::Certificate(certificates) => {
                    let config = dtls::certificate_client_config(&self.config.dtls);
                    let check = PeerCheck {
                        verifier: std::sync::Arc::clone(certificates.server_verifier()),
                        unix_origin: self.device.unix_origin(),
                    };
                    certificates
                        .certificate(&self.endpoint_name)
                        .map_err(|_| Failure::NoCertificate)
                        .and_then(|own| Session::connect_with_certificate(config, own, check, now))
                        .map(ClientSession::Dimpl)
                }
            };
            match session {
                Ok(session) => secure.session = Some(Box::new(session)),
                Err(failure) => {
                    self.handshake_ended(now, now, HandshakeOutcome::Failed(failure));
                    self.on_handshake_failed(now);
                }
            }
        }
        false
    }

    /// A datagram for a DTLS client: decrypted, then handled as CoAP.
    pub(super) fn handle_secure_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(session) = self.secure.as_mut().and_then(|s| s.session.as_mut()) else {
            self.events.push_back(Event::Dropped(Dropped::Unmatched));
            return;
        };
        let result = session.handle_datagram(now, bytes);
        let connected = session.take_connected();
        let mut plaintexts = Vec::new();
        while let Some(p) = session.poll_received() {
            plaintexts.push(p);
        }
        let started = session.started();
        if connected {
            self.handshake_ended(started, now, HandshakeOutcome::Connected);
        }
        for plaintext in plaintexts {
            self.handle_coap(now, from, &plaintext, true);
        }
        if let Err(failure) = result {
            self.on_session_failed(now, failure);
        }
        self.flush(now);
    }

    /// DTLS retransmissions and the handshake deadline.
    pub(super) fn handle_secure_timeout(&mut self, now: Instant) {
        let Some(session) = self.secure.as_mut().and_then(|s| s.session.as_mut()) else {
            return;
        };
        if session.poll_timeout().is_some_and(|at| at <= now)
            && let Err(failure) = session.handle_timeout(now)
        {
            self.on_session_failed(now, failure);
        }
    }

    pub(super) fn secure_timeout(&self) -> Option<Instant> {
        self.secure
            .as_ref()
            .and_then(|s| s.session.as_ref())
            .and_then(|s| s.poll_timeout())
    }

    /// A request timed out: the server may have forgotten the session, so the next request
    /// handshakes again (as constrained clients do).
    pub(super) fn forget_session(&mut self) {
        if let Some(secure) = self.secure.as_deref_mut() {
            secure.session = None;
        }
    }

    /// Going offline: a stop says goodbye (`close_notify`, so the server frees the session at
    /// once); a reboot just loses it, as a device's would. A handshake under way is aborted.
    pub(super) fn end_session(&mut self, now: Instant, graceful: bool) {
        self.end_stream(now, graceful);
        let Some(secure) = self.secure.as_deref_mut() else {
            return;
        };
        let handshaking = secure.is_handshaking();
        let Some(session) = secure.session.as_mut() else {
            return;
        };
        let started = session.started();
        if graceful {
            session.close();
        } else {
            secure.session = None;
        }
        if handshaking {
            self.handshake_ended(started, now, HandshakeOutcome::Aborted);
        }
    }

    fn handshake_ended(&mut self, started: Instant, now: Instant, outcome: HandshakeOutcome) {
        self.events.push_back(Event::Handshake(HandshakeRecord {
            started,
            completed: now,
            outcome,
        }));
    }

    fn on_session_failed(&mut self, now: Instant, failure: Failure) {
        let Some(secure) = self.secure.as_deref_mut() else {
            return;
        };
        let Some(mut session) = secure.session.take() else {
            return;
        };
        // Only a refused certificate leaves something to say (the alert); other failures
        // leave nothing the server would want.
        if matches!(failure, Failure::Certificate(_)) {
            while let Some(record) = session.poll_transmit() {
                secure.farewell.insert(0, record);
            }
        }
        if session.is_connected() || session.is_closed() {
            self.events.push_back(Event::SessionLost(failure));
            self.on_session_lost(now);
        } else {
            self.handshake_ended(session.started(), now, HandshakeOutcome::Failed(failure));
            self.on_handshake_failed(now);
        }
    }

    /// What was in flight cannot be answered any more: it ends, and fails as a timeout would.
    /// A client still registered opens a new session at once, so the server can reach it.
    fn on_session_lost(&mut self, now: Instant) {
        for request in std::mem::take(&mut self.in_flight) {
            let InFlight { token, kind, .. } = request;
            self.coap.give_up(token);
            self.record_end(&request, now, super::RequestOutcome::Aborted);
            self.on_request_failed(now, kind, token);
        }
        if self.state == ClientState::Registered {
            self.ready_to_send(now);
        }
    }

    /// Like a failed Register attempt: queued requests end unsent, and the registration
    /// procedure waits before it tries again (a registered client counts as unregistered now).
    pub(super) fn on_handshake_failed(&mut self, now: Instant) {
        self.abort_queued(now);
        match self.state {
            ClientState::Registering => self.on_register_failed(now),
            ClientState::Registered | ClientState::Sleeping => {
                self.location = None;
                self.update_at = None;
                self.clear_observations();
                self.set_state(ClientState::Registering);
                self.on_register_failed(now);
            }
            ClientState::Deregistering => self.on_deregister_answer(now),
            ClientState::Bootstrapping => self.on_bootstrap_handshake_failed(now),
            _ => {}
        }
    }
}
