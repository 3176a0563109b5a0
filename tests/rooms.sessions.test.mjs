// Rooms behind a real session (D1 users, a login's cookie, POST /rooms/:room/ticket) and what a session's end — a
// logout, DELETE /auth/sessions, a later login, a revocation, an expiry, a lowered SESSION_MAX_SECS — does to its
// tickets and open sockets. The rooms protocol itself: tests/rooms.test.mjs (helpers in tests/support/rooms.mjs).
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import * as decoding from "lib0/decoding";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { ROOT, migratedTemplate, startWorker, until } from "./support/worker.mjs";
import { DEMO_USERS, seed } from "../scripts/seed.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";
import {
  VARS,
  loginToken,
  cookieOf,
  recordedSocket,
  sessionTicket,
  client,
  syncUpdate,
  awareness,
  rawSocket,
  refusedWith,
  destroyAll,
  live,
  joinAnswer,
  deafSocket,
  closeFrame,
  closeCode,
  walBytesOf,
} from "./support/rooms.mjs";

afterEach(() => destroyAll(...live));

describe("rooms behind a real session", () => {
  let w;
  const KEY = generateSigningJwk("rooms-test-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const BOB = DEMO_USERS.find((u) => u.email === "bob@example.com");
  before(async () => {
    w = await startWorker({
      vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { "rooms-ticket": { limit: 4, window: 60, key: "user" } } },
    });
    await seed({
      CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"),
      DB: await w.mf.getD1Database("DB"),
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
    });
  });
  after(() => w?.stop());

  /** Logs `user` in and returns its session cookie (`name=value`). */
  async function sessionCookie(user) {
    return cookieOf(await loginToken(w, user));
  }


  test("a signed-in user gets a single-use ticket, joins with y-websocket, and reads the state as JSON", async () => {
    const cookie = await sessionCookie(ALICE);

    assert.equal((await w.fetch("/rooms/signed/ticket", { method: "POST" })).status, 401, "no session, no ticket");
    assert.equal((await w.fetch("/rooms/signed/state")).status, 401, "no session, no state");

    const issued = await w.fetch("/rooms/signed/ticket", { method: "POST", headers: { cookie } });
    assert.equal(issued.status, 201);
    const { ticket: t } = await issued.json();
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(w.url.href.replace(/^http/, "ws") + "rooms/signed", "ws", doc, {
      WebSocketPolyfill: WebSocket,
      params: { ticket: t },
      disableBc: true,
      maxBackoffTime: 200,
    });
    try {
      await until(() => provider.synced, { what: "the session client synced" });
      // One root of each kind a Yjs editor declares: a text, an array of plain values, and y-prosemirror's XML
      // fragment (a paragraph holding "hello"). The room knows none of their types (Yjs does not send them).
      const paragraph = new Y.XmlElement("paragraph");
      paragraph.insert(0, [new Y.XmlText("hello")]);
      doc.transact(() => {
        doc.getText("text").insert(0, "written by alice");
        doc.getArray("todos").push([1, "two", { done: true }]);
        doc.getXmlFragment("prosemirror").insert(0, [paragraph]);
      });
      const state = await until(
        async () => {
          const r = await w.fetch("/rooms/signed/state", { headers: { cookie } });
          const body = r.status === 200 ? await r.json() : null;
          return body && JSON.stringify(body).includes("written by alice") ? body : null;
        },
        { what: "the state to show the edit" },
      );
      // Each root as Yjs' own toJSON() reads it (an XML fragment: its XML text).
      assert.deepEqual(state.document, {
        text: "written by alice",
        todos: [1, "two", { done: true }],
        prosemirror: "<paragraph>hello</paragraph>",
      });
      assert.deepEqual(state.document, {
        text: doc.getText("text").toJSON(),
        todos: doc.getArray("todos").toJSON(),
        prosemirror: doc.getXmlFragment("prosemirror").toJSON(),
      });
      const base = w.url.href.replace(/^http/, "ws") + "rooms/signed/ws";
      assert.equal(await refusedWith(`${base}?ticket=${t}`), 401, "the session's ticket is single-use");
    } finally {
      provider.destroy();
      doc.destroy();
    }
  });

  test("the state writes numbers as JSON.stringify does: a Date.now() without a fraction", async (t) => {
    // A worker of its own: the shared one's state budget (ROOMS_TICKET_POLICY's rate) belongs to the other tests.
    const own = await startWorker({
      vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { "rooms-ticket": { limit: 4, window: 60, key: "user" } } },
    });
    t.after(() => own.stop());
    await seed({ CONFIG_KV: await own.mf.getKVNamespace("CONFIG_KV"), DB: await own.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const cookie = cookieOf(await loginToken(own, ALICE));
    const join = async (doc) => {
      const issued = await own.fetch("/rooms/numbers/ticket", { method: "POST", headers: { cookie } });
      assert.equal(issued.status, 201);
      const provider = new WebsocketProvider(own.url.href.replace(/^http/, "ws") + "rooms/numbers", "ws", doc, {
        WebSocketPolyfill: WebSocket,
        params: { ticket: (await issued.json()).ticket },
        disableBc: true,
        maxBackoffTime: 200,
      });
      await until(() => provider.synced, { what: "synced" });
      return provider;
    };
    const doc = new Y.Doc();
    const watched = new Y.Doc();
    const providers = [await join(doc), await join(watched)];
    try {
      // lib0 sends an integer past int32 as a float (float64 here, float32 for 2 ** 60), which yrs keeps as a float.
      doc.getMap("meta").set("at", 1700000000123);
      doc.getMap("meta").set("big", 2 ** 60);
      doc.getMap("meta").set("half", 1.5);
      // The room relays an update only once it is stored: the other member holding it means /state shows it.
      await until(() => watched.getMap("meta").get("half") === 1.5, { what: "the other member to get the edit" });
      const expected = JSON.stringify(doc.getMap("meta").toJSON());
      const r = await own.fetch("/rooms/numbers/state", { headers: { cookie } });
      assert.equal(r.status, 200);
      const text = await r.text();
      assert.ok(text.includes(`"meta":${expected}`), `${text} writes ${expected}`);
      assert.equal(expected, '{"at":1700000000123,"big":1152921504606847000,"half":1.5}');
    } finally {
      for (const provider of providers) provider.destroy();
      doc.destroy();
      watched.destroy();
    }
  });

  test("shared types nest at most 128 deep: a chain at the limit is stored, shown by /state and deleted; one level more closes its socket with 1007", async () => {
    // Deleting a shared type recurses into the types it holds (in yrs and in Yjs): a chain thousands deep, sent a
    // level at a time, would overflow the room's stack on every deletion of it.
    const cookie = await sessionCookie(ALICE);
    const room = "nesting";
    const author = new Y.Doc();
    const levels = [];
    author.on("update", (u) => levels.push(u));
    let deepest = author.getMap("m");
    for (let i = 0; i < 128; i++) {
      const next = new Y.Map();
      deepest.set("a", next);
      deepest = next;
    }
    deepest.set("leaf", "value at the limit");
    const depthOf = (map) => {
      let depth = 0;
      for (let cur = map; cur?.a !== undefined; cur = cur.a) depth++;
      return depth;
    };
    const writer = await rawSocket(w, room);
    const reader = await client(w, room);
    try {
      writer.ws.send(syncUpdate(Y.mergeUpdates(levels)));
      await until(() => depthOf(reader.doc.getMap("m").toJSON()) === 128, { what: "the reader got the chain" });
      const state = await w.fetch(`/rooms/${room}/state`, { headers: { cookie } });
      assert.equal(state.status, 200, "the state of a room nested to the limit");
      const body = await state.json();
      assert.equal(body.room, room);
      assert.equal(depthOf(body.document.m), 128, "the state shows the whole chain");
      assert.equal(JSON.stringify(body.document).includes("value at the limit"), true);

      levels.length = 0;
      deepest.set("a", new Y.Map());
      writer.ws.send(syncUpdate(levels[0]));
      await until(() => writer.closed, { what: "the socket nesting past the limit closed" });
      assert.equal(writer.closed.code, 1007, writer.closed.reason);
      assert.match(writer.closed.reason, /nest more than 128/);

      // The chain deletes from its top (the room recurses through all of it), and the room lives on.
      reader.doc.getMap("m").delete("a");
      const late = await client(w, room);
      await until(() => late.doc.getMap("m").size === 0 && reader.provider.wsconnected, { what: "the chain deleted" });
      assert.equal(depthOf(late.doc.getMap("m").toJSON()), 0);
      const after = await (await w.fetch(`/rooms/${room}/state`, { headers: { cookie } })).json();
      assert.deepEqual(after.document.m ?? {}, {}, "the state after the deletion");
      destroyAll(late);
    } finally {
      writer.ws.terminate();
      destroyAll(reader);
    }
  });

  test("tickets are limited per user (ROOMS_TICKET_POLICY) and not stored by caches; reading a made-up room stores nothing", async () => {
    const cookie = await sessionCookie(BOB);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const r = await w.fetch(`/rooms/limited-${i}/ticket`, { method: "POST", headers: { cookie } });
      statuses.push(r.status);
      if (r.status === 201) assert.equal(r.headers.get("cache-control"), "no-store", "a ticket is a credential");
      if (r.status === 429) assert.match(r.headers.get("ratelimit-policy") ?? "", /"rooms-ticket"/);
      await r.arrayBuffer();
    }
    assert.deepEqual(statuses, [201, 201, 201, 201, 429, 429], "4 per minute for this user");

    const written = await walBytesOf(w);
    const state = await w.fetch("/rooms/never-made-up-before/state", { headers: { cookie } });
    assert.equal(state.status, 200);
    assert.equal(state.headers.get("cache-control"), "no-store");
    assert.deepEqual(await state.json(), { room: "never-made-up-before", members: 0, document: {} }, "an empty room");
    assert.equal(written("never-made-up-before"), 0, "reading it stored nothing");

    // State reads have a budget of their own at the policy's rate (the read above was the first, after the tickets
    // ran out): each makes the room render its whole document, in the object its members wait on.
    const reads = [];
    for (let i = 0; i < 4; i++) {
      const r = await w.fetch("/rooms/never-made-up-before/state", { headers: { cookie } });
      reads.push(r.status);
      if (r.status === 429) {
        assert.match(r.headers.get("ratelimit-policy") ?? "", /"rooms-ticket";q=4;w=60/);
        assert.ok(Number(r.headers.get("retry-after")) >= 1, "Retry-After");
        assert.equal((await r.json()).error.code, "rate_limited");
      } else {
        await r.arrayBuffer();
      }
    }
    assert.deepEqual(reads, [200, 200, 200, 429], "4 reads per minute for this user");
  });
  test("a room name no room can have is refused 400 before the user's ticket or state budget is spent", async () => {
    // Alice has spent one of her 4 tickets a minute above. A typo (or a page looping on a bad name) used to spend
    // the rest, and the next ticket for a real room was refused 429.
    const cookie = await sessionCookie(ALICE);
    const names = ["has%20space", "...", "x".repeat(65), "caf%C3%A9"];
    for (const name of names) {
      const issued = await w.fetch(`/rooms/${name}/ticket`, { method: "POST", headers: { cookie } });
      assert.equal(issued.status, 400, `ticket for ${name}`);
      assert.equal((await issued.json()).error.code, "invalid_room");
    }
    for (const name of names) {
      const state = await w.fetch(`/rooms/${name}/state`, { headers: { cookie } });
      assert.equal(state.status, 400, `state of ${name}`);
      assert.equal((await state.json()).error.code, "invalid_room");
    }
    const issued = await w.fetch("/rooms/after-typos/ticket", { method: "POST", headers: { cookie } });
    assert.equal(issued.status, 201, "the budget is intact");
    await issued.arrayBuffer();
  });
});

test("a logout ends the session's room access: its unused ticket is refused 401, and its open socket is closed 1008 within ROOMS_DIRECTORY_REPORT_SECONDS; another session of the user stays", async () => {
  // A ticket was the user's and nothing else: after POST /auth/logout (or DELETE /auth/sessions, or a revocation
  // for reuse) a ticket minted before it still joined until it expired, and an open socket kept sending for good.
  const KEY = generateSigningJwk("rooms-logout-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 1 } });
  const sockets = [];
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const login = async () => cookieOf(await loginToken(w, ALICE));
    const issue = (cookie) => sessionTicket(w, "leaving", cookie);
    const open = (t) => recordedSocket(w, "leaving", t, sockets);
    const [phone, laptop] = [await login(), await login()];
    const [joined, unused, other] = [await issue(phone), await issue(phone), await issue(laptop)];
    // The phone's socket is a raw one: the room's close frame is read off the wire (in workerd, a close sent from
    // the room's alarm is not followed by the end of the connection, so a ws client stays in CLOSING).
    const mine = await deafSocket(w, "leaving", null, joined);
    const theirs = await open(other);
    const out = await w.fetch("/auth/logout", { method: "POST", headers: { cookie: phone } });
    assert.equal(out.status, 204, "logged out");
    const base = w.url.href.replace(/^http/, "ws") + "rooms/leaving/ws";
    assert.equal(await refusedWith(`${base}?ticket=${unused}`), 401, "a ticket minted before the logout no longer joins");
    await until(() => closeCode(mine.data) !== undefined, { ms: 8000, what: "the logged-out session's socket closed" });
    assert.equal(closeCode(mine.data), 1008, "closed for policy");
    assert.match(closeFrame(mine.data).subarray(2).toString(), /session ended/);
    // The laptop's session is live: its socket stays, and the room still relays what it sends; what the ended
    // session's socket still sends is not taken.
    const reader = await open(await issue(laptop));
    const ghost = new Y.Doc();
    ghost.getText("text").insert(0, "after-logout");
    await mine.send(syncUpdate(Y.encodeStateAsUpdate(ghost)), 0x2);
    const doc = new Y.Doc();
    doc.getText("text").insert(0, "still-here");
    theirs.ws.send(syncUpdate(Y.encodeStateAsUpdate(doc)));
    await until(() => reader.frames.some((f) => f.includes("still-here")), { what: "the other session's update relayed" });
    assert.ok(!reader.frames.some((f) => f.includes("after-logout")), "the ended session's update went nowhere");
    assert.equal(theirs.closed, null, "the other session's socket is open");
    mine.sock.destroy();
  } finally {
    sockets.forEach((ws) => ws.terminate());
    await w.stop();
  }
});

test("a room that hibernated still closes an ended session's socket at its next alarm, and broadcasts that socket's presence removal from its attachment", async () => {
  // workerd evicts an object whose sockets are all hibernatable after 10 s without an event (miniflare's
  // `unsafePreventEviction` says so; this harness leaves it off), so with a report interval of 15 s the alarm wakes a
  // new instance: what it knows of its sockets (their sessions' families, the presence clients they announced) is
  // only what their attachments and storage kept. Shown hibernated by the presence states, which live in memory
  // alone: a newcomer joining right after the alarm is sent none of them.
  const KEY = generateSigningJwk("rooms-hibernation-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 15 } });
  const sockets = [];
  let phone;
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const login = async () => cookieOf(await loginToken(w, ALICE));
    const issue = (cookie) => sessionTicket(w, "sleepy", cookie);
    const open = (t) => recordedSocket(w, "sleepy", t, sockets);
    /** The [client, clock, state] entries of an awareness message (none for another message). */
    const entries = (frame) => {
      const d = decoding.createDecoder(new Uint8Array(frame));
      if (decoding.readVarUint(d) !== 1) return [];
      const u = decoding.createDecoder(decoding.readVarUint8Array(d));
      return Array.from({ length: decoding.readVarUint(u) }, () => [decoding.readVarUint(u), decoding.readVarUint(u), decoding.readVarString(u)]);
    };
    const [laptopCookie, phoneCookie] = [await login(), await login()];
    const laptop = await open(await issue(laptopCookie));
    laptop.ws.send(awareness([[4242, 1, '{"user":"laptop-presence"}']]));
    // A raw socket: the close the alarm sends is read off the wire (see the logout test above).
    phone = await deafSocket(w, "sleepy", null, await issue(phoneCookie));
    await phone.send(awareness([[4343, 1, '{"user":"phone-presence"}']]), 0x2);
    await until(() => laptop.frames.some((f) => entries(f).some(([c]) => c === 4343)), { what: "the phone's presence relayed" });
    const out = await w.fetch("/auth/logout", { method: "POST", headers: { cookie: phoneCookie } });
    assert.equal(out.status, 204, "logged out");
    // The alarm, 15 s after the first join; the room was idle for more than 10 s before it.
    await until(() => closeCode(phone.data) !== undefined, { ms: 40_000, every: 200, what: "the ended session's socket closed by the alarm" });
    assert.equal(closeCode(phone.data), 1008, "closed for policy");
    assert.match(closeFrame(phone.data).subarray(2).toString(), /session ended/);
    await until(() => laptop.frames.some((f) => entries(f).some(([c, , state]) => c === 4343 && state === "null")), {
      what: "the closed socket's presence removal broadcast (from its attachment)",
    });
    // The newcomer's sync request is answered after everything the join sent it: past that, the join's presence.
    const newcomer = await open(await issue(laptopCookie));
    newcomer.ws.send(Buffer.from([0, 0, 1, 0]));
    await until(() => newcomer.frames.some((f) => f[0] === 0 && f[1] === 1), { what: "the newcomer's sync answered" });
    assert.ok(
      !newcomer.frames.some((f) => entries(f).some(([c]) => c === 4242)),
      "the room's memory was new at the alarm (the laptop's presence state, kept only in memory, is gone): it had hibernated",
    );
    assert.equal(laptop.closed, null, "the live session's socket stays");
  } finally {
    phone?.sock.destroy();
    sockets.forEach((ws) => ws.terminate());
    await w.stop();
  }
});

test("DELETE /auth/sessions ends the room access of every session of the user, as a logout does: tickets minted before are refused 401 session_ended, open sockets closed 1008; another user's stay", async () => {
  // The way out when the session list shows a stolen session: the thief's tickets and sockets must end with it, not
  // only the caller's. The room asks D1 by session family; this pins that a revocation by user (not by the
  // cookie's ids, as a logout's) is one the room sees, for a session other than the caller's.
  const KEY = generateSigningJwk("rooms-end-all-key");
  const [ALICE, BOB] = ["alice@example.com", "bob@example.com"].map((email) => DEMO_USERS.find((u) => u.email === email));
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 1 } });
  const raw = [];
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const issue = (token) => sessionTicket(w, "ending-all", cookieOf(token));
    const join = async (t) => {
      const s = await deafSocket(w, "ending-all", null, t);
      raw.push(s);
      return s;
    };
    const [owner, thief, bob] = [await loginToken(w, ALICE), await loginToken(w, ALICE), await loginToken(w, BOB)];
    const [thiefUnused, ownerUnused] = [await issue(thief), await issue(owner)];
    const [thiefs, owners, bobs] = [await join(await issue(thief)), await join(await issue(owner)), await join(await issue(bob))];
    const out = await w.fetch("/auth/sessions", { method: "DELETE", headers: { cookie: cookieOf(owner) } });
    assert.equal(out.status, 204, "every session of the user ended");
    const refusal = (t, ip) => joinAnswer(w, "ending-all", t, ip);
    assert.equal(await refusal(thiefUnused, "203.0.113.61"), "401 session_ended", "the other session's ticket minted before no longer joins");
    assert.equal(await refusal(ownerUnused, "203.0.113.62"), "401 session_ended", "nor the caller's own");
    for (const [s, what] of [[thiefs, "the other session's"], [owners, "the caller's"]]) {
      await until(() => closeCode(s.data) !== undefined, { ms: 8000, what: `${what} socket closed` });
      assert.equal(closeCode(s.data), 1008, `${what} socket closed for policy`);
      assert.match(closeFrame(s.data).subarray(2).toString(), /session ended/);
    }
    assert.equal(closeCode(bobs.data), undefined, "another user's socket stays open");
  } finally {
    raw.forEach((s) => s.sock.destroy());
    await w.stop();
  }
});

test("a login that ends the browser's earlier session ends that session's room access too: its tickets are refused 401 session_ended, its sockets closed 1008", async () => {
  // A login replaces the browser's session (the earlier one ends in the login's D1 transaction): the earlier
  // session's tickets and sockets (another tab of the same browser, or a copy of its token) end with it.
  const KEY = generateSigningJwk("rooms-relogin-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 1 } });
  const raw = [];
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const issue = (token) => sessionTicket(w, "relogin", cookieOf(token));
    const earlier = await loginToken(w, ALICE);
    const unused = await issue(earlier);
    const tab = await deafSocket(w, "relogin", null, await issue(earlier));
    raw.push(tab);
    const again = await w.fetch("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json", cookie: cookieOf(earlier) },
      body: JSON.stringify({ email: ALICE.email, password: ALICE.password }),
    });
    assert.equal(again.status, 200, "signed in again");
    await again.arrayBuffer();
    assert.equal(await joinAnswer(w, "relogin", unused, "203.0.113.63"), "401 session_ended", "the earlier session's ticket no longer joins");
    await until(() => closeCode(tab.data) !== undefined, { ms: 8000, what: "the earlier session's socket closed" });
    assert.equal(closeCode(tab.data), 1008);
  } finally {
    raw.forEach((s) => s.sock.destroy());
    await w.stop();
  }
});

test("a refresh keeps its session's room access (a ticket minted before it joins, its sockets stay open past a report interval); a revocation for reuse or an expiry then ends it", async () => {
  // The room follows a session through its rotations (its family): a refresh is no end, a reuse revocation and an
  // expiry are. Whether an alarm has checked the room's sessions since the refresh is read off another session's
  // socket, closed for a logout made after the refresh.
  const KEY = generateSigningJwk("rooms-refresh-key");
  const [ALICE, BOB] = ["alice@example.com", "bob@example.com"].map((email) => DEMO_USERS.find((u) => u.email === email));
  const w = await startWorker({
    vars: {
      ...VARS,
      AUTH_SIGNING_KEY: JSON.stringify(KEY),
      ROOMS_DIRECTORY_REPORT_SECONDS: 1,
      SESSION_ROTATE_MIN_SECS: 0,
      SESSION_REUSE_GRACE_SECS: 0,
    },
  });
  const raw = [];
  try {
    const db = await w.mf.getD1Database("DB");
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: db, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const tokenOf = (r) => /__Host-edgekit_session=([^;]*)/.exec(r.headers.get("set-cookie") ?? "")?.[1];
    const login = (user) => loginToken(w, user);
    const issue = (token) => sessionTicket(w, "rotating", cookieOf(token));
    const refresh = (token) => w.fetch("/auth/refresh", { method: "POST", headers: { cookie: cookieOf(token) } });
    const join = async (t) => {
      const s = await deafSocket(w, "rotating", null, t);
      raw.push(s);
      return s;
    };
    const base = w.url.href.replace(/^http/, "ws") + "rooms/rotating/ws";

    const [phone, laptop, tablet] = [await login(ALICE), await login(BOB), await login(ALICE)];
    const [before, minted, probe, expiring, unusedExpiring] = [
      await issue(phone),
      await issue(phone),
      await issue(laptop),
      await issue(tablet),
      await issue(tablet),
    ];
    const mine = await join(before);
    const refreshed = await refresh(phone);
    assert.equal(refreshed.status, 200, "refreshed");
    const rotated = tokenOf(refreshed);
    assert.ok(rotated && rotated !== phone, "the refresh rotated the token");
    // A ticket minted before the refresh joins after it (deafSocket asserts the 101), and so does one minted after.
    const again = await join(minted);
    const fresh = await join(await issue(rotated));
    const probed = await join(probe);
    const out = await w.fetch("/auth/logout", { method: "POST", headers: { cookie: cookieOf(laptop) } });
    assert.equal(out.status, 204, "the laptop logged out");
    await until(() => closeCode(probed.data) !== undefined, { ms: 8000, what: "the logged-out laptop's socket closed" });
    assert.equal(closeCode(probed.data), 1008);
    for (const [s, what] of [[mine, "opened before the refresh"], [again, "joined after it with a ticket from before"], [fresh, "joined with a ticket from after"]]) {
      assert.equal(closeCode(s.data), undefined, `the refreshed session's socket ${what} stays open`);
    }

    // The token the refresh retired comes back: a copy, the session is revoked, and its sockets go.
    assert.equal((await refresh(phone)).status, 401, "the retired token is refused");
    for (const s of [mine, again, fresh]) {
      await until(() => closeCode(s.data) !== undefined, { ms: 8000, what: "the revoked session's socket closed" });
      assert.equal(closeCode(s.data), 1008);
    }

    // An expiry ends it too (D1's idle expiry, moved into the past here rather than waited for).
    const tab = await join(expiring);
    const ended = await db
      .prepare("UPDATE sessions SET expires_at = ?1 WHERE id = ?2")
      .bind(Date.now() - 1, createHash("sha256").update(tablet).digest("hex"))
      .run();
    assert.equal(ended.meta.changes, 1, "the tablet's session row");
    assert.equal(await refusedWith(`${base}?ticket=${unusedExpiring}`), 401, "a ticket of an expired session no longer joins");
    await until(() => closeCode(tab.data) !== undefined, { ms: 8000, what: "the expired session's socket closed" });
    assert.equal(closeCode(tab.data), 1008);
  } finally {
    raw.forEach((s) => s.sock.destroy());
    await w.stop();
  }
});

test("a join the room's own limits refuse (full) is answered 429 before the ticket's session is asked of D1; with space, an ended session's ticket is 401", async (t) => {
  // The session check is a D1 query: asked first, a signed-in user retrying one ticket against a full room (429,
  // uncounted, ticket kept) made the room query D1 on every attempt. The room's limits come first, from memory.
  const KEY = generateSigningJwk("rooms-full-first-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, ROOMS_MAX_MEMBERS: 1, AUTH_SIGNING_KEY: JSON.stringify(KEY) } });
  t.after(() => w.stop());
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const cookie = cookieOf(await loginToken(w, ALICE));
  const issued = await w.fetch("/rooms/full-first/ticket", { method: "POST", headers: { cookie } });
  assert.equal(issued.status, 201, "a ticket");
  const { ticket: hers } = await issued.json();
  const member = await rawSocket(w, "full-first", "bob");
  const out = await w.fetch("/auth/logout", { method: "POST", headers: { cookie } });
  assert.equal(out.status, 204, "logged out");
  const join = () => joinAnswer(w, "full-first", hers, "203.0.113.21");
  assert.equal(await join(), "429 room_full", "the full room refuses from memory, its session not asked");
  member.ws.close();
  await until(() => member.closed !== null, { what: "the member's socket closed" });
  let answer;
  await until(async () => (answer = await join()) !== "429 room_full", { what: "space in the room" });
  assert.equal(answer, "401 session_ended", "with space, the ended session's ticket is refused");
});

test("a ticket whose session the room found ended is refused 401 session_ended again without asking D1 (shown with D1's sessions table gone: no 503)", async (t) => {
  // Each join with a logged-out session's ticket asked D1 again (one primary read per attempt, answered 401 each
  // time). The end of a session is final, so the room remembers it with the session's tickets: a retry, or another
  // unused ticket of the same session, is answered from the room's own storage. D1 is made unreadable here (its
  // sessions table renamed) to show that no read is made; a live session's ticket still needs D1 (503).
  const KEY = generateSigningJwk("rooms-ended-remembered-key");
  const [ALICE, BOB] = ["alice@example.com", "bob@example.com"].map((email) => DEMO_USERS.find((u) => u.email === email));
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY) } });
  t.after(() => w.stop());
  const db = await w.mf.getD1Database("DB");
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: db, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const login = async (user) => cookieOf(await loginToken(w, user));
  const issue = (cookie) => sessionTicket(w, "ended-remembered", cookie);
  const [hers, his] = [await login(ALICE), await login(BOB)];
  const [first, second, live] = [await issue(hers), await issue(hers), await issue(his)];
  assert.equal((await w.fetch("/auth/logout", { method: "POST", headers: { cookie: hers } })).status, 204, "logged out");
  const join = (ticketValue, ip) => joinAnswer(w, "ended-remembered", ticketValue, ip);
  assert.equal(await join(first, "203.0.113.31"), "401 session_ended", "the room asks D1 once and finds the session ended");
  await db.exec("ALTER TABLE sessions RENAME TO sessions_away");
  try {
    assert.equal(await join(first, "203.0.113.32"), "401 session_ended", "the same ticket again: no D1 read (it would fail: 503)");
    assert.equal(await join(second, "203.0.113.33"), "401 session_ended", "another ticket of the ended session: no D1 read either");
    assert.equal(await join(live, "203.0.113.34"), "503 session_check_unavailable", "a live session's ticket is still asked of D1");
  } finally {
    await db.exec("ALTER TABLE sessions_away RENAME TO sessions");
  }
  assert.equal(await join(live, "203.0.113.35"), "101 ", "and, D1 back, joins with the ticket it kept");
});

test("sockets the directory alarm closes for an ended session are reported to the directory once, by the alarm's own report, not once each", async () => {
  // The alarm closed each ended session's socket through the path a bad frame takes, which reports the room's
  // member count after every close: N sockets cost N + 1 directory requests (counts nobody reads, each one an
  // outgoing request of the room and a write at the shard). The directory here is a stub logging each report.
  const RECORDING = `export class Recording {
    async fetch(req) {
      const r = await req.json();
      console.log(JSON.stringify({ msg: "recorded_report", room: r.room, members: r.members, seq: r.seq, at: r.updated_ms }));
      return new Response(null, { status: 204 });
    }
  }
  export default { fetch() { return new Response("recording"); } };`;
  const KEY = generateSigningJwk("rooms-one-report-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const w = await startWorker({
    vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 1 },
    workerOptions: { durableObjects: { ...durableObjects, ROOM_DIRECTORY: { className: "Recording", scriptName: "recording" } } },
    extraWorkers: [{ name: "recording", modules: true, script: RECORDING, compatibilityDate: "2024-01-01" }],
  });
  const raw = [];
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const cookie = cookieOf(await loginToken(w, ALICE));
    const reports = () => w.jsonLogs().filter((l) => l.msg === "recorded_report" && l.room === "one-report");
    // A member without a session keeps the room (and its alarm) going after the three ended sockets close.
    raw.push(await deafSocket(w, "one-report", "stays"));
    for (let i = 0; i < 3; i++) {
      const r = await w.fetch("/rooms/one-report/ticket", { method: "POST", headers: { cookie } });
      assert.equal(r.status, 201, "a ticket");
      raw.push(await deafSocket(w, "one-report", null, (await r.json()).ticket));
    }
    await until(() => reports().some((r) => r.members === 4), { what: "a report of the four members" });
    const before = reports().length;
    assert.equal((await w.fetch("/auth/logout", { method: "POST", headers: { cookie } })).status, 204, "logged out");
    const ended = raw.slice(1);
    await until(() => ended.every((s) => closeCode(s.data) !== undefined), { ms: 8000, what: "the ended session's sockets closed" });
    // The alarm that closed them, and the one after (alarms do not overlap: its reports have all been made).
    await until(() => reports().slice(before).filter((r) => r.members === 1).length >= 2, { ms: 8000, what: "two reports of the one member left" });
    const after = reports().slice(before).map((r) => r.members);
    assert.deepEqual(after.filter((m) => m === 3 || m === 2), [], `no report per closed socket (reports since the logout: ${after})`);
    assert.equal(closeCode(raw[0].data), undefined, "the member without a session stays");
    // Their clients' answering closes change no count, and report none: the room, emptied by its last member
    // leaving, reports 0 for that leave (and at most once more, from the alarm already set); a newcomer's join
    // after the answers reports 1. Each answer reported the count again (0, once per closed socket). The reports
    // are put in the room's order (time, then its report count), not the order they reached the directory: each is
    // a request of its own, and a 0 an answer reported, reaching the directory after the newcomer's 1, was left out
    // of the count. (Nothing tells the client that the room has handled an answered close — the runtime keeps the
    // connection open —, so the newcomer's join is only sent after the answers, not proven to follow their handling.)
    await raw[0].send(Buffer.from([0x03, 0xe8]), 0x8);
    await until(() => reports().slice(before).some((r) => r.members === 0), { what: "the last member's leave reported" });
    for (const s of ended) await s.send(Buffer.from([0x03, 0xe8]), 0x8);
    const mark = reports().length;
    const newcomer = await rawSocket(w, "one-report", "newcomer");
    await until(() => reports().slice(mark).some((r) => r.members === 1), { what: "the newcomer's join reported" });
    const log = reports()
      .slice(before)
      .sort((a, b) => a.at - b.at || a.seq - b.seq)
      .map((r) => r.members);
    // From the last member's leave (the first 0) to the newcomer's join (the first 1 after it).
    const emptied = log.indexOf(0);
    const zeros = log.slice(emptied, log.indexOf(1, emptied)).filter((m) => m === 0);
    assert.ok(zeros.length <= 2, `an empty room reported once for its last leave, once by its alarm at most (reports since the logout: ${log})`);
    newcomer.ws.close();
  } finally {
    raw.forEach((s) => s.sock.destroy());
    await w.stop();
  }
});

/**
 * Signs alice in under `limits` ([vars]), joins `room` with one ticket and keeps another, then has `column` of her
 * session's row (`created_at` or `last_seen_at`) say two hours ago while D1's expiry stays an hour ahead: a lowered
 * limit ended it. The Worker, the room's join and its socket check must all hold it ended.
 */
async function endedByALoweredLimit(room, limits, column, ip) {
  const KEY = generateSigningJwk(`${room}-key`);
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_DIRECTORY_REPORT_SECONDS: 1, ...limits } });
  const raw = [];
  try {
    const db = await w.mf.getD1Database("DB");
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: db, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const token = await loginToken(w, ALICE);
    const issue = () => sessionTicket(w, room, cookieOf(token));
    const [joined, unused] = [await issue(), await issue()];
    const mine = await deafSocket(w, room, null, joined);
    raw.push(mine);
    const aged = await db
      .prepare(`UPDATE sessions SET ${column} = ?1, expires_at = ?2 WHERE id = ?3`)
      .bind(Date.now() - 2 * 3600_000, Date.now() + 3600_000, createHash("sha256").update(token).digest("hex"))
      .run();
    assert.equal(aged.meta.changes, 1, "the session's row");
    const checked = await w.fetch("/auth/sessions", { headers: { cookie: cookieOf(token) } });
    assert.equal(checked.status, 401, "the Worker holds the session ended");
    await checked.arrayBuffer();
    assert.equal(await joinAnswer(w, room, unused, ip), "401 session_ended", "its ticket no longer joins");
    await until(() => closeCode(mine.data) !== undefined, { ms: 8000, what: "the ended session's socket closed" });
    assert.equal(closeCode(mine.data), 1008);
  } finally {
    raw.forEach((s) => s.sock.destroy());
    await w.stop();
  }
}

test("a session past a lowered SESSION_MAX_SECS has ended for rooms too: its unused ticket is refused 401 session_ended and its socket closed, though D1's expiry is later", async () => {
  // Lowered, SESSION_MAX_SECS ends older sessions at their next check (the Worker compares their start with it), but
  // their row keeps the later expiry it was given under the old limit: the room, which read only that expiry, let
  // such a session's tickets join and kept its sockets open until the idle expiry (up to SESSION_IDLE_SECS).
  // Begun two hours ago, under a limit above the one configured now.
  await endedByALoweredLimit("max-lowered", { SESSION_MAX_SECS: 3600, SESSION_IDLE_SECS: 3600 }, "created_at", "203.0.113.41");
});

test("a session idle past a lowered SESSION_IDLE_SECS has ended for rooms too: its unused ticket is refused 401 session_ended and its socket closed, though D1's expiry is later", async () => {
  // Lowered, SESSION_IDLE_SECS ends sessions idle longer than it at their next check (the Worker compares their
  // last-seen time with it), but their row keeps the later expiry written under the old window: the room, which read
  // only that expiry, let such a session's tickets join and kept its sockets open until then.
  // Last seen two hours ago, under an idle window above the one configured now.
  await endedByALoweredLimit("idle-lowered", { SESSION_MAX_SECS: 86_400, SESSION_IDLE_SECS: 3600 }, "last_seen_at", "203.0.113.45");
});

/**
 * Has a join find alice's session ended by a lowered limit alone — `column` of its row (`created_at` or
 * `last_seen_at`) two hours ago, D1's expiry an hour ahead, under `lowered` ([vars]) — then restarts the Worker with
 * `raised`, under which the Worker holds the session live again: the session's other ticket, marked ended by that
 * join, must join.
 */
async function joinsOnceRaised(room, column, lowered, raised, ips) {
  const KEY = generateSigningJwk(`${room}-key`);
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const stateDir = mkdtempSync(join(tmpdir(), "edgekit-rooms-"));
  cpSync(migratedTemplate(), stateDir, { recursive: true });
  const vars = (limits) => ({ ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), ROOMS_TICKET_TTL_SECONDS: 3600, ...limits });
  let w = await startWorker({ vars: vars(lowered), stateDir });
  try {
    const db = await w.mf.getD1Database("DB");
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: db, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const token = await loginToken(w, ALICE);
    const issue = () => sessionTicket(w, room, cookieOf(token));
    const [first, second] = [await issue(), await issue()];
    const aged = await db
      .prepare(`UPDATE sessions SET ${column} = ?1, expires_at = ?2 WHERE id = ?3`)
      .bind(Date.now() - 2 * 3600_000, Date.now() + 3600_000, createHash("sha256").update(token).digest("hex"))
      .run();
    assert.equal(aged.meta.changes, 1, "the session's row");
    const joinWith = (ticketValue, ip) => joinAnswer(w, room, ticketValue, ip);
    assert.equal(await joinWith(first, ips[0]), "401 session_ended", "past the limit: ended (and its other ticket marked)");
    await w.stop();
    w = await startWorker({ vars: vars(raised), stateDir });
    const checked = await w.fetch("/auth/sessions", { headers: { cookie: cookieOf(token) } });
    assert.equal(checked.status, 200, "the Worker holds the session live again");
    await checked.arrayBuffer();
    assert.equal(await joinWith(second, ips[1]), "101 ", "its ticket, marked under the lower limit, joins");
  } finally {
    await w.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test("a ticket the room found ended only by a lowered SESSION_MAX_SECS joins once the limit is raised again: the mark is kept with the limit it was made under", async () => {
  // A revocation or an expiry is final, but an end by the absolute limit alone is undone when the limit is raised
  // again (a lowering rolled back): the Worker accepts the session once more. The room marked the session's tickets
  // ended for good and refused them 401 from its storage, though D1 and the Worker both held the session live.
  // Begun two hours ago, past the one-hour limit; raised to three hours, the session is live again.
  const idle = { SESSION_IDLE_SECS: 3600 };
  await joinsOnceRaised("max-raised", "created_at", { ...idle, SESSION_MAX_SECS: 3600 }, { ...idle, SESSION_MAX_SECS: 3 * 3600 }, ["203.0.113.51", "203.0.113.52"]);
});

test("a ticket the room found ended only by a lowered SESSION_IDLE_SECS joins once the window is raised again: the mark is kept with the window it was made under", async () => {
  // As for the absolute limit: an end by the idle window alone is undone when the window is raised again. The mark
  // named the absolute limit alone, which had not changed, and the session's tickets stayed refused 401.
  // Last seen two hours ago, past the one-hour window; raised to three hours, the session is live again.
  const max = { SESSION_MAX_SECS: 86_400 };
  await joinsOnceRaised("idle-raised", "last_seen_at", { ...max, SESSION_IDLE_SECS: 3600 }, { ...max, SESSION_IDLE_SECS: 3 * 3600 }, ["203.0.113.53", "203.0.113.54"]);
});

test("a ticket of a session a join found ended under settings without a session limit is refused 401 session_ended again, not failed: the mark it keeps is a number the room's SQLite gives back", async () => {
  // Settings without `session_max_ms` (a Worker built before it, during a deploy) mean no limit, and the room marked
  // the session's tickets with i64::MAX: stored as a JavaScript number (2^63, a float), it read back as no i64, and
  // every later join with a ticket of that session failed in the room instead of being refused.
  const KEY = generateSigningJwk("rooms-no-limit-mark-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const w = await startWorker({ vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY) } });
  try {
    await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
    const token = await loginToken(w, ALICE);
    const issue = () => sessionTicket(w, "no-limit-mark", cookieOf(token));
    const [first, second] = [await issue(), await issue()];
    assert.equal((await w.fetch("/auth/logout", { method: "POST", headers: { cookie: cookieOf(token) } })).status, 204, "logged out");
    // Joins sent to the room's object as a Worker whose settings have no session limit sends them.
    const rooms = await w.mf.getDurableObjectNamespace("ROOMS");
    const room = rooms.get(rooms.idFromName("room:no-limit-mark"));
    const settings = {
      max_message_bytes: 4096,
      updates_per_second: 30,
      update_burst: 60,
      max_members: 50,
      compaction: { max_entries: 500, max_bytes: 262144 },
      directory_shards: 4,
    };
    const join = async (t) => {
      try {
        const r = await room.fetch(`http://room/connect?ticket=${t}`, {
          headers: { upgrade: "websocket", "x-room-name": "no-limit-mark", "x-room-settings": JSON.stringify(settings) },
        });
        const body = await r.text();
        return `${r.status} ${r.status === 401 ? JSON.parse(body).error.code : body.slice(0, 120)}`;
      } catch (e) {
        return `failed: ${e.message.slice(0, 120)}`;
      }
    };
    assert.equal(await join(first), "401 session_ended", "the room asks D1 and finds the session ended");
    assert.equal(await join(second), "401 session_ended", "the session's other ticket, marked then, is refused from the room's storage");
    assert.equal(await join(first), "401 session_ended", "and the first again");
  } finally {
    await w.stop();
  }
});

test("a ticket or state read the limit counted carries RateLimit-Policy/RateLimit on its 500 too (the rooms namespace unbound: the room cannot be reached)", async (t) => {
  // The ticket and state routes added the limit's fields to a success only: a room that could not be reached after
  // the request spent a unit of the user's quota answered 500 without them, so the client could not tell it had.
  const KEY = generateSigningJwk("rooms-unbound-key");
  const ALICE = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const { durableObjects } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  const { ROOMS: _unbound, ...others } = durableObjects;
  const w = await startWorker({
    vars: { ...VARS, AUTH_SIGNING_KEY: JSON.stringify(KEY), RATE_LIMIT_POLICIES: { "rooms-ticket": { limit: 4, window: 60, key: "user" } } },
    workerOptions: { durableObjects: others },
  });
  t.after(() => w.stop());
  await seed({ CONFIG_KV: await w.mf.getKVNamespace("CONFIG_KV"), DB: await w.mf.getD1Database("DB"), AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const cookie = cookieOf(await loginToken(w, ALICE));
  for (const [what, path, init] of [
    ["ticket", "/rooms/unbound/ticket", { method: "POST", headers: { cookie } }],
    ["state", "/rooms/unbound/state", { headers: { cookie } }],
  ]) {
    for (const remaining of [3, 2]) {
      const r = await w.fetch(path, init);
      assert.equal(r.status, 500, `${what}: the room cannot be reached`);
      assert.equal((await r.json()).error.code, "internal_error", what);
      assert.equal(r.headers.get("ratelimit-policy"), '"rooms-ticket";q=4;w=60', `${what}: the policy that counted it`);
      assert.match(r.headers.get("ratelimit") ?? "", new RegExp(`^"rooms-ticket";r=${remaining};t=\\d+$`), `${what}: the unit it spent`);
    }
  }
});
