// The rooms test files' helpers (tests/rooms.test.mjs, tests/rooms.sessions.test.mjs): tickets, sockets and
// y-websocket clients against a started Worker (./worker.mjs), and the y-protocols messages they send.
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import * as awarenessProtocol from "y-protocols/awareness";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { until } from "./worker.mjs";

export const VARS = { ROOMS_MAX_MESSAGE_BYTES: 4096, ROOMS_MAX_DOCUMENT_BYTES: 65536 };
/** How long a test waits for a room to get through hundreds of frames it sent at once (a loaded machine is slow). */
export const SLOW_ROOM_MS = 60_000;
/** Waits until a refused ticket's count, made after its answer, met the address's `session-ip` limit. */
export const untilOverBudget = (w) =>
  until(() => w.jsonLogs().some((l) => l.msg === "rate limit exceeded by a request counted after its response" && l.policy === "session-ip"), {
    what: "a count over session-ip's limit",
  });

/** Logs `user` in on `w` (200 asserted) and returns its session token, the session cookie's value. */
export async function loginToken(w, user) {
  const r = await w.fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: user.email, password: user.password }),
  });
  assert.equal(r.status, 200, `${user.email} logs in`);
  await r.arrayBuffer();
  return /__Host-edgekit_session=([^;]*)/.exec(r.headers.get("set-cookie"))[1];
}

/** The `Cookie` header value that presents session `token`. */
export const cookieOf = (token) => `__Host-edgekit_session=${token}`;

/** A WebSocket joined to `room` with ticket `t` (pushed onto `sockets`, for the test to end), recording the frames
 * it receives and how it closed: `{ ws, frames, closed }`. */
export async function recordedSocket(w, room, t, sockets) {
  const ws = new WebSocket(w.url.href.replace(/^http/, "ws") + `rooms/${room}/ws?ticket=${t}`);
  const state = { ws, frames: [], closed: null };
  ws.on("message", (data) => state.frames.push(data));
  ws.on("close", (code, reason) => (state.closed = { code, reason: reason.toString() }));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  sockets.push(ws);
  return state;
}

/** A ticket for `room` issued to the session whose `Cookie` header value is `cookie` (POST /rooms/:room/ticket). */
export async function sessionTicket(w, room, cookie) {
  const r = await w.fetch(`/rooms/${room}/ticket`, { method: "POST", headers: { cookie } });
  assert.equal(r.status, 201, "a ticket");
  return (await r.json()).ticket;
}

export async function ticket(w, room, user = "tester") {
  const response = await w.fetch(`/__debug/rooms/${room}/ticket?user=${user}`, { method: "POST" });
  assert.equal(response.status, 201, "debug ticket issued");
  return (await response.json()).ticket;
}

/** A y-websocket client in `room`, synced with the server. */
export async function client(w, room, { user = "tester", name, offline, closes } = {}) {
  const doc = new Y.Doc();
  // Text the client holds before it connects (an edit made offline): its sync step 2 carries it to the room.
  if (offline) doc.getText("text").insert(0, offline);
  const provider = new WebsocketProvider(w.url.href.replace(/^http/, "ws") + `rooms/${room}`, "ws", doc, {
    WebSocketPolyfill: WebSocket,
    params: { ticket: await ticket(w, room, user) },
    disableBc: true,
    maxBackoffTime: 200,
  });
  provider.on("connection-close", () => {
    ticket(w, room, user).then((t) => (provider.params.ticket = t), () => {});
  });
  // Every close the client meets, from its first connection on.
  if (closes) provider.on("connection-close", (event) => closes.push(event?.code));
  const made = { doc, provider, text: doc.getText("text") };
  live.add(made);
  if (name) provider.awareness.setLocalStateField("user", { name });
  await until(() => provider.synced, { what: `client of ${room} synced` });
  return made;
}

/** A y-websocket update message (sync, type 2) carrying `update`. */
export function syncUpdate(update) {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, 0);
  encoding.writeVarUint(e, 2);
  encoding.writeVarUint8Array(e, update);
  return Buffer.from(encoding.toUint8Array(e));
}

/** A y-websocket awareness message (type 1) of `entries`: [client id, clock, state JSON text] each. */
export function awareness(entries) {
  const update = encoding.createEncoder();
  encoding.writeVarUint(update, entries.length);
  for (const [client, clock, state] of entries) {
    encoding.writeVarUint(update, client);
    encoding.writeVarUint(update, clock);
    encoding.writeVarString(update, state);
  }
  return Buffer.concat([Buffer.from([1]), encodeVarUint8Array(encoding.toUint8Array(update))]);
}

/** A raw socket with a valid ticket; resolves once open, records frames and the close code. */
export async function rawSocket(w, room, user = "tester") {
  const url = w.url.href.replace(/^http/, "ws") + `rooms/${room}/ws?ticket=${await ticket(w, room, user)}`;
  const ws = new WebSocket(url);
  const state = { ws, frames: [], closed: null };
  ws.on("message", (data) => state.frames.push(data));
  ws.on("close", (code, reason) => (state.closed = { code, reason: reason.toString() }));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return state;
}

/** The HTTP status a WebSocket handshake is refused with (the refusal's headers in `refusedWith.headers`). */
export function refusedWith(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on("unexpected-response", (_req, res) => {
      refusedWith.headers = res.headers;
      resolve(res.statusCode);
      ws.terminate();
    });
    ws.on("open", () => reject(new Error("the handshake was accepted")));
    // An error after the refusal is answered changes nothing; one before it (no connection) fails the test.
    ws.on("error", reject);
  });
}

/** The status a WebSocket handshake is answered with: 101 (the socket is then closed at once), or the refusal's. */
export function joinStatus(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode);
      ws.terminate();
    });
    ws.on("open", () => {
      ws.terminate();
      resolve(101);
    });
    ws.on("error", reject);
  });
}

/** The answer to a GET with `headers` sent as they are (the `ws` client always sends a complete handshake). */
export function rawAnswer(w, path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: w.url.port, path, headers });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: "" });
    });
    req.on("error", reject);
    req.end();
  });
}

// Destroying the doc also stops its awareness timer, so the test process can exit. Clients a test did not get to
// destroy (it failed first) are destroyed after it (each rooms file's `afterEach(() => destroyAll(...live))`), so
// they stop reconnecting.
export const live = new Set();
export const destroyAll = (...clients) =>
  clients.forEach((c) => {
    live.delete(c);
    c.provider.destroy();
    c.doc.destroy();
  });

/** A WebSocket join of `room` with `ticketValue` from address `ip`: `{status: 101, ws}` when admitted, else the
 *  refusal's `{status, headers, body}`. */
export function joinFrom(w, room, ticketValue, ip) {
  const url = `${w.url.href.replace(/^http/, "ws")}rooms/${room}/ws?ticket=${ticketValue}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(url, { headers: { "cf-connecting-ip": ip } });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => {
        settled = true;
        resolve({ status: res.statusCode, headers: res.headers, body });
        ws.terminate();
      });
    });
    ws.on("open", () => {
      settled = true;
      resolve({ status: 101, ws });
    });
    // An error after the answer (the refused handshake's socket closing) changes nothing.
    ws.on("error", (e) => settled || reject(e));
  });
}

/** A join of `room` with `ticketValue` from `ip`, said as `"<status> <error code>"` (`"101 "` when admitted, its socket
 *  then dropped): how the tests of refused tickets read a join's answer. */
export async function joinAnswer(w, room, ticketValue, ip) {
  const answer = await joinFrom(w, room, ticketValue, ip);
  if (answer.ws) answer.ws.terminate();
  return `${answer.status} ${answer.body ? JSON.parse(answer.body).error.code : ""}`;
}

/** A socket that completes the handshake and then never answers the room's close frame, like a client that hung. */
export async function deafSocket(w, room, user, t) {
  t ??= await ticket(w, room, user);
  const sock = connect(Number(w.url.port), "127.0.0.1");
  await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  sock.write(
    `GET /rooms/${room}/ws?ticket=${t} HTTP/1.1\r\nHost: ${w.url.host}\r\nUpgrade: websocket\r\n` +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  const state = { sock, data: Buffer.alloc(0) };
  sock.on("data", (d) => (state.data = Buffer.concat([state.data, d])));
  await until(() => state.data.includes("\r\n\r\n"), { what: "handshake answered" });
  assert.match(state.data.toString("latin1"), /^HTTP\/1.1 101 /);
  state.data = state.data.subarray(state.data.indexOf("\r\n\r\n") + 4);
  /** Sends a masked frame (clients must mask): text (which the room refuses with 1008) or binary; resolves once written. */
  state.send = (payload, opcode) => {
    const mask = Buffer.from([1, 2, 3, 4]);
    const length = payload.length < 126 ? Buffer.from([0x80 | payload.length]) : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const frame = Buffer.concat([Buffer.from([0x80 | opcode]), length, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
    return new Promise((resolve) => sock.write(frame, resolve));
  };
  state.sendText = (text) => state.send(Buffer.from(text), 0x1);
  return state;
}

/** The payload of the close frame among a server's (unmasked) frames, if one has arrived. */
export function closeFrame(data) {
  for (let at = 0; at + 2 <= data.length; ) {
    let length = data[at + 1] & 0x7f;
    let start = at + 2;
    if (length === 126) [length, start] = [data.readUInt16BE(at + 2), at + 4];
    else if (length === 127) [length, start] = [Number(data.readBigUInt64BE(at + 2)), at + 10];
    if (start + length > data.length) return undefined;
    if ((data[at] & 0x0f) === 0x8) return data.subarray(start, start + length);
    at = start + length;
  }
  return undefined;
}

/** The code of the close frame among a server's (unmasked) frames, if one has arrived (1005 for one without a code). */
export function closeCode(data) {
  const frame = closeFrame(data);
  return frame === undefined ? undefined : frame.length >= 2 ? frame.readUInt16BE(0) : 1005;
}

/** `room => bytes` a room object wrote to its SQLite write-ahead log, read from Miniflare's files of `w`. */
export async function walBytesOf(w) {
  const rooms = await w.mf.getDurableObjectNamespace("ROOMS");
  return (room) =>
    statSync(join(w.stateDir, "v3/do/-Room", `${rooms.idFromName(`room:${room}`).toString()}.sqlite-wal`), { throwIfNoEntry: false })?.size ?? 0;
}

/** One y-protocols awareness client of its own doc; `frame()` is the awareness message announcing its state now. */
export function awarenessClient() {
  const doc = new Y.Doc();
  const awareness = new awarenessProtocol.Awareness(doc);
  const frame = () =>
    Buffer.concat([Buffer.from([1]), encodeVarUint8Array(awarenessProtocol.encodeAwarenessUpdate(awareness, [doc.clientID]))]);
  return { doc, awareness, frame };
}

/** [clock, state] of every entry about awareness client `clientId` in the awareness frames received. */
export function awarenessOf(frames, clientId) {
  return frames
    .filter((f) => f[0] === 1)
    .flatMap((f) => {
      const d = decoding.createDecoder(decoding.readVarUint8Array(decoding.createDecoder(f.subarray(1))));
      const out = [];
      for (let i = decoding.readVarUint(d); i > 0; i--) {
        const id = decoding.readVarUint(d);
        const clock = decoding.readVarUint(d);
        const state = JSON.parse(decoding.readVarString(d));
        if (id === clientId) out.push([clock, state]);
      }
      return out;
    });
}

export function encodeVarUint8Array(bytes) {
  const len = [];
  let n = bytes.length;
  while (n > 127) {
    len.push((n & 127) | 128);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from(len), Buffer.from(bytes)]);
}
