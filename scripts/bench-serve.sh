#!/usr/bin/env bash
# Daemon throughput for the README ("Daemon throughput"): loads 100 keys ×
# 1,000 points into a fresh in-memory tansu broker, runs the release
# `lstm-ae serve` over them and prints windows/s, p50/p99 end-to-end
# latency and the CPU seconds of daemon, broker and other processes, beside
# bare ONNX Runtime throughput of the same model on the same thread count.
# One and two ONNX Runtime threads; backlog (points JSON, binary windows)
# and paced (5,000 points/s) runs. Takes about 4 minutes after the build.
#
#   scripts/bench-serve.sh
#   BENCH_THREADS=2 BENCH_MODES=points scripts/bench-serve.sh
#   BENCH_PERF=out/perf scripts/bench-serve.sh   # perf record per run
#
# Other settings (BENCH_KEYS, BENCH_POINTS, BENCH_RATE, BENCH_MAX_BATCH,
# BENCH_PARTITIONS, BENCH_ORT_SECS, BENCH_SERVE_TOML) are described at the
# top of benches/serve.rs. Run it on an otherwise idle machine: the
# "other processes" CPU column says how idle it was.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cargo bench --bench serve --no-run --quiet
echo "== $(uname -n), $(nproc) CPUs: $(uptime)"
cargo bench --bench serve --quiet
