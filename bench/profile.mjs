// A CPU profile of the built Worker under load: V8's sampling profiler through Miniflare's inspector while wrk loads
// one path, printed as the functions with the most self time (wasm functions keep their Rust names).
//   node bench/profile.mjs [path]     default /health; /api/… goes through a JWT-authenticated gateway route,
//                                     /cached/… through a gateway route with the api-public cache policy
//   node bench/profile.mjs rooms      a Room object: one y-websocket client inserting, 10 receiving, for 6 s
//   PROFILE_JS=1 node bench/profile.mjs /api/x   the JS reference gateway instead, to set the two side by side
//   PROFILE_FLOOR=1 node bench/profile.mjs /api/x   the wasm floor (bench/floor: forwarding only)
// Besides the top functions it prints self time by group — wasm, wasm-bindgen glue (index.js), the JS reference,
// runtime built-ins, idle, GC — also per request, with the Worker pinned to its own core as in the benchmarks.
// Not a benchmark (bench/run.mjs skips it): it is how the eager `request.cf` read was found.
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { benchOrigin, benchToken, ensureWrk, loadAsync, pinWorkers, serveEdgekit, serveFloor, serveScript } from "./lib.mjs";
const origin = await benchOrigin();
const originUrl = origin.url;
const { jwks, authorization } = benchToken();
const AUTH = { authorization };
const PORT = Number(process.env.INSPECTOR_PORT ?? 9339);
ensureWrk();
const rust = process.env.PROFILE_FLOOR
  ? await serveFloor(originUrl, { inspectorPort: PORT })
  : process.env.PROFILE_JS
  ? await serveScript("bench/reference/gateway.mjs", { kvNamespaces: ["CONFIG_KV"], bindings: { ORIGIN: originUrl, TOKEN_CACHE: "on" }, inspectorPort: PORT })
  : await serveEdgekit({ vars: { DEBUG_ROUTES: true, ROOMS_UPDATES_PER_SECOND: 10000, ROOMS_UPDATE_BURST: 100000, GATEWAY_ROUTES: [{ name: "api", path: "/api", upstream: originUrl, auth: "jwt" }, { name: "cached", path: "/cached", upstream: originUrl, cache: "api-public" }] }, workerOptions: { inspectorPort: PORT } });
if (!process.env.PROFILE_FLOOR) await (await rust.mf.getKVNamespace("CONFIG_KV")).put("jwks", jwks);
pinWorkers([rust]);
const PATH = (process.argv[2] ?? "/health").replace(/^\//, "");

/** Drives a room for `seconds`: sequential inserts, each awaited until every receiver has it. */
async function roomLoad(seconds, receivers = 10) {
  const clients = [];
  for (let i = 0; i <= receivers; i++) {
    const t = await (await fetch(new URL("/__debug/rooms/profile/ticket?user=p", rust.url), { method: "POST" })).json();
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(rust.url.href.replace(/^http/, "ws") + "rooms/profile", "ws", doc, { WebSocketPolyfill: WebSocket, params: { ticket: t.ticket }, disableBc: true });
    clients.push({ doc, provider, text: doc.getText("text") });
  }
  // Event-driven waits (a setImmediate spin would take a core from workerd while it is being profiled).
  await Promise.all(clients.map((c) => (c.provider.synced ? null : new Promise((r) => c.provider.once("sync", r)))));
  const [sender, ...rest] = clients;
  const reached = (c, want) =>
    c.text.length >= want ? null : new Promise((r) => {
      const seen = () => { if (c.text.length >= want) { c.doc.off("update", seen); r(); } };
      c.doc.on("update", seen);
    });
  const end = Date.now() + seconds * 1000;
  let updates = 0;
  while (Date.now() < end) {
    sender.text.insert(sender.text.length, "x");
    const want = sender.text.length;
    await Promise.all(rest.map((c) => reached(c, want)));
    updates++;
  }
  for (const c of clients) { c.provider.destroy(); c.doc.destroy(); }
  return { rps: updates / seconds };
}
const load = (seconds, options) => (PATH === "rooms" ? roomLoad(seconds) : loadAsync(`${rust.url}${PATH}`, { seconds, ...options }));
try {
  await load(2, { connections: 8, headers: AUTH });
  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
  const target = targets.find((t) => /edgekit|core:user/.test(t.title)) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r) => ws.on("open", r));
  let id = 0; const pending = new Map();
  ws.on("message", (m) => { const msg = JSON.parse(m); if (pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); } });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  await send("Profiler.enable"); await send("Profiler.setSamplingInterval", { interval: 100 }); await send("Profiler.start");
  const stats = await load(6, { headers: AUTH });
  const { result } = await send("Profiler.stop");
  const what = PATH === "rooms" ? "room, 1 sender + 10 receivers, 6 s" : `GET /${PATH} under wrk -t2 -c32 -d6s`;
  console.log(`${what}: ${stats.rps.toFixed(0)} per s; CPU samples by function (self time):`);
  const nodes = result.profile.nodes; const self = new Map(); let total = 0;
  for (const n of nodes) { const k = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}`; self.set(k, (self.get(k) ?? 0) + n.hitCount); total += n.hitCount; }
  const groups = new Map();
  for (const [k, v] of self) {
    const g = /^\((idle|program|garbage collector)\)/.test(k) ? k.trim() : /\.wasm/.test(k) ? "wasm" : /index\.js$/.test(k) ? "wasm-bindgen glue (index.js)" : /gateway\.mjs$/.test(k) ? "JS reference (gateway.mjs)" : "runtime built-ins";
    groups.set(g, (groups.get(g) ?? 0) + v);
  }
  // Samples are 100 µs apart: a group's samples × 100 µs / requests is its CPU time per request (µs).
  const per = (v) => (stats.requests ? ` ${((v * 100) / stats.requests).toFixed(0).padStart(5)} µs/request` : "");
  for (const [k, v] of [...groups].sort((a, b) => b[1] - a[1])) console.log("group " + (100 * v / total).toFixed(1).padStart(5) + "%" + per(v), k);
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 45));
  for (const [k, v] of top) console.log((100 * v / total).toFixed(1).padStart(5) + "%", k.slice(0, 150));
  if (process.env.PROFILE_INCLUSIVE) {
    // Inclusive time (self + callees) of the functions whose name matches the regex: each sample counted once per
    // function however deep the recursion.
    const re = new RegExp(process.env.PROFILE_INCLUSIVE);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const inclusive = new Map();
    for (const n of nodes) {
      if (!n.hitCount) continue;
      const seen = new Set();
      for (let id = n.id; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id).callFrame.functionName || "(anon)";
        if (re.test(f) && !seen.has(f)) { seen.add(f); inclusive.set(f, (inclusive.get(f) ?? 0) + n.hitCount); }
      }
    }
    console.log("inclusive time:");
    for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 60)) console.log((100 * v / total).toFixed(1).padStart(5) + "%" + per(v), k.slice(0, 140));
  }
  ws.close();
} finally { await rust.stop(); origin.close(); }
