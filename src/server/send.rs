//! Send (`POST /dp`, LWM2M 1.1): a registered client pushes `SenML` values; the server decodes
//! them and counts the Sends and the values.

use std::net::SocketAddr;

use coap_lite::{Packet, ResponseType};

use super::{Answer, Server};
use crate::coap::message;
use crate::content::{self, ContentFormat};
use crate::model::{Path, ResourceSpec, Schema};

/// The server knows no object definitions: values keep the type their payload gives them.
struct Untyped;

impl Schema for Untyped {
    fn resource(&self, _object: u16, _resource: u16) -> Option<ResourceSpec> {
        None
    }
}

impl Server {
    /// 2.04 for a registered peer's `SenML` payload; 4.04 from a peer with no registration,
    /// 4.15 for another format (Send allows only `SenML` JSON and CBOR), 4.00 when it does not
    /// decode.
    pub(super) fn data_push(&mut self, from: SocketAddr, request: &Packet) -> Answer {
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
        match content::decode(format, &Path::ROOT, &request.payload, &Untyped) {
            Ok(records) => {
                self.stats.sends += 1;
                self.stats.send_values += records.len() as u64;
                Answer::code(ResponseType::Changed)
            }
            Err(_) => Answer::code(ResponseType::BadRequest),
        }
    }
}
