//! `weft eval`, run as a user would: task counts against the published
//! construction, the oracle and empty sanity modes over every single-line
//! HumanEval task (their completions run as real sandboxed Python), resuming,
//! remote models (against a local HTTP server), `--post` to the real
//! telemetry API, and a small real run with SmolLM2-135M.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use weft_e2e::{fixture, test_model, weft_binary};

// The real telemetry API on Postgres, for `--post`.
#[path = "telemetry/support.rs"]
#[allow(dead_code)]
mod support;

fn eval_data(name: &str) -> PathBuf {
    let cache = std::env::var_os("WEFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/weft"));
    let path = cache.join("eval").join(name);
    assert!(path.exists(), "{} is missing: run `make assets`", path.display());
    path
}

fn weft_eval(args: &[&str]) -> Output {
    weft_eval_with(args, &[])
}

fn weft_eval_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(weft_binary())
        .arg("eval")
        .args(args)
        .env("WEFT_CONFIG", fixture("empty-config.toml"))
        .env("WEFT_N_THREADS", "1")
        .env("WEFT_LOG", "info")
        .env_remove("WEFT_TELEMETRY_TOKEN")
        .env_remove("WEFT_EVAL_API_KEY")
        .envs(env.iter().copied())
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
    // A remote model beside the local one, in the same run.
    let infill = CompletionServer::start(|_, _| serde_json::json!({"content": "x", "tokens_predicted": 1}));
    let remote = format!("served=infill:{}", infill.base_url);
    let output = weft_eval(&[
        "--model",
        &label,
        "--model",
        &remote,
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
    // The remote model got the same tasks, cross-file snippets included.
    let requests = infill.received();
    assert_eq!(requests.len(), 8);
    assert!(requests.iter().any(|r| !r.body["input_extra"].as_array().unwrap().is_empty()), "{requests:#?}");
    assert_eq!(cell(&summary, "served", "repo", "cross-file")["tasks"], 2);
    let results = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 16);
}

/// A request a [`CompletionServer`] received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// A completion server on a real socket: it answers each HTTP request with
/// `answer(path, body)`, one request per connection, in the order they come.
struct CompletionServer {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl CompletionServer {
    fn start(mut answer: impl FnMut(&str, &Value) -> Value + Send + 'static) -> CompletionServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(request) = read_request(&stream) {
                    let reply = answer(&request.path, &request.body).to_string();
                    log.lock().unwrap().push(request);
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            }
        });
        CompletionServer { base_url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.insert(name.trim().to_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received { path, authorization: headers.remove("authorization"), body: serde_json::from_slice(&body).ok()? })
}

#[test]
fn remote_models_answer_through_v1_completions_and_infill() {
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let humaneval = humaneval.to_str().unwrap();
    // The ground truth of the first four single-line tasks, in task order.
    let oracle_out = tempfile::tempdir().unwrap();
    let oracle_dir = oracle_out.path().to_str().unwrap();
    let common = ["--humaneval", humaneval, "--limit", "4", "--concurrency", "1", "--jobs", "1"];
    success(&weft_eval(&[&["--oracle", "--out", oracle_dir][..], &common].concat()));
    let truths: VecDeque<String> = std::fs::read_to_string(oracle_out.path().join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["ground_truth"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(truths.len(), 4);

    // An OpenAI-compatible server that answers each prompt with its task's
    // ground truth, and an /infill server that always answers `pass`.
    let mut script = truths.clone();
    let openai = CompletionServer::start(move |_, _| {
        let text = script.pop_front().unwrap_or_default();
        serde_json::json!({
            "choices": [{"text": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 5},
        })
    });
    let infill = CompletionServer::start(
        |_, _| serde_json::json!({"content": "pass", "tokens_evaluated": 90, "tokens_predicted": 1, "stop_type": "eos"}),
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let right = format!("right=openai:{}#bigcode/starcoder2-3b", openai.base_url);
    let fixed = format!("fixed=infill:{}", infill.base_url);
    let run = |right: &str| {
        weft_eval_with(
            &[&["--model", right, "--model", &fixed, "--out", dir][..], &common].concat(),
            &[("WEFT_EVAL_API_KEY", "sk-test")],
        )
    };
    let table = success(&run(&right));

    let requests = openai.received();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.path, "/v1/completions");
        assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test"));
        assert_eq!(request.body["model"], "bigcode/starcoder2-3b");
        assert_eq!(request.body["stop"], serde_json::json!(["\n"]));
        // Weft's own StarCoder2 FIM prompt, detected from the model name.
        let prompt = request.body["prompt"].as_str().unwrap();
        for token in ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"] {
            assert_eq!(prompt.matches(token).count(), 1, "{prompt}");
        }
        // StarCoder2 is prompted suffix first (SPM): the prefix comes last.
        let (_, prefix) = prompt.split_once("<fim_middle>").unwrap();
        assert!(prompt.starts_with("<fim_prefix><fim_suffix>") && prefix.contains("def "), "{prompt}");
    }
    let requests = infill.received();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.path, "/infill");
        assert!(request.body["input_prefix"].as_str().unwrap().contains("def "), "{:#}", request.body);
        assert!(request.body["input_suffix"].is_string());
        assert_eq!(request.body["n_predict"], 64);
    }

    let summary = read_json(&out.path().join("summary.json"));
    let right_cell = cell(&summary, "right", "humaneval-single", "none");
    assert_eq!(right_cell["tasks"], 4);
    assert_eq!(right_cell["errors"], 0, "{right_cell:#}");
    assert_eq!(right_cell["pass_at_1"], 1.0, "{right_cell:#}");
    assert_eq!(right_cell["exact_match"], 1.0);
    assert_eq!(right_cell["mean_prompt_tokens"], 100.0);
    let fixed_cell = cell(&summary, "fixed", "humaneval-single", "none");
    assert_eq!(fixed_cell["tasks"], 4);
    assert_eq!(fixed_cell["exact_match"], 0.0, "{fixed_cell:#}");
    assert!(fixed_cell["pass_at_1"].as_f64().unwrap() < 1.0, "{fixed_cell:#}");
    assert_eq!(
        summary["models"]["right"]["backend"],
        serde_json::json!({
            "kind": "openai-completions",
            "url": openai.base_url,
            "model": "bigcode/starcoder2-3b",
            "format": "starcoder2",
            "format_from": "model name",
            "fim_order": "spm",
        })
    );
    assert_eq!(summary["models"]["fixed"]["backend"]["kind"], "llama-server-infill");
    let row: Vec<&str> = table.lines().find(|l| l.starts_with("right ")).unwrap().split_whitespace().collect();
    assert_eq!(row[..6], ["right", "humaneval-single", "none", "4", "1.000", "1.000"], "{table}");

    // Resuming asks the servers nothing more; a label keeps its model.
    success(&run(&right));
    assert_eq!(openai.received().len(), 4);
    assert_eq!(infill.received().len(), 4);
    let other = run(&format!("right=openai:{}#other-model", openai.base_url));
    assert!(!other.status.success());
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("holds results of another model labelled right"), "{stderr}");

    // A server that does not answer leaves its tasks to the next run.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("down=openai:http://127.0.0.1:{port}#m");
    let output = weft_eval(&["--model", &down, "--out", dir, "--humaneval", humaneval, "--limit", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run the same command again to retry them"), "{stderr}");
    let results = std::fs::read_to_string(out.path().join("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 8);
    assert!(!results.contains("\"down\""));
}

#[test]
fn a_posted_run_reaches_the_telemetry_api() {
    let db = support::TestDatabase::create(&support::database_server_url(), "weft_eval");
    let api = support::Api::start(&db.url, support::free_port());
    let (user_id, token) = api.register("eval@example.com");
    let out = tempfile::tempdir().unwrap();
    let humaneval = eval_data("HumanEval.jsonl.gz");
    let output = weft_eval_with(
        &[
            "--oracle",
            "--humaneval",
            humaneval.to_str().unwrap(),
            "--limit",
            "3",
            "--post",
            "--telemetry-url",
            &api.endpoint(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        &[("WEFT_TELEMETRY_TOKEN", &token)],
    );
    success(&output);
    let run_id = read_json(&out.path().join("summary.json"))["run_id"].as_str().unwrap().to_owned();
    let runs = support::psql(
        &db.url,
        "select run_id::text || '|' || user_id::text || '|' || command || '|' || steps from agent_runs",
    )
    .unwrap();
    assert_eq!(runs, [format!("{run_id}|{user_id}|eval|1")]);
    let steps = support::psql(&db.url, "select model || '|' || role || '|' || verdict from agent_steps").unwrap();
    assert_eq!(
        steps,
        ["oracle|eval:humaneval-single:none|tasks=3 pass@1=1.0000 exact_match=1.0000 edit_similarity=1.0000 \
          identifier_em=1.0000 identifier_f1=1.0000"]
    );
}
