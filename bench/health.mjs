// GET /health: the built Rust Worker against the plain-JS reference (bench/reference/health.mjs), both straight on
// workerd, loaded one after the other with the same wrk settings in this one run. Prints req/s, p50/p99, ratios.
import { ensureWrk, load, ratio, report, serveEdgekit, serveScript, warm } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
ensureWrk();
const rust = await serveEdgekit();
const js = await serveScript("bench/reference/health.mjs");
try {
  warm(`${rust.url}health`);
  warm(`${js.url}health`);
  const rows = report(`GET /health, wrk -t2 -c32 -d${seconds}s, 127.0.0.1`, [
    { name: "edgekit (Rust/wasm)", ...load(`${rust.url}health`, { seconds }) },
    { name: "reference (JS)", ...load(`${js.url}health`, { seconds }) },
  ]);
  ratio("req/s, Rust / JS", rows[0].rps, rows[1].rps);
  ratio("p99 latency, Rust / JS (lower is better)", rows[0].p99, rows[1].p99);
} finally {
  await rust.stop();
  await js.stop();
}
