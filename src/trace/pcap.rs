//! The trace as a pcap file: `LINKTYPE_RAW`, each datagram in the IPv4 or IPv6 and UDP headers it
//! went with (real addresses and ports), so Wireshark and tshark decode CoAP and `LwM2M` by port
//! (5683, and DTLS on 5684). A TCP client's stream writes and reads go in TCP segments whose
//! sequence numbers follow the stream (no handshake is written).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use super::{Captured, Direction, Output};

const UDP: u8 = 17;
const TCP: u8 = 6;

/// The pcap file being written.
pub(super) struct PcapOutput<W: Write> {
    writer: PcapWriter<Shared<W>>,
    /// The same writer, to flush (`PcapWriter` does not lend it out).
    inner: Rc<RefCell<W>>,
    /// Next sequence number of each TCP direction: (from, to).
    sequence: HashMap<(SocketAddr, SocketAddr), u32>,
}

impl<W: Write> PcapOutput<W> {
    pub(super) fn new(writer: W) -> io::Result<Self> {
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ..PcapHeader::default()
        };
        let inner = Rc::new(RefCell::new(writer));
        let writer =
            PcapWriter::with_header(Shared(Rc::clone(&inner)), header).map_err(io::Error::other)?;
        Ok(PcapOutput {
            writer,
            inner,
            sequence: HashMap::new(),
        })
    }
}

impl<W: Write> Output for PcapOutput<W> {
    fn write(&mut self, captured: &Captured, wall: SystemTime) -> io::Result<()> {
        let (from, to) = match captured.direction {
            Direction::Sent => (captured.client, captured.peer),
            Direction::Received => (captured.peer, captured.client),
        };
        let packet = if captured.stream {
            // Sequence numbers start at 1 in each direction, as if after a handshake.
            let seq = self.sequence.get(&(from, to)).copied().unwrap_or(1);
            let ack = self.sequence.get(&(to, from)).copied().unwrap_or(1);
            let next = seq.wrapping_add(captured.bytes.len() as u32);
            self.sequence.insert((from, to), next);
            tcp_packet(from, to, seq, ack, &captured.bytes)
        } else {
            udp_packet(from, to, &captured.bytes)
        };
        let timestamp = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.writer
            .write_packet(&PcapPacket::new(timestamp, packet.len() as u32, &packet))
            .map(|_| ())
            .map_err(io::Error::other)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.borrow_mut().flush()
    }
}

/// A writer the pcap writer and its owner share.
struct Shared<W>(Rc<RefCell<W>>);

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// A UDP datagram in its IP header.
pub fn udp_packet(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut segment = Vec::with_capacity(usize::from(len));
    segment.extend_from_slice(&from.port().to_be_bytes());
    segment.extend_from_slice(&to.port().to_be_bytes());
    segment.extend_from_slice(&len.to_be_bytes());
    segment.extend_from_slice(&[0, 0]);
    segment.extend_from_slice(payload);
    let sum = transport_checksum(from.ip(), to.ip(), UDP, &segment);
    // 0 means "no checksum" in UDP: an all-ones result is sent as such.
    let sum = if sum == 0 { 0xFFFF } else { sum };
    segment[6..8].copy_from_slice(&sum.to_be_bytes());
    ip_packet(from.ip(), to.ip(), UDP, &segment)
}

/// A TCP segment (PSH, ACK) with `payload` at sequence number `seq`, in its IP header.
pub fn tcp_packet(from: SocketAddr, to: SocketAddr, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::with_capacity(20 + payload.len());
    segment.extend_from_slice(&from.port().to_be_bytes());
    segment.extend_from_slice(&to.port().to_be_bytes());
    segment.extend_from_slice(&seq.to_be_bytes());
    segment.extend_from_slice(&ack.to_be_bytes());
    // Header of 5 words; PSH and ACK; a window of 65535; checksum; no urgent data.
    segment.extend_from_slice(&[0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]);
    segment.extend_from_slice(payload);
    let sum = transport_checksum(from.ip(), to.ip(), TCP, &segment);
    segment[16..18].copy_from_slice(&sum.to_be_bytes());
    ip_packet(from.ip(), to.ip(), TCP, &segment)
}

/// `segment` in an IPv4 or IPv6 header (an IPv4 address meeting an IPv6 one is written as its
/// IPv4-mapped IPv6 address).
fn ip_packet(from: IpAddr, to: IpAddr, protocol: u8, segment: &[u8]) -> Vec<u8> {
    let mut packet;
    if let (IpAddr::V4(from), IpAddr::V4(to)) = (from, to) {
        let total = (20 + segment.len()) as u16;
        packet = Vec::with_capacity(usize::from(total));
        packet.extend_from_slice(&[0x45, 0]);
        packet.extend_from_slice(&total.to_be_bytes());
        // Identification 0, Don't Fragment, TTL 64.
        packet.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
        packet.extend_from_slice(&from.octets());
        packet.extend_from_slice(&to.octets());
        let sum = !fold(sum16(0, &packet));
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        packet = Vec::with_capacity(40 + segment.len());
        packet.extend_from_slice(&[0x60, 0, 0, 0]);
        packet.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        packet.extend_from_slice(&[protocol, 64]);
        packet.extend_from_slice(&v6(from).octets());
        packet.extend_from_slice(&v6(to).octets());
    }
    packet.extend_from_slice(segment);
    packet
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The UDP or TCP checksum: over the pseudo-header of the IP family and the segment.
fn transport_checksum(from: IpAddr, to: IpAddr, protocol: u8, segment: &[u8]) -> u16 {
    let len = segment.len() as u32;
    let mut sum = if let (IpAddr::V4(from), IpAddr::V4(to)) = (from, to) {
        sum16(sum16(0, &from.octets()), &to.octets()) + u32::from(protocol) + len
    } else {
        let sum = sum16(sum16(0, &v6(from).octets()), &v6(to).octets());
        sum + (len >> 16) + (len & 0xFFFF) + u32::from(protocol)
    };
    sum = sum16(sum, segment);
    !fold(sum)
}

/// Adds `bytes` as big-endian 16-bit words (a last odd byte padded with zero).
fn sum16(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum = fold(sum + u32::from(u16::from_be_bytes([word[0], word[1]]))).into();
    }
    if let [last] = words.remainder() {
        sum = fold(sum + (u32::from(*last) << 8)).into();
    }
    sum
}

/// The ones' complement sum folded to 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}
