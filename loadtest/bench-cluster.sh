#!/usr/bin/env bash
# Cluster benchmark: 1 edge + 1 router (two Switchyard processes) + Redis + PostgreSQL, all
# on this machine, driven by switchyard-loadtest with the same options as bench.sh's
# all-in-one Switchyard rows.
#
#   bash loadtest/bench-cluster.sh                       # 10k idle, 5k storms, chat 10 s steps
#   BENCH_STEP_SECS=5 bash loadtest/bench-cluster.sh     # shorter chat steps
#   BENCH_IDLE_RUNS="starttls:2000" BENCH_STORM_N=2000 bash loadtest/bench-cluster.sh
#   # idle sessions with resumable stream management (the routers keep an entry each):
#   BENCH_IDLE_RUNS="starttls:5000 starttls:5000:PLAIN:sm" BENCH_SKIP_STORMS=1 BENCH_SKIP_CHAT=1 bash loadtest/bench-cluster.sh
#   # chat at fixed rates on a fresh cluster only (no idle run, no storms, no --saturate):
#   BENCH_IDLE_RUNS= BENCH_SKIP_STORMS=1 BENCH_CHAT_RATES=8543 bash loadtest/bench-cluster.sh
#   # the same with resumable stream management on every chat session:
#   BENCH_IDLE_RUNS= BENCH_SKIP_STORMS=1 BENCH_CHAT_RATES=8543 BENCH_CHAT_SM=1 bash loadtest/bench-cluster.sh
#   # storms only (each process's /metrics is saved after them, for where login time goes):
#   BENCH_IDLE_RUNS= BENCH_SKIP_CHAT=1 bash loadtest/bench-cluster.sh
#
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres, database
# test; override with BENCH_PG_URL / BENCH_REDIS_URL). Each run uses its own schema and
# Redis key prefix (bench_<stamp> / bench:<stamp>:) and drops them on exit.
# Idle memory is measured on the EDGE process (RSS delta / sessions; the router's RSS
# before/after is saved too); chat CPU per 100k messages is reported for the edge
# (server_cpu_*) and the router (other_cpu_*) separately, summed in summary.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/switchyard-bench-cluster}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/loadtest/results/$STAMP-cluster"
BIN="$WORK/bin"
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
UNIQUE=$(echo "$STAMP" | tr 'A-Z' 'a-z')
SCHEMA=bench_$UNIQUE
PREFIX="bench:$UNIQUE:"
MECH=${BENCH_MECH:-PLAIN}
TRANSPORT=${BENCH_TRANSPORT:-plain}
BODY=64
CHAT_USERS=1000
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
PASSWORD=bench-password
IDLE_RUNS=${BENCH_IDLE_RUNS-"starttls:10000"}
STORM_N=${BENCH_STORM_N:-5000}
STEP_SECS=${BENCH_STEP_SECS:-10}
ACCOUNTS=${BENCH_ACCOUNTS:-10000}
C2S_PORT=26222
RPC_PORT=26300
declare -A ADMIN_PORT=([router]=26400 [edge]=26401)

ulimit -n "$(ulimit -Hn)"
mkdir -p "$WORK" "$BIN" "$OUT"
log() { printf '\n== %s %s\n' "$(date -u +%T)" "$*" >&2; }
psql_() { psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "$1"; }

log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p switchyard -p switchyard-loadtest)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cp "$TARGET_DIR/release/switchyard" "$TARGET_DIR/release/switchyard-loadtest" "$BIN/"
LT="$BIN/switchyard-loadtest"
if [[ ! -f $WORK/cert.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
fi

# The edge-router link with mutual TLS, as in production.
"$BIN/switchyard" gen-cluster-certs "$WORK/cluster-certs" switchyard-router switchyard-edge >/dev/null

# Every edge needs the same decoy secret (unknown accounts get stable fake SCRAM salts).
DECOY_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
config() { # role
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1.toml" <<CONF
domains = ["localhost"]
data_dir = "$WORK/$1"
[listen]
c2s = "$([[ $1 == edge ]] && echo "127.0.0.1:$C2S_PORT" || echo "127.0.0.1:0")"
c2s_direct_tls = ""
websocket = ""
[tls]
required = false
cert_path = "$WORK/cert.pem"
key_path = "$WORK/key.pem"
[limits]
max_connections_per_ip = 100000
[cluster]
routers = ["127.0.0.1:$RPC_PORT"]
rpc_listen = "127.0.0.1:$RPC_PORT"
tls_ca_path = "$WORK/cluster-certs/ca.pem"
tls_cert_path = "$WORK/cluster-certs/switchyard-$1.pem"
tls_key_path = "$WORK/cluster-certs/switchyard-$1-key.pem"
[redis]
urls = ["$REDIS_URL"]
key_prefix = "$PREFIX"
[postgres]
url = "$PG_URL"
schema = "$SCHEMA"
migrate_on_start = true
[admin]
listen = "127.0.0.1:${ADMIN_PORT[$1]}"
[auth]
decoy_secret = "$DECOY_SECRET"
CONF
}
config router; config edge

wait_port() {
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "port $1 never opened" >&2; return 1
}
redis_clean() {
  redis-cli -u "$REDIS_URL" --scan --pattern "$PREFIX*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
}
ROUTER=""; EDGE=""
start_cluster() {
  RUST_LOG=warn "$BIN/switchyard" --config "$WORK/router.toml" serve --roles router \
    >"$WORK/router.out" 2>>"$WORK/router.log" &
  ROUTER=$!
  wait_port $RPC_PORT
  RUST_LOG=warn "$BIN/switchyard" --config "$WORK/edge.toml" serve --roles edge \
    >"$WORK/edge.out" 2>>"$WORK/edge.log" &
  EDGE=$!
  wait_port $C2S_PORT
  sleep 1
}
stop_pid() {
  [[ -n $1 ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$1" 2>/dev/null || true
}
stop_cluster() { stop_pid "$EDGE"; stop_pid "$ROUTER"; EDGE=""; ROUTER=""; redis_clean; }
cleanup() {
  stop_cluster
  kill "$NOISE" 2>/dev/null || true
  psql_ "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" || true
  redis_clean || true
}
( while sleep 2; do pgrep -x rustc >/dev/null && echo "$(date -u +%T) rustc running" >>"$OUT/noise.log"; done ) &
NOISE=$!
trap cleanup EXIT
trap 'exit 130' INT TERM

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
lt() { # name scenario args...
  local name=$1 scenario=$2; shift 2
  log "cluster $name"
  "$LT" "$scenario" --server "127.0.0.1:$C2S_PORT" --server-pid "$EDGE" \
    --password "$PASSWORD" --sources "$SOURCES" --json "$@" > "$OUT/cluster-$name.json"
}

log "schema $SCHEMA, Redis prefix $PREFIX"
psql_ "CREATE SCHEMA $SCHEMA"
"$BIN/switchyard" --config "$WORK/router.toml" migrate
log "accounts ($ACCOUNTS) in PostgreSQL"
"$LT" provision --postgres "$PG_URL" --schema "$SCHEMA" --users "$ACCOUNTS" --password "$PASSWORD"

for run in $IDLE_RUNS; do   # transport:sessions[:mechanism[:sm]]
  IFS=: read -r transport n mech sm <<<"$run"
  name="idle-$transport-$n${mech:+-$mech}${sm:+-$sm}"
  start_cluster
  r0=$(rss "$ROUTER")
  lt "$name" idle --transport "$transport" --mechanism "${mech:-$MECH}" -n "$n" ${sm:+--sm} \
    --users "$ACCOUNTS" --arrival-rate 1000 --concurrency 100 --duration-secs 5 --login-timeout-secs 120 &
  GEN=$!
  # Router RSS while the sessions are held (the generator holds them 5 s after the ramp),
  # and each process's metrics at the last look (what the router keeps per session).
  r1=$r0; while kill -0 $GEN 2>/dev/null; do
    r1=$(rss "$ROUTER")
    for role in router edge; do
      curl -sf "http://127.0.0.1:${ADMIN_PORT[$role]}/metrics" > "$OUT/metrics-$name-$role.txt.new" \
        && mv "$OUT/metrics-$name-$role.txt.new" "$OUT/metrics-$name-$role.txt"
    done
    sleep 1
  done
  wait $GEN
  echo "{\"router_rss_kib_before\": $r0, \"router_rss_kib_last\": $r1}" > "$OUT/router-$name.json"
  stop_cluster
done

start_cluster
[[ -n ${BENCH_SKIP_STORMS:-} ]] || for mech in PLAIN SCRAM-SHA-1; do
  lt "storm-$mech" login-storm --transport "$TRANSPORT" --mechanism "$mech" -n "$STORM_N" \
    --users "$ACCOUNTS" --arrival-rate 0 --concurrency 100 --login-timeout-secs 120
done
if [[ -z ${BENCH_SKIP_STORMS:-} ]]; then
  for role in router edge; do
    curl -sf "http://127.0.0.1:${ADMIN_PORT[$role]}/metrics" > "$OUT/metrics-after-storms-$role.txt" || true
  done
fi
if [[ -n ${BENCH_CHAT_RATES:-} ]]; then RATES=(--rate "$BENCH_CHAT_RATES"); else RATES=(--rate 1000 --saturate); fi
# BENCH_CHAT_SM=1: chat users enable resumable stream management (XEP-0198).
[[ -n ${BENCH_CHAT_SM:-} ]] && RATES+=(--sm)
[[ -n ${BENCH_SKIP_CHAT:-} ]] || lt chat chat --other-pid "$ROUTER" --transport "$TRANSPORT" --mechanism "$MECH" --users "$CHAT_USERS" \
  --arrival-rate 500 "${RATES[@]}" --step-factor 1.5 --refine 2 --body-bytes "$BODY" \
  --duration-secs "$STEP_SECS" --drain-secs 3 --login-timeout-secs 120
stop_cluster

log "summary"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
print(f"Cluster benchmark (1 edge + 1 router + Redis + PostgreSQL), {d.name}\n")
print("| measurement | value |\n| --- | --- |")
for f in sorted(d.glob("cluster-*.json")):
    r = json.loads(f.read_text()); name = f.stem[8:]
    if name.startswith("idle-"):
        i = r["idle"]; rt = json.loads((d / f"router-{name}.json").read_text())
        print(f"| {name}: edge KiB per idle session | {i['kib_per_session']:.1f} ({i['sessions_held']} held) |")
        print(f"| {name}: router RSS before → while held | {rt['router_rss_kib_before']} → {rt['router_rss_kib_last']} KiB |")
    elif name.startswith("storm-"):
        print(f"| login storm {name[6:]}: logins/s | {r['logins_per_second']:,.0f} (p99 {r['login_time']['p99_ms']:.1f} ms) |")
    elif name == "chat":
        sat, half = r.get("saturation"), r.get("half_saturation")
        if not r.get("saturation") and r.get("steps"):  # fixed rates: report the last step
            half = r["steps"][-1]
        if half and not half.get("delivered"):
            half = None
        if sat:
            print(f"| chat saturation (1,000 users): delivered msgs/s | {sat['delivered_per_second']:,.0f} (p99 {sat['latency']['p99_ms']:.2f} ms) |")
        if half:
            e, o = half["server_cpu_seconds_per_100k"], half["other_cpu_seconds_per_100k"]
            g = half["generator_cpu_seconds"] * 100_000 / max(half["delivered"], 1)
            print(f"| chat at half saturation ({half['delivered_per_second']:,.0f}/s): p50 / p99 | {half['latency']['p50_ms']:.2f} / {half['latency']['p99_ms']:.2f} ms |")
            print(f"| server CPU s per 100k msgs (half sat.): edge + router = sum | {e:.2f} + {o:.2f} = {e + o:.2f} |")
            print(f"| generator CPU s per 100k msgs (half sat.) | {g:.2f} |")
        for st in r.get("steps", []):
            if st["lost"]:
                print(f"| chat step at {st['offered_rate']:,.0f}/s offered: lost | {st['lost']:,} of {st['offered']:,} |")
    if r.get("errors"):
        print(f"| {name}: errors | {r['errors']} |")
PY
[[ -f $OUT/noise.log ]] && log "WARNING: a compiler ran during the benchmark, see $OUT/noise.log"
log "results in $OUT"
