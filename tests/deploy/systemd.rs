//! The systemd unit (deploy/systemd/lstm-ae.service): it runs `serve`,
//! outwaits the drain, is hardened, and `systemd-analyze` verifies it.

use std::collections::BTreeMap;
use std::process::Command;

use lstm_ae::config::ServeSettings;

use super::read;

/// key -> values of the unit's [Service] section (keys may repeat).
fn unit_section(section: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in read("deploy/systemd/lstm-ae.service").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if current == section {
            let (k, v) = line.split_once('=').expect("key=value");
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

/// Seconds of a systemd time span such as `30s`, `1min 30s`, `90`.
fn systemd_secs(s: &str) -> u64 {
    s.split_whitespace()
        .map(|part| {
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            let n: u64 = digits.parse().unwrap();
            n * match &part[digits.len()..] {
                "" | "s" | "sec" => 1,
                "m" | "min" => 60,
                "h" => 3600,
                u => panic!("unit {u} in {s}"),
            }
        })
        .sum()
}

#[test]
fn systemd_unit_runs_serve_and_outwaits_the_drain() {
    let svc = unit_section("Service");
    let one = |k: &str| -> &str {
        let v = svc.get(k).unwrap_or_else(|| panic!("[Service] has no {k}"));
        v.last().unwrap()
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/lstm-ae serve --config /etc/lstm-ae/serve.toml"
    );
    assert_eq!(one("KillSignal"), "SIGTERM");
    assert_eq!(one("Restart"), "on-failure");
    let drain = ServeSettings::default().drain_timeout_ms.div_ceil(1000);
    let stop = systemd_secs(one("TimeoutStopSec"));
    assert!(
        stop >= drain + 10,
        "TimeoutStopSec {stop}s must exceed serve.drain_timeout_ms ({drain}s) with room to commit"
    );
    assert!(svc["Environment"]
        .iter()
        .any(|e| e.starts_with("ORT_DYLIB_PATH=/")));
    for k in [
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "DynamicUser",
    ] {
        assert!(svc.contains_key(k), "hardening: {k} missing");
    }
    // The command line parses: `serve` takes --config.
    let help = Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let has = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "systemd-analyze is not installed: scripts/setup.sh --test installs systemd"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the one cargo built.
    let unit = read("deploy/systemd/lstm-ae.service")
        .replace("/usr/local/bin/lstm-ae", env!("CARGO_BIN_EXE_lstm-ae"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lstm-ae.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}
