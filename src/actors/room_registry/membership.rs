//! Managed rooms in the registry: who may enter or read one (from the
//! [`ManagedRooms`](super::managed::ManagedRooms) cache when it knows, from
//! the database on a first use here), and carrying out a [`RoomChange`]:
//! the cache, the events, and the connections that must leave at once.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use serde_json::json;

use super::fanout::Target;
use super::managed::{Evict, Known};
use super::{reply, Reply, RoomRegistry};
use crate::actors::conn::ConnId;
use crate::actors::messages::{ApplyRoomChanges, TrackLeave};
use crate::cluster::{Channel, ClusterEvent, TrackOp};
use crate::mailbox::Mailbox;
use crate::metrics::add;
use crate::protocol::{encode, CommandError, Event};
use crate::rooms::{Entry, RoomChange};
use crate::store::now_ms;
use crate::store::records::Record;

/// Hands the changes of a room command to the registry and waits until
/// they are applied here (and relayed), so the command's reply comes after
/// its events and after removed members have left.
pub async fn apply_changes(registry: &Mailbox<RoomRegistry>, changes: Vec<RoomChange>) {
    if changes.is_empty() {
        return;
    }
    if let Err(e) = registry.ask_in_turn(ApplyRoomChanges { changes }).await {
        log::error!("room changes not applied: the room registry is gone ({e})");
    }
}

impl Handler<ApplyRoomChanges> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: ApplyRoomChanges, ctx: &mut Context<Self>) {
        for change in msg.changes {
            self.apply_room_change(ctx, &change);
            let detail = serde_json::to_value(&change).unwrap_or_default();
            self.records.audit("room_change", None, None, detail);
            self.relay(Channel::All, ClusterEvent::Room { change });
        }
    }
}

impl RoomRegistry {
    /// Whether connection `id` may use `room`, decided in memory: `Ok(true)`
    /// yes, `Ok(false)` ask the database ([`Self::look_up`]).
    pub(super) fn access_now(&self, id: ConnId, room: &str) -> Result<bool, CommandError> {
        let conn = self.conns.get(id)?;
        if *conn.personal_room == *room {
            return Ok(true);
        }
        match self
            .managed
            .known(room, conn.user(), self.rooms.contains(room))
        {
            Known::AdHoc => self
                .conns
                .may_access(id, room, &self.cfg.public_rooms)
                .map(|_| true),
            Known::Member => Ok(true),
            Known::Unknown => Ok(false),
        }
    }

    /// Asks the database whether connection `id` may enter (`join`; a
    /// public managed room then makes it a member) or read `room`; a
    /// managed room is remembered while it has members here.
    pub(super) fn look_up(&mut self, id: ConnId, room: &str, join: bool) -> Reply<()> {
        let conn = match self.conns.get(id) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        let (user, operator) = (conn.user().clone(), conn.identity.admin);
        let anonymous = conn.identity.expires_at.is_none();
        let (service, name) = (self.service.clone(), room.to_string());
        let enter = async move { service.enter(&name, &user, operator, anonymous, join).await };
        let (room, created) = (room.to_string(), self.managed.created());
        Box::pin(enter.into_actor(self).map(move |res, act, ctx| match res? {
            Entry::AdHoc => {
                act.managed.remember_ad_hoc(&room, created);
                act.conns
                    .may_access(id, &room, &act.cfg.public_rooms)
                    .map(|_| ())
            }
            Entry::Managed {
                room: found,
                member,
                added,
            } => {
                if join || act.rooms.contains(&room) {
                    act.managed.load(*found, member.as_ref());
                }
                if let Some(change) = added {
                    act.apply_room_change(ctx, &change);
                    act.relay(Channel::All, ClusterEvent::Room { change: *change });
                }
                Ok(())
            }
        }))
    }

    /// Carries out a change made here or on another node.
    pub(super) fn apply_room_change(&mut self, ctx: &mut Context<Self>, change: &RoomChange) {
        let room = change.room().clone();
        let evict = self.managed.apply(change, self.rooms.contains(&room));
        let (frame, users) = match change {
            RoomChange::Created { .. } => return,
            RoomChange::Updated { room } => (
                encode(&Event::RoomUpdated {
                    room: &room.room,
                    data: room,
                }),
                Vec::new(),
            ),
            RoomChange::Deleted { room, members } => {
                (encode(&Event::RoomDeleted { room }), members.clone())
            }
            RoomChange::MemberAdded { room, member } => (
                encode(&Event::MemberAdded { room, member }),
                vec![member.user_id.clone()],
            ),
            RoomChange::MemberUpdated { room, member } => (
                encode(&Event::MemberUpdated { room, member }),
                vec![member.user_id.clone()],
            ),
            RoomChange::MemberRemoved { room, user, by } => (
                encode(&Event::MemberRemoved {
                    room,
                    user_id: user,
                    by,
                }),
                vec![user.clone()],
            ),
        };
        self.deliver_once(&room, &users, &frame);
        match evict {
            Evict::Nobody => {}
            Evict::User(user) => self.evict(ctx, &room, Some(&user)),
            Evict::Everyone => self.evict(ctx, &room, None),
        }
    }

    /// `frame` to every local connection in `room` or in the personal room
    /// of one of `users`, once each.
    fn deliver_once(&self, room: &str, users: &[Arc<str>], frame: &ByteString) {
        let mut receivers: HashMap<ConnId, &Target> = HashMap::new();
        let personal: Vec<String> = users
            .iter()
            .map(|u| crate::auth::personal_room(u))
            .collect();
        for name in std::iter::once(room).chain(personal.iter().map(String::as_str)) {
            if let Some(r) = self.rooms.get(name) {
                receivers.extend(r.members.iter().map(|(id, t)| (*id, t)));
            }
        }
        let delivered = receivers
            .iter()
            .filter(|(id, target)| self.deliver(**id, target, frame))
            .count();
        add(&self.metrics.messages_out, delivered as u64);
    }

    /// Makes the local connections in `room` (of `user`, or all) leave it
    /// at once: from here on nothing of the room reaches them.
    fn evict(&mut self, ctx: &mut Context<Self>, room: &Arc<str>, user: Option<&str>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let ids: Vec<ConnId> = r
            .members
            .keys()
            .copied()
            .filter(|id| {
                self.conns.get(*id).is_ok_and(|c| {
                    user.is_none_or(|u| **c.user() == *u) && *c.personal_room != **room
                })
            })
            .collect();
        for id in ids {
            let Ok(conn) = self.conns.get(id) else {
                continue;
            };
            let user = conn.user().clone();
            self.remove_member(id, room);
            self.records.send(Record::Left {
                room: room.to_string(),
                connection_id: id.to_string(),
                at: now_ms(),
            });
            let detail = json!({ "room": &**room, "removed": true });
            let conn_id = id.to_string();
            self.records
                .audit("leave", Some(&user), Some(&conn_id), detail);
            self.relay(
                Channel::All,
                ClusterEvent::Track(TrackOp::Leave {
                    room: room.clone(),
                    user: user.clone(),
                }),
            );
            let track = self.presence.ask_in_turn(TrackLeave {
                node: self.cfg.node_id.clone(),
                room: room.clone(),
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
