#!/usr/bin/env bash
# Builds the Leptos frontend to frontend/dist (cargo for wasm32, then wasm-bindgen).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${1:-wasm-release}"
OUT=frontend/dist
cargo build -p gridwatch-frontend --target wasm32-unknown-unknown --profile "$PROFILE" >&2
TARGET="${CARGO_TARGET_DIR:-target}"
DIR="$PROFILE"; [ "$PROFILE" = "dev" ] && DIR=debug
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$OUT" \
  "$TARGET/wasm32-unknown-unknown/$DIR/gridwatch_frontend.wasm"
# No wasm-opt: Debian's binaryen (108) breaks wasm-bindgen's externref
# table; the wasm-release profile (opt-level z, LTO) does the shrinking.
cp frontend/static/* "$OUT/"
# Precompressed copies, served to browsers that accept gzip.
for f in "$OUT"/*.wasm "$OUT"/*.js "$OUT"/*.css "$OUT"/*.html; do
  [ -e "$f" ] && gzip -9 -k -f "$f"
done
printf 'frontend: %s bytes wasm, %s bytes gzip\n' \
  "$(stat -c %s "$OUT/gridwatch_frontend_bg.wasm")" \
  "$(gzip -9 -c "$OUT/gridwatch_frontend_bg.wasm" | wc -c)" >&2
