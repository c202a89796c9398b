//! Byte-level pieces of the message layer: header peeking, empty messages, encoding.

use coap_lite::{MessageClass, MessageType, Packet};

/// CoAP message types as numbered in the header.
pub(crate) const CON: u8 = 0;
pub(crate) const NON: u8 = 1;
pub(crate) const ACK: u8 = 2;
pub(crate) const RST: u8 = 3;

/// The fixed 4-byte header, read without trusting the rest of the datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawHeader {
    pub version: u8,
    pub kind: u8,
    pub code: u8,
    pub message_id: u16,
}

impl RawHeader {
    pub fn peek(bytes: &[u8]) -> Option<RawHeader> {
        let [b0, code, m0, m1, ..] = *bytes else {
            return None;
        };
        Some(RawHeader {
            version: b0 >> 6,
            kind: (b0 >> 4) & 0x03,
            code,
            message_id: u16::from_be_bytes([m0, m1]),
        })
    }
}

/// An empty ACK or RST echoing `message_id` (4 bytes, no token).
pub(crate) fn empty(kind: u8, message_id: u16) -> Vec<u8> {
    let [m0, m1] = message_id.to_be_bytes();
    vec![0x40 | (kind << 4), 0x00, m0, m1]
}

/// Encodes without coap-lite's 1280-byte cap: the size limit is the caller's business
/// (block-wise keeps payloads at or below `Params::block_size`). Encoding has no other error.
pub(crate) fn encode(packet: &Packet) -> Vec<u8> {
    packet.to_bytes_unlimited().unwrap_or_default()
}

pub(crate) fn set_type(packet: &mut Packet, kind: u8) {
    packet.header.set_type(match kind {
        CON => MessageType::Confirmable,
        NON => MessageType::NonConfirmable,
        ACK => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    });
}

/// What the code byte says a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodeKind {
    Empty,
    Request,
    Response,
    /// Classes 1, 6 and 7: a message format error.
    Reserved,
}

pub(crate) fn code_kind(code: u8) -> CodeKind {
    match code >> 5 {
        0 if code == 0 => CodeKind::Empty,
        // Unknown methods (0.08-0.31) are still requests: the application answers 4.05.
        0 => CodeKind::Request,
        2..=5 => CodeKind::Response,
        _ => CodeKind::Reserved,
    }
}

pub(crate) fn is_request(packet: &Packet) -> bool {
    code_kind(u8::from(packet.header.code)) == CodeKind::Request
}

pub(crate) fn is_empty(packet: &Packet) -> bool {
    packet.header.code == MessageClass::Empty
}
