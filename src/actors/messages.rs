//! Every message one actor sends another, and the answers they carry.
//!
//! This module imports no actor: an actor names its peers only through
//! these types, a [`Recipient`] for the peers it calls back (sessions get
//! [`ToSession`]), a [`Peer`](crate::mailbox::Peer) (the bridge's way into
//! the registry) or the [`Cluster`](crate::cluster::Cluster) interface (the
//! registry's way to other nodes). The graph and who may send what is drawn
//! in `docs/architecture.md`.
//!
//! - Session → RoomRegistry: [`Connect`] … [`History`].
//! - Admin HTTP → RoomRegistry: [`Kick`] … [`CloseAll`], [`Revoke`].
//! - Session and admin HTTP → RoomRegistry: [`ApplyRoomChanges`].
//! - RedisBridge → RoomRegistry: [`FromCluster`], [`NodeGone`].
//! - RoomRegistry → PresenceTracker: [`TrackConnect`] … [`ApplySnapshot`].
//! - RoomRegistry → RedisBridge (behind `Cluster`): [`Relay`], [`Follow`],
//!   [`Gather`]; shutdown → RedisBridge: [`Depart`].
//! - RoomRegistry → Session: [`ToSession`] (always `try_send`).

use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conn::{ConnHandle, ConnId};
use crate::auth::Identity;
use crate::broker::{MemberPage, MessageChange, NodeSnapshot, UserPresence};
use crate::cluster::{AdminAnswer, AdminOp, Channel, ClusterEvent};
use crate::protocol::{
    Announcement, CommandError, CustomStatus, Member, MessageKind, MessageRecord, Notification,
    RawJson, Status,
};
use crate::revocation::{Revocation, RevocationChange};
use crate::rooms::RoomChange;

// ---------------------------------------------------------------------------
// To a session

/// What the registry hands a session. Always sent with `try_send`: a full
/// session mailbox marks a slow consumer, never a wait.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ToSession {
    /// An event for the client, already serialised (shared by all receivers).
    Deliver(ByteString),
    /// Close the connection with `code` (kick, shutdown).
    Shutdown { code: u16, reason: String },
}

// ---------------------------------------------------------------------------
// Session → RoomRegistry

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connection_id: String,
    #[schema(value_type = String)]
    pub node_id: Arc<str>,
    #[schema(value_type = String)]
    pub user_id: Arc<str>,
    /// `ip:port`.
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub connected_at: String,
    /// The rooms besides the personal one; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub rooms: Vec<Arc<str>>,
}

/// A session started. Queued in a mailbox place the upgrade waited for, so
/// it is never refused and comes before the session's first command.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub id: ConnId,
    pub identity: Arc<Identity>,
    pub session: Recipient<ToSession>,
    pub handle: Arc<ConnHandle>,
    pub info: ConnectionInfo,
}

/// A session ended, whichever way. Removes every trace of it; sent with a
/// wait for room, never dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: ConnId,
}

/// auth:refresh brought new claims (rooms, role, name).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateIdentity {
    pub id: ConnId,
    pub identity: Arc<Identity>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    pub room: Arc<str>,
    pub seq: u64,
    /// At most `limits.join_members_max`, the joining user among them.
    pub members: Vec<Member>,
    /// Every user in the room, on every node.
    pub member_count: usize,
    pub missed: Vec<Arc<MessageRecord>>,
    pub recovered: bool,
    /// With `since`: messages up to `since` edited or deleted since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<Arc<MessageRecord>>>,
}

#[derive(Message)]
#[rtype(result = "Result<JoinReply, CommandError>")]
pub struct Join {
    pub id: ConnId,
    pub room: String,
    pub since: Option<u64>,
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Leave {
    pub id: ConnId,
    pub room: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub message_id: String,
    pub seq: u64,
    pub timestamp: String,
}

#[derive(Message)]
#[rtype(result = "Result<Published, CommandError>")]
pub struct Publish {
    pub id: ConnId,
    pub room: String,
    pub content: String,
    pub thread_id: Option<String>,
    pub metadata: Option<RawJson>,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<String>,
    pub kind: MessageKind,
}

/// `room:read`: stores the user's read position (access to the room is
/// needed, not a join) and tells their other connections; answers it.
#[derive(Message)]
#[rtype(result = "Result<u64, CommandError>")]
pub struct MarkRead {
    pub id: ConnId,
    pub room: String,
    pub seq: u64,
}

/// Notifications `user` read on connection `origin` (`None`: all): the
/// event to their other connections here and on every node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotificationsRead {
    pub origin: ConnId,
    pub user: Arc<str>,
    pub ids: Option<Vec<String>>,
}

/// A message stored and delivered on the server's behalf (admin API).
#[derive(Message)]
#[rtype(result = "Result<Published, CommandError>")]
pub struct ServerPublish {
    pub room: String,
    pub user_id: String,
    pub content: String,
    pub kind: MessageKind,
    pub metadata: Option<RawJson>,
}

/// `message:edit` / `message:delete` by a connection in the room; answers
/// the message as the change left it.
#[derive(Message)]
#[rtype(result = "Result<Arc<MessageRecord>, CommandError>")]
pub struct ChangeMessage {
    pub id: ConnId,
    pub room: String,
    pub message_id: String,
    pub change: MessageChange,
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Typing {
    pub id: ConnId,
    pub room: String,
    pub thread_id: Option<String>,
    pub active: bool,
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct UpdatePresence {
    pub id: ConnId,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
}

/// `presence:get`: a page of the room's members.
#[derive(Message)]
#[rtype(result = "Result<MemberPage, CommandError>")]
pub struct PresenceOf {
    pub id: ConnId,
    pub room: String,
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<MessageRecord>>, CommandError>")]
pub struct History {
    pub id: ConnId,
    pub room: String,
    pub before: Option<u64>,
    pub limit: usize,
    pub reply_to: Option<String>,
}

// ---------------------------------------------------------------------------
// Session and admin HTTP → RoomRegistry: managed rooms

/// Changes a room command made (stored already): the registry updates its
/// membership cache, sends the events, makes removed members leave, and
/// relays the changes to the other nodes. Sent with a wait for room and
/// answered once applied, so the command's reply comes after its effects.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyRoomChanges {
    pub changes: Vec<RoomChange>,
}

// ---------------------------------------------------------------------------
// Admin HTTP and shutdown → RoomRegistry

/// Closes every connection of a user with 4003 on every node; answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Kick {
    pub user_id: String,
    pub reason: String,
    /// Put in force on every node before its connections are closed, so a
    /// reconnect cannot slip in between.
    pub revocation: Option<Revocation>,
}

/// Adds or lifts a token revocation on every node; answers how many nodes
/// applied it (this one included).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Revoke(pub RevocationChange);

/// Delivers a notification to every connection of a user on every node;
/// answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Notify {
    pub user_id: String,
    pub notification: Notification,
}

/// Sends an `announcement` event to every connection whose token's `roles`
/// meet `target_roles` (empty: all), on every node; answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Announce {
    pub announcement: Announcement,
    pub target_roles: Vec<String>,
    /// Later than now: sent by each node when it comes (0 answered now).
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
}

/// An announcement that starts later, loaded at start-up: this node's
/// timer for it (the other nodes have theirs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScheduleAnnouncement {
    pub announcement: Announcement,
    pub target_roles: Vec<String>,
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
}

/// An announcement ended: every node drops its timer for it, if it has
/// one; answers how many nodes heard it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct EndAnnouncement {
    pub announcement_id: String,
}

/// Sends a `broadcast` event to a room, or to every connection, on every
/// node; answers how many connections got it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Broadcast {
    pub room: Option<String>,
    pub event: String,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    #[schema(value_type = String)]
    pub room: Arc<str>,
    pub users: usize,
    pub connections: usize,
}

/// Rooms with members on any node; counts add up every node's.
#[derive(Message)]
#[rtype(result = "Vec<RoomInfo>")]
pub struct ListRooms;

/// Connections on every node, optionally of one user.
#[derive(Message)]
#[rtype(result = "Vec<ConnectionInfo>")]
pub struct ListConnections {
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryStats {
    pub connections: usize,
    pub users: usize,
    pub rooms: usize,
}

/// This node's counts.
#[derive(Message)]
#[rtype(result = "RegistryStats")]
pub struct Stats;

/// Messages waiting in each actor's mailbox (sessions summed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxDepths {
    pub session: u64,
    pub room_registry: u64,
    pub presence_tracker: u64,
    pub redis_bridge: u64,
}

/// One node's line of `/admin/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeFigures {
    #[schema(value_type = String)]
    pub node_id: Arc<str>,
    pub connections: usize,
    pub users: usize,
    pub rooms: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    pub rate_limited: u64,
    pub slow_consumer_closes: u64,
    pub uptime_secs: u64,
    pub mailbox_depth: MailboxDepths,
}

/// Every node's figures (this node first), and how many nodes were asked
/// but did not answer in time.
#[derive(Message)]
#[rtype(result = "(Vec<NodeFigures>, usize)")]
pub struct ClusterStats;

/// Server shutdown: tells every session to close with 1001.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

// ---------------------------------------------------------------------------
// RedisBridge → RoomRegistry

/// An event from another node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromCluster {
    pub node: Arc<str>,
    pub event: ClusterEvent,
}

/// Another node is dead (its liveness key expired) or restarted: its users
/// leave, once per user and room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeGone {
    pub node: Arc<str>,
}

// ---------------------------------------------------------------------------
// RoomRegistry → PresenceTracker

/// A typing list that changed and must be sent to the room.
#[derive(Debug, Clone, PartialEq)]
pub struct TypingChange {
    pub room: Arc<str>,
    pub thread_id: Option<String>,
    pub users: Vec<Arc<str>>,
}

/// A connection of `user` opened on `node`; it is implicitly in `personal_room`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrackConnect {
    pub node: Arc<str>,
    pub user: Arc<str>,
    pub name: Option<Arc<str>>,
    pub personal_room: Arc<str>,
}

/// A connection of `user` on `node` closed while in `rooms` (its personal
/// room included).
#[derive(Message)]
#[rtype(result = "Vec<LeaveOutcome>")]
pub struct TrackDisconnect {
    pub node: Arc<str>,
    pub user: Arc<str>,
    pub rooms: Vec<Arc<str>>,
}

#[derive(Debug, Clone)]
pub struct JoinOutcome {
    /// The user's first connection in the room: announce `user:joined`.
    pub first: bool,
    /// The first `members_max` members, the joining user among them.
    pub members: MemberPage,
}

#[derive(Message)]
#[rtype(result = "JoinOutcome")]
pub struct TrackJoin {
    pub node: Arc<str>,
    pub room: Arc<str>,
    pub user: Arc<str>,
    /// How many members the answer lists at most (0: none, a remote join).
    pub members_max: usize,
}

#[derive(Debug, Clone)]
pub struct LeaveOutcome {
    pub room: Arc<str>,
    /// The user's last connection in the room left: announce `user:left`.
    pub last: bool,
    /// Typing lists that lost this user.
    pub typing: Vec<TypingChange>,
}

#[derive(Message)]
#[rtype(result = "LeaveOutcome")]
pub struct TrackLeave {
    pub node: Arc<str>,
    pub room: Arc<str>,
    pub user: Arc<str>,
}

/// Sets a user's status; answers the new presence and the rooms the user is
/// in on any node (None: user unknown).
#[derive(Message)]
#[rtype(result = "Option<(UserPresence, Vec<Arc<str>>)>")]
pub struct SetStatus {
    pub user: Arc<str>,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
}

/// A page of a room's members: at most `limit` after the user id `after`,
/// with `including` (a user who just joined) always among them.
#[derive(Message)]
#[rtype(result = "MemberPage")]
pub struct GetMembers {
    pub room: Arc<str>,
    pub after: Option<String>,
    pub limit: usize,
    pub including: Option<Arc<str>>,
}

/// typing:start / typing:stop; answers the new list when it changed.
#[derive(Message)]
#[rtype(result = "Option<TypingChange>")]
pub struct SetTyping {
    pub room: Arc<str>,
    pub thread_id: Option<String>,
    pub user: Arc<str>,
    pub active: bool,
}

/// Drops the expired entries of one typing list; answers the new list when
/// it changed.
#[derive(Message)]
#[rtype(result = "Option<TypingChange>")]
pub struct ExpireTyping {
    pub room: Arc<str>,
    pub thread_id: Option<String>,
}

/// A node died or restarted: forget its entries. Answers the (room, user)
/// pairs that no longer have any connection, to announce `user:left`.
#[derive(Message)]
#[rtype(result = "Vec<(LeaveOutcome, Arc<str>)>")]
pub struct DropNode {
    pub node: Arc<str>,
}

/// What this node contributes to presence, for a node that asks.
#[derive(Message)]
#[rtype(result = "NodeSnapshot")]
pub struct TakeSnapshot {
    pub node: Arc<str>,
}

/// Another node's complete contribution replaces what was known of it.
/// Answers the users who appeared in rooms and those who left them.
#[derive(Message)]
#[rtype(result = "SnapshotChanges")]
pub struct ApplySnapshot {
    pub node: Arc<str>,
    pub snapshot: NodeSnapshot,
}

#[derive(Debug, Default)]
pub struct SnapshotChanges {
    /// (room, user) now present that were not.
    pub joined: Vec<(Arc<str>, Arc<str>)>,
    pub left: Vec<(LeaveOutcome, Arc<str>)>,
}

// ---------------------------------------------------------------------------
// To the RedisBridge

/// An event for other nodes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Relay {
    pub channel: Channel,
    pub event: ClusterEvent,
}

/// Follow (or stop following) a room's channel; answers once subscribed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Follow {
    pub room: Arc<str>,
    pub on: bool,
}

/// Asks every other live node to carry out `op`; answers what came back
/// within `redis.gather_timeout_ms`, and how many nodes were asked.
#[derive(Message)]
#[rtype(result = "(Vec<AdminAnswer>, usize)")]
pub struct Gather {
    pub op: AdminOp,
}

/// Shutdown: say `Bye` (after everything queued), and delete this node's
/// liveness key, so the other nodes drop its presence at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Depart;
