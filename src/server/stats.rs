//! Plain counters: copied out whole (a snapshot is one `memcpy`), never locked per datagram.

use std::fmt;
use std::time::Duration;

/// How the requests of one kind the server sent to clients ended.
/// Invariant: `sent = ok + client_error + server_error + timeout + reset + aborted + in flight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationStats {
    pub sent: u64,
    /// Answered 2.xx.
    pub ok: u64,
    /// Answered 4.xx.
    pub client_error: u64,
    /// Answered 5.xx (or any other class).
    pub server_error: u64,
    /// No answer after the last retransmission (or no separate response in time).
    pub timeout: u64,
    /// The client answered RST.
    pub reset: u64,
    /// The registration ended while the request was in flight.
    pub aborted: u64,
    /// Came due while the previous one of this kind still waited to be sent: not sent twice.
    pub skipped: u64,
}

impl OperationStats {
    pub(super) fn answered(&mut self, code: u8) {
        match code >> 5 {
            2 => self.ok += 1,
            4 => self.client_error += 1,
            _ => self.server_error += 1,
        }
    }
}

/// Queue-mode delivery: requests that came due while a client slept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Requests held because the client was asleep when they came due.
    pub held: u64,
    /// Held requests sent after the client's Update.
    pub delivered: u64,
    /// Held requests dropped because the registration ended.
    pub discarded: u64,
    /// Sum and maximum of the time from the Update to the delivery (µs).
    pub delay_total_us: u64,
    pub delay_max_us: u64,
}

impl QueueStats {
    pub(super) fn record_delivery(&mut self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delivered += 1;
        self.delay_total_us = self.delay_total_us.saturating_add(micros);
        self.delay_max_us = self.delay_max_us.max(micros);
    }
}

/// What the server refused, or held back, to protect itself and others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Registers of a new endpoint refused 5.03: the server held `max_registrations`.
    pub registrations_full: u64,
    /// Registers and Updates refused 4.00: a lifetime over `max_lifetime`.
    pub lifetime_too_long: u64,
    /// Registrations that stopped drawing load: `unresponsive_after` timeouts in a row.
    pub unresponsive: u64,
    /// Periodic requests not sent to such a registration.
    pub withheld: u64,
}

/// Everything the server counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    /// Registrations alive now.
    pub registered: u64,
    /// Register requests accepted (including re-Registers).
    pub registers: u64,
    /// Re-Registers of a known endpoint: the old registration was replaced.
    pub replaced: u64,
    pub updates: u64,
    pub deregisters: u64,
    /// Registrations removed because their lifetime ran out.
    pub expired: u64,
    /// Update or De-register for an unknown registration (answered 4.04).
    pub not_found: u64,
    /// Requests answered with another 4.xx (no `ep`, bad `lt`, unknown path or method...).
    pub bad_requests: u64,
    /// Retransmitted requests (same peer and message ID) answered from the cache.
    pub duplicates: u64,
    /// Datagrams that are not CoAP (answered RST when a CON header could be read).
    pub malformed: u64,
    /// Empty CONs, answered RST.
    pub pings: u64,
    /// ACKs and RSTs that matched no request of ours.
    pub unmatched: u64,
    pub retransmissions: u64,
    pub read: OperationStats,
    pub write_attributes: OperationStats,
    pub observe: OperationStats,
    pub write: OperationStats,
    pub execute: OperationStats,
    pub discover: OperationStats,
    /// LWM2M 1.1 FETCH (with Observe 0) and iPATCH to the root.
    pub read_composite: OperationStats,
    pub observe_composite: OperationStats,
    pub write_composite: OperationStats,
    /// Notifications for an observation of ours (composite ones included).
    pub notifications: u64,
    /// Notifications with a token we do not know (answered RST).
    pub notifications_rejected: u64,
    /// Sends (`POST /dp`) decoded and answered 2.04, and the values they carried.
    pub sends: u64,
    pub send_values: u64,
    pub queue: QueueStats,
    pub limits: LimitStats,
    /// What the socket loop around the server counted (zero for the sans-IO server alone).
    pub io: IoStats,
    /// What the DTLS layer in front counted (zero over plain CoAP).
    pub dtls: DtlsStats,
    /// A bootstrap server's sequences (zero for the LWM2M server).
    pub bootstrap: super::BootstrapServerStats,
    /// Firmware campaigns and the images served.
    pub campaign: super::CampaignStats,
}

/// The DTLS layer of [`super::SecureServer`]. Invariant: every session opened ends once, as a
/// failed handshake, or after its handshake as closed, expired or lost (replaced by a new
/// handshake from its address included); the rest are open. A session opens when its
/// `ClientHello` came back with a valid cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtlsStats {
    /// Sessions opened by a peer's `ClientHello` with a valid cookie.
    pub sessions_opened: u64,
    /// Sessions open now.
    pub sessions: u64,
    pub handshakes_ok: u64,
    /// Handshakes that ended without a session: timed out (a wrong key shows as this: the
    /// client's Finished does not decrypt), an alert, a protocol error.
    pub handshakes_failed: u64,
    /// Sessions the peer closed (`close_notify`).
    pub closed: u64,
    /// Sessions dropped after a quiet idle timeout.
    pub expired: u64,
    /// Sessions ended by an alert or error after their handshake.
    pub lost: u64,
    /// Datagrams from a peer without a session that were no `ClientHello`: dropped.
    pub no_session: u64,
    /// Datagrams the server had for a peer without an open session: dropped.
    pub unsent: u64,
    /// `ClientHello`s with a valid cookie refused: `max_sessions` were open.
    pub sessions_full: u64,
    /// Cookies asked for: `HelloVerifyRequest`s sent.
    pub hello_verify_requests: u64,
    /// Handshakes dropped before their cookie came back: timed out, pushed out by newer ones,
    /// or refused by dimpl. No session was opened for them.
    pub unverified_dropped: u64,
}

/// Datagrams the UDP loop could not pass on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Longer than the receive buffer: dropped unread.
    pub truncated: u64,
    /// Dropped because the send queue stayed full.
    pub send_dropped: u64,
    /// Refused by the kernel (no route, an address of the other family...): dropped.
    pub send_errors: u64,
}

impl fmt::Display for ServerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.bootstrap;
        if b.accepted + b.rejected > 0 {
            write!(
                f,
                "bootstrap requests {} (rejected {}), finished {}, failed {}, in progress {}, \
                 writes {}/{} ok",
                b.accepted,
                b.rejected,
                b.finished,
                b.failed,
                b.in_progress,
                b.write.ok,
                b.write.sent
            )?;
            if self.registers == 0 {
                return self.fmt_tail(f);
            }
            f.write_str("; ")?;
        }
        write!(
            f,
            "registered {}, registers {}, updates {}, deregisters {}, expired {}",
            self.registered, self.registers, self.updates, self.deregisters, self.expired
        )?;
        for (name, op) in [
            ("reads", &self.read),
            ("observes", &self.observe),
            ("writes", &self.write),
            ("executes", &self.execute),
            ("discovers", &self.discover),
            ("read-composites", &self.read_composite),
            ("observe-composites", &self.observe_composite),
            ("write-composites", &self.write_composite),
        ] {
            if op.sent > 0 {
                write!(f, ", {name} {}/{} ok", op.ok, op.sent)?;
                if op.timeout > 0 {
                    write!(f, " ({} timed out)", op.timeout)?;
                }
            }
        }
        if self.notifications > 0 {
            write!(f, ", notifications {}", self.notifications)?;
        }
        if self.sends > 0 {
            write!(f, ", sends {} ({} values)", self.sends, self.send_values)?;
        }
        if self.queue.held > 0 {
            write!(
                f,
                ", held {} delivered {}",
                self.queue.held, self.queue.delivered
            )?;
        }
        if self.campaign.targeted > 0 {
            write!(f, ", {}", self.campaign)?;
        }
        self.fmt_tail(f)
    }
}

impl ServerStats {
    /// Errors, duplicates, and what the DTLS layer and the socket loop counted.
    fn fmt_tail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ", errors {} malformed {} duplicates {}",
            self.bad_requests + self.not_found,
            self.malformed,
            self.duplicates
        )?;
        if self.dtls != DtlsStats::default() {
            write!(
                f,
                ", handshakes ok {} failed {}, sessions {}",
                self.dtls.handshakes_ok, self.dtls.handshakes_failed, self.dtls.sessions
            )?;
            if self.dtls.unverified_dropped > 0 {
                write!(
                    f,
                    " (handshakes without their cookie {})",
                    self.dtls.unverified_dropped
                )?;
            }
        }
        let l = &self.limits;
        let refused = [
            ("registrations-full", l.registrations_full),
            ("lifetime-too-long", l.lifetime_too_long),
            ("sessions-full", self.dtls.sessions_full),
            ("bootstrap-full", self.bootstrap.full),
        ];
        if refused.iter().any(|(_, n)| *n > 0) {
            f.write_str(", refused")?;
            for (name, n) in refused.iter().filter(|(_, n)| *n > 0) {
                write!(f, " {name} {n}")?;
            }
        }
        if l.unresponsive > 0 {
            write!(
                f,
                ", unresponsive {} (withheld {})",
                l.unresponsive, l.withheld
            )?;
        }
        if self.io != IoStats::default() {
            write!(
                f,
                ", truncated {} send-dropped {} send-errors {}",
                self.io.truncated, self.io.send_dropped, self.io.send_errors
            )?;
        }
        Ok(())
    }
}
