// A minimal typed event emitter: `on` returns the function that removes the
// listener, so React effects and tests can clean up in one line.

/**
 * @template {Record<string, any>} Events
 */
export class Emitter {
  constructor() {
    /** @type {Map<keyof Events, Set<(value: any) => void>>} */
    this._listeners = new Map();
  }

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {(value: Events[K]) => void} listener
   * @returns {() => void} removes the listener
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) {
      set = new Set();
      this._listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {(value: Events[K]) => void} listener
   */
  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  /**
   * A listener that throws does not stop the others, nor the client: the
   * error is reported on the console.
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} value
   */
  emit(event, value) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (err) {
        console.error(`realtime: a "${String(event)}" listener threw`, err);
      }
    }
  }
}
