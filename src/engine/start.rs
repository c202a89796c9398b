//! `--start-at`: the wall-clock instant every `--shard` process starts its load at, so their
//! ramps line up (each ramp's t = 0 is that instant). A process that gets there late starts at
//! once and says how late.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fleet::format_duration;

/// When the engine's load began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// The ramp's t = 0.
    pub at: SystemTime,
    /// How long after `--start-at` that was (zero when on time or without one).
    pub late: Duration,
}

impl Started {
    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> u64 {
        self.at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// What to do at `now` for a start at `start_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartDelay {
    /// Not yet: this long to go.
    Wait(Duration),
    /// Start now, this late (zero: on time).
    Late(Duration),
}

pub fn start_delay(start_at: SystemTime, now: SystemTime) -> StartDelay {
    match start_at.duration_since(now) {
        Ok(ahead) if !ahead.is_zero() => StartDelay::Wait(ahead),
        Ok(_) => StartDelay::Late(Duration::ZERO),
        Err(past) => StartDelay::Late(past.duration()),
    }
}

/// What a process about to wait for `start_at` says at `now`.
pub fn describe_wait(start_at: SystemTime, now: SystemTime) -> String {
    let at = format_time(start_at);
    match start_delay(start_at, now) {
        StartDelay::Wait(ahead) => format!(
            "waiting for --start-at {at} (in {})",
            format_duration(ahead)
        ),
        StartDelay::Late(late) => format!(
            "--start-at {at} was {} ago: starting at once",
            format_duration(late)
        ),
    }
}

/// The summary's line about the start: when, and how late for `--start-at`.
pub fn describe_start(started: &Started, start_at: Option<SystemTime>) -> String {
    let at = format_time(started.at);
    match start_at {
        None => format!("started {at}"),
        // Under a millisecond, as the report counts it: on time.
        Some(_) if started.late < Duration::from_millis(1) => {
            format!("started {at}, on --start-at")
        }
        Some(_) => format!(
            "started {at}, {} after --start-at",
            format_duration(started.late)
        ),
    }
}

/// Sleeps until `start_at` (in steps, so a wall clock stepped meanwhile is noticed); returns
/// when the start is.
pub(super) fn wait_for(start_at: Option<SystemTime>) -> Started {
    let Some(start_at) = start_at else {
        return Started {
            at: SystemTime::now(),
            late: Duration::ZERO,
        };
    };
    loop {
        let now = SystemTime::now();
        match start_delay(start_at, now) {
            StartDelay::Wait(ahead) => std::thread::sleep(ahead.min(Duration::from_secs(1))),
            StartDelay::Late(late) => return Started { at: now, late },
        }
    }
}

/// `--start-at`'s value: an RFC 3339 time (`2026-12-06T22:30:00Z`, `...+01:00`, fractions of a
/// second allowed) or Unix seconds (`1796596200`, `1796596200.25`).
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let expected = || {
        format!(
            "{text:?}: expected an RFC 3339 time like 2026-12-06T22:30:00Z or Unix seconds like \
             1796596200"
        )
    };
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        let seconds: f64 = text.parse().map_err(|_| expected())?;
        let since = Duration::try_from_secs_f64(seconds).map_err(|_| expected())?;
        return UNIX_EPOCH.checked_add(since).ok_or_else(expected);
    }
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("{}: {e}", expected()))?;
    Ok(SystemTime::from(time))
}

/// `t` as RFC 3339 in UTC, to the millisecond: `2026-12-06T22:30:00.000Z`.
pub fn format_time(t: SystemTime) -> String {
    let utc = OffsetDateTime::from(t);
    let ms = utc.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn parses_rfc_3339_and_unix_seconds() {
        // 2026-12-06T22:30:00Z
        let t = unix(1_796_596_200);
        assert_eq!(parse_start_at("2026-12-06T22:30:00Z"), Ok(t));
        assert_eq!(parse_start_at("2026-12-06T23:30:00+01:00"), Ok(t));
        assert_eq!(parse_start_at(" 1796596200 "), Ok(t));
        assert_eq!(
            parse_start_at("2026-12-06T22:30:00.250Z"),
            Ok(t + Duration::from_millis(250))
        );
        assert_eq!(
            parse_start_at("1796596200.5"),
            Ok(t + Duration::from_millis(500))
        );
        assert_eq!(format_time(t), "2026-12-06T22:30:00.000Z");
        for junk in [
            "",
            "tomorrow",
            "2026-12-06 22:30",
            "2026-12-06T22:30:00",
            "-5",
            "1.2.3",
            "22:30",
        ] {
            let e = parse_start_at(junk).unwrap_err();
            assert!(e.contains("expected an RFC 3339 time"), "{junk:?}: {e}");
            assert!(e.starts_with(&format!("{:?}", junk.trim())), "{e}");
        }
    }

    #[test]
    fn waits_when_early_and_counts_lateness_when_late() {
        let at = unix(1_000);
        assert_eq!(
            start_delay(at, unix(990)),
            StartDelay::Wait(Duration::from_secs(10))
        );
        assert_eq!(start_delay(at, at), StartDelay::Late(Duration::ZERO));
        assert_eq!(
            start_delay(at, unix(1_003) + Duration::from_millis(7)),
            StartDelay::Late(Duration::from_millis(3_007))
        );
        let started = Started {
            at: unix(1_796_596_200) + Duration::from_millis(42),
            late: Duration::ZERO,
        };
        assert_eq!(started.unix_ms(), 1_796_596_200_042);
        assert_eq!(
            describe_wait(at, unix(990)),
            "waiting for --start-at 1970-01-01T00:16:40.000Z (in 10s)"
        );
        assert_eq!(
            describe_wait(at, unix(1_003)),
            "--start-at 1970-01-01T00:16:40.000Z was 3s ago: starting at once"
        );
        assert_eq!(
            describe_start(&started, None),
            "started 2026-12-06T22:30:00.042Z"
        );
        let on_time = Started {
            late: Duration::from_micros(300),
            ..started
        };
        assert_eq!(
            describe_start(&on_time, Some(unix(1_796_596_200))),
            "started 2026-12-06T22:30:00.042Z, on --start-at"
        );
        let late = Started {
            late: Duration::from_millis(1_500),
            ..started
        };
        assert_eq!(
            describe_start(&late, Some(unix(1_796_596_200))),
            "started 2026-12-06T22:30:00.042Z, 1s500ms after --start-at"
        );
    }

    #[test]
    fn a_start_in_the_past_begins_at_once_and_says_how_late() {
        let past = SystemTime::now() - Duration::from_secs(5);
        let started = wait_for(Some(past));
        assert!(started.late >= Duration::from_secs(5), "{started:?}");
        assert!(started.late < Duration::from_secs(60), "{started:?}");
        let soon = SystemTime::now() + Duration::from_millis(30);
        let started = wait_for(Some(soon));
        assert!(started.at >= soon);
        assert!(started.late < Duration::from_secs(5), "{started:?}");
    }
}
