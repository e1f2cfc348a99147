//! The state the actors keep behind small interfaces, so that a database
//! or Redis implementation plugs in without reshaping the actors (as
//! centrifuge puts a memory and a Redis broker behind one interface).
//!
//! - [`MessageLog`]: per-room `seq` assignment, recent history, recovery
//!   and `clientMsgId` dedupe. Asynchronous, because a durable log is.
//! - [`PresenceStore`]: who is connected, their status, and which users
//!   are in which room. Synchronous: the tracker holds the full view in
//!   memory; a cross-node implementation is fed by the relay.
//!
//! `memory` holds the in-memory implementations used by a single node.

pub mod memory;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::protocol::{CustomStatus, Member, MessageRecord, RawJson, Status};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Unavailable(String),
}

pub type StoreFuture<T> = BoxFuture<'static, Result<T, StoreError>>;

/// A message as sent, before it has a `seq`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: Arc<str>,
    pub user_id: Arc<str>,
    pub content: String,
    pub thread_id: Option<String>,
    pub metadata: Option<RawJson>,
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Appended {
    pub record: Arc<MessageRecord>,
    /// True when the same user already sent this `clientMsgId`: `record`
    /// is the earlier message and must not be delivered again.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The room's latest `seq` (0 before its first message).
    pub latest: u64,
    /// Messages after `since`, oldest first, at most the cap.
    pub messages: Vec<Arc<MessageRecord>>,
    /// True when `messages` holds every message after `since`.
    pub complete: bool,
}

impl PartialEq for MessageRecord {
    fn eq(&self, other: &Self) -> bool {
        self.room == other.room && self.seq == other.seq && self.message_id == other.message_id
    }
}

pub trait MessageLog: Send + Sync + 'static {
    /// Assigns the next `seq` of the room and keeps the message. The order
    /// of calls is the order of seqs within a room: an implementation takes
    /// the message at once and its future only waits for the outcome.
    fn append(&self, msg: NewMessage) -> StoreFuture<Appended>;
    /// The latest `seq`, and the messages after `since` (none when `since`
    /// is absent), up to `max`. When more than `max` were missed, the
    /// newest `max` are returned and `complete` is false.
    fn recover(&self, room: &str, since: Option<u64>, max: usize) -> StoreFuture<Recovery>;
    /// Up to `limit` messages before `before` (or the newest), oldest first.
    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreFuture<Vec<Arc<MessageRecord>>>;
}

/// What is known of one connected user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPresence {
    pub name: Option<Arc<str>>,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
    pub connections: usize,
}

pub trait PresenceStore: Send + 'static {
    /// A connection of `user` opened.
    fn connect(&mut self, user: &Arc<str>, name: Option<Arc<str>>);
    /// A connection of `user` closed; forgets the user after the last.
    fn disconnect(&mut self, user: &str);
    /// A connection of `user` joined `room`; true when it is the user's first there.
    fn join(&mut self, room: &Arc<str>, user: &Arc<str>) -> bool;
    /// A connection of `user` left `room`; true when it was the user's last there.
    fn leave(&mut self, room: &str, user: &str) -> bool;
    /// Sets a connected user's status; false when the user is unknown.
    fn set_status(&mut self, user: &str, status: Status, custom: Option<CustomStatus>) -> bool;
    fn user(&self, user: &str) -> Option<UserPresence>;
    /// The members of `room`, sorted by user id; `connections` counts the
    /// user's connections in that room.
    fn members(&self, room: &str) -> Vec<Member>;
}
