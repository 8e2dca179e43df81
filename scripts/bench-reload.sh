#!/usr/bin/env bash
# Hot reload under load (README, "Hot reload"): the release `lstm-ae serve`
# works through a backlog (50 keys × 2,000 points) in a fresh tansu broker
# while versions 2 (found by polling) and 3 (promotion + SIGHUP) are
# promoted in its model store; prints promotion → first record of the new
# version, and windows/s around each swap beside the run's median.
# Needs `scripts/setup.sh --test` (tansu). About 2 minutes after the build.
#
#   scripts/bench-reload.sh
#   BENCH_KEYS=20 BENCH_POINTS=1000 BENCH_POLL_MS=1000 scripts/bench-reload.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo bench --bench reload --no-run --quiet
echo "== $(uname -n), $(nproc) CPUs: $(uptime)"
cargo bench --bench reload --quiet
