// Two builds of edgekit side by side on one path, to decide whether a change pays: `node bench/ab.mjs DIR_A DIR_B
// [path]` (each DIR a copy of build/, e.g. made with `cp -r build /tmp/a` before the change), default path a
// JWT-authenticated gateway route proxied to a local origin, as bench/gateway.mjs measures it, with the JS reference
// gateway and the two floors (bench/floor and bench/reference/forward.mjs: forwarding only, in Rust and in JS)
// beside them. All sides are loaded at the same time (lib.mjs alongside:
// per-round ratios within a few percent, where loading them in turn varied by ±30% on this VM), pinned to core 1,
// and the figure is each side's workerd CPU per request as a ratio to A. Not part of bench/run.mjs: a tool for one
// change. BENCH_ROUNDS (default 11) rounds of BENCH_SECONDS (default 3).
import { alongside, benchOrigin, benchToken, ensureWrk, pinWorkers, serveEdgekit, serveFloor, serveScript } from "./lib.mjs";

const [dirA, dirB, path = "api/items/42?fields=name"] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error("usage: node bench/ab.mjs DIR_A DIR_B [path]");
ensureWrk();

const origin = await benchOrigin();
// AB_ALG: the token's algorithm, EdDSA (default), ES256 or RS256 (the JS reference verifies EdDSA only, so its
// side is left out for the others).
const ALG = process.env.AB_ALG ?? "EdDSA";
const { jwks, authorization } = benchToken("bench-user", ALG);
const ROUTES = [
  { name: "api", path: "/api", upstream: origin.url, auth: "jwt", timeout_ms: 10000 },
  { name: "cached", path: "/cached", upstream: origin.url, cache: "api-public" },
];
// AB_VARS: more [vars] for both builds as JSON, e.g. '{"GATEWAY_JWT_CACHE_ENTRIES":0}' to verify every signature
// (the JS reference then verifies every signature too).
const vars = { GATEWAY_ROUTES: ROUTES, ...JSON.parse(process.env.AB_VARS ?? "{}") };
const a = await serveEdgekit({ vars, buildDir: dirA });
const b = await serveEdgekit({ vars, buildDir: dirB });
const js = await serveScript("bench/reference/gateway.mjs", {
  kvNamespaces: ["CONFIG_KV"],
  bindings: { ORIGIN: origin.url, TOKEN_CACHE: vars.GATEWAY_JWT_CACHE_ENTRIES === 0 ? "off" : "on" },
});
const floor = await serveFloor(origin.url);
const jsFloor = await serveScript("bench/reference/forward.mjs", { bindings: { ORIGIN: origin.url } });
const sides = [a, b, js, floor, jsFloor];
const pinned = pinWorkers(sides);
try {
  for (const side of [a, b, js]) await (await side.mf.getKVNamespace("CONFIG_KV")).put("jwks", jwks);
  const headers = { authorization };
  for (const side of [a, b]) {
    const res = await fetch(new URL(path, side.url), { headers });
    if (res.status !== 200) throw new Error(`${side.url}${path} answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  }
  const api = "api/items/42?fields=name";
  await alongside(`/${path}, ${ALG} token${pinned ? ", Workers pinned to core 1" : ""}`, [
    { name: `A ${dirA}`, url: `${a.url}${path}`, headers, pid: a.pid },
    { name: `B ${dirB}`, url: `${b.url}${path}`, headers, pid: b.pid },
    ...(ALG === "EdDSA" ? [{ name: "reference gateway (JS)", url: `${js.url}${api}`, headers, pid: js.pid }] : []),
    { name: "wasm floor (bench/floor: forward only)", url: `${floor.url}${api}`, headers, pid: floor.pid },
    { name: "JS floor (bench/reference/forward.mjs)", url: `${jsFloor.url}${api}`, headers, pid: jsFloor.pid },
  ], {
    rounds: Number(process.env.BENCH_ROUNDS ?? 11),
    seconds: Number(process.env.BENCH_SECONDS ?? 3),
  });
} finally {
  for (const side of sides) await side.stop();
  origin.close();
}
