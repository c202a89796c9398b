//! `application/senml+json` (110) and `application/senml+cbor` (112): RFC 8428 with the LWM2M
//! `vlo` extension. The record model and name resolution here are shared with OMA JSON.

use super::convert::{
    Number, check_kind, decode_base64, infer_number, lookup, number_value, parse_objlnk, wrong_type,
};
use super::{ContentError, ContentFormat, Schema};
use crate::model::{Path, Record, ResourceType, Value};

mod cbor;
mod json;
#[cfg(test)]
mod tests;

/// A record value before the schema gives it a type.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum RawValue {
    Number(Number),
    String(String),
    Bool(bool),
    Data(Vec<u8>),
    Objlnk(String),
}

/// A record as it sits in the payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RawRecord {
    pub bn: Option<String>,
    pub n: Option<String>,
    pub value: Option<RawValue>,
}

/// A record ready to write: `bn` on the first only, `n` relative to it; no value in the
/// records of a request that names paths only.
pub(super) struct Entry {
    pub path: Path,
    pub bn: Option<String>,
    pub n: String,
    pub value: Option<RawValue>,
}

/// Picks one value out of the value fields of a record; more than one is malformed.
pub(super) fn one_value(
    values: impl IntoIterator<Item = Option<RawValue>>,
) -> Result<Option<RawValue>, ContentError> {
    let mut found = values.into_iter().flatten();
    let first = found.next();
    if found.next().is_some() {
        return Err(ContentError::Malformed("record has several values".into()));
    }
    Ok(first)
}

/// Builds the entries for `records`: `bn` is the base path (its parent when a record sits on
/// the base itself, so that no name is empty) and names are relative.
pub(super) fn entries(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<Entry>, ContentError> {
    let prefix = if records.iter().any(|r| r.path == *base) {
        base.parent()
    } else {
        *base
    };
    let bn = if prefix.is_root() {
        "/".to_string()
    } else {
        format!("{prefix}/")
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        if let Some(spec) = lookup(schema, &record.path) {
            check_kind(&record.path, &record.value, spec.kind)?;
        }
        let n = record.path.ids()[prefix.len()..]
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("/");
        out.push(Entry {
            path: record.path,
            bn: (i == 0).then(|| bn.clone()),
            n,
            value: Some(raw_value(&record.value)),
        });
    }
    Ok(out)
}

fn raw_value(value: &Value) -> RawValue {
    match value {
        Value::String(s) | Value::Corelnk(s) => RawValue::String(s.clone()),
        Value::Boolean(b) => RawValue::Bool(*b),
        Value::Opaque(bytes) => RawValue::Data(bytes.clone()),
        Value::Objlnk(o, i) => RawValue::Objlnk(super::convert::format_objlnk(*o, *i)),
        // The remaining values are numbers.
        other => RawValue::Number(Number::of(other).unwrap_or(Number::Int(0))),
    }
}

/// Resolves `bn` + `n` into a path; names without a leading `/` are relative to `base`.
fn resolve_name(base: &Path, bn: &str, n: Option<&str>) -> Result<Path, ContentError> {
    let name = format!("{bn}{}", n.unwrap_or(""));
    let full = if name.starts_with('/') {
        name.clone()
    } else {
        format!("{base}/{name}")
    };
    full.parse()
        .map_err(|e| ContentError::Malformed(format!("bad name {name:?}: {e}")))
}

/// Turns payload records into records with full paths and schema-typed values.
pub(super) fn resolve(
    format: ContentFormat,
    base: &Path,
    raws: Vec<RawRecord>,
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let mut bn = String::new();
    let mut records = Vec::with_capacity(raws.len());
    for raw in raws {
        if let Some(new_bn) = raw.bn {
            bn = new_bn;
        }
        let path = resolve_name(base, &bn, raw.n.as_deref())?;
        let Some(value) = raw.value else {
            return Err(ContentError::Malformed(format!(
                "record {path} has no value"
            )));
        };
        if path.len() < 3 {
            return Err(ContentError::NotRepresentable { format, path });
        }
        if !path.starts_with(base) {
            return Err(ContentError::OutsideBase {
                record: path,
                base: *base,
            });
        }
        let value = typed_value(&path, value, schema)?;
        records.push(Record { path, value });
    }
    Ok(records)
}

/// Paths named by records (bn carried over), for requests that carry names only.
fn resolve_names(raws: Vec<RawRecord>) -> Result<Vec<Path>, ContentError> {
    let mut bn = String::new();
    let mut paths = Vec::with_capacity(raws.len());
    for raw in raws {
        if let Some(new_bn) = raw.bn {
            bn = new_bn;
        }
        paths.push(resolve_name(&Path::ROOT, &bn, raw.n.as_deref())?);
    }
    Ok(paths)
}

/// Gives a payload value the schema's type; values of unknown resources get their own.
fn typed_value(path: &Path, raw: RawValue, schema: &dyn Schema) -> Result<Value, ContentError> {
    let Some(spec) = lookup(schema, path) else {
        return match raw {
            RawValue::Number(n) => Ok(infer_number(n)),
            RawValue::String(s) => Ok(Value::String(s)),
            RawValue::Bool(b) => Ok(Value::Boolean(b)),
            RawValue::Data(d) => Ok(Value::Opaque(d)),
            RawValue::Objlnk(s) => parse_objlnk(&s)
                .map(|(o, i)| Value::Objlnk(o, i))
                .ok_or_else(|| ContentError::Malformed(format!("bad object link {s:?}"))),
        };
    };
    let kind = spec.kind;
    match (raw, kind) {
        (RawValue::Number(n), _) => number_value(path, n, kind),
        (RawValue::String(s), ResourceType::String) => Ok(Value::String(s)),
        (RawValue::String(s), ResourceType::Corelnk) => Ok(Value::Corelnk(s)),
        // OMA JSON carries opaque values as base64 in `sv`.
        (RawValue::String(s), ResourceType::Opaque) => decode_base64(&s)
            .map(Value::Opaque)
            .ok_or_else(|| wrong_type(path, kind)),
        (RawValue::Bool(b), ResourceType::Boolean) => Ok(Value::Boolean(b)),
        (RawValue::Data(d), ResourceType::Opaque) => Ok(Value::Opaque(d)),
        (RawValue::Objlnk(s), ResourceType::Objlnk) => parse_objlnk(&s)
            .map(|(o, i)| Value::Objlnk(o, i))
            .ok_or_else(|| wrong_type(path, kind)),
        _ => Err(wrong_type(path, kind)),
    }
}

pub(super) fn encode_json(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    json::write(entries(base, records, schema)?)
}

pub(super) fn decode_json(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    resolve(
        ContentFormat::SenmlJson,
        base,
        json::parse(payload)?,
        schema,
    )
}

pub(super) fn encode_cbor(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    cbor::write(entries(base, records, schema)?)
}

pub(super) fn decode_cbor(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    resolve(
        ContentFormat::SenmlCbor,
        base,
        cbor::parse(payload)?,
        schema,
    )
}

/// A `SenML` Read-Composite or Observe-Composite request: records naming `paths`, no values.
pub fn encode_names(format: ContentFormat, paths: &[Path]) -> Result<Vec<u8>, ContentError> {
    let entries = paths
        .iter()
        .map(|path| Entry {
            path: *path,
            bn: None,
            n: path.to_string(),
            value: None,
        })
        .collect();
    match format {
        ContentFormat::SenmlJson => json::write(entries),
        ContentFormat::SenmlCbor => cbor::write(entries),
        _ => Err(ContentError::NotRepresentable {
            format,
            path: Path::ROOT,
        }),
    }
}

/// The paths a Read-Composite or Observe-Composite request names (`SenML` values are ignored;
/// LWM2M CBOR names paths with null values).
pub fn decode_names(format: ContentFormat, payload: &[u8]) -> Result<Vec<Path>, ContentError> {
    let raws = match format {
        ContentFormat::SenmlJson => json::parse(payload)?,
        ContentFormat::SenmlCbor => cbor::parse(payload)?,
        ContentFormat::LwM2mCbor => return super::lwm2m_cbor::decode_names(payload),
        _ => {
            return Err(ContentError::NotRepresentable {
                format,
                path: Path::ROOT,
            });
        }
    };
    resolve_names(raws)
}
