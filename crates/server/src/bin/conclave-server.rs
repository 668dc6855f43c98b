//! `conclave-server`: runs a Janus-compatible meeting server standalone.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use conclave_server::runtime::{self, Options};
use conclave_server::tls::TlsIdentity;
use conclave_server::Config;

/// A meeting server that speaks the Janus API subset Conclave uses
/// (VideoRoom + TextRoom over WebSocket). It keeps no media, chat or
/// invitations.
#[derive(Debug, Parser)]
#[command(name = "conclave-server", version)]
struct Args {
    /// WebSocket address to listen on.
    #[arg(long, default_value = "127.0.0.1:8188", env = "CONCLAVE_SERVER_LISTEN")]
    listen: SocketAddr,
    /// IP address for media (the UDP socket and its ICE candidate). Defaults
    /// to the listen address; required when listening on 0.0.0.0.
    #[arg(long)]
    media_ip: Option<IpAddr>,
    /// A file with limits and policies (see docs/server.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve wss:// with a self-signed certificate kept in this directory
    /// (generated on first run). Its fingerprint is printed at start; put it
    /// in links as `fp=` so clients pin it.
    #[arg(long, conflicts_with = "tls_cert")]
    self_signed: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Config>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => Config::default(),
    };
    let tls = match (&args.tls_cert, &args.tls_key, &args.self_signed) {
        (Some(cert), Some(key), _) => Some(TlsIdentity::from_pem_files(cert, key)?),
        (_, _, Some(dir)) => Some(
            TlsIdentity::self_signed_in(dir)
                .with_context(|| format!("certificate in {}", dir.display()))?,
        ),
        _ => None,
    };
    let server = runtime::start(Options {
        listen: args.listen,
        media_ip: args.media_ip,
        config,
        tls: tls.map(std::sync::Arc::new),
    })
    .await
    .with_context(|| format!("starting on {}", args.listen))?;
    println!("conclave-server listening on {}", server.url());
    if let Some(fp) = &server.fingerprint {
        println!("certificate fingerprint (fp=): {fp}");
    }
    tokio::select! {
        () = server.wait() => {}
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; }
    }
    Ok(())
}
