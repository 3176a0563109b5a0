// A CPU profile of the built Worker under load: V8's sampling profiler through Miniflare's inspector while wrk loads
// one path, printed as the functions with the most self time (wasm functions keep their Rust names).
//   node bench/profile.mjs [path]     default /health; /api/… goes through a JWT-authenticated gateway route
// Not a benchmark (bench/run.mjs skips it): it is how the eager `request.cf` read was found.
import { createServer } from "node:http";
import { generateKeyPairSync, sign } from "node:crypto";
import WebSocket from "ws";
import { ensureWrk, loadAsync, serveEdgekit } from "./lib.mjs";
const origin = createServer((req, res) => { res.writeHead(200, { "content-type": "application/json", "content-length": 2 }); res.end("{}"); });
await new Promise((r) => origin.listen(0, "127.0.0.1", r));
const originUrl = `http://127.0.0.1:${origin.address().port}`;
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "bench", alg: "EdDSA", use: "sig" }] });
const now = Math.floor(Date.now() / 1000);
const part = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
const input = `${part({ alg: "EdDSA", typ: "JWT", kid: "bench" })}.${part({ iss: "edgekit", aud: "edgekit-api", sub: "u", iat: now, exp: now + 3600 })}`;
const AUTH = { authorization: `Bearer ${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}` };
const PORT = Number(process.env.INSPECTOR_PORT ?? 9339);
ensureWrk();
const rust = await serveEdgekit({ vars: { GATEWAY_ROUTES: [{ name: "api", path: "/api", upstream: originUrl, auth: "jwt" }] }, workerOptions: { inspectorPort: PORT } });
await (await rust.mf.getKVNamespace("CONFIG_KV")).put("jwks", jwks);
const PATH = (process.argv[2] ?? "/health").replace(/^\//, "");
try {
  await loadAsync(`${rust.url}${PATH}`, { seconds: 2, connections: 8, headers: AUTH });
  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
  const target = targets.find((t) => /edgekit|core:user/.test(t.title)) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r) => ws.on("open", r));
  let id = 0; const pending = new Map();
  ws.on("message", (m) => { const msg = JSON.parse(m); if (pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); } });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  await send("Profiler.enable"); await send("Profiler.setSamplingInterval", { interval: 100 }); await send("Profiler.start");
  const stats = await loadAsync(`${rust.url}${PATH}`, { seconds: 6, headers: AUTH });
  const { result } = await send("Profiler.stop");
  console.log(`GET /${PATH} under wrk -t2 -c32 -d6s: ${stats.rps.toFixed(0)} req/s; CPU samples by function (self time):`);
  const nodes = result.profile.nodes; const self = new Map(); let total = 0;
  for (const n of nodes) { const k = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}`; self.set(k, (self.get(k) ?? 0) + n.hitCount); total += n.hitCount; }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 45);
  for (const [k, v] of top) console.log((100 * v / total).toFixed(1).padStart(5) + "%", k.slice(0, 150));
  ws.close();
} finally { await rust.stop(); origin.close(); }
