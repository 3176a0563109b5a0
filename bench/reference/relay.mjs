// Plain-JavaScript reference for the rooms benchmark: a Durable Object that accepts WebSockets through the
// Hibernation API and relays every message to the other sockets. No decoding, no storage, no document: the floor
// the Rust room (which decodes, persists and applies every update) is compared with. Tickets are accepted unread.
export class Relay {
  constructor(ctx) {
    this.ctx = ctx;
  }
  async fetch() {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  webSocketMessage(ws, message) {
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
