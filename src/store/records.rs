//! Background records: connections, room membership, presence, the audit
//! log and notification delivery times.
//!
//! None of these may slow a client down, so [`Records::send`] never waits.
//! It puts the record in a bounded queue (`database.background_queue`);
//! when that is full, in a second, also bounded, line of records waiting
//! for room (`database.background_overflow`), which a task of its own
//! moves into the queue as the writer takes records out. Once a record
//! waits there, every later one queues behind it, so records reach the
//! writer in the order they were sent (a connection's close never before
//! its open). New connections wait while the queue is more than half full
//! or anything waits ([`Records::wait_for_room`]), so a connection storm
//! is slowed to the writer's pace; a burst no one can slow (the closes of
//! every connection at a shutdown) waits in line.
//!
//! One task writes the queue in batches of up to [`BATCH`] records, each
//! batch in one transaction and a few statements: [`plan::fold`] turns a
//! batch into multi-row inserts and upserts and grouped updates, `sql.rs`
//! runs them. While the database is down the writer retries the same batch
//! with exponential backoff (up to `database.retry_max_backoff_ms`).
//!
//! What can be lost: only when the database stays down (or far behind)
//! long enough that the queue and the waiting line are both full
//! (`background_queue + background_overflow` records) are new records
//! dropped, counted (`realtime_records_dropped_total`) and logged; and a
//! record the database refuses for good (a broken constraint), alone.

mod plan;
mod sql;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Notify};

use super::schema::{audit_events, connections, room_members};
use super::{now_ms, Db, StoreError};
use crate::config::{AuditSettings, DatabaseSettings};
use crate::metrics::{add, get, inc, Metrics};
use crate::with_tx;

/// One thing to remember. Times are milliseconds since the epoch.
#[derive(Debug, Clone)]
pub enum Record {
    ConnectionOpened {
        connection_id: String,
        user_id: String,
        remote_addr: Option<String>,
        user_agent: Option<String>,
        at: i64,
    },
    ConnectionClosed {
        connection_id: String,
        user_id: String,
        code: u16,
        at: i64,
    },
    Joined {
        room: String,
        user_id: String,
        connection_id: String,
        at: i64,
    },
    Left {
        room: String,
        connection_id: String,
        at: i64,
    },
    Presence {
        user_id: String,
        status: String,
        custom_status: Option<String>,
        at: i64,
    },
    Audit {
        kind: &'static str,
        user_id: Option<String>,
        connection_id: Option<String>,
        detail: Value,
        at: i64,
    },
    NotificationsDelivered {
        ids: Vec<String>,
        at: i64,
    },
}

enum Job {
    Record(Record),
    Flush(oneshot::Sender<()>),
}

/// The handle every part of the server records through.
pub struct Records {
    jobs: mpsc::Sender<Job>,
    waiting: Arc<Waiting>,
    audit: HashSet<String>,
    metrics: Arc<Metrics>,
}

/// Jobs that found the queue full, oldest first, and the wake-up of the
/// task that moves them into the queue ([`Waiting::run`]).
struct Waiting {
    line: Mutex<VecDeque<Job>>,
    /// Most records in `line` (flushes are not counted).
    limit: usize,
    wake: Notify,
}

impl Waiting {
    fn line(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the line into the queue, oldest first, as room appears. A job
    /// leaves the line only together with its place in the queue, so while
    /// the line is not empty, [`Records::send`] queues behind it. Holds the
    /// queue only while moving, so the writer still ends when [`Records`]
    /// is dropped.
    async fn run(self: Arc<Self>, jobs: mpsc::WeakSender<Job>) {
        loop {
            self.wake.notified().await;
            let Some(jobs) = jobs.upgrade() else {
                return;
            };
            loop {
                let Ok(permit) = jobs.reserve().await else {
                    return; // the writer is gone
                };
                match self.line().pop_front() {
                    Some(job) => permit.send(job),
                    None => break,
                }
            }
        }
    }
}

impl Records {
    /// Starts the writer task, and the task of the waiting line, on the
    /// current tokio runtime. On start, this node's connections left open
    /// by a crash are closed in the tables.
    pub fn start(
        db: Db,
        cfg: &DatabaseSettings,
        audit: &AuditSettings,
        node_id: String,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (jobs, rx) = mpsc::channel(cfg.background_queue.max(1));
        let writer = Writer {
            db,
            dest: Dest {
                node_id: node_id.into(),
            },
            rx,
            max_backoff: cfg.retry_max_backoff.max(Duration::from_millis(10)),
            metrics: metrics.clone(),
        };
        tokio::spawn(writer.run());
        let waiting = Arc::new(Waiting {
            line: Mutex::new(VecDeque::new()),
            limit: cfg.background_overflow,
            wake: Notify::new(),
        });
        tokio::spawn(waiting.clone().run(jobs.downgrade()));
        Arc::new(Records {
            jobs,
            waiting,
            audit: audit.events.iter().cloned().collect(),
            metrics,
        })
    }

    /// Waits, at most `limit`, until the queue is at most half full and
    /// no record waits for room: a new connection's records (and, later,
    /// its disconnect's) then find room.
    /// The upgrade waits here, so a connection storm is slowed to the
    /// writer's pace instead of overflowing the queue. False if the queue
    /// stayed fuller than that (the database is down or far behind).
    pub async fn wait_for_room(&self, limit: Duration) -> bool {
        let has_room = || {
            self.jobs.capacity() * 2 >= self.jobs.max_capacity() && self.waiting.line().is_empty()
        };
        if has_room() {
            return true;
        }
        inc(&self.metrics.handshakes_held);
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if has_room() {
                return true;
            }
        }
        false
    }

    /// Queues `record`; never waits. When the queue is full the record
    /// waits in line for room; only when the line is full too (the
    /// database has been down a long while) is it dropped, counted and
    /// logged.
    pub fn send(&self, record: Record) {
        if let Err(job) = self.enqueue(Job::Record(record)) {
            drop(job);
            inc(&self.metrics.records_dropped);
            let dropped = get(&self.metrics.records_dropped);
            if dropped.is_power_of_two() {
                log::warn!(
                    "background records: queue and waiting line full, \
                     {dropped} records dropped so far"
                );
            }
        }
    }

    /// Puts `job` in the queue, or in the waiting line behind those there
    /// already. A flush always finds a place; a record not when the line
    /// is full (or the writer is gone): it is given back.
    fn enqueue(&self, job: Job) -> Result<(), Job> {
        let mut line = self.waiting.line();
        let job = if line.is_empty() {
            match self.jobs.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(job)) => return Err(job),
                Err(TrySendError::Full(job)) => job,
            }
        } else {
            job
        };
        if matches!(job, Job::Record(_)) {
            if line.len() >= self.waiting.limit {
                return Err(job);
            }
            inc(&self.metrics.records_waited);
            let waited = get(&self.metrics.records_waited);
            if waited.is_power_of_two() {
                log::info!(
                    "background record queue full: {waited} records have waited in line \
                     for room so far"
                );
            }
        }
        line.push_back(job);
        if line.len() == 1 {
            self.waiting.wake.notify_one();
        }
        Ok(())
    }

    /// Records an audit event if its kind is configured in `audit.events`.
    pub fn audit(
        &self,
        kind: &'static str,
        user_id: Option<&str>,
        connection_id: Option<&str>,
        detail: Value,
    ) {
        if self.audit.contains(kind) {
            self.send(Record::Audit {
                kind,
                user_id: user_id.map(String::from),
                connection_id: connection_id.map(String::from),
                detail,
                at: now_ms(),
            });
        }
    }

    /// Waits (at most `limit`) until everything sent before this call,
    /// queued or waiting in line, is written.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.enqueue(Job::Flush(tx)).is_err() {
            return false;
        }
        tokio::time::timeout(limit, rx)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

struct Writer {
    db: Db,
    dest: Dest,
    rx: mpsc::Receiver<Job>,
    max_backoff: Duration,
    metrics: Arc<Metrics>,
}

/// Most records per batch (one transaction).
pub const BATCH: usize = 500;

impl Writer {
    async fn run(mut self) {
        let dest = self.dest.clone();
        self.retry(|db| dest.clone().close_stale(db)).await;
        while let Some(first) = self.rx.recv().await {
            let mut batch = Vec::new();
            let mut flush = None;
            match first {
                Job::Record(r) => batch.push(r),
                Job::Flush(ack) => flush = Some(ack),
            }
            while batch.len() < BATCH && flush.is_none() {
                match self.rx.try_recv() {
                    Ok(Job::Record(r)) => batch.push(r),
                    Ok(Job::Flush(ack)) => flush = Some(ack),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.persist(Arc::new(batch)).await;
            }
            if let Some(ack) = flush {
                let _ = ack.send(());
            }
        }
    }

    /// Runs `op` until it succeeds, backing off while it fails.
    async fn retry<F, Fut>(&self, op: F)
    where
        F: Fn(Db) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.db.timed(&op).await {
                Ok(()) => return,
                Err(e) => {
                    inc(&self.metrics.db_errors);
                    log::warn!("background records not written, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    /// Writes a batch, retrying while the database is unreachable. When the
    /// database answers but refuses the batch, the batch itself is at fault:
    /// its records are written one by one and only those refused for good
    /// (a broken constraint, unstorable data) are dropped, logged and
    /// counted, so one bad record cannot block all others. A record that
    /// fails for a passing reason (timeout, lock, lost connection) is kept
    /// and retried with the rest.
    async fn persist(&self, batch: Arc<Vec<Record>>) {
        let mut backoff = Duration::from_millis(50);
        let mut batch = batch;
        loop {
            let (db, dest) = (&self.db, &self.dest);
            let Err(e) = db.timed(|db| dest.clone().write(db, batch.clone())).await else {
                add(&self.metrics.records_written, batch.len() as u64);
                return;
            };
            inc(&self.metrics.db_errors);
            // An error of unclear kind counts as the batch's fault when the
            // database answers a ping.
            if e.is_refusal() || db.ping().await.is_ok() {
                match self.persist_one_by_one(&batch).await {
                    None => return,
                    Some(rest) => batch = rest,
                }
            }
            log::warn!("background records not written, retrying in {backoff:?}: {e}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// Writes records alone, dropping those the database refuses; on a
    /// passing failure, returns the records not yet written.
    async fn persist_one_by_one(&self, batch: &[Record]) -> Option<Arc<Vec<Record>>> {
        let (db, dest) = (&self.db, &self.dest);
        for (i, record) in batch.iter().enumerate() {
            let one = Arc::new(vec![record.clone()]);
            match db.timed(|db| dest.clone().write(db, one)).await {
                Ok(()) => inc(&self.metrics.records_written),
                Err(e) if e.is_refusal() => {
                    inc(&self.metrics.records_dropped);
                    log::error!("the database refused a record, dropped: {e}: {record:?}");
                }
                Err(e) => {
                    inc(&self.metrics.db_errors);
                    log::warn!("a background record was not written, will retry: {e}");
                    return Some(Arc::new(batch[i..].to_vec()));
                }
            }
        }
        None
    }
}

/// Whose records these are: cheap to clone into a task on the store's
/// runtime.
#[derive(Clone)]
struct Dest {
    node_id: Arc<str>,
}

impl Dest {
    /// Connections of this node still open in the tables belong to an
    /// earlier run of it that did not stop cleanly.
    async fn close_stale(self, db: Db) -> Result<(), StoreError> {
        let at = now_ms();
        let node = &*self.node_id;
        with_tx!(db, |conn| {
            let stale: Vec<String> = connections::table
                .filter(connections::node_id.eq(node))
                .filter(connections::disconnected_at.is_null())
                .select(connections::connection_id)
                .load(conn)
                .await?;
            diesel::update(room_members::table)
                .filter(room_members::connection_id.eq_any(&stale))
                .filter(room_members::left_at.is_null())
                .set(room_members::left_at.eq(at))
                .execute(conn)
                .await?;
            diesel::update(connections::table)
                .filter(connections::connection_id.eq_any(&stale))
                .set(connections::disconnected_at.eq(at))
                .execute(conn)
                .await?;
            if !stale.is_empty() {
                log::info!(
                    "closed {} connection records left open by an earlier run",
                    stale.len()
                );
            }
            Ok(())
        })
    }
}

/// One audit event as `GET /admin/audit` shows it.
#[derive(Debug, Clone, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: i64,
    pub kind: String,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
    pub node_id: String,
    pub detail: String,
    pub created_at: i64,
}

/// The newest audit events, newest first, optionally of one user or kind.
pub async fn audit_events(
    db: &Db,
    user_id: Option<&str>,
    kind: Option<&str>,
    limit: usize,
) -> Result<Vec<AuditEvent>, StoreError> {
    let (user_id, kind) = (user_id.map(String::from), kind.map(String::from));
    db.timed(|db| async move {
        crate::with_conn!(db, |conn| {
            let mut query = audit_events::table
                .order(audit_events::id.desc())
                .limit(limit as i64)
                .select(AuditEvent::as_select())
                .into_boxed();
            if let Some(u) = user_id {
                query = query.filter(audit_events::user_id.eq(u));
            }
            if let Some(k) = kind {
                query = query.filter(audit_events::kind.eq(k));
            }
            Ok(query.load(conn).await?)
        })
    })
    .await
}

#[cfg(test)]
mod dbtest;
