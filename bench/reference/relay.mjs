// Plain-JavaScript reference for the rooms benchmark: a Durable Object that accepts WebSockets through the
// Hibernation API and relays every message to the other sockets. No decoding, no storage, no document: the floor
// the Rust room (which decodes, persists and applies every update) is compared with. Tickets are accepted unread.
// With the binding APPEND="on" it also appends every document update (y-protocols sync/update, bytes 0 2) to the
// object's SQLite before relaying it, as the room does: what durability alone costs, measured beside the room.
export class Relay {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.append = env.APPEND === "on";
    if (this.append) ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)");
  }
  async fetch() {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  webSocketMessage(ws, message) {
    if (this.append && typeof message !== "string") {
      const bytes = new Uint8Array(message);
      if (bytes[0] === 0 && bytes[1] === 2) this.ctx.storage.sql.exec("INSERT INTO log (data) VALUES (?)", message);
    }
    for (const other of this.ctx.getWebSockets()) if (other !== ws) other.send(message);
  }
  webSocketClose(ws, code) {
    try {
      ws.close(code, "bye");
    } catch {}
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = /^\/rooms\/([^/]+)\/ws$/.exec(url.pathname);
    if (url.pathname.startsWith("/__debug/rooms/")) return Response.json({ ticket: "unused" }, { status: 201 });
    if (!match || request.headers.get("upgrade") !== "websocket") return new Response("not found", { status: 404 });
    return env.RELAY.get(env.RELAY.idFromName(match[1])).fetch(request);
  },
};
