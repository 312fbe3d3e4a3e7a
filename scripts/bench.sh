#!/usr/bin/env bash
# Builds release binaries and the frontend, and runs the benchmark harness;
# writes bench/RESULTS.md. Arguments go to gridwatch-bench (--events, --reps).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
eval "$(bash scripts/setup.sh)"
export NATS_SERVER_BIN CHROMEDRIVER_BIN
cargo build --release -p gridwatch-ingest -p gridwatch-backend -p gridwatch-bench
# The browser part serves the built frontend.
bash scripts/build-frontend.sh
"$CARGO_TARGET_DIR/release/gridwatch-bench" "$@"
