// GET /images/... cache hits: the built Rust Worker against the plain-JS reference (bench/reference/images.mjs),
// both straight on workerd, loaded one after the other with the same wrk settings in this one run. Each Worker's
// variant is produced once (edgekit resizes a real 1200×800 JPEG through the Images binding; the reference is
// handed exactly those bytes), then every measured request is a Cache API hit. Prints req/s, p50/p99 and ratios.
import { createServer } from "node:http";
import assert from "node:assert/strict";
import sharp from "sharp";
import { ensureWrk, load, ratio, report, serveEdgekit, serveScript, warm } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
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
  warm(`${rust.url}${PATH.slice(1)}`, ACCEPT);
  warm(`${js.url}${PATH.slice(1)}`, ACCEPT);
  const rows = report(`GET ${PATH} (cache hit, ${variant.length} B WebP), wrk -t2 -c32 -d${seconds}s, 127.0.0.1`, [
    { name: "edgekit (Rust/wasm)", ...load(`${rust.url}${PATH.slice(1)}`, { seconds, headers: ACCEPT }) },
    { name: "reference (JS)", ...load(`${js.url}${PATH.slice(1)}`, { seconds, headers: ACCEPT }) },
  ]);
  ratio("req/s, Rust / JS", rows[0].rps, rows[1].rps);
  ratio("p99 latency, Rust / JS (lower is better)", rows[0].p99, rows[1].p99);
} finally {
  await rust.stop();
  await js.stop();
  origin.close();
}
