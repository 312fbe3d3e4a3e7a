#!/usr/bin/env bash
# Builds release binaries and runs the benchmark harness; writes
# bench/RESULTS.md. Arguments go to gridwatch-bench (--events, --reps).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
eval "$(bash scripts/setup.sh)"
export NATS_SERVER_BIN
cargo build --release -p gridwatch-ingest -p gridwatch-backend -p gridwatch-bench
"$CARGO_TARGET_DIR/release/gridwatch-bench" "$@"
