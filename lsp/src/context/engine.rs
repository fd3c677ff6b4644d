//! The context engine's state and its entry points: workspace roots and
//! background indexing, document events, retrieval.
//!
//! One mutex guards the state. Parsing a file from disk happens outside
//! it; the lock is held to insert the result, to apply an editor's change
//! to an open document (an incremental reparse of one file), and for a
//! retrieval, each of which takes well under a millisecond on typical files.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ropey::Rope;
use serde::Serialize;

use super::index::{Index, IndexedFile, Origin};
use super::lang::Lang;
use super::parsed::ParsedFile;
use super::retrieve::{RecentText, World, retrieve};
use super::similar::{self, Window};
use super::symbols::FileSymbols;
use super::walk::{read_source, source_files};
use super::{ContextConfig, Retrieval};
use crate::document::{ContentChange, TextEdit};

/// Files larger than this get no similarity windows: they cost time to
/// window and seldom hold a snippet worth its room.
const MAX_WINDOWED_BYTES: usize = 256 << 10;

/// The similarity windows of a text, or none for a large one.
fn windows_of(text: &str) -> Vec<Window> {
    if text.len() > MAX_WINDOWED_BYTES { Vec::new() } else { similar::windows(text) }
}

/// A cursor to retrieve context for.
#[derive(Clone, Debug)]
pub struct ContextQuery<'a> {
    /// The document, which must be open in the engine.
    pub path: &'a Path,
    /// The cursor, in bytes.
    pub cursor: usize,
    /// The bytes of the document that the prompt shows (its prefix and
    /// suffix windows); context already there is not repeated.
    pub window: Range<usize>,
}

/// A change to a file made outside the editor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// Created or changed on disk.
    Changed(PathBuf),
    Deleted(PathBuf),
}

/// How far indexing has come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IndexStatus {
    /// Whether the roots have been indexed completely.
    pub ready: bool,
    pub files: usize,
    pub bytes: usize,
    /// Files left out: unreadable, binary, minified, too large.
    pub skipped: usize,
    pub millis: u64,
}

/// The context engine of one server. Cloning shares it.
#[derive(Clone)]
pub struct ContextEngine {
    shared: Arc<Shared>,
}

struct Shared {
    config: ContextConfig,
    state: Mutex<State>,
    indexed: Condvar,
    /// Bumped when the roots change; an indexing run of an older epoch stops.
    epoch: AtomicU64,
}

#[derive(Default)]
struct State {
    index: Index,
    open: HashMap<PathBuf, ParsedFile>,
    roots: Vec<PathBuf>,
    /// Recently edited, viewed or pushed files, most recent first.
    recent: VecDeque<PathBuf>,
    /// The texts of recent files that are not open, with a revision.
    texts: HashMap<PathBuf, (String, Lang, u64)>,
    windows: HashMap<PathBuf, (u64, Vec<Window>)>,
    status: IndexStatus,
    next_revision: u64,
    /// The last retrieval, kept while the user types near it.
    sticky: Option<Sticky>,
}

/// A retrieval kept for the next ones nearby.
struct Sticky {
    path: PathBuf,
    /// The cursor's line (0-based) when it was made.
    line: usize,
    retrieval: Retrieval,
}

impl ContextEngine {
    pub fn new(config: ContextConfig) -> Self {
        let shared = Shared { config, state: Mutex::default(), indexed: Condvar::new(), epoch: AtomicU64::new(0) };
        ContextEngine { shared: Arc::new(shared) }
    }

    pub fn config(&self) -> &ContextConfig {
        &self.shared.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the index, for tests that compare indexes.
    #[cfg(test)]
    pub(crate) fn with_index<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.state().index)
    }

    /// How far indexing has come.
    pub fn status(&self) -> IndexStatus {
        let state = self.state();
        IndexStatus { files: state.index.len(), bytes: state.index.source_bytes(), ..state.status.clone() }
    }

    /// An estimate of the heap memory the index holds.
    pub fn index_heap_bytes(&self) -> usize {
        self.state().index.heap_bytes()
    }

    /// Sets the workspace roots and indexes them on a background thread.
    /// Retrieval uses only the current and recent files until it is done.
    pub fn set_roots(&self, roots: Vec<PathBuf>) {
        let epoch = self.begin(roots.clone());
        if !self.shared.config.cross_file {
            return;
        }
        let engine = self.clone();
        let spawned =
            std::thread::Builder::new().name("weft-index".to_owned()).spawn(move || engine.index_roots(&roots, epoch));
        if let Err(err) = spawned {
            tracing::error!("cannot start the indexing thread: {err}");
        }
    }

    /// Sets the roots and indexes them on this thread.
    pub fn set_roots_blocking(&self, roots: Vec<PathBuf>) {
        let epoch = self.begin(roots.clone());
        if self.shared.config.cross_file {
            self.index_roots(&roots, epoch);
        }
    }

    /// Waits until indexing is done; false on time-out.
    pub fn wait_until_indexed(&self, timeout: Duration) -> bool {
        let state = self.state();
        let (state, _) = self
            .shared
            .indexed
            .wait_timeout_while(state, timeout, |s| !s.status.ready)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.status.ready
    }

    /// Records new roots, drops files of removed ones, and starts an epoch.
    fn begin(&self, roots: Vec<PathBuf>) -> u64 {
        let epoch = self.shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state();
        for old in std::mem::take(&mut state.roots) {
            if !roots.contains(&old) {
                state.index.remove_under(&old);
            }
        }
        state.roots = roots;
        state.status = IndexStatus::default();
        state.sticky = None;
        epoch
    }

    fn index_roots(&self, roots: &[PathBuf], epoch: u64) {
        let started = Instant::now();
        let max_bytes = self.shared.config.max_file_bytes;
        let mut skipped = 0;
        for root in roots {
            for path in source_files(root, max_bytes) {
                if self.shared.epoch.load(Ordering::SeqCst) != epoch {
                    return;
                }
                match read_source(&path, max_bytes) {
                    Ok(text) => self.index_text(path, text, Origin::Disk),
                    Err(_) => skipped += 1,
                }
            }
        }
        let mut state = self.state();
        if self.shared.epoch.load(Ordering::SeqCst) == epoch {
            state.status.ready = true;
            state.status.skipped = skipped;
            state.sticky = None;
            state.status.millis = started.elapsed().as_millis() as u64;
            tracing::info!(files = state.index.len(), skipped, millis = state.status.millis, "workspace indexed");
            self.shared.indexed.notify_all();
        }
    }

    /// Parses a file's text (outside the lock) and puts its symbols in the
    /// index, unless the editor has it open.
    fn index_text(&self, path: PathBuf, text: String, origin: Origin) {
        let Some(lang) = Lang::from_path(&path) else { return };
        let tree = super::parsed::parse(lang, &text, None);
        let symbols = FileSymbols::extract(lang, &tree, &text);
        drop(tree);
        let mut state = self.state();
        if state.open.contains_key(&path) {
            return;
        }
        state.sticky = None;
        let display = state.display(&path);
        state.index.insert(IndexedFile { path, display: display.into(), lang, symbols, bytes: text.len(), origin });
    }

    /// `textDocument/didOpen`.
    pub fn open(&self, path: &Path, language_id: &str, text: &str) {
        let Some(lang) = Lang::from_language_id(language_id).or_else(|| Lang::from_path(path)) else { return };
        let mut parsed = ParsedFile::new(lang, text.to_owned());
        let windows = windows_of(text);
        let mut state = self.state();
        state.forget_sticky_unless(path);
        parsed.revision = state.revision();
        state.windows.insert(path.to_path_buf(), (parsed.revision, windows));
        state.texts.remove(path);
        state.open.insert(path.to_path_buf(), parsed);
        state.reindex_open(path);
        state.touch(path, self.shared.config.recent_files);
    }

    /// `textDocument/didChange`: `edits` as [`crate::document::DocumentStore::change`]
    /// returned them for `changes`, and the document's text after them.
    pub fn change(&self, path: &Path, edits: &[TextEdit], changes: &[ContentChange], current: &Rope) {
        let mut guard = self.state();
        let state = &mut *guard;
        // Edits of the document itself keep its retrieval (the cursor's
        // distance from it decides); edits elsewhere may change it.
        state.forget_sticky_unless(path);
        let revision = state.revision();
        let Some(parsed) = state.open.get_mut(path) else { return };
        parsed.revision = revision;
        let pairs: Vec<(TextEdit, &str)> = edits.iter().copied().zip(changes.iter().map(|c| c.text.as_str())).collect();
        if pairs.len() != changes.len() || !parsed.apply(&pairs) || parsed.text().len() != current.len_bytes() {
            tracing::debug!(path = %path.display(), "reparsing from scratch");
            parsed.replace(current.to_string());
        }
        state.reindex_open(path);
        state.touch(path, self.shared.config.recent_files);
    }

    /// `textDocument/didClose`: the file's symbols go back to what the
    /// disk has; its text stays among the recent files.
    pub fn close(&self, path: &Path) {
        let Some(parsed) = self.state().open.remove(path) else { return };
        // The text stays among the recent files; its windows are computed
        // here rather than by the next retrieval.
        let windows = windows_of(parsed.text());
        let under_root = {
            let mut state = self.state();
            state.sticky = None;
            state.index.remove(path);
            if state.recent.iter().any(|p| p == path) {
                state.windows.insert(path.to_path_buf(), (parsed.revision, windows));
                state.texts.insert(path.to_path_buf(), (parsed.text().to_owned(), parsed.lang, parsed.revision));
            }
            state.roots.iter().any(|r| path.starts_with(r))
        };
        if under_root
            && self.shared.config.cross_file
            && let Ok(text) = read_source(path, self.shared.config.max_file_bytes)
        {
            self.index_text(path.to_path_buf(), text, Origin::Disk);
        }
    }

    /// `textDocument/didSave` or a view: the file becomes the most recent.
    pub fn touch(&self, path: &Path) {
        let mut state = self.state();
        state.forget_sticky_unless(path);
        state.touch(path, self.shared.config.recent_files);
    }

    /// `workspace/didChangeWatchedFiles`: changes made outside the editor.
    pub fn file_events(&self, events: Vec<FileEvent>) {
        for event in events {
            match event {
                FileEvent::Deleted(path) => {
                    let mut state = self.state();
                    state.sticky = None;
                    if !state.open.contains_key(&path) {
                        // A deleted directory takes its files with it.
                        state.index.remove_under(&path);
                        state.index.remove(&path);
                        state.texts.remove(&path);
                    }
                }
                FileEvent::Changed(path) => {
                    let under_root = self.state().roots.iter().any(|r| path.starts_with(r));
                    if !under_root || !self.shared.config.cross_file {
                        continue;
                    }
                    match read_source(&path, self.shared.config.max_file_bytes) {
                        Ok(text) => self.index_text(path, text, Origin::Disk),
                        Err(_) => {
                            let mut state = self.state();
                            state.sticky = None;
                            state.index.remove(&path);
                        }
                    }
                }
            }
        }
    }

    /// `weft/contextUpdate`: files the client wants used as context.
    pub fn push(&self, files: Vec<(PathBuf, String)>) {
        for (path, text) in files {
            let Some(lang) = Lang::from_path(&path) else { continue };
            if self.state().open.contains_key(&path) {
                continue;
            }
            self.index_text(path.clone(), text.clone(), Origin::Pushed);
            let windows = windows_of(&text);
            let mut state = self.state();
            state.sticky = None;
            let revision = state.revision();
            state.windows.insert(path.clone(), (revision, windows));
            state.texts.insert(path.clone(), (text, lang, revision));
            state.touch(&path, self.shared.config.recent_files);
        }
    }

    /// Retrieves context at a cursor; an empty result when the document is
    /// not open or its language has no grammar here.
    pub fn retrieve(&self, query: &ContextQuery<'_>) -> Retrieval {
        let mut guard = self.state();
        let state = &mut *guard;
        if !state.open.contains_key(query.path) {
            return Retrieval {
                index_ready: state.status.ready,
                indexed_files: state.index.len(),
                ..Retrieval::default()
            };
        }
        let started = Instant::now();
        let line = {
            let text = state.open[query.path].text();
            let cursor = query.cursor.min(text.len());
            text.as_bytes()[..cursor].iter().filter(|&&b| b == b'\n').count()
        };
        let reach = self.shared.config.sticky_lines;
        if let Some(sticky) = &state.sticky
            && reach > 0
            && sticky.path == query.path
            && sticky.line.abs_diff(line) <= reach
        {
            let mut retrieval = sticky.retrieval.clone();
            retrieval.sticky = true;
            retrieval.timings.clear();
            retrieval.micros = started.elapsed().as_micros() as u64;
            return retrieval;
        }
        state.refresh_windows(query.path);
        let state = &*guard;
        let display = state.display(query.path);
        let recent = state
            .recent
            .iter()
            .filter(|p| p.as_path() != query.path)
            .filter_map(|p| {
                let text =
                    state.open.get(p).map(ParsedFile::text).or_else(|| state.texts.get(p).map(|t| t.0.as_str()))?;
                let windows = &state.windows.get(p)?.1;
                let display = state.index.file(p).map(|f| &*f.display).unwrap_or_else(|| file_name(p));
                Some(RecentText { display, text, windows })
            })
            .collect();
        let world = World {
            config: &self.shared.config,
            index: &state.index,
            index_ready: state.status.ready,
            path: query.path,
            display: &display,
            current: &state.open[query.path],
            recent,
        };
        let retrieval = retrieve(&world, query.cursor, query.window.clone());
        if self.shared.config.sticky_lines > 0 {
            guard.sticky = Some(Sticky { path: query.path.to_owned(), line, retrieval: retrieval.clone() });
        }
        retrieval
    }
}

impl State {
    /// Forgets the kept retrieval unless it is of `path`.
    fn forget_sticky_unless(&mut self, path: &Path) {
        if self.sticky.as_ref().is_some_and(|sticky| sticky.path != path) {
            self.sticky = None;
        }
    }

    fn revision(&mut self) -> u64 {
        self.next_revision += 1;
        self.next_revision
    }

    /// The path shown to the model: relative to the deepest root holding it.
    fn display(&self, path: &Path) -> String {
        self.roots
            .iter()
            .filter_map(|root| path.strip_prefix(root).ok())
            .min_by_key(|rel| rel.components().count())
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|| file_name(path).to_owned())
    }

    /// Puts an open document's symbols in the index.
    fn reindex_open(&mut self, path: &Path) {
        let display = self.display(path);
        let Some(parsed) = self.open.get(path) else { return };
        let file = IndexedFile {
            path: path.to_path_buf(),
            display: display.into(),
            lang: parsed.lang,
            symbols: parsed.symbols().clone(),
            bytes: parsed.text().len(),
            origin: Origin::Editor,
        };
        self.index.insert(file);
    }

    /// Makes `path` the most recent file, forgetting the oldest ones.
    fn touch(&mut self, path: &Path, keep: usize) {
        self.recent.retain(|p| p != path);
        self.recent.push_front(path.to_path_buf());
        while self.recent.len() > keep {
            if let Some(old) = self.recent.pop_back() {
                self.texts.remove(&old);
                self.windows.remove(&old);
            }
        }
    }

    /// Recomputes the similarity windows of recent files that changed.
    fn refresh_windows(&mut self, current: &Path) {
        for path in &self.recent {
            if path == current {
                continue;
            }
            let (text, revision) = match (self.open.get(path), self.texts.get(path)) {
                (Some(parsed), _) => (parsed.text(), parsed.revision),
                (None, Some((text, _, revision))) => (text.as_str(), *revision),
                (None, None) => continue,
            };
            if self.windows.get(path).is_some_and(|(r, _)| *r == revision) {
                continue;
            }
            self.windows.insert(path.clone(), (revision, windows_of(text)));
        }
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}
