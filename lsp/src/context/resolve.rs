//! Import resolution: from an import statement to the indexed files it
//! names, by each language's rules, without a compiler.
//!
//! An import becomes one or more module paths, each a list of components
//! and an optional base directory (for relative imports). A file matches a
//! path when its own path, less the extension, ends with the components
//! (or equals `base/components`); `__init__.py`, `index.ts` and `mod.rs`
//! stand for their directory, and Go and Java packages are directories.

use std::path::{Component, Path, PathBuf};

use super::index::{FileId, Index};
use super::lang::Lang;
use super::symbols::Import;

/// Most files one import resolves to (a Go package may have many).
const MAX_FILES: usize = 12;

/// A module path to look for.
#[derive(Debug)]
struct ModulePath {
    components: Vec<String>,
    /// The directory a relative import starts from.
    base: Option<PathBuf>,
    /// Whether every file of the directory is the module (Go, Java `*`).
    directory: bool,
}

/// The files `import` of a file at `importer` refers to. When `name` is
/// given (one of the import's names), the name may itself be a module
/// (`from pkg import mod`, `use crate::geometry`, `import a.b.Class`), and
/// such files come first.
pub fn resolve(index: &Index, importer: &Path, lang: Lang, import: &Import, name: Option<&str>) -> Vec<FileId> {
    let mut out = Vec::new();
    for path in module_paths(importer, lang, import, name) {
        let Some(last) = path.components.last() else { continue };
        let key = match lang {
            Lang::C | Lang::Cpp => last.as_str(),
            _ => last.split('.').next().unwrap_or(last),
        };
        let mut found: Vec<(usize, FileId)> = index
            .module_files(key)
            .iter()
            .copied()
            .filter(|&id| id_matches(index, id, &path, lang) && !out.contains(&id))
            .map(|id| (shared_prefix(importer, &index.get(id).path), id))
            .collect();
        // Closer files first, then a stable order.
        found.sort_by(|a, b| b.0.cmp(&a.0).then(index.get(a.1).path.cmp(&index.get(b.1).path)));
        if path.directory
            && let Some(&(_, best)) = found.first()
        {
            // Only the closest matching directory is the package.
            let dir = index.get(best).path.parent().map(Path::to_path_buf);
            found.retain(|&(_, id)| index.get(id).path.parent().map(Path::to_path_buf) == dir);
        }
        out.extend(found.into_iter().map(|(_, id)| id).filter(|&id| !is_test_file(&index.get(id).path)));
        if out.len() >= MAX_FILES {
            out.truncate(MAX_FILES);
            break;
        }
    }
    out
}

fn is_test_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_test.go"))
}

fn id_matches(index: &Index, id: FileId, module: &ModulePath, lang: Lang) -> bool {
    let file = index.get(id);
    if file.lang.family() != lang.family() {
        return false;
    }
    let path = &file.path;
    let stem_path = match lang {
        Lang::C | Lang::Cpp => path.clone(),
        _ => strip_extension(path),
    };
    let stands_for_dir = path
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| matches!(s, "__init__" | "index" | "mod" | "index.d"));
    let parent = path.parent().unwrap_or(Path::new(""));
    let candidates: [(&Path, bool); 2] =
        [(&stem_path, !module.directory), (parent, module.directory || stands_for_dir)];
    candidates.iter().filter(|(_, applies)| *applies).any(|(p, _)| match &module.base {
        Some(base) => *p == base.join(module.components.join("/")),
        None => ends_with(p, &module.components),
    })
}

fn strip_extension(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let stem = stem.strip_suffix(".d").unwrap_or(stem);
    path.with_file_name(stem)
}

fn ends_with(path: &Path, components: &[String]) -> bool {
    let mut parts = path.components().rev();
    components.iter().rev().all(|c| parts.next().is_some_and(|p| p.as_os_str() == c.as_str()))
}

fn shared_prefix(a: &Path, b: &Path) -> usize {
    a.components().zip(b.components()).take_while(|(x, y)| x == y).count()
}

/// The module paths an import may refer to, most specific first.
fn module_paths(importer: &Path, lang: Lang, import: &Import, name: Option<&str>) -> Vec<ModulePath> {
    let dir = importer.parent().unwrap_or(Path::new("")).to_path_buf();
    let module = import.module.as_ref();
    let plain = |components: Vec<String>, base: Option<PathBuf>| ModulePath { components, base, directory: false };
    let with_name = |mut components: Vec<String>| {
        if let Some(name) = name {
            components.push(name.to_owned());
        }
        components
    };
    let mut paths = Vec::new();
    match lang {
        Lang::Python => {
            let dots = module.len() - module.trim_start_matches('.').len();
            let components: Vec<String> =
                module[dots..].split('.').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            let base = (dots > 0).then(|| {
                let mut base = dir.clone();
                for _ in 1..dots {
                    base.pop();
                }
                base
            });
            if name.is_some() {
                paths.push(plain(with_name(components.clone()), base.clone()));
            }
            if !components.is_empty() {
                paths.push(plain(components, base));
            }
        }
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            if module.starts_with('.') {
                let (base, components) = normalize(&dir, module);
                paths.push(plain(components, Some(base)));
            } else {
                let components: Vec<String> = module
                    .split('/')
                    .filter(|c| !c.is_empty() && !matches!(*c, "@" | "~" | "#"))
                    .map(|c| strip_js_extension(c).to_owned())
                    .collect();
                if components.len() > 1 || module.starts_with(['@', '~', '#']) {
                    paths.push(plain(components, None));
                }
            }
        }
        Lang::Rust => {
            let mut parts: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
            let base = match parts.first().copied() {
                Some("crate") => crate_src(importer),
                Some("self") => Some(rust_module_dir(importer)),
                Some("super") => {
                    let mut base = rust_module_dir(importer);
                    let supers = parts.iter().take_while(|p| **p == "super").count();
                    for _ in 0..supers {
                        base.pop();
                    }
                    parts.drain(..supers - 1);
                    Some(base)
                }
                _ => None,
            };
            // `crate`, `self` and `super` are consumed by the base; an
            // external crate's name is dropped and the rest matched by suffix.
            let rest: Vec<String> = parts.iter().skip(1).map(|p| (*p).to_owned()).collect();
            if let Some(base) = base {
                paths.push(plain(with_name(rest.clone()), Some(base.clone())));
                if !rest.is_empty() {
                    paths.push(plain(rest, Some(base)));
                }
            } else if !rest.is_empty() {
                paths.push(plain(with_name(rest.clone()), None));
                paths.push(plain(rest, None));
            }
        }
        Lang::Go => {
            let components: Vec<String> = module.split('/').map(str::to_owned).collect();
            // The longest suffix of the path that exists wins; start with two.
            let tail = components.len().saturating_sub(2);
            paths.push(ModulePath { components: components[tail..].to_vec(), base: None, directory: true });
            if components.len() > 1 {
                paths.push(ModulePath {
                    components: components[components.len() - 1..].to_vec(),
                    base: None,
                    directory: true,
                });
            }
        }
        Lang::Java => {
            let components: Vec<String> = module.split('.').map(str::to_owned).collect();
            if import.wildcard {
                paths.push(ModulePath { components, base: None, directory: true });
            } else {
                if name.is_some() {
                    paths.push(plain(with_name(components.clone()), None));
                }
                paths.push(plain(components, None));
            }
        }
        Lang::C | Lang::Cpp => {
            let components: Vec<String> = module.split('/').filter(|c| *c != ".").map(str::to_owned).collect();
            paths.push(plain(components.clone(), Some(dir)));
            paths.push(plain(components, None));
        }
    }
    paths.retain(|p| !p.components.is_empty());
    paths
}

/// `./a/../b/c.js` from `dir`: the directory it starts from and the
/// components below it.
fn normalize(dir: &Path, module: &str) -> (PathBuf, Vec<String>) {
    let mut base = dir.to_path_buf();
    let mut components = Vec::new();
    for part in Path::new(module).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if components.is_empty() => {
                base.pop();
            }
            Component::ParentDir => {
                components.pop();
            }
            Component::Normal(c) => components.push(c.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    if let Some(last) = components.last_mut() {
        *last = strip_js_extension(last).to_owned();
    }
    (base, components)
}

fn strip_js_extension(name: &str) -> &str {
    for ext in [".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem;
        }
    }
    name
}

/// The `src` directory of the crate holding `file`.
fn crate_src(file: &Path) -> Option<PathBuf> {
    let mut dir = file.parent()?;
    loop {
        if dir.file_name().is_some_and(|n| n == "src") {
            return Some(dir.to_path_buf());
        }
        if dir.join("Cargo.toml").is_file() {
            return Some(dir.join("src"));
        }
        dir = dir.parent()?;
    }
}

/// The directory that holds the submodules of the module in `file`.
fn rust_module_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") | None => dir,
        Some(stem) => dir.join(stem),
    }
}
