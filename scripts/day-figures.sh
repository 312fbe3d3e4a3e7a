#!/usr/bin/env bash
# The disposal loop over one simulated Beilun day, replayed as fast as it
# goes: nats-server, the simulator's whole day (2022-10-15 by default),
# ingest on the replay clock, the backend; then the district's figures at
# the day's end — incidents reported, resolved, open and overdue; orders
# issued, rectified, open and overdue — and the streets'.
# Usage: scripts/day-figures.sh [YYYY-MM-DD] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
DAY="${1:-2022-10-15}"
SEED="${2:-42}"
source scripts/lib.sh
built_bins
scratch_nats
TOKEN=$(admin_token)
"$BIN/gridwatch-sim" --nats "$NATS" --date "$DAY" --seed "$SEED" --rate 1000000000 >"$DIR/sim.log" 2>&1
"$BIN/gridwatch-ingest" --nats "$NATS" --data-dir "$DIR/data" --clock replay >"$DIR/ingest.log" 2>&1 &
"$BIN/gridwatch-backend" --nats "$NATS" --listen "127.0.0.1:$HTTP" --users-file "$DIR/users.json" >"$DIR/backend.log" 2>&1 &
get() { curl -sf -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP$1"; }
# Done when ingest has applied the stream's end and stopped moving.
prev=""; for _ in $(seq 1 600); do
  cur=$(get /healthz 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("last_seq"))' 2>/dev/null || true)
  [ -n "$cur" ] && [ "$cur" != "None" ] && [ "$cur" != "0" ] && [ "$cur" = "$prev" ] && break
  prev="$cur"; sleep 2
done
cat >"$DIR/figures.py" <<'PY'
import json, sys
s = json.load(sys.stdin)
i, v = s["incidents"], s["video"]
print("as of", s["as_of"])
print("incidents: reported %d, resolved %d, open %d (by level %s), overdue %d, level 2 not up in 6 h %d, median minutes to resolve %s"
      % (i["reported_today"], i["resolved_today"], i["open"], i["open_by_level"], i["overdue"], i["transfer_overdue"], i.get("median_resolve_min")))
print("orders: issued %d, rectifications %d, open %d, overdue %d, median minutes to rectify %s"
      % (v["raised_today"], v["rectified_today"], v["flags_open"], v["overdue"], v.get("median_rectify_min")))
print("| street | incidents open | overdue | orders open | overdue |")
print("|---|---|---|---|---|")
for c in s["children"]:
    print("| %s | %d | %d | %d | %d |" % (c["name_en"] or c["node"], c["incidents_open"], c["incidents_overdue"], c["orders_open"], c["orders_overdue"]))
PY
get "/api/v1/state?node=beilun" | python3 "$DIR/figures.py"
