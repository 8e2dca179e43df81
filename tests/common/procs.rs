//! Process and network helpers shared by the broker tests
//! (`tests/common/broker.rs`) and the benchmarks (`benches/serve/`, which
//! includes `tests/common` by path, and `benches/keys.rs`, which includes
//! this file): free ports, the tansu binary, waiting for a listener, a
//! plain HTTP GET, a value from the Prometheus text format, and a process's
//! resident memory. Errors are returned, so the benchmarks can report them
//! and the tests can panic with them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The tansu binary: `TANSU_BIN`, `tansu` on PATH, or cargo's bin folder.
pub fn tansu_bin() -> Result<PathBuf, String> {
    let mut candidates = vec![];
    if let Ok(b) = std::env::var("TANSU_BIN") {
        candidates.push(PathBuf::from(b));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|p| p.join("tansu")));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    candidates.push(cargo_home.join("bin/tansu"));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "the tansu broker is not installed: run scripts/setup.sh".into())
}

/// `tansu broker` listening on (and advertising) 127.0.0.1:`port` with
/// `storage` (`memory://tansu/` or `sqlite://FILE.db`, relative to `dir`).
pub fn tansu_broker(bin: &Path, dir: &Path, port: u16, storage: &str) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut c = Command::new(bin);
    c.current_dir(dir).args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        storage,
    ]);
    c
}

/// Waits up to 30 s for something to listen on `port`.
pub fn wait_for_port(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not listen on {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `GET path` on 127.0.0.1:`port`: (status, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
    // HTTP/1.0: the server then sends the body as is, never chunked (this
    // reader does not decode chunks; Prometheus chunks large answers to
    // HTTP/1.1 clients). One write, so no server sees half a request.
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A counter or gauge value from the Prometheus text format; `series`
/// includes its labels. 0 when absent.
pub fn metric(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// (VmRSS, VmHWM) of a process, bytes; (0, 0) where `/proc` cannot be read.
pub fn rss_bytes(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}
