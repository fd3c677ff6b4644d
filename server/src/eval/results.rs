//! Per-task results as JSON lines, resuming from them, and the summary.
//!
//! Every finished task is appended to `results.jsonl` and flushed at once, so
//! an interrupted run loses at most the tasks in flight; a run started again
//! with the same output directory skips every (model, benchmark, context,
//! task) that has a line. A cut-off last line (the process was killed
//! mid-write) is dropped and that task runs again.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use weft_inference::{FinishReason, Timings};

use super::metrics::{mean, percentile};
use super::sandbox::{RunOutcome, RunStatus};

/// One task's result: a line of `results.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub model: String,
    pub benchmark: String,
    pub context: String,
    pub task_id: String,
    pub completion: String,
    /// The model's output before postprocessing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raw_completion: String,
    pub ground_truth: String,
    pub exact_match: bool,
    pub edit_similarity: f64,
    pub identifier_em: bool,
    pub identifier_f1: f64,
    /// Whether the tests passed, for benchmarks with tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub generated_tokens: usize,
    #[serde(default)]
    pub reused_tokens: usize,
    /// Context snippets given to the model, and the time spent finding them.
    #[serde(default)]
    pub context_snippets: usize,
    #[serde(default)]
    pub context_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Why the completion failed, when it did (then `completion` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What identifies a result for resuming.
pub type ResultKey = (String, String, String, String);

impl TaskResult {
    /// Completion time without the engine's queue, context included.
    pub fn latency_ms(&self) -> Option<f64> {
        self.timings.map(|t| t.total_ms - t.queue_ms + self.context_ms)
    }

    pub fn key(&self) -> ResultKey {
        (self.model.clone(), self.benchmark.clone(), self.context.clone(), self.task_id.clone())
    }
}

/// `results.jsonl`, open for appending.
pub struct ResultStore {
    path: PathBuf,
    file: File,
    done: HashSet<ResultKey>,
}

impl ResultStore {
    /// Opens (or creates) `dir/results.jsonl` and reads what is done.
    pub fn open(dir: &Path) -> anyhow::Result<ResultStore> {
        let path = dir.join("results.jsonl");
        let mut done = HashSet::new();
        let mut valid_bytes = 0u64;
        if path.is_file() {
            let reader = BufReader::new(File::open(&path).with_context(|| format!("cannot read {}", path.display()))?);
            for line in reader.split(b'\n') {
                let line = line?;
                match serde_json::from_slice::<TaskResult>(&line) {
                    Ok(result) => {
                        done.insert(result.key());
                        valid_bytes += line.len() as u64 + 1;
                    }
                    // Only a cut-off last line can be malformed.
                    Err(_) => break,
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // Drop a cut-off last line so the next append starts a fresh one.
        file.set_len(valid_bytes)?;
        Ok(ResultStore { path, file, done })
    }

    pub fn is_done(&self, key: &ResultKey) -> bool {
        self.done.contains(key)
    }

    pub fn append(&mut self, result: &TaskResult) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(result)?;
        line.push(b'\n');
        self.file.write_all(&line).with_context(|| format!("cannot write {}", self.path.display()))?;
        self.file.flush()?;
        self.done.insert(result.key());
        Ok(())
    }

    /// Every result in the file, finished in this run or before.
    pub fn read_all(&self) -> anyhow::Result<Vec<TaskResult>> {
        let reader = BufReader::new(File::open(&self.path)?);
        reader
            .lines()
            .map(|line| Ok(serde_json::from_str(&line?)?))
            .collect::<anyhow::Result<Vec<TaskResult>>>()
            .with_context(|| format!("cannot read {}", self.path.display()))
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The metrics of one (model, benchmark, context) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub model: String,
    pub benchmark: String,
    pub context: String,
    pub tasks: usize,
    /// Fraction of tasks whose tests passed (greedy decoding: pass@1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_at_1: Option<f64>,
    pub exact_match: f64,
    pub edit_similarity: f64,
    pub identifier_em: f64,
    pub identifier_f1: f64,
    /// Tests that ran out of time, and completions that failed.
    pub timed_out: usize,
    pub errors: usize,
    /// Completion time (context retrieval, prompt, prefill, decode), for
    /// model runs. Time in the engine's queue is left out: it measures the
    /// run's concurrency, not the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencySummary>,
    pub mean_prompt_tokens: f64,
    pub mean_generated_tokens: f64,
    pub mean_context_snippets: f64,
}

/// Summarizes results per cell, in (model, benchmark, context) order.
pub fn summarize(results: &[TaskResult]) -> Vec<CellSummary> {
    let mut cells: BTreeMap<(&str, &str, &str), Vec<&TaskResult>> = BTreeMap::new();
    for r in results {
        cells.entry((&r.model, &r.benchmark, &r.context)).or_default().push(r);
    }
    cells
        .into_iter()
        .map(|((model, benchmark, context), rs)| {
            let avg = |f: &dyn Fn(&TaskResult) -> f64| mean(rs.iter().map(|r| f(r))).unwrap_or(0.0);
            let latencies: Vec<f64> = rs.iter().filter_map(|r| r.latency_ms()).collect();
            let latency_ms = (!latencies.is_empty()).then(|| LatencySummary {
                mean: mean(latencies.iter().copied()).unwrap_or(0.0),
                p50: percentile(&latencies, 50.0).unwrap_or(0.0),
                p90: percentile(&latencies, 90.0).unwrap_or(0.0),
                p99: percentile(&latencies, 99.0).unwrap_or(0.0),
                max: percentile(&latencies, 100.0).unwrap_or(0.0),
            });
            let tested = rs.iter().any(|r| r.passed.is_some());
            CellSummary {
                model: model.to_owned(),
                benchmark: benchmark.to_owned(),
                context: context.to_owned(),
                tasks: rs.len(),
                pass_at_1: tested.then(|| avg(&|r| f64::from(u8::from(r.passed == Some(true))))),
                exact_match: avg(&|r| f64::from(u8::from(r.exact_match))),
                edit_similarity: avg(&|r| r.edit_similarity),
                identifier_em: avg(&|r| f64::from(u8::from(r.identifier_em))),
                identifier_f1: avg(&|r| r.identifier_f1),
                timed_out: rs
                    .iter()
                    .filter(|r| r.run.as_ref().is_some_and(|o| o.status == RunStatus::TimedOut))
                    .count(),
                errors: rs.iter().filter(|r| r.error.is_some()).count(),
                latency_ms,
                mean_prompt_tokens: avg(&|r| r.prompt_tokens as f64),
                mean_generated_tokens: avg(&|r| r.generated_tokens as f64),
                mean_context_snippets: avg(&|r| r.context_snippets as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(task: &str, exact: bool, passed: Option<bool>) -> TaskResult {
        TaskResult {
            model: "m".into(),
            benchmark: "humaneval-single".into(),
            context: "none".into(),
            task_id: task.into(),
            completion: "x".into(),
            raw_completion: String::new(),
            ground_truth: "x".into(),
            exact_match: exact,
            edit_similarity: if exact { 1.0 } else { 0.5 },
            identifier_em: exact,
            identifier_f1: if exact { 1.0 } else { 0.0 },
            passed,
            run: None,
            finish_reason: None,
            prompt_tokens: 10,
            generated_tokens: 2,
            reused_tokens: 0,
            context_snippets: 0,
            context_ms: 0.0,
            timings: None,
            error: None,
        }
    }

    #[test]
    fn a_store_resumes_and_drops_a_cut_off_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ResultStore::open(dir.path()).unwrap();
        store.append(&result("a", true, Some(true))).unwrap();
        store.append(&result("b", false, Some(false))).unwrap();
        drop(store);
        // A run killed while writing leaves half a line.
        let path = dir.path().join("results.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"model\": \"m\", \"bench");
        std::fs::write(&path, text).unwrap();

        let mut store = ResultStore::open(dir.path()).unwrap();
        assert!(store.is_done(&result("a", true, None).key()));
        assert!(!store.is_done(&result("c", true, None).key()));
        store.append(&result("c", true, Some(true))).unwrap();
        let all = store.read_all().unwrap();
        assert_eq!(all.iter().map(|r| r.task_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn cells_average_their_tasks() {
        let results = [result("a", true, Some(true)), result("b", false, Some(false)), result("c", true, Some(false))];
        let cells = summarize(&results);
        assert_eq!(cells.len(), 1);
        let cell = &cells[0];
        assert_eq!(cell.tasks, 3);
        assert_eq!(cell.pass_at_1, Some(1.0 / 3.0));
        assert_eq!(cell.exact_match, 2.0 / 3.0);
        assert!((cell.edit_similarity - 2.5 / 3.0).abs() < 1e-12);
        assert_eq!(cell.latency_ms, None);
    }
}
