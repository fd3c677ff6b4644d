//! Programming languages that Weft knows a little about.
//!
//! The knowledge is deliberately shallow: enough to pick a comment syntax for
//! prompts and to tune the post-processing of completions (block openers and
//! top-level stop words), nothing that needs a parser.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A source language, as far as completion post-processing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
    CSharp,
    Ruby,
    Php,
    Lua,
    Shell,
    /// Anything else, including plain text.
    #[default]
    Other,
}

impl Language {
    /// Every language, in declaration order.
    pub const ALL: [Language; 15] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::TypeScript,
        Language::Tsx,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
        Language::CSharp,
        Language::Ruby,
        Language::Php,
        Language::Lua,
        Language::Shell,
        Language::Other,
    ];

    /// Maps an LSP `languageId` (as sent in `textDocument/didOpen`) to a language.
    ///
    /// The comparison ignores ASCII case, and a few common aliases ("py", "sh",
    /// "c++", ...) are accepted as well; unknown ids map to [`Language::Other`].
    pub fn from_language_id(id: &str) -> Language {
        match id.trim().to_ascii_lowercase().as_str() {
            "rust" | "rs" => Language::Rust,
            "python" | "py" => Language::Python,
            "javascript" | "javascriptreact" | "js" | "jsx" => Language::JavaScript,
            "typescript" | "ts" => Language::TypeScript,
            "typescriptreact" | "tsx" => Language::Tsx,
            "go" | "golang" => Language::Go,
            "java" => Language::Java,
            "c" => Language::C,
            "cpp" | "c++" | "cuda-cpp" => Language::Cpp,
            "csharp" | "c#" | "cs" => Language::CSharp,
            "ruby" | "rb" => Language::Ruby,
            "php" => Language::Php,
            "lua" => Language::Lua,
            "shellscript" | "shell" | "sh" | "bash" | "zsh" => Language::Shell,
            _ => Language::Other,
        }
    }

    /// Guesses the language from a file's extension (ignoring ASCII case).
    pub fn from_path(path: &Path) -> Language {
        let Some(ext) = path.extension().and_then(|ext| ext.to_str()) else {
            return Language::Other;
        };
        match ext.to_ascii_lowercase().as_str() {
            "rs" => Language::Rust,
            "py" | "pyi" | "pyw" => Language::Python,
            "js" | "mjs" | "cjs" | "jsx" => Language::JavaScript,
            "ts" | "mts" | "cts" => Language::TypeScript,
            "tsx" => Language::Tsx,
            "go" => Language::Go,
            "java" => Language::Java,
            "c" | "h" => Language::C,
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" | "cu" => Language::Cpp,
            "cs" => Language::CSharp,
            "rb" | "rake" | "gemspec" => Language::Ruby,
            "php" | "phtml" => Language::Php,
            "lua" => Language::Lua,
            "sh" | "bash" | "zsh" | "ksh" => Language::Shell,
            _ => Language::Other,
        }
    }

    /// The token that starts a line comment, if the language has one.
    pub fn line_comment(self) -> Option<&'static str> {
        match self {
            Language::Rust
            | Language::JavaScript
            | Language::TypeScript
            | Language::Tsx
            | Language::Go
            | Language::Java
            | Language::C
            | Language::Cpp
            | Language::CSharp
            | Language::Php => Some("//"),
            Language::Python | Language::Ruby | Language::Shell => Some("#"),
            Language::Lua => Some("--"),
            Language::Other => None,
        }
    }

    /// A human-readable name, suitable for prompts and logs.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
            Language::TypeScript => "TypeScript",
            Language::Tsx => "TSX",
            Language::Go => "Go",
            Language::Java => "Java",
            Language::C => "C",
            Language::Cpp => "C++",
            Language::CSharp => "C#",
            Language::Ruby => "Ruby",
            Language::Php => "PHP",
            Language::Lua => "Lua",
            Language::Shell => "Shell",
            Language::Other => "Text",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::path::Path;

    use expect_test::expect;

    use super::Language;

    #[test]
    fn language_ids() {
        let ids = [
            "rust",
            "python",
            "javascript",
            "javascriptreact",
            "typescript",
            "typescriptreact",
            "go",
            "java",
            "c",
            "cpp",
            "csharp",
            "ruby",
            "php",
            "lua",
            "shellscript",
            "Rust",
            "markdown",
            "",
        ];
        let mut out = String::new();
        for id in ids {
            let lang = Language::from_language_id(id);
            let comment = lang.line_comment().unwrap_or("-");
            writeln!(out, "{id:?} => {lang:?} ({}, {comment})", lang.name()).unwrap();
        }
        expect![[r#"
            "rust" => Rust (Rust, //)
            "python" => Python (Python, #)
            "javascript" => JavaScript (JavaScript, //)
            "javascriptreact" => JavaScript (JavaScript, //)
            "typescript" => TypeScript (TypeScript, //)
            "typescriptreact" => Tsx (TSX, //)
            "go" => Go (Go, //)
            "java" => Java (Java, //)
            "c" => C (C, //)
            "cpp" => Cpp (C++, //)
            "csharp" => CSharp (C#, //)
            "ruby" => Ruby (Ruby, #)
            "php" => Php (PHP, //)
            "lua" => Lua (Lua, --)
            "shellscript" => Shell (Shell, #)
            "Rust" => Rust (Rust, //)
            "markdown" => Other (Text, -)
            "" => Other (Text, -)
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn paths() {
        let paths = [
            "src/main.rs",
            "app.py",
            "types.pyi",
            "index.js",
            "module.mjs",
            "App.jsx",
            "lib.ts",
            "App.tsx",
            "main.go",
            "Main.java",
            "a.c",
            "a.h",
            "a.cpp",
            "a.HPP",
            "Program.cs",
            "x.rb",
            "index.php",
            "init.lua",
            "build.sh",
            "README.md",
            "Makefile",
            "dir.rs/file",
        ];
        let mut out = String::new();
        for path in paths {
            writeln!(out, "{path} => {:?}", Language::from_path(Path::new(path))).unwrap();
        }
        expect![[r#"
            src/main.rs => Rust
            app.py => Python
            types.pyi => Python
            index.js => JavaScript
            module.mjs => JavaScript
            App.jsx => JavaScript
            lib.ts => TypeScript
            App.tsx => Tsx
            main.go => Go
            Main.java => Java
            a.c => C
            a.h => C
            a.cpp => Cpp
            a.HPP => Cpp
            Program.cs => CSharp
            x.rb => Ruby
            index.php => Php
            init.lua => Lua
            build.sh => Shell
            README.md => Other
            Makefile => Other
            dir.rs/file => Other
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn serde_round_trip() {
        for lang in Language::ALL {
            let json = serde_json::to_string(&lang).unwrap();
            let back: Language = serde_json::from_str(&json).unwrap();
            assert_eq!(back, lang, "{json}");
        }
        assert_eq!(serde_json::to_string(&Language::CSharp).unwrap(), r#""csharp""#);
        assert_eq!(Language::default(), Language::Other);
        assert_eq!(Language::Cpp.to_string(), "C++");
    }
}
