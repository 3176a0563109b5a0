// Demo data for `npm start` (and the tests, which call `seed(env)` with their own bindings): written through real
// binding objects, so it lands exactly where the Worker reads it. Idempotent: running it twice changes nothing.
import { publicJwk } from "./dev-key.mjs";

/** Writes the demo data through `env` (KV namespaces and the D1 database named in wrangler.toml). */
export async function seed(env) {
  await env.CONFIG_KV.put("__ready", "1");
  await seedSessions(env);
  if (env.CONTENT_KV) await seedContent(env.CONTENT_KV);
}

// Sessions (src/session): demo users and the public half of AUTH_SIGNING_KEY in the JWKS document.
/** Demo accounts for `npm start`; the passwords are public on purpose (documented in the README). */
export const DEMO_USERS = [
  { id: "user-alice", email: "alice@example.com", password: "alice-demo-password", permissions: ["read", "write", "admin"] },
  { id: "user-bob", email: "bob@example.com", password: "bob-demo-password", permissions: ["read"] },
];

/**
 * PBKDF2-SHA256 as the Worker computes it (src/session/password.rs): 16-byte salt, 32-byte output, base64url, of the
 * password in NFKC as logins compare it (src/session/credentials.rs). `asSent` hashes it as given instead, as hashes
 * made before logins normalised were (a login re-hashes those in NFKC).
 */
export async function hashPassword(password, iterations = 100_000, { asSent = false } = {}) {
  // Logins refuse NUL (HMAC zero-fills a short key: "pw" and "pw\0" would be one secret); so does this.
  if (password.includes("\u0000")) throw new Error("a password must not contain U+0000 (NUL)");
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const secret = new TextEncoder().encode(asSent ? password : password.normalize("NFKC"));
  const key = await crypto.subtle.importKey("raw", secret, "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
  return { algorithm: "pbkdf2-sha256", iterations, salt: b64(salt), hash: b64(new Uint8Array(bits)) };
}

/** Inserts the demo users (existing ones are left as they are) and publishes the signing key's public JWK. */
export async function seedSessions(env) {
  if (env.DB) {
    // One batch, not a call per user: through Miniflare's synchronous proxy (the tests' bindings) each call is a
    // round trip that can answer out of turn, failing every later D1 call of the test file with it.
    const hashes = await Promise.all(DEMO_USERS.map((user) => hashPassword(user.password)));
    const insert = env.DB.prepare(
      `INSERT OR IGNORE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash,
         permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`,
    );
    await env.DB.batch(
      DEMO_USERS.map((user, i) => {
        const h = hashes[i];
        return insert.bind(user.id, user.email, h.algorithm, h.iterations, h.salt, h.hash, JSON.stringify(user.permissions), Date.now());
      }),
    );
  }
  if (env.AUTH_SIGNING_KEY) {
    const pub = publicJwk(env.AUTH_SIGNING_KEY);
    const current = JSON.parse((await env.CONFIG_KV.get("jwks")) ?? '{"keys":[]}');
    const keys = (Array.isArray(current.keys) ? current.keys : []).filter((k) => k.kid !== pub.kid);
    await env.CONFIG_KV.put("jwks", JSON.stringify({ ...current, keys: [...keys, pub] }));
  }
}

/** render: critical CSS, bundle manifests, flags, geo pricing, catalog and demo fragments in CONTENT_KV. */
export async function seedContent(kv) {
  await kv.put("css:critical", "body{margin:0;font:16px/1.5 system-ui,sans-serif}.page{max-width:60rem;margin:auto}");
  await kv.put("manifest:home", JSON.stringify({ resources: [
    { href: "/assets/app.css", as: "style", critical: true },
    { href: "/assets/app.js", as: "script", critical: true },
    { href: "/assets/hero.avif", as: "image" },
    { href: "/assets/inter.woff2", as: "font", type: "font/woff2" },
  ] }));
  await kv.put("manifest:product", JSON.stringify({ resources: [
    { href: "/assets/app.css", as: "style", critical: true },
    { href: "/assets/gallery.js", as: "script" },
  ] }));
  await kv.put("flags", JSON.stringify({
    experiment: { name: "offers-headline", variants: [
      { name: "control", headline: "Today's offers" },
      { name: "bold", headline: "Deals picked for you" },
    ] },
    features: { shipping_banner: true },
  }));
  await kv.put("geo", JSON.stringify({
    default_country: "US",
    default_currency: "USD",
    countries: {
      US: { currency: "USD", locale: "en" }, GB: { currency: "GBP", locale: "en" },
      DE: { currency: "EUR", locale: "de" }, FR: { currency: "EUR", locale: "fr" },
      JP: { currency: "JPY", locale: "ja" },
    },
  }));
  await kv.put("catalog", JSON.stringify([
    { sku: "mug", name: "Edge mug", prices: { USD: 1200, EUR: 1100, GBP: 990, JPY: 1800 } },
    { sku: "tee", name: "Worker tee", prices: { USD: 2500, EUR: 2300, GBP: 2000, JPY: 3500 } },
  ]));
  // Demo fragments (in production the origin fills these on a miss, with each fragment's TTL).
  await kv.put("fragment:header", '<header class="site"><a href="/">edgekit</a></header>');
  await kv.put("fragment:nav", '<nav><a href="/">Home</a> <a href="/p/product">Product</a></nav>');
  await kv.put("fragment:hero", '<section class="hero"><h1>Rendered at the edge</h1></section>');
  await kv.put("fragment:feed", '<section class="feed"><p>Fresh from KV.</p></section>');
  await kv.put("fragment:footer", "<footer>edgekit, streamed</footer>");
}

// Run directly: seed the local state `wrangler dev` uses (.wrangler/state), through wrangler's platform proxy.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { getPlatformProxy } = await import("wrangler");
  const { env, dispose } = await getPlatformProxy({ persist: true });
  try {
    await seed(env);
  } finally {
    await dispose();
  }
  console.log("edgekit: demo data seeded");
}
