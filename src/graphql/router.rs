//! Routes the events the registry hands a `/graphql` socket to the
//! subscriptions that asked for them.
//!
//! The registry delivers a connection every event of the rooms it joined
//! (and of the user's personal room), as the `/ws` wire frames; each
//! subscription names a topic, and a frame goes to every subscription whose
//! topic it matches. Plain data, unit-tested below; the socket actor owns it.
//!
//! A frame is handed on as the text the registry shared between its
//! receivers (a reference count, no copy); each subscription reads it into
//! its own type once it has it, so no `serde_json::Value` is built on the
//! way (docs/benchmarks.md, GraphQL).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use bytestring::ByteString;
use serde::Deserialize;
use tokio::sync::mpsc;

/// What one subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `message:new` in the room.
    Messages(String),
    /// `message:updated` and `message:deleted` in the room.
    Changes(String),
    /// `user:joined` and `user:left` in the room, and `presence:changed`.
    Presence(String),
    /// `typing:event` in the room.
    Typing(String),
    /// `notification` (the user's personal room).
    Notifications,
    /// `room:updated`, `room:deleted` and `member:*` of the room.
    Room(String),
}

impl Topic {
    /// The room whose membership this topic needs, if any.
    pub fn room(&self) -> Option<&str> {
        match self {
            Topic::Messages(r)
            | Topic::Changes(r)
            | Topic::Presence(r)
            | Topic::Typing(r)
            | Topic::Room(r) => Some(r),
            Topic::Notifications => None,
        }
    }

    /// Whether an event of wire type `kind` in `room` (if it names one)
    /// belongs to this topic.
    pub fn matches(&self, kind: &str, room: Option<&str>) -> bool {
        let in_room = |r: &str| room == Some(r);
        match self {
            Topic::Messages(r) => kind == "message:new" && in_room(r),
            Topic::Changes(r) => {
                matches!(kind, "message:updated" | "message:deleted") && in_room(r)
            }
            // `presence:changed` names no room: it reaches this connection
            // through a room it shares with the user, so every presence
            // subscription gets it.
            Topic::Presence(r) => {
                kind == "presence:changed"
                    || (matches!(kind, "user:joined" | "user:left") && in_room(r))
            }
            Topic::Typing(r) => kind == "typing:event" && in_room(r),
            Topic::Notifications => kind == "notification",
            Topic::Room(r) => {
                matches!(
                    kind,
                    "room:updated"
                        | "room:deleted"
                        | "member:added"
                        | "member:updated"
                        | "member:removed"
                ) && in_room(r)
            }
        }
    }
}

type Subscriber = (Topic, mpsc::UnboundedSender<ByteString>);

/// What routing needs of a frame: its type and room, read without
/// building the rest.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room: Option<Cow<'a, str>>,
}

/// The subscriptions of one socket.
#[derive(Default)]
pub struct Router {
    subs: Mutex<(u64, HashMap<u64, Subscriber>)>,
}

impl Router {
    /// A new subscription to `topic`: its id and the events' receiver.
    pub fn add(&self, topic: Topic) -> (u64, mpsc::UnboundedReceiver<ByteString>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.0 += 1;
        let id = subs.0;
        subs.1.insert(id, (topic, tx));
        (id, rx)
    }

    /// Forgets subscription `id`. Returns the room it needed if no other
    /// subscription needs that room any more (the socket may leave it).
    pub fn remove(&self, id: u64) -> Option<String> {
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let (topic, _) = subs.1.remove(&id)?;
        let room = topic.room()?;
        let still = subs.1.values().any(|(t, _)| t.room() == Some(room));
        (!still).then(|| room.to_string())
    }

    /// Hands one wire frame to the subscriptions it matches; a frame that
    /// is not JSON with a `type` (it always is) is dropped. Returns how
    /// many got it.
    pub fn route(&self, frame: &ByteString) -> usize {
        let Ok(head) = serde_json::from_str::<Head>(frame) else {
            return 0;
        };
        let subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = 0;
        for (topic, tx) in subs.1.values() {
            if topic.matches(&head.kind, head.room.as_deref()) && tx.send(frame.clone()).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    pub fn len(&self) -> usize {
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &'static str) -> ByteString {
        ByteString::from_static(text)
    }

    #[test]
    fn frames_reach_the_subscriptions_of_their_topic_only() {
        let router = Router::default();
        let (_, mut a) = router.add(Topic::Messages("a".into()));
        let (_, mut b) = router.add(Topic::Messages("b".into()));
        let (_, mut n) = router.add(Topic::Notifications);
        let new = r#"{"type":"message:new","room":"a","seq":1,"content":"x"}"#;
        assert_eq!(router.route(&frame(new)), 1);
        assert_eq!(&*a.try_recv().unwrap(), new);
        assert!(b.try_recv().is_err());
        assert!(n.try_recv().is_err());
        let note = r#"{"title":"t","type":"notification"}"#;
        assert_eq!(router.route(&frame(note)), 1);
        assert_eq!(&*n.try_recv().unwrap(), note);
        assert_eq!(router.route(&frame("not json")), 0);
        assert_eq!(router.route(&frame(r#"{"room":"a"}"#)), 0);
    }

    #[test]
    fn a_room_name_with_escapes_is_read_as_its_text() {
        let router = Router::default();
        let (_, mut a) = router.add(Topic::Messages("a\"b".into()));
        let sent = router.route(&frame(r#"{"type":"message:new","room":"a\"b","seq":1}"#));
        assert_eq!(sent, 1);
        assert!(a.try_recv().is_ok());
    }

    #[test]
    fn topics_match_their_event_types() {
        let changes = Topic::Changes("r".into());
        assert!(changes.matches("message:updated", Some("r")));
        assert!(changes.matches("message:deleted", Some("r")));
        assert!(!changes.matches("message:new", Some("r")));
        let presence = Topic::Presence("r".into());
        assert!(presence.matches("user:joined", Some("r")));
        assert!(!presence.matches("user:left", Some("other")));
        assert!(presence.matches("presence:changed", None));
        assert!(Topic::Typing("r".into()).matches("typing:event", Some("r")));
        assert!(Topic::Room("r".into()).matches("member:added", Some("r")));
        assert!(!Topic::Room("r".into()).matches("message:new", Some("r")));
    }

    #[test]
    fn removing_the_last_subscription_of_a_room_frees_it() {
        let router = Router::default();
        let (one, _a) = router.add(Topic::Messages("r".into()));
        let (two, _b) = router.add(Topic::Typing("r".into()));
        let (n, _c) = router.add(Topic::Notifications);
        assert_eq!(router.remove(one), None);
        assert_eq!(router.remove(two), Some("r".to_string()));
        assert_eq!(router.remove(n), None);
        assert_eq!(router.remove(n), None);
        assert!(router.is_empty());
    }
}
