//! `check`: the fleet's expanded plan, its security and the engine's layout; sends nothing.

use std::net::SocketAddr;

use clap::Args;

use super::args::{EngineArgs, FleetArgs};
use super::setup::{describe_layout, engine_config, load, resolve, tls_config};
use super::{Failure, bad_input, failed};
use crate::engine::TransportKind;

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub(super) fn check(args: &CheckArgs) -> Result<(), Failure> {
    let loaded = load(&args.fleet)?;
    let plan = loaded
        .fleet
        .plan()
        .with_slice(args.fleet.shard)
        .map_err(bad_input)?;
    print!("{plan}");
    match &loaded.fleet.security {
        Some(security) => println!("  security  {security}"),
        None => println!("  security  none (NoSec)"),
    }
    if let Some(tls) = loaded.fleet.describe_tls() {
        println!("  tls       {tls}");
    }
    let server = match &plan.server {
        Some(uri) => match resolve(uri) {
            Ok(addr) => addr,
            Err(e) => {
                println!("  note      {}", e.message);
                return Ok(());
            }
        },
        None => SocketAddr::from(([127, 0, 0, 1], 5683)),
    };
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    // Reads the PEM files: a bad one is found before the run.
    config.tls = tls_config(&loaded.fleet, plan.server.as_ref())?;
    let layout = crate::engine::plan_layout(&plan, &config).map_err(bad_input)?;
    println!("  {}", describe_layout(&layout, &config));
    if config.transport == TransportKind::Tcp {
        println!("  {}", describe_connection_budget(plan.slice_clients())?);
    }
    Ok(())
}

/// TCP: one open file per client. Fails when the limit cannot be raised far enough.
fn describe_connection_budget(clients: u64) -> Result<String, Failure> {
    let limit = crate::transport::FdLimit::current().map_err(failed)?;
    crate::transport::check_connection_budget(clients, limit).map_err(bad_input)?;
    Ok(format!(
        "files     {clients} TCP connections (+{} spare) within the open-files limit \
         (soft {}, hard {}; the soft limit is raised as needed)",
        crate::transport::per_client::FD_RESERVE,
        limit.soft,
        limit.hard
    ))
}
