//! The trace as a readable message log, one line per CoAP message (or DTLS/TLS record group):
//!
//! ```text
//!    0.012s demo-000001 -> 127.0.0.1:5683 CON 0.02 POST mid=41 token=5f0c2a9e /rd?ep=demo-000001&lt=300 cf=link-format | </1/0>,</3/0>
//!    0.013s demo-000001 <- 127.0.0.1:5683 ACK 2.01 Created mid=41 token=5f0c2a9e loc=/rd/0
//! ```
//!
//! Payloads are shown as text (text, link format), as records decoded with the fleet's object
//! definitions (TLV, `SenML`, OMA JSON, LWM2M CBOR: `/3/0/9=87`), or in hex; cut at
//! [`PAYLOAD_CHARS`] characters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use coap_lite::{MessageType, Packet};

use super::{Captured, Direction, Output, Schemas};
use crate::coap::tcp::{Decoder, frame};
use crate::content::{self, ContentFormat};
use crate::model::{Path, Record, Schema, Value};

/// Longest payload shown, in characters.
pub const PAYLOAD_CHARS: usize = 160;
/// Requests remembered to decode their answers by (per endpoint and token); beyond, forgotten.
const REMEMBERED_REQUESTS: usize = 4096;
/// Largest CoAP-over-TCP message followed in a stream.
const MAX_STREAM_MESSAGE: usize = 1 << 20;

pub(super) struct LogOutput<W: Write> {
    out: W,
    schemas: Schemas,
    /// The request path of each (endpoint, token), so an answer's payload decodes against it.
    requests: HashMap<(Arc<str>, Vec<u8>), Path>,
    /// TCP connections, by (client, peer).
    streams: HashMap<(SocketAddr, SocketAddr), Stream>,
}

struct Stream {
    /// TLS records rather than CoAP messages (decided by the client's first write).
    tls: bool,
    sent: Decoder,
    received: Decoder,
}

impl<W: Write> LogOutput<W> {
    pub(super) fn new(out: W, schemas: Schemas) -> Self {
        LogOutput {
            out,
            schemas,
            requests: HashMap::new(),
            streams: HashMap::new(),
        }
    }

    /// What `captured` holds, one description per message.
    fn describe(&mut self, captured: &Captured) -> Vec<String> {
        let bytes = &captured.bytes[..];
        if !captured.stream {
            if is_dtls(bytes) {
                return vec![describe_records("DTLS", bytes, 13)];
            }
            return vec![match Packet::from_bytes(bytes) {
                Ok(packet) => self.describe_packet(&captured.endpoint, &packet, false),
                Err(e) => format!("not CoAP ({e:?}): {}", hex_cut(bytes)),
            }];
        }
        let stream = self
            .streams
            .entry((captured.client, captured.peer))
            .or_insert_with(|| Stream {
                tls: bytes.len() > 2 && bytes[0] == 22 && bytes[1] == 3,
                sent: Decoder::new(MAX_STREAM_MESSAGE),
                received: Decoder::new(MAX_STREAM_MESSAGE),
            });
        if stream.tls {
            return vec![describe_records("TLS", bytes, 5)];
        }
        let decoder = match captured.direction {
            Direction::Sent => &mut stream.sent,
            Direction::Received => &mut stream.received,
        };
        decoder.push(bytes);
        let mut frames = Vec::new();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    frames.clear();
                    self.streams.remove(&(captured.client, captured.peer));
                    return vec![format!("TCP stream not CoAP ({e}): {}", hex_cut(bytes))];
                }
            }
        }
        frames
            .iter()
            .map(
                |bytes| match frame::parse(bytes).map(|m| (frame::to_packet(&m), m.code)) {
                    Ok((Ok(packet), _)) => self.describe_packet(&captured.endpoint, &packet, true),
                    Ok((Err(_), code)) => format!("TCP {} (options unreadable)", code_name(code)),
                    Err(e) => format!("TCP frame unreadable ({e})"),
                },
            )
            .collect()
    }

    fn describe_packet(&mut self, endpoint: &Arc<str>, packet: &Packet, tcp: bool) -> String {
        let code = u8::from(packet.header.code);
        let key = (Arc::clone(endpoint), packet.get_token().to_vec());
        let base = if is_request(code) {
            let path = uri_path(packet);
            if let Some(path) = path {
                if self.requests.len() >= REMEMBERED_REQUESTS {
                    self.requests.clear();
                }
                self.requests.insert(key, path);
            }
            path
        } else {
            self.requests.get(&key).copied()
        };
        describe_packet(packet, tcp, base, &self.schemas)
    }
}

impl<W: Write> Output for LogOutput<W> {
    fn write(&mut self, captured: &Captured, _wall: SystemTime) -> io::Result<()> {
        let since_start = Duration::from_micros(captured.at.as_micros());
        for what in self.describe(captured) {
            let line = line(
                since_start,
                &captured.endpoint,
                captured.direction,
                captured.peer,
                &what,
            );
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One log line: time since the start, endpoint, direction (`->` sent, `<-` received), peer.
pub fn line(
    since_start: Duration,
    endpoint: &str,
    direction: Direction,
    peer: SocketAddr,
    what: &str,
) -> String {
    let arrow = match direction {
        Direction::Sent => "->",
        Direction::Received => "<-",
    };
    format!(
        "{:>9.3}s {endpoint} {arrow} {peer} {what}",
        since_start.as_secs_f64()
    )
}

/// A CoAP message: type (or `TCP`), code, message ID, token, options, payload. `base` is the
/// path of the request it answers (or its own, for a request), to decode TLV against.
pub fn describe_packet(
    packet: &Packet,
    tcp: bool,
    base: Option<Path>,
    schema: &dyn Schema,
) -> String {
    let code = u8::from(packet.header.code);
    let mut text = String::new();
    if tcp {
        text.push_str("TCP ");
        text.push_str(&code_name(code));
    } else {
        let kind = match packet.header.get_type() {
            MessageType::Confirmable => "CON",
            MessageType::NonConfirmable => "NON",
            MessageType::Acknowledgement => "ACK",
            MessageType::Reset => "RST",
        };
        let _ = write!(
            text,
            "{kind} {} mid={}",
            code_name(code),
            packet.header.message_id
        );
    }
    if !packet.get_token().is_empty() {
        let _ = write!(text, " token={}", hex::encode(packet.get_token()));
    }
    let options = describe_options(packet);
    if !options.is_empty() {
        text.push(' ');
        text.push_str(&options);
    }
    if !packet.payload.is_empty() {
        let format = first_uint(packet, 12).map(|cf| cf as u16);
        text.push_str(" | ");
        text.push_str(&describe_payload(&packet.payload, format, base, schema));
    }
    text
}

/// A code as `0.02 POST` or `2.05 Content`.
pub fn code_name(code: u8) -> String {
    let (class, detail) = (code >> 5, code & 0x1F);
    let name = match (class, detail) {
        (0, 0) => "Empty",
        (0, 1) => "GET",
        (0, 2) => "POST",
        (0, 3) => "PUT",
        (0, 4) => "DELETE",
        (0, 5) => "FETCH",
        (0, 6) => "PATCH",
        (0, 7) => "iPATCH",
        (2, 1) => "Created",
        (2, 2) => "Deleted",
        (2, 3) => "Valid",
        (2, 4) => "Changed",
        (2, 5) => "Content",
        (2, 31) => "Continue",
        (4, 0) => "Bad Request",
        (4, 1) => "Unauthorized",
        (4, 2) => "Bad Option",
        (4, 3) => "Forbidden",
        (4, 4) => "Not Found",
        (4, 5) => "Method Not Allowed",
        (4, 6) => "Not Acceptable",
        (4, 8) => "Request Entity Incomplete",
        (4, 9) => "Conflict",
        (4, 12) => "Precondition Failed",
        (4, 13) => "Request Entity Too Large",
        (4, 15) => "Unsupported Content-Format",
        (5, 0) => "Internal Server Error",
        (5, 1) => "Not Implemented",
        (5, 2) => "Bad Gateway",
        (5, 3) => "Service Unavailable",
        (5, 4) => "Gateway Timeout",
        (5, 5) => "Proxying Not Supported",
        (7, 1) => "CSM",
        (7, 2) => "Ping",
        (7, 3) => "Pong",
        (7, 4) => "Release",
        (7, 5) => "Abort",
        _ => return format!("{class}.{detail:02}"),
    };
    format!("{class}.{detail:02} {name}")
}

fn is_request(code: u8) -> bool {
    code >> 5 == 0 && code != 0
}

/// A Content-Format by its name, or its number.
pub fn format_name(format: u16) -> String {
    let name = match format {
        0 => "text",
        40 => "link-format",
        42 => "opaque",
        50 => "json",
        60 => "cbor",
        110 => "senml+json",
        112 => "senml+cbor",
        11542 | 1542 => "tlv",
        11543 | 1543 => "lwm2m+json",
        11544 => "lwm2m+cbor",
        n => return n.to_string(),
    };
    name.to_string()
}

/// The options: the path and query as a URI, the others as `name=value`.
fn describe_options(packet: &Packet) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut uri = String::new();
    let mut location = String::new();
    for (&number, values) in packet.options() {
        for value in values {
            match number {
                11 => {
                    uri.push('/');
                    uri.push_str(&String::from_utf8_lossy(value));
                }
                15 => {
                    uri.push(if uri.contains('?') { '&' } else { '?' });
                    uri.push_str(&String::from_utf8_lossy(value));
                }
                8 => {
                    location.push('/');
                    location.push_str(&String::from_utf8_lossy(value));
                }
                _ => parts.push(describe_option(number, value)),
            }
        }
    }
    if uri.starts_with('?') {
        uri.insert(0, '/');
    }
    if !location.is_empty() {
        parts.insert(0, format!("loc={location}"));
    }
    if !uri.is_empty() {
        parts.insert(0, uri);
    }
    parts.join(" ")
}

fn describe_option(number: u16, value: &[u8]) -> String {
    let uint = || value.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    match number {
        6 => format!("obs={}", uint()),
        12 => format!("cf={}", format_name(uint() as u16)),
        17 => format!("accept={}", format_name(uint() as u16)),
        23 => format!("block2={}", block(uint())),
        27 => format!("block1={}", block(uint())),
        28 => format!("size2={}", uint()),
        60 => format!("size1={}", uint()),
        14 => format!("max-age={}", uint()),
        _ => format!("opt{number}={}", hex::encode(value)),
    }
}

/// A Block1/Block2 value as NUM/M/SIZE (RFC 7959: `3/1/1024` is block 3, more follow, 1024 B).
fn block(value: u64) -> String {
    let (num, more, szx) = (value >> 4, (value >> 3) & 1, value & 7);
    format!("{num}/{more}/{}", 16u32 << szx)
}

fn first_uint(packet: &Packet, number: u16) -> Option<u64> {
    packet
        .options()
        .find(|(n, _)| **n == number)
        .and_then(|(_, values)| values.front())
        .map(|v| v.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// A request's Uri-Path as an LWM2M path, when every segment is a number.
fn uri_path(packet: &Packet) -> Option<Path> {
    let ids: Option<Vec<u16>> = packet
        .options()
        .filter(|(n, _)| **n == 11)
        .flat_map(|(_, values)| values.iter())
        .map(|segment| std::str::from_utf8(segment).ok()?.parse().ok())
        .collect();
    Path::from_ids(&ids?).ok()
}

/// A payload as text, as decoded records, or in hex; cut at [`PAYLOAD_CHARS`].
pub fn describe_payload(
    payload: &[u8],
    format: Option<u16>,
    base: Option<Path>,
    schema: &dyn Schema,
) -> String {
    let records = format
        .and_then(ContentFormat::from_code)
        .filter(|f| {
            !matches!(
                f,
                ContentFormat::Text | ContentFormat::LinkFormat | ContentFormat::Opaque
            )
        })
        .map(|f| content::decode(f, &base.unwrap_or(Path::ROOT), payload, schema));
    let text = match (records, format) {
        (Some(Ok(records)), _) => describe_records_of(&records),
        (Some(Err(e)), Some(format)) => {
            format!(
                "{} undecoded ({e}): {}",
                format_name(format),
                hex::encode(payload)
            )
        }
        (None, Some(42)) => hex::encode(payload),
        _ => match std::str::from_utf8(payload) {
            Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n') => {
                text.replace('\n', "\\n")
            }
            _ => hex::encode(payload),
        },
    };
    cut(text, PAYLOAD_CHARS)
}

fn describe_records_of(records: &[Record]) -> String {
    let mut text = String::new();
    for record in records {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let _ = write!(text, "{}=", record.path);
        match &record.value {
            Value::String(s) | Value::Corelnk(s) => {
                let _ = write!(text, "{s:?}");
            }
            Value::Integer(v) | Value::Time(v) => {
                let _ = write!(text, "{v}");
            }
            Value::UnsignedInteger(v) => {
                let _ = write!(text, "{v}");
            }
            Value::Float(v) => {
                let _ = write!(text, "{v}");
            }
            Value::Boolean(v) => {
                let _ = write!(text, "{v}");
            }
            Value::Opaque(v) => {
                let _ = write!(text, "0x{}", hex::encode(v));
            }
            Value::Objlnk(object, instance) => {
                let _ = write!(text, "{object}:{instance}");
            }
        }
    }
    text
}

fn cut(mut text: String, chars: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(chars) {
        text.truncate(at);
        text.push('…');
    }
    text
}

fn hex_cut(bytes: &[u8]) -> String {
    cut(hex::encode(bytes), PAYLOAD_CHARS)
}

/// A DTLS record starts with its content type (20 to 25) and version 254.x; a CoAP message's
/// first byte is at least 64 (version 1).
fn is_dtls(bytes: &[u8]) -> bool {
    bytes.len() >= 13 && (20..=25).contains(&bytes[0]) && bytes[1] == 254
}

/// The records of a DTLS datagram (header of 13 bytes) or a TLS read or write (5 bytes): their
/// types, epochs (DTLS) and lengths, and the handshake messages sent in the clear.
fn describe_records(protocol: &str, mut bytes: &[u8], header: usize) -> String {
    let mut parts = Vec::new();
    while bytes.len() >= header {
        let kind = bytes[0];
        let len = usize::from(u16::from_be_bytes([bytes[header - 2], bytes[header - 1]]));
        let epoch = (header == 13).then(|| u16::from_be_bytes([bytes[3], bytes[4]]));
        let body = &bytes[header..bytes.len().min(header + len)];
        let clear = epoch.is_none_or(|e| e == 0);
        let mut part = match kind {
            20 => "change_cipher_spec".to_string(),
            21 if clear && body.len() >= 2 => format!("alert {}.{}", body[0], body[1]),
            21 => "alert (encrypted)".to_string(),
            22 if clear && !body.is_empty() => handshake_name(body[0]).to_string(),
            22 => "handshake (encrypted)".to_string(),
            23 => "application_data".to_string(),
            n => format!("record type {n}"),
        };
        if let Some(epoch) = epoch {
            let _ = write!(part, " epoch={epoch}");
        }
        let _ = write!(part, " len={len}");
        if body.len() < len {
            part.push_str(" (continues)");
        }
        parts.push(part);
        bytes = &bytes[body.len() + header..];
    }
    format!("{protocol} {}", parts.join("; "))
}

fn handshake_name(kind: u8) -> &'static str {
    match kind {
        0 => "hello_request",
        1 => "client_hello",
        2 => "server_hello",
        3 => "hello_verify_request",
        4 => "new_session_ticket",
        11 => "certificate",
        12 => "server_key_exchange",
        13 => "certificate_request",
        14 => "server_hello_done",
        15 => "certificate_verify",
        16 => "client_key_exchange",
        20 => "finished",
        _ => "handshake",
    }
}
