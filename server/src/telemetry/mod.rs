//! Telemetry of the `weft` binary: the LSP server's facts, turned into wire
//! events, queued, batched and uploaded to the telemetry API, with a disk
//! spool for when the API cannot be reached.
//!
//! ```text
//! weft-lsp CompletionTracker ──TelemetrySink::record──▶ TelemetryRecorder (convert, try_send)
//!        ──bounded queue──▶ sender thread ──POST /v1/events──▶ weft-telemetry-api
//!                                 └──append + fsync──▶ spool ──replay with backoff──┘
//! ```
//!
//! **Invariant:** the language server never waits for telemetry. Recording
//! converts an event and offers it to a bounded queue; a full queue drops
//! the event (and counts it). Disk and network belong to the sender thread.

pub mod config;
mod convert;
pub mod emit;
pub mod pipeline;
pub mod spool;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;
use weft_lsp::telemetry::{TelemetryData, TelemetryEvent, TelemetrySettings, TelemetrySink};
use weft_telemetry_wire::ClientInfo;

pub use config::TelemetryConfig;
use pipeline::{Pipeline, QueueHandle, Queued};

/// How long `weft lsp` keeps replaying the spool when it exits.
pub const EXIT_DRAIN: Duration = Duration::from_secs(2);

/// The LSP server's sink: converts facts to wire events and queues them.
pub struct TelemetryRecorder {
    queue: Arc<QueueHandle>,
    session_id: Uuid,
    study_arm: Option<String>,
    client: Mutex<Arc<ClientInfo>>,
}

impl TelemetryRecorder {
    fn client(&self) -> Arc<ClientInfo> {
        self.client.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl TelemetrySink for TelemetryRecorder {
    fn record(&self, event: TelemetryEvent) {
        if let TelemetryData::Client { name, version } = &event.data {
            let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
            *client = Arc::new(ClientInfo {
                editor: name.clone(),
                editor_version: version.clone().unwrap_or_default(),
                ..(**client).clone()
            });
            return;
        }
        let Some(event) = convert::to_wire(event, self.session_id, self.study_arm.as_deref()) else { return };
        if let Err(reason) = event.validate() {
            tracing::debug!("telemetry event left out: {reason}");
            return;
        }
        self.queue.try_send(Queued { client: self.client(), event });
    }
}

/// Telemetry of one `weft lsp` process.
pub struct Telemetry {
    pipeline: Pipeline,
    settings: TelemetrySettings,
    recorder: Arc<TelemetryRecorder>,
}

/// Records wire events made elsewhere (agent runs), without waiting.
pub type WireSink = Arc<dyn Fn(Vec<weft_telemetry_wire::Event>) + Send + Sync>;

impl Telemetry {
    /// Starts the pipeline when telemetry is configured; `None` when it is
    /// off.
    pub fn start(config: &TelemetryConfig) -> anyhow::Result<Option<Telemetry>> {
        if !config.enabled() {
            return Ok(None);
        }
        let pipeline = Pipeline::start(config, config.consent.code)?;
        let recorder = TelemetryRecorder {
            queue: pipeline.queue().clone(),
            session_id: Uuid::new_v4(),
            study_arm: config.study_arm.clone(),
            client: Mutex::new(Arc::new(ClientInfo {
                plugin_version: env!("CARGO_PKG_VERSION").to_owned(),
                os: std::env::consts::OS.to_owned(),
                ..ClientInfo::default()
            })),
        };
        let recorder = Arc::new(recorder);
        let settings = TelemetrySettings {
            sink: recorder.clone(),
            share_code: config.consent.code,
            ground_truth: config.consent.ground_truth,
            behaviour: config.consent.behaviour,
            snapshots: config.snapshots(),
        };
        tracing::info!(
            endpoint = config.endpoint.as_deref().unwrap_or_default(),
            spool = %config.spool_dir().display(),
            "telemetry on"
        );
        Ok(Some(Telemetry { pipeline, settings, recorder }))
    }

    /// What the LSP server records with.
    pub fn settings(&self) -> TelemetrySettings {
        self.settings.clone()
    }

    /// A sink for events that are already wire events (agent runs and their
    /// steps): validated, then queued like the server's own.
    pub fn wire_sink(&self) -> WireSink {
        let recorder = self.recorder.clone();
        Arc::new(move |events| {
            for event in events {
                if let Err(reason) = event.validate() {
                    tracing::debug!("telemetry event left out: {reason}");
                    continue;
                }
                recorder.queue.try_send(Queued { client: recorder.client(), event });
            }
        })
    }

    /// Stops: spools what is queued and replays for up to [`EXIT_DRAIN`].
    pub fn finish(self) {
        let stats = self.pipeline.finish(EXIT_DRAIN);
        tracing::info!(stats = %stats.snapshot(), "telemetry stopped");
    }
}
