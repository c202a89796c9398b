use super::*;

/// 2023-11-14, the clock of the tests' devices.
pub(crate) const NOW: i64 = 1_700_000_000;

pub(crate) fn years(from: i32, to: i32) -> Validity {
    Validity {
        not_before: rcgen::date_time_ymd(from, 1, 1),
        not_after: rcgen::date_time_ymd(to, 1, 1),
    }
}

/// A CA named `name` with a key derived from it: `(certificate PEM, key PEM)`.
pub(crate) fn ca_pem(name: &str) -> (String, String) {
    self_signed_ca(
        name,
        &DeviceKey::derive(b"test ca", name),
        years(2020, 2040),
    )
    .unwrap()
}

/// Whether `shown` (Debug or error text) gives away part of `secret`: any 8 bytes of it, as
/// Rust prints a byte slice, as hex or as text.
pub(crate) fn shows_secret(shown: &str, secret: &[u8]) -> bool {
    secret.windows(8).any(|w| {
        let debug = format!("{w:?}");
        shown.contains(debug.trim_matches(['[', ']']))
            || shown.contains(&hex::encode(w))
            || std::str::from_utf8(w).is_ok_and(|text| shown.contains(text))
    })
}

pub(crate) fn authority(name: &str) -> Authority {
    let (cert, key) = ca_pem(name);
    Authority::from_pem(&cert, &key, "test").unwrap()
}

#[test]
fn a_device_certificate_is_the_same_bytes_every_time_and_names_the_endpoint() {
    let ca = authority("Fleet CA");
    let key = DeviceKey::derive(b"master", "dev-0001");
    let first = ca.issue("dev-0001", &key, &Role::Client, None).unwrap();
    let again = ca
        .issue(
            "dev-0001",
            &DeviceKey::derive(b"master", "dev-0001"),
            &Role::Client,
            None,
        )
        .unwrap();
    assert_eq!(first.certificate, again.certificate);
    assert_eq!(first.private_key, again.private_key);
    assert_eq!(common_name(&first.certificate).as_deref(), Some("dev-0001"));
    let other = ca
        .issue(
            "dev-0002",
            &DeviceKey::derive(b"master", "dev-0002"),
            &Role::Client,
            None,
        )
        .unwrap();
    assert_ne!(first.private_key, other.private_key);
    assert_ne!(
        DeviceKey::derive(b"another master", "dev-0001").pkcs8_der(),
        first.private_key
    );
    // dimpl loads the key (PKCS#8) and the certificate's key matches it: a handshake proves
    // that in the server tests; here, the CA's validity is copied.
    let (_, parsed) = x509_parser::parse_x509_certificate(&first.certificate).unwrap();
    assert_eq!(parsed.validity().not_before.timestamp(), 1_577_836_800); // 2020-01-01
}

#[test]
fn a_device_certificate_verifies_against_its_ca_only() {
    let ca = authority("Fleet CA");
    let cert = ca
        .issue(
            "dev-0001",
            &DeviceKey::derive(b"m", "dev-0001"),
            &Role::Client,
            None,
        )
        .unwrap();
    let (ca_cert, _) = ca_pem("Fleet CA");
    let clients = PeerVerifier::chain(&ca_cert, None, Usage::Client, "ca").unwrap();
    assert_eq!(clients.verify(&cert.certificate, NOW), Ok(()));

    let (other_ca, _) = ca_pem("Another CA");
    let strangers = PeerVerifier::chain(&other_ca, None, Usage::Client, "ca").unwrap();
    assert_eq!(
        strangers.verify(&cert.certificate, NOW),
        Err(CertProblem::UnknownIssuer)
    );
    // A CA of the same name with another key: the signature does not check.
    let (impostor, _) = self_signed_ca(
        "Fleet CA",
        &DeviceKey::derive(b"impostor", "Fleet CA"),
        years(2020, 2040),
    )
    .unwrap();
    let impostors = PeerVerifier::chain(&impostor, None, Usage::Client, "ca").unwrap();
    assert_eq!(
        impostors.verify(&cert.certificate, NOW),
        Err(CertProblem::UnknownIssuer)
    );
    // A client certificate is no server's.
    let servers = PeerVerifier::chain(&ca_cert, None, Usage::Server, "ca").unwrap();
    assert_eq!(
        servers.verify(&cert.certificate, NOW),
        Err(CertProblem::Invalid)
    );
    assert_eq!(clients.verify(b"not DER", NOW), Err(CertProblem::Invalid));
}

#[test]
fn validity_names_and_pins_are_checked() {
    let ca = authority("Fleet CA");
    let (ca_cert, _) = ca_pem("Fleet CA");
    let key = DeviceKey::derive(b"m", "server");
    let names = Role::Server(vec!["localhost".into(), "127.0.0.1".into()]);
    let server = ca.issue("server", &key, &names, None).unwrap();
    let expired = ca
        .issue("server", &key, &names, Some(years(2000, 2001)))
        .unwrap();
    let future = ca
        .issue("server", &key, &names, Some(years(2030, 2031)))
        .unwrap();

    let any_name = PeerVerifier::chain(&ca_cert, None, Usage::Server, "ca").unwrap();
    assert_eq!(any_name.verify(&server.certificate, NOW), Ok(()));
    assert_eq!(
        any_name.verify(&expired.certificate, NOW),
        Err(CertProblem::Expired)
    );
    assert_eq!(
        any_name.verify(&future.certificate, NOW),
        Err(CertProblem::NotYetValid)
    );
    for (name, expected) in [
        ("localhost", Ok(())),
        ("127.0.0.1", Ok(())),
        ("lwm2m.example.com", Err(CertProblem::WrongName)),
    ] {
        let by_name = PeerVerifier::chain(&ca_cert, Some(name), Usage::Server, "ca").unwrap();
        assert_eq!(by_name.verify(&server.certificate, NOW), expected, "{name}");
    }

    let pin = PeerVerifier::parse_pin(&format!("sha256:{}", fingerprint(&server.certificate)));
    let pinned = PeerVerifier::Pinned(vec![pin.unwrap()]);
    assert_eq!(pinned.verify(&server.certificate, NOW), Ok(()));
    assert_eq!(
        pinned.verify(&expired.certificate, NOW),
        Err(CertProblem::NotPinned)
    );
    assert_eq!(PeerVerifier::AcceptAny.verify(b"anything", NOW), Ok(()));
    assert!(PeerVerifier::parse_pin("sha256:abcd").is_err());
}

#[test]
fn a_ca_key_that_is_not_the_certificates_is_refused_without_showing_it() {
    let (cert, _) = ca_pem("Fleet CA");
    let (_, other_key) = ca_pem("Another CA");
    let err = Authority::from_pem(&cert, &other_key, "ca.pem and ca.key").unwrap_err();
    assert!(err.0.contains("not the key of the CA certificate"), "{err}");
    let err = Authority::from_pem(
        &cert,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        "k",
    )
    .unwrap_err();
    assert!(!err.0.contains("c2VjcmV0"), "{err}");
    let err = Authority::from_pem("no pem", &other_key, "ca.pem").unwrap_err();
    assert!(err.0.starts_with("ca.pem: "), "{err}");
}

#[test]
fn certificate_and_key_pem_round_trip() {
    let ca = authority("Fleet CA");
    let cert = ca
        .issue(
            "dev-0001",
            &DeviceKey::derive(b"m", "dev-0001"),
            &Role::Client,
            None,
        )
        .unwrap();
    let back = certificate_from_pem(
        &certificate_pem(&cert.certificate),
        &private_key_pem(&cert.private_key),
        "dev-0001.pem",
    )
    .unwrap();
    assert_eq!(back.certificate, cert.certificate);
    assert_eq!(back.private_key, cert.private_key);
    let shown = format!("{:?} {:?}", DeviceKey::derive(b"m", "dev-0001"), back);
    assert!(!shows_secret(&shown, &back.private_key), "{shown}");
    // The check itself can fail: the key's bytes as Rust prints them are caught.
    assert!(shows_secret(
        &format!("{:?}", back.private_key),
        &back.private_key
    ));
}
