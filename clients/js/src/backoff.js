// Reconnect delays: exponential with full jitter and a cap (the AWS
// architecture blog's "full jitter"): delay = random(0, min(cap, base * 2^n)).
// Full jitter spreads a crowd of clients that lost the same server over the
// whole window, so a restarted server is not hit by all of them at once.

/**
 * @typedef {object} BackoffOptions
 * @property {number} [initialMs] base delay (default 500)
 * @property {number} [maxMs] cap (default 30000)
 */

/**
 * @param {number} attempt 0 for the first retry after a loss
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] Math.random by default
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const initial = options.initialMs ?? 500;
  const cap = options.maxMs ?? 30000;
  const ceiling = Math.min(cap, initial * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
