// Rate limiter, benchmark (a): the cost of the limiter on a route, measured side by side in one run on one Worker
// straight on workerd. The same route with and without the limiter (GET /ratelimit/{policy}/check and its
// debug-only twin /__debug/ratelimit/{policy}/unlimited, which skips only the enforce() call), under concurrent load
// from many keys (every request carries one of 10,000 API keys, rotated by a wrk Lua script), plus the cheap path:
// one key already over its limit, refused from the isolate without a Durable Object round trip. Error responses are
// always logged, and a log line costs milliseconds under Miniflare, so the cheap path (429) is compared with the
// unlimited route answering an error too (401, no API key): both pay for one log line.
// Prints req/s, p50/p99 and the added latency. (Benchmark (b), sharding at scale: `cargo run --release --example
// shard_sim`.)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureWrk, loadAsync as load, ratio, report, serveEdgekit } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
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
try {
  const base = `${worker.url}__debug/ratelimit/bench/unlimited`;
  const limited = `${worker.url}ratelimit/bench/check`;
  const refused = `${worker.url}ratelimit/tight/check`;
  // Warm-up, so both sides are measured hot (wasm instantiated, objects created).
  await load(base, { seconds: 2, connections: 8, script: rotate });
  await load(limited, { seconds: 2, connections: 8, script: rotate });
  const rows = report(
    `Rate limiter, wrk -t2 -c32 -d${seconds}s, ${KEYS} API keys, 16 shards, 127.0.0.1 (same Worker, same run)`,
    [
      { name: "route without limiter (200)", ...(await load(base, { seconds, script: rotate })) },
      { name: "route with limiter, allowed (200, 1 DO round trip)", ...(await load(limited, { seconds, script: rotate })) },
      { name: "route without limiter, no API key (401, logged)", ...(await load(base, { seconds })) },
      {
        name: "route with limiter, key over its limit (429 from the isolate, logged)",
        ...(await load(refused, { seconds, headers: { "x-api-key": "exhausted" } })),
      },
    ],
  );
  const [without, withLimiter, error, cheap] = rows;
  const added = (a, b) => `p50 ${(a.p50 - b.p50).toFixed(2)} ms, p99 ${(a.p99 - b.p99).toFixed(2)} ms`;
  console.log(`added latency of the limiter (allowed): ${added(withLimiter, without)}`);
  console.log(`added latency of the limiter (refused in isolate, vs an error without it): ${added(cheap, error)}`);
  ratio("req/s, with limiter / without (allowed)", withLimiter.rps, without.rps);
  ratio("req/s, refused in isolate / error without limiter", cheap.rps, error.rps);
  if (without.errors || withLimiter.errors) console.log("warning: non-2xx responses on the allowed rows (see table)");
} finally {
  await worker.stop();
  rmSync(dir, { recursive: true, force: true });
}
