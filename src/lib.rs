//! lwm2m-swarm: simulate fleets of LWM2M devices against a real server.
//!
//! The modules, lowest first; each uses only modules above it in this list (checked by
//! `tests/module_graph.rs`):
//!
//! - [`clock`]: the time source, real or simulated.
//! - [`plain`]: words for users: the name they probably meant, Rust's type names in words.
//! - [`toml_span`]: TOML values with their line and column, for errors that point at the input.
//! - [`coap`]: CoAP messages, reliability (CON/ACK, deduplication), blocks, observe, CoAP over
//!   TCP framing, and the server URI users write (`coap::uri`).
//! - [`model`]: object definitions (templates, OMA DDF), device templates with value
//!   generators, the per-device object tree, and the [`model::Schema`] codecs look types up in.
//! - [`content`]: payload formats: TLV, `SenML` JSON and CBOR, OMA JSON, text, link format.
//! - [`security`]: credentials, DTLS 1.2 sessions, TLS over TCP, X.509.
//! - [`transport`]: sockets: shared UDP sockets for many source addresses (IPv4 and IPv6),
//!   one socket per client, TCP connections; the address plan; an emulated link's decisions
//!   (loss, delay, rebinding).
//! - [`client`]: one simulated LWM2M client, sans-IO: bootstrap, registration, device
//!   management, observations, over UDP, DTLS, TCP or TLS; the events it reports.
//! - [`trace`]: `--trace`: the datagrams of chosen clients as a pcap file or a readable message
//!   log, written by a thread of its own.
//! - [`server`]: the embedded LWM2M server and bootstrap server.
//! - [`fuzzing`]: the fuzz targets' bodies, shared by `fuzz/` and the corpus replay test.
//! - [`metrics`]: counts and latency histograms of client events, and their snapshots.
//! - [`report`]: the text summary, JSON results, interval logs, plots, thresholds, Prometheus,
//!   and merging the results of a test's shards.
//! - [`fleet`]: fleet files made into a plan (populations, ramp, behaviours, credentials, the
//!   emulated network, the slice a `--shard` runs).
//! - [`engine`]: runs a plan's clients on sharded event loops over transports.
//! - [`tui`]: the live dashboard.
//! - [`cli`]: the commands (`run`, `serve`, `check`, `credentials`, `report`, `capacity`).
//!
//! The protocol layers (`coap`, `content`, `model`, `security`, `client`) are sans-IO: they take bytes and a clock reading and return bytes and deadlines, so they run the
//! same under a simulated clock.

pub mod cli;
pub mod client;
pub mod clock;
pub mod coap;
pub mod content;
pub mod engine;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod model;
pub mod plain;
pub mod report;
pub mod security;
pub mod server;
pub mod toml_span;
pub mod trace;
pub mod transport;
pub mod tui;

/// This build: the crate's version, the commit and the cargo features (see build.rs), for
/// `--version` and the reports' `tool_version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LWM2M_SWARM_COMMIT"),
    ", features: ",
    env!("LWM2M_SWARM_FEATURES"),
    ")"
);
