//! The servers `run` starts itself when the fleet names none.

use std::net::SocketAddr;

use super::{Failure, LoadArgs, bootstrap, start_embedded};
use crate::fleet::{Credentials, Plan};
use crate::server::Runner;

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
        let runner = start_embedded(plan, load, credentials)?;
        let secure = credentials.is_some();
        Ok((runner.local_addr(), Embedded::Server { runner, secure }))
    }

    /// Stops them, printing their last counts.
    pub(super) fn stop(self) {
        match self {
            Embedded::None => {}
            Embedded::Server { runner, .. } => match runner.stop() {
                Ok(stats) => println!("embedded server: {stats}"),
                Err(e) => eprintln!("embedded server: {e}"),
            },
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
