//! The `[telemetry]` section of the configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Telemetry is off until both `endpoint` and `token` are set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The telemetry API's base URL, e.g. `https://telemetry.example.org`
    /// (env `WEFT_TELEMETRY_ENDPOINT`).
    pub endpoint: Option<String>,
    /// A bearer token from `POST /v1/auth/login` (env `WEFT_TELEMETRY_TOKEN`).
    pub token: Option<String>,
    pub consent: ConsentConfig,
    /// The A/B study arm this installation belongs to, sent with every
    /// request (env `WEFT_TELEMETRY_STUDY_ARM`).
    pub study_arm: Option<String>,
    /// Where events wait while the API is unreachable (env
    /// `WEFT_TELEMETRY_SPOOL_DIR`; default `$XDG_STATE_HOME/weft/telemetry-spool`).
    pub spool_dir: Option<PathBuf>,
    /// Events held in memory; beyond it new events are dropped (and counted)
    /// rather than slowing completions down.
    pub queue_capacity: usize,
    /// Events per upload (at most 1,000).
    pub batch_size: usize,
    /// A partial batch is sent after this long.
    pub flush_interval_ms: u64,
    /// Retries after a failed upload back off from 250 ms up to this.
    pub retry_max_ms: u64,
    /// When the ground-truth snapshots at nominally 30, 120, 300 and 600 s
    /// are taken (env `WEFT_TELEMETRY_GROUND_TRUTH_DELAYS_MS`, four numbers
    /// separated by commas). Shorter only for tests.
    pub ground_truth_delays_ms: [u64; 4],
}

/// What the user agrees to share, per category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentConfig {
    /// Usage telemetry at all.
    pub usage: bool,
    /// The text around the cursor with each request (env
    /// `WEFT_TELEMETRY_SHARE_CODE`).
    pub code: bool,
    /// Snapshots of the document where completions went.
    pub ground_truth: bool,
    /// Typing speed and time since the last shown/accepted completion.
    pub behaviour: bool,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig { usage: true, code: false, ground_truth: true, behaviour: true }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            endpoint: None,
            token: None,
            consent: ConsentConfig::default(),
            study_arm: None,
            spool_dir: None,
            queue_capacity: 10_000,
            batch_size: 500,
            flush_interval_ms: 2_000,
            retry_max_ms: 60_000,
            ground_truth_delays_ms: [30_000, 120_000, 300_000, 600_000],
        }
    }
}

impl TelemetryConfig {
    /// Whether events are recorded and sent.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some() && self.token.is_some() && self.consent.usage
    }

    /// `WEFT_TELEMETRY_*` overrides.
    pub fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = env("WEFT_TELEMETRY_ENDPOINT") {
            self.endpoint = Some(v);
        }
        if let Some(v) = env("WEFT_TELEMETRY_TOKEN") {
            self.token = Some(v);
        }
        if let Some(v) = env("WEFT_TELEMETRY_STUDY_ARM") {
            self.study_arm = Some(v);
        }
        if let Some(v) = env("WEFT_TELEMETRY_SPOOL_DIR") {
            self.spool_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = env("WEFT_TELEMETRY_SHARE_CODE") {
            self.consent.code = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => bail!("WEFT_TELEMETRY_SHARE_CODE={v:?} is not true or false"),
            };
        }
        if let Some(v) = env("WEFT_TELEMETRY_GROUND_TRUTH_DELAYS_MS") {
            let parsed: Result<Vec<u64>, _> = v.split(',').map(|n| n.trim().parse()).collect();
            self.ground_truth_delays_ms = match parsed.ok().and_then(|d| <[u64; 4]>::try_from(d).ok()) {
                Some(delays) => delays,
                None => bail!("WEFT_TELEMETRY_GROUND_TRUTH_DELAYS_MS={v:?} is not four numbers separated by commas"),
            };
        }
        Ok(())
    }

    /// Checks the numbers once, with messages that say what to fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=weft_telemetry_wire::MAX_BATCH_EVENTS).contains(&self.batch_size) {
            bail!(
                "[telemetry] batch_size must be 1 to {}, not {}",
                weft_telemetry_wire::MAX_BATCH_EVENTS,
                self.batch_size
            );
        }
        if self.queue_capacity == 0 {
            bail!("[telemetry] queue_capacity must be at least 1");
        }
        if self.ground_truth_delays_ms.windows(2).any(|w| w[0] > w[1]) {
            bail!("[telemetry] ground_truth_delays_ms must not decrease: {:?}", self.ground_truth_delays_ms);
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                bail!("[telemetry] endpoint must be an http:// or https:// URL, not {endpoint:?}");
            }
        }
        Ok(())
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(|| {
            dirs::state_dir()
                .or_else(dirs::cache_dir)
                .unwrap_or_else(std::env::temp_dir)
                .join("weft")
                .join("telemetry-spool")
        })
    }

    /// The snapshot schedule: nominal label and real delay.
    pub fn snapshots(&self) -> Vec<(u32, Duration)> {
        weft_telemetry_wire::SNAPSHOT_DELAYS_SECS
            .iter()
            .zip(self.ground_truth_delays_ms)
            .map(|(&label, ms)| (label, Duration::from_millis(ms)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_on_with_endpoint_and_token() {
        let mut config = TelemetryConfig::default();
        assert!(!config.enabled());
        let env = |key: &str| match key {
            "WEFT_TELEMETRY_ENDPOINT" => Some("http://127.0.0.1:8787".to_owned()),
            "WEFT_TELEMETRY_TOKEN" => Some("wft_x".to_owned()),
            "WEFT_TELEMETRY_GROUND_TRUTH_DELAYS_MS" => Some("10, 20,30,40".to_owned()),
            _ => None,
        };
        config.apply_env(&env).unwrap();
        assert!(config.enabled());
        config.validate().unwrap();
        assert_eq!(config.snapshots()[3], (600, Duration::from_millis(40)));
        config.consent.usage = false;
        assert!(!config.enabled());
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let mut config = TelemetryConfig::default();
        let env = |key: &str| (key == "WEFT_TELEMETRY_GROUND_TRUTH_DELAYS_MS").then(|| "1,2".to_owned());
        let err = config.apply_env(&env).unwrap_err().to_string();
        assert!(err.contains("four numbers"), "{err}");
        config.batch_size = 5000;
        assert!(config.validate().unwrap_err().to_string().contains("batch_size"));
        config.batch_size = 10;
        config.endpoint = Some("localhost:8787".into());
        assert!(config.validate().unwrap_err().to_string().contains("http://"));
    }
}
