#!/usr/bin/env python3
"""Stopgap probe until the Rust load generator exists: memory per idle TLS session.

Opens N client connections to 127.0.0.1 (STARTTLS, SASL PLAIN, bind, one account with
distinct resources), holds them, and prints the server's RSS before and after, read from
/proc/PID/status. Bounded: N connections, each step with a timeout, then it exits.

    python3 loadtest/idle_sessions.py --pid PID --port 5222 --user bench --password pw -n 2000
"""

import argparse
import asyncio
import base64
import ssl
import time

OPEN = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
        "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def expect(reader, marker: bytes) -> None:
    buf = b""
    while marker not in buf:
        chunk = await asyncio.wait_for(reader.read(4096), 10)
        if not chunk:
            raise RuntimeError(f"closed waiting for {marker!r}: {buf[-200:]!r}")
        buf += chunk


async def session(port: int, user: str, password: str, resource: str, ctx):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(OPEN.encode())
    await expect(reader, b"</stream:features>")
    writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    await expect(reader, b"<proceed")
    await writer.start_tls(ctx, server_hostname="localhost")
    writer.write(OPEN.encode())
    await expect(reader, b"</stream:features>")
    auth = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{auth}</auth>".encode())
    await expect(reader, b"<success")
    writer.write(OPEN.encode())
    await expect(reader, b"</stream:features>")
    writer.write(f"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>".encode())
    await expect(reader, b"</iq>")
    return reader, writer


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("-n", type=int, default=1000)
    args = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = rss_kib(args.pid)
    start = time.monotonic()
    held = []
    sem = asyncio.Semaphore(50)

    async def one(i):
        async with sem:
            held.append(await session(args.port, args.user, args.password, f"r{i}", ctx))

    await asyncio.gather(*(one(i) for i in range(args.n)))
    elapsed = time.monotonic() - start
    await asyncio.sleep(2)
    after = rss_kib(args.pid)
    print(f"sessions={len(held)} login_seconds={elapsed:.2f} logins_per_s={len(held)/elapsed:.0f} "
          f"rss_before_kib={before} rss_after_kib={after} kib_per_session={(after-before)/len(held):.1f}")
    for _, w in held:
        w.close()


asyncio.run(main())
