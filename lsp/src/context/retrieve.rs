//! Retrieval at the cursor: each source fills its share of the budget, the
//! results are deduplicated against the prompt's window and put in a
//! stable order.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use super::index::{DefRef, FileId, Index};
use super::lang::Lang;
use super::parsed::ParsedFile;
use super::render;
use super::resolve::resolve;
use super::similar::{self, Window};
use super::symbols::{Definition, FileSymbols, Import, SymbolKind};
use super::uses::{Use, uses_near};
use super::{ContextConfig, Retrieval, Snippet, SnippetSource, SourceTiming};

/// Lines before the cursor whose identifiers make the similarity query.
const QUERY_LINES: usize = 12;
/// Similar windows shown at most.
const MAX_SIMILAR: usize = 2;
/// Definitions looked up by name when more than this many share the name,
/// and none is close to the current file, are left out as ambiguous.
const MAX_AMBIGUOUS: usize = 2;
/// Members listed at most in a module outline.
const MAX_OUTLINE_ITEMS: usize = 24;
/// Names defined more often than this in the workspace are looked up by
/// name only with a qualifier to narrow them (`new`, `get`, `len`).
const MAX_NAMESAKES: usize = 2000;

/// A recent file, with its similarity windows.
pub struct RecentText<'a> {
    pub display: &'a str,
    pub text: &'a str,
    pub windows: &'a [Window],
}

/// What retrieval reads: the index, the current document, recent files.
pub struct World<'a> {
    pub config: &'a ContextConfig,
    pub index: &'a Index,
    pub index_ready: bool,
    pub path: &'a Path,
    pub display: &'a str,
    pub current: &'a ParsedFile,
    pub recent: Vec<RecentText<'a>>,
}

/// Retrieves context for a cursor at byte `cursor` of the current file,
/// whose bytes `window` the prompt already shows.
pub fn retrieve(world: &World<'_>, cursor: usize, window: Range<usize>) -> Retrieval {
    let started = Instant::now();
    let text = world.current.text();
    let cursor = cursor.min(text.len());
    let window = window.start.min(cursor)..window.end.clamp(cursor, text.len());
    let mut run = Run { world, window: window.clone(), chosen: Vec::new(), seen: HashSet::new(), timings: Vec::new() };
    let cross_file = world.config.cross_file;
    let use_index = cross_file && world.index_ready;
    let uses = uses_near(text, cursor, world.current.lang);

    run.timed(SnippetSource::Scope, |run| run.scopes(cursor));
    run.timed(SnippetSource::Definition, |run| run.definitions(&uses, use_index));
    if use_index {
        run.timed(SnippetSource::Module, |run| run.module_outline(&uses));
    }
    if cross_file {
        run.timed(SnippetSource::Similar, |run| run.similar(cursor));
    }
    let Run { mut chosen, timings, .. } = run;
    chosen.sort_by(|a, b| (a.source, &a.path, a.first_line).cmp(&(b.source, &b.path, b.first_line)));
    Retrieval {
        snippets: chosen,
        timings,
        micros: started.elapsed().as_micros() as u64,
        index_ready: world.index_ready,
        indexed_files: world.index.len(),
        sticky: false,
    }
}

/// One retrieval in progress.
struct Run<'w, 'a> {
    world: &'w World<'a>,
    window: Range<usize>,
    chosen: Vec<Snippet>,
    /// Definitions already chosen, by file path and byte offset.
    seen: HashSet<(&'w Path, usize)>,
    timings: Vec<SourceTiming>,
}

impl<'w, 'a> Run<'w, 'a> {
    fn timed(&mut self, source: SnippetSource, f: impl FnOnce(&mut Self) -> usize) {
        let started = Instant::now();
        let candidates = f(self);
        self.timings.push(SourceTiming { source, micros: started.elapsed().as_micros() as u64, candidates });
    }

    fn quota(&self, source: SnippetSource) -> usize {
        self.world.config.max_bytes * source.quota_percent() / 100
    }

    /// The text the prompt already shows.
    fn window_text(&self) -> &'w str {
        &self.world.current.text()[self.window.clone()]
    }

    /// Whether the first line of `text` is already in the prompt's window.
    fn already_shown(&self, text: &str) -> bool {
        let line = text.lines().map(str::trim).find(|l| l.len() >= 12 && !is_comment(l));
        line.is_some_and(|line| self.window_text().contains(line))
    }

    /// The headers of the definitions around the cursor that start above
    /// the prompt's window.
    fn scopes(&mut self, cursor: usize) -> usize {
        let symbols = self.world.current.symbols();
        let Some(innermost) = innermost_at(symbols, cursor) else { return 0 };
        let hidden: Vec<u32> = symbols
            .ancestry(innermost)
            .into_iter()
            .filter(|&i| symbols.definitions[i as usize].range.start < self.window.start)
            .collect();
        let (Some(&first), Some(&last)) = (hidden.first(), hidden.last()) else { return 0 };
        let text = render::scopes(symbols, &hidden, self.world.current.lang);
        if text.len() > self.quota(SnippetSource::Scope) {
            return hidden.len();
        }
        let def = &symbols.definitions[last as usize];
        self.chosen.push(Snippet {
            path: self.world.display.to_owned(),
            text,
            source: SnippetSource::Scope,
            symbol: Some(def.name.to_string()),
            first_line: symbols.definitions[first as usize].lines.start + 1,
            last_line: def.lines.end + 1,
            reason: "encloses the cursor; its header is above the prompt's window".to_owned(),
            score: 1.0,
        });
        hidden.len()
    }

    /// Definitions of the identifiers used near the cursor.
    fn definitions(&mut self, uses: &[Use<'_>], use_index: bool) -> usize {
        let world = self.world;
        let mut budget = self.quota(SnippetSource::Definition);
        let imports = Imports::new(world, use_index);
        let mut considered = 0;
        let mut looked_up = HashSet::new();
        // A name used as a qualifier (`Geometry` in `Geometry.area`) is
        // looked up through its members, not as a whole.
        let qualifiers: HashSet<&str> = uses.iter().filter_map(|u| u.qualifier).collect();
        for u in uses.iter().filter(|u| !u.name.is_empty()) {
            if !looked_up.insert((u.qualifier, u.name)) || qualifiers.contains(u.name) {
                continue;
            }
            let found = match self.local(u) {
                Local::Visible => continue,
                Local::Hidden(found) => found,
                Local::Absent if use_index => imports.lookup(u),
                Local::Absent => Vec::new(),
            };
            considered += found.len();
            for (file, def, reason) in found {
                if let Some(used) = self.take_definition(file, def, reason, budget) {
                    budget -= used;
                    break;
                }
            }
        }
        considered
    }

    /// Looks `u` up among the current file's own definitions.
    fn local(&self, u: &Use<'_>) -> Local {
        let world = self.world;
        let symbols = world.current.symbols();
        let own = matches!(u.qualifier, None | Some("self" | "this" | "Self" | "cls" | "super"));
        let fits = |d: &Definition| *d.name == *u.name && (own || parent_name(symbols, d.parent) == u.qualifier);
        // The index holds the current file's symbols too; its by-name map
        // spares a scan of every definition of a large file for each use.
        let matching: Vec<u32> = match world.index.id(world.path) {
            Some(id) => world
                .index
                .named(u.name)
                .iter()
                .filter(|r| r.file == id)
                .map(|r| r.def)
                .filter(|&i| symbols.definitions.get(i as usize).is_some_and(fits))
                .collect(),
            None => (0..symbols.definitions.len() as u32)
                .filter(|&i| symbols.definitions[i as usize].kind != SymbolKind::Impl)
                .filter(|&i| fits(&symbols.definitions[i as usize]))
                .collect(),
        };
        if matching.is_empty() {
            return Local::Absent;
        }
        let visible = matching.iter().any(|&i| {
            let range = &symbols.definitions[i as usize].range;
            range.start < self.window.end && range.end > self.window.start
        });
        if visible {
            return Local::Visible;
        }
        let reason = format!("`{}` is defined in this file, outside the prompt's window", u.name);
        Local::Hidden(matching.into_iter().map(|i| (Target::Current, i, reason.clone())).collect())
    }

    /// Adds a definition if it fits `budget`; returns the bytes it took.
    fn take_definition(&mut self, target: Target, def: u32, reason: String, budget: usize) -> Option<usize> {
        let world = self.world;
        let (path, display, lang, symbols): (&'w Path, &'w str, Lang, &'w FileSymbols) = match target {
            Target::Current => (world.path, world.display, world.current.lang, world.current.symbols()),
            Target::File(id) => {
                let file = world.index.get(id);
                (&file.path, &file.display, file.lang, &file.symbols)
            }
        };
        let d = &symbols.definitions[def as usize];
        if self.seen.contains(&(path, d.range.start)) {
            return Some(0);
        }
        let mut text = render::definition(symbols, def, lang);
        if text.len() > budget {
            text = render::compact(symbols, def, lang);
        }
        if text.len() > budget || (target != Target::Current && self.already_shown(&text)) {
            return None;
        }
        self.seen.insert((path, d.range.start));
        let used = text.len();
        self.chosen.push(Snippet {
            path: display.to_owned(),
            text,
            source: SnippetSource::Definition,
            symbol: Some(d.name.to_string()),
            first_line: d.lines.start + 1,
            last_line: d.lines.end + 1,
            reason,
            score: 1.0,
        });
        Some(used)
    }

    /// The outline of the module (or class) whose member is being typed at
    /// the cursor, such as `shapes.` or `geometry::ar`.
    fn module_outline(&mut self, uses: &[Use<'_>]) -> usize {
        let world = self.world;
        let Some(u) = uses.iter().find(|u| u.at_cursor && u.qualifier.is_some()) else { return 0 };
        let qualifier = u.qualifier.unwrap_or_default();
        let imports = Imports::new(world, true);
        let Some((i, original)) = imports.qualifier(qualifier) else { return 0 };
        let import = &imports.imports[i];
        let files = imports.files(i, original);
        let mut budget = self.quota(SnippetSource::Module);
        let mut considered = 0;
        for id in files.into_iter().take(2) {
            let file = world.index.get(id);
            let symbols = &file.symbols;
            // A class imported by name lists its members; a module, its top level.
            let owner = original.and_then(|name| {
                symbols.definitions.iter().position(|d| *d.name == *name && d.kind.is_container()).map(|i| i as u32)
            });
            let items: Vec<u32> = symbols
                .definitions
                .iter()
                .enumerate()
                .filter(|(_, d)| d.parent == owner && d.kind != SymbolKind::Impl && !d.name.starts_with('_'))
                .map(|(i, _)| i as u32)
                .take(MAX_OUTLINE_ITEMS)
                .collect();
            considered += items.len();
            let mut text = String::new();
            for &item in &items {
                if self.seen.contains(&(file.path.as_path(), symbols.definitions[item as usize].range.start)) {
                    continue;
                }
                let line = render::compact(symbols, item, file.lang);
                if text.len() + line.len() + 1 > budget {
                    break;
                }
                text.push_str(&line);
                text.push('\n');
            }
            if text.is_empty() {
                continue;
            }
            budget -= text.len();
            let (first, last) = items.iter().fold((u32::MAX, 0), |(f, l), &i| {
                let lines = &symbols.definitions[i as usize].lines;
                (f.min(lines.start), l.max(lines.end))
            });
            self.chosen.push(Snippet {
                path: file.display.to_string(),
                text,
                source: SnippetSource::Module,
                symbol: Some(qualifier.to_owned()),
                first_line: first + 1,
                last_line: last + 1,
                reason: format!("a member of `{qualifier}` (imported from `{}`) is being typed", import.module),
                score: 1.0,
            });
        }
        considered
    }

    /// Windows of recent files most similar to the lines before the cursor.
    fn similar(&mut self, cursor: usize) -> usize {
        let world = self.world;
        let text = world.current.text();
        let query_start = line_start_before(text, cursor, QUERY_LINES);
        let query = similar::token_set(&text[query_start..cursor]);
        if query.is_empty() {
            return 0;
        }
        let mut scored: Vec<(f32, usize, usize)> = Vec::new();
        for (r, recent) in world.recent.iter().enumerate() {
            for (w, window) in recent.windows.iter().enumerate() {
                let score = similar::jaccard(&query, &window.tokens);
                if score >= world.config.min_similarity {
                    scored.push((score, r, w));
                }
            }
        }
        let considered = scored.len();
        // Best first; ties broken by file and position so that the choice is stable.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut budget = self.quota(SnippetSource::Similar);
        let mut taken: Vec<(usize, Range<u32>)> = Vec::new();
        for (score, r, w) in scored {
            if taken.len() >= MAX_SIMILAR {
                break;
            }
            let recent = &world.recent[r];
            let window = &recent.windows[w];
            let overlaps = taken
                .iter()
                .any(|(tr, lines)| *tr == r && lines.start < window.lines.end && window.lines.start < lines.end);
            let body = recent.text[window.bytes.clone()].trim_end();
            if overlaps || body.len() > budget || self.already_shown(body) {
                continue;
            }
            budget -= body.len();
            taken.push((r, window.lines.clone()));
            self.chosen.push(Snippet {
                path: recent.display.to_owned(),
                text: body.to_owned(),
                source: SnippetSource::Similar,
                symbol: None,
                first_line: window.lines.start + 1,
                last_line: window.lines.end,
                reason: format!("recently used file; Jaccard similarity {score:.2} with the lines before the cursor"),
                score,
            });
        }
        considered
    }
}

/// A definition found for a use: where, which, and why.
type Found = (Target, u32, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Current,
    File(FileId),
}

enum Local {
    /// The current file defines the name inside the prompt's window.
    Visible,
    /// It defines it outside the window.
    Hidden(Vec<Found>),
    Absent,
}

/// The current file's imports, by the names they bring in.
struct Imports<'w, 'a> {
    world: &'w World<'a>,
    imports: &'w [Import],
    enabled: bool,
    /// Resolved imports, by import and name: a file with many includes
    /// would otherwise resolve each of them for every identifier.
    resolved: RefCell<HashMap<ImportKey<'w>, Vec<FileId>>>,
}

/// An import of the current file and, optionally, one of its names.
type ImportKey<'w> = (usize, Option<&'w str>);

impl<'w, 'a> Imports<'w, 'a> {
    fn new(world: &'w World<'a>, enabled: bool) -> Self {
        let imports = &world.current.symbols().imports;
        Imports { world, imports, enabled, resolved: RefCell::default() }
    }

    /// The files of import `i`, resolved once per retrieval.
    fn files(&self, i: usize, name: Option<&'w str>) -> Vec<FileId> {
        let world = self.world;
        self.resolved
            .borrow_mut()
            .entry((i, name))
            .or_insert_with(|| resolve(world.index, world.path, world.current.lang, &self.imports[i], name))
            .clone()
    }

    /// The import that brings in `qualifier` as a module or an imported
    /// name, with the name as the module spells it.
    fn qualifier(&self, qualifier: &str) -> Option<(usize, Option<&'w str>)> {
        let lang = self.world.current.lang;
        self.imports.iter().enumerate().find_map(|(i, import)| {
            if module_local_name(import, lang) == Some(qualifier) {
                return Some((i, None));
            }
            import.names.iter().find(|n| n.local() == qualifier).map(|n| (i, Some(&*n.name)))
        })
    }

    /// Definitions for a use, through the imports first, then by name.
    fn lookup(&self, u: &Use<'_>) -> Vec<Found> {
        if !self.enabled {
            return Vec::new();
        }
        let world = self.world;
        let lang = world.current.lang;
        let index = world.index;
        let mut out = Vec::new();
        if let Some(q) = u.qualifier
            && let Some((i, original)) = self.qualifier(q)
        {
            let import = &self.imports[i];
            let files = self.files(i, original);
            let separator = if matches!(lang, Lang::Rust | Lang::Cpp) { "::" } else { "." };
            let why = format!("`{q}{separator}{}`: `{q}` is imported from `{}`", u.name, import.module);
            out.extend(in_files(index, &files, u.name, original.or(Some(q)), &why));
        }
        for (i, import) in self.imports.iter().enumerate() {
            if let Some(name) = import.names.iter().find(|n| n.local() == u.name && u.qualifier.is_none()) {
                let files = self.files(i, Some(&name.name));
                let why = format!("`{}` is imported from `{}`", u.name, import.module);
                out.extend(in_files(index, &files, &name.name, None, &why));
            } else if import.wildcard && u.qualifier.is_none() {
                let files = self.files(i, None);
                let why = format!("`{}` is defined in `{}`, imported whole", u.name, import.module);
                out.extend(in_files(index, &files, u.name, None, &why));
            }
        }
        if out.is_empty() && u.looks_external() {
            out.extend(self.by_name(u));
        }
        out
    }

    /// Definitions found by name alone, when the name is unambiguous
    /// enough or defined close to the current file.
    fn by_name(&self, u: &Use<'_>) -> Vec<Found> {
        let world = self.world;
        let index = world.index;
        let family = world.current.lang.family();
        let namesakes = index.named(u.name);
        if namesakes.len() > MAX_NAMESAKES && u.qualifier.is_none() {
            return Vec::new();
        }
        let current = index.id(world.path);
        let dir = super::index::dir_key(world.path);
        // A qualified name with very many namesakes (`Vec::new`) is looked
        // for only in the files that define its qualifier and in the current
        // directory, where it can rank as close: reading every namesake's
        // file costs milliseconds on every keystroke.
        let owners: Option<HashSet<FileId>> = match u.qualifier {
            Some(q) if namesakes.len() > MAX_NAMESAKES => Some(index.named(q).iter().map(|r| r.file).collect()),
            _ => None,
        };
        let mut candidates: Vec<(u8, DefRef)> = namesakes
            .iter()
            .filter(|r| owners.as_ref().is_none_or(|o| o.contains(&r.file) || index.dir_key(r.file) == dir))
            .filter(|r| Some(r.file) != current && index.get(r.file).lang.family() == family)
            .filter(|r| *index.get(r.file).symbols.definitions[r.def as usize].name == *u.name)
            .map(|r| {
                let symbols = &index.get(r.file).symbols;
                let def = &symbols.definitions[r.def as usize];
                let qualified = u.qualifier.is_some() && parent_name(symbols, def.parent) == u.qualifier;
                let near = index.dir_key(r.file) == dir;
                (u8::from(!qualified) * 2 + u8::from(!near), *r)
            })
            .collect();
        candidates.sort();
        let close = candidates.first().is_some_and(|(rank, _)| *rank < 3);
        if candidates.is_empty() || (!close && candidates.len() > MAX_AMBIGUOUS) {
            return Vec::new();
        }
        let why = format!("`{}` found by name ({} definition(s) in the workspace)", u.name, candidates.len());
        candidates.into_iter().take(2).map(|(_, r)| (Target::File(r.file), r.def, why.clone())).collect()
    }
}

/// Definitions named `name` in `files`: members of `owner` first, then
/// top-level ones.
fn in_files(index: &Index, files: &[FileId], name: &str, owner: Option<&str>, why: &str) -> Vec<Found> {
    if files.is_empty() {
        return Vec::new();
    }
    let mut found: Vec<(u8, FileId, u32)> = index
        .named(name)
        .iter()
        .filter(|r| files.contains(&r.file) && *index.get(r.file).symbols.definitions[r.def as usize].name == *name)
        .map(|r| {
            let symbols = &index.get(r.file).symbols;
            let def = &symbols.definitions[r.def as usize];
            let rank = if owner.is_some() && parent_name(symbols, def.parent) == owner {
                0
            } else if def.parent.is_none() {
                1
            } else {
                2
            };
            (rank, r.file, r.def)
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, id, i)| (Target::File(id), i, why.to_owned())).collect()
}

/// The name a file uses for an imported module itself.
fn module_local_name(import: &Import, lang: Lang) -> Option<&str> {
    if let Some(alias) = &import.alias {
        return Some(alias);
    }
    if !import.names.is_empty() || import.wildcard {
        return None;
    }
    let module = import.module.as_ref();
    match lang {
        Lang::Python => module.rsplit('.').next(),
        Lang::Go => {
            let mut parts = module.rsplit('/');
            let last = parts.next();
            // `example.com/mod/v2` is package `mod`.
            match last {
                Some(v) if v.starts_with('v') && v[1..].chars().all(|c| c.is_ascii_digit()) && v.len() > 1 => {
                    parts.next()
                }
                _ => last,
            }
        }
        Lang::Rust => module.rsplit("::").next(),
        _ => None,
    }
}

fn parent_name(symbols: &FileSymbols, parent: Option<u32>) -> Option<&str> {
    parent.map(|p| &*symbols.definitions[p as usize].name)
}

/// The innermost definition whose range holds `cursor`.
fn innermost_at(symbols: &FileSymbols, cursor: usize) -> Option<u32> {
    symbols
        .definitions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.range.start < cursor && cursor <= d.range.end)
        .min_by_key(|(_, d)| d.range.end - d.range.start)
        .map(|(i, _)| i as u32)
}

/// The start of the line `lines` lines above the one holding `byte`.
fn line_start_before(text: &str, byte: usize, lines: usize) -> usize {
    let mut start = text[..byte].rfind('\n').map_or(0, |i| i + 1);
    for _ in 0..lines {
        if start == 0 {
            break;
        }
        start = text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
    }
    start
}

fn is_comment(line: &str) -> bool {
    line.starts_with("//") || line.starts_with('#') || line.starts_with("/*") || line.starts_with('*')
}
