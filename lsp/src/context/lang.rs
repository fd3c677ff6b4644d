//! The languages the context engine parses, and what it knows of each.

use std::path::Path;

/// A language with a tree-sitter grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

impl Lang {
    /// Every language, for tests and benchmarks.
    pub const ALL: [Lang; 9] = [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Java,
        Lang::C,
        Lang::Cpp,
    ];

    /// The language of a file, from its extension.
    pub fn from_path(path: &Path) -> Option<Lang> {
        let ext = path.extension()?.to_str()?;
        Some(match ext {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" => Lang::Cpp,
            _ => return None,
        })
    }

    /// The language of an LSP language identifier.
    pub fn from_language_id(id: &str) -> Option<Lang> {
        Some(match id {
            "rust" => Lang::Rust,
            "python" => Lang::Python,
            "javascript" | "javascriptreact" => Lang::JavaScript,
            "typescript" => Lang::TypeScript,
            "typescriptreact" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" => Lang::C,
            "cpp" => Lang::Cpp,
            _ => return None,
        })
    }

    /// The tree-sitter grammar.
    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// A parser for this language.
    pub fn parser(self) -> tree_sitter::Parser {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&self.grammar()).expect("the grammars are built against this tree-sitter version");
        parser
    }

    /// Whether blocks are delimited by indentation rather than braces.
    pub fn is_indented(self) -> bool {
        self == Lang::Python
    }

    /// How languages are grouped for lookups by name: a TypeScript file
    /// imports JavaScript, a C++ file includes C headers.
    pub fn family(self) -> u8 {
        match self {
            Lang::Rust => 0,
            Lang::Python => 1,
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => 2,
            Lang::Go => 3,
            Lang::Java => 4,
            Lang::C | Lang::Cpp => 5,
        }
    }

    /// Words that are never worth looking up: keywords and the names of
    /// built-in types and values.
    pub fn is_keyword(self, word: &str) -> bool {
        const COMMON: &[&str] = &[
            "as", "break", "case", "catch", "class", "const", "continue", "default", "do", "else", "enum", "false",
            "for", "if", "import", "in", "null", "return", "self", "static", "struct", "super", "switch", "this",
            "throw", "true", "try", "void", "while", "int", "char", "bool", "string", "var", "let", "with",
        ];
        let specific: &[&str] = match self {
            Lang::Rust => &[
                "fn", "pub", "use", "mod", "impl", "trait", "where", "mut", "ref", "match", "loop", "move", "dyn",
                "crate", "Self", "type", "unsafe", "async", "await", "Some", "None", "Ok", "Err", "Option", "Result",
                "String", "Vec", "Box", "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "f32",
                "f64", "str",
            ],
            Lang::Python => &[
                "def",
                "elif",
                "except",
                "finally",
                "from",
                "global",
                "lambda",
                "nonlocal",
                "not",
                "and",
                "or",
                "is",
                "pass",
                "raise",
                "yield",
                "None",
                "True",
                "False",
                "async",
                "await",
                "assert",
                "del",
                "print",
                "len",
                "list",
                "dict",
                "set",
                "tuple",
                "str",
                "float",
                "range",
                "isinstance",
            ],
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => &[
                "function",
                "export",
                "extends",
                "implements",
                "interface",
                "type",
                "typeof",
                "instanceof",
                "undefined",
                "new",
                "async",
                "await",
                "yield",
                "of",
                "from",
                "number",
                "boolean",
                "any",
                "unknown",
                "never",
                "readonly",
                "public",
                "private",
                "protected",
                "console",
                "Promise",
                "Array",
                "Object",
                "Error",
            ],
            Lang::Go => &[
                "func",
                "package",
                "go",
                "defer",
                "chan",
                "map",
                "range",
                "select",
                "type",
                "interface",
                "fallthrough",
                "goto",
                "nil",
                "error",
                "int64",
                "int32",
                "float64",
                "byte",
                "rune",
                "make",
                "append",
                "len",
                "fmt",
            ],
            Lang::Java => &[
                "public",
                "private",
                "protected",
                "final",
                "abstract",
                "extends",
                "implements",
                "interface",
                "package",
                "throws",
                "instanceof",
                "new",
                "synchronized",
                "long",
                "double",
                "float",
                "boolean",
                "String",
                "Override",
                "Integer",
                "Object",
                "List",
                "Map",
            ],
            Lang::C | Lang::Cpp => &[
                "include",
                "define",
                "ifdef",
                "ifndef",
                "endif",
                "sizeof",
                "typedef",
                "unsigned",
                "signed",
                "long",
                "short",
                "double",
                "float",
                "extern",
                "inline",
                "namespace",
                "template",
                "typename",
                "public",
                "private",
                "protected",
                "virtual",
                "override",
                "new",
                "delete",
                "nullptr",
                "std",
                "size_t",
                "auto",
                "NULL",
            ],
        };
        COMMON.contains(&word) || specific.contains(&word)
    }
}
