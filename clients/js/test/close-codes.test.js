// Close codes decide, against the real server: a kick (4003) stops; a
// restart (SIGTERM, 1001) reconnects; token expiry: refreshed in time with
// auth:refresh, or closed with 4001 and reconnected with a new token.

import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient, RealtimeError, jwtExpiry } from "../src/index.js";
import { TestServer, until, recorder, sleep, controllableNetwork } from "./helpers.js";

const fast = { initialMs: 50, maxMs: 400 };

test("a kick (4003) stops the client: no reconnect, a state event, sends rejected", async () => {
  const server = await TestServer.start();
  try {
    const net = controllableNetwork();
    const mallory = new RealtimeClient({ url: server.url, token: () => server.token("mallory"), WebSocket: net.WebSocket, backoff: fast });
    const states = [];
    mallory.on("state", (s) => states.push(s));
    const room = await mallory.join("public:kick");
    net.freeze(); // the send below stays unanswered until the kick
    const pending = room.send("never acknowledged");
    pending.catch(() => {}); // asserted below
    await sleep(50);
    net.frozen = false;
    await server.admin("POST", "/admin/kick", { userId: "mallory", reason: "behave" });
    await until(() => mallory.state === "stopped", "the client to stop");
    const last = states.at(-1);
    assert.equal(last.code, 4003);
    assert.equal(last.reason, "behave");
    await assert.rejects(pending, (e) => e instanceof RealtimeError && e.code === "STOPPED");
    await sleep(800);
    assert.equal(net.opened, 1, "no reconnection after a kick");
    await assert.rejects(mallory.connect(), (e) => e.code === "STOPPED");
    await mallory.close();
  } finally {
    await server.stop();
  }
});

test("a restart (SIGTERM, 1001) reconnects and rejoins; sends made meanwhile settle", async () => {
  const server = await TestServer.start();
  try {
    const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket, backoff: fast });
    const bob = new RealtimeClient({ url: server.url, token: () => server.token("bob"), WebSocket, backoff: fast });
    const ra = await alice.join("public:restart");
    const rb = await bob.join("public:restart");
    const seen = recorder(rb);
    await ra.send("one");
    const codes = [];
    alice.on("state", (s) => s.code !== undefined && codes.push(s.code));
    await server.terminate();
    await until(() => alice.state === "reconnecting", "alice to notice the restart");
    assert.equal(codes[0], 1001);
    const during = ra.send("two, sent while the server is down");
    await server.restart();
    const r = await during;
    assert.equal(r.seq, 2);
    await until(() => seen.length === 2, "bob to get both");
    assert.deepEqual(
      seen.map((m) => m.content),
      ["one", "two, sent while the server is down"],
    );
    await alice.close();
    await bob.close();
  } finally {
    await server.stop();
  }
});

test("a token about to expire is refreshed with auth:refresh: the connection stays", async () => {
  const server = await TestServer.start();
  try {
    let issued = 0;
    const net = controllableNetwork();
    const alice = new RealtimeClient({
      url: server.url,
      token: () => {
        issued++;
        return server.token("alice", { secs: 3 });
      },
      WebSocket: net.WebSocket,
      backoff: fast,
    });
    const states = [];
    alice.on("state", (s) => states.push(s.state));
    await alice.join("public:refresh");
    await sleep(5500); // past the first token's expiry (and the second's)
    assert.equal(alice.state, "connected");
    assert.deepEqual(states, ["connecting", "connected"]);
    assert.equal(net.opened, 1);
    assert.ok(issued >= 3, `token function called ${issued} times`);
    assert.ok(net.sent.filter((f) => f.type === "auth:refresh").length >= 2);
    await alice.close();
  } finally {
    await server.stop();
  }
});

test("an expired token (4001) gets a new one from the token function, then reconnects", async () => {
  const server = await TestServer.start();
  try {
    let issued = 0;
    const alice = new RealtimeClient({
      url: server.url,
      token: () => {
        issued++;
        return server.token("alice", { secs: issued === 1 ? 1 : 3600 });
      },
      WebSocket,
      backoff: fast,
      autoRefresh: false,
    });
    const codes = [];
    alice.on("state", (s) => s.code !== undefined && codes.push(s.code));
    const room = await alice.join("public:expiry");
    await until(() => codes.includes(4001), "the 4001 close", 5000);
    await until(() => alice.state === "connected" && room.joined, "the reconnect with a new token");
    assert.equal(issued, 2);
    const r = await room.send("after the new token");
    assert.equal(r.seq, 1);
    await alice.close();
  } finally {
    await server.stop();
  }
});

test("jwtExpiry reads exp", () => {
  const t = "x." + Buffer.from(JSON.stringify({ exp: 1700000000 })).toString("base64url") + ".y";
  assert.equal(jwtExpiry(t), 1700000000 * 1000);
  assert.equal(jwtExpiry("garbage"), null);
});

test("a refused handshake tells the client why: 4001 asks the token function again", async () => {
  const server = await TestServer.start();
  try {
    let issued = 0;
    const alice = new RealtimeClient({
      url: server.url,
      token: () => (++issued === 1 ? "garbage" : server.token("alice")),
      WebSocket,
      backoff: fast,
    });
    const refusals = [];
    alice.on("state", (s) => s.code !== undefined && refusals.push([s.code, s.reason]));
    await alice.connect();
    assert.deepEqual(refusals, [[4001, "invalid token: malformed token"]]);
    assert.equal(issued, 2);
    await alice.close();
  } finally {
    await server.stop();
  }
});

test("a handshake refused for too many connections (4429) waits retryAfterMs, then gets in", async () => {
  const server = await TestServer.start({ env: { REALTIME__LIMITS__MAX_CONNECTIONS_PER_USER: "1" } });
  try {
    const first = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
    await first.connect();
    const second = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket, backoff: fast });
    const waits = [];
    second.on("state", (s) => s.code === 4429 && waits.push(s.delayMs));
    const connected = second.connect();
    await until(() => waits.length > 0, "the 4429 refusal");
    assert.ok(waits[0] >= 1000, `waited ${waits[0]} ms, less than retryAfterMs`);
    await first.close();
    await connected;
    assert.equal(second.state, "connected");
    await second.close();
  } finally {
    await server.stop();
  }
});

test("flooding (4008) is answered with the long backoff and a state event, then a reconnect", async () => {
  const server = await TestServer.start({
    env: {
      REALTIME__RATE_LIMITS__COMMANDS_PER_SECOND: "2",
      REALTIME__RATE_LIMITS__COMMANDS_BURST: "5",
      REALTIME__RATE_LIMITS__FLOOD_CLOSE_AFTER: "3",
    },
  });
  try {
    const net = controllableNetwork();
    const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket: net.WebSocket, backoff: fast, floodBackoffMs: 1500 });
    const states = [];
    alice.on("state", (s) => states.push(s));
    await alice.connect();
    // An app gone wrong: commands in a loop, over the rate limit.
    const answers = [];
    for (let i = 0; i < 30; i++) answers.push(alice.setPresence(i % 2 ? "away" : "online").then(() => "ok", (e) => e.code));
    const codes = await Promise.all(answers);
    assert.ok(codes.includes("RATE_LIMITED"), `answers: ${codes}`);
    assert.ok(codes.includes("DISCONNECTED"), `answers: ${codes}`);
    const flood = states.find((s) => s.code === 4008);
    assert.deepEqual(
      { state: flood.state, reason: flood.reason, delayMs: flood.delayMs },
      { state: "reconnecting", reason: "too many commands over the rate limit", delayMs: 1500 },
    );
    await until(() => alice.state === "connected", "the reconnect after the long backoff");
    assert.equal(net.opened, 2, "one attempt, after the wait");
    await alice.setPresence("online"); // usable again
    await alice.close();
  } finally {
    await server.stop();
  }
});
