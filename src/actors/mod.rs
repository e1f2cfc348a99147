//! The actors. Each module holds one actor and the messages it handles.
//!
//! ```text
//!  WebSocket ──> Session ──(Join, Publish, Typing, ...)──> RoomRegistry ──(Track*, SetTyping, ...)──> PresenceTracker
//!                   ^                                           │
//!                   └──────────── Deliver(bytes), Shutdown ─────┘
//! ```

pub mod presence;
pub mod room_registry;
pub mod session;
