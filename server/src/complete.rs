//! `weft complete FILE:LINE:COL`: one completion from the command line.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use weft_inference::{CancellationToken, CompletionRequest, Language, LlamaEngine, LoadOptions};

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct CompleteArgs {
    /// GGUF model file or registry name (overrides the config).
    #[arg(long)]
    model: Option<String>,
    /// Where to complete: FILE:LINE:COL, 1-based, COL in characters.
    location: String,
    /// Maximum tokens to generate.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Print the completion and its details as JSON.
    #[arg(long)]
    json: bool,
}

/// A parsed FILE:LINE:COL.
#[derive(Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl std::str::FromStr for Location {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut parts = s.rsplitn(3, ':');
        let (Some(col), Some(line), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("expected FILE:LINE:COL, got {s:?}");
        };
        let number = |what: &str, v: &str| -> anyhow::Result<usize> {
            match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => bail!("{what} must be a number from 1 up, got {v:?}"),
            }
        };
        Ok(Location { file: PathBuf::from(file), line: number("LINE", line)?, column: number("COL", col)? })
    }
}

/// Splits `text` at a 1-based line and character column. A column past the
/// line's end means the line's end.
pub fn split_at(text: &str, line: usize, column: usize) -> anyhow::Result<(&str, &str)> {
    let mut start = 0;
    for _ in 1..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => bail!("the file has fewer than {line} lines"),
        }
    }
    let line_text = &text[start..];
    let line_end = line_text.find('\n').map_or(line_text.len(), |i| i);
    let line_text = line_text[..line_end].strip_suffix('\r').unwrap_or(&line_text[..line_end]);
    let offset = line_text.char_indices().nth(column - 1).map_or(line_text.len(), |(i, _)| i);
    Ok(text.split_at(start + offset))
}

pub async fn run(args: CompleteArgs, config: Config) -> anyhow::Result<ExitCode> {
    let location: Location = args.location.parse()?;
    let text =
        std::fs::read_to_string(&location.file).with_context(|| format!("cannot read {}", location.file.display()))?;
    let (prefix, suffix) = split_at(&text, location.line, location.column)?;
    let model_path = config.model_file(args.model.as_deref())?;
    let load = LoadOptions {
        vocab_only: false,
        n_gpu_layers: config.engine.n_gpu_layers,
        format: config.model.format,
        fim_order: config.model.fim_order,
    };
    let engine_config = config.engine.clone();
    let engine = tokio::task::spawn_blocking(move || LlamaEngine::start(&model_path, &load, &engine_config)).await??;

    let mut request = CompletionRequest::new(prefix, suffix, Language::from_path(&location.file));
    request.path = location.file.file_name().map(|n| n.to_string_lossy().into_owned());
    request.max_tokens = args.max_tokens.unwrap_or(config.completion.max_tokens);
    request.time_budget = config.completion.time_budget();
    request.sampling = config.completion.sampling;
    let completion = engine.complete(request, CancellationToken::new()).await?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({ "model": engine.info(), "completion": completion });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(stdout, "{}", completion.text)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_colons_in_the_path() {
        let loc: Location = "C:/src/a.rs:3:7".parse().unwrap();
        assert_eq!(loc, Location { file: PathBuf::from("C:/src/a.rs"), line: 3, column: 7 });
        assert!("a.rs:0:1".parse::<Location>().is_err());
        assert!("a.rs:1".parse::<Location>().is_err());
    }

    #[test]
    fn split_at_counts_characters_and_clamps_the_column() {
        let text = "héllo\r\nwörld\n";
        assert_eq!(split_at(text, 1, 3).unwrap(), ("hé", "llo\r\nwörld\n"));
        assert_eq!(split_at(text, 2, 99).unwrap(), ("héllo\r\nwörld", "\n"));
        assert_eq!(split_at(text, 1, 99).unwrap(), ("héllo", "\r\nwörld\n"));
        assert!(split_at(text, 4, 1).is_err());
    }
}
