//! `weft bench concurrency`: generation throughput with N users at once.
//!
//! For each N, N requests with distinct synthetic prompts of about
//! `--prompt-tokens` tokens go out together, each generating exactly
//! `--gen-tokens` tokens (`ignore_eos`), on an engine with N slots. The
//! figures: end-to-end throughput (all generated tokens over the wall time
//! from sending to the last answer, prefill included) and generation
//! throughput, which leaves prefill out: each request's decode phase is
//! the interval of its `decode_ms` ending at its answer, and the generated
//! tokens are divided by the time during which at least one request was in
//! its decode phase (the union of the intervals). Requests decoded one after
//! another give the speed of one sequence; requests decoded together give
//! the batch's speed.
//!
//! The peer: `llama-server -np N` gets the same prompts as token ids on
//! `/completion` (`predicted_ms` is its decode phase), and, given its path,
//! `llama-batched-bench -npp P -ntg G -npl N`, run next to Weft's
//! measurement of each N, prints the reference figure of llama.cpp
//! batching alone (its `S_TG t/s`). `--decode` adds one user's
//! raw decode speed, against `llama-bench -p 0 -n T`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use weft_inference::{CancellationToken, CompletionRequest, EngineConfig, Language, LlamaEngine};

use super::keystrokes::{PromptBuilder, bench_request, peer_generation};
use super::peer::{self, PeerOptions, PeerServer};
use super::{PeerFlash, Rng, engine_config, percentiles, print_json, ratio, start_engine, threads};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct ConcurrencyArgs {
    /// GGUF model file or registry name.
    #[arg(long)]
    model: Option<String>,
    /// Numbers of concurrent users, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    users: Vec<usize>,
    /// Prompt tokens per request (about: prompts end at a line end).
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// CPU threads of every side (default: WEFT_N_THREADS or the config).
    #[arg(long)]
    threads: Option<i32>,
    /// Seed of the synthetic prompts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// llama-server binary: the same requests against it, `-np N`.
    #[arg(long)]
    llama_server: Option<PathBuf>,
    /// llama-batched-bench binary, for llama.cpp's own batched figure.
    #[arg(long)]
    llama_batched_bench: Option<PathBuf>,
    /// Also measure one user's raw decode speed.
    #[arg(long)]
    decode: bool,
    /// Tokens generated in the decode measurement.
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Context already in the KV cache when the decode measurement starts
    /// (its prompt's length; llama-bench's `-d`): attention's cost grows
    /// with it, and a completion decodes after a window of the file.
    #[arg(long, default_value_t = 0)]
    decode_depth: usize,
    /// Turns of each side in the decode measurement.
    #[arg(long, default_value_t = 6)]
    decode_rounds: usize,
    /// llama-bench binary, for the decode measurement's reference.
    #[arg(long)]
    llama_bench: Option<PathBuf>,
    /// Skip every llama.cpp tool even where paths are given.
    #[arg(long)]
    no_peer: bool,
    /// Flash attention of llama.cpp's side: `same` as Weft's engine, or
    /// llama.cpp's `auto`, `on`, `off`.
    #[arg(long, value_enum, default_value_t = PeerFlash::Same)]
    peer_flash_attention: PeerFlash,
}

/// One request's timings on the client's clock (milliseconds since all
/// requests were sent) and the server's.
#[derive(Clone, Copy, Debug, Default)]
struct Finished {
    end_ms: f64,
    prefill_ms: f64,
    decode_ms: f64,
    prompt_tokens: usize,
    generated_tokens: usize,
}

pub async fn run(args: ConcurrencyArgs, config: Config) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.users.is_empty(), "--users needs at least one number");
    anyhow::ensure!(args.users.iter().all(|&n| n >= 1), "--users takes numbers from 1 up, not {:?}", args.users);
    anyhow::ensure!(args.prompt_tokens >= 1, "--prompt-tokens must be at least 1");
    anyhow::ensure!(args.gen_tokens >= 1, "--gen-tokens must be at least 1");
    anyhow::ensure!(args.decode_tokens >= 2, "--decode-tokens must be at least 2");
    let threads = threads(args.threads, &config)?;
    let model_path = config.model_file(args.model.as_deref())?;
    let peer_flash = args.peer_flash_attention.arg(&config.engine);
    let tool = |path: &Option<PathBuf>| path.clone().filter(|_| !args.no_peer);
    let (prompt_tokens, gen_tokens) = (args.prompt_tokens, args.gen_tokens);
    // Room for one request in a slot: the prompt may end a line past its
    // target.
    let per_request = (prompt_tokens + gen_tokens + 64) as u32;
    let n_ctx = config.engine.n_ctx.max(per_request);

    let batched_tool = tool(&args.llama_batched_bench);
    let mut runs = Vec::new();
    let mut model_name = String::new();
    for &users in &args.users {
        let mut settings = engine_config(&config, threads);
        settings.slots = users;
        settings.queue_capacity = settings.queue_capacity.max(2 * users);
        settings.n_ctx = n_ctx;
        settings.kv_size = Some((2 * n_ctx).max(users as u32 * per_request));
        settings.budget.prefix_tokens = settings.budget.prefix_tokens.max(prompt_tokens + 32);
        let engine = start_engine(&config, &model_path, settings.clone()).await?;
        model_name = engine.info().name.clone();
        let builder = builder(&engine, &settings, gen_tokens);
        let requests: Vec<CompletionRequest> = (0..users)
            .map(|user| synthetic_request(&builder, args.seed, user, prompt_tokens, gen_tokens))
            .collect::<anyhow::Result<_>>()?;
        let warm_up = synthetic_request(&builder, args.seed ^ 0xFFFF, users, 16, 4)?;
        let bodies: Vec<serde_json::Value> =
            requests.iter().map(|request| peer_body(&builder, request, gen_tokens)).collect::<anyhow::Result<_>>()?;
        let warm_up_body = peer_body(&builder, &warm_up, 4)?;

        engine.complete(warm_up, CancellationToken::new()).await.context("the warm-up request failed")?;
        // llama-batched-bench runs for this N right before or after Weft,
        // in turns: seconds apart rather than minutes, on a machine whose
        // speed drifts.
        let batched_first = runs.len() % 2 == 1;
        let run_batched =
            || batched_bench(&args, batched_tool.as_deref(), &model_path, threads, &config, peer_flash, users);
        let mut batched = if batched_first { run_batched().await? } else { None };
        let weft = measure_weft(&engine, &requests).await;
        drop(engine);
        if !batched_first {
            batched = run_batched().await?;
        }

        let peer = match tool(&args.llama_server) {
            None => None,
            Some(binary) => {
                let options = PeerOptions {
                    binary,
                    model: model_path.clone(),
                    threads,
                    ctx: users as u32 * per_request,
                    parallel: users,
                    n_gpu_layers: config.engine.n_gpu_layers,
                    flash_attention: peer_flash,
                };
                let server = Arc::new(PeerServer::start(&options).await?);
                server
                    .complete("/completion", &warm_up_body)
                    .await
                    .context("the warm-up request to llama-server failed")?;
                let finished = measure_peer(&server, &bodies).await;
                Some((finished, server.command.clone()))
            }
        };
        runs.push((users, weft, peer, batched));
    }

    let runs: Vec<serde_json::Value> = runs
        .into_iter()
        .map(|(users, weft, peer, batched)| {
            let weft = Throughput::of(&weft);
            let peer_figures = peer.as_ref().map(|(finished, _)| Throughput::of(finished));
            json!({
                "users": users,
                "weft": weft.json,
                "peer": peer.as_ref().zip(peer_figures.as_ref()).map(|((_, command), figures)| {
                    let mut value = figures.json.clone();
                    value["command"] = json!(command);
                    value
                }),
                "batched_bench": batched.as_ref().map(|(r, command)| json!({
                    "s_tg_tok_s": r.s_tg, "s_pp_tok_s": r.s_pp, "t_tg_s": r.t_tg_s, "t_pp_s": r.t_pp_s,
                    "command": command,
                })),
                "ratio_weft_to_peer": peer_figures.as_ref().map(|peer| json!({
                    "generation_tok_s": ratio(weft.generation_tok_s, peer.generation_tok_s),
                    "throughput_tok_s": ratio(weft.throughput_tok_s, peer.throughput_tok_s),
                    "latency_p50": ratio(weft.latency_p50, peer.latency_p50),
                })),
                "ratio_weft_to_batched_bench": batched.as_ref().map(|(r, _)| json!({
                    "generation_tok_s": ratio(weft.generation_tok_s, Some(r.s_tg)),
                })),
            })
        })
        .collect();

    let decode = if args.decode {
        Some(decode(&args, &config, &model_path, threads, tool(&args.llama_bench)).await?)
    } else {
        None
    };
    let value = json!({
        "model": model_name,
        "threads": threads,
        "flash_attention": {
            "weft": config.engine.flash_attention.resolve(config.engine.n_gpu_layers),
            "peer": peer_flash,
        },
        "prompt_tokens": prompt_tokens,
        "gen_tokens": gen_tokens,
        "runs": runs,
        "decode": decode,
    });
    print_json(&value)?;
    Ok(ExitCode::SUCCESS)
}

/// `llama-batched-bench -npl N` on the same prompt and generation lengths:
/// its `S_TG t/s` row, and the command.
async fn batched_bench(
    args: &ConcurrencyArgs,
    binary: Option<&std::path::Path>,
    model_path: &std::path::Path,
    threads: i32,
    config: &Config,
    flash_attention: &str,
    users: usize,
) -> anyhow::Result<Option<(peer::BatchedBenchRow, Vec<String>)>> {
    let Some(binary) = binary else { return Ok(None) };
    let (prompt_tokens, gen_tokens) = (args.prompt_tokens, args.gen_tokens);
    let mut command: Vec<String> = vec![
        "-m".into(),
        model_path.display().to_string(),
        "-c".into(),
        (users * (prompt_tokens + gen_tokens) + 64).to_string(),
        "-npp".into(),
        prompt_tokens.to_string(),
        "-ntg".into(),
        gen_tokens.to_string(),
        "-npl".into(),
        users.to_string(),
        "-t".into(),
        threads.to_string(),
        "-tb".into(),
        threads.to_string(),
        "-ngl".into(),
        config.engine.n_gpu_layers.to_string(),
        "-fa".into(),
        flash_attention.into(),
    ];
    let output = peer::run_tool(binary, &command).await?;
    let row = peer::batched_bench_rows(&output)
        .into_iter()
        .find(|r| r.pl == users && r.pp == prompt_tokens && r.tg == gen_tokens)
        .ok_or_else(|| anyhow::anyhow!("no results in llama-batched-bench's output:\n{output}"))?;
    command.insert(0, binary.display().to_string());
    Ok(Some((row, command)))
}

fn builder(engine: &LlamaEngine, config: &EngineConfig, max_tokens: usize) -> PromptBuilder {
    PromptBuilder::with_budget(engine, config.budget.into(), config.n_ctx, max_tokens)
}

/// The peer's body for `request`: Weft's prompt as token ids.
fn peer_body(
    builder: &PromptBuilder,
    request: &CompletionRequest,
    n_predict: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut body = peer_generation(n_predict, false);
    body["prompt"] = json!(builder.prompt(request)?.tokens);
    Ok(body)
}

const NAMES: [&str; 16] = [
    "total", "count", "index", "buffer", "offset", "length", "width", "height", "left", "right", "node", "entry",
    "value", "limit", "start", "score",
];
const CALLS: [&str; 8] = ["compute", "measure", "lookup", "combine", "scale", "shift", "merge", "clamp"];

/// A request whose prompt has at least `tokens` tokens (it ends at the
/// first line end past them): Rust-like lines drawn from the seed, and a
/// first line naming the user, so that no two users share a prefix.
fn synthetic_request(
    builder: &PromptBuilder,
    seed: u64,
    user: usize,
    tokens: usize,
    max_tokens: usize,
) -> anyhow::Result<CompletionRequest> {
    let mut rng = Rng::new(seed.wrapping_mul(0x100_0000_01B3).wrapping_add(user as u64));
    let mut text = format!("fn {}_{user}(input: &[i64]) -> i64 {{\n", NAMES[rng.below(NAMES.len())]);
    for line in 0.. {
        let request = bench_request(text.clone(), String::new(), Language::Rust, max_tokens);
        if builder.prompt(&request)?.tokens.len() >= tokens {
            return Ok(request);
        }
        anyhow::ensure!(line < 100_000, "the prompt does not grow past {tokens} tokens");
        let (a, b) = (NAMES[rng.below(NAMES.len())], NAMES[rng.below(NAMES.len())]);
        let call = CALLS[rng.below(CALLS.len())];
        text.push_str(&format!("    let {a}_{line} = {call}({b}, input[{}]);\n", rng.below(64)));
    }
    unreachable!("the loop returns or fails")
}

async fn measure_weft(engine: &LlamaEngine, requests: &[CompletionRequest]) -> Vec<Result<Finished, String>> {
    let origin = Instant::now();
    let tasks: Vec<_> = requests
        .iter()
        .map(|request| {
            let (engine, request) = (engine.clone(), request.clone());
            tokio::spawn(async move {
                let completion = engine.complete(request, CancellationToken::new()).await;
                let end_ms = origin.elapsed().as_secs_f64() * 1e3;
                completion.map_err(|err| err.to_string()).map(|c| Finished {
                    end_ms,
                    prefill_ms: c.timings.prefill_ms,
                    decode_ms: c.timings.decode_ms,
                    prompt_tokens: c.prompt_tokens,
                    generated_tokens: c.generated_tokens,
                })
            })
        })
        .collect();
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.map_err(|err| err.to_string()).and_then(|result| result));
    }
    finished
}

async fn measure_peer(server: &Arc<PeerServer>, bodies: &[serde_json::Value]) -> Vec<Result<Finished, String>> {
    let origin = Instant::now();
    let tasks: Vec<_> = bodies
        .iter()
        .map(|body| {
            let (server, body) = (Arc::clone(server), body.clone());
            tokio::spawn(async move {
                let timings = server.complete("/completion", &body).await;
                let end_ms = origin.elapsed().as_secs_f64() * 1e3;
                timings.map_err(|err| format!("{err:#}")).map(|t| Finished {
                    end_ms,
                    prefill_ms: t.prompt_ms,
                    decode_ms: t.predicted_ms,
                    prompt_tokens: t.prompt_n + t.cache_n,
                    generated_tokens: t.predicted_n,
                })
            })
        })
        .collect();
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.map_err(|err| err.to_string()).and_then(|result| result));
    }
    finished
}

/// The figures of one side at one N.
struct Throughput {
    json: serde_json::Value,
    generation_tok_s: Option<f64>,
    throughput_tok_s: Option<f64>,
    latency_p50: Option<f64>,
}

impl Throughput {
    fn of(results: &[Result<Finished, String>]) -> Throughput {
        let finished: Vec<Finished> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        let mut errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        errors.dedup();
        let generated: usize = finished.iter().map(|f| f.generated_tokens).sum();
        let wall_ms = finished.iter().map(|f| f.end_ms).fold(0.0, f64::max);
        let phase_ms = union_ms(finished.iter().map(|f| (f.end_ms - f.decode_ms, f.end_ms)));
        let per_s = |ms: f64| (ms > 0.0 && generated > 0).then(|| generated as f64 / (ms / 1e3));
        let (generation_tok_s, throughput_tok_s) = (per_s(phase_ms), per_s(wall_ms));
        let mut latency: Vec<f64> = finished.iter().map(|f| f.end_ms).collect();
        let mut prefill: Vec<f64> = finished.iter().map(|f| f.prefill_ms).collect();
        let mut decode: Vec<f64> = finished.iter().map(|f| f.decode_ms).collect();
        let latency = percentiles(&mut latency);
        let latency_p50 = (!finished.is_empty()).then(|| latency["p50"].as_f64()).flatten();
        let prompt_mean = finished.iter().map(|f| f.prompt_tokens).sum::<usize>() as f64 / finished.len().max(1) as f64;
        let json = json!({
            "requests": results.len(),
            "completed": finished.len(),
            "failed": results.len() - finished.len(),
            "errors": errors.iter().take(3).collect::<Vec<_>>(),
            "prompt_tokens_mean": prompt_mean,
            "generated_tokens": generated,
            "wall_ms": wall_ms,
            "generation_phase_ms": phase_ms,
            "throughput_tok_s": throughput_tok_s,
            "generation_tok_s": generation_tok_s,
            "latency_ms": latency,
            "prefill_ms": percentiles(&mut prefill),
            "decode_ms": percentiles(&mut decode),
        });
        Throughput { json, generation_tok_s, throughput_tok_s, latency_p50 }
    }
}

/// The total length of the union of intervals `(start, end)`.
fn union_ms(intervals: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut intervals: Vec<(f64, f64)> = intervals.filter(|(start, end)| end > start).collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in intervals {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// One user's raw decode speed, against `llama-bench -p 0 -n T [-d D]`.
///
/// Weft's side: requests with short prompts (or prompts of
/// `--decode-depth` tokens), each generating `--decode-tokens` tokens; its
/// speed is (tokens − 1) / `decode_ms` (the first token comes from the
/// prefill's logits, the others from one decode call each). The two sides
/// take turns, `--decode-rounds` times, alternating which goes first, with
/// one llama-bench repetition (`-r 1`, after its own warm-up) per turn:
/// this machine's speed drifts by 15–40 % over minutes, so only runs made
/// seconds apart compare. The figure is the median of the rounds' ratios.
async fn decode(
    args: &ConcurrencyArgs,
    config: &Config,
    model_path: &std::path::Path,
    threads: i32,
    llama_bench: Option<PathBuf>,
) -> anyhow::Result<serde_json::Value> {
    let mut settings = engine_config(config, threads);
    settings.slots = 1;
    let prompt_tokens = args.decode_depth.max(16);
    let per_request = (prompt_tokens + args.decode_tokens + 64) as u32;
    settings.n_ctx = settings.n_ctx.max(per_request);
    settings.budget.prefix_tokens = settings.budget.prefix_tokens.max(prompt_tokens + 32);
    let engine = start_engine(config, model_path, settings.clone()).await?;
    let builder = builder(&engine, &settings, args.decode_tokens);
    let bench_command = llama_bench.map(|binary| {
        let args: Vec<String> = vec![
            "-m".into(),
            model_path.display().to_string(),
            "-p".into(),
            "0".into(),
            "-n".into(),
            args.decode_tokens.to_string(),
            "-d".into(),
            args.decode_depth.to_string(),
            "-t".into(),
            threads.to_string(),
            "-ngl".into(),
            config.engine.n_gpu_layers.to_string(),
            "-fa".into(),
            args.peer_flash_attention.arg(&settings).into(),
            "-r".into(),
            "1".into(),
        ];
        (binary, args)
    });
    let test = match args.decode_depth {
        0 => format!("tg{}", args.decode_tokens),
        depth => format!("tg{} @ d{depth}", args.decode_tokens),
    };

    // A first request warms the engine up.
    let warm_up = synthetic_request(&builder, args.seed ^ 0xDEC0DE, 0, prompt_tokens, args.decode_tokens)?;
    engine.complete(warm_up, CancellationToken::new()).await?;
    let mut weft = Vec::new();
    let mut depths = Vec::new();
    let mut prefill = Vec::new();
    let mut reference = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..args.decode_rounds.max(1) {
        let mut speed = None;
        let mut bench = None;
        for turn in 0..2 {
            if (turn + round) % 2 == 0 {
                let request =
                    synthetic_request(&builder, args.seed ^ 0xDEC0DE, round + 1, prompt_tokens, args.decode_tokens)?;
                let completion = engine.complete(request, CancellationToken::new()).await?;
                anyhow::ensure!(completion.timings.decode_ms > 0.0, "a decode request generated no tokens");
                depths.push(completion.prompt_tokens);
                prefill.push(completion.prompt_tokens as f64 / (completion.timings.prefill_ms / 1e3));
                speed = Some((completion.generated_tokens - 1) as f64 / (completion.timings.decode_ms / 1e3));
                weft.extend(speed);
            } else if let Some((binary, command)) = &bench_command {
                let output = peer::run_tool(binary, command).await?;
                let row = peer::llama_bench_rows(&output).into_iter().find(|row| row.test == test);
                let row = row.ok_or_else(|| anyhow::anyhow!("no {test} result in llama-bench's output:\n{output}"))?;
                bench = Some(row.tokens_per_s);
                reference.push(row.tokens_per_s);
            }
        }
        ratios.extend(ratio(speed, bench));
    }
    drop(engine);
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    };
    let command = bench_command.map(|(binary, mut command)| {
        command.insert(0, binary.display().to_string());
        command
    });
    Ok(json!({
        "tokens": args.decode_tokens,
        "depth": args.decode_depth,
        "rounds": args.decode_rounds.max(1),
        "weft_depths": depths,
        "weft_prefill_tok_s": prefill,
        "weft_tok_s": median(&weft),
        "weft_runs_tok_s": weft,
        "llama_bench_tok_s": median(&reference),
        "llama_bench_runs_tok_s": reference,
        "llama_bench_command": command,
        "ratios_weft_to_llama_bench": ratios,
        "ratio_weft_to_llama_bench": median(&ratios),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_counts_overlaps_once() {
        assert_eq!(union_ms([(0.0, 10.0), (5.0, 15.0), (20.0, 30.0)].into_iter()), 25.0);
        assert_eq!(union_ms([(20.0, 30.0), (0.0, 10.0)].into_iter()), 20.0);
        assert_eq!(union_ms([(0.0, 10.0), (2.0, 3.0)].into_iter()), 10.0);
        assert_eq!(union_ms(std::iter::empty()), 0.0);
    }

    #[test]
    fn serial_decoding_gives_one_sequence_speed_and_overlap_the_batch_speed() {
        let request = |end_ms, decode_ms| {
            Ok(Finished { end_ms, prefill_ms: 10.0, decode_ms, prompt_tokens: 100, generated_tokens: 100 })
        };
        // Two requests decoded one after the other, 1 s each, with a prefill
        // between: 100 tokens/s, the prefill left out.
        let serial = Throughput::of(&[request(1010.0, 1000.0), request(2020.0, 1000.0)]);
        assert!((serial.generation_tok_s.unwrap() - 100.0).abs() < 1e-9);
        assert!(serial.throughput_tok_s.unwrap() < 100.0);
        // The same two decoded together in 1.2 s.
        let batched = Throughput::of(&[request(1210.0, 1200.0), request(1210.0, 1200.0)]);
        assert!((batched.generation_tok_s.unwrap() - 200.0 / 1.2).abs() < 1e-9);
        let failed = Throughput::of(&[Err("boom".to_owned())]);
        assert_eq!(failed.generation_tok_s, None);
        assert_eq!(failed.json["failed"], 1);
    }
}
