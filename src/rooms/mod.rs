//! Managed rooms: the commands (`room:create` … `dm:open`, and the admin
//! API's equivalents) as plain async functions over the [`RoomStore`] and
//! the role table ([`rules`]). Nothing here is an actor: a command answers
//! its reply data and the [`RoomChange`]s it made, and the caller hands
//! those to the room registry, which updates its membership cache, sends
//! the events, makes removed members leave, and tells the other nodes.

pub mod rules;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use self::rules::{Acting, Verdict};
use crate::auth::{Identity, PERSONAL_PREFIX};
use crate::broker::StoreError;
use crate::protocol::{
    CommandError, ErrorCode, MemberObject, NewRoom, Role, RoomCommand, RoomObject, RoomPatch,
    RoomType, Visibility,
};
use crate::store::rooms::{Added, RoomStore};

/// The prefix of the rooms `dm:open` makes; no other room may use it.
pub const DM_PREFIX: &str = "dm:";

/// Anonymous connections (`server.anonymous`) have a user id of their own
/// that ends with them: they cannot be members.
const ANONYMOUS: &str = "anonymous connections cannot be members of managed rooms";

/// A change to a managed room, applied by every node (`ClusterEvent::Room`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RoomChange {
    Created {
        room: RoomObject,
        members: Vec<MemberObject>,
    },
    Updated {
        room: RoomObject,
    },
    Deleted {
        room: Arc<str>,
        members: Vec<Arc<str>>,
    },
    MemberAdded {
        room: Arc<str>,
        member: MemberObject,
    },
    MemberUpdated {
        room: Arc<str>,
        member: MemberObject,
    },
    MemberRemoved {
        room: Arc<str>,
        user: Arc<str>,
        by: Arc<str>,
    },
}

impl RoomChange {
    /// The room it is about.
    pub fn room(&self) -> &Arc<str> {
        match self {
            RoomChange::Created { room, .. } | RoomChange::Updated { room } => &room.room,
            RoomChange::Deleted { room, .. }
            | RoomChange::MemberAdded { room, .. }
            | RoomChange::MemberUpdated { room, .. }
            | RoomChange::MemberRemoved { room, .. } => room,
        }
    }
}

/// What a command did: its reply data and the changes to apply.
#[derive(Debug)]
pub struct Done {
    pub data: Value,
    pub changes: Vec<RoomChange>,
}

/// Who runs a command.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    Client(&'a Identity),
    /// The admin HTTP API: acts above every role and is no member itself.
    AdminApi,
}

impl Caller<'_> {
    pub fn user(&self) -> &str {
        match self {
            Caller::Client(identity) => &identity.user_id,
            Caller::AdminApi => "admin",
        }
    }

    fn operator(&self) -> bool {
        match self {
            Caller::Client(identity) => identity.admin,
            Caller::AdminApi => true,
        }
    }

    fn acting(&self, member: Option<&MemberObject>) -> Acting {
        Acting::of(member.map(|m| m.role), self.operator())
    }
}

/// How a connection may enter (or read) a room.
#[derive(Debug)]
pub enum Entry {
    /// Not a managed room: the token's patterns decide.
    AdHoc,
    /// A managed room the user may enter; `member` is their membership
    /// (None for operators who are not members).
    Managed {
        room: Box<RoomObject>,
        member: Option<MemberObject>,
        /// The join made them a member (a public room): announce it.
        added: Option<Box<RoomChange>>,
    },
}

fn forbidden(why: &str) -> CommandError {
    CommandError::new(ErrorCode::Forbidden, why)
}

fn check(verdict: Verdict) -> Result<(), CommandError> {
    verdict.map_err(forbidden)
}

fn store_down(e: StoreError) -> CommandError {
    e.to_command_error()
}

fn no_room(room: &str) -> CommandError {
    CommandError::new(ErrorCode::NotFound, format!("no managed room `{room}`"))
}

fn no_member(room: &str, user: &str) -> CommandError {
    CommandError::new(
        ErrorCode::NotFound,
        format!("`{user}` is not a member of `{room}`"),
    )
}

fn full(room: &RoomObject) -> CommandError {
    CommandError::new(
        ErrorCode::RoomFull,
        format!(
            "room `{}` has its {} members (maxUsers)",
            room.room,
            room.max_users.unwrap_or_default()
        ),
    )
}

/// The name of the dm room of two users: the same whichever opens it.
pub fn dm_name(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha256::new();
    hash.update(first.as_bytes());
    hash.update([0]);
    hash.update(second.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{DM_PREFIX}{hex}")
}

/// `room:list`'s entry: the room object plus read positions.
fn listed(room: RoomObject, member: &MemberObject, last_seq: u64) -> Value {
    let mut value = serde_json::to_value(room).unwrap_or_default();
    let read = member.last_read_seq.min(last_seq);
    value["lastSeq"] = json!(last_seq);
    value["lastReadSeq"] = json!(member.last_read_seq);
    value["unread"] = json!(last_seq - read);
    value
}

#[derive(Clone)]
pub struct RoomService {
    store: RoomStore,
}

impl RoomService {
    pub fn new(store: RoomStore) -> Self {
        RoomService { store }
    }

    pub fn store(&self) -> &RoomStore {
        &self.store
    }

    /// One command of a client.
    pub async fn run(&self, identity: &Identity, cmd: RoomCommand) -> Result<Done, CommandError> {
        if identity.expires_at.is_none() {
            return Err(forbidden(ANONYMOUS));
        }
        let caller = Caller::Client(identity);
        match cmd {
            RoomCommand::Create(new) => self.create(caller, new).await,
            RoomCommand::Update { room, patch } => self.update(caller, &room, patch).await,
            RoomCommand::Delete { room } => self.delete(caller, &room).await,
            RoomCommand::List => self.list(&identity.user_id).await,
            RoomCommand::MemberAdd {
                room,
                user_id,
                role,
            } => self.add_member(caller, &room, &user_id, role).await,
            RoomCommand::MemberRemove { room, user_id } => {
                self.remove_member(caller, &room, &user_id).await
            }
            RoomCommand::MemberUpdate {
                room,
                user_id,
                role,
                muted,
            } => {
                self.update_member(caller, &room, &user_id, role, muted)
                    .await
            }
            RoomCommand::MemberList { room, after, limit } => {
                self.list_members(caller, &room, after.as_deref(), limit)
                    .await
            }
            RoomCommand::DmOpen { user_id } => self.open_dm(identity, &user_id).await,
        }
    }

    /// The room and the caller's membership; NOT_FOUND without the room.
    async fn room_as(
        &self,
        caller: Caller<'_>,
        room: &str,
    ) -> Result<(RoomObject, Option<MemberObject>), CommandError> {
        self.store
            .get(room, Some(caller.user()))
            .await
            .map_err(store_down)?
            .ok_or_else(|| no_room(room))
    }

    async fn member(&self, room: &str, user: &str) -> Result<MemberObject, CommandError> {
        match self.store.get(room, Some(user)).await.map_err(store_down)? {
            Some((_, Some(member))) => Ok(member),
            Some((_, None)) => Err(no_member(room, user)),
            None => Err(no_room(room)),
        }
    }

    /// `room:create` (a client: the room must match its token's patterns,
    /// and it becomes `owner`) or `POST /admin/rooms` (`members` with roles).
    pub async fn create(&self, caller: Caller<'_>, new: NewRoom) -> Result<Done, CommandError> {
        if new.kind == RoomType::Dm {
            return Err(CommandError::bad_request(
                "a dm room is made by dm:open, not created",
            ));
        }
        if new.room.starts_with(PERSONAL_PREFIX) || new.room.starts_with(DM_PREFIX) {
            return Err(forbidden(
                "room names starting with `user:` or `dm:` are reserved",
            ));
        }
        if let Caller::Client(identity) = caller {
            if !identity.may_access(&new.room, &[]) {
                return Err(forbidden(
                    "creating this room needs a token whose `rooms` patterns allow its name",
                ));
            }
        }
        let mut members: Vec<(String, Role)> = Vec::new();
        if let Caller::Client(identity) = caller {
            members.push((identity.user_id.to_string(), Role::Owner));
        }
        for (user, role) in &new.members {
            if !members.iter().any(|(u, _)| u == user) {
                members.push((user.clone(), *role));
            }
        }
        if new
            .max_users
            .is_some_and(|max| members.len() > max as usize)
        {
            return Err(CommandError::new(
                ErrorCode::RoomFull,
                format!(
                    "{} members are more than maxUsers {}",
                    members.len(),
                    new.max_users.unwrap_or_default()
                ),
            ));
        }
        self.create_stored(caller.user(), &new, members).await
    }

    async fn create_stored(
        &self,
        by: &str,
        new: &NewRoom,
        members: Vec<(String, Role)>,
    ) -> Result<Done, CommandError> {
        match self.store.create(new, by, members).await {
            Ok((room, members)) => Ok(Done {
                data: serde_json::to_value(&room).unwrap_or_default(),
                changes: vec![RoomChange::Created { room, members }],
            }),
            Err(StoreError::Conflict(_)) => Err(CommandError::new(
                ErrorCode::Conflict,
                format!("room `{}` exists already", new.room),
            )),
            Err(e) => Err(store_down(e)),
        }
    }

    pub async fn update(
        &self,
        caller: Caller<'_>,
        room: &str,
        patch: RoomPatch,
    ) -> Result<Done, CommandError> {
        let (_, member) = self.room_as(caller, room).await?;
        check(rules::may_update_room(caller.acting(member.as_ref())))?;
        let updated = self
            .store
            .update(room, &patch)
            .await
            .map_err(store_down)?
            .ok_or_else(|| no_room(room))?;
        Ok(Done {
            data: serde_json::to_value(&updated).unwrap_or_default(),
            changes: vec![RoomChange::Updated { room: updated }],
        })
    }

    pub async fn delete(&self, caller: Caller<'_>, room: &str) -> Result<Done, CommandError> {
        let (_, member) = self.room_as(caller, room).await?;
        check(rules::may_delete_room(caller.acting(member.as_ref())))?;
        let members = self
            .store
            .delete(room)
            .await
            .map_err(store_down)?
            .ok_or_else(|| no_room(room))?;
        Ok(Done {
            data: json!({}),
            changes: vec![RoomChange::Deleted {
                room: room.into(),
                members,
            }],
        })
    }

    async fn list(&self, user: &str) -> Result<Done, CommandError> {
        let rooms = self.store.rooms_of(user).await.map_err(store_down)?;
        let rooms: Vec<Value> = rooms
            .into_iter()
            .map(|m| listed(m.room, &m.member, m.last_seq))
            .collect();
        Ok(Done {
            data: json!({ "rooms": rooms }),
            changes: Vec::new(),
        })
    }

    pub async fn add_member(
        &self,
        caller: Caller<'_>,
        room: &str,
        user: &str,
        role: Role,
    ) -> Result<Done, CommandError> {
        let (found, member) = self.room_as(caller, room).await?;
        check(rules::may_add(
            found.kind,
            caller.acting(member.as_ref()),
            role,
        ))?;
        match self
            .store
            .add_member(room, user, role)
            .await
            .map_err(store_down)?
        {
            Added::Added(member) => Ok(Done {
                data: serde_json::to_value(&member).unwrap_or_default(),
                changes: vec![RoomChange::MemberAdded {
                    room: room.into(),
                    member,
                }],
            }),
            Added::Already(_) => Err(CommandError::new(
                ErrorCode::Conflict,
                format!("`{user}` is a member of `{room}` already"),
            )),
            Added::Full => Err(full(&found)),
            Added::NoRoom => Err(no_room(room)),
        }
    }

    pub async fn remove_member(
        &self,
        caller: Caller<'_>,
        room: &str,
        user: &str,
    ) -> Result<Done, CommandError> {
        let (_, member) = self.room_as(caller, room).await?;
        let itself = member.is_some() && caller.user() == user;
        let target = self.member(room, user).await?;
        check(rules::may_remove(
            caller.acting(member.as_ref()),
            itself,
            target.role,
        ))?;
        self.store
            .remove_member(room, user)
            .await
            .map_err(store_down)?
            .ok_or_else(|| no_member(room, user))?;
        Ok(Done {
            data: json!({}),
            changes: vec![RoomChange::MemberRemoved {
                room: room.into(),
                user: user.into(),
                by: caller.user().into(),
            }],
        })
    }

    pub async fn update_member(
        &self,
        caller: Caller<'_>,
        room: &str,
        user: &str,
        role: Option<Role>,
        muted: Option<bool>,
    ) -> Result<Done, CommandError> {
        let (_, member) = self.room_as(caller, room).await?;
        let acting = caller.acting(member.as_ref());
        let itself = member.is_some() && caller.user() == user;
        let target = self.member(room, user).await?;
        let (new_role, new_mute) = (
            role.filter(|r| *r != target.role),
            muted.filter(|m| *m != target.muted),
        );
        if new_role.is_none() && new_mute.is_none() {
            // Nothing to change: no event, but not an outsider's way to
            // read a membership either.
            if acting == Acting::Outsider {
                return Err(forbidden("not a member of this room"));
            }
            return Ok(Done {
                data: serde_json::to_value(&target).unwrap_or_default(),
                changes: Vec::new(),
            });
        }
        if let Some(role) = new_role {
            check(rules::may_set_role(acting, target.role, role))?;
        }
        if let Some(muted) = new_mute {
            check(rules::may_mute(acting, itself, target.role, muted))?;
        }
        let updated = self
            .store
            .update_member(room, user, new_role, new_mute)
            .await
            .map_err(store_down)?
            .ok_or_else(|| no_member(room, user))?;
        Ok(Done {
            data: serde_json::to_value(&updated).unwrap_or_default(),
            changes: vec![RoomChange::MemberUpdated {
                room: room.into(),
                member: updated,
            }],
        })
    }

    /// `PUT /admin/rooms/{room}/members/{userId}`: adds the member (and
    /// answers `true`) or changes their role and mute flag.
    pub async fn put_member(
        &self,
        room: &str,
        user: &str,
        role: Option<Role>,
        muted: Option<bool>,
    ) -> Result<(Done, bool), CommandError> {
        let caller = Caller::AdminApi;
        match self
            .add_member(caller, room, user, role.unwrap_or(Role::Member))
            .await
        {
            Ok(mut added) if muted == Some(true) => {
                let muted = self
                    .update_member(caller, room, user, None, Some(true))
                    .await?;
                added.changes.extend(muted.changes);
                added.data = muted.data;
                Ok((added, true))
            }
            Ok(added) => Ok((added, true)),
            Err(e) if e.code == ErrorCode::Conflict => {
                if role.is_none() && muted.is_none() {
                    let member = self.member(room, user).await?;
                    let data = serde_json::to_value(member).unwrap_or_default();
                    return Ok((
                        Done {
                            data,
                            changes: Vec::new(),
                        },
                        false,
                    ));
                }
                let updated = self.update_member(caller, room, user, role, muted).await?;
                Ok((updated, false))
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /admin/rooms/{room}`.
    pub async fn get(&self, room: &str) -> Result<RoomObject, CommandError> {
        self.store
            .get(room, None)
            .await
            .map_err(store_down)?
            .map(|(room, _)| room)
            .ok_or_else(|| no_room(room))
    }

    /// A page of members, sorted by user id: for members, operators, and
    /// anyone in a public room.
    pub async fn list_members(
        &self,
        caller: Caller<'_>,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Done, CommandError> {
        let (found, member) = self.room_as(caller, room).await?;
        if found.visibility == Visibility::Private && member.is_none() && !caller.operator() {
            return Err(forbidden(
                "the members of a private room are listed to its members only",
            ));
        }
        let mut members = self
            .store
            .members(room, after, limit + 1)
            .await
            .map_err(store_down)?;
        let next = if members.len() > limit {
            members.truncate(limit);
            members.last().map(|m| m.user_id.clone())
        } else {
            None
        };
        Ok(Done {
            data: json!({ "room": room, "members": members, "next": next }),
            changes: Vec::new(),
        })
    }

    /// The dm room of the caller and `other`: made on first use (private,
    /// both `member`), the same room after; a user who left it is back in.
    async fn open_dm(&self, identity: &Identity, other: &str) -> Result<Done, CommandError> {
        let me = &*identity.user_id;
        if me == other {
            return Err(CommandError::bad_request("dm:open needs another user's id"));
        }
        let name = dm_name(me, other);
        let caller = Caller::Client(identity);
        if let Some(done) = self.existing_dm(caller, &name).await? {
            return Ok(done);
        }
        let new = NewRoom {
            room: name.clone(),
            kind: RoomType::Dm,
            visibility: Visibility::Private,
            title: None,
            max_users: Some(2),
            rate_limit: None,
            metadata: json!({}),
            members: Vec::new(),
        };
        let members = vec![
            (me.to_string(), Role::Member),
            (other.to_string(), Role::Member),
        ];
        match self.create_stored(me, &new, members).await {
            Err(e) if e.code == ErrorCode::Conflict => self
                .existing_dm(caller, &name)
                .await?
                .ok_or_else(|| no_room(&name)),
            other => other,
        }
    }

    async fn existing_dm(
        &self,
        caller: Caller<'_>,
        name: &str,
    ) -> Result<Option<Done>, CommandError> {
        let Some((room, member)) = self
            .store
            .get(name, Some(caller.user()))
            .await
            .map_err(store_down)?
        else {
            return Ok(None);
        };
        let mut changes = Vec::new();
        if member.is_none() {
            if let Added::Added(member) = self
                .store
                .add_member(name, caller.user(), Role::Member)
                .await
                .map_err(store_down)?
            {
                changes.push(RoomChange::MemberAdded {
                    room: name.into(),
                    member,
                });
            }
        }
        Ok(Some(Done {
            data: serde_json::to_value(&room).unwrap_or_default(),
            changes,
        }))
    }

    /// Whether `user` may enter (`join`) or read `room`: members of managed
    /// rooms, operators, and in public rooms anyone (who becomes a member
    /// by joining, within `maxUsers`).
    pub async fn enter(
        &self,
        room: &str,
        user: &str,
        operator: bool,
        anonymous: bool,
        join: bool,
    ) -> Result<Entry, CommandError> {
        let Some((found, member)) = self.store.get(room, Some(user)).await.map_err(store_down)?
        else {
            return Ok(Entry::AdHoc);
        };
        if member.is_some() || operator {
            return Ok(Entry::Managed {
                room: Box::new(found),
                member,
                added: None,
            });
        }
        if found.visibility == Visibility::Private {
            return Err(forbidden(&format!(
                "room `{room}` is private: for its members only"
            )));
        }
        if !join {
            return Ok(Entry::Managed {
                room: Box::new(found),
                member: None,
                added: None,
            });
        }
        if anonymous {
            return Err(forbidden(ANONYMOUS));
        }
        match self
            .store
            .add_member(room, user, Role::Member)
            .await
            .map_err(store_down)?
        {
            Added::Added(member) => Ok(Entry::Managed {
                room: Box::new(found),
                added: Some(Box::new(RoomChange::MemberAdded {
                    room: room.into(),
                    member: member.clone(),
                })),
                member: Some(member),
            }),
            Added::Already(member) => Ok(Entry::Managed {
                room: Box::new(found),
                member: Some(member),
                added: None,
            }),
            Added::Full => Err(full(&found)),
            Added::NoRoom => Ok(Entry::AdHoc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dm_room_is_the_same_for_both_users_and_a_valid_name() {
        let ab = dm_name("alice", "bob");
        assert_eq!(ab, dm_name("bob", "alice"));
        assert_ne!(ab, dm_name("alice", "carol"));
        // no ambiguity from separators inside user ids
        assert_ne!(dm_name("a:b", "c"), dm_name("a", "b:c"));
        assert!(crate::protocol::validate_room(&ab).is_ok());
        assert!(ab.starts_with(DM_PREFIX));
    }

    #[test]
    fn listed_rooms_count_unread_messages() {
        let room = RoomObject {
            room: "r".into(),
            kind: RoomType::Group,
            visibility: Visibility::Private,
            title: None,
            max_users: None,
            rate_limit: None,
            metadata: json!({}),
            created_by: "a".into(),
            created_at: "t".into(),
            member_count: 1,
        };
        let member = MemberObject {
            user_id: "a".into(),
            role: Role::Owner,
            muted: false,
            joined_at: "t".into(),
            last_read_seq: 0,
        };
        let v = listed(room, &member, 7);
        assert_eq!(
            (v["lastSeq"].clone(), v["unread"].clone()),
            (json!(7), json!(7))
        );
        assert_eq!(v["type"], "group");
    }

    #[test]
    fn changes_travel_as_tagged_json() {
        let change = RoomChange::MemberRemoved {
            room: "r".into(),
            user: "u".into(),
            by: "o".into(),
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(
            text,
            r#"{"change":"member_removed","room":"r","user":"u","by":"o"}"#
        );
        assert_eq!(serde_json::from_str::<RoomChange>(&text).unwrap(), change);
    }
}
