// Rate limiting (src/ratelimit, durable_objects/src/ratelimit): exact per-key limits on sharded RateLimiter objects,
// through the public route GET /ratelimit/{policy}/check, which uses the same enforce() path every limited route
// uses. The objects are inspected through the runtime's own namespace API (POST /standing and /ping).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startOrigin } from "./support/origin.mjs";
import { ROOT, onceMoreIfClosed, panicInObject, startWorker, until } from "./support/worker.mjs";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import WebSocket from "ws";

// The stable hash and naming the Worker uses (durable_objects/src/ratelimit/shard.rs, protocol.rs), restated here so
// a change on the Rust side that would move stored state fails this test too.
const fnv1a64 = (text) => {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text)) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash;
};
const objectFor = (policy, stateKey, shards) => `${policy}:${fnv1a64(stateKey) % BigInt(shards)}`;
const apiKeyFor = (apiKey) => `key:${createHash("sha256").update(apiKey).digest("hex").slice(0, 32)}`;

const api = (limit, extra = {}) => ({ limit, window: 3600, key: "api_key", shards: 4, check: true, ...extra });
const served = (policies) => Object.fromEntries(Object.entries(policies).map(([name, p]) => [name, { check: true, ...p }]));
const POLICIES = {
  // Not served by GET /ratelimit/{policy}/check (no `check = true`): like login-ip, only its own route counts it.
  unchecked: { limit: 2, window: 3600, key: "ip" },
  ...served({
    exact: api(10),
    short: { limit: 3, window: 1, key: "api_key", shards: 2 },
    spread: api(5, { shards: 4 }),
    split: api(10, { shards: 8, hot_keys: { [apiKeyFor("hot")]: 4 } }),
    split_odd: api(7, { shards: 8, hot_keys: { [apiKeyFor("hot")]: 3 } }),
    sweep: { limit: 1, window: 1, key: "api_key", shards: 1 },
    cheap: { limit: 2, window: 3600, key: "api_key", shards: 1 },
    by_ip: { limit: 2, window: 3600, key: "ip", shards: 4 },
    down_open: api(5, { binding: "RATE_LIMITER_NOT_BOUND", failure: "open" }),
    down_closed: api(5, { binding: "RATE_LIMITER_NOT_BOUND", failure: "closed" }),
    wrong_open: api(5, { binding: "DB", failure: "open" }),
    wrong_closed: api(5, { binding: "DB", failure: "closed" }),
  }),
};

let worker;
// An origin that reports limits of its own, behind gateway routes limited by the policies above.
let origin;
const ORIGIN_LIMITS = { "ratelimit-policy": '"origin";q=100;w=60', ratelimit: '"origin";r=0;t=60' };
// The answers of /gw/late the origin holds until the test lets them go: the route's timeout passes first, no sleep.
const heldAnswers = [];
before(async () => {
  origin = await startOrigin();
  origin.handle((req, body, res) => {
    if (req.url.startsWith("/gw/late")) return new Promise((resolve) => heldAnswers.push(() => resolve(res.end("late"))));
    res.writeHead(200, { "content-type": "text/plain", ...ORIGIN_LIMITS });
    res.end("from the origin");
  });
  const GATEWAY_ROUTES = [
    { name: "limited-down", path: "/gw/down", upstream: origin.url, rate_limit: "down_open" },
    { name: "limited-up", path: "/gw/up", upstream: origin.url, rate_limit: "exact" },
    // Nothing listens on port 1: the request passes its limit, then the origin cannot be reached.
    { name: "limited-unreachable", path: "/gw/unreachable", upstream: "http://127.0.0.1:1", rate_limit: "exact", retries: 0 },
    { name: "unlimited-unreachable", path: "/gw/nowhere", upstream: "http://127.0.0.1:1", retries: 0 },
    // Keyed by address, so a CORS preflight (which carries no API key) is counted by it.
    { name: "ip-unreachable", path: "/gw/ip-unreachable", upstream: "http://127.0.0.1:1", rate_limit: "unchecked", retries: 0 },
    { name: "limited-late", path: "/gw/late", upstream: origin.url, rate_limit: "exact", timeout_ms: 300, retries: 0 },
  ];
  worker = await startWorker({ vars: { RATE_LIMIT_POLICIES: POLICIES, GATEWAY_ROUTES } });
});
after(async () => {
  await worker?.stop();
  await origin?.stop();
});

const check = (policy, apiKey, headers = {}) =>
  worker.fetch(`/ratelimit/${policy}/check`, { headers: apiKey ? { "x-api-key": apiKey, ...headers } : headers });

async function standing(w, policy, stateKey, limit, windowS, shards) {
  const ns = await w.mf.getDurableObjectNamespace("RATE_LIMITER");
  const stub = ns.get(ns.idFromName(objectFor(policy, stateKey, shards)));
  const body = JSON.stringify({ key: stateKey, limit, window_ms: windowS * 1000 });
  // A read (the object peeks at the key's state): sent once more if Miniflare's connection closed under it.
  return (await onceMoreIfClosed(() => stub.fetch("https://ratelimiter/standing", { method: "POST", body }))).json();
}

async function ping(w, objectName) {
  const ns = await w.mf.getDurableObjectNamespace("RATE_LIMITER");
  const stub = ns.get(ns.idFromName(objectName));
  return (await onceMoreIfClosed(() => stub.fetch("https://ratelimiter/ping", { method: "POST" }))).json();
}

test("with limit L, exactly L of 3·L concurrent requests pass, each remaining count once, the rest 429", async () => {
  const responses = await Promise.all(Array.from({ length: 30 }, () => check("exact", "client-exact")));
  const passed = responses.filter((r) => r.status === 200);
  const refused = responses.filter((r) => r.status === 429);
  assert.equal(passed.length, 10, "exactly the limit passes");
  assert.equal(refused.length, 20, "every other request is refused");
  for (const r of passed) assert.equal(r.headers.get("ratelimit-policy"), '"exact";q=10;w=3600');
  const remaining = passed.map((r) => Number(/;r=(\d+);/.exec(r.headers.get("ratelimit"))[1])).sort((a, b) => a - b);
  assert.deepEqual(remaining, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "each pass saw a distinct remaining count");
  for (const r of refused) {
    assert.match(r.headers.get("ratelimit"), /^"exact";r=0;t=\d+$/);
    assert.ok(Number(r.headers.get("retry-after")) >= 1, "Retry-After in whole seconds");
    const body = await r.json();
    assert.equal(body.error.code, "rate_limited");
  }
  const body = await passed[0].json();
  assert.deepEqual(Object.keys(body).sort(), ["limit", "policy", "remaining", "reset", "window"]);
  const s = await standing(worker, "exact", apiKeyFor("client-exact"), 10, 3600, 4);
  assert.deepEqual([s.stored, s.standing.remaining], [true, 0], "the object holds the spent key");
});

test("the count resets after the window", async () => {
  // GCRA lets one more request through every window/limit (333 ms here) after the first 3, so a burst that a loaded
  // machine spreads out may rightly pass more than 3: each burst is held to what its own elapsed time allows (on a
  // quiet machine a burst takes well under 333 ms, so that is exactly 3).
  const burst = async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 6 }, () => check("short", "client-short")));
    const passed = answers.filter((r) => r.status === 200).length;
    return { passed, allowed: 3 + Math.floor((Date.now() - started) / (1000 / 3)), refused: passed < 6 };
  };
  const first = await burst();
  assert.ok(first.passed >= 3 && first.passed <= first.allowed, `3 of 6 pass in the first window (${first.passed})`);
  // Spend the bucket until the limiter refuses (the first burst did, unless the machine stretched it past a window).
  for (let more = first, bursts = 1; !more.refused; bursts++) {
    assert.ok(bursts < 10, "the limiter refuses within 10 bursts of 6");
    more = await burst();
    assert.ok(more.passed <= more.allowed, `no burst passes more than its time allows (${more.passed})`);
  }
  // Observe the object's own state until the bucket is full again (one window of 1 s), then burst again.
  await until(async () => (await standing(worker, "short", apiKeyFor("client-short"), 3, 1, 2)).standing.remaining === 3, {
    ms: 5000,
    what: "the window to pass",
  });
  const second = await burst();
  assert.ok(second.passed >= 3 && second.passed <= second.allowed, `3 of 6 pass again after the window (${second.passed})`);
});

test("keys are independent: each client key gets its own limit", async () => {
  const clients = ["ind-a", "ind-b", "ind-c"];
  const results = await Promise.all(
    clients.map(async (c) => (await Promise.all(Array.from({ length: 15 }, () => check("exact", c)))).filter((r) => r.status === 200).length),
  );
  assert.deepEqual(results, [10, 10, 10]);
  // Client IPs (CF-Connecting-IP) are keys too.
  const ip = (addr) => check("by_ip", undefined, { "cf-connecting-ip": addr });
  const a = await Promise.all([ip("203.0.113.1"), ip("203.0.113.1"), ip("203.0.113.1")]);
  const b = await Promise.all([ip("203.0.113.2"), ip("203.0.113.2")]);
  assert.deepEqual(a.map((r) => r.status).sort(), [200, 200, 429]);
  assert.deepEqual(b.map((r) => r.status), [200, 200]);
});

test("a CF-Connecting-IP that is no address is no client address: an ip policy refuses it 400 client_ip_unknown, uncounted", async () => {
  // Before, such a value was keyed as sent (ip:not-an-address): a budget per spelling, while the origin was sent it
  // in X-Forwarded-For. Now every reader takes it as no address (src/client_address.rs).
  for (const sent of ["not-an-address", "203.0.113.90, 10.0.0.1", "203.0.113.90:443"]) {
    const r = await check("by_ip", undefined, { "cf-connecting-ip": sent });
    assert.equal(r.status, 400, sent);
    assert.equal((await r.json()).error.code, "client_ip_unknown", sent);
  }
});

test("behind Cloudflare's Pseudo IPv4 (Overwrite Headers) a client is limited by the /64 of its CF-Connecting-IPv6, not by the class E address hashed from it", async () => {
  // Each address of one /64 gets another pseudo address: counted by those, every request had a fresh budget.
  const pseudo = (n, v6) => check("by_ip", undefined, { "cf-connecting-ip": `240.16.7.${n}`, "cf-connecting-ipv6": v6 });
  const statuses = [];
  for (const [n, v6] of [[1, "2001:db8:77:1::1"], [2, "2001:db8:77:1::2"], [3, "2001:db8:77:1:abcd::3"]]) {
    const r = await pseudo(n, v6);
    statuses.push(r.status);
    await r.arrayBuffer();
  }
  assert.deepEqual(statuses, [200, 200, 429], "one /64, one budget of 2");
  const other = await pseudo(4, "2001:db8:77:2::1");
  assert.equal(other.status, 200, "another /64 has its own");
  await other.arrayBuffer();
  // A client's own CF-Connecting-IPv6 beside a real address chooses nothing.
  const real = (v6) => check("by_ip", undefined, { "cf-connecting-ip": "203.0.113.77", "cf-connecting-ipv6": v6 });
  const chosen = [];
  for (const v6 of ["2001:db8:78::1", "2001:db8:79::1", "2001:db8:7a::1"]) {
    const r = await real(v6);
    chosen.push(r.status);
    await r.arrayBuffer();
  }
  assert.deepEqual(chosen, [200, 200, 429], "limited by the real address");
});

test("a spread of keys uses all N shard objects, each key in the object its hash names", async () => {
  const keys = Array.from({ length: 40 }, (_, i) => `spread-${i}`);
  const statuses = await Promise.all(keys.map(async (k) => (await check("spread", k)).status));
  assert.ok(statuses.every((s) => s === 200));
  const perShard = [];
  for (let shard = 0; shard < 4; shard++) perShard.push((await ping(worker, `spread:${shard}`)).keys);
  assert.ok(perShard.every((n) => n > 0), `every shard holds keys: ${perShard}`);
  assert.equal(perShard.reduce((a, b) => a + b), 40, "each key stored exactly once");
  for (const k of keys.slice(0, 5)) {
    const s = await standing(worker, "spread", apiKeyFor(k), 5, 3600, 4);
    assert.deepEqual([s.stored, s.standing.remaining], [true, 4], `${k} is in ${objectFor("spread", apiKeyFor(k), 4)}`);
  }
});

test("a hot key split over S parts admits at most L and at least L − (S − 1), each part its exact share", async () => {
  for (const [policy, limit, parts] of [["split", 10, 4], ["split_odd", 7, 3]]) {
    const responses = await Promise.all(Array.from({ length: 3 * limit }, () => check(policy, "hot")));
    const admitted = responses.filter((r) => r.status === 200).length;
    assert.ok(admitted <= limit, `${policy}: over-admission: ${admitted} > ${limit}`);
    assert.ok(admitted >= limit - (parts - 1), `${policy}: under-admission beyond the bound: ${admitted}`);
    console.log(`# ${policy}: limit ${limit}, ${parts} parts: admitted ${admitted} of ${3 * limit}`);
    const shares = [];
    for (let part = 0; part < parts; part++) {
      const stateKey = `${apiKeyFor("hot")}\u001f${part}`;
      const share = Math.floor(limit / parts) + (part < limit % parts ? 1 : 0);
      const s = await standing(worker, policy, stateKey, share, 3600, 8);
      shares.push([s.stored, s.standing.remaining]);
    }
    assert.deepEqual(shares, Array.from({ length: parts }, () => [true, 0]), `${policy}: every part spent its share`);
    const more = await Promise.all(Array.from({ length: 5 }, () => check(policy, "hot")));
    assert.ok(more.every((r) => r.status === 429), `${policy}: nothing more passes`);
  }
});

test("fail-open and fail-closed behave as configured when the Durable Object call fails", async () => {
  const cases = [
    ["down_open", 200, "no such binding, fails open"],
    ["wrong_open", 200, "a binding that is not a Durable Object namespace, fails open"],
    ["down_closed", 503, "no such binding, fails closed"],
    ["wrong_closed", 503, "a binding that is not a Durable Object namespace, fails closed"],
  ];
  for (const [policy, status, why] of cases) {
    const response = await check(policy, "client-down");
    assert.equal(response.status, status, why);
    if (status === 200) {
      assert.equal(response.headers.get("ratelimit-policy"), `"${policy}";q=5;w=3600`, why);
      assert.equal(response.headers.get("ratelimit"), null, `${why}: no standing to report`);
      assert.equal((await response.json()).remaining, null, why);
    } else {
      assert.equal(response.headers.get("retry-after"), "1", why);
      const body = await response.json();
      assert.equal(body.error.code, "rate_limit_unavailable", why);
      assert.doesNotMatch(JSON.stringify(body), /RATE_LIMITER_NOT_BOUND|DB/, `${why}: internals stay in the log`);
    }
  }
  await until(() => worker.jsonLogs().some((l) => l.msg === "rate limiter unreachable; failing open" && l.policy === "down_open"), {
    what: "the fail-open warning",
  });
});

test("a limiter object that does not answer is failed open or closed as configured, not waited on", { timeout: 30_000 }, async () => {
  // A real Durable Object that takes every request and answers none within the test (a stuck or overloaded limiter
  // whose queue keeps a request waiting): the request must not wait on it for good — the policy's failure mode
  // decides, as for a limiter that cannot be reached, once the policy's timeout_ms (default 5 s) has passed.
  const STUCK = `export class Stuck {
    async fetch() { await new Promise((resolve) => setTimeout(resolve, 600_000)); return new Response("{}"); }
  }
  export default { fetch() { return new Response("stuck"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const stuck = (failure, timeout) => ({ limit: 5, window: 3600, key: "api_key", binding: "STUCK_LIMITER", failure, check: true, ...timeout });
  const w = await startWorker({
    vars: { RATE_LIMIT_POLICIES: { stuck_open: stuck("open", { timeout_ms: 300 }), stuck_closed: stuck("closed") } },
    workerOptions: { durableObjects: { ...durableObjects, STUCK_LIMITER: { className: "Stuck", scriptName: "stuck" } } },
    extraWorkers: [{ name: "stuck", modules: true, script: STUCK }],
  });
  try {
    const headers = { "x-api-key": "client-stuck" };
    const [open, closed] = await Promise.all([
      w.fetch("/ratelimit/stuck_open/check", { headers }),
      w.fetch("/ratelimit/stuck_closed/check", { headers }),
    ]);
    assert.equal(open.status, 200, "failure = open: allowed");
    assert.equal(open.headers.get("ratelimit"), null, "no standing to report");
    assert.equal((await open.json()).remaining, null);
    assert.equal(closed.status, 503, "failure = closed: refused");
    assert.equal((await closed.json()).error.code, "rate_limit_unavailable");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "rate limiter unreachable; failing open"), {
      what: "the fail-open warning",
    });
    assert.equal(line.policy, "stuck_open");
    assert.equal(line.detail, "no answer in 300 ms", "the policy's own timeout_ms");
  } finally {
    await w.stop();
  }
});

test("a limiter object that let a request wait its whole timeout_ms is not asked again for a while: its shard fails open or closed at once", { timeout: 30_000 }, async () => {
  // Before, every request of a silent shard waited out timeout_ms (5 s by default) before its failure mode decided.
  // The object counts the takes it was sent; it answers none.
  const SILENT = `export class Silent {
    async fetch(request) {
      if (new URL(request.url).pathname === "/takes") return new Response(String(this.takes ?? 0));
      this.takes = (this.takes ?? 0) + 1;
      await new Promise((resolve) => setTimeout(resolve, 600_000));
      return new Response("{}");
    }
  }
  export default { fetch() { return new Response("silent"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const silent = (failure) => ({ limit: 5, window: 3600, key: "api_key", binding: "SILENT_LIMITER", failure, shards: 1, timeout_ms: 300, check: true });
  const w = await startWorker({
    vars: { RATE_LIMIT_POLICIES: { silent_open: silent("open"), silent_closed: silent("closed") } },
    workerOptions: { durableObjects: { ...durableObjects, SILENT_LIMITER: { className: "Silent", scriptName: "silent" } } },
    extraWorkers: [{ name: "silent", modules: true, script: SILENT }],
  });
  try {
    const ns = await w.mf.getDurableObjectNamespace("SILENT_LIMITER");
    const takes = async (object) => Number(await (await ns.get(ns.idFromName(object)).fetch("https://limiter/takes")).text());
    for (const [policy, status] of [["silent_open", 200], ["silent_closed", 503]]) {
      const statuses = [];
      const retryAfter = [];
      for (const client of ["first", "second", "third"]) {
        const r = await w.fetch(`/ratelimit/${policy}/check`, { headers: { "x-api-key": `client-${client}` } });
        statuses.push(r.status);
        retryAfter.push(r.headers.get("retry-after"));
        await r.arrayBuffer();
      }
      assert.deepEqual(statuses, [status, status, status], `${policy}: the failure mode decides each`);
      assert.equal(await takes(`${policy}:0`), 1, `${policy}: only the first request waited on the silent object`);
      if (status === 503) {
        // The isolate asks the object again only once its silence (SILENT_FOR_MS, 10 s) is over: each 503 until then
        // says so, rather than `Retry-After: 1` to a client whose retry meets the same 503 at once.
        for (const [i, seconds] of retryAfter.entries()) {
          assert.ok(Number(seconds) > 1 && Number(seconds) <= 10, `${policy}, request ${i + 1}: Retry-After ${seconds}`);
        }
      }
    }
    const lines = await until(() => {
      const found = w.jsonLogs().filter((l) => l.msg === "rate limiter unreachable; failing open" && l.policy === "silent_open");
      return found.length === 3 && found;
    }, { what: "a fail-open warning for each request" });
    assert.equal(lines[0]?.detail, "no answer in 300 ms");
    assert.match(lines[1]?.detail ?? "", /^silent: /, "the others say why they did not ask");
  } finally {
    await w.stop();
  }
});

// A limiter object that holds every take it is sent until released (POST /release), then hands it to the real
// RateLimiter object `held:0` and answers what that one answered: a limiter whose queue keeps requests waiting.
const HELD = `export class Held {
  constructor(state, env) { this.env = env; this.held = []; this.forwarded = 0; this.deadline = 0; }
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/held") return new Response(String(this.held.length));
    if (path === "/forwarded") return new Response(String(this.forwarded));
    if (path === "/deadline") return new Response(String(this.deadline));
    if (path === "/release") { for (const release of this.held.splice(0)) release(); return new Response("released"); }
    const body = await request.text();
    this.deadline = Math.max(this.deadline, JSON.parse(body).deadline_ms ?? 0);
    await new Promise((resolve) => this.held.push(resolve));
    const limiter = this.env.LIMITER.get(this.env.LIMITER.idFromName("held:0"));
    const answer = await limiter.fetch("https://ratelimiter/take", { method: "POST", body });
    const text = await answer.text();
    this.forwarded++;
    return new Response(text, { status: answer.status });
  }
}
export default { fetch() { return new Response("held"); } };`;

/** A Worker whose policies may name binding HELD_LIMITER (a {@link HELD} object); `held(object)` drives one. */
async function startHeld(vars) {
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars,
    workerOptions: { durableObjects: { ...durableObjects, HELD_LIMITER: { className: "Held", scriptName: "held" } } },
    extraWorkers: [
      { name: "held", modules: true, script: HELD, durableObjects: { LIMITER: { className: "RateLimiter", scriptName: "edgekit" } } },
    ],
  });
  const ns = await w.mf.getDurableObjectNamespace("HELD_LIMITER");
  const ask = async (object, path) => (await ns.get(ns.idFromName(object)).fetch(`https://held${path}`)).text();
  const held = (object) => ({
    /** Waits until the object holds `n` takes. */
    holding: (n) => until(async () => (await ask(object, "/held")) === String(n), { what: `${object} holding ${n}` }),
    /** Waits until the latest deadline a take it holds carries (ms since the epoch; 0 for none) has passed. */
    pastDeadline: async () => {
      const deadline = Number(await ask(object, "/deadline"));
      await until(() => Date.now() > deadline, { what: `${object}: its takes' deadline passed` });
    },
    /** Releases what it holds and waits until `n` takes in all were decided by `held:0`. */
    release: async (n) => {
      await ask(object, "/release");
      await until(async () => (await ask(object, "/forwarded")) === String(n), { what: `${object}: ${n} takes decided` });
    },
  });
  return { w, held };
}

test("failing closed, a request refused 503 because its limiter was late spends no quota when the take lands after", { timeout: 30_000 }, async () => {
  // A limiter whose queue holds a take past timeout_ms still decides it when it gets to it: a client refused 503
  // lost quota too. The take now carries the time the Worker stops waiting, and the object spends nothing after it.
  // Failing open, the request passed, so a late take is counted.
  const policy = (failure) => ({ limit: 5, window: 3600, key: "api_key", binding: "HELD_LIMITER", failure, shards: 1, timeout_ms: 300, check: true });
  const { w, held } = await startHeld({ RATE_LIMIT_POLICIES: { held_open: policy("open"), held_closed: policy("closed") } });
  try {
    for (const [name, status, remaining] of [["held_closed", 503, 5], ["held_open", 200, 4]]) {
      const r = await w.fetch(`/ratelimit/${name}/check`, { headers: { "x-api-key": `client-${name}` } });
      assert.equal(r.status, status, `${name}: the failure mode decided`);
      await r.arrayBuffer();
      const object = held(`${name}:0`);
      await object.holding(1);
      // Past the deadline the take carries (the Worker's timeout plus a margin for the object's clock).
      await object.pastDeadline();
      await object.release(1);
      const s = await standing(w, "held", apiKeyFor(`client-${name}`), 5, 3600, 1);
      assert.equal(s.standing.remaining, remaining, `${name}: ${remaining === 5 ? "no quota spent by a request refused 503" : "the request that passed is counted"}`);
    }
  } finally {
    await w.stop();
  }
});

test("a limiter object whose answer arrives after timeout_ms is alive: the next request asks it again, not the failure mode for 10 s", { timeout: 30_000 }, async () => {
  // One slow answer (here held past the 300 ms timeout, then released) marked its object silent for SILENT_FOR_MS:
  // for 10 s every request of that shard got the failure mode's answer at once (uncounted failing open, 503 failing
  // closed) from a limiter that was working. The late answer now cuts the mark short: the next request probes it.
  const policy = (failure) => ({ limit: 5, window: 3600, key: "api_key", binding: "HELD_LIMITER", failure, shards: 1, timeout_ms: 300, check: true });
  const { w, held } = await startHeld({ RATE_LIMIT_POLICIES: { late_open: policy("open"), late_closed: policy("closed") } });
  try {
    for (const [name, status] of [["late_open", 200], ["late_closed", 503]]) {
      const object = held(`${name}:0`);
      const first = await w.fetch(`/ratelimit/${name}/check`, { headers: { "x-api-key": `first-${name}` } });
      assert.equal(first.status, status, `${name}: no answer within timeout_ms, the failure mode decided`);
      await first.arrayBuffer();
      await object.holding(1);
      await object.release(1);
      const late = await until(() => w.jsonLogs().find((l) => l.msg === "rate limiter answered after its timeout" && l.policy === name), {
        what: `${name}: the late answer's log line`,
      });
      assert.equal(late.object, `${name}:0`);
      // The object is asked again: it holds the next take (before, the request was failed at once, asking no one).
      const next = w.fetch(`/ratelimit/${name}/check`, { headers: { "x-api-key": `next-${name}` } });
      await object.holding(1);
      const answered = await next;
      assert.equal(answered.status, status, `${name}: held past timeout_ms too`);
      await answered.arrayBuffer();
      await object.release(2);
    }
    const details = w.jsonLogs().filter((l) => l.msg === "rate limiter unreachable; failing open" && l.policy === "late_open").map((l) => l.detail);
    assert.deepEqual(details, ["no answer in 300 ms", "no answer in 300 ms"], "both requests asked the object");
  } finally {
    await w.stop();
  }
});

test("a refusal that arrives after timeout_ms is remembered: the isolate refuses the key until its retry time, asking no one", { timeout: 30_000 }, async () => {
  // The late answer was watched only to end the object's silence: a refusal in it (the key is over its limit) was
  // dropped, so the next request of that key asked the slow object again (and, failing open, passed uncounted after
  // waiting out timeout_ms), where a refusal that arrived in time is refused by the isolate with no round trip.
  const { w, held } = await startHeld({
    RATE_LIMIT_POLICIES: { slow: { limit: 1, window: 3600, key: "api_key", binding: "HELD_LIMITER", failure: "open", shards: 1, timeout_ms: 300, check: true } },
  });
  try {
    const object = held("slow:0");
    const headers = { "x-api-key": "slow-client" };
    const lateLines = () => w.jsonLogs().filter((l) => l.msg === "rate limiter answered after its timeout" && l.policy === "slow");
    for (const n of [1, 2]) {
      const r = await w.fetch("/ratelimit/slow/check", { headers });
      assert.equal(r.status, 200, `request ${n}: no answer within timeout_ms, failing open`);
      await r.arrayBuffer();
      await object.holding(1);
      await object.release(n);
      await until(() => lateLines().length === n, { what: `request ${n}'s late answer` });
    }
    const s = await standing(w, "held", apiKeyFor("slow-client"), 1, 3600, 1);
    assert.equal(s.standing.remaining, 0, "the first take spent the quota; the second was refused");
    const third = await w.fetch("/ratelimit/slow/check", { headers });
    const body = await third.text();
    assert.equal(third.status, 429, `the late refusal is remembered: ${body}`);
    const ns = await w.mf.getDurableObjectNamespace("HELD_LIMITER");
    assert.equal(await (await ns.get(ns.idFromName("slow:0")).fetch("https://held/held")).text(), "0", "the object was not asked");
  } finally {
    await w.stop();
  }
});

test("failing closed, a take is not refused as past its deadline by an object whose clock runs a little ahead of the Worker's", { timeout: 30_000 }, async () => {
  // The take carried the Worker's own `now + timeout_ms` as its deadline, and the object judges it by its clock: one
  // ahead of the Worker's (or a Worker clock that stood still while it computed: it advances with I/O) by more than
  // the time left refused a take the Worker was still waiting for, "past its deadline", and the client got 503 from
  // a working limiter. Here a proxy stands for an object whose clock runs 150 ms ahead, under a 100 ms timeout:
  // it moves the deadline 150 ms earlier, which is the same.
  const SKEWED = `export class Skewed {
    constructor(state, env) { this.env = env; }
    async fetch(request) {
      const take = await request.json();
      if (take.deadline_ms !== undefined) take.deadline_ms -= 150;
      const limiter = this.env.LIMITER.get(this.env.LIMITER.idFromName("skewed:0"));
      const answer = await limiter.fetch("https://ratelimiter/take", { method: "POST", body: JSON.stringify(take) });
      return new Response(await answer.text(), { status: answer.status });
    }
  }
  export default { fetch() { return new Response("skewed"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: { RATE_LIMIT_POLICIES: { skewed: { limit: 5, window: 3600, key: "api_key", binding: "SKEWED_LIMITER", failure: "closed", shards: 1, timeout_ms: 100, check: true } } },
    workerOptions: { durableObjects: { ...durableObjects, SKEWED_LIMITER: { className: "Skewed", scriptName: "skewed" } } },
    extraWorkers: [
      { name: "skewed", modules: true, script: SKEWED, durableObjects: { LIMITER: { className: "RateLimiter", scriptName: "edgekit" } } },
    ],
  });
  try {
    const r = await w.fetch("/ratelimit/skewed/check", { headers: { "x-api-key": "client-skewed" } });
    const body = await r.text();
    assert.equal(r.status, 200, `decided by the object, not refused as late: ${body}`);
    assert.equal(JSON.parse(body).remaining, 4);
  } finally {
    await w.stop();
  }
});

test("a take's deadline is checked when the object decides it, not when its request began: a take whose body lands after its deadline spends nothing", { timeout: 30_000 }, async () => {
  // The object read the clock as the request began, then awaited its body: a take it decided past the Worker's
  // deadline (the Worker already answered 503) was judged by the earlier time and spent the client's quota. Here a
  // sender starts the take at once and sends its body 600 ms later, 400 ms past the 200 ms deadline it carries.
  const SENDER = `export class Sender {
    constructor(state, env) { this.env = env; }
    async fetch(request) {
      const { key } = await request.json();
      const { readable, writable } = new TransformStream();
      const limiter = this.env.LIMITER.get(this.env.LIMITER.idFromName("late:0"));
      const answer = limiter.fetch("https://ratelimiter/take", { method: "POST", body: readable });
      const deadline_ms = Date.now() + 200;
      await new Promise((resolve) => setTimeout(resolve, 600));
      const writer = writable.getWriter();
      await writer.write(new TextEncoder().encode(JSON.stringify({ key, limit: 5, window_ms: 3600000, deadline_ms })));
      await writer.close();
      const reply = await answer;
      return new Response(await reply.text(), { status: reply.status });
    }
  }
  export default { fetch() { return new Response("sender"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    workerOptions: { durableObjects: { ...durableObjects, SENDER: { className: "Sender", scriptName: "sender" } } },
    extraWorkers: [
      { name: "sender", modules: true, script: SENDER, durableObjects: { LIMITER: { className: "RateLimiter", scriptName: "edgekit" } } },
    ],
  });
  try {
    const ns = await w.mf.getDurableObjectNamespace("SENDER");
    const key = "key:late-body";
    const r = await ns.get(ns.idFromName("sender")).fetch("https://sender/", { method: "POST", body: JSON.stringify({ key }) });
    const text = await r.text();
    assert.equal(r.status, 503, `past its deadline when decided: ${text}`);
    assert.match(text, /past its deadline; nothing spent/);
    const s = await standing(w, "late", key, 5, 3600, 1);
    assert.deepEqual([s.stored, s.standing.remaining], [false, 5], "nothing spent");
  } finally {
    await w.stop();
  }
});

test("a failed credential's count does not hold its answer, and still lands: an unknown cookie is answered 401 while the limiter holds its count", { timeout: 20_000 }, async () => {
  // SESSION_IP_POLICY counts cached checks that find no session. The count was awaited before the 401 (and before a
  // page rendered as anonymous for a visitor with a dead cookie): a round trip, and up to timeout_ms (here 30 s)
  // when the limiter was slow. Now it is made after the response; a refusal it meets is still remembered.
  const { w, held } = await startHeld({
    SESSION_IP_POLICY: "held-ip",
    RATE_LIMIT_POLICIES: { "held-ip": { limit: 1, window: 3600, key: "ip", binding: "HELD_LIMITER", shards: 1, timeout_ms: 30_000 } },
  });
  try {
    const object = held("held-ip:0");
    const miss = () =>
      w.fetch("/auth/session", { headers: { "cf-connecting-ip": "198.51.100.44", cookie: `__Host-edgekit_session=${randomBytes(32).toString("base64url")}` } });
    for (const n of [1, 2]) {
      const r = await miss();
      assert.equal(r.status, 401, `miss ${n} answered while its count is held`);
      await r.arrayBuffer();
      await object.holding(1);
      await object.release(n);
    }
    const s = await standing(w, "held", "unknown-credentials:ip:198.51.100.44", 1, 3600, 1);
    assert.deepEqual([s.stored, s.standing.remaining], [true, 0], "both misses were counted");
    await until(() => w.jsonLogs().some((l) => l.msg === "rate limit exceeded by a request counted after its response" && l.policy === "held-ip"), {
      what: "the second count's refusal",
    });
    const refused = await miss();
    assert.equal(refused.status, 429, "the isolate remembers the refusal the second count met");
    await refused.arrayBuffer();
  } finally {
    await w.stop();
  }
});

test("a count after the response that this isolate refuses from memory is logged as uncounted, not as a count the limiter refused", { timeout: 30_000 }, async () => {
  // A room join with a ticket the room refuses is counted against its address after the answer. A join that passed
  // the address's budget check while another's refusal was on its way met that refusal in the isolate's memory when
  // its own count ran: no object was asked and nothing counted, yet the log said "rate limit exceeded by a request
  // counted after its response". Here the room holds one join's answer until the address is over its budget.
  const HELD_ROOM = `export class HeldRoom {
    constructor() { this.held = []; }
    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === "/held") return new Response(String(this.held.length));
      if (url.pathname === "/release") { for (const release of this.held.splice(0)) release(); return new Response("released"); }
      if (url.searchParams.get("ticket") === "hold") await new Promise((resolve) => this.held.push(resolve));
      return new Response("unknown ticket", { status: 401 });
    }
  }
  export default { fetch() { return new Response("held room"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: { SESSION_IP_POLICY: "session-ip", RATE_LIMIT_POLICIES: { "session-ip": { limit: 1, window: 3600, key: "ip", shards: 1 } } },
    workerOptions: { durableObjects: { ...durableObjects, ROOMS: { className: "HeldRoom", scriptName: "held-room" } } },
    extraWorkers: [{ name: "held-room", modules: true, script: HELD_ROOM }],
  });
  try {
    const ns = await w.mf.getDurableObjectNamespace("ROOMS");
    const room = ns.get(ns.idFromName("room:held"));
    // A join as a WebSocket client sends it (fetch refuses an Upgrade header): its answer's status.
    const joinWith = (ticket) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${w.url.href.replace(/^http/, "ws")}rooms/held/ws?ticket=${ticket}`, { headers: { "cf-connecting-ip": "198.51.100.61" } });
        ws.on("unexpected-response", (_req, res) => {
          res.resume();
          res.on("end", () => {
            resolve(res.statusCode);
            ws.terminate();
          });
        });
        ws.on("open", () => reject(new Error("the held room never opens a socket")));
        ws.on("error", () => {});
      });
    const exceeded = () => w.jsonLogs().filter((l) => l.msg === "rate limit exceeded by a request counted after its response");
    const held = joinWith("hold");
    await until(async () => (await (await room.fetch("https://room/held")).text()) === "1", { what: "the room holding a join" });
    for (const [n, ticket] of [[1, "made-up-1"], [2, "made-up-2"]]) {
      assert.equal(await joinWith(ticket), 401, `join ${n}: refused by the room`);
    }
    // The second count met the limit at the object: a count that was made, and refused.
    await until(() => exceeded().length === 1, { what: "the second count's refusal" });
    await room.fetch("https://room/release");
    assert.equal(await held, 401, "the held join, refused by the room");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "rate limit exceeded: a request was not counted after its response"), {
      what: "the held join's count, refused by the isolate",
    });
    assert.equal(line.policy, "session-ip");
    assert.equal(exceeded().length, 1, "only the count the limiter refused says it was counted");
    const s = await standing(w, "session-ip", "unknown-credentials:ip:198.51.100.61", 1, 3600, 1);
    assert.deepEqual([s.stored, s.standing.remaining], [true, 0]);
  } finally {
    await w.stop();
  }
});

test("a count after the response that its limiter fails is logged, open or closed: an uncounted credential failure is never silent", async (t) => {
  // SESSION_IP_POLICY counts unknown credentials after the answer. A limiter that failed such a count under
  // `failure = "closed"` (503) or answered it 500 (a binding naming another object class, open or closed) left no line
  // at all: the answer had gone out, and only a 429 was logged — the budget stopped counting and nothing said so.
  const cases = [
    ["uncounted-closed", { binding: "RATE_LIMITER_NOT_BOUND", failure: "closed" }, "198.51.100.71", 503],
    ["uncounted-wrong", { binding: "ROOM_DIRECTORY", failure: "open" }, "198.51.100.72", 500],
  ];
  for (const [policy, extra, ip, status] of cases) {
    const w = await startWorker({
      vars: { SESSION_IP_POLICY: policy, RATE_LIMIT_POLICIES: { [policy]: { limit: 5, window: 3600, key: "ip", shards: 1, ...extra } } },
    });
    t.after(() => w.stop());
    const r = await w.fetch("/auth/session", {
      headers: { "cf-connecting-ip": ip, cookie: `__Host-edgekit_session=${randomBytes(32).toString("base64url")}` },
    });
    assert.equal(r.status, 401, `${policy}: the unknown cookie's answer`);
    await r.arrayBuffer();
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "rate limiter failed a request counted after its response"), {
      what: `${policy}: the lost count's line`,
    });
    assert.deepEqual([line.policy, line.status], [policy, status]);
    assert.match(line.detail, new RegExp(`policy ${policy} object`), `${policy}: the detail names the policy and object`);
  }
});

test("with RATE_LIMIT_SHARD_KEY a key's shard is HMAC-SHA256(secret, key) mod shards: one who knows the code cannot choose keys that share a shard", async () => {
  // FNV-1a is public: keys minted to land in one shard piled their load on one object.
  const secret = "a-deployment-secret-of-32-bytes!";
  const keyed = (stateKey, shards) => createHmac("sha256", secret).update(stateKey).digest().readBigUInt64BE(0) % BigInt(shards);
  const w = await startWorker({
    vars: { RATE_LIMIT_SHARD_KEY: secret, RATE_LIMIT_POLICIES: { keyed: api(5, { shards: 16 }) } },
  });
  try {
    const client = Array.from({ length: 20 }, (_, i) => `keyed-${i}`).find(
      (c) => `keyed:${keyed(apiKeyFor(c), 16)}` !== objectFor("keyed", apiKeyFor(c), 16),
    );
    const r = await w.fetch("/ratelimit/keyed/check", { headers: { "x-api-key": client } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const ns = await w.mf.getDurableObjectNamespace("RATE_LIMITER");
    const body = JSON.stringify({ key: apiKeyFor(client), limit: 5, window_ms: 3600 * 1000 });
    const at = async (object) => (await ns.get(ns.idFromName(object)).fetch("https://ratelimiter/standing", { method: "POST", body })).json();
    const inKeyed = await at(`keyed:${keyed(apiKeyFor(client), 16)}`);
    assert.deepEqual([inKeyed.stored, inKeyed.standing.remaining], [true, 4], "state in the object the keyed hash names");
    assert.equal((await at(objectFor("keyed", apiKeyFor(client), 16))).stored, false, "none in the one FNV-1a names");
  } finally {
    await w.stop();
  }
  const short = await startWorker({ vars: { RATE_LIMIT_SHARD_KEY: "short" } });
  try {
    const r = await short.fetch("/ratelimit/public/check", { headers: { "cf-connecting-ip": "203.0.113.80" } });
    assert.equal(r.status, 500);
    const { error } = await r.json();
    assert.equal(error.code, "config_invalid");
    assert.match(error.message, /RATE_LIMIT_SHARD_KEY/);
  } finally {
    await short.stop();
  }
});

test("a key known to be exhausted is refused by the isolate without a round trip", async () => {
  const key = apiKeyFor("client-cheap");
  const object = objectFor("cheap", key, 1);
  const first = await Promise.all(Array.from({ length: 3 }, () => check("cheap", "client-cheap")));
  assert.deepEqual(first.map((r) => r.status).sort(), [200, 200, 429], "the object decided 3 requests");
  assert.equal((await ping(worker, object)).takes, 3, "3 round trips so far");
  const later = [];
  for (let i = 0; i < 5; i++) later.push(await check("cheap", "client-cheap"));
  assert.ok(later.every((r) => r.status === 429), "still refused");
  for (const r of later) {
    assert.match(r.headers.get("ratelimit"), /^"cheap";r=0;t=\d+$/, "the same headers as the object's refusal");
    assert.ok(Number(r.headers.get("retry-after")) >= 1);
  }
  assert.equal((await ping(worker, object)).takes, 3, "no further round trip: refused from the isolate's memory");
});

test("unknown policies and missing API keys are refused clearly", async () => {
  const cases = [
    ["/ratelimit/nope/check", {}, 404, "unknown_policy"],
    ["/ratelimit/unchecked/check", { "cf-connecting-ip": "203.0.113.9" }, 404, "unknown_policy"],
    ["/ratelimit/exact/check", {}, 401, "api_key_required"],
  ];
  for (const [path, headers, status, code] of cases) {
    const response = await worker.fetch(path, { headers });
    assert.equal(response.status, status, path);
    assert.equal((await response.json()).error.code, code, path);
  }
});

test("a missing API key or user is not answered as an invalid bearer token", async () => {
  // RFC 6750 §3.1: `invalid_token` says the bearer token sent is expired, revoked or malformed, and OAuth clients
  // answer it by refreshing the token and retrying. A client whose valid token went with a request lacking the API
  // key a limit needs must not be told that: the challenge names what is missing.
  const keyless = await worker.fetch("/ratelimit/exact/check", { headers: { authorization: "Bearer a.valid.token" } });
  assert.equal(keyless.status, 401);
  assert.equal((await keyless.json()).error.code, "api_key_required");
  assert.equal(keyless.headers.get("www-authenticate"), 'ApiKey header="x-api-key"');
});

test("a policy keyed by user is not served by the check route, which has no user: refused at start-up", async () => {
  // The route verifies no one: such a policy answered every request 401 with a Bearer challenge, and a client that
  // sent a valid token as challenged got the same 401 again.
  const refused = await startWorker({
    vars: { RATE_LIMIT_POLICIES: { by_user: { limit: 2, window: 3600, key: "user", check: true } } },
  });
  try {
    const r = await refused.fetch("/ratelimit/by_user/check", { headers: { authorization: "Bearer a.valid.token" } });
    assert.equal(r.status, 500);
    const { error } = await r.json();
    assert.equal(error.code, "config_invalid");
    assert.match(error.message, /no signed-in user/);
  } finally {
    await refused.stop();
  }
});

test("a route's limits replace the origin's RateLimit fields, also when failing open", async () => {
  const up = await worker.fetch("/gw/up", { headers: { "x-api-key": "client-gw-up" } });
  assert.equal(up.status, 200);
  assert.equal(await up.text(), "from the origin");
  assert.equal(up.headers.get("ratelimit-policy"), '"exact";q=10;w=3600');
  assert.match(up.headers.get("ratelimit"), /^"exact";r=9;t=\d+$/);
  // Failing open, the gateway knows its policy but not the standing: the origin's `RateLimit` (about a policy the
  // answer no longer lists) must not be left to read as the gateway's.
  const down = await worker.fetch("/gw/down", { headers: { "x-api-key": "client-gw-down" } });
  assert.equal(down.status, 200);
  assert.equal(await down.text(), "from the origin");
  assert.equal(down.headers.get("ratelimit-policy"), '"down_open";q=5;w=3600');
  assert.equal(down.headers.get("ratelimit"), null, "no standing is known, so none is reported");
});

test("a request counted by a route's limit and then failed by the gateway (origin unreachable) says where the client stands", async () => {
  // The limit spent one of the client's requests: the 502 says so, as an answer from the origin would.
  const r = await worker.fetch("/gw/unreachable", { headers: { "x-api-key": "client-gw-unreachable" } });
  assert.equal(r.status, 502);
  assert.equal((await r.json()).error.code, "bad_gateway");
  assert.equal(r.headers.get("ratelimit-policy"), '"exact";q=10;w=3600');
  assert.match(r.headers.get("ratelimit") ?? "", /^"exact";r=9;t=\d+$/);
  const unlimited = await worker.fetch("/gw/nowhere");
  assert.equal(unlimited.status, 502);
  await unlimited.arrayBuffer();
  assert.equal(unlimited.headers.get("ratelimit-policy"), null, "a route without limits: no empty field");
  assert.equal(unlimited.headers.get("ratelimit"), null);
});

test("a counted request the origin answers too late (504) says where the client stands", async () => {
  const r = await worker.fetch("/gw/late", { headers: { "x-api-key": "client-gw-late" } });
  for (const release of heldAnswers.splice(0)) release();
  assert.equal(r.status, 504);
  assert.equal((await r.json()).error.code, "gateway_timeout");
  assert.equal(r.headers.get("ratelimit-policy"), '"exact";q=10;w=3600');
  assert.match(r.headers.get("ratelimit") ?? "", /^"exact";r=9;t=\d+$/);
});

test("a CORS preflight counted by a route's address limit and then failed by the gateway (502) says where the client stands", async () => {
  const r = await worker.fetch("/gw/ip-unreachable", {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "GET", "cf-connecting-ip": "198.51.100.61" },
  });
  assert.equal(r.status, 502);
  assert.equal((await r.json()).error.code, "bad_gateway");
  assert.equal(r.headers.get("ratelimit-policy"), '"unchecked";q=2;w=3600');
  assert.match(r.headers.get("ratelimit") ?? "", /^"unchecked";r=1;t=\d+$/);
});

test("state survives a restart with persistence on", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-ratelimit-"));
  const { cpSync } = await import("node:fs");
  const { migratedTemplate } = await import("./support/worker.mjs");
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const vars = { RATE_LIMIT_POLICIES: { persist: api(3) } };
  try {
    const first = await startWorker({ vars, stateDir });
    const statuses = [];
    try {
      for (let i = 0; i < 2; i++) statuses.push((await first.fetch("/ratelimit/persist/check", { headers: { "x-api-key": "p" } })).status);
    } finally {
      await first.stop();
    }
    assert.deepEqual(statuses, [200, 200]);
    const second = await startWorker({ vars, stateDir });
    try {
      const after = [];
      for (let i = 0; i < 3; i++) {
        const r = await second.fetch("/ratelimit/persist/check", { headers: { "x-api-key": "p" } });
        after.push([r.status, r.headers.get("ratelimit")?.replace(/;t=\d+$/, "")]);
      }
      assert.deepEqual(after, [[200, '"persist";r=0'], [429, '"persist";r=0'], [429, '"persist";r=0']], "2 of 3 were spent before the restart");
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("expired keys are removed by the object's alarm", async () => {
  const key = apiKeyFor("client-alarm");
  assert.equal((await check("sweep", "client-alarm")).status, 200);
  const object = objectFor("sweep", key, 1);
  assert.equal((await ping(worker, object)).keys, 1, "stored after a pass (limit 1 per 1 s: kept for 1 s)");
  // The row is deleted, not just expired, once the alarm has run: the object's key count drops to 0.
  await until(async () => (await ping(worker, object)).keys === 0, { ms: 5000, what: "the alarm to sweep the expired key" });
  assert.equal((await standing(worker, "sweep", key, 1, 1, 1)).stored, false);
});

test("a take the limiter object finds past its deadline, while the Worker still waits, is logged as clock skew with the skew in ms", { timeout: 30_000 }, async () => {
  // The real RateLimiter's answer to such a take, from an object whose clock runs 10 minutes ahead of the Worker's:
  // the Worker got its answer well within timeout_ms, so only the two clocks can disagree. It was logged as any
  // limiter failure ("object answered 503: …"), which sends an operator looking for a broken limiter. A proxy stands
  // for the clock (it moves the take's deadline 10 minutes earlier, which is the same) and hands the take to the real
  // object, whose answer — status, headers, body — it passes back as it is: the object's x-ratelimit-late-ms is its own.
  const AHEAD = `export class Ahead {
    constructor(state, env) { this.env = env; }
    async fetch(request) {
      const take = await request.json();
      if (take.deadline_ms !== undefined) take.deadline_ms -= 600_000;
      const limiter = this.env.LIMITER.get(this.env.LIMITER.idFromName("ahead:0"));
      const answer = await limiter.fetch("https://ratelimiter/take", { method: "POST", body: JSON.stringify(take) });
      return new Response(answer.body, { status: answer.status, headers: answer.headers });
    }
  }
  export default { fetch() { return new Response("ahead"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: {
      RATE_LIMIT_POLICIES: {
        ahead_closed: { limit: 5, window: 3600, key: "api_key", binding: "AHEAD_LIMITER", failure: "closed", timeout_ms: 2000, check: true },
      },
    },
    workerOptions: { durableObjects: { ...durableObjects, AHEAD_LIMITER: { className: "Ahead", scriptName: "ahead" } } },
    extraWorkers: [
      { name: "ahead", modules: true, script: AHEAD, durableObjects: { LIMITER: { className: "RateLimiter", scriptName: "edgekit" } } },
    ],
  });
  try {
    const id = `skew-${randomBytes(4).toString("hex")}`;
    const r = await w.fetch("/ratelimit/ahead_closed/check", { headers: { "x-api-key": "client-skew", "x-request-id": id } });
    assert.equal(r.status, 503, "refused as before: failure = closed");
    assert.equal((await r.json()).error.code, "rate_limit_unavailable");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "rate limiter clock ahead of the Worker's" && l.request_id === id), {
      what: () => `the clock skew line (seen: ${JSON.stringify(w.jsonLogs().filter((l) => l.request_id === id))})`,
    });
    assert.equal(line.policy, "ahead_closed");
    // At least the object's lead less the Worker's wait and margin; at most its lead.
    assert.ok(line.skew_ms >= 600_000 - 2_000 - 250 - 5_000 && line.skew_ms <= 600_000, `skew_ms ${line.skew_ms}`);
    assert.ok(line.late_ms >= 600_000 - 2_000 - 250 - 5_000 && line.late_ms <= 600_000, `late_ms ${line.late_ms}`);
    assert.equal((await ping(w, "ahead:0")).keys, 0, "the object spent nothing");
  } finally {
    await w.stop();
  }
});

test("a panic in a rate limiter object: the request waiting on it is answered 500 and logged, and the object's next take counts on the state it stored", async (t) => {
  // The limiter had no debug panic: nothing showed that a panic in it is answered, logged and recovered from.
  const w = await startWorker({ vars: { RATE_LIMIT_POLICIES: { panicky: api(5, { shards: 1 }) } } });
  t.after(() => w.stop());
  const check = async () => {
    const r = await w.fetch("/ratelimit/panicky/check", { headers: { "x-api-key": "panicky-client" } });
    await r.arrayBuffer();
    return `${r.status} ${r.headers.get("ratelimit")}`;
  };
  assert.match(await check(), /^200 "panicky";r=4;t=\d+$/);
  for (const query of ["in=ratelimiter&policy=no-such", "in=ratelimiter", "in=ratelimiter&policy=panicky&shard=1"]) {
    const refused = await w.fetch(`/__debug/panic?${query}`);
    assert.deepEqual([refused.status, (await refused.json()).error.code], [400, "invalid_parameter"], `${query}: no such object`);
  }

  const panic = await panicInObject(w, "in=ratelimiter&policy=panicky", "limiter-panic");
  assert.match(panic.location, /^durable_objects\/src\/ratelimit\/object\.rs:/, "the panic is the object's");
  assert.match(panic.panic, /deliberate panic in the rate limiter \(request "limiter-panic"\)/);

  // A new instance of the object answers the next take, on the state stored before the panic.
  assert.match(await check(), /^200 "panicky";r=3;t=\d+$/, "the next take is decided and counted");
  // The object's debug path without the Worker's flag (a request no DEBUG_ROUTES Worker sent) is its 404.
  const ns = await w.mf.getDurableObjectNamespace("RATE_LIMITER");
  const stub = ns.get(ns.idFromName("panicky:0"));
  for (const [what, headers] of [["no flag", {}], ["flag off", { "x-edgekit-debug-routes": "off" }], ["not the exact value", { "x-edgekit-debug-routes": "true" }]]) {
    const r = await stub.fetch("https://ratelimiter/__debug/panic", { method: "POST", headers });
    assert.equal(r.status, 404, what);
    await r.arrayBuffer();
  }
  assert.equal(w.jsonLogs().filter((l) => l.msg === "panic").length, 1, "only the debug route's request panicked");
});
