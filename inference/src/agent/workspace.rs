//! The files an agent may read: inside the workspace root only.
//!
//! A path from a model or a user is relative and `/`-separated. It is
//! checked lexically first (no absolute paths, no `..`), then resolved on
//! disk with every symlink followed, and the result must still lie under the
//! canonical root. Open documents of the editor are overlays: an agent sees
//! the text the user sees, saved or not.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Largest file an agent reads.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a path cannot be read (or written through an edit).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{0} is outside the workspace")]
    Outside(String),
    #[error("{0} does not exist in the workspace")]
    NotFound(String),
    #[error("{0} is not a file")]
    NotAFile(String),
    #[error("{0} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge(String),
    #[error("{0} is not UTF-8 text")]
    NotText(String),
    #[error("cannot read {0}: {1}")]
    Io(String, String),
}

/// A workspace root and the editor's unsaved texts.
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
    overlays: HashMap<String, String>,
}

impl Workspace {
    /// The workspace at `root` (which must exist).
    pub fn open(root: &Path) -> Result<Workspace, WorkspaceError> {
        let root =
            root.canonicalize().map_err(|err| WorkspaceError::Io(root.display().to_string(), err.to_string()))?;
        if !root.is_dir() {
            return Err(WorkspaceError::NotAFile(root.display().to_string()));
        }
        Ok(Workspace { root, overlays: HashMap::new() })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads of `path` (relative) see `text` instead of the file.
    pub fn with_overlay(mut self, path: &str, text: String) -> Result<Workspace, WorkspaceError> {
        let path = normalize(path)?;
        self.overlays.insert(path, text);
        Ok(self)
    }

    /// The editor's unsaved texts, by relative path.
    pub fn overlays(&self) -> impl Iterator<Item = (&str, &str)> {
        self.overlays.iter().map(|(path, text)| (path.as_str(), text.as_str()))
    }

    /// The relative form of an absolute path inside the workspace.
    pub fn relative(&self, absolute: &Path) -> Option<String> {
        let canonical = absolute.canonicalize().ok();
        let path = canonical.as_deref().unwrap_or(absolute);
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<String> = relative
            .components()
            .map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// The real path of an existing file, symlinks resolved, checked to lie
    /// inside the workspace.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        let relative = normalize(path)?;
        let joined = self.root.join(&relative);
        let real = joined.canonicalize().map_err(|_| {
            if joined.symlink_metadata().is_ok() {
                // A dangling symlink: where it points is not ours to say.
                WorkspaceError::Outside(relative.clone())
            } else {
                WorkspaceError::NotFound(relative.clone())
            }
        })?;
        if !real.starts_with(&self.root) {
            return Err(WorkspaceError::Outside(relative));
        }
        if !real.is_file() {
            return Err(WorkspaceError::NotAFile(relative));
        }
        Ok(real)
    }

    /// Where an edit of `path` would write: an existing file as
    /// [`Workspace::resolve`] finds it, or a new one whose deepest existing
    /// ancestor lies inside the workspace. Returns the normalized relative
    /// path and whether the file exists.
    pub fn resolve_for_edit(&self, path: &str) -> Result<(String, bool), WorkspaceError> {
        let relative = normalize(path)?;
        if self.overlays.contains_key(&relative) {
            return Ok((relative, true));
        }
        let joined = self.root.join(&relative);
        if joined.symlink_metadata().is_ok() {
            self.resolve(&relative)?;
            return Ok((relative, true));
        }
        let mut ancestor = joined.parent();
        while let Some(dir) = ancestor {
            if dir.symlink_metadata().is_ok() {
                let real = dir.canonicalize().map_err(|err| WorkspaceError::Io(relative.clone(), err.to_string()))?;
                if !real.starts_with(&self.root) || !real.is_dir() {
                    return Err(WorkspaceError::Outside(relative));
                }
                return Ok((relative, false));
            }
            ancestor = dir.parent();
        }
        Err(WorkspaceError::Outside(relative))
    }

    /// Whether `path` names a file an agent may read.
    pub fn exists(&self, path: &str) -> bool {
        normalize(path).is_ok_and(|p| self.overlays.contains_key(&p)) || self.resolve(path).is_ok()
    }

    /// The text of a file (the editor's, when it is open).
    pub fn read(&self, path: &str) -> Result<String, WorkspaceError> {
        let relative = normalize(path)?;
        if let Some(text) = self.overlays.get(&relative) {
            return Ok(text.clone());
        }
        let real = self.resolve(&relative)?;
        let io = |err: std::io::Error| WorkspaceError::Io(relative.clone(), err.to_string());
        let size = real.metadata().map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(WorkspaceError::TooLarge(relative));
        }
        let bytes = std::fs::read(&real).map_err(io)?;
        String::from_utf8(bytes).map_err(|_| WorkspaceError::NotText(relative))
    }

    /// Text files of the workspace, relative and sorted, at most `limit`:
    /// hidden, build and dependency folders are skipped, symlinks are not
    /// followed.
    pub fn files(&self, limit: usize) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut entries: Vec<_> = entries.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries.into_iter().rev() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() && !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                    stack.push(entry.path());
                } else if kind.is_file() && !name.starts_with('.') {
                    let small = entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
                    if let (true, Some(relative)) = (small, self.relative(&entry.path())) {
                        found.push(relative);
                    }
                }
            }
        }
        for overlay in self.overlays.keys() {
            found.push(overlay.clone());
        }
        found.sort();
        found.dedup();
        found.truncate(limit);
        found
    }
}

/// Folders no agent needs to see.
pub(crate) const SKIPPED_DIRS: [&str; 6] = ["target", "node_modules", "__pycache__", "build", "dist", "venv"];

/// A relative path checked lexically: not empty, not absolute, no `..`;
/// `.` parts and empty parts dropped.
pub(crate) fn normalize(path: &str) -> Result<String, WorkspaceError> {
    let outside = || WorkspaceError::Outside(path.to_owned());
    if path.is_empty() || path.contains('\0') {
        return Err(WorkspaceError::NotFound(path.to_owned()));
    }
    if path.starts_with('/') || path.starts_with('\\') || Path::new(path).is_absolute() {
        return Err(outside());
    }
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(outside()),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(WorkspaceError::NotFound(path.to_owned()));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("outside"), "secret\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("src/a.py"), root.join("inner")).unwrap();
        let workspace = Workspace::open(&root).unwrap();
        (dir, workspace)
    }

    #[test]
    fn an_agent_cannot_read_outside_the_workspace() {
        let (_dir, ws) = setup();
        assert_eq!(ws.read("src/a.py").unwrap(), "x = 1\n");
        assert_eq!(ws.read("./src//a.py").unwrap(), "x = 1\n");
        for path in ["../outside", "src/../../outside", "link", "up/outside", "/etc/passwd", "..", ""] {
            let err = ws.read(path).unwrap_err();
            assert!(matches!(err, WorkspaceError::Outside(_) | WorkspaceError::NotFound(_)), "{path}: {err}");
            assert!(ws.resolve_for_edit(path).is_err(), "{path}");
        }
        assert!(matches!(ws.read("../outside"), Err(WorkspaceError::Outside(_))));
        assert!(matches!(ws.read("link"), Err(WorkspaceError::Outside(_))));
        assert!(matches!(ws.resolve_for_edit("up/new.py"), Err(WorkspaceError::Outside(_))));
        // A symlink that stays inside is fine.
        assert_eq!(ws.read("inner").unwrap(), "x = 1\n");
    }

    #[test]
    fn new_files_may_be_proposed_inside_only() {
        let (_dir, ws) = setup();
        assert_eq!(ws.resolve_for_edit("src/new.py").unwrap(), ("src/new.py".to_owned(), false));
        assert_eq!(ws.resolve_for_edit("tests/deep/new.py").unwrap(), ("tests/deep/new.py".to_owned(), false));
        assert_eq!(ws.resolve_for_edit("src/a.py").unwrap(), ("src/a.py".to_owned(), true));
    }

    #[test]
    fn listing_skips_symlinks_and_overlays_win() {
        let (_dir, ws) = setup();
        let ws = ws.with_overlay("src/a.py", "x = 2\n".to_owned()).unwrap();
        assert_eq!(ws.files(100), vec!["src/a.py".to_owned()]);
        assert_eq!(ws.read("src/a.py").unwrap(), "x = 2\n");
    }
}
