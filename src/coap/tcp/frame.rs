//! RFC 8323 §3.2 message framing, and the stream decoder that cuts a byte stream into messages.

use coap_lite::Packet;

use crate::coap::wire;

/// `Len` nibble values that announce an extended length, and what that length is offset by.
const EXT8: u8 = 13;
const EXT16: u8 = 14;
const EXT32: u8 = 15;
const OFFSET8: usize = 13;
const OFFSET16: usize = 269;
const OFFSET32: usize = 65_805;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// TKL 9 to 15 is a message format error (RFC 8323 §3.2, RFC 7252 §3).
    #[error("token length {0} is more than 8")]
    TokenLength(u8),
    #[error("a {size}-byte message is more than the {max} bytes allowed")]
    TooLarge { size: u64, max: usize },
    #[error("the message ends {missing} bytes early")]
    Truncated { missing: usize },
    #[error("{0} bytes follow the message")]
    Trailing(usize),
    #[error("malformed options: {0}")]
    Options(&'static str),
}

/// One framed message, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub code: u8,
    pub token: &'a [u8],
    /// Options, then `0xFF` and the payload if there is one: the bytes `Len` counts.
    pub body: &'a [u8],
}

/// The framing of a message that starts at the beginning of some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    token: usize,
    /// Options and payload.
    body: u64,
    /// `Len|TKL`, extended length and code.
    framing: usize,
}

impl Header {
    fn total(self) -> u64 {
        (self.framing + self.token) as u64 + self.body
    }
}

/// Reads the framing; `Ok(None)` when `bytes` do not hold all of it yet.
fn header(bytes: &[u8]) -> Result<Option<Header>, FrameError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let (len, tkl) = (first >> 4, first & 0x0F);
    if tkl > 8 {
        return Err(FrameError::TokenLength(tkl));
    }
    let ext_len = match len {
        EXT8 => 1,
        EXT16 => 2,
        EXT32 => 4,
        _ => 0,
    };
    let framing = 1 + ext_len + 1;
    if bytes.len() < framing {
        return Ok(None);
    }
    let ext = bytes[1..=ext_len]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let body_len = match len {
        EXT8 => ext + OFFSET8 as u64,
        EXT16 => ext + OFFSET16 as u64,
        EXT32 => ext + OFFSET32 as u64,
        n => u64::from(n),
    };
    Ok(Some(Header {
        token: usize::from(tkl),
        body: body_len,
        framing,
    }))
}

/// Parses exactly one message.
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, FrameError> {
    let h = header(bytes)?.ok_or(FrameError::Truncated {
        missing: 2usize.saturating_sub(bytes.len()).max(1),
    })?;
    let total = h.total();
    let len = bytes.len() as u64;
    if len < total {
        return Err(FrameError::Truncated {
            missing: (total - len) as usize,
        });
    }
    if len > total {
        return Err(FrameError::Trailing((len - total) as usize));
    }
    let token_at = h.framing;
    Ok(Message {
        code: bytes[h.framing - 1],
        token: &bytes[token_at..token_at + h.token],
        body: &bytes[token_at + h.token..],
    })
}

/// Frames `code`, `token` and `body` (options and payload, as over UDP). Panics in debug builds
/// on a token longer than 8 bytes, which no caller builds.
pub fn encode(code: u8, token: &[u8], body: &[u8]) -> Vec<u8> {
    debug_assert!(token.len() <= 8, "a CoAP token is at most 8 bytes");
    let n = body.len();
    let (nibble, ext): (u8, Vec<u8>) = if n < OFFSET8 {
        (n as u8, Vec::new())
    } else if n < OFFSET16 {
        (EXT8, vec![(n - OFFSET8) as u8])
    } else if n < OFFSET32 {
        (EXT16, ((n - OFFSET16) as u16).to_be_bytes().to_vec())
    } else {
        (EXT32, ((n - OFFSET32) as u32).to_be_bytes().to_vec())
    };
    let mut out = Vec::with_capacity(2 + ext.len() + token.len() + n);
    out.push((nibble << 4) | (token.len() as u8 & 0x0F));
    out.extend_from_slice(&ext);
    out.push(code);
    out.extend_from_slice(token);
    out.extend_from_slice(body);
    out
}

/// A coap-lite packet framed for TCP: its type and message ID do not exist there.
pub fn encode_packet(packet: &Packet) -> Vec<u8> {
    let datagram = wire::encode(packet);
    // coap-lite refuses only a token over 8 bytes, which no caller builds: nothing to send.
    let Some((&[first, code, _, _], rest)) = datagram.split_first_chunk::<4>() else {
        return Vec::new();
    };
    let token_len = usize::from(first & 0x0F).min(rest.len());
    encode(code, &rest[..token_len], &rest[token_len..])
}

/// A framed request or response as a coap-lite packet (a CON with message ID 0: the reliable
/// transport has neither).
pub fn to_packet(message: &Message<'_>) -> Result<Packet, FrameError> {
    let mut datagram = Vec::with_capacity(4 + message.token.len() + message.body.len());
    datagram.extend_from_slice(&[0x40 | message.token.len() as u8, message.code, 0, 0]);
    datagram.extend_from_slice(message.token);
    datagram.extend_from_slice(message.body);
    Packet::from_bytes(&datagram).map_err(|_| FrameError::Options("coap-lite rejected them"))
}

/// Cuts a byte stream into whole messages, whatever the reads' boundaries. Holds at most one
/// partial message (and gives its buffer back when it holds none).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    start: usize,
    max_message_size: usize,
}

impl Decoder {
    pub fn new(max_message_size: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            max_message_size,
        }
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` until one is complete. An error is for good: the
    /// stream cannot be resynchronised, the connection must end.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let unread = &self.buf[self.start..];
        let Some(h) = header(unread)? else {
            self.release_if_empty();
            return Ok(None);
        };
        let total = h.total();
        if total > self.max_message_size as u64 {
            return Err(FrameError::TooLarge {
                size: total,
                max: self.max_message_size,
            });
        }
        let total = total as usize;
        if unread.len() < total {
            return Ok(None);
        }
        let frame = unread[..total].to_vec();
        self.start += total;
        self.release_if_empty();
        Ok(Some(frame))
    }

    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    fn release_if_empty(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }
}

/// Options as (number, value), in order.
pub type Options<'a> = Vec<(u16, &'a [u8])>;

/// The options of a message body, in order; then the payload. RFC 7252 §3.1 option encoding,
/// which RFC 8323 keeps.
pub fn options(body: &[u8]) -> Result<(Options<'_>, &[u8]), FrameError> {
    let mut options = Vec::new();
    let mut number: u32 = 0;
    let mut rest = body;
    while let Some((&first, after)) = rest.split_first() {
        if first == 0xFF {
            if after.is_empty() {
                return Err(FrameError::Options("a payload marker with no payload"));
            }
            return Ok((options, after));
        }
        rest = after;
        let delta = extended(first >> 4, &mut rest)?;
        let len = extended(first & 0x0F, &mut rest)?;
        number += delta;
        let number = u16::try_from(number).map_err(|_| FrameError::Options("number > 65535"))?;
        let len = len as usize;
        if rest.len() < len {
            return Err(FrameError::Options("a value runs past the end"));
        }
        let (value, after) = rest.split_at(len);
        options.push((number, value));
        rest = after;
    }
    Ok((options, &[]))
}

/// An option delta or length nibble with its extension bytes (13: +1 byte, 14: +2 bytes).
fn extended(nibble: u8, rest: &mut &[u8]) -> Result<u32, FrameError> {
    let take = |rest: &mut &[u8], n: usize| -> Result<u32, FrameError> {
        if rest.len() < n {
            return Err(FrameError::Options(
                "an extended delta or length runs past the end",
            ));
        }
        let value = rest[..n]
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        *rest = &rest[n..];
        Ok(value)
    };
    match nibble {
        13 => Ok(take(rest, 1)? + 13),
        14 => Ok(take(rest, 2)? + 269),
        15 => Err(FrameError::Options("reserved nibble 15")),
        n => Ok(u32::from(n)),
    }
}

/// Encodes options (sorted by number) and a payload as a message body.
pub fn encode_options(options: &[(u16, &[u8])], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = 0u16;
    for &(number, value) in options {
        debug_assert!(number >= previous, "options go in order");
        let (d, d_ext) = nibble(u32::from(number - previous));
        let (l, l_ext) = nibble(value.len() as u32);
        out.push((d << 4) | l);
        out.extend_from_slice(&d_ext);
        out.extend_from_slice(&l_ext);
        out.extend_from_slice(value);
        previous = number;
    }
    if !payload.is_empty() {
        out.push(0xFF);
        out.extend_from_slice(payload);
    }
    out
}

fn nibble(value: u32) -> (u8, Vec<u8>) {
    if value < 13 {
        (value as u8, Vec::new())
    } else if value < 269 {
        (13, vec![(value - 13) as u8])
    } else {
        (14, ((value - 269) as u16).to_be_bytes().to_vec())
    }
}
