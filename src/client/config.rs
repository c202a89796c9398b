use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::coap;
use crate::content::ContentFormat;

/// The LWM2M enabler version a client announces with `lwm2m=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LwM2mVersion {
    V1_0,
    V1_1,
    V1_2,
}

impl LwM2mVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            LwM2mVersion::V1_0 => "1.0",
            LwM2mVersion::V1_1 => "1.1",
            LwM2mVersion::V1_2 => "1.2",
        }
    }
}

/// The 1.1 registration procedure (Server object resources 17-20): how failed Registers retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in one sequence (`/1/x/17`, default 5).
    pub retry_count: u32,
    /// Wait after the first failed attempt, doubled after each further one (`/1/x/18`, 60 s).
    pub retry_timer: Duration,
    /// Wait between sequences (`/1/x/19`, 86400 s).
    pub sequence_delay: Duration,
    /// Sequences before the client gives up (`/1/x/20`, 1).
    pub sequence_retry_count: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retry_count: 5,
            retry_timer: Duration::from_secs(60),
            sequence_delay: Duration::from_secs(86_400),
            sequence_retry_count: 1,
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `failures`-th failed attempt in a row (1-based), or `None`
    /// when the procedure has failed for good.
    pub fn delay_after(&self, failures: u32) -> Option<Duration> {
        let per_sequence = self.retry_count.max(1);
        let sequence = (failures - 1) / per_sequence;
        let attempt_in_sequence = (failures - 1) % per_sequence;
        if sequence >= self.sequence_retry_count.max(1) {
            return None;
        }
        if attempt_in_sequence + 1 < per_sequence {
            let factor = 1u32.checked_shl(attempt_in_sequence).unwrap_or(u32::MAX);
            return Some(self.retry_timer.saturating_mul(factor));
        }
        (sequence + 1 < self.sequence_retry_count.max(1)).then_some(self.sequence_delay)
    }
}

/// Which sources a plain-CoAP client takes server requests from; the rest are dropped
/// unanswered. Over DTLS only the session's peer can be heard, over TCP or TLS only the
/// connection's, whatever the setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcceptRequests {
    /// The server's address and port only.
    Server,
    /// The server's address, any port: some servers (lwm2m-node-lib) send requests from an
    /// ephemeral port.
    #[default]
    ServerHost,
    /// Anyone.
    Any,
}

impl AcceptRequests {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptRequests::Server => "server",
            AcceptRequests::ServerHost => "server-host",
            AcceptRequests::Any => "any",
        }
    }

    /// Whether a request from `from` is taken from a client whose server is `server`.
    pub fn admits(self, from: SocketAddr, server: SocketAddr) -> bool {
        match self {
            AcceptRequests::Server => from == server,
            AcceptRequests::ServerHost => from.ip() == server.ip(),
            AcceptRequests::Any => true,
        }
    }
}

/// Client-initiated bootstrap: the client's first server is a bootstrap server.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientBootstrapConfig {
    /// How long after the Bootstrap-Request's 2.04 the Bootstrap-Finish may take before the
    /// bootstrap counts as failed (Leshan's server gives up after 93 s).
    pub finish_timeout: Duration,
    /// Sent as `pct=` with the Bootstrap-Request (LWM2M 1.1 and later): the format the
    /// client prefers for the bootstrap server's writes.
    pub preferred_format: Option<ContentFormat>,
}

impl Default for ClientBootstrapConfig {
    fn default() -> Self {
        ClientBootstrapConfig {
            finish_timeout: Duration::from_secs(93),
            preferred_format: None,
        }
    }
}

/// Settings shared by every client of a population (held in an `Arc`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// The LWM2M server the client registers with: Register, Update and De-register go here
    /// (answers and notifications go to wherever the server's request came from). With
    /// `bootstrap`, the bootstrap server: the LWM2M server then comes from the Security
    /// instance it writes.
    pub server: SocketAddr,
    /// Start with a Bootstrap-Request to `server` instead of a Register.
    pub bootstrap: Option<ClientBootstrapConfig>,
    pub version: LwM2mVersion,
    /// Registration lifetime (`lt=`).
    pub lifetime: Duration,
    /// Binding announced with `b=` (`U`; the 1.0 queue-mode form `UQ` is derived).
    pub binding: String,
    /// Queue mode: sleep after `awake_window` without exchanges.
    pub queue_mode: bool,
    pub awake_window: Duration,
    /// Send the Update at this fraction of the lifetime after the last registration refresh...
    pub update_fraction: f64,
    /// ...give or take this fraction of the lifetime, drawn per Update.
    pub update_jitter: f64,
    /// Share of notifications sent as CON (0 = all NON, 1 = all CON).
    pub confirmable_notifications: f64,
    /// How often a pending observation re-samples its value while inside pmin..pmax.
    pub notify_check_interval: Duration,
    /// Time offline after an Execute on Reboot (`/3/0/4`) before registering again.
    pub reboot_time: Duration,
    /// Format of Read and Observe answers when the server sends no Accept, for more than one value.
    pub preferred_format: ContentFormat,
    pub retry: RetryPolicy,
    pub coap: coap::Params,
    /// DTLS handshake pacing (clients given a PSK only).
    pub dtls: crate::security::dtls::DtlsParams,
    /// CoAP over TCP or TLS (RFC 8323); `None`: over UDP.
    pub stream: Option<super::StreamConfig>,
    /// Whose requests a plain-CoAP client acts on (during bootstrap, the bootstrap server is
    /// the server).
    pub accept_requests: AcceptRequests,
    /// Largest Write body assembled from Block1 blocks; a larger one is refused with 4.13.
    pub block1_max_body: usize,
    /// A Block1 transfer with no block for this long is dropped and its memory freed.
    pub block1_idle_timeout: Duration,
    /// Observations one client keeps; an Observe past it is answered 5.03.
    pub max_observations: usize,
    /// Send (`POST /dp`) the values of some paths periodically; LWM2M 1.1 and later.
    pub send: Option<super::SendConfig>,
    /// Firmware Update (object 5): update time, package limit, download rate, failures.
    pub firmware: super::FirmwareConfig,
}

/// 64 blocks of 1024 bytes: far more than any object instance a template writes, a fraction of
/// the 1 GiB RFC 7959 allows, so a hundred thousand clients cannot be made to hold gigabytes.
pub const DEFAULT_BLOCK1_MAX_BODY: usize = 64 * 1024;

/// `MAX_TRANSMIT_WAIT` (RFC 7252 4.8.2): a server that has not sent the next block by then has
/// given up on the one before.
pub const DEFAULT_BLOCK1_IDLE_TIMEOUT: Duration = Duration::from_secs(93);

/// Servers observe a handful of resources per device; 64 leaves room for the largest test
/// plans while bounding a client at about 64 small records.
pub const DEFAULT_MAX_OBSERVATIONS: usize = 64;

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, 5683)),
            bootstrap: None,
            version: LwM2mVersion::V1_1,
            lifetime: Duration::from_secs(300),
            binding: "U".to_string(),
            queue_mode: false,
            awake_window: Duration::from_secs(93),
            update_fraction: 0.8,
            update_jitter: 0.05,
            confirmable_notifications: 0.0,
            notify_check_interval: Duration::from_secs(1),
            reboot_time: Duration::from_secs(10),
            preferred_format: ContentFormat::SenmlCbor,
            retry: RetryPolicy::default(),
            coap: coap::Params::default(),
            dtls: crate::security::dtls::DtlsParams::default(),
            stream: None,
            accept_requests: AcceptRequests::default(),
            block1_max_body: DEFAULT_BLOCK1_MAX_BODY,
            block1_idle_timeout: DEFAULT_BLOCK1_IDLE_TIMEOUT,
            max_observations: DEFAULT_MAX_OBSERVATIONS,
            send: None,
            firmware: super::FirmwareConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_follows_the_registration_procedure() {
        let policy = RetryPolicy {
            retry_count: 3,
            retry_timer: Duration::from_secs(60),
            sequence_delay: Duration::from_secs(1000),
            sequence_retry_count: 2,
        };
        let delays: Vec<_> = (1..=7).map(|n| policy.delay_after(n)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            delays,
            vec![
                secs(60),
                secs(120),
                secs(1000),
                secs(60),
                secs(120),
                None,
                None
            ]
        );
    }

    #[test]
    fn default_retry_policy_gives_up_after_one_sequence() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_after(4), Some(Duration::from_secs(480)));
        assert_eq!(policy.delay_after(5), None);
    }
}
