//! The RoomRegistry actor: rooms and their member sessions.
//!
//! It authorizes joins, enforces room limits, has the [`MessageLog`] assign
//! each message its per-room `seq`, and fans events out: each event is
//! serialised once and the same shared bytes go to every member. Delivery
//! uses `try_send`, never `do_send`, so a member whose mailbox is full is
//! found at once: it is a slow consumer, skipped from then on and closed
//! (see `docs/architecture.md`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use chrono::Utc;
use futures_util::{FutureExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::presence::{
    ApplySnapshot, DropNode, ExpireTyping, GetMembers, LeaveOutcome, PresenceTracker, SetStatus,
    SetTyping, TakeSnapshot, TrackConnect, TrackDisconnect, TrackJoin, TrackLeave, TypingChange,
};
use super::redis_bridge::{Follow, Gather, RedisBridge, Relay};
use super::session::{ConnHandle, ConnId, Deliver, Session, Shutdown};
use crate::auth::{pattern_matches, Identity, PERSONAL_PREFIX};
use crate::broker::{
    Appended, MessageLog, NewMessage, Recovery, StoreError, StoreFuture, UserPresence,
};
use crate::cluster::{AdminOp, Channel, ClusterEvent, TrackOp};
use crate::config::Settings;
use crate::metrics::{add, get, inc, Metrics};
use crate::protocol::{
    close, encode, timestamp, Closing, CommandError, CustomStatus, ErrorCode, Event, Member,
    MessageRecord, Notification, RawJson, Status,
};
use crate::store::now_ms;
use crate::store::records::{Record, Records};

/// The registry's share of the settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// This node's id: presence entries it makes are its own.
    pub node_id: Arc<str>,
    pub public_rooms: Vec<String>,
    pub max_users_default: usize,
    pub max_users: Vec<(String, usize)>,
    pub max_rooms_per_connection: usize,
    pub recovery_max: usize,
    pub typing_timeout: Duration,
    pub slow_consumer_grace: Duration,
    /// How long a message from another node waits for a missing seq.
    pub gap_timeout: Duration,
    /// Rooms with more users than this get no join/leave events.
    pub join_leave_max_users: usize,
    /// How long `message:send` waits for its commit (`database.timeout_ms`).
    pub commit_timeout: Duration,
}

impl RegistryConfig {
    pub fn from_settings(s: &Settings, node_id: &str) -> Self {
        RegistryConfig {
            node_id: node_id.into(),
            public_rooms: s.rooms.public.clone(),
            max_users_default: s.limits.max_users_per_room,
            max_users: s
                .rooms
                .max_users
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            max_rooms_per_connection: s.limits.max_rooms_per_connection,
            recovery_max: s.limits.recovery_max,
            typing_timeout: s.typing.timeout,
            slow_consumer_grace: s.limits.slow_consumer_grace,
            commit_timeout: s.database.timeout,
            gap_timeout: s.redis.gap_timeout,
            join_leave_max_users: s.rooms.join_leave_events_max_users,
        }
    }

    /// The limit of the longest (most specific) matching pattern.
    fn max_users(&self, room: &str) -> usize {
        self.max_users
            .iter()
            .filter(|(pattern, _)| pattern_matches(pattern, room))
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.max_users_default, |(_, n)| *n)
    }
}

/// Where a member's events go.
#[derive(Clone)]
struct Target {
    addr: Addr<Session>,
    handle: Arc<ConnHandle>,
}

/// Where a room's sequencer starts on this node.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum SeqStart {
    /// Not read (a personal room): the first message delivered sets
    /// `last_seq`.
    #[default]
    FirstDelivery,
    /// Joined for the first time on this node: messages are held until the
    /// join has read the newest stored seq. Until then `last_seq` (0) says
    /// nothing, and a message that happened to arrive first (say seq 2 from
    /// this node before seq 1 from another) would otherwise set the start
    /// and make the earlier one look delivered already.
    AwaitingJoin,
    /// `last_seq` is the room's real position (0: no message yet).
    Known,
}

#[derive(Default)]
struct Room {
    /// The newest seq delivered here: answers `room:join` while the
    /// message log cannot.
    last_seq: u64,
    /// Whether `last_seq` is the room's real position yet.
    start: SeqStart,
    /// Messages that arrived ahead of a missing seq (from other nodes), or
    /// before the room's starting seq was read.
    early: BTreeMap<u64, Arc<MessageRecord>>,
    gap_timer: bool,
    members: HashMap<ConnId, Target>,
    /// user -> connections of that user in the room
    users: HashMap<Arc<str>, usize>,
}

struct Conn {
    identity: Arc<Identity>,
    target: Target,
    personal_room: Arc<str>,
    /// Joined rooms, the personal room not included.
    rooms: HashSet<Arc<str>>,
    info: ConnectionInfo,
}

pub struct RoomRegistry {
    cfg: RegistryConfig,
    log: Arc<dyn MessageLog>,
    presence: Addr<PresenceTracker>,
    metrics: Arc<Metrics>,
    records: Arc<Records>,
    /// The relay to other nodes, when Redis is configured.
    bridge: Option<Addr<RedisBridge>>,
    started: std::time::Instant,
    /// Appends waiting for their commit, in order (set in `started`).
    committing: Option<mpsc::UnboundedSender<Pending>>,
    rooms: HashMap<Arc<str>, Room>,
    conns: HashMap<ConnId, Conn>,
    users: HashMap<Arc<str>, HashSet<ConnId>>,
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.committing = Some(tx);
        ctx.add_stream(Self::committed_in_order(rx));
    }
}

type Reply<T> = ResponseActFuture<RoomRegistry, Result<T, CommandError>>;

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Online => "online",
        Status::Away => "away",
        Status::Busy => "busy",
        Status::Offline => "offline",
    }
}

impl RoomRegistry {
    /// Whether `user:joined`/`user:left` are sent in `room`: not in personal
    /// rooms (notifications, not conversations), and not in rooms with more
    /// users on this node than `rooms.join_leave_events_max_users`, where
    /// every join would cost a message to every member. `gone` counts users
    /// who just left, so a leave is judged by the room's size before it.
    fn announces_membership(&self, room: &str, gone: usize) -> bool {
        let users = self.rooms.get(room).map_or(0, |r| r.users.len()) + gone;
        !is_personal(room) && users <= self.cfg.join_leave_max_users
    }
}

/// Personal rooms carry notifications, not conversations.
fn is_personal(room: &str) -> bool {
    room.starts_with(PERSONAL_PREFIX)
}

fn reply<T: 'static>(r: Result<T, CommandError>) -> Reply<T> {
    Box::pin(fut::ready(r))
}

fn tracker_down(e: MailboxError) -> CommandError {
    CommandError::new(
        ErrorCode::Internal,
        format!("presence tracker unavailable: {e}"),
    )
}

fn store_down(e: StoreError) -> CommandError {
    e.to_command_error()
}

impl RoomRegistry {
    pub fn new(
        cfg: RegistryConfig,
        log: Arc<dyn MessageLog>,
        presence: Addr<PresenceTracker>,
        metrics: Arc<Metrics>,
        records: Arc<Records>,
        bridge: Option<Addr<RedisBridge>>,
    ) -> Self {
        RoomRegistry {
            cfg,
            log,
            presence,
            metrics,
            records,
            bridge,
            started: std::time::Instant::now(),
            committing: None,
            rooms: HashMap::new(),
            conns: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Sends to the tracker through its bounded mailbox, counting depth.
    fn track<M>(&self, msg: M) -> Request<PresenceTracker, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        PresenceTracker: Handler<M>,
    {
        self.metrics.presence_mailbox.sent();
        self.presence.send(msg)
    }

    fn conn(&self, id: ConnId) -> Result<&Conn, CommandError> {
        self.conns
            .get(&id)
            .ok_or_else(|| CommandError::new(ErrorCode::Internal, "connection is not registered"))
    }

    fn member_of(&self, id: ConnId, room: &str) -> Result<&Conn, CommandError> {
        let conn = self.conn(id)?;
        if conn.rooms.contains(room) || *conn.personal_room == *room {
            Ok(conn)
        } else {
            Err(CommandError::new(
                ErrorCode::NotInRoom,
                format!("not in room `{room}`: join it first"),
            ))
        }
    }

    fn may_access(&self, id: ConnId, room: &str) -> Result<&Conn, CommandError> {
        let conn = self.conn(id)?;
        if conn.identity.may_access(room, &self.cfg.public_rooms) {
            Ok(conn)
        } else {
            Err(CommandError::new(
                ErrorCode::Forbidden,
                format!("room `{room}` is not allowed for this user"),
            ))
        }
    }

    fn add_member(&mut self, id: ConnId, room: &Arc<str>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if *conn.personal_room != **room {
            conn.rooms.insert(room.clone());
        }
        let user = conn.identity.user_id.clone();
        let target = conn.target.clone();
        let r = self.rooms.entry(room.clone()).or_default();
        r.members.insert(id, target);
        *r.users.entry(user).or_insert(0) += 1;
    }

    /// Removes one membership; true when it existed.
    fn remove_member(&mut self, id: ConnId, room: &str) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        conn.rooms.remove(room);
        let Some(r) = self.rooms.get_mut(room) else {
            return false;
        };
        if r.members.remove(&id).is_none() {
            return false;
        }
        let user = &conn.identity.user_id;
        if let Some(n) = r.users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                r.users.remove(user);
            }
        }
        if r.members.is_empty() {
            if let Some((name, _)) = self.rooms.remove_entry(room) {
                if let Some(unfollow) = self.follow(name, false) {
                    actix::spawn(unfollow);
                }
            }
        }
        true
    }

    /// Tells the bridge to follow a room's channel or not; the future ends
    /// once the subscription is confirmed. None on a single node: nothing to
    /// wait for or spawn.
    fn follow(
        &self,
        room: Arc<str>,
        on: bool,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let bridge = self.bridge.as_ref()?;
        self.metrics.redis_mailbox.sent();
        let request = bridge.send(Follow { room, on });
        Some(async move {
            let _ = request.await;
        })
    }

    /// Hands an event to the bridge for the other nodes (if any).
    fn cluster(&self, channel: Channel, event: ClusterEvent) {
        if let Some(bridge) = &self.bridge {
            self.metrics.redis_mailbox.sent();
            if bridge.try_send(Relay { channel, event }).is_err() {
                self.metrics.redis_mailbox.discarded(1);
                inc(&self.metrics.redis_publish_errors);
                log::warn!("redis bridge mailbox full: an event for other nodes was dropped");
            }
        }
    }

    /// Hands `frame` to one session; false when it could not take it.
    fn deliver(&self, id: ConnId, target: &Target, frame: &ByteString) -> bool {
        if target.handle.is_slow() {
            return false;
        }
        match target.addr.try_send(Deliver(frame.clone())) {
            Ok(()) => {
                target.handle.enqueued();
                true
            }
            Err(SendError::Full(_)) => {
                self.slow_consumer(id, target);
                false
            }
            Err(SendError::Closed(_)) => false,
        }
    }

    fn slow_consumer(&self, id: ConnId, target: &Target) {
        if !target.handle.mark_slow() {
            return;
        }
        inc(&self.metrics.slow_consumer_closes);
        let user = self.conns.get(&id).map(|c| c.identity.user_id.clone());
        self.records.audit(
            "slow_consumer",
            user.as_deref(),
            Some(&id.to_string()),
            json!({}),
        );
        log::warn!(
            "slow consumer conn={} user={}: mailbox full, closing with 4009",
            id,
            self.conns.get(&id).map_or("?", |c| &*c.identity.user_id)
        );
        // The session closes itself with 4009 the next time it runs. If its
        // socket is jammed it never runs again: shut the socket down then.
        let handle = target.handle.clone();
        let grace = self.cfg.slow_consumer_grace;
        actix::spawn(async move {
            actix::clock::sleep(grace).await;
            handle.shut_down_socket();
        });
    }

    /// Sends `frame` to every member of `room` but `except`; returns how
    /// many sessions took it.
    fn fan_out(&self, room: &str, except: Option<ConnId>, frame: &ByteString) -> usize {
        let Some(r) = self.rooms.get(room) else {
            return 0;
        };
        let mut delivered = 0;
        for (id, target) in &r.members {
            if Some(*id) != except && self.deliver(*id, target, frame) {
                delivered += 1;
            }
        }
        add(&self.metrics.messages_out, delivered as u64);
        delivered
    }

    fn announce_leave(&self, outcome: &LeaveOutcome, user: &str) {
        if outcome.last && self.announces_membership(&outcome.room, 1) {
            let frame = encode(&Event::UserLeft {
                room: &outcome.room,
                user_id: user,
            });
            self.fan_out(&outcome.room, None, &frame);
        }
        for change in &outcome.typing {
            self.announce_typing(change, None);
        }
    }

    fn announce_typing(&self, change: &TypingChange, except: Option<ConnId>) {
        let frame = encode(&Event::Typing {
            room: &change.room,
            thread_id: change.thread_id.as_deref(),
            users: &change.users,
        });
        self.fan_out(&change.room, except, &frame);
    }

    fn schedule_typing_expiry(
        &self,
        ctx: &mut Context<Self>,
        room: Arc<str>,
        thread_id: Option<String>,
    ) {
        // A little after the deadline, so the entry has expired when checked.
        let after = self.cfg.typing_timeout + Duration::from_millis(20);
        ctx.run_later(after, move |act, ctx| {
            let expire = act.track(ExpireTyping { room, thread_id });
            ctx.spawn(expire.into_actor(act).map(|res, act, _| {
                if let Ok(Some(change)) = res {
                    act.announce_typing(&change, None);
                }
            }));
        });
    }
}

// ---------------------------------------------------------------------------
// Connections

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub node_id: Arc<str>,
    pub user_id: Arc<str>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub connected_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<Arc<str>>,
}

/// A session started. Sent with `do_send` on purpose: it must not be lost
/// or overtaken by the session's first command.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub id: ConnId,
    pub identity: Arc<Identity>,
    pub addr: Addr<Session>,
    pub handle: Arc<ConnHandle>,
    pub info: ConnectionInfo,
}

impl Handler<Connect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        self.metrics.registry_mailbox.handled();
        let user = msg.identity.user_id.clone();
        let personal_room: Arc<str> = msg.identity.personal_room().into();
        self.conns.insert(
            msg.id,
            Conn {
                identity: msg.identity.clone(),
                target: Target {
                    addr: msg.addr,
                    handle: msg.handle,
                },
                personal_room: personal_room.clone(),
                rooms: HashSet::new(),
                info: msg.info,
            },
        );
        self.users.entry(user.clone()).or_default().insert(msg.id);
        if !self.rooms.contains_key(&personal_room) {
            // Messages a user sends to their own room reach their other nodes.
            if let Some(follow) = self.follow(personal_room.clone(), true) {
                actix::spawn(follow);
            }
        }
        self.add_member(msg.id, &personal_room);
        self.cluster(
            Channel::All,
            ClusterEvent::Track(TrackOp::Connect {
                user: user.clone(),
                name: msg.identity.name.clone(),
            }),
        );
        let track = self.track(TrackConnect {
            node: self.cfg.node_id.clone(),
            user,
            name: msg.identity.name.clone(),
            personal_room,
        });
        actix::spawn(async move {
            let _ = track.await;
        });
    }
}

/// A session ended, whichever way. Removes every trace of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub id: ConnId,
}

impl Handler<Disconnect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        self.metrics.registry_mailbox.handled();
        let Some(conn) = self.conns.get(&msg.id) else {
            return;
        };
        let user = conn.identity.user_id.clone();
        let mut rooms: Vec<Arc<str>> = conn.rooms.iter().cloned().collect();
        rooms.push(conn.personal_room.clone());
        for room in &rooms {
            self.remove_member(msg.id, room);
        }
        self.conns.remove(&msg.id);
        if let Some(set) = self.users.get_mut(&user) {
            set.remove(&msg.id);
            if set.is_empty() {
                self.users.remove(&user);
            }
        }
        self.cluster(
            Channel::All,
            ClusterEvent::Track(TrackOp::Disconnect {
                user: user.clone(),
                rooms: rooms.clone(),
            }),
        );
        let track = self.track(TrackDisconnect {
            node: self.cfg.node_id.clone(),
            user: user.clone(),
            rooms,
        });
        ctx.spawn(track.into_actor(self).map(move |res, act, _| {
            for outcome in res.unwrap_or_default() {
                act.announce_leave(&outcome, &user);
            }
        }));
    }
}

/// auth:refresh brought new claims (rooms, role, name).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateIdentity {
    pub id: ConnId,
    pub identity: Arc<Identity>,
}

impl Handler<UpdateIdentity> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: UpdateIdentity, _: &mut Context<Self>) {
        self.metrics.registry_mailbox.handled();
        if let Some(conn) = self.conns.get_mut(&msg.id) {
            conn.identity = msg.identity;
        }
    }
}

// ---------------------------------------------------------------------------
// Room commands

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    pub room: Arc<str>,
    pub seq: u64,
    pub members: Vec<Member>,
    pub missed: Vec<Arc<MessageRecord>>,
    pub recovered: bool,
}

#[derive(Message)]
#[rtype(result = "Result<JoinReply, CommandError>")]
pub struct Join {
    pub id: ConnId,
    pub room: String,
    pub since: Option<u64>,
}

impl Handler<Join> for RoomRegistry {
    type Result = Reply<JoinReply>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let conn = match self.may_access(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        let user = conn.identity.user_id.clone();
        let already = conn.rooms.contains(msg.room.as_str()) || *conn.personal_room == *msg.room;
        if !already {
            if conn.rooms.len() >= self.cfg.max_rooms_per_connection {
                return reply(Err(CommandError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "a connection may be in at most {} rooms; leave one first",
                        self.cfg.max_rooms_per_connection
                    ),
                )));
            }
            let max = self.cfg.max_users(&msg.room);
            let room_users = self.rooms.get(msg.room.as_str());
            let present = room_users.is_some_and(|r| r.users.contains_key(&user));
            if !present && room_users.map_or(0, |r| r.users.len()) >= max {
                return reply(Err(CommandError::new(
                    ErrorCode::RoomFull,
                    format!("room `{}` is full ({max} users)", msg.room),
                )));
            }
        }
        let room: Arc<str> = self
            .rooms
            .get_key_value(msg.room.as_str())
            .map_or_else(|| msg.room.as_str().into(), |(k, _)| k.clone());
        let recover = self.log.recover(&room, msg.since, self.cfg.recovery_max);
        // A room new to this node is followed on Redis before the recovery
        // read, so no message falls between what is read and what is relayed.
        let created = !already && !self.rooms.contains_key(&room);
        let follow = created.then(|| self.follow(room.clone(), true)).flatten();
        let members = if already {
            self.track(GetMembers { room: room.clone() })
                .into_actor(self)
                .map(|res, _, _| res.map(|members| (false, members)))
                .boxed_local()
        } else {
            self.add_member(msg.id, &room);
            if created {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.start = SeqStart::AwaitingJoin;
                }
            }
            self.cluster(
                Channel::All,
                ClusterEvent::Track(TrackOp::Join {
                    room: room.clone(),
                    user: user.clone(),
                }),
            );
            self.track(TrackJoin {
                node: self.cfg.node_id.clone(),
                room: room.clone(),
                user: user.clone(),
            })
            .into_actor(self)
            .map(|res, _, _| res.map(|o| (o.first, o.members)))
            .boxed_local()
        };
        let id = msg.id;
        Box::pin(members.then(move |members, act, _| {
            let recover = async move {
                if let Some(follow) = follow {
                    follow.await;
                }
                recover.await
            };
            recover.into_actor(act).map(move |recovery, act, ctx| {
                // A room new to this node starts its sequencer at the newest
                // stored seq (read after the room was followed on Redis).
                if created {
                    let latest = recovery.as_ref().ok().map(|r| r.latest);
                    act.start_sequence(ctx, &room, latest);
                }
                let (first, members) = members.map_err(tracker_down)?;
                // Without the log the join still works: live messages flow,
                // and `recovered: false` tells the client to fetch history later.
                let recovery = recovery.unwrap_or_else(|e| {
                    log::warn!("room:join {room}: no recovery, {e}");
                    Recovery {
                        latest: act.rooms.get(&room).map_or(0, |r| r.last_seq),
                        messages: Vec::new(),
                        complete: false,
                    }
                });
                if !already && !is_personal(&room) {
                    act.records.send(Record::Joined {
                        room: room.to_string(),
                        user_id: user.to_string(),
                        connection_id: id.to_string(),
                        at: now_ms(),
                    });
                    act.records.audit(
                        "join",
                        Some(&user),
                        Some(&id.to_string()),
                        json!({ "room": &*room }),
                    );
                }
                if first && act.announces_membership(&room, 0) {
                    let frame = encode(&Event::UserJoined {
                        room: &room,
                        user_id: &user,
                    });
                    act.fan_out(&room, Some(id), &frame);
                }
                Ok(JoinReply {
                    room,
                    seq: recovery.latest,
                    members,
                    missed: recovery.messages,
                    recovered: recovery.complete,
                })
            })
        }))
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Leave {
    pub id: ConnId,
    pub room: String,
}

impl Handler<Leave> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let conn = match self.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        if *conn.personal_room == *msg.room {
            return reply(Err(CommandError::bad_request(
                "the personal room cannot be left",
            )));
        }
        let user = conn.identity.user_id.clone();
        self.remove_member(msg.id, &msg.room);
        self.records.send(Record::Left {
            room: msg.room.clone(),
            connection_id: msg.id.to_string(),
            at: now_ms(),
        });
        self.records.audit(
            "leave",
            Some(&user),
            Some(&msg.id.to_string()),
            json!({ "room": &msg.room }),
        );
        self.cluster(
            Channel::All,
            ClusterEvent::Track(TrackOp::Leave {
                room: msg.room.as_str().into(),
                user: user.clone(),
            }),
        );
        let track = self.track(TrackLeave {
            node: self.cfg.node_id.clone(),
            room: msg.room.into(),
            user: user.clone(),
        });
        Box::pin(track.into_actor(self).map(move |res, act, _| {
            let outcome = res.map_err(tracker_down)?;
            act.announce_leave(&outcome, &user);
            Ok(())
        }))
    }
}

#[derive(Debug, Clone, Serialize)]
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
}

/// The answer to a `Publish` waits for its commit as a task of its own, not
/// in the registry's context: actix polls every future spawned in a context
/// whenever the actor wakes, so thousands of messages waiting for their
/// commits there made each wake-up cost thousands of polls.
impl Handler<Publish> for RoomRegistry {
    type Result = ResponseFuture<Result<Published, CommandError>>;
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let conn = match self.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let room: Arc<str> = self
            .rooms
            .get_key_value(msg.room.as_str())
            .map_or_else(|| msg.room.as_str().into(), |(k, _)| k.clone());
        let mut append = self.log.append(NewMessage {
            room,
            user_id: conn.identity.user_id.clone(),
            content: msg.content,
            thread_id: msg.thread_id,
            metadata: msg.metadata,
            client_msg_id: msg.client_msg_id,
        });
        // An append refused at once (the write queue is full) has no seq to
        // keep in order: answer it now, not after the appends queued before
        // it have committed or timed out.
        let append = match (&mut append).now_or_never() {
            None => append,
            Some(Err(e)) => return Box::pin(async move { Err(store_down(e)) }),
            Some(Ok(done)) => futures_util::future::ready(Ok(done)).boxed(),
        };
        // Commits are handled in the order the messages were appended,
        // which is seq order: see `StreamHandler<Committed>`.
        let (reply_to, answer) = oneshot::channel();
        if let Some(committing) = &self.committing {
            let _ = committing.send((append, reply_to));
        }
        let limit = self.cfg.commit_timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(CommandError::new(
                    ErrorCode::Internal,
                    "the message was not handled",
                )),
                // Not acknowledged; it may still commit (and is then
                // delivered): a retry with the same clientMsgId is safe.
                Err(_) => Err(CommandError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the database did not commit the message within {} ms",
                        limit.as_millis()
                    ),
                )),
            }
        })
    }
}

type PublishReply = oneshot::Sender<Result<Published, CommandError>>;

/// One append, in the order `Publish` messages arrived.
type Pending = (StoreFuture<Appended>, PublishReply);

/// One append's outcome, delivered in the order of appends.
type Committed = (Result<Appended, StoreError>, PublishReply);

impl RoomRegistry {
    /// A stream of the appends' outcomes in append order: awaiting them one
    /// after the other keeps fan-out in seq order even when a batch of
    /// commits completes at once (actix polls its spawned futures in no
    /// particular order).
    fn committed_in_order(rx: mpsc::UnboundedReceiver<Pending>) -> impl Stream<Item = Committed> {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
            .then(|(append, reply)| async move { (append.await, reply) })
    }
}

impl StreamHandler<Committed> for RoomRegistry {
    fn handle(&mut self, (result, reply): Committed, ctx: &mut Context<Self>) {
        let result = result.map_err(store_down).map(|appended| {
            let record = appended.record;
            if !appended.duplicate {
                inc(&self.metrics.messages_in);
                self.cluster(
                    Channel::Room(record.room.clone()),
                    ClusterEvent::Message {
                        record: record.clone(),
                    },
                );
                self.sequence(ctx, record.clone());
            }
            Published {
                message_id: record.message_id.clone(),
                seq: record.seq,
                timestamp: record.timestamp.clone(),
            }
        });
        let _ = reply.send(result);
    }

    /// The stream lives as long as the registry; nothing to do at its end.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Typing {
    pub id: ConnId,
    pub room: String,
    pub thread_id: Option<String>,
    pub active: bool,
}

impl Handler<Typing> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let conn = match self.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        let room: Arc<str> = msg.room.into();
        let msg_thread = msg.thread_id.clone();
        self.cluster(
            Channel::Room(room.clone()),
            ClusterEvent::Typing {
                room: room.clone(),
                thread_id: msg.thread_id.clone(),
                user: conn.identity.user_id.clone(),
                active: msg.active,
            },
        );
        let set = self.track(SetTyping {
            room: room.clone(),
            thread_id: msg.thread_id,
            user: conn.identity.user_id.clone(),
            active: msg.active,
        });
        let (origin, active) = (msg.id, msg.active);
        let (room, thread_id) = (room, msg_thread);
        Box::pin(set.into_actor(self).map(move |res, act, ctx| {
            if let Some(change) = res.map_err(tracker_down)? {
                act.announce_typing(&change, Some(origin));
            }
            // Every typing:start moves the deadline, so each one gets its
            // own expiry check.
            if active {
                act.schedule_typing_expiry(ctx, room, thread_id);
            }
            Ok(())
        }))
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct UpdatePresence {
    pub id: ConnId,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
}

impl Handler<UpdatePresence> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: UpdatePresence, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let user = match self.conn(msg.id) {
            Ok(conn) => conn.identity.user_id.clone(),
            Err(e) => return reply(Err(e)),
        };
        let set = self.track(SetStatus {
            user: user.clone(),
            status: msg.status,
            custom_status: msg.custom_status,
        });
        let origin = msg.id;
        Box::pin(set.into_actor(self).map(move |res, act, _| {
            let Some((presence, rooms)) = res.map_err(tracker_down)? else {
                return Ok(());
            };
            act.records.send(Record::Presence {
                user_id: user.to_string(),
                status: status_name(presence.status).to_string(),
                custom_status: presence
                    .custom_status
                    .as_ref()
                    .map(|c| json!(c).to_string()),
                at: now_ms(),
            });
            act.cluster(
                Channel::All,
                ClusterEvent::Status {
                    user: user.clone(),
                    status: presence.status,
                    custom_status: presence.custom_status.clone(),
                },
            );
            act.announce_presence(&user, &presence, &rooms, Some(origin));
            Ok(())
        }))
    }
}

impl RoomRegistry {
    /// `presence:changed` to every local connection in any of `rooms` (the
    /// rooms `user` is in), once each, except `origin`.
    fn announce_presence(
        &self,
        user: &str,
        presence: &UserPresence,
        rooms: &[Arc<str>],
        origin: Option<ConnId>,
    ) {
        let frame = encode(&Event::PresenceChanged {
            user_id: user,
            status: presence.status,
            custom_status: presence.custom_status.as_ref(),
        });
        let mut receivers: HashMap<ConnId, &Target> = HashMap::new();
        for room in rooms {
            if let Some(r) = self.rooms.get(room) {
                receivers.extend(r.members.iter().map(|(id, t)| (*id, t)));
            }
        }
        if let Some(origin) = origin {
            receivers.remove(&origin);
        }
        let delivered = receivers
            .iter()
            .filter(|(id, target)| self.deliver(**id, target, &frame))
            .count();
        add(&self.metrics.messages_out, delivered as u64);
    }
}

#[derive(Message)]
#[rtype(result = "Result<Vec<Member>, CommandError>")]
pub struct PresenceOf {
    pub id: ConnId,
    pub room: String,
}

impl Handler<PresenceOf> for RoomRegistry {
    type Result = Reply<Vec<Member>>;
    fn handle(&mut self, msg: PresenceOf, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        if let Err(e) = self.may_access(msg.id, &msg.room) {
            return reply(Err(e));
        }
        let get = self.track(GetMembers {
            room: msg.room.into(),
        });
        Box::pin(
            get.into_actor(self)
                .map(|res, _, _| res.map_err(tracker_down)),
        )
    }
}

#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<MessageRecord>>, CommandError>")]
pub struct History {
    pub id: ConnId,
    pub room: String,
    pub before: Option<u64>,
    pub limit: usize,
}

impl Handler<History> for RoomRegistry {
    type Result = Reply<Vec<Arc<MessageRecord>>>;
    fn handle(&mut self, msg: History, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        if let Err(e) = self.may_access(msg.id, &msg.room) {
            return reply(Err(e));
        }
        let history = self.log.history(&msg.room, msg.before, msg.limit);
        Box::pin(
            history
                .into_actor(self)
                .map(|res, _, _| res.map_err(store_down)),
        )
    }
}

// ---------------------------------------------------------------------------
// Admin

/// Closes every connection of a user with 4003; answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Kick {
    pub user_id: String,
    pub reason: String,
}

impl Handler<Kick> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Kick, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.kick_local(&msg.user_id, &msg.reason);
        let op = AdminOp::Kick {
            user_id: msg.user_id,
            reason: msg.reason,
        };
        Box::pin(
            self.gather(op)
                .map(move |(answers, _)| local + sum_counts(&answers)),
        )
    }
}

/// Delivers a notification to every connection of a user on every node;
/// answers how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Notify {
    pub user_id: String,
    pub notification: Notification,
}

impl Handler<Notify> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.notify_local(&msg.user_id, &msg.notification);
        let op = AdminOp::Notify {
            user_id: msg.user_id,
            notification: msg.notification,
        };
        Box::pin(
            self.gather(op)
                .map(move |(answers, _)| local + sum_counts(&answers)),
        )
    }
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

impl Handler<Broadcast> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.broadcast_local(msg.room.as_deref(), &msg.event, &msg.data);
        let op = AdminOp::Broadcast {
            room: msg.room,
            event: msg.event,
            data: msg.data,
        };
        Box::pin(
            self.gather(op)
                .map(move |(answers, _)| local + sum_counts(&answers)),
        )
    }
}

fn sum_counts(answers: &[Value]) -> usize {
    answers.iter().filter_map(Value::as_u64).sum::<u64>() as usize
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    pub room: Arc<str>,
    pub users: usize,
    pub connections: usize,
}

/// Rooms with members on any node; counts add up every node's.
#[derive(Message)]
#[rtype(result = "Vec<RoomInfo>")]
pub struct ListRooms;

impl Handler<ListRooms> for RoomRegistry {
    type Result = ResponseFuture<Vec<RoomInfo>>;
    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.rooms_local();
        Box::pin(self.gather(AdminOp::Rooms).map(move |(answers, _)| {
            let mut merged: BTreeMap<Arc<str>, RoomInfo> = BTreeMap::new();
            let remote = answers
                .into_iter()
                .filter_map(|a| serde_json::from_value::<Vec<RoomInfo>>(a).ok())
                .flatten();
            for r in local.into_iter().chain(remote) {
                let entry = merged.entry(r.room.clone()).or_insert(RoomInfo {
                    room: r.room.clone(),
                    users: 0,
                    connections: 0,
                });
                entry.users += r.users;
                entry.connections += r.connections;
            }
            merged.into_values().collect()
        }))
    }
}

/// Connections on every node, optionally of one user.
#[derive(Message)]
#[rtype(result = "Vec<ConnectionInfo>")]
pub struct ListConnections {
    pub user_id: Option<String>,
}

impl Handler<ListConnections> for RoomRegistry {
    type Result = ResponseFuture<Vec<ConnectionInfo>>;
    fn handle(&mut self, msg: ListConnections, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.connections_local(msg.user_id.as_deref());
        let op = AdminOp::Connections {
            user_id: msg.user_id,
        };
        Box::pin(self.gather(op).map(move |(answers, _)| {
            let mut list = local;
            for a in answers {
                if let Ok(more) = serde_json::from_value::<Vec<ConnectionInfo>>(a) {
                    list.extend(more);
                }
            }
            list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at));
            list
        }))
    }
}

#[derive(Debug, Clone, Serialize)]
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

impl Handler<Stats> for RoomRegistry {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        MessageResult(self.stats_local())
    }
}

/// Every node's figures (this node first), and how many nodes were asked
/// but did not answer in time.
#[derive(Message)]
#[rtype(result = "(Vec<Value>, usize)")]
pub struct ClusterStats;

impl Handler<ClusterStats> for RoomRegistry {
    type Result = ResponseFuture<(Vec<Value>, usize)>;
    fn handle(&mut self, _: ClusterStats, _: &mut Context<Self>) -> Self::Result {
        self.metrics.registry_mailbox.handled();
        let local = self.node_figures();
        Box::pin(self.gather(AdminOp::Stats).map(move |(answers, asked)| {
            let missing = asked.saturating_sub(answers.len());
            let mut nodes = vec![local];
            nodes.extend(answers);
            (nodes, missing)
        }))
    }
}

impl RoomRegistry {
    /// Asks the other nodes (if any) to carry out `op`.
    fn gather(
        &self,
        op: AdminOp,
    ) -> impl std::future::Future<Output = (Vec<Value>, usize)> + 'static {
        let request = self.bridge.as_ref().map(|bridge| {
            self.metrics.redis_mailbox.sent();
            bridge.send(Gather { op })
        });
        async move {
            match request {
                Some(request) => request.await.unwrap_or_default(),
                None => (Vec::new(), 0),
            }
        }
    }

    fn kick_local(&self, user_id: &str, reason: &str) -> usize {
        let Some(ids) = self.users.get(user_id) else {
            return 0;
        };
        let mut kicked = 0;
        for id in ids {
            let Some(conn) = self.conns.get(id) else {
                continue;
            };
            let shutdown = Shutdown {
                code: close::KICKED,
                reason: reason.to_string(),
            };
            match conn.target.addr.try_send(shutdown) {
                Ok(()) => conn.target.handle.enqueued(),
                // A session too far behind to take the kick: drop its socket.
                Err(SendError::Full(_)) => conn.target.handle.shut_down_socket(),
                Err(SendError::Closed(_)) => continue,
            }
            kicked += 1;
            log::info!("kick conn={id} user={user_id:?} reason={reason:?}");
        }
        add(&self.metrics.kicks, kicked as u64);
        kicked
    }

    fn notify_local(&self, user_id: &str, notification: &Notification) -> usize {
        inc(&self.metrics.notifications);
        let frame = encode(&Event::Notification(notification));
        self.fan_out(&crate::auth::personal_room(user_id), None, &frame)
    }

    fn broadcast_local(&self, room: Option<&str>, event: &str, data: &Value) -> usize {
        inc(&self.metrics.broadcasts);
        let frame = encode(&Event::Broadcast {
            room,
            event,
            data,
            timestamp: timestamp(Utc::now()),
        });
        match room {
            Some(room) => self.fan_out(room, None, &frame),
            None => {
                let delivered = self
                    .conns
                    .iter()
                    .filter(|(id, conn)| self.deliver(**id, &conn.target, &frame))
                    .count();
                add(&self.metrics.messages_out, delivered as u64);
                delivered
            }
        }
    }

    fn rooms_local(&self) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                room: name.clone(),
                users: r.users.len(),
                connections: r.members.len(),
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }

    fn connections_local(&self, user_id: Option<&str>) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = self
            .conns
            .values()
            .filter(|c| user_id.is_none_or(|u| *c.identity.user_id == *u))
            .map(|c| {
                let mut info = c.info.clone();
                info.rooms = c.rooms.iter().cloned().collect();
                info.rooms.sort();
                info
            })
            .collect();
        list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at));
        list
    }

    fn stats_local(&self) -> RegistryStats {
        RegistryStats {
            connections: self.conns.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
        }
    }

    /// This node's line of `/admin/stats`.
    fn node_figures(&self) -> Value {
        let s = self.stats_local();
        let m = &self.metrics;
        json!({
            "nodeId": &*self.cfg.node_id,
            "connections": s.connections,
            "users": s.users,
            "rooms": s.rooms,
            "messagesIn": get(&m.messages_in),
            "messagesOut": get(&m.messages_out),
            "rateLimited": get(&m.rate_limited),
            "slowConsumerCloses": get(&m.slow_consumer_closes),
            "uptimeSecs": self.started.elapsed().as_secs(),
            "mailboxDepth": {
                "session": m.session_mailbox.depth(),
                "roomRegistry": m.registry_mailbox.depth(),
                "presenceTracker": m.presence_mailbox.depth(),
                "redisBridge": m.redis_mailbox.depth(),
            },
        })
    }

    /// What another node's admin request asks of this one.
    fn run_admin(&self, op: AdminOp) -> Value {
        match op {
            AdminOp::Kick { user_id, reason } => json!(self.kick_local(&user_id, &reason)),
            AdminOp::Notify {
                user_id,
                notification,
            } => json!(self.notify_local(&user_id, &notification)),
            AdminOp::Broadcast { room, event, data } => {
                json!(self.broadcast_local(room.as_deref(), &event, &data))
            }
            AdminOp::Stats => self.node_figures(),
            AdminOp::Connections { user_id } => json!(self.connections_local(user_id.as_deref())),
            AdminOp::Rooms => json!(self.rooms_local()),
        }
    }
}

/// Server shutdown: tells every session to close with 1001.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

impl Handler<CloseAll> for RoomRegistry {
    type Result = usize;
    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) -> usize {
        self.metrics.registry_mailbox.handled();
        let mut n = 0;
        for conn in self.conns.values() {
            let shutdown = Shutdown {
                code: Closing::ShuttingDown.code(),
                reason: Closing::ShuttingDown.reason().into(),
            };
            match conn.target.addr.try_send(shutdown) {
                Ok(()) => conn.target.handle.enqueued(),
                Err(_) => conn.target.handle.shut_down_socket(),
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_room_limit_wins() {
        let mut cfg = RegistryConfig::from_settings(&Settings::load_from(&[]).unwrap(), "n");
        cfg.max_users_default = 100;
        cfg.max_users = vec![
            ("team:*".into(), 50),
            ("team:vip:*".into(), 5),
            ("*".into(), 70),
        ];
        assert_eq!(cfg.max_users("team:vip:1"), 5);
        assert_eq!(cfg.max_users("team:1"), 50);
        assert_eq!(cfg.max_users("lobby"), 70);
        cfg.max_users.clear();
        assert_eq!(cfg.max_users("lobby"), 100);
    }
}

// ---------------------------------------------------------------------------
// Delivery in seq order, whatever node a message came from

impl RoomRegistry {
    /// Delivers a committed message to this node's members of its room, in
    /// `seq` order. Messages from other nodes may arrive out of order (each
    /// node publishes its own commits); one that is ahead of a missing seq
    /// waits up to `redis.gap_timeout_ms`, then the missing ones are read
    /// from the database (or skipped when it cannot answer: clients see the
    /// gap and recover with `room:join` + `since`).
    fn sequence(&mut self, ctx: &mut Context<Self>, record: Arc<MessageRecord>) {
        let Some(room) = self.rooms.get_mut(&record.room) else {
            return; // no local member
        };
        if room.start == SeqStart::AwaitingJoin {
            room.early.insert(record.seq, record);
            return;
        }
        let last = room.last_seq;
        let known = room.start == SeqStart::Known;
        if known && record.seq <= last {
            return; // delivered already
        }
        if known && record.seq > last + 1 {
            room.early.insert(record.seq, record.clone());
            self.wait_for_gap(ctx, &record.room);
            return;
        }
        self.deliver_record(&record);
        self.deliver_early(&record.room);
    }

    /// Ends a new room's wait for its starting seq: what arrived meanwhile
    /// and is newer than `latest` goes out in order (after a gap wait when
    /// one is missing). Without `latest` (the database did not answer) the
    /// oldest waiting message is the start.
    fn start_sequence(&mut self, ctx: &mut Context<Self>, name: &Arc<str>, latest: Option<u64>) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if room.start != SeqStart::AwaitingJoin {
            return;
        }
        let oldest = room.early.keys().next().map(|seq| seq - 1);
        let Some(start) = latest.or(oldest) else {
            // Nothing to start from: as if never read (seq starts at 1, so
            // a non-zero last_seq means something was delivered already).
            room.start = if room.last_seq > 0 {
                SeqStart::Known
            } else {
                SeqStart::FirstDelivery
            };
            return;
        };
        room.last_seq = room.last_seq.max(start);
        room.start = SeqStart::Known;
        room.early = room.early.split_off(&(room.last_seq + 1));
        self.deliver_early(name);
        self.wait_for_gap(ctx, name);
    }

    /// Messages wait in `early` for a missing seq: after
    /// `redis.gap_timeout_ms` the missing ones are read from the database
    /// ([`Self::fill_gap`]). Does nothing if nothing waits or a wait runs.
    fn wait_for_gap(&mut self, ctx: &mut Context<Self>, name: &Arc<str>) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if room.early.is_empty() || room.gap_timer {
            return;
        }
        room.gap_timer = true;
        let name = name.clone();
        ctx.run_later(self.cfg.gap_timeout, move |act, ctx| {
            act.fill_gap(ctx, name)
        });
    }

    fn deliver_record(&mut self, record: &MessageRecord) {
        if let Some(room) = self.rooms.get_mut(&record.room) {
            room.last_seq = room.last_seq.max(record.seq);
            if room.start == SeqStart::FirstDelivery {
                room.start = SeqStart::Known;
            }
        }
        let frame = encode(&Event::MessageNew(record));
        self.fan_out(&record.room, None, &frame);
    }

    /// Delivers the waiting messages that are next in line.
    fn deliver_early(&mut self, room: &Arc<str>) {
        loop {
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            let next = r.last_seq + 1;
            match r.early.remove(&next) {
                Some(record) => self.deliver_record(&record),
                None => break,
            }
        }
        if let Some(r) = self.rooms.get_mut(room) {
            if r.early.is_empty() {
                r.gap_timer = false;
            }
        }
    }

    fn fill_gap(&mut self, ctx: &mut Context<Self>, name: Arc<str>) {
        let Some(room) = self.rooms.get(&name) else {
            return;
        };
        if room.start == SeqStart::AwaitingJoin || room.early.is_empty() {
            return; // the join that starts the room delivers what waits
        }
        let since = room.last_seq;
        let first = room.early.keys().next().copied().unwrap_or(since + 1);
        let wanted = (first - since - 1) as usize;
        // The missing ones are the newest `wanted` before the first waiting.
        let history = self.log.history(&name, Some(first), wanted.max(1));
        ctx.spawn(history.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(messages) => {
                    inc(&act.metrics.cluster_gaps_filled);
                    for record in messages.into_iter().filter(|m| m.seq > since) {
                        if let Some(r) = act.rooms.get_mut(&name) {
                            r.early.entry(record.seq).or_insert(record);
                        }
                    }
                }
                Err(e) => log::warn!(
                    "room {name}: missing messages not read back ({e}); skipping the gap"
                ),
            }
            // Deliver everything waiting in order; what is still missing is
            // skipped (the database did not have it).
            let waiting: Vec<Arc<MessageRecord>> = match act.rooms.get_mut(&name) {
                Some(r) => std::mem::take(&mut r.early).into_values().collect(),
                None => return,
            };
            for record in waiting {
                let last = act.rooms.get(&name).map_or(0, |r| r.last_seq);
                if record.seq > last {
                    act.deliver_record(&record);
                }
            }
            if let Some(r) = act.rooms.get_mut(&name) {
                r.gap_timer = false;
            }
            act.wait_for_gap(ctx, &name);
        }));
    }
}

// ---------------------------------------------------------------------------
// What other nodes say

/// An event from another node, relayed by the RedisBridge.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromCluster {
    pub node: Arc<str>,
    pub event: ClusterEvent,
}

impl Handler<FromCluster> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: FromCluster, ctx: &mut Context<Self>) {
        self.metrics.registry_mailbox.handled();
        let node = msg.node;
        match msg.event {
            ClusterEvent::Message { record } => self.sequence(ctx, record),
            ClusterEvent::Typing {
                room,
                thread_id,
                user,
                active,
            } => {
                let set = self.track(SetTyping {
                    room,
                    thread_id,
                    user,
                    active,
                });
                ctx.spawn(set.into_actor(self).map(move |res, act, ctx| {
                    if let Ok(Some(change)) = res {
                        act.announce_typing(&change, None);
                        if active {
                            act.schedule_typing_expiry(ctx, change.room, change.thread_id);
                        }
                    }
                }));
            }
            ClusterEvent::Track(op) => self.apply_remote(ctx, node, op),
            ClusterEvent::Status {
                user,
                status,
                custom_status,
            } => {
                let set = self.track(SetStatus {
                    user: user.clone(),
                    status,
                    custom_status,
                });
                ctx.spawn(set.into_actor(self).map(move |res, act, _| {
                    if let Ok(Some((presence, rooms))) = res {
                        act.announce_presence(&user, &presence, &rooms, None);
                    }
                }));
            }
            ClusterEvent::Hello => {
                let take = self.track(TakeSnapshot {
                    node: self.cfg.node_id.clone(),
                });
                let _ = node;
                ctx.spawn(take.into_actor(self).map(|res, act, _| {
                    // To everyone: a node that reconnected earlier may have
                    // missed this node's entries too.
                    if let Ok(snapshot) = res {
                        act.cluster(Channel::All, ClusterEvent::Snapshot { snapshot });
                    }
                }));
            }
            ClusterEvent::Snapshot { snapshot } => {
                let apply = self.track(ApplySnapshot { node, snapshot });
                ctx.spawn(apply.into_actor(self).map(|res, act, _| {
                    let Ok(changes) = res else { return };
                    for (room, user) in changes.joined {
                        if act.announces_membership(&room, 0) {
                            let frame = encode(&Event::UserJoined {
                                room: &room,
                                user_id: &user,
                            });
                            act.fan_out(&room, None, &frame);
                        }
                    }
                    for (outcome, user) in changes.left {
                        act.announce_leave(&outcome, &user);
                    }
                }));
            }
            ClusterEvent::Request { id, op } => {
                let answer = self.run_admin(op);
                self.cluster(Channel::Node(node), ClusterEvent::Reply { id, answer });
            }
            // Answers and departures are handled by the bridge itself.
            ClusterEvent::Reply { .. } | ClusterEvent::Bye => {}
        }
    }
}

impl RoomRegistry {
    /// A presence change on another node: the same bookkeeping as a local
    /// one, announced to this node's members.
    fn apply_remote(&mut self, ctx: &mut Context<Self>, node: Arc<str>, op: TrackOp) {
        match op {
            TrackOp::Connect { user, name } => {
                let personal_room = crate::auth::personal_room(&user).into();
                let track = self.track(TrackConnect {
                    node,
                    user,
                    name,
                    personal_room,
                });
                actix::spawn(async move {
                    let _ = track.await;
                });
            }
            TrackOp::Disconnect { user, rooms } => {
                let track = self.track(TrackDisconnect {
                    node,
                    user: user.clone(),
                    rooms,
                });
                ctx.spawn(track.into_actor(self).map(move |res, act, _| {
                    for outcome in res.unwrap_or_default() {
                        act.announce_leave(&outcome, &user);
                    }
                }));
            }
            TrackOp::Join { room, user } => {
                let track = self.track(TrackJoin {
                    node,
                    room: room.clone(),
                    user: user.clone(),
                });
                ctx.spawn(track.into_actor(self).map(move |res, act, _| {
                    if res.is_ok_and(|o| o.first) && act.announces_membership(&room, 0) {
                        let frame = encode(&Event::UserJoined {
                            room: &room,
                            user_id: &user,
                        });
                        act.fan_out(&room, None, &frame);
                    }
                }));
            }
            TrackOp::Leave { room, user } => {
                let track = self.track(TrackLeave {
                    node,
                    room,
                    user: user.clone(),
                });
                ctx.spawn(track.into_actor(self).map(move |res, act, _| {
                    if let Ok(outcome) = res {
                        act.announce_leave(&outcome, &user);
                    }
                }));
            }
        }
    }
}

/// Another node is dead (its liveness key expired) or restarted: its users
/// leave, once per user and room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeGone {
    pub node: Arc<str>,
}

impl Handler<NodeGone> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: NodeGone, ctx: &mut Context<Self>) {
        self.metrics.registry_mailbox.handled();
        let drop = self.track(DropNode { node: msg.node });
        ctx.spawn(drop.into_actor(self).map(|res, act, _| {
            for (outcome, user) in res.unwrap_or_default() {
                act.announce_leave(&outcome, &user);
            }
        }));
    }
}
