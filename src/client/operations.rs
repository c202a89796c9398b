//! Server-initiated operations: Read, Discover, Write, Write-Attributes, Execute, Create, Delete,
//! Observe and Cancel Observation, with the LWM2M error codes (composite ones: `composite.rs`).

use std::net::SocketAddr;

use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};

use super::observe::Attributes;
use super::{Client, Deferred, Event, LwM2mVersion, OperationKind, OperationRecord};
use crate::clock::Instant;
use crate::coap::block::{self, Block1Outcome, Block1Receiver};
use crate::coap::{Token, message};
use crate::content::link::{Link, format_links};
use crate::content::{self, ContentError, ContentFormat, UNSPECIFIED_INSTANCE};
use crate::model::{ModelError, Path, Record, Value, WriteMode};

/// Critical options this client understands; any other odd-numbered option earns 4.02.
const KNOWN_CRITICAL: [u16; 8] = [1, 3, 7, 11, 15, 17, 23, 27];

/// A response code and what goes with it.
pub(super) struct Answer {
    code: ResponseType,
    format: Option<ContentFormat>,
    payload: Vec<u8>,
    observe: Option<u32>,
    location: Option<Path>,
    block1: Option<block::BlockValue>,
}

impl Answer {
    pub(super) fn code(code: ResponseType) -> Self {
        Answer {
            code,
            format: None,
            payload: Vec::new(),
            observe: None,
            location: None,
            block1: None,
        }
    }

    pub(super) fn content(format: ContentFormat, payload: Vec<u8>) -> Self {
        Answer {
            format: Some(format),
            payload,
            ..Answer::code(ResponseType::Content)
        }
    }

    /// The first answer of an observation: its values with the Observe sequence.
    pub(super) fn observing(sequence: u32, format: ContentFormat, payload: Vec<u8>) -> Self {
        Answer {
            observe: Some(sequence),
            ..Answer::content(format, payload)
        }
    }
}

impl From<ModelError> for Answer {
    fn from(error: ModelError) -> Self {
        Answer::code(match error {
            ModelError::NotFound(_) => ResponseType::NotFound,
            ModelError::NotAllowed(_) => ResponseType::MethodNotAllowed,
            ModelError::BadRequest(_) => ResponseType::BadRequest,
        })
    }
}

impl Client {
    /// Answers one server request from `from` (there) and records it. Block-wise Writes are
    /// assembled first (the firmware package is streamed instead); each block is answered at
    /// its own source.
    pub(super) fn on_request(&mut self, now: Instant, from: SocketAddr, request: &Packet) {
        let Ok(block1) = block::block1(request) else {
            let answer = Answer::code(ResponseType::BadOption);
            self.answer(
                now,
                from,
                request,
                OperationKind::Other,
                Path::ROOT,
                &answer,
            );
            return;
        };
        if self.is_package_write(request) {
            let code = match block1 {
                None => self.package_whole(now, &request.payload),
                Some(value) => match self.package_block(now, value, request) {
                    Some(code) => code,
                    None => return self.continue_block1(now, from, request, value),
                },
            };
            let answer = Answer {
                block1,
                ..Answer::code(code)
            };
            let package = Path::resource(5, 0, 0);
            self.answer(now, from, request, OperationKind::Write, package, &answer);
            return;
        }
        let assembled;
        let (request, block1_echo) = match block1 {
            None => (request, None),
            Some(value) => match self.receive_block1(now, value, request) {
                Block1Outcome::Complete { body, block1 } => {
                    let mut whole = request.clone();
                    whole.clear_option(CoapOption::Block1);
                    whole.payload = body;
                    assembled = whole;
                    (&assembled, Some(block1))
                }
                Block1Outcome::Continue(echo) => {
                    return self.continue_block1(now, from, request, echo);
                }
                Block1Outcome::Error { code, block1 } => {
                    let mut answer = Answer::code(code);
                    answer.block1 = block1;
                    let kind = OperationKind::Write;
                    self.answer(now, from, request, kind, Path::ROOT, &answer);
                    return;
                }
            },
        };
        let (kind, path, mut answer) = self.dispatch(now, from, request);
        answer.block1 = block1_echo;
        self.answer(now, from, request, kind, path, &answer);
    }

    /// 2.31 Continue to a Block1 block, more expected: not an operation yet, so not recorded.
    fn continue_block1(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Packet,
        echo: block::BlockValue,
    ) {
        let mut response = message::response(ResponseType::Continue);
        block::set_block1(&mut response, echo);
        let params = &self.config.coap;
        self.coap.respond(now, from, request, response, params);
    }

    fn receive_block1(
        &mut self,
        now: Instant,
        value: block::BlockValue,
        request: &Packet,
    ) -> Block1Outcome {
        let size1 = block::size1(request).ok().flatten();
        let max_body = self.config.block1_max_body;
        let receiver = match self.block1.take() {
            Some(receiver) => receiver,
            None => match Block1Receiver::new(max_body, self.config.coap.block_size, now) {
                Ok(receiver) => Box::new(receiver),
                Err(_) => {
                    return Block1Outcome::Error {
                        code: ResponseType::InternalServerError,
                        block1: None,
                    };
                }
            },
        };
        let mut receiver = receiver;
        let outcome = receiver.receive(now, value, &request.payload, size1);
        if matches!(outcome, Block1Outcome::Continue(_)) {
            self.block1 = Some(receiver);
        }
        outcome
    }

    /// When the Block1 transfer under way is dropped for want of its next block.
    pub(super) fn block1_deadline(&self) -> Option<Instant> {
        let receiver = self.block1.as_deref()?;
        Some(receiver.last_block_at() + self.config.block1_idle_timeout)
    }

    /// Drops a Block1 transfer idle past `block1_idle_timeout`, freeing its body.
    pub(super) fn expire_block1(&mut self, now: Instant) {
        if self.block1_deadline().is_some_and(|at| at <= now) {
            self.block1 = None;
        }
    }

    /// Sends `answer` to `request` at `to` (in blocks when large) and records the operation.
    fn answer(
        &mut self,
        now: Instant,
        to: SocketAddr,
        request: &Packet,
        kind: OperationKind,
        path: Path,
        answer: &Answer,
    ) {
        let mut response = message::response(answer.code);
        if let Some(sequence) = answer.observe {
            message::set_observe(&mut response, sequence);
        }
        if let Some(location) = answer.location {
            for id in location.ids() {
                response.add_option(CoapOption::LocationPath, id.to_string().into_bytes());
            }
        }
        if let Some(format) = answer.format {
            message::set_content_format(&mut response, format.code());
        }
        if let Some(block1) = answer.block1 {
            block::set_block1(&mut response, block1);
        }
        let sliced = block::block2(request).and_then(|requested| {
            block::apply_block2(
                &mut response,
                &answer.payload,
                requested,
                self.config.coap.block_size,
            )
        });
        if sliced.is_err() {
            response = message::response(ResponseType::BadOption);
        }
        let code = u8::from(response.header.code);
        self.coap
            .respond(now, to, request, response, &self.config.coap);
        self.events.push_back(Event::Operation(OperationRecord {
            kind,
            path,
            code,
            received: now,
        }));
    }

    fn dispatch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request: &Packet,
    ) -> (OperationKind, Path, Answer) {
        if self.state == super::ClientState::Bootstrapping {
            return self.bootstrap_request(now, request);
        }
        let (path, method) = match request_target(request) {
            Ok(target) => target,
            Err(refused) => return refused,
        };
        let kind = operation_kind(method, &path, request);
        if matches!(method, RequestType::Fetch | RequestType::IPatch) {
            let answer = self.composite(now, from, kind, &path, request);
            // A 1.0 client knows no such operation.
            let kind = if self.config.version == LwM2mVersion::V1_0 {
                OperationKind::Other
            } else {
                kind
            };
            return (kind, path, answer);
        }
        // Security (0) belongs to bootstrap: invisible to a management server.
        if path.object_id() == Some(0) || (path.is_root() && kind != OperationKind::Other) {
            return (kind, path, Answer::code(ResponseType::NotFound));
        }
        let answer = match kind {
            OperationKind::Read => self.read(now, &path, request),
            OperationKind::Observe => self.start_observation(now, from, &path, request),
            OperationKind::CancelObservation => {
                if let Some(token) = Token::from_slice(request.get_token()) {
                    self.cancel_observation(token);
                }
                self.read(now, &path, request)
            }
            OperationKind::Discover => self.discover(&path),
            OperationKind::Write => self.write(now, &path, request),
            OperationKind::WriteAttributes => self.write_attributes(now, &path, request),
            OperationKind::Execute => self.execute(now, &path),
            OperationKind::Create => self.create(now, &path, request),
            OperationKind::Delete => self.delete(now, &path),
            OperationKind::BootstrapFinish
            | OperationKind::ReadComposite
            | OperationKind::WriteComposite
            | OperationKind::ObserveComposite
            | OperationKind::Other => Answer::code(ResponseType::MethodNotAllowed),
        };
        (kind, path, answer)
    }

    pub(super) fn read(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        match self.render(now, path, request) {
            Ok((format, payload, _)) => Answer::content(format, payload),
            Err(answer) => answer,
        }
    }

    /// Reads `path` and encodes it in the format the request accepts.
    fn render(
        &mut self,
        now: Instant,
        path: &Path,
        request: &Packet,
    ) -> Result<(ContentFormat, Vec<u8>, Vec<Record>), Answer> {
        let records = self.device.read(path, now)?;
        let format = match message::accept(request).ok().flatten() {
            Some(code) => ContentFormat::from_code(code)
                .filter(|f| self.carries_values(*f))
                .ok_or_else(|| Answer::code(ResponseType::NotAcceptable))?,
            None => self.default_format(path, &records),
        };
        match content::encode(format, path, &records, &self.device) {
            Ok(payload) => Ok((format, payload, records)),
            Err(ContentError::NotRepresentable { .. }) => {
                Err(Answer::code(ResponseType::NotAcceptable))
            }
            Err(_) => Err(Answer::code(ResponseType::InternalServerError)),
        }
    }

    /// Whether this client reads and writes values in `format`: not link-format, and LWM2M
    /// CBOR only from LWM2M 1.2 on.
    fn carries_values(&self, format: ContentFormat) -> bool {
        match format {
            ContentFormat::LinkFormat => false,
            ContentFormat::LwM2mCbor => self.config.version >= LwM2mVersion::V1_2,
            _ => true,
        }
    }

    /// Text (or opaque) for one value; otherwise TLV for 1.0 and the preferred format after.
    fn default_format(&self, path: &Path, records: &[Record]) -> ContentFormat {
        let multiple = path.len() == 3
            && path
                .object_id()
                .zip(path.resource_id())
                .is_some_and(|(o, r)| {
                    self.device
                        .resource_def(o, r)
                        .is_some_and(|def| def.multiple)
                });
        if path.len() >= 3 && !multiple {
            if let [
                Record {
                    value: Value::Opaque(_),
                    ..
                },
            ] = records
            {
                return ContentFormat::Opaque;
            }
            return ContentFormat::Text;
        }
        match self.config.preferred_format {
            _ if self.config.version == LwM2mVersion::V1_0 => ContentFormat::Tlv,
            ContentFormat::Text | ContentFormat::Opaque | ContentFormat::LinkFormat => {
                ContentFormat::Tlv
            }
            format => format,
        }
    }

    fn start_observation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        path: &Path,
        request: &Packet,
    ) -> Answer {
        let Some(token) = Token::from_slice(request.get_token()) else {
            return Answer::code(ResponseType::BadRequest);
        };
        let refresh = self.observations.iter().any(|o| o.token == token);
        if !refresh && self.observations.len() >= self.config.max_observations {
            // The device is out of room for observers, not the request at fault.
            return Answer::code(ResponseType::ServiceUnavailable);
        }
        match self.render(now, path, request) {
            Ok((format, payload, records)) => {
                let sequence = self.observe(now, from, token, *path, format, &records);
                Answer::observing(sequence, format, payload)
            }
            Err(answer) => answer,
        }
    }

    fn discover(&mut self, path: &Path) -> Answer {
        let found = match self.device.discover(path) {
            Ok(found) => found,
            Err(error) => return error.into(),
        };
        let links: Vec<Link> = found
            .into_iter()
            .map(|(target, dim)| {
                let mut attributes = Vec::new();
                if let Some((_, attrs)) = self.attributes.iter().find(|(p, _)| *p == target) {
                    push_attributes(&mut attributes, attrs);
                }
                if let Some(dim) = dim {
                    attributes.push(("dim".to_string(), Some(dim.to_string())));
                }
                Link {
                    target: target.to_string(),
                    attributes,
                }
            })
            .collect();
        Answer::content(ContentFormat::LinkFormat, format_links(&links).into_bytes())
    }

    fn write(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        let mode = match request.header.code {
            MessageClass::Request(RequestType::Put) => WriteMode::Replace,
            _ => WriteMode::Update,
        };
        if path.len() < 2 {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        let records = match self.decode_payload(path, request) {
            Ok(records) => records,
            Err(answer) => return answer,
        };
        let written: Vec<Path> = records.iter().map(|r| r.path).collect();
        if let Err(error) = self.device.write(path, records, mode) {
            return error.into();
        }
        self.after_server_write(now, &written);
        Answer::code(ResponseType::Changed)
    }

    pub(super) fn decode_payload(
        &self,
        path: &Path,
        request: &Packet,
    ) -> Result<Vec<Record>, Answer> {
        let code = message::content_format(request)
            .ok()
            .flatten()
            .ok_or_else(|| Answer::code(ResponseType::BadRequest))?;
        let format = ContentFormat::from_code(code)
            .filter(|f| self.carries_values(*f))
            .ok_or_else(|| Answer::code(ResponseType::UnsupportedContentFormat))?;
        content::decode(format, path, &request.payload, &self.device).map_err(|error| match error {
            // Payload naming what the device does not have: not found, not malformed.
            ContentError::UnknownResource(_) => Answer::code(ResponseType::NotFound),
            _ => Answer::code(ResponseType::BadRequest),
        })
    }

    /// What a server's Write (plain, of an instance, or composite) of the resources at
    /// `written` sets off: a new lifetime is announced with an Update, a Package URI starts a
    /// download (or, empty, resets the firmware).
    pub(super) fn after_server_write(&mut self, now: Instant, written: &[Path]) {
        for path in written {
            let lifetime = Path::resource(1, path.instance_id().unwrap_or(0), 1);
            if path.starts_with(&lifetime) {
                self.lifetime_written(now, &lifetime);
            }
        }
        if written.contains(&Path::resource(5, 0, 1)) {
            self.on_package_uri(now);
        }
    }

    fn lifetime_written(&mut self, now: Instant, lifetime: &Path) {
        if let Some(secs) = self
            .device
            .read(lifetime, now)
            .ok()
            .and_then(|r| r.first().and_then(|r| r.value.as_f64()))
            && secs > 0.0
            && (secs as u64) != self.lifetime.as_secs()
        {
            self.lifetime = std::time::Duration::from_secs(secs as u64);
            self.send_lifetime = true;
            self.defer(Deferred::Update, now);
        }
    }

    fn write_attributes(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        if path.len() > 3 {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        if let Err(error) = self.device.discover(path) {
            return error.into();
        }
        let Ok(query) = message::uri_query(request) else {
            return Answer::code(ResponseType::BadRequest);
        };
        let index = self.attributes.iter().position(|(p, _)| p == path);
        let mut attrs = index.map_or_else(Attributes::default, |i| self.attributes[i].1);
        if attrs.apply_query(&query).is_err() {
            return Answer::code(ResponseType::BadRequest);
        }
        if let Some(i) = index {
            self.attributes[i].1 = attrs;
        } else {
            self.attributes.reserve_exact(1);
            self.attributes.push((*path, attrs));
        }
        self.reschedule_observations(now, path);
        Answer::code(ResponseType::Changed)
    }

    /// New attributes apply to observations at, above or below the path from now on.
    pub(super) fn reschedule_observations(&mut self, now: Instant, path: &Path) {
        for index in 0..self.observations.len() {
            let observed = self.observations[index].path;
            if observed.starts_with(path) || path.starts_with(&observed) {
                self.observations[index].next_check = now;
            }
        }
    }

    fn execute(&mut self, now: Instant, path: &Path) -> Answer {
        if let Err(error) = self.device.check_execute(path) {
            return error.into();
        }
        match (path.object_id(), path.resource_id()) {
            (Some(5), Some(2)) => return self.execute_firmware_update(now),
            (Some(5), Some(10)) => return self.execute_firmware_cancel(now),
            _ => {}
        }
        let action = match (path.object_id(), path.resource_id()) {
            (Some(3), Some(4)) => Some(Deferred::Reboot),
            (Some(3), Some(5)) => Some(Deferred::FactoryReset),
            (Some(1), Some(4)) => Some(Deferred::Disable),
            (Some(1), Some(8)) => Some(Deferred::Update),
            (Some(1), Some(9)) if self.config.bootstrap.is_some() => Some(Deferred::Bootstrap),
            _ => None,
        };
        if let Some(action) = action {
            self.defer(action, now);
        }
        Answer::code(ResponseType::Changed)
    }

    fn create(&mut self, now: Instant, path: &Path, request: &Packet) -> Answer {
        let Some(object) = path.object_id() else {
            return Answer::code(ResponseType::MethodNotAllowed);
        };
        let records = match self.decode_payload(path, request) {
            Ok(records) => records,
            Err(answer) => return answer,
        };
        let mut ids = records
            .iter()
            .filter_map(|r| r.path.instance_id())
            .filter(|i| *i != UNSPECIFIED_INSTANCE);
        let instance = ids.next();
        if ids.any(|other| Some(other) != instance) {
            return Answer::code(ResponseType::BadRequest);
        }
        match self.device.create(object, instance, records) {
            Ok(id) => {
                self.objects_changed(now);
                Answer {
                    location: Some(Path::instance(object, id)),
                    ..Answer::code(ResponseType::Created)
                }
            }
            Err(error) => error.into(),
        }
    }

    fn delete(&mut self, now: Instant, path: &Path) -> Answer {
        if path.len() != 2 {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        if let Err(error) = self.device.delete(path) {
            return error.into();
        }
        self.observations
            .retain(|o| o.path.is_root() || !o.path.starts_with(path));
        self.attributes.retain(|(p, _)| !p.starts_with(path));
        self.objects_changed(now);
        Answer::code(ResponseType::Deleted)
    }

    /// Instances came or went: the next Update carries the object list.
    fn objects_changed(&mut self, now: Instant) {
        self.send_objects = true;
        self.defer(Deferred::Update, now);
    }
}

/// The object path and method of a request, or how it is refused: 4.04 for a path that names
/// no object, 4.02 for a critical option this client does not understand, 4.05 for no method.
pub(super) fn request_target(
    request: &Packet,
) -> Result<(Path, RequestType), (OperationKind, Path, Answer)> {
    let segments = message::uri_path(request).unwrap_or_else(|_| vec!["?"]);
    let Ok(path) = Path::from_segments(&segments) else {
        return Err((
            OperationKind::Other,
            Path::ROOT,
            Answer::code(ResponseType::NotFound),
        ));
    };
    let refused = |code| Err((OperationKind::Other, path, Answer::code(code)));
    if has_unknown_critical(request) {
        return refused(ResponseType::BadOption);
    }
    let MessageClass::Request(method) = request.header.code else {
        return refused(ResponseType::MethodNotAllowed);
    };
    Ok((path, method))
}

/// Whether the request carries a critical option this client does not understand (4.02).
fn has_unknown_critical(request: &Packet) -> bool {
    request
        .options()
        .any(|(number, _)| number % 2 == 1 && !KNOWN_CRITICAL.contains(number))
}

/// Which LWM2M operation a request is (the POST dispatch follows Leshan).
pub(super) fn operation_kind(method: RequestType, path: &Path, request: &Packet) -> OperationKind {
    let format = message::content_format(request).ok().flatten();
    let is_text = |f: u16| ContentFormat::from_code(f) == Some(ContentFormat::Text);
    match method {
        RequestType::Get => match message::observe(request).ok().flatten() {
            Some(0) => OperationKind::Observe,
            Some(1) => OperationKind::CancelObservation,
            _ if message::accept(request).ok().flatten() == Some(40) => OperationKind::Discover,
            _ => OperationKind::Read,
        },
        RequestType::Put if request.payload.is_empty() && format.is_none() => {
            OperationKind::WriteAttributes
        }
        RequestType::Put => OperationKind::Write,
        RequestType::Post => match path.len() {
            1 => OperationKind::Create,
            // No format or text/plain, also as its pre-2017 number 1541 (lwm2m-node-lib marks
            // its Executes with it).
            3 if format.is_none_or(is_text) => OperationKind::Execute,
            2 | 3 => OperationKind::Write,
            _ => OperationKind::Other,
        },
        RequestType::Delete => OperationKind::Delete,
        RequestType::Fetch => match message::observe(request).ok().flatten() {
            Some(0) => OperationKind::ObserveComposite,
            Some(1) => OperationKind::CancelObservation,
            _ => OperationKind::ReadComposite,
        },
        RequestType::IPatch => OperationKind::WriteComposite,
        _ => OperationKind::Other,
    }
}

fn push_attributes(out: &mut Vec<(String, Option<String>)>, attrs: &Attributes) {
    let mut push = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push((name.to_string(), Some(value)));
        }
    };
    push("pmin", attrs.pmin.map(|v| v.to_string()));
    push("pmax", attrs.pmax.map(|v| v.to_string()));
    push("gt", attrs.gt.map(|v| v.to_string()));
    push("lt", attrs.lt.map(|v| v.to_string()));
    push("st", attrs.st.map(|v| v.to_string()));
}
