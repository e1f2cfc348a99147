//! Managed rooms and their memberships (`managed_rooms`,
//! `room_memberships`; see `docs/storage.md`). A membership outlives
//! connections. `managed_rooms.member_count` changes in the same
//! transaction as the memberships, with a conditional update that also
//! locks the room's row (PostgreSQL) or the database (SQLite, `BEGIN
//! IMMEDIATE`), so `max_users` is one limit across all nodes.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{managed_rooms, room_memberships, rooms};
use super::{db_int, ms_to_rfc3339, now_ms, Db, StoreError};
use crate::protocol::{MemberObject, NewRoom, Role, RoomObject, RoomPatch, RoomType, Visibility};
use crate::{with_conn, with_tx};

#[derive(Queryable, Selectable)]
#[diesel(table_name = managed_rooms)]
struct RoomRow {
    name: String,
    kind: String,
    visibility: String,
    title: Option<String>,
    max_users: Option<i32>,
    rate_limit: Option<i32>,
    metadata: String,
    created_by: String,
    created_at: i64,
    member_count: i32,
}

impl RoomRow {
    fn into_object(self) -> RoomObject {
        RoomObject {
            room: self.name.into(),
            kind: RoomType::parse(&self.kind).unwrap_or(RoomType::Channel),
            visibility: Visibility::parse(&self.visibility).unwrap_or(Visibility::Private),
            title: self.title,
            max_users: self.max_users.map(|n| n.max(0) as u32),
            rate_limit: self.rate_limit.map(|n| n.max(0) as u32),
            metadata: serde_json::from_str(&self.metadata).unwrap_or_default(),
            created_by: self.created_by,
            created_at: ms_to_rfc3339(self.created_at),
            member_count: self.member_count.max(0) as u64,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = room_memberships)]
struct MemberRow {
    user_id: String,
    role: String,
    muted: bool,
    joined_at: i64,
    last_read_seq: i64,
}

impl MemberRow {
    fn into_object(self) -> MemberObject {
        MemberObject {
            user_id: self.user_id.into(),
            role: Role::parse(&self.role).unwrap_or(Role::Member),
            muted: self.muted,
            joined_at: ms_to_rfc3339(self.joined_at),
            last_read_seq: self.last_read_seq.max(0) as u64,
        }
    }
}

/// What adding a member found.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    Added(MemberObject),
    /// A member already (unchanged).
    Already(MemberObject),
    /// `max_users` members already.
    Full,
    NoRoom,
}

/// A room a user is a member of, for `room:list`.
#[derive(Debug, Clone)]
pub struct Membership {
    pub room: RoomObject,
    pub member: MemberObject,
    pub last_seq: u64,
}

fn to_i32(n: Option<u32>) -> Option<i32> {
    n.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

#[derive(Clone)]
pub struct RoomStore {
    db: Db,
}

impl RoomStore {
    pub fn new(db: Db) -> Self {
        RoomStore { db }
    }

    /// Stores a new room with its members (the first one is the creator);
    /// `Conflict` when the name is taken.
    pub async fn create(
        &self,
        new: &NewRoom,
        created_by: &str,
        members: Vec<(String, Role)>,
    ) -> Result<(RoomObject, Vec<MemberObject>), StoreError> {
        let (new, created_by) = (new.clone(), created_by.to_string());
        self.db
            .timed(|db| async move {
                let at = now_ms();
                with_tx!(db, |conn| {
                    diesel::insert_into(managed_rooms::table)
                        .values((
                            managed_rooms::name.eq(&new.room),
                            managed_rooms::kind.eq(new.kind.as_str()),
                            managed_rooms::visibility.eq(new.visibility.as_str()),
                            managed_rooms::title.eq(&new.title),
                            managed_rooms::max_users.eq(to_i32(new.max_users)),
                            managed_rooms::rate_limit.eq(to_i32(new.rate_limit)),
                            managed_rooms::metadata.eq(new.metadata.to_string()),
                            managed_rooms::created_by.eq(&created_by),
                            managed_rooms::created_at.eq(at),
                            managed_rooms::member_count.eq(members.len() as i32),
                        ))
                        .execute(conn)
                        .await?;
                    for (user, role) in &members {
                        diesel::insert_into(room_memberships::table)
                            .values((
                                room_memberships::room.eq(&new.room),
                                room_memberships::user_id.eq(user),
                                room_memberships::role.eq(role.as_str()),
                                room_memberships::muted.eq(false),
                                room_memberships::joined_at.eq(at),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    let room: RoomRow = managed_rooms::table
                        .find(&new.room)
                        .select(RoomRow::as_select())
                        .first(conn)
                        .await?;
                    let members: Vec<MemberRow> = room_memberships::table
                        .filter(room_memberships::room.eq(&new.room))
                        .order(room_memberships::user_id.asc())
                        .select(MemberRow::as_select())
                        .load(conn)
                        .await?;
                    Ok((
                        room.into_object(),
                        members.into_iter().map(MemberRow::into_object).collect(),
                    ))
                })
            })
            .await
    }

    /// The room and, when given, that user's membership.
    pub async fn get(
        &self,
        room: &str,
        user: Option<&str>,
    ) -> Result<Option<(RoomObject, Option<MemberObject>)>, StoreError> {
        let (room, user) = (room.to_string(), user.map(str::to_string));
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let found: Option<RoomRow> = managed_rooms::table
                        .find(&room)
                        .select(RoomRow::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    let Some(found) = found else {
                        return Ok(None);
                    };
                    let member = match user {
                        None => None,
                        Some(user) => room_memberships::table
                            .find((&room, &user))
                            .select(MemberRow::as_select())
                            .first(conn)
                            .await
                            .optional()?
                            .map(MemberRow::into_object),
                    };
                    Ok(Some((found.into_object(), member)))
                })
            })
            .await
    }

    /// Changes a room's settings; None when there is no such room.
    pub async fn update(
        &self,
        room: &str,
        patch: &RoomPatch,
    ) -> Result<Option<RoomObject>, StoreError> {
        let (room, patch) = (room.to_string(), patch.clone());
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let target = managed_rooms::table.find(&room);
                    if let Some(title) = &patch.title {
                        diesel::update(target)
                            .set(managed_rooms::title.eq(title))
                            .execute(conn)
                            .await?;
                    }
                    if let Some(v) = patch.visibility {
                        diesel::update(target)
                            .set(managed_rooms::visibility.eq(v.as_str()))
                            .execute(conn)
                            .await?;
                    }
                    if let Some(n) = patch.max_users {
                        diesel::update(target)
                            .set(managed_rooms::max_users.eq(to_i32(n)))
                            .execute(conn)
                            .await?;
                    }
                    if let Some(n) = patch.rate_limit {
                        diesel::update(target)
                            .set(managed_rooms::rate_limit.eq(to_i32(n)))
                            .execute(conn)
                            .await?;
                    }
                    if let Some(m) = &patch.metadata {
                        diesel::update(target)
                            .set(managed_rooms::metadata.eq(m.to_string()))
                            .execute(conn)
                            .await?;
                    }
                    let found: Option<RoomRow> = target
                        .select(RoomRow::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    Ok(found.map(RoomRow::into_object))
                })
            })
            .await
    }

    /// Deletes a room and its memberships; answers the members it had
    /// (None: no such room). Its messages stay (`rooms`, `messages`).
    pub async fn delete(&self, room: &str) -> Result<Option<Vec<Arc<str>>>, StoreError> {
        let room = room.to_string();
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let users: Vec<String> = room_memberships::table
                        .filter(room_memberships::room.eq(&room))
                        .select(room_memberships::user_id)
                        .load(conn)
                        .await?;
                    diesel::delete(
                        room_memberships::table.filter(room_memberships::room.eq(&room)),
                    )
                    .execute(conn)
                    .await?;
                    let n = diesel::delete(managed_rooms::table.find(&room))
                        .execute(conn)
                        .await?;
                    Ok((n > 0).then(|| users.into_iter().map(Arc::from).collect()))
                })
            })
            .await
    }

    /// Adds a member, within the room's `max_users`.
    pub async fn add_member(
        &self,
        room: &str,
        user: &str,
        role: Role,
    ) -> Result<Added, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let existing: Option<MemberRow> = room_memberships::table
                        .find((&room, &user))
                        .select(MemberRow::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    if let Some(m) = existing {
                        return Ok(Added::Already(m.into_object()));
                    }
                    // Counts and locks the room in one statement.
                    let counted = diesel::update(managed_rooms::table.find(&room).filter(
                        managed_rooms::max_users.is_null().or(
                            managed_rooms::max_users.gt(managed_rooms::member_count.nullable()),
                        ),
                    ))
                    .set(managed_rooms::member_count.eq(managed_rooms::member_count + 1))
                    .execute(conn)
                    .await?;
                    if counted == 0 {
                        let exists: Option<String> = managed_rooms::table
                            .find(&room)
                            .select(managed_rooms::name)
                            .first(conn)
                            .await
                            .optional()?;
                        return Ok(if exists.is_some() {
                            Added::Full
                        } else {
                            Added::NoRoom
                        });
                    }
                    let at = now_ms();
                    diesel::insert_into(room_memberships::table)
                        .values((
                            room_memberships::room.eq(&room),
                            room_memberships::user_id.eq(&user),
                            room_memberships::role.eq(role.as_str()),
                            room_memberships::muted.eq(false),
                            room_memberships::joined_at.eq(at),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(Added::Added(MemberObject {
                        user_id: user.into(),
                        role,
                        muted: false,
                        joined_at: ms_to_rfc3339(at),
                        last_read_seq: 0,
                    }))
                })
            })
            .await
    }

    /// Removes a member; answers the membership it was (None: not one).
    pub async fn remove_member(
        &self,
        room: &str,
        user: &str,
    ) -> Result<Option<MemberObject>, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let existing: Option<MemberRow> = room_memberships::table
                        .find((&room, &user))
                        .select(MemberRow::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    let Some(existing) = existing else {
                        return Ok(None);
                    };
                    diesel::delete(room_memberships::table.find((&room, &user)))
                        .execute(conn)
                        .await?;
                    diesel::update(managed_rooms::table.find(&room))
                        .set(managed_rooms::member_count.eq(managed_rooms::member_count - 1))
                        .execute(conn)
                        .await?;
                    Ok(Some(existing.into_object()))
                })
            })
            .await
    }

    /// Changes a member's role and/or mute flag; None: not a member.
    pub async fn update_member(
        &self,
        room: &str,
        user: &str,
        role: Option<Role>,
        muted: Option<bool>,
    ) -> Result<Option<MemberObject>, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let target = room_memberships::table.find((&room, &user));
                    if let Some(role) = role {
                        diesel::update(target)
                            .set(room_memberships::role.eq(role.as_str()))
                            .execute(conn)
                            .await?;
                    }
                    if let Some(muted) = muted {
                        diesel::update(target)
                            .set(room_memberships::muted.eq(muted))
                            .execute(conn)
                            .await?;
                    }
                    let found: Option<MemberRow> = target
                        .select(MemberRow::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    Ok(found.map(MemberRow::into_object))
                })
            })
            .await
    }

    /// Up to `limit` members after the user id `after`, sorted by user id.
    pub async fn members(
        &self,
        room: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MemberObject>, StoreError> {
        let (room, after) = (room.to_string(), after.map(str::to_string));
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let mut q = room_memberships::table
                        .filter(room_memberships::room.eq(&room))
                        .order(room_memberships::user_id.asc())
                        .limit(db_int(limit as u64))
                        .select(MemberRow::as_select())
                        .into_boxed();
                    if let Some(after) = after {
                        q = q.filter(room_memberships::user_id.gt(after));
                    }
                    let rows: Vec<MemberRow> = q.load(conn).await?;
                    Ok(rows.into_iter().map(MemberRow::into_object).collect())
                })
            })
            .await
    }

    /// Every managed room `user` is a member of, by name, with its last seq.
    pub async fn rooms_of(&self, user: &str) -> Result<Vec<Membership>, StoreError> {
        let user = user.to_string();
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let rows: Vec<(MemberRow, RoomRow)> = room_memberships::table
                        .inner_join(managed_rooms::table)
                        .filter(room_memberships::user_id.eq(&user))
                        .order(managed_rooms::name.asc())
                        .select((MemberRow::as_select(), RoomRow::as_select()))
                        .load(conn)
                        .await?;
                    let names: Vec<&str> = rows.iter().map(|(_, r)| r.name.as_str()).collect();
                    let seqs: Vec<(String, i64)> = rooms::table
                        .filter(rooms::name.eq_any(&names))
                        .select((rooms::name, rooms::last_seq))
                        .load(conn)
                        .await?;
                    let seqs: std::collections::HashMap<String, i64> = seqs.into_iter().collect();
                    Ok(rows
                        .into_iter()
                        .map(|(m, r)| Membership {
                            last_seq: seqs.get(&r.name).copied().unwrap_or(0).max(0) as u64,
                            room: r.into_object(),
                            member: m.into_object(),
                        })
                        .collect())
                })
            })
            .await
    }
}
