// Announcements (the v2 contract's "Notifications and announcements"):
// active ones are sent again after every `connected`, so the client shows
// each once. The first two tests drive the client's frame handling with
// the event as the server sends it (the announcement under `data`, whose
// `type` would clash with the frame's, as `room:updated` carries the room
// object); the last runs against the server.

import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient } from "../src/index.js";

const event = (announcementId, title, type) => ({
  type: "announcement",
  data: { announcementId, title, message: "details", type, startsAt: null, endsAt: "2026-12-01T22:30:00.000Z" },
});

test("each announcement is emitted once, with its own type, across reconnects", () => {
  const client = new RealtimeClient({ url: "ws://127.0.0.1:9/ws", WebSocket });
  const got = [];
  client.on("announcement", (a) => got.push(a));
  client._frame(event("a1", "Maintenance tonight", "maintenance"));
  client._frame(event("a2", "New: threads", "feature"));
  client._frame(event("a1", "Maintenance tonight", "maintenance")); // again after a reconnect's `connected`
  assert.deepEqual(
    got.map((a) => [a.announcementId, a.title, a.type, a.message, a.startsAt, a.endsAt]),
    [
      ["a1", "Maintenance tonight", "maintenance", "details", null, "2026-12-01T22:30:00.000Z"],
      ["a2", "New: threads", "feature", "details", null, "2026-12-01T22:30:00.000Z"],
    ],
  );
});

test("useAnnouncements lists them once and dismisses one", async () => {
  const { createElement: h } = await import("react");
  const { default: TestRenderer, act } = await import("react-test-renderer");
  const { useAnnouncements } = await import("../src/react.js");
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  const client = new RealtimeClient({ url: "ws://127.0.0.1:9/ws", WebSocket });
  let seen;
  function Banner() {
    seen = useAnnouncements(client);
    return h("p", null, seen.announcements.map((a) => a.title).join(" | "));
  }
  let renderer;
  act(() => {
    renderer = TestRenderer.create(h(Banner));
  });
  act(() => {
    client._frame(event("a1", "Maintenance tonight", "maintenance"));
    client._frame(event("a2", "New: threads", "feature"));
    client._frame(event("a1", "Maintenance tonight", "maintenance"));
  });
  assert.equal(renderer.root.findByType("p").children.join(""), "Maintenance tonight | New: threads");
  act(() => seen.dismiss("a1"));
  assert.equal(renderer.root.findByType("p").children.join(""), "New: threads");
  act(() => renderer.unmount());
});

test("against the server: live and after connect, each once across a reconnect, by role, ended ones no more", async () => {
  const { TestServer, until, controllableNetwork } = await import("./helpers.js");
  const server = await TestServer.start();
  const net = controllableNetwork();
  const fast = { initialMs: 50, maxMs: 400 };
  const ops = new RealtimeClient({ url: server.url, token: () => server.token("olga", { roles: ["ops"] }), WebSocket: net.WebSocket, backoff: fast });
  const guest = new RealtimeClient({ url: server.url, token: () => server.token("gus"), WebSocket });
  const later = [];
  try {
    const toOps = [];
    const toGuest = [];
    ops.on("announcement", (a) => toOps.push(a));
    guest.on("announcement", (a) => toGuest.push(a));
    await ops.connect();
    await guest.connect();
    const everyone = await server.admin("POST", "/admin/announcements", { title: "Maintenance", message: "at 22:00", type: "maintenance" });
    const opsOnly = await server.admin("POST", "/admin/announcements", { title: "Deploy", message: "v2", type: "feature", targetRoles: ["ops"] });
    await until(() => toOps.length === 2 && toGuest.length === 1, "the live announcements");
    assert.deepEqual(
      toOps.map((a) => [a.announcementId, a.title, a.message, a.type]),
      [
        [everyone.announcementId, "Maintenance", "at 22:00", "maintenance"],
        [opsOnly.announcementId, "Deploy", "v2", "feature"],
      ],
    );
    assert.deepEqual(toGuest.map((a) => a.announcementId), [everyone.announcementId]);

    // A reconnect brings the active ones again after `connected`: not news.
    const states = [];
    ops.on("state", (st) => states.push(st.state));
    net.cut();
    await until(() => states.includes("reconnecting") && ops.state === "connected", "the reconnect");
    assert.equal(net.opened, 2);
    await guest.setPresence("online"); // a round trip, for what the reconnect brought to arrive
    await ops.setPresence("online");
    assert.equal(toOps.length, 2);

    // A connection made later gets the active ones right after `connected`;
    // an ended one no more.
    await server.admin("DELETE", `/admin/announcements/${encodeURIComponent(opsOnly.announcementId)}`);
    const late = new RealtimeClient({ url: server.url, token: () => server.token("lena", { roles: ["ops"] }), WebSocket });
    later.push(late);
    const toLate = [];
    late.on("announcement", (a) => toLate.push(a.announcementId));
    await late.connect();
    await until(() => toLate.length === 1, "the active announcement after connected");
    await late.setPresence("online");
    assert.deepEqual(toLate, [everyone.announcementId]);
  } finally {
    for (const c of [ops, guest, ...later]) await c.close();
    await server.stop();
  }
});
