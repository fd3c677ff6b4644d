//! `weft lsp --listen ADDR`: the language server over TCP.
//!
//! Each connection is its own LSP session, with its own documents, context
//! engine and completion state; all sessions share the one completion
//! provider (the model is loaded once, and its worker serves them in turn),
//! the agent engine and the telemetry pipeline.
//!
//! A client of the server can have it apply workspace edits and run the
//! configured test command, so only loopback addresses are accepted unless
//! `--listen-any` says otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use weft_lsp::{AgentProvider, CompletionProvider, ServerConfig};

/// Refuses a non-loopback address unless `any` is set.
pub fn check_address(address: SocketAddr, any: bool) -> anyhow::Result<()> {
    if !address.ip().is_loopback() && !any {
        bail!(
            "refusing to listen on {address}: it is not a loopback address, and any client that connects can have \
             Weft apply workspace edits and run the configured test command; listen on 127.0.0.1 or ::1, or pass \
             --listen-any to accept connections from other machines"
        );
    }
    Ok(())
}

/// Binds `address`, prints the bound address to stderr (`weft lsp:
/// listening on 127.0.0.1:PORT`; port 0 picks a free port) and serves every
/// connection until interrupted.
pub async fn serve(
    address: SocketAddr,
    provider: Arc<dyn CompletionProvider>,
    agents: Option<Arc<dyn AgentProvider>>,
    config: ServerConfig,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr().context("the listening socket has no address")?;
    if !bound.ip().is_loopback() {
        tracing::warn!("listening on {bound}, reachable from other machines (--listen-any)");
    }
    // Not a log line: tests and scripts read it whatever the log settings.
    eprintln!("weft lsp: listening on {bound}");
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::info!(%peer, "LSP client connected");
                    let _ = stream.set_nodelay(true);
                    let (read, write) = stream.into_split();
                    let (provider, agents, config) = (provider.clone(), agents.clone(), config.clone());
                    tokio::spawn(async move {
                        weft_lsp::serve_with_agents(read, write, provider, agents, config).await;
                        tracing::info!(%peer, "LSP client disconnected");
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait a little
                    // instead of spinning.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => {
                tracing::info!("stopping the LSP listener");
                return Ok(());
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_without_listen_any() {
        for ok in ["127.0.0.1:0", "127.0.0.2:9000", "[::1]:9000"] {
            assert!(check_address(ok.parse().unwrap(), false).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:9000", "192.168.1.4:9000", "[::]:9000"] {
            let err = check_address(refused.parse().unwrap(), false).unwrap_err().to_string();
            assert!(err.contains("not a loopback address") && err.contains("--listen-any"), "{err}");
            assert!(check_address(refused.parse().unwrap(), true).is_ok(), "{refused}");
        }
    }
}
