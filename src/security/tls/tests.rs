//! TLS sessions against a rustls server in memory, with certificates made for each test.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConnection};

use super::*;

/// A CA, a server certificate for `localhost` and 127.0.0.1 signed by it, and a client
/// certificate, as PEM files in a directory of their own.
pub(crate) struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    pub(crate) fn new(name: &str) -> TestPki {
        let dir =
            std::env::temp_dir().join(format!("lwm2m-swarm-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("lwm2m-swarm test CA {name}"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client_cert, client_key) = leaf(vec!["swarm-000000".into()]);
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        TestPki {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            dir,
        }
    }

    /// A rustls server with this PKI's certificate, ALPN "coap", and client certificates
    /// required when `require_client_cert`.
    pub(crate) fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_file(&self.ca).unwrap())
                .unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let certs = vec![CertificateDer::from_pem_file(&self.server_cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&self.server_key).unwrap();
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![ALPN_COAP.to_vec()];
        Arc::new(config)
    }

    pub(crate) fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca_file: Some(self.ca.clone()),
            ..TlsSettings::default()
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves bytes both ways until neither side has any; the client's errors come back.
fn pump(client: &mut TlsSession, server: &mut ServerConnection) -> Result<Vec<u8>, TlsFailure> {
    let mut plaintext = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(bytes) = client.poll_transmit() {
            moved = true;
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                server.read_tls(&mut rest).unwrap();
                if server.process_new_packets().is_err() {
                    break;
                }
            }
        }
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut to_client).unwrap();
        }
        if !to_client.is_empty() {
            moved = true;
            client.receive(&to_client, &mut plaintext)?;
        }
        if !moved {
            break;
        }
    }
    Ok(plaintext)
}

fn session(settings: &TlsSettings, host: &str) -> TlsSession {
    TlsSession::connect(&TlsClientConfig::build(settings, host).unwrap()).unwrap()
}

#[test]
fn handshake_alpn_sni_and_data_both_ways() {
    let pki = TestPki::new("ok");
    let mut client = session(&pki.settings(), "localhost");
    let mut server = ServerConnection::new(pki.server_config(false)).unwrap();
    // Written before the handshake: held until it is done.
    client.send(b"csm");
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(server.alpn_protocol(), Some(ALPN_COAP));
    assert_eq!(server.server_name(), Some("localhost"));
    let mut got = vec![0; 3];
    std::io::Read::read_exact(&mut server.reader(), &mut got).unwrap();
    assert_eq!(got, b"csm");
    server.writer().write_all(b"pong").unwrap();
    assert_eq!(pump(&mut client, &mut server).unwrap(), b"pong");
    client.close();
    pump(&mut client, &mut server).unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        server.reader().read_to_end(&mut rest).unwrap(),
        0,
        "close_notify"
    );
}

#[test]
fn an_ip_address_host_is_verified_against_the_ip_san_without_sni() {
    let pki = TestPki::new("ip");
    let mut client = session(&pki.settings(), "127.0.0.1");
    let mut server = ServerConnection::new(pki.server_config(false)).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());
    assert_eq!(server.server_name(), None);
}

#[test]
fn a_certificate_from_another_ca_or_for_another_name_is_rejected() {
    let pki = TestPki::new("server");
    let other = TestPki::new("other-ca");
    let mut client = session(&other.settings(), "localhost");
    let mut server = ServerConnection::new(pki.server_config(false)).unwrap();
    assert_eq!(
        pump(&mut client, &mut server),
        Err(TlsFailure::Certificate(CertProblem::UnknownIssuer))
    );
    assert_eq!(
        TlsFailure::Certificate(CertProblem::UnknownIssuer).name(),
        "peer_certificate_unknown_issuer",
        "named as over DTLS"
    );
    // The client tells the server why.
    assert!(client.poll_transmit().is_some(), "an alert for the server");
    let mut client = session(&pki.settings(), "example.org");
    let mut server = ServerConnection::new(pki.server_config(false)).unwrap();
    assert_eq!(
        pump(&mut client, &mut server),
        Err(TlsFailure::Certificate(CertProblem::WrongName))
    );
    assert_eq!(
        TlsFailure::Certificate(CertProblem::WrongName).name(),
        "peer_certificate_wrong_name"
    );
}

#[test]
fn insecure_skip_verify_accepts_any_certificate() {
    let pki = TestPki::new("insecure");
    let settings = TlsSettings {
        insecure_skip_verify: true,
        ..TlsSettings::default()
    };
    let config = TlsClientConfig::build(&settings, "example.org").unwrap();
    assert!(config.is_insecure());
    let mut client = TlsSession::connect(&config).unwrap();
    let mut server = ServerConnection::new(pki.server_config(false)).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking());
}

#[test]
fn mutual_authentication_with_a_client_certificate() {
    let pki = TestPki::new("mutual");
    let with_cert = TlsSettings {
        certificate_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
        ..pki.settings()
    };
    let mut client = session(&with_cert, "localhost");
    let mut server = ServerConnection::new(pki.server_config(true)).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!server.is_handshaking());
    assert_eq!(server.peer_certificates().map(<[_]>::len), Some(1));
    // Without one the server refuses: TLS 1.3 tells the client after its Finished.
    let mut client = session(&pki.settings(), "localhost");
    let mut server = ServerConnection::new(pki.server_config(true)).unwrap();
    let result = pump(&mut client, &mut server);
    assert!(matches!(result, Err(TlsFailure::Alert(_))), "{result:?}");
    assert!(server.is_handshaking());
}

#[test]
fn configuration_errors_name_the_file() {
    let pki = TestPki::new("errors");
    let missing = pki.dir.join("missing.pem");
    let cases = [
        (
            TlsSettings {
                ca_file: Some(missing.clone()),
                ..TlsSettings::default()
            },
            "missing.pem: cannot read PEM",
        ),
        (
            TlsSettings {
                ca_file: Some(pki.server_key.clone()),
                ..TlsSettings::default()
            },
            "server.key: no CERTIFICATE in it",
        ),
        (TlsSettings::default(), "without a CA file"),
        (
            TlsSettings {
                certificate_file: Some(pki.client_cert.clone()),
                ..pki.settings()
            },
            "give both",
        ),
        (
            TlsSettings {
                certificate_file: Some(pki.client_cert.clone()),
                key_file: Some(pki.ca.clone()),
                ..pki.settings()
            },
            "ca.pem: no PRIVATE KEY in it",
        ),
        (
            TlsSettings {
                server_name: Some("not a name!".into()),
                ..pki.settings()
            },
            "is not a DNS name or IP address",
        ),
    ];
    for (settings, expected) in cases {
        let error = TlsClientConfig::build(&settings, "localhost").unwrap_err();
        assert!(error.to_string().contains(expected), "{error} / {expected}");
    }
}

/// A handshake message still incomplete when rustls's 64 KiB buffer is full: the bytes it
/// cannot take fail the connection rather than vanish.
#[test]
fn bytes_rustls_cannot_buffer_fail_the_connection() {
    let pki = TestPki::new("overflow");
    let mut client = session(&pki.settings(), "localhost");
    assert!(client.poll_transmit().is_some(), "ClientHello");
    // A ServerHello announcing 65,000 bytes, sent as full 16 KiB handshake records, and more
    // records than it needs: rustls holds the message until it is whole, up to 64 KiB.
    let mut message = vec![2, 0x00, 0xfd, 0xe8];
    message.resize(5 * 16_384, 0);
    let mut wire = Vec::new();
    for chunk in message.chunks(16_384) {
        wire.extend_from_slice(&[22, 3, 3]);
        wire.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        wire.extend_from_slice(chunk);
    }
    let mut plaintext = Vec::new();
    assert_eq!(
        client.receive(&wire, &mut plaintext),
        Err(TlsFailure::Overflow)
    );
    assert_eq!(TlsFailure::Overflow.name(), "tls_buffer_full");
}
