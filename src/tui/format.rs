//! Numbers in the few characters a dashboard cell has.

use std::time::Duration;

/// A latency in µs as milliseconds in at most 5 characters: `0.09`, `12.3`, `1234`, `12.3s`.
pub fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 9.995 {
        format!("{ms:.2}")
    } else if ms < 99.95 {
        format!("{ms:.1}")
    } else if ms < 9_999.5 {
        format!("{ms:.0}")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// A count in at most 6 characters: exact below a million, then `1.23M`, `1.23G`.
pub fn count(n: u64) -> String {
    if n < 1_000_000 {
        n.to_string()
    } else if n < 1_000_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else {
        format!("{:.2}G", n as f64 / 1e9)
    }
}

/// A rate per second: whole numbers from 100 up, one decimal below.
pub fn rate(per_second: f64) -> String {
    if per_second >= 99.95 {
        count(per_second.round() as u64)
    } else {
        format!("{per_second:.1}")
    }
}

/// Wall-clock style: `00:07`, `01:15`, `2:00:05`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// A CoAP answer code (class*32+detail) as `4.04 Not Found`; `None` is an RST.
pub fn code(code: Option<u8>) -> String {
    let Some(c) = code else {
        return "RST".to_string();
    };
    let name = match c {
        0x80 => " Bad Request",
        0x81 => " Unauthorized",
        0x82 => " Bad Option",
        0x83 => " Forbidden",
        0x84 => " Not Found",
        0x85 => " Method Not Allowed",
        0x86 => " Not Acceptable",
        0x88 => " Request Entity Incomplete",
        0x8C => " Precondition Failed",
        0x8D => " Request Entity Too Large",
        0x8F => " Unsupported Content-Format",
        0xA0 => " Internal Server Error",
        0xA1 => " Not Implemented",
        0xA2 => " Bad Gateway",
        0xA3 => " Service Unavailable",
        0xA4 => " Gateway Timeout",
        _ => "",
    };
    format!("{}.{:02}{name}", c >> 5, c & 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fit_five_characters_at_every_scale() {
        assert_eq!(ms(90), "0.09");
        assert_eq!(ms(9_994), "9.99");
        assert_eq!(ms(9_996), "10.0");
        assert_eq!(ms(12_340), "12.3");
        assert_eq!(ms(1_234_000), "1234");
        assert_eq!(ms(12_340_000), "12.3s");
        assert_eq!(ms(60_000_000), "60.0s");
        for us in [1, 999, 99_949, 99_951, 9_999_499, 9_999_501, 59_999_999] {
            assert!(ms(us).len() <= 5, "{us}: {}", ms(us));
        }
    }

    #[test]
    fn counts_rates_clocks_and_codes() {
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_234_567), "1.23M");
        assert_eq!(count(4_500_000_000), "4.50G");
        assert_eq!(rate(3.04), "3.0");
        assert_eq!(rate(120.4), "120");
        assert_eq!(clock(Duration::from_secs(75)), "01:15");
        assert_eq!(clock(Duration::from_secs(7205)), "2:00:05");
        assert_eq!(code(Some(0x84)), "4.04 Not Found");
        assert_eq!(code(Some(0xA0)), "5.00 Internal Server Error");
        assert_eq!(code(Some(0x9F)), "4.31");
        assert_eq!(code(None), "RST");
    }
}
