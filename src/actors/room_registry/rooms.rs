//! The rooms with members on this node: who is in each (by connection and
//! by user), the limits a join must pass, and each room's [`Sequencer`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::fanout::Target;
use super::sequencer::Sequencer;
use crate::actors::conn::ConnId;
use crate::actors::messages::RoomInfo;
use crate::auth::{pattern_matches, PERSONAL_PREFIX};
use crate::protocol::{CommandError, ErrorCode};

/// The limits a join must pass.
#[derive(Debug, Clone)]
pub struct RoomLimits {
    pub max_users_default: usize,
    /// (room pattern, most users): the longest matching pattern wins.
    pub max_users: Vec<(String, usize)>,
    pub max_rooms_per_connection: usize,
    /// Rooms with more users than this get no join/leave events.
    pub join_leave_max_users: usize,
}

impl RoomLimits {
    /// The limit of the longest (most specific) matching pattern.
    pub fn max_users(&self, room: &str) -> usize {
        self.max_users
            .iter()
            .filter(|(pattern, _)| pattern_matches(pattern, room))
            .max_by_key(|(pattern, _)| pattern.len())
            .map_or(self.max_users_default, |(_, n)| *n)
    }
}

pub struct Room {
    pub members: HashMap<ConnId, Target>,
    /// user -> connections of that user in the room
    pub users: HashMap<Arc<str>, usize>,
    pub seq: Sequencer,
}

/// What removing a membership did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    NotMember,
    Member,
    /// The last member left: the room is gone from this node.
    LastMember(Arc<str>),
}

pub struct Rooms {
    rooms: HashMap<Arc<str>, Room>,
    limits: RoomLimits,
    gap_timeout: Duration,
}

/// Personal rooms carry notifications, not conversations.
pub fn is_personal(room: &str) -> bool {
    room.starts_with(PERSONAL_PREFIX)
}

impl Rooms {
    pub fn new(limits: RoomLimits, gap_timeout: Duration) -> Self {
        Rooms {
            rooms: HashMap::new(),
            limits,
            gap_timeout,
        }
    }

    pub fn get(&self, room: &str) -> Option<&Room> {
        self.rooms.get(room)
    }

    pub fn get_mut(&mut self, room: &str) -> Option<&mut Room> {
        self.rooms.get_mut(room)
    }

    pub fn contains(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// The shared name of `room` if it exists here (one allocation per room).
    pub fn name(&self, room: &str) -> Arc<str> {
        self.rooms
            .get_key_value(room)
            .map_or_else(|| room.into(), |(k, _)| k.clone())
    }

    /// Whether a connection of `user` already in `joined` rooms may join
    /// `room`: at most `max_rooms_per_connection` rooms each, and a full
    /// room takes no new user (a user already there may add connections).
    pub fn admit(&self, room: &str, user: &str, joined: usize) -> Result<(), CommandError> {
        let limits = &self.limits;
        if joined >= limits.max_rooms_per_connection {
            return Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "a connection may be in at most {} rooms; leave one first",
                    limits.max_rooms_per_connection
                ),
            ));
        }
        let max = limits.max_users(room);
        let r = self.rooms.get(room);
        let present = r.is_some_and(|r| r.users.contains_key(user));
        if !present && r.map_or(0, |r| r.users.len()) >= max {
            return Err(CommandError::new(
                ErrorCode::RoomFull,
                format!("room `{room}` is full ({max} users)"),
            ));
        }
        Ok(())
    }

    /// Adds a membership; a room new to this node starts with `seq`.
    pub fn add(
        &mut self,
        room: &Arc<str>,
        id: ConnId,
        user: &Arc<str>,
        target: Target,
        seq: impl FnOnce(Duration) -> Sequencer,
    ) {
        let gap_timeout = self.gap_timeout;
        let r = self.rooms.entry(room.clone()).or_insert_with(|| Room {
            members: HashMap::new(),
            users: HashMap::new(),
            seq: seq(gap_timeout),
        });
        r.members.insert(id, target);
        *r.users.entry(user.clone()).or_insert(0) += 1;
    }

    pub fn remove(&mut self, room: &str, id: ConnId, user: &str) -> Removed {
        let Some(r) = self.rooms.get_mut(room) else {
            return Removed::NotMember;
        };
        if r.members.remove(&id).is_none() {
            return Removed::NotMember;
        }
        if let Some(n) = r.users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                r.users.remove(user);
            }
        }
        if !r.members.is_empty() {
            return Removed::Member;
        }
        match self.rooms.remove_entry(room) {
            Some((name, _)) => Removed::LastMember(name),
            None => Removed::Member,
        }
    }

    /// Whether `user:joined`/`user:left` are sent in `room`: not in personal
    /// rooms (notifications, not conversations), and not in rooms with more
    /// users on this node than `rooms.join_leave_events_max_users`, where
    /// every join would cost a message to every member. `gone` counts users
    /// who just left, so a leave is judged by the room's size before it.
    pub fn announces_membership(&self, room: &str, gone: usize) -> bool {
        let users = self.rooms.get(room).map_or(0, |r| r.users.len()) + gone;
        !is_personal(room) && users <= self.limits.join_leave_max_users
    }

    /// Every room here with its counts, by name.
    pub fn listing(&self) -> Vec<RoomInfo> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::room_registry::fanout::tests::target;

    fn limits() -> RoomLimits {
        RoomLimits {
            max_users_default: 2,
            max_users: vec![("big:*".into(), 3)],
            max_rooms_per_connection: 2,
            join_leave_max_users: 1,
        }
    }

    #[test]
    fn the_most_specific_room_limit_wins() {
        let mut l = limits();
        l.max_users_default = 100;
        l.max_users = vec![
            ("team:*".into(), 50),
            ("team:vip:*".into(), 5),
            ("*".into(), 70),
        ];
        assert_eq!(l.max_users("team:vip:1"), 5);
        assert_eq!(l.max_users("team:1"), 50);
        assert_eq!(l.max_users("lobby"), 70);
        l.max_users.clear();
        assert_eq!(l.max_users("lobby"), 100);
    }

    #[actix_rt::test]
    async fn members_are_counted_by_connection_and_by_user() {
        let mut rooms = Rooms::new(limits(), Duration::from_millis(100));
        let room: Arc<str> = "team:1".into();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let (a1, a2, b1) = (ConnId::new_v4(), ConnId::new_v4(), ConnId::new_v4());
        rooms.add(&room, a1, &alice, target(), Sequencer::new);
        rooms.add(&room, a2, &alice, target(), Sequencer::new);
        assert!(rooms.announces_membership("team:1", 0), "one user");
        rooms.add(&room, b1, &bob, target(), Sequencer::new);
        assert!(!rooms.announces_membership("team:1", 0), "two users: quiet");
        assert_eq!(
            rooms.listing()[0],
            RoomInfo {
                room: room.clone(),
                users: 2,
                connections: 3
            }
        );

        assert_eq!(rooms.remove("team:1", a1, "alice"), Removed::Member);
        assert_eq!(
            rooms.get("team:1").unwrap().users.len(),
            2,
            "alice is still in"
        );
        assert_eq!(rooms.remove("team:1", a1, "alice"), Removed::NotMember);
        rooms.remove("team:1", a2, "alice");
        assert_eq!(rooms.remove("team:1", b1, "bob"), Removed::LastMember(room));
        assert_eq!(rooms.len(), 0);
        assert!(
            !rooms.announces_membership("user:alice", 0),
            "personal rooms never"
        );
    }

    #[actix_rt::test]
    async fn a_join_is_refused_past_the_room_and_connection_limits() {
        let mut rooms = Rooms::new(limits(), Duration::from_millis(100));
        let room: Arc<str> = "team:1".into();
        for user in ["a", "b"] {
            rooms.add(
                &room,
                ConnId::new_v4(),
                &user.into(),
                target(),
                Sequencer::new,
            );
        }
        let full = rooms.admit("team:1", "c", 0).unwrap_err();
        assert_eq!(full.code, ErrorCode::RoomFull);
        assert!(
            rooms.admit("team:1", "a", 0).is_ok(),
            "a member may add a connection"
        );
        assert!(rooms.admit("big:1", "c", 0).is_ok());
        let many = rooms.admit("team:2", "c", 2).unwrap_err();
        assert_eq!(many.code, ErrorCode::Forbidden);
    }
}
