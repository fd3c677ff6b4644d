//! What the telemetry tests run: Postgres (the server `DATABASE_URL` names,
//! or a throwaway cluster of the test's own), the real `weft-telemetry-api`
//! binary, a tiny HTTP client for it, and `psql` for looking at the rows.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The directory of the Postgres server binaries: where `initdb` on `PATH`
/// lives, else the newest `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // Follow a link (`/usr/local/bin/initdb`) to the directory that
            // holds the other binaries too.
            let initdb = dir.join("initdb").canonicalize().ok();
            if let Some(bin) = initdb.as_deref().and_then(Path::parent).filter(|bin| bin.join("pg_ctl").is_file()) {
                return bin.to_owned();
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").is_file());
    versions.sort_by_key(|dir| {
        dir.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().expect("Postgres server binaries (initdb) not found on PATH or in /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A command that runs as the `postgres` user when we are root (initdb and
/// postgres refuse to run as root).
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.stdin(Stdio::null()).output().unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Postgres cluster in a temporary directory, owned by the test: it can
/// be restarted at will.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new().prefix("weft-pg-").tempdir().unwrap();
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&socket).unwrap();
        if is_root() {
            run(Command::new("chmod").arg("755").arg(dir.path()), "chmod");
            run(Command::new("chown").arg("postgres").arg(&data).arg(&socket), "chown");
        }
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        run(&mut initdb, "initdb");
        let cluster = PgCluster { dir, bin, port: free_port() };
        cluster.pg_ctl("start");
        cluster
    }

    fn pg_ctl(&self, action: &str) {
        let mut command = as_owner(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "-t", "60"]);
        if action != "stop" {
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
                self.port,
                self.dir.path().join("socket").display()
            );
            command.arg("-o").arg(options).arg("-l").arg(self.dir.path().join("socket/postgres.log"));
        }
        command.arg(action);
        run(&mut command, &format!("pg_ctl {action}"));
    }

    /// Stops the server abruptly (`-m immediate`, like a crash: recovery on
    /// start) and starts it again.
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut command = as_owner(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "stop"]);
        let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// Runs SQL with `psql` and returns the rows, one string per row with the
/// columns separated by `|`.
pub fn psql(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let out = Command::new(postgres_bin().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("psql: {err}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

/// A fresh database on the server at `server_url`; dropped with the value.
pub struct TestDatabase {
    server_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create(server_url: &str, prefix: &str) -> TestDatabase {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000);
        psql(server_url, &format!("create database {name}")).expect("create the test database");
        let (base, _) = server_url.rsplit_once('/').expect("a database URL ending in /DBNAME");
        TestDatabase { server_url: server_url.to_owned(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(&self.server_url, &format!("drop database if exists {} with (force)", self.name));
    }
}

/// `DATABASE_URL` (what `make test` sets), or the URL
/// `telemetry-api/scripts/test-db.sh` prints.
pub fn database_server_url() -> String {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty()) {
        return url;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../telemetry-api/scripts/test-db.sh");
    let out = Command::new(&script).output().expect("run telemetry-api/scripts/test-db.sh");
    assert!(out.status.success(), "test-db.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The real `weft-telemetry-api`, beside the `weft` binary.
pub struct Api {
    child: Child,
    database_url: String,
    pub port: u16,
}

impl Api {
    pub fn start(database_url: &str, port: u16) -> Api {
        let bin = weft_e2e::weft_binary().with_file_name(format!("weft-telemetry-api{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} is missing: run `cargo build --workspace`", bin.display());
        let child = Command::new(bin)
            .args(["--database-url", database_url, "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start weft-telemetry-api");
        let mut api = Api { child, database_url: database_url.to_owned(), port };
        api.wait_healthy();
        api
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = self.request("GET", "/health", None, None) {
                return;
            }
            assert!(self.child.try_wait().unwrap().is_none(), "weft-telemetry-api exited at start");
            assert!(Instant::now() < deadline, "weft-telemetry-api did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process with SIGKILL (no graceful shutdown).
    pub fn kill(mut self) -> (String, u16) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.database_url.clone(), self.port)
    }

    /// One HTTP/1.1 request with a JSON body; returns status and JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> std::io::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    /// Registers an account and logs in; returns (user id, bearer token).
    pub fn register(&self, email: &str) -> (String, String) {
        let credentials = json!({ "email": email, "password": "correct horse battery" });
        let (status, body) = self.request("POST", "/v1/auth/register", Some(&credentials), None).unwrap();
        assert_eq!(status, 201, "register: {body}");
        let (status, body) = self.request("POST", "/v1/auth/login", Some(&credentials), None).unwrap();
        assert_eq!(status, 200, "login: {body}");
        (body["user"]["id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
