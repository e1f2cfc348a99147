//! Stored token revocations: saved before they take effect, read back at
//! start-up and every `auth.revocation_refresh_secs`, pruned once run out.
//! Columns hold milliseconds, as every time in the database; the
//! [`Revocation`] holds seconds, as the tokens' claims do.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::revocations;
use super::{db_int, Db, StoreError};
use crate::revocation::Revocation;
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = revocations)]
struct Row {
    revocation_id: String,
    user_id: Option<String>,
    jti: Option<String>,
    issued_before: Option<i64>,
    ban_until: Option<i64>,
    expires_at: i64,
    reason: String,
    created_at: i64,
}

fn to_ms(secs: u64) -> i64 {
    db_int(secs).saturating_mul(1000)
}

fn to_secs(ms: i64) -> u64 {
    (ms / 1000).max(0) as u64
}

impl From<&Revocation> for Row {
    fn from(r: &Revocation) -> Self {
        Row {
            revocation_id: r.id.clone(),
            user_id: r.user_id.clone(),
            jti: r.jti.clone(),
            issued_before: r.issued_before.map(to_ms),
            ban_until: r.ban_until.map(to_ms),
            expires_at: to_ms(r.until),
            reason: r.reason.clone(),
            created_at: to_ms(r.created_at),
        }
    }
}

impl From<Row> for Revocation {
    fn from(r: Row) -> Self {
        Revocation {
            id: r.revocation_id,
            user_id: r.user_id,
            jti: r.jti,
            issued_before: r.issued_before.map(to_secs),
            ban_until: r.ban_until.map(to_secs),
            until: to_secs(r.expires_at),
            reason: r.reason,
            created_at: to_secs(r.created_at),
        }
    }
}

#[derive(Clone)]
pub struct RevocationStore {
    db: Db,
}

impl RevocationStore {
    pub fn new(db: Db) -> Self {
        RevocationStore { db }
    }

    pub async fn save(&self, r: &Revocation) -> Result<(), StoreError> {
        let row = Row::from(r);
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    diesel::insert_into(revocations::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Deletes one; true when it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    let n = diesel::delete(revocations::table.find(&id))
                        .execute(conn)
                        .await?;
                    Ok(n > 0)
                })
            })
            .await
    }

    /// The entries still in force at `now` (seconds), after deleting the
    /// ones that have run out.
    pub async fn active(&self, now: u64) -> Result<Vec<Revocation>, StoreError> {
        let now = to_ms(now);
        self.db
            .timed(|db| async move {
                with_conn!(db, |conn| {
                    diesel::delete(revocations::table.filter(revocations::expires_at.le(now)))
                        .execute(conn)
                        .await?;
                    let rows: Vec<Row> = revocations::table
                        .filter(revocations::expires_at.gt(now))
                        .order(revocations::created_at.asc())
                        .select(Row::as_select())
                        .load(conn)
                        .await?;
                    Ok(rows.into_iter().map(Revocation::from).collect())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_milliseconds_and_come_back_as_the_same_revocation() {
        let r = Revocation {
            id: "r1".into(),
            user_id: Some("alice".into()),
            jti: None,
            issued_before: Some(1_700_000_000),
            ban_until: Some(1_700_000_600),
            until: 1_702_592_000,
            reason: "spam".into(),
            created_at: 1_700_000_000,
        };
        let row = Row::from(&r);
        assert_eq!(row.issued_before, Some(1_700_000_000_000));
        assert_eq!(row.expires_at, 1_702_592_000_000);
        assert_eq!(Revocation::from(row), r);
    }
}
