#!/usr/bin/env python3
"""Interop check: XEP-0198 stream resumption with slixmpp's own xep_0198 plugin.

Client 2 (the receiver) logs in to HOST:PORT with stream management enabled and
resumption requested, and must be granted it (<enabled resume='true' id=.../>).
Client 1 (the sender) logs in without stream management and sends m1..m3 to client
2's full JID; client 2 receives them and makes one IQ round trip (a roster get), so
that both sides have counted stanzas the other must acknowledge on resumption.

Then client 2's TCP connection is broken without closing the stream: no
</stream:stream>, no TLS close_notify, a TCP reset (--break reset, the default) or a
bare FIN (--break eof). While client 2 is away client 1 sends m4..m6 (and one IQ round
trip, so the server has routed them before client 2 comes back). Client 2 then
connects again, to --other-port if given (in a cluster: another edge), else to PORT,
and slixmpp's plugin asks to resume the stream with its SM-ID and count.

Checked: the server answers <resumed previd=SM-ID h=N/> (not <failed/>), N is the
number of stanzas client 2 had sent, session_start does not fire a second time (no new
login or bind), the full JID is unchanged, client 2 receives m4..m6 exactly once and in
order, no message of the run arrives twice (m1..m3 are not sent again), client 1 gets
no error for any message, and client 2's reply after resuming reaches client 1.

The server certificate (both servers' with --other-port) must be valid for the JIDs'
domain (e.g. `localhost`) and is verified against --ca FILE; --insecure disables
verification instead. --debug logs the XML stream (slixmpp's DEBUG logging) to stderr.

Exit status: 0 on success; 1 with a "FAIL: ..." line on stderr on any error, or if
the whole scenario takes longer than 30 seconds.

Example:
    python slixmpp_sm.py --host 127.0.0.1 --port 5222 --ca ca.pem \
        --jid1 a@localhost --pw1 secret-a --jid2 b@localhost --pw2 secret-b \
        [--other-port 5322]
"""

import argparse
import asyncio
import logging
import socket
import ssl
import struct
import sys
import uuid

import slixmpp

TIMEOUT = 30.0  # seconds, for everything including shutdown
CLOSE_GRACE = 2.0  # part of TIMEOUT reserved for closing the streams
DELIVERY_WAIT = 5.0  # seconds after <resumed/> within which m4..m6 must arrive


class Failure(Exception):
    """A check failed; the message says what went wrong."""


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str, args: argparse.Namespace, sm: bool):
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
        self.received = []  # (body, from) of every message, in arrival order
        self.errors = []  # message errors received
        self.session_starts = 0
        self.expect_drop = False  # while set, losing the connection is not a failure
        self.dropped = loop.create_future()  # result: reason, once the connection is gone
        self.footer_sent = False  # whether </stream:stream> was ever written
        self.sm = None

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("message_error", self._on_message)
        self.add_event_handler("disconnected", self._on_disconnected)
        for event, what in [
            ("connection_failed", "connection failed"),
            ("ssl_invalid_chain", "TLS certificate not trusted"),
            ("failed_all_auth", "SASL authentication failed with every mechanism"),
            ("stream_error", "stream error"),
        ]:
            self.add_event_handler(event, self._fail_handler(what))
        self.register_plugin("xep_0203")
        if sm:
            self.register_plugin("xep_0198", {"allow_resume": True})
            self.sm = self.plugin["xep_0198"]
            self.sm_enabled = loop.create_future()  # result: the <enabled/> stanza
            self.sm_resumed = loop.create_future()  # result: the <resumed/> stanza
            self.add_event_handler("sm_enabled", lambda s: _settle(self.sm_enabled, s))
            self.add_event_handler("session_resumed", lambda s: _settle(self.sm_resumed, s))
            self.add_event_handler("sm_failed", self._on_sm_failed)

    def send_raw(self, data) -> None:
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        if "</stream:stream>" in text:
            self.footer_sent = True
        super().send_raw(data)

    def _on_session_start(self, _event) -> None:
        self.session_starts += 1
        _settle(self.online, None)

    def _on_message(self, msg) -> None:
        if msg["type"] == "error":
            self.errors.append(msg)
        else:
            self.received.append((msg["body"], str(msg["from"])))
        self.inbox.put_nowait(msg)

    def _on_disconnected(self, reason=None) -> None:
        if self.expect_drop:
            _settle(self.dropped, reason)
        else:
            _settle(self.failed, f"{self.requested_jid}: disconnected: {reason}")

    def _on_sm_failed(self, stanza) -> None:
        what = "resumption failed" if self.dropped.done() else "enabling SM failed"
        _settle(self.failed, f"{self.requested_jid}: {what}, the server answered {stanza}")

    def _fail_handler(self, what: str):
        def handler(detail=None):
            if isinstance(detail, slixmpp.ElementBase):  # e.g. a stream error
                detail = f"{detail['condition']} {detail['text']}".strip()
            _settle(self.failed, f"{self.requested_jid}: {what}: {detail}")
        return handler

    def break_connection(self, how: str) -> None:
        """Drop the TCP connection under the stream: nothing more is written on it
        (no </stream:stream>, no TLS close_notify); `reset` sends a TCP RST, `eof` a FIN."""
        self.expect_drop = True
        sock = self.transport.get_extra_info("socket")
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
        # abort(), unlike close(), discards what is buffered and skips the TLS shutdown.
        self.transport.abort()


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


async def receive_in_order(client: Client, bodies: list, sender: str) -> None:
    """Wait for chat messages with exactly `bodies`, in this order, from `sender`.
    A message of this run that is not the next expected one is a failure."""
    token = bodies[0].split(" ", 1)[1]
    want = list(bodies)
    while want:
        msg = await client.inbox.get()
        if msg["type"] == "error":
            raise Failure(f"{client.boundjid} got an error message: "
                          f"{msg['error']['condition']} from {msg['from']}")
        body = msg["body"]
        if not body.endswith(token):
            continue  # unrelated traffic (e.g. a server MOTD)
        if body != want[0]:
            raise Failure(f"{client.boundjid} received {body!r} while expecting {want[0]!r} "
                          f"(received so far: {tags(client)})")
        if msg["from"] != sender:
            raise Failure(f"{body!r} came from {msg['from']}, expected {sender}")
        if msg["type"] != "chat":
            raise Failure(f"{body!r} has type {msg['type']!r}, expected 'chat'")
        want.pop(0)


def tags(client: Client) -> str:
    return " ".join(body.split(" ", 1)[0] for body, _ in client.received) or "nothing"


async def scenario(args, a: Client, b: Client, stage: list) -> None:
    token = uuid.uuid4().hex
    m = {i: f"m{i} {token}" for i in range(1, 7)}
    sm = b.sm

    stage[0] = "client 2 logging in with stream management"
    b.connect(args.host, args.port)
    await guarded(b.online, [b], stage[0])
    enabled = await guarded(b.sm_enabled, [b], "waiting for <enabled/>")
    if not enabled["resume"] or not enabled["id"]:
        raise Failure(f"the server enabled stream management without resumption: {enabled}")
    print(f"{b.requested_jid}: bound {b.boundjid.full}, sm enabled id={sm.sm_id} "
          f"resume={enabled['resume']} max={enabled['max'] or '-'} "
          f"location={enabled['location'] or '-'}")
    full_b = b.boundjid.full

    stage[0] = "client 1 logging in"
    a.connect(args.host, args.port)
    await guarded(a.online, [a, b], stage[0])
    print(f"{a.requested_jid}: bound {a.boundjid.full} (no stream management)")
    clients = [a, b]

    stage[0] = "waiting for client 2 to receive m1..m3"
    for i in (1, 2, 3):
        a.send_message(mto=full_b, mbody=m[i], mtype="chat")
    await guarded(receive_in_order(b, [m[1], m[2], m[3]], a.boundjid.full), clients, stage[0])
    print(f"{full_b} received m1 m2 m3")
    stage[0] = "client 2's roster round trip before the break"
    await guarded(b.get_roster(), clients, stage[0])

    handled, sent, acked = sm.handled, sm.seq, sm.last_ack
    print(f"before the break: client 2 handled h={handled}, sent {sent} "
          f"(server acked {acked}, {len(sm.unacked_queue)} unacked)")

    stage[0] = "breaking client 2's connection"
    b.break_connection(args.break_mode)
    await guarded(b.dropped, clients, stage[0])
    if b.footer_sent:
        raise Failure("client 2 sent </stream:stream>: the stream was closed, not broken")
    if sm.sm_id is None:
        raise Failure("slixmpp forgot the SM-ID when the connection dropped")
    print(f"client 2's connection broken ({args.break_mode}), no </stream:stream> sent")

    stage[0] = "client 1 sending m4..m6 while client 2 is away"
    for i in (4, 5, 6):
        a.send_message(mto=full_b, mbody=m[i], mtype="chat")
    # One IQ round trip: the server has routed m4..m6 before its answer comes back.
    await guarded(a.get_roster(), [a], stage[0])
    await asyncio.sleep(args.away)
    if a.errors:
        raise Failure(f"client 1 got an error for a message sent while client 2 was away: "
                      f"{a.errors[0]['error']['condition']}: {a.errors[0]}")
    print(f"{a.boundjid.full} sent m4 m5 m6 while client 2 was away")

    port = args.other_port or args.port
    stage[0] = f"client 2 resuming on port {port}"
    b.expect_drop = False
    handled = sm.handled  # the h slixmpp is about to send in <resume/>
    b.connect(args.host, port)
    resumed = await guarded(b.sm_resumed, clients, stage[0])
    if resumed["previd"] != sm.sm_id:
        raise Failure(f"<resumed/> names previd={resumed['previd']!r}, expected {sm.sm_id!r}")
    if resumed["h"] != sent:
        raise Failure(f"<resumed h='{resumed['h']}'/>: the server counts {resumed['h']} "
                      f"stanzas from client 2, which had sent {sent}")
    if b.session_starts != 1:
        raise Failure(f"session_start fired {b.session_starts} times: a new session, "
                      f"not a resumed one")
    if b.boundjid.full != full_b:
        raise Failure(f"client 2's JID changed from {full_b} to {b.boundjid.full}")
    print(f"resumed sm_id={sm.sm_id} on port {port}: h={resumed['h']} (client 2 had sent "
          f"{sent}), client sent h={handled}, same JID {full_b}, no second session_start")

    stage[0] = "waiting for client 2 to receive m4..m6 after resuming"
    try:
        await guarded(asyncio.wait_for(receive_in_order(b, [m[4], m[5], m[6]], a.boundjid.full),
                                       DELIVERY_WAIT), clients, stage[0])
    except TimeoutError:
        raise Failure(f"client 2 received {tags(b)}; m4 m5 m6 were still missing "
                      f"{DELIVERY_WAIT:.0f}s after resuming") from None

    stage[0] = "waiting for client 1 to receive client 2's reply"
    reply = f"reply {token}"
    b.send_message(mto=a.boundjid.full, mbody=reply, mtype="chat")
    await guarded(receive_in_order(a, [reply], full_b), clients, stage[0])
    # One more round trip on client 2's stream: anything the server still had queued
    # for it (e.g. a second copy) would arrive before this answer.
    stage[0] = "client 2's roster round trip after resuming"
    await guarded(b.get_roster(), clients, stage[0])

    ours = [body for body, _ in b.received if body.endswith(token)]
    expected = [m[i] for i in range(1, 7)]
    if ours != expected:
        raise Failure(f"client 2 received {tags(b)}; expected m1 m2 m3 m4 m5 m6, "
                      f"each once, in order")
    if b.errors or a.errors:
        raise Failure(f"error messages: {[str(e) for e in (*a.errors, *b.errors)]}")
    if b.session_starts != 1:
        raise Failure(f"session_start fired {b.session_starts} times")
    print("received m4 m5 m6 once, in order (m1..m6 each exactly once overall)")
    print(f"{a.boundjid.full} received the reply from {full_b}")


async def main_async(args) -> int:
    a = Client(args.jid1, args.pw1, args, sm=False)
    b = Client(args.jid2, args.pw2, args, sm=True)
    stage = ["starting"]
    try:
        await asyncio.wait_for(scenario(args, a, b, stage), TIMEOUT - CLOSE_GRACE)
        print("PASS: stream resumption scenario")
        return 0
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except TimeoutError:
        print(f"FAIL: timed out after {TIMEOUT - CLOSE_GRACE:.0f}s while {stage[0]}",
              file=sys.stderr)
    finally:
        b.expect_drop = True
        everyone = (a, b)
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
    p.add_argument("--other-port", type=int, default=None,
                   help="port client 2 resumes on (e.g. another edge); default: --port")
    p.add_argument("--direct-tls", action="store_true",
                   help="TLS from the first byte (XEP-0368) instead of STARTTLS")
    trust = p.add_mutually_exclusive_group(required=True)
    trust.add_argument("--ca", help="PEM file with the CA (or self-signed cert) to trust")
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the server certificate")
    p.add_argument("--break", dest="break_mode", choices=["reset", "eof"], default="reset",
                   help="how client 2's connection is broken: TCP RST or FIN (default reset)")
    p.add_argument("--away", type=float, default=0.5,
                   help="seconds client 2 stays away after m4..m6 are routed (default 0.5)")
    p.add_argument("--debug", action="store_true", help="log the XML streams to stderr")
    p.add_argument("--jid1", required=True)
    p.add_argument("--pw1", required=True)
    p.add_argument("--jid2", required=True)
    p.add_argument("--pw2", required=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main_async(arguments)))
