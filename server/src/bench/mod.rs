//! `weft bench`: measurements a user can rerun, each printing one JSON
//! object on stdout.
//!
//! - `context` ([`context`]): retrieval and prompt assembly at cursors
//!   across a workspace, before any model runs.
//! - `keystrokes` ([`keystrokes`]): a region of a real file typed back in
//!   with realistic delays ([`trace`]), one completion request per
//!   keystroke, each superseding the last, as an editor sends them.
//! - `concurrency` ([`concurrency`]): N users completing at once, and the
//!   raw decode speed of one.
//!
//! The last two replay the same work against llama.cpp's own server
//! ([`peer`]), started by the bench with the same model and threads, so that
//! every figure comes with the peer's figure from the same run.

mod concurrency;
mod context;
mod keystrokes;
mod peer;
mod trace;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::json;
use weft_inference::llama::default_threads;
use weft_inference::{EngineConfig, FlashAttention, LlamaEngine, LoadOptions};

use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Retrieval + prompt assembly latency over cursors in a workspace.
    Context(context::ContextArgs),
    /// Completion latency while a region of a real file is typed back in,
    /// one request per keystroke; the same trace against llama-server.
    Keystrokes(Box<keystrokes::KeystrokesArgs>),
    /// Generation throughput with N concurrent users; raw decode speed;
    /// the same against llama-server, llama-batched-bench and llama-bench.
    Concurrency(Box<concurrency::ConcurrencyArgs>),
}

pub fn run(command: BenchCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Context(args) => context::run(args, config),
        BenchCommand::Keystrokes(args) => crate::cli::runtime()?.block_on(keystrokes::run(*args, config)),
        BenchCommand::Concurrency(args) => crate::cli::runtime()?.block_on(concurrency::run(*args, config)),
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// p50, p95, p99 and max of `values` (nearest rank; zeros when empty).
fn percentiles(values: &mut [f64]) -> serde_json::Value {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    json!({ "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0) })
}

/// `a / b`, or `None` where `b` is zero or either side is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The threads both sides of a comparison get: the flag, else the
/// configured count (`WEFT_N_THREADS`), else the engine's default.
fn threads(flag: Option<i32>, config: &Config) -> anyhow::Result<i32> {
    let threads = flag.or(config.engine.n_threads).unwrap_or_else(default_threads);
    anyhow::ensure!(threads >= 1, "--threads must be at least 1, not {threads}");
    Ok(threads)
}

/// The configured engine with `threads` for generation and prompts.
fn engine_config(config: &Config, threads: i32) -> EngineConfig {
    EngineConfig { n_threads: Some(threads), n_threads_batch: Some(threads), ..config.engine.clone() }
}

/// The flash attention llama.cpp's tools get (`-fa`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum PeerFlash {
    /// What Weft's engine runs with (`[engine] flash_attention`, resolved
    /// for the device): the same llama.cpp computation on both sides.
    #[default]
    Same,
    /// llama.cpp's default (`auto`: on wherever the device supports it).
    Auto,
    On,
    Off,
}

impl PeerFlash {
    /// The `-fa` value for a Weft engine configured with `engine`.
    fn arg(self, engine: &EngineConfig) -> &'static str {
        let name = |setting| match setting {
            FlashAttention::Auto => "auto",
            FlashAttention::On => "on",
            FlashAttention::Off => "off",
        };
        match self {
            PeerFlash::Same => name(engine.flash_attention.resolve(engine.n_gpu_layers)),
            PeerFlash::Auto => "auto",
            PeerFlash::On => "on",
            PeerFlash::Off => "off",
        }
    }
}

/// Loads the model (off the async threads) and starts its engine.
async fn start_engine(config: &Config, model: &Path, engine: EngineConfig) -> anyhow::Result<LlamaEngine> {
    let load = LoadOptions {
        vocab_only: false,
        n_gpu_layers: config.engine.n_gpu_layers,
        format: config.model.format,
        fim_order: config.model.fim_order,
    };
    let model = model.to_owned();
    tokio::task::spawn_blocking(move || LlamaEngine::start(&model, &load, &engine)).await?
}

/// A small seeded random generator (SplitMix64): traces and synthetic
/// prompts are the same for the same seed, on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-space deviation.
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = percentiles(&mut values);
        assert_eq!(p["p50"], 51.0);
        assert_eq!(p["p95"], 95.0);
        assert_eq!(p["max"], 100.0);
        assert_eq!(percentiles(&mut [])["p50"], 0.0);
    }

    #[test]
    fn the_generator_is_deterministic_and_roughly_uniform() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(xs.iter().zip((0..10_000).map(|_| b.unit())).all(|(x, y)| *x == y));
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let mut c = Rng::new(8);
        assert_ne!(Rng::new(7).next_u64(), c.next_u64());
    }

    #[test]
    fn log_normal_samples_center_on_the_median() {
        let mut rng = Rng::new(3);
        let mut xs: Vec<f64> = (0..4001).map(|_| rng.log_normal(150.0, 0.4)).collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[2000];
        assert!((135.0..165.0).contains(&median), "{median}");
        assert!(xs.iter().all(|x| *x > 0.0));
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(2.0), Some(4.0)), Some(0.5));
        assert_eq!(ratio(Some(2.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}
