#!/usr/bin/env python3
"""Writes an XEP-0227 file of N users (SCRAM-SHA-1 keys, 10 roster items, a vCard and 3
offline messages each) for measuring `switchyard import` and `switchyard export`:

    python3 loadtest/pie/make_users.py 4000 /tmp/users4000.xml
    /usr/bin/time -f '%e s %M KiB' env SWITCHYARD_DATA_DIR=/tmp/d switchyard import /tmp/users4000.xml
    /usr/bin/time -f '%e s %M KiB' env SWITCHYARD_DATA_DIR=/tmp/d switchyard export /tmp/out.xml
"""
import base64
import os
import sys


def user(i: int) -> str:
    key = base64.b64encode(os.urandom(20)).decode()
    salt = base64.b64encode(os.urandom(16)).decode()
    items = "".join(
        f"<item jid='c{j}@localhost' subscription='both' name='C{j}'><group>G</group></item>"
        for j in range(10)
    )
    offline = "".join(
        f"<message xmlns='jabber:client' from='c{j}@localhost' type='chat'><body>hello {j}</body></message>"
        for j in range(3)
    )
    return (
        f"<user name='u{i}'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>"
        f"<iter-count>4096</iter-count><salt>{salt}</salt><server-key>{key}</server-key>"
        f"<stored-key>{key}</stored-key></scram-credentials>"
        f"<query xmlns='jabber:iq:roster'>{items}</query>"
        f"<vCard xmlns='vcard-temp'><FN>User {i}</FN></vCard>"
        f"<offline-messages>{offline}</offline-messages></user>"
    )


def main() -> None:
    count, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "w", encoding="utf-8") as out:
        out.write("<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>")
        for i in range(count):
            out.write(user(i))
        out.write("</host></server-data>\n")


if __name__ == "__main__":
    main()
