//! `weft telemetry emit`: synthetic completion events through the same
//! queue, sender and spool as `weft lsp`, for load and fault tests of the
//! pipeline against a real telemetry API.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use time::OffsetDateTime;
use weft_telemetry_wire::{ClientInfo, Event, example};

use super::TelemetryConfig;
use super::pipeline::{Pipeline, Queued};
use super::spool::Spool;

#[derive(clap::Subcommand, Debug)]
pub enum TelemetryCommand {
    /// Send synthetic completion events through the telemetry pipeline
    /// (queue, batches, spool, retries) to the configured API; prints the
    /// pipeline's counters as JSON. Exit code 1 if events are left in the
    /// spool at the end.
    Emit(EmitArgs),
}

#[derive(clap::Args, Debug)]
pub struct EmitArgs {
    /// Events to send.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Events per second at most (0: as fast as the queue takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Write the id of every event to this file, one per line.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// Keep replaying the spool for up to this long after the last event.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
}

pub async fn run(command: TelemetryCommand, config: &TelemetryConfig) -> anyhow::Result<ExitCode> {
    let TelemetryCommand::Emit(args) = command;
    if !config.enabled() {
        bail!(
            "telemetry is off: set [telemetry] endpoint and token (or WEFT_TELEMETRY_ENDPOINT and WEFT_TELEMETRY_TOKEN)"
        );
    }
    let events = synthetic_events(args.count);
    if let Some(path) = &args.ids {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        );
        for event in &events {
            writeln!(file, "{}", event.id)?;
        }
        file.flush()?;
    }
    let pipeline = Pipeline::start(config, config.consent.code)?;
    let client = Arc::new(ClientInfo {
        editor: "weft-telemetry-emit".to_owned(),
        editor_version: env!("CARGO_PKG_VERSION").to_owned(),
        plugin_version: env!("CARGO_PKG_VERSION").to_owned(),
        os: std::env::consts::OS.to_owned(),
    });
    let start = Instant::now();
    let queue = pipeline.queue().clone();
    for (i, event) in events.into_iter().enumerate() {
        if args.rate > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / args.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        queue.send(Queued { client: client.clone(), event }).await;
    }
    let queued_secs = start.elapsed().as_secs_f64();
    let drain = Duration::from_secs(args.drain_secs);
    let stats = tokio::task::spawn_blocking(move || pipeline.finish(drain)).await?;
    let left = Spool::open(&config.spool_dir())?
        .segments()?
        .iter()
        .map(|segment| Spool::read(segment).map(|(events, _)| events.len()))
        .sum::<std::io::Result<usize>>()?;
    let mut report = stats.snapshot();
    report["events"] = args.count.into();
    report["left_in_spool"] = left.into();
    report["queued_secs"] = ((queued_secs * 1000.0).round() / 1000.0).into();
    report["total_secs"] = ((start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0).into();
    #[allow(clippy::print_stdout)] // The report is the command's result.
    {
        println!("{report}");
    }
    Ok(if left == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Whole completion lifecycles (request, generation, shown, accepted,
/// ground truth), cut to `count` events, each with a fresh id.
fn synthetic_events(count: usize) -> Vec<Event> {
    let models = ["smollm2-135m", "qwen2.5-coder-1.5b"];
    let languages = ["rust", "python", "typescript"];
    let now = OffsetDateTime::now_utc();
    let mut events = Vec::with_capacity(count + 8);
    let mut i = 0;
    while events.len() < count {
        events.extend(example::accepted_completion(models[i % models.len()], languages[i % languages.len()], now));
        i += 1;
    }
    events.truncate(count);
    events
}
