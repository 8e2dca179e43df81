//! Memory of the per-key state, measured as the process's RSS growth:
//! - the windower: 100,000 keys × 65 points of the default model's shape
//!   (T = 64, F = 1), interleaved by key over four partitions, every key
//!   live at the end;
//! - the likelihood rule's state (`KeyedLikelihood`, default
//!   `[postprocess]`, P = 8): 100,000 keys × 16 windows of stride 1, so
//!   every key holds all the forecasts it can.
//!
//! `cargo bench --bench keys` prints VmRSS before and after each, and the
//! growth per key (what `key_bytes` / `key_state_bytes` account plus the
//! hash table's spare room and the allocator's headers). The daemon's whole
//! figure is `BENCH_MODES=keys100k scripts/bench-serve.sh`.

use lstm_ae::score::{KeyedLikelihood, PostprocessConfig, WindowErrors};
use lstm_ae::stream::windower::{Origin, Windower, WindowerConfig};

#[path = "../tests/common/procs.rs"]
mod procs;

const KEYS: usize = 100_000;

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // nothing is measured there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("keys bench: run it with cargo bench --bench keys");
        return;
    }
    let names: Vec<String> = (0..KEYS).map(|k| format!("key-{k:06}")).collect();
    let before = procs::rss_bytes(std::process::id()).0 / 1024;
    if before == 0 {
        eprintln!("keys: no /proc/self/status: VmRSS cannot be read here");
        std::process::exit(1);
    }
    let mut w = Windower::new(WindowerConfig::new(64, 1)).expect("valid windower");
    let mut offsets = [0_i64; 4];
    let mut windows = 0;
    for i in 0..65_i64 {
        for (k, key) in names.iter().enumerate() {
            let partition = (k % 4) as i32;
            let offset = &mut offsets[k % 4];
            let origin = Origin {
                partition,
                offset: *offset,
            };
            *offset += 1;
            let ts = 1_700_000_000_000 + i * 60_000;
            let out = w.push(key, ts, &[k as f32], origin, 0);
            windows += usize::from(out.window.is_some());
        }
    }
    let after = procs::rss_bytes(std::process::id()).0 / 1024;
    println!(
        "keys: {} live keys, {} windows, {} buffered points; VmRSS {before} kB before, {after} kB after: {} bytes per key (key_bytes accounts {})",
        w.live_keys(),
        windows,
        w.buffered_points(),
        (after.saturating_sub(before)) * 1024 / KEYS as u64,
        w.key_bytes(&names[0]).unwrap_or(0),
    );
    likelihood(&names);
}

/// The likelihood state of every key in `names` after 16 windows each.
fn likelihood(names: &[String]) {
    let (t, p) = (64_usize, 8_usize);
    let before = procs::rss_bytes(std::process::id()).0 / 1024;
    let mut keyed = KeyedLikelihood::new(PostprocessConfig::default(), p, 1, KEYS, u64::MAX)
        .expect("valid configuration");
    let ts: Vec<i64> = (0..t as i64 + 16).map(|i| i * 60_000).collect();
    let values: Vec<f32> = (0..t + 16).map(|i| (i % 7) as f32).collect();
    let forecast = vec![0.5_f32; p];
    for e in t - 1..t + 15 {
        for key in names {
            keyed.push(
                key,
                WindowErrors {
                    reconstruction: 0.01,
                    timestamps: &ts[e + 1 - t..=e],
                    last_point: vec![values[e]],
                    values: &values[e + 1 - t..=e],
                    forecast: Some(forecast.clone()),
                },
                0,
            );
        }
    }
    let after = procs::rss_bytes(std::process::id()).0 / 1024;
    println!(
        "likelihood: {} keys; VmRSS {before} kB before, {after} kB after: {} bytes per key (key_state_bytes accounts {})",
        keyed.len(),
        (after.saturating_sub(before)) * 1024 / KEYS as u64,
        keyed.key_state_bytes(&names[0]).unwrap_or(0),
    );
}
