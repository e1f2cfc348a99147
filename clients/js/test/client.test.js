// The API against the real server: join, send, receive, members, typing,
// history, notifications, leave; and the backoff schedule.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient, backoffDelay, RealtimeError } from "../src/index.js";
import { TestServer, until, recorder, sleep } from "./helpers.js";

/** @type {TestServer} */
let server;
before(async () => {
  server = await TestServer.start({ config: "[typing]\ntimeout_ms = 1000\n" });
});
after(async () => {
  await server.stop();
});

function client(user, extra = {}) {
  return new RealtimeClient({ url: server.url, token: () => server.token(user), WebSocket, ...extra });
}

test("backoff is exponential, fully jittered and capped", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  // random() = 0.999…: the top of each window
  const top = (n) => backoffDelay(n, opts, () => 0.9999);
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(top), [99, 199, 399, 799, 999, 999]);
  // full jitter: the bottom of the window is 0, whatever the attempt
  assert.equal(backoffDelay(7, opts, () => 0), 0);
  // spread: 1000 draws at attempt 3 cover the window [0, 800)
  const draws = Array.from({ length: 1000 }, () => backoffDelay(3, opts));
  assert.ok(Math.min(...draws) < 100 && Math.max(...draws) > 700 && Math.max(...draws) < 800);
});

test("send, receive in order, members, history, typing, leave", async () => {
  const alice = client("alice");
  const bob = client("bob");
  await alice.connect();
  assert.equal(alice.state, "connected");
  assert.equal(alice.userId, "alice");
  const ra = await alice.join("public:basic");
  const rb = await bob.join("public:basic"); // join() connects by itself
  const seenByBob = recorder(rb);
  const seenByAlice = recorder(ra);
  await until(() => ra.members.some((m) => m.userId === "bob"), "alice to see bob join");
  assert.deepEqual(
    rb.members.map((m) => m.userId),
    ["alice", "bob"],
  );

  const sent = [];
  for (let i = 1; i <= 5; i++) sent.push(ra.send(`hello ${i}`, { metadata: { i } }));
  const results = await Promise.all(sent);
  assert.deepEqual(
    results.map((r) => r.seq),
    [1, 2, 3, 4, 5],
  );
  assert.ok(results.every((r) => typeof r.messageId === "string" && typeof r.timestamp === "string"));
  await until(() => seenByBob.length === 5 && seenByAlice.length === 5, "both to get 5 messages");
  assert.deepEqual(
    seenByBob.map((m) => [m.seq, m.content, m.metadata.i, m.userId]),
    [1, 2, 3, 4, 5].map((i) => [i, `hello ${i}`, i, "alice"]),
  );
  assert.equal(ra.lastSeq, 5);

  // history: newest first, across pages
  const older = [];
  for await (const m of rb.history({ pageSize: 2 })) older.push(m.seq);
  assert.deepEqual(older, [5, 4, 3, 2, 1]);
  const before3 = [];
  for await (const m of rb.history({ before: 3 })) before3.push(m.seq);
  assert.deepEqual(before3, [2, 1]);

  // typing: bob sees alice typing, then not (it stops by itself)
  const typingSeen = [];
  rb.on("typing", (t) => typingSeen.push(t.users.join(",")));
  ra.typing();
  ra.typing(); // throttled: one typing:start
  await until(() => rb.typingUsers.includes("alice"), "bob to see alice typing");
  await until(() => rb.typingUsers.length === 0, "alice's typing to stop by itself", 6000);
  assert.deepEqual(typingSeen, ["alice", ""]);

  // leave: bob's list loses alice; alice's sends now fail with LEFT
  await ra.leave();
  await until(() => !rb.members.some((m) => m.userId === "alice"), "bob to see alice leave");
  await assert.rejects(ra.send("after leave"), (e) => e instanceof RealtimeError && e.code === "LEFT");
  assert.equal(alice.room("public:basic"), undefined);

  await alice.close();
  await bob.close();
  assert.equal(alice.state, "closed");
});

test("presence changes reach the member list", async () => {
  const alice = client("alice");
  const bob = client("bob");
  const ra = await alice.join("public:presence");
  const rb = await bob.join("public:presence");
  await until(() => ra.members.some((m) => m.userId === "bob"), "bob in alice's list");
  await bob.setPresence("busy", { text: "focus" });
  await until(() => ra.members.find((m) => m.userId === "bob")?.status === "busy", "bob busy in alice's list");
  assert.equal(ra.members.find((m) => m.userId === "bob").customStatus.text, "focus");
  assert.ok(rb.members.length === 2);
  await alice.close();
  await bob.close();
});

test("a refused join rejects, and the client stays usable", async () => {
  const carol = new RealtimeClient({ url: server.url, token: server.token("carol", { rooms: ["team:1:*"] }), WebSocket });
  await assert.rejects(carol.join("team:2:x"), (e) => e.code === "FORBIDDEN");
  const room = await carol.join("team:1:x");
  const r = await room.send("still fine");
  assert.equal(r.seq, 1);
  await carol.close();
});

test("notifications: unread ones after connect, live ones, each once", async () => {
  const { notificationId } = await server.admin("POST", "/admin/notify", { userId: "dora", title: "while away", body: "b" });
  const dora = client("dora");
  const got = [];
  dora.on("notification", (n) => got.push(n.title));
  await dora.connect();
  await until(() => got.length === 1, "the unread notification");
  await server.admin("POST", "/admin/notify", { userId: "dora", title: "live", body: "" });
  await until(() => got.length === 2, "the live notification");
  assert.deepEqual(got, ["while away", "live"]);
  await dora.markNotificationRead(notificationId);
  await sleep(50);
  assert.equal(got.length, 2);
  await dora.close();
});

test("the message lifecycle: edit, delete and read, seen by another member", async () => {
  const erin = client("erin");
  const fay = client("fay");
  try {
    await erin.connect();
    await fay.connect();
    const room = await erin.join("public:v2");
    const other = await fay.join("public:v2");
    const updates = [];
    const deletes = [];
    other.on("update", (u) => updates.push(u));
    other.on("delete", (d) => deletes.push(d));
    const { messageId, seq } = await room.send("v2");
    const edited = await room.edit(messageId, "edited");
    assert.equal(edited.messageId, messageId);
    assert.ok(edited.editedAt, "editedAt");
    await until(() => updates.length === 1, "the update");
    assert.equal(updates[0].messageId, messageId);
    assert.equal(updates[0].content, "edited");
    // Only the author may edit: another member is refused, with the code.
    await assert.rejects(other.edit(messageId, "mine now"), (e) => e instanceof RealtimeError && e.code === "FORBIDDEN");
    await room.delete(messageId);
    await until(() => deletes.length === 1, "the delete");
    assert.equal(deletes[0].messageId, messageId);
    const read = await room.read(seq);
    assert.equal(read.lastReadSeq, seq);
  } finally {
    await erin.close();
    await fay.close();
  }
});
