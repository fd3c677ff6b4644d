//! `weft`: the language server, and the command line around it.

mod bench;
mod cli;
mod complete;
mod config;
mod doctor;
mod eval;
mod listen;
mod models;
mod prompt_cmd;
mod telemetry;
mod wiring;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
