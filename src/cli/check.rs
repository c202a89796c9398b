//! `check`: the fleet's expanded plan, its security, the engine's layout, the thresholds, the
//! embedded server's load and the traffic at full fleet; refuses or warns as `run` would
//! (`preflight`). Sends nothing.

use clap::Args;

use super::args::{EngineArgs, FleetArgs, LoadArgs, TimingArgs};
use super::preflight::{preflight, rates};
use super::setup::{
    EMBEDDED_SERVER, describe_layout, engine_config, host_reach, load, resolve, tls_config,
};
use super::{Failure, bad_input};
use crate::report::Threshold;

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The embedded server's load, as `run` takes it: checked and shown with its rates.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Check the plan against this open-files limit instead of this process's: for planning
    /// another host, such as a pod whose container runtime allows more (e.g. 1048576).
    #[arg(long, value_name = "N", value_parser = super::parse::parse_count,
          help_heading = "Engine")]
    pub open_files: Option<u64>,
    /// A pass/fail criterion as `run` takes it, added to the fleet's: refused when the run
    /// could never measure it.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = clap::value_parser!(Threshold))]
    pub thresholds: Vec<Threshold>,
}

pub(super) fn check(args: &CheckArgs) -> Result<(), Failure> {
    let loaded = load(&args.fleet, &args.timing)?;
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
    let thresholds: Vec<&Threshold> = (loaded.fleet.load.thresholds.iter())
        .chain(&args.thresholds)
        .collect();
    let texts: Vec<&str> = thresholds.iter().map(|t| t.text.as_str()).collect();
    if texts.is_empty() {
        println!("  thresholds none");
    } else {
        println!("  thresholds {}", texts.join(", "));
    }
    let embedded = plan.server.is_none().then(|| args.load.or_demo());
    if let Some(load) = &embedded {
        println!("  embedded  {}", load.describe());
    }
    println!("  traffic   at full fleet ({} clients):", plan.clients);
    for line in rates(&plan, embedded.as_ref()) {
        println!("              {line}");
    }
    let findings = preflight(&plan, thresholds, &args.load);
    let server = match &plan.server {
        Some(uri) => match resolve(uri) {
            Ok(addr) => Some(addr),
            // A name may resolve only where the run happens (a cluster's service name, a VPN):
            // `run` refuses it there, `check` elsewhere says so and checks the rest.
            Err(e) => {
                eprintln!(
                    "warning: {} (`run` on this host would refuse it; the address plan is not \
                     checked)",
                    e.message
                );
                None
            }
        },
        None => Some(EMBEDDED_SERVER),
    };
    findings.apply()?;
    let Some(server) = server else {
        return Ok(());
    };
    let mut config = engine_config(server, &args.engine, plan.server.as_ref());
    // Reads the PEM files: a bad one is found before the run.
    config.tls = tls_config(&loaded.fleet, plan.server.as_ref())?;
    let reach = host_reach(&plan, &config, args.open_files)?;
    println!("  host      {}", reach.describe_host());
    println!("  files     {}", reach.describe_files());
    reach.check().map_err(bad_input)?;
    let layout = crate::engine::plan_layout(&plan, &config).map_err(bad_input)?;
    println!("  layout    {}", describe_layout(&layout, &config));
    Ok(())
}
