//! Load generator: TSBS cpu-only data over remote_write and line protocol, from N
//! keep-alive connections, against MetricStore and (when `victoria-metrics` is on the
//! PATH) against VictoriaMetrics started beside it, with samples/s accepted, write
//! latency percentiles and the ratio of the two, all in one run.
//!
//! ```sh
//! cargo run --release --example loadgen -- --rows 1000000 --connections 4
//! cargo run --release --example loadgen -- --rounds 5                # median ratio
//! cargo run --release --example loadgen -- --target 127.0.0.1:9201   # a running server
//! cargo run --release --example loadgen -- --statsd-rate 300000       # StatsD, UDP
//! ```
//! Bodies are encoded before timing. Each connection owns a fixed share of the hosts,
//! so every series arrives in time order whatever the scheduling.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

/// mimalloc: ingest allocates per series and per request, where glibc's malloc was a
/// sixth of the server's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use metricstore::ingest::remote_write::encode_v1;
use metricstore::server::{ServerConfig, serve};
use metricstore::workload::tsbs::{CpuOnly, FIELDS, TsbsConfig};

#[derive(Debug, Parser)]
struct Args {
    /// TSBS rows to send per protocol (10 samples each).
    #[arg(long, default_value_t = 500_000)]
    rows: usize,
    /// TSBS hosts.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Rows per request body.
    #[arg(long, default_value_t = 1_000)]
    rows_per_request: usize,
    /// Send to this MetricStore instead of starting one in-process.
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Skip VictoriaMetrics even when it is installed.
    #[arg(long)]
    no_victoria: bool,
    /// Only this protocol: `remote_write` or `line`.
    #[arg(long)]
    only: Option<String>,
    /// Rounds per protocol, MetricStore and VictoriaMetrics alternating; each round
    /// sends the data set again, later in time. Prints every round and the median
    /// ratio: on a shared 2-core machine one round's ratio swings by a third.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Instead of HTTP: StatsD metrics per second to send over UDP for 5 s.
    #[arg(long)]
    statsd_rate: Option<u64>,
}

/// A request body and the samples it carries.
struct Body {
    bytes: Vec<u8>,
    samples: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    RemoteWrite,
    Line,
}

/// Bodies per connection, each connection owning hosts `i % connections == c`, for
/// round `round` (rounds follow each other in time, so no sample repeats).
fn bodies(args: &Args, protocol: Protocol, round: usize) -> Vec<Vec<Body>> {
    let hosts = args.hosts.max(1);
    let duration_ms = args.rows.div_ceil(hosts) as i64 * 10_000;
    let quick = TsbsConfig::quick();
    let config = TsbsConfig {
        scale: hosts,
        duration_ms,
        start_ms: quick.start_ms + round as i64 * duration_ms,
        ..quick
    };
    let workload = CpuOnly::new(config);
    let n = args.connections.max(1);
    let mut out: Vec<Vec<Body>> = (0..n).map(|_| Vec::new()).collect();
    let mut pending: Vec<Vec<metricstore::workload::tsbs::Row>> =
        (0..n).map(|_| Vec::new()).collect();
    let per_body = (args.rows_per_request / n).max(1);
    let flush = |rows: &mut Vec<metricstore::workload::tsbs::Row>, out: &mut Vec<Body>| {
        if !rows.is_empty() {
            out.push(encode(&workload, rows, protocol));
            rows.clear();
        }
    };
    for row in workload.rows() {
        let c = row.host % n;
        pending[c].push(row);
        if pending[c].len() >= per_body {
            flush(&mut pending[c], &mut out[c]);
        }
    }
    for (rows, out) in pending.iter_mut().zip(out.iter_mut()) {
        flush(rows, out);
    }
    out
}

fn encode(
    workload: &CpuOnly,
    rows: &[metricstore::workload::tsbs::Row],
    protocol: Protocol,
) -> Body {
    let samples = rows.len() * FIELDS.len();
    match protocol {
        Protocol::Line => {
            let mut text = String::new();
            for row in rows {
                text.push_str("cpu");
                for (k, v) in workload.hosts()[row.host].tags().pairs() {
                    text.push_str(&format!(",{k}={v}"));
                }
                for (i, (field, value)) in FIELDS.iter().zip(row.values).enumerate() {
                    text.push(if i == 0 { ' ' } else { ',' });
                    text.push_str(&format!("{field}={value}"));
                }
                text.push_str(&format!(" {}\n", row.timestamp_ms));
            }
            Body {
                bytes: text.into_bytes(),
                samples,
            }
        }
        Protocol::RemoteWrite => {
            // One Prometheus series per host and field (`cpu_usage_user{hostname=..}`),
            // each with all its samples of this body.
            let mut series: std::collections::BTreeMap<(usize, usize), Vec<(i64, f64)>> =
                std::collections::BTreeMap::new();
            for row in rows {
                for (f, value) in row.values.iter().enumerate() {
                    series
                        .entry((row.host, f))
                        .or_default()
                        .push((row.timestamp_ms, *value));
                }
            }
            let encoded: Vec<_> = series
                .into_iter()
                .map(|((host, f), samples)| {
                    let mut labels = vec![("__name__".to_string(), format!("cpu_{}", FIELDS[f]))];
                    labels.extend(workload.hosts()[host].tags().pairs().iter().cloned());
                    (labels, samples)
                })
                .collect();
            Body {
                bytes: encode_v1(&encoded, &[]),
                samples,
            }
        }
    }
}

/// A minimal HTTP/1.1 keep-alive client: enough for 204s and short error bodies.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::new(),
        }
    }

    fn post(&mut self, path: &str, headers: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        self.request("POST", path, headers, body)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: loadgen\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let split = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                self.stream = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..split]).to_lowercase();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while self.buf.len() < split + 4 + length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&self.buf[split + 4..]).to_string();
        if head.contains("connection: close") {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// What one run measured.
struct Outcome {
    samples: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

fn run(addr: SocketAddr, protocol: Protocol, bodies: &[Vec<Body>]) -> Outcome {
    let (path, headers) = match protocol {
        Protocol::RemoteWrite => (
            "/api/v1/write",
            "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\n",
        ),
        Protocol::Line => ("/write?precision=ms", ""),
    };
    let start = Instant::now();
    let results: Vec<(usize, Vec<Duration>)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|mine| {
                s.spawn(move || {
                    let mut conn = Conn::new(addr);
                    let mut accepted = 0;
                    let mut latencies = Vec::with_capacity(mine.len());
                    for body in mine {
                        let sent = Instant::now();
                        match conn.post(path, headers, &body.bytes) {
                            Ok((200..=299, _)) => accepted += body.samples,
                            Ok((status, text)) => {
                                eprintln!(
                                    "refused {status}: {}",
                                    text.chars().take(300).collect::<String>()
                                )
                            }
                            Err(e) => eprintln!("request failed: {e}"),
                        }
                        latencies.push(sent.elapsed());
                    }
                    (accepted, latencies)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = start.elapsed();
    let mut outcome = Outcome {
        samples: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for (n, l) in results {
        outcome.samples += n;
        outcome.latencies.extend(l);
    }
    outcome
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// VictoriaMetrics in a temporary directory, killed on drop.
struct Victoria(Child);

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_victoria(dir: &Path) -> Option<(Victoria, SocketAddr)> {
    let port = free_port().ok()?;
    let child = Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.display()))
        // TSBS data starts on 2026-01-01: keep it, whatever today is.
        .arg("-retentionPeriod=100y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let victoria = Victoria(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((victoria, addr))
}

/// Starts MetricStore in-process with default settings (WAL on) on free ports, StatsD
/// flushing every `statsd_flush_secs`; returns the HTTP and StatsD addresses.
fn start_metricstore(
    dir: &Path,
    statsd_flush_secs: u64,
) -> (SocketAddr, Option<SocketAddr>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let config = ServerConfig {
        data_dir: dir.to_path_buf(),
        http_addr: "127.0.0.1:0".parse().expect("address"),
        statsd_addr: "127.0.0.1:0".parse().expect("address"),
        statsd_flush_secs,
        // No Flight SQL: its default port is fixed and these servers run in parallel.
        flight: metricstore::server::config::FlightSettings {
            enabled: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let result = serve(config, std::future::pending(), move |running| {
            let _ = tx.send((running.http_addr, running.statsd_addr));
        })
        .await;
        if let Err(e) = result {
            eprintln!("server failed: {e}");
        }
    });
    let (http, statsd) = rx.recv().expect("server address");
    (http, statsd, runtime)
}

fn report(name: &str, ours: &Outcome, theirs: Option<&Outcome>) {
    let line = |o: &Outcome| {
        format!(
            "{:.2} M samples/s (p50 {:.1} ms, p99 {:.1} ms, {} requests)",
            o.rate() / 1e6,
            o.percentile(0.5).as_secs_f64() * 1e3,
            o.percentile(0.99).as_secs_f64() * 1e3,
            o.latencies.len()
        )
    };
    println!("{name}: metricstore {}", line(ours));
    if let Some(t) = theirs {
        println!("{name}: victoria-metrics {}", line(t));
        println!(
            "{name}: ratio metricstore / victoria-metrics = {:.2}x",
            ours.rate() / t.rate()
        );
    }
}

fn statsd(rate: u64) -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let (http, udp, _runtime) = start_metricstore(dir.path(), 1);
    let udp = udp.ok_or_else(|| std::io::Error::other("StatsD is off"))?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let per_packet = 25u64;
    let seconds = 5;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut packet = String::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        // Pace to the requested rate.
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= due {
            std::thread::yield_now();
            continue;
        }
        packet.clear();
        for i in 0..per_packet {
            let n = sent + i;
            packet.push_str(&format!(
                "app.requests.{}:1|c\napp.latency:{}|ms|#host:h{}\n",
                n % 50,
                n % 997,
                n % 8
            ));
        }
        socket.send_to(packet.as_bytes(), udp)?;
        sent += per_packet * 2;
    }
    let sending = start.elapsed();
    // Wait until the server has counted every packet it will ever see.
    let mut last = 0;
    let received = loop {
        std::thread::sleep(Duration::from_millis(500));
        let mut conn = Conn::new(http);
        let text = match conn.request("GET", "/metrics", "", b"") {
            Ok(r) => r.1,
            Err(e) => {
                eprintln!("cannot read /metrics: {e}");
                String::new()
            }
        };
        let packets: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("metricstore_statsd_packets_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if packets == last {
            break packets * per_packet * 2;
        }
        last = packets;
    };
    println!(
        "statsd: sent {sent} metrics in {:.2} s ({:.0}/s), received {received}, dropped {} ({:.3}%)",
        sending.as_secs_f64(),
        sent as f64 / sending.as_secs_f64(),
        sent.saturating_sub(received),
        sent.saturating_sub(received) as f64 / sent as f64 * 100.0
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if let Some(rate) = args.statsd_rate {
        return statsd(rate);
    }
    let dir = tempfile::tempdir()?;
    let (addr, _runtime) = match args.target {
        Some(addr) => (addr, None),
        None => {
            let (addr, _, runtime) = start_metricstore(&dir.path().join("metricstore"), 10);
            (addr, Some(runtime))
        }
    };
    let victoria = if args.no_victoria {
        None
    } else {
        start_victoria(&dir.path().join("victoria"))
    };
    if victoria.is_none() && !args.no_victoria {
        println!("note: victoria-metrics not found on PATH; measuring MetricStore alone");
    }
    for (name, protocol) in [
        ("remote_write", Protocol::RemoteWrite),
        ("line", Protocol::Line),
    ] {
        if args.only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let mut ratios = Vec::new();
        for round in 0..args.rounds.max(1) {
            let bodies = bodies(&args, protocol, round);
            let ours = run(addr, protocol, &bodies);
            let theirs = victoria.as_ref().map(|(_, vm)| run(*vm, protocol, &bodies));
            report(name, &ours, theirs.as_ref());
            ratios.extend(theirs.map(|t| ours.rate() / t.rate()));
        }
        if ratios.len() > 1 {
            ratios.sort_by(f64::total_cmp);
            println!(
                "{name}: median ratio over {} rounds = {:.2}x (range {:.2}-{:.2}x)",
                ratios.len(),
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
    Ok(())
}
