#!/usr/bin/env bash
# Speed figures for the README: criterion benchmarks (training step, ONNX
# Runtime windows/s at batch 1, 32, 256) and real training epochs of the
# tutorial-size composite model over 10,009 windows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cargo bench --bench train --bench infer -- --noplot
cargo build --release --quiet
echo "== 5 epochs, T=64 H=64 P=8 batch 64 tanh, first 12,600 rows of machine_temperature (10,009 training windows)"
target/release/lstm-ae train --data data/nab/realKnownCause/machine_temperature_system_failure.csv \
  --out out/bench --config deploy/train.default.toml --epochs 5 --quiet --force
