//! Fuzz target bodies: one function per decoder or state machine that takes bytes from the
//! network. The libFuzzer binary (`fuzz/`) and the corpus replay test (`tests/fuzz_corpora.rs`)
//! both call these, so a committed input replays exactly as it was fuzzed. Not API: hidden
//! from the docs and free to change.
//!
//! A body panics only on a bug: malformed input must come back as an error or be dropped.
//!
//! Targets fed a sequence of datagrams (or stream reads) cut their input into [`Chunk`]s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, ResponseType};

use crate::client::{Client, ClientConfig, ClientState};
use crate::clock::Instant;
use crate::coap::tcp::{Connection, TcpEvent, frame, signal};
use crate::coap::{block, message};
use crate::content::{self, ContentFormat, link};
use crate::model::{Device, Path, TemplateSet, Untyped, Value};
use crate::security::Psk;
use crate::security::dtls::{self, DtlsParams, ServerKeys, Session};
use crate::server::{
    BootstrapServer, BootstrapServerConfig, DtlsServerConfig, ObjectLinks, Provisioning,
    SecureServer, Server, ServerConfig,
};

/// A fuzz target: its name (the corpus directory `fuzz/corpus/NAME`) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz --list` prints them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "coap_message",
        run: coap_message,
    },
    Target {
        name: "coap_tcp",
        run: coap_tcp,
    },
    Target {
        name: "tlv",
        run: tlv,
    },
    Target {
        name: "senml_json",
        run: senml_json,
    },
    Target {
        name: "senml_cbor",
        run: senml_cbor,
    },
    Target {
        name: "oma_json",
        run: oma_json,
    },
    Target {
        name: "lwm2m_cbor",
        run: lwm2m_cbor,
    },
    Target {
        name: "link_format",
        run: link_format,
    },
    Target {
        name: "client",
        run: client,
    },
    Target {
        name: "server",
        run: server,
    },
    Target {
        name: "bootstrap_server",
        run: bootstrap_server,
    },
    Target {
        name: "dtls_client",
        run: dtls_client,
    },
    Target {
        name: "dtls_server",
        run: dtls_server,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The fuzzed client's LWM2M server, and the client the fuzzed servers see first.
pub const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5683);
/// Another port on the peer's host (some servers send requests from an ephemeral port).
pub const PEER_OTHER_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40001);
/// A host that is not the peer.
pub const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 9, 9, 9)), 5683);

/// One datagram of a multi-datagram input, encoded as a selector byte, a big-endian `u16`
/// length and that many bytes (the last chunk takes what is left if the length overruns).
/// The selector's low two bits pick the sender (0 and 3: [`PEER`], 1: [`PEER_OTHER_PORT`],
/// 2: [`STRANGER`]); its upper six bits are the seconds the clock advances before delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub from: SocketAddr,
    pub advance: Duration,
    pub bytes: &'a [u8],
}

/// Cuts `data` into [`Chunk`]s.
pub fn chunks(mut data: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    while let [selector, rest @ ..] = data {
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let len = len.min(rest.len());
        out.push(Chunk {
            from: match selector & 3 {
                1 => PEER_OTHER_PORT,
                2 => STRANGER,
                _ => PEER,
            },
            advance: Duration::from_secs(u64::from(selector >> 2)),
            bytes: &rest[..len],
        });
        data = &rest[len..];
    }
    out
}

/// Encodes chunks as [`chunks`] reads them (for seed inputs): `(selector, bytes)` pairs.
pub fn encode_chunks(parts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (selector, bytes) in parts {
        out.push(*selector);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A CoAP message over UDP, and every option accessor the client and server use on it.
pub fn coap_message(data: &[u8]) {
    let Ok(packet) = Packet::from_bytes(data) else {
        return;
    };
    let _ = message::uri_path(&packet);
    let _ = message::uri_query(&packet);
    let _ = message::query_pairs(&packet);
    let _ = message::location_path(&packet);
    let _ = message::content_format(&packet);
    let _ = message::accept(&packet);
    let _ = message::observe(&packet);
    let _ = block::block1(&packet);
    let _ = block::block2(&packet);
    let _ = block::size1(&packet);
    let _ = block::size2(&packet);
    if let Ok(Some(format)) = message::content_format(&packet)
        && let Some(format) = ContentFormat::from_code(format)
    {
        decode_everywhere(format, &packet.payload);
    }
    // What we parsed we can send again, and it reads back the same (an empty message, 0.00,
    // is only a header: coap-lite drops the rest, and the endpoint refuses it as malformed).
    if packet.header.code != MessageClass::Empty
        && let Ok(bytes) = packet.to_bytes()
    {
        let again = Packet::from_bytes(&bytes).expect("a re-encoded message parses");
        assert_eq!(
            again.payload, packet.payload,
            "payload changed in a round trip"
        );
        assert_eq!(
            again.get_token(),
            packet.get_token(),
            "token changed in a round trip"
        );
    }
}

/// CoAP over TCP: one connection fed the input's chunks as reads (framing, CSM, signals),
/// and each input parsed as one frame.
pub fn coap_tcp(data: &[u8]) {
    if let Ok(message) = frame::parse(data) {
        let _ = frame::to_packet(&message);
        let _ = frame::options(message.body);
        if signal::is_signal(message.code) {
            let _ = signal::parse(&message);
        }
    }
    let mut connection = Connection::default();
    for chunk in chunks(data) {
        connection.receive(chunk.bytes);
        while let Some(event) = connection.poll_event() {
            if let TcpEvent::Message(frame) = event {
                let message = frame::parse(&frame).expect("the decoder hands out whole frames");
                let _ = frame::to_packet(&message);
            }
        }
    }
    assert!(
        connection.heap_bytes() <= 4 * crate::coap::tcp::OUR_MAX_MESSAGE_SIZE as usize + 4096,
        "a connection buffers {} bytes",
        connection.heap_bytes()
    );
}

/// The device the content and client targets work on (the shipped environment sensor).
fn device() -> Device {
    static TEMPLATES: OnceLock<TemplateSet> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/object-templates");
        TemplateSet::load_dir(std::path::Path::new(dir)).expect("the shipped templates load")
    });
    let template = templates
        .device("environment-sensor")
        .expect("the shipped environment-sensor template");
    Device::new(template, 1, 1_700_000_000)
}

/// Request paths a payload is decoded at; the first input byte picks one.
const BASES: &[&str] = &[
    "/", "/3", "/3/0", "/3/0/0", "/3/0/6", "/3303/0", "/1/0", "/0",
];

/// Decodes `payload` as `format` at the path the first byte picks, then encodes what decoded
/// and decodes that again: it must come back the same.
fn decode_at(format: ContentFormat, data: &[u8]) {
    let Some((pick, payload)) = data.split_first() else {
        return;
    };
    let base: Path = BASES[usize::from(*pick) % BASES.len()]
        .parse()
        .expect("a valid path");
    let device = device();
    let Ok(records) = content::decode(format, &base, payload, &device) else {
        return;
    };
    // Resources sent to an object path come back without their instance id (the caller picks
    // one): as they are, they cannot be sent again.
    if records
        .iter()
        .any(|r| r.path.instance_id() == Some(content::UNSPECIFIED_INSTANCE))
    {
        return;
    }
    let Ok(encoded) = content::encode(format, &base, &records, &device) else {
        return;
    };
    let again = content::decode(format, &base, &encoded, &device)
        .unwrap_or_else(|e| panic!("re-encoded {format:?} does not decode: {e}"));
    assert_eq!(
        again.len(),
        records.len(),
        "{format:?} round trip lost records"
    );
}

/// Decodes `payload` at every base path (for a message whose payload came along).
fn decode_everywhere(format: ContentFormat, payload: &[u8]) {
    let device = device();
    for base in BASES {
        let base: Path = base.parse().expect("a valid path");
        let _ = content::decode(format, &base, payload, &device);
    }
}

pub fn tlv(data: &[u8]) {
    decode_at(ContentFormat::Tlv, data);
}

pub fn senml_json(data: &[u8]) {
    decode_at(ContentFormat::SenmlJson, data);
    let _ = content::decode_names(ContentFormat::SenmlJson, data);
}

pub fn senml_cbor(data: &[u8]) {
    decode_at(ContentFormat::SenmlCbor, data);
    let _ = content::decode_names(ContentFormat::SenmlCbor, data);
}

pub fn oma_json(data: &[u8]) {
    decode_at(ContentFormat::OmaJson, data);
}

/// LWM2M CBOR at a base path with the device's schema (round trip as the other formats), then
/// the same payload without a schema (each value typed by its CBOR item), which must survive
/// an encode and decode unchanged up to record order, and as the paths of a composite request.
pub fn lwm2m_cbor(data: &[u8]) {
    decode_at(ContentFormat::LwM2mCbor, data);
    let payload = data.get(1..).unwrap_or_default();
    let _ = content::decode_names(ContentFormat::LwM2mCbor, payload);
    let Ok(mut records) = content::decode_lwm2m_cbor(payload) else {
        return;
    };
    // Not representable (a value both at a resource and at its instances, a path twice): the
    // encoder refuses it rather than writing something else.
    let Ok(encoded) = content::encode(ContentFormat::LwM2mCbor, &Path::ROOT, &records, &Untyped)
    else {
        return;
    };
    let mut again = content::decode_lwm2m_cbor(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded LWM2M CBOR does not decode: {e}"));
    // The encoder groups records by object and instance: order may change, content may not.
    records.sort_by_key(|r| r.path);
    again.sort_by_key(|r| r.path);
    let same = records.len() == again.len()
        && records.iter().zip(&again).all(|(a, b)| {
            a.path == b.path
                && (a.value == b.value
                    || matches!((&a.value, &b.value), (Value::Float(x), Value::Float(y)) if x.is_nan() && y.is_nan()))
        });
    assert!(
        same,
        "LWM2M CBOR round trip changed {records:?} into {again:?}"
    );
}

/// Link format as the client reads it (attributes) and as the server reads a Register's
/// object list.
pub fn link_format(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = link::parse_links(text);
    }
    let _ = ObjectLinks::parse(data);
}

/// Runs `handle_timeout` while a deadline is due; a deadline that stays due is a bug
/// (the event loop would spin).
/// Runs what is due at `now` (a deadline still due after 1000 calls is a bug), then drains.
fn settle(peer: &mut impl Peer, now: Instant) {
    for _ in 0..1000 {
        match peer.poll_timeout() {
            Some(at) if at <= now => peer.handle_timeout(now),
            _ => {
                while peer.poll_transmit().is_some() {}
                peer.drain_events();
                return;
            }
        }
    }
    panic!("a deadline stays due after 1000 handle_timeout calls");
}

/// Feeds the input's datagrams to `peer`, the clock moving between them.
fn feed(peer: &mut impl Peer, data: &[u8]) {
    let mut now = Instant::ZERO;
    for chunk in chunks(data) {
        now += chunk.advance;
        settle(peer, now);
        peer.handle_datagram(now, chunk.from, chunk.bytes);
        settle(peer, now);
    }
}

/// A client registered with [`PEER`] through the library: its Register answered 2.01.
fn registered_client(now: Instant) -> Client {
    let config = ClientConfig {
        server: PEER,
        lifetime: Duration::from_secs(300),
        update_jitter: 0.0,
        ..ClientConfig::default()
    };
    let mut client = Client::new(Arc::new(config), "fuzz-0001", device(), 1);
    client.start(now);
    let (to, register) = client.poll_transmit().expect("the client sends a Register");
    assert_eq!(to, PEER);
    let register = Packet::from_bytes(&register).expect("the client's Register parses");
    let mut created = Packet::new();
    created.header.set_type(MessageType::Acknowledgement);
    created.header.message_id = register.header.message_id;
    created.header.code = MessageClass::Response(ResponseType::Created);
    created.set_token(register.get_token().to_vec());
    created.add_option(CoapOption::LocationPath, b"rd".to_vec());
    created.add_option(CoapOption::LocationPath, b"fz".to_vec());
    let created = created.to_bytes().expect("a 2.01 encodes");
    client.handle_datagram(now, PEER, &created);
    assert_eq!(
        client.state(),
        ClientState::Registered,
        "the scripted Register"
    );
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
    client
}

/// A registered client fed the input's datagrams from the server, another port of its host
/// and a stranger, with the clock moving between them.
pub fn client(data: &[u8]) {
    feed(&mut registered_client(Instant::ZERO), data);
}

/// A server config that sends every kind of request to each registration.
fn busy_server_config() -> ServerConfig {
    let every = Duration::from_secs(20);
    ServerConfig {
        read: Some(("/3/0".parse().expect("a valid path"), every)),
        observe: Some(crate::server::ObserveLoad {
            path: "/3303/0/5700".parse().expect("a valid path"),
            pmin: Some(1),
            pmax: Some(30),
        }),
        discover: Some(("/3".parse().expect("a valid path"), every)),
        ..ServerConfig::default()
    }
}

/// The embedded LWM2M server fed the input's datagrams from three peers.
pub fn server(data: &[u8]) {
    let mut server = Server::new(busy_server_config(), 1);
    feed(&mut server, data);
}

/// The embedded bootstrap server (PSK provisioning) fed the input's datagrams.
pub fn bootstrap_server(data: &[u8]) {
    let provisioning = Provisioning {
        psk_master: Some(b"fuzz master".to_vec()),
        ..Provisioning::new("coaps://127.0.0.1:5684")
    };
    let mut server = BootstrapServer::new(BootstrapServerConfig::new(provisioning), 1);
    feed(&mut server, data);
}

/// The PSK the DTLS targets use.
fn psk() -> Psk {
    Psk {
        identity: b"fuzz-0001".to_vec(),
        key: b"0123456789abcdef".to_vec(),
    }
}

/// A client-side DTLS session, its `ClientHello` sent, fed the input's datagrams as records
/// from the server.
pub fn dtls_client(data: &[u8]) {
    let mut now = Instant::ZERO;
    let config = dtls::client_config(&psk(), &DtlsParams::default(), 1);
    let mut session = Session::connect(config, now).expect("a session starts");
    while session.poll_transmit().is_some() {}
    for chunk in chunks(data) {
        now += chunk.advance;
        if session.poll_timeout().is_some_and(|at| at <= now)
            && session.handle_timeout(now).is_err()
        {
            return;
        }
        if session.handle_datagram(now, chunk.bytes).is_err() {
            return;
        }
        while session.poll_transmit().is_some() {}
        while session.poll_received().is_some() {}
    }
}

/// The embedded server behind its DTLS layer (PSK) fed the input's datagrams as records from
/// three peers.
pub fn dtls_server(data: &[u8]) {
    let mut server = SecureServer::new(
        Server::new(ServerConfig::default(), 1),
        &dtls_server_config(),
    );
    feed(&mut server, data);
}

/// Inputs longer than this are not fuzzed (`scripts/fuzz` passes it as `-max_len`).
pub const MAX_LEN: usize = 2048;

/// Seed inputs for every target, made by the library itself: the datagrams of real
/// conversations (a client registering, answering reads, observes and discovers, updating and
/// de-registering; a bootstrap; a DTLS handshake) and the payloads a device encodes in each
/// format. `(target name, input)`; none is longer than [`MAX_LEN`].
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let plain = converse(plain_client(), &mut Server::new(busy_server_config(), 1));
    let bootstrap = converse(bootstrap_client(), &mut bootstrap_peer());
    let secure = converse(
        plain_client().with_psk(psk()),
        &mut SecureServer::new(Server::new(busy_server_config(), 1), &dtls_server_config()),
    );
    for (target, datagrams) in [
        ("client", &plain.to_client),
        ("client", &bootstrap.to_client),
        ("server", &plain.to_server),
        ("bootstrap_server", &bootstrap.to_server),
        ("dtls_client", &secure.to_client),
        ("dtls_server", &secure.to_server),
    ] {
        seeds.extend(windows(datagrams).into_iter().map(|input| (target, input)));
    }
    let datagrams = || {
        plain
            .to_client
            .iter()
            .chain(&plain.to_server)
            .chain(&bootstrap.to_client)
            .chain(&bootstrap.to_server)
    };
    for (_, datagram) in datagrams() {
        seeds.push(("coap_message", datagram.clone()));
        let Ok(packet) = Packet::from_bytes(datagram) else {
            continue;
        };
        let format = message::content_format(&packet).ok().flatten();
        if format == Some(ContentFormat::LinkFormat.code()) || packet.payload.starts_with(b"<") {
            seeds.push(("link_format", packet.payload.clone()));
        }
    }
    // The same messages framed for TCP, after the CSM that opens a connection.
    let mut stream = vec![(0, Connection::default().csm())];
    stream.extend(datagrams().filter_map(|(_, d)| {
        let packet = Packet::from_bytes(d).ok()?;
        Some((0, frame::encode_packet(&packet)))
    }));
    seeds.extend(
        windows(&stream)
            .into_iter()
            .map(|input| ("coap_tcp", input)),
    );
    let mut device = device();
    for (pick, base) in BASES.iter().enumerate() {
        let base: Path = base.parse().expect("a valid path");
        let records = match device.read(&base, Instant::ZERO) {
            Ok(records) if !records.is_empty() => records,
            _ => continue,
        };
        for (target, format) in [
            ("tlv", ContentFormat::Tlv),
            ("senml_json", ContentFormat::SenmlJson),
            ("senml_cbor", ContentFormat::SenmlCbor),
            ("oma_json", ContentFormat::OmaJson),
            ("lwm2m_cbor", ContentFormat::LwM2mCbor),
        ] {
            if let Ok(payload) = content::encode(format, &base, &records, &device) {
                let mut input = vec![pick as u8];
                input.extend(payload);
                seeds.push((target, input));
            }
        }
    }
    seeds.extend(LWM2M_CBOR_SEEDS.iter().map(|s| ("lwm2m_cbor", s.to_vec())));
    seeds.retain(|(_, input)| input.len() <= MAX_LEN);
    seeds
}

/// Hand-written LWM2M CBOR the encoder never writes, behind a base-path byte (0: the root):
/// nested maps, indefinite lengths, a Time in tag 1, a tag 4 decimal fraction, a composite
/// request's null names, and an unsigned integer above `i64::MAX`.
const LWM2M_CBOR_SEEDS: &[&[u8]] = &[
    // {3: {0: {0: "Ac", 9: 87}}}
    b"\x00\xa1\x03\xa1\x00\xa2\x00\x62Ac\x09\x18\x57",
    // {_ [3, 0]: {_ 13: 1(1700000000)}} in indefinite-length maps
    b"\x00\xbf\x82\x03\x00\xbf\x0d\xc1\x1a\x65\x53\xf1\x00\xff\xff",
    // {[3303, 0, 5700]: 4([-1, 215])}: 21.5
    b"\x00\xa1\x83\x19\x0c\xe7\x00\x19\x16\x44\xc4\x82\x20\x18\xd7",
    // {[3, 0]: {0: null, 9: null}, [1, 0, 1]: null}: Read-Composite names
    b"\x00\xa2\x82\x03\x00\xa2\x00\xf6\x09\xf6\x83\x01\x00\x01\xf6",
    // {[3, 0, 6]: {0: 1, 1: 5}, [5, 0, 3]: 18446744073709551615}
    b"\x00\xa2\x83\x03\x00\x06\xa2\x00\x01\x01\x05\x83\x05\x00\x03\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
];

/// Consecutive runs of `datagrams` encoded as [`chunks`], each at most [`MAX_LEN`] bytes.
fn windows(datagrams: &[(u8, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for (selector, bytes) in datagrams {
        let encoded = encode_chunks(&[(*selector, bytes)]);
        if !current.is_empty() && current.len() + encoded.len() > MAX_LEN {
            inputs.push(std::mem::take(&mut current));
        }
        current.extend(encoded);
    }
    if !current.is_empty() {
        inputs.push(current);
    }
    inputs
}

fn plain_client() -> Client {
    let config = ClientConfig {
        server: PEER,
        lifetime: Duration::from_secs(60),
        update_jitter: 0.0,
        ..ClientConfig::default()
    };
    Client::new(Arc::new(config), "fuzz-0001", device(), 1)
}

fn bootstrap_client() -> Client {
    let config = ClientConfig {
        server: PEER,
        bootstrap: Some(crate::client::ClientBootstrapConfig::default()),
        ..ClientConfig::default()
    };
    Client::new(Arc::new(config), "fuzz-0001", device(), 1)
}

fn bootstrap_peer() -> BootstrapServer {
    let provisioning = Provisioning {
        psk_master: Some(b"fuzz master".to_vec()),
        // The LWM2M server the client is sent to is the bootstrap server's own address, so
        // the recording stays between two peers.
        ..Provisioning::new("coap://127.0.0.1:5683")
    };
    BootstrapServer::new(BootstrapServerConfig::new(provisioning), 1)
}

fn dtls_server_config() -> DtlsServerConfig {
    let psk = psk();
    DtlsServerConfig::new(ServerKeys::from_map(
        [(psk.identity, psk.key)].into_iter().collect(),
    ))
}

/// The sans-IO surface the client and servers share, for [`converse`] and [`feed`].
trait Peer {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)>;
    fn poll_timeout(&self) -> Option<Instant>;
    /// Discards what else it reports (a client's events).
    fn drain_events(&mut self) {}
}

macro_rules! peer {
    ($($t:ty),*) => {$(
        impl Peer for $t {
            fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
                <$t>::handle_datagram(self, now, from, bytes);
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now);
            }
            fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
                <$t>::poll_transmit(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
        }
    )*};
}
peer!(Server, BootstrapServer, SecureServer<Server>);

impl Peer for Client {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Client::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Client::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        Client::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Client::poll_timeout(self)
    }
    fn drain_events(&mut self) {
        while self.poll_event().is_some() {}
    }
}

/// What each side of a [`converse`] received, as [`chunks`] selectors and bytes: the selector
/// holds the seconds since that side's previous datagram (at most 63).
struct Conversation {
    to_client: Vec<(u8, Vec<u8>)>,
    to_server: Vec<(u8, Vec<u8>)>,
}

/// Runs `client` against `server` for 200 simulated seconds, then stops the client and lets
/// its De-register finish: both at [`PEER`] to each other, nothing lost.
fn converse(mut client: Client, server: &mut impl Peer) -> Conversation {
    let mut recorded = Conversation {
        to_client: Vec::new(),
        to_server: Vec::new(),
    };
    let (mut last_client, mut last_server) = (Instant::ZERO, Instant::ZERO);
    let selector = |last: &mut Instant, now: Instant| {
        let seconds = now.saturating_since(*last).as_secs().min(63) as u8;
        *last = now;
        seconds << 2
    };
    let mut now = Instant::ZERO;
    let stop_at = Instant::ZERO + Duration::from_secs(200);
    let end = stop_at + Duration::from_secs(100);
    let mut stopped = false;
    client.start(now);
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some((_, bytes)) = client.poll_transmit() {
            recorded
                .to_server
                .push((selector(&mut last_server, now), bytes.clone()));
            server.handle_datagram(now, PEER, &bytes);
            moved = true;
        }
        while let Some((_, bytes)) = server.poll_transmit() {
            recorded
                .to_client
                .push((selector(&mut last_client, now), bytes.clone()));
            client.handle_datagram(now, PEER, &bytes);
            moved = true;
        }
        while client.poll_event().is_some() {}
        if moved {
            continue;
        }
        if !stopped && now >= stop_at {
            stopped = true;
            client.stop(now);
            continue;
        }
        let next = [
            client.poll_timeout(),
            server.poll_timeout(),
            Some(if stopped { end } else { stop_at }),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("a deadline");
        if next >= end || (stopped && client.state() == ClientState::Stopped) {
            break;
        }
        now = now.max(next);
        client.handle_timeout(now);
        server.handle_timeout(now);
    }
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_back_what_encode_chunks_wrote() {
        let data = encode_chunks(&[(0, b"abc"), (1 | (5 << 2), b""), (2, b"xyz")]);
        let read = chunks(&data);
        assert_eq!(read.len(), 3);
        assert_eq!((read[0].from, read[0].bytes), (PEER, &b"abc"[..]));
        assert_eq!(read[1].from, PEER_OTHER_PORT);
        assert_eq!(read[1].advance, Duration::from_secs(5));
        assert_eq!((read[2].from, read[2].bytes), (STRANGER, &b"xyz"[..]));
    }

    #[test]
    fn a_chunk_whose_length_overruns_takes_the_rest() {
        let read = chunks(&[2, 0xff, 0xff, 1, 2]);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].bytes, &[1, 2]);
        assert_eq!(chunks(&[0, 7]).len(), 1, "a lone length byte");
    }

    #[test]
    fn the_fuzzed_client_is_registered_before_the_input() {
        let client = registered_client(Instant::ZERO);
        assert_eq!(client.state(), ClientState::Registered);
        assert_eq!(client.location(), Some("rd/fz"));
    }

    #[test]
    fn every_target_has_seeds_from_real_conversations() {
        let seeds = seeds();
        for t in TARGETS {
            let count = seeds.iter().filter(|(name, _)| *name == t.name).count();
            assert!(count > 0, "no seed for {}", t.name);
        }
        let register = seeds
            .iter()
            .filter(|(name, _)| *name == "coap_message")
            .filter_map(|(_, d)| Packet::from_bytes(d).ok())
            .any(|p| message::uri_path(&p).is_ok_and(|path| path == ["rd"]));
        assert!(register, "a Register among the datagrams");
        let bootstrap_request = seeds
            .iter()
            .filter(|(name, _)| *name == "coap_message")
            .filter_map(|(_, d)| Packet::from_bytes(d).ok())
            .any(|p| message::uri_path(&p).is_ok_and(|path| path == ["bs"]));
        assert!(bootstrap_request, "a Bootstrap-Request among the datagrams");
    }

    #[test]
    fn content_seeds_decode() {
        let device = device();
        for (name, input) in seeds() {
            let format = match name {
                "tlv" => ContentFormat::Tlv,
                "senml_json" => ContentFormat::SenmlJson,
                "senml_cbor" => ContentFormat::SenmlCbor,
                "oma_json" => ContentFormat::OmaJson,
                _ => continue,
            };
            let base: Path = BASES[usize::from(input[0])].parse().unwrap();
            let decoded = content::decode(format, &base, &input[1..], &device);
            assert!(
                decoded.as_ref().is_ok_and(|r| !r.is_empty()),
                "{name} seed at {base}: {decoded:?} from {:02x?}",
                &input[1..]
            );
        }
    }

    #[test]
    fn target_names_are_unique() {
        for (i, t) in TARGETS.iter().enumerate() {
            assert!(TARGETS[..i].iter().all(|o| o.name != t.name), "{}", t.name);
            assert!(target(t.name).is_some());
        }
    }
}
