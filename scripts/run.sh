#!/usr/bin/env bash
# Sets up what is missing, builds, and starts the whole system: nats-server
# (JetStream, sync_interval: always), gridwatch-ingest, gridwatch-backend,
# gridwatch-notify and the simulator; prints the URL. Ctrl-C stops everything.
#
#   scripts/run.sh                 today, in real time, on the wall clock
#   scripts/run.sh --speed 60      a past day (2022-10-15 from 05:30) 60x faster,
#                                  on the replay clock
# Environment: GRIDWATCH_PORT (8080), GRIDWATCH_NATS_PORT (4222),
# GRIDWATCH_PG_PORT (5433: SQL over the Postgres protocol),
# GRIDWATCH_RUN_DIR (.run), GRIDWATCH_BAD_SHARE (0.002), GRIDWATCH_PROFILE (dev),
# GRIDWATCH_NOTIFY_CONFIG (notify's TOML with the DingTalk robots; without
# one, the hourly reminders go to the local outbox stream and the wall).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
eval "$(bash scripts/setup.sh)"

PORT="${GRIDWATCH_PORT:-8080}"
NATS_PORT="${GRIDWATCH_NATS_PORT:-4222}"
PG_PORT="${GRIDWATCH_PG_PORT:-5433}"
INGEST_METRICS="${GRIDWATCH_INGEST_METRICS:-127.0.0.1:9190}"
RUN="${GRIDWATCH_RUN_DIR:-$PWD/.run}"
BAD="${GRIDWATCH_BAD_SHARE:-0.002}"
SPEED=""
if [ "${1:-}" = "--speed" ]; then SPEED="${2:?--speed needs a factor}"; fi

log() { printf '\033[1;34m[run]\033[0m %s\n' "$*"; }

# The dev profile (opt-level 1) shares the test build; GRIDWATCH_PROFILE=release
# for full speed (a cold release build, fat LTO, takes ~27 minutes on 2 cores).
PROFILE="${GRIDWATCH_PROFILE:-dev}"
log "building ($PROFILE)"
bash scripts/build-frontend.sh
if [ "$PROFILE" = dev ]; then
  # Exactly the test build's targets: other target sets unify crate features
  # differently and would rebuild polars each time one alternates with tests.
  cargo build --workspace --all-targets >&2
else
  cargo build --profile "$PROFILE" --bins >&2
fi
BIN="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

if [ -n "$SPEED" ]; then
  CLOCK=replay
  # Only a replay moves the clock: its simulator signs in as `replay`.
  SIM_USER=replay
  SIM_ARGS=(--date 2022-10-15 --from 05:30 --speed "$SPEED")
  # A replay plays the past day afresh each time: its stream and state
  # start empty (the live run's, on the wall clock, are kept apart).
  rm -rf "$RUN/jetstream-replay" "$RUN/data-replay"
  JS_DIR="$RUN/jetstream-replay"
else
  CLOCK=wall
  SIM_USER=field
  SIM_ARGS=(--days 365)
  JS_DIR="$RUN/jetstream"
fi

mkdir -p "$RUN/logs"
# Every service signs in to NATS as its own user, with least privilege: the
# keys are made on the first run and kept under .run/nats (never committed).
KEYS="$RUN/nats"
"$BIN/gridwatch-admin" nats-auth --dir "$KEYS" >/dev/null
# People: on the first run, demo accounts with random passwords (an admin,
# Daqi's supervisor, an analyst) and a wall's device link, in the users file
# and in .run/demo-accounts.json (never committed).
USERS="$RUN/users.json"
DEMO="$RUN/demo-accounts.json"
admin() { "$BIN/gridwatch-admin" --users-file "$USERS" "$@"; }
if [ ! -s "$DEMO" ]; then
  rm -f "$USERS"
  account() { # name role scope -> {"user","password","token"}
    local pw tok
    pw="$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
    printf '%s\n' "$pw" | admin user add "$1" --role "$2" --scope "$3" >/dev/null
    tok="$(admin token add "$1" --label demo)"
    printf '{"user": "%s", "password": "%s", "token": "%s"}' "$1" "$pw" "$tok"
  }
  ADMIN_JSON="$(account admin admin beilun)"
  SUP_JSON="$(account daqi.supervisor supervisor beilun/daqi)"
  ANALYST_JSON="$(account analyst analyst beilun)"
  WALL_LINK="$(admin wall add command-center-wall --base "http://127.0.0.1:$PORT")"
  (umask 077; printf '{\n  "admin": %s,\n  "supervisor": %s,\n  "analyst": %s,\n  "wall": {"link": "%s"}\n}\n' \
    "$ADMIN_JSON" "$SUP_JSON" "$ANALYST_JSON" "$WALL_LINK" > "$DEMO")
  log "demo accounts made: $DEMO"
fi

cat > "$RUN/nats.conf" <<CONF
listen: 127.0.0.1:$NATS_PORT
include "nats/auth.conf"
jetstream {
  store_dir: "$JS_DIR"
  sync_interval: always
}
CONF

pids=()
# Stops in the reverse order of starting (the simulator first, nats-server
# last), so ingest checkpoints and publishes its last states while the
# server is still there; a process that has not exited after 15 s is killed.
cleanup() {
  log "stopping"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p="${pids[$i]}"
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$NATS_SERVER_BIN" -c "$RUN/nats.conf" >"$RUN/logs/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
NATS="nats://127.0.0.1:$NATS_PORT"

GRIDWATCH__NATS_NKEY_FILE="$KEYS/ingest.nk" GRIDWATCH__METRICS_LISTEN="$INGEST_METRICS" "$BIN/gridwatch-ingest" --nats "$NATS" --data-dir "$RUN/data-$CLOCK" --clock "$CLOCK" >"$RUN/logs/ingest.log" 2>&1 & pids+=($!)
GRIDWATCH__PG_LISTEN="127.0.0.1:$PG_PORT" GRIDWATCH__NATS_NKEY_FILE="$KEYS/backend.nk" "$BIN/gridwatch-backend" --nats "$NATS" --users-file "$USERS" --listen "127.0.0.1:$PORT" --static-dir "$PWD/frontend/dist" --history-dir "$RUN/data-$CLOCK/history" >"$RUN/logs/backend.log" 2>&1 & pids+=($!)
NOTIFY_ARGS=()
if [ -n "${GRIDWATCH_NOTIFY_CONFIG:-}" ]; then NOTIFY_ARGS=(--config "$GRIDWATCH_NOTIFY_CONFIG"); fi
GRIDWATCH__NATS_NKEY_FILE="$KEYS/notify.nk" "$BIN/gridwatch-notify" --nats "$NATS" "${NOTIFY_ARGS[@]}" >"$RUN/logs/notify.log" 2>&1 & pids+=($!)
GRIDWATCH__NATS_NKEY_FILE="$KEYS/$SIM_USER.nk" "$BIN/gridwatch-sim" --nats "$NATS" --bad-share "$BAD" "${SIM_ARGS[@]}" >"$RUN/logs/sim.log" 2>&1 & pids+=($!)

for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
log "Gridwatch is running: http://127.0.0.1:$PORT/   (logs in $RUN/logs, Ctrl-C stops)"
python3 - "$DEMO" "$PORT" <<'PY' || cat "$DEMO"
import json, sys
d = json.load(open(sys.argv[1])); port = sys.argv[2]
for role in ("admin", "supervisor", "analyst"):
    a = d[role]
    print(f"\033[1;34m[run]\033[0m sign in as {role:<10} user {a['user']:<16} password {a['password']}   token {a['token']}")
path = d["wall"]["link"].split("/device/", 1)[1]
print(f"\033[1;34m[run]\033[0m wall device link: http://127.0.0.1:{port}/device/{path}")
PY
log "API (with a token: curl -H 'Authorization: Bearer <token>'): http://127.0.0.1:$PORT/api/v1/state?node=beilun   metrics (admin): /metrics   health: /healthz"
log "SQL over the Postgres protocol: PGPASSWORD=<analyst token> psql -h 127.0.0.1 -p $PG_PORT -U <analyst user> -d gridwatch   (or /analyst)"
log "users: $BIN/gridwatch-admin --users-file $USERS user add NAME --role R --scope NODE, then kill -HUP the backend"
log "ingest's own metrics: http://$INGEST_METRICS/metrics   recount: GRIDWATCH_NATS_NKEY_FILE=$KEYS/reader.nk $BIN/gridwatch-recount --nats $NATS"
# The simulator may finish (a replayed day ends): the rest stays up to look
# at. Any of the services exiting stops everything.
wait -n "${pids[@]:0:4}" || true
log "a service exited; see $RUN/logs"
