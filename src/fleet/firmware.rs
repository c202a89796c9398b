//! A population's `firmware = { ... }`: how its devices take a firmware update (object 5).

use serde::Deserialize;

use super::FleetError;
use super::duration::parse_duration;
use super::span::At;
use crate::client::{FirmwareConfig, FirmwareFailures};

/// Packages up to 1 GiB: RFC 7959's own bound on a block-wise body.
const MAX_PACKAGE_LIMIT: u64 = 1 << 30;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirmware {
    pub update_time: Option<String>,
    pub package_limit: Option<u64>,
    pub download_rate: Option<u64>,
    pub version: Option<String>,
    pub failures: Option<RawFirmwareFailures>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirmwareFailures {
    pub integrity: Option<f64>,
    pub storage: Option<f64>,
    pub connection: Option<f64>,
    pub update: Option<f64>,
}

/// `base` with the fields `raw` gives, each checked; errors name `firmware.<field>`.
pub(super) fn firmware(
    raw: &RawFirmware,
    base: &FirmwareConfig,
    at: &At,
) -> Result<FirmwareConfig, FleetError> {
    let mut c = base.clone();
    let err = |key: &str, message: String| at.err_as(key, &format!("firmware.{key}"), message);
    if let Some(text) = &raw.update_time {
        c.update_time = parse_duration(text).map_err(|e| err("update_time", e.to_string()))?;
    }
    if let Some(limit) = raw.package_limit {
        if !(1..=MAX_PACKAGE_LIMIT).contains(&limit) {
            return Err(err(
                "package_limit",
                format!("{limit}: must be 1 to {MAX_PACKAGE_LIMIT} bytes (1 GiB)"),
            ));
        }
        c.package_limit = limit;
    }
    if let Some(rate) = raw.download_rate {
        if rate == 0 {
            return Err(err(
                "download_rate",
                "must be at least 1 byte/s (leave it out for no limit)".into(),
            ));
        }
        c.download_rate = Some(rate);
    }
    if let Some(version) = &raw.version {
        if version.is_empty() || version.len() > 255 {
            return Err(err(
                "version",
                format!("{version:?}: must be 1 to 255 bytes"),
            ));
        }
        c.version = Some(version.clone());
    }
    if let Some(f) = &raw.failures {
        let mut shares = c.failures;
        for (key, given, into) in [
            ("integrity", f.integrity, &mut shares.integrity),
            ("storage", f.storage, &mut shares.storage),
            ("connection", f.connection, &mut shares.connection),
            ("update", f.update, &mut shares.update),
        ] {
            if let Some(share) = given {
                if !(0.0..=1.0).contains(&share) {
                    return Err(err(key, crate::plain::not_a_share(share, true)));
                }
                *into = share;
            }
        }
        let FirmwareFailures {
            integrity,
            storage,
            connection,
            update,
        } = shares;
        let total = integrity + storage + connection + update;
        if total > 1.0 + 1e-9 {
            return Err(err(
                "failures",
                format!("the shares add up to {total}: at most 1"),
            ));
        }
        c.failures = shares;
    }
    Ok(c)
}
