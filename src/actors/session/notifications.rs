//! `notification:read`: one, several or all of the user's notifications,
//! stored as read, then told to the user's other connections (the registry
//! sends `notification:read` to them on every node).

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::json;

use super::Session;
use crate::actors::messages::NotificationsRead;
use crate::protocol::{CommandError, CommandId, ErrorCode, NotificationsToRead};
use crate::store::notifications::ReadOutcome;

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
