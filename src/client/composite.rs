//! LWM2M 1.1 composite operations at the root path: Read-Composite (FETCH), Write-Composite
//! (iPATCH), Observe-Composite (FETCH + Observe 0) and its cancel (FETCH + Observe 1, or RST),
//! with `SenML` JSON or CBOR payloads.
//!
//! Read-Composite is best effort (TS Core 1.1, Read-Composite: "if any of the requested
//! resources do not have a valid value to return, they will not be included in the response"):
//! a path that does not exist is left out, and only when none is found the answer is 4.04.
//! Write-Composite is all or nothing: one refused record and nothing is written.

use std::net::SocketAddr;

use coap_lite::{Packet, ResponseType};

use super::operations::Answer;
use super::{Client, LwM2mVersion, OperationKind};
use crate::clock::Instant;
use crate::coap::{Token, message};
use crate::content::{self, ContentError, ContentFormat};
use crate::model::{Device, ModelError, Path, Record};

/// The paths each Observe-Composite names, by token, kept beside its observation (whose path
/// is the root). A boxed slice, rebuilt on the rare change: every client carries the field and
/// most never have a composite observation.
#[derive(Debug, Default)]
pub(super) struct CompositePaths(Box<[Named]>);

/// One Observe-Composite's token and paths.
type Named = (Token, Box<[Path]>);

impl CompositePaths {
    fn insert(&mut self, token: Token, paths: Vec<Path>) {
        let mut list = std::mem::take(&mut self.0).into_vec();
        list.retain(|(t, _)| *t != token);
        list.push((token, paths.into_boxed_slice()));
        self.0 = list.into_boxed_slice();
    }

    pub(super) fn remove(&mut self, token: Token) {
        if self.0.iter().any(|(t, _)| *t == token) {
            let mut list = std::mem::take(&mut self.0).into_vec();
            list.retain(|(t, _)| *t != token);
            self.0 = list.into_boxed_slice();
        }
    }

    fn get(&self, token: Token) -> &[Path] {
        self.0
            .iter()
            .find(|(t, _)| *t == token)
            .map_or(&[], |(_, paths)| &**paths)
    }

    pub(super) fn heap_bytes(&self) -> usize {
        size_of_val(&*self.0) + self.0.iter().map(|(_, p)| size_of_val(&**p)).sum::<usize>()
    }
}

/// A composite read answered: the format and payload of the answer, from these records of
/// these paths.
struct Rendered {
    format: ContentFormat,
    payload: Vec<u8>,
    records: Vec<Record>,
    paths: Vec<Path>,
}

impl Client {
    /// Answers a FETCH or iPATCH; a 1.0 client does not know them (4.05).
    pub(super) fn composite(
        &mut self,
        now: Instant,
        from: SocketAddr,
        kind: OperationKind,
        path: &Path,
        request: &Packet,
    ) -> Answer {
        if self.config.version == LwM2mVersion::V1_0 {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        if !path.is_root() {
            return Answer::code(ResponseType::MethodNotAllowed);
        }
        let format = match senml_format(request) {
            Ok(format) => format,
            Err(answer) => return answer,
        };
        match kind {
            OperationKind::WriteComposite => self.write_composite(now, format, request),
            OperationKind::ReadComposite => self.read_composite(now, format, request),
            OperationKind::ObserveComposite => self.observe_composite(now, from, format, request),
            OperationKind::CancelObservation => {
                if let Some(token) = Token::from_slice(request.get_token()) {
                    self.cancel_observation(token);
                }
                self.read_composite(now, format, request)
            }
            _ => Answer::code(ResponseType::MethodNotAllowed),
        }
    }

    fn read_composite(&mut self, now: Instant, format: ContentFormat, request: &Packet) -> Answer {
        match self.render_composite(now, format, request) {
            Ok(rendered) => Answer::content(rendered.format, rendered.payload),
            Err(answer) => answer,
        }
    }

    /// The paths the request names, their records and the answer encoded as it accepts.
    fn render_composite(
        &mut self,
        now: Instant,
        format: ContentFormat,
        request: &Packet,
    ) -> Result<Rendered, Answer> {
        let paths = content::decode_names(format, &request.payload)
            .map_err(|_| Answer::code(ResponseType::BadRequest))?;
        if paths.is_empty() {
            return Err(Answer::code(ResponseType::BadRequest));
        }
        let answer_format = match message::accept(request).ok().flatten() {
            None => format,
            Some(code) => ContentFormat::from_code(code)
                .filter(|f| matches!(f, ContentFormat::SenmlJson | ContentFormat::SenmlCbor))
                .ok_or_else(|| Answer::code(ResponseType::NotAcceptable))?,
        };
        let records = read_paths(&mut self.device, &paths, now).map_err(Answer::from)?;
        let payload = content::encode(answer_format, &Path::ROOT, &records, &self.device)
            .map_err(|_| Answer::code(ResponseType::InternalServerError))?;
        Ok(Rendered {
            format: answer_format,
            payload,
            records,
            paths,
        })
    }

    fn observe_composite(
        &mut self,
        now: Instant,
        from: SocketAddr,
        format: ContentFormat,
        request: &Packet,
    ) -> Answer {
        let Some(token) = Token::from_slice(request.get_token()) else {
            return Answer::code(ResponseType::BadRequest);
        };
        let refresh = self.observations.iter().any(|o| o.token == token);
        if !refresh && self.observations.len() >= self.config.max_observations {
            // Composite observations share the device's room for observers.
            return Answer::code(ResponseType::ServiceUnavailable);
        }
        match self.render_composite(now, format, request) {
            Ok(Rendered {
                format: answer_format,
                payload,
                records,
                paths,
            }) => {
                self.composite_paths.insert(token, paths);
                let sequence = self.observe(now, from, token, Path::ROOT, answer_format, &records);
                Answer::observing(sequence, answer_format, payload)
            }
            Err(answer) => answer,
        }
    }

    fn write_composite(&mut self, now: Instant, format: ContentFormat, request: &Packet) -> Answer {
        let records = match content::decode(format, &Path::ROOT, &request.payload, &self.device) {
            Ok(records) if !records.is_empty() => records,
            Err(ContentError::UnknownResource(_)) => return Answer::code(ResponseType::NotFound),
            // No record, or a payload that does not decode.
            Ok(_) | Err(_) => return Answer::code(ResponseType::BadRequest),
        };
        if records.iter().any(|r| r.path.object_id() == Some(0)) {
            return Answer::code(ResponseType::NotFound);
        }
        let written: Vec<Path> = records.iter().map(|r| r.path).collect();
        if let Err(error) = self.device.write_composite(records) {
            return error.into();
        }
        self.after_server_write(now, &written);
        Answer::code(ResponseType::Changed)
    }

    /// The records an observation reports now: its path, or its composite's paths.
    pub(super) fn observed_records(
        &mut self,
        token: Token,
        path: &Path,
        now: Instant,
    ) -> Result<Vec<Record>, ModelError> {
        if !path.is_root() {
            return self.device.read(path, now);
        }
        let paths = self.composite_paths.get(token);
        read_paths(&mut self.device, paths, now)
    }

    /// Drops every observation (and the paths of composite ones).
    pub(super) fn clear_observations(&mut self) {
        self.observations.clear();
        self.composite_paths = CompositePaths::default();
    }
}

/// Reads each path, leaving out those that do not exist (or the Security object, invisible to
/// a management server); 4.04 when none does. For composite reads and observations, and Send.
pub(super) fn read_paths(
    device: &mut Device,
    paths: &[Path],
    now: Instant,
) -> Result<Vec<Record>, ModelError> {
    let mut records = Vec::new();
    let mut found = false;
    for path in paths {
        if path.object_id() == Some(0) || path.is_root() {
            continue;
        }
        if let Ok(read) = device.read(path, now) {
            found = true;
            records.extend(read);
        }
    }
    if found {
        Ok(records)
    } else {
        Err(ModelError::NotFound(Path::ROOT))
    }
}

/// The request's `SenML` Content-Format: 4.00 without one, 4.15 for any other.
fn senml_format(request: &Packet) -> Result<ContentFormat, Answer> {
    let code = message::content_format(request)
        .ok()
        .flatten()
        .ok_or_else(|| Answer::code(ResponseType::BadRequest))?;
    ContentFormat::from_code(code)
        .filter(|f| matches!(f, ContentFormat::SenmlJson | ContentFormat::SenmlCbor))
        .ok_or_else(|| Answer::code(ResponseType::UnsupportedContentFormat))
}
