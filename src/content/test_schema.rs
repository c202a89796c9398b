//! A schema for tests: Device (3), Firmware Update (5) and Temperature (3303) from the digest,
//! plus object 32769 with every type, single (resources 0-8) and multiple (10-18).

use super::{ResourceSpec, Schema};
use crate::model::{Record, ResourceType, Value};

pub(crate) struct TestSchema;

/// The types of object 32769's resources, in resource-id order.
pub(crate) const KINDS: [ResourceType; 9] = [
    ResourceType::String,
    ResourceType::Integer,
    ResourceType::UnsignedInteger,
    ResourceType::Float,
    ResourceType::Boolean,
    ResourceType::Opaque,
    ResourceType::Time,
    ResourceType::Objlnk,
    ResourceType::Corelnk,
];

pub(crate) const ALL_TYPES: u16 = 32769;

impl Schema for TestSchema {
    fn resource(&self, object: u16, resource: u16) -> Option<ResourceSpec> {
        use ResourceType as T;
        let (kind, multiple) = match (object, resource) {
            (3, 0..=3 | 14..=19) | (3303, 5701 | 5750) | (5, 1) => (T::String, false),
            (3, 4 | 5 | 12) | (3303, 5605) | (5, 2) => (T::None, false),
            (3, 6..=8 | 11) => (T::Integer, true),
            (3, 9 | 10 | 20 | 21) | (5, 3 | 5) => (T::Integer, false),
            (3, 13) | (3303, 5518) => (T::Time, false),
            (3, 22) => (T::Objlnk, true),
            (3303, 5700 | 5601..=5604) => (T::Float, false),
            (5, 0) => (T::Opaque, false),
            (ALL_TYPES, 0..=8) => (KINDS[usize::from(resource)], false),
            (ALL_TYPES, 10..=18) => (KINDS[usize::from(resource - 10)], true),
            _ => return None,
        };
        Some(ResourceSpec { kind, multiple })
    }
}

/// Bytes from hex digits; anything else (spaces, line breaks) is ignored.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

pub(crate) fn rec(path: &str, value: Value) -> Record {
    Record {
        path: path.parse().unwrap(),
        value,
    }
}

/// The digest's `/3/0` sample.
pub(crate) fn device() -> Vec<Record> {
    vec![
        rec("/3/0/0", Value::String("Acme".into())),
        rec("/3/0/9", Value::Integer(87)),
        rec("/3/0/6/0", Value::Integer(1)),
        rec("/3/0/6/1", Value::Integer(5)),
        rec("/3/0/13", Value::Time(1_700_000_000)),
        rec("/3/0/16", Value::String("UQ".into())),
    ]
}
