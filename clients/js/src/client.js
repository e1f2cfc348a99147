// The connection: a small state machine (idle → connecting → connected →
// reconnecting → …, and the two ends `stopped` and `closed`), requests
// matched to replies by id, the heartbeat, token refresh, and the close-code
// policy. Rooms live in room.js.

import { Emitter } from "./emitter.js";
import { RealtimeError } from "./errors.js";
import { backoffDelay } from "./backoff.js";
import { Room } from "./room.js";
import { ManagedRooms } from "./managed.js";

/**
 * @typedef {"idle" | "connecting" | "connected" | "reconnecting" | "stopped" | "closed"} ConnectionState
 */

/**
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {ConnectionState} previous
 * @property {number} [code] the close code that caused it
 * @property {string} [reason] the close reason
 * @property {number} [delayMs] when reconnecting: the wait before the next attempt
 */

/**
 * @typedef {object} Notification
 * @property {string} notificationId
 * @property {string} kind
 * @property {string} title
 * @property {string} body
 * @property {unknown} data
 * @property {string} createdAt
 * @property {"low" | "medium" | "high" | "critical"} [priority] v2
 * @property {string | null} [actionUrl] v2
 * @property {string | null} [actionText] v2
 * @property {string | null} [expiresAt] v2
 */

/**
 * @typedef {object} Announcement
 * @property {string} announcementId
 * @property {string} title
 * @property {string} message
 * @property {"maintenance" | "feature" | "warning"} type
 * @property {string | null} startsAt
 * @property {string | null} endsAt
 */

/**
 * The client's events. `error`: a problem the client handled itself (a
 * failed rejoin, a refused refresh). `notification:read`: notifications
 * read on another of the user's connections. `read`: the user's read
 * position in a room moved (`room:read` on another of their connections).
 * `room:*` and `member:*`: managed rooms (docs/protocol.md 13.4), for every
 * room the user is in or is affected by, joined here or not.
 * @typedef {{
 *   state: StateChange,
 *   notification: Notification,
 *   announcement: Announcement,
 *   broadcast: {room?: string, event: string, data: unknown, timestamp: string},
 *   error: Error,
 *   "notification:read": {notificationIds?: string[], all?: boolean},
 *   read: {room: string, lastReadSeq: number},
 *   "room:updated": {room: string, data: import("./managed.js").RoomInfo},
 *   "room:deleted": {room: string},
 *   "member:added": {room: string} & import("./managed.js").MemberInfo,
 *   "member:updated": {room: string} & import("./managed.js").MemberInfo,
 *   "member:removed": {room: string, userId: string, by: string},
 * }} ClientEvents
 */

/**
 * @typedef {string | (() => string | Promise<string>)} TokenSource
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} url the server's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`
 * @property {TokenSource} [token] a JWT, or a function called at every (re)connect and refresh
 * @property {any} [WebSocket] a WebSocket implementation (default: `globalThis.WebSocket`); on Node 20, `ws`
 * @property {import("./backoff.js").BackoffOptions} [backoff] reconnect delays (default 500 ms doubling up to 30 s)
 * @property {number} [floodBackoffMs] wait after a 4008 close (default 60000)
 * @property {number} [pingIntervalMs] how often to send `ping` (default: the server's heartbeat interval, at most 25000)
 * @property {number} [heartbeatTimeoutMs] silence after which the connection is dead (default 2 × ping interval + 5 s)
 * @property {number} [requestTimeoutMs] a command without an answer fails with TIMEOUT (default 15000)
 * @property {number} [refreshMarginMs] refresh the token this long before it expires (default 60000, at most a third of its life)
 * @property {boolean} [autoRefresh] send `auth:refresh` before expiry (default true when `token` is a function)
 * @property {number} [connectTimeoutMs] an attempt that has no `connected` frame by then is dropped (default 10000)
 */

const CLIENT_CLOSE = 4000; // our own code when we drop a dead connection

/** @extends {Emitter<ClientEvents>} */
export class RealtimeClient extends Emitter {
  /** @param {ClientOptions} options */
  constructor(options) {
    super();
    if (!options || !options.url) throw new TypeError("RealtimeClient: `url` is required");
    this._options = options;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this._WebSocket) {
      throw new TypeError("RealtimeClient: no WebSocket here; pass one, e.g. `new RealtimeClient({url, WebSocket: (await import('ws')).WebSocket})`");
    }
    /** @type {ConnectionState} */
    this.state = "idle";
    /** @type {string | null} */
    this.userId = null;
    /** @type {string | null} */
    this.connectionId = null;
    /** @type {Map<string, Room>} */
    this._rooms = new Map();
    /** The live socket's identity; rooms compare it to notice a reconnect. @type {object | null} */
    this._connection = null;
    /** @type {any} */
    this._ws = null;
    this._nextId = 1;
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void, timer: any, resend: boolean}>} */
    this._requests = new Map();
    this._attempt = 0;
    /** @type {any} */ this._reconnectTimer = null;
    /** @type {any} */ this._pingTimer = null;
    /** @type {any} */ this._refreshTimer = null;
    /** @type {any} */ this._connectTimer = null;
    this._lastHeard = 0;
    /** @type {number | null} expiry of the current token, ms since the epoch */
    this._tokenExp = null;
    /** @type {Set<string>} */
    this._seenNotifications = new Set();
    /** @type {Set<string>} */
    this._seenAnnouncements = new Set();
    /** Managed rooms: create, update, delete, list, members, direct messages. */
    this.rooms = new ManagedRooms(this);
    /** @type {{promise: Promise<void>, resolve: () => void, reject: (e: Error) => void} | null} */
    this._firstConnect = null;
  }

  /**
   * Opens the connection; resolves when it is up (after retries, if the
   * first attempts fail), rejects if the client stops (4003, 4403) or is
   * closed first.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.state === "connected") return Promise.resolve();
    if (this.state === "closed" || this.state === "stopped") {
      return Promise.reject(new RealtimeError(this.state.toUpperCase(), `the client is ${this.state}`));
    }
    if (!this._firstConnect) {
      /** @type {any} */
      const d = {};
      d.promise = new Promise((resolve, reject) => {
        d.resolve = resolve;
        d.reject = reject;
      });
      this._firstConnect = d;
      if (this.state === "idle") this._open();
    }
    return /** @type {any} */ (this._firstConnect).promise;
  }

  /**
   * Joins a room (or returns the room already joined). Resolves once the
   * server accepted the join; the room is rejoined after every reconnect.
   * @param {string} name
   * @returns {Promise<Room>}
   */
  async join(name) {
    const existing = this._rooms.get(name);
    if (existing) {
      await existing._ready;
      return existing;
    }
    if (this.state === "closed" || this.state === "stopped") {
      throw new RealtimeError(this.state.toUpperCase(), `the client is ${this.state}`);
    }
    const room = new Room(this, name);
    this._rooms.set(name, room);
    if (this.state === "connected") this._joinRoom(room);
    else if (this.state === "idle") this.connect().catch(() => {});
    await room._ready;
    return room;
  }

  /**
   * Joins `room` on the current connection. A loss of the connection is
   * not a failure (the room is joined again on the next one); a refusal of
   * a room never joined fails its `join()`.
   * @param {Room} room
   */
  _joinRoom(room) {
    const connection = this._connection;
    room._join().catch((err) => {
      if (err.code === "DISCONNECTED" || this._connection !== connection) return;
      if (!room._everJoined) {
        this._rooms.delete(room.name);
        room._left = true;
        room._fail(err);
      } else {
        this.emit("error", err);
      }
    });
  }

  /** @param {string} name @returns {Room | undefined} */
  room(name) {
    return this._rooms.get(name);
  }

  /**
   * Marks notifications read, for all the user's connections (the others
   * get a `notification:read` event): one id, a list of ids, or `"all"`.
   * @param {string | string[]} ids
   */
  markNotificationRead(ids) {
    if (ids === "all") return this._request("notification:read", { all: true });
    if (Array.isArray(ids)) return this._request("notification:read", { notificationIds: ids });
    return this._request("notification:read", { notificationId: ids });
  }

  /**
   * Sets the user's status.
   * @param {"online" | "away" | "busy" | "offline"} status
   * @param {{text?: string, emoji?: string}} [customStatus]
   */
  setPresence(status, customStatus) {
    return this._request("presence:update", customStatus ? { status, customStatus } : { status });
  }

  /** Closes for good: no reconnect; unsettled sends are rejected with CLOSED. */
  async close() {
    if (this.state === "closed") return;
    const ws = this._ws;
    this._setState("closed", {});
    this._teardown(new RealtimeError("CLOSED", "the client was closed"));
    for (const room of this._rooms.values()) room._fail(new RealtimeError("CLOSED", "the client was closed"));
    this._rooms.clear();
    this._firstConnect?.reject(new RealtimeError("CLOSED", "the client was closed"));
    if (ws && ws.readyState !== 3) {
      await new Promise((resolve) => {
        const done = setTimeout(resolve, 1000);
        ws.onclose = () => {
          clearTimeout(done);
          resolve(undefined);
        };
        try {
          ws.close(1000, "bye");
        } catch {
          clearTimeout(done);
          resolve(undefined);
        }
      });
    }
  }

  // ---- the connection ----

  async _open() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this.state !== "reconnecting") this._setState("connecting", {});
    let token;
    try {
      token = await this._token();
    } catch (err) {
      this.emit("error", /** @type {Error} */ (err));
      this._scheduleReconnect(0, "token function failed");
      return;
    }
    if (this.state === "closed" || this.state === "stopped") return;
    let url = this._options.url;
    if (token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (err) {
      this.emit("error", /** @type {Error} */ (err));
      this._scheduleReconnect(1006, String(err));
      return;
    }
    this._ws = ws;
    const connection = {};
    this._connection = connection;
    this._lastHeard = Date.now();
    this._connectTimer = setTimeout(() => this._dead(ws, "no connected frame in time"), this._options.connectTimeoutMs ?? 10000);
    ws.onmessage = (/** @type {{data: any}} */ ev) => {
      if (this._ws !== ws) return;
      this._lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data));
      } catch {
        return;
      }
      this._frame(frame);
    };
    ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => {
      if (this._ws !== ws) return;
      this._lost(ev.code, ev.reason);
    };
    ws.onerror = () => {};
  }

  /** @returns {Promise<string | undefined>} */
  async _token() {
    const t = this._options.token;
    const value = typeof t === "function" ? await t() : t;
    this._tokenExp = value ? jwtExpiry(value) : null;
    return value;
  }

  /** @param {any} f */
  _frame(f) {
    switch (f.type) {
      case "connected":
        return this._connected(f);
      case "reply":
      case "error": {
        if (f.id === undefined || f.id === null) {
          if (f.type === "error") this.emit("error", new RealtimeError(f.code, f.message, f.retryAfterMs));
          return;
        }
        const req = this._requests.get(f.id);
        if (!req) return;
        this._requests.delete(f.id);
        clearTimeout(req.timer);
        if (f.type === "reply") req.resolve(f.data);
        else req.reject(new RealtimeError(f.code, f.message, f.retryAfterMs));
        return;
      }
      case "pong":
        return;
      case "notification":
        // Unread ones come again after every connect: each once.
        if (!firstSight(this._seenNotifications, f.notificationId)) return;
        return this.emit("notification", stripType(f));
      case "notification:read":
        return this.emit("notification:read", stripType(f));
      case "announcement": {
        // The announcement is under `data` (its `type` would clash with the
        // frame's, as for `room:updated`). Active ones come again after
        // every connect: each once.
        const a = f.data && typeof f.data === "object" ? f.data : stripType(f);
        if (!firstSight(this._seenAnnouncements, a.announcementId)) return;
        return this.emit("announcement", a);
      }
      case "presence:changed":
        for (const room of this._rooms.values()) room._presence(f);
        return;
      case "broadcast":
        if (f.room) this._rooms.get(f.room)?._event(f);
        return this.emit("broadcast", stripType(f));
      case "room:read":
      case "room:updated":
      case "room:deleted":
      case "member:added":
      case "member:updated":
      case "member:removed":
        // Also for rooms this connection has not joined (a user added to a
        // room, a read position moved on another device).
        this._rooms.get(f.room)?._event(f);
        return this.emit(f.type === "room:read" ? "read" : f.type, stripType(f));
      default:
        if (typeof f.room === "string") this._rooms.get(f.room)?._event(f);
    }
  }

  /** @param {any} f the `connected` frame */
  _connected(f) {
    clearTimeout(this._connectTimer);
    this.userId = f.userId;
    this.connectionId = f.connectionId;
    this._attempt = 0;
    this._setState("connected", {});
    this._startHeartbeat(f.heartbeatIntervalMs);
    this._scheduleRefresh();
    const first = this._firstConnect;
    this._firstConnect = null;
    first?.resolve();
    for (const room of this._rooms.values()) this._joinRoom(room);
  }

  /** @param {number} serverInterval */
  _startHeartbeat(serverInterval) {
    clearInterval(this._pingTimer);
    const every = this._options.pingIntervalMs ?? Math.min(serverInterval || 25000, 25000);
    const timeout = this._options.heartbeatTimeoutMs ?? every * 2 + 5000;
    const ws = this._ws;
    this._pingTimer = setInterval(() => {
      if (Date.now() - this._lastHeard > timeout) {
        this._dead(ws, "heartbeat timeout");
        return;
      }
      this._fire({ type: "ping" });
    }, Math.max(50, Math.min(every, timeout / 2)));
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const auto = this._options.autoRefresh ?? typeof this._options.token === "function";
    if (!auto || this._tokenExp === null) return;
    const left = this._tokenExp - Date.now();
    const margin = Math.min(this._options.refreshMarginMs ?? 60000, left / 3);
    const connection = this._connection;
    this._refreshTimer = setTimeout(async () => {
      if (this._connection !== connection || this.state !== "connected") return;
      try {
        const token = await this._token();
        await this._request("auth:refresh", { token });
        this._scheduleRefresh();
      } catch (err) {
        // The server closes with 4001 at expiry; then we reconnect with a new token.
        this.emit("error", /** @type {Error} */ (err));
      }
    }, Math.max(0, left - margin));
  }

  /**
   * Drops a connection we consider dead without waiting for a close
   * handshake that may never come.
   * @param {any} ws
   * @param {string} why
   */
  _dead(ws, why) {
    if (this._ws !== ws) return;
    this._lost(CLIENT_CLOSE, why);
  }

  /**
   * The connection is gone: decide by the close code.
   * @param {number} code
   * @param {string} reason
   */
  _lost(code, reason) {
    if (this.state === "closed" || this.state === "stopped") return;
    this._teardown(new RealtimeError("DISCONNECTED", `connection lost (${code})`));
    switch (code) {
      case 4003: // kicked by an administrator: do not come back
      case 4403: // refused at the handshake (origin): misconfigured
        this._stop(code, reason);
        return;
      case 4008: // flooding: come back much later
        this._scheduleReconnect(code, reason, this._options.floodBackoffMs ?? 60000);
        return;
      case 4429: // refused at the handshake: rate limited
      case 4503: // refused at the handshake: server busy
        this._scheduleReconnect(code, reason, Math.max(retryAfter(reason) ?? 1000, backoffDelay(this._attempt++, this._options.backoff)));
        return;
      default:
        // 4001 (token expired or refused: the next attempt asks the token
        // function again), 1001 (restart), 1006 (network), 4009, 4010, ...
        this._scheduleReconnect(code, reason);
    }
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @param {number} [delay]
   */
  _scheduleReconnect(code, reason, delay) {
    const wait = delay ?? backoffDelay(this._attempt++, this._options.backoff);
    this._setState("reconnecting", { code, reason, delayMs: wait });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._open(), wait);
  }

  /** @param {number} code @param {string} reason */
  _stop(code, reason) {
    this._setState("stopped", { code, reason });
    const err = new RealtimeError("STOPPED", `the server closed the connection for good (${code} ${reason})`);
    for (const room of this._rooms.values()) room._fail(err);
    this._firstConnect?.reject(err);
    this._firstConnect = null;
  }

  /** @param {Error} err */
  _teardown(err) {
    clearTimeout(this._connectTimer);
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._refreshTimer);
    clearInterval(this._pingTimer);
    const ws = this._ws;
    this._ws = null;
    this._connection = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      if (ws.readyState === 0 || ws.readyState === 1) {
        try {
          if (typeof ws.terminate === "function") ws.terminate();
          else ws.close();
        } catch {
          /* already closing */
        }
      }
    }
    for (const [id, req] of this._requests) {
      clearTimeout(req.timer);
      this._requests.delete(id);
      req.reject(err);
    }
    for (const room of this._rooms.values()) room._disconnected();
  }

  /**
   * @param {ConnectionState} state
   * @param {{code?: number, reason?: string, delayMs?: number}} detail
   */
  _setState(state, detail) {
    const previous = this.state;
    if (previous === state && detail.code === undefined) return;
    this.state = state;
    this.emit("state", { state, previous, ...detail });
  }

  // ---- commands ----

  /**
   * Sends a command and resolves with its reply's `data`.
   * @param {string} type
   * @param {Record<string, unknown>} fields
   * @param {{resend?: boolean}} [opts]
   * @returns {Promise<unknown>}
   */
  _request(type, fields, opts = {}) {
    const ws = this._ws;
    if (!ws || this.state !== "connected") {
      return Promise.reject(new RealtimeError("DISCONNECTED", "not connected"));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = opts.resend
        ? null
        : setTimeout(() => {
            this._requests.delete(id);
            reject(new RealtimeError("TIMEOUT", `no answer to ${type}`));
          }, this._options.requestTimeoutMs ?? 15000);
      this._requests.set(id, { resolve, reject, timer, resend: !!opts.resend });
      ws.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  /**
   * Sends a command without an id (no reply expected); dropped when offline.
   * @param {Record<string, unknown>} frame
   */
  _fire(frame) {
    if (this._ws && this.state === "connected") this._ws.send(JSON.stringify(frame));
  }
}

/**
 * Remembers `id` (the last 1000); false when it was already there.
 * @param {Set<string>} seen
 * @param {string} id
 */
function firstSight(seen, id) {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > 1000) {
    const first = seen.values().next().value;
    if (first !== undefined) seen.delete(first);
  }
  return true;
}

/** @param {any} f */
function stripType(f) {
  const { type: _t, ...rest } = f;
  return rest;
}

/**
 * The `exp` claim of a JWT in ms, or null; the signature is the server's business.
 * @param {string} token
 * @returns {number | null}
 */
export function jwtExpiry(token) {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const json = typeof atob === "function" ? atob(b64) : Buffer.from(b64, "base64").toString("binary");
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** @param {string} reason @returns {number | null} */
function retryAfter(reason) {
  const m = /retryAfterMs=(\d+)/.exec(reason ?? "");
  return m ? Number(m[1]) : null;
}
