// The message lifecycle against the real server, across disconnects: edits
// and deletions made while a client is away reach it once (from the
// rejoin's `changed`), also after a SIGKILL and restart of the server; read
// positions reach the user's other connections; replies and kinds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient, RealtimeError } from "../src/index.js";
import { TestServer, until, recorder, controllableNetwork } from "./helpers.js";

const fast = { initialMs: 50, maxMs: 400 };

test("edits and deletions made while away (socket cut, then server SIGKILLed and restarted) arrive once", async () => {
  const server = await TestServer.start();
  const net = controllableNetwork();
  const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket, backoff: fast });
  const bob = new RealtimeClient({ url: server.url, token: () => server.token("bob"), WebSocket: net.WebSocket, backoff: fast });
  try {
    const ra = await alice.join("public:changes");
    const rb = await bob.join("public:changes");
    const seen = recorder(rb);
    const updates = [];
    const deletes = [];
    rb.on("update", (u) => updates.push([u.messageId, u.content]));
    rb.on("delete", (d) => deletes.push([d.messageId, d.deletedBy]));
    const m = [];
    for (const text of ["one", "two", "three", "four"]) m.push((await ra.send(text)).messageId);
    await until(() => seen.length === 4, "bob to see four messages");
    // Seen live before the cut: `changed` will carry it again, the app must not.
    await ra.edit(m[0], "one, edited while bob was here");
    await until(() => updates.length === 1, "the live update");

    net.offline = true;
    net.cut();
    await until(() => bob.state === "reconnecting", "bob to notice the cut");
    await ra.edit(m[1], "two, edited while bob was away");
    await ra.edit(m[1], "two, edited twice while bob was away");
    await ra.delete(m[2]);
    await ra.edit(m[3], "four, edited then deleted");
    await ra.delete(m[3]);
    const five = await ra.send("five");
    await ra.edit(five.messageId, "five, edited before bob saw it");

    // The changes are read from the database: a restart loses none.
    await server.kill();
    await server.restart();
    net.offline = false;
    await until(() => bob.state === "connected" && rb.joined, "bob to come back");
    await ra.send("six"); // after the rejoin's catch-up: once bob has it, everything before is applied
    await until(() => seen.length === 6, `bob to see six messages (saw ${seen.length})`);

    assert.deepEqual(updates, [
      [m[0], "one, edited while bob was here"],
      [m[1], "two, edited twice while bob was away"],
    ]);
    // (`deletedBy` is null: the stored message does not say who deleted it.)
    assert.deepEqual(deletes, [
      [m[2], null],
      [m[3], null],
    ]);
    // A message missed whole comes as it is now, with no update of its own.
    assert.equal(seen[4].content, "five, edited before bob saw it");
    assert.ok(seen[4].editedAt);
    const joins = net.sent.filter((f) => f.type === "room:join");
    assert.equal(joins.at(-1).since, 4);
  } finally {
    await alice.close();
    await bob.close();
    await server.stop();
  }
});

test("room.read(seq) on one connection reaches the user's other connections", async () => {
  const server = await TestServer.start();
  const phone = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  const laptop = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  const tablet = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  try {
    const onPhone = await phone.join("public:read");
    const onLaptop = await laptop.join("public:read");
    await tablet.connect(); // not in the room: the client-level event
    for (let i = 0; i < 3; i++) await onPhone.send(`m${i}`);
    const laptopReads = [];
    onLaptop.on("read", (r) => laptopReads.push(r.lastReadSeq));
    const tabletReads = [];
    tablet.on("read", (r) => tabletReads.push([r.room, r.lastReadSeq]));
    const phoneReads = [];
    onPhone.on("read", (r) => phoneReads.push(r.lastReadSeq));

    assert.equal(onPhone.lastRead, null);
    assert.deepEqual(await onPhone.read(2), { lastReadSeq: 2 });
    assert.equal(onPhone.lastRead, 2);
    await until(() => laptopReads.length === 1 && tabletReads.length === 1, "the read event on the other connections");
    assert.deepEqual(laptopReads, [2]);
    assert.deepEqual(tabletReads, [["public:read", 2]]);
    assert.equal(onLaptop.lastRead, 2);

    // It never goes back: a lower seq answers the stored position, and the
    // event still goes out, with that position.
    assert.deepEqual(await onLaptop.read(1), { lastReadSeq: 2 });
    await until(() => phoneReads.length === 1, "the phone to get the laptop's read");
    assert.deepEqual(phoneReads, [2]);
    assert.equal(onPhone.lastRead, 2);
    assert.deepEqual(laptopReads, [2], "the connection that read gets its reply, not the event");
  } finally {
    await phone.close();
    await laptop.close();
    await tablet.close();
    await server.stop();
  }
});

test("send with replyTo and kind: other members and history show them; bad ones are refused", async () => {
  const server = await TestServer.start();
  const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  const bob = new RealtimeClient({ url: server.url, token: () => server.token("bob"), WebSocket });
  try {
    const ra = await alice.join("public:replies");
    const rb = await bob.join("public:replies");
    const seen = recorder(rb);
    const question = await ra.send("lunch?");
    const answer = await rb.send("cat.png", { replyTo: question.messageId, kind: "image", metadata: { url: "https://x/cat.png" } });
    await until(() => seen.length === 2, "bob's own messages");
    assert.deepEqual(
      seen.map((m) => [m.content, m.replyTo, m.kind]),
      [
        ["lunch?", null, "text"],
        ["cat.png", question.messageId, "image"],
      ],
    );
    const history = [];
    // (`before` given: alice's own copy of bob's answer may still be on its way.)
    for await (const m of ra.history({ before: answer.seq + 1 })) history.push(m);
    assert.deepEqual(
      history.map((m) => [m.seq, m.replyTo, m.kind, m.metadata?.url ?? null]),
      [
        [answer.seq, question.messageId, "image", "https://x/cat.png"],
        [question.seq, null, "text", null],
      ],
    );
    await assert.rejects(ra.send("to nothing", { replyTo: "no-such-message" }), (e) => e instanceof RealtimeError && e.code === "NOT_FOUND");
    await assert.rejects(ra.send("forged", { kind: "system" }), (e) => e instanceof RealtimeError && e.code === "FORBIDDEN");
    await assert.rejects(ra.send("odd", { kind: "hologram" }), (e) => e instanceof RealtimeError && e.code === "BAD_REQUEST");
    assert.equal(ra.unsettled, 0);
    // Nothing of the refused ones was stored.
    assert.equal((await ra.send("next")).seq, answer.seq + 1);
  } finally {
    await alice.close();
    await bob.close();
    await server.stop();
  }
});
