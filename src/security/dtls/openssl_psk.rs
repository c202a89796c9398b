//! A client DTLS 1.2 PSK session on OpenSSL (`openssl` feature): `TLS_PSK_WITH_AES_128_GCM_SHA256`,
//! which dimpl lacks, or CCM-8 to compare the two on one peer. Sans-IO like [`super::Session`]:
//! OpenSSL reads and writes an in-memory datagram queue, and our clock times the flights. OpenSSL's
//! own flight timer reads the wall clock: given our intervals, it expires when ours does on a real
//! clock, and `DTLSv1_handle_timeout` retransmits (new record numbers, which a server that saw
//! the first copy does not drop as a replay). When OpenSSL is not due yet: if it lags by less
//! than half the interval (a real clock; the engine's reading predates OpenSSL's), the deadline
//! waits for it; otherwise our clock runs ahead of the wall clock (a simulated one), and the
//! flight goes out again as it was sent.

mod ffi;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

use openssl::ex_data::Index;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslStream, SslVersion,
};

use super::{DtlsParams, Failure, RECORD_BUFFER};
use crate::clock::Instant;
use crate::security::{Psk, PskCipher};

/// Datagrams between OpenSSL and the network: one `write` is one datagram out, one `read` one in.
#[derive(Debug, Default)]
struct Datagrams {
    inbound: VecDeque<Vec<u8>>,
    outbound: VecDeque<Vec<u8>>,
}

impl Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.inbound.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // A datagram longer than OpenSSL's buffer is cut, as a socket would cut it.
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(n)
    }
}

impl Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.push_back(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Largest datagram OpenSSL sends, as dimpl's.
const MTU: u32 = 1150;

/// OpenSSL reports a received fatal alert as reason 1000 + its description (`SSL_AD_REASON_OFFSET`).
const ALERT_REASON_OFFSET: i32 = 1000;

/// The client's own identity and key, for the PSK callback.
fn psk_index() -> Index<Ssl, Psk> {
    static INDEX: OnceLock<Index<Ssl, Psk>> = OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("OpenSSL gives an ex_data index"))
}

/// One OpenSSL context per suite, shared by every session.
fn context(cipher: PskCipher) -> &'static SslContext {
    static CCM8: OnceLock<SslContext> = OnceLock::new();
    static GCM: OnceLock<SslContext> = OnceLock::new();
    let (cell, list) = match cipher {
        PskCipher::Aes128Ccm8 => (&CCM8, "PSK-AES128-CCM8"),
        PskCipher::Aes128Gcm => (&GCM, "PSK-AES128-GCM-SHA256"),
    };
    cell.get_or_init(|| build_context(list).expect("OpenSSL accepts a DTLS 1.2 PSK client context"))
}

fn build_context(cipher_list: &str) -> Result<SslContext, openssl::error::ErrorStack> {
    let mut builder = SslContext::builder(SslMethod::dtls_client())?;
    builder.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    builder.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    builder.set_cipher_list(cipher_list)?;
    // Our MTU, not one asked of a socket; no tickets or cache: each handshake is a full one,
    // as with dimpl.
    builder.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
    builder.set_session_cache_mode(SslSessionCacheMode::OFF);
    builder.set_psk_client_callback(|ssl, _hint, identity, key| {
        let psk = ssl
            .ex_data(psk_index())
            .ok_or_else(openssl::error::ErrorStack::get)?;
        // The identity goes out NUL-terminated; one that does not fit fails the handshake.
        if psk.identity.len() >= identity.len() || psk.key.len() > key.len() {
            return Err(openssl::error::ErrorStack::get());
        }
        identity[..psk.identity.len()].copy_from_slice(&psk.identity);
        identity[psk.identity.len()] = 0;
        key[..psk.key.len()].copy_from_slice(&psk.key);
        Ok(psk.key.len())
    });
    Ok(builder.build())
}

/// A client DTLS session on OpenSSL, from the first `ClientHello` to its end.
pub struct OpensslSession {
    stream: SslStream<Datagrams>,
    started: Instant,
    now: Instant,
    connected: bool,
    closed: bool,
    just_connected: bool,
    received: VecDeque<Vec<u8>>,
    /// The last flight sent, until the handshake completes, and when to send it again.
    flight: Vec<Vec<u8>>,
    flight_deadline: Option<Instant>,
    /// The current retransmission interval (doubled after each) and retransmissions so far.
    rto: Duration,
    retransmissions: usize,
    /// OpenSSL's interval for the pending flight (it doubles only when OpenSSL retransmits).
    openssl_interval: Duration,
    params: DtlsParams,
}

impl fmt::Debug for OpensslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslSession")
            .field("started", &self.started)
            .field("connected", &self.connected)
            .field("flight_deadline", &self.flight_deadline)
            .finish_non_exhaustive()
    }
}

impl OpensslSession {
    /// Starts a handshake offering `cipher` only: the `ClientHello` is ready in
    /// [`OpensslSession::poll_transmit`].
    pub fn connect(
        psk: &Psk,
        cipher: PskCipher,
        params: &DtlsParams,
        now: Instant,
    ) -> Result<OpensslSession, Failure> {
        let mut ssl = Ssl::new(context(cipher)).map_err(|_| Failure::Protocol)?;
        ssl.set_ex_data(psk_index(), psk.clone());
        ssl.set_mtu(MTU).map_err(|_| Failure::Protocol)?;
        ssl.set_connect_state();
        let openssl_first = openssl_first_interval(params);
        ffi::use_our_intervals(&mut ssl, openssl_first.as_micros() as u32);
        let stream = SslStream::new(ssl, Datagrams::default()).map_err(|_| Failure::Protocol)?;
        let mut session = OpensslSession {
            stream,
            started: now,
            now,
            connected: false,
            closed: false,
            just_connected: false,
            received: VecDeque::new(),
            flight: Vec::new(),
            flight_deadline: None,
            rto: params.flight_start_rto,
            retransmissions: 0,
            openssl_interval: openssl_first,
            params: params.clone(),
        };
        session.step()?;
        Ok(session)
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the handshake completed since the last call.
    pub fn take_connected(&mut self) -> bool {
        std::mem::take(&mut self.just_connected)
    }

    /// The suite the handshake settled on (its IANA name), once connected.
    pub fn negotiated_cipher(&self) -> Option<&'static str> {
        self.stream
            .ssl()
            .current_cipher()
            .and_then(openssl::ssl::SslCipherRef::standard_name)
    }

    /// A datagram from the server; an error means the session is over. After our
    /// `close_notify` there is nothing left to read: dropped.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Failure> {
        self.now = self.now.max(now);
        if self.closed {
            return Ok(());
        }
        self.stream.get_mut().inbound.push_back(bytes.to_vec());
        self.step()
    }

    /// Retransmits a flight when due; gives up after the retries or the handshake timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Failure> {
        self.now = self.now.max(now);
        if self.connected || self.closed {
            return Ok(());
        }
        if self.now >= self.handshake_deadline() {
            return Err(Failure::Timeout);
        }
        if self.flight_deadline.is_some_and(|at| at <= self.now) {
            if self.retransmissions >= self.params.flight_retries {
                return Err(Failure::Timeout);
            }
            let before = self.stream.get_ref().outbound.len();
            if ffi::retransmit(self.stream.ssl()).map_err(|()| Failure::Protocol)? {
                self.flight = self
                    .stream
                    .get_ref()
                    .outbound
                    .range(before..)
                    .cloned()
                    .collect();
                self.openssl_interval = self.openssl_interval.saturating_mul(2);
            } else if let Some(left) = ffi::time_left(self.stream.ssl())
                && left <= self.openssl_interval / 2
            {
                self.flight_deadline = Some(self.now + left.max(Duration::from_millis(1)));
                return Ok(());
            } else {
                let flight = self.flight.iter().cloned();
                self.stream.get_mut().outbound.extend(flight);
            }
            self.retransmissions += 1;
            self.rto = self.rto.saturating_mul(2);
            self.flight_deadline = Some(self.now + self.rto);
        }
        Ok(())
    }

    /// Encrypts one datagram for the server (only once connected).
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), Failure> {
        if !self.connected {
            return Err(Failure::Protocol);
        }
        self.stream
            .ssl_write(plaintext)
            .map(drop)
            .map_err(|e| failure(&e))
    }

    /// Sends `close_notify` (when connected); the session is unusable afterwards.
    pub fn close(&mut self) {
        if self.connected {
            let _ = self.stream.shutdown();
        }
        self.connected = false;
        self.closed = true;
        self.flight_deadline = None;
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().outbound.pop_front()
    }

    pub fn poll_received(&mut self) -> Option<Vec<u8>> {
        self.received.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.connected || self.closed {
            return None;
        }
        let handshake = self.handshake_deadline();
        Some(
            self.flight_deadline
                .map_or(handshake, |at| at.min(handshake)),
        )
    }

    /// Heap bytes held outside OpenSSL (its own state is measured by the figures).
    pub fn queued_bytes(&self) -> usize {
        let queue = self.stream.get_ref();
        [&queue.inbound, &queue.outbound, &self.received]
            .into_iter()
            .flatten()
            .chain(&self.flight)
            .map(Vec::capacity)
            .sum()
    }

    fn handshake_deadline(&self) -> Instant {
        self.started + self.params.handshake_timeout
    }

    /// Lets OpenSSL handle what arrived: the handshake, then application data.
    fn step(&mut self) -> Result<(), Failure> {
        if !self.connected {
            let before = self.stream.get_ref().outbound.len();
            match self.stream.do_handshake() {
                Ok(()) => {
                    self.connected = true;
                    self.just_connected = true;
                    self.flight_deadline = None;
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => {}
                Err(e) => return Err(failure(&e)),
            }
            if self.connected {
                self.flight = Vec::new();
            } else {
                // A new flight went out: kept, and its timer starts afresh.
                let outbound = &self.stream.get_ref().outbound;
                if outbound.len() > before {
                    self.flight = outbound.range(before..).cloned().collect();
                    self.rto = self.params.flight_start_rto;
                    self.retransmissions = 0;
                    self.openssl_interval = openssl_first_interval(&self.params);
                    self.flight_deadline = Some(self.now + self.rto);
                }
                return Ok(());
            }
        }
        let mut buf = [0u8; RECORD_BUFFER];
        loop {
            match self.stream.ssl_read(&mut buf) {
                Ok(n) => self.received.push_back(buf[..n].to_vec()),
                Err(e) if e.code() == ErrorCode::WANT_READ => return Ok(()),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.connected = false;
                    self.closed = true;
                    return Err(Failure::Closed);
                }
                Err(e) => return Err(failure(&e)),
            }
        }
    }
}

/// OpenSSL's first flight interval: ours, but at least 20 ms (it counts a timer with under 15 ms
/// left as expired and retransmits on every read while it is: shorter ones loop it into a fatal
/// error) and at most what its callback returns (µs in a `c_uint`).
fn openssl_first_interval(params: &DtlsParams) -> Duration {
    params.flight_start_rto.clamp(
        Duration::from_millis(20),
        Duration::from_micros(u64::from(u32::MAX)),
    )
}

/// A received fatal alert by its description; anything else OpenSSL gave up on is `Protocol`.
fn failure(error: &openssl::ssl::Error) -> Failure {
    error
        .ssl_error()
        .and_then(|stack| {
            stack.errors().iter().find_map(|e| {
                let alert = e.reason_code() - ALERT_REASON_OFFSET;
                u8::try_from(alert).ok().map(Failure::Alert)
            })
        })
        .unwrap_or(Failure::Protocol)
}

#[cfg(test)]
mod tests;
