// Plain-JavaScript reference for edgekit's cached GET: answers from the Cache API (caches.default) under a key with
// the query sorted, fetching from ORIGIN and storing for 60 s on a miss, with x-cache HIT/MISS — what a team would
// write for an edge-cached API route. Beside the reference hello it shows how much of a cached answer's cost is the
// Cache API itself (under Miniflare, a simulation served inside the same workerd process).
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    url.searchParams.sort();
    const key = new Request(`https://cache.internal${url.pathname}${url.search}`);
    const cache = caches.default;
    const hit = await cache.match(key);
    if (hit) {
      const response = new Response(hit.body, hit);
      response.headers.set("x-cache", "HIT");
      return response;
    }
    const origin = await fetch(env.ORIGIN + url.pathname + url.search);
    const stored = new Response(origin.body, origin);
    stored.headers.set("cache-control", "public, max-age=60");
    ctx.waitUntil(cache.put(key, stored.clone()));
    stored.headers.set("x-cache", "MISS");
    return stored;
  },
};
