// Fuzzes the served Worker against its OpenAPI document (src/openapi/openapi.json) with schemathesis: no 5xx, and
// every response conforms to the document (status, headers, content type, body schema).
//   node tests/fuzz/run.mjs --quick   bounded run in `npm test` (fixed seed, few examples, 60 s budget)
//   node tests/fuzz/run.mjs           `npm run fuzz`: more examples, random seed, 10 min budget
// The Worker runs on workerd through the test harness on 127.0.0.1, with demo data seeded; schemathesis comes from
// the project-local virtual environment (.venv) that scripts/setup creates from tests/fuzz/requirements.txt.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { seed } from "../../scripts/seed.mjs";
import { ROOT, startWorker } from "../support/worker.mjs";

const quick = process.argv.includes("--quick");
const settings = quick
  ? { examples: 15, maxTime: 60, seed: ["--seed", "20261122"] }
  : { examples: 200, maxTime: 600, seed: [] };

const worker = await startWorker({ vars: { DEBUG_ROUTES: false } });
let code = 1;
try {
  await seed({
    CONFIG_KV: await worker.mf.getKVNamespace("CONFIG_KV"),
    DB: await worker.mf.getD1Database("DB"),
    CONTENT_KV: await worker.mf.getKVNamespace("CONTENT_KV"),
  });
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
    String(settings.maxTime),
    "--request-timeout",
    "10",
    "--workers",
    "2",
    "--suppress-health-check",
    "all",
    ...settings.seed,
  ];
  const child = spawn(join(ROOT, ".venv/bin/schemathesis"), args, { stdio: "inherit", cwd: ROOT });
  code = await new Promise((resolveExit) => child.on("exit", (c) => resolveExit(c ?? 1)));
} finally {
  await worker.stop();
}
process.exit(code);
