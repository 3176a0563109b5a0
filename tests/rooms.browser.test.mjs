// Rooms in a real browser: headless Chromium (Debian's package, driven by playwright-core) opens the demo page twice;
// typing in one shows the text and the other's presence in the other.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startWorker, until } from "./support/worker.mjs";

let w;
let browser;
before(async () => {
  w = await startWorker();
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
  await w?.stop();
});

test("two browsers on the demo page see each other's text and presence", async () => {
  // The page asks POST /rooms/{id}/ticket, which needs a session; route it to the debug ticket route
  // (the session capability's own tests cover signing in).
  // The page runs under its Content-Security-Policy: everything it loads and connects to must be allowed by it.
  const violations = [];
  const open = async (name) => {
    const context = await browser.newContext();
    await context.route("**/rooms/browser/ticket", (route) =>
      route.continue({ url: new URL(`/__debug/rooms/browser/ticket?user=${name}`, w.url).href }),
    );
    const page = await context.newPage();
    page.on("console", (m) => /Content Security Policy/i.test(m.text()) && violations.push(m.text()));
    // Every violation the page's policy reports, whether or not the browser also writes it to the console.
    await page.exposeFunction("violated", (what) => violations.push(what));
    await page.addInitScript(() =>
      document.addEventListener("securitypolicyviolation", (e) => window.violated(`${e.effectiveDirective} refused ${e.blockedURI}`)),
    );
    const response = await page.goto(new URL(`/rooms/browser?name=${name}`, w.url).href);
    assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/, "the page is under a CSP");
    await page.waitForSelector("#editor:not([disabled])");
    return page;
  };
  const ann = await open("ann");
  const bob = await open("bob");
  await ann.locator("#editor").pressSequentially("hello from ann");
  await until(async () => (await bob.locator("#editor").inputValue()) === "hello from ann", {
    ms: 10000,
    what: "bob's editor shows ann's text",
  });
  await until(async () => (await bob.locator("#presence").innerText()).includes("ann"), {
    ms: 10000,
    what: "bob sees ann present",
  });
  assert.match(await ann.locator("#presence").innerText(), /bob/, "ann sees bob present");
  assert.equal(await ann.locator("#status").evaluate((e) => getComputedStyle(e).color), "rgb(102, 102, 102)", "the inline style applies");
  // A headed Chrome also loads the page's icon (its <link rel=icon>, else /favicon.ico) under the page's policy, which
  // headless Chromium skips: loaded here as an image, as that request is checked (img-src), it must be allowed too.
  for (const page of [ann, bob]) {
    const icon = await page.evaluate(async () => {
      const href = document.querySelector("link[rel~=icon]")?.href ?? new URL("/favicon.ico", location.href).href;
      const img = new Image();
      await new Promise((resolve) => {
        img.onload = img.onerror = resolve;
        img.src = href;
      });
      // A violation event is dispatched as a task after the refusal: one more turn of the event loop.
      await new Promise((resolve) => setTimeout(resolve, 0));
      return href;
    });
    assert.ok(icon, "the page's icon was tried");
  }
  assert.deepEqual(violations, [], "nothing the page does is refused by its policy");
});
