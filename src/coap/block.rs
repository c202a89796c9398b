//! Block-wise transfer helpers (RFC 7959): the Block1/Block2 option value, slicing a response
//! body into Block2 blocks, and assembling a Block1 request body.

use coap_lite::{CoapOption, Packet, ResponseType};

use super::message::{self, OptionError};
use crate::clock::Instant;

/// A Block1/Block2 option value that cannot be used on UDP.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockError {
    #[error("block option value of {0} bytes (at most 3)")]
    TooLong(usize),
    #[error("SZX 7 (BERT) is for reliable transports only")]
    Bert,
    #[error("block size {0} is not a power of two from 16 to 1024")]
    BadSize(u16),
    #[error("block number {0} does not fit 20 bits")]
    NumTooLarge(u64),
    #[error("block at offset {offset} starts beyond the {len}-byte body")]
    BeyondEnd { offset: usize, len: usize },
}

/// A Block1 or Block2 option: `NUM << 4 | M << 3 | SZX`, block size `2^(SZX + 4)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockValue {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

impl BlockValue {
    /// NUM has 20 bits in a 3-byte option.
    pub const MAX_NUM: u32 = (1 << 20) - 1;

    /// A value for block `num` of `size` bytes (16, 32, ... 1024).
    pub fn new(num: u32, more: bool, size: u16) -> Result<Self, BlockError> {
        if num > Self::MAX_NUM {
            return Err(BlockError::NumTooLarge(u64::from(num)));
        }
        Ok(BlockValue {
            num,
            more,
            szx: szx_for(size)?,
        })
    }

    /// Block size in bytes.
    pub fn size(self) -> usize {
        16 << self.szx
    }

    /// Where the block starts in the body.
    pub fn offset(self) -> usize {
        self.num as usize * self.size()
    }

    /// Decodes the option's uint bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, BlockError> {
        if bytes.len() > 3 {
            return Err(BlockError::TooLong(bytes.len()));
        }
        let value = bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let szx = (value & 0x07) as u8;
        if szx == 7 {
            return Err(BlockError::Bert);
        }
        Ok(BlockValue {
            num: value >> 4,
            more: value & 0x08 != 0,
            szx,
        })
    }

    /// The option's uint bytes (no leading zeros).
    pub fn encode(self) -> Vec<u8> {
        let value =
            (self.num & Self::MAX_NUM) << 4 | u32::from(self.more) << 3 | u32::from(self.szx & 7);
        message::encode_uint(value)
    }
}

/// SZX for a block size of 16..=1024 bytes.
pub fn szx_for(size: u16) -> Result<u8, BlockError> {
    if size.is_power_of_two() && (16..=1024).contains(&size) {
        Ok(size.trailing_zeros() as u8 - 4)
    } else {
        Err(BlockError::BadSize(size))
    }
}

fn block(packet: &Packet, option: CoapOption) -> Result<Option<BlockValue>, BlockError> {
    packet
        .get_first_option(option)
        .map(|bytes| BlockValue::parse(bytes))
        .transpose()
}

fn set_block(packet: &mut Packet, option: CoapOption, value: BlockValue) {
    packet.clear_option(option);
    packet.add_option(option, value.encode());
}

pub fn block1(packet: &Packet) -> Result<Option<BlockValue>, BlockError> {
    block(packet, CoapOption::Block1)
}

pub fn block2(packet: &Packet) -> Result<Option<BlockValue>, BlockError> {
    block(packet, CoapOption::Block2)
}

pub fn set_block1(packet: &mut Packet, value: BlockValue) {
    set_block(packet, CoapOption::Block1, value);
}

pub fn set_block2(packet: &mut Packet, value: BlockValue) {
    set_block(packet, CoapOption::Block2, value);
}

/// Size1: total request body size (or, in a 4.13, the largest accepted).
pub fn size1(packet: &Packet) -> Result<Option<u32>, OptionError> {
    message::uint(packet, CoapOption::Size1, 4)
}

/// Size2: total response body size.
pub fn size2(packet: &Packet) -> Result<Option<u32>, OptionError> {
    message::uint(packet, CoapOption::Size2, 4)
}

pub fn set_size1(packet: &mut Packet, size: u32) {
    message::set_uint(packet, CoapOption::Size1, size);
}

pub fn set_size2(packet: &mut Packet, size: u32) {
    message::set_uint(packet, CoapOption::Size2, size);
}

/// One block of a response body.
#[derive(Debug, PartialEq, Eq)]
pub struct Block2Slice<'a> {
    pub payload: &'a [u8],
    /// `None` when the whole body fits and no block was asked for.
    pub block2: Option<BlockValue>,
    /// The total size, on the first block.
    pub size2: Option<u32>,
}

/// The block of `body` that answers a request with Block2 `requested` (or none), in blocks of
/// at most `max_size` bytes. A requested size above `max_size` is lowered, and the block number
/// scaled to the same offset (RFC 7959 2.4). `Err` is a 4.02 Bad Option for the caller.
pub fn slice_block2(
    body: &[u8],
    requested: Option<BlockValue>,
    max_size: u16,
) -> Result<Block2Slice<'_>, BlockError> {
    let max_szx = szx_for(max_size)?;
    let Some(requested) = requested else {
        if body.len() <= usize::from(max_size) {
            return Ok(Block2Slice {
                payload: body,
                block2: None,
                size2: None,
            });
        }
        return slice_block2(
            body,
            Some(BlockValue {
                num: 0,
                more: false,
                szx: max_szx,
            }),
            max_size,
        );
    };
    let szx = requested.szx.min(max_szx);
    let offset = requested.offset();
    if offset > 0 && offset >= body.len() {
        return Err(BlockError::BeyondEnd {
            offset,
            len: body.len(),
        });
    }
    let size = 16usize << szx;
    let num = offset / size;
    let num = u32::try_from(num)
        .ok()
        .filter(|&n| n <= BlockValue::MAX_NUM)
        .ok_or(BlockError::NumTooLarge(num as u64))?;
    let end = body.len().min(offset + size);
    Ok(Block2Slice {
        payload: &body[offset..end],
        block2: Some(BlockValue {
            num,
            more: end < body.len(),
            szx,
        }),
        size2: (num == 0).then(|| u32::try_from(body.len()).unwrap_or(u32::MAX)),
    })
}

/// Sets `response`'s payload to the block of `body` asked for (`requested`, from the request's
/// Block2, or `None` for the first), with Block2 and Size2 as needed.
pub fn apply_block2(
    response: &mut Packet,
    body: &[u8],
    requested: Option<BlockValue>,
    max_size: u16,
) -> Result<(), BlockError> {
    let slice = slice_block2(body, requested, max_size)?;
    response.payload = slice.payload.to_vec();
    if let Some(value) = slice.block2 {
        set_block2(response, value);
    }
    if let Some(size) = slice.size2 {
        set_size2(response, size);
    }
    Ok(())
}

/// What to answer a Block1 request with.
#[derive(Debug, PartialEq)]
pub enum Block1Outcome {
    /// Answer 2.31 Continue with this Block1 (M set; SZX possibly lowered to ours).
    Continue(BlockValue),
    /// The whole body: handle it, and echo `block1` (M clear) in the final response.
    Complete { body: Vec<u8>, block1: BlockValue },
    /// Answer with `code` (4.08, 4.13, 4.00) and Block1 when given; the transfer is dropped.
    Error {
        code: ResponseType,
        block1: Option<BlockValue>,
    },
}

/// Assembles one block-wise request body (one per resource being written).
#[derive(Debug)]
pub struct Block1Receiver {
    body: Vec<u8>,
    in_progress: bool,
    max_body: usize,
    max_szx: u8,
    /// When the last block came: the caller drops a transfer idle too long.
    last_block_at: Instant,
}

impl Block1Receiver {
    /// Accepts bodies up to `max_body` bytes in blocks of at most `max_block_size` bytes.
    pub fn new(max_body: usize, max_block_size: u16, now: Instant) -> Result<Self, BlockError> {
        Ok(Block1Receiver {
            body: Vec::new(),
            in_progress: false,
            max_body,
            max_szx: szx_for(max_block_size)?,
            last_block_at: now,
        })
    }

    /// When the last block came (or the receiver was made).
    pub fn last_block_at(&self) -> Instant {
        self.last_block_at
    }

    /// Heap bytes of the body assembled so far.
    pub fn heap_bytes(&self) -> usize {
        self.body.capacity()
    }

    /// True between the first and the last block.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// Takes one block. Block 0 (re)starts a transfer; `size1` is the announced total, if any.
    pub fn receive(
        &mut self,
        now: Instant,
        block1: BlockValue,
        payload: &[u8],
        size1: Option<u32>,
    ) -> Block1Outcome {
        self.last_block_at = now;
        if block1.num == 0 {
            self.clear();
            self.in_progress = true;
            if size1.is_some_and(|s| s as usize > self.max_body) {
                return self.fail(ResponseType::RequestEntityTooLarge, Some(block1));
            }
        }
        if !self.in_progress || block1.offset() != self.body.len() {
            // A gap or a block out of order.
            return self.fail(ResponseType::RequestEntityIncomplete, None);
        }
        let size = block1.size();
        if payload.len() > size || (block1.more && payload.len() != size) {
            return self.fail(ResponseType::BadRequest, None);
        }
        if self.body.len() + payload.len() > self.max_body {
            return self.fail(ResponseType::RequestEntityTooLarge, Some(block1));
        }
        self.body.extend_from_slice(payload);
        if block1.more {
            return Block1Outcome::Continue(BlockValue {
                szx: block1.szx.min(self.max_szx),
                ..block1
            });
        }
        self.in_progress = false;
        Block1Outcome::Complete {
            body: std::mem::take(&mut self.body),
            block1,
        }
    }

    /// Drops a transfer in progress.
    pub fn clear(&mut self) {
        self.body = Vec::new();
        self.in_progress = false;
    }

    fn fail(&mut self, code: ResponseType, block1: Option<BlockValue>) -> Block1Outcome {
        self.clear();
        Block1Outcome::Error { code, block1 }
    }
}

#[cfg(test)]
mod tests;
