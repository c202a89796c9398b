//! Helpers shared by the codecs: schema lookups, type checks, numbers, object links, base64.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{ContentError, ResourceSpec, Schema};
use crate::model::{Path, ResourceType, Value};

/// The resource path (`/o/i/r`) of a resource or resource-instance path.
pub(super) fn resource_path(path: &Path) -> Path {
    let ids = path.ids();
    Path::from_ids(&ids[..ids.len().min(3)]).unwrap_or(*path)
}

/// Looks up the schema entry of the resource `path` lies in.
pub(super) fn lookup(schema: &dyn Schema, path: &Path) -> Option<ResourceSpec> {
    schema.resource(path.object_id()?, path.resource_id()?)
}

/// Like [`lookup`], but an unknown resource is an error (for formats that carry no types).
pub(super) fn require(schema: &dyn Schema, path: &Path) -> Result<ResourceSpec, ContentError> {
    lookup(schema, path).ok_or_else(|| ContentError::UnknownResource(resource_path(path)))
}

pub(super) fn wrong_type(path: &Path, kind: ResourceType) -> ContentError {
    ContentError::WrongType { path: *path, kind }
}

/// Checks that `value` has the schema's type.
pub(super) fn check_kind(
    path: &Path,
    value: &Value,
    kind: ResourceType,
) -> Result<(), ContentError> {
    if value.kind() == kind {
        Ok(())
    } else {
        Err(wrong_type(path, kind))
    }
}

/// A number as it arrives in JSON or CBOR, before the schema says what it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    /// The number as an integer, if it is one (JSON writers may send `87.0` for 87).
    fn integral(self) -> Option<i128> {
        match self {
            Number::Int(v) => Some(v),
            // `as` saturates; the range checks of the callers reject saturated values.
            Number::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(f as i128),
            Number::Float(_) => None,
        }
    }

    pub(super) fn from_json(n: &serde_json::Number) -> Number {
        match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Number::Int(i128::from(i)),
            (None, Some(u)) => Number::Int(i128::from(u)),
            _ => Number::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// The JSON form; `None` for what JSON cannot write (infinities, NaN).
    pub(super) fn to_json(self) -> Option<serde_json::Number> {
        match self {
            Number::Int(i) => i64::try_from(i)
                .map(serde_json::Number::from)
                .or_else(|_| u64::try_from(i).map(serde_json::Number::from))
                .ok(),
            Number::Float(f) => serde_json::Number::from_f64(f),
        }
    }

    /// The number form of a numeric value.
    pub(super) fn of(value: &Value) -> Option<Number> {
        Some(match *value {
            Value::Integer(v) | Value::Time(v) => Number::Int(i128::from(v)),
            Value::UnsignedInteger(v) => Number::Int(i128::from(v)),
            Value::Float(v) => Number::Float(v),
            _ => return None,
        })
    }
}

/// Converts a number to the value the schema type asks for.
pub(super) fn number_value(
    path: &Path,
    number: Number,
    kind: ResourceType,
) -> Result<Value, ContentError> {
    let wrong = || wrong_type(path, kind);
    let int = number.integral();
    match kind {
        ResourceType::Integer => int
            .and_then(|v| i64::try_from(v).ok())
            .map(Value::Integer)
            .ok_or_else(wrong),
        ResourceType::Time => int
            .and_then(|v| i64::try_from(v).ok())
            .map(Value::Time)
            .ok_or_else(wrong),
        ResourceType::UnsignedInteger => int
            .and_then(|v| u64::try_from(v).ok())
            .map(Value::UnsignedInteger)
            .ok_or_else(wrong),
        ResourceType::Float => Ok(Value::Float(match number {
            Number::Int(v) => v as f64,
            Number::Float(v) => v,
        })),
        _ => Err(wrong()),
    }
}

/// Guesses a value for a number whose resource the schema does not know.
pub(super) fn infer_number(number: Number) -> Value {
    match number {
        Number::Int(v) => match (i64::try_from(v), u64::try_from(v)) {
            (Ok(i), _) => Value::Integer(i),
            (_, Ok(u)) => Value::UnsignedInteger(u),
            _ => Value::Float(v as f64),
        },
        Number::Float(v) => Value::Float(v),
    }
}

/// Parses an object link `3:0`.
pub(super) fn parse_objlnk(text: &str) -> Option<(u16, u16)> {
    let (object, instance) = text.trim().split_once(':')?;
    Some((object.parse().ok()?, instance.parse().ok()?))
}

pub(super) fn format_objlnk(object: u16, instance: u16) -> String {
    format!("{object}:{instance}")
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 in either alphabet, padded or not (`SenML` says base64url without padding,
/// wakaama sends padded standard base64).
pub(super) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    LENIENT.decode(normalized).ok()
}

/// Standard base64 with padding (text/plain and OMA JSON opaque values).
pub(super) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64url without padding (the `SenML` `vd` field).
pub(super) fn encode_base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
