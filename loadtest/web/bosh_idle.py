#!/usr/bin/env python3
"""Hold N idle XMPP sessions over BOSH (XEP-0124/XEP-0206), the `idle` scenario of
`switchyard-loadtest` for BOSH clients.

Each session, on its own account (`--user-pattern`, from `--first-user`):

1. creates a BOSH session (`wait` = `--wait-secs`, `hold` 1, `ver` 1.6, `xmpp:version` 1.0);
2. SASL PLAIN in the next body, expects `<success/>`; restarts (`xmpp:restart='true'`)
   and waits for the bind feature;
3. binds a server-generated resource;
4. sends, in one body, `<enable resume='true'/>` (with `--sm`), a roster get and initial
   presence, as `switchyard-loadtest` does, and is ready once the roster result (and
   `<enabled/>`) are in;
5. then idles the way a BOSH client does: one empty request always held by the server
   (long poll); when it comes back (after `wait`, or with data) the next is sent at once,
   carrying `<a h/>` if the server asked with `<r/>`.

Requests go through one aiohttp connection pool (HTTP/1.1 keep-alive, TLS), so an idle
session costs the server one held request on one kept-alive connection. Logins run at most
`--concurrency` at a time, each bounded by `--login-timeout-secs`; every request is
bounded by `wait` + 30 s. Once all are up it prints "N of M sessions up after X s" on
stderr, reads the server's RSS (`--server-pid`) after `--settle-secs`, holds for
`--hold-secs`, then ends every session with `type='terminate'` (and unavailable presence).

    python bosh_idle.py --url https://localhost:25443/http-bind \\
        --cafile DATA_DIR/dev-cert.pem --password pw -n 2000 --server-pid PID --json

Requires `aiohttp`. Connects over IPv4 (the URL's host resolved with AF_INET).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import xml.etree.ElementTree as ET

import aiohttp

import idle_common as c

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"


class BoshFailure(c.ProtocolFailure):
    pass


class BoshSession:
    def __init__(self, http: aiohttp.ClientSession, args):
        self.http = http
        self.args = args
        self.rid = random.randrange(1 << 20, 1 << 40)
        self.sid: str | None = None
        self.h = 0
        self.sm = False
        self.acks: list[str] = []  # answers to the server's <r/>, sent with the next request
        self.held: asyncio.Task | None = None
        self.timeout = aiohttp.ClientTimeout(total=args.wait_secs + 30)

    def body(self, attrs: str, payload: str) -> str:
        self.rid += 1
        sid = f" sid='{self.sid}'" if self.sid else ""
        return (f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='{NS_XBOSH}' rid='{self.rid}'{sid}"
                f"{attrs}>{payload}</body>")

    async def post(self, xml: str) -> ET.Element:
        async with self.http.post(self.args.url, data=xml.encode(), timeout=self.timeout,
                                  headers={"Content-Type": "text/xml; charset=utf-8"}) as r:
            text = await r.text()
            if r.status != 200:
                raise BoshFailure(f"http-{r.status}")
        try:
            body = ET.fromstring(text)
        except ET.ParseError:
            raise BoshFailure("unparsable-body") from None
        if body.tag != c.q(NS_HTTPBIND, "body"):
            raise BoshFailure("not-a-body")
        if body.get("type") == "terminate":
            raise BoshFailure("terminated:" + (body.get("condition") or "none"))
        return body

    async def send(self, payload: str = "", attrs: str = "") -> ET.Element:
        """One request with the next rid; its response body (children counted for SM)."""
        payload = "".join(self.acks) + payload
        self.acks.clear()
        body = await self.post(self.body(attrs, payload))
        for el in body:
            if self.sm and c.is_stanza(el):
                self.h += 1
            elif el.tag == c.q(c.NS_SM, "r"):
                self.acks.append(c.sm_ack(self.h))
            elif el.tag == c.q(c.NS_SM, "enabled"):
                self.sm = True
        return body

    async def expect(self, payload: str, attrs: str, wanted, polls: int = 20) -> ET.Element:
        """Sends, then polls (empty bodies) until a child satisfying `wanted` arrives."""
        body = await self.send(payload, attrs)
        for _ in range(polls):
            for el in body:
                if wanted(el):
                    return el
            body = await self.send()
        raise BoshFailure("nothing-wanted-in-polls")


async def login(args, http: aiohttp.ClientSession, i: int, stats: c.Stats) -> BoshSession:
    user = args.user_pattern.format(i)
    s = BoshSession(http, args)
    created = await s.post(s.body(
        f" to='{args.domain}' wait='{args.wait_secs}' hold='1' ver='1.6' xmpp:version='1.0'"
        " xml:lang='en'", ""))
    s.sid = created.get("sid")
    if not s.sid:
        raise BoshFailure("no-sid")
    mech = lambda el: el.tag == c.q(c.NS_STREAMS, "features")  # noqa: E731
    if not any(mech(el) for el in created):
        await s.expect("", "", mech)
    answer = await s.expect(c.plain_auth(user, args.password), "",
                            lambda el: el.tag.startswith("{%s}" % c.NS_SASL))
    if answer.tag != c.q(c.NS_SASL, "success"):
        raise BoshFailure("sasl-failure")
    features = await s.expect("", f" xmpp:restart='true' to='{args.domain}' xml:lang='en'",
                              lambda el: el.tag == c.q(c.NS_STREAMS, "features"))
    if features.find(c.q(c.NS_BIND, "bind")) is None:
        raise BoshFailure("no-bind-feature")
    bound = await s.expect(c.BIND, "", lambda el: el.get("id") == "bind")
    if bound.get("type") != "result":
        raise BoshFailure("bind-failed")
    payload = (c.SM_ENABLE if args.sm else "") + (c.ROSTER_GET if args.roster else "") + c.PRESENCE
    roster_done = not args.roster
    enabled = not args.sm
    body = await s.send(payload)
    for _ in range(20):
        for el in body:
            if el.tag == c.q(c.NS_SM, "enabled"):
                enabled = True
            elif el.tag == c.q(c.NS_SM, "failed"):
                raise BoshFailure("sm-enable-failed")
            elif el.tag == c.q(c.NS_CLIENT, "iq") and el.get("id") == "roster":
                roster_done = True
        if roster_done and enabled:
            return s
        body = await s.send()
    raise BoshFailure("no-roster-result-in-20-polls")


async def hold(s: BoshSession, release: asyncio.Event, stats: c.Stats) -> None:
    """Keeps one request held until released; returns early if the session ended."""
    wait = asyncio.create_task(release.wait())
    try:
        while not release.is_set():
            acks = len(s.acks)
            s.held = asyncio.create_task(s.send())
            stats.acks_sent += acks
            await asyncio.wait({s.held, wait}, return_when=asyncio.FIRST_COMPLETED)
            if not s.held.done():
                return  # released: close() sends terminate, which answers the held one
            s.held.result()  # raises if the session was terminated or the request failed
            s.held = None
    finally:
        wait.cancel()


async def close(s: BoshSession) -> None:
    """XEP-0124 §14: `type='terminate'` with any pending `<a h/>` and unavailable presence;
    the held request returns."""
    payload = "".join(s.acks) + f"<presence xmlns='{c.NS_CLIENT}' type='unavailable'/>"
    s.acks.clear()
    try:
        await s.post(s.body(" type='terminate'", payload))
    except BoshFailure as e:
        if not e.kind.startswith("terminated"):
            raise
    if s.held is not None:
        try:
            await s.held
        except BoshFailure as e:
            if not e.kind.startswith("terminated"):
                raise


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(p, "https://localhost:5443/http-bind")
    p.add_argument("--wait-secs", type=int, default=60,
                   help="BOSH `wait`: longest a request is held (server caps it at 60)")
    p.add_argument("--roster", action=argparse.BooleanOptionalAction, default=True,
                   help="fetch the roster before presence, as switchyard-loadtest does (default on)")
    args = p.parse_args()
    if args.url.startswith("https:") and not (args.cafile or args.insecure):
        p.error("https needs --cafile (the server's certificate) or --insecure")
    nofile = c.raise_nofile()
    if nofile < args.sessions + args.concurrency + 64:
        p.error(f"open-file limit {nofile} is too low for {args.sessions} sessions")
    ssl_ctx = c.tls_context(args.cafile, args.insecure)

    async def run() -> dict:
        # One kept-alive connection per held request, plus the logins in flight.
        connector = aiohttp.TCPConnector(limit=args.sessions + args.concurrency + 16,
                                         limit_per_host=0, ssl=ssl_ctx, family=socket.AF_INET)
        async with aiohttp.ClientSession(connector=connector) as http:
            return await c.run_idle(
                args, "bosh", lambda i, stats: login(args, http, i, stats), hold, close)

    report = asyncio.run(run())
    c.print_report(report, args.json)
    return 0 if report["sessions_established"] == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
