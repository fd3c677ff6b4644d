//! The peer: llama.cpp's own tools, run by the benches for reference
//! figures from the same machine and run.
//!
//! [`PeerServer`] starts `llama-server` on a free local port, waits for
//! `/health`, and sends it completions with reqwest (the client the
//! `weft` binary already has; no server framework is linked). The server
//! is killed when the handle is dropped. [`llama_bench_rows`] and
//! [`batched_bench_rows`] read the tables `llama-bench` and
//! `llama-batched-bench` print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// How to start `llama-server`.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    pub binary: PathBuf,
    pub model: PathBuf,
    pub threads: i32,
    /// Context size (`-c`), shared by the slots.
    pub ctx: u32,
    /// Slots (`-np`): requests decoded together.
    pub parallel: usize,
    pub n_gpu_layers: u32,
    /// Flash attention (`-fa`: `auto`, `on` or `off`).
    pub flash_attention: &'static str,
}

/// A running `llama-server`.
pub struct PeerServer {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
    /// The command line it was started with, for the report.
    pub command: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// What the server reports about one finished completion (its `timings`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PeerTimings {
    /// Prompt tokens evaluated.
    pub prompt_n: usize,
    /// Prompt tokens whose KV cache was reused.
    #[serde(default)]
    pub cache_n: usize,
    pub prompt_ms: f64,
    pub predicted_n: usize,
    pub predicted_ms: f64,
}

impl PeerServer {
    /// Starts the server and waits until it has loaded the model.
    pub async fn start(options: &PeerOptions) -> anyhow::Result<Self> {
        if !options.binary.is_file() {
            bail!(
                "no llama-server at {} (models/build-llama-server.sh builds one; `make peer`)",
                options.binary.display()
            );
        }
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("llama-server.log");
        let mut args: Vec<String> = vec![
            "-m".into(),
            options.model.display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "-t".into(),
            options.threads.to_string(),
            "-tb".into(),
            options.threads.to_string(),
            "-c".into(),
            options.ctx.to_string(),
            "-np".into(),
            options.parallel.to_string(),
            "-fa".into(),
            options.flash_attention.into(),
            "--no-webui".into(),
        ];
        if options.n_gpu_layers > 0 {
            args.extend(["-ngl".into(), options.n_gpu_layers.to_string()]);
        }
        let log_file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(&options.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", options.binary.display()))?;
        let mut command = vec![options.binary.display().to_string()];
        command.extend(args);
        // A backstop: a hung server fails the run instead of stalling it.
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build()?;
        let mut server =
            PeerServer { child, base: format!("http://127.0.0.1:{port}"), client, command, log, _dir: dir };
        server.wait_healthy(Duration::from_secs(120)).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("llama-server exited ({status}) while starting:\n{}", self.log_tail());
            }
            let health = self.client.get(format!("{}/health", self.base)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("llama-server was not healthy after {timeout:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Posts `body` to `endpoint` (`/completion`, `/infill`) and returns the
    /// final timings. With `"stream": true` the answer is read as server-sent
    /// events, so that dropping this future closes the connection while the
    /// server is still generating, and the server stops at its next token.
    pub async fn complete(&self, endpoint: &str, body: &serde_json::Value) -> anyhow::Result<PeerTimings> {
        let mut response = self.client.post(format!("{}{endpoint}", self.base)).json(body).send().await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("llama-server answered {status}: {text}");
        }
        if body["stream"] != serde_json::Value::Bool(true) {
            let value: serde_json::Value = response.json().await?;
            return timings_of(&value);
        }
        let mut pending = Vec::<u8>::new();
        while let Some(chunk) = response.chunk().await? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = find(&pending, b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let event = String::from_utf8_lossy(&event);
                for data in event.lines().filter_map(|line| line.strip_prefix("data:")) {
                    let value: serde_json::Value = serde_json::from_str(data.trim())
                        .with_context(|| format!("llama-server sent an event that is not JSON: {data}"))?;
                    if let Some(error) = value.get("error") {
                        bail!("llama-server failed: {error}");
                    }
                    if value["stop"] == serde_json::Value::Bool(true) {
                        return timings_of(&value);
                    }
                }
            }
        }
        bail!("llama-server ended the stream without a final event")
    }
}

fn timings_of(value: &serde_json::Value) -> anyhow::Result<PeerTimings> {
    let timings = value.get("timings").with_context(|| format!("llama-server's answer has no timings: {value}"))?;
    Ok(PeerTimings::deserialize(timings)?)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A port nothing listens on now (the OS picks it).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Runs a llama.cpp tool and returns what it printed (stdout, then
/// stderr: the tables go to one or the other depending on the tool).
pub async fn run_tool(binary: &Path, args: &[String]) -> anyhow::Result<String> {
    if !binary.is_file() {
        bail!("no {} (models/build-llama-server.sh builds llama.cpp's tools; `make peer`)", binary.display());
    }
    let output = tokio::process::Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        let tail: Vec<&str> = text.lines().collect();
        bail!("{} failed ({}):\n{}", binary.display(), output.status, tail[tail.len().saturating_sub(20)..].join("\n"));
    }
    Ok(text)
}

/// The rows of every markdown table in `text`, each as column → cell.
/// A table is a run of lines starting with `|`: a header, a `|---|`
/// separator, then rows. Other lines (logs) end a table.
pub fn markdown_rows(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rows = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let cells: Vec<String> = line.trim_matches('|').split('|').map(|cell| cell.trim().to_owned()).collect();
        if cells.iter().all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':'))) {
            continue;
        }
        match &header {
            None => header = Some(cells),
            Some(names) if names.len() == cells.len() => {
                rows.push(names.iter().cloned().zip(cells).collect());
            }
            Some(_) => {}
        }
    }
    rows
}

/// One result of `llama-bench`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaBenchRow {
    /// `pp512`, `tg64`, …
    pub test: String,
    pub threads: Option<u32>,
    pub tokens_per_s: f64,
    pub stddev: Option<f64>,
}

/// The results in `llama-bench`'s markdown output (its default).
pub fn llama_bench_rows(text: &str) -> Vec<LlamaBenchRow> {
    markdown_rows(text)
        .into_iter()
        .filter_map(|row| {
            let test = row.get("test")?.clone();
            let speed = row.get("t/s")?;
            let mut parts = speed.split('±').map(|s| s.trim().parse::<f64>().ok());
            let tokens_per_s = parts.next()??;
            let stddev = parts.next().flatten();
            let threads = row.get("threads").and_then(|t| t.parse().ok());
            Some(LlamaBenchRow { test, threads, tokens_per_s, stddev })
        })
        .collect()
}

/// One row of `llama-batched-bench`: `pl` sequences of `pp` prompt and
/// `tg` generated tokens each.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchedBenchRow {
    pub pp: usize,
    pub tg: usize,
    pub pl: usize,
    pub t_pp_s: f64,
    pub s_pp: f64,
    pub t_tg_s: f64,
    /// Generation speed of all sequences together, tokens/s.
    pub s_tg: f64,
}

/// The rows of `llama-batched-bench`'s markdown output (its default).
pub fn batched_bench_rows(text: &str) -> Vec<BatchedBenchRow> {
    markdown_rows(text)
        .into_iter()
        .filter_map(|row| {
            let int = |name: &str| row.get(name)?.parse::<usize>().ok();
            let float = |name: &str| row.get(name)?.parse::<f64>().ok();
            Some(BatchedBenchRow {
                pp: int("PP")?,
                tg: int("TG")?,
                pl: int("B")?,
                t_pp_s: float("T_PP s")?,
                s_pp: float("S_PP t/s")?,
                t_tg_s: float("T_TG s")?,
                s_tg: float("S_TG t/s")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read_by_column_name_between_log_lines() {
        let text = "log line\n| a | b |\n|--:|:--|\n| 1 | x y |\n| 2 |\nmore log\n| c |\n| - |\n| 3 |\n";
        let rows = markdown_rows(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["a"], "1");
        assert_eq!(rows[0]["b"], "x y");
        assert_eq!(rows[1]["c"], "3");
        assert!(markdown_rows("no table here").is_empty());
    }

    /// `llama-bench -m SmolLM2-135M-Instruct.Q4_1.gguf -p 32 -n 16 -r 2 -t 1
    /// -ngl 0`, built by models/build-llama-server.sh, stdout and stderr.
    const LLAMA_BENCH: &str = include_str!("testdata/llama-bench.txt");
    /// `llama-batched-bench -m SmolLM2-135M-Instruct.Q4_1.gguf -c 128 -npp 16
    /// -ntg 8 -npl 1,2 -t 1 -tb 1 -ngl 0`, stdout then stderr.
    const BATCHED_BENCH: &str = include_str!("testdata/llama-batched-bench.txt");

    #[test]
    fn llama_bench_output_gives_each_test_and_its_speed() {
        let rows = llama_bench_rows(LLAMA_BENCH);
        assert_eq!(
            rows,
            [
                LlamaBenchRow { test: "pp32".into(), threads: Some(1), tokens_per_s: 100.56, stddev: Some(8.21) },
                LlamaBenchRow { test: "tg16".into(), threads: Some(1), tokens_per_s: 57.60, stddev: Some(0.55) },
            ]
        );
    }

    #[test]
    fn batched_bench_output_gives_a_row_per_batch_size() {
        let rows = batched_bench_rows(BATCHED_BENCH);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            BatchedBenchRow { pp: 16, tg: 8, pl: 2, t_pp_s: 0.388, s_pp: 82.54, t_tg_s: 0.302, s_tg: 52.97 }
        );
        assert_eq!((rows[0].pl, rows[0].s_tg), (1, 45.34));
    }

    #[test]
    fn unexpected_tables_give_no_rows() {
        assert!(llama_bench_rows("| test | t/s |\n|---|---|\n| tg64 | fast |\n").is_empty());
        assert!(batched_bench_rows("| PP | TG |\n|---|---|\n| 1 | 2 |\n").is_empty());
    }

    #[test]
    fn events_are_found_in_a_stream() {
        assert_eq!(find(b"data: {}\n\ndata", b"\n\n"), Some(8));
        assert_eq!(find(b"data: {}\n", b"\n\n"), None);
    }
}
