//! Value parsers for the options clap cannot type by itself. Each error says what was expected
//! in plain words; clap adds the option's name and the value.

use std::time::Duration;

use super::{Failure, bad_input};
use crate::fleet::{IdentityPattern, Secret, parse_duration};
use crate::model::Path;
use crate::transport::{AddressSet, PortRange};

/// `--psk-key` as typed: checked by [`HexArg::secret`], because clap's own errors quote the
/// value and this one is a key. Debug hides it (`Cli` derives Debug).
#[derive(Clone)]
pub(super) struct HexArg(String);

impl HexArg {
    /// The key, or an error naming `--psk-key` without quoting it.
    pub(super) fn secret(&self) -> Result<Secret, Failure> {
        Secret::from_hex(&self.0).map_err(|e| bad_input(format!("--psk-key: {e}")))
    }
}

impl std::fmt::Debug for HexArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HexArg(<hidden>)")
    }
}

#[allow(clippy::unnecessary_wraps)] // clap's value_parser signature
pub(super) fn hex_arg(s: &str) -> Result<HexArg, std::convert::Infallible> {
    Ok(HexArg(s.to_string()))
}

pub(super) fn parse_identity(s: &str) -> Result<IdentityPattern, String> {
    s.parse()
}

/// Clients started per second. The option takes values starting with `-` so that `--rate -1`
/// is refused here, in words, rather than by clap as an unknown flag.
pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .parse()
        .map_err(|_| "expected a number of clients per second, like 50 or 2.5".to_string())?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("a rate must be more than 0 clients/s".into())
    }
}

/// A whole number of at least 1 (clients, a limit).
pub(super) fn parse_count(s: &str) -> Result<u64, String> {
    const AT_LEAST_ONE: &str = "expected a whole number of at least 1";
    if s.trim().starts_with('-') {
        return Err(AT_LEAST_ONE.into());
    }
    match parse_whole(s)? {
        0 => Err(AT_LEAST_ONE.into()),
        n => Ok(n),
    }
}

/// A whole number of a `usize` option (0 or more).
pub(super) fn parse_whole_usize(s: &str) -> Result<usize, String> {
    usize::try_from(parse_whole(s)?).map_err(|_| too_large(usize::MAX as u64))
}

/// Rust says "too large"; the user wants to know how large may be.
pub(super) fn too_large(max: u64) -> String {
    format!("too large: at most {}", crate::engine::thousands(max))
}

/// A whole number of a `u16` option (0 or more).
pub(super) fn parse_whole_u16(s: &str) -> Result<u16, String> {
    u16::try_from(parse_whole(s)?).map_err(|_| format!("at most {}", u16::MAX))
}

/// A share: a fraction from 0 to 1 (`60` reads as 60%: "did you mean 0.6?").
pub(super) fn parse_share(s: &str) -> Result<f64, String> {
    let share: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a share from 0 to 1, like 0.25".to_string())?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(crate::plain::not_a_share(share, true))
    }
}

/// A whole number, 0 or more (a seed, a count that may be 0).
pub(super) fn parse_whole(s: &str) -> Result<u64, String> {
    let digits = s.trim();
    if digits.starts_with('-') && digits[1..].parse::<u64>().is_ok() {
        return Err("expected a whole number, 0 or more".into());
    }
    digits.parse::<u64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => too_large(u64::MAX),
        _ => "expected a whole number, like 100".to_string(),
    })
}

pub(super) fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        Err("must be more than 0s".into())
    } else {
        Ok(d)
    }
}

pub(super) fn parse_addresses(s: &str) -> Result<AddressSet, String> {
    AddressSet::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_ports(s: &str) -> Result<PortRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected FIRST-LAST, e.g. 20000-29999"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port"))
    };
    PortRange::new(port(a)?, port(b)?).map_err(|e| e.to_string())
}

pub(super) fn parse_path(s: &str) -> Result<Path, String> {
    s.parse::<Path>()
        .map_err(|_| format!("{s:?} is not an LWM2M path like /3/0/13"))
}

pub(super) fn parse_periodic(s: &str) -> Result<(Path, Duration), String> {
    let (path, period) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected PATH@PERIOD, e.g. /3/0/13@30s"))?;
    Ok((parse_path(path)?, parse_positive_duration(period)?))
}

pub(super) fn parse_write(s: &str) -> Result<(Path, String, Duration), String> {
    let (rest, period) = s
        .rsplit_once('@')
        .ok_or_else(|| format!("{s:?}: expected PATH=VALUE@PERIOD, e.g. /1/0/3=10@1m"))?;
    let (path, value) = rest
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PATH=VALUE@PERIOD"))?;
    Ok((
        parse_path(path)?,
        value.to_string(),
        parse_positive_duration(period)?,
    ))
}

/// `PATH,PATH@PERIOD`: the paths of a periodic Read-Composite.
pub(super) fn parse_periodic_paths(s: &str) -> Result<(Vec<Path>, Duration), String> {
    let (paths, period) = s
        .rsplit_once('@')
        .ok_or_else(|| format!("{s:?}: expected PATH,PATH@PERIOD, e.g. /3/0/13,/3303/0/5700@1m"))?;
    let paths = paths
        .split(',')
        .map(parse_path)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((paths, parse_positive_duration(period)?))
}

/// `PATH=VALUE,PATH=VALUE@PERIOD`: the values of a periodic Write-Composite (no comma in a value).
pub(super) fn parse_composite_write(s: &str) -> Result<(Vec<(Path, String)>, Duration), String> {
    let (values, period) = s.rsplit_once('@').ok_or_else(|| {
        format!("{s:?}: expected PATH=VALUE,PATH=VALUE@PERIOD, e.g. /3/0/14=+01:00,/1/0/3=60@5m")
    })?;
    let values = values
        .split(',')
        .map(|item| {
            let (path, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected PATH=VALUE"))?;
            Ok((parse_path(path)?, value.to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((values, parse_positive_duration(period)?))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn composite_loads_list_paths_or_values_then_a_period() {
        let (paths, every) = parse_periodic_paths("/3/0/13,/3303/0/5700@1m").unwrap();
        assert_eq!(
            paths,
            [Path::resource(3, 0, 13), Path::resource(3303, 0, 5700)]
        );
        assert_eq!(every, secs(60));
        assert!(parse_periodic_paths("/3/0/13,/3303/0/5700").is_err());
        assert!(parse_periodic_paths("/3/0/13,nope@1m").is_err());
        let (values, every) = parse_composite_write("/3/0/14=+01:00,/1/0/3=60@5m").unwrap();
        assert_eq!(
            values,
            [
                (Path::resource(3, 0, 14), "+01:00".to_string()),
                (Path::resource(1, 0, 3), "60".to_string())
            ]
        );
        assert_eq!(every, secs(300));
        assert!(parse_composite_write("/3/0/14@5m").is_err());
        assert!(parse_composite_write("/3/0/14=1@0s").is_err());
    }

    #[test]
    fn counts_say_their_bounds_in_words() {
        assert_eq!(parse_count("50"), Ok(50));
        for below in ["0", "-3", " -1"] {
            assert_eq!(
                parse_count(below),
                Err("expected a whole number of at least 1".into()),
                "{below}"
            );
        }
        let too_large = Err("too large: at most 18,446,744,073,709,551,615".to_string());
        assert_eq!(parse_count("99999999999999999999"), too_large);
        assert_eq!(parse_whole("99999999999999999999"), too_large);
        assert_eq!(
            parse_whole("-3"),
            Err("expected a whole number, 0 or more".into())
        );
        assert_eq!(parse_whole_u16("70000"), Err("at most 65535".into()));
    }

    #[test]
    fn a_rate_is_a_positive_finite_number() {
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        let not_a_number = Err("expected a number of clients per second, like 50 or 2.5".into());
        assert_eq!(parse_rate("fast"), not_a_number);
        assert_eq!(parse_rate(""), not_a_number);
        for zero_or_worse in ["0", "-3", "NaN", "inf"] {
            assert_eq!(
                parse_rate(zero_or_worse),
                Err("a rate must be more than 0 clients/s".into()),
                "{zero_or_worse}"
            );
        }
    }

    #[test]
    fn a_positive_duration_has_units_and_is_not_zero() {
        assert_eq!(parse_positive_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_positive_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(
            parse_positive_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            parse_positive_duration("0s"),
            Err("must be more than 0s".into())
        );
        assert_eq!(
            parse_positive_duration("30"),
            Err("\"30\": a duration needs a unit, like \"5m\" (units ms, s, m, h, d)".into())
        );
        assert_eq!(
            parse_positive_duration("5w"),
            Err(
                "\"5w\": unknown unit \"w\" in a duration like \"5m\" (units ms, s, m, h, d)"
                    .into()
            )
        );
        let empty = parse_positive_duration("").unwrap_err();
        assert!(empty.contains("a duration like \"5m\""), "{empty}");
    }

    #[test]
    fn ports_are_first_dash_last() {
        let ports = parse_ports("20000-20999").unwrap();
        assert_eq!((ports.first(), ports.last()), (20000, 20999));
        let spaced = parse_ports("20000 - 20001").unwrap();
        assert_eq!((spaced.first(), spaced.last()), (20000, 20001));
        assert_eq!(
            parse_ports("20000"),
            Err("\"20000\": expected FIRST-LAST, e.g. 20000-29999".into())
        );
        assert_eq!(
            parse_ports("20000-70000"),
            Err("\"70000\" is not a port".into())
        );
        assert_eq!(parse_ports("a-20"), Err("\"a\" is not a port".into()));
        assert_eq!(
            parse_ports("30000-20000"),
            Err("invalid port range 30000-20000: first port above last port".into())
        );
        assert_eq!(
            parse_ports("0-10"),
            Err("invalid port range 0-10: port 0 means 'any port' and cannot be planned".into())
        );
    }

    #[test]
    fn addresses_are_loopback_a_block_or_a_list() {
        let loopback = parse_addresses("loopback").unwrap();
        assert_eq!(loopback, AddressSet::loopback());
        let block = parse_addresses("10.1.0.0/30").unwrap();
        assert_eq!(block.len(), 2, "{block:?}");
        assert_eq!(block.get(0), Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1))));
        let list = parse_addresses("10.0.0.1,10.0.0.2").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            parse_addresses("10.0.0.1,10.0.0.1"),
            Err("invalid address \"10.0.0.1 (duplicate)\" in the address list".into())
        );
        assert_eq!(
            parse_addresses("10.0.0.300"),
            Err("invalid address \"10.0.0.300\" in the address list".into())
        );
        assert_eq!(
            parse_addresses("10.0.0.0/x"),
            Err("invalid CIDR block \"10.0.0.0/x\": bad prefix length".into())
        );
        // An IPv6 prefix routed to the host: its addresses after the subnet-router anycast one.
        let prefix = parse_addresses("fd00::/64").unwrap();
        assert_eq!(prefix.get(0), Some("fd00::1".parse().unwrap()));
        assert_eq!(
            parse_addresses("fd00::1/64"),
            Err(
                "invalid CIDR block \"fd00::1/64\": host bits set; write the network address"
                    .into()
            )
        );
        assert_eq!(parse_addresses(","), Err("the address set is empty".into()));
    }

    #[test]
    fn a_periodic_operation_is_path_at_period() {
        assert_eq!(
            parse_periodic("/3/0/13@30s"),
            Ok((Path::resource(3, 0, 13), secs(30)))
        );
        let (object, every) = parse_periodic("/3/0@5m").unwrap();
        assert_eq!((object.to_string(), every), ("/3/0".to_string(), secs(300)));
        assert_eq!(
            parse_periodic("/3/0/13"),
            Err("\"/3/0/13\": expected PATH@PERIOD, e.g. /3/0/13@30s".into())
        );
        assert_eq!(
            parse_periodic("/3/zero/13@30s"),
            Err("\"/3/zero/13\" is not an LWM2M path like /3/0/13".into())
        );
        assert_eq!(
            parse_periodic("/1/2/3/4/5@30s"),
            Err("\"/1/2/3/4/5\" is not an LWM2M path like /3/0/13".into())
        );
        assert_eq!(
            parse_periodic("/3/0/13@0s"),
            Err("must be more than 0s".into())
        );
        assert_eq!(
            parse_periodic("/3/0/13@often"),
            Err(
                "\"often\" is not a duration like \"5m\" (a whole number, then ms, s, m, h or d)"
                    .into()
            )
        );
    }

    #[test]
    fn a_write_is_path_equals_value_at_period() {
        assert_eq!(
            parse_write("/1/0/3=10@1m"),
            Ok((Path::resource(1, 0, 3), "10".to_string(), secs(60)))
        );
        // The period is after the last '@', the value after the first '=': both may hold the
        // other.
        assert_eq!(
            parse_write("/3/0/14=a=b@c@2s"),
            Ok((Path::resource(3, 0, 14), "a=b@c".to_string(), secs(2)))
        );
        assert_eq!(
            parse_write("/1/0/3=@1m"),
            Ok((Path::resource(1, 0, 3), String::new(), secs(60)))
        );
        assert_eq!(
            parse_write("/1/0/3=10"),
            Err("\"/1/0/3=10\": expected PATH=VALUE@PERIOD, e.g. /1/0/3=10@1m".into())
        );
        assert_eq!(
            parse_write("/1/0/3@1m"),
            Err("\"/1/0/3@1m\": expected PATH=VALUE@PERIOD".into())
        );
        assert_eq!(
            parse_write("/1/x/3=10@1m"),
            Err("\"/1/x/3\" is not an LWM2M path like /3/0/13".into())
        );
        assert_eq!(
            parse_write("/1/0/3=10@0ms"),
            Err("must be more than 0s".into())
        );
    }

    #[test]
    fn an_identity_pattern_names_known_placeholders() {
        let pattern = parse_identity("id-{endpoint}").unwrap();
        assert_eq!(pattern.to_string(), "id-{endpoint}");
        assert_eq!(
            parse_identity("{serial}"),
            Err(
                "\"{serial}\": unknown placeholder {serial}: use {endpoint}, {index} or {number}"
                    .into()
            )
        );
        assert_eq!(
            parse_identity("{endpoint"),
            Err("\"{endpoint\": unclosed '{'".into())
        );
        assert_eq!(
            parse_identity(""),
            Err("the identity pattern is empty".into())
        );
    }

    #[test]
    fn a_hex_key_is_checked_later_and_never_shown() {
        let key = hex_arg("00112233").unwrap();
        assert_eq!(format!("{key:?}"), "HexArg(<hidden>)");
        assert_eq!(key.secret().unwrap().expose(), [0x00, 0x11, 0x22, 0x33]);
        for (bad, why) in [
            (
                "0011zz",
                "--psk-key: not a hex key: give two hex digits per byte",
            ),
            (
                "001",
                "--psk-key: not a hex key: give two hex digits per byte",
            ),
            ("", "--psk-key: the key is empty"),
        ] {
            let failure = hex_arg(bad).unwrap().secret().unwrap_err();
            assert_eq!(failure.message, why, "{bad:?}");
            assert_eq!(failure.code, crate::cli::exit::BAD_INPUT);
        }
    }
}
