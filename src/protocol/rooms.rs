//! The wire types of managed rooms (`docs/protocol.md` §13): the room and
//! member objects, the room commands, and how a frame is checked into one.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{limit, name, required, room, CommandError, DecodeLimits, ErrorCode, Frame};

/// The most members one `member:list` returns.
pub const MEMBER_LIST_MAX_LIMIT: usize = 200;
/// Default `limit` of `member:list`.
pub const MEMBER_LIST_DEFAULT_LIMIT: usize = 100;
/// Longest room title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most user ids `room:create` (or `POST /admin/rooms`) may list in `members`.
pub const MAX_INITIAL_MEMBERS: usize = 1000;
/// Longest user id a room command accepts, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    Channel,
    Group,
    Dm,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

/// A member's role; each includes the rights of those before it in this
/// list (the derived order: `Member < Moderator < Admin < Owner`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Moderator,
    Admin,
    Owner,
}

/// Names as stored in the database and written on the wire.
macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}
names!(RoomType { Channel = "channel", Group = "group", Dm = "dm", Broadcast = "broadcast" });
names!(Visibility { Public = "public", Private = "private" });
names!(Role { Member = "member", Moderator = "moderator", Admin = "admin", Owner = "owner" });

/// A managed room as clients and the admin API see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomObject {
    #[schema(value_type = String)]
    pub room: Arc<str>,
    #[serde(rename = "type")]
    pub kind: RoomType,
    pub visibility: Visibility,
    pub title: Option<String>,
    pub max_users: Option<u32>,
    pub rate_limit: Option<u32>,
    pub metadata: Value,
    pub created_by: String,
    pub created_at: String,
    pub member_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberObject {
    #[schema(value_type = String)]
    pub user_id: Arc<str>,
    pub role: Role,
    pub muted: bool,
    pub joined_at: String,
    pub last_read_seq: u64,
}

/// The settings `room:update` (and `PATCH /admin/rooms/{room}`) may change;
/// `None` leaves one as it is, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoomPatch {
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "present")]
    pub max_users: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<u32>>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

impl RoomPatch {
    pub fn is_empty(&self) -> bool {
        *self == RoomPatch::default()
    }
}

/// A room as `room:create` and `POST /admin/rooms` ask for it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRoom {
    pub room: String,
    pub kind: RoomType,
    pub visibility: Visibility,
    pub title: Option<String>,
    pub max_users: Option<u32>,
    pub rate_limit: Option<u32>,
    pub metadata: Value,
    /// Other initial members, besides the creator (who is `owner`).
    pub members: Vec<(String, Role)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoomCommand {
    Create(NewRoom),
    Update {
        room: String,
        patch: RoomPatch,
    },
    Delete {
        room: String,
    },
    List,
    MemberAdd {
        room: String,
        user_id: String,
        role: Role,
    },
    MemberRemove {
        room: String,
        user_id: String,
    },
    MemberUpdate {
        room: String,
        user_id: String,
        role: Option<Role>,
        muted: Option<bool>,
    },
    MemberList {
        room: String,
        after: Option<String>,
        limit: usize,
    },
    DmOpen {
        user_id: String,
    },
}

/// A field that is present (even `null`) becomes `Some(value)`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The room commands of a frame (`None`: `kind` is not one of them).
pub(super) fn command(
    kind: &str,
    f: &mut Frame,
    limits: &DecodeLimits,
) -> Option<Result<RoomCommand, CommandError>> {
    let cmd = match kind {
        "room:create" => create(f, limits),
        "room:update" => update(f, limits),
        "room:delete" => room(f.room.take()).map(|room| RoomCommand::Delete { room }),
        "room:list" => Ok(RoomCommand::List),
        "member:add" => (|| {
            Ok(RoomCommand::MemberAdd {
                room: room(f.room.take())?,
                user_id: user_id(f.user_id.take())?,
                role: f.role.take().unwrap_or(Role::Member),
            })
        })(),
        "member:remove" => (|| {
            Ok(RoomCommand::MemberRemove {
                room: room(f.room.take())?,
                user_id: user_id(f.user_id.take())?,
            })
        })(),
        "member:update" => (|| {
            let (role, muted) = (f.role.take(), f.muted.take());
            if role.is_none() && muted.is_none() {
                return Err(CommandError::bad_request(
                    "member:update needs `role` or `muted`",
                ));
            }
            Ok(RoomCommand::MemberUpdate {
                room: room(f.room.take())?,
                user_id: user_id(f.user_id.take())?,
                role,
                muted,
            })
        })(),
        "member:list" => (|| {
            Ok(RoomCommand::MemberList {
                room: room(f.room.take())?,
                after: name(f.after.take(), "after")?,
                limit: limit(f.limit, MEMBER_LIST_DEFAULT_LIMIT, MEMBER_LIST_MAX_LIMIT)?,
            })
        })(),
        "dm:open" => user_id(f.user_id.take()).map(|user_id| RoomCommand::DmOpen { user_id }),
        _ => return None,
    };
    Some(cmd)
}

fn create(f: &mut Frame, limits: &DecodeLimits) -> Result<RoomCommand, CommandError> {
    let room = room(f.room.take())?;
    let kind = f.room_type.take().ok_or_else(|| {
        CommandError::bad_request(
            "missing field `roomType` (channel, group, dm or broadcast; `type` names the command)",
        )
    })?;
    let visibility = required(f.visibility.take(), "visibility")?;
    let title = f.title.take().flatten();
    check_title(title.as_deref())?;
    let max_users = f.max_users.take().flatten();
    let rate_limit = f.rate_limit.take().flatten();
    check_counts(max_users, rate_limit)?;
    let metadata = metadata(f, limits)?.unwrap_or_else(|| Value::Object(Default::default()));
    let members = f.members.take().unwrap_or_default();
    check_members(members.iter().map(String::as_str))?;
    Ok(RoomCommand::Create(NewRoom {
        room,
        kind,
        visibility,
        title,
        max_users,
        rate_limit,
        metadata,
        members: members.into_iter().map(|u| (u, Role::Member)).collect(),
    }))
}

fn update(f: &mut Frame, limits: &DecodeLimits) -> Result<RoomCommand, CommandError> {
    let room = room(f.room.take())?;
    let patch = RoomPatch {
        title: f.title.take(),
        visibility: f.visibility.take(),
        max_users: f.max_users.take(),
        rate_limit: f.rate_limit.take(),
        metadata: metadata(f, limits)?,
    };
    check_patch(&patch)?;
    if patch.is_empty() {
        return Err(CommandError::bad_request(
            "room:update needs one of `title`, `visibility`, `maxUsers`, `rateLimit`, `metadata`",
        ));
    }
    Ok(RoomCommand::Update { room, patch })
}

fn metadata(f: &mut Frame, limits: &DecodeLimits) -> Result<Option<Value>, CommandError> {
    let Some(raw) = f.metadata.take() else {
        return Ok(None);
    };
    if raw.get().len() > limits.max_metadata_bytes {
        return Err(CommandError::new(
            ErrorCode::TooLarge,
            format!(
                "metadata is {} bytes, the limit is {}",
                raw.get().len(),
                limits.max_metadata_bytes
            ),
        ));
    }
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| CommandError::bad_request(format!("`metadata`: {e}")))?;
    check_metadata(&value)?;
    Ok(Some(value))
}

fn user_id(value: Option<String>) -> Result<String, CommandError> {
    let user = required(value, "userId")?;
    check_user_id(&user)?;
    Ok(user)
}

/// A user id as a token's `sub` may carry it, bounded.
pub fn check_user_id(user: &str) -> Result<(), CommandError> {
    if crate::auth::valid_user_id(user) && user.len() <= MAX_USER_ID_LEN && !user.contains('\0') {
        Ok(())
    } else {
        Err(CommandError::bad_request(format!(
            "`userId` must be 1 to {MAX_USER_ID_LEN} bytes without control or invisible characters"
        )))
    }
}

pub fn check_members<'a>(
    mut users: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), CommandError> {
    if users.len() > MAX_INITIAL_MEMBERS {
        return Err(CommandError::bad_request(format!(
            "`members` lists at most {MAX_INITIAL_MEMBERS} users"
        )));
    }
    users.try_for_each(check_user_id)
}

pub fn check_title(title: Option<&str>) -> Result<(), CommandError> {
    match title {
        Some(t) if t.chars().count() > MAX_TITLE_CHARS || t.contains('\0') => {
            Err(CommandError::bad_request(format!(
                "`title` must be at most {MAX_TITLE_CHARS} characters, without NUL"
            )))
        }
        _ => Ok(()),
    }
}

pub fn check_counts(max_users: Option<u32>, rate_limit: Option<u32>) -> Result<(), CommandError> {
    if max_users == Some(0) {
        return Err(CommandError::bad_request("`maxUsers` must be at least 1"));
    }
    if rate_limit == Some(0) {
        return Err(CommandError::bad_request("`rateLimit` must be at least 1"));
    }
    Ok(())
}

pub fn check_metadata(value: &Value) -> Result<(), CommandError> {
    if !value.is_object() {
        return Err(CommandError::bad_request("`metadata` must be an object"));
    }
    if value.to_string().contains('\0') {
        return Err(CommandError::bad_request(
            "`metadata` must not contain NUL characters",
        ));
    }
    Ok(())
}

pub fn check_patch(patch: &RoomPatch) -> Result<(), CommandError> {
    check_title(patch.title.clone().flatten().as_deref())?;
    check_counts(patch.max_users.flatten(), patch.rate_limit.flatten())?;
    if let Some(m) = &patch.metadata {
        check_metadata(m)?;
    }
    Ok(())
}
