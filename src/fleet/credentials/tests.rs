use super::key_file;
use super::*;
use crate::fleet::{Overrides, parse_uri};
use crate::toml_span::Located;

const SERVER: &str = "[server]\nuri = \"coaps://127.0.0.1:5684\"\n";
const REST: &str = "[client]\nendpoint_prefix = \"dev-\"\nwidth = 4\nstart = 1\n\
    [[population]]\nname = \"a\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
    [load]\nclients = 3\nrate = 1\nhold = \"0s\"\n";

/// A fleet of dev-0001 .. dev-0003 against a coaps:// server with this `[security]` body.
fn text(security: &str) -> String {
    format!("{SERVER}[security]\nmode = \"psk\"\n{security}\n{REST}")
}

fn parse_with(text: &str, overrides: &Overrides) -> Result<Fleet, FleetError> {
    Fleet::from_toml_with(text, "dir/f.toml", overrides)
}

fn parsed(security: &str) -> Fleet {
    parse_with(&text(security), &Overrides::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn credentials(fleet: &Fleet) -> PskCredentials {
    match fleet
        .credentials()
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a [security] table")
    {
        Credentials::Psk(psk) => psk,
        Credentials::Certificate(c) => panic!("not PSK: {c:?}"),
    }
}

/// The error's (line, field), checking the file is named.
fn located(err: &FleetError) -> (usize, &str) {
    let FleetError::Invalid(Located {
        file, line, field, ..
    }) = err
    else {
        panic!("{err}");
    };
    assert!(
        file.starts_with("dir/f.toml") || file.contains(".csv"),
        "{err}"
    );
    (*line, field.as_str())
}

fn rejected(security: &str) -> (usize, String, String) {
    let err = parse_with(&text(security), &Overrides::default()).unwrap_err();
    let (line, field) = located(&err);
    (line, field.to_string(), err.to_string())
}

const MASTER: &str = "00112233445566778899aabbccddeeff";

#[test]
fn hmac_sha256_matches_rfc_4231_and_python() {
    // RFC 4231 test case 2.
    let full = derive_key(b"Jefe", "what do ya want for nothing?", 32);
    assert_eq!(
        hex::encode(full),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // python3 -c "import hmac,hashlib; print(hmac.new(bytes.fromhex(
    //   '00112233445566778899aabbccddeeff'), b'dev-0001', hashlib.sha256).hexdigest())"
    let master = hex::decode(MASTER).unwrap();
    assert_eq!(
        hex::encode(derive_key(&master, "dev-0001", 16)),
        "a744e23624854ef0004bab7a1291fc33"
    );
}

#[test]
fn derived_keys_per_endpoint_with_the_default_identity() {
    let fleet = parsed(&format!("derive = {{ master = \"{MASTER}\" }}"));
    let security = fleet.security.as_ref().unwrap();
    assert_eq!(
        security.to_string(),
        "psk, identity \"{endpoint}\", key: derived hmac-sha256 (16 bytes)"
    );
    let creds = credentials(&fleet);
    let psk = creds.psk(0, "dev-0001");
    assert_eq!(psk.identity, b"dev-0001");
    assert_eq!(hex::encode(&psk.key), "a744e23624854ef0004bab7a1291fc33");
    assert_ne!(creds.psk(1, "dev-0002").key, psk.key);
    // The embedded server's map: every client's identity to the key that client uses.
    let keys = creds.server_keys(3);
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[&b"dev-0001"[..]], psk.key);
    assert_eq!(keys[&b"dev-0003"[..]], creds.psk(2, "dev-0003").key);
    // key_length truncates.
    let short = parsed(&format!(
        "derive = {{ master = \"{MASTER}\", algorithm = \"hmac-sha256\", key_length = 8 }}"
    ));
    assert_eq!(
        hex::encode(credentials(&short).psk(0, "dev-0001").key),
        "a744e23624854ef0"
    );
}

#[test]
fn fixed_key_and_identity_placeholders() {
    let fleet = parsed("identity = \"id-{number}/{index}/{endpoint}/{{x}}\"\nkey = \"0a0b0c\"");
    assert_eq!(
        fleet.security.as_ref().unwrap().to_string(),
        "psk, identity \"id-{number}/{index}/{endpoint}/{{x}}\", key: fixed (3 bytes)"
    );
    let psk = credentials(&fleet).psk(2, "dev-0003");
    assert_eq!(
        String::from_utf8(psk.identity).unwrap(),
        "id-0003/2/dev-0003/{x}"
    );
    assert_eq!(psk.key, [10, 11, 12]);
}

#[test]
fn nothing_shows_a_key_in_debug_or_display() {
    let fixed = parsed("key = \"a1b2c3d4e5f6\"");
    let derived = parsed("derive = { master = \"a1b2c3d4e5f6\" }");
    for fleet in [fixed, derived] {
        let creds = credentials(&fleet);
        let key = hex::encode(creds.psk(0, "dev-0001").key);
        for shown in [
            format!("{fleet:?}"),
            format!("{}", fleet.security.as_ref().unwrap()),
            format!("{creds:?}"),
            format!("{:?}", creds.psk(0, "dev-0001")),
        ] {
            assert!(!shown.contains("a1b2c3"), "{shown}");
            assert!(!shown.contains(&key), "{shown}");
        }
    }
}

#[test]
fn security_errors_name_line_and_field() {
    // [security] is line 3, mode line 4, the first body line 5.
    let cases: &[(&str, usize, &str, &str)] = &[
        ("key = \"00\"\ncolour = 1", 6, "colour", "unknown field"),
        ("key = \"zz\"", 5, "key", "not a hex key"),
        ("key = \"\"", 5, "key", "empty"),
        (
            "identity = \"{serial}\"\nkey = \"00\"",
            5,
            "identity",
            "{serial}",
        ),
        (
            "identity = \"{endpoint\"\nkey = \"00\"",
            5,
            "identity",
            "unclosed",
        ),
        ("identity = \"\"\nkey = \"00\"", 5, "identity", "empty"),
        ("", 3, "key", "give one of"),
        (
            "key = \"00\"\nkey_file = \"k.csv\"",
            6,
            "key_file",
            "only one",
        ),
        (
            "key = \"00\"\nderive = { master = \"00\" }",
            6,
            "derive",
            "only one",
        ),
        (
            "derive = { master = \"0g\" }",
            5,
            "derive.master",
            "not a hex key",
        ),
        (
            "derive = { master = \"env:\" }",
            5,
            "derive.master",
            "variable name",
        ),
        (
            "derive = { master = \"00\", key_length = 33 }",
            5,
            "derive.key_length",
            "from 1 to 32",
        ),
        (
            "derive = { master = \"00\", algorithm = \"md5\" }",
            5,
            "derive.algorithm",
            "hmac",
        ),
        (
            "derive = { master = \"00\", salt = 1 }",
            5,
            "salt",
            "unknown field",
        ),
        (
            "key_file = \"k.csv\"\nidentity = \"x\"",
            6,
            "identity",
            "key file gives",
        ),
    ];
    for (body, line, field, message) in cases {
        let (got_line, got_field, err) = rejected(body);
        assert_eq!(
            (got_line, got_field.as_str()),
            (*line, *field),
            "{body}: {err}"
        );
        assert!(err.contains(message), "{body}: {err}");
        assert!(err.starts_with("dir/f.toml:"), "{err}");
    }
}

#[test]
fn raw_public_keys_and_unknown_modes_are_refused() {
    let rpk = text("key = \"00\"").replace("\"psk\"", "\"rpk\"");
    let err = parse_with(&rpk, &Overrides::default()).unwrap_err();
    assert_eq!(located(&err), (4, "mode"), "{err}");
    assert!(
        err.to_string()
            .contains("raw public keys are not supported"),
        "{err}"
    );
    let tls = text("key = \"00\"").replace("\"psk\"", "\"tls\"");
    let err = parse_with(&tls, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("expected \"psk\" or \"certificate\""),
        "{err}"
    );
    // Certificate settings in a PSK table are refused by name.
    let (line, field, _) = rejected("key = \"00\"\nca_cert = \"ca.pem\"");
    assert_eq!((line, field.as_str()), (6, "ca_cert"));
}

#[test]
fn coaps_and_security_go_together() {
    let no_security = format!("{SERVER}{REST}");
    let err = parse_with(&no_security, &Overrides::default()).unwrap_err();
    assert_eq!(located(&err), (2, "uri"), "{err}");
    assert!(
        err.to_string().contains("coaps:// needs credentials"),
        "{err}"
    );

    let plain = text("key = \"00\"").replace("coaps://", "coap://");
    let err = parse_with(&plain, &Overrides::default()).unwrap_err();
    assert_eq!(located(&err), (3, "security"), "{err}");
    assert!(err.to_string().contains("need a coaps:// server"), "{err}");

    assert!(err.to_string().contains("embedded one over DTLS"), "{err}");

    // No server: the embedded one, over DTLS.
    let embedded = text("key = \"00\"").replace(SERVER, "");
    let fleet = parse_with(&embedded, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(fleet.server.is_none());
    assert!(fleet.credentials().unwrap().is_some());

    // --server coap:// on a PSK fleet: the command line is to blame, the table still named.
    let coap = Overrides {
        server: Some(parse_uri("coap://127.0.0.1").unwrap()),
        ..Overrides::default()
    };
    assert!(parse_with(&text("key = \"00\""), &coap).is_err());
}

#[test]
fn command_line_values_replace_the_security_table() {
    let key = Secret::from_hex("ffee").unwrap();
    let overrides = Overrides {
        psk_identity: Some("cli-{index}".parse().unwrap()),
        psk_key: Some(key.clone()),
        ..Overrides::default()
    };
    // Even a table whose own key source is broken: the command line replaces it.
    let fleet = parse_with(&text("key_file = \"missing.csv\""), &overrides).unwrap();
    let security = fleet.security.as_ref().unwrap();
    let crate::fleet::Security::Psk(security) = security else {
        panic!("{security:?}");
    };
    assert_eq!(security.key, KeySource::Fixed(key));
    let psk = credentials(&fleet).psk(1, "dev-0002");
    assert_eq!(
        (psk.identity.as_slice(), psk.key.as_slice()),
        (&b"cli-1"[..], &[0xff, 0xee][..])
    );

    // On a NoSec fleet, --psk-key (with --server coaps://) makes the security.
    let nosec = REST;
    let overrides = Overrides {
        server: Some(parse_uri("coaps://127.0.0.1").unwrap()),
        psk_key: Some(Secret::from_hex("01").unwrap()),
        ..Overrides::default()
    };
    let fleet = parse_with(nosec, &overrides).unwrap();
    assert_eq!(
        fleet.security.as_ref().unwrap().to_string(),
        "psk, identity \"{endpoint}\", key: fixed (1 bytes)"
    );
    // --psk-identity alone has no key to go with.
    let identity_only = Overrides {
        server: Some(parse_uri("coaps://127.0.0.1").unwrap()),
        psk_identity: Some("{endpoint}".parse().unwrap()),
        ..Overrides::default()
    };
    let err = parse_with(nosec, &identity_only).unwrap_err();
    assert!(
        err.to_string().contains("--psk-identity needs a key"),
        "{err}"
    );
}

#[test]
fn master_from_the_environment() {
    // Setting variables is unsafe in Rust 2024: the success path is in tests/cli.rs.
    let unset = parsed("derive = { master = \"env:LWM2M_SWARM_TEST_UNSET_MASTER\" }");
    assert_eq!(
        unset.security.as_ref().unwrap().to_string(),
        "psk, identity \"{endpoint}\", key: derived hmac-sha256 (16 bytes), master from \
         $LWM2M_SWARM_TEST_UNSET_MASTER"
    );
    let err = unset.credentials().unwrap_err();
    assert_eq!(located(&err), (3, "derive.master"), "{err}");
    assert!(err.to_string().contains("is not set"), "{err}");
}

const CSV: &str = "endpoint,identity,key\n# provisioned 2024\ndev-0001,id-1,0001\n\n\
    dev-0002 , id-2 , 0002\ndev-0003,id-3,0003\nother-9,id-9,0009\n";

#[test]
fn key_files_load_with_their_identities() {
    let keys = key_file::parse(CSV, "k.csv").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys.len(), 4);
    let (identity, key) = &keys["dev-0002"];
    assert_eq!((identity.as_str(), key.expose()), ("id-2", &[0, 2][..]));
}

#[test]
fn key_file_errors_name_file_line_and_field() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("dev-1,id-1,00\ndev-2,id-2,0z\n", 2, "key", "not a hex key"),
        ("dev-1,id-1,00\ndev-2,id-2,\n", 2, "key", "empty"),
        ("dev-1,id-1\n", 1, "endpoint", "expected 3 fields"),
        ("dev-1,id-1,00,extra\n", 1, "endpoint", "found 4"),
        (
            "dev-1,id-1,00\n\ndev-1,id-2,01\n",
            3,
            "endpoint",
            "also on line 1",
        ),
        (
            "dev-1,id-1,00\ndev-2,id-1,01\n",
            2,
            "identity",
            "also on line 1",
        ),
        (",id-1,00\n", 1, "endpoint", "empty"),
        ("dev-1,,00\n", 1, "identity", "empty"),
        ("\"dev,1\",id,00\n", 1, "endpoint", "quoted"),
    ];
    for (body, line, field, message) in cases {
        let err = key_file::parse(body, "k.csv").unwrap_err();
        let text = err.to_string();
        assert_eq!(located(&err), (*line, *field), "{body}: {text}");
        assert!(text.starts_with(&format!("k.csv:{line}:")), "{text}");
        assert!(text.contains(message), "{body}: {text}");
    }
    // A bad key is never quoted back.
    let err = key_file::parse("dev-1,id-1,00112233445566778899aabbccddeefz\n", "k.csv")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("0011223344"), "{err}");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lwm2m-swarm-cred-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_key_file_is_read_beside_the_fleet_and_must_hold_every_client() {
    let dir = temp_dir("beside");
    std::fs::write(dir.join("keys.csv"), CSV).unwrap();
    let fleet_path = dir.join("f.toml");
    let file = fleet_path.to_str().unwrap();
    let fleet = Fleet::from_toml(&text("key_file = \"keys.csv\""), file).unwrap();
    assert_eq!(
        fleet.security.as_ref().unwrap().to_string(),
        format!(
            "psk, identity and key: from {}",
            dir.join("keys.csv").display()
        )
    );
    let creds = credentials(&fleet);
    let psk = creds.psk(2, "dev-0003");
    assert_eq!(
        (psk.identity.as_slice(), psk.key.as_slice()),
        (&b"id-3"[..], &[0, 3][..])
    );

    std::fs::write(dir.join("short.csv"), "dev-0002,id-2,0002\n").unwrap();
    let fleet = Fleet::from_toml(&text("key_file = \"short.csv\""), file).unwrap();
    let err = fleet.credentials().unwrap_err().to_string();
    assert!(err.contains("short.csv:0:"), "{err}");
    assert!(
        err.contains("no key for 2 of the fleet's 3 clients (the first: dev-0001)"),
        "{err}"
    );

    let fleet = Fleet::from_toml(&text("key_file = \"absent.csv\""), file).unwrap();
    let err = fleet.credentials().unwrap_err().to_string();
    assert!(err.contains("absent.csv: cannot read"), "{err}");
}

#[test]
fn export_writes_every_client_in_csv_and_json() {
    let fleet = parsed(&format!(
        "identity = \"id,{{index}}\"\nderive = {{ master = \"{MASTER}\" }}"
    ));
    let creds = credentials(&fleet);
    let mut csv = Vec::new();
    creds.export(0..3, ExportFormat::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0], "endpoint,identity,key");
    assert_eq!(
        lines[1],
        "dev-0001,\"id,0\",a744e23624854ef0004bab7a1291fc33"
    );
    assert!(lines[3].starts_with("dev-0003,\"id,2\","), "{csv}");

    let mut json = Vec::new();
    creds.export(0..3, ExportFormat::Json, &mut json).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let rows = value.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["endpoint"], "dev-0001");
    assert_eq!(rows[0]["identity"], "id,0");
    assert_eq!(rows[0]["key"], "a744e23624854ef0004bab7a1291fc33");
    assert_eq!(rows[2]["identity"], "id,2");
}

#[test]
fn the_shards_exports_are_the_whole_export_once() {
    let fleet = parsed(&format!("derive = {{ master = \"{MASTER}\" }}"));
    let creds = credentials(&fleet);
    let rows = |clients: &mut dyn Iterator<Item = u64>| {
        let mut csv = Vec::new();
        creds.export(clients, ExportFormat::Csv, &mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        text.lines().skip(1).map(str::to_string).collect::<Vec<_>>()
    };
    let whole = rows(&mut (0..10));
    assert_eq!(whole.len(), 10);
    let mut merged = Vec::new();
    for index in 0..3 {
        let slice = crate::fleet::Slice::new(index, 3).unwrap();
        let part = rows(&mut slice.clients(10));
        assert_eq!(part.len() as u64, slice.len(10));
        for (p, row) in part.iter().enumerate() {
            // Endpoint, identity and key as in the whole fleet's export.
            assert_eq!(row, &whole[slice.client(p as u64) as usize]);
        }
        merged.extend(part);
    }
    merged.sort();
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(merged, sorted);
}

#[test]
fn an_export_is_a_key_file() {
    let fleet = parsed(&format!("derive = {{ master = \"{MASTER}\" }}"));
    let creds = credentials(&fleet);
    let mut csv = Vec::new();
    creds.export(0..3, ExportFormat::Csv, &mut csv).unwrap();
    let keys = key_file::parse(std::str::from_utf8(&csv).unwrap(), "export.csv").unwrap();
    for (index, endpoint) in ["dev-0001", "dev-0002", "dev-0003"].iter().enumerate() {
        let psk = creds.psk(index as u64, endpoint);
        let (identity, key) = &keys[*endpoint];
        assert_eq!(
            (identity.as_bytes(), key.expose()),
            (&psk.identity[..], &psk.key[..])
        );
    }
}

#[test]
fn the_psk_cipher_defaults_to_ccm8_and_bad_values_name_the_field() {
    let fleet = parsed("key = \"00ff\"");
    let Credential::Psk(_) = Credentials::Psk(credentials(&fleet)).credential(0, "dev-0001") else {
        panic!("CCM-8 goes through dimpl");
    };
    let explicit = parsed("key = \"00ff\"\ncipher = \"aes-128-ccm8\"");
    assert_eq!(fleet.security, explicit.security);
    let (line, field, message) = rejected("key = \"00ff\"\ncipher = \"aes-256-gcm\"");
    assert_eq!((line, field.as_str()), (6, "cipher"), "{message}");
    assert!(message.contains("\"aes-128-gcm\""), "{message}");
    let certificate =
        format!("{SERVER}[security]\nmode = \"certificate\"\ncipher = \"aes-128-gcm\"\n{REST}");
    let err = parse_with(&certificate, &Overrides::default()).unwrap_err();
    assert_eq!(located(&err), (5, "cipher"), "{err}");
}

#[cfg(not(feature = "openssl"))]
#[test]
fn gcm_without_the_openssl_feature_says_which_feature() {
    let (line, field, message) = rejected("key = \"00ff\"\ncipher = \"aes-128-gcm\"");
    assert_eq!((line, field.as_str()), (6, "cipher"), "{message}");
    assert!(message.contains("--features openssl"), "{message}");
}

#[cfg(feature = "openssl")]
#[test]
fn gcm_clients_go_through_openssl_against_a_coaps_server_only() {
    let fleet = parsed("key = \"00ff\"\ncipher = \"aes-128-gcm\"");
    let Some(Security::Psk(security)) = &fleet.security else {
        panic!("PSK");
    };
    assert!(
        security.to_string().ends_with("aes-128-gcm (OpenSSL)"),
        "{security}"
    );
    match Credentials::Psk(credentials(&fleet)).credential(0, "dev-0001") {
        Credential::OpensslPsk(psk, cipher) => {
            assert_eq!(cipher, PskCipher::Aes128Gcm);
            assert_eq!(
                (psk.identity.as_slice(), psk.key.as_slice()),
                (&b"dev-0001"[..], &[0, 0xff][..])
            );
        }
        other => panic!("{other:?}"),
    }
    let embedded = text("key = \"00ff\"\ncipher = \"aes-128-gcm\"").replace(SERVER, "");
    let err = parse_with(&embedded, &Overrides::default()).unwrap_err();
    assert_eq!(located(&err).1, "cipher", "{err}");
    assert!(err.to_string().contains("embedded server"), "{err}");
}
