// Edge-side rendering (src/render): streamed pages assembled from fragments (KV, else a real local origin with
// write-back), personalised per visitor, against the built Worker on workerd with CONTENT_KV seeded by
// scripts/seed.mjs. Requests go through Miniflare's dispatchFetch so a test can set `cf.country`.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { DEMO_USERS, seed, seedContent } from "../scripts/seed.mjs";
import { generateSigningJwk } from "../scripts/dev-key.mjs";
import { delay, startOrigin } from "./support/origin.mjs";
import { standInKv, startWorker, until, untilWaiting } from "./support/worker.mjs";

const FRAGMENTS = ["header", "nav", "hero", "feed", "footer"];
const VISITOR = "0123456789abcdef0123456789abcdef";

let worker;
let origin;
let kv;
before(async () => {
  origin = await startOrigin();
  worker = await startWorker({ vars: { RENDER_ORIGIN: origin.url } });
  kv = await worker.mf.getKVNamespace("CONTENT_KV");
  await seedContent(kv);
});
after(async () => {
  await worker?.stop();
  await origin?.stop();
});

/** Every fragment comes from the origin (KV emptied); `behaviour[name]` may delay or fail one. */
async function originServes(behaviour = {}) {
  origin.reset();
  for (const name of FRAGMENTS) await kv.delete(`fragment:${name}`);
  origin.handle(async (req, body, res, record) => {
    const name = record.path.replace("/fragments/", "");
    record.askedAt = Date.now();
    const { delayMs = 0, status = 200, gate, headers = {}, body: answer } = behaviour[name] ?? {};
    if (delayMs) await delay(delayMs);
    if (gate) await gate; // held until the test lets it answer
    res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers });
    res.end(answer ?? (status === 200 ? `<section data-origin="${name}">${name} from origin</section>` : "boom"));
    record.answeredAt = Date.now();
  });
}

beforeEach(() => originServes());

const get = (path, { headers = {}, country } = {}) =>
  worker.mf.dispatchFetch(new URL(path, worker.url), { headers, ...(country ? { cf: { country } } : {}) });

const withVisitor = (id = VISITOR, headers = {}) => ({ cookie: `ek_vid=${id}`, ...headers });

test("the shell reaches the client while a fragment is still being answered, and the page completes with it", async () => {
  // The feed's origin answer is held until the test has the page's first chunk: the order is by construction.
  let release;
  const gate = new Promise((r) => (release = r));
  await originServes({ feed: { gate } });
  const response = await get("/", { headers: withVisitor() });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /text\/html/);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  // The feed can only be answered after this read returns; the page still holding "feed from origin" (checked
  // below) shows the first chunk did not wait for it.
  const first = await reader.read();
  release();
  const shell = decoder.decode(first.value, { stream: true });
  let rest = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += decoder.decode(value, { stream: true });
  }
  const feed = origin.requests.find((r) => r.path === "/fragments/feed");
  assert.ok(feed?.answeredAt, "the origin answered the feed");
  assert.equal(feed.headers["x-request-id"], response.headers.get("x-request-id"), "the origin sees the page's request id");
  assert.equal(response.headers.get("accept-ch"), "ECT", "browsers are asked for the connection type the page reads");
  assert.match(shell, /^<!doctype html><html lang="en">/);
  assert.match(shell, /<style nonce="[0-9a-f]{32}">body\{margin:0/, "critical CSS from KV is in the shell");
  assert.ok(!shell.includes("feed from origin"), "the first chunk does not wait for the feed");
  const page = shell + rest;
  const order = ["header", "nav", "hero"].map((n) => page.indexOf(`${n} from origin`));
  order.push(page.indexOf('class="offers"'), page.indexOf("feed from origin"), page.indexOf("footer from origin"));
  assert.ok(order.every((i) => i > 0), `every slot is present: ${order}`);
  assert.deepEqual([...order].sort((a, b) => a - b), order, "slots are in document order");
  assert.ok(page.trimEnd().endsWith("</html>"), "the page is complete");
  // The request line is written when the headers go out; the page's own line when its body has ended.
  const id = response.headers.get("x-request-id");
  const logged = (msg) => worker.jsonLogs().find((l) => l.msg === msg && l.request_id === id);
  const request = await until(() => logged("request"), { what: "the request line" });
  const end = await until(() => logged("page_stream_end"), { what: "the page's end line" });
  assert.equal(end.completed, true);
  assert.equal(end.level, "info");
  assert.ok(end.duration_ms >= request.duration_ms, `to the end ${end.duration_ms} ms, to the headers ${request.duration_ms} ms`);
});

test("a fragment fetch continues the page's trace with a span of its own, as the gateway's origin requests do", async () => {
  const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const page = await get("/", { headers: withVisitor(VISITOR, { traceparent: parent, tracestate: "congo=t61rcWkgMzE" }) });
  await page.text();
  const fragments = () => origin.requests.filter((r) => r.path.startsWith("/fragments/"));
  const asked = await until(() => fragments().length === FRAGMENTS.length && fragments(), { what: "every fragment asked of the origin" });
  for (const { path, headers } of asked) {
    assert.match(headers.traceparent ?? "", /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, `${path}: the page's trace`);
    assert.notEqual(headers.traceparent, parent, `${path}: a new span id`);
    assert.equal(headers.tracestate, "congo=t61rcWkgMzE", `${path}: the trace's state with it`);
  }
  // Each fetch is a request of its own: W3C's parent-id is "the ID of this request as known by the caller".
  const spans = new Set(asked.map((r) => r.headers.traceparent?.split("-")[2]));
  assert.equal(spans.size, FRAGMENTS.length, `a span id per fragment fetch: ${[...spans]}`);
  // A page that brings no trace starts one, the same for every fragment of the page.
  await originServes();
  await (await get("/", { headers: withVisitor() })).text();
  await until(() => fragments().length === FRAGMENTS.length, { what: "every fragment asked again" });
  const started = new Set(origin.requests.map((r) => r.headers.traceparent?.split("-")[1]));
  assert.equal(started.size, 1, `one new trace for the page: ${[...started]}`);
  assert.match([...started][0] ?? "", /^[0-9a-f]{32}$/);
  assert.ok(origin.requests.every((r) => r.headers.tracestate === undefined), "no state for a trace started here");
});

test("an origin 500 gives the fragment's fallback and the rest of the page", async () => {
  await originServes({ hero: { status: 500 } });
  const response = await get("/", { headers: withVisitor() });
  assert.equal(response.status, 200);
  const page = await response.text();
  assert.ok(page.includes('<section class="hero"></section>'), "the hero's configured fallback");
  assert.ok(!page.includes("hero from origin"));
  assert.ok(page.includes("feed from origin") && page.includes("footer from origin"));
  assert.equal(await kv.get("fragment:hero"), null, "a failed fragment is not written back");
});

test("only the origin's own non-empty text/html answers are taken: a redirect, another type or an empty body gives the fallback", async () => {
  // A second server the redirect points at: its markup must never reach the page or KV.
  const elsewhere = await startOrigin();
  try {
    elsewhere.handle((req, body, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<section data-origin="elsewhere">injected</section>');
    });
    for (const [what, hero, reason] of [
      ["a redirect to another host", { status: 302, headers: { location: `${elsewhere.url}/hero` }, body: "" }],
      // Another type's reason names it as sent (it printed Rust's debug form, `Some("application/json")`).
      ["JSON, not HTML", { headers: { "content-type": "application/json" }, body: '{"hero":1}' }, "origin answered application/json, not text/html"],
      [
        "XHTML, not HTML",
        { headers: { "content-type": "application/xhtml+xml" }, body: '<section xmlns="http://www.w3.org/1999/xhtml">{"hero"}</section>' },
        "origin answered application/xhtml+xml, not text/html",
      ],
      ["an empty content type", { headers: { "content-type": "" }, body: '{"hero":1}' }, "origin answered no Content-Type, not text/html"],
      ["text/htmlx", { headers: { "content-type": "text/htmlx" }, body: '{"hero":1}' }, "origin answered text/htmlx, not text/html"],
      ["an empty body", { body: "" }],
      ["a body of whitespace", { body: " \n " }],
      // UTF-16 of ASCII markup is valid UTF-8 (a NUL before every character): the charset it names decides.
      [
        "markup in UTF-16",
        { headers: { "content-type": "text/html; charset=utf-16le" }, body: Buffer.from('<section>{"hero"}</section>', "utf16le") },
      ],
      // Bytes that are UTF-8 (é) but labelled Latin-1, which reads them as two other characters (Ã©).
      [
        "non-ASCII markup labelled ISO-8859-1",
        { headers: { "content-type": "text/html; charset=ISO-8859-1" }, body: Buffer.from('<section>{"hero"} café</section>', "utf8") },
      ],
      // The runtime decodes `gzip` and `br` and nothing else: a coding's bytes that happen to be UTF-8 were taken
      // as markup and written back, and deflate's were refused as "not UTF-8".
      [
        "a coding the runtime does not decode",
        { headers: { "content-encoding": "x-weird" }, body: '<section>{"hero"} still coded</section>' },
        "origin answered Content-Encoding x-weird, which the runtime does not decode",
      ],
      [
        "deflate",
        { headers: { "content-encoding": "deflate" }, body: deflateSync('<section>{"hero"} deflated</section>') },
        "origin answered Content-Encoding deflate, which the runtime does not decode",
      ],
    ]) {
      await originServes({ hero });
      const id = `not-taken-${randomBytes(4).toString("hex")}`;
      const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }) })).text();
      assert.ok(page.includes('<section class="hero"></section>'), `${what}: the hero's fallback`);
      assert.ok(!page.includes("injected") && !page.includes('{"hero"') && !page.includes("\u0000"), `${what}: nothing of it on the page`);
      assert.ok(page.includes("footer from origin"), `${what}: the rest of the page`);
      const failed = await until(
        () => worker.jsonLogs().find((l) => l.msg === "fragment_origin_failed" && l.fragment === "hero" && l.request_id === id),
        { what: `${what}: logged` },
      );
      if (reason) assert.equal(failed.detail, reason, what);
      assert.equal(await kv.get("fragment:hero"), null, `${what}: not written back`);
    }
    assert.equal(elsewhere.requests.length, 0, "the redirect was not followed");
  } finally {
    await elsewhere.stop();
  }
});

test("an all-ASCII fragment labelled with a charset that extends ASCII (a servlet container's ISO-8859-1) is taken", async () => {
  // Its bytes read the same in that charset and in UTF-8; refused, such an origin's every fragment was its fallback.
  for (const charset of ["ISO-8859-1", "windows-1252"]) {
    const markup = `<section data-origin="hero">hero in ${charset}</section>`;
    await originServes({ hero: { headers: { "content-type": `text/html;charset=${charset}` }, body: markup } });
    const page = await (await get("/", { headers: withVisitor() })).text();
    assert.ok(page.includes(markup), `${charset}: the origin's fragment on the page`);
    await until(async () => (await kv.get("fragment:hero")) === markup, { what: `${charset}: the fragment written back` });
  }
});

test("a fragment in gzip or br is decoded by the runtime and taken", async () => {
  // Coverage beside the refusal of codings the runtime leaves on the bytes (the test above).
  for (const [coding, encode] of [["gzip", gzipSync], ["br", brotliCompressSync]]) {
    const markup = `<section data-origin="hero">hero in ${coding}</section>`;
    await originServes({ hero: { headers: { "content-encoding": coding }, body: encode(markup) } });
    const page = await (await get("/", { headers: withVisitor() })).text();
    assert.ok(page.includes(markup), `${coding}: the origin's fragment on the page`);
    await until(async () => (await kv.get("fragment:hero")) === markup, { what: `${coding}: the fragment written back` });
  }
});

test("origin answers are written back to KV with their TTL, so the second request does not touch the origin", async () => {
  const before = Math.floor(Date.now() / 1000);
  await (await get("/", { headers: withVisitor() })).text();
  assert.equal(origin.requests.length, FRAGMENTS.length, "first request: every fragment from the origin");
  await until(async () => (await kv.list({ prefix: "fragment:" })).keys.length === FRAGMENTS.length, {
    what: "all fragments written back to CONTENT_KV",
  });
  const { keys } = await kv.list({ prefix: "fragment:" });
  const ttl = { header: 300, nav: 300, hero: 120, feed: 60, footer: 3600 };
  for (const key of keys) {
    const expected = before + ttl[key.name.replace("fragment:", "")];
    assert.ok(Math.abs(key.expiration - expected) <= 5, `${key.name} expires at ${key.expiration}, ~${expected}`);
  }
  origin.reset();
  const second = await (await get("/", { headers: withVisitor() })).text();
  assert.equal(origin.requests.length, 0, "second request served from KV");
  // Every fragment from KV as the origin wrote it. (Not compared with the first page whole: a loaded machine can run
  // a fragment's first answer past its budget, and that page then shows the fallback while KV still gets the answer.)
  for (const name of FRAGMENTS) {
    assert.ok(second.includes(`<section data-origin="${name}">${name} from origin</section>`), `${name} from KV`);
  }
});

test("a fragment the origin marks no-store, private or no-cache is shown but not written back; a shorter max-age shortens its stay", async () => {
  // KV serves a written-back fragment to every visitor without asking the origin (RFC 9111 §5.2.2.5, §5.2.2.7):
  // it kept a private or no-store answer for the fragment's whole ttl_s, and a max-age=100 one for 3600 s.
  await originServes({
    hero: { headers: { "cache-control": "no-store" } },
    feed: { headers: { "cache-control": "private, max-age=600" } },
    nav: { headers: { "cache-control": "max-age=30" } }, // under KV's 60 s minimum TTL
    header: { headers: { "cache-control": "max-age=10, s-maxage=100" } }, // ttl_s 300
    footer: { headers: { "cache-control": "public, max-age=600" } }, // ttl_s 3600
  });
  const before = Math.floor(Date.now() / 1000);
  const page = await (await get("/", { headers: withVisitor() })).text();
  for (const name of FRAGMENTS) assert.ok(page.includes(`${name} from origin`), `${name}: shown on the page`);
  const kept = () => worker.jsonLogs().filter((l) => l.msg === "fragment_not_written_back");
  await until(() => ["hero", "feed", "nav"].every((n) => kept().some((l) => l.fragment === n)), { what: () => JSON.stringify(kept()) });
  assert.match(kept().find((l) => l.fragment === "hero").detail, /no-store/);
  assert.match(kept().find((l) => l.fragment === "feed").detail, /private/);
  assert.match(kept().find((l) => l.fragment === "nav").detail, /30 s/);
  await until(async () => (await kv.list({ prefix: "fragment:" })).keys.length === 2, { what: "header and footer written back" });
  const { keys } = await kv.list({ prefix: "fragment:" });
  const expires = Object.fromEntries(keys.map((k) => [k.name, k.expiration]));
  assert.deepEqual(Object.keys(expires).sort(), ["fragment:footer", "fragment:header"]);
  assert.ok(Math.abs(expires["fragment:header"] - (before + 100)) <= 5, `header: s-maxage 100, not ttl_s 300 (${expires["fragment:header"] - before})`);
  assert.ok(Math.abs(expires["fragment:footer"] - (before + 600)) <= 5, `footer: max-age 600, not ttl_s 3600 (${expires["fragment:footer"] - before})`);
});

test("a fragment the origin answers with Vary: *, or varying on a field every fetch sends anew, is shown but not written back (it never matches a later request)", async () => {
  // RFC 9111 §4.1: only a revalidation could serve it again, which a KV read cannot do; it was kept for ttl_s. An
  // answer varying on the page's request id or trace was chosen for that page's fetch, and was served to every page.
  for (const [vary, reason] of [
    ["Accept-Encoding, *", "the origin said Vary: *"],
    ["X-Request-Id", "the origin said Vary: x-request-id, which the fetch sends anew every time"],
    ["Accept-Encoding, traceparent", "the origin said Vary: traceparent, which the fetch sends anew every time"],
  ]) {
    await originServes({ hero: { headers: { vary, "cache-control": "public, max-age=600" } } });
    const id = `vary-${randomBytes(4).toString("hex")}`;
    const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }) })).text();
    assert.ok(page.includes("hero from origin"), `Vary: ${vary}: shown on the page`);
    const kept = await until(() => worker.jsonLogs().find((l) => l.msg === "fragment_not_written_back" && l.request_id === id), {
      what: `Vary: ${vary}: the hero's not-written-back line`,
    });
    assert.equal(kept.detail, reason);
    assert.equal(await kv.get("fragment:hero"), null, `Vary: ${vary}: the line is written in place of the write-back`);
  }
  // A Vary on a field the fetch sends alike every time (or never) matches every later fetch: written back.
  await originServes({ hero: { headers: { vary: "Accept-Encoding, Cookie", "cache-control": "public, max-age=600" } } });
  await (await get("/", { headers: withVisitor() })).text();
  await until(async () => (await kv.get("fragment:hero")) !== null, { what: "the hero written back" });
});

test("with REQUEST_LOG_PERCENT=0 a fragment kept out of KV writes no line on every page that fetches it", async (t) => {
  // A no-store fragment is fetched, and kept out, on every page: its line is the origin's choice met, not a failure,
  // and was written unsampled, one per fragment per page however quiet successes were asked to be.
  await originServes({ hero: { headers: { "cache-control": "no-store" } } });
  const quiet = await startWorker({ vars: { RENDER_ORIGIN: origin.url, REQUEST_LOG_PERCENT: 0 } });
  t.after(() => quiet.stop());
  const quietKv = await quiet.mf.getKVNamespace("CONTENT_KV");
  await seedContent(quietKv);
  for (const name of FRAGMENTS) await quietKv.delete(`fragment:${name}`);
  for (let i = 0; i < 3; i++) {
    const page = await (await quiet.mf.dispatchFetch(new URL("/", quiet.url), { headers: withVisitor() })).text();
    // The page has the hero only once its fetch decided on the write-back (no await between the two).
    assert.ok(page.includes("hero from origin"), "hero shown on the page");
  }
  // An error's request line is always written, after every line before it.
  await (await quiet.fetch("/no-such-route-marker")).arrayBuffer();
  await until(() => quiet.jsonLogs().some((l) => l.msg === "request" && l.path === "/no-such-route-marker"), { what: "the marker's line" });
  assert.deepEqual(quiet.jsonLogs().filter((l) => l.msg === "fragment_not_written_back"), []);
  assert.equal(origin.requests.filter((r) => r.path === "/fragments/hero").length, 3, "hero fetched on every page");
});

test("concurrent pages missing one fragment make one origin request for it, and every page gets it", async () => {
  // The hero is held until the other four pages wait on the first one's request, inside hero's 1.5 s budget: a
  // fixed delay instead let a loaded machine run the budget out before the answer came.
  let release;
  const gate = new Promise((r) => (release = r));
  await originServes({ hero: { gate } });
  // Only the hero missing from KV, so every request waiting in the isolate waits on it.
  for (const name of FRAGMENTS.filter((n) => n !== "hero")) {
    await kv.put(`fragment:${name}`, `<section data-origin="${name}">${name} from origin</section>`);
  }
  const pending = Promise.all(
    Array.from({ length: 5 }, (_, i) => get("/", { headers: withVisitor(`${"0".repeat(31)}${i}`) }).then((r) => r.text())),
  );
  await untilWaiting(worker, 4);
  release();
  const pages = await pending;
  assert.equal(origin.requests.filter((r) => r.path === "/fragments/hero").length, 1, "one origin request for the hero");
  for (const page of pages) assert.ok(page.includes("hero from origin"), "each page has the fragment");
});

test("a fragment the origin says is for one fetch alone (private, no-store, Vary on the visitor) is not handed to concurrent pages: each asks for its own", async () => {
  // Coalescing shares one origin answer with every page missing the fragment meanwhile: a shared cache's reuse. An
  // answer KV may not keep because it was chosen for its one fetch — private (RFC 9111 §5.2.2.7), no-store, or
  // varying on the visitor's address — went to the pages of other visitors waiting on it.
  for (const headers of [{ "cache-control": "private" }, { "cache-control": "no-store" }, { vary: "CF-Connecting-IP" }]) {
    let release;
    const gate = new Promise((r) => (release = r));
    let n = 0;
    origin.reset();
    for (const name of FRAGMENTS) await kv.put(`fragment:${name}`, `<section data-origin="${name}">${name} from kv</section>`);
    await kv.delete("fragment:hero");
    origin.handle(async (req, body, res) => {
      n += 1;
      const mine = n;
      if (mine === 1) await gate; // the first page's answer is held until the second page waits on it
      res.writeHead(200, { "content-type": "text/html", ...headers });
      res.end(`<section data-origin="hero">hero for fetch ${mine}</section>`);
    });
    const first = get("/", { headers: withVisitor(`${"0".repeat(31)}1`) }).then((r) => r.text());
    await until(() => origin.requests.length === 1, { what: "the first page's hero asked of the origin" });
    const second = get("/", { headers: withVisitor(`${"0".repeat(31)}2`) }).then((r) => r.text());
    await untilWaiting(worker, 1);
    release();
    const [a, b] = await Promise.all([first, second]);
    const what = JSON.stringify(headers);
    assert.ok(a.includes("hero for fetch 1"), `${what}: the first page has its own answer`);
    assert.ok(!b.includes("hero for fetch 1"), `${what}: the second page is not given the first page's answer`);
    assert.ok(b.includes("hero for fetch 2"), `${what}: the second page asked for its own`);
    assert.equal(await kv.get("fragment:hero"), null, `${what}: not written back`);
  }
});

test("a fragment's fetch stays claimed while KV takes its answer: a page arriving past the fetch's own bound waits for it rather than asking the origin again", async (t) => {
  // The claim lapsed at the fetch's bound (RENDER_ORIGIN_TIMEOUT_MS + 1 s) while the write-back after it may take
  // 5 s more: with KV slow to take the answer, the next page found no claim and no KV value, and asked the origin
  // again. A stand-in CONTENT_KV holds every write until the test lets it go.
  const kvSide = await startOrigin();
  t.after(() => kvSide.stop());
  const held = [];
  kvSide.handle((req, body, res) => held.push(res));
  const put = `async (key) => { await (await fetch(${JSON.stringify(kvSide.url)} + "/put/" + encodeURIComponent(key))).text(); }`;
  const w = await startWorker({ vars: { RENDER_ORIGIN: origin.url, RENDER_ORIGIN_TIMEOUT_MS: 100 }, ...standInKv("CONTENT_KV", { put }) });
  t.after(async () => {
    for (const res of held.splice(0)) res.end();
    await w.stop();
  });
  const page = async () => (await w.mf.dispatchFetch(new URL("/", w.url), { headers: withVisitor() })).text();
  assert.ok((await page()).includes("hero from origin"));
  await until(() => held.length === FRAGMENTS.length, { what: "every fragment's write-back waiting on KV" });
  assert.equal(origin.requests.length, FRAGMENTS.length);
  // The deadline under test passing (100 ms + 1 s after the claims), not a stand-in for an event.
  await delay(1_300);
  assert.ok((await page()).includes("hero from origin"), "the second page is given the first fetch's answers");
  assert.equal(origin.requests.length, FRAGMENTS.length, "and asks the origin nothing while they are being written back");
});

test("a fragment over its budget gets its fallback, and the origin's late answer is still written back", async () => {
  await originServes({ hero: { delayMs: 3000 } }); // hero's budget is 1500 ms (wrangler.toml)
  const page = await (await get("/", { headers: withVisitor() })).text();
  assert.ok(page.includes('<section class="hero"></section>'), "the hero's fallback, not a hung page");
  assert.ok(page.includes("footer from origin"), "the slots after it are written");
  const hero = origin.requests.find((r) => r.path === "/fragments/hero");
  assert.equal(hero.answeredAt, undefined, "the page completed before the origin answered");
  await until(async () => (await kv.get("fragment:hero")) === '<section data-origin="hero">hero from origin</section>', {
    ms: 8000,
    what: "the late hero written back to CONTENT_KV",
  });
  origin.reset();
  const next = await (await get("/", { headers: withVisitor() })).text();
  assert.ok(next.includes("hero from origin"), "the next visitor gets it from KV");
  assert.equal(origin.requests.length, 0);
});

test("a fragment origin's answer is bounded: over RENDER_MAX_FRAGMENT_BYTES or RENDER_ORIGIN_TIMEOUT_MS it is refused and not written back", async (t) => {
  const w = await startWorker({ vars: { RENDER_ORIGIN: origin.url, RENDER_MAX_FRAGMENT_BYTES: 1024, RENDER_ORIGIN_TIMEOUT_MS: 500 } });
  t.after(() => w.stop());
  const wkv = await w.mf.getKVNamespace("CONTENT_KV");
  await seedContent(wkv);
  for (const name of FRAGMENTS) await wkv.delete(`fragment:${name}`);
  origin.reset();
  origin.handle(async (req, body, res, record) => {
    const name = record.path.replace("/fragments/", "");
    res.writeHead(200, { "content-type": "text/html" });
    if (name === "hero") return res.end(`<section>${"x".repeat(4096)}</section>`); // over the 1 KiB cap
    if (name === "feed") {
      // Headers and a first chunk at once, the rest after the 0.5 s origin timeout: the timeout covers the body.
      res.flushHeaders();
      res.write("<section>");
      await delay(1500); // feed's budget is 2.5 s
    }
    res.end(`<section data-origin="${name}">${name} from origin</section>`);
  });
  const page = await (await w.mf.dispatchFetch(new URL("/", w.url), { headers: withVisitor() })).text();
  assert.ok(page.includes('<section class="hero"></section>'), "the hero's fallback, not 4 KB of origin markup");
  assert.ok(page.includes('data-fallback="feed"'), "the feed's fallback: the origin timed out before its budget");
  assert.ok(page.includes("footer from origin"));
  const failed = (name) => w.jsonLogs().find((l) => l.msg === "fragment_origin_failed" && l.fragment === name);
  const hero = await until(() => failed("hero"), { what: "the hero's refusal logged" });
  assert.match(hero.detail, /larger than 1024 bytes/);
  const feed = await until(() => failed("feed"), { what: "the feed's timeout logged" });
  assert.match(feed.detail, /body unreadable/, "timed out mid-body");
  await until(async () => (await wkv.get("fragment:footer")) !== null, { what: "the good fragments written back" });
  assert.equal(await wkv.get("fragment:hero"), null, "the oversize fragment is not written back");
  assert.equal(await wkv.get("fragment:feed"), null, "nor the timed-out one");
});

test("KV values are held to RENDER_MAX_FRAGMENT_BYTES too, and an empty KV fragment is a miss; each warning names the page's request", async (t) => {
  const w = await startWorker({ vars: { RENDER_ORIGIN: origin.url, RENDER_MAX_FRAGMENT_BYTES: 1024 } });
  t.after(() => w.stop());
  const wkv = await w.mf.getKVNamespace("CONTENT_KV");
  await seedContent(wkv);
  await wkv.put("fragment:hero", `<section>${"k".repeat(4096)}</section>`);
  await wkv.put("fragment:nav", "");
  await wkv.put("css:critical", `body{margin:0}/*${"c".repeat(4096)}*/`);
  await wkv.put("flags", "{not json");
  origin.reset();
  origin.handle((req, body, res, record) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<section data-origin="${record.path.replace("/fragments/", "")}">from origin</section>`);
  });
  const id = "kv-bounds";
  const page = await (await w.mf.dispatchFetch(new URL("/", w.url), { headers: withVisitor(VISITOR, { "x-request-id": id }) })).text();
  // A miss is asked of the origin (whether its answer then lands within the fragment's budget is timing, which a
  // loaded machine can stretch past it: the page itself is only held to leaving the KV value out).
  const asked = (name) => until(() => origin.requests.some((r) => r.path === `/fragments/${name}`), { what: `${name} asked of the origin` });
  assert.ok(!page.includes("kkkk"), "the oversize KV hero is left out");
  await asked("hero"); // the oversize KV hero is a miss
  await asked("nav"); // the empty KV nav is a miss
  assert.ok(!page.includes("cccc"), "oversize critical CSS is left out");
  const logged = (key) => w.jsonLogs().find((l) => l.msg === "content_kv_read_failed" && l.key === key);
  for (const key of ["fragment:hero", "css:critical"]) {
    const line = await until(() => logged(key), { what: `${key} logged` });
    assert.match(line.detail, /larger than 1024 bytes/);
    assert.equal(line.request_id, id, `${key}: the warning names the page's request`);
  }
  const malformed = await until(() => w.jsonLogs().find((l) => l.msg === "content_kv_malformed" && l.key === "flags"), {
    what: "the malformed flags logged",
  });
  assert.equal(malformed.request_id, id);
});

test("an XSS payload in the visitor's preferences comes out escaped", async () => {
  const payload = `<script>alert("x")</script><img src=x onerror=alert(1)>`;
  await kv.put(`prefs:visitor:${VISITOR}`, JSON.stringify({ display_name: payload, locale: "de" }));
  try {
    const response = await get("/", { headers: withVisitor() });
    const page = await response.text();
    assert.ok(!page.includes("<script>alert"), "no live script");
    assert.ok(!page.includes("<img src=x"), "no live img");
    assert.ok(page.includes("Willkommen zurück, &lt;script&gt;alert(&quot;x&quot;)&lt;&#x2F;script&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert.equal(response.headers.get("content-language"), "de", "locale from preferences");
    assert.equal(response.headers.get("x-locale-source"), "preferences");
  } finally {
    await kv.delete(`prefs:visitor:${VISITOR}`);
  }
});

test("a malformed preferences document is logged by where and why, never by what it holds", async () => {
  // Encoded twice by the app that wrote it (a JSON string holding the JSON): serde_json's message quoted it whole.
  const name = `Jane Private-Name ${"p".repeat(4000)}`;
  await kv.put(`prefs:visitor:${VISITOR}`, JSON.stringify(JSON.stringify({ display_name: name, locale: "de" })));
  try {
    const id = "malformed-prefs";
    const response = await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-locale-source"), "country", "the document counts as absent");
    await response.text();
    const line = await until(
      () => worker.jsonLogs().find((l) => l.msg === "content_kv_malformed" && l.request_id === id),
      { what: "the malformed preferences logged" },
    );
    assert.equal(line.key, "prefs:visitor:*");
    assert.match(line.detail, /invalid type: string/, "why");
    assert.equal(line.line, 1, "where");
    assert.ok(!JSON.stringify(line).includes("Private-Name"), `no stored value in the log: ${JSON.stringify(line).slice(0, 200)}`);
  } finally {
    await kv.delete(`prefs:visitor:${VISITOR}`);
  }
});

test("a preference of another type is left out alone: the others still apply, and the page says which", async () => {
  await kv.put(`prefs:visitor:${VISITOR}`, JSON.stringify({ display_name: "Ann Example", locale: 5 }));
  try {
    const id = "prefs-field-skipped";
    const response = await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
    assert.equal(response.status, 200);
    assert.notEqual(response.headers.get("x-locale-source"), "preferences", "the bad locale is not used");
    assert.match(await response.text(), /Ann Example/, "the display name still shows");
    const line = await until(
      () => worker.jsonLogs().find((l) => l.msg === "content_kv_preferences_skipped" && l.request_id === id),
      { what: "the skipped field logged" },
    );
    assert.deepEqual(
      { key: line.key, skipped: line.skipped, field: line.field, detail: line.detail },
      { key: "prefs:visitor:*", skipped: 1, field: "locale", detail: "invalid type: integer, expected a string" },
    );
  } finally {
    await kv.delete(`prefs:visitor:${VISITOR}`);
  }
});

test("the country picks the currency and prices (and the locale when nothing else does)", async () => {
  const cases = [
    { country: "DE", currency: "EUR", price: "11,00\u00a0€", locale: "de" },
    { country: "JP", currency: "JPY", price: "¥1,800", locale: "ja" },
    { country: "GB", currency: "GBP", price: "£9.90", locale: "en" },
    { country: "US", currency: "USD", price: "$12.00", locale: "en" },
    { country: "BR", currency: "USD", price: "$12.00", locale: "en" },
  ];
  for (const c of cases) {
    const response = await get("/p/product", { headers: withVisitor(), country: c.country });
    const page = await response.text();
    assert.equal(response.headers.get("x-country"), c.country, c.country);
    assert.ok(page.includes(`data-currency="${c.currency}"`), `${c.country}: currency ${c.currency}`);
    assert.ok(page.includes(c.price), `${c.country}: mug costs ${c.price}`);
    assert.equal(response.headers.get("content-language"), c.locale, `${c.country}: locale`);
  }
  const english = await get("/p/product", { headers: withVisitor(VISITOR, { "accept-language": "en-GB,de;q=0.5" }), country: "DE" });
  const page = await english.text();
  assert.equal(english.headers.get("x-locale-source"), "accept-language");
  assert.ok(page.includes("€11.00"), "Accept-Language decides the locale, the country still the currency");
});

test("the variant is sticky per visitor cookie, changes the content and is exposed in x-variant", async () => {
  const fresh = await get("/p/product");
  const setCookie = fresh.headers.get("set-cookie");
  assert.match(setCookie, /^ek_vid=[0-9a-f]{32}; Path=\/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax$/);
  const id = /^ek_vid=([0-9a-f]{32})/.exec(setCookie)[1];
  const variant = fresh.headers.get("x-variant");
  assert.ok(["control", "bold"].includes(variant), variant);
  for (let i = 0; i < 3; i++) {
    const again = await get("/p/product", { headers: withVisitor(id) });
    assert.equal(again.headers.get("x-variant"), variant, `request ${i + 2} keeps the variant`);
    assert.equal(again.headers.get("set-cookie"), null, "a known visitor gets no new cookie");
    await again.arrayBuffer();
  }
  const headlines = { control: "Today&#x27;s offers", bold: "Deals picked for you" };
  const seen = new Map();
  for (let i = 0; seen.size < 2 && i < 40; i++) {
    const visitor = i.toString(16).padStart(32, "0");
    const response = await get("/p/product", { headers: withVisitor(visitor) });
    seen.set(response.headers.get("x-variant"), await response.text());
  }
  assert.equal(seen.size, 2, "visitors are spread over both variants");
  for (const [name, page] of seen) {
    assert.ok(page.includes(`<h2>${headlines[name]}</h2>`), `${name} shows its headline`);
    assert.ok(page.includes(`data-variant="${name}"`), `${name} marks the body`);
  }
});

test("the Link header preloads the critical resources for everyone; the page preloads the rest for fast connections only", async () => {
  // One Link header for every client, so Early Hints replaying it (as a 103 to later visitors) never gives a slow
  // visitor a fast one's list; ECT 2g/3g and Save-Data only drop the in-page preloads.
  const critical = "</assets/app.css>; rel=preload; as=style, </assets/app.js>; rel=preload; as=script";
  const later = '<link rel="preload" href="&#x2F;assets&#x2F;hero.avif" as="image"><link rel="preload" href="&#x2F;assets&#x2F;inter.woff2" as="font" type="font&#x2F;woff2" crossorigin></head>';
  const fast = await get("/", { headers: withVisitor(VISITOR, { ect: "4g" }) });
  assert.equal(fast.headers.get("link"), critical);
  assert.ok((await fast.text()).includes(later), "fast: the other preloads in the head");
  for (const headers of [{ ect: "2g" }, { ect: "3g" }, { "save-data": "on" }]) {
    const slow = await get("/", { headers: withVisitor(VISITOR, headers) });
    assert.equal(slow.headers.get("link"), critical, JSON.stringify(headers));
    assert.ok(!(await slow.text()).includes('rel="preload"'), `${JSON.stringify(headers)}: no in-page preloads`);
  }
  const product = await get("/p/product", { headers: withVisitor() });
  assert.equal(product.headers.get("link"), "</assets/app.css>; rel=preload; as=style", "manifest by page type");
  assert.ok((await product.text()).includes('<link rel="preload" href="&#x2F;assets&#x2F;gallery.js" as="script">'));
});

test("a manifest resource that does not read is left out (one line a page, naming the first) and the other preloads are kept", async (t) => {
  t.after(() => seedContent(kv));
  await kv.put("manifest:product", JSON.stringify({ resources: [
    { href: "/assets/app.css", as: "style", critical: true },
    { href: "/assets/no-as.js", critical: true },
    { href: "/assets/b.css", as: "style", critical: "yes" },
    { href: "/assets/gallery.js", as: "script" },
  ] }));
  const id = `manifest-skip-${randomBytes(4).toString("hex")}`;
  const page = await get("/p/product", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
  assert.equal(page.headers.get("link"), "</assets/app.css>; rel=preload; as=style", "the critical preload kept");
  const body = await page.text();
  assert.ok(body.includes('<link rel="preload" href="&#x2F;assets&#x2F;gallery.js" as="script">'), "the later preload kept");
  assert.ok(!body.includes("no-as") && !body.includes("b.css"), "the unreadable ones left out");
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_resources_skipped" && l.request_id === id), {
    what: "the skipped resources' line",
  });
  assert.deepEqual([line.key, line.skipped, line.index, line.detail], ["manifest:product", 2, 1, "missing field `as`"]);
  assert.equal(worker.jsonLogs().filter((l) => l.msg === "content_kv_resources_skipped" && l.request_id === id).length, 1);
});

test("a flags feature that is not a boolean is off and logged, and the other features and the A/B test are kept", async (t) => {
  // The document was refused as a whole for it: the running experiment (x-variant) and every feature went with it.
  t.after(() => seedContent(kv));
  const flags = (features) => JSON.stringify({
    experiment: { name: "offers-headline", variants: [{ name: "control", headline: "Today's offers" }] },
    features,
  });
  const page = async (features) => {
    await kv.put("flags", flags(features));
    const id = `flags-${randomBytes(4).toString("hex")}`;
    const response = await get("/p/product", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
    return { id, response, body: await response.text() };
  };
  const skipped = (id) => worker.jsonLogs().filter((l) => l.msg === "content_kv_features_skipped" && l.request_id === id);

  const off = await page({ shipping_banner: "yes" });
  assert.equal(off.response.headers.get("x-variant"), "control", "the experiment kept");
  assert.ok(!off.body.includes('class="shipping"'), "a feature that does not read is off");
  const line = await until(() => skipped(off.id)[0], { what: "the skipped feature's line" });
  assert.deepEqual([line.key, line.skipped, line.feature, line.detail], ["flags", 1, "shipping_banner", "invalid type: string, expected a boolean"]);
  assert.equal(worker.jsonLogs().filter((l) => l.msg === "content_kv_malformed" && l.request_id === off.id).length, 0);

  const on = await page({ other: 1, shipping_banner: true, more: null });
  assert.equal(on.response.headers.get("x-variant"), "control");
  assert.ok(on.body.includes('<p class="shipping">'), "the features that read are kept");
  const both = await until(() => skipped(on.id)[0], { what: "the two skipped features' line" });
  assert.deepEqual([both.skipped, both.feature], [2, "more"], "one line a page, naming the first by name");
  assert.equal(skipped(on.id).length, 1);
});

test("a flags experiment that does not read is none and logged, and the features are kept", async (t) => {
  // The document was refused as a whole for it: every feature went with the experiment.
  t.after(() => seedContent(kv));
  await kv.put("flags", JSON.stringify({
    experiment: { name: "offers-headline", variants: [{ name: "control" }] },
    features: { shipping_banner: true },
  }));
  const id = `experiment-${randomBytes(4).toString("hex")}`;
  const response = await get("/p/product", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
  const body = await response.text();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-variant"), null, "no visitor is assigned");
  assert.ok(body.includes('<p class="shipping">'), "the features are kept");
  const line = await until(
    () => worker.jsonLogs().find((l) => l.msg === "content_kv_experiment_skipped" && l.request_id === id),
    { what: "the skipped experiment's line" },
  );
  assert.deepEqual([line.key, line.skipped, line.member, line.detail], ["flags", 1, "experiment", "missing field `headline`"]);
  assert.equal(worker.jsonLogs().filter((l) => l.msg === "content_kv_malformed" && l.request_id === id).length, 0);
});

test("?render=whole sends the same page in one piece; pages are private; bad input answers JSON errors", async () => {
  const streamed = await get("/", { headers: withVisitor() });
  const whole = await get("/?render=whole", { headers: withVisitor() });
  // The same page but for its nonce, fresh per response.
  const unNonced = async (r) => (await r.text()).replace(/ nonce="[0-9a-f]{32}"/g, "");
  assert.equal(await unNonced(whole), await unNonced(streamed));
  for (const r of [streamed, whole]) assert.equal(r.headers.get("cache-control"), "private, no-store");
  // The home page is `/` alone, not also `/p/home` (nor its percent-encoded spelling).
  for (const path of ["/p/nope", "/p/home", "/p/%68ome"]) {
    const missing = await get(path);
    assert.equal(missing.status, 404, path);
    assert.equal((await missing.json()).error.code, "not_found", path);
  }
  const bad = await get("/?render=sideways");
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, "invalid_render_mode");
  // The parameter is read as any URL parser reads it: percent-escapes in its name and value are decoded.
  const escaped = await get("/?render=%77hole", { headers: withVisitor() });
  assert.equal(escaped.status, 200);
  assert.equal(await unNonced(escaped), await unNonced(await get("/?render=whole", { headers: withVisitor() })));
  const escapedName = await get("/?%72ender=sideways");
  assert.equal(escapedName.status, 400);
  assert.equal((await escapedName.json()).error.code, "invalid_render_mode");
});

test("a render parameter given more than once is 400, whatever its values: the page never picks one of them", async () => {
  // The first one used to win: `whole&render=sideways` was a 200 though `sideways` alone is a 400, and
  // `stream&render=whole` streamed. A repeated image parameter is refused the same way.
  for (const query of ["render=whole&render=sideways", "render=stream&render=whole", "render=whole&render=whole", "render=whole&%72ender=stream"]) {
    const repeated = await get(`/?${query}`, { headers: withVisitor() });
    assert.equal(repeated.status, 400, query);
    assert.deepEqual(await repeated.json(), {
      error: { code: "invalid_render_mode", message: "parameter `render` is given more than once" },
    }, query);
  }
  // Other parameters beside one `render` are still not read.
  assert.equal((await get("/?render=whole&a=1&a=2", { headers: withVisitor() })).status, 200);
});

test("preconditions on a page: an If-Match naming a tag is 412 and If-None-Match: * is 304 (a page has no entity tag), before any fragment is fetched", async () => {
  // RFC 9110 §13.1.1, §13.1.2, §13.2: the Worker renders the page, so it answers for it as its origin. A page has no
  // ETag (each response carries a fresh CSP nonce), so a list of tags never names it and `*` names it always.
  for (const method of ["GET", "HEAD"]) {
    origin.reset();
    const refused = await worker.mf.dispatchFetch(new URL("/", worker.url), {
      method,
      headers: withVisitor(VISITOR, { "if-match": '"abc", W/"def"' }),
    });
    assert.equal(refused.status, 412, method);
    if (method === "GET") assert.equal((await refused.json()).error.code, "precondition_failed");
    else await refused.arrayBuffer();
    const unchanged = await worker.mf.dispatchFetch(new URL("/", worker.url), {
      method,
      headers: withVisitor(VISITOR, { "if-none-match": "*" }),
    });
    assert.equal(unchanged.status, 304, method);
    assert.equal(unchanged.headers.get("cache-control"), "private, no-store");
    assert.equal((await unchanged.arrayBuffer()).byteLength, 0);
    assert.equal(origin.requests.length, 0, "no fragment was fetched for either");
  }
  const any = await get("/", { headers: withVisitor(VISITOR, { "if-match": "*" }) });
  assert.equal(any.status, 200, "If-Match: * names the page");
  assert.match(await any.text(), /<\/html>/);
  const tagged = await get("/", { headers: withVisitor(VISITOR, { "if-none-match": '"abc"' }) });
  assert.equal(tagged.status, 200, "a tag never names the page: it is sent whole");
  await tagged.text();
  // RFC 9110 §13.2.2: If-Match is evaluated first (its 412 wins over If-None-Match's 304); a weak tag never matches
  // strongly; `*` among tags is no `*` (a malformed list names nothing, in either header).
  for (const [ifMatch, ifNoneMatch, status, why] of [
    ['"abc"', "*", 412, "If-Match first"],
    ['W/"abc"', undefined, 412, "a weak tag"],
    ['"abc", *', undefined, 412, "* in a list of If-Match"],
    ["*", "*", 304, "If-Match: * holds, then If-None-Match: * is 304"],
    [undefined, '"abc", *', 200, "* in a list of If-None-Match names nothing"],
    [undefined, "W/*", 200, "W/* is no *"],
  ]) {
    const headers = {};
    if (ifMatch !== undefined) headers["if-match"] = ifMatch;
    if (ifNoneMatch !== undefined) headers["if-none-match"] = ifNoneMatch;
    for (const method of ["GET", "HEAD"]) {
      const answer = await worker.mf.dispatchFetch(new URL("/", worker.url), { method, headers: withVisitor(VISITOR, headers) });
      assert.equal(answer.status, status, `${method} ${why}`);
      await answer.arrayBuffer();
    }
  }
});

test("a signed-in user's preferences pick the locale, over the visitor cookie's; signed out, the visitor's apply", async (t) => {
  const KEY = generateSigningJwk("render-test-key");
  const session = await startWorker({ vars: { RENDER_ORIGIN: origin.url, AUTH_SIGNING_KEY: JSON.stringify(KEY) } });
  t.after(() => session.stop());
  const content = await session.mf.getKVNamespace("CONTENT_KV");
  await seed({ CONFIG_KV: await session.mf.getKVNamespace("CONFIG_KV"), DB: await session.mf.getD1Database("DB"), CONTENT_KV: content, AUTH_SIGNING_KEY: JSON.stringify(KEY) });
  const alice = DEMO_USERS.find((u) => u.email === "alice@example.com");
  await content.put(`prefs:user:${alice.id}`, JSON.stringify({ display_name: "Alice", locale: "fr" }));
  await content.put(`prefs:visitor:${VISITOR}`, JSON.stringify({ display_name: "Visitor", locale: "de" }));
  const login = await session.fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: alice.email, password: alice.password }),
  });
  assert.equal(login.status, 200);
  await login.arrayBuffer();
  const cookie = /__Host-edgekit_session=[^;]*/.exec(login.headers.get("set-cookie"))[0];

  const signedIn = await session.fetch("/", { headers: { cookie: `${cookie}; ek_vid=${VISITOR}` } });
  await signedIn.arrayBuffer();
  assert.equal(signedIn.headers.get("content-language"), "fr", "the session user's preferences");
  assert.equal(signedIn.headers.get("x-locale-source"), "preferences");
  assert.equal(signedIn.headers.get("cache-control"), "private, no-store");

  const anonymous = await session.fetch("/", { headers: { cookie: `ek_vid=${VISITOR}` } });
  await anonymous.arrayBuffer();
  assert.equal(anonymous.headers.get("content-language"), "de", "the anonymous visitor's preferences");

  // The variant follows the user id once signed in, whatever visitor cookie the browser holds (one experiment arm
  // per user on every device); it may differ from the visitor's, and no page is kept for another (private, no-store).
  const variants = new Set();
  for (let i = 0; i < 8; i++) {
    const visitor = i.toString(16).padStart(32, "0");
    const page = await session.fetch("/", { headers: { cookie: `${cookie}; ek_vid=${visitor}` } });
    await page.arrayBuffer();
    assert.equal(page.headers.get("cache-control"), "private, no-store");
    assert.equal(page.headers.get("set-cookie"), null, "no visitor cookie set for a signed-in user");
    variants.add(page.headers.get("x-variant"));
  }
  assert.deepEqual([...variants], [signedIn.headers.get("x-variant")], "one variant for the user");
});

test("a byte order mark starting a CONTENT_KV value or an origin fragment is not part of it", async (t) => {
  // A file saved with a UTF-8 BOM (`wrangler kv key put --path`, an editor's default): browsers drop the mark when
  // they decode a resource, and so does the page; left in, it renamed the first CSS rule's selector and made JSON
  // content unreadable.
  const w = await startWorker({ vars: { RENDER_ORIGIN: origin.url } });
  t.after(() => w.stop());
  const wkv = await w.mf.getKVNamespace("CONTENT_KV");
  await seedContent(wkv);
  for (const name of FRAGMENTS) await wkv.delete(`fragment:${name}`);
  const bom = (text) => new Uint8Array(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]));
  await wkv.put("css:critical", bom("body{margin:0}"));
  const flags = JSON.parse(await wkv.get("flags"));
  await wkv.put("flags", bom(JSON.stringify(flags)));
  origin.reset();
  origin.handle((req, body, res, record) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(bom(`<section data-origin="${record.path.replace("/fragments/", "")}">from origin</section>`));
  });
  const id = "bom-page";
  const response = await w.mf.dispatchFetch(new URL("/", w.url), { headers: withVisitor(VISITOR, { "x-request-id": id }) });
  const page = await response.text();
  assert.match(page, /<style nonce="[0-9a-f]{32}">body\{margin:0\}<\/style>/, "the first CSS rule's selector is body");
  assert.ok(response.headers.get("x-variant"), "the flags document is read");
  assert.ok(page.includes('<section data-origin="hero">from origin</section>'), "the fragment");
  assert.ok(!page.includes("\ufeff"), "no byte order mark on the page");
  await until(async () => (await wkv.get("fragment:hero")) !== null, { what: "the hero written back" });
  assert.equal(await wkv.get("fragment:hero"), '<section data-origin="hero">from origin</section>', "written back without it");
  assert.equal(w.jsonLogs().filter((l) => l.msg === "content_kv_malformed" && l.request_id === id).length, 0);
});

test("a page says nosniff and carries a Content-Security-Policy whose fresh nonce is on the inline critical CSS", async () => {
  // The shell inlines the critical CSS; a policy must let that one element through (by a per-response nonce) while
  // refusing injected script, plugins and a <base> that would re-point the page's relative URLs.
  const nonces = new Set();
  for (const path of ["/", "/?render=whole", "/p/product"]) {
    const response = await get(path, { headers: withVisitor() });
    const page = await response.text();
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", `${path}: nosniff`);
    const csp = response.headers.get("content-security-policy");
    assert.ok(csp, `${path}: a policy`);
    const directives = Object.fromEntries(
      csp.split(";").map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([name, ...values]) => [name, values]),
    );
    const nonce = /^'nonce-([A-Za-z0-9+/_=-]+)'$/.exec(directives["style-src"].find((v) => v.startsWith("'nonce-")) ?? "")?.[1];
    assert.ok(nonce && nonce.length >= 22, `${path}: style-src has a nonce: ${csp}`);
    assert.ok(page.includes(`<style nonce="${nonce}">body{margin:0`), `${path}: the critical CSS carries it`);
    assert.equal(page.match(/<style/g).length, 1, "one inline style");
    assert.ok(!directives["script-src"].includes("'unsafe-inline'") && !directives["style-src"].includes("'unsafe-inline'"));
    assert.deepEqual(directives["object-src"], ["'none'"]);
    assert.deepEqual(directives["base-uri"], ["'none'"]);
    nonces.add(nonce);
  }
  assert.equal(nonces.size, 3, "a fresh nonce per response");
});

test('RENDER_CSP replaces the page\'s policy ({nonce} is the response\'s nonce); "off" sends none', async (t) => {
  const custom = await startWorker({ vars: { RENDER_ORIGIN: origin.url, RENDER_CSP: "script-src 'self' https://cdn.example; style-src 'nonce-{nonce}'" } });
  const none = await startWorker({ vars: { RENDER_ORIGIN: origin.url, RENDER_CSP: "off" } });
  t.after(() => Promise.all([custom.stop(), none.stop()]));
  for (const w of [custom, none]) await seedContent(await w.mf.getKVNamespace("CONTENT_KV"));
  const response = await custom.mf.dispatchFetch(new URL("/", custom.url), { headers: withVisitor() });
  const page = await response.text();
  const csp = response.headers.get("content-security-policy");
  const nonce = /^script-src 'self' https:\/\/cdn\.example; style-src 'nonce-([0-9a-f]{32})'$/.exec(csp)?.[1];
  assert.ok(nonce, csp);
  assert.ok(page.includes(`<style nonce="${nonce}">`));
  const bare = await none.mf.dispatchFetch(new URL("/", none.url), { headers: withVisitor() });
  await bare.arrayBuffer();
  assert.equal(bare.headers.get("content-security-policy"), null);
  assert.equal(bare.headers.get("x-content-type-options"), "nosniff", "nosniff either way");
  // Validated once, as every var is (the rules in src/render/plan.rs's tests): a value no header can carry fails.
  const refused = await startWorker({ vars: { RENDER_CSP: "style-src 'nonce-{other}'" } });
  try {
    const answer = await refused.fetch("/health");
    assert.equal(answer.status, 500);
    assert.match((await answer.json()).error.message, /RENDER_CSP/);
  } finally {
    await refused.stop();
  }
});

test("a HEAD on a page answers the page's headers without rendering it: no fragment fetch, no write-back, no new visitor cookie", async () => {
  // The body of a HEAD is dropped: fetching every fragment (origin requests, KV write-backs under waitUntil) and
  // minting a visitor id to set in a cookie was all work for nothing — and a monitor's HEAD every few seconds did it.
  for (const path of ["/", "/p/product"]) {
    origin.reset();
    const head = await worker.mf.dispatchFetch(new URL(path, worker.url), { method: "HEAD" });
    assert.equal(head.status, 200, path);
    assert.equal(await head.text(), "", `${path}: no body`);
    assert.match(head.headers.get("content-type"), /^text\/html/, path);
    assert.equal(head.headers.get("cache-control"), "private, no-store", path);
    assert.equal(head.headers.get("x-content-type-options"), "nosniff", path);
    assert.ok(head.headers.get("content-security-policy"), path);
    assert.ok(head.headers.get("content-language"), path);
    assert.equal(head.headers.get("set-cookie"), null, `${path}: no visitor cookie for a page never shown`);
    await delay(300);
    assert.deepEqual(origin.requests.map((r) => r.path), [], `${path}: no fragment asked of the origin`);
  }
  for (const name of FRAGMENTS) assert.equal(await kv.get(`fragment:${name}`), null, `${name} not written back`);
  // A visitor who has a cookie gets their variant, as on a GET.
  const known = await worker.mf.dispatchFetch(new URL("/", worker.url), { method: "HEAD", headers: withVisitor() });
  const page = await get("/", { headers: withVisitor() });
  await page.arrayBuffer();
  assert.equal(known.headers.get("x-variant"), page.headers.get("x-variant"));
  assert.equal(known.headers.get("link"), page.headers.get("link"));
});

test("geo's codes are read in any case, and a code of another shape is logged naming its entry", async (t) => {
  t.after(() => seedContent(kv));
  const geo = (jp) => JSON.stringify({ default_country: "US", default_currency: "usd", countries: { jp: { currency: jp, locale: "ja" } } });
  await kv.put("geo", geo("jpy"));
  const page = await (await get("/", { headers: withVisitor(), country: "JP" })).text();
  assert.ok(page.includes('data-currency="JPY"'), "the JP row's currency, upper-cased");
  assert.ok(page.includes("¥1,800") && !page.includes("¥18.00"), "the catalog's JPY price, with no decimals");
  await kv.put("geo", geo("yens"));
  const id = "geo-bad-code";
  await (await worker.mf.dispatchFetch(new URL("/", worker.url), { headers: withVisitor(VISITOR, { "x-request-id": id }), cf: { country: "JP" } })).arrayBuffer();
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_malformed" && l.request_id === id), { what: "the malformed geo line" });
  assert.equal(line.key, "geo");
  assert.match(line.detail, /countries\.JP\.currency/);
  assert.ok(!JSON.stringify(line).includes("yens"), "the value is not echoed");
});

/** A user `id` (`email`) with a live session in D1, for an hour; returns the session token. */
async function liveSession(id, email) {
  const db = await worker.mf.getD1Database("DB");
  const token = randomBytes(32).toString("base64url");
  await db
    .prepare("INSERT OR IGNORE INTO users (id, email, password_algorithm, password_iterations, password_salt, password_hash, permissions, created_at) VALUES (?1, ?2, 'pbkdf2-sha256', 1, 'AA', 'AA', '[]', ?3)")
    .bind(id, email, Date.now())
    .run();
  const now = Date.now();
  await db
    .prepare("INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, family) VALUES (?1, ?2, ?3, ?4, ?3, ?1)")
    .bind(createHash("sha256").update(token).digest("hex"), id, now, now + 3_600_000)
    .run();
  return token;
}

test("a HEAD's headers are the GET's for the same request: signed in, a visitor, a dead session cookie, either mode", async () => {
  // RFC 9110 §9.3.2: a HEAD gets the header fields a GET would. Pages' headers come from the session check (whose
  // user picks the preferences and the variant, and whose dead cookie is cleared), the manifest (Link), flags
  // (x-variant), preferences and geo (Content-Language, x-locale-source, x-country): a HEAD reads those and only those.
  const user = "user-head-check";
  const token = await liveSession(user, "head-check@example.com");
  await kv.put(`prefs:user:${user}`, JSON.stringify({ locale: "fr" }));
  const dead = randomBytes(32).toString("base64url"); // well-formed, names no session
  const cases = {
    "signed in": { cookie: `__Host-edgekit_session=${token}; ek_vid=${VISITOR}` },
    "a visitor with a cookie": { ...withVisitor(), "accept-language": "de-DE,de;q=0.9" },
    "a dead session cookie": { cookie: `__Host-edgekit_session=${dead}; ek_vid=${VISITOR}` },
  };
  // What differs by design: the body's framing and length, and the fresh per-response CSP nonce.
  const comparable = (response) => {
    const headers = Object.fromEntries(response.headers);
    for (const name of ["content-length", "transfer-encoding", "date"]) delete headers[name];
    headers["content-security-policy"] = headers["content-security-policy"]?.replace(/nonce-[0-9a-f]{32}/, "nonce-N");
    return headers;
  };
  for (const path of ["/", "/?render=whole", "/p/product"]) {
    for (const [what, headers] of Object.entries(cases)) {
      const init = { headers: { ...headers, "x-request-id": `head-vs-get-${what.replaceAll(" ", "-")}` }, cf: { country: "JP" } };
      const page = await worker.mf.dispatchFetch(new URL(path, worker.url), init);
      await page.arrayBuffer();
      const head = await worker.mf.dispatchFetch(new URL(path, worker.url), { ...init, method: "HEAD" });
      assert.equal(await head.text(), "", `${path}, ${what}: no body`);
      assert.deepEqual(comparable(head), comparable(page), `${path}, ${what}`);
    }
  }
  const signedIn = await worker.mf.dispatchFetch(new URL("/", worker.url), { method: "HEAD", headers: cases["signed in"] });
  assert.equal(signedIn.headers.get("content-language"), "fr", "the signed-in user's preferences");
  const cleared = await worker.mf.dispatchFetch(new URL("/", worker.url), { method: "HEAD", headers: cases["a dead session cookie"] });
  assert.match(cleared.headers.get("set-cookie") ?? "", /__Host-edgekit_session=;.*Max-Age=0/i, "the dead cookie is cleared");
});

test("a page's 304 clears a dead session cookie as its 200 would, and gives a visitor with no cookie no id (no page is shown, as for a HEAD)", async () => {
  // RFC 9110 §15.4.5 limits the representation metadata a 304 carries; Set-Cookie is none, and browsers store it from
  // a 304. A dead cookie kept by the 304 was sent again on every request until a 200 cleared it.
  const dead = randomBytes(32).toString("base64url"); // well-formed, names no session
  for (const method of ["GET", "HEAD"]) {
    origin.reset();
    const cleared = await worker.mf.dispatchFetch(new URL("/", worker.url), {
      method,
      headers: { cookie: `__Host-edgekit_session=${dead}; ek_vid=${VISITOR}`, "if-none-match": "*" },
    });
    assert.equal(cleared.status, 304, method);
    assert.match(cleared.headers.get("set-cookie") ?? "", /__Host-edgekit_session=;.*Max-Age=0/i, `${method}: the dead cookie is cleared`);
    assert.doesNotMatch(cleared.headers.get("set-cookie") ?? "", /ek_vid=/, `${method}: the visitor keeps their id`);
    await cleared.arrayBuffer();
    const visitor = await worker.mf.dispatchFetch(new URL("/", worker.url), { method, headers: { "if-none-match": "*" } });
    assert.equal(visitor.status, 304, method);
    assert.equal(visitor.headers.get("set-cookie"), null, `${method}: no id for a page not shown`);
    await visitor.arrayBuffer();
    assert.equal(origin.requests.length, 0, "no fragment was fetched");
  }
});

test("a page's 304 and 412 set no cookie the 200 for the same request would not: signed in, a visitor with an id, a dead session cookie, GET and HEAD", async () => {
  // The 304 runs the session check (to clear a dead cookie as the 200 does) and nothing else: a live session must
  // not get its cookie re-set or cleared, a visitor no new id, and the 412 (answered before the check) nothing.
  const user = "user-precondition-cookies";
  const token = await liveSession(user, "precondition-cookies@example.com");
  const dead = randomBytes(32).toString("base64url");
  const names = (response) =>
    (response.headers.getSetCookie?.() ?? [response.headers.get("set-cookie")].filter(Boolean)).map((c) => c.split("=")[0]).sort();
  for (const [what, cookie] of [
    ["signed in", `__Host-edgekit_session=${token}; ek_vid=${VISITOR}`],
    ["a visitor with an id", `ek_vid=${VISITOR}`],
    ["a dead session cookie", `__Host-edgekit_session=${dead}; ek_vid=${VISITOR}`],
  ]) {
    for (const method of ["GET", "HEAD"]) {
      const fetchWith = async (extra) => {
        const r = await worker.mf.dispatchFetch(new URL("/", worker.url), { method, headers: { cookie, ...extra } });
        await r.arrayBuffer();
        return r;
      };
      const page = await fetchWith({});
      assert.equal(page.status, 200, `${what}, ${method}`);
      const notModified = await fetchWith({ "if-none-match": "*" });
      assert.equal(notModified.status, 304, `${what}, ${method}`);
      assert.deepEqual(names(notModified), names(page), `${what}, ${method}: the 304 sets what the 200 sets`);
      const failed = await fetchWith({ "if-match": '"x"', "if-none-match": "*" });
      assert.equal(failed.status, 412, `${what}, ${method}`);
      assert.deepEqual(names(failed), [], `${what}, ${method}: the 412 sets nothing`);
    }
  }
});

test("one product the catalog cannot price is left out (logged, naming its sku) while the others are offered", async (t) => {
  t.after(() => seedContent(kv));
  const catalog = (bad) =>
    JSON.stringify([
      { sku: "mug", name: "Edge mug", prices: { USD: 1200, JPY: 1800 } },
      { sku: "odd-one", name: "Odd one", prices: bad },
      { sku: "tee", name: "Worker tee", prices: { USD: 2500, JPY: 3500 } },
    ]);
  for (const [what, bad] of [
    ["a price code of another shape", { yens: 100 }],
    ["a code priced twice", { usd: 100, USD: 200 }],
    ["a price that is not a whole number", { USD: -5 }],
  ]) {
    await kv.put("catalog", catalog(bad));
    const id = `catalog-skip-${randomBytes(4).toString("hex")}`;
    const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }), country: "US" })).text();
    assert.ok(page.includes('data-sku="mug"') && page.includes('data-sku="tee"'), `${what}: the others are offered`);
    assert.ok(!page.includes("odd-one"), `${what}: the bad one is not`);
    const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_product_skipped" && l.request_id === id), {
      what: `${what}: the skipped product's line`,
    });
    assert.equal(line.key, "catalog");
    assert.equal(line.sku, "odd-one");
    assert.equal(line.index, 1);
    assert.ok(!JSON.stringify(line).includes("yens"), "the value is not echoed");
  }
  // A document that is not a list of products at all is still refused whole.
  const id = `catalog-bad-${randomBytes(4).toString("hex")}`;
  await kv.put("catalog", JSON.stringify({ sku: "mug" }));
  const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }), country: "US" })).text();
  assert.ok(!page.includes("data-sku="), "no offers");
  await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_malformed" && l.request_id === id && l.key === "catalog"), {
    what: "the malformed catalog line",
  });
});

test("a catalog with many products it cannot price writes a bounded number of log lines per page, and says how many", async (t) => {
  t.after(() => seedContent(kv));
  const products = [{ sku: "mug", name: "Edge mug", prices: { USD: 1200 } }];
  for (let i = 0; i < 300; i++) products.push({ sku: `bad-${i}`, name: "Bad", prices: { yens: i } });
  await kv.put("catalog", JSON.stringify(products));
  const id = `catalog-many-${randomBytes(4).toString("hex")}`;
  const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }), country: "US" })).text();
  assert.ok(page.includes('data-sku="mug"'), "the good one is offered");
  const summary = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_products_skipped" && l.request_id === id), {
    what: "the line counting the skipped products",
  });
  assert.equal(summary.skipped, 300);
  const lines = worker.jsonLogs().filter((l) => l.msg === "content_kv_product_skipped" && l.request_id === id);
  assert.ok(lines.length >= 1 && lines.length <= 10, `${lines.length} lines for one page`);
  assert.equal(lines[0].sku, "bad-0");
});

test("a product priced neither in the visitor's currency nor the default one is left off the page, and logged", async (t) => {
  t.after(() => seedContent(kv));
  await kv.put(
    "catalog",
    JSON.stringify([
      { sku: "mug", name: "Edge mug", prices: { USD: 1200 } },
      { sku: "pound-only", name: "Pound only", prices: { GBP: 900 } },
      { sku: "unpriced", name: "Unpriced", prices: {} },
    ]),
  );
  const id = `catalog-unpriced-${randomBytes(4).toString("hex")}`;
  const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }), country: "US" })).text();
  assert.ok(page.includes('data-sku="mug"'));
  assert.ok(!page.includes("pound-only") && !page.includes('data-sku="unpriced"'), "neither can be shown");
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_products_unpriced" && l.request_id === id), {
    what: "the unpriced products' line",
  });
  assert.equal(line.sku, "pound-only", "the first named");
  assert.equal(line.count, 2);
  assert.equal(line.currency, "USD");
});

test("a sku the catalog lists twice is offered once (the first), and the second is logged as left out", async (t) => {
  t.after(() => seedContent(kv));
  await kv.put(
    "catalog",
    JSON.stringify([
      { sku: "mug", name: "Edge mug", prices: { USD: 1200 } },
      { sku: "tee", name: "Worker tee", prices: { USD: 2500 } },
      { sku: "mug", name: "Second mug", prices: { USD: 900 } },
    ]),
  );
  const id = `catalog-dup-${randomBytes(4).toString("hex")}`;
  const page = await (await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }), country: "US" })).text();
  assert.equal(page.split('data-sku="mug"').length - 1, 1, "the sku is offered once");
  assert.ok(page.includes("Edge mug") && !page.includes("Second mug"), "the first one listed is kept");
  assert.ok(page.includes('data-sku="tee"'));
  const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_product_skipped" && l.request_id === id), {
    what: "the duplicate's line",
  });
  assert.equal(line.sku, "mug");
  assert.equal(line.index, 2);
  assert.match(line.detail, /duplicate sku/);
  assert.equal(worker.jsonLogs().filter((l) => l.msg === "content_kv_product_skipped" && l.request_id === id).length, 1, "logged once");
});

test("a content read's warning does not name the visitor id from the cookie (a per-browser identifier)", async () => {
  await kv.put(`prefs:visitor:${VISITOR}`, "{not json");
  try {
    const id = `visitor-key-${randomBytes(4).toString("hex")}`;
    const response = await get("/", { headers: withVisitor(VISITOR, { "x-request-id": id }) });
    assert.equal(response.status, 200);
    await response.text();
    const line = await until(() => worker.jsonLogs().find((l) => l.msg === "content_kv_malformed" && l.request_id === id), {
      what: "the malformed preferences logged",
    });
    assert.equal(line.key, "prefs:visitor:*", "which kind of document, not whose");
    assert.ok(!JSON.stringify(line).includes(VISITOR), `no visitor id in the log: ${JSON.stringify(line)}`);
  } finally {
    await kv.delete(`prefs:visitor:${VISITOR}`);
  }
});
