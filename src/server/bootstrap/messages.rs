//! What the bootstrap server puts on the wire and reads from it: the configuration it writes
//! (the Security and Server instances of [`Provisioning`]), each step's request, and the
//! parsing of a Bootstrap-Request and of a Discover's answer.

use std::fmt;
use std::time::Duration;

use coap_lite::{MessageClass, Packet, RequestType, ResponseType};

use super::{BootstrapSession, Step};
use crate::coap::{Token, message};
use crate::content::link::parse_links;
use crate::content::{self, ContentFormat};
use crate::model::{Path, Record, ResourceType, Value};
use crate::model::{ResourceSpec, Schema};
use crate::security::Psk;
use crate::security::dtls::ServerKeys;

/// Length of the keys the bootstrap server hands out (AES-128 suites).
const KEY_LENGTH: usize = 16;
/// Security modes (`/0/x/2`).
const MODE_PSK: i64 = 0;
const MODE_NO_SEC: i64 = 3;

/// What clients are configured with: the LWM2M server and how to reach it.
#[derive(Clone)]
pub struct Provisioning {
    /// The LWM2M server's URI, written to `/0/x/0` (`coap://127.0.0.1:5683`).
    pub server_uri: String,
    /// `None`: `NoSec`. Otherwise each client gets a PSK of its own: its endpoint name as
    /// identity, HMAC-SHA256(master, endpoint) as key (16 bytes), so the LWM2M server can
    /// work every key out from the identity alone ([`Provisioning::server_keys`]).
    pub psk_master: Option<Vec<u8>>,
    pub short_server_id: u16,
    /// Written to `/1/x/1`.
    pub lifetime: Duration,
    /// Written to `/1/x/7`.
    pub binding: String,
}

/// Debug never shows the master key.
impl fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioning")
            .field("server_uri", &self.server_uri)
            .field("psk", &self.psk_master.is_some())
            .field("short_server_id", &self.short_server_id)
            .field("lifetime", &self.lifetime)
            .field("binding", &self.binding)
            .finish()
    }
}

impl Provisioning {
    /// `NoSec` clients of `server_uri`, short server id 101, lifetime 300 s, binding `U`.
    pub fn new(server_uri: impl Into<String>) -> Self {
        Provisioning {
            server_uri: server_uri.into(),
            psk_master: None,
            short_server_id: 101,
            lifetime: Duration::from_secs(300),
            binding: "U".to_string(),
        }
    }

    /// The PSK written for `endpoint`, when the clients get one.
    pub fn psk(&self, endpoint: &str) -> Option<Psk> {
        let master = self.psk_master.as_ref()?;
        Some(Psk {
            identity: endpoint.as_bytes().to_vec(),
            key: crate::security::derive_key(master, endpoint, KEY_LENGTH),
        })
    }

    /// The keys an LWM2M server needs for the clients this provisions (none for NoSec):
    /// worked out from the identity, so no table is held.
    pub fn server_keys(&self) -> Option<ServerKeys> {
        let master = self.psk_master.clone()?;
        Some(ServerKeys::from_fn(move |identity| {
            let endpoint = std::str::from_utf8(identity).ok()?;
            Some(crate::security::derive_key(&master, endpoint, KEY_LENGTH))
        }))
    }
}

/// The request of `step` for `session`, its payload in the session's format.
pub(super) fn step_request(
    provisioning: &Provisioning,
    session: &BootstrapSession,
    step: Step,
) -> Result<Packet, content::ContentError> {
    let (method, path, body) = match step {
        Step::Discover => (RequestType::Get, Path::object(0), None),
        Step::DeleteSecurity => (RequestType::Delete, Path::object(0), None),
        Step::DeleteServer => (RequestType::Delete, Path::object(1), None),
        Step::WriteSecurity => {
            let path = Path::instance(0, session.security_instance);
            (
                RequestType::Put,
                path,
                Some(security_records(provisioning, session)),
            )
        }
        Step::WriteServer => (
            RequestType::Put,
            Path::instance(1, 0),
            Some(server_records(provisioning)),
        ),
        Step::Finish => {
            let packet = message::request(
                RequestType::Post,
                &["bs"],
                &[],
                None,
                Vec::new(),
                Token::default(),
            );
            return Ok(packet);
        }
    };
    let segments: Vec<String> = path.ids().iter().map(ToString::to_string).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (format, payload) = match body {
        Some(records) => {
            let payload = content::encode(session.format, &path, &records, &CoreObjects)?;
            (Some(session.format.code()), payload)
        }
        None => (None, Vec::new()),
    };
    let mut packet = message::request(method, &segments, &[], format, payload, Token::default());
    if step == Step::Discover {
        message::set_accept(&mut packet, ContentFormat::LinkFormat.code());
    }
    Ok(packet)
}

fn security_records(p: &Provisioning, session: &BootstrapSession) -> Vec<Record> {
    let at = |r| Path::resource(0, session.security_instance, r);
    let psk = p.psk(&session.endpoint);
    let mode = if psk.is_some() { MODE_PSK } else { MODE_NO_SEC };
    let (identity, key) = psk.map_or((Vec::new(), Vec::new()), |k| (k.identity, k.key));
    vec![
        Record {
            path: at(0),
            value: Value::String(p.server_uri.clone()),
        },
        Record {
            path: at(1),
            value: Value::Boolean(false),
        },
        Record {
            path: at(2),
            value: Value::Integer(mode),
        },
        Record {
            path: at(3),
            value: Value::Opaque(identity),
        },
        Record {
            path: at(4),
            value: Value::Opaque(Vec::new()),
        },
        Record {
            path: at(5),
            value: Value::Opaque(key),
        },
        Record {
            path: at(10),
            value: Value::Integer(i64::from(p.short_server_id)),
        },
    ]
}

fn server_records(p: &Provisioning) -> Vec<Record> {
    let at = |r| Path::resource(1, 0, r);
    vec![
        Record {
            path: at(0),
            value: Value::Integer(i64::from(p.short_server_id)),
        },
        Record {
            path: at(1),
            value: Value::Integer(i64::try_from(p.lifetime.as_secs()).unwrap_or(i64::MAX)),
        },
        Record {
            path: at(6),
            value: Value::Boolean(true),
        },
        Record {
            path: at(7),
            value: Value::String(p.binding.clone()),
        },
    ]
}

/// Whether a datagram is a CoAP `POST /bs` (cheap enough for every stranger's datagram).
pub(super) fn is_bootstrap_request(bytes: &[u8]) -> bool {
    let Ok(packet) = Packet::from_bytes(bytes) else {
        return false;
    };
    packet.header.code == MessageClass::Request(RequestType::Post)
        && message::uri_path(&packet).is_ok_and(|p| p == ["bs"])
}

/// `ep` (required) and `pct` (a format this server writes) of a Bootstrap-Request; the
/// answer code otherwise. Anything but `POST /bs` is not for this server.
pub(super) fn bootstrap_query(
    request: &Packet,
) -> Result<(&str, Option<ContentFormat>), ResponseType> {
    let path = message::uri_path(request).map_err(|_| ResponseType::BadRequest)?;
    if path != ["bs"] {
        return Err(ResponseType::NotFound);
    }
    if request.header.code != MessageClass::Request(RequestType::Post) {
        return Err(ResponseType::MethodNotAllowed);
    }
    let query = message::query_pairs(request).map_err(|_| ResponseType::BadRequest)?;
    let endpoint = query
        .iter()
        .find(|(k, _)| *k == "ep")
        .and_then(|(_, v)| *v)
        .filter(|ep| !ep.is_empty())
        .ok_or(ResponseType::BadRequest)?;
    let format = match query
        .iter()
        .find(|(k, _)| *k == "pct")
        .and_then(|(_, v)| *v)
    {
        None => None,
        Some(pct) => {
            let format = pct
                .parse::<u16>()
                .ok()
                .and_then(ContentFormat::from_code)
                .filter(|f| {
                    matches!(
                        f,
                        ContentFormat::Tlv | ContentFormat::SenmlJson | ContentFormat::SenmlCbor
                    )
                })
                .ok_or(ResponseType::UnsupportedContentFormat)?;
            Some(format)
        }
    };
    Ok((endpoint, format))
}

/// The lowest Security instance id that is not a bootstrap account, from a Discover of `/0`
/// (the bootstrap account is the instance listed without `ssid`; the others are deleted next).
pub(super) fn free_security_instance(payload: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(payload);
    let accounts: Vec<u16> = parse_links(&text)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| !l.attributes.iter().any(|(k, _)| k == "ssid"))
        .filter_map(|l| l.target.parse::<Path>().ok())
        .filter(|p| p.len() == 2 && p.object_id() == Some(0))
        .filter_map(|p| p.instance_id())
        .collect();
    (0..u16::MAX).find(|i| !accounts.contains(i)).unwrap_or(0)
}

/// The types of the Security and Server resources this server writes, for the codecs.
struct CoreObjects;

impl Schema for CoreObjects {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec> {
        let kind = match (object, resource) {
            (0, 0) | (1, 7) => ResourceType::String,
            (0, 1) | (1, 6) => ResourceType::Boolean,
            (0, 2 | 10) | (1, 0 | 1) => ResourceType::Integer,
            (0, 3..=5) => ResourceType::Opaque,
            _ => return None,
        };
        Some(ResourceSpec {
            kind,
            multiple: false,
        })
    }
}
