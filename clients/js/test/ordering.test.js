// The room's delivery rule in isolation: the real server rarely skips a
// `seq` live (docs/protocol.md 3.2, "Gaps in seq"), so the gap path is
// driven here with a stand-in for the connection that answers history:get
// from a list of stored messages. Everything else runs against the server.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Room } from "../src/room.js";

function setup(stored, { failFirst = false, join = null } = {}) {
  const conn = {};
  const requests = [];
  let failures = failFirst ? 1 : 0;
  const client = {
    _connection: conn,
    userId: "me",
    state: "connected",
    async _request(type, frame) {
      requests.push({ type, ...frame });
      if (type === "room:join") return join;
      if (type === "message:send") return { messageId: "x", seq: 99, timestamp: "" };
      assert.equal(type, "history:get");
      if (failures-- > 0) throw Object.assign(new Error("db down"), { code: "UNAVAILABLE" });
      const older = stored.filter((m) => m.seq < frame.before).slice(-frame.limit);
      return { messages: older };
    },
    _fire() {},
  };
  const room = new Room(/** @type {any} */ (client), "r");
  room.lastSeq = 0;
  const seen = [];
  room.on("message", (m) => seen.push(m.seq));
  return { room, seen, requests };
}

const msg = (seq) => ({ room: "r", messageId: `id${seq}`, seq, userId: "u", content: `c${seq}`, threadId: null, metadata: null, timestamp: "" });
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

test("duplicates are dropped and early messages wait for their turn", async () => {
  const stored = [1, 2, 3, 4].map(msg);
  const { room, seen, requests } = setup(stored);
  room._event({ type: "message:new", ...msg(1) });
  room._event({ type: "message:new", ...msg(1) });
  room._event({ type: "message:new", ...msg(2) });
  assert.deepEqual(seen, [1, 2]);
  assert.equal(requests.length, 0);
});

test("a live gap is filled from history, in order, once", async () => {
  const stored = [1, 2, 3, 4, 5].map(msg);
  const { room, seen, requests } = setup(stored);
  room._event({ type: "message:new", ...msg(1) });
  room._event({ type: "message:new", ...msg(4) }); // 2 and 3 skipped live
  room._event({ type: "message:new", ...msg(5) });
  await wait(20);
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
  assert.deepEqual(requests.map((r) => r.before), [4]);
  room._event({ type: "message:new", ...msg(3) }); // late duplicate
  assert.deepEqual(seen, [1, 2, 3, 4, 5]);
});

test("a seq that history does not have either is skipped, not waited for", async () => {
  const stored = [1, 3].map(msg); // 2 was never stored
  const { room, seen } = setup(stored);
  room._event({ type: "message:new", ...msg(1) });
  room._event({ type: "message:new", ...msg(3) });
  await wait(20);
  assert.deepEqual(seen, [1, 3]);
});

test("when history cannot answer, the gap is retried rather than skipped", async () => {
  const stored = [1, 2, 3].map(msg);
  const { room, seen, requests } = setup(stored, { failFirst: true });
  room._event({ type: "message:new", ...msg(1) });
  room._event({ type: "message:new", ...msg(3) });
  await wait(20);
  assert.deepEqual(seen, [1]);
  await wait(1100);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(requests.length, 2);
});

test("a rejoin applies `changed`: edits and deletions missed while away (v2, issue 17)", async () => {
  // The server does not send `changed` yet; this is the contract's shape.
  const join = {
    room: "r",
    seq: 3,
    members: [],
    memberCount: 1,
    recovered: true,
    missed: [msg(3)],
    changed: [
      { ...msg(1), content: "edited", editedAt: "2026-11-30T20:00:00.000Z", deleted: false },
      { ...msg(2), content: "", metadata: null, deleted: true, deletedBy: "mod" },
    ],
  };
  const { room, seen, requests } = setup([1, 2, 3].map(msg), { join });
  room.lastSeq = 2;
  const updates = [];
  const deletions = [];
  room.on("update", (u) => updates.push([u.messageId, u.content, u.editedAt]));
  room.on("delete", (d) => deletions.push([d.messageId, d.deletedBy]));
  await room._join();
  assert.equal(requests[0].since, 2);
  assert.deepEqual(seen, [3]);
  assert.deepEqual(updates, [["id1", "edited", "2026-11-30T20:00:00.000Z"]]);
  assert.deepEqual(deletions, [["id2", "mod"]]);
});
