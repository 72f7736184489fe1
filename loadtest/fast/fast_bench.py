#!/usr/bin/env python3
"""FAST (XEP-0484) reconnects against fresh SCRAM logins, same run, same server.

Starts its own Switchyard (fresh data directory, loopback ports), creates `--users`
accounts through the admin API, then:

1. setup (not in the medians): every user logs in once with SCRAM-SHA-256 over SASL2
   (XEP-0388) with the user-agent id `ua_fast[u]` and `<request-token/>` for
   HT-SHA-256-NONE, keeping the token; then once with that token (FAST), which moves the
   token from the holder's `new` slot to `current` (one write per user; reported as
   `fast_first_use`).
2. `--rounds` rounds, alternating SCRAM and FAST, SCRAM first:
   - SCRAM round: every user logs in with its password (SCRAM-SHA-256, a PBKDF2 of 4096
     iterations on the client each time unless `--cache-salted-password`), with Bind 2
     and, unless `--scram-no-token`, `<request-token/>` (what a FAST-capable client
     sends on a fresh login). It uses a second user-agent id `ua_scram[u]`, so the
     token it is issued replaces only that client's unused token and the FAST client's
     token stays `current`.
   - FAST round: every user logs in with HT-SHA-256-NONE and its `ua_fast[u]` token
     (the server's responder HMAC is checked) with Bind 2: the steady-state reconnect of
     a client whose token is in use (no rotation within a day with the default config).

A login is timed from the TCP connect to `<success/>` with `<bound/>` (so it includes the
TLS handshake, the stream header and features, and every SASL round trip); then the client
sends `</stream:stream>` and closes (the close is inside the round's wall time, not the
login time). `--concurrency` logins are in flight at once, unpaced, split over `--procs`
generator processes (each holds every `--procs`-th user and its tokens), since one Python
process tops out at one core.

Per round: logins/s (successful logins / wall time), login time p50/p90/p99/max, the
server's CPU (utime+stime of /proc/PID/stat) and the generator's (getrusage of every
generator process) per login,
and the machine's busy share (/proc/stat) so a saturated box is visible. The summary has
the median of each over the rounds of a mode and the FAST/SCRAM ratios.

Bounded everywhere: 10 s per login (`--login-timeout`), `--round-timeout` per round,
`--run-timeout` for the whole run, 30 s for the server to come up, 10 s for it to stop.
Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import math
import multiprocessing
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter

NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_FAST = "urn:xmpp:fast:0"
HT = "HT-SHA-256-NONE"
SCRAM = "SCRAM-SHA-256"
DOMAIN = "localhost"
PASSWORD = "pw12345678"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")

HEADER = (
    "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
).encode()
CLOSE = b"</stream:stream>"

RE_FEATURES_END = re.compile(rb"</stream:features>")
RE_STREAM_ERROR = re.compile(rb"<stream:error>\s*<([a-z-]+)")
RE_STREAM_END = re.compile(rb"</stream:stream>")
# The SASL2 answers; the server writes each as one element with its namespace.
RE_CHALLENGE = re.compile(rb"<challenge[^>]*>([^<]*)</challenge>")
RE_SUCCESS = re.compile(rb"<success[^>]*>(.*?)</success>", re.S)
RE_FAILURE = re.compile(rb"<failure[^>]*>\s*<([a-z-]+)")
RE_ADDITIONAL = re.compile(rb"<additional-data>([^<]*)</additional-data>")
RE_TOKEN = re.compile(rb"<token\b[^>]*\btoken=['\"]([^'\"]+)['\"]")
RE_AUTHZ = re.compile(rb"<authorization-identifier>([^<]*)</authorization-identifier>")


class LoginError(Exception):
    """A login that did not succeed; `kind` is what the report counts."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class User:
    def __init__(self, n: int):
        self.n = n
        self.name = f"user{n}"
        self.ua_fast = str(uuid.uuid4())
        self.ua_scram = str(uuid.uuid4())
        self.token: str | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64d(data: bytes) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except ValueError as exc:
        raise LoginError("bad-base64") from exc


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


class Conn:
    """One client connection: bytes in a buffer, searched with regexes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.buf = b""

    async def wait_for(self, *patterns: re.Pattern) -> tuple[int, re.Match]:
        """Reads until one of `patterns` matches (checked in order); consumes through it."""
        while True:
            for i, pat in enumerate(patterns):
                m = pat.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return i, m
            err = RE_STREAM_ERROR.search(self.buf)
            if err:
                raise LoginError("stream-error:" + err.group(1).decode())
            if RE_STREAM_END.search(self.buf):
                raise LoginError("stream-closed")
            data = await self.reader.read(65536)
            if not data:
                raise LoginError("eof")
            self.buf += data

    def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self, timeout: float) -> None:
        try:
            self.send(CLOSE)
            await asyncio.wait_for(self.writer.drain(), timeout)
        except Exception:
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), timeout)
        except Exception:
            pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.ssl_ctx: ssl.SSLContext | None = None
        self.salted_cache: dict[tuple[bytes, int], bytes] = {}

    # ---------------------------------------------------------------- one login

    async def open(self) -> Conn:
        a = self.args
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", a.tls_port, ssl=self.ssl_ctx, server_hostname=DOMAIN
            )
        except ssl.SSLError as exc:
            raise LoginError("tls-error:" + (exc.reason or "ssl")) from exc
        except OSError as exc:
            raise LoginError("connect-error:" + (os.strerror(exc.errno) if exc.errno else "oserror")) from exc
        conn = Conn(reader, writer)
        conn.send(HEADER)
        _, m = await conn.wait_for(RE_FEATURES_END)
        return conn

    def authenticate(self, mechanism: str, initial: bytes, ua: str, extra: str) -> str:
        return (
            f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
            f"<initial-response>{b64(initial)}</initial-response>"
            f"<user-agent id='{ua}'><software>fast_bench</software></user-agent>"
            f"<bind xmlns='{NS_BIND2}'><tag>bench</tag></bind>"
            f"{extra}</authenticate>"
        )

    async def await_outcome(self, conn: Conn) -> tuple[str, re.Match]:
        i, m = await conn.wait_for(RE_CHALLENGE, RE_SUCCESS, RE_FAILURE)
        if i == 2:
            raise LoginError("sasl-failure:" + m.group(1).decode())
        return ("challenge", "success")[i], m

    @staticmethod
    def check_success(body: bytes, user: User) -> None:
        if b"<bound" not in body:
            raise LoginError("no-bound")
        authz = RE_AUTHZ.search(body)
        if not authz or not authz.group(1).startswith(f"{user.name}@{DOMAIN}/".encode()):
            raise LoginError("bad-authorization-identifier")

    async def scram_login(self, user: User, ua: str, request_token: bool) -> Conn:
        conn = await self.open()
        try:
            nonce = secrets.token_urlsafe(18)
            bare = f"n={user.name},r={nonce}"
            extra = (
                f"<request-token xmlns='{NS_FAST}' mechanism='{HT}'/>" if request_token else ""
            )
            conn.send(self.authenticate(SCRAM, ("n,," + bare).encode(), ua, extra))
            kind, m = await self.await_outcome(conn)
            if kind != "challenge":
                raise LoginError("no-challenge")
            server_first = b64d(m.group(1)).decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            if not attrs.get("r", "").startswith(nonce):
                raise LoginError("bad-server-nonce")
            salt = base64.b64decode(attrs["s"])
            iters = int(attrs["i"])
            key = (salt, iters)
            salted = self.salted_cache.get(key) if self.args.cache_salted_password else None
            if salted is None:
                salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, iters)
                if self.args.cache_salted_password:
                    self.salted_cache[key] = salted
            client_key = hmac.digest(salted, b"Client Key", "sha256")
            stored_key = hashlib.sha256(client_key).digest()
            without_proof = f"c=biws,r={attrs['r']}"
            auth_msg = f"{bare},{server_first},{without_proof}".encode()
            sig = hmac.digest(stored_key, auth_msg, "sha256")
            proof = bytes(x ^ y for x, y in zip(client_key, sig))
            final = f"{without_proof},p={b64(proof)}"
            conn.send(f"<response xmlns='{NS_SASL2}'>{b64(final.encode())}</response>")
            kind, m = await self.await_outcome(conn)
            if kind != "success":
                raise LoginError("unexpected-challenge")
            body = m.group(1)
            add = RE_ADDITIONAL.search(body)
            server_key = hmac.digest(salted, b"Server Key", "sha256")
            want = "v=" + b64(hmac.digest(server_key, auth_msg, "sha256"))
            if not add or b64d(add.group(1)).decode() != want:
                raise LoginError("bad-server-signature")
            self.check_success(body, user)
            if request_token:
                tok = RE_TOKEN.search(body)
                if not tok:
                    raise LoginError("no-token")
                if ua == user.ua_fast:
                    user.token = tok.group(1).decode()
            return conn
        except BaseException:
            conn.abort()
            raise

    async def fast_login(self, user: User) -> Conn:
        if not user.token:
            raise LoginError("no-token-held")
        conn = await self.open()
        try:
            key = user.token.encode()
            initial = user.name.encode() + b"\0" + hmac.digest(key, b"Initiator", "sha256")
            conn.send(self.authenticate(HT, initial, user.ua_fast, f"<fast xmlns='{NS_FAST}'/>"))
            kind, m = await self.await_outcome(conn)
            if kind != "success":
                raise LoginError("unexpected-challenge")
            body = m.group(1)
            add = RE_ADDITIONAL.search(body)
            if not add or b64d(add.group(1)) != hmac.digest(key, b"Responder", "sha256"):
                raise LoginError("bad-responder")
            self.check_success(body, user)
            tok = RE_TOKEN.search(body)
            if tok:  # rotation (not expected within a day); keep the new token
                user.token = tok.group(1).decode()
                self.rotations += 1
            return conn
        except BaseException:
            conn.abort()
            raise

    # ---------------------------------------------------------------- one round

    async def client_round(self, mode: str, users: list[User], concurrency: int) -> dict:
        """One generator process's part of a round: its users, its share of in-flight."""
        a = self.args
        latencies: list[float] = []
        errors: Counter = Counter()
        if mode == "fast":
            users = [u for u in users if u.token]
        queue = list(reversed(users))
        attempted = len(users)

        def login(user: User):
            if mode == "fast":
                return self.fast_login(user)
            if mode == "scram-setup":
                return self.scram_login(user, user.ua_fast, True)
            return self.scram_login(user, user.ua_scram, not a.scram_no_token)

        async def worker() -> None:
            while queue:
                user = queue.pop()
                t0 = time.perf_counter()
                try:
                    conn = await asyncio.wait_for(login(user), a.login_timeout)
                    latencies.append(time.perf_counter() - t0)
                    # </stream:stream> and close: bounded (2 s + 2 s), not in the login time.
                    await conn.close(2.0)
                except LoginError as exc:
                    errors[exc.kind] += 1
                except asyncio.TimeoutError:
                    errors["login-timeout"] += 1
                except Exception as exc:  # noqa: BLE001 - counted, never fatal
                    errors["exception:" + type(exc).__name__] += 1

        self.rotations = 0
        tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
        _, pending = await asyncio.wait(tasks, timeout=a.round_timeout)
        for t in pending:
            t.cancel()
        if pending:
            errors["round-timeout"] += len(queue) + len(pending)
            await asyncio.wait(pending, timeout=5)
        return {
            "attempted": attempted,
            "latencies": latencies,
            "errors": dict(errors),
            "rotations": self.rotations,
            "holders": sum(1 for u in users if u.token),
        }

    def round(self, mode: str) -> dict:
        """One round over every generator process; the server measured around it."""
        a = self.args
        srv0, gen0, mach0 = self.server_cpu(), gen_cpu(), machine_cpu()
        t0 = time.perf_counter()
        for c in self.children:
            c.send(("round", mode))
        parts = []
        for c in self.children:
            if not c.poll(a.round_timeout + 30):
                raise RuntimeError("a generator process did not answer")
            parts.append(c.recv())
        wall = time.perf_counter() - t0
        srv1, gen1, mach1 = self.server_cpu(), gen_cpu(), machine_cpu()
        gen = (gen1 - gen0) + sum(p["gen_cpu_s"] for p in parts)
        srv = srv1 - srv0
        latencies = [x for p in parts for x in p["latencies"]]
        errors: Counter = Counter()
        for p in parts:
            errors.update(p["errors"])
        ok = len(latencies)
        lat = sorted(latencies)
        busy_jiffies = mach1[0] - mach0[0]
        busy = busy_jiffies / max(1, mach1[1] - mach0[1])
        r = {
            "mode": mode,
            "attempted": sum(p["attempted"] for p in parts),
            "ok": ok,
            "errors": dict(errors),
            "wall_s": round(wall, 4),
            "logins_per_s": round(ok / wall, 1) if wall > 0 else 0,
            "login_ms": {
                "p50": pct(lat, 50),
                "p90": pct(lat, 90),
                "p99": pct(lat, 99),
                "max": round(lat[-1] * 1000, 2) if lat else None,
            },
            "server_cpu_s": round(srv, 3),
            "server_cpu_ms_per_login": round(srv * 1000 / ok, 3) if ok else None,
            "generator_cpu_s": round(gen, 3),
            "generator_cpu_ms_per_login": round(gen * 1000 / ok, 3) if ok else None,
            "machine_busy_pct": round(100 * busy, 1),
            "server_cores_used": round(srv / wall, 2) if wall > 0 else None,
            "generator_cores_used": round(gen / wall, 2) if wall > 0 else None,
            # Busy CPU of everything else on the machine (other processes, kernel
            # threads): should be near 0; more means the round was disturbed.
            "other_cores_used": round(
                max(0.0, busy_jiffies / CLK_TCK - srv - gen) / wall, 2
            ) if wall > 0 else None,
            "token_holders": sum(p["holders"] for p in parts),
        }
        if mode == "fast":
            r["token_rotations"] = sum(p["rotations"] for p in parts)
        return r

    # ---------------------------------------------------------------- server

    def server_cpu(self) -> float:
        with open(f"/proc/{self.server.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime, stime are fields 14, 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def start_server(self) -> None:
        a = self.args
        self.run_dir = tempfile.mkdtemp(prefix="run-", dir=a.work_dir)
        data = os.path.join(self.run_dir, "data")
        cfg = os.path.join(self.run_dir, "switchyard.toml")
        with open(cfg, "w") as f:
            f.write(
                f'domains = ["{DOMAIN}"]\n'
                f'data_dir = "{data}"\n'
                "[listen]\n"
                'c2s = ""\n'
                f'c2s_direct_tls = "127.0.0.1:{a.tls_port}"\n'
                'websocket = ""\n'
                "[admin]\n"
                f'listen = "127.0.0.1:{a.admin_port}"\n'
                f'token = "{ADMIN_TOKEN}"\n'
                "[limits]\n"
                "max_connections_per_ip = 100000\n"
                "max_concurrent_handshakes_per_ip = 1000\n"
                "[auth]\n"
                "max_failures_per_network = 100000\n"
                "[timeouts]\n"
                "drain_delay_secs = 0\n"
            )
        self.config_path = cfg
        check = subprocess.run(
            [a.server_bin, "-c", cfg, "check-config"], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            sys.exit(f"check-config failed:\n{check.stdout}{check.stderr}")
        env = dict(os.environ, RUST_LOG=a.rust_log)
        self.server_log = open(os.path.join(self.run_dir, "server.log"), "wb")
        self.server = subprocess.Popen(
            [a.server_bin, "-c", cfg, "serve"],
            stdout=self.server_log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.server.poll() is not None:
                sys.exit(f"server exited with {self.server.returncode}; log in {self.run_dir}/server.log")
            try:
                status, _ = self.admin("GET", "/readyz")
                cert = os.path.join(data, "dev-cert.pem")
                if status == 200 and os.path.exists(cert) and port_open(a.tls_port):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop_server()
                sys.exit("server not ready within 30 s")
            time.sleep(0.2)
        self.cert = cert

    def make_ssl(self, cert: str) -> None:
        if self.args.insecure:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=cert)
        self.ssl_ctx = ctx

    def stop_server(self) -> None:
        srv = getattr(self, "server", None)
        if srv is None or srv.poll() is not None:
            return
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=15)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait(timeout=5)

    def admin(self, method: str, path: str, body: dict | None = None, conn=None):
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.args.admin_port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            payload = None
            if body is not None:
                payload = json.dumps(body)
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            if own:
                conn.close()

    def create_users(self, n: int) -> float:
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.args.admin_port, timeout=10)
        deadline = time.monotonic() + max(60, n * 0.1)
        for i in range(n):
            for attempt in range(3):
                if time.monotonic() > deadline:
                    sys.exit("account creation took too long")
                try:
                    status, text = self.admin(
                        "POST", "/api/v1/users",
                        {"jid": f"user{i}@{DOMAIN}", "password": PASSWORD}, conn,
                    )
                    if status not in (200, 201):
                        sys.exit(f"creating user{i}: {status} {text}")
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.args.admin_port, timeout=10)
            else:
                sys.exit(f"creating user{i}: admin API unreachable")
        conn.close()
        return time.perf_counter() - t0

    # ---------------------------------------------------------------- run

    def start_children(self) -> None:
        """`--procs` generator processes, each with every `--procs`-th user."""
        a = self.args
        ctx = multiprocessing.get_context("fork")
        self.children, self.procs = [], []
        for k in range(a.procs):
            ids = list(range(k, a.users, a.procs))
            conc = a.concurrency // a.procs + (1 if k < a.concurrency % a.procs else 0)
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=child_main, args=(child_end, a, self.cert, ids, conc), daemon=True)
            proc.start()
            child_end.close()
            self.children.append(parent_end)
            self.procs.append(proc)

    def stop_children(self) -> None:
        for c in getattr(self, "children", []):
            try:
                c.send(("stop",))
            except OSError:
                pass
        for proc in getattr(self, "procs", []):
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)

    def run(self) -> dict:
        a = self.args
        deadline = time.monotonic() + a.run_timeout
        out: dict = {"setup": {}, "rounds": []}
        log(f"creating {a.users} accounts through the admin API")
        out["setup"]["account_creation_s"] = round(self.create_users(a.users), 2)
        self.start_children()

        log("setup: SCRAM login with request-token per user (FAST client id)")
        setup = self.round("scram-setup")
        out["setup"]["scram_with_token"] = setup
        log(summary_line(setup))
        if setup["token_holders"] < a.users:
            log(f"WARNING: only {setup['token_holders']} of {a.users} users hold a token")
        log("setup: first FAST login per user (token new -> current, one write each)")
        first = self.round("fast")
        out["setup"]["fast_first_use"] = first
        log(summary_line(first))

        for i in range(a.rounds):
            if time.monotonic() > deadline:
                log("run timeout reached: no more rounds")
                out["run_timeout_reached"] = True
                break
            mode = "scram" if i % 2 == 0 else "fast"
            r = self.round(mode)
            r["round"] = i + 1
            out["rounds"].append(r)
            log(f"round {i + 1}: " + summary_line(r))
            time.sleep(a.pause)

        status, text = self.admin("GET", f"/api/v1/users/user0@{DOMAIN}/fast-tokens")
        out["setup"]["user0_fast_tokens_after"] = {"status": status, "body": safe_json(text)}
        return out


def child_main(conn, args, cert: str, ids: list[int], concurrency: int) -> None:
    """A generator process: runs its part of each round the parent asks for."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    bench = Bench(args)
    bench.make_ssl(cert)
    users = [User(i) for i in ids]
    while conn.poll(args.run_timeout):
        cmd = conn.recv()
        if cmd[0] != "round":
            break
        g0 = gen_cpu()
        res = asyncio.run(bench.client_round(cmd[1], users, concurrency))
        res["gen_cpu_s"] = gen_cpu() - g0
        conn.send(res)


# -------------------------------------------------------------------- helpers


def gen_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pct(sorted_s: list[float], p: float) -> float | None:
    if not sorted_s:
        return None
    k = min(len(sorted_s) - 1, max(0, math.ceil(p / 100 * len(sorted_s)) - 1))
    return round(sorted_s[k] * 1000, 2)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def safe_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def summary_line(r: dict) -> str:
    return (
        f"{r['mode']:<11} ok {r['ok']}/{r['attempted']} {r['logins_per_s']:>8.1f}/s "
        f"p50 {r['login_ms']['p50']} ms p99 {r['login_ms']['p99']} ms "
        f"server {r['server_cpu_ms_per_login']} ms/login "
        f"gen {r['generator_cpu_ms_per_login']} ms/login "
        f"machine {r['machine_busy_pct']}% other {r['other_cores_used']} errors {r['errors'] or '-'}"
    )


def median_of(rounds: list[dict], get) -> float | None:
    vals = [get(r) for r in rounds]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


METRICS = {
    "logins_per_s": lambda r: r["logins_per_s"],
    "login_p50_ms": lambda r: r["login_ms"]["p50"],
    "login_p99_ms": lambda r: r["login_ms"]["p99"],
    "server_cpu_ms_per_login": lambda r: r["server_cpu_ms_per_login"],
    "generator_cpu_ms_per_login": lambda r: r["generator_cpu_ms_per_login"],
    "machine_busy_pct": lambda r: r["machine_busy_pct"],
    "server_cores_used": lambda r: r["server_cores_used"],
    "generator_cores_used": lambda r: r["generator_cores_used"],
    "other_cores_used": lambda r: r["other_cores_used"],
}


def summarize(rounds: list[dict]) -> dict:
    out: dict = {}
    for mode in ("scram", "fast"):
        rs = [r for r in rounds if r["mode"] == mode]
        out[mode] = {k: median_of(rs, f) for k, f in METRICS.items()}
        out[mode]["rounds"] = len(rs)
        out[mode]["ok"] = sum(r["ok"] for r in rs)
        out[mode]["attempted"] = sum(r["attempted"] for r in rs)
        errs: Counter = Counter()
        for r in rs:
            errs.update(r["errors"])
        out[mode]["errors"] = dict(errs)
    s, f = out["scram"], out["fast"]

    def ratio(k):
        return round(f[k] / s[k], 3) if f.get(k) and s.get(k) else None

    out["fast_over_scram"] = {
        k: ratio(k)
        for k in ("logins_per_s", "login_p50_ms", "login_p99_ms",
                  "server_cpu_ms_per_login", "generator_cpu_ms_per_login")
    }
    return out


def table(summary: dict) -> str:
    rows = [
        ("logins/s", "logins_per_s"),
        ("login p50 (ms)", "login_p50_ms"),
        ("login p99 (ms)", "login_p99_ms"),
        ("server CPU ms/login", "server_cpu_ms_per_login"),
        ("generator CPU ms/login", "generator_cpu_ms_per_login"),
        ("server cores used", "server_cores_used"),
        ("generator cores used", "generator_cores_used"),
        ("machine busy % (2 cores = 100)", "machine_busy_pct"),
        ("other processes, cores", "other_cores_used"),
    ]
    lines = ["| median over rounds | SCRAM-SHA-256 | FAST HT-SHA-256-NONE | FAST / SCRAM |",
             "| --- | ---: | ---: | ---: |"]
    for label, k in rows:
        s, f = summary["scram"].get(k), summary["fast"].get(k)
        r = summary["fast_over_scram"].get(k)
        if r is None and s and f:
            r = round(f / s, 3)
        lines.append(f"| {label} | {s} | {f} | {r if r is not None else ''} |")
    lines.append(
        f"| logins ok / attempted | {summary['scram']['ok']}/{summary['scram']['attempted']} "
        f"| {summary['fast']['ok']}/{summary['fast']['attempted']} | |"
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-bin", required=True)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=50, help="logins in flight, all processes together")
    p.add_argument("--procs", type=int, default=1, help="generator processes (users and concurrency split)")
    p.add_argument("--rounds", type=int, default=6, help="alternating SCRAM, FAST, SCRAM, ... (even)")
    p.add_argument("--json-out")
    p.add_argument("--work-dir", default="/tmp/fastbench", help="each run gets a fresh run-* dir here")
    p.add_argument("--tls-port", type=int, default=26223)
    p.add_argument("--admin-port", type=int, default=26280)
    p.add_argument("--login-timeout", type=float, default=10.0)
    p.add_argument("--round-timeout", type=float, default=300.0)
    p.add_argument("--run-timeout", type=float, default=1500.0)
    p.add_argument("--pause", type=float, default=1.0, help="seconds between rounds")
    p.add_argument("--rust-log", default="warn")
    p.add_argument("--scram-no-token", action="store_true",
                   help="SCRAM rounds without <request-token/> (plain password logins)")
    p.add_argument("--cache-salted-password", action="store_true",
                   help="client keeps SaltedPassword per salt (no PBKDF2 per login)")
    p.add_argument("--insecure", action="store_true", help="do not verify the dev certificate")
    p.add_argument("--keep-data", action="store_true")
    a = p.parse_args()
    if not 1 <= a.procs <= max(1, a.concurrency) or a.users < 1 or a.rounds < 0:
        sys.exit("need users >= 1, rounds >= 0 and 1 <= procs <= concurrency")
    for port in (a.tls_port, a.admin_port):
        if not 1024 <= port < 32768:
            sys.exit("ports must be in 1024..32767")
        if port_open(port):
            sys.exit(f"port {port} is already in use")
    os.makedirs(a.work_dir, exist_ok=True)

    bench = Bench(a)
    a.login_timeout = min(a.login_timeout, 10.0) if a.login_timeout > 0 else 10.0
    started = time.time()
    bench.start_server()
    log(f"server pid {bench.server.pid}, run dir {bench.run_dir}")
    try:
        out = bench.run()
    finally:
        bench.stop_children()
        bench.stop_server()
        log(f"server stopped (exit {bench.server.returncode})")
    try:
        with open(os.path.join(bench.run_dir, "server.log"), errors="replace") as f:
            server_log_tail = f.read()[-4000:]
    except OSError:
        server_log_tail = ""
    if not a.keep_data:
        shutil.rmtree(os.path.join(bench.run_dir, "data"), ignore_errors=True)

    out["summary"] = summarize(out["rounds"])
    out["table_md"] = table(out["summary"])
    out["params"] = {k: v for k, v in vars(a).items()}
    out["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "kernel": os.uname().release,
        "note": "generator and server share the same cores (loopback)",
    }
    out["server_log_tail"] = server_log_tail
    out["started_unix"] = started
    out["duration_s"] = round(time.time() - started, 1)
    text = json.dumps(out, indent=2)
    if a.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(a.json_out)), exist_ok=True)
        with open(a.json_out, "w") as f:
            f.write(text + "\n")
    print(out["table_md"])


if __name__ == "__main__":
    main()
