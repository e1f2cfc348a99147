// The demo page in a real browser (playwright-core with the system's
// chromium): two pages chat; one goes offline and back and shows what it
// missed, once and in order. The server runs in its development mode (no
// JWT key), the only mode with /demo.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { TestServer, tcpProxy } from "../test/helpers.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

let server;
let browser;
before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  server = await TestServer.start({ env: { REALTIME_JWT_SECRET: undefined } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Opens the demo page as `user`, through `proxy` when given. */
async function open(user, proxy) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[${user}] page error:`, e));
  const origin = proxy ? `http://127.0.0.1:${proxy.port}` : server.http;
  await page.goto(`${origin}/demo?user=${user}&room=chat`);
  await page.locator("#state", { hasText: "connected" }).waitFor();
  return { context, page };
}

const texts = (page) => page.locator("#messages li .text").allTextContents();

async function say(page, text) {
  await page.locator("#input").fill(text);
  await page.locator("#input").press("Enter");
}

test("two pages chat; one goes offline and back and shows what it missed", async () => {
  const alice = await open("alice");
  // Bob's page reaches the server through a proxy that can lose the network.
  const bobsNetwork = await tcpProxy(server.port);
  const bob = await open("bob", bobsNetwork);

  // Who is online, on both pages.
  for (const { page } of [alice, bob]) {
    await page.locator("#members li", { hasText: "alice" }).waitFor();
    await page.locator("#members li", { hasText: "bob" }).waitFor();
  }

  await say(alice.page, "hello from alice");
  await bob.page.locator("#messages li", { hasText: "hello from alice" }).waitFor();
  await say(bob.page, "hi alice");
  await alice.page.locator("#messages li", { hasText: "hi alice" }).waitFor();

  // Typing shows on the other page.
  await alice.page.locator("#input").pressSequentially("typ");
  await bob.page.locator("#typing", { hasText: "alice is typing" }).waitFor();

  // Bob goes offline: alice goes on talking, and bob's page shows it all
  // once he is back. Chromium's emulated offline mode leaves an open
  // WebSocket alone, so the proxy also cuts bob's connections and refuses
  // new ones, as a real network loss would.
  await bob.context.setOffline(true);
  bobsNetwork.offline = true;
  bobsNetwork.cut();
  await bob.page.locator("#state", { hasText: "reconnecting" }).waitFor();
  for (const text of ["while you were away 1", "while you were away 2", "while you were away 3"]) {
    await say(alice.page, text);
  }
  await alice.page.locator("#messages li", { hasText: "while you were away 3" }).waitFor();
  // Bob also writes while offline: sent once he is back.
  await say(bob.page, "written offline");
  await bob.context.setOffline(false);
  bobsNetwork.offline = false;
  await bob.page.locator("#messages li", { hasText: "while you were away 3" }).waitFor({ timeout: 30000 });
  await alice.page.locator("#messages li", { hasText: "written offline" }).waitFor({ timeout: 30000 });

  const expected = ["hello from alice", "hi alice", "while you were away 1", "while you were away 2", "while you were away 3", "written offline"];
  await bob.page.locator("#messages li", { hasText: "written offline" }).waitFor();
  assert.deepEqual(await texts(bob.page), expected);
  assert.deepEqual(await texts(alice.page), expected);
  const seqs = await bob.page.locator("#messages li").evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6]);

  // A page opened later shows the history.
  const carol = await open("carol");
  await carol.page.locator("#messages li", { hasText: "written offline" }).waitFor();
  assert.deepEqual(await texts(carol.page), expected);
  bobsNetwork.close();
});
