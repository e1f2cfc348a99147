//! `notification:read`: one, several or all of the user's notifications,
//! stored as read, then told to the user's other connections (the registry
//! sends `notification:read` to them on every node). `notification:list`:
//! a page of them from the database. And the active announcements sent
//! right after `connected`.

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::json;

use super::Session;
use crate::actors::messages::NotificationsRead;
use crate::protocol::notifications::roles_meet;
use crate::protocol::{
    CommandError, CommandId, ErrorCode, Event, NotificationList, NotificationsToRead,
};
use crate::store::notifications::ReadOutcome;
use crate::store::now_ms;

/// Most active announcements looked at for a new connection.
pub const ANNOUNCEMENTS_ON_CONNECT: usize = 100;

impl Session {
    pub(super) fn notification_read(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        read: NotificationsToRead,
    ) {
        let store = self.deps.notifications.clone();
        let user = self.identity.user_id.clone();
        let mark = async move {
            match read {
                NotificationsToRead::One(one) => match store.mark_read(&user, &one).await? {
                    ReadOutcome::Unknown => Ok(Err(CommandError::bad_request(
                        "no such notification for this user",
                    ))),
                    ReadOutcome::Marked => Ok(Ok(Some(vec![one]))),
                    // Nothing changed: nothing to tell.
                    ReadOutcome::AlreadyRead => Ok(Ok(Some(Vec::new()))),
                },
                NotificationsToRead::Some(ids) => {
                    Ok(Ok(Some(store.mark_some_read(&user, ids).await?)))
                }
                NotificationsToRead::All => store.mark_all_read(&user).await.map(|()| Ok(None)),
            }
        };
        ctx.spawn(mark.into_actor(self).map(move |res, act, ctx| {
            let result = match res {
                Ok(Ok(ids)) => {
                    if ids.as_ref().is_none_or(|ids| !ids.is_empty()) {
                        act.tell_read(ids);
                    }
                    Ok(json!({}))
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(CommandError::new(ErrorCode::Unavailable, e.to_string())),
            };
            act.answer(ctx, id.as_ref(), result);
        }));
    }

    pub(super) fn notification_list(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: Option<CommandId>,
        page: NotificationList,
    ) {
        let store = self.deps.notifications.clone();
        let user = self.identity.user_id.clone();
        let list = async move { store.list(&user, page).await };
        ctx.spawn(list.into_actor(self).map(move |res, act, ctx| {
            let result = match res {
                Ok(Some((notifications, next))) => {
                    Ok(json!({ "notifications": notifications, "next": next }))
                }
                Ok(None) => Err(CommandError::bad_request(
                    "`before` is not one of this user's notifications",
                )),
                Err(e) => Err(CommandError::new(ErrorCode::Unavailable, e.to_string())),
            };
            act.answer(ctx, id.as_ref(), result);
        }));
    }

    /// The announcements active now whose `targetRoles` the token's `roles`
    /// meet, right after `connected` (oldest first).
    pub(super) fn send_announcements(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let store = self.deps.announcements.clone();
        let load = async move { store.active(now_ms(), ANNOUNCEMENTS_ON_CONNECT).await };
        ctx.spawn(load.into_actor(self).map(|res, act, ctx| match res {
            Ok(active) => {
                for a in &active {
                    if roles_meet(&act.identity.roles, &a.target_roles) {
                        let event = Event::Announcement {
                            data: &a.announcement,
                        };
                        act.send_event(ctx, &event);
                    }
                }
            }
            // Not retried: this connection goes without them.
            Err(e) => log::warn!("conn={}: announcements not loaded: {e}", act.wire_id),
        }));
    }

    /// The other connections learn it in the registry's turn: nothing is
    /// dropped when its mailbox is full, and nobody waits for it.
    fn tell_read(&self, ids: Option<Vec<String>>) {
        let msg = NotificationsRead {
            origin: self.id,
            user: self.identity.user_id.clone(),
            ids,
        };
        let send = self.deps.registry.ask_in_turn(msg);
        actix::spawn(async move {
            let _ = send.await;
        });
    }
}
