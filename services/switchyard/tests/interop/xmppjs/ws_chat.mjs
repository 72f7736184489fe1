#!/usr/bin/env node
// Interop check: two xmpp.js (@xmpp/client) clients chat through a running server over
// XMPP-over-WebSocket (RFC 7395).
//
// Steps, one output line each ("OK ..."), then "ALL OK":
//   alice and bob log in (SASL mechanism chosen by @xmpp/client, resource bound by the
//   server; the bound JID must be the account's bare JID plus a resource), each sends
//   available presence; alice sends bob (his full JID) a chat message with a unique body,
//   bob checks body and sender and replies to the sender, alice checks the reply; alice
//   gets her roster (type='result'); alice asks the server for disco#info on the domain
//   (type='result' with at least one identity); both stop with
//   <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>, and the server must answer with
//   its own <close/>.
// Informational lines ("INFO ..."): SASL mechanism, how the resource was bound, and
// whether XEP-0198 stream management was enabled ("INFO alice sm enabled" /
// "INFO alice sm not enabled"); @xmpp/client asks for it whenever the server offers it.
// Not a failure either way.
//
// Exit status 0 only when every step passed. On any error: a "FAIL <reason>" line on
// stdout, the clients' last XML elements on stderr, exit 1. Everything is bounded by a
// hard 30 s timer (then "FAIL timeout", exit 1). --verbose prints all XML to stderr
// (SASL payloads redacted).
//
// TLS (wss://) is verified as Node does by default; for a self-signed certificate the
// caller sets NODE_EXTRA_CA_CERTS=ca.pem.
//
// Node >= 20.10. Node 20 has WebSocket only behind --experimental-websocket: without a
// global WebSocket the script runs itself again with that flag.
//
// Setup: npm ci (in this folder). Example:
//   node ws_chat.mjs --url ws://127.0.0.1:5443/xmpp-websocket --domain localhost \
//       --jid1 alice@localhost --pw1 secret --jid2 bob@localhost --pw2 secret

import { randomUUID } from "node:crypto";
import {
  NS_DISCO_INFO,
  NS_ROSTER,
  NS_SASL,
  STEP_TIMEOUT_MS,
  Failure,
  addDescribeHint,
  chatSteps,
  checkBoundJid,
  describe,
  fail,
  loadLibrary,
  newClient,
  out,
  parseArguments,
  runMainWithWebSocket,
  setFailureDump,
  withTimeout,
} from "./common.mjs";

const SM_WAIT_MS = 3_000; // for <enabled/> or <failed/> once online

const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_SASL2 = "urn:xmpp:sasl:2";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SM = "urn:xmpp:sm:3";

setFailureDump("last XML", (c) => c.xmpp?.status);
addDescribeHint((err) =>
  // undici says no more than this for a refused connection, an HTTP answer other than
  // 101, or a TLS failure.
  /non-101/.test(err.message)
    ? "(refused, HTTP status other than 101, or TLS failure: for wss:// with a private CA set NODE_EXTRA_CA_CERTS)"
    : null,
);

runMainWithWebSocket(main, import.meta.url);

// One line of XML for the trace; SASL payloads (password material) left out.
function show(el) {
  const ns = el.attrs?.xmlns;
  if (ns === NS_SASL || ns === NS_SASL2) {
    const attrs = Object.entries(el.attrs)
      .map(([k, v]) => ` ${k}='${v}'`)
      .join("");
    const hidden = el.name === "mechanisms" || el.name === "authentication";
    return hidden ? el.toString() : `<${el.name}${attrs}>[redacted]</${el.name}>`;
  }
  return el.toString();
}

async function main() {
  const args = parseArguments({ script: "ws_chat.mjs", scheme: "ws", path: "xmpp-websocket" });
  const { client, xml } = await loadLibrary("@xmpp/client", () => import("@xmpp/client"));

  const [alice, bob] = args.accounts.map((account, i) => {
    const c = newClient(account, i, args.verbose, {
      stopping: false,
      smOffered: false,
      smResult: null, // "enabled" | "failed"
      saslMechanism: null,
      bindHow: null,
      ownPresenceSeen: false,
    });
    const xmpp = client({
      service: args.url,
      domain: args.domain,
      username: account.username,
      password: account.password,
      timeout: STEP_TIMEOUT_MS,
    });
    c.xmpp = xmpp;
    // Any drop is a failure here, not something to paper over.
    xmpp.reconnect.stop();

    xmpp.on("status", (status) => c.traceLine(`# status ${status}`));
    xmpp.on("send", (el) => {
      c.traceLine(`>> ${show(el)}`);
      if (el.is("auth", NS_SASL)) {
        c.saslMechanism = `SASL ${el.attrs.mechanism}`;
      } else if (el.is("authenticate", NS_SASL2)) {
        c.saslMechanism = `SASL2 ${el.attrs.mechanism}`;
        if (el.getChild("bind", "urn:xmpp:bind:0")) c.bindHow = "bind2 (XEP-0386)";
      } else if (el.name === "iq" && el.getChild("bind", NS_BIND)) {
        c.bindHow = el.getChild("bind", NS_BIND).getChild("resource")
          ? "RFC 6120 bind (client resource)"
          : "RFC 6120 bind (server-generated resource)";
      }
    });
    xmpp.on("element", (el) => {
      c.traceLine(`<< ${show(el)}`);
      // "stream:features": the name keeps its prefix; getName() drops it.
      if (el.getName() === "features" && el.getChild("sm", NS_SM)) c.smOffered = true;
      if (el.is("enabled", NS_SM)) c.smResult = "enabled";
      if (el.is("failed", NS_SM)) c.smResult = "failed";
      if (el.name === "presence" && !el.attrs.type && xmpp.jid && el.attrs.from === xmpp.jid.toString()) {
        c.ownPresenceSeen = true;
      }
      if (el.name === "message" && el.attrs.type === "error") {
        fail(`${c.name} received a message error: ${el.getChild("error")?.toString()}`);
      }
    });
    xmpp.on("error", (err) => {
      c.traceLine(`# error ${describe(err)}`);
      fail(`${c.name}: ${describe(err)}`);
    });
    xmpp.on("disconnect", (info) => {
      if (!c.stopping) fail(`${c.name}: connection closed unexpectedly (clean=${info?.clean})`);
    });
    return c;
  });

  // Login: SASL, resource binding, and (if offered) XEP-0198 enable.
  await Promise.all(
    [alice, bob].map(async (c) => {
      const jid = await withTimeout(c.xmpp.start(), STEP_TIMEOUT_MS, `${c.name} login`);
      c.jid = jid.toString();
      checkBoundJid(c, jid.bare().toString(), jid.getResource());
      if (c.smOffered && !c.smResult && !c.xmpp.streamManagement.enabled) {
        await new Promise((resolve) => {
          const deadline = setTimeout(finish, SM_WAIT_MS);
          function finish() {
            clearTimeout(deadline);
            c.xmpp.off("nonza", onNonza);
            resolve();
          }
          function onNonza(el) {
            if (el.is("enabled", NS_SM) || el.is("failed", NS_SM)) finish();
          }
          c.xmpp.on("nonza", onNonza);
        });
      }
      out(`OK ${c.name} online as ${c.jid}`);
      out(`INFO ${c.name} auth ${c.saslMechanism ?? "?"}, resource by ${c.bindHow ?? "?"}`);
      const sm = c.smResult === "enabled" || c.xmpp.streamManagement.enabled;
      out(
        `INFO ${c.name} sm ${sm ? "enabled" : "not enabled"}` +
          (sm ? ` (resume id ${c.xmpp.streamManagement.id ? "given" : "not given"})` : "") +
          (!sm ? (c.smOffered ? " (offered, enable failed or unanswered)" : " (not offered)") : ""),
      );
    }),
  );

  // Waits for the first stanza that `match` accepts (registered before anything is sent).
  function expectStanza(c, what, match) {
    let onStanza;
    const promise = new Promise((resolve) => {
      onStanza = (el) => {
        if (match(el)) resolve(el);
      };
      c.xmpp.on("stanza", onStanza);
    });
    return withTimeout(promise, STEP_TIMEOUT_MS, what).finally(() => c.xmpp.off("stanza", onStanza));
  }

  const iq = (c, what, stanza) =>
    c.xmpp.iqCaller.request(stanza, STEP_TIMEOUT_MS).catch((err) => {
      throw new Failure(`${what}: ${describe(err)}`);
    });

  await chatSteps(
    {
      sendPresence: (c) => c.xmpp.send(xml("presence")),
      sendMessage: (c, to, body) =>
        c.xmpp.send(xml("message", { to, type: "chat", id: randomUUID() }, xml("body", {}, body))),
      expectMessage: (c, what, body) =>
        expectStanza(c, what, (el) => el.is("message") && el.getChildText("body") === body).then((el) => ({
          from: el.attrs.from,
          type: el.attrs.type,
        })),
      rosterGet: async (c) => {
        const roster = await iq(c, "roster get", xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })));
        const query = roster.getChild("query", NS_ROSTER);
        return { type: roster.attrs.type, items: query ? query.getChildren("item").length : 0 };
      },
      discoInfo: async (c, to) => {
        const disco = await iq(
          c,
          "disco#info on the domain",
          xml("iq", { type: "get", to }, xml("query", { xmlns: NS_DISCO_INFO })),
        );
        const info = disco.getChild("query", NS_DISCO_INFO);
        return {
          type: disco.attrs.type,
          from: disco.attrs.from,
          identities: info?.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`) ?? null,
          features: info?.getChildren("feature").length,
        };
      },
    },
    [alice, bob],
    args.domain,
    "xmppjs-ws",
  );

  // RFC 7395 3.6: <close/> from us, <close/> back from the server, then the socket closes.
  for (const c of [alice, bob]) {
    c.stopping = true;
    const closed = new Promise((resolve) => c.xmpp.once("disconnect", resolve));
    const answer = await withTimeout(c.xmpp.stop(), STEP_TIMEOUT_MS * 2, `${c.name} stop`);
    if (!answer || !answer.is("close", NS_FRAMING)) {
      throw new Failure(`${c.name} stop: the server did not answer <close xmlns='${NS_FRAMING}'/>`);
    }
    const info = await withTimeout(closed, STEP_TIMEOUT_MS, `${c.name} WebSocket close`);
    out(`OK ${c.name} stopped`);
    if (!info?.clean) out(`INFO ${c.name} WebSocket closed without a clean close handshake`);
  }
}
