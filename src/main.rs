//! The `metricstore` binary.
//!
//! ```text
//! metricstore serve [--config FILE] [--data-dir DIR] [--http-addr ADDR] [--statsd-addr ADDR]
//!                   [--flight-addr ADDR] [--print-config]
//! metricstore import <file.prom[.zst]>     ingest a Prometheus text file and print stats
//! metricstore rules test <file.yml>...     test alert rules over input series
//! metricstore export --table T [--start S] [--end E] --to URL [--server URL]
//!                                          one table's rows to Parquet (local or s3://)
//! ```
//!
//! `serve` runs with embedded defaults when given nothing: data under `./data`, HTTP on
//! 127.0.0.1:9201, Arrow Flight SQL on 127.0.0.1:50051, StatsD on UDP 127.0.0.1:8125.
//! Flags override the config file; `METRICSTORE_AUTH_TOKEN` sets the bearer token.
//! SIGTERM and SIGINT stop it gracefully.

use std::fs::File;
use std::io::{BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

/// mimalloc: ingest allocates per series and per request, where glibc's malloc was a
/// sixth of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use metricstore::MetricStore;
use metricstore::ingest::prom_text;
use metricstore::server::{ServerConfig, serve};

/// An in-memory metrics database.
#[derive(Debug, Parser)]
#[command(name = "metricstore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP: remote_write, line protocol, SQL, Prometheus API; Arrow
    /// Flight SQL; StatsD).
    Serve {
        /// TOML configuration file; every setting has a default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides the file).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// HTTP listen address (overrides the file).
        #[arg(long)]
        http_addr: Option<SocketAddr>,
        /// StatsD UDP listen address (overrides the file).
        #[arg(long)]
        statsd_addr: Option<SocketAddr>,
        /// Arrow Flight SQL (gRPC) listen address (overrides the file).
        #[arg(long)]
        flight_addr: Option<SocketAddr>,
        /// Print the effective configuration as TOML and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Ingest a Prometheus text file (with timestamps; `.zst` is decompressed) and
    /// print what the store holds.
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Export one table's rows in a time range as Parquet to a path or `s3://` URL,
    /// through a running server (its object store credentials apply; the bearer token
    /// comes from `METRICSTORE_AUTH_TOKEN`).
    Export {
        /// The table.
        #[arg(long)]
        table: String,
        /// First time included: Unix milliseconds or RFC 3339.
        #[arg(long)]
        start: Option<String>,
        /// First time excluded: Unix milliseconds or RFC 3339.
        #[arg(long)]
        end: Option<String>,
        /// Destination: a path under the server's `export_dir` (a relative one resolves
        /// there) or `s3://bucket/key.parquet`.
        #[arg(long)]
        to: String,
        /// The server's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:9201")]
        server: String,
    },
    /// Alert rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Evaluate rules over input series at given times and compare the alerts with
    /// the expected ones (like `promtool test rules`); exits non-zero on a mismatch.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn rules_test(files: &[PathBuf]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut failed = 0;
    for file in files {
        let report = runtime
            .block_on(metricstore::alert::testing::run_file(file))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        for f in &report.failures {
            println!("FAILED {}: {f}", file.display());
        }
        println!(
            "{}: {} checks, {} failed",
            file.display(),
            report.checks,
            report.failures.len()
        );
        failed += report.failures.len();
    }
    if failed > 0 {
        Err(format!("{failed} alert checks failed"))
    } else {
        Ok(())
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "zst") {
        let decoder = zstd::Decoder::new(file)
            .map_err(|e| format!("cannot read {} as zstd: {e}", path.display()))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

fn import(path: &Path) -> Result<(), String> {
    let store = MetricStore::in_memory();
    let start = Instant::now();
    let parsed = prom_text::parse_reader(open(path)?, 0, 100_000, |batch| store.write(&batch))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let took = start.elapsed();
    store.seal_all();
    println!(
        "imported {}: {} samples in {:.2} s",
        path.display(),
        parsed.samples,
        took.as_secs_f64()
    );
    print!("{}", store.stats());
    Ok(())
}

/// Resolves when the process gets SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// What `serve` was told on the command line.
struct ServeArgs {
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    http_addr: Option<SocketAddr>,
    statsd_addr: Option<SocketAddr>,
    flight_addr: Option<SocketAddr>,
    print_config: bool,
}

fn run_server(args: ServeArgs) -> Result<(), String> {
    let ServeArgs {
        config,
        data_dir,
        http_addr,
        statsd_addr,
        flight_addr,
        print_config,
    } = args;
    let mut effective = match &config {
        Some(path) => ServerConfig::from_file(path).map_err(|e| e.to_string())?,
        None => ServerConfig::default(),
    };
    if let Some(d) = data_dir {
        effective.data_dir = d;
    }
    if let Some(a) = http_addr {
        effective.http_addr = a;
    }
    if let Some(a) = statsd_addr {
        effective.statsd_addr = a;
    }
    if let Some(a) = flight_addr {
        effective.flight.addr = a;
    }
    if let Ok(token) = std::env::var("METRICSTORE_AUTH_TOKEN") {
        effective.auth_token = Some(token);
    }
    effective.check().map_err(|e| e.to_string())?;
    if print_config {
        print!("{}", effective.to_toml());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime
        .block_on(serve(effective, shutdown_signal(), |running| {
            tracing::info!(
                http = %running.http_addr,
                flight = ?running.flight_addr,
                statsd = ?running.statsd_addr,
                "metricstore ready"
            );
        }))
        .map_err(|e| e.to_string())
}

fn export(request: metricstore::server::export::Export, server: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let token = std::env::var("METRICSTORE_AUTH_TOKEN").ok();
    let rows = runtime.block_on(request.run(server, token.as_deref()))?;
    println!(
        "exported {rows} rows of {} to {}",
        request.table, request.to
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            data_dir,
            http_addr,
            statsd_addr,
            flight_addr,
            print_config,
        } => run_server(ServeArgs {
            config,
            data_dir,
            http_addr,
            statsd_addr,
            flight_addr,
            print_config,
        }),
        Command::Import { file } => import(&file),
        Command::Export {
            table,
            start,
            end,
            to,
            server,
        } => export(
            metricstore::server::export::Export {
                table,
                start,
                end,
                to,
            },
            &server,
        ),
        Command::Rules {
            command: RulesCommand::Test { files },
        } => rules_test(&files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_and_mistakes_are_named() {
        let cli =
            Cli::try_parse_from(["metricstore", "serve", "--http-addr", "127.0.0.1:1"]).unwrap();
        assert!(matches!(cli.command, Command::Serve { http_addr: Some(a), .. } if a.port() == 1));
        let err = Cli::try_parse_from(["metricstore", "serve", "--http-addr", "nope"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid value 'nope' for '--http-addr"),
            "{err}"
        );
        assert!(Cli::try_parse_from(["metricstore", "import"]).is_err());
    }
}
