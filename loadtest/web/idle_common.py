"""Shared pieces of the Python idle-session generators (`ws_idle.py`, `bosh_idle.py`).

They complement `switchyard-loadtest idle`, which speaks XMPP over TCP only: the same
login (SASL PLAIN, bind, optional XEP-0198 `<enable resume='true'/>`, roster get,
initial presence; ready once the roster result, and `<enabled/>`, are in), the same
"N of M sessions up after X s" line on stderr (so one driver can watch every
generator), and a report with the server's RSS before and after, like the loadtest's.

Nothing here waits without a bound: logins have a timeout, the ramp a deadline, the
hold a duration and the close a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_SM = "urn:xmpp:sm:3"
NS_STREAMS = "http://etherx.jabber.org/streams"


def q(ns: str, name: str) -> str:
    """ElementTree's `{namespace}name`."""
    return "{%s}%s" % (ns, name)


def plain_auth(user: str, password: str) -> str:
    creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>"


BIND = (
    f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'>"
    f"<bind xmlns='{NS_BIND}'/></iq>"
)
ROSTER_GET = f"<iq xmlns='{NS_CLIENT}' type='get' id='roster'><query xmlns='{NS_ROSTER}'/></iq>"
PRESENCE = f"<presence xmlns='{NS_CLIENT}'/>"
SM_ENABLE = f"<enable xmlns='{NS_SM}' resume='true'/>"


def is_stanza(el) -> bool:
    """What XEP-0198 counts: message, presence, iq in jabber:client."""
    return el.tag in (q(NS_CLIENT, "message"), q(NS_CLIENT, "presence"), q(NS_CLIENT, "iq"))


def sm_ack(h: int) -> str:
    return f"<a xmlns='{NS_SM}' h='{h % 2**32}'/>"


def raise_nofile() -> int:
    """Soft open-file limit up to the hard one (each session holds a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def tls_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """Verifies the server against `cafile` (the dev certificate), or not at all."""
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cafile=cafile)
    # A self-signed leaf given as the trust anchor.
    ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    return ctx


def established(port: int) -> int:
    """Established TCP connections on the server side of `port` (from /proc/net/tcp)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].split(":")[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of a process in KiB (what `ps -o rss=` shows), None if unreadable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    s = sorted(values)

    def p(x: float) -> float:
        return round(s[min(len(s) - 1, int(x * len(s)))] * 1000, 3)

    return {"count": len(s), "p50_ms": p(0.50), "p90_ms": p(0.90), "p99_ms": p(0.99),
            "max_ms": round(s[-1] * 1000, 3)}


def common_args(p: argparse.ArgumentParser, default_url: str) -> None:
    """Options every generator takes (names follow `switchyard-loadtest idle`)."""
    p.add_argument("--url", default=default_url, help="endpoint URL (default %(default)s)")
    p.add_argument("--connect-host", default="127.0.0.1",
                   help="address to connect to; the URL's host stays the TLS server name "
                        "(default %(default)s, so `localhost` never tries ::1 first)")
    p.add_argument("--domain", default="localhost", help="XMPP domain (default %(default)s)")
    p.add_argument("--cafile", help="PEM file to verify the server with (e.g. DATA_DIR/dev-cert.pem)")
    p.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    p.add_argument("--user-pattern", default="user{}",
                   help="username pattern, `{}` = index (default %(default)s)")
    p.add_argument("--first-user", type=int, default=0, help="index of the first account")
    p.add_argument("--password", default="password", help="password of every account")
    p.add_argument("-n", "--sessions", type=int, default=1000, help="sessions to open (one account each)")
    p.add_argument("--concurrency", type=int, default=50, help="logins in flight at most")
    p.add_argument("--login-timeout-secs", type=float, default=30.0,
                   help="seconds one login (connect to roster result) may take")
    p.add_argument("--ramp-deadline-secs", type=float, default=None,
                   help="give up on logins not done by then (default 60 + 0.05 s per session)")
    p.add_argument("--sm", action="store_true",
                   help="enable XEP-0198 with resumption (sent before the roster get and presence)")
    p.add_argument("--hold-secs", type=float, default=10.0, help="seconds to hold the sessions once all are up")
    p.add_argument("--settle-secs", type=float, default=2.0,
                   help="with --server-pid: seconds after all are up before the RSS reading")
    p.add_argument("--close-timeout-secs", type=float, default=10.0, help="bound on closing all sessions")
    p.add_argument("--server-pid", type=int, help="server PID, for its RSS from /proc")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")


@dataclass
class Stats:
    """Counters shared by a run's sessions."""
    up: int = 0
    failed: int = 0
    dropped: int = 0
    closed: int = 0
    errors: Counter = field(default_factory=Counter)
    login_times: list = field(default_factory=list)
    acks_sent: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] += 1


def error_kind(e: BaseException) -> str:
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "login-timeout"
    if isinstance(e, ProtocolFailure):
        return e.kind
    return f"{type(e).__name__}:{str(e)[:60]}"


class ProtocolFailure(Exception):
    """A login step got something else than it needs; `kind` names it for the report."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


async def progress(stats: Stats, n: int, stop: asyncio.Event, quiet: bool) -> None:
    start = time.monotonic()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        if not quiet:
            print(f"[{time.monotonic() - start:5.0f}s] up {stats.up}/{n} | failed {stats.failed} "
                  f"| dropped {stats.dropped} | errors {sum(stats.errors.values())}",
                  file=sys.stderr, flush=True)


def install_sigint(cancel: asyncio.Event) -> None:
    """First Ctrl-C/SIGTERM ends the run (report still printed); a second exits at once."""
    loop = asyncio.get_running_loop()

    def handler() -> None:
        if cancel.is_set():
            os._exit(130)
        cancel.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)


async def sleep_or(cancel: asyncio.Event, secs: float) -> None:
    try:
        await asyncio.wait_for(cancel.wait(), max(0.0, secs))
    except asyncio.TimeoutError:
        pass


async def run_idle(args, name: str, login, hold_fn, close_fn) -> dict:
    """The `idle` scenario over any transport.

    `login(i, stats)` returns a ready session (or raises), `hold_fn(session, stop, stats)`
    keeps it alive until `stop` is set (returning early if it broke), `close_fn(session)`
    ends it cleanly.
    """
    n = args.sessions
    stats = Stats()
    cancel = asyncio.Event()
    install_sigint(cancel)
    stop_progress = asyncio.Event()
    prog = asyncio.create_task(progress(stats, n, stop_progress, args.quiet))
    release = asyncio.Event()
    sem = asyncio.Semaphore(args.concurrency)
    settled = asyncio.Event()
    wall0 = time.monotonic()
    before = rss_kib(args.server_pid)

    def one_settled() -> None:
        if stats.up + stats.failed >= n:
            settled.set()

    async def one(i: int) -> None:
        async with sem:
            if cancel.is_set():
                stats.failed += 1
                stats.error("cancelled")
                one_settled()
                return
            t0 = time.monotonic()
            try:
                session = await asyncio.wait_for(login(i, stats), args.login_timeout_secs)
            except Exception as e:  # every failure is counted by kind
                stats.failed += 1
                stats.error(error_kind(e))
                one_settled()
                return
            stats.login_times.append(time.monotonic() - t0)
            stats.up += 1
            one_settled()
        try:
            await hold_fn(session, release, stats)
            if not release.is_set():
                stats.dropped += 1
                stats.error("dropped-while-held")
        except Exception as e:
            stats.dropped += 1
            stats.error("hold:" + error_kind(e))
        try:
            await asyncio.wait_for(close_fn(session), args.close_timeout_secs)
            stats.closed += 1
        except Exception as e:
            stats.error("close:" + error_kind(e))

    tasks = [asyncio.create_task(one(args.first_user + i)) for i in range(n)]
    deadline = args.ramp_deadline_secs if args.ramp_deadline_secs is not None else 60 + 0.05 * n
    t_ramp = time.monotonic()
    waiter = asyncio.create_task(settled.wait())
    canceller = asyncio.create_task(cancel.wait())
    await asyncio.wait({waiter, canceller}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    login_seconds = time.monotonic() - t_ramp
    held = stats.up
    print(f"{held} of {n} sessions up after {login_seconds:.1f} s", file=sys.stderr, flush=True)
    await sleep_or(cancel, args.settle_secs)
    after = rss_kib(args.server_pid)
    await sleep_or(cancel, args.hold_secs)
    held = min(held, stats.up - stats.dropped)
    release.set()
    t_close = time.monotonic()
    _, pending = await asyncio.wait(tasks, timeout=args.close_timeout_secs + 5)
    for t in pending:  # logins still pending past the deadline, or a stuck close
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
        stats.error("unsettled-at-end")
    for t in (waiter, canceller):
        t.cancel()
    stop_progress.set()
    await asyncio.wait({prog}, timeout=2)
    report = {
        "scenario": "idle",
        "transport": name,
        "url": args.url,
        "sm": args.sm,
        "sessions_requested": n,
        "sessions_established": stats.up,
        "login_seconds": round(login_seconds, 3),
        "logins_per_second": round(stats.up / login_seconds, 1) if login_seconds > 0 else None,
        "login_time": percentiles(stats.login_times),
        "errors": dict(stats.errors),
        "sessions_closed": stats.closed,
        "close_seconds": round(time.monotonic() - t_close, 3),
        "generator_rss_kib": rss_kib(os.getpid()),
        "wall_seconds": round(time.monotonic() - wall0, 3),
        "idle": {
            "server_before": {"rss_kib": before},
            "server_after": {"rss_kib": after},
            "sessions_held": held,
            "kib_per_session": (round((after - before) / held, 2)
                                if held and before is not None and after is not None else None),
        },
    }
    return report


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    i = report["idle"]
    print(f"{report['transport']}{' +sm' if report['sm'] else ''}: "
          f"{report['sessions_established']}/{report['sessions_requested']} up in "
          f"{report['login_seconds']} s, login {report['login_time']}")
    print(f"  held {i['sessions_held']}, server RSS {i['server_before']['rss_kib']} -> "
          f"{i['server_after']['rss_kib']} KiB, {i['kib_per_session']} KiB/session")
    print(f"  closed {report['sessions_closed']}, errors {report['errors'] or 'none'}")
