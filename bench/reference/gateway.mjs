// Plain-JavaScript reference for edgekit's gateway pipeline, as a team would write it without edgekit: the same work
// per request, done with the platform's own tools (WebCrypto verifies the JWT natively). For a route with JWT auth:
// match the route by prefix, screen the decoded path and query against SQL-injection/XSS/traversal patterns, verify
// the bearer JWT (kid → key from the JWKS in CONFIG_KV, cached in the isolate for 60 s; alg pinned per key; exp, nbf,
// iss, aud; with TOKEN_CACHE="on", a token whose signature verified is remembered until the JWKS is re-read, as
// edgekit's GATEWAY_JWT_CACHE_ENTRIES does, and only its claims are checked again), strip hop-by-hop and client-sent X-User-* headers, add X-Forwarded-*, x-request-id, CDN-Loop, a W3C traceparent
// and identity headers, proxy with a timeout and stream the answer back with the trace ids, Server-Timing (origin and
// edge) and `Vary: Authorization, Cookie`, as edgekit answers a signed-in route. Errors are JSON. bench/gateway.mjs
// checks that the origin is sent, and the client gets back, the same header names from both gateways.
const ROUTE_PREFIX = "/api";
const ISSUER = "edgekit";
const AUDIENCE = "edgekit-api";
const LEEWAY = 30;
const TIMEOUT_MS = 10_000;
const HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]);
const WAF = [
  /\bunion\b[\s\S]*\bselect\b|\bor\b\s+['"]?\d+['"]?\s*=\s*['"]?\d+|;\s*drop\s+table|--\s*$/i,
  /<\s*script\b|\bon[a-z]+\s*=|javascript\s*:/i,
  /(^|[\\/])\.\.([\\/]|$)/,
];
let jwks = { at: 0, keys: new Map() };
let verified = new Map(); // token → claims whose signature verified against the current key set

const error = (status, code, message, headers = {}) =>
  Response.json({ error: { code, message } }, { status, headers });
const unauthorized = (description) =>
  error(401, "invalid_token", description, { "www-authenticate": `Bearer error="invalid_token", error_description="${description}"` });
const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const decodeTwice = (s) => {
  try {
    const once = decodeURIComponent(s);
    return once + "\n" + decodeURIComponent(once);
  } catch {
    return s;
  }
};

async function keyFor(env, kid) {
  if (Date.now() - jwks.at > 60_000) {
    const doc = JSON.parse((await env.CONFIG_KV.get("jwks")) ?? '{"keys":[]}');
    const keys = new Map();
    for (const jwk of doc.keys) {
      if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519") continue; // this reference verifies EdDSA only
      keys.set(jwk.kid, await crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["verify"]));
    }
    jwks = { at: Date.now(), keys };
    verified = new Map();
  }
  return jwks.keys.get(kid);
}

async function verify(env, auth) {
  const m = /^Bearer\s+(\S+)$/i.exec(auth ?? "");
  if (!m) return { fail: "missing bearer token" };
  if (m[1].length > 8192) return { fail: "token too large" };
  const remembered = env.TOKEN_CACHE === "on" && Date.now() - jwks.at <= 60_000 ? verified.get(m[1]) : undefined;
  const signed = remembered ? { claims: remembered } : await verifySignature(env, m[1]);
  if (signed.fail) return signed;
  const { claims } = signed;
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== "number" || claims.exp + LEEWAY < now) return { fail: "token expired" };
  if (typeof claims.nbf === "number" && claims.nbf - LEEWAY > now) return { fail: "token not yet valid" };
  if (claims.iss !== ISSUER) return { fail: "wrong issuer" };
  if (![claims.aud].flat().includes(AUDIENCE)) return { fail: "wrong audience" };
  if (typeof claims.sub !== "string") return { fail: "no subject" };
  if (env.TOKEN_CACHE === "on" && !remembered) {
    if (verified.size >= 10_000) verified.clear();
    verified.set(m[1], claims);
  }
  return { claims };
}

async function verifySignature(env, token) {
  const parts = token.split(".");
  if (parts.length !== 3) return { fail: "malformed token" };
  let header, claims;
  try {
    header = JSON.parse(new TextDecoder().decode(b64(parts[0])));
    claims = JSON.parse(new TextDecoder().decode(b64(parts[1])));
  } catch {
    return { fail: "token is not base64url JSON" };
  }
  if (header.alg !== "EdDSA") return { fail: "algorithm not allowed" };
  const key = await keyFor(env, header.kid);
  if (!key) return { fail: "unknown kid" };
  const ok = await crypto.subtle.verify("Ed25519", key, b64(parts[2]), new TextEncoder().encode(`${parts[0]}.${parts[1]}`));
  return ok ? { claims } : { fail: "bad signature" };
}

const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");

export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    // RFC 8586 loop detection, as edgekit's gateway does: refused once this gateway's entry is listed 4 times.
    const loop = request.headers.get("cdn-loop");
    const passes = (loop ?? "").split(",").filter((e) => e.split(";")[0].trim().toLowerCase() === "edgekit").length;
    if (passes >= 4) return error(508, "loop_detected", "the request came back through this gateway too often");
    if (!url.pathname.startsWith(ROUTE_PREFIX)) return error(404, "not_found", `no route serves ${url.pathname}`);
    const screened = decodeTwice(url.pathname) + "\n" + decodeTwice(url.search);
    if (WAF.some((rule) => rule.test(screened))) return error(403, "waf_blocked", "the request was blocked");
    const { claims, fail } = await verify(env, request.headers.get("authorization"));
    if (fail) return unauthorized(fail);

    const listed = (request.headers.get("connection") ?? "").toLowerCase().split(",").map((t) => t.trim());
    const headers = new Headers();
    for (const [k, v] of request.headers) {
      if (!HOP.has(k) && !listed.includes(k) && !k.startsWith("x-user-") && k !== "host") headers.set(k, v);
    }
    const requestId = request.headers.get("x-request-id") ?? crypto.randomUUID();
    const traceId = hex(16);
    headers.set("x-forwarded-for", request.headers.get("cf-connecting-ip") ?? "");
    headers.set("x-forwarded-proto", url.protocol.slice(0, -1));
    headers.set("x-forwarded-host", url.host);
    headers.set("x-request-id", requestId);
    headers.set("traceparent", `00-${traceId}-${hex(8)}-01`);
    headers.set("cdn-loop", loop ? `${loop}, edgekit` : "edgekit");
    headers.set("x-user-id", claims.sub);
    headers.set("x-user-permissions", (claims.permissions ?? []).join(","));
    let upstream;
    const sent = Date.now();
    try {
      upstream = await fetch(env.ORIGIN + url.pathname + url.search, {
        method: request.method,
        headers,
        body: request.body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (e) {
      return e.name === "TimeoutError" ? error(504, "gateway_timeout", "origin timed out") : error(502, "bad_gateway", "origin unreachable");
    }
    const out = new Headers();
    for (const [k, v] of upstream.headers) if (!HOP.has(k)) out.append(k, v);
    out.set("x-request-id", requestId);
    out.set("x-trace-id", traceId);
    out.set("traceparent", `00-${traceId}-${hex(8)}-01`);
    // The origin reads the user from X-User-*, so its own Vary cannot name the credentials the answer depends on.
    out.append("vary", "Authorization, Cookie");
    out.append("server-timing", `origin;dur=${Date.now() - sent}`);
    out.append("server-timing", `edge;dur=${Date.now() - started};desc="gateway"`);
    return new Response(upstream.body, { status: upstream.status, headers: out });
  },
};
