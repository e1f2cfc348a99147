// One joined room: its stream position, its members and typing list, and
// its outbox of sends that are not settled yet.
//
// Delivery rule: the app sees each stored message once, in `seq` order.
// Everything that can carry a message (live `message:new`, the `missed` of
// a rejoin, history pages fetched to fill a gap) goes through `_offer`,
// which drops what is at or below the last delivered `seq` and parks the
// rest until it is next in line (`_drain`). A hole is filled from
// `history:get`.

import { Emitter } from "./emitter.js";
import { RealtimeError } from "./errors.js";

/**
 * @typedef {object} Message
 * @property {string} room
 * @property {string} messageId
 * @property {number} seq
 * @property {string} userId
 * @property {string} content
 * @property {string | null} threadId
 * @property {Record<string, unknown> | null} metadata
 * @property {string} timestamp
 * @property {string | null} [replyTo] v2 (server issue 17)
 * @property {string} [kind] v2
 * @property {string | null} [editedAt] v2
 * @property {boolean} [deleted] v2
 */

/**
 * @typedef {object} Member
 * @property {string} userId
 * @property {string | null} name
 * @property {string} status
 * @property {{text: string | null, emoji: string | null} | null} customStatus
 * @property {number} connections
 */

/**
 * @typedef {object} MessageUpdate
 * @property {string} room
 * @property {string} messageId
 * @property {number} seq
 * @property {string} [userId]
 * @property {string} content
 * @property {Record<string, unknown> | null} metadata
 * @property {string | null} editedAt
 */

/**
 * @typedef {object} MessageDeletion
 * @property {string} room
 * @property {string} messageId
 * @property {number} seq
 * @property {string | null} deletedBy
 */

/**
 * @typedef {object} RoomEvents
 * @property {Message} message
 * @property {MessageUpdate} update
 * @property {MessageDeletion} delete
 * @property {Member[]} members
 * @property {{threadId: string | null, users: string[]}} typing
 * @property {{lastReadSeq: number}} read
 * @property {{event: string, data: unknown, timestamp: string}} broadcast
 */

/**
 * A room's events: the above, and for managed rooms (docs/protocol.md
 * 13.4) `room:updated` (the room object), `room:deleted`, `member:added`,
 * `member:updated` (member objects) and `member:removed`. After
 * `room:deleted`, or `member:removed` of the user, the room is left.
 * @typedef {RoomEvents & {
 *   "room:updated": import("./managed.js").RoomInfo,
 *   "room:deleted": {room: string},
 *   "member:added": import("./managed.js").MemberInfo,
 *   "member:updated": import("./managed.js").MemberInfo,
 *   "member:removed": {userId: string, by: string},
 * }} AllRoomEvents
 */

/**
 * @typedef {object} SendOptions
 * @property {Record<string, unknown>} [metadata]
 * @property {string} [replyTo] v2: needs server issue 17
 * @property {string} [kind] v2: needs server issue 17
 * @property {string} [threadId]
 * @property {string} [clientMsgId] the dedupe key; a random one by default
 */

/**
 * @typedef {object} SendResult
 * @property {string} messageId
 * @property {number} seq
 * @property {string} timestamp
 */

const HISTORY_PAGE = 100;
/** A `typing:start` at most this often; `typing:stop` after this long without `typing()`. */
const TYPING_EVERY_MS = 3000;

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** How many messages' last change a room remembers, to apply each change once. */
const CHANGES_REMEMBERED = 5000;

/** @extends {Emitter<AllRoomEvents>} */
export class Room extends Emitter {
  /**
   * @param {import("./client.js").RealtimeClient} client
   * @param {string} name
   */
  constructor(client, name) {
    super();
    this._client = client;
    /** @readonly */
    this.name = name;
    /** The last `seq` delivered to the app; null before the first join. @type {number | null} */
    this.lastSeq = null;
    /** Live member list, by user id. @type {Map<string, Member>} */
    this._members = new Map();
    /** How many users are in the room (the server's `memberCount`). */
    this.memberCount = 0;
    /** Who is typing in the main thread, the user's own id excluded. @type {string[]} */
    this.typingUsers = [];
    /** The user's read position here, once known (`read()`, or a `read` event). @type {number | null} */
    this.lastRead = null;
    /** messageId → its last change applied ("d" deleted, else "e" and editedAt). @type {Map<string, string>} */
    this._changes = new Map();
    /** @type {Map<number, Message>} */
    this._pending = new Map();
    /** @type {Map<string, {frame: Record<string, unknown>, resolve: (r: SendResult) => void, reject: (e: Error) => void, inFlight: boolean, settled: boolean, retryTimer: any}>} */
    this._outbox = new Map();
    this._joined = false;
    this._left = false;
    this._syncing = false;
    this._filling = false;
    this._lastTypingSent = 0;
    /** @type {any} */
    this._typingStopTimer = null;
    this._everJoined = false;
    /** @type {(err: Error) => void} */
    this._rejectReady = () => {};
    /** @type {() => void} */
    this._resolveReady = () => {};
    /** Settles with the first join. @type {Promise<void>} */
    this._ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this._ready.catch(() => {});
  }

  /** Fails the first join (if still waiting) and every unsettled send. @param {Error} err */
  _fail(err) {
    this._rejectReady(err);
    this._failOutbox(err);
  }

  /** The members as a sorted array (live: read it again after a `members` event). */
  get members() {
    return [...this._members.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  }

  /** Joined on the current connection. */
  get joined() {
    return this._joined;
  }

  /**
   * Sends a message. Resolves once, with the stored message's id and `seq`,
   * even across disconnects: an unacknowledged send is resent with the same
   * `clientMsgId` (the server stores it once) when the room is rejoined.
   * @param {string} content
   * @param {SendOptions} [options]
   * @returns {Promise<SendResult>}
   */
  send(content, options = {}) {
    if (this._left) return Promise.reject(new RealtimeError("LEFT", `left room ${this.name}`));
    const clientMsgId = options.clientMsgId ?? randomId();
    /** @type {Record<string, unknown>} */
    const frame = { type: "message:send", room: this.name, content, clientMsgId };
    if (options.metadata !== undefined) frame.metadata = options.metadata;
    if (options.threadId !== undefined) frame.threadId = options.threadId;
    if (options.replyTo !== undefined) frame.replyTo = options.replyTo;
    if (options.kind !== undefined) frame.kind = options.kind;
    this._stopTypingSoon(0);
    return new Promise((resolve, reject) => {
      const entry = { frame, resolve, reject, inFlight: false, settled: false, retryTimer: null };
      this._outbox.set(clientMsgId, entry);
      this._transmit(clientMsgId);
    });
  }

  /** Sends not settled yet (sent and unanswered, or waiting for the connection). */
  get unsettled() {
    return this._outbox.size;
  }

  /**
   * @param {string} clientMsgId
   */
  _transmit(clientMsgId) {
    const entry = this._outbox.get(clientMsgId);
    if (!entry || entry.settled || entry.inFlight || !this._joined) return;
    entry.inFlight = true;
    const conn = this._client._connection;
    this._client
      ._request("message:send", entry.frame, { resend: true })
      .then(
        (data) => this._settle(clientMsgId, null, /** @type {SendResult} */ (data)),
        (err) => {
          entry.inFlight = false;
          if (entry.settled) return;
          if (err.code === "DISCONNECTED") return; // resent after the rejoin
          if (err.code === "NOT_IN_ROOM") return; // the room is being rejoined
          if (err.code === "RATE_LIMITED" || err.code === "UNAVAILABLE") {
            const wait = Math.max(err.retryAfterMs ?? 1000, 50);
            entry.retryTimer = setTimeout(() => {
              entry.retryTimer = null;
              if (this._client._connection === conn) this._transmit(clientMsgId);
            }, wait);
            return;
          }
          this._settle(clientMsgId, err, null);
        },
      );
  }

  /**
   * @param {string} clientMsgId
   * @param {Error | null} err
   * @param {SendResult | null} result
   */
  _settle(clientMsgId, err, result) {
    const entry = this._outbox.get(clientMsgId);
    if (!entry || entry.settled) return;
    entry.settled = true;
    clearTimeout(entry.retryTimer);
    this._outbox.delete(clientMsgId);
    if (err) entry.reject(err);
    else entry.resolve(/** @type {SendResult} */ (result));
  }

  /**
   * v2, needs server issue 17: edits one of the user's messages.
   * @param {string} messageId
   * @param {string} content
   * @param {{metadata?: Record<string, unknown>}} [options]
   * @returns {Promise<{messageId: string, editedAt: string}>}
   */
  edit(messageId, content, options = {}) {
    /** @type {Record<string, unknown>} */
    const frame = { room: this.name, messageId, content };
    if (options.metadata !== undefined) frame.metadata = options.metadata;
    return /** @type {any} */ (this._client._request("message:edit", frame));
  }

  /**
   * v2, needs server issue 17: deletes a message (its author, or a moderator).
   * @param {string} messageId
   * @returns {Promise<{}>}
   */
  delete(messageId) {
    return /** @type {any} */ (this._client._request("message:delete", { room: this.name, messageId }));
  }

  /**
   * v2, needs server issue 17: stores the read position (never goes back).
   * @param {number} seq
   * @returns {Promise<{lastReadSeq: number}>}
   */
  async read(seq) {
    const data = /** @type {{lastReadSeq: number}} */ (await this._client._request("room:read", { room: this.name, seq }));
    this._readMoved(data.lastReadSeq);
    return data;
  }

  /** @param {number} n */
  _readMoved(n) {
    if (this.lastRead === null || n > this.lastRead) this.lastRead = n;
  }

  /**
   * Call on every keystroke: sends `typing:start` at most every 3 s and
   * `typing:stop` 3 s after the last call (or when a message is sent).
   */
  typing() {
    if (!this._joined) return;
    const now = Date.now();
    if (now - this._lastTypingSent >= TYPING_EVERY_MS) {
      this._lastTypingSent = now;
      this._client._fire({ type: "typing:start", room: this.name });
    }
    this._stopTypingSoon(TYPING_EVERY_MS);
  }

  /** @param {number} delay */
  _stopTypingSoon(delay) {
    if (this._lastTypingSent === 0) return;
    clearTimeout(this._typingStopTimer);
    const stop = () => {
      this._typingStopTimer = null;
      if (this._lastTypingSent === 0) return;
      this._lastTypingSent = 0;
      if (this._joined) this._client._fire({ type: "typing:stop", room: this.name });
    };
    if (delay === 0) stop();
    else this._typingStopTimer = setTimeout(stop, delay);
  }

  /**
   * Older messages, newest first, page by page from the server.
   * @param {{before?: number, pageSize?: number}} [options] `before`: only
   *   messages with a lower `seq` (default: everything up to the last delivered)
   * @returns {AsyncGenerator<Message>}
   */
  async *history(options = {}) {
    let before = options.before ?? (this.lastSeq !== null ? this.lastSeq + 1 : undefined);
    const limit = Math.min(options.pageSize ?? 50, HISTORY_PAGE);
    for (;;) {
      /** @type {Record<string, unknown>} */
      const frame = { room: this.name, limit };
      if (before !== undefined) frame.before = before;
      const data = /** @type {{messages: Message[]}} */ (await this._client._request("history:get", frame));
      const page = data.messages;
      if (page.length === 0) return;
      for (let i = page.length - 1; i >= 0; i--) yield page[i];
      before = page[0].seq;
      if (before <= 1) return;
    }
  }

  /** Leaves the room; unsettled sends are rejected with `LEFT`. */
  async leave() {
    if (this._left) return;
    this._left = true;
    this._stopTypingSoon(0);
    const wasJoined = this._joined;
    this._joined = false;
    this._client._rooms.delete(this.name);
    this._failOutbox(new RealtimeError("LEFT", `left room ${this.name}`));
    if (wasJoined && this._client.state === "connected") {
      await this._client._request("room:leave", { room: this.name }).catch(() => {});
    }
  }

  /**
   * The server took this room away (removed from a managed room, or it was
   * deleted): left, not rejoined; unsettled sends reject with `LEFT`.
   * @param {string} why
   */
  _gone(why) {
    if (this._left) return;
    this._left = true;
    this._joined = false;
    this._stopTypingSoon(0);
    if (this._client._rooms.get(this.name) === this) this._client._rooms.delete(this.name);
    this._failOutbox(new RealtimeError("LEFT", why));
  }

  /** @param {Error} err */
  _failOutbox(err) {
    for (const id of [...this._outbox.keys()]) this._settle(id, err, null);
  }

  // ---- called by the client ----

  /** The connection is gone: everything in flight is resent after the rejoin. */
  _disconnected() {
    this._joined = false;
    this._syncing = false;
    this._lastTypingSent = 0;
    clearTimeout(this._typingStopTimer);
    for (const entry of this._outbox.values()) {
      entry.inFlight = false;
      clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
    }
    if (this.typingUsers.length) {
      this.typingUsers = [];
      this.emit("typing", { threadId: null, users: [] });
    }
  }

  /**
   * Joins (or rejoins with `since`) on the current connection, catches up
   * and then flushes the outbox.
   */
  async _join() {
    const since = this.lastSeq;
    this._syncing = true;
    /** @type {Record<string, unknown>} */
    const frame = { room: this.name };
    if (since !== null) frame.since = since;
    const conn = this._client._connection;
    /** @type {any} */
    let data;
    try {
      data = await this._client._request("room:join", frame);
    } catch (err) {
      this._syncing = false;
      throw err;
    }
    if (this._client._connection !== conn || this._left) return;
    this._joined = true;
    this._everJoined = true;
    this._members = new Map((data.members ?? []).map((/** @type {Member} */ m) => [m.userId, m]));
    this.memberCount = data.memberCount ?? this._members.size;
    this.emit("members", this.members);
    // Sends may go out now: the server knows we are in the room.
    for (const id of this._outbox.keys()) this._transmit(id);
    try {
      if (since === null) {
        this.lastSeq = data.seq;
      } else {
        for (const m of data.missed ?? []) this._offer(m);
        for (const c of data.changed ?? []) this._applyChanged(c);
        if (!data.recovered || (data.missed ?? []).length === 0) {
          // More were missed than `limits.recovery_max`, or the database
          // could not answer: page back through history. A failure here is
          // retried by the gap check at the next message.
          await this._fill(data.seq, conn).catch(() => {});
        }
      }
    } finally {
      this._resolveReady();
      if (this._client._connection === conn) {
        if (since === null) {
          // First join: messages after the reply's `seq` that came early wait
          // a turn, so the listeners the app adds once `join()` resolved see them.
          setTimeout(() => {
            if (this._client._connection !== conn) return;
            this._syncing = false;
            this._drain();
          }, 0);
        } else {
          this._syncing = false;
          this._drain();
        }
      }
    }
  }

  /**
   * Fetches, from history, every message between the last delivered one and
   * `upto` that is not already parked.
   * @param {number} upto
   * @param {object} conn the connection this runs on; stops if it changes
   */
  async _fill(upto, conn) {
    if (this.lastSeq === null) return;
    let before = upto + 1;
    while (before - 1 > this.lastSeq && this._pending.has(before - 1)) before--;
    while (before - 1 > this.lastSeq && this._client._connection === conn) {
      const data = /** @type {{messages: Message[]}} */ (
        await this._client._request("history:get", { room: this.name, before, limit: HISTORY_PAGE })
      );
      const page = data.messages;
      if (page.length === 0) break;
      for (const m of page) this._offer(m, true);
      before = page[0].seq;
    }
  }

  /**
   * @param {Message} m
   * @param {boolean} [quiet] do not drain yet
   */
  _offer(m, quiet = false) {
    if (this.lastSeq !== null && m.seq <= this.lastSeq) return;
    if (this._pending.has(m.seq)) return;
    this._pending.set(m.seq, m);
    if (!quiet) this._drain();
  }

  _drain() {
    if (this._syncing || this.lastSeq === null) {
      if (this.lastSeq === null) return;
      // While syncing, the catch-up drains at its end.
      return;
    }
    for (;;) {
      const next = this._pending.get(this.lastSeq + 1);
      if (next) {
        this._pending.delete(next.seq);
        this.lastSeq = next.seq;
        // Delivered as it is now: a later `changed` with this state is not news.
        if (next.deleted || next.editedAt) this._firstChange(next.messageId, !!next.deleted, next.editedAt);
        this.emit("message", next);
        continue;
      }
      // Drop what is behind (first join: the reply's `seq` moved us past it).
      for (const seq of this._pending.keys()) if (seq <= this.lastSeq) this._pending.delete(seq);
      break;
    }
    if (this._pending.size > 0 && !this._filling) this._fillGap();
  }

  /**
   * A `seq` was skipped: fetch the missing ones from history. If history
   * answers without them (the server skipped that `seq` for good), move on;
   * if it cannot answer (database down), try again in a second.
   */
  async _fillGap() {
    this._filling = true;
    const conn = this._client._connection;
    let failed = false;
    try {
      const lowest = Math.min(...this._pending.keys());
      await this._fill(lowest - 1, conn);
    } catch {
      failed = true;
    } finally {
      this._filling = false;
    }
    if (this._client._connection !== conn || this.lastSeq === null) return;
    if (failed) {
      setTimeout(() => {
        if (this._client._connection === conn && !this._filling) this._drain();
      }, 1000);
      return;
    }
    const missing = this.lastSeq + 1;
    if (!this._pending.has(missing) && this._pending.size > 0) {
      // history has no such seq (or could not answer): do not wait forever
      this.lastSeq = Math.min(...this._pending.keys()) - 1;
    }
    this._drain();
  }

  /**
   * Notes a message's change; false when it was applied already (the
   * `changed` of a rejoin may repeat one the app saw live) or is older than
   * one applied (an edit after the deletion).
   * @param {string} messageId
   * @param {boolean} deleted
   * @param {string | null | undefined} editedAt
   */
  _firstChange(messageId, deleted, editedAt) {
    const known = this._changes.get(messageId);
    if (known === "d") return false;
    const mark = deleted ? "d" : `e${editedAt ?? ""}`;
    if (known === mark || (!deleted && known !== undefined && (editedAt ?? "") < known.slice(1))) return false;
    this._changes.delete(messageId);
    this._changes.set(messageId, mark);
    if (this._changes.size > CHANGES_REMEMBERED) {
      const oldest = this._changes.keys().next().value;
      if (oldest !== undefined) this._changes.delete(oldest);
    }
    return true;
  }

  /** @param {any} c a `changed` entry: the message's current state */
  _applyChanged(c) {
    if (!this._firstChange(c.messageId, !!c.deleted, c.editedAt)) return;
    if (c.deleted) {
      this.emit("delete", { room: this.name, messageId: c.messageId, seq: c.seq, deletedBy: c.deletedBy ?? null });
    } else {
      this.emit("update", {
        room: this.name,
        messageId: c.messageId,
        seq: c.seq,
        userId: c.userId,
        content: c.content,
        metadata: c.metadata ?? null,
        editedAt: c.editedAt ?? null,
      });
    }
  }

  /** @param {any} ev a server event addressed to this room */
  _event(ev) {
    switch (ev.type) {
      case "message:new": {
        const { type: _t, ...m } = ev;
        this._offer(/** @type {Message} */ (m));
        break;
      }
      case "message:updated": {
        const { type: _t, ...u } = ev;
        if (this._firstChange(u.messageId, false, u.editedAt)) this.emit("update", u);
        break;
      }
      case "message:deleted": {
        const { type: _t, ...d } = ev;
        if (this._firstChange(d.messageId, true, null)) this.emit("delete", d);
        break;
      }
      case "user:joined":
        if (!this._members.has(ev.userId)) {
          this._members.set(ev.userId, { userId: ev.userId, name: null, status: "online", customStatus: null, connections: 1 });
          this.memberCount++;
          this.emit("members", this.members);
        }
        break;
      case "user:left":
        if (this._members.delete(ev.userId)) {
          this.memberCount = Math.max(0, this.memberCount - 1);
          this.emit("members", this.members);
        }
        break;
      case "typing:event": {
        const users = ev.users.filter((/** @type {string} */ u) => u !== this._client.userId);
        if (ev.threadId === null) this.typingUsers = users;
        this.emit("typing", { threadId: ev.threadId, users });
        break;
      }
      case "room:read":
        this._readMoved(ev.lastReadSeq);
        this.emit("read", { lastReadSeq: ev.lastReadSeq });
        break;
      case "room:updated":
        this.emit("room:updated", ev.data);
        break;
      case "member:added":
      case "member:updated": {
        const { type: _t, room: _r, ...member } = ev;
        this.emit(ev.type, member);
        break;
      }
      case "member:removed":
        this.emit("member:removed", { userId: ev.userId, by: ev.by });
        // The server took the user's connections out of the room.
        if (ev.userId === this._client.userId) this._gone(`removed from room ${this.name} by ${ev.by}`);
        break;
      case "room:deleted":
        this.emit("room:deleted", { room: this.name });
        this._gone(`room ${this.name} was deleted`);
        break;
      case "broadcast":
        this.emit("broadcast", { event: ev.event, data: ev.data, timestamp: ev.timestamp });
        break;
    }
  }

  /** @param {any} ev `presence:changed` */
  _presence(ev) {
    const m = this._members.get(ev.userId);
    if (!m) return;
    this._members.set(ev.userId, { ...m, status: ev.status, customStatus: ev.customStatus ?? null });
    this.emit("members", this.members);
  }
}
