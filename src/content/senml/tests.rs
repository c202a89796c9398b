use super::*;
use crate::content::test_schema::{ALL_TYPES, TestSchema, device, hex, rec};

fn json(base: &str, payload: &str) -> Result<Vec<Record>, ContentError> {
    decode_json(&base.parse().unwrap(), payload.as_bytes(), &TestSchema)
}

#[test]
fn json_device_instance() {
    let expected = concat!(
        r#"[{"bn":"/3/0/","n":"0","vs":"Acme"},{"n":"9","v":87},{"n":"6/0","v":1},"#,
        r#"{"n":"6/1","v":5},{"n":"13","v":1700000000},{"n":"16","vs":"UQ"}]"#
    );
    assert_eq!(expected.len(), 136);
    let base = Path::instance(3, 0);
    let encoded = encode_json(&base, &device(), &TestSchema).unwrap();
    assert_eq!(String::from_utf8(encoded).unwrap(), expected);
    assert_eq!(json("/3/0", expected).unwrap(), device());
}

#[test]
fn cbor_device_instance_and_temperature() {
    let base = Path::instance(3, 0);
    let encoded = encode_cbor(&base, &device(), &TestSchema).unwrap();
    assert_eq!(encoded.len(), 61);
    assert_eq!(decode_cbor(&base, &encoded, &TestSchema).unwrap(), device());

    let expected = hex("81 A3 21 68 2F33333033 2F302F 00 64 35373030 02 F9 4D E0");
    assert_eq!(expected.len(), 22);
    let base = Path::resource(3303, 0, 5700);
    let records = [rec("/3303/0/5700", Value::Float(23.5))];
    assert_eq!(encode_cbor(&base, &records, &TestSchema).unwrap(), expected);
    assert_eq!(decode_cbor(&base, &expected, &TestSchema).unwrap(), records);
    let json = encode_json(&base, &records, &TestSchema).unwrap();
    assert_eq!(json, br#"[{"bn":"/3303/0/","n":"5700","v":23.5}]"#);
    assert_eq!(json.len(), 39);
}

#[test]
fn cbor_float_widths() {
    let base = Path::resource(3303, 0, 5700);
    let encode =
        |v: f64| encode_cbor(&base, &[rec("/3303/0/5700", Value::Float(v))], &TestSchema).unwrap();
    // Header bytes of the value: F9 half, FA single, FB double.
    assert_eq!(encode(23.5)[19], 0xF9);
    assert_eq!(encode(100_000.5)[19], 0xFA);
    assert_eq!(encode(0.1)[19], 0xFB);
    for v in [23.5, 100_000.5, 0.1, f64::INFINITY, -0.0] {
        assert_eq!(
            decode_cbor(&base, &encode(v), &TestSchema).unwrap()[0].value,
            Value::Float(v)
        );
    }
    // v as an integer for a float resource.
    let int = hex("81 A2 00 6C 2F333330332F302F35373030 02 18 17");
    assert_eq!(
        decode_cbor(&Path::ROOT, &int, &TestSchema).unwrap()[0].value,
        Value::Float(23.0)
    );
}

#[test]
fn names_and_base_names() {
    let absolute = r#"[{"n":"/3/0/9","v":87},{"n":"/3303/0/5700","v":23.5}]"#;
    let records = json("/", absolute).unwrap();
    assert_eq!(records[0], rec("/3/0/9", Value::Integer(87)));
    assert_eq!(records[1], rec("/3303/0/5700", Value::Float(23.5)));
    // bn carries over until replaced; relative names hang off the request path.
    let carried =
        r#"[{"bn":"/3/0/","n":"9","v":87},{"n":"13","v":5},{"bn":"/3303/0/","n":"5700","v":1}]"#;
    let records = json("/", carried).unwrap();
    assert_eq!(records[1], rec("/3/0/13", Value::Time(5)));
    assert_eq!(records[2], rec("/3303/0/5700", Value::Float(1.0)));
    assert_eq!(
        json("/3/0", r#"[{"n":"9","v":87}]"#).unwrap(),
        [rec("/3/0/9", Value::Integer(87))]
    );
    assert_eq!(
        json("/3/0/9", r#"[{"bn":"/3/0/9","v":87}]"#).unwrap(),
        [rec("/3/0/9", Value::Integer(87))]
    );
    let names = decode_names(
        ContentFormat::SenmlJson,
        br#"[{"n":"/3303/0/5700"},{"n":"/3/0"}]"#,
    )
    .unwrap();
    assert_eq!(names, [Path::resource(3303, 0, 5700), Path::instance(3, 0)]);
}

#[test]
fn value_kinds() {
    let o = ALL_TYPES;
    let payload = format!(
        r#"[{{"bn":"/{o}/0/","n":"2","v":18446744073709551615}},{{"n":"4","vb":true}},
            {{"n":"5","vd":"-_8"}},{{"n":"15","vd":"+/8="}},{{"n":"7","vlo":"3:0"}},{{"n":"8","vs":"</1>"}},
            {{"n":"1","v":-5.0}}]"#
    );
    let values: Vec<Value> = json("/", &payload)
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        values,
        [
            Value::UnsignedInteger(u64::MAX),
            Value::Boolean(true),
            Value::Opaque(vec![0xFB, 0xFF]),
            Value::Opaque(vec![0xFB, 0xFF]),
            Value::Objlnk(3, 0),
            Value::Corelnk("</1>".into()),
            Value::Integer(-5),
        ]
    );
    let opaque = [rec(&format!("/{o}/0/5"), Value::Opaque(vec![0xFB, 0xFF]))];
    let encoded = encode_json(&Path::instance(o, 0), &opaque, &TestSchema).unwrap();
    assert_eq!(
        String::from_utf8(encoded).unwrap(),
        format!(r#"[{{"bn":"/{o}/0/","n":"5","vd":"-_8"}}]"#)
    );
    // Unknown resources keep the type the payload gives them.
    assert_eq!(
        json("/", r#"[{"n":"/3/0/99","v":1.5}]"#).unwrap()[0].value,
        Value::Float(1.5)
    );
}

#[test]
fn malformed_and_mistyped() {
    let err = |payload: &str| json("/3/0", payload).unwrap_err();
    let wrong = |p: &str, kind| ContentError::WrongType {
        path: p.parse().unwrap(),
        kind,
    };
    assert_eq!(
        err(r#"[{"n":"9","v":87.5}]"#),
        wrong("/3/0/9", ResourceType::Integer)
    );
    assert_eq!(
        err(r#"[{"n":"9","vs":"87"}]"#),
        wrong("/3/0/9", ResourceType::Integer)
    );
    assert_eq!(
        err(r#"[{"n":"0","v":1}]"#),
        wrong("/3/0/0", ResourceType::String)
    );
    assert_eq!(
        err(r#"[{"n":"/3/1/9","v":1}]"#),
        ContentError::OutsideBase {
            record: "/3/1/9".parse().unwrap(),
            base: Path::instance(3, 0)
        }
    );
    for payload in [
        "",
        "[",
        "{}",
        r#"[{"n":"9"}]"#,
        r#"[{"n":"9","v":1,"vs":"x"}]"#,
        r#"[{"n":"6/0/1/2","v":1}]"#,
        r#"[{"n":"x","v":1}]"#,
        r#"[{"n":"9","v":"1"}]"#,
        r#"[{"n":"5","vd":"!!"}]"#,
    ] {
        assert!(
            matches!(err(payload), ContentError::Malformed(_)),
            "{payload}"
        );
    }
    assert!(matches!(
        err(r#"[{"bn":"/3/","n":"0","v":1}]"#),
        ContentError::NotRepresentable { .. }
    ));
    let non_finite = [rec("/3303/0/5700", Value::Float(f64::NAN))];
    let base = Path::instance(3303, 0);
    assert!(matches!(
        encode_json(&base, &non_finite, &TestSchema),
        Err(ContentError::NotRepresentable { .. })
    ));
    let mistyped = [rec("/3/0/9", Value::Float(1.0))];
    assert!(matches!(
        encode_cbor(&Path::instance(3, 0), &mistyped, &TestSchema),
        Err(ContentError::WrongType { .. })
    ));
}

#[test]
fn malformed_cbor() {
    let base = Path::ROOT;
    for bytes in [
        "",
        "81",
        "A0",
        "81 01",
        "81 A1 00 01",
        "81 A2 00 61 78 02 63 61 62 63",
        "81 A3 00 61 78 02 01 03 61 78",
        "80 00",
        "81 A2 00 61 78 00 61 78",
    ] {
        let result = decode_cbor(&base, &hex(bytes), &TestSchema);
        assert!(
            matches!(result, Err(ContentError::Malformed(_))),
            "{bytes}: {result:?}"
        );
    }
}

#[test]
fn names_round_trip_in_both_formats() {
    let paths = [
        Path::resource(3303, 0, 5700),
        Path::instance(3, 0),
        Path::object(1),
    ];
    let json = encode_names(ContentFormat::SenmlJson, &paths).unwrap();
    assert_eq!(
        std::str::from_utf8(&json).unwrap(),
        r#"[{"n":"/3303/0/5700"},{"n":"/3/0"},{"n":"/1"}]"#
    );
    let cbor = encode_names(ContentFormat::SenmlCbor, &paths).unwrap();
    // 0x83: an array of 3; each record a map of one pair, 0 (n) -> text.
    assert_eq!(&cbor[..3], &[0x83, 0xA1, 0x00]);
    for format in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
        let bytes = encode_names(format, &paths).unwrap();
        assert_eq!(decode_names(format, &bytes).unwrap(), paths);
    }
    assert!(encode_names(ContentFormat::Tlv, &paths).is_err());
}
