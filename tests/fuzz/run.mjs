// Fuzzes the served Worker against its OpenAPI document (src/openapi/openapi.json) with schemathesis: no 5xx, and
// every response conforms to the document (status, headers, content type, body schema).
//   node tests/fuzz/run.mjs --quick   bounded run in `npm test` (fixed seed, few examples, 60 s budget)
//   node tests/fuzz/run.mjs           `npm run fuzz`: more examples, random seed, 10 min budget
// The Worker runs on workerd through the test harness on 127.0.0.1, with demo data seeded and a demo user signed in; schemathesis comes from
// the project-local virtual environment (.venv) that scripts/setup creates from tests/fuzz/requirements.txt.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { DEMO_USERS, seed } from "../../scripts/seed.mjs";
import { generateSigningJwk } from "../../scripts/dev-key.mjs";
import sharp from "sharp";
import { startOrigin } from "../support/origin.mjs";
import { ROOT, startWorker } from "../support/worker.mjs";

const quick = process.argv.includes("--quick");
const settings = quick
  ? { examples: 15, maxTime: 60, seed: ["--seed", "20261122"] }
  : { examples: 200, maxTime: 600, seed: [] };

// Protected routes are fuzzed signed in: a demo user's session cookie and access JWT go with every request.
const KEY = JSON.stringify(generateSigningJwk("fuzz-key"));
// Login limits are raised here: the hooks make many real logins, and a 429 would stop the stateful links early
// (the limits themselves are tested in tests/sessions.test.mjs).
// An image origin for /images: a JPEG, a PNG with alpha, a PNG the resizer cannot read (its header whole, its pixel
// data cut short: the original is served, marked failed — a source whose header is broken too is a 502, which
// schemathesis counts as a server error) and an HTML page labelled as an image (hooks.py hands their paths to
// schemathesis beside generated ones; every other path is a 404 there).
const solid = (channels) => sharp({ create: { width: 64, height: 48, channels, background: { r: 200, g: 80, b: 40, alpha: 0.5 } } });
const logo = await solid(4).png().toBuffer();
const images = {
  "/photos/land.jpg": { type: "image/jpeg", body: await solid(3).jpeg().toBuffer() },
  "/photos/logo.png": { type: "image/png", body: logo },
  "/photos/broken.png": { type: "image/png", body: logo.subarray(0, logo.length - 24) },
  "/photos/page.jpg": { type: "image/jpeg", body: Buffer.from("<!doctype html><h1>500</h1>") },
};
const imageOrigin = await startOrigin();
imageOrigin.handle((req, body, res, record) => {
  const image = images[record.path];
  if (!image) return res.writeHead(404).end();
  res.writeHead(200, { "content-type": image.type, "content-length": image.body.length }).end(image.body);
});
const worker = await startWorker({
  vars: {
    DEBUG_ROUTES: false,
    IMAGES_ORIGIN: imageOrigin.url,
    AUTH_SIGNING_KEY: KEY,
    RATE_LIMIT_POLICIES: {
      "login-ip": { limit: 100000, window: 60, key: "ip" },
      "login-email": { limit: 100000, window: 60, key: "user" },
    },
  },
});
let code = 1;
try {
  await seed({
    CONFIG_KV: await worker.mf.getKVNamespace("CONFIG_KV"),
    DB: await worker.mf.getD1Database("DB"),
    CONTENT_KV: await worker.mf.getKVNamespace("CONTENT_KV"),
    AUTH_SIGNING_KEY: KEY,
  });
  const alice = DEMO_USERS.find((u) => u.email === "alice@example.com");
  const login = await worker.fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: alice.email, password: alice.password }),
  });
  if (login.status !== 200) throw new Error(`fuzz set-up: demo login answered ${login.status}`);
  const { access_token: accessToken } = await login.json();
  const cookie = /__Host-edgekit_session=[^;]*/.exec(login.headers.get("set-cookie"))[0];
  // Two passes: every operation signed out; then signed in, minus the two operations that end or rotate the shared
  // session (logout, refresh), which would otherwise leave the rest of the pass with a dead cookie.
  const passes = [
    { name: "signed out", extra: [] },
    {
      name: "signed in",
      extra: ["-H", `Cookie: ${cookie}`, "-H", `Authorization: Bearer ${accessToken}`,
        "--exclude-path", "/auth/logout", "--exclude-path", "/auth/refresh"],
    },
  ];
  code = 0;
  for (const pass of passes) {
    console.log(`\n=== schemathesis, ${pass.name}`);
    const args = [
      "run",
      join(ROOT, "src/openapi/openapi.json"),
      "--url",
      worker.url.toString().replace(/\/$/, ""),
      "--checks",
      "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
      "--max-examples",
      String(settings.examples),
      "--max-time",
      String(Math.ceil(settings.maxTime / passes.length)),
      "--request-timeout",
      "10",
      "--workers",
      "2",
      ...pass.extra,
      "--suppress-health-check",
      "all",
      ...settings.seed,
    ];
    const child = spawn(join(ROOT, ".venv/bin/schemathesis"), args, {
      stdio: "inherit",
      cwd: ROOT,
      env: {
        ...process.env,
        // tests/fuzz/hooks.py: some login bodies carry the demo user's credentials, so stateful links get a session.
        PYTHONPATH: join(ROOT, "tests/fuzz"),
        SCHEMATHESIS_HOOKS: "hooks",
        EDGEKIT_FUZZ_EMAIL: alice.email,
        EDGEKIT_FUZZ_PASSWORD: alice.password,
      },
    });
    const passCode = await new Promise((resolveExit) => child.on("exit", (c) => resolveExit(c ?? 1)));
    if (passCode !== 0) code = passCode;
  }
} finally {
  await worker.stop();
  await imageOrigin.stop();
}
process.exit(code);
