//! `message:edit` and `message:delete`: the role table's check, the change
//! in the log, and its event to the room's members on every node. And
//! `room:read`: the stored position, told to the user's other connections.

use std::sync::Arc;

use actix::prelude::*;

use super::{reply, store_down, Reply, RoomRegistry};
use crate::actors::conn::ConnId;
use crate::actors::messages::{ChangeMessage, MarkRead, NotificationsRead};
use crate::broker::MessageChange;
use crate::cluster::{Channel, ClusterEvent};
use crate::protocol::{encode, CommandError, ErrorCode, Event, MessageRecord};
use crate::rooms::rules;

impl Handler<ChangeMessage> for RoomRegistry {
    type Result = Reply<Arc<MessageRecord>>;
    fn handle(&mut self, msg: ChangeMessage, _: &mut Context<Self>) -> Self::Result {
        let conn = match self.conns.member_of(msg.id, &msg.room) {
            Ok(conn) => conn,
            Err(e) => return reply(Err(e)),
        };
        let user = conn.user().clone();
        // Taken now: the role is the one the room had when asked.
        let acting = self.managed.acting(&msg.room, &user, conn.identity.admin);
        let room = self.rooms.name(&msg.room);
        let log = self.log.clone();
        let find = self.log.find(&room, &msg.message_id);
        let (message_id, change) = (msg.message_id, msg.change);
        let author = user.clone();
        let change = async move {
            let found = find.await.map_err(store_down)?;
            let is_author = found.user_id == author;
            let verdict = match change {
                MessageChange::Edit { .. } => rules::may_edit_message(is_author),
                MessageChange::Delete => rules::may_delete_message(acting, is_author),
            };
            verdict.map_err(|why| CommandError::new(ErrorCode::Forbidden, why))?;
            log.change(&found.room, &message_id, change)
                .await
                .map_err(store_down)
        };
        Box::pin(change.into_actor(self).map(move |res, act, _| {
            let record = res?;
            let deleted_by = record.deleted.then_some(user);
            act.announce_change(&record, deleted_by.as_deref());
            act.relay(
                Channel::Room(record.room.clone()),
                ClusterEvent::Changed {
                    record: record.clone(),
                    deleted_by,
                },
            );
            Ok(record)
        }))
    }
}

impl RoomRegistry {
    /// `message:updated` or `message:deleted` to this node's members of
    /// the room (from this node's command or another node's).
    pub(super) fn announce_change(&self, record: &MessageRecord, deleted_by: Option<&str>) {
        let frame = match deleted_by {
            Some(by) => encode(&Event::MessageDeleted {
                room: &record.room,
                message_id: &record.message_id,
                seq: record.seq,
                deleted_by: by,
            }),
            None => encode(&Event::MessageUpdated {
                room: &record.room,
                message_id: &record.message_id,
                seq: record.seq,
                user_id: &record.user_id,
                content: &record.content,
                metadata: record.metadata.as_ref(),
                edited_at: record.edited_at.as_deref(),
            }),
        };
        self.fan_out(&record.room, None, &frame);
    }
}

impl Handler<MarkRead> for RoomRegistry {
    type Result = Reply<u64>;
    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        match self.access_now(msg.id, &msg.room) {
            Err(e) => reply(Err(e)),
            Ok(true) => self.mark_read(msg),
            Ok(false) => Box::pin(self.look_up(msg.id, &msg.room, false).then(
                move |res, act, _| match res {
                    Ok(()) => act.mark_read(msg),
                    Err(e) => reply(Err(e)),
                },
            )),
        }
    }
}

impl RoomRegistry {
    fn mark_read(&mut self, msg: MarkRead) -> Reply<u64> {
        let user = match self.conns.get(msg.id) {
            Ok(conn) => conn.user().clone(),
            Err(e) => return reply(Err(e)),
        };
        let room = self.rooms.name(&msg.room);
        let mark = self.log.mark_read(&room, &user, msg.seq);
        let origin = msg.id;
        Box::pin(mark.into_actor(self).map(move |res, act, _| {
            let at = res.map_err(store_down)?;
            act.announce_read(&user, &room, at, Some(origin));
            act.relay(
                Channel::Room(crate::auth::personal_room(&user).into()),
                ClusterEvent::ReadPosition {
                    user,
                    room,
                    last_read_seq: at,
                },
            );
            Ok(at)
        }))
    }

    /// `room:read` to the user's connections on this node (their personal
    /// room), but the one that sent it.
    pub(super) fn announce_read(
        &self,
        user: &str,
        room: &str,
        last_read_seq: u64,
        except: Option<ConnId>,
    ) {
        let frame = encode(&Event::RoomRead {
            room,
            last_read_seq,
        });
        self.fan_out(&crate::auth::personal_room(user), except, &frame);
    }
}

impl Handler<NotificationsRead> for RoomRegistry {
    type Result = ();
    fn handle(&mut self, msg: NotificationsRead, _: &mut Context<Self>) {
        self.announce_notifications_read(&msg.user, msg.ids.as_deref(), Some(msg.origin));
        self.relay(
            Channel::Room(crate::auth::personal_room(&msg.user).into()),
            ClusterEvent::NotificationsRead {
                user: msg.user,
                ids: msg.ids,
            },
        );
    }
}

impl RoomRegistry {
    /// `notification:read` to the user's connections here but `except`.
    pub(super) fn announce_notifications_read(
        &self,
        user: &str,
        ids: Option<&[String]>,
        except: Option<ConnId>,
    ) {
        let frame = encode(&Event::NotificationsRead {
            notification_ids: ids,
            all: ids.is_none().then_some(true),
        });
        self.fan_out(&crate::auth::personal_room(user), except, &frame);
    }
}
