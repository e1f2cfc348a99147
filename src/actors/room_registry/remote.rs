//! What other nodes say, relayed by the RedisBridge: their messages (into
//! the sequencer), typing and presence changes (the same bookkeeping as
//! local ones, announced to this node's members), snapshots, admin requests
//! and departures. Nothing here may be lost, so the tracker is asked in turn
//! (waiting for room in its mailbox) rather than refused.

use std::sync::Arc;

use actix::prelude::*;

use super::RoomRegistry;
use crate::actors::messages::{
    ApplySnapshot, DropNode, FromCluster, NodeGone, SetStatus, SetTyping, TakeSnapshot,
    TrackConnect, TrackDisconnect, TrackJoin, TrackLeave,
};
use crate::cluster::{Channel, ClusterEvent, TrackOp};

impl Handler<FromCluster> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: FromCluster, ctx: &mut Context<Self>) {
        let node = msg.node;
        match msg.event {
            ClusterEvent::Message { record } => self.sequence(ctx, record),
            ClusterEvent::NotificationsRead { user, ids } => {
                self.announce_notifications_read(&user, ids.as_deref(), None)
            }
            ClusterEvent::ReadPosition {
                user,
                room,
                last_read_seq,
            } => self.announce_read(&user, &room, last_read_seq, None),
            ClusterEvent::Changed { record, deleted_by } => {
                self.announce_change(&record, deleted_by.as_deref())
            }
            ClusterEvent::Typing {
                room,
                thread_id,
                user,
                active,
            } => {
                let set = self.presence.ask_in_turn(SetTyping {
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
                let set = self.presence.ask_in_turn(SetStatus {
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
                let take = self.presence.ask_in_turn(TakeSnapshot {
                    node: self.cfg.node_id.clone(),
                });
                ctx.spawn(take.into_actor(self).map(|res, act, _| {
                    // To everyone: a node that reconnected earlier may have
                    // missed this node's entries too.
                    if let Ok(snapshot) = res {
                        act.relay(Channel::All, ClusterEvent::Snapshot { snapshot });
                    }
                }));
            }
            ClusterEvent::Snapshot { snapshot } => {
                let apply = self.presence.ask_in_turn(ApplySnapshot { node, snapshot });
                ctx.spawn(apply.into_actor(self).map(|res, act, _| {
                    let Ok(changes) = res else { return };
                    for (room, user) in changes.joined {
                        act.announce_joined(&room, &user, None);
                    }
                    for (outcome, user) in changes.left {
                        act.announce_leave(&outcome, &user);
                    }
                }));
            }
            ClusterEvent::Request { id, op } => {
                let answer = self.run_admin(op, ctx);
                self.relay(Channel::Node(node), ClusterEvent::Reply { id, answer });
            }
            ClusterEvent::Room { change } => self.apply_room_change(ctx, &change),
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
                let track = TrackConnect {
                    node,
                    user,
                    name,
                    personal_room,
                };
                if let Some(wait) = self.presence.tell(track) {
                    actix::spawn(wait);
                }
            }
            TrackOp::Disconnect { user, rooms } => {
                let track = self.presence.ask_in_turn(TrackDisconnect {
                    node,
                    user: user.clone(),
                    rooms,
                });
                ctx.spawn(track.into_actor(self).map(move |res, act, _| {
                    act.announce_leaves(res.unwrap_or_default(), &user);
                }));
            }
            TrackOp::Join { room, user } => {
                let track = self.presence.ask_in_turn(TrackJoin {
                    node,
                    room: room.clone(),
                    user: user.clone(),
                    members_max: 0,
                });
                ctx.spawn(track.into_actor(self).map(move |res, act, _| {
                    if res.is_ok_and(|o| o.first) {
                        act.announce_joined(&room, &user, None);
                    }
                }));
            }
            TrackOp::Leave { room, user } => {
                let track = self.presence.ask_in_turn(TrackLeave {
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

impl Handler<NodeGone> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: NodeGone, ctx: &mut Context<Self>) {
        let drop = self.presence.ask_in_turn(DropNode { node: msg.node });
        ctx.spawn(drop.into_actor(self).map(|res, act, _| {
            for (outcome, user) in res.unwrap_or_default() {
                act.announce_leave(&outcome, &user);
            }
        }));
    }
}
