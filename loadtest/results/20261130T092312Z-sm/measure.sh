#!/usr/bin/env bash
# Idle with/without --sm and resume-storm resume/fresh, alternating, fresh server per run.
#   bash measure.sh OUTDIR "idle:5000 storm:2000" ROUNDS
set -euo pipefail
source /tmp/lt-sy/run.sh
OUT=$1; PLAN=$2; ROUNDS=${3:-2}
LT=/tmp/lt-bin/switchyard-loadtest
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
mkdir -p "$OUT"
trap '[[ -n ${PID:-} ]] && kill -9 $PID 2>/dev/null || true' EXIT
quiet_machine() { # waits (at most 10 min) for the 1-minute load below 1.5 and no rustc
  for _ in $(seq 1 60); do
    awk '{exit !($1 < 1.5)}' /proc/loadavg && ! pgrep -x rustc >/dev/null && return 0
    echo "$(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg), waiting" >&2; sleep 10
  done
  echo "$(date -u +%T) load still high, going on" >&2
}
one() { # name scenario args...
  local name=$1; shift
  quiet_machine
  echo "$(date -u +%FT%TZ) $name load $(cut -d' ' -f1-3 /proc/loadavg) rustc=$(pgrep -xc rustc || true)" >>"$OUT/load.log"
  start_server "$name"
  "$LT" "$@" --server 127.0.0.1:$PORT --server-pid "$PID" --password pw --users 12000 \
    --transport starttls --mechanism PLAIN --sources "$SOURCES" --login-timeout-secs 120 \
    --json --quiet >"$OUT/$name.json" 2>"$OUT/$name.stderr"
  echo "$(date -u +%FT%TZ) $name done, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.log"
  stop_server
  cp "/tmp/lt-sy/logs/$name.log" "$OUT/$name.server.log"
}
for round in $(seq 1 "$ROUNDS"); do
  for item in $PLAN; do
    IFS=: read -r kind n <<<"$item"
    case $kind in
      idle)
        one "idle-starttls-$n.r$round" idle -n "$n" --arrival-rate 1000 --concurrency 100 --duration-secs 5
        one "idle-starttls-$n-sm.r$round" idle -n "$n" --arrival-rate 1000 --concurrency 100 --duration-secs 5 --sm ;;
      storm)
        one "resume-storm-$n.r$round" resume-storm -n "$n" --arrival-rate 1000 --concurrency 100 --pause-ms 500
        one "resume-storm-$n-fresh.r$round" resume-storm -n "$n" --arrival-rate 1000 --concurrency 100 --pause-ms 500 --fresh ;;
    esac
  done
done
