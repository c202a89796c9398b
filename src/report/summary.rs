//! The text forms of a [`Snapshot`]: the progress line and the end-of-run summary table.

use std::fmt::{self, Write as _};

use super::schema::code_name;
use crate::client::{
    CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS, operation_name, request_name, state_index,
    state_name,
};
use crate::metrics::{BootstrapStats, FirmwareStats, HandshakeStats, Snapshot};

impl Snapshot {
    /// A one-line account for logs: clients by state, request rates since `previous`, errors.
    pub fn progress_line(&self, previous: &Snapshot) -> String {
        let seconds = self
            .elapsed
            .saturating_sub(previous.elapsed)
            .as_secs_f64()
            .max(1e-3);
        let mut line = format!("[{:>6.1}s]", self.elapsed.as_secs_f64());
        for state in CLIENT_STATES {
            let n = self.state(state);
            if n > 0 {
                let _ = write!(line, " {} {n}", state_name(state));
            }
        }
        line.push_str(" |");
        for kind in self.kinds_used() {
            let now = self.request(kind);
            let before = previous.request(kind);
            let rate = (now.sent - before.sent) as f64 / seconds;
            let _ = write!(line, " {} {rate:.0}/s", request_name(kind));
        }
        let ops: u64 = self.operations.iter().map(|o| o.total).sum::<u64>()
            - previous.operations.iter().map(|o| o.total).sum::<u64>();
        let _ = write!(line, " server-ops {:.0}/s", ops as f64 / seconds);
        let failures =
            |s: &Snapshot| -> u64 { s.requests.iter().map(|r| r.error + r.timeout).sum() };
        let _ = write!(line, " | errors+timeouts {}", failures(self));
        if self.traffic.kernel_drops > 0 {
            let _ = write!(line, " kernel-drops {}", self.traffic.kernel_drops);
        }
        line
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The end-of-run table: one row per request kind, then server operations and traffic.
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_requests(f)?;
        self.fmt_operations(f)?;
        self.fmt_clients_and_traffic(f)
    }
}

impl Snapshot {
    fn fmt_requests(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<11} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "request",
            "sent",
            "ok",
            "error",
            "timeout",
            "aborted",
            "flight",
            "retrans",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        )?;
        for kind in self.kinds_used() {
            let r = self.request(kind);
            let h = &r.latency;
            let q = |x: f64| {
                if h.is_empty() {
                    0.0
                } else {
                    ms(h.value_at_quantile(x))
                }
            };
            writeln!(
                f,
                "{:<11} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                request_name(kind),
                r.sent,
                r.ok,
                r.error,
                r.timeout,
                r.aborted,
                r.in_flight(),
                r.retransmissions,
                q(0.5),
                q(0.9),
                q(0.99),
                q(0.999),
                ms(h.max()),
            )?;
        }
        for kind in REQUEST_KINDS {
            let r = self.request(kind);
            if let Some((due, sent)) = r.omission_gap() {
                writeln!(
                    f,
                    "{}: p99 {:.2} ms from when requests were due, {:.2} ms from when they were \
                     sent: requests waited before going out",
                    request_name(kind),
                    ms(due),
                    ms(sent)
                )?;
            }
        }
        let codes: Vec<String> = REQUEST_KINDS
            .iter()
            .flat_map(|k| {
                let r = self.request(*k);
                r.codes
                    .iter()
                    .filter(|(c, _)| c.is_none_or(|c| c >> 5 > 2))
                    .map(move |(c, n)| format!("{} {} x{n}", request_name(*k), code_name(*c)))
            })
            .collect();
        if !codes.is_empty() {
            writeln!(f, "error answers: {}", codes.join(", "))?;
        }
        Ok(())
    }

    fn fmt_operations(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = OPERATION_KINDS
            .iter()
            .filter_map(|k| {
                let o = self.operation(*k);
                (o.total > 0).then(|| {
                    let h = &o.handling;
                    format!(
                        "{} {} ({} errors; handled in p50 {} us, p99 {} us)",
                        operation_name(*k),
                        o.total,
                        o.error,
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99)
                    )
                })
            })
            .collect();
        if !ops.is_empty() {
            writeln!(f, "server operations: {}", ops.join(", "))?;
        }
        if self.woke > 0 {
            let h = &self.wake_to_request;
            writeln!(
                f,
                "queue mode: {} wake-ups; the server's first request came after {} of them, \
                 p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms after waking",
                self.woke,
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )?;
        }
        Ok(())
    }

    fn fmt_clients_and_traffic(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let states: Vec<String> = CLIENT_STATES
            .iter()
            .filter(|s| self.peak_states[state_index(**s)] > 0)
            .map(|s| format!("{} {}", state_name(*s), self.peak_states[state_index(*s)]))
            .collect();
        writeln!(f, "peak clients by state: {}", states.join(", "))?;
        if self.handshakes.total() > 0 || !self.handshakes.lost.is_empty() {
            writeln!(f, "{}", self.handshakes)?;
        }
        if self.bootstrap.total() > 0 {
            writeln!(f, "{}", self.bootstrap)?;
        }
        if self.firmware.any() {
            writeln!(f, "{}", self.firmware)?;
        }
        if self.connections.total() > 0 || !self.connections.lost.is_empty() {
            writeln!(f, "{}", self.connections.connections_line())?;
        }
        let t = &self.traffic;
        if !t.network.is_empty() {
            writeln!(f, "{}", t.network)?;
        }
        write!(
            f,
            "datagrams: out {} ({} B), in {} ({} B); unmatched {}, foreign {}, send errors {}, \
             kernel drops {}; clients dropped: asleep {}, offline {}, malformed {}, duplicate {}, \
             foreign requests {}, foreign replies {}",
            t.datagrams_out,
            t.bytes_out,
            t.datagrams_in,
            t.bytes_in,
            t.unmatched,
            t.foreign,
            t.send_errors,
            t.kernel_drops,
            t.asleep,
            t.offline,
            t.malformed,
            t.duplicate,
            t.foreign_requests,
            t.foreign_replies,
        )
    }
}

/// One summary line: `firmware: started 100, downloaded 98, updated 97, failed 3 (...); ...`.
impl fmt::Display for FirmwareStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "firmware: started {}, downloaded {}, updated {}, failed {}",
            self.started,
            self.downloaded,
            self.updated,
            self.failed_total()
        )?;
        if !self.failed.is_empty() {
            let shown: Vec<String> = self
                .failed
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, " ({})", shown.join(", "))?;
        }
        let secs = |us: u64| us as f64 / 1e6;
        for (what, h) in [
            ("download", &self.download_time),
            ("update", &self.update_time),
        ] {
            if !h.is_empty() {
                write!(
                    f,
                    "; {what} p50 {:.1} s, p99 {:.1} s, max {:.1} s",
                    secs(h.value_at_quantile(0.5)),
                    secs(h.value_at_quantile(0.99)),
                    secs(h.max())
                )?;
            }
        }
        Ok(())
    }
}

/// One summary line: `bootstraps: finished 100, failed 0, aborted 0; p50 3.10 ms ...`.
impl fmt::Display for BootstrapStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bootstraps: finished {}, failed {}, aborted {}",
            self.finished, self.failed, self.aborted
        )?;
        if !self.duration.is_empty() {
            let h = &self.duration;
            write!(
                f,
                "; request to finish p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )?;
        }
        if !self.failures.is_empty() {
            let shown: Vec<String> = self
                .failures
                .iter()
                .map(|(r, n)| format!("{r} x{n}"))
                .collect();
            write!(f, "; failures: {}", shown.join(", "))?;
        }
        Ok(())
    }
}

fn reasons(counts: &[(String, u64)]) -> String {
    let shown: Vec<String> = counts.iter().map(|(r, n)| format!("{r} x{n}")).collect();
    shown.join(", ")
}

/// One summary line, e.g. `dtls handshakes: ok 200, failed 0, aborted 0; p50 1.20 ms ...`.
impl fmt::Display for HandshakeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_line(f, "dtls handshakes", "sessions lost")
    }
}

impl HandshakeStats {
    /// The summary line of TCP/TLS connection setups, e.g. `tcp connections: ok 200, ...`.
    pub fn connections_line(&self) -> String {
        struct Line<'a>(&'a HandshakeStats);
        impl fmt::Display for Line<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write_line(f, "tcp connections", "connections lost")
            }
        }
        Line(self).to_string()
    }

    fn write_line(&self, f: &mut fmt::Formatter<'_>, what: &str, lost: &str) -> fmt::Result {
        write!(
            f,
            "{what}: ok {}, failed {}, aborted {}",
            self.ok, self.failed, self.aborted
        )?;
        if !self.latency.is_empty() {
            let h = &self.latency;
            write!(
                f,
                "; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            )?;
        }
        if !self.failures.is_empty() {
            write!(f, "; failures: {}", reasons(&self.failures))?;
        }
        if !self.lost.is_empty() {
            write!(f, "; {lost}: {}", reasons(&self.lost))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::client::{Event, RequestKind, RequestOutcome, RequestRecord};
    use crate::clock::Instant;
    use crate::metrics::Recorder;

    fn answered(outcome: RequestOutcome, sent_ms: u64, done_ms: u64) -> Event {
        let at = |ms| Instant::ZERO + Duration::from_millis(ms);
        Event::Request(RequestRecord {
            kind: RequestKind::Register,
            intended: at(0),
            sent: at(sent_ms),
            completed: at(done_ms),
            outcome,
            retransmissions: 2,
        })
    }

    #[test]
    fn the_table_has_a_cell_per_header_and_names_error_answers_and_waiting() {
        let mut rec = Recorder::new();
        for _ in 0..3 {
            rec.event(&Event::Sent(RequestKind::Register));
        }
        // Due at 0, sent at 100 ms: p99 from the due time is well above p99 from the send.
        rec.event(&answered(RequestOutcome::Response(0x41), 100, 110));
        rec.event(&answered(RequestOutcome::Response(0xA0), 0, 20));
        rec.event(&answered(RequestOutcome::Reset, 0, 5));
        let table = rec.snapshot(Duration::from_secs(1)).to_string();
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        // "p50 ms" and friends are two words each.
        assert_eq!(header.len() - 5, row.len(), "{table}");
        assert_eq!((header[0], row[0]), ("request", "register"), "{table}");
        assert_eq!((header[7], row[7]), ("retrans", "6"), "{table}");
        assert!(table.contains("register 5.00 x1"), "{table}");
        assert!(table.contains("register RST x1"), "{table}");
        assert!(
            table.contains("requests waited before going out"),
            "{table}"
        );
    }
}
