//! `weft bench keystrokes` and `weft bench concurrency` with the real model,
//! short and without the peer: the JSON has every figure, and the figures
//! agree with each other.

use std::process::{Command, Output};

use serde_json::Value;
use weft_e2e::{fixture, test_model, weft_binary};

fn weft_bench(args: &[&str]) -> Output {
    Command::new(weft_binary())
        .arg("bench")
        .args(args)
        .args(["--model", test_model().to_str().unwrap(), "--threads", "1"])
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env("WEFT_N_THREADS", "1")
        .env("WEFT_LOG", "warn")
        .output()
        .expect("run weft bench")
}

fn json_of(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}); stderr: {stderr}"))
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn keystrokes_replays_a_typing_trace_with_consistent_counts() {
    let file = fixture("demo/greeting.py");
    let output = weft_bench(&[
        "keystrokes",
        "--file",
        file.to_str().unwrap(),
        "--workspace",
        fixture("demo").to_str().unwrap(),
        "--line",
        "9",
        "--chars",
        "20",
        "--key-ms",
        "60",
        "--max-tokens",
        "4",
        "--seed",
        "3",
        "--rounds",
        "2",
    ]);
    let value = json_of(&output);
    assert_eq!(value["region"]["first_line"], 9);
    assert_eq!(value["region"]["chars"], 20);
    assert_eq!(value["trace"]["keystrokes"], 20, "no line end in the region: one key per character");
    assert!(value["peer"].is_null() && value["ratio_weft_to_peer"].is_null(), "{value}");
    // Typing 20 characters on one line keeps the retrieved context, and the
    // prefix window starts where it did.
    let changes = &value["prompt_start_changes"];
    assert_eq!(changes["snippets_changed_at_keys"], serde_json::json!([]), "{changes}");
    assert_eq!(changes["window_moved_at_keys"], serde_json::json!([]), "{changes}");

    let weft = &value["weft"];
    let requests = weft["requests"].as_u64().unwrap();
    let (completed, cancelled) = (weft["completed"].as_u64().unwrap(), weft["cancelled"].as_u64().unwrap());
    // Two rounds of the trace, pooled; each round from a fresh engine.
    assert_eq!(requests, 40);
    let rounds = value["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{value}");
    let per_round: u64 = rounds.iter().map(|r| r["weft"]["completed"].as_u64().unwrap()).sum();
    assert_eq!(per_round, weft["completed"].as_u64().unwrap(), "{value}");
    assert_eq!(weft["failed"], 0, "{weft}");
    assert_eq!(completed + cancelled, requests, "{weft}");
    // The last key's request of each round is never superseded.
    assert!(completed >= 2, "{weft}");
    assert!(weft["slowest"].as_array().is_some_and(|s| !s.is_empty() && s.len() <= 3), "{weft}");
    assert_eq!(weft["generated_tokens"].as_u64().unwrap(), 4 * completed, "ignore_eos: exactly 4 tokens each");

    let tokens = &weft["prompt_tokens"];
    let (total, evaluated, reused) =
        (tokens["total"].as_u64().unwrap(), tokens["evaluated"].as_u64().unwrap(), tokens["reused"].as_u64().unwrap());
    assert_eq!(evaluated + reused, total, "{tokens}");
    assert!(total >= 20 * completed, "greeting.py's prefix is longer than 20 tokens: {tokens}");
    let hits = weft["cache_hits"].as_u64().unwrap();
    assert!(hits <= completed, "{weft}");
    // Every request after the first extends the prompt of one before it.
    if completed >= 2 {
        assert!(hits >= 1 && reused > 0, "{weft}");
    }

    let latency = &weft["latency_ms"];
    let (p50, p95, p99, max) =
        (number(&latency["p50"]), number(&latency["p95"]), number(&latency["p99"]), number(&latency["max"]));
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max, "{latency}");
    // The client's latency includes the server's own time.
    assert!(number(&weft["server_ms"]["p50"]) <= max, "{weft}");
}

#[test]
fn keystrokes_rejects_a_region_outside_the_file() {
    let file = fixture("demo/greeting.py");
    let output = weft_bench(&["keystrokes", "--file", file.to_str().unwrap(), "--line", "999"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--line 999 is outside the file, which has 20 lines"), "{stderr}");
}

#[test]
fn concurrency_reports_throughput_per_user_count() {
    let output = weft_bench(&[
        "concurrency",
        "--users",
        "1,2",
        "--prompt-tokens",
        "24",
        "--gen-tokens",
        "6",
        "--decode",
        "--decode-tokens",
        "8",
        "--decode-depth",
        "40",
        "--decode-rounds",
        "3",
    ]);
    let value = json_of(&output);
    assert_eq!(value["prompt_tokens"], 24);
    assert_eq!(value["gen_tokens"], 6);
    let runs = value["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["users"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for run in runs {
        let users = run["users"].as_u64().unwrap();
        let weft = &run["weft"];
        assert_eq!((weft["requests"].as_u64(), weft["completed"].as_u64()), (Some(users), Some(users)), "{weft}");
        assert_eq!(weft["generated_tokens"].as_u64().unwrap(), 6 * users, "{weft}");
        let prompt = number(&weft["prompt_tokens_mean"]);
        assert!((24.0..24.0 + 40.0).contains(&prompt), "prompts end at the first line end past 24 tokens: {prompt}");
        let (wall, phase) = (number(&weft["wall_ms"]), number(&weft["generation_phase_ms"]));
        assert!(0.0 < phase && phase <= wall, "{weft}");
        // Leaving prefill out can only raise the speed.
        assert!(number(&weft["generation_tok_s"]) >= number(&weft["throughput_tok_s"]), "{weft}");
        assert!(number(&weft["latency_ms"]["max"]) <= wall + 1e-6, "{weft}");
        assert!(run["peer"].is_null() && run["batched_bench"].is_null(), "{run}");
    }
    let decode = &value["decode"];
    assert_eq!(decode["tokens"], 8);
    assert_eq!(decode["weft_runs_tok_s"].as_array().unwrap().len(), 3, "{decode}");
    // Each measured request decodes after a prompt of about --decode-depth
    // tokens (it ends at a line end).
    let depths = decode["weft_depths"].as_array().unwrap();
    assert!(depths.len() == 3 && depths.iter().all(|d| (40..120).contains(&d.as_u64().unwrap())), "{decode}");
    assert!(number(&decode["weft_tok_s"]) > 0.0, "{decode}");
    assert!(decode["llama_bench_tok_s"].is_null() && decode["ratio_weft_to_llama_bench"].is_null(), "{decode}");
}

#[test]
fn concurrency_rejects_zero_users() {
    let output = weft_bench(&["concurrency", "--users", "2,0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--users takes numbers from 1 up"), "{stderr}");
}
