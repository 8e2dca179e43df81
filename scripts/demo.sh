#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, build, train the
# default model on a NAB series, and score the whole series with it, beside
# NAB's labelled anomaly windows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cargo build --release --quiet
bin=target/release/lstm-ae
data=data/nab/realKnownCause/machine_temperature_system_failure.csv
out=out/demo

echo "== training the default model on the first 12,600 rows of $data"
"$bin" train --data "$data" --out "$out/machine_temperature" --config deploy/train.default.toml
echo
echo "== the bundle"
"$bin" inspect "$out/machine_temperature"
echo
echo "== scoring all 22,695 rows (the last 10,095 were never seen in training)"
"$bin" score --model "$out/machine_temperature" "$data" --out "$out/machine_temperature.scored.csv" \
  --config deploy/train.default.toml --labels data/nab/combined_windows.json
echo
echo "== the daemon: the same series through Kafka (embedded), ONNX Runtime and back (lstm-ae demo)"
"$bin" demo --model models/machine_temperature --data "$data" --labels data/nab/combined_windows.json
