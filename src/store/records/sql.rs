//! Executes a batch's [`Plan`] in one transaction: a multi-row statement
//! per kind of row, updates grouped by their value. On PostgreSQL each
//! statement is a round trip, so rows go in multi-row statements. On
//! SQLite the whole plan runs in one call on the blocking thread (a round
//! trip there is a hop between threads; diesel writes a SQLite multi-row
//! insert as one prepared insert per row, which costs little in-process). Chunked so that no
//! statement has more than [`ROWS`] rows or ids (the bind-parameter limits
//! are 32766 on SQLite, 65535 on PostgreSQL; the widest row here has 9
//! columns).

use std::sync::Arc;

use diesel::dsl::{max, sql};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::plan::{fold, ByTime, Plan};
use super::{Dest, Record};
use crate::store::schema::{audit_events, connections, notifications, presence, room_members};
use crate::store::{Db, SqliteConn, StoreError};
use crate::with_tx;

/// Most rows (or ids) per statement.
const ROWS: usize = 1000;

/// `(time, ids)` pairs of a [`ByTime`], at most [`ROWS`] ids each.
fn groups(by_time: &ByTime) -> impl Iterator<Item = (i64, &[String])> {
    by_time
        .iter()
        .flat_map(|(&at, ids)| ids.chunks(ROWS).map(move |c| (at, c)))
}

/// The statements of `$plan`, each built as `$q` and run by `$run` (the
/// async or the blocking `execute`, per backend).
macro_rules! plan_statements {
    ($plan:expr, $node:expr, |$q:ident| $run:expr) => {{
        let plan: &Plan = $plan;
        let node: &str = $node;
        // Rows of earlier batches first, so no update touches a row
        // this batch inserts.
        for leave in &plan.leaves {
            let $q = diesel::update(room_members::table)
                .filter(room_members::room.eq(&leave.room))
                .filter(room_members::connection_id.eq(&leave.connection_id))
                .filter(room_members::left_at.is_null())
                .set(room_members::left_at.eq(leave.at));
            $run;
        }
        for (at, ids) in groups(&plan.activity) {
            let $q = diesel::update(connections::table)
                .filter(connections::connection_id.eq_any(ids))
                .set(connections::last_activity.eq(at));
            $run;
        }
        for rows in plan.new_connections.chunks(ROWS) {
            let values: Vec<_> = rows
                .iter()
                .map(|c| {
                    (
                        connections::connection_id.eq(&c.connection_id),
                        connections::user_id.eq(&c.user_id),
                        connections::node_id.eq(node),
                        connections::remote_addr.eq(&c.remote_addr),
                        connections::user_agent.eq(&c.user_agent),
                        connections::connected_at.eq(c.connected_at),
                        connections::last_activity.eq(c.last_activity),
                        connections::disconnected_at.eq(c.disconnected_at),
                        connections::close_code.eq(c.close_code),
                    )
                })
                .collect();
            let $q = diesel::insert_into(connections::table)
                .values(values)
                .on_conflict_do_nothing();
            $run;
        }
        // A close whose row was never written inserts it closed.
        for rows in plan.closes.chunks(ROWS) {
            let values: Vec<_> = rows
                .iter()
                .map(|c| {
                    (
                        connections::connection_id.eq(&c.connection_id),
                        connections::user_id.eq(&c.user_id),
                        connections::node_id.eq(node),
                        connections::connected_at.eq(c.at),
                        connections::last_activity.eq(c.at),
                        connections::disconnected_at.eq(c.at),
                        connections::close_code.eq(c.code),
                    )
                })
                .collect();
            let $q = diesel::insert_into(connections::table)
                .values(values)
                .on_conflict(connections::connection_id)
                .do_update()
                .set((
                    connections::disconnected_at.eq(excluded(connections::disconnected_at)),
                    connections::last_activity.eq(excluded(connections::last_activity)),
                    connections::close_code.eq(excluded(connections::close_code)),
                ));
            $run;
        }
        // Memberships of the connections closed above (earlier batches'
        // rows; this batch's new ones are inserted with `left_at` set)
        // end when their connection did.
        for ids in plan.members_closed.chunks(ROWS) {
            let $q = diesel::update(room_members::table)
                .filter(room_members::connection_id.eq_any(ids))
                .filter(room_members::left_at.is_null())
                .set(
                    room_members::left_at.eq(
                        // a correlated subquery: the row's connection
                        connections::table
                            .filter(
                                connections::connection_id
                                    .eq(sql::<Text>("room_members.connection_id")),
                            )
                            .select(connections::disconnected_at)
                            .single_value(),
                    ),
                );
            $run;
        }
        for rows in plan.new_members.chunks(ROWS) {
            let values: Vec<_> = rows
                .iter()
                .map(|m| {
                    (
                        room_members::room.eq(&m.room),
                        room_members::user_id.eq(&m.user_id),
                        room_members::connection_id.eq(&m.connection_id),
                        room_members::node_id.eq(node),
                        room_members::joined_at.eq(m.joined_at),
                        room_members::left_at.eq(m.left_at),
                    )
                })
                .collect();
            let $q = diesel::insert_into(room_members::table).values(values);
            $run;
        }
        for rows in plan.presence.chunks(ROWS) {
            let values: Vec<_> = rows
                .iter()
                .map(|p| {
                    (
                        presence::user_id.eq(&p.user_id),
                        presence::status.eq(&p.status),
                        presence::custom_status.eq(&p.custom_status),
                        presence::node_id.eq(node),
                        presence::last_seen.eq(p.last_seen),
                    )
                })
                .collect();
            let $q = diesel::insert_into(presence::table)
                .values(values)
                .on_conflict(presence::user_id)
                .do_update()
                .set((
                    presence::status.eq(excluded(presence::status)),
                    presence::custom_status.eq(excluded(presence::custom_status)),
                    presence::node_id.eq(excluded(presence::node_id)),
                    presence::last_seen.eq(excluded(presence::last_seen)),
                ));
            $run;
        }
        for users in plan.last_seen.chunks(ROWS) {
            let $q = diesel::update(presence::table)
                .filter(presence::user_id.eq_any(users))
                .set(
                    presence::last_seen.eq(
                        // a correlated subquery: the user's last close in this
                        // batch (there is one for each of these users)
                        connections::table
                            .filter(connections::connection_id.eq_any(&plan.closed))
                            .filter(connections::user_id.eq(sql::<Text>("presence.user_id")))
                            .select(max(connections::disconnected_at))
                            .single_value()
                            .assume_not_null(),
                    ),
                );
            $run;
        }
        for rows in plan.audit.chunks(ROWS) {
            let values: Vec<_> = rows
                .iter()
                .map(|a| {
                    (
                        audit_events::kind.eq(a.kind),
                        audit_events::user_id.eq(&a.user_id),
                        audit_events::connection_id.eq(&a.connection_id),
                        audit_events::node_id.eq(node),
                        audit_events::detail.eq(&a.detail),
                        audit_events::created_at.eq(a.at),
                    )
                })
                .collect();
            let $q = diesel::insert_into(audit_events::table).values(values);
            $run;
        }
        for (at, ids) in groups(&plan.delivered) {
            let $q = diesel::update(notifications::table)
                .filter(notifications::notification_id.eq_any(ids))
                .filter(notifications::delivered_at.is_null())
                .set(notifications::delivered_at.eq(at));
            $run;
        }
    }};
}

trait WritePlan {
    async fn write_plan(&mut self, plan: Arc<Plan>, node: Arc<str>) -> Result<(), StoreError>;
}

impl WritePlan for diesel_async::AsyncPgConnection {
    async fn write_plan(&mut self, plan: Arc<Plan>, node: Arc<str>) -> Result<(), StoreError> {
        plan_statements!(&plan, &node, |q| q.execute(self).await?);
        Ok(())
    }
}

impl WritePlan for SqliteConn {
    async fn write_plan(&mut self, plan: Arc<Plan>, node: Arc<str>) -> Result<(), StoreError> {
        self.spawn_blocking(move |conn| {
            plan_statements!(&plan, &node, |q| diesel::RunQueryDsl::execute(q, conn)?);
            Ok(())
        })
        .await?;
        Ok(())
    }
}

impl Dest {
    /// Writes `batch` in one transaction.
    pub(super) async fn write(self, db: Db, batch: Arc<Vec<Record>>) -> Result<(), StoreError> {
        let plan = Arc::new(fold(&batch));
        let node = self.node_id.clone();
        with_tx!(db, |conn| conn.write_plan(plan.clone(), node.clone()).await)
    }
}
