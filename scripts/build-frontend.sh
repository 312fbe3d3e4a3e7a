#!/usr/bin/env bash
# Builds the Leptos frontend to frontend/dist (wasm-bindgen, then wasm-opt).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${1:-release}"
OUT=frontend/dist
cargo build -p gridwatch-frontend --target wasm32-unknown-unknown --profile "$PROFILE" >&2
TARGET="${CARGO_TARGET_DIR:-target}"
DIR="$PROFILE"; [ "$PROFILE" = "dev" ] && DIR=debug
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" \
  "$TARGET/wasm32-unknown-unknown/$DIR/gridwatch_frontend.wasm"
if command -v wasm-opt >/dev/null 2>&1 && [ "$PROFILE" = "release" ]; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    -o "$OUT/gridwatch_frontend_bg.wasm" "$OUT/gridwatch_frontend_bg.wasm"
fi
cp frontend/static/* "$OUT/"
printf 'frontend: %s bytes wasm, %s bytes gzip\n' \
  "$(stat -c %s "$OUT/gridwatch_frontend_bg.wasm")" \
  "$(gzip -9 -c "$OUT/gridwatch_frontend_bg.wasm" | wc -c)" >&2
