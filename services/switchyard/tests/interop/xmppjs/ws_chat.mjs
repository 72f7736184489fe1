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

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HARD_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 5_000; // one login, one reply, one stream close
const SM_WAIT_MS = 3_000; // for <enabled/> or <failed/> once online
const TRACE_LINES = 40; // per client, dumped on failure

const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_SASL2 = "urn:xmpp:sasl:2";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SM = "urn:xmpp:sm:3";
const NS_ROSTER = "jabber:iq:roster";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

class Failure extends Error {}

const clients = []; // for the trace dump on failure
let finished = false;

function out(line) {
  process.stdout.write(line + "\n");
}

function fail(reason) {
  if (finished) return;
  finished = true;
  out(`FAIL ${reason}`);
  for (const c of clients) {
    process.stderr.write(`--- last XML of ${c.name} (status ${c.xmpp?.status}) ---\n`);
    for (const line of c.trace) process.stderr.write(line + "\n");
  }
  process.exit(1);
}

// Node 20 without --experimental-websocket: run again with it, same arguments, and
// pass on the exit status; the hard timer covers the child too.
if (typeof globalThis.WebSocket === "undefined") {
  if (process.env.SWITCHYARD_XMPPJS_REEXEC) {
    fail("this node has no WebSocket, even with --experimental-websocket (need Node >= 20.10)");
  }
  const flags = ["--experimental-websocket"];
  if (process.allowedNodeEnvironmentFlags.has("--disable-warning")) {
    flags.push("--disable-warning=ExperimentalWarning");
  }
  const child = spawn(
    process.execPath,
    [...flags, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: "inherit", env: { ...process.env, SWITCHYARD_XMPPJS_REEXEC: "1" } },
  );
  setTimeout(() => {
    child.kill("SIGKILL");
    fail(`timeout (${HARD_TIMEOUT_MS / 1000} s)`);
  }, HARD_TIMEOUT_MS).unref();
  child.on("error", (err) => fail(`cannot run ${process.execPath}: ${err.message}`));
  child.on("exit", (code, signal) => {
    finished = true;
    if (signal) out(`FAIL killed by ${signal}`);
    process.exit(code ?? 1);
  });
} else {
  // A little under the parent's timer, so that the child is the one to report.
  setTimeout(
    () => fail(`timeout (${HARD_TIMEOUT_MS / 1000} s)`),
    HARD_TIMEOUT_MS - (process.env.SWITCHYARD_XMPPJS_REEXEC ? 500 : 0),
  ).unref();
  main().then(
    () => {
      finished = true;
      out("ALL OK");
      process.exit(0);
    },
    (err) => fail(err instanceof Failure ? err.message : describe(err)),
  );
}

function describe(err) {
  if (!err) return "unknown error";
  const parts = [err.name && err.name !== "Error" ? `${err.name}:` : "", err.message || String(err)];
  if (err.condition && !String(err.message).includes(err.condition)) parts.push(`(condition ${err.condition}${err.text ? `: ${err.text}` : ""})`);
  if (err.code && !String(err.message).includes(err.code)) parts.push(`(${err.code})`);
  if (err.cause) parts.push(`cause: ${describe(err.cause)}`);
  if (/non-101/.test(err.message)) {
    // undici says no more than this for a refused connection, an HTTP answer other than
    // 101, or a TLS failure.
    parts.push("(refused, HTTP status other than 101, or TLS failure: for wss:// with a private CA set NODE_EXTRA_CA_CERTS)");
  }
  return parts.filter(Boolean).join(" ");
}

function usage(message) {
  throw new Failure(
    `${message}; usage: ws_chat.mjs --url ws[s]://HOST:PORT/xmpp-websocket --domain DOMAIN ` +
      "--jid1 JID --pw1 PASSWORD --jid2 JID --pw2 PASSWORD [--verbose]",
  );
}

function parseArguments() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        url: { type: "string" },
        domain: { type: "string" },
        jid1: { type: "string" },
        pw1: { type: "string" },
        jid2: { type: "string" },
        pw2: { type: "string" },
        verbose: { type: "boolean", default: false },
      },
      strict: true,
    }));
  } catch (err) {
    usage(err.message);
  }
  for (const key of ["url", "jid1", "pw1", "jid2", "pw2"]) {
    if (!values[key]) usage(`--${key} is required`);
  }
  if (!/^wss?:\/\//.test(values.url)) usage("--url must start with ws:// or wss://");
  const accounts = [
    [values.jid1, values.pw1],
    [values.jid2, values.pw2],
  ].map(([jid, password]) => {
    const m = /^([^@/]+)@([^@/]+)$/.exec(jid);
    if (!m) usage(`${jid}: expected a bare JID local@domain`);
    return { jid: jid.toLowerCase(), username: m[1], domain: m[2].toLowerCase(), password };
  });
  const domain = (values.domain || accounts[0].domain).toLowerCase();
  for (const a of accounts) {
    if (a.domain !== domain) usage(`${a.jid} is not on --domain ${domain}`);
  }
  return { url: values.url, domain, accounts, verbose: values.verbose };
}

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

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main() {
  const args = parseArguments();
  let xmppjs;
  try {
    xmppjs = await import("@xmpp/client");
  } catch (err) {
    throw new Failure(
      `cannot load @xmpp/client (${err.message}); run npm ci in ${fileURLToPath(new URL(".", import.meta.url))}`,
    );
  }
  const { client, xml } = xmppjs;

  const [alice, bob] = args.accounts.map((account, i) => {
    const name = ["alice", "bob"][i] === account.username ? account.username : `client${i + 1}`;
    const c = {
      name,
      account,
      trace: [],
      stopping: false,
      smOffered: false,
      smResult: null, // "enabled" | "failed"
      saslMechanism: null,
      bindHow: null,
      ownPresenceSeen: false,
    };
    clients.push(c);
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

    const trace = (line) => {
      c.trace.push(line);
      if (c.trace.length > TRACE_LINES) c.trace.shift();
      if (args.verbose) process.stderr.write(`${c.name} ${line}\n`);
    };
    xmpp.on("status", (status) => trace(`# status ${status}`));
    xmpp.on("send", (el) => {
      trace(`>> ${show(el)}`);
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
      trace(`<< ${show(el)}`);
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
      trace(`# error ${describe(err)}`);
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
      if (jid.bare().toString() !== c.account.jid || !jid.getResource()) {
        throw new Failure(`${c.name}: bound JID ${c.jid} is not ${c.account.jid}/RESOURCE`);
      }
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

  for (const c of [alice, bob]) {
    await c.xmpp.send(xml("presence"));
    out(`OK ${c.name} available presence sent`);
  }

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

  const body = `xmppjs-ws ${randomUUID()}`;
  const atBob = expectStanza(bob, "message alice->bob", (el) => el.is("message") && el.getChildText("body") === body);
  await alice.xmpp.send(xml("message", { to: bob.jid, type: "chat", id: randomUUID() }, xml("body", {}, body)));
  const got = await atBob;
  if (got.attrs.from !== alice.jid) {
    throw new Failure(`message alice->bob: from is ${got.attrs.from}, expected ${alice.jid}`);
  }
  if (got.attrs.type !== "chat") {
    throw new Failure(`message alice->bob: type is ${got.attrs.type}, expected chat`);
  }
  out("OK message alice->bob");

  const reply = `re: ${body}`;
  const atAlice = expectStanza(alice, "message bob->alice", (el) => el.is("message") && el.getChildText("body") === reply);
  await bob.xmpp.send(xml("message", { to: got.attrs.from, type: "chat", id: randomUUID() }, xml("body", {}, reply)));
  const back = await atAlice;
  if (back.attrs.from !== bob.jid) {
    throw new Failure(`message bob->alice: from is ${back.attrs.from}, expected ${bob.jid}`);
  }
  out("OK message bob->alice");

  const iq = (c, what, stanza) =>
    c.xmpp.iqCaller.request(stanza, STEP_TIMEOUT_MS).catch((err) => {
      throw new Failure(`${what}: ${describe(err)}`);
    });

  const roster = await iq(alice, "roster get", xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })));
  const rosterQuery = roster.getChild("query", NS_ROSTER);
  if (roster.attrs.type !== "result") throw new Failure(`roster get: type ${roster.attrs.type}`);
  out(`OK roster get alice (${rosterQuery ? rosterQuery.getChildren("item").length : 0} items)`);

  const disco = await iq(
    alice,
    "disco#info on the domain",
    xml("iq", { type: "get", to: args.domain }, xml("query", { xmlns: NS_DISCO_INFO })),
  );
  const info = disco.getChild("query", NS_DISCO_INFO);
  if (disco.attrs.type !== "result" || !info) {
    throw new Failure(`disco#info ${args.domain}: no <query xmlns='${NS_DISCO_INFO}'/> result`);
  }
  if (disco.attrs.from && disco.attrs.from !== args.domain) {
    throw new Failure(`disco#info ${args.domain}: answer from ${disco.attrs.from}`);
  }
  const identities = info.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`);
  if (identities.length === 0) throw new Failure(`disco#info ${args.domain}: no <identity/> (XEP-0030 requires one)`);
  out(
    `OK disco#info ${args.domain} (identity ${identities.join(", ")}; ${info.getChildren("feature").length} features)`,
  );

  for (const c of [alice, bob]) {
    if (!c.ownPresenceSeen) out(`INFO ${c.name} did not get its own available presence back`);
  }

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
