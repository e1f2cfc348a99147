// The /graphql endpoint with a real GraphQL client (graphql-ws) against
// two real server nodes sharing Redis and a database. Run by
// tests/graphql.rs, which starts the nodes and mints the tokens; run alone,
// it fails for want of them.

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { createClient } from "graphql-ws";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through \`cargo test --test graphql\``);
  return value;
}

const NODE_A = env("GQL_NODE_A");
const NODE_B = env("GQL_NODE_B");
const ROOM = env("GQL_ROOM");
const ALICE = env("GQL_TOKEN_ALICE");
const BOB = env("GQL_TOKEN_BOB");
const EVE = env("GQL_TOKEN_EVE");
const SHORT = env("GQL_TOKEN_SHORT");
const ADMIN_KEY = env("GQL_ADMIN_KEY");

/** `promise`, or a failure after 20 s: an event that must come. */
function within(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not come within 20 s`)), 20000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const wsUrl = (base, path) => base.replace(/^http/, "ws") + path;

function client(base, connectionParams, on = {}) {
  return createClient({
    url: wsUrl(base, "/graphql"),
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    lazy: false,
    on,
    onNonLazyError: () => {},
  });
}

/** The socket's close code, once the server closes it (a subscription
 * keeps it open until then). */
function closedWith(base, connectionParams) {
  return new Promise((resolve, reject) => {
    const c = createClient({
      url: wsUrl(base, "/graphql"),
      webSocketImpl: WebSocket,
      connectionParams,
      retryAttempts: 0,
    });
    c.subscribe(
      { query: "subscription { notificationReceived { title } }" },
      {
        next: () => {},
        error: (event) => {
          resolve(event.code);
          c.dispose();
        },
        complete: () => reject(new Error("the subscription completed instead of closing")),
      },
    );
  });
}

async function post(base, token, query, variables = {}) {
  const res = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

/** Waits until `user` is a member of `room` as node `base` sees it. */
async function waitForMember(base, token, room, user) {
  for (let i = 0; i < 200; i++) {
    const { data } = await post(
      base,
      token,
      "query($room: String!) { presence(room: $room) { members { userId } } }",
      { room },
    );
    if (data?.presence.members.some((m) => m.userId === user)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${user} never showed as a member of ${room} on ${base}`);
}

/** Alice's subscription (`request`) on node A, live once node B lists her
 * in `room` (asked with `token`): her client, the events, and the first
 * event's promise (asked for before anything is sent). */
async function subscribedOnA(request, room, token = BOB) {
  const alice = client(NODE_A, { token: ALICE });
  const events = alice.iterate(request);
  const first = events.next();
  await waitForMember(NODE_B, token, room, "alice");
  return { alice, events, first };
}

/** A /ws client: `request(frame)` sends a command and resolves with its
 * reply (or error). */
async function wsSession(base, token) {
  const ws = new WebSocket(wsUrl(base, "/ws"), { headers: { authorization: `Bearer ${token}` } });
  const waiting = new Map();
  ws.on("message", (raw) => {
    const frame = JSON.parse(raw.toString());
    if (frame.type === "reply" || frame.type === "error") {
      const done = waiting.get(frame.id);
      if (done) done(frame);
    }
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const request = (frame) =>
    new Promise((resolve) => {
      waiting.set(frame.id, resolve);
      ws.send(JSON.stringify(frame));
    });
  return { request, close: () => ws.close() };
}

/** A /ws client: connects, joins `room`, sends `content` (with `metadata`,
 * if given), waits for the reply. */
async function sendOverWs(base, token, room, content, metadata) {
  const { request, close } = await wsSession(base, token);
  const joined = await request({ type: "room:join", id: "j", room });
  assert.equal(joined.type, "reply", JSON.stringify(joined));
  const sent = await request({ type: "message:send", id: "s", room, content, metadata });
  assert.equal(sent.type, "reply", JSON.stringify(sent));
  close();
  return sent.data;
}

/** An admin API call on node `base`; resolves with [status, body]. */
async function admin(base, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_KEY}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return [res.status, await res.json()];
}

test("a subscription on one node receives messages sent on the other, over /ws and by mutation", async () => {
  // The subscriber is a member of the room, on the other node too.
  const { alice, events: messages, first } = await subscribedOnA({
    query: `subscription($room: String!) {
      messageAdded(room: $room) {
        messageId seq room userId content threadId replyTo kind metadata timestamp editedAt deleted
      }
    }`,
    variables: { room: ROOM },
  }, ROOM);

  const wsMetadata = { source: "ws", tags: ["a", "b"], n: 1 };
  const overWs = await sendOverWs(NODE_B, BOB, ROOM, "sent over /ws", wsMetadata);
  const gqlMetadata = { source: "graphql", nested: { ok: true } };
  const { data, errors } = await post(
    NODE_B,
    BOB,
    `mutation($room: String!, $metadata: JSON) {
      sendMessage(room: $room, content: "sent by mutation", threadId: "t1", metadata: $metadata) {
        messageId seq timestamp
      }
    }`,
    { room: ROOM, metadata: gqlMetadata },
  );
  assert.equal(errors, undefined, JSON.stringify(errors));

  const one = (await within(first, "the message sent over /ws")).value.data.messageAdded;
  const two = (await within(messages.next(), "the message sent by mutation")).value.data.messageAdded;
  assert.deepEqual(
    [one.content, one.userId, one.room, one.messageId, one.seq],
    ["sent over /ws", "bob", ROOM, overWs.messageId, overWs.seq],
  );
  assert.deepEqual(
    [two.content, two.userId, two.messageId, two.seq, two.threadId],
    ["sent by mutation", "bob", data.sendMessage.messageId, data.sendMessage.seq, "t1"],
  );
  assert.equal(two.seq, one.seq + 1);
  // The metadata crossed the nodes with each message.
  assert.deepEqual(one.metadata, wsMetadata);
  assert.deepEqual(two.metadata, gqlMetadata);
  assert.equal(two.kind, "text");
  assert.equal(two.deleted, false);

  // Recovery: a new subscription with `since` gets what came after it.
  const again = alice.iterate({
    query: "subscription($room: String!, $since: Int) { messageAdded(room: $room, since: $since) { content seq } }",
    variables: { room: ROOM, since: one.seq },
  });
  const recovered = (await within(again.next(), "the recovered message")).value.data.messageAdded;
  assert.deepEqual(recovered, { content: "sent by mutation", seq: two.seq });
  await again.return();
  await messages.return();
  await alice.dispose();
});

test("edits and deletions reach messageChanged on the other node", async () => {
  const { alice, events: changes, first } = await subscribedOnA({
    query: `subscription($room: String!) {
      messageChanged(room: $room) { room messageId seq deleted content editedAt deletedBy }
    }`,
    variables: { room: ROOM },
  }, ROOM);
  const sent = await post(NODE_B, BOB, `mutation($room: String!) { sendMessage(room: $room, content: "draft") { messageId } }`, { room: ROOM });
  const id = sent.data.sendMessage.messageId;
  const edited = await post(NODE_B, BOB, `mutation($room: String!, $id: String!) {
    editMessage(room: $room, messageId: $id, content: "final") { content editedAt } }`, { room: ROOM, id });
  assert.equal(edited.data.editMessage.content, "final");
  const e = (await within(first, "the edit")).value.data.messageChanged;
  assert.deepEqual([e.messageId, e.deleted, e.content], [id, false, "final"]);
  await post(NODE_B, BOB, `mutation($room: String!, $id: String!) {
    deleteMessage(room: $room, messageId: $id) { deleted } }`, { room: ROOM, id });
  const d = (await within(changes.next(), "the deletion")).value.data.messageChanged;
  assert.deepEqual([d.messageId, d.deleted, d.deletedBy], [id, true, "bob"]);
  await changes.return();
  await alice.dispose();
});

test("a forbidden room is refused with FORBIDDEN, the socket stays open", async () => {
  const eve = client(NODE_A, { token: EVE });
  const sub = eve.iterate({
    query: "subscription($room: String!) { messageAdded(room: $room) { content } }",
    variables: { room: ROOM },
  });
  // An error in the field is a result with `errors`, then the end.
  const refused = await within(sub.next(), "the refusal");
  assert.equal(refused.value.errors[0].extensions.code, "FORBIDDEN", JSON.stringify(refused.value));
  assert.equal((await sub.next()).done, true);
  // The same socket still answers: her own notifications are hers.
  const ok = await new Promise((resolve, reject) => {
    eve.subscribe(
      { query: "query { notifications { notifications { notificationId } next } }" },
      { next: resolve, error: reject, complete: () => {} },
    );
  });
  assert.deepEqual(ok.data.notifications, { notifications: [], next: null });
  await eve.dispose();
});

test("a bad or missing token closes the socket with 4001", async () => {
  assert.equal(await closedWith(NODE_A, { token: "not-a-token" }), 4001);
  assert.equal(await closedWith(NODE_B, {}), 4001);
});

test("the socket closes with 4001 when its token expires", async () => {
  assert.equal(await closedWith(NODE_A, { token: SHORT }), 4001);
});

test("presence changes reach presenceChanged across nodes", async () => {
  const { alice, events: presence, first } = await subscribedOnA({
    query: "subscription($room: String!) { presenceChanged(room: $room) { kind room userId } }",
    variables: { room: ROOM },
  }, ROOM);
  // Carol joins over /ws on the other node (and sends, then leaves).
  const CAROL = env("GQL_TOKEN_CAROL");
  await sendOverWs(NODE_B, CAROL, ROOM, "hello from carol");
  // Other users' comings and goings (earlier tests') may come first.
  let event = (await within(first, "a presence event")).value.data.presenceChanged;
  while (event.userId !== "carol") event = (await within(presence.next(), "carol joining")).value.data.presenceChanged;
  assert.deepEqual(event, { kind: "joined", room: ROOM, userId: "carol" });
  await presence.return();
  await alice.dispose();
});

test("typing over /ws on one node reaches typing on the other", async () => {
  const { alice, events: typing, first } = await subscribedOnA({
    query: "subscription($room: String!) { typing(room: $room) { room threadId users } }",
    variables: { room: ROOM },
  }, ROOM);
  const bob = await wsSession(NODE_B, BOB);
  const joined = await bob.request({ type: "room:join", id: "j", room: ROOM });
  assert.equal(joined.type, "reply", JSON.stringify(joined));
  const started = await bob.request({ type: "typing:start", id: "t", room: ROOM });
  assert.equal(started.type, "reply", JSON.stringify(started));
  const event = (await within(first, "bob typing")).value.data.typing;
  assert.deepEqual(event, { room: ROOM, threadId: null, users: ["bob"] });
  bob.close();
  await typing.return();
  await alice.dispose();
});

test("POST /admin/notify on one node reaches notificationReceived on the other", async () => {
  // The subscription is live once alice's personal room has her on node B.
  const { alice, events: received, first } = await subscribedOnA({
    query: "subscription { notificationReceived { notificationId kind title body data readAt } }",
  }, "user:alice", ALICE);
  const [status, sent] = await admin(NODE_B, "POST", "/admin/notify", {
    userId: "alice",
    kind: "warning",
    title: "over graphql",
    body: "from node b",
    data: { n: 7 },
  });
  assert.ok(status < 300, JSON.stringify(sent));
  // Unread ones from before may be replayed first.
  let n = (await within(first, "the notification")).value.data.notificationReceived;
  while (n.title !== "over graphql") n = (await within(received.next(), "the notification")).value.data.notificationReceived;
  assert.deepEqual(
    [n.kind, n.body, n.data, n.readAt],
    ["warning", "from node b", { n: 7 }, null],
  );
  assert.equal(typeof n.notificationId, "string");
  await received.return();
  await alice.dispose();
});

test("PATCH /admin/rooms/{room} on one node reaches roomUpdated on the other", async () => {
  const room = `${ROOM}:managed`;
  const [created, body] = await admin(NODE_B, "POST", "/admin/rooms", {
    room,
    members: [{ userId: "alice" }],
  });
  assert.equal(created, 201, JSON.stringify(body));
  const { alice, events: updates, first } = await subscribedOnA({
    query: "subscription($room: String!) { roomUpdated(room: $room) { kind room data } }",
    variables: { room },
  }, room, ALICE);
  const [status, patched] = await admin(NODE_B, "PATCH", `/admin/rooms/${encodeURIComponent(room)}`, {
    title: "Renamed",
    metadata: { topic: "graphql" },
  });
  assert.equal(status, 200, JSON.stringify(patched));
  const event = (await within(first, "room:updated")).value.data.roomUpdated;
  assert.equal(event.kind, "room:updated", JSON.stringify(event));
  assert.equal(event.room, room);
  assert.deepEqual([event.data.title, event.data.metadata], ["Renamed", { topic: "graphql" }]);
  await updates.return();
  await alice.dispose();
});
