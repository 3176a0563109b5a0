// GET /images/... cache hits: the built Rust Worker against the plain-JS reference (bench/reference/images.mjs),
// both straight on workerd, in alternating rounds (BENCH_ROUNDS, default 9, of BENCH_SECONDS, default 2) with the
// same wrk settings in this one run, the Workers pinned to their own core (lib.mjs pinWorkers). Each Worker's
// variant is produced once (edgekit resizes a real 1200×800 JPEG through the Images binding; the reference is
// handed exactly those bytes), then every measured request is a Cache API hit. Prints each side's median run and
// the median of the per-round ratios, for req/s, p99 and the workerd CPU time each request cost.
import { createServer } from "node:http";
import assert from "node:assert/strict";
import sharp from "sharp";
import { alternate, answerShape, ensureWrk, pairedRatios, pinWorkers, report, serveEdgekit, serveScript, warm } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const PATH = "/images/300x200/photos/bench.jpg";
const ACCEPT = { accept: "image/webp,*/*" };
ensureWrk();

const source = await sharp({ create: { width: 1200, height: 800, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 40 } } })
  .jpeg()
  .toBuffer();
let variant;
// One origin for both: /photos/bench.jpg is the source for edgekit, /variant/photos/bench.jpg the finished variant.
const origin = createServer((req, res) => {
  const [body, type] = req.url === "/variant/photos/bench.jpg" ? [variant, "image/webp"] : [source, "image/jpeg"];
  res.writeHead(200, { "content-type": type, "content-length": body.length });
  res.end(body);
});
await new Promise((r) => origin.listen(0, "127.0.0.1", r));
const originUrl = `http://127.0.0.1:${origin.address().port}`;

const rust = await serveEdgekit({ vars: { IMAGES_ORIGIN: originUrl } });
const js = await serveScript("bench/reference/images.mjs", { bindings: { VARIANT_ORIGIN: `${originUrl}/variant` } });
const pinned = pinWorkers([rust, js]);
try {
  const first = await fetch(new URL(PATH, rust.url), { headers: ACCEPT });
  variant = Buffer.from(await first.arrayBuffer());
  assert.equal(first.headers.get("x-cache"), "MISS");
  const meta = await sharp(variant).metadata();
  console.log(`variant: ${meta.format} ${meta.width}x${meta.height}, ${variant.length} bytes (source ${source.length} bytes)`);
  for (const side of [rust, js]) {
    await (await fetch(new URL(PATH, side.url), { headers: ACCEPT })).arrayBuffer();
    const hit = await fetch(new URL(PATH, side.url), { headers: ACCEPT });
    assert.equal(hit.headers.get("x-cache"), "HIT");
    assert.deepEqual(Buffer.from(await hit.arrayBuffer()), variant, "both Workers serve the same bytes");
  }
  assert.deepEqual(await answerShape(new URL(PATH, js.url), ACCEPT), await answerShape(new URL(PATH, rust.url), ACCEPT), "the reference answers a hit with edgekit's status and headers");
  warm(`${rust.url}${PATH.slice(1)}`, ACCEPT);
  warm(`${js.url}${PATH.slice(1)}`, ACCEPT);
  const rows = report(
    `GET ${PATH} (cache hit, ${variant.length} B WebP), wrk -t2 -c32, ${ROUNDS} alternating rounds of ${seconds} s (median run), 127.0.0.1${pinned ? ", Workers pinned to core 1" : ""}`,
    await alternate(
      [
        { name: "edgekit (Rust/wasm)", url: `${rust.url}${PATH.slice(1)}`, headers: ACCEPT, pid: rust.pid },
        { name: "reference (JS)", url: `${js.url}${PATH.slice(1)}`, headers: ACCEPT, pid: js.pid },
      ],
      { rounds: ROUNDS, seconds },
    ),
  );
  pairedRatios("Rust / JS", rows[0], rows[1]);
} finally {
  await rust.stop();
  await js.stop();
  origin.close();
}
