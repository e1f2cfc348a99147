// Announcements (the v2 contract's "Notifications and announcements"):
// active ones are sent again after every `connected`, so the client shows
// each once. This drives the client's frame handling with the event as the
// server sends it: the announcement under `data`, whose `type` would clash
// with the frame's (as `room:updated` carries the room object).

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
