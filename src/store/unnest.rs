//! The message writer's two PostgreSQL statements as `UNNEST` of one array
//! per column, instead of diesel's multi-row `VALUES`.
//!
//! A multi-row `VALUES` statement has a different text for every batch size
//! and one bind parameter per cell (11 per message), so diesel cannot keep
//! it prepared: PostgreSQL parses and plans it again for every batch, and
//! both sides encode each cell as its own parameter. These statements have
//! one fixed text whatever the batch size, with one array parameter per
//! column, so the connection prepares each once and reuses it
//! (docs/benchmarks.md, "Persisted messages on PostgreSQL").

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel::QueryResult;

use crate::protocol::MessageRecord;

/// `INSERT INTO messages ... SELECT FROM UNNEST(...)`: a batch's new
/// messages, all created at `created_at`.
pub struct InsertMessages<'a> {
    room: Vec<&'a str>,
    seq: Vec<i64>,
    message_id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    content: Vec<&'a str>,
    thread_id: Vec<Option<&'a str>>,
    metadata: Vec<Option<&'a str>>,
    client_msg_id: Vec<Option<&'a str>>,
    reply_to: Vec<Option<&'a str>>,
    kind: Vec<&'a str>,
    created_at: i64,
}

impl<'a> InsertMessages<'a> {
    pub fn new(records: &'a [std::sync::Arc<MessageRecord>], created_at: i64) -> Self {
        let n = records.len();
        let mut q = InsertMessages {
            room: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            message_id: Vec::with_capacity(n),
            user_id: Vec::with_capacity(n),
            content: Vec::with_capacity(n),
            thread_id: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            client_msg_id: Vec::with_capacity(n),
            reply_to: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            created_at,
        };
        for r in records {
            q.room.push(&r.room);
            q.seq.push(r.seq as i64);
            q.message_id.push(&r.message_id);
            q.user_id.push(&r.user_id);
            q.content.push(&r.content);
            q.thread_id.push(r.thread_id.as_deref());
            q.metadata.push(r.metadata.as_ref().map(|m| m.get()));
            q.client_msg_id.push(r.client_msg_id.as_deref());
            q.reply_to.push(r.reply_to.as_deref());
            q.kind.push(r.kind.as_str());
        }
        q
    }
}

/// The statements' ids: fixed texts, so each is prepared once per connection.
pub struct InsertMessagesId;
pub struct AdvanceRoomsId;

impl QueryId for InsertMessages<'_> {
    type QueryId = InsertMessagesId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for InsertMessages<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO messages (room, seq, message_id, user_id, content, thread_id, \
             metadata, client_msg_id, reply_to, kind, created_at) \
             SELECT u.*, ",
        );
        out.push_bind_param::<BigInt, _>(&self.created_at)?;
        out.push_sql(" FROM UNNEST(");
        out.push_bind_param::<Array<Text>, _>(&self.room)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.message_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.content)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.thread_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.metadata)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_msg_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.reply_to)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.kind)?;
        out.push_sql(") AS u");
        Ok(())
    }
}

/// Creates the rooms that do not exist yet and adds each room's count to
/// its `last_seq`, returning `(name, last_seq)`. Rooms go in the order
/// given (name order), so nodes sharing the database lock them in the same
/// order.
pub struct AdvanceRooms<'a> {
    name: Vec<&'a str>,
    count: Vec<i64>,
    created_at: i64,
}

impl<'a> AdvanceRooms<'a> {
    pub fn new(counts: impl Iterator<Item = (&'a str, i64)>, created_at: i64) -> Self {
        let (name, count) = counts.unzip();
        AdvanceRooms {
            name,
            count,
            created_at,
        }
    }
}

impl QueryId for AdvanceRooms<'_> {
    type QueryId = AdvanceRoomsId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for AdvanceRooms<'_> {
    type SqlType = (Text, BigInt);
}

impl QueryFragment<Pg> for AdvanceRooms<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("INSERT INTO rooms (name, last_seq, created_at) SELECT u.*, ");
        out.push_bind_param::<BigInt, _>(&self.created_at)?;
        out.push_sql(" FROM UNNEST(");
        out.push_bind_param::<Array<Text>, _>(&self.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.count)?;
        out.push_sql(
            ") AS u ON CONFLICT (name) DO UPDATE \
             SET last_seq = rooms.last_seq + excluded.last_seq \
             RETURNING name, last_seq",
        );
        Ok(())
    }
}
