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
use diesel_async::RunQueryDsl;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::schema::{messages, rooms};
use super::{ms_to_rfc3339, now_ms, Db, StoreError};
use crate::broker::{Appended, MessageLog, NewMessage, Recovery, StoreFuture};
use crate::config::DatabaseSettings;
use crate::metrics::{add, inc, Metrics};
use crate::protocol::{MessageRecord, RawJson};
use crate::{with_conn, with_tx};

#[derive(Queryable, Selectable)]
#[diesel(table_name = messages)]
struct MessageRow {
    room: String,
    seq: i64,
    message_id: String,
    user_id: String,
    content: String,
    thread_id: Option<String>,
    metadata: Option<String>,
    client_msg_id: Option<String>,
    created_at: i64,
}

impl MessageRow {
    fn into_record(self) -> MessageRecord {
        MessageRecord {
            room: self.room.into(),
            message_id: self.message_id,
            seq: self.seq as u64,
            user_id: self.user_id.into(),
            content: self.content,
            thread_id: self.thread_id,
            metadata: self
                .metadata
                .and_then(|m| RawValue::from_string(m).ok())
                .map(RawJson),
            timestamp: ms_to_rfc3339(self.created_at),
            client_msg_id: self.client_msg_id,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
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
}

enum Job {
    Append(NewMessage, oneshot::Sender<Result<Appended, StoreError>>),
    Flush(oneshot::Sender<()>),
}

/// The [`MessageLog`] backed by the database.
pub struct DbLog {
    db: Db,
    jobs: mpsc::Sender<Job>,
}

impl DbLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(db: Db, cfg: &DatabaseSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        let (jobs, rx) = mpsc::channel(cfg.write_queue.max(1));
        let writer = Writer {
            db: db.clone(),
            rx,
            batch_max: cfg.batch_max.max(1),
            batch_delay: Duration::from_millis(cfg.batch_delay_ms),
            metrics,
        };
        tokio::spawn(writer.run());
        Arc::new(DbLog { db, jobs })
    }

    /// Waits until everything queued before this call has been written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl MessageLog for DbLog {
    /// Queues the message now, in call order (the writer assigns seqs in
    /// queue order); the future only waits for the commit.
    fn append(&self, msg: NewMessage) -> StoreFuture<Appended> {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .jobs
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
    ) -> StoreFuture<Vec<Arc<MessageRecord>>> {
        let (db, room) = (self.db.clone(), room.to_string());
        let op = move |db: Db| async move { history(&db, &room, before, limit).await };
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
        let since = match since {
            Some(s) if s < latest => s,
            _ => {
                return Ok(Recovery {
                    latest,
                    messages: Vec::new(),
                    complete: true,
                })
            }
        };
        let mut rows: Vec<MessageRow> = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::seq.gt(since as i64))
            .order(messages::seq.desc())
            .limit(max as i64)
            .select(MessageRow::as_select())
            .load(conn)
            .await?;
        rows.reverse();
        let missed = (latest - since) as usize;
        Ok(Recovery {
            latest,
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
) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
    with_conn!(db, |conn| {
        let before = before.map_or(i64::MAX, |b| b as i64);
        let mut rows: Vec<MessageRow> = messages::table
            .filter(messages::room.eq(room))
            .filter(messages::seq.lt(before))
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
            let result = self
                .db
                .timed(|db| async move { write_batch(&db, &msgs).await })
                .await;
            inc(&self.metrics.db_write_batches);
            match result {
                Ok(appended) => {
                    let written = appended.iter().filter(|a| !a.duplicate).count();
                    add(&self.metrics.db_written_messages, written as u64);
                    for (reply, a) in replies.into_iter().zip(appended) {
                        let _ = reply.send(Ok(a));
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
}

/// Writes one batch in one transaction; answers in the batch's order.
async fn write_batch(db: &Db, msgs: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
    let now = now_ms();
    let mut room_names: Vec<&str> = msgs.iter().map(|m| &*m.room).collect();
    room_names.sort_unstable();
    room_names.dedup();
    with_tx!(db, |conn| {
        BatchInsert::insert_rooms(conn, &room_names, now).await?;

        let mut slots = Vec::with_capacity(msgs.len());
        let mut keys: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for (i, m) in msgs.iter().enumerate() {
            let Some(key) = m.client_msg_id.as_deref() else {
                slots.push(Slot::New);
                continue;
            };
            if let Some(&j) = keys.get(&(&*m.room, &*m.user_id, key)) {
                slots.push(Slot::SameAs(j));
                continue;
            }
            keys.insert((&*m.room, &*m.user_id, key), i);
            let found: Option<MessageRow> = messages::table
                .filter(messages::room.eq(&*m.room))
                .filter(messages::user_id.eq(&*m.user_id))
                .filter(messages::client_msg_id.eq(key))
                .select(MessageRow::as_select())
                .first(conn)
                .await
                .optional()?;
            slots.push(match found {
                Some(row) => Slot::Existing(Arc::new(row.into_record())),
                None => Slot::New,
            });
        }

        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for (m, slot) in msgs.iter().zip(&slots) {
            if matches!(slot, Slot::New) {
                *counts.entry(&*m.room).or_insert(0) += 1;
            }
        }
        let mut next_seq: HashMap<&str, i64> = HashMap::new();
        for (room, k) in counts {
            let last: i64 = diesel::update(rooms::table.find(room))
                .set(rooms::last_seq.eq(rooms::last_seq + k))
                .returning(rooms::last_seq)
                .get_result(conn)
                .await?;
            next_seq.insert(room, last - k + 1);
        }

        let timestamp = ms_to_rfc3339(now);
        let mut out: Vec<Appended> = Vec::with_capacity(msgs.len());
        for (m, slot) in msgs.iter().zip(&slots) {
            let appended = match slot {
                Slot::New => {
                    let seq = next_seq.get_mut(&*m.room).expect("counted above");
                    let record = MessageRecord {
                        room: m.room.clone(),
                        message_id: uuid::Uuid::new_v4().to_string(),
                        seq: *seq as u64,
                        user_id: m.user_id.clone(),
                        content: m.content.clone(),
                        thread_id: m.thread_id.clone(),
                        metadata: m.metadata.clone(),
                        timestamp: timestamp.clone(),
                        client_msg_id: m.client_msg_id.clone(),
                    };
                    *seq += 1;
                    Appended {
                        record: Arc::new(record),
                        duplicate: false,
                    }
                }
                Slot::Existing(record) => Appended {
                    record: record.clone(),
                    duplicate: true,
                },
                Slot::SameAs(j) => Appended {
                    record: out[*j].record.clone(),
                    duplicate: true,
                },
            };
            out.push(appended);
        }

        let rows: Vec<NewRow> = out
            .iter()
            .filter(|a| !a.duplicate)
            .map(|a| NewRow {
                room: &a.record.room,
                seq: a.record.seq as i64,
                message_id: &a.record.message_id,
                user_id: &a.record.user_id,
                content: &a.record.content,
                thread_id: a.record.thread_id.as_deref(),
                metadata: a.record.metadata.as_ref().map(|m| m.get()),
                client_msg_id: a.record.client_msg_id.as_deref(),
                created_at: now,
            })
            .collect();
        BatchInsert::insert_messages(conn, &rows).await?;
        Ok(out)
    })
}

/// Multi-row inserts where the backend has them (PostgreSQL), a row at a
/// time inside the same transaction where it does not (diesel cannot batch
/// rows with optional columns on SQLite).
trait BatchInsert {
    async fn insert_rooms(&mut self, names: &[&str], now: i64) -> Result<(), StoreError>;
    async fn insert_messages(&mut self, rows: &[NewRow<'_>]) -> Result<(), StoreError>;
}

impl BatchInsert for diesel_async::AsyncPgConnection {
    async fn insert_rooms(&mut self, names: &[&str], now: i64) -> Result<(), StoreError> {
        let values: Vec<_> = names
            .iter()
            .map(|r| (rooms::name.eq(*r), rooms::created_at.eq(now)))
            .collect();
        diesel::insert_into(rooms::table)
            .values(&values)
            .on_conflict_do_nothing()
            .execute(self)
            .await?;
        Ok(())
    }

    async fn insert_messages(&mut self, rows: &[NewRow<'_>]) -> Result<(), StoreError> {
        // Well under PostgreSQL's 65535 bound parameters per statement.
        for chunk in rows.chunks(1000) {
            diesel::insert_into(messages::table)
                .values(chunk)
                .execute(self)
                .await?;
        }
        Ok(())
    }
}

impl BatchInsert for super::SqliteConn {
    async fn insert_rooms(&mut self, names: &[&str], now: i64) -> Result<(), StoreError> {
        for name in names {
            diesel::insert_into(rooms::table)
                .values((rooms::name.eq(*name), rooms::created_at.eq(now)))
                .on_conflict_do_nothing()
                .execute(self)
                .await?;
        }
        Ok(())
    }

    async fn insert_messages(&mut self, rows: &[NewRow<'_>]) -> Result<(), StoreError> {
        for row in rows {
            diesel::insert_into(messages::table)
                .values(row)
                .execute(self)
                .await?;
        }
        Ok(())
    }
}
