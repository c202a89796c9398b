//! `application/vnd.oma.lwm2m+cbor` (11544, LWM2M 1.2 Core §7.4.6): one CBOR map whose keys
//! are node ids (object, instance, resource, resource instance) and whose values are either
//! nested maps or resource values. A key may also be an array of ids standing for several
//! levels at once (`{[3, 0]: {9: 87}}` is `{3: {0: {9: 87}}}`). Paths are absolute: they start
//! at the object id whatever the request path.
//!
//! Values: String and Corelnk as text, Objlnk as the text `"3:0"`, Opaque as a byte string,
//! Integer/Time as CBOR integers, Unsigned Integer as an unsigned integer, Float as the
//! shortest CBOR float that keeps the value, Boolean as true/false. On decode we also take
//! indefinite lengths, a Time wrapped in tag 1 (epoch time) and tag 4 decimal fractions.

use ciborium::Value as Cbor;

use super::convert::{
    Number, check_kind, format_objlnk, infer_number, lookup, number_value, parse_objlnk, wrong_type,
};
use super::{ContentError, ContentFormat, Schema};
use crate::model::{Path, Record, ResourceType, Value};

/// Deep enough for four levels of maps, an array key, and a tagged decimal fraction; anything
/// deeper is malformed, and the limit keeps ciborium's recursion (and the stack) small.
const NESTING_LIMIT: usize = 16;

/// Decimal fraction exponents beyond this cannot be an f64 anyway (1e308 is near the top).
const MAX_DECIMAL_EXPONENT: i64 = 400;

fn malformed(what: impl std::fmt::Display) -> ContentError {
    ContentError::Malformed(format!("LWM2M CBOR: {what}"))
}

/// A leaf as it sits in the payload, before the schema types it.
enum Leaf {
    Number(Number),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub(super) fn encode(records: &[Record], schema: &dyn Schema) -> Result<Vec<u8>, ContentError> {
    for record in records {
        if let Some(spec) = lookup(schema, &record.path) {
            check_kind(&record.path, &record.value, spec.kind)?;
        }
    }
    let refs: Vec<&Record> = records.iter().collect();
    let root = node(&refs, 0)?;
    let mut out = Vec::new();
    ciborium::into_writer(&root, &mut out).map_err(malformed)?;
    Ok(out)
}

/// The map of the records that share their first `depth` ids; a child map with one entry is
/// folded into its parent's key (`{3: {0: {9: 87}}}` becomes `{[3, 0, 9]: 87}`).
fn node(records: &[&Record], depth: usize) -> Result<Cbor, ContentError> {
    // Children in the order they first appear, so sorted records decode in the same order.
    let mut children: Vec<(u16, Vec<&Record>)> = Vec::new();
    for record in records {
        let id = record.path.ids()[depth];
        // From the end: records come sorted, so the match is the last child at once.
        match children.iter().rposition(|(child, _)| *child == id) {
            Some(at) => children[at].1.push(record),
            None => children.push((id, vec![record])),
        }
    }
    let mut entries = Vec::with_capacity(children.len());
    for (id, group) in children {
        let leaf = group.iter().find(|r| r.path.len() == depth + 1);
        let entry = match (leaf, group.len()) {
            (Some(record), 1) => (Cbor::from(id), value(&record.value)),
            // A value at a path that also has children (`/3/0/6` and `/3/0/6/0`).
            (Some(record), _) => {
                return Err(ContentError::NotRepresentable {
                    format: ContentFormat::LwM2mCbor,
                    path: record.path,
                });
            }
            (None, _) => match node(&group, depth + 1)? {
                Cbor::Map(mut inner) if inner.len() == 1 => {
                    let (key, value) = inner.remove(0);
                    let mut ids = vec![Cbor::from(id)];
                    match key {
                        Cbor::Array(rest) => ids.extend(rest),
                        single => ids.push(single),
                    }
                    (Cbor::Array(ids), value)
                }
                map => (Cbor::from(id), map),
            },
        };
        entries.push(entry);
    }
    Ok(Cbor::Map(entries))
}

fn value(value: &Value) -> Cbor {
    match value {
        Value::String(s) | Value::Corelnk(s) => Cbor::Text(s.clone()),
        Value::Integer(v) | Value::Time(v) => Cbor::from(*v),
        Value::UnsignedInteger(v) => Cbor::from(*v),
        // ciborium writes the shortest float that keeps the value (half, single, double).
        Value::Float(v) => Cbor::Float(*v),
        Value::Boolean(b) => Cbor::Bool(*b),
        Value::Opaque(bytes) => Cbor::Bytes(bytes.clone()),
        Value::Objlnk(object, instance) => Cbor::Text(format_objlnk(*object, *instance)),
    }
}

pub(super) fn decode(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let items = parse(payload)?;
    let mut records = Vec::with_capacity(items.len());
    for (path, item) in items {
        let leaf = leaf(&path, item)?;
        if path.len() < 3 {
            return Err(ContentError::NotRepresentable {
                format: ContentFormat::LwM2mCbor,
                path,
            });
        }
        if !path.starts_with(base) {
            return Err(ContentError::OutsideBase {
                record: path,
                base: *base,
            });
        }
        let value = typed_value(&path, leaf, schema)?;
        records.push(Record { path, value });
    }
    Ok(records)
}

/// Decodes LWM2M CBOR without a schema: every value keeps the type its CBOR item has (text
/// is a string, an integer an `Integer`, or an `UnsignedInteger` above `i64::MAX`). Never
/// panics; memory stays proportional to the payload (no length field is trusted up front).
/// The entry point for a fuzz target.
pub fn decode_lwm2m_cbor(payload: &[u8]) -> Result<Vec<Record>, ContentError> {
    decode(&Path::ROOT, payload, &crate::model::Untyped)
}

/// The paths a Read-Composite or Observe-Composite request names in LWM2M CBOR: each with
/// the value null, at any level from an object down.
pub(super) fn decode_names(payload: &[u8]) -> Result<Vec<Path>, ContentError> {
    parse(payload)?
        .into_iter()
        .map(|(path, item)| match item {
            Cbor::Null => Ok(path),
            _ => Err(malformed(format!(
                "a request naming paths has a value at {path} (expected null)"
            ))),
        })
        .collect()
}

/// The items under the innermost maps of a payload with their full paths, in payload order.
fn parse(payload: &[u8]) -> Result<Vec<(Path, Cbor)>, ContentError> {
    let mut reader = payload;
    let root: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut reader, NESTING_LIMIT)
        .map_err(malformed)?;
    if !reader.is_empty() {
        return Err(malformed("trailing bytes after the map"));
    }
    let Cbor::Map(entries) = root else {
        return Err(malformed("the payload is not a map"));
    };
    let mut leaves = Vec::new();
    walk(entries, &[], &mut leaves)?;
    let mut paths: Vec<Path> = leaves.iter().map(|(path, _)| *path).collect();
    paths.sort_unstable();
    if let Some([twice, _]) = paths.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(malformed(format!("{twice} appears twice")));
    }
    Ok(leaves)
}

fn walk(
    entries: Vec<(Cbor, Cbor)>,
    prefix: &[u16],
    leaves: &mut Vec<(Path, Cbor)>,
) -> Result<(), ContentError> {
    for (key, item) in entries {
        let mut ids = prefix.to_vec();
        match key {
            Cbor::Array(items) if !items.is_empty() => {
                for item in &items {
                    ids.push(id(item)?);
                }
            }
            other => ids.push(id(&other)?),
        }
        let path = Path::from_ids(&ids).map_err(|_| {
            malformed(format!(
                "a path of {} ids (at most 4: object, instance, resource, resource instance)",
                ids.len()
            ))
        })?;
        match item {
            Cbor::Map(inner) => walk(inner, &ids, leaves)?,
            item => leaves.push((path, item)),
        }
    }
    Ok(())
}

fn id(key: &Cbor) -> Result<u16, ContentError> {
    match key {
        // 65535 is reserved in LWM2M (and our "no instance yet" marker).
        Cbor::Integer(i) => u16::try_from(i128::from(*i))
            .ok()
            .filter(|id| *id != u16::MAX)
            .ok_or_else(|| malformed(format!("key {} is not an id (0-65534)", i128::from(*i)))),
        _ => Err(malformed("a key is neither an id nor an array of ids")),
    }
}

fn leaf(path: &Path, item: Cbor) -> Result<Leaf, ContentError> {
    Ok(match item {
        Cbor::Integer(i) => Leaf::Number(Number::Int(i128::from(i))),
        Cbor::Float(f) => Leaf::Number(Number::Float(f)),
        Cbor::Text(text) => Leaf::Text(text),
        Cbor::Bytes(bytes) => Leaf::Bytes(bytes),
        Cbor::Bool(b) => Leaf::Bool(b),
        // Tag 1: epoch time, a number.
        Cbor::Tag(1, inner) => match *inner {
            Cbor::Integer(i) => Leaf::Number(Number::Int(i128::from(i))),
            Cbor::Float(f) => Leaf::Number(Number::Float(f)),
            _ => return Err(malformed(format!("time at {path} is not a number"))),
        },
        Cbor::Tag(4, inner) => Leaf::Number(Number::Float(decimal_fraction(path, *inner)?)),
        Cbor::Null => return Err(malformed(format!("{path} has no value (null)"))),
        Cbor::Tag(tag, _) => return Err(malformed(format!("tag {tag} at {path}"))),
        _ => {
            return Err(malformed(format!(
                "the value at {path} is not a resource value"
            )));
        }
    })
}

/// RFC 8949 §3.4.4: `[exponent, mantissa]`, value = mantissa × 10^exponent.
fn decimal_fraction(path: &Path, inner: Cbor) -> Result<f64, ContentError> {
    let bad = || malformed(format!("bad decimal fraction at {path}"));
    let Cbor::Array(parts) = inner else {
        return Err(bad());
    };
    let [Cbor::Integer(exponent), Cbor::Integer(mantissa)] = parts.as_slice() else {
        return Err(bad());
    };
    let exponent = i64::try_from(*exponent)
        .ok()
        .filter(|e| e.abs() <= MAX_DECIMAL_EXPONENT)
        .ok_or_else(bad)?;
    // Parsing the exact decimal text rounds correctly, unlike mantissa * 10f64.powi(exponent).
    format!("{}e{exponent}", i128::from(*mantissa))
        .parse::<f64>()
        .map_err(|_| bad())
}

/// Gives a leaf the schema's type; leaves of resources the schema lacks keep their own.
fn typed_value(path: &Path, leaf: Leaf, schema: &dyn Schema) -> Result<Value, ContentError> {
    let Some(spec) = lookup(schema, path) else {
        return Ok(match leaf {
            Leaf::Number(n) => infer_number(n),
            Leaf::Text(s) => Value::String(s),
            Leaf::Bytes(b) => Value::Opaque(b),
            Leaf::Bool(b) => Value::Boolean(b),
        });
    };
    let kind = spec.kind;
    match (leaf, kind) {
        (Leaf::Number(n), _) => number_value(path, n, kind),
        (Leaf::Text(s), ResourceType::String) => Ok(Value::String(s)),
        (Leaf::Text(s), ResourceType::Corelnk) => Ok(Value::Corelnk(s)),
        (Leaf::Text(s), ResourceType::Objlnk) => parse_objlnk(&s)
            .map(|(o, i)| Value::Objlnk(o, i))
            .ok_or_else(|| wrong_type(path, kind)),
        (Leaf::Bytes(b), ResourceType::Opaque) => Ok(Value::Opaque(b)),
        (Leaf::Bool(b), ResourceType::Boolean) => Ok(Value::Boolean(b)),
        _ => Err(wrong_type(path, kind)),
    }
}

#[cfg(test)]
mod tests;
