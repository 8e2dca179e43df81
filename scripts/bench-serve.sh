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
#   BENCH_PYTHON=1 scripts/bench-serve.sh        # + the Python reference service
#   BENCH_MODES=keys100k scripts/bench-serve.sh  # RSS at 100,000 live keys, both rules
#   BENCH_MODES=series-keys scripts/bench-serve.sh  # per-series gauges: RSS and scrape size per key
#
# BENCH_PYTHON=1 runs benches/python_service.py (confluent-kafka +
# onnxruntime, the same work) over the same backlog after each `points`
# backlog run; its venv, .local/bench-venv, is made here with pinned
# packages from PyPI. `keys100k` (about 5 minutes) loads 100,000 keys ×
# (T + 1) points and reads the daemon's VmRSS/VmHWM under
# anomalies.rule = "threshold" and "likelihood" once every key is live.
#
# Other settings (BENCH_KEYS, BENCH_POINTS, BENCH_RATE, BENCH_MAX_BATCH,
# BENCH_PARTITIONS, BENCH_ORT_SECS, BENCH_SERVE_TOML) are described at the
# top of benches/serve/main.rs. Run it on an otherwise idle machine: the
# "other processes" CPU column says how idle it was.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
if [ "${BENCH_PYTHON:-}" = 1 ]; then
  # The Python reference service's packages; onnxruntime is the version the
  # daemon links (scripts/setup.sh, ORT_VERSION).
  venv=.local/bench-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import onnxruntime, confluent_kafka' 2>/dev/null ||
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
      onnxruntime==1.32.0 confluent-kafka==2.16.1
  BENCH_PYTHON="$PWD/$venv/bin/python"
  export BENCH_PYTHON
fi
cargo bench --bench serve --no-run --quiet
echo "== $(uname -n), $(nproc) CPUs: $(uptime)"
cargo bench --bench serve --quiet
