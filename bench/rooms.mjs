// Rooms fan-out: real y-websocket clients in one room on 127.0.0.1, against the Rust Room object and the plain-JS
// relay Durable Object (bench/reference/relay.mjs, hibernation API), measured the same way in this one run.
//  - fan-out latency: one sender inserts into the Y.Text; the time until each of N receivers observes the insert,
//    p50/p99 over every (update, receiver) pair, sequential updates, N = 10, 50, 100;
//  - sustained updates/s: the sender sends a burst of updates; updates/s until the last receiver has them all.
// Bounded: a fixed number of updates per case, a per-wait timeout. Env: BENCH_UPDATES (default 40), BENCH_BURST (300),
// BENCH_SIZES (10,50,100), BENCH_QUIET_MS (120000: the longest wait for the joins' sync traffic to drain).
import WebSocket from "ws";
// Every provider adds a process exit listener; hundreds are expected here.
process.setMaxListeners(0);
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { Awareness } from "y-protocols/awareness";
import { ratio, serveEdgekit, serveScript } from "./lib.mjs";

const UPDATES = Number(process.env.BENCH_UPDATES ?? 40);
const BURST = Number(process.env.BENCH_BURST ?? 300);
const WARMUP = 10;
const SIZES = (process.env.BENCH_SIZES ?? "10,50,100").split(",").map(Number);
const QUIET_MS = Number(process.env.BENCH_QUIET_MS ?? 120000);

async function until(predicate, ms = 20000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

async function ticket(base, room) {
  const r = await fetch(new URL(`/__debug/rooms/${room}/ticket?user=bench`, base), { method: "POST" });
  return (await r.json()).ticket;
}

/** A y-websocket client; with `presence` it announces a user name (as editors do), without it none at all. */
async function connect(base, room, presence) {
  const doc = new Y.Doc();
  const awareness = new Awareness(doc);
  if (presence) awareness.setLocalStateField("user", { name: `bench-${doc.clientID}` });
  else awareness.setLocalState(null);
  const provider = new WebsocketProvider(base.href.replace(/^http/, "ws") + `rooms/${room}`, "ws", doc, {
    WebSocketPolyfill: WebSocket,
    params: { ticket: await ticket(base, room) },
    disableBc: true,
    awareness,
  });
  await until(() => provider.wsconnected, 20000, "socket open");
  const client = { doc, provider, text: doc.getText("text"), last: performance.now() };
  // Only sync traffic (y-protocols message type 0) counts for settling: every client renews its awareness every
  // ~15 s, so 100 clients are never quiet for 500 ms if awareness counts, on either side.
  provider.ws.addEventListener("message", (event) => {
    if (new Uint8Array(event.data)[0] === 0) client.last = performance.now();
  });
  return client;
}

/** Waits (at most QUIET_MS) until no client has received a sync message for 500 ms. */
async function quiet(clients) {
  const deadline = Date.now() + QUIET_MS;
  while (Date.now() < deadline) {
    const newest = Math.max(...clients.map((c) => c.last));
    if (performance.now() - newest > 500) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the room never went quiet");
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function measure(base, n, presence) {
  const room = `bench-${n}-${presence ? "p" : "q"}-${Date.now()}`;
  const sender = await connect(base, room, presence);
  const receivers = [];
  try {
    for (let i = 0; i < n; i++) receivers.push(await connect(base, room, presence));
    // Settle: the joins' sync/awareness traffic has drained (the relay forwards every sync step to everyone, so it
    // has far more of it), then every receiver has seen one marker insert.
    await quiet([sender, ...receivers]);
    sender.text.insert(0, "#");
    await until(() => receivers.every((r) => r.text.length >= 1), 30000, "settled");

    // Warm-up updates (not measured) let the joins' sync and awareness traffic drain on both sides.
    const latencies = [];
    for (let u = -WARMUP; u < UPDATES; u++) {
      const target = sender.text.length + 1;
      const seen = new Array(n).fill(0);
      const handlers = receivers.map((r, i) => {
        const h = () => {
          if (!seen[i] && r.text.length >= target) seen[i] = performance.now();
        };
        r.text.observe(h);
        return h;
      });
      const sent = performance.now();
      sender.text.insert(sender.text.length, "x");
      await until(() => seen.every(Boolean), 20000, `update ${u} fan-out`);
      receivers.forEach((r, i) => r.text.unobserve(handlers[i]));
      if (u >= 0) for (const t of seen) latencies.push(t - sent);
    }
    latencies.sort((a, b) => a - b);

    const startLen = sender.text.length;
    const started = performance.now();
    for (let u = 0; u < BURST; u++) sender.text.insert(sender.text.length, "y");
    await until(() => receivers.every((r) => r.text.length >= startLen + BURST), 60000, "burst delivered");
    const ups = BURST / ((performance.now() - started) / 1000);
    return { p50: pct(latencies, 50), p99: pct(latencies, 99), ups };
  } finally {
    // Also on failure, so a room that never settles does not keep node alive.
    for (const c of [sender, ...receivers]) {
      c.provider.destroy();
      c.doc.destroy();
    }
  }
}

const rooms = await serveEdgekit({
  vars: {
    DEBUG_ROUTES: true,
    ROOMS_MAX_MEMBERS: 500,
    ROOMS_UPDATES_PER_SECOND: 10000,
    ROOMS_UPDATE_BURST: 100000,
  },
});
const relay = await serveScript("bench/reference/relay.mjs", {
  durableObjects: { RELAY: { className: "Relay", useSQLite: true } },
});
// Two rounds. Without presence, the only join traffic is sync: the relay forwards each joiner's sync step 1 to
// everyone and every answer to everyone (O(n³) messages for n joins), which it drains in seconds to tens of seconds,
// after which both sides are measured in the same quiet state: this is the comparison the target is about. With
// presence (every client announces a name, as editors do), y-websocket clients send back every awareness update
// they apply; the relay forwards those copies too (n² messages per presence change, ~1M per 15 s renewal round at
// 100 clients) and may never settle, while the room forwards only news.
const rounds = [
  { presence: false, title: "clients without presence (sync traffic only)" },
  { presence: true, title: "clients with presence (each announces a name; awareness renewed every 15 s)" },
];
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
try {
  for (const { presence, title } of rounds) {
    console.log(`\nRooms fan-out, ${title}: y-websocket clients on 127.0.0.1, ${UPDATES} sequential updates per size, burst of ${BURST}`);
    console.log("| clients | room p50 ms | room p99 ms | relay p50 ms | relay p99 ms | p99 room/relay | room upd/s | relay upd/s |");
    console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const n of SIZES) {
      const failed = (e) => ({ p50: NaN, p99: NaN, ups: NaN, failed: e.message });
      const r = await measure(rooms.url, n, presence).catch(failed);
      const j = await measure(relay.url, n, presence).catch(failed);
      if (r.failed) console.log(`room at ${n} clients: ${r.failed}`);
      if (j.failed) console.log(`relay at ${n} clients: ${j.failed}`);
      console.log(
        `| ${n} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(j.p50)} | ${fmt(j.p99)} | ${fmt(r.p99 / j.p99)}x | ${fmt(r.ups)} | ${fmt(j.ups)} |`,
      );
      if (!presence && n === Math.max(...SIZES)) {
        ratio(`p99 fan-out at ${n} clients without presence, room / relay (target <= 1.25x)`, r.p99, j.p99);
      }
    }
  }
} finally {
  await rooms.stop();
  await relay.stop();
}
