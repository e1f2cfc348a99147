//! What sessions ask: connect and disconnect, join and leave, typing,
//! presence, history.
//!
//! A command that needs the tracker takes its place in the tracker's
//! mailbox before it changes anything: when that mailbox is full the
//! command is answered `UNAVAILABLE` and the registry is as it was.

use std::sync::Arc;

use actix::prelude::*;
use futures_util::FutureExt;
use serde_json::json;

use super::directory::Conn;
use super::fanout::Target;
use super::rooms::is_personal;
use super::sequencer::Sequencer;
use super::{reply, status_name, store_down, tracker_busy, tracker_down, Reply, RoomRegistry};
use crate::actors::messages::{
    Connect, Disconnect, GetMembers, History, Join, JoinReply, Leave, PresenceOf, SetStatus,
    SetTyping, TrackConnect, TrackDisconnect, TrackJoin, TrackLeave, Typing, UpdateIdentity,
    UpdatePresence,
};
use crate::broker::{MemberPage, Recovery};
use crate::cluster::{Channel, ClusterEvent, TrackOp};
use crate::protocol::{CommandError, MessageRecord};
use crate::store::now_ms;
use crate::store::records::Record;

impl Handler<Connect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) {
        let target = Target {
            session: msg.session,
            handle: msg.handle,
        };
        let conn = Conn::new(msg.identity, target, msg.info);
        let (user, name) = (conn.user().clone(), conn.identity.name.clone());
        let personal_room = conn.personal_room.clone();
        self.conns.insert(msg.id, conn);
        if !self.rooms.contains(&personal_room) {
            // Messages a user sends to their own room reach their other nodes.
            actix::spawn(self.cluster.follow(personal_room.clone(), true));
        }
        self.add_member(msg.id, &personal_room, Sequencer::new);
        self.relay(
            Channel::All,
            ClusterEvent::Track(TrackOp::Connect {
                user: user.clone(),
                name: name.clone(),
            }),
        );
        let track = TrackConnect {
            node: self.cfg.node_id.clone(),
            user,
            name,
            personal_room,
        };
        if let Some(wait) = self.presence.tell(track) {
            actix::spawn(wait);
        }
    }
}

impl Handler<Disconnect> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, ctx: &mut Context<Self>) {
        let Ok(conn) = self.conns.get(msg.id) else {
            return;
        };
        let user = conn.user().clone();
        let rooms = conn.all_rooms();
        for room in &rooms {
            self.remove_member(msg.id, room);
        }
        self.conns.remove(msg.id);
        self.relay(
            Channel::All,
            ClusterEvent::Track(TrackOp::Disconnect {
                user: user.clone(),
                rooms: rooms.clone(),
            }),
        );
        let track = self.presence.ask_in_turn(TrackDisconnect {
            node: self.cfg.node_id.clone(),
            user: user.clone(),
            rooms,
        });
        ctx.spawn(track.into_actor(self).map(move |res, act, _| {
            act.announce_leaves(res.unwrap_or_default(), &user);
        }));
    }
}

impl Handler<UpdateIdentity> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: UpdateIdentity, _: &mut Context<Self>) {
        if let Some(conn) = self.conns.get_mut(msg.id) {
            conn.identity = msg.identity;
        }
    }
}

/// A join decided in memory goes on at once; one the registry cannot
/// decide (a room new to this node, a user's first join of a managed room
/// here) asks the database first (`membership.rs`).
impl Handler<Join> for RoomRegistry {
    type Result = Reply<JoinReply>;
    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        match self.access_now(msg.id, &msg.room) {
            Err(e) => reply(Err(e)),
            Ok(true) => self.join_now(msg),
            Ok(false) => {
                let room = msg.room.clone();
                let look_up = self.look_up(msg.id, &msg.room, true);
                Box::pin(look_up.then(move |res, act, _| {
                    let joined = match res {
                        Ok(()) => act.join_now(msg),
                        Err(e) => reply(Err(e)),
                    };
                    if !act.rooms.contains(&room) {
                        act.managed.forget(&room);
                    }
                    joined
                }))
            }
        }
    }
}

impl RoomRegistry {
    /// A join that may go on.
    fn join_now(&mut self, msg: Join) -> Reply<JoinReply> {
        let conn = match self.conns.get(msg.id) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        let user = conn.user().clone();
        let already = conn.is_in(&msg.room);
        if !already {
            if let Err(e) = self.rooms.admit(&msg.room, &user, conn.rooms.len()) {
                return reply(Err(e));
            }
        }
        let room = self.rooms.name(&msg.room);
        let node = self.cfg.node_id.clone();
        let max = self.cfg.join_members_max;
        let members = if already {
            self.presence
                .ask(GetMembers {
                    room: room.clone(),
                    after: None,
                    limit: max,
                    including: Some(user.clone()),
                })
                .map(|r| r.map(|res| res.map(|page| (false, page))).boxed())
        } else {
            self.presence
                .ask(TrackJoin {
                    node,
                    room: room.clone(),
                    user: user.clone(),
                    members_max: max,
                })
                .map(|r| r.map(|res| res.map(|o| (o.first, o.members))).boxed())
        };
        let members = match members {
            Ok(members) => members,
            Err(full) => return reply(Err(tracker_busy(full))),
        };
        let recover = self.log.recover(&room, msg.since, self.cfg.recovery_max);
        // A room new to this node is followed on other nodes before the
        // recovery read, so no message falls between what is read and what
        // is relayed; its sequencer holds messages until that read.
        let created = !already && !self.rooms.contains(&room);
        let follow = created.then(|| self.cluster.follow(room.clone(), true));
        if !already {
            self.add_member(msg.id, &room, Sequencer::awaiting_join);
            self.relay(
                Channel::All,
                ClusterEvent::Track(TrackOp::Join {
                    room: room.clone(),
                    user: user.clone(),
                }),
            );
        }
        let (id, since) = (msg.id, msg.since);
        let recover = async move {
            if let Some(follow) = follow {
                follow.await;
            }
            let members = members.await;
            (members, recover.await)
        };
        Box::pin(
            recover
                .into_actor(self)
                .map(move |(members, recovery), act, ctx| {
                    // A room new to this node starts its sequencer at the newest
                    // stored seq (read after the room was followed).
                    if created {
                        let latest = recovery.as_ref().ok().map(|r| r.latest);
                        act.start_sequence(ctx, &room, latest);
                    }
                    let (first, members): (bool, MemberPage) = members.map_err(tracker_down)?;
                    // Without the log the join still works: live messages flow, and
                    // `recovered: false` tells the client to fetch history later.
                    let recovery = recovery.unwrap_or_else(|e| {
                        log::warn!("room:join {room}: no recovery, {e}");
                        Recovery {
                            latest: act.rooms.get(&room).map_or(0, |r| r.seq.last_seq()),
                            messages: Vec::new(),
                            complete: false,
                            changed: Vec::new(),
                        }
                    });
                    if !already && !is_personal(&room) {
                        act.records.send(Record::Joined {
                            room: room.to_string(),
                            user_id: user.to_string(),
                            connection_id: id.to_string(),
                            at: now_ms(),
                        });
                        let detail = json!({ "room": &*room });
                        let conn = id.to_string();
                        act.records.audit("join", Some(&user), Some(&conn), detail);
                    }
                    if first {
                        act.announce_joined(&room, &user, Some(id));
                    }
                    Ok(JoinReply {
                        room,
                        seq: recovery.latest,
                        members: members.members,
                        member_count: members.count,
                        missed: recovery.messages,
                        recovered: recovery.complete,
                        changed: since.map(|_| recovery.changed),
                    })
                }),
        )
    }
}

impl Handler<Leave> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) -> Self::Result {
        let conn = match self.conns.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        if *conn.personal_room == *msg.room {
            return reply(Err(CommandError::bad_request(
                "the personal room cannot be left",
            )));
        }
        let user = conn.user().clone();
        let track = self.presence.ask(TrackLeave {
            node: self.cfg.node_id.clone(),
            room: msg.room.as_str().into(),
            user: user.clone(),
        });
        let track = match track {
            Ok(track) => track,
            Err(full) => return reply(Err(tracker_busy(full))),
        };
        self.remove_member(msg.id, &msg.room);
        self.records.send(Record::Left {
            room: msg.room.clone(),
            connection_id: msg.id.to_string(),
            at: now_ms(),
        });
        let detail = json!({ "room": &msg.room });
        let conn = msg.id.to_string();
        self.records
            .audit("leave", Some(&user), Some(&conn), detail);
        self.relay(
            Channel::All,
            ClusterEvent::Track(TrackOp::Leave {
                room: msg.room.as_str().into(),
                user: user.clone(),
            }),
        );
        Box::pin(track.into_actor(self).map(move |res, act, _| {
            let outcome = res.map_err(tracker_down)?;
            act.announce_leave(&outcome, &user);
            Ok(())
        }))
    }
}

impl Handler<Typing> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Self::Result {
        let user = match self.conns.member_of(msg.id, &msg.room) {
            Ok(conn) => conn.user().clone(),
            Err(e) => return reply(Err(e)),
        };
        let room: Arc<str> = msg.room.into();
        let set = self.presence.ask(SetTyping {
            room: room.clone(),
            thread_id: msg.thread_id.clone(),
            user: user.clone(),
            active: msg.active,
        });
        let set = match set {
            Ok(set) => set,
            Err(full) => return reply(Err(tracker_busy(full))),
        };
        self.relay(
            Channel::Room(room.clone()),
            ClusterEvent::Typing {
                room: room.clone(),
                thread_id: msg.thread_id.clone(),
                user,
                active: msg.active,
            },
        );
        let (origin, active, thread_id) = (msg.id, msg.active, msg.thread_id);
        Box::pin(set.into_actor(self).map(move |res, act, ctx| {
            if let Some(change) = res.map_err(tracker_down)? {
                act.announce_typing(&change, Some(origin));
            }
            if active {
                act.schedule_typing_expiry(ctx, room, thread_id);
            }
            Ok(())
        }))
    }
}

impl Handler<UpdatePresence> for RoomRegistry {
    type Result = Reply<()>;
    fn handle(&mut self, msg: UpdatePresence, _: &mut Context<Self>) -> Self::Result {
        let user = match self.conns.get(msg.id) {
            Ok(conn) => conn.user().clone(),
            Err(e) => return reply(Err(e)),
        };
        let set = self.presence.ask(SetStatus {
            user: user.clone(),
            status: msg.status,
            custom_status: msg.custom_status,
        });
        let set = match set {
            Ok(set) => set,
            Err(full) => return reply(Err(tracker_busy(full))),
        };
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
            act.relay(
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

impl Handler<PresenceOf> for RoomRegistry {
    type Result = Reply<MemberPage>;
    fn handle(&mut self, msg: PresenceOf, _: &mut Context<Self>) -> Self::Result {
        match self.access_now(msg.id, &msg.room) {
            Err(e) => reply(Err(e)),
            Ok(true) => self.presence_of(msg),
            Ok(false) => Box::pin(self.look_up(msg.id, &msg.room, false).then(
                move |res, act, _| match res {
                    Ok(()) => act.presence_of(msg),
                    Err(e) => reply(Err(e)),
                },
            )),
        }
    }
}

impl RoomRegistry {
    fn presence_of(&mut self, msg: PresenceOf) -> Reply<MemberPage> {
        match self.presence.ask(GetMembers {
            room: msg.room.into(),
            after: msg.after,
            limit: msg.limit,
            including: None,
        }) {
            Ok(get) => Box::pin(
                get.into_actor(self)
                    .map(|res, _, _| res.map_err(tracker_down)),
            ),
            Err(full) => reply(Err(tracker_busy(full))),
        }
    }
}

impl Handler<History> for RoomRegistry {
    type Result = Reply<Vec<Arc<MessageRecord>>>;
    fn handle(&mut self, msg: History, _: &mut Context<Self>) -> Self::Result {
        match self.access_now(msg.id, &msg.room) {
            Err(e) => reply(Err(e)),
            Ok(true) => self.history(msg),
            Ok(false) => Box::pin(self.look_up(msg.id, &msg.room, false).then(
                move |res, act, _| match res {
                    Ok(()) => act.history(msg),
                    Err(e) => reply(Err(e)),
                },
            )),
        }
    }
}

impl RoomRegistry {
    fn history(&mut self, msg: History) -> Reply<Vec<Arc<MessageRecord>>> {
        let history = self
            .log
            .history(&msg.room, msg.before, msg.limit, msg.reply_to.as_deref());
        Box::pin(
            history
                .into_actor(self)
                .map(|res, _, _| res.map_err(store_down)),
        )
    }
}
