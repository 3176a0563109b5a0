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
