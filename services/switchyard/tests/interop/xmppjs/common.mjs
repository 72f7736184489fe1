// What the interop chat scripts (ws_chat.mjs, bosh_chat.mjs) share: the command line,
// the output lines ("OK ...", "INFO ...", "ALL OK", "FAIL ..."), the per-client traces
// dumped on failure, the hard timer, and the steps after login (presence, a message each
// way, roster, disco#info). Each script keeps its transport: the client library, login,
// stop, and the small adapter `chatSteps` calls.
//
// One script per process: the state here (clients, whether the run has finished) is the
// process's.

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

export const HARD_TIMEOUT_MS = 30_000;
export const STEP_TIMEOUT_MS = 5_000; // one login, one reply, one IQ, one stream close
export const TRACE_LINES = 40; // per client, dumped on failure

export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_ROSTER = "jabber:iq:roster";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";

export class Failure extends Error {}

export const clients = []; // for the trace dump on failure
let finished = false;
// What fail() writes to stderr: set by the script with setFailureDump.
const dump = { what: "trace", status: () => undefined, sections: {} };

export function out(line) {
  process.stdout.write(line + "\n");
}

// `what`: what a client's trace holds ("last XML"); `status(c)`: the client's state for
// the heading; `sections`: further traces by title, dumped after the clients' when not
// empty.
export function setFailureDump(what, status, sections = {}) {
  Object.assign(dump, { what, status, sections });
}

// "FAIL <reason>" on stdout, the traces on stderr, exit 1; once only.
export function fail(reason) {
  if (finished) return;
  finished = true;
  out(`FAIL ${reason}`);
  for (const c of clients) {
    process.stderr.write(`--- ${dump.what} of ${c.name} (status ${dump.status(c)}) ---\n`);
    for (const line of c.trace) process.stderr.write(line + "\n");
  }
  for (const [title, lines] of Object.entries(dump.sections)) {
    if (!lines.length) continue;
    process.stderr.write(`--- ${title} ---\n`);
    for (const line of lines) process.stderr.write(line + "\n");
  }
  process.exit(1);
}

// From here on fail() does nothing (the process is about to exit on its own terms).
export function markFinished() {
  finished = true;
}

export function failTimeout() {
  fail(`timeout (${HARD_TIMEOUT_MS / 1000} s)`);
}

// Runs main() under the hard timer: "ALL OK" and exit 0 once it resolves, "FAIL ..." and
// exit 1 if it rejects or the timer fires first (after `timeoutMs`; the message always
// names HARD_TIMEOUT_MS). `unref`: the timer does not keep the process alive.
export function runMain(main, { timeoutMs = HARD_TIMEOUT_MS, unref = false } = {}) {
  const timer = setTimeout(failTimeout, timeoutMs);
  if (unref) timer.unref();
  main().then(
    () => {
      finished = true;
      out("ALL OK");
      process.exit(0);
    },
    (err) => fail(err instanceof Failure ? err.message : describe(err)),
  );
}

// Script-specific notes for describe(): (err) => a part to add, or nothing.
const describeHints = [];

export function addDescribeHint(hint) {
  describeHints.push(hint);
}

// One line for an error, its code, xmpp.js's stanza/SASL condition and its causes.
export function describe(err) {
  if (!err) return "unknown error";
  const parts = [err.name && err.name !== "Error" ? `${err.name}:` : "", err.message || String(err)];
  if (err.condition && !String(err.message).includes(err.condition)) parts.push(`(condition ${err.condition}${err.text ? `: ${err.text}` : ""})`);
  if (err.code && !String(err.message).includes(err.code)) parts.push(`(${err.code})`);
  if (err.cause) parts.push(`cause: ${describe(err.cause)}`);
  for (const hint of describeHints) parts.push(hint(err));
  return parts.filter(Boolean).join(" ");
}

// Rejects with "WHAT: no answer within MS ms" (plus `more()`, if given) unless `promise`
// settles first.
export function withTimeout(promise, ms, what, more) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`${what}: no answer within ${ms} ms${more ? more() : ""}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Imports the client library (`load`), or says to run npm ci.
export async function loadLibrary(what, load) {
  try {
    return await load();
  } catch (err) {
    throw new Failure(`cannot load ${what} (${err.message}); run npm ci in ${fileURLToPath(new URL(".", import.meta.url))}`);
  }
}

// The command line: --url (scheme `scheme` or `scheme`s, e.g. ws/wss), --domain (default
// the first JID's), --jid1/--pw1/--jid2/--pw2 (bare JIDs on that domain), --verbose, and
// the script's own `options`; `check(values, usage)` validates those (after --url, before
// the JIDs) and returns what to add to the result. Errors throw a Failure with the usage.
export function parseArguments({ script, scheme, path, options = {}, usageOptions = "", check = () => ({}) }) {
  const usage = (message) => {
    throw new Failure(
      `${message}; usage: ${script} --url ${scheme}[s]://HOST:PORT/${path} --domain DOMAIN ` +
        `--jid1 JID --pw1 PASSWORD --jid2 JID --pw2 PASSWORD ${usageOptions}[--verbose]`,
    );
  };
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
        ...options,
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
  if (!new RegExp(`^${scheme}s?://`).test(values.url)) usage(`--url must start with ${scheme}:// or ${scheme}s://`);
  const extra = check(values, usage);
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
  return { url: values.url, domain, accounts, ...extra, verbose: values.verbose };
}

// Appends `line` to `lines`, keeping the last `max`.
export function keepLast(lines, line, max) {
  lines.push(line);
  if (lines.length > max) lines.shift();
}

// A client record for account number `i` (named alice/bob when the accounts are), with
// `fields`, a trace (c.traceLine; to stderr too with --verbose), and listed for the
// failure dump.
export function newClient(account, i, verbose, fields) {
  const name = ["alice", "bob"][i] === account.username ? account.username : `client${i + 1}`;
  const c = { name, account, trace: [], ...fields };
  c.traceLine = (line) => {
    keepLast(c.trace, line, TRACE_LINES);
    if (verbose) process.stderr.write(`${c.name} ${line}\n`);
  };
  clients.push(c);
  return c;
}

// The bound JID must be the account's bare JID plus a resource.
export function checkBoundJid(c, bare, resource) {
  if (bare !== c.account.jid || !resource) {
    throw new Failure(`${c.name}: bound JID ${c.jid} is not ${c.account.jid}/RESOURCE`);
  }
}

// The steps between login and stop, the same over every transport. Each client has
// `jid` (its full JID) and `ownPresenceSeen`. `t`, the transport's part:
//   sendPresence(c)                      available presence
//   sendMessage(c, to, body)             a chat message
//   expectMessage(c, what, body)         the first message with that body, as { from, type },
//                                        listening from the call on, bounded by a timeout
//   rosterGet(c)                         -> { type, items } (items: the count)
//   discoInfo(c, to)                     -> { type, from, identities: ["category/type"],
//                                        features (the count) }, identities null without
//                                        a disco#info query
// `bodyPrefix` starts the message body (the rest is unique).
export async function chatSteps(t, [alice, bob], domain, bodyPrefix) {
  for (const c of [alice, bob]) {
    await t.sendPresence(c);
    out(`OK ${c.name} available presence sent`);
  }

  const body = `${bodyPrefix} ${randomUUID()}`;
  const atBob = t.expectMessage(bob, "message alice->bob", body);
  await t.sendMessage(alice, bob.jid, body);
  const got = await atBob;
  if (got.from !== alice.jid) {
    throw new Failure(`message alice->bob: from is ${got.from}, expected ${alice.jid}`);
  }
  if (got.type !== "chat") {
    throw new Failure(`message alice->bob: type is ${got.type}, expected chat`);
  }
  out("OK message alice->bob");

  const reply = `re: ${body}`;
  const atAlice = t.expectMessage(alice, "message bob->alice", reply);
  await t.sendMessage(bob, got.from, reply);
  const back = await atAlice;
  if (back.from !== bob.jid) {
    throw new Failure(`message bob->alice: from is ${back.from}, expected ${bob.jid}`);
  }
  out("OK message bob->alice");

  const roster = await t.rosterGet(alice);
  if (roster.type !== "result") throw new Failure(`roster get: type ${roster.type}`);
  out(`OK roster get alice (${roster.items} items)`);

  const disco = await t.discoInfo(alice, domain);
  if (disco.type !== "result" || !disco.identities) {
    throw new Failure(`disco#info ${domain}: no <query xmlns='${NS_DISCO_INFO}'/> result`);
  }
  if (disco.from && disco.from !== domain) {
    throw new Failure(`disco#info ${domain}: answer from ${disco.from}`);
  }
  if (disco.identities.length === 0) throw new Failure(`disco#info ${domain}: no <identity/> (XEP-0030 requires one)`);
  out(`OK disco#info ${domain} (identity ${disco.identities.join(", ")}; ${disco.features} features)`);

  for (const c of [alice, bob]) {
    if (!c.ownPresenceSeen) out(`INFO ${c.name} did not get its own available presence back`);
  }
}

// Runs main() as runMain does, in a Node with a global WebSocket: Node 20 has it only
// behind --experimental-websocket, so without it the script (`scriptUrl`, its
// import.meta.url) runs itself again with that flag, same arguments, and passes on the
// exit status; the hard timer covers the child too.
export function runMainWithWebSocket(main, scriptUrl) {
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
      [...flags, ...process.execArgv, fileURLToPath(scriptUrl), ...process.argv.slice(2)],
      { stdio: "inherit", env: { ...process.env, SWITCHYARD_XMPPJS_REEXEC: "1" } },
    );
    setTimeout(() => {
      child.kill("SIGKILL");
      failTimeout();
    }, HARD_TIMEOUT_MS).unref();
    child.on("error", (err) => fail(`cannot run ${process.execPath}: ${err.message}`));
    child.on("exit", (code, signal) => {
      markFinished();
      if (signal) out(`FAIL killed by ${signal}`);
      process.exit(code ?? 1);
    });
  } else {
    // A little under the parent's timer, so that the child is the one to report.
    runMain(main, { timeoutMs: HARD_TIMEOUT_MS - (process.env.SWITCHYARD_XMPPJS_REEXEC ? 500 : 0), unref: true });
  }
}
