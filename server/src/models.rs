//! `weft models list` and `weft models pull NAME`.

use std::io::Write as _;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use weft_inference::hub::{Hub, Progress};
use weft_inference::registry::Registry;

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// List the models of the registry and whether they are downloaded.
    List,
    /// Download a model of the registry, with resume and checksum verification.
    Pull {
        /// The model's registry name (see `weft models list`).
        name: String,
    },
}

pub async fn run(command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let registry = Registry::builtin();
    let hub = Hub::from_env();
    match command {
        ModelsCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<26} {:<14} {:<9} {:<10} SOURCE", "NAME", "FAMILY", "KIND", "STATE")?;
            for entry in registry.iter() {
                let state = if hub.model_path(entry).is_file() { "pulled" } else { "-" };
                writeln!(
                    out,
                    "{:<26} {:<14} {:<9} {:<10} {}",
                    entry.name,
                    entry.family.as_str(),
                    entry.kind.as_str(),
                    state,
                    entry.source_label()
                )?;
            }
            writeln!(out, "\nmodels directory: {}", hub.models_dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Pull { name } => {
            let entry = registry.get(&name)?;
            let bar = ProgressBar::new(entry.size.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("static template"),
            );
            bar.set_message(name.clone());
            let progress = |p: Progress| {
                if let Some(total) = p.total {
                    bar.set_length(total);
                }
                bar.set_position(p.downloaded);
            };
            let pulled = hub.fetch(entry, &progress).await?;
            bar.finish_and_clear();
            let how = if pulled.cached { "already present" } else { "downloaded" };
            eprintln!("{name}: {how}, {}", pulled.verification.as_str());
            // The path is the command's result, for scripts.
            writeln!(std::io::stdout().lock(), "{}", pulled.path.display())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
