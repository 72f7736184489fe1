# Sourced by the Prosody scripts (tests/interop/prosody_import.sh and
# tests/fixtures/prosody-xep0227/regenerate.sh): the configuration of a private,
# loopback-only Prosody without TLS, s2s or HTTP.
#
# port_in_use PYTHON PORT: whether 127.0.0.1:PORT is taken (TIME_WAIT leftovers aside).
port_in_use() {
    "$1" - "$2" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

# stop_prosody PID [TENTHS]: ends the private Prosody if it still runs: TERM, up to TENTHS
# tenths of a second (50) for it to write its data and exit, then KILL.
stop_prosody() {
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 "${2:-50}"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# write_prosody_config FILE PURPOSE RUN DATA CERTS PORT VHOST MODULES [EXTRA]
#   MODULES: the modules_enabled entries after the common ones, e.g. '"mam";'
#   EXTRA:   more global lines (e.g. 'default_archive_policy = true')
write_prosody_config() {
    local file="$1" purpose="$2" run="$3" data="$4" certs="$5" port="$6" vhost="$7"
    local modules="$8" extra="${9:-}"
    cat > "$file" <<CONFIG
-- Private, loopback-only Prosody $purpose.
pidfile = "$run/prosody.pid"
data_path = "$data"
log = { debug = "$run/prosody.log" }
certificates = "$certs"  -- empty: no TLS, plaintext c2s on loopback
daemonize = false

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $port }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }

modules_enabled = {
    "disco"; "roster"; "saslauth"; "private"; "vcard"; "ping"; $modules
}
modules_disabled = { "s2s"; "s2s_auth_certs" }

authentication = "internal_hashed"
storage = "internal"
allow_registration = false
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = false
$extra

VirtualHost "$vhost"
CONFIG
}
