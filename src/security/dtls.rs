//! One DTLS 1.2 session over `dimpl`, with a pre-shared key (`TLS_PSK_WITH_AES_128_CCM_8`, the
//! suite LWM2M requires) or certificates (`ECDHE_ECDSA`, the peer's checked by [`PeerCheck`]).
//! Sans-IO like the client that owns it: datagrams, plaintext and our clock go in; datagrams,
//! plaintext, a deadline and the handshake's outcome come out.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dimpl::crypto::{CryptoProvider, Dtls12CipherSuite, SupportedDtls12CipherSuite};
use dimpl::{Config, Dtls, DtlsCertificate, Output, PskResolver};

use crate::clock::Instant;
use crate::security::Psk;
use crate::security::alert::alert_name;
use crate::security::x509::{CertProblem, PeerVerifier};

/// Handshake pacing (RFC 6347 §4.2.4 timer), shared by a population's clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsParams {
    /// First retransmission of a flight; doubled after each (dimpl jitters it by ±25%).
    pub flight_start_rto: Duration,
    pub flight_retries: usize,
    /// The whole handshake gives up after this.
    pub handshake_timeout: Duration,
}

impl Default for DtlsParams {
    /// dimpl's own defaults: an unanswered flight gives up after ~31 s.
    fn default() -> Self {
        DtlsParams {
            flight_start_rto: Duration::from_secs(1),
            flight_retries: 4,
            handshake_timeout: Duration::from_secs(40),
        }
    }
}

/// Why a handshake failed or an open session was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The peer sent this fatal alert (RFC 5246 §7.2 description).
    Alert(u8),
    /// No answer within the retransmissions or the handshake timeout.
    Timeout,
    /// The peer closed the session (`close_notify`).
    Closed,
    /// Anything else dimpl gave up on (a malformed or unexpected handshake message).
    Protocol,
    /// We refused the peer's certificate.
    Certificate(CertProblem),
    /// We had no certificate to present (none given for this endpoint, or issuing failed).
    NoCertificate,
}

impl Failure {
    /// A short stable name for reports: the alert's RFC name, `timeout`, `closed`, `protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Alert(code) => alert_name(code),
            Failure::Timeout => "timeout",
            Failure::Closed => "closed",
            Failure::Protocol => "protocol",
            Failure::Certificate(problem) => problem.name(),
            Failure::NoCertificate => "no_certificate",
        }
    }

    fn from_error(error: &dimpl::Error) -> Failure {
        match error {
            dimpl::Error::SecurityError(dimpl::SecurityError::FatalAlert { description }) => {
                Failure::Alert(*description)
            }
            dimpl::Error::Timeout(_) => Failure::Timeout,
            dimpl::Error::ConnectionClosed => Failure::Closed,
            _ => Failure::Protocol,
        }
    }
}

/// Hands dimpl the client's own key (the client side only ever asks for its own identity).
struct OwnKey(Vec<u8>);

impl PskResolver for OwnKey {
    fn resolve(&self, _identity: &[u8]) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }
}

/// How a DTLS server finds a client's key from the PSK identity it sent: a map built from the
/// fleet's credentials, one key for everyone, or any lookup. Debug never shows a key.
#[derive(Clone)]
pub struct ServerKeys(Arc<KeyLookup>);

/// Identity -> key.
type KeyLookup = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

impl ServerKeys {
    pub fn from_fn(lookup: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        ServerKeys(Arc::new(lookup))
    }

    /// Identity -> key, exactly (an unknown identity gets no key, and its handshake fails).
    pub fn from_map(keys: HashMap<Vec<u8>, Vec<u8>>) -> Self {
        ServerKeys::from_fn(move |identity| keys.get(identity).cloned())
    }

    /// One key for every identity (`serve --psk-key`).
    pub fn shared(key: Vec<u8>) -> Self {
        ServerKeys::from_fn(move |_| Some(key.clone()))
    }

    pub fn key(&self, identity: &[u8]) -> Option<Vec<u8>> {
        (self.0)(identity)
    }
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeys(<hidden>)")
    }
}

/// dimpl wants an unwind-safe resolver: a lookup only reads, so a panic in it leaves nothing
/// half-updated behind.
struct Lookup(std::panic::AssertUnwindSafe<ServerKeys>);

impl PskResolver for Lookup {
    fn resolve(&self, identity: &[u8]) -> Option<Vec<u8>> {
        self.0.key(identity)
    }
}

/// The dimpl configuration every server-side session shares. Unseeded: server randoms and
/// cookie secrets come from the OS, as each session needs its own.
pub fn server_config(keys: &ServerKeys, params: &DtlsParams) -> Arc<Config> {
    let lookup = Lookup(std::panic::AssertUnwindSafe(keys.clone()));
    let config = Config::builder()
        .with_crypto_provider(psk_provider().clone())
        .with_psk_server(None, Arc::new(lookup))
        .dtls12_cipher_suites(&[Dtls12CipherSuite::PSK_AES128_CCM_8])
        .dtls13_cipher_suites(&[])
        .flight_start_rto(params.flight_start_rto)
        .flight_retries(params.flight_retries)
        .handshake_timeout(params.handshake_timeout)
        .build()
        .expect("a PSK server configuration with the CCM-8 suite is valid");
    Arc::new(config)
}

/// A dimpl configuration for `ECDHE_ECDSA` suites. Unseeded: randoms come from the OS (a seeded
/// one per client would rebuild, and self-test, the configuration per handshake). A server
/// requires the client's certificate (mutual authentication, as `LwM2M` does).
pub fn certificate_config(params: &DtlsParams, server: bool) -> Arc<Config> {
    let config = Config::builder()
        .with_crypto_provider(certificate_provider().clone())
        .dtls12_cipher_suites(CERTIFICATE_SUITES)
        .dtls13_cipher_suites(&[])
        .require_client_certificate(server)
        .flight_start_rto(params.flight_start_rto)
        .flight_retries(params.flight_retries)
        .handshake_timeout(params.handshake_timeout)
        .build()
        .expect("an ECDHE_ECDSA configuration with dimpl's own provider is valid");
    Arc::new(config)
}

/// What dimpl offers for certificates, AES-128-GCM first. `LwM2M`'s mandatory
/// `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8` is not among them (dimpl has no ECDHE CCM suite).
const CERTIFICATE_SUITES: &[Dtls12CipherSuite] = &[
    Dtls12CipherSuite::ECDHE_ECDSA_AES128_GCM_SHA256,
    Dtls12CipherSuite::ECDHE_ECDSA_AES256_GCM_SHA384,
    Dtls12CipherSuite::ECDHE_ECDSA_CHACHA20_POLY1305_SHA256,
];

/// dimpl's rust-crypto provider without its PSK suite (whose self-test is not needed here).
fn certificate_provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| provider_with(CERTIFICATE_SUITES))
}

/// dimpl's rust-crypto provider with only `suites` (`Config::build` self-tests every suite).
fn provider_with(suites: &[Dtls12CipherSuite]) -> CryptoProvider {
    let full = dimpl::crypto::rust_crypto::default_provider();
    let kept: Vec<&'static dyn SupportedDtls12CipherSuite> = full
        .cipher_suites
        .iter()
        .copied()
        .filter(|cs| suites.contains(&cs.suite()))
        .collect();
    CryptoProvider {
        cipher_suites: kept.leak(),
        ..full
    }
}

/// The certificate-mode client configuration for this pacing, built once per process:
/// `Config::build` self-tests ECDH and ECDSA (~100 ms unoptimised), too slow per handshake.
pub fn certificate_client_config(params: &DtlsParams) -> Arc<Config> {
    static CONFIGS: Mutex<Vec<(DtlsParams, Arc<Config>)>> = Mutex::new(Vec::new());
    let mut configs = CONFIGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, config)) = configs.iter().find(|(p, _)| p == params) {
        return Arc::clone(config);
    }
    let config = certificate_config(params, false);
    configs.push((params.clone(), Arc::clone(&config)));
    config
}

/// Whether a datagram starts with a `ClientHello` record (RFC 6347 §4.1: content type 22,
/// epoch 0; §4.2.2: handshake type 1 after the 13-byte record header): what opens a session.
pub fn is_client_hello(datagram: &[u8]) -> bool {
    datagram.len() > 13 && datagram[0] == 22 && datagram[3..5] == [0, 0] && datagram[13] == 1
}

/// Whether a datagram starts with a `HelloVerifyRequest` record (RFC 6347 §4.2.1: handshake
/// type 3 in an epoch-0 handshake record).
pub fn is_hello_verify_request(datagram: &[u8]) -> bool {
    datagram.len() > 13 && datagram[0] == 22 && datagram[3..5] == [0, 0] && datagram[13] == 3
}

/// The dimpl configuration of one client's next handshake. `seed` makes the client random and
/// the retransmission jitter reproducible under a simulated clock; PSK keys still differ per
/// session (they mix in the server's random), and a simulated device guards nothing.
pub fn client_config(psk: &Psk, params: &DtlsParams, seed: u64) -> Arc<Config> {
    let config = Config::builder()
        .with_crypto_provider(psk_provider().clone())
        .with_psk_client(psk.identity.clone(), Arc::new(OwnKey(psk.key.clone())))
        .dtls12_cipher_suites(&[Dtls12CipherSuite::PSK_AES128_CCM_8])
        .dtls13_cipher_suites(&[])
        .flight_start_rto(params.flight_start_rto)
        .flight_retries(params.flight_retries)
        .handshake_timeout(params.handshake_timeout)
        .dangerously_set_rng_seed(seed)
        .build()
        // Only timing values can fail validation, and `DtlsParams` holds sane ones (tested).
        .expect("a PSK client configuration with the CCM-8 suite is valid");
    Arc::new(config)
}

/// dimpl's rust-crypto provider cut down to what PSK with CCM-8 uses. `Config::build` checks
/// its provider each time (an ECDH exchange per group, an ECDSA verification per suite: ~100 ms
/// per client in a debug build); with no groups and one PSK suite only hashes, HMAC and AEAD
/// self-tests remain, and a client builds its configuration per handshake cheaply.
fn psk_provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| CryptoProvider {
        kx_groups: &[],
        ..provider_with(&[Dtls12CipherSuite::PSK_AES128_CCM_8])
    })
}

/// Our clock (µs since the driver's origin) on dimpl's `std::time::Instant`: a fixed base plus
/// the offset, so only offsets matter and a simulated clock drives dimpl too.
fn std_instant(at: Instant) -> std::time::Instant {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now) + Duration::from_micros(at.as_micros())
}

/// Rounded up: a deadline a few ns past a µs would otherwise be woken early, forever.
fn our_instant(at: std::time::Instant) -> Instant {
    let base = std_instant(Instant::ZERO);
    let micros = at.saturating_duration_since(base).as_nanos().div_ceil(1000);
    Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

/// Deadlines further out than this are dimpl's way of saying "nothing due".
const IDLE: Duration = Duration::from_secs(86_400);

/// Largest record dimpl emits (its MTU is 1150) with room to spare.
const RECORD_BUFFER: usize = 2048;

/// How a session checks the peer's certificate: against what, and the Unix time (seconds) of
/// our clock's zero (validity is wall-clock time; the session only sees our clock).
#[derive(Clone, Debug)]
pub struct PeerCheck {
    pub verifier: Arc<PeerVerifier>,
    pub unix_origin: i64,
}

/// A DTLS session, client or server side, from the first `ClientHello` to its end.
pub struct Session {
    dtls: Dtls,
    started: Instant,
    /// The clock as last handed in.
    now: Instant,
    connected: bool,
    /// Closed by us or by the peer.
    closed: bool,
    deadline: Option<Instant>,
    /// Records to send to the server.
    transmits: VecDeque<Vec<u8>>,
    /// Plaintext datagrams received.
    received: VecDeque<Vec<u8>>,
    /// Set by the first `Connected` output, taken by [`Session::take_connected`].
    just_connected: bool,
    /// Certificate mode: how the peer's certificate is checked.
    peer_check: Option<Box<PeerCheck>>,
    /// The next sequence number of epoch 0 (unencrypted) records: an alert refusing the peer's
    /// certificate goes out with it, as dimpl cannot send one for us.
    next_plain_sequence: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("started", &self.started)
            .field("connected", &self.connected)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a handshake: the `ClientHello` is ready in [`Session::poll_transmit`].
    pub fn connect(config: Arc<Config>, now: Instant) -> Result<Session, Failure> {
        let mut dtls = Dtls::new_12_psk(config, std_instant(now));
        dtls.set_active(true);
        Session::new(dtls, None, now)
    }

    /// The server side of a handshake, waiting for the peer's `ClientHello`
    /// (`config` from [`server_config`]).
    pub fn accept(config: Arc<Config>, now: Instant) -> Result<Session, Failure> {
        Session::new(Dtls::new_12_psk(config, std_instant(now)), None, now)
    }

    /// Starts a certificate handshake presenting `certificate`; the server's is checked by
    /// `check` (`config` from [`certificate_config`]).
    pub fn connect_with_certificate(
        config: Arc<Config>,
        certificate: DtlsCertificate,
        check: PeerCheck,
        now: Instant,
    ) -> Result<Session, Failure> {
        let mut dtls = Dtls::new_12(config, certificate, std_instant(now));
        dtls.set_active(true);
        Session::new(dtls, Some(Box::new(check)), now)
    }

    /// The server side of a certificate handshake; the client's certificate is checked by
    /// `check`.
    pub fn accept_with_certificate(
        config: Arc<Config>,
        certificate: DtlsCertificate,
        check: PeerCheck,
        now: Instant,
    ) -> Result<Session, Failure> {
        let dtls = Dtls::new_12(config, certificate, std_instant(now));
        Session::new(dtls, Some(Box::new(check)), now)
    }

    fn new(
        dtls: Dtls,
        peer_check: Option<Box<PeerCheck>>,
        now: Instant,
    ) -> Result<Session, Failure> {
        let mut session = Session {
            dtls,
            started: now,
            now,
            connected: false,
            closed: false,
            deadline: None,
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            just_connected: false,
            peer_check,
            next_plain_sequence: 0,
        };
        session.handle_timeout(now)?;
        Ok(session)
    }

    /// When the handshake began.
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

    /// A datagram from the server. Garbage and replays are dropped inside; an error means
    /// the session is over.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Failure> {
        // dimpl reads its clock from the last handle_timeout: bring it to now first.
        self.advance(now)?;
        self.dtls
            .handle_packet(bytes)
            .map_err(|e| Failure::from_error(&e))?;
        self.drain()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Failure> {
        self.advance(now)?;
        self.drain()
    }

    /// Encrypts one datagram for the server (only once connected).
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), Failure> {
        self.dtls
            .send_application_data(plaintext)
            .map_err(|e| Failure::from_error(&e))?;
        self.drain()
    }

    /// Sends `close_notify` (when connected); the session is unusable afterwards.
    pub fn close(&mut self) {
        if self.connected && self.dtls.close().is_ok() {
            let _ = self.drain();
        }
        self.connected = false;
        self.closed = true;
        self.deadline = None;
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    pub fn poll_received(&mut self) -> Option<Vec<u8>> {
        self.received.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Heap bytes held outside dimpl (its own state is measured by the bench).
    pub fn queued_bytes(&self) -> usize {
        self.transmits.iter().map(Vec::capacity).sum::<usize>()
            + self.received.iter().map(Vec::capacity).sum::<usize>()
    }

    fn advance(&mut self, now: Instant) -> Result<(), Failure> {
        self.now = self.now.max(now);
        self.dtls
            .handle_timeout(std_instant(self.now))
            .map_err(|e| Failure::from_error(&e))
    }

    /// Takes everything dimpl has to say, up to its next deadline (its API requires it).
    fn drain(&mut self) -> Result<(), Failure> {
        let mut buf = [0u8; RECORD_BUFFER];
        loop {
            match self.dtls.poll_output(&mut buf) {
                Output::Packet(p) => {
                    self.note_plain_sequence(p);
                    self.transmits.push_back(p.to_vec());
                }
                Output::Timeout(at) => {
                    // With nothing due dimpl answers "in ten years": no deadline at all.
                    let at = our_instant(at);
                    self.deadline = (at.saturating_since(self.now) < IDLE).then_some(at);
                    break;
                }
                Output::Connected => {
                    self.connected = true;
                    self.just_connected = true;
                }
                Output::ApplicationData(data) => self.received.push_back(data.to_vec()),
                Output::CloseNotify => {
                    self.connected = false;
                    self.closed = true;
                    return Err(Failure::Closed);
                }
                // Records never outgrow the buffer (dimpl's MTU is 1150); if one did, polling
                // again would return the same answer forever.
                Output::BufferTooSmall { .. } => return Err(Failure::Protocol),
                Output::PeerCert(der) => {
                    if let Some(check) = &self.peer_check {
                        let unix = check.unix_origin + (self.now.as_micros() / 1_000_000) as i64;
                        if let Err(problem) = check.verifier.verify(der, unix) {
                            self.refuse(problem);
                            return Err(Failure::Certificate(problem));
                        }
                    }
                }
                // No SRTP keying material here.
                _ => {}
            }
        }
        Ok(())
    }
}

impl Session {
    /// Remembers the highest epoch 0 sequence number in an outgoing datagram (RFC 6347 §4.1:
    /// 13-byte record headers, epoch at 3..5, sequence at 5..11, length at 11..13).
    fn note_plain_sequence(&mut self, datagram: &[u8]) {
        let mut rest = datagram;
        while rest.len() >= 13 {
            let length = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
            if rest[3..5] == [0, 0] {
                let mut sequence = [0u8; 8];
                sequence[2..].copy_from_slice(&rest[5..11]);
                self.next_plain_sequence = self
                    .next_plain_sequence
                    .max(u64::from_be_bytes(sequence) + 1);
            }
            rest = rest.get(13 + length..).unwrap_or(&[]);
        }
    }

    /// Refuses the peer's certificate: what dimpl queued after it is dropped, and a fatal alert
    /// in clear (the handshake has no keys the peer would accept yet) says why.
    fn refuse(&mut self, problem: CertProblem) {
        self.transmits.clear();
        let mut alert = vec![21, 0xfe, 0xfd, 0, 0];
        alert.extend_from_slice(&self.next_plain_sequence.to_be_bytes()[2..]);
        alert.extend_from_slice(&[0, 2, 2, problem.alert()]);
        self.transmits.push_back(alert);
        // A failed handshake, not a closed session: the owner drops it and counts it so.
        self.deadline = None;
    }
}

#[cfg(feature = "openssl")]
mod openssl_psk;
#[cfg(feature = "openssl")]
pub use openssl_psk::OpensslSession;

#[cfg(test)]
mod tests;
