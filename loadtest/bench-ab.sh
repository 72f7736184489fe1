#!/usr/bin/env bash
# Side-by-side A/B of two Switchyard builds on this machine: chat saturation (1,000 users,
# 64-byte bodies, plaintext, all-in-one) and a PLAIN login storm, alternating A and B
# for ROUNDS rounds on fresh processes, so both see the same machine state. Prints one
# line per run and the medians; raw JSON goes to loadtest/results/<stamp>-ab/.
#
#   bash loadtest/bench-ab.sh DIR_A DIR_B [ROUNDS]
#
# BENCH_MIXED=1 runs a mixed round instead: chat at a steady 2,000 msgs/s for 15 s, and
# 6 s into it a PLAIN login storm of 3,000 on accounts of its own (BENCH_MIXED_INFLIGHT
# in flight, 8 unless set) against the same server; it reports the chat latency the
# storm causes and the storm's logins/s (what hashing passwords costs the connections
# already there).
#
# DIR_A and DIR_B each hold a `switchyard` and a `switchyard-loadtest` release binary,
# e.g. built with `CARGO_TARGET_DIR=/tmp/a cargo build --release -p switchyard
# -p switchyard-loadtest` in a worktree of each commit. Loopback only; every run bounded.
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/loadtest/results/$(date -u +%Y%m%dT%H%M%SZ)-ab"
WORK=${BENCH_WORK:-/tmp/switchyard-ab}
PORT=26222
mkdir -p "$OUT" "$WORK"
ulimit -n "$(ulimit -Hn)"
PID=""
trap '[[ -n $PID ]] && kill -9 $PID 2>/dev/null || true' EXIT

run() { # label dir round
  local label=$1 dir=$2 round=$3 data="$WORK/$1"
  rm -rf "$data"; mkdir -p "$data"
  "$dir/switchyard-loadtest" provision --data-dir "$data" --users 1000 --password pw >/dev/null
  [[ -n ${BENCH_MIXED:-} ]] && "$dir/switchyard-loadtest" provision --data-dir "$data" \
    --users 1000 --user-pattern 'storm{}' --password pw >/dev/null
  SWITCHYARD_DATA_DIR="$data" SWITCHYARD_LISTEN__C2S=127.0.0.1:$PORT \
    SWITCHYARD_LISTEN__C2S_DIRECT_TLS= SWITCHYARD_LISTEN__WEBSOCKET= SWITCHYARD_TLS__REQUIRED=false \
    SWITCHYARD_ADMIN__LISTEN=127.0.0.1:0 SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP=100000 \
    RUST_LOG=warn "$dir/switchyard" serve >"$data/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  local S="--server 127.0.0.1:$PORT --server-pid $PID --password pw --json --quiet"
  if [[ -n ${BENCH_MIXED:-} ]]; then
    "$dir/switchyard-loadtest" chat $S --transport plain --mechanism PLAIN --users 1000 \
      --arrival-rate 500 --rate 2000 --body-bytes 64 --duration-secs 15 --drain-secs 3 \
      --login-timeout-secs 60 >"$OUT/$label-mixed-chat.r$round.json" &
    local chat=$!
    sleep 6
    "$dir/switchyard-loadtest" login-storm $S --transport plain --mechanism PLAIN -n 3000 \
      --users 1000 --user-pattern 'storm{}' --arrival-rate 0 \
      --concurrency "${BENCH_MIXED_INFLIGHT:-8}" --login-timeout-secs 60 \
      >"$OUT/$label-mixed-storm.r$round.json"
    wait "$chat"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    return
  fi
  "$dir/switchyard-loadtest" login-storm $S --transport plain --mechanism PLAIN -n 2000 \
    --users 1000 --arrival-rate 0 --concurrency 100 --login-timeout-secs 60 \
    >"$OUT/$label-storm.r$round.json"
  "$dir/switchyard-loadtest" chat $S --transport plain --mechanism PLAIN --users 1000 \
    --arrival-rate 500 --rate 5000 --saturate --step-factor 1.5 --refine 2 --body-bytes 64 \
    --duration-secs 5 --drain-secs 3 --login-timeout-secs 60 >"$OUT/$label-chat.r$round.json"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

for round in $(seq 1 "$ROUNDS"); do
  run a "$A" "$round"
  run b "$B" "$round"
done
python3 - "$OUT" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
med = statistics.median
if list(out.glob("a-mixed-*")):
    for label in ("a", "b"):
        chats = [json.loads(p.read_text()) for p in sorted(out.glob(f"{label}-mixed-chat.r*.json"))]
        storms = [json.loads(p.read_text()) for p in sorted(out.glob(f"{label}-mixed-storm.r*.json"))]
        lat = [c["steps"][0]["latency"] for c in chats]
        p50 = [round(l["p50_ms"], 2) for l in lat]
        p99 = [round(l["p99_ms"], 2) for l in lat]
        mx = [round(l["max_ms"], 1) for l in lat]
        lost = sum(c["steps"][0]["lost"] for c in chats)
        lps = [round(s["logins_per_second"]) for s in storms]
        print(f"{label}: chat at 2k/s with a PLAIN storm: p50 ms {p50} (median {med(p50)}); p99 ms "
              f"{p99} (median {med(p99)}); max ms {mx} (median {med(mx)}); lost {lost}; "
              f"storm logins/s {lps} (median {med(lps)})")
    sys.exit(0)
def fig(step, key):
    return step[key] if step else 0.0
for label in ("a", "b"):
    chats = [json.loads(p.read_text()) for p in sorted(out.glob(f"{label}-chat.r*.json"))]
    storms = [json.loads(p.read_text()) for p in sorted(out.glob(f"{label}-storm.r*.json"))]
    sat = [round(fig(c["saturation"], "delivered_per_second")) for c in chats]
    cpu = [round(fig(c["half_saturation"], "server_cpu_seconds_per_100k"), 2) for c in chats]
    p99 = [fig(c["half_saturation"], "latency")["p99_ms"] if c["half_saturation"] else 0 for c in chats]
    lost = sum(s["lost"] for c in chats for s in c["steps"] if s["good"])
    lps = [round(s["logins_per_second"]) for s in storms]
    print(f"{label}: chat saturation msgs/s {sat} (median {med(sat)}); server CPU s/100k at half "
          f"{cpu} (median {med(cpu)}); p99 ms at half {p99} (median {med(p99)}); lost in good steps "
          f"{lost}; PLAIN logins/s {lps} (median {med(lps)})")
PY
echo "raw results: $OUT"
