//! text/plain (0) and application/octet-stream (42): one value at a resource or
//! resource-instance path.

use super::convert::{
    check_kind, decode_base64, encode_base64, format_objlnk, parse_objlnk, require, wrong_type,
};
use super::{ContentError, ContentFormat, ResourceSpec, Schema};
use crate::model::{Path, Record, ResourceType, Value};

/// The one record a single-value format can carry, and its schema entry.
fn single<'a>(
    format: ContentFormat,
    base: &Path,
    records: &'a [Record],
    schema: &dyn Schema,
) -> Result<(&'a Record, ResourceSpec), ContentError> {
    let spec = target_spec(format, base, schema)?;
    match records {
        [record] if record.path == *base => {
            check_kind(base, &record.value, spec.kind)?;
            Ok((record, spec))
        }
        _ => Err(not_representable(format, base)),
    }
}

/// The schema entry of `base`, which must be a single value.
fn target_spec(
    format: ContentFormat,
    base: &Path,
    schema: &dyn Schema,
) -> Result<ResourceSpec, ContentError> {
    if base.len() < 3 {
        return Err(not_representable(format, base));
    }
    let spec = require(schema, base)?;
    // A multi-instance resource holds several values; only one instance fits.
    if spec.multiple && base.len() == 3 {
        return Err(not_representable(format, base));
    }
    Ok(spec)
}

fn not_representable(format: ContentFormat, path: &Path) -> ContentError {
    ContentError::NotRepresentable {
        format,
        path: *path,
    }
}

pub(super) fn encode_text(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    let (record, _) = single(ContentFormat::Text, base, records, schema)?;
    let text = match &record.value {
        Value::String(s) | Value::Corelnk(s) => s.clone(),
        Value::Integer(v) | Value::Time(v) => v.to_string(),
        Value::UnsignedInteger(v) => v.to_string(),
        // Display prints the shortest text that parses back to the same f64.
        Value::Float(v) if v.is_finite() => v.to_string(),
        Value::Float(_) => return Err(not_representable(ContentFormat::Text, base)),
        Value::Boolean(v) => u8::from(*v).to_string(),
        Value::Opaque(bytes) => encode_base64(bytes),
        Value::Objlnk(object, instance) => format_objlnk(*object, *instance),
    };
    Ok(text.into_bytes())
}

pub(super) fn decode_text(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let spec = target_spec(ContentFormat::Text, base, schema)?;
    let text = std::str::from_utf8(payload)
        .map_err(|e| ContentError::Malformed(format!("text is not UTF-8: {e}")))?;
    let value = parse_value(base, text, spec.kind)?;
    Ok(vec![Record { path: *base, value }])
}

/// Parses the text form of a value of type `kind`.
fn parse_value(path: &Path, text: &str, kind: ResourceType) -> Result<Value, ContentError> {
    let wrong = || wrong_type(path, kind);
    let trimmed = text.trim();
    match kind {
        ResourceType::String => Ok(Value::String(text.to_string())),
        ResourceType::Corelnk => Ok(Value::Corelnk(text.to_string())),
        ResourceType::Integer => trimmed.parse().map(Value::Integer).map_err(|_| wrong()),
        ResourceType::Time => trimmed.parse().map(Value::Time).map_err(|_| wrong()),
        ResourceType::UnsignedInteger => trimmed
            .parse()
            .map(Value::UnsignedInteger)
            .map_err(|_| wrong()),
        ResourceType::Float => trimmed.parse().map(Value::Float).map_err(|_| wrong()),
        ResourceType::Boolean => match trimmed {
            "1" | "true" => Ok(Value::Boolean(true)),
            "0" | "false" => Ok(Value::Boolean(false)),
            _ => Err(wrong()),
        },
        ResourceType::Opaque => decode_base64(trimmed).map(Value::Opaque).ok_or_else(wrong),
        ResourceType::Objlnk => parse_objlnk(trimmed)
            .map(|(o, i)| Value::Objlnk(o, i))
            .ok_or_else(wrong),
        ResourceType::None => Err(wrong()),
    }
}

pub(super) fn encode_opaque(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    let (record, spec) = single(ContentFormat::Opaque, base, records, schema)?;
    match (&record.value, spec.kind) {
        (Value::Opaque(bytes), ResourceType::Opaque) => Ok(bytes.clone()),
        _ => Err(not_representable(ContentFormat::Opaque, base)),
    }
}

pub(super) fn decode_opaque(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let spec = target_spec(ContentFormat::Opaque, base, schema)?;
    if spec.kind != ResourceType::Opaque {
        return Err(not_representable(ContentFormat::Opaque, base));
    }
    Ok(vec![Record {
        path: *base,
        value: Value::Opaque(payload.to_vec()),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::test_schema::TestSchema;

    fn enc(path: &str, value: Value) -> Result<Vec<u8>, ContentError> {
        let path: Path = path.parse().unwrap();
        encode_text(&path, &[Record { path, value }], &TestSchema)
    }

    fn dec(path: &str, text: &str) -> Result<Value, ContentError> {
        let path: Path = path.parse().unwrap();
        decode_text(&path, text.as_bytes(), &TestSchema).map(|mut r| r.remove(0).value)
    }

    #[test]
    fn text_forms() {
        assert_eq!(enc("/3303/0/5700", Value::Float(23.5)).unwrap(), b"23.5");
        assert_eq!(enc("/3/0/9", Value::Integer(87)).unwrap(), b"87");
        assert_eq!(
            enc("/3/0/13", Value::Time(1_700_000_000)).unwrap(),
            b"1700000000"
        );
        assert_eq!(enc("/3/0/22/0", Value::Objlnk(3, 0)).unwrap(), b"3:0");
        assert_eq!(enc("/32769/0/4", Value::Boolean(true)).unwrap(), b"1");
        assert_eq!(enc("/5/0/0", Value::Opaque(vec![1, 2])).unwrap(), b"AQI=");
        assert_eq!(dec("/32769/0/4", "0").unwrap(), Value::Boolean(false));
        assert_eq!(dec("/5/0/0", "AQI=").unwrap(), Value::Opaque(vec![1, 2]));
        assert_eq!(dec("/3/0/22/1", "11:0").unwrap(), Value::Objlnk(11, 0));
        assert_eq!(dec("/3303/0/5700", "23").unwrap(), Value::Float(23.0));
    }

    #[test]
    fn text_errors() {
        let wrong = |p: &str| ContentError::WrongType {
            path: p.parse().unwrap(),
            kind: ResourceType::Integer,
        };
        assert_eq!(dec("/3/0/9", "x"), Err(wrong("/3/0/9")));
        assert_eq!(dec("/3/0/9", "1.5"), Err(wrong("/3/0/9")));
        assert_eq!(enc("/3/0/9", Value::Float(1.0)), Err(wrong("/3/0/9")));
        assert!(matches!(
            dec("/3/0/99", "1"),
            Err(ContentError::UnknownResource(_))
        ));
        assert!(matches!(
            dec("/3/0", "1"),
            Err(ContentError::NotRepresentable { .. })
        ));
        // Multi-instance resource as a whole: several values, text carries one.
        assert!(matches!(
            dec("/3/0/6", "1"),
            Err(ContentError::NotRepresentable { .. })
        ));
        assert!(matches!(dec("/3/0/0", "\u{0}"), Ok(Value::String(_))));
        let bad_utf8 = decode_text(&"/3/0/0".parse().unwrap(), &[0xff], &TestSchema);
        assert!(matches!(bad_utf8, Err(ContentError::Malformed(_))));
    }

    #[test]
    fn opaque_only_for_opaque_resources() {
        let path = Path::resource(5, 0, 0);
        let records = decode_opaque(&path, &[0, 255], &TestSchema).unwrap();
        assert_eq!(records[0].value, Value::Opaque(vec![0, 255]));
        assert_eq!(
            encode_opaque(&path, &records, &TestSchema).unwrap(),
            [0, 255]
        );
        let string = Path::resource(3, 0, 0);
        assert!(matches!(
            decode_opaque(&string, b"x", &TestSchema),
            Err(ContentError::NotRepresentable { .. })
        ));
    }
}
