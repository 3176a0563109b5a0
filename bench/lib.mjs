// Shared benchmark plumbing: serve a Worker straight on workerd through the Miniflare API (never through
// `wrangler dev`, whose proxy is the bottleneck), load it with wrk on 127.0.0.1, and print comparable figures.
// One Miniflare per served Worker (a per-worker port in a multi-worker Miniflare opens no socket).
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import { readdirSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { Miniflare } from "miniflare";
import { startWorker } from "../tests/support/worker.mjs";
import { jwksOf, token } from "../tests/support/gateway-tokens.mjs";

export const ROOT = resolve(import.meta.dirname, "..");

/** The built Rust Worker (build/index.js) with wrangler.toml's bindings; `vars` override [vars]. */
// Request logs are sampled to 0% on both sides: under Miniflare each console.log costs ~7 ms (measured: a hello
// Worker drops from ~5,000 to ~137 req/s when it logs every request), which would measure the log pipe, not the
// Worker. Errors are still logged.
export const BENCH_VARS = { REQUEST_LOG_PERCENT: 0 };

// Static assets are left out unless asked for: with `[assets]` configured, Miniflare puts an asset-router Worker in
// front of every request (measured: /health fell from ~2,450 to ~990 req/s), a cost of the local simulation — on
// Cloudflare the platform routes assets before the Worker. The JS references have no assets either.
export async function serveEdgekit({ vars = {}, workerOptions = {}, assets = false, buildDir } = {}) {
  const options = assets ? workerOptions : { assets: undefined, ...workerOptions };
  const before = workerdChildren();
  const worker = await startWorker({ vars: { DEBUG_ROUTES: false, ...BENCH_VARS, ...vars }, workerOptions: options, buildDir });
  return { url: worker.url, mf: worker.mf, pid: newChild(before), stop: () => worker.stop() };
}

/** A plain-JavaScript reference Worker (an ES module in bench/reference/) with the given Miniflare options. */
export async function serveScript(scriptPath, options = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: resolve(ROOT, scriptPath),
    compatibilityDate: "2026-04-01",
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio() {},
    ...options,
    bindings: { ...BENCH_VARS, ...options.bindings },
  });
  const before = workerdChildren();
  const url = await mf.ready;
  return { url, mf, pid: newChild(before), stop: () => mf.dispose() };
}

/**
 * The wasm floor (bench/floor): a workers-rs Worker that only forwards each request to `origin` and hands back the
 * answer. Built here with worker-build and the tools scripts/setup installed (its own target dir under target/),
 * then served like the others.
 */
export async function serveFloor(origin, options = {}) {
  const cargoBin = `${process.env.CARGO_HOME ?? `${process.env.HOME}/.cargo`}/bin`;
  const built = spawnSync("worker-build", ["--release"], {
    cwd: resolve(ROOT, "bench/floor"),
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      PATH: `${cargoBin}:${process.env.PATH}`,
      CARGO_TARGET_DIR: resolve(ROOT, "target/bench-floor"),
      WASM_BINDGEN_BIN: process.env.WASM_BINDGEN_BIN ?? `${cargoBin}/wasm-bindgen`,
      WASM_OPT_BIN: process.env.WASM_OPT_BIN ?? resolve(ROOT, "node_modules/binaryen/bin/wasm-opt"),
    },
  });
  if (built.status !== 0) throw new Error(`building bench/floor failed:\n${built.stderr}`);
  const dir = resolve(ROOT, "bench/floor/build");
  return serveScript(`${dir}/index.js`, {
    modulesRoot: dir,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    bindings: { ORIGIN: origin },
    ...options,
  });
}

// Each served Worker runs in its own workerd process, a child of this one. Its CPU time over a load run, divided by
// the requests served, is the Worker's cost per request: unlike req/s it does not move with whatever else the
// (2-core) machine runs at the time — wrk, the origin, the other side's idle process.
function workerdChildren() {
  return new Set(
    readdirSync("/proc").filter((d) => {
      if (!/^\d+$/.test(d)) return false;
      try {
        const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${d}/stat`, "utf8"));
        return m?.[1] === "workerd" && Number(m[2]) === process.pid;
      } catch {
        return false;
      }
    }),
  );
}

function newChild(before) {
  const fresh = [...workerdChildren()].filter((pid) => !before.has(pid));
  return fresh.length === 1 ? Number(fresh[0]) : undefined; // unknown: CPU figures are left out
}

const TICKS_PER_S = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU seconds (user + system, all threads) the process has used so far, or NaN when it cannot be read. */
function cpuSeconds(pid) {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S; // utime, stime (fields 14, 15 of stat)
  } catch {
    return NaN;
  }
}

/** Makes sure wrk is there (Debian's package); benchmarks are not part of `npm test`, so this may install it. */
export function ensureWrk() {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  if (process.getuid?.() === 0) {
    console.log("installing wrk (apt-get)…");
    execFileSync("apt-get", ["install", "-y", "-qq", "wrk"], { stdio: "inherit" });
    return;
  }
  throw new Error("wrk is not installed: run `sudo apt-get install wrk`");
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000 };
const toMs = (text) => {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
};

function wrkArgs(url, { seconds = 8, connections = 32, threads = 2, headers = {}, method = "GET", script } = {}) {
  const target = new URL(url);
  if (target.hostname !== "127.0.0.1" && target.hostname !== "localhost") {
    throw new Error(`benchmarks only load 127.0.0.1, not ${target.hostname}`);
  }
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${seconds}s`, "--latency", "--timeout", "5s"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  if (script) args.push("-s", script); // a wrk Lua script shaping each request (e.g. rotating keys)
  if (method !== "GET") throw new Error("load() drives GET only; use a wrk script for other methods");
  return [...args, url];
}

function parseWrk(out) {
  const line = (re) => (re.exec(out) ?? [])[1];
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(line(/Requests\/sec:\s+([\d.]+)/)),
    p50: toMs(line(/^\s*50%\s+(\S+)/m) ?? ""),
    p99: toMs(line(/^\s*99%\s+(\S+)/m) ?? ""),
    requests: Number(line(/(\d+) requests in/)),
    non2xx: errors ? Number(errors[1]) : 0,
    socket: socketErrors ? `connect ${socketErrors[1]}, read ${socketErrors[2]}, write ${socketErrors[3]}, timeout ${socketErrors[4]}` : "",
    errors: (errors ? Number(errors[1]) : 0) + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

/**
 * Loads `url` with wrk for `seconds` (bounded) and returns { rps, p50, p99, requests, errors }. `script`: a wrk Lua
 * file that shapes each request.
 * Only 127.0.0.1 targets are accepted.
 */
export function load(url, options = {}) {
  const seconds = options.seconds ?? 8;
  return parseWrk(execFileSync("wrk", wrkArgs(url, options), { encoding: "utf8", timeout: (seconds + 30) * 1000 }));
}

/**
 * `load` without blocking node's event loop: use it when the served Worker writes log lines during the run. The
 * synchronous `load` stops node from draining workerd's stdout pipe, so a Worker that logs (e.g. every 4xx) stalls
 * once the pipe's buffer is full and the figures measure the stall.
 */
export async function loadAsync(url, options = {}) {
  const seconds = options.seconds ?? 8;
  const cpuBefore = cpuSeconds(options.pid);
  const { stdout } = await promisify(execFile)("wrk", wrkArgs(url, options), {
    encoding: "utf8",
    timeout: (seconds + 30) * 1000,
  });
  const run = parseWrk(stdout);
  // µs of the serving workerd's CPU per request (NaN when its process is unknown).
  run.cpuUs = ((cpuSeconds(options.pid) - cpuBefore) * 1e6) / run.requests;
  return run;
}

/** A short warm-up so both sides are measured hot (JIT, wasm instantiation, caches). */
export function warm(url, headers = {}) {
  load(url, { seconds: 2, connections: 8, headers });
}

/** Prints rows of { name, rps, p50, p99, errors, cpuUs? } and returns them. */
export function report(title, rows) {
  const cpu = rows.some((r) => Number.isFinite(r.cpuUs));
  console.log(`\n${title}`);
  console.log(`| case | req/s | p50 ms | p99 ms |${cpu ? " workerd CPU µs/req |" : ""} non-2xx/errors |`);
  console.log(`|---|---:|---:|---:|${cpu ? "---:|" : ""}---:|`);
  for (const r of rows) {
    const detail = r.errors ? ` (non-2xx ${r.non2xx ?? "?"}${r.socket ? `; socket: ${r.socket}` : ""})` : "";
    const cpuCell = cpu ? ` ${Number.isFinite(r.cpuUs) ? r.cpuUs.toFixed(0) : "?"} |` : "";
    console.log(`| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |${cpuCell} ${r.errors}${detail} |`);
  }
  return rows;
}

/** "a / b" as a ratio line, e.g. for the Rust Worker against the JS reference (higher is better for req/s). */
export function ratio(label, numerator, denominator) {
  const value = numerator / denominator;
  console.log(`${label}: ${value.toFixed(2)}x`);
  return value;
}

/**
 * Loads every case at the same time, `rounds` times, and prints each case's workerd CPU per request as the median
 * of its per-round ratios to the first case. Sharing each round's conditions (the other tenants of this VM, CPU
 * frequency, the load generator's own share of core 0), the cases' per-round ratios stay within a few percent where
 * the same cases loaded one after another (alternate) varied by ±30% round to round. For deciding whether a change
 * pays (bench/ab.mjs); latency figures under shared load mean little and are not reported. Two rounds warm up.
 */
export async function alongside(title, cases, { rounds = 11, seconds = 3, connections = 8 } = {}) {
  const runs = cases.map(() => []);
  const warmup = 2; // the first round after start-up still ran hotter on some sides (JIT tiers), so two are dropped
  for (let r = 0; r < rounds + warmup; r++) {
    const got = await Promise.all(cases.map((c) => loadAsync(c.url, { seconds, connections, headers: c.headers, pid: c.pid })));
    if (r >= warmup) got.forEach((run, i) => runs[i].push(run));
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(`\n${title}: all ${cases.length} loaded at once, wrk -c${connections} each, ${rounds} rounds of ${seconds} s`);
  console.log(`| case | workerd CPU µs/req (median) | CPU / first case (median of rounds) | rounds | errors |`);
  console.log(`|---|---:|---:|---|---:|`);
  return cases.map((c, i) => {
    const ratios = runs[i].map((run, r) => run.cpuUs / runs[0][r].cpuUs);
    const row = { name: c.name, cpuUs: median(runs[i].map((run) => run.cpuUs)), ratio: median(ratios), errors: runs[i].reduce((a, run) => a + run.errors, 0) };
    console.log(`| ${c.name} | ${row.cpuUs.toFixed(0)} | ${row.ratio.toFixed(3)} | ${ratios.map((x) => x.toFixed(2)).join(" ")} | ${row.errors} |`);
    return row;
  });
}

/**
 * Loads each case in turn, `rounds` times over, so that machine load drifting during the run falls on every case
 * alike — every other round in reverse order (a, b, …, …, b, a, …): in a fixed order the same case always ran
 * first, right after the previous case's run left its Worker closing connections and collecting garbage on the
 * shared core. A case is { url, headers?, script? (a wrk Lua file), pid? }. Returns per case its median run (by
 * req/s), with every run kept in `runs`.
 */
export async function alternate(cases, { rounds = 3, seconds = 5 } = {}) {
  const runs = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = [...cases.keys()];
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const { url, headers, script, pid } = cases[i];
      runs[i].push(await loadAsync(url, { seconds, headers, script, pid }));
    }
  }
  return cases.map((c, i) => {
    const sorted = [...runs[i]].sort((a, b) => a.rps - b.rps);
    const cpu = runs[i].map((run) => run.cpuUs).sort((a, b) => a - b);
    // Each column its own median: the CPU cost per request is steadier than the throughput of the same run.
    return { name: c.name, ...sorted[Math.floor(sorted.length / 2)], cpuUs: cpu[Math.floor(cpu.length / 2)], runs: runs[i] };
  });
}

/** `pairedRatio` for req/s, p99 latency and (where it was measured) workerd CPU per request, as "… a / b". */
export function pairedRatios(label, a, b) {
  pairedRatio(`req/s, ${label}`, a, b);
  pairedRatio(`p99 latency, ${label} (lower is better)`, a, b, "p99");
  if ([...a.runs, ...b.runs].every((run) => Number.isFinite(run.cpuUs))) {
    pairedRatio(`workerd CPU per request, ${label} (lower is better)`, a, b, "cpuUs");
  }
}

/** The median over rounds of a / b, each round's pair measured back to back; prints every round's ratio too. */
export function pairedRatio(label, a, b, field = "rps") {
  const each = a.runs.map((run, k) => run[field] / b.runs[k][field]);
  const sorted = [...each].sort((x, y) => x - y);
  const value = sorted[Math.floor(sorted.length / 2)];
  console.log(`${label}: ${value.toFixed(2)}x (median of rounds: ${each.map((x) => x.toFixed(2)).join(", ")})`);
  return value;
}

/**
 * The status and header names of `url`'s answer (values — ids, timings — differ between Workers), for a benchmark to
 * check that a reference answers as edgekit does before it is measured: a header one side leaves out is work that
 * side does not do.
 */
export async function answerShape(url, headers = {}) {
  const response = await fetch(url, { headers });
  await response.arrayBuffer();
  return [response.status, ...response.headers.keys()];
}

/**
 * The gateway benchmarks' origin on 127.0.0.1: a small JSON answer of known length, as an API would give, and the
 * header names of the last request it was sent (`lastHeaderNames`), to check that every gateway forwards the same.
 */
export async function benchOrigin() {
  let last = [];
  const server = createServer((req, res) => {
    last = req.rawHeaders;
    const body = JSON.stringify({ path: req.url, user: req.headers["x-user-id"] ?? null });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** The header names of the last request it was sent, lower-cased and sorted. */
    lastHeaderNames: () => last.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()).sort(),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * A fresh key (EdDSA, what edgekit's session issuer signs with, unless `alg` says ES256 or RS256) as the JWKS both
 * gateways read from CONFIG_KV, and an `Authorization` value with a token it signed that edgekit's default policy
 * accepts (iss, aud, an hour to live).
 */
export function benchToken(sub = "bench-user", alg = "EdDSA") {
  const pair = {
    EdDSA: () => generateKeyPairSync("ed25519"),
    ES256: () => generateKeyPairSync("ec", { namedCurve: "P-256" }),
    RS256: () => generateKeyPairSync("rsa", { modulusLength: 2048 }),
  }[alg];
  if (!pair) throw new Error(`benchToken: no ${alg}`);
  const { privateKey, publicKey } = pair();
  const keys = { bench: { alg, privateKey, publicJwk: publicKey.export({ format: "jwk" }) } };
  // No email claim: the JS reference forwards no X-User-Email, so neither side has that header to set.
  const claims = { sub, email: undefined, exp: Math.floor(Date.now() / 1000) + 3600 };
  return { jwks: JSON.stringify(jwksOf(keys)), authorization: `Bearer ${token(keys, "bench", claims)}` };
}

/**
 * On a machine with two or more cores, puts the served Workers' workerd processes on core 1 and this process (so
 * wrk, which it starts, and any origin it serves) on core 0, so a Worker does not compete with its own load for a
 * core. Returns whether it pinned (taskset, from util-linux, must be there).
 */
export function pinWorkers(sides) {
  if (cpus().length < 2 || spawnSync("taskset", ["--version"]).error !== undefined) return false;
  if (sides.some((side) => side.pid === undefined)) return false;
  execFileSync("taskset", ["-a", "-cp", "0", String(process.pid)], { stdio: "ignore" });
  for (const side of sides) execFileSync("taskset", ["-a", "-cp", "1", String(side.pid)], { stdio: "ignore" });
  return true;
}
