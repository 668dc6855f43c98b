//! Logs: a rotating file in the OS log directory, plus stderr. Nothing logged
//! anywhere in Conclave holds chat text, passwords, keys or clipboard content.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Days of logs kept.
const KEEP_LOG_FILES: usize = 7;

/// The log directory: `$XDG_STATE_HOME/conclave/logs` or the platform's equivalent.
pub fn log_dir() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("conclave").join("logs")
}

/// Installs the global subscriber. Keep the guard alive for the process.
pub fn init() -> Option<WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_env("CONCLAVE_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,str0m=warn,is=warn,tao=warn,wry=warn"))
    };
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    // The appender prunes old files on start and complains if the directory
    // is missing; a failure here surfaces just below.
    let _ = std::fs::create_dir_all(log_dir());
    let file = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("conclave")
        .filename_suffix("log")
        .max_log_files(KEEP_LOG_FILES)
        .build(log_dir());
    match file {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file_layer = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            tracing_subscriber::registry()
                .with(stderr)
                .with(file_layer)
                .init();
            Some(guard)
        }
        Err(e) => {
            tracing_subscriber::registry().with(stderr).init();
            tracing::warn!(error = %e, "no log file; logging to stderr only");
            None
        }
    }
}
