// Plain-JavaScript reference for edgekit's GET /health: the same JSON body, the same headers (x-request-id handled
// alike, `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`, which edgekit sends on the answer) and the
// same one-JSON-log-line-per-request (sampled by REQUEST_LOG_PERCENT, as in edgekit), so the comparison measures the
// runtime cost of Rust/wasm, not extra work. bench/health.mjs checks that both answer with the same header names.
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const incoming = request.headers.get("x-request-id");
    const requestId = incoming && ID.test(incoming.trim()) ? incoming.trim() : crypto.randomUUID();
    let response;
    if (url.pathname === "/health" && request.method === "GET") {
      response = Response.json({ status: "ok", name: "edgekit", version: "0.1.0", build: "reference" });
      response.headers.set("cache-control", "no-store");
    } else {
      response = Response.json({ error: { code: "not_found", message: `no route serves ${url.pathname}` } }, { status: 404 });
    }
    response.headers.set("x-content-type-options", "nosniff");
    response.headers.set("x-request-id", requestId);
    const percent = Number(env.REQUEST_LOG_PERCENT ?? 100);
    if (response.status >= 400 || Math.random() * 100 < percent) console.log(JSON.stringify({
      level: "info", msg: "request", method: request.method, path: url.pathname, status: response.status,
      duration_ms: Date.now() - started, request_id: requestId, colo: request.cf?.colo ?? "",
    }));
    return response;
  },
};
