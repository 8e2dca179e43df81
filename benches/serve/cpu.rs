//! CPU seconds of the daemon, the broker, this program and the whole
//! machine, from /proc, so the report says who used the cores.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub(crate) fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime + stime in ticks) from a /proc stat file.
fn stat_ticks(path: &Path) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat(5); the list starts at field 3.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks))
}

fn process_ticks(pid: u32) -> u64 {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
        .map(|(_, t)| t)
        .unwrap_or(0)
}

/// Ticks per thread name (threads of one name summed).
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            if let Some((comm, t)) = stat_ticks(&e.path().join("stat")) {
                *m.entry(comm).or_insert(0) += t;
            }
        }
    }
    m
}

/// (busy, total) ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU counters at one instant.
#[derive(Clone)]
pub(crate) struct CpuSnap {
    pub(crate) at: Instant,
    pub(crate) daemon: u64,
    pub(crate) broker: u64,
    pub(crate) bench: u64,
    pub(crate) machine: (u64, u64),
    pub(crate) threads: BTreeMap<String, u64>,
}

impl CpuSnap {
    pub(crate) fn take(daemon: u32, broker: u32) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            daemon: process_ticks(daemon),
            broker: process_ticks(broker),
            bench: process_ticks(std::process::id()),
            machine: machine_ticks(),
            threads: thread_ticks(daemon),
        }
    }
}
