// Rooms: the stock y-websocket provider (real yjs, y-websocket and ws packages) against the Room Durable Object on
// workerd: convergence, late joiners, presence, durability across a restart, reconnects, tickets, bad frames, the
// directory, and the members' message and reply budgets. Rooms behind a real session, and what a session's end
// does to its tickets and sockets: tests/rooms.sessions.test.mjs (the two files share tests/support/rooms.mjs).
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import * as Y from "yjs";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { ROOT, migratedTemplate, panicInObject, startWorker, until } from "./support/worker.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";
import { DEMO_USERS, seed } from "../scripts/seed.mjs";
import {
  VARS,
  SLOW_ROOM_MS,
  untilOverBudget,
  ticket,
  client,
  syncUpdate,
  awareness,
  rawSocket,
  refusedWith,
  joinStatus,
  rawAnswer,
  live,
  destroyAll,
  joinFrom,
  deafSocket,
  closeFrame,
  closeCode,
  walBytesOf,
  awarenessClient,
  awarenessOf,
  encodeVarUint8Array,
  loginToken,
  cookieOf,
} from "./support/rooms.mjs";

afterEach(() => destroyAll(...live));

describe("rooms", () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: VARS });
  });
  after(async () => {
    await w?.stop();
  });

  test("three clients editing concurrently converge, and a late joiner receives everything", async () => {
    const clients = await Promise.all([client(w, "converge"), client(w, "converge"), client(w, "converge")]);
    clients.forEach((c, i) => {
      for (let n = 0; n < 5; n++) c.text.insert(0, `${"abc"[i]}${n}`);
    });
    await until(
      () => clients.every((c) => c.text.length === 30 && c.text.toString() === clients[0].text.toString()),
      { what: "three clients converged" },
    );
    const late = await client(w, "converge");
    await until(() => late.text.toString() === clients[0].text.toString(), { what: "late joiner caught up" });
    assert.equal(late.text.length, 30, "every edit reached the late joiner");
    destroyAll(...clients, late);
  });

  test("presence: a join arrives and a closed socket's presence is removed for the others", async () => {
    const a = await client(w, "presence", { name: "ann" });
    const b = await client(w, "presence", { name: "bob" });
    const bId = b.doc.clientID;
    await until(() => a.provider.awareness.getStates().get(bId)?.user?.name === "bob", { what: "ann sees bob" });
    await until(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === "ann", {
      what: "bob sees ann",
    });
    // Cut bob's socket without a goodbye: only the room can tell ann that bob left.
    b.provider.shouldConnect = false;
    b.provider.ws.terminate();
    await until(() => !a.provider.awareness.getStates().has(bId), { what: "bob's presence removed for ann" });
    destroyAll(a, b);
  });

  test("a client that reconnects catches up on what it missed", async () => {
    const a = await client(w, "reconnect");
    const b = await client(w, "reconnect");
    a.text.insert(0, "before;");
    await until(() => b.text.toString() === "before;", { what: "b saw a's first edit" });
    a.provider.disconnect();
    b.text.insert(b.text.length, "while-away;");
    a.provider.params.ticket = await ticket(w, "reconnect");
    a.provider.connect();
    await until(() => a.text.toString() === "before;while-away;", { what: "a caught up after reconnecting" });
    destroyAll(a, b);
  });

  test("joining needs a ticket, and a ticket admits one socket once", async () => {
    const base = w.url.href.replace(/^http/, "ws") + "rooms/tickets/ws";
    assert.equal(await refusedWith(base), 401, "no ticket");
    assert.equal(await refusedWith(`${base}?ticket=made-up`), 401, "unknown ticket");
    assert.equal(refusedWith.headers["cache-control"], "no-store", "a refusal from the room object is not cached either");
    const t = await ticket(w, "tickets");
    const first = new WebSocket(`${base}?ticket=${t}`);
    await new Promise((resolve, reject) => {
      first.once("open", resolve);
      first.once("error", reject);
    });
    assert.equal(await refusedWith(`${base}?ticket=${t}`), 401, "reused ticket");
    first.close();
    const other = await ticket(w, "elsewhere");
    assert.equal(await refusedWith(`${base}?ticket=${other}`), 401, "a ticket for another room");
    assert.equal(refusedWith.headers["content-type"], "application/json", "labelled as the Worker's answers");
    const plain = await w.fetch("/rooms/tickets/ws");
    assert.equal(plain.status, 426, "a plain GET is told to upgrade");
    // A HEAD of the join is no handshake: refused before the room, its ticket left for the real join. (A HEAD that
    // also asks to upgrade reaches the Worker as a GET under Miniflare, whose own layer then fails it with a plain
    // 500: the runtime's, not ours to answer.)
    const kept = await ticket(w, "tickets");
    const head = await w.fetch(`/rooms/tickets/ws?ticket=${kept}`, { method: "HEAD" });
    assert.equal(head.status, 405, "HEAD of the join");
    assert.equal(head.headers.get("allow"), "GET");
    const joined = new WebSocket(`${base}?ticket=${kept}`);
    await new Promise((resolve, reject) => {
      joined.once("open", resolve);
      joined.once("error", reject);
    });
    joined.close();
    const noSession = await w.fetch("/rooms/tickets/ticket", { method: "POST" });
    assert.equal(noSession.status, 401, "the public ticket route requires a signed-in user");
  });

  test("an expired ticket admits no one, where a live one for the same room joins (coverage only: seen failing with the room's expiry checks removed)", async () => {
    // Replay once used and in another room are above; expiry had no test, the TTL (5 s at least) being too long to
    // wait out: the debug route issues a ticket that expired a millisecond before its issue.
    const base = w.url.href.replace(/^http/, "ws") + "rooms/ticket-expiry/ws";
    const issued = await w.fetch("/__debug/rooms/ticket-expiry/ticket?user=tester&expired=1", { method: "POST" });
    assert.equal(issued.status, 201, "debug ticket issued");
    const { ticket: expired, expires_ms } = await issued.json();
    assert.ok(expires_ms < Date.now(), "issued already expired");
    assert.equal(await joinStatus(`${base}?ticket=${expired}`), 401, "the expired ticket is refused");
    assert.equal(await joinStatus(`${base}?ticket=${await ticket(w, "ticket-expiry")}`), 101, "a live ticket for the room joins");
  });

  test("the debug ticket route's expired= takes 1 or nothing: any other value is a 400, never a live ticket a test would take for an expired one", async () => {
    for (const value of ["0", "true", "yes", ""]) {
      const r = await w.fetch(`/__debug/rooms/ticket-expiry/ticket?user=tester&expired=${value}`, { method: "POST" });
      assert.equal(r.status, 400, `expired=${value}`);
      assert.equal((await r.json()).error.code, "invalid_parameter", `expired=${value}`);
    }
  });

  test("a handshake the runtime would refuse is refused before the ticket is spent (RFC 6455 §4.2)", async () => {
    const base = w.url.href.replace(/^http/, "ws") + "rooms/handshake/ws";
    const t = await ticket(w, "handshake");
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const cases = [
      [{ upgrade: "websocket", connection: "Upgrade" }, 426, "websocket_version"],
      [{ upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": key, "sec-websocket-version": "8" }, 426, "websocket_version"],
      [{ upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13" }, 400, "bad_handshake"],
      [{ upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "x", "sec-websocket-version": "13" }, 400, "bad_handshake"],
      // WebSocket offered beside another protocol: a handshake the runtime cannot answer with a socket (as on a
      // gateway route), not a request to be told to upgrade to the WebSocket it asked for.
      [{ upgrade: "websocket, h2c", connection: "Upgrade", "sec-websocket-key": key, "sec-websocket-version": "13" }, 501, "upgrade_unsupported"],
    ];
    for (const [headers, status, code] of cases) {
      const answer = await rawAnswer(w, `/rooms/handshake/ws?ticket=${t}`, headers);
      assert.equal(answer.status, status, JSON.stringify(headers));
      assert.equal(JSON.parse(answer.body).error.code, code);
      if (status === 426) assert.equal(answer.headers["sec-websocket-version"], "13", "told the version understood");
    }
    // The ticket was not spent by any of them.
    const joined = new WebSocket(`${base}?ticket=${t}`);
    await new Promise((resolve, reject) => {
      joined.once("open", resolve);
      joined.once("unexpected-response", (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
      joined.once("error", reject);
    });
    joined.close();
  });

  test("a join that offers subprotocols is refused before the ticket is spent: the room chooses none, which the client would fail after a 101", async () => {
    // RFC 6455 §4.1, a browser (WHATWG WebSockets) and `ws` ("Server sent no subprotocol") fail a connection whose
    // server chose none of the protocols offered: the room speaks none, so such a join could never open.
    const base = w.url.href.replace(/^http/, "ws") + "rooms/subprotocol/ws";
    const t = await ticket(w, "subprotocol");
    const offered = await new Promise((resolve) => {
      const ws = new WebSocket(`${base}?ticket=${t}`, ["y-protocols", "chat"]);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      ws.once("open", () => resolve({ status: 101 }));
      ws.once("error", (e) => resolve({ error: e.message }));
    });
    assert.equal(offered.status, 400, JSON.stringify(offered));
    assert.equal(JSON.parse(offered.body).error.code, "subprotocol_unsupported");
    // An empty offer is none (as the runtime reads it): such a handshake joins, with the same ticket, not spent above.
    const answer = await rawAnswer(w, `/rooms/subprotocol/ws?ticket=${t}`, {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-protocol": " , ",
    });
    assert.equal(answer.status, 101, answer.body);
    assert.equal(answer.headers["sec-websocket-protocol"], undefined, "the room chooses none");
  });

  test("one member holds at most 16 sockets in a room; others still join", async () => {
    const sockets = [];
    for (let i = 0; i < 16; i++) sockets.push(await rawSocket(w, "per-user", "crowd"));
    const base = w.url.href.replace(/^http/, "ws") + "rooms/per-user/ws";
    const seventeenth = await ticket(w, "per-user", "crowd");
    assert.equal(await refusedWith(`${base}?ticket=${seventeenth}`), 429, "the 17th of one user");
    const other = await rawSocket(w, "per-user", "someone-else");
    assert.equal(other.closed, null, "another member joins");
    sockets[0].ws.close();
    await until(() => sockets[0].closed !== null, { what: "the first socket closed" });
    // Its place is free again once the room has seen the close, for the ticket refused before (not spent by it).
    await until(async () => {
      const ws = new WebSocket(`${base}?ticket=${seventeenth}`);
      const opened = await new Promise((resolve) => {
        ws.once("open", () => resolve(true));
        ws.once("unexpected-response", () => resolve(false));
        ws.once("error", () => resolve(false));
      });
      if (opened) sockets.push({ ws });
      else ws.terminate();
      return opened;
    }, { what: "a place for the member again" });
    for (const s of [...sockets, other]) s.ws.close();
  });

  /** A v1 update: one item in root "t" holding one value, arrays nested `levels` deep around a null. */
  const nestedArrays = (levels) => Buffer.from([1, 1, 1, 0, 8, 1, 1, 0x74, 1, ...Array(levels).fill([117, 1]).flat(), 126, 0]);

  test("malformed, over-size and text frames close only the offending socket", async () => {
    const room = "bad-frames";
    const a = await client(w, room);
    const b = await client(w, room);
    const cases = [
      ["unknown message type", Buffer.from([9]), 1007],
      ["truncated sync payload", Buffer.from([0, 2, 50, 1, 2]), 1007],
      ["an update that does not decode", Buffer.from([0, 2, 3, 0xff, 0xff, 0xff]), 1007],
      ["a frame over ROOMS_MAX_MESSAGE_BYTES", Buffer.concat([Buffer.from([0, 2]), Buffer.alloc(5000, 1)]), 1009],
      ["a text frame", "hello", 1003],
      // Sync step 1 whose state vector declares 2^23 entries in four bytes (yrs reserved ~285 MB for it).
      ["a state vector declaring more entries than it holds", Buffer.from([0, 0, 4, 0x80, 0x80, 0x80, 0x04]), 1007],
      ["an update of values nested 1,990 deep", syncUpdate(nestedArrays(1990)), 1007],
      // Info 0x14: a string item to yrs, an unknown content kind to Yjs — relayed, it would break every client.
      ["an update only yrs can read", syncUpdate(Buffer.from([1, 1, 1, 0, 0x14, 1, 1, 0x78, 1, 0x61, 0])), 1007],
    ];
    for (const [what, frame, code] of cases) {
      const bad = await rawSocket(w, room);
      bad.ws.send(frame);
      await until(() => bad.closed, { what: `${what}: socket closed` });
      assert.equal(bad.closed.code, code, `${what}: close code (${bad.closed.reason})`);
      a.text.insert(0, "x");
      await until(() => b.text.toString() === a.text.toString(), { what: `${what}: the others still sync` });
    }
    assert.equal(a.provider.wsconnected && b.provider.wsconnected, true, "the good clients stayed connected");
    destroyAll(a, b);
  });

  test("a BigInt a number holds is refused 1007 (yrs would store and relay it as a number); one no double holds reaches the others as a BigInt", async () => {
    const room = "bigints";
    const a = await client(w, room);
    const b = await client(w, room);
    // Yjs writes a BigInt as lib0 tag 122 and reads it back as a BigInt; yrs rewrote 1700000000000n as a float64, so
    // b and every newcomer read a number where a kept a BigInt.
    a.doc.getMap("meta").set("at", 1700000000000n);
    await until(() => !a.provider.wsconnected || b.doc.getMap("meta").has("at"), { what: "a closed, or b told" });
    assert.equal(b.doc.getMap("meta").has("at"), false, "b was never sent the BigInt as a number");
    const bad = await rawSocket(w, room);
    const update = Y.encodeStateAsUpdate(a.doc);
    bad.ws.send(syncUpdate(update));
    await until(() => bad.closed, { what: "the sender closed" });
    assert.equal(bad.closed.code, 1007, bad.closed.reason);
    assert.match(bad.closed.reason, /BigInt/);
    destroyAll(a);
    const c = await client(w, room);
    c.doc.getMap("meta").set("id", 2n ** 53n + 1n);
    await until(() => b.doc.getMap("meta").has("id"), { what: "b told the id" });
    assert.equal(b.doc.getMap("meta").get("id"), 2n ** 53n + 1n, "a BigInt, as c sent it");
    destroyAll(b, c);
  });

  test("a frame of exactly ROOMS_MAX_MESSAGE_BYTES is taken, one byte more closes 1009, and an empty binary frame closes 1007", async () => {
    const room = "frame-cap";
    /** A sync update frame inserting `n` characters, by one client (a random id's varint length varies). */
    const frameOf = (n) => {
      const doc = new Y.Doc();
      doc.clientID = 0x7fff_ffff;
      doc.getText("text").insert(0, "z".repeat(n));
      return syncUpdate(Y.encodeStateAsUpdate(doc));
    };
    let n = 3_900;
    while (frameOf(n).length < VARS.ROOMS_MAX_MESSAGE_BYTES) n++;
    assert.equal(frameOf(n).length, VARS.ROOMS_MAX_MESSAGE_BYTES, "a frame of the cap exactly");
    const over = await rawSocket(w, room);
    over.ws.send(frameOf(n + 1));
    await until(() => over.closed, { what: "the frame over the cap refused" });
    assert.equal(over.closed.code, 1009, over.closed.reason);
    const empty = await rawSocket(w, room);
    empty.ws.send(Buffer.alloc(0));
    await until(() => empty.closed, { what: "the empty frame refused" });
    assert.equal(empty.closed.code, 1007, empty.closed.reason);
    const at = await rawSocket(w, room);
    at.ws.send(frameOf(n));
    const newcomer = await client(w, room);
    await until(() => newcomer.text.length === n, { what: "the frame at the cap taken" });
    assert.equal(at.closed, null, "its socket stays");
    destroyAll(newcomer);
    at.ws.close();
  });

  test("a room stops growing at ROOMS_MAX_DOCUMENT_BYTES: the update past it closes its socket with 1009, the rest stays", async () => {
    const room = "size-limit";
    const writer = await rawSocket(w, room);
    const local = new Y.Doc();
    const updates = [];
    local.on("update", (u) => updates.push(u));
    const text = local.getText("text");
    // 40 updates of ~3 KB (120 KB) against a 64 KB room, sent back to back: the room handles them in order.
    const sent = 40;
    for (let i = 0; i < sent; i++) {
      text.insert(text.length, `${i}:${"z".repeat(3000)}|`);
      writer.ws.send(Buffer.concat([Buffer.from([0, 2]), encodeVarUint8Array(updates.at(-1))]));
    }
    await until(() => writer.closed, { what: "the writer's socket closed at the limit" });
    assert.equal(writer.closed.code, 1009, writer.closed.reason);
    assert.match(writer.closed.reason, /65536-byte limit/);
    // The room still loads, with every update it accepted and none it refused.
    const reader = await client(w, room);
    const got = reader.text.toString();
    const pieces = got.split("|").filter(Boolean);
    assert.ok(pieces.length >= 10 && pieces.length < sent, `${pieces.length} of ${sent} updates kept`);
    pieces.forEach((p, i) => assert.equal(p, `${i}:${"z".repeat(3000)}`, `update ${i} intact, in order`));
    destroyAll(reader);
  });

  test("in a room at ROOMS_MAX_DOCUMENT_BYTES, an edit replacing more than it inserts (typing over a selection) is taken, not closed 1009", async () => {
    const room = "full-replace";
    const writerCloses = [];
    const writer = await client(w, room, { user: "writer", closes: writerCloses });
    const chunk = "w".repeat(2500);
    for (let n = 0; n < 30; n++) writer.text.insert(writer.text.length, chunk);
    await until(() => writerCloses.includes(1009), { what: "the room filled up" });
    destroyAll(writer);
    const closes = [];
    const member = await client(w, room, { user: "member", closes });
    const held = member.text.length;
    assert.ok(held > 0 && held < 75_000, `the room holds what fit: ${held}`);
    member.doc.transact(() => {
      member.text.delete(0, 5000);
      member.text.insert(0, "r".repeat(2500));
    });
    const newcomer = await client(w, room, { user: "newcomer" });
    await until(() => newcomer.text.length === held - 2500 && newcomer.text.toString().startsWith("r"), {
      what: () => `the replacement was taken (closes: ${closes}, newcomer holds ${newcomer.text.length})`,
    });
    assert.deepEqual(closes, [], "its sender stays");
    destroyAll(member, newcomer);
  });

  test("inserts that split items count towards ROOMS_MAX_DOCUMENT_BYTES: a room filled with them can still be emptied", async () => {
    const room = "size-splits";
    const writer = await rawSocket(w, room, "splitter");
    // Client A writes one long item with a right origin ("a" × 3,900 before "Z"); client B then inserts one
    // character between each two of A's: 24 bytes each as sent, but each splits A's item, and the piece it leaves
    // repeats A's ids in a snapshot (about 2.5 times the log when folded).
    const [aId, bId] = [2 ** 53 - 1, 2 ** 53 - 2];
    const a = new Y.Doc();
    a.clientID = aId;
    a.getText("text").insert(0, "Z");
    a.getText("text").insert(0, "a".repeat(3900));
    const frames = [syncUpdate(Y.encodeStateAsUpdate(a))];
    for (let k = 1, clock = 0; k < 3900; k += 270, clock += 270) {
      const n = Math.min(270, 3900 - k);
      const e = encoding.createEncoder();
      for (const v of [1, n, bId, clock]) encoding.writeVarUint(e, v);
      for (let j = 0; j < n; j++) {
        encoding.writeUint8(e, 0xc4); // a string item with an origin and a right origin
        encoding.writeVarUint(e, aId);
        encoding.writeVarUint(e, k + j);
        encoding.writeVarUint(e, aId);
        encoding.writeVarUint(e, k + j + 1);
        encoding.writeVarString(e, "b");
      }
      encoding.writeVarUint(e, 0);
      frames.push(syncUpdate(encoding.toUint8Array(e)));
    }
    // Then plain text until the room refuses.
    const plain = new Y.Doc();
    plain.clientID = 7;
    for (let i = 0; i < 20; i++) {
      const before = Y.encodeStateVector(plain);
      plain.getText("text").insert(0, "p".repeat(3000));
      frames.push(syncUpdate(Y.encodeStateAsUpdate(plain, before)));
    }
    frames.forEach((f) => writer.ws.send(f));
    await until(() => writer.closed, { what: "the writer's socket closed at the limit" });
    assert.equal(writer.closed.code, 1009, writer.closed.reason);
    // What the room kept, it keeps within its limit: deleting it all is taken (it froze the room for good when the
    // snapshot folded from the log came out far past the limit, refusing every update, deletions too).
    const eraser = await client(w, room, { user: "eraser" });
    const reader = await client(w, room, { user: "reader" });
    assert.ok(reader.text.length > 0, "the room kept some of it");
    eraser.text.delete(0, eraser.text.length);
    await until(() => reader.text.length === 0, { what: () => `the room emptied (${reader.text.length} left)` });
    destroyAll(eraser, reader);
  });

  test("items that end the list inside another's item with a right origin are refused (1007): the room still loads, honest inserts there are taken", async () => {
    const room = "ends-too-early";
    // Client A writes one long item with a right origin ("a" × 300 before "Z"); B's update then puts one character
    // after each of A's, naming no right origin. Taken, its snapshot loaded quadratically (18,000 such items: 47 s
    // to reload a room, past a Durable Object's 30 s of CPU); no Yjs client writes it.
    const [aId, bId] = [2 ** 53 - 1, 2 ** 53 - 2];
    const a = new Y.Doc();
    a.clientID = aId;
    a.getText("text").insert(0, "Z");
    a.getText("text").insert(0, "a".repeat(300));
    // B's characters after A's k = from..from+149 (within the test's 4 KiB messages), from B's clock from - 1.
    const after = (from, right) => {
      const e = encoding.createEncoder();
      for (const v of [1, 150, bId, from - 1]) encoding.writeVarUint(e, v);
      for (let k = from; k < from + 150; k++) {
        encoding.writeUint8(e, right ? 0xc4 : 0x84);
        encoding.writeVarUint(e, aId);
        encoding.writeVarUint(e, k);
        if (right) {
          encoding.writeVarUint(e, aId);
          encoding.writeVarUint(e, 0); // Z: honest for a client that had not yet seen A's next character
        }
        encoding.writeVarString(e, "b");
      }
      encoding.writeVarUint(e, 0);
      return syncUpdate(encoding.toUint8Array(e));
    };
    const writer = await rawSocket(w, room, "splitter");
    writer.ws.send(syncUpdate(Y.encodeStateAsUpdate(a)));
    writer.ws.send(after(1, false));
    await until(() => writer.closed, { what: "the sender's socket closed" });
    assert.equal(writer.closed.code, 1007, writer.closed.reason);
    assert.match(writer.closed.reason, /names no right origin/);
    const reader = await client(w, room, { user: "reader" });
    assert.equal(reader.text.toString(), `${"a".repeat(300)}Z`, "A's item taken, none of B's");
    // The same characters naming Z as their right origin are taken.
    const honest = await rawSocket(w, room, "honest");
    honest.ws.send(after(1, true));
    honest.ws.send(after(151, true));
    await until(() => (reader.text.toString().match(/b/g) ?? []).length === 300, { what: "B's characters arrived" });
    assert.equal(honest.closed, null);
    honest.ws.close();
    destroyAll(reader);
  });

  test("a member's item naming a right origin left of its origin does not get honest appends after it refused", async () => {
    const room = "ends-crafted-right";
    const alice = await client(w, room, { user: "alice" });
    const closes = [];
    alice.provider.on("connection-close", (event) => closes.push(event?.code));
    alice.text.insert(0, "hello");
    const reader = await client(w, room, { user: "reader" });
    await until(() => reader.text.toString() === "hello", { what: "alice's text arrived" });
    // Mallory's "m" after alice's last character, naming her first as its right origin: Yjs places it at the end.
    const aliceId = alice.doc.clientID;
    const e = encoding.createEncoder();
    for (const v of [1, 1, 4242, 0]) encoding.writeVarUint(e, v);
    encoding.writeUint8(e, 0xc4); // a string item with an origin and a right origin
    for (const v of [aliceId, 4, aliceId, 0]) encoding.writeVarUint(e, v);
    encoding.writeVarString(e, "m");
    encoding.writeVarUint(e, 0);
    const mallory = await rawSocket(w, room, "mallory");
    mallory.ws.send(syncUpdate(encoding.toUint8Array(e)));
    await until(() => alice.text.toString() === "hellom", { what: "mallory's item reached alice" });
    // Alice's browser appends after it naming no right origin, as Yjs does at a text's end: refused (1007), her
    // client resent it on every reconnect and it never reached anyone.
    alice.text.insert(alice.text.length, "!");
    await until(() => reader.text.toString() === "hellom!", { what: "alice's append arrived" });
    assert.deepEqual(closes, [], "alice's socket was never closed");
    mallory.ws.close();
    destroyAll(alice, reader);
  });

  test("a socket announcing more than 16 awareness clients is closed with 1008 and its clients never appear", async () => {
    const room = "ghosts";
    const watcher = await client(w, room, { name: "watcher" });
    const flooder = await rawSocket(w, room);
    const ghosts17 = Array.from({ length: 17 }, (_, id) => [900_000 + id, 1, JSON.stringify({ user: { name: `ghost ${id}` } })]);
    flooder.ws.send(awareness(ghosts17));
    await until(() => flooder.closed, { what: "the flooding socket closed" });
    assert.equal(flooder.closed.code, 1008, flooder.closed.reason);
    const late = await client(w, room);
    // The presence a newcomer is sent comes in one message: once the watcher is in it, so would the ghosts be.
    await until(() => late.provider.awareness.getStates().has(watcher.doc.clientID), { what: "the watcher's presence" });
    const ghosts = [...late.provider.awareness.getStates().keys()].filter((id) => id >= 900_000 && id < 900_017);
    assert.deepEqual(ghosts, [], "none of the refused clients is known to a newcomer");
    destroyAll(watcher, late);
  });

  test("a newcomer echoing a crowded room's presence (more than 64 entries) stays connected", async () => {
    const room = "crowded";
    // Five members announcing 14 clients each: 70 presences.
    const members = [];
    for (let m = 0; m < 5; m++) {
      const member = await rawSocket(w, room, `crowd-${m}`);
      member.ws.send(awareness(Array.from({ length: 14 }, (_, c) => [920_000 + m * 100 + c, 1, JSON.stringify({ user: { name: `crowd ${m}.${c}` } })])));
      members.push(member);
    }
    const newcomer = await rawSocket(w, room, "newcomer");
    const presence = () => newcomer.frames.filter((f) => f[0] === 1);
    const query = async (seen) => {
      newcomer.ws.send(Buffer.from([3])); // query awareness: answered with the room's whole presence
      return until(() => presence().length > seen && presence()[seen], { what: "the room's presence" });
    };
    const snapshot = await query(presence().length);
    const count = decoding.readVarUint(decoding.createDecoder(decoding.readVarUint8Array(decoding.createDecoder(snapshot.subarray(1)))));
    assert.ok(count >= 70, `the room's presence lists ${count}`);
    // What a y-websocket client sends back after applying it: every entry it just learned, in one message.
    newcomer.ws.send(snapshot);
    await query(presence().length);
    assert.equal(newcomer.closed, null, "the echo was taken, not refused");
    members.forEach((m) => m.ws.close());
    newcomer.ws.close();
  });

  /** Writes a room of ~60 KB (the 64 KB limit of this suite) through `writer`, in updates under the 4 KB message limit. */
  function fill60k(writer) {
    const local = new Y.Doc();
    const updates = [];
    local.on("update", (u) => updates.push(u));
    const text = local.getText("text");
    for (let i = 0; i < 20; i++) {
      text.insert(text.length, "y".repeat(3000));
      writer.ws.send(Buffer.concat([Buffer.from([0, 2]), encodeVarUint8Array(updates.at(-1))]));
    }
  }

  test("sync requests pay for the document they make the room send: a socket looping them is closed with 1008 after about 4 MiB, the room stays responsive", async () => {
    const room = "resync-loop";
    const writer = await rawSocket(w, room);
    fill60k(writer);
    const reader = await client(w, room);
    await until(() => reader.text.length === 60_000, { what: "the room holds 60 KB" });
    // Each 3-byte sync request with an empty state vector makes the room encode and send the whole document, yet
    // costs one message token: 150 of them fit the 200-token burst and asked for ~9 MB.
    const looper = await rawSocket(w, room);
    const before = looper.frames.reduce((n, f) => n + f.length, 0);
    for (let i = 0; i < 150; i++) looper.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => looper.closed, { what: "the looping socket closed", ms: SLOW_ROOM_MS });
    assert.equal(looper.closed.code, 1008, looper.closed.reason);
    assert.match(looper.closed.reason, /byte rate/);
    const sent = looper.frames.reduce((n, f) => n + f.length, 0) - before;
    assert.ok(sent <= 4 * 1024 * 1024 + 2 * 61_000, `the room sent it ${sent} bytes`);
    // Members are not disturbed: the reader's edit reaches the writer's socket as before.
    const seen = writer.frames.length;
    reader.text.insert(0, "still here");
    await until(() => writer.frames.length > seen, { what: "the reader's edit relayed" });
    assert.equal(writer.closed, null, "the writer stays connected");
    destroyAll(reader);
    writer.ws.close();
  });

  test("a member's sync requests share one byte budget across sockets and reconnects: closing and joining again refills nothing", async () => {
    const room = "resync-reconnect";
    const writer = await rawSocket(w, room, "writer");
    fill60k(writer);
    const reader = await client(w, room, { user: "reader" });
    await until(() => reader.text.length === 60_000, { what: "the room holds 60 KB" });
    const steps2 = (s) => s.frames.filter((f) => f[0] === 0 && f[1] === 1).length;
    // 45 whole-document sync requests (~2.7 MB) fit one socket's 4 MiB; the same again from a fresh socket of the
    // same member does not: the budget is the member's, and it is kept after the first socket closed.
    const first = await rawSocket(w, room, "looper");
    for (let i = 0; i < 45; i++) first.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => steps2(first) === 45, { what: "the first socket's 45 answers", ms: SLOW_ROOM_MS });
    assert.equal(first.closed, null, "45 answers are within the budget");
    first.ws.close();
    await until(() => first.closed, { what: "the first socket closed" });
    const again = await rawSocket(w, room, "looper");
    for (let i = 0; i < 45; i++) again.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => again.closed || steps2(again) === 45, { what: "the reconnected socket answered or closed", ms: SLOW_ROOM_MS });
    assert.ok(again.closed, `a fresh socket got ${steps2(again)} more answers: the budget started again`);
    assert.equal(again.closed.code, 1008, again.closed.reason);
    assert.match(again.closed.reason, /byte rate/);
    // Another member's budget is their own.
    const other = await rawSocket(w, room, "other");
    for (let i = 0; i < 45; i++) other.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => steps2(other) === 45, { what: "another member's 45 answers", ms: SLOW_ROOM_MS });
    assert.equal(other.closed, null, "another member is not refused");
    destroyAll(reader);
    for (const s of [writer, other]) s.ws.close();
  });

  test("an awareness state of JSON null with whitespace around it is a removal, as y-protocols reads it: no ghost is kept or sent", async () => {
    const room = "awareness-spaced-null";
    const alice = await rawSocket(w, room, "alice");
    const ids = [9001, 9002, 9003];
    const entriesOf = (frames) => ids.flatMap((id) => awarenessOf(frames, id).map(([clock, state]) => [id, clock, state]));
    // The room relays news to its sender too, in order: once it is back, the next awareness frame answers a query.
    const relayed = (clock) =>
      until(() => ids.every((id) => awarenessOf(alice.frames, id).some(([c]) => c === clock)), { what: `clock ${clock} relayed` });
    const query = async (s) => {
      s.frames.length = 0;
      s.ws.send(Buffer.from([3]));
      await until(() => s.frames.some((f) => f[0] === 1), { what: "the awareness query answered" });
      return entriesOf(s.frames);
    };
    alice.ws.send(awareness(ids.map((id) => [id, 1, JSON.stringify({ name: `n${id}` })])));
    await relayed(1);
    assert.equal((await query(alice)).length, 3, "three clients present");
    alice.ws.send(awareness([[9001, 2, " null"], [9002, 2, "null\n"], [9003, 2, "\t\r null "]]));
    await relayed(2);
    // A ghost would come back in the answer as a null state (JSON.parse drops the spaces).
    assert.deepEqual(await query(alice), [], "no client left in the room's presence");
    // A newcomer is sent the room's presence on joining, before anything it asks: the first awareness frame it gets.
    const newcomer = await rawSocket(w, room, "bob");
    newcomer.ws.send(Buffer.from([3]));
    await until(() => newcomer.frames.some((f) => f[0] === 1), { what: "the newcomer's first awareness frame" });
    assert.deepEqual(entriesOf(newcomer.frames), [], "a newcomer is sent none of them");
    // Removed, the clients no longer count towards the socket's 16: sixteen new ones are taken.
    alice.ws.send(awareness(Array.from({ length: 16 }, (_, i) => [9100 + i, 1, "{}"])));
    await until(() => awarenessOf(newcomer.frames, 9115).length === 1 || alice.closed, { what: "the new clients relayed" });
    assert.equal(alice.closed, null, "the socket stays open");
    for (const s of [alice, newcomer]) s.ws.close();
  });

  test("a room keeps no more presence than a newcomer's echo of it can carry: news past it is dropped without closing, and newcomers stay", async () => {
    const room = "presence-echo";
    // ROOMS_MAX_MESSAGE_BYTES is 4096 here: a newcomer's y-websocket client sends back every state it is sent on
    // joining, in one message, which must fit.
    const announce = (s, id) => s.ws.send(awareness([[id, 1, JSON.stringify({ user: { name: `m${id}` }, pad: "p".repeat(1_250) })]]));
    const members = [];
    for (let i = 0; i < 4; i++) {
      const s = await rawSocket(w, room, `member-${i}`);
      members.push(s);
      const before = s.frames.length;
      announce(s, 920_000 + i);
      // The first three are relayed (to their senders too); 3 × ~1.3 KB fills the room. The fourth goes back to its
      // sender alone: a y-websocket client that hears nothing for 30 s reconnects, and in a quiet room its echo is
      // what it hears.
      // Among what the socket hears from here (the room's own sync messages may arrive first): an awareness message
      // of one entry, its own client.
      const ownEcho = (frame) => {
        const echo = decoding.createDecoder(new Uint8Array(frame));
        if (decoding.readVarUint(echo) !== 1) return false;
        const payload = decoding.createDecoder(decoding.readVarUint8Array(echo));
        return decoding.readVarUint(payload) === 1 && decoding.readVarUint(payload) === 920_000 + i;
      };
      await until(() => s.frames.slice(before).some(ownEcho), { what: `member ${i}'s presence sent back` });
    }
    const heard = members.slice(0, 3).map((s) => s.frames.length);
    // The newcomer sees three states (the fourth did not fit) and is not closed for echoing them.
    const newcomer = await client(w, room);
    let closes = 0;
    newcomer.provider.on("connection-close", () => closes++);
    await until(() => newcomer.provider.awareness.getStates().size >= 4, { what: "the newcomer sees three members' presence" });
    const seen = members[0].frames.length;
    newcomer.text.insert(0, "after the echo");
    await until(() => members[0].frames.length > seen, { what: "the newcomer's edit relayed" });
    assert.equal(newcomer.provider.wsconnected, true, "the newcomer stays connected");
    assert.equal(closes, 0, "and was never closed");
    assert.equal(newcomer.provider.awareness.getStates().has(920_003), false, "the fourth state was dropped");
    assert.ok(
      members.slice(0, 3).every((s, i) => s.frames.slice(heard[i]).every((f) => f[0] !== 1 || !f.includes(Buffer.from("m920003")))),
      "and went to no other member",
    );
    members.forEach((s, i) => assert.equal(s.closed, null, `member ${i} stays connected`));
    destroyAll(newcomer);
    members.forEach((s) => s.ws.close());
  });

  test("a state a JavaScript client writes back longer (numbers with exponents) counts at its echo's length: members and newcomers echoing it stay", async () => {
    const room = "presence-echo-grows";
    // "1e20" is 4 bytes; JSON.stringify writes it in 21. 190 of them: a state of ~950 bytes that every y-websocket
    // client writes back in ~4,200, past this room's 4,096-byte messages.
    const grows = JSON.stringify({ user: { name: "x" } }).slice(0, -1) + `,"n":[${Array(190).fill("1e20").join(",")}]}`;
    assert.ok(grows.length < 1_000);
    const member = await client(w, room, { name: "member" });
    let memberCloses = 0;
    member.provider.on("connection-close", () => memberCloses++);
    const raw = await rawSocket(w, room, "mallory");
    raw.ws.send(awareness([[930_001, 1, grows]]));
    // Whatever the room made of it, a later edit of the member still reaches the raw socket over the same connection.
    const seen = raw.frames.length;
    member.text.insert(0, "still here");
    await until(() => raw.frames.length > seen, { what: "the member's edit relayed" });
    const newcomer = await client(w, room);
    let newcomerCloses = 0;
    newcomer.provider.on("connection-close", () => newcomerCloses++);
    await until(() => newcomer.text.toString() === "still here", { what: "the newcomer synced" });
    const seen2 = raw.frames.length;
    newcomer.text.insert(0, "new ");
    await until(() => raw.frames.length > seen2, { what: "the newcomer's edit relayed" });
    assert.equal(memberCloses, 0, "the member was never closed for writing the state back");
    assert.equal(newcomerCloses, 0, "nor the newcomer");
    assert.equal(raw.closed, null);
    destroyAll(member, newcomer);
    raw.ws.close();
  });

  test("a state of long integers a JavaScript client writes back a digit longer counts at its echo's length: members echoing it stay", async () => {
    const room = "presence-echo-carries";
    // 9999999999999999 is the double 1e16: JSON.stringify writes it in 17 digits. 230 of them: a state of ~3,950
    // bytes that every y-websocket client writes back in ~4,180, past this room's 4,096-byte messages.
    const carries = JSON.stringify({ user: { name: "x" } }).slice(0, -1) + `,"n":[${Array(230).fill("9999999999999999").join(",")}]}`;
    assert.ok(carries.length + 24 < 4_080);
    assert.ok(JSON.stringify(JSON.parse(carries)).length > 4_096);
    const member = await client(w, room, { name: "member" });
    let memberCloses = 0;
    member.provider.on("connection-close", () => memberCloses++);
    const raw = await rawSocket(w, room, "mallory");
    raw.ws.send(awareness([[930_002, 1, carries]]));
    // Then an edit: once the member holds it, it was sent the state first (if the room relayed it) and wrote it back
    // before the edit of its own below, which reaches the raw socket only over a connection that stayed.
    const local = new Y.Doc();
    const edits = [];
    local.on("update", (u) => edits.push(u));
    local.getText("text").insert(0, "mallory ");
    raw.ws.send(Buffer.concat([Buffer.from([0, 2]), encodeVarUint8Array(edits[0])]));
    await until(() => member.text.toString() === "mallory ", { what: "the raw socket's edit relayed" });
    const seen = raw.frames.length;
    member.text.insert(0, "still here ");
    await until(() => raw.frames.length > seen, { what: "the member's edit relayed" });
    assert.equal(memberCloses, 0, "the member was never closed for writing the state back");
    assert.equal(raw.closed, null);
    destroyAll(member);
    raw.ws.close();
  });

  test("the directory lists active rooms with member counts", async () => {
    const a = await client(w, "listed");
    const b = await client(w, "listed");
    await until(
      async () => {
        const body = await (await w.fetch("/rooms")).json();
        return body.rooms.find((r) => r.room === "listed")?.members === 2;
      },
      { what: "listed with 2 members" },
    );
    destroyAll(a, b);
    await until(
      async () => !(await (await w.fetch("/rooms")).json()).rooms.some((r) => r.room === "listed"),
      { what: "empty room leaves the listing" },
    );
  });

  test("the demo page names its room; bad room names are refused", async () => {
    const page = await w.fetch("/rooms/demo");
    assert.equal(page.status, 200);
    assert.match(await page.text(), /data-room="demo"/);
    const script = await w.fetch("/rooms-client.js");
    assert.equal(script.status, 200, "the bundled client is served");
    assert.equal((await w.fetch("/rooms/bad%20name")).status, 400, "invalid room name");
  });

  test("the demo page has a strict Content-Security-Policy: scripts from the site only, its one inline style by nonce", async () => {
    const one = await w.fetch("/rooms/demo");
    const two = await w.fetch("/rooms/demo");
    const csp = one.headers.get("content-security-policy");
    assert.ok(csp, "a policy is sent");
    const directives = new Map(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
    assert.deepEqual(directives.get("default-src"), ["'none'"], csp);
    assert.deepEqual(directives.get("script-src"), ["'self'"], csp);
    // Its icon is the empty data: URL its <link rel=icon> names: a browser asks for no /favicon.ico under 'none'.
    assert.deepEqual(directives.get("img-src"), ["data:"], csp);
    // 'self' covers the page's own ws:/wss: in CSP Level 3 only: Safari before 15.4 (and Chrome before 71) refused
    // the room's WebSocket under it, and the page then never synced. Its socket's origin is named as well.
    assert.deepEqual(directives.get("connect-src"), ["'self'", `ws://${w.url.host}`], csp);
    assert.deepEqual(directives.get("base-uri"), ["'none'"], csp);
    assert.deepEqual(directives.get("frame-ancestors"), ["'none'"], csp);
    const [nonce] = directives.get("style-src");
    assert.match(nonce, /^'nonce-[0-9a-f]{32}'$/, csp);
    const html = await one.text();
    assert.ok(html.includes(`<style nonce="${nonce.slice(7, -1)}">`), "the inline style carries the nonce");
    assert.equal((html.match(/<style/g) ?? []).length, 1, "one inline style");
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)/, "no inline script");
    assert.match(html, /<link rel="icon" href="data:,">/, "an icon the policy allows");
    assert.notEqual(two.headers.get("content-security-policy"), csp, "a fresh nonce per response");
    await two.text();
  });

  test("awareness messages are y-protocols awareness updates the room relays", async () => {
    // Guards the raw encoding the room decodes, independent of the provider.
    const { doc, awareness, frame } = awarenessClient();
    awareness.setLocalState({ user: { name: "raw" } });
    try {
      const watcher = await client(w, "raw-awareness");
      const raw = await rawSocket(w, "raw-awareness");
      raw.ws.send(frame());
      await until(() => watcher.provider.awareness.getStates().get(doc.clientID)?.user?.name === "raw", {
        what: "watcher sees the raw client's presence",
      });
      raw.ws.close();
      await until(() => !watcher.provider.awareness.getStates().has(doc.clientID), {
        what: "presence removed after the raw socket closed",
      });
      destroyAll(watcher);
    } finally {
      awareness.destroy();
    }
  });

  test("the room relays awareness news only: the copies clients send back go nowhere", async () => {
    // Every y-websocket client re-sends each awareness update it applies; relaying those copies costs n² messages per
    // presence change. The room applies y-protocols' clock rule and forwards only what is new.
    const { doc, awareness, frame } = awarenessClient();
    try {
      const watcher = await rawSocket(w, "awareness-echo");
      const sender = await rawSocket(w, "awareness-echo");
      awareness.setLocalState({ n: 1 });
      const first = frame();
      awareness.setLocalState({ n: 2 });
      sender.ws.send(first);
      sender.ws.send(first); // the copy a peer sends back: same clock
      sender.ws.send(frame());
      const clocks = (state) => awarenessOf(state.frames, doc.clientID).map(([clock]) => clock);
      await until(() => clocks(watcher).includes(2) && clocks(sender).includes(2), { what: "the second state relayed" });
      assert.deepEqual(clocks(watcher), [1, 2], "the watcher got each state once");
      assert.deepEqual(clocks(sender), [1, 2], "the sender got its own news back once each (keep-alive)");
      watcher.ws.close();
      sender.ws.close();
    } finally {
      awareness.destroy();
    }
  });

  test("an awareness client belongs to the user who announced it: another member cannot rewrite or remove it", async () => {
    const { doc, awareness, frame } = awarenessClient();
    /** A forged awareness frame for `doc`'s client: `clock`, `state` (null: a removal). */
    const forged = (clock, state) => {
      const e = encoding.createEncoder();
      encoding.writeVarUint(e, 1);
      encoding.writeVarUint(e, doc.clientID);
      encoding.writeVarUint(e, clock);
      encoding.writeVarString(e, JSON.stringify(state));
      return Buffer.concat([Buffer.from([1]), encodeVarUint8Array(encoding.toUint8Array(e))]);
    };
    const seen = (socket) => awarenessOf(socket.frames, doc.clientID);
    try {
      const watcher = await rawSocket(w, "awareness-owner", "carol");
      const alice = await rawSocket(w, "awareness-owner", "alice");
      const bob = await rawSocket(w, "awareness-owner", "bob");
      awareness.setLocalState({ name: "alice" });
      alice.ws.send(frame());
      await until(() => seen(watcher).length === 1, { what: "alice's presence relayed" });
      // Bob names alice's client with newer clocks: a new state, then a removal. His awareness query is answered
      // after both were handled (one socket's messages are handled in order).
      await until(() => seen(bob).length === 1, { what: "alice's presence at bob" });
      bob.frames.length = 0;
      bob.ws.send(forged(5, { name: "mallory" }));
      bob.ws.send(forged(6, null));
      bob.ws.send(Buffer.from([3]));
      await until(() => bob.frames.some((f) => f[0] === 1), { what: "bob's awareness query answered" });
      assert.deepEqual(seen(bob), [[1, { name: "alice" }]], "the room still holds alice's own state (and relayed nothing of bob's)");
      awareness.setLocalState({ name: "alice", typing: true });
      alice.ws.send(frame());
      await until(() => seen(watcher).length === 2, { what: "alice's renewal relayed" });
      assert.deepEqual(seen(watcher), [[1, { name: "alice" }], [2, { name: "alice", typing: true }]], "nothing of bob's");
      assert.equal(bob.closed, null, "bob's socket stays open (the entries are dropped, as copies are)");
      for (const s of [watcher, alice, bob]) s.ws.close();
    } finally {
      awareness.destroy();
    }
  });

  test("an anonymous join of a room that was never set up is refused without storing anything", async () => {
    // Each room is a Durable Object; a join with a made-up name and ticket must not leave a stored object behind
    // (anyone could otherwise fill storage with rooms). Measured on Miniflare's files: what the object wrote to its
    // SQLite write-ahead log, against a room that really was set up (a ticket issued), which must show writes.
    const written = await walBytesOf(w);
    await ticket(w, "really-made");
    assert.ok(written("really-made") > 0, "issuing a ticket stores the room (the measurement sees writes)");
    const ws = (room, query) => w.url.href.replace(/^http/, "ws") + `rooms/${room}/ws${query}`;
    assert.equal(await refusedWith(ws("made-up-1", "?ticket=forged")), 401);
    assert.equal(await refusedWith(ws("made-up-2", "")), 401);
    assert.equal(written("made-up-1"), 0, "a forged ticket wrote nothing");
    assert.equal(written("made-up-2"), 0, "no ticket wrote nothing");
    assert.equal(await refusedWith(ws("really-made", "?ticket=forged")), 401, "a set-up room refuses a forged ticket too");
  });

  test("the room's close frame echoes the code its client closed with (RFC 6455 §5.5.1), and answers a close without one", async () => {
    for (const [code, reason] of [[4000, "done"], [1000, ""], [1001, "going away"], [3000, "x".repeat(123)]]) {
      const s = await rawSocket(w, "echo-close", `closer-${code}`);
      s.ws.close(code, reason);
      await until(() => s.closed, { what: `the answer to a close with ${code}` });
      assert.equal(s.closed.code, code, `closed with ${code}, answered ${s.closed.code} (${s.closed.reason})`);
    }
    // A close frame without a code (1005 on the receiving side): answered, with a close frame the client reads.
    const deaf = await deafSocket(w, "echo-close", "closer-none");
    await deaf.send(Buffer.alloc(0), 0x8);
    await until(() => closeFrame(deaf.data) !== undefined, { what: "an answer to a close without a code" });
    assert.equal(closeFrame(deaf.data).length, 0, "an empty close: no code to echo (1000 'bye' was sent before)");
    deaf.sock.destroy();
  });
});

// Tests that send a member's messages past the bucket (ROOMS_UPDATE_BURST, 200) in one go. At the default refill of
// 60 per second a room that took more than ~3.3 s over 400 frames (a loaded machine) was refilled as fast as it
// spent, closed no socket, and the test timed out; refilled at 1 per second, the 200 frames past the burst would
// need over three minutes. The room's work queued by the test gets SLOW_ROOM_MS, not until's 5 s.
describe("rooms whose message buckets refill slowly", () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: { ...VARS, ROOMS_UPDATES_PER_SECOND: 1 } });
  });
  after(async () => {
    await w?.stop();
  });

  test("awareness news spends the socket's rate tokens, copies do not: a socket relaying its own presence in a loop is closed with 1008", async () => {
    const room = "chatty";
    const watcher = await client(w, room, { name: "watcher" });
    const chatty = await rawSocket(w, room);
    // Its own one client, a new clock each time: every frame is news, relayed to every member. The default bucket
    // holds 200 tokens (ROOMS_UPDATE_BURST), refilled at 1 per second here: 400 frames go past it however slowly the
    // room takes them.
    const frame = (clock) => awareness([[910_000, clock, JSON.stringify({ user: { name: "chatty" }, cursor: clock })]]);
    for (let clock = 1; clock <= 400 && !chatty.closed; clock++) chatty.ws.send(frame(clock));
    await until(() => chatty.closed, { what: "the chatty socket closed", ms: SLOW_ROOM_MS });
    assert.equal(chatty.closed.code, 1008, chatty.closed.reason);
    assert.match(chatty.closed.reason, /rate/);
    // The watcher, a real y-websocket client, sent back every one of those changes it received: copies are not news
    // and cost it nothing.
    assert.equal(watcher.provider.wsconnected, true, "the watcher echoing the flood was not closed");
    destroyAll(watcher);
  });

  test("copies of presence are free only as far as the frames the room sent: a socket looping one copy, or auth messages, is closed with 1008", async () => {
    const room = "copy-loop";
    const watcher = await client(w, room, { name: "watcher" });
    const looper = await rawSocket(w, room);
    // One state, news once (a token), then the same frame again and again: copies the room decodes and compares and
    // never relays. The room sent this socket one awareness frame of its own (the watcher's presence on joining)
    // and broadcasts none meanwhile, so past 16 copies each costs a token of the 200-token bucket.
    const frame = awareness([[920_000, 1, JSON.stringify({ user: { name: "looper" }, pad: "x".repeat(2000) })]]);
    for (let i = 0; i < 400 && !looper.closed; i++) looper.ws.send(frame);
    await until(() => looper.closed, { what: "the copy loop closed", ms: SLOW_ROOM_MS });
    assert.equal(looper.closed.code, 1008, looper.closed.reason);
    assert.match(looper.closed.reason, /copies/);
    const auth = await rawSocket(w, room, "auth-looper");
    for (let i = 0; i < 400 && !auth.closed; i++) auth.ws.send(Buffer.from([2, 0, 5]));
    await until(() => auth.closed, { what: "the auth loop closed", ms: SLOW_ROOM_MS });
    assert.equal(auth.closed.code, 1008, auth.closed.reason);
    assert.equal(watcher.provider.wsconnected, true, "the watcher, echoing the looper's one state, stays");
    destroyAll(watcher);
  });

  test("a member's sockets share one update rate: four sockets of one user sending 100 updates each are refused past the burst, another user's are not", async () => {
    const room = "one-rate";
    const sockets = await Promise.all([1, 2, 3, 4].map(() => rawSocket(w, room, "many-tabs")));
    const other = await rawSocket(w, room, "one-tab");
    // ROOMS_UPDATE_BURST is 200 (refilled at 1/s here): 100 each is within a socket's share alone, 400 is twice the user's.
    const send = (s, tag) => {
      const local = new Y.Doc();
      const updates = [];
      local.on("update", (u) => updates.push(u));
      for (let i = 0; i < 100 && !s.closed; i++) {
        local.getText("text").insert(0, tag);
        s.ws.send(syncUpdate(updates.at(-1)));
      }
    };
    sockets.forEach((s, i) => send(s, `${i}`));
    await until(() => sockets.some((s) => s.closed), { what: "a socket of the user closed", ms: SLOW_ROOM_MS });
    const closed = sockets.filter((s) => s.closed);
    closed.forEach((s) => assert.equal(s.closed.code, 1008, s.closed.reason));
    assert.match(closed[0].closed.reason, /rate/);
    // Another user's bucket is their own.
    send(other, "o");
    const reader = await client(w, room);
    await until(() => reader.text.toString().split("o").length - 1 === 100, { what: "the other user's 100 updates kept" });
    assert.equal(other.closed, null, "the other user stays connected");
    destroyAll(reader);
    for (const s of [...sockets, other]) s.ws.close();
  });
});

describe("rooms at the lowest ROOMS_UPDATE_BURST the Worker takes", () => {
  let w;
  before(async () => {
    w = await startWorker({ vars: { ...VARS, ROOMS_UPDATE_BURST: 3, ROOMS_UPDATES_PER_SECOND: 1 } });
  });
  after(async () => {
    await w?.stop();
  });

  test("a y-websocket client's join (its sync step 1, its presence, its sync step 2 with an offline edit) fits the burst: the edit is taken and the client stays", async () => {
    const room = "low-burst";
    const closes = [];
    const writer = await client(w, room, { user: "writer", name: "writer", offline: "written offline", closes });
    const reader = await client(w, room, { user: "reader" });
    await until(() => reader.text.toString() === "written offline", {
      what: "the writer's offline edit reached a newcomer",
      ms: SLOW_ROOM_MS,
    });
    assert.deepEqual(closes, [], "the writer was never closed");
    destroyAll(writer, reader);
  });
});

test("every update another client saw survives a restart with persistence", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  // A tiny compaction threshold so both the snapshot and the log after it are exercised.
  const vars = { ...VARS, ROOMS_COMPACT_AFTER_UPDATES: 7 };
  let w = await startWorker({ vars, stateDir });
  const a = await client(w, "durable");
  const b = await client(w, "durable");
  for (let n = 0; n < 20; n++) (n % 2 ? a : b).text.insert(0, `${n},`);
  a.doc.getMap("meta").set("title", "kept");
  await until(() => b.text.length === a.text.length && a.text.length > 0 && b.doc.getMap("meta").get("title"), {
    what: "b saw every edit",
  });
  const seen = b.text.toString();
  destroyAll(a, b);
  await w.stop();

  w = await startWorker({ vars, stateDir });
  try {
    const c = await client(w, "durable");
    assert.equal(c.text.toString(), seen, "the text after the restart");
    assert.equal(c.doc.getMap("meta").get("title"), "kept", "the map after the restart");
    destroyAll(c);
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a room that grew past a ROOMS_MAX_DOCUMENT_BYTES lowered since can still be emptied: deleting is taken, not closed 1009", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const room = "lowered-limit";
  let w = await startWorker({ vars: { ...VARS, ROOMS_MAX_DOCUMENT_BYTES: 256 * 1024 }, stateDir });
  try {
    const writer = await client(w, room, { user: "writer" });
    const chunk = "x".repeat(2500);
    for (let n = 0; n < 40; n++) writer.text.insert(writer.text.length, chunk);
    const reader = await client(w, room, { user: "reader" });
    await until(() => reader.text.length === 100_000, { what: "the room stored 100 KB", ms: SLOW_ROOM_MS });
    destroyAll(writer, reader);
    await w.stop();
    // The operator lowers the limit below what the room holds.
    w = await startWorker({ vars: VARS, stateDir });
    const closes = [];
    const member = await client(w, room, { user: "member", closes });
    assert.equal(member.text.length, 100_000, "the room loads whole under the lower limit");
    member.text.delete(0, member.text.length);
    const newcomer = await client(w, room, { user: "newcomer" });
    await until(() => newcomer.text.length === 0, { what: () => `the deletion was taken (closes: ${closes})` });
    assert.deepEqual(closes, [], "the member who deleted was not closed");
    destroyAll(member, newcomer);
    await w.stop();
    w = await startWorker({ vars: VARS, stateDir });
    const after = await client(w, room, { user: "after" });
    assert.equal(after.text.toString(), "", "emptied in storage too");
    after.text.insert(0, "fits again");
    const other = await client(w, room, { user: "other" });
    await until(() => other.text.toString() === "fits again", { what: "an edit is taken again" });
    destroyAll(after, other);
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a join the room cannot load its document for is answered 500 with the ticket unspent: the same ticket joins once the document loads; a state read is told the room's own 500", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const room = "unloadable";
  // A tiny compaction threshold, so the document is stored as a snapshot; a long ticket life outlasts two restarts.
  // A signing key and the demo users (persisted with the rest), for a signed-in state read.
  const key = JSON.stringify(generateSigningJwk("rooms-unloadable-key"));
  const vars = { ...VARS, ROOMS_COMPACT_AFTER_UPDATES: 2, ROOMS_TICKET_TTL_SECONDS: 3600, AUTH_SIGNING_KEY: key };
  let w = await startWorker({ vars, stateDir });
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: key });
  const rooms = await w.mf.getDurableObjectNamespace("ROOMS");
  const file = join(stateDir, "v3/do/-Room", `${rooms.idFromName(`room:${room}`).toString()}.sqlite`);
  // The room object's own SQLite file, changed while no workerd has it open, through python3's standard sqlite3
  // module (python3 is set up for schemathesis already): runs the statements, prints the first value read.
  const python = [
    "import sqlite3, sys",
    "db, rows = sqlite3.connect(sys.argv[1]), []",
    "for statement in sys.argv[2].split(';'): rows = db.execute(statement).fetchall() or rows",
    "db.commit()",
    "print(rows[0][0] if rows else '')",
  ].join("\n");
  const roomSql = (statement) => execFileSync("python3", ["-c", python, file, statement], { encoding: "utf8" }).trim();
  let held;
  try {
    const writer = await client(w, room);
    for (let n = 0; n < 5; n++) writer.text.insert(0, `${n}`);
    const reader = await client(w, room);
    await until(() => reader.text.length === 5, { what: "the room stored the five edits" });
    destroyAll(writer, reader);
  } finally {
    await w.stop();
  }
  try {
    assert.equal(roomSql("SELECT count(*) FROM room_snapshot"), "1", "the document is a stored snapshot");
    roomSql("UPDATE room_snapshot SET data = x'ff'");
    w = await startWorker({ vars, stateDir });
    held = await ticket(w, room);
    const url = `${w.url.href.replace(/^http/, "ws")}rooms/${room}/ws?ticket=${held}`;
    assert.equal(await joinStatus(url), 500, "a document that does not rebuild is a 500");
    assert.ok(w.jsonLogs().some((l) => l.msg === "room_document_unloadable"), "and is logged");
    // A state read meets the same refusal: the room's code and message, not the Worker's generic 500, with the read
    // limit's fields.
    const alice = DEMO_USERS.find((u) => u.email === "alice@example.com");
    const state = await w.fetch(`/rooms/${room}/state`, { headers: { cookie: cookieOf(await loginToken(w, alice)) } });
    assert.equal(state.status, 500);
    assert.deepEqual(await state.json(), {
      error: { code: "room_unavailable", message: "the room document could not be loaded" },
    });
    assert.equal(state.headers.get("cache-control"), "no-store");
    assert.match(state.headers.get("content-type"), /^application\/json/);
    assert.ok(state.headers.get("ratelimit-policy"), "the read counted carries its limit's fields");
    await w.stop();
    // Mended (here: emptied), the room loads again, and the ticket the failed join did not use admits its holder.
    roomSql("DELETE FROM room_snapshot; DELETE FROM room_updates; DELETE FROM room_waiting");
    w = await startWorker({ vars, stateDir });
    assert.equal(await joinStatus(`${w.url.href.replace(/^http/, "ws")}rooms/${room}/ws?ticket=${held}`), 101, "the kept ticket joins");
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("updates arriving out of order wait in the room, unrelayed: they are taken and relayed once what they follow arrives, and a restart keeps it all", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  // Compaction every second update: the room compacts while edits wait, so they are carried across a snapshot.
  const vars = { ...VARS, ROOMS_COMPACT_AFTER_UPDATES: 2 };
  // An author offline: three edits, each following the one before; the room gets the last two first, as a peer
  // relaying them over another provider would send them.
  const author = new Y.Doc();
  const edits = [];
  author.on("update", (u) => edits.push(u));
  author.getText("text").insert(0, "one ");
  author.getText("text").insert(4, "two ");
  author.getMap("meta").set("k", "v");
  let w = await startWorker({ vars, stateDir });
  let raw;
  try {
    raw = await rawSocket(w, "unordered");
    raw.ws.send(syncUpdate(edits[2]));
    raw.ws.send(syncUpdate(edits[1]));
    const newcomer = await client(w, "unordered");
    // Not sent to the newcomer: what waits may yet be refused when it continues (a member holding it would then
    // never sync again).
    assert.equal(newcomer.text.toString(), "");
    assert.equal(newcomer.doc.store.pendingStructs, null, "nothing waiting was sent");
    raw.ws.send(syncUpdate(edits[0]));
    await until(() => newcomer.text.toString() === "one two " && newcomer.doc.getMap("meta").get("k") === "v", {
      what: "everything taken once the first edit arrived",
    });
    assert.equal(raw.closed, null, "nothing was refused");
    // Compactions (snapshot, log and waiting rows replaced in one transaction) all succeeded.
    const compactions = w.jsonLogs().filter((l) => l.msg === "room_log_not_compacted");
    assert.deepEqual(compactions, [], "no compaction failed");
    destroyAll(newcomer);
    raw.ws.close();
    await w.stop();
    w = await startWorker({ vars, stateDir });
    const after = await client(w, "unordered");
    assert.equal(after.text.toString(), "one two ", "the text after a restart");
    assert.equal(after.doc.getMap("meta").get("k"), "v", "the map after a restart");
    assert.equal(after.doc.store.pendingStructs, null, "nothing left pending");
    destroyAll(after);
  } finally {
    raw?.ws.terminate();
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("joins whose ticket the room refuses count per address (SESSION_IP_POLICY): made-up tickets cannot keep a room's object busy", async (t) => {
  const w = await startWorker({ vars: { ...VARS, RATE_LIMIT_POLICIES: { "session-ip": { limit: 3, window: 60, key: "ip" } } } });
  t.after(() => w.stop());
  const real = await ticket(w, "busy");
  const join = async (ticketValue, ip) => {
    const answer = await joinFrom(w, "busy", ticketValue, ip);
    answer.ws?.close();
    return answer;
  };
  const statuses = [];
  let refused;
  for (let i = 0; i < 6; i++) {
    // A refused ticket is counted after its answer: the fourth's refusal reaches the isolate's memory when it lands.
    if (i === 4) await untilOverBudget(w);
    const answer = await join(randomBytes(32).toString("hex"), "198.51.100.9");
    statuses.push(answer.status);
    if (answer.status === 429) refused = answer;
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429], "three refused tickets a minute from this address, then 429 before the room");
  assert.equal(JSON.parse(refused.body).error.code, "rate_limited");
  assert.match(refused.headers["ratelimit-policy"] ?? "", /^"session-ip";q=3;w=60$/);
  assert.equal((await join(real, "203.0.113.9")).status, 101, "a member at another address joins");
});

test("a full room answers a made-up ticket 401, counted per address, not 429 room_full; a real ticket waits for space", async (t) => {
  // A full room's refusal came before the ticket was read: made-up tickets were answered 429 room_full, which the
  // address's budget never counts, so anyone could keep a full room's object reading its members' attachments.
  const w = await startWorker({
    vars: { ...VARS, ROOMS_MAX_MEMBERS: 1, RATE_LIMIT_POLICIES: { "session-ip": { limit: 3, window: 60, key: "ip" } } },
  });
  t.after(() => w.stop());
  const member = await rawSocket(w, "full", "alice");
  const waiting = await ticket(w, "full", "bob");
  const join = async (ticketValue, ip) => {
    const answer = await joinFrom(w, "full", ticketValue, ip);
    return answer.body ? { ...answer, code: JSON.parse(answer.body).error.code } : answer;
  };
  const answers = [];
  for (let i = 0; i < 5; i++) {
    if (i === 4) await untilOverBudget(w);
    answers.push(await join(randomBytes(32).toString("hex"), "198.51.100.7"));
  }
  assert.deepEqual(
    answers.map((a) => `${a.status} ${a.code}`),
    ["401 ticket_invalid", "401 ticket_invalid", "401 ticket_invalid", "401 ticket_invalid", "429 rate_limited"],
    "made-up tickets are refused as such and counted, the room being full or not",
  );
  const full = await join(waiting, "203.0.113.7");
  assert.deepEqual([full.status, full.code], [429, "room_full"], "a real ticket is told the room is full");
  member.ws.close();
  await until(() => member.closed !== null, { what: "the member's socket closed" });
  let admitted;
  await until(async () => (admitted = await join(waiting, "203.0.113.7")).status === 101, {
    what: "the unspent ticket admits its holder once there is space",
  });
  admitted.ws.close();
});

test("a room's refusal of a join is logged with its code, as every error answer is, and reaches the client as the room wrote it", async (t) => {
  // The room's own refusals (401 ticket_invalid, 429 room_full, …) went back as the room's response, so the request
  // line said 401 or 429 with no `error_code`: a log query by code never saw them.
  const w = await startWorker({ vars: { ...VARS, ROOMS_MAX_MEMBERS: 1 } });
  t.after(() => w.stop());
  const member = await rawSocket(w, "refusing", "alice");
  const handshake = { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };
  const cases = [
    ["refused-made-up", randomBytes(32).toString("hex"), 401, "ticket_invalid"],
    ["refused-full", await ticket(w, "refusing", "bob"), 429, "room_full"],
  ];
  for (const [id, value, status, code] of cases) {
    const answer = await rawAnswer(w, `/rooms/refusing/ws?ticket=${value}`, { ...handshake, "x-request-id": id });
    assert.equal(answer.status, status, id);
    assert.equal(JSON.parse(answer.body).error.code, code, id);
    assert.deepEqual([answer.headers["content-type"], answer.headers["cache-control"]], ["application/json", "no-store"], id);
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "request" && l.request_id === id), { what: `${id}'s request line` });
    assert.deepEqual([line.status, line.error_code], [status, code], `${id}: the request line names the room's code`);
  }
  member.ws.close();
});

test("an update that waits longer than ROOMS_WAITING_TTL_SECONDS for what it follows is dropped", async () => {
  // A member can send updates that follow edits nobody has: the room keeps them waiting, but not for ever.
  const w = await startWorker({ vars: { ...VARS, ROOMS_WAITING_TTL_SECONDS: 1 } });
  const author = new Y.Doc();
  const edits = [];
  author.on("update", (u) => edits.push(u));
  author.getText("text").insert(0, "one ");
  author.getText("text").insert(4, "two ");
  try {
    const raw = await rawSocket(w, "expiring");
    raw.ws.send(syncUpdate(edits[1]));
    // The TTL is wall-clock time in the room: let it pass (this waits for time itself, not for the room).
    const sent = Date.now();
    await until(() => Date.now() > sent + 1_500, { what: "the TTL passed", ms: 5_000, every: 100 });
    // What it followed arrives: the room first drops what waited too long, then takes it.
    raw.ws.send(syncUpdate(edits[0]));
    const newcomer = await client(w, "expiring");
    await until(() => newcomer.text.toString() === "one ", { what: "the first edit taken" });
    assert.equal(newcomer.doc.store.pendingStructs, null, "nothing waiting was sent");
    assert.equal(raw.closed, null, "nothing was refused");
    // The author still holds it, and sends it again with its next sync step 2: then it is taken.
    raw.ws.send(syncUpdate(Y.encodeStateAsUpdate(author, Y.encodeStateVector(newcomer.doc))));
    await until(() => newcomer.text.toString() === "one two ", { what: "the resent edit taken" });
    destroyAll(newcomer);
    raw.ws.close();
  } finally {
    await w.stop();
  }
});

test("deletions of ids nobody has wait no longer than ROOMS_WAITING_TTL_SECONDS, also across a restart: a room a member filled with them takes edits again", async () => {
  // yrs keeps a deletion of an id it lacks pending, and it counts towards ROOMS_MAX_DOCUMENT_BYTES: a member
  // sending them filled a room until it refused every insert with 1009, for good. They now go with the TTL.
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  /** An update of no structs deleting clock 0 of 200 clients the room never saw, from `first` on. */
  const deletionsOfUnknownIds = (first) => {
    const e = encoding.createEncoder();
    encoding.writeVarUint(e, 0);
    encoding.writeVarUint(e, 200);
    for (let client = first; client < first + 200; client++) {
      for (const n of [client, 1, 0, 1]) encoding.writeVarUint(e, n); // client, one range: clock 0, length 1
    }
    return encoding.toUint8Array(e);
  };
  // Filled under a TTL of an hour, so none expires while they are sent, however slow the machine...
  let w = await startWorker({ vars: { ...VARS, ROOMS_WAITING_TTL_SECONDS: 3600 }, stateDir });
  try {
    const filler = await rawSocket(w, "undeletable", "mallory");
    for (let i = 0; i < 80; i++) filler.ws.send(syncUpdate(deletionsOfUnknownIds(1_000_000 + i * 200)));
    await until(() => filler.closed, { what: "the filler closed", ms: SLOW_ROOM_MS });
    assert.equal(filler.closed.code, 1009, "the deletions filled the room");
    const full = Date.now();
    await w.stop();
    // ...then the room starts again under a TTL of a second: what it loads keeps when the deletions came. (The TTL
    // is wall-clock time in the room: this waits for time itself, not for the room.)
    w = await startWorker({ vars: { ...VARS, ROOMS_WAITING_TTL_SECONDS: 1 }, stateDir });
    await until(() => Date.now() > full + 1_500, { what: "the TTL passed", ms: 5_000, every: 100 });
    const author = new Y.Doc();
    author.getText("text").insert(0, "y".repeat(1024));
    const writer = await rawSocket(w, "undeletable");
    writer.ws.send(syncUpdate(Y.encodeStateAsUpdate(author)));
    const newcomer = await client(w, "undeletable");
    await until(() => newcomer.text.length === 1024, { what: "the edit taken", ms: SLOW_ROOM_MS });
    assert.equal(writer.closed, null, "the edit was not refused");
    destroyAll(newcomer);
    writer.ws.close();
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a deletion of an id the room lacks reaches no member until the id arrives, then every member", async () => {
  // Yjs keeps a deletion it cannot apply pending and sends it back in every sync step 2: relayed, or sent to
  // newcomers, a member's deletions of made-up ids made each later step 2 of theirs larger than the message cap
  // (closed 1009 on every reconnect). An honest one, of an id still on its way, must still reach everyone.
  const w = await startWorker({ vars: VARS });
  const author = new Y.Doc();
  author.getText("text").insert(0, "x");
  const item = Y.encodeStateAsUpdate(author);
  const deleter = new Y.Doc();
  Y.applyUpdate(deleter, item);
  let deletion;
  deleter.on("update", (u) => (deletion = u));
  deleter.getText("text").delete(0, 1);
  // Markers sent after each step: a member that has one has been sent all the room relayed before it.
  const marker = new Y.Doc();
  const edits = [];
  marker.on("update", (u) => edits.push(u));
  try {
    const member = await client(w, "deletions");
    const raw = await rawSocket(w, "deletions");
    raw.ws.send(syncUpdate(deletion));
    marker.getText("text").insert(0, "y");
    raw.ws.send(syncUpdate(edits[0]));
    await until(() => member.text.toString() === "y", { what: "the first marker relayed" });
    assert.equal(member.doc.store.pendingDs, null, "the deletion was not relayed");
    const newcomer = await client(w, "deletions");
    assert.equal(newcomer.text.toString(), "y");
    assert.equal(newcomer.doc.store.pendingDs, null, "nor sent to a newcomer");
    // The deleted item arrives: the room deletes it, and tells every member.
    raw.ws.send(syncUpdate(item));
    marker.getText("text").insert(1, "z");
    raw.ws.send(syncUpdate(edits[1]));
    for (const [who, doc] of [["member", member], ["newcomer", newcomer]]) {
      await until(() => doc.text.toString().includes("z"), { what: `the second marker relayed to the ${who}` });
      assert.equal(doc.text.toString(), "yz", `the ${who} has the item deleted`);
      assert.equal(doc.doc.store.pendingDs, null, `the ${who} keeps nothing pending`);
    }
    assert.equal(raw.closed, null, "nothing was refused");
    destroyAll(member, newcomer);
    raw.ws.close();
  } finally {
    await w.stop();
  }
});

test("a socket the room closed is no longer a member and is not heard, though its client never answers the close", async () => {
  const w = await startWorker({ vars: { ...VARS, ROOMS_MAX_MEMBERS: 2 } });
  const sockets = [];
  try {
    const deaf = await deafSocket(w, "hung", "hung-user");
    deaf.sendText("hello");
    await until(() => closeCode(deaf.data) !== undefined, { what: "the room's close frame" });
    assert.equal(closeCode(deaf.data), 1003, "a text frame: data the room cannot accept");
    // The hung client keeps its connection open; both places are free for others.
    const [ann, bob] = [await rawSocket(w, "hung", "ann"), await rawSocket(w, "hung", "bob")];
    sockets.push(ann.ws, bob.ws);
    // What it still sends is not taken: an update from it, then one from bob; ann gets bob's only.
    const update = (text) => {
      const doc = new Y.Doc();
      doc.getText("text").insert(0, text);
      return syncUpdate(Y.encodeStateAsUpdate(doc));
    };
    await deaf.send(update("ghost-edit"), 0x2);
    bob.ws.send(update("live-edit"));
    await until(() => ann.frames.some((f) => f.includes("live-edit")), { what: "bob's update relayed to ann" });
    assert.ok(!ann.frames.some((f) => f.includes("ghost-edit")), "the closed socket's update went nowhere");
    await until(
      async () => (await (await w.fetch("/rooms")).json()).rooms.find((r) => r.room === "hung")?.members === 2,
      { what: "listed with its 2 open sockets" },
    );
    const url = w.url.href.replace(/^http/, "ws") + `rooms/hung/ws?ticket=${await ticket(w, "hung", "cat")}`;
    assert.equal(await refusedWith(url), 429, "the limit still holds for open sockets");
    deaf.sock.destroy();
  } finally {
    sockets.forEach((ws) => ws.terminate());
    await w.stop();
  }
});

test("sockets the room closed whose client never answers still count against their user's 16: one user cannot pile them up", async () => {
  // A closed socket whose client keeps the connection open stays in the runtime's list of the object's sockets (its
  // frames are still delivered): uncounted, one user could refuse-and-rejoin at the ticket rate without end, every
  // join and broadcast walking them all, until the object's hibernatable socket limit shut everyone out.
  const w = await startWorker({ vars: VARS });
  const held = [];
  try {
    for (let n = 0; n < 16; n++) {
      const deaf = await deafSocket(w, "hoard", "hoarder");
      held.push(deaf);
      await deaf.sendText("hello");
      await until(() => closeCode(deaf.data) !== undefined, { what: `the room's close frame for socket ${n}` });
    }
    const url = async (user) => w.url.href.replace(/^http/, "ws") + `rooms/hoard/ws?ticket=${await ticket(w, "hoard", user)}`;
    assert.equal(await refusedWith(await url("hoarder")), 429, "the user's 16 unanswered closed sockets are their 16");
    assert.equal(refusedWith.headers["content-type"], "application/json");
    assert.equal(await joinStatus(await url("someone-else")), 101, "they are no members: others still join");
  } finally {
    held.forEach((d) => d.sock.destroy());
    await w.stop();
  }
});

test("the room directory lists live rooms and drops rooms whose reports stopped; a late report cannot undo a newer one", async () => {
  // Rooms with members report every ROOMS_DIRECTORY_REPORT_SECONDS (1 s here); a room is listed while its last
  // report is at most 3 intervals old. A "ghost" is a room whose reports stopped (the object went away without
  // closing its sockets, or its last report was lost): injected straight into every directory shard.
  const w = await startWorker({ vars: { ...VARS, ROOMS_DIRECTORY_REPORT_SECONDS: 1 } });
  const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
  const report = (room, members, updated_ms, seq = 1) =>
    Promise.all([0, 1, 2, 3].map(async (shard) => {
      const stub = shards.get(shards.idFromName(`room-directory:${shard}`));
      const body = JSON.stringify({ room, members, updated_ms, seq, report_ms: 1000 });
      const r = await stub.fetch("https://room-directory/report", { method: "POST", body });
      assert.equal(r.status, 204);
    }));
  const listed = async () => Object.fromEntries((await (await w.fetch("/rooms")).json()).rooms.map((r) => [r.room, r.members]));
  let live;
  try {
    live = await client(w, "live-room");
    const joinedAt = Date.now();
    const now = Date.now();
    await report("ghost", 3, now);
    await report("ordered", 2, now + 10_000, 1);
    await report("ordered", 0, now + 5_000, 9); // older, though sent later: ignored
    const first = await listed();
    assert.equal(first.ghost, 3, "a fresh report is listed once, though every shard holds it");
    assert.equal(first.ordered, 2, "the newer report stands");
    await until(async () => (await listed())["live-room"] === 1, { what: "the live room listed" });
    // No sleep: poll until the ghost's report has expired (3 s) and the live room has been joined for more than six
    // intervals — only a room that keeps reporting (not one that reported once or twice) is listed then. (Polled
    // for the live room too: on a loaded machine one of its alarms may run late enough for a listing to miss it, and
    // a room that stopped reporting is never listed again.)
    let seen;
    await until(async () => {
      seen = await listed();
      return seen.ghost === undefined && Date.now() - joinedAt > 6_500 && seen["live-room"] === 1;
    }, { ms: 15_000, what: () => `the ghost dropped, six intervals passed and the live room listed (last: ${JSON.stringify(seen)})` });
  } finally {
    live?.provider.destroy();
    live?.doc.destroy();
    await w.stop();
  }
});

test("a room that emptied after moving to another directory shard is not listed from its old shard's older report", async () => {
  // The shard count changed (raised): the room now reports to another shard, and its old shard still holds its
  // last count until that report goes stale (three intervals). The newer report, saying it emptied, must win.
  const w = await startWorker({ vars: { ...VARS, ROOMS_LIST_MEMORY_MS: 0 } });
  try {
    const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
    const report = async (shard, room, members, updated_ms) => {
      const stub = shards.get(shards.idFromName(`room-directory:${shard}`));
      const body = JSON.stringify({ room, members, updated_ms, seq: 1, report_ms: 60_000 });
      const r = await stub.fetch("https://room-directory/report", { method: "POST", body });
      assert.equal(r.status, 204);
    };
    const now = Date.now();
    await report(0, "moved", 3, now);
    await report(1, "moved", 0, now + 1_000);
    await report(2, "busy", 2, now);
    const rooms = Object.fromEntries((await (await w.fetch("/rooms")).json()).rooms.map((r) => [r.room, r.members]));
    assert.deepEqual(rooms, { busy: 2 }, "the newer report (empty) stands; the old shard's count is not listed");
  } finally {
    await w.stop();
  }
});

test("a directory shard deletes stale rows as reports arrive, not only when someone lists it", async () => {
  // Every ticket can open a room, and each room keeps a row in its shard after it empties; rows were deleted only by
  // GET /rooms. A deployment that never lists (or lists rarely) kept every room ever joined, and the listing that
  // finally came had to delete them all in one request.
  const w = await startWorker({ vars: VARS });
  try {
    const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
    const stub = shards.get(shards.idFromName("room-directory:0"));
    const report = async (room, members, updated_ms) => {
      const body = JSON.stringify({ room, members, updated_ms, seq: 1, report_ms: 60_000 });
      assert.equal((await stub.fetch("https://room-directory/report", { method: "POST", body })).status, 204);
    };
    const rows = async () => (await (await stub.fetch("https://room-directory/count")).json()).rows;
    const now = Date.now();
    // Three intervals (3 min) after its last report a row is stale.
    for (const room of ["gone-1", "gone-2", "gone-3"]) await report(room, 0, now - 3_600_000);
    await report("live", 2, now);
    await report("emptied", 0, now);
    assert.equal(await rows(), 2, "the stale rows were deleted by the reports that followed them; the fresh ones stay");
  } finally {
    await w.stop();
  }
});

test("a directory shard answers a report it cannot read 400 and keeps serving the reports after it", async () => {
  // A report that is not JSON, or whose numbers do not fit (a negative count, a time past 2^53), threw inside the
  // shard: the room's call failed with the parser's text instead of an answer, and the runtime logged an uncaught
  // exception in the directory for what is a bad request.
  const w = await startWorker({ vars: { ...VARS, ROOMS_LIST_MEMORY_MS: 0 } });
  try {
    const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
    const stub = shards.get(shards.idFromName("room-directory:0"));
    const post = (body) => stub.fetch("https://room-directory/report", { method: "POST", body });
    const now = Date.now();
    const bad = [
      "not json",
      JSON.stringify({ members: 1, updated_ms: now }),
      JSON.stringify({ room: "neg", members: -1, updated_ms: now }),
      JSON.stringify({ room: "far", members: 1, updated_ms: 2 ** 64 }),
    ];
    for (const body of bad) {
      const response = await post(body);
      assert.equal(response.status, 400, body);
      assert.match(await response.text(), /report/, body);
    }
    const good = JSON.stringify({ room: "after", members: 2, updated_ms: now, seq: 1, report_ms: 60_000 });
    assert.equal((await post(good)).status, 204, "the shard still takes reports");
    assert.equal((await (await stub.fetch("https://room-directory/count")).json()).rows, 1, "only the good report is stored");
  } finally {
    await w.stop();
  }
});

test("a room logs a report its directory shard refused, as it logs one that failed", async () => {
  // The directory answers a report it cannot read 400; the room took any answer for success, so such a report was
  // lost without a line anywhere (a thrown report had at least been logged as room_directory_report_failed).
  const REFUSING = `export class Refusing {
    async fetch() { return new Response("body must be a room report", { status: 400 }); }
  }
  export default { fetch() { return new Response("refusing"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: VARS,
    workerOptions: { durableObjects: { ...durableObjects, ROOM_DIRECTORY: { className: "Refusing", scriptName: "refusing" } } },
    extraWorkers: [{ name: "refusing", modules: true, script: REFUSING, compatibilityDate: "2024-01-01" }],
  });
  try {
    const member = await rawSocket(w, "refused-report");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "room_directory_report_failed"), {
      what: "the room's line about the refused report",
    });
    assert.equal(line.room, "refused-report");
    assert.match(line.detail, /400/);
    assert.match(line.detail, /body must be a room report/);
    member.ws.close();
  } finally {
    await w.stop();
  }
});

test("GET /rooms lists at most ROOMS_LIST_MAX_ROOMS rooms, the largest, and says when more are active", async () => {
  // The route is public and every ticket can open a room: unbounded, one account's rooms grew every listing (and
  // what each shard sent and each isolate held) by thousands an hour.
  const w = await startWorker({ vars: { ...VARS, ROOMS_LIST_MAX_ROOMS: 2, ROOMS_LIST_MEMORY_MS: 0 } });
  try {
    const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
    const report = async (shard, room, members, seq = 1) => {
      const stub = shards.get(shards.idFromName(`room-directory:${shard}`));
      const body = JSON.stringify({ room, members, updated_ms: Date.now(), seq, report_ms: 60_000 });
      assert.equal((await stub.fetch("https://room-directory/report", { method: "POST", body })).status, 204);
    };
    await report(0, "small", 1);
    await report(1, "large", 3);
    await report(1, "middle", 2);
    const listing = await (await w.fetch("/rooms")).json();
    assert.deepEqual(listing, { rooms: [{ room: "large", members: 3 }, { room: "middle", members: 2 }], truncated: true });
    await report(0, "small", 0, 2);
    const fits = await (await w.fetch("/rooms")).json();
    assert.deepEqual(fits, { rooms: [{ room: "large", members: 3 }, { room: "middle", members: 2 }] }, "all listed: not truncated");
  } finally {
    await w.stop();
  }
});

test("GET /rooms without the directory binding answers 503 and logs why as one JSON line naming the request", async () => {
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const { ROOM_DIRECTORY, ...others } = durableObjects;
  assert.ok(ROOM_DIRECTORY, "wrangler.toml binds the directory");
  const w = await startWorker({ vars: VARS, workerOptions: { durableObjects: others } });
  try {
    const response = await w.fetch("/rooms", { headers: { "x-request-id": "no-directory" } });
    assert.equal(response.status, 503);
    assert.equal((await response.json()).error.code, "directory_unavailable");
    const line = await until(() => w.jsonLogs().find((l) => l.msg === "room_directory_unbound"), { what: "the JSON line" });
    assert.equal(line.level, "error");
    assert.equal(line.request_id, "no-directory");
    assert.match(line.detail, /binding the room directory/);
  } finally {
    await w.stop();
  }
});

test("GET /rooms (public, asking every directory shard) lists at most once per ROOMS_LIST_MEMORY_MS in an isolate, concurrent requests sharing one listing", async () => {
  const reportTo = async (w, room) => {
    const shards = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
    const body = JSON.stringify({ room, members: 1, updated_ms: Date.now(), seq: 1, report_ms: 60_000 });
    const stub = shards.get(shards.idFromName("room-directory:0"));
    assert.equal((await stub.fetch("https://room-directory/report", { method: "POST", body })).status, 204);
    const direct = await (await stub.fetch("https://room-directory/list")).json();
    assert.ok(direct.some((r) => r.room === room), "the shard itself lists it");
  };
  const asked = async (w) => (await (await w.fetch("/__debug/coalesce")).json()).room_listings;
  const rooms = async (w) => (await (await w.fetch("/rooms")).json()).rooms.map((r) => r.room);
  const w = await startWorker({ vars: { ...VARS, ROOMS_LIST_MEMORY_MS: 60_000 } });
  try {
    await reportTo(w, "before-the-burst");
    const answers = await Promise.all(Array.from({ length: 20 }, () => w.fetch("/rooms")));
    const bodies = await Promise.all(answers.map((r) => r.text()));
    assert.deepEqual(answers.map((r) => r.status), Array(20).fill(200));
    assert.equal(new Set(bodies).size, 1, "one listing for all");
    assert.ok(JSON.parse(bodies[0]).rooms.some((r) => r.room === "before-the-burst"));
    assert.equal(await asked(w), 1, "20 concurrent requests asked the shards once");
    await reportTo(w, "after-the-burst");
    assert.ok(!(await rooms(w)).includes("after-the-burst"), "within the memory, the listing is the remembered one");
    assert.equal(await asked(w), 1, "and the shards were not asked again");
  } finally {
    await w.stop();
  }
  const fresh = await startWorker({ vars: { ...VARS, ROOMS_LIST_MEMORY_MS: 0 } });
  try {
    assert.deepEqual(await rooms(fresh), []);
    await reportTo(fresh, "at-once");
    assert.ok((await rooms(fresh)).includes("at-once"), "without a memory, the next listing has it");
    assert.equal(await asked(fresh), 2, "each sequential listing asked the shards");
    // Without a memory only requests arriving during a listing share it: twenty at once overlap (each listing
    // waits on four Durable Object round trips), so they make far fewer listings than requests.
    const burst = await Promise.all(Array.from({ length: 20 }, () => fresh.fetch("/rooms")));
    assert.deepEqual(burst.map((r) => r.status), Array(20).fill(200));
    const made = (await asked(fresh)) - 2;
    console.log(`twenty concurrent listings without a memory asked the shards ${made} times`);
    assert.ok(made >= 1 && made < 20, `${made} listings for 20 concurrent requests`);
  } finally {
    await fresh.stop();
  }
});

test("copies of presence are counted in entries: a frame of many copies answering nothing the room sent costs a token", async () => {
  // Counted in frames, each frame the room sent (one broadcast entry) bought a free copy of thousands of entries,
  // all decoded and compared. Here the room sends the socket nothing, so its 16 free entries cover no 400-entry
  // copy: each costs a token of a 5-token bucket refilling at 1/s, and 16 of them close it before the sync request
  // behind them is answered (counted in frames, all 16 were free and the request answered).
  const w = await startWorker({ vars: { ...VARS, ROOMS_UPDATE_BURST: 5, ROOMS_UPDATES_PER_SECOND: 1 } });
  try {
    const looper = await rawSocket(w, "copy-entries");
    const copies = awareness(Array.from({ length: 400 }, (_, i) => [1_000 + i, 0, "null"]));
    for (let i = 0; i < 16; i++) looper.ws.send(copies);
    looper.ws.send(Buffer.from([0, 0, 1, 0])); // sync step 1, empty state vector
    await until(() => looper.closed || looper.frames.some((f) => f[0] === 0 && f[1] === 1), {
      what: "the socket closed or its sync request answered",
    });
    assert.ok(looper.closed, "the sync request behind 16 unpaid 400-entry copies was answered");
    assert.equal(looper.closed.code, 1008, looper.closed.reason);
    assert.match(looper.closed.reason, /copies/);
  } finally {
    await w.stop();
  }
});

test("the presence a room sends on joining is paid from the member's reply budget: reconnecting into a room of large presence is refused 429 while in debt, the ticket unspent", async () => {
  // Every join is sent the room's whole presence (up to ROOMS_MAX_MESSAGE_BYTES, 1 MiB here). Uncharged, a member
  // reconnecting at the ticket rate made the room encode and send ~1 MB a second for nothing it asked, at no cost
  // to the budget its sync requests and queries pay (4 MiB at once, 64 KiB/s after).
  const w = await startWorker({ vars: { ...VARS, ROOMS_MAX_MESSAGE_BYTES: 1024 * 1024 } });
  try {
    const room = "presence-on-join";
    const holders = [];
    // 16 members holding 7 states of ~8 KB each (56 KB, within a member's 64 KiB): ~900 KB of presence.
    for (let u = 0; u < 16; u++) {
      const s = await rawSocket(w, room, `holder-${u}`);
      holders.push(s);
      const ids = Array.from({ length: 7 }, (_, i) => 700_000 + u * 10 + i);
      s.ws.send(awareness(ids.map((id) => [id, 1, JSON.stringify({ pad: "p".repeat(8_000) })])));
      await until(() => awarenessOf(s.frames, ids[6]).length > 0, { what: `holder ${u}'s presence relayed` });
    }
    const wsUrl = (t) => w.url.href.replace(/^http/, "ws") + `rooms/${room}/ws?ticket=${t}`;
    let refused = null;
    let joined = 0;
    for (let i = 0; i < 12 && !refused; i++) {
      const t = await ticket(w, room, "rejoiner");
      const ws = new WebSocket(wsUrl(t));
      let retryAfter;
      const outcome = await new Promise((resolve, reject) => {
        ws.on("unexpected-response", (_req, res) => {
          retryAfter = Number(res.headers["retry-after"]);
          resolve(res.statusCode);
          ws.terminate();
        });
        ws.on("message", (data) => {
          // The room's presence (an awareness frame): the join was answered in full; leave at once.
          if (data[0] === 1) {
            ws.close();
            resolve(101);
          }
        });
        ws.on("error", reject);
      });
      if (outcome === 101) joined++;
      else refused = { status: outcome, ticket: t, retryAfter };
    }
    assert.ok(refused, `${joined} joins were each sent ~900 KB of presence without paying for it`);
    assert.equal(refused.status, 429);
    assert.ok(joined >= 4 && joined <= 6, `joined ${joined} times before the refusal: the 4 MiB budget buys ~5`);
    // It says when the debt is paid: less than one join's presence (~900 KB) at 64 KiB/s, in whole seconds.
    assert.ok(refused.retryAfter >= 1 && refused.retryAfter <= Math.ceil(1024 ** 2 / 65_536), `Retry-After: ${refused.retryAfter}`);
    // The refused ticket was not spent: it admits its holder once the debt is paid — refused 429 until then, never
    // 401 as a used one would be (however long the handshakes take, the debt cannot outlast its Retry-After).
    const deadline = Date.now() + (refused.retryAfter + 5) * 1000;
    await until(
      async () => {
        const status = await joinStatus(wsUrl(refused.ticket));
        assert.ok(status === 429 || status === 101, `the kept ticket was answered ${status}`);
        return status === 101;
      },
      { ms: deadline - Date.now(), every: 250, what: "the kept ticket admitted once the debt was paid" },
    );
    // Another member's budget is their own.
    const other = await rawSocket(w, room, "someone-else");
    assert.equal(other.closed, null);
    other.ws.close();
    holders.forEach((s) => s.ws.close());
  } finally {
    await w.stop();
  }
});

test("a member's reply debt outlives the room's memory: after the object restarts, a join in debt is still refused 429 with its Retry-After, the ticket unspent", async () => {
  // The budgets lived in the object's memory: a room that hibernated (~10 s without an event) or was evicted started
  // every member's again, so waiting 10 s bought a fresh 4 MiB instead of 640 KB. A restart of the Worker over the
  // same storage forgets the object's memory as hibernation does.
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const vars = { ...VARS, ROOMS_MAX_MESSAGE_BYTES: 1024 * 1024, ROOMS_MAX_DOCUMENT_BYTES: 1_900_000 };
  const room = "debt-restart";
  const wsUrl = (w, t) => w.url.href.replace(/^http/, "ws") + `rooms/${room}/ws?ticket=${t}`;
  const steps2 = (s) => s.frames.filter((f) => f[0] === 0 && f[1] === 1);
  let w = await startWorker({ vars, stateDir });
  let kept;
  let before;
  try {
    // A document of ~1.8 MB, in two updates.
    const writer = await rawSocket(w, room, "writer");
    const local = new Y.Doc();
    local.on("update", (u) => writer.ws.send(syncUpdate(u)));
    for (let i = 0; i < 2; i++) local.getText("text").insert(0, "d".repeat(900_000));
    writer.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => steps2(writer).some((f) => f.length > 1_800_000), { ms: 20_000, what: "the room holds 1.8 MB" });
    writer.ws.close();
    // Whole-document sync requests: the third takes the 4 MiB budget ~1.2 MB into debt (~18 s at 64 KiB/s), the
    // fourth is refused.
    const looper = await rawSocket(w, room, "looper");
    for (let i = 0; i < 4; i++) looper.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => looper.closed, { ms: 20_000, what: "the looping socket closed" });
    assert.equal(looper.closed.code, 1008, looper.closed.reason);
    assert.equal(steps2(looper).length, 3, "three whole documents sent");
    kept = await ticket(w, room, "looper");
    assert.equal(await refusedWith(wsUrl(w, kept)), 429, "a join in debt");
    before = Number(refusedWith.headers["retry-after"]);
    assert.ok(before >= 10 && before <= 20, `Retry-After ${before}: ~1.2 MB of debt at 64 KiB/s`);
  } finally {
    await w.stop();
  }
  const stopped = Date.now();
  w = await startWorker({ vars, stateDir });
  try {
    // The debt (~18 s) outlasts a restart (a second or two) by far; forgotten, the join was admitted.
    const status = await joinStatus(wsUrl(w, kept));
    const elapsed = (Date.now() - stopped) / 1000;
    assert.equal(status, 429, `admitted ${elapsed} s after the restart began: the debt (${before} s) was forgotten`);
    assert.equal(await refusedWith(wsUrl(w, kept)), 429, "and still refused: the ticket is unspent");
    const again = Number(refusedWith.headers["retry-after"]);
    assert.ok(again >= 1 && again <= before, `Retry-After ${again} after the restart, ${before} before it`);
    // Another member's budget is their own.
    const other = await rawSocket(w, room, "someone-else");
    assert.equal(other.closed, null);
    other.ws.close();
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a member's message bucket is kept across a restart, and is at worst empty under the room's new settings, never in debt", async () => {
  // A message bucket never goes below zero; stored, it is the time it is full again. Rebuilt at other settings (a
  // larger rate, a smaller burst), that time read as a debt of thousands of tokens: raising the rate locked a member
  // who had emptied their bucket out for as long as the old burst took to refill (here ~40 s), where the instance
  // that kept it in memory let them go on at once at the new rate.
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const room = "rate-restart";
  const sync1 = Buffer.from([0, 0, 1, 0]);
  const answered = (s) => s.frames.filter((f) => f[0] === 0 && f[1] === 1).length;
  // 40 messages at 1/s: 40 s to refill, past the 10 s a room stays in memory, so its bucket is stored.
  let w = await startWorker({ vars: { ...VARS, ROOMS_UPDATE_BURST: 40, ROOMS_UPDATES_PER_SECOND: 1 }, stateDir });
  try {
    const spender = await rawSocket(w, room, "spender");
    const base = answered(spender);
    for (let i = 0; i < 40; i++) spender.ws.send(sync1);
    await until(() => answered(spender) >= base + 40, { what: "40 sync requests answered" });
    assert.equal(spender.closed, null);
    spender.ws.close();
  } finally {
    await w.stop();
  }
  // Kept at the same settings: the restart's seconds refilled, not 40 — 35 more close the socket, as long as the
  // restart took under 35 s (15 more allowed only 15 s, which a loaded machine's restart and join can approach).
  w = await startWorker({ vars: { ...VARS, ROOMS_UPDATE_BURST: 40, ROOMS_UPDATES_PER_SECOND: 1 }, stateDir });
  try {
    const spender = await rawSocket(w, room, "spender");
    for (let i = 0; i < 35; i++) spender.ws.send(sync1);
    await until(() => spender.closed, { what: "the socket closed: its bucket was kept across the restart" });
    assert.equal(spender.closed.code, 1008, spender.closed.reason);
  } finally {
    await w.stop();
  }
  // The default rate (60/s, burst 200): the bucket is read back (at the join) empty, and has a token again 17 ms
  // later. A sync request the room gets sooner closes its socket 1008 and leaves the bucket as it was, so the member
  // joins again and resends until one is answered — read back in debt (~2,200 tokens), none is for ~35 s more.
  w = await startWorker({ vars: VARS, stateDir });
  try {
    const refusals = [];
    await until(
      async () => {
        const again = await rawSocket(w, room, "spender");
        const base = answered(again);
        again.ws.send(sync1);
        await until(() => again.closed || answered(again) > base, { what: "the sync request answered or the socket closed" });
        if (again.closed) {
          refusals.push(`${again.closed.code} ${again.closed.reason}`);
          return false;
        }
        again.ws.close();
        return true;
      },
      { ms: 10_000, what: () => `a sync request answered at the new rate (refused ${refusals.length} times: ${refusals.at(-1)})` },
    );
    assert.ok(
      refusals.every((r) => r === "1008 update rate exceeded"),
      `a socket closed only for its rate: ${refusals}`,
    );
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("a panic in a room's object: its caller is answered 500 and logged, the members stay connected and relayed, the document is intact", async (t) => {
  // Under Miniflare the Worker and its objects share one isolate and one Wasm instance: the object's panic stops the
  // instance the Worker's requests run in too, so the panic hook answers the request waiting on the object (the
  // bodiless 500 of a request that did not panic itself: src/entry/in_flight.rs) and a new instance serves the next
  // call. The hibernatable sockets are the runtime's, not the instance's.
  const w = await startWorker({ vars: VARS });
  t.after(() => w.stop());
  const room = "panicking-room";
  const [a, b] = [await client(w, room, { user: "a" }), await client(w, room, { user: "b" })];
  const closed = [];
  for (const c of [a, b]) c.provider.on("connection-close", (event) => closed.push(event?.code));
  a.text.insert(0, "before");
  await until(() => b.text.toString() === "before", { what: "b has a's edit" });

  const refused = await w.fetch("/__debug/panic?in=room&room=no%20such");
  assert.equal(refused.status, 400, "a room name no room can have panics nothing");
  assert.equal((await refused.json()).error.code, "invalid_room");

  const panic = await panicInObject(w, `in=room&room=${room}`, "room-panic");
  assert.match(panic.location, /^durable_objects\/src\/room\/object\.rs:/, "the panic is the object's");
  assert.match(panic.panic, /deliberate panic in room "panicking-room" \(request "room-panic"\)/);

  // The members' sockets outlive the instance: an edit after the panic reaches the other member, none was closed.
  a.text.insert(6, " after");
  await until(() => b.text.toString() === "before after", { what: () => `b has a's edit after the panic: ${b.text.toString()}` });
  assert.deepEqual(closed, [], "no member's socket closed");
  // The object's new instance reads the document from storage: a newcomer is sent all of it.
  const newcomer = await client(w, room, { user: "c" });
  assert.equal(newcomer.text.toString(), "before after");
  const state = await w.fetch(`/__debug/coalesce`);
  assert.equal(state.status, 200, "the Worker serves after the object's panic");
  await state.arrayBuffer();
});

test("a room's object panics on its debug path only when its request carries the Worker's DEBUG_ROUTES header: any other request there is its 404", async (t) => {
  // The Worker sends that path from a DEBUG_ROUTES route alone, but the check is the object's too, by the header every
  // object class reads (x-edgekit-debug-routes: on), which no route of a production Worker (nor one added later) sends.
  // Settings, however they read, turn nothing on. Called here through the runtime's namespace API, as the Worker calls it.
  const w = await startWorker({ vars: { ...VARS, DEBUG_ROUTES: false } });
  t.after(() => w.stop());
  const ns = await w.mf.getDurableObjectNamespace("ROOMS");
  const stub = ns.get(ns.idFromName("room:debug-path"));
  const settings = { max_message_bytes: 4096, updates_per_second: 60, update_burst: 200, max_members: 10, compaction: { max_entries: 500, max_bytes: 1048576 }, directory_shards: 1 };
  const panicAt = (headers) => stub.fetch("https://room/__debug/panic", { method: "POST", headers: { "x-room-name": "debug-path", ...headers } });
  for (const [what, headers] of [
    ["no settings", {}],
    ["settings from before the flag", { "x-room-settings": JSON.stringify(settings) }],
    ["settings of a Worker without DEBUG_ROUTES", { "x-room-settings": JSON.stringify({ ...settings, debug_routes: false }) }],
    ["settings saying debug_routes, without the header", { "x-room-settings": JSON.stringify({ ...settings, debug_routes: true }) }],
    ["the header off", { "x-room-settings": JSON.stringify(settings), "x-edgekit-debug-routes": "off" }],
    ["the header not the exact value", { "x-room-settings": JSON.stringify(settings), "x-edgekit-debug-routes": "true" }],
  ]) {
    const answer = await panicAt(headers);
    assert.deepEqual([answer.status, (await answer.json()).error?.code], [404, "not_found"], what);
  }
  assert.ok(!w.jsonLogs().some((l) => l.msg === "panic"), "nothing panicked");
  // With the header on (as a DEBUG_ROUTES Worker sends it), the same request is the panic the test above makes
  // through /__debug/panic?in=room: so the 404s here are the flag's, not a path the object does not know.
});

test("GET /rooms lists the shards that answer when one never does, marked incomplete, instead of a 503 for all", { timeout: 30_000 }, async (t) => {
  // One shard stuck (an overloaded object, a storage stall) held the whole listing to its 5 s budget and answered
  // 503 `directory_unavailable`, though the README says a failing shard's rooms are left out and the answer marked
  // `incomplete`: every shard's ask now has a budget of its own, inside the listing's. A stand-in directory class
  // (the binding pointed at it) answers shard 0 and never answers shard 1.
  const DIRECTORY = `export class Directory {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
    async fetch() {
      if (this.ctx.id.equals(this.env.DIRECTORY.idFromName("room-directory:1"))) {
        await new Promise((resolve) => setTimeout(resolve, 600_000));
      }
      const now = Date.now();
      return Response.json([{ room: "answered", members: 2, updated_ms: now, expires_ms: now + 600_000 }]);
    }
  }
  export default { fetch() { return new Response("directory"); } };`;
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: { ...VARS, ROOMS_DIRECTORY_SHARDS: 2, ROOMS_LIST_MEMORY_MS: 0 },
    workerOptions: { durableObjects: { ...durableObjects, ROOM_DIRECTORY: { className: "Directory", scriptName: "directory" } } },
    extraWorkers: [{ name: "directory", modules: true, script: DIRECTORY, durableObjects: { DIRECTORY: "Directory" } }],
  });
  t.after(() => w.stop());
  const response = await w.fetch("/rooms", { headers: { "x-request-id": "stuck-shard" } });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { rooms: [{ room: "answered", members: 2 }], incomplete: true });
  const line = await until(() => w.jsonLogs().find((l) => l.msg === "room_directory_shard_failed"), { what: "the shard's log line" });
  assert.deepEqual([line.shard, line.request_id], [1, "stuck-shard"]);
  assert.match(line.detail, /no answer in \d+ ms/);
});

test("a panic in a room-directory shard: the request waiting on it is answered 500 and logged, and the shard's next listing is served from what it stored", async (t) => {
  // The directory had no debug panic: nothing showed that a panic in it is answered, logged and recovered from.
  const w = await startWorker({ vars: { ...VARS, ROOMS_DIRECTORY_SHARDS: 1 } });
  t.after(() => w.stop());
  const ns = await w.mf.getDurableObjectNamespace("ROOM_DIRECTORY");
  const shard = ns.get(ns.idFromName("room-directory:0"));
  const report = { room: "listed-before", members: 2, updated_ms: Date.now(), seq: 1, report_ms: 3_600_000 };
  const reported = await shard.fetch("https://room-directory/report", { method: "POST", body: JSON.stringify(report) });
  assert.equal(reported.status, 204, "a room reported to the shard");
  const listing = async () => {
    const r = await w.fetch("/rooms");
    assert.equal(r.status, 200);
    return r.json();
  };
  assert.deepEqual(await listing(), { rooms: [{ room: "listed-before", members: 2 }] });
  for (const query of ["in=directory&shard=1", "in=directory&shard=x"]) {
    const refused = await w.fetch(`/__debug/panic?${query}`);
    assert.deepEqual([refused.status, (await refused.json()).error.code], [400, "invalid_parameter"], `${query}: a shard there is not`);
  }

  const panic = await panicInObject(w, "in=directory", "directory-panic");
  assert.match(panic.location, /^durable_objects\/src\/room_directory\/object\.rs:/, "the panic is the shard's");
  assert.match(panic.panic, /deliberate panic in a room-directory shard \(request "directory-panic"\)/);

  // The shard's next request is served by a new instance, on its storage: the listing is whole (no `incomplete`).
  const count = await shard.fetch("https://room-directory/count");
  assert.deepEqual([count.status, await count.json()], [200, { rows: 1 }], "the shard answers after its panic");
  assert.deepEqual(await listing(), { rooms: [{ room: "listed-before", members: 2 }] }, "and lists what it stored");
  // The object's debug path without the Worker's flag (a request no DEBUG_ROUTES Worker sent) is its 404.
  for (const [what, headers] of [["no flag", {}], ["flag off", { "x-edgekit-debug-routes": "off" }], ["not the exact value", { "x-edgekit-debug-routes": "true" }]]) {
    const r = await shard.fetch("https://room-directory/__debug/panic", { method: "POST", headers });
    assert.equal(r.status, 404, what);
    await r.arrayBuffer();
  }
  assert.equal(w.jsonLogs().filter((l) => l.msg === "panic").length, 1, "only the debug route's request panicked");
});
