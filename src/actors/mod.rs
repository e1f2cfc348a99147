//! The actors, their messages, and what they share about a connection.
//!
//! ```text
//!  WebSocket ──> Session ──(Join, Publish, Typing, ...)──> RoomRegistry ──(Track*, SetTyping, ...)──> PresenceTracker
//!                   ^                                        │     ^
//!                   └──────── ToSession (Deliver, Shutdown) ─┘     │ FromCluster, NodeGone (Peer)
//!                                 Relay, Follow, Gather (Cluster) │
//!                                                          v       │
//!                                                       RedisBridge <──> Redis (other nodes)
//! ```
//!
//! Every message between actors is declared in [`messages`], which imports
//! no actor. Modules import one way: session → registry → tracker; the
//! registry calls sessions back through `Recipient<ToSession>` and other
//! nodes through [`crate::cluster::Cluster`], and the bridge reaches the
//! registry through [`crate::mailbox::Peer`]s. The registry, tracker and
//! bridge mailboxes are bounded by [`crate::mailbox`].

pub mod conn;
pub mod messages;
pub mod presence;
pub mod redis_bridge;
pub mod room_registry;
pub mod session;
