// Plain-JavaScript floor of a proxied request, beside bench/floor (the Rust/wasm one): forwards each request to
// ORIGIN with its method, headers and body and returns the origin's answer untouched — no auth, WAF, header
// rewriting or timeout. The difference to bench/reference/gateway.mjs is what the JS gateway's own work costs.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN + url.pathname + url.search, { method: request.method, headers: request.headers, body: request.body });
  },
};
