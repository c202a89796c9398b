//! `[[campaign]]`: the embedded server's firmware campaigns, checked, with their images read
//! (a file, relative to the fleet file) or generated (`size`).

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::RawCampaign;
use super::span::At;
use super::{FleetError, parse_duration};
use crate::server::{CampaignConfig, CampaignMode, Firmware};

/// Generated images past this are certainly a typo.
const MAX_IMAGE: u64 = 64 << 20;

/// The campaigns; refused beside an external server (`external`), which runs its own.
pub(super) fn campaigns(
    raw: &[Spanned<RawCampaign>],
    external: bool,
    file: &str,
    text: &str,
) -> Result<Vec<CampaignConfig>, FleetError> {
    raw.iter()
        .map(|c| {
            let at = At {
                file,
                text,
                span: c.span(),
            };
            if external {
                return Err(at.err(
                    "campaign",
                    "campaigns are run by the embedded server: remove [server] (or --server)",
                ));
            }
            campaign(c.get_ref(), file, &at)
        })
        .collect()
}

fn campaign(raw: &RawCampaign, file: &str, at: &At) -> Result<CampaignConfig, FleetError> {
    let share = raw.share.unwrap_or(1.0);
    if !(share > 0.0 && share <= 1.0) {
        return Err(at.err(
            "share",
            format!("{share}: a share of the devices, above 0 and at most 1"),
        ));
    }
    let duration = |field: &str, value: Option<&str>, default: Duration| {
        value.map_or(Ok(default), |text| {
            parse_duration(text).map_err(|e| at.err(field, e.to_string()))
        })
    };
    let start = duration("start", raw.start.as_deref(), Duration::ZERO)?;
    let timeout = duration("timeout", raw.timeout.as_deref(), Duration::from_secs(300))?;
    if timeout.is_zero() {
        return Err(at.err("timeout", "must be more than 0s"));
    }
    let mode = match raw.mode.as_deref().unwrap_or("pull") {
        "pull" => CampaignMode::Pull,
        "push" => CampaignMode::Push,
        other => return Err(at.err("mode", format!("{other:?}: \"pull\" or \"push\""))),
    };
    let block_size = raw.block_size.unwrap_or(512);
    if crate::coap::block::szx_for(block_size).is_err() {
        return Err(at.err(
            "block_size",
            format!("{block_size}: 16, 32, 64, 128, 256, 512 or 1024"),
        ));
    }
    let version = raw.version.as_deref().map(str::trim);
    if version.is_some_and(str::is_empty) {
        return Err(at.err(
            "version",
            "the firmware version /3/0/3 reads after the update",
        ));
    }
    let firmware = match (&raw.image, &raw.size) {
        (Some(path), None) => {
            // Relative to the fleet file, so a fleet and its image move together.
            let dir = FsPath::new(file).parent().unwrap_or(FsPath::new(""));
            let path = dir.join(path);
            let bytes = std::fs::read(&path)
                .map_err(|e| at.err("image", format!("cannot read {}: {e}", path.display())))?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| Firmware::is_valid_name(n))
                .ok_or_else(|| {
                    at.err(
                        "image",
                        "name the file with letters, digits, '.', '-', '_' only",
                    )
                })?;
            Firmware::new(name, Arc::from(bytes))
        }
        (None, Some(size)) => {
            let bytes = parse_size(size).map_err(|m| at.err("size", m))?;
            let name = format!("firmware-{}.bin", version.unwrap_or("new"));
            if !Firmware::is_valid_name(&name) {
                return Err(at.err("version", "letters, digits, '.', '-', '_' only"));
            }
            Firmware::generated(&name, bytes)
        }
        _ => {
            return Err(at.err(
                "image",
                "give one of `image` (a file) or `size` (a generated image, e.g. \"4KiB\")",
            ));
        }
    };
    Ok(CampaignConfig {
        share,
        start,
        mode,
        max_concurrent: usize::try_from(raw.max_concurrent.unwrap_or(0)).unwrap_or(usize::MAX),
        firmware,
        version: version.map(Into::into),
        timeout,
        block_size,
    })
}

/// `4096`, `4KiB`, `1MiB`, `512B`: bytes, 1..=64 MiB.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_bytes = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        other => return Err(format!("{other:?}: a size in B, KiB or MiB, e.g. \"4KiB\"")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: a size like \"4KiB\" or \"256KiB\""))?;
    let bytes = n.saturating_mul(unit_bytes);
    if bytes == 0 || bytes > MAX_IMAGE {
        return Err(format!("{text}: from 1 byte to 64MiB"));
    }
    usize::try_from(bytes).map_err(|_| format!("{text}: too large"))
}

#[cfg(test)]
mod tests {
    use crate::fleet::{Fleet, FleetError};
    use crate::server::CampaignMode;
    use crate::toml_span::Located;

    fn fleet_text(campaign: &str) -> String {
        format!(
            "[[population]]\nname = \"a\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
             [load]\nclients = 4\nrate = 1\nhold = \"0s\"\n\n[[campaign]]\n{campaign}"
        )
    }

    fn fleet(campaign: &str) -> Result<Fleet, FleetError> {
        Fleet::from_toml(&fleet_text(campaign), "t.toml")
    }

    fn error(campaign: &str) -> (usize, String, String) {
        crate::fleet::tests::located(fleet(campaign))
    }

    #[test]
    fn a_campaign_with_a_generated_image() {
        let f = fleet(
            "share = 0.5\nstart = \"20s\"\nmode = \"push\"\nmax_concurrent = 10\n\
                       size = \"4KiB\"\nversion = \"2.0\"\n",
        )
        .unwrap();
        let c = &f.campaigns[0];
        assert!((c.share - 0.5).abs() < 1e-9);
        assert_eq!(c.start, std::time::Duration::from_secs(20));
        assert_eq!(c.mode, CampaignMode::Push);
        assert_eq!(c.max_concurrent, 10);
        assert_eq!(c.firmware.image().len(), 4096);
        assert_eq!(c.firmware.name(), "firmware-2.0.bin");
        assert_eq!(c.version.as_deref(), Some("2.0"));
    }

    #[test]
    fn bad_campaigns_are_refused_at_their_line() {
        let (line, field, _) = error("size = \"4KiB\"\nversion = \"2\"\nshare = 1.5\n");
        assert_eq!((line, field.as_str()), (13, "share"));
        let (_, field, message) = error("version = \"2\"\n");
        assert_eq!(field, "image");
        assert!(message.contains("size"), "{message}");
        let (_, field, _) = error("size = \"4 parsecs\"\nversion = \"2\"\n");
        assert_eq!(field, "size");
        let (_, field, _) = error("size = \"4KiB\"\nversion = \"2\"\nmode = \"shove\"\n");
        assert_eq!(field, "mode");
        let text = "[server]\nuri = \"coap://127.0.0.1:5683\"\n";
        let Err(FleetError::Invalid(Located { field, .. })) = Fleet::from_toml(
            &format!("{text}{}", fleet_text("size = \"4KiB\"\nversion = \"2\"\n")),
            "t.toml",
        ) else {
            panic!("a campaign beside [server] is refused");
        };
        assert_eq!(field, "campaign");
        let (_, field, message) = error("image = \"nowhere.bin\"\nversion = \"2\"\n");
        assert_eq!(field, "image");
        assert!(message.contains("cannot read"), "{message}");
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4096"), Ok(4096));
        assert_eq!(super::parse_size("4KiB"), Ok(4096));
        assert_eq!(super::parse_size("1MiB"), Ok(1 << 20));
        assert!(super::parse_size("0").is_err());
        assert!(super::parse_size("65MiB").is_err());
    }
}
