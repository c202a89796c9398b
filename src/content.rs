//! LWM2M content formats: text, opaque, link-format, OMA TLV, OMA JSON, `SenML` JSON and
//! `SenML` CBOR, LWM2M CBOR. Codecs take and return [`Record`]s; they never panic on malformed input.

use crate::model::{Path, Record, ResourceSpec, ResourceType, Schema};

mod convert;
pub mod link;
mod lwm2m_cbor;
mod oma_json;
mod senml;
#[cfg(test)]
mod test_schema;
#[cfg(test)]
mod tests;
mod text;
mod tlv;

pub use lwm2m_cbor::decode_lwm2m_cbor;
pub use senml::{decode_names, encode_names};

/// Instance id given to resources decoded at an object path without an instance wrapper
/// (a Create whose payload lists resources only): the caller picks the real id.
pub const UNSPECIFIED_INSTANCE: u16 = u16::MAX;

/// A CoAP Content-Format / Accept value that LWM2M uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentFormat {
    Text,
    LinkFormat,
    Opaque,
    SenmlJson,
    SenmlCbor,
    Tlv,
    OmaJson,
    /// `application/vnd.oma.lwm2m+cbor`, LWM2M 1.2.
    LwM2mCbor,
}

impl ContentFormat {
    /// The registered number.
    pub fn code(self) -> u16 {
        match self {
            ContentFormat::Text => 0,
            ContentFormat::LinkFormat => 40,
            ContentFormat::Opaque => 42,
            ContentFormat::SenmlJson => 110,
            ContentFormat::SenmlCbor => 112,
            ContentFormat::Tlv => 11542,
            ContentFormat::OmaJson => 11543,
            ContentFormat::LwM2mCbor => 11544,
        }
    }

    /// Parses a number, accepting the pre-2017 OMA numbers (1541-1544) some servers still send.
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            0 | 1541 => ContentFormat::Text,
            40 => ContentFormat::LinkFormat,
            42 | 1544 => ContentFormat::Opaque,
            110 => ContentFormat::SenmlJson,
            112 => ContentFormat::SenmlCbor,
            11542 | 1542 => ContentFormat::Tlv,
            11543 | 1543 => ContentFormat::OmaJson,
            11544 => ContentFormat::LwM2mCbor,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ContentError {
    #[error("payload ended early at byte {0}")]
    UnexpectedEnd(usize),
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("{format:?} cannot carry a value at {path}")]
    NotRepresentable { format: ContentFormat, path: Path },
    #[error("resource {0} is unknown")]
    UnknownResource(Path),
    #[error("value at {path} does not fit type {kind:?}")]
    WrongType { path: Path, kind: ResourceType },
    #[error("record {record} lies outside the request path {base}")]
    OutsideBase { record: Path, base: Path },
}

/// Encodes `records` (all at or under `base`) as the answer to a request on `base`.
///
/// Values must have their resource's schema type (`WrongType`). TLV and text need the resource
/// in the schema (`UnknownResource`); the JSON/CBOR formats write unknown resources as they are.
/// Text and opaque carry one value at exactly `base`; TLV cannot answer at the root.
pub fn encode(
    format: ContentFormat,
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    for record in records {
        if !record.path.starts_with(base) {
            return Err(ContentError::OutsideBase {
                record: record.path,
                base: *base,
            });
        }
        // Values live at resources or resource instances only.
        if record.path.len() < 3 {
            return Err(ContentError::NotRepresentable {
                format,
                path: record.path,
            });
        }
    }
    match format {
        ContentFormat::Text => text::encode_text(base, records, schema),
        ContentFormat::Opaque => text::encode_opaque(base, records, schema),
        ContentFormat::Tlv => tlv::encode(base, records, schema),
        ContentFormat::SenmlJson => senml::encode_json(base, records, schema),
        ContentFormat::SenmlCbor => senml::encode_cbor(base, records, schema),
        ContentFormat::OmaJson => oma_json::encode(base, records, schema),
        ContentFormat::LwM2mCbor => lwm2m_cbor::encode(records, schema),
        ContentFormat::LinkFormat => Err(ContentError::NotRepresentable {
            format,
            path: *base,
        }),
    }
}

/// Decodes a payload sent to `base` into records with full paths.
///
/// Values take the schema's type (a `SenML` `v` of 87 is an `Integer` for an integer resource and
/// a `Float` for a float one); resources the schema lacks are `UnknownResource` in TLV and text
/// and keep the payload's own type in the JSON/CBOR formats. `SenML` times (`bt`, `t`) are ignored.
pub fn decode(
    format: ContentFormat,
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    match format {
        ContentFormat::Text => text::decode_text(base, payload, schema),
        ContentFormat::Opaque => text::decode_opaque(base, payload, schema),
        ContentFormat::Tlv => tlv::decode(base, payload, schema),
        ContentFormat::SenmlJson => senml::decode_json(base, payload, schema),
        ContentFormat::SenmlCbor => senml::decode_cbor(base, payload, schema),
        ContentFormat::OmaJson => oma_json::decode(base, payload, schema),
        ContentFormat::LwM2mCbor => lwm2m_cbor::decode(base, payload, schema),
        ContentFormat::LinkFormat => Err(ContentError::NotRepresentable {
            format,
            path: *base,
        }),
    }
}
