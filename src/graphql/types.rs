//! The schema's object types. Each is read from the JSON the `/ws`
//! protocol already produces (a stored record, a wire event), so GraphQL
//! and `/ws` clients see the same data under the same camelCase names.

use async_graphql::{Json, SimpleObject};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Reads `value` (a record or event as `/ws` sends it) as a schema type.
pub fn from_wire<T: DeserializeOwned>(value: Value) -> Option<T> {
    fitted(serde_json::from_value(value))
}

/// As [`from_wire`], from a frame's text: read straight into the type.
pub fn from_text<T: DeserializeOwned>(text: &str) -> Option<T> {
    fitted(serde_json::from_str(text))
}

/// The value, or `None` with a warning: an event the schema type cannot
/// hold is skipped, not an error for the subscriber.
fn fitted<T>(read: serde_json::Result<T>) -> Option<T> {
    read.map_err(|e| log::warn!("graphql: an event did not fit its type: {e}"))
        .ok()
}

/// As [`from_wire`], from anything the protocol serialises.
pub fn convert<S: Serialize, T: DeserializeOwned>(s: &S) -> Option<T> {
    from_wire(serde_json::to_value(s).ok()?)
}

/// A message, as stored and as `message:new` carries it.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub message_id: String,
    pub seq: u64,
    pub room: String,
    pub user_id: String,
    pub content: String,
    pub thread_id: Option<String>,
    pub reply_to: Option<String>,
    /// `text`, `image`, `file`, `audio`, `video` or `location`.
    pub kind: String,
    pub metadata: Option<Json<Value>>,
    pub timestamp: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
}

/// `message:updated` or `message:deleted`.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct MessageChange {
    pub room: String,
    pub message_id: String,
    pub seq: u64,
    /// True for a deletion (then `deletedBy` is set, content is empty).
    #[serde(default)]
    pub deleted: bool,
    pub user_id: Option<String>,
    pub content: Option<String>,
    pub metadata: Option<Json<Value>>,
    pub edited_at: Option<String>,
    pub deleted_by: Option<String>,
}

impl MessageChange {
    pub fn from_event(text: &str) -> Option<Self> {
        let event: Value = from_text(text)?;
        let deleted = event.get("type").and_then(Value::as_str) == Some("message:deleted");
        let mut change: MessageChange = from_wire(event)?;
        change.deleted = deleted;
        Some(change)
    }
}

/// A member of a room, as `presence:get` lists it.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: String,
    pub name: Option<String>,
    /// `online`, `away`, `busy` or `offline`.
    pub status: String,
    pub custom_status: Option<Json<Value>>,
    pub connections: u64,
}

/// One page of a room's members.
#[derive(SimpleObject, Clone, Debug)]
pub struct PresencePage {
    pub members: Vec<Member>,
    pub member_count: u64,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// A presence event of a room: `joined`, `left` (the room's), or
/// `status` (the user's status changed; `room` is null).
#[derive(SimpleObject, Clone, Debug)]
pub struct PresenceEvent {
    pub kind: String,
    pub room: Option<String>,
    pub user_id: String,
    pub status: Option<String>,
    pub custom_status: Option<Json<Value>>,
}

impl PresenceEvent {
    pub fn from_event(text: &str) -> Option<Self> {
        let event: Value = from_text(text)?;
        let kind = match event.get("type").and_then(Value::as_str)? {
            "user:joined" => "joined",
            "user:left" => "left",
            "presence:changed" => "status",
            _ => return None,
        };
        let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
        Some(PresenceEvent {
            kind: kind.to_string(),
            room: text("room"),
            user_id: text("userId")?,
            status: text("status"),
            custom_status: event
                .get("customStatus")
                .filter(|v| !v.is_null())
                .cloned()
                .map(Json),
        })
    }
}

/// `typing:event`: who is typing in the room (or one of its threads).
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    pub room: String,
    pub thread_id: Option<String>,
    pub users: Vec<String>,
}

/// A notification, as stored and as the `notification` event carries it.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub notification_id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub data: Json<Value>,
    pub created_at: String,
    pub priority: Option<String>,
    pub action_url: Option<String>,
    pub action_text: Option<String>,
    pub expires_at: Option<String>,
    /// When it was read: null while unread (and on `notificationReceived`).
    pub read_at: Option<String>,
}

/// A page of `Query.notifications`, newest first.
#[derive(SimpleObject, Clone, Debug)]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    /// The `before` of the next page; null on the last.
    pub next: Option<String>,
}

/// A change to a managed room: `room:updated` (`data` is the room
/// object), `room:deleted`, `member:added`, `member:updated`,
/// `member:removed` (`data` is the event's other fields).
#[derive(SimpleObject, Clone, Debug)]
pub struct RoomEvent {
    pub kind: String,
    pub room: String,
    pub data: Json<Value>,
}

impl RoomEvent {
    pub fn from_event(text: &str) -> Option<Self> {
        let mut event: Value = from_text(text)?;
        let map = event.as_object_mut()?;
        let kind = map.remove("type")?.as_str()?.to_string();
        let room = map.remove("room")?.as_str()?.to_string();
        let data = match map.remove("data") {
            Some(data) if kind == "room:updated" => data,
            _ => Value::Object(std::mem::take(map)),
        };
        Some(RoomEvent {
            kind,
            room,
            data: Json(data),
        })
    }
}

/// `sendMessage`'s answer.
#[derive(SimpleObject, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub message_id: String,
    pub seq: u64,
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_events_become_schema_types() {
        let deleted = json!({"type": "message:deleted", "room": "r", "messageId": "m",
            "seq": 3, "deletedBy": "u"});
        let change = MessageChange::from_event(&deleted.to_string()).unwrap();
        assert!(change.deleted);
        assert_eq!(change.deleted_by.as_deref(), Some("u"));
        let joined = json!({"type": "user:joined", "room": "r", "userId": "u"});
        let p = PresenceEvent::from_event(&joined.to_string()).unwrap();
        assert_eq!((p.kind.as_str(), p.room.as_deref()), ("joined", Some("r")));
        let updated = json!({"type": "room:updated", "room": "r", "data": {"name": "r"}});
        let r = RoomEvent::from_event(&updated.to_string()).unwrap();
        assert_eq!(r.data.0, json!({"name": "r"}));
        let removed = json!({"type": "member:removed", "room": "r", "userId": "u", "by": "a"});
        let r = RoomEvent::from_event(&removed.to_string()).unwrap();
        assert_eq!(r.data.0, json!({"userId": "u", "by": "a"}));
    }
}
