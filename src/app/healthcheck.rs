//! `lstm-ae healthcheck`: one HTTP GET of the daemon's `/healthz` (or
//! `/readyz`) on `serve.metrics_listen`, exit 0 on 200. The container
//! image's `HEALTHCHECK` runs it, so the image needs no curl or shell.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::HealthcheckArgs;
use crate::config::Settings;

/// `lstm-ae healthcheck`: prints the status line; an error unless 200.
pub fn run(a: HealthcheckArgs) -> Result<()> {
    let s = Settings::load(a.config.as_deref())?;
    let addr = target(&s.serve.metrics_listen)?;
    let status = check(addr, &a.path, Duration::from_secs(a.timeout_s.max(1)))?;
    println!("{status}");
    Ok(())
}

/// Where to connect for a listen address: a wildcard (`0.0.0.0`, `[::]`)
/// is reached on the loopback address of its family.
pub fn target(listen: &str) -> Result<SocketAddr> {
    let mut addr = listen
        .to_socket_addrs()
        .with_context(|| format!("serve.metrics_listen '{listen}' is not an address"))?
        .next()
        .with_context(|| format!("serve.metrics_listen '{listen}' resolves to nothing"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(addr)
}

/// GETs `path` from `addr`; Ok with the status line when it is 200.
pub fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: `write!` would send the request in pieces, and a server
    // that answers after the first piece and closes resets the connection.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    // The health endpoints answer a few bytes; read a bounded amount.
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim())
            .unwrap_or("");
        bail!("GET http://{addr}{path}: {status_line} {body}");
    }
    Ok(status_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_checked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:9898").unwrap(),
            "127.0.0.1:9898".parse().unwrap()
        );
        assert_eq!(target("[::]:9898").unwrap(), "[::1]:9898".parse().unwrap());
        assert_eq!(
            target("127.0.0.2:1").unwrap(),
            "127.0.0.2:1".parse().unwrap()
        );
        assert!(target("no port").is_err());
    }

    #[test]
    fn only_200_is_healthy() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for reply in [
                "HTTP/1.1 200 OK\r\n\r\nok",
                "HTTP/1.1 503 Service Unavailable\r\n\r\nno partitions",
            ] {
                let (mut c, _) = l.accept().unwrap();
                // Read the whole request: closing with unread bytes resets.
                let mut req = Vec::new();
                let mut chunk = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0, "the client closed before its request ended");
                    req.extend_from_slice(&chunk[..n]);
                }
                c.write_all(reply.as_bytes()).unwrap();
            }
        });
        let t = Duration::from_secs(5);
        assert!(check(addr, "/healthz", t).is_ok());
        let e = check(addr, "/readyz", t).unwrap_err().to_string();
        assert!(e.contains("503") && e.contains("no partitions"), "{e}");
        server.join().unwrap();
        // Nothing listening: an error, not a hang.
        assert!(check(addr, "/healthz", t).is_err());
    }
}
