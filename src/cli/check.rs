//! `check`: the fleet's expanded plan, its security and the engine's layout; sends nothing.

use clap::Args;

use super::args::{EngineArgs, FleetArgs};
use super::setup::{
    EMBEDDED_SERVER, describe_layout, engine_config, host_reach, load, resolve, tls_config,
};
use super::{Failure, bad_input};

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Check the plan against this open-files limit instead of this process's: for planning
    /// another host, such as a pod whose container runtime allows more (e.g. 1048576).
    #[arg(long, value_name = "N", value_parser = super::parse::parse_count)]
    pub open_files: Option<u64>,
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
        None => EMBEDDED_SERVER,
    };
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    // Reads the PEM files: a bad one is found before the run.
    config.tls = tls_config(&loaded.fleet, plan.server.as_ref())?;
    let reach = host_reach(&plan, &config, args.open_files)?;
    println!("  host      {}", reach.describe_host());
    println!("  files     {}", reach.describe_files());
    reach.check().map_err(bad_input)?;
    let layout = crate::engine::plan_layout(&plan, &config).map_err(bad_input)?;
    println!("  {}", describe_layout(&layout, &config));
    Ok(())
}
