// The entry (src/entry): request ids, JSON errors for unknown paths and methods, one structured log line per
// request, panic recovery, configuration validated once per isolate with errors that name the key, and the shared
// reader of JSON bodies (src/entry/body.rs, through POST /auth/login).
import { request as httpRequest } from "node:http";
import { after, before, test } from "node:test";
import { deflateSync, gzipSync } from "node:zlib";
import assert from "node:assert/strict";
import { chunkedBody, onOneConnection, startWorker, until } from "./support/worker.mjs";
import { startOrigin } from "./support/origin.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";

let worker;
before(async () => {
  worker = await startWorker();
});
after(() => worker?.stop());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("every response carries x-request-id: a well-formed incoming one is kept, others are replaced", async () => {
  const cases = [
    { sent: undefined, kept: false },
    { sent: "client-trace-42", kept: true },
    { sent: "0f8fad5b-d9cb-469f-a165-70867728950e", kept: true },
    { sent: "has spaces in it", kept: false },
    { sent: "x".repeat(129), kept: false },
    { sent: "<script>alert(1)</script>", kept: false },
  ];
  for (const { sent, kept } of cases) {
    for (const path of ["/health", "/no-such-path"]) {
      const headers = sent === undefined ? {} : { "x-request-id": sent };
      const response = await worker.fetch(path, { headers });
      await response.arrayBuffer();
      const id = response.headers.get("x-request-id");
      if (kept) assert.equal(id, sent, `${path} keeps ${sent}`);
      else assert.match(id, UUID, `${path} replaces ${JSON.stringify(sent)}`);
    }
  }
});

test("unknown paths and methods answer JSON 404 and 405 with Allow", async () => {
  const notFound = await worker.fetch("/definitely/not/here");
  assert.equal(notFound.status, 404);
  assert.deepEqual(Object.keys((await notFound.json()).error).sort(), ["code", "message"]);
  for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
    const response = await worker.fetch("/health", { method });
    assert.equal(response.status, 405, method);
    assert.equal(response.headers.get("allow"), "GET, HEAD");
    const body = await response.json();
    assert.equal(body.error.code, "method_not_allowed");
  }
  const head = await worker.fetch("/health", { method: "HEAD" });
  assert.equal(head.status, 200);
});

test("every answer the Worker makes itself says X-Content-Type-Options: nosniff, and one JSON type, application/json", async () => {
  // A JSON error echoes the request's path and a page is HTML: sniffed as another type (an old browser, a download
  // opened in place) either could run as script. The origin's own answers, proxied by the gateway, are its own.
  // Successes said application/json (workers-rs' from_json) and errors application/json; charset=utf-8, so a client or
  // a query matching the type exactly saw two: RFC 8259 §11 defines no charset for JSON (it is UTF-8), so the plain one.
  // (A room object's own refusal, which reaches the client beside these: tests/rooms.test.mjs, joining needs a ticket.)
  for (const [method, path, status] of [
    ["GET", "/health", 200],
    ["GET", "/openapi.json", 200],
    ["GET", "/no-such-path/<script>", 404],
    ["DELETE", "/health", 405],
    ["POST", "/auth/login", 400],
  ]) {
    const response = await worker.fetch(path, { method, ...(method === "POST" ? { body: "{", headers: { "content-type": "application/json" } } : {}) });
    await response.arrayBuffer();
    assert.equal(response.status, status, `${method} ${path}`);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", `${method} ${path}`);
    assert.equal(response.headers.get("content-type"), "application/json", `${method} ${path}`);
  }
});

test("a 405 lists in Allow only the methods the path serves: the WebSocket join takes GET and not HEAD", async () => {
  // RFC 9110 §15.5.6: Allow lists the target's supported methods. The join refuses a HEAD (no handshake), so a 405
  // that named HEAD sent a client to a method that is refused in turn.
  for (const method of ["POST", "PUT", "DELETE", "HEAD"]) {
    const response = await worker.fetch("/rooms/allow-check/ws", { method });
    assert.equal(response.status, 405, method);
    assert.equal(response.headers.get("allow"), "GET", method);
    await response.arrayBuffer();
  }
  // Routes whose GET handler serves HEAD keep it.
  const page = await worker.fetch("/rooms/allow-check", { method: "POST" });
  assert.equal(page.status, 405);
  assert.equal(page.headers.get("allow"), "GET, HEAD");
  await page.arrayBuffer();
});

test("every spelling of an app route's path meets that route (doubled slashes, escaped unreserved characters)", async () => {
  // Sent raw: fetch() would read `//health` as a host.
  const raw = (path) =>
    new Promise((resolve, reject) => {
      const target = new URL(worker.url);
      const req = httpRequest({ host: target.hostname, port: target.port, path }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
      req.end();
    });
  for (const path of ["//health", "/%68ealth"]) {
    const { status, body } = await raw(path);
    assert.equal(status, 200, `${path}: ${body}`);
    assert.equal(JSON.parse(body).status, "ok", path);
  }
  // A route parameter arrives as the route matched it: the room page of `abc` (it was refused as an invalid name).
  const room = await raw("/rooms/%61bc");
  assert.equal(room.status, 200, room.body);
  assert.match(room.body, /abc/);
});

test("each request writes one JSON log line with method, path, status, duration, request id and colo", async () => {
  const id = `log-check-${Date.now()}`;
  await (await worker.fetch("/no-such-path?secret=1", { headers: { "x-request-id": id } })).arrayBuffer();
  const line = await until(() => worker.jsonLogs().find((l) => l.request_id === id), { what: "the log line" });
  assert.equal(line.msg, "request");
  assert.equal(line.method, "GET");
  assert.equal(line.path, "/no-such-path", "the query string is not logged");
  assert.equal(line.status, 404);
  assert.equal(line.level, "warn");
  assert.equal(typeof line.duration_ms, "number");
  assert.equal(typeof line.colo, "string");
  assert.equal(worker.jsonLogs().filter((l) => l.request_id === id).length, 1, "exactly one line");
});

test("every line the Worker writes names its SERVICE_NAME: request lines, event lines and the panic line", async (t) => {
  // README: SERVICE_NAME is the "name in /health and every log line". Workers sharing one log destination (a
  // staging and a production deploy, two services) are told apart by it; no line carried it.
  const named = await startWorker({ vars: { SERVICE_NAME: "edge-named", ROOMS_MAX_MEMBER: 3 } });
  t.after(() => named.stop());
  await (await named.fetch("/no-such-path", { headers: { "x-request-id": "named-404" } })).arrayBuffer();
  await (await named.fetch("/__debug/panic")).arrayBuffer();
  const lines = await until(
    () => {
      const logs = named.jsonLogs();
      const found = [
        logs.find((l) => l.msg === "request" && l.request_id === "named-404"),
        logs.find((l) => l.msg === "config_key_unread"),
        logs.find((l) => l.msg === "panic"),
      ];
      return found.every(Boolean) && found;
    },
    { what: () => JSON.stringify(named.jsonLogs()) },
  );
  assert.deepEqual(
    lines.map((l) => [l.msg, l.service]),
    [["request", "edge-named"], ["config_key_unread", "edge-named"], ["panic", "edge-named"]],
  );
});

test("with REQUEST_LOG_PERCENT=0 successes are not logged but errors still are", async (t) => {
  const quiet = await startWorker({ vars: { REQUEST_LOG_PERCENT: 0 } });
  t.after(() => quiet.stop());
  await (await quiet.fetch("/health", { headers: { "x-request-id": "quiet-ok" } })).arrayBuffer();
  await (await quiet.fetch("/missing", { headers: { "x-request-id": "quiet-404" } })).arrayBuffer();
  await until(() => quiet.jsonLogs().find((l) => l.request_id === "quiet-404"), { what: "the 404 line" });
  assert.equal(quiet.jsonLogs().filter((l) => l.request_id === "quiet-ok").length, 0);
});

/**
 * A Worker with a gateway request held at its origin (`x-request-id: in-flight-at-panic`) while `panicPath` makes
 * the isolate panic. Returns the Worker, the held request's answer and the panicking request's, and the log lines
 * of the panic and of each request id in `ids` once all are written.
 */
async function panicBesideHeldRequest(t, panicPath, ids, { vars = {}, headers = {} } = {}) {
  const origin = await startOrigin();
  const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "held", path: "/held", upstream: origin.url }], ...vars } });
  let release;
  const held = new Promise((resolve) => (release = resolve));
  t.after(async () => {
    release();
    await w.stop();
    await origin.stop();
  });
  origin.handle(async (req, body, res) => {
    await held;
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  const waiting = w.fetch("/held", { headers: { ...headers, "x-request-id": "in-flight-at-panic" } });
  await until(() => origin.requests.length === 1, { what: "the held request at the origin" });
  const panicked = await w.fetch(panicPath, { headers: { ...headers, "x-request-id": "panicking" } });
  const inFlight = await waiting;
  release();
  const lines = await until(
    () => {
      const logs = w.jsonLogs();
      const found = [
        logs.find((l) => l.msg === "panic"),
        ...ids.map((id) => logs.find((l) => l.msg === "request" && l.request_id === id)),
      ];
      return found.every(Boolean) && found;
    },
    { what: () => JSON.stringify(w.jsonLogs()) },
  );
  assert.match(lines[0].panic, /deliberate panic/);
  return { w, panicked, inFlight, panic: lines[0], lines: lines.slice(1) };
}

/** The bodiless 500 the panic hook gives a request other than the panicking one, and its request line. */
async function assertAnsweredBodiless(response, line) {
  assert.equal(response.status, 500);
  assert.equal(response.headers.get("x-request-id"), "in-flight-at-panic");
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.equal(response.headers.get("content-type"), null);
  assert.equal(await response.text(), "");
  assert.deepEqual([line.path, line.status, line.level, line.error_code], ["/held", 500, "error", "internal_error"]);
}

/** After a panic the next requests are served by a new instance: the app's routes and the gateway's alike. */
async function assertServedAfterPanic(w) {
  const next = await Promise.all([w.fetch("/health"), w.fetch("/health/ready"), w.fetch("/held")]);
  assert.deepEqual(next.map((r) => r.status), [200, 200, 200]);
  await Promise.all(next.map((r) => r.arrayBuffer()));
}

test("a panic answers 500 to every request the isolate was serving, JSON to the one that panicked, and logs each", async (t) => {
  // panic = "abort" stops the Wasm instance: the panicking request and one waiting on its origin were left to the
  // runtime's hung-request detection, a plain-text 500 without x-request-id or a log line (src/entry/in_flight.rs).
  // workerd reads no body made in another request's context, so the one in flight gets the status and headers alone.
  const { w, panicked, inFlight, panic, lines } = await panicBesideHeldRequest(t, "/__debug/panic", ["panicking", "in-flight-at-panic"]);
  assert.equal(panicked.status, 500);
  assert.equal(panicked.headers.get("x-request-id"), "panicking");
  assert.equal(panicked.headers.get("x-content-type-options"), "nosniff");
  assert.equal(panicked.headers.get("cache-control"), "no-store");
  assert.equal(panicked.headers.get("content-type"), "application/json");
  assert.deepEqual(await panicked.json(), { error: { code: "internal_error", message: "the edge could not complete this request" } });
  assert.deepEqual([lines[0].path, lines[0].status, lines[0].level, lines[0].error_code], ["/__debug/panic", 500, "error", "internal_error"]);
  // The logs tell which request's handler panicked (the input to reproduce it with) from the others it took down:
  // the panic line names it, and each request line says which it was. (The message here names it only because this
  // route puts the id in it.)
  assert.equal(panic.request_id, "panicking", "the panic line names the request whose handler panicked");
  assert.match(lines[0].detail, /panicked in this request's handler/);
  assert.match(lines[1].detail, /the isolate panicked while serving this request/);
  await assertAnsweredBodiless(inFlight, lines[1]);
  await assertServedAfterPanic(w);
});

test("a panic in a waitUntil task, no request's handler, answers every request in flight 500 without a body", async (t) => {
  // The request that left the task was answered before it ran; the one held at its origin was in flight.
  const { w, panicked, inFlight, panic, lines } = await panicBesideHeldRequest(t, "/__debug/panic?in=wait_until", ["in-flight-at-panic"]);
  assert.equal(panic.request_id, undefined, "no request's handler panicked");
  assert.equal(panicked.status, 202);
  assert.deepEqual(await panicked.json(), { panic: "wait_until" });
  await assertAnsweredBodiless(inFlight, lines[0]);
  await assertServedAfterPanic(w);
});

test("a panic's answers carry the CORS headers and the trace any error answer to those requests would", async (t) => {
  // A page of a trusted origin reads an app route's errors and a gateway route's own (SESSION_TRUSTED_ORIGINS,
  // GATEWAY_CORS_ORIGINS): without the CORS headers on the panic's 500, its browser reports a network error instead,
  // the status and x-request-id hidden from the page. A gateway answer also names the trace it is part of.
  const page = "https://app.example";
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const { panicked, inFlight } = await panicBesideHeldRequest(t, "/__debug/panic", ["panicking", "in-flight-at-panic"], {
    vars: { SESSION_TRUSTED_ORIGINS: [page], GATEWAY_CORS_ORIGINS: [page] },
    headers: { origin: page, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
  });
  for (const [what, response] of [["the app route that panicked", panicked], ["the gateway request in flight", inFlight]]) {
    assert.equal(response.status, 500, what);
    assert.equal(response.headers.get("access-control-allow-origin"), page, what);
    assert.equal(response.headers.get("access-control-allow-credentials"), "true", what);
    assert.match(response.headers.get("access-control-expose-headers") ?? "", /X-Request-Id/, what);
    assert.equal(response.headers.get("vary"), "Origin", what);
    await response.arrayBuffer();
  }
  assert.equal(inFlight.headers.get("x-trace-id"), traceId, "the gateway request's trace");
});

test("a panic while an answer's body is produced: the client gets the headers and what was sent, then the body ends at once", async (t) => {
  // A streamed page's body is produced after its handler returned: the request is no longer in flight (its line
  // written at its headers, a 200), so the hook answers nothing, and the body's stream stops with the instance.
  // workerd then ends the chunked body as if whole (a plain JavaScript Worker whose body stream errors is ended so too
  // under this Miniflare): the client is not left hanging, but only the panic line tells the body was cut off.
  const w = await startWorker();
  t.after(() => w.stop());
  const answer = await new Promise((resolve, reject) => {
    const target = new URL("/__debug/panic?in=stream", w.url);
    const req = httpRequest(target, { headers: { "x-request-id": "stream-panic" }, agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body, ended: "end" }));
      res.on("error", (e) => resolve({ status: res.statusCode, headers: res.headers, body, ended: e.code ?? e.message }));
      res.on("aborted", () => resolve({ status: res.statusCode, headers: res.headers, body, ended: "aborted" }));
    });
    req.on("error", reject);
    req.end();
  });
  assert.deepEqual([answer.status, answer.headers["x-request-id"], answer.body], [200, "stream-panic", "the first chunk\n"]);
  // README says the body is ended as if whole: node's "end" comes only after the chunked body's last chunk, where a
  // connection cut short is "aborted" or ECONNRESET (which this used to accept too, so the claim went unchecked).
  assert.equal(answer.ended, "end", "ended as a whole body is");
  const [panic, line] = await until(() => {
    const logs = w.jsonLogs();
    const found = [logs.find((l) => l.msg === "panic"), logs.find((l) => l.msg === "request" && l.request_id === "stream-panic")];
    return found.every(Boolean) && found;
  }, { what: () => JSON.stringify(w.jsonLogs()) });
  assert.match(panic.panic, /deliberate panic from \/__debug\/panic \(request stream-panic\) in its body/);
  assert.deepEqual([line.status, line.error_code], [200, undefined], "its line was written at its headers");
  const next = await w.fetch("/health");
  assert.equal(next.status, 200, "the next request is served by a new instance");
  await next.arrayBuffer();
});

// The routes that age an isolate's memory (the tests' clock), DEBUG_ROUTES only.
const AGING_ROUTES = ["/__debug/jwks/age", "/__debug/refresh-holds/age", "/__debug/edge-cache/age", "/__debug/failed-bookmarks/age"];

test("debug routes do not exist unless DEBUG_ROUTES is on", async (t) => {
  const plain = await startWorker({ vars: { DEBUG_ROUTES: false } });
  t.after(() => plain.stop());
  const response = await plain.fetch("/__debug/panic");
  assert.equal(response.status, 404);
  // Nor the routes that age an isolate's memory (the tests' clock): each is a 404, not a 405 naming POST.
  for (const route of AGING_ROUTES) {
    const aged = await plain.fetch(`${route}?ms=1000`, { method: "POST" });
    assert.equal(aged.status, 404, route);
    await aged.arrayBuffer();
  }
});

test("an aging debug route takes ?ms= as a whole number of milliseconds: anything else is a 400 invalid_ms", async () => {
  // Coverage only: the four routes share one parser, which no test read before (seen failing with a query expected to
  // pass it, `?ms=1.5`).
  for (const route of AGING_ROUTES) {
    for (const query of ["", "?ms=", "?ms=abc", "?ms=-1", "?ms=1.5", "?ms=1e3", "?ms=18446744073709551616", "?age=5"]) {
      const refused = await worker.fetch(`${route}${query}`, { method: "POST" });
      assert.equal(refused.status, 400, `${route}${query}`);
      assert.equal((await refused.json()).error.code, "invalid_ms", `${route}${query}`);
    }
    // ms=0 ages nothing, so the file's other tests see the memories as they are.
    const aged = await worker.fetch(`${route}?ms=0`, { method: "POST" });
    assert.equal(aged.status, 200, route);
    assert.deepEqual(await aged.json(), { aged_ms: 0 }, route);
  }
});

test("an invalid configuration value fails every request with a 500 naming the key, not the value", async (t) => {
  // `says`: what the message must tell besides the key — what is allowed, and inside a table var the entry and field.
  const cases = [
    { vars: { MAX_BODY_BYTES: "lots" }, key: "MAX_BODY_BYTES", value: "lots", says: "whole number between 1 and 16777216" },
    { vars: { MAX_BODY_BYTES: "987654321" }, key: "MAX_BODY_BYTES", value: "987654321" },
    { vars: { ENVIRONMENT: "staging-ish" }, key: "ENVIRONMENT", value: "staging-ish" },
    { vars: { ENVIRONMENT: "production", DEBUG_ROUTES: true }, key: "DEBUG_ROUTES" },
    // A production Worker without its signing secret (put without the deploy's --env) was ready, every login 500.
    {
      vars: { ENVIRONMENT: "production", DEBUG_ROUTES: false, RENDER_ORIGIN: "https://fragments.example" },
      key: "AUTH_SIGNING_KEY",
      says: "wrangler secret put AUTH_SIGNING_KEY",
    },
    // Shorter than the tokens the login signs: the gateway refused every one of them unread (401 on `jwt` routes).
    {
      vars: { AUTH_SIGNING_KEY: JSON.stringify(generateSigningJwk("k1")), GATEWAY_JWT_MAX_BYTES: 256 },
      key: "GATEWAY_JWT_MAX_BYTES",
      says: "must hold the access tokens the login signs",
    },
    // A wrangler.toml array where a table belongs: serde read it by position, and the WAF served switched off.
    { vars: { GATEWAY_WAF: ["off"] }, key: "GATEWAY_WAF", says: "must be a table of named fields, not a list" },
    {
      vars: { RENDER_FRAGMENTS: { header: { ttl_s: "300", budget_ms: 1000, fallback: "<header></header>" } } },
      key: "RENDER_FRAGMENTS",
      says: 'fragment "header": ttl_s: invalid type',
    },
  ];
  for (const { vars, key, value, says } of cases) {
    const bad = await startWorker({ vars });
    t.after(() => bad.stop());
    for (const path of ["/health", "/anything"]) {
      const response = await bad.fetch(path);
      assert.equal(response.status, 500, `${key} ${path}`);
      const body = await response.json();
      assert.equal(body.error.code, "config_invalid");
      assert.match(body.error.message, new RegExp(key));
      if (says) assert.ok(body.error.message.includes(says), `${key}: ${body.error.message}`);
      if (value) assert.ok(!body.error.message.includes(value), `the value is not echoed: ${body.error.message}`);
      assert.ok(response.headers.get("x-request-id"));
    }
  }
});

test("an invalid configuration's 500 reaches a client still uploading: the body is read first, the connection kept", async (t) => {
  // Answered while the upload was still arriving, workerd reset the connection (or closed it after the answer) as
  // for any refusal before the body is read: the client saw ECONNRESET instead of the 500 naming the key.
  const bad = await startWorker({ vars: { MAX_BODY_BYTES: "lots" } });
  t.after(() => bad.stop());
  const size = 8 * 1024 * 1024;
  const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const [what, parts] of [
    ["a login", [`POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`, Buffer.alloc(size)]],
    ["a chunked upload to a gateway path", ["PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", ...chunkedBody(size)]],
  ]) {
    const { statuses, ended } = await onOneConnection(bad.url, [...parts, next], { answers: 2, what: `${what}: two answers` });
    assert.deepEqual(statuses, [500, 500], `${what}: the answers on one connection (it ended: ${ended})`);
  }
});

test("a configuration error's request log lines say which key broke which rule, as the answer does", async (t) => {
  // Workers Logs show the lines, not the bodies: `config_invalid` alone on every line left an operator to call the
  // Worker to learn what to fix.
  const bad = await startWorker({ vars: { MAX_BODY_BYTES: "lots" } });
  t.after(() => bad.stop());
  const response = await bad.fetch("/health", { headers: { "x-request-id": "bad-config-line" } });
  assert.equal(response.status, 500);
  const { message } = (await response.json()).error;
  const line = await until(() => bad.jsonLogs().find((l) => l.msg === "request" && l.request_id === "bad-config-line"), {
    what: "the request's log line",
  });
  assert.equal(line.error_code, "config_invalid");
  assert.equal(line.detail, message, "the line carries the key and the rule");
  assert.match(line.detail, /MAX_BODY_BYTES/);
  assert.ok(!line.detail.includes("lots"), "not the value");
});

test("a var that looks like a misspelled key is logged once per isolate with the key it meant (never told by the public /health/ready)", async (t) => {
  // Never read, a misspelled key left its default in force while the operator believed the limit set.
  const misspelt = await startWorker({
    vars: {
      GATEWAY_JWKS_TTL_SECOND: "5",
      ROOMS_MAX_MEMBER: 3,
      RATE_LIMITS: { tight: { limit: 1, window: 60, key: "ip" } },
      session_idle_secs: "600",
      MY_OWN_FLAG: "the user's own, never reported",
    },
  });
  t.after(() => misspelt.stop());
  const meant = {
    GATEWAY_JWKS_TTL_SECOND: "GATEWAY_JWKS_TTL_SECONDS",
    ROOMS_MAX_MEMBER: "ROOMS_MAX_MEMBERS",
    RATE_LIMITS: "RATE_LIMIT_POLICIES",
    session_idle_secs: "SESSION_IDLE_SECS",
  };
  for (const path of ["/health", "/health"]) assert.equal((await misspelt.fetch(path)).status, 200, "served all the same");
  const ready = await misspelt.fetch("/health/ready");
  assert.equal(ready.status, 200, "still ready");
  const body = await ready.json();
  assert.equal(body.ready, true);
  assert.equal(body.unread_keys, undefined, "the public probe tells no var names");
  const warnings = () => misspelt.jsonLogs().filter((l) => l.msg === "config_key_unread");
  await until(() => warnings().length >= Object.keys(meant).length, { what: () => JSON.stringify(warnings()) });
  for (const [key, did_you_mean] of Object.entries(meant)) {
    const lines = warnings().filter((l) => l.key === key);
    assert.equal(lines.length, 1, `${key}: one line per isolate, not per request`);
    assert.equal(lines[0].level, "warn");
    assert.equal(lines[0].did_you_mean, did_you_mean);
    assert.match(lines[0].detail, new RegExp(`did you mean \`${did_you_mean}\``));
  }
  assert.ok(!warnings().some((l) => l.key === "MY_OWN_FLAG"), "a key unlike edgekit's is the user's own");

  // The shipped wrangler.toml (with the harness's ENVIRONMENT and DEBUG_ROUTES) draws none.
  assert.equal((await worker.fetch("/health")).status, 200);
  assert.equal((await worker.fetch("/health/ready")).status, 200);
  await until(() => worker.jsonLogs().some((l) => l.msg === "request" && l.path === "/health/ready"), { what: "the request line" });
  assert.deepEqual(worker.jsonLogs().filter((l) => l.msg === "config_key_unread"), []);
});

test("a version-metadata binding under an edgekit prefix is no var; a synonym of a key's word finds the key it meant", async (t) => {
  // workerd gives a [version_metadata] binding as a plain object {id, tag, timestamp}, shaped like a table var: named
  // RENDER_VERSION it was reported as a misspelled key. MAX_BODY_SIZE (SIZE for BYTES) was not reported at all.
  const w = await startWorker({ workerOptions: { versionMetadata: "RENDER_VERSION" }, vars: { MAX_BODY_SIZE: "1048576" } });
  t.after(() => w.stop());
  assert.equal((await w.fetch("/health")).status, 200);
  const warnings = () => w.jsonLogs().filter((l) => l.msg === "config_key_unread");
  const line = await until(() => warnings().find((l) => l.key === "MAX_BODY_SIZE"), { what: () => JSON.stringify(w.jsonLogs()) });
  assert.equal(line.did_you_mean, "MAX_BODY_BYTES");
  assert.deepEqual(warnings().map((l) => l.key), ["MAX_BODY_SIZE"], "the binding is not reported");
});

test("a misspelling that makes the configuration invalid is logged with the key it meant beside the 500", async (t) => {
  // RATE_LIMITS for RATE_LIMIT_POLICIES leaves the login policies undefined: the 500 names those, the line says why.
  const misspelt = await startWorker({
    vars: { RATE_LIMIT_POLICIES: "", RATE_LIMITS: { "login-ip": { limit: 1, window: 60, key: "ip" } } },
  });
  t.after(() => misspelt.stop());
  const response = await misspelt.fetch("/health");
  assert.equal(response.status, 500);
  assert.equal((await response.json()).error.code, "config_invalid");
  const line = await until(() => misspelt.jsonLogs().find((l) => l.msg === "config_key_unread"), {
    what: () => JSON.stringify(misspelt.jsonLogs()),
  });
  assert.equal(line.key, "RATE_LIMITS");
  assert.equal(line.did_you_mean, "RATE_LIMIT_POLICIES");
});

test("a JSON document var that repeats a key is refused at start, naming the var and the key", async (t) => {
  // JSON.parse and serde_json both keep the last of a repeated key, silently: a route written with `auth` twice
  // served with the second, and a repeated policy name dropped the first policy's limits.
  const cases = [
    {
      key: "GATEWAY_ROUTES",
      value: '[{"name":"admin","path":"/admin","upstream":"http://127.0.0.1:9","auth":"jwt","auth":"none"}]',
      repeated: "auth",
    },
    { key: "GATEWAY_WAF", value: '{"mode":"block","rules":["sqli"],"mode":"off"}', repeated: "mode" },
  ];
  for (const { key, value, repeated } of cases) {
    const bad = await startWorker({ vars: { [key]: value } });
    t.after(() => bad.stop());
    const response = await bad.fetch("/health");
    assert.equal(response.status, 500, key);
    const { error } = await response.json();
    assert.equal(error.code, "config_invalid", key);
    assert.match(error.message, new RegExp(`${key}.*repeats the key \`${repeated}\``), key);
  }
});

test("a response the runtime refuses (origin status 600) answers 502 JSON and does not take the isolate down", async (t) => {
  const origin = await startOrigin();
  const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "odd", path: "/odd", upstream: origin.url }] } });
  t.after(async () => {
    await w.stop();
    await origin.stop();
  });
  origin.handle((req, body, res) => {
    res.writeHead(600, { "content-type": "text/plain" });
    res.end("odd");
  });
  const response = await w.fetch("/odd", { headers: { "x-request-id": "odd-status" }, signal: AbortSignal.timeout(5000) });
  assert.equal(response.status, 502);
  assert.equal((await response.json()).error.code, "bad_gateway");
  assert.equal(response.headers.get("x-request-id"), "odd-status");
  const line = await until(() => w.jsonLogs().find((l) => l.msg === "request" && l.request_id === "odd-status"), { what: "the request's log line" });
  assert.equal(line.status, 502);
  // The gateway's own line about the failure names the route, and its code under the request line's field name.
  const gateway = w.jsonLogs().find((l) => l.msg === "gateway" && l.request_id === "odd-status");
  assert.deepEqual([gateway?.route, gateway?.error_code, gateway?.detail], ["odd", line.error_code, line.detail]);
  assert.equal(w.jsonLogs().filter((l) => l.msg === "panic").length, 0, "no panic");
});

test("a long unknown path is echoed at most ~1 KB, in the 404's message and in the log line", async () => {
  const path = `/${"a".repeat(20_000)}`;
  const response = await worker.fetch(path, { headers: { "x-request-id": "long-path" } });
  assert.equal(response.status, 404);
  const text = await response.text();
  assert.ok(text.length < 2048, `a ${text.length}-byte body`);
  const { message } = JSON.parse(text).error;
  assert.match(message, /\/aaaa.*…$/, "the path is cut and marked");
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "request" && l.request_id === "long-path"), {
    what: "the request's log line",
  });
  assert.ok(line.path.length <= 1025 && line.path.startsWith("/aaaa") && line.path.endsWith("…"), `logged ${line.path.length} chars`);
});

test("a JSON body the Worker cannot read as sent is 415: a content coding (with Accept-Encoding: identity), a charset other than UTF-8", async () => {
  const login = JSON.stringify({ email: "nobody@example.com", password: "whatever" });
  const post = (headers, body) => worker.fetch("/auth/login", { method: "POST", headers, body });
  const cases = [
    { what: "gzip", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: gzipSync(login) },
    { what: "deflate, labelled after identity", headers: { "content-type": "application/json", "content-encoding": "identity, deflate" }, body: deflateSync(login) },
    { what: "UTF-16", headers: { "content-type": "application/json; charset=utf-16le" }, body: Buffer.from(login, "utf16le") },
    { what: "Latin-1", headers: { "content-type": "application/json; charset=ISO-8859-1" }, body: login },
  ];
  for (const { what, headers, body } of cases) {
    const response = await post(headers, body);
    assert.equal(response.status, 415, what);
    assert.equal((await response.json()).error.code, "unsupported_media_type", what);
    if (headers["content-encoding"]) assert.equal(response.headers.get("accept-encoding"), "identity", what);
  }
  // Uncompressed UTF-8, labelled or not, is read: the unknown email is refused as a login, not as a body.
  for (const headers of [
    { "content-type": "application/json; charset=\"UTF-8\"", "content-encoding": "identity" },
    { "content-type": "application/json" },
    // Other labels of UTF-8 (WHATWG), ASCII, an empty charset, and a quoted parameter holding ";charset=".
    { "content-type": "application/json; charset=utf8" },
    { "content-type": "application/json; charset=US-ASCII" },
    { "content-type": "application/json; charset=" },
    { "content-type": 'application/json; profile="a;charset=latin1"; charset=utf-8' },
  ]) {
    const response = await post(headers, login);
    assert.equal(response.status, 401, JSON.stringify(headers));
    assert.equal((await response.json()).error.code, "invalid_credentials");
  }
});

test("a refused upload is read before its answer, and the connection stays open for the next request", async () => {
  // Answered while the upload was still arriving (the drain read 1 MiB), workerd reset about one connection in a
  // hundred before the answer reached the client, and closed every one after it: a client sending its next request
  // on that connection lost it. Each upload here is 8 MB, sent with the next request behind it on one connection.
  const size = 8 * 1024 * 1024;
  const declared = (head) => [`${head}Content-Length: ${size}\r\n\r\n`, Buffer.alloc(size)];
  const chunked = (head) => [`${head}Transfer-Encoding: chunked\r\n\r\n`, ...chunkedBody(size)];
  for (const [what, parts, status] of [
    ["POST to a path nothing serves", declared("POST /no-such-upload HTTP/1.1\r\nHost: x\r\n"), 404],
    ["PUT to a path that does not take it", declared("PUT / HTTP/1.1\r\nHost: x\r\n"), 405],
    ["a chunked POST to a GET route", chunked("POST /health HTTP/1.1\r\nHost: x\r\n"), 405],
    ["a login that is not JSON", declared("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"), 415],
    ["a login over its size cap", declared("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"), 413],
    // Refused once it passed the cap, part read: the rest was cancelled, and the connection closed or reset.
    ["a chunked login over its size cap", chunked("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"), 413],
    // Routes that take no body answered without reading the one sent: each reset the connection.
    ["a room ticket asked for without a session", declared("POST /rooms/r/ticket HTTP/1.1\r\nHost: x\r\n"), 401],
    ["a room ticket for a name no room can have", chunked("POST /rooms/a%2Fb/ticket HTTP/1.1\r\nHost: x\r\n"), 400],
    ["a refresh without a session", declared("POST /auth/refresh HTTP/1.1\r\nHost: x\r\n"), 401],
    ["a logout, answered 204", declared("POST /auth/logout HTTP/1.1\r\nHost: x\r\n"), 204],
  ]) {
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const { statuses, ended } = await onOneConnection(worker.url, [...parts, next], { answers: 2, what: `${what}: two answers` });
    assert.deepEqual(statuses, [status, 200], `${what}: the answers on one connection (it ended: ${ended})`);
  }
});

test("a refused request that awaits 100 Continue is answered without its body, and one that sends it anyway is read", async () => {
  // The client holds its body back until it is told to send it (RFC 9110 §10.1.1), and workerd never tells it: the
  // drain before the refusal waited its whole 2 s budget for a body that could not come, delaying the answer the
  // client asked to have first (curl sends the body anyway after 1 s, which the drain then read, up to 100 MB). Now
  // a drain waits for such a body's reads only briefly — how long is not asserted (a timing). A client may also send
  // at once (RFC 9110 §10.1.1 lets it): that body is still read, so the connection stays open for its next request.
  const size = 8 * 1024 * 1024;
  for (const [what, head, status] of [
    ["a POST to a path nothing serves", "POST /no-such-upload HTTP/1.1\r\nHost: x\r\n", 404],
    ["a POST to a GET route", "POST /health HTTP/1.1\r\nHost: x\r\n", 405],
    ["a login that is not JSON", "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n", 415],
  ]) {
    const head100 = `${head}Expect: 100-continue\r\nContent-Length: ${size}\r\n\r\n`;
    const held = await onOneConnection(worker.url, [head100], { what: `${what}, body held back: an answer` });
    assert.deepEqual(held.statuses, [status], `${what}, body held back`);
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const sent = await onOneConnection(worker.url, [head100, Buffer.alloc(size), next], { answers: 2, what: `${what}, body sent: two answers` });
    assert.deepEqual(sent.statuses, [status, 200], `${what}, body sent at once: the answers on one connection (it ended: ${sent.ended})`);
  }
});

test("a JSON body held back for 100 Continue is answered 417, and one sent anyway is read", async () => {
  // The gateway answers 417 to a client that waits for a 100 Continue workerd never sends; a JSON route (the login,
  // the cache purge) read such a body with no bound at all, so the client got no answer until it gave up.
  const body = JSON.stringify({ email: "held-back@example.com", password: "not the password" });
  const head = `POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`;
  const held = await onOneConnection(worker.url, [head], { what: "the answer to a login awaiting 100 Continue" });
  assert.deepEqual(held.statuses, [417], "RFC 9110 §15.5.18: curl sends it again without Expect");
  const sent = await onOneConnection(worker.url, [head, body], { what: "the answer to a login sent anyway" });
  assert.deepEqual(sent.statuses, [401], "read and checked as any login");
});

test("a refused request whose body stalls or never ends is still answered: the drain before a 405 or 404 is bounded in time", async () => {
  // A client streaming from a slow source (or one that stalls) to a wrong URL or with a wrong method: the drain
  // read on until its ceiling, so it waited for bytes that never came and the client got no answer.
  for (const [what, head, first, status] of [
    ["a declared length, 10 bytes sent", "POST /no-such-upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "0123456789", 404],
    ["a chunked body, one chunk sent", "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n", 405],
  ]) {
    // And nothing more: the socket stays open.
    const { statuses, ended } = await onOneConnection(worker.url, [head + first], { what: `${what}: an answer` });
    assert.deepEqual(statuses, [status], `${what} (the connection ended: ${ended})`);
  }
});
