// realtime-server's JavaScript client. See ../README.md.
export { RealtimeClient, jwtExpiry } from "./client.js";
export { Room } from "./room.js";
export { ManagedRooms } from "./managed.js";
export { RealtimeError } from "./errors.js";
export { backoffDelay } from "./backoff.js";
export { Emitter } from "./emitter.js";
