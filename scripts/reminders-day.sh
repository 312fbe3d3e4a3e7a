#!/usr/bin/env bash
# The hourly reminders over one simulated Beilun day, accelerated: the
# simulator plays 2022-10-15 from 06:00 at SPEED× on the replay clock,
# ingest and gridwatch-notify follow it (no robot configured: every group's
# digests go to the outbox stream), until the clock passes 16:30; then
# `gridwatch-notify report` prints the digests by hour, by group level and
# per group, and the district's incident and order figures at that time.
# Usage: scripts/reminders-day.sh [SPEED=600] [YYYY-MM-DD] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
SPEED="${1:-600}"
DAY="${2:-2022-10-15}"
SEED="${3:-42}"
source scripts/lib.sh
built_bins
scratch_nats
TOKEN=$(admin_token)
"$BIN/gridwatch-ingest" --nats "$NATS" --data-dir "$DIR/data" --clock replay >"$DIR/ingest.log" 2>&1 &
"$BIN/gridwatch-backend" --nats "$NATS" --listen "127.0.0.1:$HTTP" --users-file "$DIR/users.json" >"$DIR/backend.log" 2>&1 &
GRIDWATCH__TICK_MS=200 "$BIN/gridwatch-notify" --nats "$NATS" >"$DIR/notify.log" 2>&1 &
"$BIN/gridwatch-sim" --nats "$NATS" --date "$DAY" --seed "$SEED" --from 06:00 --speed "$SPEED" >"$DIR/sim.log" 2>&1 &
get() { curl -sf -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP$1"; }
START=$(date +%s)
until get "/api/v1/state?node=beilun" 2>/dev/null | python3 -c 'import json,sys; t=json.load(sys.stdin)["as_of"]; sys.exit(0 if t[11:16] >= "16:30" else 1)' 2>/dev/null; do
  sleep 1
  [ $(( $(date +%s) - START )) -lt 1800 ] || { echo "the day did not reach 16:30 in 30 min; logs in $DIR" >&2; tail -5 "$DIR"/*.log >&2; exit 1; }
done
echo "the day played to 16:30 in $(( $(date +%s) - START )) s at ${SPEED}x"
"$BIN/gridwatch-notify" --nats "$NATS" report --date "$DAY"
get "/api/v1/state?node=beilun" | python3 -c '
import json, sys
s = json.load(sys.stdin); i, v = s["incidents"], s["video"]
print("at %s: incidents reported %d, resolved %d, open %d, overdue %d; orders issued %d, rectifications %d, open %d, overdue %d"
      % (s["as_of"], i["reported_today"], i["resolved_today"], i["open"], i["overdue"], v["raised_today"], v["rectified_today"], v["flags_open"], v["overdue"]))'
grep -c "hour worked through" "$DIR/notify.log" | sed 's/^/hours worked through by notify: /'
