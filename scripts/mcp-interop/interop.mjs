// Hookline's MCP server driven by a client nobody here wrote: the official TypeScript SDK.
//
//   node interop.mjs /path/to/hookline
//
// Starts `hookline serve` on a temporary SQLite database (loopback receivers allow-listed), a
// receiver on 127.0.0.1, and then, over streamable HTTP and over stdio (`hookline mcp`), checks:
// initialize, list tools, create a webhook pointed at the receiver, publish, find the delivery
// with searchTerm (by event name and by URL), resend it and see it arrive twice, and a tool error
// for a metadata-address URL. All traffic stays on 127.0.0.1. Exits non-zero on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const binary = process.argv[2];
if (!binary) {
  console.error("usage: node interop.mjs /path/to/hookline");
  process.exit(2);
}

const TOOLS = [
  "create_webhook", "delete_webhook", "erase_record", "get_entities", "get_erasure", "get_job", "get_webhook", "get_webhook_delivery",
  "list_event_types", "list_webhook_deliveries", "list_webhooks", "publish_event",
  "replay_webhook_deliveries", "resend_webhook_delivery", "rotate_webhook_secret",
  "send_test_event", "test_webhook_filter", "update_webhook", "verify_receiver",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, check, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// A receiver on loopback that records every request per path.
const seen = new Map();
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const list = seen.get(req.url) ?? [];
    list.push({ headers: req.headers, body });
    seen.set(req.url, list);
    res.writeHead(200).end("ok");
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const receiverBase = `http://127.0.0.1:${receiver.address().port}`;

// The server, with a fresh database; its first start prints the bootstrap key.
const dir = mkdtempSync(join(tmpdir(), "hookline-mcp-"));
const port = 20000 + Math.floor(Math.random() * 20000);
const server = spawn(binary, ["serve", "--listen", `127.0.0.1:${port}`], {
  env: {
    ...process.env,
    HOOKLINE_DATABASE_URL: `sqlite://${join(dir, "hookline.db")}`,
    HOOKLINE_ALLOW_TARGETS: "127.0.0.1/32",
    HOOKLINE_ALLOW_HTTP: "true",
    HOOKLINE_LOG: "warn",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
server.stdout.on("data", (d) => (output += d));
server.stderr.on("data", (d) => (output += d));
const stopAll = () => {
  server.kill("SIGTERM");
  receiver.close();
  rmSync(dir, { recursive: true, force: true });
};
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
    console.log(`not ok - ${name}\n  ${e.stack ?? e}`);
  }
}

try {
  const key = await until("the bootstrap key", () => output.match(/hk_[A-Za-z0-9_-]+/)?.[0]);
  const base = `http://127.0.0.1:${port}`;
  await until("the server", async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok);

  const transports = {
    http: () =>
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } },
      }),
    stdio: () =>
      new StdioClientTransport({
        command: binary,
        args: ["mcp", "--url", base],
        env: { HOOKLINE_API_KEY: key },
        stderr: "inherit",
      }),
  };

  for (const [name, make] of Object.entries(transports)) {
    const client = new Client({ name: "hookline-interop", version: "1.0.0" });
    await check(`${name}: initialize`, async () => {
      await client.connect(make());
      assert.equal(client.getServerVersion()?.name, "hookline");
      assert.match(client.getInstructions() ?? "", /list_webhook_deliveries/);
    });
    await check(`${name}: list tools with schemas and annotations`, async () => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      for (const t of tools) {
        assert.equal(t.inputSchema.type, "object", t.name);
        assert.ok(t.outputSchema, `${t.name} has an output schema`);
        assert.equal(typeof t.annotations?.readOnlyHint, "boolean", t.name);
      }
    });
    const path = `/hook-${name}`;
    let webhookId;
    await check(`${name}: create a webhook`, async () => {
      const r = await client.callTool({
        name: "create_webhook",
        arguments: { url: receiverBase + path, events: ["contact.created"], name: `interop ${name}` },
      });
      assert.equal(r.isError, false, JSON.stringify(r.content));
      webhookId = r.structuredContent.id;
      assert.ok(webhookId);
      assert.match(r.structuredContent.secret, /^whsec_/);
    });
    let deliveryId;
    await check(`${name}: publish and receive`, async () => {
      const r = await client.callTool({
        name: "publish_event",
        arguments: { eventType: "contact.created", data: { id: `c-${name}`, first_name: "Ada" } },
      });
      assert.equal(r.isError, false, JSON.stringify(r.content));
      await until("the first delivery", () => seen.get(path)?.length === 1);
    });
    await check(`${name}: find the delivery by event name and by URL`, async () => {
      for (const searchTerm of ["contact.created", path]) {
        const r = await client.callTool({
          name: "list_webhook_deliveries",
          arguments: { searchTerm, webhookId },
        });
        assert.equal(r.isError, false, JSON.stringify(r.content));
        assert.equal(r.structuredContent.deliveries.length, 1, searchTerm);
        deliveryId = r.structuredContent.deliveries[0].id;
      }
      const none = await client.callTool({
        name: "list_webhook_deliveries",
        arguments: { searchTerm: "deal.stage.changed", webhookId },
      });
      assert.equal(none.structuredContent.deliveries.length, 0);
    });
    await check(`${name}: resend and see it arrive twice`, async () => {
      const r = await client.callTool({ name: "resend_webhook_delivery", arguments: { id: deliveryId } });
      assert.equal(r.isError, false, JSON.stringify(r.content));
      assert.equal(r.structuredContent.resent_from, deliveryId);
      await until("the resend", () => seen.get(path)?.length === 2);
      const detail = await client.callTool({ name: "get_webhook_delivery", arguments: { id: deliveryId } });
      assert.equal(detail.structuredContent.attempts[0].status_code, 200);
    });
    await check(`${name}: a metadata address is a tool error naming url`, async () => {
      const r = await client.callTool({
        name: "create_webhook",
        arguments: { url: "http://169.254.169.254/latest/meta-data", events: ["contact.created"] },
      });
      assert.equal(r.isError, true);
      const err = JSON.parse(r.content[0].text).error;
      assert.equal(err.field, "url");
      assert.ok(err.code && err.message, JSON.stringify(err));
    });
    await client.close();
  }

  await check("http: a request without a key is refused with 401", async () => {
    const client = new Client({ name: "hookline-interop", version: "1.0.0" });
    await assert.rejects(
      client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`))),
      (e) => e.code === 401 || /401/.test(String(e)),
    );
  });
} catch (e) {
  failed++;
  console.log(`not ok - setup\n  ${e.stack ?? e}\n${output}`);
} finally {
  stopAll();
}
console.log(`mcp-interop: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
