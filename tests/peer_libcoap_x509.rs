//! Certificate mode against code nobody here wrote: libcoap's resource directory
//! (`coap-rd-openssl`, OpenSSL 3 backend) with a server certificate and a client CA (`-c`,
//! `-C`), all issued in the test. The engine's clients present certificates issued under the
//! test CA, check the directory's, and register (2.01); a CA that does not match, on either
//! side, fails every handshake with a counted reason, and the run ends within its deadline.

use std::path::{Path as FsPath, PathBuf};
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
use lwm2m_swarm::security::x509::{
    self, Authority, DeviceCertificates, DeviceKey, DeviceSource, PeerVerifier, Role, Usage,
    Validity,
};
use lwm2m_swarm::transport::PortRange;

const CLIENTS: u64 = 200;

/// One run at a time: a handshake costs both ends ECDSA and ECDH, and this box is shared.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn validity() -> Validity {
    Validity {
        not_before: rcgen::date_time_ymd(2020, 1, 1),
        not_after: rcgen::date_time_ymd(2040, 1, 1),
    }
}

/// A CA for the test, written as `NAME.pem`; returns it with its PEM text.
fn ca(dir: &FsPath, name: &str) -> (Authority, PathBuf, String) {
    let key = DeviceKey::derive(b"libcoap test", name);
    let (cert, key_pem) = x509::self_signed_ca(name, &key, validity()).unwrap();
    let path = dir.join(format!("{}.pem", name.replace(' ', "-")));
    std::fs::write(&path, &cert).unwrap();
    let authority = Authority::from_pem(&cert, &key_pem, name).unwrap();
    (authority, path, cert)
}

/// `coap-rd-openssl` with a certificate from `server_ca` (for 127.0.0.1) that accepts clients
/// chaining to `client_ca_file`.
fn directory(dir: &FsPath, server_ca: &Authority, client_ca_file: &FsPath) -> peers::LibcoapRd {
    let key = DeviceKey::derive(b"libcoap test", "directory");
    let role = Role::Server(vec!["127.0.0.1".into(), "localhost".into()]);
    let cert = server_ca.issue("127.0.0.1", &key, &role, None).unwrap();
    let both = dir.join("directory.pem");
    let pem = x509::certificate_pem(&cert.certificate) + &x509::private_key_pem(&cert.private_key);
    std::fs::write(&both, pem).unwrap();
    peers::LibcoapRd::start_pki(&both, client_ca_file)
}

/// Runs the fleet's clients, issued under `devices_ca`, checking the server against
/// `trusted_pem` as 127.0.0.1.
fn run(
    rd: &peers::LibcoapRd,
    devices_ca: Authority,
    trusted_pem: &str,
    first_port: u16,
    handshake_timeout: Option<Duration>,
) -> Snapshot {
    let toml = format!(
        "[client]\nlifetime = \"300s\"\nseed = 5\n\
         [[population]]\nname = \"p\"\nshare = 1.0\ntemplate = \"environment-sensor\"\n\
         [load]\nclients = {CLIENTS}\nrate = 50\nhold = \"60s\"\nstop_timeout = \"3s\"\n"
    );
    let (plan, templates) = peers::planned_fleet(&toml, "x509.toml", handshake_timeout);
    let server_check =
        PeerVerifier::chain(trusted_pem, Some("127.0.0.1"), Usage::Server, "test").unwrap();
    let source = DeviceSource::Issued {
        authority: Box::new(devices_ca),
        master: b"libcoap test devices".to_vec(),
    };
    let devices = Arc::new(DeviceCertificates::new(source, server_check));
    // Generous: a loaded box may run late; the counts are what the tests check.
    let limit = plan.total_duration() + Duration::from_secs(30);
    let mut config = EngineConfig::new(rd.dtls);
    // A stable, unique source per client (libcoap stalls when an address:port it knows sends a
    // new ClientHello): each run its own port range.
    config.ports = Some(PortRange::new(first_port, first_port + 9).unwrap());
    config.credentials = Some(Arc::new(devices));
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let engine = Engine::start(plan, templates, &config).expect("engine starts");
    while !engine.is_finished() {
        assert!(
            started.elapsed() < limit,
            "the run did not end within {limit:?}"
        );
        // The long hold is only a deadline: the stop begins once every Register ended.
        if peers::registers_ended(&engine.snapshot(), CLIENTS) {
            engine.stop();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    engine.join().expect("engine ends cleanly")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lwm2m-swarm-libcoap-x509-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn libcoap_rd_accepts_200_clients_with_certificates() {
    let dir = scratch("ok");
    let (fleet_ca, fleet_ca_file, fleet_ca_pem) = ca(&dir, "Fleet CA");
    let rd = directory(&dir, &fleet_ca, &fleet_ca_file);
    let s = run(&rd, fleet_ca, &fleet_ca_pem, 26_100, None);
    peers::assert_all_handshook_and_registered(&s, CLIENTS);
    println!("{s}");
}

#[test]
fn a_directory_certificate_from_another_ca_fails_every_handshake_with_a_reason() {
    let dir = scratch("wrong-server");
    let (fleet_ca, fleet_ca_file, _) = ca(&dir, "Fleet CA");
    let (_, _, other_pem) = ca(&dir, "Other CA");
    let rd = directory(&dir, &fleet_ca, &fleet_ca_file);
    let s = run(
        &rd,
        fleet_ca,
        &other_pem,
        26_200,
        Some(Duration::from_secs(10)),
    );
    let h = &s.handshakes;
    assert_eq!((h.ok, h.failed, h.aborted), (0, CLIENTS, 0), "{s}");
    assert_eq!(
        h.failures,
        vec![("peer_certificate_unknown_issuer".to_string(), CLIENTS)],
        "{s}"
    );
    let register = s.request(RequestKind::Register);
    assert_eq!(register.sent, 0, "nothing went out in clear: {s}");
    assert_eq!(register.unsent, CLIENTS, "{s}");
}

#[test]
fn libcoap_refuses_devices_from_another_ca_and_says_so() {
    let dir = scratch("wrong-devices");
    let (fleet_ca, _, fleet_ca_pem) = ca(&dir, "Fleet CA");
    let (_, other_file, _) = ca(&dir, "Other CA");
    // The directory trusts "Other CA" for clients; ours come from "Fleet CA".
    let rd = directory(&dir, &fleet_ca, &other_file);
    let s = run(
        &rd,
        fleet_ca,
        &fleet_ca_pem,
        26_300,
        Some(Duration::from_secs(10)),
    );
    let h = &s.handshakes;
    assert_eq!((h.ok, h.failed, h.aborted), (0, CLIENTS, 0), "{s}");
    // OpenSSL's alert names the reason: the devices' CA is not one it knows.
    assert_eq!(h.failures, vec![("unknown_ca".to_string(), CLIENTS)], "{s}");
    println!("{s}");
}
