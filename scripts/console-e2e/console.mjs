// The console and the customer portal in a real browser: Debian's Chromium driven by
// playwright-core (no browser download).
//
//   node console.mjs /path/to/hookline [screenshot-dir]
//
// Starts `hookline serve` on a temporary SQLite database (loopback receivers allow-listed) and a
// receiver on 127.0.0.1 that answers with HTML markup, then checks, as a user would: sign in; a bad
// URL shows the field's error; create; send a test; the delivery appears in the log; open it;
// resend; a portal link scoped to one webhook shows it and never another (also by typing the
// other's URL); a view-only portal can't resend; hostile names and response bodies execute
// nothing; no script errors on any page; 375 px wide has no sideways scroll. With a screenshot
// directory it saves the main pages there (the README shows them). All traffic stays on 127.0.0.1.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const [binary, shots] = process.argv.slice(2);
if (!binary) {
  console.error("usage: node console.mjs /path/to/hookline [screenshot-dir]");
  process.exit(2);
}
if (shots) mkdirSync(shots, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, check, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// A receiver whose answers are hostile markup: the console must show them as text.
let received = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    received++;
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<script>window.__pwned = 1; alert('receiver')</script><b>ok</b>");
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

const dir = mkdtempSync(join(tmpdir(), "hookline-console-"));
const port = 20000 + Math.floor(Math.random() * 20000);
const base = `http://127.0.0.1:${port}`;
const server = spawn(binary, ["serve", "--listen", `127.0.0.1:${port}`], {
  env: {
    ...process.env,
    HOOKLINE_DATABASE_URL: `sqlite://${join(dir, "hookline.db")}`,
    HOOKLINE_ALLOW_TARGETS: "127.0.0.1/32",
    HOOKLINE_ALLOW_HTTP: "true",
    HOOKLINE_LOG: "warn",
    HOOKLINE_BRAND: "Acme",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
server.stdout.on("data", (d) => (output += d));
server.stderr.on("data", (d) => (output += d));
process.on("exit", () => server.kill("SIGKILL"));

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e.stack ?? e).split("\n").slice(0, 6).join("\n  ")}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

// Every page of every context is watched for script errors and dialogs (an executed payload).
const problems = [];
function watch(page, label) {
  page.on("pageerror", (e) => problems.push(`${label}: page error ${e.message}`));
  page.on("console", (m) => {
    // A page answered 401/403/404 on purpose logs "Failed to load resource"; sub-resources that
    // fail are caught below instead.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push(`${label}: console error ${m.text()}`);
    }
  });
  page.on("response", (r) => {
    const kind = r.request().resourceType();
    if (["script", "stylesheet", "image", "font"].includes(kind) && r.status() >= 400) {
      problems.push(`${label}: ${r.request().resourceType()} ${r.url()} answered ${r.status()}`);
    }
  });
  page.on("dialog", async (d) => {
    problems.push(`${label}: a dialog opened (${d.message()}): markup was executed`);
    await d.dismiss();
  });
  return page;
}

async function noSideScroll(page, path) {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(base + path);
  const { sw, iw } = await page.evaluate(() => ({
    sw: document.documentElement.scrollWidth,
    iw: window.innerWidth,
  }));
  assert.ok(sw <= iw, `${path} scrolls sideways at 375 px: ${sw} > ${iw}`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

const api = async (key, method, path, body) => {
  const r = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};

try {
  const key = await until("the bootstrap key", () => output.match(/hk_[A-Za-z0-9_-]+/)?.[0]);
  await until("the server", async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = watch(await ctx.newPage(), "console");
  let webhookUrl;
  let otherId;

  await check("a wrong key shows a clear message", async () => {
    await page.goto(base + "/");
    await page.getByLabel("API key").fill("hk_not_a_real_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That API key is not valid").waitFor();
    if (shots) await page.screenshot({ path: join(shots, "sign-in.png") });
  });

  await check("sign in with the printed key", async () => {
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Webhooks" }).waitFor();
    assert.match(await page.title(), /Acme webhooks/);
  });

  await check("a bad URL shows the URL policy's message on the field", async () => {
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.getByLabel("URL", { exact: true }).fill("http://169.254.169.254/latest/meta-data");
    await page.getByLabel("contact.created").check();
    await page.getByRole("button", { name: "Save" }).click();
    const err = page.locator("#f-url-error");
    await err.waitFor();
    assert.ok((await err.textContent()).length > 10);
    assert.equal(await page.getByLabel("URL", { exact: true }).getAttribute("aria-invalid"), "true");
  });

  await check("create a webhook named with markup; the secret is shown once", async () => {
    await page.getByLabel("URL", { exact: true }).fill(receiverUrl);
    await page.getByLabel("Name", { exact: true }).fill("<img src=x onerror=alert(1)>");
    await page.getByLabel("Format").selectOption("flat");
    await page.locator("#format-example").filter({ hasText: '"event"' }).waitFor();
    if (shots) await page.screenshot({ path: join(shots, "webhook-form.png"), fullPage: true });
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "<img src=x onerror=alert(1)>" }).waitFor();
    assert.match(await page.locator("#secret").textContent(), /^whsec_/);
    webhookUrl = page.url();
    assert.match(webhookUrl, /\/webhooks\/[0-9a-f-]{36}$/);
    assert.equal(await page.locator("img[src=x]").count(), 0);
  });

  await check("send a test: status, timings and the receiver's markup as text", async () => {
    await page.goto(webhookUrl);
    await page.getByRole("button", { name: "Send test" }).click();
    await page.getByRole("heading", { name: "Test delivered" }).waitFor();
    await page.getByText("HTTP 200").first().waitFor();
    const body = await page.locator("pre.body").first().textContent();
    assert.match(body, /<script>window.__pwned = 1/);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await page.getByText(/ttfb/).first().waitFor();
    if (shots) await page.screenshot({ path: join(shots, "webhook-detail.png"), fullPage: true });
  });

  let deliveryUrl;
  await check("a published event appears in the log without a reload", async () => {
    await page.goto(base + "/deliveries");
    const before = await page.locator("#delivery-rows tr").count();
    const r = await api(key, "POST", "/v1/events", {
      event_type: "contact.created",
      data: { id: "c-e2e", first_name: "Ada" },
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    await until("the new row", async () => (await page.locator("#delivery-rows tr").count()) > before);
    if (shots) await page.screenshot({ path: join(shots, "deliveries.png"), fullPage: true });
    await page.locator("#delivery-rows a").first().click();
    await page.getByRole("heading", { name: /Delivery/ }).waitFor();
    deliveryUrl = page.url();
  });

  await check("open the delivery: body as sent, attempts, resend links both ways", async () => {
    await until("the attempt", async () => {
      await page.goto(deliveryUrl);
      return (await page.locator(".attempt").count()) > 0;
    });
    assert.match(await page.locator("pre.body").first().textContent(), /"event":"contact.created"/);
    if (shots) await page.screenshot({ path: join(shots, "delivery.png"), fullPage: true });
    const sent = received;
    await page.getByRole("button", { name: "Resend" }).click();
    await page.getByText("Resent from").waitFor();
    await until("the resend to arrive", () => received > sent);
    await page.getByRole("link", { name: deliveryUrl.split("/").pop() }).click();
    await page.getByText("Resent as").waitFor();
  });

  await check("the catalog and the test-a-URL page", async () => {
    await page.goto(base + "/event-types");
    await page.getByRole("heading", { name: "deal.stage.changed" }).waitFor();
    await page.goto(base + "/test-url");
    await page.getByLabel("URL").fill("http://10.0.0.1/hook");
    await page.getByRole("button", { name: "Send test" }).click();
    await page.locator("#t-url-error").waitFor();
  });

  await check("375 px wide: no sideways scrolling", async () => {
    for (const path of ["/webhooks", "/deliveries", "/event-types", "/test-url", new URL(webhookUrl).pathname, new URL(deliveryUrl).pathname]) {
      await noSideScroll(page, path);
    }
  });

  await check("a portal link scoped to one webhook never shows another", async () => {
    const other = await api(key, "POST", "/v1/webhooks", {
      url: receiverUrl + "/other",
      events: ["deal.created"],
      name: "not for the customer",
    });
    assert.equal(other.status, 201);
    otherId = other.body.id;
    const mine = webhookUrl.split("/").pop();
    const minted = await api(key, "POST", "/v1/portal-sessions", {
      webhook_ids: [mine],
      capabilities: ["view", "resend"],
      expires_in: "1h",
    });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    const portal = await browser.newContext();
    const p = watch(await portal.newPage(), "portal");
    await p.goto(minted.body.url);
    await p.getByRole("heading", { name: "Webhooks" }).waitFor();
    assert.equal(await p.getByText("not for the customer").count(), 0);
    assert.equal(await p.locator(`a[href="/webhooks/${mine}"]`).count(), 1);
    const typed = await p.goto(`${base}/webhooks/${otherId}`);
    assert.equal(typed.status(), 404);
    const log = await p.goto(`${base}/deliveries?webhook_id=${otherId}`);
    assert.equal(log.status(), 200);
    assert.equal(await p.locator("#delivery-rows tr").count(), 0);
    // The link works once.
    const again = await (await browser.newContext()).newPage();
    assert.equal((await again.goto(minted.body.url)).status(), 401);
    if (shots) {
      await p.goto(`${base}/webhooks/${mine}`);
      await p.screenshot({ path: join(shots, "portal.png"), fullPage: true });
    }
    // Revoked: the session ends at once.
    assert.equal((await api(key, "DELETE", `/v1/portal-sessions/${minted.body.id}`)).status, 204);
    await p.goto(`${base}/webhooks`);
    await p.getByRole("button", { name: "Sign in" }).waitFor();
    await portal.close();
  });

  await check("a view-only portal can't resend", async () => {
    const minted = await api(key, "POST", "/v1/portal-sessions", { capabilities: ["view"] });
    const portal = await browser.newContext();
    const p = watch(await portal.newPage(), "view-only portal");
    await p.goto(minted.body.url);
    await p.goto(deliveryUrl);
    assert.equal(await p.getByRole("button", { name: "Resend" }).count(), 0);
    assert.equal(await p.getByRole("link", { name: "New webhook" }).count(), 0);
    // Posting the form by hand (with the session's own CSRF token) is refused too.
    const status = await p.evaluate(async (url) => {
      const csrf = document.querySelector("input[name=_csrf]").value;
      const r = await fetch(url + "/resend", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "_csrf=" + encodeURIComponent(csrf),
      });
      return r.status;
    }, deliveryUrl);
    assert.equal(status, 403);
    await portal.close();
  });

  await check("signing out ends the session", async () => {
    await page.goto(base + "/webhooks");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await page.goto(base + "/webhooks");
    await page.getByRole("button", { name: "Sign in" }).waitFor();
  });

  await check("no script errors and nothing executed on any page", async () => {
    assert.deepEqual(problems, []);
  });
  await ctx.close();
} catch (e) {
  failed++;
  console.log(`not ok - setup\n  ${e.stack ?? e}\n${output}`);
} finally {
  await browser.close();
  server.kill("SIGTERM");
  receiver.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`console-e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
