//! Runs generated Python in a subprocess: a fresh temporary directory, a
//! scrubbed environment, a time limit, limits on memory, file size and open
//! files, and no network where the OS allows it.
//!
//! The time limit is CPU time (`RLIMIT_CPU`), not wall-clock time: programs
//! run under `nice -n 19` beside a model that takes every core, and a
//! wall-clock limit would then fail correct programs that merely waited for
//! a core (two HumanEval oracle runs did, in CI). Endless loops still end at
//! the limit, as they burn CPU. A wall-clock backstop, several times the
//! limit, catches programs that block without computing; either way the whole
//! process group is killed.
//!
//! The workspace denies `unsafe_code`, so limits are not set with `setrlimit`
//! in a `pre_exec` hook: the interpreter is started through `prlimit` (or
//! `sh -c ulimit …` where `prlimit` is missing) and, for the network,
//! `unshare -n` (root) or `unshare -rn` (an unprivileged user namespace).
//! Programs run under `nice -n 19`, so that tests running beside a model
//! do not take its cores (llama.cpp's threads wait for each other, so one
//! busy core slows every step).
//! [`Sandbox::detect`] probes these once and keeps what works; the summary
//! records what was used.

use std::fs::File;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Limits of one run.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The interpreter: a path, or a name looked up on `PATH`.
    pub python: String,
    /// CPU time a program may use (rounded up to whole seconds); the
    /// wall-clock backstop is [`wall_clock_limit`] of it.
    pub timeout: Duration,
    /// Address-space limit.
    pub memory_bytes: u64,
    /// Largest file the program may write, its output included.
    pub output_bytes: u64,
}

/// How network access is taken away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkIsolation {
    /// `unshare -n`: a new network namespace (needs root).
    Unshare,
    /// `unshare -rn`: a new network namespace in a new user namespace.
    UnshareUser,
    /// The OS allowed neither: the program can reach the network.
    None,
}

/// How resource limits are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitTool {
    Prlimit,
    Ulimit,
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
    network: NetworkIsolation,
    limits: LimitTool,
    config: SandboxConfig,
    python_version: String,
}

impl Sandbox {
    /// Finds the interpreter and the strongest isolation that works here.
    pub fn detect(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let python = resolve_python(&config.python)?;
        for network in [NetworkIsolation::Unshare, NetworkIsolation::UnshareUser, NetworkIsolation::None] {
            for limits in [LimitTool::Prlimit, LimitTool::Ulimit] {
                let sandbox = Sandbox {
                    python: python.clone(),
                    network,
                    limits,
                    config: config.clone(),
                    python_version: String::new(),
                };
                let probe = "import sys; print(sys.version.split()[0])";
                match sandbox.run_capturing(probe) {
                    Ok((outcome, stdout)) if outcome.status == RunStatus::Passed => {
                        return Ok(Sandbox { python_version: stdout.trim().to_owned(), ..sandbox });
                    }
                    _ => {}
                }
            }
        }
        bail!("cannot run {} in a subprocess with resource limits", python.display())
    }

    pub fn info(&self) -> SandboxInfo {
        SandboxInfo {
            python: self.python.clone(),
            python_version: self.python_version.clone(),
            network: self.network,
            limits: self.limits,
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
        let mut command = self.command(dir.path());
        command.stdin(Stdio::null()).stdout(File::create(&stdout_path)?).stderr(File::create(&stderr_path)?);
        let started = Instant::now();
        let mut child = command.spawn().context("cannot start the sandboxed interpreter")?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let (status, timed_out) = match rx.recv_timeout(wall_clock_limit(self.config.timeout)) {
            Ok(status) => {
                let status = status?;
                // SIGXCPU at the soft limit, SIGKILL at the hard one.
                let over_cpu = matches!(status.signal(), Some(SIGXCPU | SIGKILL));
                (status, over_cpu)
            }
            Err(_) => {
                kill_group(pid);
                (rx.recv().context("the waiting thread died")??, true)
            }
        };
        // Children the program forked may live on after it: end them too.
        kill_group(pid);
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
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

    fn command(&self, dir: &Path) -> Command {
        // Tests yield the CPU to inference, which runs beside them.
        let mut argv: Vec<String> = vec!["nice".into(), "-n".into(), "19".into()];
        argv.extend::<Vec<String>>(match self.network {
            NetworkIsolation::Unshare => vec!["unshare".into(), "-n".into(), "--".into()],
            NetworkIsolation::UnshareUser => vec!["unshare".into(), "-rn".into(), "--".into()],
            NetworkIsolation::None => Vec::new(),
        });
        let cpu_s = cpu_seconds(self.config.timeout);
        let memory = self.config.memory_bytes;
        let output = self.config.output_bytes;
        match self.limits {
            LimitTool::Prlimit => argv.extend([
                "prlimit".into(),
                format!("--as={memory}"),
                format!("--cpu={cpu_s}"),
                format!("--fsize={output}"),
                "--core=0".into(),
                "--nofile=256".into(),
                "--".into(),
            ]),
            // `ulimit -f` counts 512-byte blocks in POSIX shells.
            LimitTool::Ulimit => argv.extend([
                "/bin/sh".into(),
                "-c".into(),
                format!("ulimit -v {} -t {cpu_s} -f {} -c 0 -n 256 && exec \"$@\"", memory >> 10, output / 512),
                "sh".into(),
            ]),
        }
        // `-S`: no `site` module, so no third-party packages (and a fast start).
        argv.extend([self.python.display().to_string(), "-S".into(), "-B".into(), "check.py".into()]);
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .env("LANG", "C.UTF-8")
            // Set and dict orders do not change between runs.
            .env("PYTHONHASHSEED", "0")
            .process_group(0);
        command
    }
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// The CPU-time limit in whole seconds, rounded up (at least one).
fn cpu_seconds(timeout: Duration) -> u64 {
    timeout.as_millis().div_ceil(1000).max(1) as u64
}

/// How long a program may take in wall-clock time: generous, as the CPU
/// limit is the real one; this only ends programs that block.
pub fn wall_clock_limit(timeout: Duration) -> Duration {
    Duration::from_secs(cpu_seconds(timeout)) * 4 + Duration::from_secs(10)
}

/// Kills the process group led by `pid` (the child leads its own group).
fn kill_group(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
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

/// The last `max` bytes of a file, as text.
fn read_tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned()
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
        assert_eq!(endless.status, RunStatus::TimedOut);
        assert!(endless.duration_ms < wall_clock_limit(Duration::from_secs(2)).as_secs_f64() * 1e3);
    }

    #[test]
    fn a_program_that_blocks_ends_at_the_wall_clock_backstop() {
        let sandbox = sandbox(1000);
        let blocked = sandbox.run("import time\ntime.sleep(60)\n").unwrap();
        assert_eq!(blocked.status, RunStatus::TimedOut);
        let backstop = wall_clock_limit(Duration::from_secs(1)).as_secs_f64() * 1e3;
        assert!(blocked.duration_ms >= backstop && blocked.duration_ms < backstop + 5000.0, "{blocked:?}");
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
