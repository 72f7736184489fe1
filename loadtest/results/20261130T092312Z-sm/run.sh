#!/usr/bin/env bash
# start_server LOGNAME: starts a fresh all-in-one server on 127.0.0.1:27222 (bench.sh's
# environment), sets PID. stop_server stops it.
ulimit -n "$(ulimit -Hn)"
W=/tmp/lt-sy
PORT=27222
start_server() {
  SWITCHYARD_DATA_DIR=$W/data SWITCHYARD_TLS__REQUIRED=false \
  SWITCHYARD_LISTEN__C2S=127.0.0.1:$PORT SWITCHYARD_LISTEN__C2S_DIRECT_TLS= \
  SWITCHYARD_ADMIN__LISTEN=127.0.0.1:0 \
  SWITCHYARD_TLS__CERT_PATH=$W/cert.pem SWITCHYARD_TLS__KEY_PATH=$W/key.pem \
  SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP=100000 RUST_LOG=warn \
    /tmp/lt-bin/switchyard serve >"$W/logs/$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.1; done
  echo "port never opened" >&2; return 1
}
stop_server() {
  kill -TERM "$PID"; for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$PID" 2>/dev/null || true; PID=""
}
