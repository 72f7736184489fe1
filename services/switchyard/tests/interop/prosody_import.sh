#!/usr/bin/env bash
# Interop, "and back": Prosody imports a Switchyard XEP-0227 export and the
# exported user logs in there.
#
# Usage: prosody_import.sh EXPORT_FILE VHOST USER PASSWORD PORT
#
#   EXPORT_FILE  written by `switchyard export FILE` (urn:xmpp:pie:0)
#   VHOST        the exported domain to import (the only VirtualHost of the
#                private Prosody)
#   USER         localpart that logs in afterwards; PASSWORD its password
#   PORT         a free loopback port below 32768 for Prosody's c2s
#
# Steps:
#   1. splits the export into one file per user, <user>@<VHOST>.xml, each a
#      complete <server-data><host><user/></host></server-data> document: the
#      layout Prosody's mod_storage_xep0227 reads (it opens
#      <data_path>/<user>@<host>.xml and takes the first <host>'s first
#      <user>; it never reads a multi-user file);
#   2. runs prosody-migrator, input xep0227 -> output internal (files) into a
#      temp data dir. The xep0227 driver reads from the migrator's compiled-in
#      data path (/var/lib/prosody), so the per-user files are bind-mounted
#      over it inside a private mount namespace: nothing outside the temp dir
#      changes. Stores: accounts, roster, vcard, private; the "offline" store
#      is probed separately (Prosody 0.12's driver has no handler for it);
#   3. starts a private Prosody: only VHOST, internal_hashed, c2s on
#      127.0.0.1:PORT without TLS (no certificates; SCRAM only, PLAIN is not
#      offered), no s2s, no HTTP;
#   4. logs in as USER with slixmpp (SCRAM-SHA-1), fetches the roster, the
#      vcard-temp vCard and private storage:bookmarks, sends initial presence
#      and collects offline messages and pending subscription requests that
#      Prosody delivers; then tries a wrong password.
#
# Prints one JSON object on stdout:
#   {"logged_in": true, "sasl_mechanism": "SCRAM-SHA-1",
#    "sasl_offered": [...], "roster": [{"jid", "subscription", "ask", "name",
#    "groups"}], "vcard_fn": ..., "bookmarks": [conference jids],
#    "offline": [bodies delivered at login], "offline_in_export": N,
#    "pending_subscriptions": [from jids], "wrong_password_refused": bool,
#    "errors": [...]}
#
# Exit status: 0 logged in; 1 something failed (reason on stderr); 2 usage;
# 3 prerequisites missing (prosody, prosody-migrator, mod_storage_xep0227,
# unshare, python with slixmpp): the caller decides whether that is a failure.
#
# Root is used for the private mount namespace and Prosody then runs as the
# "prosody" user (setpriv). Without root, `unshare --map-root-user` is tried
# instead and Prosody runs as the calling user.
#
# Environment:
#   SLIXMPP_PYTHON  python that can "import slixmpp"
#                   (default /tmp/switchyard-slixmpp-venv/bin/python)
#   KEEP_WORK=1     keep the temp dir (printed on stderr) for inspection
#
# Every wait is bounded; Prosody is stopped and the temp dir removed on exit.
set -euo pipefail

log() { printf '[prosody-import] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
missing() { log "missing prerequisite: $*"; exit 3; }

if [ $# -ne 5 ]; then
    echo "usage: $0 EXPORT_FILE VHOST USER PASSWORD PORT" >&2
    exit 2
fi
EXPORT_FILE="$1" VHOST="$2" LOGIN_USER="$3" LOGIN_PASSWORD="$4" PORT="$5"

[ -r "$EXPORT_FILE" ] || { log "cannot read $EXPORT_FILE"; exit 2; }
[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -lt 32768 ] \
    || { log "PORT must be a number from 1 to 32767"; exit 2; }
# VHOST ends up in Lua configuration strings and file names: keep it plain.
[[ "$VHOST" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] \
    || { log "VHOST '$VHOST' is not a plain host name"; exit 2; }
[ -n "$LOGIN_USER" ] || { log "USER is empty"; exit 2; }

# ---------------------------------------------------------------- prerequisites
command -v prosody >/dev/null 2>&1 || missing "prosody (Debian: apt-get install prosody)"
command -v prosody-migrator >/dev/null 2>&1 || missing "prosody-migrator (part of Debian's prosody package)"
PLUGIN_DIR="$(sed -n "s/^CFG_PLUGINDIR='\(.*\)';\$/\1/p" "$(command -v prosody-migrator)" | head -n1)"
PLUGIN_DIR="${PLUGIN_DIR:-/usr/lib/prosody/modules/}"
[ -f "$PLUGIN_DIR/mod_storage_xep0227.lua" ] \
    || missing "mod_storage_xep0227.lua (not in $PLUGIN_DIR)"
MIGRATOR_DATADIR="$(sed -n "s/^CFG_DATADIR='\(.*\)';\$/\1/p" "$(command -v prosody-migrator)" | head -n1)"
MIGRATOR_DATADIR="${MIGRATOR_DATADIR:-/var/lib/prosody}"
[ -d "$MIGRATOR_DATADIR" ] || missing "prosody-migrator's data directory $MIGRATOR_DATADIR"
command -v unshare >/dev/null 2>&1 || missing "unshare (util-linux)"
command -v timeout >/dev/null 2>&1 || missing "timeout (coreutils)"
command -v python3 >/dev/null 2>&1 || missing "python3"
PY="${SLIXMPP_PYTHON:-/tmp/switchyard-slixmpp-venv/bin/python}"
timeout 30 "$PY" -c 'import slixmpp' >/dev/null 2>&1 \
    || missing "a python with slixmpp at $PY (set SLIXMPP_PYTHON)"

AS_ROOT=""
if [ "$(id -u)" = 0 ]; then
    AS_ROOT=1
    command -v setpriv >/dev/null 2>&1 || missing "setpriv (util-linux)"
    id prosody >/dev/null 2>&1 || missing "the 'prosody' system user"
    UNSHARE=(unshare --mount --propagation private)
else
    UNSHARE=(unshare --map-root-user --mount --propagation private)
    timeout 10 "${UNSHARE[@]}" true 2>/dev/null \
        || missing "root, or unprivileged user namespaces for the migrator's private mount"
fi
PROSODY_VERSION="$(dpkg-query -W -f='${Version}' prosody 2>/dev/null || true)"
[ -n "$PROSODY_VERSION" ] || PROSODY_VERSION="$(timeout 20 prosodyctl about 2>/dev/null | sed -n 's/^Prosody *//p' | head -n1 || true)"
log "prosody ${PROSODY_VERSION:-unknown version}"

# shellcheck source=/dev/null
. "$(dirname "${BASH_SOURCE[0]}")/prosody_config.sh"
if port_in_use python3 "$PORT"; then die "127.0.0.1:$PORT is already in use"; fi

# ---------------------------------------------------------------- workspace
WORK="$(mktemp -d /tmp/prosody-import.XXXXXX)"
PROSODY_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$PROSODY_PID" ]; then stop_prosody "$PROSODY_PID"; fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 755 "$WORK"          # the migrator and Prosody drop to the prosody user
IN227="$WORK/xep0227"      # per-user XEP-0227 files, as the driver reads them
DATA="$WORK/data"          # Prosody's internal file storage (migrator output)
RUN="$WORK/run"            # pid file, logs
mkdir -p "$IN227" "$DATA" "$RUN" "$WORK/certs"
chmod 755 "$IN227" "$WORK/certs"
if [ -n "$AS_ROOT" ]; then chown prosody:prosody "$DATA" "$RUN"; fi

# ---------------------------------------------------------------- 1. split
log "splitting $EXPORT_FILE into per-user files for $VHOST"
timeout 60 python3 - "$EXPORT_FILE" "$VHOST" "$LOGIN_USER" "$IN227" "$WORK/export-facts.json" <<'EOF'
import json, os, sys
import xml.etree.ElementTree as ET

src, vhost, login_user, outdir, facts_path = sys.argv[1:6]
PIE = "urn:xmpp:pie:0"
XML_NS = "http://www.w3.org/XML/1998/namespace"

with open(src, "rb") as f:
    raw = f.read()
if b"<!DOCTYPE" in raw:
    # Prosody's parser aborts on a DOCTYPE; ours would expand entities.
    sys.exit("export has a DOCTYPE: refused")
root = ET.fromstring(raw)
if root.tag != f"{{{PIE}}}server-data":
    sys.exit(f"root element is {root.tag}, expected {{{PIE}}}server-data")


def split(tag):
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return ns, local
    return "", tag


def esc_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_attr(s):
    return (esc_text(s).replace("'", "&apos;").replace('"', "&quot;")
            .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))


def serialize(el, parent_ns, out):
    """Write el keeping every namespace: a default xmlns wherever the
    namespace changes (as Prosody itself writes), prefixes only for
    namespaced attributes. Comments and PIs are not kept (ElementTree drops
    them; Prosody's parser would abort on them)."""
    ns, local = split(el.tag)
    attrs = []
    if ns != parent_ns:
        attrs.append(("xmlns", ns))
    prefixes = {}
    for k, v in el.attrib.items():
        kns, kl = split(k)
        if kns == XML_NS:
            name = "xml:" + kl
        elif kns:
            p = prefixes.setdefault(kns, f"a{len(prefixes)}")
            name = f"{p}:{kl}"
        else:
            name = kl
        attrs.append((name, v))
    attrs += [(f"xmlns:{p}", uri) for uri, p in prefixes.items()]
    out.append("<" + local + "".join(f" {n}='{esc_attr(v)}'" for n, v in attrs))
    if len(el) == 0 and not el.text:
        out.append("/>")
    else:
        out.append(">")
        if el.text:
            out.append(esc_text(el.text))
        for child in el:
            serialize(child, ns, out)
            if child.tail:
                out.append(esc_text(child.tail))
        out.append(f"</{local}>")


hosts = [h for h in root.findall(f"{{{PIE}}}host") if h.get("jid") == vhost]
if not hosts:
    others = [h.get("jid") for h in root.findall(f"{{{PIE}}}host")]
    sys.exit(f"no <host jid='{vhost}'> in the export (hosts: {others})")

written, skipped, facts = [], [], {"users": [], "offline_in_export": 0}
for host in hosts:
    for user in host.findall(f"{{{PIE}}}user"):
        name = user.get("name") or ""
        if not name or "@" in name or "/" in name or name in (".", ".."):
            skipped.append(name)
            continue
        path = os.path.join(outdir, f"{name}@{vhost}.xml")
        if os.path.exists(path):
            sys.exit(f"user {name!r} appears twice in the export")
        out = [f"<server-data xmlns='{PIE}'><host jid='{esc_attr(vhost)}'>"]
        serialize(user, PIE, out)
        out.append("</host></server-data>\n")
        with open(path, "w", encoding="utf-8") as f:
            f.write("".join(out))
        os.chmod(path, 0o644)
        written.append(name)
        if name == login_user:
            for off in user.iter(f"{{{PIE}}}offline-messages"):
                facts["offline_in_export"] += len(off)
            facts["scram_mechanisms_in_export"] = [
                c.get("mechanism") for c in user.findall("{urn:xmpp:pie:0#scram}scram-credentials")]

facts["users"] = written
with open(facts_path, "w") as f:
    json.dump(facts, f)
print(f"wrote {len(written)} user file(s): {', '.join(written)}"
      + (f"; skipped unusable names: {skipped}" if skipped else ""), file=sys.stderr)
if login_user not in written:
    sys.exit(f"user {login_user!r} is not in the export for {vhost}")
EOF

# ---------------------------------------------------------------- 2. migrate
MCFG="$WORK/migrator.cfg.lua"
cat > "$MCFG" <<EOF
input {
    type = "xep0227";
    hosts = { ["$VHOST"] = { "accounts", "roster", "vcard", "private" } };
}
output {
    type = "internal";
    path = "$DATA";
}
offline_probe {
    type = "xep0227";
    hosts = { ["$VHOST"] = { "offline-archive" } };
}
EOF
chmod 644 "$MCFG"

# prosody-migrator FROM TO, with $IN227 mounted over the migrator's data dir.
migrate() {
    timeout 120 "${UNSHARE[@]}" bash -c '
        mount --bind "$1" "$2" && shift 2 && exec prosody-migrator "$@"
    ' _ "$IN227" "$MIGRATOR_DATADIR" --config "$MCFG" "$@"
}

log "importing with prosody-migrator (xep0227 -> internal)"
if ! migrate input output >"$WORK/migrator.log" 2>&1; then
    cat "$WORK/migrator.log" >&2
    die "prosody-migrator failed"
fi
# The driver only logs a warning (and skips the user's data) when a file does
# not parse or has no <user>: surface those lines, naming the user. Warnings
# right after "Migrating host ..." are expected: the migrator also reads
# host-wide data, <VHOST>.xml, which does not exist.
awk '/Migrating (host|user)/ { ctx = $0; sub(/.*Migrating /, "", ctx); next }
     /warn|error|Unable/ { if (ctx !~ /^host /) print "migrator, " ctx ": " $0 }' \
    "$WORK/migrator.log" >&2 || true

log "probing the offline store (Prosody 0.12's xep0227 driver has no handler for it)"
if migrate offline_probe output >"$WORK/offline-probe.log" 2>&1; then
    OFFLINE_STORE="imported"
else
    OFFLINE_STORE="$(grep -m1 -o 'unsupported-[a-z]*' "$WORK/offline-probe.log" || tail -n1 "$WORK/offline-probe.log")"
    log "offline store not importable: $OFFLINE_STORE"
fi

# Prosody's file names: every non-alphanumeric byte as %xx (util.datamanager).
enc() { python3 -c 'import re,sys; print(re.sub(rb"[^A-Za-z0-9]", lambda m: b"%%%02x" % m.group()[0], sys.argv[1].encode()).decode())' "$1"; }
ACCOUNT_FILE="$DATA/$(enc "$VHOST")/accounts/$(enc "$LOGIN_USER").dat"
if [ ! -f "$ACCOUNT_FILE" ]; then
    cat "$WORK/migrator.log" >&2
    die "no account for $LOGIN_USER@$VHOST after the import (expected $ACCOUNT_FILE; the xep0227 driver takes only <scram-credentials mechanism='SCRAM-SHA-1'> or a password attribute)"
fi
# Other users' accounts are not needed for the login but should be there too.
while IFS= read -r u; do
    [ -f "$DATA/$(enc "$VHOST")/accounts/$(enc "$u").dat" ] \
        || log "warning: no account for $u@$VHOST after the import (no SCRAM-SHA-1 credentials?)"
done < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["users"]))' "$WORK/export-facts.json")
if [ -n "$AS_ROOT" ]; then chown -R prosody:prosody "$DATA"; fi

# ---------------------------------------------------------------- 3. prosody
CFG="$WORK/prosody.cfg.lua"
write_prosody_config "$CFG" "importing a Switchyard export" "$RUN" "$DATA" "$WORK/certs" "$PORT" "$VHOST" '"offline";' ''
chmod 644 "$CFG"

log "starting prosody on 127.0.0.1:$PORT"
if [ -n "$AS_ROOT" ]; then
    setpriv --reuid=prosody --regid=prosody --init-groups \
        prosody --config "$CFG" -F >"$RUN/prosody.stdout" 2>&1 &
else
    prosody --config "$CFG" -F >"$RUN/prosody.stdout" 2>&1 &
fi
PROSODY_PID=$!

up=""
for _ in $(seq 1 150); do
    if ! kill -0 "$PROSODY_PID" 2>/dev/null; then
        cat "$RUN/prosody.stdout" >&2
        tail -n 20 "$RUN/prosody.log" >&2 2>/dev/null || true
        PROSODY_PID=""
        die "prosody exited during start-up"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
    sleep 0.1
done
[ -n "$up" ] || die "prosody did not open 127.0.0.1:$PORT within 15 s"

# ---------------------------------------------------------------- 4. log in
cat > "$WORK/login.py" <<'EOF'
import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

ADDR, PORT, HOST, USER, FACTS = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
PASSWORD = os.environ["LOGIN_PASSWORD"]
# The wrong-password attempt ends in "No appropriate login method." (logged
# as an error by slixmpp): expected, and reported in the JSON instead.
logging.getLogger("slixmpp.features.feature_mechanisms.mechanisms").setLevel(logging.CRITICAL)
BARE = f"{USER}@{HOST}"
with open(FACTS) as f:
    facts = json.load(f)

result = {
    "logged_in": False,
    "sasl_mechanism": None,
    "sasl_offered": [],
    "roster": [],
    "vcard_fn": None,
    "bookmarks": [],
    "offline": [],
    "offline_in_export": facts.get("offline_in_export", 0),
    "pending_subscriptions": [],
    "wrong_password_refused": None,
    "errors": [],
}


def client(password, resource):
    c = slixmpp.ClientXMPP(
        f"{BARE}/{resource}", password,
        plugin_config={"feature_mechanisms": {"unencrypted_scram": True,
                                              "use_mech": "SCRAM-SHA-1"}},
    )
    c.enable_plaintext = True   # loopback only, the server offers no TLS
    c.enable_starttls = False
    c.enable_direct_tls = False
    c.auto_authorize = None     # leave subscription requests unanswered
    c.auto_subscribe = False
    return c


async def connect(c):
    """'session', ('auth_failed', condition) or ('closed', why)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done(value):
        if not fut.done():
            fut.set_result(value)

    c.add_event_handler("session_start", lambda _: done("session"))
    c.add_event_handler("failed_auth", lambda st: done(("auth_failed", st["condition"])))
    c.add_event_handler("failed_all_auth", lambda *_: done(("auth_failed", "no mechanism left")))
    c.add_event_handler("connection_failed", lambda e: done(("closed", f"connection failed: {e}")))
    c.add_event_handler("disconnected", lambda *_: done(("closed", "disconnected")))
    c.connect(ADDR, PORT)
    try:
        return await asyncio.wait_for(fut, 20)
    except asyncio.TimeoutError:
        return ("closed", "no outcome within 20 s")


async def close(c):
    try:
        await asyncio.wait_for(c.disconnect(), 5)
    except Exception:
        c.abort()


async def iq(c, typ, xml):
    q = c.Iq()
    q["type"] = typ
    q.append(ET.fromstring(xml))
    return await q.send(timeout=10)


async def vcard(c):
    try:
        return await iq(c, "get", "<vCard xmlns='vcard-temp'/>")
    except IqError as e:
        if e.condition == "item-not-found":   # Prosody's answer for "no vCard"
            return None
        raise


async def step(name, coro):
    try:
        return await coro
    except Exception as e:  # keep going: report what could be fetched
        result["errors"].append(f"{name}: {type(e).__name__}: {e}")
        return None


async def main():
    c = client(PASSWORD, "import-check")
    offline, pending = [], []
    c.add_event_handler("message", lambda m: offline.append(m["body"]))
    c.add_event_handler("presence_subscribe", lambda p: pending.append(p["from"].bare))
    mechs = c.plugin["feature_mechanisms"]
    outcome = await connect(c)
    result["sasl_offered"] = sorted(getattr(mechs, "mech_list", []) or [])
    if outcome != "session":
        result["errors"].append(f"login as {BARE}: {outcome}")
        await close(c)
    else:
        result["logged_in"] = True
        result["sasl_mechanism"] = mechs.mech.name if mechs.mech else None

        res = await step("roster", iq(c, "get", "<query xmlns='jabber:iq:roster'/>"))
        if res is not None:
            for item in res.xml.iter("{jabber:iq:roster}item"):
                result["roster"].append({
                    "jid": item.get("jid"),
                    "subscription": item.get("subscription"),
                    "ask": item.get("ask"),
                    "name": item.get("name"),
                    "groups": [g.text for g in item.iter("{jabber:iq:roster}group")],
                })

        res = await step("vcard", vcard(c))
        if res is not None:
            fn = res.xml.find("{vcard-temp}vCard/{vcard-temp}FN")
            result["vcard_fn"] = fn.text if fn is not None else None

        res = await step("bookmarks", iq(
            c, "get",
            "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"))
        if res is not None:
            result["bookmarks"] = [
                conf.get("jid") for conf in
                res.xml.iter("{storage:bookmarks}conference")]

        # Initial presence: Prosody now delivers offline messages and
        # re-sends pending subscription requests.
        c.send_presence()
        await asyncio.sleep(2.0)
        result["offline"] = [b for b in offline if b]
        result["pending_subscriptions"] = sorted(set(pending))
        await close(c)

    # A wrong password must be refused.
    w = client(PASSWORD + "-wrong", "wrong")
    outcome = await connect(w)
    result["wrong_password_refused"] = isinstance(outcome, tuple) and outcome[0] == "auth_failed"
    if outcome == "session":
        result["errors"].append("a wrong password was accepted")
    await close(w)


asyncio.run(asyncio.wait_for(main(), 90))
print(json.dumps(result, ensure_ascii=False))
for e in result["errors"]:
    print(f"[prosody-import] {e}", file=sys.stderr)
sys.exit(0 if result["logged_in"] else 1)
EOF

log "logging in as $LOGIN_USER@$VHOST"
login_rc=0
LOGIN_PASSWORD="$LOGIN_PASSWORD" timeout 120 "$PY" "$WORK/login.py" \
    127.0.0.1 "$PORT" "$VHOST" "$LOGIN_USER" "$WORK/export-facts.json" || login_rc=$?
if [ "$login_rc" != 0 ]; then
    log "login check failed (exit $login_rc); last lines of Prosody's log:"
    grep -v $'\tdebug\t' "$RUN/prosody.log" 2>/dev/null | tail -n 20 >&2 || true
    exit 1
fi
log "done (prosody ${PROSODY_VERSION:-unknown}; offline store: $OFFLINE_STORE)"
