//! Byte vectors written by hand, item by item, from the structure LWM2M 1.2 Core §7.4.6 gives
//! (a map keyed by ids or arrays of ids, nested per level, values as CBOR items) and RFC 8949's
//! encoding of each item; the values are the digest's `/3/0` and `/3303/0` samples, whose TLV
//! and `SenML` forms the other codecs' tests use.

use super::super::test_schema::{ALL_TYPES, TestSchema, device, hex, rec};
use super::super::{ContentError, ContentFormat, decode, encode};
use super::decode_lwm2m_cbor;
use crate::model::{Path, Value};

const CBOR: ContentFormat = ContentFormat::LwM2mCbor;

/// Read `/3/0`: `{[3, 0]: {0: "Acme", 9: 87, 6: {0: 1, 1: 5}, 13: 1700000000, 16: "UQ"}}`
/// (30 bytes; TLV takes 27, `SenML` CBOR 61).
const DEVICE: &str = "A1 82 03 00 A5
    00 64 41636D65
    09 18 57
    06 A2 00 01 01 05
    0D 1A 6553F100
    10 62 5551";

/// Read `/3303/0/5700` = 23.5: `{[3303, 0, 5700]: 23.5}`, the float as a half (F9 4DE0).
const TEMPERATURE: &str = "A1 83 19 0CE7 00 19 1644 F9 4DE0";

#[test]
fn device_instance_matches_hand_written_bytes() {
    let base = Path::instance(3, 0);
    let bytes = encode(CBOR, &base, &device(), &TestSchema).unwrap();
    assert_eq!(bytes, hex(DEVICE));
    assert_eq!(bytes.len(), 30);
    assert_eq!(decode(CBOR, &base, &bytes, &TestSchema).unwrap(), device());
}

#[test]
fn single_resource_folds_its_whole_path_into_one_key() {
    let base: Path = "/3303/0/5700".parse().unwrap();
    let records = vec![rec("/3303/0/5700", Value::Float(23.5))];
    let bytes = encode(CBOR, &base, &records, &TestSchema).unwrap();
    assert_eq!(bytes, hex(TEMPERATURE));
    assert_eq!(decode(CBOR, &base, &bytes, &TestSchema).unwrap(), records);
}

#[test]
fn every_type_has_its_cbor_item() {
    // {[32769, 0]: {1: -750, 2: 18446744073709551615, 4: true, 5: h'DEAD', 7: "3:0"}}
    let expected = hex("A1 82 19 8001 00 A5
        01 39 02ED
        02 1B FFFFFFFFFFFFFFFF
        04 F5
        05 42 DEAD
        07 63 333A30");
    let base = Path::instance(ALL_TYPES, 0);
    let records = vec![
        rec("/32769/0/1", Value::Integer(-750)),
        rec("/32769/0/2", Value::UnsignedInteger(u64::MAX)),
        rec("/32769/0/4", Value::Boolean(true)),
        rec("/32769/0/5", Value::Opaque(vec![0xDE, 0xAD])),
        rec("/32769/0/7", Value::Objlnk(3, 0)),
    ];
    let bytes = encode(CBOR, &base, &records, &TestSchema).unwrap();
    assert_eq!(bytes, expected);
    assert_eq!(decode(CBOR, &base, &bytes, &TestSchema).unwrap(), records);
}

#[test]
fn empty_read_is_the_empty_map() {
    assert_eq!(
        encode(CBOR, &Path::object(3303), &[], &TestSchema).unwrap(),
        [0xA0]
    );
    assert_eq!(
        decode(CBOR, &Path::object(3303), &[0xA0], &TestSchema).unwrap(),
        []
    );
}

#[test]
fn every_way_of_writing_a_path_decodes_alike() {
    let expected = vec![rec("/3/0/9", Value::Integer(87))];
    for (what, bytes) in [
        ("{3: {0: {9: 87}}}", "A1 03 A1 00 A1 09 18 57"),
        (
            "{[3]: {[0]: {[9]: 87}}}",
            "A1 81 03 A1 81 00 A1 81 09 18 57",
        ),
        ("{[3, 0]: {9: 87}}", "A1 82 03 00 A1 09 18 57"),
        ("{3: {[0, 9]: 87}}", "A1 03 A1 82 00 09 18 57"),
        (
            "{_ [_ 3, 0, 9]: 87} (indefinite lengths)",
            "BF 9F 03 00 09 FF 18 57 FF",
        ),
    ] {
        for base in [Path::ROOT, Path::object(3), Path::instance(3, 0)] {
            assert_eq!(
                decode(CBOR, &base, &hex(bytes), &TestSchema),
                Ok(expected.clone()),
                "{what} at {base}"
            );
        }
    }
}

#[test]
fn one_instance_may_be_split_over_several_keys() {
    // {[3, 0]: {9: 87}, [3, 0, 16]: "UQ"}
    let bytes = hex("A2 82 03 00 A1 09 18 57 83 03 00 10 62 5551");
    assert_eq!(
        decode(CBOR, &Path::instance(3, 0), &bytes, &TestSchema).unwrap(),
        vec![
            rec("/3/0/9", Value::Integer(87)),
            rec("/3/0/16", Value::String("UQ".into())),
        ]
    );
}

#[test]
fn tagged_time_and_decimal_fractions_are_numbers() {
    // {[3, 0, 13]: 1(1700000000)}
    let time = hex("A1 83 03 00 0D C1 1A 6553F100");
    assert_eq!(
        decode(CBOR, &Path::resource(3, 0, 13), &time, &TestSchema).unwrap(),
        vec![rec("/3/0/13", Value::Time(1_700_000_000))]
    );
    // {[3303, 0, 5700]: 4([-1, 235])}: 235 × 10^-1
    let fraction = hex("A1 83 19 0CE7 00 19 1644 C4 82 20 18 EB");
    assert_eq!(
        decode(CBOR, &Path::instance(3303, 0), &fraction, &TestSchema).unwrap(),
        vec![rec("/3303/0/5700", Value::Float(23.5))]
    );
}

#[test]
fn values_take_the_schema_type() {
    // {[3, 0, 22, 0]: "3:1"}: an objlnk resource; {[3, 0, 9]: 87.0}: an integer sent as a float.
    let objlnk = hex("A1 84 03 00 16 00 63 333A31");
    assert_eq!(
        decode(CBOR, &Path::instance(3, 0), &objlnk, &TestSchema).unwrap(),
        vec![rec("/3/0/22/0", Value::Objlnk(3, 1))]
    );
    let integral = hex("A1 83 03 00 09 F9 5570");
    assert_eq!(
        decode(CBOR, &Path::instance(3, 0), &integral, &TestSchema).unwrap(),
        vec![rec("/3/0/9", Value::Integer(87))]
    );
}

#[test]
fn schema_free_decode_keeps_the_cbor_types() {
    let records = decode_lwm2m_cbor(&hex(DEVICE)).unwrap();
    assert_eq!(records[0], rec("/3/0/0", Value::String("Acme".into())));
    assert_eq!(records[4], rec("/3/0/13", Value::Integer(1_700_000_000)));
    assert_eq!(records.len(), 6);
}

#[test]
fn composite_requests_name_paths_with_null() {
    // {[3, 0, 9]: null, 3303: {0: null}, [3, 0, 6, 1]: null}
    let bytes = hex("A3 83 03 00 09 F6 19 0CE7 A1 00 F6 84 03 00 06 01 F6");
    assert_eq!(
        super::super::decode_names(CBOR, &bytes).unwrap(),
        [
            Path::resource(3, 0, 9),
            Path::instance(3303, 0),
            Path::resource_instance(3, 0, 6, 1),
        ]
    );
    // {[3, 0, 9]: 87}: a value where a name was expected
    assert!(matches!(
        super::super::decode_names(CBOR, &hex("A1 83 03 00 09 18 57")),
        Err(ContentError::Malformed(why)) if why.contains("expected null")
    ));
}

fn malformed(result: Result<Vec<crate::model::Record>, ContentError>) -> String {
    match result {
        Err(ContentError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn malformed_payloads_say_what_is_wrong() {
    let at_root = |bytes: &str| malformed(decode(CBOR, &Path::ROOT, &hex(bytes), &TestSchema));
    assert!(at_root("81 01").contains("not a map"));
    assert!(at_root("A0 00").contains("trailing"));
    // {[3, 0, 6, 0, 1]: 1}: five ids
    assert!(at_root("A1 85 03 00 06 00 01 01").contains("5 ids"));
    // {65535: {}}, {"a": 1}, {[]: 1}
    assert!(at_root("A1 19 FFFF A0").contains("65535"));
    assert!(at_root("A1 61 61 01").contains("neither an id"));
    assert!(at_root("A1 80 01").contains("neither an id"));
    // {[3, 0, 9]: 1, 3: {0: {9: 2}}}
    assert!(at_root("A2 83 03 00 09 01 03 A1 00 A1 09 02").contains("/3/0/9 appears twice"));
    // {[3, 0, 0]: null}, {[3, 0, 0]: [1]}, {[3, 0, 0]: 32("a")}
    assert!(at_root("A1 83 03 00 00 F6").contains("null"));
    assert!(at_root("A1 83 03 00 00 81 01").contains("not a resource value"));
    assert!(at_root("A1 83 03 00 00 D8 20 61 61").contains("tag 32 at /3/0/0"));
    // A byte string claiming 2^63 bytes: an error, not an allocation.
    assert!(!at_root("A1 83 03 00 05 5B 7FFFFFFFFFFFFFFF 00").is_empty());
    // Nested far beyond any path.
    assert!(!at_root(&"81 ".repeat(100)).is_empty());
}

#[test]
fn values_outside_the_request_or_above_resources_are_refused() {
    // {[4, 0, 0]: 1} written to /3/0
    assert!(matches!(
        decode(
            CBOR,
            &Path::instance(3, 0),
            &hex("A1 83 04 00 00 01"),
            &TestSchema
        ),
        Err(ContentError::OutsideBase { .. })
    ));
    // {[3, 0]: 5}: a value on an instance
    assert!(matches!(
        decode(CBOR, &Path::ROOT, &hex("A1 82 03 00 05"), &TestSchema),
        Err(ContentError::NotRepresentable { .. })
    ));
    // {[3, 0, 0]: 5}: Manufacturer is a string
    assert!(matches!(
        decode(CBOR, &Path::ROOT, &hex("A1 83 03 00 00 05"), &TestSchema),
        Err(ContentError::WrongType { .. })
    ));
}

#[test]
fn a_value_beside_its_own_instances_cannot_be_encoded() {
    let records = vec![
        rec("/3/0/6", Value::Integer(1)),
        rec("/3/0/6/0", Value::Integer(1)),
    ];
    assert!(matches!(
        encode(CBOR, &Path::instance(3, 0), &records, &TestSchema),
        Err(ContentError::NotRepresentable { .. })
    ));
}

mod properties {
    use ciborium::Value as Cbor;
    use proptest::prelude::*;

    use super::super::super::encode;
    use super::super::decode_lwm2m_cbor;
    use super::{CBOR, TestSchema};
    use crate::model::{Path, Value};

    /// Small ids, so that generated paths collide and nest often.
    fn key() -> impl Strategy<Value = Cbor> {
        prop_oneof![
            4 => (0u16..4).prop_map(Cbor::from),
            2 => prop::collection::vec((0u16..4).prop_map(Cbor::from), 0..4).prop_map(Cbor::Array),
            1 => Just(Cbor::Text("a".into())),
            1 => Just(Cbor::from(65535u32)),
        ]
    }

    fn leaf() -> impl Strategy<Value = Cbor> {
        prop_oneof![
            any::<i64>().prop_map(Cbor::from),
            any::<u64>().prop_map(Cbor::from),
            any::<f64>().prop_map(Cbor::Float),
            any::<bool>().prop_map(Cbor::Bool),
            "[a-z:0-9]{0,6}".prop_map(Cbor::Text),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(Cbor::Bytes),
            any::<i64>().prop_map(|v| Cbor::Tag(1, Box::new(Cbor::from(v)))),
            (any::<i8>(), any::<i32>()).prop_map(|(e, m)| {
                Cbor::Tag(4, Box::new(Cbor::Array(vec![Cbor::from(e), Cbor::from(m)])))
            }),
            Just(Cbor::Null),
        ]
    }

    /// CBOR maps shaped like LWM2M CBOR, with mistakes mixed in.
    fn tree() -> impl Strategy<Value = Cbor> {
        leaf().prop_recursive(5, 48, 4, |inner| {
            prop::collection::vec((key(), inner), 0..4).prop_map(Cbor::Map)
        })
    }

    /// One leaf under a path of 3 or 4 small ids, written as a chain of maps whose keys each
    /// take one or several of the ids (`{3: {[0, 9]: v}}`, `{[3, 0, 9]: v}`, ...).
    fn chain() -> impl Strategy<Value = (Cbor, Cbor)> {
        (
            prop::collection::vec(0u16..3, 3..=4),
            leaf(),
            any::<u8>(),
            any::<bool>(),
        )
            .prop_map(|(ids, leaf, splits, arrays)| {
                let mut segments: Vec<Vec<u16>> = vec![vec![ids[0]]];
                for (i, id) in ids.iter().enumerate().skip(1) {
                    if splits & (1 << i) != 0 {
                        segments.push(vec![*id]);
                    } else if let Some(last) = segments.last_mut() {
                        last.push(*id);
                    }
                }
                let key = |segment: &[u16]| match segment {
                    [one] if !arrays => Cbor::from(*one),
                    many => Cbor::Array(many.iter().map(|id| Cbor::from(*id)).collect()),
                };
                let mut value = leaf;
                for segment in segments[1..].iter().rev() {
                    value = Cbor::Map(vec![(key(segment), value)]);
                }
                (key(&segments[0]), value)
            })
    }

    fn resource_tree() -> impl Strategy<Value = Cbor> {
        prop::collection::vec(chain(), 0..8).prop_map(Cbor::Map)
    }

    fn has_nan(records: &[crate::model::Record]) -> bool {
        records
            .iter()
            .any(|r| matches!(r.value, Value::Float(f) if f.is_nan()))
    }

    proptest! {
        /// Whatever decodes re-encodes into bytes that decode to the same records (in path
        /// order: the encoder groups a split instance together).
        #[test]
        fn decoded_trees_reencode_alike(tree in prop_oneof![resource_tree(), tree()]) {
            let mut bytes = Vec::new();
            ciborium::into_writer(&tree, &mut bytes).unwrap();
            let Ok(mut records) = decode_lwm2m_cbor(&bytes) else { return Ok(()) };
            prop_assume!(!has_nan(&records));
            match encode(CBOR, &Path::ROOT, &records, &TestSchema) {
                Ok(again) => {
                    let mut decoded = decode_lwm2m_cbor(&again).unwrap();
                    records.sort_by_key(|r| r.path);
                    decoded.sort_by_key(|r| r.path);
                    prop_assert_eq!(decoded, records);
                }
                // A value both on a resource and on its instances, or a value the test
                // schema types differently: refused, not mangled.
                Err(
                    super::ContentError::NotRepresentable { .. }
                    | super::ContentError::WrongType { .. },
                ) => {}
                Err(other) => prop_assert!(false, "{other}"),
            }
        }

        #[test]
        fn damaged_trees_never_panic(tree in tree(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            let mut bytes = Vec::new();
            ciborium::into_writer(&tree, &mut bytes).unwrap();
            let at = flip.0.index(bytes.len());
            bytes[at] ^= flip.1;
            let _ = decode_lwm2m_cbor(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            let _ = decode_lwm2m_cbor(&bytes);
        }
    }
}
