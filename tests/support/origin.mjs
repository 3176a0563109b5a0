// A real HTTP origin on 127.0.0.1 for integration tests: it records every request (method, path, headers, body)
// and answers through handlers the test installs, so a test can make it delay, fail or return chosen statuses.
import { createServer } from "node:http";

/**
 * Starts an origin. `handle(req, body, res)` answers; the default answers 200 JSON echoing the request.
 * Returns { url, requests, handle(fn), reset(), stop() }; a request whose body was cut off is recorded with
 * `aborted: true` and not answered.
 */
export async function startOrigin() {
  const requests = [];
  let inFlight = 0; // requests whose headers arrived and whose body is still being read
  let handler = defaultHandler;
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    const chunks = [];
    let aborted = false;
    inFlight += 1;
    try {
      for await (const chunk of req) chunks.push(chunk);
    } catch {
      aborted = true; // the sender cut the request off mid-body: recorded, not answered
    } finally {
      inFlight -= 1;
    }
    const body = Buffer.concat(chunks);
    const record = { method: req.method, url: req.url, path: req.url.split("?")[0], headers: req.headers, body, aborted };
    requests.push(record);
    if (aborted) return;
    try {
      await handler(req, body, res, record);
    } catch (error) {
      if (!res.headersSent) res.writeHead(599);
      res.end(String(error));
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolveListen) => server.listen(0, "127.0.0.1", resolveListen));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get inFlight() {
      return inFlight;
    },
    /** Installs the handler for the next requests. */
    handle(fn) {
      handler = fn;
    },
    reset() {
      requests.length = 0;
      handler = defaultHandler;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function defaultHandler(req, body, res) {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ method: req.method, url: req.url, body: body.toString() }));
}

/** A promise that resolves after `ms`: for an origin that must answer late (a simulated slow upstream). */
export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A WebSocket origin on 127.0.0.1 (the `ws` package): it records each handshake's path and headers (`handshakes`),
 * accepts the first protocol offered, echoes every message back as `echo:<message>`, answers the message `bye` by
 * closing with 4001 "origin bye", and records each close its client sends (`closes`: code, reason, the handshake's path). A handshake for
 * a path starting `/refuse` is answered 403 with a JSON body and no upgrade; one for `/hang` is never answered; one for
 * `/unoffered` is accepted with the subprotocol `unoffered.v9`, whatever the client offered, and one for `/unchosen` with
 * none (origins at fault).
 * Returns { url, handshakes, closes, stop() }.
 */
export async function startWebSocketOrigin() {
  const { WebSocketServer } = await import("ws");
  const handshakes = [];
  const closes = [];
  const held = new Set();
  const server = createServer((req, res) => res.writeHead(426, { upgrade: "websocket" }).end());
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered, req) => (req.url.startsWith("/unchosen") ? false : [...offered][0] ?? false),
  });
  wss.on("headers", (headers, req) => {
    if (!req.url.startsWith("/unoffered")) return;
    const kept = headers.filter((h) => !/^sec-websocket-protocol:/i.test(h));
    headers.splice(0, headers.length, ...kept, "Sec-WebSocket-Protocol: unoffered.v9");
  });
  server.on("upgrade", (req, socket, head) => {
    handshakes.push({ path: req.url, headers: req.headers });
    held.add(socket);
    socket.on("close", () => held.delete(socket));
    if (req.url.startsWith("/refuse")) {
      const body = JSON.stringify({ refused: true });
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    if (req.url.startsWith("/hang")) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (data, binary) => {
        if (!binary && data.toString() === "bye") ws.close(4001, "origin bye");
        else ws.send(binary ? Buffer.concat([Buffer.from("echo:"), data]) : `echo:${data}`, { binary });
      });
      ws.on("close", (code, reason) => closes.push({ code, reason: reason.toString(), path: req.url }));
    });
  });
  await new Promise((resolveListen) => server.listen(0, "127.0.0.1", resolveListen));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    handshakes,
    closes,
    async stop() {
      for (const socket of held) socket.destroy();
      for (const ws of wss.clients) ws.terminate();
      await new Promise((r) => server.close(r));
    },
  };
}
