// Rooms fan-out: real y-websocket clients in one room on 127.0.0.1, against the Rust Room object and the plain-JS
// relay Durable Object (bench/reference/relay.mjs, hibernation API), measured the same way in this one run: both
// rooms joined side by side, then measured in alternating batches (every other one in reverse order) so drifting
// machine load falls on both alike, after checking that every side answers a join as the room does (status, header
// names, permessage-deflate negotiated), with the rooms' workerd processes pinned to core 1 and the clients to core 0.
// Every receiver is a client in this one node process, which reads the N copies of an update one after another: the
// last receiver's time includes the client side's handling of the copies before it, the same on every side, which
// draws the room / relay ratios toward 1 as N grows (a floor shared by both, not a cost of either).
//  - fan-out latency: one sender inserts into the Y.Text; the time until each of N receivers observes the insert,
//    p50/p99 over every (update, receiver) pair, sequential updates, N = 10, 50, 100;
//  - sustained updates/s: the sender sends a burst of updates; updates/s until the last receiver has them all.
// Bounded: a fixed number of updates per case, a per-wait timeout. Env: BENCH_UPDATES (default 200, in batches of 20), BENCH_BURST (300),
// BENCH_SIZES (10,50,100), BENCH_QUIET_MS (120000: the longest wait for the joins' sync traffic to drain).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import WebSocket from "ws";
// Every provider adds a process exit listener; hundreds are expected here.
process.setMaxListeners(0);
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { Awareness } from "y-protocols/awareness";
import assert from "node:assert/strict";
import { pinWorkers, ratio, serveEdgekit, serveScript } from "./lib.mjs";

const UPDATES = Number(process.env.BENCH_UPDATES ?? 200);
const BATCH = 20;
const BURST = Number(process.env.BENCH_BURST ?? 300);
// Unmeasured inserts per side first: a fresh isolate runs the room's wasm in V8's baseline tier until its hot functions
// tier up, which showed as 10–25 ms fan-outs over the first ~40 updates (later spikes: about 1 in 100).
const WARMUP = 50;
const SIZES = (process.env.BENCH_SIZES ?? "10,50,100").split(",").map(Number);
const QUIET_MS = Number(process.env.BENCH_QUIET_MS ?? 120000);

async function until(predicate, ms = 20000, what = "condition") {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1)); // not setImmediate: a busy loop would take a core from workerd
  }
}

/**
 * A ticket for a user of its own: a room admits a few sockets per member (MAX_SOCKETS_PER_USER), so clients that
 * all joined as one user were refused 429 past that many, and the room side never settled beyond it.
 */
let users = 0;
async function ticket(base, room) {
  const r = await fetch(new URL(`/__debug/rooms/${room}/ticket?user=bench-${++users}`, base), { method: "POST" });
  if (r.status !== 201) throw new Error(`${base.host}: ticket refused ${r.status} ${await r.text()}`);
  return (await r.json()).ticket;
}

/**
 * The status, header names and negotiated extensions of a join's handshake: every side must answer as the room does
 * (permessage-deflate on one side only would change every message's work at both ends). `x-request-id` is left out:
 * edgekit stamps it on every answer, once per join, not per update.
 */
async function handshake(base) {
  const room = `bench-shape-${Date.now()}`;
  const ws = new WebSocket(base.href.replace(/^http/, "ws") + `rooms/${room}/ws?ticket=${await ticket(base, room)}`);
  let answer;
  ws.on("upgrade", (response) => (answer = response));
  await new Promise((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("error", reject);
  });
  const shape = { status: answer.statusCode, headers: Object.keys(answer.headers).filter((n) => n !== "x-request-id").sort(), extensions: ws.extensions };
  await new Promise((resolve) => {
    ws.on("close", resolve);
    ws.close();
  });
  return shape;
}

/** Unexpected socket closes by side and code, reported when a wait fails. */
const closes = new Map();

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
  provider.on("connection-close", (event) => {
    const key = `${base.host} ${event?.code} ${event?.reason ?? ""}`;
    closes.set(key, (closes.get(key) ?? 0) + 1);
  });
  await until(() => provider.wsconnected, 20000, "socket open");
  // Measured inserts go to `text`, which only the sender edits; keep-alive inserts go to `alive`.
  const client = { doc, provider, text: doc.getText("text"), alive: doc.getText("alive"), last: performance.now() };
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

/** A settled room of one sender and n receivers: joins drained (sync quiet), then a marker insert seen by all. */
async function join(base, n, presence) {
  const room = `bench-${n}-${presence ? "p" : "q"}-${Date.now()}`;
  const side = { url: base.href, sender: await connect(base, room, presence), receivers: [] };
  try {
    for (let i = 0; i < n; i++) side.receivers.push(await connect(base, room, presence));
    await quiet([side.sender, ...side.receivers]);
    side.sender.text.insert(0, "#");
    await until(() => side.receivers.every((r) => r.text.length >= 1), 30000, "settled");
    // Clients without presence receive nothing while another side joins or is measured (and the sender never gets
    // its own inserts back), and y-websocket drops a socket after 30 s of silence, reconnecting with a used ticket:
    // every 10 s the sender and one receiver each insert, so that every client hears from someone — while any side
    // is measured, not until the next batch, or their 2×N deliveries would land inside the measured update's.
    side.keepalive = setInterval(() => {
      side.due = true;
      if (measuring === 0) keepAlive(side);
    }, 10000);
    live.add(side);
    return side;
  } catch (e) {
    leave(side); // also on failure, so a room that never settles does not keep node alive
    throw e;
  }
}

/** The sides joined and not left, and how many are being measured (their keep-alive inserts wait meanwhile). */
const live = new Set();
let measuring = 0;

/** Sends `side`'s keep-alive inserts; returns the `alive` length every client of the side has once they arrive. */
function keepAlive(side) {
  side.due = false;
  const target = side.sender.alive.length + 2;
  side.sender.alive.insert(0, "k");
  side.receivers[0].alive.insert(0, "k");
  return target;
}

/** Between measurements: sends the keep-alive inserts that fell due meanwhile and waits until they are delivered. */
async function keepAlivesDue() {
  for (const side of live) {
    if (!side.due) continue;
    const target = keepAlive(side);
    await until(() => [side.sender, ...side.receivers].every((c) => c.alive.length >= target), 20000, "keep-alive delivered");
  }
}

function leave(side) {
  live.delete(side);
  clearInterval(side.keepalive);
  for (const c of [side.sender, ...side.receivers]) {
    c.provider.destroy();
    c.doc.destroy();
  }
}

/** Sequential single-character inserts; per insert, the time until each receiver observes it (event-driven). */
async function latencies(side, count) {
  await keepAlivesDue();
  measuring++;
  try {
    return await timed(side, count);
  } finally {
    measuring--;
  }
}

async function timed(side, count) {
  const out = [];
  for (let u = 0; u < count; u++) {
    const target = side.sender.text.length + 1;
    const seen = new Array(side.receivers.length).fill(0);
    let left = seen.length;
    let done;
    const all = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const connected = side.receivers.filter((r) => r.provider.wsconnected).length;
        reject(new Error(`${side.url}: an update reached ${seen.filter(Boolean).length} of ${seen.length} receivers within 20 s (${connected} connected; closes: ${JSON.stringify([...closes])})`));
      }, 20000);
      done = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const handlers = side.receivers.map((r, i) => {
      const h = () => {
        if (!seen[i] && r.text.length >= target) {
          seen[i] = performance.now();
          if (--left === 0) done();
        }
      };
      r.text.observe(h);
      return h;
    });
    const sent = performance.now();
    side.sender.text.insert(side.sender.text.length, "x");
    try {
      await all;
    } finally {
      side.receivers.forEach((r, i) => r.text.unobserve(handlers[i]));
    }
    for (const t of seen) out.push(t - sent);
  }
  return out;
}

/** Updates/s while the sender sends BURST inserts at once, until the last receiver has them all. */
async function burst(side) {
  await keepAlivesDue();
  measuring++;
  try {
    return await timedBurst(side);
  } finally {
    measuring--;
  }
}

async function timedBurst(side) {
  const startLen = side.sender.text.length;
  const started = performance.now();
  for (let u = 0; u < BURST; u++) side.sender.text.insert(side.sender.text.length, "y");
  await until(() => side.receivers.every((r) => r.text.length >= startLen + BURST), 60000, "burst delivered");
  return BURST / ((performance.now() - started) / 1000);
}

/**
 * Every target's room joined at once, then measured in alternating batches (room, relay, …) so that machine load
 * drifting during the run falls on all alike; with `interleave` false each is joined, measured and left in turn (a
 * relay that never settles then cannot load the machine while another side is measured). A side that never
 * settles is reported, not hidden.
 */
async function measure(n, presence, targets, interleave) {
  if (!interleave) {
    const out = [];
    for (const t of targets) out.push((await measure(n, presence, [t], true))[0]);
    return out;
  }
  const failed = (e) => ({ failed: e.message });
  const joined = [];
  for (const t of targets) joined.push(await join(t.url, n, presence).catch(failed));
  const sides = joined.filter((s) => !s.failed);
  try {
    for (const side of sides) await latencies(side, WARMUP);
    const lat = sides.map(() => []);
    const batches = Math.max(1, Math.ceil(UPDATES / BATCH));
    for (let b = 0; b < batches; b++) {
      // Every other batch in reverse order, as lib.mjs alternate does: no side always follows the same other.
      const order = [...sides.keys()];
      if (b % 2 === 1) order.reverse();
      for (const i of order) lat[i].push(...(await latencies(sides[i], BATCH)));
    }
    const ups = [];
    for (const side of sides) ups.push(await burst(side));
    return joined.map((side) => {
      const i = sides.indexOf(side);
      if (i < 0) return { p50: NaN, p99: NaN, ups: NaN, failed: side.failed };
      const sorted = lat[i].sort((a, b) => a - b);
      return { p50: pct(sorted, 50), p99: pct(sorted, 99), ups: ups[i] };
    });
  } finally {
    sides.forEach(leave);
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
const relayOptions = { durableObjects: { RELAY: { className: "Relay", useSQLite: true } } };
const relay = await serveScript("bench/reference/relay.mjs", relayOptions);
// The appending relay keeps its log on disk, like the room's (startWorker persists to a temporary directory).
const appendDir = mkdtempSync(joinPath(tmpdir(), "edgekit-relay-"));
const appending = await serveScript("bench/reference/relay.mjs", {
  ...relayOptions,
  bindings: { APPEND: "on" },
  durableObjectsPersist: appendDir,
});
// Two rounds. Without presence, the only join traffic is sync: the relay forwards each joiner's sync step 1 to
// everyone and every answer to everyone (O(n³) messages for n joins), which it drains in seconds to tens of seconds,
// after which every side is measured in the same quiet state: this is the comparison the target is about. With
// presence (every client announces a name, as editors do), y-websocket clients send back every awareness update
// they apply; the relay forwards those copies too (n² messages per presence change, ~1M per 15 s renewal round at
// 100 clients) and may never settle, while the room forwards only news.
const rounds = [
  {
    presence: false,
    interleave: true,
    title: "clients without presence (sync traffic only)",
    targets: [
      { name: "room", url: rooms.url },
      { name: "relay", url: relay.url },
      { name: "relay+append", url: appending.url },
    ],
  },
  {
    presence: true,
    interleave: false,
    title: "clients with presence (each announces a name; awareness renewed every 15 s)",
    targets: [
      { name: "room", url: rooms.url },
      { name: "relay", url: relay.url },
    ],
  },
];
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
// The rooms' workerd processes on core 1, the clients (this process) on core 0, as bench/gateway.mjs pins.
const pinned = pinWorkers([rooms, relay, appending]);
try {
  const roomShape = await handshake(new URL(rooms.url));
  assert.equal(roomShape.status, 101, "the room accepts the join");
  for (const side of [relay, appending]) assert.deepEqual(await handshake(new URL(side.url)), roomShape, `${side.url} answers a join as the room does`);
  for (const { presence, interleave, title, targets } of rounds) {
    console.log(`\nRooms fan-out, ${title}: y-websocket clients on 127.0.0.1, ${UPDATES} sequential updates per size, burst of ${BURST}${pinned ? ", rooms pinned to core 1, clients to core 0" : ""}`);
    const names = targets.map((t) => t.name);
    const others = names.slice(1);
    console.log(
      `| clients | ${names.map((x) => `${x} p50 ms | ${x} p99 ms`).join(" | ")} | ${others.map((x) => `p99 room/${x}`).join(" | ")} | ${names.map((x) => `${x} upd/s`).join(" | ")} |`,
    );
    console.log(`|---:|${"---:|".repeat(names.length * 3 + others.length)}`);
    for (const n of SIZES) {
      const results = await measure(n, presence, targets, interleave);
      results.forEach((r, i) => r.failed && console.log(`${names[i]} at ${n} clients: ${r.failed}`));
      const [r, ...rest] = results;
      console.log(
        `| ${n} | ${results.map((x) => `${fmt(x.p50)} | ${fmt(x.p99)}`).join(" | ")} | ${rest.map((x) => `${fmt(r.p99 / x.p99)}x`).join(" | ")} | ${results.map((x) => fmt(x.ups)).join(" | ")} |`,
      );
      if (!presence && n === Math.max(...SIZES)) {
        ratio(`p99 fan-out at ${n} clients without presence, room / relay (target <= 1.25x)`, r.p99, rest[0].p99);
        ratio(`p99 fan-out at ${n} clients without presence, room / relay+append (what the room adds to durability)`, r.p99, rest[1].p99);
      }
    }
  }
} finally {
  await rooms.stop();
  await relay.stop();
  await appending.stop();
  rmSync(appendDir, { recursive: true, force: true });
}
