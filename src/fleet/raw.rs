//! The fleet file as written: serde structures, strict (unknown fields are errors), with spans
//! so later checks can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub server: Option<Spanned<RawServer>>,
    pub client: Option<Spanned<RawClient>>,
    pub security: Option<Spanned<RawSecurity>>,
    pub bootstrap: Option<Spanned<RawBootstrap>>,
    pub tls: Option<Spanned<RawTls>>,
    pub network: Option<Spanned<RawNetwork>>,
    #[serde(default)]
    pub population: Vec<Spanned<RawPopulation>>,
    pub load: Spanned<RawLoad>,
    #[serde(default)]
    pub campaign: Vec<Spanned<RawCampaign>>,
}

/// `[[campaign]]`: a firmware campaign of the embedded server (checked in `campaign.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCampaign {
    pub share: Option<f64>,
    pub start: Option<String>,
    pub mode: Option<String>,
    pub max_concurrent: Option<u64>,
    pub image: Option<String>,
    pub size: Option<String>,
    pub version: Option<String>,
    pub timeout: Option<String>,
    pub block_size: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub uri: String,
}

/// `[bootstrap]`: its presence makes the server a bootstrap server (checked in `bootstrap.rs`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBootstrap {
    pub finish_timeout: Option<String>,
    pub content_format: Option<String>,
}

/// `[security]`: a mode; for PSK an identity pattern and one key source; for certificates the
/// device certificates' source and how the server's is checked (checked in `security.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    pub mode: String,
    pub identity: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub derive: Option<Spanned<RawDerive>>,
    pub cipher: Option<String>,
    pub ca_cert: Option<String>,
    pub ca_key: Option<String>,
    pub key_master: Option<String>,
    pub certificates: Option<String>,
    pub server_ca: Option<String>,
    pub server_name: Option<String>,
    pub server_pin: Option<String>,
    pub insecure_skip_server_verification: Option<bool>,
}

/// `[tls]`: PEM files for `coaps+tcp://` (checked in `tls.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub ca_file: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub certificate_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerive {
    /// Hex, or `env:VAR`.
    pub master: String,
    pub algorithm: Option<String>,
    pub key_length: Option<usize>,
}

/// Client settings: fleet defaults in `[client]`, overrides in `[population.client]`. Every
/// field is optional so an override names only what differs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub lwm2m: Option<String>,
    pub lifetime: Option<String>,
    pub binding: Option<String>,
    pub queue_mode: Option<bool>,
    pub awake_window: Option<String>,
    pub update_fraction: Option<f64>,
    pub update_jitter: Option<f64>,
    pub confirmable_notifications: Option<f64>,
    pub reboot_time: Option<String>,
    pub accept_requests: Option<String>,
    pub block1_max_size: Option<u64>,
    pub block1_idle_timeout: Option<String>,
    pub max_observations: Option<u64>,
    /// Object 5: checked in `firmware.rs`.
    pub firmware: Option<super::firmware::RawFirmware>,
    pub seed: Option<u64>,
    pub endpoint_prefix: Option<String>,
    pub width: Option<usize>,
    pub start: Option<u64>,
}

/// `[network]` and a population's `network = { ... }`: the emulated link (checked in
/// `network.rs`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub loss: Option<f64>,
    pub delay: Option<String>,
    pub jitter: Option<String>,
    pub duplicate: Option<f64>,
    pub reorder: Option<f64>,
    pub rebind_every: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawBehaviour {
    #[default]
    AlwaysOn,
    Sleepy,
    Churn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPopulation {
    pub name: String,
    pub count: Option<u64>,
    pub share: Option<f64>,
    pub template: String,
    #[serde(default)]
    pub behaviour: RawBehaviour,
    pub churn_every: Option<String>,
    pub churn_jitter: Option<String>,
    pub client: Option<Spanned<RawClient>>,
    pub network: Option<Spanned<RawNetwork>>,
    pub send: Option<Spanned<RawSend>>,
    /// Resource path (`/3303/0/5700`) -> value or generator.
    #[serde(default)]
    pub values: BTreeMap<String, Spanned<RawValue>>,
}

/// A population's `send = { ... }`: periodic Send (checked in `send.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSend {
    pub paths: Option<Vec<String>>,
    pub every: Option<String>,
    pub jitter: Option<String>,
    pub format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValue {
    pub value: Option<toml::Value>,
    pub generator: Option<toml::Value>,
}

fn default_stop_timeout() -> String {
    "30s".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub clients: Option<u64>,
    pub rate: Option<f64>,
    pub stages: Option<Vec<Spanned<RawStage>>>,
    pub hold: String,
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: String,
    /// Pass/fail criteria: `register.p99<500ms`.
    #[serde(default)]
    pub thresholds: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    pub target: u64,
    pub over: String,
}
