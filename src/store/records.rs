//! Background records: connections, room membership, presence, the audit
//! log and notification delivery times.
//!
//! None of these may slow a client down, so [`Records::send`] never waits:
//! it puts the record in a bounded queue. One task writes the queue in
//! batches; while the database is down it retries the same batch with
//! exponential backoff. New connections wait while the queue is more than
//! half full ([`Records::wait_for_room`]), so a connection storm is slowed
//! to the writer's pace; when the queue is full all the same, new records
//! are dropped, counted (`realtime_records_dropped_total`) and logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::schema::{audit_events, connections, notifications, presence, room_members};
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
    audit: HashSet<String>,
    metrics: Arc<Metrics>,
}

impl Records {
    /// Starts the writer task on the current tokio runtime. On start, this
    /// node's connections left open by a crash are closed in the tables.
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
        Arc::new(Records {
            jobs,
            audit: audit.events.iter().cloned().collect(),
            metrics,
        })
    }

    /// Queues `record`; never waits. A full queue drops it, counted and logged.
    /// Waits, at most `limit`, until the queue is at most half full: a new
    /// connection's records (and, later, its disconnect's) then find room.
    /// The upgrade waits here, so a connection storm is slowed to the
    /// writer's pace instead of overflowing the queue. False if the queue
    /// stayed fuller than that (the database is down or far behind).
    pub async fn wait_for_room(&self, limit: Duration) -> bool {
        let half_free = |jobs: &mpsc::Sender<Job>| jobs.capacity() * 2 >= jobs.max_capacity();
        if half_free(&self.jobs) {
            return true;
        }
        inc(&self.metrics.handshakes_held);
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if half_free(&self.jobs) {
                return true;
            }
        }
        false
    }

    pub fn send(&self, record: Record) {
        if self.jobs.try_send(Job::Record(record)).is_err() {
            inc(&self.metrics.records_dropped);
            let dropped = get(&self.metrics.records_dropped);
            if dropped.is_power_of_two() {
                log::warn!("background record queue full: {dropped} records dropped so far");
            }
        }
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

    /// Waits (at most `limit`) until everything queued before this call is
    /// written.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let done = async { self.jobs.send(Job::Flush(tx)).await.is_ok() && rx.await.is_ok() };
        tokio::time::timeout(limit, done).await.unwrap_or(false)
    }
}

struct Writer {
    db: Db,
    dest: Dest,
    rx: mpsc::Receiver<Job>,
    max_backoff: Duration,
    metrics: Arc<Metrics>,
}

const BATCH: usize = 500;

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

    async fn write(self, db: Db, batch: Arc<Vec<Record>>) -> Result<(), StoreError> {
        let node = &*self.node_id;
        with_tx!(db, |conn| {
            for record in batch.iter() {
                match record {
                    Record::ConnectionOpened {
                        connection_id,
                        user_id,
                        remote_addr,
                        user_agent,
                        at,
                    } => {
                        diesel::insert_into(connections::table)
                            .values((
                                connections::connection_id.eq(connection_id),
                                connections::user_id.eq(user_id),
                                connections::node_id.eq(node),
                                connections::remote_addr.eq(remote_addr),
                                connections::user_agent.eq(user_agent),
                                connections::connected_at.eq(at),
                                connections::last_activity.eq(at),
                            ))
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await?;
                    }
                    Record::ConnectionClosed {
                        connection_id,
                        user_id,
                        code,
                        at,
                    } => {
                        diesel::update(connections::table.find(connection_id))
                            .set((
                                connections::disconnected_at.eq(at),
                                connections::last_activity.eq(at),
                                connections::close_code.eq(*code as i32),
                            ))
                            .execute(conn)
                            .await?;
                        diesel::update(room_members::table)
                            .filter(room_members::connection_id.eq(connection_id))
                            .filter(room_members::left_at.is_null())
                            .set(room_members::left_at.eq(at))
                            .execute(conn)
                            .await?;
                        diesel::update(presence::table.find(user_id))
                            .set(presence::last_seen.eq(at))
                            .execute(conn)
                            .await?;
                    }
                    Record::Joined {
                        room,
                        user_id,
                        connection_id,
                        at,
                    } => {
                        diesel::insert_into(room_members::table)
                            .values((
                                room_members::room.eq(room),
                                room_members::user_id.eq(user_id),
                                room_members::connection_id.eq(connection_id),
                                room_members::node_id.eq(node),
                                room_members::joined_at.eq(at),
                            ))
                            .execute(conn)
                            .await?;
                        diesel::update(connections::table.find(connection_id))
                            .set(connections::last_activity.eq(at))
                            .execute(conn)
                            .await?;
                    }
                    Record::Left {
                        room,
                        connection_id,
                        at,
                    } => {
                        diesel::update(room_members::table)
                            .filter(room_members::room.eq(room))
                            .filter(room_members::connection_id.eq(connection_id))
                            .filter(room_members::left_at.is_null())
                            .set(room_members::left_at.eq(at))
                            .execute(conn)
                            .await?;
                    }
                    Record::Presence {
                        user_id,
                        status,
                        custom_status,
                        at,
                    } => {
                        diesel::insert_into(presence::table)
                            .values((
                                presence::user_id.eq(user_id),
                                presence::status.eq(status),
                                presence::custom_status.eq(custom_status),
                                presence::node_id.eq(node),
                                presence::last_seen.eq(at),
                            ))
                            .on_conflict(presence::user_id)
                            .do_update()
                            .set((
                                presence::status.eq(excluded(presence::status)),
                                presence::custom_status.eq(excluded(presence::custom_status)),
                                presence::node_id.eq(excluded(presence::node_id)),
                                presence::last_seen.eq(excluded(presence::last_seen)),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    Record::Audit {
                        kind,
                        user_id,
                        connection_id,
                        detail,
                        at,
                    } => {
                        diesel::insert_into(audit_events::table)
                            .values((
                                audit_events::kind.eq(*kind),
                                audit_events::user_id.eq(user_id),
                                audit_events::connection_id.eq(connection_id),
                                audit_events::node_id.eq(node),
                                audit_events::detail.eq(detail.to_string()),
                                audit_events::created_at.eq(at),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    Record::NotificationsDelivered { ids, at } => {
                        diesel::update(notifications::table)
                            .filter(notifications::notification_id.eq_any(ids))
                            .filter(notifications::delivered_at.is_null())
                            .set(notifications::delivered_at.eq(at))
                            .execute(conn)
                            .await?;
                    }
                }
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
