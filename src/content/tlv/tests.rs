use super::*;
use crate::content::test_schema::{TestSchema, device, hex, rec};

/// One resource TLV with `value`, as the digest's single-value examples show.
fn resource_tlv(id: u16, value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(
        &mut out,
        Kind::Resource,
        id,
        &value_bytes(value),
        &Path::ROOT,
    )
    .unwrap();
    out
}

#[test]
fn read_device_instance() {
    let expected =
        hex("C4 00 41 63 6D 65 C1 09 57 86 06 41 00 01 41 01 05 C4 0D 65 53 F1 00 C2 10 55 51");
    assert_eq!(expected.len(), 27);
    let base = Path::instance(3, 0);
    assert_eq!(encode(&base, &device(), &TestSchema).unwrap(), expected);
    assert_eq!(decode(&base, &expected, &TestSchema).unwrap(), device());
}

#[test]
fn read_temperature_object() {
    let expected = hex("08 00 0D E4 16 44 41 BC 00 00 E3 16 45 43 65 6C");
    let records = vec![
        rec("/3303/0/5700", Value::Float(23.5)),
        rec("/3303/0/5701", Value::String("Cel".into())),
    ];
    let base = Path::object(3303);
    assert_eq!(encode(&base, &records, &TestSchema).unwrap(), expected);
    assert_eq!(decode(&base, &expected, &TestSchema).unwrap(), records);
}

#[test]
fn single_values() {
    assert_eq!(resource_tlv(7, &Value::Integer(-750)), hex("C2 07 FD 12"));
    assert_eq!(resource_tlv(1, &Value::Boolean(true)), hex("C1 01 01"));
    assert_eq!(
        resource_tlv(10, &Value::Objlnk(11, 0)),
        hex("C4 0A 00 0B 00 00")
    );
    let pi = std::f64::consts::PI;
    let mut float64 = hex("C8 00 08");
    float64.extend_from_slice(&pi.to_be_bytes());
    assert_eq!(resource_tlv(0, &Value::Float(pi)), float64);
    let long = resource_tlv(1, &Value::Opaque(vec![7; 300]));
    assert_eq!(long[..4], hex("D0 01 01 2C"));
    assert_eq!(long.len(), 304);
    let parsed = parse(&long, 0).unwrap();
    assert_eq!(
        (parsed[0].kind, parsed[0].id, parsed[0].value.len()),
        (Kind::Resource, 1, 300)
    );
}

#[test]
fn integer_widths() {
    let width = |v: i64| signed_bytes(v).len();
    assert_eq!(
        [
            width(0),
            width(-128),
            width(128),
            width(-32769),
            width(1 << 40)
        ],
        [1, 1, 2, 4, 8]
    );
    let path = Path::resource(3, 0, 9);
    for v in [0, -1, 127, -128, 255, 70_000, i64::MIN, i64::MAX] {
        assert_eq!(
            parse_value(&path, &signed_bytes(v), ResourceType::Integer),
            Ok(Value::Integer(v))
        );
    }
    assert_eq!(unsigned_bytes(255), [255]);
    assert_eq!(unsigned_bytes(u64::MAX).len(), 8);
}

#[test]
fn multiple_resource_always_wrapped() {
    let base = Path::resource(3, 0, 6);
    let one = [rec("/3/0/6/0", Value::Integer(1))];
    assert_eq!(
        encode(&base, &one, &TestSchema).unwrap(),
        hex("83 06 41 00 01")
    );
    assert_eq!(encode(&base, &[], &TestSchema).unwrap(), hex("80 06"));
    assert_eq!(decode(&base, &hex("80 06"), &TestSchema).unwrap(), []);
    let ri = Path::resource_instance(3, 0, 6, 1);
    let five = [rec("/3/0/6/1", Value::Integer(5))];
    assert_eq!(encode(&ri, &five, &TestSchema).unwrap(), hex("41 01 05"));
    assert_eq!(decode(&ri, &hex("41 01 05"), &TestSchema).unwrap(), five);
}

#[test]
fn accepts_wrapped_and_unwrapped_writes() {
    let time = vec![rec("/3/0/13", Value::Time(1_700_000_000))];
    let unwrapped = hex("C4 0D 65 53 F1 00");
    let wrapped = hex("06 00 C4 0D 65 53 F1 00");
    for base in [Path::resource(3, 0, 13), Path::instance(3, 0)] {
        assert_eq!(decode(&base, &unwrapped, &TestSchema).unwrap(), time);
        assert_eq!(decode(&base, &wrapped, &TestSchema).unwrap(), time);
    }
    // Resource instances straight at the resource, or wrapped twice.
    let base = Path::resource(3, 0, 6);
    let expected = vec![rec("/3/0/6/1", Value::Integer(5))];
    assert_eq!(
        decode(&base, &hex("41 01 05"), &TestSchema).unwrap(),
        expected
    );
    assert_eq!(
        decode(&base, &hex("08 00 05 83 06 41 01 05"), &TestSchema).unwrap(),
        expected
    );
}

#[test]
fn create_without_instance() {
    let records = decode(&Path::object(3), &hex("C1 09 57"), &TestSchema).unwrap();
    assert_eq!(
        records,
        [Record {
            path: Path::resource(3, UNSPECIFIED_INSTANCE, 9),
            value: Value::Integer(87)
        }]
    );
    assert_eq!(records[0].path.instance_id(), Some(UNSPECIFIED_INSTANCE));
}

#[test]
fn malformed_inputs() {
    let base = Path::instance(3, 0);
    let decode = |bytes: &str| decode(&base, &hex(bytes), &TestSchema);
    // Truncated header, id, length field and value.
    assert_eq!(decode("E4"), Err(ContentError::UnexpectedEnd(1)));
    assert!(matches!(
        decode("C8 00"),
        Err(ContentError::UnexpectedEnd(_))
    ));
    assert!(matches!(
        decode("C4 00 41 63"),
        Err(ContentError::UnexpectedEnd(4))
    ));
    assert!(matches!(
        decode("08 00 05 C4 00 41"),
        Err(ContentError::UnexpectedEnd(_))
    ));
    // Lengths that do not fit the type.
    assert!(matches!(
        decode("C3 09 00 00 01"),
        Err(ContentError::WrongType { .. })
    ));
    assert!(matches!(
        decode("C2 10 FF FE"),
        Err(ContentError::WrongType { .. })
    ));
    let bool_base = Path::instance(super::super::test_schema::ALL_TYPES, 0);
    let bad_bool = super::decode(&bool_base, &hex("C2 04 00 01"), &TestSchema);
    assert!(matches!(bad_bool, Err(ContentError::WrongType { .. })));
    let bad_float = super::decode(
        &Path::instance(3303, 0),
        &hex("E3 16 44 41 BC 00"),
        &TestSchema,
    );
    assert!(matches!(bad_float, Err(ContentError::WrongType { .. })));
    let reserved = super::decode(&Path::object(3), &hex("28 FF FF 03 C1 09 57"), &TestSchema);
    assert!(matches!(reserved, Err(ContentError::Malformed(_))));
    // Unknown resource, other instance, misplaced nesting.
    assert!(matches!(
        decode("C1 63 01"),
        Err(ContentError::UnknownResource(_))
    ));
    assert!(matches!(
        decode("08 01 03 C1 09 57"),
        Err(ContentError::OutsideBase { .. })
    ));
    assert!(matches!(
        decode("41 00 01"),
        Err(ContentError::Malformed(_))
    ));
    assert!(matches!(
        decode("08 00 06 08 00 03 C1 09 57"),
        Err(ContentError::Malformed(_))
    ));
    assert!(matches!(
        decode("86 06 C1 00 01 41 01 05"),
        Err(ContentError::Malformed(_))
    ));
}

#[test]
fn encode_checks_types_and_shapes() {
    let base = Path::instance(3, 0);
    let wrong = [rec("/3/0/9", Value::String("87".into()))];
    assert!(matches!(
        encode(&base, &wrong, &TestSchema),
        Err(ContentError::WrongType { .. })
    ));
    let unknown = [rec("/3/0/99", Value::Integer(1))];
    assert!(matches!(
        encode(&base, &unknown, &TestSchema),
        Err(ContentError::UnknownResource(_))
    ));
    let flat_multi = [rec("/3/0/6", Value::Integer(1))];
    assert!(matches!(
        encode(&base, &flat_multi, &TestSchema),
        Err(ContentError::NotRepresentable { .. })
    ));
    let root = encode(&Path::ROOT, &device(), &TestSchema);
    assert!(matches!(root, Err(ContentError::NotRepresentable { .. })));
}
