//! OMA TLV (11542), the LWM2M 1.0 binary format.

use super::convert::{check_kind, require, wrong_type};
use super::{ContentError, ContentFormat, Schema, UNSPECIFIED_INSTANCE};
use crate::model::{Path, Record, ResourceType, Value};

#[cfg(test)]
mod tests;

/// The identifier kinds of the type byte's top two bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ObjectInstance = 0,
    ResourceInstance = 1,
    MultipleResource = 2,
    Resource = 3,
}

/// One parsed TLV; `offset` is where its value starts in the payload (for error positions).
struct Tlv<'a> {
    kind: Kind,
    id: u16,
    value: &'a [u8],
    offset: usize,
}

/// The largest value a 3-byte length field can describe.
const MAX_LEN: usize = 0xFF_FFFF;

fn take(bytes: &[u8], pos: usize, n: usize, base: usize) -> Result<&[u8], ContentError> {
    bytes
        .get(pos..pos + n)
        .ok_or(ContentError::UnexpectedEnd(base + bytes.len()))
}

/// Parses a sequence of TLVs; `base` is the offset of `bytes` in the payload.
fn parse(bytes: &[u8], base: usize) -> Result<Vec<Tlv<'_>>, ContentError> {
    let mut tlvs = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let type_byte = bytes[pos];
        pos += 1;
        let kind = match type_byte >> 6 {
            0 => Kind::ObjectInstance,
            1 => Kind::ResourceInstance,
            2 => Kind::MultipleResource,
            _ => Kind::Resource,
        };
        let id_len = if type_byte & 0x20 == 0 { 1 } else { 2 };
        let id = take(bytes, pos, id_len, base)?
            .iter()
            .fold(0u16, |acc, &b| (acc << 8) | u16::from(b));
        pos += id_len;
        let len_len = usize::from((type_byte >> 3) & 0x03);
        let len = if len_len == 0 {
            usize::from(type_byte & 0x07)
        } else {
            let field = take(bytes, pos, len_len, base)?;
            pos += len_len;
            field
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let value = take(bytes, pos, len, base)?;
        tlvs.push(Tlv {
            kind,
            id,
            value,
            offset: base + pos,
        });
        pos += len;
    }
    Ok(tlvs)
}

/// Appends one TLV with its header.
fn write(
    out: &mut Vec<u8>,
    kind: Kind,
    id: u16,
    value: &[u8],
    path: &Path,
) -> Result<(), ContentError> {
    if value.len() > MAX_LEN {
        return Err(ContentError::NotRepresentable {
            format: ContentFormat::Tlv,
            path: *path,
        });
    }
    let mut type_byte = (kind as u8) << 6;
    if id > 0xFF {
        type_byte |= 0x20;
    }
    let len_bytes = (value.len() as u32).to_be_bytes();
    let len_field: &[u8] = match value.len() {
        0..=7 => {
            type_byte |= value.len() as u8;
            &[]
        }
        8..=0xFF => &len_bytes[3..],
        0x100..=0xFFFF => &len_bytes[2..],
        _ => &len_bytes[1..],
    };
    type_byte |= (len_field.len() as u8) << 3;
    out.push(type_byte);
    if id > 0xFF {
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(id as u8);
    }
    out.extend_from_slice(len_field);
    out.extend_from_slice(value);
    Ok(())
}

/// The smallest of 1/2/4/8 bytes holding `v` in two's complement.
fn signed_bytes(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let len = if i8::try_from(v).is_ok() {
        1
    } else if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    };
    bytes[8 - len..].to_vec()
}

fn unsigned_bytes(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let len = match v {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFFFF_FFFF => 4,
        _ => 8,
    };
    bytes[8 - len..].to_vec()
}

fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) | Value::Corelnk(s) => s.as_bytes().to_vec(),
        Value::Integer(v) | Value::Time(v) => signed_bytes(*v),
        Value::UnsignedInteger(v) => unsigned_bytes(*v),
        Value::Float(v) => {
            // 4 bytes only when nothing is lost.
            let single = *v as f32;
            if f64::from(single).to_bits() == v.to_bits() {
                single.to_be_bytes().to_vec()
            } else {
                v.to_be_bytes().to_vec()
            }
        }
        Value::Boolean(v) => vec![u8::from(*v)],
        Value::Opaque(bytes) => bytes.clone(),
        Value::Objlnk(object, instance) => {
            let mut out = object.to_be_bytes().to_vec();
            out.extend_from_slice(&instance.to_be_bytes());
            out
        }
    }
}

fn parse_value(path: &Path, bytes: &[u8], kind: ResourceType) -> Result<Value, ContentError> {
    let wrong = || wrong_type(path, kind);
    let int_len_ok = matches!(bytes.len(), 1 | 2 | 4 | 8);
    let signed = || {
        let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            0xFF
        } else {
            0
        };
        let mut buf = [fill; 8];
        buf[8 - bytes.len()..].copy_from_slice(bytes);
        i64::from_be_bytes(buf)
    };
    match kind {
        ResourceType::String | ResourceType::Corelnk => {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| wrong())?;
            Ok(if kind == ResourceType::String {
                Value::String(text)
            } else {
                Value::Corelnk(text)
            })
        }
        ResourceType::Integer if int_len_ok => Ok(Value::Integer(signed())),
        ResourceType::Time if int_len_ok => Ok(Value::Time(signed())),
        ResourceType::UnsignedInteger if int_len_ok => {
            let mut buf = [0; 8];
            buf[8 - bytes.len()..].copy_from_slice(bytes);
            Ok(Value::UnsignedInteger(u64::from_be_bytes(buf)))
        }
        ResourceType::Float => {
            if let Ok(single) = <[u8; 4]>::try_from(bytes) {
                Ok(Value::Float(f64::from(f32::from_be_bytes(single))))
            } else if let Ok(double) = <[u8; 8]>::try_from(bytes) {
                Ok(Value::Float(f64::from_be_bytes(double)))
            } else {
                Err(wrong())
            }
        }
        ResourceType::Boolean => match bytes {
            [0] => Ok(Value::Boolean(false)),
            [1] => Ok(Value::Boolean(true)),
            _ => Err(wrong()),
        },
        ResourceType::Opaque => Ok(Value::Opaque(bytes.to_vec())),
        ResourceType::Objlnk => match *bytes {
            [a, b, c, d] => Ok(Value::Objlnk(
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
            )),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

/// Groups records by the id at `level`, keeping first-appearance order.
fn group_by<'a>(records: &[&'a Record], level: usize) -> Vec<(u16, Vec<&'a Record>)> {
    let mut groups: Vec<(u16, Vec<&'a Record>)> = Vec::new();
    for &record in records {
        let id = record.path.ids()[level];
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, members)) => members.push(record),
            None => groups.push((id, vec![record])),
        }
    }
    groups
}

fn not_representable(path: &Path) -> ContentError {
    ContentError::NotRepresentable {
        format: ContentFormat::Tlv,
        path: *path,
    }
}

/// Resource TLVs (single or Multiple) for the records of one resource.
fn encode_resource(
    out: &mut Vec<u8>,
    path: &Path,
    records: &[&Record],
    schema: &dyn Schema,
) -> Result<(), ContentError> {
    let spec = require(schema, path)?;
    let id = path.ids()[2];
    if !spec.multiple {
        for record in records {
            if record.path.len() != 3 {
                return Err(not_representable(&record.path));
            }
            check_kind(&record.path, &record.value, spec.kind)?;
            write(
                out,
                Kind::Resource,
                id,
                &value_bytes(&record.value),
                &record.path,
            )?;
        }
        return Ok(());
    }
    let mut body = Vec::new();
    for record in records {
        let Some(ri) = record.path.resource_instance_id() else {
            return Err(not_representable(&record.path));
        };
        check_kind(&record.path, &record.value, spec.kind)?;
        write(
            &mut body,
            Kind::ResourceInstance,
            ri,
            &value_bytes(&record.value),
            &record.path,
        )?;
    }
    write(out, Kind::MultipleResource, id, &body, path)
}

/// Resource TLVs for records within one object instance.
fn encode_resources(records: &[&Record], schema: &dyn Schema) -> Result<Vec<u8>, ContentError> {
    let mut out = Vec::new();
    for (_, group) in group_by(records, 2) {
        let path = super::convert::resource_path(&group[0].path);
        encode_resource(&mut out, &path, &group, schema)?;
    }
    Ok(out)
}

pub(super) fn encode(
    base: &Path,
    records: &[Record],
    schema: &dyn Schema,
) -> Result<Vec<u8>, ContentError> {
    let refs: Vec<&Record> = records.iter().collect();
    match base.len() {
        1 => {
            let mut out = Vec::new();
            for (instance, group) in group_by(&refs, 1) {
                let body = encode_resources(&group, schema)?;
                let path = Path::instance(base.ids()[0], instance);
                write(&mut out, Kind::ObjectInstance, instance, &body, &path)?;
            }
            Ok(out)
        }
        2 => encode_resources(&refs, schema),
        3 => {
            // Even an empty multi-instance resource is a Multiple Resource TLV.
            let mut out = Vec::new();
            encode_resource(&mut out, base, &refs, schema)?;
            Ok(out)
        }
        4 => {
            let spec = require(schema, base)?;
            let mut out = Vec::new();
            for record in records {
                check_kind(&record.path, &record.value, spec.kind)?;
                write(
                    &mut out,
                    Kind::ResourceInstance,
                    base.ids()[3],
                    &value_bytes(&record.value),
                    base,
                )?;
            }
            Ok(out)
        }
        _ => Err(not_representable(base)),
    }
}

/// Where a top-level TLV of `kind` sits for a request on `base`: its parent path.
fn top_parent(base: &Path, kind: Kind) -> Result<Path, ContentError> {
    let ids = base.ids();
    let depth = match kind {
        Kind::ObjectInstance => 1,
        Kind::Resource | Kind::MultipleResource => 2,
        Kind::ResourceInstance => 3,
    };
    if ids.len() >= depth {
        Ok(Path::from_ids(&ids[..depth]).unwrap_or(*base))
    } else if depth == 2 && ids.len() == 1 {
        // A Create payload of bare resources: the caller picks the instance id.
        Ok(Path::instance(ids[0], UNSPECIFIED_INSTANCE))
    } else {
        Err(ContentError::Malformed(format!(
            "{kind:?} TLV cannot appear at {base}"
        )))
    }
}

/// Turns one TLV sitting under `parent` into records.
fn collect(
    parent: &Path,
    tlv: &Tlv<'_>,
    schema: &dyn Schema,
    out: &mut Vec<Record>,
) -> Result<(), ContentError> {
    let expected_depth = match tlv.kind {
        Kind::ObjectInstance => 1,
        Kind::Resource | Kind::MultipleResource => 2,
        Kind::ResourceInstance => 3,
    };
    if tlv.id == u16::MAX {
        // 65535 is reserved (and would read as `UNSPECIFIED_INSTANCE`).
        return Err(ContentError::Malformed("TLV id 65535 is reserved".into()));
    }
    let path = match parent.child(tlv.id) {
        Some(path) if parent.len() == expected_depth => path,
        _ => {
            return Err(ContentError::Malformed(format!(
                "{:?} TLV {} misplaced under {parent}",
                tlv.kind, tlv.id
            )));
        }
    };
    match tlv.kind {
        Kind::ObjectInstance | Kind::MultipleResource => {
            for child in parse(tlv.value, tlv.offset)? {
                collect(&path, &child, schema, out)?;
            }
        }
        Kind::Resource | Kind::ResourceInstance => {
            let spec = require(schema, &path)?;
            let value = parse_value(&path, tlv.value, spec.kind)?;
            out.push(Record { path, value });
        }
    }
    Ok(())
}

pub(super) fn decode(
    base: &Path,
    payload: &[u8],
    schema: &dyn Schema,
) -> Result<Vec<Record>, ContentError> {
    let mut records = Vec::new();
    for tlv in parse(payload, 0)? {
        let parent = top_parent(base, tlv.kind)?;
        // Wrappers (an Object Instance around a resource Write) must name the target.
        if !parent
            .child(tlv.id)
            .is_some_and(|p| p.starts_with(base) || base.starts_with(&p))
        {
            return Err(ContentError::OutsideBase {
                record: parent.child(tlv.id).unwrap_or(parent),
                base: *base,
            });
        }
        collect(&parent, &tlv, schema, &mut records)?;
    }
    if let Some(record) = records.iter().find(|r| !r.path.starts_with(base)) {
        return Err(ContentError::OutsideBase {
            record: record.path,
            base: *base,
        });
    }
    Ok(records)
}
