#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, then `lstm-ae demo` — the
# daemon's pipeline on an embedded Kafka, with a labelled NAB series replayed
# through it — under both anomaly rules; then the trainer end to end (train
# the default model, score the series offline). `--no-train` stops after the
# daemon.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

train=1
for arg in "$@"; do
  case "$arg" in
    --no-train) train=0 ;;
    *) echo "usage: scripts/demo.sh [--no-train]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
cargo build --release --quiet
bin=target/release/lstm-ae
data=data/nab/realKnownCause/machine_temperature_system_failure.csv
labels=data/nab/combined_windows.json
out=out/demo

echo "== lstm-ae demo: $data through Kafka (embedded), ONNX Runtime and back; anomaly rule: calibrated threshold"
"$bin" demo --model models/machine_temperature --data "$data" --labels "$labels"
echo
echo "== the same with anomalies.rule = likelihood (the per-key NAB post-processing)"
LSTM_AE__ANOMALIES__RULE=likelihood "$bin" demo --model models/machine_temperature --data "$data" --labels "$labels"
[ "$train" = 1 ] || exit 0

echo
echo "== the trainer: the default model again, from the first 12,600 rows of $data"
"$bin" train --data "$data" --out "$out/machine_temperature" --config deploy/train.default.toml --force
echo
echo "== the bundle"
"$bin" inspect "$out/machine_temperature"
echo
echo "== scoring all 22,695 rows offline (the last 10,095 were never seen in training)"
"$bin" score --model "$out/machine_temperature" --data "$data" --out "$out/machine_temperature.scored.csv" \
  --config deploy/train.default.toml --labels "$labels"
