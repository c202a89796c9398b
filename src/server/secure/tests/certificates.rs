//! Certificate mode (`ECDHE_ECDSA`): clients with certificates issued under a fleet CA and the
//! DTLS server, each checking the other's certificate, under the simulated clock.

use std::sync::Arc;

use super::{World, at, client_with, endpoint, quick};
use crate::client::{ClientState, Event, HandshakeOutcome, RequestKind, RequestOutcome};
use crate::clock::Instant;
use crate::security::Credential;
use crate::security::dtls::Failure;
use crate::security::x509::tests::{NOW, authority, ca_pem, years};
use crate::security::x509::{
    CertProblem, DeviceCertificates, DeviceKey, DeviceSource, PeerVerifier, Role, Usage, Validity,
};
use crate::server::ServerConfig;
use crate::server::secure::{DtlsServerConfig, ServerAuth};

/// Devices issued under `ca`, checking the server against "Fleet CA" as `localhost`.
fn devices(ca: &str) -> Arc<DeviceCertificates> {
    let source = DeviceSource::Issued {
        authority: Box::new(authority(ca)),
        master: b"fleet master".to_vec(),
    };
    let server = PeerVerifier::chain(
        &ca_pem("Fleet CA").0,
        Some("localhost"),
        Usage::Server,
        "ca",
    )
    .unwrap();
    Arc::new(DeviceCertificates::new(source, server))
}

/// A server whose certificate `ca` issued (valid for `validity`, default the CA's), checking
/// clients against "Fleet CA".
fn server(ca: &str, validity: Option<Validity>) -> DtlsServerConfig {
    let certificate = authority(ca)
        .issue(
            "server",
            &DeviceKey::derive(b"server", "server"),
            &Role::Server(vec!["localhost".into()]),
            validity,
        )
        .unwrap();
    let clients = PeerVerifier::chain(&ca_pem("Fleet CA").0, None, Usage::Client, "ca").unwrap();
    DtlsServerConfig {
        params: quick(),
        ..DtlsServerConfig::with_auth(ServerAuth::Certificate {
            certificate,
            clients: Arc::new(clients),
            unix_origin: NOW,
        })
    }
}

fn world(clients: usize, credential: &Credential, server: &DtlsServerConfig) -> World {
    let clients = (0..clients)
        .map(|k| client_with(k, k as u64, credential.clone()))
        .collect();
    World::with_clients(clients, server, ServerConfig::default())
}

fn start_all(w: &mut World) {
    for client in &mut w.clients {
        client.start(Instant::ZERO);
    }
}

#[test]
fn clients_with_issued_certificates_handshake_and_register() {
    let credential = Credential::Certificate(devices("Fleet CA"));
    let mut w = world(3, &credential, &server("Fleet CA", None));
    start_all(&mut w);
    w.run_until(at(5));
    let stats = w.server.stats();
    assert_eq!(stats.dtls.handshakes_ok, 3, "{stats:?}");
    assert_eq!(stats.dtls.handshakes_failed, 0, "{stats:?}");
    for (k, client) in w.clients.iter().enumerate() {
        assert_eq!(w.handshakes(k), vec![HandshakeOutcome::Connected]);
        assert_eq!(client.state(), ClientState::Registered);
        assert!(w.server.server().registration(&endpoint(k)).is_some());
    }
    // The client's own certificate lives in its session only: it pays for a pointer.
    assert!(format!("{:?}", w.clients[0]).contains("sec-00"));
}

/// Client 0's handshakes and whether anything left it in clear (its Register must not).
fn refused_by_client(w: &World) -> Vec<HandshakeOutcome> {
    assert!(w.server.server().registration(&endpoint(0)).is_none());
    assert!(w.events[0].iter().any(|e| matches!(e,
        Event::Request(r) if r.kind == RequestKind::Register && r.outcome == RequestOutcome::Unsent)));
    w.handshakes(0)
}

#[test]
fn a_server_certificate_from_another_ca_is_refused_with_a_reason() {
    let credential = Credential::Certificate(devices("Fleet CA"));
    let mut w = world(1, &credential, &server("Rogue CA", None));
    start_all(&mut w);
    w.run_until(at(5));
    let problem = Failure::Certificate(CertProblem::UnknownIssuer);
    assert_eq!(
        refused_by_client(&w),
        vec![HandshakeOutcome::Failed(problem)]
    );
    assert_eq!(problem.name(), "peer_certificate_unknown_issuer");
    // Told at once by the client's alert, the server counts its handshake failed too.
    let stats = w.server.stats();
    assert_eq!(stats.dtls.handshakes_failed, 1, "{stats:?}");
    assert_eq!(stats.dtls.sessions, 0, "{stats:?}");
    assert_eq!(w.clients[0].state(), ClientState::Registering);
}

#[test]
fn an_expired_server_certificate_is_refused() {
    let credential = Credential::Certificate(devices("Fleet CA"));
    let mut w = world(1, &credential, &server("Fleet CA", Some(years(2000, 2001))));
    start_all(&mut w);
    w.run_until(at(5));
    assert_eq!(
        refused_by_client(&w),
        vec![HandshakeOutcome::Failed(Failure::Certificate(
            CertProblem::Expired
        ))]
    );
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_by_the_server_which_says_why() {
    let credential = Credential::Certificate(devices("Rogue CA"));
    let mut w = world(2, &credential, &server("Fleet CA", None));
    start_all(&mut w);
    w.run_until(at(5));
    let stats = w.server.stats();
    assert_eq!(stats.dtls.handshakes_ok, 0, "{stats:?}");
    assert_eq!(stats.dtls.handshakes_failed, 2, "{stats:?}");
    assert_eq!(stats.dtls.sessions, 0, "{stats:?}");
    // The server's alert (unknown_ca) reaches the client: no wait for a timeout.
    for k in 0..2 {
        assert_eq!(
            w.handshakes(k),
            vec![HandshakeOutcome::Failed(Failure::Alert(48))]
        );
    }
    assert_eq!(Failure::Alert(48).name(), "unknown_ca");
}

#[test]
fn an_expired_client_certificate_is_refused_by_the_server() {
    let expired = authority("Fleet CA")
        .issue(
            &endpoint(0),
            &DeviceKey::derive(b"m", "x"),
            &Role::Client,
            Some(years(2000, 2001)),
        )
        .unwrap();
    let given = DeviceSource::Given([(endpoint(0), expired)].into_iter().collect());
    let server_check = PeerVerifier::chain(&ca_pem("Fleet CA").0, None, Usage::Server, "ca");
    let devices = DeviceCertificates::new(given, server_check.unwrap());
    let credential = Credential::Certificate(Arc::new(devices));
    let mut w = world(1, &credential, &server("Fleet CA", None));
    start_all(&mut w);
    w.run_until(at(5));
    assert_eq!(
        w.handshakes(0),
        vec![HandshakeOutcome::Failed(Failure::Alert(45))]
    );
    assert_eq!(w.server.stats().dtls.handshakes_failed, 1);
}
