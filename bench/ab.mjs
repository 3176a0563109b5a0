// Two builds of edgekit side by side on one path, to decide whether a change pays: `node bench/ab.mjs DIR_A DIR_B
// [path]` (each DIR a copy of build/, e.g. made with `cp -r build /tmp/a` before the change), default path a
// JWT-authenticated gateway route proxied to a local origin, as bench/gateway.mjs measures it, with the JS reference
// gateway beside them. Alternates many short rounds (BENCH_ROUNDS, default 15, of BENCH_SECONDS, default 1) and
// prints each case's median and the median of per-round ratios, for req/s and for workerd CPU per request, with the
// Workers pinned to their own core (lib.mjs pinWorkers). Not part of bench/run.mjs: it is a tool for one change.
import { alternate, benchOrigin, benchToken, ensureWrk, pairedRatios, pinWorkers, report, serveEdgekit, serveScript } from "./lib.mjs";

const [dirA, dirB, path = "api/items/42?fields=name"] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error("usage: node bench/ab.mjs DIR_A DIR_B [path]");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
ensureWrk();

const origin = await benchOrigin();
// AB_ALG: the token's algorithm, EdDSA (default), ES256 or RS256 (the JS reference verifies EdDSA only, so its
// column is left out for the others).
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
const sides = [a, b, js];
const pinned = pinWorkers(sides);
try {
  for (const side of sides) await (await side.mf.getKVNamespace("CONFIG_KV")).put("jwks", jwks);
  const headers = { authorization };
  for (const side of [a, b]) {
    const res = await fetch(new URL(path, side.url), { headers });
    if (res.status !== 200) throw new Error(`${side.url}${path} answered ${res.status}: ${await res.text()}`);
  }
  const cases = [
    { name: `A ${dirA}`, url: `${a.url}${path}`, headers, pid: a.pid },
    { name: `B ${dirB}`, url: `${b.url}${path}`, headers, pid: b.pid },
    ...(ALG === "EdDSA" ? [{ name: "reference gateway (JS)", url: `${js.url}api/items/42?fields=name`, headers, pid: js.pid }] : []),
  ];
  await alternate(cases, { rounds: 1, seconds: 2 }); // warm-up: JIT tiers, caches
  const rows = report(
    `/${path}, ${ALG} token, ${ROUNDS} alternating rounds of ${SECONDS} s, wrk -t2 -c32${pinned ? ", Workers pinned to core 1" : ""}`,
    await alternate(cases, { rounds: ROUNDS, seconds: SECONDS }),
  );
  pairedRatios("B / A", rows[1], rows[0]);
  if (rows[2]) pairedRatios("B / JS gateway", rows[1], rows[2]);
} finally {
  for (const side of sides) await side.stop();
  origin.close();
}
