// Demo data for `npm start` (and the tests, which call `seed(env)` with their own bindings): written through real
// binding objects, so it lands exactly where the Worker reads it. Idempotent: running it twice changes nothing.

/** Writes the demo data through `env` (KV namespaces and the D1 database named in wrangler.toml). */
export async function seed(env) {
  await env.CONFIG_KV.put("__ready", "1");
  if (env.CONTENT_KV) await seedContent(env.CONTENT_KV);
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
