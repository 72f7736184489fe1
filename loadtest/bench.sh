#!/usr/bin/env bash
# Side-by-side benchmark: Switchyard, ejabberd and Prosody (Debian packages) on loopback,
# driven by switchyard-loadtest with the same transport, mechanism and body size.
#
#   bash loadtest/bench.sh            # full run (~25 min on 2 cores)
#   bash loadtest/bench.sh --quick    # a few minutes, smaller figures
#   BENCH_SERVERS="switchyard ejabberd" bash loadtest/bench.sh --quick
#   BENCH_IDLE_RUNS="starttls:10000:SCRAM-SHA-1" BENCH_SKIP_CHAT=1 bash loadtest/bench.sh
#   BENCH_REPEAT=3 bash loadtest/bench.sh   # storms and chat 3 times per server: medians
#   BENCH_PIN=1 bash loadtest/bench.sh      # server on CPU 0, generator on CPU 1 (taskset):
#                                           # each server's own ceiling on one core
#   # chat at a fixed rate only, every server side by side (no idle runs, no storms):
#   BENCH_SERVERS="switchyard ejabberd" BENCH_IDLE_RUNS= BENCH_SKIP_STORMS=1 \
#     BENCH_CHAT_RATES=10000 BENCH_REPEAT=3 bash loadtest/bench.sh --quick
#
# Per server: accounts (Switchyard: `provision` into SQLite; the others: XEP-0077 in-band
# registration), then each measurement on a freshly started process: idle sessions (RSS
# delta / sessions from /proc), login storms (PLAIN and SCRAM-SHA-1), chat saturation with
# 1,000 users (rate steps ×1.5 until p99 > 100 ms or delivery < 95 %, then one step at
# half the last good rate). Raw JSON and a markdown table go to loadtest/results/.
# Every server this script starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
[[ "${1:-}" == "--quick" ]] && MODE=quick
SERVERS=${BENCH_SERVERS:-"switchyard ejabberd prosody"}
WORK=${BENCH_WORK:-/tmp/switchyard-bench}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/loadtest/results/$STAMP-$MODE${BENCH_PIN:+-pinned}"
BIN="$WORK/bin"
MECH=${BENCH_MECH:-PLAIN}          # mechanism of the chat and idle logins
TRANSPORT=${BENCH_TRANSPORT:-plain} # chat and storm transport (idle runs list their own)
BODY=64
CHAT_USERS=1000
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
PASSWORD=bench-password
if [[ $MODE == quick ]]; then
  IDLE_RUNS="starttls:2000 plain:2000 starttls:2000:SCRAM-SHA-1"; ACCOUNTS=2000; STORM_N=2000; STEP_SECS=5
else
  IDLE_RUNS="starttls:10000 starttls:19000 plain:10000 starttls:10000:SCRAM-SHA-1"; ACCOUNTS=19000; STORM_N=5000; STEP_SECS=10
fi
IDLE_RUNS=${BENCH_IDLE_RUNS-$IDLE_RUNS}   # set but empty: no idle runs
STEP_SECS=${BENCH_STEP_SECS:-$STEP_SECS}  # seconds per chat rate step
REPEAT=${BENCH_REPEAT:-1}                 # storm + chat rounds per server, each on a fresh process
REFINE=${BENCH_REFINE:-2}                 # bisection steps after the first failing chat step
SERVER_CPU=""; GEN_CPU=""
if [[ -n ${BENCH_PIN:-} ]]; then           # children inherit the affinity (BEAM, Lua, tokio)
  SERVER_CPU="taskset -c 0"; GEN_CPU="taskset -c 1"; MODE=$MODE-pinned
fi
declare -A PORT=([switchyard]=25222 [ejabberd]=35222 [prosody]=45222)

ulimit -n "$(ulimit -Hn)"
mkdir -p "$WORK" "$BIN" "$OUT"
log() { printf '\n== %s %s\n' "$(date -u +%T)" "$*" >&2; }

# --- build and install ------------------------------------------------------------------
log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p switchyard -p switchyard-loadtest)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cp "$TARGET_DIR/release/switchyard" "$TARGET_DIR/release/switchyard-loadtest" "$BIN/"
LT="$BIN/switchyard-loadtest"
need_apt() { command -v "$1" >/dev/null || { log "installing $2"; apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
[[ $SERVERS == *ejabberd* ]] && need_apt ejabberdctl ejabberd
[[ $SERVERS == *prosody* ]] && need_apt prosodyctl prosody

# One certificate for everyone (ECDSA P-256, like Switchyard's development certificate).
if [[ ! -f $WORK/cert.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
fi

# --- servers ----------------------------------------------------------------------------
PID=""; STOP=""
wait_port() {
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "port $1 never opened" >&2; return 1
}
source "$ROOT/loadtest/bench-servers.sh"

stop_server() {
  [[ -n $STOP ]] || return 0
  eval "$STOP" || true
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$PID" 2>/dev/null || true
  PID=""; STOP=""
}
# Other work on the 2 cores (a compiler, above all) skews CPU-bound figures: note it.
( while sleep 2; do pgrep -x rustc >/dev/null && echo "$(date -u +%T) rustc running" >>"$OUT/noise.log"; done ) &
NOISE=$!
trap 'stop_server; kill $NOISE 2>/dev/null' EXIT
trap 'exit 130' INT TERM

# Runs the generator against the current server, saving its JSON as $1.json.
lt() {
  local name=$1 scenario=$2; shift 2
  log "$CURRENT $name"
  $GEN_CPU "$LT" "$scenario" --server "127.0.0.1:${PORT[$CURRENT]}" --server-pid "$PID" \
    --password "$PASSWORD" --sources "$SOURCES" --json "$@" > "$OUT/$CURRENT-$name.json"
}

# BENCH_CHAT_RATES: chat at these fixed rates, comma-separated (the generator's --rate)
# instead of stepping up to saturation.
if [[ -n ${BENCH_CHAT_RATES:-} ]]; then RATES=(--rate "$BENCH_CHAT_RATES"); else RATES=(--rate 1000 --saturate); fi

for CURRENT in $SERVERS; do
  log "$CURRENT: accounts"
  accounts_"$CURRENT"
  for run in $IDLE_RUNS; do   # transport:sessions[:mechanism]
    IFS=: read -r transport n mech <<<"$run"
    name="idle-$transport-$n${mech:+-$mech}"
    start_"$CURRENT"
    lt "$name" idle --transport "$transport" --mechanism "${mech:-$MECH}" -n "$n" \
      --users "$ACCOUNTS" --arrival-rate 1000 --concurrency 100 --duration-secs 5 --login-timeout-secs 120
    stop_server
  done
  [[ -n ${BENCH_SKIP_CHAT:-} ]] && continue
  # SCRAM storms reuse salted passwords, as clients that remember their keys do, so they
  # measure the server rather than the generator's PBKDF2; the first storm, which fills
  # the cache, is kept as the "uncached" figure.
  CACHE="$WORK/scram-cache-$CURRENT.json"; rm -f "$CACHE"
  for rep in $(seq 1 "$REPEAT"); do
    sfx=""; [[ $REPEAT -gt 1 ]] && sfx=".r$rep"   # summarize.py reports medians over .rN
    start_"$CURRENT"
    storms="PLAIN SCRAM-SHA-1"; [[ $rep == 1 ]] && storms="PLAIN SCRAM-SHA-1-uncached SCRAM-SHA-1"
    [[ -n ${BENCH_SKIP_STORMS:-} ]] && storms=""
    for storm in $storms; do
      lt "storm-$storm$sfx" login-storm --transport "$TRANSPORT" --mechanism "${storm%-uncached}" \
        -n "$STORM_N" --users "$ACCOUNTS" --arrival-rate 0 --concurrency 100 --login-timeout-secs 120 \
        --scram-cache "$CACHE"
    done
    lt "chat$sfx" chat --transport "$TRANSPORT" --mechanism "$MECH" --users "$CHAT_USERS" \
      --arrival-rate 500 "${RATES[@]}" --step-factor 1.5 --refine "$REFINE" --body-bytes "$BODY" \
      --duration-secs "$STEP_SECS" --drain-secs 3 --login-timeout-secs 120
    stop_server
  done
done

log "summary"
python3 "$ROOT/loadtest/summarize.py" "$OUT" "$MODE" | tee "$OUT/summary.md"
[[ -f $OUT/noise.log ]] && log "WARNING: a compiler ran during the benchmark, see $OUT/noise.log"
log "results in $OUT"
