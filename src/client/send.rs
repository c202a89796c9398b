//! Send (LWM2M 1.1 Information Reporting): the client POSTs the values of configured paths to
//! `/dp` as `SenML`, every `every` give or take `jitter`, while registered and not muted.
//!
//! A payload larger than the block size goes in Block1 blocks (RFC 7959), one CON each under
//! the same token; the blocks are one `send` request, counted once: sent with the first block,
//! ended by the answer to the last (or the first block that fails), as a firmware push is one
//! Write however many blocks it takes.

use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};
use rand::Rng;

use super::composite::read_paths;
use super::{Client, ClientState, Outgoing, Queued, RequestKind};
use crate::clock::Instant;
use crate::coap::block::{self, BlockValue};
use crate::coap::{Token, message};
use crate::content::{self, ContentFormat};
use crate::model::{Path, Value};

/// `/1/x/23` Mute Send.
const MUTE_SEND: u16 = 23;

/// What a population sends, and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct SendConfig {
    /// Paths whose values go in each Send (objects, instances, resources).
    pub paths: Vec<Path>,
    /// Time between Sends, measured from when the previous one was due (no drift).
    pub every: Duration,
    /// Each interval is drawn from `every - jitter ..= every + jitter`; less than `every`.
    pub jitter: Duration,
    /// `SenmlCbor` (112) or `SenmlJson` (110): the only formats Send allows.
    pub format: ContentFormat,
}

/// A Send going out block by block: its payload, held until the last block is answered.
#[derive(Debug)]
pub(super) struct BlockwiseSend {
    token: Token,
    format: ContentFormat,
    payload: Box<[u8]>,
    /// The block sent last.
    block: BlockValue,
}

impl BlockwiseSend {
    pub(super) fn heap_bytes(&self) -> usize {
        size_of::<BlockwiseSend>() + self.payload.len()
    }

    /// The CON carrying `self.block`; the first also announces the whole size (Size1).
    fn packet(&self) -> Packet {
        let start = self.block.offset().min(self.payload.len());
        let end = (start + self.block.size()).min(self.payload.len());
        let mut packet = request(self.format, self.payload[start..end].to_vec(), self.token);
        block::set_block1(&mut packet, self.block);
        if self.block.num == 0 {
            block::set_size1(&mut packet, self.payload.len() as u32);
        }
        packet
    }
}

fn request(format: ContentFormat, payload: Vec<u8>, token: Token) -> Packet {
    message::request(
        RequestType::Post,
        &["dp"],
        &[],
        Some(format.code()),
        payload,
        token,
    )
}

impl Client {
    /// Plans the first Send after a Register, unless one is planned already.
    pub(super) fn schedule_first_send(&mut self, now: Instant) {
        if self.send_at.is_none() {
            self.send_at = self.next_send_after(now);
        }
    }

    fn next_send_after(&mut self, due: Instant) -> Option<Instant> {
        let config = self.config.send.as_ref()?;
        let (every, jitter) = (config.every, config.jitter);
        let interval = if jitter.is_zero() {
            every
        } else {
            self.rng
                .random_range(every.saturating_sub(jitter)..=every + jitter)
        };
        Some(due + interval)
    }

    /// A Send came due at `due`: queued unless the client is not registered, Send is muted, or
    /// the previous one still waits its turn. The next one is planned either way.
    pub(super) fn send_due(&mut self, due: Instant) {
        self.send_at = self.next_send_after(due);
        let registered = matches!(self.state, ClientState::Registered | ClientState::Sleeping);
        let waiting =
            self.send_blocks.is_some() || self.queue.iter().any(|q| q.what == Outgoing::Send);
        if !registered || self.send_muted() || waiting {
            return;
        }
        // Queue mode: the wake-up queues its Update first; the Send goes behind it.
        self.wake_for(due);
        self.enqueue(Outgoing::Send, due);
    }

    /// Mute Send (`/1/x/23` of the Server instance): true, or absent, means the client must not
    /// Send (LWM2M 1.1 E.2).
    fn send_muted(&mut self) -> bool {
        // A bootstrap server may have written the Server instance under another id than 0.
        let instance = self.device.instances(1).first().copied().unwrap_or(0);
        let path = Path::resource(1, instance, MUTE_SEND);
        let value = self
            .device
            .read(&path, Instant::ZERO)
            .ok()
            .and_then(|records| records.into_iter().next())
            .map(|record| record.value);
        !matches!(value, Some(Value::Boolean(false)))
    }

    /// Sends the configured paths' values now, left out as a Read-Composite leaves them out
    /// (paths the device lacks, the Security object); none found, an empty Send.
    pub(super) fn send_data(&mut self, now: Instant, intended: Instant) {
        let shared = Arc::clone(&self.config);
        let Some(config) = shared.send.as_ref() else {
            self.record_unsent(RequestKind::Send, intended, now);
            return;
        };
        let records = read_paths(&mut self.device, &config.paths, now).unwrap_or_default();
        let Ok(payload) = content::encode(config.format, &Path::ROOT, &records, &self.device)
        else {
            self.record_unsent(RequestKind::Send, intended, now);
            return;
        };
        let block_size = self.config.coap.block_size;
        if payload.len() <= usize::from(block_size) {
            let packet = request(config.format, payload, Token::default());
            self.send_request(now, RequestKind::Send, intended, packet);
            return;
        }
        let Ok(first) = BlockValue::new(0, true, block_size) else {
            self.record_unsent(RequestKind::Send, intended, now);
            return;
        };
        let token = Token::random(&mut self.rng);
        let transfer = BlockwiseSend {
            token,
            format: config.format,
            payload: payload.into_boxed_slice(),
            block: first,
        };
        let packet = transfer.packet();
        self.send_blocks = Some(Box::new(transfer));
        let server = self.server();
        self.send_tracked(now, server, RequestKind::Send, intended, token, packet);
    }

    /// The answer to a block of a block-wise Send: `true` if it is 2.31 Continue to the block
    /// sent, and the next block is queued (first in line: the transfer holds the payload).
    /// Any other answer ends the Send.
    pub(super) fn on_send_block_answer(
        &mut self,
        now: Instant,
        token: Token,
        answer: &Packet,
    ) -> bool {
        let Some(transfer) = self.send_blocks.as_deref_mut().filter(|t| t.token == token) else {
            return false;
        };
        let sent = transfer.block;
        let echo = block::block1(answer).ok().flatten();
        let continues = answer.header.code == MessageClass::Response(ResponseType::Continue)
            && sent.more
            && echo.is_some_and(|e| e.num == sent.num);
        let Some(echo) = echo.filter(|_| continues) else {
            return false;
        };
        // The server may ask for smaller blocks from here on.
        let szx = echo.szx.min(sent.szx);
        let offset = sent.offset() + sent.size();
        let size = 16usize << szx;
        transfer.block = BlockValue {
            num: (offset / size) as u32,
            more: offset + size < transfer.payload.len(),
            szx,
        };
        self.queue.push_front(Queued {
            what: Outgoing::SendBlock,
            intended: now,
        });
        true
    }

    /// Sends the block a Continue asked for, under the Send already in flight.
    pub(super) fn send_next_block(&mut self, now: Instant) {
        let Some(transfer) = self.send_blocks.as_deref() else {
            // The Send ended while the block waited its turn.
            return;
        };
        let packet = transfer.packet();
        let server = self.server();
        self.coap
            .send_confirmable(now, server, packet, &self.config.coap, &mut self.rng);
    }

    /// The Send with `token` ended: its blocks are done.
    pub(super) fn end_send_blocks(&mut self, token: Token) {
        if self.send_blocks.as_ref().is_some_and(|t| t.token == token) {
            self.send_blocks = None;
        }
    }
}
