//! Stored notifications: saved before they are delivered, replayed to each
//! new connection while unread, marked read by `notification:read`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::notifications;
use super::{ms_to_rfc3339, now_ms, Db, StoreError};
use crate::protocol::{
    ListedNotification, Notification, NotificationKind, NotificationList, Priority,
};
use crate::{with_conn, with_tx};

#[derive(Queryable, Selectable)]
#[diesel(table_name = notifications)]
struct Row {
    notification_id: String,
    kind: String,
    title: String,
    body: String,
    data: String,
    created_at: i64,
    priority: String,
    action_url: Option<String>,
    action_text: Option<String>,
    expires_at: Option<i64>,
    read_at: Option<i64>,
}

impl Row {
    fn into_listed(self) -> ListedNotification {
        let read_at = self.read_at.map(ms_to_rfc3339);
        ListedNotification {
            notification: self.into_notification(),
            read_at,
        }
    }

    fn into_notification(self) -> Notification {
        Notification {
            notification_id: self.notification_id,
            kind: serde_json::from_value(serde_json::Value::String(self.kind))
                .unwrap_or(NotificationKind::Info),
            title: self.title,
            body: self.body,
            data: serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null),
            created_at: ms_to_rfc3339(self.created_at),
            // Rows of earlier releases have the column's default, `medium`.
            priority: Priority::parse(&self.priority).unwrap_or_default(),
            action_url: self.action_url,
            action_text: self.action_text,
            expires_at: self.expires_at.map(ms_to_rfc3339),
        }
    }
}

fn kind_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Info => "info",
        NotificationKind::Warning => "warning",
        NotificationKind::Error => "error",
        NotificationKind::Success => "success",
    }
}

/// What `mark_read` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Marked,
    AlreadyRead,
    Unknown,
}

#[derive(Clone)]
pub struct Notifications {
    db: Db,
}

impl Notifications {
    pub fn new(db: Db) -> Self {
        Notifications { db }
    }

    /// Stores a new notification for `user_id`, created at `created_ms`
    /// (the same instant as its `createdAt`), expiring at `expires_ms`.
    pub async fn save(
        &self,
        user_id: &str,
        n: &Notification,
        created_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let data = n.data.to_string();
        let (user_id, n) = (user_id.to_string(), n.clone());
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    diesel::insert_into(notifications::table)
                        .values((
                            notifications::notification_id.eq(&n.notification_id),
                            notifications::user_id.eq(user_id),
                            notifications::kind.eq(kind_name(n.kind)),
                            notifications::title.eq(&n.title),
                            notifications::body.eq(&n.body),
                            notifications::data.eq(&data),
                            notifications::created_at.eq(created_ms),
                            notifications::priority.eq(n.priority.as_str()),
                            notifications::action_url.eq(&n.action_url),
                            notifications::action_text.eq(&n.action_text),
                            notifications::expires_at.eq(expires_ms),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The user's unread notifications that have not expired, oldest
    /// first, at most `limit`.
    pub async fn unread(
        &self,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let user_id = user_id.to_string();
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let rows: Vec<Row> = notifications::table
                        .filter(notifications::user_id.eq(user_id))
                        .filter(notifications::read_at.is_null())
                        .filter(
                            notifications::expires_at
                                .is_null()
                                .or(notifications::expires_at.gt(now_ms())),
                        )
                        .order(notifications::created_at.asc())
                        .limit(limit as i64)
                        .select(Row::as_select())
                        .load(conn)
                        .await?;
                    Ok(rows.into_iter().map(Row::into_notification).collect())
                })
            })
            .await
    }

    /// A page of the user's notifications that have not expired, newest
    /// first (ties by id), with the cursor of the next page (`None`: this
    /// is the last). `Ok(None)` when `before` is not one of the user's.
    pub async fn list(
        &self,
        user_id: &str,
        page: NotificationList,
    ) -> Result<Option<(Vec<ListedNotification>, Option<String>)>, StoreError> {
        let user_id = user_id.to_string();
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let cursor = match &page.before {
                        None => None,
                        Some(id) => {
                            let at: Option<i64> = notifications::table
                                .filter(notifications::notification_id.eq(id))
                                .filter(notifications::user_id.eq(&user_id))
                                .select(notifications::created_at)
                                .first(conn)
                                .await
                                .optional()?;
                            match at {
                                Some(at) => Some((at, id.clone())),
                                None => return Ok(None),
                            }
                        }
                    };
                    let mut query = notifications::table
                        .filter(notifications::user_id.eq(&user_id))
                        .filter(
                            notifications::expires_at
                                .is_null()
                                .or(notifications::expires_at.gt(now_ms())),
                        )
                        .into_boxed();
                    if page.unread_only {
                        query = query.filter(notifications::read_at.is_null());
                    }
                    if let Some((at, id)) = cursor {
                        query = query.filter(
                            notifications::created_at
                                .lt(at)
                                .or(notifications::created_at
                                    .eq(at)
                                    .and(notifications::notification_id.lt(id))),
                        );
                    }
                    let mut rows: Vec<Row> = query
                        .order((
                            notifications::created_at.desc(),
                            notifications::notification_id.desc(),
                        ))
                        .limit(page.limit as i64 + 1)
                        .select(Row::as_select())
                        .load(conn)
                        .await?;
                    let more = rows.len() > page.limit;
                    rows.truncate(page.limit);
                    let next = more
                        .then(|| rows.last().map(|r| r.notification_id.clone()))
                        .flatten();
                    Ok(Some((
                        rows.into_iter().map(Row::into_listed).collect(),
                        next,
                    )))
                })
            })
            .await
    }

    /// Marks those of `ids` that are the user's read; answers which are.
    pub async fn mark_some_read(
        &self,
        user_id: &str,
        ids: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        let user_id = user_id.to_string();
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let mine: Vec<String> = notifications::table
                        .filter(notifications::user_id.eq(&user_id))
                        .filter(notifications::notification_id.eq_any(&ids))
                        .select(notifications::notification_id)
                        .load(conn)
                        .await?;
                    diesel::update(
                        notifications::table
                            .filter(notifications::notification_id.eq_any(&mine))
                            .filter(notifications::read_at.is_null()),
                    )
                    .set(notifications::read_at.eq(now_ms()))
                    .execute(conn)
                    .await?;
                    Ok(mine)
                })
            })
            .await
    }

    /// Marks every notification of the user read.
    pub async fn mark_all_read(&self, user_id: &str) -> Result<(), StoreError> {
        let user_id = user_id.to_string();
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    diesel::update(
                        notifications::table
                            .filter(notifications::user_id.eq(&user_id))
                            .filter(notifications::read_at.is_null()),
                    )
                    .set(notifications::read_at.eq(now_ms()))
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Marks one of the user's notifications read.
    pub async fn mark_read(&self, user_id: &str, id: &str) -> Result<ReadOutcome, StoreError> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    let found: Option<Option<i64>> = notifications::table
                        .filter(notifications::notification_id.eq(&id))
                        .filter(notifications::user_id.eq(user_id))
                        .select(notifications::read_at)
                        .first(conn)
                        .await
                        .optional()?;
                    match found {
                        None => Ok(ReadOutcome::Unknown),
                        Some(Some(_)) => Ok(ReadOutcome::AlreadyRead),
                        Some(None) => {
                            diesel::update(notifications::table.find(&id))
                                .set(notifications::read_at.eq(now_ms()))
                                .execute(conn)
                                .await?;
                            Ok(ReadOutcome::Marked)
                        }
                    }
                })
            })
            .await
    }
}
