//! The JSON framing of `application/senml+json`.

use serde::{Deserialize, Serialize};

use super::{Entry, RawRecord, RawValue, one_value};
use crate::content::convert::{Number, decode_base64, encode_base64url};
use crate::content::{ContentError, ContentFormat};

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct JsonRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    bn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bt: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vb: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<f64>,
}

pub(super) fn parse(payload: &[u8]) -> Result<Vec<RawRecord>, ContentError> {
    let records: Vec<JsonRecord> = serde_json::from_slice(payload)
        .map_err(|e| ContentError::Malformed(format!("SenML JSON: {e}")))?;
    records.into_iter().map(raw_record).collect()
}

fn raw_record(record: JsonRecord) -> Result<RawRecord, ContentError> {
    let data = match record.vd {
        Some(text) => Some(RawValue::Data(decode_base64(&text).ok_or_else(|| {
            ContentError::Malformed(format!("vd {text:?} is not base64"))
        })?)),
        None => None,
    };
    let number = record.v.map(|n| RawValue::Number(Number::from_json(&n)));
    let value = one_value([
        number,
        record.vs.map(RawValue::String),
        record.vb.map(RawValue::Bool),
        data,
        record.vlo.map(RawValue::Objlnk),
    ])?;
    Ok(RawRecord {
        bn: record.bn,
        n: record.n,
        value,
    })
}

pub(super) fn write(entries: Vec<Entry>) -> Result<Vec<u8>, ContentError> {
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut record = JsonRecord {
            bn: entry.bn,
            n: Some(entry.n),
            ..JsonRecord::default()
        };
        match entry.value {
            Some(RawValue::Number(n)) => {
                record.v = Some(n.to_json().ok_or(ContentError::NotRepresentable {
                    format: ContentFormat::SenmlJson,
                    path: entry.path,
                })?);
            }
            Some(RawValue::String(s)) => record.vs = Some(s),
            Some(RawValue::Bool(b)) => record.vb = Some(b),
            Some(RawValue::Data(d)) => record.vd = Some(encode_base64url(&d)),
            Some(RawValue::Objlnk(s)) => record.vlo = Some(s),
            None => {}
        }
        records.push(record);
    }
    serde_json::to_vec(&records).map_err(|e| ContentError::Malformed(e.to_string()))
}
