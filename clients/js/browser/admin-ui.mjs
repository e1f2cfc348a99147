// The admin page (/admin/ui) in a real browser (playwright-core with the
// system's chromium), driven by tests/admin_ui.rs, which starts the server
// and a connected client and checks that client's side. Arguments:
//   node browser/admin-ui.mjs <http origin> <admin key> <user> <room>
// The page must refuse a wrong key, show the user's connection and room,
// and kick the user from its form; exits non-zero when anything fails.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const [origin, adminKey, user, room] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) {
  throw new Error(`no chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.setDefaultTimeout(20_000);
  await page.goto(`${origin}/admin/ui`);

  // A wrong key is refused, and the admin part stays hidden.
  await page.locator("#key").fill("not-the-admin-key");
  await page.locator("#login button").click();
  await page.locator("#error", { hasText: "401" }).waitFor();
  assert.ok(await page.locator("#app").isHidden(), "the app shows after a refused key");
  console.log("refused a wrong key:", await page.locator("#error").textContent());

  // The right key: the connected client, its room, and the room's presence.
  await page.locator("#key").fill(adminKey);
  await page.locator("#login button").click();
  await page.locator("#app").waitFor();
  const conn = page.locator("#connections tbody tr", { hasText: user });
  await conn.waitFor();
  assert.match(await conn.textContent(), new RegExp(room));
  const roomRow = page.locator("#rooms tbody tr", { hasText: room }).first();
  await roomRow.waitFor();
  await roomRow.locator("button").click();
  await page.locator("#presence tbody tr", { hasText: user }).waitFor();
  console.log("shows", user, "in", room);

  // The audit log lists the connection.
  await page.locator("#audit tbody tr", { hasText: "connect" }).first().waitFor();

  // A managed room made and filled from the forms.
  await page.locator("#room-create [name=room]").fill("ui-made");
  await page.locator("#room-create button").click();
  await page.locator("#result", { hasText: '"room": "ui-made"' }).waitFor();
  await page.locator("#member [name=room]").fill("ui-made");
  await page.locator("#member [name=userId]").fill("carol");
  await page.locator("#member button[value=put]").click();
  await page.locator("#members tbody tr", { hasText: "carol" }).waitFor();
  console.log("made room ui-made with member carol");

  // Kick from the form.
  await page.locator("#kick [name=userId]").fill(user);
  await page.locator("#kick [name=reason]").fill("kicked from the admin page");
  await page.locator("#kick button").click();
  await page.locator("#result", { hasText: '"disconnected": 1' }).waitFor();
  await page.locator("#connections tbody tr", { hasText: user }).waitFor({ state: "detached" });
  console.log("kicked", user);

  assert.deepEqual(errors, []);
} finally {
  await browser.close();
}
