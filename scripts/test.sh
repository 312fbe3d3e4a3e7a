#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: formatting,
# clippy (native and wasm), unit tests and the end-to-end tests against a
# real nats-server, the real binaries and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
eval "$(bash scripts/setup.sh)"
export NATS_SERVER_BIN CHROMEDRIVER_BIN

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo hakari verify (one feature set for every build subset)"
cargo hakari verify
step "clippy (native)"
cargo clippy --workspace --all-targets -- -D warnings
step "clippy (wasm frontend)"
cargo clippy -p gridwatch-frontend --target wasm32-unknown-unknown -- -D warnings
step "frontend build"
bash scripts/build-frontend.sh
step "build (binaries and tests, one feature set)"
cargo build --workspace --all-targets
step "tests"
cargo test --workspace -- --test-threads=2
