//! Stored announcements (`POST /admin/announcements`): read by every node
//! for the connections it opens while one is active, listed and ended
//! through the admin API. An ended one keeps its row, with `ended_at`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::announcements;
use super::{ms_to_rfc3339, Db, StoreError};
use crate::protocol::{Announcement, AnnouncementType};
use crate::{with_conn, with_tx};

/// An announcement with what only the server and the admin API see.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnnouncement {
    pub announcement: Announcement,
    /// Empty: everyone.
    pub target_roles: Vec<String>,
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
    pub created_ms: i64,
    /// When `DELETE /admin/announcements/{id}` ended it.
    pub ended_ms: Option<i64>,
}

impl StoredAnnouncement {
    /// Whether it is to be shown at `now` (ms).
    pub fn active_at(&self, now: i64) -> bool {
        self.ended_ms.is_none()
            && self.starts_ms.is_none_or(|s| s <= now)
            && self.ends_ms.is_none_or(|e| e > now)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = announcements)]
struct Row {
    announcement_id: String,
    title: String,
    message: String,
    kind: String,
    target_roles: String,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    created_at: i64,
    ended_at: Option<i64>,
}

impl Row {
    fn into_stored(self) -> StoredAnnouncement {
        StoredAnnouncement {
            announcement: Announcement {
                announcement_id: self.announcement_id,
                title: self.title,
                message: self.message,
                // The table's CHECK admits only the known types.
                kind: AnnouncementType::parse(&self.kind).unwrap_or(AnnouncementType::Feature),
                starts_at: self.starts_at.map(ms_to_rfc3339),
                ends_at: self.ends_at.map(ms_to_rfc3339),
            },
            target_roles: serde_json::from_str(&self.target_roles).unwrap_or_default(),
            starts_ms: self.starts_at,
            ends_ms: self.ends_at,
            created_ms: self.created_at,
            ended_ms: self.ended_at,
        }
    }
}

#[derive(Clone)]
pub struct Announcements {
    db: Db,
}

impl Announcements {
    pub fn new(db: Db) -> Self {
        Announcements { db }
    }

    pub async fn save(&self, a: &StoredAnnouncement) -> Result<(), StoreError> {
        let a = a.clone();
        let roles = serde_json::to_string(&a.target_roles).expect("strings serialise");
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let w = &a.announcement;
                    diesel::insert_into(announcements::table)
                        .values((
                            announcements::announcement_id.eq(&w.announcement_id),
                            announcements::title.eq(&w.title),
                            announcements::message.eq(&w.message),
                            announcements::kind.eq(w.kind.as_str()),
                            announcements::target_roles.eq(&roles),
                            announcements::starts_at.eq(a.starts_ms),
                            announcements::ends_at.eq(a.ends_ms),
                            announcements::created_at.eq(a.created_ms),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// The newest `limit` announcements, ended ones included.
    pub async fn list(&self, limit: usize) -> Result<Vec<StoredAnnouncement>, StoreError> {
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let rows: Vec<Row> = announcements::table
                        .order((
                            announcements::created_at.desc(),
                            announcements::announcement_id.desc(),
                        ))
                        .limit(limit as i64)
                        .select(Row::as_select())
                        .load(conn)
                        .await?;
                    Ok(rows.into_iter().map(Row::into_stored).collect())
                })
            })
            .await
    }

    /// Those active at `now` (ms), oldest first, at most `limit`.
    pub async fn active(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<StoredAnnouncement>, StoreError> {
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let rows: Vec<Row> = announcements::table
                        .filter(announcements::ended_at.is_null())
                        .filter(
                            announcements::starts_at
                                .is_null()
                                .or(announcements::starts_at.le(now)),
                        )
                        .filter(
                            announcements::ends_at
                                .is_null()
                                .or(announcements::ends_at.gt(now)),
                        )
                        .order(announcements::created_at.asc())
                        .limit(limit as i64)
                        .select(Row::as_select())
                        .load(conn)
                        .await?;
                    Ok(rows.into_iter().map(Row::into_stored).collect())
                })
            })
            .await
    }

    /// Ends announcement `id` at `now` (ms) unless it was ended before;
    /// answers it as it is now, or `None` when there is no such one.
    pub async fn end(&self, id: &str, now: i64) -> Result<Option<StoredAnnouncement>, StoreError> {
        let id = id.to_string();
        self.db
            .timed(|db| async move {
                with_tx!(db, |conn| {
                    diesel::update(
                        announcements::table
                            .find(&id)
                            .filter(announcements::ended_at.is_null()),
                    )
                    .set(announcements::ended_at.eq(now))
                    .execute(conn)
                    .await?;
                    let row: Option<Row> = announcements::table
                        .find(&id)
                        .select(Row::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    Ok(row.map(Row::into_stored))
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(starts: Option<i64>, ends: Option<i64>, ended: Option<i64>) -> StoredAnnouncement {
        StoredAnnouncement {
            announcement: Announcement {
                announcement_id: "a".into(),
                title: "t".into(),
                message: "m".into(),
                kind: AnnouncementType::Warning,
                starts_at: None,
                ends_at: None,
            },
            target_roles: Vec::new(),
            starts_ms: starts,
            ends_ms: ends,
            created_ms: 0,
            ended_ms: ended,
        }
    }

    #[test]
    fn active_between_start_and_end_until_ended() {
        assert!(stored(None, None, None).active_at(5));
        assert!(stored(Some(5), Some(6), None).active_at(5));
        assert!(!stored(Some(5), None, None).active_at(4));
        assert!(!stored(None, Some(5), None).active_at(5));
        assert!(!stored(None, None, Some(1)).active_at(5));
    }
}
