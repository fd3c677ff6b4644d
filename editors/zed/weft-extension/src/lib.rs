//! Zed dev extension: registers `weft lsp` as the language server "weft".
//! The binary comes from `lsp.weft.binary` in Zed's settings, else `weft`
//! on the worktree's PATH.

use zed_extension_api::{self as zed, serde_json, settings::LspSettings, LanguageServerId, Result, Worktree};

struct Weft;

impl zed::Extension for Weft {
    fn new() -> Self {
        Weft
    }

    fn language_server_command(&mut self, _id: &LanguageServerId, worktree: &Worktree) -> Result<zed::Command> {
        let binary = LspSettings::for_worktree("weft", worktree).ok().and_then(|settings| settings.binary);
        let command = binary
            .as_ref()
            .and_then(|b| b.path.clone())
            .or_else(|| worktree.which("weft"))
            .ok_or_else(|| "weft is not on PATH: set lsp.weft.binary.path in Zed's settings".to_string())?;
        let args = binary.as_ref().and_then(|b| b.arguments.clone()).unwrap_or_else(|| vec!["lsp".to_string()]);
        let env = binary.and_then(|b| b.env).map(|env| env.into_iter().collect()).unwrap_or_default();
        Ok(zed::Command { command, args, env })
    }

    fn language_server_initialization_options(
        &mut self,
        _id: &LanguageServerId,
        worktree: &Worktree,
    ) -> Result<Option<serde_json::Value>> {
        let options = LspSettings::for_worktree("weft", worktree).ok().and_then(|s| s.initialization_options);
        Ok(Some(options.unwrap_or_else(|| serde_json::json!({ "client": "zed", "telemetry": { "enabled": false } }))))
    }
}

zed::register_extension!(Weft);
