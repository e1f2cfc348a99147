//! The registry's memory of managed rooms, so `message:send` checks
//! membership without a database read: for each managed room with members
//! on this node, its settings and the memberships loaded so far (a user's
//! is loaded when they join here), kept current by the [`RoomChange`]s of
//! this node's commands and of other nodes'. A room is forgotten when its
//! last local member leaves, so memory follows the rooms in use here.
//!
//! It also remembers rooms the database said are not managed (up to
//! [`AD_HOC_MAX`], then it starts over), so joining an ad hoc room again
//! needs no database read. A room created anywhere is dropped from that
//! list, and a lookup that was under way while a room was created is not
//! remembered (the `created` count changed meanwhile).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::protocol::{CommandError, ErrorCode, MemberObject, Role, RoomObject};
use crate::rooms::rules::{self, Acting};
use crate::rooms::RoomChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Membership {
    role: Role,
    muted: bool,
}

impl From<&MemberObject> for Membership {
    fn from(m: &MemberObject) -> Self {
        Membership {
            role: m.role,
            muted: m.muted,
        }
    }
}

struct Entry {
    room: RoomObject,
    members: HashMap<Arc<str>, Membership>,
}

/// What is known of a room and a user without asking the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The room has local members and is not managed: patterns decide.
    AdHoc,
    /// A managed room the user is a member of.
    Member,
    /// Ask the database.
    Unknown,
}

/// Whose connections must leave a room after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evict {
    Nobody,
    User(Arc<str>),
    Everyone,
}

/// Most rooms remembered as ad hoc.
pub const AD_HOC_MAX: usize = 65_536;

#[derive(Default)]
pub struct ManagedRooms {
    rooms: HashMap<Arc<str>, Entry>,
    ad_hoc: HashSet<Arc<str>>,
    /// Rooms created (here or elsewhere) so far.
    created: u64,
}

impl ManagedRooms {
    /// `local`: the room has members on this node (it is ad hoc unless
    /// known here as managed).
    pub fn known(&self, room: &str, user: &str, local: bool) -> Known {
        match self.rooms.get(room) {
            Some(entry) if entry.members.contains_key(user) => Known::Member,
            Some(_) => Known::Unknown,
            None if local || self.ad_hoc.contains(room) => Known::AdHoc,
            None => Known::Unknown,
        }
    }

    /// How many rooms were created so far: taken before a lookup, handed
    /// back to [`Self::remember_ad_hoc`] with its answer.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The database said `room` is not managed, in a lookup that started
    /// when [`Self::created`] was `created`.
    pub fn remember_ad_hoc(&mut self, room: &str, created: u64) {
        if created != self.created {
            return; // a room was created meanwhile: maybe this one
        }
        if self.ad_hoc.len() >= AD_HOC_MAX {
            self.ad_hoc.clear();
        }
        self.ad_hoc.insert(room.into());
    }

    pub fn is_managed(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// What the database said of a room (and of one user's membership).
    pub fn load(&mut self, room: RoomObject, member: Option<&MemberObject>) {
        let entry = self
            .rooms
            .entry(room.room.clone())
            .or_insert_with(|| Entry {
                room: room.clone(),
                members: HashMap::new(),
            });
        entry.room = room;
        if let Some(m) = member {
            entry.members.insert(m.user_id.clone(), m.into());
        }
    }

    /// The room's last local member left.
    pub fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// A managed room's own `rateLimit` (None: not managed, or unset).
    pub fn rate_limit(&self, room: &str) -> Option<u32> {
        self.rooms.get(room).and_then(|e| e.room.rate_limit)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// The check of `message:send` by a connection in the room: any sender
    /// in an ad hoc room; in a managed room the role table's.
    pub fn may_send(&self, room: &str, user: &str, operator: bool) -> Result<(), CommandError> {
        let Some(entry) = self.rooms.get(room) else {
            return Ok(());
        };
        let member = entry.members.get(user);
        let acting = Acting::of(member.map(|m| m.role), operator);
        let muted = member.is_some_and(|m| m.muted);
        rules::may_send(entry.room.kind, acting, muted)
            .map_err(|why| CommandError::new(ErrorCode::Forbidden, why))
    }

    /// Who `user` is in `room` for the role table: a managed room's member
    /// by role; in an ad hoc room nobody but an operator.
    pub fn acting(&self, room: &str, user: &str, operator: bool) -> Acting {
        let role = self
            .rooms
            .get(room)
            .and_then(|e| e.members.get(user))
            .map(|m| m.role);
        Acting::of(role, operator)
    }

    /// Applies a change; `local`: the room has members on this node.
    pub fn apply(&mut self, change: &RoomChange, local: bool) -> Evict {
        match change {
            RoomChange::Created { room, members } => {
                self.created += 1;
                self.ad_hoc.remove(&room.room);
                if local {
                    let members = members
                        .iter()
                        .map(|m| (m.user_id.clone(), m.into()))
                        .collect();
                    let entry = Entry {
                        room: room.clone(),
                        members,
                    };
                    self.rooms.insert(room.room.clone(), entry);
                }
                Evict::Nobody
            }
            RoomChange::Updated { room } => {
                if let Some(entry) = self.rooms.get_mut(&room.room) {
                    entry.room = room.clone();
                }
                Evict::Nobody
            }
            RoomChange::Deleted { room, .. } => {
                self.rooms.remove(room);
                Evict::Everyone
            }
            RoomChange::MemberAdded { room, member }
            | RoomChange::MemberUpdated { room, member } => {
                if let Some(entry) = self.rooms.get_mut(room) {
                    entry.members.insert(member.user_id.clone(), member.into());
                }
                Evict::Nobody
            }
            RoomChange::MemberRemoved { room, user, .. } => {
                if let Some(entry) = self.rooms.get_mut(room) {
                    entry.members.remove(user);
                }
                Evict::User(user.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RoomType, Visibility};

    fn room(name: &str, kind: RoomType) -> RoomObject {
        RoomObject {
            room: name.into(),
            kind,
            visibility: Visibility::Private,
            title: None,
            max_users: None,
            rate_limit: None,
            metadata: serde_json::json!({}),
            created_by: "o".into(),
            created_at: "t".into(),
            member_count: 0,
        }
    }

    fn member(user: &str, role: Role, muted: bool) -> MemberObject {
        MemberObject {
            user_id: user.into(),
            role,
            muted,
            joined_at: "t".into(),
            last_read_seq: 0,
        }
    }

    fn code(r: Result<(), CommandError>) -> Option<ErrorCode> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn ad_hoc_rooms_are_known_by_their_local_members_and_send_freely() {
        let m = ManagedRooms::default();
        assert_eq!(m.known("r", "a", true), Known::AdHoc);
        assert_eq!(m.known("r", "a", false), Known::Unknown);
        assert!(m.may_send("r", "a", false).is_ok());
    }

    #[test]
    fn loaded_members_send_by_the_role_table_without_the_database() {
        let mut m = ManagedRooms::default();
        m.load(
            room("r", RoomType::Broadcast),
            Some(&member("boss", Role::Admin, false)),
        );
        m.load(
            room("r", RoomType::Broadcast),
            Some(&member("fan", Role::Member, false)),
        );
        assert_eq!(m.known("r", "boss", true), Known::Member);
        assert_eq!(m.known("r", "stranger", true), Known::Unknown);
        assert!(m.may_send("r", "boss", false).is_ok());
        assert_eq!(
            code(m.may_send("r", "fan", false)),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            code(m.may_send("r", "stranger", false)),
            Some(ErrorCode::Forbidden)
        );
        assert!(m.may_send("r", "stranger", true).is_ok(), "operators");
    }

    #[test]
    fn changes_keep_the_cache_current_and_say_who_leaves() {
        let mut m = ManagedRooms::default();
        m.load(
            room("r", RoomType::Group),
            Some(&member("a", Role::Member, false)),
        );
        let muted = RoomChange::MemberUpdated {
            room: "r".into(),
            member: member("a", Role::Member, true),
        };
        assert_eq!(m.apply(&muted, true), Evict::Nobody);
        assert_eq!(
            code(m.may_send("r", "a", false)),
            Some(ErrorCode::Forbidden)
        );

        let added = RoomChange::MemberAdded {
            room: "r".into(),
            member: member("b", Role::Member, false),
        };
        m.apply(&added, true);
        assert!(m.may_send("r", "b", false).is_ok());

        let removed = RoomChange::MemberRemoved {
            room: "r".into(),
            user: "b".into(),
            by: "a".into(),
        };
        assert_eq!(m.apply(&removed, true), Evict::User("b".into()));
        assert_eq!(m.known("r", "b", true), Known::Unknown);

        let deleted = RoomChange::Deleted {
            room: "r".into(),
            members: vec!["a".into()],
        };
        assert_eq!(m.apply(&deleted, true), Evict::Everyone);
        assert!(!m.is_managed("r"));
        assert_eq!(m.known("r", "a", true), Known::AdHoc);
    }

    #[test]
    fn a_room_created_over_an_ad_hoc_one_here_becomes_managed() {
        let mut m = ManagedRooms::default();
        let created = RoomChange::Created {
            room: room("r", RoomType::Channel),
            members: vec![member("o", Role::Owner, false)],
        };
        m.apply(&created, false);
        assert!(!m.is_managed("r"), "no local members: nothing to remember");
        m.apply(&created, true);
        assert_eq!(m.known("r", "o", true), Known::Member);
        assert_eq!(m.known("r", "visitor", true), Known::Unknown);
        m.forget("r");
        assert!(m.is_empty());
    }

    #[test]
    fn rooms_found_ad_hoc_are_remembered_until_one_is_created() {
        let mut m = ManagedRooms::default();
        let before = m.created();
        m.remember_ad_hoc("r", before);
        assert_eq!(m.known("r", "a", false), Known::AdHoc);
        let created = RoomChange::Created {
            room: room("r", RoomType::Channel),
            members: Vec::new(),
        };
        m.apply(&created, false);
        assert_eq!(m.known("r", "a", false), Known::Unknown);
        // a lookup that started before a creation is not remembered
        m.remember_ad_hoc("s", before);
        assert_eq!(m.known("s", "a", false), Known::Unknown);
        m.remember_ad_hoc("s", m.created());
        assert_eq!(m.known("s", "a", false), Known::AdHoc);
    }
}
