//! The CBOR framing of `application/senml+cbor`: integer labels, `vlo` as a text label.

use ciborium::Value as Cbor;

use super::{Entry, RawRecord, RawValue, one_value};
use crate::content::ContentError;
use crate::content::convert::{Number, decode_base64};

fn malformed(what: impl std::fmt::Display) -> ContentError {
    ContentError::Malformed(format!("SenML CBOR: {what}"))
}

/// The RFC 8428 label for an integer key.
fn label(key: &Cbor) -> Option<String> {
    match key {
        Cbor::Integer(i) => Some(
            match i128::from(*i) {
                -2 => "bn",
                -3 => "bt",
                0 => "n",
                2 => "v",
                3 => "vs",
                4 => "vb",
                6 => "t",
                8 => "vd",
                _ => return None,
            }
            .to_string(),
        ),
        Cbor::Text(text) => Some(text.clone()),
        _ => None,
    }
}

fn text(value: Cbor) -> Result<String, ContentError> {
    value.into_text().map_err(|_| malformed("expected text"))
}

fn raw_record(map: Vec<(Cbor, Cbor)>) -> Result<RawRecord, ContentError> {
    let mut record = RawRecord::default();
    let mut seen: Vec<String> = Vec::new();
    let mut values = Vec::new();
    for (key, value) in map {
        let Some(label) = label(&key) else { continue };
        if seen.contains(&label) {
            return Err(malformed(format!("duplicate label {label}")));
        }
        match label.as_str() {
            "bn" => record.bn = Some(text(value)?),
            "n" => record.n = Some(text(value)?),
            "v" => values.push(Some(RawValue::Number(match value {
                Cbor::Integer(i) => Number::Int(i128::from(i)),
                Cbor::Float(f) => Number::Float(f),
                _ => return Err(malformed("v is not a number")),
            }))),
            "vs" => values.push(Some(RawValue::String(text(value)?))),
            "vb" => values.push(Some(RawValue::Bool(
                value
                    .as_bool()
                    .ok_or_else(|| malformed("vb is not a boolean"))?,
            ))),
            "vd" => values.push(Some(RawValue::Data(match value {
                Cbor::Bytes(bytes) => bytes,
                Cbor::Text(t) => decode_base64(&t).ok_or_else(|| malformed("vd is not base64"))?,
                _ => return Err(malformed("vd is not bytes")),
            }))),
            "vlo" => values.push(Some(RawValue::Objlnk(text(value)?))),
            // Labels ending in '_' must be understood (RFC 8428 section 4.4).
            other if other.ends_with('_') => {
                return Err(malformed(format!("unknown label {other}")));
            }
            _ => {}
        }
        seen.push(label);
    }
    record.value = one_value(values)?;
    Ok(record)
}

pub(super) fn parse(payload: &[u8]) -> Result<Vec<RawRecord>, ContentError> {
    let mut reader = payload;
    let value: Cbor = ciborium::from_reader(&mut reader).map_err(malformed)?;
    if !reader.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    let Cbor::Array(items) = value else {
        return Err(malformed("not an array"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Cbor::Map(map) => raw_record(map),
            _ => Err(malformed("record is not a map")),
        })
        .collect()
}

pub(super) fn write(entries: Vec<Entry>) -> Result<Vec<u8>, ContentError> {
    let int = |i: i64| Cbor::Integer(i.into());
    let records = entries
        .into_iter()
        .map(|entry| {
            let mut map = Vec::with_capacity(3);
            if let Some(bn) = entry.bn {
                map.push((int(-2), Cbor::Text(bn)));
            }
            map.push((int(0), Cbor::Text(entry.n)));
            let Some(value) = entry.value else {
                return Cbor::Map(map);
            };
            map.push(match value {
                RawValue::Number(Number::Int(i)) => {
                    let value = i64::try_from(i)
                        .map(Cbor::from)
                        .or_else(|_| u64::try_from(i).map(Cbor::from))
                        .unwrap_or(Cbor::Float(i as f64));
                    (int(2), value)
                }
                // ciborium writes the shortest float that keeps the value (half, single, double).
                RawValue::Number(Number::Float(f)) => (int(2), Cbor::Float(f)),
                RawValue::String(s) => (int(3), Cbor::Text(s)),
                RawValue::Bool(b) => (int(4), Cbor::Bool(b)),
                RawValue::Data(d) => (int(8), Cbor::Bytes(d)),
                RawValue::Objlnk(s) => (Cbor::Text("vlo".into()), Cbor::Text(s)),
            });
            Cbor::Map(map)
        })
        .collect();
    let mut out = Vec::new();
    ciborium::into_writer(&Cbor::Array(records), &mut out).map_err(malformed)?;
    Ok(out)
}
