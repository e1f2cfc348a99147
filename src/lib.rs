//! realtime-server: a real-time messaging server on actix.
//!
//! Browsers, phones and services connect over WebSocket (`/ws`) and speak
//! the JSON protocol of `docs/protocol.md`: rooms, messages with per-room
//! sequence numbers, recovery, typing, presence and notifications. An admin
//! HTTP API kicks, notifies and broadcasts.
//!
//! # Layout
//!
//! - `main.rs`: the command line (`serve`, `migrate`, `token`, and the
//!   operator commands of [`cli`] that ask a running server).
//! - [`config`]: the one typed `Settings`, from `config/default.toml`, a
//!   file and the environment, layered by figment (`config/sources.rs`).
//! - [`protocol`]: every wire type and the command decoder.
//! - [`errors`]: the one table of error codes (wire name, HTTP status,
//!   temporary) and of the server's close codes with their reasons.
//! - [`auth`]: JWT verification and minting, the admin key, room patterns.
//! - [`revocation`]: revoked tokens (by user, ban, or `jti`), refused by
//!   `auth` everywhere a token is checked.
//! - [`limits`]: rate limits (governor) and connection counts.
//! - [`actors`]: one module per actor: [`actors::session`] (one per
//!   connection), [`actors::room_registry`] (rooms, seq, fan-out; a thin
//!   actor over plain parts), [`actors::presence`] (users, status, typing),
//!   [`actors::redis_bridge`] (the relay between nodes through Redis); every
//!   message between them in [`actors::messages`].
//! - [`mailbox`]: actor mailboxes whose configured capacity really holds.
//! - [`cluster`]: the typed events nodes send each other, and the `Cluster`
//!   interface the registry reaches other nodes through.
//! - [`broker`]: the interfaces the actors keep state behind (message log,
//!   presence store) and their in-memory implementations.
//! - [`rooms`]: managed rooms: the commands over the store and the role
//!   table (`rooms/rules.rs`), answering the changes the registry applies.
//! - [`http`]: thin handlers: the upgrade, the admin API, health and metrics.
//! - [`metrics`]: counters and the Prometheus rendering.
//! - [`memory`]: malloc arenas and giving freed memory back.
//! - [`server`]: start-up wiring; `server/shutdown.rs` the ordered shutdown.
//!
//! `docs/architecture.md` draws the actor graph and the path of a message.

pub mod actors;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod errors;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod mailbox;
pub mod memory;
pub mod metrics;
pub mod protocol;
pub mod revocation;
pub mod rooms;
pub mod server;
pub mod store;
