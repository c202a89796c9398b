//! `serve`'s firmware flags: an image served over Block2 (`--firmware`) and a campaign that
//! hands it to the registered devices (`--campaign-*`, as the fleet file's `[[campaign]]`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse::parse_positive_duration;
use super::{Failure, bad_input};
use crate::report::FirmwareCampaign;
use crate::server::{CampaignConfig, CampaignMode, CampaignStats, Firmware, ServerConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum ModeArg {
    Pull,
    Push,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Embedded server load")]
pub(super) struct CampaignArgs {
    /// Serve this image at coap://<server>/fw/<file name> with Block2 (RFC 7959).
    #[arg(long, value_name = "FILE")]
    pub firmware: Option<PathBuf>,
    /// Run a campaign with --firmware: the version /3/0/3 must read after the update.
    #[arg(long, value_name = "VERSION", requires = "firmware")]
    pub campaign_version: Option<String>,
    /// Share of the registered devices with object 5 that take part.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 1.0,
        requires = "campaign_version",
        value_parser = super::parse::parse_share
    )]
    pub campaign_share: f64,
    /// When the campaign starts, after the server's first datagram.
    #[arg(long, value_name = "DELAY", default_value = "30s", value_parser = super::parse::parse_duration_arg, requires = "campaign_version")]
    pub campaign_start: Duration,
    /// pull: write the Package URI (/5/0/1); push: Block1-write the image into /5/0/0.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "pull",
        requires = "campaign_version"
    )]
    pub campaign_mode: ModeArg,
    /// Devices downloading at once at most (0: no limit).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "campaign_version",
        value_parser = super::parse::parse_whole_usize
    )]
    pub campaign_max_concurrent: usize,
    /// A device that makes no progress for this long fails as `timeout`.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_positive_duration, requires = "campaign_version")]
    pub campaign_timeout: Duration,
    /// Block size of a push (16 to 1024).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 512,
        requires = "campaign_version",
        value_parser = super::parse::parse_whole_u16
    )]
    pub campaign_block_size: u16,
}

impl CampaignArgs {
    /// Adds the image (and the campaign) to `config`.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), Failure> {
        let Some(path) = &self.firmware else {
            return Ok(());
        };
        let bytes = std::fs::read(path)
            .map_err(|e| bad_input(format!("--firmware {}: {e}", path.display())))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| Firmware::is_valid_name(n))
            .ok_or_else(|| {
                bad_input(format!(
                    "--firmware {}: name the file with letters, digits, '.', '-', '_' only \
                     (it goes into the URI)",
                    path.display()
                ))
            })?;
        let firmware = Firmware::new(name, Arc::from(bytes));
        let Some(version) = &self.campaign_version else {
            config.firmware.push(firmware);
            return Ok(());
        };
        if !(self.campaign_share > 0.0 && self.campaign_share <= 1.0) {
            return Err(bad_input(format!(
                "--campaign-share {}: a share of the devices, above 0 and at most 1",
                self.campaign_share
            )));
        }
        if crate::coap::block::szx_for(self.campaign_block_size).is_err() {
            return Err(bad_input(format!(
                "--campaign-block-size {}: 16, 32, 64, 128, 256, 512 or 1024",
                self.campaign_block_size
            )));
        }
        config.campaigns.push(CampaignConfig {
            share: self.campaign_share,
            start: self.campaign_start,
            mode: match self.campaign_mode {
                ModeArg::Pull => CampaignMode::Pull,
                ModeArg::Push => CampaignMode::Push,
            },
            max_concurrent: self.campaign_max_concurrent,
            firmware,
            version: Some(version.as_str().into()),
            timeout: self.campaign_timeout,
            block_size: self.campaign_block_size,
        });
        Ok(())
    }

    /// What `serve` says it does with them.
    pub fn describe(&self) -> Option<String> {
        let path = self.firmware.as_ref()?;
        let name = path.file_name()?.to_string_lossy();
        Some(match &self.campaign_version {
            None => format!("serving /fw/{name}"),
            Some(version) => format!(
                "campaign to {version}: {} to {}% of the devices with object 5, {} at once, \
                 from {}",
                match self.campaign_mode {
                    ModeArg::Pull => "pull",
                    ModeArg::Push => "push",
                },
                self.campaign_share * 100.0,
                self.campaign_max_concurrent,
                crate::fleet::format_duration(self.campaign_start)
            ),
        })
    }
}

/// The campaigns' counts as `--json` writes them.
pub(super) fn report(stats: &CampaignStats) -> FirmwareCampaign {
    FirmwareCampaign {
        targeted: stats.targeted,
        waiting: stats.waiting,
        started: stats.started,
        downloading: stats.downloading,
        downloaded: stats.downloaded,
        updated: stats.updated,
        failed: stats.failed,
        failures: stats
            .failures()
            .map(|(reason, n)| (reason.name().to_string(), n))
            .collect(),
        download_time_mean_us: stats.download_time.mean_us(),
        download_time_max_us: stats.download_time.max_us,
        update_time_mean_us: stats.update_time.mean_us(),
        update_time_max_us: stats.update_time.max_us,
        blocks_served: stats.blocks_served,
        bytes_served: stats.bytes_served,
    }
}

/// The end-of-run line: outcomes and times.
pub(super) fn summary_line(stats: &CampaignStats) -> String {
    let ms = |us: u64| format!("{:.1}s", us as f64 / 1e6);
    format!(
        "firmware {stats}; download mean {} max {}, update mean {} max {}",
        ms(stats.download_time.mean_us()),
        ms(stats.download_time.max_us),
        ms(stats.update_time.mean_us()),
        ms(stats.update_time.max_us)
    )
}
