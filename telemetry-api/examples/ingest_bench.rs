//! Ingest throughput benchmark.
//!
//! Creates a scratch database on the server named by `DATABASE_URL`,
//! applies the migrations, starts the service on a free local port, and
//! posts `--batches` batches of `--batch-size` events (realistic completion
//! lifecycles) from `--clients` concurrent HTTP/1.1 connections. Prints one
//! JSON object with events/s and batch latency percentiles, then drops the
//! scratch database.
//!
//! ```text
//! DATABASE_URL=$(telemetry-api/scripts/test-db.sh) \
//!   cargo run --release -p weft-telemetry-api --example ingest_bench -- --batches 200 --clients 4
//! ```

// The benchmark's result is what it prints.
#![allow(clippy::print_stdout)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;
use weft_telemetry_api::auth::{Role, password, token};
use weft_telemetry_api::{AppState, ServiceConfig, db};
use weft_telemetry_wire::{Batch, ClientInfo, Event, example};

struct Args {
    batches: usize,
    clients: usize,
    batch_size: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { batches: 100, clients: 4, batch_size: 1000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--batches" => args.batches = value()?,
            "--clients" => args.clients = value()?,
            "--batch-size" => args.batch_size = value()?,
            other => bail!("unknown flag {other} (use --batches, --clients, --batch-size)"),
        }
    }
    if args.batch_size == 0 || args.batch_size > weft_telemetry_wire::MAX_BATCH_EVENTS {
        bail!("--batch-size must be 1 to 1000");
    }
    Ok(args)
}

/// One batch body of `size` events: whole completion lifecycles (request,
/// generation, shown, accepted, four ground-truth snapshots), cut to size.
fn batch_body(size: usize) -> anyhow::Result<Bytes> {
    let now = OffsetDateTime::now_utc();
    let models = ["qwen2.5-coder-1.5b", "qwen2.5-coder-7b", "starcoder2-3b"];
    let languages = ["rust", "python", "typescript", "go"];
    let mut events: Vec<Event> = Vec::with_capacity(size + 8);
    let mut i = 0;
    while events.len() < size {
        let model = models[i % models.len()];
        let language = languages[i % languages.len()];
        events.extend(example::accepted_completion(model, language, now));
        i += 1;
    }
    events.truncate(size);
    let batch = Batch {
        client: ClientInfo {
            editor: "vscode".to_owned(),
            editor_version: "1.99.0".to_owned(),
            plugin_version: "0.1.0".to_owned(),
            os: "linux".to_owned(),
        },
        consent: None,
        events,
    };
    Ok(Bytes::from(serde_json::to_vec(&batch)?))
}

/// Posts batches from the shared queue over one keep-alive connection;
/// returns (events accepted, per-batch latencies).
async fn client(
    addr: std::net::SocketAddr,
    token: Arc<str>,
    bodies: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut accepted = 0;
    let mut latencies = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = bodies.get(i) else { break };
        let request = Request::post("/v1/events")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(body.clone()))?;
        let start = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        latencies.push(start.elapsed());
        if !status.is_success() {
            bail!("batch {i}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let answer: weft_telemetry_wire::IngestResponse = serde_json::from_slice(&bytes)?;
        accepted += u64::from(answer.accepted);
    }
    Ok((accepted, latencies))
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let base = PgConnectOptions::from_str(&url)?;
    let scratch = format!("weft_ingest_bench_{}", std::process::id());
    let mut admin = base.connect().await?;
    sqlx::query(&format!("drop database if exists {scratch}")).execute(&mut admin).await?;
    sqlx::query(&format!("create database {scratch}")).execute(&mut admin).await?;

    let result = run(&args, base.clone().database(&scratch)).await;

    sqlx::query(&format!("drop database if exists {scratch} with (force)")).execute(&mut admin).await?;
    admin.close().await?;
    let report = result?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run(args: &Args, options: PgConnectOptions) -> anyhow::Result<serde_json::Value> {
    let pool = PgPoolOptions::new().max_connections(args.clients as u32 + 4).connect_with(options).await?;
    db::MIGRATOR.run(&pool).await?;

    let hash = password::hash("benchmark password".to_owned()).await?;
    let user = db::users::create(&pool, "bench@example.com", &hash, Role::User).await?.context("bench user exists")?;
    let new = token::generate()?;
    let expires = OffsetDateTime::now_utc() + time::Duration::hours(1);
    db::sessions::create(&pool, user.id, &new.hash, "bench", expires).await?;
    let token: Arc<str> = new.token.into();

    let state = AppState::new(pool.clone(), ServiceConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(weft_telemetry_api::serve(listener, state, async {
        let _ = stopped.await;
    }));

    // Bodies are built up front so that only the service is timed.
    let warmup = Arc::new(vec![batch_body(args.batch_size)?, batch_body(args.batch_size)?]);
    let bodies = Arc::new((0..args.batches).map(|_| batch_body(args.batch_size)).collect::<anyhow::Result<Vec<_>>>()?);
    let body_bytes: usize = bodies.iter().map(Bytes::len).sum();
    client(addr, token.clone(), warmup, Arc::new(AtomicUsize::new(0))).await?;

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> =
        (0..args.clients).map(|_| tokio::spawn(client(addr, token.clone(), bodies.clone(), next.clone()))).collect();
    let mut accepted = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, l) = task.await??;
        accepted += n;
        latencies.extend(l);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();

    let _ = stop.send(());
    server.await??;
    let stored: i64 = sqlx::query_scalar("select count(*) from events").fetch_one(&pool).await?;
    pool.close().await;

    let expected = (args.batches * args.batch_size) as u64;
    if accepted != expected {
        bail!("accepted {accepted} events, expected {expected}");
    }
    Ok(serde_json::json!({
        "batches": args.batches,
        "batch_size": args.batch_size,
        "clients": args.clients,
        "events": accepted,
        "stored_events": stored,
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "events_per_sec": (accepted as f64 / elapsed).round(),
        "mib_per_sec": ((body_bytes as f64 / elapsed / 1048576.0) * 10.0).round() / 10.0,
        "batch_latency_ms": {
            "p50": percentile_ms(&latencies, 0.50),
            "p95": percentile_ms(&latencies, 0.95),
            "p99": percentile_ms(&latencies, 0.99),
        },
    }))
}
