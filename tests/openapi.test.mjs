// The published API contract (src/openapi) against the built Worker: the served document is the file, is valid
// OpenAPI 3.x (@readme/openapi-parser), and every answer to a table of inputs — successes and each kind of
// refusal — has a status the document lists for its operation, a body matching the documented schema, and declares
// every header the README promises that it carries (rate-limit fields, Retry-After, WWW-Authenticate, Cache-Control,
// ETag, Set-Cookie, Vary). schemathesis (tests/fuzz) checks what the document declares is there; this checks the converse.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validate } from "@readme/openapi-parser";
import { Ajv2020 } from "ajv/dist/2020.js";
import sharp from "sharp";
import { startOrigin } from "./support/origin.mjs";
import { ROOT, startWorker } from "./support/worker.mjs";
import { seed, DEMO_USERS } from "../scripts/seed.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";

const KEY = JSON.stringify(generateSigningJwk("contract-key"));
const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
const DOCUMENT = JSON.parse(readFileSync(join(ROOT, "src/openapi/openapi.json"), "utf8"));
/** Headers the README promises on some answers: each one an answer carries must be declared for its status. */
const PROMISED = ["ratelimit", "ratelimit-policy", "retry-after", "www-authenticate", "allow", "cache-control", "etag", "set-cookie", "vary"];

let worker;
let origin;
let session;
let access;
before(async () => {
  // The image origin: one JPEG, and 404 for any other path.
  const photo = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 80, b: 40 } } }).jpeg().toBuffer();
  origin = await startOrigin();
  origin.handle((req, body, res) => {
    if (req.url.split("?")[0] !== "/photos/a.jpg") return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "image/jpeg" });
    res.end(photo);
  });
  worker = await startWorker({
    vars: {
      IMAGES_ORIGIN: origin.url,
      DEBUG_ROUTES: false,
      AUTH_SIGNING_KEY: KEY,
      // A documented setting that adds a header to every app answer (`Vary: Origin`, trusted or not, as a browser's
      // or a CDN's copy may later be served to a trusted page): the document must declare it too.
      SESSION_TRUSTED_ORIGINS: ["https://app.example"],
      GATEWAY_ADMIN_PERMISSION: "admin",
      RATE_LIMIT_POLICIES: {
        "login-ip": { limit: 10_000, window: 60, key: "ip" },
        "login-email": { limit: 10_000, window: 60, key: "user" },
        "contract-once": { limit: 1, window: 3600, key: "ip", check: true },
        "contract-key": { limit: 10, window: 60, key: "api_key", header: "x-api-key", check: true },
      },
    },
  });
  await seed({
    CONFIG_KV: await worker.mf.getKVNamespace("CONFIG_KV"),
    DB: await worker.mf.getD1Database("DB"),
    CONTENT_KV: await worker.mf.getKVNamespace("CONTENT_KV"),
    AUTH_SIGNING_KEY: KEY,
  });
  const login = await worker.fetch("/auth/login", jsonPost({ email: ALICE.email, password: ALICE.password }));
  assert.equal(login.status, 200, `the demo user logs in: ${login.status === 200 ? "" : await login.clone().text()} ${worker.logs.slice(-3).join("\n")}`);
  access = (await login.json()).access_token;
  session = /__Host-edgekit_session=([^;]*)/.exec(login.headers.get("set-cookie"))[1];
});
after(async () => {
  await worker?.stop();
  await origin?.stop();
});

function jsonPost(body, headers = {}) {
  return { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) };
}
const withSession = (init = {}) => ({ ...init, headers: { ...init.headers, cookie: `__Host-edgekit_session=${session}` } });
const bearer = (init = {}) => ({ ...init, headers: { ...init.headers, authorization: `Bearer ${access}` } });

/** `#/a/b` in the document. */
function resolve(node) {
  let seen = node;
  while (seen && seen.$ref) seen = seen.$ref.slice(2).split("/").reduce((n, k) => n[k.replace(/~1/g, "/").replace(/~0/g, "~")], DOCUMENT);
  return seen;
}

// OpenAPI 3.1's schemas are JSON Schema 2020-12: ajv reads them, `$ref`s into the document's components included
// (each schema is compiled as a subschema of the whole document; OpenAPI's own members are not keywords to it).
const DOCUMENT_ID = "https://edgekit.invalid/openapi.json";
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ ...DOCUMENT, $id: DOCUMENT_ID });
const compiled = new Map();

/** The JSON pointer (`#/…`) of `schema` within the document, found by identity. */
function pointerOf(schema, node = DOCUMENT, at = "#") {
  if (node === schema) return at;
  if (!node || typeof node !== "object") return undefined;
  for (const [k, v] of Object.entries(node)) {
    const found = pointerOf(schema, v, `${at}/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`);
    if (found) return found;
  }
  return undefined;
}

/** Problems of `value` against `schema` (a node of the document), from ajv. */
function schemaProblems(schema, value, at = "body") {
  const pointer = pointerOf(schema);
  assert.ok(pointer, `${at}: its schema is a node of the document`);
  if (!compiled.has(pointer)) compiled.set(pointer, ajv.compile({ $ref: `${DOCUMENT_ID}${pointer}` }));
  const validate = compiled.get(pointer);
  return validate(value) ? [] : validate.errors.map((e) => `${at}${e.instancePath}: ${e.message}`);
}

/** Every way `response` (to `method` of documented `template`) departs from the document; its body is read. */
async function departures(method, template, response) {
  const operation = DOCUMENT.paths[template]?.[method.toLowerCase()];
  if (!operation) return [`${method} ${template} is not documented`];
  const documented = operation.responses[String(response.status)];
  const text = await response.text();
  if (!documented) return [`status ${response.status} is not documented (${text.slice(0, 160)})`];
  const declared = resolve(documented);
  const problems = [];
  const headers = Object.fromEntries(Object.entries(declared.headers ?? {}).map(([name, h]) => [name.toLowerCase(), resolve(h)]));
  for (const name of PROMISED) {
    if (response.headers.has(name) && !headers[name]) problems.push(`header ${name}: ${response.headers.get(name)} is not declared`);
  }
  for (const [name, header] of Object.entries(headers)) {
    const value = response.headers.get(name);
    if (value === null) {
      if (header.required) problems.push(`header ${name}: required, absent`);
    } else if (header.schema) {
      problems.push(...schemaProblems(header.schema, value, `header ${name}`));
    }
  }
  const type = (response.headers.get("content-type") ?? "").split(";")[0].trim();
  if (text.length && declared.content && !declared.content[type]) problems.push(`content type ${type} is not documented`);
  if (type === "application/json" && declared.content?.[type]?.schema) {
    problems.push(...schemaProblems(declared.content[type].schema, JSON.parse(text)));
  }
  return problems;
}

// [label, method, path sent, documented path, init, expected status]
const CASES = [
  ["health", "GET", "/health", "/health", {}, 200],
  ["readiness", "GET", "/health/ready", "/health/ready", {}, 200],
  ["the document", "GET", "/openapi.json", "/openapi.json", {}, 200],
  ["login", "POST", "/auth/login", "/auth/login", () => jsonPost({ email: ALICE.email, password: ALICE.password }), 200],
  ["login, wrong password", "POST", "/auth/login", "/auth/login", () => jsonPost({ email: ALICE.email, password: "wrong" }), 401],
  ["login, bad JSON", "POST", "/auth/login", "/auth/login", () => jsonPost("{"), 400],
  ["login, not JSON", "POST", "/auth/login", "/auth/login", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }, 415],
  ["login, over the body cap", "POST", "/auth/login", "/auth/login", () => jsonPost({ email: ALICE.email, password: "p", pad: "x".repeat(70_000) }), 413],
  ["login from another site", "POST", "/auth/login", "/auth/login", () => jsonPost({ email: ALICE.email, password: "x" }, { "sec-fetch-site": "cross-site", origin: "https://evil.example" }), 403],
  ["session", "GET", "/auth/session", "/auth/session", () => withSession(), 200],
  ["session, none", "GET", "/auth/session", "/auth/session", {}, 401],
  ["session, unknown cookie", "GET", "/auth/session", "/auth/session", { headers: { cookie: `__Host-edgekit_session=${"A".repeat(43)}` } }, 401],
  ["sessions", "GET", "/auth/sessions", "/auth/sessions", () => withSession(), 200],
  ["sessions, none", "GET", "/auth/sessions", "/auth/sessions", {}, 401],
  ["end all, none", "DELETE", "/auth/sessions", "/auth/sessions", { method: "DELETE" }, 401],
  ["refresh, none", "POST", "/auth/refresh", "/auth/refresh", { method: "POST" }, 401],
  ["refresh, unknown cookie", "POST", "/auth/refresh", "/auth/refresh", { method: "POST", headers: { cookie: `__Host-edgekit_session=${"A".repeat(43)}` } }, 401],
  ["logout, none", "POST", "/auth/logout", "/auth/logout", { method: "POST" }, 204],
  // SESSION_IP_POLICY (`session-ip`, keyed `ip`) limits these routes per address: a CF-Connecting-IP that is no
  // address (never on Cloudflare; any client under Miniflare or `wrangler dev`) is refused 400 client_ip_unknown.
  ["logout, no client address", "POST", "/auth/logout", "/auth/logout", () => withSession({ method: "POST", headers: { "cf-connecting-ip": "not-an-address" } }), 400],
  ["refresh, no client address", "POST", "/auth/refresh", "/auth/refresh", () => withSession({ method: "POST", headers: { "cf-connecting-ip": "not-an-address" } }), 400],
  ["sessions, no client address", "GET", "/auth/sessions", "/auth/sessions", () => withSession({ headers: { "cf-connecting-ip": "not-an-address" } }), 400],
  ["end all, no client address", "DELETE", "/auth/sessions", "/auth/sessions", () => withSession({ method: "DELETE", headers: { "cf-connecting-ip": "not-an-address" } }), 400],
  ["logout from another site", "POST", "/auth/logout", "/auth/logout", () => withSession({ method: "POST", headers: { "sec-fetch-site": "cross-site", origin: "https://evil.example" } }), 403],
  ["rate-limit check", "GET", "/ratelimit/public/check", "/ratelimit/{policy}/check", {}, 200],
  ["rate-limit check, unknown policy", "GET", "/ratelimit/nope/check", "/ratelimit/{policy}/check", {}, 404],
  ["rate-limit check, first", "GET", "/ratelimit/contract-once/check", "/ratelimit/{policy}/check", {}, 200],
  ["rate-limit check, over", "GET", "/ratelimit/contract-once/check", "/ratelimit/{policy}/check", {}, 429],
  ["rate-limit check, no API key", "GET", "/ratelimit/contract-key/check", "/ratelimit/{policy}/check", {}, 401],
  ["rooms", "GET", "/rooms", "/rooms", {}, 200],
  ["room page", "GET", "/rooms/contract", "/rooms/{id}", {}, 200],
  ["room page, bad name", "GET", "/rooms/...", "/rooms/{id}", {}, 400],
  ["join, not a WebSocket", "GET", "/rooms/contract/ws", "/rooms/{id}/ws", {}, 426],
  ["ticket", "POST", "/rooms/contract/ticket", "/rooms/{id}/ticket", () => withSession({ method: "POST" }), 201],
  ["ticket, none", "POST", "/rooms/contract/ticket", "/rooms/{id}/ticket", { method: "POST" }, 401],
  ["room state", "GET", "/rooms/contract/state", "/rooms/{id}/state", () => withSession(), 200],
  ["room state, none", "GET", "/rooms/contract/state", "/rooms/{id}/state", {}, 401],
  ["home", "GET", "/", "/", {}, 200],
  ["home, bad render mode", "GET", "/?render=bad", "/", {}, 400],
  ["home, If-None-Match: *", "GET", "/", "/", { headers: { "if-none-match": "*" } }, 304],
  ["home, If-None-Match: * with a dead session cookie", "GET", "/", "/", { headers: { "if-none-match": "*", cookie: `__Host-edgekit_session=${"A".repeat(43)}` } }, 304],
  ["home with a dead session cookie", "GET", "/", "/", { headers: { cookie: `__Host-edgekit_session=${"A".repeat(43)}` } }, 200],
  ["unknown page", "GET", "/p/no-such-page", "/p/{page}", {}, 404],
  ["image", "GET", "/images/32/photos/a.jpg", "/images/{path}", {}, 200],
  ["image, format negotiated", "GET", "/images/photos/a.jpg?w=32&format=auto", "/images/{path}", { headers: { accept: "image/webp" } }, 200],
  ["image, no such source", "GET", "/images/32/photos/none.jpg", "/images/{path}", {}, 404],
  ["purge", "POST", "/admin/gateway/purge", "/admin/gateway/purge", () => bearer(jsonPost({ tags: ["contract"] })), 200],
  ["purge, no token", "POST", "/admin/gateway/purge", "/admin/gateway/purge", () => jsonPost({ tags: ["contract"] }), 401],
  ["purge, bad token", "POST", "/admin/gateway/purge", "/admin/gateway/purge", () => jsonPost({ tags: ["contract"] }, { authorization: "Bearer not.a.token" }), 401],
  ["purge, a tag outside printable ASCII", "POST", "/admin/gateway/purge", "/admin/gateway/purge", () => bearer(jsonPost({ tags: ["caf\u00e9"] })), 400],
  ["purge, not JSON", "POST", "/admin/gateway/purge", "/admin/gateway/purge", () => bearer({ method: "POST", headers: { "content-type": "text/plain" }, body: "x" }), 415],
];

test("the served document is the file, and a valid OpenAPI 3.x document", async () => {
  const served = await worker.fetch("/openapi.json");
  assert.equal(served.status, 200);
  assert.deepEqual(await served.json(), DOCUMENT);
  const result = await validate(structuredClone(DOCUMENT));
  assert.equal(result.valid, true, JSON.stringify(result.errors ?? result, null, 1));
});

test("the document has a strong ETag, and a client holding it is answered 304 as the document says", async () => {
  // Served `public, max-age=300` without a validator, every client and CDN fetched the whole document again each
  // time its copy went stale, and an `If-None-Match: *` (which names any current representation) was answered 200.
  const first = await worker.fetch("/openapi.json");
  await first.arrayBuffer();
  const etag = first.headers.get("etag");
  assert.match(etag ?? "", /^"[0-9a-f]{32}"$/, "a strong ETag");
  const again = await worker.fetch("/openapi.json");
  await again.arrayBuffer();
  assert.equal(again.headers.get("etag"), etag, "the same document, the same tag");
  for (const condition of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
    const response = await worker.fetch("/openapi.json", { headers: { "if-none-match": condition } });
    const problems = response.status === 304 ? await departures("GET", "/openapi.json", response) : [`status ${response.status}`];
    assert.deepEqual(problems, [], `If-None-Match: ${condition}`);
    assert.equal(response.headers.get("etag"), etag, `If-None-Match: ${condition}`);
    assert.equal(response.headers.get("cache-control"), "public, max-age=300", `If-None-Match: ${condition}`);
  }
  const other = await worker.fetch("/openapi.json", { headers: { "if-none-match": '"0123"' } });
  assert.equal(other.status, 200, "another tag gets the document");
  assert.deepEqual(await other.json(), DOCUMENT);
});

test("an If-Match naming another document is answered 412, as the document says", async () => {
  // RFC 9110 §13.1.1: an origin server MUST NOT perform the method when If-Match is false; it sent the document.
  const etag = (await worker.fetch("/openapi.json", { method: "HEAD" })).headers.get("etag");
  const refused = await worker.fetch("/openapi.json", { headers: { "if-match": '"an-older-document"' } });
  const problems = refused.status === 412 ? await departures("GET", "/openapi.json", refused) : [`status ${refused.status}`];
  assert.deepEqual(problems, []);
  for (const condition of [etag, "*", `"other", ${etag}`]) {
    const served = await worker.fetch("/openapi.json", { headers: { "if-match": condition } });
    assert.equal(served.status, 200, `If-Match: ${condition}`);
    await served.arrayBuffer();
  }
  const weak = await worker.fetch("/openapi.json", { headers: { "if-match": `W/${etag}` } });
  assert.equal(weak.status, 412, "If-Match compares strongly");
  await weak.arrayBuffer();
});

test("the document's first server is the deployment that serves it", async () => {
  // A client generated from, or a UI loaded with, the /openapi.json a deployment serves sends its requests to the
  // first server: it named only `http://127.0.0.1:8787` (npm start), so they went to the user's own machine.
  const at = new URL("/openapi.json", worker.url);
  const served = await (await worker.fetch("/openapi.json")).json();
  assert.equal(new URL(served.servers[0].url, at).origin, at.origin, JSON.stringify(served.servers));
});

test("every answer has a documented status, body and the headers it carries declared", async () => {
  const found = [];
  for (const [label, method, path, template, init, status] of CASES) {
    const response = await worker.fetch(path, { method, ...(typeof init === "function" ? init() : init) });
    const problems = response.status === status ? await departures(method, template, response) : [`status ${response.status}, not ${status}: ${await response.text()}`];
    found.push(...problems.map((p) => `${label} (${method} ${path} → ${response.status}): ${p}`));
  }
  assert.deepEqual(found, []);
});

test("a fail-closed limiter's 503 declares the Retry-After and RateLimit fields it carries", async (t) => {
  // `failure = "closed"` is a valid setting: with the limiter unreachable, a login, a refresh, a logout and the
  // session lists answer 503 rate_limit_unavailable with `Retry-After: 1` (and a login the RateLimit fields of the
  // login-ip policy that counted it before the email's failed), which their 503s must declare.
  const closed = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: KEY,
      RATE_LIMIT_POLICIES: {
        "login-ip": { limit: 10_000, window: 60, key: "ip" },
        "login-email": { limit: 10, window: 60, key: "user", binding: "NO_SUCH_LIMITER", failure: "closed" },
        "session-ip": { limit: 10_000, window: 60, key: "ip", binding: "NO_SUCH_LIMITER", failure: "closed" },
      },
    },
  });
  t.after(() => closed.stop());
  const cookie = { cookie: `__Host-edgekit_session=${"A".repeat(43)}` };
  const cases = [
    ["login", "POST", "/auth/login", () => jsonPost({ email: ALICE.email, password: ALICE.password })],
    ["refresh", "POST", "/auth/refresh", () => ({ method: "POST", headers: cookie })],
    ["logout", "POST", "/auth/logout", () => ({ method: "POST", headers: cookie })],
    ["sessions", "GET", "/auth/sessions", () => ({ headers: cookie })],
    ["end all", "DELETE", "/auth/sessions", () => ({ method: "DELETE", headers: cookie })],
  ];
  const found = [];
  for (const [label, method, path, init] of cases) {
    const response = await closed.fetch(path, { method, ...init() });
    const problems = response.status === 503 ? await departures(method, path, response) : [`status ${response.status}, not 503: ${await response.text()}`];
    found.push(...problems.map((p) => `${label} (${method} ${path} → ${response.status}): ${p}`));
  }
  assert.deepEqual(found, []);
});

test("the document declares no header through a reference with siblings it would ignore", () => {
  // OpenAPI 3.1 §4.8.23: a Reference Object's other members (bar summary and description) are ignored, so a
  // `"required": true` beside a `$ref` promises nothing to a generated client.
  const found = [];
  const walk = (node, at) => {
    if (!node || typeof node !== "object") return;
    if (node.$ref) {
      const extra = Object.keys(node).filter((k) => !["$ref", "summary", "description"].includes(k));
      if (extra.length && !at.includes("/schema")) found.push(`${at}: ${extra.join(", ")}`);
    }
    for (const [k, v] of Object.entries(node)) walk(v, `${at}/${k}`);
  };
  walk(DOCUMENT, "#");
  assert.deepEqual(found, []);
});

test("a request body the Worker refuses as malformed (400) is one the documented schema refuses too", async () => {
  // A generated client validates against the schema: a body it lets through must not come back 400 for its shape.
  const cases = [
    ["/admin/gateway/purge", { tags: ["caf\u00e9"] }, "a tag outside ASCII"],
    ["/admin/gateway/purge", { tags: ["a b"] }, "a tag with a space"],
    ["/admin/gateway/purge", { tags: ["tab\there"] }, "a tag with a control character"],
    ["/admin/gateway/purge", { tags: [] }, "no tags"],
    ["/admin/gateway/purge", { tags: ["x".repeat(129)] }, "a tag too long"],
    ["/auth/login", { email: ALICE.email, password: "" }, "an empty password"],
    ["/auth/login", { email: ALICE.email, password: "p".repeat(1025) }, "a password too long"],
    ["/auth/login", { email: ALICE.email }, "no password"],
  ];
  const found = [];
  for (const [path, body, why] of cases) {
    const response = await worker.fetch(path, bearer(jsonPost(body)));
    await response.arrayBuffer();
    const schema = DOCUMENT.paths[path].post.requestBody.content["application/json"].schema;
    if (response.status !== 400) found.push(`${why}: answered ${response.status}`);
    if (schemaProblems(schema, body).length === 0) found.push(`${why}: refused (400) but valid under the documented schema`);
  }
  assert.deepEqual(found, []);
});
