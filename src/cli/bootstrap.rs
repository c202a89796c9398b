//! The embedded bootstrap server beside the embedded LWM2M server: `run` starts the pair when
//! the fleet bootstraps and names no server, `serve --bootstrap ADDR` runs them standalone.
//! Over DTLS, clients reach the bootstrap server with the fleet's keys (or `--psk-key`) and
//! get keys of their own for the LWM2M server, which works each one out from its identity.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use super::args::{LimitArgs, LoadArgs};
use super::output::{self, say};
use super::{Failure, failed};
use crate::fleet::{Credentials, Plan, format_duration};
use crate::security::dtls::ServerKeys;
use crate::server::{
    BootstrapServer, BootstrapServerConfig, DtlsServerConfig, Provisioning, Runner, ServerConfig,
};

/// The pair of servers: the bootstrap server clients contact first, the LWM2M server it
/// sends them to.
pub(super) struct BootstrapPair {
    pub bootstrap: Runner,
    pub server: Runner,
    secure: bool,
}

impl BootstrapPair {
    /// Starts the LWM2M server on `server_bind` (with `config`), then the bootstrap server on
    /// `bootstrap_bind`, which writes `lifetime`. `bootstrap_keys`: the keys clients use with
    /// the bootstrap server (DTLS for both then), `None` for plain CoAP.
    pub fn start(
        (server_bind, bootstrap_bind): (SocketAddr, SocketAddr),
        config: ServerConfig,
        lifetime: Duration,
        bootstrap_keys: Option<ServerKeys>,
        seed: u64,
        limits: &LimitArgs,
    ) -> Result<BootstrapPair, Failure> {
        let secure = bootstrap_keys.is_some();
        let mut provisioning = Provisioning {
            // A simulated fleet's keys guard nothing: a per-process random master will do.
            psk_master: secure.then(random_master),
            lifetime,
            ..Provisioning::new("")
        };
        let server_dtls = provisioning
            .server_keys()
            .map(|keys| limits.dtls(DtlsServerConfig::new(keys)));
        let config = limits.server(config);
        let server =
            Runner::start_with(server_bind, config, seed, server_dtls.as_ref()).map_err(|e| {
                failed(format!(
                    "cannot start the LWM2M server on {server_bind}: {e}"
                ))
            })?;
        let scheme = if secure { "coaps" } else { "coap" };
        provisioning.server_uri = format!("{scheme}://{}", server.local_addr());
        let bootstrap_dtls = bootstrap_keys.map(|keys| limits.dtls(DtlsServerConfig::new(keys)));
        let bootstrap_config = BootstrapServerConfig {
            max_sessions: limits.bootstrap_sessions,
            ..BootstrapServerConfig::new(provisioning)
        };
        let bootstrap = Runner::serve(
            bootstrap_bind,
            BootstrapServer::new(bootstrap_config, seed),
            bootstrap_dtls.as_ref(),
        )
        .map_err(|e| {
            failed(format!(
                "cannot start the bootstrap server on {bootstrap_bind}: {e}"
            ))
        })?;
        Ok(BootstrapPair {
            bootstrap,
            server,
            secure,
        })
    }

    /// Where clients go first.
    pub fn entry(&self) -> SocketAddr {
        self.bootstrap.local_addr()
    }

    fn scheme(&self) -> &'static str {
        if self.secure { "coaps" } else { "coap" }
    }

    /// Stops both, printing each one's last counts.
    /// Stops both, printing their last counts; an error if either had stopped on its own.
    pub fn stop(self) -> Result<(), Failure> {
        let mut result = Ok(());
        for (name, runner) in [
            ("bootstrap server", self.bootstrap),
            ("server", self.server),
        ] {
            let (stats, error) = runner.finish();
            let line = format!("embedded {name}: {stats}");
            say!("{}", output::fitted(&line));
            if let Some(e) = error {
                tracing::error!("embedded {name}: {e}");
                result = result.and(Err(failed(format!(
                    "the embedded {name} stopped early: {e}"
                ))));
            }
        }
        result
    }
}

/// `bootstrap coap://127.0.0.1:5783, then coap://127.0.0.1:5683`.
impl fmt::Display for BootstrapPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme();
        write!(
            f,
            "bootstrap {scheme}://{}, then {scheme}://{}",
            self.bootstrap.local_addr(),
            self.server.local_addr()
        )
    }
}

/// `run` with a fleet that bootstraps and names no server: the pair on free loopback ports.
/// Over DTLS when the fleet has credentials (the bootstrap server knows every client's key).
/// The bootstrap server writes one lifetime for everyone: the shortest population's.
pub(super) fn start_for_run(
    plan: &Plan,
    load: &LoadArgs,
    credentials: Option<&Credentials>,
) -> Result<BootstrapPair, Failure> {
    let (config, load) = load.embedded_config(plan);
    let keys = match credentials {
        Some(Credentials::Psk(c)) => Some(ServerKeys::from_map(c.server_keys(plan.clients))),
        Some(Credentials::Certificate(_)) => {
            return Err(failed(
                "the embedded bootstrap server speaks DTLS with pre-shared keys only: give a \
                 certificate fleet a [server] (a bootstrap server of yours), or use mode = \"psk\""
                    .to_string(),
            ));
        }
        None => None,
    };
    let lifetime = plan
        .groups
        .iter()
        .map(|g| g.config.lifetime)
        .min()
        .unwrap_or(Duration::from_secs(300));
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let seed = plan.groups.first().map_or(0, |g| g.seed);
    let limits = LimitArgs::default();
    let pair = BootstrapPair::start((loopback, loopback), config, lifetime, keys, seed, &limits)?;
    let over = if pair.secure {
        format!(
            " over DTLS (PSK: the fleet's {} identities for the bootstrap server, keys of their \
             own for the LWM2M server)",
            plan.clients
        )
    } else {
        String::new()
    };
    say!(
        "embedded LWM2M server behind a bootstrap server: {pair}{over}; lifetime {} written \
         ({})",
        format_duration(lifetime),
        load.describe()
    );
    Ok(pair)
}

fn random_master() -> Vec<u8> {
    (0..2)
        .flat_map(|_| RandomState::new().build_hasher().finish().to_le_bytes())
        .collect()
}
