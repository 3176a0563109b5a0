// Demo data for `npm start` (and the tests, which call `seed(env)` with their own bindings): written through real
// binding objects, so it lands exactly where the Worker reads it. Idempotent: running it twice changes nothing.

/** Writes the demo data through `env` (KV namespaces and the D1 database named in wrangler.toml). */
export async function seed(env) {
  await env.CONFIG_KV.put("__ready", "1");
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
