# Sourced by bench.sh: how to provision, start and stop each server under test, every one
# on 127.0.0.1 with its own port, plaintext c2s allowed (STARTTLS offered, not required),
# SCRAM credentials stored with 4096 PBKDF2 iterations, warnings-only logging and no
# traffic shaping. Each start_* sets PID (the server process, for /proc) and STOP.

# --- Switchyard -------------------------------------------------------------------------
sy_env() {
  export SWITCHYARD_DATA_DIR=$WORK/switchyard SWITCHYARD_TLS__REQUIRED=false \
    SWITCHYARD_LISTEN__C2S=127.0.0.1:${PORT[switchyard]} SWITCHYARD_LISTEN__C2S_DIRECT_TLS= SWITCHYARD_LISTEN__WEBSOCKET= \
    SWITCHYARD_TLS__CERT_PATH=$WORK/cert.pem SWITCHYARD_TLS__KEY_PATH=$WORK/key.pem \
    SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP=100000 RUST_LOG=warn
}
accounts_switchyard() {
  sy_env
  "$LT" provision --data-dir "$SWITCHYARD_DATA_DIR" --users "$ACCOUNTS" --password "$PASSWORD"
}
start_switchyard() {
  sy_env
  $SERVER_CPU "$BIN/switchyard" serve >>"$WORK/switchyard.log" 2>&1 &
  PID=$!; STOP="kill -TERM $PID"
  wait_port "${PORT[switchyard]}"
}

# --- ejabberd (Mnesia, internal auth with SCRAM-SHA-1 keys) ------------------------------
EJ=$WORK/ejabberd
ejctl() { ejabberdctl --config-dir "$EJ" --config "$EJ/ejabberd.yml" --ctl-config "$EJ/ejabberdctl.cfg" \
  --spool "$EJ/spool" --logs "$EJ/logs" --node ejabberd-bench@localhost "$@"; }
ejabberd_config() {
  mkdir -p "$EJ/spool" "$EJ/logs"
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$EJ/cert.pem"
  cp /etc/ejabberd/inetrc "$EJ/inetrc"
  cat > "$EJ/ejabberdctl.cfg" <<EOF
ERLANG_NODE=ejabberd-bench@localhost
ERL_MAX_PORTS=65536
INET_DIST_INTERFACE=127.0.0.1
EOF
  cat > "$EJ/ejabberd.yml" <<EOF
hosts: [localhost]
loglevel: warning
certfiles: ["$EJ/cert.pem"]
listen:
  - port: ${PORT[ejabberd]}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    max_stanza_size: 262144
    shaper: none
    access: all
    backlog: 1024
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha
registration_timeout: infinity
shaper_rules:
  max_user_sessions: 100
  c2s_shaper: none
access_rules:
  register: {allow: all}
modules:
  mod_roster: {}
  mod_register: {ip_access: all, access: register, welcome_message: {subject: "", body: ""}}
  mod_offline: {}
  mod_privacy: {}
  mod_blocking: {}
  mod_carboncopy: {}
  mod_disco: {}
  mod_ping: {}
EOF
  chown -R ejabberd:ejabberd "$EJ"
}
start_ejabberd() {
  ejabberd_config
  # Started as the ejabberd user (ejabberdctl would `su`, and PAM resets the open-file
  # limit to 1024); raise the limit again in that shell first.
  $SERVER_CPU runuser -u ejabberd -- sh -c "ulimit -n $(ulimit -n); exec ejabberdctl --config-dir $EJ \
    --config $EJ/ejabberd.yml --ctl-config $EJ/ejabberdctl.cfg --spool $EJ/spool --logs $EJ/logs \
    --node ejabberd-bench@localhost start"
  ejctl started
  PID=$(pgrep -u ejabberd -f 'beam.smp.*ejabberd-bench' | head -1)
  STOP="ejctl stop"
  wait_port "${PORT[ejabberd]}"
}
accounts_ejabberd() {
  start_ejabberd
  "$LT" register --server "127.0.0.1:${PORT[ejabberd]}" --transport plain --users "$ACCOUNTS" \
    --password "$PASSWORD" --sources "$SOURCES" --concurrency 20
  stop_server
}

# --- Prosody (internal_hashed, epoll backend) -------------------------------------------
PR=$WORK/prosody
prosody_config() {
  mkdir -p "$PR/data"
  cp "$WORK/cert.pem" "$WORK/key.pem" "$PR/"
  cat > "$PR/prosody.cfg.lua" <<EOF
daemonize = false
pidfile = "$PR/prosody.pid"
data_path = "$PR/data"
log = { warn = "$PR/prosody.log" }
network_backend = "epoll"
c2s_ports = { ${PORT[prosody]} }
c2s_interfaces = { "127.0.0.1" }
tcp_backlog = 1024
modules_disabled = { "s2s" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "register"; "offline";
  "blocklist"; "carbons"; "ping"; "posix" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
default_iteration_count = 4096
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
ssl = { certificate = "$PR/cert.pem"; key = "$PR/key.pem" }
VirtualHost "localhost"
EOF
  chown -R prosody:prosody "$PR"
}
start_prosody() {
  prosody_config
  # runuser/PAM resets the open-file limit to 1024; raise it again as the prosody user.
  $SERVER_CPU runuser -u prosody -- sh -c "ulimit -n $(ulimit -n); exec prosody --config $PR/prosody.cfg.lua" \
    >>"$PR/stdout.log" 2>&1 &
  wait_port "${PORT[prosody]}"
  PID=$(pgrep -u prosody -f "prosody --config $PR" | head -1)
  STOP="kill -TERM $PID"
}
accounts_prosody() {
  start_prosody
  "$LT" register --server "127.0.0.1:${PORT[prosody]}" --transport plain --users "$ACCOUNTS" \
    --password "$PASSWORD" --sources "$SOURCES" --concurrency 20
  stop_server
}
