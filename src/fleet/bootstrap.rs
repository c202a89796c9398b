//! The fleet file's `[bootstrap]`: clients start with a Bootstrap-Request to the fleet's server
//! (or the embedded bootstrap server), which tells them their LWM2M server.

use std::fmt::Write as _;

use toml::Spanned;

use super::raw::RawBootstrap;
use super::span::At;
use super::{FleetError, format_duration, parse_duration};
use crate::client::ClientBootstrapConfig;
use crate::content::ContentFormat;

/// `pct` values a fleet may ask for: what bootstrap servers write.
const FORMATS: [(&str, ContentFormat); 3] = [
    ("tlv", ContentFormat::Tlv),
    ("senml-json", ContentFormat::SenmlJson),
    ("senml-cbor", ContentFormat::SenmlCbor),
];

pub(super) fn bootstrap(
    raw: Option<&Spanned<RawBootstrap>>,
    tcp: bool,
    file: &str,
    text: &str,
) -> Result<Option<ClientBootstrapConfig>, FleetError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let at = At {
        file,
        text,
        span: raw.span(),
    };
    if tcp {
        // The client bootstraps and then registers over UDP; TCP is not wired into it yet.
        return Err(at.err(
            "bootstrap",
            "bootstrap over coap+tcp:// or coaps+tcp:// is not supported yet: use a coap:// or \
             coaps:// bootstrap server",
        ));
    }
    let r = raw.get_ref();
    let mut config = ClientBootstrapConfig::default();
    if let Some(timeout) = &r.finish_timeout {
        config.finish_timeout =
            parse_duration(timeout).map_err(|e| at.err("finish_timeout", e.to_string()))?;
        if config.finish_timeout.is_zero() {
            return Err(at.err("finish_timeout", "must be more than 0s"));
        }
    }
    if let Some(name) = &r.content_format {
        let format = FORMATS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                at.err(
                    "content_format",
                    format!("{name:?}: expected \"tlv\", \"senml-json\" or \"senml-cbor\""),
                )
            })?;
        config.preferred_format = Some(format);
    }
    Ok(Some(config))
}

/// For `check`: `Bootstrap-Request first, Finish within 93s, preferred format senml-cbor`.
pub(super) fn describe(config: &ClientBootstrapConfig) -> String {
    let mut text = format!(
        "Bootstrap-Request first, Finish within {}",
        format_duration(config.finish_timeout)
    );
    if let Some(name) = FORMATS
        .iter()
        .find(|(_, f)| Some(*f) == config.preferred_format)
        .map(|(n, _)| n)
    {
        let _ = write!(text, ", preferred format {name} (pct, LWM2M 1.1 and later)");
    }
    text
}
