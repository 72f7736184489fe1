#!/usr/bin/env python3
"""Hold N idle XMPP sessions over WebSocket (RFC 7395), the `idle` scenario of
`switchyard-loadtest` for web clients.

Each session, on its own account (`--user-pattern`, from `--first-user`):

1. opens `wss://…/xmpp-websocket` with the `xmpp` subprotocol (no compression, no
   WebSocket pings), sends `<open/>`, reads the server's `<open/>` and features;
2. SASL PLAIN, expects `<success/>`; `<open/>` again, reads `<open/>` and features;
3. binds a server-generated resource;
4. sends, as `switchyard-loadtest` does, `<enable resume='true'/>` (with `--sm`), a
   roster get and initial presence, and is ready once the roster result (and `<enabled/>`)
   are in;
5. then idles, reading everything: with stream management it counts stanzas and answers
   `<r/>` with `<a h/>`.

Logins run at most `--concurrency` at a time, each bounded by `--login-timeout-secs`;
the ramp by `--ramp-deadline-secs`. Once all are up (or the deadline passed) it prints
"N of M sessions up after X s" on stderr, reads the server's RSS (`--server-pid`) after
`--settle-secs`, holds for `--hold-secs`, then closes every session with `<close/>`.

    python ws_idle.py --url wss://localhost:25443/xmpp-websocket \\
        --cafile DATA_DIR/dev-cert.pem --password pw -n 2000 --sm --server-pid PID --json

Requires `websockets` (>= 13, the `websockets.asyncio` API).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import idle_common as c

OPEN_TMPL = "<open xmlns='%s' to='{domain}' version='1.0'/>" % c.NS_FRAMING
CLOSE = f"<close xmlns='{c.NS_FRAMING}'/>"


class WsSession:
    def __init__(self, ws):
        self.ws = ws
        self.h = 0  # stanzas read since <enabled/>
        self.sm = False

    async def element(self) -> ET.Element:
        """The next message, which RFC 7395 makes one whole element."""
        msg = await self.ws.recv()
        if isinstance(msg, bytes):
            raise c.ProtocolFailure("binary-message")
        try:
            return ET.fromstring(msg)
        except ET.ParseError:
            raise c.ProtocolFailure("unparsable-message") from None

    async def send(self, xml: str) -> None:
        await self.ws.send(xml)

    async def open(self, domain: str) -> ET.Element:
        """Sends `<open/>`; the server's features."""
        await self.send(OPEN_TMPL.format(domain=domain))
        opened = await self.element()
        if opened.tag != c.q(c.NS_FRAMING, "open"):
            raise c.ProtocolFailure("no-open:" + opened.tag)
        features = await self.element()
        if features.tag != c.q(c.NS_STREAMS, "features"):
            raise c.ProtocolFailure("no-features:" + features.tag)
        return features

    def on_element(self, el: ET.Element) -> str | None:
        """Stream-management bookkeeping for one read element; an answer to send, if any."""
        if self.sm and c.is_stanza(el):
            self.h += 1
        elif el.tag == c.q(c.NS_SM, "r"):
            return c.sm_ack(self.h)
        return None


async def login(args, ssl_ctx, i: int, stats: c.Stats) -> WsSession:
    url = urlsplit(args.url)
    port = url.port or (443 if url.scheme == "wss" else 80)
    user = args.user_pattern.format(i)
    ws = await connect(
        args.url,
        ssl=ssl_ctx if url.scheme == "wss" else None,
        host=args.connect_host,
        port=port,
        server_hostname=url.hostname if url.scheme == "wss" else None,
        subprotocols=[Subprotocol("xmpp")],
        compression=None,
        proxy=None,
        ping_interval=None,
        open_timeout=args.login_timeout_secs,
        close_timeout=5,
        max_size=1 << 20,
        user_agent_header=None,
    )
    try:
        if ws.subprotocol != "xmpp":
            raise c.ProtocolFailure("no-xmpp-subprotocol")
        s = WsSession(ws)
        features = await s.open(args.domain)
        if features.find(c.q(c.NS_SASL, "mechanisms")) is None:
            raise c.ProtocolFailure("no-sasl-mechanisms")
        await s.send(c.plain_auth(user, args.password))
        answer = await s.element()
        if answer.tag != c.q(c.NS_SASL, "success"):
            raise c.ProtocolFailure("sasl-failure:" + "".join(ch.tag.split("}")[-1] for ch in answer))
        features = await s.open(args.domain)
        if features.find(c.q(c.NS_BIND, "bind")) is None:
            raise c.ProtocolFailure("no-bind-feature")
        await s.send(c.BIND)
        bound = await s.element()
        if bound.tag != c.q(c.NS_CLIENT, "iq") or bound.get("type") != "result":
            raise c.ProtocolFailure("bind-failed")
        if args.sm:
            await s.send(c.SM_ENABLE)
        if args.roster:
            await s.send(c.ROSTER_GET)
        await s.send(c.PRESENCE)
        roster_done = not args.roster
        enabled = not args.sm
        for _ in range(50):  # presence echo and pushes may come first
            if roster_done and enabled:
                break
            el = await s.element()
            if el.tag == c.q(c.NS_SM, "enabled"):
                enabled = True
                s.sm = True
                continue
            if el.tag == c.q(c.NS_SM, "failed"):
                raise c.ProtocolFailure("sm-enable-failed")
            if el.tag == c.q(c.NS_STREAMS, "error") or el.tag == c.q(c.NS_FRAMING, "close"):
                raise c.ProtocolFailure("stream-closed-during-login")
            answer = s.on_element(el)
            if answer:
                await s.send(answer)
            if el.tag == c.q(c.NS_CLIENT, "iq") and el.get("id") == "roster":
                roster_done = True
        else:
            raise c.ProtocolFailure("no-roster-result-in-50-messages")
        return s
    except BaseException:
        ws.transport.abort()  # cancelled (timeout) or failed: drop the TCP connection
        raise


async def hold(s: WsSession, release: asyncio.Event, stats: c.Stats) -> None:
    """Reads until released; returns early if the server ended the stream."""
    async def reader() -> None:
        while True:
            el = await s.element()
            if el.tag in (c.q(c.NS_FRAMING, "close"), c.q(c.NS_STREAMS, "error")):
                stats.error("server-closed:" + "".join(ch.tag.split("}")[-1] for ch in el) or "close")
                return
            answer = s.on_element(el)
            if answer:
                await s.send(answer)
                stats.acks_sent += 1

    read = asyncio.create_task(reader())
    wait = asyncio.create_task(release.wait())
    done, _ = await asyncio.wait({read, wait}, return_when=asyncio.FIRST_COMPLETED)
    for t in (read, wait):
        t.cancel()
    await asyncio.gather(read, wait, return_exceptions=True)
    if read in done and not read.cancelled() and read.exception() is not None:
        raise read.exception()


async def close(s: WsSession) -> None:
    """RFC 7395 §3.6: `<close/>`, then the WebSocket close handshake."""
    try:
        await s.send(CLOSE)
    finally:
        await s.ws.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(p, "wss://localhost:5443/xmpp-websocket")
    p.add_argument("--roster", action=argparse.BooleanOptionalAction, default=True,
                   help="fetch the roster before presence, as switchyard-loadtest does (default on)")
    args = p.parse_args()
    if urlsplit(args.url).scheme == "wss" and not (args.cafile or args.insecure):
        p.error("wss needs --cafile (the server's certificate) or --insecure")
    nofile = c.raise_nofile()
    if nofile < args.sessions + 64:
        p.error(f"open-file limit {nofile} is too low for {args.sessions} sessions")
    ssl_ctx = c.tls_context(args.cafile, args.insecure)

    async def run() -> dict:
        return await c.run_idle(
            args, "websocket",
            lambda i, stats: login(args, ssl_ctx, i, stats), hold, close)

    report = asyncio.run(run())
    c.print_report(report, args.json)
    return 0 if report["sessions_established"] == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
