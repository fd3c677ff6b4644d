//! `weft-telemetry-api`: runs the telemetry service, or changes a role.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weft_telemetry_api::auth::Role;
use weft_telemetry_api::{AppState, ServiceConfig, db};

#[derive(Parser)]
#[command(version, about = "Weft telemetry service")]
struct Cli {
    /// Postgres URL, e.g. postgres://weft@localhost/weft_telemetry.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WEFT_TELEMETRY_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Most database connections.
    #[arg(long, env = "WEFT_TELEMETRY_DB_CONNECTIONS", default_value_t = 16)]
    db_connections: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Applies migrations and serves the API (the default).
    Serve,
    /// Applies migrations and exits.
    Migrate,
    /// Sets an account's role, e.g. to create the first admin.
    SetRole {
        #[arg(long)]
        email: String,
        /// user, researcher or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected user, researcher or admin".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let url = cli.database_url.context("set --database-url or DATABASE_URL")?;
    let pool = db::connect_and_migrate(&url, cli.serve.db_connections).await?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::SetRole { email, role } => {
            if db::users::set_role_by_email(&pool, &email, role).await? {
                tracing::info!(%email, role = role.as_str(), "role changed");
                Ok(())
            } else {
                anyhow::bail!("no account with email {email}")
            }
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(cli.serve.listen)
                .await
                .with_context(|| format!("binding {}", cli.serve.listen))?;
            tracing::info!(addr = %listener.local_addr()?, "listening");
            let state = AppState::new(pool, ServiceConfig::default());
            weft_telemetry_api::serve(listener, state, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
