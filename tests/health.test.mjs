// Health and bindings (src/health): /health answers from memory; /health/ready proves every binding declared in
// wrangler.toml answers from the real runtime: KV, D1 (migrated by wrangler) and a SQLite-backed Durable Object.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, until } from "./support/worker.mjs";

let worker;
before(async () => {
  worker = await startWorker();
});
after(() => worker?.stop());

test("/health returns name, version and build id without touching a binding", async () => {
  const response = await worker.fetch("/health");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /application\/json/);
  const body = await response.json();
  assert.equal(body.status, "ok");
  assert.equal(body.name, "edgekit");
  assert.match(body.version, /^\d+\.\d+\.\d+$/);
  assert.ok(body.build.length > 0, "build id present");
});

test("/health/ready checks KV, D1 and the Durable Object, and the object's SQLite count persists", async () => {
  const first = await worker.fetch("/health/ready");
  assert.equal(first.status, 200);
  const body = await first.json();
  assert.equal(body.ready, true);
  assert.deepEqual(body.checks.map((c) => [c.binding, c.ok]), [
    ["CONFIG_KV", true],
    ["CONTENT_KV", true],
    ["DB", true],
    ["RATE_LIMITER", true],
    ["ROOMS", true],
    ["ROOM_DIRECTORY", true],
  ]);
  // The probe is unauthenticated and writes to the object: within a few seconds an isolate answers from its last
  // check instead of checking again (the count below stays at one ping from the Worker).
  const again = await worker.fetch("/health/ready");
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), body);
  // The rate limiter's readiness object stored the ping in SQLite: a second ping through the runtime's own
  // namespace API sees the first.
  const ns = await worker.mf.getDurableObjectNamespace("RATE_LIMITER");
  const stub = ns.get(ns.idFromName("ratelimit:readiness"));
  const reply = await (await stub.fetch("https://ratelimiter/ping", { method: "POST" })).json();
  assert.equal(reply.pings, 2, "one ping from /health/ready, one from this test");
});

test("probes and counts say Cache-Control: no-store, so no browser or CDN answers one from its cache", async (t) => {
  // Without it a 200 is heuristically cacheable (RFC 9111 §4.2.2): a cached /health/ready would say ready for a
  // Worker whose bindings now fail, a cached rate-limit check a standing long spent.
  for (const path of ["/health", "/health/ready", "/ratelimit/public/check", "/__debug/coalesce", "/__debug/ratelimit/public/unlimited"]) {
    const response = await worker.fetch(path, { headers: { "cf-connecting-ip": "203.0.113.9" } });
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get("cache-control"), "no-store", path);
    await response.arrayBuffer();
  }
  // The 503 too.
  const failing = await startWorker({ vars: { RATE_LIMIT_POLICIES: { typo: { limit: 5, window: 60, key: "ip", binding: "DB" } } } });
  t.after(() => failing.stop());
  const response = await failing.fetch("/health/ready");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("cache-control"), "no-store");
});

test("D1 has the migrated schema and KV round-trips through the bindings from wrangler.toml", async () => {
  const db = await worker.mf.getD1Database("DB");
  const row = await db.prepare("SELECT value FROM edge_meta WHERE key = 'schema'").first();
  assert.equal(row.value, "edgekit");
  const kv = await worker.mf.getKVNamespace("CONFIG_KV");
  await kv.put("probe", "value");
  assert.equal(await kv.get("probe"), "value");
});

test("/health/ready answers 503 for a rate-limit policy whose binding is no Durable Object namespace", async (t) => {
  // A name that is not bound, a binding of another kind, and a Durable Object namespace of another class (the
  // rooms' objects answer the limiter's ping 404: every limited request would be a 500).
  for (const binding of ["RATE_LIMITTER", "DB", "ROOMS"]) {
    const w = await startWorker({ vars: { RATE_LIMIT_POLICIES: { typo: { limit: 5, window: 60, key: "ip", binding } } } });
    t.after(() => w.stop());
    const response = await w.fetch("/health/ready");
    assert.equal(response.status, 503, binding);
    const limiter = (await response.json()).checks.find((c) => c.binding === "RATE_LIMITER");
    assert.equal(limiter.ok, false, binding);
    assert.match(limiter.detail, /policy's binding/, binding);
  }
});

test("/health/ready checks the Images binding when image requests use it, and answers 503 without it", async (t) => {
  // Without `[images]` every image request answered 500 while readiness said ready: its checks left the binding out.
  const vars = { IMAGES_ORIGIN: "http://127.0.0.1:9" };
  const bound = await startWorker({ vars });
  t.after(() => bound.stop());
  const ready = await bound.fetch("/health/ready");
  assert.equal(ready.status, 200);
  assert.deepEqual((await ready.json()).checks.find((c) => c.binding === "IMAGES"), { binding: "IMAGES", ok: true });
  const unbound = await startWorker({ vars, workerOptions: { images: undefined } });
  t.after(() => unbound.stop());
  const response = await unbound.fetch("/health/ready");
  assert.equal(response.status, 503);
  const body = await response.json();
  assert.equal(body.ready, false);
  const images = body.checks.find((c) => c.binding === "IMAGES");
  assert.equal(images?.ok, false, JSON.stringify(body.checks));
  assert.match(images.detail, /not bound as an Images binding/);
  // Only where it is used: cf-image mode never calls it, and without an origin /images answers 404.
  const unused = await startWorker({ vars: { ...vars, IMAGES_MODE: "cf-image" }, workerOptions: { images: undefined } });
  t.after(() => unused.stop());
  const fine = await unused.fetch("/health/ready");
  assert.equal(fine.status, 200);
  assert.equal((await fine.json()).checks.find((c) => c.binding === "IMAGES"), undefined);
});

test("/health/ready answers 503 while the newest migration is not applied, and 200 once it is", async (t) => {
  const { mkdtempSync, readdirSync, readFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-behind-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const files = readdirSync("migrations").filter((f) => f.endsWith(".sql")).sort();
  // Each file's statements, comments dropped (D1's exec wants one statement per line).
  const statements = (file) =>
    readFileSync(join("migrations", file), "utf8")
      .split("\n")
      .filter((l) => !l.trim().startsWith("--"))
      .join("\n")
      .split(";")
      .map((s) => s.trim())
      .filter(Boolean);
  const ready = async (what) => {
    // A new instance per reading: an isolate answers readiness from its last check for a few seconds.
    const w = await startWorker({ stateDir });
    try {
      const db = await w.mf.getD1Database("DB");
      // One batch, not a call per statement through Miniflare's synchronous proxy (see sessions.test.mjs).
      await db.batch(what.flatMap(statements).map((sql) => db.prepare(sql)));
      const response = await w.fetch("/health/ready");
      const body = await response.json();
      return { status: response.status, db: body.checks.find((c) => c.binding === "DB") };
    } finally {
      await w.stop();
    }
  };
  const behind = await ready(files.slice(0, -1));
  assert.equal(behind.status, 503, `every migration but ${files.at(-1)}: logins would fail on the missing schema`);
  assert.equal(behind.db.ok, false);
  assert.match(behind.db.detail, /migrations missing/);
  const current = await ready(files.slice(-1));
  assert.equal(current.status, 200, "the newest applied too");
  assert.equal(current.db.ok, true);
});

test("/health/ready answers 503 and names the failing binding when D1 is not migrated", async (t) => {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { rmSync } = await import("node:fs");
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-empty-"));
  const empty = await startWorker({ stateDir }).catch((e) => {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  });
  t.after(async () => {
    await empty.stop();
    rmSync(stateDir, { recursive: true, force: true }); // its own directory: stop() leaves a caller's in place
  });
  const response = await empty.fetch("/health/ready");
  assert.equal(response.status, 503);
  const body = await response.json();
  const db = body.checks.find((c) => c.binding === "DB");
  assert.equal(db.ok, false);
  assert.match(db.detail, /migrations/);
  assert.doesNotMatch(JSON.stringify(body), /edge_meta|SQLITE|D1_|no such table/i, "the runtime's error text stays in the log");
  const logged = await until(() => empty.jsonLogs().find((l) => l.msg === "readiness" && l.binding === "DB"), { what: "the readiness log line" });
  assert.match(logged.detail, /edge_meta/, "where the operator finds it");
  assert.equal(logged.level, "error", "a level, as every log line has");
  assert.deepEqual(body.checks.map((c) => c.binding), ["CONFIG_KV", "CONTENT_KV", "DB", "RATE_LIMITER", "ROOMS", "ROOM_DIRECTORY"]);
});

test("/health/ready checks the limiter namespaces the policies use: one named otherwise, with RATE_LIMITER unbound, is ready", async (t) => {
  // `binding` is a policy's setting: a deployment whose every policy counts in `LIMITS` binds no RATE_LIMITER, and
  // nothing asks it; readiness answered 503 for it forever (a deploy check or a load balancer kept it out).
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { join } = await import("node:path");
  const { ROOT } = await import("./support/worker.mjs");
  const fromToml = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const { RATE_LIMITER, ...others } = fromToml.durableObjects;
  const policies = Object.fromEntries(Object.entries(fromToml.bindings.RATE_LIMIT_POLICIES).map(([name, p]) => [name, { ...p, binding: "LIMITS" }]));
  const w = await startWorker({ vars: { RATE_LIMIT_POLICIES: policies }, workerOptions: { durableObjects: { ...others, LIMITS: RATE_LIMITER } } });
  t.after(() => w.stop());
  const response = await w.fetch("/health/ready");
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body.checks));
  assert.deepEqual(body.checks.find((c) => c.binding === "RATE_LIMITER"), { binding: "RATE_LIMITER", ok: true });
  // And the namespace the policies do use is the one checked: its readiness object stored the ping.
  const ns = await w.mf.getDurableObjectNamespace("LIMITS");
  const reply = await (await ns.get(ns.idFromName("ratelimit:readiness")).fetch("https://ratelimiter/ping", { method: "POST" })).json();
  assert.equal(reply.pings, 2, "one ping from /health/ready, one from this test");
});

test("/health/ready answers 503 for a rooms namespace bound to another Durable Object class", async (t) => {
  // wrangler.toml's `class_name` decides what answers: ROOM_DIRECTORY bound to the limiter's class left GET /rooms
  // 503 and ROOMS bound to the directory's failed every room, while readiness, which only looked the binding up,
  // said ready.
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { join } = await import("node:path");
  const { ROOT } = await import("./support/worker.mjs");
  const objects = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions.durableObjects;
  for (const [binding, other] of [["ROOMS", "ROOM_DIRECTORY"], ["ROOM_DIRECTORY", "RATE_LIMITER"]]) {
    const w = await startWorker({ workerOptions: { durableObjects: { ...objects, [binding]: objects[other] } } });
    t.after(() => w.stop());
    const response = await w.fetch("/health/ready");
    const body = await response.json();
    assert.equal(response.status, 503, `${binding} as ${other}'s class: ${JSON.stringify(body.checks)}`);
    const failed = body.checks.filter((c) => !c.ok);
    assert.deepEqual(failed.map((c) => c.binding), [binding], binding);
    assert.match(failed[0].detail, /does not answer as/, binding);
    assert.doesNotMatch(JSON.stringify(body), /answered|40[45]|unknown|take POST/, `${binding}: the object's answer stays in the log`);
    const logged = await until(() => w.jsonLogs().find((l) => l.msg === "readiness" && l.binding === binding), { what: "the readiness log line" });
    assert.match(logged.detail, /answered 40[45]/, binding);
  }
});

test("/health/ready names the binding that does not answer, and reports the others", { timeout: 30_000 }, async (t) => {
  // A limiter object that takes the ping and never answers (a stuck or overloaded namespace): the whole readiness
  // answered `{"binding":"all","detail":"the checks timed out"}`, and its log line named no binding either, so an
  // operator could not tell which one to look at.
  const STUCK = `export class Stuck {
    async fetch() { await new Promise((resolve) => setTimeout(resolve, 600_000)); return new Response("{}"); }
  }
  export default { fetch() { return new Response("stuck"); } };`;
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { join } = await import("node:path");
  const { ROOT } = await import("./support/worker.mjs");
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: { RATE_LIMIT_POLICIES: { stuck: { limit: 5, window: 60, key: "ip", binding: "STUCK_LIMITER" } } },
    workerOptions: { durableObjects: { ...durableObjects, STUCK_LIMITER: { className: "Stuck", scriptName: "stuck" } } },
    extraWorkers: [{ name: "stuck", modules: true, script: STUCK }],
  });
  t.after(() => w.stop());
  const response = await w.fetch("/health/ready");
  assert.equal(response.status, 503);
  const { checks } = await response.json();
  assert.deepEqual(checks.map((c) => [c.binding, c.ok]), [
    ["CONFIG_KV", true],
    ["CONTENT_KV", true],
    ["DB", true],
    ["RATE_LIMITER", false],
    ["ROOMS", true],
    ["ROOM_DIRECTORY", true],
  ]);
  assert.match(checks[3].detail, /no answer in time/);
  const logged = await until(() => w.jsonLogs().find((l) => l.msg === "readiness" && l.binding === "RATE_LIMITER"), { what: "the readiness log line" });
  assert.match(logged.detail, /STUCK_LIMITER: no answer in \d+ ms/, "the log names the namespace that did not answer");
});

test("a 503 from /health/ready is an error answer: its request line names error_code not_ready and the failed bindings, from memory too", async (t) => {
  // The Worker's own 503 was logged at error level without an error_code (the README promises one on every error
  // answer; a line without one reads as an origin's status passed through), and a probe answered from the isolate's
  // last check (5 s) wrote no other line: nothing said what was not ready.
  const failing = await startWorker({ vars: { RATE_LIMIT_POLICIES: { typo: { limit: 5, window: 60, key: "ip", binding: "DB" } } } });
  t.after(() => failing.stop());
  for (const id of ["ready-first", "ready-memory"]) {
    const response = await failing.fetch("/health/ready", { headers: { "x-request-id": id } });
    assert.equal(response.status, 503);
    const body = await response.json();
    assert.equal(body.ready, false, "the readiness body is kept");
    assert.ok(body.checks.some((c) => c.binding === "RATE_LIMITER" && !c.ok), JSON.stringify(body.checks));
    assert.equal(body.error?.code, "not_ready", JSON.stringify(body));
    const line = await until(() => failing.jsonLogs().find((l) => l.msg === "request" && l.request_id === id), { what: "the request line" });
    assert.deepEqual([line.status, line.level, line.error_code], [503, "error", "not_ready"], id);
    assert.match(line.detail ?? "", /RATE_LIMITER/, id);
  }
});
