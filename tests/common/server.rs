//! An in-process server on a free loopback port, and raw HTTP/1.1 requests to it.

use std::time::Duration;

use metricstore::server::{ServerConfig, serve};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub statsd: Option<std::net::SocketAddr>,
    /// The Flight SQL address, when Flight is on.
    pub flight: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// The data directory, removed when the server is dropped.
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(mut config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.flight.addr = "127.0.0.1:0".parse().unwrap();
        if config.statsd_enabled {
            config.statsd_addr = "127.0.0.1:0".parse().unwrap();
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, addr) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            serve(
                config,
                async {
                    let _ = stopped.await;
                },
                move |running| {
                    let _ =
                        ready.send((running.http_addr, running.statsd_addr, running.flight_addr));
                },
            )
            .await
            .unwrap();
        });
        let (addr, statsd, flight) = tokio::time::timeout(Duration::from_secs(30), addr)
            .await
            .unwrap()
            .unwrap();
        Server {
            addr,
            statsd,
            flight,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Sends one request, returns status, headers (lower-cased text) and body.
    pub fn without_statsd() -> ServerConfig {
        ServerConfig {
            statsd_enabled: false,
            ..ServerConfig::default()
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
        let status = head[9..12].parse().unwrap();
        let mut body = response[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, head, body)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn json(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, _, body) = self.request(method, path, &[], body.as_bytes()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap();
    }
}

pub fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}
