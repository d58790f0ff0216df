//! Crash tests: the real `metricstore` binary is killed with SIGKILL while clients
//! write, while a checkpoint is being written, and while the WAL is being trimmed.
//! After each restart every sample acknowledged with a 2xx must be there, exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metricstore::workload::Rng;

const CLIENTS: usize = 4;
const LINES_PER_REQUEST: i64 = 25;

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn config_file(dir: &Path, segment_bytes: u64) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "statsd_enabled = false\n[durability]\nsegment_bytes = {segment_bytes}\n\
         checkpoint_interval_secs = 0\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Server {
    fn start(data: &Path, config: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_metricstore"))
            .args([
                "serve",
                "--http-addr",
                "127.0.0.1:0",
                "--flight-addr",
                "127.0.0.1:0",
            ])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start metricstore");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let line = strip_ansi(&line);
                // Shown when a test fails: what recovery said.
                if !line.contains("HTTP listening") {
                    eprintln!("server: {line}");
                }
                if let Some(addr) = line
                    .split("http_addr=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("server did not report its address");
        Server { child, addr }
    }

    fn kill(mut self) {
        // std's kill is SIGKILL on Unix: no handler runs, nothing is flushed.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One HTTP/1.1 request; `None` if the connection failed (the server is gone).
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
    out
}

fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while request(addr, "GET", "/-/ready", b"").is_none_or(|(s, _)| s != 200) {
        assert!(Instant::now() < deadline, "server never became ready");
        std::thread::yield_now();
    }
}

/// `(client, time)` → value of every acknowledged sample.
type Acked = BTreeMap<(usize, i64), f64>;

fn value_of(client: usize, t: i64) -> f64 {
    (t % 1000) as f64 + client as f64 / 8.0
}

/// Clients write until the server stops answering; returns what was acknowledged.
fn write_until_dead(addr: SocketAddr, first_t: i64, stop: Arc<AtomicBool>) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut t = first_t;
                while !stop.load(Ordering::Relaxed) {
                    let mut body = String::new();
                    for i in 0..LINES_PER_REQUEST {
                        let ts = t + i;
                        body.push_str(&format!(
                            "crash,client=c{client} value={} {ts}\n",
                            value_of(client, ts)
                        ));
                    }
                    match request(addr, "POST", "/write?precision=ms", body.as_bytes()) {
                        Some((204, _)) => {
                            let mut a = acked.lock().unwrap();
                            for i in 0..LINES_PER_REQUEST {
                                a.insert((client, t + i), value_of(client, t + i));
                            }
                        }
                        Some((status, body)) if status >= 500 => {
                            panic!("{status}: {}", String::from_utf8_lossy(&body))
                        }
                        Some((status, body)) => {
                            panic!("refused {status}: {}", String::from_utf8_lossy(&body))
                        }
                        None => return,
                    }
                    t += LINES_PER_REQUEST;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Every stored `(client, time, value)`, in order, duplicates kept.
fn stored(addr: SocketAddr) -> Vec<(usize, i64, f64)> {
    let sql = "SELECT client, CAST(time AS BIGINT) AS t, value FROM crash ORDER BY client, t";
    let (status, body) = request(addr, "POST", "/api/v1/sql?format=csv", sql.as_bytes()).unwrap();
    let text = String::from_utf8(body).unwrap();
    if status == 404 || text.contains("not found") {
        return Vec::new();
    }
    assert_eq!(status, 200, "{text}");
    text.lines()
        .skip(1)
        .map(|line| {
            let mut parts = line.split(',');
            let client = parts
                .next()
                .unwrap()
                .trim_start_matches('c')
                .parse()
                .unwrap();
            let t = parts.next().unwrap().parse().unwrap();
            let v = parts.next().unwrap().parse().unwrap();
            (client, t, v)
        })
        .collect()
}

/// Every acknowledged sample is stored with its value, and nothing is stored twice.
fn check(addr: SocketAddr, acked: &Acked, round: usize) {
    let rows = stored(addr);
    let mut seen = BTreeSet::new();
    for &(client, t, v) in &rows {
        assert!(
            seen.insert((client, t)),
            "round {round}: ({client}, {t}) stored twice"
        );
        assert_eq!(v, value_of(client, t), "round {round}: ({client}, {t})");
    }
    let missing: Vec<_> = acked.keys().filter(|k| !seen.contains(k)).take(5).collect();
    assert!(
        missing.is_empty(),
        "round {round}: {} acknowledged samples lost, e.g. {missing:?}",
        acked.keys().filter(|k| !seen.contains(k)).count()
    );
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), 64 << 10);
    let data = dir.path().join("data");
    let mut rng = Rng::new(0x5eed_c4a5);
    let mut acked = Acked::new();
    for round in 0..10 {
        let server = Server::start(&data, &config);
        wait_ready(server.addr);
        check(server.addr, &acked, round);
        let stop = Arc::new(AtomicBool::new(false));
        let addr = server.addr;
        let writers = {
            let stop = stop.clone();
            std::thread::spawn(move || write_until_dead(addr, (round as i64 + 1) << 32, stop))
        };
        // Kill at a seeded moment; every other round, in the middle of a checkpoint
        // triggered by request rather than on a timer.
        std::thread::sleep(Duration::from_millis(20 + rng.below(300)));
        if round % 2 == 1 {
            std::thread::spawn(move || request(addr, "POST", "/api/v1/admin/checkpoint", b""));
        }
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let round_acked = writers.join().unwrap();
        assert!(!round_acked.is_empty() || round > 0, "nothing was written");
        acked.extend(round_acked);
    }
    let server = Server::start(&data, &config);
    wait_ready(server.addr);
    check(server.addr, &acked, 10);
    server.kill();
}

/// Preloads a store big enough that a checkpoint takes a noticeable time.
fn preload(addr: SocketAddr, first_t: i64, acked: &mut Acked) {
    for batch in 0..40 {
        let mut body = String::new();
        for i in 0..500 {
            let t = first_t + batch * 500 + i;
            for client in 0..CLIENTS {
                body.push_str(&format!(
                    "crash,client=c{client} value={} {t}\n",
                    value_of(client, t)
                ));
                acked.insert((client, t), value_of(client, t));
            }
        }
        let (status, body) = request(addr, "POST", "/write?precision=ms", body.as_bytes()).unwrap();
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn sigkill_while_a_checkpoint_is_written_or_the_wal_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: trimming deletes many files, so a kill can land inside it.
    let config = config_file(dir.path(), 2048);
    let data = dir.path().join("data");
    let mut acked = Acked::new();
    let mut killed_mid_checkpoint = 0;
    let mut killed_mid_trim = 0;
    for round in 0..12 {
        let server = Server::start(&data, &config);
        wait_ready(server.addr);
        check(server.addr, &acked, round);
        assert!(
            files_with(&data, ".tmp").is_empty(),
            "unfinished checkpoint left behind"
        );
        let first_t = (round as i64 + 1) << 32;
        preload(server.addr, first_t, &mut acked);
        let during_trim = round % 2 == 1;
        let before: BTreeSet<PathBuf> = files_with(&data, ".ckpt").into_iter().collect();
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let writers = {
            let stop = stop.clone();
            std::thread::spawn(move || write_until_dead(addr, first_t + (1 << 20), stop))
        };
        let started = Instant::now();
        std::thread::spawn(move || request(addr, "POST", "/api/v1/admin/checkpoint", b""));
        // Poll for the moment: the temporary file of the checkpoint being written, or
        // the new checkpoint whose WAL trimming starts right after it appears.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hit = if during_trim {
                files_with(&data, ".ckpt")
                    .iter()
                    .any(|p| !before.contains(p))
            } else {
                !files_with(&data, ".tmp").is_empty()
            };
            if hit || Instant::now() > deadline {
                break;
            }
            std::thread::yield_now();
        }
        eprintln!(
            "round {round}: kill {:?} after the checkpoint request",
            started.elapsed()
        );
        server.kill();
        stop.store(true, Ordering::Relaxed);
        acked.extend(writers.join().unwrap());
        if during_trim {
            // Trimming was cut short if segments older than the checkpoint remain.
            let newest = files_with(&data, ".ckpt").into_iter().max().unwrap();
            let base: u64 = newest.file_name().unwrap().to_string_lossy()
                ["checkpoint-".len().."checkpoint-".len() + 20]
                .parse()
                .unwrap();
            let segments: Vec<u64> = files_with(&data.join("wal"), ".wal")
                .iter()
                .filter_map(|p| p.file_stem()?.to_str()?.parse().ok())
                .collect();
            let covered = segments.iter().filter(|&&s| s < base).count();
            if covered > 1 {
                killed_mid_trim += 1;
            }
        } else if !files_with(&data, ".tmp").is_empty() {
            killed_mid_checkpoint += 1;
        }
    }
    let server = Server::start(&data, &config);
    wait_ready(server.addr);
    check(server.addr, &acked, 12);
    server.kill();
    eprintln!("kills mid checkpoint: {killed_mid_checkpoint}, mid trim: {killed_mid_trim}");
    assert!(
        killed_mid_checkpoint > 0,
        "no kill landed during a checkpoint write"
    );
    assert!(killed_mid_trim > 0, "no kill landed during WAL trimming");
}

#[test]
fn sigterm_checkpoints_so_the_restart_replays_nothing_and_damage_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), 1 << 20);
    let data = dir.path().join("data");
    let server = Server::start(&data, &config);
    wait_ready(server.addr);
    let mut acked = Acked::new();
    preload(server.addr, 1 << 32, &mut acked);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = server.child;
    assert!(child.wait().unwrap().success(), "graceful shutdown failed");
    assert_eq!(files_with(&data, ".ckpt").len(), 1, "no final checkpoint");

    let server = Server::start(&data, &config);
    wait_ready(server.addr);
    check(server.addr, &acked, 0);
    let metrics = |addr| {
        let (_, body) = request(addr, "GET", "/metrics", b"").unwrap();
        String::from_utf8(body).unwrap()
    };
    let text = metrics(server.addr);
    assert!(
        text.contains("metricstore_wal_replayed_records 0"),
        "{text}"
    );
    assert!(text.contains("metricstore_wal_corrupt_records 0"), "{text}");
    // Three more records, then damage the second: the third is not replayed, the
    // server starts anyway and says so.
    for round in 0..3 {
        let t = (2i64 << 32) + round;
        let body = format!("crash,client=c9 value={} {t}\n", value_of(9, t));
        assert_eq!(
            request(server.addr, "POST", "/write?precision=ms", body.as_bytes())
                .unwrap()
                .0,
            204
        );
    }
    server.kill();
    let segment = files_with(&data.join("wal"), ".wal")
        .into_iter()
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let first_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    bytes[16 + 16 + first_len + 20] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let server = Server::start(&data, &config);
    wait_ready(server.addr);
    let text = metrics(server.addr);
    assert!(text.contains("metricstore_wal_corrupt_records 1"), "{text}");
    assert!(
        text.contains("metricstore_wal_replayed_records 1"),
        "{text}"
    );
    check(server.addr, &acked, 1);
    server.kill();
}
