// Managed rooms against the real server (docs/protocol.md 13): create,
// list with unread, update, members (add, mute, role, remove, list), direct
// messages, delete; and the events on the joined Room and on the client.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { RealtimeClient, RealtimeError } from "../src/index.js";
import { TestServer, until } from "./helpers.js";

/** @type {TestServer} */
let server;
before(async () => {
  server = await TestServer.start();
});
after(async () => {
  await server.stop();
});

const clients = [];
function client(user) {
  const c = new RealtimeClient({ url: server.url, token: () => server.token(user), WebSocket });
  clients.push(c);
  return c;
}
after(async () => {
  for (const c of clients) await c.close();
});

/** Collects a target's events of the given names as [name, value]. */
function events(target, names) {
  const got = [];
  for (const name of names) target.on(name, (v) => got.push([name, v]));
  return got;
}

const isCode = (code) => (e) => e instanceof RealtimeError && e.code === code;

test("create, list with unread, update, members and their events, removal leaves the room", async () => {
  const alice = client("alice");
  const bob = client("bob");
  const carol = client("carol");
  await Promise.all([alice.connect(), bob.connect(), carol.connect()]);

  const info = await alice.rooms.create("team:1:design", { type: "group", visibility: "private", title: "Design", members: ["bob"] });
  assert.deepEqual(
    [info.room, info.type, info.visibility, info.title, info.createdBy, info.memberCount],
    ["team:1:design", "group", "private", "Design", "alice", 2],
  );
  await assert.rejects(alice.rooms.create("team:1:design"), isCode("CONFLICT"));
  await assert.rejects(carol.join("team:1:design"), isCode("FORBIDDEN")); // private: members only

  const ra = await alice.join("team:1:design");
  await ra.send("one");
  await ra.send("two");
  const listed = await bob.rooms.list();
  assert.deepEqual(
    listed.map((r) => [r.room, r.type, r.lastSeq, r.lastReadSeq, r.unread]),
    [["team:1:design", "group", 2, 0, 2]],
  );

  const rb = await bob.join("team:1:design");
  await rb.read(2);
  assert.equal((await bob.rooms.list())[0].unread, 0);
  const onBobsRoom = events(rb, ["room:updated", "member:added", "member:updated", "member:removed", "room:deleted"]);
  const onCarol = events(carol, ["member:added", "member:updated", "member:removed"]);

  // Settings: only an admin may change them; everyone in the room hears.
  await assert.rejects(bob.rooms.update("team:1:design", { title: "mine" }), isCode("FORBIDDEN"));
  const updated = await alice.rooms.update("team:1:design", { title: "Design team", maxUsers: 10 });
  assert.equal(updated.title, "Design team");
  await until(() => onBobsRoom.length === 1, "room:updated on bob's room");
  assert.deepEqual(onBobsRoom[0][0], "room:updated");
  assert.deepEqual([onBobsRoom[0][1].title, onBobsRoom[0][1].maxUsers], ["Design team", 10]);

  // Carol, added, hears it on the client although she has not joined.
  const added = await alice.rooms.addMember("team:1:design", "carol", { role: "moderator" });
  assert.deepEqual([added.userId, added.role, added.muted], ["carol", "moderator", false]);
  await until(() => onCarol.length === 1 && onBobsRoom.length === 2, "member:added for carol and in the room");
  assert.deepEqual([onCarol[0][0], onCarol[0][1].room, onCarol[0][1].userId, onCarol[0][1].role], ["member:added", "team:1:design", "carol", "moderator"]);
  assert.deepEqual([onBobsRoom[1][0], onBobsRoom[1][1].userId], ["member:added", "carol"]);
  await assert.rejects(alice.rooms.addMember("team:1:design", "carol"), isCode("CONFLICT"));

  // Carol (moderator) mutes bob: he hears it and his sends are refused.
  const rc = await carol.join("team:1:design");
  const muted = await carol.rooms.updateMember("team:1:design", "bob", { muted: true });
  assert.equal(muted.muted, true);
  await until(() => onBobsRoom.length === 3, "member:updated in bob's room");
  assert.deepEqual([onBobsRoom[2][0], onBobsRoom[2][1].userId, onBobsRoom[2][1].muted], ["member:updated", "bob", true]);
  await assert.rejects(rb.send("let me speak"), isCode("FORBIDDEN"));
  await carol.rooms.updateMember("team:1:design", "bob", { muted: false });
  assert.equal((await rb.send("thanks")).seq, 3);

  // Members, page by page, sorted by user id.
  const members = [];
  for await (const m of alice.rooms.members("team:1:design", { pageSize: 2 })) members.push([m.userId, m.role]);
  assert.deepEqual(members, [
    ["alice", "owner"],
    ["bob", "member"],
    ["carol", "moderator"],
  ]);

  // Bob is removed: his room emits member:removed and is left for good.
  const onCarolsRoom = events(rc, ["member:removed"]);
  await carol.rooms.removeMember("team:1:design", "bob");
  await until(() => onBobsRoom.length === 5 && onCarolsRoom.length === 1, "member:removed");
  assert.deepEqual(onBobsRoom[4], ["member:removed", { userId: "bob", by: "carol" }]);
  assert.deepEqual(onCarolsRoom[0], ["member:removed", { userId: "bob", by: "carol" }]);
  assert.equal(bob.room("team:1:design"), undefined);
  assert.equal(rb.joined, false);
  await assert.rejects(rb.send("still here?"), isCode("LEFT"));
  await assert.rejects(bob.join("team:1:design"), isCode("FORBIDDEN"));
  assert.deepEqual(await bob.rooms.list(), []);

  // Only the owner deletes; everyone in the room hears, and the room is left.
  await assert.rejects(carol.rooms.delete("team:1:design"), isCode("FORBIDDEN"));
  const onCarolsRoomDeleted = events(rc, ["room:deleted"]);
  const onCarolDeleted = events(carol, ["room:deleted"]);
  await alice.rooms.delete("team:1:design");
  await until(() => onCarolsRoomDeleted.length === 1 && onCarolDeleted.length === 1, "room:deleted");
  assert.deepEqual(onCarolDeleted[0], ["room:deleted", { room: "team:1:design" }]);
  assert.equal(carol.room("team:1:design"), undefined);
  assert.equal(alice.room("team:1:design"), undefined);
  await assert.rejects(rc.send("anyone?"), isCode("LEFT"));
  await assert.rejects(alice.rooms.update("team:1:design", { title: "x" }), isCode("NOT_FOUND"));
});

test("openDm: the same room whoever opens it; both members chat in it", async () => {
  const dora = client("dora");
  const erin = client("erin");
  const fromDora = await dora.rooms.openDm("erin");
  const fromErin = await erin.rooms.openDm("dora");
  assert.equal(fromDora.room, fromErin.room);
  assert.deepEqual([fromDora.type, fromDora.visibility, fromDora.maxUsers, fromDora.memberCount], ["dm", "private", 2, 2]);
  assert.ok(fromDora.room.startsWith("dm:"));
  await assert.rejects(dora.rooms.openDm("dora"), isCode("BAD_REQUEST"));
  await assert.rejects(dora.rooms.addMember(fromDora.room, "frank"), isCode("FORBIDDEN"));
  const rd = await dora.join(fromDora.room);
  const re = await erin.join(fromErin.room);
  const got = [];
  re.on("message", (m) => got.push(m.content));
  await rd.send("psst");
  await until(() => got.length === 1, "erin to get the dm");
  assert.deepEqual(got, ["psst"]);
  const list = await erin.rooms.list();
  assert.deepEqual(
    list.map((r) => [r.room, r.unread]),
    [[fromDora.room, 1]],
  );
});

test("a public managed room: joining makes a member; a member leaves for good by removing themselves", async () => {
  const gail = client("gail");
  const hank = client("hank");
  await gail.rooms.create("public:town", { title: "Town square" });
  const rh = await hank.join("public:town");
  const list = await hank.rooms.list();
  assert.deepEqual(
    list.map((r) => [r.room, r.type, r.visibility]),
    [["public:town", "channel", "public"]],
  );
  const removed = events(hank, ["member:removed"]);
  await hank.rooms.removeMember("public:town", "hank");
  await until(() => removed.length === 1, "hank's own member:removed");
  assert.deepEqual(removed[0][1], { room: "public:town", userId: "hank", by: "hank" });
  assert.equal(hank.room("public:town"), undefined);
  assert.equal(rh.joined, false);
  assert.deepEqual(await hank.rooms.list(), []);
});
