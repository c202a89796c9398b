//! The OpenSSL client against an OpenSSL server (GCM) and our dimpl server (CCM-8), in one thread
//! under a simulated clock.

use std::time::Duration;

use openssl::ssl::{ErrorCode, Ssl, SslContext, SslMethod, SslStream, SslVersion};

use super::{Datagrams, OpensslSession};
use crate::clock::Instant;
use crate::security::dtls::{DtlsParams, Failure, ServerKeys, Session, server_config};
use crate::security::{Psk, PskCipher};

const KEY: &[u8] = b"secret-psk-0123";

fn psk(key: &[u8]) -> Psk {
    Psk {
        identity: b"ossl-0001".to_vec(),
        key: key.to_vec(),
    }
}

/// An OpenSSL DTLS server knowing `ossl-0001`'s key, offering GCM only.
fn openssl_server() -> SslStream<Datagrams> {
    let mut ctx = SslContext::builder(SslMethod::dtls_server()).unwrap();
    ctx.set_min_proto_version(Some(SslVersion::DTLS1_2))
        .unwrap();
    ctx.set_cipher_list("PSK-AES128-GCM-SHA256").unwrap();
    ctx.set_psk_server_callback(|_, identity, key| {
        assert_eq!(identity, Some(&b"ossl-0001"[..]));
        key[..KEY.len()].copy_from_slice(KEY);
        Ok(KEY.len())
    });
    let mut ssl = Ssl::new(&ctx.build()).unwrap();
    ssl.set_accept_state();
    SslStream::new(ssl, Datagrams::default()).unwrap()
}

/// Moves datagrams both ways until neither side has any; returns the client's last result.
fn pump_openssl(client: &mut OpensslSession, server: &mut SslStream<Datagrams>, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(d) = client.poll_transmit() {
            server.get_mut().inbound.push_back(d);
            moved = true;
        }
        match server.do_handshake() {
            Ok(()) => {}
            Err(e) => assert_eq!(e.code(), ErrorCode::WANT_READ, "{e}"),
        }
        while let Some(d) = server.get_mut().outbound.pop_front() {
            client.handle_datagram(now, &d).unwrap();
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn gcm_handshakes_with_an_openssl_server_and_carries_data_both_ways() {
    let now = Instant::ZERO;
    let mut client =
        OpensslSession::connect(&psk(KEY), PskCipher::Aes128Gcm, &DtlsParams::default(), now)
            .unwrap();
    assert!(client.poll_timeout().is_some(), "the ClientHello is timed");
    let mut server = openssl_server();
    pump_openssl(&mut client, &mut server, now);
    assert!(client.is_connected() && client.take_connected());
    assert!(!client.take_connected(), "reported once");
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(
        client.negotiated_cipher(),
        Some("TLS_PSK_WITH_AES_128_GCM_SHA256")
    );
    client.send(b"ping").unwrap();
    let record = client.poll_transmit().unwrap();
    assert!(!record.windows(4).any(|w| w == b"ping"), "encrypted");
    server.get_mut().inbound.push_back(record);
    let mut buf = [0u8; 64];
    let n = server.ssl_read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    server.ssl_write(b"pong").unwrap();
    let record = server.get_mut().outbound.pop_front().unwrap();
    client.handle_datagram(now, &record).unwrap();
    assert_eq!(client.poll_received().as_deref(), Some(&b"pong"[..]));
    server.ssl_write(b"late").unwrap();
    let late = server.get_mut().outbound.pop_front().unwrap();
    // close_notify reaches the server as the end of the stream; what comes after is dropped.
    client.close();
    client.handle_datagram(now, &late).unwrap();
    assert_eq!(client.poll_received(), None);
    server
        .get_mut()
        .inbound
        .push_back(client.poll_transmit().unwrap());
    assert_eq!(
        server.ssl_read(&mut buf).unwrap_err().code(),
        ErrorCode::ZERO_RETURN
    );
}

/// Moves datagrams between the OpenSSL client and a dimpl server until neither has any.
fn pump_dimpl(
    client: &mut OpensslSession,
    server: &mut Session,
    now: Instant,
) -> Result<(), Failure> {
    loop {
        let mut moved = false;
        while let Some(d) = client.poll_transmit() {
            server.handle_datagram(now, &d)?;
            moved = true;
        }
        while let Some(d) = server.poll_transmit() {
            client.handle_datagram(now, &d)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

fn dimpl_server(key: &[u8], params: &DtlsParams) -> Session {
    let keys = ServerKeys::shared(key.to_vec());
    Session::accept(server_config(&keys, params), Instant::ZERO).unwrap()
}

#[test]
fn ccm8_on_openssl_handshakes_with_our_dimpl_server() {
    let params = DtlsParams::default();
    let now = Instant::ZERO;
    let mut client =
        OpensslSession::connect(&psk(KEY), PskCipher::Aes128Ccm8, &params, now).unwrap();
    let mut server = dimpl_server(KEY, &params);
    pump_dimpl(&mut client, &mut server, now).unwrap();
    assert!(client.is_connected() && server.is_connected());
    assert_eq!(
        client.negotiated_cipher(),
        Some("TLS_PSK_WITH_AES_128_CCM_8")
    );
    client.send(b"hello dimpl").unwrap();
    pump_dimpl(&mut client, &mut server, now).unwrap();
    assert_eq!(server.poll_received().as_deref(), Some(&b"hello dimpl"[..]));
}

#[test]
fn a_lost_client_hello_is_sent_again_when_our_clock_says() {
    let params = DtlsParams::default();
    let mut client =
        OpensslSession::connect(&psk(KEY), PskCipher::Aes128Ccm8, &params, Instant::ZERO).unwrap();
    let lost = client.poll_transmit().unwrap();
    assert_eq!(client.poll_transmit(), None);
    let due = Instant::ZERO + params.flight_start_rto;
    assert_eq!(client.poll_timeout(), Some(due));
    client
        .handle_timeout(Instant::from_micros(999_999))
        .unwrap();
    assert_eq!(client.poll_transmit(), None, "not due yet");
    client.handle_timeout(due).unwrap();
    let again = client
        .poll_transmit()
        .expect("retransmitted at 1 s of our clock");
    assert_eq!(again.len(), lost.len());
    // The next interval is doubled.
    assert_eq!(
        client.poll_timeout(),
        Some(due + params.flight_start_rto * 2)
    );
    let mut server = dimpl_server(KEY, &params);
    server.handle_datagram(due, &again).unwrap();
    while let Some(d) = server.poll_transmit() {
        client.handle_datagram(due, &d).unwrap();
    }
    pump_dimpl(&mut client, &mut server, due).unwrap();
    assert!(client.is_connected());
}

#[test]
fn unanswered_flights_time_out_on_our_clock() {
    let params = DtlsParams {
        flight_start_rto: Duration::from_millis(100),
        flight_retries: 2,
        handshake_timeout: Duration::from_secs(40),
    };
    let mut client =
        OpensslSession::connect(&psk(KEY), PskCipher::Aes128Gcm, &params, Instant::ZERO).unwrap();
    let mut sent = 0;
    let result = loop {
        while client.poll_transmit().is_some() {
            sent += 1;
        }
        let at = client.poll_timeout().expect("a flight is pending");
        if let Err(failure) = client.handle_timeout(at) {
            break (failure, at);
        }
    };
    assert_eq!(sent, 3, "the ClientHello and two retransmissions");
    // 100 ms, 200 ms, then the 400 ms after the last one: 700 ms.
    assert_eq!(result, (Failure::Timeout, Instant::from_micros(700_000)));
}

#[test]
fn a_wrong_key_fails_the_handshake_instead_of_connecting() {
    let params = DtlsParams {
        flight_start_rto: Duration::from_millis(100),
        flight_retries: 2,
        handshake_timeout: Duration::from_secs(2),
    };
    let mut client = OpensslSession::connect(
        &psk(b"not-the-key"),
        PskCipher::Aes128Ccm8,
        &params,
        Instant::ZERO,
    )
    .unwrap();
    let mut server = dimpl_server(KEY, &params);
    let mut server_failed = false;
    let mut now = Instant::ZERO;
    let failure = loop {
        while let Some(d) = client.poll_transmit() {
            server_failed |= server.handle_datagram(now, &d).is_err();
        }
        while let Some(d) = server.poll_transmit() {
            client.handle_datagram(now, &d).unwrap();
        }
        assert!(!client.is_connected());
        now = client.poll_timeout().expect("still handshaking");
        if let Err(f) = client.handle_timeout(now) {
            break f;
        }
    };
    // dimpl cannot decrypt our Finished and gives up without an alert: we time out, after at
    // least the three intervals (100 + 200 + 400 ms) of the last flight, well before 2 s.
    assert!(server_failed);
    assert_eq!(failure, Failure::Timeout);
    assert!((700_000..2_000_000).contains(&now.as_micros()), "{now:?}");
}

#[test]
fn keys_stay_out_of_debug_output() {
    let client = OpensslSession::connect(
        &psk(KEY),
        PskCipher::Aes128Gcm,
        &DtlsParams::default(),
        Instant::ZERO,
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("secret"));
}
