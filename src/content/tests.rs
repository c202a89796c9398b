//! Property tests across formats: round trips at every level, and no panics on any input.

use proptest::prelude::*;

use super::test_schema::{ALL_TYPES, KINDS, TestSchema};
use super::{ContentFormat, decode, encode};
use crate::model::{Path, Record, ResourceType, Value};

fn float() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
        (-1000i32..1000).prop_map(|v| f64::from(v) / 4.0),
    ]
}

fn value_of(kind: ResourceType) -> BoxedStrategy<Value> {
    match kind {
        ResourceType::String => any::<String>().prop_map(Value::String).boxed(),
        ResourceType::Corelnk => any::<String>().prop_map(Value::Corelnk).boxed(),
        ResourceType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ResourceType::Time => any::<i64>().prop_map(Value::Time).boxed(),
        ResourceType::UnsignedInteger => any::<u64>().prop_map(Value::UnsignedInteger).boxed(),
        ResourceType::Float => float().prop_map(Value::Float).boxed(),
        ResourceType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ResourceType::Opaque => prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(Value::Opaque)
            .boxed(),
        ResourceType::Objlnk => any::<(u16, u16)>()
            .prop_map(|(o, i)| Value::Objlnk(o, i))
            .boxed(),
        ResourceType::None => Just(Value::Boolean(false)).boxed(),
    }
}

/// The kind of a resource of the all-types object (0-8 single, 10-18 multiple).
fn kind(resource: u16) -> ResourceType {
    KINDS[usize::from(resource % 10)]
}

/// Records of one resource: one value, or a few instances of a multi-instance resource.
fn resource_records(instance: u16, resource: u16) -> BoxedStrategy<Vec<Record>> {
    let value = value_of(kind(resource));
    if resource < 10 {
        return value
            .prop_map(move |value| {
                vec![Record {
                    path: Path::resource(ALL_TYPES, instance, resource),
                    value,
                }]
            })
            .boxed();
    }
    prop::collection::btree_map(0u16..1000, value, 0..4)
        .prop_map(move |values| {
            values
                .into_iter()
                .map(|(ri, value)| Record {
                    path: Path::resource_instance(ALL_TYPES, instance, resource, ri),
                    value,
                })
                .collect()
        })
        .boxed()
}

fn instance_records(instance: u16) -> BoxedStrategy<Vec<Record>> {
    let ids: Vec<u16> = (0..9).chain(10..19).collect();
    prop::sample::subsequence(ids, 0..=18)
        .prop_flat_map(move |ids| {
            ids.into_iter()
                .map(|resource| resource_records(instance, resource))
                .collect::<Vec<_>>()
        })
        .prop_map(|groups| groups.concat())
        .boxed()
}

fn object_records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::btree_set(0u16..100, 0..4)
        .prop_flat_map(|instances| {
            instances
                .into_iter()
                .map(instance_records)
                .collect::<Vec<_>>()
        })
        .prop_map(|groups| groups.concat())
}

const STRUCTURED: [ContentFormat; 5] = [
    ContentFormat::Tlv,
    ContentFormat::SenmlJson,
    ContentFormat::SenmlCbor,
    ContentFormat::OmaJson,
    ContentFormat::LwM2mCbor,
];

fn round_trip(format: ContentFormat, base: &Path, records: &[Record]) -> Result<(), TestCaseError> {
    let bytes = encode(format, base, records, &TestSchema)
        .map_err(|e| TestCaseError::fail(format!("{format:?} encode at {base}: {e}")))?;
    let decoded = decode(format, base, &bytes, &TestSchema)
        .map_err(|e| TestCaseError::fail(format!("{format:?} decode at {base}: {e}")))?;
    prop_assert_eq!(decoded, records, "{:?} at {}", format, base);
    Ok(())
}

proptest! {
    #[test]
    fn resource_level(records in (0u16..9).prop_flat_map(|r| resource_records(0, r))) {
        let base = records[0].path;
        for format in STRUCTURED.into_iter().chain([ContentFormat::Text]) {
            round_trip(format, &base, &records)?;
        }
        if kind(base.ids()[2]) == ResourceType::Opaque {
            round_trip(ContentFormat::Opaque, &base, &records)?;
        }
    }

    #[test]
    fn multi_instance_resource(records in (10u16..19).prop_flat_map(|r| resource_records(1, r).prop_map(move |v| (r, v)))) {
        let (resource, records) = records;
        let base = Path::resource(ALL_TYPES, 1, resource);
        for format in STRUCTURED {
            round_trip(format, &base, &records)?;
        }
        // Each instance alone, at its resource-instance path.
        for record in &records {
            let one = std::slice::from_ref(record);
            for format in STRUCTURED.into_iter().chain([ContentFormat::Text]) {
                round_trip(format, &record.path, one)?;
            }
        }
    }

    #[test]
    fn instance_level(records in instance_records(7)) {
        for format in STRUCTURED {
            round_trip(format, &Path::instance(ALL_TYPES, 7), &records)?;
        }
    }

    #[test]
    fn object_level(records in object_records()) {
        for format in STRUCTURED {
            round_trip(format, &Path::object(ALL_TYPES), &records)?;
        }
        // SenML and LwM2M CBOR also carry the records of a composite request at the root.
        for format in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor, ContentFormat::LwM2mCbor] {
            round_trip(format, &Path::ROOT, &records)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let bases = [
            Path::ROOT,
            Path::object(3),
            Path::instance(3, 0),
            Path::resource(3, 0, 6),
            Path::resource_instance(3, 0, 6, 1),
            Path::resource(5, 0, 0),
            Path::instance(ALL_TYPES, 0),
        ];
        for format in STRUCTURED.into_iter().chain([ContentFormat::Text, ContentFormat::Opaque, ContentFormat::LinkFormat]) {
            for base in &bases {
                let _ = decode(format, base, &bytes, &TestSchema);
            }
        }
        let _ = super::decode_names(ContentFormat::SenmlCbor, &bytes);
        let _ = super::decode_lwm2m_cbor(&bytes);
        let _ = super::decode_names(ContentFormat::LwM2mCbor, &bytes);
        let _ = super::link::parse_links(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn damaged_encodings_never_panic(records in instance_records(0), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let base = Path::instance(ALL_TYPES, 0);
        for format in STRUCTURED {
            let mut bytes = encode(format, &base, &records, &TestSchema).unwrap();
            if !bytes.is_empty() {
                let at = flip.0.index(bytes.len());
                bytes[at] ^= flip.1;
                let _ = decode(format, &base, &bytes, &TestSchema);
                bytes.truncate(cut.index(bytes.len()));
                let _ = decode(format, &base, &bytes, &TestSchema);
            }
        }
    }

    #[test]
    fn link_format_round_trips(
        links in prop::collection::vec(
            ("/[0-9]{1,4}(/[0-9]{1,4}){0,2}", prop::collection::vec(("[a-z]{1,6}", prop::option::of("[ -~]{0,8}")), 0..3)),
            0..4,
        )
    ) {
        let links: Vec<super::link::Link> = links
            .into_iter()
            .map(|(target, attributes)| super::link::Link { target, attributes })
            .collect();
        let text = super::link::format_links(&links);
        prop_assert_eq!(super::link::parse_links(&text).unwrap(), links);
    }
}
