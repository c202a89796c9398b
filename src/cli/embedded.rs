//! The servers `run` starts itself when the fleet names none: the embedded LWM2M server on a
//! free loopback port (over DTLS when the fleet has credentials), or that server behind the
//! embedded bootstrap server.

use super::output::{self, say};
use std::net::SocketAddr;
use std::sync::Arc;

use super::args::{LimitArgs, LoadArgs};
use super::{Failure, bad_input, bootstrap, failed};
use crate::fleet::{CertificateCredentials, Credentials, Plan};
use crate::security::dtls::ServerKeys;
use crate::server::{DtlsServerConfig, Runner, ServerAuth};

/// The servers `run` started itself: none (the fleet names one), the embedded LWM2M server,
/// or that server behind the embedded bootstrap server.
pub(super) enum Embedded {
    None,
    Server { runner: Runner, secure: bool },
    Bootstrap(bootstrap::BootstrapPair),
}

impl Embedded {
    /// Starts what `plan` needs; returns where clients go first.
    pub(super) fn start(
        plan: &Plan,
        load: &LoadArgs,
        credentials: Option<&Credentials>,
    ) -> Result<(SocketAddr, Embedded), Failure> {
        if plan.bootstrap.is_some() {
            let pair = bootstrap::start_for_run(plan, load, credentials)?;
            return Ok((pair.entry(), Embedded::Bootstrap(pair)));
        }
        let runner = start_server(plan, load, credentials, &LimitArgs::default())?;
        let secure = credentials.is_some();
        Ok((runner.local_addr(), Embedded::Server { runner, secure }))
    }

    /// The embedded LWM2M server alone, without security, with `limits` (`capacity`).
    pub(super) fn start_limited(
        plan: &Plan,
        load: &LoadArgs,
        limits: &LimitArgs,
    ) -> Result<(SocketAddr, Embedded), Failure> {
        let runner = start_server(plan, load, None, limits)?;
        Ok((
            runner.local_addr(),
            Embedded::Server {
                runner,
                secure: false,
            },
        ))
    }

    /// The LWM2M server's firmware campaigns, if it ran any: printed, and for `--json`.
    pub(super) fn campaign_report(&self) -> Option<crate::report::FirmwareCampaign> {
        let campaign = self.campaign_stats()?;
        let line = super::campaign::summary_line(&campaign);
        say!("{}", output::fitted(&line));
        Some(super::campaign::report(&campaign))
    }

    /// The campaigns' counts now, once one has picked a device.
    pub(super) fn campaign_stats(&self) -> Option<crate::server::CampaignStats> {
        let stats = match self {
            Embedded::None => return None,
            Embedded::Server { runner, .. } => runner.stats(),
            Embedded::Bootstrap(pair) => pair.server.stats(),
        };
        Some(stats.campaign).filter(|c| c.targeted > 0)
    }

    /// Stops them, printing their last counts; an error if one had stopped on its own (the
    /// run's figures then count a server that was not there).
    pub(super) fn stop(self) -> Result<(), Failure> {
        match self {
            Embedded::None => Ok(()),
            Embedded::Server { runner, .. } => {
                tracing::debug!("embedded server stopping");
                let (stats, error) = runner.finish();
                let line = format!("embedded server: {stats}");
                say!("{}", output::fitted(&line));
                error.map_or(Ok(()), |e| {
                    Err(failed(format!("the embedded server stopped early: {e}")))
                })
            }
            Embedded::Bootstrap(pair) => pair.stop(),
        }
    }
}

/// The target as reports name it: `embedded coap://127.0.0.1:5683`.
impl std::fmt::Display for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Embedded::None => Ok(()),
            Embedded::Server { runner, secure } => {
                let scheme = if *secure { "coaps" } else { "coap" };
                write!(f, "embedded {scheme}://{}", runner.local_addr())
            }
            Embedded::Bootstrap(pair) => write!(f, "embedded {pair}"),
        }
    }
}

/// The embedded server, on a free loopback port, with the load asked for (or the demo's);
/// over DTLS, knowing every client's key, when the fleet has credentials.
fn start_server(
    plan: &Plan,
    load: &LoadArgs,
    credentials: Option<&Credentials>,
    limits: &LimitArgs,
) -> Result<Runner, Failure> {
    let (config, load) = load.embedded_config(plan);
    let config = limits.server(config);
    tracing::debug!(
        "embedded server caps: {} registrations, lifetime at most {} s, unresponsive after {} \
         timeouts, {} firmware campaigns",
        config.max_registrations,
        config.max_lifetime,
        config.unresponsive_after,
        config.campaigns.len()
    );
    let seed = plan.groups.first().map_or(0, |g| g.seed);
    let dtls = match credentials {
        // The server learns keys by identity: the fleet's, all computed now.
        Some(Credentials::Psk(c)) => Some(DtlsServerConfig::new(ServerKeys::from_map(
            c.server_keys(plan.clients),
        ))),
        Some(Credentials::Certificate(c)) => Some(certificate_config(c)?),
        None => None,
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let runner = Runner::start_with(loopback, config, seed, dtls.as_ref())
        .map_err(|e| failed(format!("cannot start the embedded server: {e}")))?;
    let over = match credentials {
        Some(Credentials::Psk(_)) => format!(" over DTLS (PSK, {} identities)", plan.clients),
        Some(Credentials::Certificate(_)) => {
            " over DTLS (certificates issued by the fleet's CA)".to_string()
        }
        None => String::new(),
    };
    say!(
        "embedded LWM2M server on {}{over} ({})",
        runner.local_addr(),
        load.describe()
    );
    Ok(runner)
}

/// The embedded server over DTLS with certificates: its own issued by the fleet's CA (for
/// `localhost` and 127.0.0.1, which clients check it against), clients' checked against the CA.
fn certificate_config(credentials: &CertificateCredentials) -> Result<DtlsServerConfig, Failure> {
    let devices = credentials.devices();
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let certificate = devices
        .issue_server(&names)
        .map_err(|e| bad_input(format!("the embedded server: {e}")))?;
    let clients = devices
        .client_verifier()
        .map_err(|e| bad_input(format!("the embedded server: {e}")))?;
    Ok(DtlsServerConfig::with_auth(ServerAuth::Certificate {
        certificate,
        clients: Arc::new(clients),
        unix_origin: unix_now(),
    }))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
