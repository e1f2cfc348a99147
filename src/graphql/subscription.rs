//! `Subscription`: live events of a room (or of the user), fed from what
//! the registry delivers to the socket's connection. Subscribing to a room
//! joins it (`room:join`, with `since` for recovery), so the subscriber is
//! a member for fan-out, presence and slow-consumer purposes on every
//! node; the last subscription of a room to end leaves it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_graphql::{Context, Result, Subscription};
use bytestring::ByteString;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::router::{Router, Topic};
use super::types::{
    convert, from_text, Message, MessageChange, Notification, PresenceEvent, RoomEvent, TypingEvent,
};
use super::Viewer;
use crate::actors::messages::{Join, JoinReply, Leave};
use crate::actors::room_registry::RoomRegistry;
use crate::mailbox::Mailbox;
use crate::protocol::Command;

pub struct SubscriptionRoot;

/// A subscription's events; ending it (the client's `complete`, or the
/// socket closing) forgets it and leaves the room if nothing else needs it.
struct Feed {
    rx: mpsc::UnboundedReceiver<ByteString>,
    id: u64,
    router: Arc<Router>,
    leave: Option<(Mailbox<RoomRegistry>, uuid::Uuid)>,
}

impl Stream for Feed {
    type Item = ByteString;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<ByteString>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let Some(room) = self.router.remove(self.id) else {
            return;
        };
        if let Some((registry, id)) = self.leave.take() {
            if let Some(wait) = registry.tell(Leave { id, room }) {
                actix::spawn(wait);
            }
        }
    }
}

impl Viewer {
    /// Subscribes to `topic`, joining its room first (if it has one).
    /// The feed is registered before the join, so nothing delivered after
    /// the join is missed.
    async fn subscribe(
        &self,
        topic: Topic,
        since: Option<u64>,
    ) -> Result<(Feed, Option<JoinReply>)> {
        let router = self.router()?.clone();
        let id = self.conn().await?;
        let room = topic.room().map(str::to_string);
        let (sub, rx) = router.add(topic);
        let mut feed = Feed {
            rx,
            id: sub,
            router,
            leave: None,
        };
        let Some(room) = room else {
            self.charge()?;
            return Ok((feed, None));
        };
        let frame = json!({"type": "room:join", "room": room, "since": since});
        let Command::Join { room, since } = self.command(frame)? else {
            unreachable!("room:join decodes to Join")
        };
        let joined = self.ask(Join { id, room, since }).await?;
        feed.leave = Some((self.deps.registry.clone(), id));
        Ok((feed, Some(joined)))
    }
}

/// The feed's frames, each read as the subscription's type.
fn typed<T: Send + 'static>(
    feed: Feed,
    read: fn(&str) -> Option<T>,
) -> impl Stream<Item = T> + Send {
    feed.filter_map(move |frame| std::future::ready(read(&frame)))
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// New messages of `room`. With `since` (a seq), the messages after it
    /// that this subscriber missed come first (as `room:join` recovers).
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        room: String,
        since: Option<u64>,
    ) -> Result<impl Stream<Item = Message>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, joined) = viewer.subscribe(Topic::Messages(room), since).await?;
        let missed: Vec<Message> = joined
            .map(|j| j.missed.iter().filter_map(|m| convert(&**m)).collect())
            .unwrap_or_default();
        let last = missed.last().map(|m| m.seq);
        let live = typed(feed, from_text::<Message>)
            .filter(move |m| std::future::ready(last.is_none_or(|seq| m.seq > seq)));
        Ok(stream::iter(missed).chain(live))
    }

    /// Edits and deletions of `room`'s messages.
    async fn message_changed(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> Result<impl Stream<Item = MessageChange>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, _) = viewer.subscribe(Topic::Changes(room), None).await?;
        Ok(typed(feed, MessageChange::from_event))
    }

    /// Users joining and leaving `room`, and status changes of its users.
    async fn presence_changed(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> Result<impl Stream<Item = PresenceEvent>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, _) = viewer.subscribe(Topic::Presence(room), None).await?;
        Ok(typed(feed, PresenceEvent::from_event))
    }

    /// Who is typing in `room`.
    async fn typing(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> Result<impl Stream<Item = TypingEvent>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, _) = viewer.subscribe(Topic::Typing(room), None).await?;
        Ok(typed(feed, from_text::<TypingEvent>))
    }

    /// The user's notifications as they are sent.
    async fn notification_received(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Notification>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, _) = viewer.subscribe(Topic::Notifications, None).await?;
        Ok(typed(feed, from_text::<Notification>))
    }

    /// Changes to managed room `room`: its settings, deletion, members.
    async fn room_updated(
        &self,
        ctx: &Context<'_>,
        room: String,
    ) -> Result<impl Stream<Item = RoomEvent>> {
        let viewer = Viewer::of(ctx)?;
        let (feed, _) = viewer.subscribe(Topic::Room(room), None).await?;
        Ok(typed(feed, RoomEvent::from_event))
    }
}
