//! The test step: the configured command, run on a scratch copy of the
//! workspace with the proposed files written into it, in the sandbox of
//! [`crate::sandbox`] (CPU-time limit, output cap, scrubbed environment, no
//! network where the OS allows it). The workspace itself is never written.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::schema::FileContent;
use super::workspace::{SKIPPED_DIRS, Workspace};
use crate::sandbox::{Isolation, NetworkIsolation, ProcessLimits, read_tail, run_to_end};

/// Files a scratch copy holds at most.
const MAX_COPY_FILES: usize = 20_000;
/// Bytes a scratch copy holds at most.
const MAX_COPY_BYTES: u64 = 256 << 20;

/// The test command and its limits (`[agent] test_command` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCommand {
    /// Run with `/bin/sh -c` in the scratch copy's root.
    pub command: String,
    pub cpu_time: Duration,
    pub memory_bytes: u64,
    /// Output kept at most (the file-size limit of the process too).
    pub output_bytes: u64,
    /// Environment variables passed through (all others are removed).
    pub pass_env: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    Passed,
    Failed,
    TimedOut,
    /// No test command is configured.
    Skipped,
}

/// How a test run went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub status: TestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The tail of stdout and stderr together.
    pub output: String,
    pub duration_ms: f64,
    /// How the network was taken away (`none`: it was not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkIsolation>,
}

impl TestOutcome {
    pub fn skipped() -> TestOutcome {
        TestOutcome {
            status: TestStatus::Skipped,
            exit_code: None,
            output: String::new(),
            duration_ms: 0.0,
            network: None,
        }
    }
}

/// The strongest isolation this machine allows, probed once.
fn isolation() -> Option<Isolation> {
    static FOUND: OnceLock<Option<Isolation>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let limits = ProcessLimits { cpu_time: Duration::from_secs(5), memory_bytes: 256 << 20, output_bytes: 1 << 16 };
        Isolation::detect(|isolation| {
            let command = isolation.command(&limits, &["/bin/true".to_owned()], dir.path());
            let (Ok(out), Ok(err)) = (File::create(dir.path().join("probe")), File::create(dir.path().join("probe2")))
            else {
                return false;
            };
            run_to_end(command, &limits, out, err, &|| false).is_ok_and(|f| f.status.success())
        })
    })
}

/// Runs `command` on a copy of `workspace` with `files` written into it.
/// Blocking; `stop` ends the run early (the outcome is then an error).
pub fn run_tests(
    workspace: &Workspace,
    files: &[FileContent],
    command: &TestCommand,
    stop: &dyn Fn() -> bool,
) -> Result<TestOutcome, String> {
    let scratch = tempfile::Builder::new()
        .prefix("weft-agent-")
        .tempdir()
        .map_err(|err| format!("cannot create a scratch folder: {err}"))?;
    copy_workspace(workspace, scratch.path())?;
    for file in files {
        let target = scratch.path().join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("cannot write {}: {err}", file.path))?;
        }
        std::fs::write(&target, &file.content).map_err(|err| format!("cannot write {}: {err}", file.path))?;
    }
    let isolation = isolation().ok_or("cannot run a subprocess with resource limits here")?;
    let limits = ProcessLimits {
        cpu_time: command.cpu_time,
        memory_bytes: command.memory_bytes,
        output_bytes: command.output_bytes,
    };
    let argv = ["/bin/sh".to_owned(), "-c".to_owned(), command.command.clone()];
    let mut process = isolation.command(&limits, &argv, scratch.path());
    for name in &command.pass_env {
        if let Some(value) = std::env::var_os(name) {
            process.env(name, value);
        }
    }
    // The output goes outside the copy, so the tests cannot overwrite it.
    let log_dir = tempfile::tempdir().map_err(|err| format!("cannot create a log folder: {err}"))?;
    let log = log_dir.path().join("output.txt");
    let out = File::create(&log).map_err(|err| format!("cannot create the test log: {err}"))?;
    let err = out.try_clone().map_err(|err| format!("cannot create the test log: {err}"))?;
    let finished =
        run_to_end(process, &limits, out, err, stop).map_err(|err| format!("cannot run the test command: {err}"))?;
    if finished.stopped {
        return Err("the test run was stopped".to_owned());
    }
    let status = if finished.timed_out {
        TestStatus::TimedOut
    } else if finished.status.success() {
        TestStatus::Passed
    } else {
        TestStatus::Failed
    };
    Ok(TestOutcome {
        status,
        exit_code: finished.status.code(),
        output: read_tail(&log, (command.output_bytes as usize).min(16 << 10)),
        duration_ms: finished.duration.as_secs_f64() * 1e3,
        network: Some(isolation.network),
    })
}

/// Copies the workspace's files (not `.git`, build or dependency folders,
/// not symlinks) and the editor's unsaved texts into `to`.
fn copy_workspace(workspace: &Workspace, to: &Path) -> Result<(), String> {
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut stack = vec![workspace.root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else { continue };
            let relative = entry.path().strip_prefix(workspace.root()).map(Path::to_path_buf).unwrap_or_default();
            if kind.is_dir() && name != ".git" && !SKIPPED_DIRS.contains(&name.as_ref()) {
                std::fs::create_dir_all(to.join(&relative)).map_err(|err| format!("cannot copy: {err}"))?;
                stack.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata().map_or(0, |m| m.len());
                if files > MAX_COPY_FILES || bytes > MAX_COPY_BYTES {
                    return Err(format!(
                        "the workspace is too large to test on a copy (more than {MAX_COPY_FILES} files or {} MiB)",
                        MAX_COPY_BYTES >> 20
                    ));
                }
                std::fs::copy(entry.path(), to.join(&relative))
                    .map_err(|err| format!("cannot copy {}: {err}", relative.display()))?;
            }
        }
    }
    for (path, text) in workspace.overlays() {
        let target = to.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("cannot copy {path}: {err}"))?;
        }
        std::fs::write(&target, text).map_err(|err| format!("cannot copy {path}: {err}"))?;
    }
    Ok(())
}
