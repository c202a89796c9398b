//! lwm2m-swarm: simulate fleets of LWM2M devices against a real server.
//!
//! The protocol layers (`coap`, `content`, `model`, `client`) are sans-IO: they take bytes and a
//! clock reading and return bytes and deadlines, so they run the same under a simulated clock.

pub mod cli;
pub mod client;
pub mod clock;
pub mod coap;
pub mod content;
pub mod engine;
pub mod fleet;
pub mod metrics;
pub mod model;
pub mod report;
pub mod security;
pub mod server;
pub mod toml_span;
pub mod transport;
pub mod tui;
