//! The wire types of `docs/protocol.md`, in one place.
//!
//! A text frame is parsed once into [`Frame`] (a flat struct of every field
//! any command may carry, so one pass over the JSON keeps the `id` even when
//! a field is missing), then checked into a typed [`Command`]. Server events
//! are serde structs serialised once into shared bytes ([`encode`]).

use std::sync::Arc;

use bytestring::ByteString;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub const PROTOCOL_VERSION: u32 = 1;
/// The most messages one `history:get` returns.
pub const HISTORY_MAX_LIMIT: usize = 100;
/// Default `limit` of `history:get`.
pub const HISTORY_DEFAULT_LIMIT: usize = 50;
/// The most members one `presence:get` returns.
pub const PRESENCE_MAX_LIMIT: usize = 1000;
/// Default `limit` of `presence:get`.
pub const PRESENCE_DEFAULT_LIMIT: usize = 100;
/// Longest room name, thread id, client message id or notification id.
pub const MAX_NAME_LEN: usize = 128;
/// Longest custom status text.
pub const MAX_STATUS_TEXT: usize = 128;

pub use crate::errors::{close, Closing, CommandError, ErrorCode};
pub use lifecycle::{LifecycleCommand, MessageKind};
pub use notifications::{
    Announcement, AnnouncementType, Cursor, ListedNotification, NotificationList,
    NotificationsToRead, MAX_NOTIFICATION_IDS,
};
pub use rooms::{
    MemberObject, NewRoom, Role, RoomCommand, RoomObject, RoomPatch, RoomType, Visibility,
};

pub mod lifecycle;
pub mod notifications;
pub mod rooms;

/// The `id` a client puts on a command: a number or a string, echoed exactly
/// as sent. A number keeps its JSON text (`1e2` stays `1e2`, thirty digits stay
/// thirty digits): parsing it into a float would change what comes back.
#[derive(Debug, Clone)]
pub enum CommandId {
    Number(Box<RawValue>),
    Text(String),
}

impl CommandId {
    /// A numeric id (for building replies in code and tests).
    pub fn number(n: impl Into<serde_json::Number>) -> Self {
        let text = n.into().to_string();
        CommandId::Number(RawValue::from_string(text).expect("a JSON number is valid JSON"))
    }
}

impl PartialEq for CommandId {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CommandId::Number(a), CommandId::Number(b)) => a.get() == b.get(),
            (CommandId::Text(a), CommandId::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Serialize for CommandId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CommandId::Number(raw) => raw.serialize(s),
            CommandId::Text(text) => text.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Box::<RawValue>::deserialize(d)?;
        match raw.get().as_bytes().first() {
            Some(b'"') => serde_json::from_str(raw.get())
                .map(CommandId::Text)
                .map_err(D::Error::custom),
            Some(b'-' | b'0'..=b'9') => Ok(CommandId::Number(raw)),
            _ => Err(D::Error::custom("`id` must be a number or a string")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Away,
    Busy,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomStatus {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub emoji: Option<String>,
}

/// Every field any command carries; parsed in one pass.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame {
    id: Option<CommandId>,
    #[serde(rename = "type")]
    kind: Option<String>,
    room: Option<String>,
    since: Option<u64>,
    content: Option<String>,
    thread_id: Option<String>,
    metadata: Option<RawJson>,
    client_msg_id: Option<String>,
    // Message lifecycle (`lifecycle::command`): a message's kind is `kind`
    // (`type` names the command).
    reply_to: Option<String>,
    #[serde(rename = "kind")]
    message_kind: Option<String>,
    message_id: Option<String>,
    seq: Option<u64>,
    notification_ids: Option<Vec<String>>,
    all: Option<bool>,
    status: Option<Status>,
    custom_status: Option<CustomStatus>,
    /// A seq (`history:get`) or a notificationId (`notification:list`).
    before: Option<Cursor>,
    limit: Option<u64>,
    unread_only: Option<bool>,
    after: Option<String>,
    notification_id: Option<String>,
    token: Option<String>,
    // Managed rooms (`rooms::command`). A room's type is `roomType`:
    // `type` names the command.
    room_type: Option<RoomType>,
    visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "rooms::present")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "rooms::present")]
    max_users: Option<Option<u32>>,
    #[serde(default, deserialize_with = "rooms::present")]
    rate_limit: Option<Option<u32>>,
    members: Option<Vec<String>>,
    user_id: Option<String>,
    role: Option<Role>,
    muted: Option<bool>,
}

/// Fallback used only when a frame does not parse, to keep its `id`.
#[derive(Deserialize)]
struct IdOnly {
    id: Option<CommandId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Join {
        room: String,
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        content: String,
        thread_id: Option<String>,
        metadata: Option<RawJson>,
        client_msg_id: Option<String>,
        reply_to: Option<String>,
        kind: MessageKind,
    },
    Typing {
        room: String,
        thread_id: Option<String>,
        active: bool,
    },
    PresenceUpdate {
        status: Status,
        custom_status: Option<CustomStatus>,
    },
    PresenceGet {
        room: String,
        after: Option<String>,
        limit: usize,
    },
    HistoryGet {
        room: String,
        before: Option<u64>,
        limit: usize,
        /// Only the replies to this message.
        reply_to: Option<String>,
    },
    NotificationRead {
        read: NotificationsToRead,
    },
    NotificationList(NotificationList),
    AuthRefresh {
        token: String,
    },
    Ping,
    /// Managed rooms: `room:create` … `dm:open`.
    Rooms(RoomCommand),
    /// `message:edit`, `message:delete`.
    Lifecycle(LifecycleCommand),
}

/// A JSON object kept as the client sent it (message `metadata`), so it is
/// forwarded without being parsed into a tree and printed again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl RawJson {
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// A decoded command and the id to answer it with.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<CommandId>,
    pub command: Command,
}

/// Size limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_message_chars: usize,
    pub max_metadata_bytes: usize,
}

/// A frame that could not be decoded, with the id to answer it with.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<CommandId>,
    pub error: CommandError,
}

/// Parses one text frame into a command, checking every field.
/// Deepest nesting of arrays and objects a frame may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `text` nests arrays/objects deeper than `max` (strings skipped).
/// A cheap scan, so no parser ever sees a pathological document.
fn nested_deeper_than(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

pub fn decode(text: &str, limits: &DecodeLimits) -> Result<Request, Rejected> {
    if nested_deeper_than(text, MAX_JSON_DEPTH) {
        return Err(Rejected {
            id: None,
            error: CommandError::bad_request(format!(
                "JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )),
        });
    }
    // serde would also read a struct from a JSON array; a command is an object.
    if !text.trim_start().starts_with('{') {
        return Err(Rejected {
            id: None,
            error: CommandError::bad_request("a frame must be one JSON object"),
        });
    }
    let frame: Frame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(err) => {
            let id = serde_json::from_str::<IdOnly>(text).ok().and_then(|f| f.id);
            let message = if err.is_syntax() || err.is_eof() {
                format!("frame is not valid JSON: {err}")
            } else {
                format!("frame has a field of the wrong type: {err}")
            };
            return Err(Rejected {
                id,
                error: CommandError::bad_request(message),
            });
        }
    };
    let id = frame.id.clone();
    command(frame, limits)
        .map(|command| Request {
            id: id.clone(),
            command,
        })
        .map_err(|error| Rejected { id, error })
}

fn command(mut f: Frame, limits: &DecodeLimits) -> Result<Command, CommandError> {
    // Stored text cannot hold NUL characters (PostgreSQL refuses them).
    let fields = [
        ("content", f.content.as_deref()),
        ("threadId", f.thread_id.as_deref()),
        ("clientMsgId", f.client_msg_id.as_deref()),
        ("replyTo", f.reply_to.as_deref()),
        ("messageId", f.message_id.as_deref()),
        ("notificationId", f.notification_id.as_deref()),
        (
            "customStatus.text",
            f.custom_status.as_ref().and_then(|c| c.text.as_deref()),
        ),
        (
            "customStatus.emoji",
            f.custom_status.as_ref().and_then(|c| c.emoji.as_deref()),
        ),
    ];
    if let Some((name, _)) = fields
        .iter()
        .find(|(_, v)| v.is_some_and(|v| v.contains('\0')))
    {
        return Err(CommandError::bad_request(format!(
            "`{name}` must not contain NUL characters"
        )));
    }
    let kind = f
        .kind
        .take()
        .ok_or_else(|| CommandError::bad_request("missing field `type`"))?;
    let kind = kind.as_str();
    if let Some(cmd) = rooms::command(kind, &mut f, limits) {
        return cmd.map(Command::Rooms);
    }
    if let Some(cmd) = lifecycle::command(kind, &mut f, limits) {
        return cmd.map(Command::Lifecycle);
    }
    let cmd = match kind {
        "room:join" => Command::Join {
            room: room(f.room)?,
            since: f.since,
        },
        "room:leave" => Command::Leave {
            room: room(f.room)?,
        },
        "message:send" => {
            let content = required(f.content, "content")?;
            lifecycle::check_content(&content, f.metadata.as_ref(), limits)?;
            Command::Send {
                room: room(f.room)?,
                content,
                thread_id: name(f.thread_id, "threadId")?,
                metadata: f.metadata,
                client_msg_id: name(f.client_msg_id, "clientMsgId")?,
                reply_to: name(f.reply_to, "replyTo")?,
                kind: MessageKind::from_client(f.message_kind.as_deref())?,
            }
        }
        "typing:start" | "typing:stop" => Command::Typing {
            room: room(f.room)?,
            thread_id: name(f.thread_id, "threadId")?,
            active: kind == "typing:start",
        },
        "presence:update" => {
            if let Some(custom) = &f.custom_status {
                let long = |s: &Option<String>| {
                    s.as_ref()
                        .is_some_and(|s| s.chars().count() > MAX_STATUS_TEXT)
                };
                if long(&custom.text) || long(&custom.emoji) {
                    return Err(CommandError::new(
                        ErrorCode::TooLarge,
                        format!("customStatus text and emoji are limited to {MAX_STATUS_TEXT} characters"),
                    ));
                }
            }
            Command::PresenceUpdate {
                status: required(f.status, "status")?,
                custom_status: f.custom_status,
            }
        }
        "presence:get" => {
            let limit = limit(f.limit, PRESENCE_DEFAULT_LIMIT, PRESENCE_MAX_LIMIT)?;
            Command::PresenceGet {
                room: room(f.room)?,
                after: match f.after {
                    Some(a) if a.is_empty() => {
                        return Err(CommandError::bad_request("`after` must be a user id"))
                    }
                    after => after,
                },
                limit,
            }
        }
        "history:get" => {
            let limit = limit(f.limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)?;
            Command::HistoryGet {
                room: room(f.room)?,
                before: notifications::seq_cursor(f.before)?,
                limit,
                reply_to: name(f.reply_to, "replyTo")?,
            }
        }
        "notification:read" => Command::NotificationRead {
            read: notifications::to_read(f.notification_id, f.notification_ids, f.all)?,
        },
        "notification:list" => {
            Command::NotificationList(notifications::list(f.unread_only, f.before, f.limit)?)
        }
        "auth:refresh" => Command::AuthRefresh {
            token: required(f.token, "token")?,
        },
        "ping" => Command::Ping,
        other => {
            return Err(CommandError::new(
                ErrorCode::UnknownType,
                format!("unknown command type `{}`", truncate(other, 64)),
            ))
        }
    };
    Ok(cmd)
}

/// A page size: `default` when absent, 1 to `max` when given.
fn limit(value: Option<u64>, default: usize, max: usize) -> Result<usize, CommandError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
        Some(_) => Err(CommandError::bad_request(format!(
            "`limit` must be between 1 and {max}"
        ))),
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, CommandError> {
    value.ok_or_else(|| CommandError::bad_request(format!("missing field `{field}`")))
}

fn room(value: Option<String>) -> Result<String, CommandError> {
    let room = required(value, "room")?;
    validate_room(&room)?;
    Ok(room)
}

/// Thread ids, client message ids and notification ids: non-empty, bounded.
fn name(value: Option<String>, field: &str) -> Result<Option<String>, CommandError> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_NAME_LEN => Err(CommandError::bad_request(
            format!("`{field}` must be 1 to {MAX_NAME_LEN} bytes"),
        )),
        other => Ok(other),
    }
}

/// A room name: 1 to 128 characters from `A-Z a-z 0-9 _ - : . @`.
/// Wildcards are for patterns in tokens and config, never for names.
pub fn validate_room(room: &str) -> Result<(), CommandError> {
    let ok = !room.is_empty()
        && room.len() <= MAX_NAME_LEN
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::bad_request(format!(
            "invalid room name `{}`: use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 _ - : . @",
            truncate(room, 64)
        )))
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// RFC 3339 with milliseconds, the format of every timestamp on the wire.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------
// Server -> client

/// A stored or live chat message; `message:new` and history entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub room: Arc<str>,
    pub message_id: String,
    pub seq: u64,
    pub user_id: Arc<str>,
    pub content: String,
    pub thread_id: Option<String>,
    /// The message this one answers (same room), if any.
    pub reply_to: Option<String>,
    pub kind: MessageKind,
    pub metadata: Option<RawJson>,
    pub timestamp: String,
    /// When the content was last edited; null unless edited.
    pub edited_at: Option<String>,
    /// A tombstone: empty `content`, null `metadata`.
    pub deleted: bool,
    #[serde(skip)]
    pub client_msg_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[schema(value_type = String)]
    pub user_id: Arc<str>,
    #[schema(value_type = Option<String>)]
    pub name: Option<Arc<str>>,
    pub status: Status,
    pub custom_status: Option<CustomStatus>,
    pub connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    Info,
    Warning,
    Error,
    Success,
}

/// How urgent a notification is (a label for clients).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Priority::Low,
            Priority::Medium,
            Priority::High,
            Priority::Critical,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub notification_id: String,
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    pub data: Value,
    pub created_at: String,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub action_url: Option<String>,
    #[serde(default)]
    pub action_text: Option<String>,
    /// Past it, not delivered on connect (nor listed).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Every frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Event<'a> {
    #[serde(rename = "connected", rename_all = "camelCase")]
    Connected {
        connection_id: &'a str,
        user_id: &'a str,
        server_time: String,
        protocol_version: u32,
        heartbeat_interval_ms: u64,
    },
    #[serde(rename = "reply")]
    Reply {
        id: &'a CommandId,
        ok: bool,
        data: Value,
    },
    #[serde(rename = "pong", rename_all = "camelCase")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a CommandId>,
        server_time: String,
    },
    #[serde(rename = "error")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a CommandId>,
        #[serde(flatten)]
        error: &'a CommandError,
    },
    #[serde(rename = "message:new")]
    MessageNew(&'a MessageRecord),
    #[serde(rename = "message:updated", rename_all = "camelCase")]
    MessageUpdated {
        room: &'a str,
        message_id: &'a str,
        seq: u64,
        user_id: &'a str,
        content: &'a str,
        metadata: Option<&'a RawJson>,
        edited_at: Option<&'a str>,
    },
    #[serde(rename = "message:deleted", rename_all = "camelCase")]
    MessageDeleted {
        room: &'a str,
        message_id: &'a str,
        seq: u64,
        deleted_by: &'a str,
    },
    /// `room:read` of another connection of the same user.
    #[serde(rename = "room:read", rename_all = "camelCase")]
    RoomRead { room: &'a str, last_read_seq: u64 },
    /// Notifications read on another connection of the same user.
    #[serde(rename = "notification:read", rename_all = "camelCase")]
    NotificationsRead {
        #[serde(skip_serializing_if = "Option::is_none")]
        notification_ids: Option<&'a [String]>,
        #[serde(skip_serializing_if = "Option::is_none")]
        all: Option<bool>,
    },
    #[serde(rename = "user:joined", rename_all = "camelCase")]
    UserJoined { room: &'a str, user_id: &'a str },
    #[serde(rename = "user:left", rename_all = "camelCase")]
    UserLeft { room: &'a str, user_id: &'a str },
    #[serde(rename = "typing:event", rename_all = "camelCase")]
    Typing {
        room: &'a str,
        thread_id: Option<&'a str>,
        users: &'a [Arc<str>],
    },
    #[serde(rename = "presence:changed", rename_all = "camelCase")]
    PresenceChanged {
        user_id: &'a str,
        status: Status,
        custom_status: Option<&'a CustomStatus>,
    },
    #[serde(rename = "notification")]
    Notification(&'a Notification),
    /// The announcement object under `data`: its `type` field would clash
    /// with the event's (as `room:updated`'s room object).
    #[serde(rename = "announcement")]
    Announcement { data: &'a Announcement },
    /// The room object under `data` (as in `room:create`'s reply): its
    /// `type` field would clash with the event's.
    #[serde(rename = "room:updated")]
    RoomUpdated { room: &'a str, data: &'a RoomObject },
    #[serde(rename = "room:deleted")]
    RoomDeleted { room: &'a str },
    /// The member object's fields beside `room`.
    #[serde(rename = "member:added")]
    MemberAdded {
        room: &'a str,
        #[serde(flatten)]
        member: &'a MemberObject,
    },
    #[serde(rename = "member:updated")]
    MemberUpdated {
        room: &'a str,
        #[serde(flatten)]
        member: &'a MemberObject,
    },
    #[serde(rename = "member:removed", rename_all = "camelCase")]
    MemberRemoved {
        room: &'a str,
        user_id: &'a str,
        by: &'a str,
    },
    #[serde(rename = "broadcast")]
    Broadcast {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        event: &'a str,
        data: &'a Value,
        timestamp: String,
    },
}

/// Serialises an event once; the bytes are shared by every receiver.
pub fn encode(event: &Event<'_>) -> ByteString {
    // Serialising these types cannot fail: no maps with non-string keys.
    let json = serde_json::to_string(event).expect("events always serialise");
    ByteString::from(json)
}

#[cfg(test)]
mod tests;
