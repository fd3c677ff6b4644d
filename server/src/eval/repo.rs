//! Repo-level cross-file completion tasks, built from real repositories
//! (pure-Python packages, pinned in `models/fetch-test-assets.sh`).
//!
//! A line is a task when it uses, as code, a name that an import binds to
//! something defined in another file of the same repository: a top-level
//! `def`, `class` or assignment there, a name that file itself imports from
//! the repository, or a module of the repository. This is CrossCodeEval's
//! criterion (Ding et al. 2023) with imports resolved by reading the source,
//! not by a static analyzer. The cursor sits after the line's indentation
//! (where an editor that auto-indents leaves it); the ground truth is the
//! rest of the line. A fixed-seed hash picks up to `tasks_per_repo` of the
//! candidate lines, so a larger sample contains a smaller one.
//!
//! The parsing is line-based and deliberately shallow: docstrings, comments
//! and string literals are skipped well enough for choosing lines, and a
//! missed import only means a line is not picked.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use weft_inference::Language;

use super::metrics::identifiers;
use super::task::{Benchmark, Task, Workspace};

/// How many lines to pick per repository, and how.
#[derive(Clone, Copy, Debug)]
pub struct RepoOptions {
    pub tasks_per_repo: usize,
    pub seed: u32,
}

/// Lines shorter or longer than this (without indentation) are not tasks.
const MIN_LINE_CHARS: usize = 8;
const MAX_LINE_CHARS: usize = 120;

/// One Python file of a repository.
struct SourceFile {
    /// Relative to the repository root, with `/`.
    path: String,
    text: String,
    /// Names bound at the top level by `def`, `class` or assignment.
    defined: HashSet<String>,
    imports: Vec<Import>,
}

/// A name bound by an import, and the module it comes from.
#[derive(Debug, PartialEq)]
struct Import {
    name: String,
    /// The module as written, e.g. `.models` or `requests.utils`.
    module: String,
    /// The imported thing, when it is a single name (`from m import thing`).
    thing: Option<String>,
}

/// The tasks of the repository at `root`.
pub fn tasks(root: &Path, options: RepoOptions) -> anyhow::Result<Vec<Task>> {
    let name = root.file_name().map_or_else(|| "repo".to_owned(), |n| n.to_string_lossy().into_owned());
    let workspace = Arc::new(Workspace { root: root.to_path_buf() });
    let mut paths = Vec::new();
    collect_python_files(root, root, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(root.join(&path)).with_context(|| format!("cannot read {path}"))?;
        files.push(SourceFile { defined: top_level_names(&text), imports: imports(&text), path, text });
    }
    let by_path: HashMap<&str, &SourceFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();

    let mut candidates = Vec::new();
    for file in &files {
        let cross_file: HashSet<&str> = file
            .imports
            .iter()
            .filter(|import| !file.defined.contains(&import.name))
            .filter(|import| defined_elsewhere(file, import, &by_path))
            .map(|import| import.name.as_str())
            .collect();
        if cross_file.is_empty() {
            continue;
        }
        for (line_index, start, indent, line) in candidate_lines(&file.text) {
            if used_names(&strip_strings_and_comment(line)).any(|id| cross_file.contains(id)) {
                candidates.push((file, line_index, start, indent, line));
            }
        }
    }

    let score = |id: &str| {
        let mut hash = Sha256::new();
        hash.update(options.seed.to_le_bytes());
        hash.update(id.as_bytes());
        hash.finalize()
    };
    let mut picked: Vec<_> = candidates
        .into_iter()
        .map(|(file, line_index, start, indent, line)| {
            let id = format!("{name}/{}:{}", file.path, line_index + 1);
            (score(&id), id, file, start, indent, line)
        })
        .collect();
    picked.sort_by_key(|a| a.0);
    picked.truncate(options.tasks_per_repo);
    // Back to file order, so consecutive prompts share a prefix.
    picked.sort_by(|a, b| (a.2.path.as_str(), a.3).cmp(&(b.2.path.as_str(), b.3)));
    Ok(picked
        .into_iter()
        .map(|(_, id, file, start, indent, line)| {
            let cursor = start + indent;
            let truth = line[indent..].trim_end();
            Task {
                id,
                benchmark: Benchmark::Repo,
                language: Language::Python,
                path: Some(file.path.clone()),
                prefix: file.text[..cursor].to_owned(),
                suffix: file.text[start + line.len()..].to_owned(),
                ground_truth: truth.to_owned(),
                multiline: false,
                tests: None,
                workspace: Some(workspace.clone()),
            }
        })
        .collect())
}

fn collect_python_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_python_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "py") {
            let relative: PathBuf = path.strip_prefix(root)?.to_path_buf();
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Whether `import` in `file` binds something defined in another file of
/// the repository.
fn defined_elsewhere(file: &SourceFile, import: &Import, files: &HashMap<&str, &SourceFile>) -> bool {
    let Some(module) = resolve_module(&file.path, &import.module, files) else { return false };
    match &import.thing {
        // `import pkg.mod`: the module itself.
        None => module.path != file.path,
        Some(thing) => {
            let dot = if import.module.ends_with('.') { "" } else { "." };
            let submodule = resolve_module(&file.path, &format!("{}{dot}{thing}", import.module), files);
            if submodule.is_some_and(|m| m.path != file.path) {
                return true;
            }
            module.path != file.path
                && (module.defined.contains(thing)
                    || module
                        .imports
                        .iter()
                        .any(|i| i.name == *thing && resolve_module(&module.path, &i.module, files).is_some()))
        }
    }
}

/// The repository file of `module` as imported from `from`: relative
/// (`.models`, `..utils`) or absolute within the repository (`requests.utils`).
fn resolve_module<'a>(from: &str, module: &str, files: &HashMap<&str, &'a SourceFile>) -> Option<&'a SourceFile> {
    let dots = module.len() - module.trim_start_matches('.').len();
    let rest = &module[dots..];
    let mut base: Vec<&str> = if dots == 0 {
        Vec::new()
    } else {
        let mut dir: Vec<&str> = from.split('/').collect();
        dir.pop();
        for _ in 1..dots {
            dir.pop()?;
        }
        dir
    };
    base.extend(rest.split('.').filter(|p| !p.is_empty()));
    if base.is_empty() {
        return None;
    }
    let joined = base.join("/");
    files.get(format!("{joined}.py").as_str()).or_else(|| files.get(format!("{joined}/__init__.py").as_str())).copied()
}

/// Names bound at the top level by `def`, `class` or assignment.
fn top_level_names(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in text.lines() {
        let word = |s: &str| s.split(|c: char| !(c == '_' || c.is_alphanumeric())).next().unwrap_or("").to_owned();
        if let Some(rest) = line.strip_prefix("def ").or_else(|| line.strip_prefix("async def ")) {
            out.insert(word(rest));
        } else if let Some(rest) = line.strip_prefix("class ") {
            out.insert(word(rest));
        } else if line.starts_with(|c: char| c == '_' || c.is_alphabetic()) {
            let name = word(line);
            let after = line[name.len()..].trim_start();
            if (after.starts_with('=') && !after.starts_with("==")) || after.starts_with(':') {
                out.insert(name);
            }
        }
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The imports of a file, at any indentation, with parenthesized and
/// backslash-continued name lists joined.
fn imports(text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let mut statement = strip_strings_and_comment(lines[i]).trim().to_owned();
        i += 1;
        if !(statement.starts_with("from ") || statement.starts_with("import ")) {
            continue;
        }
        while i < lines.len()
            && (statement.ends_with('\\') || statement.matches('(').count() > statement.matches(')').count())
        {
            statement = statement.trim_end_matches('\\').to_owned();
            statement.push(' ');
            statement.push_str(strip_strings_and_comment(lines[i]).trim());
            i += 1;
        }
        let statement = statement.replace(['(', ')', '\\'], " ");
        if let Some(rest) = statement.strip_prefix("from ") {
            let Some((module, names)) = rest.split_once(" import ") else { continue };
            for part in names.split(',') {
                let mut words = part.split_whitespace();
                let (Some(thing), alias) = (words.next(), words.nth(1)) else { continue };
                if thing == "*" {
                    continue;
                }
                out.push(Import {
                    name: alias.unwrap_or(thing).to_owned(),
                    module: module.trim().to_owned(),
                    thing: Some(thing.to_owned()),
                });
            }
        } else if let Some(rest) = statement.strip_prefix("import ") {
            for part in rest.split(',') {
                let mut words = part.split_whitespace();
                let (Some(module), alias) = (words.next(), words.nth(1)) else { continue };
                let name = alias.unwrap_or_else(|| module.split('.').next().unwrap_or(module));
                out.push(Import { name: name.to_owned(), module: module.to_owned(), thing: None });
            }
        }
    }
    out
}

/// Lines that may be tasks: code outside docstrings, not imports, comments
/// or continuation lines, of a reasonable length. Yields the line index,
/// its byte offset, its indentation in bytes, and the line.
fn candidate_lines(text: &str) -> Vec<(usize, usize, usize, &str)> {
    let mut out = Vec::new();
    let mut in_docstring = false;
    let mut in_import = false;
    let mut offset = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let quotes = line.matches("\"\"\"").count() + line.matches("'''").count();
        if in_docstring || quotes > 0 {
            in_docstring ^= quotes % 2 == 1;
            continue;
        }
        let content = line.trim_start();
        let indent = line.len() - content.len();
        // The rest of a parenthesized import list.
        if in_import {
            in_import = !strip_strings_and_comment(content).contains(')');
            continue;
        }
        if content.starts_with("import ") || content.starts_with("from ") {
            let code = strip_strings_and_comment(content);
            in_import = code.matches('(').count() > code.matches(')').count();
            continue;
        }
        let length = content.trim_end().chars().count();
        let skip =
            content.starts_with('#') || content.ends_with('\\') || !(MIN_LINE_CHARS..=MAX_LINE_CHARS).contains(&length);
        if !skip {
            out.push((index, start, indent, line));
        }
    }
    out
}

/// The identifiers of `code` that are names, not attributes (`x` in
/// `x.y`, not `y`).
fn used_names(code: &str) -> impl Iterator<Item = &str> {
    let mut from = 0;
    identifiers(code).into_iter().filter(move |id| {
        // Identifiers come in order, so each is found after the previous one.
        let at = code[from..].find(id).map_or(from, |i| from + i);
        from = at + id.len();
        !code[..at].trim_end().ends_with('.')
    })
}

/// The line with string literals emptied and a trailing comment removed.
fn strip_strings_and_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None if c == '#' => break,
            None => {
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
