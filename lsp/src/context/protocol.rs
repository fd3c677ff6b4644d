//! The protocol side of the context engine: LSP notifications turned into
//! the engine's plain-data calls. Only `server.rs` uses this module.

use std::path::PathBuf;

use serde::Deserialize;
use tower_lsp_server::ls_types::{
    DidChangeWatchedFilesParams, DidChangeWatchedFilesRegistrationOptions, FileChangeType, FileSystemWatcher,
    GlobPattern, InitializeParams, Registration, Uri, WorkspaceFolder,
};

use super::FileEvent;

/// The custom notification with which a client pushes files as context
/// (Code4me's explicit context).
pub const CONTEXT_UPDATE: &str = "weft/contextUpdate";

/// The parameters of `weft/contextUpdate`.
#[derive(Clone, Debug, Deserialize)]
pub struct ContextUpdateParams {
    pub files: Vec<ContextFile>,
}

/// One pushed file: where it is (a URI or a path) and its text.
#[derive(Clone, Debug, Deserialize)]
pub struct ContextFile {
    #[serde(default)]
    pub uri: Option<Uri>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    pub text: String,
}

impl ContextUpdateParams {
    /// The files as paths and texts; entries without a usable location are
    /// left out.
    pub fn into_files(self) -> Vec<(PathBuf, String)> {
        self.files
            .into_iter()
            .filter_map(|f| {
                let path = f.path.or_else(|| f.uri.as_ref().and_then(|u| u.to_file_path()).map(|p| p.into_owned()))?;
                Some((path, f.text))
            })
            .collect()
    }
}

/// The workspace roots a client names at `initialize`: its folders, or
/// else its root URI.
pub fn initial_roots(params: &InitializeParams) -> Vec<PathBuf> {
    let folders = params.workspace_folders.as_deref().unwrap_or_default();
    let mut roots = folder_paths(folders);
    if roots.is_empty() {
        #[allow(deprecated)]
        roots.extend(params.root_uri.as_ref().and_then(|uri| uri.to_file_path()).map(|p| p.into_owned()));
    }
    roots
}

pub fn folder_paths(folders: &[WorkspaceFolder]) -> Vec<PathBuf> {
    folders.iter().filter_map(|f| f.uri.to_file_path()).map(|p| p.into_owned()).collect()
}

/// Whether the client lets the server register a file watcher.
pub fn can_watch_files(params: &InitializeParams) -> bool {
    params
        .capabilities
        .workspace
        .as_ref()
        .and_then(|w| w.did_change_watched_files.as_ref())
        .and_then(|d| d.dynamic_registration)
        .unwrap_or(false)
}

/// The registration of a watcher for every file of the workspace.
pub fn watcher_registration() -> Registration {
    let options = DidChangeWatchedFilesRegistrationOptions {
        watchers: vec![FileSystemWatcher { glob_pattern: GlobPattern::String("**/*".to_owned()), kind: None }],
    };
    Registration {
        id: "weft-context-watcher".to_owned(),
        method: "workspace/didChangeWatchedFiles".to_owned(),
        register_options: serde_json::to_value(options).ok(),
    }
}

/// `workspace/didChangeWatchedFiles` as engine events.
pub fn file_events(params: DidChangeWatchedFilesParams) -> Vec<FileEvent> {
    params
        .changes
        .into_iter()
        .filter_map(|change| {
            let path = change.uri.to_file_path()?.into_owned();
            Some(if change.typ == FileChangeType::DELETED {
                FileEvent::Deleted(path)
            } else {
                FileEvent::Changed(path)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn context_updates_take_uris_or_paths() {
        let params: ContextUpdateParams = serde_json::from_value(json!({
            "files": [
                { "uri": "file:///w/a.py", "text": "def a(): pass" },
                { "path": "/w/b.py", "text": "def b(): pass" },
                { "text": "nowhere" },
            ]
        }))
        .unwrap();
        let files = params.into_files();
        assert_eq!(
            files,
            vec![
                (PathBuf::from("/w/a.py"), "def a(): pass".to_owned()),
                (PathBuf::from("/w/b.py"), "def b(): pass".to_owned())
            ]
        );
    }

    #[test]
    fn watched_file_changes_become_engine_events() {
        let params: DidChangeWatchedFilesParams = serde_json::from_value(json!({
            "changes": [
                { "uri": "file:///w/a.py", "type": 1 },
                { "uri": "file:///w/b.py", "type": 2 },
                { "uri": "file:///w/c.py", "type": 3 },
            ]
        }))
        .unwrap();
        assert_eq!(
            file_events(params),
            vec![
                FileEvent::Changed(PathBuf::from("/w/a.py")),
                FileEvent::Changed(PathBuf::from("/w/b.py")),
                FileEvent::Deleted(PathBuf::from("/w/c.py")),
            ]
        );
    }
}
