//! The workspace index: the symbols of every file, by path, by name, and by
//! module name for import resolution.
//!
//! Only symbols are kept (names, signatures, doc comments, ranges), never
//! the text or the syntax tree of a file that is not open: that keeps the
//! index small enough for workspaces of many thousand files.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use super::lang::Lang;
use super::symbols::{FileSymbols, SymbolKind};

/// A file in the index. Ids are reused after a file is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u32);

/// A definition in the index: its file and its position in that file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefRef {
    pub file: FileId,
    pub def: u32,
}

/// Where the symbols of a file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The file as it is on disk.
    Disk,
    /// The text the editor has open, which may be ahead of the disk.
    Editor,
    /// Text the client pushed with `weft/contextUpdate`.
    Pushed,
}

/// One indexed file.
#[derive(Clone, Debug)]
pub struct IndexedFile {
    /// The absolute path.
    pub path: PathBuf,
    /// The path shown to the model: relative to its workspace root.
    pub display: Box<str>,
    pub lang: Lang,
    pub symbols: FileSymbols,
    /// The size of the text the symbols were read from.
    pub bytes: usize,
    pub origin: Origin,
}

/// The definitions that share a name hash: one, or more.
#[derive(Debug)]
enum Refs {
    One(DefRef),
    Many(Vec<DefRef>),
}

impl Refs {
    fn as_slice(&self) -> &[DefRef] {
        match self {
            Refs::One(r) => std::slice::from_ref(r),
            Refs::Many(refs) => refs,
        }
    }
}

fn name_key(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish()
}

/// File stems that name their directory's module.
const INDEX_STEMS: &[&str] = &["__init__", "index", "mod", "lib", "main"];

/// The symbols of a workspace.
#[derive(Debug, Default)]
pub struct Index {
    files: Vec<Option<IndexedFile>>,
    free: Vec<u32>,
    by_path: HashMap<PathBuf, FileId>,
    /// Definitions by a hash of their name: the names themselves are in
    /// the definitions, and most names are defined once, so this keeps
    /// neither a second copy of each name nor a vector for each.
    by_name: HashMap<u64, Refs>,
    by_module: HashMap<Box<str>, Vec<FileId>>,
    /// A hash of each file's directory, to tell neighbours apart cheaply.
    dirs: Vec<u64>,
    bytes: usize,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The total size of the indexed texts, in bytes.
    pub fn source_bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, id: FileId) -> &IndexedFile {
        self.files[id.0 as usize].as_ref().expect("ids handed out refer to live files")
    }

    pub fn id(&self, path: &Path) -> Option<FileId> {
        self.by_path.get(path).copied()
    }

    pub fn file(&self, path: &Path) -> Option<&IndexedFile> {
        self.id(path).map(|id| self.get(id))
    }

    /// Every live file.
    pub fn files(&self) -> impl Iterator<Item = (FileId, &IndexedFile)> {
        self.files.iter().enumerate().filter_map(|(i, f)| f.as_ref().map(|f| (FileId(i as u32), f)))
    }

    /// The definitions with this name, in every file (in the rare event of
    /// a hash collision, with another name too: callers compare names).
    pub fn named(&self, name: &str) -> &[DefRef] {
        self.by_name.get(&name_key(name)).map_or(&[], Refs::as_slice)
    }

    /// A hash of the directory of a file: equal for files side by side.
    pub fn dir_key(&self, id: FileId) -> u64 {
        self.dirs[id.0 as usize]
    }

    /// The files whose stem, or whose directory's name, is `key`.
    pub fn module_files(&self, key: &str) -> &[FileId] {
        self.by_module.get(key).map_or(&[], Vec::as_slice)
    }

    /// Adds a file, replacing the symbols it had.
    pub fn insert(&mut self, file: IndexedFile) -> FileId {
        self.remove(&file.path.clone());
        let id = match self.free.pop() {
            Some(slot) => FileId(slot),
            None => {
                self.files.push(None);
                self.dirs.push(0);
                FileId(self.files.len() as u32 - 1)
            }
        };
        self.dirs[id.0 as usize] = dir_key(&file.path);
        for (i, def) in file.symbols.definitions.iter().enumerate() {
            if def.kind != SymbolKind::Impl {
                let r = DefRef { file: id, def: i as u32 };
                match self.by_name.entry(name_key(&def.name)) {
                    Entry::Vacant(slot) => {
                        slot.insert(Refs::One(r));
                    }
                    Entry::Occupied(mut slot) => match slot.get_mut() {
                        Refs::One(first) => {
                            let first = *first;
                            slot.insert(Refs::Many(vec![first, r]));
                        }
                        Refs::Many(refs) => refs.push(r),
                    },
                }
            }
        }
        for key in module_keys(&file.path, file.lang) {
            self.by_module.entry(key.into()).or_default().push(id);
        }
        self.bytes += file.bytes;
        self.by_path.insert(file.path.clone(), id);
        self.files[id.0 as usize] = Some(file);
        id
    }

    /// Removes a file; returns whether it was there.
    pub fn remove(&mut self, path: &Path) -> bool {
        let Some(id) = self.by_path.remove(path) else { return false };
        let file = self.files[id.0 as usize].take().expect("paths map to live files");
        for def in &file.symbols.definitions {
            let key = name_key(&def.name);
            let emptied = match self.by_name.get_mut(&key) {
                Some(Refs::One(r)) => r.file == id,
                Some(Refs::Many(refs)) => {
                    refs.retain(|r| r.file != id);
                    refs.is_empty()
                }
                None => false,
            };
            if emptied {
                self.by_name.remove(&key);
            }
        }
        for key in module_keys(&file.path, file.lang) {
            if let Some(ids) = self.by_module.get_mut(key.as_str()) {
                ids.retain(|&f| f != id);
                if ids.is_empty() {
                    self.by_module.remove(key.as_str());
                }
            }
        }
        self.bytes -= file.bytes;
        self.free.push(id.0);
        true
    }

    /// Removes every file under `root` that came from the disk.
    pub fn remove_under(&mut self, root: &Path) {
        let doomed: Vec<PathBuf> = self
            .files()
            .filter(|(_, f)| f.origin == Origin::Disk && f.path.starts_with(root))
            .map(|(_, f)| f.path.clone())
            .collect();
        for path in doomed {
            self.remove(&path);
        }
    }

    /// An estimate of the heap memory the index holds, in bytes.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut total = self.files.capacity() * size_of::<Option<IndexedFile>>();
        for (_, file) in self.files() {
            total += file.path.as_os_str().len() * 2 + file.display.len();
            let symbols = &file.symbols;
            total += symbols.definitions.capacity() * size_of::<super::symbols::Definition>();
            for def in &symbols.definitions {
                total += def.name.len() + def.signature.len();
                if def.extra.is_some() {
                    total += std::mem::size_of::<super::symbols::Extra>();
                    total += def.doc().map_or(0, str::len) + def.outline().map_or(0, str::len);
                }
            }
            total += symbols.imports.capacity() * size_of::<super::symbols::Import>();
            for import in &symbols.imports {
                total += import.module.len() + import.names.iter().map(|n| n.name.len() + 40).sum::<usize>();
            }
        }
        total += self.by_name.capacity() * (size_of::<u64>() + size_of::<Refs>() + 1);
        total += self
            .by_name
            .values()
            .map(|v| if let Refs::Many(refs) = v { refs.capacity() * size_of::<DefRef>() } else { 0 })
            .sum::<usize>();
        let entry = size_of::<Box<str>>() + size_of::<Vec<FileId>>() + 1;
        total += self.by_module.capacity() * entry;
        total += self.by_module.iter().map(|(k, v)| k.len() + v.capacity() * size_of::<FileId>()).sum::<usize>();
        total += self.by_path.capacity() * (size_of::<PathBuf>() + 12);
        total
    }
}

/// A hash of the directory of `path`.
pub fn dir_key(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.parent().hash(&mut hasher);
    hasher.finish()
}

/// The names a file can be imported by: its stem; its directory's name
/// for `__init__.py`, `index.ts`, `mod.rs` and the like; the directory's
/// name for languages that import whole directories (Go, Java packages).
pub fn module_keys(path: &Path, lang: Lang) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    let stem = match lang {
        // C and C++ include headers by file name.
        Lang::C | Lang::Cpp => path.file_name(),
        _ => path.file_stem(),
    };
    let stem = stem.and_then(|s| s.to_str()).unwrap_or("");
    // `math.d.ts` is imported as `math`.
    let stem = stem.strip_suffix(".d").unwrap_or(stem);
    keys.push(stem.to_owned());
    let by_directory = INDEX_STEMS.contains(&stem) || matches!(lang, Lang::Go | Lang::Java);
    if by_directory
        && let Some(dir) = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str())
        && dir != stem
    {
        keys.push(dir.to_owned());
    }
    keys
}
