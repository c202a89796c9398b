//! Send (`POST /dp`, LWM2M 1.1): a registered client pushes `SenML` values; the server decodes
//! them and counts the Sends and the values.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use coap_lite::{Packet, ResponseType};

use super::{Answer, Server};
use crate::clock::Instant;
use crate::coap::block::{self, Block1Outcome, Block1Receiver, BlockValue};
use crate::coap::message;
use crate::content::{self, ContentFormat};
use crate::model::{Path, Untyped};

/// The largest Send body assembled from Block1 blocks (4.13 beyond).
const MAX_SEND_BODY: usize = 256 * 1024;

/// The largest block taken; a client sending larger ones is asked for this size.
const MAX_SEND_BLOCK: u16 = 1024;

/// Block-wise Sends being assembled, one per peer. A transfer ends with its last block or an
/// error; one whose client went quiet is dropped when another begins.
#[derive(Debug, Default)]
pub(super) struct SendBlocks(HashMap<SocketAddr, Block1Receiver>);

impl SendBlocks {
    fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        value: BlockValue,
        request: &Packet,
        idle: Duration,
    ) -> Block1Outcome {
        if value.num == 0 {
            self.0
                .retain(|_, r| now.saturating_since(r.last_block_at()) < idle);
        }
        let receiver = self.0.entry(from).or_insert_with(|| {
            Block1Receiver::new(MAX_SEND_BODY, MAX_SEND_BLOCK, now).expect("1024 is a block size")
        });
        let size1 = block::size1(request).ok().flatten();
        let outcome = receiver.receive(now, value, &request.payload, size1);
        if !matches!(outcome, Block1Outcome::Continue(_)) {
            self.0.remove(&from);
        }
        outcome
    }
}

impl Server {
    /// 2.04 for a registered peer's `SenML` payload; 4.04 from a peer with no registration,
    /// 4.15 for another format (Send allows only `SenML` JSON and CBOR), 4.00 when it does not
    /// decode. A payload in Block1 blocks gets 2.31 per block and is decoded and counted once,
    /// whole, at its last block.
    pub(super) fn data_push(&mut self, now: Instant, from: SocketAddr, request: &Packet) -> Answer {
        if !self.by_peer.contains_key(&from) {
            return Answer::code(ResponseType::NotFound);
        }
        let format = message::content_format(request)
            .ok()
            .flatten()
            .and_then(ContentFormat::from_code);
        let Some(format @ (ContentFormat::SenmlJson | ContentFormat::SenmlCbor)) = format else {
            return Answer::code(ResponseType::UnsupportedContentFormat);
        };
        let (payload, echo) = match block::block1(request) {
            Err(_) => return Answer::code(ResponseType::BadOption),
            Ok(None) => (Cow::Borrowed(request.payload.as_slice()), None),
            Ok(Some(value)) => {
                let idle = self.config.coap.exchange_lifetime;
                match self.send_blocks.receive(now, from, value, request, idle) {
                    Block1Outcome::Continue(echo) => {
                        return Answer {
                            block1: Some(echo),
                            ..Answer::code(ResponseType::Continue)
                        };
                    }
                    Block1Outcome::Error { code, block1 } => {
                        return Answer {
                            block1,
                            ..Answer::code(code)
                        };
                    }
                    Block1Outcome::Complete { body, block1 } => (Cow::Owned(body), Some(block1)),
                }
            }
        };
        let code = match content::decode(format, &Path::ROOT, &payload, &Untyped) {
            Ok(records) => {
                self.stats.sends += 1;
                self.stats.send_values += records.len() as u64;
                ResponseType::Changed
            }
            Err(_) => ResponseType::BadRequest,
        };
        Answer {
            block1: echo,
            ..Answer::code(code)
        }
    }
}
