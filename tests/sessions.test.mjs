// Sessions (src/session): login → session route → refresh → logout → refused, every bad input with its status and
// code, login rate limits per IP and per email, revocation (at once on strict routes and in the revoking location; within SESSION_CACHE_SECS elsewhere,
// shown by ageing the cache entry rather than sleeping), concurrent refreshes, sliding expiry and D1 bookmarks.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, verify, randomBytes, createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { rmSync } from "node:fs";
import { age, startWorker, until } from "./support/worker.mjs";
import { seed, hashPassword, DEMO_USERS } from "../scripts/seed.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";

const KEY = generateSigningJwk("test-key");
const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
const BOB = DEMO_USERS.find((u) => u.email === "bob@example.com");

const GENEROUS = {
  "login-ip": { limit: 10_000, window: 60, key: "ip" },
  "session-ip": { limit: 10_000, window: 60, key: "ip" },
  "login-email": { limit: 10_000, window: 60, key: "user" },
};

// A front end on a sibling subdomain that the configuration trusts to use sessions (SESSION_TRUSTED_ORIGINS).
const TRUSTED = "https://app.trusted.example";

let worker, kv, db;
before(async () => {
  // Generous login limits here, so the many logins below are not limited; the limits have their own test.
  worker = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS, SESSION_TRUSTED_ORIGINS: [TRUSTED] },
  });
  kv = await worker.mf.getKVNamespace("CONFIG_KV");
  db = await worker.mf.getD1Database("DB");
  await seed({ CONFIG_KV: kv, DB: db, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
});
after(() => worker?.stop());

const json = (body) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const login = (email, password) => worker.fetch("/auth/login", json({ email, password }));
const cookieOf = (response) => /__Host-edgekit_session=([^;]*)/.exec(response.headers.get("set-cookie") ?? "")?.[1];
/** Waits until a count made after its response (a failed credential's) met the limit of `policy`. */
const untilOverBudget = (w, policy) =>
  until(() => w.jsonLogs().some((l) => l.msg === "rate limit exceeded by a request counted after its response" && l.policy === policy), {
    what: `a count over ${policy}'s limit`,
  });
const withCookie = (token, init = {}) => ({ ...init, headers: { ...init.headers, cookie: `__Host-edgekit_session=${token}` } });
const sessionId = (token) => createHash("sha256").update(token).digest("hex");
const get = (path, token) => worker.fetch(path, token === undefined ? {} : withCookie(token));
const post = (path, token) => worker.fetch(path, token === undefined ? { method: "POST" } : withCookie(token, { method: "POST" }));

/** A user row for `user` ({ id, email }) with the stored hash `h` (from hashPassword), no permissions. */
function insertUser(user, h) {
  return db
    .prepare("INSERT INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash, permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '[]', ?7)")
    .bind(user.id, user.email, h.algorithm, h.iterations, h.salt, h.hash, Date.now())
    .run();
}

async function loggedIn(user = ALICE) {
  const response = await login(user.email, user.password);
  assert.equal(response.status, 200, `login ${user.email}`);
  return { token: cookieOf(response), body: await response.json(), response };
}

/** A Worker of its own (stopped after test `t`) with the suite's signing key and generous limits, and `vars` beside
 * them, seeded: its D1 (`wdb`) and KV (`wkv`) are its own to break. */
async function ownWorker(t, vars = {}) {
  const w = await startWorker({ vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS, ...vars } });
  t.after(() => w.stop());
  const wdb = await w.mf.getD1Database("DB");
  const wkv = await w.mf.getKVNamespace("CONFIG_KV");
  await seed({ CONFIG_KV: wkv, DB: wdb, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  return { w, wdb, wkv };
}

/** `w` (as `ownWorker` makes it) with ALICE signed in and no cache entry for her session, so a cached check reads
 * D1: her `token` and the `bookmark` her login handed back. */
async function signedInUncached(w, wkv) {
  const signIn = await w.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password }));
  assert.equal(signIn.status, 200);
  const token = cookieOf(signIn);
  const bookmark = signIn.headers.get("x-d1-bookmark");
  await signIn.arrayBuffer();
  await wkv.delete(`session:${sessionId(token)}`);
  return { token, bookmark };
}

/** The statements that take D1's `table` out of reach and bring it back. */
const tableAway = (table) => [`ALTER TABLE ${table} RENAME TO ${table}_away`, `ALTER TABLE ${table}_away RENAME TO ${table}`];

/** The statements that make D1 refuse any revocation (an update of `sessions.revoked_at`) and then allow it again. */
const revocationRefused = [
  "CREATE TRIGGER d1_refuses BEFORE UPDATE OF revoked_at ON sessions BEGIN SELECT RAISE(ABORT, 'refused'); END",
  "DROP TRIGGER d1_refuses",
];

/** What `send()` answers while D1 is broken by `breaks`; `heals` is run after it, whatever happened. */
async function whileBroken(wdb, [breaks, heals], send) {
  await wdb.prepare(breaks).run();
  try {
    return await send();
  } finally {
    await wdb.prepare(heals).run();
  }
}

// Moves a session's revocation `ms` into the past, in D1 and in its KV cache entry: a session ended that long ago,
// outside the window in which a check keeps the cookie of a session just ended (SESSION_REUSE_GRACE_SECS).
async function revokedAgo({ kv, db }, token, ms) {
  const id = sessionId(token);
  await db.prepare("UPDATE sessions SET revoked_at = revoked_at - ?2 WHERE id = ?1 AND revoked_at IS NOT NULL").bind(id, ms).run();
  const entry = JSON.parse((await kv.get(`session:${id}`)) ?? "null");
  if (entry?.revoked_at) await kv.put(`session:${id}`, JSON.stringify({ ...entry, revoked_at: entry.revoked_at - ms }), { expirationTtl: 60 });
}

/** How many of the reads of `response`'s request `w` made once more at the primary (waiting for its log lines). */
async function readsRetried(w, response, what) {
  const id = response.headers.get("x-request-id");
  await until(() => w.jsonLogs().some((l) => l.request_id === id && l.msg !== "session_read_retried_at_primary"), { what: `${what}: the request's log lines` });
  return w.jsonLogs().filter((l) => l.msg === "session_read_retried_at_primary" && l.request_id === id).length;
}

async function expectError(response, status, code, what) {
  assert.equal(response.status, status, what);
  const body = await response.json();
  assert.equal(body.error.code, code, what);
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"], what);
  assert.doesNotMatch(JSON.stringify(body), /sqlite|SQL|D1_|SELECT|stack|\.rs:/i, `${what}: no internals`);
}

/** Verifies an access JWT against the JWKS document in KV, as the gateway does. */
async function verifyAccessToken(jwt) {
  const [h, p, s] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  const jwks = JSON.parse(await kv.get("jwks"));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, "the token's kid is in the JWKS");
  assert.equal(jwk.d, undefined, "the JWKS holds no private part");
  const ok = verify(null, Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
  assert.ok(ok, "the signature verifies with the published key");
  return { header, claims: JSON.parse(Buffer.from(p, "base64url")) };
}

test("the whole flow: login, session route, refresh, logout, then refused everywhere", async () => {
  const { token, body, response } = await loggedIn();
  const setCookie = response.headers.get("set-cookie");
  for (const attribute of ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]) assert.match(setCookie, new RegExp(attribute));
  // The cookie lasts the session's absolute limit (SESSION_MAX_SECS, 30 days by default), not its first idle window:
  // the idle expiry slides in D1 with use, and the browser must not drop a session that is still alive.
  const maxAge = Number(/Max-Age=(\d+)/.exec(setCookie)[1]);
  assert.ok(maxAge > 29 * 86_400 && maxAge <= 30 * 86_400, `Max-Age ${maxAge}`);
  assert.ok(body.session.expires_at < Date.now() + 8 * 86_400_000, "while D1's idle expiry is the nearer one");
  assert.match(token, /^[A-Za-z0-9_-]{43}$/, "a 256-bit token in base64url");
  assert.ok(response.headers.get("x-d1-bookmark"), "login hands back a D1 bookmark");
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.deepEqual(body.user, { id: ALICE.id, email: ALICE.email, permissions: ALICE.permissions });
  assert.equal(body.token_type, "Bearer");

  const { header, claims } = await verifyAccessToken(body.access_token);
  assert.equal(header.alg, "EdDSA");
  assert.equal(header.kid, "test-key");
  assert.equal(claims.iss, "edgekit");
  assert.equal(claims.aud, "edgekit-api");
  assert.equal(claims.sub, ALICE.id);
  assert.equal(claims.email, ALICE.email);
  assert.deepEqual(claims.permissions, ALICE.permissions);
  assert.equal(claims.exp - claims.iat, body.expires_in);
  assert.equal(claims.nbf, claims.iat);

  const stored = await db.prepare("SELECT id FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  assert.ok(stored, "D1 stores the token's hash");
  assert.equal(await db.prepare("SELECT id FROM sessions WHERE id = ?1").bind(token).first(), null, "never the token");

  const current = await get("/auth/session", token);
  assert.equal(current.status, 200);
  assert.equal((await current.json()).user.email, ALICE.email);
  const strict = await get("/auth/sessions", token);
  assert.equal(strict.status, 200);
  const listed = await strict.json();
  assert.equal(listed.sessions.filter((s) => s.current).length, 1, "the caller's own session is marked");

  const refreshed = await post("/auth/refresh", token);
  assert.equal(refreshed.status, 200);
  const rotated = cookieOf(refreshed);
  assert.notEqual(rotated, token, "refresh rotates the token");
  await verifyAccessToken((await refreshed.json()).access_token);
  // Within the reuse grace window the old token is told apart: another request rotated it, and a retry with the
  // cookie that request set works.
  await expectError(await get("/auth/session", token), 401, "session_rotated", "the old token after refresh");
  assert.equal((await get("/auth/session", rotated)).status, 200, "the new token works");

  const out = await post("/auth/logout", rotated);
  assert.equal(out.status, 204);
  assert.match(out.headers.get("set-cookie"), /__Host-edgekit_session=;.*Max-Age=0/);
  const left = JSON.parse(await kv.get(`session:${sessionId(rotated)}`));
  assert.ok(left.revoked_at > 0 && left.user_id === "", "logout left a revocation entry (no user data) in the cache");
  const row = await db.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(sessionId(rotated)).first();
  assert.ok(row.revoked_at > 0, "logout marked D1");
  await expectError(await get("/auth/session", rotated), 401, "session_invalid", "cached check after logout");
  await expectError(await get("/auth/sessions", rotated), 401, "session_invalid", "strict check after logout");
  await expectError(await post("/auth/refresh", rotated), 401, "session_invalid", "refresh after logout");
  assert.equal((await post("/auth/logout", rotated)).status, 204, "logout is idempotent");
  // The token the refresh retired, still within the grace window: its session has ended, so no retry is offered.
  await expectError(await get("/auth/session", token), 401, "session_invalid", "a retired token of an ended session");
  await expectError(await post("/auth/refresh", token), 401, "session_invalid", "…also to a refresh");
  // Two session cookies: one was planted (a browser holds one __Host- cookie of a name); neither is trusted.
  const { token: live } = await loggedIn(ALICE);
  const planted = await worker.fetch("/auth/session", { headers: { cookie: `__Host-edgekit_session=${live}; __Host-edgekit_session=${live}` } });
  await expectError(planted, 401, "session_invalid", "two values of the session cookie");
  // A made-up cookie names no session: logout clears it and writes nothing to KV.
  const madeUp = randomBytes(32).toString("base64url");
  const outAgain = await post("/auth/logout", madeUp);
  assert.equal(outAgain.status, 204);
  assert.match(outAgain.headers.get("set-cookie"), /__Host-edgekit_session=;.*Max-Age=0/);
  assert.equal(await kv.get(`session:${sessionId(madeUp)}`), null, "no KV write for an id nothing knows");
});

test("a session cookie tossed inside another cookie's value (`x=a,__Host-…=token`, which a sibling subdomain can set) is none: it signs no visitor in to the planter's account, and locks no user out", async () => {
  // Bob plays the page on a sibling subdomain: it cannot set a __Host- cookie, but it can set `theme` for the parent
  // domain with a value holding a comma (browsers end a value only at `;`), which the browser then sends as is.
  const { token: planted } = await loggedIn(BOB);
  const tossed = `theme=a,__Host-edgekit_session=${planted}`;
  const visitor = await worker.fetch("/auth/session", { headers: { cookie: tossed } });
  await expectError(visitor, 401, "session_required", "a visitor without a session is not signed in as the planter");
  const { token: own } = await loggedIn(ALICE);
  const user = await worker.fetch("/auth/session", { headers: { cookie: `__Host-edgekit_session=${own}; ${tossed}` } });
  assert.equal(user.status, 200, "the user's own cookie is the one value of the name");
  assert.equal((await user.json()).user.email, ALICE.email);
  // Two Cookie fields (RFC 6265 §5.4: a user agent sends one) reach the Worker joined by `, `, as a tossed value
  // reads: a session cookie in the second is not read.
  const { hostname, port } = new URL(worker.url);
  const answer = await new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname, () =>
      sock.write(`GET /auth/session HTTP/1.1\r\nHost: x\r\nCookie: theme=dark\r\nCookie: __Host-edgekit_session=${own}\r\nConnection: close\r\n\r\n`),
    );
    let text = "";
    sock.on("data", (d) => {
      text += d;
      if (text.includes("\r\n")) {
        sock.destroy();
        resolve(text);
      }
    });
    sock.on("error", reject);
  });
  assert.match(answer, /^HTTP\/1\.1 401 /, answer.slice(0, 200));
});

test("a user whose permissions column is not a JSON list holds none, at login and at every check alike", async () => {
  const user = { id: "user-bad-permissions", email: "bad-permissions@example.com", password: "correct horse battery staple" };
  await insertUser(user, await hashPassword(user.password, 10_000));
  await db.prepare("UPDATE users SET permissions = 'admin,write' WHERE id = ?1").bind(user.id).run();
  const badColumn = () => worker.jsonLogs().filter((l) => l.msg === "bad permissions column" && l.user_id === user.id);
  const before = badColumn().length;
  const signedIn = await worker.fetch("/auth/login", { ...json({ email: user.email, password: user.password }), headers: { "content-type": "application/json", "x-request-id": "bad-permissions-login" } });
  assert.equal(signedIn.status, 200);
  const token = cookieOf(signedIn);
  const body = await signedIn.json();
  assert.deepEqual(body.user?.permissions ?? [], []);
  const logged = await until(() => badColumn().length > before && badColumn().slice(before), { what: "the bad column logged at login" });
  for (const line of logged) assert.equal(line.request_id, "bad-permissions-login", "the error line names the request it came from");
  for (const path of ["/auth/session", "/auth/sessions"]) {
    const r = await get(path, token);
    assert.equal(r.status, 200, path);
    await r.arrayBuffer();
  }
  await kv.delete(`session:${sessionId(token)}`);
  const fromD1 = await get("/auth/session", token);
  assert.equal(fromD1.status, 200, "a check read from D1");
  assert.deepEqual((await fromD1.json()).user.permissions, []);
});

test("a page of a SESSION_TRUSTED_ORIGINS origin can log in across origins: its preflights are answered and it reads the answers", async () => {
  const preflight = (path, method, origin = TRUSTED) =>
    worker.fetch(path, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": "content-type" } });
  const ok = await preflight("/auth/login", "POST");
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get("access-control-allow-origin"), TRUSTED);
  assert.equal(ok.headers.get("access-control-allow-credentials"), "true");
  assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
  assert.match(ok.headers.get("access-control-allow-headers"), /Content-Type/i);
  // A page with a tracer sends the W3C pair; a browser sends the login only if both are allowed.
  const traced = await worker.fetch("/auth/login", { method: "OPTIONS", headers: { origin: TRUSTED, "access-control-request-method": "POST", "access-control-request-headers": "content-type,traceparent,tracestate" } });
  assert.equal(traced.status, 204);
  const allowed = traced.headers.get("access-control-allow-headers").toLowerCase().split(", ");
  for (const name of ["content-type", "traceparent", "tracestate"]) assert.ok(allowed.includes(name), `${name} in ${allowed}`);
  assert.equal(ok.headers.get("vary"), "Origin", "named once");
  assert.equal(ok.headers.get("x-content-type-options"), "nosniff", "an answer of the app's own, as every other");
  // A route taking a bearer token (an operator's dashboard purging by tag): the page may send Authorization.
  const purge = await worker.fetch("/admin/gateway/purge", { method: "OPTIONS", headers: { origin: TRUSTED, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" } });
  assert.equal(purge.status, 204);
  assert.match(purge.headers.get("access-control-allow-headers"), /(^|, )Authorization(,|$)/);
  // Another origin, or a method the route does not serve: the 405 as before, and nothing a browser would accept.
  for (const [path, method, origin] of [["/auth/login", "POST", "https://evil.example"], ["/auth/login", "DELETE", TRUSTED]]) {
    const refused = await preflight(path, method, origin);
    assert.equal(refused.status, 405, `${path} ${method} ${origin}`);
    assert.equal(refused.headers.get("access-control-allow-methods"), null);
    await refused.arrayBuffer();
  }
  assert.equal((await preflight("/auth/login", "POST", "https://evil.example")).headers.get("access-control-allow-origin"), null);
  // A trusted page's preflight for a method the route does not serve: that method is the one refused, and OPTIONS,
  // served here as this preflight, is in Allow (RFC 9110 §15.5.6); another site's OPTIONS is not served.
  const unserved = await preflight("/auth/login", "DELETE");
  assert.deepEqual(unserved.headers.get("allow").split(", ").sort(), ["OPTIONS", "POST"]);
  assert.match((await unserved.json()).error.message, /method DELETE is not allowed/);
  // Asking whether an OPTIONS request may be sent: that OPTIONS is the one refused, and Allow does not claim it.
  const options = await preflight("/auth/login", "OPTIONS");
  assert.equal(options.status, 405);
  assert.equal(options.headers.get("allow"), "POST");
  assert.match((await options.json()).error.message, /method OPTIONS is not allowed here; allowed: POST"?$/);
  const foreign = await preflight("/auth/login", "DELETE", "https://evil.example");
  assert.equal(foreign.headers.get("allow"), "POST");
  await foreign.arrayBuffer();
  // The login itself, as a sibling subdomain's fetch sends it: the page reads the answer and its bookmark.
  const signIn = (password, origin = TRUSTED) =>
    worker.fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json", "sec-fetch-site": "same-site", origin }, body: JSON.stringify({ email: BOB.email, password }) });
  const signedIn = await signIn(BOB.password);
  assert.equal(signedIn.status, 200);
  assert.equal(signedIn.headers.get("access-control-allow-origin"), TRUSTED);
  assert.equal(signedIn.headers.get("access-control-allow-credentials"), "true");
  assert.match(signedIn.headers.get("access-control-expose-headers"), /X-D1-Bookmark/);
  await signedIn.arrayBuffer();
  const wrong = await signIn("not the password");
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get("access-control-allow-origin"), TRUSTED, "an error is readable too");
  await wrong.arrayBuffer();
  const { token } = await loggedIn(BOB);
  const read = await worker.fetch("/auth/session", withCookie(token, { headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } }));
  assert.equal(read.status, 200);
  assert.equal(read.headers.get("access-control-allow-origin"), null, "another origin's page reads nothing");
  assert.match(read.headers.get("vary") ?? "", /Origin/, "but a stored copy is kept apart from a trusted page's");
  await read.arrayBuffer();
});

test("a session is used only from this origin's pages: logins and state-changing requests with the cookie from another origin get 403, and change nothing", async () => {
  const own = new URL(worker.url).origin;
  // What browsers send for a page on another origin: a sibling subdomain is the same *site*, so SameSite=Lax
  // attaches the cookie to its form posts and fetches; only these headers tell such a request apart.
  const foreign = [
    { "sec-fetch-site": "same-site", origin: "https://evil.trusted.example" },
    { "sec-fetch-site": "cross-site", origin: "https://evil.example" },
    { "sec-fetch-site": "same-site" },
    { origin: "https://evil.example" },
    { origin: "null" },
    { origin: own.replace("127.0.0.1", "localhost") },
  ];
  const allowed = [{}, { "sec-fetch-site": "same-origin", origin: own }, { "sec-fetch-site": "none" }, { origin: own },
    { "sec-fetch-site": "same-site", origin: TRUSTED }, { origin: TRUSTED }];
  const loginFrom = (headers) =>
    worker.fetch("/auth/login", { method: "POST", headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ email: BOB.email, password: BOB.password }) });
  for (const headers of foreign) {
    await expectError(await loginFrom(headers), 403, "cross_origin_refused", `login from ${JSON.stringify(headers)}`);
  }
  for (const headers of allowed) {
    assert.equal((await loginFrom(headers)).status, 200, `login from ${JSON.stringify(headers)}`);
  }

  const { token } = await loggedIn(BOB);
  const from = (headers, init = {}) => withCookie(token, { ...init, headers: { ...init.headers, ...headers } });
  for (const headers of foreign) {
    const what = JSON.stringify(headers);
    await expectError(await worker.fetch("/auth/refresh", from(headers, { method: "POST" })), 403, "cross_origin_refused", `refresh from ${what}`);
    await expectError(await worker.fetch("/auth/logout", from(headers, { method: "POST" })), 403, "cross_origin_refused", `logout from ${what}`);
    await expectError(await worker.fetch("/rooms/csrf-room/ticket", from(headers, { method: "POST" })), 403, "cross_origin_refused", `room ticket from ${what}`);
    // Reads are not state-changing: a page elsewhere cannot see their answers anyway (no CORS for it).
    assert.equal((await worker.fetch("/auth/session", from(headers))).status, 200, `session read from ${what}`);
  }
  // None of the refused requests rotated or ended the session.
  const row = await db.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  assert.equal(row.revoked_at, null, "still live in D1");
  assert.equal((await get("/auth/sessions", token)).status, 200, "the strict check still takes the same token");
  const ticket = await worker.fetch("/rooms/csrf-room/ticket", from({ "sec-fetch-site": "same-site", origin: TRUSTED }, { method: "POST" }));
  assert.equal(ticket.status, 201, "a trusted origin's page may");
  const refreshed = await worker.fetch("/auth/refresh", from({ "sec-fetch-site": "same-origin" }, { method: "POST" }));
  assert.equal(refreshed.status, 200, "and so may this origin's own");
  assert.equal((await post("/auth/logout", cookieOf(refreshed))).status, 204, "as may a client that is no browser page");
});

test("a logout another origin's page starts gets 403 and clears no cookie, also when SameSite=Lax kept the cookie off it", async () => {
  // A cross-site page's auto-submitted <form method=post action=/auth/logout> is a top-level navigation: the browser
  // sends no Lax cookie with it, but stores the answer's Set-Cookie (RFC 6265bis §5.7) — a 204 clearing the cookie
  // would sign the user out from any site, leaving the session alive in D1.
  const { token } = await loggedIn(BOB);
  const foreign = [
    { "sec-fetch-site": "cross-site", origin: "https://evil.example" },
    { "sec-fetch-site": "same-site", origin: "https://evil.trusted.example" },
    { origin: "null" },
  ];
  for (const headers of foreign) {
    const what = `logout without a cookie from ${JSON.stringify(headers)}`;
    const response = await worker.fetch("/auth/logout", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: "" });
    assert.equal(response.headers.get("set-cookie"), null, `${what}: no Set-Cookie`);
    await expectError(response, 403, "cross_origin_refused", what);
    // A planted second value (the cookie reads as garbled) from a sibling page clears nothing either.
    const planted = await worker.fetch("/auth/logout", { method: "POST", headers: { ...headers, cookie: `__Host-edgekit_session=${token}; __Host-edgekit_session=x` } });
    assert.equal(planted.headers.get("set-cookie"), null, `${what}, garbled cookie: no Set-Cookie`);
    await expectError(planted, 403, "cross_origin_refused", `${what}, garbled cookie`);
  }
  assert.equal((await get("/auth/sessions", token)).status, 200, "the session lives");
  // This origin's pages and clients that are no browser page still sign out without a cookie (idempotent 204).
  for (const headers of [{}, { "sec-fetch-site": "same-origin" }, { "sec-fetch-site": "same-site", origin: TRUSTED }]) {
    const response = await worker.fetch("/auth/logout", { method: "POST", headers });
    assert.equal(response.status, 204, `logout without a cookie from ${JSON.stringify(headers)}`);
    assert.match(response.headers.get("set-cookie"), /__Host-edgekit_session=;.*Max-Age=0/);
  }
});

test("a refresh token reused after its rotation (past SESSION_REUSE_GRACE_SECS) revokes the session it was rotated into", async () => {
  // Within the grace window (30 s here by default) the old token is only refused: the flow test above presents it
  // right after the refresh and the new token keeps working. With no grace, any reuse is a copy. Rotations are not
  // spaced here (SESSION_ROTATE_MIN_SECS 0), so the bound on remembered ids can be reached.
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS, SESSION_REUSE_GRACE_SECS: 0, SESSION_ROTATE_MIN_SECS: 0 },
  });
  try {
    const wdb = await w.mf.getD1Database("DB");
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: wdb, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const signIn = async (user) => cookieOf(await w.fetch("/auth/login", json({ email: user.email, password: user.password })));
    const refresh = (token) => w.fetch("/auth/refresh", withCookie(token, { method: "POST" }));
    const first = await signIn(ALICE);
    const bobs = await signIn(BOB);
    const second = cookieOf(await refresh(first));
    const third = cookieOf(await refresh(second));
    assert.ok(first && second && third && new Set([first, second, third]).size === 3, "two rotations");
    assert.equal((await w.fetch("/auth/session", withCookie(third))).status, 200, "the current token works");
    const retiredRows = async () =>
      (await wdb.prepare("SELECT COUNT(*) AS n FROM retired_session_ids WHERE id IN (?1, ?2)").bind(sessionId(first), sessionId(second)).first()).n;
    assert.equal(await retiredRows(), 2, "each rotation remembered the id it retired");

    // The first token comes back (a copy someone kept): refused, and the session it became is revoked.
    await expectError(await refresh(first), 401, "session_invalid", "the reused token");
    await expectError(await w.fetch("/auth/session", withCookie(third)), 401, "session_invalid", "the current token, cached check");
    await expectError(await w.fetch("/auth/sessions", withCookie(third)), 401, "session_invalid", "the current token, strict check");
    const row = await wdb.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(sessionId(third)).first();
    assert.ok(row.revoked_at > 0, "revoked in D1");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "session_reuse"), { what: "the reuse log line" });
    assert.equal(line.revoked_sessions, 1);
    assert.equal((await w.fetch("/auth/session", withCookie(bobs))).status, 200, "another user's session is untouched");
    // Detected once: the family's retired ids are forgotten with the revocation, so the copy sent again is an
    // unknown token (a read), not another revocation write and log line.
    assert.equal(await retiredRows(), 0, "the family's retired ids are gone");
    await expectError(await refresh(first), 401, "session_invalid", "the reused token again");
    await expectError(await w.fetch("/auth/session", withCookie(second)), 401, "session_invalid", "the other retired token");
    assert.equal(w.jsonLogs().filter((l) => l.msg === "session_reuse").length, 1, "one detection");

    // A session keeps its 64 latest retired ids, however often it is refreshed.
    let token = await signIn(ALICE);
    for (let i = 0; i < 70; i++) token = cookieOf(await refresh(token));
    const family = await wdb.prepare("SELECT family FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
    const kept = await wdb.prepare("SELECT COUNT(*) AS n FROM retired_session_ids WHERE family = ?1").bind(family.family).first();
    assert.equal(kept.n, 64, "retired ids kept per session");
  } finally {
    await w.stop();
  }
});

test("a session is rotated at most once per SESSION_ROTATE_MIN_SECS: a thief refreshing a stolen token in a loop cannot push the owner's copy out of reuse detection", async () => {
  const w = await startWorker({ vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS, SESSION_REUSE_GRACE_SECS: 0 } });
  try {
    const wdb = await w.mf.getD1Database("DB");
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: wdb, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const refresh = (token) => w.fetch("/auth/refresh", withCookie(token, { method: "POST" }));
    const stolen = cookieOf(await w.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password })));
    // The thief refreshes first (rotating the session), then keeps refreshing with what it got.
    const first = await refresh(stolen);
    assert.equal(first.status, 200);
    const thiefs = cookieOf(first);
    assert.notEqual(thiefs, stolen, "the first refresh rotates");
    for (let i = 0; i < 20; i++) {
      const again = await refresh(thiefs);
      assert.equal(again.status, 200, "a refresh within the interval still answers");
      const body = await again.json();
      assert.ok(body.access_token, "with an access token");
      assert.equal(cookieOf(again), undefined, "and the same session token, which it does not set again");
    }
    const rows = await wdb.prepare("SELECT COUNT(*) AS n FROM retired_session_ids WHERE id = ?1").bind(sessionId(stolen)).first();
    assert.equal(rows.n, 1, "the owner's copy is still remembered as retired");
    // The owner comes back with the token the thief stole: the thief's session is revoked.
    await expectError(await w.fetch("/auth/session", withCookie(stolen)), 401, "session_invalid", "the owner's retired token");
    await expectError(await w.fetch("/auth/session", withCookie(thiefs)), 401, "session_invalid", "the thief's token");
    assert.ok(w.jsonLogs().some((l) => l.msg === "session_reuse"), "logged as reuse");
  } finally {
    await w.stop();
  }
});

test("a refresh that keeps the session token sets no cookie: its answer, crossing a concurrent rotation's, cannot put the retired token back in the browser", async () => {
  // Two tabs refresh as SESSION_ROTATE_MIN_SECS ends: the first is answered within the interval (an access token, the
  // token kept), the second rotates. Answers may arrive in either order; the browser keeps the last cookie it is set.
  const { token } = await loggedIn(BOB);
  const id = sessionId(token);
  await db.prepare("UPDATE sessions SET rotated_at = ?2 WHERE id = ?1").bind(id, Date.now()).run();
  const within = await post("/auth/refresh", token);
  assert.equal(within.status, 200, "within the interval");
  assert.ok((await within.json()).access_token, "an access token");
  await db.prepare("UPDATE sessions SET rotated_at = ?2 WHERE id = ?1").bind(id, Date.now() - 61_000).run();
  const rotating = await post("/auth/refresh", token);
  assert.equal(rotating.status, 200, "the interval over: rotated");
  const rotated = cookieOf(rotating);
  assert.ok(rotated && rotated !== token);
  await rotating.arrayBuffer();
  // The rotating answer arrived first, the other one last.
  assert.equal(within.headers.get("set-cookie"), null, "the answer that kept the token sets no cookie");
  const held = cookieOf(within) ?? rotated;
  // Later than SESSION_REUSE_GRACE_SECS (aged rather than waited for), the browser uses what it holds.
  await db.prepare("UPDATE retired_session_ids SET retired_at = retired_at - 60000 WHERE id = ?1").bind(id).run();
  assert.equal((await get("/auth/session", held)).status, 200, "the browser's cookie works");
  assert.equal((await get("/auth/sessions", rotated)).status, 200, "and the session was not revoked as reused");
});

test("a login ends the session the browser held before, and an owner who lost a rotation to a thief ends the thief's by signing in again", async () => {
  const loginWith = (user, token) =>
    worker.fetch("/auth/login", { ...json({ email: user.email, password: user.password }), headers: { "content-type": "application/json", ...(token && { cookie: `__Host-edgekit_session=${token}` }) } });
  const before = cookieOf(await loginWith(ALICE));
  const again = await loginWith(BOB, before);
  assert.equal(again.status, 200);
  const after = cookieOf(again);
  assert.ok(after && after !== before);
  await expectError(await worker.fetch("/auth/sessions", withCookie(before)), 401, "session_invalid", "the session the cookie held");
  assert.equal((await worker.fetch("/auth/session", withCookie(after))).status, 200, "the new one works");

  // A thief refreshes a stolen token first; the owner, within the grace window, is told session_rotated, gives up
  // and signs in again with the old token still in the cookie: the session the thief rotated into ends.
  const stolen = cookieOf(await loginWith(ALICE));
  const thiefs = cookieOf(await worker.fetch("/auth/refresh", withCookie(stolen, { method: "POST" })));
  assert.ok(thiefs && thiefs !== stolen, "the thief's refresh rotated");
  await expectError(await worker.fetch("/auth/refresh", withCookie(stolen, { method: "POST" })), 401, "session_rotated", "the owner's retry");
  const owner = await loginWith(ALICE, stolen);
  assert.equal(owner.status, 200);
  await expectError(await worker.fetch("/auth/sessions", withCookie(thiefs)), 401, "session_invalid", "the thief's session");
  assert.equal((await worker.fetch("/auth/session", withCookie(cookieOf(owner)))).status, 200, "the owner's new session");
});

test("a login carrying a garbage, unknown or expired earlier cookie is answered 200 and ends nothing but what the cookie named", async () => {
  // The earlier session's end runs in the login's D1 batch (08a60ae), which now fails the login with it: a value
  // that names nothing live must cost no more than a statement that changes nothing.
  const { token: expired } = await loggedIn(ALICE);
  await db.prepare("UPDATE sessions SET expires_at = ?2 WHERE id = ?1").bind(sessionId(expired), Date.now() - 1).run();
  const { token: bystander } = await loggedIn(ALICE);
  for (const [value, what] of [
    ["not-a-token", "a malformed value"],
    [randomBytes(32).toString("base64url"), "a well-formed token no session has"],
    [expired, "an expired session's token"],
  ]) {
    const r = await worker.fetch("/auth/login", { ...json({ email: ALICE.email, password: ALICE.password }), headers: { "content-type": "application/json", cookie: `__Host-edgekit_session=${value}` } });
    assert.equal(r.status, 200, `${what}: logged in`);
    const made = cookieOf(r);
    await r.arrayBuffer();
    const listed = await get("/auth/sessions", made);
    assert.equal(listed.status, 200, `${what}: the new session works (strict check)`);
    await listed.arrayBuffer();
  }
  const lives = await get("/auth/sessions", bystander);
  assert.equal(lives.status, 200, "another session of the user, not in the cookie, lives");
  await lives.arrayBuffer();
});

test("a session records the client's address as every other reader names it: canonical, an IPv4-mapped one as IPv4; a malformed one is no address and the login is refused", async () => {
  // The address a session records and the key of the login's rate limit are one reading of CF-Connecting-IP
  // (src/client_address.rs). Before, the session kept the header's spelling (the limiter had already taken
  // ::ffff:198.51.100.7 as 198.51.100.7), and a value that is no address was both keyed and recorded as sent.
  const from = (ip) => worker.fetch("/auth/login", { ...json({ email: ALICE.email, password: ALICE.password }), headers: { "content-type": "application/json", "cf-connecting-ip": ip } });
  for (const [sent, recorded] of [
    ["2001:DB8:0:0::0007", "2001:db8::7"],
    ["::ffff:198.51.100.7", "198.51.100.7"],
    ["198.51.100.8", "198.51.100.8"],
  ]) {
    const r = await from(sent);
    assert.equal(r.status, 200, sent);
    const token = cookieOf(r);
    await r.arrayBuffer();
    const { sessions } = await (await get("/auth/sessions", token)).json();
    assert.equal(sessions.find((s) => s.current).ip, recorded, sent);
  }
  for (const sent of ["not-an-address", "198.51.100.9, 10.0.0.1"]) {
    const before = await db.prepare("SELECT COUNT(*) AS n FROM sessions").first();
    const r = await from(sent);
    await expectError(r, 400, "client_ip_unknown", sent);
    assert.equal(r.headers.get("set-cookie"), null, `${sent}: no cookie`);
    assert.deepEqual(await db.prepare("SELECT COUNT(*) AS n FROM sessions").first(), before, `${sent}: no session made`);
  }
});

test("a login whose ending of the earlier session fails is refused 503 and leaves nothing behind: no new session beside the old one", async (t) => {
  // A login ends the session the browser's cookie named (a new authentication never leaves the old one alive beside
  // it). When that revocation failed in D1 the login was answered 200 anyway, after its new session row was written:
  // the old session lived on beside the new one, and only a log line said so. The revocation is made unreachable
  // here (the retired ids it also reads renamed away) while the rest of the login still works.
  const { w, wdb } = await ownWorker(t);
  const loginWith = (token) =>
    w.fetch("/auth/login", {
      ...json({ email: ALICE.email, password: ALICE.password }),
      headers: { "content-type": "application/json", ...(token && { cookie: `__Host-edgekit_session=${token}` }) },
    });
  const first = await loginWith();
  assert.equal(first.status, 200);
  const old = cookieOf(first);
  await first.arrayBuffer();
  const rows = async () => (await wdb.prepare("SELECT COUNT(*) AS n FROM sessions").first()).n;
  const before = await rows();
  await wdb.prepare("ALTER TABLE retired_session_ids RENAME TO retired_session_ids_away").run();
  let again;
  try {
    again = await loginWith(old);
    await again.arrayBuffer();
  } finally {
    await wdb.prepare("ALTER TABLE retired_session_ids_away RENAME TO retired_session_ids").run();
  }
  assert.equal(again.status, 503, "the login is refused");
  assert.equal(cookieOf(again), undefined, "no session cookie is set");
  assert.equal(await rows(), before, "no new session row is left behind");
  // Asked of D1, not of the cache: GET /auth/session is a cached check, and the entry the first login wrote admits
  // the session for SESSION_CACHE_SECS whatever D1 holds (a 503 writes no revocation entry), so it could not see a
  // revocation that committed without the new session.
  const row = await wdb.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(createHash("sha256").update(old).digest("hex")).first();
  assert.equal(row?.revoked_at, null, "the earlier session's row is not revoked: nothing half-done");
  const still = await w.fetch("/auth/sessions", withCookie(old));
  assert.equal(still.status, 200, "a strict check (D1) still admits the earlier session");
  await still.arrayBuffer();
  const retried = await loginWith(old);
  assert.equal(retried.status, 200, "with D1 whole again the login goes through");
  await retried.arrayBuffer();
  const ended = await w.fetch("/auth/sessions", withCookie(old));
  assert.equal(ended.status, 401, "and ends the earlier session");
  await ended.arrayBuffer();
});

test("a refresh, logout or DELETE /auth/sessions that D1 cannot write is refused 503 session_store_unavailable, as a login is, and changes nothing", async (t) => {
  // A login's D1 failure was a 503 session_store_unavailable (08a60ae) while the same failure of the session's other
  // writes was a 500: one answer for one cause, which a client may retry. The rotation's and the logout's batches are
  // made to fail as the login test makes its own (the retired ids they also write or read renamed away); the
  // revocation by user touches only `sessions`, so a trigger refuses the revocation there. The strict checks before
  // them still work.
  const { w, wdb } = await ownWorker(t);
  const signIn = async () => {
    const r = await w.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password }));
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    return cookieOf(r);
  };
  const token = await signIn();
  const away = tableAway("retired_session_ids");
  for (const [path, method, breaking] of [
    ["/auth/refresh", "POST", away],
    ["/auth/logout", "POST", away],
    ["/auth/sessions", "DELETE", revocationRefused],
  ]) {
    const what = `${method} ${path}`;
    const r = await whileBroken(wdb, breaking, () => w.fetch(path, withCookie(token, { method })));
    assert.equal(r.headers.get("set-cookie"), null, `${what}: the cookie is neither replaced nor cleared`);
    await expectError(r, 503, "session_store_unavailable", what);
    const row = await wdb.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
    assert.equal(row?.revoked_at, null, `${what}: the session is as it was`);
    const still = await w.fetch("/auth/sessions", withCookie(token));
    assert.equal(still.status, 200, `${what}: a strict check still admits the session`);
    await still.arrayBuffer();
  }
});

test("a check, login or session list that D1 cannot read answers 503 session_store_unavailable, not 500, and keeps the cookie: a strict check with D1 down does not sign the user out", async (t) => {
  // Writes D1 refused were 503 session_store_unavailable, but the reads before them were 500s: a strict check
  // (refresh, the session lists), a cached check its KV entry did not answer, a login's account read, the list
  // itself. A 500 says "bug", not "try again", and a front end treating any failure of a check as "logged out" then
  // signed the user out for a D1 hiccup. The reads are made to fail by renaming what they read away.
  const { w, wdb, wkv } = await ownWorker(t, {
    // Never reached: the check before the upstream fails.
    GATEWAY_ROUTES: [
      { name: "session", path: "/gw/session", upstream: "http://127.0.0.1:9", auth: "session" },
      { name: "either", path: "/gw/either", upstream: "http://127.0.0.1:9", auth: "jwt_or_session" },
    ],
  });
  // No cache entry: a cached check reads D1.
  const { token } = await signedInUncached(w, wkv);
  const column = ["ALTER TABLE sessions RENAME COLUMN user_agent TO user_agent_away", "ALTER TABLE sessions RENAME COLUMN user_agent_away TO user_agent"];
  for (const [what, breaking, send] of [
    ["GET /auth/sessions (strict check)", tableAway("sessions"), () => w.fetch("/auth/sessions", withCookie(token))],
    ["POST /auth/refresh (strict check)", tableAway("sessions"), () => w.fetch("/auth/refresh", withCookie(token, { method: "POST" }))],
    ["DELETE /auth/sessions (strict check)", tableAway("sessions"), () => w.fetch("/auth/sessions", withCookie(token, { method: "DELETE" }))],
    ["GET /auth/session (cached check, no entry)", tableAway("sessions"), () => w.fetch("/auth/session", withCookie(token))],
    ["POST /rooms/{id}/ticket (cached check, no entry)", tableAway("sessions"), () => w.fetch("/rooms/d1-down/ticket", withCookie(token, { method: "POST" }))],
    ["a gateway route of auth policy session (cached check, no entry)", tableAway("sessions"), () => w.fetch("/gw/session", withCookie(token))],
    ["a gateway route of auth policy jwt_or_session without a bearer", tableAway("sessions"), () => w.fetch("/gw/either", withCookie(token))],
    ["GET /auth/sessions (the list itself)", column, () => w.fetch("/auth/sessions", withCookie(token))],
    ["POST /auth/login (the account)", tableAway("users"), () => w.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password }))],
  ]) {
    const r = await whileBroken(wdb, breaking, send);
    assert.deepEqual(r.headers.getSetCookie(), [], `${what}: the cookie is neither set nor cleared`);
    await expectError(r, 503, "session_store_unavailable", what);
  }
  // A page still renders (anonymous), as before.
  const page = await whileBroken(wdb, tableAway("sessions"), () => w.fetch("/", withCookie(token)));
  assert.equal(page.status, 200, "a page renders");
  assert.deepEqual(page.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session=")), [], "the page keeps the cookie");
  await page.arrayBuffer();
  // Nothing changed: with D1 whole again the session works on strict checks.
  const still = await w.fetch("/auth/sessions", withCookie(token));
  assert.equal(still.status, 200, "the session lives");
  await still.arrayBuffer();
});

test("a cached check's or a login's first D1 read that fails at the client's bookmark is made once more at the primary, and only a read that started at a bookmark; the isolate then starts that bookmark's requests at the primary", async (t) => {
  // workerd's withSession takes any non-empty string, so D1 judges a bookmark only at the query that carries it: one
  // it refuses (another database's, one from before a restore) failed every cached check — and every login — of that
  // client with 503, and the 503 carried no bookmark to replace it. Miniflare ignores bookmarks, so the refusal itself
  // cannot be staged, nor a primary answering where the bookmark's read failed: a read that fails whatever its
  // bookmark (the table renamed away) shows that the read is made again (logged, once), only for a request that sent a
  // bookmark — and, the primary failing too, still the 503. That the retry's answer is served is the code's to show.
  // Pages, room tickets and gateway routes hand no bookmark back, so the client kept sending the one that failed, and
  // each of its requests paid the failed read and the retry: the isolate remembers it and starts its requests at the
  // primary (no retry, on any route), while another bookmark is still tried first.
  const { w, wdb, wkv } = await ownWorker(t);
  const { token, bookmark } = await signedInUncached(w, wkv);
  // Bookmark-shaped values of their own (Miniflare reads at any alike).
  const [another, third] = ["0c", "0d"].map((n) => `000000${n}-00000001-00000000-${"0".repeat(32)}`);
  const at = (b) => ({ headers: { "x-d1-bookmark": b } });
  const signInAt = (init) => w.fetch("/auth/login", { ...json({ email: ALICE.email, password: ALICE.password }), ...init, headers: { "content-type": "application/json", ...init.headers } });
  const cases = [
    ["GET /auth/session at the client's bookmark", "sessions", () => w.fetch("/auth/session", withCookie(token, at(bookmark))), 1],
    ["GET /auth/session without a bookmark (already the primary)", "sessions", () => w.fetch("/auth/session", withCookie(token)), 0],
    ["POST /auth/login at the client's bookmark (the account)", "users", () => signInAt(at(another)), 1],
    ["POST /auth/login without a bookmark", "users", () => signInAt({ headers: {} }), 0],
    ["GET /auth/session at a bookmark a read failed at before (started at the primary)", "sessions", () => w.fetch("/auth/session", withCookie(token, at(bookmark))), 0],
    ["POST /rooms/{id}/ticket at a bookmark a login's read failed at before", "sessions", () => w.fetch("/rooms/d1-down/ticket", withCookie(token, { method: "POST", ...at(another) })), 0],
    ["GET /auth/session at a bookmark no read failed at", "sessions", () => w.fetch("/auth/session", withCookie(token, at(third))), 1],
  ];
  for (const [what, table, send, expected] of cases) {
    const r = await whileBroken(wdb, tableAway(table), send);
    assert.deepEqual(r.headers.getSetCookie(), [], `${what}: the cookie is kept`);
    await expectError(r, 503, "session_store_unavailable", `${what}: the primary failing too is still a 503`);
    assert.equal(await readsRetried(w, r, what), expected, `${what}: reads made again at the primary`);
  }
  // D1 whole again, the remembered bookmark's request is served (from the primary) and hands back a bookmark to keep.
  const healed = await w.fetch("/auth/session", withCookie(token, at(bookmark)));
  assert.equal(healed.status, 200, "served at the primary");
  assert.match(healed.headers.get("x-d1-bookmark") ?? "", /^[0-9a-f-]+$/, "a bookmark back");
  await healed.arrayBuffer();
});

test("a bookmark a read failed at is remembered SESSION_FAILED_BOOKMARK_SECS after that read, then tried again: an outage's bookmarks do not send their clients' reads to the primary for the isolate's life", async (t) => {
  // The isolate remembered every bookmark a read failed at until 256 later ones pushed it out or the isolate ended,
  // an outage's included: long after D1 served again, the clients still sending one read at the primary. Whether a
  // request started at the bookmark is seen as in the test above: with the session table away, a read at the
  // bookmark is made once more at the primary (logged), one started at the primary is not. (No check is served
  // between them: its cache fill would answer the next.)
  for (const [secs, remembered] of [[600, true], [0, false]]) {
    const { w, wdb, wkv } = await ownWorker(t, { SESSION_FAILED_BOOKMARK_SECS: secs });
    const { token, bookmark } = await signedInUncached(w, wkv);
    const check = () => w.fetch("/auth/session", withCookie(token, { headers: { "x-d1-bookmark": bookmark } }));
    const retriedInOutage = async (what) => {
      const r = await whileBroken(wdb, tableAway("sessions"), check);
      await expectError(r, 503, "session_store_unavailable", what);
      return readsRetried(w, r, what);
    };
    const what = `SESSION_FAILED_BOOKMARK_SECS ${secs}`;
    assert.equal(await retriedInOutage(`${what}: the outage's first check`), 1, `${what}: read at the bookmark first`);
    if (remembered) {
      await age(w, "failed-bookmarks", secs * 500);
      assert.equal(await retriedInOutage(`${what}: half its time later`), 0, `${what}: half its time later, still started at the primary`);
      await age(w, "failed-bookmarks", secs * 500);
    }
    assert.equal(await retriedInOutage(`${what}: its time over`), 1, `${what}: its time over, read at the bookmark first again`);
  }
});

test("a logout (or login) whose request carries a second value of the cookie (one planted) still ends the session it names", async () => {
  // A browser sends two values of the name when one was planted beside the user's (a sibling subdomain under an
  // unprefixed name, a nameless cookie in older browsers). Such a cookie authenticates nothing, but a logout is the
  // user asking to end their session: it answered 204 and cleared the cookie, and the session lived on in D1 — for
  // whoever had copied its token.
  const { token } = await loggedIn(BOB);
  const { token: other } = await loggedIn(ALICE);
  for (const planted of ["x", other]) {
    const { token: mine } = await loggedIn(BOB);
    const r = await worker.fetch("/auth/logout", { method: "POST", headers: { cookie: `__Host-edgekit_session=${planted}; __Host-edgekit_session=${mine}` } });
    assert.equal(r.status, 204, `planted ${planted === "x" ? "garbage" : "a token"}`);
    assert.match(r.headers.get("set-cookie") ?? "", /^__Host-edgekit_session=; Max-Age=0;/);
    await expectError(await get("/auth/sessions", mine), 401, "session_invalid", "the user's session ended");
    await expectError(await get("/auth/session", mine), 401, "session_invalid", "also on cached checks");
  }
  assert.equal((await get("/auth/sessions", token)).status, 200, "the user's other session lives");
  // A login sent with such a cookie ends the session it replaces just the same.
  const { token: replaced } = await loggedIn(BOB);
  const relogin = await worker.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", cookie: `__Host-edgekit_session=x; __Host-edgekit_session=${replaced}` } });
  assert.equal(relogin.status, 200);
  await relogin.arrayBuffer();
  await expectError(await get("/auth/sessions", replaced), 401, "session_invalid", "a login ended the session it replaced");
});

test("a logout or login ends the session of the user's cookie value however many well-formed values were planted before it", async () => {
  // A planter sets its values under longer paths, which the browser sends first: made-up tokens are well-formed too,
  // so a logout or login that read only the first few values ended none of the user's.
  const planted = Array.from({ length: 8 }, () => `__Host-edgekit_session=${randomBytes(32).toString("base64url")}`).join("; ");
  const { token: mine } = await loggedIn(BOB);
  const r = await worker.fetch("/auth/logout", { method: "POST", headers: { cookie: `${planted}; __Host-edgekit_session=${mine}` } });
  assert.equal(r.status, 204);
  await r.arrayBuffer();
  await expectError(await get("/auth/sessions", mine), 401, "session_invalid", "the logout ended the user's session");
  await expectError(await get("/auth/session", mine), 401, "session_invalid", "also on cached checks");
  const { token: replaced } = await loggedIn(BOB);
  const relogin = await worker.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", cookie: `${planted}; __Host-edgekit_session=${replaced}` } });
  assert.equal(relogin.status, 200);
  await relogin.arrayBuffer();
  await expectError(await get("/auth/sessions", replaced), 401, "session_invalid", "the login ended the session it replaced");
  await expectError(await get("/auth/session", replaced), 401, "session_invalid", "also on cached checks");
});

test("DELETE /auth/sessions ends every session of the caller's user, on D1 and cached checks, and no other user's", async () => {
  const signIn = async (user) => cookieOf(await worker.fetch("/auth/login", json({ email: user.email, password: user.password })));
  const [phone, laptop, bobs] = [await signIn(ALICE), await signIn(ALICE), await signIn(BOB)];
  for (const token of [phone, laptop]) assert.equal((await worker.fetch("/auth/session", withCookie(token))).status, 200, "cached first");
  await expectError(await worker.fetch("/auth/sessions", { method: "DELETE" }), 401, "session_required", "no session");
  await expectError(
    await worker.fetch("/auth/sessions", withCookie(phone, { method: "DELETE", headers: { origin: "https://evil.example" } })),
    403,
    "cross_origin_refused",
    "another site's page",
  );
  const ended = await worker.fetch("/auth/sessions", withCookie(phone, { method: "DELETE" }));
  assert.equal(ended.status, 204);
  assert.match(ended.headers.get("set-cookie") ?? "", /__Host-edgekit_session=;.*Max-Age=0/i, "the cookie cleared");
  for (const token of [phone, laptop]) {
    await expectError(await worker.fetch("/auth/session", withCookie(token)), 401, "session_invalid", "cached check");
    await expectError(await worker.fetch("/auth/sessions", withCookie(token)), 401, "session_invalid", "strict check");
  }
  assert.equal((await worker.fetch("/auth/session", withCookie(bobs))).status, 200, "another user's session lives");
  assert.ok(worker.jsonLogs().some((l) => l.msg === "sessions_ended" && l.revoked_sessions >= 2), "logged");
});

test("GET /auth/sessions lists the caller's own session however many newer ones the account has", async () => {
  const dana = { id: "u-dana-many", email: "dana-many@example.com", password: "dana-many-sessions" };
  await insertUser(dana, await hashPassword(dana.password, 10_000));
  const { token } = await loggedIn(dana);
  const mine = await db.prepare("SELECT created_at, expires_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  // Sessions signed in later elsewhere (another browser each): more than the list shows at most. One batch, not 60
  // calls through Miniflare's synchronous proxy (one of which once answered out of turn and failed every later call).
  const insert = db.prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, family) VALUES (?1, ?2, ?3, ?4, ?3, ?1)");
  await db.batch(
    Array.from({ length: 60 }, (_, n) =>
      insert.bind(sessionId(`other-${n + 1}-${randomBytes(8).toString("hex")}`), dana.id, mine.created_at + n + 1, mine.expires_at + n + 1),
    ),
  );
  const listed = await get("/auth/sessions", token);
  assert.equal(listed.status, 200);
  const { sessions } = await listed.json();
  assert.ok(sessions.length <= 50, "bounded");
  assert.equal(sessions.filter((s) => s.current).length, 1, "the caller's own session is listed, marked current");
  assert.equal(sessions[0].current, true, "first");
  const rest = sessions.slice(1).map((s) => s.created_at);
  assert.deepEqual(rest, [...rest].sort((a, b) => b - a), "the others newest first");
});

test("GET /auth/sessions says when its list was cut at 50: a user reviewing where they are signed in is not shown a partial list as the whole", async () => {
  const erin = { id: "u-erin-many", email: "erin-many@example.com", password: "erin-many-sessions" };
  await insertUser(erin, await hashPassword(erin.password, 10_000));
  const { token } = await loggedIn(erin);
  const whole = await get("/auth/sessions", token);
  assert.equal(whole.status, 200);
  const one = await whole.json();
  assert.equal(one.sessions.length, 1);
  assert.equal(one.truncated, false, "a list holding every active session says so");
  const mine = await db.prepare("SELECT created_at, expires_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  // Exactly 50 active sessions: still whole. Then one more (and an expired and a revoked one, which are not active): cut.
  const session = (i, expiresAt, revokedAt = null) =>
    db
      .prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, revoked_at, family) VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?1)")
      .bind(sessionId(`erin-${i}-${randomBytes(8).toString("hex")}`), erin.id, mine.created_at + i, expiresAt, revokedAt);
  const add = (...row) => session(...row).run();
  // One batch, not 49 calls through Miniflare's synchronous proxy.
  await db.batch(Array.from({ length: 49 }, (_, n) => session(n + 1, mine.expires_at + n + 1)));
  await add(100, Date.now() - 1_000);
  await add(101, mine.expires_at, Date.now());
  const fifty = await (await get("/auth/sessions", token)).json();
  assert.equal(fifty.sessions.length, 50);
  assert.equal(fifty.truncated, false, "50 active sessions, all listed");
  await add(50, mine.expires_at + 50);
  const cut = await (await get("/auth/sessions", token)).json();
  assert.equal(cut.sessions.length, 50, "bounded");
  assert.equal(cut.truncated, true, "51 active sessions: the list says it is not all of them");
  assert.equal(cut.sessions[0].current, true, "the caller's own still first");
});

test("refresh, logout and the session lists are limited per address (SESSION_IP_POLICY): made-up cookies cannot loop D1 primary work", async (t) => {
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 3, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  const forged = "A".repeat(43);
  const statuses = [];
  for (const [i, [method, path]] of [["POST", "/auth/logout"], ["POST", "/auth/refresh"], ["GET", "/auth/sessions"], ["DELETE", "/auth/sessions"]].entries()) {
    const r = await w.fetch(path, withCookie(forged, { method }));
    statuses.push(r.status);
    // Counted, whatever the answer: the forged cookie's 401 says where the address stands too.
    assert.equal(r.headers.get("ratelimit-policy"), '"session-ip";q=3;w=60', path);
    assert.match(r.headers.get("ratelimit") ?? "", new RegExp(`^"session-ip";r=${Math.max(2 - i, 0)};t=\\d+$`), path);
    if (r.status === 429) {
      assert.equal((await r.json()).error.code, "rate_limited", path);
    } else await r.arrayBuffer();
  }
  assert.deepEqual(statuses, [204, 401, 401, 429], "three per minute from this address, then 429 before any work");
  // Cached checks spend a budget of their own, on misses alone (the next test): these calls did not spend it.
  const cached = await w.fetch("/auth/session", withCookie(forged));
  assert.equal(cached.status, 401, "a cached check is read, and counted as a miss");
  await cached.arrayBuffer();
});

test("a refresh, logout or session list that passes SESSION_IP_POLICY says where the address stands: RateLimit-Policy and RateLimit on its answer", async (t) => {
  // Every other limited answer (a login, a room ticket, a gateway route, the check route) carries the fields; these
  // four routes counted the request and dropped them, so a client learnt its standing only from the 429.
  const { w } = await ownWorker(t, { RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 5, window: 60, key: "ip" } } });
  const signIn = await w.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password }));
  assert.equal(signIn.status, 200);
  const first = cookieOf(signIn);
  await signIn.arrayBuffer();
  const answers = [];
  const send = async (method, path, token) => {
    const r = await w.fetch(path, withCookie(token, { method }));
    answers.push([`${method} ${path}`, r]);
    return r;
  };
  assert.equal((await send("GET", "/auth/sessions", first)).status, 200);
  const refreshed = await send("POST", "/auth/refresh", first);
  assert.equal(refreshed.status, 200);
  const second = cookieOf(refreshed);
  assert.equal((await send("GET", "/auth/sessions", second)).status, 200);
  assert.equal((await send("DELETE", "/auth/sessions", second)).status, 204);
  assert.equal((await send("POST", "/auth/logout", second)).status, 204);
  for (const [[what, r], remaining] of answers.map((a, i) => [a, 4 - i])) {
    assert.equal(r.headers.get("ratelimit-policy"), '"session-ip";q=5;w=60', what);
    assert.match(r.headers.get("ratelimit") ?? "", new RegExp(`^"session-ip";r=${remaining};t=\\d+$`), what);
    await r.arrayBuffer();
  }
});

test("cached checks that read D1 and find no session count per address (SESSION_IP_POLICY): made-up cookies cannot loop D1 reads through /auth/session, room tickets or gateway routes, and signed-in users are not counted", async (t) => {
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 3, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB") });
  const from = (ip, token, init = {}) => withCookie(token, { ...init, headers: { ...init.headers, "cf-connecting-ip": ip } });
  const signedIn = await w.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", "cf-connecting-ip": "198.51.100.7" } });
  assert.equal(signedIn.status, 200);
  const token = cookieOf(signedIn);
  await signedIn.arrayBuffer();
  for (let i = 0; i < 6; i++) {
    const r = await w.fetch("/auth/session", from("198.51.100.7", token));
    assert.equal(r.status, 200, `the user's own check ${i}: never counted`);
    await r.arrayBuffer();
  }
  // Each made-up cookie costs a KV read and two D1 reads (the session, the retired tokens); the fourth miss
  // finds the address over its limit, and from then on this address's checks that would read D1 are refused.
  // A miss is counted after its answer: the fourth's refusal reaches this isolate's memory when it lands.
  const statuses = [];
  for (let i = 0; i < 6; i++) {
    if (i === 4) await untilOverBudget(w, "session-ip");
    const r = await w.fetch("/auth/session", from("198.51.100.7", randomBytes(32).toString("base64url")));
    statuses.push(r.status);
    const body = await r.json();
    if (r.status === 429) {
      assert.equal(body.error.code, "rate_limited");
      assert.match(r.headers.get("ratelimit-policy") ?? "", /^"session-ip";q=3;w=60$/);
      assert.match(r.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/);
    }
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429], "three misses a minute from this address, then 429 before any read");
  const ticket = await w.fetch("/rooms/lobby/ticket", from("198.51.100.7", randomBytes(32).toString("base64url"), { method: "POST" }));
  assert.equal(ticket.status, 429, "a room ticket with a made-up cookie");
  await ticket.arrayBuffer();
  const own = await w.fetch("/auth/session", from("198.51.100.7", token));
  assert.equal(own.status, 200, "the user's cached session still passes at that address");
  await own.arrayBuffer();
  const elsewhere = await w.fetch("/auth/session", from("203.0.113.50", randomBytes(32).toString("base64url")));
  assert.equal(elsewhere.status, 401, "another address has its own budget");
  await elsewhere.arrayBuffer();
});

test("a cached check whose session read D1 fails is not counted against the address's budget (SESSION_IP_POLICY), one whose lookup among retired ids fails after finding no session is", async (t) => {
  // One policy: a check counts once its cookie is shown to name no live session. In a D1 outage every cookie's
  // read fails, a signed-in user's whose entry lapsed as a made-up one's: counted, an address's honest checks spent
  // its budget and were answered 429 before any read after D1 was back. A made-up cookie D1 does answer is counted,
  // also when the lookup among retired ids behind it fails (503): that read already found no session.
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 2, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  const wdb = await w.mf.getD1Database("DB");
  const wkv = await w.mf.getKVNamespace("CONFIG_KV");
  await seed({ CONFIG_KV: wkv, DB: wdb });
  const from = (ip, token) => withCookie(token, { headers: { "cf-connecting-ip": ip } });
  const away = (table, send) => whileBroken(wdb, tableAway(table), send);
  const signedIn = await w.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", "cf-connecting-ip": "198.51.100.9" } });
  assert.equal(signedIn.status, 200);
  const token = cookieOf(signedIn);
  await signedIn.arrayBuffer();
  // D1 down: the user's checks (no cache entry) and made-up cookies alike fail their session read, five in all —
  // past the limit of 2 had any been counted.
  for (const [i, cookie] of [token, token, token, randomBytes(32).toString("base64url"), randomBytes(32).toString("base64url")].entries()) {
    await wkv.delete(`session:${sessionId(token)}`);
    await expectError(await away("sessions", () => w.fetch("/auth/session", from("198.51.100.9", cookie))), 503, "session_store_unavailable", `check ${i} with D1 down`);
  }
  // D1 back: two made-up cookies are the address's first two counts, the third its first over the limit — so the
  // one count over the limit is the third's, and only then is the address refused before reading.
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    if (i === 3) await untilOverBudget(w, "session-ip");
    const r = await w.fetch("/auth/session", from("198.51.100.9", randomBytes(32).toString("base64url")));
    statuses.push(r.status);
    await r.arrayBuffer();
  }
  assert.deepEqual(statuses, [401, 401, 401, 429], "the failed reads were not counted");
  const over = w.jsonLogs().filter((l) => l.msg === "rate limit exceeded by a request counted after its response");
  assert.equal(over.length, 1, "one count over the limit: the third made-up cookie's");
  // A made-up cookie whose session read finds nothing and whose lookup among retired ids fails: 503, and counted.
  const other = [];
  for (let i = 0; i < 4; i++) {
    if (i === 3) await until(() => w.jsonLogs().filter((l) => l.msg === "rate limit exceeded by a request counted after its response").length === 2, { what: "the second address over its limit" });
    const r = await away("retired_session_ids", () => w.fetch("/auth/session", from("203.0.113.9", randomBytes(32).toString("base64url"))));
    other.push(r.status);
    await r.arrayBuffer();
  }
  assert.deepEqual(other, [503, 503, 503, 429], "the refusals whose retired-id lookup failed were counted");
});

test("an address's refreshes leave its users' cached checks alone (SESSION_IP_POLICY): a busy NAT's honest refreshes spent the budget that refused, before D1, every user there whose cache entry had lapsed", async (t) => {
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 3, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  const kv = await w.mf.getKVNamespace("CONFIG_KV");
  await seed({ CONFIG_KV: kv, DB: await w.mf.getD1Database("DB") });
  const at = { "cf-connecting-ip": "198.51.100.9" };
  const signedIn = await w.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", ...at } });
  assert.equal(signedIn.status, 200);
  let token = cookieOf(signedIn);
  await signedIn.arrayBuffer();
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    const r = await w.fetch("/auth/refresh", withCookie(token, { method: "POST", headers: at }));
    statuses.push(r.status);
    token = cookieOf(r) ?? token;
    await r.arrayBuffer();
  }
  assert.deepEqual(statuses, [200, 200, 200, 429], "the address's refreshes are limited as before");
  // The user's cache entry lapses (SESSION_CACHE_SECS; KV drops it): the next cached check reads D1.
  await kv.delete(`session:${sessionId(token)}`);
  const own = await w.fetch("/auth/session", withCookie(token, { headers: at }));
  assert.equal(own.status, 200, "the signed-in user's check reads D1 and passes: refreshes found no unknown cookie");
  await own.arrayBuffer();
  const ticket = await w.fetch("/rooms/lobby/ticket", withCookie(token, { method: "POST", headers: at }));
  assert.equal(ticket.status, 201, "so does their room ticket");
  await ticket.arrayBuffer();
  const madeUp = await w.fetch("/auth/session", withCookie("A".repeat(43), { headers: at }));
  assert.equal(madeUp.status, 401, "a made-up cookie is read and found unknown: the first miss from this address");
  await madeUp.arrayBuffer();
});

test("requests that do no D1 work leave SESSION_IP_POLICY alone: another site's page cannot spend the address's budget and make the user's logout 429", async (t) => {
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { ...GENEROUS, "session-ip": { limit: 3, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB") });
  const signedIn = await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(signedIn.status, 200);
  const token = cookieOf(signedIn);
  await signedIn.arrayBuffer();
  // A page elsewhere firing no-cors requests: they carry no SameSite=Lax cookie (or a garbled one it planted).
  const elsewhere = { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", origin: "https://elsewhere.example", "content-type": "text/plain" };
  for (let i = 0; i < 3; i++) {
    for (const [method, path, status] of [["POST", "/auth/refresh", 401], ["POST", "/auth/logout", 403], ["GET", "/auth/sessions", 401], ["DELETE", "/auth/sessions", 401]]) {
      const r = await w.fetch(path, { method, headers: elsewhere });
      assert.equal(r.status, status, `${method} ${path} from another site, without the cookie`);
      await r.arrayBuffer();
    }
    const garbled = await w.fetch("/auth/refresh", { method: "POST", headers: { ...elsewhere, cookie: "__Host-edgekit_session=planted" } });
    assert.equal(garbled.status, 401, "a garbled cookie reads nothing either");
    await garbled.arrayBuffer();
    // A sibling subdomain's page, whose requests do carry the cookie: refused as cross-origin before counting.
    const sibling = await w.fetch("/auth/refresh", withCookie(token, { method: "POST", headers: { "sec-fetch-site": "same-site", origin: "https://evil.example.com" } }));
    assert.equal(sibling.status, 403, "a state-changing request from another origin");
    await sibling.arrayBuffer();
  }
  const out = await w.fetch("/auth/logout", withCookie(token, { method: "POST", headers: { "sec-fetch-site": "same-origin" } }));
  assert.equal(out.status, 204, "the user's own logout still goes through");
  await out.arrayBuffer();
  const after = await w.fetch("/auth/sessions", withCookie(token));
  assert.equal(after.status, 401, "and ended the session");
  await after.arrayBuffer();
});

test("a password stored at a lower PBKDF2 cost is re-hashed at PASSWORD_PBKDF2_ITERATIONS by the login that proves it", async () => {
  const carol = { id: "u-carol", email: "carol@example.com", password: "carol-old-cost-password" };
  const old = await hashPassword(carol.password, 10_000);
  await insertUser(carol, old);
  const row = () => db.prepare("SELECT password_iterations AS n, password_salt AS salt, password_hash AS hash FROM users WHERE id = ?1").bind(carol.id).first();
  assert.equal((await login(carol.email, "not-carols")).status, 401, "a wrong password");
  const first = await login(carol.email, carol.password);
  assert.equal(first.status, 200, "the old hash still admits its password");
  await first.arrayBuffer();
  const device = first.headers.getSetCookie().find((c) => c.startsWith("__Secure-edgekit_session_device="))?.split(";")[0];
  assert.ok(device, "a device entry from the login that re-hashes");
  const upgraded = await until(async () => ((await row()).n === 100_000 ? row() : null), { what: "the re-hash at 100,000 iterations" });
  assert.equal(upgraded.salt, old.salt, "the salt kept (device entries are bound to it)");
  assert.notEqual(upgraded.hash, old.hash);
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "password_rehashed" && l.user_id === carol.id), { what: "the re-hash log line" });
  assert.deepEqual([line?.from_iterations, line?.to_iterations], [10_000, 100_000], "logged");
  assert.equal((await login(carol.email, carol.password)).status, 200, "the new hash admits the same password");
  // The entry the re-hashing login set, before the re-hash, still marks Carol's browser as hers: a re-hash keeps
  // the salt entries are bound to (it is no password change).
  const trusted = await worker.fetch("/auth/login", { ...json({ email: carol.email, password: carol.password }), headers: { "content-type": "application/json", cookie: device } });
  assert.equal(trusted.status, 200);
  assert.match(trusted.headers.get("ratelimit-policy") ?? "", /"login-device"/, "limited per device after the re-hash");
  await trusted.arrayBuffer();
  assert.equal((await login(carol.email, "not-carols")).status, 401, "and no other");
});

test("emails are compared in NFC and passwords in NFKC: the same account and secret however the keyboard composed them", async () => {
  // Stored from the composed spellings (é as U+00E9); typed decomposed (e + U+0301, as macOS and iOS may send it)
  // and with a fullwidth letter (an East Asian input method's ｆ).
  const emile = { id: "u-emile", email: "\u00e9mile@example.com", password: "cr\u00e8me br\u00fbl\u00e9e for two" };
  await insertUser(emile, await hashPassword(emile.password, 10_000));
  const typed = { email: emile.email.normalize("NFD"), password: "cre\u0300me bru\u0302le\u0301e \uff46or two" };
  assert.notEqual(typed.email, emile.email);
  const decomposed = await login(typed.email, typed.password);
  assert.equal(decomposed.status, 200, "decomposed email and password, fullwidth letter");
  await decomposed.arrayBuffer();
  assert.equal((await login(emile.email, emile.password)).status, 200, "as stored");
  await expectError(await login(typed.email, "cre\u0300me bru\u0302le\u0301e for three"), 401, "invalid_credentials", "another password");
});

test("a password with NUL characters is refused: PBKDF2's HMAC pads a short key with zeros, so trailing NULs named the same secret", async () => {
  // HMAC (RFC 2104) zero-fills a key shorter than the hash's block: "pw" and "pw\0\0" derive the same bytes, so the
  // account took both as its password.
  for (const password of [`${ALICE.password}\u0000`, `${ALICE.password}\u0000\u0000\u0000`, `\u0000${ALICE.password}`]) {
    await expectError(await login(ALICE.email, password), 400, "invalid_password", JSON.stringify(password));
  }
  await expectError(await login("nobody-at-all@example.com", "x\u0000"), 400, "invalid_password", "an unknown email alike");
  await loggedIn(ALICE); // the password itself still signs in
});

test("a hash made from a password as typed, before logins normalised, still admits it and is re-hashed in NFKC", async () => {
  const noe = { id: "u-noe", email: "noe@example.com", password: "Noe\u0308l in de\u0301cembre" };
  const old = await hashPassword(noe.password, 100_000, { asSent: true });
  await insertUser(noe, old);
  const row = () => db.prepare("SELECT password_iterations AS n, password_salt AS salt, password_hash AS hash FROM users WHERE id = ?1").bind(noe.id).first();
  const first = await login(noe.email, noe.password);
  assert.equal(first.status, 200, "the spelling the old hash was made from");
  await first.arrayBuffer();
  const rehashed = await until(async () => {
    const r = await row();
    return r.hash !== old.hash ? r : null;
  }, { what: "the re-hash in NFKC" });
  assert.deepEqual([rehashed.n, rehashed.salt], [100_000, old.salt], "same cost, same salt");
  const line = worker.jsonLogs().find((l) => l.msg === "password_rehashed" && l.user_id === noe.id);
  assert.equal(line?.to_normal_form, true, "logged as a re-hash in normal form");
  const composed = await login(noe.email, noe.password.normalize("NFC"));
  assert.equal(composed.status, 200, "the composed spelling, which the old hash refused");
  await composed.arrayBuffer();
  assert.equal((await login(noe.email, noe.password)).status, 200, "and the decomposed one still");
  await expectError(await login(noe.email, "Noel in decembre"), 401, "invalid_credentials", "without the accents: another password");
});

test("a password stored above the runtime's PBKDF2 cap answers like a wrong password (401), not a 500 that would reveal the account", async () => {
  const dora = { id: "u-dora", email: "dora@example.com", password: "dora-imported-at-600k" };
  const imported = await hashPassword(dora.password, 600_000);
  await insertUser(dora, imported);
  const refused = await login(dora.email, dora.password);
  const requestId = refused.headers.get("x-request-id");
  await expectError(refused, 401, "invalid_credentials", "the right password");
  await expectError(await login("nobody-at-all@example.com", dora.password), 401, "invalid_credentials", "an unknown email");
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "password_hash_unreadable" && l.user_id === "u-dora"), {
    what: "the unreadable hash logged for the operator",
  });
  assert.ok(requestId);
  assert.equal(line.level, "error");
  assert.equal(line.request_id, requestId, "the error line names the request it came from");
});

test("a login deletes sessions past their expiry; rotations and logins find their rows by index", async () => {
  const { token: first } = await loggedIn(BOB);
  const past = Date.now() - 60_000;
  await db.prepare("UPDATE sessions SET expires_at = ?1 WHERE id = ?2").bind(past, sessionId(first)).run();
  await loggedIn(BOB);
  const left = await db.prepare("SELECT COUNT(*) AS n FROM sessions WHERE id = ?1").bind(sessionId(first)).first();
  assert.equal(left.n, 0, "the expired session's row (IP, user agent) is gone");
  const plans = {
    "retired ids by family": "DELETE FROM retired_session_ids WHERE family = 'f' AND id NOT IN (SELECT id FROM retired_session_ids WHERE family = 'f' ORDER BY retired_at DESC LIMIT 16)",
    "expired sessions": "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < 1 LIMIT 100)",
  };
  for (const [what, sql] of Object.entries(plans)) {
    const { results } = await db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all();
    const plan = results.map((r) => r.detail).join(" | ");
    assert.doesNotMatch(plan, /SCAN (retired_session_ids|sessions)\b(?! USING)/, `${what}: ${plan}`);
  }
});

test("logout with a token a refresh has just retired (a tab that lost the race) ends the session it became", async () => {
  const { token } = await loggedIn();
  const rotated = cookieOf(await post("/auth/refresh", token));
  assert.ok(rotated && rotated !== token, "rotated");
  assert.equal((await post("/auth/logout", token)).status, 204);
  await expectError(await get("/auth/session", rotated), 401, "session_invalid", "the rotated token, cached check");
  await expectError(await get("/auth/sessions", rotated), 401, "session_invalid", "the rotated token, strict check");
});

test("bad login input: each gets its status and code, and nothing reveals whether an email exists", async () => {
  const users = () => db.prepare("SELECT COUNT(*) AS n FROM users").first().then((r) => r.n);
  const before = await users();
  const big = JSON.stringify({ email: ALICE.email, password: "x".repeat(70_000) });
  const cases = [
    { what: "wrong password", init: json({ email: ALICE.email, password: "not-it" }), status: 401, code: "invalid_credentials" },
    { what: "unknown email", init: json({ email: "nobody@example.com", password: "whatever" }), status: 401, code: "invalid_credentials" },
    { what: "upper-case email, wrong password", init: json({ email: "ALICE@EXAMPLE.COM", password: "x" }), status: 401, code: "invalid_credentials" },
    { what: "SQL-looking email", init: json({ email: "' OR 1=1 --", password: "x" }), status: 400, code: "invalid_email" },
    { what: "SQL in a well-formed email", init: json({ email: "x'or'1'='1--@example.com", password: "x" }), status: 401, code: "invalid_credentials" },
    { what: "SQL-looking password", init: json({ email: ALICE.email, password: "' OR '1'='1" }), status: 401, code: "invalid_credentials" },
    { what: "no at sign", init: json({ email: "alice", password: "x" }), status: 400, code: "invalid_email" },
    { what: "empty password", init: json({ email: ALICE.email, password: "" }), status: 400, code: "invalid_password" },
    // The OpenAPI document's maxLength (1024) counts characters: 1,024 of them in 2,048 bytes are a password to check.
    { what: "1,024-character password in 2,048 bytes", init: json({ email: ALICE.email, password: "é".repeat(1024) }), status: 401, code: "invalid_credentials" },
    { what: "1,025-character password", init: json({ email: ALICE.email, password: "p".repeat(1025) }), status: 400, code: "invalid_password" },
    { what: "missing password", init: json({ email: ALICE.email }), status: 400, code: "invalid_json" },
    { what: "email not a string", init: json({ email: 42, password: "x" }), status: 400, code: "invalid_json" },
    { what: "malformed JSON", init: { method: "POST", headers: { "content-type": "application/json" }, body: "{\"email\":" }, status: 400, code: "invalid_json" },
    { what: "JSON array", init: json([ALICE.email, ALICE.password]), status: 400, code: "invalid_json" },
    // RFC 8259 §8.1 lets a parser ignore a byte order mark, as Express, ASP.NET and Jackson do (and the WAF's reading).
    { what: "a byte order mark before the JSON", init: { method: "POST", headers: { "content-type": "application/json" }, body: `\uFEFF${JSON.stringify({ email: ALICE.email, password: "x" })}` }, status: 401, code: "invalid_credentials" },
    // A key given twice: serde would keep the last and sign in as it, while a WAF rule or a rate limit keyed on the
    // body's email in front of the Worker may read the first (RFC 8259 §4 leaves it open): refused instead.
    { what: "email named twice", init: { method: "POST", headers: { "content-type": "application/json" }, body: `{"email":"nobody@example.com","password":${JSON.stringify(ALICE.password)},"email":${JSON.stringify(ALICE.email)}}` }, status: 400, code: "invalid_json" },
    { what: "form content type", init: { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "email=a&password=b" }, status: 415, code: "unsupported_media_type" },
    { what: "no content type", init: { method: "POST", body: "{}" }, status: 415, code: "unsupported_media_type" },
    { what: "over-size body", init: { method: "POST", headers: { "content-type": "application/json" }, body: big }, status: 413, code: "payload_too_large" },
  ];
  const messages = {};
  for (const { what, init, status, code } of cases) {
    const response = await worker.fetch("/auth/login", init).catch((error) => {
      throw new Error(`${what}: the request failed (${error.cause?.code ?? error.message})`);
    });
    const clone = response.clone();
    await expectError(response, status, code, what);
    assert.equal(response.headers.get("set-cookie"), null, `${what}: no cookie`);
    if (code === "invalid_credentials") messages[what] = await clone.text();
  }
  assert.equal(new Set(Object.values(messages)).size, 1, "wrong password and unknown email answer the same body");
  assert.equal(await users(), before, "the users table is intact");
  await expectError(await worker.fetch("/auth/login"), 405, "method_not_allowed", "GET /auth/login");
});

test("a chunked login body past MAX_BODY_BYTES is refused with 413 at once, without waiting for its end", { timeout: 20_000 }, async () => {
  // 80 KB (the limit is 64 KiB) without Content-Length, then the client stalls with the request still open.
  const answer = await new Promise((resolveAnswer, reject) => {
    const req = httpRequest(new URL("/auth/login", worker.url), { method: "POST", agent: false, headers: { "content-type": "application/json" } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        req.destroy();
        resolveAnswer({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) });
      });
    });
    req.on("error", reject);
    req.write(`{"email":"${ALICE.email}","password":"`);
    for (let i = 0; i < 5; i++) req.write("x".repeat(16 * 1024));
  });
  assert.equal(answer.status, 413);
  assert.equal(answer.body.error.code, "payload_too_large");
});

test("garbled, unknown, expired and revoked cookies are refused on both the cached and the strict route", async () => {
  const expired = randomBytes(32).toString("base64url");
  const revoked = randomBytes(32).toString("base64url");
  const now = Date.now();
  await db.batch([
    db.prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?4)")
      .bind(sessionId(expired), BOB.id, now - 10_000, now - 1),
    db.prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?3, ?3)")
      .bind(sessionId(revoked), BOB.id, now, now + 3_600_000),
  ]);
  const cases = [
    { what: "no cookie", token: undefined, code: "session_required" },
    { what: "empty cookie", token: "", code: "session_invalid" },
    { what: "garbled cookie", token: "not-a-token", code: "session_invalid" },
    { what: "SQL in the cookie", token: "' OR 1=1 --", code: "session_invalid" },
    { what: "over-long cookie", token: "A".repeat(4000), code: "session_invalid" },
    { what: "unknown token", token: randomBytes(32).toString("base64url"), code: "session_invalid" },
    { what: "expired session", token: expired, code: "session_invalid" },
    { what: "revoked session", token: revoked, code: "session_invalid" },
  ];
  for (const { what, token, code } of cases) {
    for (const path of ["/auth/session", "/auth/sessions"]) {
      await expectError(await get(path, token), 401, code, `${what} on ${path}`);
    }
    await expectError(await post("/auth/refresh", token), 401, code, `${what} on refresh`);
  }
});

test("a cookie that names no live session is cleared by the answers that find so — pages, /auth/session, the strict routes, room tickets, gateway session routes — and a token another tab's refresh just retired is not", async (t) => {
  // Kept, such a cookie came with every request, and each paid the check's D1 reads and a count against the address's
  // budget of unknown credentials, until the cookie's Max-Age (the session's absolute limit) ran out.
  const w = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      RATE_LIMIT_POLICIES: GENEROUS,
      GATEWAY_ROUTES: [{ name: "session", path: "/gw/session", upstream: "http://127.0.0.1:9", auth: "session" }],
    },
  });
  t.after(() => w.stop());
  const wdb = await w.mf.getD1Database("DB");
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: wdb, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const signIn = await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(signIn.status, 200);
  const set = signIn.headers.getSetCookie().find((c) => c.startsWith("__Host-edgekit_session="));
  await signIn.arrayBuffer();
  // The clear must name the cookie as it was set (RFC 6265 §5.3 step 11: same name, domain and path), and keep its
  // prefix's rules (`__Host-`: Secure, Path=/, no Domain), or the browser ignores it.
  const attributes = (c) => c.split(";").slice(1).map((a) => a.trim()).filter((a) => !/^max-age=/i.test(a)).sort();
  const live = cookieOf({ headers: { get: () => set } });
  const expired = randomBytes(32).toString("base64url");
  const now = Date.now();
  await wdb.prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at) VALUES (?1, ?2, ?3, ?4, ?4)")
    .bind(sessionId(expired), BOB.id, now - 10_000, now - 1).run();
  const endedElsewhere = cookieOf(await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password })));
  const out = await w.fetch("/auth/logout", withCookie(endedElsewhere, { method: "POST" }));
  assert.equal(out.status, 204);
  await revokedAgo({ kv: await w.mf.getKVNamespace("CONFIG_KV"), db: wdb }, endedElsewhere, 60_000);
  const withTok = (tok, init = {}) => (tok === undefined ? init : withCookie(tok, init));
  const sessionClears = (r) => r.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session="));
  const requests = [
    ["a page", (tok, headers) => w.fetch("/", withTok(tok, { headers })), 200],
    ["GET /auth/session", (tok, headers) => w.fetch("/auth/session", withTok(tok, { headers })), 401],
    ["GET /auth/sessions", (tok, headers) => w.fetch("/auth/sessions", withTok(tok, { headers })), 401],
    ["POST /auth/refresh", (tok, headers) => w.fetch("/auth/refresh", withTok(tok, { method: "POST", headers })), 401],
    ["a room ticket", (tok, headers) => w.fetch("/rooms/lobby/ticket", withTok(tok, { method: "POST", headers })), 401],
    ["a gateway session route", (tok, headers) => w.fetch("/gw/session", withTok(tok, { headers })), 401],
  ];
  for (const [what, token] of [["a made-up token", randomBytes(32).toString("base64url")], ["an expired session", expired], ["a session logged out elsewhere", endedElsewhere]]) {
    for (const [route, send, status] of requests) {
      const r = await send(token);
      assert.equal(r.status, status, `${what} on ${route}`);
      const clears = sessionClears(r);
      assert.equal(clears.length, 1, `${what} on ${route}: the answer clears the cookie`);
      assert.match(clears[0], /^__Host-edgekit_session=; Max-Age=0;/, `${what} on ${route}`);
      assert.deepEqual(attributes(clears[0]), attributes(set), `${what} on ${route}: the attributes it was set with`);
      if (route === "a page") {
        assert.equal(r.headers.get("cache-control"), "private, no-store", "a page that clears is never stored for others");
        assert.ok(r.headers.getSetCookie().some((c) => c.startsWith("ek_vid=")), "beside the visitor cookie");
      }
      await r.arrayBuffer();
    }
  }
  // No clear where the cookie is not known dead: the user's live one, none at all, a garbled value (nothing read;
  // maybe a planted second value), and a token a refresh in another tab has just retired — the browser is taking
  // that refresh's cookie, which a clear arriving after it would remove.
  const refreshed = await w.fetch("/auth/refresh", withCookie(live, { method: "POST" }));
  assert.equal(refreshed.status, 200);
  const current = cookieOf(refreshed);
  await refreshed.arrayBuffer();
  for (const [what, token] of [["the live session", current], ["no cookie", undefined], ["a garbled cookie", "not-a-token"], ["a token just retired by a concurrent refresh", live]]) {
    for (const [route, send] of requests) {
      if (token === current && route === "POST /auth/refresh") continue;
      const r = await send(token);
      assert.deepEqual(sessionClears(r), [], `${what} on ${route}: no clear`);
      // Every route that needs the user says `session_rotated` with `Retry-After: 1`, rooms and gateway routes too: a
      // front end retries once with the cookie the winning refresh set (told `session_required`, it signed the user
      // out of a live session). A page renders for no one.
      if (token === live && route !== "a page") {
        assert.equal((await r.json()).error.code, "session_rotated", `${what} on ${route}`);
        assert.equal(r.headers.get("retry-after"), "1", `${what} on ${route}`);
      } else await r.arrayBuffer();
    }
  }
  // Nor where the D1 read started at the client's bookmark (x-d1-bookmark), as a cached check does: on Cloudflare it
  // may read a replica that has not seen a login made after that bookmark (in another tab), and a clear would sign
  // the user out for the replica's lag. A strict route reads the primary whatever the client sends, and clears.
  const bookmark = signIn.headers.get("x-d1-bookmark");
  assert.ok(bookmark, "the login hands back a bookmark");
  // The same for an expired session: a touch the replica has not seen may have moved its expiry on.
  for (const [what, token] of [["a made-up token", randomBytes(32).toString("base64url")], ["an expired session", expired]]) {
    for (const [route, send, status] of requests) {
      const r = await send(token, { "x-d1-bookmark": bookmark });
      assert.equal(r.status, status, `${what} with a bookmark on ${route}`);
      const strict = route === "GET /auth/sessions" || route === "POST /auth/refresh";
      assert.equal(sessionClears(r).length, strict ? 1 : 0, `${what} with a bookmark on ${route}: cleared only from the primary`);
      await r.arrayBuffer();
    }
  }
});

test("a token a refresh in another tab just retired, refused by its cache entry where the client's bookmark may read a replica behind the rotation, keeps the cookie", async () => {
  // The refresh leaves a revocation entry in the retired token's cache slot. A cached check that meets it looks for
  // the retired id (to answer session_rotated) in D1 from the client's x-d1-bookmark — on Cloudflare a replica that
  // may not have seen the rotation yet, and so holds no retired id. Read as a logged-out token, the answer cleared
  // the cookie: arriving after the refresh's answer, it removed the new cookie and signed the user out.
  const { token: retired, response: signedIn } = await loggedIn(BOB);
  const bookmark = signedIn.headers.get("x-d1-bookmark");
  assert.ok(bookmark, "the login hands back a bookmark");
  const refreshed = await post("/auth/refresh", retired);
  assert.equal(refreshed.status, 200);
  await refreshed.arrayBuffer();
  assert.ok(await kv.get(`session:${sessionId(retired)}`), "the refresh left a revocation entry for the retired token");
  // The replica behind the rotation, as far as this check reads it: no retired id for the token. (Miniflare has
  // no replicas; the primary is made to hold what such a replica holds.)
  await db.prepare("DELETE FROM retired_session_ids WHERE id = ?1").bind(sessionId(retired)).run();
  // Rotated a minute ago: past the window in which any revocation keeps the cookie (a request in flight then).
  await revokedAgo({ kv, db }, retired, 60_000);
  const clears = (r) => r.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session="));
  for (const [route, send, status] of [
    ["GET /auth/session", (headers) => worker.fetch("/auth/session", withCookie(retired, { headers })), 401],
    ["a page", (headers) => worker.fetch("/", withCookie(retired, { headers })), 200],
  ]) {
    const r = await send({ "x-d1-bookmark": bookmark });
    assert.equal(r.status, status, `${route} at the client's bookmark`);
    assert.deepEqual(clears(r), [], `${route} at the client's bookmark: the cookie is kept`);
    await r.arrayBuffer();
    // Read from the primary, a revoked token with no retired id is a logged-out one (or one whose retired id has
    // gone): dead either way, and cleared.
    const primary = await send({});
    assert.equal(primary.status, status, `${route} at the primary`);
    assert.equal(clears(primary).length, 1, `${route} at the primary: cleared`);
    await primary.arrayBuffer();
  }
});

test("a request sent with the cookie a login then replaces is refused without clearing it, so the login's cookie stays; a session ended longer ago is cleared", async () => {
  // The login ends the session whose cookie it replaces. A request the browser sent with that cookie just before (a
  // page's background call beside the login form) is checked after the login, and finds its session revoked: its
  // answer cleared the cookie, and arriving after the login's answer, it removed the new cookie — signed out at once.
  const { token: before } = await loggedIn(BOB);
  const relogin = await worker.fetch("/auth/login", withCookie(before, json({ email: BOB.email, password: BOB.password })));
  assert.equal(relogin.status, 200);
  const after = cookieOf(relogin);
  await relogin.arrayBuffer();
  assert.ok(after && after !== before, "the login set a new cookie");
  const clears = (r) => r.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session="));
  const routes = [
    ["GET /auth/session (cached check)", () => worker.fetch("/auth/session", withCookie(before)), 401],
    ["GET /auth/sessions (strict check)", () => worker.fetch("/auth/sessions", withCookie(before)), 401],
    ["a page", () => worker.fetch("/", withCookie(before)), 200],
  ];
  for (const [route, send, status] of routes) {
    const r = await send();
    assert.equal(r.status, status, `${route}, just replaced`);
    assert.deepEqual(clears(r), [], `${route}, just replaced: the cookie is kept`);
    await r.arrayBuffer();
  }
  // The same from D1 alone (a location without the revocation's cache entry).
  await kv.delete(`session:${sessionId(before)}`);
  const fromD1 = await routes[0][1]();
  assert.equal(fromD1.status, 401);
  assert.deepEqual(clears(fromD1), [], "cached check from D1, just replaced: the cookie is kept");
  await fromD1.arrayBuffer();
  assert.equal((await worker.fetch("/auth/session", withCookie(after))).status, 200, "the login's session lives");
  // A minute on, no request could still be in flight from before the login: such a cookie is dead and cleared.
  await db.prepare("UPDATE sessions SET revoked_at = revoked_at - 60000 WHERE id = ?1").bind(sessionId(before)).run();
  for (const [route, send, status] of routes) {
    const r = await send();
    assert.equal(r.status, status, `${route}, ended a minute ago`);
    assert.equal(clears(r).length, 1, `${route}, ended a minute ago: cleared`);
    await r.arrayBuffer();
  }
});

/** The checks a retired token `a` meets: each route's name, a request sending it, and the status it answers. */
const checksWith = (a) => [
  ["GET /auth/session (cached check)", () => worker.fetch("/auth/session", withCookie(a)), 401],
  ["GET /auth/sessions (strict check)", () => worker.fetch("/auth/sessions", withCookie(a)), 401],
  ["POST /auth/refresh", () => worker.fetch("/auth/refresh", withCookie(a, { method: "POST" })), 401],
  ["a page", () => worker.fetch("/", withCookie(a)), 200],
];

/** Signs `user` in and refreshes once: `a` the token the refresh retired, `b` the one it set. */
async function rotatedOnce(user) {
  const { token: a } = await loggedIn(user);
  const refreshed = await worker.fetch("/auth/refresh", withCookie(a, { method: "POST" }));
  assert.equal(refreshed.status, 200);
  const b = cookieOf(refreshed);
  await refreshed.arrayBuffer();
  return { a, b };
}

test("a request sent with a token a refresh just retired, checked after a login ended the session it became, is refused without clearing the login's cookie", async () => {
  // The browser held A; a refresh rotated it to B, then a login sent with B ended B. A request the browser sent with
  // A before the refresh's answer arrived is checked after the login: A is retired within SESSION_REUSE_GRACE_SECS
  // and its session ended moments ago (after the rotation). Its answer cleared the cookie, and arriving after the
  // login's answer, removed the login's cookie — the defect of a replaced cookie by way of a retired token.
  const { a, b } = await rotatedOnce(BOB);
  const relogin = await worker.fetch("/auth/login", withCookie(b, json({ email: BOB.email, password: BOB.password })));
  assert.equal(relogin.status, 200);
  const c = cookieOf(relogin);
  await relogin.arrayBuffer();
  assert.ok(c && c !== b && b !== a, "the refresh and the login each set a new cookie");
  const clears = (r) => r.headers.getSetCookie().filter((x) => x.startsWith("__Host-edgekit_session="));
  const routes = checksWith(a);
  for (const [route, send, status] of routes) {
    const r = await send();
    assert.equal(r.status, status, `${route}, retired just before the login`);
    assert.deepEqual(clears(r), [], `${route}, retired just before the login: the cookie is kept`);
    if (status === 401) assert.equal((await r.json()).error.code, "session_invalid", `${route}: no retry is offered`);
    else await r.arrayBuffer();
  }
  assert.equal((await worker.fetch("/auth/session", withCookie(c))).status, 200, "the login's session lives");
  // A minute on (A retired and B ended that long ago), A is a retired token back past the grace: refused as reused,
  // and cleared.
  await db.prepare("UPDATE retired_session_ids SET retired_at = retired_at - 60000 WHERE id = ?1").bind(sessionId(a)).run();
  await revokedAgo({ kv, db }, b, 60_000);
  const late = await worker.fetch("/auth/session", withCookie(a));
  assert.equal(late.status, 401);
  assert.equal(clears(late).length, 1, "a retired token back past the grace is cleared");
  await late.arrayBuffer();
});

test("a token retired past the grace, sent just before a login that ended the session it became, is refused without clearing the login's cookie", async () => {
  // The browser holds A, which a refresh rotated into B more than SESSION_REUSE_GRACE_SECS ago (its answer never
  // arrived, or a thief's refresh took it). The user signs in with A in the cookie, which ends B. A request the
  // browser sent with A just before, checked after the login, found A retired past the grace: reuse detection had
  // nothing left to revoke, yet its answer cleared the cookie — and arriving after the login's answer, removed the
  // login's cookie.
  const { a, b } = await rotatedOnce(BOB);
  // Retired a minute ago: its revocation entry in the cache has aged out too.
  await db.prepare("UPDATE retired_session_ids SET retired_at = retired_at - 60000 WHERE id = ?1").bind(sessionId(a)).run();
  await kv.delete(`session:${sessionId(a)}`);
  const relogin = await worker.fetch("/auth/login", withCookie(a, json({ email: BOB.email, password: BOB.password })));
  assert.equal(relogin.status, 200);
  const c = cookieOf(relogin);
  await relogin.arrayBuffer();
  await expectError(await get("/auth/sessions", b), 401, "session_invalid", "the login ended the session A became");
  const clears = (r) => r.headers.getSetCookie().filter((x) => x.startsWith("__Host-edgekit_session="));
  const routes = checksWith(a);
  for (const [route, send, status] of routes) {
    const r = await send();
    assert.equal(r.status, status, `${route}, its session ended just now`);
    assert.deepEqual(clears(r), [], `${route}, its session ended just now: the cookie is kept`);
    await r.arrayBuffer();
  }
  assert.equal((await worker.fetch("/auth/session", withCookie(c))).status, 200, "the login's session lives");
  // A minute after the login, A is dead: refused and cleared.
  await revokedAgo({ kv, db }, b, 60_000);
  const late = await worker.fetch("/auth/session", withCookie(a));
  assert.equal(late.status, 401);
  assert.equal(clears(late).length, 1, "cleared once its session ended longer ago than the grace");
  await late.arrayBuffer();
});

/** A Worker of its own (stopped after test `t`; its D1, `wdb`, is there to be broken) where Bob logged in and
 * refreshed once: `retired` is the login's cookie, which that refresh retired, `current` the refresh's. */
async function rotatedOnItsOwn(t) {
  const { w, wdb } = await ownWorker(t);
  const signIn = await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(signIn.status, 200);
  const retired = cookieOf(signIn);
  await signIn.arrayBuffer();
  const refreshed = await w.fetch("/auth/refresh", withCookie(retired, { method: "POST" }));
  assert.equal(refreshed.status, 200);
  const current = cookieOf(refreshed);
  await refreshed.arrayBuffer();
  return { w, wdb, retired, current };
}

test("a check whose lookup among retired ids fails answers 503 session_store_unavailable without clearing the cookie: the token may be one a concurrent refresh retired", async (t) => {
  // A refused token is looked up among the ids refreshes retired (session_rotated, reuse detection). When that read
  // failed, the refusal cleared the cookie as if the token were dead — for a token another tab's refresh had just
  // retired, a clear arriving after that refresh's answer removed the new cookie: signed out for a D1 hiccup. Then it
  // answered 401 session_invalid with the cookie kept, which still told a front end to sign the user out: nothing was
  // learnt of the token, so the answer is the store's 503, as for any other read D1 could not make.
  const { w, wdb, retired, current } = await rotatedOnItsOwn(t);
  // The lookup fails (the table out of reach), while the sessions table still answers.
  await wdb.prepare("ALTER TABLE retired_session_ids RENAME TO retired_session_ids_away").run();
  const clears = (r) => r.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session="));
  try {
    for (const [route, send, status] of [
      ["GET /auth/session (its cache entry says revoked)", () => w.fetch("/auth/session", withCookie(retired)), 503],
      ["a page", () => w.fetch("/", withCookie(retired)), 200],
      ["POST /auth/refresh (D1 finds no such session)", () => w.fetch("/auth/refresh", withCookie(retired, { method: "POST" })), 503],
    ]) {
      const r = await send();
      assert.deepEqual(clears(r), [], `${route}: the cookie is kept`);
      if (status === 503) await expectError(r, 503, "session_store_unavailable", route);
      else {
        assert.equal(r.status, status, route);
        await r.arrayBuffer();
      }
    }
    await until(() => w.jsonLogs().some((l) => l.msg === "session_reuse_check_failed"), {
      what: () => "the failed lookup is logged",
    });
  } finally {
    await wdb.prepare("ALTER TABLE retired_session_ids_away RENAME TO retired_session_ids").run();
  }
  const still = await w.fetch("/auth/session", withCookie(current));
  assert.equal(still.status, 200, "the refresh's session lives on");
  await still.arrayBuffer();
});

test("a retired token whose session D1 cannot read (within the grace) or whose reuse D1 cannot revoke (past it) answers 503 session_store_unavailable, and the retry does what the first could not", async (t) => {
  // Within SESSION_REUSE_GRACE_SECS a retired token's answer depends on whether the session it became lives
  // (session_rotated) or not; a failed read of that said "rotated", and a front end retrying with the same cookie got
  // the same answer and signed the user out. Past the grace, a failed revocation of the reused token's session was
  // answered 401 session_invalid: the session a thief's copy became lived on, and the answer said nothing to retry.
  const { w, wdb, retired, current } = await rotatedOnItsOwn(t);
  const clears = (r) => r.headers.getSetCookie().filter((c) => c.startsWith("__Host-edgekit_session="));
  const broken = async (breaking, what) => {
    const r = await whileBroken(wdb, breaking, () => w.fetch("/auth/session", withCookie(retired)));
    assert.deepEqual(clears(r), [], `${what}: the cookie is kept`);
    await expectError(r, 503, "session_store_unavailable", what);
  };
  // Within the grace: the retired id is found, the session it became cannot be read.
  await broken(tableAway("sessions"), "within the grace");
  const rotated = await w.fetch("/auth/session", withCookie(retired));
  await expectError(rotated, 401, "session_rotated", "with D1 whole, the token is one a refresh has just retired");
  // Past the grace: the revocation of the session it became is refused.
  await wdb.prepare("UPDATE retired_session_ids SET retired_at = retired_at - 120000").run();
  await broken(revocationRefused, "past the grace");
  const lives = await w.fetch("/auth/sessions", withCookie(current));
  assert.equal(lives.status, 200, "the revocation did not happen");
  await lives.arrayBuffer();
  const reused = await w.fetch("/auth/session", withCookie(retired));
  await expectError(reused, 401, "session_invalid", "with D1 whole, the reuse is detected");
  await expectError(await w.fetch("/auth/sessions", withCookie(current)), 401, "session_invalid", "and the session it became is revoked");
});

test("a session revoked elsewhere: strict routes refuse at once, cached checks only until the entry's freshness ends", async () => {
  const { token } = await loggedIn(BOB);
  const key = `session:${sessionId(token)}`;
  assert.ok(await kv.get(key), "login filled the cache");
  // Revoke in D1 only, as another location's logout would; this location's KV entry has not heard of it.
  await db.prepare("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1").bind(sessionId(token), Date.now()).run();
  await expectError(await get("/auth/sessions", token), 401, "session_invalid", "strict route, at once");
  await expectError(await post("/auth/refresh", token), 401, "session_invalid", "refresh is strict too");
  assert.equal((await get("/auth/session", token)).status, 200, "cached check inside the SESSION_CACHE_SECS bound");
  // The bound elapsing: the entry's fresh_until passes (KV's own TTL cannot go under 60 s, so we age the entry).
  const entry = JSON.parse(await kv.get(key));
  await kv.put(key, JSON.stringify({ ...entry, fresh_until: Date.now() - 1 }));
  await expectError(await get("/auth/session", token), 401, "session_invalid", "cached check past the bound");

  // A fresh entry that itself says revoked or past expiry is not trusted either.
  const second = (await loggedIn(BOB)).token;
  const key2 = `session:${sessionId(second)}`;
  const fresh = JSON.parse(await kv.get(key2));
  await kv.put(key2, JSON.stringify({ ...fresh, revoked_at: Date.now() }));
  await expectError(await get("/auth/session", second), 401, "session_invalid", "entry marked revoked");
  await db.prepare("UPDATE sessions SET expires_at = ?2 WHERE id = ?1").bind(sessionId(second), Date.now() - 1).run();
  await kv.put(key2, JSON.stringify({ ...fresh, expires_at: Date.now() - 1 }));
  await expectError(await get("/auth/session", second), 401, "session_invalid", "entry and D1 past expires_at");
});

test("SESSION_CACHE_SECS lowered: an entry written under the longer setting is not trusted past the new bound", async (t) => {
  // An operator lowers the cache's trust window (say after an incident, to tighten the revocation bound): entries
  // the Worker wrote under the old setting carry its longer `fresh_until`, and must not outlive the new bound.
  const vars = { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS };
  const before = await startWorker({ vars: { ...vars, SESSION_CACHE_SECS: 3600 } });
  const stateDir = before.stateDir;
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  let token;
  try {
    await seed({ CONFIG_KV: await before.mf.getKVNamespace("CONFIG_KV"), DB: await before.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const signIn = await before.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
    assert.equal(signIn.status, 200);
    token = cookieOf(signIn);
    await signIn.arrayBuffer();
  } finally {
    await before.stop({ keepState: true });
  }
  const after = await startWorker({ vars, stateDir }); // SESSION_CACHE_SECS back to its default, 60
  t.after(() => after.stop());
  const wkv = await after.mf.getKVNamespace("CONFIG_KV");
  const wdb = await after.mf.getD1Database("DB");
  const key = `session:${sessionId(token)}`;
  const entry = JSON.parse(await wkv.get(key));
  assert.ok(entry.fresh_until > Date.now() + 3_000_000, "the login's entry was written under the hour-long setting");
  // Revoked in D1 alone (another location's logout, an operator), more than the new bound before this check: the
  // entry is backdated by 61 s, as if written and revoked then — still fresh under the old setting, not the new.
  const ago = 61_000;
  await wkv.put(key, JSON.stringify({ ...entry, fresh_until: entry.fresh_until - ago }), { expirationTtl: 3600 });
  await wdb.prepare("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1").bind(sessionId(token), Date.now() - ago).run();
  await expectError(await after.fetch("/auth/session", withCookie(token)), 401, "session_invalid", "cached check past today's bound");
});

test("concurrent refreshes of one session leave exactly one valid token", async () => {
  const { token } = await loggedIn(BOB);
  const responses = await Promise.all(Array.from({ length: 8 }, () => post("/auth/refresh", token)));
  const statuses = responses.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 401, 401, 401, 401, 401, 401, 401], "one wins");
  const winner = cookieOf(responses.find((r) => r.status === 200));
  // The others lost the race, not the session: a front end retries with the cookie the winner set.
  for (const r of responses.filter((r) => r.status === 401)) {
    assert.equal(r.headers.get("retry-after"), "1", "once the winner's answer has arrived");
    assert.equal((await r.json()).error.code, "session_rotated");
  }
  for (const r of responses) if (!r.bodyUsed) await r.arrayBuffer();
  assert.equal((await get("/auth/sessions", winner)).status, 200, "the winner's token works");
  await expectError(await get("/auth/sessions", token), 401, "session_rotated", "the original token is gone");
  await expectError(await get("/auth/session", token), 401, "session_rotated", "…on the cached route too");
  const rows = await db.prepare("SELECT COUNT(*) AS n FROM sessions WHERE id IN (?1, ?2)").bind(sessionId(token), sessionId(winner)).first();
  assert.equal(rows.n, 1, "one session row, now under the winner's id");
});

test("a refresh racing a logout: whichever lands first, no token of the session works afterwards", async () => {
  // The refresh may rotate before the logout revokes (the logout then revokes the session it became, through the
  // retired id) or lose to it; either way the browser may keep the refresh's cookie if its answer arrives last, so
  // that token must be dead on cached routes too, not only on those that ask D1. (Both orders happen across the
  // rounds. The narrower race of a cache write landing between a revocation's D1 write and its cache entry —
  // `Store::refill` — is not reached from here: its window is microseconds under Miniflare.)
  for (let round = 0; round < 12; round++) {
    const { token } = await loggedIn(BOB);
    // Read once through the cache, as a page load would.
    assert.equal((await get("/auth/session", token).then(async (r) => (await r.arrayBuffer(), r))).status, 200);
    const [refreshed, loggedOut] = await Promise.all([post("/auth/refresh", token), post("/auth/logout", token)]);
    assert.equal(loggedOut.status, 204, `round ${round}: logout`);
    await loggedOut.arrayBuffer();
    const tokens = [token];
    if (refreshed.status === 200) {
      tokens.push(cookieOf(refreshed));
    } else {
      assert.equal(refreshed.status, 401, `round ${round}: the refresh either wins or is refused`);
      assert.equal((await refreshed.json()).error.code, "session_invalid", `round ${round}: refused as ended, not raced`);
    }
    if (!refreshed.bodyUsed) await refreshed.arrayBuffer();
    for (const [i, t] of tokens.entries()) {
      const which = `round ${round}: ${i ? "the refreshed" : "the original"} token`;
      await expectError(await get("/auth/sessions", t), 401, "session_invalid", `${which} on a D1 route`);
      await expectError(await get("/auth/session", t), 401, "session_invalid", `${which} on a cached route`);
    }
  }
});

test("sliding expiry: a check after the touch interval writes last-seen and a later expiry through waitUntil", async (t) => {
  const touchy = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), SESSION_TOUCH_SECS: 1, RATE_LIMIT_POLICIES: GENEROUS },
  });
  t.after(() => touchy.stop());
  const tdb = await touchy.mf.getD1Database("DB");
  await seed({ CONFIG_KV: await touchy.mf.getKVNamespace("CONFIG_KV"), DB: tdb });
  const response = await touchy.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  const token = cookieOf(response);
  await response.arrayBuffer();
  const id = sessionId(token);
  const old = Date.now() - 60_000;
  await tdb.prepare("UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 WHERE id = ?1").bind(id, old, old + 3_600_000).run();
  const kvt = await touchy.mf.getKVNamespace("CONFIG_KV");
  await kvt.delete(`session:${id}`);
  const check = await touchy.fetch("/auth/session", withCookie(token));
  assert.equal(check.status, 200);
  await check.arrayBuffer();
  const row = await until(async () => {
    const r = await tdb.prepare("SELECT last_seen_at, expires_at FROM sessions WHERE id = ?1").bind(id).first();
    return r.last_seen_at > old ? r : null;
  }, { what: "last-seen written" });
  assert.ok(row.expires_at > old + 3_600_000, "the expiry slid forward");
  await until(async () => (await kvt.get(`session:${id}`)) !== null, { what: "the cache entry refilled" });
});

test("a touch that finds its session ended in D1 (revoked there, or its user deleted) leaves a revocation entry: cached checks stop accepting it", async () => {
  for (const [what, end] of [
    ["revoked by an operator in D1", (id, user) => db.prepare("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1").bind(id, Date.now() - 120_000).run()],
    ["its user deleted", async (id, user) => {
      await db.prepare("DELETE FROM sessions WHERE user_id = ?1").bind(user.id).run();
      await db.prepare("DELETE FROM users WHERE id = ?1").bind(user.id).run();
    }],
  ]) {
    const user = { id: `u-touch-${randomBytes(4).toString("hex")}`, email: `touch-${randomBytes(4).toString("hex")}@example.com`, password: "touch-ended-session" };
    await insertUser(user, await hashPassword(user.password, 10_000));
    const { token } = await loggedIn(user);
    const id = sessionId(token);
    // The cache entry a check trusts (fresh, active), last seen long enough ago that the check's touch is due.
    const now = Date.now();
    const entry = { user_id: user.id, email: user.email, permissions: [], created_at: now - 7_200_000, expires_at: now + 600_000, last_seen_at: now - 3_600_000, revoked_at: null, fresh_until: now + 60_000 };
    await kv.put(`session:${id}`, JSON.stringify(entry), { expirationTtl: 60 });
    await end(id, user);
    const first = await get("/auth/session", token);
    assert.equal(first.status, 200, `${what}: the fresh entry answers the check that learns it has ended`);
    await first.arrayBuffer();
    await until(async () => JSON.parse((await kv.get(`session:${id}`)) ?? "null")?.revoked_at, { what: `${what}: a revocation entry` });
    await expectError(await get("/auth/session", token), 401, "session_invalid", `${what}: the next cached check`);
  }
});

test("read-your-writes: the D1 bookmark comes back on every response and is accepted, garbage is ignored", async () => {
  const { token, response } = await loggedIn(BOB);
  const bookmark = response.headers.get("x-d1-bookmark");
  assert.match(bookmark, /^[0-9a-f-]+$/);
  const cases = [
    { what: "its own bookmark", header: bookmark, status: 200 },
    { what: "garbage", header: "not a bookmark'; --", status: 200 },
    // Miniflare's D1 ignores bookmarks: this shows only that a bookmark-shaped header is passed on without an error
    // answer, not how D1 on Cloudflare would judge one it does not know.
    { what: "bookmark-shaped (Miniflare ignores it)", header: "0000-0000", status: 200 },
    { what: "constraint word", header: "first-unconstrained", status: 200 },
  ];
  for (const { what, header, status } of cases) {
    // The strict route always queries D1 (from the primary); the cached one does when its KV entry is gone, and
    // then starts its D1 session at the client's bookmark — the path this test is about.
    for (const path of ["/auth/sessions", "/auth/session"]) {
      if (path === "/auth/session") await kv.delete(`session:${sessionId(token)}`);
      const r = await worker.fetch(path, withCookie(token, { headers: { "x-d1-bookmark": header } }));
      assert.equal(r.status, status, `${what} on ${path}`);
      assert.match(r.headers.get("x-d1-bookmark") ?? "", /^[0-9a-f-]+$/, `${what} on ${path}: a bookmark back`);
      await r.arrayBuffer();
    }
  }
});

test("the signing key is configuration: invalid refuses to start, unset refuses logins without leaking", async (t) => {
  const bad = await startWorker({ vars: { AUTH_SIGNING_KEY: JSON.stringify({ ...KEY, x: KEY.d }) } });
  t.after(() => bad.stop());
  const response = await bad.fetch("/auth/session");
  assert.equal(response.status, 500);
  const body = await response.json();
  assert.equal(body.error.code, "config_invalid");
  assert.match(body.error.message, /AUTH_SIGNING_KEY/);
  assert.ok(!JSON.stringify(body).includes(KEY.d), "the key is not echoed");

  // "" is unset (and overrides a key that `npm start` may have written to .dev.vars, which the harness also reads).
  const unset = await startWorker({ vars: { AUTH_SIGNING_KEY: "" } });
  t.after(() => unset.stop());
  await seed({ CONFIG_KV: await unset.mf.getKVNamespace("CONFIG_KV"), DB: await unset.mf.getD1Database("DB") });
  await expectError(await unset.fetch("/auth/login", json({ email: BOB.email, password: BOB.password })), 500, "internal_error", "no key");
});

test("a refresh that cannot sign an access token (AUTH_SIGNING_KEY deleted since the login) is refused before it rotates: the cookie keeps working", async (t) => {
  const keyed = await startWorker({ vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS } });
  await seed({ CONFIG_KV: await keyed.mf.getKVNamespace("CONFIG_KV"), DB: await keyed.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const signIn = await keyed.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(signIn.status, 200);
  const token = cookieOf(signIn);
  await signIn.arrayBuffer();
  await keyed.stop({ keepState: true });
  // The same D1 and KV, served by a deployment whose secret was deleted.
  const keyless = await startWorker({ vars: { AUTH_SIGNING_KEY: "", RATE_LIMIT_POLICIES: GENEROUS }, stateDir: keyed.stateDir });
  t.after(async () => {
    await keyless.stop();
    rmSync(keyed.stateDir, { recursive: true, force: true });
  });
  const refreshed = await keyless.fetch("/auth/refresh", withCookie(token, { method: "POST" }));
  await expectError(refreshed, 500, "internal_error", "refresh without a signing key");
  assert.equal(refreshed.headers.get("set-cookie"), null, "no cookie: none was made");
  const wdb = await keyless.mf.getD1Database("DB");
  const row = await wdb.prepare("SELECT revoked_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  assert.deepEqual(row, { revoked_at: null }, "the session still has the browser's token: it was not rotated");
  // The strict list reads D1: the token the browser holds is still the session's, not one retired for a token never sent.
  const listed = await keyless.fetch("/auth/sessions", withCookie(token));
  assert.equal(listed.status, 200, "the browser's cookie still signs it in");
  await listed.arrayBuffer();
});

test("a browser that signed in keeps its own login limit while others exhaust the email's (trusted-device cookies)", async (t) => {
  const limited = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      RATE_LIMIT_POLICIES: {
        "login-ip": { limit: 100, window: 60, key: "ip" },
        "login-email": { limit: 3, window: 60, key: "user" },
        "login-device": { limit: 2, window: 60, key: "user" },
      },
    },
  });
  t.after(() => limited.stop());
  const db = await limited.mf.getD1Database("DB");
  await seed({ CONFIG_KV: await limited.mf.getKVNamespace("CONFIG_KV"), DB: db });
  const attempt = (email, password, cookie) =>
    limited.fetch("/auth/login", {
      ...json({ email, password }),
      headers: { "content-type": "application/json", ...(cookie && { cookie }) },
    });
  const device = (value) => `__Secure-edgekit_session_device=${value}`;
  /** The device cookie a successful login set, its attributes checked. */
  const deviceOf = async (response, what) => {
    assert.equal(response.status, 200, what);
    await response.arrayBuffer();
    const set = response.headers.getSetCookie().find((c) => c.startsWith("__Secure-edgekit_session_device="));
    assert.ok(set, `${what}: a device cookie`);
    for (const attribute of ["Path=/auth/login", "HttpOnly", "Secure", "SameSite=Strict", `Max-Age=${180 * 86_400}`]) {
      assert.ok(set.split("; ").includes(attribute), `${what}: ${attribute} in ${set}`);
    }
    assert.match(cookieOf(response) ?? "", /^[A-Za-z0-9_-]{43}$/, `${what}: the session cookie still set`);
    return /^__Secure-edgekit_session_device=([^;]+)/.exec(set)[1];
  };
  /** A refusal naming the policy that refused. */
  const refused = async (response, policy, what) => {
    assert.equal(response.headers.get("ratelimit-policy")?.includes(`"${policy}"`), true, `${what}: ${policy} listed`);
    const body = await response.clone().json();
    assert.match(body.error?.message ?? "", new RegExp(`\`${policy}\``), `${what}: refused by ${policy}`);
    await expectError(response, 429, "rate_limited", what);
  };

  // Bob signs in once on his browser (counted against his email: 1 of 3) and Alice on hers.
  const bobs = await deviceOf(await attempt(BOB.email, BOB.password), "bob signs in");
  const alices = await deviceOf(await attempt(ALICE.email, ALICE.password), "alice signs in");
  // Someone else fails on Bob's email until its limit is spent: Bob's right password from anywhere new is refused.
  for (const n of [1, 2]) await expectError(await attempt(BOB.email, `guess ${n}`), 401, "invalid_credentials", `guess ${n}`);
  await refused(await attempt(BOB.email, "guess 3"), "login-email", "guess 3 over the email limit");
  await refused(await attempt(BOB.email, BOB.password), "login-email", "bob on a new browser");
  // Attempts carrying no valid entry for Bob count against his email, like any other.
  const [id, at, account, seal, mac] = bobs.split(".");
  const flip = (tag) => {
    const bytes = Buffer.from(tag, "base64url");
    bytes[0] ^= 1;
    return bytes.toString("base64url");
  };
  for (const [what, value] of [
    ["a forged MAC", `${id}.${at}.${account}.${seal}.${flip(mac)}`],
    ["a forged seal", `${id}.${at}.${account}.${flip(seal)}.${mac}`],
    ["a later issue time", `${id}.${Number(at) + 1}.${account}.${seal}.${mac}`],
    ["Alice's entry", alices],
    ["Alice's entry with Bob's account tag", alices.split(".").map((part, i) => (i === 2 ? account : part)).join(".")],
    ["garbage", "' OR 1=1 --"],
    ["an id alone", id],
  ]) {
    await refused(await attempt(BOB.email, BOB.password, device(value)), "login-email", what);
  }
  // From his own browser Bob signs in, limited per device, and gets a fresh entry — also with cookies planted
  // before his (another domain's, say: garbage, 2,000 empty pieces, a forgery) and his session cookie in the header.
  const planted = `${device("planted")}; ${device("~".repeat(2000))}; ${device(`${id}.${at}.${account}.${seal}.${flip(mac)}`)}`;
  const signedIn = await attempt(BOB.email, BOB.password, `${planted}; __Host-edgekit_session=${"a".repeat(43)}; ${device(bobs)}`);
  assert.equal(signedIn.headers.get("ratelimit-policy"), '"login-ip";q=100;w=60, "login-device";q=2;w=60', "the device's limit applies");
  const renewed = await deviceOf(signedIn, "bob on his browser");
  assert.notEqual(renewed, bobs, "a fresh entry");
  assert.equal(renewed.split("~").length, 1, "nothing planted kept: Bob's old entry replaced, the forgery dropped");
  // A device has its own limit: two wrong attempts spend the renewed entry's, not the first one's.
  for (const n of [1, 2]) await expectError(await attempt(BOB.email, `typo ${n}`, device(renewed)), 401, "invalid_credentials", `typo ${n}`);
  await refused(await attempt(BOB.email, BOB.password, device(renewed)), "login-device", "over the device limit");
  const third = await deviceOf(await attempt(BOB.email, BOB.password, device(bobs)), "the first entry's limit is its own");
  // Alice signs in on a browser that Bob used too: one cookie keeps both accounts' entries.
  const shared = await deviceOf(await attempt(ALICE.email, ALICE.password, device(`${alices}~${third}`)), "alice on a shared browser");
  assert.equal(shared.split("~").length, 2, `two entries: ${shared}`);
  await deviceOf(await attempt(BOB.email, BOB.password, device(shared)), "bob's entry kept beside alice's");
  // A password change retires every entry issued before it: whoever kept one while they knew the password.
  const { hash, salt, iterations } = await hashPassword("a new password");
  await db.prepare("UPDATE users SET password_hash = ?1, password_salt = ?2, password_iterations = ?3 WHERE email = ?4").bind(hash, salt, iterations, BOB.email).run();
  await refused(await attempt(BOB.email, "a new password", device(bobs)), "login-email", "an entry from before the change");
});

test("an access JWT never outlives the session it was issued from", async (t) => {
  // A session of one minute (idle and absolute) and access tokens of an hour: the token ends with the session.
  const brief = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      RATE_LIMIT_POLICIES: GENEROUS,
      SESSION_IDLE_SECS: 60,
      SESSION_MAX_SECS: 60,
      SESSION_TOUCH_SECS: 30,
      AUTH_ACCESS_TTL_SECS: 3600,
    },
  });
  t.after(() => brief.stop());
  await seed({ CONFIG_KV: await brief.mf.getKVNamespace("CONFIG_KV"), DB: await brief.mf.getD1Database("DB") });
  const response = await brief.fetch("/auth/login", json({ email: ALICE.email, password: ALICE.password }));
  assert.equal(response.status, 200);
  const body = await response.json();
  const { claims } = await verifyAccessToken(body.access_token);
  assert.ok(claims.exp * 1000 <= body.session.expires_at, `exp ${claims.exp} within the session (${body.session.expires_at})`);
  assert.ok(body.expires_in <= 60 && body.expires_in > 0, `expires_in ${body.expires_in}`);
  assert.equal(claims.exp - claims.iat, body.expires_in);
  const refreshed = await brief.fetch("/auth/refresh", withCookie(cookieOf(response), { method: "POST" }));
  assert.equal(refreshed.status, 200);
  const again = await refreshed.json();
  assert.ok((await verifyAccessToken(again.access_token)).claims.exp * 1000 <= again.session.expires_at, "a refresh's token too");
});

/** A worker whose sessions last 10 minutes idle and an hour at most (`extra` vars beside), and Bob signed in to it. */
async function bobUnderAnHour(t, extra = {}) {
  const w = await startWorker({
    vars: { AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: GENEROUS, SESSION_IDLE_SECS: 600, SESSION_MAX_SECS: 3600, SESSION_TOUCH_SECS: 300, ...extra },
  });
  t.after(() => w.stop());
  const wdb = await w.mf.getD1Database("DB");
  const wkv = await w.mf.getKVNamespace("CONFIG_KV");
  await seed({ CONFIG_KV: wkv, DB: wdb });
  const signedIn = await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(signedIn.status, 200);
  const token = cookieOf(signedIn);
  await signedIn.arrayBuffer();
  return { w, wdb, wkv, token };
}

/** Signs bob in again under `w` and asserts his session list holds that new session alone. */
async function onlyANewSessionListed(w) {
  const again = await w.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(again.status, 200);
  const fresh = cookieOf(again);
  await again.arrayBuffer();
  const listed = await w.fetch("/auth/sessions", withCookie(fresh));
  assert.equal(listed.status, 200);
  const { sessions } = await listed.json();
  assert.deepEqual(sessions.map((s) => s.current), [true], "only the session a check accepts");
}

test("a session older than a lowered SESSION_MAX_SECS is refused at once, and a refresh does not rotate it into an ended one", async (t) => {
  const { w, wdb, wkv, token } = await bobUnderAnHour(t);
  // Made two hours ago under a longer limit: its stored idle expiry (10 minutes ahead) was within that one.
  const key = `session:${sessionId(token)}`;
  await wdb.prepare("UPDATE sessions SET created_at = ?2 WHERE id = ?1").bind(sessionId(token), Date.now() - 7_200_000).run();
  await wkv.delete(key);
  const check = (path, init) => w.fetch(path, withCookie(token, init));
  await expectError(await check("/auth/sessions"), 401, "session_invalid", "strict check");
  const refreshed = await check("/auth/refresh", { method: "POST" });
  assert.match(refreshed.headers.get("set-cookie") ?? "", /^__Host-edgekit_session=; Max-Age=0;/, "no new cookie for a session that has ended: the dead one is cleared");
  await expectError(refreshed, 401, "session_invalid", "refresh");
  await expectError(await check("/auth/session"), 401, "session_invalid", "cached check, from D1");
  // A fresh cache entry written before the limit was lowered says the same.
  const now = Date.now();
  const entry = { user_id: BOB.id, email: BOB.email, permissions: [], created_at: now - 7_200_000, expires_at: now + 600_000, last_seen_at: now, revoked_at: null, fresh_until: now + 60_000 };
  await wkv.put(key, JSON.stringify(entry));
  await expectError(await check("/auth/session"), 401, "session_invalid", "cached check, from a fresh entry");
  // The user's list of sessions shows the new one alone: the old one is refused by every check.
  await onlyANewSessionListed(w);
});

test("a session idle longer than a lowered SESSION_IDLE_SECS is refused at once: its expiry stored under the longer setting does not keep it, nor a touch revive it", async (t) => {
  const { w, wdb, wkv, token } = await bobUnderAnHour(t); // SESSION_IDLE_SECS = 600
  // Last seen 20 minutes ago under a 30-minute idle window: its stored expiry is 10 minutes ahead.
  const key = `session:${sessionId(token)}`;
  const now = Date.now();
  await wdb.prepare("UPDATE sessions SET created_at = ?2, last_seen_at = ?2, expires_at = ?3 WHERE id = ?1").bind(sessionId(token), now - 1_200_000, now + 600_000).run();
  await wkv.delete(key);
  const check = (path, init) => w.fetch(path, withCookie(token, init));
  await expectError(await check("/auth/sessions"), 401, "session_invalid", "strict check");
  const refreshed = await check("/auth/refresh", { method: "POST" });
  await expectError(refreshed, 401, "session_invalid", "refresh");
  await expectError(await check("/auth/session"), 401, "session_invalid", "cached check, from D1");
  // A fresh cache entry written before the setting was lowered says the same.
  const entry = { user_id: BOB.id, email: BOB.email, permissions: [], created_at: now - 1_200_000, expires_at: now + 600_000, last_seen_at: now - 1_200_000, revoked_at: null, fresh_until: now + 60_000 };
  await wkv.put(key, JSON.stringify(entry));
  await expectError(await check("/auth/session"), 401, "session_invalid", "cached check, from a fresh entry");
  const row = await wdb.prepare("SELECT expires_at FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  assert.equal(row?.expires_at ?? null, row ? now + 600_000 : null, "no touch moved its expiry on");
  // The user's list shows the new session alone.
  await onlyANewSessionListed(w);
});

test("a refresh within SESSION_ROTATE_MIN_SECS of a session under a lowered SESSION_MAX_SECS gets a token ending at that limit", async (t) => {
  const { w, wdb, wkv, token } = await bobUnderAnHour(t, { AUTH_ACCESS_TTL_SECS: 900 });
  // Made 59 minutes ago under a longer limit, and rotated just now: its stored idle expiry (10 minutes ahead) passes
  // the hour the limit leaves it, which ends in a minute.
  const createdAt = Date.now() - 3_540_000;
  const limit = createdAt + 3_600_000;
  await wdb.prepare("UPDATE sessions SET created_at = ?2, rotated_at = ?3 WHERE id = ?1").bind(sessionId(token), createdAt, Date.now()).run();
  await wkv.delete(`session:${sessionId(token)}`);
  const refreshed = await w.fetch("/auth/refresh", withCookie(token, { method: "POST" }));
  assert.equal(refreshed.status, 200);
  assert.equal(refreshed.headers.get("set-cookie"), null, "not rotated: the session token is kept");
  const body = await refreshed.json();
  const { claims } = await verifyAccessToken(body.access_token);
  assert.ok(claims.exp * 1000 <= limit, `exp ${claims.exp * 1000} within the session's limit ${limit}`);
  assert.ok(body.session.expires_at <= limit, `session.expires_at ${body.session.expires_at} within the limit ${limit}`);
  // The user's own views of the session say when it ends too.
  const current = await w.fetch("/auth/session", withCookie(token));
  assert.equal(current.status, 200);
  assert.equal((await current.json()).session.expires_at, limit, "GET /auth/session");
  const listed = await w.fetch("/auth/sessions", withCookie(token));
  assert.equal(listed.status, 200);
  assert.deepEqual((await listed.json()).sessions.map((s) => s.expires_at), [limit], "GET /auth/sessions");
});

test("device entries expire after SESSION_DEVICE_TTL_SECS, whatever the browser keeps", async (t) => {
  const short = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      // Entries are timed in whole seconds, taken before the password's derivation: 5 s leaves the second attempt
      // (two derivations, D1, the limiter) at least 4 s however loaded the machine.
      SESSION_DEVICE_TTL_SECS: 5,
      RATE_LIMIT_POLICIES: { "login-email": { limit: 1, window: 60, key: "user" } },
    },
  });
  t.after(() => short.stop());
  await seed({ CONFIG_KV: await short.mf.getKVNamespace("CONFIG_KV"), DB: await short.mf.getD1Database("DB") });
  const attempt = (cookie) =>
    short.fetch("/auth/login", { ...json({ email: BOB.email, password: BOB.password }), headers: { "content-type": "application/json", ...(cookie && { cookie }) } });
  const valueOf = (response) => /^__Secure-edgekit_session_device=([^;]+)/.exec(response.headers.getSetCookie().find((c) => c.startsWith("__Secure-edgekit_session_device=")) ?? "")?.[1];
  const first = await attempt();
  assert.equal(first.status, 200);
  await first.arrayBuffer();
  const issuedAt = Number(valueOf(first).split(".")[1]);
  // The entry is honoured while it lives (the email's one attempt is spent)...
  const again = await attempt(`__Secure-edgekit_session_device=${valueOf(first)}`);
  assert.equal(again.status, 200, "a live entry");
  await again.arrayBuffer();
  const latest = valueOf(again);
  // ...and not once its five seconds have passed: the attempt counts against the spent email limit.
  const latestAt = Number(latest.split(".")[1]);
  assert.ok(latestAt >= issuedAt);
  await until(() => Date.now() >= (latestAt + 5) * 1000, { ms: 8000, what: "the entry's lifetime to pass" });
  await expectError(await attempt(`__Secure-edgekit_session_device=${latest}`), 429, "rate_limited", "an expired entry");
});

test("with SESSION_DEVICE_TTL_SECS = 0 no device cookie is set or honoured", async (t) => {
  const off = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      SESSION_DEVICE_TTL_SECS: 0,
      RATE_LIMIT_POLICIES: { "login-email": { limit: 1, window: 60, key: "user" } },
    },
  });
  t.after(() => off.stop());
  await seed({ CONFIG_KV: await off.mf.getKVNamespace("CONFIG_KV"), DB: await off.mf.getD1Database("DB") });
  const first = await off.fetch("/auth/login", json({ email: BOB.email, password: BOB.password }));
  assert.equal(first.status, 200);
  await first.arrayBuffer();
  assert.deepEqual(first.headers.getSetCookie().map((c) => c.split("=")[0]), ["__Host-edgekit_session"], "only the session cookie");
  // A cookie the main worker (same signing key, device cookies on) issued is not honoured here.
  const issued = await login(BOB.email, BOB.password);
  await issued.arrayBuffer();
  const device = /^__Secure-edgekit_session_device=([^;]+)/.exec(issued.headers.getSetCookie().find((c) => c.startsWith("__Secure-edgekit_session_device=")) ?? "")?.[1];
  assert.ok(device, "the main worker issues device cookies");
  const second = await off.fetch("/auth/login", {
    ...json({ email: BOB.email, password: BOB.password }),
    headers: { "content-type": "application/json", cookie: `__Secure-edgekit_session_device=${device}` },
  });
  await expectError(second, 429, "rate_limited", "counted per email");
});

test("login attempts are limited per IP and per email, the same for known and unknown emails", async (t) => {
  const limited = await startWorker({
    vars: {
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      RATE_LIMIT_POLICIES: {
        "login-ip": { limit: 10, window: 60, key: "ip" },
        "login-email": { limit: 3, window: 60, key: "user" },
      },
    },
  });
  t.after(() => limited.stop());
  await seed({ CONFIG_KV: await limited.mf.getKVNamespace("CONFIG_KV"), DB: await limited.mf.getD1Database("DB") });
  const attempt = (email, password) => limited.fetch("/auth/login", json({ email, password }));
  // `left`: the attempts login-ip and login-email leave after the step, as its answer lists them whatever its status
  // (a wrong password's 401 and the email limit's 429 too); an unknown email's are a known one's.
  const steps = [
    ...[1, 2, 3].map((n) => ({ what: `bob wrong #${n}`, email: BOB.email, password: "x", status: 401, code: "invalid_credentials", left: [10 - n, 3 - n] })),
    { what: "bob, right password, over the email limit", email: BOB.email, password: BOB.password, status: 429, code: "rate_limited", left: [6, 0] },
    ...[1, 2, 3].map((n) => ({ what: `unknown wrong #${n}`, email: "nobody@example.com", password: "x", status: 401, code: "invalid_credentials", left: [6 - n, 3 - n] })),
    { what: "unknown email over the email limit, like a known one", email: "nobody@example.com", password: "x", status: 429, code: "rate_limited", left: [2, 0] },
    { what: "alice, another email, still allowed", email: ALICE.email, password: ALICE.password, status: 200, left: [1, 2] },
    { what: "alice wrong", email: ALICE.email, password: "x", status: 401, code: "invalid_credentials", left: [0, 1] },
    { what: "alice right but over the IP limit", email: ALICE.email, password: ALICE.password, status: 429, code: "rate_limited", left: [0] },
  ];
  for (const { what, email, password, status, code, left } of steps) {
    const response = await attempt(email, password);
    // Both limits apply to a login, and both are reported, as the lists the RateLimit header fields are; a request
    // login-ip refuses is not asked of the email's limit.
    const [ip, mail] = left;
    const policies = ['"login-ip";q=10;w=60', '"login-email";q=3;w=60'].slice(0, left.length).join(", ");
    const state = [`"login-ip";r=${ip};t=\\d+`, `"login-email";r=${mail};t=\\d+`].slice(0, left.length).join(", ");
    assert.equal(response.headers.get("ratelimit-policy"), policies, `${what}: policies`);
    assert.match(response.headers.get("ratelimit") ?? "", new RegExp(`^${state}$`), `${what}: state`);
    if (status === 200) {
      assert.equal(response.status, 200, what);
      await response.arrayBuffer();
      continue;
    }
    if (status === 429) assert.match(response.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/, `${what}: Retry-After`);
    await expectError(response, status, code, what);
  }
});

test("a login refused for its body (400) after login-ip counted it says where the address stands", async (t) => {
  // The address spent an attempt on it, as on a wrong password: the 400 lists login-ip, and no email's limit (none
  // was read). A cross-origin login is refused before it is counted, and lists nothing.
  const { w } = await ownWorker(t, { RATE_LIMIT_POLICIES: { ...GENEROUS, "login-ip": { limit: 10, window: 60, key: "ip" } } });
  const cases = [
    ["not JSON", { method: "POST", headers: { "content-type": "application/json" }, body: "{" }, 400, "invalid_json"],
    ["no password", json({ email: ALICE.email }), 400, "invalid_json"],
  ];
  for (const [i, [what, init, status, code]] of cases.entries()) {
    const r = await w.fetch("/auth/login", init);
    assert.equal(r.headers.get("ratelimit-policy"), '"login-ip";q=10;w=60', what);
    assert.match(r.headers.get("ratelimit") ?? "", new RegExp(`^"login-ip";r=${9 - i};t=\\d+$`), what);
    await expectError(r, status, code, what);
  }
  const foreign = await w.fetch("/auth/login", { ...json({ email: ALICE.email, password: "x" }), headers: { "content-type": "application/json", origin: "https://elsewhere.example" } });
  assert.equal(foreign.headers.get("ratelimit-policy"), null, "refused before it is counted");
  await expectError(foreign, 403, "cross_origin_refused", "cross-origin");
});

test("a refresh when the session ends within the second gets no access token expired at issue, and keeps its token", async () => {
  // TokenResponse.expires_in is `minimum: 1`: a token whose exp is its iat is expired at issue (alive only by the
  // gateway's leeway, past its session). The session's end is put in the very second the refresh is made.
  const { token } = await loggedIn();
  while (Date.now() % 1000 > 100) await new Promise((r) => setTimeout(r, 5));
  const end = Math.floor(Date.now() / 1000) * 1000 + 999;
  await db
    .prepare("UPDATE sessions SET created_at = ?2, expires_at = ?3 WHERE id = ?1")
    .bind(sessionId(token), end - 30 * 86_400_000, end)
    .run();
  const response = await post("/auth/refresh", token);
  const body = await response.json();
  assert.equal(response.status, 401, `refused, not ${JSON.stringify(body)}`);
  assert.equal(body.access_token, undefined);
  const row = await db.prepare("SELECT id FROM sessions WHERE id = ?1").bind(sessionId(token)).first();
  assert.ok(row, "not rotated: the old token was not retired for a new one never delivered");
});
