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
use super::schema::{messages, read_positions, room_memberships, rooms};
use super::{db_int, ms_to_rfc3339, now_ms, Db, StoreError};
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

/// `room:read`: the user's position in the room becomes `seq` (at most the
/// room's `last_seq`) unless it is further already; answers the position.
/// A managed room's is its membership's `last_read_seq` (what `room:list`
/// reads), any other room's a `read_positions` row.
pub(super) async fn mark_read(
    db: &Db,
    room: &str,
    user: &str,
    seq: u64,
) -> Result<u64, StoreError> {
    let now = now_ms();
    with_tx!(db, |conn| {
        let last: Option<i64> = rooms::table
            .find(room)
            .select(rooms::last_seq)
            .first(conn)
            .await
            .optional()?;
        let target = db_int(seq).min(last.unwrap_or(0));
        let member: Option<i64> = room_memberships::table
            .find((room, user))
            .select(room_memberships::last_read_seq)
            .first(conn)
            .await
            .optional()?;
        if let Some(current) = member {
            if current >= target {
                return Ok(current.max(0) as u64);
            }
            diesel::update(room_memberships::table.find((room, user)))
                .set(room_memberships::last_read_seq.eq(target))
                .execute(conn)
                .await?;
            return Ok(target as u64);
        }
        let current: Option<i64> = read_positions::table
            .find((room, user))
            .select(read_positions::last_read_seq)
            .first(conn)
            .await
            .optional()?;
        match current {
            Some(current) if current >= target => Ok(current.max(0) as u64),
            Some(_) => {
                diesel::update(read_positions::table.find((room, user)))
                    .set((
                        read_positions::last_read_seq.eq(target),
                        read_positions::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                Ok(target as u64)
            }
            None => {
                diesel::insert_into(read_positions::table)
                    .values((
                        read_positions::room.eq(room),
                        read_positions::user_id.eq(user),
                        read_positions::last_read_seq.eq(target),
                        read_positions::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                Ok(target as u64)
            }
        }
    })
}
