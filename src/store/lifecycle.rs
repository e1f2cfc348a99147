//! Edits and deletions of stored messages (`message:edit`,
//! `message:delete`), and the stamp recovery finds them by.
//!
//! A change stamps the message's `changed_at_seq` with the room's
//! `last_seq` read in the change's own transaction. Recovery with `since`
//! returns the messages with `seq <= since` stamped at `since` or later
//! (`messages::recover`): a change stamped below `since` committed before
//! message `since` did, so a client holding `since` was either in the room
//! when its event was sent or read the message after the change.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::messages::MessageRow;
use super::schema::{messages, rooms};
use super::{ms_to_rfc3339, now_ms, Db, StoreError};
use crate::broker::MessageChange;
use crate::protocol::MessageRecord;
use crate::{with_conn, with_tx};

fn missing(room: &str, message_id: &str) -> StoreError {
    StoreError::Missing(format!("no message {message_id} in room {room}"))
}

pub(super) async fn find(
    db: &Db,
    room: &str,
    message_id: &str,
) -> Result<Arc<MessageRecord>, StoreError> {
    with_conn!(db, |conn| {
        let row: Option<MessageRow> = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::message_id.eq(message_id))
            .select(MessageRow::as_select())
            .first(conn)
            .await
            .optional()?;
        row.map(|r| Arc::new(r.into_record()))
            .ok_or_else(|| missing(room, message_id))
    })
}

pub(super) async fn change(
    db: &Db,
    room: &str,
    message_id: &str,
    change: MessageChange,
) -> Result<Arc<MessageRecord>, StoreError> {
    let now = now_ms();
    with_tx!(db, |conn| {
        let row: Option<MessageRow> = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::message_id.eq(message_id))
            .select(MessageRow::as_select())
            .first(conn)
            .await
            .optional()?;
        let mut record = row
            .map(|r| r.into_record())
            .filter(|r| !r.deleted)
            .ok_or_else(|| missing(room, message_id))?;
        // Taken with the room's row locked (a no-op update), so no message
        // after `stamp` commits before this change does.
        let stamp: i64 = diesel::update(rooms::table.find(room))
            .set(rooms::last_seq.eq(rooms::last_seq))
            .returning(rooms::last_seq)
            .get_result(conn)
            .await?;
        let target = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::message_id.eq(message_id));
        match &change {
            MessageChange::Edit { content, metadata } => {
                diesel::update(target)
                    .set((
                        messages::content.eq(content),
                        messages::metadata.eq(metadata.as_ref().map(|m| m.get())),
                        messages::edited_at.eq(now),
                        messages::changed_at_seq.eq(stamp),
                    ))
                    .execute(conn)
                    .await?;
            }
            // The content leaves the database, not only the answers.
            MessageChange::Delete => {
                diesel::update(target)
                    .set((
                        messages::content.eq(""),
                        messages::metadata.eq(None::<String>),
                        messages::deleted_at.eq(now),
                        messages::changed_at_seq.eq(stamp),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        change.apply(&mut record, &ms_to_rfc3339(now));
        Ok(Arc::new(record))
    })
}
