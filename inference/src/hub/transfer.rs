//! One file's download: resume, redirects, retries and verification.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, HeaderMap, LOCATION, RANGE};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Hub, Progress, ProgressFn, Verification};

const MAX_REDIRECTS: usize = 10;
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The buffer size for reading and writing model files.
pub(super) const READ_CHUNK: usize = 1 << 20;

/// Why one attempt failed, and whether another attempt may succeed.
pub(super) enum Failure {
    Transient { error: anyhow::Error, progressed: bool },
    Fatal(anyhow::Error),
}

impl Failure {
    pub(super) fn transient(error: impl Into<anyhow::Error>) -> Self {
        Failure::Transient { error: error.into(), progressed: false }
    }

    pub(super) fn fatal(error: impl Into<anyhow::Error>) -> Self {
        Failure::Fatal(error.into())
    }
}

/// Metadata the Hugging Face hub sends with a file of a repository.
#[derive(Clone, Debug, Default)]
struct Linked {
    sha256: Option<String>,
    size: Option<u64>,
    commit: Option<String>,
}

impl Linked {
    fn absorb(&mut self, headers: &HeaderMap) {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(etag) = text("x-linked-etag") {
            let etag = etag.trim().trim_start_matches("W/").trim_matches('"');
            if etag.len() == 64 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.sha256 = Some(etag.to_ascii_lowercase());
            }
        }
        if let Some(size) = text("x-linked-size").and_then(|s| s.trim().parse().ok()) {
            self.size = Some(size);
        }
        if let Some(commit) = text("x-repo-commit") {
            self.commit = Some(commit.to_owned());
        }
    }
}

/// One file to download to `dest`.
pub(super) struct Job<'a> {
    pub(super) url: Url,
    pub(super) dest: PathBuf,
    pub(super) what: &'a str,
    pub(super) sha256: Option<&'a str>,
    pub(super) size: Option<u64>,
    pub(super) token: Option<&'a str>,
}

/// What a finished download was checked against.
pub(super) struct Downloaded {
    pub(super) sha256: String,
    pub(super) verification: Verification,
}

impl Hub {
    /// Runs `attempt` until it succeeds, fails fatally, or runs out of retries.
    pub(super) async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut failures = 0u32;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient { error, progressed }) => {
                    if progressed {
                        failures = 0;
                    }
                    if failures >= self.retries {
                        return Err(error.context(format!("{what} failed after {} attempts", failures + 1)));
                    }
                    let delay = self.backoff.saturating_mul(1u32 << failures.min(16)).min(MAX_BACKOFF);
                    tracing::warn!("{what}: {error:#}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    failures += 1;
                }
            }
        }
    }

    /// Downloads one file with resume, retries and verification.
    pub(super) async fn download(
        &self,
        client: &reqwest::Client,
        job: &Job<'_>,
        progress: ProgressFn<'_>,
    ) -> anyhow::Result<Downloaded> {
        if let Some(expected) = job.sha256 {
            let present = tokio::fs::metadata(&job.dest).await.is_ok_and(|m| m.is_file());
            if present && hash_file(&job.dest).await?.0 == expected {
                return Ok(Downloaded { sha256: expected.to_owned(), verification: Verification::Pinned });
            }
        }
        let what = format!("download of {}", job.what);
        self.retrying(&what, || try_download(client, job, progress)).await
    }
}

/// One attempt at a download: resumes the part file, streams the rest, verifies.
async fn try_download(
    client: &reqwest::Client,
    job: &Job<'_>,
    progress: ProgressFn<'_>,
) -> Result<Downloaded, Failure> {
    let part = part_path(&job.dest);
    let mut offset = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
    if job.size.is_some_and(|size| offset > size) {
        remove_part(&part).await;
        offset = 0;
    }
    if offset > 0 && job.size == Some(offset) && job.sha256.is_some() {
        // Every byte is already there and the registry's hash can vouch for them.
        let (sha256, _) = hash_file(&part).await.map_err(Failure::fatal)?;
        return finish(job, &part, sha256, offset, &Linked::default()).await;
    }

    let (response, url, linked) = open(client, job, offset).await?;
    let status = response.status();
    let resume = match status {
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let (start, _) = content_range(response.headers()).unwrap_or((u64::MAX, None));
            if start != offset {
                remove_part(&part).await;
                return Err(Failure::transient(anyhow!("{url} resumed at byte {start} instead of {offset}")));
            }
            true
        }
        StatusCode::OK => false,
        StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
            let total = content_range(response.headers()).and_then(|(_, t)| t).or(linked.size);
            if total == Some(offset) {
                let (sha256, _) = hash_file(&part).await.map_err(Failure::fatal)?;
                return finish(job, &part, sha256, offset, &linked).await;
            }
            remove_part(&part).await;
            return Err(Failure::transient(anyhow!("stale partial download of {}", job.what)));
        }
        StatusCode::NOT_FOUND => {
            return Err(Failure::fatal(anyhow!("not found (http 404): {url}")));
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Failure::fatal(anyhow!(
                "access denied (http {}) to {url}; a gated or private hugging face repository needs HF_TOKEN",
                status.as_u16()
            )));
        }
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT => {
            return Err(Failure::transient(anyhow!("http {s} from {url}")));
        }
        s => return Err(Failure::fatal(anyhow!("unexpected http {s} from {url}"))),
    };

    let (mut hasher, start) =
        if resume { hash_file_state(&part).await.map_err(Failure::fatal)? } else { (Sha256::new(), 0) };
    let announced = if resume {
        content_range(response.headers()).and_then(|(_, t)| t).or(response.content_length().map(|n| n + start))
    } else {
        response.content_length()
    };
    for (source, size) in [("server", announced), ("hub", linked.size)] {
        if let (Some(expected), Some(size)) = (job.size, size) {
            if expected == size {
                continue;
            }
            remove_part(&part).await;
            return Err(Failure::fatal(anyhow!(
                "size mismatch for {}: the registry expects {expected} bytes but the {source} announces {size}",
                job.what
            )));
        }
    }
    let total = job.size.or(linked.size).or(announced);

    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resume)
        .truncate(!resume)
        .open(&part)
        .await
        .with_context(|| format!("cannot open {}", part.display()))
        .map_err(Failure::fatal)?;
    let mut writer = tokio::io::BufWriter::with_capacity(READ_CHUNK, file);
    let mut downloaded = start;
    progress(Progress { downloaded, total });
    let mut stream = response.bytes_stream();
    let write_error = |e: std::io::Error| Failure::fatal(anyhow!("cannot write {}: {e}", part.display()));
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Keep what arrived so that the next attempt resumes after it.
                writer.flush().await.map_err(write_error)?;
                return Err(Failure::Transient {
                    error: anyhow!("connection to {url} broke after {downloaded} bytes: {e}"),
                    progressed: downloaded > start,
                });
            }
        };
        if let Some(total) = total.filter(|&t| downloaded + chunk.len() as u64 > t) {
            drop(writer);
            remove_part(&part).await;
            return Err(Failure::fatal(anyhow!("{url} sent more than the {total} bytes expected of {}", job.what)));
        }
        writer.write_all(&chunk).await.map_err(write_error)?;
        hasher.update(&chunk);
        downloaded += chunk.len() as u64;
        progress(Progress { downloaded, total });
    }
    writer.flush().await.map_err(write_error)?;
    writer.get_ref().sync_all().await.map_err(write_error)?;
    drop(writer);
    if let Some(total) = total.filter(|&t| downloaded < t) {
        return Err(Failure::Transient {
            error: anyhow!("connection to {url} closed after {downloaded} of {total} bytes"),
            progressed: downloaded > start,
        });
    }
    finish(job, &part, hex::encode(hasher.finalize()), downloaded, &linked).await
}

/// Checks a complete part file's size and hash, then renames it into place.
async fn finish(job: &Job<'_>, part: &Path, sha256: String, size: u64, linked: &Linked) -> Result<Downloaded, Failure> {
    // The first problem found is the one reported.
    let wrong_size = [job.size, linked.size].into_iter().flatten().find(|&e| e != size);
    let problem = if let Some(expected) = wrong_size {
        Some(format!("size mismatch for {}: expected {expected} bytes, got {size}", job.what))
    } else if let Some(expected) = job.sha256.filter(|&e| e != sha256) {
        Some(format!("checksum mismatch for {}: expected sha256 {expected}, got {sha256}", job.what))
    } else {
        linked.sha256.as_ref().filter(|&e| *e != sha256).map(|expected| {
            format!("checksum mismatch for {}: the hub announces sha256 {expected}, got {sha256}", job.what)
        })
    };
    if let Some(problem) = problem {
        remove_part(part).await;
        return Err(Failure::fatal(anyhow!(problem)));
    }
    tokio::fs::rename(part, &job.dest)
        .await
        .with_context(|| format!("cannot move {} into place", part.display()))
        .map_err(Failure::fatal)?;
    if let Some(commit) = &linked.commit {
        tracing::debug!(file = %job.dest.display(), %commit, "downloaded from repository commit");
    }
    let verification = if job.sha256.is_some() {
        Verification::Pinned
    } else if linked.sha256.is_some() {
        Verification::Upstream
    } else {
        Verification::Unverified
    };
    Ok(Downloaded { sha256, verification })
}

/// Sends the request, following redirects by hand so that the hub's `x-linked-*`
/// headers are kept and the token goes to the first host only.
async fn open(
    client: &reqwest::Client,
    job: &Job<'_>,
    offset: u64,
) -> Result<(reqwest::Response, Url, Linked), Failure> {
    let origin = job.url.origin();
    let mut url = job.url.clone();
    let mut linked = Linked::default();
    for _ in 0..=MAX_REDIRECTS {
        let mut request = client.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        if let Some(token) = job.token.filter(|_| url.origin() == origin) {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| Failure::transient(anyhow!("request to {url} failed: {e}")))?;
        linked.absorb(response.headers());
        if !response.status().is_redirection() {
            return Ok((response, url, linked));
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Failure::fatal(anyhow!("redirect without a location from {url}")))?;
        url = url.join(location).map_err(|e| Failure::fatal(anyhow!("bad redirect `{location}` from {url}: {e}")))?;
    }
    Err(Failure::fatal(anyhow!("too many redirects from {}", job.url)))
}

/// A client that leaves redirects to [`open`], so that no header is lost on the way.
pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .build()
        .context("cannot build the http client")
}

/// Parses `Content-Range: bytes START-END/TOTAL` or `bytes */TOTAL`.
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?.trim();
    let rest = value.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    let start = match range.trim() {
        "*" => 0,
        range => range.split_once('-')?.0.trim().parse().ok()?,
    };
    Some((start, total))
}

pub(super) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    dest.with_file_name(name)
}

pub(super) async fn remove_part(part: &Path) {
    match tokio::fs::remove_file(part).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %part.display(), "cannot remove partial download: {e}");
        }
        _ => {}
    }
}

/// Hashes a whole file off the async threads; returns the hex digest and the length.
pub(super) async fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let (hasher, len) = hash_file_state(path).await?;
    Ok((hex::encode(hasher.finalize()), len))
}

/// Feeds a whole file to a fresh hasher, so that a resumed download can continue it.
async fn hash_file_state(path: &Path) -> anyhow::Result<(Sha256, u64)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; READ_CHUNK];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                return Ok((hasher, len));
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
    })
    .await
    .context("hashing panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range(&headers), Some((100, Some(200))));
        headers.insert(CONTENT_RANGE, "bytes */200".parse().unwrap());
        assert_eq!(content_range(&headers), Some((0, Some(200))));
    }

    #[test]
    fn linked_etag_is_unquoted() {
        let mut headers = HeaderMap::new();
        let sha = "ab".repeat(32);
        headers.insert("x-linked-etag", format!("\"{sha}\"").parse().unwrap());
        headers.insert("x-linked-size", "42".parse().unwrap());
        let mut linked = Linked::default();
        linked.absorb(&headers);
        assert_eq!(linked.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(linked.size, Some(42));
    }
}
