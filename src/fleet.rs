//! Fleet files (`fleets/*.toml`): which devices to simulate, against which server, and how fast
//! to start them. Parsing is pure (`Fleet::from_toml`) and strict; `Fleet::plan` expands a fleet
//! into a printable, testable start schedule without materialising one entry per client.

mod bootstrap;
mod build;
mod campaign;
mod credentials;
mod device;
mod duration;
mod firmware;
mod network;
mod plan;
mod raw;
mod security;
mod send;
mod slice;
mod span;
#[cfg(test)]
mod tests;
mod tls;

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientBootstrapConfig, ClientConfig};
use crate::model::{DeviceTemplate, Path, TemplateSet};
use crate::report::Threshold;
use crate::toml_span::Located;

pub use crate::transport::impairment::NetworkConditions;

pub use crate::coap::uri::{Scheme, ServerUri, parse_uri};
pub use campaign::parse_size;
pub use credentials::{CertificateCredentials, Credentials, ExportFormat, PskCredentials};
pub use duration::{DurationError, format_duration, parse_duration};
pub use plan::{EmptySlice, GroupPlan, Plan, PlannedClient, StageShare};
pub use security::{
    CertificateSecurity, DeviceCertSource, IdentityPattern, KeySource, Master, PskSecurity, Secret,
    Security, ServerCheck,
};
pub use slice::{Slice, SliceError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    #[error(transparent)]
    Invalid(#[from] Located),
    #[error("{file}: cannot read: {}", crate::plain::io_error(source))]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// Endpoint names: `prefix` + the client number (`start` + index) zero-padded to `width`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    pub prefix: String,
    pub width: usize,
    pub start: u64,
}

impl Naming {
    /// The endpoint name of client `index` (0-based).
    pub fn endpoint(&self, index: u64) -> String {
        let number = self.start.saturating_add(index);
        format!("{}{number:0width$}", self.prefix, width = self.width)
    }
}

/// What a population's devices do over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Registered and reachable the whole run.
    AlwaysOn,
    /// Queue mode: asleep outside the awake window.
    Sleepy,
    /// Reboots every `every` ± `jitter`: de-registers, stays offline, registers again.
    Churn { every: Duration, jitter: Duration },
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::AlwaysOn => f.write_str("always-on"),
            Behaviour::Sleepy => f.write_str("sleepy"),
            Behaviour::Churn { every, jitter } => write!(
                f,
                "churn every {}±{}",
                format_duration(*every),
                format_duration(*jitter)
            ),
        }
    }
}

/// A population override of one resource: a constant or a generator, as in template files.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueOverride {
    pub path: Path,
    pub value: Option<toml::Value>,
    pub generator: Option<toml::Value>,
    line: usize,
}

/// A population: `count` devices of one template with one behaviour and one client config.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    /// Resolved from `count` or `share`.
    pub count: u64,
    pub template: String,
    pub behaviour: Behaviour,
    pub config: Arc<ClientConfig>,
    pub seed: u64,
    /// `[network]` with the population's `network = { ... }` fields over it.
    pub network: NetworkConditions,
    pub values: Vec<ValueOverride>,
    /// Where `template` is written, for errors about the template.
    template_line: usize,
    /// Where `send` is written, for errors about its paths.
    send_line: usize,
}

/// How clients are started.
#[derive(Clone, Debug, PartialEq)]
pub enum Ramp {
    /// Clients started per second.
    Rate(f64),
    /// Piecewise linear: reach `target` started clients over `over`, one stage after another.
    Stages(Vec<Stage>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub target: u64,
    pub over: Duration,
}

/// Ramp, then hold, then stop (de-register within `stop_timeout`).
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub ramp: Ramp,
    pub hold: Duration,
    pub stop_timeout: Duration,
    /// Set on the command line: stop this long after the first start, whatever the ramp and
    /// hold say (clients not started by then never start).
    pub duration: Option<Duration>,
    /// Pass/fail criteria checked at the end of the run.
    pub thresholds: Vec<Threshold>,
}

/// Values given on the command line, which replace the fleet file's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub server: Option<ServerUri>,
    /// Total clients; a staged ramp keeps its shape, scaled to this total.
    pub clients: Option<u64>,
    /// Clients started per second, replacing the file's rate or stages.
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    /// Replaces the fleet's seed and every population's own seed.
    pub seed: Option<u64>,
    /// Replaces `[security] identity` (and a key file's identities).
    pub psk_identity: Option<IdentityPattern>,
    /// Replaces `[security]`'s key source with this one key.
    pub psk_key: Option<Secret>,
}

/// A checked fleet file.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    pub file: String,
    /// `None`: run against the embedded server.
    pub server: Option<ServerUri>,
    /// `None`: no security (`NoSec`, plain CoAP).
    pub security: Option<Security>,
    /// `[bootstrap]`: clients start with a Bootstrap-Request, and `server` (or the embedded
    /// one) is a bootstrap server. Every population's client config carries it too.
    pub bootstrap: Option<ClientBootstrapConfig>,
    /// `[tls]`, for a `coaps+tcp://` server.
    pub tls: Option<crate::security::tls::TlsSettings>,
    pub clients: u64,
    pub naming: Naming,
    pub groups: Vec<Group>,
    pub load: Load,
    /// `[[campaign]]`: firmware campaigns of the embedded server.
    pub campaigns: Vec<crate::server::CampaignConfig>,
}

impl Fleet {
    /// Parses and checks a fleet file; `file` (usually its path) is named in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Fleet, FleetError> {
        build::fleet(text, file, &Overrides::default())
    }

    /// Parses a fleet file with command-line values replacing the file's.
    pub fn from_toml_with(
        text: &str,
        file: &str,
        overrides: &Overrides,
    ) -> Result<Fleet, FleetError> {
        build::fleet(text, file, overrides)
    }

    /// Reads and parses a fleet file.
    pub fn load(path: &FsPath) -> Result<Fleet, FleetError> {
        Fleet::load_with(path, &Overrides::default())
    }

    /// Reads and parses a fleet file with command-line values replacing the file's.
    pub fn load_with(path: &FsPath, overrides: &Overrides) -> Result<Fleet, FleetError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Io {
            file: file.clone(),
            source,
        })?;
        Fleet::from_toml_with(&text, &file, overrides)
    }

    /// Checks what needs more than the file: templates exist and have the overridden
    /// resources. (coaps:// with `[security]` passes: whether the engine can run it is the
    /// engine's business.) Returns each group's device template with its
    /// value overrides applied, in group order.
    pub fn check(&self, templates: &TemplateSet) -> Result<Vec<Arc<DeviceTemplate>>, FleetError> {
        self.groups
            .iter()
            .map(|g| device::device(&self.file, g, templates))
            .collect()
    }

    /// `[tls]` in one line, for `check`.
    pub fn describe_tls(&self) -> Option<String> {
        self.tls.as_ref().map(tls::describe)
    }

    /// The start schedule and per-client settings.
    pub fn plan(&self) -> Plan {
        Plan::new(self)
    }
}
