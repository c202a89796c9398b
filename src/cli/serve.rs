//! `serve`: the embedded LWM2M server alone, or behind the embedded bootstrap server.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::args::{LimitArgs, LoadArgs};
use super::bootstrap::BootstrapPair;
use super::campaign::CampaignArgs;
use super::parse::{HexArg, hex_arg, parse_positive_duration};
use super::progress::status_lines;
use super::{Failure, failed};
use crate::security::dtls::ServerKeys;
use crate::server::{DtlsServerConfig, Runner};

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    /// Address to serve on (default 127.0.0.1:5683, or 127.0.0.1:5684 with --psk-key).
    #[arg(long, help_heading = "Server")]
    pub bind: Option<SocketAddr>,
    /// Serve DTLS 1.2 with this pre-shared key (hex) for every PSK identity.
    #[arg(long, value_name = "HEX", value_parser = hex_arg, help_heading = "Security")]
    pub psk_key: Option<HexArg>,
    /// Also run a bootstrap server on ADDR (e.g. 127.0.0.1:5783) that sends clients to this
    /// server; with --psk-key, clients use that key with the bootstrap server and get a key of
    /// their own for this one.
    #[arg(long, value_name = "ADDR", help_heading = "Server")]
    pub bootstrap: Option<SocketAddr>,
    /// The lifetime the bootstrap server writes into the Server object.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_positive_duration, requires = "bootstrap",
          help_heading = "Server")]
    pub bootstrap_lifetime: Duration,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub campaign: CampaignArgs,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(short, long, value_parser = parse_positive_duration, help_heading = "Server")]
    pub duration: Option<Duration>,
    /// Seed for the server's message IDs, tokens and timer offsets (registration locations are
    /// random whatever the seed).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = super::parse::parse_whole,
          help_heading = "Server")]
    pub seed: u64,
    /// Time between status lines.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration,
          help_heading = "Output")]
    pub status_every: Duration,
}

pub(super) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let key = args
        .psk_key
        .as_ref()
        .map(HexArg::secret)
        .transpose()?
        .map(|key| ServerKeys::shared(key.expose().to_vec()));
    let port = if key.is_some() { 5684 } else { 5683 };
    let bind = args
        .bind
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    for addr in std::iter::once(bind).chain(args.bootstrap) {
        if !addr.ip().is_loopback() {
            tracing::info!(
                "serving on {addr}, reachable from other hosts; the default is loopback"
            );
        }
    }
    if let Some(bootstrap_bind) = args.bootstrap {
        let mut config = args.load.server_config();
        args.campaign.apply(&mut config)?;
        let (lifetime, seed) = (args.bootstrap_lifetime, args.seed);
        let pair = BootstrapPair::start(
            (bind, bootstrap_bind),
            config,
            lifetime,
            key,
            seed,
            &args.limits,
        )?;
        println!(
            "LWM2M server behind a bootstrap server: {pair}{} ({}); Ctrl-C stops them",
            if args.psk_key.is_some() {
                " over DTLS (PSK: one key for every identity at the bootstrap server, a key \
                 of their own at the LWM2M server)"
            } else {
                ""
            },
            args.load.describe()
        );
        status_lines(
            args.status_every,
            args.duration,
            || {
                format!(
                    "bootstrap server: {} | server: {}",
                    pair.bootstrap.stats(),
                    pair.server.stats()
                )
            },
            || !pair.bootstrap.has_died() && !pair.server.has_died(),
        );
        return pair.stop();
    }
    let dtls = key.map(|key| args.limits.dtls(DtlsServerConfig::new(key)));
    let mut config = args.limits.server(args.load.server_config());
    args.campaign.apply(&mut config)?;
    let runner = Runner::start_with(bind, config, args.seed, dtls.as_ref())
        .map_err(|e| failed(format!("cannot serve on {bind}: {e}")))?;
    let over = if dtls.is_some() {
        " over DTLS (PSK, one key for every identity)"
    } else {
        ""
    };
    let firmware = args
        .campaign
        .describe()
        .map(|d| format!("; {d}"))
        .unwrap_or_default();
    println!(
        "LWM2M server on {}{over} ({}{firmware}); Ctrl-C stops it",
        runner.local_addr(),
        args.load.describe()
    );
    status_lines(
        args.status_every,
        args.duration,
        || runner.stats().to_string(),
        || !runner.has_died(),
    );
    let (stats, error) = runner.finish();
    println!("{stats}");
    error.map_or(Ok(()), |e| Err(failed(format!("the server stopped: {e}"))))
}
