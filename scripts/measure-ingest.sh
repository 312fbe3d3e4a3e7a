#!/usr/bin/env bash
# Measures how many events per second gridwatch-ingest sustains here: fills a
# fresh stream with N simulated events (a Beilun day, 2022-10-15, from its
# start), then times ingest (replay clock) from start to the last sequence.
#   scripts/measure-ingest.sh [N=150000] [profile=dev]
# The prefill uses nats-server's default flush (consumer speed does not
# depend on it). The full benchmark harness is a separate issue.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-150000}"
PROFILE="${2:-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridwatch-target}"
eval "$(bash scripts/setup.sh)"
cargo build -q --profile "$PROFILE" --bins
BIN="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
source scripts/lib.sh
scratch_nats
"$BIN/gridwatch-sim" --nats "$NATS" --date 2022-10-15 --rate 1000000000 --limit "$N" >"$DIR/sim.log" 2>&1
"$BIN/gridwatch-backend" --nats "$NATS" --listen "127.0.0.1:$HTTP" >"$DIR/backend.log" 2>&1 &
LAST=$(curl -s "http://127.0.0.1:$HTTP/healthz" >/dev/null; python3 - "$PORT" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rwb")
f.readline()
f.write(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _R 1\r\nPUB $JS.API.STREAM.INFO.GW_EVENTS _R 0\r\n\r\nPING\r\n'); f.flush()
while True:
    line = f.readline()
    if line.startswith(b"MSG"):
        n = int(line.split()[-1]); body = f.read(n); f.readline()
        print(json.loads(body)["state"]["last_seq"]); break
PY
)
echo "stream holds $LAST messages (events, bad events and clock ticks)"
START=$(date +%s.%N)
"$BIN/gridwatch-ingest" --nats "$NATS" --data-dir "$DIR/data" --clock replay >"$DIR/ingest.log" 2>&1 &
while true; do
  SEQ=$(curl -s "http://127.0.0.1:$HTTP/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("last_seq") or 0)' 2>/dev/null || echo 0)
  [ "$SEQ" -ge "$LAST" ] && break
  sleep 0.2
done
END=$(date +%s.%N)
python3 -c "d=$END-$START; print(f'ingest ($PROFILE): {$LAST} messages in {d:.1f} s = {$LAST/d:,.0f} msg/s (includes start-up and the 1 s stats cadence)')"
curl -s "http://127.0.0.1:$HTTP/metrics" | grep -E "stage_microseconds|batch_latency|events_applied"
