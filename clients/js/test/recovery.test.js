// The guarantees across disconnects, against the real server: the server is
// SIGKILLed mid-stream and restarted on the same port and database; a client
// misses more than `limits.recovery_max`; a link goes silent.

import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient } from "../src/index.js";
import { TestServer, until, recorder, sleep, controllableNetwork } from "./helpers.js";

const fast = { initialMs: 50, maxMs: 400 };

test("SIGKILL mid-stream and restart: every message once, in order, every send settled once", async () => {
  const server = await TestServer.start();
  try {
    const mk = (user) => new RealtimeClient({ url: server.url, token: () => server.token(user), WebSocket, backoff: fast });
    const alice = mk("alice");
    const bob = mk("bob");
    const ra = await alice.join("public:stream");
    const rb = await bob.join("public:stream");
    const seen = recorder(rb);
    const states = [];
    bob.on("state", (s) => states.push(s.state));

    const N = 150;
    const settled = new Map(); // content -> result, set once per send
    const sends = [];
    let killedAt = -1;
    let unsettledAtKill = 0;
    for (let i = 0; i < N; i++) {
      const content = `m${i}`;
      sends.push(
        ra.send(content).then((r) => {
          assert.ok(!settled.has(content), `${content} settled twice`);
          settled.set(content, r);
        }),
      );
      if (i === 60) {
        // some sends are answered, some in flight, some not yet written
        await server.kill();
        killedAt = i;
        unsettledAtKill = ra.unsettled;
        setTimeout(() => server.restart(), 300);
      }
      if (i % 10 === 0) await sleep(5);
    }
    assert.equal(killedAt, 60);
    assert.ok(unsettledAtKill > 0, "the kill must leave sends unacknowledged");
    await Promise.all(sends);
    assert.equal(settled.size, N);
    assert.equal(ra.unsettled, 0);

    // Exactly once in the store: seq 1..N, each content once.
    const bySeq = [...settled.values()].map((r) => r.seq).sort((a, b) => a - b);
    assert.deepEqual(bySeq, Array.from({ length: N }, (_, i) => i + 1));

    // Exactly once and in order for the observer.
    await until(() => seen.length >= N, `bob to see ${N} messages (saw ${seen.length})`, 20000);
    await sleep(200);
    assert.deepEqual(
      seen.map((m) => m.seq),
      Array.from({ length: N }, (_, i) => i + 1),
    );
    assert.equal(new Set(seen.map((m) => m.content)).size, N);
    for (const m of seen) assert.equal(settled.get(m.content).seq, m.seq);
    assert.ok(states.includes("reconnecting") && states.at(-1) === "connected", `bob's states: ${states}`);

    await alice.close();
    await bob.close();
  } finally {
    await server.stop();
  }
});

test("more missed than limits.recovery_max: history is paged, nothing lost or repeated", async () => {
  const server = await TestServer.start({ config: "[limits]\nrecovery_max = 5\n" });
  try {
    const net = controllableNetwork();
    const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket, backoff: fast });
    const bob = new RealtimeClient({ url: server.url, token: () => server.token("bob"), WebSocket: net.WebSocket, backoff: fast });
    const ra = await alice.join("public:paging");
    const rb = await bob.join("public:paging");
    const seen = recorder(rb);
    await ra.send("before 1");
    await ra.send("before 2");
    await until(() => seen.length === 2, "bob to see the first two");

    net.offline = true;
    net.cut();
    await until(() => bob.state === "reconnecting", "bob to notice");
    for (let i = 0; i < 23; i++) await ra.send(`away ${i}`);
    const sentBefore = net.sent.length;
    net.offline = false;

    await until(() => seen.length === 25, `bob to catch up (saw ${seen.length})`);
    await sleep(200);
    assert.deepEqual(
      seen.map((m) => m.seq),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
    const after = net.sent.slice(sentBefore);
    const join = after.find((f) => f.type === "room:join");
    assert.equal(join.since, 2);
    assert.ok(
      after.some((f) => f.type === "history:get" && f.room === "public:paging"),
      "the client paged history after recovered: false",
    );
    await alice.close();
    await bob.close();
  } finally {
    await server.stop();
  }
});

test("a silent link is declared dead and the client recovers what it missed", async () => {
  const server = await TestServer.start();
  try {
    const net = controllableNetwork();
    const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket, backoff: fast });
    const bob = new RealtimeClient({
      url: server.url,
      token: () => server.token("bob"),
      WebSocket: net.WebSocket,
      backoff: fast,
      pingIntervalMs: 100,
      heartbeatTimeoutMs: 500,
      connectTimeoutMs: 1000, // an attempt made while frozen never sees `connected`
    });
    const ra = await alice.join("public:silent");
    const rb = await bob.join("public:silent");
    const seen = recorder(rb);
    const reasons = [];
    bob.on("state", (s) => s.state === "reconnecting" && reasons.push(s.reason));
    net.freeze();
    await ra.send("during the silence");
    await until(() => reasons.length > 0, "bob to declare the link dead");
    assert.equal(reasons[0], "heartbeat timeout");
    net.frozen = false;
    await until(() => seen.length === 1 && bob.state === "connected", "bob to recover the message");
    assert.equal(seen[0].content, "during the silence");
    await alice.close();
    await bob.close();
  } finally {
    await server.stop();
  }
});
