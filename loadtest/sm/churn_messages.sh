#!/usr/bin/env bash
# Resumption storms with messages in flight (issue 13's churn run): N sessions with
# resumable stream management over STARTTLS, every connection dropped at once (TCP reset),
# every client back at once resuming; 10 senders of their own write numbered messages to
# the sessions from 1 s before the drop through the storm. Fresh all-in-one server per
# run; prints one line per run, raw JSON in loadtest/results/<stamp>-churn/.
#
#   BIN_DIR=target/release bash loadtest/sm/churn_messages.sh [N] [MESSAGES] [ROUNDS] [--fresh]
#
# BIN_DIR holds release builds of `switchyard` and `switchyard-loadtest`. Loopback only;
# every run is bounded by the generator's own deadlines.
set -euo pipefail
N=${1:-10000}; MESSAGES=${2:-20000}; ROUNDS=${3:-2}; MODE=${4:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${BIN_DIR:-$ROOT/target/release}" && pwd)
OUT="$ROOT/loadtest/results/$(date -u +%Y%m%dT%H%M%SZ)-churn"
WORK=${WORK:-/tmp/switchyard-churn}
PORT=27322
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
mkdir -p "$OUT" "$WORK"
ulimit -n "$(ulimit -Hn)"
PID=""
trap '[[ -n $PID ]] && kill -9 $PID 2>/dev/null || true' EXIT
USERS=$((N + 10))

for round in $(seq 1 "$ROUNDS"); do
  name="churn-$N${MODE:+-fresh}.r$round"
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  "$BIN/switchyard-loadtest" provision --data-dir "$WORK/data" --users "$USERS" --password pw >/dev/null
  SWITCHYARD_DATA_DIR="$WORK/data" SWITCHYARD_TLS__REQUIRED=false \
    SWITCHYARD_LISTEN__C2S=127.0.0.1:$PORT SWITCHYARD_LISTEN__C2S_DIRECT_TLS= \
    SWITCHYARD_LISTEN__WEBSOCKET= SWITCHYARD_ADMIN__LISTEN=127.0.0.1:0 \
    SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP=100000 RUST_LOG=warn \
    "$BIN/switchyard" serve >"$OUT/$name.server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  # shellcheck disable=SC2086
  "$BIN/switchyard-loadtest" resume-storm -n "$N" --users "$USERS" --arrival-rate 1000 \
    --concurrency 100 --pause-ms 500 --hold-secs 5 --messages "$MESSAGES" \
    --message-rate 2000 --senders 10 $MODE --server 127.0.0.1:$PORT --server-pid "$PID" \
    --password pw --transport starttls --mechanism PLAIN --sources "$SOURCES" \
    --login-timeout-secs 120 --json --quiet >"$OUT/$name.json" 2>"$OUT/$name.stderr"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  python3 - "$OUT/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["resume"]
m = r["messages"] or {"sent": 0, "once": 0, "lost": 0, "duplicated": 0}
print(f'{sys.argv[1].rsplit("/", 1)[-1]}: {r["succeeded"]}/{r["reconnects"]} back in '
      f'{r["all_back_seconds"]:.2f} s ({r["per_second"]:.0f}/s), failures {r["failures"]}, '
      f'h mismatches {r["h_mismatches"]}, other stanzas after {r["stanzas_after"]}; '
      f'messages: {m["sent"]} sent, {m["once"]} once, {m["lost"]} lost, '
      f'{m["duplicated"]} duplicated; errors after {r["errors_after"]}')
PY
done
echo "raw results: $OUT"
