// GET /health: the built Rust Worker against the plain-JS reference (bench/reference/health.mjs), both straight on
// workerd, in alternating rounds (BENCH_ROUNDS, default 9, of BENCH_SECONDS, default 2) with the same wrk settings
// in this one run, the Workers pinned to their own core (lib.mjs pinWorkers) so that wrk does not take CPU from the
// Worker it loads. Prints each side's median run and the median of the per-round ratios, for req/s, p99 and the
// workerd CPU time each request cost.
import assert from "node:assert/strict";
import { alternate, answerShape, ensureWrk, pairedRatios, pinWorkers, report, serveEdgekit, serveScript, warm } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
ensureWrk();
const rust = await serveEdgekit();
const js = await serveScript("bench/reference/health.mjs");
const pinned = pinWorkers([rust, js]);
try {
  assert.deepEqual(await answerShape(`${js.url}health`), await answerShape(`${rust.url}health`), "the reference answers with edgekit's status and headers");
  warm(`${rust.url}health`);
  warm(`${js.url}health`);
  const rows = report(
    `GET /health, wrk -t2 -c32, ${ROUNDS} alternating rounds of ${seconds} s (median run), 127.0.0.1${pinned ? ", Workers pinned to core 1" : ""}`,
    await alternate(
      [
        { name: "edgekit (Rust/wasm)", url: `${rust.url}health`, pid: rust.pid },
        { name: "reference (JS)", url: `${js.url}health`, pid: js.pid },
      ],
      { rounds: ROUNDS, seconds },
    ),
  );
  pairedRatios("Rust / JS", rows[0], rows[1]);
} finally {
  await rust.stop();
  await js.stop();
}
