// The React hooks, rendered with react-test-renderer against the real
// server: state, messages of a room, presence, typing, notifications.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createElement as h } from "react";
import TestRenderer from "react-test-renderer";
import { WebSocket } from "ws";
import { RealtimeClient } from "../src/index.js";
import { useRealtime, useRoom, usePresence, useTyping, useNotifications } from "../src/react.js";
import { TestServer, until } from "./helpers.js";

globalThis.IS_REACT_ACT_ENVIRONMENT = false; // we wait for real network events, not act()

let server;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.stop();
});

test("hooks follow the connection, the room, its members, typing and notifications", async () => {
  const alice = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  const bob = new RealtimeClient({ url: server.url, token: () => server.token("bob"), WebSocket });
  const seen = {};
  function Chat({ client, room: name }) {
    const state = useRealtime(client);
    const { room, messages } = useRoom(client, name);
    const members = usePresence(room);
    const { users: typing, typing: notifyTyping } = useTyping(room);
    const { notifications, markRead } = useNotifications(client);
    Object.assign(seen, { state, room, messages, members, typing, notifyTyping, notifications, markRead });
    return h("ul", null, messages.map((m) => h("li", { key: m.messageId }, `${m.userId}: ${m.content}`)));
  }
  const renderer = TestRenderer.create(h(Chat, { client: alice, room: "public:react" }));
  await until(() => seen.state === "connected" && seen.room !== null, "connected and joined");
  assert.deepEqual(
    seen.members.map((m) => m.userId),
    ["alice"],
  );

  const rb = await bob.join("public:react");
  await until(() => seen.members.length === 2, "bob in the presence list");
  await rb.send("hi from bob");
  await seen.room.send("hi from alice");
  await until(() => seen.messages.length === 2, "both messages rendered");
  const items = renderer.root.findAllByType("li").map((li) => li.children.join(""));
  assert.deepEqual(items, ["bob: hi from bob", "alice: hi from alice"]);

  rb.typing();
  await until(() => seen.typing.includes("bob"), "bob typing");
  seen.notifyTyping(); // alice's keystroke reaches bob
  await until(() => rb.typingUsers.includes("alice"), "alice typing, seen by bob");

  // Edits and deletions show in useRoom's messages.
  const bobs = seen.messages[0].messageId;
  await rb.edit(bobs, "hi from bob, edited");
  await until(() => seen.messages[0].content === "hi from bob, edited", "the edit rendered");
  assert.ok(seen.messages[0].editedAt);
  await seen.room.delete(seen.messages[1].messageId);
  await until(() => seen.messages[1].deleted === true, "the deletion rendered");
  const shown = renderer.root.findAllByType("li").map((li) => li.children.join(""));
  assert.deepEqual(shown, ["bob: hi from bob, edited", "alice: "]);

  await server.admin("POST", "/admin/notify", { userId: "alice", title: "ping", body: "" });
  await until(() => seen.notifications.length === 1, "the notification");
  await seen.markRead(seen.notifications[0].notificationId);
  await until(() => seen.notifications.length === 0, "read and dropped");
  // Read on another of alice's connections (her phone): dropped here too.
  const phone = new RealtimeClient({ url: server.url, token: () => server.token("alice"), WebSocket });
  const phoneGot = [];
  phone.on("notification", (n) => phoneGot.push(n.notificationId));
  await phone.connect();
  await server.admin("POST", "/admin/notify", { userId: "alice", title: "one", body: "" });
  await server.admin("POST", "/admin/notify", { userId: "alice", title: "two", body: "" });
  await until(() => seen.notifications.length === 2 && phoneGot.length === 2, "two more notifications");
  await phone.markNotificationRead([phoneGot[0]]);
  await until(() => seen.notifications.length === 1, "the one read on the phone dropped");
  assert.equal(seen.notifications[0].title, "two");
  await phone.markNotificationRead("all");
  await until(() => seen.notifications.length === 0, "all read on the phone");
  await phone.close();

  // Unmounting leaves the room: bob sees alice go.
  renderer.unmount();
  await until(() => rb.members.length === 1, "alice gone from bob's list");
  await alice.close();
  assert.equal(alice.state, "closed");
  await bob.close();
});
