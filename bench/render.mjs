// GET / (edge-side rendering): the streamed page against the same page rendered whole before sending
// (`?render=whole`), with one slow fragment (the feed's origin answers after SLOW_MS; the other fragments come from
// KV). Both modes are measured in this one run, interleaved (every other round in reverse order, as lib.mjs alternate
// does), on workerd through the Miniflare API, against a real local origin, after checking that both answer with the
// same status and header names (a streamed page is sent uncompressed, a whole one compressed as the client asks: the
// values of Content-Encoding differ). Prints time to first byte (first body chunk) and time to last byte, median and
// p90, and the ratios.
import assert from "node:assert/strict";
import { seedContent } from "../scripts/seed.mjs";
import { delay, startOrigin } from "../tests/support/origin.mjs";
import { until } from "../tests/support/worker.mjs";
import { answerShape, ratio, serveEdgekit } from "./lib.mjs";

const SLOW_MS = Number(process.env.BENCH_SLOW_MS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const VISITOR = { cookie: "ek_vid=0123456789abcdef0123456789abcdef" };

const origin = await startOrigin();
origin.handle(async (req, body, res) => {
  await delay(SLOW_MS);
  res.writeHead(200, { "content-type": "text/html" });
  res.end('<section class="feed"><p>Fresh from the origin.</p></section>');
});
const worker = await serveEdgekit({ vars: { RENDER_ORIGIN: origin.url } });
const kv = await worker.mf.getKVNamespace("CONTENT_KV");
await seedContent(kv);

/** One request: ms to the first body chunk and to the end of the body. The feed is evicted first so it is slow. */
async function measure(path) {
  await kv.delete("fragment:feed");
  const asked = origin.requests.length;
  const t0 = performance.now();
  const response = await fetch(new URL(path, worker.url), { headers: VISITOR });
  const reader = response.body.getReader();
  let first;
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    first ??= performance.now() - t0;
    bytes += value.length;
  }
  const last = performance.now() - t0;
  if (response.status !== 200 || origin.requests.length !== asked + 1) throw new Error(`bad round for ${path}`);
  // The write-back of the feed lands through waitUntil; wait for it so the next eviction is not raced.
  await until(async () => (await kv.get("fragment:feed")) !== null, { what: "feed written back" });
  return { first, last, bytes };
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  await measure("/"); // warm-up: wasm instantiated, isolate config parsed
  await measure("/?render=whole");
  assert.deepEqual(await answerShape(new URL("/?render=whole", worker.url), VISITOR), await answerShape(new URL("/", worker.url), VISITOR), "both modes answer alike");
  const runs = { stream: [], whole: [] };
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? ["stream", "whole"] : ["whole", "stream"];
    for (const mode of order) runs[mode].push(await measure(mode === "stream" ? "/" : "/?render=whole"));
  }
  console.log(`\nGET / with one ${SLOW_MS} ms fragment (feed from the origin, others from KV), ${ROUNDS} rounds each, interleaved, 127.0.0.1`);
  console.log("| mode | TTFB p50 ms | TTFB p90 ms | TTLB p50 ms | TTLB p90 ms | bytes |");
  console.log("|---|---:|---:|---:|---:|---:|");
  const row = {};
  for (const [mode, xs] of Object.entries(runs)) {
    const firsts = xs.map((x) => x.first);
    const lasts = xs.map((x) => x.last);
    row[mode] = { ttfb: pct(firsts, 50), ttlb: pct(lasts, 50) };
    console.log(
      `| ${mode === "stream" ? "streamed" : "whole (?render=whole)"} | ${pct(firsts, 50).toFixed(1)} | ${pct(firsts, 90).toFixed(1)} | ${pct(lasts, 50).toFixed(1)} | ${pct(lasts, 90).toFixed(1)} | ${xs[0].bytes} |`,
    );
  }
  ratio("TTFB p50, whole / streamed (how much sooner the streamed page starts)", row.whole.ttfb, row.stream.ttfb);
  ratio("TTLB p50, streamed / whole (cost of streaming at the end, ~1 is free)", row.stream.ttlb, row.whole.ttlb);
} finally {
  await worker.stop();
  await origin.stop();
}
