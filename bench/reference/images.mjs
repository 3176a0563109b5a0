// Plain-JavaScript reference for edgekit's cache-hit path of GET /images/...: the same URL parsing into a canonical
// transform (size segment or query), the same Accept negotiation, the same Cache API key shape and the same
// x-cache / Vary / x-request-id / X-Content-Type-Options headers, a strong ETag (the first 16 bytes of the variant's
// SHA-256, stored with it) and If-None-Match answered 304. bench/images.mjs checks that both answer a hit with the
// same header names. On a miss it fetches the variant bytes from VARIANT_ORIGIN (the bench serves
// exactly the bytes edgekit produced there) and caches them, so both Workers answer hits with identical bodies.
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SIZE = /^(\d{1,5})(?:x(\d{1,5}))?$/;

function negotiate(accept) {
  if (/image\/avif(?!\s*;\s*q=0(\.0*)?\s*(,|$))/i.test(accept)) return "avif";
  if (/image\/webp(?!\s*;\s*q=0(\.0*)?\s*(,|$))/i.test(accept)) return "webp";
  return "original";
}

export default {
  async fetch(request, env, ctx) {
    const started = Date.now();
    const url = new URL(request.url);
    const incoming = request.headers.get("x-request-id");
    const requestId = incoming && ID.test(incoming.trim()) ? incoming.trim() : crypto.randomUUID();
    let response;
    if (url.pathname.startsWith("/images/") && request.method === "GET") {
      let rest = url.pathname.slice("/images/".length);
      let w = url.searchParams.get("w") ?? "-";
      let h = url.searchParams.get("h") ?? "-";
      const first = rest.split("/")[0];
      const size = SIZE.exec(first);
      if (size && rest.includes("/")) {
        w = size[1];
        h = size[2] ?? "-";
        rest = rest.slice(first.length + 1);
      }
      const source = decodeURIComponent(rest);
      if (!/^[A-Za-z0-9._~\-/]+$/.test(source) || source.split("/").some((s) => s === "" || s.startsWith("."))) {
        response = Response.json({ error: { code: "invalid_source", message: "source path refused" } }, { status: 400 });
      } else {
        const fit = url.searchParams.get("fit") ?? "scale-down";
        const q = url.searchParams.get("q") ?? "85";
        const format = negotiate(request.headers.get("accept") ?? "");
        const canonical = `w=${w}&h=${h}&fit=${fit}&q=${q}&dpr=1&format=auto`;
        const key = `https://images.edgekit.invalid/v1/${source}?${canonical}&out=${format}`;
        const cache = caches.default;
        const hit = await cache.match(key);
        if (hit) {
          response = new Response(hit.body, hit);
          response.headers.set("x-cache", "HIT");
        } else {
          const upstream = await fetch(`${env.VARIANT_ORIGIN}/${source}`);
          const bytes = await upstream.arrayBuffer();
          const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).subarray(0, 16);
          const headers = {
            "content-type": upstream.headers.get("content-type"),
            "cache-control": "public, max-age=31536000, immutable",
            etag: `"${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}"`,
            "x-content-type-options": "nosniff",
          };
          await cache.put(key, new Response(bytes, { headers }));
          response = new Response(bytes, { headers: { ...headers, "x-cache": "MISS" } });
        }
        response.headers.set("vary", "Accept");
        const tags = request.headers.get("if-none-match");
        if (tags !== null && tags.split(",").some((tag) => tag.trim() === response.headers.get("etag"))) {
          response = new Response(null, { status: 304, headers: response.headers });
        }
      }
    } else {
      response = Response.json({ error: { code: "not_found", message: `no route serves ${url.pathname}` } }, { status: 404 });
    }
    response.headers.set("x-request-id", requestId);
    const percent = Number(env.REQUEST_LOG_PERCENT ?? 100);
    if (response.status >= 400 || Math.random() * 100 < percent) console.log(JSON.stringify({
      level: "info", msg: "request", method: request.method, path: url.pathname, status: response.status,
      duration_ms: Date.now() - started, request_id: requestId, colo: request.cf?.colo ?? "",
    }));
    return response;
  },
};
