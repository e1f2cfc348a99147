//! The durable message log: `seq` assignment, history, recovery, dedupe.
//!
//! `append` queues the message for one writer task, which takes whatever is
//! queued (up to `database.batch_max`) and writes it in one transaction:
//! many senders share one commit (group commit). The room's `last_seq` is
//! advanced inside that transaction, so `seq` never repeats or goes back,
//! across restarts and across nodes sharing a PostgreSQL database. A message
//! is acknowledged only after its transaction committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::db_int;
use super::schema::{messages, rooms};
use super::unnest::{AdvanceRooms, InsertMessages};
use super::{ms_to_rfc3339, now_ms, Db, StoreError};
use crate::broker::{Appended, MessageChange, MessageLog, NewMessage, Recovery, StoreFuture};
use crate::config::DatabaseSettings;
use crate::metrics::{add, inc, Metrics};
use crate::protocol::{MessageKind, MessageRecord, RawJson};
use crate::{with_conn, with_tx};

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
pub(super) struct MessageRow {
    room: String,
    seq: i64,
    message_id: String,
    user_id: String,
    content: String,
    thread_id: Option<String>,
    metadata: Option<String>,
    client_msg_id: Option<String>,
    created_at: i64,
    reply_to: Option<String>,
    kind: String,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
}

impl MessageRow {
    pub(super) fn into_record(self) -> MessageRecord {
        MessageRecord {
            room: self.room.into(),
            message_id: self.message_id,
            seq: self.seq as u64,
            user_id: self.user_id.into(),
            content: self.content,
            thread_id: self.thread_id,
            reply_to: self.reply_to,
            // Rows of earlier releases have the column's default, `text`.
            kind: MessageKind::parse(&self.kind).unwrap_or_default(),
            metadata: self
                .metadata
                .and_then(|m| RawValue::from_string(m).ok())
                .map(RawJson),
            timestamp: ms_to_rfc3339(self.created_at),
            edited_at: self.edited_at.map(ms_to_rfc3339),
            deleted: self.deleted_at.is_some(),
            client_msg_id: self.client_msg_id,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = messages, treat_none_as_null = true)]
struct NewRow<'a> {
    room: &'a str,
    seq: i64,
    message_id: &'a str,
    user_id: &'a str,
    content: &'a str,
    thread_id: Option<&'a str>,
    metadata: Option<&'a str>,
    client_msg_id: Option<&'a str>,
    created_at: i64,
    reply_to: Option<&'a str>,
    kind: &'a str,
}

enum Job {
    Append(NewMessage, oneshot::Sender<Result<Appended, StoreError>>),
    Flush(oneshot::Sender<()>),
}

/// The [`MessageLog`] backed by the database.
pub struct DbLog {
    db: Db,
    /// One queue per writer task; a room's messages always go to the same
    /// writer, so its seqs are assigned in queue order.
    writers: Vec<mpsc::Sender<Job>>,
}

impl DbLog {
    /// Starts `database.message_writers` writer tasks on the current tokio
    /// runtime, sharing `database.write_queue` between them.
    pub fn start(db: Db, cfg: &DatabaseSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let n = cfg.message_writers.max(1);
        let writers = (0..n)
            .map(|_| {
                let (jobs, rx) = mpsc::channel((cfg.write_queue / n).max(1));
                let writer = Writer {
                    db: db.clone(),
                    rx,
                    batch_max: cfg.batch_max.max(1),
                    batch_delay: cfg.batch_delay,
                    metrics: metrics.clone(),
                };
                tokio::spawn(writer.run());
                jobs
            })
            .collect();
        Arc::new(DbLog { db, writers })
    }

    /// The writer of the room's messages.
    fn writer(&self, room: &str) -> &mpsc::Sender<Job> {
        &self.writers[writer_index(room, self.writers.len())]
    }

    /// Waits until everything queued before this call has been written.
    pub async fn flush(&self) {
        let acks = self.writers.iter().map(|jobs| async move {
            let (tx, rx) = oneshot::channel();
            if jobs.send(Job::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        });
        futures_util::future::join_all(acks).await;
    }
}

/// Which of `n` writers takes the room's messages: the same one always.
fn writer_index(room: &str, n: usize) -> usize {
    use std::hash::{DefaultHasher, Hash, Hasher};
    if n <= 1 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    room.hash(&mut h);
    (h.finish() % n as u64) as usize
}

impl MessageLog for DbLog {
    /// Queues the message now, in call order (the writer assigns seqs in
    /// queue order); the future only waits for the commit.
    fn append(&self, msg: NewMessage) -> StoreFuture<Appended> {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .writer(&msg.room)
            .try_send(Job::Append(msg, tx))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Unavailable(
                    "too many messages are waiting for the database (database.write_queue)".into(),
                ),
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("the message writer has stopped".into())
                }
            });
        // No timeout here: the writer's transaction has one, so this always
        // ends, and a late commit is still delivered in order. The caller
        // bounds how long the sender waits.
        async move {
            queued?;
            rx.await.map_err(|_| {
                StoreError::Unavailable("the message writer dropped the message".into())
            })?
        }
        .boxed()
    }

    fn recover(&self, room: &str, since: Option<u64>, max: usize) -> StoreFuture<Recovery> {
        let (db, room) = (self.db.clone(), room.to_string());
        let op = move |db: Db| async move { recover(&db, &room, since, max).await };
        async move { db.timed(op).await }.boxed()
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        reply_to: Option<&str>,
    ) -> StoreFuture<Vec<Arc<MessageRecord>>> {
        let (db, room) = (self.db.clone(), room.to_string());
        let reply_to = reply_to.map(str::to_string);
        let op = move |db: Db| async move {
            history(&db, &room, before, limit, reply_to.as_deref()).await
        };
        async move { db.timed(op).await }.boxed()
    }

    fn find(&self, room: &str, message_id: &str) -> StoreFuture<Arc<MessageRecord>> {
        let (db, room, id) = (self.db.clone(), room.to_string(), message_id.to_string());
        let op = move |db: Db| async move { super::lifecycle::find(&db, &room, &id).await };
        async move { db.timed(op).await }.boxed()
    }

    fn change(
        &self,
        room: &str,
        message_id: &str,
        change: MessageChange,
    ) -> StoreFuture<Arc<MessageRecord>> {
        let (db, room, id) = (self.db.clone(), room.to_string(), message_id.to_string());
        let op =
            move |db: Db| async move { super::lifecycle::change(&db, &room, &id, change).await };
        async move { db.timed(op).await }.boxed()
    }

    fn mark_read(&self, room: &str, user: &str, seq: u64) -> StoreFuture<u64> {
        let (db, room, user) = (self.db.clone(), room.to_string(), user.to_string());
        let op =
            move |db: Db| async move { super::lifecycle::mark_read(&db, &room, &user, seq).await };
        async move { db.timed(op).await }.boxed()
    }
}

async fn recover(
    db: &Db,
    room: &str,
    since: Option<u64>,
    max: usize,
) -> Result<Recovery, StoreError> {
    with_conn!(db, |conn| {
        let latest: Option<i64> = rooms::table
            .find(room)
            .select(rooms::last_seq)
            .first(conn)
            .await
            .optional()?;
        let latest = latest.unwrap_or(0) as u64;
        // A `since` past the latest seq (a client of a database since
        // reset) recovers nothing, as if it were the latest.
        let since = match since {
            Some(s) if latest > 0 => s.min(latest),
            _ => {
                return Ok(Recovery {
                    latest,
                    messages: Vec::new(),
                    complete: true,
                    changed: Vec::new(),
                })
            }
        };
        let mut rows: Vec<MessageRow> = if since < latest {
            messages::table
                .filter(messages::room.eq(room))
                .filter(messages::seq.gt(db_int(since)))
                .order(messages::seq.desc())
                .limit(max as i64)
                .select(MessageRow::as_select())
                .load(conn)
                .await?
        } else {
            Vec::new()
        };
        rows.reverse();
        // Also when nothing new was sent: an edit alone is recovered.
        // Changes stamped at `since` or later (`lifecycle::change`).
        let changed: Vec<MessageRow> = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::seq.le(db_int(since)))
            .filter(messages::changed_at_seq.ge(db_int(since)))
            .order(messages::seq.asc())
            .limit(max as i64)
            .select(MessageRow::as_select())
            .load(conn)
            .await?;
        let changed = changed
            .into_iter()
            .map(|r| Arc::new(r.into_record()))
            .collect();
        let missed = (latest - since) as usize;
        Ok(Recovery {
            latest,
            changed,
            complete: missed <= max && rows.len() == missed,
            messages: rows
                .into_iter()
                .map(|r| Arc::new(r.into_record()))
                .collect(),
        })
    })
}

async fn history(
    db: &Db,
    room: &str,
    before: Option<u64>,
    limit: usize,
    reply_to: Option<&str>,
) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
    with_conn!(db, |conn| {
        let before = before.map_or(i64::MAX, db_int);
        let mut query = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::seq.lt(before))
            .into_boxed();
        if let Some(parent) = reply_to {
            query = query.filter(messages::reply_to.eq(parent));
        }
        let mut rows: Vec<MessageRow> = query
            .order(messages::seq.desc())
            .limit(limit as i64)
            .select(MessageRow::as_select())
            .load(conn)
            .await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|r| Arc::new(r.into_record()))
            .collect())
    })
}

struct Writer {
    db: Db,
    rx: mpsc::Receiver<Job>,
    batch_max: usize,
    batch_delay: Duration,
    metrics: Arc<Metrics>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut batch = Vec::new();
            let mut flush = None;
            match first {
                Job::Append(msg, reply) => batch.push((msg, reply)),
                Job::Flush(ack) => {
                    let _ = ack.send(());
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + self.batch_delay;
            while batch.len() < self.batch_max && flush.is_none() {
                let job = if self.batch_delay.is_zero() {
                    match self.rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                } else {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(job)) => job,
                        _ => break,
                    }
                };
                match job {
                    Job::Append(msg, reply) => batch.push((msg, reply)),
                    Job::Flush(ack) => flush = Some(ack),
                }
            }
            let (msgs, replies): (Vec<NewMessage>, Vec<_>) = batch.into_iter().unzip();
            let started = std::time::Instant::now();
            let result = self
                .db
                .timed(|db| async move { write_batch(&db, &msgs).await })
                .await;
            self.metrics.db_commit_seconds.observe(started.elapsed());
            inc(&self.metrics.db_write_batches);
            match result {
                Ok(appended) => {
                    let written = appended
                        .iter()
                        .filter(|a| a.as_ref().is_ok_and(|a| !a.duplicate))
                        .count();
                    add(&self.metrics.db_written_messages, written as u64);
                    for (reply, a) in replies.into_iter().zip(appended) {
                        let _ = reply.send(a);
                    }
                }
                Err(e) => {
                    inc(&self.metrics.db_errors);
                    log::warn!("writing {} messages failed: {e}", replies.len());
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            if let Some(ack) = flush {
                let _ = ack.send(());
            }
        }
    }
}

/// What a message of the batch turned out to be.
enum Slot {
    New,
    /// Stored earlier with the same (room, user, clientMsgId).
    Existing(Arc<MessageRecord>),
    /// A repeat of the batch's message at this index.
    SameAs(usize),
    /// Refused: its `replyTo` is not a message of its room.
    NoParent,
}

/// Writes one batch in one transaction; answers in the batch's order.
///
/// A fixed number of statements per batch, whatever its size: one query
/// finds every stored `clientMsgId` duplicate, one upsert creates the rooms
/// and advances their `last_seq` (returning the new values), one multi-row
/// insert stores the messages. Each statement is a round trip to the
/// database, and on a busy core each round trip also waits for the store's
/// thread to be scheduled, so statements per message, not rows, decided
/// the throughput (docs/benchmarks.md).
/// A reply costs one more statement per batch holding replies: the query
/// that checks every `replyTo` of the batch names a message of its room.
async fn write_batch(
    db: &Db,
    msgs: &[NewMessage],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let now = now_ms();
    with_tx!(db, |conn| {
        let (rooms, users, keys) = dedupe_keys(msgs);
        let stored: Vec<MessageRow> = if keys.is_empty() {
            Vec::new()
        } else {
            messages::table
                .filter(messages::room.eq_any(rooms))
                .filter(messages::user_id.eq_any(users))
                .filter(messages::client_msg_id.eq_any(keys))
                .select(MessageRow::as_select())
                .load(conn)
                .await?
        };
        let stored: Vec<Arc<MessageRecord>> = stored
            .into_iter()
            .map(|r| Arc::new(r.into_record()))
            .collect();
        let by_key: HashMap<(&str, &str, &str), &Arc<MessageRecord>> = stored
            .iter()
            .filter_map(|r| Some(((&*r.room, &*r.user_id, r.client_msg_id.as_deref()?), r)))
            .collect();

        let mut slots = Vec::with_capacity(msgs.len());
        let mut keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            let Some(key) = m.client_msg_id.as_deref() else {
                slots.push(Slot::New);
                continue;
            };
            let key = (&*m.room, &*m.user_id, key);
            if let Some(&j) = keys.get(&key) {
                slots.push(Slot::SameAs(j));
                continue;
            }
            keys.insert(key, i);
            slots.push(match by_key.get(&key) {
                Some(&record) => Slot::Existing(record.clone()),
                None => Slot::New,
            });
        }

        let parents: Vec<&str> = msgs
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| matches!(slot, Slot::New))
            .filter_map(|(m, _)| m.reply_to.as_deref())
            .collect();
        if !parents.is_empty() {
            let found: Vec<(String, String)> = messages::table
                .filter(messages::message_id.eq_any(&parents))
                .select((messages::message_id, messages::room))
                .load(conn)
                .await?;
            for (m, slot) in msgs.iter().zip(slots.iter_mut()) {
                let Some(parent) = m.reply_to.as_deref() else {
                    continue;
                };
                let in_room = found
                    .iter()
                    .any(|(id, room)| id == parent && *room == *m.room);
                if matches!(slot, Slot::New) && !in_room {
                    *slot = Slot::NoParent;
                }
            }
        }

        // Rooms in name order, so that nodes sharing the database lock them
        // in the same order.
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for (m, slot) in msgs.iter().zip(&slots) {
            if matches!(slot, Slot::New) {
                *counts.entry(&*m.room).or_insert(0) += 1;
            }
        }
        let mut next_seq: HashMap<String, i64> = HashMap::new();
        if !counts.is_empty() {
            for (room, last) in conn.advance_rooms(&counts, now).await? {
                let k = counts[room.as_str()];
                next_seq.insert(room, last - k + 1);
            }
        }

        let timestamp = ms_to_rfc3339(now);
        let mut out: Vec<Result<Appended, StoreError>> = Vec::with_capacity(msgs.len());
        for (m, slot) in msgs.iter().zip(&slots) {
            let appended = match slot {
                Slot::New => {
                    let seq = next_seq.get_mut(&*m.room).ok_or_else(|| {
                        StoreError::Unavailable(format!("room {} was not advanced", m.room))
                    })?;
                    let record = MessageRecord {
                        room: m.room.clone(),
                        message_id: uuid::Uuid::now_v7().to_string(),
                        seq: *seq as u64,
                        user_id: m.user_id.clone(),
                        content: m.content.clone(),
                        thread_id: m.thread_id.clone(),
                        reply_to: m.reply_to.clone(),
                        kind: m.kind,
                        metadata: m.metadata.clone(),
                        timestamp: timestamp.clone(),
                        edited_at: None,
                        deleted: false,
                        client_msg_id: m.client_msg_id.clone(),
                    };
                    *seq += 1;
                    Ok(Appended {
                        record: Arc::new(record),
                        duplicate: false,
                    })
                }
                Slot::Existing(record) => Ok(Appended {
                    record: record.clone(),
                    duplicate: true,
                }),
                Slot::SameAs(j) => out[*j].clone().map(|a| Appended {
                    record: a.record,
                    duplicate: true,
                }),
                Slot::NoParent => Err(StoreError::Missing(format!(
                    "replyTo: no message {} in room {}",
                    m.reply_to.as_deref().unwrap_or_default(),
                    m.room
                ))),
            };
            out.push(appended);
        }

        let new: Vec<Arc<MessageRecord>> = out
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .filter(|a| !a.duplicate)
            .map(|a| a.record.clone())
            .collect();
        conn.insert_messages(new, now).await?;
        Ok(out)
    })
}

/// The rooms, users and `clientMsgId`s of the batch's keyed messages, each
/// distinct: one query with these finds every stored duplicate (the exact
/// triples are matched by the caller).
fn dedupe_keys(msgs: &[NewMessage]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut v: Vec<&str> = it.collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    let keyed = || msgs.iter().filter(|m| m.client_msg_id.is_some());
    (
        distinct(keyed().map(|m| &*m.room)),
        distinct(keyed().map(|m| &*m.user_id)),
        distinct(keyed().filter_map(|m| m.client_msg_id.as_deref())),
    )
}

impl<'a> NewRow<'a> {
    fn of(r: &'a MessageRecord, now: i64) -> Self {
        NewRow {
            room: &r.room,
            seq: r.seq as i64,
            message_id: &r.message_id,
            user_id: &r.user_id,
            content: &r.content,
            thread_id: r.thread_id.as_deref(),
            metadata: r.metadata.as_ref().map(|m| m.get()),
            client_msg_id: r.client_msg_id.as_deref(),
            created_at: now,
            reply_to: r.reply_to.as_deref(),
            kind: r.kind.as_str(),
        }
    }
}

/// Messages per SQLite `INSERT`: 11 bound parameters each, well under
/// SQLite's limit per statement (32766).
const ROWS_PER_INSERT: usize = 1000;

/// The batch's two writes. On PostgreSQL each is one prepared statement
/// whatever the batch's size, an array per column (`super::unnest`).
/// diesel-async cannot send multi-row inserts to SQLite, so there each
/// write is one call on SQLite's blocking thread running its statements in
/// turn (in process: no round trips to save, only thread hand-offs).
trait BatchWrite {
    /// Creates the rooms that do not exist yet and adds each room's count
    /// to its `last_seq`; answers each room's new `last_seq`.
    async fn advance_rooms(
        &mut self,
        counts: &BTreeMap<&str, i64>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    async fn insert_messages(
        &mut self,
        records: Vec<Arc<MessageRecord>>,
        now: i64,
    ) -> Result<(), StoreError>;
}

impl BatchWrite for diesel_async::AsyncPgConnection {
    async fn advance_rooms(
        &mut self,
        counts: &BTreeMap<&str, i64>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let query = AdvanceRooms::new(counts.iter().map(|(room, k)| (*room, *k)), now);
        Ok(query.get_results(self).await?)
    }

    async fn insert_messages(
        &mut self,
        records: Vec<Arc<MessageRecord>>,
        now: i64,
    ) -> Result<(), StoreError> {
        if !records.is_empty() {
            InsertMessages::new(&records, now).execute(self).await?;
        }
        Ok(())
    }
}

impl BatchWrite for super::SqliteConn {
    async fn advance_rooms(
        &mut self,
        counts: &BTreeMap<&str, i64>,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let counts: Vec<(String, i64)> = counts.iter().map(|(r, k)| (r.to_string(), *k)).collect();
        Ok(self
            .spawn_blocking(move |conn| {
                counts
                    .into_iter()
                    .map(|(room, k)| {
                        let upsert = diesel::insert_into(rooms::table)
                            .values((
                                rooms::name.eq(&room),
                                rooms::last_seq.eq(k),
                                rooms::created_at.eq(now),
                            ))
                            .on_conflict(rooms::name)
                            .do_update()
                            .set(rooms::last_seq.eq(rooms::last_seq + excluded(rooms::last_seq)))
                            .returning(rooms::last_seq);
                        let last: i64 = diesel::RunQueryDsl::get_result(upsert, conn)?;
                        Ok((room, last))
                    })
                    .collect()
            })
            .await?)
    }

    async fn insert_messages(
        &mut self,
        records: Vec<Arc<MessageRecord>>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.spawn_blocking(move |conn| {
            let rows: Vec<NewRow> = records.iter().map(|r| NewRow::of(r, now)).collect();
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let insert = diesel::insert_into(messages::table).values(chunk);
                diesel::RunQueryDsl::execute(insert, conn)?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::writer_index;

    #[test]
    fn a_room_always_goes_to_the_same_writer_and_rooms_are_shared_out() {
        assert_eq!(writer_index("lobby", 1), 0);
        let rooms: Vec<String> = (0..100).map(|i| format!("room{i}")).collect();
        let first: Vec<usize> = rooms.iter().map(|r| writer_index(r, 3)).collect();
        let again: Vec<usize> = rooms.iter().map(|r| writer_index(r, 3)).collect();
        assert_eq!(first, again);
        for w in 0..3 {
            let n = first.iter().filter(|&&i| i == w).count();
            assert!(n > 10, "writer {w} got {n} of 100 rooms: {first:?}");
        }
    }
}
