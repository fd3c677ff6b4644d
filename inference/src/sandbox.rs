//! Runs a program in a subprocess with resource limits, a scrubbed
//! environment and no network where the OS allows it. Shared by `weft eval`
//! (generated Python) and the agents' test step (the configured test command).
//!
//! The workspace denies `unsafe_code`, so limits are not set with `setrlimit`
//! in a `pre_exec` hook: the program is started through `prlimit` (or
//! `sh -c ulimit …` where `prlimit` is missing) and, for the network,
//! `unshare -n` (root) or `unshare -rn` (an unprivileged user namespace).
//! Programs run under `nice -n 19`, so that they do not take the cores of a
//! model running beside them. Callers probe the [`Isolation`] candidates once
//! ([`Isolation::detect`]) and keep the strongest that works.
//!
//! The time limit is CPU time (`RLIMIT_CPU`): a wall-clock limit would fail
//! correct programs that merely waited for a core. A wall-clock backstop,
//! several times the limit, catches programs that block without computing;
//! either way the whole process group is killed.

use std::fs::File;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

/// The limits of one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessLimits {
    /// CPU time (rounded up to whole seconds); the wall-clock backstop is
    /// [`wall_clock_limit`] of it.
    pub cpu_time: Duration,
    /// Address-space limit.
    pub memory_bytes: u64,
    /// Largest file the program may write, its output included.
    pub output_bytes: u64,
}

/// A way to isolate a program: how the network is taken away and how limits
/// are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    pub network: NetworkIsolation,
    pub limits: LimitTool,
}

impl Isolation {
    /// Every combination, strongest first.
    pub const CANDIDATES: [Isolation; 6] = [
        Isolation { network: NetworkIsolation::Unshare, limits: LimitTool::Prlimit },
        Isolation { network: NetworkIsolation::Unshare, limits: LimitTool::Ulimit },
        Isolation { network: NetworkIsolation::UnshareUser, limits: LimitTool::Prlimit },
        Isolation { network: NetworkIsolation::UnshareUser, limits: LimitTool::Ulimit },
        Isolation { network: NetworkIsolation::None, limits: LimitTool::Prlimit },
        Isolation { network: NetworkIsolation::None, limits: LimitTool::Ulimit },
    ];

    /// The strongest candidate for which `works` (a probe run) says yes.
    pub fn detect(mut works: impl FnMut(Isolation) -> bool) -> Option<Isolation> {
        Isolation::CANDIDATES.into_iter().find(|&isolation| works(isolation))
    }

    /// `argv` wrapped in `nice`, the network isolation and the limits, in
    /// `dir`, with an environment of `PATH`, `HOME` and `TMPDIR` (both `dir`)
    /// and `LANG` only, leading its own process group. Callers add variables
    /// they mean to pass.
    pub fn command(&self, limits: &ProcessLimits, argv: &[String], dir: &Path) -> Command {
        let mut full: Vec<String> = vec!["nice".into(), "-n".into(), "19".into()];
        match self.network {
            NetworkIsolation::Unshare => full.extend(["unshare".into(), "-n".into(), "--".into()]),
            NetworkIsolation::UnshareUser => full.extend(["unshare".into(), "-rn".into(), "--".into()]),
            NetworkIsolation::None => {}
        }
        let cpu_s = cpu_seconds(limits.cpu_time);
        let memory = limits.memory_bytes;
        let output = limits.output_bytes;
        match self.limits {
            LimitTool::Prlimit => full.extend([
                "prlimit".into(),
                format!("--as={memory}"),
                format!("--cpu={cpu_s}"),
                format!("--fsize={output}"),
                "--core=0".into(),
                "--nofile=256".into(),
                "--".into(),
            ]),
            // `ulimit -f` counts 512-byte blocks in POSIX shells.
            LimitTool::Ulimit => full.extend([
                "/bin/sh".into(),
                "-c".into(),
                format!("ulimit -v {} -t {cpu_s} -f {} -c 0 -n 256 && exec \"$@\"", memory >> 10, output / 512),
                "sh".into(),
            ]),
        }
        full.extend(argv.iter().cloned());
        let mut command = Command::new(&full[0]);
        command
            .args(&full[1..])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir)
            .env("TMPDIR", dir)
            .env("LANG", "C.UTF-8")
            .process_group(0);
        command
    }
}

/// How a program ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// It ran past its CPU limit or the wall-clock backstop.
    pub timed_out: bool,
    /// `stop` asked for it to end before it did.
    pub stopped: bool,
    pub duration: Duration,
}

/// Runs `command` (from [`Isolation::command`]) to its end, its output going
/// to `stdout` and `stderr`. The process group is killed at the wall-clock
/// backstop, when `stop` returns true (polled every 50 ms), and after the
/// program exits (children it forked may live on).
pub fn run_to_end(
    mut command: Command,
    limits: &ProcessLimits,
    stdout: File,
    stderr: File,
    stop: &dyn Fn() -> bool,
) -> std::io::Result<Finished> {
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let deadline = started + wall_clock_limit(limits.cpu_time);
    let mut killed_for = None;
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(status) => break status?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if killed_for.is_none() {
                    if stop() {
                        killed_for = Some(true);
                        kill_group(pid);
                    } else if Instant::now() >= deadline {
                        killed_for = Some(false);
                        kill_group(pid);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(std::io::Error::other("the waiting thread died"));
            }
        }
    };
    kill_group(pid);
    // SIGXCPU at the soft limit, SIGKILL at the hard one.
    let over_cpu = killed_for.is_none() && matches!(status.signal(), Some(SIGXCPU | SIGKILL));
    Ok(Finished {
        status,
        timed_out: over_cpu || killed_for == Some(false),
        stopped: killed_for == Some(true),
        duration: started.elapsed(),
    })
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// The CPU-time limit in whole seconds, rounded up (at least one).
pub fn cpu_seconds(timeout: Duration) -> u64 {
    timeout.as_millis().div_ceil(1000).max(1) as u64
}

/// How long a program may take in wall-clock time: generous, as the CPU
/// limit is the real one; this only ends programs that block.
pub fn wall_clock_limit(cpu_time: Duration) -> Duration {
    Duration::from_secs(cpu_seconds(cpu_time)) * 4 + Duration::from_secs(10)
}

/// Kills the process group led by `pid` (the child leads its own group).
pub fn kill_group(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
}

/// The last `max` bytes of a file, as text (cut at a character boundary).
pub fn read_tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned();
    text.trim_start_matches('\u{FFFD}').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(cpu_ms: u64) -> ProcessLimits {
        ProcessLimits { cpu_time: Duration::from_millis(cpu_ms), memory_bytes: 512 << 20, output_bytes: 1 << 20 }
    }

    fn run(argv: &[&str], limits: &ProcessLimits, stop: &dyn Fn() -> bool) -> (Finished, String) {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let isolation = Isolation::detect(|isolation| {
            let command = isolation.command(limits, &["/bin/true".to_owned()], dir.path());
            let out = File::create(dir.path().join("probe")).unwrap();
            let err = out.try_clone().unwrap();
            run_to_end(command, limits, out, err, &|| false).is_ok_and(|f| f.status.success())
        })
        .expect("some isolation works");
        let out_path = dir.path().join("out");
        let out = File::create(&out_path).unwrap();
        let err = out.try_clone().unwrap();
        let finished = run_to_end(isolation.command(limits, &argv, dir.path()), limits, out, err, stop).unwrap();
        (finished, read_tail(&out_path, 4096))
    }

    #[test]
    fn the_environment_is_scrubbed() {
        // Cargo sets CARGO* variables for tests; the child must not see them.
        let (finished, output) = run(&["/bin/sh", "-c", "env"], &limits(2000), &|| false);
        assert!(finished.status.success());
        assert!(!output.contains("CARGO"), "{output}");
        assert!(output.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{output}");
    }

    #[test]
    fn an_endless_program_ends_at_the_cpu_limit() {
        let (finished, _) = run(&["/bin/sh", "-c", "while :; do :; done"], &limits(1000), &|| false);
        assert!(finished.timed_out && !finished.stopped, "{finished:?}");
    }

    #[test]
    fn stop_kills_the_program() {
        let (finished, _) = run(&["/bin/sleep", "60"], &limits(1000), &|| true);
        assert!(finished.stopped && !finished.timed_out, "{finished:?}");
    }
}
