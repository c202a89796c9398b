//! DTLS against code nobody here wrote: libcoap's resource directory (`coap-rd-openssl`, Debian's
//! `libcoap3-bin`, OpenSSL 3 backend) on loopback, PSK with AES-128-CCM-8 (dimpl) and, with the
//! `openssl` feature, AES-128-GCM (OpenSSL). The engine's clients handshake, register (2.01 from
//! the directory) and de-register; with a wrong key every handshake fails, is counted, and the
//! run still ends within its deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/shipped.rs"]
mod shipped;

use lwm2m_swarm::client::RequestKind;
use lwm2m_swarm::engine::{Engine, EngineConfig};
use lwm2m_swarm::metrics::Snapshot;
use lwm2m_swarm::security::{CredentialSource, SharedKey};
use lwm2m_swarm::transport::PortRange;

const KEY: &str = "lwm2m-swarm-psk";

fn shared(key: &str) -> Arc<dyn CredentialSource> {
    Arc::new(SharedKey {
        key: key.as_bytes().to_vec(),
    })
}

/// Runs `clients` against a fresh `coap-rd-openssl` with `credentials`; `handshake_timeout`
/// replaces the clients' default (~31 s of flights). The stop begins once every Register ended.
fn run(
    clients: u64,
    credentials: Arc<dyn CredentialSource>,
    first_port: u16,
    handshake_timeout: Option<Duration>,
) -> Snapshot {
    let rd = peers::LibcoapRd::start(KEY);
    let toml = format!(
        "[client]\nlifetime = \"300s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {clients}\nrate = 400\nhold = \"60s\"\nstop_timeout = \"3s\"\n"
    );
    let (plan, templates) = peers::planned_fleet(&toml, "dtls.toml", handshake_timeout);
    // Generous: a loaded box may run late; the counts are what the tests check.
    let limit = plan.total_duration() + Duration::from_secs(30);
    let mut config = EngineConfig::new(rd.dtls);
    // A stable, unique source per client (libcoap stalls when an address:port it knows sends a
    // new ClientHello): each test its own port range.
    config.ports = Some(PortRange::new(first_port, first_port + 9).unwrap());
    config.credentials = Some(credentials);
    let started = Instant::now();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end within {limit:?}"
        );
        if peers::registers_ended(&engine.snapshot(), clients) {
            engine.stop();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let snapshot = engine.join().expect("engine ends cleanly");
    drop(rd);
    snapshot
}

#[test]
fn libcoap_rd_accepts_200_dtls_clients() {
    let clients = std::env::var("DTLS_CLIENTS").map_or(200, |n| n.parse().expect("a number"));
    let s = run(clients, shared(KEY), 41_000, None);
    peers::assert_all_handshook_and_registered(&s, clients);
    // Sent over each session; unanswered by this peer (see above), ended by the stop timeout.
    let deregister = s.request(RequestKind::Deregister);
    assert_eq!(deregister.sent, clients, "{s}");
    let table = s.to_string();
    assert!(
        table.contains(&format!("dtls handshakes: ok {clients}")),
        "{s}"
    );
    println!("{s}");
}

#[test]
fn a_wrong_key_fails_every_handshake_and_the_run_ends() {
    // OpenSSL drops the client's Finished it cannot decrypt without an alert (RFC 6347
    // §4.1.2.7), so the client's handshake times out: 4 s here.
    let s = run(
        200,
        shared("not-the-key"),
        41_100,
        Some(Duration::from_secs(4)),
    );
    let h = &s.handshakes;
    assert_eq!((h.ok, h.failed, h.aborted), (0, 200, 0), "{s}");
    assert_eq!(h.failures, vec![("timeout".to_string(), 200)], "{s}");
    let register = s.request(RequestKind::Register);
    assert_eq!(register.sent, 0, "nothing went out in clear: {s}");
    assert_eq!(
        register.unsent, 200,
        "each failed handshake ends its Register: {s}"
    );
    println!("{s}");
}

#[cfg(feature = "openssl")]
mod gcm {
    use std::net::UdpSocket;

    use lwm2m_swarm::clock::Instant as Clock;
    use lwm2m_swarm::security::dtls::{DtlsParams, OpensslSession};
    use lwm2m_swarm::security::{Psk, PskCipher, ThroughOpenssl};

    use super::*;

    fn gcm(key: &str) -> Arc<dyn CredentialSource> {
        Arc::new(ThroughOpenssl {
            source: SharedKey {
                key: key.as_bytes().to_vec(),
            },
            cipher: PskCipher::Aes128Gcm,
        })
    }

    #[test]
    fn gcm_libcoap_rd_accepts_200_clients() {
        let clients = 200;
        let s = run(clients, gcm(KEY), 27_000, None);
        peers::assert_all_handshook_and_registered(&s, clients);
        println!("{s}");
    }

    #[test]
    fn gcm_a_wrong_key_fails_every_handshake_and_the_run_ends() {
        // As with CCM-8: the directory drops the Finished it cannot decrypt, without an alert.
        let s = run(
            200,
            gcm("not-the-key"),
            27_100,
            Some(Duration::from_secs(4)),
        );
        let h = &s.handshakes;
        assert_eq!((h.ok, h.failed, h.aborted), (0, 200, 0), "{s}");
        assert_eq!(h.failures, vec![("timeout".to_string(), 200)], "{s}");
        let register = s.request(RequestKind::Register);
        assert_eq!(register.sent, 0, "nothing went out in clear: {s}");
        assert_eq!(register.unsent, 200, "{s}");
    }

    /// The engine's clients offer GCM only, so their handshakes could not succeed on another
    /// suite; this one session over a socket shows what the directory picked.
    #[test]
    fn gcm_the_directory_negotiates_tls_psk_with_aes_128_gcm_sha256() {
        let rd = peers::LibcoapRd::start(KEY);
        let socket = UdpSocket::bind("127.0.0.1:27200").expect("bind");
        socket.connect(rd.dtls).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let psk = Psk {
            identity: b"gcm-probe".to_vec(),
            key: KEY.as_bytes().to_vec(),
        };
        let origin = Instant::now();
        let clock = || Clock::from_micros(origin.elapsed().as_micros() as u64);
        let mut session =
            OpensslSession::connect(&psk, PskCipher::Aes128Gcm, &DtlsParams::default(), clock())
                .unwrap();
        let mut buf = [0u8; 2048];
        while !session.is_connected() {
            assert!(origin.elapsed() < Duration::from_secs(10), "no handshake");
            while let Some(d) = session.poll_transmit() {
                socket.send(&d).unwrap();
            }
            match socket.recv(&mut buf) {
                Ok(n) => session.handle_datagram(clock(), &buf[..n]).unwrap(),
                Err(_) => session.handle_timeout(clock()).unwrap(),
            }
        }
        assert_eq!(
            session.negotiated_cipher(),
            Some("TLS_PSK_WITH_AES_128_GCM_SHA256")
        );
    }
}
