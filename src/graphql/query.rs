//! `Query`: history, presence, rooms and notifications, each the `/ws`
//! command of the same name.

use async_graphql::{Context, Json, Object, Result};
use serde_json::{json, Value};

use super::types::{convert, Member, Message, NotificationPage, PresencePage};
use super::{gql_error, Viewer};
use crate::actors::messages::{History, PresenceOf};
use crate::actors::room_registry::apply_changes;
use crate::protocol::{Command, CommandError, ErrorCode, RoomCommand};

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// A room's messages, newest last (`history:get`): before `before`
    /// (a seq), at most `limit`, or the replies to `replyTo`.
    async fn history(
        &self,
        ctx: &Context<'_>,
        room: String,
        before: Option<u64>,
        limit: Option<u64>,
        reply_to: Option<String>,
    ) -> Result<Vec<Message>> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "history:get", "room": room, "before": before,
            "limit": limit, "replyTo": reply_to});
        let Command::HistoryGet {
            room,
            before,
            limit,
            reply_to,
        } = viewer.command(frame)?
        else {
            unreachable!("history:get decodes to HistoryGet")
        };
        let id = viewer.conn().await?;
        let msg = History {
            id,
            room,
            before,
            limit,
            reply_to,
        };
        let records = viewer.ask(msg).await?;
        Ok(records.iter().filter_map(|r| convert(&**r)).collect())
    }

    /// A room's members on every node (`presence:get`), a page at a time.
    async fn presence(
        &self,
        ctx: &Context<'_>,
        room: String,
        after: Option<String>,
        limit: Option<u64>,
    ) -> Result<PresencePage> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "presence:get", "room": room, "after": after, "limit": limit});
        let Command::PresenceGet { room, after, limit } = viewer.command(frame)? else {
            unreachable!("presence:get decodes to PresenceGet")
        };
        let id = viewer.conn().await?;
        let page = viewer
            .ask(PresenceOf {
                id,
                room,
                after,
                limit,
            })
            .await?;
        Ok(PresencePage {
            members: page
                .members
                .iter()
                .filter_map(convert::<_, Member>)
                .collect(),
            member_count: page.count as u64,
            next: page.next.map(|n| n.to_string()),
        })
    }

    /// The managed rooms the user belongs to (`room:list`'s answer).
    async fn rooms(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        let viewer = Viewer::of(ctx)?;
        viewer.command(json!({"type": "room:list"}))?;
        let run = async {
            let done = viewer
                .deps
                .rooms
                .run(&viewer.identity, RoomCommand::List)
                .await?;
            apply_changes(&viewer.deps.registry, done.changes).await;
            Ok::<_, CommandError>(done.data)
        };
        let limit = viewer.deps.cfg.registry_timeout;
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(data)) => Ok(Json(data)),
            Ok(Err(e)) => Err(gql_error(e)),
            Err(_) => Err(gql_error(CommandError::new(
                ErrorCode::Unavailable,
                "the room command did not complete in time",
            ))),
        }
    }

    /// The user's notifications that have not expired, newest first
    /// (`notification:list`): read and unread, or only unread with
    /// `unreadOnly`; before notificationId `before`, at most `limit`
    /// (default 50, at most 100). `next` is the `before` of the next page
    /// (null on the last).
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        unread_only: Option<bool>,
        before: Option<String>,
        limit: Option<u64>,
    ) -> Result<NotificationPage> {
        let viewer = Viewer::of(ctx)?;
        let frame = json!({"type": "notification:list", "unreadOnly": unread_only,
            "before": before, "limit": limit});
        let Command::NotificationList(page) = viewer.command(frame)? else {
            unreachable!("notification:list decodes to NotificationList")
        };
        let listed = viewer
            .deps
            .notifications
            .list(&viewer.identity.user_id, page)
            .await
            .map_err(|e| gql_error(CommandError::new(ErrorCode::Unavailable, e.to_string())))?;
        let Some((list, next)) = listed else {
            return Err(gql_error(CommandError::bad_request(
                "`before` is not one of this user's notifications",
            )));
        };
        Ok(NotificationPage {
            notifications: list.iter().filter_map(convert).collect(),
            next,
        })
    }
}
