//! The `metricstore` server: one [`MetricStore`] behind HTTP (axum), Arrow Flight SQL
//! (tonic) and StatsD.
//!
//! ```text
//!  HTTP :9201 ── router ── write handlers ──► ingest::{line_protocol, ...} ──► MetricStore::write
//!                      ├── /api/v1/sql ──────► MetricStore::sql_stream
//!                      └── Prometheus metadata, status, /metrics, health
//!  gRPC :50051 ── flight ── queries, prepared statements, metadata ──► MetricStore::sql_frame
//!                       └── DoPut ingest ──► ingest::arrow ──► MetricStore::write
//!  UDP :8125 ── statsd ── aggregator ──► MetricStore::write
//! ```
//! The server holds no business logic: handlers parse, call the facade and answer.
//! [`auth`] holds the optional bearer token both HTTP and Flight SQL check.

pub mod auth;
pub mod config;
pub mod export;
pub mod flight;
mod http;
pub mod metrics;
pub mod retention;
mod statsd;

use std::future::Future;
use std::sync::Arc;

pub use config::{ConfigError, ServerConfig};
pub use http::{AppState, router};

use crate::{Config, MetricStore};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// Serving failed.
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    /// The Flight SQL server failed.
    #[error("Flight SQL server failed: {0}")]
    Flight(String),
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The alert rules could not be loaded.
    #[error(transparent)]
    Alerting(#[from] crate::alert::AlertError),
}

/// A running server's addresses, for tests that bind port 0.
pub struct Running {
    /// Where HTTP listens.
    pub http_addr: std::net::SocketAddr,
    /// Where StatsD listens, if enabled.
    pub statsd_addr: Option<std::net::SocketAddr>,
    /// Where Arrow Flight SQL listens, if enabled.
    pub flight_addr: Option<std::net::SocketAddr>,
}

/// Runs the server until `shutdown` completes, then stops taking requests and
/// finishes the ones in flight. `on_ready` learns the bound addresses first.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Running),
) -> Result<(), ServerError> {
    config.check()?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = Arc::new(MetricStore::open(Config {
        storage: config.storage.to_config(),
        durability: config.durability.to_config(&config.data_dir),
        tier: config.tier.to_config(&config.data_dir)?,
    })?);
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(ServerError::Http)?;
    let metrics: Arc<metrics::ServerMetrics> = Arc::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut statsd_addr = None;
    if config.statsd_enabled {
        let socket = tokio::net::UdpSocket::bind(config.statsd_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.statsd_addr,
                source,
            })?;
        statsd_addr = Some(socket.local_addr().map_err(ServerError::Http)?);
        let aggregator = Arc::new(parking_lot::Mutex::new(statsd::aggregator()));
        tasks.push(tokio::spawn(statsd::receive(
            socket,
            aggregator.clone(),
            metrics.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(statsd::flush(
            store.clone(),
            aggregator,
            metrics.clone(),
            std::time::Duration::from_secs(config.statsd_flush_secs.max(1)),
            stopped.clone(),
        )));
        tracing::info!(addr = ?statsd_addr, "StatsD listening");
    }
    if config.tier.enabled {
        tasks.push(tokio::spawn(tier_task(
            store.clone(),
            std::time::Duration::from_secs(config.tier.interval_secs.max(1)),
            stopped.clone(),
        )));
    }
    let mut flight_addr = None;
    let mut flight_task = None;
    if config.flight.enabled {
        let flight_listener = tokio::net::TcpListener::bind(config.flight.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.flight.addr,
                source,
            })?;
        flight_addr = Some(flight_listener.local_addr().map_err(ServerError::Http)?);
        let service = flight::service(store.clone(), metrics.clone(), &config)
            .map_err(|e| ServerError::Flight(e.to_string()))?;
        let mut stopped = stopped.clone();
        flight_task = Some(tokio::spawn(flight::run(
            flight_listener,
            service,
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        )));
        tracing::info!(addr = ?flight_addr, "Arrow Flight SQL listening");
    }
    let alerting = if config.alerting.enabled {
        let alerting = crate::alert::Alerting::new(
            store.clone(),
            config.alerting.to_config(&config.data_dir, http_addr),
        )
        .await?;
        alerting.start();
        tracing::info!(groups = alerting.groups().len(), "alerting started");
        Some(alerting)
    } else {
        None
    };
    let closing = store.clone();
    let stopping = alerting.clone();
    let state = AppState {
        store,
        metrics,
        config: Arc::new(config),
        alerting,
    };
    tracing::info!(%http_addr, "HTTP listening");
    on_ready(Running {
        http_addr,
        statsd_addr,
        flight_addr,
    });
    let mut http_stopped = stopped.clone();
    let http = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = http_stopped.wait_for(|stop| *stop).await;
    });
    // Every listener hears shutdown through `stop`.
    let stop = Arc::new(stop);
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.send_replace(true);
        })
    };
    let result = http.await;
    signal.abort();
    // Should HTTP have failed on its own, the others stop too.
    stop.send_replace(true);
    // The StatsD tasks flush once more and end when told to stop; Flight finishes
    // the calls in flight.
    for task in tasks {
        let _ = task.await;
    }
    let flight_result = match flight_task {
        Some(task) => match task.await {
            Ok(r) => r.map_err(|e| ServerError::Flight(e.to_string())),
            Err(e) => Err(ServerError::Flight(e.to_string())),
        },
        None => Ok(()),
    };
    if let Some(alerting) = stopping
        && let Err(e) = alerting.stop()
    {
        tracing::error!(error = %e, "cannot save alert state");
    }
    result.map_err(ServerError::Http)?;
    flight_result?;
    // A checkpoint now means the next start replays (almost) no WAL.
    match tokio::task::spawn_blocking(move || closing.close()).await {
        Ok(Ok(Some(info))) => tracing::info!(file = %info.path.display(), "final checkpoint"),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "final checkpoint failed"),
        Err(e) => tracing::error!(error = %e, "final checkpoint task failed"),
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Runs tiering every `interval` until told to stop.
async fn tier_task(
    store: Arc<MetricStore>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = store.run_tiering(now_ms()).await {
            tracing::error!(error = %e, "tiering run failed; the next run retries");
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
