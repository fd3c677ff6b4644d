//! Runs generated Python in a subprocess: a fresh temporary directory, a
//! scrubbed environment, a CPU-time limit with a wall-clock backstop, limits
//! on memory, file size and open files, and no network where the OS allows
//! it. The isolation itself (`nice`, `unshare`, `prlimit`, killing the
//! process group) is [`weft_inference::sandbox`], which the agents' test step
//! shares; this module adds the interpreter and how its failures read.
//!
//! The time limit is CPU time, not wall-clock time: programs run beside a
//! model that takes every core, and a wall-clock limit would then fail
//! correct programs that merely waited for a core (two HumanEval oracle runs
//! did, in CI). [`Sandbox::detect`] probes the isolation candidates once and
//! keeps the strongest that works; the summary records what was used.

use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use weft_inference::sandbox::{Isolation, ProcessLimits, read_tail, run_to_end};
pub use weft_inference::sandbox::{LimitTool, NetworkIsolation};

/// Limits of one run.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The interpreter: a path, or a name looked up on `PATH`.
    pub python: String,
    /// CPU time a program may use (rounded up to whole seconds); the
    /// wall-clock backstop is [`weft_inference::sandbox::wall_clock_limit`] of it.
    pub timeout: Duration,
    /// Address-space limit.
    pub memory_bytes: u64,
    /// Largest file the program may write, its output included.
    pub output_bytes: u64,
}

/// What the sandbox is, for the summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub python: PathBuf,
    pub python_version: String,
    pub network: NetworkIsolation,
    pub limits: LimitTool,
    pub timeout_s: f64,
    pub memory_mb: u64,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    TimedOut,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub status: RunStatus,
    /// The last line of stderr (the exception), or how the process ended.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub duration_ms: f64,
}

#[derive(Clone, Debug)]
pub struct Sandbox {
    python: PathBuf,
    isolation: Isolation,
    config: SandboxConfig,
    python_version: String,
}

impl Sandbox {
    /// Finds the interpreter and the strongest isolation that works here.
    pub fn detect(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let python = resolve_python(&config.python)?;
        let mut version = String::new();
        let found = Isolation::detect(|isolation| {
            let sandbox =
                Sandbox { python: python.clone(), isolation, config: config.clone(), python_version: String::new() };
            let probe = "import sys; print(sys.version.split()[0])";
            match sandbox.run_capturing(probe) {
                Ok((outcome, stdout)) if outcome.status == RunStatus::Passed => {
                    version = stdout.trim().to_owned();
                    true
                }
                _ => false,
            }
        });
        match found {
            Some(isolation) => Ok(Sandbox { python, isolation, config, python_version: version }),
            None => bail!("cannot run {} in a subprocess with resource limits", python.display()),
        }
    }

    pub fn info(&self) -> SandboxInfo {
        SandboxInfo {
            python: self.python.clone(),
            python_version: self.python_version.clone(),
            network: self.isolation.network,
            limits: self.isolation.limits,
            timeout_s: self.config.timeout.as_secs_f64(),
            memory_mb: self.config.memory_bytes >> 20,
        }
    }

    /// Runs `program`; it passes when it exits with status 0.
    pub fn run(&self, program: &str) -> anyhow::Result<RunOutcome> {
        self.run_capturing(program).map(|(outcome, _)| outcome)
    }

    fn run_capturing(&self, program: &str) -> anyhow::Result<(RunOutcome, String)> {
        let dir = tempfile::Builder::new().prefix("weft-eval-").tempdir().context("cannot create a temp dir")?;
        let script = dir.path().join("check.py");
        std::fs::write(&script, program).context("cannot write the program")?;
        let stdout_path = dir.path().join("stdout.txt");
        let stderr_path = dir.path().join("stderr.txt");
        let command = self.command(dir.path());
        let limits = self.limits();
        let finished =
            run_to_end(command, &limits, File::create(&stdout_path)?, File::create(&stderr_path)?, &|| false)
                .context("cannot start the sandboxed interpreter")?;
        let (status, timed_out) = (finished.status, finished.timed_out);
        let duration_ms = finished.duration.as_secs_f64() * 1e3;
        let stdout = read_tail(&stdout_path, 4096);
        let outcome = if timed_out {
            RunOutcome { status: RunStatus::TimedOut, detail: String::new(), duration_ms }
        } else if status.success() {
            RunOutcome { status: RunStatus::Passed, detail: String::new(), duration_ms }
        } else {
            RunOutcome {
                status: RunStatus::Failed,
                detail: failure_detail(status, &read_tail(&stderr_path, 4096)),
                duration_ms,
            }
        };
        Ok((outcome, stdout))
    }

    fn limits(&self) -> ProcessLimits {
        ProcessLimits {
            cpu_time: self.config.timeout,
            memory_bytes: self.config.memory_bytes,
            output_bytes: self.config.output_bytes,
        }
    }

    fn command(&self, dir: &Path) -> Command {
        // `-S`: no `site` module, so no third-party packages (and a fast start).
        let argv = [self.python.display().to_string(), "-S".into(), "-B".into(), "check.py".into()];
        let mut command = self.isolation.command(&self.limits(), &argv, dir);
        // Set and dict orders do not change between runs.
        command.env("PYTHONHASHSEED", "0");
        command
    }
}

/// The interpreter's real path: `python3` on `PATH` may be a shim (pyenv)
/// that needs the environment the sandbox takes away.
fn resolve_python(python: &str) -> anyhow::Result<PathBuf> {
    let output = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {python} (pass --python PATH)"))?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || path.is_empty() {
        bail!("{python} does not report its executable (pass --python PATH)");
    }
    Ok(PathBuf::from(path))
}

/// The exception line of a traceback, or how the process ended.
fn failure_detail(status: ExitStatus, stderr: &str) -> String {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let line: String = line.chars().take(200).collect();
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("killed by signal {signal}"),
        (Some(code), None) if line.is_empty() => format!("exit status {code}"),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use weft_inference::sandbox::wall_clock_limit;

    use super::*;

    fn sandbox(timeout_ms: u64) -> Sandbox {
        Sandbox::detect(SandboxConfig {
            python: "python3".into(),
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes: 512 << 20,
            output_bytes: 1 << 20,
        })
        .unwrap()
    }

    #[test]
    fn passing_failing_and_endless_programs() {
        let sandbox = sandbox(2000);
        assert_eq!(sandbox.run("assert 1 + 1 == 2\n").unwrap().status, RunStatus::Passed);
        let failed = sandbox.run("def f():\n    raise ValueError('nope')\nf()\n").unwrap();
        assert_eq!((failed.status, failed.detail.as_str()), (RunStatus::Failed, "ValueError: nope"));
        let endless = sandbox.run("import os\nos.fork()\nwhile True:\n    pass\n").unwrap();
        // Ended by its CPU limit, or on a busy machine by the backstop: never
        // by itself.
        assert_eq!(endless.status, RunStatus::TimedOut);
    }

    #[test]
    fn a_program_that_blocks_ends_at_the_wall_clock_backstop() {
        let sandbox = sandbox(1000);
        let blocked = sandbox.run("import time\ntime.sleep(60)\n").unwrap();
        assert_eq!(blocked.status, RunStatus::TimedOut);
        let backstop = wall_clock_limit(Duration::from_secs(1)).as_secs_f64() * 1e3;
        // It burns no CPU: only the wall-clock backstop ends it.
        assert!(blocked.duration_ms >= backstop, "{blocked:?}");
    }

    #[test]
    fn the_environment_is_scrubbed_and_the_directory_is_fresh() {
        let sandbox = sandbox(5000);
        let program = "import os, sys\n\
            assert 'CARGO' not in os.environ, sorted(os.environ)\n\
            assert sorted(os.listdir('.')) == ['check.py', 'stderr.txt', 'stdout.txt'], os.listdir('.')\n\
            assert os.environ['PYTHONHASHSEED'] == '0'\n";
        let outcome = sandbox.run(program).unwrap();
        assert_eq!(outcome.status, RunStatus::Passed, "{}", outcome.detail);
    }

    #[test]
    fn memory_is_limited() {
        let outcome = sandbox(5000).run("x = bytearray(1 << 30)\n").unwrap();
        assert_eq!((outcome.status, outcome.detail.as_str()), (RunStatus::Failed, "MemoryError"));
    }

    #[test]
    fn the_network_is_unreachable_where_isolation_works() {
        let sandbox = sandbox(5000);
        let program = "import socket\n\
            s = socket.socket()\n\
            s.settimeout(2)\n\
            s.connect(('1.1.1.1', 80))\n";
        let outcome = sandbox.run(program).unwrap();
        if sandbox.info().network != NetworkIsolation::None {
            assert_eq!(outcome.status, RunStatus::Failed);
            assert!(outcome.detail.contains("unreachable"), "{}", outcome.detail);
        }
    }
}
