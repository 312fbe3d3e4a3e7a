# Shared by the measuring scripts (sourced): a throw-away nats-server with
# JetStream in a temporary directory, killed with everything else on exit.
#   source scripts/lib.sh; built_bins; scratch_nats
#     → $BIN (debug binaries), $DIR, $PORT, $HTTP (PORT+1), $NATS

# What is missing installed (scripts/setup.sh), the binaries built: $BIN.
built_bins() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
  eval "$(bash scripts/setup.sh)"
  cargo build -q --bins
  BIN="$CARGO_TARGET_DIR/debug"
}

scratch_nats() {
  DIR=$(mktemp -d)
  PORT=$((20000 + RANDOM % 20000)); HTTP=$((PORT + 1))
  trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s/js" }\n' "$PORT" "$DIR" > "$DIR/nats.conf"
  "$NATS_SERVER_BIN" -c "$DIR/nats.conf" >"$DIR/nats.log" 2>&1 &
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  NATS="nats://127.0.0.1:$PORT"
}

# An admin's API token for the backend's users file $DIR/users.json.
admin_token() {
  "$BIN/gridwatch-admin" --users-file "$DIR/users.json" user add ops --role admin --scope beilun <<<"figures-only-$RANDOM$RANDOM" >/dev/null
  "$BIN/gridwatch-admin" --users-file "$DIR/users.json" token add ops --label figures
}
