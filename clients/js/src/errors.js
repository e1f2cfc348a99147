// Errors the client rejects with: the server's `code` and `message`, or one
// of the client's own codes (DISCONNECTED, CLOSED, STOPPED, LEFT, TIMEOUT).

export class RealtimeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [retryAfterMs]
   */
  constructor(code, message, retryAfterMs) {
    super(`${code}: ${message}`);
    this.name = "RealtimeError";
    /** the server's error code, or the client's own */
    this.code = code;
    /** the server's text, meant for people */
    this.serverMessage = message;
    /** @type {number | undefined} */
    this.retryAfterMs = retryAfterMs;
  }

  /** Codes after which the same command may succeed unchanged. */
  get temporary() {
    return this.code === "RATE_LIMITED" || this.code === "UNAVAILABLE" || this.code === "ROOM_FULL";
  }
}
