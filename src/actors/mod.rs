//! The actors. Each module holds one actor and the messages it handles.
//!
//! ```text
//!  WebSocket ──> Session ──(Join, Publish, Typing, ...)──> RoomRegistry ──(Track*, SetTyping, ...)──> PresenceTracker
//!                   ^                                        │     ^
//!                   └──────────── Deliver(bytes), Shutdown ──┘     │ FromCluster, NodeGone
//!                                              Relay, Follow, Gather│
//!                                                          v       │
//!                                                       RedisBridge <──> Redis (other nodes)
//! ```

pub mod presence;
pub mod redis_bridge;
pub mod room_registry;
pub mod session;
