// Demo data for `npm start` (and the tests, which call `seed(env)` with their own bindings): written through real
// binding objects, so it lands exactly where the Worker reads it. Idempotent: running it twice changes nothing.

/** Writes the demo data through `env` (KV namespaces and the D1 database named in wrangler.toml). */
export async function seed(env) {
  await env.CONFIG_KV.put("__ready", "1");
  await seedSessions(env);
}

// Sessions (src/session): demo users and the public half of AUTH_SIGNING_KEY in the JWKS document.
/** Demo accounts for `npm start`; the passwords are public on purpose (documented in the README). */
export const DEMO_USERS = [
  { id: "user-alice", email: "alice@example.com", password: "alice-demo-password", permissions: ["read", "write", "admin"] },
  { id: "user-bob", email: "bob@example.com", password: "bob-demo-password", permissions: ["read"] },
];

/** PBKDF2-SHA256 as the Worker computes it (src/session/password.rs): 16-byte salt, 32-byte output, base64url. */
export async function hashPassword(password, iterations = 100_000) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
  return { algorithm: "pbkdf2-sha256", iterations, salt: b64(salt), hash: b64(new Uint8Array(bits)) };
}

/** Inserts the demo users (existing ones are left as they are) and publishes the signing key's public JWK. */
export async function seedSessions(env) {
  if (env.DB) {
    for (const user of DEMO_USERS) {
      const h = await hashPassword(user.password);
      await env.DB.prepare(
        `INSERT OR IGNORE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash,
           permissions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`,
      )
        .bind(user.id, user.email, h.algorithm, h.iterations, h.salt, h.hash, JSON.stringify(user.permissions), Date.now())
        .run();
    }
  }
  if (env.AUTH_SIGNING_KEY) {
    const { d: _secret, ...pub } = JSON.parse(env.AUTH_SIGNING_KEY);
    const current = JSON.parse((await env.CONFIG_KV.get("jwks")) ?? '{"keys":[]}');
    const keys = (Array.isArray(current.keys) ? current.keys : []).filter((k) => k.kid !== pub.kid);
    await env.CONFIG_KV.put("jwks", JSON.stringify({ ...current, keys: [...keys, pub] }));
  }
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
