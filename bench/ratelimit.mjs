// Rate limiter, benchmark (a): the cost of the limiter on a route, measured side by side in one run on one Worker
// straight on workerd. The same route with and without the limiter (GET /ratelimit/{policy}/check and its
// debug-only twin /__debug/ratelimit/{policy}/unlimited, which skips only the enforce() call), under concurrent load
// from many keys (every request carries one of 10,000 API keys, rotated by a wrk Lua script), plus the cheap path:
// one key already over its limit, refused from the isolate without a Durable Object round trip. Error responses are
// always logged, and a log line costs milliseconds under Miniflare, so the cheap path (429) is compared with the
// unlimited route answering an error too (401, no API key): both pay for one log line.
// Measured as bench/gateway.mjs measures: every case warmed up first, its answer's status and header names checked,
// then loaded in BENCH_ROUNDS (default 9) alternating rounds of BENCH_SECONDS (default 2) with the Worker's workerd
// pinned to its own core (lib.mjs pinWorkers); prints each case's median run, the workerd CPU per request (the
// RateLimiter objects run in that process too) and the median of the per-round ratios. p50/p99 are under wrk -c32,
// so they include queueing: the "added latency" is what the limiter adds at that load, not one round trip's length.
// (Benchmark (b), sharding at scale: `cargo run --release --example shard_sim`.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alternate, answerShape, ensureWrk, loadAsync, pairedRatios, pinWorkers, report, serveEdgekit } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const KEYS = 10_000;
ensureWrk();

const dir = mkdtempSync(join(tmpdir(), "edgekit-bench-ratelimit-"));
const rotate = join(dir, "rotate-keys.lua");
writeFileSync(
  rotate,
  `-- Each request carries one of ${KEYS} API keys; threads start at different offsets.
local next_id = 0
function setup(thread) next_id = next_id + 1; thread:set("offset", next_id * 7919) end
function init(args) counter = offset or 0 end
function request()
  counter = counter + 1
  return wrk.format("GET", nil, { ["x-api-key"] = "bench-" .. (counter % ${KEYS}) })
end
`,
);

const POLICIES = {
  // Never refuses under this load: every request is a real decision by a RateLimiter object.
  bench: { limit: 1_000_000, window: 60, key: "api_key", shards: 16, failure: "closed", check: true },
  // One request per hour: after the first, every request is refused from the isolate's memory.
  tight: { limit: 1, window: 3600, key: "api_key", shards: 1, failure: "closed", check: true },
};
const worker = await serveEdgekit({ vars: { DEBUG_ROUTES: true, RATE_LIMIT_POLICIES: POLICIES } });
const pinned = pinWorkers([worker]);
try {
  const base = `${worker.url}__debug/ratelimit/bench/unlimited`;
  const limited = `${worker.url}ratelimit/bench/check`;
  const refused = `${worker.url}ratelimit/tight/check`;
  const KEY = { "x-api-key": "bench-1" };
  const EXHAUSTED = { "x-api-key": "exhausted" };
  await (await fetch(refused, { headers: EXHAUSTED })).arrayBuffer(); // the key's one request: refused from here on
  // Each pair answers alike but for the limiter's own fields: the measured difference is the limiter's work.
  const names = (shape) => shape.slice(1).filter((n) => !/^ratelimit$|^ratelimit-policy$|^retry-after$|^www-authenticate$/.test(n));
  const [without, withLimiter] = [await answerShape(base, KEY), await answerShape(limited, KEY)];
  assert.deepEqual([without[0], withLimiter[0]], [200, 200], "both allowed cases answer 200");
  assert.ok(withLimiter.includes("ratelimit") && withLimiter.includes("ratelimit-policy"), "the limited route reports its standing");
  assert.deepEqual(names(withLimiter), names(without), "the allowed cases answer with the same other headers");
  const [error, cheap] = [await answerShape(base), await answerShape(refused, EXHAUSTED)];
  assert.deepEqual([error[0], cheap[0]], [401, 429], "the error cases answer 401 (no key) and 429 (refused)");
  assert.deepEqual(names(cheap), names(error), "the error cases answer with the same other headers");
  const cases = [
    { name: "route without limiter (200)", url: base, script: rotate },
    { name: "route with limiter, allowed (200, 1 DO round trip)", url: limited, script: rotate },
    { name: "route without limiter, no API key (401, logged)", url: base },
    { name: "route with limiter, key over its limit (429 from the isolate, logged)", url: refused, headers: EXHAUSTED },
  ].map((c) => ({ ...c, pid: worker.pid }));
  // Warm-up, so every case is measured hot (wasm instantiated, objects created).
  for (const c of cases) await loadAsync(c.url, { seconds: 2, connections: 8, script: c.script, headers: c.headers });
  const rows = report(
    `Rate limiter, wrk -t2 -c32, ${KEYS} API keys, 16 shards, ${ROUNDS} alternating rounds of ${seconds} s (median run), 127.0.0.1, same Worker${pinned ? ", pinned to core 1" : ""}`,
    await alternate(cases, { rounds: ROUNDS, seconds }),
  );
  const added = (a, b) => `p50 ${(a.p50 - b.p50).toFixed(2)} ms, p99 ${(a.p99 - b.p99).toFixed(2)} ms`;
  console.log(`added latency at -c32 of the limiter (allowed, median runs): ${added(rows[1], rows[0])}`);
  console.log(`added latency at -c32 of the limiter (refused in isolate, vs an error without it): ${added(rows[3], rows[2])}`);
  pairedRatios("with limiter / without (allowed)", rows[1], rows[0]);
  pairedRatios("refused in isolate / error without limiter", rows[3], rows[2]);
  if (rows[0].errors || rows[1].errors) console.log("warning: non-2xx responses on the allowed rows (see table)");
} finally {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
}
