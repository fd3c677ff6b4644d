//! Finding a workspace's source files: `.gitignore` and friends respected
//! (the `ignore` crate, as ripgrep does), vendored and generated
//! directories, oversized, minified and binary files skipped.

use std::path::{Path, PathBuf};

use super::lang::Lang;

/// Directories that hold code nobody here wrote, or built output, even
/// where no `.gitignore` says so.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    "third_party",
    "third-party",
    "target",
    "dist",
    "build",
    "out",
    "__pycache__",
    ".venv",
    "venv",
    "site-packages",
    "bower_components",
    "Pods",
];

/// Lines longer than this on average mark a minified or generated file.
const MAX_MEAN_LINE_BYTES: usize = 300;

/// Source files under `root` that the index takes, in a stable order.
pub fn source_files(root: &Path, max_file_bytes: u64) -> Vec<PathBuf> {
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        // Respect a `.gitignore` even where the workspace is not (yet) a repository.
        .require_git(false)
        .max_filesize(Some(max_file_bytes))
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && entry.depth() > 0 && entry.file_name().to_str().is_some_and(|n| SKIPPED_DIRS.contains(&n)))
        });
    builder
        .build()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
        .map(ignore::DirEntry::into_path)
        .filter(|path| Lang::from_path(path).is_some())
        .collect()
}

/// Reads a source file, or says why it is not indexed.
pub fn read_source(path: &Path, max_file_bytes: u64) -> Result<String, &'static str> {
    let bytes = std::fs::read(path).map_err(|_| "unreadable")?;
    if bytes.len() as u64 > max_file_bytes {
        return Err("too large");
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err("binary");
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let lines = text.lines().count().max(1);
    if text.len() / lines > MAX_MEAN_LINE_BYTES {
        return Err("minified");
    }
    Ok(text)
}
