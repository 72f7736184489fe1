#!/usr/bin/env python3
"""Server memory per idle session by transport: direct TLS over TCP, WebSocket (wss) and
BOSH (https), each with and without XEP-0198 stream management.

For every round and every kind it starts a fresh `switchyard serve` (loopback ports, the
given data directory, which must already hold the accounts: `switchyard-loadtest
provision`), waits until it listens and has been quiet for `--baseline-secs`, reads its
RSS, starts the kind's generator (`switchyard-loadtest idle` for TCP, `ws_idle.py`,
`bosh_idle.py`), and once the generator reports "N of M sessions up" waits `--settle-secs`
and reads the RSS again: KiB per session = (after - before) / sessions held. It then lets
the generator close its sessions, reads the RSS `--settle-secs` later (does memory come
back?), and stops the server (SIGTERM, SIGKILL after `--stop-timeout-secs`). Every kind
uses the same method and settle time, so the figures compare. With `--same-server` the
kinds run one after the other on one server per round instead. The server's session and
connection gauges (admin `/metrics`) are recorded before, during and after each kind.

    python idle_mem_bench.py --server-bin ./switchyard --loadtest-bin ./switchyard-loadtest \\
        --data-dir data --password pw -n 2000 --rounds 3 --json results.json

Kinds (`--kinds`): tls, tls-sm, starttls, starttls-sm, ws, ws-sm, bosh, bosh-sm.
Prints a table of medians; `--json FILE` writes every round's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

# Shared with the generators; the script's own folder is first on sys.path.
from idle_common import established, raise_nofile, rss_kib

HERE = os.path.dirname(os.path.abspath(__file__))
UP_LINE = re.compile(r"^(\d+) of (\d+) sessions up after ([\d.]+) s")
KINDS = ("tls", "tls-sm", "starttls", "starttls-sm", "ws", "ws-sm", "bosh", "bosh-sm")


def server_gauges(admin_port: int) -> dict | None:
    """Sessions, detached SM sessions and connections from the admin /metrics endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {"sessions": 0, "sm_detached": 0, "connections": 0}
    for line in text.splitlines():
        if line.startswith("switchyard_edge_sessions "):
            out["sessions"] = int(float(line.split()[-1]))
        elif line.startswith("switchyard_edge_sm_detached_sessions "):
            out["sm_detached"] = int(float(line.split()[-1]))
        elif line.startswith("switchyard_edge_connections{"):
            out["connections"] += int(float(line.split()[-1]))
    return out


def wait_listening(ports: list[int], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before listening")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not listening on {port} after {timeout} s")
                time.sleep(0.2)


class Server:
    """One fresh server process."""

    def __init__(self, args, log_path: str):
        env = dict(os.environ)
        env.update({
            "SWITCHYARD_DATA_DIR": args.data_dir,
            "SWITCHYARD_LISTEN__C2S": f"127.0.0.1:{args.port_starttls}",
            "SWITCHYARD_LISTEN__C2S_DIRECT_TLS": f"127.0.0.1:{args.port_tls}",
            "SWITCHYARD_LISTEN__WEBSOCKET": f"127.0.0.1:{args.port_web}",
            "SWITCHYARD_ADMIN__LISTEN": f"127.0.0.1:{args.port_admin}",
            "SWITCHYARD_LIMITS__MAX_CONNECTIONS_PER_IP": "100000",
            "SWITCHYARD_LIMITS__MAX_CONCURRENT_HANDSHAKES_PER_IP": "1000",
            # Shutdown only: the measurement is over by then.
            "SWITCHYARD_TIMEOUTS__DRAIN_DELAY_SECS": "0",
            "SWITCHYARD_TIMEOUTS__SHUTDOWN_GRACE_SECS": "2",
            "RUST_LOG": args.rust_log,
        })
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([args.server_bin, "serve"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=raise_nofile)
        self.pid = self.proc.pid
        wait_listening([args.port_starttls, args.port_tls, args.port_web], self.proc,
                       args.start_timeout_secs)

    def stop(self, timeout: float) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                how = "sigterm"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                how = "sigkill"
        else:
            how = f"already-exited:{self.proc.returncode}"
        self.log.close()
        return how


def generator_cmd(args, kind: str, server_pid: int, hold: float) -> tuple[list[str], int]:
    """The generator's command line and the server port it uses."""
    sm = kind.endswith("-sm")
    base = kind.removesuffix("-sm")
    n = str(args.sessions)
    if base in ("tls", "starttls"):
        port = args.port_tls if base == "tls" else args.port_starttls
        cmd = [args.loadtest_bin, "idle", "--server", f"127.0.0.1:{port}", "--transport", base,
               "--password", args.password, "--users", n, "-n", n,
               "--arrival-rate", str(args.arrival_rate), "--concurrency", str(args.concurrency),
               "--login-timeout-secs", str(int(args.login_timeout_secs)),
               "--duration-secs", str(int(hold)), "--server-pid", str(server_pid), "--json",
               "--quiet"]
        return cmd + (["--sm"] if sm else []), port
    script, url = {
        "ws": ("ws_idle.py", f"wss://localhost:{args.port_web}/xmpp-websocket"),
        "bosh": ("bosh_idle.py", f"https://localhost:{args.port_web}/http-bind"),
    }[base]
    cmd = [args.python, os.path.join(HERE, script), "--url", url,
           "--cafile", os.path.join(args.data_dir, "dev-cert.pem"), "--password", args.password,
           "-n", n, "--concurrency", str(args.concurrency),
           "--login-timeout-secs", str(args.login_timeout_secs),
           "--hold-secs", str(hold), "--server-pid", str(server_pid), "--json", "--quiet"]
    return cmd + (["--sm"] if sm else []), args.port_web


def run_kind(args, kind: str, rnd: int, shared: Server | None = None) -> dict:
    """One kind: on a fresh server, or on `shared` (left running) with --same-server."""
    log = os.path.join(args.work_dir, f"server-{kind}-r{rnd}.log")
    server = shared or Server(args, log)
    rec: dict = {"kind": kind, "round": rnd, "server_pid": server.pid, "sessions": args.sessions,
                 "same_server": shared is not None}
    try:
        time.sleep(args.baseline_secs)
        rec["gauges_before"] = server_gauges(args.port_admin)
        rec["rss_start_kib"] = rss_kib(server.pid)
        # The generator holds past the settle, so the reading is taken with all sessions up.
        hold = args.settle_secs + 8
        cmd, port = generator_cmd(args, kind, server.pid, hold)
        rec["command"] = " ".join(cmd)
        before = rss_kib(server.pid)
        t0 = time.monotonic()
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        stderr_lines: list[str] = []
        up = threading.Event()
        up_info: dict = {}

        def read_stderr() -> None:
            for line in gen.stderr:
                stderr_lines.append(line.rstrip())
                m = UP_LINE.match(line)
                if m and not up.is_set():
                    up_info.update(up=int(m[1]), of=int(m[2]), secs=float(m[3]))
                    up.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        ramp_bound = 60 + 0.05 * args.sessions + 30
        if not up.wait(ramp_bound):
            gen.kill()
            raise RuntimeError(f"{kind}: no 'sessions up' line within {ramp_bound:.0f} s")
        rec["up"] = up_info
        samples = []
        t_up = time.monotonic()
        while time.monotonic() - t_up < args.settle_secs:
            time.sleep(1)
            samples.append(rss_kib(server.pid))
        after = rss_kib(server.pid)
        rec["connections_at_after"] = established(port)
        rec["gauges_after"] = server_gauges(args.port_admin)
        try:
            out, _ = gen.communicate(timeout=hold + 60)
        except subprocess.TimeoutExpired:
            gen.kill()
            out, _ = gen.communicate(timeout=10)
            rec["generator_killed"] = True
        reader.join(5)
        rec["generator_rc"] = gen.returncode
        try:
            rec["generator"] = json.loads(out)
        except json.JSONDecodeError:
            rec["generator"] = None
            rec["generator_stdout_tail"] = out[-2000:]
        rec["generator_stderr_tail"] = stderr_lines[-5:]
        held = up_info["up"]
        g = rec["generator"] or {}
        if g.get("idle", {}).get("sessions_held") is not None:
            held = min(held, g["idle"]["sessions_held"])
        rec["rss_before_kib"] = before
        rec["rss_after_kib"] = after
        rec["rss_settle_samples_kib"] = samples
        rec["sessions_held"] = held
        rec["kib_per_session"] = round((after - before) / held, 2) if held else None
        rec["generator_kib_per_session"] = g.get("idle", {}).get("kib_per_session")
        rec["errors"] = g.get("errors")
        time.sleep(args.settle_secs)
        rec["rss_after_close_kib"] = rss_kib(server.pid)
        rec["connections_after_close"] = established(port)
        rec["gauges_after_close"] = server_gauges(args.port_admin)
        rec["wall_seconds"] = round(time.monotonic() - t0, 1)
    finally:
        if shared is None:
            rec["server_stop"] = server.stop(args.stop_timeout_secs)
            with open(log) as f:
                rec["server_log_warnings"] = [l.rstrip() for l in f
                                              if " WARN " in l or " ERROR " in l][-10:]
    return rec


def table(records: list[dict], kinds: list[str]) -> str:
    rows = ["| kind | KiB/session (median) | per round | held (min) | "
            "RSS after close - before (KiB, median) | errors |",
            "| --- | ---: | --- | ---: | ---: | --- |"]
    for kind in kinds:
        rs = [r for r in records if r["kind"] == kind and r.get("kib_per_session") is not None]
        if not rs:
            rows.append(f"| {kind} | n/a | | | | failed |")
            continue
        per = [r["kib_per_session"] for r in rs]
        back = [r["rss_after_close_kib"] - r["rss_before_kib"] for r in rs]
        errs: dict = {}
        for r in rs:
            for k, v in (r.get("errors") or {}).items():
                errs[k] = errs.get(k, 0) + v
        rows.append(f"| {kind} | {statistics.median(per):.1f} | "
                    f"{', '.join(f'{p:.1f}' for p in per)} | {min(r['sessions_held'] for r in rs)} | "
                    f"{statistics.median(back):.0f} | {errs or 'none'} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-bin", default=os.path.join(HERE, "switchyard"))
    p.add_argument("--loadtest-bin", default=os.path.join(HERE, "switchyard-loadtest"))
    p.add_argument("--python", default=sys.executable, help="interpreter for ws_idle.py / bosh_idle.py")
    p.add_argument("--data-dir", required=True, help="server data directory holding the accounts")
    p.add_argument("--work-dir", default=HERE, help="where server logs go")
    p.add_argument("--password", required=True)
    p.add_argument("-n", "--sessions", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--kinds", default="tls,tls-sm,ws,ws-sm,bosh,bosh-sm",
                   help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--concurrency", type=int, default=50, help="logins in flight, every generator")
    p.add_argument("--arrival-rate", type=int, default=500, help="switchyard-loadtest's pacing")
    p.add_argument("--login-timeout-secs", type=float, default=30)
    p.add_argument("--baseline-secs", type=float, default=3, help="quiet time before the first reading")
    p.add_argument("--settle-secs", type=float, default=10, help="after all up (and after closing)")
    p.add_argument("--start-timeout-secs", type=float, default=30)
    p.add_argument("--stop-timeout-secs", type=float, default=20)
    p.add_argument("--port-starttls", type=int, default=25222)
    p.add_argument("--port-tls", type=int, default=25223)
    p.add_argument("--port-web", type=int, default=25443)
    p.add_argument("--port-admin", type=int, default=29400)
    p.add_argument("--rust-log", default="warn")
    p.add_argument("--same-server", action="store_true",
                   help="one server per round for all kinds, one after the other (sessions of "
                        "a kind closed before the next; its baseline is the RSS left by the one "
                        "before), instead of a fresh server per kind")
    p.add_argument("--json", metavar="FILE", help="write every round's figures here")
    args = p.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            p.error(f"unknown kind {k}")
    raise_nofile()
    records = []
    started = time.time()
    for rnd in range(1, args.rounds + 1):
        shared = None
        if args.same_server:
            shared = Server(args, os.path.join(args.work_dir, f"server-shared-r{rnd}.log"))
        for kind in kinds:
            try:
                rec = run_kind(args, kind, rnd, shared)
            except Exception as e:  # one failed kind does not end the run
                rec = {"kind": kind, "round": rnd, "failure": repr(e)}
            records.append(rec)
            print(f"round {rnd} {kind}: {rec.get('kib_per_session')} KiB/session, held "
                  f"{rec.get('sessions_held')}, RSS {rec.get('rss_before_kib')} -> "
                  f"{rec.get('rss_after_kib')} -> closed {rec.get('rss_after_close_kib')}, "
                  f"conns {rec.get('connections_at_after')}, errors {rec.get('errors')}, "
                  f"gauges {rec.get('gauges_after')} -> closed {rec.get('gauges_after_close')}"
                  f"{', FAILED ' + rec['failure'] if 'failure' in rec else ''}",
                  file=sys.stderr, flush=True)
            if args.json:  # rewritten after every kind, so an interrupted run keeps its data
                with open(args.json, "w") as f:
                    json.dump({"started": started, "args": vars(args), "records": records}, f, indent=2)
        if shared is not None:
            print(f"round {rnd}: shared server stopped ({shared.stop(args.stop_timeout_secs)})",
                  file=sys.stderr, flush=True)
    print(table(records, kinds))
    return 0 if all("failure" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
