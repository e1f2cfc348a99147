// Managed rooms (docs/protocol.md 13): rooms created explicitly, with
// stored settings and members. `client.rooms` is one of these; its methods
// are the room commands, answered with the server's room and member
// objects; they wait for the connection (connecting if need be). The events (`room:updated`, `member:added`, …) come on the Room
// joined (room.js) and on the client.

/**
 * @typedef {"channel" | "group" | "dm" | "broadcast"} RoomType
 * @typedef {"owner" | "admin" | "moderator" | "member"} Role
 */

/**
 * @typedef {object} RoomInfo the server's room object
 * @property {string} room
 * @property {RoomType} type
 * @property {"public" | "private"} visibility
 * @property {string | null} title
 * @property {number | null} maxUsers
 * @property {number | null} rateLimit
 * @property {Record<string, unknown>} metadata
 * @property {string} createdBy
 * @property {string} createdAt
 * @property {number} memberCount
 */

/**
 * @typedef {RoomInfo & {lastSeq: number, lastReadSeq: number, unread: number}} RoomListEntry
 */

/**
 * @typedef {object} MemberInfo the server's member object
 * @property {string} userId
 * @property {Role} role
 * @property {boolean} muted
 * @property {string} joinedAt
 * @property {number} lastReadSeq
 */

/**
 * @typedef {object} NewRoomOptions
 * @property {Exclude<RoomType, "dm">} [type] default `channel`
 * @property {"public" | "private"} [visibility] default `public`
 * @property {string | null} [title]
 * @property {number | null} [maxUsers]
 * @property {number | null} [rateLimit]
 * @property {Record<string, unknown>} [metadata]
 * @property {string[]} [members] other users, added as `member`
 */

/**
 * @typedef {object} RoomPatch any of these; `null` clears title, maxUsers, rateLimit
 * @property {string | null} [title]
 * @property {"public" | "private"} [visibility]
 * @property {number | null} [maxUsers]
 * @property {number | null} [rateLimit]
 * @property {Record<string, unknown>} [metadata]
 */

const MEMBER_PAGE = 200;

export class ManagedRooms {
  /** @param {import("./client.js").RealtimeClient} client */
  constructor(client) {
    this._client = client;
  }

  /**
   * Creates a managed room; the caller is its `owner`.
   * @param {string} room
   * @param {NewRoomOptions} [options]
   * @returns {Promise<RoomInfo>}
   */
  create(room, options = {}) {
    const { type = "channel", visibility = "public", ...rest } = options;
    // The room's type travels as `roomType`: `type` is the command's name.
    return this._ask("room:create", { room, roomType: type, visibility, ...defined(rest) });
  }

  /**
   * Changes a room's settings (role `admin`).
   * @param {string} room
   * @param {RoomPatch} patch
   * @returns {Promise<RoomInfo>}
   */
  update(room, patch) {
    return this._ask("room:update", { ...defined(patch), room });
  }

  /**
   * Deletes a room (role `owner`); its messages stay stored.
   * @param {string} room
   * @returns {Promise<{}>}
   */
  delete(room) {
    return this._ask("room:delete", { room });
  }

  /**
   * The managed rooms the user is a member of, with `lastSeq`,
   * `lastReadSeq` and `unread`.
   * @returns {Promise<RoomListEntry[]>}
   */
  async list() {
    const data = /** @type {{rooms: RoomListEntry[]}} */ (await this._ask("room:list", {}));
    return data.rooms;
  }

  /**
   * The direct-message room of the user and `userId` (made on first use);
   * join it with `client.join(info.room)`.
   * @param {string} userId
   * @returns {Promise<RoomInfo>}
   */
  openDm(userId) {
    return this._ask("dm:open", { userId });
  }

  /**
   * @param {string} room
   * @param {string} userId
   * @param {{role?: Role}} [options]
   * @returns {Promise<MemberInfo>}
   */
  addMember(room, userId, options = {}) {
    return this._ask("member:add", { room, userId, ...defined(options) });
  }

  /**
   * Removes a member; removing yourself leaves the room for good.
   * @param {string} room
   * @param {string} userId
   * @returns {Promise<{}>}
   */
  removeMember(room, userId) {
    return this._ask("member:remove", { room, userId });
  }

  /**
   * Changes a member's role and/or mutes or unmutes them.
   * @param {string} room
   * @param {string} userId
   * @param {{role?: Role, muted?: boolean}} changes
   * @returns {Promise<MemberInfo>}
   */
  updateMember(room, userId, changes) {
    return this._ask("member:update", { ...defined(changes), room, userId });
  }

  /**
   * Every stored member of the room, sorted by user id, fetched page by page.
   * @param {string} room
   * @param {{after?: string, pageSize?: number}} [options]
   * @returns {AsyncGenerator<MemberInfo>}
   */
  async *members(room, options = {}) {
    let after = options.after;
    const limit = Math.min(options.pageSize ?? 100, MEMBER_PAGE);
    for (;;) {
      /** @type {Record<string, unknown>} */
      const frame = { room, limit };
      if (after !== undefined) frame.after = after;
      const data = /** @type {{members: MemberInfo[], next: string | null}} */ (await this._ask("member:list", frame));
      yield* data.members;
      if (data.next === null || data.next === undefined) return;
      after = data.next;
    }
  }

  /**
   * Sends the command once connected (connecting first if need be).
   * @param {string} type
   * @param {Record<string, unknown>} fields
   * @returns {Promise<any>}
   */
  async _ask(type, fields) {
    if (this._client.state !== "connected") await this._client.connect();
    return this._client._request(type, fields);
  }
}

/**
 * The fields that are not `undefined` (`null` stays: it clears a setting).
 * @param {Record<string, unknown>} o
 */
function defined(o) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}
