#!/usr/bin/env node
// Interop check: two strophe.js clients chat through a running server over BOSH
// (XEP-0124 HTTP binding, XEP-0206 XMPP over BOSH).
//
// Steps, one output line each ("OK ..."), then "ALL OK":
//   alice and bob each open a BOSH session (POST to --url), authenticate with SASL (the
//   best password mechanism both sides have: SCRAM-SHA-512/384/256/1 or PLAIN, or the one
//   named by --mechanism) with an xmpp:restart after it, and bind a resource the server
//   generates (the bound JID must be the account's bare JID plus a resource); each sends
//   available presence; alice sends bob (his full JID) a chat message with a unique body,
//   bob checks body and sender and replies to the sender, alice checks the reply; alice
//   gets her roster (type='result'); alice asks the server for disco#info on the domain
//   (type='result' with at least one identity); both end their session with a
//   <body type='terminate'/> request, which must be answered with HTTP 200 (with every
//   other request still open answered too), and after which the server must refuse the
//   session id (HTTP 4xx, or a type='terminate' body such as condition='item-not-found').
// Every HTTP request of a session must be answered with 200: a refused connection, a
// dropped one, a TLS failure or any other status is a failure at once, with no retry.
// The session creation response must carry sid and wait (XEP-0124), with wait and hold no
// larger than asked for (wait 60, hold 1: strophe.js's defaults), and xmpp:version
// (XEP-0206, needed for the restart after SASL).
// Informational lines ("INFO ..."): SASL mechanism (and those offered), how the resource
// was bound, and the BOSH session parameters the server gave (wait, hold, requests,
// inactivity, polling, maxpause, ver, xmpp:version, secure, and the response
// Content-Type). Not a failure either way.
//
// Exit status 0 only when every step passed. On any error: a "FAIL <reason>" line on
// stdout, the clients' last HTTP bodies on stderr, exit 1. Everything is bounded by a
// hard 30 s timer (then "FAIL timeout", exit 1). --verbose prints all bodies to stderr
// (SASL payloads redacted).
//
// TLS (https://) is verified as Node does by default; for a self-signed certificate the
// caller sets NODE_EXTRA_CA_CERTS=ca.pem.
//
// Node >= 20.10. strophe.js runs under Node with @xmldom/xmldom (DOM) and ws (loaded by
// its Node entry point even when only BOSH is used); Node has no XMLHttpRequest, which
// strophe.js's BOSH transport needs, so xhr2 (XMLHttpRequest over node:http/https) is
// installed as the global one.
//
// Setup: npm ci (in this folder). Example:
//   node bosh_chat.mjs --url http://127.0.0.1:5280/http-bind --domain localhost \
//       --jid1 alice@localhost --pw1 secret --jid2 bob@localhost --pw2 secret

import http from "node:http";
import https from "node:https";
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
  clients,
  describe,
  fail,
  keepLast,
  loadLibrary,
  newClient,
  out,
  parseArguments,
  runMain,
  setFailureDump,
  withTimeout as timeout,
} from "./common.mjs";

const LIB_TRACE_LINES = 20; // strophe.js warnings and errors, dumped on failure
const BOSH_WAIT = 60; // asked for in the session creation request (strophe.js's default)
const BOSH_HOLD = 1; // likewise
// Session creation response attributes kept for the checks and the INFO line.
const SESSION_ATTRIBUTES = [
  ...["sid", "wait", "hold", "requests", "inactivity", "polling", "maxpause"],
  ...["ver", "xmpp:version", "secure"],
];

const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";

// strophe.js's password mechanisms, best first (its own priorities).
const MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];
const MECHANISM_CLASS = {
  "SCRAM-SHA-512": "SASLSHA512",
  "SCRAM-SHA-384": "SASLSHA384",
  "SCRAM-SHA-256": "SASLSHA256",
  "SCRAM-SHA-1": "SASLSHA1",
  PLAIN: "SASLPlain",
};

const libTrace = [];
setFailureDump("last HTTP bodies", (c) => c.status, { "strophe.js warnings and errors": libTrace });
addDescribeHint((err) =>
  /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify|self-signed/i.test(`${err.code} ${err.message}`)
    ? "(for https:// with a private CA set NODE_EXTRA_CA_CERTS)"
    : null,
);

// Not unref'd: the process must not end before main() settles, and main() must end with
// process.exit either way.
runMain(main);

// A body for the trace, with SASL payloads (password material) left out.
function redact(xmlText) {
  return String(xmlText).replace(
    /(<(auth|response|challenge|success)\b[^>]*xmlns=['"]urn:ietf:params:xml:ns:xmpp-sasl['"][^>]*>)[^<]+(<\/\2>)/g,
    "$1[redacted]$3",
  );
}

// An attribute of the first (outermost) <body> start tag of an HTTP body.
function bodyAttr(text, name) {
  return attr(/<body\b[^>]*>/.exec(String(text))?.[0] ?? "", name);
}

function attr(text, name) {
  const m = new RegExp(`\\s${name}=(?:'([^']*)'|"([^"]*)")`).exec(text);
  return m ? (m[1] ?? m[2]) : null;
}

// The child elements of el named `name` in namespace `ns` (xmldom elements).
function children(el, name, ns) {
  const found = [];
  for (let n = el?.firstChild; n; n = n.nextSibling) {
    if (n.nodeType === 1 && n.localName === name && (!ns || n.namespaceURI === ns)) found.push(n);
  }
  return found;
}

function child(el, name, ns) {
  return children(el, name, ns)[0] ?? null;
}

// "<condition/>: text" of a stanza error or SASL failure.
function errorText(el) {
  if (!el) return "no answer";
  const error = child(el, "error") ?? el;
  const condition = [...(error.childNodes ?? [])].find((n) => n.nodeType === 1 && n.localName !== "text");
  const text = child(error, "text")?.textContent;
  const type = error.getAttribute?.("type");
  return `${condition ? condition.localName : "no condition"}${type ? ` (type ${type})` : ""}${text ? `: ${text}` : ""}`;
}

// `waiter`: the client whose open HTTP requests the timeout message lists.
function withTimeout(promise, ms, what, waiter) {
  return timeout(promise, ms, what, () => openRequests(waiter));
}

function openRequests(c) {
  if (!c) return "";
  const now = Date.now();
  const open = [...c.open].map((x) => `rid ${x.rid} sent ${((now - x.sentAt) / 1000).toFixed(1)} s ago`);
  return open.length ? ` (${c.name}'s open HTTP requests: ${open.join(", ")})` : ` (${c.name} has no open HTTP request)`;
}

// Whose request is this body: by sid, or (session creation, no sid yet) by its rid.
function ownerOf(body) {
  const sid = bodyAttr(body, "sid");
  const rid = Number(bodyAttr(body, "rid"));
  return clients.find((c) => (sid ? c.sid === sid : c.rid0 === rid)) ?? null;
}

// XMLHttpRequest for strophe.js: xhr2's, watched. Every request of a live session must
// get HTTP 200; anything else ends the test with the reason.
function watchedXhrClass(Xhr2, args) {
  return class WatchedXMLHttpRequest extends Xhr2 {
    constructor(...rest) {
      super(...rest);
      this.networkError = null;
      // Listeners run before strophe.js's onreadystatechange: the reason is reported
      // before strophe.js turns it into a status change.
      this.addEventListener("readystatechange", () => {
        if (this.readyState === 4) this.done();
      });
      this.addEventListener("abort", () => {
        this.owner?.open.delete(this);
        this.owner?.traceLine(`# HTTP rid ${this.rid} aborted by strophe.js`);
      });
    }

    send(data) {
      this.body = String(data ?? "");
      this.rid = bodyAttr(this.body, "rid");
      this.owner = ownerOf(this.body);
      this.terminate = bodyAttr(this.body, "type") === "terminate";
      this.sentAt = Date.now();
      if (this.owner) {
        if (Number(this.rid) > this.owner.lastRid) this.owner.lastRid = Number(this.rid);
        this.owner.open.add(this);
      }
      return super.send(data);
    }

    // xhr2 has no responseXML, and strophe.js reads bodies only from responseXML (given
    // just responseText it parses that to check it, then drops it). A browser parses
    // a text/xml response (strophe.js also overrides the MIME type to text/xml);
    // DOMParser is strophe.js's own Node shim (@xmldom/xmldom), which gives a
    // <parsererror/> document for malformed XML, as browsers do.
    get responseXML() {
      if (this.readyState !== 4 || !this.responseText) return null;
      if (this.parsedXml?.text !== this.responseText) {
        this.parsedXml = {
          text: this.responseText,
          doc: new globalThis.DOMParser().parseFromString(this.responseText, "text/xml"),
        };
      }
      return this.parsedXml.doc;
    }

    // xhr2 0.2.1 internals (the version is pinned): keep the reason it drops.
    _onHttpRequestError(request, error) {
      this.networkError = error;
      return super._onHttpRequestError(request, error);
    }

    _onHttpResponseClose(response) {
      this.networkError = new Error("connection closed before the end of the response");
      return super._onHttpResponseClose(response);
    }

    done() {
      const c = this.owner;
      const status = this.status;
      c?.open.delete(this);
      c?.traceLine(`# HTTP rid ${this.rid} -> ${status || describe(this.networkError)}`);
      if (c) c.httpCount++;
      if (c && this.terminate) {
        c.terminateAnswer = { status, type: bodyAttr(this.responseText ?? "", "type") };
      }
      if (c && !c.contentType && status === 200) c.contentType = this.getResponseHeader("content-type");
      if (c?.stopped) return;
      if (status === 200) return;
      const who = c ? c.name : "a client";
      if (!status) {
        const reason = describe(this.networkError ?? new Error("no response"));
        fail(`${who}: HTTP POST ${args.url} (rid ${this.rid}) failed: ${reason}`);
      } else {
        const text = (this.responseText ?? "").replace(/\s+/g, " ").slice(0, 200);
        fail(
          `${who}: HTTP POST ${args.url} (rid ${this.rid}) answered ${status} ${this.statusText ?? ""}` +
            (text ? `: ${text}` : ""),
        );
      }
    }
  };
}

// One POST outside strophe.js (after the session ended), bounded by STEP_TIMEOUT_MS.
function postRaw(url, body) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === "https:" ? https : http).request(
      u,
      {
        method: "POST",
        headers: { "Content-Type": "text/xml; charset=utf-8", "Content-Length": Buffer.byteLength(body) },
        agent: false,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode, text }));
        res.on("error", (error) => resolve({ error }));
      },
    );
    req.setTimeout(STEP_TIMEOUT_MS, () => {
      req.destroy();
      resolve({ timeout: true });
    });
    req.on("error", (error) => resolve({ error }));
    req.end(body);
  });
}

async function main() {
  const args = parseArguments({
    script: "bosh_chat.mjs",
    scheme: "http",
    path: "http-bind",
    options: { mechanism: { type: "string" } },
    usageOptions: `[--mechanism ${MECHANISMS.join("|")}] `,
    check: (values, usage) => {
      const mechanism = values.mechanism?.toUpperCase();
      if (mechanism && !MECHANISMS.includes(mechanism)) usage(`--mechanism ${values.mechanism} is not supported`);
      return { mechanism };
    },
  });

  // strophe.js logs through console; this script writes to stdout/stderr itself, so the
  // console is kept for the failure dump.
  for (const level of ["debug", "info", "warn", "error", "log"]) {
    console[level] = (...parts) => {
      const line = `# ${level} ${parts.join(" ")}`;
      keepLast(libTrace, line, LIB_TRACE_LINES);
      if (args.verbose) process.stderr.write(`strophe.js ${line}\n`);
    };
  }

  const { Strophe, $iq, $msg, $pres, Xhr2 } = await loadLibrary("strophe.js/xhr2", async () => ({
    ...(await import("strophe.js")),
    Xhr2: (await import("xhr2")).default,
  }));
  Strophe.setLogLevel(Strophe.LogLevel.WARN);
  globalThis.XMLHttpRequest = watchedXhrClass(Xhr2, args);
  const statusName = Object.fromEntries(Object.entries(Strophe.Status).map(([k, v]) => [v, k]));
  const mechanisms = (args.mechanism ? [args.mechanism] : MECHANISMS).map((m) => Strophe[MECHANISM_CLASS[m]]);

  const [alice, bob] = args.accounts.map((account, i) => {
    const conn = new Strophe.Connection(args.url, { mechanisms });
    const c = newClient(account, i, args.verbose, {
      conn,
      status: "new",
      rid0: conn._proto.rid, // the session creation request's rid
      lastRid: 0,
      sid: null,
      session: null, // the session creation response's attributes
      offered: null, // SASL mechanisms offered
      contentType: null,
      httpCount: 0,
      open: new Set(), // HTTP requests not answered yet
      terminateAnswer: null,
      stopping: false,
      stopped: false,
      ownPresenceSeen: false,
      onStatus: null, // set while a login or a stop waits
    });
    conn.rawOutput = (data) => c.traceLine(`>> ${redact(data)}`);
    conn.rawInput = (data) => c.traceLine(`<< ${redact(data)}`);
    conn.xmlInput = (body) => {
      if (!c.session && body.getAttribute("sid")) {
        c.sid = body.getAttribute("sid");
        c.session = {};
        for (const a of SESSION_ATTRIBUTES) c.session[a] = body.getAttribute(a) || null;
      }
      if (!c.offered) {
        const list = body.getElementsByTagNameNS(NS_SASL, "mechanism");
        if (list.length) {
          c.offered = [...list].map((m) => m.textContent);
          const usable = (args.mechanism ? [args.mechanism] : MECHANISMS).filter((m) => c.offered.includes(m));
          if (!usable.length) {
            fail(
              `${c.name} login: no SASL mechanism in common (server offers ${c.offered.join(", ")}; ` +
                `this client: ${args.mechanism ?? MECHANISMS.join(", ")})`,
            );
          }
        }
      }
    };
    return c;
  });

  // One status callback per connection for its whole life: before CONNECTED it settles
  // the login, while stopping it settles the stop, otherwise a drop is a failure.
  const connectStatus = (c) => (status, condition, elem) => {
    c.status = statusName[status] ?? String(status);
    c.traceLine(`# status ${c.status}${condition ? ` (${condition})` : ""}`);
    if (c.onStatus) {
      c.onStatus(status, condition, elem);
      return;
    }
    const S = Strophe.Status;
    if ([S.CONNFAIL, S.DISCONNECTED, S.ERROR, S.CONNTIMEOUT, S.AUTHFAIL].includes(status)) {
      fail(`${c.name}: session ended unexpectedly (${c.status}${condition ? `, ${condition}` : ""})`);
    }
  };

  function login(c) {
    return new Promise((resolve, reject) => {
      c.onStatus = (status, condition, elem) => {
        const S = Strophe.Status;
        if (status === S.CONNECTED) {
          c.onStatus = null;
          resolve();
        } else if (status === S.AUTHFAIL) {
          const why =
            elem?.localName === "failure"
              ? `SASL ${c.conn._sasl_mechanism?.mechname} failure: ${errorText(elem)}`
              : `authentication or resource binding failed${elem ? `: ${errorText(elem)}` : ""}`;
          reject(new Failure(`${c.name} login: ${why}`));
        } else if ([S.CONNFAIL, S.ERROR, S.DISCONNECTED, S.CONNTIMEOUT].includes(status)) {
          reject(new Failure(`${c.name} login: ${statusName[status]}${condition ? ` (${condition})` : ""}`));
        }
      };
      c.conn.connect(c.account.jid, c.account.password, connectStatus(c), BOSH_WAIT, BOSH_HOLD);
    });
  }

  // Login: BOSH session creation, SASL, restart, resource binding.
  await Promise.all(
    [alice, bob].map(async (c) => {
      await withTimeout(login(c), STEP_TIMEOUT_MS, `${c.name} login`, c);
      c.jid = c.conn.jid;
      checkBoundJid(c, Strophe.getBareJidFromJid(c.jid)?.toLowerCase(), Strophe.getResourceFromJid(c.jid));
      const s = c.session;
      if (!s?.sid) throw new Failure(`${c.name}: the session creation response has no sid (XEP-0124)`);
      if (!s.wait) throw new Failure(`${c.name}: the session creation response has no wait (XEP-0124)`);
      if (!(Number(s.wait) <= BOSH_WAIT)) {
        throw new Failure(`${c.name}: the server's wait ${s.wait} is more than the ${BOSH_WAIT} asked for (XEP-0124)`);
      }
      if (s.hold && !(Number(s.hold) <= BOSH_HOLD)) {
        throw new Failure(`${c.name}: the server's hold ${s.hold} is more than the ${BOSH_HOLD} asked for (XEP-0124)`);
      }
      if (!s["xmpp:version"]) {
        throw new Failure(`${c.name}: the session creation response has no xmpp:version (XEP-0206)`);
      }
      out(`OK ${c.name} online as ${c.jid}`);
      out(
        `INFO ${c.name} auth SASL ${c.conn._sasl_mechanism?.mechname ?? "?"} (offered ${c.offered?.join(", ") ?? "?"}), ` +
          "resource by RFC 6120 bind (server-generated resource)" +
          (c.conn.do_session ? `, then a session iq (${NS_SESSION} was offered)` : ""),
      );
      const show = (k) => `${k}=${s[k] ?? "absent"}`;
      out(
        `INFO ${c.name} bosh ${["wait", "hold", "requests", "inactivity", "polling", "maxpause"].map(show).join(" ")} ` +
          `(${["ver", "xmpp:version", "secure"].map(show).join(" ")}; Content-Type ${c.contentType ?? "absent"})`,
      );
    }),
  );

  // Stanzas from here on; handlers registered before anything is sent.
  for (const c of [alice, bob]) {
    c.conn.addHandler(
      (el) => {
        if (el.getAttribute("from") === c.jid && !el.getAttribute("type")) c.ownPresenceSeen = true;
        return true;
      },
      null,
      "presence",
    );
    c.conn.addHandler(
      (el) => {
        fail(`${c.name} received a message error: ${errorText(el)}`);
        return true;
      },
      null,
      "message",
      "error",
    );
  }

  // Waits for the first message that `match` accepts.
  function expectMessage(c, what, match) {
    let handler;
    const promise = new Promise((resolve) => {
      handler = c.conn.addHandler(
        (el) => {
          if (!match(el)) return true;
          resolve(el);
          return false;
        },
        null,
        "message",
      );
    });
    return withTimeout(promise, STEP_TIMEOUT_MS, what, c).finally(() => c.conn.deleteHandler(handler));
  }
  const bodyOf = (el) => child(el, "body")?.textContent ?? null;

  const iq = (c, what, stanza) =>
    withTimeout(
      new Promise((resolve, reject) =>
        c.conn.sendIQ(stanza, resolve, (el) => reject(new Failure(`${what}: ${el ? `error ${errorText(el)}` : "no answer"}`))),
      ),
      STEP_TIMEOUT_MS,
      what,
      c,
    );

  await chatSteps(
    {
      sendPresence: (c) => c.conn.send($pres()),
      sendMessage: (c, to, body) => c.conn.send($msg({ to, type: "chat", id: randomUUID() }).c("body").t(body)),
      expectMessage: (c, what, body) =>
        expectMessage(c, what, (el) => bodyOf(el) === body).then((el) => ({
          from: el.getAttribute("from"),
          type: el.getAttribute("type"),
        })),
      rosterGet: async (c) => {
        const roster = await iq(c, "roster get", $iq({ type: "get" }).c("query", { xmlns: NS_ROSTER }));
        const query = child(roster, "query", NS_ROSTER);
        return { type: roster.getAttribute("type"), items: query ? children(query, "item").length : 0 };
      },
      discoInfo: async (c, to) => {
        const disco = await iq(c, "disco#info on the domain", $iq({ type: "get", to }).c("query", { xmlns: NS_DISCO_INFO }));
        const info = child(disco, "query", NS_DISCO_INFO);
        return {
          type: disco.getAttribute("type"),
          from: disco.getAttribute("from"),
          identities: info
            ? children(info, "identity").map((i) => `${i.getAttribute("category")}/${i.getAttribute("type")}`)
            : null,
          features: info ? children(info, "feature").length : 0,
        };
      },
    },
    [alice, bob],
    args.domain,
    "strophe-bosh",
  );

  // XEP-0124 13 / XEP-0206: <body type='terminate'/> (strophe.js puts unavailable presence
  // in it), answered with 200; strophe.js reports DISCONNECTED once every open request
  // has been answered, CONNTIMEOUT if one is still open after 3 s. Then the old sid must
  // no longer be accepted.
  for (const c of [alice, bob]) {
    c.stopping = true;
    const ended = new Promise((resolve, reject) => {
      c.onStatus = (status) => {
        if (status === Strophe.Status.DISCONNECTED) resolve();
        else if (status === Strophe.Status.CONNTIMEOUT) {
          const ms = c.conn.disconnection_timeout;
          reject(new Failure(`${c.name} stop: a request was still unanswered ${ms} ms after terminate`));
        } else if (status === Strophe.Status.CONNFAIL) reject(new Failure(`${c.name} stop: ${c.status}`));
      };
    });
    c.conn.disconnect();
    await withTimeout(ended, STEP_TIMEOUT_MS, `${c.name} stop`, c);
    c.stopped = true;
    const t = c.terminateAnswer;
    if (!t) throw new Failure(`${c.name} stop: the terminate request got no answer`);
    if (t.status !== 200) throw new Failure(`${c.name} stop: the terminate request got HTTP ${t.status}`);

    const probe = await postRaw(args.url, `<body rid='${c.lastRid + 1}' sid='${c.sid}' xmlns='${NS_HTTPBIND}'/>`);
    let gone;
    if (probe.timeout) {
      throw new Failure(
        `${c.name} stop: a request on the terminated session was held ${STEP_TIMEOUT_MS} ms (session still open)`,
      );
    } else if (probe.error) {
      throw new Failure(`${c.name} stop: a request on the terminated session failed: ${describe(probe.error)}`);
    } else if (probe.status >= 400 && probe.status < 500) {
      gone = `HTTP ${probe.status}`;
    } else if (probe.status === 200 && bodyAttr(probe.text, "type") === "terminate") {
      gone = `terminate condition=${bodyAttr(probe.text, "condition") ?? "absent"}`;
    } else {
      throw new Failure(
        `${c.name} stop: a request on the terminated session was answered HTTP ${probe.status}: ${probe.text.slice(0, 200)}`,
      );
    }
    out(
      `OK ${c.name} stopped (terminate answered HTTP 200${t.type ? ` type=${t.type}` : ""}; old sid then refused: ${gone}; ` +
        `${c.httpCount} HTTP requests)`,
    );
  }
}
