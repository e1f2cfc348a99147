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

use crate::protocol::{CustomStatus, Member, MessageKind, MessageRecord, RawJson, Status};

/// Why a database operation failed. Clients get every kind as
/// `UNAVAILABLE` with this text ([`StoreError::to_command_error`]); the kind
/// tells the server's own callers whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The database (or the writer in front of it) cannot take the
    /// operation now: unreachable, pool exhausted, queue full, locked.
    #[error("{0}")]
    Unavailable(String),
    /// No answer within `database.timeout_ms`; the operation may still
    /// complete.
    #[error("database did not answer within {0} ms")]
    Timeout(u64),
    /// The database answered and refused this operation (a constraint, a
    /// value it cannot store): the same operation would fail again.
    #[error("database refused the operation: {0}")]
    Refused(String),
    /// A unique key is taken already.
    #[error("conflict: {0}")]
    Conflict(String),
    /// What the operation names does not exist (a `replyTo`, the message
    /// to edit): `NOT_FOUND` to the client.
    #[error("{0}")]
    Missing(String),
}

impl StoreError {
    /// True when the operation itself is at fault, so retrying it as it is
    /// cannot succeed.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StoreError::Refused(_) | StoreError::Conflict(_) | StoreError::Missing(_)
        )
    }

    /// The answer a client gets: the command could not be honoured now.
    pub fn to_command_error(&self) -> crate::protocol::CommandError {
        use crate::protocol::{CommandError, ErrorCode};
        match self {
            StoreError::Missing(what) => CommandError::new(ErrorCode::NotFound, what.clone()),
            _ => CommandError::new(ErrorCode::Unavailable, self.to_string()),
        }
    }
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
    /// Checked by the log: a message of the same room, else `Missing`.
    pub reply_to: Option<String>,
    pub kind: MessageKind,
}

/// An edit or a deletion of a stored message, by `by`.
#[derive(Debug, Clone)]
pub enum MessageChange {
    Edit {
        content: String,
        metadata: Option<RawJson>,
    },
    Delete,
}

impl MessageChange {
    /// The record as this change leaves it (`now` is the edit's time).
    pub fn apply(self, record: &mut MessageRecord, now: &str) {
        match self {
            MessageChange::Edit { content, metadata } => {
                record.content = content;
                record.metadata = metadata;
                record.edited_at = Some(now.to_string());
            }
            MessageChange::Delete => {
                record.content = String::new();
                record.metadata = None;
                record.deleted = true;
            }
        }
    }
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
    /// The current state of the messages with `seq <= since` edited or
    /// deleted since the client can have seen them, oldest first, at most
    /// the cap (`docs/protocol.md`, recovery of changes).
    pub changed: Vec<Arc<MessageRecord>>,
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
    /// Up to `limit` messages before `before` (or the newest), oldest first;
    /// with `reply_to`, only the replies to that message.
    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        reply_to: Option<&str>,
    ) -> StoreFuture<Vec<Arc<MessageRecord>>>;
    /// One stored message of the room, as it is now (`Missing` if none).
    fn find(&self, room: &str, message_id: &str) -> StoreFuture<Arc<MessageRecord>>;
    /// Edits or deletes a stored message (a deleted one is `Missing`);
    /// answers its new state. A deletion empties the content and metadata
    /// in the store. Both mark the message changed at the room's current
    /// `seq`, so that recovery returns it (`Recovery::changed`).
    fn change(
        &self,
        room: &str,
        message_id: &str,
        change: MessageChange,
    ) -> StoreFuture<Arc<MessageRecord>>;
    /// `room:read`: moves `user`'s read position in `room` to `seq` (at
    /// most the room's latest), never back; answers the position.
    fn mark_read(&self, room: &str, user: &str, seq: u64) -> StoreFuture<u64>;
}

/// What is known of one connected user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPresence {
    pub name: Option<Arc<str>>,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
    /// Connections on all nodes.
    pub connections: usize,
}

/// A page of a room's members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberPage {
    pub members: Vec<Member>,
    /// All users in the room, on every node.
    pub count: usize,
    /// The user id to page on from, when there are more.
    pub next: Option<Arc<str>>,
}

impl MemberPage {
    /// Makes sure `user` (who just joined) is listed: in a full page, in
    /// place of the last entry, keeping the order by user id.
    pub fn including(mut self, user: Option<Member>, limit: usize) -> MemberPage {
        let Some(user) = user else { return self };
        if self.members.iter().any(|m| m.user_id == user.user_id) {
            return self;
        }
        if self.members.len() >= limit {
            self.members.truncate(limit.saturating_sub(1));
        }
        let at = self.members.partition_point(|m| m.user_id < user.user_id);
        self.members.insert(at, user);
        self
    }
}

/// What one node contributes to presence, as sent to a node that asks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSnapshot {
    pub users: Vec<SnapshotUser>,
    /// (room, user, that user's connections in the room on this node)
    pub rooms: Vec<(Arc<str>, Arc<str>, usize)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotUser {
    pub user: Arc<str>,
    pub name: Option<Arc<str>>,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
    pub connections: usize,
}

/// Presence across nodes. Every entry belongs to the node holding the
/// connection, so the entries of a node that died can be dropped at once.
/// A single node uses it with its own id only.
pub trait PresenceStore: Send + 'static {
    /// A connection of `user` opened on `node`.
    fn connect(&mut self, node: &Arc<str>, user: &Arc<str>, name: Option<Arc<str>>);
    /// A connection of `user` on `node` closed; the user is forgotten after
    /// their last connection anywhere.
    fn disconnect(&mut self, node: &str, user: &str);
    /// A connection of `user` on `node` joined `room`; true when it is the
    /// user's first connection there on any node.
    fn join(&mut self, node: &Arc<str>, room: &Arc<str>, user: &Arc<str>) -> bool;
    /// A connection of `user` on `node` left `room`; true when it was the
    /// user's last there on any node.
    fn leave(&mut self, node: &str, room: &str, user: &str) -> bool;
    /// Whether `user` has a connection in `room` on any node.
    fn present(&self, room: &str, user: &str) -> bool;
    /// Sets a connected user's status; false when the user is unknown.
    fn set_status(&mut self, user: &str, status: Status, custom: Option<CustomStatus>) -> bool;
    fn user(&self, user: &str) -> Option<UserPresence>;
    /// A page of the members of `room` on all nodes, sorted by user id:
    /// at most `limit`, after the user id `after`; `connections` counts the
    /// user's connections in that room. Costs the page, not the room.
    fn members(&self, room: &str, after: Option<&str>, limit: usize) -> MemberPage;
    /// One member's entry, if `user` is in `room`.
    fn member(&self, room: &str, user: &str) -> Option<Member>;
    /// The rooms `user` is in on any node.
    fn rooms_of(&self, user: &str) -> Vec<Arc<str>>;
    /// Everything `node` contributes.
    fn snapshot(&self, node: &str) -> NodeSnapshot;
    /// Forgets everything of `node`.
    fn drop_node(&mut self, node: &str);
}
