//! The text forms of a [`Snapshot`]: the progress line and the end-of-run summary table.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::schema::code_name;
use crate::client::{
    CLIENT_STATES, OPERATION_KINDS, REQUEST_KINDS, operation_name, request_name, state_index,
    state_name,
};
use crate::metrics::{BootstrapStats, FirmwareStats, HandshakeStats, RequestStats, Snapshot};

impl Snapshot {
    /// A one-line account for logs: clients by state, the rates since `previous` of the request
    /// kinds sent in that time, errors; broken to [`SUMMARY_WIDTH`] if it is longer still.
    pub fn progress_line(&self, previous: &Snapshot) -> String {
        let seconds = self
            .elapsed
            .saturating_sub(previous.elapsed)
            .as_secs_f64()
            .max(1e-3);
        let mut states = String::new();
        for state in CLIENT_STATES {
            let n = self.state(state);
            if n > 0 {
                let _ = write!(states, " {} {n}", state_name(state));
            }
        }
        let mut rates = String::new();
        for kind in self.kinds_used() {
            let sent = self.request(kind).sent - previous.request(kind).sent;
            if sent > 0 {
                let rate = sent as f64 / seconds;
                let _ = write!(rates, " {} {rate:.0}/s", request_name(kind));
            }
        }
        let ops: u64 = self.operations.iter().map(|o| o.total).sum::<u64>()
            - previous.operations.iter().map(|o| o.total).sum::<u64>();
        if ops > 0 {
            let _ = write!(rates, " server-ops {:.0}/s", ops as f64 / seconds);
        }
        let failures: u64 = self.requests.iter().map(|r| r.error + r.timeout).sum();
        let mut problems = format!(" errors+timeouts {failures}");
        if self.traffic.kernel_drops > 0 {
            let _ = write!(problems, " kernel-drops {}", self.traffic.kernel_drops);
        }
        let parts: Vec<&str> = [states.as_str(), rates.as_str(), problems.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        let line = format!("[{:>6.1}s]{}", self.elapsed.as_secs_f64(), parts.join(" |"));
        fit(&line, SUMMARY_WIDTH)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The summary's width: every line fits a 100-column terminal.
pub const SUMMARY_WIDTH: usize = 100;

/// Says what the `non` column is and how the counts add up, under the counts table.
pub const ACCOUNTING_NOTE: &str =
    "sent = ok + error + timeout + aborted + non + flight; non: NON notifications (never answered)";

/// A latency cell in ms, `-` when nothing was measured.
fn ms_cell(h: &Histogram<u64>, quantile: f64) -> String {
    if h.is_empty() {
        "-".to_string()
    } else {
        format!("{:.2}", ms(h.value_at_quantile(quantile)))
    }
}

/// `n` per second of `elapsed`, `-` before any time has passed.
fn rate_cell(n: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 1e-3 {
        "-".to_string()
    } else {
        format!("{:.1}", n as f64 / seconds)
    }
}

/// The end-of-run summary: elapsed time, a counts table and a latency table by request kind,
/// server operations, clients and traffic; no line longer than [`SUMMARY_WIDTH`].
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_requests(&mut text)?;
        self.write_operations(&mut text)?;
        self.write_clients_and_traffic(&mut text)?;
        f.write_str(&fit(&text, SUMMARY_WIDTH))
    }
}

impl Snapshot {
    fn write_requests(&self, f: &mut String) -> fmt::Result {
        let sent: u64 = self.requests.iter().map(|r| r.sent).sum();
        writeln!(
            f,
            "elapsed {:.1} s; {sent} requests sent, {}/s",
            self.elapsed.as_secs_f64(),
            rate_cell(sent, self.elapsed)
        )?;
        let counts_row = |f: &mut String, name: &str, r: &RequestStats| {
            writeln!(
                f,
                "{name:<10} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                r.sent,
                r.ok,
                r.error,
                r.timeout,
                r.aborted,
                r.unacknowledged,
                r.in_flight(),
                r.retransmissions,
                rate_cell(r.sent, self.elapsed)
            )
        };
        writeln!(
            f,
            "{:<10} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            "request",
            "sent",
            "ok",
            "error",
            "timeout",
            "aborted",
            "non",
            "flight",
            "retrans",
            "sent/s"
        )?;
        let mut total = RequestStats::default();
        for kind in self.kinds_used() {
            let r = self.request(kind);
            counts_row(f, request_name(kind), r)?;
            total.sent += r.sent;
            total.ok += r.ok;
            total.error += r.error;
            total.timeout += r.timeout;
            total.aborted += r.aborted;
            total.unacknowledged += r.unacknowledged;
            total.retransmissions += r.retransmissions;
        }
        counts_row(f, "total", &total)?;
        writeln!(f, "{ACCOUNTING_NOTE}")?;
        writeln!(
            f,
            "\n{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency ms", "answered", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for kind in self.kinds_used() {
            let h = &self.request(kind).latency;
            writeln!(
                f,
                "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                request_name(kind),
                h.len(),
                ms_cell(h, 0.5),
                ms_cell(h, 0.9),
                ms_cell(h, 0.99),
                ms_cell(h, 0.999),
                ms_cell(h, 1.0)
            )?;
        }
        writeln!(
            f,
            "(from when each request was due; `-`: no answer to measure)"
        )?;
        for kind in REQUEST_KINDS {
            let r = self.request(kind);
            if let Some((due, sent)) = r.omission_gap() {
                writeln!(
                    f,
                    "{}: p99 {:.2} ms from the due time, {:.2} ms from the send: requests waited \
                     to go out",
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

    fn write_operations(&self, f: &mut String) -> fmt::Result {
        let used: Vec<_> = OPERATION_KINDS
            .iter()
            .filter(|k| self.operation(**k).total > 0)
            .collect();
        if !used.is_empty() {
            writeln!(
                f,
                "\n{:<18} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
                "server operation", "handled", "ok", "error", "p50 us", "p99 us", "max us"
            )?;
            let us = |h: &Histogram<u64>, q: f64| {
                if h.is_empty() {
                    "-".to_string()
                } else {
                    h.value_at_quantile(q).to_string()
                }
            };
            for kind in used {
                let o = self.operation(*kind);
                let h = &o.handling;
                writeln!(
                    f,
                    "{:<18} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
                    operation_name(*kind),
                    o.total,
                    o.ok,
                    o.error,
                    us(h, 0.5),
                    us(h, 0.99),
                    us(h, 1.0)
                )?;
            }
            writeln!(
                f,
                "(time a client took to answer, datagram in to answer out; `-`: not recorded)"
            )?;
        }
        if self.woke > 0 {
            let h = &self.wake_to_request;
            writeln!(
                f,
                "queue mode: {} wake-ups, {} followed by a server request: p50 {}, p99 {}, \
                 max {} ms after waking",
                self.woke,
                h.len(),
                ms_cell(h, 0.5),
                ms_cell(h, 0.99),
                ms_cell(h, 1.0)
            )?;
        }
        Ok(())
    }

    fn write_clients_and_traffic(&self, f: &mut String) -> fmt::Result {
        let states: Vec<String> = CLIENT_STATES
            .iter()
            .filter(|s| self.peak_states[state_index(**s)] > 0)
            .map(|s| format!("{} {}", state_name(*s), self.peak_states[state_index(*s)]))
            .collect();
        if !states.is_empty() {
            writeln!(f, "\npeak clients by state: {}", states.join(", "))?;
        }
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
            "datagrams: out {} ({} B), {}/s; in {} ({} B), {}/s",
            t.datagrams_out,
            t.bytes_out,
            rate_cell(t.datagrams_out, self.elapsed),
            t.datagrams_in,
            t.bytes_in,
            rate_cell(t.datagrams_in, self.elapsed),
        )?;
        let dropped: Vec<String> = [
            ("unmatched", t.unmatched),
            ("foreign", t.foreign),
            ("truncated", t.truncated),
            ("send errors", t.send_errors),
            ("kernel drops", t.kernel_drops),
            ("client asleep", t.asleep),
            ("client offline", t.offline),
            ("malformed", t.malformed),
            ("duplicate", t.duplicate),
            ("foreign requests", t.foreign_requests),
            ("foreign replies", t.foreign_replies),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect();
        if !dropped.is_empty() {
            write!(f, "\nnot processed: {}", dropped.join(", "))?;
        }
        Ok(())
    }
}

/// `text` with every line longer than `width` broken before it: after the last `; `, `, ` or
/// space that fits, the rest indented two spaces.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut rest = line;
        let mut indent = "";
        while indent.len() + rest.chars().count() > width {
            let room = width - indent.len();
            let head: String = rest.chars().take(room).collect();
            let cut = ["; ", ", ", " "]
                .iter()
                .find_map(|sep| head.rfind(sep).map(|at| (at + sep.len() - 1, sep.len())))
                .filter(|(at, _)| *at > 0);
            let Some((at, _)) = cut else {
                break;
            };
            out.push_str(indent);
            out.push_str(rest[..at].trim_end());
            out.push('\n');
            rest = rest[at..].trim_start();
            indent = "  ";
        }
        out.push_str(indent);
        out.push_str(rest);
    }
    out
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
            write!(f, "; request to finish {}", p50_p99_max(&self.duration))?;
        }
        if !self.failures.is_empty() {
            write!(f, "; failures: {}", reasons(&self.failures))?;
        }
        Ok(())
    }
}

/// `p50 1.20 ms, p99 3.40 ms, max 5.00 ms` of a latency histogram in µs.
fn p50_p99_max(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
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
            write!(f, "; {}", p50_p99_max(&self.latency))?;
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

    use super::SUMMARY_WIDTH;
    use crate::client::{
        CLIENT_STATES, Event, OPERATION_KINDS, RequestKind, RequestOutcome, RequestRecord,
    };
    use crate::clock::Instant;
    use crate::metrics::{Recorder, Snapshot};

    fn answered(kind: RequestKind, outcome: RequestOutcome, sent_ms: u64, done_ms: u64) -> Event {
        let at = |ms| Instant::ZERO + Duration::from_millis(ms);
        Event::Request(RequestRecord {
            kind,
            intended: at(0),
            sent: at(sent_ms),
            completed: at(done_ms),
            outcome,
            retransmissions: 2,
        })
    }

    /// The words of the first line starting with `name` after the line starting with `header`.
    fn row<'a>(table: &'a str, header: &str, name: &str) -> Vec<&'a str> {
        table
            .lines()
            .skip_while(|l| !l.starts_with(header))
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row under {header}:\n{table}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn the_tables_have_a_cell_per_header_and_name_error_answers_and_waiting() {
        let mut rec = Recorder::new();
        for _ in 0..3 {
            rec.event(&Event::Sent(RequestKind::Register));
        }
        let register = RequestKind::Register;
        // Due at 0, sent at 100 ms: p99 from the due time is well above p99 from the send.
        rec.event(&answered(
            register,
            RequestOutcome::Response(0x41),
            100,
            110,
        ));
        rec.event(&answered(register, RequestOutcome::Response(0xA0), 0, 20));
        rec.event(&answered(register, RequestOutcome::Reset, 0, 5));
        let table = rec.snapshot(Duration::from_secs(2)).to_string();
        let header: Vec<&str> = row(&table, "request", "request");
        let counts = row(&table, "request", "register");
        assert_eq!(header.len(), counts.len(), "{table}");
        assert_eq!((header[7], counts[7]), ("flight", "0"), "{table}");
        assert_eq!((header[8], counts[8]), ("retrans", "6"), "{table}");
        // 3 sent in 2 s.
        assert_eq!((header[9], counts[9]), ("sent/s", "1.5"), "{table}");
        let header = row(&table, "latency ms", "latency");
        let latency = row(&table, "latency ms", "register");
        // "latency ms" is two words.
        assert_eq!(header.len() - 1, latency.len(), "{table}");
        assert_eq!((header[2], latency[1]), ("answered", "3"), "{table}");
        assert!(
            table.starts_with("elapsed 2.0 s; 3 requests sent, 1.5/s"),
            "{table}"
        );
        assert!(table.contains("register 5.00 x1"), "{table}");
        assert!(table.contains("register RST x1"), "{table}");
        assert!(table.contains("requests waited to go out"), "{table}");
    }

    #[test]
    fn kinds_without_answers_show_a_dash_and_non_notifications_are_not_ok() {
        let mut rec = Recorder::new();
        for _ in 0..4 {
            rec.event(&Event::Sent(RequestKind::Notify));
        }
        for _ in 0..3 {
            rec.event(&answered(
                RequestKind::Notify,
                RequestOutcome::Unconfirmed,
                0,
                0,
            ));
        }
        let table = rec.snapshot(Duration::from_secs(10)).to_string();
        // sent, ok, error, timeout, aborted, non, flight.
        let notify = row(&table, "request", "notify");
        assert_eq!(notify[1..8], ["4", "0", "0", "0", "0", "3", "1"], "{table}");
        // Nothing answered: no latency, nor for updates never sent.
        for kind in ["notify", "update"] {
            let latency = row(&table, "latency ms", kind);
            assert_eq!(latency[1..], ["0", "-", "-", "-", "-", "-"], "{table}");
        }
        assert!(table.contains(super::ACCOUNTING_NOTE), "{table}");
        assert!(!table.contains("0.00"), "{table}");
    }

    /// Everything a big run can show, with wide numbers and long lists.
    fn busy_snapshot() -> Snapshot {
        let mut s = Snapshot {
            elapsed: Duration::from_secs(3600),
            ..Snapshot::default()
        };
        for (i, r) in s.requests.iter_mut().enumerate() {
            r.sent = 987_654_321;
            r.ok = 987_000_000;
            r.error = 1_234_567;
            r.timeout = 7_654_321;
            r.aborted = 1_234_567;
            r.unacknowledged = 1_234_567;
            r.retransmissions = 9_876_543;
            r.unsent = 5;
            for code in [0x80, 0x84, 0x85, 0x8D, 0xA0, 0xA3, 0xA4] {
                r.codes.push((Some(code), 123_456));
            }
            r.codes.push((None, 99));
            for v in [1, 900, 30_000_000, 59_000_000 + i as u64] {
                r.latency.record(v).unwrap();
                r.service.record(v / 100 + 1).unwrap();
            }
        }
        for o in &mut s.operations {
            o.total = 123_456_789;
            o.ok = 123_000_000;
            o.error = 456_789;
            o.handling.record(59_000_000).unwrap();
        }
        s.woke = 123_456_789;
        s.wake_to_request.record(59_000_000).unwrap();
        s.states = [12_345_678; CLIENT_STATES.len()];
        s.peak_states = [12_345_678; CLIENT_STATES.len()];
        s.handshakes.ok = 1_000_000;
        s.handshakes.failed = 1_000;
        s.handshakes.latency.record(59_000_000).unwrap();
        s.handshakes.failures = vec![("timeout".into(), 10), ("decrypt_error".into(), 3)];
        s.handshakes.lost = vec![("close_notify".into(), 10), ("timeout".into(), 4)];
        s.connections = s.handshakes.clone();
        s.bootstrap.finished = 1_000_000;
        s.bootstrap.failures = vec![("finish-timeout".into(), 7), ("rejected".into(), 2)];
        s.bootstrap.duration.record(59_000_000).unwrap();
        s.firmware.started = 1_000_000;
        s.firmware.failed = vec![("integrity".into(), 3), ("connection-lost".into(), 9)];
        s.firmware.download_time.record(3_000_000_000).unwrap();
        s.firmware.update_time.record(3_000_000_000).unwrap();
        let t = &mut s.traffic;
        (t.datagrams_in, t.datagrams_out) = (9_876_543_210, 9_876_543_210);
        (t.bytes_in, t.bytes_out) = (987_654_321_000, 987_654_321_000);
        (t.unmatched, t.foreign, t.truncated, t.send_errors) = (1, 2, 3, 4);
        (t.kernel_drops, t.asleep, t.offline, t.malformed) = (5, 6, 7, 8);
        (t.duplicate, t.foreign_requests, t.foreign_replies) = (9, 10, 11);
        t.network.dropped = 123_456;
        t.network.rebound = 5;
        s
    }

    #[test]
    fn every_line_of_a_busy_summary_fits_in_100_columns() {
        let s = busy_snapshot();
        assert!(s.operations.len() == OPERATION_KINDS.len());
        let table = s.to_string();
        let wide: Vec<&str> = table
            .lines()
            .filter(|l| l.chars().count() > SUMMARY_WIDTH)
            .collect();
        assert!(wide.is_empty(), "lines over {SUMMARY_WIDTH}: {wide:#?}");
        // Nothing was lost to the breaking: the last server operation and dropped count.
        assert!(table.contains("other "), "{table}");
        assert!(table.contains("foreign replies 11"), "{table}");
        assert!(table.contains("request to finish p50"), "{table}");
        let total = 987_654_321 * crate::client::REQUEST_KINDS.len() as u64;
        assert_eq!(
            row(&table, "request", "total")[1],
            total.to_string(),
            "{table}"
        );
    }

    #[test]
    fn the_progress_line_names_what_was_sent_and_fits_100_columns() {
        let before = Snapshot::default();
        let mut now = busy_snapshot();
        now.elapsed = Duration::from_secs(2);
        now.requests[1].sent = 0;
        let line = now.progress_line(&before);
        assert!(
            line.lines().all(|l| l.chars().count() <= SUMMARY_WIDTH),
            "{line}"
        );
        assert!(line.contains("register 493827160/s"), "{line}");
        assert!(!line.contains("update "), "{line}");
        assert!(line.contains("server-ops "), "{line}");
        let idle = Snapshot::default().progress_line(&before);
        assert_eq!(idle, "[   0.0s] errors+timeouts 0");
    }

    #[test]
    fn long_lines_break_after_a_separator_with_the_rest_indented() {
        let text = format!("short\n{}; b, c d", "a".repeat(95));
        assert_eq!(
            super::fit(&text, 100),
            format!("short\n{};\n  b, c d", "a".repeat(95))
        );
        // A word longer than the width cannot break: it stays whole.
        let word = "x".repeat(120);
        assert_eq!(super::fit(&word, 100), word);
    }
}
