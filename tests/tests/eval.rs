//! `weft eval`, run as a user would: task counts against the published
//! construction, the oracle and empty sanity modes over every single-line
//! HumanEval task (their completions run as real sandboxed Python), resuming,
//! and a small real run with SmolLM2-135M.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use weft_e2e::{fixture, test_model, weft_binary};

fn eval_data(name: &str) -> PathBuf {
    let cache = std::env::var_os("WEFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/weft"));
    let path = cache.join("eval").join(name);
    assert!(path.exists(), "{} is missing: run `make assets`", path.display());
    path
}

fn weft_eval(args: &[&str]) -> Output {
    Command::new(weft_binary())
        .arg("eval")
        .args(args)
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env("WEFT_N_THREADS", "1")
        .env("WEFT_LOG", "info")
        .env_remove("WEFT_TELEMETRY_TOKEN")
        .output()
        .expect("run weft eval")
}

fn success(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "weft eval failed:\n{stderr}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The summary's cell of `model` on `benchmark` in `context`.
fn cell<'a>(summary: &'a Value, model: &str, benchmark: &str, context: &str) -> &'a Value {
    summary["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == model && c["benchmark"] == benchmark && c["context"] == context)
        .unwrap_or_else(|| panic!("no cell {model} {benchmark} {context} in {summary:#}"))
}

#[test]
fn task_counts_match_the_published_construction() {
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let repos = eval_data("repos");
    let output = weft_eval(&[
        "--count",
        "--benchmark",
        "humaneval-single,humaneval-multi,repo",
        "--humaneval",
        humaneval.to_str().unwrap(),
        "--repo",
        repos.join("requests-2.32.3").to_str().unwrap(),
        "--repo",
        repos.join("click-8.1.7").to_str().unwrap(),
    ]);
    // Bavarian et al. (2022): 1,033 single-line and 5,815 multi-line tasks.
    // The repo-level sample takes 100 lines of each package.
    assert_eq!(success(&output), "humaneval-single\t1033\nhumaneval-multi\t5815\nrepo\t200\n");
}

#[test]
fn the_oracle_passes_every_single_line_task_and_empty_completions_almost_none() {
    let out = tempfile::tempdir().unwrap();
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let output = weft_eval(&[
        "--oracle",
        "--empty",
        "--humaneval",
        humaneval.to_str().unwrap(),
        "--timeout",
        "3",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let table = success(&output);
    let summary = read_json(&out.path().join("summary.json"));
    let oracle = cell(&summary, "oracle", "humaneval-single", "none");
    assert_eq!(oracle["tasks"], 1033);
    assert_eq!(oracle["pass_at_1"], 1.0, "{oracle:#}");
    assert_eq!(oracle["exact_match"], 1.0);
    assert_eq!(oracle["edit_similarity"], 1.0);

    let empty = cell(&summary, "empty", "humaneval-single", "none");
    assert_eq!(empty["tasks"], 1033);
    assert_eq!(empty["exact_match"], 0.0);
    // A few lines can go without breaking the tests (a `break` in a loop
    // that returns anyway, a redundant `list(l)`): 27 of 1,033 with
    // Python 3.11.
    let pass = empty["pass_at_1"].as_f64().unwrap();
    assert!(pass > 0.0 && pass < 0.05, "{empty:#}");

    assert!(table.starts_with("model "), "{table}");
    assert!(table.contains("oracle  humaneval-single  none      1033   1.000  1.000"), "{table}");
    for file in ["results.jsonl", "run.json", "metrics.svg", "latency.svg"] {
        assert!(out.path().join(file).is_file(), "{file} is missing");
    }
    let lines = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 2 * 1033);
}

#[test]
fn the_oracle_passes_multi_line_tasks() {
    let out = tempfile::tempdir().unwrap();
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let output = weft_eval(&[
        "--oracle",
        "--benchmark",
        "humaneval-multi",
        "--problem",
        "HumanEval/0,HumanEval/12,HumanEval/129",
        "--humaneval",
        humaneval.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    success(&output);
    let summary = read_json(&out.path().join("summary.json"));
    let oracle = cell(&summary, "oracle", "humaneval-multi", "none");
    assert_eq!(oracle["pass_at_1"], 1.0, "{oracle:#}");
    assert_eq!(oracle["exact_match"], 1.0);
}

#[test]
fn a_run_resumes_where_it_stopped_and_refuses_other_settings() {
    let out = tempfile::tempdir().unwrap();
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let dir = out.path().to_str().unwrap();
    let run = |limit: &str, seed: &str| {
        weft_eval(&[
            "--oracle",
            "--humaneval",
            humaneval.to_str().unwrap(),
            "--limit",
            limit,
            "--seed",
            seed,
            "--out",
            dir,
        ])
    };
    success(&run("4", "42"));
    success(&run("10", "42"));
    let manifest = read_json(&out.path().join("run.json"));
    let ran: Vec<u64> =
        manifest["invocations"].as_array().unwrap().iter().map(|i| i["tasks_run"].as_u64().unwrap()).collect();
    assert_eq!(ran, [4, 6]);
    let summary = read_json(&out.path().join("summary.json"));
    assert_eq!(cell(&summary, "oracle", "humaneval-single", "none")["tasks"], 10);

    let other = run("10", "7");
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("holds a run with other settings"), "{stderr}");
}

#[test]
fn a_small_real_run_with_smollm2_on_every_benchmark() {
    let out = tempfile::tempdir().unwrap();
    let model = test_model();
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let label = format!("smollm2={}", model.display());
    let output = weft_eval(&[
        "--model",
        &label,
        "--benchmark",
        "humaneval-single,humaneval-multi,repo",
        "--context",
        "none,cross-file",
        "--humaneval",
        humaneval.to_str().unwrap(),
        "--repo",
        fixture("eval/repo-mini").to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "12",
        "--multiline-max-tokens",
        "24",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let table = success(&output);
    let summary = read_json(&out.path().join("summary.json"));
    for (benchmark, context) in
        [("humaneval-single", "none"), ("humaneval-multi", "none"), ("repo", "none"), ("repo", "cross-file")]
    {
        let cell = cell(&summary, "smollm2", benchmark, context);
        assert_eq!(cell["tasks"], 2, "{cell:#}");
        assert_eq!(cell["errors"], 0, "{cell:#}");
        assert!(cell["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{cell:#}");
        assert!(cell["mean_prompt_tokens"].as_f64().unwrap() > 20.0, "{cell:#}");
        assert!(table.contains(&format!("smollm2  {benchmark}")), "{table}");
    }
    assert!(cell(&summary, "smollm2", "humaneval-single", "none")["pass_at_1"].is_number());
    // Cross-file context reaches the prompt: more snippets, more tokens.
    let none = cell(&summary, "smollm2", "repo", "none");
    let cross = cell(&summary, "smollm2", "repo", "cross-file");
    assert_eq!(none["mean_context_snippets"], 0.0);
    assert!(cross["mean_context_snippets"].as_f64().unwrap() > 0.0, "{cross:#}");
    assert!(cross["mean_prompt_tokens"].as_f64().unwrap() > none["mean_prompt_tokens"].as_f64().unwrap());
    assert_eq!(summary["models"]["smollm2"]["detection"]["format"], "prefix-only");
    let results = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 8);
}
