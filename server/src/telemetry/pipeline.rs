//! The upload pipeline: a bounded queue, a sender thread that batches and
//! posts, and the disk spool behind it.
//!
//! The sender runs on a thread of its own (with a single-threaded async
//! runtime), so that its fsyncs and network waits never take a thread from
//! the language server. While the API answers, batches go straight to it.
//! When an upload fails (no connection, a timeout, a 5xx or 429, or an
//! auth error), the batch is appended to the spool and so is every later
//! batch, until a replay of the whole spool succeeds; replays are retried
//! with exponential backoff, and run on start too. Events keep the ids they
//! were given when recorded, so a batch sent twice is stored once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;
use weft_telemetry_wire::{Batch, ClientInfo, ConsentFlags, Event, IngestResponse};

use super::config::TelemetryConfig;
use super::spool::{Spool, SpooledEvent};

const FIRST_RETRY: Duration = Duration::from_millis(250);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Counters of a pipeline, readable while it runs.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Stored by the API now.
    pub accepted: AtomicU64,
    /// Stored before (a batch sent again).
    pub duplicates: AtomicU64,
    /// Refused by the API as invalid; not retried.
    pub rejected: AtomicU64,
    /// Written to the spool.
    pub spooled: AtomicU64,
    /// Dropped because the in-memory queue was full.
    pub dropped: AtomicU64,
    /// Uploads that failed and will be retried.
    pub failed_uploads: AtomicU64,
}

impl PipelineStats {
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "accepted": get(&self.accepted),
            "duplicates": get(&self.duplicates),
            "rejected": get(&self.rejected),
            "spooled": get(&self.spooled),
            "dropped": get(&self.dropped),
            "failed_uploads": get(&self.failed_uploads),
        })
    }
}

/// One queued event with the client that recorded it.
pub struct Queued {
    pub client: Arc<ClientInfo>,
    pub event: Event,
}

/// The queue's sending end, shared by the pipeline and its sinks; taking
/// it out closes the queue.
#[derive(Default)]
pub struct QueueHandle {
    tx: std::sync::Mutex<Option<mpsc::Sender<Queued>>>,
    stats: Arc<PipelineStats>,
}

impl QueueHandle {
    fn sender(&self) -> Option<mpsc::Sender<Queued>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues an event without waiting; a full (or closed) queue drops it,
    /// counted.
    pub fn try_send(&self, queued: Queued) {
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.try_send(queued).is_ok(),
            None => false,
        };
        if !sent {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the telemetry queue is full or closed; events are dropped");
            }
        }
    }

    /// Queues an event, waiting for room (for bulk senders, never the
    /// language server).
    pub async fn send(&self, queued: Queued) {
        if let Some(tx) = self.sender() {
            let _ = tx.send(queued).await;
        }
    }
}

/// A running pipeline.
pub struct Pipeline {
    queue: Arc<QueueHandle>,
    /// Tells the sender how long it may keep retrying after the queue closes.
    drain_for: Arc<std::sync::Mutex<Duration>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Pipeline {
    /// Opens the spool and starts the sender thread; the spool is replayed
    /// at once.
    pub fn start(config: &TelemetryConfig, share_code: bool) -> anyhow::Result<Pipeline> {
        config.validate()?;
        let endpoint = config.endpoint.clone().context("[telemetry] endpoint is not set")?;
        let token = config.token.clone().context("[telemetry] token is not set")?;
        let dir = config.spool_dir();
        let spool = Spool::open(&dir).with_context(|| format!("cannot open the telemetry spool {}", dir.display()))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the telemetry HTTP client")?;
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let stats = Arc::new(PipelineStats::default());
        let drain_for = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let (done_tx, done) = std::sync::mpsc::channel();
        let sender = Sender {
            url: format!("{}/v1/events", endpoint.trim_end_matches('/')),
            token,
            http,
            spool,
            consent: ConsentFlags { usage: Some(true), code: Some(share_code) },
            batch_size: config.batch_size,
            flush_interval: Duration::from_millis(config.flush_interval_ms),
            retry_max: Duration::from_millis(config.retry_max_ms).max(FIRST_RETRY),
            stats: stats.clone(),
            drain_for: drain_for.clone(),
        };
        std::thread::Builder::new()
            .name("weft-telemetry".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(sender.run(rx)),
                    Err(err) => tracing::error!("telemetry is off: cannot start its runtime: {err}"),
                }
                let _ = done_tx.send(());
            })
            .context("cannot start the telemetry thread")?;
        let queue = Arc::new(QueueHandle { tx: std::sync::Mutex::new(Some(tx)), stats });
        Ok(Pipeline { queue, drain_for, done })
    }

    pub fn queue(&self) -> &Arc<QueueHandle> {
        &self.queue
    }

    /// Closes the queue: the sender spools what it still holds, keeps
    /// replaying the spool for up to `drain_for`, and stops. Waits for it at
    /// most `drain_for` plus a second; whatever is not sent by then stays in
    /// the spool for the next start.
    pub fn finish(self, drain_for: Duration) -> Arc<PipelineStats> {
        *self.drain_for.lock().unwrap_or_else(|p| p.into_inner()) = drain_for;
        self.queue.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.done.recv_timeout(drain_for + Duration::from_secs(1));
        self.queue.stats.clone()
    }
}

struct Sender {
    url: String,
    token: String,
    http: reqwest::Client,
    spool: Spool,
    consent: ConsentFlags,
    batch_size: usize,
    flush_interval: Duration,
    retry_max: Duration,
    stats: Arc<PipelineStats>,
    drain_for: Arc<std::sync::Mutex<Duration>>,
}

/// Why an upload did not go through.
enum UploadError {
    /// Worth retrying: the API may answer later.
    Retry(String),
    /// The batch itself was refused; retrying will not help.
    Refused(String),
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let mut batch: Vec<SpooledEvent> = Vec::with_capacity(self.batch_size);
        let mut batch_started = Instant::now();
        let mut backoff = FIRST_RETRY;
        // When to replay the spool next; `None` while it is empty.
        let mut replay_at = match self.spool.is_empty() {
            Ok(true) => None,
            Ok(false) => Some(Instant::now()),
            Err(err) => {
                tracing::error!("cannot read the telemetry spool {}: {err}", self.spool.dir().display());
                None
            }
        };
        loop {
            let flush_at = batch_started + self.flush_interval;
            let closed = tokio::select! {
                item = rx.recv() => match item {
                    Some(q) => {
                        if batch.is_empty() {
                            batch_started = Instant::now();
                        }
                        batch.push(SpooledEvent { client: (*q.client).clone(), event: q.event });
                        while batch.len() < self.batch_size {
                            match rx.try_recv() {
                                Ok(q) => batch.push(SpooledEvent { client: (*q.client).clone(), event: q.event }),
                                Err(_) => break,
                            }
                        }
                        false
                    }
                    None => true,
                },
                () = tokio::time::sleep_until(flush_at.into()), if !batch.is_empty() => false,
                () = sleep_until_opt(replay_at) => false,
            };
            let full = batch.len() >= self.batch_size;
            let due = !batch.is_empty() && Instant::now() >= flush_at;
            if closed || full || due {
                let events = std::mem::take(&mut batch);
                if replay_at.is_some() || closed {
                    // Offline, keep the order behind what waits already; on
                    // close, make the events durable before trying the
                    // network.
                    self.spool_events(&events);
                } else if let Err(reason) = self.upload(&events).await {
                    tracing::warn!("telemetry upload failed, spooling {} events: {reason}", events.len());
                    self.spool_events(&events);
                    replay_at = Some(Instant::now() + backoff);
                }
            }
            if closed {
                break;
            }
            if replay_at.is_some_and(|at| Instant::now() >= at) {
                if self.replay().await {
                    backoff = FIRST_RETRY;
                    replay_at = None;
                } else {
                    backoff = (backoff * 2).min(self.retry_max);
                    replay_at = Some(Instant::now() + backoff);
                }
            }
        }
        // The queue is closed: everything is in the spool or sent. Replay
        // for as long as the caller allows.
        let drain_for = *self.drain_for.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + drain_for;
        let mut backoff = FIRST_RETRY;
        while !self.spool.is_empty().unwrap_or(true) {
            if self.replay().await {
                break;
            }
            let now = Instant::now();
            if now + backoff > deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry_max);
        }
    }

    fn spool_events(&mut self, events: &[SpooledEvent]) {
        match self.spool.append(events) {
            Ok(()) => {
                self.stats.spooled.fetch_add(events.len() as u64, Ordering::Relaxed);
            }
            Err(err) => tracing::error!(
                "cannot write {} telemetry events to the spool {}: {err}",
                events.len(),
                self.spool.dir().display()
            ),
        }
    }

    /// Sends every spooled segment, oldest first, deleting each once the API
    /// has answered for all its events. False at the first failure.
    async fn replay(&mut self) -> bool {
        let segments = match self.spool.segments() {
            Ok(segments) => segments,
            Err(err) => {
                tracing::error!("cannot list the telemetry spool: {err}");
                return false;
            }
        };
        for segment in segments {
            let (events, skipped) = match Spool::read(&segment) {
                Ok(read) => read,
                Err(err) => {
                    tracing::error!("cannot read telemetry spool segment {}: {err}", segment.display());
                    return false;
                }
            };
            if skipped > 0 {
                tracing::warn!(skipped, "skipped torn lines in {}", segment.display());
            }
            for chunk in events.chunks(self.batch_size) {
                if let Err(reason) = self.upload(chunk).await {
                    tracing::debug!("telemetry replay failed: {reason}");
                    return false;
                }
            }
            if let Err(err) = self.spool.remove(&segment) {
                tracing::error!("cannot remove replayed segment {}: {err}", segment.display());
                return false;
            }
        }
        tracing::info!("telemetry spool replayed");
        true
    }

    /// Posts events, one batch per run of events with the same client.
    async fn upload(&self, events: &[SpooledEvent]) -> Result<(), String> {
        let mut start = 0;
        while start < events.len() {
            let client = &events[start].client;
            let end = events[start..].iter().position(|e| &e.client != client).map_or(events.len(), |n| start + n);
            let batch = Batch {
                client: client.clone(),
                consent: Some(self.consent),
                events: events[start..end].iter().map(|e| e.event.clone()).collect(),
            };
            match self.post(&batch).await {
                Ok(()) => {}
                Err(UploadError::Retry(reason)) => {
                    self.stats.failed_uploads.fetch_add(1, Ordering::Relaxed);
                    return Err(reason);
                }
                Err(UploadError::Refused(reason)) => {
                    self.stats.rejected.fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    tracing::error!("the telemetry API refused a batch of {}: {reason}", batch.events.len());
                }
            }
            start = end;
        }
        Ok(())
    }

    async fn post(&self, batch: &Batch) -> Result<(), UploadError> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(batch)
            .send()
            .await
            .map_err(|err| UploadError::Retry(format!("{err:#}")))?;
        let status = response.status();
        if status.is_success() {
            let answer: IngestResponse =
                response.json().await.map_err(|err| UploadError::Retry(format!("unreadable answer: {err}")))?;
            self.stats.accepted.fetch_add(u64::from(answer.accepted), Ordering::Relaxed);
            self.stats.duplicates.fetch_add(u64::from(answer.duplicates), Ordering::Relaxed);
            if answer.rejected > 0 {
                self.stats.rejected.fetch_add(u64::from(answer.rejected), Ordering::Relaxed);
                let reasons: Vec<&str> = answer.results.iter().filter_map(|r| r.reason.as_deref()).take(3).collect();
                tracing::warn!(rejected = answer.rejected, ?reasons, "the telemetry API rejected events");
            }
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let reason = format!("{status}: {}", body.trim());
        // Bad batches are final; everything else (5xx, 429, an expired token,
        // consent switched off on the account) may change.
        if matches!(status.as_u16(), 400 | 413 | 422) {
            Err(UploadError::Refused(reason))
        } else {
            Err(UploadError::Retry(reason))
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
