//! OMA JSON (11543), the LWM2M 1.0 JSON format: `{"bn":"/3/0/","e":[{"n":"0","sv":"Acme"}]}`.

use serde::{Deserialize, Serialize};

use super::convert::{Number, encode_base64};
use super::senml::{self, RawRecord, RawValue};
use super::{ContentError, ContentFormat, Schema};
use crate::model::{Path, Record};

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Document {
    #[serde(skip_serializing_if = "Option::is_none")]
    bn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bt: Option<f64>,
    e: Vec<Element>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Element {
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bv: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ov: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<f64>,
}

pub(super) fn encode(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    let mut document = Document::default();
    for entry in senml::entries(base, records, schema)? {
        if entry.bn.is_some() {
            document.bn = entry.bn;
        }
        let mut element = Element {
            n: Some(entry.n),
            ..Element::default()
        };
        // Entries made from records always carry a value.
        match entry.value {
            None => {}
            Some(RawValue::Number(n)) => {
                element.v = Some(n.to_json().ok_or(ContentError::NotRepresentable {
                    format: ContentFormat::OmaJson,
                    path: entry.path,
                })?);
            }
            Some(RawValue::String(s)) => element.sv = Some(s),
            // Opaque values travel as base64 strings.
            Some(RawValue::Data(d)) => element.sv = Some(encode_base64(&d)),
            Some(RawValue::Bool(b)) => element.bv = Some(b),
            Some(RawValue::Objlnk(s)) => element.ov = Some(s),
        }
        document.e.push(element);
    }
    serde_json::to_vec(&document).map_err(|e| ContentError::Malformed(e.to_string()))
}

pub(super) fn decode(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let document: Document = serde_json::from_slice(payload)
        .map_err(|e| ContentError::Malformed(format!("OMA JSON: {e}")))?;
    let mut raws = Vec::with_capacity(document.e.len());
    for element in document.e {
        raws.push(RawRecord {
            bn: None,
            n: element.n,
            value: senml::one_value([
                element.v.map(|n| RawValue::Number(Number::from_json(&n))),
                element.sv.map(RawValue::String),
                element.bv.map(RawValue::Bool),
                element.ov.map(RawValue::Objlnk),
            ])?,
        });
    }
    if let Some(first) = raws.first_mut() {
        first.bn = document.bn;
    }
    senml::resolve(ContentFormat::OmaJson, base, raws, schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::test_schema::TestSchema;
    use crate::model::Value;

    #[test]
    fn digest_example() {
        let json = r#"{"bn":"/3/0/","e":[{"n":"0","sv":"Acme"},{"n":"6/0","v":1}]}"#;
        let records = vec![
            Record {
                path: Path::resource(3, 0, 0),
                value: Value::String("Acme".into()),
            },
            Record {
                path: Path::resource_instance(3, 0, 6, 0),
                value: Value::Integer(1),
            },
        ];
        let base = Path::instance(3, 0);
        assert_eq!(
            encode(&base, &records, &TestSchema).unwrap(),
            json.as_bytes()
        );
        assert_eq!(
            decode(&base, json.as_bytes(), &TestSchema).unwrap(),
            records
        );
    }

    #[test]
    fn opaque_objlnk_and_errors() {
        let base = Path::resource(5, 0, 0);
        let json = br#"{"bn":"/5/0/","e":[{"n":"0","sv":"AQI="}]}"#;
        let records = decode(&base, json, &TestSchema).unwrap();
        assert_eq!(records[0].value, Value::Opaque(vec![1, 2]));
        assert_eq!(encode(&base, &records, &TestSchema).unwrap(), json);
        let link = br#"{"e":[{"n":"/3/0/22/1","ov":"11:0"}]}"#;
        let records = decode(&Path::ROOT, link, &TestSchema).unwrap();
        assert_eq!(records[0].value, Value::Objlnk(11, 0));
        let bad = [
            &br#"{"e":[{"n":"/3/0/9","sv":"87"}]}"#[..],
            br#"{"e":[{"n":"/3/0/9","v":1,"bv":true}]}"#,
            br#"{"e":[{"n":"/3/0"}]}"#,
            br#"{"e":[{"n":"/3/0/9/1/2","v":1}]}"#,
            br#"{"e":"#,
        ];
        for payload in bad {
            assert!(decode(&Path::ROOT, payload, &TestSchema).is_err());
        }
    }
}
