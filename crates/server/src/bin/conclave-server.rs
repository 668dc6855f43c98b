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
    /// WebSocket address to listen on [default: 127.0.0.1:8188].
    #[arg(long, env = "CONCLAVE_SERVER_LISTEN")]
    listen: Option<SocketAddr>,
    /// IP address for media (the UDP socket and its ICE candidate). Defaults
    /// to the listen address; required when listening on 0.0.0.0.
    #[arg(long)]
    media_ip: Option<IpAddr>,
    /// A TOML file: listen and media addresses, the public IP, TLS paths,
    /// limits, PIN policy (see docs/server.md). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A public IP that maps to the media address (1:1 NAT), offered as a
    /// server-reflexive ICE candidate.
    #[arg(long)]
    public_ip: Option<IpAddr>,
    /// Append everything the server receives at the application level
    /// (signaling JSON with SDPs, data-channel payloads) to FILE, one JSON
    /// object per line. Off by default: for privacy tests and audits only.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
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
    /// Do not take media over TCP on the WebSocket's port (ICE-TCP, for
    /// clients whose UDP is blocked). On by default.
    #[arg(long)]
    no_ice_tcp: bool,
}

/// The `--config` file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    media_ip: Option<IpAddr>,
    public_ip: Option<IpAddr>,
    /// Media over TCP on the WebSocket's port (default true).
    ice_tcp: Option<bool>,
    admin_key: Option<String>,
    tls: Option<TlsFiles>,
    limits: conclave_server::Limits,
    pin: conclave_server::config::PinPolicy,
}

/// The `[tls]` table of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TlsFiles {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
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
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let tls_files = args.tls_cert.clone().zip(args.tls_key.clone()).or_else(|| {
        file.tls
            .as_ref()
            .and_then(|t| t.cert.clone().zip(t.key.clone()))
    });
    let self_signed = args
        .self_signed
        .clone()
        .or_else(|| file.tls.as_ref().and_then(|t| t.self_signed.clone()));
    let tls = match (tls_files, self_signed) {
        (Some((cert, key)), _) => Some(TlsIdentity::from_pem_files(&cert, &key)?),
        (None, Some(dir)) => Some(
            TlsIdentity::self_signed_in(&dir)
                .with_context(|| format!("certificate in {}", dir.display()))?,
        ),
        (None, None) => None,
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8188)));
    let server = runtime::start(Options {
        listen,
        media_ip: args.media_ip.or(file.media_ip),
        config: Config {
            limits: file.limits,
            pin: file.pin,
            admin_key: file.admin_key,
            audit: false,
        },
        tls: tls.map(std::sync::Arc::new),
        public_ip: args.public_ip.or(file.public_ip),
        audit: args.audit.clone(),
        ice_tcp: !args.no_ice_tcp && file.ice_tcp.unwrap_or(true),
    })
    .await
    .with_context(|| format!("starting on {listen}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_config_parses() {
        let text = include_str!("../../../../docs/examples/conclave-server.toml");
        let config: FileConfig = toml::from_str(text).expect("example config");
        assert_eq!(config.limits.max_rooms, 500);
        assert!(config.tls.and_then(|t| t.cert).is_some());
        assert!(
            toml::from_str::<FileConfig>("lisen = 1").is_err(),
            "typos are errors"
        );
    }
}
