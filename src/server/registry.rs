//! What the server keeps per registration, and parsing of the Register/Update parameters.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::exchange::Exchange;
use crate::clock::Instant;
use crate::content::link::parse_links;
use crate::model::Path;

/// `lt` when a Register has none (LWM2M default).
pub const DEFAULT_LIFETIME: u32 = 86_400;

/// The binding letters of `b=` (1.0: U, UQ, S, SQ, US, UQS; 1.1 adds N, T; 1.2 M, H).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binding(u8);

const BINDING_LETTERS: [char; 7] = ['U', 'Q', 'S', 'N', 'T', 'M', 'H'];

impl Binding {
    pub const UDP: Binding = Binding(1);

    /// `None` for an empty value or an unknown letter.
    pub fn parse(text: &str) -> Option<Binding> {
        if text.is_empty() {
            return None;
        }
        text.chars().try_fold(Binding(0), |b, c| {
            let bit = BINDING_LETTERS.iter().position(|&l| l == c)?;
            Some(Binding(b.0 | 1 << bit))
        })
    }

    /// 1.0 queue mode is the `Q` letter in the binding.
    pub fn has_queue(self) -> bool {
        self.0 & 0b10 != 0
    }
}

impl fmt::Display for Binding {
    /// Letters in the 1.0 order (`UQS`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in BINDING_LETTERS.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// The LWM2M enabler version from `lwm2m=` (absent: 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    pub const V1_0: Version = Version { major: 1, minor: 0 };
    pub const V1_2: Version = Version { major: 1, minor: 2 };

    /// 1.0 to 1.2; anything else is unsupported.
    fn parse(text: &str) -> Option<Version> {
        let (major, minor) = text.split_once('.')?;
        let version = Version {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        };
        (version.major == 1 && version.minor <= 2).then_some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One object or instance the client registered (`</3/0>;ver=1.1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectLink {
    pub path: Path,
    pub version: Option<Box<str>>,
}

/// A client's object list. Clients of one template register the same list, so the server keeps
/// one copy of each distinct list, shared by every registration that announced it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ObjectLinks {
    /// Alternate root path (`</lwm2m>;rt="oma.lwm2m"`), without slashes: requests go under it.
    pub root: Option<Box<str>>,
    pub links: Box<[ObjectLink]>,
}

impl ObjectLinks {
    /// Parses a Register/Update payload. The root link only names the alternate path and the
    /// formats; any other target must be an LWM2M path (under the alternate path if there is one).
    pub fn parse(payload: &[u8]) -> Option<ObjectLinks> {
        let text = std::str::from_utf8(payload).ok()?;
        let parsed = parse_links(text).ok()?;
        let is_root = |link: &crate::content::link::Link| {
            link.attributes
                .iter()
                .any(|(k, v)| k == "rt" && v.as_deref() == Some("oma.lwm2m"))
        };
        let root = parsed
            .iter()
            .find(|l| is_root(l))
            .map(|l| l.target.trim_matches('/'))
            .filter(|r| !r.is_empty())
            .map(Box::from);
        let prefix = root.as_deref().map(|r| format!("/{r}"));
        let mut links = Vec::with_capacity(parsed.len());
        for link in parsed.iter().filter(|l| !is_root(l)) {
            let target = match &prefix {
                Some(prefix) => link.target.strip_prefix(prefix.as_str())?,
                None => &link.target,
            };
            let path: Path = target.parse().ok()?;
            let version = link
                .attributes
                .iter()
                .find(|(k, _)| k == "ver")
                .and_then(|(_, v)| v.as_deref())
                .map(Box::from);
            links.push(ObjectLink { path, version });
        }
        Some(ObjectLinks {
            root,
            links: links.into_boxed_slice(),
        })
    }
}

/// Register parameters as the query carries them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RegisterQuery<'a> {
    pub endpoint: &'a str,
    pub lifetime: u32,
    pub version: Version,
    pub binding: Binding,
    pub queue_mode: bool,
}

/// Why a Register or Update was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 4.00: missing `ep`, bad `lt` or `b`, unreadable payload.
    BadRequest,
    /// 4.12: an `lwm2m` version we do not speak.
    Unsupported,
}

/// `lt` in seconds: a positive integer.
fn lifetime(value: Option<&str>) -> Result<u32, Refusal> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|&lt| lt > 0)
        .ok_or(Refusal::BadRequest)
}

pub(super) fn parse_register<'a>(
    query: &[(&'a str, Option<&'a str>)],
) -> Result<RegisterQuery<'a>, Refusal> {
    let mut register = RegisterQuery {
        endpoint: "",
        lifetime: DEFAULT_LIFETIME,
        version: Version::V1_0,
        binding: Binding::UDP,
        queue_mode: false,
    };
    for &(key, value) in query {
        match key {
            "ep" => register.endpoint = value.unwrap_or(""),
            "lt" => register.lifetime = lifetime(value)?,
            "lwm2m" => {
                register.version = value.and_then(Version::parse).ok_or(Refusal::Unsupported)?;
            }
            "b" => {
                register.binding = value.and_then(Binding::parse).ok_or(Refusal::BadRequest)?;
            }
            "Q" => register.queue_mode = true,
            // `sms`, `pct` and extensions: nothing this server uses.
            _ => {}
        }
    }
    if register.endpoint.is_empty() {
        return Err(Refusal::BadRequest);
    }
    register.queue_mode |= register.binding.has_queue();
    Ok(register)
}

/// Update parameters: only what changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct UpdateQuery {
    pub lifetime: Option<u32>,
    pub binding: Option<Binding>,
}

pub(super) fn parse_update(query: &[(&str, Option<&str>)]) -> Result<UpdateQuery, Refusal> {
    let mut update = UpdateQuery::default();
    for &(key, value) in query {
        match key {
            "lt" => update.lifetime = Some(lifetime(value)?),
            "b" => {
                update.binding = Some(value.and_then(Binding::parse).ok_or(Refusal::BadRequest)?);
            }
            // `Q` belongs to Register (Leshan ignores it on Update); `sms` is unused.
            _ => {}
        }
    }
    Ok(update)
}

/// The location id as it goes on the wire: the registration's random tag, then its id, as 16
/// hex digits, no allocation. The tag makes a location unguessable and tells a previous server
/// instance's locations (an id it may reuse) from this one's.
pub(super) fn location_id(tag: u32, id: u32) -> [u8; 16] {
    let wire = u64::from(tag) << 32 | u64::from(id);
    let mut out = [0; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        let nibble = (wire >> (60 - 4 * i)) & 0xF;
        *slot = b"0123456789abcdef"[nibble as usize];
    }
    out
}

/// `(tag, id)` of a location id.
pub(super) fn parse_location_id(text: &str) -> Option<(u32, u32)> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let wire = u64::from_str_radix(text, 16).ok()?;
    Some(((wire >> 32) as u32, wire as u32))
}

/// One registration. Around 150 bytes inline; the endpoint name and the exchange in flight are
/// the only heap it owns (the object list is shared).
#[derive(Debug)]
pub struct Registration {
    pub(super) id: u32,
    /// Random, from the OS: the first half of the location id.
    pub(super) tag: u32,
    pub(super) endpoint: Arc<str>,
    pub(super) peer: SocketAddr,
    pub(super) links: Arc<ObjectLinks>,
    pub(super) registered_at: Instant,
    /// The last Register or Update.
    pub(super) last_update: Instant,
    pub(super) expires: Instant,
    /// Queue mode: requests go out only before this instant.
    pub(super) awake_until: Instant,
    pub(super) lifetime: u32,
    pub(super) next_message_id: u16,
    pub(super) version: Version,
    pub(super) binding: Binding,
    pub(super) queue_mode: bool,
    /// Requests of each [`super::Op`] (one bit each) waiting for the NSTART slot...
    pub(super) pending: u16,
    /// ...and those of them held while the client slept.
    pub(super) held: u16,
    /// The token of our observation, 0 when none is established.
    pub(super) observe_token: u64,
    /// The token of our Observe-Composite, 0 when none is established.
    pub(super) composite_token: u64,
    /// Our requests that timed out in a row; at [`super::ServerConfig::unresponsive_after`]
    /// the registration draws no more load until its next Update.
    pub(super) timeouts_in_row: u8,
    pub(super) exchange: Option<Box<Exchange>>,
}

impl Registration {
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `rd/<id>`, as the Register reply's Location-Path gave it.
    pub fn location(&self) -> String {
        let id = location_id(self.tag, self.id);
        format!("rd/{}", String::from_utf8_lossy(&id))
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::from(self.lifetime))
    }

    pub fn binding(&self) -> Binding {
        self.binding
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// LWM2M CBOR (11544) came with LWM2M 1.2.
    pub fn speaks_lwm2m_cbor(&self) -> bool {
        self.version >= Version::V1_2
    }

    pub fn queue_mode(&self) -> bool {
        self.queue_mode
    }

    pub fn object_links(&self) -> &ObjectLinks {
        &self.links
    }

    pub fn registered_at(&self) -> Instant {
        self.registered_at
    }

    /// The last Register or Update.
    pub fn last_update(&self) -> Instant {
        self.last_update
    }

    pub fn expires(&self) -> Instant {
        self.expires
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether an observation of ours is established.
    pub fn is_observed(&self) -> bool {
        self.observe_token != 0
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.exchange
            .as_ref()
            .map_or(0, |e| size_of::<Exchange>() + e.bytes.len())
    }

    /// Whether its requests timed out `limit` times in a row (0: never).
    pub(super) fn is_unresponsive(&self, limit: u8) -> bool {
        limit > 0 && self.timeouts_in_row >= limit
    }

    pub(super) fn fresh_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = id.wrapping_add(1);
        id
    }

    /// Lifetime or binding from an Update.
    pub(super) fn apply(&mut self, update: &UpdateQuery) {
        if let Some(lifetime) = update.lifetime {
            self.lifetime = lifetime;
        }
        if let Some(binding) = update.binding {
            self.binding = binding;
        }
    }

    pub(super) fn refresh(&mut self, now: Instant, awake_window: Duration) {
        self.last_update = now;
        self.expires = now + self.lifetime();
        self.awake_until = now + awake_window;
    }
}
