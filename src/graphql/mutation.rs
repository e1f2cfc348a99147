//! `Mutation`: send, edit, delete, read positions and notifications, each
//! the `/ws` command of the same name. A mutation needs access to the room
//! (the `room:join` rule), not a subscription: the connection joins the
//! room, as a `/ws` client does before `message:send`, and the message then
//! takes the same path (room rate, group commit, fan-out on every node).

use async_graphql::{Context, Json, Object, Result};
use serde_json::{json, Value};

use super::types::{convert, Message, Published};
use super::{gql_error, Viewer};
use crate::actors::messages::{ChangeMessage, Join, MarkRead, NotificationsRead, Publish};
use crate::broker::MessageChange;
use crate::protocol::{Command, CommandError, ErrorCode, LifecycleCommand, NotificationsToRead};
use crate::store::notifications::ReadOutcome;

pub struct MutationRoot;

impl Viewer {
    /// Joins `room` (access checked as `room:join` checks it).
    async fn enter(&self, room: &str) -> Result<uuid::Uuid> {
        let id = self.conn().await?;
        let join = Join {
            id,
            room: room.to_string(),
            since: None,
        };
        self.ask(join).await?;
        Ok(id)
    }

    async fn change(&self, frame: Value) -> Result<Message> {
        let (room, message_id, change) = match self.command(frame)? {
            Command::Lifecycle(LifecycleCommand::Edit {
                room,
                message_id,
                content,
                metadata,
            }) => (room, message_id, MessageChange::Edit { content, metadata }),
            Command::Lifecycle(LifecycleCommand::Delete { room, message_id }) => {
                (room, message_id, MessageChange::Delete)
            }
            _ => unreachable!("message:edit and message:delete decode to Lifecycle"),
        };
        let id = self.enter(&room).await?;
        let msg = ChangeMessage {
            id,
            room,
            message_id,
            change,
        };
        let record = self.ask(msg).await?;
        convert(&*record).ok_or_else(|| "the message could not be read back".into())
    }
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// `message:send`: answers once the message is committed.
    #[allow(clippy::too_many_arguments)]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        room: String,
        content: String,
        thread_id: Option<String>,
        reply_to: Option<String>,
        kind: Option<String>,
        client_msg_id: Option<String>,
        metadata: Option<Json<Value>>,
    ) -> Result<Published> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "message:send", "room": room, "content": content,
            "threadId": thread_id, "replyTo": reply_to, "kind": kind,
            "clientMsgId": client_msg_id, "metadata": metadata.map(|m| m.0)});
        let Command::Send {
            room,
            content,
            thread_id,
            metadata,
            client_msg_id,
            reply_to,
            kind,
        } = viewer.command(frame)?
        else {
            unreachable!("message:send decodes to Send")
        };
        let id = viewer.enter(&room).await?;
        let msg = Publish {
            id,
            room,
            content,
            thread_id,
            metadata,
            client_msg_id,
            reply_to,
            kind,
        };
        let published = viewer.ask(msg).await?;
        convert(&published).ok_or_else(|| "the answer could not be read".into())
    }

    /// `message:edit`: the author only; answers the message as edited.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        room: String,
        message_id: String,
        content: String,
        metadata: Option<Json<Value>>,
    ) -> Result<Message> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "message:edit", "room": room, "messageId": message_id,
            "content": content, "metadata": metadata.map(|m| m.0)});
        viewer.change(frame).await
    }

    /// `message:delete`: the author, or a moderator of a managed room;
    /// answers the tombstone.
    async fn delete_message(
        &self,
        ctx: &Context<'_>,
        room: String,
        message_id: String,
    ) -> Result<Message> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "message:delete", "room": room, "messageId": message_id});
        viewer.change(frame).await
    }

    /// `room:read`: the user has read `room` up to `seq`; answers the
    /// stored position (it never moves back).
    async fn mark_read(&self, ctx: &Context<'_>, room: String, seq: u64) -> Result<u64> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "room:read", "room": room, "seq": seq});
        let Command::Lifecycle(LifecycleCommand::Read { room, seq }) = viewer.command(frame)?
        else {
            unreachable!("room:read decodes to Read")
        };
        let id = viewer.conn().await?;
        viewer.ask(MarkRead { id, room, seq }).await
    }

    /// `notification:read`: the notifications `ids`, or `all: true`.
    async fn read_notifications(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<String>>,
        all: Option<bool>,
    ) -> Result<bool> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "notification:read", "notificationIds": ids, "all": all});
        let Command::NotificationRead { read } = viewer.command(frame)? else {
            unreachable!("notification:read decodes to NotificationRead")
        };
        let store = &viewer.deps.notifications;
        let user = &viewer.identity.user_id;
        let unavailable = |e: crate::store::StoreError| {
            gql_error(CommandError::new(ErrorCode::Unavailable, e.to_string()))
        };
        let ids = match read {
            NotificationsToRead::One(one) => {
                match store.mark_read(user, &one).await.map_err(unavailable)? {
                    ReadOutcome::Unknown => {
                        return Err(gql_error(CommandError::bad_request(
                            "no such notification for this user",
                        )))
                    }
                    ReadOutcome::Marked => Some(vec![one]),
                    ReadOutcome::AlreadyRead => Some(Vec::new()),
                }
            }
            NotificationsToRead::Some(ids) => {
                Some(store.mark_some_read(user, ids).await.map_err(unavailable)?)
            }
            NotificationsToRead::All => {
                store.mark_all_read(user).await.map_err(unavailable)?;
                None
            }
        };
        if ids.as_ref().is_none_or(|ids| !ids.is_empty()) {
            // The user's other connections learn it, as after `/ws`.
            let msg = NotificationsRead {
                origin: viewer.id(),
                user: user.clone(),
                ids,
            };
            let _ = viewer.deps.registry.ask_in_turn(msg).await;
        }
        Ok(true)
    }
}
