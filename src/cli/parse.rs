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

pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("must be more than 0 clients/s".into())
    }
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

fn parse_path(s: &str) -> Result<Path, String> {
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
