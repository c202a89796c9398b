//! libcoap's `coap-client` (its `OpenSSL` and `GnuTLS` builds, from Debian's `libcoap3-bin`)
//! registers with `serve --psk-key` over DTLS: each handshake goes through the server's cookie
//! exchange (a `HelloVerifyRequest` first, the session only once the cookie comes back).

#[path = "support/accounting.rs"]
mod accounting;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/serve.rs"]
mod serve;
#[path = "support/shipped.rs"]
mod shipped;

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use serve::{Serve, registered_now};

/// The key as `coap-client -k` takes it, and as `serve --psk-key` does (hex).
const KEY: &str = "libcoap-key-0123";

#[test]
fn libcoap_clients_register_over_dtls_through_the_cookie_exchange() {
    let hex = KEY.bytes().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    let mut command = Command::new(env!("CARGO_BIN_EXE_lwm2m-swarm"));
    command.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--psk-key",
        &hex,
        "--status-every",
        "100ms",
    ]);
    let server = Serve::start(command);
    let clients = ["coap-client-openssl", "coap-client-gnutls"];
    for (n, client) in clients.iter().enumerate() {
        let endpoint = format!("libcoap-{n}");
        let uri = format!("coaps://{}/rd?ep={endpoint}&lt=60", server.addr);
        let (status, out, err) = peers::run_bounded(
            Command::new(client).args(["-m", "post", "-u", &endpoint, "-k", KEY, "-B", "5", &uri]),
            Duration::from_secs(30),
        );
        assert_eq!(status, Some(true), "{client} {uri}:\n{out}\n{err}");
        server.wait_for(
            &format!("{client}'s registration"),
            Duration::from_secs(10),
            |status| registered_now(status) == Some(n as u64 + 1),
        );
    }
    server.wait_for("both handshakes", Duration::from_secs(10), |status| {
        status
            .lines()
            .last()
            .is_some_and(|l| l.contains("handshakes ok 2 failed 0"))
    });
    server.stop();
}
