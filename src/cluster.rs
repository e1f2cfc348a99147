//! What nodes say to each other through Redis: typed events, serialised as
//! JSON in an [`Envelope`] that names the sending node and its boot.
//!
//! Channels (all under the configured prefix):
//! - `<prefix>:room:<room>`: `Message`, `Changed` and `Typing` of one room; a node
//!   subscribes while it has local members there.
//! - `<prefix>:all`: presence changes (`Track`, `Status`), `Hello`, admin
//!   `Request`s and managed-room changes (`Room`); every node subscribes.
//! - `<prefix>:node:<node>`: answers meant for one node (`Snapshot`, `Reply`).
//!
//! The registry reaches other nodes only through the [`Cluster`] interface:
//! [`SingleNode`] when Redis is not configured, the RedisBridge's otherwise
//! (`actors::redis_bridge::BridgeLink`). One code path serves both.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actors::messages::{ConnectionInfo, NodeFigures, RoomInfo};
use crate::broker::NodeSnapshot;
use crate::protocol::{Announcement, CustomStatus, MessageRecord, Notification, Status};
use crate::revocation::{Revocation, RevocationChange};
use crate::rooms::RoomChange;

/// The registry's way to the other nodes.
pub trait Cluster: Send + Sync + 'static {
    /// Hands an event to the other nodes. Never waits: when the relay's
    /// queue is full the event is dropped, counted and logged.
    fn relay(&self, channel: Channel, event: ClusterEvent);
    /// Follows a room's channel (or stops); ends once the subscription is
    /// confirmed, so nothing published after it is missed.
    fn follow(&self, room: Arc<str>, on: bool) -> BoxFuture<'static, ()>;
    /// Asks every other node to carry out `op`: the answers that came back
    /// in time, and how many nodes were asked.
    fn gather(&self, op: AdminOp) -> BoxFuture<'static, (Vec<AdminAnswer>, usize)>;
}

/// One node alone: nothing to relay, follow or ask.
pub struct SingleNode;

impl Cluster for SingleNode {
    fn relay(&self, _: Channel, _: ClusterEvent) {}
    fn follow(&self, _: Arc<str>, _: bool) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
    fn gather(&self, _: AdminOp) -> BoxFuture<'static, (Vec<AdminAnswer>, usize)> {
        Box::pin(std::future::ready((Vec::new(), 0)))
    }
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    Room(Arc<str>),
    All,
    Node(Arc<str>),
}

impl Channel {
    pub fn name(&self, prefix: &str) -> String {
        match self {
            Channel::Room(room) => format!("{prefix}:room:{room}"),
            Channel::All => format!("{prefix}:all"),
            Channel::Node(node) => format!("{prefix}:node:{node}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub node: Arc<str>,
    /// Changes each time the node starts: a node that comes back with the
    /// same id is a new node, and what the old one held is dropped.
    pub boot: Arc<str>,
    pub event: ClusterEvent,
}

/// A change to presence, mirrored from the tracker message of the same name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TrackOp {
    Connect {
        user: Arc<str>,
        name: Option<Arc<str>>,
    },
    Disconnect {
        user: Arc<str>,
        rooms: Vec<Arc<str>>,
    },
    Join {
        room: Arc<str>,
        user: Arc<str>,
    },
    Leave {
        room: Arc<str>,
        user: Arc<str>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A committed message (room channel).
    Message {
        record: Arc<MessageRecord>,
    },
    /// An edit or deletion, committed (room channel): the message as it is
    /// now; `deleted_by` for a deletion.
    Changed {
        record: Arc<MessageRecord>,
        deleted_by: Option<Arc<str>>,
    },
    /// A user's new read position (their personal room's channel), for
    /// their connections on other nodes.
    ReadPosition {
        user: Arc<str>,
        room: Arc<str>,
        last_read_seq: u64,
    },
    /// Notifications a user read (`None`: all), for their connections on
    /// other nodes (their personal room's channel).
    NotificationsRead {
        user: Arc<str>,
        ids: Option<Vec<String>>,
    },
    /// typing:start / typing:stop (room channel).
    Typing {
        room: Arc<str>,
        thread_id: Option<String>,
        user: Arc<str>,
        active: bool,
    },
    /// A presence change on the sending node.
    Track(TrackOp),
    /// presence:update of a user.
    Status {
        user: Arc<str>,
        status: Status,
        custom_status: Option<CustomStatus>,
    },
    /// "I (re)started or reconnected: send me your presence."
    Hello,
    /// "I am shutting down: drop what I held."
    Bye,
    /// The sender's whole presence contribution (to one node).
    Snapshot {
        snapshot: NodeSnapshot,
    },
    /// An admin call to carry out on every node; answer with `Reply`.
    Request {
        id: u64,
        op: AdminOp,
    },
    Reply {
        id: u64,
        answer: AdminAnswer,
    },
    /// A managed room or its members changed (all nodes): update the
    /// membership cache, send the events, make removed members leave.
    Room {
        change: RoomChange,
    },
}

/// A node's answer to an [`AdminOp`], one variant per kind of question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AdminAnswer {
    /// Kick, Notify, Broadcast: how many connections it reached;
    /// Revocation: 1 when applied.
    Count(usize),
    Stats(NodeFigures),
    Connections(Vec<ConnectionInfo>),
    Rooms(Vec<RoomInfo>),
}

/// What an admin call asks of every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminOp {
    Kick {
        user_id: String,
        reason: String,
        #[serde(default)]
        revocation: Option<Revocation>,
    },
    /// A token revocation added or lifted.
    Revocation {
        change: RevocationChange,
    },
    Notify {
        user_id: String,
        notification: Notification,
    },
    Broadcast {
        room: Option<String>,
        event: String,
        data: Value,
    },
    Announce {
        announcement: Announcement,
        target_roles: Vec<String>,
    },
    Stats,
    Connections {
        user_id: Option<String>,
    },
    Rooms,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_json() {
        let env = Envelope {
            node: "n1".into(),
            boot: "b1".into(),
            event: ClusterEvent::Track(TrackOp::Join {
                room: "r".into(),
                user: "u".into(),
            }),
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(
            text,
            r#"{"node":"n1","boot":"b1","event":{"t":"track","op":"join","room":"r","user":"u"}}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back.event,
            ClusterEvent::Track(TrackOp::Join { .. })
        ));
        assert_eq!(Channel::Room("a:b".into()).name("p"), "p:room:a:b");
        assert_eq!(Channel::Node("n".into()).name("p"), "p:node:n");
    }

    #[test]
    fn admin_answers_are_typed_on_the_wire() {
        let reply = ClusterEvent::Reply {
            id: 7,
            answer: AdminAnswer::Count(3),
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"t":"reply","id":7,"answer":{"kind":"count","value":3}}"#
        );
        let rooms = AdminAnswer::Rooms(vec![RoomInfo {
            room: "r".into(),
            users: 1,
            connections: 2,
        }]);
        let back: AdminAnswer =
            serde_json::from_str(&serde_json::to_string(&rooms).unwrap()).unwrap();
        assert_eq!(back, rooms);
    }
}
