#!/usr/bin/env python3
"""Interop check: an XEP-0114 external component written with slixmpp's ComponentXMPP.

The component connects to HOST:PORT (the server's component listener) as DOMAIN with
SECRET, and answers: every chat message to any JID at DOMAIN is echoed back to its
sender as "echo: BODY", from the JID it was sent to; disco#info on DOMAIN is answered
by slixmpp's own xep_0030 plugin (identity component/generic).

It prints "READY" once the handshake succeeded, "ECHO <body>" for each message it
answered, and exits 0 after --count messages; 1 with "FAIL: ..." on stderr if the
handshake fails, the connection ends early, or 30 seconds pass.

Example:
    python slixmpp_component.py --host 127.0.0.1 --port 5347 \
        --domain push.localhost --secret s3cret-s3cret-s3cret --count 2
"""

import argparse
import asyncio
import sys

from slixmpp.componentxmpp import ComponentXMPP


class Echo(ComponentXMPP):
    def __init__(self, domain, secret, host, port, count):
        super().__init__(domain, secret, host, port)
        self.count = count
        self.answered = 0
        self.done = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0030")
        self["xep_0030"].add_identity(category="component", itype="generic", name="echo")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)

    def on_start(self, _event):
        print("READY", flush=True)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        body = msg["body"]
        self.send_message(mto=msg["from"], mfrom=msg["to"], mbody=f"echo: {body}", mtype="chat")
        print(f"ECHO {body}", flush=True)
        self.answered += 1
        if self.answered >= self.count and not self.done.done():
            self.done.set_result(True)

    def on_disconnected(self, _event):
        if not self.done.done():
            self.done.set_exception(RuntimeError("disconnected before the last echo"))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--count", type=int, default=1)
    a = p.parse_args()
    echo = Echo(a.domain, a.secret, a.host, a.port, a.count)
    echo.connect()
    try:
        await asyncio.wait_for(echo.done, timeout=30)
    except Exception as e:  # the one place every failure ends up
        print(f"FAIL: {e!r}", file=sys.stderr, flush=True)
        return 1
    # Let the last echo leave before closing.
    await asyncio.sleep(0.2)
    echo.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
