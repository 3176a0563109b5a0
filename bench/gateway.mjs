// The gateway: (1) a JWT-authenticated route proxied to a local origin — edgekit against the same pipeline as a
// plain-JavaScript Worker (bench/reference/gateway.mjs), each with and without its memory of verified tokens — and (2) a cached GET served from the edge cache against the
// reference hello Worker (bench/reference/health.mjs), as the issue asks, and against a JS Worker answering from
// the Cache API (bench/reference/cached.mjs), which shows what the cache lookup itself costs. All on workerd, loaded one after the other with the same wrk
// settings in this one run, in alternating rounds (BENCH_ROUNDS, default 9, of BENCH_SECONDS, default 2: on this noisy machine many short rounds gave steadier medians than a few long ones)
// after a warm-up of BENCH_WARM seconds per gateway (default 2; 30 s, long enough for V8 to move edgekit's wasm from Liftoff to
// TurboFan, gave the same ratios), against
// one origin on 127.0.0.1 — with (3) a Rust/wasm Worker that only forwards (bench/floor), the floor any wasm proxy
// stands on — the Workers pinned to their own core (lib.mjs pinWorkers). Prints each case's median run
// and the median of the per-round ratios, for req/s, p99 and the workerd CPU time each request cost.
import assert from "node:assert/strict";
import { alternate, answerShape, benchOrigin, benchToken, ensureWrk, loadAsync, pairedRatios, pinWorkers, report, serveEdgekit, serveFloor, serveScript } from "./lib.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const WARM = Number(process.env.BENCH_WARM ?? 2);
ensureWrk();

// One origin for both gateways, and one EdDSA key published in both Workers' CONFIG_KV as a JWKS.
const origin = await benchOrigin();
const originUrl = origin.url;
const { jwks, authorization } = benchToken();
const AUTH = { authorization };

const ROUTES = [
  { name: "api", path: "/api", upstream: originUrl, auth: "jwt", timeout_ms: 10000 },
  { name: "cached", path: "/cached", upstream: originUrl, cache: "api-public" },
];
// Each pipeline twice: remembering verified tokens (edgekit's default) and verifying every signature.
const rust = await serveEdgekit({ vars: { GATEWAY_ROUTES: ROUTES } });
const rustNoCache = await serveEdgekit({ vars: { GATEWAY_ROUTES: ROUTES, GATEWAY_JWT_CACHE_ENTRIES: 0 } });
const reference = (cache) =>
  serveScript("bench/reference/gateway.mjs", { kvNamespaces: ["CONFIG_KV"], bindings: { ORIGIN: originUrl, TOKEN_CACHE: cache } });
const jsGateway = await reference("on");
const jsNoCache = await reference("off");
const jsHello = await serveScript("bench/reference/health.mjs");
const jsCached = await serveScript("bench/reference/cached.mjs", { bindings: { ORIGIN: originUrl } });
// The floor: a Rust/wasm Worker that only forwards (bench/floor) — what any wasm proxy pays before doing any work.
const floor = await serveFloor(originUrl);
const gateways = [rust, rustNoCache, jsGateway, jsNoCache];
const pinned = pinWorkers([...gateways, jsHello, jsCached, floor]);
try {
  for (const side of gateways) await (await side.mf.getKVNamespace("CONFIG_KV")).put("jwks", jwks);
  const API = "api/items/42?fields=name";
  for (const side of gateways) {
    const ok = await fetch(new URL(API, side.url), { headers: AUTH });
    assert.equal(ok.status, 200, "the token passes");
    assert.equal((await ok.json()).user, "bench-user", "the origin sees the verified identity");
    const refused = await fetch(new URL(API, side.url));
    assert.equal(refused.status, 401, "no token, no proxy");
    await refused.arrayBuffer();
  }
  // Every gateway does the same work on the measured request: the origin is sent the same header names, and the
  // client gets the same status and header names back (values — ids, timings — differ).
  const shapeOf = async (side) => ({ answer: await answerShape(new URL(API, side.url), AUTH), forwarded: origin.lastHeaderNames() });
  const rustShape = await shapeOf(rust);
  for (const side of gateways.slice(1)) assert.deepEqual(await shapeOf(side), rustShape, `${side.url} forwards and answers as edgekit does`);
  await (await fetch(new URL("cached/catalog", rust.url))).arrayBuffer();
  const hit = await fetch(new URL("cached/catalog", rust.url));
  assert.equal(hit.headers.get("x-cache"), "HIT", "the cached route is warm");
  await hit.arrayBuffer();

  const warm = (url, headers) => loadAsync(url, { seconds: WARM, connections: 8, headers });
  for (const side of [...gateways, floor]) await warm(`${side.url}${API}`, AUTH);
  const each = { rounds: ROUNDS, seconds };
  const proxied = report(
    `JWT (EdDSA) verify + proxy to a local origin, wrk -t2 -c32, ${ROUNDS} alternating rounds of ${seconds} s (median run), 127.0.0.1${pinned ? ", Workers pinned to core 1" : ""}`,
    await alternate(
      [
        { name: "edgekit gateway (Rust/wasm), verified-token memory", url: `${rust.url}${API}`, headers: AUTH, pid: rust.pid },
        { name: "reference gateway (JS), verified-token memory", url: `${jsGateway.url}${API}`, headers: AUTH, pid: jsGateway.pid },
        { name: "edgekit gateway (Rust/wasm), every signature verified", url: `${rustNoCache.url}${API}`, headers: AUTH, pid: rustNoCache.pid },
        { name: "reference gateway (JS), every signature verified", url: `${jsNoCache.url}${API}`, headers: AUTH, pid: jsNoCache.pid },
        { name: "wasm floor: forward only, no auth/WAF/rewriting/timeout (Rust/wasm)", url: `${floor.url}${API}`, headers: AUTH, pid: floor.pid },
      ],
      each,
    ),
  );
  pairedRatios("Rust / JS, verified-token memory", proxied[0], proxied[1]);
  pairedRatios("Rust / JS, every signature verified", proxied[2], proxied[3]);
  pairedRatios("wasm floor / JS, verified-token memory", proxied[4], proxied[1]);
  pairedRatios("Rust / wasm floor, verified-token memory", proxied[0], proxied[4]);

  await warm(`${rust.url}cached/catalog`);
  await warm(`${jsHello.url}health`);
  await (await fetch(new URL("cached/catalog", jsCached.url))).arrayBuffer();
  const jsHit = await fetch(new URL("cached/catalog", jsCached.url));
  assert.equal(jsHit.headers.get("x-cache"), "HIT", "the JS cached route is warm");
  await jsHit.arrayBuffer();
  await warm(`${jsCached.url}cached/catalog`);
  const cached = report(
    `cached GET (edge-cache HIT) against the reference hello and a JS Cache API hit, wrk -t2 -c32, ${ROUNDS} alternating rounds of ${seconds} s`,
    await alternate(
      [
        { name: "edgekit cached GET (Rust/wasm)", url: `${rust.url}cached/catalog`, pid: rust.pid },
        { name: "reference hello (JS)", url: `${jsHello.url}health`, pid: jsHello.pid },
        { name: "reference cached GET (JS, Cache API)", url: `${jsCached.url}cached/catalog`, pid: jsCached.pid },
      ],
      each,
    ),
  );
  pairedRatios("Rust cached GET / JS hello", cached[0], cached[1]);
  pairedRatios("Rust cached GET / JS cached GET", cached[0], cached[2]);
} finally {
  for (const side of [...gateways, jsHello, jsCached, floor]) await side.stop();
  origin.close();
}
