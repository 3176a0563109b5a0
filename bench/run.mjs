// Runs every benchmark in bench/ (or the ones named: `npm run bench -- health gateway`), one after the other.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";

const wanted = process.argv.slice(2);
const all = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith(".mjs") && !["lib.mjs", "run.mjs", "profile.mjs", "ab.mjs"].includes(f))
  .map((f) => f.replace(/\.mjs$/, ""));
for (const name of wanted.length ? wanted : all) {
  console.log(`\n=== bench/${name}.mjs`);
  const result = spawnSync(process.execPath, [`${import.meta.dirname}/${name}.mjs`], { stdio: "inherit" });
  if (result.status !== 0) process.exitCode = 1;
}
