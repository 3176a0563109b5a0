// The one harness: serves the built Worker (build/index.js) on workerd through the Miniflare API, with the bindings
// read from wrangler.toml (never copied here), D1 migrated with `wrangler d1 migrations apply`, and each instance's
// state in its own directory so tests do not share data unless they ask to (restart with the same `stateDir`).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { Miniflare } from "miniflare";
import { Agent } from "undici";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

export const ROOT = resolve(import.meta.dirname, "../..");

// workerd closes a connection idle for 5 s (its HTTP server's pipeline timeout; measured: 4.9 s after an answer).
// undici keeps an idle one for 4 s by default, on coarse timers that a loaded machine runs late, so a request could
// go out on a connection workerd was closing and fail "other side closed" — and its one retry on another connection
// as stale (seen with load average 10 on 2 cores). The tests' requests keep connections 1 s at most.
const dispatcher = new Agent({ keepAliveTimeout: 1000, keepAliveMaxTimeout: 1000 });

let template;
/** A state directory with every D1 migration applied, made once per test process (or by scripts/test). */
export function migratedTemplate() {
  if (template) return template;
  if (process.env.EDGEKIT_TEST_STATE && existsSync(process.env.EDGEKIT_TEST_STATE)) {
    template = process.env.EDGEKIT_TEST_STATE;
    return template;
  }
  template = mkdtempSync(join(tmpdir(), "edgekit-template-"));
  // Made for this process only: removed when it exits (exit handlers run synchronously, as rmSync does).
  const made = template;
  process.on("exit", () => rmSync(made, { recursive: true, force: true }));
  applyMigrations(template);
  return template;
}

/** Runs the real `wrangler d1 migrations apply` against a local state directory. */
export function applyMigrations(stateDir) {
  execFileSync(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir],
    { cwd: ROOT, stdio: "pipe", env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } },
  );
}

/**
 * Starts the Worker. Options:
 *  - vars: extra/overriding [vars] (e.g. a bad value to test config validation); RATE_LIMIT_POLICIES given here are
 *    added to wrangler.toml's policies, which other settings (the login limits) name
 *  - buildDir: the built Worker to serve (default build/; a benchmark can compare two builds side by side)
 *  - stateDir: reuse a state directory (persisted KV, D1, DOs, cache) — pass the same one to test restarts
 *  - workerOptions: merged into the worker's Miniflare options (e.g. extra bindings)
 *  - extraWorkers: more Miniflare workers served beside it (e.g. one whose Durable Object class a binding in
 *    workerOptions names with `scriptName`); the Worker stays the one `url` and `fetch` reach
 * Returns { url, fetch(path, init), logs, mf, stateDir, stop() }. `logs` collects workerd's output lines.
 */
export async function startWorker({ vars = {}, stateDir, workerOptions = {}, extraWorkers = [], buildDir = "build" } = {}) {
  const dir = stateDir ?? mkdtempSync(join(tmpdir(), "edgekit-state-"));
  if (!stateDir) cpSync(migratedTemplate(), dir, { recursive: true });
  // wrangler.toml alone: not the .dev.vars `npm start` writes (a signing key), which a CI checkout never has — with
  // it, a test of a Worker without that secret passed locally and failed in CI. An env file that is not there makes
  // wrangler read neither .dev.vars nor .env.
  const fromToml = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"), undefined, {
    envFiles: [join(ROOT, "tests/support/no-env-file")],
  }).workerOptions;
  const logs = [];
  const collect = (stream) => {
    let buffered = "";
    stream.on("data", (chunk) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop();
      logs.push(...lines.filter(Boolean));
    });
  };
  const worker = {
    ...fromToml,
    ...workerOptions,
    modules: true,
    scriptPath: resolve(ROOT, buildDir, "index.js"),
    modulesRoot: resolve(ROOT, buildDir),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    bindings: {
      ...fromToml.bindings,
      ENVIRONMENT: "test",
      DEBUG_ROUTES: true,
      ...vars,
      ...(vars.RATE_LIMIT_POLICIES && {
        RATE_LIMIT_POLICIES: { ...fromToml.bindings.RATE_LIMIT_POLICIES, ...vars.RATE_LIMIT_POLICIES },
      }),
    },
  };
  const shared = {
    host: "127.0.0.1",
    port: 0,
    kvPersist: join(dir, "v3/kv"),
    d1Persist: join(dir, "v3/d1"),
    durableObjectsPersist: join(dir, "v3/do"),
    cachePersist: join(dir, "v3/cache"),
    handleRuntimeStdio(stdout, stderr) {
      collect(stdout);
      collect(stderr);
    },
  };
  const mf = new Miniflare(
    extraWorkers.length ? { ...shared, workers: [{ name: "edgekit", ...worker }, ...extraWorkers] } : { ...shared, ...worker },
  );
  let url;
  try {
    url = await mf.ready;
  } catch (error) {
    await mf.dispose().catch(() => {});
    if (!stateDir) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    mf,
    url,
    logs,
    stateDir: dir,
    /**
     * fetch() against the served Worker over real HTTP on 127.0.0.1. workerd closes a connection after answering a
     * request whose body the Worker did not read (a 405 or 401 to a POST) without saying `Connection: close`, so
     * the next request may go out on that closing socket and fail ("other side closed", or a reset) before workerd
     * reads it (seen about once in ten full runs; 8 of 40 requests sent right after such an answer). A request without a body that meets this is sent once more, on another
     * connection, as browsers retry an idempotent request whose reused connection closed (RFC 9112 §9.3.1); any
     * other failure, and any second one, fails the test.
     */
    fetch: (path, init) => {
      const target = new URL(path, url);
      const method = (init?.method ?? "GET").toUpperCase();
      const idempotent = init?.body == null && (method === "GET" || method === "HEAD");
      const send = () => fetch(target, { dispatcher, ...init });
      return idempotent ? onceMoreIfClosed(send) : send();
    },
    /** JSON log lines the Worker wrote (console.log of one JSON object). */
    jsonLogs: () =>
      logs.flatMap((line) => {
        const start = line.indexOf("{");
        if (start < 0) return [];
        try {
          return [JSON.parse(line.slice(start))];
        } catch {
          return [];
        }
      }),
    async stop({ keepState = false } = {}) {
      await mf.dispose();
      if (!keepState && !stateDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * startWorker options putting a stand-in in place of the KV namespace `binding` (a wrapped binding, not Miniflare's
 * KV): `get` and `put` are the JS source of its methods (by default an empty namespace that takes every write), the
 * others answer as an empty namespace — a KV that is slow, or stuck, which Miniflare's own cannot be.
 */
export function standInKv(binding, { get = "async () => null", put = "async () => {}" } = {}) {
  const { kvNamespaces } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const name = `stand-in-${binding.toLowerCase().replaceAll("_", "-")}`;
  const script = `export default function () {
    return {
      get: ${get},
      put: ${put},
      getWithMetadata: async () => ({ value: null, metadata: null }),
      list: async () => ({ keys: [], list_complete: true }),
      delete: async () => {},
    };
  }`;
  return {
    workerOptions: {
      kvNamespaces: Object.fromEntries(Object.entries(kvNamespaces).filter(([name]) => name !== binding)),
      wrappedBindings: { [binding]: { scriptName: name } },
    },
    extraWorkers: [{ name, modules: true, script }],
  };
}

/**
 * Runs `request()` (a request that changes nothing) once more when the connection it went out on closed before an
 * answer ("other side closed", or a reset): see `fetch` above. Miniflare's own connection to workerd, which carries
 * `getDurableObjectNamespace` stubs' fetches, meets the same on a loaded machine. Any other failure, and any second
 * one, is thrown.
 */
export async function onceMoreIfClosed(request) {
  try {
    return await request();
  } catch (e) {
    // By code, or by message where the error crossed from Miniflare's fetch thread (which keeps no code).
    const closed =
      ["UND_ERR_SOCKET", "ECONNRESET"].includes(e.cause?.code) || /^(other side closed|read ECONNRESET)$/.test(e.cause?.message);
    if (!closed) throw e;
    return request();
  }
}

/**
 * Waits until `predicate()` holds, polling an observable condition (never a fixed sleep) every `every` ms so a
 * wait does not turn into a load test of the Worker; fails after `ms`. `what` may be a function, called on timeout
 * to say what was last seen.
 */
export async function until(predicate, { ms = 5000, what = "condition", every = 20 } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * Makes a Durable Object panic through `/__debug/panic?{query}` (a DEBUG_ROUTES route; `in=room|ratelimiter|directory`)
 * as request `requestId`, and checks what README ("panic") says its caller meets under Miniflare, where the Worker and
 * its objects share one Wasm instance: the bodiless 500 of a request that did not panic itself, with its
 * `x-request-id`, and its request line (500 `internal_error`). Returns the panic's log line, once logged.
 */
export async function panicInObject(w, query, requestId) {
  const answer = await w.fetch(`/__debug/panic?${query}`, { headers: { "x-request-id": requestId } });
  assert.deepEqual([answer.status, answer.headers.get("x-request-id"), await answer.text()], [500, requestId, ""], `the answer to ${query}`);
  const [panic, line] = await until(() => {
    const logs = w.jsonLogs();
    const found = [
      logs.find((l) => l.msg === "panic" && l.panic?.includes(`(request "${requestId}")`)),
      logs.find((l) => l.msg === "request" && l.request_id === requestId),
    ];
    return found.every(Boolean) && found;
  }, { what: () => JSON.stringify(w.jsonLogs().slice(-5)) });
  assert.deepEqual([line.status, line.error_code], [500, "internal_error"], "its request line");
  return panic;
}

/** Resolves once `n` requests of `worker`'s isolate wait on another's work (GET /__debug/coalesce). */
export async function untilWaiting(worker, n) {
  let seen;
  await until(
    async () => {
      seen = (await (await worker.fetch("/__debug/coalesce")).json()).waiting;
      return seen >= n;
    },
    { what: () => `${n} requests waiting on one fill in the Worker (last seen: ${seen})` },
  );
}

/**
 * Ages one of the Worker isolate's memories by `ms` through its debug route (`/__debug/<memory>/age`, DEBUG_ROUTES
 * only): `edge-cache` (the stored copies' freshness), `refresh-holds`, `jwks`, `failed-bookmarks` (the D1 bookmarks a
 * read failed at). A test sees a TTL, a window or a hold
 * end without waiting it out.
 */
export async function age(worker, memory, ms) {
  const r = await worker.fetch(`/__debug/${memory}/age?ms=${ms}`, { method: "POST" });
  assert.equal(r.status, 200, `${memory} aged by ${ms} ms: ${await r.text()}`);
}

/** A raw HTTP/1.1 chunked body of `total` bytes of `fill` (a multiple of 64 KiB) in 64 KiB chunks, as parts to write. */
export function chunkedBody(total, fill = 0) {
  const chunk = Buffer.concat([Buffer.from("10000\r\n"), Buffer.alloc(0x10000, fill), Buffer.from("\r\n")]);
  return [...Array(total / 0x10000).fill(chunk), "0\r\n\r\n"];
}

/**
 * Writes `parts` (strings or buffers: requests, pipelined if several) on one raw connection to `url` and waits until
 * `answers` status lines have come back or the connection ended; the socket is closed after. Returns
 * { statuses, ended }: the answers' statuses in order, and how the connection ended (the socket's error code,
 * "closed", or null while it stayed open).
 */
export async function onOneConnection(url, parts, { answers = 1, ms = 15_000, what = "the answers" } = {}) {
  const { hostname, port } = new URL(url);
  const sock = connect(Number(port), hostname);
  await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  let text = "";
  let ended = null;
  sock.on("data", (data) => (text += data.toString("latin1")));
  sock.on("error", (e) => (ended = e.code));
  sock.on("close", () => (ended ??= "closed"));
  const statuses = () => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  try {
    for (const part of parts) sock.write(part);
    await until(() => statuses().length >= answers || ended, { ms, what });
    return { statuses: statuses(), ended };
  } finally {
    sock.destroy();
  }
}
