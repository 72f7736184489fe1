#!/usr/bin/env python3
"""Interop check: two slixmpp clients chat through a running Switchyard server.

Scenario `chat` (default):

Both accounts log in to HOST:PORT (STARTTLS by default, or direct TLS / XEP-0368
with --direct-tls), client 1 sends a <message type='chat'> with a unique body to
client 2's bound full JID, client 2 replies to the sender, and both receipts are
checked (body and sender). For each client the SASL mechanism, TLS version and
SCRAM GS2 header (i.e. which channel binding was used) are printed.

The server certificate must be valid for the JIDs' domain (e.g. `localhost`) and
is verified against --ca FILE; --insecure disables verification instead.
No roster is fetched and no presence is sent unless --presence is given.

Scenario `im` (RFC 6121 with slixmpp's own roster handling): both clients fetch
the roster and send presence; client 1 subscribes to client 2, which approves
(slixmpp's auto_authorize) and subscribes back; client 1 checks its roster item
and receives client 2's presence; client 2 disconnects (client 1 sees it go
unavailable); client 1 sends a chat message to client 2's bare JID; client 2
logs in again and must receive it from offline storage with a XEP-0203 delay.

Exit status: 0 on success; 1 with a "FAIL: ..." line on stderr on any error, or
if login and the exchange take longer than 20 seconds in total.

Note: CPython's ssl module offers only tls-unique channel binding, so on TLS 1.3
slixmpp skips SCRAM-*-PLUS and uses plain SCRAM (GS2 header "n,," if the server
offered a -PLUS mechanism, "y,," if not); -PLUS (tls-unique) only on TLS 1.2.

Example:
    python slixmpp_chat.py --host 127.0.0.1 --port 5222 --ca ca.pem \
        --jid1 a@localhost --pw1 secret-a --jid2 b@localhost --pw2 secret-b
"""

import argparse
import asyncio
import ssl
import sys
import uuid

import slixmpp

TIMEOUT = 20.0  # seconds, for everything including shutdown
CLOSE_GRACE = 2.0  # part of TIMEOUT reserved for closing the streams


class Failure(Exception):
    """A check failed; the message says what went wrong."""


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str, args: argparse.Namespace):
        super().__init__(jid, password)
        self.enable_direct_tls = args.direct_tls
        self.enable_starttls = not args.direct_tls
        self.enable_plaintext = False
        if args.insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        else:
            self.ca_certs = args.ca

        loop = asyncio.get_running_loop()
        self.online = loop.create_future()  # result: None, once bound
        self.failed = loop.create_future()  # result: reason string
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.auth_info = "?"
        self.auth_failures = []  # "MECH: condition" for each rejected attempt

        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_auth_failure)
        self.add_event_handler("session_start", lambda _: _settle(self.online, None))
        self.add_event_handler("message", self.inbox.put_nowait)
        self.add_event_handler("message_error", self.inbox.put_nowait)
        self.add_event_handler("session_start", self._maybe_presence(args.presence))
        self.register_plugin("xep_0203")
        self.presences: asyncio.Queue = asyncio.Queue()
        for event in ("got_online", "got_offline", "presence_subscribed"):
            self.add_event_handler(event, self._presence_handler(event))
        for event, what in [
            ("connection_failed", "connection failed"),
            ("ssl_invalid_chain", "TLS certificate not trusted"),
            ("failed_all_auth", "SASL authentication failed with every mechanism"),
            ("stream_error", "stream error"),
            ("disconnected", "disconnected"),
        ]:
            self.add_event_handler(event, self._fail_handler(what))

    def _maybe_presence(self, enabled: bool):
        return (lambda _: self.send_presence()) if enabled else (lambda _: None)

    def _presence_handler(self, event: str):
        return lambda presence: self.presences.put_nowait((event, presence["from"]))

    async def presence_event(self, event: str, bare: str):
        """Wait for a presence event (got_online, ...) from `bare`'s account."""
        while True:
            got, sender = await self.presences.get()
            if got == event and sender.bare == bare:
                return sender

    def _fail_handler(self, what: str):
        def handler(detail=None):
            if isinstance(detail, slixmpp.ElementBase):  # e.g. a stream error
                detail = f"{detail['condition']} {detail['text']}".strip()
            if what.startswith("SASL"):
                detail = "; ".join(self.auth_failures) or "no usable mechanism offered"
            _settle(self.failed, f"{self.requested_jid}: {what}: {detail}")
        return handler

    def _on_auth_failure(self, stanza):
        mech = self.plugin["feature_mechanisms"].mech
        self.auth_failures.append(f"{mech.name}: {stanza['condition']}")

    def _on_auth_success(self, _stanza):
        mech = self.plugin["feature_mechanisms"].mech
        tls = self.socket.version() if isinstance(self.socket, ssl.SSLObject) else "no TLS"
        gs2 = getattr(mech, "gs2_header", b"").decode(errors="replace")
        self.auth_info = f"SASL {mech.name} ({tls}, gs2={gs2 or '-'})"


def _settle(fut: asyncio.Future, value) -> None:
    if not fut.done():
        fut.set_result(value)


async def guarded(aw, clients, stage: str):
    """Await `aw`, aborting as soon as any client reports a fatal event."""
    task = asyncio.ensure_future(aw)
    fails = [c.failed for c in clients]
    done, _ = await asyncio.wait([task, *fails], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)  # reap it quietly
    raise Failure(f"while {stage}: {next(f for f in fails if f.done()).result()}")


async def receive(client: Client, body: str, sender: str):
    """Wait for a chat message with exactly `body`, checking who sent it."""
    while True:
        msg = await client.inbox.get()
        if msg["type"] == "error":
            raise Failure(f"{client.boundjid} got an error message: "
                          f"{msg['error']['condition']} from {msg['from']}")
        if msg["body"] != body:
            continue  # unrelated traffic (e.g. a server MOTD)
        if msg["from"] != sender:
            raise Failure(f"message came from {msg['from']}, expected {sender}")
        if msg["type"] != "chat":
            raise Failure(f"message type is {msg['type']!r}, expected 'chat'")
        return msg


async def exchange(args, a: Client, b: Client, stage: list) -> None:
    clients = [a, b]
    stage[0] = "logging in"
    for c in clients:
        c.connect(args.host, args.port)
    await guarded(asyncio.gather(a.online, b.online), clients, stage[0])
    for c in clients:
        print(f"{c.requested_jid}: bound {c.boundjid.full}, {c.auth_info}")

    token = uuid.uuid4().hex
    ping, pong = f"ping {token}", f"pong {token}"

    stage[0] = "waiting for client 2 to receive the chat message"
    a.send_message(mto=b.boundjid.full, mbody=ping, mtype="chat")
    msg = await guarded(receive(b, ping, a.boundjid.full), clients, stage[0])
    print(f"{b.boundjid.full} received {ping!r} from {msg['from']}")

    stage[0] = "waiting for client 1 to receive the reply"
    b.send_message(mto=msg["from"], mbody=pong, mtype="chat")
    await guarded(receive(a, pong, b.boundjid.full), clients, stage[0])
    print(f"{a.boundjid.full} received {pong!r} from {b.boundjid.full}")


async def online_with_presence(args, clients, stage: list) -> None:
    stage[0] = "logging in with roster and presence"
    for c in clients:
        c.connect(args.host, args.port)
    await guarded(asyncio.gather(*(c.online for c in clients)), clients, stage[0])
    for c in clients:
        await guarded(c.get_roster(), clients, "fetching the roster")
        c.send_presence()
        print(f"{c.requested_jid}: bound {c.boundjid.full}, {c.auth_info}")


async def im_exchange(args, a: Client, b: Client, stage: list, spare: list) -> None:
    await online_with_presence(args, [a, b], stage)
    bare_b = b.boundjid.bare
    clients = [a, b]

    stage[0] = "subscribing client 1 to client 2"
    a.send_presence(pto=bare_b, ptype="subscribe")
    await guarded(a.presence_event("presence_subscribed", bare_b), clients, stage[0])
    stage[0] = "waiting for client 2's presence at client 1"
    await guarded(a.presence_event("got_online", bare_b), clients, stage[0])
    subscription = a.client_roster[bare_b]["subscription"]
    if subscription not in ("to", "both"):
        raise Failure(f"client 1's roster shows subscription={subscription!r} for {bare_b}")
    print(f"{a.boundjid.bare} subscribed to {bare_b}: subscription={subscription}")

    stage[0] = "waiting for client 2 to go unavailable"
    b.disconnect()
    await guarded(a.presence_event("got_offline", bare_b), [a], stage[0])

    token = uuid.uuid4().hex
    body = f"offline {token}"
    a.send_message(mto=bare_b, mbody=body, mtype="chat")
    await guarded(a.get_roster(), [a], "syncing after the offline message")

    stage[0] = "waiting for the offline message after client 2 logs in again"
    b2 = spare[0]
    await online_with_presence(args, [b2], stage)
    msg = await guarded(receive(b2, body, a.boundjid.full), [a, b2], stage[0])
    if not msg["delay"]["stamp"]:
        raise Failure("the offline message carries no XEP-0203 delay")
    print(f"{b2.boundjid.full} received {body!r} from offline storage, "
          f"stamped {msg['delay']['stamp']}")


async def main_async(args) -> int:
    a = Client(args.jid1, args.pw1, args)
    b = Client(args.jid2, args.pw2, args)
    spare = [Client(args.jid2, args.pw2, args)]
    stage = ["starting"]
    try:
        if args.scenario == "im":
            run = im_exchange(args, a, b, stage, spare)
        else:
            run = exchange(args, a, b, stage)
        await asyncio.wait_for(run, TIMEOUT - CLOSE_GRACE)
        print(f"PASS: {args.scenario} scenario")
        return 0
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except TimeoutError:
        print(f"FAIL: timed out after {TIMEOUT - CLOSE_GRACE:.0f}s while {stage[0]}",
              file=sys.stderr)
    finally:
        everyone = (a, b, *spare)
        closing = [asyncio.ensure_future(c.disconnect(wait=CLOSE_GRACE / 2)) for c in everyone]
        await asyncio.wait(closing, timeout=CLOSE_GRACE)
        for c in everyone:
            c.cancel_connection_attempt()
            c.abort()
    return 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true",
                   help="TLS from the first byte (XEP-0368) instead of STARTTLS")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument("--ca", help="PEM file with the CA (or self-signed cert) to trust")
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the server certificate")
    p.add_argument("--scenario", choices=["chat", "im"], default="chat")
    p.add_argument("--presence", action="store_true",
                   help="send initial presence after binding")
    p.add_argument("--jid1", required=True)
    p.add_argument("--pw1", required=True)
    p.add_argument("--jid2", required=True)
    p.add_argument("--pw2", required=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(parse_args())))
