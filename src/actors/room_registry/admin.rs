//! Admin calls (kick, token revocations, notify, broadcast, listings): done
//! here, asked of every other node through the
//! [`Cluster`](crate::cluster::Cluster), and merged. Each node answers with
//! a typed [`AdminAnswer`]; the merging is plain functions, tested below.

use std::collections::BTreeMap;

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;
use serde_json::Value;

use super::RoomRegistry;
use crate::actors::messages::{
    Announce, Broadcast, CloseAll, ClusterStats, ConnectionInfo, Kick, ListConnections, ListRooms,
    MailboxDepths, NodeFigures, Notify, RegistryStats, Revoke, RoomInfo, Stats,
};
use crate::auth::now_secs;
use crate::cluster::{AdminAnswer, AdminOp};
use crate::metrics::{add, get, inc};
use crate::protocol::notifications::roles_meet;
use crate::protocol::{close, encode, timestamp, Announcement, Closing, Event, Notification};

/// The sum of the nodes' counts.
fn sum_counts(answers: &[AdminAnswer]) -> usize {
    answers
        .iter()
        .map(|a| match a {
            AdminAnswer::Count(n) => *n,
            _ => 0,
        })
        .sum()
}

/// Rooms by name, counts added up over the nodes.
fn merge_rooms(local: Vec<RoomInfo>, answers: Vec<AdminAnswer>) -> Vec<RoomInfo> {
    let remote = answers.into_iter().flat_map(|a| match a {
        AdminAnswer::Rooms(rooms) => rooms,
        _ => Vec::new(),
    });
    let mut merged: BTreeMap<_, RoomInfo> = BTreeMap::new();
    for r in local.into_iter().chain(remote) {
        let entry = merged.entry(r.room.clone()).or_insert(RoomInfo {
            room: r.room,
            users: 0,
            connections: 0,
        });
        entry.users += r.users;
        entry.connections += r.connections;
    }
    merged.into_values().collect()
}

/// Every node's connections, oldest first.
fn merge_connections(local: Vec<ConnectionInfo>, answers: Vec<AdminAnswer>) -> Vec<ConnectionInfo> {
    let mut list = local;
    for a in answers {
        if let AdminAnswer::Connections(more) = a {
            list.extend(more);
        }
    }
    list.sort_by(|a, b| a.connected_at.cmp(&b.connected_at));
    list
}

/// This node's figures first, then the others'; and how many nodes were
/// asked but did not answer.
fn merge_stats(
    local: NodeFigures,
    answers: Vec<AdminAnswer>,
    asked: usize,
) -> (Vec<NodeFigures>, usize) {
    let mut nodes = vec![local];
    nodes.extend(answers.into_iter().filter_map(|a| match a {
        AdminAnswer::Stats(figures) => Some(figures),
        _ => None,
    }));
    let missing = asked.saturating_sub(nodes.len() - 1);
    (nodes, missing)
}

impl Handler<Kick> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Kick, _: &mut Context<Self>) -> Self::Result {
        if let Some(r) = &msg.revocation {
            self.revocations.add(r.clone());
        }
        let local = self.kick_local(&msg.user_id, &msg.reason);
        let op = AdminOp::Kick {
            user_id: msg.user_id,
            reason: msg.reason,
            revocation: msg.revocation,
        };
        self.counted_everywhere(local, op)
    }
}

impl Handler<Revoke> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, Revoke(change): Revoke, _: &mut Context<Self>) -> Self::Result {
        self.revocations.apply(change.clone(), now_secs());
        self.counted_everywhere(1, AdminOp::Revocation { change })
    }
}

impl Handler<Notify> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Notify, _: &mut Context<Self>) -> Self::Result {
        let local = self.notify_local(&msg.user_id, &msg.notification);
        let op = AdminOp::Notify {
            user_id: msg.user_id,
            notification: msg.notification,
        };
        self.counted_everywhere(local, op)
    }
}

impl Handler<Broadcast> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> Self::Result {
        let local = self.broadcast_local(msg.room.as_deref(), &msg.event, &msg.data);
        let op = AdminOp::Broadcast {
            room: msg.room,
            event: msg.event,
            data: msg.data,
        };
        self.counted_everywhere(local, op)
    }
}

impl Handler<Announce> for RoomRegistry {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: Announce, _: &mut Context<Self>) -> Self::Result {
        let local = self.announce_local(&msg.announcement, &msg.target_roles);
        let op = AdminOp::Announce {
            announcement: msg.announcement,
            target_roles: msg.target_roles,
        };
        self.counted_everywhere(local, op)
    }
}

impl Handler<ListRooms> for RoomRegistry {
    type Result = ResponseFuture<Vec<RoomInfo>>;
    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let local = self.rooms.listing();
        Box::pin(
            self.cluster
                .gather(AdminOp::Rooms)
                .map(move |(answers, _)| merge_rooms(local, answers)),
        )
    }
}

impl Handler<ListConnections> for RoomRegistry {
    type Result = ResponseFuture<Vec<ConnectionInfo>>;
    fn handle(&mut self, msg: ListConnections, _: &mut Context<Self>) -> Self::Result {
        let local = self.conns.listing(msg.user_id.as_deref());
        let op = AdminOp::Connections {
            user_id: msg.user_id,
        };
        Box::pin(
            self.cluster
                .gather(op)
                .map(move |(answers, _)| merge_connections(local, answers)),
        )
    }
}

impl Handler<Stats> for RoomRegistry {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats_local())
    }
}

impl Handler<ClusterStats> for RoomRegistry {
    type Result = ResponseFuture<(Vec<NodeFigures>, usize)>;
    fn handle(&mut self, _: ClusterStats, _: &mut Context<Self>) -> Self::Result {
        let local = self.node_figures();
        Box::pin(
            self.cluster
                .gather(AdminOp::Stats)
                .map(move |(answers, asked)| merge_stats(local, answers, asked)),
        )
    }
}

impl Handler<CloseAll> for RoomRegistry {
    type Result = usize;
    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) -> usize {
        let why = Closing::ShuttingDown;
        self.conns
            .iter()
            .filter(|(_, conn)| conn.target.shut_down(why.code(), why.reason()))
            .count()
    }
}

impl RoomRegistry {
    /// `local` plus what every other node counts for `op`.
    fn counted_everywhere(&self, local: usize, op: AdminOp) -> ResponseFuture<usize> {
        Box::pin(
            self.cluster
                .gather(op)
                .map(move |(answers, _)| local + sum_counts(&answers)),
        )
    }

    fn kick_local(&self, user_id: &str, reason: &str) -> usize {
        let mut kicked = 0;
        for (id, conn) in self.conns.of_user(user_id) {
            if conn.target.shut_down(close::KICKED, reason) {
                kicked += 1;
                log::info!("kick conn={id} user={user_id:?} reason={reason:?}");
            }
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
                    .filter(|(id, conn)| self.deliver(*id, &conn.target, &frame))
                    .count();
                add(&self.metrics.messages_out, delivered as u64);
                delivered
            }
        }
    }

    /// To every connection here whose token's `roles` meet `targets`.
    fn announce_local(&self, announcement: &Announcement, targets: &[String]) -> usize {
        let frame = encode(&Event::Announcement { data: announcement });
        let delivered = self
            .conns
            .iter()
            .filter(|(_, conn)| roles_meet(&conn.identity.roles, targets))
            .filter(|(id, conn)| self.deliver(*id, &conn.target, &frame))
            .count();
        add(&self.metrics.messages_out, delivered as u64);
        delivered
    }

    fn stats_local(&self) -> RegistryStats {
        RegistryStats {
            connections: self.conns.len(),
            users: self.conns.users(),
            rooms: self.rooms.len(),
        }
    }

    /// This node's line of `/admin/stats`.
    fn node_figures(&self) -> NodeFigures {
        let s = self.stats_local();
        let m = &self.metrics;
        NodeFigures {
            node_id: self.cfg.node_id.clone(),
            connections: s.connections,
            users: s.users,
            rooms: s.rooms,
            messages_in: get(&m.messages_in),
            messages_out: get(&m.messages_out),
            rate_limited: get(&m.rate_limited),
            slow_consumer_closes: get(&m.slow_consumer_closes),
            uptime_secs: self.started.elapsed().as_secs(),
            mailbox_depth: MailboxDepths {
                session: m.session_mailbox.depth(),
                room_registry: m.mailbox_depth("room_registry"),
                presence_tracker: m.mailbox_depth("presence_tracker"),
                redis_bridge: m.mailbox_depth("redis_bridge"),
            },
        }
    }

    /// What another node's admin request asks of this one.
    pub(super) fn run_admin(&self, op: AdminOp) -> AdminAnswer {
        match op {
            AdminOp::Kick {
                user_id,
                reason,
                revocation,
            } => {
                if let Some(r) = revocation {
                    self.revocations.add(r);
                }
                AdminAnswer::Count(self.kick_local(&user_id, &reason))
            }
            AdminOp::Revocation { change } => {
                self.revocations.apply(change, now_secs());
                AdminAnswer::Count(1)
            }
            AdminOp::Notify {
                user_id,
                notification,
            } => AdminAnswer::Count(self.notify_local(&user_id, &notification)),
            AdminOp::Broadcast { room, event, data } => {
                AdminAnswer::Count(self.broadcast_local(room.as_deref(), &event, &data))
            }
            AdminOp::Announce {
                announcement,
                target_roles,
            } => AdminAnswer::Count(self.announce_local(&announcement, &target_roles)),
            AdminOp::Stats => AdminAnswer::Stats(self.node_figures()),
            AdminOp::Connections { user_id } => {
                AdminAnswer::Connections(self.conns.listing(user_id.as_deref()))
            }
            AdminOp::Rooms => AdminAnswer::Rooms(self.rooms.listing()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, users: usize, connections: usize) -> RoomInfo {
        RoomInfo {
            room: name.into(),
            users,
            connections,
        }
    }

    fn figures(node: &str) -> NodeFigures {
        NodeFigures {
            node_id: node.into(),
            connections: 1,
            users: 1,
            rooms: 1,
            messages_in: 0,
            messages_out: 0,
            rate_limited: 0,
            slow_consumer_closes: 0,
            uptime_secs: 0,
            mailbox_depth: MailboxDepths::default(),
        }
    }

    #[test]
    fn counts_add_up_and_other_answers_are_ignored() {
        let answers = [
            AdminAnswer::Count(2),
            AdminAnswer::Count(3),
            AdminAnswer::Rooms(Vec::new()),
        ];
        assert_eq!(sum_counts(&answers), 5);
    }

    #[test]
    fn rooms_merge_by_name_across_nodes() {
        let local = vec![room("a", 1, 2), room("b", 1, 1)];
        let answers = vec![
            AdminAnswer::Rooms(vec![room("b", 2, 3), room("c", 1, 1)]),
            AdminAnswer::Count(9),
        ];
        assert_eq!(
            merge_rooms(local, answers),
            [room("a", 1, 2), room("b", 3, 4), room("c", 1, 1)]
        );
    }

    #[test]
    fn stats_put_this_node_first_and_count_the_silent_ones() {
        let answers = vec![AdminAnswer::Stats(figures("n2"))];
        let (nodes, missing) = merge_stats(figures("n1"), answers, 3);
        let ids: Vec<&str> = nodes.iter().map(|n| &*n.node_id).collect();
        assert_eq!(ids, ["n1", "n2"]);
        assert_eq!(missing, 2);
    }
}
